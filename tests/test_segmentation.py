"""Values and gradients of jaxobj.losses.segmentation.

References are float64 NumPy implementations written from the published
formulas, in MONAI's channels-first layout and with MONAI's literal
``1 - ratio`` arithmetic (so layout handling and the one-fraction evaluation
are both checked), and a straightforward loop-and-sort NumPy version of the
Lovász losses of Berman et al. that drops ignored pixels instead of masking.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.special import expit, log_expit, log_softmax, softmax

import jaxobj

B, H, W, C = 3, 4, 3, 4
RTOL, ATOL = 1e-5, 1e-6
SMOOTH = 1e-5


def _draw(seed=0, b=B, c=C, scale=2.0):
  rng = np.random.default_rng(seed)
  logits = (scale * rng.standard_normal((b, H, W, c))).astype(np.float32)
  labels = rng.integers(0, c, (b, H, W)).astype(np.int32)
  labels[0][labels[0] == c - 1] = 0  # class c-1 absent from image 0
  return logits, labels


def _one_hot(labels, c=C):
  return (np.arange(c) == labels[..., None]).astype(np.float64)


def _cf(a):
  """channels-last (B, H, W, C) -> MONAI's channels-first (B, C, H, W)."""
  return np.moveaxis(np.asarray(a, np.float64), -1, 1)


def _probs(logits, activation="softmax"):
  x = np.asarray(logits, np.float64)
  return softmax(x, axis=-1) if activation == "softmax" else expit(x)


def _jit(fn):
  """Calls ``fn`` compiled as a whole (much cheaper than op-by-op dispatch)."""
  return lambda *args, **kw: jax.jit(lambda *a: fn(*a, **kw))(*args)


def _grad(f):
  return jax.jit(jax.grad(f))


def _close(a, b, rtol=RTOL, atol=ATOL):
  np.testing.assert_allclose(
    np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol
  )


# --------------------------------------------------------------------------
# float64 references in MONAI's layout, returning MONAI's "none" output
# ((B, C) per image and class, or (C,) with batch=True).


def _axes(ndim, batch):
  spatial = tuple(range(2, ndim))
  return (0,) + spatial if batch else spatial


def _drop_background(p, t, include_background):
  if not include_background and p.shape[1] > 1:
    return p[:, 1:], t[:, 1:]
  return p, t


def ref_dice(
  p,
  t,
  *,
  include_background=True,
  squared_pred=False,
  jaccard=False,
  batch=False,
  smooth_nr=SMOOTH,
  smooth_dr=SMOOTH,
  weight=None,
):
  p, t = _drop_background(p, t, include_background)
  axes = _axes(p.ndim, batch)
  inter = np.sum(t * p, axis=axes)
  power = 2 if squared_pred else 1
  den = np.sum(t**power, axis=axes) + np.sum(p**power, axis=axes)
  if jaccard:
    den = 2.0 * (den - inter)
  f = 1.0 - (2.0 * inter + smooth_nr) / (den + smooth_dr)
  return f if weight is None else f * weight


def ref_generalized_dice(
  p, t, *, include_background=True, w_type="square", batch=False, smooth_nr=SMOOTH, smooth_dr=SMOOTH
):
  p, t = _drop_background(p, t, include_background)
  axes = _axes(p.ndim, batch)
  inter = np.sum(t * p, axis=axes)
  ground = np.sum(t, axis=axes)
  den = ground + np.sum(p, axis=axes)
  with np.errstate(divide="ignore"):
    w = {"square": 1.0 / ground**2, "simple": 1.0 / ground, "uniform": np.ones_like(ground)}[w_type]
  infs = np.isinf(w)
  w[infs] = 0.0
  w = w + infs * np.max(w, axis=-1, keepdims=True)
  numer = 2.0 * np.sum(inter * w, axis=-1) + smooth_nr
  return 1.0 - numer / (np.sum(den * w, axis=-1) + smooth_dr)


def ref_tversky(
  p,
  t,
  *,
  alpha=0.5,
  beta=0.5,
  include_background=True,
  batch=False,
  smooth_nr=SMOOTH,
  smooth_dr=SMOOTH,
):
  p, t = _drop_background(p, t, include_background)
  axes = _axes(p.ndim, batch)
  tp = np.sum(p * t, axis=axes)
  fp = alpha * np.sum(p * (1.0 - t), axis=axes)
  fn = beta * np.sum((1.0 - p) * t, axis=axes)
  return 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)


def ref_cross_entropy(x, labels, *, weight=None, label_smoothing=0.0):
  """torch.nn.CrossEntropyLoss(weight, label_smoothing) over the rows of x."""
  logp = log_softmax(np.asarray(x, np.float64), axis=-1)
  c = logp.shape[-1]
  w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
  w_y = w[labels]
  nll = -w_y * np.take_along_axis(logp, labels[:, None], -1)[:, 0]
  smooth = -np.sum(w * logp, axis=-1)
  total = (1.0 - label_smoothing) * nll.sum() + label_smoothing / c * smooth.sum()
  return total / w_y.sum()


