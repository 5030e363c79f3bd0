"""Plots of a run (matplotlib's Agg backend, PNG files).

- ``loss_curves.png``: the total loss (train and validation), and every
  term's value, one colour per term, train solid and validation dashed;
- ``weights.png``: effective weights over training, when any of them moves
  (schedules, learned or adaptive weighting);
- ``learned.png``: the objective's learned values, when it has any;
- ``metrics.png``: validation metrics, when the config lists any.
"""

from __future__ import annotations

import pathlib
import sys
import types

import numpy as np

from jaxobj.train.history import History, term_keys

__all__ = ["plot_run", "plot_loss_curves", "plot_weights", "plot_learned", "plot_metrics", "pyplot"]


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


def _log_scale_if_positive(ax, *arrays):
  values = np.concatenate([np.ravel(a) for a in arrays if len(a)]) if arrays else np.zeros(0)
  if (
    len(values)
    and np.all(np.isfinite(values))
    and np.all(values > 0)
    and (values.max() / values.min() > 20)
  ):
    ax.set_yscale("log")


def plot_loss_curves(
  history: History, path: str | pathlib.Path, *, title: str = ""
) -> pathlib.Path:
  """Writes the total-loss and per-term curves (train solid, validation dashed).

  The terms panel has one line per leaf term (its unweighted value, as in
  ``info``); group and multi-task totals are left to the total's panel.
  """
  plt = pyplot()
  leaves = {k[len("count/") :] for k in history.keys("train") if k.startswith("count/")}
  terms = [
    k
    for k in term_keys(history.keys("train"))
    if k != "loss" and (not leaves or k[len("loss/") :] in leaves)
  ]
  fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(12 if terms else 6.5, 4.2), squeeze=False)
  ax = axes[0, 0]
  shown = []
  for split, style in (("train", "-"), ("val", "--")):
    steps, values = history.series("loss", split)
    if len(values):
      ax.plot(
        steps,
        values,
        style,
        color="black",
        marker="o" if split == "val" else None,
        markersize=3,
        label=f"{split}",
      )
      shown.append(values)
  _log_scale_if_positive(ax, *shown)
  ax.set(title="total loss", xlabel="step", ylabel="loss")
  ax.legend()
  ax.grid(alpha=0.3)
  if terms:
    ax = axes[0, 1]
    shown = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(terms):
      color = colors[i % len(colors)]
      name = key[len("loss/") :]
      for split, style in (("train", "-"), ("val", "--")):
        steps, values = history.series(key, split)
        if len(values):
          ax.plot(steps, values, style, color=color, label=name if split == "train" else None)
          shown.append(values)
    _log_scale_if_positive(ax, *shown)
    ax.set(title="terms (train solid, validation dashed)", xlabel="step", ylabel="value")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def _moving(history: History, prefix: str, split: str) -> list[str]:
  out = []
  for key in term_keys(history.keys(split), prefix):
    _, values = history.series(key, split)
    if len(values) > 1 and np.ptp(values) > 1e-6 * max(np.max(np.abs(values)), 1e-12):
      out.append(key)
  return out


def _plot_series(
  history: History, prefix: str, split: str, path, *, title: str, ylabel: str = "value"
) -> pathlib.Path | None:
  """One line per ``prefix`` key of ``split`` (``None`` when there is none)."""
  keys = term_keys(history.keys(split), prefix)
  if not keys:
    return None
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  marker = "o" if split == "val" else None
  shown = []
  for key in keys:
    steps, values = history.series(key, split)
    ax.plot(steps, values, marker=marker, markersize=3, label=key[len(prefix) :])
    shown.append(values)
  _log_scale_if_positive(ax, *shown)
  ax.set(title=title, xlabel="step", ylabel=ylabel)
  ax.legend(fontsize="small")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return _save(fig, path)


def plot_weights(
  history: History, path: str | pathlib.Path, *, title: str = ""
) -> pathlib.Path | None:
  """Writes the effective weights over training, if any of them changes; else ``None``."""
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
  history: History, path: str | pathlib.Path, *, title: str = ""
) -> pathlib.Path | None:
  """Writes the objective's learned values (temperatures, log-variances, Barron's
  shape and scale) over training, if it has any; else ``None``."""
  return _plot_series(history, "param/", "train", path, title=title or "learned objective values")


def plot_metrics(
  history: History, path: str | pathlib.Path, *, title: str = ""
) -> pathlib.Path | None:
  """Writes the validation metrics over training, if there are any; else ``None``."""
  return _plot_series(history, "metric/", "val", path, title=title or "validation metrics")


def plot_run(
  history: History, out_dir: str | pathlib.Path, *, title: str = ""
) -> dict[str, pathlib.Path]:
  """All of a run's plots in ``out_dir``; returns the paths written by kind
  (``loss_curves``, ``weights_plot``, ``learned_plot``, ``metrics_plot``)."""
  out_dir = pathlib.Path(out_dir)
  written = {"loss_curves": plot_loss_curves(history, out_dir / "loss_curves.png", title=title)}
  for kind, fn in (("weights", plot_weights), ("learned", plot_learned), ("metrics", plot_metrics)):
    p = fn(history, out_dir / f"{kind}.png", title=f"{title}: {kind}" if title else "")
    if p is not None:
      written[f"{kind}_plot"] = p
  return written


def _save(fig, path) -> pathlib.Path:
  path = pathlib.Path(path)
  fig.savefig(path, dpi=110)
  pyplot().close(fig)
  return path
