"""Metric surrogates: AUC-margin, Smooth-AP and soft F-beta against their metrics.

References are float64 NumPy: the AUC-margin objective and its saddle point
in closed form, average precision and F-beta computed exactly. Each surrogate
is checked equal to its metric where it is tight (saturated logits, a small
temperature). The contract is covered by the registry-wide tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxobj
from jaxobj import objective as jo

RNG = np.random.default_rng(2021)


def auc_margin_reference(h, y, a, b, alpha, m, p):
  pos, neg = y == 1, y == 0
  return (
    (1 - p) * (h - a) ** 2 * pos
    + p * (h - b) ** 2 * neg
    + 2 * alpha * (p * (1 - p) * m + p * h * neg - (1 - p) * h * pos)
    - p * (1 - p) * alpha**2
  )


def average_precision(s, y):
  """Exact AP of one list (no tied scores): mean over relevant items of precision at their rank."""
  keep = np.isfinite(s)
  s, rel = s[keep], y[keep] > 0
  order = np.argsort(-s)
  hits = rel[order]
  ranks = np.arange(1, len(s) + 1)
  return np.sum(np.cumsum(hits)[hits] / ranks[hits]) / hits.sum()


def test_auc_margin_values_match_the_formula():
  h = RNG.uniform(size=16)
  y = (RNG.uniform(size=16) < 0.3).astype(np.float64)
  kw = dict(a=0.7, b=0.2, alpha=0.3, margin=1.0, positive_fraction=0.3)
  got = jaxobj.auc_margin_loss(h.astype(np.float32), y, reduction="none", **kw)
  want = auc_margin_reference(h, y, 0.7, 0.2, 0.3, 1.0, 0.3)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_auc_margin_params_learned_in_an_objective_reach_the_saddle_point():
  """a, b descend and alpha ascends (through auc_margin_alpha) with one optimizer:
  they reach the closed-form saddle point, where the value is p(1 - p) times
  the classes' variances plus the squared hinge on the margin."""
  n, p = 40, 0.25
  y = np.zeros(n, np.float32)
  y[: int(n * p)] = 1.0  # the batch's positive fraction is p
  h = np.where(y == 1, RNG.normal(0.6, 0.1, n), RNG.normal(0.3, 0.1, n)).astype(np.float32)
  auc = jo.term(
    jaxobj.auc_margin_loss,
    "scores",
    "labels",
    a=jo.learnable(0.0),
    b=jo.learnable(0.0),
    alpha=jo.learnable(0.0, transform=jaxobj.auc_margin_alpha),
    positive_fraction=p,
    name="auc",
  )
  opt = optax.sgd(0.5)

  @jax.jit
  def train(params):
    def step(carry, _):
      params, state = carry
      grads = jax.grad(lambda q: auc.apply(q, scores=h, labels=y)[0])(params)
      updates, state = opt.update(grads, state)
      return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=3000)
    return params, auc.apply(params, scores=h, labels=y)[0]

  params, value = train(auc.init())
  pos, neg = h[y == 1].astype(np.float64), h[y == 0].astype(np.float64)
  gap = 1.0 - (pos.mean() - neg.mean())
  assert gap > 0.5  # the margin is not met: alpha is interior
  learned = params["auc"]
  np.testing.assert_allclose(learned["a"], pos.mean(), atol=1e-3)
  np.testing.assert_allclose(learned["b"], neg.mean(), atol=1e-3)
  np.testing.assert_allclose(jaxobj.auc_margin_alpha(learned["alpha"]), gap, atol=1e-3)
  saddle = p * (1 - p) * (pos.var() + neg.var() + gap**2)
  np.testing.assert_allclose(value, saddle, rtol=1e-3)


def test_auc_margin_is_zero_exactly_when_the_margin_separates_the_classes():
  """Where the surrogate is tight: two-point scores. At the saddle point the
  loss is p(1 - p) max(0, m - gap)^2, zero iff the gap meets the margin (then AUC = 1)."""
  y = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
  p = 0.25
  for gap in (0.5, 1.0, 1.5):
    h = np.where(y == 1, gap, 0.0).astype(np.float32)
    alpha = max(0.0, 1.0 - gap)
    value = jaxobj.auc_margin_loss(h, y, a=gap, b=0.0, alpha=alpha, positive_fraction=p)
    np.testing.assert_allclose(value, p * (1 - p) * max(0.0, 1.0 - gap) ** 2, atol=1e-7)


