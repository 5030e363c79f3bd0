"""The coverage page: every loss of optax, rax, Keras, torch, pytorch-metric-learning, MONAI
and TRL with its jaxobj counterpart or recipe.

``<!-- coverage -->`` on ``docs/coverage.md`` becomes one table per peer, from the rows in
``jaxobj/_src/coverage.py``; a counterpart that is a registry alias shows the entry it names,
read from ``jaxobj.registry.ALIASES`` at build time. Listed before ``build.py`` in
``mkdocs.yml`` so that the names in the tables link to their reference. Kept free of MkDocs
imports so that ``tests/test_coverage.py`` renders it without the docs extras.
"""

from __future__ import annotations

import ast

MARKER = "<!-- coverage -->"


def _cell(text: str) -> str:
  return text.replace("|", "\\|")


def _counterpart(expr: str, aliases) -> str:
  """``name`` or ``name(k=v, ...)`` as the page shows it: the name alone in backticks (so
  that it links), the settings after it, an alias with the entry it names."""
  node = ast.parse(expr, mode="eval").body
  if isinstance(node, ast.Call):
    name = ast.unparse(node.func)
    settings = [ast.unparse(a) for a in node.args] + [ast.unparse(k) for k in node.keywords]
  else:
    name, settings = ast.unparse(node), []
  out = f"`{name}`"
  if name in aliases:
    out += f" (alias of `{aliases[name]}`)"
  if settings:
    out += " with " + ", ".join(f"`{s}`" for s in settings)
  return out


def markdown() -> str:
  """The tables, in the order of ``PEERS``."""
  from jaxobj import registry
  from jaxobj._src import coverage

  parts = []
  for key, title, scope, prefix in coverage.PEERS:
    rows, gaps = coverage.ROWS[key], coverage.GAPS[key]
    parts.append(f"## {title}\n")
    parts.append(f"{len(rows)} of {len(rows) + len(gaps)} covered: {scope}.\n")
    table = [f"| {title} | jaxobj | what differs |", "|---|---|---|"]
    for row in rows:
      if row.counterpart is not None:
        cell = _counterpart(row.counterpart, registry.ALIASES)
      else:
        cell = f"recipe: `{row.recipe}`"
      # Qualified, so that build.py does not link a peer's name to jaxobj's namesake.
      name = f"`{prefix}{row.name}`" if prefix else row.name
      table.append(f"| {_cell(name)} | {_cell(cell)} | {_cell(row.note) or '—'} |")
    parts.append("\n".join(table) + "\n")
    if gaps:
      listed = ", ".join(f"`{prefix}{g}`" if prefix else g for g in gaps)
      parts.append(f"Not in jaxobj yet (no counterpart, no recipe): {listed}.\n")
  return "\n".join(parts)


def on_page_markdown(markdown_text, page, config, files):
  if MARKER in markdown_text:
    markdown_text = markdown_text.replace(MARKER, markdown())
  return markdown_text
