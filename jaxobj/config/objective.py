"""Objectives as config data, and back: ``objective_from_config`` / ``objective_to_config``.

An objective config is a tree of named nodes. Every node is a mapping of one
of three kinds, told apart by its keys:

- a **term**: ``loss: <registry name>`` (or ``regularizer: <name>``), its
  ``inputs`` (paths into the data passed to ``apply``, such as ``outputs`` or
  ``batch.y``; a regularizer reads ``model`` unless told otherwise; every input
  the loss needs is named, and ``null`` asks for zeros where the loss takes
  them, as regression ``targets``: ``inputs: [outputs, null]``), the
  contract's ``where`` / ``weights`` (paths), ``reduction`` (``mean`` or
  ``sum``), and the loss's hyperparameters by name;
- a **sum** of named children: ``terms: {name: node, ...}`` (a named group
  below the root: its terms are logged as ``<group>/<term>``);
- a **multi-task** node: ``tasks: {name: node, ...}`` and a ``scheme``
  (``static_weights``, ``uncertainty_weighting``, ``dynamic_weight_average``,
  ``famo``, ``random_loss_weighting``, ``geometric_mean``; a name, or a mapping
  with ``name`` and the scheme's fields).

Any node may carry ``weight`` (a number, a schedule, or a list of them, which
multiply) and ``stop_gradient: true``. Values that are not plain data are
mappings with one marker key:

- ``{schedule: linear_warmup, start: 0.0, end: 1.0, steps: 100}`` — a schedule
  of the training step (``constant``, ``linear_warmup``, ``cosine_warmup``,
  ``cyclical``, ``piecewise``), as a weight or a hyperparameter;
- ``{learnable: 1.0, positive: true}`` — a value the objective learns
  (``transform``: ``sigmoid``, ``softplus``, ``robust_alpha_from_latent``,
  ``robust_scale_from_latent``);
- ``{ref: batch.z}`` — a hyperparameter read from the data;
- a regularizer's ``mask``: ``matrices_only`` or ``{exclude: [bias, scale]}``.

Example::

    terms:
      fit: {loss: huber_loss, inputs: [outputs, batch.y], delta: 0.5}
      decay:
        regularizer: l2_penalty
        mask: {exclude: [bias]}
        weight: {schedule: linear_warmup, start: 0.0, end: 1.0e-4, steps: 100}

Losses are looked up in :mod:`jaxobj.registry` by name (never evaluated), so a
config runs no code; unknown names answer with close matches.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxobj import registry, regularizers
from jaxobj.config import schema, yamlio
from jaxobj.config.errors import ConfigError, describe, join, suggest, unknown
from jaxobj.losses import robust
from jaxobj.objective import core, schedules, weighting
from jaxobj.objective.core import Group, Learnable, Ref, Scaled, StopGradient, Sum, Term

__all__ = [
  "objective_from_config",
  "objective_to_config",
  "metrics_from_config",
  "registered_spec",
  "schedule_from_config",
  "schedule_to_config",
  "SCHEDULES",
  "SCHEMES",
  "TRANSFORMS",
]

SCHEDULES = {
  "constant": schedules.constant,
  "linear_warmup": schedules.linear_warmup,
  "cosine_warmup": schedules.cosine_warmup,
  "cyclical": schedules.cyclical,
  "piecewise": schedules.piecewise,
}

SCHEMES = {
  "static_weights": weighting.StaticWeights,
  "uncertainty_weighting": weighting.UncertaintyWeighting,
  "dynamic_weight_average": weighting.DynamicWeightAverage,
  "famo": weighting.FAMO,
  "random_loss_weighting": weighting.RandomLossWeighting,
  "geometric_mean": weighting.GeometricMean,
}

TRANSFORMS = {
  "sigmoid": jax.nn.sigmoid,
  "softplus": jax.nn.softplus,
  "robust_alpha_from_latent": robust.robust_alpha_from_latent,
  "robust_scale_from_latent": robust.robust_scale_from_latent,
}

MASKS = {"matrices_only": regularizers.matrices_only}

_TERM_KEYS = ("loss", "regularizer", "metric", "inputs", "where", "weights", "reduction")
_NODE_KEYS = ("weight", "stop_gradient")
_KINDS = ("loss", "regularizer", "terms", "tasks")


# ---------------------------------------------------------------- config -> objective


def objective_from_config(config: Any, path: str = "objective") -> core.Objective:
  """Builds the objective a config describes (see the module docstring).

  Raises:
    ConfigError: naming the key path of the first problem.
  """
  cfg = schema.mapping(config, path)
  if not cfg:
    raise ConfigError(
      path,
      "an objective needs terms: e.g. terms: {fit: {loss: "
      "squared_error, inputs: [outputs, batch.y]}}.",
    )
  return _node(cfg, path, name=None, root=True)


def _node(
  cfg: Any, path: str, name: str | None, root: bool = False, grouped: bool = True
) -> core.Objective:
  cfg = schema.mapping(cfg, path)
  kinds = [k for k in _KINDS if k in cfg]
  if not kinds:
    close = [k for k in cfg if suggest(k, _KINDS)]
    hint = suggest(close[0], _KINDS) if close else ""
    raise ConfigError(
      path,
      "each objective node needs one of 'loss' or 'regularizer' "
      f"(a term), 'terms' (a sum) or 'tasks' (multi-task); it has "
      f"{', '.join(map(repr, cfg)) or 'no keys'}.{hint}",
    )
  if len(kinds) > 1 and not (set(kinds) <= {"loss", "regularizer"}):
    raise ConfigError(path, f"a node is one kind: it has both {kinds[0]!r} and {kinds[1]!r}.")
  kind = kinds[0]
  weight = cfg.pop("weight", None)
  stop = schema.check(
    cfg.pop("stop_gradient", False), schema.Param(tags=("bool",)), join(path, "stop_gradient")
  )
  if kind in ("loss", "regularizer"):
    obj = _term(cfg, path, name)
  elif kind == "terms":
    obj = _sum(cfg, path, name, root, grouped)
  else:
    obj = _multitask(cfg, path, name)
  if stop:
    obj = core.stop_gradient(obj)
  if weight is not None:
    for i, w in enumerate(reversed(weight if isinstance(weight, list) else [weight])):
      wpath = (
        join(path, "weight")
        if not isinstance(weight, list)
        else join(join(path, "weight"), len(weight) - 1 - i)
      )
      obj = _weight(w, wpath) * obj
  return obj


def _weight(value, path):
  if isinstance(value, Mapping):
    return schedule_from_config(value, path)
  return schema.number(value, path)


def _children(cfg, key, path) -> dict[str, Any]:
  children = schema.mapping(cfg.get(key), join(path, key))
  if not children:
    raise ConfigError(join(path, key), f"{key} is empty; name at least one.")
  for k in children:
    if "/" in k or not k:
      raise ConfigError(join(path, key), f"{k!r}: names are non-empty and have no '/'.")
  return children


def _sum(cfg, path, name, root, grouped=True):
  extra = set(cfg) - {"terms", "group"}
  if extra:
    bad = sorted(extra)[0]
    raise unknown(path, bad, ("terms", "group") + _NODE_KEYS, context="in a sum node")
  children = _children(cfg, "terms", path)
  grouped = grouped and schema.check(
    cfg.get("group", True), schema.Param(tags=("bool",)), join(path, "group")
  )
  parts = [_node(v, join(join(path, "terms"), k), k) for k, v in children.items()]
  try:
    total = Sum(parts) if len(parts) > 1 else parts[0]
  except ValueError as err:
    raise ConfigError(join(path, "terms"), str(err)) from None
  if root or name is None or not grouped:
    return total
  return core.group(name, total)


def _multitask(cfg, path, name):
  known = ("tasks", "scheme", "name")
  for k in cfg:
    if k not in known:
      raise unknown(path, k, known + _NODE_KEYS, context="in a multi-task node")
  # multitask() names each task (a term by renaming, anything else as a group)
  tasks = {
    k: _node(v, join(join(path, "tasks"), k), k, grouped=False)
    for k, v in _children(cfg, "tasks", path).items()
  }
  scheme = _scheme(cfg.get("scheme", "static_weights"), join(path, "scheme"), tuple(tasks))
  node_name = schema.check(
    cfg.get("name", name), schema.Param(tags=("str", "null")), join(path, "name")
  )
  try:
    return weighting.multitask(tasks, scheme, name=node_name)
  except (ValueError, TypeError) as err:
    raise ConfigError(path, str(err)) from None


def _scheme(cfg, path, tasks):
  name_path = path if isinstance(cfg, str) else join(path, "name")
  if isinstance(cfg, str):
    cfg = {"name": cfg}
  cfg = schema.mapping(cfg, path, what="a scheme name or a mapping")
  if "name" not in cfg:
    raise ConfigError(name_path, f"a scheme needs a name: one of {', '.join(SCHEMES)}.")
  cls = schema.choose(cfg.pop("name"), SCHEMES, name_path, what="weighting scheme")
  kw = schema.kwargs(cfg, schema.parameters(cls), path, owner=cls.__name__)
  try:
    scheme = cls(**kw)
    scheme.check(tasks)
  except (ValueError, TypeError) as err:
    raise ConfigError(path, str(err)) from None
  return scheme


def _term(cfg, path, name, kind=None):
  kind = kind or ("regularizer" if "regularizer" in cfg else "loss")
  named = [k for k in ("loss", "regularizer", "metric") if k in cfg]
  if len(named) > 1:
    raise ConfigError(
      path, f"a term names one function; it has both {named[0]!r} and {named[1]!r}."
    )
  if kind not in cfg:
    raise ConfigError(path, f"name the function: {kind}: <name>.")
  spec = registered_spec(cfg[kind], join(path, kind), kind)
  hyper = {k: v for k, v in cfg.items() if k not in _TERM_KEYS}
  for k in hyper:
    if k not in spec.hyperparameters:
      keys = list(spec.hyperparameters) + [
        k for k in _TERM_KEYS if k not in ("loss", "regularizer", "metric")
      ]
      listed = ", ".join(spec.hyperparameters) or "none"
      raise unknown(path, k, keys, context=f"for {spec.name} (its hyperparameters: {listed})")
  inputs = _inputs(cfg, path, spec, kind)
  kwargs = {k: _hyper(v, spec, k, join(path, k)) for k, v in hyper.items()}
  for key in ("where", "weights"):
    if cfg.get(key) is not None:
      kwargs[key] = _path(cfg[key], join(path, key))
  reduction = schema.check(
    cfg.get("reduction", "mean"), schema.Param(choices=("mean", "sum")), join(path, "reduction")
  )
  try:
    built = core.term(spec.fn, *inputs, name=name or spec.name, reduction=reduction, **kwargs)
    # An error at trace time (a shape, a label) then names this key path.
    return dataclasses.replace(built, origin=path)
  except (TypeError, ValueError) as err:
    missing = _missing_inputs(spec, inputs, reduction, kwargs)
    if missing:
      raise _missing_input_error(spec, missing, len(inputs), join(path, "inputs")) from None
    raise ConfigError(path, str(err)) from None


def _missing_inputs(spec, inputs, reduction, kwargs) -> list[str]:
  """The inputs a failed term lacks: those whose explicit values let it build."""
  names = list(spec.input_names)
  if len(inputs) >= len(names):
    return []
  try:  # None for each unnamed input: if that builds, naming them was what failed
    core.term(
      spec.fn,
      *inputs,
      *([None] * (len(names) - len(inputs))),
      reduction=reduction,
      **kwargs,
    )
  except (TypeError, ValueError):
    return []
  return names[len(inputs) :]


def _missing_input_error(spec, missing, given, path) -> ConfigError:
  zeros = _accepts_null(spec, missing[0])
  return ConfigError(
    path,
    f"{spec.name} takes ({', '.join(spec.input_names)}) and got "
    f"{given} input{'s' if given != 1 else ''}, so {missing[0]!r} is missing; "
    f"add its path (e.g. [outputs, batch.y])"
    + (", or null to use zeros for it" if zeros else "")
    + ".",
  )


def _accepts_null(spec, name) -> bool:
  """Whether ``name`` is an input that ``spec``'s function takes as None (zeros)."""
  try:
    param = inspect.signature(spec.fn).parameters.get(name)
  except (TypeError, ValueError):
    return False
  return param is not None and param.default is None


