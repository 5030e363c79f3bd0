r"""Image losses: structural similarity, total variation, and losses in a feature space.

Images are channels-last, ``[*batch, height, width, channels]`` (Flax's
layout; transpose NCHW arrays with ``jnp.moveaxis(x, 1, -1)``), and the
per-element loss is one value per image, so ``where`` and ``weights`` index
images.

**Structural similarity** (:func:`ssim_loss`, :func:`ms_ssim_loss`) compares
local means, variances and covariances under a Gaussian window (Wang et al.
2004). **Total variation** (:func:`total_variation_loss`) penalizes the
differences between neighbouring pixels. **Feature-space losses**
(:func:`perceptual_loss`, :func:`style_loss`, :func:`feature_matching_loss`)
take a feature extractor ``features(x) -> list of arrays`` (a function, a Flax
NNX module, or a Linen module's ``apply`` with its variables bound) and compare
its activations layer by layer; they take a function, so the registry cannot
draw their inputs (``no_inputs``), and ``tests/test_image_losses.py`` checks
their contract.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import image as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "feature_matching_loss",
  "ms_ssim_loss",
  "perceptual_loss",
  "ssim_loss",
  "style_loss",
  "total_variation_loss",
]

# Wang et al. (2003), the weights of the five scales of MS-SSIM, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The constants K1, K2 of Wang et al. (2004): C1 = (K1 L)^2, C2 = (K2 L)^2.
K1, K2 = 0.01, 0.03
# The choices of perceptual_loss / feature_matching_loss ``distance``.
DISTANCES = ("squared", "absolute")


# --------------------------------------------------------------------------
# Shared preparation.


def _image_pair(predictions, targets, where, names=("predictions", "targets")):
  """Checked channels-last images of one shape, masked images set to 0."""
  x = checks.as_float(predictions, names[0])
  if x.ndim < 3:
    raise ValueError(
      f"{names[0]} must be images [*batch, height, width, channels] (channels last), got "
      f"{names[0]}.shape={x.shape}. Add a channel axis to grayscale images: x[..., None]."
    )
  checks.check_same_shape(names[0], x, names[1], targets)
  y = checks.as_target(targets, names[1], x)
  dtype = jnp.promote_types(x.dtype, y.dtype)
  shape = x.shape[:-3]
  x = masked_fill(where, x.astype(dtype), shape, axis_extra=3)
  y = masked_fill(where, y.astype(dtype), shape, axis_extra=3)
  return x, y, shape


def _check_window(window_size, height, width, fix):
  if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
    raise ValueError(f"window_size must be a positive int (static), got {window_size!r}.")
  if window_size > min(height, width):
    raise ValueError(
      f"window_size={window_size} is larger than the images ({height} x {width} at the "
      f"coarsest scale); {fix}"
    )


def _filter_matrix(n, size, sigma, dtype):
  """The ``[n - size + 1, n]`` matrix of a 1-D Gaussian filter, 'valid' positions only.

  Applying it along one axis is the separable half of the 2-D window; a matrix
  product differentiates to any order and needs no convolution layout.
  """
  k = jnp.arange(size, dtype=dtype) - (size - 1) / 2
  g = jnp.exp(-0.5 * jnp.square(k / sigma))
  g = g / jnp.sum(g)
  offset = jnp.arange(n)[None, :] - jnp.arange(n - size + 1)[:, None]
  inside = (offset >= 0) & (offset < size)
  return jnp.where(inside, g[jnp.clip(offset, 0, size - 1)], 0.0).astype(dtype)


def _ssim_terms(x, y, *, data_range, window_size, sigma):
  """Per-image, per-channel means of the SSIM map and of its contrast-structure
  part: two ``[*batch, channels]`` arrays."""
  h, w = x.shape[-3], x.shape[-2]
  fh = _filter_matrix(h, window_size, sigma, x.dtype)
  fw = _filter_matrix(w, window_size, sigma, x.dtype)
  # The (co)variances do not change when each channel is shifted by a
  # constant; shifting by its mean first avoids cancelling large squares. The
  # window sums to 1, so the shifted means are the means minus the shift.
  sx = jax.lax.stop_gradient(jnp.mean(x, axis=(-3, -2), keepdims=True))
  sy = jax.lax.stop_gradient(jnp.mean(y, axis=(-3, -2), keepdims=True))
  xc, yc = x - sx, y - sy
  stacked = jnp.stack([xc, yc, xc * xc, yc * yc, xc * yc])  # one filter pass for all five
  blurred = jnp.einsum("iw,...hwc->...hic", fw, jnp.einsum("ih,...hwc->...iwc", fh, stacked))
  mxc, myc, exx, eyy, exy = blurred
  vx = exx - mxc * mxc
  vy = eyy - myc * myc
  cxy = exy - mxc * myc
  mx, my = mxc + sx, myc + sy
  c1 = jnp.square(K1 * data_range)
  c2 = jnp.square(K2 * data_range)
  cs = (2.0 * cxy + c2) / (vx + vy + c2)
  luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
  return jnp.mean(luminance * cs, axis=(-3, -2)), jnp.mean(cs, axis=(-3, -2))


def _check_constants(data_range, sigma):
  checks.check_range("data_range", data_range, low=0.0, low_inclusive=False)
  checks.check_range("sigma", sigma, low=0.0, low_inclusive=False)


# --------------------------------------------------------------------------
# Structural similarity.


@register("generative", inputs=examples.IMAGE_PAIRS)
def ssim_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  data_range: float | ArrayLike = 1.0,
  window_size: int = 11,
  sigma: float | ArrayLike = 1.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""One minus the structural similarity (SSIM) of two images, Gaussian window.

  .. math::
     \ell(x, y) = 1 - \operatorname{mean}_{p, c}\,
       \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
            {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
     \qquad C_1 = (K_1 L)^2,\; C_2 = (K_2 L)^2

  where :math:`\mu`, :math:`\sigma^2` and :math:`\sigma_{xy}` are local means,
  variances and the covariance under a normalized Gaussian window
  (``window_size`` pixels, standard deviation ``sigma``), evaluated at every
  position :math:`p` where the window fits inside the image ('valid', as Wang
  et al.'s reference code and ``tf.image.ssim``), for each channel :math:`c`
  separately, then averaged. :math:`L` is the data range (1 for images in
  [0, 1], 255 for 8-bit) and :math:`K_1 = 0.01`, :math:`K_2 = 0.03` are Wang
  et al.'s constants (``jaxobj.losses.image.K1``, ``K2``). SSIM is 1 exactly
  when :math:`x = y`, symmetric in its arguments, and at most 1, so the loss
  lies in [0, 2].

  Args:
    predictions: images ``[*batch, height, width, channels]``, float.
    targets: images of the same shape.
    data_range: :math:`L > 0`, the range of the pixel values (traceable).
    window_size: side of the Gaussian window in pixels (static; at most the
      image's height and width).
    sigma: the window's standard deviation in pixels (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the batch shape; the mean divides by the number of unmasked images
      (or the sum of their weights).

  Returns:
    The reduced loss; one value per image for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, fewer than 3 axes, a window larger than the
      images, non-positive ``data_range`` or ``sigma``.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.linspace(0.0, 1.0, 16 * 16).reshape(1, 16, 16, 1)
    >>> print(abs(float(jaxobj.ssim_loss(x, x))) < 1e-6)
    True
    >>> print(jaxobj.ssim_loss(x, 1.0 - x) > 1.0)  # anti-correlated: SSIM < 0
    True

  References:
    Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From Error
    Visibility to Structural Similarity", IEEE TIP 2004.
  """
  _check_constants(data_range, sigma)
  x, y, _ = _image_pair(predictions, targets, where)
  _check_window(
    window_size, x.shape[-3], x.shape[-2], "pass a smaller window_size or larger images."
  )
  values = _ssim_values(x, y, *_as(x.dtype, data_range, sigma), window_size=window_size)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _as(dtype, *values):
  return tuple(jnp.asarray(v).astype(dtype) for v in values)


