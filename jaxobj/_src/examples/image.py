"""Example inputs for the image losses (SSIM, MS-SSIM, total variation).

Images are channels-last, ``[*batch, height, width, channels]``, with values in
[0, 1] (the default ``data_range``). Predictions are the targets plus noise, as
a restoration model's output would be. Kept small: these losses filter every
image, and the registry-wide tests call them many times.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

SIZE, CHANNELS = 12, 2
# MS-SSIM's five scales halve the image four times; the coarsest must still hold
# the 11-pixel window: 11 * 2**4 = 176.
MS_SIZE = 176


def _pair(rng, shape, size, channels):
  full = shape + (size, size, channels)
  targets = rng.uniform(0.0, 1.0, full)
  predictions = targets + 0.2 * rng.standard_normal(full)
  return predictions.astype(np.float32), targets.astype(np.float32)


def _images(rng, shape):
  return _pair(rng, shape, SIZE, CHANNELS)


def _ms_images(rng, shape):
  return _pair(rng, shape, MS_SIZE, 1)


def _single(rng, shape):
  """One image per row (a regularizer's input): smooth plus noise."""
  full = shape + (5, 6, CHANNELS)
  return (rng.uniform(0.0, 1.0, full).astype(np.float32),)


IMAGE_PAIRS = Inputs(_images)
MS_IMAGE_PAIRS = Inputs(_ms_images)
IMAGES = Inputs(_single)
