r"""``jaxobj compare``: losses side by side, in one compiled call each.

Curves. Every loss of ``compare.losses`` is evaluated along one axis, with
its gradient, inside a single ``jax.jit``:

- ``axis: residual`` — regression losses at ``predictions = r``,
  ``targets = 0``: how MSE, MAE, Huber, log-cosh and Barron's loss grow with
  the residual and how hard they pull (the gradient is the influence of one
  residual on the fit);
- ``axis: p_t`` — binary classification losses at ``logits = logit(p_t)``,
  ``labels = 1``: the loss and its gradient with respect to the logit as the
  probability of the true class goes from wrong to right (focal loss flattens
  the right end: easy examples stop contributing).

A ``grid`` runs one loss over a hyperparameter's values with ``jax.vmap``
(hyperparameters are traced values, so the grid compiles once).

Fits. With ``compare.fit``, every loss (and grid member) is fitted to the
same data in one vmapped training run: full-batch Adam, the loss chosen per
run with ``lax.switch``. A ``constant`` model is one number predicting every
target: its fit is the loss's estimate of location (the mean for squared
error, the median for absolute error, in between for the robust losses; the
base rate's logit for cross-entropy). A ``linear`` model fits ``x @ w + b``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxobj.config.errors import ConfigError
from jaxobj.config.experiment import CompareSettings, Config
from jaxobj.train.plots import pyplot
from jaxobj.workloads import data as data_lib

if TYPE_CHECKING:  # rich is imported when a summary is printed
  from rich.console import Console

__all__ = ["CompareResult", "curves", "fit", "run", "print_summary"]


@dataclasses.dataclass
class CompareResult:
  """Curves (label -> (values, gradients) over ``x``), the grid's, and the fits."""

  name: str
  out_dir: pathlib.Path
  axis: str
  x: np.ndarray
  curves: dict[str, tuple[np.ndarray, np.ndarray]]
  grid: dict[str, Any] | None
  fits: dict[str, dict[str, Any]]
  references: dict[str, dict[str, float]]
  files: dict[str, pathlib.Path]
  wall_time: float


def _inputs(spec, axis, x):
  """The loss's positional inputs along the axis."""
  if axis == "residual":
    return (x, jnp.zeros_like(x)) if len(spec.input_names) > 1 else (x,)
  logits = jnp.log(x) - jnp.log1p(-x)
  return logits, jnp.ones_like(x)


def _curve(spec, hyper, axis, x):
  """Per-point loss values and their derivatives along the axis variable
  (the residual, or the logit for ``p_t``)."""
  first, *rest = _inputs(spec, axis, x)
  per_point = lambda a: spec.fn(a, *rest, reduction="none", **hyper)
  values = per_point(first)
  grads = jax.grad(lambda a: jnp.sum(per_point(a)))(first)
  return values, grads


def curves(settings: CompareSettings) -> tuple[np.ndarray, dict, dict | None]:
  """``(x, {label: (values, grads)}, grid)`` for a compare section, in one jit call."""
  lo, hi = settings.range
  x = jnp.linspace(lo, hi, settings.points)

  @jax.jit
  def evaluate(x):
    out = {c.label: _curve(c.spec, c.hyper, settings.axis, x) for c in settings.losses}
    if settings.grid is not None:
      g = settings.grid
      out["__grid__"] = jax.vmap(
        lambda h: _curve(g["spec"], {**g["hyper"], g["over"]: h}, settings.axis, x)
      )(jnp.asarray(g["values"], jnp.float32))
    return out

  for c in settings.losses:
    _checked(
      f"compare.losses.{c.label}", lambda x, c=c: _curve(c.spec, c.hyper, settings.axis, x), x
    )
  if settings.grid is not None:
    g = settings.grid
    _checked(
      "compare.grid",
      lambda x: _curve(g["spec"], {**g["hyper"], g["over"]: 1.0}, settings.axis, x),
      x,
    )
  out = jax.tree.map(np.asarray, evaluate(x))
  grid_out = out.pop("__grid__", None)
  out = {c.label: out[c.label] for c in settings.losses}  # the config's order
  grid = None
  if settings.grid is not None:
    values, grads = grid_out
    grid = {
      "loss": settings.grid["spec"].name,
      "over": settings.grid["over"],
      "values": list(settings.grid["values"]),
      "curves": values,
      "grads": grads,
    }
  return np.asarray(x), out, grid


