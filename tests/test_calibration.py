"""Values and gradients of jaxobj.losses.calibration.

References are float64 NumPy/SciPy implementations written from the
definitions (Brier 1950; the binned calibration error of Guo et al. 2017 with
explicit ``(lo, hi]`` bin membership; temperature scaling fitted with
``scipy.optimize.minimize_scalar``), and closed forms.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce
from scipy.optimize import minimize_scalar
from scipy.special import entr, expit, log_softmax, logsumexp, softmax

import jaxobj
from jaxobj import registry
from jaxobj.losses.calibration import confidence_penalty

N, K = 8, 5
RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ("none", "sum", "mean")


def one_hot(labels, k=K):
  return (np.arange(k) == np.asarray(labels)[..., None]).astype(np.float64)


# --------------------------------------------------------------------------
# float64 references.


def ref_brier(x, y):
  return np.sum((softmax(x, -1) - y) ** 2, -1)


def ref_brier_int(x, labels):
  return ref_brier(x, one_hot(labels, x.shape[-1]))


def ref_binary_brier(x, y):
  return (expit(x) - y) ** 2


def ref_log_score(x, y):
  return -np.sum(np.where(y > 0, y * log_softmax(x, -1), 0.0), -1)


def ref_log_score_int(x, labels):
  return -np.take_along_axis(log_softmax(x, -1), np.asarray(labels)[..., None], -1)[..., 0]


def ref_neg_entropy(x):
  return -np.sum(entr(softmax(x, -1)), -1)


def ref_bins(x, labels, num_bins, weights=None):
  """Per-bin weight, mean confidence and accuracy with bins (b/B, (b+1)/B]."""
  p = softmax(f64(x), -1).reshape(-1, x.shape[-1])
  conf, pred = p.max(-1), p.argmax(-1)
  correct = (pred == np.asarray(labels).reshape(-1)).astype(float)
  w = np.ones_like(conf) if weights is None else f64(weights).reshape(-1)
  count, mean_conf, acc = (np.zeros(num_bins) for _ in range(3))
  for b in range(num_bins):
    lo, hi = b / num_bins, (b + 1) / num_bins
    members = (conf > lo) & (conf <= hi) if b else (conf <= hi)
    count[b] = w[members].sum()
    if count[b] > 0:
      mean_conf[b] = np.sum(w[members] * conf[members]) / count[b]
      acc[b] = np.sum(w[members] * correct[members]) / count[b]
  return count, mean_conf, acc


def ref_ece(x, labels, num_bins=15, weights=None):
  count, conf, acc = ref_bins(x, labels, num_bins, weights)
  return np.sum(count * np.abs(acc - conf)) / count.sum() if count.sum() > 0 else 0.0


def ref_mce(x, labels, num_bins=15, weights=None):
  count, conf, acc = ref_bins(x, labels, num_bins, weights)
  return np.max(np.where(count > 0, np.abs(acc - conf), 0.0))


def ref_left_closed(x, labels, num_bins):
  """ECE and MCE with torchmetrics' bins [b/B, (b+1)/B) and a bin of its own
  for a confidence of exactly 1."""
  p = softmax(f64(x), -1).reshape(-1, x.shape[-1])
  conf, correct = p.max(-1), (p.argmax(-1) == np.asarray(labels).reshape(-1))
  index = np.minimum(np.floor(conf * num_bins), num_bins).astype(int)
  gaps, counts = [], []
  for b in range(num_bins + 1):
    members = index == b
    counts.append(members.sum())
    gaps.append(abs(np.mean(correct[members]) - np.mean(conf[members])) if members.any() else 0.0)
  counts, gaps = np.array(counts), np.array(gaps)
  return np.sum(counts * gaps) / counts.sum(), gaps.max()


def ref_fit_temperature(x, labels, weights=None, bounds=(1e-2, 1e2)):
  x, labels = f64(x).reshape(-1, x.shape[-1]), np.asarray(labels).reshape(-1)
  w = np.ones(len(labels)) if weights is None else f64(weights).reshape(-1)

  def nll(log_t):
    z = x / np.exp(log_t)
    return np.sum(w * (logsumexp(z, -1) - z[np.arange(len(labels)), labels])) / w.sum()

  res = minimize_scalar(
    nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-12, "maxiter": 500}
  )
  return np.exp(res.x)


# --------------------------------------------------------------------------
# Inputs.


def make_inputs(kind, seed=0, batch=(N,)):
  rng = np.random.default_rng(seed)
  x = (2.0 * rng.standard_normal(batch + (K,))).astype(np.float32)
  if kind == "probs":
    y = softmax(2.0 * rng.standard_normal(x.shape), -1)
    y = np.where((rng.uniform(size=x.shape) < 0.3) & (y < y.max(-1, keepdims=True)), 0.0, y)
    return x, (y / y.sum(-1, keepdims=True)).astype(np.float32)
  if kind == "binary":
    x = x[..., 0]
    y = np.where(
      rng.uniform(size=x.shape) < 0.5, rng.integers(0, 2, x.shape), rng.uniform(size=x.shape)
    )
    return x, y.astype(np.float32)
  return x, rng.integers(0, K, batch).astype(np.int32)


# name: (function, kind of inputs, reference)
LOSSES = {
  "brier_score": (jaxobj.brier_score, "probs", ref_brier),
  "brier_score_with_integer_labels": (
    jaxobj.brier_score_with_integer_labels,
    "ints",
    ref_brier_int,
  ),
  "binary_brier_score": (jaxobj.binary_brier_score, "binary", ref_binary_brier),
  "log_score": (jaxobj.log_score, "probs", ref_log_score),
  "log_score_with_integer_labels": (
    jaxobj.log_score_with_integer_labels,
    "ints",
    ref_log_score_int,
  ),
}
INTEGER = ["brier_score_with_integer_labels", "log_score_with_integer_labels"]


@pytest.mark.parametrize("variant", ["plain", "where+weights"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_scores_match_float64_reference(name, variant):
  fn, kind, ref = LOSSES[name]
  x, y = make_inputs(kind, seed=len(name))
  rng = np.random.default_rng(2)
  shape = x.shape if kind == "binary" else x.shape[:-1]
  where = weights = None
  if variant != "plain":
    where = rng.uniform(size=shape) < 0.7
    where.flat[0] = True
    weights = rng.uniform(0.5, 2.0, shape).astype(np.float32)

  @jax.jit
  def all_reductions(x, y, where, weights):
    return {r: fn(x, y, where=where, weights=weights, reduction=r) for r in REDUCTIONS}

  per_row = ref(f64(x), y if kind == "ints" else f64(y))
  for reduction, got in all_reductions(x, y, where, weights).items():
    assert got.dtype == jnp.float32
    close(got, ref_reduce(per_row, where, None if weights is None else f64(weights), reduction))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_score_gradients_float64(name):
  fn, kind, _ = LOSSES[name]
  x, y = make_inputs(kind, seed=3, batch=(3,))
  with jax.enable_x64(True):
    x = jnp.asarray(f64(x))
    if kind == "ints":
      check_grads(jax.jit(lambda x: fn(x, y)), (x,), order=2, modes=["rev"], eps=1e-5)
    else:
      y = jnp.asarray(f64(y) + (0.05 if kind == "probs" else 0.0))
      check_grads(jax.jit(lambda x, y: fn(x, y)), (x, y), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("name", ["brier_score", "log_score"])
def test_scores_are_proper(name):
  # The expected score under q, E_{y~q} S(p, y), is stationary (a minimum) at
  # p = q: its gradient w.r.t. the logits vanishes at logits = log q.
  fn = LOSSES[name][0]
  q = softmax(np.random.default_rng(4).standard_normal((N, K)), -1).astype(np.float32)
  eye = np.eye(K, dtype=np.float32)

  def expected_score(x):
    per_outcome = jax.vmap(lambda y: fn(x, jnp.broadcast_to(y, x.shape), reduction="none"))(eye)
    return jnp.sum(q.T * per_outcome)

  close(jax.grad(expected_score)(np.log(q)), np.zeros((N, K)), atol=1e-6)
  # Moving away from q costs: p = softmax(log q + noise) scores worse.
  noisy = np.log(q) + 0.3 * np.random.default_rng(5).standard_normal((N, K)).astype(np.float32)
  assert float(expected_score(noisy)) > float(expected_score(np.log(q)))


def test_score_relations():
  x, labels = make_inputs("ints", seed=6)
  oh = one_hot(labels).astype(np.float32)
  close(
    jaxobj.brier_score_with_integer_labels(x, labels, reduction="none"),
    np.asarray(jaxobj.brier_score(x, oh, reduction="none")),
    rtol=1e-6,
  )
  close(
    jaxobj.log_score_with_integer_labels(x, labels),
    float(jaxobj.softmax_cross_entropy_with_integer_labels(x, labels)),
    rtol=1e-7,
  )
  # The binary Brier score is half the two-class one on logits [0, x].
  xb, yb = make_inputs("binary", seed=6)
  two = np.stack([np.zeros_like(xb), xb], -1)
  close(
    jaxobj.binary_brier_score(xb, yb, reduction="none"),
    0.5 * np.asarray(jaxobj.brier_score(two, np.stack([1 - yb, yb], -1), reduction="none")),
    rtol=1e-6,
  )
  # Closed forms: uniform logits over K classes give 1 - 1/K and log K.
  close(jaxobj.brier_score_with_integer_labels(jnp.zeros((2, K)), jnp.array([0, 3])), 1.0 - 1.0 / K)
  close(jaxobj.log_score_with_integer_labels(jnp.zeros((2, K)), jnp.array([0, 3])), np.log(K))


def test_brier_with_minus_inf_classes_and_extremes():
  x, labels = make_inputs("ints", seed=7)
  rng = np.random.default_rng(7)
  drop = (rng.uniform(size=x.shape) < 0.5) & (one_hot(labels) == 0)
  xm = np.where(drop, -np.inf, x).astype(np.float32)
  for fn, y, ref in (
    (jaxobj.brier_score_with_integer_labels, labels, ref_brier_int),
    (jaxobj.brier_score, one_hot(labels).astype(np.float32), ref_brier),
  ):
    got = fn(xm, y, reduction="none")
    close(got, ref(f64(xm), y if y is labels else f64(y)))
    assert np.all(np.isfinite(jax.grad(lambda x: fn(x, y))(xm)))
    v, g = jax.value_and_grad(lambda x: fn(x, y))(x * 1e4)
    assert np.isfinite(float(v)) and np.all(np.isfinite(g))
  v, g = jax.value_and_grad(lambda x: jaxobj.binary_brier_score(x, np.ones(N, np.float32)))(
    np.linspace(-1e4, 1e4, N).astype(np.float32)
  )
  assert np.isfinite(float(v)) and np.all(np.isfinite(g))


def test_brier_integer_labels_out_of_range_and_ignore_index():
  x, labels = make_inputs("ints", seed=8)
  bad = labels.copy()
  bad[2] = K
  with pytest.raises(ValueError, match=r"labels must lie in \[0, V\)"):  # when concrete
    jaxobj.brier_score_with_integer_labels(x, bad)
  brier = jax.jit(jaxobj.brier_score_with_integer_labels, static_argnames="reduction")
  per_row = np.asarray(brier(x, bad, reduction="none"))  # under jit: NaN
  assert np.isnan(per_row[2]) and np.all(np.isfinite(np.delete(per_row, 2)))
  keep = np.arange(N) != 2
  close(
    jaxobj.brier_score_with_integer_labels(x, bad, ignore_index=K),
    ref_brier_int(f64(x[keep]), labels[keep]).mean(),
  )
  close(
    jaxobj.brier_score_with_integer_labels(x, bad, where=keep),
    ref_brier_int(f64(x[keep]), labels[keep]).mean(),
  )


# --------------------------------------------------------------------------
# Calibration metrics.


ECE_CASES = [{}, {"num_bins": 1}, {"num_bins": 4}, {"num_bins": 20}]


@pytest.mark.parametrize("kw", ECE_CASES, ids=lambda kw: str(kw.get("num_bins", 15)))
def test_calibration_metrics_match_reference(kw):
  x, labels = make_inputs("ints", seed=9, batch=(4, 8))
  num_bins = kw.get("num_bins", 15)
  close(jaxobj.expected_calibration_error(x, labels, **kw), ref_ece(x, labels, num_bins))
  close(jaxobj.maximum_calibration_error(x, labels, **kw), ref_mce(x, labels, num_bins))
  diagram = jaxobj.reliability_diagram(x, labels, **kw)
  count, conf, acc = ref_bins(x, labels, num_bins)
  close(diagram.count, count)
  close(diagram.confidence, conf)
  close(diagram.accuracy, acc)
  close(diagram.edges, np.linspace(0, 1, num_bins + 1))
  assert diagram.count.shape == diagram.confidence.shape == (num_bins,)
  # The ECE is the count-weighted gap of the diagram; the MCE bounds it.
  close(
    jaxobj.expected_calibration_error(x, labels, **kw),
    np.sum(f64(diagram.count) * np.abs(f64(diagram.accuracy) - f64(diagram.confidence)))
    / f64(diagram.count).sum(),
  )
  assert (
    float(jaxobj.maximum_calibration_error(x, labels, **kw))
    >= float(jaxobj.expected_calibration_error(x, labels, **kw)) - 1e-7
  )


def test_right_closed_false_gives_torchmetrics_bins_on_edges():
  # Confidences exactly on bin edges: 1/4 (uniform), 1/2 (two tied classes)
  # and 1 (saturated logits, a bin of its own when left-closed).
  rng = np.random.default_rng(11)
  ninf = -np.inf
  rows = [[0.0] * 4] * 3 + [[1.0, 1.0, ninf, ninf]] * 3 + [[1e3, 0.0, 0.0, 0.0]] * 4
  x = np.concatenate([np.array(rows), rng.normal(size=(6, 4)) * 2]).astype(np.float32)
  labels = np.array([0, 1, 2, 0, 0, 2, 0, 0, 1, 3] + list(rng.integers(0, 4, 6)))
  ece, mce = ref_left_closed(x, labels, 4)
  kw = dict(num_bins=4, right_closed=False)
  close(jaxobj.expected_calibration_error(x, labels, **kw), ece)
  close(jaxobj.maximum_calibration_error(x, labels, **kw), mce)
  # The default (Guo et al.'s right-closed bins) differs on these inputs.
  close(jaxobj.expected_calibration_error(x, labels, num_bins=4), ref_ece(x, labels, 4))
  close(jaxobj.maximum_calibration_error(x, labels, num_bins=4), ref_mce(x, labels, 4))
  assert abs(ece - ref_ece(x, labels, 4)) > 1e-3 and abs(mce - ref_mce(x, labels, 4)) > 1e-3
  # Off the edges the two conventions agree.
  x, labels = make_inputs("ints", seed=12, batch=(16,))
  for metric in (jaxobj.expected_calibration_error, jaxobj.maximum_calibration_error):
    close(metric(x, labels, num_bins=7, right_closed=False), metric(x, labels, num_bins=7))


def test_calibration_metrics_with_where_weights_and_ignore_index():
  x, labels = make_inputs("ints", seed=10, batch=(16,))
  rng = np.random.default_rng(10)
  where = rng.uniform(size=16) < 0.6
  weights = rng.uniform(0.2, 3.0, 16).astype(np.float32)
  for metric, ref in (
    (jaxobj.expected_calibration_error, ref_ece),
    (jaxobj.maximum_calibration_error, ref_mce),
  ):
    close(metric(x, labels, num_bins=5, where=where), ref(x[where], labels[where], 5))
    close(metric(x, labels, num_bins=5, weights=weights), ref(x, labels, 5, weights))
    close(
      metric(x, labels, num_bins=5, where=where, weights=weights),
      ref(x[where], labels[where], 5, weights[where]),
    )
    ignored = np.where(where, labels, -100)
    close(metric(x, ignored, num_bins=5, ignore_index=-100), ref(x[where], labels[where], 5))
    # NaN logits behind the mask change nothing.
    poisoned = np.where(where[:, None], x, np.nan).astype(np.float32)
    close(metric(poisoned, labels, num_bins=5, where=where), ref(x[where], labels[where], 5))
  count = jaxobj.reliability_diagram(x, labels, num_bins=5, weights=weights).count
  close(np.sum(count), weights.sum(), rtol=1e-6)


def test_calibration_metric_degenerate_cases():
  x, labels = make_inputs("ints", seed=11)
  none = np.zeros(N, bool)
  for metric in (jaxobj.expected_calibration_error, jaxobj.maximum_calibration_error):
    assert float(metric(x, labels, where=none)) == 0.0
    assert float(metric(x, labels, weights=np.zeros(N, np.float32))) == 0.0
  diagram = jaxobj.reliability_diagram(x, labels, where=none)
  assert all(np.all(np.asarray(a) == 0) for a in diagram[:3])
  # Most of 100 bins are empty: no NaN anywhere.
  diagram = jaxobj.reliability_diagram(x, labels, num_bins=100)
  assert all(np.all(np.isfinite(a)) for a in diagram)
  assert np.isfinite(float(jaxobj.expected_calibration_error(x, labels, num_bins=100)))
  # Perfect calibration: 75% confident and right 3 times out of 4.
  logits = np.log(np.array([[0.75, 0.25]] * 4, np.float32))
  close(jaxobj.expected_calibration_error(logits, np.array([0, 0, 0, 1])), 0.0)
  # An unmasked out-of-range label is refused when concrete, NaN under jit: never a
  # plausible number.
  bad = labels.copy()
  bad[0] = -1
  with pytest.raises(ValueError, match=r"labels must lie in \[0, V\)"):
    jaxobj.expected_calibration_error(x, bad)
  assert np.isnan(float(jax.jit(jaxobj.expected_calibration_error)(x, bad)))
  close(
    jaxobj.expected_calibration_error(x, bad, where=np.arange(N) > 0), ref_ece(x[1:], labels[1:])
  )


def test_calibration_bins_are_right_closed():
  # Confidence exactly 1 (saturated logits) lands in the last bin; confidence
  # 0.5 (a two-way tie) lands in the bin that ends at 0.5.
  logits = np.array([[1e4, 0.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
  diagram = jaxobj.reliability_diagram(logits, np.array([0, 0, 1]), num_bins=2)
  close(diagram.count, [2.0, 1.0])
  close(diagram.confidence, [0.5, 1.0])
  close(diagram.accuracy, [0.5, 1.0])


def test_calibration_metrics_jit_and_errors():
  x, labels = make_inputs("ints", seed=12)
  ece = jax.jit(jaxobj.expected_calibration_error, static_argnames="num_bins")
  close(ece(x, labels, num_bins=7), ref_ece(x, labels, 7))
  for bad in (0, 2.5, True):
    with pytest.raises(ValueError, match="num_bins"):
      jaxobj.expected_calibration_error(x, labels, num_bins=bad)
  with pytest.raises(ValueError, match=r"labels\.shape"):
    jaxobj.reliability_diagram(x, labels[:-1])
  with pytest.raises(TypeError, match="logits"):
    jaxobj.maximum_calibration_error(x.astype(np.int32), labels)
  with pytest.raises(ValueError, match=r"weights\.shape"):
    jaxobj.expected_calibration_error(x, labels, weights=np.ones((N, 1), np.float32))


def test_metrics_are_registered_as_metrics():
  for name in ("expected_calibration_error", "maximum_calibration_error", "reliability_diagram"):
    assert registry.get(name).kind == "metric"
  for name in LOSSES:
    assert registry.get(name).kind == "loss"
  assert "expected_calibration_error" not in registry.names(kind="loss")


# --------------------------------------------------------------------------
# Temperature scaling.


def _miscalibrated(seed, batch=(64,), scale=3.0):
  """Labels drawn from softmax(z) but logits reported as scale * z."""
  rng = np.random.default_rng(seed)
  z = rng.standard_normal(batch + (K,))
  u = rng.uniform(size=batch + (1,))
  labels = np.minimum((np.cumsum(softmax(z, -1), -1) < u).sum(-1), K - 1).astype(np.int32)
  return (scale * z).astype(np.float32), labels


def test_fit_temperature_matches_scipy_float64():
  x, labels = _miscalibrated(13)
  with jax.enable_x64(True):
    got = jaxobj.fit_temperature(jnp.asarray(f64(x)), labels)
    assert got.dtype == jnp.float64
    # SciPy's bounded Brent stops at about sqrt(eps) relative in log T.
    close(got, ref_fit_temperature(x, labels), rtol=1e-7, atol=0)
    # The NLL is stationary there to float64 precision: d NLL / d(1/T) =
    # mean(E_p[x] - x_y) with p = softmax(x / T), written out in NumPy.
    p = softmax(f64(x) / float(got), -1)
    slope = np.mean(np.sum(p * f64(x), -1) - f64(x)[np.arange(len(labels)), labels])
    assert abs(slope) < 1e-12
  got32 = jaxobj.fit_temperature(x, labels)
  assert got32.dtype == jnp.float32
  close(got32, ref_fit_temperature(x, labels), rtol=2e-5, atol=0)
  assert 1.5 < float(got32) < 6.0  # the logits were inflated by 3


def test_fit_temperature_masks_weights_and_batch_axes():
  x, labels = _miscalibrated(14, batch=(4, 12), scale=0.5)
  rng = np.random.default_rng(14)
  where = rng.uniform(size=(4, 12)) < 0.7
  weights = rng.uniform(0.2, 2.0, (4, 12)).astype(np.float32)
  close(jaxobj.fit_temperature(x, labels), ref_fit_temperature(x, labels), rtol=2e-5)
  close(
    jaxobj.fit_temperature(x, labels, where=where),
    ref_fit_temperature(x[where], labels[where]),
    rtol=2e-5,
  )
  close(
    jaxobj.fit_temperature(x, labels, weights=weights),
    ref_fit_temperature(x, labels, weights),
    rtol=2e-5,
  )
  close(
    jaxobj.fit_temperature(x, np.where(where, labels, -1), ignore_index=-1),
    ref_fit_temperature(x[where], labels[where]),
    rtol=2e-5,
  )
  poisoned = np.where(where[..., None], x, np.nan).astype(np.float32)
  close(
    jaxobj.fit_temperature(poisoned, labels, where=where),
    ref_fit_temperature(x[where], labels[where]),
    rtol=2e-5,
  )
  close(
    jaxobj.fit_temperature(np.moveaxis(x, -1, 0), labels, axis=0),
    ref_fit_temperature(x, labels),
    rtol=2e-5,
  )
  fit = jax.jit(jaxobj.fit_temperature)
  close(fit(x, labels, where=where), ref_fit_temperature(x[where], labels[where]), rtol=2e-5)


def test_fit_temperature_extremes():
  x, labels = _miscalibrated(15, batch=(32,))
  # Masked classes (never the label) are handled.
  rng = np.random.default_rng(15)
  drop = (rng.uniform(size=x.shape) < 0.4) & (one_hot(labels) == 0)
  xm = np.where(drop, -np.inf, x).astype(np.float32)
  finite_ref = ref_fit_temperature(np.where(drop, -1e30, f64(xm)), labels)
  close(jaxobj.fit_temperature(xm, labels), finite_ref, rtol=2e-5)
  # Separable logits: the NLL decreases as T -> 0, so the lower bound is returned.
  sep = 2.0 * one_hot(labels).astype(np.float32)
  close(jaxobj.fit_temperature(sep, labels, min_temperature=0.05), 0.05, rtol=1e-5)
  # Anti-correlated logits (the label is always the least likely class): the
  # optimum is T = inf, so the upper bound is returned.
  close(jaxobj.fit_temperature(-sep, labels, max_temperature=50.0), 50.0, rtol=1e-5)
  # All masked: 1, never NaN.
  assert float(jaxobj.fit_temperature(x, labels, where=np.zeros(32, bool))) == 1.0
  # No gradient flows through the fit.
  g = jax.grad(lambda x: jaxobj.fit_temperature(x, labels))(x)
  assert np.all(np.asarray(g) == 0)


def test_fit_temperature_errors():
  x, labels = make_inputs("ints")
  with pytest.raises(ValueError, match="min_temperature"):
    jaxobj.fit_temperature(x, labels, min_temperature=2.0, max_temperature=1.0)
  with pytest.raises(ValueError, match="min_temperature"):
    jaxobj.fit_temperature(x, labels, min_temperature=0.0)
  with pytest.raises(TypeError, match="labels"):
    jaxobj.fit_temperature(x, labels.astype(np.float32))


def test_temperature_scale():
  x = np.array([[2.0, -np.inf, -1.0]], np.float32)
  close(jaxobj.temperature_scale(x, 4.0), [[0.5, -np.inf, -0.25]])
  dt = jax.grad(lambda t: jnp.sum(jax.nn.log_softmax(jaxobj.temperature_scale(x, t))[:, 0]))(2.0)
  assert np.isfinite(float(dt))
  per_class = jaxobj.temperature_scale(np.ones((2, 3), np.float32), np.array([1.0, 2.0, 4.0]))
  close(per_class, np.tile([1.0, 0.5, 0.25], (2, 1)))
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.temperature_scale(x, 0.0)
  with pytest.raises(TypeError, match="logits"):
    jaxobj.temperature_scale(np.ones(3, np.int32), 1.0)
  assert jaxobj.temperature_scale(x.astype(jnp.bfloat16), 2.0).dtype == jnp.float32


# --------------------------------------------------------------------------
# Confidence penalty.


@pytest.mark.parametrize("threshold", [None, 0.5, 2.0])
def test_confidence_penalty_matches_reference(threshold):
  x, _ = make_inputs("ints", seed=16)
  ref = ref_neg_entropy(f64(x))
  if threshold is not None:
    ref = np.maximum(0.0, threshold + ref)
  rng = np.random.default_rng(16)
  where = rng.uniform(size=N) < 0.7
  weights = rng.uniform(0.5, 2.0, N).astype(np.float32)
  for reduction in REDUCTIONS:
    close(
      confidence_penalty(x, threshold=threshold, reduction=reduction),
      ref_reduce(ref, reduction=reduction),
    )
    close(
      confidence_penalty(x, threshold=threshold, where=where, weights=weights, reduction=reduction),
      ref_reduce(ref, where, f64(weights), reduction),
    )
  with jax.enable_x64(True):
    check_grads(
      jax.jit(lambda x: confidence_penalty(x, threshold=threshold)),
      (jnp.asarray(f64(x)),),
      order=2,
      modes=["rev"],
      eps=1e-5,
    )


def test_confidence_penalty_closed_forms_and_extremes():
  # Uniform over the finite classes: -log |F|; a point mass: 0.
  x = np.array([[0.0, 0.0, -np.inf, 0.0], [1e4, 0.0, 0.0, 0.0]], np.float32)
  close(confidence_penalty(x, reduction="none"), [-np.log(3.0), 0.0])
  g = jax.grad(lambda x: confidence_penalty(x))(x)
  assert np.all(np.isfinite(g))
  # The gradient raises the entropy: it points towards the uniform logits.
  x, _ = make_inputs("ints", seed=17)
  g = jax.grad(lambda x: confidence_penalty(x, reduction="sum"))(x)
  p = softmax(f64(x), -1)
  log_p = log_softmax(f64(x), -1)
  close(g, p * (log_p - np.sum(p * log_p, -1, keepdims=True)), rtol=1e-4, atol=1e-6)
  # Threshold is traceable.
  ts = jnp.array([0.1, 1.0, 1.5])
  close(
    jax.vmap(lambda t: confidence_penalty(x, threshold=t))(ts),
    [np.mean(np.maximum(0.0, t + ref_neg_entropy(f64(x)))) for t in np.asarray(ts)],
  )
  assert np.isfinite(float(jax.grad(lambda t: confidence_penalty(x, threshold=t))(1.0)))
  with pytest.raises(ValueError, match="threshold"):
    confidence_penalty(x, threshold=-0.1)
  with pytest.raises(ValueError, match="class axis"):
    confidence_penalty(np.float32(1.0))
