r"""Image-registration losses: image similarities and deformation-field regularizers.

**Layout: channels-last.** Images are ``(*batch, *spatial, C)`` and dense
displacement fields (DDF) ``(*batch, *spatial, D)`` with ``spatial_dims``
spatial axes (2 by default; 3 for volumes) and, for a field, one displacement
component per spatial axis (``D == spatial_dims``, component ``c`` along
spatial axis ``c``). MONAI is channels-first, ``(B, C, H, W)``: move the axis
with ``jnp.moveaxis(x, 1, -1)``. All leading axes before the spatial ones are
batch axes.

**Per-element loss.** One value per image (or field): the batch shape, on
which ``where`` and ``weights`` act. Inside an image the values are means over
pixels and channels, so ``"mean"`` equals MONAI's mean over the batch.

**Similarities** (:func:`local_normalized_cross_correlation_loss`,
:func:`global_mutual_information_loss`) compare a warped moving image with the
fixed image; they are negative (the larger the similarity, the lower the
loss) and 0 for constant images. **Regularizers** (:func:`bending_energy_loss`,
:func:`diffusion_loss`) penalize the first or second derivatives of the
displacement field, taken by central finite differences at the interior
pixels (as in DeepReg and MONAI).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, windows
from jaxobj._src.examples import registration as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "bending_energy_loss",
  "diffusion_loss",
  "global_mutual_information_loss",
  "local_normalized_cross_correlation_loss",
]

# The window shapes of local_normalized_cross_correlation_loss.
KERNEL_TYPES = windows.KERNEL_TYPES


# --------------------------------------------------------------------------
# Shared preparation.


def _check_spatial_dims(spatial_dims):
  if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims < 1:
    raise ValueError(
      f"spatial_dims must be a positive int (2 for images, 3 for volumes), got "
      f"spatial_dims={spatial_dims!r}."
    )


def _array(x, name, spatial_dims, what):
  """A float ``(*batch, *spatial, C)`` array, checked; returns it and its batch shape."""
  _check_spatial_dims(spatial_dims)
  a = checks.as_float(x, name)
  if a.ndim < spatial_dims + 1:
    raise ValueError(
      f"{name} must be {what} (*batch, *spatial, channels) with spatial_dims={spatial_dims} "
      f"spatial axes and the channel axis last, got {name}.shape={a.shape}. Add a channel "
      f"axis with {name}[..., None]."
    )
  return a, a.shape[: a.ndim - spatial_dims - 1]


def _field(ddf, spatial_dims, where, normalize, need, loss):
  """The checked displacement field, masked fields zeroed, in normalized units on request."""
  u, batch = _array(ddf, "ddf", spatial_dims, "a displacement field")
  spatial = u.shape[len(batch) : -1]
  if min(spatial) < need:
    raise ValueError(
      f"{loss} takes finite differences over {need} pixels: every spatial axis of ddf needs "
      f"at least {need} pixels, got ddf.shape={u.shape} (spatial axes {spatial})."
    )
  if normalize:
    if u.shape[-1] != spatial_dims:
      raise ValueError(
        f"normalize=True scales displacement component c by the size of spatial axis c: "
        f"ddf.shape[-1] must equal spatial_dims={spatial_dims}, got ddf.shape={u.shape}."
      )
    u = u / jnp.asarray(spatial, u.dtype)
  u = masked_fill(where, u, batch, axis_extra=spatial_dims + 1)
  return u, batch, spatial


def _central(u, axis, spatial_axes, scale):
  """Central difference ``(u[i+1] - u[i-1]) / 2`` along ``axis``, the other spatial
  axes cropped to their interior pixels (so every difference has one shape)."""
  n = u.ndim
  hi = [slice(None)] * n
  lo = [slice(None)] * n
  for a in spatial_axes:
    hi[a] = lo[a] = slice(1, -1)
  hi[axis], lo[axis] = slice(2, None), slice(None, -2)
  return (u[tuple(hi)] - u[tuple(lo)]) * (0.5 * scale)


def _per_image_mean(a, batch):
  return jnp.mean(a, axis=tuple(range(len(batch), a.ndim)))


def _with_nan_of(values, u, batch):
  """NaN where the field has a NaN the finite differences never read (a corner
  pixel): a training loop must see it."""
  bad = jnp.any(jnp.isnan(u), axis=tuple(range(len(batch), u.ndim)))
  return jnp.where(bad, jnp.nan, values)


# --------------------------------------------------------------------------
# Deformation-field regularizers.


@register("registration", inputs=examples.DEFORMATION_FIELDS)
def bending_energy_loss(
  ddf: ArrayLike,
  *,
  normalize: bool = False,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Bending energy of a displacement field: the mean squared second derivatives.

  .. math::
     \ell = \frac{1}{|\Omega'|\,D}\sum_{x\in\Omega'}\sum_{c=1}^{D}
       \Big(\sum_{a} (\partial_a^2 u_c)^2
         + 2\sum_{a<b} (\partial_a\partial_b u_c)^2\Big)

  with :math:`\partial_a` the central difference :math:`(u_{i+1} - u_{i-1})/2`
  along spatial axis :math:`a`, applied twice (so the pure second derivative
  spans 5 pixels), at the pixels :math:`\Omega'` two away from every border.
  The mean is over those pixels and the channels of each field (MONAI's
  ``BendingEnergyLoss`` mean, per field). ``normalize=True`` measures
  displacements and coordinates as fractions of the image size (component
  :math:`c` divided by :math:`n_c`, the derivative along axis :math:`a`
  multiplied by :math:`n_a`), so the value hardly depends on the sampling
  resolution; it needs one component per spatial axis.

  Args:
    ddf: ``(*batch, *spatial, D)`` float displacement field, channels last;
      at least 5 pixels along each spatial axis.
    normalize: measure in units of the image size (static).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over fields (the batch shape).

  Returns:
    The reduced loss; one value per field for ``reduction="none"``.

  Raises:
    ValueError: too few axes, a spatial axis shorter than 5, or (with
      ``normalize``) ``D != spatial_dims``.
    TypeError: integer ``ddf``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> i, j = jnp.meshgrid(jnp.arange(5.0), jnp.arange(5.0), indexing="ij")
    >>> affine = jnp.stack([i + 2 * j, -3 * j], -1)[None]  # no bending
    >>> print(jaxobj.bending_energy_loss(affine))
    0.0
    >>> quadratic = jnp.stack([i * i, jnp.zeros_like(i)], -1)[None]  # d2/di2 = 2
    >>> print(jaxobj.bending_energy_loss(quadratic))  # (2^2 + 0) / 2 channels
    2.0

  References:
    Rueckert et al., "Nonrigid registration using free-form deformations:
    application to breast MR images", IEEE TMI 1999. MONAI
    ``monai.losses.BendingEnergyLoss``.
  """
  checks.check_bool("normalize", normalize, loss="bending_energy_loss")
  u, batch, spatial = _field(ddf, spatial_dims, where, normalize, 5, "bending_energy_loss")
  axes = tuple(range(len(batch), len(batch) + spatial_dims))
  scale = [float(n) if normalize else 1.0 for n in spatial]
  energy = jnp.zeros((), u.dtype)
  for i, a in enumerate(axes):
    first = _central(u, a, axes, scale[i])
    for j in range(i, spatial_dims):
      second = _central(first, axes[j], axes, scale[j])
      energy = energy + (1.0 if j == i else 2.0) * jnp.square(second)
  values = _with_nan_of(_per_image_mean(energy, batch), u, batch)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("registration", inputs=examples.DEFORMATION_FIELDS)
