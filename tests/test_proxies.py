"""Values and gradients of jaxobj.losses.proxies.

References are float64 NumPy loops written from the papers' formulas:
explicit differences for Proxy-NCA's distances, one proxy at a time for
Proxy-Anchor, arccos and the piecewise k for L-Softmax and SphereFace (the
losses use the Chebyshev form), arccos for the sub-centre ArcFace margin.
The contract itself (masks, weights, reductions, extremes, dtypes, vmap over
hyperparameters) is checked for every registered loss by the registry-wide
tests.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64
from scipy.special import log_softmax, logsumexp

import jaxobj

N, D, C, K = 6, 3, 3, 2
MASK = np.array([True, True, False, True, True, True])
RTOL, ATOL = 2e-5, 2e-5


def _unit(v):
  v = f64(v)
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------
# float64 references (one value per row, except Proxy-Anchor).


def ref_proxy_nca(x, y, p, scale=1.0, exclude_positive=False):
  out = []
  for xi, yi in zip(_unit(x), y):
    d = np.array([np.sum((xi - pk) ** 2) for pk in _unit(p)])
    keep = np.arange(len(p)) != yi if exclude_positive else np.ones(len(p), bool)
    out.append(logsumexp(-scale * d[keep]) + scale * d[yi])
  return np.array(out)


def ref_proxy_anchor(x, y, p, alpha=32.0, margin=0.1):
  """The paper's loss L and the per-row shares (times N) that average to it."""
  xs, ps, n = _unit(x), _unit(p), len(x)
  with_pos = [c for c in range(len(p)) if np.any(y == c)]
  total, share = 0.0, np.zeros(n)
  for c in with_pos:
    rows = np.flatnonzero(y == c)
    t = np.log1p(sum(np.exp(-alpha * (xs[i] @ ps[c] - margin)) for i in rows))
    total += t / len(with_pos)
    share[rows] += t / len(with_pos) / len(rows)
  for c in range(len(p)):
    rows = np.flatnonzero(y != c)
    t = np.log1p(sum(np.exp(alpha * (xs[i] @ ps[c] + margin)) for i in rows))
    total += t / len(p)
    share[rows] += t / len(p) / max(len(rows), 1)
  return total, n * share


def ref_soft_triple(x, y, w, scale=20.0, gamma=0.1, margin=0.01, tau=0.0):
  num_classes, k, _ = w.shape
  wu = _unit(w)
  out = []
  for xi, yi in zip(_unit(x), y):
    pooled = np.empty(num_classes)
    for c in range(num_classes):
      s = wu[c] @ xi
      a = np.exp(s / gamma)
      pooled[c] = (a / a.sum()) @ s
    logits = scale * pooled
    logits[yi] = scale * (pooled[yi] - margin)
    out.append(-log_softmax(logits)[yi])
  reg = 0.0
  for c in range(num_classes):
    for i in range(k):
      for j in range(i + 1, k):
        reg += math.sqrt(2.0 + 1e-5 - 2.0 * wu[c, i] @ wu[c, j])
  reg = reg / (num_classes * k * (k - 1)) if k > 1 else 0.0
  return np.array(out) + tau * reg


def ref_angular(x, y, w, margin=4, scale=1.0, softmax_weight=0.0, unit_centers=False):
  """L-Softmax (SphereFace with unit_centers): k from the angle itself."""
  w_norm = np.ones(len(w)) if unit_centers else np.linalg.norm(f64(w), axis=-1)
  out = []
  for xi, yi in zip(f64(x), y):
    cos = _unit(xi) @ _unit(w).T
    f = scale * np.linalg.norm(xi) * w_norm * cos
    theta = math.acos(min(max(cos[yi], -1.0), 1.0))
    k = min(math.floor(margin * theta / math.pi), margin - 1)
    psi = (-1) ** k * math.cos(margin * theta) - 2 * k
    target = (softmax_weight * cos[yi] + psi) / (1.0 + softmax_weight)
    f[yi] = scale * np.linalg.norm(xi) * w_norm[yi] * target
    out.append(-log_softmax(f)[yi])
  return np.array(out)


