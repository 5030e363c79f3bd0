"""Renders the benchmark suite's JSON as the Markdown table of the README and docs.

    python benchmarks/table.py [RESULTS] [--readme]

Prints the table of ``RESULTS`` (default ``benchmarks/results.json``); with
``--readme`` writes it between the README's ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` markers instead, so the README's figures are always
those of the committed results (a test checks that they agree).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
README = ROOT / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
MIB = 2**20


def _mib(n) -> str:
  if n is None:
    return "–"
  return f"{n / MIB:.3g} MiB" if n < 1000 * MIB else f"{n / 2**30:.3g} GiB"


def _shape(shape) -> str:
  if isinstance(shape, dict):
    return ", ".join(f"{k} = {v}" for k, v in shape.items())
  return str(shape)


def markdown_table(records) -> str:
  """One row per record: what was compared, at what size, memory, time ratio, goal."""
  lines = [
    "| benchmark | ours vs baseline | shape | temp (ours / baseline) | time ratio | goal | met |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in records:
    ratio = r.get("time_ratio")
    lines.append(
      f"| {r['name']} | `{r['impl']}` vs `{r['baseline']}` | {_shape(r.get('shape'))} "
      f"| {_mib(r.get('temp_bytes'))} / {_mib(r.get('baseline_temp_bytes'))} "
      f"| {'–' if ratio is None else f'{ratio:.3g}'} | {r.get('goal') or '–'} "
      f"| {'yes' if r.get('ok') else '**no**'} |"
    )
  return "\n".join(lines) + "\n"


def caption(results: dict) -> str:
  env = results.get("environment", {})
  size = "quick sizes" if results.get("quick") else "full sizes"
  return (
    f"Measured at {size} on {env.get('devices', '?')} {env.get('backend', '?')} "
    f"device(s) ({env.get('device_kind', '?')}, jax {env.get('jax', '?')}).\n"
  )


def render(results: dict) -> str:
  return caption(results) + "\n" + markdown_table(results["records"])


def replace_block(text: str, block: str) -> str:
  """``text`` with the part between the markers replaced by ``block``."""
  try:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
  except ValueError:
    raise ValueError(f"README.md needs the markers {START} and {END}") from None
  return f"{head}{START}\n{block}{END}{tail}"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("results", nargs="?", type=pathlib.Path, default=RESULTS)
  parser.add_argument("--readme", action="store_true", help="update README.md in place")
  args = parser.parse_args(argv)
  block = render(json.loads(args.results.read_text()))
  if args.readme:
    README.write_text(replace_block(README.read_text(), block))
  else:
    sys.stdout.write(block)
  return 0


if __name__ == "__main__":
  sys.exit(main())