def _checked(path, fn, *args):
  try:
    jax.eval_shape(fn, *args)
  except (ValueError, TypeError, KeyError) as err:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    raise ConfigError(
      path, f"cannot evaluate it on this axis: {' '.join(str(msg).split())}"
    ) from None


# ---------------------------------------------------------------- fits


def _fit_losses(settings: CompareSettings):
  """(labels, [(spec, hyper)], grid labels, grid (spec, hyper, over, values))."""
  labels = [c.label for c in settings.losses]
  fixed = [(c.spec, c.hyper) for c in settings.losses]
  grid = None
  grid_labels = []
  if settings.grid is not None:
    g = settings.grid
    grid = (g["spec"], g["hyper"], g["over"], jnp.asarray(g["values"], jnp.float32))
    grid_labels = [f"{g['spec'].name}({g['over']}={v:g})" for v in g["values"]]
  return labels, fixed, grid_labels, grid


def fit(
  settings: CompareSettings, batch: dict[str, np.ndarray], *, steps: int | None = None
) -> dict[str, dict[str, Any]]:
  """Fits every compared loss (and grid member) on ``batch`` in one vmapped run.

  Returns ``{label: {parameter: value}}``: ``location`` for a constant model
  on the residual axis, ``logit`` and ``probability`` on the ``p_t`` axis,
  ``w`` and ``b`` for a linear model.
  """
  f = settings.fit
  if f is None:
    raise ConfigError("compare.fit", "this comparison has no fit: section to fit the losses with.")
  steps = steps or f.steps
  if f.target not in batch:
    raise ConfigError(
      "compare.fit.target", f"the data has no {f.target!r}; it has {', '.join(sorted(batch))}."
    )
  y = jnp.asarray(batch[f.target], jnp.float32)
  if f.model == "linear":
    if f.input not in batch:
      raise ConfigError(
        "compare.fit.input", f"the data has no {f.input!r}; it has {', '.join(sorted(batch))}."
      )
    x = jnp.asarray(batch[f.input], jnp.float32).reshape(y.shape[0], -1)
    init = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
    predict = lambda p: x @ p["w"] + p["b"]
  else:
    init = {"c": jnp.zeros(())}
    predict = lambda p: jnp.broadcast_to(p["c"], y.shape)
  tx = optax.adam(optax.cosine_decay_schedule(f.learning_rate, steps, alpha=1e-3))
  labels, fixed, grid_labels, grid = _fit_losses(settings)

  def objective(spec, hyper):
    return lambda p: spec.fn(predict(p), y, **hyper)

  def train(loss):
    def step(carry, _):
      p, s = carry
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (init, tx.init(init)), None, length=steps)
    return p

  @jax.jit
  def run_all():
    out = {}
    if fixed:
      branches = [objective(spec, hyper) for spec, hyper in fixed]
      out["fixed"] = jax.vmap(lambda i: train(lambda p: jax.lax.switch(i, branches, p)))(
        jnp.arange(len(branches))
      )
    if grid is not None:
      spec, hyper, over, values = grid
      out["grid"] = jax.vmap(lambda h: train(objective(spec, {**hyper, over: h})))(values)
    return out

  for label, (spec, hyper) in zip(labels, fixed):
    _checked_fit(f"compare.losses.{label}", objective(spec, hyper), init)
  if grid is not None:
    spec, hyper, over, values = grid
    _checked_fit("compare.grid", objective(spec, {**hyper, over: values[0]}), init)
  out = jax.tree.map(np.asarray, run_all())
  fits = {}
  for group, names in (("fixed", labels), ("grid", grid_labels)):
    for i, name in enumerate(names):
      fits[name] = _describe({k: v[i] for k, v in out[group].items()}, settings.axis)
  return fits


def _checked_fit(path, loss, init):
  try:
    jax.eval_shape(jax.grad(loss), init)
  except (ValueError, TypeError, KeyError) as err:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    raise ConfigError(path, f"cannot fit it on this data: {' '.join(str(msg).split())}") from None


