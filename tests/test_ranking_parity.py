"""The ranking functions that complete rax's catalogue, and rax's transformations.

New losses and metrics, LambdaLoss weights, the gain/discount/label function
arguments, ListMLE's random tie-breaking, the generic pairwise loss and the
``*_t12n`` transformations, each against a float64 NumPy reference written
from the formula (one list or segment at a time, as in ``test_ranking.py``),
plus rax's own values where rax is installed. Cheap: the new functions share
one compilation per input shape.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import close
from scipy.special import expit, log_expit, log_softmax, logsumexp, softmax
from test_ranking import (
  draw,
  ref_gains,
  ref_ideal_dcg,
  ref_listmle,
  ref_mean,
  ref_per_list,
  ref_ranks,
  ref_softmax,
)

import jaxobj

B, L = 6, 6


# --------------------------------------------------------------------------
# float64 references for one list (the valid items of one segment, in order).


def ref_poly1(s, y, w, epsilon=1.0):
  t = y * w
  target = t / t.sum() if t.sum() != 0 else np.full(len(t), 1.0 / len(t))
  return -np.sum(t * log_softmax(s)) + epsilon * (1.0 - np.sum(target * softmax(s)))


def ref_unique(s, y, w, gain=lambda y: 2.0**y - 1.0):
  total = 0.0
  for i in range(len(s)):
    competitors = np.concatenate([[s[i]], s[y < y[i]]])
    total -= gain(y[i]) * w[i] * (s[i] - logsumexp(competitors))
  return total


def ref_pairs(pair, all_pairs=False):
  """(sum over pairs of w_i * pair(s_i - s_j, y_i - y_j), number of pairs)."""

  def terms(s, y, w):
    total, count = 0.0, 0
    for i in range(len(s)):
      for j in range(len(s)):
        if all_pairs or y[i] > y[j]:
          total += w[i] * pair(s[i] - s[j], y[i] - y[j])
          count += 1
    return total, count

  return terms


def ref_qr(ds, dy, tau=0.5, squared=False):
  under, over = max(0.0, dy - ds), max(0.0, ds - dy)
  if squared:
    under, over = under**2, over**2
  return tau * under + (1 - tau) * over


def retrieved(s, topn):
  return np.isfinite(s) & (ref_ranks(s) <= (topn or len(s)))


def ref_dcg(s, y, w, topn=None, gain=None, discount=None):
  g = (2.0**y - 1.0 if gain is None else gain(y)) * w
  d = discount or (lambda r: 1.0 / np.log2(1.0 + r))
  return np.sum(np.where(retrieved(s, topn), g * d(ref_ranks(s)), 0.0))


def ref_ndcg_fns(s, y, w, gain, discount):
  g = gain(y) * w
  ideal = np.sort(g)[::-1]
  ideal = np.sum(ideal * discount(np.arange(1.0, len(g) + 1)))
  dcg = ref_dcg(s, y, w, gain=gain, discount=discount)
  return dcg / ideal if ideal != 0 else dcg


def ref_recall(s, y, w, topn=None):
  rel = y >= 1
  return np.sum(rel & retrieved(s, topn)) / rel.sum() if rel.any() else 0.0


def ref_ap(s, y, w, topn=None):
  rel, ranks, ret = y >= 1, ref_ranks(s), retrieved(s, topn)
  total = sum(
    np.sum(rel & (ranks <= ranks[i])) / ranks[i] for i in range(len(s)) if rel[i] and ret[i]
  )
  return total / rel.sum() if rel.any() else 0.0


def ref_opa(s, y, w):
  pairs = y[:, None] > y[None, :]
  return np.sum(pairs & (s[:, None] > s[None, :])), np.sum(pairs)


# name -> (kind, reference, extra keyword arguments)
NEW = {
  "poly1_softmax_loss": ("list", ref_poly1, {}),
  "poly1_softmax_loss(epsilon=-0.5)": (
    "list",
    functools.partial(ref_poly1, epsilon=-0.5),
    {"epsilon": -0.5},
  ),
  "unique_softmax_loss": ("list", ref_unique, {}),
  "pairwise_soft_zero_one_loss": ("pair", ref_pairs(lambda ds, dy: expit(-ds)), {}),
  "pairwise_mse_loss": ("pair", ref_pairs(lambda ds, dy: (ds - dy) ** 2, all_pairs=True), {}),
  "pairwise_qr_loss": ("pair", ref_pairs(ref_qr), {}),
  "pairwise_qr_loss(tau=0.2, squared=True)": (
    "pair",
    ref_pairs(functools.partial(ref_qr, tau=0.2, squared=True)),
    {"tau": 0.2, "squared": True},
  ),
  "recall_metric": ("list", ref_recall, {}),
  "recall_metric(topn=2)": ("list", functools.partial(ref_recall, topn=2), {"topn": 2}),
  "ap_metric": ("list", ref_ap, {}),
  "ap_metric(topn=3)": ("list", functools.partial(ref_ap, topn=3), {"topn": 3}),
  "dcg_metric": ("list", ref_dcg, {}),
  "dcg_metric(topn=2)": ("list", functools.partial(ref_dcg, topn=2), {"topn": 2}),
  "opa_metric": ("pair", ref_opa, {}),
  "ndcg_metric(gain_fn, discount_fn)": (
    "list",
    functools.partial(ref_ndcg_fns, gain=lambda y: y, discount=lambda r: 1.0 / r),
    {"gain_fn": lambda y: y, "discount_fn": lambda r: 1.0 / r},
  ),
  "unique_softmax_loss(gain_fn)": (
    "list",
    functools.partial(ref_unique, gain=lambda y: y + 1.0),
    {"gain_fn": lambda y: y + 1.0},
  ),
}
TAKES_ITEM_WEIGHTS = {
  n for n in NEW if n.split("(")[0] not in ("recall_metric", "ap_metric", "opa_metric")
}


def _fn(name):
  return getattr(jaxobj, name.split("(")[0])


def _is_metric(name):
  return name.split("(")[0].endswith("_metric")


@functools.cache
def _all_values():
  """Every new function's per-list values, mean and gradient of the sum, in one jit."""

  @jax.jit
  def run(s, y, mask, seg, w):
    out = {}
    for name, (_, _, kw) in NEW.items():
      fn = functools.partial(_fn(name), item_where=mask, segment_ids=seg, **kw)
      if name in TAKES_ITEM_WEIGHTS:
        fn = functools.partial(fn, item_weights=w)
      out[name] = {"none": fn(s, y, reduction="none"), "mean": fn(s, y)}
      if not _is_metric(name):
        out[name]["grad"] = jax.grad(lambda x, f=fn: f(x, y, reduction="sum"))(s)
    return out

  return run


