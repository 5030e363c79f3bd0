"""Values and gradients of jaxobj.losses.ranking.

References are float64 NumPy/SciPy implementations written from the formulas
in the docstrings, one list (or segment) at a time: a masked item is removed
from the list and a segment is a separate list, so the references also check
that item masks equal slicing and that segments equal separate lists.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64
from scipy.special import expit, log_expit, log_softmax, logsumexp

import jaxobj

B, L = 6, 6
RTOL, ATOL = 1e-5, 1e-6


def draw(seed, shape=(B,), n=L, grades=4):
  rng = np.random.default_rng(seed)
  scores = rng.standard_normal(shape + (n,))
  labels = rng.integers(0, grades, shape + (n,)).astype(np.float64)
  mask = rng.uniform(size=shape + (n,)) < 0.75
  segments = rng.integers(0, 3, shape + (n,)).astype(np.int32)
  weights = rng.uniform(0.5, 2.0, shape + (n,))
  return scores, labels, mask, segments, weights


# --------------------------------------------------------------------------
# float64 references for one list (the valid items of one segment, in order).


def ref_ranks(s):
  """1-based ranks by score, descending; ties: the earlier item first."""
  order = np.argsort(-s, kind="stable")
  ranks = np.empty(len(s))
  ranks[order] = np.arange(1, len(s) + 1)
  return ranks


def ref_gains(y, w):
  return (2.0**y - 1.0) * w


def ref_ideal_dcg(g, topn):
  g = np.sort(g)[::-1][:topn]
  return np.sum(g / np.log2(np.arange(2, len(g) + 2)))


def ref_pair_terms(s, y, w, pair):
  """(sum over pairs y_i > y_j of w_i * pair(s_i - s_j), number of pairs)."""
  total, count = 0.0, 0
  for i in range(len(s)):
    for j in range(len(s)):
      if y[i] > y[j]:
        total += w[i] * pair(s[i] - s[j])
        count += 1
  return total, count


def ref_logistic(d):
  return np.logaddexp(0.0, -d)


def ref_hinge(d, margin=1.0):
  return max(0.0, margin - d)


def ref_softmax(s, y, w, normalize=True):
  t = y * w
  if normalize and t.sum() > 0:
    t = t / t.sum()
  return -np.sum(t * log_softmax(s))


def ref_listmle(s, y):
  ss = s[np.argsort(-y, kind="stable")]
  return sum(logsumexp(ss[k:]) - ss[k] for k in range(len(ss)))


def ref_approx_ndcg(s, y, w, temperature=1.0, topn=None):
  n = len(s)
  diff = (s[None, :] - s[:, None]) / temperature  # [i, j]: s_j - s_i
  ranks = 1.0 + np.sum(np.where(np.eye(n, dtype=bool), 0.0, expit(diff)), axis=1)
  g = ref_gains(y, w)
  cut = np.ones(n)
  if topn is not None and n > topn:
    a = -ranks
    order = np.argsort(-a, kind="stable")
    threshold = 0.5 * (a[order[topn - 1]] + a[order[topn]])
    cut = expit((a - threshold) / temperature)
  ideal = ref_ideal_dcg(g, topn)
  dcg = np.sum(g * cut / np.log2(1.0 + ranks))
  return -(dcg / ideal if ideal != 0 else dcg)


def ref_ndcg(s, y, w, topn=None):
  ranks = ref_ranks(s)
  g = ref_gains(y, w)
  take = np.isfinite(s) & (ranks <= (topn or len(s)))
  dcg = np.sum(np.where(take, g / np.log2(1.0 + ranks), 0.0))
  ideal = ref_ideal_dcg(g, topn)
  return dcg / ideal if ideal != 0 else dcg


def ref_mrr(s, y, w, topn=None):
  ranks = ref_ranks(s)
  hit = (y >= 1) & np.isfinite(s) & (ranks <= (topn or len(s)))
  return np.max(np.where(hit, 1.0 / ranks, 0.0), initial=0.0)


def ref_precision(s, y, w, topn=None):
  ranks = ref_ranks(s)
  retrieved = np.isfinite(s) & (ranks <= (topn or len(s)))
  return np.sum(retrieved & (y >= 1)) / max(np.sum(retrieved), 1)


def ref_per_list(kind, fn, s, y, mask=None, segments=None, w=None):
  """Per-list values and which lists count in the mean.

  kind: "point" (mean over valid items), "pair" (mean over valid pairs within
  segments), "list" (mean over non-empty segments of ``fn``).
  """
  s, y = f64(s), f64(y)
  shape = s.shape[:-1]
  s, y = s.reshape(-1, s.shape[-1]), y.reshape(-1, s.shape[-1])
  mask = np.ones(s.shape, bool) if mask is None else np.reshape(mask, s.shape)
  seg = np.zeros(s.shape, int) if segments is None else np.reshape(segments, s.shape)
  w = np.ones(s.shape) if w is None else np.reshape(w, s.shape)
  values, counted = [], []
  for b in range(s.shape[0]):
    keep = mask[b]
    if kind == "point":
      terms = fn(s[b][keep], y[b][keep]) * w[b][keep]
      values.append(terms.mean() if keep.any() else 0.0)
      counted.append(keep.any())
      continue
    groups = [np.flatnonzero(keep & (seg[b] == g)) for g in np.unique(seg[b][keep])]
    parts = [fn(s[b][g], y[b][g], w[b][g]) for g in groups]
    if kind == "pair":
      total, count = np.sum([p[0] for p in parts]), np.sum([p[1] for p in parts])
      values.append(total / max(count, 1))
      counted.append(count > 0)
    else:
      values.append(np.mean(parts) if parts else 0.0)
      counted.append(bool(parts))
  return np.reshape(values, shape), np.reshape(counted, shape)


def ref_mean(values, counted):
  return values[counted].mean() if counted.any() else 0.0


# name -> (kind, reference, whether it takes item_weights)
LOSSES = {
  "pointwise_mse_loss": ("point", lambda s, y: (s - y) ** 2, True),
  "pointwise_sigmoid_loss": (
    "point",
    lambda s, y: -(np.clip(y, 0, 1) * log_expit(s) + (1 - np.clip(y, 0, 1)) * log_expit(-s)),
    True,
  ),
  "pairwise_logistic_loss": ("pair", lambda s, y, w: ref_pair_terms(s, y, w, ref_logistic), True),
  "pairwise_hinge_loss": ("pair", lambda s, y, w: ref_pair_terms(s, y, w, ref_hinge), True),
  "softmax_loss": ("list", ref_softmax, True),
  "listmle_loss": ("list", lambda s, y, w: ref_listmle(s, y), False),
  "approx_ndcg_loss": ("list", ref_approx_ndcg, True),
  "ndcg_metric": ("list", ref_ndcg, True),
  "mrr_metric": ("list", ref_mrr, False),
  "precision_metric": ("list", ref_precision, False),
}
LIST_LOSSES = [n for n in LOSSES if not n.endswith("_metric")]
METRICS = [n for n in LOSSES if n.endswith("_metric")]


def reference(name, s, y, mask=None, segments=None, w=None, **kw):
  kind, fn, _ = LOSSES[name]
  if kw:
    fn = functools.partial(fn, **kw)
  if kind == "point":
    segments = None
  return ref_per_list(kind, fn, s, y, mask, segments, w)


STATIC = ("topn", "normalize_labels")


@functools.cache
def _compiled(name, static):
  fn = functools.partial(getattr(jaxobj, name), **dict(static))

  @jax.jit
  def run(s, y, kw):
    total, grad = jax.value_and_grad(lambda x: fn(x, y, reduction="sum", **kw))(s)
    return {
      "none": fn(s, y, reduction="none", **kw),
      "mean": fn(s, y, **kw),
      "sum": total,
      "grad": grad,
    }

  return run, jax.jit(fn)


def _split_static(kw):
  return tuple(sorted((k, kw.pop(k)) for k in STATIC if k in kw)), kw


def _neutral(name, s, kw):
  """Neutral masks, weights and hyperparameters for the arguments not given,
  so that calls differing only in those share one compilation."""
  params = inspect.signature(getattr(jaxobj, name)).parameters
  shape = np.shape(s)
  batch = shape if name == "bpr_loss" else shape[:-1]
  kw.setdefault("where", np.ones(batch, bool))
  kw.setdefault("weights", np.ones(batch))
  if "item_where" in params:
    kw.setdefault("item_where", np.ones(shape, bool))
  if "item_weights" in params:
    kw.setdefault("item_weights", np.ones(shape))
  for hyper in ("margin", "temperature"):
    if hyper in params:
      kw.setdefault(hyper, params[hyper].default)
  return kw


def evaluate(name, s, y, **kw):
  """Every reduction and the gradient of the sum w.r.t. the scores, from one
  compilation per loss, argument shapes and static arguments (instead of one
  per operation). Segments stay optional: they select other code paths."""
  static, kw = _split_static(kw)
  return _compiled(name, static)[0](s, y, _neutral(name, s, kw))


def call(name, s, y, reduction="mean", **kw):
  return evaluate(name, s, y, **kw)[reduction]


def jitted(name, **static):
  """The loss itself, jitted (for check_grads)."""
  return _compiled(name, _split_static(static)[0])[1]


# --------------------------------------------------------------------------
# Values against the references.


CASES = ["plain", "item_where", "segments+item_weights"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(LOSSES))
def test_values_match_float64_reference(name, case):
  s, y, mask, seg, w = draw(1)
  kw, ref_kw = {}, {}
  if "item_where" in case:
    kw["item_where"], ref_kw["mask"] = mask, mask
  if "segments" in case:
    kw["segment_ids"], ref_kw["segments"] = seg, seg
  if "item_weights" in case and LOSSES[name][2]:
    kw["item_weights"], ref_kw["w"] = w, w
  values, _ = reference(name, s, y, **ref_kw)
  with jax.enable_x64(True):
    got = call(name, s, y, reduction="none", **kw)
    assert got.shape == (B,) and got.dtype == jnp.float64
    close(got, values)


@pytest.mark.parametrize("name", list(LOSSES))
def test_reductions_match_float64_reference(name):
  s, y, mask, seg, _ = draw(2)
  mask[3] = False  # a list with no valid item leaves the mean
  values, counted = reference(name, s, y, mask, seg)
  kw = {"item_where": mask, "segment_ids": seg}
  with jax.enable_x64(True):
    close(call(name, s, y, **kw), ref_mean(values, counted))
    close(call(name, s, y, reduction="sum", **kw), values.sum())
  # float32 agrees with the float64 reference too.
  got = call(name, s.astype(np.float32), y.astype(np.float32), reduction="none", **kw)
  assert got.dtype == jnp.float32
  close(got, values, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
  "name,kw",
  [
    ("pairwise_hinge_loss", {"margin": 0.3}),
    ("pairwise_hinge_loss", {"margin": 0.0}),
    ("softmax_loss", {"normalize_labels": False}),
    ("approx_ndcg_loss", {"temperature": 0.25}),
    ("approx_ndcg_loss", {"topn": 2}),
    ("approx_ndcg_loss", {"topn": 3, "temperature": 2.0}),
    ("ndcg_metric", {"topn": 2}),
    ("ndcg_metric", {"topn": 10}),
    ("mrr_metric", {"topn": 1}),
    ("mrr_metric", {"topn": 3}),
    ("precision_metric", {"topn": 2}),
    ("precision_metric", {"topn": 10}),
  ],
  ids=str,
)
def test_hyperparameters_match_reference(name, kw):
  s, y, mask, seg, _ = draw(2)
  ref_kw = dict(kw)
  if name == "pairwise_hinge_loss":
    margin = ref_kw.pop("margin")
    ref = functools.partial(ref_pair_terms, pair=lambda d: ref_hinge(d, margin))
    values, counted = ref_per_list("pair", ref, s, y, mask, seg)
  elif name == "softmax_loss":
    values, counted = reference(name, s, y, mask, seg, normalize=False)
  else:
    values, counted = reference(name, s, y, mask, seg, **ref_kw)
  with jax.enable_x64(True):
    got = call(name, s, y, item_where=mask, segment_ids=seg, reduction="none", **kw)
    close(got, values)
    close(call(name, s, y, item_where=mask, segment_ids=seg, **kw), ref_mean(values, counted))


def test_bpr_matches_reference():
  rng = np.random.default_rng(3)
  pos, neg = rng.standard_normal(B), rng.standard_normal((B, 4))
  neg[1, :2] = -np.inf
  want = [np.mean(np.logaddexp(0.0, n[np.isfinite(n)] - p)) for p, n in zip(pos, neg)]
  with jax.enable_x64(True):
    close(call("bpr_loss", pos, neg, reduction="none"), want)
    close(call("bpr_loss", pos, neg), np.mean(want))
    # One negative per positive: the same shape, -log sigmoid(s+ - s-).
    close(call("bpr_loss", pos, neg[:, 2], reduction="none"), -log_expit(pos - neg[:, 2]))


def test_bpr_within_a_list_is_the_pairwise_logistic_loss():
  rng = np.random.default_rng(4)
  pos, neg = rng.standard_normal(B), rng.standard_normal((B, 3))
  scores = np.concatenate([pos[:, None], neg], axis=1)
  labels = np.array([1.0, 0.0, 0.0, 0.0]) * np.ones((B, 1))
  close(
    call("bpr_loss", pos, neg, reduction="none"),
    call("pairwise_logistic_loss", scores, labels, reduction="none"),
  )


def test_mean_matches_global_pair_and_item_means_with_count_weights():
  """rax's default mean runs over all pairs (items) of the batch; count
  weights turn the mean over lists into exactly that."""
  s, y, mask, _, _ = draw(5)
  pairs = (y[:, :, None] > y[:, None, :]) & mask[:, :, None] & mask[:, None, :]
  with jax.enable_x64(True):
    for name in ("pairwise_logistic_loss", "pairwise_hinge_loss"):
      _, fn, _ = LOSSES[name]
      totals = [fn(s[b][mask[b]], y[b][mask[b]], np.ones(mask[b].sum()))[0] for b in range(B)]
      got = call(name, s, y, item_where=mask, weights=pairs.sum((1, 2)).astype(float))
      close(got, np.sum(totals) / pairs.sum())
    sq = np.where(mask, (s - y) ** 2, 0.0)
    got = call("pointwise_mse_loss", s, y, item_where=mask, weights=mask.sum(1).astype(float))
    close(got, sq.sum() / mask.sum())


# --------------------------------------------------------------------------
# Segments, masks and -inf items.


@pytest.mark.parametrize("name", list(LOSSES))
def test_segments_equal_separate_lists(name):
  """Each row packs two queries (segments 0 and 1, interleaved); each query
  alone is the row with the other query's items masked (== removed)."""
  s, y, _, _, _ = draw(6)
  rng = np.random.default_rng(6)
  seg = rng.permuted(np.tile([0, 0, 0, 1, 1, 1], (B, 1)), axis=1)
  for b, k in np.ndindex(B, 2):  # each query: labels 0, 1, 2 in random order
    y[b, seg[b] == k] = rng.permutation(3)
  packed = call(name, s, y, segment_ids=seg, reduction="none")
  alone = [call(name, s, y, item_where=seg == k, reduction="none") for k in (0, 1)]
  if LOSSES[name][0] == "pair":  # the mean over all pairs of the row
    pairs = [
      np.sum(
        (y[:, :, None] > y[:, None, :]) & (seg == k)[:, :, None] & (seg == k)[:, None, :],
        axis=(1, 2),
      )
      for k in (0, 1)
    ]
    close(packed, (alone[0] * pairs[0] + alone[1] * pairs[1]) / (pairs[0] + pairs[1]))
  elif LOSSES[name][0] == "point":  # segments change nothing
    close(packed, call(name, s, y, reduction="none"))
  else:
    close(packed, (alone[0] + alone[1]) / 2)


