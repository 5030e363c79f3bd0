"""Every benchmark topic runs at --quick sizes and writes well-formed records.

Benchmarks are not tests (no timing or goal decides anything here); this only
keeps them from rotting as the library changes.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOPICS = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))
FIELDS = {
  "name",
  "impl",
  "baseline",
  "shape",
  "temp_bytes",
  "baseline_temp_bytes",
  "time_ratio",
  "goal",
  "ok",
}


@pytest.mark.parametrize("topic", TOPICS)
def test_benchmark_topic_runs_quick(topic, tmp_path):
  out = tmp_path / "results.json"
  proc = subprocess.run(
    [sys.executable, "benchmarks/run.py", "--quick", "--only", topic, "--json", str(out)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = json.loads(out.read_text())["records"]
  assert records, f"bench_{topic} returned no records"
  for record in records:
    assert FIELDS <= set(record), FIELDS - set(record)
    assert record["temp_bytes"] >= 0 and record["baseline_temp_bytes"] >= 0


def test_committed_results_are_complete_and_match_the_readme():
  """results.json covers every topic, and the README shows exactly its table."""
  sys.path.insert(0, str(ROOT))
  from benchmarks import table

  results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
  assert not results["quick"], "commit a full-size run"
  assert {r["topic"] for r in results["records"]} == set(TOPICS)
  for record in results["records"]:
    assert FIELDS <= set(record), FIELDS - set(record)
  readme = (ROOT / "README.md").read_text()
  assert table.replace_block(readme, table.render(results)) == readme, (
    "README's benchmark table is stale: run python benchmarks/table.py --readme"
  )
