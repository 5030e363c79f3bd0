"""Example inputs for the losses that match a peer library's (optax, Keras, torch).

Most reuse the shared samplers; these cover what those do not: scores close
enough together that sparsemax keeps several classes in its support (so its
loss has curvature at the draws), multi-label targets, ranking pairs with ±1
targets, and distances with ±1 similarity labels.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import NUM_CLASSES, Inputs


def _close_scores(rng, shape):
  """Integer labels and scores of scale 0.4: sparsemax's support holds several classes."""
  return (
    (0.4 * rng.standard_normal(shape + (NUM_CLASSES,))).astype(np.float32),
    rng.integers(0, NUM_CLASSES, shape).astype(np.int32),
  )


def _close_scores_masked(rng, shape):
  scores, labels = _close_scores(rng, shape)
  drop = (rng.uniform(size=scores.shape) < 0.4) & (np.arange(NUM_CLASSES) != labels[..., None])
  return np.where(drop, -np.inf, scores).astype(np.float32), labels


def _binary_close(rng, shape):
  """Logits of scale 0.5 and 0/1 labels: the sparse sigmoid is inside (0, 1) at most."""
  return (
    (0.5 * rng.standard_normal(shape)).astype(np.float32),
    rng.integers(0, 2, shape).astype(np.float32),
  )


def _multilabel(rng, shape):
  """Scores ``[..., K]`` and 0/1 multi-label targets of the same shape."""
  scores = rng.standard_normal(shape + (NUM_CLASSES,)).astype(np.float32)
  return scores, rng.integers(0, 2, shape + (NUM_CLASSES,)).astype(np.float32)


def _multilabel_indices(rng, shape):
  """Scores ``[..., K]`` and torch's multilabel_margin targets: the target
  classes first, then -1 padding (at least one target per row)."""
  scores = rng.standard_normal(shape + (NUM_CLASSES,)).astype(np.float32)
  n = int(np.prod(shape))
  targets = np.full((n, NUM_CLASSES), -1, np.int32)
  for i in range(n):
    k = rng.integers(1, NUM_CLASSES)
    targets[i, :k] = rng.permutation(NUM_CLASSES)[:k]
  return scores, targets.reshape(shape + (NUM_CLASSES,))


def _ranking_pairs(rng, shape):
  """Two score arrays and ±1 targets (which of the two should rank higher)."""
  return (
    rng.standard_normal(shape).astype(np.float32),
    rng.standard_normal(shape).astype(np.float32),
    (2 * rng.integers(0, 2, shape) - 1).astype(np.float32),
  )


def _distances_signed(rng, shape):
  """Non-negative distances and ±1 labels (similar / dissimilar pairs)."""
  return (
    rng.uniform(0.0, 2.0, shape).astype(np.float32),
    (2 * rng.integers(0, 2, shape) - 1).astype(np.float32),
  )


def _probability_targets(rng, shape):
  """Scores and one-hot targets ``[..., K]`` (Keras's categorical_hinge)."""
  scores = rng.standard_normal(shape + (NUM_CLASSES,)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, shape)
  return scores, np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def _log_probabilities(rng, shape):
  """Log-probabilities ``[..., K]`` (a log-softmax) and integer labels."""
  z = 2.0 * rng.standard_normal(shape + (NUM_CLASSES,))
  z = z - z.max(-1, keepdims=True)
  log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return log_p.astype(np.float32), rng.integers(0, NUM_CLASSES, shape).astype(np.int32)


CLOSE_SCORES = Inputs(_close_scores, _close_scores_masked)
BINARY_CLOSE = Inputs(_binary_close)
MULTILABEL = Inputs(_multilabel)
MULTILABEL_INDICES = Inputs(_multilabel_indices)
RANKING_PAIRS = Inputs(_ranking_pairs)
DISTANCES_SIGNED = Inputs(_distances_signed)
ONE_HOT = Inputs(_probability_targets)
LOG_PROBABILITIES = Inputs(_log_probabilities)
