"""Values and gradients of jaxobj.losses.sequence.

References are float64 NumPy implementations written from the formulas (the
token loss per position; the CTC forward recursion of Graves et al. 2006 in
log space, and brute-force enumeration of every alignment on tiny cases),
optax where it overlaps, and ``check_grads`` in float64.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from references import close, f64
from scipy.special import log_softmax, logsumexp

import jaxobj
from jaxobj._src.examples.sequence import ctc_batch

RTOL, ATOL = 1e-5, 1e-6
B, T, V = 3, 6, 5

# Jitted once and shared: tests reuse shapes, so most calls hit the cache.
TCE = jax.jit(
  jaxobj.token_cross_entropy, static_argnames=("ignore_index", "normalize", "reduction")
)
CTC = jax.jit(jaxobj.ctc_loss, static_argnames=("blank_id", "reduction"))
TCE_VG = jax.jit(
  jax.value_and_grad(jaxobj.token_cross_entropy),
  static_argnames=("ignore_index", "normalize", "reduction"),
)
CTC_GRAD = jax.jit(jax.grad(jaxobj.ctc_loss), static_argnames=("blank_id", "reduction"))
OPTAX_CTC = jax.jit(optax.ctc_loss, static_argnames="blank_id")
OPTAX_GRAD = jax.jit(
  jax.grad(lambda *a, **k: jnp.sum(optax.ctc_loss(*a, **k))), static_argnames="blank_id"
)


# --------------------------------------------------------------------------
# Token cross-entropy: float64 reference, per token.


def ref_token_ce(x, y, label_smoothing=0.0, z_loss=0.0, cap=None):
  """Per-token loss from the docstring's formula (no masking)."""
  x = f64(x)
  if cap is not None:
    x = np.where(np.isneginf(x), -np.inf, cap * np.tanh(x / cap))
  log_z = logsumexp(x, axis=-1)
  x_y = np.take_along_axis(x, np.asarray(y)[..., None], axis=-1)[..., 0]
  finite = np.isfinite(x)
  mean_logit = np.where(finite, x, 0.0).sum(-1) / finite.sum(-1)
  return (
    (1 - label_smoothing) * (log_z - x_y)
    + label_smoothing * (log_z - mean_logit)
    + z_loss * log_z**2
  )


def ref_token_reduce(
  values, valid, weights=None, normalize="tokens", segments=None, reduction="mean"
):
  """The normalization modes from their definitions, one sequence at a time."""
  w = np.ones(values.shape) if weights is None else np.broadcast_to(f64(weights), values.shape)
  w = np.where(valid, w, 0.0)
  v = np.where(valid, values, 0.0)
  if normalize == "sequences":
    terms, means = np.zeros(values.shape), []
    rows = values.reshape(-1, values.shape[-1]).shape[0]
    seg = np.zeros(values.shape, int) if segments is None else np.asarray(segments)
    for r in range(rows):
      idx = np.unravel_index(r, values.shape[:-1])
      ids = seg[idx]
      start = 0
      for t in range(1, len(ids) + 1):  # maximal runs of equal ids
        if t == len(ids) or ids[t] != ids[t - 1]:
          span = slice(start, t)
          total = w[idx][span].sum()
          if total > 0:
            terms[idx][span] = w[idx][span] * v[idx][span] / total
            means.append(terms[idx][span].sum())
          start = t
    if reduction == "none":
      return terms
    return terms.sum() if reduction == "sum" else (np.mean(means) if means else 0.0)
  terms = w * v
  if reduction == "none":
    return terms
  if reduction == "sum" or normalize != "tokens":
    total = terms.sum()
    return total if reduction == "sum" else total / normalize
  return terms.sum() / w.sum() if w.sum() > 0 else 0.0


def token_inputs(seed=0, shape=(B, T), vocab=V, ignore_frac=0.25, mask_vocab=False):
  rng = np.random.default_rng(seed)
  x = (2.0 * rng.standard_normal(shape + (vocab,))).astype(np.float32)
  y = rng.integers(0, vocab, shape).astype(np.int32)
  if mask_vocab:
    drop = (rng.uniform(size=x.shape) < 0.3) & (np.arange(vocab) != y[..., None])
    x = np.where(drop, -np.inf, x).astype(np.float32)
  y_ignored = np.where(rng.uniform(size=shape) < ignore_frac, -100, y).astype(np.int32)
  return x, y, y_ignored


