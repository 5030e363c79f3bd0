"""MkDocs hooks: what the site generates at build time, so it never goes stale.

- ``img/plots/<family>.png``: one figure per loss family, drawn from the
  library's own functions (``docs/hooks/plots.py``).
- The benchmark page: ``<!-- benchmark-results -->`` in ``benchmarks.md`` is
  replaced by a table of ``benchmarks/results.json`` (written by
  ``python benchmarks/run.py``), rendered by ``benchmarks/table.py`` (the
  README's renderer).
- The catalogue: ``<!-- catalogue:<family> -->`` is replaced by a table of the
  registry's entries of that family (name, kind, summary, hyperparameters).
- The reference: ``<!-- reference:<family> -->`` is replaced by the
  mkdocstrings blocks of the modules that define the family's registered
  entries (``docs/hooks/reference.py``), so registering a loss is enough to put
  it on its family page.
- Cross-references: in the hand-written pages, inline code naming a public
  jaxobj object (`` `huber_loss` ``, `` `jaxobj.huber_loss` ``, `` `jo.term` ``)
  links to its reference; fenced code blocks are left alone.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import pathlib
import re
import sys

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent

RESULTS = ROOT / "benchmarks" / "results.json"
BENCH_MARKER = "<!-- benchmark-results -->"

log = logging.getLogger("mkdocs.hooks.jaxobj")
_plots: dict[str, bytes] = {}


def _load(name: str, path: pathlib.Path):
  """Imports a module from a file (mkdocs puts the hook's folder on sys.path only
  while it loads the hook itself)."""
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name]


def on_files(files, config):
  plots = _load("jaxobj_docs_plots", HERE / "plots.py")  # imports jax: only when building
  if not _plots:  # `mkdocs serve` rebuilds: draw once per process
    _plots.update(plots.render_all())
  for name, data in sorted(_plots.items()):
    files.append(File.generated(config, f"img/plots/{name}", content=data))
  return files


def on_page_markdown(markdown, page, config, files):
  if BENCH_MARKER in markdown:
    markdown = markdown.replace(BENCH_MARKER, benchmark_section())
  if "<!-- catalogue:" in markdown:
    markdown = _catalogues(markdown)
  if "<!-- reference:" in markdown:
    reference = _load("jaxobj_docs_reference", HERE / "reference.py")
    markdown = re.sub(
      r"<!-- reference:(\w+) -->", lambda m: reference.markdown(m.group(1)), markdown
    )
  return _link_names(markdown)


# ---------------------------------------------------------------- benchmarks


def benchmark_section() -> str:
  """The committed results, rendered by the README's renderer."""
  if not RESULTS.exists():
    return (
      '!!! note "No results in this checkout"\n'
      "    `benchmarks/results.json` does not exist yet. Run "
      "`python benchmarks/run.py` and rebuild the site to fill this table.\n"
    )
  data = json.loads(RESULTS.read_text())
  table = _load("jaxobj_benchmarks_table", ROOT / "benchmarks" / "table.py")
  warning = (
    (
      '!!! warning "Quick sizes"\n    These results come from `--quick`, at '
      "sizes too small to show the scaling.\n\n"
    )
    if data.get("quick")
    else ""
  )
  return warning + table.render(data)


# ---------------------------------------------------------------- catalogue


def _catalogues(markdown: str) -> str:
  from jaxobj import registry
  from jaxobj.cli import format_value  # defaults as `jaxobj losses` shows them

  def table(match):
    family = match.group(1)
    specs = registry.specs(family=family)
    if not specs:
      raise ValueError(
        f"<!-- catalogue:{family} -->: no registered family {family!r}; "
        f"the families are {registry.families()}."
      )
    rows = ["| name | kind | summary | hyperparameters (defaults) |", "|---|---|---|---|"]
    for s in specs:
      hyper = ", ".join(f"`{k}={format_value(v)}`" for k, v in s.hyperparameters.items()) or "–"
      summary = re.sub(
        r":math:`([^`]+)`", lambda m: "$" + m.group(1).replace("|", r"\vert ") + "$", s.summary
      )
      summary = re.sub(r":(?:func|class|meth|data|mod|attr):`~?([^`]+)`", r"`\1`", summary)
      summary = summary.replace("|", "\\|")
      rows.append(
        f"| [`{s.name}`][{s.fn.__module__}.{s.fn.__name__}] | {s.kind} | {summary} | {hyper} |"
      )
    return "\n".join(rows) + "\n"

  return re.sub(r"<!-- catalogue:(\w+) -->", table, markdown)


# ---------------------------------------------------------------- cross-references


@functools.cache
def public_names() -> dict[str, str]:
  """``{name as written in prose: identifier of its reference}``."""
  import jaxobj
  from jaxobj import losses, objective, regularizers

  names = {}
  for family in (getattr(losses, m) for m in dir(losses)):
    if getattr(family, "__name__", "").startswith("jaxobj.losses.") and hasattr(family, "__all__"):
      for name in family.__all__:
        # Documented where it is defined (see reference.py), not where re-exported.
        module = getattr(getattr(family, name), "__module__", None) or family.__name__
        if not module.startswith("jaxobj."):
          module = family.__name__
        names[name] = names[f"jaxobj.{name}"] = f"{module}.{name}"
  for name in regularizers.__all__:
    names[f"jaxobj.regularizers.{name}"] = f"jaxobj.regularizers.{name}"
    if name.endswith("_penalty"):  # also exported at the top level
      names[name] = names[f"jaxobj.{name}"] = f"jaxobj.regularizers.{name}"
  names["reduce_loss"] = names["jaxobj.reduce_loss"] = "jaxobj.reduce_loss"
  for name in dir(objective):
    obj = getattr(objective, name)
    module = getattr(obj, "__module__", "")
    if not name.startswith("_") and module.startswith("jaxobj.objective."):
      names[f"jo.{name}"] = f"{module}.{name}"
  del jaxobj
  return names


_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
_CODE = re.compile(r"(?<![\[\w`])`([\w.]+)(\(\))?`(?![\]`])")


def _link_names(markdown: str) -> str:
  names = public_names()

  def link(match):
    name = match.group(1)
    if name not in names:
      return match.group(0)
    return f"[{match.group(0)}][{names[name]}]"

  out, last = [], 0
  for fence in _FENCE.finditer(markdown):
    out.append(_CODE.sub(link, markdown[last : fence.start()]))
    out.append(fence.group(0))
    last = fence.end()
  out.append(_CODE.sub(link, markdown[last:]))
  return "".join(out)
