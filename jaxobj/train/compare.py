r"""``jaxobj compare``: losses side by side, in one compiled call each.

A thin layer over :func:`jaxobj.compare` and :func:`jaxobj.compare_fits`,
which do the work in Python (the config's section is turned into their
arguments; their errors name the config key).

Curves. Every loss of ``compare.losses`` is evaluated along one axis, with
its gradient, in one compiled call per loss:

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

Fits. With ``compare.fit``, every loss is fitted to the same data with
full-batch Adam (one compile per loss; a grid's members in one vmapped
run). A ``constant`` model is one number predicting every
target: its fit is the loss's estimate of location (the mean for squared
error, the median for absolute error, in between for the robust losses; the
base rate's logit for cross-entropy). A ``linear`` model fits ``x @ w + b``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxobj import comparison
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


def _partial(spec, hyper):
  return functools.partial(spec.fn, **hyper)


def _checked(path, fn, *args, **kwargs):
  """``fn(*args, **kwargs)``, its errors blamed on the config key at ``path``."""
  try:
    return fn(*args, **kwargs)
  except (ValueError, TypeError, KeyError) as err:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    raise ConfigError(path, " ".join(str(msg).split())) from None


def curves(settings: CompareSettings) -> tuple[np.ndarray, dict, dict | None]:
  """``(x, {label: (values, grads)}, grid)`` for a compare section
  (:func:`jaxobj.compare`: one compile per loss)."""
  axes = {"axis": settings.axis, "range": settings.range, "points": settings.points}
  out = {}
  x = None
  for c in settings.losses:
    r = _checked(
      f"compare.losses.{c.label}", comparison.compare, {c.label: _partial(c.spec, c.hyper)}, **axes
    )
    out[c.label], x = (r.values[c.label], r.grads[c.label]), r.x
  grid = None
  if settings.grid is not None:
    g = settings.grid
    name = g["spec"].name
    r = _checked(
      "compare.grid",
      comparison.compare,
      {name: _partial(g["spec"], g["hyper"])},
      grid={g["over"]: g["values"]},
      **axes,
    )
    x = r.x
    grid = {
      "loss": name,
      "over": g["over"],
      "values": list(g["values"]),
      "curves": r.values[name],
      "grads": r.grads[name],
    }
  assert x is not None  # the config has losses or a grid
  return x, out, grid


# ---------------------------------------------------------------- fits


def fit(
  settings: CompareSettings, batch: dict[str, np.ndarray], *, steps: int | None = None
) -> dict[str, dict[str, Any]]:
  """Fits every compared loss (and grid member) on ``batch``
  (:func:`jaxobj.compare_fits`).

  Returns ``{label: {parameter: value}}``: ``location`` for a constant model
  on the residual axis, ``logit`` and ``probability`` on the ``p_t`` axis,
  ``w`` and ``b`` for a linear model; grid members are labelled
  ``loss(over=value)``.
  """
  f = settings.fit
  if f is None:
    raise ConfigError("compare.fit", "this comparison has no fit: section to fit the losses with.")
  if f.target not in batch:
    raise ConfigError(
      "compare.fit.target", f"the data has no {f.target!r}; it has {', '.join(sorted(batch))}."
    )
  inputs = None
  if f.model == "linear":
    if f.input not in batch:
      raise ConfigError(
        "compare.fit.input", f"the data has no {f.input!r}; it has {', '.join(sorted(batch))}."
      )
    inputs = batch[f.input]
  options = {
    "inputs": inputs,
    "axis": settings.axis,
    "steps": steps or f.steps,
    "learning_rate": f.learning_rate,
  }
  fits = {}
  for c in settings.losses:
    r = _checked(
      f"compare.losses.{c.label}",
      comparison.compare_fits,
      {c.label: _partial(c.spec, c.hyper)},
      batch[f.target],
      **options,
    )
    fits[c.label] = r.params[c.label]
  if settings.grid is not None:
    g = settings.grid
    r = _checked(
      "compare.grid",
      comparison.compare_fits,
      {"grid": _partial(g["spec"], g["hyper"])},
      batch[f.target],
      grid={g["over"]: g["values"]},
      **options,
    )
    for v, p in zip(g["values"], r.params.values()):
      fits[f"{g['spec'].name}({g['over']}={v:g})"] = p
  return fits


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
    assert batch is not None and settings.fit is not None
    drawn = comparison.FitComparison(
      settings.axis,
      settings.fit.model,
      fits,
      references,
      np.asarray(batch[settings.fit.target]),
      None if settings.fit.model != "linear" else np.asarray(batch[settings.fit.input]),
    )
    title = f"{config.name}: each loss fitted in one vmapped run ({settings.fit.model} model)"
    files["fit"] = _save(drawn.plot(title=title), out / "fit.png")
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


def _plot_curves(name, settings, x, curve_values, grid, path):
  """The losses' row and the grid's row, each drawn by :meth:`jaxobj.Comparison.plot`."""
  rows = []
  if curve_values:
    rows.append(
      (
        "losses",
        comparison.Comparison(
          settings.axis,
          x,
          {k: v for k, (v, _) in curve_values.items()},
          {k: g for k, (_, g) in curve_values.items()},
          {},
          {k: () for k in curve_values},
        ),
      )
    )
  if grid is not None:
    over, loss = grid["over"], grid["loss"]
    rows.append(
      (
        f"{loss} over {over}",
        comparison.Comparison(
          settings.axis,
          x,
          {loss: np.asarray(grid["curves"])},
          {loss: np.asarray(grid["grads"])},
          {over: np.asarray(grid["values"])},
          {loss: (over,)},
        ),
      )
    )
  fig, axes = pyplot().subplots(len(rows), 2, figsize=(12, 4.2 * len(rows)), squeeze=False)
  for row, (title, drawn) in zip(axes, rows):
    drawn.plot(axes=row)
    row[0].set_title(f"{title}: value")
    row[1].set_title(f"{title}: gradient")
  fig.suptitle(f"{name}: one compiled call")
  fig.tight_layout()
  return _save(fig, path)


def _save(fig, path):
  fig.savefig(path, dpi=110)
  pyplot().close(fig)
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
