"""The scale paths of CLIP and SigLIP: chunked on one device, sharded over a mesh.

Values are checked against float64 NumPy references written from the
formulas (a masked pair is sliced out of the batch there), gradients against
the unchunked losses in float64 and with ``check_grads``. The mesh tests run
in a subprocess with 8 host devices. Memory is checked only in its scaling
(no [B, B] temporary); the full-size figures are in
``benchmarks/bench_contrastive_scale.py``.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, ref_reduce
from scipy.special import log_expit, logsumexp

import jaxobj
from jaxobj.objective import term

B, D = 7, 4  # 7 pairs: no block size tried here divides it
RNG = np.random.default_rng(7)


def _views(n=B, d=D, dtype=np.float64):
  a = RNG.standard_normal((n, d))
  return a.astype(dtype), (a + 0.5 * RNG.standard_normal((n, d))).astype(dtype)


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_clip(x, y, log_temperature):
  s = _unit(x) @ _unit(y).T * np.exp(log_temperature)
  d = np.diag(s)
  return 0.5 * ((logsumexp(s, 1) - d) + (logsumexp(s, 0) - d))


def ref_siglip(x, y, log_temperature, bias):
  z = _unit(x) @ _unit(y).T * np.exp(log_temperature) + bias
  sign = 2.0 * np.eye(len(x)) - 1.0
  return -np.sum(log_expit(sign * z), -1)


def _ref(kind, x, y, hyper, where=None, weights=None, reduction="mean"):
  """The reference with masked pairs sliced out of the batch."""
  keep = np.ones(len(x), bool) if where is None else np.asarray(where)
  fn = ref_clip if kind == "clip" else ref_siglip
  values = np.zeros(len(x))
  values[keep] = fn(x[keep], y[keep], **hyper)
  return ref_reduce(values, where, weights, reduction)


HYPER = {"clip": {"log_temperature": 1.1}, "siglip": {"log_temperature": 1.1, "bias": -1.5}}
CHUNKED = {"clip": jaxobj.chunked_clip_loss, "siglip": jaxobj.chunked_siglip_loss}
SHARDED = {"clip": jaxobj.sharded_clip_loss, "siglip": jaxobj.sharded_siglip_loss}
NAIVE = {"clip": jaxobj.clip_loss, "siglip": jaxobj.siglip_loss}
KINDS = sorted(HYPER)
MASK = np.array([True, False, True, True, True, False, True])
WEIGHTS = RNG.uniform(0.2, 2.0, B)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("kind", KINDS)
def test_values_match_the_reference(kind, x64):
  x, y = _views()
  hyper = HYPER[kind]
  for block_size in (1, 3, None):
    got = CHUNKED[kind](x, y, **hyper, block_size=block_size, where=MASK, reduction="none")
    close(got, _ref(kind, x, y, hyper, MASK, reduction="none"), rtol=1e-12, atol=1e-13)
  for where, weights in [(None, None), (MASK, None), (MASK, WEIGHTS)]:
    for reduction in ("mean", "sum"):
      got = CHUNKED[kind](
        x, y, **hyper, block_size=3, where=where, weights=weights, reduction=reduction
      )
      close(got, _ref(kind, x, y, hyper, where, weights, reduction), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_matches_the_reference(kind):
  x, y = _views()
  got = CHUNKED[kind](
    x.astype(np.float32),
    y.astype(np.float32),
    **HYPER[kind],
    block_size=2,
    where=MASK,
    reduction="none",
  )
  assert got.dtype == jnp.float32
  close(got, _ref(kind, x, y, HYPER[kind], MASK, reduction="none"))


@pytest.mark.parametrize("kind", KINDS)
def test_sharded_without_an_axis_is_the_chunked_loss(kind):
  x, y = _views(dtype=np.float32)
  hyper = HYPER[kind]
  ours = SHARDED[kind](x, y, **hyper, block_size=3, where=MASK, reduction="none")
  np.testing.assert_array_equal(
    ours, CHUNKED[kind](x, y, **hyper, block_size=3, where=MASK, reduction="none")
  )
  if kind == "siglip":  # the doctests run both kinds on a one-device mesh too
    mesh = jax.make_mesh((1,), ("data",))
    on_mesh = SHARDED[kind](x, y, **hyper, mesh=mesh, block_size=3, where=MASK, weights=WEIGHTS)
    close(on_mesh, _ref(kind, x.astype(np.float64), y.astype(np.float64), hyper, MASK, WEIGHTS))


def test_large_scales_stay_exact():
  """CLIP at open_clip's clamp (scale 100), SigLIP with a confident positive
  (z = +60 on the diagonal, softplus(-60) ~ 1e-26): each row keeps its
  relative precision in float32."""
  x, y = _views()
  got = jaxobj.chunked_clip_loss(
    x.astype(np.float32),
    y.astype(np.float32),
    log_temperature=np.log(100.0),
    block_size=3,
    reduction="none",
  )
  close(got, ref_clip(x, y, np.log(100.0)), rtol=2e-5)
  e = np.eye(3)
  got = jaxobj.chunked_siglip_loss(
    e.astype(np.float32),
    e.astype(np.float32),
    log_temperature=np.log(70.0),
    bias=-10.0,
    block_size=2,
    reduction="none",
  )
  close(got, ref_siglip(e, e, np.log(70.0), -10.0), rtol=1e-5, atol=0)


# ---------------------------------------------------------------- gradients


def _objective(fn, kind, reduction, where, block_size=None):
  """The scalar ``sum(loss)`` as a function of every differentiable input."""

  def f(x, y, log_t, bias, weights):
    hyper = {"log_temperature": log_t} | ({"bias": bias} if kind == "siglip" else {})
    size = {} if block_size is None else {"block_size": block_size}
    return jnp.sum(fn(x, y, **hyper, **size, where=where, weights=weights, reduction=reduction))

  return f


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradients_match_the_unchunked_loss(kind, reduction, x64):
  x, y = _views()
  args = (x, y, 1.1, -1.5, WEIGHTS)
  for where in (None, MASK) if reduction == "mean" else (MASK,):
    want = jax.grad(_objective(NAIVE[kind], kind, reduction, where), range(5))(*args)
    got = jax.grad(_objective(CHUNKED[kind], kind, reduction, where, 2), range(5))(*args)
    for g, w in zip(got, want):
      close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_check_grads(kind, x64):
  x, y = _views(5)
  for reduction in ("mean", "none"):
    f = _objective(CHUNKED[kind], kind, reduction, MASK[:5], 2)
    check_grads(
      lambda x, y, t, b, f=f: f(x, y, t, b, WEIGHTS[:5]), (x, y, 1.1, -1.5), order=1, modes=("rev",)
    )


def test_masked_rows_get_no_gradient_from_nan():
  x, y = _views(dtype=np.float32)
  x[~MASK], y[~MASK] = np.nan, np.inf
  for kind in KINDS:
    g = jax.grad(lambda a, fn=CHUNKED[kind]: fn(a, y, block_size=2, where=MASK))(x)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~MASK] == 0.0)


def test_an_objective_term_counts_like_the_unchunked_loss():
  x, y = _views(dtype=np.float32)
  batch = {"x": x, "y": y, "mask": MASK}
  for kind in KINDS:
    ours = term(CHUNKED[kind], "batch.x", "batch.y", where="batch.mask", block_size=2)
    ref = term(NAIVE[kind], "batch.x", "batch.y", where="batch.mask")
    (v1, i1), (v2, i2) = ours.apply(batch=batch), ref.apply(batch=batch)
    close(v1, v2)
    count = float(i1[f"count/{CHUNKED[kind].__name__}"])
    assert count == float(i2[f"count/{NAIVE[kind].__name__}"]) == MASK.sum()


# ---------------------------------------------------------------- memory


@pytest.mark.parametrize("kind", KINDS)
def test_value_and_grad_memory_is_blockwise(kind):
  """No [B, B] temporary in the forward or the backward pass: at B = 512 with
  blocks of 32, XLA's temporaries stay well under one B x B matrix."""
  n, block = 512, 32
  x = jnp.ones((n, 8), jnp.float32)
  f = jax.value_and_grad(lambda a, b: CHUNKED[kind](a, b, block_size=block), (0, 1))
  temp = jax.jit(f).lower(x, x).compile().memory_analysis().temp_size_in_bytes
  assert temp < n * n * 4 / 4, temp