TOKEN_HYPER = [
  {},
  {"label_smoothing": 0.1},
  {"z_loss": 1e-2},
  {"logit_soft_cap": 2.5},
  {"label_smoothing": 0.2, "z_loss": 1e-4, "logit_soft_cap": 5.0},
]


def _ref_kwargs(h):
  return {
    "label_smoothing": h.get("label_smoothing", 0.0),
    "z_loss": h.get("z_loss", 0.0),
    "cap": h.get("logit_soft_cap"),
  }


@pytest.mark.parametrize("hyper", TOKEN_HYPER, ids=lambda h: ",".join(h) or "default")
@pytest.mark.parametrize("mask_vocab", [False, True], ids=["dense", "masked_vocab"])
def test_token_ce_matches_reference(hyper, mask_vocab):
  x, y, y_ig = token_inputs(mask_vocab=mask_vocab)
  per_token = ref_token_ce(x, y, **_ref_kwargs(hyper))
  valid = y_ig != -100
  for reduction in ("none", "sum", "mean"):
    got = TCE(x, y_ig, reduction=reduction, **hyper)
    close(got, ref_token_reduce(per_token, valid, reduction=reduction))


def test_token_ce_matches_optax():
  x, y, _ = token_inputs(1)
  close(TCE(x, y, reduction="none"), f64(optax.softmax_cross_entropy_with_integer_labels(x, y)))
  # Label smoothing as optax builds it (uniform over all classes).
  smooth = optax.smooth_labels(jax.nn.one_hot(y, V), 0.1)
  close(
    TCE(x, y, label_smoothing=0.1, reduction="none"), f64(optax.softmax_cross_entropy(x, smooth))
  )


@pytest.mark.parametrize("normalize", ["tokens", "sequences", 50.0])
def test_token_ce_normalize_modes(normalize):
  x, y, y_ig = token_inputs(2)
  per_token = ref_token_ce(x, y, z_loss=1e-3)
  rng = np.random.default_rng(3)
  where = rng.uniform(size=(B, T)) < 0.8
  weights = rng.uniform(0.2, 2.0, (B, T)).astype(np.float32)
  valid = (y_ig != -100) & where
  for w in (None, weights):
    none = TCE(x, y_ig, z_loss=1e-3, normalize=normalize, where=where, weights=w, reduction="none")
    for reduction in ("none", "sum", "mean"):
      got = TCE(
        x, y_ig, z_loss=1e-3, normalize=normalize, where=where, weights=w, reduction=reduction
      )
      close(got, ref_token_reduce(per_token, valid, w, normalize, reduction=reduction))
    # The sum rule holds in every mode.
    close(
      TCE(x, y_ig, z_loss=1e-3, normalize=normalize, where=where, weights=w, reduction="sum"),
      f64(jnp.sum(none)),
    )


def test_token_ce_per_sequence_mean_by_hand():
  # Two sequences of 1 and 3 valid tokens: each counts equally.
  x = np.zeros((2, 3, 4), np.float32)
  x[0, 0, 0] = 3.0
  y = np.array([[1, -100, -100], [0, 0, 0]], np.int32)
  ce = ref_token_ce(x, np.maximum(y, 0))
  expected = 0.5 * (ce[0, 0] + ce[1].mean())
  close(TCE(x, y, normalize="sequences"), expected)
  close(TCE(x, y), (ce[0, 0] + ce[1].sum()) / 4)
  close(TCE(x, y, normalize=10.0), (ce[0, 0] + ce[1].sum()) / 10)