def _inputs():
  s, y, mask, seg, w = draw(7)
  s[0, 1] = -np.inf  # masks the item in a loss, unranked in a metric
  mask[4] = False  # a list with no valid item: 0, and out of the mean
  return s, y, mask, seg, w


def _reference(name, s, y, mask, seg, w):
  kind, ref, _ = NEW[name]
  metric = name.split("(")[0].endswith("_metric")
  keep = mask if metric else mask & np.isfinite(s)
  weights = w if name in TAKES_ITEM_WEIGHTS else None
  return ref_per_list(kind, ref, s, y, keep, seg, weights)


@pytest.fixture(scope="module")
def values():
  s, y, mask, seg, w = _inputs()
  with jax.enable_x64(True):
    return jax.device_get(_all_values()(s, y, mask, seg, w))


@pytest.mark.parametrize("name", list(NEW))
def test_values_and_reductions_match_float64_reference(values, name):
  s, y, mask, seg, w = _inputs()
  want, counted = _reference(name, s, y, mask, seg, w)
  got = values[name]
  close(got["none"], want)
  close(got["mean"], ref_mean(want, counted))


@pytest.mark.parametrize("name", [n for n in NEW if not _is_metric(n)])
def test_gradients_match_central_differences_of_the_reference(values, name):
  s, y, mask, seg, w = _inputs()
  finite = np.isfinite(s)
  grad, eps = np.zeros_like(s), 1e-6
  for b, i in zip(*np.nonzero(finite & mask)):
    up, down = s.copy(), s.copy()
    up[b, i] += eps
    down[b, i] -= eps
    grad[b, i] = (
      _reference(name, up, y, mask, seg, w)[0].sum()
      - _reference(name, down, y, mask, seg, w)[0].sum()
    ) / (2 * eps)
  close(values[name]["grad"], grad, rtol=1e-5, atol=1e-6)
  assert np.all(values[name]["grad"][~(finite & mask)] == 0)


# --------------------------------------------------------------------------
# LambdaLoss weights.


def ref_lambdaweights(s, y, mask, seg, w, kind, topn=None, normalize=False, light=False):
  """[L, L] weights of one list, from the definitions (ranks and ideal DCG per segment)."""
  n, size = len(s), mask.sum()
  out = np.zeros((n, n))
  ranks, gains = np.ones(n), np.zeros(n)
  for g in np.unique(seg[mask]):
    idx = np.flatnonzero(mask & (seg == g))
    ranks[idx] = ref_ranks(s[idx])
    gains[idx] = ref_gains(y[idx], w[idx])
    if normalize:
      ideal = ref_ideal_dcg(gains[idx], topn)
      gains[idx] /= ideal if ideal != 0 else 1.0
  disc = 1.0 / np.log2(1.0 + ranks)
  for i in range(n):
    for j in range(n):
      if not (mask[i] and mask[j] and seg[i] == seg[j]):
        continue
      if kind == "labeldiff":
        out[i, j] = abs(y[i] - y[j])
        continue
      gap = abs(gains[i] - gains[j])
      if kind == "dcg":
        di = disc[i] if topn is None or ranks[i] <= topn else 0.0
        dj = disc[j] if topn is None or ranks[j] <= topn else 0.0
        pair = abs(di - dj)
      else:
        k = abs(ranks[i] - ranks[j])
        d = lambda r: 1.0 / np.log2(1.0 + r)  # noqa: E731
        pair = 0.0 if k == 0 else (abs(d(k)) if light else abs(d(k) - d(k + 1)))
        low = max(ranks[i], ranks[j])
        if topn is not None and low > topn:
          pair /= 1.0 - d(low)
      out[i, j] = gap * pair * size
  return out


