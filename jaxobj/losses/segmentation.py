r"""Segmentation losses: overlap measures (Dice, Jaccard, Tversky, Lovász) over masks.

**Layout: channels-last.** Logits are ``(..., *spatial, C)`` — e.g.
``(B, H, W, C)``, the layout of flax convolutions — with ``spatial_dims``
spatial axes (2 by default; 3 for volumes) and the class axis last (or at
``axis``). MONAI is channels-first, ``(B, C, H, W)``: pass ``axis=1``, or
``jnp.moveaxis(logits, 1, -1)``. All leading axes before the spatial ones are
batch axes.

**Targets.** ``labels`` is either an integer label map of shape
``logits.shape`` without the class axis (class indices, one-hot encoded
inside, like MONAI's ``to_onehot_y=True``), or one-hot / probability targets
of the same shape as ``logits``. A float array with the label-map shape is a
``TypeError`` (class indices must be integers). With a single channel the
label map is the channel's target itself (0/1), as in MONAI.

**Per-element loss.** One value per image: the batch shape (the contract's
``where`` and ``weights`` act on it). Per-class terms are averaged over the
classes inside each image, so ``"mean"`` equals MONAI's mean over images and
classes; ``"sum"`` sums the per-image class means. ``batch=True`` (Lovász:
``per_image=False``) pools all images into one loss: the per-element loss is
then a scalar, and ``where``/``weights`` must be scalars.

**Pixel masks.** ``pixel_where`` (boolean, broadcastable to the label-map
shape) and ``ignore_index`` (for integer label maps) drop pixels from every
sum, exactly as if they were not in the image; NaN or inf logits there reach
neither the value nor the gradient. A pixel mask that removes a whole image
makes it an empty image (Dice loss 0), not a masked row: use ``where`` for
that.

**Smoothing and empty masks.** Ratios are
:math:`1 - (\text{overlap} + s_{nr}) / (\text{size} + s_{dr})` as in MONAI,
evaluated as one fraction (numerator :math:`\text{size} - \text{overlap} +
s_{dr} - s_{nr}`) so near-perfect predictions keep full relative precision.
An empty target with an empty (all-zero) prediction gives 0 with the default
``smooth_nr == smooth_dr``; a zero denominator (``smooth_dr=0`` and nothing
predicted or present) is defined as loss 0, never NaN. Soft predictions
are never exactly empty, so the Dice loss of an empty target is
:math:`\sum p / (\sum p + s_{dr})`, close to 1 unless the prediction is
confidently empty; that is MONAI's (and the formula's) behaviour.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs, numerics
from jaxobj._src.examples import segmentation as seg_examples
from jaxobj._src.reduce import Reduced, reduce_loss
from jaxobj.registry import register

__all__ = [
  "dice_ce_loss",
  "dice_loss",
  "focal_tversky_loss",
  "generalized_dice_loss",
  "jaccard_loss",
  "lovasz_hinge_loss",
  "lovasz_softmax_loss",
  "tversky_loss",
]

_ACTIVATIONS = ("softmax", "sigmoid")
_WEIGHT_TYPES = ("square", "simple", "uniform")


# --------------------------------------------------------------------------
# Shared preparation of inputs.


def _check_spatial_dims(spatial_dims, x, extra, name="logits"):
  if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims < 1:
    raise ValueError(
      f"spatial_dims must be a positive int (2 for images, 3 for "
      f"volumes), got spatial_dims={spatial_dims!r}."
    )
  if x.ndim < spatial_dims + extra:
    layout = "(..., *spatial, C)" if extra else "(..., *spatial)"
    raise ValueError(
      f"{name}.shape={x.shape} has fewer axes than spatial_dims={spatial_dims}"
      f"{' plus the class axis' if extra else ''}: {name} must be {layout}."
      + (f" For one binary channel add a class axis with {name}[..., None]." if extra else "")
    )


def _pixel_mask(pixel_where, map_shape, what="logits.shape without the class axis"):
  """The boolean pixel mask broadcast to the label-map shape (same rank, axes equal or 1)."""
  to = f"the pixel shape, {what},"
  pw = checks.as_mask(pixel_where, map_shape, name="pixel_where", to=to, scalar=False)
  return jnp.broadcast_to(pw, map_shape)


def _and(a, b):
  return b if a is None else (a if b is None else jnp.logical_and(a, b))


def _fill(valid, a, extra=0):
  """Replaces invalid (masked or ignored) pixels by 0 before any math: the first
  half of the double where, so NaN/inf there cannot reach gradients."""
  if valid is None:
    return a
  return jnp.where(valid[(...,) + (None,) * extra], a, jnp.zeros((), a.dtype))


class _Inputs(NamedTuple):
  x: jax.Array  # logits, class axis last, invalid pixels 0: (*map, C)
  g: jax.Array  # targets, (*map, C); NaN rows for out-of-range labels
  valid: jax.Array | None  # (*map,) bool, or None when every pixel counts
  integer: bool  # labels were an integer label map
  axes: tuple[int, ...]  # map axes summed into one loss (spatial, or all if pooled)
  loss_shape: tuple[int, ...]


def _image_mask(where, loss_shape, map_shape):
  if where is None:
    return None
  m = checks.as_mask(where, loss_shape)
  m = m.reshape(m.shape + (1,) * (len(map_shape) - m.ndim))
  return jnp.broadcast_to(m, map_shape)


def _label_kind(labels, x, map_shape, logits_shape):
  """``True`` for an integer label map, ``False`` for targets shaped like the logits."""
  y = jnp.asarray(labels)
  if jnp.issubdtype(y.dtype, jnp.complexfloating):
    raise TypeError(f"labels must be real, got dtype {y.dtype}.")
  if y.shape == map_shape:
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise TypeError(
        f"labels has the shape of a label map ({y.shape}, logits.shape without "
        f"the class axis) but dtype {y.dtype}: class indices must be integers. "
        f"Cast with labels.astype(jnp.int32), or pass one-hot targets of shape "
        f"{logits_shape}."
      )
    return y, True
  if y.shape == x.shape:
    return y, False
  hint = "reshape labels to one of these."
  if (
    len(y.shape) == len(map_shape) + 1
    and 1 in y.shape
    and (tuple(d for i, d in enumerate(y.shape) if i != y.shape.index(1)) == map_shape)
  ):
    hint = "drop the axis of size 1 (MONAI's B1HW label layout) with jnp.squeeze."
  raise ValueError(
    f"labels must be an integer label map of shape {map_shape} (logits.shape "
    f"without the class axis) or targets of the same shape as logits; got "
    f"labels.shape={y.shape} and logits.shape={logits_shape}. jaxobj never "
    f"broadcasts them silently; {hint}"
  )


def _prepare(logits, labels, *, axis, spatial_dims, pooled, where, pixel_where, ignore_index):
  """Checked logits (class axis last) and targets, with invalid pixels zeroed."""
  x0 = checks.as_float(logits, "logits")
  _check_spatial_dims(spatial_dims, x0, 1)
  x = jnp.moveaxis(x0, axis, -1)
  map_shape = x.shape[:-1]
  y, integer = _label_kind(labels, x0, map_shape, x0.shape)
  if not integer:
    y = jnp.moveaxis(checks.as_target(y, "labels", x), axis, -1)
  n_batch = len(map_shape) - spatial_dims
  loss_shape = () if pooled else map_shape[:n_batch]
  axes = tuple(range(len(map_shape))) if pooled else tuple(range(n_batch, len(map_shape)))
  valid = _image_mask(where, loss_shape, map_shape)
  if pixel_where is not None:
    valid = _and(valid, _pixel_mask(pixel_where, map_shape))
  if ignore_index is not None and not integer:
    if ignore_index != inputs.IGNORE_INDEX:  # the default is for label maps only
      raise ValueError(
        f"ignore_index={ignore_index!r} applies to integer label maps; mask pixels of "
        "one-hot or probability targets with pixel_where."
      )
  elif ignore_index is not None:
    valid = _and(valid, y != ignore_index)
  x = _fill(valid, x, 1)
  num_classes = x.shape[-1]
  if integer:
    y = _fill(valid, y)
    if num_classes == 1:  # a single channel: the map is its 0/1 target (MONAI)
      g = y[..., None].astype(x.dtype)
    else:
      g = (y[..., None] == jnp.arange(num_classes)).astype(x.dtype)
      g = jnp.where(inputs.in_range(y, num_classes)[..., None], g, jnp.nan)
    g = _fill(valid, g, 1)  # filled labels are class 0: no target mass there
  else:
    g = _fill(valid, y, 1)
  return _Inputs(x, g, valid, integer, axes, loss_shape)


def _probabilities(x, activation):
  """``p`` and ``1 - p``, the complement computed without cancellation."""
  checks.check_choice("activation", activation, _ACTIVATIONS)
  if activation == "sigmoid":
    return jax.nn.sigmoid(x), jax.nn.sigmoid(-x)
  log_p = jax.nn.log_softmax(x, axis=-1)
  return jnp.exp(log_p), -jnp.expm1(log_p)


class _Overlap(NamedTuple):
  tp: jax.Array  # sum p g            (loss_shape + (C',))
  fp: jax.Array  # sum p (1 - g)
  fn: jax.Array  # sum (1 - p) g
  sq: jax.Array  # sum (p - g)^2
  ground: jax.Array  # sum g


def _overlap(inp, activation, include_background):
  """Soft confusion counts per image (or pooled) and class."""
  p, q = _probabilities(inp.x, activation)
  g = inp.g
  if inp.valid is not None:
    p, q = _fill(inp.valid, p, 1), _fill(inp.valid, q, 1)
  if not include_background and p.shape[-1] > 1:
    p, q, g = p[..., 1:], q[..., 1:], g[..., 1:]
  pos, neg = p * (1.0 - g), q * g
  total = lambda a: jnp.sum(a, axis=inp.axes)  # noqa: E731
  # p - g == p (1 - g) - (1 - p) g, exact when p is near 1.
  return _Overlap(total(p * g), total(pos), total(neg), total(jnp.square(pos - neg)), total(g))


def _class_mean(per_class, class_weights, include_background):
  """MONAI's class average: ``mean_c(w_c f_c)`` (not normalised by the weights)."""
  if class_weights is not None:
    if not include_background and class_weights.shape[0] > 1:
      class_weights = class_weights[1:]
    per_class = per_class * class_weights
  return jnp.mean(per_class, axis=-1)


