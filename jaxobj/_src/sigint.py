"""Noting a Ctrl-C that a callback swallowed, for the ``jaxobj`` command (imports no JAX).

Python reports an exception raised inside a garbage-collection callback (JAX
installs one) through :func:`sys.unraisablehook` and drops it, so a Ctrl-C
that lands there while JAX is being imported is lost and the run would go on.
:func:`install` wraps the hook to note such a ``KeyboardInterrupt`` (still
reported as before); the CLI reads the note with :func:`take` when it takes
over Ctrl-C (:class:`jaxobj.train.interrupt.StopRequest`).

A library import changes no process-wide hook: ``jaxobj/__init__.py`` imports
this module first, and it installs the hook at import only in a process started
as the ``jaxobj`` command (the console script or ``python -m jaxobj``), before
JAX is imported. :func:`jaxobj.cli.main` installs it for its own duration
otherwise.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

__all__ = ["install", "installed", "launched_as_cli", "take", "uninstall"]

_swallowed = False
_previous: Any = None


def _hook(unraisable: Any) -> None:
  global _swallowed
  if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
    _swallowed = True
  (_previous or sys.__unraisablehook__)(unraisable)


def installed() -> bool:
  """Whether the hook is in place."""
  return sys.unraisablehook is _hook


def install() -> bool:
  """Puts the hook in place; returns whether this call did (``False``: it already was)."""
  global _previous
  if installed():
    return False
  _previous = sys.unraisablehook
  sys.unraisablehook = _hook
  return True


def uninstall() -> None:
  """Restores the hook that :func:`install` replaced."""
  global _previous
  if installed():
    sys.unraisablehook = _previous or sys.__unraisablehook__
    _previous = None


def take() -> bool:
  """Whether a ``KeyboardInterrupt`` was dropped as unraisable since the last call."""
  global _swallowed
  swallowed, _swallowed = _swallowed, False
  return swallowed


def launched_as_cli() -> bool:
  """Whether this process was started as the ``jaxobj`` command."""
  argv = list(getattr(sys, "orig_argv", ()))
  if "-m" in argv[1:]:
    i = argv.index("-m", 1)
    return argv[i + 1 : i + 2] in (["jaxobj"], ["jaxobj.__main__"])
  return bool(sys.argv) and pathlib.PurePath(sys.argv[0]).stem in ("jaxobj", "jaxobj-script")


if launched_as_cli():
  install()
