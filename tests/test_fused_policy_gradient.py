"""The fused-linear policy-gradient loss equals ``policy_gradient_loss`` of ``hidden @ kernel``.

Values and gradients (with respect to the hidden states, the kernel,
``temperature``, ``logit_soft_cap`` and the loss's traceable hyperparameters)
against :func:`jaxobj.policy_gradient_loss` of the per-token log-probabilities
(and entropies) of the full logits, with prompt and padding tokens, a masked
padded completion holding garbage, weights, a chunk size that does not divide
the tokens, bf16 hidden states and a stale behaviour policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj

B, T, D, V = 4, 6, 8, 13
TEMPERATURE, CAP = 0.8, 5.0
BLOCKS = {"token_block": 5, "vocab_block": 6}  # 24 tokens, 13 columns
ROWS = np.array([True, True, True, False])  # the last completion is padding
ROW_WEIGHTS = np.array([1.0, 0.5, 2.0, 1.0], np.float32)


def _full_logits(h, kernel, temperature, cap):
  z = h @ kernel
  return jax.nn.log_softmax(cap * jnp.tanh(z / cap) / temperature, axis=-1)


def _token_logps(h, y, kernel, temperature, cap):
  """Per-token log-probabilities and entropies from the full logits."""
  logp = _full_logits(h, kernel, temperature, cap)
  lp = jnp.take_along_axis(logp, jnp.maximum(y, 0)[..., None], -1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
  return lp, entropy


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  h = rng.standard_normal((B, T, D)).astype(np.float32)
  kernel = (0.7 * rng.standard_normal((D, V))).astype(np.float32)
  y = rng.integers(0, V, (B, T)).astype(np.int32)
  y[:, 0] = -100  # the prompt's last position
  y[1, -2:] = -100  # padding after a short completion
  lp, _ = _token_logps(h, y, kernel, TEMPERATURE, CAP)
  lp = np.asarray(lp)
  old = (lp + rng.normal(0.0, 0.2, lp.shape)).astype(np.float32)
  ref = (lp + rng.normal(0.0, 0.3, lp.shape)).astype(np.float32)
  old[y == -100] = np.nan  # never read
  # The padded completion holds garbage: NaN hidden states and log-probs,
  # targets outside [0, V).
  h[3], old[3], ref[3], y[3] = np.nan, np.nan, np.nan, 10**6
  adv = rng.normal(0.0, 1.0, B).astype(np.float32)
  return {
    k: jnp.asarray(v) for k, v in dict(h=h, y=y, old=old, ref=ref, adv=adv, kernel=kernel).items()
  }


def _close(a, b, rtol=1e-5):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6 * max(1.0, np.max(np.abs(b))))


def _fused(kw):
  def f(h, kernel, temperature, cap, epsilon, beta, coef, d, old):
    extra = {} if coef is None else {"entropy_coef": coef}
    return jaxobj.fused_linear_policy_gradient_loss(
      h,
      d["y"],
      old,
      d["adv"],
      d["ref"],
      kernel,
      epsilon=epsilon,
      beta=beta,
      temperature=temperature,
      logit_soft_cap=cap,
      where=jnp.asarray(ROWS),
      weights=jnp.asarray(ROW_WEIGHTS),
      **extra,
      **BLOCKS,
      **kw,
    )

  return f


def _unfused(kw):
  """The same loss from the full logits, with the padded completion sliced out."""

  def f(h, kernel, temperature, cap, epsilon, beta, coef, d, old):
    y = d["y"][ROWS]
    lp, entropy = _token_logps(h[ROWS], y, kernel, temperature, cap)
    extra = {} if coef is None else {"entropy_coef": coef, "entropy": entropy}
    return jaxobj.policy_gradient_loss(
      lp,
      old[ROWS],
      d["adv"][ROWS],
      d["ref"][ROWS],
      completion_mask=y != -100,
      epsilon=epsilon,
      beta=beta,
      weights=jnp.asarray(ROW_WEIGHTS[ROWS]),
      max_completion_length=T,
      **extra,
      **kw,
    )

  return f


# Gradients with respect to hidden, kernel, temperature, cap, epsilon, beta, entropy_coef
# and the old log-probabilities.
ARGNUMS = (0, 1, 2, 3, 4, 5, 6, 8)
GRAD_CASES = {
  "grpo-k3-entropy": {"loss_type": "grpo", "kl_estimator": "k3"},
  "dapo-clip_higher-delta": {"loss_type": "dapo", "epsilon_high": 0.28, "delta": 1.5},
  "gspo-sequence": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
}


@pytest.mark.parametrize("kw", GRAD_CASES.values(), ids=GRAD_CASES.keys())
def test_values_and_gradients_equal_the_unfused_loss(data, kw):
  args = (data["h"], data["kernel"], TEMPERATURE, CAP, 0.2, 0.04, 0.01)
  got = jax.jit(jax.value_and_grad(_fused(kw), ARGNUMS))(*args, data, data["old"])
  want = jax.jit(jax.value_and_grad(_unfused(kw), ARGNUMS))(*args, data, data["old"])
  _close(got[0], want[0])
  assert np.all(np.asarray(got[1][0])[~ROWS] == 0.0)  # the padded completion: exactly 0
  _close(got[1][0][ROWS], want[1][0][ROWS])
  for g, r in zip(got[1][1:], want[1][1:]):
    _close(g, r)


OTHER_CASES = {
  "grpo-k1": {"kl_estimator": "k1"},
  "bnpo-k2": {"loss_type": "bnpo", "kl_estimator": "k2"},
  "dr_grpo": {"loss_type": "dr_grpo"},
  "cispo": {"loss_type": "cispo", "epsilon_high": 4.0},
  "gspo_token": {"importance_sampling_level": "sequence_token"},
}


@jax.jit
def _other_values(d):
  args = (d["h"], d["kernel"], TEMPERATURE, CAP, 0.2, 0.04, None, d, d["old"])
  return {
    name: (_fused(kw)(*args), _unfused(kw)(*args), jax.grad(_fused(kw))(*args))
    for name, kw in OTHER_CASES.items()
  }


def test_every_other_loss_type_equals_the_unfused_loss(data):
  for name, (got, want, grad) in _other_values(data).items():
    _close(got, want)
    assert np.all(np.isfinite(np.asarray(grad))), name


def test_reduction_none_and_sum_and_count(data):
  @jax.jit
  def run(d):
    common = (d["h"], d["y"], d["old"], d["adv"], None, d["kernel"])
    kw = {"where": jnp.asarray(ROWS), "loss_type": "dapo", **BLOCKS}
    none = jaxobj.fused_linear_policy_gradient_loss(*common, reduction="none", **kw)
    pair = jaxobj.fused_linear_policy_gradient_loss(*common, reduction="sum_and_count", **kw)
    return none, pair, jaxobj.fused_linear_policy_gradient_loss(*common, **kw)

  none, (total, count), mean = run(data)
  assert none.shape == (B,) and float(none[3]) == 0.0
  _close(total, jnp.sum(none))
  assert float(count) == float(np.sum((np.asarray(data["y"]) != -100)[ROWS]))
  _close(mean, total / count)


def test_stale_behaviour_policy_is_finite_and_clipped(data):
  """Log-ratios of +-1e4: the ratio is clipped, the value and gradients are
  finite and equal the unfused loss's."""
  kw = {"loss_type": "dapo"}
  stale = data["old"] + jnp.where(jnp.arange(T) % 2 == 0, 1e4, -1e4)
  args = (data["h"], data["kernel"], TEMPERATURE, CAP, 0.2, 0.04, None)
  got = jax.jit(jax.value_and_grad(_fused(kw), (0, 1)))(*args, data, stale)
  want = jax.jit(jax.value_and_grad(_unfused(kw), (0, 1)))(*args, data, stale)
  assert np.isfinite(float(got[0]))
  _close(got[0], want[0])
  for g, r in zip(got[1], want[1]):
    assert np.all(np.isfinite(np.asarray(g)))
    _close(g, r)