LAMBDAWEIGHTS = [
  ("labeldiff", {}),
  ("dcg", {}),
  ("dcg", {"topn": 2, "normalize": True}),
  ("dcg2", {}),
  ("dcg2", {"topn": 3, "normalize": True}),
  ("dcg2", {"light_discount": True}),
]


def test_lambdaweights_and_lambda_losses_match_float64_reference():
  s, y, mask, seg, w = draw(11)
  lw = functools.partial(jaxobj.dcg2_lambdaweight, topn=3, normalize=True)

  @jax.jit
  def run(s):
    out = {
      f"{kind}{kw}": getattr(jaxobj, f"{kind}_lambdaweight")(
        s, y, item_where=mask, segment_ids=seg, item_weights=w, **kw
      )
      for kind, kw in LAMBDAWEIGHTS
    }
    out["loss"] = jaxobj.pairwise_logistic_loss(
      s, y, lambdaweight=lw, item_where=mask, segment_ids=seg, reduction="none"
    )
    return out

  with jax.enable_x64(True):
    out = jax.device_get(run(s))
  for kind, kw in LAMBDAWEIGHTS:
    ref_kw = {"light": kw.get("light_discount", False)} | {
      k: v for k, v in kw.items() if k != "light_discount"
    }
    for b in range(B):
      want = ref_lambdaweights(s[b], y[b], mask[b], seg[b], w[b], kind, **ref_kw)
      close(out[f"{kind}{kw}"][b], want)
  ones = np.ones(L)
  for b in range(B):
    lam = ref_lambdaweights(s[b], y[b], mask[b], seg[b], ones, "dcg2", topn=3, normalize=True)
    total, count = 0.0, 0
    for i in range(L):
      for j in range(L):
        if mask[b, i] and mask[b, j] and seg[b, i] == seg[b, j] and y[b, i] > y[b, j]:
          total += lam[i, j] * np.logaddexp(0.0, -(s[b, i] - s[b, j]))
          count += 1
    close(out["loss"][b], total / max(count, 1))


# --------------------------------------------------------------------------
# Function arguments: label_fn, ListMLE's key, the generic pairwise loss.


def test_label_fn_replaces_the_normalization():
  s, y, mask, _, _ = draw(13)

  def normalize(labels, *, where):
    total = jnp.sum(jnp.where(where, labels, 0.0), axis=-1, keepdims=True)
    return labels / jnp.where(total == 0, 1.0, total)

  @jax.jit
  def run(s):
    return (
      jaxobj.softmax_loss(s, y, label_fn=normalize, item_where=mask, reduction="none"),
      jaxobj.softmax_loss(s, y, item_where=mask, reduction="none"),
      jaxobj.softmax_loss(s, y, label_fn=lambda t, where: t**2, item_where=mask, reduction="none"),
    )

  with jax.enable_x64(True):
    got, want, squared = jax.device_get(run(s))
  close(got, want)
  values, _ = ref_per_list(
    "list", lambda a, b, c: -np.sum(b**2 * log_softmax(a)), s, y, mask, None, None
  )
  close(squared, values)


def test_listmle_key_breaks_ties_at_random():
  s = np.array([[0.3, -1.2, 2.0, 0.7, -0.1]])
  y = np.array([[1.0, 1.0, 0.0, 1.0, 0.0]])  # two groups of ties
  keys = jax.random.split(jax.random.PRNGKey(0), 64)
  distinct = np.array([[4.0, 3, 0, 2, 1]])

  @jax.jit
  def run(keys):
    got = jax.vmap(lambda k: jaxobj.listmle_loss(s, y, key=k, reduction="none")[0])(keys)
    return got, jaxobj.listmle_loss(s, y), jaxobj.listmle_loss(s, distinct, key=keys[0])

  with jax.enable_x64(True):
    got, plain, untied = jax.device_get(run(keys))
  close(plain, ref_listmle(s[0], y[0]))
  close(untied, ref_listmle(s[0], distinct[0]))
  # Every value is the likelihood of one order of the ties; several orders occur.
  import itertools

  orders = {
    round(sum(logsumexp(s[0][list(p)][k:]) - s[0][list(p)][k] for k in range(5)), 8)
    for top in itertools.permutations([0, 1, 3])
    for bottom in itertools.permutations([2, 4])
    for p in [top + bottom]
  }
  seen = {round(float(v), 8) for v in got}
  assert seen <= orders and len(seen) >= 4
  # The mean over keys approaches the mean over the orders of the ties.
  close(np.mean(got), np.mean(sorted(orders)), rtol=0.05)


