"""Plots of a run or of your own loop's :class:`~jaxobj.train.history.History`.

Each function returns a matplotlib :class:`~matplotlib.figure.Figure` (shown
by a notebook as the cell's value) and, given a ``path``, saves it there as
PNG, creating the folder. Figures are made without pyplot's global state, so
drawing many of them keeps no memory. Legends sit outside the axes, so they
never cover a curve.

- :func:`plot_loss_curves`: the total loss (train and validation), and every
  term's value, one colour per term, train solid and validation dashed;
  ``weighted=True`` draws each term's value × its weight, its contribution
  to the total;
- :func:`plot_weights`: effective weights over training, when any of them
  moves (schedules, learned or adaptive weighting);
- :func:`plot_learned`: the objective's learned values (``param/...``), each
  on its own axes, since they live on different scales;
- :func:`plot_metrics`: validation metrics;
- :func:`plot_run`: all of them as PNG files in one folder (what ``jaxobj
  run`` writes).

Example:
  >>> import jaxobj.train as jt
  >>> history = jt.History()
  >>> for step in range(5):
  ...   history.record(step, {"loss": 1.0 / (1 + step), "param/t": 2.3 + 0.01 * step})
  >>> figure = jt.plot_learned(history)
  >>> [ax.get_title() for ax in figure.axes]
  ['t']
"""

from __future__ import annotations

import math
import pathlib
import sys
import types
from typing import TYPE_CHECKING

import numpy as np

from jaxobj.train.history import History, term_keys

if TYPE_CHECKING:  # matplotlib is imported when a plot is made
  from matplotlib.axes import Axes
  from matplotlib.figure import Figure

__all__ = [
  "plot_run",
  "plot_loss_curves",
  "plot_weights",
  "plot_learned",
  "plot_metrics",
  "pyplot",
  "save_figure",
]


def pyplot() -> types.ModuleType:
  """matplotlib's pyplot, on the Agg backend (no display needed) unless pyplot is
  already in use (a notebook's inline backend, an interactive session).

  matplotlib (the ``plot`` extra) is imported here, when a plot is made, not
  with this module.
  """
  import matplotlib

  if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _figure(width: float, height: float) -> Figure:
  try:
    from matplotlib.figure import Figure
  except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
      "jaxobj's plots need matplotlib: pip install 'jaxobj[plot]' (or matplotlib)."
    ) from error
  return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | pathlib.Path, *, dpi: int = 110) -> pathlib.Path:
  """Saves ``figure`` at ``path`` (PNG, or the format of its suffix), creating the folder.

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=dpi)
  return path


def _log_scale_if_positive(ax: Axes, *arrays: np.ndarray) -> None:
  arrays = tuple(a for a in arrays if len(a))
  values = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(0)
  values = values[np.isfinite(values)]
  if len(values) and np.all(values > 0) and (values.max() / values.min() > 20):
    ax.set_yscale("log")


def _legend_outside(ax: Axes, **kwargs) -> None:
  handles, labels = ax.get_legend_handles_labels()
  if handles:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _finish(figure: Figure, title: str, path: str | pathlib.Path | None) -> Figure:
  if title:
    figure.suptitle(title)
  if path is not None:
    save_figure(figure, path)
  return figure


def _leaf_terms(history: History) -> list[str]:
  leaves = {k[len("count/") :] for k in history.keys("train") if k.startswith("count/")}
  return [
    k
    for k in term_keys(history.keys("train"))
    if k != "loss" and (not leaves or k[len("loss/") :] in leaves)
  ]


def _weighted(history: History, key: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, value × weight) of term ``key``, the weight read at each step (1 if not logged)."""
  steps, values = history.series(key, split)
  w_steps, w = history.series("weight/" + key[len("loss/") :], split)
  if not len(w):
    w_steps, w = history.series("weight/" + key[len("loss/") :], "train")
  if len(w):
    values = values * np.interp(steps, w_steps, w)
  return steps, values


def plot_loss_curves(
  history: History,
  path: str | pathlib.Path | None = None,
  *,
  title: str = "",
  weighted: bool = False,
) -> Figure:
  """The total-loss and per-term curves (train solid, validation dashed).

  The terms panel has one line per leaf term (its unweighted value, as in
  ``info``, or its contribution value × weight with ``weighted=True``, the
  weight read at each step); group and multi-task totals are left to the
  total's panel. A positive panel spanning more than a factor 20 is drawn on
  a log axis.

  Args:
    history: the rows to draw.
    path: where to save the figure (the folder is created); ``None`` saves nothing.
    title: a title over both panels.
    weighted: draw value × weight in the terms panel.

  Returns:
    The figure.
  """
  import matplotlib

  terms = _leaf_terms(history)
  figure = _figure(13.0 if terms else 7.5, 4.2)
  axes = figure.subplots(1, 2 if terms else 1, squeeze=False)[0]
  ax = axes[0]
  shown = []
  for split, style in (("train", "-"), ("val", "--")):
    steps, values = history.series("loss", split)
    if len(values):
      marker = "o" if split == "val" else None
      ax.plot(steps, values, style, color="black", marker=marker, markersize=3, label=split)
      shown.append(values)
  _log_scale_if_positive(ax, *shown)
  ax.set(title="total loss", xlabel="step", ylabel="loss")
  _legend_outside(ax)
  ax.grid(alpha=0.3)
  if terms:
    ax = axes[1]
    shown = []
    colors = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    for i, key in enumerate(terms):
      color = colors[i % len(colors)]
      name = key[len("loss/") :] + (" × weight" if weighted else "")
      for split, style in (("train", "-"), ("val", "--")):
        if weighted:
          steps, values = _weighted(history, key, split)
        else:
          steps, values = history.series(key, split)
        if len(values):
          ax.plot(steps, values, style, color=color, label=name if split == "train" else None)
          shown.append(values)
    _log_scale_if_positive(ax, *shown)
    what = "weighted terms (value × weight)" if weighted else "terms"
    ax.set(title=f"{what}, train solid, validation dashed", xlabel="step", ylabel="value")
    _legend_outside(ax, fontsize="small")
    ax.grid(alpha=0.3)
  return _finish(figure, title, path)


