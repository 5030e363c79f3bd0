"""Metrics files: rows written as training goes, and read back as a :class:`History`.

A row has ``step``, ``split`` (``train`` or ``val``), ``time`` (seconds since
the start) and the objective's ``info`` entries (``loss``, ``loss/<term>``,
``weight/<term>``, ``count/<term>``), plus ``metric/<name>`` on validation
rows. Every row is flushed when written, so an interrupted run keeps all of
them.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["MetricsWriter", "History"]

_FIXED = ("step", "split", "time")


class MetricsWriter:
  """Appends rows to ``metrics.csv`` (a header of ``columns``) or ``metrics.jsonl``.

  Args:
    path: the file.
    columns: every key a row may have (CSV needs them up front); keys a row
      lacks are left empty.
    fmt: ``"csv"`` or ``"jsonl"``.
  """

  def __init__(self, path: str | pathlib.Path, columns: Sequence[str], fmt: str = "csv") -> None:
    if fmt not in ("csv", "jsonl"):
      raise ValueError(f"fmt={fmt!r}; choose 'csv' or 'jsonl'.")
    self.path = pathlib.Path(path)
    self.fmt = fmt
    self.columns = list(_FIXED) + [c for c in columns if c not in _FIXED]
    self.rows = 0
    self._file = open(self.path, "w", newline="", encoding="utf-8")
    if fmt == "csv":
      self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="raise")
      self._csv.writeheader()
      self._file.flush()

  def write(self, row: dict[str, Any]) -> None:
    row = {k: _plain(v) for k, v in row.items()}
    if self.fmt == "csv":
      self._csv.writerow(row)
    else:
      self._file.write(json.dumps(row) + "\n")
    self._file.flush()
    self.rows += 1

  def close(self) -> None:
    if not self._file.closed:
      self._file.close()

  def __enter__(self) -> MetricsWriter:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()


def _plain(v):
  if isinstance(v, (str, int)) and not isinstance(v, bool):
    return v
  f = float(v)
  return f if math.isfinite(f) else repr(f)  # "nan" / "inf" survive JSON


@dataclasses.dataclass
class History:
  """The rows of a run, with helpers to pull out one series."""

  rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

  def append(self, row: dict[str, Any]) -> None:
    self.rows.append(row)

  def keys(self, split: str | None = None) -> list[str]:
    """Value keys (everything but step/split/time) that have a value in ``split``."""
    seen: dict[str, None] = {}
    for r in self.rows:
      if split is None or r.get("split") == split:
        for k, v in r.items():
          if k not in _FIXED and v not in ("", None):
            seen.setdefault(k)
    return list(seen)

  def series(self, key: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` on ``split``, in order."""
    pts = [
      (r["step"], r[key])
      for r in self.rows
      if r.get("split") == split and r.get(key) not in ("", None)
    ]
    if not pts:
      return np.zeros(0, np.int64), np.zeros(0)
    steps, values = zip(*pts)
    return np.asarray(steps, np.int64), np.asarray([float(v) for v in values])

  def last(self, key: str, split: str = "train") -> float | None:
    _, v = self.series(key, split)
    return float(v[-1]) if len(v) else None

  @classmethod
  def read(cls, path: str | pathlib.Path) -> History:
    """Reads a metrics file written by :class:`MetricsWriter` (CSV or JSONL)."""
    path = pathlib.Path(path)
    with open(path, newline="", encoding="utf-8") as f:
      if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in f if line.strip()]
      else:
        rows = list(csv.DictReader(f))
    return cls([_parsed(r) for r in rows])


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
  out = {}
  for k, v in row.items():
    if k == "split" or v in ("", None):
      out[k] = v
    elif k == "step":
      out[k] = int(v)
    else:
      out[k] = float(v)
  return out


def term_keys(keys: Iterable[str], prefix: str = "loss/") -> list[str]:
  """The keys under ``prefix`` (``loss/fit``, ...), in first-seen order."""
  return [k for k in keys if k.startswith(prefix)]
