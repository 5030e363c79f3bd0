"""Keyword arguments of every registered loss, checked by the registry.

Every traceable (float-default) hyperparameter refuses a concrete NaN or
+-inf with a ``ValueError`` naming it, unless the loss defines the limit
(``register(limits=...)``, ``spec.limits``), in which case the value is checked here
against its closed form; traced values pass unchecked. Bools must be bools,
ints must be ints in int32 range, ``axis`` an int or, for the softmax
cross-entropy family, a tuple of class axes (compared with optax).
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxobj
from jaxobj import registry
from jaxobj._src import examples

SPECS = registry.specs()
NONFINITE = (math.nan, math.inf, -math.inf)


def _ids(specs):
  return [s.name for s in specs]


def _args(spec):
  """Valid inputs where the registry can draw them; otherwise placeholders
  (the argument check runs before the loss looks at its inputs)."""
  if spec.inputs is None:
    return (None,) * len(spec.input_names)
  rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
  return tuple(jnp.asarray(a) for a in spec.inputs.make(rng, (4,)))


def _raises(spec, args, err, name, value, **extra):
  """The call raises ``err`` naming the argument and showing the value."""
  with pytest.raises(err) as info:
    spec.fn(*args, **{name: value}, **extra)
  msg = str(info.value)
  assert re.search(rf"\b{name}\b", msg), msg
  assert repr(value)[:20] in msg, msg


def _of_type(spec, kind):
  return {k: d for k, d in spec.hyperparameters.items() if type(d) is kind and k != "axis"}


TRACEABLE = [s for s in SPECS if s.traceable]


@pytest.mark.parametrize("spec", TRACEABLE, ids=_ids(TRACEABLE))
def test_concrete_nonfinite_hyperparameters_raise_unless_a_defined_limit(spec):
  args = _args(spec)
  for name in spec.traceable:
    for value in NONFINITE:
      if value in spec.limits.get(name, ()):
        continue  # computed and checked against its closed form below
      _raises(spec, args, ValueError, name, value)
    # Arrays too: NumPy and JAX scalars, and one bad entry in an array.
    _raises(spec, args, ValueError, name, np.float32(math.nan))
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
      spec.fn(*args, **{name: jnp.array([1.0, jnp.nan])})


@pytest.mark.parametrize("spec", TRACEABLE, ids=_ids(TRACEABLE))
def test_strings_and_bools_for_real_hyperparameters_raise_type_error(spec):
  args = _args(spec)
  for name, default in spec.traceable.items():
    _raises(spec, args, TypeError, name, str(default))
    _raises(spec, args, TypeError, name, True)
    _raises(spec, args, TypeError, name, None)


@pytest.mark.parametrize(
  "spec", [s for s in SPECS if _of_type(s, bool)], ids=_ids([s for s in SPECS if _of_type(s, bool)])
)
def test_bool_arguments_must_be_bools(spec):
  args = _args(spec)
  for name in _of_type(spec, bool):
    for value in ("false", "False", 0, 1, None):
      _raises(spec, args, TypeError, name, value)


CHOICE_SPECS = [
  s
  for s in SPECS
  if s.inputs is not None and any(isinstance(d, str) for d in s.hyperparameters.values())
]


@pytest.mark.parametrize("spec", CHOICE_SPECS, ids=_ids(CHOICE_SPECS))
def test_string_choices_are_validated_by_name(spec):
  args = _args(spec)
  for name, default in spec.hyperparameters.items():
    if isinstance(default, str):
      _raises(spec, args, ValueError, name, "bogus")


def test_classes_must_be_a_choice_or_class_indices():
  logits, labels = jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2), jnp.int32)
  for bad in (3, [0.5], 1.0):
    with pytest.raises(TypeError, match=r"\bclasses\b"):
      jaxobj.lovasz_softmax_loss(logits, labels, classes=bad)
  for ok in ([0, 2], np.array([1]), (2,)):
    assert np.isfinite(float(jaxobj.lovasz_softmax_loss(logits, labels, classes=ok)))


INT_SPECS = [
  s
  for s in SPECS
  if _of_type(s, int)
  or "axis" in s.hyperparameters
  or any(k in s.hyperparameters for k in registry._OPTIONAL_INTS)
]


@pytest.mark.parametrize("spec", INT_SPECS, ids=_ids(INT_SPECS))
def test_int_arguments_refuse_floats_strings_and_huge_values(spec):
  args = _args(spec)
  names = set(_of_type(spec, int)) | {
    k for k in spec.hyperparameters if k == "axis" or k in registry._OPTIONAL_INTS
  }
  for name in names:
    _raises(spec, args, TypeError, name, 2.5)
    _raises(spec, args, TypeError, name, "1")
    _raises(spec, args, TypeError, name, True)
    for huge in (2**70, -(2**40)):
      if name != "axis":  # an axis is looked at for its type only; the array says the rest
        _raises(spec, args, ValueError, name, huge)


def test_valid_values_of_each_kind_pass():
  x = jnp.array([0.5, -3.0, 2.0])
  base = float(jaxobj.huber_loss(x, delta=1.0))
  for delta in (1, np.float32(1.0), np.int64(1), jnp.float32(1.0), np.ones(3)):
    assert float(jaxobj.huber_loss(x, delta=delta)) == pytest.approx(base)
  logits = jnp.array([[0.2, -1.0, 3.0], [1.0, 0.0, 0.5]])
  labels = jnp.array([2, -100])
  ref = float(jaxobj.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100))
  for ignore in (np.int32(-100), jnp.int32(-100), np.int64(-100)):
    got = jaxobj.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=ignore)
    assert float(got) == pytest.approx(ref)
  y, lv = jnp.array([1.0, 2.0]), jnp.array([0.1, -0.3])
  assert float(jaxobj.gaussian_nll_loss(y, y, lv, log_variance=np.bool_(True))) == pytest.approx(
    float(jaxobj.gaussian_nll_loss(y, y, lv, log_variance=True))
  )
  # A boolean array passes (some switches are traceable, as ctc's zero_infinity).
  ctc = registry.get("ctc_loss")
  args = _args(ctc)
  traced = jax.jit(lambda z: ctc.fn(*args, zero_infinity=z))
  assert float(traced(jnp.bool_(True))) == pytest.approx(
    float(ctc.fn(*args, zero_infinity=True)), rel=1e-6
  )


def test_optional_real_hyperparameters_are_checked_when_given():
  x, y = jnp.array([0.3, -2.0]), jnp.array([1.0, 0.0])
  for value in NONFINITE:
    with pytest.raises(ValueError, match=r"\balpha\b"):
      jaxobj.sigmoid_focal_loss(x, y, alpha=value)
  with pytest.raises(TypeError, match=r"\balpha\b"):
    jaxobj.sigmoid_focal_loss(x, y, alpha="0.25")
  assert np.isfinite(float(jaxobj.sigmoid_focal_loss(x, y, alpha=None)))
  logits = jnp.zeros((1, 2, 5))
  with pytest.raises(ValueError, match=r"\blogit_soft_cap\b"):
    jaxobj.token_cross_entropy(logits, jnp.zeros((1, 2), jnp.int32), logit_soft_cap=math.inf)
  for value in (math.inf, math.nan):  # a number where a choice is also allowed
    with pytest.raises(ValueError, match=r"\bnormalize\b"):
      jaxobj.token_cross_entropy(logits, jnp.zeros((1, 2), jnp.int32), normalize=value)
    with pytest.raises(ValueError, match=r"\bkl\b"):
      jaxobj.kto_loss(jnp.zeros(2), jnp.zeros(2), jnp.array([True, False]), kl=value)


def test_sequences_of_values_are_checked_entry_by_entry():
  a, b = jnp.zeros((4, 2)), jnp.ones((4, 2))
  ok = jaxobj.maximum_mean_discrepancy(a, b, bandwidth=(0.5, 2.0))
  assert np.isfinite(float(ok))
  with pytest.raises(ValueError, match=r"\bbandwidth\b"):
    jaxobj.maximum_mean_discrepancy(a, b, bandwidth=(0.5, math.inf))
  traced = jax.jit(lambda s: jaxobj.maximum_mean_discrepancy(a, b, bandwidth=(s, 2.0)))
  assert float(traced(0.5)) == pytest.approx(float(ok), rel=1e-6)


def test_wrong_types_are_type_errors_that_are_also_value_errors():
  """Losses' own checks raise ValueError for bad hyperparameters; both catch these."""
  with pytest.raises(TypeError):
    jaxobj.huber_loss(jnp.ones(2), delta="1.0")
  with pytest.raises(ValueError):
    jaxobj.gaussian_kl_divergence(jnp.ones((2, 3)), jnp.ones((2, 3)), event_ndims=1.0)


