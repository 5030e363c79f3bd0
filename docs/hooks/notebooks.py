"""MkDocs hooks: the notebooks, rendered with their outputs, and math that renders offline.

Notebooks. Every ``notebooks/*.ipynb`` becomes a page ``notebooks/<stem>.md`` with its
text, code, printed output and plots, listed under the ``Notebooks`` section of the nav
(``notebooks/index.md``, generated too) and downloadable as ``notebooks/<stem>.ipynb``.
The repository stores notebooks without outputs; the outputs come from an executed copy:

- ``tests/test_notebooks.py`` executes every notebook and writes the executed copy to
  ``build/notebooks/<name>`` with the SHA-256 of the source it ran in its metadata, so CI's
  docs build (which runs after the tests) executes nothing;
- a copy that is missing or stale (the source changed since) is executed here, once per
  process, with the same client, and written back to ``build/notebooks/``.

Math. MathJax is served from the site itself (``assets/mathjax/``, copied from the
``django-static-mathjax`` package of the ``docs`` extra), never from a CDN. After the build,
every page is checked: a ``<script>`` or stylesheet loaded from another host fails it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
SOURCE_KEY = "jaxobj_executed_from"  # metadata key: the SHA-256 of the source notebook
SECTION = "Notebooks"
MATHJAX_URI = "assets/mathjax"
# The combined TeX+MathML component, its fonts, and what it loads on demand (TeX
# extensions such as \boldsymbol, the context menu and its accessibility tools).
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "sre", "adaptors")

log = logging.getLogger("mkdocs.hooks.jaxobj.notebooks")


def _error(message: str) -> Exception:
  """MkDocs' build error, imported here: the module is kept free of MkDocs imports at load
  time so that ``tests/test_docs.py`` can check it in the test environment."""
  from mkdocs.exceptions import PluginError

  return PluginError(message)


_rendered: dict[str, tuple[str, str, dict[str, bytes]]] = {}  # stem -> (title, markdown, images)


def source_hash(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def executed(path: pathlib.Path):
  """The executed notebook of ``path``: the fresh copy in build/notebooks/, or a new run."""
  import nbformat

  digest = source_hash(path)
  copy = EXECUTED / path.name
  if copy.exists():
    nb = nbformat.read(copy, as_version=4)
    if nb.metadata.get(SOURCE_KEY) == digest:
      return nb
  import nbclient

  log.info("Executing %s (no executed copy of this version in build/notebooks/)", path.name)
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
  ).execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  errors = [o for o in errors if o.output_type == "error"]
  if errors:
    raise _error(f"{path.name} raised {errors[0].ename}: {errors[0].evalue}")
  nb.metadata[SOURCE_KEY] = digest
  EXECUTED.mkdir(parents=True, exist_ok=True)
  nbformat.write(nb, copy)
  return nb


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _text_block(text: str) -> str:
  text = _ANSI.sub("", text).rstrip("\n")
  return f"```text\n{text}\n```\n" if text else ""


def to_markdown(nb, stem: str) -> tuple[str, str, dict[str, bytes]]:
  """``(title, markdown, {image file name: PNG bytes})`` of an executed notebook."""
  parts: list[str] = []
  images: dict[str, bytes] = {}
  title = None
  for cell in nb.cells:
    if cell.cell_type == "markdown":
      source = cell.source
      heading = re.search(r"^#\s+(.+)\n?", source, re.M)
      if heading and title is None:  # the page's title: moved to the top, above the note
        title = heading.group(1).strip()
        source = source[: heading.start()] + source[heading.end() :]
      parts.append(source.strip() + "\n")
    elif cell.cell_type == "code" and cell.source.strip():
      parts.append(f"```python\n{cell.source.rstrip()}\n```\n")
      for out in cell.outputs:
        if out.output_type == "stream":
          parts.append(_text_block(out.text))
        elif out.output_type in ("display_data", "execute_result"):
          data = out.get("data", {})
          if "image/png" in data:
            name = f"{stem}-{len(images) + 1}.png"
            images[name] = base64.b64decode(data["image/png"])
            parts.append(f"![output {len(images)} of {stem}]({stem}/{name})\n")
          elif "text/markdown" in data:
            parts.append(data["text/markdown"] + "\n")
          elif "text/plain" in data:
            parts.append(_text_block(data["text/plain"]))
  title = title or stem
  note = (
    f'!!! note "Run it yourself"\n    Download [`{stem}.ipynb`]({stem}.ipynb) (stored without '
    "outputs in the repository's `notebooks/`); the outputs below come from running it as "
    "the test suite does.\n"
  )
  parts = [f"# {title}\n", note] + parts
  return title, "\n".join(p for p in parts if p), images


def _render_all() -> None:
  if _rendered:  # `mkdocs serve` rebuilds: convert once per process
    return
  for path in sorted(NOTEBOOKS.glob("*.ipynb")):
    _rendered[path.stem] = to_markdown(executed(path), path.stem)


def _index() -> str:
  rows = "\n".join(
    f"- [{title}]({stem}.md) ([`{stem}.ipynb`]({stem}.ipynb))"
    for stem, (title, _, _) in _rendered.items()
  )
  return (
    "# Notebooks\n\nThe notebooks in the repository's `notebooks/` folder, with the outputs "
    "and plots of a run. Each executes from top to bottom in the test suite; install "
    '`pip install -e ".[notebooks]"` to run them yourself.\n\n' + rows + "\n"
  )


# ---------------------------------------------------------------- hooks


def on_config(config):
  """Lists every notebook under the nav's ``Notebooks`` section."""
  for entry in config["nav"] or []:
    if isinstance(entry, dict) and SECTION in entry:
      pages = [p for p in entry[SECTION] if p == "notebooks/index.md"]
      pages += [f"notebooks/{p.stem}.md" for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
      entry[SECTION] = pages
      return config
  raise _error(f"mkdocs.yml: the nav has no {SECTION!r} section for the notebooks.")


def on_files(files, config):
  from mkdocs.structure.files import File

  _render_all()
  files.append(File.generated(config, "notebooks/index.md", content=_index()))
  for stem, (_, markdown, images) in _rendered.items():
    files.append(File.generated(config, f"notebooks/{stem}.md", content=markdown))
    src = NOTEBOOKS / f"{stem}.ipynb"
    files.append(File.generated(config, f"notebooks/{stem}.ipynb", abs_src_path=str(src)))
    for name, data in images.items():
      files.append(File.generated(config, f"notebooks/{stem}/{name}", content=data))
  try:
    import mathjax  # django-static-mathjax: MathJax 3's distribution, as a package
  except ImportError:
    raise _error(
      "MathJax is served from the site: install it with pip install -e '.[docs]' "
      "(the django-static-mathjax package)."
    ) from None

  es5 = pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
  for part in MATHJAX_PARTS:
    paths = [es5 / part] if (es5 / part).is_file() else sorted((es5 / part).rglob("*"))
    for path in paths:
      if path.is_file():
        uri = f"{MATHJAX_URI}/{path.relative_to(es5).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
  return files


_REMOTE = re.compile(
  r"<script[^>]*\bsrc=\"(?:https?:)?//[^\"]+\"|<link[^>]*\bhref=\"(?:https?:)?//[^\"]+\.css[^\"]*\""
  r"|<link[^>]*\bhref=\"(?:https?:)?//fonts\.[^\"]+\"",
  re.I,
)


def remote_assets(site_dir: pathlib.Path) -> dict[str, list[str]]:
  """``{page: [tags]}`` of the scripts, stylesheets and fonts a built page loads from another
  host."""
  found = {}
  for page in sorted(site_dir.rglob("*.html")):
    tags = _REMOTE.findall(page.read_text(encoding="utf-8"))
    if tags:
      found[page.relative_to(site_dir).as_posix()] = tags
  return found


def on_post_build(config):
  found = remote_assets(pathlib.Path(config["site_dir"]))
  if found:
    page, tags = next(iter(found.items()))
    raise _error(
      f"{len(found)} built pages load assets from another host, so they break offline; "
      f"{page} loads {tags[:3]}. Serve them from the site (see docs/hooks/notebooks.py)."
    )
