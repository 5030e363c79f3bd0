"""Values and gradients of jaxobj.losses.embedding_structure.

References are float64 NumPy implementations written from the papers'
formulas: explicit loops over anchors, positives and negatives (never the
Gram-matrix and shifted-matmul forms the losses use). The registry-wide tests
check the rest of the contract.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64
from scipy.special import logsumexp

import jaxobj

N, D = 8, 3
# Labels 0..3: class 3 has one row (no positive); masking rows 1 and 6 leaves
# class 2 with one row as well.
LABELS = np.array([0, 0, 1, 2, 1, 0, 2, 3], np.int32)
MASK = np.array([True, False, True, True, True, True, False, True])
WEIGHTS = np.array([1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 1.0, 2.0], np.float32)


def _x(seed, scale=1.0):
  return (scale * np.random.default_rng(seed).standard_normal((N, D))).astype(np.float32)


# --------------------------------------------------------------------------
# float64 references: per-anchor values and whether each anchor counts.


def _dist(u, v, distance):
  if distance == "euclidean":
    return np.linalg.norm(u - v)
  if distance == "squared_euclidean":
    return np.sum((u - v) ** 2)
  return 1.0 - u @ v / (max(np.linalg.norm(u), 1e-12) * max(np.linalg.norm(v), 1e-12))


def _sets(y, i):
  pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
  neg = [k for k in range(len(y)) if y[k] != y[i]]
  return pos, neg


def ref_lifted(x, y, margin=1.0, distance="euclidean"):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    pos, neg = _sets(y, i)
    if not pos or not neg:
      out.append(0.0)
      counted.append(False)
      continue
    total = 0.0
    for j in pos:
      _, neg_j = _sets(y, j)
      terms = [margin - _dist(x[i], x[k], distance) for k in neg]
      terms += [margin - _dist(x[j], x[k], distance) for k in neg_j]
      big_j = logsumexp(terms) + _dist(x[i], x[j], distance)
      total += 0.5 * max(0.0, big_j) ** 2
    out.append(total / len(pos))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_lifted_paper(x, y, margin=1.0):
  """The paper's eq. 4: over the batch's unordered positive pairs."""
  x = f64(x)
  total, pairs = 0.0, 0
  for i in range(len(y)):
    for j in range(i + 1, len(y)):
      if y[i] != y[j]:
        continue
      neg_i = [margin - np.linalg.norm(x[i] - x[k]) for k in range(len(y)) if y[k] != y[i]]
      neg_j = [margin - np.linalg.norm(x[j] - x[k]) for k in range(len(y)) if y[k] != y[j]]
      big_j = logsumexp(neg_i + neg_j) + np.linalg.norm(x[i] - x[j])
      total += max(0.0, big_j) ** 2
      pairs += 1
  return total / (2 * pairs)


def ref_generalized(x, y, margin=1.0, distance="euclidean"):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    pos, neg = _sets(y, i)
    if not pos or not neg:
      out.append(0.0)
      counted.append(False)
      continue
    lp = logsumexp([_dist(x[i], x[p], distance) for p in pos])
    ln = logsumexp([margin - _dist(x[i], x[n], distance) for n in neg])
    out.append(max(0.0, lp + ln))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_margin(x, y, margin=0.2, beta=1.2, nu=0.0, distance="euclidean"):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    others = [j for j in range(len(y)) if j != i]
    if not others:
      out.append(0.0)
      counted.append(False)
      continue
    terms = [
      max(0.0, margin + (1 if y[j] == y[i] else -1) * (_dist(x[i], x[j], distance) - beta))
      for j in others
    ]
    out.append(np.mean(terms) + nu * beta)
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_nca(x, y, scale=1.0, distance="squared_euclidean"):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    pos, _ = _sets(y, i)
    if not pos:
      out.append(0.0)
      counted.append(False)
      continue
    logits = {j: -scale * _dist(x[i], x[j], distance) for j in range(len(y)) if j != i}
    log_p = {j: v - logsumexp(list(logits.values())) for j, v in logits.items()}
    out.append(-logsumexp([log_p[j] for j in pos]))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_angular(x, y, alpha=40.0):
  z = f64(x)
  z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  t2 = math.tan(math.radians(alpha)) ** 2
  out, counted = [], []
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    if not pos or not neg:
      out.append(0.0)
      counted.append(False)
      continue
    per_pair = []
    for p in pos:
      f = [4 * t2 * (z[a] + z[p]) @ z[n] - 2 * (1 + t2) * z[a] @ z[p] for n in neg]
      per_pair.append(np.logaddexp(0.0, logsumexp(f)))
    out.append(np.mean(per_pair))
    counted.append(True)
  return np.array(out), np.array(counted)


def _cos(u, v):
  return u @ v / (max(np.linalg.norm(u), 1e-12) * max(np.linalg.norm(v), 1e-12))


def ref_tuplet(x, y, margin=0.1, scale=64.0):
  x = f64(x)
  out, counted = [], []
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    if not pos or not neg:
      out.append(0.0)
      counted.append(False)
      continue
    per_pair = []
    for p in pos:
      theta = math.acos(np.clip(_cos(x[a], x[p]), -1.0, 1.0))
      f = [scale * (_cos(x[a], x[n]) - math.cos(theta - margin)) for n in neg]
      per_pair.append(np.logaddexp(0.0, logsumexp(f)))
    out.append(np.mean(per_pair))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_intra_pair_variance(x, y, pos_eps=0.01, neg_eps=0.01):
  x = f64(x)
  n = len(y)
  pos_pairs = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
  neg_pairs = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
  mu_pos = np.mean([_cos(x[i], x[j]) for i, j in pos_pairs]) if pos_pairs else 0.0
  mu_neg = np.mean([_cos(x[i], x[j]) for i, j in neg_pairs]) if neg_pairs else 0.0
  out, counted = [], []
  for i in range(n):
    pos, neg = _sets(y, i)
    v = 0.0
    if pos:
      v += np.mean([max(0.0, (1 - pos_eps) * mu_pos - _cos(x[i], x[p])) ** 2 for p in pos])
    if neg:
      v += np.mean([max(0.0, _cos(x[i], x[k]) - (1 + neg_eps) * mu_neg) ** 2 for k in neg])
    out.append(v)
    counted.append(bool(pos or neg))
  return np.array(out), np.array(counted)


def ref_snr(x, y, pos_margin=0.0, neg_margin=1.0):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    others = [j for j in range(len(y)) if j != i]
    if not others:
      out.append(0.0)
      counted.append(False)
      continue
    terms = []
    for j in others:
      d = np.var(x[j] - x[i]) / np.var(x[i])
      same = y[j] == y[i]
      terms.append(max(0.0, d - pos_margin) if same else max(0.0, neg_margin - d))
    out.append(np.mean(terms))
    counted.append(True)
  return np.array(out), np.array(counted)


def _kernel(v, node, delta):
  return max(0.0, 1.0 - abs(v - node) / delta)


def ref_fast_ap(x, y, num_bins=10):
  x = f64(x)
  delta = 4.0 / num_bins
  nodes = [k * delta for k in range(num_bins + 1)]
  out, counted = [], []
  for i in range(len(y)):
    pos, neg = _sets(y, i)
    if not pos:
      out.append(0.0)
      counted.append(False)
      continue
    d = {j: 2.0 - 2.0 * _cos(x[i], x[j]) for j in pos + neg}
    h_pos = [sum(_kernel(d[j], z, delta) for j in pos) for z in nodes]
    h_all = [sum(_kernel(d[j], z, delta) for j in d) for z in nodes]
    ap = 0.0
    for k in range(len(nodes)):
      big_h = sum(h_all[: k + 1])
      if big_h > 0:
        ap += h_pos[k] * sum(h_pos[: k + 1]) / big_h
    out.append(1.0 - ap / len(pos))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_histogram(x, y, num_bins=100):
  x = f64(x)
  n = len(y)
  delta = 2.0 / num_bins
  nodes = [-1.0 + r * delta for r in range(num_bins + 1)]
  pos_pairs = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
  p_pos = np.array(
    [sum(_kernel(_cos(x[i], x[j]), t, delta) for i, j in pos_pairs) for t in nodes]
  ) / max(len(pos_pairs), 1)
  phi = np.cumsum(p_pos)
  out, counted = [], []
  for i in range(n):
    _, neg = _sets(y, i)
    if not neg or not pos_pairs:
      out.append(0.0)
      counted.append(False)
      continue
    p_neg = np.array([sum(_kernel(_cos(x[i], x[k]), t, delta) for k in neg) for t in nodes])
    out.append(np.sum(p_neg * phi) / len(neg))
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_ranked_list(
  x,
  y,
  margin=0.4,
  alpha=1.2,
  neg_temperature=10.0,
  pos_temperature=0.0,
  imbalance=0.5,
  distance="euclidean",
):
  x = f64(x)
  out, counted = [], []
  for i in range(len(y)):
    pos, neg = _sets(y, i)
    if not pos and not neg:
      out.append(0.0)
      counted.append(False)
      continue
    lp = ln = 0.0
    viol = [_dist(x[i], x[j], distance) - (alpha - margin) for j in pos]
    viol = [v for v in viol if v > 0]
    if viol:
      w = np.exp(pos_temperature * (np.array(viol) - max(viol)))  # scaled: the ratio is the same
      lp = np.sum(w * viol) / np.sum(w)
    viol = [alpha - _dist(x[i], x[k], distance) for k in neg]
    viol = [v for v in viol if v > 0]
    if viol:
      w = np.exp(neg_temperature * (np.array(viol) - max(viol)))  # scaled: the ratio is the same
      ln = np.sum(w * viol) / np.sum(w)
    out.append((1 - imbalance) * lp + imbalance * ln)
    counted.append(True)
  return np.array(out), np.array(counted)


def ref_centroid_triplet(x, y, margin=0.05, distance="squared_euclidean"):
  x = f64(x)

  def dist(u, v):
    sq = np.sum((u - v) ** 2)
    return sq if distance == "squared_euclidean" else np.sqrt(sq)

  out, counted = [], []
  for i in range(len(y)):
    pos, neg = _sets(y, i)
    if not pos or not neg:
      out.append(0.0)
      counted.append(False)
      continue
    d_pos = dist(x[i], np.mean(x[pos], axis=0))
    classes = sorted({int(y[k]) for k in neg})
    terms = [
      max(0.0, d_pos - dist(x[i], np.mean(x[np.asarray(y) == c], axis=0)) + margin) for c in classes
    ]
    out.append(np.mean(terms))
    counted.append(True)
  return np.array(out), np.array(counted)


def _sigmoid(t):
  return 0.5 * (1.0 + math.tanh(0.5 * t))


def ref_pnp(x, y, variant="O", anneal=0.01, b=2.0, alpha=1.0):
  x = f64(x)
  f = {
    "O": lambda r: r,
    "Iu": lambda r: (1 + r) * math.log(1 + r),
    "Ib": lambda r: (b * r - math.log(1 + b * r)) / b**2,
    "Ds": lambda r: math.log(1 + r),
    "Dq": lambda r: 1 - (1 + r) ** -alpha,
  }[variant]
  out, counted = [], []
  for q in range(len(y)):
    pos, neg = _sets(y, q)
    if not pos:
      out.append(0.0)
      counted.append(False)
      continue
    terms = []
    for i in pos:
      r = sum(_sigmoid((_cos(x[q], x[n]) - _cos(x[q], x[i])) / anneal) for n in neg)
      terms.append(f(r))
    out.append(np.mean(terms))
    counted.append(True)
  return np.array(out), np.array(counted)


LOSSES = {
  "lifted_structure_loss": ref_lifted,
  "generalized_lifted_structure_loss": ref_generalized,
  "margin_loss": ref_margin,
  "nca_loss": ref_nca,
  "angular_loss": ref_angular,
  "tuplet_margin_loss": ref_tuplet,
  "intra_pair_variance_loss": ref_intra_pair_variance,
  "snr_contrastive_loss": ref_snr,
  "fast_ap_loss": ref_fast_ap,
  "histogram_loss": ref_histogram,
  "ranked_list_loss": ref_ranked_list,
  "centroid_triplet_loss": ref_centroid_triplet,
  "pnp_loss": ref_pnp,
}

VALUE_CASES = [(name, {}) for name in LOSSES] + [
  ("lifted_structure_loss", {"margin": 0.5, "distance": "cosine"}),
  ("generalized_lifted_structure_loss", {"margin": 2.0, "distance": "squared_euclidean"}),
  ("margin_loss", {"margin": 0.3, "beta": 0.9, "nu": 0.1}),
  ("nca_loss", {"scale": 2.0, "distance": "euclidean"}),
  ("angular_loss", {"alpha": 55.0}),
  ("tuplet_margin_loss", {"margin": 0.3, "scale": 8.0}),
  ("intra_pair_variance_loss", {"pos_eps": 0.2, "neg_eps": -0.5}),
  ("snr_contrastive_loss", {"pos_margin": 0.5, "neg_margin": 2.0}),
  ("fast_ap_loss", {"num_bins": 3}),
  ("histogram_loss", {"num_bins": 7}),
  (
    "ranked_list_loss",
    {"margin": 1.0, "alpha": 2.5, "pos_temperature": 2.0, "imbalance": 0.3, "distance": "cosine"},
  ),
  ("centroid_triplet_loss", {"margin": 2.0, "distance": "euclidean"}),
  ("pnp_loss", {"variant": "Iu", "anneal": 0.3}),
  ("pnp_loss", {"variant": "Ib", "anneal": 0.5, "b": 3.0}),
  ("pnp_loss", {"variant": "Ds", "anneal": 0.2}),
  ("pnp_loss", {"variant": "Dq", "anneal": 0.1, "alpha": 2.0}),
]


def _case_id(case):
  name, kw = case
  return name + "".join(f"-{k}={v}" for k, v in kw.items())


def _weighted_mean(values, counted, weights):
  den = np.sum(weights * counted)
  return np.sum(weights * values * counted) / den if den > 0 else 0.0


@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_values_masks_and_weights_against_float64_reference(case):
  """Per-anchor values and the weighted (sum, count), whose count says which
  anchors have something to compare; masked rows (NaN in them) are sliced
  out of the batch."""
  name, kw = case
  fn = getattr(jaxobj, name)
  x = _x(0)
  ref, counted = LOSSES[name](x[MASK], LABELS[MASK], **kw)
  garbage = np.where(MASK[:, None], x, np.nan).astype(np.float32)
  none = fn(garbage, LABELS, **kw, where=MASK, reduction="none")
  expected = np.zeros(N)
  expected[MASK] = ref
  close(none, expected)
  total, count = fn(garbage, LABELS, **kw, where=MASK, weights=WEIGHTS, reduction="sum_and_count")
  w = f64(WEIGHTS[MASK])
  close(total, np.sum(w * ref * counted))
  close(count, np.sum(w * counted))


def test_lifted_structure_with_pair_weights_is_the_papers_mean_over_pairs():
  x = _x(1)
  n_pos = np.sum(LABELS[:, None] == LABELS[None, :], axis=1) - 1.0
  close(jaxobj.lifted_structure_loss(x, LABELS, weights=n_pos), ref_lifted_paper(x, LABELS))


def test_margin_loss_beta_gradient_has_its_closed_form():
  """d loss / d beta = mean over anchors of (mean over active pairs of -y) + nu:
  what an objective that learns beta follows."""
  x = _x(2)
  with jax.enable_x64(True):
    grad = jax.grad(lambda b: jaxobj.margin_loss(f64(x), LABELS, beta=b, nu=0.05))(1.2)
  z = f64(x)
  per_anchor = []
  for i in range(N):
    terms = []
    for j in range(N):
      if j == i:
        continue
      y = 1 if LABELS[j] == LABELS[i] else -1
      active = 0.2 + y * (np.linalg.norm(z[i] - z[j]) - 1.2) > 0
      terms.append(-y * active)
    per_anchor.append(np.mean(terms) + 0.05)
  close(grad, np.mean(per_anchor), rtol=1e-10, atol=1e-12)


GRAD_HYPER = {
  "lifted_structure_loss": {"margin": 1.0},
  "generalized_lifted_structure_loss": {"margin": 1.0},
  "margin_loss": {"margin": 0.2, "beta": 1.2, "nu": 0.1},
  "nca_loss": {"scale": 0.5},
  "angular_loss": {"alpha": 40.0},
  "tuplet_margin_loss": {"margin": 0.1, "scale": 4.0},
  "intra_pair_variance_loss": {"pos_eps": 0.01, "neg_eps": 0.01},
  "snr_contrastive_loss": {"pos_margin": 0.1, "neg_margin": 1.0},
  "fast_ap_loss": {},
  "histogram_loss": {},
  "ranked_list_loss": {
    "margin": 0.4,
    "alpha": 2.0,
    "neg_temperature": 1.0,
    "pos_temperature": 0.5,
    "imbalance": 0.4,
  },
  "centroid_triplet_loss": {"margin": 1.0},
  "pnp_loss": {"anneal": 0.5},
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_check_grads_float64(name):
  """Embeddings and every traceable hyperparameter, with a row mask."""
  fn = getattr(jaxobj, name)
  hyper = GRAD_HYPER[name]
  with jax.enable_x64(True):

    def f(x, *h):
      return fn(x, LABELS, **dict(zip(hyper, h)), where=jnp.asarray(MASK))

    x = f64(_x(3))
    if name == "histogram_loss":
      # Similarities near 1, so positive and negative pairs share histogram
      # bins: elsewhere the loss is flat (a zero gradient checks nothing).
      x = 1.0 + 0.1 * x
      assert np.any(jax.grad(f)(x) != 0.0)
    check_grads(f, (x,) + tuple(hyper.values()), order=1, modes=["rev"])


EXTREME_CASES = [
  ("lifted_structure_loss", {}),
  ("generalized_lifted_structure_loss", {}),
  ("margin_loss", {}),
  ("nca_loss", {"scale": 10.0}),
  ("angular_loss", {"alpha": 72.0}),
  ("tuplet_margin_loss", {"scale": 1e3}),
  ("intra_pair_variance_loss", {}),
  ("snr_contrastive_loss", {}),
  ("fast_ap_loss", {}),
  ("histogram_loss", {}),
  ("ranked_list_loss", {"alpha": 60.0, "neg_temperature": 1e3}),
  ("centroid_triplet_loss", {}),
  ("pnp_loss", {"variant": "Dq", "anneal": 1e-4}),
]


@pytest.mark.parametrize("case", EXTREME_CASES, ids=_case_id)
def test_far_from_the_origin_and_at_large_scales(case):
  """Embeddings of norm ~1e4 spread by ~30: the exponentials of every loss
  are far outside float32's range, the values still match float64."""
  name, kw = case
  x = (_x(5, scale=30.0) + 1e4).astype(np.float32)
  ref, counted = LOSSES[name](x, LABELS, **kw)
  value, grads = jax.value_and_grad(lambda e: getattr(jaxobj, name)(e, LABELS, **kw))(x)
  close(value, _weighted_mean(ref, counted, np.ones(N)), rtol=1e-3, atol=1e-3)
  assert np.all(np.isfinite(grads))