def test_traced_hyperparameters_are_not_checked():
  """Traced values stay traceable: vmap and jit over a NaN give NaN, not an error."""
  x = jnp.array([0.5, -3.0, 2.0])
  out = jax.vmap(lambda d: jaxobj.huber_loss(x, delta=d))(jnp.array([1.0, jnp.nan]))
  assert np.isfinite(out[0]) and np.isnan(out[1])
  img, txt = jnp.eye(3), jnp.eye(3)
  clip = jax.jit(lambda t: jaxobj.clip_loss(img, txt, log_temperature=t))
  assert np.isfinite(float(clip(2.0)))
  assert not np.isfinite(float(clip(jnp.nan)))


# --------------------------------------------------------------------------
# Limits that losses define, each against its closed form.


def _huber_inf(r, **_):
  return 0.5 * r**2


def _barron(sign):
  def closed(r, scale=1.0):
    z = (r / scale) ** 2 / 2
    return np.expm1(z) if sign > 0 else -np.expm1(-z)

  return closed


CLOSED_FORMS = {
  ("huber_loss", "delta", math.inf): _huber_inf,
  ("general_robust_loss", "alpha", math.inf): _barron(+1),
  ("general_robust_loss", "alpha", -math.inf): _barron(-1),
}


def test_every_defined_limit_has_a_closed_form_check():
  declared = {(s.name, k, v) for s in SPECS for k, vs in s.limits.items() for v in vs}
  assert declared == set(CLOSED_FORMS)
  assert registry.get("huber_loss").as_dict()["limits"] == {"delta": ["inf"]}


