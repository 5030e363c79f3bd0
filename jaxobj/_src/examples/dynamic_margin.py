"""Example inputs for the dynamic soft margin loss.

``(embeddings, labels, histogram)``: the labelled batch of the metric-learning
samplers (every label twice) and a running histogram of ``NUM_BINS`` bins,
positive and summing to 1, shared by every row.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs
from jaxobj._src.examples.metric_learning import LABELLED_EMBEDDINGS

NUM_BINS = 10


def _with_histogram(rng, shape):
  x, y = LABELLED_EMBEDDINGS.make(rng, shape)
  h = rng.uniform(0.1, 1.0, NUM_BINS)
  return x, y, (h / h.sum()).astype(np.float32)


HISTOGRAM_LABELLED_EMBEDDINGS = Inputs(_with_histogram, batched=2)