def ref_sub_center_arcface(x, y, w, margin=0.5, scale=64.0, margin_mode="threshold"):
  out = []
  for xi, yi in zip(_unit(x), y):
    cos = np.max(_unit(w) @ xi, axis=-1)
    c = cos[yi]
    phi = math.cos(math.acos(min(max(c, -1.0), 1.0)) + margin)
    if margin_mode == "threshold" and c <= math.cos(math.pi - margin):
      phi = c - margin * math.sin(margin)
    if margin_mode == "easy" and c <= 0:
      phi = c
    logits = scale * cos
    logits[yi] = scale * phi
    out.append(-log_softmax(logits)[yi])
  return np.array(out)


def ref_p2sgrad(x, y, w):
  cos = _unit(x) @ _unit(w).T
  return np.array([np.sum((c - np.eye(len(w))[k]) ** 2) for c, k in zip(cos, y)])


def ref_tcm(x, y, margin_plus=0.9, margin_minus=0.5, lambda_plus=1.0, lambda_minus=1.0):
  """The paper's TCM term over ordered pairs, and each anchor's share times B."""
  xs, n = _unit(x), len(x)
  pos, neg = [], []  # (anchor, term)
  for i in range(n):
    for j in range(n):
      s = xs[i] @ xs[j]
      if i != j and y[i] == y[j] and s <= margin_plus:
        pos.append((i, margin_plus - s))
      if y[i] != y[j] and s >= margin_minus:
        neg.append((i, s - margin_minus))
  shares = np.zeros(n)
  for pairs, lam in ((pos, lambda_plus), (neg, lambda_minus)):
    for i, t in pairs:
      shares[i] += lam * t / len(pairs)
  return shares.sum(), n * shares


def ref_instance(x, y, scale=64.0):
  xs = _unit(x)
  out = []
  for i in range(len(x)):
    logits = scale * (xs @ xs[i])
    out.append(logsumexp(logits) - logsumexp(logits[y == y[i]]))
  return np.array(out)


# --------------------------------------------------------------------------
# Inputs: random rows plus rows on and opposite a centre (cos = +-1).


def _inputs(seed, centers_shape):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((N, D)).astype(np.float32)
  w = rng.standard_normal(centers_shape).astype(np.float32)
  y = np.array([0, 2, 1, 1, 0, 1], np.int32)
  first = w[0] if w.ndim == 2 else w[0, 0]
  x[0] = 2.0 * first  # on its class's centre
  x[4] = -0.5 * first  # opposite it
  return x, y, w


def _flat(x):
  return np.asarray(x).reshape(-1)


VALUE_CASES = [
  ("proxy_nca_loss", {}, ref_proxy_nca),
  ("proxy_nca_loss", {"scale": 9.0, "exclude_positive": True}, ref_proxy_nca),
  ("soft_triple_loss", {}, ref_soft_triple),
  ("soft_triple_loss", {"scale": 5.0, "gamma": 0.5, "margin": 0.2, "tau": 0.2}, ref_soft_triple),
  ("large_margin_softmax_loss", {}, ref_angular),
  ("large_margin_softmax_loss", {"margin": 3, "scale": 2.0, "softmax_weight": 1.5}, ref_angular),
  ("sphereface_loss", {}, lambda *a, **k: ref_angular(*a, **k, unit_centers=True)),
  ("sphereface_loss", {"margin": 2}, lambda *a, **k: ref_angular(*a, **k, unit_centers=True)),
  ("sub_center_arcface_loss", {}, ref_sub_center_arcface),
  ("p2sgrad_loss", {}, ref_p2sgrad),
  (
    "sub_center_arcface_loss",
    {"margin": 1.2, "scale": 5.0, "margin_mode": "easy"},
    ref_sub_center_arcface,
  ),
  (
    "sub_center_arcface_loss",
    {"margin": 1.2, "scale": 5.0, "margin_mode": "plain"},
    ref_sub_center_arcface,
  ),
]
MULTI = {"soft_triple_loss", "sub_center_arcface_loss"}


