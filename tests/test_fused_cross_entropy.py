"""fused_linear_cross_entropy: the unfused loss of hidden @ kernel, without the logits.

The reference is token_cross_entropy on materialized logits (itself checked
against float64 NumPy in test_sequence.py) and, in float64, a NumPy formula.
Blocks are chosen so that neither N nor V is a multiple of them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxobj
from tests.references import f64

N, D, V = 37, 16, 300
BLOCKS = dict(token_block=8, vocab_block=64)
OPTIONS = {
  "plain": {},
  "smoothing": dict(label_smoothing=0.1),
  "z_loss": dict(z_loss=1e-3),
  "soft_cap": dict(logit_soft_cap=3.0),
  "all": dict(label_smoothing=0.2, z_loss=1e-2, logit_soft_cap=2.0),
}


def _inputs(seed=0, n=N, d=D, v=V, scale=1.0):
  rng = np.random.default_rng(seed)
  hidden = scale * rng.standard_normal((n, d)).astype(np.float32)
  kernel = (rng.standard_normal((d, v)) / np.sqrt(d)).astype(np.float32)
  targets = rng.integers(0, v, n).astype(np.int32)
  targets[::7] = -100
  weights = rng.uniform(0.5, 2.0, n).astype(np.float32)
  where = rng.uniform(size=n) < 0.8
  return jnp.asarray(hidden), jnp.asarray(targets), jnp.asarray(kernel), weights, where


def _unfused(hidden, targets, kernel, **kw):
  return jaxobj.token_cross_entropy(hidden @ kernel, targets, **kw)


def _fused(hidden, targets, kernel, **kw):
  return jaxobj.fused_linear_cross_entropy(hidden, targets, kernel, **BLOCKS, **kw)


CASES = [(o, "mean") for o in OPTIONS] + [(o, r) for o in ("plain", "all") for r in ("sum", "none")]


@pytest.mark.parametrize("option,reduction", CASES)
def test_values_and_gradients_match_the_unfused_loss(option, reduction):
  hidden, targets, kernel, weights, where = _inputs()
  kw = dict(OPTIONS[option], weights=weights, where=where, reduction=reduction)

  def loss(fn, h, k):
    out = fn(h, targets, k, **kw)
    # A fixed random cotangent for "none" checks per-token backward passes.
    return jnp.sum(out * jnp.linspace(0.5, 1.5, out.size).reshape(out.shape))

  ours, our_grads = jax.value_and_grad(lambda h, k: loss(_fused, h, k), (0, 1))(hidden, kernel)
  ref, ref_grads = jax.value_and_grad(lambda h, k: loss(_unfused, h, k), (0, 1))(hidden, kernel)
  np.testing.assert_allclose(ours, ref, rtol=1e-5)
  for got, want in zip(our_grads, ref_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(want))))


@pytest.mark.parametrize("normalize", ["sequences", 50.0])
def test_normalize_modes_and_segments_match(normalize):
  hidden, targets, kernel, weights, _ = _inputs(n=36)
  kw = dict(
    normalize=normalize,
    weights=weights.reshape(4, 9),
    segment_ids=jnp.asarray(np.repeat(np.arange(12), 3).reshape(4, 9)),
  )
  h, y = hidden.reshape(4, 9, D), targets.reshape(4, 9)
  f = lambda h, k: _fused(h, y, k, **kw)
  u = lambda h, k: _unfused(h, y, k, **kw)
  np.testing.assert_allclose(f(h, kernel), u(h, kernel), rtol=1e-5)
  for got, want in zip(jax.grad(f, (0, 1))(h, kernel), jax.grad(u, (0, 1))(h, kernel)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def _numpy_loss(hidden, targets, kernel, alpha, beta, cap):
  """Float64 NumPy, from the formula, mean over targets != -100."""
  x = f64(hidden) @ f64(kernel)
  x = cap * np.tanh(x / cap)
  lse = np.log(np.sum(np.exp(x - x.max(1, keepdims=True)), 1)) + x.max(1)
  keep = targets != -100
  y = np.where(keep, targets, 0)
  nll = lse - x[np.arange(len(y)), y]
  smooth = lse - x.mean(1)
  values = (1 - alpha) * nll + alpha * smooth + beta * lse**2
  return np.sum(np.where(keep, values, 0.0)) / keep.sum()


def test_float64_value_and_gradients_including_hyperparameters():
  hidden, targets, kernel, _, _ = _inputs(n=11, d=5, v=13)
  with jax.enable_x64(True):
    h, k = jnp.asarray(hidden, jnp.float64), jnp.asarray(kernel, jnp.float64)
    kw = dict(token_block=4, vocab_block=5)
    value = jaxobj.fused_linear_cross_entropy(
      h, targets, k, label_smoothing=0.2, z_loss=0.05, logit_soft_cap=1.5, **kw
    )
    np.testing.assert_allclose(
      value, _numpy_loss(hidden, np.asarray(targets), kernel, 0.2, 0.05, 1.5), rtol=1e-12
    )
    f = lambda h, k, a, b, c: jaxobj.fused_linear_cross_entropy(
      h, targets, k, label_smoothing=a, z_loss=b, logit_soft_cap=c, **kw
    )
    args = (h, k, jnp.float64(0.2), jnp.float64(0.05), jnp.float64(1.5))
    check_grads(f, args, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)
    none = lambda h, k, c: jaxobj.fused_linear_cross_entropy(
      h, targets, k, logit_soft_cap=c, reduction="none", **kw
    )
    check_grads(
      none, (h, k, jnp.float64(1.5)), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6
    )


def test_huge_logits_and_all_masked_batches_are_finite():
  hidden, targets, kernel, _, _ = _inputs(scale=1e4)
  value, grads = jax.value_and_grad(_fused, (0, 2))(hidden, targets, kernel, z_loss=1e-4)
  ref = _unfused(hidden, targets, kernel, z_loss=1e-4)
  np.testing.assert_allclose(value, ref, rtol=1e-5)
  assert all(np.isfinite(g).all() for g in grads)
  nothing = jnp.zeros(N, bool)
  value, grads = jax.value_and_grad(_fused, (0, 2))(hidden, targets, kernel, where=nothing)
  assert float(value) == 0.0 and all(float(jnp.abs(g).max()) == 0.0 for g in grads)


def test_bfloat16_inputs_compute_in_float32_with_gradients_in_bfloat16():
  hidden, targets, kernel, _, _ = _inputs()
  hb, kb = hidden.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
  value, (gh, gk) = jax.value_and_grad(_fused, (0, 2))(hb, targets, kb)
  assert value.dtype == jnp.float32 and gh.dtype == gk.dtype == jnp.bfloat16
  up = lambda x: x.astype(jnp.float32)
  np.testing.assert_allclose(value, _unfused(up(hb), targets, up(kb)), rtol=1e-5)
  ref = jax.grad(_unfused, 2)(up(hb), targets, up(kb))
  np.testing.assert_allclose(up(gk), ref, rtol=2e-2, atol=2e-2 * float(jnp.abs(ref).max()))


def test_any_block_sizes_give_the_same_result():
  hidden, targets, kernel, _, _ = _inputs()
  loss = lambda tb, vb: jax.value_and_grad(
    lambda h, k: jaxobj.fused_linear_cross_entropy(h, targets, k, token_block=tb, vocab_block=vb),
    (0, 1),
  )(hidden, kernel)
  ref_value, ref_grads = loss(None, None)
  for tb, vb in [(1, 1), (5, 299), (37, 300), (100, 1000)]:
    value, grads = loss(tb, vb)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    for got, want in zip(grads, ref_grads):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def _temp_bytes(fn, *args):
  return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_memory_does_not_grow_with_the_number_of_tokens():
  """Compiled (not run) value-and-grad: once N fills a chunk (512 tokens at
  V = 4096), the fused temp stays flat as N grows."""
  d, v = 32, 4096
  temps = {}
  for n in (1024, 4096):
    h = jax.ShapeDtypeStruct((n, d), jnp.float32)
    y = jax.ShapeDtypeStruct((n,), jnp.int32)
    k = jax.ShapeDtypeStruct((d, v), jnp.float32)
    fused = jax.value_and_grad(lambda h, y, k: jaxobj.fused_linear_cross_entropy(h, y, k), (0, 2))
    naive = jax.value_and_grad(lambda h, y, k: _unfused(h, y, k), (0, 2))
    temps[n] = (_temp_bytes(fused, h, y, k), _temp_bytes(naive, h, y, k))
  (small, _), (large, naive_large) = temps[1024], temps[4096]
  assert large < 1.2 * small + (1 << 16), temps
  assert large < naive_large / 4, temps


def test_jit_traces_once_and_vmaps_over_a_hyperparameter():
  hidden, targets, kernel, _, _ = _inputs()
  f = jax.jit(jax.vmap(lambda a: _fused(hidden, targets, kernel, label_smoothing=a)))
  alphas = jnp.array([0.0, 0.1, 0.3])
  got = f(alphas)
  want = [_unfused(hidden, targets, kernel, label_smoothing=float(a)) for a in alphas]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
  hidden, targets, kernel, _, _ = _inputs()
  with pytest.raises(ValueError, match=r"kernel must be \[D, V\].*\(300, 16\)"):
    jaxobj.fused_linear_cross_entropy(hidden, targets, kernel.T)
  with pytest.raises(ValueError, match=r"targets.*\[0, 300\).*\[300\]"):
    jaxobj.fused_linear_cross_entropy(hidden, targets.at[0].set(300), kernel)
  # A masked or ignored target may hold anything.
  jaxobj.fused_linear_cross_entropy(hidden, targets.at[0].set(300), kernel, where=jnp.arange(N) > 0)
  with pytest.raises(ValueError, match="token_block"):
    jaxobj.fused_linear_cross_entropy(hidden, targets, kernel, token_block=0)
  with pytest.raises(ValueError, match="targets"):
    jaxobj.fused_linear_cross_entropy(hidden, targets[:-1], kernel)
  with pytest.raises(TypeError, match="kernel"):
    jaxobj.fused_linear_cross_entropy(hidden, targets, kernel.astype(jnp.int32))


@pytest.mark.parametrize("n,d,v", [(512, 64, 4096), (100, 16, 300)])
def test_soft_cap_keeps_one_logits_buffer_at_small_sizes(n, d, v):
  """Compiled value-and-grad: the cap adds no [tokens, V] buffer, also where
  all tokens fit in one chunk (512 x 4096 is the benchmark's quick size)."""
  args = (
    jax.ShapeDtypeStruct((n, d), jnp.float32),
    jax.ShapeDtypeStruct((n,), jnp.int32),
    jax.ShapeDtypeStruct((d, v), jnp.float32),
  )
  temp = lambda **kw: _temp_bytes(
    jax.value_and_grad(lambda h, y, k: jaxobj.fused_linear_cross_entropy(h, y, k, **kw), (0, 2)),
    *args,
  )
  plain, capped = temp(), temp(logit_soft_cap=30.0)
  assert capped <= 1.02 * plain, (capped, plain)
  assert plain < 1.5 * 4 * n * v, plain  # one [n, V] float32 buffer, not two


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_batch_gives_zero_with_zero_gradients(reduction):
  kernel = jnp.asarray(np.random.default_rng(3).standard_normal((D, V)), jnp.float32)
  hidden, targets = jnp.zeros((0, D)), jnp.zeros((0,), jnp.int32)

  def loss(h, k):
    out = jaxobj.fused_linear_cross_entropy(h, targets, k, reduction=reduction, **OPTIONS["all"])
    return jnp.sum(out)

  out = jaxobj.fused_linear_cross_entropy(hidden, targets, kernel, reduction=reduction)
  assert out.shape == ((0,) if reduction == "none" else ())
  value, (dh, dk) = jax.value_and_grad(loss, (0, 1))(hidden, kernel)
  assert float(value) == 0.0
  assert dh.shape == (0, D) and dk.shape == (D, V) and float(jnp.abs(dk).max()) == 0.0
  # The unfused loss agrees.
  assert float(_unfused(hidden, targets, kernel, reduction=reduction).sum()) == 0.0
