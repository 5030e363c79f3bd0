"""Example inputs for the metric-learning losses.

Embeddings have the batch shape first and a small feature axis last. The
label-based samplers give every label exactly twice in the (flattened) batch,
so in a full batch every anchor has a positive and a negative; slicing rows
out can leave anchors without one, which the losses must handle.
"""

from __future__ import annotations

import math

import numpy as np

from jaxobj._src.examples import Inputs

EMBEDDING_DIM = 4


def _embeddings(rng, shape):
  return rng.standard_normal(shape + (EMBEDDING_DIM,)).astype(np.float32)


def _paired_labels(rng, shape):
  """Integer labels with each class twice (once if the batch has one row)."""
  n = math.prod(shape)
  labels = np.arange(n) % max(n // 2, 1)
  return rng.permutation(labels).reshape(shape).astype(np.int32)


def _pairs_binary(rng, shape):
  return (
    _embeddings(rng, shape),
    _embeddings(rng, shape),
    rng.integers(0, 2, shape).astype(np.float32),
  )


def _pairs_signed(rng, shape):
  return (
    _embeddings(rng, shape),
    _embeddings(rng, shape),
    (2 * rng.integers(0, 2, shape) - 1).astype(np.float32),
  )


def _triplets(rng, shape):
  return _embeddings(rng, shape), _embeddings(rng, shape), _embeddings(rng, shape)


def _labelled(rng, shape):
  return _embeddings(rng, shape), _paired_labels(rng, shape)


def _anchor_positive_labels(rng, shape):
  anchors = _embeddings(rng, shape)
  positives = anchors + 0.5 * _embeddings(rng, shape)
  return anchors, positives.astype(np.float32), _paired_labels(rng, shape)


def margin_softmax(rng, shape, num_classes=5):
  """``(embeddings, labels, centers)`` for ArcFace/CosFace; ``centers`` is
  ``(num_classes, D)`` and carries no batch axis."""
  return (
    _embeddings(rng, shape),
    rng.integers(0, num_classes, shape).astype(np.int32),
    rng.standard_normal((num_classes, EMBEDDING_DIM)).astype(np.float32),
  )


PAIRS_BINARY = Inputs(_pairs_binary)
PAIRS_SIGNED = Inputs(_pairs_signed)
TRIPLETS = Inputs(_triplets)
LABELLED_EMBEDDINGS = Inputs(_labelled)
ANCHOR_POSITIVE_LABELS = Inputs(_anchor_positive_labels)
MARGIN_SOFTMAX = Inputs(margin_softmax, batched=2)  # class centres are shared by all rows
