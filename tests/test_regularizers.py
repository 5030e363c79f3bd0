"""L1, L2 and elastic-net penalties over parameter pytrees, with masks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import regularizers


@pytest.fixture(scope="module")
def params():
  # A real Flax parameter tree: kernels, biases and a LayerNorm scale.
  model = nn.Sequential([nn.Dense(4), nn.LayerNorm(), nn.Dense(2)])
  return model.init(jax.random.key(0), jnp.ones((1, 3)))["params"]


def _flat(params, keep):
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return np.concatenate(
    [np.ravel(np.asarray(l, np.float64)) for p, l in leaves if keep(regularizers.path_str(p))]
  )


def test_values_match_float64_sums(params):
  x = _flat(params, lambda p: True)
  np.testing.assert_allclose(jaxobj.l1_penalty(params), np.abs(x).sum(), rtol=1e-6)
  np.testing.assert_allclose(jaxobj.l2_penalty(params), (x**2).sum(), rtol=1e-6)
  np.testing.assert_allclose(
    jaxobj.elastic_net_penalty(params, l1_ratio=0.3),
    0.3 * np.abs(x).sum() + 0.7 * (x**2).sum(),
    rtol=1e-6,
  )


def test_elastic_net_endpoints_are_l1_and_l2(params):
  np.testing.assert_allclose(
    jaxobj.elastic_net_penalty(params, l1_ratio=1.0), jaxobj.l1_penalty(params), rtol=1e-6
  )
  np.testing.assert_allclose(
    jaxobj.elastic_net_penalty(params, l1_ratio=0.0), jaxobj.l2_penalty(params), rtol=1e-6
  )


def test_no_decay_on_biases_and_norm_scales(params):
  kernels = _flat(params, lambda p: p.endswith("kernel"))
  expected = (kernels**2).sum()
  for mask in (regularizers.matrices_only, regularizers.exclude("bias", "scale")):
    np.testing.assert_allclose(jaxobj.l2_penalty(params, mask=mask), expected, rtol=1e-6)
  # The same as a boolean pytree.
  tree = jax.tree_util.tree_map_with_path(
    lambda p, _: regularizers.path_str(p).endswith("kernel"), params
  )
  np.testing.assert_allclose(jaxobj.l2_penalty(params, mask=tree), expected, rtol=1e-6)


def test_mask_prefix_and_wildcards(params):
  # A prefix pytree: one flag per layer.
  prefix = {name: name == "layers_0" for name in params}
  first = _flat(params, lambda p: p.startswith("layers_0/"))
  np.testing.assert_allclose(jaxobj.l1_penalty(params, mask=prefix), np.abs(first).sum(), rtol=1e-6)
  rest = _flat(params, lambda p: not p.startswith("layers_1/"))
  np.testing.assert_allclose(
    jaxobj.l1_penalty(params, mask=regularizers.exclude("layers_1/*")),
    np.abs(rest).sum(),
    rtol=1e-6,
  )


def test_gradients_are_sign_and_twice_theta():
  p = {"w": jnp.array([1.5, -2.0, 0.0]), "b": jnp.array([3.0])}
  g1 = jax.grad(lambda q: jaxobj.l1_penalty(q, mask=regularizers.exclude("b")))(p)
  np.testing.assert_array_equal(g1["w"], [1.0, -1.0, 0.0])
  np.testing.assert_array_equal(g1["b"], [0.0])
  g2 = jax.grad(jaxobj.l2_penalty)(p)
  np.testing.assert_allclose(g2["w"], [3.0, -4.0, 0.0])


def test_l1_ratio_is_traceable(params):
  ratios = jnp.array([0.0, 0.5, 1.0])
  batched = jax.vmap(lambda r: jaxobj.elastic_net_penalty(params, l1_ratio=r))(ratios)
  looped = [jaxobj.elastic_net_penalty(params, l1_ratio=float(r)) for r in ratios]
  np.testing.assert_allclose(batched, looped, rtol=1e-6)
  d = jax.grad(lambda r: jaxobj.elastic_net_penalty(params, l1_ratio=r))(0.5)
  np.testing.assert_allclose(d, jaxobj.l1_penalty(params) - jaxobj.l2_penalty(params), rtol=1e-5)


def test_empty_selection_and_low_precision():
  assert float(jaxobj.l2_penalty({"b": jnp.ones(2)}, mask=regularizers.matrices_only)) == 0.0
  out = jaxobj.l2_penalty({"w": jnp.full((2, 2), 3.0, jnp.bfloat16)})
  assert out.dtype == jnp.float32 and float(out) == 36.0


def test_bad_masks_and_leaves_raise():
  with pytest.raises(ValueError, match="structure of params"):
    jaxobj.l1_penalty({"w": jnp.ones(2)}, mask={"v": True})
  with pytest.raises(TypeError, match="floating-point"):
    jaxobj.l1_penalty({"step": jnp.array([1, 2])})
  with pytest.raises(ValueError, match="l1_ratio"):
    jaxobj.elastic_net_penalty({"w": jnp.ones(2)}, l1_ratio=1.5)


@pytest.mark.parametrize("mask", ["bias", 3, 2.5])
def test_a_mask_that_is_not_a_mask_is_refused(mask):
  params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  with pytest.raises(TypeError, match="exclude"):
    jaxobj.l2_penalty(params, mask=mask)


def test_mask_entries_are_booleans_one_per_leaf():
  params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  with pytest.raises(TypeError, match=r"mask at 'bias'.*True or False"):
    jaxobj.l2_penalty(params, mask={"w": True, "bias": jnp.array([True, False])})
  with pytest.raises(TypeError, match=r"mask\('bias', leaf\) is 1"):
    jaxobj.l2_penalty(params, mask=lambda path, leaf: 1)
  assert float(jaxobj.l2_penalty(params, mask={"w": True, "bias": np.bool_(False)})) == 4.0