# Compiled once per shape (and window), so that eager calls, and eager
# gradients, reuse one program instead of dispatching every filter op.
@functools.partial(jax.jit, static_argnames=("window_size",))
def _ssim_values(x, y, data_range, sigma, *, window_size):
  ssim, _ = _ssim_terms(x, y, data_range=data_range, window_size=window_size, sigma=sigma)
  return 1.0 - jnp.mean(ssim, axis=-1)


@functools.partial(jax.jit, static_argnames=("window_size",))
def _ms_ssim_values(x, y, data_range, sigma, betas, *, window_size):
  scales = betas.shape[0]
  total = jnp.ones(x.shape[:-3] + x.shape[-1:], x.dtype)
  for j in range(scales):
    ssim, cs = _ssim_terms(x, y, data_range=data_range, window_size=window_size, sigma=sigma)
    total = total * _nonnegative_power(ssim if j == scales - 1 else cs, betas[j])
    if j < scales - 1:
      x, y = _downsample(x), _downsample(y)
  return 1.0 - jnp.mean(total, axis=-1)


def _nonnegative_power(v, power):
  """``relu(v) ** power`` with a finite gradient (0 for ``v <= 0``), NaN kept."""
  positive = v > 0
  out = jnp.where(positive, jnp.where(positive, v, 1.0) ** power, 0.0)
  return jnp.where(jnp.isnan(v), v, out)


