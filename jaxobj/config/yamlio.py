"""Reading configs: safe YAML only, duplicate keys refused, ``KEY=VALUE`` overrides.

YAML is parsed with PyYAML's safe loader, which builds only plain data
(mappings, lists, strings, numbers, booleans, null): a tag that would build a
Python object (``!!python/object/apply:os.system``) is an error, so reading a
config never runs code. Two changes to the safe loader: a key given twice is
an error rather than silently the last one, and ``1e-3`` is a number (YAML 1.1
would make it a string).

Sizes are bounded: a config nests at most :data:`MAX_DEPTH` levels and holds at
most :data:`MAX_NODES` values once its aliases are expanded (``*a`` repeats what
``&a`` marks, so a few hundred bytes of aliases of aliases can stand for
billions of values); past either limit the config is refused in one line.

PyYAML is imported when a config is first read or written, not with
``jaxobj.config``: building configs from Python data needs no YAML.
"""

from __future__ import annotations

import functools
import pathlib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

from jaxobj.config.errors import ConfigError, describe, join
from jaxobj.config.files import resolve

MAX_DEPTH = 100
"""The deepest nesting of mappings and lists a config may have."""

MAX_NODES = 100_000
"""The most values (mappings, lists and scalars) a config may hold, aliases expanded."""


def _yaml() -> types.ModuleType:
  """PyYAML, imported on first use (an extra of the command line's)."""
  try:
    import yaml
  except ImportError:
    raise ImportError(
      'reading and writing YAML configs needs PyYAML: pip install "jaxobj[cli]" '
      "(or build configs from Python dicts with jaxobj.config.from_dict)."
    ) from None
  return yaml


_FLOAT = re.compile(
  r"""^[-+]?(?:
    [0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [0-9][0-9_]*[eE][-+]?[0-9]+
  | \.[0-9_]+(?:[eE][-+]?[0-9]+)?
  | \.(?:inf|Inf|INF))$
  | ^\.(?:nan|NaN|NAN)$""",
  re.X,
)


@functools.cache
def _loader() -> type:
  """The safe loader with duplicate-key checks and YAML 1.2 style floats."""
  _yaml()  # one clear error when PyYAML is missing
  import yaml

  class SafeLoader(yaml.SafeLoader):
    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
      seen: dict[Any, int] = {}
      for key_node, _ in node.value:
        key = self.construct_object(key_node, deep=deep)
        try:
          hash(key)
        except TypeError:
          continue  # the base class reports unhashable keys
        if key in seen:
          raise yaml.constructor.ConstructorError(
            None,
            None,
            f"the key {key!r} appears twice in one mapping (first on line {seen[key] + 1})",
            key_node.start_mark,
          )
        seen[key] = key_node.start_mark.line
      return super().construct_mapping(node, deep=deep)

  SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
  return SafeLoader


def parse(text: str, source: str = "<config>") -> Any:
  """Parses YAML text to plain data (every alias expanded into its own copy).

  Raises:
    ConfigError: in one line, for YAML errors and for configs past
      :data:`MAX_DEPTH` or :data:`MAX_NODES`.
  """
  yaml = _yaml()
  try:
    _check_depth(text, source)  # before composing, which recurses once per level
    data = yaml.load(text, Loader=_loader())
  except yaml.YAMLError as err:
    raise ConfigError("", _yaml_message(err), _located(source, err)) from None
  except RecursionError:  # a safety net; _check_depth stops far below Python's limit
    raise ConfigError(
      "", f"nested too deeply; a config nests at most {MAX_DEPTH} levels.", source
    ) from None
  try:
    return plain(data)
  except ConfigError as err:
    raise err.with_source(source) from None


def _check_depth(text, source):
  """Refuses text nested deeper than MAX_DEPTH, from the parser's events (no recursion)."""
  yaml = _yaml()
  depth = 0
  for event in yaml.parse(text, Loader=_loader()):
    if isinstance(event, yaml.CollectionStartEvent):
      depth += 1
      if depth > MAX_DEPTH:
        raise ConfigError(
          "",
          f"nested more than {MAX_DEPTH} levels deep; a config nests at most {MAX_DEPTH} levels.",
          _located_mark(source, event.start_mark),
        )
    elif isinstance(event, yaml.CollectionEndEvent):
      depth -= 1


def _located_mark(source, mark) -> str:
  return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


def _located(source, err) -> str:
  return _located_mark(
    source, getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
  )


def _yaml_message(err) -> str:
  problem = getattr(err, "problem", None) or str(err)
  context = getattr(err, "context", None)
  message = f"YAML error: {problem}" + (f" ({context})" if context else "")
  if "constructor for the tag" in problem:
    message += (
      "; configs are plain data (mappings, lists, strings, numbers), and tags "
      "that build Python objects are refused"
    )
  return message