@jax.jit
def _ap_cases(s, y, s_masked):
  return {
    "tight": jaxobj.smooth_ap_loss(s, y, temperature=1e-4, reduction="none"),
    "masked": jaxobj.smooth_ap_loss(s_masked, y, temperature=1e-4, reduction="none"),
    "soft": jaxobj.smooth_ap_loss(s, y, temperature=0.5, reduction="none"),
  }


def test_smooth_ap_is_one_minus_average_precision_at_a_small_temperature():
  s = RNG.normal(size=(6, 9)).astype(np.float32)
  y = (RNG.uniform(size=(6, 9)) < 0.4).astype(np.float32)
  y[:, 0] = 1.0
  masked = s.copy()
  masked[:, -2:] = np.where(y[:, -2:] > 0, masked[:, -2:], -np.inf)  # unranked negatives
  out = _ap_cases(s, y, masked)
  want = [1 - average_precision(a, b) for a, b in zip(s, y)]
  np.testing.assert_allclose(out["tight"], want, atol=1e-5)
  want = [1 - average_precision(a, b) for a, b in zip(masked, y)]
  np.testing.assert_allclose(out["masked"], want, atol=1e-5)
  soft = np.asarray(out["soft"])
  assert np.all((soft > 0) & (soft < 1)) and not np.allclose(soft, out["tight"], atol=1e-2)
  # A list without a relevant item is left out of the mean.
  y_none = y.copy()
  y_none[0] = 0.0
  mean = jaxobj.smooth_ap_loss(s, y_none, temperature=1e-4)
  want = np.mean([1 - average_precision(a, b) for a, b in zip(s[1:], y[1:])])
  np.testing.assert_allclose(mean, want, atol=1e-5)


def fbeta(pred, y, beta):
  tp, fp, fn = np.sum(pred * y), np.sum(pred * (1 - y)), np.sum((1 - pred) * y)
  denominator = (1 + beta**2) * tp + beta**2 * fn + fp
  return 1.0 if denominator == 0 else (1 + beta**2) * tp / denominator


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_soft_fbeta_is_one_minus_fbeta_at_saturated_logits(beta):
  y = (RNG.uniform(size=(8, 6)) < 0.5).astype(np.float32)
  pred = (RNG.uniform(size=(8, 6)) < 0.5).astype(np.float32)
  y[0], pred[0] = 0.0, 0.0  # nothing to find, nothing predicted: F = 1
  logits = np.where(pred > 0, 200.0, -200.0).astype(np.float32)  # probabilities 0 and 1
  got = jaxobj.soft_fbeta_loss(logits, y, beta=beta, reduction="none")
  want = [1 - fbeta(a, b, beta) for a, b in zip(pred, y)]
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Macro F over the batch: the same function on the transposed arrays.
  macro = jaxobj.soft_fbeta_loss(logits.T, y.T, beta=beta)
  np.testing.assert_allclose(
    macro, np.mean([1 - fbeta(a, b, beta) for a, b in zip(pred.T, y.T)]), atol=1e-6
  )


def test_gradients_match_float64_finite_differences():
  """All three surrogates (and d / d their hyperparameters) in one program."""
  h = RNG.uniform(size=8)
  y_bin = np.array([1, 0, 0, 1, 0, 0, 1, 0], np.float64)
  s = RNG.normal(size=(2, 6))
  y_rank = np.array([[1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 0]], np.float64)
  x = RNG.normal(size=(3, 5))
  y_multi = (RNG.uniform(size=(3, 5)) < 0.5).astype(np.float64)
  sizes = np.cumsum([8, 12, 15, 3])
  with jax.enable_x64(True):

    def f(flat):
      hh, ss, xx, kw = jnp.split(flat, sizes[:-1])
      return jnp.stack(
        [
          jaxobj.auc_margin_loss(hh, y_bin, a=kw[0], b=kw[1], alpha=kw[2], positive_fraction=0.4),
          jaxobj.smooth_ap_loss(ss.reshape(2, 6), y_rank, temperature=kw[0]),
          jaxobj.soft_fbeta_loss(xx.reshape(3, 5), y_multi, beta=kw[1] + 0.5),
        ]
      )

    flat = np.concatenate([h, s.ravel(), x.ravel(), [0.3, 0.2, 0.4]])
    step = 1e-6

    @jax.jit
    def jacobians(flat):
      steps = step * jnp.eye(flat.size)
      shifted = jax.vmap(f)(jnp.concatenate([flat + steps, flat - steps]))
      return jax.jacrev(f)(flat), ((shifted[: flat.size] - shifted[flat.size :]) / (2 * step)).T

    got, want = (np.asarray(a) for a in jacobians(flat))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
