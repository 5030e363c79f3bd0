"""The ``jaxobj`` command line.

- ``jaxobj losses`` lists the registry: every loss with its family, summary
  and hyperparameters (``--json`` for machines).
- ``jaxobj run [CONFIG]`` trains a config's model with its objective and
  writes metrics, plots and a summary to ``runs/<name>`` (default config:
  :data:`DEFAULT_CONFIG`).
- ``jaxobj compare CONFIG`` evaluates losses side by side in one compiled
  call, plots their curves and gradients, and fits each on the same data.

A config that cannot be used is reported in one line (``jaxobj: error:
<file>: <key path>: <what and how to fix it>``) with exit status 2.

Ctrl-C during ``jaxobj run`` stops it at any moment with exit status 130:
before training starts nothing is written; during training the rows so far,
the plots and the summary are kept (see :mod:`jaxobj.train.loop`). A run
directory holding an interrupted run is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxobj import registry

DEFAULT_CONFIG = "multitask_uncertainty"


def _format_hyper(spec: registry.LossSpec) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in spec.hyperparameters.items()) or "-"


def cmd_losses(args: argparse.Namespace) -> int:
  known = registry.families()
  if args.family is not None and args.family not in known:
    print(
      f"jaxobj: unknown family {args.family!r}; choose one of {', '.join(known)}.", file=sys.stderr
    )
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


def _console():
  from rich.console import Console

  return Console(width=None if sys.stdout.isatty() else 100)


def _overrides(args) -> list[str]:
  sets = list(args.set or [])
  if args.command == "run" and args.steps is not None:
    sets.append(f"train.steps={args.steps}")
  return sets


def _host_devices(args, raw) -> None:
  """Applies --devices or the config's train.host_devices before JAX starts."""
  from jaxobj.config import schema
  from jaxobj.train.devices import MAX_HOST_DEVICES, request_host_devices

  n = args.devices
  if n is not None:
    schema.integer(n, "--devices", 1, MAX_HOST_DEVICES)
  else:
    train = raw.get("train")
    n = train.get("host_devices") if isinstance(train, dict) else None
    if n is None:
      return
    # checked here too, as the full check comes after JAX has started
    schema.integer(n, "train.host_devices", 1, MAX_HOST_DEVICES)
  request_host_devices(n)


def cmd_list(args: argparse.Namespace) -> int:
  from rich.table import Table

  from jaxobj.config import files, yamlio
  from jaxobj.config.errors import ConfigError

  table = Table(title="shipped configs (jaxobj run NAME, jaxobj compare NAME)")
  table.add_column("name", style="bold cyan", no_wrap=True)
  table.add_column("command")
  table.add_column("description")
  for name in files.available():
    try:
      raw = yamlio.read(files.resolve(name))
    except ConfigError:
      continue
    command = "run" if "objective" in raw else "compare"
    table.add_row(name, command, str(raw.get("description", "")))
  _console().print(table)
  return 0


def cmd_run(args: argparse.Namespace) -> int:
  if args.list:
    return cmd_list(args)
  from jaxobj.train.interrupt import StopRequest

  with StopRequest() as stop:  # from here on, Ctrl-C is a flag that nothing can swallow
    return _run(args, stop)


def _run(args, stop) -> int:
  from jaxobj.config import yamlio
  from jaxobj.config.errors import ConfigError

  overrides = _overrides(args)
  if args.format:
    overrides.append(f"train.metrics_format={args.format}")
  path, raw = yamlio.read_overridden(args.config, overrides)  # read once
  try:
    _host_devices(args, raw)
  except ConfigError as err:
    raise err.with_source(str(path)) if err.path != "--devices" else err from None
  from jaxobj.config import experiment

  cfg = experiment.from_dict(raw, name=path.stem, source=str(path))
  if cfg.objective is None:
    stop.__exit__(None, None, None)  # the comparison takes Ctrl-C as jaxobj compare does
    if stop.requested:
      raise KeyboardInterrupt("before the comparison started")
    print(
      f"jaxobj: {cfg.name} is a comparison (it has no objective to train); running jaxobj compare.",
      file=sys.stderr,
    )
    return _compare(cfg, args)
  from jaxobj.train import loop, report

  console = _console()
  if args.config == DEFAULT_CONFIG and not args.config_given:
    console.print(
      f"jaxobj run: no config given; running the default, {DEFAULT_CONFIG} ({cfg.source}).",
      highlight=False,
    )
  result = loop.run(
    cfg, args.out, progress=not args.no_progress, overwrite=args.overwrite, stop=stop
  )
  report.print_summary(result, console)
  return 130 if result.interrupted else 0


