"""The shared reduction and trace-time checks every loss relies on."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxobj import reduce_loss
from jaxobj._src import checks

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@st.composite
def losses_masks_weights(draw):
  shape = draw(shapes)
  values = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 100, width=32)))
  mask = draw(hnp.arrays(np.bool_, shape))
  weights = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 10, width=32)))
  return values, mask, weights


@settings(max_examples=40, deadline=None)
@given(losses_masks_weights())
def test_reduction_matches_float64_definition(data):
  values, mask, weights = data
  v64, w64 = values.astype(np.float64), weights.astype(np.float64)
  count = mask.sum()
  expected_mean = v64[mask].mean() if count else 0.0
  np.testing.assert_allclose(
    reduce_loss(jnp.asarray(values), where=mask), expected_mean, rtol=1e-5, atol=1e-6
  )
  wsum = w64[mask].sum()
  expected_wmean = (w64 * v64)[mask].sum() / wsum if wsum > 0 else 0.0
  np.testing.assert_allclose(
    reduce_loss(jnp.asarray(values), where=mask, weights=weights),
    expected_wmean,
    rtol=1e-4,
    atol=1e-5,
  )
  none = reduce_loss(jnp.asarray(values), where=mask, weights=weights, reduction="none")
  np.testing.assert_allclose(
    reduce_loss(jnp.asarray(values), where=mask, weights=weights, reduction="sum"),
    np.sum(np.asarray(none)),
    rtol=1e-5,
    atol=1e-5,
  )


def test_masked_inf_and_nan_contribute_nothing():
  values = jnp.array([1.0, jnp.inf, jnp.nan, 3.0])
  where = jnp.array([True, False, False, True])
  assert float(reduce_loss(values, where=where)) == 2.0
  g = jax.grad(lambda v: reduce_loss(v, where=where))(values)
  np.testing.assert_array_equal(g, [0.5, 0.0, 0.0, 0.5])
  # NaN weights behind the mask neither: not in the value, not in the gradient.
  weights = jnp.array([1.0, jnp.nan, jnp.inf, 3.0])
  assert float(reduce_loss(values, where=where, weights=weights)) == 2.5
  g = jax.grad(lambda v: reduce_loss(v, where=where, weights=weights))(values)
  np.testing.assert_array_equal(g, [0.25, 0.0, 0.0, 0.75])


def test_mean_without_mask_is_plain_mean_and_empty_is_zero():
  assert float(reduce_loss(jnp.array([1.0, 2.0, 6.0]))) == 3.0
  assert float(reduce_loss(jnp.zeros((0,)))) == 0.0
  assert float(reduce_loss(jnp.ones(3), weights=jnp.zeros(3))) == 0.0


def test_mask_and_weights_broadcast_along_size_one_axes_only():
  values = jnp.arange(6.0).reshape(2, 3)
  row = jnp.array([[True], [False]])
  assert float(reduce_loss(values, where=row)) == 1.0
  with pytest.raises(ValueError, match=r"where\.shape=\(2,\).*where\[\.\.\., None\]"):
    reduce_loss(values, where=jnp.array([True, False]))  # would align with the last axis
  with pytest.raises(ValueError, match=r"weights\.shape=\(3, 1\)"):
    reduce_loss(values, weights=jnp.ones((3, 1)))


@pytest.mark.parametrize("bad", ["avg", "MEAN", None, 1])
def test_unknown_reduction(bad):
  with pytest.raises(ValueError, match=r"choose one of 'mean', 'sum', 'none'"):
    reduce_loss(jnp.ones(2), reduction=bad)


def test_dtype_checks_name_the_argument_and_the_fix():
  with pytest.raises(TypeError, match=r"predictions must be a floating-point.*int32.*astype"):
    checks.as_float(jnp.array([1, 2]), "predictions")
  with pytest.raises(TypeError, match=r"labels must be integer class indices"):
    checks.as_labels(jnp.array([1.0]), "labels")
  with pytest.raises(TypeError, match="boolean mask"):
    reduce_loss(jnp.ones(2), where=jnp.ones(2))
  assert checks.as_float(jnp.ones(2, jnp.bfloat16), "x").dtype == jnp.float32
  assert checks.as_target(jnp.array([1, 0]), "t", jnp.ones(2)).dtype == jnp.float32


def test_same_shape_message_suggests_the_squeeze():
  with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\).*targets\[\.\.\., 0\]"):
    checks.check_same_shape("predictions", np.ones(4), "targets", np.ones((4, 1)))


def test_range_checks_only_concrete_values():
  with pytest.raises(ValueError, match=r"delta must satisfy 0.0 < delta, got delta=-1\.0"):
    checks.check_range("delta", -1.0, low=0.0, low_inclusive=False)
  with pytest.raises(ValueError, match="quantile"):
    checks.check_range("quantile", float("nan"), low=0.0, high=1.0)
  # A traced value cannot be inspected and passes through.
  jax.jit(lambda d: checks.check_range("delta", d, low=0.0) or d)(-1.0)
