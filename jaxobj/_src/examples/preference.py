"""Example inputs for the preference and alignment losses.

Log-probabilities are valid ones (never above 0): sequence-summed values of a
few to a few tens of nats, or length-averaged values of a fraction of a nat to
a few nats, with the reference model close to the policy. Scaling the first
input by a large positive factor (the conformance test's extreme inputs)
keeps them valid.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs


def _f32(a):
  return np.asarray(a, np.float32)


def _summed(rng, shape):
  """Sequence-summed log-probabilities of a policy and of a nearby reference."""
  policy = -rng.uniform(5.0, 60.0, shape)
  reference = np.minimum(policy + rng.normal(0.0, 2.0, shape), -0.5)
  return _f32(policy), _f32(reference)


def _averaged(rng, shape):
  return _f32(-rng.uniform(0.05, 3.0, shape))


def _dpo(rng, shape):
  chosen, ref_chosen = _summed(rng, shape)
  rejected, ref_rejected = _summed(rng, shape)
  return chosen, rejected, ref_chosen, ref_rejected


def _averaged_pairs(rng, shape):
  return _averaged(rng, shape), _averaged(rng, shape)


def _reward_pairs(rng, shape):
  chosen = rng.normal(0.5, 2.0, shape)
  rejected = rng.normal(-0.5, 2.0, shape)
  margin = rng.uniform(0.0, 1.0, shape)
  return _f32(chosen), _f32(rejected), _f32(margin)


def _unpaired(rng, shape):
  policy, reference = _summed(rng, shape)
  desirable = rng.uniform(size=shape) < 0.5
  kl_policy, kl_reference = _summed(rng, shape)
  return policy, reference, desirable, kl_policy, kl_reference


def _unpaired_binary(rng, shape):
  policy, reference = _summed(rng, shape)
  return policy, reference, rng.uniform(size=shape) < 0.5


def _sampled(rng, shape):
  rewards = rng.normal(0.0, 2.0, shape)
  policy, reference = _summed(rng, shape)
  return _f32(rewards), policy, reference


# dpo_loss: four sequence-summed log-probability arrays.
PAIRED_LOGPS = Inputs(_dpo)
# simpo_loss, orpo_odds_ratio_loss: length-averaged log-probabilities.
AVERAGED_PAIRS = Inputs(_averaged_pairs)
# bradley_terry_loss: scalar rewards of the chosen and rejected answers, margins.
REWARD_PAIRS = Inputs(_reward_pairs)
# kto_loss: unpaired answers with desirability labels and mismatched KL pairs.
UNPAIRED_LOGPS = Inputs(_unpaired)
# bco_loss: unpaired answers with desirability labels.
UNPAIRED_BINARY = Inputs(_unpaired_binary)
# rlhf_loss: rewards and log-probabilities of sampled answers.
SAMPLED_LOGPS = Inputs(_sampled)