def test_make_pairwise_loss():
  s, y, mask, seg, w = draw(14)
  logistic = jaxobj.make_pairwise_loss(lambda ds, dy: jax.nn.softplus(-ds), name="mine")
  assert logistic.__name__ == "mine"
  kw = {"item_where": mask, "segment_ids": seg, "item_weights": w}

  # A traced hyperparameter through a closure, and (losses, pairs) output.
  def hinge(margin):
    pair = jaxobj.make_pairwise_loss(lambda ds, dy: (jax.nn.relu(margin - ds), dy > 0))
    return pair(s, y, **kw)

  @jax.jit
  def run(margins):
    return {
      "mine": logistic(s, y, reduction="none", **kw),
      "logistic": jaxobj.pairwise_logistic_loss(s, y, reduction="none", **kw),
      "hinge": jax.vmap(hinge)(margins),
      "want": jax.vmap(lambda m: jaxobj.pairwise_hinge_loss(s, y, margin=m, **kw))(margins),
      "grad": jax.grad(hinge)(margins[1]),
    }

  with jax.enable_x64(True):
    out = jax.device_get(run(jnp.array([0.0, 0.5, 2.0])))
  close(out["mine"], out["logistic"])
  close(out["hinge"], out["want"])
  assert np.isfinite(out["grad"]) and out["grad"] > 0
  with pytest.raises(TypeError, match="pair_fn"):
    jaxobj.make_pairwise_loss(3.0)


def test_function_arguments_are_checked():
  s, y = np.zeros((2, 3)), np.array([[1.0, 0, 0], [0, 1, 2]])
  with pytest.raises(TypeError, match="lambdaweight"):
    jaxobj.pairwise_logistic_loss(s, y, lambdaweight="dcg")
  with pytest.raises(TypeError, match="gain_fn"):
    jaxobj.ndcg_metric(s, y, gain_fn=2.0)
  with pytest.raises(TypeError, match="discount_fn"):
    jaxobj.dcg_lambdaweight(s, y, discount_fn=2.0)
  with pytest.raises(TypeError, match="rank_fn"):
    jaxobj.mrr_metric(s, y, rank_fn="approx")
  with pytest.raises(ValueError, match="tau"):
    jaxobj.pairwise_qr_loss(s, y, tau=0.0)


# --------------------------------------------------------------------------
# Transformations.


def ref_smooth(metric, s, y, step_rank, step_cut, topn=None):
  """A metric of one list with smooth ranks and a smooth top-n cutoff."""
  n = len(s)
  ranks = 1.0 + np.array(
    [sum(step_rank(s[j] - s[i]) for j in range(n) if j != i) for i in range(n)]
  )
  cut = np.ones(n)
  if topn is not None and n > topn:
    order = np.argsort(ranks, kind="stable")
    threshold = -0.5 * (ranks[order[topn - 1]] + ranks[order[topn]])
    cut = np.array([step_cut(-r - threshold) for r in ranks])
  rel = (y >= 1).astype(float)
  if metric == "mrr_metric":
    return np.max(rel * cut / ranks)
  if metric == "precision_metric":
    return np.sum(rel * cut) / np.sum(cut)
  if metric == "recall_metric":
    return np.sum(rel * cut) / rel.sum() if rel.any() else 0.0
  if metric == "ap_metric":
    above = (ranks[None, :] <= ranks[:, None]) * rel[None, :]
    return np.sum(cut * rel * above.sum(1) / ranks) / rel.sum() if rel.any() else 0.0
  g = 2.0**y - 1.0
  dcg = np.sum(cut * g / np.log2(1.0 + ranks))
  if metric == "dcg_metric":
    return dcg
  ideal = ref_ideal_dcg(g, topn)
  return dcg / ideal if ideal != 0 else dcg


SIGMOID = {"approx": (lambda d: expit(d / 0.5), lambda d: expit(d / 0.5))}
SIGMOID["bound"] = (lambda d: max(0.0, d + 1.0), lambda d: 1.0 - max(0.0, 1.0 - d))
SMOOTH_METRICS = [
  "ndcg_metric",
  "dcg_metric",
  "mrr_metric",
  "precision_metric",
  "recall_metric",
  "ap_metric",
]