def _downsample(a):
  """2 x 2 average pooling; an odd last row or column is dropped."""
  h, w = a.shape[-3] // 2 * 2, a.shape[-2] // 2 * 2
  a = a[..., :h, :w, :]
  a = a.reshape(a.shape[:-3] + (h // 2, 2, w // 2, 2, a.shape[-1]))
  return jnp.mean(a, axis=(-4, -2))


@register("generative", inputs=examples.MS_IMAGE_PAIRS)
def ms_ssim_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  data_range: float | ArrayLike = 1.0,
  scale_weights: Sequence[float] | ArrayLike = MS_SSIM_WEIGHTS,
  window_size: int = 11,
  sigma: float | ArrayLike = 1.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""One minus the multi-scale structural similarity (MS-SSIM) of two images.

  .. math::
     \ell(x, y) = 1 - \operatorname{mean}_c \Big(
       [\mathrm{SSIM}_M]_+^{\beta_M} \prod_{j=1}^{M-1} [\mathrm{cs}_j]_+^{\beta_j}\Big)

  where :math:`\mathrm{cs}_j` is the mean contrast-structure term
  :math:`\frac{2\sigma_{xy} + C_2}{\sigma_x^2 + \sigma_y^2 + C_2}` at scale
  :math:`j`, :math:`\mathrm{SSIM}_M` the full SSIM (:func:`ssim_loss`) at the
  coarsest scale, and each scale halves the previous one by 2 x 2 average
  pooling (an odd last row or column is dropped). The default weights
  :math:`\beta` are Wang et al.'s five, ``MS_SSIM_WEIGHTS`` (0.0448, 0.2856,
  0.3001, 0.2363, 0.1333). As in ``tf.image.ssim_multiscale``, negative
  terms are clipped at 0 (:math:`[\cdot]_+`) before the fractional powers, with
  gradient 0 there. The images must hold the window at the coarsest scale:
  height and width at least ``window_size * 2 ** (M - 1)`` (176 pixels with the
  defaults).

  Args:
    predictions: images ``[*batch, height, width, channels]``, float.
    targets: images of the same shape.
    data_range: :math:`L > 0`, the range of the pixel values (traceable).
    scale_weights: the exponents :math:`\beta_1, \dots, \beta_M`, finest scale
      first; their number is the number of scales (static length, values
      traceable).
    window_size: side of the Gaussian window in pixels (static).
    sigma: the window's standard deviation (traceable).
    where, weights, reduction: the loss contract over the batch shape.

  Returns:
    The reduced loss, in [0, 1]; one value per image for ``"none"``.

  Raises:
    ValueError: shapes differ, images too small for the window at the
      coarsest scale, no scale weights, non-positive ``data_range`` or
      ``sigma``.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> y = jax.random.uniform(jax.random.key(0), (1, 48, 48, 1))
    >>> print(jaxobj.ms_ssim_loss(y, y, scale_weights=(0.5, 0.5), window_size=7))
    0.0

  References:
    Wang, Simoncelli and Bovik, "Multiscale Structural Similarity for Image
    Quality Assessment", Asilomar 2003.
  """
  _check_constants(data_range, sigma)
  checks.check_real("scale_weights", scale_weights, loss="ms_ssim_loss")
  betas = jnp.atleast_1d(jnp.asarray(scale_weights))
  if betas.ndim != 1 or betas.shape[0] < 1:
    raise ValueError(
      f"scale_weights must be a non-empty sequence of exponents, one per scale, got "
      f"scale_weights={scale_weights!r}."
    )
  scales = betas.shape[0]
  x, y, _ = _image_pair(predictions, targets, where)
  size = window_size * 2 ** (scales - 1) if isinstance(window_size, int) else 0
  coarse = (x.shape[-3] >> (scales - 1), x.shape[-2] >> (scales - 1))
  _check_window(
    window_size,
    *coarse,
    f"with {scales} scales the images need at least {size} x {size} pixels, got "
    f"{x.shape[-3]} x {x.shape[-2]}: pass a smaller window_size or fewer scale_weights.",
  )
  values = _ms_ssim_values(x, y, *_as(x.dtype, data_range, sigma, betas), window_size=window_size)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Total variation.


@register(
  "generative",
  inputs=examples.IMAGES,
  zero_hessian="the default anisotropic form sums absolute differences (piecewise linear)",
)
def total_variation_loss(
  images: ArrayLike,
  *,
  isotropic: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Total variation of images: the summed size of the differences between neighbouring pixels.

  .. math::
     \text{anisotropic:}\;\; \sum_{i,j,c} |x_{i+1,j,c} - x_{i,j,c}|
       + |x_{i,j+1,c} - x_{i,j,c}|,
     \qquad
     \text{isotropic:}\;\; \sum_{i,j,c}
       \sqrt{(x_{i+1,j,c} - x_{i,j,c})^2 + (x_{i,j+1,c} - x_{i,j,c})^2}

  summed over each image (as ``tf.image.total_variation``; divide by the pixel
  count, or scale the term's weight, for a per-pixel value). The anisotropic
  form (the default) takes each difference separately; the isotropic form of
  Rudin, Osher and Fatemi takes the length of the gradient at each pixel,
  with the difference past the last row or column taken as 0. A regularizer
  on generated or restored images: it favours piecewise-constant images while
  keeping edges. The isotropic form's gradient at a pixel whose neighbours
  all equal it is taken as 0 (the length's subgradient there).

  Args:
    images: ``[*batch, height, width, channels]``, float.
    isotropic: the isotropic form (static; default anisotropic).
    where, weights, reduction: the loss contract over the batch shape.

  Returns:
    The reduced total variation; one value per image for ``"none"``.

  Raises:
    ValueError: fewer than 3 axes.
    TypeError: integer ``images``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 1.0], [2.0, 0.0]])[None, :, :, None]
    >>> print(jaxobj.total_variation_loss(x))
    6.0
    >>> print(jaxobj.total_variation_loss(x, isotropic=True))
    5.236068

  References:
    Rudin, Osher and Fatemi, "Nonlinear total variation based noise removal
    algorithms", Physica D 1992; Mahendran and Vedaldi, "Understanding Deep
    Image Representations by Inverting Them", CVPR 2015.
  """
  checks.check_bool("isotropic", isotropic, loss="total_variation_loss")
  x = checks.as_float(images, "images")
  if x.ndim < 3:
    raise ValueError(
      f"images must be [*batch, height, width, channels] (channels last), got "
      f"images.shape={x.shape}. Add a channel axis to grayscale images: x[..., None]."
    )
  shape = x.shape[:-3]
  x = masked_fill(where, x, shape, axis_extra=3)
  dh = x[..., 1:, :, :] - x[..., :-1, :, :]
  dw = x[..., :, 1:, :] - x[..., :, :-1, :]
  axes = (-3, -2, -1)
  if not isotropic:
    values = jnp.sum(jnp.abs(dh), axis=axes) + jnp.sum(jnp.abs(dw), axis=axes)
  else:
    pad = [(0, 0)] * (x.ndim - 3)
    dh = jnp.pad(dh, pad + [(0, 1), (0, 0), (0, 0)])
    dw = jnp.pad(dw, pad + [(0, 0), (0, 1), (0, 0)])
    sq = dh * dh + dw * dw
    # Double where: the length's derivative is infinite at 0. NaN stays NaN.
    positive = sq > 0
    length = jnp.where(
      positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), jnp.where(jnp.isnan(sq), sq, 0.0)
    )
    values = jnp.sum(length, axis=axes)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Losses in the space of a feature extractor.