def registered_spec(name: Any, path: str, kind: str = "loss") -> registry.LossSpec:
  """The registry entry that a config names as a ``kind`` (``loss``, ``regularizer``
  or ``metric``: a metric may be any registered metric or loss).

  Raises:
    ConfigError: at ``path``, for a name that is not registered (with close
      matches) or that names the wrong kind.
  """
  if not isinstance(name, str):
    raise ConfigError(path, f"expected a registered {kind} name, got {describe(name)}.")
  try:
    spec = registry.get(name)
  except registry.UnknownLossError as err:
    raise ConfigError(path, str(err)) from None
  if kind == "regularizer" and spec.kind != "regularizer":
    raise ConfigError(path, f"{name!r} is a {spec.kind}, not a regularizer; write loss: {name}.")
  if kind == "loss" and spec.kind == "metric":
    raise ConfigError(
      path,
      f"{name!r} is an evaluation metric, not a differentiable "
      "loss; list it under metrics: instead.",
    )
  return spec


def term_paths(config: Any, path: str = "objective") -> dict[str, str]:
  """The key path of each leaf term of an objective config, by its last name.

  ``{"fit": "objective.terms.fit", "aux/l1": "objective.terms.aux.terms.l1"}``:
  the keys are the config's names joined by ``/`` (the term's key and those of
  the nodes above it), for blaming an error found while tracing a term on the
  place in the config that made it.
  """
  out: dict[str, str] = {}

  def walk(node, path, names):
    if not isinstance(node, Mapping):
      return
    if "loss" in node or "regularizer" in node or "metric" in node:
      out["/".join(names)] = path
      return
    for key in ("terms", "tasks"):
      children = node.get(key)
      if isinstance(children, Mapping):
        for k, v in children.items():
          walk(v, join(join(path, key), k), names + [str(k)])

  walk(config, path, [])
  return out


