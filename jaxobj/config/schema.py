"""Checking config values against the keyword arguments of the functions they feed.

A section of a config (``data``, ``model``, ``optimizer``, a schedule, a
weighting scheme) is the keyword arguments of one function, so its signature
is the schema: a type annotation (or, without one, the default's type) gives
the accepted YAML types, a ``typing.Literal`` the valid choices, and a
parameter without a default is required.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from jaxobj.config.errors import ConfigError, describe, join, suggest, unknown

REQUIRED = inspect.Parameter.empty

# YAML types by tag; "number" takes integers too (and gives a float).
_TAGS = {
  "bool": (bool,),
  "int": (int,),
  "number": (int, float),
  "str": (str,),
  "list": (list, tuple),
  "mapping": (dict,),
  "null": (type(None),),
}
_NAMES = {
  "bool": "true or false",
  "int": "an integer",
  "number": "a number",
  "str": "a string",
  "list": "a list",
  "mapping": "a mapping",
  "null": "null",
}


@dataclasses.dataclass(frozen=True)
class Param:
  """One keyword argument: default (``REQUIRED`` if none), accepted tags, choices."""

  default: Any = REQUIRED
  tags: tuple[str, ...] | None = None  # None: any value
  choices: tuple | None = None
  item: tuple[str, ...] | None = None  # tags of a list's items


def _tags_of_hint(hint) -> tuple[tuple[str, ...] | None, tuple | None, tuple[str, ...] | None]:
  """(tags, choices, item tags) for a type annotation; (None, None, None) if unknown."""
  origin = typing.get_origin(hint)
  if hint is bool:
    return ("bool",), None, None
  if hint is int:
    return ("int",), None, None
  if hint is float:
    return ("number",), None, None
  if hint is str:
    return ("str",), None, None
  if hint is type(None):
    return ("null",), None, None
  if origin is typing.Literal:
    return None, typing.get_args(hint), None
  if origin in (list, tuple, collections.abc.Sequence):
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    item = _tags_of_hint(args[0])[0] if args else None
    return ("list",), None, item
  if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping):
    return ("mapping",), None, None
  if origin in (typing.Union, types.UnionType):
    tags, choices = [], []
    for a in typing.get_args(hint):
      t, c, _ = _tags_of_hint(a)
      if t is None and c is None:
        return None, None, None
      tags += list(t or ())
      choices += list(c or ())
    if choices:  # a Literal or None and the like: choices plus null
      return (tuple(tags) or None), tuple(choices), None
    return tuple(tags), None, None
  return None, None, None


def _tags_of_default(default) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
  if default is REQUIRED or default is None:
    return None, None
  if isinstance(default, bool):
    return ("bool",), None
  if isinstance(default, int):
    return ("int",), None
  if isinstance(default, float):
    return ("number",), None
  if isinstance(default, str):
    return ("str",), None
  if isinstance(default, (tuple, list)):
    return ("list",), (_tags_of_default(default[0])[0] if default else None)
  if isinstance(default, Mapping):
    return ("mapping",), None
  return None, None


def param(default: Any) -> Param:
  """The schema of a parameter known only by its default (e.g. a loss hyperparameter)."""
  tags, item = _tags_of_default(default)
  return Param(default, tags, None, item)


def parameters(fn: Callable, *, skip: tuple[str, ...] = ()) -> dict[str, Param]:
  """The arguments of ``fn`` (or a class's ``__init__``) that a config may set."""
  target = fn.__init__ if inspect.isclass(fn) else fn
  sig = inspect.signature(target)
  try:
    hints = typing.get_type_hints(target)
  except Exception:  # annotations that do not evaluate: use the defaults only
    hints = {}
  out = {}
  for p in sig.parameters.values():
    if p.name in skip or p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    default = p.default if not _is_factory(p.default) else None
    tags, choices, item = _tags_of_hint(hints[p.name]) if p.name in hints else (None, None, None)
    if tags is None and choices is None:
      tags, item = _tags_of_default(default)
    if tags is not None and default is None and "null" not in tags:
      tags = tags + ("null",)
    out[p.name] = Param(REQUIRED if p.default is REQUIRED else default, tags, choices, item)
  return out


def _is_factory(default) -> bool:
  return type(default).__name__ == "_HAS_DEFAULT_FACTORY_CLASS"


def mapping(value: Any, path: str, *, what: str = "a mapping") -> dict:
  """``value`` as a dict with string keys, or a ConfigError at ``path``."""
  if value is None:
    return {}
  if not isinstance(value, Mapping):
    raise ConfigError(path, f"expected {what} of keys to values, got {describe(value)}.")
  for k in value:
    if not isinstance(k, str):
      raise ConfigError(path, f"keys are names (strings); got the key {describe(k)}.")
  return dict(value)


def check(v: Any, p: Param, path: str) -> Any:
  """``v`` checked against ``p`` and converted (integers to floats for numbers,
  lists to tuples)."""
  if p.choices is not None:
    if any(v == c and type(v) is type(c) for c in p.choices):
      return v
    if v is None and p.tags and "null" in p.tags:
      return v
    shown = ", ".join(repr(c) for c in p.choices)
    hint = suggest(v, [str(c) for c in p.choices]) if isinstance(v, str) else ""
    raise ConfigError(path, f"{describe(v)} is not one of {shown}.{hint}")
  if p.tags is None:
    return v
  if not _matches(v, p.tags):
    want = " or ".join(_NAMES[t] for t in p.tags)
    raise ConfigError(path, f"expected {want}, got {describe(v)}.")
  if isinstance(v, float) and not math.isfinite(v):
    raise ConfigError(path, f"expected a finite number, got {v!r}.")
  if isinstance(v, int) and not isinstance(v, bool) and "number" in p.tags and "int" not in p.tags:
    return float(v)
  if isinstance(v, (list, tuple)):
    item = Param(tags=p.item) if p.item else Param()
    return tuple(check(x, item, join(path, i)) for i, x in enumerate(v))
  return v


def _matches(v, tags) -> bool:
  for t in tags:
    if isinstance(v, bool) and t not in ("bool",):
      continue
    if isinstance(v, _TAGS[t]):
      return True
  return False


def integer(v: Any, path: str, lo: int, hi: int) -> int:
  """``v`` checked to be an integer from ``lo`` to ``hi``, or a ConfigError naming the range."""
  if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
    shown = describe(v) if not isinstance(v, int) or abs(v) < 10**12 else f"{float(v):.3g}"
    raise ConfigError(path, f"expected an integer from {lo:,} to {hi:,}, got {shown}.")
  return v


def number(v: Any, path: str) -> float:
  return check(v, Param(tags=("number",)), path)


def kwargs(
  given: Any,
  params: Mapping[str, Param],
  path: str,
  *,
  owner: str,
  special: Mapping[str, Callable[[Any, str], Any]] | None = None,
) -> dict[str, Any]:
  """The keyword arguments in ``given``, each checked against ``params``.

  ``special`` maps a key to its own parser ``(value, path) -> value`` (for
  values that are not plain YAML: schedules, masks). Raises a ConfigError
  naming the first unknown key (with close matches), a missing required key,
  or a value of the wrong type.
  """
  given = mapping(given, path)
  special = special or {}
  out = {}
  for k, v in given.items():
    if k not in params:
      raise unknown(path, k, params, context=f"for {owner}")
    if k in special:
      out[k] = special[k](v, join(path, k))
    else:
      out[k] = check(v, params[k], join(path, k))
  missing = [k for k, p in params.items() if p.default is REQUIRED and k not in given]
  if missing:
    raise ConfigError(join(path, missing[0]), f"{owner} needs {missing[0]!r}; add it.")
  return out


def choose(name: Any, table: Mapping[str, Any], path: str, *, what: str) -> Any:
  """``table[name]`` or a ConfigError with close matches."""
  if not isinstance(name, str):
    raise ConfigError(path, f"expected the name of a {what}, got {describe(name)}.")
  if name not in table:
    raise ConfigError(path, f"unknown {what} {name!r}.{suggest(name, table, what=what)}")
  return table[name]
