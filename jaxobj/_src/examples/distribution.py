"""Example inputs for the distribution family (divergences, Wasserstein, MMD).

Batch axes lead; the distribution, histogram or sample axes trail.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import (
  NUM_CLASSES,
  Inputs,
  _mask_classes,
  _normal,
  _probabilities,
  _probabilities_masked,
)

NUM_BINS = 6
NUM_SAMPLES, NUM_TARGET_SAMPLES = 7, 5
SET_SIZE, TARGET_SET_SIZE, DIM = 4, 5, 3


def _log_softmax(x):
  with np.errstate(invalid="ignore"):
    m = np.max(x, axis=-1, keepdims=True)
    out = x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
  return out.astype(np.float32)


def _log(p):
  with np.errstate(divide="ignore"):
    return np.log(p).astype(np.float32)


def _log_probs(rng, shape):
  logits, probs = _probabilities(rng, shape)
  return _log_softmax(logits), probs


def _log_probs_masked(rng, shape):
  logits, probs = _probabilities_masked(rng, shape)
  return _log_softmax(logits), probs


def _log_pairs(rng, shape):
  log_p, probs = _log_probs(rng, shape)
  return log_p, _log(probs)


def _log_pairs_masked(rng, shape):
  log_p, probs = _log_probs_masked(rng, shape)
  return log_p, _log(probs)


def _unnormalized(rng, shape):
  """Unnormalized measures: log-predictions <= 0 (so scaling them up cannot
  overflow ``exp``) and positive targets that do not sum to 1."""
  full = shape + (NUM_CLASSES,)
  return (_log(rng.uniform(0.05, 1.0, full)), rng.uniform(0.0, 1.5, full).astype(np.float32))


def _unnormalized_masked(rng, shape):
  log_p, targets = _unnormalized(rng, shape)
  keep = np.arange(NUM_CLASSES) == np.argmax(targets, -1)[..., None]
  log_p, drop = _mask_classes(rng, log_p, keep)
  return log_p, np.where(drop, 0.0, targets).astype(np.float32)


def _logit_pairs(rng, shape):
  full = shape + (NUM_CLASSES,)
  return _normal(rng, full, 2.0), _normal(rng, full, 2.0)


def _logit_pairs_masked(rng, shape):
  student, teacher = _logit_pairs(rng, shape)
  keep = np.arange(NUM_CLASSES) == np.argmax(teacher, -1)[..., None]
  student, drop = _mask_classes(rng, student, keep)
  return student, np.where(drop, -np.inf, teacher).astype(np.float32)


def _histograms(rng, shape):
  """Two probability histograms per batch element, some bins empty."""

  def draw():
    h = rng.uniform(0.0, 1.0, shape + (NUM_BINS,))
    h = np.where(rng.uniform(size=h.shape) < 0.25, 0.0, h)
    h[..., 0] += 1e-3  # never an all-empty histogram
    return (h / h.sum(-1, keepdims=True)).astype(np.float32)

  return draw(), draw()


def _samples_1d(rng, shape):
  return (
    _normal(rng, shape + (NUM_SAMPLES,)),
    _normal(rng, shape + (NUM_TARGET_SAMPLES,), 1.5) + np.float32(0.5),
  )


def _sample_sets(rng, shape):
  return (
    _normal(rng, shape + (SET_SIZE, DIM)),
    _normal(rng, shape + (TARGET_SET_SIZE, DIM)) + np.float32(0.5),
  )


LOG_PROBABILITIES = Inputs(_log_probs, _log_probs_masked)
LOG_PROBABILITY_PAIRS = Inputs(_log_pairs, _log_pairs_masked)
UNNORMALIZED = Inputs(_unnormalized, _unnormalized_masked)
LOGIT_PAIRS = Inputs(_logit_pairs, _logit_pairs_masked)
HISTOGRAMS = Inputs(_histograms)
SAMPLES_1D = Inputs(_samples_1d)
SAMPLE_SETS = Inputs(_sample_sets)
