r"""Segmentation losses beyond pixel overlap: shape, class distances, imbalance, calibration.

The overlap losses of :mod:`jaxobj.losses.segmentation` count pixels, so a
one-pixel break in a thin vessel or a far-away false positive costs almost
nothing. The losses here weight pixels by where they lie: the **soft clDice**
compares soft skeletons (centerlines) of the prediction and the target, so
connectivity of tubular structures counts; the **Hausdorff distance-transform
losses** weight each pixel's error by its distance to the boundaries, so
errors far from any boundary (what the Hausdorff distance measures) count the
most. The **generalized Wasserstein Dice** measures errors by a distance
between classes, the **asymmetric unified focal loss** treats the background
and the rare classes differently, and **NACL** keeps predictions at class
boundaries calibrated.

**Layout and targets** as in :mod:`jaxobj.losses.segmentation`: logits
``(..., *spatial, C)`` channels-last (MONAI's channels-first logits:
``jnp.moveaxis(logits, 1, -1)``), ``spatial_dims`` spatial axes, labels an
integer label map ``(..., *spatial)`` (one-hot encoded inside; with one
channel the map is its 0/1 target) or one-hot / probability targets shaped
like the logits. ``activation`` is ``"softmax"`` over the class axis or
``"sigmoid"`` per channel. ``include_background=False`` (the default, as in
MONAI) leaves channel 0 out when there are several channels.

**Per-element loss.** One value per image (the batch shape, on which ``where``
and ``weights`` act); MONAI pools the batch into one value for clDice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs, numerics, windows
from jaxobj._src.examples import segmentation as seg_examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "asymmetric_unified_focal_loss",
  "generalized_wasserstein_dice_loss",
  "hausdorff_dt_loss",
  "log_hausdorff_dt_loss",
  "nacl_loss",
  "soft_cldice_loss",
  "soft_dice_cldice_loss",
]

_ACTIVATIONS = ("softmax", "sigmoid")


# --------------------------------------------------------------------------
# Shared preparation.


def _prepare(logits, labels, activation, spatial_dims, include_background, where):
  """Probabilities and targets ``(..., *spatial, C')`` (background dropped on
  request), masked images zeroed, and the batch shape."""
  checks.check_choice("activation", activation, _ACTIVATIONS)
  checks.check_bool("include_background", include_background)
  x, g, batch = _prepare_logits(logits, labels, spatial_dims, where)
  p = jax.nn.softmax(x, axis=-1) if activation == "softmax" else jax.nn.sigmoid(x)
  if not include_background and x.shape[-1] > 1:
    p, g = p[..., 1:], g[..., 1:]
  return p, g, batch


def _prepare_logits(logits, labels, spatial_dims, where):
  """Checked logits and targets ``(..., *spatial, C)``, masked images zeroed, and
  the batch shape."""
  if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims < 1:
    raise ValueError(
      f"spatial_dims must be a positive int (2 for images, 3 for volumes), got "
      f"spatial_dims={spatial_dims!r}."
    )
  x = checks.as_float(logits, "logits")
  if x.ndim < spatial_dims + 1:
    raise ValueError(
      f"logits.shape={x.shape} has fewer axes than spatial_dims={spatial_dims} plus the "
      f"class axis: logits must be (..., *spatial, C). For one binary channel add a class "
      f"axis with logits[..., None]."
    )
  map_shape = x.shape[:-1]
  batch = map_shape[: len(map_shape) - spatial_dims]
  num_classes = x.shape[-1]
  y = jnp.asarray(labels)
  if y.shape == map_shape and jnp.issubdtype(y.dtype, jnp.integer):
    if num_classes == 1:  # a single channel: the map is its 0/1 target
      g = y[..., None].astype(x.dtype)
    else:
      g = (y[..., None] == jnp.arange(num_classes)).astype(x.dtype)
      g = jnp.where(inputs.in_range(y, num_classes)[..., None], g, jnp.nan)
  elif y.shape == map_shape and y.shape != x.shape:
    raise TypeError(
      f"labels has the shape of a label map ({y.shape}, logits.shape without the class "
      f"axis) but dtype {y.dtype}: class indices must be integers. Cast with "
      f"labels.astype(jnp.int32), or pass one-hot targets of shape {x.shape}."
    )
  elif y.shape == x.shape:
    g = checks.as_target(y, "labels", x)
  else:
    raise ValueError(
      f"labels must be an integer label map of shape {map_shape} (logits.shape without "
      f"the class axis) or targets of the same shape as logits; got labels.shape={y.shape} "
      f"and logits.shape={x.shape}. jaxobj never broadcasts them silently; reshape labels."
    )
  x = masked_fill(where, x, batch, axis_extra=spatial_dims + 1)
  g = masked_fill(where, g.astype(x.dtype), batch, axis_extra=spatial_dims + 1)
  return x, g, batch


def _image_sum(a, batch):
  return jnp.sum(a, axis=tuple(range(len(batch), a.ndim)))


def _image_mean(a, batch):
  return jnp.mean(a, axis=tuple(range(len(batch), a.ndim)))


# --------------------------------------------------------------------------
# Soft skeletons and clDice.


def _pool(a, axis, op, fill):
  """``op`` over the 3 neighbours along ``axis``; outside the image is ``fill`` (ignored)."""
  pad = [(0, 0)] * a.ndim
  pad[axis] = (1, 1)
  b = jnp.pad(a, pad, constant_values=fill)
  n = a.shape[axis]
  sl = lambda k: jax.lax.slice_in_dim(b, k, k + n, axis=axis)  # noqa: E731
  return op(op(sl(0), sl(1)), sl(2))


def _erode(a, axes):
  """Soft erosion: the minimum over the axis-aligned cross (the minimum of 1-D pools)."""
  out = _pool(a, axes[0], jnp.minimum, jnp.inf)
  for ax in axes[1:]:
    out = jnp.minimum(out, _pool(a, ax, jnp.minimum, jnp.inf))
  return out


def _dilate(a, axes):
  """Soft dilation: the maximum over the 3 x ... x 3 box."""
  for ax in axes:
    a = _pool(a, ax, jnp.maximum, -jnp.inf)
  return a


def _soft_skeleton(a, axes, iterations):
  """Shit et al.'s soft skeleton: what morphological opening removes, over
  ``iterations`` erosions."""
  opened = _dilate(_erode(a, axes), axes)
  skel = jax.nn.relu(a - opened)
  for _ in range(iterations):
    a = _erode(a, axes)
    delta = jax.nn.relu(a - _dilate(_erode(a, axes), axes))
    skel = skel + jax.nn.relu(delta - skel * delta)
  return skel


def _cldice(p, g, batch, spatial_dims, iterations, smooth):
  axes = tuple(range(len(batch), len(batch) + spatial_dims))
  skel_p = _soft_skeleton(p, axes, iterations)
  skel_g = _soft_skeleton(g, axes, iterations)
  precision = (_image_sum(skel_p * g, batch) + smooth) / (_image_sum(skel_p, batch) + smooth)
  sensitivity = (_image_sum(skel_g * p, batch) + smooth) / (_image_sum(skel_g, batch) + smooth)
  return 1.0 - 2.0 * precision * sensitivity / (precision + sensitivity)


def _check_cldice(iterations, smooth, loss):
  checks.check_int("iterations", iterations, loss=loss)
  if iterations < 0:
    raise ValueError(
      f"iterations must be a non-negative int (erosions of the soft skeleton), got "
      f"iterations={iterations!r}."
    )
  checks.check_range("smooth", smooth, low=0.0, low_inclusive=False)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def soft_cldice_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  iterations: int = 3,
  smooth: float | ArrayLike = 1.0,
  include_background: bool = False,
  activation: str = "softmax",
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft clDice: one minus the harmonic mean of topology precision and sensitivity.

  .. math::
     T_{prec} = \frac{\sum S(p)\,g + s}{\sum S(p) + s},\quad
     T_{sens} = \frac{\sum S(g)\,p + s}{\sum S(g) + s},\quad
     \ell = 1 - \frac{2\,T_{prec} T_{sens}}{T_{prec} + T_{sens}}

  with the sums over the pixels and (foreground) channels of one image and
  :math:`S` the soft skeleton of Shit et al.: with soft erosion :math:`E`
  (the minimum over the axis-aligned 3-pixel cross) and soft dilation
  :math:`D` (the maximum over the 3×…×3 box), the pixels that opening
  :math:`D(E(\cdot))` removes, accumulated over ``iterations`` erosions:
  :math:`S \leftarrow S + \operatorname{relu}(\delta - S\delta)` with
  :math:`\delta = \operatorname{relu}(E^k(a) - D(E^{k+1}(a)))`. Pools ignore
  the outside of the image. ``iterations`` should reach the largest radius of
  the structures. An empty target with a confidently empty prediction gives
  0 (the smoothing :math:`s` makes both ratios 1).

  Differences from MONAI's ``SoftclDiceLoss``: logits in (the activation is
  built in), channels-last, one value per image (MONAI sums over the batch),
  ``include_background=True`` keeps channel 0 (MONAI always drops it).

  Args:
    logits: float ``(..., *spatial, C)``, the class axis last.
    labels: integer label map ``(..., *spatial)`` or targets shaped like
      ``logits``; NaN loss for unmasked labels outside ``[0, C)``.
    iterations: number of erosions of the soft skeleton, >= 0 (static).
    smooth: positive smoothing of both ratios (traceable).
    include_background: keep channel 0 (static; ignored with one channel).
    activation: ``"softmax"`` or ``"sigmoid"`` (static).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, too few axes, negative ``iterations``,
      non-positive ``smooth``, an unknown ``activation``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> line = jnp.zeros((1, 5, 5), jnp.int32).at[0, 2, :].set(1)  # a thin vessel
    >>> good = 20.0 * (2 * jax.nn.one_hot(line, 2) - 1)
    >>> broken = good.at[0, 2, 2].set(good[0, 0, 0])  # a gap in the middle
    >>> print(float(jaxobj.soft_cldice_loss(good, line)) < 1e-6)
    True
    >>> print(round(float(jaxobj.soft_cldice_loss(broken, line)), 3))
    0.091

  References:
    Shit et al., "clDice - a Novel Topology-Preserving Loss Function for
    Tubular Structure Segmentation", CVPR 2021. MONAI
    ``monai.losses.SoftclDiceLoss``.
  """
  _check_cldice(iterations, smooth, "soft_cldice_loss")
  p, g, batch = _prepare(logits, labels, activation, spatial_dims, include_background, where)
  values = _cldice(p, g, batch, spatial_dims, iterations, smooth)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def soft_dice_cldice_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.5,
  iterations: int = 3,
  smooth: float | ArrayLike = 1.0,
  include_background: bool = False,
  activation: str = "softmax",
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft Dice and soft clDice, mixed: :math:`(1 - \alpha)\,\ell_{Dice} + \alpha\,\ell_{clDice}`.

  .. math::
     \ell_{Dice} = 1 - \frac{2\sum p g + s}{\sum p + \sum g + s}

  over the pixels and (foreground) channels of one image, pooled (one ratio,
  not a class mean), and :math:`\ell_{clDice}` as in :func:`soft_cldice_loss`
  with the same smoothing :math:`s`. Shit et al. train with this mixture:
  clDice alone only sees the skeletons.

  Differences from MONAI's ``SoftDiceclDiceLoss``: as for
  :func:`soft_cldice_loss`.

  Args:
    logits, labels: as in :func:`soft_cldice_loss`.
    alpha: weight of the clDice term in [0, 1] (traceable).
    iterations, smooth, include_background, activation, spatial_dims: as in
      :func:`soft_cldice_loss`.
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`soft_cldice_loss`; ``alpha`` outside [0, 1].
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> line = jnp.zeros((1, 5, 5), jnp.int32).at[0, 2, :].set(1)
    >>> logits = 20.0 * (2 * jax.nn.one_hot(line, 2) - 1)
    >>> print(float(jaxobj.soft_dice_cldice_loss(logits, line)) < 1e-6)
    True

  References:
    Shit et al., CVPR 2021 (see :func:`soft_cldice_loss`). MONAI
    ``monai.losses.SoftDiceclDiceLoss``.
  """
  _check_cldice(iterations, smooth, "soft_dice_cldice_loss")
  checks.check_range("alpha", alpha, low=0.0, high=1.0)
  p, g, batch = _prepare(logits, labels, activation, spatial_dims, include_background, where)
  overlap = _image_sum(p * g, batch)
  dice = 1.0 - (2.0 * overlap + smooth) / (_image_sum(p, batch) + _image_sum(g, batch) + smooth)
  values = (1.0 - alpha) * dice + alpha * _cldice(p, g, batch, spatial_dims, iterations, smooth)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Distance transforms and the Hausdorff losses.


def _squared_distance_to(target, axes, dtype):
  """Exact squared Euclidean distance from each pixel to the nearest ``True``
  pixel of ``target`` along ``axes`` (inf when there is none).

  Separable: the squared distance is a sum over axes, so one pass per axis of
  ``d(x) = min_x' (x - x')^2 + d(x')`` gives the exact transform in
  ``O(pixels * size)`` (no pairwise pixel matrix).
  """
  d = jnp.where(target, jnp.zeros((), dtype), jnp.asarray(jnp.inf, dtype))
  for ax in axes:
    n = d.shape[ax]
    k = jnp.arange(n, dtype=d.dtype)
    sq = jnp.square(k[:, None] - k[None, :])  # (x, x')
    moved = jnp.moveaxis(d, ax, -1)[..., None, :]  # (..., 1, x')
    d = jnp.moveaxis(jnp.min(moved + sq, axis=-1), -1, ax)
  return d


def _distance_field(mask, axes, dtype):
  """Distance from each pixel to the nearest pixel of the other label (0 where
  the image has a single label, as for an empty mask)."""
  inside = _squared_distance_to(~mask, axes, dtype)
  outside = _squared_distance_to(mask, axes, dtype)
  d = jnp.where(mask, inside, outside)
  return jnp.sqrt(jnp.where(jnp.isinf(d), jnp.zeros((), dtype), d))


_HAUSDORFF_ARGS = """
    logits: float ``(..., *spatial, C)``, the class axis last.
    labels: integer label map ``(..., *spatial)`` or targets shaped like
      ``logits`` (thresholded at 0.5 for the distance transform); NaN loss
      for unmasked labels outside ``[0, C)``.
    alpha: non-negative exponent of the distances (traceable).
    include_background: keep channel 0 (static; ignored with one channel).
    activation: ``"softmax"`` or ``"sigmoid"`` (static).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images."""


def _with_hausdorff_args(fn):
  """Fills the shared argument entries into the docstring's Args."""
  fn.__doc__ = (fn.__doc__ or "").replace("{args}", _HAUSDORFF_ARGS)
  return fn


def _hausdorff(logits, labels, alpha, activation, spatial_dims, include_background, where):
  checks.check_range("alpha", alpha, low=0.0)
  p, g, batch = _prepare(logits, labels, activation, spatial_dims, include_background, where)
  axes = tuple(range(len(batch), len(batch) + spatial_dims))
  dp = _distance_field(jax.lax.stop_gradient(p) > 0.5, axes, p.dtype)
  dg = _distance_field(jax.lax.stop_gradient(g) > 0.5, axes, p.dtype)
  zero = (jnp.asarray(alpha) == 0).astype(p.dtype)  # 0 ** alpha, 0 ** 0 = 1

  def power(d):  # d ** alpha, with a finite derivative in alpha at d = 0
    return jnp.where(d > 0, jnp.power(jnp.where(d > 0, d, 1.0), alpha), zero)

  return _image_mean(jnp.square(p - g) * (power(dp) + power(dg)), batch)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_hausdorff_args
def hausdorff_dt_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 2.0,
  include_background: bool = False,
  activation: str = "softmax",
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Hausdorff distance loss from distance transforms (Karimi and Salcudean).

  .. math::
     \ell = \frac{1}{|\Omega|\,C}\sum_{x, c} (p_{xc} - g_{xc})^2\,
       \big(d_{p}(x)^\alpha + d_{g}(x)^\alpha\big)

  with :math:`d_g(x)` the Euclidean distance from pixel :math:`x` to the
  nearest pixel of the other label of the target mask :math:`g > 1/2` of
  channel :math:`c` (the foreground's distance to the background inside, the
  background's to the foreground outside), :math:`d_p` the same for the
  thresholded prediction :math:`p > 1/2`, in pixels. A mask with a single
  label (empty or full) has distance 0 everywhere, so its errors cost
  nothing (MONAI's convention for empty masks). The distances are exact
  (a separable transform, ``O(pixels × side)`` work) and constants of the
  gradient, which flows through :math:`(p - g)^2`. Errors far from every
  boundary dominate, as they dominate the Hausdorff distance.

  Differences from MONAI's ``HausdorffDTLoss``: logits in (the activation is
  built in), channels-last, one value per image.

  Args:{args}

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, too few axes, negative ``alpha``, an unknown
      ``activation``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> labels = jnp.zeros((1, 1, 6), jnp.int32).at[0, 0, :2].set(1)  # [1 1 0 0 0 0]
    >>> logits = jnp.where(labels == 1, 9.0, -9.0)[..., None]
    >>> far = logits.at[0, 0, 5, 0].set(9.0)  # a false positive 4 pixels away
    >>> near = logits.at[0, 0, 2, 0].set(9.0)  # one next to the boundary
    >>> f = lambda x: float(jaxobj.hausdorff_dt_loss(x, labels, activation="sigmoid"))
    >>> print(f(far) > 5 * f(near) > 0)
    True

  References:
    Karimi and Salcudean, "Reducing the Hausdorff Distance in Medical Image
    Segmentation with Convolutional Neural Networks", IEEE TMI 2019. MONAI
    ``monai.losses.HausdorffDTLoss``.
  """
  values = _hausdorff(logits, labels, alpha, activation, spatial_dims, include_background, where)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
@_with_hausdorff_args
def log_hausdorff_dt_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 2.0,
  include_background: bool = False,
  activation: str = "softmax",
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""The logarithm of the Hausdorff distance-transform loss: :math:`\log(1 + \ell_{HD})`.

  .. math:: \ell = \log\big(1 + \ell_{HD}\big)

  per image, with :math:`\ell_{HD}` the per-image :func:`hausdorff_dt_loss`;
  the logarithm tames the large values far errors give early in training.

  Differences from MONAI's ``LogHausdorffDTLoss``: MONAI takes the
  logarithm of the batch mean, jaxobj of each image's loss, then reduces
  (the contract's per-image loss); otherwise as :func:`hausdorff_dt_loss`.

  Args:{args}

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`hausdorff_dt_loss`.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> labels = jnp.zeros((1, 1, 6), jnp.int32).at[0, 0, :2].set(1)
    >>> logits = jnp.where(labels == 1, 2.0, -2.0)[..., None]
    >>> hd = jaxobj.hausdorff_dt_loss(logits, labels, activation="sigmoid")
    >>> log_hd = jaxobj.log_hausdorff_dt_loss(logits, labels, activation="sigmoid")
    >>> print(bool(jnp.allclose(log_hd, jnp.log1p(hd))))
    True

  References:
    Karimi and Salcudean, IEEE TMI 2019 (see :func:`hausdorff_dt_loss`).
    MONAI ``monai.losses.LogHausdorffDTLoss``.
  """
  values = _hausdorff(logits, labels, alpha, activation, spatial_dims, include_background, where)
  return reduce_loss(jnp.log1p(values), where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Class distances, class imbalance and calibration.


def _safe_power(u, exponent):
  """``u ** exponent`` for ``u >= 0``, with a zero (not infinite) derivative at 0."""
  pos = u > 0
  zero = (jnp.asarray(exponent) == 0).astype(u.dtype)
  return jnp.where(pos, jnp.power(jnp.where(pos, u, 1.0), exponent), zero)


def _cross_entropy_terms(g, log_p):
  """``-g log p`` per class, 0 where ``g == 0`` (also for a class ruled out with
  a -inf logit); NaN targets stay NaN."""
  absent = g == 0
  return jnp.where(absent, 0.0, -g * jnp.where(absent, 0.0, log_p))


def _softmax_classes(x, loss):
  if x.shape[-1] < 2:
    raise ValueError(
      f"{loss} needs at least 2 classes (class 0 the background), got logits.shape={x.shape}; "
      f"for one binary channel stack a zero background logit: "
      f"jnp.concatenate([jnp.zeros_like(logits), logits], -1)."
    )
  return jax.nn.log_softmax(x, axis=-1)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def generalized_wasserstein_dice_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  dist_matrix: ArrayLike | None = None,
  smooth_nr: float | ArrayLike = 1e-5,
  smooth_dr: float | ArrayLike = 1e-5,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized Wasserstein Dice loss: Dice with errors measured by a distance between classes.

  .. math::
     W_i = \sum_{l,k} p_{il} M_{lk} g_{ik},\qquad
     \mathrm{TP} = \sum_i \sum_l g_{il}\,\alpha_l(\alpha_l - W_i),\qquad
     \ell = 1 - \frac{2\,\mathrm{TP} + s_{nr}}{2\,\mathrm{TP} + \sum_i W_i + s_{dr}}

  over the pixels of one image, with :math:`p = \operatorname{softmax}(x)`,
  :math:`M` the class distance matrix (``dist_matrix``, zero diagonal; for a
  one-hot target :math:`W_i` is the Wasserstein distance between
  :math:`p_i` and the true class), and :math:`\alpha_l = M_{l0}` each
  class's distance to the background (class 0), so correctly found
  background counts as no true positive. Confusing two close classes (two
  tumour sub-regions) costs less than confusing a class with the
  background. Without ``dist_matrix`` every pair of classes is at distance 1
  (:math:`W_i = 1 - p_{i,y_i}`, a Dice loss over the foreground). Evaluated
  as :math:`(\sum W + s_{dr} - s_{nr}) / (2\mathrm{TP} + \sum W + s_{dr})`;
  a zero denominator gives 0.

  Differences from MONAI's ``GeneralizedWassersteinDiceLoss``: logits in
  (the softmax is built in), channels-last, one value per image; the
  weights :math:`\alpha_l = M_{l0}` are the paper's (MONAI's default
  weighting is 1 for every foreground class, the same when the foreground
  classes are at distance 1 from the background); no ``"GDL"`` weighting.

  Args:
    logits: float ``(..., *spatial, C)``, ``C >= 2``, class 0 the background.
    labels: integer label map ``(..., *spatial)`` or targets shaped like
      ``logits``; NaN loss for unmasked labels outside ``[0, C)``.
    dist_matrix: ``(C, C)`` non-negative class distances with a zero
      diagonal, usually scaled to a maximum of 1 (traceable); default
      ``1 - I``.
    smooth_nr, smooth_dr: non-negative smoothing (traceable).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, ``C < 2``, ``dist_matrix`` not ``(C, C)``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> labels = jnp.array([[[0, 1, 2, 2]]])
    >>> m = jnp.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.2], [1.0, 0.2, 0.0]])
    >>> swap = 9.0 * jax.nn.one_hot(jnp.array([[[0, 1, 1, 1]]]), 3)  # 2 read as 1
    >>> lost = 9.0 * jax.nn.one_hot(jnp.array([[[0, 1, 0, 0]]]), 3)  # 2 read as 0
    >>> f = lambda x: float(jaxobj.generalized_wasserstein_dice_loss(x, labels, dist_matrix=m))
    >>> print(f(swap) < f(lost))
    True

  References:
    Fidon et al., "Generalised Wasserstein Dice Score for Imbalanced
    Multi-class Segmentation using Holistic Convolutional Networks",
    BrainLes (MICCAI) 2017. MONAI
    ``monai.losses.GeneralizedWassersteinDiceLoss``.
  """
  checks.check_range("smooth_nr", smooth_nr, low=0.0)
  checks.check_range("smooth_dr", smooth_dr, low=0.0)
  x, g, batch = _prepare_logits(logits, labels, spatial_dims, where)
  num_classes = x.shape[-1]
  p = jnp.exp(_softmax_classes(x, "generalized_wasserstein_dice_loss"))
  if dist_matrix is None:
    m = 1.0 - jnp.eye(num_classes, dtype=x.dtype)
  else:
    m = checks.as_float(dist_matrix, "dist_matrix").astype(x.dtype)
    if m.shape != (num_classes, num_classes):
      raise ValueError(
        f"dist_matrix must be (C, C) = ({num_classes}, {num_classes}), one distance per pair "
        f"of classes of logits, got dist_matrix.shape={m.shape}."
      )
  w = jnp.einsum("...l,lk,...k->...", p, m, g)
  alpha = m[:, 0]
  true_pos = _image_sum(jnp.sum(g * alpha * (alpha - w[..., None]), axis=-1), batch)
  errors = _image_sum(w, batch)
  values = numerics.safe_ratio(errors + smooth_dr - smooth_nr, 2.0 * true_pos + errors + smooth_dr)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def asymmetric_unified_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  weight: float | ArrayLike = 0.5,
  delta: float | ArrayLike = 0.7,
  gamma: float | ArrayLike = 0.5,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Asymmetric unified focal loss: asymmetric focal loss plus asymmetric focal Tversky loss.

  .. math::
     \ell = \lambda\,\ell_{aF} + (1 - \lambda)\,\ell_{aFT},\qquad
     \ell_{aF} = \frac{1}{N}\sum_i \Big(-(1-\delta)(1 - p_{i0})^{\gamma} g_{i0}\log p_{i0}
       - \delta\sum_{c\ge1} g_{ic}\log p_{ic}\Big)

  .. math::
     \ell_{aFT} = \frac{1}{C}\Big((1 - \mathrm{TI}_0)
       + \sum_{c\ge1}(1 - \mathrm{TI}_c)^{1-\gamma}\Big),\qquad
     \mathrm{TI}_c = \frac{\mathrm{TP}_c + \epsilon}{\mathrm{TP}_c + \delta\,\mathrm{FN}_c
       + (1-\delta)\,\mathrm{FP}_c + \epsilon}

  over the :math:`N` pixels of one image, with :math:`p = \operatorname{softmax}(x)`,
  soft counts per class, :math:`\epsilon = 10^{-7}`, class 0 the background
  and the others the rare (foreground) classes (Yeung et al.): the focal
  modulation is applied to the background only, so the rare classes keep
  their full gradient, and :math:`\delta` weighs false negatives over false
  positives. ``weight`` is :math:`\lambda`.

  Differences from MONAI's ``AsymmetricUnifiedFocalLoss``: logits in (the
  softmax is built in; MONAI clamps probabilities, jaxobj uses log-softmax),
  channels-last, one value per image, and any number of classes (MONAI's is
  binary: ``C = 2`` here is its case).

  Args:
    logits: float ``(..., *spatial, C)``, ``C >= 2``, class 0 the background.
    labels: integer label map ``(..., *spatial)`` or targets shaped like
      ``logits``; NaN loss for unmasked labels outside ``[0, C)``.
    weight: :math:`\lambda` in [0, 1] (traceable).
    delta: :math:`\delta` in [0, 1], the weight of the rare classes and of
      false negatives (traceable).
    gamma: :math:`\gamma` in [0, 1], the focal exponent (traceable).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, ``C < 2``, ``weight``, ``delta`` or
      ``gamma`` outside [0, 1].
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> labels = jnp.array([[[0, 0, 0, 1]]])
    >>> perfect = 12.0 * (2 * jax.nn.one_hot(labels, 2) - 1)
    >>> print(float(jaxobj.asymmetric_unified_focal_loss(perfect, labels)) < 1e-3)
    True

  References:
    Yeung et al., "Unified Focal loss: Generalising Dice and cross entropy-based
    losses to handle class imbalanced medical image segmentation",
    Computerized Medical Imaging and Graphics 2022. MONAI
    ``monai.losses.AsymmetricUnifiedFocalLoss``.
  """
  checks.check_range("weight", weight, low=0.0, high=1.0)
  checks.check_range("delta", delta, low=0.0, high=1.0)
  checks.check_range("gamma", gamma, low=0.0, high=1.0)
  x, g, batch = _prepare_logits(logits, labels, spatial_dims, where)
  log_p = _softmax_classes(x, "asymmetric_unified_focal_loss")
  p = jnp.exp(log_p)
  q = -jnp.expm1(log_p)  # 1 - p without cancellation near p = 1
  ce = _cross_entropy_terms(g, log_p)
  background = (1.0 - delta) * _safe_power(q[..., 0], gamma) * ce[..., 0]
  focal = _image_mean(background + delta * jnp.sum(ce[..., 1:], axis=-1), batch)
  pixels = tuple(range(len(batch), x.ndim - 1))
  tp = jnp.sum(p * g, axis=pixels)
  fn = jnp.sum(q * g, axis=pixels)
  fp = jnp.sum(p * (1.0 - g), axis=pixels)
  miss = delta * fn + (1.0 - delta) * fp
  one_minus_ti = miss / (tp + miss + 1e-7)  # 1 - TI, exact near TI = 1
  per_class = jnp.concatenate(
    [one_minus_ti[..., :1], _safe_power(one_minus_ti[..., 1:], 1.0 - gamma)], axis=-1
  )
  values = weight * focal + (1.0 - weight) * jnp.mean(per_class, axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


_NACL_DISTANCES = ("l1", "l2")


@register("segmentation", inputs=seg_examples.SEGMENTATION_LABELS)
def nacl_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.1,
  kernel_size: int = 3,
  kernel_type: str = "rectangular",
  sigma: float | ArrayLike = 1.0,
  distance: str = "l1",
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Neighbor-aware calibration (NACL): cross-entropy plus logits pulled to local label shares.

  .. math::
     \ell = \frac{1}{N}\sum_i -\log p_{i,y_i}
       + \frac{\alpha}{N C}\sum_{i,c} \big|x_{ic} - s_{ic}\big|^{q},\qquad
     s_{ic} = \frac{\sum_j k_{j-i}\, g_{jc}}{\sum_j k_{j-i}}

  over the :math:`N` pixels of one image, with :math:`p =
  \operatorname{softmax}(x)`, :math:`s_i` the share of each class among the
  labels in the window around pixel :math:`i` (a box of ``kernel_size``
  pixels per axis or a Gaussian of std ``sigma``, cut at the image borders)
  and :math:`q = 1` (``distance="l1"``) or 2 (``"l2"``). The penalty keeps
  the logits near the neighbourhood's label distribution, so predictions at
  boundaries, where labels mix, are not over-confident (Murugesan et al.);
  inside uniform regions it pulls the logits towards a one-hot vector.
  Classes ruled out with a ``-inf`` logit are left out of the penalty.

  Differences from MONAI's ``NACLLoss``: channels-last, one value per image,
  windows cut at the borders (MONAI pads the one-hot labels with zeros, so its
  border shares do not sum to 1).

  Args:
    logits: float ``(..., *spatial, C)``.
    labels: integer label map ``(..., *spatial)`` or targets shaped like
      ``logits``; NaN loss for unmasked labels outside ``[0, C)``.
    alpha: non-negative weight of the penalty (traceable).
    kernel_size: odd window size in pixels per axis (static).
    kernel_type: ``"rectangular"`` or ``"gaussian"`` (static).
    sigma: positive std of the Gaussian window, in pixels (traceable).
    distance: ``"l1"`` or ``"l2"`` (static).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images.

  Returns:
    The reduced loss; per-image losses for ``reduction="none"``.

  Raises:
    ValueError: bad label shape, an even ``kernel_size``, unknown
      ``kernel_type`` or ``distance``, negative ``alpha``, non-positive
      ``sigma``.
    TypeError: integer ``logits``; a float label map.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> labels = jnp.array([[[0, 0, 1, 1]]])
    >>> logits = jnp.zeros((1, 1, 4, 2))
    >>> ce = jaxobj.softmax_cross_entropy_with_integer_labels(logits[0, 0], labels[0, 0]).mean()
    >>> nacl = jaxobj.nacl_loss(logits, labels, alpha=0.0)
    >>> print(bool(jnp.allclose(nacl, ce)))
    True

  References:
    Murugesan et al., "Trust your neighbours: Penalty-based constraints for
    model calibration", MICCAI 2023; Murugesan et al., "Neighbor-Aware
    Calibration of Segmentation Networks with Penalty-Based Constraints",
    Medical Image Analysis 2024. MONAI ``monai.losses.NACLLoss``.
  """
  checks.check_range("alpha", alpha, low=0.0)
  checks.check_range("sigma", sigma, low=0.0, low_inclusive=False)
  checks.check_int("kernel_size", kernel_size, loss="nacl_loss")
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(
      f"kernel_size must be a positive odd int (the window is centred on a pixel), got "
      f"kernel_size={kernel_size!r}."
    )
  checks.check_choice("kernel_type", kernel_type, windows.KERNEL_TYPES)
  checks.check_choice("distance", distance, _NACL_DISTANCES)
  x, g, batch = _prepare_logits(logits, labels, spatial_dims, where)
  log_p = jax.nn.log_softmax(x, axis=-1)
  ce = _image_mean(jnp.sum(_cross_entropy_terms(g, log_p), axis=-1), batch)
  spatial = x.shape[len(batch) : -1]
  mats = [windows.window_matrix(n, kernel_size, kernel_type, x.dtype, sigma=sigma) for n in spatial]
  mass = windows.window_sums(jnp.ones(spatial + (1,), x.dtype), mats, 0)
  shares = windows.window_sums(g, mats, len(batch)) / mass
  # A class ruled out with a -inf logit has no logit to pull: it is left out.
  ruled_out = jnp.isneginf(x)
  gap = jnp.where(ruled_out, 0.0, x) - shares
  penalty = jnp.where(ruled_out, 0.0, jnp.abs(gap) if distance == "l1" else jnp.square(gap))
  values = ce + alpha * _image_mean(penalty, batch)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
