"""Valid example inputs for each kind of loss signature.

A registered loss names the kind of positional inputs it takes; the conformance
tests draw from it to check the contract, and comparisons use it to build
inputs. Every draw has the batch shape as its leading axes, so slicing the
batch slices every input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

NUM_CLASSES = 5


@dataclasses.dataclass(frozen=True)
class Inputs:
  """A sampler ``make(rng, batch_shape) -> arrays`` of valid positional inputs.

  ``masked_classes``, when present, draws logits with some non-target classes
  at ``-inf`` (vocabulary masking), which a softmax loss must handle.
  ``batched`` is the number of leading inputs that carry the batch axes (all
  of them when None); later ones are shared by every row, such as the class
  centres of a margin softmax, and are not sliced by the mask tests.
  """

  make: Callable[[np.random.Generator, tuple[int, ...]], tuple[np.ndarray, ...]]
  masked_classes: (
    Callable[[np.random.Generator, tuple[int, ...]], tuple[np.ndarray, ...]] | None
  ) = None
  batched: int | None = None


def _normal(rng, shape, scale=1.0):
  return (scale * rng.standard_normal(shape)).astype(np.float32)


def _pointwise(rng, shape):
  return _normal(rng, shape), _normal(rng, shape)


def _positive(rng, shape):
  return (
    rng.uniform(0.0, 3.0, shape).astype(np.float32),
    rng.uniform(0.5, 2.0, shape).astype(np.float32),
  )


def _gaussian(rng, shape):
  return (_normal(rng, shape), _normal(rng, shape), rng.uniform(0.5, 2.0, shape).astype(np.float32))


def _log_rate_counts(rng, shape):
  return _normal(rng, shape), rng.poisson(2.0, shape).astype(np.float32)


def _binary(rng, shape):
  return _normal(rng, shape, 2.0), rng.integers(0, 2, shape).astype(np.float32)


def _signed(rng, shape):
  return _normal(rng, shape), (2 * rng.integers(0, 2, shape) - 1).astype(np.float32)


def _integer(rng, shape):
  return (
    _normal(rng, shape + (NUM_CLASSES,), 2.0),
    rng.integers(0, NUM_CLASSES, shape).astype(np.int32),
  )


def _probabilities(rng, shape):
  logits = _normal(rng, shape + (NUM_CLASSES,), 2.0)
  z = _normal(rng, shape + (NUM_CLASSES,), 2.0)
  p = np.exp(z - z.max(-1, keepdims=True))
  return logits, (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _mask_classes(rng, logits, keep):
  """Sets random classes to -inf, never those in ``keep`` (a boolean [..., K])."""
  drop = (rng.uniform(size=logits.shape) < 0.4) & ~keep
  return np.where(drop, -np.inf, logits).astype(np.float32), drop


def _integer_masked(rng, shape):
  logits, labels = _integer(rng, shape)
  keep = np.arange(NUM_CLASSES) == labels[..., None]
  return _mask_classes(rng, logits, keep)[0], labels


def _probabilities_masked(rng, shape):
  logits, probs = _probabilities(rng, shape)
  keep = np.arange(NUM_CLASSES) == probs.argmax(-1)[..., None]
  logits, drop = _mask_classes(rng, logits, keep)
  probs = np.where(drop, 0.0, probs)
  return logits, (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


POINTWISE = Inputs(_pointwise)
POSITIVE = Inputs(_positive)
GAUSSIAN = Inputs(_gaussian)
LOG_RATE_COUNTS = Inputs(_log_rate_counts)
BINARY = Inputs(_binary)
SIGNED = Inputs(_signed)
INTEGER_LABELS = Inputs(_integer, _integer_masked)
PROBABILITY_LABELS = Inputs(_probabilities, _probabilities_masked)
