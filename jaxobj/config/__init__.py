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

The names below load on first use, so ``jaxobj.config.yamlio`` and
``jaxobj.config.files`` can be read before JAX starts (the CLI sets the number
of host devices from a config before any JAX computation).
"""

import importlib

_EXPORTS = {
  "jaxobj.config.errors": ("ConfigError",),
  "jaxobj.config.files": ("available", "config_dirs", "resolve"),
  "jaxobj.config.yamlio": ("dump", "override", "parse", "read"),
  "jaxobj.config.experiment": (
    "OPTIMIZERS",
    "CompareLoss",
    "CompareSettings",
    "Config",
    "FitSettings",
    "Section",
    "TrainSettings",
    "build_optimizer",
    "from_dict",
    "load",
  ),
  "jaxobj.config.objective": (
    "SCHEDULES",
    "SCHEMES",
    "TRANSFORMS",
    "metrics_from_config",
    "objective_from_config",
    "objective_to_config",
    "schedule_from_config",
    "schedule_to_config",
  ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name):
  if name in _WHERE:
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'jaxobj.config' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_WHERE))
