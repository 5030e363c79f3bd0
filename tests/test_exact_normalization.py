"""Exact normalization: microbatched and device-sharded objectives equal the
whole batch in value and gradient, with uneven masks and nonlinear combinations."""

import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo

N, M, K = 16, 4, 5  # batch, microbatches, classes


def _data(seed=0):
  rng = np.random.default_rng(seed)
  mask = rng.uniform(size=N) < 0.6
  mask[: N // M] = False  # one microbatch fully masked, the others uneven
  return {
    "x": jnp.asarray(rng.normal(size=(N, 3)), jnp.float32),
    "labels": jnp.asarray(rng.integers(0, K, N), jnp.int32),
    "y": jnp.asarray(rng.normal(size=N), jnp.float32),
    "mask": jnp.asarray(mask),
    "w": jnp.asarray(rng.uniform(0.2, 2.0, N), jnp.float32),
  }


def _model():
  rng = np.random.default_rng(1)
  return {
    "w": jnp.asarray(rng.normal(size=(3, K)), jnp.float32),
    "v": jnp.asarray(rng.normal(size=3), jnp.float32),
  }


def _data_fn(mp, batch):
  logits = batch["x"] @ mp["w"]
  outputs = {"logits": logits, "pred": batch["x"] @ mp["v"], "emb": jnp.tanh(logits[:, ::-1])}
  return {"outputs": outputs, "batch": batch, "model": mp}


CE = jo.term(
  jaxobj.softmax_cross_entropy_with_integer_labels,
  "outputs.logits",
  "batch.labels",
  where="batch.mask",
  name="ce",
)
HUBER = jo.term(
  jaxobj.huber_loss,
  "outputs.pred",
  "batch.y",
  weights="batch.w",
  delta=jo.learnable(0.7, positive=True),
)
L2 = jo.regularizer(jaxobj.l2_penalty)

OBJECTIVES = {
  "weighted_sum": CE + 0.3 * HUBER + 1e-2 * L2,
  "uncertainty": jo.multitask(
    {"cls": CE, "reg": HUBER}, jo.UncertaintyWeighting(kinds={"cls": "classification"})
  )
  + 1e-2 * L2,
  "geometric_mean": jo.multitask({"cls": CE, "reg": HUBER}, jo.GeometricMean()),
}


def _params(obj):
  params = obj.init()
  if "uncertainty_weighting" in params:
    params["uncertainty_weighting"]["log_variance"] = {
      "cls": jnp.float32(0.4),
      "reg": jnp.float32(-0.3),
    }
  return params


def _per_element(info):
  """info without the regularizer's count, which counts evaluations (1 per
  batch, microbatch or device) so that it averages over them."""
  return {k: v for k, v in info.items() if k != "count/l2_penalty"}


def _whole_batch(obj, mp, op, batch):
  return jax.value_and_grad(
    lambda m, o: obj.apply(o, **_data_fn(m, batch)), argnums=(0, 1), has_aux=True
  )(mp, op)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_microbatches_equal_the_whole_batch(name):
  obj, mp, batch = OBJECTIVES[name], _model(), _data()
  op = _params(obj)
  (value, info), grads = _whole_batch(obj, mp, op, batch)
  micro = jax.tree.map(lambda a: a.reshape((M, N // M) + a.shape[1:]), batch)
  (acc_value, acc_info), acc_grads = jax.jit(
    lambda m, o, b: jo.accumulate_value_and_grad(obj, _data_fn, m, o, b)
  )(mp, op, micro)
  chex.assert_trees_all_close(acc_value, value, rtol=1e-6)
  chex.assert_trees_all_close(_per_element(acc_info), _per_element(info), rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(acc_grads, grads, rtol=1e-6, atol=1e-7)


def test_averaging_microbatch_means_would_be_wrong():
  """The reason for (sum, count): the naive average differs on uneven masks."""
  batch = _data()
  mp = _model()
  whole = CE.apply(**_data_fn(mp, batch))[0]
  parts = [
    CE.apply(**_data_fn(mp, jax.tree.map(lambda a: a[i * 4 : (i + 1) * 4], batch)))[0]
    for i in range(M)
  ]
  assert abs(float(np.mean(parts)) - float(whole)) > 1e-3


SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, chex
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxobj
    from jaxobj import objective as jo
    import test_exact_normalization as t
    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",))
    mp = t._model()
    batch = t._data()
    sharded_batch = jax.device_put(batch, NamedSharding(mesh, P("data")))
    for name, obj in sorted(t.OBJECTIVES.items()):
      op = t._params(obj)
      (value, info), grads = t._whole_batch(obj, mp, op, batch)

      def local(m, o, b):
        return jax.value_and_grad(
            lambda m, o: obj.apply(o, axis_name="data", **t._data_fn(m, b)),
            argnums=(0, 1), has_aux=True)(m, o)

      sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("data")),
                                      out_specs=P()))
      (s_value, s_info), s_grads = sharded(mp, op, sharded_batch)
      chex.assert_trees_all_close(s_value, value, rtol=1e-6)
      chex.assert_trees_all_close(t._per_element(s_info), t._per_element(info),
                                  rtol=1e-6, atol=1e-7)
      chex.assert_trees_all_close(s_grads, grads, rtol=1e-6, atol=1e-7)
      print("ok", name)

    # A term whose loss is itself sharded reduces over the devices already: the
    # objective must not sum its statistics again (its count stays the batch's).
    def contrastive(fn, **kw):
      return jo.term(fn, "outputs.logits", "outputs.emb", where="batch.mask", name="sig",
                     **kw) + t.CE
    whole = contrastive(jaxobj.siglip_loss)
    (value, info), grads = t._whole_batch(whole, mp, {}, batch)
    obj = contrastive(jaxobj.sharded_siglip_loss, axis_name="data")
    local = lambda m, b: jax.value_and_grad(
        lambda m: obj.apply(axis_name="data", **t._data_fn(m, b)), has_aux=True)(m)
    (s_value, s_info), s_grads = jax.jit(jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))(mp, sharded_batch)
    chex.assert_trees_all_close(s_value, value, rtol=1e-6)
    chex.assert_trees_all_close(s_info, info, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(s_grads, grads[0], rtol=1e-6, atol=1e-6)
    print("ok sharded loss")
""")


def test_psum_over_eight_devices_equals_the_whole_batch():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(pathlib.Path(__file__).parent),
  )
  proc = subprocess.run(
    [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert proc.stdout.count("ok ") == len(OBJECTIVES) + 1, proc.stdout
