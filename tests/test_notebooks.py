"""Every notebook in notebooks/ executes from top to bottom without error; those
after the first draw their plots. Notebooks are stored without outputs.

The executed copy is written to build/notebooks/ (git-ignored) with the SHA-256 of
its source, for the docs build (docs/hooks/notebooks.py) to render without running
the notebook again."""

import hashlib
import pathlib

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "build" / "notebooks"  # read by docs/hooks/notebooks.py
# Notebooks that explain with text and numbers only.
TEXT_ONLY = {"01_loss_contract.ipynb"}


def test_there_are_notebooks():
  assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  assert not [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path):
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(
    nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
  ).execute()
  outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  assert any(o.output_type == "stream" for o in outputs)
  if path.name not in TEXT_ONLY:
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was drawn"
  nb.metadata["jaxobj_executed_from"] = digest
  EXECUTED.mkdir(parents=True, exist_ok=True)
  nbformat.write(nb, EXECUTED / path.name)