def ref_bce(x, y, pos_weight=1.0):
  x = np.asarray(x, np.float64)
  return np.mean(-(pos_weight * y * log_expit(x) + (1.0 - y) * log_expit(-x)))


def _np_lovasz_grad(gt_sorted):
  gts = gt_sorted.sum()
  inter = gts - np.cumsum(gt_sorted)
  union = gts + np.cumsum(1.0 - gt_sorted)
  jac = 1.0 - inter / union
  jac[1:] = jac[1:] - jac[:-1].copy()
  return jac


def ref_lovasz_softmax_flat(probas, labels, classes="present"):
  """probas (P, C), labels (P,): the valid pixels only."""
  if len(labels) == 0:
    return 0.0
  c = probas.shape[1]
  losses = []
  for k in range(c) if classes in ("present", "all") else classes:
    fg = (labels == k).astype(np.float64)
    if classes == "present" and fg.sum() == 0:
      continue
    errors = np.abs(fg - probas[:, k])
    perm = np.argsort(-errors, kind="stable")
    losses.append(np.dot(errors[perm], _np_lovasz_grad(fg[perm])))
  return float(np.mean(losses)) if losses else 0.0


def ref_lovasz_softmax(logits, labels, *, classes="present", per_image=True, ignore=None):
  probas = _probs(logits)
  keep = np.ones(labels.shape, bool) if ignore is None else labels != ignore
  if per_image:
    return np.array(
      [ref_lovasz_softmax_flat(p[k], l[k], classes) for p, l, k in zip(probas, labels, keep)]
    )
  return ref_lovasz_softmax_flat(probas[keep], labels[keep], classes)


def ref_lovasz_hinge_flat(logits, labels):
  if len(labels) == 0:
    return 0.0
  errors = 1.0 - np.asarray(logits, np.float64) * (2.0 * labels - 1.0)
  perm = np.argsort(-errors, kind="stable")
  return float(np.dot(np.maximum(errors[perm], 0.0), _np_lovasz_grad(labels[perm])))


def ref_lovasz_hinge(logits, labels, *, per_image=True, ignore=None):
  labels = np.asarray(labels, np.float64)
  keep = np.ones(labels.shape, bool) if ignore is None else labels != ignore
  if per_image:
    return np.array([ref_lovasz_hinge_flat(x[k], y[k]) for x, y, k in zip(logits, labels, keep)])
  return ref_lovasz_hinge_flat(logits[keep], labels[keep])


# --------------------------------------------------------------------------
# Dice and Jaccard.


DICE_OPTIONS = [
  {},
  {"include_background": False},
  {"squared_pred": True},
  {"jaccard": True},
  {"jaccard": True, "squared_pred": True, "include_background": False},
  {"smooth_nr": 0.0, "smooth_dr": 1e-3},
  {"smooth_nr": 1.0, "smooth_dr": 1.0},
]


@pytest.mark.parametrize("opts", DICE_OPTIONS, ids=str)
def test_dice_matches_reference_per_image(opts):
  logits, labels = _draw()
  ref = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), **opts).mean(-1)
  _close(_jit(jaxobj.dice_loss)(logits, labels, reduction="none", **opts), ref)
  if not opts:
    _close(_jit(jaxobj.dice_loss)(logits, labels), ref.mean())
    _close(_jit(jaxobj.dice_loss)(logits, labels, reduction="sum"), ref.sum())


@pytest.mark.parametrize("opts", [DICE_OPTIONS[0], DICE_OPTIONS[4]], ids=str)
def test_dice_batch_pools_before_the_ratio(opts):
  logits, labels = _draw(1)
  ref = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), batch=True, **opts).mean()
  out = _jit(jaxobj.dice_loss)(logits, labels, batch=True, reduction="none", **opts)
  assert out.shape == ()
  _close(out, ref)
  # Pooling equals one image made of all the images side by side.
  side = (np.concatenate(list(logits), axis=0)[None], np.concatenate(list(labels), axis=0)[None])
  _close(out, _jit(jaxobj.dice_loss)(*side, **opts))


def test_dice_one_hot_and_probability_targets():
  logits, labels = _draw(2)
  onehot = _one_hot(labels).astype(np.float32)
  _close(_jit(jaxobj.dice_loss)(logits, onehot), _jit(jaxobj.dice_loss)(logits, labels))
  soft = softmax(np.random.default_rng(3).standard_normal(logits.shape), -1)
  ref = ref_dice(_cf(_probs(logits)), _cf(soft)).mean(-1)
  _close(_jit(jaxobj.dice_loss)(logits, soft.astype(np.float32), reduction="none"), ref)


