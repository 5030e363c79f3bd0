"""Shared measurement helpers for the benchmark suite (DESIGN.md §6).

Memory is XLA's compiled ``temp_size_in_bytes`` of a jitted function
(deterministic for a pinned jax version); time is the median of several runs
after warm-up, reported only as a ratio against a baseline measured in the same
process, because absolute times on shared machines are noise.

A benchmark module ``bench_<topic>.py`` defines ``run(quick: bool) -> list[dict]``
returning records made by :func:`compare`; ``benchmarks/run.py`` collects them.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

MIB = 2**20


def temp_bytes(fn: Callable, *args) -> int:
  """Temporary memory XLA allocates for ``jax.jit(fn)(*args)``."""
  compiled = jax.jit(fn).lower(*args).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)


def median_seconds(fn: Callable, *args, repeats: int = 5, warmup: int = 1) -> float:
  """Median wall time of ``fn(*args)`` (already jitted) after ``warmup`` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def time_ratio(
  candidate: Callable, baseline: Callable, *args, repeats: int = 5, rounds: int = 3
) -> float:
  """Median time of ``candidate`` over ``baseline`` on the same arguments.

  Both are jitted once; measurements alternate between them over ``rounds`` so
  that a slow spell of the machine hits both.
  """
  candidate, baseline = jax.jit(candidate), jax.jit(baseline)
  ratios = []
  for _ in range(rounds):
    c = median_seconds(candidate, *args, repeats=repeats)
    b = median_seconds(baseline, *args, repeats=repeats)
    ratios.append(c / b)
  return statistics.median(ratios)


def compare(
  name: str,
  *,
  impl: str,
  baseline: str,
  shape: dict[str, Any],
  ours: Callable,
  base: Callable,
  args: tuple,
  time: bool = True,
  max_temp_bytes: float | None = None,
  max_temp_ratio: float | None = None,
  max_time_ratio: float | None = None,
  repeats: int = 5,
  rounds: int = 3,
) -> dict[str, Any]:
  """Measures ``ours`` against ``base`` on ``args`` and checks the stated goal.

  Returns the record ``benchmarks/run.py`` writes: ``name``, ``impl``,
  ``baseline``, ``shape``, ``temp_bytes``, ``baseline_temp_bytes``,
  ``time_ratio`` (ours over baseline; below 1 is faster; None when ``time`` is
  False), ``goal`` (the limits, in words) and ``ok`` (whether all are met).
  """
  ours_temp, base_temp = temp_bytes(ours, *args), temp_bytes(base, *args)
  ratio = time_ratio(ours, base, *args, repeats=repeats, rounds=rounds) if time else None
  goal, ok = [], True
  if max_temp_bytes is not None:
    goal.append(f"temp <= {max_temp_bytes / MIB:g} MiB")
    ok &= ours_temp <= max_temp_bytes
  if max_temp_ratio is not None:
    goal.append(f"temp <= {max_temp_ratio:g} x baseline")
    ok &= ours_temp <= max_temp_ratio * base_temp
  if max_time_ratio is not None and ratio is not None:
    goal.append(f"time <= {max_time_ratio:g} x baseline")
    ok &= ratio <= max_time_ratio
  return {
    "name": name,
    "impl": impl,
    "baseline": baseline,
    "shape": shape,
    "temp_bytes": ours_temp,
    "baseline_temp_bytes": base_temp,
    "time_ratio": None if ratio is None else round(ratio, 4),
    "goal": "; ".join(goal) or None,
    "ok": bool(ok),
  }


def environment() -> dict[str, Any]:
  return {
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "devices": len(jax.devices()),
    "device_kind": jax.devices()[0].device_kind,
    "machine": platform.machine(),
  }
