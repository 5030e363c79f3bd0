"""Example inputs for the ranking losses and metrics.

Lists have the batch shape leading and the list axis last. Every drawn list
holds graded labels with at least one strictly ordered pair and a tie, so each
list has valid pairs (no list drops out of a mean) and tie handling is used.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

LIST_SIZE = 5
NUM_NEGATIVES = 4

# Relevance grades of one list, shuffled per list: two tied zeros.
_GRADES = np.array([3.0, 2.0, 1.0, 0.0, 0.0])


def _f32(a):
  return np.asarray(a, np.float32)


def _lists(rng, shape):
  scores = rng.standard_normal(shape + (LIST_SIZE,))
  labels = rng.permuted(np.broadcast_to(_GRADES, shape + (LIST_SIZE,)), axis=-1)
  return _f32(scores), _f32(labels)


def _lists_masked(rng, shape):
  """Lists where some irrelevant items are masked with a score of -inf."""
  scores, labels = _lists(rng, shape)
  drop = (labels == 0.0) & (rng.uniform(size=labels.shape) < 0.5)
  return _f32(np.where(drop, -np.inf, scores)), labels


def _positive_negative(rng, shape):
  positive = rng.normal(0.5, 1.0, shape)
  negative = rng.normal(-0.5, 1.0, shape + (NUM_NEGATIVES,))
  return _f32(positive), _f32(negative)


def _positive_negative_masked(rng, shape):
  """Negatives masked with -inf (never all of a row's) and one positive of
  -inf, a row with nothing to compare."""
  positive, negative = _positive_negative(rng, shape)
  drop = rng.uniform(size=negative.shape) < 0.4
  drop[..., 0] = False
  positive.reshape(-1)[:1] = -np.inf
  return positive, _f32(np.where(drop, -np.inf, negative))


# Scores [..., L] and graded relevance labels [..., L].
RANKED_LISTS = Inputs(_lists, _lists_masked)
# bpr_loss: one positive score per row and NUM_NEGATIVES negative scores.
POSITIVE_NEGATIVE = Inputs(_positive_negative, _positive_negative_masked)
