"""The coverage table (docs/coverage.md): every peer row names a jaxobj counterpart or a
recipe that resolves, the settings it names are the function's, and the optax and rax lists
match the installed libraries. Pure Python and introspection: no JAX compile."""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import pathlib
import re

import jax.numpy as jnp
import pytest
import yaml

import jaxobj
from jaxobj import registry
from jaxobj._src import coverage

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROWS = [(peer, row) for peer, rows in coverage.ROWS.items() for row in rows]


def _resolve(name: str):
  """The function a counterpart's name stands for: a registry entry (aliases included) or a
  public jaxobj name; None when neither."""
  try:
    return registry.get(name).fn
  except registry.UnknownLossError:
    return getattr(jaxobj, name, None) if not name.startswith("_") else None


def _check_call(call: ast.Call, where: str) -> None:
  name = ast.unparse(call.func)
  fn = _resolve(name)
  assert fn is not None, f"{where}: {name!r} is neither a registered name nor a jaxobj name"
  params = inspect.signature(fn).parameters
  takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
  doc = inspect.getdoc(fn) or ""
  for kw in call.keywords:
    assert kw.arg in params or takes_kwargs, f"{where}: {name} has no argument {kw.arg!r}"
  # A string setting (loss_type='hinge', a preset's name) must be a choice the docs list.
  for value in [*call.args, *(kw.value for kw in call.keywords)]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
      assert f'"{value.value}"' in doc, f"{where}: {name}'s docs list no {value.value!r}"


def _row_id(item):
  return f"{item[0]}:{item[1].name}"


@pytest.mark.parametrize("peer,row", ROWS, ids=[_row_id(r) for r in ROWS])
def test_every_row_has_a_counterpart_or_a_recipe_that_resolves(peer, row):
  where = f"coverage row {peer}:{row.name}"
  assert (row.counterpart is None) != (row.recipe is None), (
    f"{where}: give either a counterpart or a recipe (one of them)"
  )
  if row.counterpart is not None:
    node = ast.parse(row.counterpart, mode="eval").body
    if isinstance(node, ast.Call):
      assert isinstance(node.func, ast.Name), f"{where}: the counterpart calls {node.func}"
      _check_call(node, where)
    else:
      assert isinstance(node, ast.Name), f"{where}: a counterpart is a name or name(settings)"
      assert _resolve(node.id) is not None, f"{where}: {node.id!r} does not exist in jaxobj"
  else:
    calls = [n for n in ast.walk(ast.parse(row.recipe, mode="eval")) if isinstance(n, ast.Call)]
    jaxobj_calls = [c for c in calls if isinstance(c.func, ast.Name)]
    assert jaxobj_calls, f"{where}: the recipe calls no jaxobj function"
    for call in calls:
      if isinstance(call.func, ast.Name):
        _check_call(call, where)
      else:
        base, attr = ast.unparse(call.func).split(".", 1)
        found = base == "jnp" and functools.reduce(
          lambda m, a: getattr(m, a, None), [jnp, *attr.split(".")]
        )
        assert found is not None, f"{where}: {ast.unparse(call.func)}"


def _snake(name: str) -> str:
  return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def test_gaps_are_not_covered_twice_and_really_missing():
  assert set(coverage.GAPS) == set(coverage.ROWS) == {p[0] for p in coverage.PEERS}
  dpo_types = inspect.getdoc(jaxobj.dpo_loss)
  for peer, gaps in coverage.GAPS.items():
    names = [r.name for r in coverage.ROWS[peer]]
    assert len(set(names)) == len(names), f"{peer}: a row is listed twice"
    assert not set(gaps) & set(names), f"{peer}: {set(gaps) & set(names)} is a row and a gap"
    for gap in gaps:
      # A gap that jaxobj has under the peer's name (snake-cased) belongs in the table.
      assert _resolve(_snake(gap)) is None, f"{peer}: {gap} is in jaxobj as {_snake(gap)}"
      m = re.fullmatch(r"DPO loss_type='(\w+)'", gap)
      if m:
        assert f'"{m.group(1)}"' not in dpo_types, f"dpo_loss has loss_type={m.group(1)!r}"


def test_optax_and_rax_lists_match_the_installed_libraries():
  optax = pytest.importorskip("optax")
  rax = pytest.importorskip("rax")
  optax_names = {
    n
    for n in dir(optax.losses)
    if not n.startswith("_") and inspect.isfunction(getattr(optax.losses, n))
  }
  listed = {r.name for r in coverage.ROWS["optax"]}
  assert optax_names == listed, (
    f"optax.losses has {sorted(optax_names - listed)} unlisted; "
    f"the table lists {sorted(listed - optax_names)}, which optax.losses lacks"
  )
  rax_names = (
    {n for n in rax.__all__}
    if hasattr(rax, "__all__")
    else {n for n in dir(rax) if not n.startswith("_") and callable(getattr(rax, n))}
  )
  rax_names -= {"types", "utils"}
  listed = {r.name for r in coverage.ROWS["rax"]}
  assert rax_names <= listed, f"rax has {sorted(rax_names - listed)} unlisted"
  for name in listed - rax_names:
    module, _, attr = name.rpartition(".")
    assert module and hasattr(getattr(rax, module), attr), f"rax has no {name}"


def _hook():
  spec = importlib.util.spec_from_file_location(
    "jaxobj_docs_coverage", ROOT / "docs" / "hooks" / "coverage.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_page_renders_every_row_and_gap():
  hook = _hook()
  page = (ROOT / "docs" / "coverage.md").read_text()
  assert hook.MARKER in page
  text = hook.on_page_markdown(page, None, None, None)
  assert hook.MARKER not in text
  prefixes = {p[0]: p[3] for p in coverage.PEERS}
  for peer, row in ROWS:
    name = f"`{prefixes[peer]}{row.name}`" if prefixes[peer] else row.name
    assert f"| {name} |" in text, f"the page lacks the row {peer}:{row.name}"
  for peer, gaps in coverage.GAPS.items():
    for gap in gaps:
      assert (f"`{prefixes[peer]}{gap}`" if prefixes[peer] else gap) in text
  # Aliases show the entry they name, read from the registry.
  assert "`mse_loss` (alias of `squared_error`)" in text
  config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nplugins:")[0])
  hooks = config["hooks"]
  # Before build.py, whose cross-reference pass links the names the tables show.
  assert hooks.index("docs/hooks/coverage.py") < hooks.index("docs/hooks/build.py")
  assert "coverage.md" in (ROOT / "mkdocs.yml").read_text()