def test_token_ce_packed_segments():
  x, y, y_ig = token_inputs(4, shape=(2, 8))
  segments = np.array([[1, 1, 1, 2, 2, 3, 3, 3], [1, 1, 1, 1, 1, 2, 2, 0]], np.int32)
  per_token = ref_token_ce(x, y)
  valid = (y_ig != -100) & (segments != 0)  # segment 0 is padding, masked by hand
  for reduction in ("none", "sum", "mean"):
    got = TCE(
      x, y_ig, normalize="sequences", segment_ids=segments, where=segments != 0, reduction=reduction
    )
    close(got, ref_token_reduce(per_token, valid, None, "sequences", segments, reduction))
  # Packing three sequences in one row equals them as rows of their own.
  row = np.array([[1, 1, 1, 2, 2, 2, 3, 3, 3]], np.int32)
  xs, ys, _ = token_inputs(5, shape=(3, 3), ignore_frac=0.0)
  packed = TCE(xs.reshape(1, 9, V), ys.reshape(1, 9), normalize="sequences", segment_ids=row)
  close(packed, f64(TCE(xs, ys, normalize="sequences")))


def test_token_ce_all_masked_is_zero_with_zero_gradient():
  x, y, _ = token_inputs(6)
  ignored = np.full_like(y, -100)
  for normalize, reduction in (
    ("tokens", "mean"),
    ("sequences", "mean"),
    ("sequences", "sum"),
    (7.0, "mean"),
  ):
    value, grad = TCE_VG(
      x, ignored, normalize=normalize, z_loss=1e-3, label_smoothing=0.1, reduction=reduction
    )
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0.0)


def test_token_ce_ignore_index_is_a_mask():
  x, y, y_ig = token_inputs(7)
  by_mask = TCE(x, y, where=y_ig != -100, ignore_index=None)
  close(TCE(x, y_ig), f64(by_mask))
  # A custom ignore value; garbage logits at ignored positions change nothing.
  y_pad = np.where(y_ig == -100, 0, y)
  x_nan = np.where((y_ig == -100)[..., None], np.nan, x)
  got, g = TCE_VG(x_nan, np.where(y_ig == -100, 99, y_pad), ignore_index=99)
  close(got, f64(by_mask))
  assert np.all(np.isfinite(g))


def test_token_ce_soft_cap_keeps_minus_inf_and_bounds_logits():
  x = np.array([[1e4, -1e4, -np.inf, 0.0]], np.float32)
  got = TCE(x, np.array([1]), logit_soft_cap=30.0, reduction="none")
  close(got, ref_token_ce(x, np.array([1]), cap=30.0))  # 60 nats, not 2e4
  _, g = TCE_VG(x, np.array([1]), logit_soft_cap=30.0, label_smoothing=0.1)
  assert np.all(np.isfinite(g)) and g[0, 2] == 0.0
  dcap = jax.grad(lambda c: TCE(x, np.array([1]), logit_soft_cap=c))(30.0)
  assert np.isfinite(float(dcap))


def test_token_ce_extreme_logits_and_z_loss():
  x, y, _ = token_inputs(8)
  big = x * 1e4
  for hyper in TOKEN_HYPER:
    value, g = TCE_VG(big, y, **hyper)
    assert np.isfinite(float(value)) and np.all(np.isfinite(g))
    close(value, ref_token_ce(big, y, **_ref_kwargs(hyper)).mean(), rtol=1e-5)