def find_term_path(paths: Mapping[str, str], term: str) -> str | None:
  """The key path in :func:`term_paths` of the term logged as ``term`` (``group/name``)."""
  parts = term.split("/")
  found = [
    p
    for names, p in paths.items()
    if names.split("/")[-1] == parts[-1] and set(parts) <= set(names.split("/"))
  ]
  if len(found) > 1:  # a group's name may be left out of what is logged; prefer exact
    found = [paths[n] for n in paths if n == term] or found
  return found[0] if found else None


def metrics_from_config(config: Any, path: str = "metrics") -> core.Objective | None:
  """Evaluation metrics, ``{name: {metric: <name>, inputs: [...], ...}}``, as an
  objective whose terms are the metrics (``None`` when there are none).

  A metric is any registered metric (``accuracy``, ``balanced_accuracy``,
  ``expected_calibration_error``, ...) or loss.
  """
  cfg = schema.mapping(config, path)
  if not cfg:
    return None
  parts = []
  for k, v in cfg.items():
    mpath = join(path, k)
    v = schema.mapping(v, mpath)
    if "metric" not in v:
      raise ConfigError(
        mpath,
        "name the metric: metric: accuracy (or any registered loss "
        "or metric); keys "
        f"{', '.join(map(repr, v)) or 'none'}.{suggest(next(iter(v), ''), ['metric'])}",
      )
    parts.append(_term(v, mpath, k, kind="metric"))
  return Sum(parts)


