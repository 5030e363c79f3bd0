"""Every benchmark runs at its --quick sizes and writes a well-formed result.

Benchmarks are not tests (no timing decides anything here); this only keeps
them from rotting as the library changes.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_quick(name, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(tmp_path)],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = list(tmp_path.glob("*.json"))
  assert results, f"{name} wrote no JSON result"
  for path in results:
    payload = json.loads(path.read_text())
    assert payload["rows"], f"{path.name} has no rows"
    assert payload["environment"]["jax"]
