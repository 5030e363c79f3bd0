"""Experiment configs: data, model, objective, metrics, optimizer, training, comparisons.

A config is a mapping of sections (YAML file or Python dict)::

    name: robust_regression          # the run's name (default: the file's stem)
    seed: 0
    data: {name: regression_outliers, n_train: 256, outlier_fraction: 0.1}
    model: {name: mlp, hidden: [32, 32], outputs: 1}
    objective:                         # see jaxobj.config.objective
      terms:
        fit: {loss: huber_loss, inputs: [outputs, batch.y], delta: 1.0}
    metrics:                           # evaluated on the validation split
      mae: {metric: absolute_error, inputs: [outputs, batch.y]}
    optimizer: {name: adam, learning_rate: 0.01}
    train: {steps: 1000, batch_size: 64, eval_every: 50, log_every: 10}

or, for ``jaxobj compare``, a ``compare:`` section (see :class:`CompareSettings`).

Each section is checked against the function it feeds (the data generator,
the model class, the optax constructor, :class:`TrainSettings`), so a
misspelled key or a value of the wrong type is reported by its key path with
close matches, before anything runs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optax

from jaxobj.config import schema, yamlio
from jaxobj.config.errors import ConfigError, describe, join, suggest, unknown
from jaxobj.config.files import available, config_dirs, resolve
from jaxobj.config.objective import (
  metrics_from_config,
  objective_from_config,
  registered_spec,
  schedule_from_config,
)
from jaxobj.objective import core
from jaxobj.workloads.data import DATASETS

__all__ = [
  "Config",
  "Section",
  "TrainSettings",
  "CompareSettings",
  "CompareLoss",
  "FitSettings",
  "OPTIMIZERS",
  "from_dict",
  "load",
  "resolve",
  "build_optimizer",
  "config_dirs",
  "available",
]

OPTIMIZERS = {
  name: getattr(optax, name)
  for name in (
    "adam",
    "adamw",
    "sgd",
    "rmsprop",
    "adagrad",
    "adabelief",
    "lamb",
    "lion",
    "nadam",
    "radam",
    "yogi",
    "adafactor",
  )
}

MAX_SEED = 2**32 - 1
"""Seeds are 0 to 2**32 - 1 (what ``jax.random.key`` takes on every setting of x64)."""

MAX_NAME = 100
"""The longest run name (it names the run directory)."""

MAX_EXAMPLES = 1_000_000
"""The most examples a synthetic data split may have (``data.n_train``, ``data.n_val``)."""

MAX_DATA_INT = 4096
"""The largest other integer a data set takes (``features``, ``classes``, ``size``...)."""

MAX_WIDTH = 4096
"""The largest layer width, output size, channel count or kernel size of a model."""

MAX_LAYERS = 64
"""The most layers a model's ``hidden`` or ``channels`` list may have."""

MAX_POINTS = 100_000
"""The most points of a comparison's curves (``compare.points``) or grid values."""

MAX_STEPS = 2**31 - 1
"""The largest step count (training steps are int32 on the device)."""

MAX_HOST_DEVICES = 256
"""The most host (CPU) devices a run may ask for (``train.host_devices``): XLA
aborts (about 20,000) or stalls (a million) far above it, and no test of
sharding needs more."""

MAX_TIMEOUT = 86_400.0
"""The longest timeout of a distributed run (``train.join_timeout``, ``train.peer_timeout``)."""

SECTIONS = (
  "name",
  "description",
  "seed",
  "data",
  "model",
  "objective",
  "metrics",
  "optimizer",
  "train",
  "compare",
)


