"""Shared measurement helpers for the benchmark suite (DESIGN.md §6).

Memory is XLA's compiled ``temp_size_in_bytes`` of a jitted function
(deterministic for a pinned jax version); time is the median of several runs
after warm-up, reported only as a ratio against a baseline measured in the same
process, because absolute times on shared machines are noise.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time
from typing import Any, Callable

import jax

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
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


def time_ratio(candidate: Callable, baseline: Callable, *args, repeats: int = 5,
               rounds: int = 3) -> float:
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


def environment() -> dict[str, Any]:
  return {
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "devices": len(jax.devices()),
      "device_kind": jax.devices()[0].device_kind,
      "machine": platform.machine(),
  }


def write(name: str, rows: list[dict[str, Any]], out_dir: pathlib.Path | None = None) -> pathlib.Path:
  """Writes ``{"benchmark", "environment", "rows"}`` to ``<out_dir>/<name>.json``."""
  out_dir = pathlib.Path(out_dir or RESULTS)
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / f"{name}.json"
  payload = {"benchmark": name, "environment": environment(), "rows": rows}
  path.write_text(json.dumps(payload, indent=2) + "\n")
  return path


def arguments(description: str) -> argparse.Namespace:
  """Common flags: ``--quick`` (small sizes, for the smoke test) and ``--out``."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--quick", action="store_true",
                      help="small sizes that run in seconds (used by the tests)")
  parser.add_argument("--out", type=pathlib.Path, default=RESULTS,
                      help="directory for the JSON result")
  return parser.parse_args()