@pytest.mark.parametrize("name", LIST_LOSSES)
def test_minus_inf_scores_mask_items_in_losses(name):
  s, y, mask, seg, _ = draw(7)
  s_inf = np.where(mask, s, -np.inf)
  for kw in ({}, {"segment_ids": seg}):
    want = call(name, s, y, item_where=mask, reduction="none", **kw)
    close(call(name, s_inf, y, reduction="none", **kw), want)
    g = evaluate(name, jnp.asarray(s_inf, jnp.float32), y, **kw)["grad"]
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0.0)


def test_minus_inf_scores_are_unranked_in_metrics():
  """Unranked items add nothing to DCG, MRR or precision, but their gain
  still counts in the ideal DCG."""
  s = np.array([[0.5, -np.inf, 0.1, 2.0]])
  y = np.array([[0.0, 2.0, 1.0, 0.0]])
  close(call("ndcg_metric", s, y, reduction="none"), [ref_ndcg(s[0], y[0], 1.0)])
  close(call("ndcg_metric", s, y, reduction="none"), [(1 / np.log2(4)) / (3 + 1 / np.log2(3))])
  close(call("mrr_metric", s, y, reduction="none"), [1 / 3])
  close(call("precision_metric", s, y, reduction="none"), [1 / 3])
  close(call("precision_metric", s, y, topn=4, reduction="none"), [1 / 3])