@dataclasses.dataclass(frozen=True)
class Section:
  """A named constructor and its checked keyword arguments (``data``, ``model``, ``optimizer``)."""

  name: str
  kwargs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """The ``train:`` section.

  Attributes:
    steps: optimizer steps.
    batch_size: examples per step, drawn with replacement from the train split
      (``null``: the whole split every step).
    eval_every: steps between evaluations on the validation split.
    log_every: steps between train rows in the metrics file (each row averages
      the steps since the last); also how many steps run in one compiled call.
    metrics_format: ``csv`` or ``jsonl``.
    host_devices: ask for this many CPU devices (only before JAX starts, and
      only where the CPU is the platform).
    shard: with several devices, split each batch over them (data parallel,
      parameters replicated); terms can read the mesh as ``{ref: mesh}``.
    checkpoint_every: keep a checkpoint of the whole training state every
      this many steps (taken at the end of the compiled call that reaches it,
      and at the end of the run) in ``<run>/checkpoints``, so that ``jaxobj
      run --resume`` can continue the run (``null``: no checkpoints).
    distributed: this process is one of several that run the config together
      (``jax.distributed.initialize``: on SLURM, TPU pods and Open MPI the
      processes find each other; ``jaxobj run --processes N`` starts N local
      ones). See the docs page *Running on many processes*.
    join_timeout: seconds a distributed run waits for all its processes to join.
    peer_timeout: seconds without a sign of life from another process of a
      distributed run before this one stops, with one line, as it is lost.
  """

  steps: int = 500
  batch_size: int | None = 64
  eval_every: int = 50
  log_every: int = 10
  metrics_format: Literal["csv", "jsonl"] = "csv"
  host_devices: int | None = None
  shard: bool = True
  checkpoint_every: int | None = None
  distributed: bool = False
  join_timeout: float = 60.0
  peer_timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class CompareLoss:
  """One loss of a comparison: its label, registry spec and fixed hyperparameters."""

  label: str
  spec: Any
  hyper: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class FitSettings:
  """The ``compare.fit:`` section: fit every compared loss on ``data``'s train split.

  Attributes:
    model: ``constant`` (one value predicts every target: the loss's location
      estimate) or ``linear`` (``x @ w + b``).
    target: the batch key of the targets.
    input: the batch key of the inputs (``linear`` only).
    steps: full-batch Adam steps; the learning rate decays along a cosine to
      1/1000 of ``learning_rate``, so even absolute error settles on its minimizer.
    learning_rate: the initial learning rate.
  """

  model: Literal["constant", "linear"] = "constant"
  target: str = "y"
  input: str = "x"
  steps: int = 1000
  learning_rate: float = 0.05


@dataclasses.dataclass(frozen=True)
class CompareSettings:
  """The ``compare:`` section.

  Attributes:
    losses: ``{label: {loss: <name>, <hyper>: value}}``, evaluated side by side.
    axis: what the curves run over: ``residual`` (regression losses at
      ``predictions = r, targets = 0``) or ``p_t`` (binary losses at the
      probability of the true class, ``logits = logit(p_t)``, ``labels = 1``).
    range: the axis interval (``p_t`` is clipped into (0, 1)).
    points: curve resolution.
    grid: one loss over a hyperparameter grid: ``{loss: <name>, over: <hyper>,
      values: [...]}`` plus fixed hyperparameters, vmapped in one call.
    fit: fit each loss (and grid member) on the data in one vmapped run.
  """

  losses: tuple[CompareLoss, ...]
  axis: str = "residual"
  range: tuple[float, float] = (-4.0, 4.0)
  points: int = 201
  grid: dict[str, Any] | None = None
  fit: FitSettings | None = None


@dataclasses.dataclass(frozen=True)
class Config:
  """A checked config; ``raw`` is the plain data it was built from."""

  name: str
  description: str
  seed: int
  data: Section | None
  model: Section | None
  objective: core.Objective | None
  metrics: core.Objective | None
  optimizer: Section
  train: TrainSettings
  compare: CompareSettings | None
  raw: dict[str, Any]
  source: str | None = None

  def to_yaml(self) -> str:
    return yamlio.dump(self.raw)


def from_dict(
  config: Mapping[str, Any], *, name: str | None = None, source: str | None = None
) -> Config:
  """Checks a config given as plain data and builds its objective.

  Raises:
    ConfigError: the first problem, by key path.
  """
  try:
    return _from_dict(config, name, source)
  except ConfigError as err:
    if not source:
      raise
    raise err.with_source(source) from None


def _from_dict(config, name, source) -> Config:
  cfg = schema.mapping(yamlio.plain(config), "", what="a config")
  for k in cfg:
    if k not in SECTIONS:
      raise unknown("", k, SECTIONS, what="section")
  if "objective" not in cfg and "compare" not in cfg:
    raise ConfigError(
      "",
      "a config needs an objective: section (for jaxobj run) or a "
      "compare: section (for jaxobj compare).",
    )
  run_name = schema.check(cfg.get("name", name or "run"), schema.Param(tags=("str",)), "name")
  _check_name(run_name)
  description = schema.check(cfg.get("description", ""), schema.Param(tags=("str",)), "description")
  seed = schema.integer(cfg.get("seed", 0), "seed", 0, MAX_SEED)
  training = "objective" in cfg
  if training:
    for section in ("data", "model"):
      if section not in cfg:
        raise ConfigError(section, f"a training config needs a {section}: section.")
  data = _data(cfg.get("data")) if "data" in cfg else None
  model = _model(cfg.get("model")) if "model" in cfg else None
  objective = objective_from_config(cfg["objective"]) if training else None
  metrics = metrics_from_config(cfg.get("metrics"))
  optimizer = _optimizer(cfg.get("optimizer", {"name": "adam", "learning_rate": 1e-2}))
  train = _train(cfg.get("train"))
  compare = _compare(cfg["compare"], data) if "compare" in cfg else None
  return Config(
    run_name,
    description,
    seed,
    data,
    model,
    objective,
    metrics,
    optimizer,
    train,
    compare,
    dict(cfg),
    source,
  )


