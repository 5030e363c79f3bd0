"""Dynamic soft margin and manifold losses against float64 NumPy references
written from the papers' formulas (Zhang & Rusinkiewicz 2019; Aziere &
Todorovic 2019), with the histogram carried over several steps, gradients,
jit, vmap and the extremes of the random-walk graph."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj

# --------------------------------------------------------------------------
# References.


def _unit(x):
  n = np.linalg.norm(x, axis=-1, keepdims=True)
  return np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.0)


def _triplets(x, y):
  """``[(anchor, d_ap - d_an)]`` over every valid triplet, on unit rows."""
  z = _unit(np.asarray(x, np.float64))
  d = np.linalg.norm(z[:, None] - z[None, :], axis=-1)
  out = []
  for a in range(len(y)):
    for p in range(len(y)):
      for n in range(len(y)):
        if p != a and y[p] == y[a] and y[n] != y[a]:
          out.append((a, d[a, p] - d[a, n]))
  return out


def _np_update(h, x, y, momentum, min_val, raw_counts=False):
  """The paper's running histogram; ``raw_counts``: the batch's counts are
  added unnormalised, as pytorch-metric-learning does."""
  bins = len(h)
  delta = 2 * abs(min_val) / bins
  counts = np.zeros(bins)
  trip = _triplets(x, y)
  for _, v in trip:
    u = min(max((v - min_val) / delta, 0.0), bins - 1.0)
    i = min(int(np.floor(u)), max(bins - 2, 0))
    counts[i] += 1 - (u - i)
    counts[min(i + 1, bins - 1)] += u - i
  if not trip:
    return h / h.sum() if h.sum() > 0 else h
  if raw_counts:
    m = momentum if h.sum() > 0 else 1.0
    new = (1 - m) * h + m * counts
    return new / new.sum()
  if h.sum() == 0:
    return counts / len(trip)
  return (1 - momentum) * h / h.sum() + momentum * counts / len(trip)


def _np_dsm_loss(x, y, h, min_val):
  """Per-anchor mean of CDF(x) * x, and the mean over all triplets."""
  bins = len(h)
  delta = 2 * abs(min_val) / bins
  cdf = np.cumsum(h) / h.sum() if h.sum() > 0 else np.zeros(bins)
  per, count = np.zeros(len(y)), np.zeros(len(y))
  for a, v in _triplets(x, y):
    k = min(max(int(np.floor((v - min_val) / delta)), 0), bins - 1)
    per[a] += cdf[k] * v
    count[a] += 1
  return per / np.maximum(count, 1), count


def _np_manifold(x, y, proxies, alpha=0.8, margin=5e-4, lam_int=1.0, lam_c=1.0, tau=0.5):
  nodes = _unit(np.concatenate([x, proxies]).astype(np.float64))
  n, m = len(x), len(proxies)
  w = np.exp(np.maximum(nodes @ nodes.T, 0.0) / tau)
  np.fill_diagonal(w, 0.0)
  deg = w.sum(1)
  s_bar = w / np.sqrt(deg[:, None] * deg[None, :])
  f = (1 - alpha) * np.linalg.inv(np.eye(n + m) - alpha * s_bar)

  def g(scores):
    out = np.zeros(n)
    for i in range(n):
      z = scores[i] - scores[i, y[i]] + margin
      out[i] = np.log1p(sum(np.exp(z[k]) for k in range(m) if k != y[i] and z[k] >= 0))
    return out

  fe, fp = f[:n], f[n:]
  cos = (fe @ fp.T) / np.outer(np.linalg.norm(fe, axis=1), np.linalg.norm(fp, axis=1))
  return lam_int * g(f[:n, n:]) + lam_c * g(cos)


# --------------------------------------------------------------------------
# Dynamic soft margin. One jitted function gives every checked quantity, so
# the tests compile it once per shape and dtype.


@jax.jit
def _dsm(h, x, y, mask, momentum, min_val, weights):
  """The next histogram, the per-anchor losses and weighted mean with it; the
  summed loss with ``h`` itself and its gradients in ``x`` and ``h``."""
  kw = dict(min_val=min_val, where=mask)
  new = jaxobj.dynamic_soft_margin_update(h, x, y, momentum=momentum, **kw)
  per = jaxobj.dynamic_soft_margin_loss(x, y, new, reduction="none", **kw)
  mean = jaxobj.dynamic_soft_margin_loss(x, y, new, weights=weights, **kw)

  def with_h(z, hh):
    return jaxobj.dynamic_soft_margin_loss(z, y, hh, reduction="sum", **kw)

  value, (gx, gh) = jax.value_and_grad(with_h, argnums=(0, 1))(x, h)
  return new, per, mean, value, gx, gh


def _batch(rng, n=6, dim=3, classes=3):
  x = rng.standard_normal((n, dim))
  y = rng.permutation(np.arange(n) % classes).astype(np.int32)
  return x, y


def _check_directional_derivative(value_at, x, grad, rng, eps=1e-6):
  """Central differences of ``value_at`` along two random directions."""
  for _ in range(2):
    v = rng.standard_normal(x.shape)
    fd = (value_at(x + eps * v) - value_at(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.sum(np.asarray(grad) * v), fd, rtol=1e-6, atol=1e-9)


def test_dynamic_soft_margin_several_steps_against_reference():
  """Four steps with the histogram carried, both momentum conventions, and
  the gradient in the embeddings (float64)."""
  rng = np.random.default_rng(0)
  ones = np.ones(6, bool)
  with jax.enable_x64(True):
    for raw_counts in (False, True):
      h_ref = np.zeros(10)
      h = jaxobj.dynamic_soft_margin_init(10).astype(jnp.float64)
      for _ in range(4):
        x, y = _batch(rng)
        momentum = 0.3
        if raw_counts:  # pytorch-metric-learning's convention, mapped to ours
          t = len(_triplets(x, y))
          momentum = 0.3 * t / (1 - 0.3 + 0.3 * t)
        want_prev, _ = _np_dsm_loss(x, y, h_ref, -2.0)
        h_ref = _np_update(h_ref, x, y, 0.3, -2.0, raw_counts=raw_counts)
        want, count = _np_dsm_loss(x, y, h_ref, -2.0)
        prev = h
        h, per, mean, value, gx, gh = _dsm(prev, x, y, ones, momentum, -2.0, count)
        np.testing.assert_allclose(np.asarray(h), h_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(per), want, rtol=1e-10, atol=1e-12)
        # weights = triplet counts: the mean over the batch's triplets.
        np.testing.assert_allclose(float(mean), np.sum(want * count) / count.sum(), rtol=1e-10)
        np.testing.assert_allclose(float(value), np.sum(want_prev), rtol=1e-10, atol=1e-12)
        assert np.all(np.asarray(gh) == 0)  # the histogram only weighs
      assert abs(float(h.sum()) - 1.0) < 1e-12

      def value_at(z, prev=prev, y=y, count=count):
        return float(_dsm(prev, z, y, ones, 0.3, -2.0, count)[3])

      _check_directional_derivative(value_at, x, gx, rng)


def test_dynamic_soft_margin_vmap_and_jit():
  """vmap over independent (histogram, batch) pairs == one call each."""
  rng = np.random.default_rng(1)
  xs = rng.standard_normal((2, 6, 3)).astype(np.float32)
  ys = np.stack([_batch(rng)[1] for _ in range(2)])
  hs = np.stack([rng.uniform(0.1, 1.0, 10), np.zeros(10)]).astype(np.float32)
  ones, w = np.ones(6, bool), np.ones(6, np.float32)
  got = jax.vmap(_dsm, in_axes=(0, 0, 0, None, None, None, None))(hs, xs, ys, ones, 0.1, -2.0, w)
  for i in range(2):
    want = _dsm(hs[i], xs[i], ys[i], ones, 0.1, -2.0, w)
    for a, b in zip(got, want):
      np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_dynamic_soft_margin_extremes():
  # x = d_ap - d_an = 2 (antipodal positive, identical negative) is past the
  # last grid point: its mass goes to the last bin, where the CDF is 1.
  x = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]], np.float32)
  y = np.array([0, 0, 1], np.int32)
  ones, w = np.ones(3, bool), np.ones(3, np.float32)
  h, per, _, _, _, _ = _dsm(np.zeros(10, np.float32), x, y, ones, 0.01, -2.0, w)
  want = np.zeros(10)
  want[[9, 5]] = 0.5  # anchor 0: x = 2 - 0; anchor 1: x = 2 - 2 = 0, grid point 5
  np.testing.assert_allclose(np.asarray(h), want, atol=1e-6)
  np.testing.assert_allclose(np.asarray(per), [2.0, 0.0, 0.0], atol=1e-6)
  # Huge rows are normalised without overflow.
  big = _dsm(np.zeros(10, np.float32), x * 1e30, y, ones, 0.01, -2.0, w)
  np.testing.assert_allclose(np.asarray(big[1]), np.asarray(per), atol=1e-6)
  # An empty histogram weighs everything by 0, with zero gradients; a batch
  # without a triplet leaves the histogram (normalised) as it was.
  prev = np.zeros(10, np.float32)
  prev[:2] = [1.0, 3.0]
  mask = np.array([True, True, False])
  kept, _, _, value, gx, _ = _dsm(prev, x, y, mask, 0.5, -2.0, w)
  np.testing.assert_allclose(np.asarray(kept)[:2], [0.25, 0.75])
  assert float(value) == 0.0
  _, _, _, value, gx, _ = _dsm(np.zeros(10, np.float32), x, y, ones, 0.5, -2.0, w)
  assert float(value) == 0.0 and np.all(np.asarray(gx) == 0)


def test_dynamic_soft_margin_errors():
  x, y = jnp.ones((3, 2)), jnp.array([0, 0, 1])
  with pytest.raises(ValueError, match=r"histogram\.shape=\(2, 5\)"):
    jaxobj.dynamic_soft_margin_loss(x, y, jnp.ones((2, 5)))
  with pytest.raises(ValueError, match="min_val"):
    jaxobj.dynamic_soft_margin_loss(x, y, jnp.ones(5), min_val=0.0)
  with pytest.raises(ValueError, match="momentum"):
    jaxobj.dynamic_soft_margin_update(jnp.ones(5), x, y, momentum=1.5)
  with pytest.raises(ValueError, match="num_bins"):
    jaxobj.dynamic_soft_margin_init(0)
  with pytest.raises(TypeError, match="histogram"):
    jaxobj.dynamic_soft_margin_loss(x, y, jnp.ones(5, jnp.int32))


# --------------------------------------------------------------------------
# Manifold loss: one jitted function for values and gradients.


@jax.jit
def _manifold(x, y, p, mask, alpha, margin, lambda_int, lambda_c, temperature):
  kw = dict(alpha=alpha, margin=margin, lambda_int=lambda_int, lambda_c=lambda_c)
  kw.update(temperature=temperature, where=mask)

  def total(a, b):
    per = jaxobj.manifold_loss(a, y, b, reduction="none", **kw)
    return jnp.sum(per), per

  (_, per), grads = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(x, p)
  return per, grads


DEFAULTS = (0.8, 5e-4, 1.0, 1.0, 0.5)


def _manifold_data(rng, n=6, k=3, dim=6):
  return (
    rng.standard_normal((n, dim)),
    rng.integers(0, k, n).astype(np.int32),
    rng.standard_normal((k, dim)),
  )


def test_manifold_loss_against_reference_and_gradients():
  rng = np.random.default_rng(2)
  ones = np.ones(6, bool)
  with jax.enable_x64(True):
    x, y, p = _manifold_data(rng)
    settings = (0.6, 0.01, 0.7, 1.3, 0.5)
    per, (gx, gp) = _manifold(x, y, p, ones, *settings)
    want = _np_manifold(x, y, p, *settings)
    np.testing.assert_allclose(np.asarray(per), want, rtol=1e-10, atol=1e-12)
    assert np.sum(want > 0) >= 3  # the data exercises the violated terms
    # Context only (the peer's lambdaC = inf); a small temperature (no overflow).
    per, _ = _manifold(x, y, p, ones, 0.8, 5e-4, 0.0, 1.0, 0.01)
    want = _np_manifold(x, y, p, lam_int=0.0, tau=0.01)
    np.testing.assert_allclose(np.asarray(per), want, rtol=1e-9, atol=1e-12)

    def at_x(z):
      return float(np.sum(_manifold(z, y, p, ones, *settings)[0]))

    def at_p(z):
      return float(np.sum(_manifold(x, y, z, ones, *settings)[0]))

    _check_directional_derivative(at_x, x, gx, rng)
    _check_directional_derivative(at_p, p, gp, rng)


def test_manifold_loss_graph_extremes():
  rng = np.random.default_rng(3)
  x, y, p = _manifold_data(rng)
  x32, p32 = x.astype(np.float32), p.astype(np.float32)
  settings = (0.8, 0.02, 1.0, 1.0, 0.5)
  # All rows but one masked (NaN in the masked ones): the graph is that one
  # row and the proxies, as if the others never were.
  mask = np.zeros(6, bool)
  mask[2] = True
  bad = np.where(mask[:, None], x32, np.nan).astype(np.float32)
  per, (gx, gp) = _manifold(bad, y, p32, mask, *settings)
  want = _np_manifold(x[2:3], y[2:3], p, margin=0.02)
  np.testing.assert_allclose(np.asarray(per)[2], want[0], rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(per)[~mask] == 0)
  assert np.all(np.isfinite(np.asarray(gx))) and np.all(np.isfinite(np.asarray(gp)))
  # Every row masked: 0 with zero gradients (the proxies alone form the graph).
  per, (gx, gp) = _manifold(x32, y, p32, np.zeros(6, bool), *settings)
  assert np.all(np.asarray(per) == 0) and np.all(np.asarray(gp) == 0)
  # Near-zero similarities: orthogonal and zero rows (affinity e^0 = 1).
  ortho = np.zeros((6, 6), np.float32)
  ortho[np.arange(5), np.arange(5)] = 1.0  # row 5 is a zero vector
  po = np.zeros((3, 6), np.float32)
  po[[0, 1, 2], [5, 4, 3]] = 1.0
  full = np.ones(6, bool)
  per, _ = _manifold(ortho, y, po, full, *settings)
  np.testing.assert_allclose(np.asarray(per), _np_manifold(ortho, y, po, margin=0.02), atol=1e-6)
  # A label outside [0, K) that is not masked gives NaN, in its row only.
  bad_y = y.copy()
  bad_y[0] = 3
  per, _ = _manifold(x32, bad_y, p32, full, *settings)
  assert np.isnan(np.asarray(per)[0]) and np.all(np.isfinite(np.asarray(per)[1:]))
  # Huge and tiny embeddings: normalised without overflow or underflow.
  ref, _ = _manifold(x32, y, p32, full, *settings)
  per, _ = _manifold(x32 * 1e30, y, p32 * 1e-30, full, *settings)
  np.testing.assert_allclose(np.asarray(per), np.asarray(ref), rtol=1e-5, atol=1e-6)
  # bf16 inputs: computed in float32, the value of the rounded inputs.
  xb, pb = jnp.asarray(x32, jnp.bfloat16), jnp.asarray(p32, jnp.bfloat16)
  got = jaxobj.manifold_loss(xb, y, pb, margin=0.02, reduction="none")
  assert got.dtype == jnp.float32
  want = _np_manifold(np.asarray(xb, np.float64), y, np.asarray(pb, np.float64), margin=0.02)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_manifold_loss_errors():
  x, y, p = jnp.ones((3, 2)), jnp.array([0, 1, 0]), jnp.ones((2, 2))
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.manifold_loss(x, y, p, alpha=1.0)
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.manifold_loss(x, y, p, temperature=0.0)
  with pytest.raises(ValueError, match=r"proxies\.shape=\(2, 3\)"):
    jaxobj.manifold_loss(x, y, jnp.ones((2, 3)))