def _inputs(cfg, path, spec, kind):
  ipath = join(path, "inputs")
  default = ["model"] if kind == "regularizer" else None
  inputs = cfg.get("inputs", default)
  if inputs is None:
    raise ConfigError(
      ipath,
      f"{spec.name} needs its inputs, paths such as "
      f"[outputs, batch.y] for ({', '.join(spec.input_names)}).",
    )
  if isinstance(inputs, str):
    inputs = [inputs]
  if not isinstance(inputs, list):
    raise ConfigError(ipath, f"expected a list of paths, got {describe(inputs)}.")
  required = [
    p.name
    for p in inspect.signature(spec.fn).parameters.values()
    if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
  ]
  if not len(required) <= len(inputs) <= len(spec.input_names):
    n = (
      f"{len(required)}"
      if len(required) == len(spec.input_names)
      else f"{len(required)} to {len(spec.input_names)}"
    )
    raise ConfigError(
      ipath, f"{spec.name} takes {n} inputs ({', '.join(spec.input_names)}), got {len(inputs)}."
    )
  for i, v in enumerate(inputs):
    if v is None and not _accepts_null(spec, spec.input_names[i]):
      raise ConfigError(
        join(ipath, i),
        f"null stands for an input left as zeros, which "
        f"{spec.name}'s {spec.input_names[i]!r} is not; give a path such as "
        "batch.y.",
      )
  return [_input(v, join(ipath, i)) for i, v in enumerate(inputs)]


