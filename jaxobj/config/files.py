"""Finding config files: a path, or a name in ``./configs`` or among the shipped configs."""

from __future__ import annotations

import difflib
import pathlib

from jaxobj.config.errors import ConfigError

__all__ = ["available", "config_dirs", "resolve"]


def config_dirs() -> list[pathlib.Path]:
  """Where config names are looked up: ``./configs`` and the shipped configs."""
  # The shipped configs are package data (the repository's configs/ links to them).
  shipped = pathlib.Path(__file__).resolve().parents[1] / "configs"
  dirs = [(pathlib.Path.cwd() / "configs").resolve(), shipped]
  return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def available() -> list[str]:
  """The config names found in :func:`config_dirs` (``compare/regression`` for subfolders)."""
  names = set()
  for d in config_dirs():
    names |= {str(p.relative_to(d).with_suffix("")) for p in d.rglob("*.yaml")}
  return sorted(names)


def resolve(name_or_path: str) -> pathlib.Path:
  """A config file from a path or a name in ``configs/`` (``robust_regression``)."""
  path = pathlib.Path(name_or_path)
  if path.is_file():
    return path
  for d in config_dirs():
    for candidate in (d / name_or_path, d / f"{name_or_path}.yaml"):
      if candidate.is_file():
        return candidate
  names = available()
  close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.5)
  hint = (
    f" Did you mean {' or '.join(map(repr, close))}?"
    if close
    else f" Shipped configs: {', '.join(names)}."
    if names
    else ""
  )
  raise ConfigError("", f"no such config file or shipped config name.{hint}", str(name_or_path))