def _dice_per_class(o, smooth_nr, smooth_dr, squared_pred, jaccard):
  err = o.sq if squared_pred else o.fp + o.fn  # size - 2 * overlap
  shift = smooth_dr - smooth_nr
  if jaccard:
    return numerics.safe_ratio(2.0 * err + shift, 2.0 * (err + o.tp) + smooth_dr)
  return numerics.safe_ratio(err + shift, err + 2.0 * o.tp + smooth_dr)


def _check_smooth(smooth_nr, smooth_dr):
  checks.check_range("smooth_nr", smooth_nr, low=0.0)
  checks.check_range("smooth_dr", smooth_dr, low=0.0)


def _dice(
  logits,
  labels,
  *,
  smooth_nr,
  smooth_dr,
  include_background,
  squared_pred,
  jaccard,
  batch,
  class_weights,
  activation,
  axis,
  spatial_dims,
  pixel_where,
  ignore_index,
  where,
  by_class=False,
):
  """Per-image (or pooled) Dice/Jaccard loss and the prepared inputs; with
  ``by_class``, the class-weighted per-class values (class axis last)."""
  _check_smooth(smooth_nr, smooth_dr)
  inp = _prepare(
    logits,
    labels,
    axis=axis,
    spatial_dims=spatial_dims,
    pooled=batch,
    where=where,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
  )
  if isinstance(class_weights, str):
    checks.check_choice("class_weights", class_weights, CLASS_WEIGHTINGS)
    cw = _inverse_square_frequency(inp.g)
  else:
    cw = inputs.class_weights(class_weights, inp.x.shape[-1], " of logits, background included")
  o = _overlap(inp, activation, include_background)
  per_class = _dice_per_class(o, smooth_nr, smooth_dr, squared_pred, jaccard)
  if by_class:
    w = cw
    if w is not None and not include_background and w.shape[0] > 1:
      w = w[1:]
    return (per_class if w is None else per_class * w), inp, cw
  return _class_mean(per_class, cw, include_background), inp, cw