def _input(v, path):
  if v is None:  # explicitly zeros (e.g. regression targets), checked by _inputs
    return None
  if isinstance(v, str):
    return v
  if isinstance(v, Mapping):
    return _marked(v, path, allow=("learnable",))
  if isinstance(v, (int, float, list)) and not isinstance(v, bool):
    return _array(v, path)
  raise ConfigError(
    path,
    f"expected a path (e.g. batch.y), a constant, a learnable or null (zeros), got {describe(v)}.",
  )


def _array(v, path):
  try:
    return jnp.asarray(v)
  except (TypeError, ValueError):
    raise ConfigError(
      path, f"expected a number or a (nested) list of numbers, got {describe(v)}."
    ) from None


def _path(v, path):
  if not isinstance(v, str) or not v:
    raise ConfigError(path, f"expected a path into the data (e.g. batch.valid), got {describe(v)}.")
  return v


def _hyper(v, spec, key, path):
  if isinstance(v, Mapping):
    if key == "mask" and spec.kind == "regularizer":
      return _mask(v, path)
    return _marked(v, path, allow=("schedule", "learnable", "ref"))
  if key == "mask" and spec.kind == "regularizer":
    return _mask(v, path)
  default = spec.hyperparameters[key]
  if isinstance(default, float):
    return schema.number(v, path)
  if default is None and isinstance(v, list):
    return _array(v, path)
  return schema.check(v, schema.param(default), path)


def _marked(v, path, allow):
  markers = [k for k in ("schedule", "learnable", "ref") if k in v]
  if not markers or markers[0] not in allow:
    want = " or ".join(f"{{{a}: ...}}" for a in allow)
    raise ConfigError(
      path, f"a mapping here must be {want}; got keys {', '.join(map(repr, v)) or 'none'}."
    )
  marker = markers[0]
  if marker == "schedule":
    return schedule_from_config(v, path)
  if marker == "ref":
    extra = sorted(set(v) - {"ref"})
    if extra:
      raise unknown(path, extra[0], ["ref"], context="in a reference")
    return core.ref(_path(v["ref"], join(path, "ref")))
  return _learnable(v, path)


def _learnable(v, path):
  known = ("learnable", "positive", "transform")
  for k in v:
    if k not in known:
      raise unknown(path, k, known, context="in a learnable value")
  init = v["learnable"]
  if isinstance(init, bool) or not isinstance(init, (int, float, list)):
    raise ConfigError(
      join(path, "learnable"),
      f"expected the initial value (a number or a list of numbers), got {describe(init)}.",
    )
  if isinstance(init, list):  # nested tuples: hashable, comparable, round-trip exactly
    init = _tuples(_array(init, join(path, "learnable")).tolist())
  else:
    init = float(init)
  positive = schema.check(
    v.get("positive", False), schema.Param(tags=("bool",)), join(path, "positive")
  )
  transform = v.get("transform")
  if transform is not None:
    transform = schema.choose(transform, TRANSFORMS, join(path, "transform"), what="transform")
  try:
    return core.learnable(init, positive=positive, transform=transform)
  except ValueError as err:
    raise ConfigError(path, str(err)) from None


def _tuples(x):
  return tuple(_tuples(v) for v in x) if isinstance(x, list) else float(x)


def _mask(v, path):
  if v is None:
    return None
  if isinstance(v, str):
    return schema.choose(v, MASKS, path, what="mask")
  v = schema.mapping(v, path, what="a mask: matrices_only or {exclude: [...]}")
  if set(v) != {"exclude"}:
    bad = sorted(set(v) - {"exclude"}) or ["exclude"]
    raise unknown(path, bad[0], ["exclude"], context="in a mask")
  patterns = v["exclude"]
  patterns = [patterns] if isinstance(patterns, str) else patterns
  patterns = schema.check(
    patterns, schema.Param(tags=("list",), item=("str",)), join(path, "exclude")
  )
  return regularizers.exclude(*patterns)


def schedule_from_config(cfg: Any, path: str = "schedule") -> schedules.Schedule:
  """``{schedule: name, **arguments}`` as a schedule of the training step."""
  cfg = schema.mapping(cfg, path)
  if "schedule" not in cfg:
    raise ConfigError(path, f"a schedule needs 'schedule: <name>' ({', '.join(SCHEDULES)}).")
  name = cfg.pop("schedule")
  factory = schema.choose(name, SCHEDULES, join(path, "schedule"), what="schedule")
  kw = schema.kwargs(cfg, schema.parameters(factory), path, owner=f"schedule {name!r}")
  try:
    return factory(**kw)
  except (TypeError, ValueError) as err:
    raise ConfigError(path, str(err)) from None


