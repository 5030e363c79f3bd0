"""Training and comparing objectives from configs: what ``jaxobj run`` and
``jaxobj compare`` are made of.

- :mod:`~jaxobj.train.data`: synthetic data sets (nothing downloaded);
- :mod:`~jaxobj.train.models`: small Flax NNX models (MLP, CNN, dual encoder, VAE);
- :mod:`~jaxobj.train.metrics`: evaluation metrics beside the registry's;
- :mod:`~jaxobj.train.loop`: the training loop (``run(config)``);
- :mod:`~jaxobj.train.history`: metrics files (CSV or JSONL) and their history;
- :mod:`~jaxobj.train.plots`: loss-curve, weight and metric plots;
- :mod:`~jaxobj.train.diagnosis`: naming the pattern of a pair of loss curves;
- :mod:`~jaxobj.train.compare`: vmapped loss comparisons and fits;
- :mod:`~jaxobj.train.report`: the closing summary.
"""

from jaxobj.train.data import DATASETS, Dataset
from jaxobj.train.diagnosis import Diagnosis, diagnose, diagnose_history
from jaxobj.train.history import History, MetricsWriter
from jaxobj.train.models import MODELS, build_model

__all__ = [
  "DATASETS",
  "Dataset",
  "Diagnosis",
  "diagnose",
  "diagnose_history",
  "History",
  "MetricsWriter",
  "MODELS",
  "build_model",
]