# Class weightings computed from the targets (``class_weights="..."``).
CLASS_WEIGHTINGS = ("inverse_square_frequency",)


def _inverse_square_frequency(g):
  """optax's multiclass generalized Dice weights: ``1 / (F_c^2 + 1e-7)`` of the
  batch-wide target mass ``F_c`` of each class, scaled to sum to ``C``."""
  freq = jnp.sum(g, axis=tuple(range(g.ndim - 1)))
  w = 1.0 / (jnp.square(freq) + 1e-7)
  return jax.lax.stop_gradient(w / jnp.sum(w) * w.shape[0])


_COMMON_ARGS = """
    logits: float array ``(..., *spatial, C)``: leading batch axes,
      ``spatial_dims`` spatial axes, the class axis last (or at ``axis``).
    labels: integer label map ``(..., *spatial)`` (class indices in
      ``[0, C)``; NaN loss for unmasked out-of-range labels), or one-hot /
      probability targets of the same shape as ``logits``."""


def _with_common_args(fn):
  """Fills the shared ``logits``/``labels`` entries into the docstring's Args."""
  fn.__doc__ = fn.__doc__.replace("{common}", _COMMON_ARGS)
  return fn


# --------------------------------------------------------------------------
# Dice, Jaccard, generalized Dice.


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def dice_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  squared_pred: bool = False,
  jaccard: bool = False,
  batch: bool = False,
  class_weights: ArrayLike | str | None = None,
  per_class: bool = False,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft Dice loss per image, averaged over classes (MONAI's ``DiceLoss``).

  .. math::
     \ell = \frac{1}{C}\sum_c w_c\Big(1 - \frac{2\sum_i p_{ic} g_{ic} + s_{nr}}
       {\sum_i p_{ic} + \sum_i g_{ic} + s_{dr}}\Big)

  with :math:`p = \operatorname{softmax}(x)` over the class axis (or
  :math:`\sigma(x)` per channel for ``activation="sigmoid"``, multi-label),
  sums over the pixels of one image (of the whole batch for ``batch=True``),
  :math:`p^2, g^2` in the denominator for ``squared_pred`` and the Jaccard
  form :math:`2(\sum p + \sum g - \sum pg)` for ``jaccard``. The loss is
  evaluated as :math:`(\mathrm{FP} + \mathrm{FN} + s_{dr} - s_{nr}) /
  (\mathrm{FP} + \mathrm{FN} + 2\,\mathrm{TP} + s_{dr})` with soft counts
  (``FP = Σ p(1-g)``, ``FN = Σ (1-p) g``), equal to MONAI's value and exact
  for near-perfect predictions. Empty target and empty prediction give 0
  (see the module notes).

  Differences from MONAI: logits in (the activation is built in); class axis
  last; ``class_weights`` has one entry per class of ``logits`` (the
  background weight is unused with ``include_background=False``: MONAI's
  ``DiceLoss(include_background=False, weight=w)`` takes the ``C - 1``
  foreground weights, which is ``class_weights=jnp.concatenate([jnp.ones(1),
  w])`` here, as in MONAI's ``DiceCELoss``), and weights a single channel too
  (MONAI ignores ``weight`` there); ``reduction="none"`` gives per-image
  values (class means), and per-class ones with ``per_class=True``; a zero
  denominator gives 0, not NaN.

  ``per_class=True`` keeps the class axis: the per-element loss is
  :math:`w_c(1 - \mathrm{Dice}_c)` per image and class (shape ``(..., C')``,
  :math:`C'` the classes kept), so ``reduction="none"`` gives one value per
  class (optax's ``dice_loss(..., reduction="none")``, MONAI's
  ``reduction="none"``) and ``"mean"`` is the same number as without it (the
  mean over images and classes). ``where`` and ``weights`` still index the
  images (their class axis is added).

  ``class_weights="inverse_square_frequency"`` is the multiclass generalized
  Dice of optax's ``multiclass_generalized_dice_loss``: class weights
  :math:`w_c \propto 1 / (F_c^2 + 10^{-7})`, scaled to sum to :math:`C`,
  from the target mass :math:`F_c` of each class over the whole batch
  (unmasked pixels), held constant in the gradient. Those weights couple the
  images of a batch, so the value of a part of a batch is not a part of the
  batch's value (do not split such a term over microbatches). Sudre et al.'s
  ratio of weighted sums is :func:`generalized_dice_loss`.

  Args:{common}
    smooth_nr, smooth_dr: non-negative smoothing of the numerator and the
      denominator (traceable).
    include_background: False drops class 0 (when ``C > 1``).
    squared_pred: square predictions and targets in the denominator.
    jaccard: the soft Jaccard (IoU) loss instead (see :func:`jaccard_loss`).
    batch: pool the sums over the batch before the ratio; the per-element
      loss is then a scalar.
    class_weights: optional ``(C,)`` non-negative per-class factors, or
      ``"inverse_square_frequency"`` (weights from the batch's targets, above).
    per_class: keep the class axis in the per-element loss (above).
    activation: ``"softmax"`` (multiclass) or ``"sigmoid"`` (binary or
      multi-label; one channel for a binary mask).
    axis: the class axis of ``logits`` (and of one-hot targets); static.
    spatial_dims: number of spatial axes before the class axis; static.
    pixel_where: optional boolean pixel mask, broadcastable to the label-map
      shape ``logits.shape`` without the class axis.
    ignore_index: label value whose pixels are dropped (integer label maps
      only; default -100, PyTorch's; None drops none).
    where, weights, reduction: the loss contract over images
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-image losses for ``reduction="none"`` (per image
    and class with ``per_class=True``).

  Raises:
    ValueError: labels of neither accepted shape, bad ``class_weights``
      shape or name, negative smoothing, unknown ``activation``, too few axes.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0]]])    # one 1x2 image, 2 classes
    >>> labels = jnp.array([[0, 1]])
    >>> print(round(float(jaxobj.dice_loss(logits, labels)), 4))
    0.0003
    >>> print(jaxobj.dice_loss(logits, labels, per_class=True, reduction="none"))  # per class
    [0.0003 0.0003]
    >>> empty = jnp.full((1, 2, 1), -30.0)                   # confident "nothing here"
    >>> print(float(jaxobj.dice_loss(empty, jnp.zeros((1, 2, 1)), activation="sigmoid")) < 1e-6)
    True

  References:
    Milletari et al., "V-Net", 3DV 2016. MONAI ``monai.losses.DiceLoss``.
  """
  values, _, _ = _dice(
    logits,
    labels,
    smooth_nr=smooth_nr,
    smooth_dr=smooth_dr,
    include_background=include_background,
    squared_pred=squared_pred,
    jaccard=jaccard,
    batch=batch,
    class_weights=class_weights,
    activation=activation,
    axis=axis,
    spatial_dims=spatial_dims,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
    where=where,
    by_class=per_class,
  )
  if per_class:  # the image mask and weights gain the class axis
    where = None if where is None else checks.as_mask(where, values.shape[:-1])[..., None]
    if weights is not None:
      weights = checks.as_float(weights, "weights")
      checks.check_broadcastable("weights", weights, values.shape[:-1])
      weights = weights[..., None]
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def jaccard_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  squared_pred: bool = False,
  batch: bool = False,
  class_weights: ArrayLike | None = None,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft Jaccard (IoU) loss per image, averaged over classes.

  .. math::
     \ell = \frac{1}{C}\sum_c w_c\Big(1 - \frac{2\sum_i p_{ic} g_{ic} + s_{nr}}
       {2\big(\sum_i p_{ic} + \sum_i g_{ic} - \sum_i p_{ic} g_{ic}\big) + s_{dr}}\Big)

  MONAI's ``DiceLoss(jaccard=True)``: :math:`1 - \mathrm{IoU}` with the soft
  intersection over the soft union, smoothing as in MONAI (the factor 2
  keeps the smoothing on the same scale as the Dice loss). Evaluated as
  :math:`(2(\mathrm{FP}+\mathrm{FN}) + s_{dr} - s_{nr}) /
  (2(\mathrm{FP}+\mathrm{FN}+\mathrm{TP}) + s_{dr})`. Everything else —
  layout, targets, masks, empty masks, options — is as in :func:`dice_loss`.

  Args:{common}
    smooth_nr, smooth_dr: non-negative smoothing (traceable).
    include_background, squared_pred, batch, class_weights, activation, axis,
      spatial_dims, pixel_where, ignore_index: as in :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError, TypeError: as :func:`dice_loss`.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[2.0, -2.0], [0.0, 0.0]]])
    >>> labels = jnp.array([[0, 1]])
    >>> j = jaxobj.jaccard_loss(logits, labels)
    >>> d = jaxobj.dice_loss(logits, labels)
    >>> print(float(j) > float(d))                          # IoU <= Dice
    True

  References:
    Rahman and Wang, "Optimizing Intersection-Over-Union in Deep Neural
    Networks for Image Segmentation", ISVC 2016.
  """
  values, _, _ = _dice(
    logits,
    labels,
    smooth_nr=smooth_nr,
    smooth_dr=smooth_dr,
    include_background=include_background,
    squared_pred=squared_pred,
    jaccard=True,
    batch=batch,
    class_weights=class_weights,
    activation=activation,
    axis=axis,
    spatial_dims=spatial_dims,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
    where=where,
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _generalized_weights(ground, w_type):
  """MONAI's class weights ``1/G^2`` (or ``1/G``, or 1); an infinite weight (an
  absent class) is replaced by the largest finite weight of the image."""
  if w_type == "uniform":
    return jnp.ones_like(ground)
  scale = jnp.square(ground) if w_type == "square" else ground
  ok = scale > 0
  w = 1.0 / jnp.where(ok, scale, 1.0)
  ok = ok & jnp.isfinite(w)
  w = jnp.where(ok, w, 0.0)
  return jnp.where(ok, w, jnp.max(w, axis=-1, keepdims=True))


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def generalized_dice_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  w_type: str = "square",
  batch: bool = False,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized Dice loss: one Dice ratio over all classes, weighted by inverse class volume.

  .. math::
     \ell = 1 - \frac{2\sum_c w_c \sum_i p_{ic} g_{ic} + s_{nr}}
       {\sum_c w_c \sum_i (p_{ic} + g_{ic}) + s_{dr}},
     \qquad w_c = \frac{1}{(\sum_i g_{ic})^2}

  (``w_type="simple"``: :math:`1/\sum_i g_{ic}`; ``"uniform"``: 1). A class
  absent from the image has an infinite weight; as in MONAI it is replaced
  by the largest finite weight of that image (of the batch with
  ``batch=True``), and an image with no class present gets weights 0, so its
  loss is :math:`1 - s_{nr}/s_{dr}` (0 with the defaults). Evaluated as one
  fraction like :func:`dice_loss`.

  Args:{common}
    smooth_nr, smooth_dr: non-negative smoothing (traceable).
    include_background: False drops class 0 (when ``C > 1``).
    w_type: ``"square"``, ``"simple"`` or ``"uniform"``.
    batch, activation, axis, spatial_dims, pixel_where, ignore_index: as in
      :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`dice_loss`, unknown ``w_type``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[3.0, 0.0], [3.0, 0.0], [3.0, 0.0], [0.0, 3.0]]])
    >>> labels = jnp.array([[0, 0, 0, 1]])
    >>> print(round(float(jaxobj.generalized_dice_loss(logits, labels)), 4))
    0.0766

  References:
    Sudre et al., "Generalised Dice overlap as a deep learning loss function
    for highly unbalanced segmentations", DLMIA 2017. MONAI
    ``monai.losses.GeneralizedDiceLoss``.
  """
  _check_smooth(smooth_nr, smooth_dr)
  checks.check_choice("w_type", w_type, _WEIGHT_TYPES)
  inp = _prepare(
    logits,
    labels,
    axis=axis,
    spatial_dims=spatial_dims,
    pooled=batch,
    where=where,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
  )
  o = _overlap(inp, activation, include_background)
  w = _generalized_weights(o.ground, w_type)
  err = jnp.sum(w * (o.fp + o.fn), axis=-1)
  tp = jnp.sum(w * o.tp, axis=-1)
  values = numerics.safe_ratio(
    err + (jnp.asarray(smooth_dr) - smooth_nr), err + 2.0 * tp + smooth_dr
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Tversky.


def _tversky_per_class(
  logits,
  labels,
  *,
  alpha,
  beta,
  smooth_nr,
  smooth_dr,
  include_background,
  batch,
  activation,
  axis,
  spatial_dims,
  pixel_where,
  ignore_index,
  where,
):
  """``1 - TI`` per image (or pooled) and class."""
  checks.check_range("alpha", alpha, low=0.0)
  checks.check_range("beta", beta, low=0.0)
  _check_smooth(smooth_nr, smooth_dr)
  inp = _prepare(
    logits,
    labels,
    axis=axis,
    spatial_dims=spatial_dims,
    pooled=batch,
    where=where,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
  )
  o = _overlap(inp, activation, include_background)
  err = alpha * o.fp + beta * o.fn
  return numerics.safe_ratio(err + (smooth_dr - smooth_nr), err + o.tp + smooth_dr)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def tversky_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.5,
  beta: float | ArrayLike = 0.5,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  batch: bool = False,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Tversky loss: Dice with separate weights on false positives and false negatives.

  .. math::
     \ell = \frac{1}{C}\sum_c \Big(1 - \frac{\mathrm{TP}_c + s_{nr}}
       {\mathrm{TP}_c + \alpha\,\mathrm{FP}_c + \beta\,\mathrm{FN}_c + s_{dr}}\Big)

  with soft counts :math:`\mathrm{TP} = \sum p g`, :math:`\mathrm{FP} =
  \sum p(1-g)`, :math:`\mathrm{FN} = \sum (1-p) g` per image and class.
  As in MONAI, **alpha weights false positives and beta false negatives**
  (Salehi et al. write it the same way); :math:`\alpha=\beta=\tfrac12` is
  the Dice loss. Raise ``beta`` to favour recall on small structures.

  Args:{common}
    alpha: weight of false positives, non-negative (traceable).
    beta: weight of false negatives, non-negative (traceable).
    smooth_nr, smooth_dr: non-negative smoothing (traceable).
    include_background, batch, activation, axis, spatial_dims, pixel_where,
      ignore_index: as in :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`dice_loss`, negative ``alpha`` or ``beta``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[1.0], [-1.0], [2.0]]])
    >>> masks = jnp.array([[[1.0], [1.0], [0.0]]])
    >>> fn_heavy = jaxobj.tversky_loss(logits, masks, alpha=0.3, beta=0.7, activation="sigmoid")
    >>> fp_heavy = jaxobj.tversky_loss(logits, masks, alpha=0.7, beta=0.3, activation="sigmoid")
    >>> print(float(fn_heavy) != float(fp_heavy))
    True

  References:
    Salehi et al., "Tversky loss function for image segmentation using 3D
    fully convolutional deep networks", MLMI 2017. MONAI
    ``monai.losses.TverskyLoss``.
  """
  per_class = _tversky_per_class(
    logits,
    labels,
    alpha=alpha,
    beta=beta,
    smooth_nr=smooth_nr,
    smooth_dr=smooth_dr,
    include_background=include_background,
    batch=batch,
    activation=activation,
    axis=axis,
    spatial_dims=spatial_dims,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
    where=where,
  )
  return reduce_loss(
    jnp.mean(per_class, axis=-1), where=where, weights=weights, reduction=reduction
  )


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def focal_tversky_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.3,
  beta: float | ArrayLike = 0.7,
  gamma: float | ArrayLike = 4.0 / 3.0,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  batch: bool = False,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Focal Tversky loss: the per-class Tversky loss raised to the power 1/gamma.

  .. math::
     \ell = \frac{1}{C}\sum_c \big(1 - \mathrm{TI}_c\big)^{1/\gamma},\qquad
     \mathrm{TI}_c = \frac{\mathrm{TP}_c + s_{nr}}
       {\mathrm{TP}_c + \alpha\,\mathrm{FP}_c + \beta\,\mathrm{FN}_c + s_{dr}}

  **Exponent convention: 1/gamma**, as in Abraham and Khan (2019), whose
  recommended :math:`\gamma = 4/3` is the default (:math:`\gamma=1` is
  :func:`tversky_loss`). Implementations that write :math:`(1-\mathrm{TI})^\gamma`
  use the reciprocal: their 0.75 is our 4/3. Roles of alpha and beta follow
  MONAI's Tversky loss (**alpha on false positives, beta on false
  negatives**); the paper writes the reverse, so its α = 0.7 (on false
  negatives) is ``beta=0.7`` here — the defaults. The paper sums over
  classes; this is the class mean (the paper's value divided by C). At
  :math:`1 - \mathrm{TI} = 0` the power has an infinite slope; the gradient
  there is taken as 0, and a negative :math:`1 - \mathrm{TI}` (possible
  when ``smooth_nr > smooth_dr``) is clipped to 0.

  Args:{common}
    alpha: weight of false positives, non-negative (traceable).
    beta: weight of false negatives, non-negative (traceable).
    gamma: positive; the exponent is ``1 / gamma`` (traceable).
    smooth_nr, smooth_dr: non-negative smoothing (traceable).
    include_background, batch, activation, axis, spatial_dims, pixel_where,
      ignore_index: as in :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`tversky_loss`, ``gamma <= 0``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[1.0], [-1.0], [2.0]]])
    >>> masks = jnp.array([[[1.0], [1.0], [0.0]]])
    >>> t = jaxobj.tversky_loss(logits, masks, alpha=0.3, beta=0.7, activation="sigmoid")
    >>> ft = jaxobj.focal_tversky_loss(logits, masks, activation="sigmoid")
    >>> print(bool(jnp.allclose(ft, t ** 0.75)))
    True

  References:
    Abraham and Khan, "A Novel Focal Tversky Loss Function with Improved
    Attention U-Net for Lesion Segmentation", ISBI 2019.
  """
  checks.check_range("gamma", gamma, low=0.0, low_inclusive=False)
  per_class = _tversky_per_class(
    logits,
    labels,
    alpha=alpha,
    beta=beta,
    smooth_nr=smooth_nr,
    smooth_dr=smooth_dr,
    include_background=include_background,
    batch=batch,
    activation=activation,
    axis=axis,
    spatial_dims=spatial_dims,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
    where=where,
  )
  pos = per_class > 0
  powered = jnp.exp(jnp.log(jnp.where(pos, per_class, 1.0)) / gamma)
  # NaN (a NaN logit, an out-of-range label) must not take the zero branch.
  zero = jnp.where(jnp.isnan(per_class), per_class, 0.0)
  values = jnp.mean(jnp.where(pos, powered, zero), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Dice + cross-entropy.


def _cross_entropy(inp, activation, class_weights, label_smoothing):
  """Per-image (or pooled) mean cross-entropy over valid pixels, torch semantics:
  softmax CE (weighted mean by the label's class weight for label maps) or
  BCE with logits (class weights as ``pos_weight``)."""
  x, g, axes = inp.x, inp.g, inp.axes
  valid = jnp.ones(x.shape[:-1], bool) if inp.valid is None else inp.valid
  count = jnp.sum(valid, axis=axes, dtype=x.dtype)
  if activation == "sigmoid":
    t = g * (1.0 - label_smoothing) + 0.5 * label_smoothing
    pos_w = 1.0 if class_weights is None else class_weights
    ce = pos_w * t * inputs.safe_logp(t, jax.nn.log_sigmoid(x)) + (1.0 - t) * inputs.safe_logp(
      1.0 - t, jax.nn.log_sigmoid(-x)
    )
    total = -jnp.sum(jnp.where(valid[..., None], ce, 0.0), axis=axes + (-1,))
    return numerics.safe_ratio(total, count * x.shape[-1])
  log_p = jax.nn.log_softmax(x, axis=-1)
  finite = log_p > -jnp.inf
  # In x's dtype: a bool / int division is float64 under x64.
  uniform = finite.astype(x.dtype) / jnp.maximum(
    jnp.sum(finite, axis=-1, keepdims=True, dtype=x.dtype), 1.0
  )
  t = (1.0 - label_smoothing) * g + label_smoothing * uniform
  w = 1.0 if class_weights is None else class_weights
  ce = -jnp.sum(w * t * inputs.safe_logp(t, log_p), axis=-1)
  total = jnp.sum(jnp.where(valid, ce, 0.0), axis=axes)
  if inp.integer and class_weights is not None:
    count = jnp.sum(jnp.where(valid, jnp.sum(g * class_weights, axis=-1), 0.0), axis=axes)
  return numerics.safe_ratio(total, count)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_common_args
def dice_ce_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  lambda_dice: float | ArrayLike = 1.0,
  lambda_ce: float | ArrayLike = 1.0,
  label_smoothing: float | ArrayLike = 0.0,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  include_background: bool = True,
  squared_pred: bool = False,
  jaccard: bool = False,
  batch: bool = False,
  class_weights: ArrayLike | None = None,
  activation: str = "softmax",
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Dice loss plus cross-entropy, weighted (MONAI's ``DiceCELoss``).

  .. math:: \ell = \lambda_{dice}\,\ell_{Dice} + \lambda_{ce}\,\ell_{CE}

  :math:`\ell_{Dice}` is :func:`dice_loss` with the same options.
  :math:`\ell_{CE}` is the mean over the image's valid pixels of the softmax
  cross-entropy (``activation="softmax"``) or of the sigmoid binary
  cross-entropy over pixels and channels (``"sigmoid"``), always over all
  classes (``include_background`` only affects the Dice term, as in MONAI).
  ``class_weights`` weight both terms as in MONAI: torch's ``weight`` for
  the softmax CE (the mean is then weighted by the label's class weight for
  label maps), ``pos_weight`` for the BCE. Label smoothing mixes the target
  with the uniform distribution over the classes whose logit is not
  ``-inf`` (torch's ``label_smoothing`` when no logit is ``-inf``); in the
  sigmoid form it mixes each channel with 1/2 (MONAI's BCE has none).

  Differences from MONAI: the CE mean is taken per image, then over images
  (the same as MONAI's pixel mean unless pixel masks or class weights make
  images count differently: with ``class_weights`` and several images MONAI
  divides by the class weights of the whole batch's labels, jaxobj by each
  image's; ``batch=True`` pools the batch and equals MONAI's
  ``DiceCELoss(batch=True, weight=...)``); with several sigmoid channels
  MONAI uses the softmax CE, jaxobj the per-channel BCE (multi-label,
  matching the Dice term); with one channel MONAI uses ``weight`` only as
  the BCE's ``pos_weight``, jaxobj also weights the Dice term.

  Args:{common}
    lambda_dice, lambda_ce: non-negative weights of the two terms (traceable).
    label_smoothing: in [0, 1], for the cross-entropy term (traceable).
    smooth_nr, smooth_dr, include_background, squared_pred, jaccard, batch,
      class_weights, activation, axis, spatial_dims, pixel_where,
      ignore_index: as in :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`dice_loss`, negative lambdas, ``label_smoothing``
      outside [0, 1].
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0]]])
    >>> labels = jnp.array([[0, 1]])
    >>> both = jaxobj.dice_ce_loss(logits, labels)
    >>> dice = jaxobj.dice_loss(logits, labels)
    >>> ce = jaxobj.softmax_cross_entropy_with_integer_labels(logits, labels)
    >>> print(bool(jnp.allclose(both, dice + ce)))
    True

  References:
    Isensee et al., "nnU-Net", Nature Methods 2021. MONAI
    ``monai.losses.DiceCELoss``.
  """
  checks.check_range("lambda_dice", lambda_dice, low=0.0)
  checks.check_range("lambda_ce", lambda_ce, low=0.0)
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  dice, inp, cw = _dice(
    logits,
    labels,
    smooth_nr=smooth_nr,
    smooth_dr=smooth_dr,
    include_background=include_background,
    squared_pred=squared_pred,
    jaccard=jaccard,
    batch=batch,
    class_weights=class_weights,
    activation=activation,
    axis=axis,
    spatial_dims=spatial_dims,
    pixel_where=pixel_where,
    ignore_index=ignore_index,
    where=where,
  )
  ce = _cross_entropy(inp, activation, cw, label_smoothing)
  values = lambda_dice * dice + lambda_ce * ce
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Lovász.


def _lovasz_grad(gt_sorted):
  """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

  With ``k`` errors taken (largest first), the Jaccard loss of the set is
  ``1 - (G - cumsum(gt)) / (G + cumsum(1 - gt))``; its increments are the
  weights. The union is >= 1 at every position, so it never divides by 0.
  """
  gts = jnp.sum(gt_sorted, axis=-1, keepdims=True)
  intersection = gts - jnp.cumsum(gt_sorted, axis=-1)
  union = gts + jnp.cumsum(1.0 - gt_sorted, axis=-1)
  jac = 1.0 - intersection / union
  return jnp.concatenate([jac[..., :1], jnp.diff(jac, axis=-1)], axis=-1)


def _lovasz(errors, gt, valid, hinge):
  """``sum_k e_(k) * grad_k`` over the last axis, errors sorted descending.

  Invalid entries sort last (after every valid error) and contribute 0;
  the weights of valid entries only depend on the entries before them, so
  the result is that of the valid entries alone.
  """
  low = -jnp.inf if hinge else -1.0
  e = errors if valid is None else jnp.where(valid, errors, low)
  perm = jnp.argsort(jax.lax.stop_gradient(e), axis=-1, descending=True)
  e_sorted = jnp.take_along_axis(e, perm, axis=-1)
  weights = _lovasz_grad(jnp.take_along_axis(gt, perm, axis=-1))
  if hinge:
    e_sorted = jax.nn.relu(e_sorted)
  terms = e_sorted * weights
  if valid is not None:
    terms = jnp.where(jnp.take_along_axis(valid, perm, axis=-1), terms, 0.0)
  return jnp.sum(terms, axis=-1)


def _pixels_last(a, loss_shape, has_class):
  """Collapses the summed axes into one trailing pixel axis (class axis before it)."""
  # The pixel count by name, not -1: an empty batch leaves -1 undetermined.
  pixels = math.prod(a.shape[len(loss_shape) : a.ndim - has_class])
  if has_class:
    a = a.reshape(loss_shape + (pixels, a.shape[-1]))
    return jnp.swapaxes(a, -1, -2)  # loss_shape + (C, P)
  return a.reshape(loss_shape + (pixels,))


def _select_classes(classes, num_classes):
  if classes in ("present", "all"):
    return tuple(range(num_classes))
  try:
    idx = tuple(operator.index(c) for c in classes)
  except TypeError:
    raise ValueError(
      f"classes must be 'present', 'all' or a sequence of class indices, got classes={classes!r}."
    ) from None
  if not idx or any(not 0 <= c < num_classes for c in idx):
    raise ValueError(f"classes={classes!r} must be non-empty indices in [0, {num_classes}).")
  return idx


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def lovasz_softmax_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  classes: str | Sequence[int] = "present",
  per_image: bool = True,
  axis: int = -1,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Lovász-softmax loss: the convex Lovász extension of the per-class Jaccard loss.

  .. math::
     \ell = \frac{1}{|\mathcal{C}|}\sum_{c\in\mathcal{C}} \sum_k m_{c,(k)}\,
       \big(J_c(\{(1)..(k)\}) - J_c(\{(1)..(k-1)\})\big),\qquad
     m_{ic} = |[y_i = c] - p_{ic}|

  with :math:`p = \operatorname{softmax}(x)`, the errors :math:`m_c` sorted in
  decreasing order and :math:`J_c(S) = 1 - |G_c \setminus S| / |G_c \cup S|`
  the Jaccard loss of predicting the set :math:`S` wrong (:math:`G_c` the
  pixels of class c). ``classes="present"`` averages over the classes
  present in the (valid pixels of the) image, ``"all"`` over all classes, a
  sequence over those classes. An image with no valid pixel has loss 0.
  Sorting uses ``jnp.argsort`` on fixed shapes, so the loss jits; gradients
  flow through the sorted errors (the weights depend on the labels only).

  Differences from the reference implementation (Berman et al.): logits in
  (the softmax is built in) and **per_image=True by default** (one value per
  image, the contract's per-element loss; the reference defaults to the
  pooled ``per_image=False``, available here). ``ignore_index`` matches the
  reference's ``ignore``. Needs ``C >= 2`` (use :func:`lovasz_hinge_loss`
  for one binary channel).

  Args:
    logits: float array ``(..., *spatial, C)`` (class axis at ``axis``).
    labels: integer label map ``(..., *spatial)``; NaN loss for unmasked
      labels outside ``[0, C)``.
    classes: ``"present"``, ``"all"`` or a sequence of class indices.
    per_image: True: one loss per image; False: pool every pixel of the
      batch into one loss (a scalar per-element loss).
    axis, spatial_dims, pixel_where, ignore_index: as in :func:`dice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, bad ``classes``, ``C < 2``.
    TypeError: integer ``logits``; non-integer ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[9.0, -9.0], [-9.0, 9.0]], [[0.0, 0.0], [0.0, 0.0]]])
    >>> labels = jnp.array([[0, 1], [0, 1]])                # two 1x2 images
    >>> print(jaxobj.lovasz_softmax_loss(logits[:, None], labels[:, None], reduction="none"))
    [0.  0.5]

  References:
    Berman, Rannen Triki and Blaschko, "The Lovász-Softmax loss: A tractable
    surrogate for the optimization of the intersection-over-union measure in
    neural networks", CVPR 2018.
  """
  if not isinstance(classes, str):
    classes = tuple(classes)
  elif classes not in ("present", "all"):
    raise ValueError(
      f"classes={classes!r} is not supported; choose 'present', 'all' "
      f"or a sequence of class indices."
    )
  x0 = checks.as_float(logits, "logits")
  _check_spatial_dims(spatial_dims, x0, 1)
  num_classes = jnp.moveaxis(x0, axis, -1).shape[-1]
  if num_classes < 2:
    raise ValueError(
      f"lovasz_softmax_loss needs at least 2 classes, got "
      f"logits.shape={x0.shape}; for one binary channel use "
      f"lovasz_hinge_loss."
    )
  y = jnp.asarray(labels)
  inp = None
  if jnp.issubdtype(y.dtype, jnp.integer):
    inp = _prepare(
      logits,
      labels,
      axis=axis,
      spatial_dims=spatial_dims,
      pooled=not per_image,
      where=where,
      pixel_where=pixel_where,
      ignore_index=ignore_index,
    )
  if inp is None or not inp.integer:
    raise TypeError(
      f"lovasz_softmax_loss takes an integer label map (logits.shape without the "
      f"class axis), got labels of dtype {y.dtype} and shape {y.shape} for "
      f"logits.shape={x0.shape}; convert one-hot targets with labels.argmax(-1) "
      f"and cast with .astype(jnp.int32)."
    )
  idx = _select_classes(classes, num_classes)
  p, q = _probabilities(inp.x, "softmax")
  g = jnp.nan_to_num(inp.g)  # out-of-range labels give NaN below, not garbage
  errors = jnp.where(g > 0, q, p)  # |[y = c] - p_c|, exact near p = 1

  def to_pixels(a):  # loss_shape + (C', P)
    a = _pixels_last(a, inp.loss_shape, True)
    return a if isinstance(classes, str) else a[..., jnp.asarray(idx), :]

  gt = to_pixels(g)
  valid = None if inp.valid is None else to_pixels(jnp.broadcast_to(inp.valid[..., None], g.shape))
  per_class = _lovasz(to_pixels(errors), gt, valid, hinge=False)
  if classes == "present":
    counted = jnp.sum(gt, axis=-1) > 0  # gt is 0 at invalid pixels
  else:
    counted = jnp.ones(per_class.shape, bool)
  values = numerics.safe_ratio(
    jnp.sum(jnp.where(counted, per_class, 0.0), axis=-1),
    jnp.sum(counted, axis=-1, dtype=per_class.dtype),
  )
  bad = jnp.any(jnp.isnan(inp.g[..., 0]), axis=inp.axes)
  values = jnp.where(bad, jnp.nan, values)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "segmentation",
  inputs=seg_examples.SEGMENTATION_BINARY,
  zero_hessian="piecewise linear: a hinge; the Lovasz extension sorts the errors (kinked at ties)",
)
def lovasz_hinge_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  per_image: bool = True,
  spatial_dims: int = 2,
  pixel_where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Lovász hinge loss: the Lovász extension of the binary Jaccard loss on hinge errors.

  .. math::
     \ell = \sum_k \max(0, m_{(k)})\,\big(J(\{(1)..(k)\}) - J(\{(1)..(k-1)\})\big),
     \qquad m_i = 1 - x_i\,(2 y_i - 1)

  with the hinge errors :math:`m` sorted in decreasing order and :math:`J` the
  Jaccard loss of the foreground (see :func:`lovasz_softmax_loss`). As in the
  reference implementation, one loss per image by default
  (``per_image=True``); an image with no valid pixel has loss 0.

  Args:
    logits: float array ``(..., *spatial)`` of foreground logits (no class
      axis).
    labels: 0/1 masks of the same shape (float, integer or bool).
    per_image: True: one loss per image; False: pool the batch (a scalar
      per-element loss).
    spatial_dims: number of trailing spatial axes; static.
    pixel_where: optional boolean pixel mask broadcastable to ``logits``.
    ignore_index: label value (e.g. 255) whose pixels are dropped (default
      -100, as every loss with integer labels; None drops none).
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ; too few axes.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[3.0, -3.0]], [[0.0, 0.0]]])   # two 1x2 images
    >>> masks = jnp.array([[[1, 0]], [[1, 0]]])
    >>> print(jaxobj.lovasz_hinge_loss(logits, masks, reduction="none"))
    [0. 1.]

  References:
    Berman, Rannen Triki and Blaschko, CVPR 2018 (see
    :func:`lovasz_softmax_loss`).
  """
  x = checks.as_float(logits, "logits")
  _check_spatial_dims(spatial_dims, x, 0)
  checks.check_same_shape("logits", x, "labels", labels)
  raw = jnp.asarray(labels)
  y = checks.as_target(raw, "labels", x)
  n_batch = x.ndim - spatial_dims
  loss_shape = () if not per_image else x.shape[:n_batch]
  valid = _image_mask(where, loss_shape, x.shape)
  if pixel_where is not None:
    valid = _and(valid, _pixel_mask(pixel_where, x.shape, "logits.shape"))
  if ignore_index is not None:
    valid = _and(valid, raw != ignore_index)
  x, y = _fill(valid, x), _fill(valid, y)
  errors = 1.0 - x * (2.0 * y - 1.0)
  flat = lambda a: _pixels_last(a, loss_shape, False)  # noqa: E731
  values = _lovasz(flat(errors), flat(y), None if valid is None else flat(valid), hinge=True)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