def test_dice_class_weights_follow_monai():
  logits, labels = _draw(4)
  w = np.array([0.5, 1.0, 2.0, 3.0])
  ref = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), weight=w).mean(-1)
  _close(_jit(jaxobj.dice_loss)(logits, labels, class_weights=w, reduction="none"), ref)
  ref = ref_dice(
    _cf(_probs(logits)), _cf(_one_hot(labels)), weight=w[1:], include_background=False
  ).mean(-1)
  _close(
    _jit(jaxobj.dice_loss)(
      logits, labels, class_weights=w, include_background=False, reduction="none"
    ),
    ref,
  )


def test_dice_sigmoid_multilabel_and_binary():
  rng = np.random.default_rng(5)
  logits = (2 * rng.standard_normal((B, H, W, 2))).astype(np.float32)
  masks = rng.integers(0, 2, (B, H, W, 2)).astype(np.float32)
  ref = ref_dice(_cf(_probs(logits, "sigmoid")), _cf(masks)).mean(-1)
  _close(_jit(jaxobj.dice_loss)(logits, masks, activation="sigmoid", reduction="none"), ref)
  # One channel: an integer 0/1 map is that channel's target (MONAI's convention).
  binary = masks[..., :1]
  _close(
    _jit(jaxobj.dice_loss)(
      logits[..., :1], binary[..., 0].astype(np.int32), activation="sigmoid", reduction="none"
    ),
    ref_dice(_cf(_probs(logits[..., :1], "sigmoid")), _cf(binary))[:, 0],
  )


def test_jaccard_loss_is_dice_with_jaccard():
  logits, labels = _draw(6)
  _close(
    _jit(jaxobj.jaccard_loss)(logits, labels, reduction="none"),
    ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), jaccard=True).mean(-1),
  )
  # 1 - IoU of hard predictions = 1 - |A∩B| / |A∪B| as the logits sharpen.
  hard = 1e4 * (_one_hot(labels) * 2 - 1).astype(np.float32)
  assert float(_jit(jaxobj.jaccard_loss)(hard, labels)) < 1e-5


def test_channels_first_axis_and_volumes():
  logits, labels = _draw(7)
  cf = np.moveaxis(logits, -1, 1)
  _close(_jit(jaxobj.dice_loss)(cf, labels, axis=1), _jit(jaxobj.dice_loss)(logits, labels))
  onehot_cf = np.moveaxis(_one_hot(labels).astype(np.float32), -1, 1)
  _close(
    _jit(jaxobj.tversky_loss)(cf, onehot_cf, axis=1), _jit(jaxobj.tversky_loss)(logits, labels)
  )
  # A volume (D=1) with spatial_dims=3 is the same as the image.
  _close(
    _jit(jaxobj.dice_loss)(logits[:, None], labels[:, None], spatial_dims=3, reduction="none"),
    _jit(jaxobj.dice_loss)(logits, labels, reduction="none"),
  )


# --------------------------------------------------------------------------
# Empty masks and degenerate denominators.


def test_dice_empty_target_and_empty_prediction_is_zero():
  logits = jnp.full((2, H, W, 1), -1e4, jnp.float32)  # sigmoid(-1e4) == 0 exactly
  empty = np.zeros((2, H, W, 1), np.float32)
  for fn in (
    jaxobj.dice_loss,
    jaxobj.jaccard_loss,
    jaxobj.tversky_loss,
    jaxobj.generalized_dice_loss,
    jaxobj.focal_tversky_loss,
  ):
    # Smoothing traced: one compilation per loss for all the settings.
    value_and_grad = jax.jit(
      jax.value_and_grad(
        lambda x, nr, dr: fn(x, empty, smooth_nr=nr, smooth_dr=dr, activation="sigmoid")
      )
    )
    for nr, dr in [(SMOOTH, SMOOTH), (0.0, 0.0), (1.0, 1.0)]:
      value, g = value_and_grad(logits, nr, dr)
      assert float(value) == 0.0, (fn.__name__, nr, dr)
      assert np.all(np.asarray(g) == 0.0), (fn.__name__, nr, dr)


def test_dice_empty_target_soft_prediction_matches_monai():
  rng = np.random.default_rng(8)
  logits = (rng.standard_normal((2, H, W, 1)) - 4.0).astype(np.float32)
  empty = np.zeros((2, H, W, 1), np.float32)
  p = _probs(logits, "sigmoid")
  ref = ref_dice(_cf(p), _cf(empty))[:, 0]
  _close(_jit(jaxobj.dice_loss)(logits, empty, activation="sigmoid", reduction="none"), ref)
  _close(ref, p.sum((1, 2, 3)) / (p.sum((1, 2, 3)) + SMOOTH))  # the closed form
  _close(
    _jit(jaxobj.generalized_dice_loss)(logits, empty, activation="sigmoid", reduction="none"),
    ref_generalized_dice(_cf(p), _cf(empty)),
  )