@pytest.mark.parametrize("hyper", TOKEN_HYPER[1:], ids=lambda h: ",".join(h))
def test_token_ce_gradients(hyper):
  x, _, y_ig = token_inputs(9, shape=(2, 3), mask_vocab=True)
  with jax.enable_x64(True):
    f = lambda x: TCE(x, y_ig, normalize="sequences", **hyper)
    check_grads(f, (f64(x),), order=1, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


def test_token_ce_hyperparameter_gradients():
  x, y, _ = token_inputs(10)
  # d/dz of mean z * lse^2 is mean lse^2; d/dalpha is the smoothing term minus CE.
  lse = logsumexp(f64(x), -1)
  close(jax.grad(lambda z: TCE(x, y, z_loss=z))(0.0), (lse**2).mean(), rtol=1e-5)
  ce = ref_token_ce(x, y)
  smooth_term = ref_token_ce(x, y, label_smoothing=1.0)
  close(jax.grad(lambda a: TCE(x, y, label_smoothing=a))(0.3), (smooth_term - ce).mean(), rtol=1e-5)


def test_token_ce_bf16_computes_in_f32():
  x, y, y_ig = token_inputs(11)
  x16 = jnp.asarray(x, jnp.bfloat16)
  got = TCE(x16, y_ig, z_loss=1e-4, label_smoothing=0.1)
  assert got.dtype == jnp.float32
  close(
    got, ref_token_reduce(ref_token_ce(f64(x16.astype(jnp.float32)), y, 0.1, 1e-4), y_ig != -100)
  )


def test_token_ce_out_of_range_target_is_nan():
  x, y, _ = token_inputs(12)
  bad = y.copy()
  bad[0, 0] = V
  assert np.isnan(float(TCE(x, bad)))
  assert np.isfinite(float(TCE(x, bad, where=bad < V)))


def test_token_ce_bad_inputs():
  x, y, _ = token_inputs(13)
  with pytest.raises(ValueError, match="targets"):
    jaxobj.token_cross_entropy(x, y[:, :-1])
  with pytest.raises(TypeError, match="targets"):
    jaxobj.token_cross_entropy(x, y.astype(np.float32))
  with pytest.raises(ValueError, match=r"segment_ids\.shape=\(3, 5\)"):
    jaxobj.token_cross_entropy(x, y, segment_ids=np.zeros((B, T - 1), np.int32))
  with pytest.raises(TypeError, match="segment_ids"):
    jaxobj.token_cross_entropy(x, y, segment_ids=np.zeros((B, T)))
  with pytest.raises(ValueError, match="normalize='seq'"):
    jaxobj.token_cross_entropy(x, y, normalize="seq")
  with pytest.raises(ValueError, match="normalize"):
    jaxobj.token_cross_entropy(x, y, normalize=0.0)
  with pytest.raises(TypeError, match="normalize"):
    jaxobj.token_cross_entropy(x, y, normalize=True)
  for name, value in (("label_smoothing", 1.5), ("z_loss", -1.0), ("logit_soft_cap", 0.0)):
    with pytest.raises(ValueError, match=name):
      jaxobj.token_cross_entropy(x, y, **{name: value})
  with pytest.raises(ValueError, match="sequence axis"):
    jaxobj.token_cross_entropy(x[0, 0], y[0, 0], normalize="sequences")


# --------------------------------------------------------------------------
# CTC: float64 references.


def _valid_parts(x, logit_pad, labels, label_pad):
  frames = f64(x)[np.asarray(logit_pad) < 0.5]
  return log_softmax(frames, axis=-1), [
    int(v) for v in np.asarray(labels)[np.asarray(label_pad) < 0.5]
  ]


def ref_ctc_forward(x, logit_pad, labels, label_pad, blank=0):
  """-log P(labels | x) for one sequence: the forward recursion of Graves et
  al. (2006), eqs. 6-10, over the blank-interleaved labels, in log space."""
  logp, l = _valid_parts(x, logit_pad, labels, label_pad)
  ext = [blank]
  for c in l:
    ext += [c, blank]
  alpha = np.full(len(ext), -np.inf)
  for t in range(len(logp)):
    new = np.full(len(ext), -np.inf)
    for s in range(len(ext)):
      if t == 0:
        terms = [0.0] if s < 2 else []
      else:
        terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
        if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
          terms.append(alpha[s - 2])
      if terms:
        new[s] = np.logaddexp.reduce(terms) + logp[t, ext[s]]
    alpha = new
  if len(logp) == 0:
    return 0.0 if not l else np.inf
  ends = [alpha[-1]] + ([alpha[-2]] if l else [])
  return -np.logaddexp.reduce(ends)


def _collapse(path, blank):
  out = []
  for i, c in enumerate(path):
    if c != blank and (i == 0 or c != path[i - 1]):
      out.append(c)
  return out


def ref_ctc_brute_force(x, logit_pad, labels, label_pad, blank=0):
  """-log of the summed probability of every frame-level path that collapses
  to the labels (K^T paths: tiny cases only)."""
  logp, l = _valid_parts(x, logit_pad, labels, label_pad)
  total = [
    sum(logp[t, c] for t, c in enumerate(path))
    for path in itertools.product(range(logp.shape[1]), repeat=len(logp))
    if _collapse(path, blank) == l
  ]
  return -np.logaddexp.reduce(total) if total else np.inf


def ref_ctc_batch(ref, x, logit_pad, labels, label_pad, blank=0):
  return np.array([ref(*a, blank=blank) for a in zip(x, logit_pad, labels, label_pad)])


def ctc_inputs(seed, batch=6, frames=6, classes=4, max_labels=3, scale=2.0):
  """Feasible right-padded inputs; the default shape is shared by most tests
  so that the jitted functions compile once."""
  rng = np.random.default_rng(seed)
  return ctc_batch(
    rng, (batch,), frames=frames, classes=classes, max_labels=max_labels, scale=scale
  )


def ctc(*args, **kw):
  return CTC(*args, reduction="none", **kw)


def test_ctc_forward_reference_matches_brute_force():
  # The two references are independent; agreeing gives the forward one weight.
  args = ctc_inputs(0, frames=5, classes=3)
  np.testing.assert_allclose(
    ref_ctc_batch(ref_ctc_forward, *args), ref_ctc_batch(ref_ctc_brute_force, *args), rtol=1e-12
  )


def test_ctc_matches_brute_force_on_tiny_cases():
  for seed in range(3):
    args = ctc_inputs(seed)
    close(ctc(*args), ref_ctc_batch(ref_ctc_brute_force, *args))


@pytest.mark.parametrize("blank", [0, 3])
def test_ctc_matches_float64_forward_reference_and_optax(blank):
  x, lp, y, yp = ctc_inputs(1)
  if blank:  # relabel so that class 3 is the blank
    y = np.where(y == 3, 0, y).astype(np.int32)
  expected = ref_ctc_batch(ref_ctc_forward, x, lp, y, yp, blank=blank)
  close(ctc(x, lp, y, yp, blank_id=blank), expected)
  close(OPTAX_CTC(x, lp, y, yp, blank_id=blank), expected)  # optax agrees with the reference
  g = CTC_GRAD(x, lp, y, yp, blank_id=blank, reduction="sum")
  close(g, f64(OPTAX_GRAD(x, lp, y, yp, blank_id=blank)), rtol=1e-4, atol=1e-5)
  for reduction, expect in (("sum", expected.sum()), ("mean", expected.mean())):
    close(CTC(x, lp, y, yp, blank_id=blank, reduction=reduction), expect)


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_ctc_gradients_float64(mode):
  x, lp, y, yp = ctc_inputs(2, batch=3, frames=5, max_labels=2)
  with jax.enable_x64(True):
    f = lambda x: jaxobj.ctc_loss(x, lp, y, yp, weights=np.array([1.0, 0.5, 2.0]))
    check_grads(f, (f64(x),), order=1, modes=(mode,), atol=1e-6, rtol=1e-6)


def test_ctc_gradient_is_occupancy_minus_softmax():
  # Per valid frame the gradient sums to 0 over classes (occupancies sum to 1).
  x, lp, y, yp = ctc_inputs(3)
  g = np.asarray(CTC_GRAD(x, lp, y, yp, reduction="sum"))
  np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-6)
  assert np.all(g[lp > 0.5] == 0.0)  # padded frames get no gradient