Features = Callable[[jax.Array], Any]


def _layer_weights(layer_weights, count):
  if layer_weights is None:
    return [1.0] * count
  checks.check_real("layer_weights", layer_weights)
  w = list(layer_weights) if isinstance(layer_weights, (list, tuple)) else None
  if w is None:
    arr = jnp.asarray(layer_weights)
    if arr.ndim != 1:
      raise ValueError(
        f"layer_weights must be one weight per layer, got layer_weights.shape={arr.shape}."
      )
    w = [arr[i] for i in range(arr.shape[0])]
  if len(w) != count:
    raise ValueError(
      f"layer_weights has {len(w)} entries but features returned {count} layers: pass one "
      f"weight per layer, in the order features returns them."
    )
  return w


def _layers(features, x, name):
  """``features(x)`` as a flat list of float arrays, each with ``x``'s batch axis first."""
  out = jax.tree.leaves(features(x))
  if not out:
    raise ValueError(f"features({name}) returned no arrays; it must return a list of layers.")
  layers = []
  for i, a in enumerate(out):
    a = jnp.asarray(a)
    if a.ndim < 1 or a.shape[0] != x.shape[0]:
      raise ValueError(
        f"layer {i} of features({name}) has shape {a.shape}, without the batch axis of "
        f"{name}.shape={x.shape} first: features must map a batch to per-sample features."
      )
    layers.append(a.astype(jnp.promote_types(a.dtype, jnp.float32)))
  return layers


