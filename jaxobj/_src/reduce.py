"""The one reduction every loss ends with: masks, weights and the reduction mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks

# A reduced loss: an array, or the pair (sum, count) for "sum_and_count".
Reduced = jax.Array | tuple[jax.Array, jax.Array]


def reduce_loss(
  values: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  """Reduces per-element losses under the jaxobj contract.

  Masked entries (``where == False``) contribute exactly 0 to the value and the
  gradient, even when ``values`` holds inf or NaN there. ``"mean"`` divides by
  the number of unmasked elements, or by the sum of their weights when
  ``weights`` is given (a weighted mean); an empty denominator gives 0, never NaN.

  ``"sum_and_count"`` returns the pair ``(sum, count)``: the ``"sum"`` result
  and the mean's denominator, so that ``sum / count`` is the ``"mean"``
  result whenever ``count > 0``. Objectives call their terms this way to
  normalize exactly across microbatches and devices (add the sums, add the
  counts, divide once). A loss whose last line is
  ``return reduce_loss(..., reduction=reduction)`` supports it for free.

  Args:
    values: per-element losses, already in the compute dtype.
    where: optional boolean mask broadcastable to ``values`` (same rank, axes
      equal or 1, or a scalar).
    weights: optional non-negative weights broadcastable like ``where``.
    reduction: ``"mean"``, ``"sum"``, ``"none"`` or ``"sum_and_count"``.

  Returns:
    A scalar for ``"mean"`` and ``"sum"``; ``values.shape`` for ``"none"``;
    two scalars ``(sum, count)`` for ``"sum_and_count"``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> v = jnp.array([1.0, 2.0, 6.0])
    >>> s, c = jaxobj.reduce_loss(v, where=v < 5, reduction="sum_and_count")
    >>> print(s, c, jaxobj.reduce_loss(v, where=v < 5))
    3.0 2.0 1.5
  """
  values = jnp.asarray(values)
  checks.check_reduction(reduction)
  shape = values.shape
  if where is not None:
    where = checks.as_mask(where, shape)
  if weights is not None:
    weights = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", weights, shape)
  if where is not None:
    # Select before multiplying: a NaN weight or loss behind the mask must not
    # reach the gradient through the product rule.
    values = jnp.where(where, values, 0.0)
    if weights is not None:
      weights = jnp.where(where, weights, 0.0)
  if weights is not None:
    values = values * weights
  values = jnp.broadcast_to(values, shape)
  if reduction == "none":
    return values
  total = jnp.sum(values)
  count: jax.Array | int
  if weights is not None:
    count = jnp.sum(jnp.broadcast_to(weights, shape))
  elif where is not None:
    count = jnp.sum(jnp.broadcast_to(where, shape), dtype=values.dtype)
  else:  # known when tracing: no operation computes it
    count = values.size
  return reduce_total(total, count, reduction)


def reduce_total(total: ArrayLike, count: ArrayLike, reduction: str) -> Reduced:
  """Finishes a ``"sum"``, ``"mean"`` or ``"sum_and_count"`` reduction from its
  sum and denominator.

  For losses that compute their (weighted) sum without materializing the
  per-element values, such as :func:`jaxobj.fused_linear_cross_entropy`.
  ``count`` is the mean's denominator; ``"sum_and_count"`` returns
  ``(total, count)`` unchanged, for the caller to add up and divide once.
  """
  checks.check_reduction(reduction)
  if reduction == "none":
    raise ValueError(
      'reduce_total finishes a reduced loss; reduction="none" has no total. '
      "Return the per-element values instead (reduce_loss(..., reduction='none'))."
    )
  total = jnp.asarray(total)
  if reduction == "sum":
    return total
  if isinstance(count, int | float):  # a static count: divide by a constant
    if reduction == "sum_and_count":
      return total, jnp.asarray(count, total.dtype)
    return total / (count if count > 0 else 1)
  count = jnp.asarray(count)
  if reduction == "sum_and_count":
    return total, count.astype(total.dtype)
  return total / jnp.where(count > 0, count, 1.0)


def masked_fill(
  where, x: jax.Array, loss_shape: tuple[int, ...], fill=0.0, axis_extra: int = 0
) -> jax.Array:
  """Replaces masked inputs by a harmless value before the loss is computed.

  This is the first half of the "double where": ``reduce_loss`` zeroes masked
  losses, but an inf or NaN *inside* the masked computation would still poison
  the gradient, so inputs that can be extreme (e.g. all ``-inf`` logit rows)
  are replaced first. ``axis_extra`` trailing axes of ``x`` (e.g. the class
  axis) are not covered by ``where``.
  """
  if where is None:
    return x
  where = checks.as_mask(where, loss_shape)
  return jnp.where(where[(...,) + (None,) * axis_extra], x, fill)


def reduction_coefficients(mask, weights, shape: tuple[int, ...], dtype) -> jax.Array:
  """Per-element coefficients of a reduction: what :func:`reduce_loss`
  multiplies each value by before summing (the weights, 0 where masked), and
  whose sum is its mean's denominator. Fused losses that sum
  ``coefficient * value`` themselves take these."""
  if weights is not None:
    w = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", w, shape)
    coef = jnp.broadcast_to(w, shape)
    if mask is not None:
      coef = jnp.where(mask, coef, 0.0)
  elif mask is not None:
    coef = mask.astype(dtype)
  else:
    coef = jnp.ones(shape, dtype)
  return coef.astype(dtype)