def _moving(history: History, prefix: str, split: str) -> list[str]:
  out = []
  for key in term_keys(history.keys(split), prefix):
    _, values = history.series(key, split)
    if len(values) > 1 and np.ptp(values) > 1e-6 * max(np.max(np.abs(values)), 1e-12):
      out.append(key)
  return out


def _plot_series(
  history: History,
  prefix: str,
  split: str,
  path: str | pathlib.Path | None,
  *,
  title: str,
  ylabel: str = "value",
) -> Figure | None:
  """One line per ``prefix`` key of ``split`` on one axes (``None`` when there is none)."""
  keys = term_keys(history.keys(split), prefix)
  if not keys:
    return None
  figure = _figure(8.0, 4.2)
  ax = figure.subplots()
  marker = "o" if split == "val" else None
  shown = []
  for key in keys:
    steps, values = history.series(key, split)
    ax.plot(steps, values, marker=marker, markersize=3, label=key[len(prefix) :])
    shown.append(values)
  _log_scale_if_positive(ax, *shown)
  ax.set(title=title, xlabel="step", ylabel=ylabel)
  _legend_outside(ax, fontsize="small")
  ax.grid(alpha=0.3)
  return _finish(figure, "", path)


def plot_weights(
  history: History, path: str | pathlib.Path | None = None, *, title: str = ""
) -> Figure | None:
  """The effective weights over training, if any of them changes; else ``None``.

  Args:
    history: the rows to draw (``weight/<term>`` columns).
    path: where to save the figure (the folder is created); ``None`` saves nothing.
    title: the axes' title.

  Returns:
    The figure, or ``None`` when every weight is constant.
  """
  if not _moving(history, "weight/", "train"):
    return None
  return _plot_series(
    history,
    "weight/",
    "train",
    path,
    ylabel="weight",
    title=title or "effective weights (∂ total / ∂ term)",
  )


def plot_learned(
  history: History, path: str | pathlib.Path | None = None, *, title: str = ""
) -> Figure | None:
  """The objective's learned values over training, each on its own axes; else ``None``.

  Learned values live on different scales (a log-temperature near 2.3, a
  bias near -10), so each ``param/<name>`` column gets its own axes, sharing
  the step axis, and each curve fills its axes.

  Args:
    history: the rows to draw (``param/<name>`` columns of the training rows).
    path: where to save the figure (the folder is created); ``None`` saves nothing.
    title: a title over the panels.

  Returns:
    The figure, or ``None`` when there is no learned value.
  """
  keys = term_keys(history.keys("train"), "param/")
  if not keys:
    return None
  cols = min(len(keys), 3)
  rows = math.ceil(len(keys) / cols)
  figure = _figure(4.2 * cols, 3.0 * rows)
  axes = np.ravel(figure.subplots(rows, cols, squeeze=False, sharex=True))
  for ax, key in zip(axes, keys):
    steps, values = history.series(key, "train")
    ax.plot(steps, values)
    ax.set(title=key[len("param/") :], xlabel="step")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
  for ax in axes[len(keys) :]:
    ax.set_visible(False)
  return _finish(figure, title or "learned objective values", path)


def plot_metrics(
  history: History, path: str | pathlib.Path | None = None, *, title: str = ""
) -> Figure | None:
  """The validation metrics over training, if there are any; else ``None``.

  Args:
    history: the rows to draw (``metric/<name>`` columns of the validation rows).
    path: where to save the figure (the folder is created); ``None`` saves nothing.
    title: the axes' title.

  Returns:
    The figure, or ``None`` when there is no metric.
  """
  return _plot_series(history, "metric/", "val", path, title=title or "validation metrics")


def plot_run(
  history: History, out_dir: str | pathlib.Path, *, title: str = ""
) -> dict[str, pathlib.Path]:
  """All of a run's plots as PNG files in ``out_dir`` (created).

  Returns:
    The paths written by kind: ``loss_curves`` always, ``weights_plot``,
    ``learned_plot`` and ``metrics_plot`` when there is something to draw.
  """
  out_dir = pathlib.Path(out_dir)
  written = {"loss_curves": out_dir / "loss_curves.png"}
  plot_loss_curves(history, written["loss_curves"], title=title)
  for kind, fn in (("weights", plot_weights), ("learned", plot_learned), ("metrics", plot_metrics)):
    path = out_dir / f"{kind}.png"
    if fn(history, path, title=f"{title}: {kind}" if title else "") is not None:
      written[f"{kind}_plot"] = path
  return written
