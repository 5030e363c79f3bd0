"""The training loop behind ``jaxobj run``: a config in, metrics, plots and a summary out.

The model (Flax NNX) is split into a graph and its parameters once; training
is then pure JAX: ``log_every`` optimizer steps run in one compiled
``lax.scan`` (batches drawn on the device), so Python only writes a row of
metrics per call. The objective's params (learned weights, temperatures) are
trained with the model by the same optimizer, and its weighting state (DWA,
FAMO) advances every step.

With several devices (``train.host_devices`` on a CPU, or several processes:
:mod:`jaxobj.train.distributed`), every step splits its batch over a
``("data",)`` mesh with explicit sharding and replicates the parameters; the
training split itself is split over the devices (each process loads the rows
its devices hold) and a batch gathers its rows from them, so the batches are
those of one device, whatever the devices and processes. The model runs
data-parallel, and per-example losses and their means need nothing more. A loss
that compares examples across the batch (CLIP, SigLIP) takes its sharded form,
given the mesh, which computes the exact whole-batch loss over the devices; one
that cannot take a split batch is reported before training starts. Evaluation
runs on the replicated validation split.

Terms read their inputs from ``outputs`` (the model's), ``batch``, ``model``
(the model's params, for regularizers) and ``mesh`` (the device mesh, ``None``
on one device), so a config can hand the mesh to a sharded loss:
``mesh: {ref: mesh}`` for ``sharded_siglip_loss``.

Ctrl-C at any moment stops the run (:class:`~jaxobj.train.interrupt.StopRequest`
turns it into a flag read between compiled calls, so no callback can swallow
it). Before training starts nothing is written; during training the run stops
after the current call, the metrics written so far stay, and the plots and the
summary are still made from them. Until the last file is written the run
directory holds a marker file, ``INCOMPLETE``, saying what is missing (a
second Ctrl-C during the final writes leaves it). A run directory that holds
an interrupted run is not overwritten unless asked (``overwrite=True``, the
CLI's ``--overwrite``).

With ``train.checkpoint_every`` the whole training state is checkpointed
(:mod:`jaxobj.train.checkpoint`), and ``resume=True`` (the CLI's ``--resume``)
continues an interrupted run, or a lost one, to the final state of a run that
never stopped: the rows after the checkpoint are dropped from the metrics file
and computed again.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import json
import math
import pathlib
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxobj.config import ConfigError, build_optimizer, yamlio
from jaxobj.config.experiment import Config
from jaxobj.config.objective import find_term_path, term_paths
from jaxobj.objective import Learnable, Objective, Term
from jaxobj.train import distributed
from jaxobj.train.checkpoint import CHECKPOINTS, Checkpoints, latest_step
from jaxobj.train.diagnosis import Diagnosis, diagnose_history
from jaxobj.train.history import History, MetricsWriter
from jaxobj.train.interrupt import StopRequest
from jaxobj.train.plots import plot_run
from jaxobj.workloads import data as data_lib
from jaxobj.workloads import models as model_lib

if TYPE_CHECKING:  # rich is imported when a progress bar is shown
  from rich.console import Console

__all__ = ["RunResult", "Trainer", "run"]


@dataclasses.dataclass
class RunResult:
  """What a run produced."""

  name: str
  out_dir: pathlib.Path
  history: History
  diagnosis: Diagnosis
  steps: int
  steps_done: int
  interrupted: bool
  wall_time: float
  files: dict[str, pathlib.Path]
  devices: int


def _one_line(err: BaseException) -> str:
  msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
  return " ".join(str(msg).split()) or type(err).__name__


def _as_config_error(section: str, fn: Callable, *args, **kwargs):
  """Runs ``fn``; errors it raises about the user's choices become ConfigErrors."""
  try:
    return fn(*args, **kwargs)
  except ConfigError:
    raise
  except (ValueError, TypeError, KeyError, IndexError) as err:
    raise ConfigError(section, _one_line(err)) from None


