"""Example inputs for optimal-transport losses: weighted point clouds.

``x`` ``[*batch, n, d]`` and ``y`` ``[*batch, m, d]`` with probability weights
``[*batch, n]`` and ``[*batch, m]`` (positive, summing to 1 per row).
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

N, M, DIM = 4, 5, 2


def _weights(rng, shape, n):
  w = rng.uniform(0.5, 1.5, shape + (n,))
  return (w / w.sum(-1, keepdims=True)).astype(np.float32)


def _clouds(rng, shape):
  x = rng.standard_normal(shape + (N, DIM)).astype(np.float32)
  y = (0.8 * rng.standard_normal(shape + (M, DIM)) + 0.5).astype(np.float32)
  return x, y, _weights(rng, shape, N), _weights(rng, shape, M)


WEIGHTED_POINT_CLOUDS = Inputs(_clouds)
