"""sinkhorn_divergence against a float64 NumPy Sinkhorn, exact optimal transport and
its known properties (Feydy et al. 2019): S(a, a) = 0, S >= 0, S -> W as eps -> 0,
and envelope-theorem gradients against float64 finite differences.

The contract (masks, weights, reductions, NaN, extremes, low precision) is
checked by the registry-wide tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

import jaxobj


def _np_cost(x, y, p):
  d = np.sqrt(np.sum((x[:, None, :] - y[None, :, :]) ** 2, -1))
  return d if p == 1 else 0.5 * d**2


def _np_ot(x, y, a, b, eps, p):
  """float64 entropic OT: log-domain Sinkhorn run to 1e-12, then the dual value
  <a, f> + <b, g> (Peyre and Cuturi, Remark 4.23). Between a cloud and itself
  the averaged symmetric update p <- (p + T(p)) / 2 converges in a few steps."""
  c = _np_cost(x, y, p)
  same = x is y and a is b
  f, g = np.zeros(len(a)), np.zeros(len(b))
  for _ in range(20000):
    f_new = -eps * logsumexp(np.log(b)[None, :] + (g[None, :] - c) / eps, axis=1)
    if same:
      f_new = 0.5 * (f + f_new)
      g = f_new
    else:
      g = -eps * logsumexp(np.log(a)[:, None] + (f_new[:, None] - c) / eps, axis=0)
    done = np.max(np.abs(f_new - f)) < 1e-12
    f = f_new
    if done:
      break
  return float(a @ f + b @ g)


def _np_divergence(x, y, a, b, eps, p):
  return (
    _np_ot(x, y, a, b, eps, p) - 0.5 * _np_ot(x, x, a, a, eps, p) - 0.5 * _np_ot(y, y, b, b, eps, p)
  )


def _cloud(rng, n, d, shift=0.0):
  x = rng.standard_normal((n, d)) + shift
  w = rng.uniform(0.2, 1.0, n)
  return x, w / w.sum()


TIGHT = {"tolerance": 1e-6, "max_iterations": 5000}


@pytest.fixture(scope="module")
def clouds():
  rng = np.random.default_rng(0)
  x, a = _cloud(rng, 7, 2)
  y, b = _cloud(rng, 5, 2, shift=0.7)
  return x, y, a, b


@pytest.mark.parametrize("p", [1, 2])
def test_matches_a_float64_sinkhorn_with_weights(clouds, p):
  x, y, a, b = clouds
  f32 = lambda *t: tuple(jnp.asarray(v, jnp.float32) for v in t)
  for eps in (0.05, 0.5):
    got = jaxobj.sinkhorn_divergence(*f32(x, y, a, b), epsilon=eps, p=p, **TIGHT)
    want = _np_divergence(x, y, a, b, eps, p)
    assert float(got) == pytest.approx(want, rel=2e-4, abs=1e-5), (p, eps)
  biased = jaxobj.sinkhorn_divergence(*f32(x, y, a, b), epsilon=0.5, p=p, debias=False, **TIGHT)
  assert float(biased) == pytest.approx(_np_ot(x, y, a, b, 0.5, p), rel=2e-4)


def test_zero_for_equal_clouds_and_positive_otherwise():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((4, 6, 3)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((4, 6, 3)) * 0.5, jnp.float32)
  same = jaxobj.sinkhorn_divergence(x, x, epsilon=0.1, reduction="none", **TIGHT)
  np.testing.assert_allclose(same, 0.0, atol=2e-5)
  other = jaxobj.sinkhorn_divergence(x, y, epsilon=0.1, reduction="none", **TIGHT)
  assert np.all(np.asarray(other) > 1e-3)
  # Symmetric in its two clouds.
  swapped = jaxobj.sinkhorn_divergence(y, x, epsilon=0.1, reduction="none", **TIGHT)
  np.testing.assert_allclose(swapped, other, rtol=1e-4)


def test_small_epsilon_approaches_wasserstein_in_1d_and_exact_ot_in_2d():
  rng = np.random.default_rng(2)
  s = rng.standard_normal((2, 8)).astype(np.float32)
  t = (1.5 * rng.standard_normal((2, 8)) + 0.3).astype(np.float32)
  w1 = jaxobj.wasserstein_1d(s, t, reduction="none")
  got = jaxobj.sinkhorn_divergence(s[..., None], t[..., None], epsilon=1e-3, p=1, reduction="none")
  np.testing.assert_allclose(got, w1, atol=5e-3)
  # p = 2 in 2-D, equal uniform clouds: exact OT is an assignment, W2^2 / 2.
  x = rng.standard_normal((8, 2))
  y = rng.standard_normal((8, 2)) + np.array([1.0, -0.5])
  c = _np_cost(x, y, 2)
  rows, cols = linear_sum_assignment(c)
  exact = c[rows, cols].mean()
  got = jaxobj.sinkhorn_divergence(
    jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), epsilon=1e-3
  )
  assert float(got) == pytest.approx(exact, abs=5e-3 * exact)


def test_envelope_gradients_match_float64_finite_differences(clouds):
  x, y, a, b = clouds
  eps = 0.3
  kw = {"epsilon": eps, "tolerance": 1e-12, "max_iterations": 20000}
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    f = jax.jit(
      lambda x, y, a, b, e: jaxobj.sinkhorn_divergence(x, y, a, b, **{**kw, "epsilon": e})
    )
    args = (x, y, a, b, np.float64(eps))
    grads = jax.grad(f, argnums=(0, 1, 2, 3, 4))(*args)
    h = 1e-5
    for i, g in enumerate(grads):
      v = rng.standard_normal(np.shape(args[i]))
      if i in (2, 3):  # weights move along the simplex: directions summing to 0
        v -= v.mean()
      up = list(args)
      down = list(args)
      up[i] = args[i] + h * v
      down[i] = args[i] - h * v
      fd = (float(f(*up)) - float(f(*down))) / (2 * h)
      assert float(np.sum(np.asarray(g) * v)) == pytest.approx(fd, rel=1e-5, abs=1e-8), i


def test_batch_rows_are_independent_and_zero_weights_drop_points():
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.standard_normal((3, 5, 2)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((3, 4, 2)) + 1.0, jnp.float32)
  rows = jaxobj.sinkhorn_divergence(x, y, reduction="none")
  one = jax.jit(lambda x, y: jaxobj.sinkhorn_divergence(x, y))
  for i in range(3):
    assert float(rows[i]) == pytest.approx(float(one(x[i : i + 1], y[i : i + 1])), rel=1e-6)
  # A point of weight 0 is not there: its value and the others' gradients match.
  a = jnp.array([0.25, 0.25, 0.25, 0.25, 0.0])
  padded = lambda x: jaxobj.sinkhorn_divergence(x, y[0], a, epsilon=0.1, **TIGHT)
  dropped = lambda x: jaxobj.sinkhorn_divergence(x[:4], y[0], epsilon=0.1, **TIGHT)
  both = jax.jit(lambda x: (jax.value_and_grad(padded)(x), jax.value_and_grad(dropped)(x)))
  (value, g), (want, want_g) = both(x[0])
  assert float(value) == pytest.approx(float(want), rel=1e-5)
  np.testing.assert_allclose(g[:4], want_g[:4], rtol=1e-4, atol=1e-6)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g[4]) == 0.0)


def test_bad_inputs_are_refused_clearly():
  x, y = jnp.zeros((2, 4, 3)), jnp.ones((2, 5, 3))
  with pytest.raises(ValueError, match=r"x\.shape=\(2, 4, 3\) and y\.shape=\(2, 5, 2\)"):
    jaxobj.sinkhorn_divergence(x, y[..., :2])
  with pytest.raises(ValueError, match=r"x_weights\.shape=\(2, 5\)"):
    jaxobj.sinkhorn_divergence(x, y, jnp.ones((2, 5)) / 5)
  with pytest.raises(ValueError, match="p must be 1 or 2"):
    jaxobj.sinkhorn_divergence(x, y, p=3)
  with pytest.raises(ValueError, match="epsilon"):
    jaxobj.sinkhorn_divergence(x, y, epsilon=0.0)
  with pytest.raises(ValueError, match="x\\[..., None\\]"):
    jaxobj.sinkhorn_divergence(jnp.zeros(4), jnp.zeros(4))
