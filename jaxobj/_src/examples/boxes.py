"""Example inputs for the bounding-box losses: pairs of boxes ``(x1, y1, x2, y2)``.

Predicted boxes are the target boxes moved and resized a little, so most pairs
overlap and some do not (the GIoU penalty's case).
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs


def _boxes(rng, shape):
  corner = rng.uniform(0.0, 4.0, shape + (2,))
  size = rng.uniform(0.5, 2.0, shape + (2,))
  targets = np.concatenate([corner, corner + size], -1)
  moved = corner + rng.normal(0.0, 0.8, shape + (2,))
  resized = size * rng.uniform(0.5, 1.5, shape + (2,))
  predictions = np.concatenate([moved, moved + resized], -1)
  return predictions.astype(np.float32), targets.astype(np.float32)


BOX_PAIRS = Inputs(_boxes)
