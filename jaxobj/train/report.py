"""The closing summary of ``jaxobj run``: a table of terms and metrics, the diagnosis, the files."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jaxobj.train.history import term_keys
from jaxobj.train.loop import RunResult

if TYPE_CHECKING:  # rich is imported when a summary is printed
  from rich.console import Console
  from rich.table import Table

__all__ = ["summary_table", "print_summary"]


def _fmt(v: float | None) -> str:
  if v is None:
    return "-"
  if not math.isfinite(v):
    return str(v)
  return f"{v:.4g}"


def summary_table(result: RunResult) -> Table:
  """A rich Table: each term's weight and its last train, last and best validation values."""
  from rich.table import Table

  h = result.history
  table = Table(
    title=f"{result.name}: step {result.steps_done} of {result.steps}"
    + (" (interrupted)" if result.interrupted else "")
  )
  table.add_column("term", style="bold cyan", no_wrap=True)
  for name in ("weight", "train", "val", "best val (step)"):
    table.add_column(name, justify="right")
  keys = ["loss"] + [k for k in term_keys(h.keys("train")) if k != "loss"]
  for key in keys:
    name = "total" if key == "loss" else key[len("loss/") :]
    steps, values = h.series(key, "val")
    best = "-"
    if len(values) and any(math.isfinite(v) for v in values):
      i = min(range(len(values)), key=lambda j: values[j] if math.isfinite(values[j]) else math.inf)
      best = f"{_fmt(values[i])} ({steps[i]})"
    weight = None if key == "loss" else h.last(f"weight/{name}", "train")
    table.add_row(name, _fmt(weight), _fmt(h.last(key, "train")), _fmt(h.last(key, "val")), best)
  for key in term_keys(h.keys("val"), "metric/"):
    steps, values = h.series(key, "val")
    table.add_row(f"[green]{key}", "", "", _fmt(values[-1]) if len(values) else "-", "")
  return table


def print_summary(result: RunResult, console: Console) -> None:
  """Prints the table, the diagnosis and where the files are."""
  console.print(summary_table(result))
  d = result.diagnosis
  console.print(f"[bold]diagnosis:[/bold] {d.title} — {d.meaning} ({d.evidence})", highlight=False)
  console.print(f"[bold]advice:[/bold] {d.advice}", highlight=False)
  files = ", ".join(str(p) for k, p in result.files.items() if k != "config")
  devices = f" on {result.devices} devices" if result.devices > 1 else ""
  status = "interrupted; kept" if result.interrupted else "wrote"
  console.print(
    f"{status} {files} ({result.steps_done} steps{devices}, {result.wall_time:.1f} s)",
    highlight=False,
  )