def _centers_shape(name):
  return (C, K, D) if name in MULTI else (C, D)


@pytest.mark.parametrize(
  "case", VALUE_CASES, ids=[f"{n}-{'-'.join(map(str, kw.values()))}" for n, kw, _ in VALUE_CASES]
)
def test_values_against_float64_reference(case):
  name, kw, ref = case
  x, y, w = _inputs(1, _centers_shape(name))
  got = getattr(jaxobj, name)(x, y, w, **kw, reduction="none")
  close(got, ref(x, y, w, **kw), rtol=RTOL, atol=ATOL)


def test_proxy_anchor_is_the_papers_loss_and_its_shares():
  """Mean = L (class 2 has no positive, so |P+| = 2), none = N * shares,
  sum = N * L; a masked row leaves the batch."""
  x, y, w = _inputs(2, (C, D))
  y = np.array([0, 0, 1, 1, 0, 1], np.int32)
  for kw in ({}, {"alpha": 4.0, "margin": 0.3}):
    fn = jaxobj.proxy_anchor_loss
    total, shares = ref_proxy_anchor(x, y, w, **kw)
    close(fn(x, y, w, **kw), total, rtol=RTOL, atol=ATOL)
    close(fn(x, y, w, **kw, reduction="none"), shares, rtol=RTOL, atol=ATOL)
    close(fn(x, y, w, **kw, reduction="sum"), N * total, rtol=RTOL, atol=ATOL)
  masked_total, _ = ref_proxy_anchor(x[MASK], y[MASK], w)
  close(jaxobj.proxy_anchor_loss(x, y, w, where=MASK), masked_total, rtol=RTOL, atol=ATOL)


def test_threshold_consistent_margin_is_the_papers_term_and_its_shares():
  x, _, _ = _inputs(8, (C, D))
  y = np.array([0, 1, 0, 2, 1, 2], np.int32)
  fn = jaxobj.threshold_consistent_margin_loss
  for kw in (
    {},
    {"margin_plus": 0.3, "margin_minus": -0.2, "lambda_plus": 2.0, "lambda_minus": 0.5},
  ):
    total, shares = ref_tcm(x, y, **kw)
    assert total > 0
    close(fn(x, y, **kw), total, rtol=RTOL, atol=ATOL)
    close(fn(x, y, **kw, reduction="none"), shares, rtol=RTOL, atol=ATOL)
  close(fn(x, y, where=MASK), ref_tcm(x[MASK], y[MASK])[0], rtol=RTOL, atol=ATOL)
  # No pair beyond either margin: 0, with zero gradients.
  loose = {"margin_plus": -2.0, "margin_minus": 2.0}
  value, grad = jax.jit(jax.value_and_grad(lambda a: fn(a, y, **loose)))(x)
  assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)
  with jax.enable_x64(True):
    check_grads(
      jax.jit(lambda a: fn(a, y, margin_plus=0.5, margin_minus=0.0, where=jnp.asarray(MASK))),
      (f64(x),),
      order=1,
      modes=["rev"],
    )
  x[1], x[2] = 0.0, 1e4 * x[2]
  value, grad = jax.jit(jax.value_and_grad(lambda a: fn(a, y)))(x)
  assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
  with pytest.raises(ValueError, match="lambda_minus"):
    fn(x, y, lambda_minus=-1.0)
  with pytest.raises(ValueError, match=r"labels\.shape=\(6, 1\)"):
    fn(x, y[:, None])