def test_bf16_hidden_states_compute_in_float32(data):
  keep = jnp.asarray(ROWS)

  @jax.jit
  @jax.value_and_grad
  def loss(h, d):
    return jaxobj.fused_linear_policy_gradient_loss(
      h, d["y"], d["old"], d["adv"], None, d["kernel"], where=keep, **BLOCKS
    )

  low = data["h"].astype(jnp.bfloat16)
  value, grad = loss(low, data)
  value_up, grad_up = loss(low.astype(jnp.float32), data)
  assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
  _close(value, value_up, rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(grad), np.asarray(grad_up.astype(jnp.bfloat16)))


def test_bad_inputs_raise_naming_the_argument(data):
  d = {k: v[:3] if k != "kernel" else v for k, v in data.items()}
  args = (d["h"], d["y"], d["old"], d["adv"], None, d["kernel"])
  f = jaxobj.fused_linear_policy_gradient_loss
  with pytest.raises(
    ValueError, match=r"old_logps.*\(3, 5\).*\(3, 6\)|targets.*\(3, 6\).*\(3, 5\)"
  ):
    f(args[0], args[1], d["old"][:, :5], *args[3:])
  with pytest.raises(ValueError, match=r"reference_logps"):
    f(*args[:4], d["ref"][:, :5], d["kernel"])
  with pytest.raises(ValueError, match=r"targets must lie in \[0, V\) = \[0, 13\)"):
    f(args[0], args[1].at[0, 2].set(V), *args[2:])
  with pytest.raises(ValueError, match=r"kernel must be \[D, V\]"):
    f(*args[:5], d["kernel"].T)
  with pytest.raises(ValueError, match="beta=0.1 but reference_logps is None"):
    f(*args, beta=0.1)
  with pytest.raises(ValueError, match="advantages"):
    f(*args[:3], d["adv"][:2], *args[4:])