@pytest.mark.parametrize("name", list(LOSSES))
def test_nan_behind_item_mask_changes_nothing(name):
  s, y, mask, seg, _ = draw(8)
  clean = call(name, s, y, item_where=mask, segment_ids=seg, reduction="none")
  bad_s, bad_y = np.where(mask, s, np.nan), np.where(mask, y, np.nan)
  close(call(name, bad_s, bad_y, item_where=mask, segment_ids=seg, reduction="none"), clean)
  bad_s = jnp.asarray(bad_s, jnp.float32)
  g = evaluate(name, bad_s, bad_y, item_where=mask, segment_ids=seg)["grad"]
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0.0)


# --------------------------------------------------------------------------
# Degenerate lists: finite, documented values.


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_masked_lists_are_zero_and_leave_the_mean(name):
  s, y, mask, seg, _ = draw(9)
  mask[[1, 4]] = False
  none = call(name, s, y, item_where=mask, segment_ids=seg, reduction="none")
  assert np.all(np.asarray(none)[[1, 4]] == 0.0)
  keep = np.ones(B, bool)
  keep[[1, 4]] = False  # masking the lists (== slicing them, by the contract)
  close(
    call(name, s, y, item_where=mask, segment_ids=seg),
    call(name, s, y, item_where=mask, segment_ids=seg, where=keep),
  )
  empty = np.zeros_like(mask)
  assert float(call(name, s, y, item_where=empty)) == 0.0
  g = evaluate(name, jnp.asarray(s, jnp.float32), y, item_where=empty)["grad"]
  assert np.all(np.asarray(g) == 0.0)
  # -inf everywhere: a loss masks every item, a metric ranks none.
  inf = jnp.full(s.shape, -jnp.inf)
  assert np.all(np.isfinite(call(name, inf, y, reduction="none")))
  assert np.all(np.isfinite(evaluate(name, inf, y)["grad"]))


