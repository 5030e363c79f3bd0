"""Example inputs for the proxy and classifier-based metric-learning losses.

``(embeddings, labels, proxies)``: embeddings ``batch + (D,)``, integer labels
``batch`` in ``[0, C)``, and proxies (class centres) shared by every row:
``(C, D)``, or ``(C, K, D)`` with ``K`` sub-centres per class. Tiny on purpose
(``C = 3``, ``D = 3``): every registered loss runs through the registry-wide
tests.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

NUM_CLASSES = 3
SUB_CENTERS = 2
DIM = 3


def _embeddings_and_labels(rng, shape):
  return (
    rng.standard_normal(shape + (DIM,)).astype(np.float32),
    rng.integers(0, NUM_CLASSES, shape).astype(np.int32),
  )


def _proxies(rng, shape):
  x, y = _embeddings_and_labels(rng, shape)
  return x, y, rng.standard_normal((NUM_CLASSES, DIM)).astype(np.float32)


def _sub_centers(rng, shape):
  x, y = _embeddings_and_labels(rng, shape)
  return x, y, rng.standard_normal((NUM_CLASSES, SUB_CENTERS, DIM)).astype(np.float32)


PROXIES = Inputs(_proxies, batched=2)  # the proxies are shared by all rows
MULTI_PROXIES = Inputs(_sub_centers, batched=2)
