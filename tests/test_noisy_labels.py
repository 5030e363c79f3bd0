"""Noisy-label losses: values, gradients, the symmetric condition, and robustness.

References are float64 NumPy written from the papers' formulas. The
robustness test trains one linear model per loss on 40% symmetric label noise
in one compiled ``lax.scan``: the robust losses keep clean test accuracy where
cross-entropy memorizes the wrong labels. The contract is covered by the
registry-wide tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxobj

K = 5
RNG = np.random.default_rng(2018)


def _log_softmax(x):
  m = np.max(x, -1, keepdims=True)
  z = x - m
  finite = np.isfinite(z)
  return z - np.log(np.sum(np.exp(np.where(finite, z, -np.inf)), -1, keepdims=True))


def reference(name, x, y, **kw):
  """float64 per-example values, from the papers' formulas; -inf logits are impossible classes."""
  lp = _log_softmax(x.astype(np.float64))
  p = np.exp(lp)
  possible = np.isfinite(lp)
  lp0 = np.where(possible, lp, 0.0)
  rows = np.arange(len(y))
  lpy, py = lp[rows, y], p[rows, y]
  A = kw.get("log_clip", -4.0)
  rce = -A * (1.0 - py)  # -sum_k p_k log q_k with log 0 := A

  def normalized(num):
    return num[rows, y] / np.sum(np.where(possible, num, 0.0), -1)

  gamma = kw.get("gamma", 0.5)
  focal = (1.0 - p) ** gamma * lp0
  alpha, beta = kw.get("alpha"), kw.get("beta")
  if name == "generalized_cross_entropy":
    q = kw.get("q", 0.7)
    return (1.0 - py**q) / q
  if name == "reverse_cross_entropy":
    return rce
  if name == "symmetric_cross_entropy":
    return (0.1 if alpha is None else alpha) * -lpy + (1.0 if beta is None else beta) * rce
  if name == "soft_bootstrap_loss":
    b = kw.get("beta", 0.95)
    target = b * np.eye(K)[y] + (1 - b) * p
    return -np.sum(target * lp0, -1)
  if name == "hard_bootstrap_loss":
    b = kw.get("beta", 0.8)
    target = b * np.eye(K)[y] + (1 - b) * np.eye(K)[np.argmax(p, -1)]
    return -np.sum(target * lp0, -1)
  if name == "normalized_cross_entropy":
    return normalized(lp0)
  if name == "normalized_focal_loss":
    return normalized(focal)
  if name == "nce_rce_loss":
    return (alpha or 1.0) * normalized(lp0) + (beta or 1.0) * rce
  if name == "nfl_rce_loss":
    return (alpha or 1.0) * normalized(focal) + (beta or 1.0) * rce
  raise KeyError(name)


CASES = [
  ("generalized_cross_entropy", {}),
  ("generalized_cross_entropy", {"q": 0.3}),
  ("generalized_cross_entropy", {"q": 1.0}),
  ("reverse_cross_entropy", {"log_clip": -2.0}),
  ("symmetric_cross_entropy", {}),
  ("symmetric_cross_entropy", {"alpha": 1.0, "beta": 0.5, "log_clip": -6.0}),
  ("soft_bootstrap_loss", {}),
  ("hard_bootstrap_loss", {"beta": 0.6}),
  ("normalized_cross_entropy", {}),
  ("normalized_focal_loss", {}),
  ("normalized_focal_loss", {"gamma": 2.0}),
  ("nce_rce_loss", {"alpha": 10.0, "beta": 0.1}),
  ("nfl_rce_loss", {}),
]


@pytest.fixture(scope="module")
def data():
  x = (3.0 * RNG.normal(size=(12, K))).astype(np.float32)
  y = RNG.integers(0, K, 12)
  x[:4, 3] = -np.inf  # an impossible class (never the label)
  y[:4] = np.where(y[:4] == 3, 0, y[:4])
  x[4] *= 30.0  # nearly one-hot
  return x, y