@pytest.mark.parametrize("name", ["pairwise_logistic_loss", "pairwise_hinge_loss"])
def test_lists_without_pairs_leave_the_pairwise_mean(name):
  s, y, _, _, _ = draw(10)
  y[2] = 1.0  # all tied: no ordered pair
  none = call(name, s, y, reduction="none")
  assert float(none[2]) == 0.0
  keep = np.arange(B) != 2
  close(call(name, s, y), np.mean(np.asarray(none)[keep]))


@pytest.mark.parametrize(
  "name", ["softmax_loss", "approx_ndcg_loss", "ndcg_metric", "mrr_metric", "precision_metric"]
)
def test_lists_without_relevant_items_score_zero(name):
  s, y, _, _, _ = draw(11)
  y[3] = 0.0
  none = call(name, s, y, reduction="none")
  assert float(none[3]) == 0.0
  close(call(name, s, y), np.mean(none))  # still a list: it stays in the mean
  g = evaluate(name, jnp.asarray(s, jnp.float32), y)["grad"]
  assert np.all(np.asarray(g)[3] == 0.0)


def test_single_item_lists():
  """Lists with one valid item (the others masked, which equals slicing)."""
  s, y, _, _, _ = draw(26)
  one = np.arange(L) == np.arange(B)[:, None]
  y[one] = 2.0
  out = {name: call(name, s, y, item_where=one, reduction="none") for name in LOSSES}
  for name in ("listmle_loss", "softmax_loss", "pairwise_logistic_loss", "pairwise_hinge_loss"):
    assert np.all(np.asarray(out[name]) == 0.0), name
  for name in ("ndcg_metric", "mrr_metric", "precision_metric"):
    close(out[name], 1.0)
  close(out["approx_ndcg_loss"], -1.0)
  close(out["pointwise_mse_loss"], (s[one] - 2.0) ** 2)
  assert float(call("pairwise_logistic_loss", s, y, item_where=one)) == 0.0  # no pair anywhere


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
@pytest.mark.parametrize("name", LIST_LOSSES)
def test_extreme_scores_are_finite(name, scale):
  s, y, mask, seg, _ = draw(12)
  s = jnp.asarray(s * scale, jnp.float32)
  for kw in ({}, {"segment_ids": seg, "item_where": mask}):
    out = evaluate(name, s, y, **kw)
    v, g = out["mean"], out["grad"]
    if not (name == "pointwise_mse_loss" and scale == 1e30):  # the square overflows
      assert np.isfinite(float(v))
    assert np.all(np.isfinite(g))