def test_instance_loss_against_reference_and_instance_discrimination():
  x, _, _ = _inputs(9, (C, D))
  y = np.array([0, 1, 0, 2, 1, 2], np.int32)
  fn = jaxobj.instance_loss
  for kw in ({}, {"scale": 3.0}):
    close(fn(x, y, **kw, reduction="none"), ref_instance(x, y, **kw), rtol=RTOL, atol=ATOL)
  # Distinct labels: each row's own column is the target (a softmax cross-entropy).
  ids = np.arange(N, dtype=np.int32)
  logits = 3.0 * _unit(x) @ _unit(x).T
  close(fn(x, ids, scale=3.0, reduction="none"), -np.diag(log_softmax(logits, axis=1)), rtol=RTOL)
  close(fn(x, y, scale=3.0, where=MASK), ref_instance(x[MASK], y[MASK], 3.0).mean(), rtol=RTOL)
  with jax.enable_x64(True):
    check_grads(
      jax.jit(lambda a: fn(a, y, scale=3.0, where=jnp.asarray(MASK))),
      (f64(x),),
      order=1,
      modes=["rev"],
    )
  x[1], x[2] = 0.0, 1e4 * x[2]
  value, grad = jax.jit(jax.value_and_grad(lambda a: fn(a, y)))(x)
  assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
  with pytest.raises(ValueError, match="scale"):
    fn(x, y, scale=0.0)


def test_special_cases_equal_other_losses():
  """m = 1 is the linear softmax; SphereFace is L-Softmax of unit centres;
  SoftTriple with one centre per class is CosFace; sub-centre ArcFace with one
  sub-centre is ArcFace; Proxy-NCA is a softmax over 2 s cos."""
  x, y, w = _inputs(3, (C, D))
  ce = jaxobj.softmax_cross_entropy_with_integer_labels(jnp.asarray(x) @ w.T, y, reduction="none")
  close(jaxobj.large_margin_softmax_loss(x, y, w, margin=1, reduction="none"), ce, rtol=RTOL)
  unit = np.asarray(_unit(w), np.float32)
  for m in (1, 4):
    close(
      jaxobj.sphereface_loss(x, y, w, margin=m, reduction="none"),
      jaxobj.large_margin_softmax_loss(x, y, unit, margin=m, reduction="none"),
      rtol=RTOL,
    )
  close(
    jaxobj.soft_triple_loss(x, y, w[:, None], scale=8.0, margin=0.2, tau=1.0, reduction="none"),
    jaxobj.cosface_loss(x, y, w, scale=8.0, margin=0.2, reduction="none"),
    rtol=RTOL,
  )
  close(
    jaxobj.sub_center_arcface_loss(x, y, w[:, None], scale=8.0, reduction="none"),
    jaxobj.arcface_loss(x, y, w, scale=8.0, reduction="none"),
    rtol=RTOL,
  )
  cos = np.asarray(_unit(x) @ _unit(w).T)
  close(
    jaxobj.proxy_nca_loss(x, y, w, scale=3.0, reduction="none"),
    -log_softmax(6.0 * cos, axis=-1)[np.arange(N), y],
    rtol=RTOL,
  )


ALL = [
  "proxy_nca_loss",
  "proxy_anchor_loss",
  "soft_triple_loss",
  "large_margin_softmax_loss",
  "sphereface_loss",
  "sub_center_arcface_loss",
  "p2sgrad_loss",
]
# Moderate scales keep the numerical derivatives of check_grads well conditioned.
GRAD_KW = {
  "proxy_nca_loss": {"scale": 2.0},
  "proxy_anchor_loss": {"alpha": 4.0},
  "soft_triple_loss": {"scale": 4.0, "gamma": 0.5, "tau": 0.3},
  "large_margin_softmax_loss": {"margin": 3},
  "sphereface_loss": {"margin": 3},
  "sub_center_arcface_loss": {"scale": 4.0},
  "p2sgrad_loss": {},
}


