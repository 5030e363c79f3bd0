"""Remembering a Ctrl-C that a callback swallowed, for ``jaxobj run`` (imports no JAX).

Python reports an exception raised inside a garbage-collection callback (JAX
installs one) through :func:`sys.unraisablehook` and drops it, so a Ctrl-C
that lands there while JAX is being imported is lost and the run would go on.
Imported first by ``jaxobj/__init__.py``, this module wraps the hook to note
such a ``KeyboardInterrupt`` (still reported as before); the CLI reads the note
when it takes over Ctrl-C (:class:`jaxobj.train.interrupt.StopRequest`).
"""

import sys

swallowed = False
"""Whether a KeyboardInterrupt was dropped as unraisable since jaxobj was imported."""

_previous = sys.unraisablehook


def _hook(unraisable):
  global swallowed
  if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
    swallowed = True
  _previous(unraisable)


sys.unraisablehook = _hook
