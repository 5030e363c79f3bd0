"""Example inputs for the calibration family.

The scoring rules and calibration metrics take the classification samplers
(``INTEGER_LABELS``, ``PROBABILITY_LABELS``, ``BINARY``); penalties on the
predicted distribution alone take logits only.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import NUM_CLASSES, Inputs, _mask_classes, _normal


def _logits(rng, shape):
  return (_normal(rng, shape + (NUM_CLASSES,), 2.0),)


def _logits_masked(rng, shape):
  (logits,) = _logits(rng, shape)
  keep = np.arange(NUM_CLASSES) == np.argmax(logits, -1)[..., None]
  return (_mask_classes(rng, logits, keep)[0],)


LOGITS = Inputs(_logits, _logits_masked)
