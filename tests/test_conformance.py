"""The loss contract (DESIGN.md §3), checked for every registered loss.

A loss is covered by being registered: its ``inputs`` tell these tests how to
draw valid arguments, so nothing here names a particular loss.
"""

from __future__ import annotations

import contextlib
import inspect
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj import registry

# Every loss with example inputs. The others (those that take a function, a
# GAN critic) say why at registration (``no_inputs``); their own tests cover
# the contract.
SPECS = [s for s in registry.specs(kind="loss") if s.inputs is not None]
BATCH = (6,)


def _ids(specs):
  return [s.name for s in specs]


def _draw(spec, shape=BATCH, variant=None):
  rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
  make = spec.inputs.make if variant is None else getattr(spec.inputs, variant)
  return tuple(jnp.asarray(a) for a in make(rng, shape))


def _per_row(spec, args, fn):
  """Applies ``fn`` to the inputs that carry the batch axes (see ``Inputs.batched``)."""
  n = len(args) if spec.inputs.batched is None else spec.inputs.batched
  return tuple(fn(a) for a in args[:n]) + tuple(args[n:])


def _is_float(a):
  return jnp.issubdtype(a.dtype, jnp.floating)


def _grad(spec, args, **kw):
  """Gradient of the scalar loss with respect to the first input."""
  return jax.grad(lambda x: spec.fn(x, *args[1:], **kw))(args[0])


def _alternative(default: float) -> float:
  return 0.5 * default if default != 0 else 0.1


def _close(a, b, rtol=2e-5, atol=1e-6):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@pytest.fixture(params=SPECS, ids=_ids(SPECS))
def spec(request):
  return request.param


def test_every_other_loss_says_why_it_has_no_example_inputs():
  missing = [s for s in registry.specs() if s.kind != "regularizer" and s.inputs is None]
  assert {s.name for s in missing} == {
    "wgan_gradient_penalty",
    "r1_penalty",
    "perceptual_loss",
    "style_loss",
    "feature_matching_loss",
  }
  for s in missing:  # a function among the inputs, so nothing to draw
    assert s.no_inputs and "function" in s.no_inputs, s.name


def test_registration_requires_inputs_or_a_reason():
  def new_loss(x, *, where=None, weights=None, reduction="mean"):
    return x

  with pytest.raises(ValueError, match="inputs=.*no_inputs="):
    registry.register("regression", name="new_loss_without_inputs")(new_loss)
  assert "new_loss_without_inputs" not in registry.names()


def test_registry_covers_the_foundation_families():
  fams = {s.family for s in SPECS}
  assert {"regression", "classification"} <= fams
  assert len(SPECS) >= 20


# ---------------------------------------------------------------- signature


def test_signature_and_docstring(spec):
  params = inspect.signature(spec.fn).parameters
  first = next(iter(params.values()))
  assert first.kind is first.POSITIONAL_OR_KEYWORD
  for name in registry.CONTRACT_KEYWORDS:
    assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
  assert params["reduction"].default == "mean"
  assert params["where"].default is None and params["weights"].default is None
  for name in spec.hyperparameters:
    assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
  doc = inspect.getdoc(spec.fn)
  assert spec.summary and spec.summary.endswith(".")
  for section in (".. math::", "Args:", "Returns:", ">>>"):
    assert section in doc, f"{spec.name}'s docstring lacks {section!r}"


# ---------------------------------------------------------------- reductions


def _check_sum_and_count(spec, args, total, mean, **kw):
  """``reduction="sum_and_count"``, what an objective's term is built from: the
  "sum" result and the mean's denominator."""
  pair = spec.fn(*args, reduction="sum_and_count", **kw)
  assert isinstance(pair, tuple) and len(pair) == 2
  s, c = pair
  assert np.shape(s) == () and np.shape(c) == () and float(c) > 0
  _close(s, total, rtol=1e-6, atol=1e-7)
  _close(s / c, mean, rtol=2e-6, atol=1e-7)


@pytest.mark.structure
def test_sum_rule_and_mean(spec):
  args = _draw(spec)
  none = spec.fn(*args, reduction="none")
  assert none.shape == BATCH and none.dtype == jnp.float32
  total, mean = spec.fn(*args, reduction="sum"), spec.fn(*args)
  _close(total, jnp.sum(none))
  _close(mean, jnp.mean(none))
  assert np.all(np.isfinite(none))
  _check_sum_and_count(spec, args, total, mean)


@pytest.mark.structure
def test_extra_batch_dims_match_flat_batch(spec):
  args = _draw(spec, (2, 3))
  flat = _per_row(spec, args, lambda a: a.reshape((6,) + a.shape[2:]))
  _close(spec.fn(*args, reduction="none").reshape(6), spec.fn(*flat, reduction="none"))
  _close(spec.fn(*args), spec.fn(*flat))


def test_unknown_reduction_lists_choices(spec):
  with pytest.raises(ValueError, match=r"'mean', 'sum', 'none'"):
    spec.fn(*_draw(spec), reduction="avg")