# ---------------------------------------------------------------- objective -> config


def objective_to_config(objective: core.Objective) -> dict[str, Any]:
  """The config (plain data) that :func:`objective_from_config` turns back into
  an equal objective.

  Raises:
    ConfigError: a part that a config cannot express (an unregistered
      function, a learnable with a random initializer, a schedule or a weight
      that is not one of jaxobj's), naming its path.
  """
  if not isinstance(objective, core.Objective):
    raise TypeError(
      f"objective_to_config needs a jaxobj objective, got {type(objective).__name__}."
    )
  weights, stop, inner = _unwrap(objective)
  if not weights and not stop:
    if isinstance(inner, Sum):
      return {"terms": _terms_config(inner.children, "objective.terms")}
    if isinstance(inner, weighting.MultiTask):
      return _node_config(inner, "objective", root=True)[1]
  return {"terms": _terms_config([objective], "objective.terms")}


def _unwrap(obj):
  """(weights outermost first, stop_gradient?, the node inside)."""
  weights, stop = [], False
  while isinstance(obj, (Scaled, StopGradient)):
    if isinstance(obj, Scaled):
      weights.append(obj.weight)
    else:
      stop = True
    obj = obj.child
  return weights, stop, obj


def _terms_config(children, path) -> dict[str, Any]:
  out = {}
  for child in children:
    key, cfg = _node_config(child, path)
    if key in out:
      raise ConfigError(join(path, key), "two parts have this name; name them apart.")
    out[key] = cfg
  return out


def _node_config(obj, path, root=False) -> tuple[str, dict[str, Any]]:
  weights, stop, inner = _unwrap(obj)
  if isinstance(inner, Term):
    key = inner.name
    cfg = _term_config(inner, join(path, key))
  elif isinstance(inner, Group):
    key = inner.name
    cfg = {"terms": _terms_config(core.summands(inner.child), join(join(path, key), "terms"))}
  elif isinstance(inner, Sum):
    key = "+".join(_node_config(c, path)[0] for c in inner.children)
    cfg = {"terms": _terms_config(inner.children, join(join(path, key), "terms")), "group": False}
  elif isinstance(inner, weighting.MultiTask):
    key = inner.name
    tpath = join(join(path, key), "tasks")
    cfg = {
      "tasks": {t: _task_config(t, c, join(tpath, t)) for t, c in inner.tasks},
      "scheme": _scheme_config(inner.scheme, join(join(path, key), "scheme")),
    }
    # the name multitask() gives these tasks and this scheme when none is given
    default = weighting.multitask(dict(inner.tasks), inner.scheme)
    if root and isinstance(default, weighting.MultiTask) and inner.name != default.name:
      cfg["name"] = inner.name
  else:
    raise ConfigError(path, f"{type(inner).__name__} nodes have no config form.")
  if stop:
    cfg["stop_gradient"] = True
  if weights:
    shown = [_weight_config(w, join(join(path, key), "weight")) for w in weights]
    cfg["weight"] = shown[0] if len(shown) == 1 else shown
  return key, cfg


def _task_config(name, child, path):
  """A task is named by its key: a term keeps the name, any other node is a group."""
  weights, stop, inner = _unwrap(child)
  if isinstance(inner, Group) and inner.name == name and not weights and not stop:
    return {"terms": _terms_config(core.summands(inner.child), join(path, "terms"))}
  return _node_config(child, path)[1]


def _weight_config(w, path):
  if isinstance(w, schedules.Schedule):
    return schedule_to_config(w, path)
  if isinstance(w, (float, int)):
    return float(w)
  if isinstance(w, (jax.Array, np.ndarray)) and np.ndim(w) == 0:
    return float(w)
  raise ConfigError(
    path,
    f"the weight {w!r} has no config form: use a number or one of "
    f"jaxobj's schedules ({', '.join(SCHEDULES)}).",
  )


def _function_name(fn, path) -> tuple[str, str]:
  for spec in registry.specs():
    if spec.fn is fn:
      return ("regularizer" if spec.kind == "regularizer" else "loss"), spec.name
  name = getattr(fn, "__name__", repr(fn))
  raise ConfigError(
    path,
    f"the function {name!r} is not registered, and configs name "
    "registered losses only; register it with jaxobj.registry.register.",
  )