# ---------------------------------------------------------------- bad input


def test_bad_block_sizes_and_methods():
  x, y = _views(dtype=np.float32)
  for fn in (*CHUNKED.values(), *SHARDED.values()):
    with pytest.raises(ValueError, match="block_size=0"):
      fn(x, y, block_size=0)
    for bad in (2.0, True, jnp.int32(2)):
      with pytest.raises(TypeError, match="block_size"):
        fn(x, y, block_size=bad)
  for fn in SHARDED.values():
    with pytest.raises(ValueError, match="method='tree'"):
      fn(x, y, method="tree")


def test_mismatched_shapes_name_both_inputs():
  x, y = _views(dtype=np.float32)
  for fn in (*CHUNKED.values(), *SHARDED.values()):
    with pytest.raises(ValueError, match=r"text_embeddings\.shape=\(7, 3\)"):
      fn(x, y[:, :3])
    with pytest.raises(ValueError, match=r"\(6, 4\)"):
      fn(x, y[:6])


def test_axis_names_outside_shard_map_and_the_mesh():
  x, y = _views(dtype=np.float32)
  mesh = jax.make_mesh((1,), ("data",))
  for fn in SHARDED.values():
    with pytest.raises(ValueError, match=r"axis_name='data' is not a mesh axis in scope"):
      fn(x, y, axis_name="data")
    with pytest.raises(ValueError, match=r"axis_name='batch' is not an axis of the mesh"):
      fn(x, y, mesh=mesh, axis_name="batch")


