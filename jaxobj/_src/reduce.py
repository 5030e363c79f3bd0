"""The one reduction every loss ends with: masks, weights and the reduction mode."""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp

from jaxobj._src import checks


def reduce_loss(
  values: jax.Array, *, where=None, weights=None, reduction: str = "mean"
) -> jax.Array:
  """Reduces per-element losses under the jaxobj contract.

  Masked entries (``where == False``) contribute exactly 0 to the value and the
  gradient, even when ``values`` holds inf or NaN there. ``"mean"`` divides by
  the number of unmasked elements, or by the sum of their weights when
  ``weights`` is given (a weighted mean); an empty denominator gives 0, never NaN.

  Args:
    values: per-element losses, already in the compute dtype.
    where: optional boolean mask broadcastable to ``values`` (same rank, axes
      equal or 1, or a scalar).
    weights: optional non-negative weights broadcastable like ``where``.
    reduction: ``"mean"``, ``"sum"`` or ``"none"``.

  Returns:
    A scalar for ``"mean"`` and ``"sum"``; ``values.shape`` for ``"none"``.
  """
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
  if weights is not None:
    count = jnp.sum(jnp.broadcast_to(weights, shape))
  elif where is not None:
    count = jnp.sum(jnp.broadcast_to(where, shape), dtype=values.dtype)
  else:
    count = jnp.asarray(values.size, values.dtype)
  return reduce_total(total, count, reduction)


def reduce_total(total: jax.Array, count: jax.Array, reduction: str) -> jax.Array:
  """Finishes a ``"sum"`` or ``"mean"`` reduction from its sum and denominator.

  For losses that compute their (weighted) sum without materializing the
  per-element values, such as :func:`jaxobj.fused_linear_cross_entropy`; the
  count is reported to :func:`recording_counts` as ``reduce_loss`` does.
  """
  sink = _COUNT_SINK.get()
  if sink is not None:
    sink.append(count)
  if reduction == "sum":
    return total
  return total / jnp.where(count > 0, count, 1.0)


# Objectives normalize exactly across microbatches and devices by carrying each
# term's (sum, count) to the end. The count is the mean's denominator, which
# only the loss knows (its masks, weights, ignored labels), so reduce_loss
# reports it to whoever is listening.
_COUNT_SINK: contextvars.ContextVar[list | None] = contextvars.ContextVar(
  "jaxobj_count_sink", default=None
)


@contextlib.contextmanager
def recording_counts():
  """Collects the denominator of every ``reduce_loss`` call made inside (at trace time)."""
  counts: list[jax.Array] = []
  token = _COUNT_SINK.set(counts)
  try:
    yield counts
  finally:
    _COUNT_SINK.reset(token)


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