def test_ctc_padded_frames_and_labels_are_skipped_anywhere():
  x, lp, y, yp = ctc_inputs(4, batch=1)
  valid_frames = lp[0] < 0.5
  sliced = ctc(x[:, valid_frames], lp[:, valid_frames], y, yp)
  # Padding frames inserted in the middle, labels padded at the front.
  x_mid = np.concatenate(
    [x[:, :2], np.full((1, 2, x.shape[-1]), np.nan, np.float32), x[:, 2:]], axis=1
  )
  lp_mid = np.concatenate([lp[:, :2], np.ones((1, 2), np.float32), lp[:, 2:]], axis=1)
  y_front = np.concatenate([np.full((1, 2), 7, np.int32), y], axis=1)
  yp_front = np.concatenate([np.ones((1, 2), np.float32), yp], axis=1)
  close(ctc(x_mid, lp_mid, y_front, yp_front), f64(sliced))


def test_ctc_impossible_alignments():
  x = np.random.default_rng(5).standard_normal((4, 3, 4)).astype(np.float32)
  lp = np.zeros((4, 3), np.float32)
  lp[3, 1:] = 1.0  # one valid frame
  y = np.array([[1, 2, 3, 1], [1, 1, 2, 0], [1, 1, 0, 0], [1, 0, 0, 0]], np.int32)
  yp = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]], np.float32)
  # 4 labels in 3 frames; 1,1,2 needs a blank between the 1s (4 frames);
  # 1,1 fits exactly (1 _ 1); one label in one frame fits.
  expected = ref_ctc_batch(ref_ctc_forward, x, lp, y, yp)
  assert np.isinf(expected[:2]).all() and np.isfinite(expected[2:]).all()
  close(ctc(x, lp, y, yp), expected)
  zero_inf = ctc(x, lp, y, yp, zero_infinity=True)
  close(zero_inf, np.where(np.isinf(expected), 0.0, expected))
  for zi in (False, True):
    for reduction in ("mean", "sum"):
      g = CTC_GRAD(x, lp, y, yp, zero_infinity=zi, reduction=reduction)
      assert np.all(np.isfinite(g))
      assert np.all(np.asarray(g)[:2] == 0.0)  # impossible rows: zero gradient
  # Masking the impossible rows restores an ordinary loss.
  where = np.isfinite(expected)
  close(CTC(x, lp, y, yp, where=where), expected[where].mean())


