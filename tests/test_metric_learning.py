"""Values and gradients of jaxobj.losses.metric_learning.

References are float64 NumPy implementations written from the formulas in the
docstrings: explicit differences and loops over anchors, pairs and triplets
(never the Gram-matrix form the losses use), arccos for ArcFace.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64
from scipy.special import log_softmax, logsumexp

import jaxobj

N, D, K = 8, 4, 5
RTOL, ATOL = 1e-5, 1e-6
MASK = np.array([True, False, True, True, False, True, True, False])


# --------------------------------------------------------------------------
# float64 references: per-element values and whether each counts in the mean.


def _rows(*arrays):
  return [f64(a).reshape(-1, a.shape[-1]) for a in arrays]


def _all(values, shape):
  values = np.asarray(values, np.float64).reshape(shape)
  return values, np.ones(shape, bool)


def ref_contrastive(x1, x2, y, margin=1.0):
  d = np.linalg.norm(f64(x1) - f64(x2), axis=-1)
  return _all(y * d**2 + (1 - y) * np.maximum(0.0, margin - d) ** 2, y.shape)


def ref_cosine_embedding(x1, x2, y, margin=0.0):
  x1, x2 = f64(x1), f64(x2)
  cos = np.sum(x1 * x2, -1) / np.sqrt((np.sum(x1**2, -1) + 1e-12) * (np.sum(x2**2, -1) + 1e-12))
  return _all(np.where(y == 1, 1 - cos, np.maximum(0.0, cos - margin)), y.shape)


def _torch_cos(u, v, eps):
  return u @ v / (max(np.linalg.norm(u), eps) * max(np.linalg.norm(v), eps))


def ref_triplet(a, p, n, margin=1.0, p_norm=2.0, eps=1e-6, swap=False, distance="lp"):
  def dist(u, v):
    if distance == "lp":
      return np.sum(np.abs(u - v + eps) ** p_norm) ** (1.0 / p_norm)
    if distance == "squared_euclidean":
      return np.sum((u - v) ** 2)
    return 1.0 - _torch_cos(u, v, 1e-8)

  out = []
  for ai, pi, ni in zip(*_rows(a, p, n)):
    dn = min(dist(ai, ni), dist(pi, ni)) if swap else dist(ai, ni)
    out.append(max(0.0, dist(ai, pi) - dn + margin))
  return _all(out, a.shape[:-1])


def ref_npairs(a, p, y, reg_lambda=0.002):
  a, p = _rows(a, p)
  y = np.asarray(y).reshape(-1)
  out = []
  for i in range(len(y)):
    logp = log_softmax(np.array([a[i] @ p[j] for j in range(len(y))]))
    t = (y == y[i]) / np.sum(y == y[i])
    out.append(-np.sum(t * logp) + 0.25 * reg_lambda * (a[i] @ a[i] + p[i] @ p[i]))
  return _all(out, np.shape(y))


def _positives_negatives(y, i):
  same = [j for j in range(len(y)) if j != i and y[j] == y[i]]
  return same, [j for j in range(len(y)) if y[j] != y[i]]


def ref_multi_similarity(x, y, alpha=2.0, beta=50.0, base=0.5):
  (x,) = _rows(x)
  y = np.asarray(y).reshape(-1)
  out = []
  for i in range(len(y)):
    pos, neg = _positives_negatives(y, i)
    s = [_torch_cos(x[i], x[j], 1e-12) for j in range(len(y))]
    lp = logsumexp([0.0] + [-alpha * (s[j] - base) for j in pos]) / alpha
    ln = logsumexp([0.0] + [beta * (s[j] - base) for j in neg]) / beta
    out.append(lp + ln)
  return _all(out, np.shape(y))


def _pair_distance(u, v, distance):
  if distance == "euclidean":
    return np.linalg.norm(u - v)
  if distance == "squared_euclidean":
    return np.sum((u - v) ** 2)
  return 1.0 - _torch_cos(u, v, 1e-12)


def _per_anchor(x, y, distance, anchor_value):
  """Loops over anchors; those without a positive or a negative are 0 and not counted."""
  (x,) = _rows(x)
  shape = np.shape(y)
  y = np.asarray(y).reshape(-1)
  values, counted = np.zeros(len(y)), np.zeros(len(y), bool)
  for i in range(len(y)):
    pos, neg = _positives_negatives(y, i)
    if pos and neg:
      dp = [_pair_distance(x[i], x[j], distance) for j in pos]
      dn = [_pair_distance(x[i], x[j], distance) for j in neg]
      values[i], counted[i] = anchor_value(dp, dn), True
  return values.reshape(shape), counted.reshape(shape)


def ref_batch_hard(x, y, margin=1.0, soft=False, distance="euclidean"):
  def value(dp, dn):
    v = max(dp) - min(dn) + margin
    return np.logaddexp(0.0, v) if soft else max(0.0, v)

  return _per_anchor(x, y, distance, value)


def ref_batch_all(x, y, margin=1.0, distance="euclidean"):
  def value(dp, dn):
    return np.mean([max(0.0, a - b + margin) for a in dp for b in dn])

  return _per_anchor(x, y, distance, value)


def _unit(v):
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _margin_softmax_ref(x, y, w, scale, phi):
  (x,) = _rows(x)
  cos = _unit(x) @ _unit(f64(w)).T
  out = []
  for c, k in zip(cos, np.asarray(y).reshape(-1)):
    logits = scale * c
    logits[k] = scale * phi(c[k])
    out.append(-log_softmax(logits)[k])
  return _all(out, np.shape(y))


def ref_arcface(x, y, w, margin=0.5, scale=64.0, margin_mode="threshold"):
  def phi(c):
    arc = math.cos(math.acos(min(max(c, -1.0), 1.0)) + margin)
    if margin_mode == "threshold" and c <= math.cos(math.pi - margin):
      return c - margin * math.sin(margin)
    if margin_mode == "easy" and c <= 0:
      return c
    return arc

  return _margin_softmax_ref(x, y, w, scale, phi)


def ref_cosface(x, y, w, margin=0.35, scale=64.0):
  return _margin_softmax_ref(x, y, w, scale, lambda c: c - margin)


# --------------------------------------------------------------------------
# Inputs (float32; labels int32) and the table of losses.


def _emb(rng, n, scale=1.0):
  return (scale * rng.standard_normal((n, D))).astype(np.float32)


def make_pairs01(rng, n):
  return _emb(rng, n), _emb(rng, n), rng.integers(0, 2, n).astype(np.float32)


def make_pairs_signed(rng, n):
  return _emb(rng, n), _emb(rng, n), rng.choice([-1.0, 1.0], n).astype(np.float32)


def make_triplets(rng, n):
  return _emb(rng, n), _emb(rng, n), _emb(rng, n)


def make_labelled(rng, n):
  # Few labels: most anchors have positives, some (usually) do not.
  return _emb(rng, n), rng.integers(0, 4, n).astype(np.int32)


def make_anchor_positive(rng, n):
  a = _emb(rng, n)
  return a, (a + 0.5 * _emb(rng, n)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def make_margin_softmax(rng, n):
  return _emb(rng, n), rng.integers(0, K, n).astype(np.int32), _emb(rng, K)


# name: (function, sampler, reference, number of inputs with a batch axis)
LOSSES = {
  "pairwise_contrastive_loss": (jaxobj.pairwise_contrastive_loss, make_pairs01, ref_contrastive, 3),
  "cosine_embedding_loss": (
    jaxobj.cosine_embedding_loss,
    make_pairs_signed,
    ref_cosine_embedding,
    3,
  ),
  "triplet_margin_loss": (jaxobj.triplet_margin_loss, make_triplets, ref_triplet, 3),
  "npairs_loss": (jaxobj.npairs_loss, make_anchor_positive, ref_npairs, 3),
  "multi_similarity_loss": (jaxobj.multi_similarity_loss, make_labelled, ref_multi_similarity, 2),
  "batch_hard_triplet_loss": (jaxobj.batch_hard_triplet_loss, make_labelled, ref_batch_hard, 2),
  "batch_all_triplet_loss": (jaxobj.batch_all_triplet_loss, make_labelled, ref_batch_all, 2),
  "arcface_loss": (jaxobj.arcface_loss, make_margin_softmax, ref_arcface, 2),
  "cosface_loss": (jaxobj.cosface_loss, make_margin_softmax, ref_cosface, 2),
}

VALUE_CASES = [
  ("pairwise_contrastive_loss", {}),
  ("pairwise_contrastive_loss", {"margin": 3.0}),
  ("cosine_embedding_loss", {}),
  ("cosine_embedding_loss", {"margin": -0.3}),
  ("cosine_embedding_loss", {"margin": 0.4}),
  ("triplet_margin_loss", {}),
  ("triplet_margin_loss", {"margin": 2.0, "swap": True}),
  ("triplet_margin_loss", {"p": 1.0, "eps": 0.0}),
  ("triplet_margin_loss", {"p": 3.0, "eps": 1e-3, "swap": True}),
  ("triplet_margin_loss", {"p": 0.7}),
  ("triplet_margin_loss", {"distance": "squared_euclidean", "margin": 4.0}),
  ("triplet_margin_loss", {"distance": "cosine", "margin": 0.3, "swap": True}),
  ("npairs_loss", {}),
  ("npairs_loss", {"reg_lambda": 0.0}),
  ("npairs_loss", {"reg_lambda": 0.5}),
  ("multi_similarity_loss", {}),
  ("multi_similarity_loss", {"alpha": 0.5, "beta": 3.0, "base": 0.1}),
  ("batch_hard_triplet_loss", {}),
  ("batch_hard_triplet_loss", {"margin": 0.2, "soft": True}),
  ("batch_hard_triplet_loss", {"distance": "squared_euclidean", "margin": 4.0}),
  ("batch_hard_triplet_loss", {"distance": "cosine", "margin": 0.3}),
  ("batch_all_triplet_loss", {}),
  ("batch_all_triplet_loss", {"margin": 0.3}),
  ("batch_all_triplet_loss", {"distance": "squared_euclidean", "margin": 5.0}),
  ("batch_all_triplet_loss", {"distance": "cosine", "margin": 0.5}),
  ("arcface_loss", {}),
  ("arcface_loss", {"margin": 0.3, "scale": 10.0}),
  ("arcface_loss", {"margin": 1.2, "scale": 5.0, "margin_mode": "easy"}),
  ("arcface_loss", {"margin": 1.2, "scale": 5.0, "margin_mode": "plain"}),
  ("arcface_loss", {"margin": 1.2, "scale": 5.0, "margin_mode": "threshold"}),
  ("cosface_loss", {}),
  ("cosface_loss", {"margin": 0.1, "scale": 8.0}),
]


def _case_id(case):
  name, kw = case
  return name + "".join(f"-{k}={v}" for k, v in kw.items())


def _ref_kwargs(kw):
  # The reference calls the norm order p_norm (p is the positives).
  return {("p_norm" if k == "p" else k): v for k, v in kw.items()}


def _inputs(name, seed=0, n=N):
  fn, make, ref, batched = LOSSES[name]
  return fn, make(np.random.default_rng(seed), n), ref, batched


def _mean(values, counted, weights=None):
  w = np.ones_like(values) if weights is None else weights
  den = np.sum(w * counted)
  return np.sum(w * values * counted) / den if den > 0 else 0.0


# --------------------------------------------------------------------------
# Values, with masks (a masked row is sliced out of the batch) and weights.


@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_values_against_float64_reference(case):
  name, kw = case
  fn, args, ref, _ = _inputs(name)
  values, counted = ref(*args, **_ref_kwargs(kw))
  close(fn(*args, **kw, reduction="none"), values)
  close(fn(*args, **kw), _mean(values, counted))


# One case per loss, and the options that change which rows are compared.
MASK_CASES = [(name, {}) for name in LOSSES] + [
  ("triplet_margin_loss", {"swap": True, "distance": "cosine"}),
  ("batch_hard_triplet_loss", {"soft": True, "distance": "cosine"}),
  ("batch_all_triplet_loss", {"distance": "squared_euclidean"}),
]


@pytest.mark.parametrize("case", MASK_CASES, ids=_case_id)
def test_masked_rows_are_sliced_out_even_when_nan(case):
  name, kw = case
  fn, args, ref, batched = _inputs(name, seed=1)
  w = np.random.default_rng(2).uniform(0.1, 2.0, N)
  sliced = tuple(a[MASK] for a in args[:batched]) + args[batched:]
  v_sliced, c_sliced = ref(*sliced, **_ref_kwargs(kw))
  values, counted = np.zeros(N), np.zeros(N, bool)
  values[MASK], counted[MASK] = v_sliced, c_sliced
  poisoned = (
    tuple(
      np.where(
        MASK.reshape((-1,) + (1,) * (a.ndim - 1)), a, np.nan if a.dtype.kind == "f" else 10**6
      ).astype(a.dtype)
      for a in args[:batched]
    )
    + args[batched:]
  )
  where = jnp.asarray(MASK)
  close(fn(*poisoned, **kw, where=where, weights=w, reduction="none"), values * w)
  close(fn(*poisoned, **kw, where=where, weights=w), _mean(values, counted, w))
  g = jax.grad(lambda x: fn(x, *poisoned[1:], **kw, where=where))(poisoned[0])
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~MASK] == 0.0)


def test_extra_batch_axes_are_one_batch_and_masks_broadcast():
  # (The conformance test checks this for the registered losses.)
  fn, args, _, batched = _inputs("arcface_loss")
  grid = tuple(a.reshape((2, 4) + a.shape[1:]) for a in args[:batched]) + args[batched:]
  close(fn(*grid, reduction="none").reshape(N), fn(*args, reduction="none"), rtol=2e-5)
  x, y = _inputs("batch_hard_triplet_loss")[1]
  full = jaxobj.batch_hard_triplet_loss(x, y)
  for where in (True, np.array([True])):
    close(jaxobj.batch_hard_triplet_loss(x, y, where=where), full)
  assert float(jaxobj.batch_hard_triplet_loss(x, y, where=np.array([False]))) == 0.0


def test_npairs_mean_is_tensorflow_npairs_loss():
  _, (a, p, y), _, _ = _inputs("npairs_loss")
  a64, p64 = f64(a), f64(p)
  t = (y[:, None] == y[None, :]) / np.sum(y[:, None] == y[None, :], 1, keepdims=True)
  xent = -np.sum(t * log_softmax(a64 @ p64.T, axis=1), axis=1).mean()
  l2 = 0.25 * 0.01 * (np.mean(np.sum(a64**2, 1)) + np.mean(np.sum(p64**2, 1)))
  close(jaxobj.npairs_loss(a, p, y, reg_lambda=0.01), xent + l2)


def test_batch_all_weights_give_the_mean_over_all_triplets():
  _, (x, y), _, _ = _inputs("batch_all_triplet_loss")
  x64 = f64(x)
  triplets = [
    max(0.0, np.linalg.norm(x64[i] - x64[p]) - np.linalg.norm(x64[i] - x64[n]) + 1.0)
    for i in range(N)
    for p in range(N)
    for n in range(N)
    if p != i and y[p] == y[i] and y[n] != y[i]
  ]
  same = y[:, None] == y[None, :]
  counts = ((same.sum(1) - 1) * (~same).sum(1)).astype(np.float32)
  close(jaxobj.batch_all_triplet_loss(x, y, weights=counts), np.mean(triplets))
  close(
    jaxobj.batch_all_triplet_loss(x, y, weights=counts, reduction="sum"),
    np.sum(triplets),
    rtol=2e-5,
  )


def test_batch_all_with_tied_negative_distances():
  x = _emb(np.random.default_rng(3), N)
  x[5] = x[3]  # duplicates: equal distances (ties in the sorted negatives)
  x[6] = x[3]
  y = np.array([0, 0, 1, 2, 1, 2, 3, 0], np.int32)
  for margin in (0.05, 1.0):
    values, _ = ref_batch_all(x, y, margin=margin)
    close(jaxobj.batch_all_triplet_loss(x, y, margin=margin, reduction="none"), values, rtol=2e-5)


def test_distances_keep_their_precision_far_from_the_origin():
  # ||a||^2 + ||b||^2 - 2ab in float32 at |x| ~ 1e3 would lose ~1e-1 of d^2;
  # the losses centre the batch first.
  _, (x, y), _, _ = _inputs("batch_hard_triplet_loss")
  far = (x + 1000.0).astype(np.float32)
  for fn, ref in (
    (jaxobj.batch_hard_triplet_loss, ref_batch_hard),
    (jaxobj.batch_all_triplet_loss, ref_batch_all),
  ):
    for distance in ("euclidean", "squared_euclidean"):
      close(
        fn(far, y, distance=distance, reduction="none"),
        ref(far, y, distance=distance)[0],
        rtol=1e-4,
        atol=1e-4,
      )


# --------------------------------------------------------------------------
# Gradients (float64 finite differences), also with respect to class centres
# and hyperparameters.


GRAD_CASES = (
  [(name, {}) for name in LOSSES]
  + [
    ("triplet_margin_loss", {"p": 3.0, "eps": 1e-3, "swap": True}),
    ("triplet_margin_loss", {"distance": "squared_euclidean", "margin": 4.0}),
    ("triplet_margin_loss", {"distance": "cosine", "margin": 0.3, "swap": True}),
    ("multi_similarity_loss", {"alpha": 0.5, "beta": 3.0, "base": 0.1}),
    ("batch_hard_triplet_loss", {"margin": 0.2, "soft": True, "distance": "cosine"}),
    ("batch_all_triplet_loss", {"distance": "cosine", "margin": 0.5}),
    ("batch_all_triplet_loss", {"distance": "squared_euclidean", "margin": 5.0}),
  ]
  + [("arcface_loss", {"margin": 1.2, "scale": 5.0, "margin_mode": m}) for m in ("easy", "plain")]
)
# The labels of cosine_embedding_loss are {-1, +1}, not differentiable.
NOT_DIFFERENTIABLE = {"cosine_embedding_loss": 2}


# Traceable hyperparameters whose gradients are checked too (default cases).
HYPER = {
  "pairwise_contrastive_loss": {"margin": 1.0},
  "cosine_embedding_loss": {"margin": 0.2},
  "triplet_margin_loss": {"margin": 1.0, "p": 1.5, "eps": 1e-2},
  "npairs_loss": {"reg_lambda": 0.1},
  "multi_similarity_loss": {"alpha": 2.0, "beta": 5.0, "base": 0.3},
  "batch_hard_triplet_loss": {"margin": 1.0},
  "batch_all_triplet_loss": {"margin": 1.0},
  "arcface_loss": {"margin": 0.5, "scale": 4.0},
  "cosface_loss": {"margin": 0.35, "scale": 4.0},
}


@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_check_grads_float64(case):
  """Inputs (centres included) and, for the default cases, hyperparameters."""
  name, kw = case
  fn, args, _, _ = _inputs(name, seed=4)
  hyper = {} if kw else HYPER[name]
  modes = ["fwd", "rev"] if name == "batch_all_triplet_loss" else ["rev"]
  with jax.enable_x64(True):
    floats = [
      i for i, a in enumerate(args) if a.dtype.kind == "f" and NOT_DIFFERENTIABLE.get(name) != i
    ]

    def f(*xs):
      full = list(args)
      for i, x in zip(floats, xs):
        full[i] = x
      h = dict(zip(hyper, xs[len(floats) :]))
      return fn(*full, **kw, **h, where=jnp.asarray(MASK))

    check_grads(
      f, tuple(f64(args[i]) for i in floats) + tuple(hyper.values()), order=1, modes=modes
    )


def test_contrastive_gradient_closed_form():
  rng = np.random.default_rng(6)
  x1, x2 = _emb(rng, N), _emb(rng, N)
  y = rng.integers(0, 2, N).astype(np.float32)
  g = jax.grad(lambda a: jaxobj.pairwise_contrastive_loss(a, x2, y, margin=2.0, reduction="sum"))(
    x1
  )
  diff = f64(x1) - f64(x2)
  d = np.linalg.norm(diff, axis=1, keepdims=True)
  expected = y[:, None] * 2 * diff - (1 - y[:, None]) * 2 * np.maximum(0.0, 2.0 - d) * diff / d
  close(g, expected, rtol=1e-5, atol=1e-5)


def test_hinges_have_zero_gradient_at_the_kink():
  # max(0, v) at v == 0 exactly: subgradient 0 (relu's convention, torch's
  # clamp_min), not the 1/2 of jnp.maximum's tie rule.
  with jax.enable_x64(True):
    # cos = 0 with margin 0 for the dissimilar pair.
    x1, x2 = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    g = jax.grad(lambda a: jaxobj.cosine_embedding_loss(a, x2, np.array([-1.0])))(x1)
    np.testing.assert_array_equal(g, 0.0)
    # d(a, p) - d(a, n) + m == 0: 1 - 1.5 + 0.5.
    a, p, n = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([[0.0, 1.5]])
    g = jax.grad(lambda a: jaxobj.triplet_margin_loss(a, p, n, margin=0.5, eps=0.0))(a)
    np.testing.assert_array_equal(g, 0.0)
    g = jax.grad(lambda x: jaxobj.batch_hard_triplet_loss(x, np.array([0, 0, 1]), margin=0.5))(
      np.concatenate([a, p, n])
    )
    np.testing.assert_array_equal(g[0], 0.0)


# --------------------------------------------------------------------------
# Degenerate but legal inputs: finite, documented values.


@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "batch_all_triplet_loss"])
def test_no_positive_anywhere_gives_zero_and_zero_gradients(name):
  fn = getattr(jaxobj, name)
  x = _emb(np.random.default_rng(7), N)
  y = np.arange(N, dtype=np.int32)  # every label once: no triplet at all
  assert float(fn(x, y)) == 0.0
  assert np.all(np.asarray(fn(x, y, reduction="none")) == 0.0)
  assert np.all(np.asarray(jax.grad(lambda a: fn(a, y))(x)) == 0.0)
  same = np.zeros(N, np.int32)  # one label: no negatives
  assert float(fn(x, same)) == 0.0
  assert float(fn(x[:1], y[:1])) == 0.0  # a single row


def test_anchors_without_triplets_leave_the_mean():
  x = _emb(np.random.default_rng(8), N)
  y = np.array([0, 0, 1, 1, 2, 2, 3, 4], np.int32)  # the last two have no positive
  for fn in (jaxobj.batch_hard_triplet_loss, jaxobj.batch_all_triplet_loss):
    none = np.asarray(fn(x, y, reduction="none"))
    assert np.all(none[6:] == 0.0) and np.all(none[:6] > 0.0)
    close(fn(x, y), none[:6].mean())


def test_multi_similarity_without_positives_keeps_the_negative_term():
  x = _emb(np.random.default_rng(9), N)
  y = np.arange(N, dtype=np.int32)
  values, _ = ref_multi_similarity(x, y)
  close(jaxobj.multi_similarity_loss(x, y, reduction="none"), values)
  close(jaxobj.multi_similarity_loss(x, y), values.mean())  # all anchors count
  close(jaxobj.multi_similarity_loss(x[:1], y[:1]), 0.0)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "batch_all_triplet_loss"])
def test_duplicate_embeddings_have_finite_gradients(name, distance):
  fn = getattr(jaxobj, name)
  rng = np.random.default_rng(10)
  x = np.repeat(_emb(rng, N // 2), 2, axis=0)  # every row twice: positive distance 0
  y = np.repeat(np.arange(N // 2, dtype=np.int32), 2)
  x[4:6] = x[0]  # a negative at distance 0 too
  value, g = jax.value_and_grad(lambda a: fn(a, y, distance=distance))(x)
  assert np.isfinite(float(value)) and np.all(np.isfinite(g))


def test_identical_pairs_have_finite_gradients():
  x = _emb(np.random.default_rng(11), N)
  for fn, y, kw in (
    (jaxobj.pairwise_contrastive_loss, np.zeros(N, np.float32), {}),
    (jaxobj.triplet_margin_loss, x, {"eps": 0.0}),
    (jaxobj.triplet_margin_loss, x, {"eps": 0.0, "p": 1.5}),
    (jaxobj.triplet_margin_loss, x, {"distance": "cosine"}),
  ):
    value, g = jax.value_and_grad(lambda a: fn(a, x, y, **kw))(x)
    assert np.isfinite(float(value)) and np.all(np.isfinite(g))
  # d = 0 for a dissimilar pair: the full margin^2, with gradient 0 (no direction).
  z = jnp.zeros((1, D))
  value, g = jax.value_and_grad(
    lambda a: jaxobj.pairwise_contrastive_loss(a, z, jnp.zeros(1), margin=2.0)
  )(z)
  assert float(value) == 4.0 and np.all(np.asarray(g) == 0.0)


def test_zero_vectors_in_cosine_similarities():
  rng = np.random.default_rng(12)
  zero = np.zeros((1, D), np.float32)
  x = np.concatenate([zero, _emb(rng, N - 1)])
  # cosine_embedding_loss: cos(0, v) = 0 (torch's 1e-12 on the squared norms).
  zeros = np.zeros((N, D), np.float32)
  for y, expected in ((1.0, 1.0), (-1.0, 0.0)):
    fn = lambda a: jaxobj.cosine_embedding_loss(a, x, jnp.full((N,), y), reduction="none")
    close(fn(zeros), np.full(N, expected))
    assert np.all(np.isfinite(jax.grad(lambda a: jnp.sum(fn(a)))(zeros)))
  # Label-based cosine losses and margin softmax: the zero row has cosine 0.
  y = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)
  close(jaxobj.multi_similarity_loss(x, y, reduction="none"), ref_multi_similarity(x, y)[0])
  centers = _emb(rng, K)
  close(
    jaxobj.arcface_loss(x, y, centers, reduction="none"), ref_arcface(x, y, centers)[0], rtol=2e-5
  )
  for fn in (
    lambda a: jaxobj.multi_similarity_loss(a, y),
    lambda a: jaxobj.batch_hard_triplet_loss(a, y, distance="cosine"),
    lambda a: jaxobj.arcface_loss(a, y, centers),
    lambda a: jaxobj.cosface_loss(a, y, centers),
  ):
    assert np.all(np.isfinite(jax.grad(fn)(x)))
  assert np.all(
    np.isfinite(
      jax.grad(lambda w: jaxobj.arcface_loss(x, y, w))(np.concatenate([zero, _emb(rng, K - 1)]))
    )
  )


@pytest.mark.parametrize("mode", ["threshold", "easy", "plain"])
def test_arcface_is_finite_at_cosine_plus_and_minus_one(mode):
  centers = np.eye(K, D, dtype=np.float32)
  # Embeddings exactly along (cos = 1) and against (cos = -1) their centre.
  y = np.array([0, 1, 2, 3, 0, 1, 2, 3], np.int32)
  x = np.concatenate([3.0 * centers[:4], -2.0 * centers[:4]])
  assert np.allclose(np.abs(np.sum(_unit(x) * centers[y], 1)), 1.0)
  values, (gx, gw) = jax.value_and_grad(
    lambda a, w: jaxobj.arcface_loss(a, y, w, margin_mode=mode, reduction="sum"), argnums=(0, 1)
  )(x, centers)
  close(values, ref_arcface(x, y, centers, margin_mode=mode)[0].sum(), rtol=2e-5)
  assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gw))


def test_arcface_threshold_keeps_the_target_logit_monotone():
  # Beyond theta = pi - m, cos(theta + m) rises again ("plain"); "threshold"
  # continues with cos(theta) - m sin(m), which keeps falling.
  m = 1.0
  theta = np.linspace(0.0, np.pi, N)
  x = np.stack([np.cos(theta), np.sin(theta)] + [np.zeros_like(theta)] * (D - 2), 1)
  centers = np.eye(D, dtype=np.float32)[[0, 2, 2, 3, 3]]  # the others stay at cos 0
  y = np.zeros(N, np.int32)
  plain = np.asarray(
    jaxobj.arcface_loss(
      x.astype(np.float32), y, centers, margin=m, scale=2.0, margin_mode="plain", reduction="none"
    )
  )
  thr = np.asarray(
    jaxobj.arcface_loss(x.astype(np.float32), y, centers, margin=m, scale=2.0, reduction="none")
  )
  assert np.all(np.diff(thr) >= -1e-6)
  assert np.any(np.diff(plain[theta > np.pi - m]) < 0)


def test_init_class_centers():
  w = jaxobj.init_class_centers(jax.random.key(0), 7, D)
  assert w.shape == (7, D) and w.dtype == jnp.float32
  close(np.linalg.norm(f64(w), axis=1), np.ones(7))
  w2 = jaxobj.init_class_centers(jax.random.key(0), 7, D, dtype=jnp.bfloat16)
  assert w2.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="num_classes"):
    jaxobj.init_class_centers(jax.random.key(0), 0, D)
  with pytest.raises(ValueError, match="dim"):
    jaxobj.init_class_centers(jax.random.key(0), 3, 2.0)


# --------------------------------------------------------------------------
# The loss contract for ArcFace/CosFace, whose centres carry no batch axis
# (the registry-wide conformance test slices every positional input).


MARGIN_SOFTMAX = ["arcface_loss", "cosface_loss"]


@pytest.mark.parametrize("name", MARGIN_SOFTMAX)
def test_margin_softmax_contract(name):
  fn, (x, y, w), _, _ = _inputs(name, seed=13)
  none = fn(x, y, w, reduction="none")
  assert none.shape == (N,) and none.dtype == jnp.float32
  close(fn(x, y, w, reduction="sum"), np.sum(f64(none)), rtol=2e-5)
  close(fn(x, y, w), np.mean(f64(none)), rtol=2e-5)
  where = jnp.zeros(N, bool)
  assert float(fn(x, y, w, where=where)) == 0.0
  gx, gw = jax.grad(lambda a, c: fn(a, y, c, where=where), argnums=(0, 1))(x, w)
  assert np.all(np.asarray(gx) == 0.0) and np.all(np.asarray(gw) == 0.0)
  # Extreme embeddings (cosines do not change), low precision in, f32 out.
  close(fn(1e4 * x, y, w), fn(x, y, w), rtol=2e-5)
  assert np.all(np.isfinite(jax.grad(lambda a: fn(a, y, w))(1e4 * x)))
  low = fn(x.astype(jnp.bfloat16), y, w.astype(jnp.float16))
  assert low.dtype == jnp.float32
  close(
    low,
    fn(
      f64(x.astype(jnp.bfloat16)).astype(np.float32),
      y,
      f64(w.astype(jnp.float16)).astype(np.float32),
    ),
    rtol=1e-6,
  )


@pytest.mark.parametrize("name", MARGIN_SOFTMAX)
def test_margin_softmax_jit_and_vmap_over_hyperparameters(name):
  fn, (x, y, w), _, _ = _inputs(name, seed=14)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(a, c):
    return fn(a, y, c, reduction="none")

  close(f(x, w), fn(x, y, w, reduction="none"), rtol=2e-5)
  close(f(0.5 * x, 2.0 * w), fn(0.5 * x, y, 2.0 * w, reduction="none"), rtol=2e-5)
  for h, values in (("margin", [0.2, 0.5]), ("scale", [8.0, 64.0])):
    batched = jax.vmap(lambda t: fn(x, y, w, **{h: t}))(jnp.array(values))
    close(batched, [float(fn(x, y, w, **{h: v})) for v in values], rtol=2e-5)


def test_out_of_range_labels_give_nan():
  fn, (x, y, w), _, _ = _inputs("arcface_loss")
  for fn in (jaxobj.arcface_loss, jaxobj.cosface_loss):
    for bad in (-1, K):
      labels = np.where(np.arange(N) == 0, bad, y).astype(np.int32)
      out = np.asarray(fn(x, labels, w, reduction="none"))
      assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))
  out = np.asarray(jaxobj.cosine_embedding_loss(x, x, np.zeros(N, np.float32), reduction="none"))
  assert np.all(np.isnan(out))  # {0, 1} labels must be mapped to {-1, +1}


# --------------------------------------------------------------------------
# Bad input: clear errors naming the argument and both shapes.


def test_embedding_dimension_mismatch_names_both_shapes():
  a = np.zeros((N, D), np.float32)
  with pytest.raises(ValueError, match=r"negatives.*\(8, 4\).*\(8, 3\)"):
    jaxobj.triplet_margin_loss(a, a, np.zeros((N, 3), np.float32))
  with pytest.raises(ValueError, match=r"embeddings2.*\(8, 4\).*\(8, 5\)"):
    jaxobj.pairwise_contrastive_loss(a, np.zeros((N, 5), np.float32), np.ones(N))
  with pytest.raises(ValueError, match=r"positives.*\(8, 4\).*\(8, 2\)"):
    jaxobj.npairs_loss(a, np.zeros((N, 2), np.float32), np.zeros(N, np.int32))
  for fn in (jaxobj.arcface_loss, jaxobj.cosface_loss):
    with pytest.raises(ValueError, match=r"centers\.shape=\(5, 3\).*embeddings\.shape=\(8, 4\)"):
      fn(a, np.zeros(N, np.int32), np.zeros((K, 3), np.float32))
    with pytest.raises(ValueError, match=r"centers\.shape=\(4,\)"):
      fn(a, np.zeros(N, np.int32), np.zeros((D,), np.float32))


def test_label_errors():
  x = np.zeros((N, D), np.float32)
  with pytest.raises(ValueError, match=r"labels\.shape=\(8, 1\)"):
    jaxobj.batch_hard_triplet_loss(x, np.zeros((N, 1), np.int32))
  with pytest.raises(ValueError, match=r"labels\.shape=\(7,\)"):
    jaxobj.cosine_embedding_loss(x, x, np.ones(N - 1))
  with pytest.raises(TypeError, match="labels"):
    jaxobj.multi_similarity_loss(x, np.zeros(N, np.float32))
  with pytest.raises(TypeError, match="labels"):
    jaxobj.arcface_loss(x, np.zeros(N, np.float32), np.zeros((K, D), np.float32))
  with pytest.raises(TypeError, match="centers"):
    jaxobj.cosface_loss(x, np.zeros(N, np.int32), np.zeros((K, D), np.int32))
  with pytest.raises(ValueError, match="trailing feature axis"):
    jaxobj.triplet_margin_loss(np.float32(1.0), np.float32(1.0), np.float32(1.0))


def test_bad_hyperparameters():
  x, y = np.zeros((N, D), np.float32), np.zeros(N, np.int32)
  w = np.eye(K, D, dtype=np.float32)
  cases = [
    (lambda: jaxobj.batch_hard_triplet_loss(x, y, distance="l2"), "'euclidean'"),
    (lambda: jaxobj.triplet_margin_loss(x, x, x, distance="euclidean"), "'lp'"),
    (lambda: jaxobj.arcface_loss(x, y, w, margin_mode="hard"), "'threshold'"),
    (lambda: jaxobj.triplet_margin_loss(x, x, x, p=0.0), "p"),
    (lambda: jaxobj.triplet_margin_loss(x, x, x, margin=-1.0), "margin"),
    (lambda: jaxobj.cosine_embedding_loss(x, x, np.ones(N), margin=1.5), "margin"),
    (lambda: jaxobj.multi_similarity_loss(x, y, beta=0.0), "beta"),
    (lambda: jaxobj.npairs_loss(x, x, y, reg_lambda=-0.1), "reg_lambda"),
    (lambda: jaxobj.arcface_loss(x, y, w, margin=4.0), "margin"),
    (lambda: jaxobj.cosface_loss(x, y, w, scale=0.0), "scale"),
  ]
  for call, match in cases:
    with pytest.raises(ValueError, match=match):
      call()


@pytest.mark.parametrize("axis", [0, 1])
def test_cosine_embedding_loss_feature_axis(axis):
  # (4, 3, 5) embeddings with the features along `axis`: one pair per position
  # of the other two axes, in order. Reference: the formula along that axis.
  rng = np.random.default_rng(11)
  x1, x2 = (rng.standard_normal((4, 3, 5)).astype(np.float32) for _ in range(2))
  a, b = f64(x1), f64(x2)
  sq1, sq2 = np.sum(a**2, axis) + 1e-12, np.sum(b**2, axis) + 1e-12
  cos = np.sum(a * b, axis) / np.sqrt(sq1 * sq2)
  y = np.where(rng.uniform(size=cos.shape) < 0.5, 1.0, -1.0).astype(np.float32)
  margin = 0.1
  want = np.where(y == 1, 1 - cos, np.maximum(0.0, cos - margin))
  fn = lambda e1, **kw: jaxobj.cosine_embedding_loss(e1, x2, y, margin=margin, axis=axis, **kw)
  close(fn(x1, reduction="none"), want, rtol=1e-5, atol=1e-6)
  w = rng.uniform(0.5, 2.0, cos.shape).astype(np.float32)
  close(fn(x1, weights=w), np.sum(w * want) / np.sum(w), rtol=1e-5, atol=1e-6)
  # d cos / d x1 = x2 / sqrt(sq1 sq2) - cos x1 / sq1 along the axis.
  dcos = b / np.expand_dims(np.sqrt(sq1 * sq2), axis) - np.expand_dims(cos / sq1, axis) * a
  sign = np.where(y == 1, -1.0, np.where(cos > margin, 1.0, 0.0))
  close(
    jax.grad(lambda e: fn(e, reduction="sum"))(x1),
    np.expand_dims(sign, axis) * dcos,
    rtol=1e-4,
    atol=1e-6,
  )


def test_cosine_embedding_loss_bad_axis_is_a_clear_error():
  x = np.ones((3, 4), np.float32)
  with pytest.raises(ValueError, match=r"axis=-3 is out of range.*\(3, 4\)"):
    jaxobj.cosine_embedding_loss(x, x, np.ones(3), axis=-3)
  with pytest.raises(TypeError, match="axis must be an int"):
    jaxobj.cosine_embedding_loss(x, x, np.ones(3), axis="0")
  # The labels follow the rows left by the feature axis.
  with pytest.raises(ValueError, match="labels.shape"):
    jaxobj.cosine_embedding_loss(x, x, np.ones(3), axis=0)


# ---------------------------------------------------------------- NaN and empty batches


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_a_nan_embedding_reaches_the_value_of_the_mined_triplet_losses(distance):
  # _safe_sqrt sent a NaN squared distance down its zero branch: the loss was the margin.
  x = jax.random.normal(jax.random.key(4), (6, 3))
  y = jnp.array([0, 0, 1, 1, 2, 2])
  bad, keep = x.at[2, 1].set(jnp.nan), jnp.arange(6) != 2
  for fn in (jaxobj.batch_hard_triplet_loss, jaxobj.batch_all_triplet_loss):
    assert np.isnan(float(fn(bad, y, distance=distance))), fn.__name__
    np.testing.assert_allclose(
      fn(bad, y, where=keep, distance=distance), fn(x[keep], y[keep], distance=distance), rtol=1e-5
    )


@pytest.mark.parametrize("p", [2.0, 1.5])
def test_a_nan_in_any_triplet_input_reaches_the_value(p):
  a, pos, neg = (jax.random.normal(k, (4, 3)) for k in jax.random.split(jax.random.key(5), 3))
  for i in range(3):
    args = [a, pos, neg]
    args[i] = args[i].at[1, 0].set(jnp.nan)
    assert np.isnan(float(jaxobj.triplet_margin_loss(*args, p=p))), i
    assert np.isnan(float(jaxobj.pairwise_contrastive_loss(args[i], a, jnp.ones(4)))), i


def test_batch_hard_triplet_empty_batch_is_zero():
  e, y = jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)
  assert float(jaxobj.batch_hard_triplet_loss(e, y)) == 0.0
  g = jax.grad(lambda a: jaxobj.batch_hard_triplet_loss(a, y))(e)
  assert g.shape == (0, 3)
