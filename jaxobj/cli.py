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
directory holding an interrupted run is replaced only with ``--overwrite``, or
continued from its last checkpoint with ``--resume`` (``train.checkpoint_every``).

``jaxobj run CONFIG --processes N --devices D`` starts N local processes of D
CPU devices each (:mod:`jaxobj.train.launch`), supervises them and reports in
one line if one fails; ``--distributed`` (``train.distributed: true``) makes
this process one of a run whose processes a scheduler started (SLURM, a TPU
pod): see :mod:`jaxobj.train.distributed`.

The commands need the ``cli`` extra (rich for tables, matplotlib for plots;
``pip install "jaxobj[cli]"``); without it they say so in one line. Importing
this module starts no JAX backend, so ``jaxobj run`` still sets the number of
host devices from the config it reads (``train.host_devices``, ``--devices``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from jaxobj import registry
from jaxobj._src import sigint
from jaxobj.config import MAX_HOST_DEVICES, Config, ConfigError, from_dict, schema, yamlio
from jaxobj.config import files as config_files
from jaxobj.train import checkpoint, compare, distributed, launch, loop, report
from jaxobj.train.devices import request_host_devices
from jaxobj.train.interrupt import StopRequest

try:  # the command line's extras: pip install "jaxobj[cli]"
  from rich.console import Console
  from rich.table import Table
except ImportError:  # main() names what is missing
  Console = Table = None  # type: ignore[assignment,misc]

DEFAULT_CONFIG = "multitask_uncertainty"

EXTRAS = ("rich", "matplotlib")
"""The modules of the ``cli`` extra: beyond jaxobj's own dependencies, what the commands use."""


def missing_extras(modules: Sequence[str] = EXTRAS) -> list[str]:
  """Those of ``modules`` that cannot be imported here."""
  return [m for m in modules if importlib.util.find_spec(m) is None]


def _needs(args: argparse.Namespace) -> tuple[str, ...]:
  """The extras a command uses: the JSON listing none, the table rich, the rest all."""
  if args.command == "losses":
    return () if args.json else ("rich",)
  return EXTRAS


_TEX = {
  "times": "×",
  "cdot": "·",
  "le": "≤",
  "ge": "≥",
  "infty": "∞",
  "alpha": "α",
  "beta": "β",
  "gamma": "γ",
  "delta": "δ",
  "epsilon": "ε",
  "lambda": "λ",
  "mu": "μ",
  "pi": "π",
  "sigma": "σ",
  "tau": "τ",
}


def plain_text(text: str) -> str:
  """A docstring line without reST markup, for a terminal.

  ``:math:`B \\times B``` becomes ``B × B``, ``:func:`~a.b``` becomes ``b``,
  double backticks go.

  >>> plain_text(r"Blocks: :func:`~jaxobj.clip_loss` without the :math:`B \\times B` matrix.")
  'Blocks: clip_loss without the B × B matrix.'
  >>> plain_text("linear beyond ``delta``.")
  'linear beyond delta.'
  """

  def math_text(m: re.Match) -> str:
    tex = re.sub(r"\\([A-Za-z]+)", lambda t: _TEX.get(t.group(1), t.group(1)), m.group(1))
    return tex.replace("{", "").replace("}", "")

  text = re.sub(r":math:`([^`]+)`", math_text, text)
  text = re.sub(r":[a-z]+:`~[^`]*?([^.`]+)`", r"\1", text)  # ~ shows the last part
  text = re.sub(r":[a-z]+:`([^`]+)`", r"\1", text)
  return re.sub(r"``([^`]+)``", r"\1", text)


def format_value(v: Any) -> str:
  """A hyperparameter default as shown by ``jaxobj losses``: floats to 4 significant digits.

  >>> format_value(2.659260036932778), format_value(1.0), format_value(1e-12), format_value("mean")
  ('2.659', '1.0', '1e-12', "'mean'")
  """
  if isinstance(v, float):
    if not math.isfinite(v):
      return repr(v)
    text = f"{v:.4g}"
    return text if any(c in text for c in ".e") else text + ".0"
  if isinstance(v, tuple | list):
    inner = ", ".join(format_value(x) for x in v)
    return f"({inner}{',' if len(v) == 1 else ''})" if isinstance(v, tuple) else f"[{inner}]"
  return repr(v)


def _format_hyper(spec: registry.LossSpec) -> str:
  return ", ".join(f"{k}={format_value(v)}" for k, v in spec.hyperparameters.items()) or "-"


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
  table = Table(title=f"jaxobj: {len(specs)} registered objectives", show_lines=False)
  table.add_column("name", style="bold cyan", no_wrap=True)
  table.add_column("family")
  table.add_column("kind")
  table.add_column("summary", ratio=3)
  table.add_column("hyperparameters (defaults)", ratio=2)
  for s in specs:
    table.add_row(s.name, s.family, s.kind, plain_text(s.summary), _format_hyper(s))
  Console(width=None if sys.stdout.isatty() else 200).print(table)
  return 0


def _console() -> Console:
  return Console(width=None if sys.stdout.isatty() else 100)


def _overrides(args: argparse.Namespace) -> list[str]:
  sets = list(args.set or [])
  if args.command == "run" and args.steps is not None:
    sets.append(f"train.steps={args.steps}")
  if args.command == "run" and args.devices is not None:  # the trainer checks it is there
    sets.append(f"train.host_devices={args.devices}")
  return sets


def _host_devices(args: argparse.Namespace, raw: dict[str, Any]) -> None:
  """Applies --devices or the config's train.host_devices before JAX starts."""
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
  table = Table(title="shipped configs (jaxobj run NAME, jaxobj compare NAME)")
  table.add_column("name", style="bold cyan", no_wrap=True)
  table.add_column("command")
  table.add_column("description")
  for name in config_files.available():
    try:
      raw = yamlio.read(config_files.resolve(name))
    except ConfigError:
      continue
    command = "run" if "objective" in raw else "compare"
    table.add_row(name, command, str(raw.get("description", "")))
  _console().print(table)
  return 0


def _join(args: argparse.Namespace, raw: dict[str, Any], path: pathlib.Path) -> None:
  """Joins the run's other processes when the run is distributed (before JAX starts)."""
  section = raw.get("train")
  train: dict[str, Any] = section if isinstance(section, dict) else {}
  wanted = args.distributed or train.get("distributed") is True
  if not wanted and not os.environ.get(launch.ENV_COORDINATOR):
    return
  timeout = train.get("join_timeout", 60.0)
  peer = train.get("peer_timeout", 30.0)
  for key, value in (("join_timeout", timeout), ("peer_timeout", peer)):
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86_400:
      raise ConfigError(
        f"train.{key}", f"expected seconds from 1 to 86400, got {value!r}.", str(path)
      )
  try:
    distributed.join(join_timeout=float(timeout), peer_timeout=float(peer))
  except distributed.DistributedError as err:
    raise ConfigError("--distributed", str(err)) from None


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
  """``jaxobj run --processes N``: starts N local processes of the run and reports on them."""
  n = schema.integer(args.processes, "--processes", 1, MAX_HOST_DEVICES)
  if args.devices is not None:
    schema.integer(args.devices, "--devices", 1, MAX_HOST_DEVICES)
  path, cfg = _read(args, _overrides(args))  # checked here once, before anything starts
  # each process has --devices CPU devices, else the config's train.host_devices, else one
  per = args.devices or cfg.train.host_devices or 1
  if n * per > MAX_HOST_DEVICES:
    raise ConfigError(
      "--processes",
      f"{n} processes × {per} devices = {n * per} devices, more than the "
      f"{MAX_HOST_DEVICES} host devices a run may have; ask for fewer.",
    )
  if cfg.objective is None:
    raise ConfigError("--processes", "a comparison runs in one process; drop --processes.")
  total = n * per
  batch = cfg.train.batch_size
  if batch is not None and batch % total:
    raise ConfigError(
      "train.batch_size",
      f"{batch} examples per step do not split evenly over {n} processes × {per} devices; "
      f"use a multiple of {total}.",
      cfg.source,
    )
  out = args.out or str(pathlib.Path("runs") / cfg.name)
  child = [a for a in _without_processes(argv)]
  child = [sys.executable, "-m", "jaxobj", *child, "--distributed", "--no-progress"]
  if args.devices is None:
    child += ["--devices", str(per)]
  if args.out is None:
    child += ["--out", out]
  timeout = args.timeout if args.timeout is not None else 24 * 3600.0
  console = _console()
  console.print(
    f"jaxobj run: {cfg.name} on {n} processes × {per} devices (local, gloo collectives); "
    f"process 0 writes {out}.",
    highlight=False,
  )
  # when one process fails, the others get the peer timeout (and a margin, for a busy
  # machine: a survivor tracing or compiling runs its watchdog late) to see it and say so
  # themselves before the launcher stops them; it costs nothing when they do
  grace = cfg.train.peer_timeout + 30.0
  result = launch.launch(child, processes=n, devices_per_process=per, timeout=timeout, grace=grace)
  if result.ok:
    sys.stdout.write(_plain_output(result.outputs[0]))
    return 0
  # a config error is the same in every process: say it once, as a single process would;
  # a process that saw another one lost says which, and where the run can resume
  said = {
    code: line
    for code, output in zip(result.returncodes, result.outputs)
    for line in output.splitlines()
    if line.startswith("jaxobj: error: ")
  }
  for code in (2, distributed.LOST_STATUS):
    if code in said:
      print(said[code], file=sys.stderr)
      return code
  step = checkpoint.latest_step(out)
  kept = (
    f"; {out} keeps the checkpoint of step {step}: continue with --resume"
    if step is not None
    else ""
  )
  lost = result.first_failed
  if lost is not None and result.returncodes[lost] < 0:
    # a process killed by a signal is lost; a survivor may then be ended by its collectives
    # library itself (gloo aborts on a message cut short) before its watchdog speaks
    others = "".join(
      f"; process {i} then ended with {result.why(i)}"
      for i, code in enumerate(result.returncodes)
      if i != lost and code != 0
    )
    print(
      f"jaxobj: error: process {lost} of {n} was lost ({result.why(lost)}){others}{kept}.",
      file=sys.stderr,
    )
    return distributed.LOST_STATUS
  print(f"jaxobj: error: {result.failure}{kept}.", file=sys.stderr)
  return 1


def _without_processes(argv: Sequence[str]) -> list[str]:
  """``argv`` without ``--processes N`` / ``--processes=N`` and ``--timeout``."""
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a in ("--processes", "--timeout"):
      skip = True
    elif not a.startswith(("--processes=", "--timeout=")):
      out.append(a)
  return out


def _plain_output(text: str) -> str:
  """A child's output without the collectives' connection lines."""
  return "".join(line for line in text.splitlines(True) if not line.startswith("[Gloo]"))


def cmd_run(args: argparse.Namespace) -> int:
  if args.list:
    return cmd_list(args)
  if args.processes is not None:
    return _launch(args, args.argv)
  with StopRequest() as stop:  # from here on, Ctrl-C is a flag that nothing can swallow
    return _run(args, stop)


def _read(args: argparse.Namespace, overrides: Sequence[str]) -> tuple[pathlib.Path, Config]:
  """Reads and parses the config file once, sets the host devices (and joins a distributed
  run), then checks it."""
  path, raw = yamlio.read_overridden(args.config, overrides)
  if args.command == "run":
    try:
      _host_devices(args, raw)
    except ConfigError as err:
      raise err.with_source(str(path)) if err.path != "--devices" else err from None
    if args.processes is None:
      _join(args, raw, path)
  try:
    return path, from_dict(raw, name=path.stem, source=str(path))
  except ConfigError as err:  # a typo in --set is the command line's, not the file's
    raise yamlio.blame(err, path, overrides) from None


def _run(args: argparse.Namespace, stop: StopRequest) -> int:
  overrides = _overrides(args)
  if args.format:
    overrides.append(f"train.metrics_format={args.format}")
  _, cfg = _read(args, overrides)
  if cfg.objective is None:
    stop.__exit__(None, None, None)  # the comparison takes Ctrl-C as jaxobj compare does
    if stop.requested:
      raise KeyboardInterrupt("before the comparison started")
    print(
      f"jaxobj: {cfg.name} is a comparison (it has no objective to train); running jaxobj compare.",
      file=sys.stderr,
    )
    return _compare(cfg, args)
  console = _console()
  if args.config == DEFAULT_CONFIG and not args.config_given:
    console.print(
      f"jaxobj run: no config given; running the default, {DEFAULT_CONFIG} ({cfg.source}).",
      highlight=False,
    )
  result = loop.run(
    cfg,
    args.out,
    progress=not args.no_progress,
    overwrite=args.overwrite,
    stop=stop,
    resume=args.resume,
  )
  if distributed.is_primary():
    report.print_summary(result, console)
  return 130 if result.interrupted else 0


def cmd_compare(args: argparse.Namespace) -> int:
  _, cfg = _read(args, _overrides(args))
  return _compare(cfg, args)


def _compare(cfg: Config, args: argparse.Namespace) -> int:
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
    help="replace an interrupted run in the output directory",
  )
  p.add_argument(
    "--resume",
    action="store_true",
    help="continue the run in the output directory from its last checkpoint "
    "(train.checkpoint_every)",
  )
  p.add_argument(
    "--processes",
    type=int,
    help="start this many local processes of the run (each with --devices CPU devices), "
    "joined by JAX's distributed runtime",
  )
  p.add_argument(
    "--distributed",
    action="store_true",
    help="this process is one of several of the run (train.distributed: true): join the "
    "others with jax.distributed.initialize (SLURM, TPU pods, Open MPI, or jaxobj's launcher)",
  )
  p.add_argument(
    "--timeout",
    type=float,
    help="with --processes: stop every process after this many seconds",
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


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the ``jaxobj`` command on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
  argv = sys.argv[1:] if argv is None else list(argv)
  args = build_parser().parse_args(argv)
  args.argv = argv
  args.config_given = getattr(args, "config", None) is not None and any(
    a == args.config for a in argv[1:]
  )
  missing = missing_extras(_needs(args))
  if missing:
    print(
      f"jaxobj {args.command}: needs {' and '.join(missing)}, not installed here: "
      'pip install "jaxobj[cli]"',
      file=sys.stderr,
    )
    return 1
  installed = sigint.install()  # the jaxobj command has it from the start; a caller, from now
  try:
    return args.func(args)
  except BrokenPipeError:  # e.g. `jaxobj losses | head`
    sys.stderr.close()
    return 0
  except KeyboardInterrupt as err:  # the training loop says when and what was kept
    print(f"jaxobj: interrupted{f' {err}' if str(err) else ''}.", file=sys.stderr)
    return 130
  except ConfigError as err:
    if getattr(args, "debug", False):
      raise
    print(f"jaxobj: error: {err}", file=sys.stderr)
    return 2
  except Exception as err:
    if getattr(args, "debug", False):
      raise
    message = " ".join(str(err).split())
    print(
      f"jaxobj: error: {type(err).__name__}: {message} (run with --debug for the traceback)",
      file=sys.stderr,
    )
    return 1
  finally:
    if installed:
      sigint.uninstall()


if __name__ == "__main__":
  sys.exit(main())