def test_zero_smoothing_empty_class_is_zero_not_nan():
  # Class 3 is absent from image 0 and, with -inf logits, never predicted.
  logits, labels = _draw(9)
  logits[..., 3] = -np.inf
  labels[labels == 3] = 1
  kw = dict(smooth_nr=0.0, smooth_dr=0.0)
  out = _jit(jaxobj.dice_loss)(logits, labels, reduction="none", **kw)
  p = _probs(logits)
  with np.errstate(invalid="ignore"):
    ref = ref_dice(_cf(p), _cf(_one_hot(labels)), **kw)
  ref = np.where(np.isnan(ref), 0.0, ref).mean(-1)  # 0/0 is defined as 0
  _close(out, ref)
  g = _grad(lambda x: jaxobj.dice_loss(x, labels, **kw))(jnp.asarray(logits))
  assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------
# Generalized Dice.


@pytest.mark.parametrize(
  "opts",
  [{}, {"w_type": "simple"}, {"w_type": "uniform"}, {"include_background": False}, {"batch": True}],
  ids=str,
)
def test_generalized_dice_matches_reference(opts):
  logits, labels = _draw(10)
  ref = ref_generalized_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), **opts)
  _close(_jit(jaxobj.generalized_dice_loss)(logits, labels, reduction="none", **opts), ref)


def test_generalized_dice_absent_class_takes_largest_finite_weight():
  logits, labels = _draw(11)
  assert not np.any(labels[0] == C - 1)
  p, t = _cf(_probs(logits)), _cf(_one_hot(labels))
  g0 = t[0].sum((1, 2))
  w = 1.0 / np.where(g0 > 0, g0, np.nan) ** 2
  w = np.where(np.isnan(w), np.nanmax(w), w)  # the absent class's weight
  inter, den = (t[0] * p[0]).sum((1, 2)), (t[0] + p[0]).sum((1, 2))
  expected = 1.0 - (2 * np.sum(w * inter) + SMOOTH) / (np.sum(w * den) + SMOOTH)
  _close(_jit(jaxobj.generalized_dice_loss)(logits, labels, reduction="none")[0], expected)


def test_near_perfect_prediction_keeps_relative_precision():
  # Confident, correct sigmoid predictions: every loss is ~1e-13. Summing the
  # soft errors sigmoid(-|x|) directly (no 1 - ratio) is the exact reference;
  # adding then subtracting the smoothing would round away ~1e-7 of it.
  rng = np.random.default_rng(21)
  masks = (rng.uniform(size=(2, H, W, 2)) < 0.5).astype(np.float64)
  masks[0, ..., 1] = 0.0  # an empty class
  logits = np.where(masks > 0, 30.0, -30.0)
  err = expit(-30.0) * np.ones_like(masks)  # each pixel's |g - p|
  fp, fn = (err * (1 - masks)).sum((1, 2)), (err * masks).sum((1, 2))
  tp = ((1.0 - err) * masks).sum((1, 2))
  ground = masks.sum((1, 2))
  with np.errstate(divide="ignore"):
    w = 1.0 / ground**2
  w = np.where(np.isinf(w), np.max(np.where(np.isinf(w), 0, w), -1, keepdims=True), w)
  gdice = (w * (fp + fn)).sum(-1) / ((w * (fp + fn + 2 * tp)).sum(-1) + SMOOTH)
  tversky = (0.3 * fp + 0.7 * fn) / (0.3 * fp + 0.7 * fn + tp + SMOOTH)
  with jax.enable_x64(True):
    x, y = jnp.asarray(logits), jnp.asarray(masks)
    _close(
      jaxobj.generalized_dice_loss(x, y, activation="sigmoid", reduction="none"),
      gdice,
      rtol=1e-12,
      atol=0.0,
    )
    _close(
      jaxobj.tversky_loss(x, y, alpha=0.3, beta=0.7, activation="sigmoid", reduction="none"),
      tversky.mean(-1),
      rtol=1e-12,
      atol=0.0,
    )


# --------------------------------------------------------------------------
# Tversky and focal Tversky.


@pytest.mark.parametrize(
  "opts",
  [
    {},
    {"alpha": 0.3, "beta": 0.7},
    {"alpha": 0.9, "beta": 0.1, "include_background": False},
    {"batch": True, "alpha": 0.2, "beta": 1.5},
  ],
  ids=str,
)
def test_tversky_matches_reference(opts):
  logits, labels = _draw(12)
  ref = ref_tversky(_cf(_probs(logits)), _cf(_one_hot(labels)), **opts).mean(-1)
  _close(_jit(jaxobj.tversky_loss)(logits, labels, reduction="none", **opts), ref)


def test_tversky_half_half_is_dice():
  logits, labels = _draw(13)
  _close(
    _jit(jaxobj.tversky_loss)(logits, labels, reduction="none"),
    _jit(jaxobj.dice_loss)(logits, labels, reduction="none"),
  )


