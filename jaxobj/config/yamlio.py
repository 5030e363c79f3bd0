"""Reading configs: safe YAML only, duplicate keys refused, ``KEY=VALUE`` overrides.

YAML is parsed with PyYAML's safe loader, which builds only plain data
(mappings, lists, strings, numbers, booleans, null): a tag that would build a
Python object (``!!python/object/apply:os.system``) is an error, so reading a
config never runs code. Two changes to the safe loader: a key given twice is
an error rather than silently the last one, and ``1e-3`` is a number (YAML 1.1
would make it a string).
"""

from __future__ import annotations

import pathlib
import re
from typing import Any, Mapping, Sequence

import yaml

from jaxobj.config.errors import ConfigError, describe


class _SafeLoader(yaml.SafeLoader):
  """The safe loader with duplicate-key checks and YAML 1.2 style floats."""

  def construct_mapping(self, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
      key = self.construct_object(key_node, deep=deep)
      try:
        hash(key)
      except TypeError:
        continue  # the base class reports unhashable keys
      if key in seen:
        raise yaml.constructor.ConstructorError(
            None, None, f"the key {key!r} appears twice in one mapping (first on line "
            f"{seen[key] + 1})", key_node.start_mark)
      seen[key] = key_node.start_mark.line
    return super().construct_mapping(node, deep=deep)


_FLOAT = re.compile(r"""^[-+]?(?:
    [0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [0-9][0-9_]*[eE][-+]?[0-9]+
  | \.[0-9_]+(?:[eE][-+]?[0-9]+)?
  | \.(?:inf|Inf|INF))$
  | ^\.(?:nan|NaN|NAN)$""", re.X)
_SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse(text: str, source: str = "<config>") -> Any:
  """Parses YAML text to plain data; YAML errors become one-line ConfigErrors."""
  try:
    return yaml.load(text, Loader=_SafeLoader)
  except yaml.YAMLError as err:
    raise ConfigError("", _yaml_message(err), _located(source, err)) from None


def _located(source, err) -> str:
  mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
  return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


def _yaml_message(err) -> str:
  problem = getattr(err, "problem", None) or str(err)
  context = getattr(err, "context", None)
  message = f"YAML error: {problem}" + (f" ({context})" if context else "")
  if "constructor for the tag" in problem:
    message += ("; configs are plain data (mappings, lists, strings, numbers), and tags "
                "that build Python objects are refused")
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
    raise ConfigError("", "the file is empty; a config is a mapping of sections "
                      "(objective, model, data, optimizer, train).", str(path))
  if not isinstance(data, dict):
    raise ConfigError("", f"a config is a mapping of sections, got {describe(data)}.",
                      str(path))
  return data


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
        raise ConfigError(".".join(parts[: i + 1]),
                          f"--set {key}: {'.'.join(parts[: i + 1])} is {describe(child)}, "
                          "not a mapping, so it has no keys to set.")
      node = child
    node[parts[-1]] = value
  return out


def plain(x):
  """A copy of config data with every mapping a dict and every sequence a list."""
  if isinstance(x, Mapping):
    return {k: plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [plain(v) for v in x]
  return x


def dump(config: Any) -> str:
  """YAML text for plain config data (what :func:`parse` reads back)."""
  return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
