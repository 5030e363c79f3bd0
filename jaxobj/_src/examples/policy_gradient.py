"""Example inputs for the policy-gradient losses.

One row is one sampled completion of ``TOKENS`` tokens: per-token
log-probabilities of the policy, of the behaviour (old) policy a little away
from it (so that some ratios are clipped and some are not), one advantage per
completion, and per-token log-probabilities of a reference model. All
log-probabilities are valid ones (below 0), and scaling the policy's by a
large positive factor (the conformance test's extreme inputs, a very stale
behaviour policy) keeps them valid.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

TOKENS = 5


def _f32(a):
  return np.asarray(a, np.float32)


def _completions(rng, shape):
  tokens = tuple(shape) + (TOKENS,)
  policy = -rng.uniform(0.05, 3.0, tokens)
  old = np.minimum(policy + rng.normal(0.0, 0.15, tokens), -0.01)
  advantages = rng.normal(0.0, 1.0, shape)
  reference = np.minimum(policy + rng.normal(0.0, 0.3, tokens), -0.01)
  return _f32(policy), _f32(old), _f32(advantages), _f32(reference)


# policy_gradient_loss: policy, old and reference log-probabilities (..., T), advantages (...).
COMPLETIONS = Inputs(_completions)
