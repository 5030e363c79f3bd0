"""Example inputs for the batch-structure embedding losses.

Labels as in :mod:`jaxobj._src.examples.metric_learning` (each class twice).
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs
from jaxobj._src.examples.metric_learning import EMBEDDING_DIM, _paired_labels


def _clustered(rng, shape):
  """Embeddings spread narrowly around one direction, so every pair's cosine
  lies near 1 and every distance near 0: a histogram of similarities with
  bins of width 0.02 then has positive and negative pairs in the same bins,
  and small margins are violated (losses that would be flat on spread-out
  inputs, with all their hinges inactive, are not flat here)."""
  direction = np.ones(EMBEDDING_DIM) / np.sqrt(EMBEDDING_DIM)
  x = direction + 0.1 * rng.standard_normal(shape + (EMBEDDING_DIM,))
  return x.astype(np.float32), _paired_labels(rng, shape)


CLUSTERED_LABELLED_EMBEDDINGS = Inputs(_clustered)