@pytest.mark.parametrize("case", sorted(CLOSED_FORMS, key=str), ids=str)
def test_defined_limits_match_their_closed_form(case):
  name, hyper, value = case
  fn, closed = registry.get(name).fn, CLOSED_FORMS[case]
  r = np.array([0.0, 0.5, -1.5, 3.0, 7.0])
  kw = {"scale": 2.0} if name == "general_robust_loss" else {}
  got = fn(jnp.asarray(r, jnp.float32), **{hyper: value}, **kw, reduction="none")
  want = closed(r, **kw)
  np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=1e-7)
  # The gradient is the closed form's derivative (float64 central differences).
  g = jax.grad(lambda p: fn(p, **{hyper: value}, **kw, reduction="sum"))(
    jnp.asarray(r, jnp.float32)
  )
  h = 1e-6
  fd = (closed(r + h, **kw) - closed(r - h, **kw)) / (2 * h)
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-6)


def test_huber_with_infinite_delta_is_half_the_squared_error_and_continuous():
  r = jnp.array([0.25, -4.0, 60.0])
  inf = jaxobj.huber_loss(r, delta=math.inf)
  assert float(inf) == pytest.approx(float(np.mean(0.5 * np.float64(r) ** 2)), rel=1e-6)
  assert float(jaxobj.huber_loss(r, delta=1e6)) == pytest.approx(float(inf), rel=1e-6)
  # d/d delta: |r| - delta on the linear part, 0 when nothing is linear.
  dd = jax.grad(lambda d: jaxobj.huber_loss(r, delta=d))
  assert float(dd(1.0)) == pytest.approx((3.0 + 59.0) / 3, rel=1e-6)
  assert float(dd(jnp.inf)) == 0.0


# --------------------------------------------------------------------------
# axis: an int, or a tuple of class axes where optax takes one.


def _axis_data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) * 3
  # Probability labels over the (1, 3) axes: 3 * 5 = 15 classes per (b, h).
  p = rng.dirichlet(np.ones(15), size=(2, 4)).reshape(2, 4, 3, 5)
  y = np.moveaxis(p, (2, 3), (1, 3)).astype(np.float32)
  labels = rng.integers(0, 15, size=(2, 4))
  return jnp.asarray(x), jnp.asarray(y), jnp.asarray(labels)


