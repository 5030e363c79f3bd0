"""The loss contract's rules on unusual inputs (DESIGN.md §3), for every registered loss.

Companion to ``test_conformance.py``, whose example inputs it reuses: NaN in an
unmasked input reaches the value (a training loop must see it) while the same
NaN behind a mask changes nothing, an empty batch gives 0 with a finite
gradient, and low-precision inputs give float32 even with ``jax_enable_x64``.
"""

from __future__ import annotations

import inspect
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_conformance import MASK, _close, _draw, _is_float

from jaxobj import registry

# Every loss and every metric that takes arrays. A metric may give several
# arrays (a reliability diagram's bins): the rules hold for each of them.
SPECS = [s for s in registry.specs() if s.kind in ("loss", "metric") and s.inputs is not None]

UNMASKED_ROW, MASKED_ROW = 2, 1
assert MASK[UNMASKED_ROW] and not MASK[MASKED_ROW]


def _ids(specs):
  return [s.name for s in specs]


def test_every_loss_and_metric_with_inputs_is_covered():
  covered = {s.name for s in SPECS}
  missing = {s.name for s in registry.specs() if s.kind != "regularizer"} - covered
  assert all(registry.get(n).no_inputs for n in missing), missing
  assert len(SPECS) >= 90


def _leaves(out):
  return [np.asarray(leaf) for leaf in jax.tree.leaves(out)]


def _reductions(spec):
  """Keyword sets for the reductions a loss offers (the calibration metrics give the mean only)."""
  if "reduction" in inspect.signature(spec.fn).parameters:
    return ({}, {"reduction": "sum"})
  return ({},)


def _returns_arrays(spec):
  """Whether the metric returns several arrays (a NamedTuple, per its type hints)
  rather than a loss value."""
  ret = typing.get_type_hints(spec.fn).get("return")
  return isinstance(ret, type) and issubclass(ret, tuple)


def _float_inputs(spec, args):
  """Indices of the float inputs, and whether each carries the batch axes."""
  n = len(args) if spec.inputs.batched is None else spec.inputs.batched
  return [(i, i < n) for i, a in enumerate(args) if _is_float(a)]


def _with_nan(args, i, row, last=False):
  """``args`` with one NaN in input ``i``: in batch row ``row`` if given, else in
  the input's first (``last``: last) entry; within the row, likewise."""
  a = np.array(args[i])
  rest = (-1 if last else 0,) * (a.ndim - (row is not None))
  a[rest if row is None else (row,) + rest] = np.nan
  return args[:i] + (jnp.asarray(a),) + args[i + 1 :]


# ---------------------------------------------------------------- NaN


@pytest.mark.structure
@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_nan_in_an_unmasked_input_reaches_the_value(spec):
  args = _draw(spec)
  where = jnp.asarray(MASK)
  # Jitted (eager dispatch costs far more here), so every variant below reuses one program.
  f = jax.jit(lambda *a: spec.fn(*a, where=where))
  clean = f(*args)
  inputs = _float_inputs(spec, args)
  assert inputs, f"{spec.name} has no float input to check"
  for i, batched in inputs:
    name = spec.input_names[i]
    row = UNMASKED_ROW if batched else None
    # The first and the last entry: a guard or a cumulative sum may skip either end.
    for last in (False, True):
      value = _leaves(f(*_with_nan(args, i, row, last)))
      assert any(np.isnan(v).any() for v in value), f"NaN in {name} (last={last}) gave {value}"
    if batched:  # the same NaN in a masked row changes nothing
      jax.tree.map(_close, f(*_with_nan(args, i, MASKED_ROW)), clean)


# ---------------------------------------------------------------- empty


@pytest.mark.structure
@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_empty_batch_gives_zero_with_finite_gradient(spec):
  args = _draw(spec, (0,))
  assert args[0].shape[0] == 0
  if _returns_arrays(spec):  # e.g. a reliability diagram's bins: empty, and finite
    assert all(np.all(np.isfinite(v)) for v in _leaves(jax.jit(spec.fn)(*args)))
    return
  reductions = _reductions(spec)

  @jax.jit
  def run(*a):
    out = {str(kw): spec.fn(*a, **kw) for kw in reductions}
    if len(reductions) > 1:
      out["none"] = spec.fn(*a, reduction="none")
    if spec.kind == "loss":
      out["grad"] = jax.grad(lambda x: spec.fn(x, *a[1:]))(a[0])
    return out

  out = run(*args)
  for kw in reductions:
    assert float(out[str(kw)]) == 0.0, kw
  if "none" in out:
    assert out["none"].shape == (0,)
  if "grad" in out:
    assert out["grad"].shape == args[0].shape and np.all(np.isfinite(out["grad"]))


# ---------------------------------------------------------------- x64


@pytest.fixture
def x64():
  """``jax_enable_x64`` for one test, restored afterwards (other tests run in this process)."""
  before = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_low_precision_inputs_give_float32_under_x64(spec, x64):
  assert jnp.zeros(1, float).dtype == jnp.float64  # x64 is on
  args = _draw(spec)
  # bfloat16 only: float16 takes the same path (checks.as_float) at the cost of a compile.
  low = tuple(a.astype(jnp.bfloat16) if _is_float(a) else a for a in args)
  for out in jax.tree.leaves(jax.jit(spec.fn)(*low)):
    assert out.dtype == jnp.float32, f"bfloat16 inputs gave {out.dtype}"


def test_x64_fixture_leaves_the_default_alone():
  assert jnp.zeros(1, float).dtype == jnp.float32
