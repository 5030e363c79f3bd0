"""Soft sorting and ranking (Blondel et al. 2020) and the losses built on them.

References are float64 NumPy: pool-adjacent-violators written from the
definition of isotonic regression, the variational inequality that
characterizes a projection onto the permutahedron (checked at every vertex),
SciPy's Spearman coefficient and hard top-k ranks. The contract is covered by
the registry-wide tests.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxobj
from jaxobj._src import soft_sort as ops

RNG = np.random.default_rng(19)


def pav_reference(s, w, regularization):
  """Non-increasing isotonic regression by PAV, float64, one 1-d list."""
  blocks = []  # [stat_a, stat_b, size]
  for si, wi in zip(s, w):
    blocks.append([si - wi, 1.0, 1] if regularization == "l2" else [si, wi, 1])
    while len(blocks) > 1:
      (a1, b1, n1), (a2, b2, n2) = blocks[-2], blocks[-1]
      if regularization == "l2":
        prev, cur, merged = a1 / b1, a2 / b2, [a1 + a2, b1 + b2, n1 + n2]
      else:
        prev, cur = a1 - b1, a2 - b2
        merged = [np.logaddexp(a1, a2), np.logaddexp(b1, b2), n1 + n2]
      if prev > cur:
        break
      blocks[-2:] = [merged]
  value = (lambda a, b: a / b) if regularization == "l2" else (lambda a, b: a - b)
  return np.concatenate([np.full(n, value(a, b)) for a, b, n in blocks])


def hard_ranks(x):
  return scipy.stats.rankdata(x, axis=-1)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_pav_matches_a_float64_numpy_pav(regularization):
  s = RNG.normal(size=(5, 9)) * 3.0
  s[0, 3:6] = s[0, 2]  # ties
  w = np.sort(RNG.normal(size=(5, 9)), axis=-1)[:, ::-1]
  want = np.stack([pav_reference(a, b, regularization) for a, b in zip(s, w)])
  with jax.enable_x64(True):
    got = np.asarray(ops.isotonic(jnp.asarray(s), jnp.asarray(w), regularization))
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  assert np.all(np.diff(got, axis=-1) <= 1e-12)  # non-increasing


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_ranks_and_sorts_are_the_projections_onto_the_permutahedron(regularization):
  """A point y of the permutahedron is the projection of z iff the first-order
  condition <grad, p - y> >= 0 holds at every vertex p (every permutation);
  grad = y - z for l2, log y - z for the KL projection of e^z."""
  n, eps = 5, 0.7
  theta = RNG.normal(size=n)
  rho = np.arange(n, 0, -1.0)
  vertices = np.array(list(itertools.permutations(rho)))
  with jax.enable_x64(True):
    ranks = np.asarray(
      jaxobj.soft_rank(theta, regularization_strength=eps, regularization=regularization)
    )
    sort = np.asarray(
      jaxobj.soft_sort(
        theta, regularization_strength=eps, regularization=regularization, descending=True
      )
    )
  np.testing.assert_allclose(ranks.sum(), rho.sum(), rtol=1e-12)
  if regularization == "l2":
    gaps = (vertices - ranks) @ (ranks - theta / eps)
    sort_vertices = np.array(list(itertools.permutations(theta)))
    sort_gaps = (sort_vertices - sort) @ (sort - rho / eps)
    np.testing.assert_allclose(sort.sum(), theta.sum(), rtol=1e-12)
  else:
    gaps = (vertices - ranks) @ (np.log(ranks) - theta / eps)
    e = np.exp(sort)  # log of the KL projection of e^{rho/eps} onto P(e^theta)
    sort_vertices = np.array(list(itertools.permutations(np.exp(theta))))
    sort_gaps = (sort_vertices - e) @ (sort - rho / eps)
    np.testing.assert_allclose(e.sum(), np.exp(theta).sum(), rtol=1e-12)
  assert gaps.min() >= -1e-9 and sort_gaps.min() >= -1e-9
  assert np.all(np.diff(sort) <= 1e-12)  # sorted, descending


@jax.jit
def _limits(theta):
  """Every operator and direction at a small and a large eps, in one program."""
  out = {}
  for reg in ("l2", "kl"):
    for d in (False, True):
      kw = dict(regularization=reg, descending=d, regularization_strength=1e-3)
      out[f"{reg}{d}"] = (jaxobj.soft_rank(theta, **kw), jaxobj.soft_sort(theta, **kw))
  out["far"] = jaxobj.soft_rank(theta, regularization_strength=1e4)
  out["axis"] = jaxobj.soft_rank(theta.T, axis=0, regularization_strength=0.3)
  out["last"] = jaxobj.soft_rank(theta, regularization_strength=0.3)
  return out


def test_hard_limits_as_the_regularization_goes_to_zero():
  theta = RNG.normal(size=(3, 8)).astype(np.float32)
  out = _limits(theta)
  for reg in ("l2", "kl"):
    for descending in (False, True):
      ranks, sort = out[f"{reg}{descending}"]
      want = hard_ranks(-theta if descending else theta)
      np.testing.assert_allclose(ranks, want, atol=2e-3)
      np.testing.assert_allclose(
        sort, -np.sort(-theta) if descending else np.sort(theta), atol=1e-5
      )
  # Far from the limit, ranks move towards the mean rank (n + 1) / 2.
  np.testing.assert_allclose(out["far"], 4.5, atol=1e-3)
  # Along another axis, as along the last.
  np.testing.assert_allclose(out["axis"], out["last"].T, rtol=1e-6)


def _bundle(sizes, regularization):
  """Every differentiable path of the module as one function of one flat vector."""
  labels = jnp.array([0, 3, 1, 4])
  target = jnp.asarray(np.random.default_rng(3).normal(size=(3, 6)))
  kw = dict(regularization=regularization)

  def f(flat):
    theta, pred, logits, eps = jnp.split(flat, np.cumsum(sizes)[:-1])
    theta, pred, logits = theta.reshape(2, 6), pred.reshape(3, 6), logits.reshape(4, 5)
    eps = eps[0]
    return jnp.concatenate(
      [
        jaxobj.soft_rank(theta, regularization_strength=eps, **kw).ravel(),
        jaxobj.soft_sort(theta, regularization_strength=eps, descending=True, **kw).ravel(),
        jaxobj.spearman_loss(pred, target, regularization_strength=eps, **kw)[None],
        jaxobj.soft_top_k_loss(logits, labels, k=2, regularization_strength=eps, **kw)[None],
      ]
    )

  return f


def test_gradients_match_float64_finite_differences():
  """The Jacobian of soft ranks, soft sorts and both losses, in the inputs and
  in eps, for both regularizations, against central differences (one program)."""
  sizes = (12, 18, 20, 1)
  x = np.concatenate([RNG.normal(size=12), RNG.normal(size=18), 2.0 * RNG.normal(size=20), [0.5]])
  with jax.enable_x64(True):
    fs = [_bundle(sizes, "l2"), _bundle(sizes, "kl")]
    f = lambda x: jnp.concatenate([g(x) for g in fs])
    h = 1e-6

    @jax.jit
    def jacobians(x):
      steps = h * jnp.eye(x.size)
      shifted = jax.vmap(f)(jnp.concatenate([x + steps, x - steps]))  # one copy of f
      central = (shifted[: x.size] - shifted[x.size :]) / (2 * h)
      return jax.jacrev(f)(x), central.T

    rev, want = jacobians(x)
  rev, want = np.asarray(rev), np.asarray(want)
  np.testing.assert_allclose(rev, want, atol=1e-7 * np.abs(want).max() + 1e-6)
  assert np.abs(rev).max() > 0


def test_spearman_loss_is_one_minus_spearmans_coefficient_in_the_hard_limit():
  pred = RNG.normal(size=(4, 7)).astype(np.float32)
  target = np.round(pred + RNG.normal(size=(4, 7)), 0).astype(np.float32)  # with ties
  got = jaxobj.spearman_loss(pred, target, regularization_strength=1e-4, reduction="none")
  want = [1.0 - scipy.stats.spearmanr(p, t).statistic for p, t in zip(pred, target)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # Large eps: soft ranks are affine in the predictions, so Pearson's correlation.
  far = jaxobj.spearman_loss(pred, target, regularization_strength=10.0, reduction="none")
  want = [1.0 - scipy.stats.pearsonr(p, hard_ranks(t)).statistic for p, t in zip(pred, target)]
  np.testing.assert_allclose(far, want, rtol=1e-4, atol=1e-5)
  # A constant target list has no correlation: loss 1, zero gradient.
  flat = np.ones((1, 7), np.float32)
  assert float(jaxobj.spearman_loss(pred[:1], flat)) == 1.0
  g = jax.grad(lambda p: jaxobj.spearman_loss(p, flat))(pred[:1])
  assert np.all(g == 0.0)


def test_soft_top_k_is_the_hinge_on_the_hard_rank_in_the_limit():
  logits = RNG.normal(size=(6, 5)).astype(np.float32)
  labels = RNG.integers(0, 5, 6)
  ranks = hard_ranks(-logits)[np.arange(6), labels]
  for k in (1, 3):
    got = jaxobj.soft_top_k_loss(
      logits, labels, k=k, regularization_strength=1e-4, reduction="none"
    )
    np.testing.assert_allclose(got, np.maximum(ranks - k, 0.0), atol=1e-3)
    # Zero exactly when the true class is in the top k.
    assert np.array_equal(np.asarray(got) == 0, ranks <= k)
  # -inf classes rank last: the loss over the finite classes alone.
  masked = logits.copy()
  masked[:, 4] = -np.inf
  keep = labels != 4
  got = jaxobj.soft_top_k_loss(masked[keep], labels[keep], k=2, reduction="none")
  want = jaxobj.soft_top_k_loss(logits[keep, :4], labels[keep], k=2, reduction="none")
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  g = jax.grad(lambda x: jaxobj.soft_top_k_loss(x, labels[keep], k=2))(masked[keep])
  assert np.all(np.isfinite(g)) and np.all(g[:, 4] == 0.0)


def test_bad_arguments_are_refused_with_the_fix():
  x = jnp.ones((2, 3))
  with pytest.raises(ValueError, match="regularization.*'l2', 'kl'"):
    jaxobj.soft_rank(x, regularization="entropy")
  with pytest.raises(ValueError, match="regularization_strength"):
    jaxobj.soft_sort(x, regularization_strength=0.0)
  with pytest.raises(ValueError, match="k must satisfy"):
    jaxobj.soft_top_k_loss(x, jnp.array([0, 1]), k=0)
  with pytest.raises(TypeError, match="values"):
    jaxobj.soft_rank(jnp.ones(3, jnp.int32))