def _feature_pair(features, predictions, targets, where, names):
  """Masked samples set to 0, then the extractor's layers of both batches."""
  unbound_linen = hasattr(features, "init") and getattr(features, "scope", 0) is None
  if not callable(features) or unbound_linen:
    raise TypeError(
      f"features must be a function (or a Flax module) mapping a batch to a list of "
      f"feature arrays, got {type(features).__name__}. For a Linen module pass "
      f"functools.partial(module.apply, variables)."
    )
  x = checks.as_float(predictions, names[0])
  if x.ndim < 1:
    raise ValueError(f"{names[0]} must have a leading batch axis, got {names[0]}.shape=().")
  checks.check_same_shape(names[0], x, names[1], targets)
  y = checks.as_target(targets, names[1], x).astype(x.dtype)
  shape = x.shape[:1]
  x = masked_fill(where, x, shape, axis_extra=x.ndim - 1)
  y = masked_fill(where, y, shape, axis_extra=y.ndim - 1)
  fx, fy = _layers(features, x, names[0]), _layers(features, y, names[1])
  if len(fx) != len(fy) or any(a.shape != b.shape for a, b in zip(fx, fy, strict=True)):
    raise ValueError(
      f"features returned different layer shapes for {names[0]} and {names[1]}: "
      f"{[a.shape for a in fx]} and {[b.shape for b in fy]}."
    )
  return fx, fy, shape


def _per_sample_mean(a):
  return jnp.mean(a, axis=tuple(range(1, a.ndim))) if a.ndim > 1 else a


def _layer_distance(distance, fx, fy, layer_weights):
  checks.check_choice("distance", distance, DISTANCES)
  total = 0.0
  for w, a, b in zip(_layer_weights(layer_weights, len(fx)), fx, fy, strict=True):
    d = a - b
    total = total + w * _per_sample_mean(d * d if distance == "squared" else jnp.abs(d))
  return total