def test_ctc_minus_inf_logits():
  x, lp, y, yp = ctc_inputs(6)
  # The blank masked at one frame of every sequence: alignments remain.
  x_masked = x.copy()
  x_masked[:, 0, 0] = -np.inf
  expected = ref_ctc_batch(ref_ctc_forward, x_masked, lp, y, yp)
  close(ctc(x_masked, lp, y, yp), expected)
  g = CTC_GRAD(x_masked, lp, y, yp, zero_infinity=True)
  assert np.all(np.isfinite(g))
  # A label whose class is -inf at every frame has no alignment.
  x_dead = x.copy()
  x_dead[..., 1] = -np.inf
  uses_1 = np.any((y == 1) & (yp < 0.5), axis=1)
  assert uses_1.any() and not uses_1.all()
  got = np.asarray(ctc(x_dead, lp, y, yp))
  assert np.all(np.isinf(got[uses_1])) and np.all(np.isfinite(got[~uses_1]))
  close(got[~uses_1], ref_ctc_batch(ref_ctc_forward, x_dead, lp, y, yp)[~uses_1])


def test_ctc_extreme_logits_finite_and_exact():
  x, lp, y, yp = ctc_inputs(7)
  for scale in (1e2, 1e4):
    big = x * scale
    g = CTC_GRAD(big, lp, y, yp)
    assert np.all(np.isfinite(g))
    close(ctc(big, lp, y, yp), ref_ctc_batch(ref_ctc_forward, big, lp, y, yp), rtol=1e-5)


def test_ctc_is_never_negative():
  # Confident, correct logits: P rounds to 1 and log-space sums can land a hair
  # above 0; the loss is clamped at 0 (optax can return about -1e-7 here).
  # (About one such sequence in six rounds to a positive log-likelihood.)
  rng = np.random.default_rng(8)
  for seed in range(6):
    x, lp, y, yp = ctc_inputs(seed)
    conf = np.full(x.shape, -30.0, np.float32)
    for b in range(len(y)):  # logits that spell the labels with blanks between
      path = []
      for c in y[b][yp[b] < 0.5]:
        path += [int(c), 0]
      path = (path + [0] * x.shape[1])[: x.shape[1]]
      conf[b, np.arange(x.shape[1]), path] = 30.0 + rng.uniform(-1, 1)
    got = np.asarray(ctc(conf, lp, y, yp))
    assert np.all(got >= 0.0)
    close(got, np.maximum(ref_ctc_batch(ref_ctc_forward, conf, lp, y, yp), 0.0), atol=1e-5)


def test_ctc_masked_rows_and_extra_batch_axes():
  x, lp, y, yp = ctc_inputs(9)
  where = np.array([True, False, True, True, False, True])
  close(CTC(x, lp, y, yp, where=where), f64(CTC(x[where], lp[where], y[where], yp[where])))
  grid = [a.reshape((2, 3) + a.shape[1:]) for a in (x, lp, y, yp)]
  close(ctc(*grid).reshape(6), f64(ctc(x, lp, y, yp)))


