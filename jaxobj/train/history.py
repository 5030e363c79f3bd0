"""Metrics files: rows written as training goes, and read back as a :class:`History`.

A row has ``step``, ``split`` (``train`` or ``val``), ``time`` (seconds since
the start) and the objective's ``info`` entries (``loss``, ``loss/<term>``,
``weight/<term>``, ``count/<term>``), plus ``metric/<name>`` on validation
rows. Every row is flushed when written, so an interrupted run keeps all of
them.

In your own training loop, :meth:`History.record` takes the ``info`` dict of
``objective.apply`` at each step (JAX scalars are read back to floats), and
:meth:`History.write` saves it as the same CSV or JSONL file; the plots of
:mod:`jaxobj.train.plots` and :func:`jaxobj.train.diagnose_history` read it.

Example:
  >>> import jaxobj.train as jt
  >>> history = jt.History()
  >>> for step in range(3):
  ...   info = {"loss": 1.0 / (step + 1), "loss/fit": 1.0 / (step + 1), "weight/fit": 1.0}
  ...   history.record(step, info)
  >>> history.record(2, {"loss": 0.4}, split="val")
  >>> steps, values = history.series("loss")
  >>> steps.tolist(), values.round(3).tolist()
  ([0, 1, 2], [1.0, 0.5, 0.333])
  >>> history.last("loss", "val")
  0.4
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import time as _time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MetricsWriter", "History", "SPLITS"]

_FIXED = ("step", "split", "time")
SPLITS = ("train", "val")


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
  _t0: float | None = dataclasses.field(default=None, repr=False, compare=False)

  def append(self, row: dict[str, Any]) -> None:
    self.rows.append(row)

  def record(
    self,
    step: int,
    info: Mapping[str, Any],
    *,
    split: str = "train",
    time: float | None = None,
  ) -> None:
    """Adds one row: ``info`` (an objective's ``info``, metrics, learned values) at ``step``.

    Args:
      step: the training step the values belong to (an int).
      info: a flat mapping of names to scalars: Python numbers, NumPy or JAX
        scalars (read back to floats, so call it outside ``jax.jit``). Use the
        objective's key names (``loss``, ``loss/<term>``, ``weight/<term>``,
        ``count/<term>``) and ``param/<name>``, ``metric/<name>`` for learned
        values and metrics, which is what the plots and the diagnosis read.
      split: ``"train"`` or ``"val"``.
      time: seconds since the start; by default the time since the first row
        recorded.

    Raises:
      ValueError: an unknown ``split``, a non-integer ``step``, a key named
        ``step``, ``split`` or ``time``, or a value that is not a scalar.
      TypeError: a value that is not a number.
    """
    if split not in SPLITS:
      raise ValueError(f"split={split!r}; record rows with split='train' or split='val'.")
    if isinstance(step, bool) or not float(step).is_integer():
      raise ValueError(f"step={step!r}; pass the training step as an integer.")
    now = _time.perf_counter()
    if self._t0 is None:
      self._t0 = now
    row: dict[str, Any] = {
      "step": int(step),
      "split": split,
      "time": float(now - self._t0) if time is None else float(time),
    }
    for key, value in info.items():
      if key in _FIXED:
        raise ValueError(
          f"info has a key {key!r}, which names a fixed column of the history; pass "
          f"step= and time= as arguments and rename the entry (e.g. 'metric/{key}')."
        )
      row[key] = _scalar(key, value)
    self.rows.append(row)

  def write(self, path: str | pathlib.Path, *, fmt: str | None = None) -> pathlib.Path:
    """Writes the rows as CSV or JSONL (by ``fmt``, else the suffix), creating the folder.

    Returns:
      The path written; :meth:`read` reads it back.

    Raises:
      ValueError: a format other than CSV or JSONL.
    """
    path = pathlib.Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    if fmt not in ("csv", "jsonl"):
      raise ValueError(
        f"cannot tell the format of {str(path)!r} (fmt={fmt!r}); name the file "
        "'*.csv' or '*.jsonl', or pass fmt='csv' or fmt='jsonl'."
      )
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, None] = {}
    for r in self.rows:
      columns.update(dict.fromkeys(r))
    with MetricsWriter(path, list(columns), fmt) as writer:
      for r in self.rows:
        writer.write({k: v for k, v in r.items() if v is not None})
    return path

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


def _scalar(key: str, value: Any) -> float:
  if isinstance(value, (str, bytes)) or value is None:
    raise TypeError(f"info[{key!r}] = {value!r} is not a number; record numbers only.")
  array = np.asarray(value)
  if array.size != 1:
    raise ValueError(
      f"info[{key!r}] has shape {array.shape}; record scalars only (reduce it first, "
      "or record each entry under its own key)."
    )
  if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
    raise TypeError(f"info[{key!r}] has dtype {array.dtype}; record numbers only.")
  return float(array.reshape(()))


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
