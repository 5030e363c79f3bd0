"""The fused-linear engine (``jaxobj._src.fused_linear``) and the fused
log-probabilities built on it, against float64 NumPy references and the
unfused computation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj._src import fused_linear
from jaxobj.losses.preference import sequence_log_probs
from jaxobj.losses.sequence import fused_linear_sequence_log_probs, fused_linear_token_log_probs

B, T, D, V = 3, 5, 6, 13


def _data(seed=0):
  rng = np.random.default_rng(seed)
  hidden = rng.standard_normal((B, T, D)).astype(np.float32)
  kernel = (0.7 * rng.standard_normal((D, V))).astype(np.float32)
  targets = rng.integers(0, V, (B, T)).astype(np.int32)
  targets[0, :2] = -100  # a prompt
  targets[2, 4] = -100  # padding
  where = np.ones((B, T), bool)
  where[1, 3] = False
  return hidden, targets, kernel, where


def _reference(hidden, targets, kernel, where, temperature, cap):
  """float64 NumPy: log-probabilities and entropies, 0 where not counted."""
  z = hidden.astype(np.float64) @ kernel.astype(np.float64)
  x = cap * np.tanh(z / cap) / temperature
  x = x - x.max(-1, keepdims=True)
  logp_all = x - np.log(np.exp(x).sum(-1, keepdims=True))
  valid = where & (targets != -100)
  logp = np.take_along_axis(logp_all, np.maximum(targets, 0)[..., None], -1)[..., 0]
  entropy = -(np.exp(logp_all) * logp_all).sum(-1)
  return np.where(valid, logp, 0.0), np.where(valid, entropy, 0.0)


def _unfused(hidden, targets, kernel, where, temperature, cap):
  """The same in float32 JAX, differentiable: the gradients' reference."""
  x = cap * jnp.tanh(hidden @ kernel / cap) / temperature
  logp_all = jax.nn.log_softmax(x)
  valid = where & (targets != -100)
  logp = jnp.take_along_axis(logp_all, jnp.maximum(targets, 0)[..., None], -1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1)
  return jnp.where(valid, logp, 0.0), jnp.where(valid, entropy, 0.0)


def _fused(hidden, targets, kernel, where, temperature, cap):
  return fused_linear_token_log_probs(
    hidden,
    targets,
    kernel,
    temperature=temperature,
    logit_soft_cap=cap,
    where=where,
    entropy=True,
    token_block=4,  # does not divide the 15 tokens
    vocab_block=5,  # does not divide the 13 columns
  )


def _scalar(outputs):
  """A loss that weights every token and both outputs differently."""
  logp, entropy = outputs
  return jnp.sum(logp * jnp.arange(1.0, T + 1.0)) + jnp.sum(jnp.square(entropy))


_value_and_grads = {
  name: jax.jit(jax.value_and_grad(lambda *a, f=f: _scalar(f(*a)), argnums=(0, 2, 4, 5)))
  for name, f in (("fused", _fused), ("unfused", _unfused))
}


def test_log_probs_and_entropies_match_a_float64_reference():
  hidden, targets, kernel, where = _data()
  logp, entropy = _fused(hidden, targets, kernel, where, 0.7, 3.0)
  ref_logp, ref_entropy = _reference(hidden, targets, kernel, where, 0.7, 3.0)
  np.testing.assert_allclose(logp, ref_logp, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(entropy, ref_entropy, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(logp)[~(where & (targets != -100))] == 0.0)


def test_gradients_match_the_unfused_computation_including_temperature_and_cap():
  hidden, targets, kernel, where = _data(1)
  args = (hidden, targets, kernel, where, jnp.float32(0.7), jnp.float32(3.0))
  value, grads = _value_and_grads["fused"](*args)
  ref_value, ref_grads = _value_and_grads["unfused"](*args)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for g, r in zip(grads, ref_grads):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(r))))
  # Masked positions get no gradient, whatever their hidden states.
  counted = where & (targets != -100)
  assert np.all(np.asarray(grads[0])[~counted] == 0.0)


def test_sequence_log_probs_match_the_unfused_helper():
  hidden, targets, kernel, where = _data(2)
  for average in (False, True):
    fused = fused_linear_sequence_log_probs(
      hidden, targets, kernel, where=where, average=average, token_block=2
    )
    unfused = sequence_log_probs(hidden @ kernel, targets, where=where, average=average)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5)