def test_listmle_is_exact_for_large_scores():
  """ListMLE's cumulative log-sum-exp at scores of 1e4: the exact value
  (logsumexp of a dominated tail is its max) and gradient."""
  s = np.array([[1e4, -1e4, 2e4, 0.0]])
  y = np.array([[3.0, 2.0, 1.0, 0.0]])
  want = ref_listmle(s[0], y[0])
  close(call("listmle_loss", s.astype(np.float32), y, reduction="none"), [want], rtol=1e-6)
  with jax.enable_x64(True):
    g = evaluate("listmle_loss", s, y)["grad"]
    g_seg = evaluate("listmle_loss", s, y, segment_ids=np.zeros((1, 4), int))["grad"]
  # Item 2 wins every suffix it is in (3 of them), the others lose their own.
  close(g, [[-1.0, -1.0, 2.0, 0.0]], atol=1e-12)
  close(g_seg, g, atol=1e-12)


# --------------------------------------------------------------------------
# Ties and ranks.


def test_metric_ties_go_to_the_earlier_item():
  s = np.zeros((1, 4))
  y = np.array([[0.0, 1.0, 0.0, 2.0]])
  # Ranks 1..4 in list order.
  dcg = 1 / np.log2(3) + 3 / np.log2(5)
  close(call("ndcg_metric", s, y, reduction="none"), [dcg / (3 + 1 / np.log2(3))])
  close(call("mrr_metric", s, y, reduction="none"), [0.5])
  close(call("precision_metric", s, y, topn=2, reduction="none"), [0.5])
  # Reversing the list reverses the tie order.
  close(call("mrr_metric", s, y[:, ::-1].copy(), reduction="none"), [1.0])