@pytest.mark.parametrize("t12n", ["approx", "bound"])
def test_smooth_metric_losses_match_float64_reference(t12n):
  s, y, mask, seg, _ = draw(15)
  s[1, 2] = -np.inf  # masks the item
  keep = mask & np.isfinite(s)
  transform = {"approx": functools.partial(jaxobj.approx_t12n, temperature=0.5)}.get(
    t12n, jaxobj.bound_t12n
  )
  cases = [(m, 2) for m in SMOOTH_METRICS if m != "dcg_metric"]
  cases += [("ndcg_metric", None), ("mrr_metric", None), ("ap_metric", 3)]
  losses = {(m, k): transform(getattr(jaxobj, m)) for m, k in cases}

  @jax.jit
  def run(s):
    out = {}
    for (m, k), f in losses.items():
      fn = functools.partial(f, topn=k, item_where=mask, segment_ids=seg)
      grad = jax.grad(lambda x, fn=fn: fn(x, y, reduction="sum"))(s)
      out[f"{m}@{k}"] = (fn(s, y, reduction="none"), grad)
    return out

  with jax.enable_x64(True):
    out = jax.device_get(run(s))
  step_rank, step_cut = SIGMOID[t12n]
  for m, k in losses:
    values, grad = out[f"{m}@{k}"]

    def ref(a, b, c, m=m, k=k):
      return -ref_smooth(m, a, b, step_rank, step_cut, k)

    want, _ = ref_per_list("list", ref, s, y, keep, seg)
    close(values, want, rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(grad)) and np.all(grad[~keep] == 0), (m, k)
    assert np.any(grad != 0), (m, k)


def test_approx_t12n_of_ndcg_is_approx_ndcg_loss():
  s, y, mask, seg, w = draw(16)
  approx = jaxobj.approx_t12n(jaxobj.ndcg_metric, temperature=0.7)
  kw = {"topn": 3, "item_where": mask, "segment_ids": seg, "item_weights": w}

  @jax.jit
  def both(s):
    a = jax.value_and_grad(lambda x: approx(x, y, **kw))(s)
    b = jax.value_and_grad(lambda x: jaxobj.approx_ndcg_loss(x, y, temperature=0.7, **kw))(s)
    return a, b

  with jax.enable_x64(True):
    (va, ga), (vb, gb) = both(s)
  close(va, vb, rtol=1e-12, atol=1e-12)
  close(ga, gb, rtol=1e-12, atol=1e-12)


def test_transformed_losses_keep_the_contract():
  s, y, mask, seg, _ = draw(17)
  where = np.array([True, False, True, True, False, True])
  loss = jaxobj.approx_t12n(jaxobj.ap_metric)
  nothing = np.zeros(B, bool)

  @jax.jit
  def run(s):
    return {
      "none": loss(s, y, item_where=mask, reduction="none"),
      "sum": loss(s, y, item_where=mask, reduction="sum"),
      "mean": loss(s, y, item_where=mask, where=where),
      "sum_and_count": loss(s, y, item_where=mask, where=where, reduction="sum_and_count"),
      "masked": jax.value_and_grad(lambda x: loss(x, y, where=nothing))(s),
    }

  with jax.enable_x64(True):
    out = jax.device_get(run(s))
  none = out["none"]
  close(out["sum"], none.sum())
  close(out["mean"], none[where].mean())
  total, count = out["sum_and_count"]
  close(total / count, none[where].mean())
  value, grad = out["masked"]
  assert value == 0.0 and not np.any(grad)
  with pytest.raises(TypeError, match="neither rank_fn nor cutoff_fn"):
    jaxobj.approx_t12n(jaxobj.opa_metric)
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.approx_t12n(jaxobj.mrr_metric, temperature=0.0)


def test_gumbel_t12n_averages_the_loss_over_gumbel_perturbed_scores():
  s, y, mask, seg, _ = draw(18)
  key = jax.random.PRNGKey(3)
  samples = 4
  kw = {"item_where": mask, "segment_ids": seg}
  gumbel = jaxobj.gumbel_t12n(jaxobj.softmax_loss, samples=samples, beta=0.5)
  smoothed = jaxobj.gumbel_t12n(jaxobj.pairwise_logistic_loss, samples=2, smoothing_factor=1e-3)
  listmle = jaxobj.gumbel_t12n(jaxobj.listmle_loss, samples=2)

  @jax.jit
  def run(s, key):
    k1, k2 = jax.random.split(key)
    noise = jax.random.gumbel(k1, (2, B, L), s.dtype)
    tiled = jnp.broadcast_to(y, (2, B, L))
    return {
      "none": gumbel(s, y, key=key, reduction="none", **kw),
      "mean": gumbel(s, y, key=key, **kw),
      "smoothed": smoothed(s, y, key=key, reduction="none", item_where=mask),
      "listmle": listmle(s, y, key=key, reduction="none"),
      # ListMLE gets a key split off; the noise is drawn with the other half.
      "listmle_want": jaxobj.listmle_loss(s + noise, tiled, key=k2, reduction="none").mean(0),
      "noise": jax.random.gumbel(key, (samples, B, L), s.dtype),
    }

  with jax.enable_x64(True):
    out = jax.device_get(run(s, key))
  per_sample = [
    ref_per_list(
      "list",
      lambda a, b, c: -np.sum(b / b.sum() * log_softmax(a)) if b.sum() else 0.0,
      s + 0.5 * g,
      y,
      mask,
      seg,
    )[0]
    for g in out["noise"]
  ]
  close(out["none"], np.mean(per_sample, axis=0))
  close(out["mean"], out["none"].mean())
  # Smoothing: log(softmax(s + g) + eps) over the valid items, then the loss.
  want = []
  for g in out["noise"][:2]:
    noisy = np.where(mask, s + g, -np.inf)
    smooth = np.log(softmax(noisy, axis=-1) + 1e-3)
    pair = ref_pairs(lambda ds, dy: np.logaddexp(0.0, -ds))
    want.append(ref_per_list("pair", pair, np.where(mask, smooth, 0.0), y, mask)[0])
  close(out["smoothed"], np.mean(want, axis=0))
  close(out["listmle"], out["listmle_want"])
  with pytest.raises(TypeError, match="key"):
    gumbel(s, y, key=None)


