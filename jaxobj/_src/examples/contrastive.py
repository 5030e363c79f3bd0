"""Example inputs for the contrastive and self-supervised losses.

Pairwise losses take rows of embeddings: the batch shape leads and the
embedding axis is last, so slicing the batch slices the rows of the similarity
matrix (and, the losses guarantee, its columns). Batch-statistic losses take
independent problems of ``n`` samples: the batch shape leads, then
``(n, D)``.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs, _normal

DIM = 4
GROUPS = 3
SAMPLES = 8


def _views(rng, shape):
  """Two correlated views of the same items: matching rows are positives."""
  a = _normal(rng, shape + (DIM,))
  return a, (a + 0.5 * _normal(rng, shape + (DIM,))).astype(np.float32)


def _labeled(rng, shape):
  """Embeddings and group labels; items with equal labels are positives."""
  labels = rng.integers(0, GROUPS, shape).astype(np.int32)
  centres = _normal(rng, (GROUPS, DIM), 2.0)
  x = centres[labels] + _normal(rng, shape + (DIM,))
  return x.astype(np.float32), labels


def _sets(rng, shape):
  """Two views of ``SAMPLES`` samples per problem, for batch-statistic losses."""
  a = _normal(rng, shape + (SAMPLES, DIM))
  return a, (a + 0.5 * _normal(rng, shape + (SAMPLES, DIM))).astype(np.float32)


VIEWS = Inputs(_views)
LABELED_EMBEDDINGS = Inputs(_labeled)
SAMPLE_SETS = Inputs(_sets)