@pytest.mark.parametrize("gamma", [1.0, 4.0 / 3.0, 2.0, 0.5])
def test_focal_tversky_matches_reference(gamma):
  logits, labels = _draw(14)
  tl = ref_tversky(_cf(_probs(logits)), _cf(_one_hot(labels)), alpha=0.3, beta=0.7)
  ref = (tl ** (1.0 / gamma)).mean(-1)
  _close(_jit(jaxobj.focal_tversky_loss)(logits, labels, gamma=gamma, reduction="none"), ref)
  if gamma == 1.0:
    _close(
      _jit(jaxobj.focal_tversky_loss)(logits, labels, gamma=1.0),
      _jit(jaxobj.tversky_loss)(logits, labels, alpha=0.3, beta=0.7),
    )


def test_focal_tversky_perfect_prediction_has_zero_gradient():
  _, labels = _draw(15)
  perfect = (1e4 * (2 * _one_hot(labels) - 1)).astype(np.float32)
  kw = dict(smooth_nr=0.0, smooth_dr=0.0)
  assert float(_jit(jaxobj.focal_tversky_loss)(perfect, labels, **kw)) == 0.0
  g = _grad(lambda x: jaxobj.focal_tversky_loss(x, labels, **kw))(jnp.asarray(perfect))
  assert np.all(np.asarray(g) == 0.0)


# --------------------------------------------------------------------------
# Dice + cross-entropy.


def test_dice_ce_matches_monai_composition():
  logits, labels = _draw(16)
  dice = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels))).mean()
  ce = ref_cross_entropy(logits.reshape(-1, C), labels.reshape(-1))
  _close(_jit(jaxobj.dice_ce_loss)(logits, labels), dice + ce)
  _close(
    _jit(jaxobj.dice_ce_loss)(logits, labels, lambda_dice=0.3, lambda_ce=2.0), 0.3 * dice + 2.0 * ce
  )
  onehot = _one_hot(labels).astype(np.float32)
  _close(_jit(jaxobj.dice_ce_loss)(logits, onehot), dice + ce)


def test_dice_ce_class_weights_and_label_smoothing_per_image():
  logits, labels = _draw(17)
  w = np.array([0.2, 1.0, 3.0, 0.5])
  out = _jit(jaxobj.dice_ce_loss)(
    logits, labels, class_weights=w, label_smoothing=0.1, reduction="none"
  )
  dice = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), weight=w).mean(-1)
  ce = [
    ref_cross_entropy(x.reshape(-1, C), y.reshape(-1), weight=w, label_smoothing=0.1)
    for x, y in zip(logits, labels)
  ]
  _close(out, dice + np.array(ce))


def test_dice_ce_sigmoid_uses_bce_with_pos_weight():
  rng = np.random.default_rng(18)
  logits = (2 * rng.standard_normal((B, H, W, 2))).astype(np.float32)
  masks = rng.integers(0, 2, (B, H, W, 2)).astype(np.float32)
  pw = np.array([2.0, 0.5])
  dice = ref_dice(_cf(_probs(logits, "sigmoid")), _cf(masks), weight=pw).mean()
  _close(
    _jit(jaxobj.dice_ce_loss)(logits, masks, activation="sigmoid", class_weights=pw),
    dice + ref_bce(logits, masks, pw),
  )


def test_dice_ce_batch_is_global_mean():
  logits, labels = _draw(19)
  dice = ref_dice(_cf(_probs(logits)), _cf(_one_hot(labels)), batch=True).mean()
  ce = ref_cross_entropy(logits.reshape(-1, C), labels.reshape(-1))
  _close(_jit(jaxobj.dice_ce_loss)(logits, labels, batch=True, reduction="none"), dice + ce)


# --------------------------------------------------------------------------
# Lovász.


@pytest.mark.parametrize("classes", ["present", "all", (1, 3)])
@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_softmax_matches_reference(classes, per_image):
  logits, labels = _draw(20)
  ref = ref_lovasz_softmax(logits, labels, classes=classes, per_image=per_image)
  out = _jit(jaxobj.lovasz_softmax_loss)(
    logits, labels, classes=classes, per_image=per_image, reduction="none"
  )
  assert out.shape == ((B,) if per_image else ())
  _close(out, ref)


def test_lovasz_softmax_saturated_logits_with_tied_errors():
  # Probabilities of exactly 0 and 1: many tied errors, whose order the value
  # does not depend on (the Lovász extension is a function of the errors).
  logits, labels = _draw(39)
  big = logits * 1e4
  for per_image in (True, False):
    _close(
      _jit(jaxobj.lovasz_softmax_loss)(big, labels, per_image=per_image, reduction="none"),
      ref_lovasz_softmax(big, labels, per_image=per_image),
    )