@pytest.mark.parametrize("name", ALL)
def test_check_grads_float64_in_embeddings_and_proxies(name):
  x, y, w = _inputs(4, _centers_shape(name))
  x[[0, 4]] += 0.3  # off cos = +-1, where ArcFace's sin(theta) has an infinite derivative
  fn = getattr(jaxobj, name)
  with jax.enable_x64(True):
    check_grads(
      jax.jit(lambda a, b: fn(a, y, b, **GRAD_KW[name], where=jnp.asarray(MASK))),
      (f64(x), f64(w)),
      order=1,
      modes=["rev"],
    )


def test_extreme_embeddings_have_finite_values_and_gradients():
  """Zero rows, rows on and opposite a centre (cos = +-1), huge and tiny rows,
  a zero centre (cosine 0 with everything); all six losses in one program."""
  cases = {}
  for name in ALL:
    x, y, w = _inputs(5, _centers_shape(name))
    x[1] = 0.0
    x[2] *= 1e4
    x[3] *= 1e-20
    w[2] = 0.0
    cases[name] = (x, y, w)

  @jax.jit
  def all_losses(cases):
    return {
      name: jax.value_and_grad(lambda a, b: getattr(jaxobj, name)(a, y, b), argnums=(0, 1))(x, w)
      for name, (x, y, w) in cases.items()
    }

  for name, out in all_losses(cases).items():
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(out)), name


def test_large_margin_target_logit_decreases_with_the_angle():
  """psi is continuous and decreasing over [0, pi] (at the branch points too)."""
  theta = np.linspace(0.0, math.pi, 181)  # multiples of pi/4 and pi/3 included
  x = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], -1).astype(np.float32)
  w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)  # class 1 at 90 deg throughout
  y = np.zeros(len(theta), np.int32)
  for m in (2, 3, 4):
    loss = np.asarray(jaxobj.sphereface_loss(x, y, w, margin=m, reduction="none"))
    assert np.all(np.diff(loss) > 0), m
    close(loss, ref_angular(x, y, w, margin=m, unit_centers=True), rtol=RTOL, atol=ATOL)


def test_out_of_range_labels_give_nan():
  for name in ALL:
    x, y, w = _inputs(6, _centers_shape(name))
    y = y.copy()
    y[3] = C
    assert np.isnan(float(getattr(jaxobj, name)(x, y, w))), name


def test_bad_arguments_raise_clear_errors():
  x, y, w = _inputs(7, (C, D))
  _, _, w3 = _inputs(7, (C, K, D))
  with pytest.raises(ValueError, match=r"proxies\.shape=\(3, 2\).*embeddings\.shape=\(6, 3\)"):
    jaxobj.proxy_nca_loss(x, y, w[:, :2])
  with pytest.raises(ValueError, match=r"centers must have shape \(num_classes, K, D\)"):
    jaxobj.soft_triple_loss(x, y, w)
  with pytest.raises(ValueError, match=r"centers\.shape=\(3, 2, 3\)"):
    jaxobj.large_margin_softmax_loss(x, y, w3)
  with pytest.raises(ValueError, match="exclude_positive=True needs at least 2 classes"):
    jaxobj.proxy_nca_loss(x, np.zeros(N, np.int32), w[:1], exclude_positive=True)
  for m in (0, 65):
    with pytest.raises(ValueError, match=rf"margin must be an integer in \[1, 64\].*margin={m}"):
      jaxobj.sphereface_loss(x, y, w, margin=m)
  with pytest.raises(TypeError, match="margin"):
    jaxobj.large_margin_softmax_loss(x, y, w, margin=2.5)
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.proxy_anchor_loss(x, y, w, alpha=0.0)
  with pytest.raises(ValueError, match="tau"):
    jaxobj.soft_triple_loss(x, y, w3, tau=-0.1)
  with pytest.raises(ValueError, match="gamma"):
    jaxobj.soft_triple_loss(x, y, w3, gamma=0.0)
  with pytest.raises(ValueError, match="margin_mode"):
    jaxobj.sub_center_arcface_loss(x, y, w3, margin_mode="hard")
  with pytest.raises(TypeError, match="centers"):
    jaxobj.sphereface_loss(x, y, w.astype(np.int32))
