"""Losses that match a peer library's (optax, Keras, torch): values against float64
NumPy references written from the papers and the peers' documented formulas,
gradients, extremes; optax's own functions where it has the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce

import jaxobj

RNG = np.random.default_rng(19)


# ---------------------------------------------------------------- sparsemax


def np_sparsemax(x):
  """Sparsemax by bisection on the threshold: sum_k max(x_k - tau, 0) = 1
  (independent of the sort-based algorithm)."""
  x = f64(x)
  out = np.zeros_like(x)
  for idx in np.ndindex(x.shape[:-1]):
    row = x[idx]
    finite = row[np.isfinite(row)]
    lo, hi = finite.max() - 1.0, finite.max()
    for _ in range(200):
      tau = 0.5 * (lo + hi)
      if np.maximum(row - tau, 0.0).sum() > 1.0:
        lo = tau
      else:
        hi = tau
    out[idx] = np.maximum(row - 0.5 * (lo + hi), 0.0)
  return out


def test_sparsemax_is_the_simplex_projection_with_its_exact_jacobian():
  x = RNG.normal(size=(3, 6)) * 0.7
  x[1, 2] = -np.inf
  p = jaxobj.sparsemax(jnp.asarray(x, jnp.float32))
  close(p, np_sparsemax(x), atol=1e-6)
  assert float(p[1, 2]) == 0.0 and np.allclose(np.sum(p, -1), 1.0)
  assert (np.asarray(p) == 0).any()  # sparse, unlike the softmax
  # Jacobian diag(s) - s s^T / |S| on the support.
  row = jnp.asarray(x[0], jnp.float32)
  jac = jax.jacfwd(jaxobj.sparsemax)(row)
  s = (np_sparsemax(x[0]) > 0).astype(float)
  close(jac, np.diag(s) - np.outer(s, s) / s.sum(), atol=1e-6)
  # Class axis elsewhere; scale 1e4 (shifted internally: no cancellation).
  close(jaxobj.sparsemax(jnp.asarray(x.T, jnp.float32), axis=0), np_sparsemax(x).T, atol=1e-6)
  big = jnp.array([1e4, 1e4 - 0.5, -1e4])
  close(jaxobj.sparsemax(big), [0.75, 0.25, 0.0])
  with pytest.raises(TypeError, match="floating"):
    jaxobj.sparsemax(jnp.array([1, 2]))


def np_multiclass_sparsemax(x, y):
  """Fenchel-Young form 1/2 ||e_y - x||^2 - 1/2 ||p - x||^2 (Blondel et al. 2020)."""
  p = np_sparsemax(x)
  e = np.eye(x.shape[-1])[y]
  fin = np.isfinite(x)
  d1 = np.where(fin, e - x, 0.0)
  d2 = np.where(fin, p - x, 0.0)
  return 0.5 * (d1**2).sum(-1) - 0.5 * (d2**2).sum(-1), p - e


def test_multiclass_sparsemax_loss_values_gradients_and_optax():
  x = RNG.normal(size=(6, 5)) * 0.8
  y = RNG.integers(0, 5, 6)
  x[0, y[0]] = 3.0  # margin reached: exactly 0 with zero gradient
  x[2, (y[2] + 1) % 5] = -np.inf
  w = RNG.uniform(0.5, 2.0, 6)
  m = np.array([True, True, True, False, True, True])
  want, grad = np_multiclass_sparsemax(x, y)
  xs, ys = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
  close(jaxobj.multiclass_sparsemax_loss(xs, ys, reduction="none"), want, atol=1e-6)
  assert float(jaxobj.multiclass_sparsemax_loss(xs, ys, reduction="none")[0]) == 0.0
  got = jaxobj.multiclass_sparsemax_loss(xs, ys, where=jnp.asarray(m), weights=jnp.asarray(w))
  close(got, ref_reduce(want, m, w))
  g = jax.grad(lambda s: jaxobj.multiclass_sparsemax_loss(s, ys, reduction="sum"))(xs)
  close(g, grad, atol=1e-6)
  fin = np.isfinite(x).all(-1)
  close(
    jaxobj.multiclass_sparsemax_loss(xs[fin], ys[fin], reduction="none"),
    optax.losses.multiclass_sparsemax_loss(xs[fin], ys[fin]),
    atol=1e-6,
  )
  # Large scores lose nothing (relative to the label's score); a label whose
  # class is ruled out by -inf is an infinite loss.
  big = jnp.array([[1e4, 1e4 - 0.5, -1e4]])
  # <p, x - x_y> + (1 - ||p||^2) / 2 with p = (3/4, 1/4, 0), x - x_y = (1/2, 0, -2e4 - 1/2).
  close(jaxobj.multiclass_sparsemax_loss(big, jnp.array([1])), 0.375 + 0.5 * (1 - 0.625))
  assert np.isinf(
    float(jaxobj.multiclass_sparsemax_loss(jnp.array([[0.0, -jnp.inf]]), jnp.array([1])))
  )


def np_sparse_plus(x):
  return np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4))


def test_binary_sparsemax_loss_is_optax_and_fenchel_young_for_soft_labels():
  x = np.concatenate([RNG.normal(size=8) * 1.5, [-3.0, 3.0, 1e4, -1e4]])
  y = np.concatenate([RNG.integers(0, 2, 8), [0, 1, 1, 0]]).astype(float)
  xs, ys = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  want = np.where(y == 1, np_sparse_plus(-x), np_sparse_plus(x))
  got = jaxobj.sparsemax_loss(xs, ys, reduction="none")
  close(got, want)
  close(got, optax.losses.sparsemax_loss(xs, ys.astype(jnp.int32)))
  close(
    jax.grad(lambda v: jaxobj.sparsemax_loss(v, ys, reduction="sum"))(xs),
    np.clip((x + 1) / 2, 0, 1) - y,
  )
  # Soft labels: Omega*(x) + Omega(y) - x y with Omega(p) = p^2 - p, minimum 0 at
  # x = 2y - 1.
  q = RNG.uniform(size=5)
  t = RNG.normal(size=5)
  close(
    jaxobj.sparsemax_loss(jnp.asarray(t), jnp.asarray(q), reduction="none"),
    np_sparse_plus(t) + q**2 - q - t * q,
  )
  close(jaxobj.sparsemax_loss(jnp.asarray(2 * q - 1), jnp.asarray(q), reduction="none"), 0 * q)


def test_fenchel_young_constructor_gives_the_prediction_minus_the_target():
  x = jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32)
  y = jax.nn.softmax(jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32))
  # Omega* = logsumexp: cross-entropy up to the entropy of y; with Omega the KL.
  ce = jaxobj.make_fenchel_young_loss(jax.nn.logsumexp)
  close(ce(x, y, reduction="none"), jaxobj.softmax_cross_entropy(x, y, reduction="none"))
  close(jax.grad(lambda s: ce(s, y, reduction="sum"))(x), jax.nn.softmax(x) - y, atol=1e-6)
  kl = jaxobj.make_fenchel_young_loss(
    jax.nn.logsumexp, regularizer=lambda p: jnp.sum(p * jnp.log(p))
  )
  yn, xn = f64(y), f64(x)
  log_q = xn - np.log(np.exp(xn).sum(-1, keepdims=True))
  close(kl(x, y, reduction="none"), (yn * (np.log(yn) - log_q)).sum(-1), atol=2e-6)
  close(kl(jnp.log(y), y, reduction="none"), np.zeros(4), atol=2e-6)  # 0 at y_hat = y

  # Sparsemax's conjugate with Omega(p) = ||p||^2 / 2 is the multiclass
  # sparsemax loss; its gradient is sparsemax(x) - y.
  def sparse_max(s):
    p = jaxobj.sparsemax(s)
    return jnp.dot(s, p) - 0.5 * jnp.dot(p, p)

  sp = jaxobj.make_fenchel_young_loss(sparse_max, regularizer=lambda p: 0.5 * jnp.dot(p, p))
  labels = jnp.array([0, 3, 1, 4])
  onehot = jax.nn.one_hot(labels, 5)
  close(
    sp(x, onehot, reduction="none"),
    jaxobj.multiclass_sparsemax_loss(x, labels, reduction="none"),
    atol=1e-6,
  )
  close(
    jax.grad(lambda s: sp(s, onehot, reduction="sum"))(x), jaxobj.sparsemax(x) - onehot, atol=1e-6
  )
  # optax's constructor omits Omega(y); same gradient.
  optax_sp = optax.losses.make_fenchel_young_loss(sparse_max)
  nogap = jaxobj.make_fenchel_young_loss(sparse_max)
  close(nogap(x[0], onehot[0], reduction="sum"), optax_sp(x[0], onehot[0]), atol=1e-6)
  # The contract: masks, weights, -inf scores under zero targets.
  m = jnp.array([True, False, True, True])
  close(ce(x, y, where=m), ref_reduce(np.asarray(ce(x, y, reduction="none")), np.asarray(m)))
  masked = x.at[0, 1].set(-jnp.inf)
  target = y.at[0].set(jnp.array([0.5, 0.0, 0.5, 0.0, 0.0]))
  assert np.isfinite(float(ce(masked, target)))
  assert np.all(np.isfinite(jax.grad(lambda s, t: ce(s, t), argnums=(0, 1))(masked, target)[1]))
  with pytest.raises(TypeError, match="max_fn must be a function"):
    jaxobj.make_fenchel_young_loss("logsumexp")
  with pytest.raises(ValueError, match="same shape"):
    ce(x, y[:, :4])


# ---------------------------------------------------------------- Keras and torch classification


def test_categorical_hinge_is_keras_formula():
  x = RNG.normal(size=(6, 4))
  x[0] = [-1.0, -2.0, 0.5, -0.3]  # every wrong class below 0: Keras compares with 0
  y = np.eye(4)[RNG.integers(0, 4, 6)]
  y[0] = [0, 0, 1, 0]
  pos, neg = (y * x).sum(-1), ((1 - y) * x).max(-1)
  want = np.maximum(neg - pos + 1.0, 0.0)
  got = jaxobj.categorical_hinge(jnp.asarray(x, jnp.float32), jnp.asarray(y), reduction="none")
  close(got, want)
  close(got[0], 0.5)
  close(
    jaxobj.categorical_hinge(jnp.asarray(x), jnp.asarray(y), margin=0.25),
    np.maximum(neg - pos + 0.25, 0).mean(),
  )
  g = jax.grad(lambda s: jaxobj.categorical_hinge(s, jnp.asarray(y), reduction="sum"))(
    jnp.asarray(x)
  )
  active = (want > 0)[:, None]
  argneg = np.eye(4)[((1 - y) * x).argmax(-1)] * (1 - y)
  close(g, np.where(active, argneg - y, 0.0))


def test_soft_margin_and_multilabel_losses_follow_torch():
  x, y = RNG.normal(size=(4, 5)) * 3, np.where(RNG.uniform(size=(4, 5)) < 0.5, -1.0, 1.0)
  close(
    jaxobj.soft_margin_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y)),
    np.logaddexp(0, -y * x).mean(),
  )
  big = jnp.array([1e4, -1e4])
  close(jaxobj.soft_margin_loss(big, jnp.array([-1.0, 0.0]), reduction="none"), [1e4, 0.0])
  t = (y > 0).astype(float)
  cw = RNG.uniform(0.5, 2.0, 5)
  per = -(t * -np.logaddexp(0, -x) + (1 - t) * -np.logaddexp(0, x)) * cw
  close(
    jaxobj.multilabel_soft_margin_loss(
      jnp.asarray(x), jnp.asarray(t), class_weights=jnp.asarray(cw), reduction="none"
    ),
    per.mean(-1),
  )
  check_grads(
    lambda s: jaxobj.multilabel_soft_margin_loss(s, f64(t), class_weights=f64(cw)),
    (f64(x),),
    order=1,
    modes=["rev"],
  )


def np_multilabel_margin(x, targets, margin=1.0):
  out = []
  for row, tgt in zip(x, targets):
    listed = []
    for c in tgt:
      if c == -1:
        break
      listed.append(c)
    others = [i for i in range(len(row)) if i not in listed]
    out.append(sum(max(0.0, margin - row[j] + row[i]) for j in listed for i in others) / len(row))
  return np.array(out)


def test_multilabel_margin_loss_reads_torchs_target_format():
  x = RNG.normal(size=(5, 4))
  tgt = np.array([[3, 0, -1, 1], [-1, 2, 1, 0], [0, 1, 2, 3], [2, 2, -1, -1], [1, -1, 3, 3]])
  got = jaxobj.multilabel_margin_loss(jnp.asarray(x), jnp.asarray(tgt), reduction="none")
  close(got, np_multilabel_margin(x, tgt))
  close(got[1:3], [0.0, 0.0])  # no target, or every class a target
  close(
    jaxobj.multilabel_margin_loss(jnp.asarray(x), jnp.asarray(tgt), margin=0.3),
    np_multilabel_margin(x, tgt, 0.3).mean(),
  )
  check_grads(
    lambda s: jaxobj.multilabel_margin_loss(s, jnp.asarray(tgt)), (f64(x),), order=1, modes=["rev"]
  )
  with pytest.raises(ValueError, match=r"\[4\]"):
    jaxobj.multilabel_margin_loss(jnp.asarray(x), jnp.asarray(tgt).at[0, 1].set(4))
  # Masked rows may hold anything; under jit a bad target is NaN, not a number.
  m = jnp.array([True, True, True, True, False])
  bad = jnp.asarray(tgt).at[4, 0].set(7)
  close(
    jaxobj.multilabel_margin_loss(jnp.asarray(x), bad, where=m),
    np_multilabel_margin(x, tgt)[:4].mean(),
  )
  assert np.isnan(float(jax.jit(jaxobj.multilabel_margin_loss)(jnp.asarray(x), bad)))
  with pytest.raises(TypeError, match="integer"):
    jaxobj.multilabel_margin_loss(jnp.asarray(x), jnp.asarray(tgt, jnp.float32))


def test_nll_loss_on_log_probabilities_is_torchs_weighted_mean():
  z = RNG.normal(size=(6, 4))
  log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
  y = np.array([0, 3, -100, 1, 2, 3])
  cw = np.array([0.5, 1.0, 2.0, 3.0])
  keep = y != -100
  yk = np.where(keep, y, 0)
  picked = -log_p[np.arange(6), yk]
  close(jaxobj.nll_loss(jnp.asarray(log_p), jnp.asarray(y)), picked[keep].mean())
  wy = cw[yk] * keep
  got = jaxobj.nll_loss(jnp.asarray(log_p), jnp.asarray(y), class_weights=jnp.asarray(cw))
  close(got, (wy * picked).sum() / wy.sum())
  # The gradient is -w_y on the label only: not renormalized as from logits.
  g = jax.grad(lambda a: jaxobj.nll_loss(a, jnp.asarray(y), reduction="sum"))(jnp.asarray(log_p))
  close(g, -np.eye(4)[yk] * keep[:, None])
  close(
    jaxobj.nll_loss(jax.nn.log_softmax(jnp.asarray(z)), jnp.asarray(y)),
    jaxobj.softmax_cross_entropy_with_integer_labels(jnp.asarray(z), jnp.asarray(y)),
  )
  close(
    jaxobj.nll_loss(jnp.asarray(np.moveaxis(log_p, 1, 0)), jnp.asarray(y), axis=0),
    picked[keep].mean(),
  )


# ---------------------------------------------------------------- metric learning (torch, Keras)


def test_margin_ranking_and_hinge_embedding_follow_torch():
  a, b = RNG.normal(size=7), RNG.normal(size=7)
  y = np.where(RNG.uniform(size=7) < 0.5, -1.0, 1.0)
  got = jaxobj.margin_ranking_loss(
    jnp.asarray(a, jnp.float32), jnp.asarray(b), jnp.asarray(y), margin=0.3, reduction="none"
  )
  close(got, np.maximum(0.0, 0.3 - y * (a - b)))
  close(
    jaxobj.margin_ranking_loss(jnp.asarray(a), jnp.asarray(b), jnp.asarray(y)),
    np.maximum(0.0, -y * (a - b)).mean(),
  )
  g = jax.grad(
    lambda s: jaxobj.margin_ranking_loss(
      s, jnp.asarray(b), jnp.asarray(y), margin=0.3, reduction="sum"
    )
  )(jnp.asarray(a))
  close(g, np.where(0.3 - y * (a - b) > 0, -y, 0.0))
  d = np.abs(RNG.normal(size=7)) * 1.5
  want = np.where(y == 1, d, np.maximum(0.0, 1.0 - d))
  close(jaxobj.hinge_embedding_loss(jnp.asarray(d), jnp.asarray(y), reduction="none"), want)
  close(
    jaxobj.hinge_embedding_loss(jnp.asarray(d), jnp.asarray((y > 0).astype(float)), margin=2.0),
    np.where(y == 1, d, np.maximum(0.0, 2.0 - d)).mean(),
  )
  assert np.isnan(float(jaxobj.hinge_embedding_loss(jnp.asarray(d), jnp.asarray(2 * y))))
  with pytest.raises(ValueError, match="same shape"):
    jaxobj.margin_ranking_loss(jnp.asarray(a), jnp.asarray(b[:6]), jnp.asarray(y))


def np_circle(x, labels, m, gamma):
  """Sun et al. (2020), Eq. 6 with the pair-based similarities, per anchor; NaN
  for anchors without a positive or a negative."""
  z = x / np.linalg.norm(x, axis=1, keepdims=True)
  s = z @ z.T
  out = []
  for i in range(len(x)):
    p = [s[i, j] for j in range(len(x)) if j != i and labels[j] == labels[i]]
    n = [s[i, j] for j in range(len(x)) if labels[j] != labels[i]]
    if not p or not n:
      out.append(np.nan)
      continue
    ln = sum(np.exp(gamma * max(sn + m, 0) * (sn - m)) for sn in n)
    lp = sum(np.exp(-gamma * max(1 + m - sp, 0) * (sp - 1 + m)) for sp in p)
    out.append(np.log1p(ln * lp))
  return np.array(out)


def test_circle_loss_matches_the_paper():
  x = RNG.normal(size=(7, 3))
  labels = np.array([0, 0, 1, 1, 2, 2, 3])  # the last anchor has no positive
  want = np_circle(x, labels, 0.4, 8.0)
  got = jaxobj.circle_loss(
    jnp.asarray(x, jnp.float32), jnp.asarray(labels), gamma=8.0, reduction="none"
  )
  close(got, np.nan_to_num(want), rtol=1e-5, atol=1e-5)
  close(
    jaxobj.circle_loss(jnp.asarray(x, jnp.float32), jnp.asarray(labels), margin=0.25, gamma=16.0),
    np.nanmean(np_circle(x, labels, 0.25, 16.0)),
    rtol=1e-5,
  )
  # gamma = 80 (the default) and 256 stay finite (log-sum-exp).
  for gamma in (256.0,):
    v = jaxobj.circle_loss(jnp.asarray(x), jnp.asarray(labels), gamma=gamma)
    assert np.isfinite(float(v))

  # detach_weights: the paper's update, alpha held constant, checked against
  # float64 differences of the loss with alpha frozen (the default gradient is
  # the exact one, checked by the registry-wide second-order test).
  def frozen(s_flat, alpha_p, alpha_n, m=0.4, g=8.0):
    s = s_flat.reshape(7, 7)
    same = labels[:, None] == labels[None, :]
    pos = same & ~np.eye(7, dtype=bool)
    tp = np.where(pos, -g * alpha_p * (s - 1 + m), -np.inf)
    tn = np.where(~same, g * alpha_n * (s - m), -np.inf)
    with np.errstate(divide="ignore"):  # the anchor without a positive
      lp = np.log(np.exp(tp).sum(1))
      ln = np.log(np.exp(tn).sum(1))
    return np.where(np.isfinite(lp + ln), np.logaddexp(0, lp + ln), 0.0)[:6].mean()

  z = x / np.linalg.norm(x, axis=1, keepdims=True)
  s0 = z @ z.T
  ap, an = np.maximum(1.4 - s0, 0), np.maximum(s0 + 0.4, 0)
  eps = 1e-6
  ds = np.zeros(49)
  for k in range(49):
    e = np.zeros(49)
    e[k] = eps
    ds[k] = (frozen(s0.ravel() + e, ap, an) - frozen(s0.ravel() - e, ap, an)) / (2 * eps)
  ds = ds.reshape(7, 7)
  # Chain through s = z z^T, z = x / |x|.
  gz = (ds + ds.T) @ z
  gx = (gz - z * (gz * z).sum(1, keepdims=True)) / np.linalg.norm(x, axis=1, keepdims=True)
  g = jax.grad(
    lambda e: jaxobj.circle_loss(e, jnp.asarray(labels), gamma=8.0, detach_weights=True)
  )(f64(x))
  close(g, gx, rtol=1e-4, atol=1e-6)


def test_new_aliases_compute_the_peers_documented_values():
  a, p, n = (RNG.normal(size=(5, 3)) for _ in range(3))
  d = lambda u, v: np.linalg.norm(u - v + 1e-6, axis=-1)  # noqa: E731 (torch's pairwise_distance)
  close(
    jaxobj.registry.get("triplet_margin_with_distance_loss").fn(a, p, n),
    np.maximum(d(a, p) - d(a, n) + 1.0, 0.0).mean(),
  )
  for name in ("nll_loss", "categorical_hinge", "circle", "dice", "ctc"):
    assert (name in jaxobj.registry.names()) != (name in jaxobj.registry.NOT_ALIASES), name


# ---------------------------------------------------------------- CTC forward probabilities


def np_ctc_alphas(logp, labels, blank=0):
  """Graves et al. (2006) forward variables over the extended labels, float64 (probabilities)."""
  ext = [blank]
  for lab in labels:
    ext += [lab, blank]
  p = np.exp(logp)
  alpha = np.zeros((len(p), len(ext)))
  alpha[0, 0] = p[0, blank]
  if len(ext) > 1:
    alpha[0, 1] = p[0, ext[1]]
  for t in range(1, len(p)):
    for s in range(len(ext)):
      a = alpha[t - 1, s] + (alpha[t - 1, s - 1] if s >= 1 else 0.0)
      if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
        a += alpha[t - 1, s - 2]
      alpha[t, s] = a * p[t, ext[s]]
  return alpha


def test_ctc_forward_probs_are_graves_alphas_in_optaxs_layout():
  b, t, k = 3, 6, 4
  logits = RNG.normal(size=(b, t, k)).astype(np.float32)
  labels = np.array([[1, 2, 2], [3, 1, 0], [2, 0, 0]], np.int32)
  label_pad = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1]], np.float32)
  logit_pad = np.zeros((b, t), np.float32)
  logit_pad[2, 4:] = 1.0
  loss, blank, label = jaxobj.ctc_loss_with_forward_probs(
    jnp.asarray(logits),
    jnp.asarray(logit_pad),
    jnp.asarray(labels),
    jnp.asarray(label_pad),
  )
  assert blank.shape == (t, b, 4) and label.shape == (t, b, 3)
  close(loss, jaxobj.ctc_loss(logits, logit_pad, labels, label_pad, reduction="none"))
  o_loss, o_blank, o_label = optax.losses.ctc_loss_with_forward_probs(
    logits, logit_pad, labels, label_pad
  )
  close(loss, o_loss, rtol=1e-4)
  logp = logits - np.log(np.exp(f64(logits)).sum(-1, keepdims=True))
  for i in range(b):
    n = int((label_pad[i] == 0).sum())
    frames = int((logit_pad[i] == 0).sum())
    alpha = np_ctc_alphas(logp[i, :frames], labels[i, :n])
    want_blank, want_label = alpha[:, 0::2].copy(), alpha[:, 1::2]
    want_blank = np.concatenate([want_blank, np.repeat(want_blank[-1:], t - frames, 0)])
    want_label = np.concatenate([want_label, np.repeat(want_label[-1:], t - frames, 0)])
    want_blank[-1, 1:] += want_label[-1]  # optax's last frame
    close(np.exp(blank[:, i, : n + 1]), want_blank, atol=1e-6)
    close(np.exp(label[:, i, :n]), want_label, atol=1e-6)
    close(np.exp(o_blank[:, i, : n + 1]), want_blank, atol=1e-6)
    close(np.exp(-loss[i]), want_blank[-1, n], rtol=1e-4)
  with pytest.raises(ValueError, match=r"\[B, T, K\]"):
    jaxobj.ctc_loss_with_forward_probs(logits[None], logit_pad[None], labels[None], label_pad[None])


# ---------------------------------------------------------------- Dice options (optax)


def np_dice_per_class(p, g, s):
  """1 - (2 I + s) / (P + G + s) per image and class, float64 (Milletari et al.)."""
  axes = (1, 2)
  inter = (p * g).sum(axes)
  return 1.0 - (2 * inter + s) / (p.sum(axes) + g.sum(axes) + s)


def test_dice_per_class_and_optaxs_multiclass_generalized_dice():
  b, h, w, k = 3, 4, 5, 3
  logits = RNG.normal(size=(b, h, w, k)).astype(np.float32) * 2
  labels = RNG.integers(0, k, (b, h, w))
  labels[:, :, :3] = np.where(labels[:, :, :3] == 2, 0, labels[:, :, :3])  # rarer class 2
  g = np.eye(k)[labels]
  z = f64(logits)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  per = np_dice_per_class(p, g, 2.0)  # [B, C]
  x, y = jnp.asarray(logits), jnp.asarray(labels)
  got = jaxobj.dice_loss(x, y, smooth_nr=2.0, smooth_dr=2.0, per_class=True, reduction="none")
  assert got.shape == (b, k)
  close(got, per, atol=1e-6)
  close(got, optax.losses.dice_loss(x, jnp.asarray(g), smooth=1.0, reduction="none"), atol=1e-6)
  close(jaxobj.dice_loss(x, y, per_class=True), jaxobj.dice_loss(x, y))  # same mean
  nobg = jaxobj.dice_loss(x, y, per_class=True, include_background=False, reduction="none")
  close(nobg, jaxobj.dice_loss(x, y, reduction="none", per_class=True)[:, 1:], atol=1e-6)
  m, wts = jnp.array([True, False, True]), jnp.array([1.0, 5.0, 3.0])
  close(
    jaxobj.dice_loss(x, y, per_class=True, where=m, weights=wts),
    jaxobj.dice_loss(x, y, where=m, weights=wts),
  )
  s, c = jaxobj.dice_loss(x, y, per_class=True, where=m, reduction="sum_and_count")
  assert float(c) == 2 * k
  # optax's multiclass generalized Dice: batch-wide inverse squared class frequencies.
  freq = g.sum((0, 1, 2))
  cw = 1.0 / (freq**2 + 1e-7)
  cw = cw / cw.sum() * k
  want = (per * cw).mean()
  got = jaxobj.dice_loss(
    x, y, smooth_nr=2.0, smooth_dr=2.0, class_weights="inverse_square_frequency"
  )
  close(got, want, atol=1e-6)
  close(
    got, optax.losses.multiclass_generalized_dice_loss(x, jnp.asarray(g), smooth=1.0), atol=1e-6
  )
  gr = jax.grad(
    lambda v: jaxobj.dice_loss(v, y, class_weights="inverse_square_frequency", per_class=True)
  )(x)
  assert np.all(np.isfinite(np.asarray(gr)))
  with pytest.raises(ValueError, match="inverse_square_frequency"):
    jaxobj.dice_loss(x, y, class_weights="inverse_frequency")
