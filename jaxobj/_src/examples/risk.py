"""Example inputs for sequence-level risk losses: candidates per source.

Each row holds ``K`` sampled candidate sequences: their log-probabilities under
the model (negative, as sums of token log-probabilities are) and their task
costs in [0, 1] (such as 1 - sentence BLEU). The masked variant pads some
candidates with ``-inf`` log-probabilities, never all of a row.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

CANDIDATES = 4


def _candidates(rng, shape):
  full = shape + (CANDIDATES,)
  log_probs = -rng.uniform(1.0, 30.0, full)
  return log_probs.astype(np.float32), rng.uniform(0.0, 1.0, full).astype(np.float32)


def _padded(rng, shape):
  log_probs, costs = _candidates(rng, shape)
  drop = rng.uniform(size=log_probs.shape) < 0.4
  drop[..., 0] = False
  return np.where(drop, -np.inf, log_probs).astype(np.float32), costs


SAMPLED_CANDIDATES = Inputs(_candidates, _padded)
