"""The reference section of a family page, generated from the registry.

``<!-- reference:<family> -->`` on ``docs/losses/<family>.md`` becomes one
mkdocstrings block per module that defines a registered entry of the family
(``jaxobj.losses.contrastive`` and ``jaxobj.losses.contrastive_sharded`` for
the contrastive family), listing that module's registered entries and the
other public names of its ``__all__`` (helpers such as ``fit_temperature``);
an entry defined in a module that another family owns (``retrieval_accuracy``
in ``jaxobj.losses.metrics``) gets a block of its own.
A loss registered in a new module appears on its family page without editing
the page. Kept free of MkDocs imports so that ``tests/test_docs.py`` can check
the listing without the docs extras.
"""

from __future__ import annotations

import ast
import collections
import importlib
import inspect
from types import ModuleType
from typing import Any


def modules(family: str) -> tuple[dict[str, list[str]], list[str]]:
  """What the reference section of ``family``'s page documents.

  Returns ``({module: names}, entries)``: the modules this family owns (those
  holding more of its registered entries than of any other family's), each
  with its entries of this family and the other public names of its
  ``__all__``, the family's main module first; and ``"module.name"`` of this
  family's entries defined in modules that another family owns (a metric of
  ``jaxobj.losses.metrics``), documented one by one so that no object is on two
  pages. Names are in source order.

  Raises:
    ValueError: if no entry of the registry belongs to ``family``.
  """
  from jaxobj import registry

  if not registry.specs(family=family):
    raise ValueError(
      f"<!-- reference:{family} -->: no registered family {family!r}; "
      f"the families are {registry.families()}."
    )
  counts: dict[str, collections.Counter] = {}
  for spec in registry.specs():
    counts.setdefault(spec.fn.__module__, collections.Counter())[spec.family] += 1
  # The owner of a module: the family with most entries there (first in the
  # registry's order on a tie), so every module is documented on one page.
  owner = {module: c.most_common(1)[0][0] for module, c in counts.items()}
  owned: dict[str, list[str]] = {}
  entries = []
  for spec in registry.specs(family=family):
    module_name, name = spec.fn.__module__, spec.fn.__name__
    if owner[module_name] == family:
      owned.setdefault(module_name, []).append(name)
    else:
      entries.append(f"{module_name}.{name}")
  for module_name, names in owned.items():
    module = importlib.import_module(module_name)
    registered = {s.fn.__name__ for s in registry.specs() if s.fn.__module__ == module_name}
    for name in getattr(module, "__all__", ()):
      if name not in registered and _defined_in(module, name):
        names.append(name)
    names.sort(key=lambda name: _line(getattr(module, name)))
  main_first = sorted(owned, key=lambda m: -counts[m][family])
  return {m: owned[m] for m in main_first}, entries


def _line(obj: Any) -> float:
  """Where ``obj`` is defined in its module's source, so the page reads in the
  module's order (mkdocstrings follows an explicit ``members`` list's order)."""
  try:
    return inspect.getsourcelines(inspect.unwrap(obj))[1]
  except (OSError, TypeError):
    return float("inf")  # constants: after the functions


def _defined_in(module: ModuleType, name: str) -> bool:
  """Whether ``module`` defines ``name`` (a re-exported object is documented
  where it is defined, not where it is imported)."""
  obj = getattr(module, name)
  if inspect.isfunction(obj) or inspect.isclass(obj):
    return inspect.unwrap(obj).__module__ == module.__name__
  # A constant carries no module: look for its assignment in the source.
  for node in ast.parse(inspect.getsource(module)).body:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
      return True
  return False


def markdown(family: str) -> str:
  """The mkdocstrings blocks that replace ``<!-- reference:<family> -->``."""
  owned, entries = modules(family)
  several = len(owned) > 1  # then each module gets its own heading
  blocks = []
  for module_name, names in owned.items():
    members = "".join(f"        - {name}\n" for name in names)
    blocks.append(
      f"::: {module_name}\n"
      "    options:\n"
      f"      show_root_heading: {'true' if several else 'false'}\n"
      f"      show_root_full_path: {'true' if several else 'false'}\n"
      "      heading_level: 3\n"
      "      members:\n" + members
    )
  for entry in entries:
    blocks.append(f"::: {entry}\n    options:\n      heading_level: 3\n")
  return "\n".join(blocks)