@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_softmax_ignore_index_drops_pixels(per_image):
  logits, labels = _draw(21)
  rng = np.random.default_rng(22)
  labels = np.where(rng.uniform(size=labels.shape) < 0.3, 255, labels).astype(np.int32)
  labels[2] = 255  # an image with no valid pixel
  logits[labels == 255] = np.nan  # garbage behind the mask
  ref = ref_lovasz_softmax(np.nan_to_num(logits), labels, per_image=per_image, ignore=255)
  out = _jit(jaxobj.lovasz_softmax_loss)(
    logits, labels, ignore_index=255, per_image=per_image, reduction="none"
  )
  _close(out, ref)
  if per_image:
    assert float(out[2]) == 0.0
  g = _grad(lambda x: jaxobj.lovasz_softmax_loss(x, labels, ignore_index=255, per_image=per_image))(
    jnp.asarray(logits)
  )
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[labels == 255] == 0.0)


def test_lovasz_softmax_pixel_where_equals_ignore_index():
  logits, labels = _draw(23)
  keep = np.random.default_rng(24).uniform(size=labels.shape) < 0.7
  _close(
    _jit(jaxobj.lovasz_softmax_loss)(logits, labels, pixel_where=keep),
    _jit(jaxobj.lovasz_softmax_loss)(
      logits, np.where(keep, labels, -1).astype(np.int32), ignore_index=-1
    ),
  )


@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_hinge_matches_reference(per_image):
  rng = np.random.default_rng(25)
  logits = (2 * rng.standard_normal((B, H, W))).astype(np.float32)
  masks = rng.integers(0, 2, (B, H, W)).astype(np.float32)
  masks[0] = 0.0  # an empty mask
  out = _jit(jaxobj.lovasz_hinge_loss)(logits, masks, per_image=per_image, reduction="none")
  _close(out, ref_lovasz_hinge(logits, masks, per_image=per_image))
  ignore = np.where(rng.uniform(size=masks.shape) < 0.3, 255, masks)
  out = _jit(jaxobj.lovasz_hinge_loss)(
    logits, ignore.astype(np.int32), ignore_index=255, per_image=per_image, reduction="none"
  )
  _close(out, ref_lovasz_hinge(logits, ignore, per_image=per_image, ignore=255))


def test_lovasz_all_pixels_ignored_is_zero_with_zero_gradient():
  logits, labels = _draw(26)
  none = np.zeros(labels.shape, bool)
  for fn, y in (
    (jaxobj.lovasz_softmax_loss, labels),
    (jaxobj.lovasz_hinge_loss, (labels[..., None] > 0) * np.ones(C)),
  ):
    x = logits if fn is jaxobj.lovasz_softmax_loss else logits
    pw = none if fn is jaxobj.lovasz_softmax_loss else none[..., None]
    for per_image in (True, False):
      kw = dict(pixel_where=pw, per_image=per_image)
      if fn is jaxobj.lovasz_hinge_loss:
        kw["spatial_dims"] = 3
      assert float(_jit(fn)(x, y, **kw)) == 0.0
      g = _grad(lambda a: fn(a, y, **kw))(jnp.asarray(x))
      assert np.all(np.asarray(g) == 0.0)


def test_all_ignored_pixels_dice_family_is_zero():
  logits, labels = _draw(27)
  nan_logits = np.full_like(logits, np.nan)
  ignored = np.full_like(labels, -100)
  for fn in (
    jaxobj.dice_loss,
    jaxobj.jaccard_loss,
    jaxobj.generalized_dice_loss,
    jaxobj.tversky_loss,
    jaxobj.focal_tversky_loss,
    jaxobj.dice_ce_loss,
  ):
    kw = dict(ignore_index=-100)
    assert float(_jit(fn)(nan_logits, ignored, **kw)) == 0.0, fn.__name__
    g = _grad(lambda x: fn(x, ignored, **kw))(jnp.asarray(nan_logits))
    assert np.all(np.asarray(g) == 0.0), fn.__name__


def test_ignored_pixels_equal_slicing_them_out():
  logits, labels = _draw(28)
  keep = np.random.default_rng(29).uniform(size=labels.shape) < 0.6
  masked = np.where(keep, labels, 255).astype(np.int32)
  for fn in (jaxobj.dice_ce_loss, jaxobj.lovasz_softmax_loss):
    out = _jit(fn)(logits, masked, ignore_index=255, reduction="none")
    for b in range(B):  # the valid pixels as a 1-D image
      sliced = _jit(fn)(logits[b][keep[b]][None], labels[b][keep[b]][None], spatial_dims=1)
      _close(out[b], sliced)


# --------------------------------------------------------------------------
# Gradients (float64, finite differences).