def test_a_stopped_kernel_gets_no_backward_matmuls():
  hidden, targets, kernel, _ = _data(3)

  def loss(h, w):
    return jnp.sum(fused_linear_token_log_probs(h, targets, w))

  def dots(fn, *args):
    return jax.jit(fn).lower(*args).as_text().count("dot_general")

  trained = dots(jax.grad(loss, argnums=(0, 1)), hidden, kernel)
  frozen = dots(jax.grad(lambda h, w: loss(h, jax.lax.stop_gradient(w))), hidden, kernel)
  no_grad = dots(
    lambda h, w: loss(jax.lax.stop_gradient(h), jax.lax.stop_gradient(w)), hidden, kernel
  )
  # Forward logits; + d hidden, the logits recomputed and d kernel when trained.
  assert no_grad < frozen < trained
  g = jax.grad(lambda h: loss(h, jax.lax.stop_gradient(kernel)))(hidden)
  r = jax.grad(lambda h: jnp.sum(_unfused(h, targets, kernel, targets >= 0, 1.0, 1e9)[0]))(hidden)
  np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def _forward_kl(logits, aux, hyper):
  """A two-projection per-token function: KL(teacher || student) at T."""
  student, teacher = logits
  (temperature,) = hyper
  log_s = jax.nn.log_softmax(student / temperature)
  log_t = jax.nn.log_softmax(teacher / temperature)
  (scale,) = aux
  return (scale * jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=1),)


def test_weighted_total_equals_the_token_outputs_sum_with_two_projections():
  rng = np.random.default_rng(4)
  hs, ht = rng.standard_normal((11, 4)), rng.standard_normal((11, 7))
  ws, wt = rng.standard_normal((4, V)), rng.standard_normal((7, V))
  scale, coef = rng.uniform(0.5, 2.0, 11), rng.uniform(0.0, 1.0, 11)
  coef[3] = 0.0
  args = [jnp.asarray(a, jnp.float32) for a in (hs, ws, ht, wt, scale, coef)] + [jnp.float32(1.3)]
  blocks = fused_linear.Blocks(tokens=4, vocab=5)

  def one_sweep(hs, ws, ht, wt, scale, coef, temp):
    return fused_linear.weighted_total(
      _forward_kl, (hs, ht), (ws, wt), (scale,), (temp,), coef, blocks
    )

  def two_sweeps(hs, ws, ht, wt, scale, coef, temp):
    (values,) = fused_linear.token_outputs(
      _forward_kl, (hs, ht), (ws, wt), (scale,), (temp,), blocks
    )
    return jnp.sum(coef * values)

  def direct(hs, ws, ht, wt, scale, coef, temp):
    return jnp.sum(coef * _forward_kl((hs @ ws, ht @ wt), (scale,), (temp,))[0])

  grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=tuple(range(7))))  # noqa: E731
  ref_value, ref_grads = grad(direct)(*args)
  for f in (one_sweep, two_sweeps):
    value, grads = grad(f)(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
      np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(r))))


def _temp_bytes(fn, *args):
  return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_memory_stays_far_below_the_logits():
  n, d, v = 512, 16, 8192
  h = jax.ShapeDtypeStruct((n // 8, 8, d), jnp.float32)
  w = jax.ShapeDtypeStruct((d, v), jnp.float32)
  y = jax.ShapeDtypeStruct((n // 8, 8), jnp.int32)

  def loss(h, w, y):
    return jnp.sum(fused_linear_sequence_log_probs(h, y, w, token_block=64) ** 2)

  temp = _temp_bytes(jax.grad(loss, argnums=(0, 1)), h, w, y)
  logits_bytes = n * v * 4
  assert temp < logits_bytes / 2, (temp, logits_bytes)


def test_bad_inputs_raise_clear_errors():
  hidden, targets, kernel, _ = _data()
  with pytest.raises(ValueError, match=r"kernel must be \[D, V\]"):
    fused_linear_token_log_probs(hidden, targets, kernel.T)
  with pytest.raises(ValueError, match=r"targets must lie in \[0, V\)"):
    fused_linear_token_log_probs(hidden, np.full((B, T), V, np.int32), kernel)
  with pytest.raises(ValueError, match="temperature"):
    fused_linear_token_log_probs(hidden, targets, kernel, temperature=0.0)
  with pytest.raises(ValueError, match="token_block"):
    fused_linear_token_log_probs(hidden, targets, kernel, token_block=0)
  with pytest.raises(ValueError, match="sequence axis"):
    fused_linear_sequence_log_probs(hidden[0, 0], targets[0, 0], kernel)