def test_segment_t12n_equals_native_segments():
  s, y, mask, seg, _ = draw(19)
  where = np.array([True, True, False, True, True, True])

  def plain(fn):
    def no_segments(s, y, *, item_where=None, where=None, weights=None, reduction="mean"):
      return fn(s, y, item_where=item_where, where=where, weights=weights, reduction=reduction)

    return no_segments

  assert jaxobj.segment_t12n(jaxobj.softmax_loss) is jaxobj.softmax_loss

  @jax.jit
  def run(s):
    out = {}
    for fn in (jaxobj.softmax_loss, jaxobj.ndcg_metric):
      seg_fn = jaxobj.segment_t12n(plain(fn))
      for reduction in ("none", "mean"):
        out[fn.__name__, reduction] = (
          seg_fn(s, y, segment_ids=seg, item_where=mask, where=where, reduction=reduction),
          fn(s, y, segment_ids=seg, item_where=mask, where=where, reduction=reduction),
        )
    return out

  with jax.enable_x64(True):
    for name, (got, want) in jax.device_get(run(s)).items():
      assert np.allclose(got, want, rtol=1e-12, atol=1e-12), name


# --------------------------------------------------------------------------
# rax, when it is installed: per-list values of rax's functions of the same names.


RAX_NAMES = [
  "poly1_softmax_loss",
  "unique_softmax_loss",
  "pairwise_soft_zero_one_loss",
  "pairwise_mse_loss",
  "pairwise_qr_loss",
  "recall_metric",
  "ap_metric",
  "dcg_metric",
]


def test_per_list_values_match_rax():
  rax = pytest.importorskip("rax")
  s, y, mask, seg, _ = draw(25)
  lw_rax = functools.partial(rax.dcg_lambdaweight, topn=2, normalize=True)
  lw = functools.partial(jaxobj.dcg_lambdaweight, topn=2, normalize=True)
  approx = {
    "rank_fn": functools.partial(rax.utils.approx_ranks, step_fn=jax.nn.sigmoid),
    "cutoff_fn": functools.partial(rax.utils.approx_cutoff, step_fn=jax.nn.sigmoid),
  }

  @jax.jit
  def run(s, y, mask, seg):
    pairs = {}
    for name in RAX_NAMES:
      fn = getattr(rax, name)
      pairs[name] = (
        getattr(jaxobj, name)(s, y, item_where=mask, segment_ids=seg, reduction="none"),
        jax.vmap(lambda a, b, m, g, fn=fn: fn(a, b, where=m, segments=g))(s, y, mask, seg),
      )
    # opa has no segments in rax.
    pairs["opa_metric"] = (
      jaxobj.opa_metric(s, y, item_where=mask, reduction="none"),
      jax.vmap(lambda a, b, m: rax.opa_metric(a, b, where=m))(s, y, mask),
    )
    # LambdaLoss weights: rax flattens the pair axes.
    for name in ("dcg_lambdaweight", "dcg2_lambdaweight", "labeldiff_lambdaweight"):
      pairs[name] = (
        getattr(jaxobj, name)(s, y, segment_ids=seg).reshape(B, L * L),
        getattr(rax, name)(s, y, segments=seg),
      )
    # reduce_fn=None: per item, per pair (rax flattens the pair axes), per segment.
    pairs["per_item"] = (
      jaxobj.pointwise_sigmoid_loss(s, y, item_where=mask, per_item=True, reduction="none"),
      rax.pointwise_sigmoid_loss(s, y, where=mask, reduce_fn=None),
    )
    for name, switch in (("pairwise_qr_loss", "per_pair"), ("unique_softmax_loss", "per_segment")):
      got = getattr(jaxobj, name)(
        s, y, item_where=mask, segment_ids=seg, reduction="none", **{switch: True}
      )
      pairs[switch] = (
        got.reshape(B, -1),
        getattr(rax, name)(s, y, where=mask, segments=seg, reduce_fn=None),
      )
    pairs["lambdarank"] = (
      jaxobj.pairwise_logistic_loss(s, y, lambdaweight=lw, reduction="none"),
      jax.vmap(lambda a, b: rax.pairwise_logistic_loss(a, b, lambdaweight_fn=lw_rax))(s, y),
    )
    # approx_t12n's smooth ranks and cutoffs are rax's on unmasked lists.
    for name in SMOOTH_METRICS:
      fn = getattr(rax, name)
      pairs["approx_" + name] = (
        jaxobj.approx_t12n(getattr(jaxobj, name))(s, y, topn=2, reduction="none"),
        jax.vmap(lambda a, b, fn=fn: -fn(a, b, topn=2, **approx))(s, y),
      )
    return pairs

  with jax.enable_x64(True):
    for name, (got, want) in jax.device_get(run(s, y, mask, seg)).items():
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