@pytest.mark.parametrize(
  "name",
  [
    "lifted_structure_loss",
    "generalized_lifted_structure_loss",
    "angular_loss",
    "tuplet_margin_loss",
  ],
)
def test_one_label_only_gives_zero_and_zero_gradients(name):
  """No negatives anywhere: no anchor counts, loss 0, finite (zero) gradients."""
  x = _x(6)
  y = np.zeros(N, np.int32)
  value, grads = jax.value_and_grad(lambda e: getattr(jaxobj, name)(e, y))(x)
  assert float(value) == 0.0
  np.testing.assert_array_equal(grads, 0.0)


def test_nca_with_one_label_is_zero_and_counts_every_anchor():
  total, count = jaxobj.nca_loss(_x(6), np.zeros(N, np.int32), reduction="sum_and_count")
  assert (float(total), float(count)) == (0.0, float(N))


def test_duplicate_embeddings_have_finite_gradients():
  x = np.repeat(_x(7)[:4], 2, axis=0)  # every row twice: distances of exactly 0
  for name in LOSSES:
    fn = getattr(jaxobj, name)
    grads = jax.grad(lambda e, fn=fn: fn(e, LABELS))(x)
    assert np.all(np.isfinite(grads)), name


@pytest.mark.parametrize(
  ("name", "kw", "match"),
  [
    ("margin_loss", {"margin": -0.1}, "margin"),
    ("margin_loss", {"nu": -1.0}, "nu"),
    ("nca_loss", {"scale": 0.0}, "scale"),
    ("angular_loss", {"alpha": 80.0}, "alpha"),
    ("angular_loss", {"alpha": 0.0}, "alpha"),
    ("lifted_structure_loss", {"distance": "manhattan"}, "distance"),
    ("generalized_lifted_structure_loss", {"distance": "l1"}, "distance"),
    ("tuplet_margin_loss", {"margin": 4.0}, "margin"),
    ("tuplet_margin_loss", {"scale": -1.0}, "scale"),
    ("fast_ap_loss", {"num_bins": 0}, "num_bins"),
    ("histogram_loss", {"num_bins": 2.5}, "num_bins"),
    ("ranked_list_loss", {"imbalance": 1.5}, "imbalance"),
    ("ranked_list_loss", {"neg_temperature": -1.0}, "neg_temperature"),
    ("centroid_triplet_loss", {"distance": "cosine"}, "distance"),
    ("pnp_loss", {"variant": "D"}, "variant"),
    ("pnp_loss", {"anneal": 0.0}, "anneal"),
    ("pnp_loss", {"alpha": 0.0}, "alpha"),
  ],
)
def test_bad_hyperparameters_are_named(name, kw, match):
  with pytest.raises(ValueError, match=match):
    getattr(jaxobj, name)(_x(0), LABELS, **kw)


