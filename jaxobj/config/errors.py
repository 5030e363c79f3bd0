"""Config errors: one line that names the key path, what was wrong and a fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
  """A config that cannot be used, located by its key path (``train.steps``).

  ``str(err)`` is one line: ``"<source>: <path>: <message>"``; the CLI prints
  it as is. ``source`` (the file) is filled in by the loader.
  """

  def __init__(self, path: str, message: str, source: str | None = None) -> None:
    self.path = path
    self.message = " ".join(str(message).split())  # always one line
    self.source = source
    super().__init__(str(self))

  def __str__(self) -> str:
    where = ": ".join(p for p in (self.source, self.path) if p)
    return f"{where}: {self.message}" if where else self.message

  def with_source(self, source: str) -> ConfigError:
    return ConfigError(self.path, self.message, source if self.source is None else self.source)


def join(path: str, key: Any) -> str:
  """``path`` extended by ``key`` (``"a.b" + "c" -> "a.b.c"``, indices as ``[i]``)."""
  if isinstance(key, int):
    return f"{path}[{key}]"
  return f"{path}.{key}" if path else str(key)


def suggest(name: str, known: Iterable[str], *, what: str = "key") -> str:
  """ " Did you mean 'x'?" or the list of valid names (short lists only)."""
  known = sorted(str(k) for k in known)
  close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
  if close:
    return f" Did you mean {' or '.join(repr(c) for c in close)}?"
  if len(known) <= 12:
    return f" Valid {what}s: {', '.join(known)}." if known else ""
  return ""


def unknown(
  path: str, key: str, known: Iterable[str], *, what: str = "key", context: str = ""
) -> ConfigError:
  context = f" {context}" if context else ""
  return ConfigError(
    join(path, key), f"unknown {what} {key!r}{context}.{suggest(key, known, what=what)}"
  )


def describe(value: Any) -> str:
  """``'ten' (a string)`` — a value and its YAML type, for messages."""
  kinds = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
  }
  kind = next((v for k, v in kinds.items() if type(value) is k), type(value).__name__)
  shown = repr(value)
  if len(shown) > 40:
    shown = shown[:37] + "..."
  return f"{shown} ({kind})"