def _term_config(t: Term, path) -> dict[str, Any]:
  kind, name = _function_name(t.fn, path)
  cfg: dict[str, Any] = {kind: name}
  inputs = [
    _value_config(v, join(join(path, "inputs"), i), as_input=True) for i, v in enumerate(t.inputs)
  ]
  if not (kind == "regularizer" and inputs == ["model"]):
    cfg["inputs"] = inputs
  for k, v in t.kwargs:
    if k in ("where", "weights") and isinstance(v, Ref):
      cfg[k] = v.path
    elif k == "mask" and kind == "regularizer":
      cfg[k] = _mask_config(v, join(path, k))
    else:
      cfg[k] = _value_config(v, join(path, k))
  if t.reduction != "mean":
    cfg["reduction"] = t.reduction
  return cfg


def _value_config(v, path, as_input=False):
  if isinstance(v, Ref):
    return v.path if as_input else {"ref": v.path}
  if isinstance(v, Learnable):
    return _learnable_config(v, path)
  if isinstance(v, schedules.Schedule):
    return schedule_to_config(v, path)
  if isinstance(v, (jax.Array, np.ndarray, np.generic)):
    return np.asarray(v).tolist()
  if isinstance(v, tuple):
    return [_value_config(x, join(path, i)) for i, x in enumerate(v)]
  if v is None or isinstance(v, (bool, int, float, str, list)):
    return v
  raise ConfigError(path, f"the value {v!r} has no config form.")


def _learnable_config(v: Learnable, path):
  if callable(v.init):
    raise ConfigError(
      path,
      "a learnable with a random initializer has no config form; give its initial value instead.",
    )
  init = np.asarray(v.init, np.float64)
  cfg: dict[str, Any] = {"learnable": init.tolist() if init.ndim else float(init)}
  if v.positive:
    cfg["positive"] = True
  if v.transform is not None:
    names = [k for k, f in TRANSFORMS.items() if f is v.transform]
    if not names:
      raise ConfigError(
        path,
        f"the transform {getattr(v.transform, '__name__', v.transform)!r} "
        f"has no config form; configs know {', '.join(TRANSFORMS)}.",
      )
    cfg["transform"] = names[0]
  return cfg


def _mask_config(v, path):
  if v is None:
    return None
  if isinstance(v, type(regularizers.exclude())):  # the predicate exclude() returns
    return {"exclude": list(v.patterns)}
  for name, fn in MASKS.items():
    if v is fn:
      return name
  raise ConfigError(
    path, f"the mask {v!r} has no config form; use matrices_only or {{exclude: [patterns]}}."
  )


def _scheme_config(scheme, path):
  name = next((k for k, cls in SCHEMES.items() if type(scheme) is cls), None)
  if name is None:
    raise ConfigError(
      path,
      f"the weighting scheme {type(scheme).__name__} has no config "
      f"form; configs know {', '.join(SCHEMES)}.",
    )
  fields = {f.name: getattr(scheme, f.name) for f in dataclasses.fields(scheme)}
  defaults = type(scheme)()
  changed = {k: yamlio.plain(v) for k, v in fields.items() if v != getattr(defaults, k)}
  return {"name": name, **changed} if changed else name


def schedule_to_config(s: schedules.Schedule, path: str = "schedule") -> dict[str, Any]:
  """The ``{schedule: name, ...}`` mapping of one of jaxobj's schedules."""
  if isinstance(s, schedules.Constant):
    return {"schedule": "constant", "value": s.value}
  if isinstance(s, schedules.Warmup):
    cfg = {"schedule": f"{s.shape}_warmup", "start": s.start, "end": s.end, "steps": s.steps}
    return {**cfg, "begin": s.begin} if s.begin else cfg
  if isinstance(s, schedules.Cyclical):
    return {
      "schedule": "cyclical",
      "period": s.period,
      "ramp": s.ramp,
      "low": s.low,
      "high": s.high,
    }
  if isinstance(s, schedules.Piecewise):
    return {
      "schedule": "piecewise",
      "boundaries": list(s.boundaries),
      "values": list(s.values),
      "interpolate": s.interpolate,
    }
  raise ConfigError(
    path, f"the schedule {s!r} has no config form; configs know {', '.join(SCHEDULES)}."
  )