def test_ctc_bf16_computes_in_f32():
  x, lp, y, yp = ctc_inputs(10)
  x16 = jnp.asarray(x, jnp.bfloat16)
  got = ctc(x16, lp, y, yp)
  assert got.dtype == jnp.float32
  close(got, ref_ctc_batch(ref_ctc_forward, f64(x16.astype(jnp.float32)), lp, y, yp))


def test_ctc_forward_and_reverse_mode_agree():
  x, lp, y, yp = ctc_inputs(11)
  f = lambda x: CTC(x, lp, y, yp)
  direction = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
  _, jvp = jax.jvp(f, (x,), (direction,))
  close(jvp, float(np.sum(np.asarray(CTC_GRAD(x, lp, y, yp)) * direction)), rtol=1e-5)


def test_ctc_without_labels_is_all_blank():
  x, lp, _, _ = ctc_inputs(14)
  no_labels = np.zeros((6, 0), np.int32), np.zeros((6, 0), np.float32)
  logp = log_softmax(f64(x), axis=-1)[..., 0]
  close(ctc(x, lp, *no_labels), -np.sum(np.where(lp < 0.5, logp, 0.0), axis=1))
  # No frames at all: possible only for an empty label sequence.
  empty = np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.float32)
  close(
    ctc(*empty, np.ones((2, 1), np.int32), np.array([[0.0], [1.0]], np.float32)),
    np.array([np.inf, 0.0]),
  )


def test_ctc_bad_labels_give_nan():
  x, lp, y, yp = ctc_inputs(12)
  bad, lp, yp = np.ones_like(y), np.zeros_like(lp), np.zeros_like(yp)
  bad[0, 0], bad[1, 0] = 4, 0  # out of range; the blank
  got = np.asarray(ctc(x, lp, bad, yp))
  assert np.isnan(got[:2]).all() and np.isfinite(got[2:]).all()


def test_ctc_bad_inputs():
  x, lp, y, yp = ctc_inputs(13)
  with pytest.raises(ValueError, match=r"logit_paddings\.shape=\(6, 5\)"):
    jaxobj.ctc_loss(x, lp[:, :-1], y, yp)
  with pytest.raises(ValueError, match=r"label_paddings\.shape=\(6, 2\)"):
    jaxobj.ctc_loss(x, lp, y, yp[:, :-1])
  with pytest.raises(ValueError, match=r"labels\.shape=\(5, 3\)"):
    jaxobj.ctc_loss(x, lp, y[:-1], yp[:-1])
  with pytest.raises(ValueError, match="blank_id"):
    jaxobj.ctc_loss(x, lp, y, yp, blank_id=4)
  with pytest.raises(TypeError, match="labels"):
    jaxobj.ctc_loss(x, lp, y.astype(np.float32), yp)
  with pytest.raises(TypeError, match="logits"):
    jaxobj.ctc_loss(x.astype(np.int32), lp, y, yp)
  with pytest.raises(ValueError, match=r"logits\.shape=\(4,\)"):
    jaxobj.ctc_loss(x[0, 0], lp, y, yp)


def test_ctc_empty_batch_is_zero():
  logits, logit_pad = jnp.zeros((0, 5, 4)), jnp.zeros((0, 5))
  labels, label_pad = jnp.zeros((0, 3), jnp.int32), jnp.zeros((0, 3))
  assert float(jaxobj.ctc_loss(logits, logit_pad, labels, label_pad)) == 0.0
  g = jax.grad(lambda x: jaxobj.ctc_loss(x, logit_pad, labels, label_pad))(logits)
  assert g.shape == logits.shape


def test_ctc_nan_padding_flag_reaches_the_value():
  # A NaN flag compared as "not padding" and the loss stayed finite.
  args = tuple(jnp.asarray(a) for a in ctc_batch(np.random.default_rng(0), (3,)))
  for i in (1, 3):
    bad = list(args)
    bad[i] = bad[i].at[1, 0].set(jnp.nan)
    out = np.asarray(jaxobj.ctc_loss(*bad, reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]])), i
    assert np.isfinite(float(jaxobj.ctc_loss(*bad, where=jnp.array([True, False, True]))))
