"""Ctrl-C as a request to stop: a flag the training loop reads between compiled calls.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the
interpreter happens to be, which may be inside a callback whose exceptions are
printed and dropped (JAX runs some during garbage collection): the run would
go on as if nothing had happened. :class:`StopRequest` instead records the
first Ctrl-C in a flag that the run reads at safe points (between compiled
calls, before and after the final writes), so it cannot be lost. A second
Ctrl-C raises ``KeyboardInterrupt`` at once, for a run that is stuck.

Importing this module does not import JAX.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from jaxobj._src import sigint

__all__ = ["StopRequest"]


class StopRequest:
  """A context manager that turns Ctrl-C (SIGINT) into a flag, :attr:`requested`.

  Outside the main thread (where Python cannot install signal handlers) it
  does nothing and Ctrl-C keeps its default behaviour.

  Args:
    message: printed to stderr at the first Ctrl-C (``None``: nothing).
  """

  def __init__(
    self,
    message: str | None = "jaxobj: stopping at the next safe point (Ctrl-C again to stop at once).",
  ) -> None:
    self.message = message
    self.requested = False
    self._previous: Any = None
    self._installed = False

  def __enter__(self) -> StopRequest:
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handle)
      self._installed = True
    if sigint.take():  # a Ctrl-C lost in a callback before this handler was in place
      self._handle(signal.SIGINT, None)
    return self

  def __exit__(self, *exc: object) -> None:
    if self._installed:
      signal.signal(signal.SIGINT, self._previous)
      self._installed = False

  def _handle(self, signum, frame) -> None:
    if self.requested:  # the second Ctrl-C: stop now
      raise KeyboardInterrupt
    self.requested = True
    if self.message:
      print(self.message, file=sys.stderr, flush=True)

  def __bool__(self) -> bool:
    return self.requested