# ---------------------------------------------------------------- masks


MASK = np.array([True, False, True, True, False, True])


@pytest.mark.structure
def test_where_equals_slice(spec):
  args = _draw(spec)
  sliced = _per_row(spec, args, lambda a: a[MASK])
  where = jnp.asarray(MASK)
  mean, total = spec.fn(*args, where=where), spec.fn(*args, where=where, reduction="sum")
  _close(mean, spec.fn(*sliced))
  _close(total, spec.fn(*sliced, reduction="sum"))
  _check_sum_and_count(spec, args, total, mean, where=where)
  none = spec.fn(*args, where=jnp.asarray(MASK), reduction="none")
  assert np.all(np.asarray(none)[~MASK] == 0.0)


def _poison(a):
  """Garbage at the masked rows: NaN for floats, an out-of-range index for ints."""
  m = jnp.asarray(MASK).reshape((-1,) + (1,) * (a.ndim - 1))
  bad = jnp.nan if _is_float(a) else 10**6
  return jnp.where(m, a, jnp.asarray(bad, a.dtype))


@pytest.mark.structure
def test_masked_garbage_changes_nothing(spec):
  args = _draw(spec)
  where = jnp.asarray(MASK)
  clean = spec.fn(*args, where=where)
  poisoned = _per_row(spec, args, _poison)
  # The value eagerly (a check of concrete labels must skip masked rows), the
  # gradient compiled (as training takes it; far cheaper than op by op).
  _close(spec.fn(*poisoned, where=where), clean)
  g = jax.jit(lambda *a: _grad(spec, a, where=where))(*poisoned)
  assert np.all(np.isfinite(g)), "NaN inputs behind the mask leaked into the gradient"
  assert np.all(np.asarray(g)[~MASK] == 0.0)


@pytest.mark.structure
def test_all_masked_is_zero_with_zero_gradient(spec):
  args = _draw(spec)
  where = jnp.zeros(BATCH, bool)
  for reduction in ("mean", "sum"):
    assert float(spec.fn(*args, where=where, reduction=reduction)) == 0.0
  zero_w = jnp.zeros(BATCH)
  assert float(spec.fn(*args, weights=zero_w)) == 0.0
  # Both gradients from one compiled function: every row masked, then every weight 0.
  grad = jax.jit(lambda a, m, w: _grad(spec, a, where=m, weights=w))
  assert np.all(np.asarray(grad(args, where, jnp.ones(BATCH))) == 0.0)
  assert np.all(np.isfinite(grad(args, ~where, zero_w)))


def test_mask_must_be_boolean_and_not_broadcast_silently(spec):
  args = _draw(spec)
  with pytest.raises(TypeError, match="boolean"):
    spec.fn(*args, where=jnp.ones(BATCH, jnp.float32))
  with pytest.raises(ValueError, match=r"where\.shape=\(6, 1\)"):
    spec.fn(*args, where=jnp.ones(BATCH + (1,), bool))
  with pytest.raises(ValueError, match=r"weights\.shape=\(6, 1\)"):
    spec.fn(*args, weights=jnp.ones(BATCH + (1,)))


# ---------------------------------------------------------------- weights


@pytest.mark.structure
def test_weights_give_a_weighted_mean(spec):
  args = _draw(spec)
  w = jnp.asarray(np.random.default_rng(0).uniform(0.1, 2.0, BATCH), jnp.float32)
  none = spec.fn(*args, reduction="none")
  mean, total = spec.fn(*args, weights=w), spec.fn(*args, weights=w, reduction="sum")
  _close(mean, jnp.sum(w * none) / jnp.sum(w))
  _close(total, jnp.sum(w * none))
  _check_sum_and_count(spec, args, total, mean, weights=w)
  _close(spec.fn(*args, weights=jnp.ones(BATCH)), spec.fn(*args))
  # A scalar weight scales the sum and leaves the weighted mean unchanged.
  _close(spec.fn(*args, weights=3.0, reduction="sum"), 3.0 * jnp.sum(none), rtol=1e-5)
  _close(spec.fn(*args, weights=3.0), jnp.mean(none))


# ---------------------------------------------------------------- bad input


def test_shape_mismatch_raises_with_both_shapes(spec):
  if len(spec.input_names) < 2:
    pytest.skip("one input: nothing to mismatch (the mask checks cover its shape)")
  args = _draw(spec)
  bad = args[1][..., None]
  with pytest.raises(ValueError) as err:
    spec.fn(args[0], bad, *args[2:])
  msg = str(err.value)
  assert str(tuple(bad.shape)) in msg and str(tuple(args[0].shape)) in msg
  assert spec.input_names[1] in msg


def test_integer_first_input_raises_type_error(spec):
  args = _draw(spec)
  with pytest.raises(TypeError, match=spec.input_names[0]):
    spec.fn(args[0].astype(jnp.int32), *args[1:])


