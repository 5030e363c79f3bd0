"""Example inputs for the image-registration losses: small channels-last fields and images.

Deformation fields are ``batch + (H, W, 2)`` (one displacement component per
spatial axis, channels last); image pairs are ``batch + (H, W, 1)`` with
intensities in [0, 1] and predictions the targets plus noise, as a warped
moving image would be. Kept tiny: every registered loss runs through the
registry-wide tests many times. The bending energy's second differences need
at least 5 pixels along each axis.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

FIELD_SIZE, IMAGE_SIZE = 5, 6


def _fields(rng, shape):
  full = shape + (FIELD_SIZE, FIELD_SIZE, 2)
  return (rng.standard_normal(full).astype(np.float32),)


def _images(rng, shape):
  full = shape + (IMAGE_SIZE, IMAGE_SIZE, 1)
  targets = rng.uniform(0.05, 0.95, full)
  # Inside (0, 1), away from where the mutual information clips intensities.
  predictions = np.clip(targets + 0.2 * rng.standard_normal(full), 0.02, 0.98)
  return predictions.astype(np.float32), targets.astype(np.float32)


DEFORMATION_FIELDS = Inputs(_fields)
REGISTRATION_PAIRS = Inputs(_images)
