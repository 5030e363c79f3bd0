"""Declarative configs: YAML (or dicts) describing an objective, a model, data,
an optimizer and training settings, checked before anything runs.

>>> from jaxobj import config
>>> obj = config.objective_from_config(
...     {"terms": {"fit": {"loss": "huber_loss", "inputs": ["outputs", "batch.y"], "delta": 0.5}}})
>>> print(obj)
Objective
└── fit = huber_loss(outputs, batch.y, delta=0.5)
>>> config.objective_to_config(obj)
{'terms': {'fit': {'loss': 'huber_loss', 'inputs': ['outputs', 'batch.y'], 'delta': 0.5}}}

Configs are data: YAML is read with a safe loader (no tags that build Python
objects), losses are found by name in :mod:`jaxobj.registry`, optimizers in a
list of optax constructors (:data:`OPTIMIZERS`), schedules among the
objective algebra's factories. Every problem is a :class:`ConfigError` whose
one-line message names the key path and suggests close matches.

The ``data:`` and ``model:`` sections are checked against the generators and
models of :mod:`jaxobj.workloads`; this package never imports :mod:`jaxobj.train`,
which builds a run from a checked :class:`Config` (the layers are described in
:mod:`jaxobj.train`). Importing it starts no JAX backend and imports no YAML
parser (PyYAML loads when a file is first read), so the CLI can read a config's
``train.host_devices`` and still ask JAX for that many host devices.
"""

from jaxobj.config.errors import ConfigError
from jaxobj.config.experiment import (
  MAX_HOST_DEVICES,
  OPTIMIZERS,
  CompareLoss,
  CompareSettings,
  Config,
  FitSettings,
  Section,
  TrainSettings,
  build_optimizer,
  from_dict,
  load,
)
from jaxobj.config.files import available, config_dirs, resolve
from jaxobj.config.objective import (
  SCHEDULES,
  SCHEMES,
  TRANSFORMS,
  metrics_from_config,
  objective_from_config,
  objective_to_config,
  schedule_from_config,
  schedule_to_config,
)
from jaxobj.config.yamlio import dump, override, parse, read

__all__ = [
  "CompareLoss",
  "CompareSettings",
  "Config",
  "ConfigError",
  "FitSettings",
  "MAX_HOST_DEVICES",
  "OPTIMIZERS",
  "SCHEDULES",
  "SCHEMES",
  "Section",
  "TRANSFORMS",
  "TrainSettings",
  "available",
  "build_optimizer",
  "config_dirs",
  "dump",
  "from_dict",
  "load",
  "metrics_from_config",
  "objective_from_config",
  "objective_to_config",
  "override",
  "parse",
  "read",
  "resolve",
  "schedule_from_config",
  "schedule_to_config",
]