@pytest.mark.parametrize("axis", [(1, 3), (3, 1), (-3, -1)])
def test_softmax_cross_entropy_takes_a_tuple_of_class_axes_like_optax(axis):
  x, y, labels = _axis_data()
  got = jaxobj.softmax_cross_entropy(x, y, axis=axis, reduction="none")
  np.testing.assert_allclose(
    got, optax.softmax_cross_entropy(x, y, axis=axis), rtol=1e-6, atol=1e-6
  )
  got = jaxobj.softmax_cross_entropy_with_integer_labels(x, labels, axis=axis, reduction="none")
  want = optax.softmax_cross_entropy_with_integer_labels(x, labels, axis=axis)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  ours = jax.grad(lambda v: jaxobj.softmax_cross_entropy(v, y, axis=axis, reduction="sum"))(x)
  theirs = jax.grad(lambda v: optax.softmax_cross_entropy(v, y, axis=axis).sum())(x)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_tuple_of_class_axes_with_masks_and_class_weights():
  x, y, labels = _axis_data(1)
  where = jnp.array([[True, False, True, True], [False, True, True, True]])
  per_row = optax.softmax_cross_entropy_with_integer_labels(x, labels, axis=(1, 3))
  got = jaxobj.softmax_cross_entropy_with_integer_labels(x, labels, axis=(1, 3), where=where)
  assert float(got) == pytest.approx(float(per_row[where].mean()), rel=1e-6)
  # Class weights index the flattened classes (C-order over the axes as given).
  cw = jnp.linspace(0.5, 2.0, 15)
  got = jaxobj.softmax_cross_entropy(x, y, axis=(1, 3), class_weights=cw, reduction="none")
  merged_x = jnp.moveaxis(x, (1, 3), (-2, -1)).reshape(2, 4, 15)
  merged_y = jnp.moveaxis(y, (1, 3), (-2, -1)).reshape(2, 4, 15)
  want = -(cw * merged_y * jax.nn.log_softmax(merged_x, axis=-1)).sum(-1)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


TUPLE_SPECS = [s for s in SPECS if s.axis_tuples]


@pytest.mark.parametrize("spec", TUPLE_SPECS, ids=_ids(TUPLE_SPECS))
def test_every_loss_taking_axis_tuples_equals_its_merged_class_axis(spec):
  x, y, labels = _axis_data(2)
  target = labels if spec.inputs is examples.INTEGER_LABELS else y
  merged = jnp.moveaxis(x, (1, 3), (-2, -1)).reshape(2, 4, 15)
  merged_t = target if target is labels else (jnp.moveaxis(y, (1, 3), (-2, -1)).reshape(2, 4, 15))
  got = spec.fn(x, target, axis=(1, 3), reduction="none")
  np.testing.assert_allclose(got, spec.fn(merged, merged_t, reduction="none"), rtol=1e-6, atol=1e-6)


AXIS_SPECS = [s for s in SPECS if "axis" in s.hyperparameters and not s.axis_tuples]


@pytest.mark.parametrize("spec", AXIS_SPECS, ids=_ids(AXIS_SPECS))
def test_other_losses_refuse_a_tuple_of_axes_clearly(spec):
  args = _args(spec)
  with pytest.raises(ValueError, match=r"axis=\(0, 1\).*one class axis"):
    spec.fn(*args, axis=(0, 1))


def test_axis_tuple_errors():
  x, y, _ = _axis_data()
  for bad in ([1, 3], (), (1, 2.0)):
    with pytest.raises(TypeError, match=r"axis must be an int or a non-empty tuple"):
      jaxobj.softmax_cross_entropy(x, y, axis=bad)
  with pytest.raises(ValueError, match="repeats an axis"):
    jaxobj.softmax_cross_entropy(x, y, axis=(1, 1))
  with pytest.raises(ValueError, match="names an axis twice"):
    jaxobj.softmax_cross_entropy_with_integer_labels(
      x, jnp.zeros((2, 4, 5), jnp.int32), axis=(1, -3)
    )


# --------------------------------------------------------------------------
# The checked function is the registered, exported one, with its signature.


def test_registered_function_is_exported_with_its_signature_and_docstring():
  for spec in SPECS:
    module = sys.modules[spec.fn.__module__]
    assert getattr(module, spec.fn.__name__) is spec.fn, spec.name
    assert registry.spec_for(spec.fn) is spec
    raw = getattr(spec.fn, "__wrapped__", spec.fn)
    assert inspect.signature(spec.fn) == inspect.signature(raw)
    assert spec.fn.__name__ == raw.__name__ and spec.fn.__module__ == raw.__module__
    # Docstrings are the loss's (some modules fill in shared sections afterwards).
    assert spec.fn.__doc__.splitlines()[0] == raw.__doc__.splitlines()[0]
  assert registry.get("huber_loss").fn is jaxobj.huber_loss