# ---------------------------------------------------------------- 8 devices

SHARDED_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxobj
    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",))
    rng = np.random.default_rng(3)
    n = 16  # 2 pairs per device
    x = rng.standard_normal((n, 4))
    y = x + 0.5 * rng.standard_normal((n, 4))
    mask = rng.uniform(size=n) < 0.7
    w = rng.uniform(0.2, 2.0, n)
    HYPER = {"clip": {"log_temperature": 1.1}, "siglip": {"log_temperature": 1.1, "bias": -1.5}}
    NAIVE = {"clip": jaxobj.clip_loss, "siglip": jaxobj.siglip_loss}
    SHARDED = {"clip": jaxobj.sharded_clip_loss, "siglip": jaxobj.sharded_siglip_loss}
    split = lambda a: jax.device_put(jnp.asarray(a), NamedSharding(mesh, P("data")))

    def close(a, b):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)

    for kind in ("clip", "siglip"):
      def ref(x, y, log_t, w):
        return NAIVE[kind](x, y, **{**HYPER[kind], "log_temperature": log_t}, where=mask,
                           weights=w)
      want_sum = jax.value_and_grad(
          lambda x, y: NAIVE[kind](x, y, **HYPER[kind], reduction="sum"), (0, 1))(x, y)
      want_none = NAIVE[kind](x, y, **HYPER[kind], where=mask, reduction="none")
      for method in ("ring", "all_gather"):
        # Per device, gradients inside shard_map, masks, weights, two blocks per
        # device; the ring reduces to the mean, the all-gather to per-pair losses
        # (whose backward pass sweeps again with the cotangent).
        if method == "ring":
          reduction, ct, target = "mean", np.ones(n), ref
        else:
          reduction, ct = "none", rng.uniform(0.5, 1.5, n)
          target = lambda x, y, log_t, w: jnp.sum(ct * NAIVE[kind](
              x, y, **{**HYPER[kind], "log_temperature": log_t}, where=mask, weights=w,
              reduction="none"))

        def local(x, y, m, w, c, log_t):
          def f(x, y, log_t, w):
            out = SHARDED[kind](x, y, **{**HYPER[kind], "log_temperature": log_t},
                                axis_name="data", method=method, block_size=1, where=m,
                                weights=w, reduction=reduction)
            return out if out.ndim == 0 else jax.lax.psum(jnp.sum(c * out), "data")
          return jax.value_and_grad(f, (0, 1, 2, 3))(x, y, log_t, w)
        per_device = jax.jit(jax.shard_map(
            local, mesh=mesh, in_specs=(P("data"),) * 5 + (P(),),
            out_specs=(P(), (P("data"), P("data"), P(), P("data")))))
        value, grads = per_device(split(x), split(y), split(mask), split(w), split(ct),
                                  jnp.float64(1.1))
        want = jax.value_and_grad(target, (0, 1, 2, 3))(x, y, 1.1, w)
        close(value, want[0])
        for g, r in zip(grads, want[1]):
          close(g, r)
        print("ok", kind, method)
      # Global arrays with mesh=, gradients outside shard_map, no mask.
      method = "ring" if kind == "clip" else "all_gather"
      glob = jax.jit(jax.value_and_grad(lambda x, y: SHARDED[kind](
          x, y, **HYPER[kind], mesh=mesh, method=method, reduction="sum"), (0, 1)))
      value, grads = glob(x, y)
      close(value, want_sum[0])
      for g, r in zip(grads, want_sum[1]):
        close(g, r)
      close(SHARDED[kind](x, y, **HYPER[kind], mesh=mesh, where=mask, reduction="none"),
            want_none)
      print("ok", kind, "mesh")
      try:
        SHARDED[kind](x[:12], y[:12], mesh=mesh)
      except ValueError as e:
        assert "does not split evenly over the 8 devices" in str(e), e
        print("ok", kind, "uneven")
""")


def test_eight_devices_equal_one_device():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(pathlib.Path(__file__).parent),
  )
  proc = subprocess.run(
    [sys.executable, "-c", SHARDED_SCRIPT],
    env=env,
    check=False,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert proc.stdout.count("ok ") == 8, proc.stdout
