"""Structure helpers shared by the nodes of an objective tree (core and weighting)."""

from __future__ import annotations

from typing import Any


def branch(children_lines: list[list[str]]) -> list[str]:
  """Children's printed lines joined under their parent as a tree."""
  out = []
  for i, lines in enumerate(children_lines):
    last = i == len(children_lines) - 1
    out.append(("└── " if last else "├── ") + lines[0])
    out.extend(("    " if last else "│   ") + line for line in lines[1:])
  return out


def check_name(name: Any) -> None:
  """Names of terms, groups and tasks are non-empty strings without ``/`` (the
  separator of paths)."""
  if not isinstance(name, str) or not name or "/" in name:
    raise ValueError(f"name {name!r}: names are non-empty strings without '/'.")


def check_unique(paths: list[str]) -> None:
  """Every named node of an objective has its own path."""
  seen: set[str] = set()
  for path in paths:
    if path in seen:
      raise ValueError(
        f"two parts of this objective are named {path!r}; every term and group "
        "needs its own name: jo.term(..., name=...) or jo.named(name, objective)."
      )
    seen.add(path)