GRAD_CASES = [
  ("dice_loss", {}),
  ("dice_loss", {"squared_pred": True, "jaccard": True, "include_background": False}),
  ("generalized_dice_loss", {}),
  ("tversky_loss", {"alpha": 0.3, "beta": 0.7}),
  ("focal_tversky_loss", {}),
  ("dice_ce_loss", {"label_smoothing": 0.1, "class_weights": np.arange(1.0, C + 1)}),
  ("dice_loss", {"batch": True, "activation": "sigmoid"}),
  ("lovasz_softmax_loss", {}),
  ("lovasz_softmax_loss", {"per_image": False, "classes": "all"}),
]


@pytest.mark.parametrize("name,opts", GRAD_CASES, ids=[f"{n}{o}" for n, o in GRAD_CASES])
def test_gradients_match_finite_differences(name, opts):
  logits, labels = _draw(30)
  fn = getattr(jaxobj, name)
  with jax.enable_x64(True):
    x = jnp.asarray(logits, jnp.float64)
    check_grads(
      jax.jit(lambda a: fn(a, labels, **opts)),
      (x,),
      order=1,
      modes=("rev",),
      eps=1e-6,
      atol=1e-5,
      rtol=1e-5,
    )


def test_lovasz_hinge_gradient_is_the_sorted_jaccard_increments():
  rng = np.random.default_rng(31)
  logits = rng.standard_normal((1, H, W))
  masks = rng.integers(0, 2, (1, H, W)).astype(np.float64)
  with jax.enable_x64(True):
    g = np.asarray(_grad(lambda a: jaxobj.lovasz_hinge_loss(a, masks))(jnp.asarray(logits)))[
      0
    ].ravel()
  x, y = logits[0].ravel(), masks[0].ravel()
  errors = 1.0 - x * (2 * y - 1)
  perm = np.argsort(-errors, kind="stable")
  d_errors = np.zeros_like(errors)
  d_errors[perm] = _np_lovasz_grad(y[perm]) * (errors[perm] > 0)
  _close(g, d_errors * -(2 * y - 1), atol=1e-12)


# --------------------------------------------------------------------------
# Low precision and tracing of the pooled forms.


def test_bf16_pooled_and_lovasz():
  logits, labels = _draw(32)
  low = jnp.asarray(logits, jnp.bfloat16)
  for fn, kw in (
    (jaxobj.dice_loss, {"batch": True}),
    (jaxobj.generalized_dice_loss, {"batch": True}),
    (jaxobj.lovasz_softmax_loss, {"per_image": False}),
    (jaxobj.dice_ce_loss, {"batch": True}),
  ):
    out = _jit(fn)(low, labels, **kw)
    assert out.dtype == jnp.float32
    _close(out, _jit(fn)(low.astype(jnp.float32), labels, **kw), rtol=1e-6)
    g = _grad(lambda a: fn(a, labels, **kw))(low)
    assert np.all(np.isfinite(np.asarray(g, np.float32)))


def test_pooled_where_is_a_scalar_and_pixel_where_removes_images():
  logits, labels = _draw(33)
  with pytest.raises(ValueError, match=r"where\.shape=\(3,\)"):
    _jit(jaxobj.dice_loss)(logits, labels, batch=True, where=jnp.ones(B, bool))
  assert float(_jit(jaxobj.dice_loss)(logits, labels, batch=True, where=False)) == 0.0
  keep = np.array([True, False, True])
  pw = np.broadcast_to(keep[:, None, None], labels.shape)
  _close(
    _jit(jaxobj.dice_loss)(logits, labels, batch=True, pixel_where=pw),
    _jit(jaxobj.dice_loss)(logits[keep], labels[keep], batch=True),
  )
  _close(
    _jit(jaxobj.lovasz_softmax_loss)(logits, labels, per_image=False, pixel_where=pw),
    _jit(jaxobj.lovasz_softmax_loss)(logits[keep], labels[keep], per_image=False),
  )


def test_lovasz_jits_once_per_shape():
  logits, labels = _draw(34)
  f = jax.jit(jaxobj.lovasz_softmax_loss)
  _close(f(logits, labels), _jit(jaxobj.lovasz_softmax_loss)(logits, labels))
  _close(f(logits * 0.5, labels), _jit(jaxobj.lovasz_softmax_loss)(logits * 0.5, labels))
  assert f._cache_size() == 1


# --------------------------------------------------------------------------
# Bad inputs.


def test_label_shape_mismatch_names_both_shapes():
  logits, labels = _draw(35)
  with pytest.raises(ValueError, match=r"labels\.shape=\(3, 1, 4, 3\).*B1HW"):
    _jit(jaxobj.dice_loss)(logits, labels[:, None])
  with pytest.raises(ValueError, match=r"\(3, 4, 3, 4\)"):
    _jit(jaxobj.tversky_loss)(logits, labels[:, :2])
  with pytest.raises(ValueError, match=r"labels\.shape=\(3, 4, 3, 1\)"):
    _jit(jaxobj.lovasz_hinge_loss)(logits[..., 0], labels[..., None].astype(np.float32))