def test_listmle_ties_keep_list_order():
  s = np.array([[0.3, -1.0, 2.0]])
  y = np.array([[1.0, 1.0, 0.0]])
  with jax.enable_x64(True):
    got = call("listmle_loss", s, y, reduction="none")
    got_seg = call("listmle_loss", s, y, segment_ids=np.zeros((1, 3), int), reduction="none")
  want = logsumexp(s[0]) - 0.3 + logsumexp(s[0, 1:]) + 1.0
  close(got, [want], rtol=1e-12)
  close(got_seg, [want], rtol=1e-12)


def test_ndcg_of_the_ideal_ranking_is_one_and_approx_ndcg_approaches_it():
  y = np.array([[3.0, 0.0, 1.0, 2.0, 0.0]])
  close(call("ndcg_metric", y, y), 1.0)
  close(call("ndcg_metric", -y, y, topn=1), 0.0)
  sharp = call("approx_ndcg_loss", 10.0 * y, y, temperature=0.05)
  close(sharp, -1.0, atol=1e-4)


# --------------------------------------------------------------------------
# Gradients.


GRAD_CASES = [
  ("pointwise_mse_loss", {}),
  ("pointwise_sigmoid_loss", {}),
  ("pairwise_logistic_loss", {}),
  ("pairwise_hinge_loss", {"margin": 0.7}),
  ("softmax_loss", {}),
  ("softmax_loss", {"normalize_labels": False}),
  ("listmle_loss", {}),
  ("approx_ndcg_loss", {"temperature": 0.5}),
]