def cmd_compare(args: argparse.Namespace) -> int:
  overrides = _overrides(args)
  from jaxobj import config as config_lib

  cfg = config_lib.load(args.config, overrides)
  return _compare(cfg, args)


def _compare(cfg, args) -> int:
  from jaxobj.config.errors import ConfigError
  from jaxobj.train import compare

  if cfg.compare is None:
    raise ConfigError(
      "compare", "this config has no compare: section; it trains a model (jaxobj run).", cfg.source
    )
  console = _console()
  steps = args.steps if args.command == "compare" else None
  result = compare.run(cfg, args.out, fit_steps=steps)
  compare.print_summary(result, console)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="jaxobj", description="Objective functions for JAX.")
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("losses", help="list every registered loss, metric and regularizer")
  p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
  p.add_argument("--family", help="only this family (e.g. regression)")
  p.add_argument("--kind", choices=registry.KINDS, help="only this kind")
  p.set_defaults(func=cmd_losses)

  def common(p, steps_help):
    p.add_argument("--out", help="the output directory (default: runs/<config name>)")
    p.add_argument(
      "--set",
      action="append",
      metavar="KEY=VALUE",
      help="override a config value, e.g. --set train.steps=100 (repeatable; values are YAML)",
    )
    p.add_argument("--steps", type=int, help=steps_help)
    p.add_argument("--debug", action="store_true", help="show tracebacks")

  p = sub.add_parser(
    "run",
    help="train a model with a config's objective",
    description="Train a model with the objective of a config (a YAML file "
    "or the name of a shipped config); write per-term metrics, loss-curve "
    "plots and a summary.",
  )
  p.add_argument(
    "config",
    nargs="?",
    default=DEFAULT_CONFIG,
    help=f"config file or shipped config name (default: {DEFAULT_CONFIG})",
  )
  common(p, "override train.steps")
  p.add_argument("--format", choices=("csv", "jsonl"), help="metrics file format")
  p.add_argument("--devices", type=int, help="ask for this many host (CPU) devices")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.add_argument(
    "--overwrite",
    action="store_true",
    help="replace an interrupted run in the output directory (runs cannot be resumed)",
  )
  p.add_argument("--list", action="store_true", help="list the shipped configs and exit")
  p.set_defaults(func=cmd_run)

  p = sub.add_parser(
    "compare",
    help="compare losses in one vmapped call: curves and fits",
    description="Evaluate several losses (or one over a hyperparameter grid) "
    "in one compiled call, plot their values and gradients, and fit each on "
    "the same data in one vmapped training run.",
  )
  p.add_argument("config", help="config file or shipped config name with a compare: section")
  common(p, "the fits' number of steps (compare.fit.steps)")
  p.set_defaults(func=cmd_compare)
  return parser


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = build_parser().parse_args(argv)
  args.config_given = getattr(args, "config", None) is not None and any(
    a == args.config for a in argv[1:]
  )
  try:
    return args.func(args)
  except BrokenPipeError:  # e.g. `jaxobj losses | head`
    sys.stderr.close()
    return 0
  except KeyboardInterrupt as err:  # the training loop says when and what was kept
    print(f"jaxobj: interrupted{f' {err}' if str(err) else ''}.", file=sys.stderr)
    return 130
  except Exception as err:
    if getattr(args, "debug", False):
      raise
    from jaxobj.config.errors import ConfigError

    if isinstance(err, ConfigError):
      print(f"jaxobj: error: {err}", file=sys.stderr)
      return 2
    message = " ".join(str(err).split())
    print(
      f"jaxobj: error: {type(err).__name__}: {message} (run with --debug for the traceback)",
      file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
  sys.exit(main())