def _describe(p: dict[str, np.ndarray], axis: str) -> dict[str, Any]:
  if "c" in p:
    c = float(p["c"])
    if axis == "p_t":
      return {"logit": c, "probability": float(1.0 / (1.0 + math.exp(-c)))}
    return {"location": c}
  return {"w": [float(v) for v in np.ravel(p["w"])], "b": float(p["b"])}


def _references(settings, batch) -> dict[str, dict[str, float]]:
  """What a constant fit is compared with: the data's mean and median, or its base rate."""
  y = np.asarray(batch[settings.fit.target], np.float64)
  if settings.fit.model != "constant":
    return {}
  if settings.axis == "p_t":
    rate = float(np.mean(y))
    return {
      "base rate": {
        "logit": math.log(rate / (1.0 - rate))
        if 0 < rate < 1
        else math.copysign(math.inf, rate - 0.5),
        "probability": rate,
      }
    }
  return {"mean": {"location": float(np.mean(y))}, "median": {"location": float(np.median(y))}}


# ---------------------------------------------------------------- driver


def run(
  config: Config, out_dir: str | pathlib.Path | None = None, *, fit_steps: int | None = None
) -> CompareResult:
  """Curves, grid and fits of ``config.compare``; writes plots and ``compare.json``."""
  t0 = time.perf_counter()
  settings = config.compare
  if settings is None:
    raise ConfigError("compare", "this config has no compare: section.")
  out = pathlib.Path(out_dir) if out_dir is not None else pathlib.Path("runs") / config.name
  out.mkdir(parents=True, exist_ok=True)
  x, curve_values, grid = curves(settings)
  fits, references = {}, {}
  batch = None
  if settings.fit is not None:
    if config.data is None:
      raise ConfigError("data", "compare.fit fits the losses on data: add a data: section.")
    try:
      dataset = data_lib.DATASETS[config.data.name](**config.data.kwargs)
    except (ValueError, TypeError) as err:
      raise ConfigError("data", str(err)) from None
    batch = dataset.train
    fits = fit(settings, batch, steps=fit_steps)
    references = _references(settings, batch)
  files = {"curves": _plot_curves(config.name, settings, x, curve_values, grid, out / "curves.png")}
  if fits:
    files["fit"] = _plot_fit(config.name, settings, batch, fits, references, out / "fit.png")
  result = CompareResult(
    config.name, out, settings.axis, x, curve_values, grid, fits, references, files, 0.0
  )
  files["json"] = out / "compare.json"
  result.wall_time = time.perf_counter() - t0
  files["json"].write_text(json.dumps(_as_json(result), indent=1), encoding="utf-8")
  return result


def _as_json(r: CompareResult) -> dict[str, Any]:
  def floats(a):
    return [round(float(v), 6) for v in np.ravel(a)]

  out = {
    "name": r.name,
    "axis": r.axis,
    "x": floats(r.x),
    "curves": {k: {"loss": floats(v), "grad": floats(g)} for k, (v, g) in r.curves.items()},
    "fits": r.fits,
    "references": r.references,
    "wall_time_s": round(r.wall_time, 3),
  }
  if r.grid is not None:
    out["grid"] = {
      "loss": r.grid["loss"],
      "over": r.grid["over"],
      "values": r.grid["values"],
      "curves": [floats(c) for c in r.grid["curves"]],
      "grads": [floats(g) for g in r.grid["grads"]],
    }
  return out


_AXIS_LABEL = {
  "residual": "residual r = prediction − target",
  "p_t": "p_t (probability of the true class)",
}
_GRAD_LABEL = {"residual": "∂ loss / ∂ r", "p_t": "∂ loss / ∂ logit"}