@pytest.mark.parametrize("segmented", [False, True], ids=["lists", "segments"])
@pytest.mark.parametrize("name,kw", GRAD_CASES, ids=str)
def test_gradients_match_central_differences(name, kw, segmented):
  """check_grads' test in float64, on the compiled loss: the gradient along
  random directions against central differences of the value."""
  s, y, mask, seg, w = draw(13)
  kw = dict(kw, item_where=mask, weights=w[:, 0])
  if segmented:
    kw["segment_ids"] = seg
  if LOSSES[name][2]:
    kw["item_weights"] = w
  rng, eps = np.random.default_rng(13), 1e-6
  with jax.enable_x64(True):
    grad = np.asarray(evaluate(name, s, y, **kw)["grad"])
    for _ in range(3):
      v = rng.standard_normal(s.shape)
      up = call(name, s + eps * v, y, reduction="sum", **kw)
      down = call(name, s - eps * v, y, reduction="sum", **kw)
      close(np.sum(grad * v), (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)
    assert np.all(grad[~mask] == 0.0)


@pytest.mark.parametrize(
  "name,hyper,value",
  [
    ("pairwise_hinge_loss", "margin", 0.7),
    ("approx_ndcg_loss", "temperature", 0.5),
  ],
)
def test_check_grads_hyperparameters(name, hyper, value):
  s, y, mask, seg, _ = draw(14)
  with jax.enable_x64(True):
    fn = jitted(name)
    f = lambda h: fn(s, y, item_where=mask, segment_ids=seg, **{hyper: h})
    check_grads(f, (np.float64(value),), order=1, modes=["rev"])


def test_bpr_check_grads_and_closed_form():
  rng = np.random.default_rng(15)
  pos, neg = rng.standard_normal(B), rng.standard_normal((B, 3))
  with jax.enable_x64(True):
    check_grads(jitted("bpr_loss"), (pos, neg), order=1, modes=["rev"])
    g = evaluate("bpr_loss", pos, neg)["grad"]
  close(g, -np.mean(expit(neg - pos[:, None]), axis=1), rtol=1e-12)


def test_softmax_gradient_is_softmax_minus_target():
  s, y, _, _, _ = draw(16)
  y[:, 0] = 1.0
  with jax.enable_x64(True):
    g = evaluate("softmax_loss", s, y)["grad"]
  close(g, np.exp(log_softmax(s, axis=1)) - y / y.sum(1, keepdims=True), rtol=1e-12)


def test_pairwise_logistic_gradient_closed_form():
  s = np.array([[0.2, -0.4, 1.0]])
  y = np.array([[2.0, 1.0, 0.0]])
  with jax.enable_x64(True):
    g = evaluate("pairwise_logistic_loss", s, y)["grad"]
  # Pairs (0,1), (0,2), (1,2); d/ds_i softplus(s_j - s_i) = -sigmoid(s_j - s_i).
  p01, p02, p12 = expit(-0.6), expit(0.8), expit(1.4)
  close(g, [[-(p01 + p02) / 3, (p01 - p12) / 3, (p02 + p12) / 3]], rtol=1e-12)


def test_metrics_have_zero_gradients():
  s, y, _, _, _ = draw(17)
  for name in METRICS:
    g = evaluate(name, jnp.asarray(s, jnp.float32), y)["grad"]
    assert np.all(np.asarray(g) == 0.0)


# --------------------------------------------------------------------------
# The contract for the metrics (the conformance test covers the losses).


@pytest.mark.parametrize("name", METRICS)
def test_metric_contract(name):
  s, y, _, _, w = draw(18, shape=(2, 3))
  where = np.array([[True, False, True], [True, True, False]])
  none = call(name, s, y, reduction="none")
  assert none.shape == (2, 3) and none.dtype == jnp.float32
  close(call(name, s, y, reduction="sum"), np.sum(none))
  close(call(name, s, y), np.mean(none))
  close(call(name, s, y, where=where), call(name, s[where], y[where]))
  close(call(name, s, y, weights=w[..., 0]), np.sum(w[..., 0] * none) / w[..., 0].sum())
  poisoned = np.where(where[..., None], s, np.nan)
  close(call(name, poisoned, y, where=where), call(name, s[where], y[where]))
  low = call(name, s.astype(jnp.bfloat16), y.astype(jnp.bfloat16))
  assert low.dtype == jnp.float32
  assert float(call(name, s, y, where=np.zeros((2, 3), bool))) == 0.0


def test_jit_traces_once_with_segments_and_masks():
  s, y, mask, seg, _ = draw(19)
  traces = []

  @jax.jit
  def f(s, y, mask, seg):
    traces.append(1)
    return jnp.stack([getattr(jaxobj, n)(s, y, item_where=mask, segment_ids=seg) for n in LOSSES])

  close(f(s, y, mask, seg), [call(n, s, y, item_where=mask, segment_ids=seg) for n in LOSSES])
  f(s * 2, y, ~mask, seg + 1)
  assert len(traces) == 1


# --------------------------------------------------------------------------
# Bad input.


def test_per_item_where_points_to_item_where():
  s, y, mask, _, _ = draw(20)
  with pytest.raises(ValueError, match=r"where\.shape=\(6, 6\).*item_where"):
    jaxobj.softmax_loss(s, y, where=mask)


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_item_arguments(name):
  s, y, mask, seg, _ = draw(21)
  with pytest.raises(TypeError, match="item_where"):
    call(name, s, y, item_where=mask.astype(np.float32))
  with pytest.raises(ValueError, match=r"item_where\.shape=\(6,\)"):
    call(name, s, y, item_where=mask[:, 0])
  with pytest.raises(TypeError, match="segment_ids"):
    call(name, s, y, segment_ids=seg.astype(np.float32))
  with pytest.raises(ValueError, match=r"segment_ids\.shape=\(6, 3\)"):
    call(name, s, y, segment_ids=seg[:, :3])
  with pytest.raises(ValueError, match=r"labels\.shape=\(6, 5\)"):
    call(name, s, y[:, :5])
  with pytest.raises(ValueError, match="list axis"):
    call(name, np.float32(1.0), np.float32(1.0))
  with pytest.raises(TypeError, match="scores"):
    getattr(jaxobj, name)(s.astype(np.int32), y)


def test_bad_item_weights():
  s, y, _, _, w = draw(22)
  with pytest.raises(ValueError, match=r"item_weights\.shape=\(6, 1, 6\)"):
    jaxobj.softmax_loss(s, y, item_weights=w[:, None])
  with pytest.raises(TypeError, match="item_weights"):
    jaxobj.pairwise_logistic_loss(s, y, item_weights=w.astype(np.int32))


@pytest.mark.parametrize("name", ["approx_ndcg_loss"] + METRICS)
def test_bad_topn(name):
  s, y, _, _, _ = draw(23)
  fn = getattr(jaxobj, name)
  with pytest.raises(ValueError, match="topn"):
    fn(s, y, topn=0)
  with pytest.raises(TypeError, match="topn"):
    fn(s, y, topn=2.0)


def test_bad_hyperparameters():
  s, y, _, _, _ = draw(24)
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.approx_ndcg_loss(s, y, temperature=0.0)
  with pytest.raises(ValueError, match="margin"):
    jaxobj.pairwise_hinge_loss(s, y, margin=-1.0)


def test_bpr_shape_errors():
  pos, neg = np.zeros(4, np.float32), np.zeros((4, 3), np.float32)
  with pytest.raises(ValueError, match=r"negative_scores\.shape=\(3, 3\)"):
    jaxobj.bpr_loss(pos, neg[:3])
  with pytest.raises(TypeError, match="negative_scores"):
    jaxobj.bpr_loss(pos, neg.astype(np.int32))


# --------------------------------------------------------------------------
# rax, when it is installed (not a dependency): the per-list values are rax's
# losses and metrics applied to each list with their default mean reduction.


@pytest.mark.parametrize("name", list(LOSSES))
def test_per_list_values_match_rax(name):
  rax = pytest.importorskip("rax")
  s, y, mask, seg, _ = draw(25)
  approx = functools.partial(
    rax.ndcg_metric, rank_fn=rax.utils.approx_ranks, cutoff_fn=rax.utils.approx_cutoff
  )
  fn = {"approx_ndcg_loss": lambda *a, **k: -approx(*a, **k)}.get(name, getattr(rax, name, None))
  kw = {"normalize_labels": False} if name == "softmax_loss" else {}
  with jax.enable_x64(True):
    want = jax.vmap(lambda a, b, m, g: fn(a, b, where=m, segments=g))(s, y, mask, seg)
    got = call(name, s, y, item_where=mask, segment_ids=seg, reduction="none", **kw)
  close(got, want)


def test_nan_scores_and_labels_reach_the_value():
  # Comparisons dropped NaN: these gave 1.868 and 0.826.
  nan = jnp.nan
  assert np.isnan(
    float(jaxobj.pairwise_logistic_loss(jnp.array([[0.3, -1, 2]]), jnp.array([[1, nan, 0]])))
  )
  assert np.isnan(float(jaxobj.ndcg_metric(jnp.array([[nan, 1, 2]]), jnp.array([[1, 0, 2]]))))
  s, y = jnp.array([[0.3, -1.0, 2.0], [1.0, 0.5, 0.0]]), jnp.array([[1.0, 2.0, 0.0]] * 2)
  item = jnp.ones((2, 3), bool).at[0, 1].set(False)
  for fn in (
    jaxobj.pairwise_hinge_loss,
    jaxobj.listmle_loss,
    jaxobj.softmax_loss,
    jaxobj.approx_ndcg_loss,
    jaxobj.mrr_metric,
    jaxobj.precision_metric,
  ):
    for args in ((s.at[0, 1].set(nan), y), (s, y.at[0, 1].set(nan))):
      out = fn(*args, reduction="none")
      assert np.isnan(out[0]) and np.isfinite(out[1]), fn.__name__
      # With the list or the item masked, the NaN is harmless.
      assert np.isfinite(float(fn(*args, where=jnp.array([False, True])))), fn.__name__
      assert np.isfinite(float(fn(*args, item_where=item))), fn.__name__