def diffusion_loss(
  ddf: ArrayLike,
  *,
  normalize: bool = False,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Diffusion regularizer of a displacement field: the mean squared first derivatives.

  .. math::
     \ell = \frac{1}{|\Omega'|\,D}\sum_{x\in\Omega'}\sum_{c=1}^{D}\sum_{a}
       (\partial_a u_c)^2

  with :math:`\partial_a` the central difference :math:`(u_{i+1} - u_{i-1})/2`
  along spatial axis :math:`a`, at the interior pixels :math:`\Omega'` (one away
  from every border), averaged over those pixels and the channels of each
  field (MONAI's ``DiffusionLoss``). ``normalize`` as in
  :func:`bending_energy_loss`.

  Args:
    ddf: ``(*batch, *spatial, D)`` float displacement field, channels last;
      at least 3 pixels along each spatial axis.
    normalize: measure in units of the image size (static).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over fields (the batch shape).

  Returns:
    The reduced loss; one value per field for ``reduction="none"``.

  Raises:
    ValueError: too few axes, a spatial axis shorter than 3, or (with
      ``normalize``) ``D != spatial_dims``.
    TypeError: integer ``ddf``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> i, j = jnp.meshgrid(jnp.arange(4.0), jnp.arange(4.0), indexing="ij")
    >>> shift = jnp.stack([jnp.ones_like(i), 2 * jnp.ones_like(i)], -1)[None]
    >>> print(jaxobj.diffusion_loss(shift))  # a translation costs nothing
    0.0
    >>> stretch = jnp.stack([2 * i, jnp.zeros_like(i)], -1)[None]  # d/di = 2
    >>> print(jaxobj.diffusion_loss(stretch))  # (2^2 + 0) / 2 channels
    2.0

  References:
    Fischer and Modersitzki, "Fast diffusion registration", Contemporary
    Mathematics 2002. MONAI ``monai.losses.DiffusionLoss``.
  """
  checks.check_bool("normalize", normalize, loss="diffusion_loss")
  u, batch, spatial = _field(ddf, spatial_dims, where, normalize, 3, "diffusion_loss")
  axes = tuple(range(len(batch), len(batch) + spatial_dims))
  energy = jnp.zeros((), u.dtype)
  for i, a in enumerate(axes):
    scale = float(spatial[i]) if normalize else 1.0
    energy = energy + jnp.square(_central(u, a, axes, scale))
  values = _with_nan_of(_per_image_mean(energy, batch), u, batch)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Image similarities.


def _image_pair(predictions, targets, spatial_dims, where):
  x, batch = _array(predictions, "predictions", spatial_dims, "images")
  checks.check_same_shape("predictions", x, "targets", targets)
  y = checks.as_target(targets, "targets", x)
  dtype = jnp.promote_types(x.dtype, y.dtype)
  x = masked_fill(where, x.astype(dtype), batch, axis_extra=spatial_dims + 1)
  y = masked_fill(where, y.astype(dtype), batch, axis_extra=spatial_dims + 1)
  return x, y, batch


@register("registration", inputs=examples.REGISTRATION_PAIRS)
def local_normalized_cross_correlation_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  kernel_size: int = 3,
  kernel_type: str = "rectangular",
  smooth_nr: float | ArrayLike = 0.0,
  smooth_dr: float | ArrayLike = 1e-5,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Local normalized cross-correlation (LNCC): minus the mean squared local correlation.

  .. math::
     \ell = -\frac{1}{|\Omega|\,C}\sum_{x,c}
       \frac{\operatorname{cov}_x(p, t)^2 + s_{nr}}
            {\operatorname{var}_x(p)\,\operatorname{var}_x(t) + s_{dr}}

  with the moments of each channel over the window centred at pixel
  :math:`x`, weighted by the kernel :math:`k` (a box of ``kernel_size`` pixels
  per axis, or a sampled Gaussian with :math:`\sigma` = ``kernel_size / 3``):
  :math:`\operatorname{cov}_x(p, t) = \frac{\sum_y k_{y-x} p_y t_y}{\sum_y
  k_{y-x}} - \bar p_x \bar t_x`, the sums over the pixels of the window inside
  the image. The loss lies in :math:`[-1, 0]` (with :math:`s_{nr} = 0`):
  -1 where the images are locally affine functions of each other, 0 where
  either is locally constant (constant images give 0). Invariant to a
  brightness shift and scale of either image, up to the smoothing terms.

  Differences from MONAI's ``LocalNormalizedCrossCorrelationLoss``: at the
  borders the window is cut to the image (MONAI pads with zeros, which
  treats the outside as black); the moments are window means, so
  ``smooth_nr`` and ``smooth_dr`` are in squared intensity units (MONAI's
  window sums scale them by the window volume); no triangular kernel.

  Args:
    predictions: ``(*batch, *spatial, C)`` float images (the warped moving image).
    targets: the fixed images, the same shape.
    kernel_size: odd window size in pixels along each spatial axis (static).
    kernel_type: ``"rectangular"`` (a box) or ``"gaussian"`` (static).
    smooth_nr, smooth_dr: non-negative smoothing of the numerator and
      denominator (traceable).
    spatial_dims: number of spatial axes (2 or 3; static).
    where, weights, reduction: the loss contract over images (the batch shape).

  Returns:
    The reduced loss; one value per image for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, too few axes, an even or non-positive
      ``kernel_size``, an unknown ``kernel_type``, negative smoothing.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> t = jnp.arange(36.0).reshape(1, 6, 6, 1) % 7
    >>> print(round(float(jaxobj.local_normalized_cross_correlation_loss(3 * t + 1, t)), 4))
    -1.0
    >>> print(jaxobj.local_normalized_cross_correlation_loss(jnp.ones_like(t), t))
    -0.0

  References:
    Avants et al., "Symmetric diffeomorphic image registration with
    cross-correlation", Medical Image Analysis 2008. MONAI
    ``monai.losses.LocalNormalizedCrossCorrelationLoss``.
  """
  name = "local_normalized_cross_correlation_loss"
  checks.check_int("kernel_size", kernel_size, loss=name)
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(
      f"kernel_size must be a positive odd int (the window is centred on a pixel), got "
      f"kernel_size={kernel_size!r}."
    )
  checks.check_choice("kernel_type", kernel_type, KERNEL_TYPES)
  checks.check_range("smooth_nr", smooth_nr, low=0.0)
  checks.check_range("smooth_dr", smooth_dr, low=0.0)
  p, t, batch = _image_pair(predictions, targets, spatial_dims, where)
  first = len(batch)
  spatial = p.shape[first:-1]
  mats = [windows.window_matrix(n, kernel_size, kernel_type, p.dtype) for n in spatial]
  # The local moments do not change when each channel is shifted by a
  # constant; shifting by its mean first avoids cancelling large squares.
  axes = tuple(range(first, p.ndim - 1))
  p = p - jax.lax.stop_gradient(jnp.mean(p, axis=axes, keepdims=True))
  t = t - jax.lax.stop_gradient(jnp.mean(t, axis=axes, keepdims=True))
  mass = windows.window_sums(jnp.ones(spatial + (1,), p.dtype), mats, 0)
  sums = windows.window_sums(jnp.stack([p, t, p * p, t * t, p * t]), mats, first + 1) / mass
  mp, mt, epp, ett, ept = sums
  var_p = jnp.maximum(epp - mp * mp, 0.0)
  var_t = jnp.maximum(ett - mt * mt, 0.0)
  cov = ept - mp * mt
  ncc = (jnp.square(cov) + smooth_nr) / (var_p * var_t + smooth_dr)
  values = -_per_image_mean(ncc, batch)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("registration", inputs=examples.REGISTRATION_PAIRS)
def global_mutual_information_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  num_bins: int = 23,
  sigma_ratio: float | ArrayLike = 0.5,
  smooth_nr: float | ArrayLike = 1e-7,
  smooth_dr: float | ArrayLike = 1e-7,
  spatial_dims: int = 2,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Minus the mutual information of two images, with Gaussian Parzen windows.

  .. math::
     \ell = -\sum_{k,l} P_{kl}\,\log\frac{P_{kl} + s_{nr}}{P^a_k P^b_l + s_{dr}},
     \qquad P_{kl} = \frac{1}{N}\sum_i w^a_{ik} w^b_{il},\quad
     P^a_k = \frac{1}{N}\sum_i w^a_{ik}

  over the :math:`N` pixels (and channels) of each image pair, with soft bin
  memberships :math:`w_{ik} = \operatorname{softmax}_k(-(v_i - c_k)^2 /
  (2\sigma^2))` of the intensities :math:`v_i` clipped to [0, 1], the bin
  centres :math:`c_k` spaced evenly on [0, 1] and :math:`\sigma` =
  ``sigma_ratio`` times their spacing (Mattes et al.'s joint histogram with a
  Gaussian kernel). Between 0 (independent intensities; constant images
  give 0) and minus the entropy of the binned image (an image against
  itself); invariant to any one-to-one remapping of intensities that the
  bins resolve, so it compares images of different modalities. Per image
  pair; the batch is not pooled.

  Intensities are expected in [0, 1] (rescale first); values outside are
  clipped, with zero gradient there, as in MONAI's
  ``GlobalMutualInformationLoss`` (``kernel_type="gaussian"``), whose
  defaults these are.

  Args:
    predictions: ``(*batch, *spatial, C)`` float images in [0, 1].
    targets: the same shape, in [0, 1].
    num_bins: number of histogram bins, at least 2 (static).
    sigma_ratio: positive Parzen-window width in units of the bin spacing
      (traceable).
    smooth_nr, smooth_dr: non-negative smoothing inside the logarithm
      (traceable).
    spatial_dims: number of spatial axes (static); the channels are pooled
      with the pixels.
    where, weights, reduction: the loss contract over image pairs.

  Returns:
    The reduced loss; one value per image pair for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, too few axes, ``num_bins < 2``, a
      non-positive ``sigma_ratio``, negative smoothing.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> t = (jnp.arange(36.0).reshape(1, 6, 6, 1) % 4) / 3
    >>> same = jaxobj.global_mutual_information_loss(t, t)
    >>> inverted = jaxobj.global_mutual_information_loss(1 - t, t)  # another modality
    >>> print(bool(same < -1.0), bool(jnp.allclose(same, inverted)))
    True True
    >>> constant = jaxobj.global_mutual_information_loss(jnp.full_like(t, 0.5), t)
    >>> print(bool(abs(constant) < 1e-6))
    True

  References:
    Mattes et al., "PET-CT image registration in the chest using free-form
    deformations", IEEE TMI 2003. MONAI
    ``monai.losses.GlobalMutualInformationLoss``.
  """
  name = "global_mutual_information_loss"
  checks.check_int("num_bins", num_bins, loss=name)
  if num_bins < 2:
    raise ValueError(f"num_bins must be an int >= 2, got num_bins={num_bins!r}.")
  checks.check_range("sigma_ratio", sigma_ratio, low=0.0, low_inclusive=False)
  checks.check_range("smooth_nr", smooth_nr, low=0.0)
  checks.check_range("smooth_dr", smooth_dr, low=0.0)
  a, b, batch = _image_pair(predictions, targets, spatial_dims, where)
  n = math.prod(a.shape[len(batch) :])
  centres = jnp.linspace(0.0, 1.0, num_bins, dtype=a.dtype)
  sigma = sigma_ratio / (num_bins - 1)

  def memberships(v):  # (*batch, N, bins)
    v = jnp.clip(v.reshape(batch + (n, 1)), 0.0, 1.0)
    return jax.nn.softmax(-jnp.square(v - centres) / (2.0 * jnp.square(sigma)), axis=-1)

  wa, wb = memberships(a), memberships(b)
  pab = jnp.einsum("...ik,...il->...kl", wa, wb) / max(n, 1)
  pa, pb = jnp.mean(wa, axis=-2), jnp.mean(wb, axis=-2)
  papb = pa[..., :, None] * pb[..., None, :]
  # Double where: a joint bin with no mass (its Gaussian weights underflow)
  # contributes 0, without a 0 * log 0 in the value or the gradient.
  ok = pab != 0  # NaN stays NaN
  ratio = jnp.where(ok, (pab + smooth_nr) / (papb + smooth_dr), 1.0)
  mi = jnp.sum(jnp.where(ok, pab * jnp.log(ratio), 0.0), axis=(-2, -1))
  return reduce_loss(-mi, where=where, weights=weights, reduction=reduction)