def read(path: str | pathlib.Path) -> dict[str, Any]:
  """The mapping in a YAML file."""
  path = pathlib.Path(path)
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise ConfigError("", "no such config file.", str(path)) from None
  except (OSError, UnicodeDecodeError) as err:
    raise ConfigError("", f"cannot read it: {err}.", str(path)) from None
  data = parse(text, str(path))
  if data is None:
    raise ConfigError(
      "",
      "the file is empty; a config is a mapping of sections "
      "(objective, model, data, optimizer, train).",
      str(path),
    )
  if not isinstance(data, dict):
    raise ConfigError("", f"a config is a mapping of sections, got {describe(data)}.", str(path))
  return data


def read_overridden(
  name_or_path: str | pathlib.Path, overrides: Sequence[str] = ()
) -> tuple[pathlib.Path, dict[str, Any]]:
  """The file a config name or path means, and its data with ``overrides`` applied."""
  path = resolve(str(name_or_path))
  try:
    return path, override(read(path), overrides)
  except ConfigError as err:
    raise err.with_source(str(path)) from None


def blamed_override(path: str, config: Mapping[str, Any], assignments: Sequence[str]) -> str | None:
  """The ``--set`` assignment that an error at key ``path`` comes from, or None
  when the file is to blame.

  An assignment is to blame when it set ``path`` or a key above it (the value
  came from the command line), or when it created a key above ``path`` that
  ``config``, the file before the overrides, does not have (a typo in the
  key: ``--set train.stpes=3``, or ``--set objective.terms.fti.delta=0.5``
  and an error about the new term ``fti``).
  """
  if not path:
    return None
  parts = re.split(r"\.|(?=\[)", path)
  for item in reversed(assignments):  # the last assignment of a key wins
    key = item.partition("=")[0].strip()
    if path == key or path.startswith((key + ".", key + "[")):
      return item
    shared = []
    for a, b in zip(parts, key.split(".")):
      if a != b:
        break
      shared.append(a)
    if shared and not _has_path(config, ".".join(shared)):
      return item
  return None


def _has_path(config: Any, path: str) -> bool:
  node = config
  for part in path.split("."):
    if not isinstance(node, Mapping) or part not in node:
      return False
    node = node[part]
  return True


def blame(err: ConfigError, file: str | pathlib.Path, assignments: Sequence[str]) -> ConfigError:
  """``err`` located on the command line (``--set KEY=VALUE``) when an
  assignment is to blame (see :func:`blamed_override`), else in ``file``."""
  item = None
  if assignments:
    try:
      item = blamed_override(err.path, read(file), assignments)
    except ConfigError:  # the file itself does not read: it is to blame
      item = None
  source = f"--set {item}" if item is not None else str(file)
  return ConfigError(err.path, err.message, source)


def override(config: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
  """A copy of ``config`` with ``"a.b.c=value"`` assignments applied.

  Values are parsed as YAML (``train.steps=3`` sets an integer,
  ``objective.terms.fit.delta=0.5`` a number, ``model.hidden=[16,16]`` a list).
  """
  out = plain(config)
  for item in assignments:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ConfigError("--set", f"expected KEY=VALUE (e.g. train.steps=3), got {item!r}.")
    value = parse(text, f"--set {key}")
    node = out
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
      child = node.get(part)
      if child is None:
        child = node[part] = {}
      if not isinstance(child, dict):
        raise ConfigError(
          ".".join(parts[: i + 1]),
          f"--set {key}: {'.'.join(parts[: i + 1])} is {describe(child)}, "
          "not a mapping, so it has no keys to set.",
          source=f"--set {item}",
        )
      node = child
    node[parts[-1]] = value
  return out


def plain(x: Any) -> Any:
  """A copy of config data with every mapping a dict and every sequence a list.

  Shared parts (YAML aliases) are copied where they appear, counting every
  value on the way.

  Raises:
    ConfigError: the data nests deeper than :data:`MAX_DEPTH` levels or holds
      more than :data:`MAX_NODES` values, naming where the limit was reached.
  """
  count = 0

  def copy(x, path, depth):
    nonlocal count
    count += 1
    if count > MAX_NODES:  # raised while copying, so an alias bomb costs MAX_NODES steps
      raise ConfigError(
        path,
        f"the config holds more than {MAX_NODES:,} values once its "
        "YAML aliases (*name) are expanded; the limit is "
        f"{MAX_NODES:,} values.",
      )
    if isinstance(x, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
      shown = path if len(path) <= 60 else path[:57] + "..."
      raise ConfigError(
        shown,
        f"nested more than {MAX_DEPTH} levels deep; a config nests at most {MAX_DEPTH} levels.",
      )
    if isinstance(x, Mapping):
      return {k: copy(v, join(path, k), depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return [copy(v, join(path, i), depth + 1) for i, v in enumerate(x)]
    return x

  return copy(x, "", 0)


def dump(config: Any) -> str:
  """YAML text for plain config data (what :func:`parse` reads back)."""
  return _yaml().safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