def _plot_curves(name, settings, x, curve_values, grid, path):
  plt = pyplot()
  rows = 2 if grid is not None and curve_values else 1
  fig, axes = plt.subplots(rows, 2, figsize=(12, 4.2 * rows), squeeze=False)
  for label, (v, g) in curve_values.items():
    axes[0, 0].plot(x, v, label=label)
    axes[0, 1].plot(x, g, label=label)
  panels = [(axes[0], "losses")] if curve_values else []
  if grid is not None:
    row = axes[1] if curve_values else axes[0]
    cmap = plt.get_cmap("viridis")
    for i, value in enumerate(grid["values"]):
      color = cmap(i / max(len(grid["values"]) - 1, 1))
      label = f"{grid['over']}={value:g}"
      row[0].plot(x, grid["curves"][i], color=color, label=label)
      row[1].plot(x, grid["grads"][i], color=color, label=label)
    panels.append((row, f"{grid['loss']} over {grid['over']}"))
  for row, title in panels:
    row[0].set(title=f"{title}: value", xlabel=_AXIS_LABEL[settings.axis], ylabel="loss")
    row[1].set(
      title=f"{title}: gradient",
      xlabel=_AXIS_LABEL[settings.axis],
      ylabel=_GRAD_LABEL[settings.axis],
    )
    for ax in row:
      ax.grid(alpha=0.3)
      ax.legend(fontsize="small")
      ax.axhline(0.0, color="grey", lw=0.6)
  fig.suptitle(f"{name}: one compiled call")
  fig.tight_layout()
  return _save(plt, fig, path)


def _plot_fit(name, settings, batch, fits, references, path):
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(10, 4.5))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  y = np.asarray(batch[settings.fit.target], np.float64)
  if settings.fit.model == "linear":
    x = np.asarray(batch[settings.fit.input], np.float64).reshape(len(y), -1)
    ax.scatter(x[:, 0], y, s=6, color="grey", alpha=0.5, label="data")
    grid = np.linspace(x[:, 0].min(), x[:, 0].max(), 50)
    for i, (label, p) in enumerate(fits.items()):
      ax.plot(grid, p["w"][0] * grid + p["b"], color=colors[i % len(colors)], label=label)
    ax.set(xlabel=f"{settings.fit.input}[:, 0]", ylabel=settings.fit.target)
  else:
    key = "probability" if settings.axis == "p_t" else "location"
    if settings.axis == "p_t":
      ax.bar(
        list(fits),
        [p[key] for p in fits.values()],
        color=[colors[i % len(colors)] for i in range(len(fits))],
      )
      plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
      ax.set(ylabel="fitted probability of the positive class")
    else:
      ax.hist(y, bins=40, color="lightgrey", label="data")
      for i, (label, p) in enumerate(fits.items()):
        ax.axvline(p[key], color=colors[i % len(colors)], lw=2, label=f"{label}: {p[key]:.3f}")
      ax.set(xlabel=settings.fit.target, ylabel="count")
    for (ref, values), style in zip(references.items(), ("--", ":")):
      line = ax.axhline if settings.axis == "p_t" else ax.axvline
      line(values[key], color="black", ls=style, label=f"{ref}: {values[key]:.3f}")
  ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_title(f"{name}: each loss fitted in one vmapped run ({settings.fit.model} model)")
  fig.tight_layout()
  return _save(plt, fig, path)


def _save(plt, fig, path):
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return pathlib.Path(path)


def print_summary(result: CompareResult, console: Console) -> None:
  """A table of the fitted parameters (with the references) and the files written."""
  from rich.table import Table

  if result.fits:
    table = Table(title=f"{result.name}: fitted in one vmapped run")
    table.add_column("loss", style="bold cyan", no_wrap=True)
    keys = list(next(iter(result.fits.values())))
    for k in keys:
      table.add_column(k, justify="right")
    for label, p in result.fits.items():
      table.add_row(label, *[_fmt(p[k]) for k in keys])
    for ref, values in result.references.items():
      table.add_row(
        f"[green]{ref} of the data", *[_fmt(values[k]) if k in values else "" for k in keys]
      )
    console.print(table)
  losses = ", ".join(result.curves) or "-"
  grid = (
    (
      f"; grid: {result.grid['loss']} over {result.grid['over']} = "
      f"{', '.join(f'{v:g}' for v in result.grid['values'])}"
    )
    if result.grid
    else ""
  )
  console.print(f"curves along {result.axis}: {losses}{grid}", highlight=False)
  console.print(
    f"wrote {', '.join(str(p) for p in result.files.values())} ({result.wall_time:.1f} s)",
    highlight=False,
  )


def _fmt(v) -> str:
  if isinstance(v, list):
    return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
  return f"{v:.4g}"
