"""Training and comparing objectives from configs: what ``jaxobj run`` and
``jaxobj compare`` are made of.

- :mod:`~jaxobj.train.loop`: the training loop (``run(config)``);
- :mod:`~jaxobj.train.history`: metrics files (CSV or JSONL) and their history,
  recorded by ``jaxobj run`` or step by step in your own loop (``History.record``);
- :mod:`~jaxobj.train.plots`: loss-curve, weight, learned-value and metric plots,
  each a matplotlib ``Figure``;
- :mod:`~jaxobj.train.diagnosis`: naming the pattern of a pair of loss curves,
  for any recorded history;
- :mod:`~jaxobj.train.compare`: vmapped loss comparisons and fits;
- :mod:`~jaxobj.train.report`: the closing summary;
- :mod:`~jaxobj.train.devices`: asking for host devices before JAX starts;
- :mod:`~jaxobj.train.launch`: several JAX processes on one machine, joined into one
  run (``launch.launch``; ``initialize_from_env`` in each of them);
- :mod:`~jaxobj.train.distributed`: one process of a multi-process run (joining,
  agreeing on Ctrl-C, noticing a lost peer);
- :mod:`~jaxobj.train.checkpoint`: orbax checkpoints of the whole training state,
  for ``jaxobj run --resume``;
- :mod:`~jaxobj.train.interrupt`: Ctrl-C as a flag read between compiled calls.

Layers. Imports go one way: ``jaxobj.cli`` -> ``jaxobj.train`` ->
``jaxobj.config`` -> ``jaxobj.objective`` / ``jaxobj.registry`` / ``jaxobj.losses``,
and both ``jaxobj.train`` and ``jaxobj.config`` import the data sets and models
from :mod:`jaxobj.workloads`, which imports neither. The config layer checks a
config (its ``data:`` and ``model:`` sections against the signatures in
:mod:`jaxobj.workloads`) and builds its objective; the trainer takes the checked
:class:`~jaxobj.config.Config` and builds everything else. Nothing in
``jaxobj.config`` imports ``jaxobj.train``, and importing either package starts
no JAX backend (so the CLI can still set the number of host devices after
importing them). ``tests/test_architecture.py`` checks these rules.
"""

from jaxobj.train.diagnosis import (
  PATTERNS,
  Diagnosis,
  diagnose,
  diagnose_history,
  diagnosis_curves,
)
from jaxobj.train.history import History, MetricsWriter
from jaxobj.train.launch import LaunchError, LaunchResult, free_port, initialize_from_env
from jaxobj.train.plots import (
  plot_learned,
  plot_loss_curves,
  plot_metrics,
  plot_run,
  plot_weights,
  save_figure,
)
from jaxobj.workloads.data import DATASETS, Dataset
from jaxobj.workloads.models import MODELS, build_model

__all__ = [
  "DATASETS",
  "Dataset",
  "Diagnosis",
  "diagnose",
  "diagnose_history",
  "History",
  "LaunchError",
  "LaunchResult",
  "MetricsWriter",
  "MODELS",
  "diagnosis_curves",
  "free_port",
  "initialize_from_env",
  "PATTERNS",
  "build_model",
  "plot_learned",
  "plot_loss_curves",
  "plot_metrics",
  "plot_run",
  "plot_weights",
  "save_figure",
]
