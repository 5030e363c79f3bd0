"""minimum_risk_loss against a float64 NumPy reference written from Shen et al. (2016).

The contract (masks, weights, reductions, extremes, padded candidates) is
checked by the registry-wide tests; here: values, the exact gradient
alpha * Q * (cost - risk), the limits in alpha, and the path from token
logits through ``sequence_log_probs``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj


def _reference(log_probs, costs, alpha):
  """float64: Q = softmax(alpha * log P) over the finite candidates; risk = sum Q * cost."""
  lp = np.asarray(log_probs, np.float64)
  cost = np.asarray(costs, np.float64)
  valid = np.isfinite(lp)
  z = np.where(valid, alpha * np.where(valid, lp, 0.0), -np.inf)
  z = z - z.max(-1, keepdims=True)
  q = np.where(valid, np.exp(z), 0.0)
  q /= q.sum(-1, keepdims=True)
  risk = np.sum(np.where(valid, q * cost, 0.0), -1)
  grad = alpha * q * (np.where(valid, cost, 0.0) - risk[..., None])
  return risk, grad


@pytest.fixture(scope="module")
def candidates():
  rng = np.random.default_rng(0)
  lp = -rng.uniform(2.0, 60.0, (3, 5, 6))
  lp[0, 1, 4:] = -np.inf  # a source with four candidates
  lp[2, 3, 1:] = -np.inf  # and one with a single candidate
  costs = rng.uniform(0.0, 1.0, lp.shape)
  costs[0, 1, 4:] = np.nan  # padded candidates' costs are never read
  return lp.astype(np.float32), costs.astype(np.float32)


@jax.jit
def _value_and_grad(lp, costs, alpha):
  per_source = jaxobj.minimum_risk_loss(lp, costs, alpha=alpha, reduction="none")
  grad = jax.grad(lambda x: jaxobj.minimum_risk_loss(x, costs, alpha=alpha, reduction="sum"))(lp)
  return per_source, grad


@pytest.mark.parametrize("alpha", [5e-3, 0.3, 1.0])
def test_values_and_exact_gradient_match_the_float64_reference(candidates, alpha):
  lp, costs = candidates
  risk, grad = _value_and_grad(lp, costs, jnp.float32(alpha))
  want, want_grad = _reference(lp, costs, alpha)
  np.testing.assert_allclose(risk, want, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(grad, want_grad, rtol=2e-4, atol=1e-7)
  assert np.all(grad[np.isneginf(lp)] == 0.0)
  # One candidate: Q = 1, the risk is its cost and there is nothing to move.
  assert float(risk[2, 3]) == pytest.approx(float(costs[2, 3, 0]))
  assert np.all(grad[2, 3] == 0.0)


def test_alpha_limits_are_the_mean_cost_and_the_cost_of_the_most_likely_candidate(candidates):
  lp, costs = candidates
  lp, costs = lp[1], costs[1]  # no padding
  flat, _ = _value_and_grad(lp, costs, jnp.float32(1e-6))
  np.testing.assert_allclose(flat, costs.mean(-1), rtol=1e-4)
  sharp, _ = _value_and_grad(lp, costs, jnp.float32(50.0))
  best = np.take_along_axis(costs, lp.argmax(-1)[:, None], -1)[:, 0]
  np.testing.assert_allclose(sharp, best, rtol=1e-5, atol=1e-6)


def test_alpha_gradient_is_the_covariance_of_cost_and_log_probability(candidates):
  """d risk / d alpha = Cov_Q(cost, log P): analytic in float64."""
  lp, costs = (c[1, 0] for c in candidates)
  alpha = 0.2
  got = jax.jit(jax.grad(lambda a: jaxobj.minimum_risk_loss(lp[None], costs[None], alpha=a)))(alpha)
  x = np.asarray(lp, np.float64)
  c = np.asarray(costs, np.float64)
  q = np.exp(alpha * x - np.max(alpha * x))
  q /= q.sum()
  want = np.sum(q * c * x) - np.sum(q * c) * np.sum(q * x)
  assert float(got) == pytest.approx(want, rel=1e-4)


def test_from_token_logits_through_sequence_log_probs():
  """The documented path: K candidates per source, scored token by token."""
  rng = np.random.default_rng(1)
  batch, k, t, v = 2, 3, 4, 7
  logits = rng.standard_normal((batch * k, t, v)).astype(np.float32)
  tokens = rng.integers(0, v, (batch * k, t))
  mask = np.arange(t)[None, :] < rng.integers(1, t + 1, (batch * k, 1))
  costs = rng.uniform(0.0, 1.0, (batch, k)).astype(np.float32)

  def loss(logits):
    seq = jaxobj.sequence_log_probs(logits, jnp.asarray(tokens), where=jnp.asarray(mask))
    return jaxobj.minimum_risk_loss(seq.reshape(batch, k), costs, alpha=1.0)

  x = logits.astype(np.float64)
  log_softmax = x - np.log(np.exp(x).sum(-1, keepdims=True))
  token_lp = np.take_along_axis(log_softmax, tokens[..., None], -1)[..., 0]
  seq = np.where(mask, token_lp, 0.0).sum(-1).reshape(batch, k)
  want, _ = _reference(seq, costs, 1.0)
  value, g = jax.jit(jax.value_and_grad(loss))(jnp.asarray(logits))
  assert float(value) == pytest.approx(want.mean(), rel=1e-5)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0.0)


def test_bad_inputs_are_refused_clearly():
  lp, costs = jnp.zeros((2, 3)), jnp.zeros((2, 3))
  with pytest.raises(ValueError, match=r"alpha"):
    jaxobj.minimum_risk_loss(lp, costs, alpha=0.0)
  with pytest.raises(ValueError, match=r"costs\.shape=\(2, 3, 1\)"):
    jaxobj.minimum_risk_loss(lp, costs[..., None])
  with pytest.raises(ValueError, match="K candidates"):
    jaxobj.minimum_risk_loss(jnp.float32(0.0), jnp.float32(0.0))
  with pytest.raises(TypeError, match="sequence_log_probs"):
    jaxobj.minimum_risk_loss(jnp.zeros((2, 3), jnp.int32), costs)