# --------------------------------------------------------------------------
# Per-item, per-pair and per-segment values (rax's reduce_fn=None layouts).


def _sigmoid_item(s, y):
  c = np.clip(y, 0.0, 1.0)
  return -(c * log_expit(s) + (1.0 - c) * log_expit(-s))


# name -> (switch, float64 reference, whether it takes item_weights, extra kwargs).
# The pairwise losses share one per-pair path: three of them cover it.
# "item": f(s_i, y_i); "pair": (f(s_i - s_j, y_i - y_j), every ordered pair counts);
# "segment": a segment's value from its valid items, in order.
UNREDUCED = {
  "pointwise_mse_loss": ("item", lambda s, y: (s - y) ** 2, True, {}),
  "pointwise_sigmoid_loss": ("item", _sigmoid_item, True, {}),
  "pairwise_logistic_loss(labeldiff)": (
    "pair",
    (lambda ds, dy: abs(dy) * np.logaddexp(0.0, -ds), False),
    True,
    {"lambdaweight": jaxobj.labeldiff_lambdaweight},
  ),
  "pairwise_hinge_loss": ("pair", (lambda ds, dy: max(0.0, 1.0 - ds), False), True, {}),
  "pairwise_mse_loss": ("pair", (lambda ds, dy: (ds - dy) ** 2, True), True, {}),
  "softmax_loss": ("segment", ref_softmax, True, {}),
  "poly1_softmax_loss": ("segment", ref_poly1, True, {}),
  "unique_softmax_loss": ("segment", ref_unique, True, {}),
  "listmle_loss": ("segment", lambda s, y, w: ref_listmle(s, y), False, {}),
}
SWITCH = {"item": "per_item", "pair": "per_pair", "segment": "per_segment"}


def ref_unreduced(name, s, y, keep, seg, w):
  """One list's per-item ``[L]``, per-pair ``[L, L]`` or per-segment ``[L]``
  values (0 where nothing counts), and which entries count."""
  kind, ref, _, _ = UNREDUCED[name]
  n = len(s)
  if kind == "item":
    out = np.where(keep, ref(np.where(keep, s, 0.0), y) * w, 0.0)
    return out, keep
  if kind == "pair":
    pair, all_pairs = ref
    out, counted = np.zeros((n, n)), np.zeros((n, n), bool)
    for i in range(n):
      for j in range(n):
        if keep[i] and keep[j] and seg[i] == seg[j] and (all_pairs or y[i] > y[j]):
          out[i, j] = w[i] * pair(s[i] - s[j], y[i] - y[j])
          counted[i, j] = True
    return out, counted
  out, counted = np.zeros(n), np.zeros(n, bool)
  for g in np.unique(seg[keep]):
    idx = np.flatnonzero(keep & (seg == g))
    out[idx[0]] = ref(s[idx], y[idx], w[idx])
    counted[idx[0]] = True
  return out, counted


NAN_CHECKED = ("pointwise_mse_loss", "pairwise_hinge_loss", "softmax_loss")


def _central_differences(name, s, y, keep, seg, w, lw):
  """The gradient of the weighted sum of the reference values, list by list."""
  w = w if UNREDUCED[name][2] else np.ones_like(w)
  grad, eps = np.zeros_like(s), 1e-6
  for b, i in zip(*np.nonzero(keep)):
    up, down = s[b].copy(), s[b].copy()
    up[i] += eps
    down[i] -= eps
    delta = (
      ref_unreduced(name, up, y[b], keep[b], seg[b], w[b])[0].sum()
      - ref_unreduced(name, down, y[b], keep[b], seg[b], w[b])[0].sum()
    )
    grad[b, i] = lw[b] * delta / (2 * eps)
  return grad


def _unreduced_inputs():
  s, y, mask, seg, w = draw(17)
  s[0, 1] = -np.inf  # a masked item
  mask[4] = False  # a list with no valid item: nothing counts
  where = np.ones(B, bool)
  where[2] = False  # a masked list, poisoned: 0 and zero gradients
  s[2, 0] = np.nan
  list_weights = np.random.default_rng(17).uniform(0.5, 2.0, B)
  return s, y, mask, seg, w, where, list_weights