class Trainer:
  """A config made runnable: data, model, objective, optimizer and compiled steps.

  Args:
    config: a checked :class:`~jaxobj.config.Config`.

  Raises:
    ConfigError: the data, the model or the objective do not fit together
      (an input path that the batch lacks, shapes that disagree), found by
      tracing one step before anything runs.
  """

  def __init__(self, config: Config) -> None:
    if config.objective is None:
      raise ConfigError(
        "objective", "this config has no objective to train; run it with jaxobj compare."
      )
    if config.data is None or config.model is None:
      missing = "data" if config.data is None else "model"
      raise ConfigError(missing, f"a training config needs a {missing}: section.")
    self.config = config
    settings = config.train
    self.dataset = _as_config_error(
      "data", data_lib.DATASETS[config.data.name], **config.data.kwargs
    )
    if self.dataset.n_val == 0:
      raise ConfigError("data.n_val", "training needs a validation split; set n_val > 0.")
    self.batch_size = settings.batch_size
    if self.batch_size is not None and self.batch_size > self.dataset.n_train:
      raise ConfigError(
        "train.batch_size",
        f"{self.batch_size} is more than the "
        f"{self.dataset.n_train} training examples; lower it or use null "
        "(the whole split).",
      )
    self.mesh = None
    devices = jax.devices()
    self.processes = jax.process_count()
    local = jax.local_device_count()
    asked = settings.host_devices
    # One CPU process runs on the devices it has (JAX may have started before the config
    # was read); a distributed run, or an accelerator, must have what the config says.
    strict = self.processes > 1 or devices[0].platform != "cpu"
    if asked is not None and asked > local and strict:
      raise ConfigError(
        "train.host_devices",
        f"{settings.host_devices} devices asked for, but this process has {local} "
        f"({devices[0].platform}); host devices can be added only on the CPU and before JAX "
        "starts (XLA_FLAGS or an earlier JAX computation fix the count): ask for at most "
        f"{local}, or run jaxobj run in a fresh process.",
      )
    if settings.shard and len(devices) > 1:
      self.mesh = jax.make_mesh((len(devices),), ("data",))
    elif self.processes > 1:
      raise ConfigError(
        "train.shard",
        f"a run over {self.processes} processes splits each batch over their devices; "
        "set train.shard: true.",
      )
    self.devices = len(devices) if self.mesh is not None else 1
    if self.mesh is not None:
      self._check_divisible()

    self.model = _as_config_error(
      "model",
      model_lib.build_model,
      config.model.name,
      config.model.kwargs,
      self.dataset.train,
      seed=config.seed,
    )
    self.graphdef, params, *rest = nnx.split(self.model, nnx.Param, ...)
    self.rest = rest[0]  # everything but the parameters (batch statistics, RNG state)
    self.objective = config.objective
    self.metrics = config.metrics
    key = jax.random.key(config.seed)
    self.key_init, self.key_train, self.key_eval = jax.random.split(key, 3)
    _as_config_error("objective", jax.eval_shape, self.objective.init, self.key_init)
    self.tx = build_optimizer(config.optimizer)

    @jax.jit
    def initial(params, key):  # one compiled call, not one per initializer
      trainable = (params, self.objective.init(key))
      return trainable, self.objective.init_state(), self.tx.init(trainable)

    self.carry = initial(params, self.key_init)
    if self.mesh is None:
      self.train_data = {k: jnp.asarray(v) for k, v in self.dataset.train.items()}
      self.val_data = {k: jnp.asarray(v) for k, v in self.dataset.val.items()}
    else:
      # The parameters and the validation split on every device; the training
      # split over the devices, each process holding the rows of its own devices.
      replicated = NamedSharding(self.mesh, P())
      self.carry = jax.tree.map(
        lambda x: distributed.global_array(replicated, x, x.shape), self.carry
      )
      self.val_data = {
        k: distributed.global_array(replicated, v, v.shape) for k, v in self.dataset.val.items()
      }
      self.train_data = self._split_train_data()
    self.columns = self._check()

  def _check_divisible(self) -> None:
    where = (
      f"{self.processes} processes × {self.devices // self.processes} devices"
      if self.processes > 1
      else f"{self.devices} devices"
    )
    b = self.batch_size
    if b is not None and b % self.devices:
      lower, upper = b // self.devices * self.devices, -(-b // self.devices) * self.devices
      raise ConfigError(
        "train.batch_size",
        f"{b} examples per step do not split evenly over {where}; use a multiple of "
        f"{self.devices} ({', '.join(str(v) for v in (lower, upper) if v)}) or fewer devices.",
      )
    n = self.dataset.n_train
    if b is None and n % self.devices:
      raise ConfigError(
        "data.n_train",
        f"with batch_size null every step takes the whole split, and its {n} examples do "
        f"not split evenly over {where}; use a multiple of {self.devices} or set a batch_size.",
      )

  def _split_train_data(self) -> dict[str, jax.Array]:
    """The training split as global arrays sharded over the mesh's devices.

    Rows are padded to a multiple of the device count (padding is never drawn:
    batches draw indices below ``n_train``); this process loads only the rows
    its own devices hold (:meth:`Dataset.rows`).
    """
    assert self.mesh is not None
    n = self.dataset.n_train
    padded = -(-n // self.devices) * self.devices
    sharding = NamedSharding(self.mesh, P("data"))
    rows = distributed.local_rows(padded, sharding)
    local = self.dataset.rows(rows, pad_to=padded)
    return {
      k: distributed.global_array(sharding, v, (padded, *v.shape[1:])) for k, v in local.items()
    }

  # ------------------------------------------------------------ pure functions

  def _outputs(self, params, batch, key):
    model = nnx.merge(self.graphdef, params, self.rest)
    return model(batch, key=key)

  def _loss(self, trainable, state, batch, step, key):
    params, objective_params = trainable
    k_model, k_objective = jax.random.split(key)
    outputs = self._outputs(params, batch, k_model)
    evaluation = self.objective.evaluate(
      objective_params,
      step=step,
      state=state or None,
      key=k_objective,
      outputs=outputs,
      batch=batch,
      model=nnx.to_pure_dict(params),
      mesh=self.mesh,
    )
    return evaluation.total, evaluation

  def _shard(self, batch):
    if self.mesh is None:
      return batch
    sharding = NamedSharding(self.mesh, P("data"))
    return jax.tree.map(lambda a: jax.reshard(a, sharding), batch)

  def _batch(self, data, key):
    if self.batch_size is None:
      return self._shard(data)
    idx = jax.random.randint(key, (self.batch_size,), 0, self.dataset.n_train)
    if self.mesh is None:
      return jax.tree.map(lambda a: a[idx], data)
    # rows gathered from every device's part of the split, the batch split over the devices
    sharding = NamedSharding(self.mesh, P("data"))
    return jax.tree.map(lambda a: a.at[idx].get(out_sharding=sharding), data)

  def _step(self, data, carry, step):
    trainable, state, opt_state = carry
    key = jax.random.fold_in(self.key_train, step)
    k_batch, k_loss = jax.random.split(key)
    batch = self._batch(data, k_batch)
    (_, evaluation), grads = jax.value_and_grad(self._loss, has_aux=True)(
      trainable, state, batch, step, k_loss
    )
    info = {**evaluation.info, **_learned_values(self.objective, trainable[1])}
    updates, opt_state = self.tx.update(grads, opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
    state = evaluation.state
    return (trainable, state, opt_state), info

  @functools.partial(jax.jit, static_argnums=(0, 4))
  def _chunk(self, carry, data, start, length):
    """``length`` steps from ``start``; returns the carry and the mean ``info``."""
    carry, infos = jax.lax.scan(
      functools.partial(self._step, data), carry, start + jnp.arange(length)
    )
    return carry, jax.tree.map(lambda x: jnp.mean(x, axis=0), infos)

  @functools.partial(jax.jit, static_argnums=(0, 2))
  def _head(self, data, n):
    """The first ``n`` training rows, on every device (like the validation split)."""
    if self.mesh is None:
      return {k: v[:n] for k, v in data.items()}
    replicated = NamedSharding(self.mesh, P())
    return {k: jax.reshard(v, replicated)[:n] for k, v in data.items()}

  @functools.partial(jax.jit, static_argnums=0)
  def _evaluate(self, carry, data, step):
    (params, objective_params), state, _ = carry
    batch = data
    outputs = self._outputs(params, batch, None)
    _, info = self.objective.apply(
      objective_params,
      step=step,
      state=state or None,
      key=self.key_eval,
      outputs=outputs,
      batch=batch,
      model=nnx.to_pure_dict(params),
      mesh=self.mesh,
    )
    info = {**info, **_learned_values(self.objective, objective_params)}
    if self.metrics is not None:
      _, values = self.metrics.apply(
        step=step, outputs=outputs, batch=batch, model=nnx.to_pure_dict(params), mesh=self.mesh
      )
      info = {
        **info,
        **{f"metric/{k[len('loss/') :]}": v for k, v in values.items() if k.startswith("loss/")},
      }
    return info

  def _check(self) -> list[str]:
    """Traces one step and one evaluation; returns the metric columns."""
    sample = {k: v[: self.batch_size or None] for k, v in self.dataset.train.items()}
    _as_config_error(
      "model", jax.eval_shape, self._outputs, self.carry[0][0], sample, self.key_train
    )
    try:
      jax.eval_shape(self._loss, self.carry[0], self.carry[1], sample, 0, self.key_train)
    except (ValueError, TypeError, KeyError, IndexError) as err:
      raise self._blame(self.objective, "objective", sample, err) from None
    if self.mesh is not None:  # the whole step, with the batch split over the devices
      try:
        jax.eval_shape(self._step, self.train_data, self.carry, 0)
      except Exception as err:  # noqa: BLE001 (JAX's sharding errors have no public class)
        if type(err).__name__ != "ShardingTypeError":
          raise
        raise ConfigError(
          "train.shard",
          f"the objective cannot take a batch split over "
          f"{self.devices} devices ({_one_line(err)}). Use a sharded loss "
          "given the mesh (e.g. loss: sharded_siglip_loss with mesh: {ref: "
          "mesh}) or train.shard: false.",
        ) from None
    try:
      info = jax.eval_shape(self._evaluate, self.carry, self.val_data, 0)
    except (ValueError, TypeError, KeyError, IndexError) as err:
      if self.metrics is None:
        raise ConfigError("objective", _one_line(err)) from None
      raise self._blame(self.metrics, "metrics", dict(self.val_data), err) from None
    return list(info)

  def _blame(self, objective, section, sample, err) -> ConfigError:
    """A ConfigError for a failed trace of ``objective`` (the config's ``section``:
    ``objective`` or ``metrics``), at the key path that made it.

    Traces each term alone to find the one that fails, then that term with
    each of its hyperparameters (and ``where`` / ``weights``) at its default, to
    find the key: ``objective.terms.fit.delta``, not ``objective``.
    """
    raw = self.config.raw.get(section)
    if section == "metrics" and isinstance(raw, dict):
      raw = {"terms": raw}  # a flat mapping of names to terms
      paths = {
        k: v.replace("metrics.terms.", "metrics.", 1) for k, v in term_paths(raw, section).items()
      }
    else:
      paths = term_paths(raw, section)
    params = self.carry[0][0]
    for name, term in objective.terms().items():
      if self._traces(term, params, sample):
        continue
      path = find_term_path(paths, name) or section
      for key, _ in term.kwargs:
        default = _default_of(term.fn, key)
        kwargs = tuple((k, v) for k, v in term.kwargs if k != key or default is not _NO_DEFAULT)
        kwargs = tuple((k, default if k == key else v) for k, v in kwargs)
        if self._traces(dataclasses.replace(term, kwargs=kwargs), params, sample):
          return ConfigError(f"{path}.{key}", _one_line(err))
      return ConfigError(path, _one_line(err))
    return ConfigError(section, _one_line(err))

  def _traces(self, term, params, sample) -> bool:
    """Whether ``term`` alone traces on the model's outputs for ``sample``."""

    def loss(params, batch, key):
      outputs = self._outputs(params, batch, key)
      return term.apply(
        term.init(key),
        step=0,
        key=key,
        outputs=outputs,
        batch=batch,
        model=nnx.to_pure_dict(params),
        mesh=self.mesh,
      )

    try:
      jax.eval_shape(loss, params, sample, self.key_train)
    except (ValueError, TypeError, KeyError, IndexError):
      return False
    return True

  # ------------------------------------------------------------ driving

  def train(
    self,
    steps: int,
    *,
    on_row: Callable[[dict], None],
    start: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
    on_chunk: Callable[[int], None] = lambda step: None,
    first_rows: bool = True,
  ) -> int:
    """Runs ``steps`` steps, calling ``on_row`` with each train and validation row.

    ``on_chunk(step)`` is called after each compiled call's rows (where a
    checkpoint is taken). ``first_rows=False`` leaves out the rows of step
    ``start`` (a resumed run has them already). Chunks end at multiples of
    ``log_every``, so a run resumed at such a step makes the same calls.

    Returns the number of steps done: fewer when ``should_stop()`` turns true
    (it is asked between compiled calls) or a ``KeyboardInterrupt`` stops a call.
    """
    settings = self.config.train
    t0 = time.perf_counter()

    def row(split, step, info):
      on_row(
        {
          "step": step,
          "split": split,
          "time": round(time.perf_counter() - t0, 4),
          **{k: float(v) for k, v in info.items()},
        }
      )

    step = start
    if start == 0 and first_rows:  # where the training curve starts: the untrained model
      # on as many training examples as the validation split has (one compiled call serves)
      n = min(self.dataset.n_val, self.dataset.n_train)
      info = self._evaluate(self.carry, self._head(self.train_data, n), step)
      row("train", step, {k: v for k, v in info.items() if not k.startswith("metric/")})
    if first_rows:
      row("val", step, self._evaluate(self.carry, self.val_data, step))
    while step < start + steps and not should_stop():
      length = min(settings.log_every - step % settings.log_every, start + steps - step)
      self.carry, info = self._chunk(self.carry, self.train_data, step, length)
      previous, step = step, step + length
      row("train", step, info)
      if step // settings.eval_every > previous // settings.eval_every or step == start + steps:
        row("val", step, self._evaluate(self.carry, self.val_data, step))
      on_chunk(step)
    return step - start


_NO_DEFAULT = object()


def _default_of(fn, key):
  """The default of ``fn``'s keyword ``key`` (``_NO_DEFAULT`` if it has none)."""
  try:
    param = inspect.signature(fn).parameters.get(key)
  except (TypeError, ValueError):
    return _NO_DEFAULT
  if param is None or param.default is inspect.Parameter.empty:
    return _NO_DEFAULT
  return param.default


def _learnables(term: Term) -> dict[str, Learnable]:
  """A term's learned arguments by name (its objective params are stored under them)."""
  slots = [*zip(term.input_names, term.inputs), *term.kwargs]
  return {k: v for k, v in slots if isinstance(v, Learnable)}


def _learned_values(objective: Objective, params: dict[str, Any]) -> dict[str, jax.Array]:
  """``param/<path>``: each scalar learned value of the objective, as its terms see
  it (a learnable's transform applied; weighting schemes' params as stored)."""
  out = {}
  terms = objective.terms()
  for owner, tree in params.items():
    term = terms.get(owner)
    learnables = _learnables(term) if term is not None else {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      if leaf.size != 1:
        continue
      name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
      if name in learnables:
        leaf = learnables[name].value(leaf)
      out[f"param/{owner}/{name}"] = jnp.reshape(leaf, ())
  return out


MARKER = "INCOMPLETE"
"""The file a run directory holds until the run's last file is written."""

_RUN_FILES = (
  "summary.json",
  "metrics.csv",
  "metrics.jsonl",
  "loss_curves.png",
  "weights.png",
  "learned.png",
  "metrics.png",
)


def check_out_dir(out: pathlib.Path, *, overwrite: bool = False) -> None:
  """Refuses an output path that is a file, or that holds an interrupted run.

  Raises:
    ConfigError: at ``--out``, with the fix.
  """
  if out.exists() and not out.is_dir():
    raise ConfigError(
      "--out",
      f"{str(out)!r} is a file; the run writes a directory of "
      "files: give a directory (new or existing).",
    )
  for parent in out.parents:
    if parent.exists() and not parent.is_dir():
      raise ConfigError(
        "--out", f"{str(out)!r} lies under {str(parent)!r}, which is a file; give a directory."
      )
  if overwrite or not out.is_dir():
    return
  interrupted = (out / MARKER).exists()
  try:
    interrupted = interrupted or json.loads((out / "summary.json").read_text(encoding="utf-8")).get(
      "interrupted", False
    )
  except (OSError, ValueError, AttributeError):
    pass
  if interrupted:
    step = latest_step(out)
    resume = (
      f"rerun with --resume to continue it from its checkpoint of step {step}, or "
      if step is not None
      else "it kept no checkpoint to resume from (train.checkpoint_every); rerun "
    )
    raise ConfigError(
      "--out",
      f"{str(out)!r} holds an interrupted run; {resume}with --overwrite to replace it, "
      "or give another --out.",
    )


def check_resumable(out: pathlib.Path, config: Config) -> int:
  """The step to resume the run in ``out`` from, after checking that it is ``config``'s run.

  The run directory must hold a complete checkpoint and the same config
  (``train.steps`` may differ: a finished run can be continued further).

  Raises:
    ConfigError: at ``--resume``, saying what is missing or what differs.
  """
  step = latest_step(out)
  if step is None:
    raise ConfigError(
      "--resume",
      f"{str(out)!r} holds no complete checkpoint to resume from (set "
      "train.checkpoint_every to keep one); rerun without --resume (and with --overwrite).",
    )
  try:
    saved = yamlio.parse((out / "config.yaml").read_text(encoding="utf-8"))
  except (OSError, ConfigError) as err:
    raise ConfigError("--resume", f"cannot read {str(out / 'config.yaml')!r}: {err}.") from None
  differs = _first_difference(_without_steps(saved), _without_steps(config.raw))
  if differs is not None:
    raise ConfigError(
      "--resume",
      f"the config differs from the one the run in {str(out)!r} was started with, at "
      f"{differs or 'the top'}; resume with the same config (only train.steps may change).",
    )
  return step


def _without_steps(raw: Any) -> Any:
  raw = yamlio.plain(raw)
  if isinstance(raw, dict) and isinstance(raw.get("train"), dict):
    raw = {**raw, "train": {k: v for k, v in raw["train"].items() if k != "steps"}}
  return raw


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
  if isinstance(a, dict) and isinstance(b, dict):
    for k in sorted(set(a) | set(b), key=str):
      sub = f"{path}.{k}" if path else str(k)
      if k not in a or k not in b:
        return sub
      found = _first_difference(a[k], b[k], sub)
      if found is not None:
        return found
    return None
  return None if a == b else path


def _prepare_dir(out: pathlib.Path, config: Config, *, resume: bool = False) -> None:
  """Makes the run directory: the marker first, then no file of an earlier run.

  A resumed run keeps the metrics files and the checkpoints.
  """
  try:
    out.mkdir(parents=True, exist_ok=True)
    _mark(out, "training has not finished; metrics.* holds the rows written so far.")
    for name in _RUN_FILES:  # a metrics file in the other format would be stale
      if not (resume and name.startswith("metrics.")):
        (out / name).unlink(missing_ok=True)
    if not resume:
      shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    (out / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
  except OSError as err:
    raise ConfigError(
      "--out", f"cannot write the run directory {str(out)!r}: {err.strerror or err}."
    ) from None


def _mark(out: pathlib.Path, what: str) -> None:
  (out / MARKER).write_text(
    f"This run is incomplete: {what}\nRerun it with --resume to continue it from its last "
    "checkpoint (if train.checkpoint_every kept one), or with --overwrite to replace it.\n",
    encoding="utf-8",
  )


def _rows_until(path: pathlib.Path, step: int) -> list[dict[str, Any]]:
  """The rows of a metrics file up to ``step`` (a lost process may have cut the last line)."""
  rows = []
  try:
    with open(path, newline="", encoding="utf-8") as f:
      if path.suffix == ".jsonl":
        for line in f:
          try:
            rows.append(json.loads(line))
          except ValueError:
            break
      else:
        rows = [r for r in csv.DictReader(f) if None not in r.values()]
  except OSError:
    return []
  kept = []
  for r in rows:
    try:
      if int(r["step"]) <= step and r.get("split") in ("train", "val"):
        kept.append(r)
    except (KeyError, TypeError, ValueError):
      break
  return [_parsed_row(r) for r in kept]


def _parsed_row(row: dict[str, Any]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for k, v in row.items():
    if k == "split" or v in ("", None):
      out[k] = v
    elif k == "step":
      out[k] = int(v)
    else:
      out[k] = float(v)
  return {k: v for k, v in out.items() if v not in ("", None)}


def _any_process(flag: bool) -> bool:
  """Whether ``flag`` is true in any process (every process must ask together)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils

  return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def run(
  config: Config,
  out_dir: str | pathlib.Path | None = None,
  *,
  progress: bool = True,
  console: Console | None = None,
  overwrite: bool = False,
  stop: StopRequest | None = None,
  resume: bool = False,
) -> RunResult:
  """Trains ``config``'s model with its objective; writes the run directory.

  ``out_dir`` (default ``runs/<name>``) receives ``config.yaml``, the metrics
  file (``metrics.csv`` or ``metrics.jsonl``), the plots and ``summary.json``;
  files of an earlier run there are removed first. On Ctrl-C during training
  the rows so far are kept, the plots and summary are still written, and the
  result says ``interrupted``.

  With ``train.checkpoint_every`` the run keeps its last complete checkpoint
  in ``out_dir/checkpoints`` (taken every that many steps, at the end, and
  when it is stopped), and ``resume=True`` continues it from there to the
  same final state as a run that was never stopped.

  In a run over several processes (see :mod:`jaxobj.train.distributed`)
  every process calls this; process 0 alone writes the files and shows the
  progress bar.

  Args:
    config: a checked config.
    out_dir: the run directory.
    progress: show a progress bar.
    console: where the progress bar goes (a rich Console; default stderr).
    overwrite: replace an interrupted run in ``out_dir`` (otherwise refused).
    stop: the Ctrl-C flag to read (default: one installed for this call).
    resume: continue the run in ``out_dir`` from its last checkpoint.

  Raises:
    ConfigError: the config's parts do not fit together, or ``out_dir`` is
      unusable (a file, or an interrupted run without ``overwrite``), or
      ``resume`` finds no checkpoint or another config there.
    KeyboardInterrupt: Ctrl-C before training started (nothing is written), or
      a second Ctrl-C during the final writes (the ``INCOMPLETE`` marker stays).
  """
  if stop is None:
    with StopRequest() as installed:
      return run(
        config,
        out_dir,
        progress=progress,
        console=console,
        overwrite=overwrite,
        stop=installed,
        resume=resume,
      )
  t0 = time.perf_counter()
  out = pathlib.Path(out_dir) if out_dir is not None else pathlib.Path("runs") / config.name
  try:
    start = check_resumable(out, config) if resume else 0
    if not resume:
      check_out_dir(out, overwrite=overwrite)
    trainer = Trainer(config)
  except ConfigError as err:
    raise err.with_source(config.source) if config.source and not resume else err from None
  primary = distributed.is_primary()
  if _any_process(stop.requested):
    raise KeyboardInterrupt("before training started; nothing was written")
  fmt = config.train.metrics_format
  metrics_path = out / f"metrics.{fmt}"
  kept = _rows_until(metrics_path, start) if resume else []
  if primary:
    _prepare_dir(out, config, resume=resume)
  _barrier("jaxobj: run directory ready")
  every = config.train.checkpoint_every
  checkpoints = Checkpoints(out) if every is not None or resume else None
  if checkpoints is not None and resume:
    trainer.carry = checkpoints.restore(start, trainer.carry)
  history = History()
  steps = config.train.steps
  interrupted = False
  done = start
  saved = [start]

  def save(step: int, final: bool = False) -> None:
    due = every is not None and (step // every > saved[0] // every or final)
    if checkpoints is not None and due and step != saved[0]:
      checkpoints.save(step, trainer.carry)
      saved[0] = step

  def where() -> str:
    step = latest_step(out)
    if step is None:
      return "no checkpoint was complete; the run must start again"
    return f"the run directory {out} keeps the checkpoint of step {step}: continue with --resume"

  bar = _Progress(steps, config.name, enabled=progress and primary, console=console)
  watchdog = distributed.Watchdog(config.train.peer_timeout, where)
  writer = MetricsWriter(metrics_path, trainer.columns, fmt) if primary else None
  try:
    for row in kept:
      history.append(row)
      if writer is not None:
        writer.write(row)

    def on_row(row):
      history.append(row)
      if writer is not None:
        writer.write(row)
      if row["split"] == "train":
        bar.update(row["step"], row["loss"])

    try:
      with watchdog, bar:
        done = start + trainer.train(
          steps - start,
          start=start,
          on_row=on_row,
          on_chunk=save,
          first_rows=not resume,
          should_stop=lambda: _any_process(stop.requested),
        )
        save(done, final=True)  # the end, or where Ctrl-C stopped it
    except KeyboardInterrupt:  # a second Ctrl-C inside a compiled call
      interrupted = True
      done = history.rows[-1]["step"] if history.rows else 0
  finally:
    if writer is not None:
      writer.close()
    if checkpoints is not None:
      checkpoints.close()
  interrupted = interrupted or _any_process(stop.requested) or done < steps
  diagnosis = diagnose_history(history)
  files = {"config": out / "config.yaml", "metrics": metrics_path}
  result = RunResult(
    config.name, out, history, diagnosis, steps, done, interrupted, 0.0, files, trainer.devices
  )
  if checkpoints is not None:
    files["checkpoint"] = out / CHECKPOINTS
  if not primary:
    result.wall_time = time.perf_counter() - t0
    return result
  try:
    _mark(
      out,
      "training " + ("was interrupted" if interrupted else "finished") + f" after "
      f"{done} of {steps} steps ({metrics_path.name} holds its rows), but the plots and "
      "summary.json were not all written.",
    )
    title = f"{config.name}" + (" (interrupted)" if interrupted else "")
    files["summary"] = out / "summary.json"
    result.wall_time = time.perf_counter() - t0
    # the summary first (it is quick, and says what the run did), then the plots
    files["summary"].write_text(json.dumps(_summary_json(result), indent=2), encoding="utf-8")
    files.update(plot_run(history, out, title=title))
    files["summary"] = files.pop("summary")  # listed last, as before
    result.wall_time = time.perf_counter() - t0
    result.interrupted = interrupted or stop.requested  # Ctrl-C while the files were written
    files["summary"].write_text(json.dumps(_summary_json(result), indent=2), encoding="utf-8")
    (out / MARKER).unlink(missing_ok=True)
  except KeyboardInterrupt:
    raise KeyboardInterrupt(
      f"while writing the plots and the summary; {out / MARKER} says what is missing"
    ) from None
  return result


def _summary_json(result: RunResult) -> dict[str, Any]:
  def last(split):
    rows = [r for r in result.history.rows if r["split"] == split]
    return {k: v for k, v in rows[-1].items() if k not in ("split",)} if rows else {}

  def clean(d):
    return {
      k: (v if not isinstance(v, float) or math.isfinite(v) else repr(v)) for k, v in d.items()
    }

  return {
    "name": result.name,
    "steps": result.steps,
    "steps_done": result.steps_done,
    "interrupted": result.interrupted,
    "wall_time_s": round(result.wall_time, 3),
    "devices": result.devices,
    "diagnosis": {
      "pattern": result.diagnosis.pattern,
      "title": result.diagnosis.title,
      "evidence": result.diagnosis.evidence,
      "advice": result.diagnosis.advice,
    },
    "final": {"train": clean(last("train")), "val": clean(last("val"))},
    "files": {k: str(v) for k, v in result.files.items()},
  }


class _Progress:
  """A rich progress bar on stderr (a no-op when disabled)."""

  def __init__(self, total: int, name: str, *, enabled: bool, console=None):
    self.enabled = enabled
    if not enabled:
      return
    from rich.console import Console
    from rich.progress import (
      BarColumn,
      MofNCompleteColumn,
      Progress,
      TextColumn,
      TimeElapsedColumn,
      TimeRemainingColumn,
    )

    self.progress = Progress(
      TextColumn("[bold]{task.description}"),
      BarColumn(),
      MofNCompleteColumn(),
      TextColumn("loss {task.fields[loss]}"),
      TimeElapsedColumn(),
      TimeRemainingColumn(),
      console=console or Console(stderr=True),
    )
    self.task = self.progress.add_task(name, total=total, loss="-")

  def __enter__(self):
    if self.enabled:
      self.progress.__enter__()
    return self

  def __exit__(self, *exc):
    if self.enabled:
      self.progress.__exit__(*exc)

  def update(self, step: int, loss: float):
    if self.enabled:
      self.progress.update(self.task, completed=step, loss=f"{loss:.4g}")