def test_wrong_label_dtypes():
  logits, labels = _draw(36)
  with pytest.raises(TypeError, match="class indices must be integers"):
    _jit(jaxobj.dice_loss)(logits, labels.astype(np.float32))
  with pytest.raises(TypeError, match="integer label map"):
    _jit(jaxobj.lovasz_softmax_loss)(logits, _one_hot(labels).astype(np.float32))
  with pytest.raises(TypeError, match="logits"):
    _jit(jaxobj.generalized_dice_loss)(labels[..., None] * np.ones(C, np.int32), labels)
  with pytest.raises(TypeError, match="pixel_where"):
    _jit(jaxobj.dice_loss)(logits, labels, pixel_where=np.ones(labels.shape, np.float32))


def test_bad_options_raise():
  logits, labels = _draw(37)
  onehot = _one_hot(labels).astype(np.float32)
  cases = [
    (jaxobj.dice_loss, dict(activation="relu"), ValueError, "activation"),
    (jaxobj.dice_loss, dict(class_weights=np.ones(C - 1)), ValueError, "class_weights"),
    (jaxobj.dice_loss, dict(smooth_dr=-1.0), ValueError, "smooth_dr"),
    (jaxobj.dice_loss, dict(spatial_dims=4), ValueError, "spatial_dims"),
    (jaxobj.dice_loss, dict(pixel_where=np.ones((B, H), bool)), ValueError, "pixel_where"),
    (jaxobj.generalized_dice_loss, dict(w_type="log"), ValueError, "w_type"),
    (jaxobj.tversky_loss, dict(alpha=-0.1), ValueError, "alpha"),
    (jaxobj.focal_tversky_loss, dict(gamma=0.0), ValueError, "gamma"),
    (jaxobj.dice_ce_loss, dict(label_smoothing=1.5), ValueError, "label_smoothing"),
    (jaxobj.dice_ce_loss, dict(lambda_ce=-1.0), ValueError, "lambda_ce"),
    (jaxobj.lovasz_softmax_loss, dict(classes="some"), ValueError, "classes"),
    (jaxobj.lovasz_softmax_loss, dict(classes=(0, C)), ValueError, "classes"),
  ]
  for fn, kw, err, match in cases:
    with pytest.raises(err, match=match):
      _jit(fn)(logits, labels, **kw)
  with pytest.raises(ValueError, match="ignore_index"):
    _jit(jaxobj.dice_loss)(logits, onehot, ignore_index=0)
  with pytest.raises(ValueError, match="at least 2 classes"):
    _jit(jaxobj.lovasz_softmax_loss)(logits[..., :1], labels)


def test_out_of_range_labels_give_nan():
  logits, labels = _draw(38)
  labels[1, 0, 0] = C
  for fn in (jaxobj.dice_loss, jaxobj.dice_ce_loss, jaxobj.lovasz_softmax_loss):
    out = np.asarray(_jit(fn)(logits, labels, reduction="none"))
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]])), fn.__name__
    # Masked, the bad label is harmless.
    assert np.isfinite(float(_jit(fn)(logits, labels, where=jnp.array([True, False, True]))))


def test_focal_tversky_nan_logit_and_out_of_range_label_give_nan():
  # The per-class "> 0" guard sent NaN to its zero branch: the loss was 0.0.
  logits = jnp.zeros((2, 3, 3, 4))
  labels = jnp.zeros((2, 3, 3), jnp.int32)
  out = jaxobj.focal_tversky_loss(logits.at[0, 1, 1, 2].set(jnp.nan), labels, reduction="none")
  assert np.isnan(out[0]) and np.isfinite(out[1])
  out = jaxobj.focal_tversky_loss(logits, labels.at[1, 0, 0].set(9), reduction="none")
  assert np.isfinite(out[0]) and np.isnan(out[1])


def test_lovasz_losses_empty_batch_is_zero():
  logits, labels = jnp.zeros((0, 3, 3, 4)), jnp.zeros((0, 3, 3), jnp.int32)
  assert float(jaxobj.lovasz_softmax_loss(logits, labels)) == 0.0
  assert jax.grad(lambda x: jaxobj.lovasz_softmax_loss(x, labels))(logits).shape == logits.shape
  x, y = jnp.zeros((0, 3, 3)), jnp.zeros((0, 3, 3))
  assert float(jaxobj.lovasz_hinge_loss(x, y)) == 0.0
  assert jaxobj.lovasz_hinge_loss(x, y, reduction="none").shape == (0,)


def test_dice_ce_low_precision_gives_float32_under_x64():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  labels = jnp.zeros((2, 3, 3), jnp.int32)
  with jax.enable_x64(True):
    for dtype in (jnp.bfloat16, jnp.float16):
      assert jaxobj.dice_ce_loss(logits.astype(dtype), labels).dtype == jnp.float32
      assert (
        jaxobj.dice_ce_loss(logits.astype(dtype), labels, label_smoothing=0.1).dtype == jnp.float32
      )