def test_per_item_pair_and_segment_values_match_float64_reference():
  s, y, mask, seg, w, where, lw = _unreduced_inputs()
  refs, counts = {}, {}
  for name, (_, _, takes_w, _) in UNREDUCED.items():
    parts = [
      ref_unreduced(name, s[b], y[b], mask[b] & np.isfinite(s[b]) & where[b], seg[b], w[b])
      if takes_w
      else ref_unreduced(
        name, s[b], y[b], mask[b] & np.isfinite(s[b]) & where[b], seg[b], np.ones(L)
      )
      for b in range(B)
    ]
    refs[name] = np.stack([p[0] for p in parts])
    counts[name] = np.array([p[1].sum() for p in parts], np.float64)

  @jax.jit
  def run(s, y):
    poisoned = s.at[1, int(np.argmax(mask[1]))].set(jnp.nan)
    out = {}
    for name, (kind, _, takes_w, kw) in UNREDUCED.items():
      kwargs = dict(item_where=mask, segment_ids=seg, where=where, **kw)
      if takes_w:
        kwargs["item_weights"] = w
      base = functools.partial(_fn(name), **kwargs)
      fine = functools.partial(base, **{SWITCH[kind]: True})
      mean, grad = jax.value_and_grad(lambda x, f=fine: f(x, y, weights=lw))(s)
      out[name] = {"none": fine(s, y, weights=lw, reduction="none"), "mean": mean, "grad": grad}
      if name in NAN_CHECKED:  # NaN in a valid item reaches its list's values and the mean
        out[name]["nan"] = (fine(poisoned, y, reduction="none")[1], fine(poisoned, y))
        out[name]["sum_and_count"] = fine(s, y, weights=lw, reduction="sum_and_count")
    return out

  with jax.enable_x64(True):
    out = jax.device_get(run(s, y))
  keep = mask & np.isfinite(s) & where[:, None]
  for name, got in out.items():
    kind = UNREDUCED[name][0]
    extra = (1,) * (2 if kind == "pair" else 1)
    want = refs[name] * lw.reshape((B,) + extra)
    close(got["none"], want, atol=1e-9)
    denominator = np.sum(lw * counts[name])
    close(got["mean"], want.sum() / denominator)
    want_grad = _central_differences(name, s, y, keep, seg, w, lw) / denominator
    close(got["grad"], want_grad, rtol=1e-5, atol=1e-6)
    assert np.all(got["grad"][~keep] == 0), name
    if name in NAN_CHECKED:
      assert np.any(np.isnan(got["nan"][0])) and np.isnan(got["nan"][1]), name
      close(got["sum_and_count"][0], want.sum())
      close(got["sum_and_count"][1], denominator)
  # rax's shapes: [..., L] per item or segment, [..., L, L] here for rax's [..., L * L].
  assert out["pointwise_mse_loss"]["none"].shape == (B, L)
  assert out["pairwise_mse_loss"]["none"].shape == (B, L, L)
  assert out["listmle_loss"]["none"].shape == (B, L)


def test_unreduced_values_match_rax_published_values():
  """rax's losses_test (test_computes_reduced_loss, test_computes_unreduced_loss)
  and its docstrings: batch sums, and means over every pair (item) of the batch."""
  s = jnp.array([[2.0, 1.0, 3.0], [1.0, 0.5, 1.5]])
  y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  valid = jnp.array([[True, True, False], [True, True, True]])

  @jax.jit
  def run(s):
    hinge = functools.partial(jaxobj.pairwise_hinge_loss, per_pair=True)
    mse = functools.partial(jaxobj.pointwise_mse_loss, per_item=True)
    pmse = functools.partial(jaxobj.pairwise_mse_loss, per_pair=True)
    return {
      "hinge": (hinge(s, y, reduction="none").reshape(2, 9), hinge(s, y)),
      "mse": (mse(s, y, reduction="none"), mse(s, y), mse(s, y, item_where=valid)),
      "pmse": (
        pmse(s, y, reduction="none").reshape(2, 9),
        pmse(s, y),
        pmse(s, y, item_where=valid),
      ),
    }

  out = jax.device_get(run(s))
  close(out["hinge"][0].sum(axis=1), [2.0, 0.5])
  close(out["hinge"][1], 2.5 / 4.0)
  close(out["mse"][0].sum(axis=1), [11.0, 1.5])
  close(out["mse"][1], 12.5 / 6.0)
  close(out["mse"][2], 0.7)
  close(out["pmse"][0].sum(axis=1), [16.0, 1.0])
  close(out["pmse"][1], 17.0 / 18.0)
  close(out["pmse"][2], 0.07692308)


def test_unreduced_switches_are_checked():
  s, y = jnp.zeros((2, 3)), jnp.zeros((2, 3))
  with pytest.raises(ValueError, match="weights"):
    jaxobj.pointwise_mse_loss(s, y, per_item=True, weights=jnp.ones((2, 3)))
  with pytest.raises(TypeError, match="per_pair"):
    jaxobj.make_pairwise_loss(lambda ds, dy: ds)(s, y, per_pair="yes")