def test_bad_labels_are_clear_errors():
  with pytest.raises(ValueError, match="labels"):
    jaxobj.lifted_structure_loss(_x(0), LABELS[:, None])
  with pytest.raises(TypeError, match="labels"):
    jaxobj.nca_loss(_x(0), LABELS.astype(np.float32))


def test_snr_distance_needs_two_features_and_is_nan_without_signal():
  with pytest.raises(ValueError, match="at least 2"):
    jaxobj.snr_contrastive_loss(_x(0)[:, :1], LABELS)
  x = _x(0)
  x[2] = 3.0  # every feature equal: no signal variance
  values = jaxobj.snr_contrastive_loss(x, LABELS, reduction="none")
  assert np.isnan(values[2]) and np.all(np.isfinite(np.delete(values, 2)))
  # Masked, the same row changes nothing.
  close(
    jaxobj.snr_contrastive_loss(x, LABELS, where=np.arange(N) != 2),
    jaxobj.snr_contrastive_loss(np.delete(x, 2, 0), np.delete(LABELS, 2)),
  )


def test_snr_distance_is_invariant_to_scaling_the_batch():
  x = _x(8)
  close(jaxobj.snr_contrastive_loss(1e3 * x, LABELS), jaxobj.snr_contrastive_loss(x, LABELS))


