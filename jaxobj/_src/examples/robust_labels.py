"""Example inputs for the metric surrogates and the soft-ranking losses.

The noisy-label losses take the classification samplers (``INTEGER_LABELS``)
and the AUC and average-precision surrogates those of binary and ranking
losses; what is new here is a multi-label sampler (``[..., K]`` logits and 0/1
labels) and paired real-valued lists (predictions and targets ``[..., L]``)
for rank correlations.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import NUM_CLASSES, Inputs, _mask_classes, _normal

LIST_SIZE = 6


def _multilabel(rng, shape):
  logits = _normal(rng, shape + (NUM_CLASSES,), 2.0)
  labels = rng.integers(0, 2, shape + (NUM_CLASSES,)).astype(np.float32)
  labels[..., 0] = 1.0  # every row has a positive: its F-score is not 0 / 0
  return logits, labels


def _multilabel_masked(rng, shape):
  """Negative classes masked with ``-inf`` logits (never predicted)."""
  logits, labels = _multilabel(rng, shape)
  return _mask_classes(rng, logits, labels > 0)[0], labels


def _paired_lists(rng, shape):
  predictions = _normal(rng, shape + (LIST_SIZE,))
  # Targets correlated with the predictions, with a tie in every list.
  targets = np.round(predictions + _normal(rng, shape + (LIST_SIZE,)), 1)
  targets[..., 1] = targets[..., 0]
  return predictions, targets.astype(np.float32)


# Multi-label logits [..., K] and 0/1 labels [..., K] (a positive in every row).
MULTILABEL = Inputs(_multilabel, _multilabel_masked)
# Real predictions [..., L] and targets [..., L] to rank-correlate.
PAIRED_LISTS = Inputs(_paired_lists)
