"""Values and gradients of jaxobj.losses.contrastive.

References are float64 NumPy/SciPy implementations written from the formulas
(and, for SupCon, from the reference algorithm's view layout), optax's
``ntxent`` where the two overlap, and closed forms for the degenerate cases.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from scipy.special import log_expit, logsumexp, softmax

import jaxobj

B, D = 6, 4
RTOL, ATOL = 2e-5, 1e-6
RNG = np.random.default_rng(1234)


def _close(a, b, rtol=RTOL, atol=ATOL):
  np.testing.assert_allclose(
    np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol
  )


def _randn(*shape, scale=1.0):
  return (scale * RNG.standard_normal(shape)).astype(np.float32)


def _views(n=B, d=D):
  a = _randn(n, d)
  return a, (a + 0.5 * _randn(n, d)).astype(np.float32)


# --------------------------------------------------------------------------
# float64 references, per row (no reduction).


def unit(x):
  """Unit vectors; the zero vector stays 0 (cosine 0 with everything)."""
  x = np.asarray(x, np.float64)
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.where(norm > 0, norm, 1.0)


def ref_info_nce(q, k, negatives=None, temperature=0.1):
  q, k = unit(q), unit(k)
  pos = np.sum(q * k, -1) / temperature
  if negatives is None:
    logits = q @ k.T / temperature
  else:
    n = unit(negatives)
    neg = (q @ n.T if n.ndim == 2 else np.einsum("bd,bmd->bm", q, n)) / temperature
    logits = np.concatenate([pos[:, None], neg], -1)
  return logsumexp(logits, -1) - pos


def ref_ntxent_pairs(x, labels, temperature=0.07):
  """The loss of every positive pair (i, j), i != j, as a dict."""
  u = unit(x)
  s = u @ u.T / temperature
  out = {}
  for i in range(len(x)):
    negs = [s[i, k] for k in range(len(x)) if labels[k] != labels[i]]
    for j in range(len(x)):
      if j != i and labels[j] == labels[i]:
        out[i, j] = -(s[i, j] - logsumexp([s[i, j]] + negs))
  return out


def ref_ntxent(x, labels, temperature=0.07):
  pairs = ref_ntxent_pairs(x, labels, temperature)
  row = np.zeros(len(x))
  for (i, _), t in pairs.items():
    row[i] += t
  mean_positives = len(pairs) / len(x)
  return row / mean_positives if pairs else row


def ref_clip(x, y, scale):
  s = unit(x) @ unit(y).T * scale
  d = np.diag(s)
  return 0.5 * ((logsumexp(s, 1) - d) + (logsumexp(s, 0) - d))


def ref_siglip(x, y, t, b):
  z = unit(x) @ unit(y).T * t + b
  sign = 2.0 * np.eye(len(x)) - 1.0
  return -np.sum(log_expit(sign * z), -1)


def ref_supcon_views(features, labels, temperature=0.07, base_temperature=0.07):
  """Khosla et al.'s algorithm on features [bsz, n_views, D], contrast_mode='all'.

  Returns the per-anchor losses in that algorithm's (view-major) order.
  """
  bsz, views, _ = features.shape
  contrast = unit(np.concatenate([features[:, v] for v in range(views)]))
  mask = np.tile((labels[:, None] == labels[None, :]).astype(np.float64), (views, views))
  logits = contrast @ contrast.T / temperature
  logits_mask = 1.0 - np.eye(bsz * views)
  mask = mask * logits_mask
  log_prob = logits - np.log(np.sum(np.exp(logits) * logits_mask, 1, keepdims=True))
  n_pos = mask.sum(1)
  n_pos = np.where(n_pos < 1e-6, 1.0, n_pos)
  return -(temperature / base_temperature) * (mask * log_prob).sum(1) / n_pos


def ref_dcl(a, b, temperature=0.1, sigma=None):
  """Eq. 6 of Yeh et al. written as a loop over the 2B anchors."""
  n = len(a)
  z = unit(np.concatenate([a, b]))
  w = np.ones(n)
  if sigma is not None:
    w = 2.0 - n * softmax(np.sum(z[:n] * z[n:], -1) / sigma)
  losses = np.zeros(2 * n)
  for i in range(2 * n):
    p = (i + n) % (2 * n)
    negs = [z[i] @ z[k] / temperature for k in range(2 * n) if k not in (i, p)]
    losses[i] = -w[i % n] * (z[i] @ z[p]) / temperature + logsumexp(negs)
  return 0.5 * (losses[:n] + losses[n:])


def ref_negative_cosine(p, z):
  return -np.sum(unit(p) * unit(z), -1)


def bn(z, eps=1e-5):
  """Affine-free batch norm in training mode: biased variance plus eps."""
  return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)


def ref_barlow(z1, z2, lambda_param=5e-3, eps=1e-5):
  n, d = z1.shape
  z1, z2 = bn(z1, eps), bn(z2, eps)
  c = z1.T @ z2 / n
  off = ~np.eye(d, dtype=bool)
  return np.sum((np.diag(c) - 1.0) ** 2) + lambda_param * np.sum(c[off] ** 2)


def ref_vicreg(x, y, sim=25.0, std=25.0, cov=1.0, eps=1e-4):
  n, d = x.shape
  off = ~np.eye(d, dtype=bool)
  inv = np.mean((x - y) ** 2)
  var = cov_term = 0.0
  for v in (x, y):
    v = v - v.mean(0)
    var += 0.5 * np.mean(np.maximum(0.0, 1.0 - np.sqrt(v.var(0, ddof=1) + eps)))
    c = v.T @ v / (n - 1)
    cov_term += np.sum(c[off] ** 2) / d
  return sim * inv + std * var + cov * cov_term


def _f64(*arrays):
  return tuple(np.asarray(a, np.float64) for a in arrays)


# Eager dispatch compiles every primitive separately; one jit per loss (and
# per input signature) keeps this module fast. Bad-input tests call the
# functions eagerly, where hyperparameters are concrete.


@functools.cache
def _jitted(fn):
  return jax.jit(fn, static_argnames=("reduction",))


class _Jitted:
  def __getattr__(self, name):
    return _jitted(getattr(jaxobj, name))


J = _Jitted()
_optax_ntxent = jax.jit(optax.ntxent)


# --------------------------------------------------------------------------
# Values against the references.


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_info_nce_in_batch(temperature):
  q, k = _views()
  got = J.info_nce_loss(q, k, temperature=temperature, reduction="none")
  _close(got, ref_info_nce(*_f64(q, k), temperature=temperature))


def test_info_nce_explicit_negatives_shared_and_paired():
  q, k = _views()
  bank, paired = _randn(5, D), _randn(B, 3, D)
  _close(J.info_nce_loss(q, k, bank, reduction="none"), ref_info_nce(*_f64(q, k, bank)))
  _close(J.info_nce_loss(q, k, paired, reduction="none"), ref_info_nce(*_f64(q, k, paired)))


@pytest.mark.parametrize(
  "labels",
  [
    [0, 1, 2, 0, 1, 2],  # SimCLR pairs: one positive per anchor
    [0, 0, 0, 1, 1, 2],  # groups of different sizes, one anchor alone
    [3, 3, 3, 3, 3, 3],  # no negatives at all
  ],
  ids=["pairs", "groups", "one_group"],
)
@pytest.mark.parametrize("temperature", [0.07, 1.0])
def test_ntxent_matches_reference_and_optax(labels, temperature):
  x = _randn(B, D)
  labels = np.array(labels, np.int32)
  got = J.ntxent(x, labels, temperature=temperature, reduction="none")
  _close(got, ref_ntxent(np.float64(x), labels, temperature))
  mean = J.ntxent(x, labels, temperature=temperature)
  _close(mean, _optax_ntxent(x, labels, temperature))
  g = jax.grad(lambda e: J.ntxent(e, labels, temperature=temperature))(x)
  g_optax = jax.grad(lambda e: _optax_ntxent(e, labels, temperature))(x)
  _close(g, g_optax, rtol=1e-4, atol=1e-6)


def test_ntxent_mean_is_the_mean_over_positive_pairs():
  x, labels = _randn(B, D), np.array([0, 0, 0, 1, 1, 2])
  pairs = ref_ntxent_pairs(np.float64(x), labels)
  _close(J.ntxent(x, labels), np.mean(list(pairs.values())))
  _close(J.ntxent(x, labels, reduction="sum"), B * np.mean(list(pairs.values())))


def test_ntxent_without_any_positive_pair_is_zero():
  x = _randn(B, D)
  labels = np.arange(B)
  assert float(J.ntxent(x, labels)) == 0.0
  assert np.isnan(float(_optax_ntxent(x, labels, 0.07)))
  g = jax.grad(lambda e: J.ntxent(e, labels))(x)
  assert np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize("log_temperature", [0.0, math.log(1 / 0.07)])
def test_clip(log_temperature):
  x, y = _views()
  got = J.clip_loss(x, y, log_temperature=log_temperature, reduction="none")
  _close(got, ref_clip(*_f64(x, y), math.exp(log_temperature)))
  _close(J.clip_loss(x, y), J.clip_loss(y, x))  # symmetric


@pytest.mark.parametrize("log_temperature,bias", [(math.log(10.0), -10.0), (0.5, 1.0)])
def test_siglip(log_temperature, bias):
  x, y = _views()
  got = J.siglip_loss(x, y, log_temperature=log_temperature, bias=bias, reduction="none")
  _close(got, ref_siglip(*_f64(x, y), math.exp(log_temperature), bias))
  # The mean divides the sum over all pairs by the batch size, as in the paper.
  _close(
    J.siglip_loss(x, y, log_temperature=log_temperature, bias=bias),
    np.sum(ref_siglip(*_f64(x, y), math.exp(log_temperature), bias)) / B,
  )


def test_published_initial_values():
  import inspect

  hyper = lambda f: inspect.signature(f).parameters  # noqa: E731
  assert hyper(jaxobj.siglip_loss)["log_temperature"].default == math.log(10.0)
  assert hyper(jaxobj.siglip_loss)["bias"].default == -10.0
  assert hyper(jaxobj.clip_loss)["log_temperature"].default == math.log(1 / 0.07)
  assert hyper(jaxobj.barlow_twins_loss)["lambda_param"].default == 5e-3
  v = hyper(jaxobj.vicreg_loss)
  assert (
    v["sim_coeff"].default,
    v["std_coeff"].default,
    v["cov_coeff"].default,
    v["eps"].default,
  ) == (25.0, 25.0, 1.0, 1e-4)


@pytest.mark.parametrize("temperature,base", [(0.07, 0.07), (0.5, 0.1)])
def test_supcon_matches_the_reference_view_layout(temperature, base):
  bsz, views = 4, 2
  features = _randn(bsz, views, D)
  labels = np.array([0, 1, 0, 2])  # class 2 has only its other view as positive
  ref = ref_supcon_views(np.float64(features), labels, temperature, base)
  got = J.supervised_contrastive_loss(
    features,
    np.repeat(labels[:, None], views, 1),
    temperature=temperature,
    base_temperature=base,
    reduction="none",
  )
  assert got.shape == (bsz, views)
  _close(got, ref.reshape(views, bsz).T)  # the reference's rows are view-major
  _close(
    J.supervised_contrastive_loss(
      features, np.repeat(labels[:, None], views, 1), temperature=temperature, base_temperature=base
    ),
    ref.mean(),
  )


def test_supcon_anchor_without_positive_is_zero_and_counted():
  x, labels = _randn(B, D), np.array([0, 0, 1, 1, 2, 3])
  ref = ref_supcon_views(np.float64(x)[:, None], labels)
  none = J.supervised_contrastive_loss(x, labels, reduction="none")
  _close(none, ref)
  assert float(none[4]) == 0.0 and float(none[5]) == 0.0
  _close(J.supervised_contrastive_loss(x, labels), ref.mean())


@pytest.mark.parametrize("sigma", [None, 0.5])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_dcl(temperature, sigma):
  a, b = _views()
  got = J.decoupled_contrastive_loss(a, b, temperature=temperature, sigma=sigma, reduction="none")
  _close(got, ref_dcl(*_f64(a, b), temperature, sigma))


def test_dcl_is_ntxent_without_the_positive_in_the_denominator():
  # DCL's per-anchor loss is NT-Xent's t = softplus(n - s) with log(1 + e^x)
  # replaced by x: so DCL <= NT-Xent for SimCLR labels, with equality only in
  # the limit of no weight on the positive.
  a, b = _views()
  emb, labels = np.concatenate([a, b]), np.tile(np.arange(B), 2)
  nt = J.ntxent(emb, labels, temperature=0.1, reduction="none")
  dcl = J.decoupled_contrastive_loss(a, b, temperature=0.1, reduction="none")
  assert np.all(np.asarray(dcl) < 0.5 * (np.asarray(nt[:B]) + np.asarray(nt[B:])))


def test_negative_cosine_similarity_and_stop_gradient():
  p, z = _views()
  _close(J.negative_cosine_similarity(p, z, reduction="none"), ref_negative_cosine(*_f64(p, z)))
  gz = jax.grad(lambda t: J.negative_cosine_similarity(p, t))(z)
  assert np.all(np.asarray(gz) == 0.0)
  # d(-cos)/dp = -(z_hat - cos * p_hat) / |p| per row, divided by B for the mean.
  ph, zh = unit(p), unit(z)
  cos = np.sum(ph * zh, -1, keepdims=True)
  expected = -(zh - cos * ph) / np.linalg.norm(np.float64(p), axis=-1, keepdims=True) / B
  _close(jax.grad(lambda q: J.negative_cosine_similarity(q, z))(p), expected, rtol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_negative_cosine_similarity_feature_axis(axis):
  # (3, 4, 5) embeddings with the features along `axis`; one loss per position
  # of the other two axes, in order. Reference: the formula along that axis.
  rng = np.random.default_rng(5)
  p, z = (rng.standard_normal((3, 4, 5)).astype(np.float32) for _ in range(2))
  p64, z64 = np.float64(p), np.float64(z)
  norm_p = np.linalg.norm(p64, axis=axis, keepdims=True)
  norm_z = np.linalg.norm(z64, axis=axis, keepdims=True)
  cos = np.sum(p64 * z64, axis=axis, keepdims=True) / (norm_p * norm_z)
  rows = np.squeeze(cos, axis).shape
  where = rng.uniform(size=rows) < 0.7
  _close(
    jaxobj.negative_cosine_similarity(p, z, axis=axis, reduction="none"), -np.squeeze(cos, axis)
  )
  _close(
    jaxobj.negative_cosine_similarity(p, z, axis=axis, where=where),
    -np.sum(np.squeeze(cos, axis) * where) / where.sum(),
  )
  # d(-cos)/dp = -(z_hat - cos p_hat) / |p| along the axis, 0 for masked rows.
  grad = -(z64 / norm_z - cos * p64 / norm_p) / norm_p * np.expand_dims(where, axis) / where.sum()
  _close(
    jax.grad(lambda q: jaxobj.negative_cosine_similarity(q, z, axis=axis, where=where))(p),
    grad,
    rtol=1e-4,
  )
  assert np.all(
    np.asarray(jax.grad(lambda t: jaxobj.negative_cosine_similarity(p, t, axis=axis))(z)) == 0.0
  )


def test_negative_cosine_similarity_bad_axis_is_a_clear_error():
  p = np.ones((3, 4), np.float32)
  with pytest.raises(ValueError, match=r"axis=2 is out of range.*\(3, 4\).*\[-2, 2\)"):
    jaxobj.negative_cosine_similarity(p, p, axis=2)
  with pytest.raises(TypeError, match="axis must be an int"):
    jaxobj.negative_cosine_similarity(p, p, axis=1.0)
  with pytest.raises(ValueError, match="same shape"):
    jaxobj.negative_cosine_similarity(p, p[:, :3], axis=0)


@pytest.mark.parametrize("lambda_param", [5e-3, 0.5])
def test_barlow_twins(lambda_param):
  z1, z2 = _views(8, D)
  _close(
    J.barlow_twins_loss(z1, z2, lambda_param=lambda_param), ref_barlow(*_f64(z1, z2), lambda_param)
  )


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
def test_barlow_twins_standardizes_like_batch_norm(eps):
  # Biased variance plus eps (the authors' BatchNorm1d, lightly), not the
  # unbiased std of the paper's pseudocode: the two differ at small n.
  z1, z2 = _views(4, D)
  got = jaxobj.barlow_twins_loss(z1, z2, eps=eps)
  _close(got, ref_barlow(*_f64(z1, z2), eps=eps))
  s1 = (z1 - z1.mean(0)) / z1.std(0, ddof=1)
  s2 = (z2 - z2.mean(0)) / z2.std(0, ddof=1)
  c = np.float64(s1).T @ np.float64(s2) / 4
  unbiased = np.sum((np.diag(c) - 1) ** 2) + 5e-3 * np.sum(c[~np.eye(D, dtype=bool)] ** 2)
  assert abs(float(got) - unbiased) > 1e-2


def test_vicreg():
  z1, z2 = _views(8, D)
  _close(J.vicreg_loss(z1, z2), ref_vicreg(*_f64(z1, z2)))
  # Collapsed, scaled-down inputs make the variance hinge active in every dim.
  _close(
    J.vicreg_loss(0.1 * z1, 0.1 * z2, sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5, eps=1e-3),
    ref_vicreg(*_f64(0.1 * z1, 0.1 * z2), 2.0, 3.0, 0.5, 1e-3),
  )


@pytest.mark.parametrize(
  "loss,ref",
  [(J.barlow_twins_loss, ref_barlow), (J.vicreg_loss, ref_vicreg)],
  ids=["barlow", "vicreg"],
)
def test_batch_statistic_losses_treat_leading_axes_as_problems(loss, ref):
  z1, z2 = _randn(2, 3, 8, D), _randn(2, 3, 8, D)
  got = loss(z1, z2, reduction="none")
  assert got.shape == (2, 3)
  expected = [[ref(*_f64(z1[i, j], z2[i, j])) for j in range(3)] for i in range(2)]
  _close(got, expected)


@pytest.mark.parametrize("loss", [J.barlow_twins_loss, J.vicreg_loss], ids=["barlow", "vicreg"])
def test_sample_where_equals_dropping_samples(loss):
  z1, z2 = _randn(8, D), _randn(8, D)
  keep = np.array([1, 1, 0, 1, 1, 0, 1, 1], bool)
  poisoned = [np.where(keep[:, None], z, np.nan).astype(np.float32) for z in (z1, z2)]
  _close(loss(*poisoned, sample_where=keep), loss(z1[keep], z2[keep]))
  g = jax.grad(lambda a: loss(a, poisoned[1], sample_where=keep))(poisoned[0])
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~keep] == 0.0)


# --------------------------------------------------------------------------
# Masks: a masked row is sliced out of the batch, negatives included.


def test_info_nce_paired_negatives_mask_equals_slice():
  q, k = _views()
  negs = _randn(B, 3, D)
  m = np.array([1, 0, 1, 1, 0, 1], bool)
  poisoned = [
    np.where(m.reshape((-1,) + (1,) * (a.ndim - 1)), a, np.nan).astype(np.float32)
    for a in (q, k, negs)
  ]
  _close(J.info_nce_loss(*poisoned, where=m), J.info_nce_loss(q[m], k[m], negs[m]))
  bank = _randn(5, D)
  _close(J.info_nce_loss(q, k, bank, where=m), J.info_nce_loss(q[m], k[m], bank))


def test_masked_rows_leave_the_negatives():
  # Changing a masked row changes nothing, although it would be a negative.
  x, y = _views()
  m = np.array([1, 1, 1, 1, 1, 0], bool)
  y2 = y.copy()
  y2[5] = y[0]  # a hard negative for row 0, if it were not masked
  for loss in (J.info_nce_loss, J.clip_loss, J.siglip_loss, J.decoupled_contrastive_loss):
    _close(loss(x, y2, where=m), loss(x, y, where=m))
    _close(loss(x, y, where=m), loss(x[m], y[m]))


def test_weights_do_not_remove_negatives():
  x, y = _views()
  w = np.array([1, 1, 1, 1, 1, 0], np.float32)
  none = J.clip_loss(x, y, reduction="none")
  _close(J.clip_loss(x, y, weights=w), np.sum(w * none) / 5)
  assert not np.allclose(float(J.clip_loss(x, y, weights=w)), float(J.clip_loss(x[:5], y[:5])))


# --------------------------------------------------------------------------
# Gradients (float64).


def _grads(f, *args, **kw):
  with jax.enable_x64(True):
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    check_grads(
      jax.jit(functools.partial(f, **kw)), args, order=1, modes=["rev"], atol=1e-5, rtol=1e-5
    )


def test_pairwise_gradients():
  x, y = _views()
  labels = np.array([0, 0, 1, 1, 2, 0])
  negs = _randn(B, 3, D)
  _grads(lambda a, b: J.info_nce_loss(a, b), x, y)
  _grads(lambda a, b, n: J.info_nce_loss(a, b, n), x, y, negs)
  _grads(lambda a, b: J.clip_loss(a, b), x, y)
  _grads(lambda a, b: J.siglip_loss(a, b, log_temperature=1.0, bias=-1.0), x, y)
  _grads(lambda a, b: J.decoupled_contrastive_loss(a, b), x, y)
  _grads(lambda a: J.ntxent(a, labels, temperature=0.5), x)
  _grads(lambda a: J.supervised_contrastive_loss(a, labels, temperature=0.5), x)
  _grads(lambda a: J.negative_cosine_similarity(a, y), x)


def test_batch_statistic_gradients():
  z1, z2 = _views(8, D)
  _grads(lambda a, b: J.barlow_twins_loss(a, b), z1, z2)
  _grads(lambda a, b: J.vicreg_loss(0.3 * a, b), z1, z2)


def test_hyperparameter_gradients():
  x, y = _views()
  labels = np.array([0, 0, 1, 1, 2, 0])
  _grads(lambda t, b: J.siglip_loss(x, y, log_temperature=t, bias=b), 1.0, -2.0)
  _grads(lambda t: J.clip_loss(x, y, log_temperature=t), 2.0)
  _grads(lambda t: J.ntxent(x, labels, temperature=t), 0.3)
  _grads(
    lambda t, tb: J.supervised_contrastive_loss(x, labels, temperature=t, base_temperature=tb),
    0.3,
    0.2,
  )
  _grads(lambda t: J.decoupled_contrastive_loss(x, y, temperature=t), 0.3)
  _grads(lambda lam: J.barlow_twins_loss(x, y, lambda_param=lam), 0.1)


def test_siglip_bias_gradient_closed_form():
  # d/db of sum_j softplus(-/+ z_ij) is sum_j (sigmoid(z_ij) - [i == j]).
  x, y = _views()
  t, b = 2.0, -1.0
  z = unit(x) @ unit(y).T * math.exp(t) + b
  expected = np.sum(1.0 / (1.0 + np.exp(-z)) - np.eye(B)) / B
  _close(jax.grad(lambda b: J.siglip_loss(x, y, log_temperature=t, bias=b))(b), expected, rtol=1e-4)


# --------------------------------------------------------------------------
# Extremes and degenerate inputs.


@functools.cache
def _value_and_grad(name):
  """Jitted value and gradient (w.r.t. the first input) of a mean-reduced loss."""
  return jax.jit(jax.value_and_grad(getattr(jaxobj, name)))


def _finite(name, *args, **kw):
  val, g = _value_and_grad(name)(*args, **kw)
  assert np.isfinite(float(val)) and np.all(np.isfinite(g)), name
  return val


@pytest.mark.parametrize(
  "name,ref",
  [
    ("info_nce_loss", ref_info_nce),
    ("clip_loss", lambda x, y: ref_clip(x, y, 1 / 0.07)),
    ("siglip_loss", lambda x, y: ref_siglip(x, y, 10.0, -10.0)),
    ("decoupled_contrastive_loss", ref_dcl),
    ("negative_cosine_similarity", ref_negative_cosine),
  ],
  ids=lambda v: v if isinstance(v, str) else "",
)
def test_zero_vectors_have_cosine_zero(name, ref):
  x, y = _views()
  x[2] = 0.0
  y[4] = 0.0
  _close(_finite(name, x, y), np.mean(ref(*_f64(x, y))))


def test_zero_vectors_in_labeled_losses():
  x, labels = _randn(B, D), np.array([0, 0, 1, 1, 2, 2])
  x[1] = 0.0
  _close(_finite("ntxent", x, labels), np.mean(ref_ntxent(np.float64(x), labels)))
  _close(
    _finite("supervised_contrastive_loss", x, labels),
    np.mean(ref_supcon_views(np.float64(x)[:, None], labels)),
  )


PAIRWISE = ["info_nce_loss", "clip_loss", "siglip_loss", "decoupled_contrastive_loss"]
LABELED = ["ntxent", "supervised_contrastive_loss"]
SETS = ["barlow_twins_loss", "vicreg_loss"]


@pytest.mark.parametrize("scale", [1e4, 1e-20])
def test_extreme_embedding_scales(scale):
  x, y = _views()
  x = x * np.float32(scale)
  labels = np.array([0, 0, 1, 1, 2, 0])
  for name in PAIRWISE:
    _finite(name, x, y)
  for name in LABELED:
    _finite(name, x, labels)
  for name in SETS:
    _finite(name, x[None], y[None])


def test_logits_of_1e4_are_finite():
  # A temperature of 1e-4 puts cosine logits at +-1e4; a scale of e^9.2 likewise.
  x, y = _views()
  labels = np.array([0, 0, 1, 1, 2, 0])
  for name in ("info_nce_loss", "decoupled_contrastive_loss"):
    _finite(name, x, y, temperature=1e-4)
  for name in LABELED:
    _finite(name, x, labels, temperature=1e-4)
  _finite("clip_loss", x, y, log_temperature=9.2)
  _finite("siglip_loss", x, y, log_temperature=9.2, bias=-1e4)
  _close(
    J.info_nce_loss(x, y, temperature=1e-3, reduction="none"),
    ref_info_nce(*_f64(x, y), temperature=1e-3),
    rtol=1e-4,
    atol=1e-2,
  )


def test_dcl_batch_of_one_is_zero():
  a, b = _views(1)
  assert float(J.decoupled_contrastive_loss(a, b)) == 0.0
  x, y = _views()
  m = np.array([0, 0, 1, 0, 0, 0], bool)
  assert float(J.decoupled_contrastive_loss(x, y, where=m)) == 0.0
  assert np.all(np.isfinite(jax.grad(lambda a: J.decoupled_contrastive_loss(a, y, where=m))(x)))


def test_barlow_constant_dimension_counts_as_uncorrelated():
  z1, z2 = _views(8, D)
  z1[:, 0] = 3.0  # a collapsed unit: standardizes to 0 instead of 0/0
  val = _finite("barlow_twins_loss", z1, z2)
  # Row 0 of C is 0: the diagonal adds (0 - 1)^2 = 1 and the off-diagonal
  # terms of dimension 0 come from column 0 only.
  z1s, z2s = bn(np.float64(z1[:, 1:])), bn(np.float64(z2))
  col_0 = z1s.T @ z2s[:, 0] / 8  # C_{e0}, e != 0
  rest = ref_barlow(*_f64(z1[:, 1:], z2[:, 1:]))
  _close(val, rest + 1.0 + 5e-3 * np.sum(col_0**2))


def test_fewer_than_two_samples_after_masking():
  z1, z2 = _views(8, D)
  one = np.zeros(8, bool)
  one[3] = True
  _close(J.barlow_twins_loss(z1, z2, sample_where=one), float(D))
  # Variance 0 everywhere: only the hinge at 1 - sqrt(eps) remains (x == y here).
  _close(J.vicreg_loss(z1, z1, sample_where=one), 25.0 * (1.0 - math.sqrt(1e-4)))
  _close(
    J.vicreg_loss(np.tile(z1[:1], (8, 1)), np.tile(z1[:1], (8, 1))), 25.0 * (1.0 - math.sqrt(1e-4))
  )


# --------------------------------------------------------------------------
# Bad input.


def test_embedding_dimension_mismatch_is_named():
  for loss in (
    jaxobj.info_nce_loss,
    jaxobj.clip_loss,
    jaxobj.siglip_loss,
    jaxobj.decoupled_contrastive_loss,
    jaxobj.negative_cosine_similarity,
  ):
    with pytest.raises(ValueError, match=r"embedding dimension.*\(6, 4\).*\(6, 5\)"):
      loss(_randn(B, 4), _randn(B, 5))
  with pytest.raises(ValueError, match="embedding dimension"):
    jaxobj.barlow_twins_loss(_randn(8, 4), _randn(8, 5))


def test_negatives_of_the_wrong_shape():
  q, k = _views()
  with pytest.raises(ValueError, match=r"negatives\.shape=\(6, 3, 5\)"):
    jaxobj.info_nce_loss(q, k, _randn(B, 3, 5))
  with pytest.raises(ValueError, match=r"negatives\.shape=\(5, 3, 4\)"):
    jaxobj.info_nce_loss(q, k, _randn(5, 3, D))


def test_labels_must_match_and_be_integers():
  x = _randn(B, D)
  for loss in (jaxobj.ntxent, jaxobj.supervised_contrastive_loss):
    with pytest.raises(ValueError, match=r"labels\.shape=\(5,\)"):
      loss(x, np.zeros(5, np.int32))
    with pytest.raises(TypeError, match="labels"):
      loss(x, np.zeros(B, np.float32))


def test_rank_and_sample_count_errors():
  with pytest.raises(ValueError, match=r"queries.*\(4,\)"):
    jaxobj.info_nce_loss(_randn(D), _randn(D))
  with pytest.raises(ValueError, match="at least 2 samples"):
    jaxobj.barlow_twins_loss(_randn(1, D), _randn(1, D))
  with pytest.raises(ValueError, match=r"view1.*\(4,\)"):
    jaxobj.vicreg_loss(_randn(D), _randn(D))
  with pytest.raises(TypeError, match="sample_where"):
    jaxobj.vicreg_loss(_randn(8, D), _randn(8, D), sample_where=np.ones(8))
  with pytest.raises(ValueError, match=r"sample_where\.shape=\(7,\)"):
    jaxobj.vicreg_loss(_randn(8, D), _randn(8, D), sample_where=np.ones(7, bool))


@pytest.mark.parametrize(
  "call",
  [
    lambda x: jaxobj.info_nce_loss(x, x, temperature=0.0),
    lambda x: jaxobj.ntxent(x, np.zeros(B, np.int32), temperature=-1.0),
    lambda x: jaxobj.supervised_contrastive_loss(x, np.zeros(B, np.int32), base_temperature=0.0),
    lambda x: jaxobj.decoupled_contrastive_loss(x, x, sigma=0.0),
    lambda x: jaxobj.barlow_twins_loss(x, x, lambda_param=-1.0),
    lambda x: jaxobj.barlow_twins_loss(x, x, eps=-1e-5),
    lambda x: jaxobj.vicreg_loss(x, x, eps=0.0),
  ],
  ids=["info_nce", "ntxent", "supcon", "dcl", "barlow", "barlow_eps", "vicreg"],
)
def test_out_of_range_hyperparameters(call):
  with pytest.raises(ValueError, match="must satisfy"):
    call(_randn(B, D))


# --------------------------------------------------------------------------
# One matrix product: memory grows with B^2, not B^2 D.


@pytest.mark.parametrize(
  "name",
  [
    "info_nce_loss",
    "clip_loss",
    "siglip_loss",
    "decoupled_contrastive_loss",
    "ntxent",
    "supervised_contrastive_loss",
  ],
)
def test_no_b_by_b_by_d_temporaries(name):
  n, d = 64, 512
  loss = getattr(jaxobj, name)
  x = jnp.zeros((n, d))
  second = (
    jnp.zeros(n, jnp.int32)
    if name in ("ntxent", "supervised_contrastive_loss")
    else jnp.zeros((n, d))
  )
  f = jax.jit(jax.grad(lambda a, b: loss(a, b)))
  temp = f.lower(x, second).compile().memory_analysis().temp_size_in_bytes
  broadcast = n * n * d * 4
  assert temp < broadcast / 8, (temp, broadcast)


# ---------------------------------------------------------------- NaN, empty batches, x64


def _labeled_batch():
  x = jax.random.normal(jax.random.key(3), (6, 4))
  return x, jnp.array([0, 0, 1, 1, 2, 2])


def test_a_nan_row_reaches_the_value_and_a_masked_one_does_not():
  # A NaN row maximum used to mark the row as empty: SupCon gave a finite
  # value, NT-Xent 0.0.
  x, y = _labeled_batch()
  bad, keep = x.at[2].set(jnp.nan), jnp.arange(6) != 2
  for fn in (jaxobj.supervised_contrastive_loss, jaxobj.ntxent):
    assert np.isnan(float(fn(bad, y))), fn.__name__
    np.testing.assert_allclose(fn(bad, y, where=keep), fn(x[keep], y[keep]), rtol=1e-6)
    g = jax.grad(lambda a, fn=fn: fn(a, y, where=keep))(bad)
    assert np.all(np.isfinite(g)) and np.all(g[2] == 0.0), fn.__name__
  for fn in (jaxobj.info_nce_loss, jaxobj.clip_loss, jaxobj.decoupled_contrastive_loss):
    assert np.isnan(float(fn(bad, x))), fn.__name__
    assert np.isnan(float(fn(x, bad))), fn.__name__


@pytest.mark.parametrize(
  "fn",
  [
    jaxobj.info_nce_loss,
    jaxobj.clip_loss,
    jaxobj.ntxent,
    jaxobj.supervised_contrastive_loss,
    jaxobj.decoupled_contrastive_loss,
  ],
  ids=lambda f: f.__name__,
)
def test_an_empty_batch_gives_zero_with_a_zero_gradient(fn):
  e = jnp.zeros((0, 4))
  second = (
    jnp.zeros((0,), jnp.int32) if fn in (jaxobj.ntxent, jaxobj.supervised_contrastive_loss) else e
  )
  assert float(fn(e, second)) == 0.0 and float(fn(e, second, reduction="sum")) == 0.0
  assert fn(e, second, reduction="none").shape == (0,)
  assert jax.grad(lambda a: fn(a, second))(e).shape == (0, 4)


def test_ntxent_low_precision_gives_float32_under_x64():
  x, y = _labeled_batch()
  with jax.enable_x64(True):
    for dtype in (jnp.bfloat16, jnp.float16):
      assert jaxobj.ntxent(x.astype(dtype), y).dtype == jnp.float32