def test_fast_ap_is_one_minus_average_precision_when_distances_sit_on_nodes():
  """Each distance on a node (no split between two): FastAP is the exact
  average precision of the ranking."""
  angles = np.radians([0.0, 60.0, 90.0, 120.0, 180.0, 0.0])  # d = 2 - 2cos: 1, 2, 3, 4, 0
  x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
  y = np.array([0, 0, 1, 0, 1, 1], np.int32)
  values = jaxobj.fast_ap_loss(x, y, num_bins=4, reduction="none")
  # Anchor 0 ranks rows 5, 1, 2, 3, 4: its positives (rows 1 and 3) at ranks 2 and 4.
  close(values[0], 1.0 - (1 / 2 + 2 / 4) / 2, atol=1e-5)


def test_ranked_list_detached_weights_keep_the_value_and_only_reweigh_gradients():
  x = _x(9)
  kw = {"alpha": 2.0, "neg_temperature": 3.0, "pos_temperature": 1.0}
  exact = jax.value_and_grad(lambda e: jaxobj.ranked_list_loss(e, LABELS, **kw))(x)
  held = jax.value_and_grad(
    lambda e: jaxobj.ranked_list_loss(e, LABELS, **kw, detach_weights=True)
  )(x)
  close(held[0], exact[0])
  assert not np.allclose(held[1], exact[1])
