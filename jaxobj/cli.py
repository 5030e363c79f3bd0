"""The ``jaxobj`` command line.

``jaxobj losses`` lists the registry: every loss with its family, summary and
hyperparameters (``--json`` for machines).
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxobj import registry


def _format_hyper(spec: registry.LossSpec) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in spec.hyperparameters.items()) or "-"


def cmd_losses(args: argparse.Namespace) -> int:
  known = registry.families()
  if args.family is not None and args.family not in known:
    print(f"jaxobj: unknown family {args.family!r}; choose one of {', '.join(known)}.",
          file=sys.stderr)
    return 2
  specs = registry.specs(family=args.family, kind=args.kind)
  if args.json:
    json.dump([s.as_dict() for s in specs], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

  from rich.console import Console
  from rich.table import Table

  table = Table(title=f"jaxobj: {len(specs)} registered objectives", show_lines=False)
  table.add_column("name", style="bold cyan", no_wrap=True)
  table.add_column("family")
  table.add_column("kind")
  table.add_column("summary", ratio=3)
  table.add_column("hyperparameters (defaults)", ratio=2)
  for s in specs:
    table.add_row(s.name, s.family, s.kind, s.summary, _format_hyper(s))
  Console(width=None if sys.stdout.isatty() else 200).print(table)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="jaxobj", description="Objective functions for JAX.")
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("losses", help="list every registered loss, metric and regularizer")
  p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
  p.add_argument("--family", help="only this family (e.g. regression)")
  p.add_argument("--kind", choices=registry.KINDS, help="only this kind")
  p.set_defaults(func=cmd_losses)
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except BrokenPipeError:  # e.g. `jaxobj losses | head`
    sys.stderr.close()
    return 0


if __name__ == "__main__":
  sys.exit(main())
