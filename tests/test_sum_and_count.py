"""reduction="sum_and_count" over the whole registry: the pair an objective's
term is built from. ``s`` is the "sum" result and ``s / c`` the "mean" result,
unmasked, masked and weighted, so a term's value is the loss's own mean."""

from __future__ import annotations

import inspect
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo
from jaxobj import registry
from jaxobj._src.reduce import reduce_total

# Every loss's pair is checked eagerly, unmasked, masked and weighted, by the
# conformance tests (tests/test_conformance.py); here the metrics that take the
# contract's reduction, and the pair under jit.
SPECS = [
  s
  for s in registry.specs(kind="metric")
  if s.inputs is not None and "reduction" in inspect.signature(s.fn).parameters
]
BATCH = (6,)
MASK = jnp.asarray([True, False, True, True, False, True])
WEIGHTS = jnp.asarray([0.5, 2.0, 1.0, 0.25, 3.0, 1.5], jnp.float32)


def _draw(spec):
  rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
  return tuple(jnp.asarray(a) for a in spec.inputs.make(rng, BATCH))


def _check_pair(fn, args, **kw):
  pair = fn(*args, reduction="sum_and_count", **kw)
  assert isinstance(pair, tuple) and len(pair) == 2
  s, c = pair
  assert np.shape(s) == () and np.shape(c) == ()
  assert float(c) > 0
  np.testing.assert_allclose(s, fn(*args, reduction="sum", **kw), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(s / c, fn(*args, reduction="mean", **kw), rtol=2e-6, atol=1e-7)
  return float(c)


@pytest.mark.structure
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_sum_and_count_is_the_sum_and_the_means_denominator(spec):
  args = _draw(spec)

  @jax.jit  # one compilation for the nine reductions
  def reductions(args):
    out = []
    for kw in ({}, {"where": MASK}, {"weights": WEIGHTS}):
      out.append(tuple(spec.fn(*args, reduction=r, **kw) for r in ("sum_and_count", "sum", "mean")))
    return out

  for (s, c), total, mean in reductions(args):
    assert np.shape(s) == () and np.shape(c) == () and float(c) > 0
    np.testing.assert_allclose(s, total, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s / c, mean, rtol=2e-6, atol=1e-7)


def test_counts_are_elements_or_weights():
  x, y = jnp.arange(6.0), jnp.zeros(6)
  assert _check_pair(jaxobj.squared_error, (x, y)) == 6.0
  assert _check_pair(jaxobj.squared_error, (x, y), where=MASK) == 4.0
  np.testing.assert_allclose(_check_pair(jaxobj.squared_error, (x, y), weights=WEIGHTS), 8.25)
  s, c = jaxobj.squared_error(x, y, where=jnp.zeros(6, bool), reduction="sum_and_count")
  assert float(s) == 0.0 and float(c) == 0.0  # all masked: the objective gives 0
  with pytest.raises(ValueError, match="has no total"):
    reduce_total(1.0, 2.0, "none")


def test_sharded_losses_on_a_mesh_return_the_whole_batchs_pair():
  mesh = jax.make_mesh((1,), ("data",))
  rng = np.random.default_rng(0)
  x, y = (jnp.asarray(rng.normal(size=(6, 4)), jnp.float32) for _ in range(2))

  @jax.jit  # the pair through shard_map, against the one-device pair (checked above)
  def pairs(x, y):
    out = []
    for fn in (jaxobj.sharded_clip_loss, jaxobj.sharded_siglip_loss):
      for kw in ({}, {"where": MASK, "weights": WEIGHTS}):
        out.append(
          (
            fn(x, y, mesh=mesh, reduction="sum_and_count", **kw),
            fn(x, y, reduction="sum_and_count", **kw),
          )
        )
    return out

  for on_mesh, one_device in pairs(x, y):
    np.testing.assert_allclose(on_mesh, one_device, rtol=1e-5)


@pytest.mark.parametrize("name", ["token_cross_entropy", "fused_linear_cross_entropy"])
def test_a_constant_normalizer_is_the_count_and_budgets_add(name):
  rng = np.random.default_rng(1)
  h = jnp.asarray(rng.normal(size=(4, 5, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 7)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 7, (4, 5)), jnp.int32)
  targets = targets.at[0, 3:].set(-100).at[2, 1:].set(-100)  # uneven padding
  if name == "token_cross_entropy":
    fn = lambda h, t, **kw: jaxobj.token_cross_entropy(h @ kernel, t, **kw)  # noqa: E731
  else:
    fn = lambda h, t, **kw: jaxobj.fused_linear_cross_entropy(h, t, kernel, **kw)  # noqa: E731
  s, c = fn(h, targets, normalize=20.0, reduction="sum_and_count")
  assert float(c) == 20.0
  np.testing.assert_allclose(s / 20.0, fn(h, targets, normalize=20.0), rtol=1e-6)
  # Two microbatches with a budget of 10 each are the whole batch with 20.
  obj = jo.term(jaxobj.token_cross_entropy, "logits", "targets", normalize=10.0)
  data_fn = lambda mp, mb: {"logits": mb["h"] @ kernel, "targets": mb["t"]}  # noqa: E731
  micro = {"h": h.reshape(2, 2, 5, 3), "t": targets.reshape(2, 2, 5)}
  (value, info), _ = jo.accumulate_value_and_grad(obj, data_fn, {}, {}, micro)
  np.testing.assert_allclose(value, fn(h, targets, normalize=20.0), rtol=1e-6)
  assert float(info["count/token_cross_entropy"]) == 20.0
