"""Runs the benchmark suite and writes one JSON file.

    python benchmarks/run.py [--quick] [--json PATH] [--only TOPIC ...]

Every ``benchmarks/bench_<topic>.py`` defines ``run(quick) -> list[dict]``
(records from :func:`benchmarks.harness.compare`). ``--quick`` uses small sizes
so the whole suite runs in minutes; its goals are the full-size ones only where
they still make sense at those sizes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
  sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

TOPICS = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small sizes (minutes on 2 cores)")
  parser.add_argument(
    "--json",
    type=pathlib.Path,
    default=ROOT / "benchmarks" / "results.json",
    help="where to write the records (default: benchmarks/results.json)",
  )
  parser.add_argument(
    "--only",
    nargs="+",
    choices=TOPICS,
    metavar="TOPIC",
    help=f"run only these topics: {', '.join(TOPICS)}",
  )
  args = parser.parse_args(argv)
  records = []
  for topic in args.only or TOPICS:
    module = importlib.import_module(f"benchmarks.bench_{topic}")
    for record in module.run(quick=args.quick):
      record = {"topic": topic, **record}
      records.append(record)
      status = "ok " if record["ok"] else "MISS"
      print(
        f"[{status}] {record['name']}: temp {record['temp_bytes'] / harness.MIB:.1f} MiB "
        f"(baseline {record['baseline_temp_bytes'] / harness.MIB:.1f} MiB), "
        f"time ratio {record['time_ratio']}  goal: {record['goal']}",
        flush=True,
      )
  args.json.parent.mkdir(parents=True, exist_ok=True)
  args.json.write_text(
    json.dumps(
      {"quick": args.quick, "environment": harness.environment(), "records": records}, indent=2
    )
    + "\n"
  )
  print(f"wrote {len(records)} records to {args.json}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
