"""Griffe extension: jaxobj's reStructuredText bits rendered as mkdocstrings Markdown.

The docstrings are Google style (Args, Returns, Raises, Example) with a few
reStructuredText constructs that Python users know from Sphinx. This extension
rewrites them once the package is loaded, so the API pages render them:

- ``.. math::`` blocks become ``$$ ... $$`` (pymdownx.arithmatex, MathJax);
- ``:math:`x``` becomes ``$x$``;
- ``:func:`` / ``:class:`` / ``:meth:`` / ``:mod:`` / ``:data:`` roles become
  cross-references when the target is a public object the site documents, and
  inline code otherwise (a cross-reference to a page that does not exist would
  fail the strict build);
- ``name::`` introducing a literal block becomes ``name:``;
- an argument line naming several arguments (``where, weights, reduction: ...``)
  becomes one entry per argument;
- a docstring whose source has a ``{placeholder}`` line, completed by a
  decorator at import time, is read from the imported function.

Nothing here changes the source: only the text the site renders.
"""

from __future__ import annotations

import importlib
import inspect
import re

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|data|attr|obj):`(~?)([^`]+)`(\\ )?")
_MATH = re.compile(r":math:`([^`]+)`")
_MULTI_ARG = re.compile(r"^(\s+)(\**\w+(?:,\s*\**\w+)+):\s(.*)$")
_NAMES_CONTINUED = re.compile(r"^(\s+)(\**\w+(?:,\s*\**\w+)*),\s*$")
_PLACEHOLDER = re.compile(r"^\s*\{\w+\}\s*$", re.M)
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes)\s*:\s*$")


def _is_public(path: str) -> bool:
  return not any(part.startswith("_") for part in path.split("."))


class RstToMarkdown(griffe.Extension):
  """Rewrites reST roles and directives in every docstring of the package."""

  def on_package(self, *, pkg: griffe.Module, loader, **kwargs) -> None:
    del loader, kwargs
    self._root = pkg
    self._walk(pkg, set())

  # -- traversal

  def _walk(self, obj, seen) -> None:
    if obj.path in seen or obj.is_alias:
      return
    seen.add(obj.path)
    if obj.docstring is not None:
      if _PLACEHOLDER.search(obj.docstring.value):
        obj.docstring.value = _completed_docstring(obj)
      obj.docstring.value = self.convert(obj.docstring.value, obj)
    for member in obj.members.values():
      if not member.is_alias:
        self._walk(member, seen)

  # -- the rewrite

  def convert(self, text: str, obj) -> str:
    text = _doctest_fences(text)
    text = _math_blocks(text)
    text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(lambda m: self._role(m, obj), text)
    text = re.sub(r"(?m)(\S)::$", r"\1:", text)
    return _split_multi_args(text)

  def _role(self, match, obj) -> str:
    kind, tilde, target = match.group(1), match.group(2), match.group(3).strip()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    if kind in ("func", "meth") and not shown.endswith(")"):
      shown += "()"
    path = self._resolve(target.removesuffix("()"), obj)
    if path is None:
      return f"`{shown}`"
    return f"[`{shown}`][{path}]"

  def _resolve(self, target: str, obj) -> str | None:
    """The public path the site documents ``target`` under, or None."""
    scopes = []
    o = obj
    while o is not None:
      scopes.append(o.path)
      o = o.parent
    candidates = [target] + [f"{s}.{target}" for s in scopes] + [f"jaxobj.{target}"]
    for path in candidates:
      found = self._lookup(path)
      if found is None:
        continue
      try:
        canonical = found.final_target.path if found.is_alias else found.path
      except griffe.AliasResolutionError:
        canonical = path
      if _is_public(canonical) and _rendered(found):
        return canonical
      if _is_public(path) and path in _DOCUMENTED_ALIASES:
        return path
      return None
    return None

  def _lookup(self, path: str):
    root = self._root
    if path == root.path:
      return root
    if not path.startswith(root.path + "."):
      return None
    try:
      return root[path[len(root.path) + 1 :]]
    except (KeyError, ValueError, griffe.AliasResolutionError):
      return None


def _completed_docstring(obj) -> str:
  """The docstring as imported: a decorator fills a ``{placeholder}`` line of
  the source with text shared by several functions, which griffe, reading the
  source, would show as it stands."""
  value = getattr(importlib.import_module(obj.parent.path), obj.name)
  return inspect.cleandoc(value.__doc__)


# Objects defined in private modules that the API reference documents under a
# public alias (see docs/api/core.md).
_DOCUMENTED_ALIASES = {"jaxobj.reduce_loss"}


def _rendered(obj) -> bool:
  """Whether the API pages show ``obj``: public (``__all__`` where defined) all the way up."""
  try:
    target = obj.final_target if obj.is_alias else obj
    while target is not None and target.parent is not None:
      if not target.is_public:
        return False
      target = target.parent
  except griffe.AliasResolutionError:
    return False
  return True


def _doctest_fences(text: str) -> str:
  """Runs of ``>>>`` lines (with their ``...`` and output lines) as ``pycon`` code blocks."""
  lines = text.splitlines()
  out: list[str] = []
  section = None  # indent of an enclosing Examples section, whose doctests griffe parses
  i = 0
  while i < len(lines):
    line = lines[i]
    head = re.match(r"^(\s*)Examples?:\s*$", line)
    if head:
      section = len(head.group(1))
      out.append(f"{head.group(1)}Examples:")
      i += 1
      continue
    if section is not None and line.strip() and len(line) - len(line.lstrip()) <= section:
      section = None
    m = re.match(r"^(\s*)>>> ", line) if section is None else None
    if not m:
      out.append(lines[i])
      i += 1
      continue
    indent = m.group(1)
    block = []
    while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
      block.append(lines[i][len(indent) :])
      i += 1
    if out and out[-1].strip():
      out.append("")
    out.append(f"{indent}```pycon")
    out.extend(f"{indent}{b}" for b in block)
    out.append(f"{indent}```")
  return "\n".join(out)


def _math_blocks(text: str) -> str:
  lines = text.splitlines()
  out: list[str] = []
  i = 0
  while i < len(lines):
    line = lines[i]
    m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
    if not m:
      out.append(line)
      i += 1
      continue
    indent, first = m.group(1), m.group(2)
    body = [first] if first.strip() else []
    i += 1
    while i < len(lines):
      nxt = lines[i]
      if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(indent):
        break
      body.append(nxt.strip())
      i += 1
    while body and not body[-1]:
      body.pop()
    if out and out[-1].strip():
      out.append("")
    out.append(f"{indent}$$")
    out.extend(f"{indent}{b}" for b in body if b)
    out.append(f"{indent}$$")
    out.append("")
  return "\n".join(out)


def _split_multi_args(text: str) -> str:
  """``a, b: desc`` inside an Args section becomes ``a: desc`` and ``b: desc``."""
  lines = text.splitlines()
  out: list[str] = []
  section_indent = None
  i = 0
  while i < len(lines):
    line = lines[i]
    sec = _SECTION.match(line)
    if sec:
      section_indent = len(sec.group(1))
      out.append(line)
      i += 1
      continue
    if (
      section_indent is not None
      and line.strip()
      and (len(line) - len(line.lstrip()) <= section_indent)
    ):
      section_indent = None
    if section_indent is not None:
      # "a, b, c,\n   d: desc": names wrapped over several lines.
      while _NAMES_CONTINUED.match(line) and i + 1 < len(lines):
        i += 1
        line = f"{line.rstrip()} {lines[i].strip()}"
    m = _MULTI_ARG.match(line) if section_indent is not None else None
    if not m:
      out.append(line)
      i += 1
      continue
    indent = m.group(1)
    cont = []
    i += 1
    while (
      i < len(lines) and lines[i].strip() and (len(lines[i]) - len(lines[i].lstrip()) > len(indent))
    ):
      cont.append(lines[i])
      i += 1
    for name in (n.strip() for n in m.group(2).split(",")):
      out.append(f"{indent}{name}: {m.group(3)}")
      out.extend(cont)
  return "\n".join(out)