def _check_name(name: str) -> None:
  bad = next((c for c in name if not c.isprintable() or c in "/\\"), None)
  if not name or len(name) > MAX_NAME or bad is not None or name.startswith("."):
    why = (
      f"it has the character {bad!r}"
      if bad is not None
      else f"it has {len(name)} characters"
      if name
      else "it is empty"
    )
    raise ConfigError(
      "name",
      f"the run's name names its directory: 1 to {MAX_NAME} printable "
      f"characters, no '/' or '\\', not starting with '.' ({why}); use "
      "letters, digits, '_' and '-'.",
    )


def _data(cfg) -> Section:
  cfg = schema.mapping(cfg, "data")
  fn = DATASETS.get(cfg.get("name"))
  if fn is not None:  # integers in range first, so that the message gives the range
    for k, p in schema.parameters(fn).items():
      if p.tags and "int" in p.tags and cfg.get(k) is not None:
        lo = 0 if k in ("n_val", "seed") else 1
        hi = {"n_train": MAX_EXAMPLES, "n_val": MAX_EXAMPLES, "seed": MAX_SEED}.get(k, MAX_DATA_INT)
        schema.integer(cfg[k], join("data", k), lo, hi)
  return _section(cfg, "data", DATASETS, "data set")


def _section(cfg, path, table, what, skip=()) -> Section:
  cfg = schema.mapping(cfg, path)
  if "name" not in cfg:
    raise ConfigError(join(path, "name"), f"name the {what}: one of {', '.join(table)}.")
  name = cfg.pop("name")
  fn = schema.choose(name, table, join(path, "name"), what=what)
  return Section(
    name, schema.kwargs(cfg, schema.parameters(fn, skip=skip), path, owner=f"{what} {name!r}")
  )


def _model(cfg) -> Section:
  # Flax (and the rich and PyYAML it imports) loads only when a config names a model.
  from jaxobj.workloads.models import INFERRED, MODELS

  section = _section(cfg, "model", MODELS, "model", skip=INFERRED)
  for k, v in section.kwargs.items():  # sizes: widths, outputs, channels, kernel
    path = join("model", k)
    if isinstance(v, int) and not isinstance(v, bool):
      schema.integer(v, path, 1, MAX_WIDTH)
    elif isinstance(v, (tuple, list)) and all(isinstance(x, int) for x in v):
      if len(v) > MAX_LAYERS:
        raise ConfigError(path, f"{len(v)} layers; a model here has at most {MAX_LAYERS}.")
      for i, x in enumerate(v):
        schema.integer(x, join(path, i), 1, MAX_WIDTH)
    elif isinstance(v, Mapping):
      for name, x in v.items():
        schema.integer(x, join(path, name), 1, MAX_WIDTH)
  return section


def _optimizer(cfg) -> Section:
  cfg = schema.mapping(cfg, "optimizer")
  clip = cfg.pop("clip_norm", None)
  section = _section(cfg, "optimizer", OPTIMIZERS, "optimizer")
  if "learning_rate" in cfg:
    section.kwargs["learning_rate"] = _learning_rate(cfg["learning_rate"])
  for k, v in section.kwargs.items():
    if isinstance(v, (dict, list)) and k != "learning_rate":
      raise ConfigError(
        join("optimizer", k), f"expected a number, a string or true/false, got {describe(v)}."
      )
  if clip is not None:
    section.kwargs["clip_norm"] = schema.number(clip, "optimizer.clip_norm")
  return section


def _learning_rate(v):
  path = "optimizer.learning_rate"
  if isinstance(v, Mapping):
    return schedule_from_config(v, path)
  lr = schema.number(v, path)
  if lr <= 0:
    raise ConfigError(path, f"the learning rate must be positive, got {lr:g}.")
  return lr


def build_optimizer(section: Section) -> optax.GradientTransformation:
  """The optax optimizer a checked ``optimizer:`` section names."""
  kwargs = dict(section.kwargs)
  clip = kwargs.pop("clip_norm", None)
  try:
    tx = OPTIMIZERS[section.name](**kwargs)
  except (TypeError, ValueError) as err:
    raise ConfigError("optimizer", f"optax.{section.name}: {err}") from None
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip is not None else tx


def _train(cfg) -> TrainSettings:
  cfg = schema.mapping(cfg, "train")
  for k in ("steps", "eval_every", "log_every", "batch_size", "host_devices", "checkpoint_every"):
    if cfg.get(k) is not None:
      check_integer_setting(cfg[k], k)
  settings = TrainSettings(
    **schema.kwargs(cfg, schema.parameters(TrainSettings), "train", owner="train")
  )
  for k in ("join_timeout", "peer_timeout"):
    seconds = getattr(settings, k)
    if not 1.0 <= seconds <= MAX_TIMEOUT:
      raise ConfigError(
        join("train", k), f"expected seconds from 1 to {MAX_TIMEOUT:g}, got {seconds:g}."
      )
  return settings


