"""Example inputs for the segmentation losses: small channels-last images.

Logits are ``batch + (H, W, C)`` and label maps ``batch + (H, W)`` (integer
class indices); the binary losses take ``batch + (H, W)`` logits and 0/1 masks.
Every draw makes at least one image with an absent class and one pixel of each
label kind, so the empty-class paths are exercised by the conformance tests.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

HEIGHT, WIDTH, NUM_CLASSES = 4, 3, 3


def _logits(rng, shape, scale=2.0):
  return (scale * rng.standard_normal(shape)).astype(np.float32)


def _label_map(rng, shape):
  labels = rng.integers(0, NUM_CLASSES, shape + (HEIGHT, WIDTH))
  flat = labels.reshape((-1, HEIGHT, WIDTH))
  if flat.shape[0]:
    flat[0] = np.where(flat[0] == NUM_CLASSES - 1, 0, flat[0])  # an absent class
  return flat.reshape(labels.shape).astype(np.int32)


def _multiclass(rng, shape):
  logits = _logits(rng, shape + (HEIGHT, WIDTH, NUM_CLASSES))
  return logits, _label_map(rng, shape)


def _multiclass_masked(rng, shape):
  """Some classes at ``-inf`` (ruled out), never the pixel's own label."""
  logits, labels = _multiclass(rng, shape)
  keep = np.arange(NUM_CLASSES) == labels[..., None]
  drop = (rng.uniform(size=logits.shape) < 0.3) & ~keep
  return np.where(drop, -np.inf, logits).astype(np.float32), labels


def _binary(rng, shape):
  logits = _logits(rng, shape + (HEIGHT, WIDTH))
  masks = rng.integers(0, 2, shape + (HEIGHT, WIDTH))
  flat = masks.reshape((-1, HEIGHT, WIDTH))
  if flat.shape[0]:
    flat[0] = 0  # an empty mask
  return logits, flat.reshape(masks.shape).astype(np.float32)


SEGMENTATION_LABELS = Inputs(_multiclass, _multiclass_masked)
SEGMENTATION_BINARY = Inputs(_binary)