# ---------------------------------------------------------------- extremes


def test_extreme_inputs_are_finite(spec):
  args = _draw(spec)
  big = (args[0] * spec.extreme,) + args[1:]
  value, g = jax.jit(lambda *a: (spec.fn(*a), _grad(spec, a)))(*big)
  assert np.isfinite(float(value))
  assert np.all(np.isfinite(g))


def test_minus_inf_masked_classes_are_finite(spec):
  if spec.inputs.masked_classes is None:
    pytest.skip("no class axis")
  args = _draw(spec, variant="masked_classes")
  assert np.isneginf(np.asarray(args[0])).any()
  assert np.isfinite(float(spec.fn(*args)))
  assert np.all(np.isfinite(_grad(spec, args)))


def test_low_precision_inputs_compute_in_f32(spec):
  # bfloat16, the low precision of TPU and GPU training (float16 goes the same
  # way through checks.as_float, and costs every loss its own compiles).
  args = _draw(spec)
  low = tuple(a.astype(jnp.bfloat16) if _is_float(a) else a for a in args)
  # Same numbers upcast by hand: identical math, so agreement is tight.
  up = tuple(a.astype(jnp.float32) if _is_float(a) else a for a in low)
  out, want, g = jax.jit(lambda low, up: (spec.fn(*low), spec.fn(*up), _grad(spec, low)))(low, up)
  assert out.dtype == jnp.float32
  _close(out, want, rtol=1e-6)
  assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))


# ---------------------------------------------------------------- tracing


@pytest.mark.structure
def test_jit_matches_eager_and_traces_once(spec):
  args = _draw(spec)
  chex.clear_trace_counter()  # f below is redefined for every parametrized spec

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(*a):
    return spec.fn(*a, reduction="none")

  _close(f(*args), spec.fn(*args, reduction="none"))
  other = tuple(a * 0.5 if _is_float(a) else a for a in args)
  want = spec.fn(*other, reduction="none")
  _close(f(*other), want)  # new values, no retrace

  # What users get first: eager calls dispatched as one compiled call (the
  # suite runs op by op, see conftest.py). The second call of a signature
  # compiles, the third reuses it; values as op by op.
  compiles = []
  with registry.eager_dispatch(True), _counting_compiles(compiles):
    spec.fn(*args, reduction="none")
    _close(spec.fn(*other, reduction="none"), want)
    assert compiles, f"{spec.name}: the repeated eager call was not compiled"
    del compiles[:]
    _close(spec.fn(*other, reduction="none"), want)
    assert not compiles, f"{spec.name}: the compiled eager call was not reused"


@contextlib.contextmanager
def _counting_compiles(out):
  def listener(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      out.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.structure
def test_hyperparameters_vmap_and_grad(spec):
  if not spec.traceable:
    pytest.skip("no traceable hyperparameters")
  args = _draw(spec)

  @jax.jit  # every hyperparameter in one compile
  def sweeps(args):
    out = {}
    for name, default in spec.traceable.items():
      f = lambda h, name=name: spec.fn(*args, **{name: h})
      values = jnp.array([default, _alternative(default)], jnp.float32)
      looped = jnp.stack([f(values[0]), f(values[1])])
      out[name] = (jax.vmap(f)(values), looped, jax.grad(f)(jnp.float32(default)))
    return out

  for name, (batched, looped, dh) in sweeps(args).items():
    _close(batched, looped, rtol=1e-5)
    assert np.isfinite(float(dh)), f"d loss / d {name} is not finite"


# ---------------------------------------------------------------- ignore_index


def _one_label_per_row(spec):
  labels = np.asarray(spec.inputs.make(np.random.default_rng(0), BATCH)[1])
  return np.issubdtype(labels.dtype, np.integer) and labels.shape == BATCH


# The losses and metrics with one integer label per row (segmentation label
# maps and token sequences have their own ignore_index tests).
IGNORING = [
  s
  for s in registry.specs()
  if "ignore_index" in s.hyperparameters and s.inputs is not None and _one_label_per_row(s)
]


@pytest.mark.parametrize("spec", IGNORING, ids=_ids(IGNORING))
def test_default_ignore_index_skips_minus_100_labels(spec):
  """Every loss with integer labels skips -100 (PyTorch's padding label) by
  default: a row labelled -100 is exactly a masked row; with ignore_index=None
  it is an out-of-range label."""
  args = _draw(spec)
  labels = args[1]
  assert spec.hyperparameters["ignore_index"] == -100
  padded = (args[0], jnp.where(jnp.asarray(MASK), labels, -100)) + args[2:]
  jax.tree.map(_close, spec.fn(*padded), spec.fn(*args, where=jnp.asarray(MASK)))
  if spec.kind == "loss":  # an out-of-range label: NaN, or refused when concrete
    try:
      assert np.isnan(float(spec.fn(*padded, ignore_index=None)))
    except ValueError as err:
      assert "-100" in str(err)
