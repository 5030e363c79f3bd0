"""Example inputs for the fused-linear preference and policy-gradient losses.

One row is one preference pair (or one answer, or one completion): hidden
states ``[..., T, D]`` and target tokens ``[..., T]`` per row, per-row
reference log-probabilities, and one output kernel ``[D, V]`` shared by every
row (not sliced by the mask tests). The chosen and rejected answers have
different lengths, and the vocabulary (7) is not a multiple of any block
size. Every target counts (no ``-100``), so a NaN in the first or the last
hidden state of a row reaches the value.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

DIM, VOCAB = 4, 7
CHOSEN_T, REJECTED_T = 3, 4


def _tokens(rng, shape, t):
  hidden = rng.standard_normal(shape + (t, DIM)).astype(np.float32)
  targets = rng.integers(0, VOCAB, shape + (t,)).astype(np.int32)
  return hidden, targets


def _kernel(rng):
  return rng.standard_normal((DIM, VOCAB)).astype(np.float32)


def _reference(rng, shape, t):
  """Summed log-probabilities of ``t`` tokens under a nearby reference model."""
  return (-rng.uniform(1.0, 4.0, shape) * t).astype(np.float32)


def _pairs(rng, shape):
  chosen = _tokens(rng, shape, CHOSEN_T)
  rejected = _tokens(rng, shape, REJECTED_T)
  return chosen + rejected + (_kernel(rng),)


def _pairs_with_reference(rng, shape):
  chosen = _tokens(rng, shape, CHOSEN_T)
  rejected = _tokens(rng, shape, REJECTED_T)
  references = (_reference(rng, shape, CHOSEN_T), _reference(rng, shape, REJECTED_T))
  return chosen + rejected + references + (_kernel(rng),)


def _unpaired(rng, shape):
  hidden, targets = _tokens(rng, shape, CHOSEN_T)
  labels = rng.uniform(size=shape) < 0.5
  return hidden, targets, _reference(rng, shape, CHOSEN_T), labels, _kernel(rng)


def _completions(rng, shape):
  """Completions of ``CHOSEN_T + 1`` tokens; the behaviour policy's and the
  reference model's log-probabilities are the policy's own a little perturbed
  (some ratios clipped, some not), and advantages are group-like; every token
  counts."""
  t = CHOSEN_T + 1
  hidden, targets = _tokens(rng, shape, t)
  kernel = _kernel(rng)
  z = hidden.astype(np.float64) @ kernel
  z = z - z.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  policy = np.take_along_axis(logp, targets[..., None], -1)[..., 0]
  old = np.minimum(policy + rng.normal(0.0, 0.15, policy.shape), -0.01).astype(np.float32)
  advantages = rng.normal(0.0, 1.0, shape).astype(np.float32)
  reference = np.minimum(policy + rng.normal(0.0, 0.3, policy.shape), -0.01).astype(np.float32)
  return hidden, targets, old, advantages, reference, kernel


# fused_linear_dpo_loss: chosen and rejected tokens, reference log-probabilities, kernel.
PAIRS_WITH_REFERENCE = Inputs(_pairs_with_reference, batched=6)
# fused_linear_simpo_loss, fused_linear_orpo_loss, fused_linear_cpo_loss.
PAIRS = Inputs(_pairs, batched=4)
# fused_linear_kto_loss: one answer per row with its desirability label.
UNPAIRED = Inputs(_unpaired, batched=4)
# fused_linear_policy_gradient_loss: sampled completions of a policy.
COMPLETIONS = Inputs(_completions, batched=5)
