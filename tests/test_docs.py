"""The documentation site stays true: its code runs and its tables are complete.

- every Python code block of the pages runs (one namespace per page);
- every example script runs and asserts what it illustrates;
- every recommendation of the loss-choosing guide links to an existing example;
- every family page's reference section is generated from the registry and
  lists every registered entry; its hand-written tables name only its own losses;
- the optax migration table covers every public loss of ``optax.losses``;
- the paths and objects the architecture page and CONTRIBUTING.md name exist.

The strict site build itself (``mkdocs build --strict``) runs in ``.ci/run``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import pathlib
import re
import runpy
import sys

import optax
import pytest

import jaxobj
from jaxobj import registry

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = DOCS / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([\w-]+))?\)")
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def _pages():
  return sorted(p for p in DOCS.rglob("*.md") if p.parent != EXAMPLES)


def _table_rows(text: str, heading: str | None = None) -> list[list[str]]:
  """The body rows of the Markdown tables (under ``heading``, a regex, if given)."""
  if heading is not None:
    sections = re.split(r"^## ", text, flags=re.M)
    text = "\n".join(s for s in sections if re.match(heading, s))
  rows = []
  for line in text.splitlines():
    if line.startswith("|") and not re.match(r"^\|[-| :]+\|$", line):
      cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
      rows.append(cells)
  # Drop the header row of each table: the row before a separator line.
  headers = set()
  lines = text.splitlines()
  for i, line in enumerate(lines[1:], start=1):
    if re.match(r"^\|[-| :]+\|$", line):
      headers.add(lines[i - 1].strip())
  return [r for r in rows if "| " + " | ".join(r) + " |" not in headers]


# ---------------------------------------------------------------- code runs


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_blocks_run(page):
  blocks = FENCE.findall(page.read_text())
  namespace: dict = {"__name__": f"docs.{page.stem}"}
  for block in blocks:
    exec(compile(block, str(page), "exec"), namespace)  # noqa: S102


@pytest.fixture(scope="module")
def examples_on_path():
  sys.path.insert(0, str(EXAMPLES))
  yield
  sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_runs(path, examples_on_path, capsys):
  runpy.run_path(str(path), run_name="__main__")  # each example asserts its own claim
  assert capsys.readouterr().out.strip(), f"{path.name} printed nothing"


def test_every_example_is_on_the_examples_page():
  page = (EXAMPLES / "index.md").read_text()
  for path in EXAMPLE_FILES:
    assert f"{{#{path.stem}}}" in page, f"docs/examples/index.md has no section for {path.name}"
    assert f'--8<-- "examples/{path.name}"' in page


# ---------------------------------------------------------------- the loss-choosing guide


def test_every_recommendation_links_to_a_runnable_example():
  guide = (DOCS / "choosing.md").read_text()
  rows = _table_rows(guide, heading=r"\d+\. ")
  assert len(rows) >= 30
  linked = set()
  for row in rows:
    links = [(target, anchor) for target, anchor in LINK.findall(row[-1])]
    assert links, f"recommendation without an example: {row[:2]}"
    for target, anchor in links:
      assert target == "examples/index.md" and anchor, f"{row[:2]} links to {target}#{anchor}"
      assert (EXAMPLES / f"{anchor}.py").exists(), f"{row[:2]}: no docs/examples/{anchor}.py"
      linked.add(anchor)
  assert linked == {p.stem for p in EXAMPLE_FILES}, "examples no recommendation links to"


def test_every_loss_the_guide_recommends_exists():
  guide = (DOCS / "choosing.md").read_text()
  hyperparameters = {h for s in registry.specs() for h in s.hyperparameters}
  for row in _table_rows(guide, heading=r"\d+\. "):
    for name in re.findall(r"`([a-z][a-z0-9_]*)(?:\(|`)", row[1]):
      if name in hyperparameters:  # "`huber_loss` with `delta` about ..."
        continue
      assert hasattr(jaxobj, name), f"choosing.md recommends {name!r}, which jaxobj lacks"


# ---------------------------------------------------------------- family pages


def _family_page(family: str) -> str:
  page = DOCS / "losses" / f"{family}.md"
  assert page.exists(), f"no family page docs/losses/{family}.md"
  return page.read_text()


def _guide_text(family: str) -> str:
  return _family_page(family).split("## Catalogue")[0]  # the hand-written part


@functools.cache
def _reference_hook():
  """``docs/hooks/reference.py``, which writes the family pages' reference section."""
  spec = importlib.util.spec_from_file_location(
    "jaxobj_docs_reference", DOCS / "hooks" / "reference.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _listed(family: str) -> dict[str, set[str]]:
  """``{module: members}`` as the generated reference section lists them (a
  block naming one function counts as its module listing that member)."""
  blocks: dict[str, set[str]] = {}
  target = None
  for line in _reference_hook().markdown(family).splitlines():
    if line.startswith("::: "):
      target = line[4:].strip()
      blocks[target] = set()
    elif line.strip().startswith("- "):
      blocks[target].add(line.strip()[2:])
  listed: dict[str, set[str]] = {}
  for target, members in blocks.items():
    if not members:  # "::: module.function"
      target, member = target.rsplit(".", 1)
      members = {member}
    listed.setdefault(target, set()).update(members)
  return listed


@pytest.mark.parametrize("family", registry.families())
def test_family_page_reference_follows_the_registry(family):
  """Registering a loss puts it on its family page: the reference section is
  generated, and lists every registered entry where it is defined."""
  text = _family_page(family)
  assert f"<!-- reference:{family} -->" in text
  assert f"<!-- catalogue:{family} -->" in text
  assert f"img/plots/{family}.png" in _guide_text(family)
  assert not re.search(r"^::: ", text, re.M), (
    f"docs/losses/{family}.md lists its reference by hand; the hook generates it "
    f"from the registry: keep only <!-- reference:{family} -->"
  )
  listed = _listed(family)
  missing = [
    s.name
    for s in registry.specs(family=family)
    if s.fn.__name__ not in listed.get(s.fn.__module__, set())
  ]
  assert not missing, f"the reference of docs/losses/{family}.md does not list {missing}"
  for module, members in listed.items():
    public = set(getattr(importlib.import_module(module), "__all__", ()))
    assert members <= public, f"{module}: lists {sorted(members - public)}, not in __all__"


def test_every_public_name_of_the_loss_modules_is_on_one_family_page():
  """Helpers (``fit_temperature``, ``smooth_labels``) are documented too, and no
  object is on two pages (the site would have two anchors for it)."""
  from jaxobj import losses, regularizers

  pages: dict[tuple[str, str], list[str]] = {}
  for family in registry.families():
    for module, members in _listed(family).items():
      for member in members:
        pages.setdefault((module, member), []).append(family)
  twice = {f"{m}.{n}": f for (m, n), f in pages.items() if len(f) > 1}
  assert not twice, f"documented on several family pages: {twice}"
  modules = [regularizers] + [
    m for m in vars(losses).values() if inspect.ismodule(m) and hasattr(m, "__all__")
  ]
  missing = []
  for module in modules:
    for name in module.__all__:
      obj = getattr(module, name)
      home = getattr(obj, "__module__", module.__name__) if callable(obj) else module.__name__
      if home == module.__name__ and (home, name) not in pages:
        missing.append(f"{home}.{name}")
  assert not missing, f"on no family page: {missing}"


def test_reference_of_an_unknown_family_is_an_error():
  with pytest.raises(ValueError, match="no registered family 'regresion'"):
    _reference_hook().markdown("regresion")


@pytest.mark.parametrize("family", registry.families())
def test_family_page_tables_name_only_its_own_losses(family):
  """The hand-written "which one" tables need not list every loss (the reference
  does), but each loss they name exists and belongs to the family."""
  own = set().union(*_listed(family).values())
  named = set()
  for row in _table_rows(_guide_text(family)):
    named.update(re.findall(r"`([A-Za-z_]\w*)`", row[0]))
  assert named, f"docs/losses/{family}.md has no table naming its losses"
  stale = sorted(named - own)
  assert not stale, f"docs/losses/{family}.md's tables name {stale}, not in the family"


def test_every_family_page_is_in_the_nav():
  nav = (DOCS.parent / "mkdocs.yml").read_text()
  for family in registry.families():
    assert f"losses/{family}.md" in nav


# ---------------------------------------------------------------- the contributor's map

MAPS = [DOCS / "architecture.md", DOCS.parent / "CONTRIBUTING.md", DOCS / "development.md"]
PATH = re.compile(
  r"`((?:jaxobj|tests|docs|benchmarks|configs)/[\w./-]*|[\w-]+\.(?:py|md|yml|toml))`"
)


@pytest.mark.parametrize("page", MAPS, ids=lambda p: p.name)
def test_every_path_the_contributors_map_names_exists(page):
  """The architecture page and the contributing guide name files and folders;
  a rename that leaves them pointing nowhere fails here."""
  named = {p for p in PATH.findall(page.read_text()) if "<" not in p}
  assert len(named) >= 3, f"{page.name} names no paths: is the pattern stale?"
  root = DOCS.parent

  def exists(path):
    if "/" in path:  # from the root, or a docs page from docs/
      return (root / path).exists() or (DOCS / path).exists()
    folders = ("jaxobj", "tests", "docs", "benchmarks")  # a file named in a table of folders
    return (root / path).exists() or any(any((root / d).rglob(path)) for d in folders)

  missing = sorted(p for p in named if not exists(p))
  assert not missing, f"{page.name} names {missing}, which do not exist"


@pytest.mark.parametrize("page", MAPS, ids=lambda p: p.name)
def test_the_contributors_map_names_existing_objects(page):
  """``jo.<name>``, ``jaxobj.<name>`` and "``NAME`` in ``jaxobj/<module>.py``" in the map exist."""
  from jaxobj import objective

  text = page.read_text()
  for name in re.findall(r"`jo\.(\w+)", text):
    assert hasattr(objective, name), f"{page.name} names jo.{name}, which jaxobj.objective lacks"
  for name in re.findall(r"`jaxobj\.(\w+)`", text):
    exists = hasattr(jaxobj, name) or importlib.util.find_spec(f"jaxobj.{name}") is not None
    assert exists, f"{page.name} names jaxobj.{name}, which does not exist"
  for name, path in re.findall(r"`(_?[A-Z][A-Z_]+)` in `(jaxobj/[\w/]+)\.py`", text):
    module = importlib.import_module(path.replace("/", "."))
    assert hasattr(module, name), f"{page.name} names {name} in {path}.py, which lacks it"


# ---------------------------------------------------------------- migration from optax


def _optax_losses() -> list[str]:
  return sorted(
    n for n, obj in vars(optax.losses).items() if not n.startswith("_") and inspect.isfunction(obj)
  )


def test_migration_table_covers_every_optax_loss():
  rows = _table_rows((DOCS / "migration-optax.md").read_text(), heading=r"Every optax loss")
  mapped = {}
  for row in rows:
    m = re.fullmatch(r"`optax\.losses\.(\w+)`", row[0])
    assert m, f"first column must name an optax loss: {row[0]}"
    mapped[m.group(1)] = row[1]
  missing = sorted(set(_optax_losses()) - set(mapped))
  assert not missing, f"docs/migration-optax.md has no row for optax.losses.{missing}"
  stale = sorted(set(mapped) - set(_optax_losses()))
  assert not stale, f"docs/migration-optax.md maps {stale}, which optax.losses lacks"
  for name, target in mapped.items():
    if target == "—":
      continue
    jaxobj_name = re.fullmatch(r"`(\w+)`", target)
    assert jaxobj_name and hasattr(jaxobj, jaxobj_name.group(1)), (name, target)


def test_migration_table_same_names_agree_with_optax():
  """Where the table maps an optax loss to the jaxobj loss of the same name with no
  difference noted, ``reduction="none"`` gives optax's values."""
  import jax.numpy as jnp

  p, t = jnp.array([0.3, -2.0, 4.0]), jnp.array([0.0, -1.5, 1.0])
  for name in ("squared_error", "l2_loss", "huber_loss", "log_cosh"):
    ours = getattr(jaxobj, name)(p, t, reduction="none")
    assert jnp.allclose(ours, getattr(optax.losses, name)(p, t), rtol=1e-5), name


# ---------------------------------------------------------------- notebooks and offline math


@functools.cache
def _notebook_hook():
  """docs/hooks/notebooks.py, the build hook that renders the notebooks."""
  spec = importlib.util.spec_from_file_location(
    "jaxobj_docs_notebooks", DOCS / "hooks" / "notebooks.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


NOTEBOOK_FILES = sorted((DOCS.parent / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_linked_from_the_readme():
  readme = (DOCS.parent / "README.md").read_text()
  section = re.search(r"^## Notebooks\n(.*?)^## ", readme, re.S | re.M)
  assert section, "README.md has no '## Notebooks' section"
  linked = set(re.findall(r"\]\((notebooks/[\w.-]+\.ipynb)\)", section.group(1)))
  files = {f"notebooks/{p.name}" for p in NOTEBOOK_FILES}
  assert files - linked == set(), f"README.md's Notebooks section does not link {files - linked}"
  assert linked - files == set(), f"README.md links notebooks that do not exist: {linked - files}"


def test_site_config_loads_nothing_from_another_host():
  import yaml

  config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text())
  remote = [
    u for u in config.get("extra_javascript", []) + config.get("extra_css", []) if "//" in u
  ]
  assert remote == [], f"mkdocs.yml loads {remote} from another host: the site breaks offline"
  assert config["theme"].get("font") is False, "the theme's fonts come from a font CDN"
  assert "docs/hooks/notebooks.py" in config["hooks"]
  local = [u for u in config["extra_javascript"] if u.startswith(_notebook_hook().MATHJAX_URI)]
  assert local == [f"{_notebook_hook().MATHJAX_URI}/tex-mml-chtml.js"]
  # The docs extra installs the package whose MathJax the hook copies into the site.
  assert "django-static-mathjax" in (DOCS.parent / "pyproject.toml").read_text()


def test_built_pages_with_remote_assets_are_found(tmp_path):
  hook = _notebook_hook()
  (tmp_path / "ok.html").write_text(
    '<script src="assets/mathjax/tex-mml-chtml.js"></script><a href="https://github.com/x">x</a>'
  )
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "bad.html").write_text(
    '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
    '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
  )
  found = hook.remote_assets(tmp_path)
  assert list(found) == ["sub/bad.html"]
  assert len(found["sub/bad.html"]) == 2


def _tiny_notebook():
  import nbformat
  from nbformat import v4

  png = b"\x89PNG\r\n\x1a\nnot-really-a-png"
  nb = v4.new_notebook()
  nb.cells = [
    v4.new_code_cell("import os"),
    v4.new_markdown_cell("# A title\n\nSome math: $r^2$."),
    v4.new_code_cell(
      "print(1)\nplot()",
      outputs=[
        v4.new_output("stream", name="stdout", text="\x1b[31m1\x1b[0m\n"),
        v4.new_output(
          "display_data",
          data={"image/png": __import__("base64").b64encode(png).decode(), "text/plain": "<Fig>"},
        ),
        v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
      ],
    ),
  ]
  return nbformat.from_dict(nb), png


def test_notebook_page_has_text_code_outputs_and_plots():
  nb, png = _tiny_notebook()
  title, markdown, images = _notebook_hook().to_markdown(nb, "00_tiny")
  assert title == "A title"
  assert markdown.startswith("# A title\n\n!!! note")  # the title heads the page
  assert "\nSome math: $r^2$.\n" in markdown and markdown.count("# A title") == 1
  assert "[`00_tiny.ipynb`](00_tiny.ipynb)" in markdown
  assert "```python\nimport os\n```" in markdown
  assert "```text\n1\n```" in markdown  # ANSI colour codes are dropped
  assert "```text\n42\n```" in markdown and "<Fig>" not in markdown
  assert images == {"00_tiny-1.png": png}
  assert "(00_tiny/00_tiny-1.png)" in markdown


def test_notebook_executed_copy_is_used_only_while_fresh(tmp_path, monkeypatch):
  import nbformat

  hook = _notebook_hook()
  nb, _ = _tiny_notebook()
  source = tmp_path / "00_tiny.ipynb"
  stripped = nbformat.from_dict(nb)
  for cell in stripped.cells:
    if cell.cell_type == "code":
      cell.outputs = []
  nbformat.write(stripped, source)
  monkeypatch.setattr(hook, "EXECUTED", tmp_path / "executed")
  (tmp_path / "executed").mkdir()
  nb.metadata[hook.SOURCE_KEY] = hook.source_hash(source)
  nbformat.write(nb, tmp_path / "executed" / source.name)
  assert hook.executed(source).cells[2].outputs  # fresh: read, not run

  runs = []

  class Client:  # records the run instead of starting a kernel
    def __init__(self, nb, **kwargs):
      self.nb = nb

    def execute(self):
      runs.append(self.nb)

  monkeypatch.setitem(sys.modules, "nbclient", type(sys)("nbclient"))
  sys.modules["nbclient"].NotebookClient = Client
  source.write_text(source.read_text().replace("import os", "import sys"))  # now stale
  hook.executed(source)
  assert len(runs) == 1 and runs[0].cells[0].source == "import sys"
  rewritten = nbformat.read(tmp_path / "executed" / source.name, as_version=4)
  assert rewritten.metadata[hook.SOURCE_KEY] == hook.source_hash(source)


def test_every_notebook_is_in_the_docs_nav():
  config = {"nav": [{"Home": "index.md"}, {"Notebooks": ["notebooks/index.md", "stale.md"]}]}
  nav = _notebook_hook().on_config(config)["nav"][1]["Notebooks"]
  assert nav == ["notebooks/index.md"] + [f"notebooks/{p.stem}.md" for p in NOTEBOOK_FILES]
  assert "Notebooks:" in (DOCS.parent / "mkdocs.yml").read_text()
