"""Example inputs for the robust losses: residuals with outliers.

Predictions are targets plus Student-t noise (3 degrees of freedom), so a draw
holds inliers at the unit scale and a few residuals of 5-20 that the robust
losses are meant to discount.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs


def _heavy_tailed(rng, shape):
  targets = rng.standard_normal(shape)
  predictions = targets + rng.standard_t(3.0, shape)
  return predictions.astype(np.float32), targets.astype(np.float32)


RESIDUALS = Inputs(_heavy_tailed)