@pytest.mark.parametrize(("name", "kw"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_values_match_float64_references(data, name, kw):
  x, y = data
  got = getattr(jaxobj, name)(x, y, reduction="none", **kw)
  np.testing.assert_allclose(got, reference(name, x, y, **kw), rtol=2e-5, atol=2e-6)


def test_limits_of_the_generalized_cross_entropy(data):
  x, y = data
  ce = jaxobj.softmax_cross_entropy_with_integer_labels(x, y, reduction="none")
  gce = lambda q: jaxobj.generalized_cross_entropy(x, y, q=q, reduction="none")  # noqa: E731
  np.testing.assert_allclose(gce(0.0), ce, rtol=1e-6)  # q = 0 is the cross-entropy
  np.testing.assert_allclose(gce(1e-6), ce, rtol=1e-3, atol=1e-4)  # and its limit
  p_y = np.exp(-np.asarray(ce))
  np.testing.assert_allclose(gce(1.0), 1.0 - p_y, rtol=1e-5, atol=1e-6)  # q = 1: MAE / 2
  assert np.all(np.asarray(gce(0.7)) <= 1 / 0.7)  # bounded by 1 / q


def test_symmetric_losses_sum_to_a_constant_over_the_labels():
  """Ghosh et al.'s condition: sum_k L(x, k) = C for every x, checked exactly."""
  x = (4.0 * RNG.normal(size=(7, K))).astype(np.float32)
  x[0] = [1e4, 0.0, -1e4, 5.0, 2.0]  # saturated
  x[1, 2] = -np.inf  # an impossible class: C counts the possible ones
  every = jnp.asarray(np.repeat(np.arange(K)[None], 7, 0))

  @jax.jit
  def sums(x):
    xs = jnp.repeat(x[:, None], K, axis=1)  # [7, K labels, K classes]
    out = {}
    for name, kw in [
      ("normalized_cross_entropy", {}),
      ("normalized_focal_loss", {"gamma": 0.5}),
      ("normalized_focal_loss", {"gamma": 3.0}),
      ("reverse_cross_entropy", {"log_clip": -4.0}),
    ]:
      v = getattr(jaxobj, name)(xs, every, reduction="none", **kw)
      out[f"{name}{kw}"] = jnp.sum(jnp.where(jnp.isfinite(xs[..., 0, :]), v, 0.0), axis=-1)
    q = 0.7
    p = jax.nn.softmax(x, axis=-1)
    out["gce"] = jnp.sum(jaxobj.generalized_cross_entropy(xs, every, q=q, reduction="none"), -1)
    out["gce_bounds"] = (jnp.asarray(K - K ** (1 - q)) / q, jnp.asarray(K - 1) / q, p)
    return out

  out = sums(x)
  for name in ("normalized_cross_entropy{}", "normalized_focal_loss{'gamma': 0.5}"):
    np.testing.assert_allclose(out[name], 1.0, rtol=1e-6)
  np.testing.assert_allclose(out["normalized_focal_loss{'gamma': 3.0}"], 1.0, rtol=1e-6)
  possible = np.isfinite(x).sum(-1)
  np.testing.assert_allclose(
    out["reverse_cross_entropy{'log_clip': -4.0}"], 4.0 * (possible - 1), rtol=1e-6
  )
  # GCE is not symmetric, only bounded between its paper's two constants.
  low, high, _ = out["gce_bounds"]
  gce = np.asarray(out["gce"])[2:]
  assert np.all(gce >= float(low) - 1e-5) and np.all(gce <= float(high) + 1e-5)


def test_gradients_match_float64_finite_differences(data):
  """d loss / d logits of every loss (and d / d its first hyperparameter), one program."""
  x, y = data
  x = np.where(np.isfinite(x), x, -1e3)[5:].astype(np.float64)  # finite, unsaturated rows
  y = y[5:]
  with jax.enable_x64(True):

    def f(flat):
      z = flat[:-1].reshape(x.shape)
      h = flat[-1]
      # Every loss once, its first hyperparameter traced.
      vals = [
        jaxobj.generalized_cross_entropy(z, y, q=h),
        jaxobj.reverse_cross_entropy(z, y, log_clip=-4.0 * h),
        jaxobj.symmetric_cross_entropy(z, y, alpha=h),
        jaxobj.soft_bootstrap_loss(z, y, beta=h),
        jaxobj.hard_bootstrap_loss(z, y, beta=h),
        jaxobj.normalized_cross_entropy(z, y),
        jaxobj.normalized_focal_loss(z, y, gamma=h),
        jaxobj.nce_rce_loss(z, y, alpha=h),
        jaxobj.nfl_rce_loss(z, y, gamma=h),
      ]
      return jnp.stack(vals)

    flat = np.concatenate([x.ravel(), [0.6]])
    step = 1e-6

    @jax.jit
    def jacobians(flat):
      steps = step * jnp.eye(flat.size)
      shifted = jax.vmap(f)(jnp.concatenate([flat + steps, flat - steps]))
      return jax.jacrev(f)(flat), ((shifted[: flat.size] - shifted[flat.size :]) / (2 * step)).T

    got, want = (np.asarray(a) for a in jacobians(flat))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- robustness

ROBUST = {
  "generalized_cross_entropy": {},
  "symmetric_cross_entropy": {},
  "nce_rce_loss": {},
  "nfl_rce_loss": {},
}


def _noisy_task(seed):
  """4 Gaussian classes in 64 dimensions, 256 training points (a linear model
  can fit any labelling of them), 40% of the labels redrawn uniformly."""
  rng = np.random.default_rng(seed)
  k, d = 4, 64
  means = 0.5 * rng.normal(size=(k, d))

  def sample(n):
    y = rng.integers(0, k, n)
    return (means[y] + rng.normal(size=(n, d))).astype(np.float32), y

  (x, y), (x_test, y_test) = sample(256), sample(1024)
  noisy = np.where(rng.uniform(size=y.shape) < 0.4, rng.integers(0, k, y.shape), y)
  return x, y, noisy, x_test, y_test


def test_robust_losses_keep_clean_accuracy_under_symmetric_label_noise():
  """Cross-entropy fits the wrong labels (and loses clean test accuracy) while
  the bounded and symmetric losses, trained the same way, do not."""
  x, clean, noisy, x_test, y_test = _noisy_task(seed=0)
  names = ["softmax_cross_entropy_with_integer_labels", *ROBUST]
  fns = [getattr(jaxobj, n) for n in names]
  kws = [{}, *ROBUST.values()]
  opt = optax.adam(1e-2)

  @jax.jit
  def train(x, labels):
    w = jnp.zeros((len(fns), x.shape[1], 4))

    def step(carry, _):
      w, state = carry
      loss = lambda w: sum(f(x @ w[i], labels, **kw) for i, (f, kw) in enumerate(zip(fns, kws)))  # noqa: E731
      updates, state = opt.update(jax.grad(loss)(w), state)
      return (optax.apply_updates(w, updates), state), None

    (w, _), _ = jax.lax.scan(step, (w, opt.init(w)), None, length=150)
    test = jnp.mean(jnp.argmax(jnp.einsum("nd,ldk->lnk", x_test, w), -1) == y_test, -1)
    fit_noise = jnp.mean(jnp.argmax(jnp.einsum("nd,ldk->lnk", x, w), -1) == labels, -1)
    return test, fit_noise

  test, fit_noise = (np.asarray(a) for a in train(x, noisy))
  accuracy = dict(zip(names, test))
  ce = accuracy.pop(names[0])
  for name, acc in accuracy.items():
    assert acc >= ce + 0.08, f"{name}: clean test accuracy {acc:.3f}, cross-entropy {ce:.3f}"
  assert fit_noise[0] > 0.7  # cross-entropy fits most noisy labels: it memorizes