@register("generative", no_inputs="takes the feature extractor, a function")
def perceptual_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  features: Features,
  layer_weights: Sequence[float] | ArrayLike | None = None,
  distance: str = "squared",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Perceptual loss: the distance between a feature extractor's activations on two images.

  .. math::
     \ell(x, y) = \sum_l w_l\, \operatorname{mean}\big(
       d(\phi_l(x) - \phi_l(y))\big),
     \qquad d(u) = u^2 \text{ (squared) or } |u| \text{ (absolute)}

  where :math:`\phi_l` is layer :math:`l` of the feature extractor and the
  mean runs over each sample's feature entries (Johnson et al.'s
  normalization by :math:`C_l H_l W_l`). Any extractor works: a pretrained
  VGG's activations as in the paper, or a network of your own. ``features`` is
  called once on each batch (masked samples replaced by zeros); differentiate
  the loss with respect to the generator's parameters through
  ``predictions``, and keep the extractor fixed (its parameters closed over).

  Args:
    predictions: generated images (or any inputs of ``features``), float
      ``[batch, ...]`` with one leading batch axis.
    targets: reference inputs of the same shape.
    features: ``features(x) -> list of arrays`` (any pytree of arrays: a
      list, a tuple, a dict in a fixed order), each ``[batch, ...]``; a Flax
      NNX module that returns its intermediate activations, or
      ``functools.partial(linen_module.apply, variables)``. It must not mix
      samples (no batch statistics).
    layer_weights: one weight :math:`w_l` per layer, in the order
      ``features`` returns them (default 1 each: the layers' sum).
    distance: ``"squared"`` (default, Johnson et al.) or ``"absolute"``.
    where, weights, reduction: the loss contract over the batch axis.

  Returns:
    The reduced loss; one value per sample for ``"none"``.

  Raises:
    ValueError: shapes differ, a layer without the batch axis first, a
      wrong number of ``layer_weights``, unknown ``distance``.
    TypeError: ``features`` not callable, integer ``predictions``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> kernel = jax.random.normal(jax.random.key(0), (4, 8))
    >>> def features(x):  # two layers of a fixed random network
    ...   h = jnp.tanh(x @ kernel)
    ...   return [x, h]
    >>> x = jnp.ones((2, 4))
    >>> print(jaxobj.perceptual_loss(x, x, features=features))
    0.0
    >>> print(jaxobj.perceptual_loss(x, 0.0 * x, features=features, layer_weights=[1.0, 0.0]))
    1.0

  References:
    Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style
    Transfer and Super-Resolution", ECCV 2016; Dosovitskiy and Brox,
    "Generating Images with Perceptual Similarity Metrics based on Deep
    Networks", NeurIPS 2016.
  """
  checks.check_choice("distance", distance, DISTANCES)
  fx, fy, _ = _feature_pair(features, predictions, targets, where, ("predictions", "targets"))
  values = _layer_distance(distance, fx, fy, layer_weights)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _gram(a):
  """Per-sample Gram matrix of channels-last features, divided by the positions."""
  f = a.reshape(a.shape[0], -1, a.shape[-1]) if a.ndim > 1 else a[:, None, None]
  return jnp.einsum("bmi,bmj->bij", f, f) / f.shape[1]


@register("generative", no_inputs="takes the feature extractor, a function")
def style_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  features: Features,
  layer_weights: Sequence[float] | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Style loss: the distance between the Gram matrices of a network's features of two images.

  .. math::
     \ell(x, y) = \sum_l w_l\, \frac{1}{4 C_l^2 M_l^2}
       \sum_{i,j} \big(G^l_{ij}(x) - G^l_{ij}(y)\big)^2,
     \qquad G^l_{ij}(x) = \sum_{m} \phi_l(x)_{m i}\, \phi_l(x)_{m j}

  Gatys et al.'s style reconstruction loss: :math:`\phi_l(x)` is layer
  :math:`l` of the extractor, channels last, with :math:`M_l` positions
  (height times width) and :math:`C_l` channels. The Gram matrix keeps which
  channels fire together and forgets where, so matching it transfers texture
  and style but not layout. Computed as
  :math:`\tfrac14\operatorname{mean}_{ij}\big((G^l(x) - G^l(y)) / M_l\big)^2`,
  the same value without squaring large sums.

  Args:
    predictions: generated images, float ``[batch, ...]``.
    targets: style images of the same shape (repeat one style image over the
      batch with ``jnp.broadcast_to``).
    features: ``features(x) -> list of arrays`` as in
      :func:`perceptual_loss`, each layer channels-last ``[batch, ..., C_l]``
      (a ``[batch, C]`` layer is one position).
    layer_weights: one weight per layer (default 1 each).
    where, weights, reduction: the loss contract over the batch axis.

  Returns:
    The reduced loss; one value per sample for ``"none"``.

  Raises:
    ValueError: shapes differ, a layer without the batch axis first, a
      wrong number of ``layer_weights``.
    TypeError: ``features`` not callable, integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)
    >>> flipped = x[:, ::-1, ::-1]  # same pixels elsewhere: the same Gram matrix
    >>> print(jaxobj.style_loss(x, flipped, features=lambda a: [a]))
    0.0

  References:
    Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural
    Networks", CVPR 2016.
  """
  fx, fy, _ = _feature_pair(features, predictions, targets, where, ("predictions", "targets"))
  values = 0.0
  for w, a, b in zip(_layer_weights(layer_weights, len(fx)), fx, fy, strict=True):
    values = values + w * 0.25 * _per_sample_mean(jnp.square(_gram(a) - _gram(b)))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("generative", no_inputs="takes the discriminator's feature extractor, a function")
def feature_matching_loss(
  fake: ArrayLike,
  real: ArrayLike,
  *,
  features: Features,
  layer_weights: Sequence[float] | ArrayLike | None = None,
  distance: str = "absolute",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""GAN feature matching: the distance between discriminator features of fake and real samples.

  .. math::
     \ell(\tilde x, x) = \sum_l w_l\, \operatorname{mean}\big|
       D_l(\tilde x) - D_l(x)\big|

  with :math:`D_l` the discriminator's layer :math:`l` and the mean over each
  sample's entries: the paired form of pix2pixHD (Wang et al. 2018), where each
  generated sample :math:`\tilde x` has its real counterpart :math:`x` (image
  translation, super-resolution); the generator minimizes it beside its
  adversarial loss. ``distance="squared"`` takes squares instead. Salimans et
  al.'s unpaired form matches the batch means of the features instead:
  ``jaxobj.squared_error(f(fake).mean(0), f(real).mean(0))`` for a layer ``f``.
  The discriminator is held fixed here: stop its gradient (or differentiate
  only with respect to the generator's parameters).

  Args:
    fake: generated samples, float ``[batch, ...]``.
    real: the paired real samples, same shape.
    features: the discriminator's intermediate layers, ``features(x) -> list
      of arrays`` each ``[batch, ...]`` (no batch statistics).
    layer_weights: one weight per layer (default 1 each; pix2pixHD uses
      :math:`1 / L` per layer and discriminator).
    distance: ``"absolute"`` (default, pix2pixHD) or ``"squared"``.
    where, weights, reduction: the loss contract over the batch axis.

  Returns:
    The reduced loss; one value per sample for ``"none"``.

  Raises:
    ValueError: shapes differ, a layer without the batch axis first, a
      wrong number of ``layer_weights``, unknown ``distance``.
    TypeError: ``features`` not callable, integer ``fake``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> features = lambda x: [x, jnp.maximum(x, 0.0)]
    >>> fake, real = jnp.array([[1.0, -1.0]]), jnp.array([[0.0, 0.0]])
    >>> print(jaxobj.feature_matching_loss(fake, real, features=features))
    1.5

  References:
    Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016;
    Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation
    with Conditional GANs" (pix2pixHD), CVPR 2018.
  """
  checks.check_choice("distance", distance, DISTANCES)
  fx, fy, _ = _feature_pair(features, fake, real, where, ("fake", "real"))
  values = _layer_distance(distance, fx, fy, layer_weights)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