def check_integer_setting(value: Any, key: str) -> int:
  """``train.<key>`` (an integer setting) checked against its range."""
  hi = MAX_HOST_DEVICES if key == "host_devices" else MAX_STEPS
  return schema.integer(value, join("train", key), 1, hi)


def _compare(cfg, data) -> CompareSettings:
  path = "compare"
  cfg = schema.mapping(cfg, path)
  known = ("losses", "axis", "range", "points", "grid", "fit")
  for k in cfg:
    if k not in known:
      raise unknown(path, k, known)
  axis = schema.check(
    cfg.get("axis", "residual"), schema.Param(choices=("residual", "p_t")), join(path, "axis")
  )
  default_range = (-4.0, 4.0) if axis == "residual" else (0.01, 0.99)
  lo_hi = schema.check(
    cfg.get("range", list(default_range)),
    schema.Param(tags=("list",), item=("number",)),
    join(path, "range"),
  )
  if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
    raise ConfigError(
      join(path, "range"), f"expected [low, high] with low < high, got {list(lo_hi)}."
    )
  if axis == "p_t" and not 0.0 < lo_hi[0] < lo_hi[1] < 1.0:
    raise ConfigError(
      join(path, "range"), f"p_t is a probability: the range lies inside (0, 1), got {list(lo_hi)}."
    )
  points = schema.integer(cfg.get("points", 201), join(path, "points"), 3, MAX_POINTS)
  losses = tuple(
    _compare_loss(v, join(join(path, "losses"), k), k)
    for k, v in schema.mapping(cfg.get("losses"), join(path, "losses")).items()
  )
  grid = _grid(cfg["grid"], join(path, "grid")) if cfg.get("grid") is not None else None
  if not losses and grid is None:
    raise ConfigError(
      join(path, "losses"),
      "name the losses to compare: losses: {mse: {loss: squared_error}, ...} (or a grid:).",
    )
  fit = None
  if cfg.get("fit") is not None:
    fit = FitSettings(
      **schema.kwargs(
        cfg["fit"], schema.parameters(FitSettings), join(path, "fit"), owner="compare.fit"
      )
    )
    if data is None:
      raise ConfigError("data", "compare.fit fits the losses on data: add a data: section.")
  return CompareSettings(losses, axis, tuple(lo_hi), points, grid, fit)


def _compare_loss(cfg, path, label) -> CompareLoss:
  cfg = schema.mapping(cfg, path)
  if "loss" not in cfg:
    raise ConfigError(path, "name the loss: loss: <registry name>.")
  spec = registered_spec(cfg.pop("loss"), join(path, "loss"), "loss")
  hyper = {}
  for k, v in cfg.items():
    if k not in spec.hyperparameters:
      raise unknown(path, k, list(spec.hyperparameters) + ["loss"], context=f"for {spec.name}")
    hyper[k] = schema.check(v, schema.param(spec.hyperparameters[k]), join(path, k))
  return CompareLoss(label, spec, hyper)


def _grid(cfg, path) -> dict[str, Any]:
  cfg = schema.mapping(cfg, path)
  for k in ("loss", "over", "values"):
    if k not in cfg:
      raise ConfigError(join(path, k), f"a grid needs loss, over and values; add {k}.")
  over, values = cfg.pop("over"), cfg.pop("values")
  base = _compare_loss(cfg, path, "grid")
  traceable = base.spec.traceable
  if over not in traceable:
    hint = suggest(over, traceable, what="hyperparameter") if isinstance(over, str) else ""
    raise ConfigError(
      join(path, "over"),
      f"{describe(over)} is not a float hyperparameter "
      f"of {base.spec.name} (those: {', '.join(traceable) or 'none'}).{hint}",
    )
  values = schema.check(
    values, schema.Param(tags=("list",), item=("number",)), join(path, "values")
  )
  if not values or len(values) > MAX_POINTS:
    raise ConfigError(
      join(path, "values"), f"list 1 to {MAX_POINTS:,} values, got {len(values):,}."
    )
  return {"spec": base.spec, "hyper": base.hyper, "over": over, "values": values}


# ---------------------------------------------------------------- files


def load(name_or_path: str | pathlib.Path, overrides: Sequence[str] = ()) -> Config:
  """Reads, overrides (``["train.steps=3"]``) and checks a config file."""
  path, raw = yamlio.read_overridden(name_or_path, overrides)
  try:
    return from_dict(raw, name=path.stem, source=str(path))
  except ConfigError as err:  # a typo in an override is the command line's, not the file's
    raise yamlio.blame(err, path, overrides) from None
