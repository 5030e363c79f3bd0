"""Shared pieces of the ranking losses, metrics and transformations.

Lists have the shape ``[..., L]``; ``valid`` (boolean, ``[..., L]``) marks
the items that take part, and ``same`` (boolean ``[..., L, L]``, or ``None``
for one segment per list) marks the pairs of items in the same segment.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxobj._src import checks
from jaxobj._src.reduce import masked_fill, reduce_loss


def item_array(x, name, shape, kind):
  """An item-level mask, weights or segment ids: same rank as ``scores``,
  each axis equal or 1, broadcast to ``scores.shape``."""
  hint = (
    f" One entry per item; a mask or weight per list belongs in where= or "
    f"weights= (shape {tuple(shape[:-1])})."
  )
  rule = {"to": "scores.shape", "scalar": False, "hint": hint}
  if kind == "mask":
    return jnp.broadcast_to(checks.as_mask(x, shape, name=name, **rule), shape)
  x = jnp.asarray(x)
  if kind == "ids" and not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(
      f"{name} must hold integer segment ids, got dtype {x.dtype}; "
      f"cast with {name}.astype(jnp.int32)."
    )
  if kind == "float":
    x = checks.as_float(x, name)
  checks.check_broadcastable(name, x, shape, **rule)
  return jnp.broadcast_to(x, shape)


def check_list_where(where, shape):
  """A per-item ``where`` (rax's meaning) gets an error that says what to use."""
  if where is not None and len(shape) > 1 and tuple(np.shape(where)) == tuple(shape):
    raise ValueError(
      f"where.shape={tuple(np.shape(where))} equals scores.shape: where masks whole "
      f"lists and must have shape scores.shape[:-1]={tuple(shape[:-1])}. Pass a "
      f"per-item mask as item_where=."
    )


def same_segment(segment_ids, shape):
  """``same[..., i, j]``: items i and j are in the same segment (None: one segment)."""
  if segment_ids is None:
    return None
  seg = item_array(segment_ids, "segment_ids", shape, "ids")
  return seg[..., :, None] == seg[..., None, :]


def prepare_lists(scores, labels, where, item_where, segment_ids, *, minus_inf_masks=True):
  """Checked scores and labels with invalid items zeroed, and their validity.

  Returns ``(s, y, valid, same)``. Masked lists (``where``) have no valid
  item. With ``minus_inf_masks`` a score of ``-inf`` marks an invalid item;
  otherwise (metrics) ``-inf`` scores are kept.
  """
  s = checks.as_float(scores, "scores")
  if s.ndim < 1:
    raise ValueError(
      f"scores must have a list axis (shape [..., L]), got a scalar with shape {s.shape}."
    )
  checks.check_same_shape("scores", s, "labels", labels)
  y = checks.as_target(labels, "labels", s)
  check_list_where(where, s.shape)
  batch = s.shape[:-1]
  s = masked_fill(where, s, batch, axis_extra=1)
  y = masked_fill(where, y, batch, axis_extra=1)
  valid = jnp.ones(s.shape, bool)
  if minus_inf_masks:
    valid = ~jnp.isneginf(s)
  if item_where is not None:
    valid = valid & item_array(item_where, "item_where", s.shape, "mask")
  if where is not None:
    valid = valid & jnp.asarray(where)[..., None]
  # Double where: nothing behind an item mask reaches values or gradients.
  fill = 0.0 if minus_inf_masks else -jnp.inf
  s = jnp.where(valid, s, fill)
  y = jnp.where(valid, y, 0.0)
  return s, y, valid, same_segment(segment_ids, s.shape)


def item_weight_array(item_weights, valid):
  """Per-item weights broadcast to the item shape, 0 on invalid items (None: None)."""
  if item_weights is None:
    return None
  w = item_array(item_weights, "item_weights", valid.shape, "float")
  return jnp.where(valid, w, 0.0)


def finish(values, counted, where, weights, reduction, lists=None):
  """Lists with nothing to rank join the mask, so they leave the mean.

  ``lists`` is ``(s, y, valid)`` from :func:`prepare_lists`: a list with a NaN score
  or label on a valid item is NaN (comparisons and sorts would drop it).
  """
  if lists is not None:
    s, y, valid = lists
    bad = jnp.any(valid & (jnp.isnan(s) | jnp.isnan(y)), axis=-1)
    values = jnp.where(bad, jnp.nan, values)
    counted = counted | bad
  if where is not None:
    counted = counted & checks.as_mask(where, values.shape)
  return reduce_loss(values, where=counted, weights=weights, reduction=reduction)


def finish_unreduced(values, counted, weights, reduction, item_axes, lists=None):
  """Per-item ``[..., L]`` or per-pair ``[..., L, L]`` values under the contract.

  ``counted`` (the shape of ``values``) already excludes invalid items or
  pairs and the lists masked by ``where``; the per-list ``weights`` gain the
  item axes, so ``"mean"`` is the weighted mean over every counted item or
  pair of the batch (``item_axes`` trailing axes: 1 or 2). ``lists`` as in
  :func:`finish`: a NaN on a valid item makes its whole list NaN, and counted.
  """
  batch_ndim = values.ndim - item_axes
  if lists is not None:
    s, y, valid = lists
    bad = jnp.any(valid & (jnp.isnan(s) | jnp.isnan(y)), axis=-1)
    bad = bad.reshape(bad.shape + (1,) * item_axes)
    values = jnp.where(bad, jnp.nan, values)
    counted = counted | bad
  if weights is not None:
    weights = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", weights, values.shape[:batch_ndim])
    if weights.ndim > 0:
      weights = weights.reshape(weights.shape + (1,) * item_axes)
  return reduce_loss(values, where=counted, weights=weights, reduction=reduction)


def segment_outputs(value, valid, same, weights, reduction, lists):
  """Per-segment values ``[..., L]``: each non-empty segment's ``value`` (given
  on its items, or broadcastable to them) on its first valid item, 0 elsewhere;
  reduced over those items by :func:`finish_unreduced`."""
  first = first_items(valid, same)
  values = jnp.where(first, jnp.broadcast_to(value, valid.shape), 0.0)
  return finish_unreduced(values, first, weights, reduction, 1, lists)


# --------------------------------------------------------------------------
# Segment-aware reductions. ``same`` is None for one segment per list.


def group_sum(x, same, valid):
  """For each item, the sum of ``x`` over the valid items of its segment."""
  if same is None:
    return jnp.sum(jnp.where(valid, x, 0.0), axis=-1, keepdims=True)
  return jnp.sum(jnp.where(same & valid[..., None, :], x[..., None, :], 0.0), axis=-1)


def group_mask(valid, same):
  """``[..., i, j]``: j is a valid item of i's segment."""
  mask = jnp.broadcast_to(valid[..., None, :], valid.shape + valid.shape[-1:])
  return mask if same is None else mask & same


def first_items(valid, same):
  """The first valid item of each segment (one per non-empty segment)."""
  if same is None:
    return valid & (jnp.cumsum(valid, axis=-1) == 1)
  n = valid.shape[-1]
  before = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j < i
  return valid & ~jnp.any(before & group_mask(valid, same), axis=-1)


def segment_mean(total, valid, same):
  """``total`` (a per-list sum of per-segment values) over the number of
  non-empty segments; also whether the list has any valid item."""
  count = jnp.sum(first_items(valid, same), axis=-1)
  return total / jnp.maximum(count, 1).astype(total.dtype), count > 0


def masked_logsumexp(x, mask):
  """``log sum_j exp(x_j)`` over ``mask`` along the last axis; 0 when empty.

  The shift is a stop-gradient max and masked entries enter as ``exp(-inf)``,
  so neither an empty set nor a masked extreme value makes a NaN gradient.
  """
  m = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(jnp.isinf(m), 0.0, m))  # a NaN max stays NaN
  z = jnp.sum(jnp.exp(jnp.where(mask, x - m, -jnp.inf)), axis=-1, keepdims=True)
  return (m + jnp.log(jnp.where(z == 0, 1.0, z)))[..., 0]


def log_softmax(s, valid, same):
  """Log-softmax over the valid items of each item's segment."""
  if same is None:
    return s - masked_logsumexp(s, valid)[..., None]
  x = jnp.broadcast_to(s[..., None, :], same.shape)
  return s - masked_logsumexp(x, group_mask(valid, same))


def exact_ranks(x, valid, same):
  """1-based ranks by ``x`` descending among the valid items of a segment;
  ties go to the earlier position."""
  n = x.shape[-1]
  xi, xj = x[..., :, None], x[..., None, :]
  earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j < i
  ahead = ((xj > xi) | ((xj == xi) & earlier)) & group_mask(valid, same)
  return 1 + jnp.sum(ahead, axis=-1)


def pair_mask(y, valid, same):
  """Valid pairs ``[..., i, j]``: both items valid, same segment, y_i > y_j."""
  pairs = (y[..., :, None] > y[..., None, :]) & valid[..., :, None] & valid[..., None, :]
  return pairs if same is None else pairs & same


def segment_values_mean(value, valid, same):
  """The mean over a list's non-empty segments of a per-segment ``value``
  (given on every item of the segment); also whether the list counts."""
  first = first_items(valid, same)
  total = jnp.sum(jnp.where(first, jnp.broadcast_to(value, valid.shape), 0.0), axis=-1)
  return segment_mean(total, valid, same)


def check_topn(topn):
  if topn is None:
    return
  if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)):
    raise TypeError(
      f"topn must be a Python int or None, got {topn!r} of type {type(topn).__name__}."
    )
  checks.check_range("topn", topn, low=1)


def check_function(name, fn):
  if fn is not None and not callable(fn):
    raise TypeError(f"{name} must be a function or None, got {fn!r} of type {type(fn).__name__}.")


def default_gain(labels):
  r""":math:`2^y - 1`."""
  return jnp.exp2(labels) - 1.0


def default_discount(ranks):
  r""":math:`1 / \log_2(1 + r)`."""
  return 1.0 / jnp.log2(1.0 + ranks)


def gains_of(y, w, gain_fn):
  """Per-item gains ``gain_fn(y)`` times the item weights (if any)."""
  check_function("gain_fn", gain_fn)
  g = (gain_fn or default_gain)(y)
  return g if w is None else g * w


def ideal_dcg(gains, valid, same, topn, discount_fn):
  """The exact ideal DCG of each item's segment (items ranked by gain)."""
  ideal_ranks = exact_ranks(gains, valid, same).astype(gains.dtype)
  take = valid if topn is None else valid & (ideal_ranks <= topn)
  items = jnp.where(take, gains * discount_fn(ideal_ranks), 0.0)
  return group_sum(items, same, valid)


# --------------------------------------------------------------------------
# Ranks and top-n cutoffs: exact, or smooth through a step function.


def exact_cutoff(ranks, valid, same, topn):
  """1.0 for the items ranked within the top ``topn`` (all when None)."""
  del same
  if topn is None:
    return valid.astype(ranks.dtype)
  return (valid & (ranks <= topn)).astype(ranks.dtype)


def smooth_ranks(scores, valid, same, step: Callable[[jax.Array], jax.Array]):
  r"""Ranks :math:`1 + \sum_{j \ne i} \mathrm{step}(s_j - s_i)` over the valid items
  of a segment. A pair with an infinite score is counted exactly (``-inf`` is
  last, ties go to the earlier item), so ``-inf`` scores make no NaN."""
  n = scores.shape[-1]
  pairs = group_mask(valid, same) & ~jnp.eye(n, dtype=bool)
  si, sj = scores[..., :, None], scores[..., None, :]
  finite = jnp.isfinite(si) & jnp.isfinite(sj)
  earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j < i
  exact = ((sj > si) | ((sj == si) & earlier)).astype(scores.dtype)
  # Double where: an infinite gap never reaches step (or its gradient).
  soft = step(jnp.where(pairs & finite, sj - si, 0.0))
  steps = jnp.where(finite, soft, exact)
  return 1.0 + jnp.sum(jnp.where(pairs, steps, 0.0), axis=-1)


def smooth_cutoff(ranks, valid, same, topn, step: Callable[[jax.Array], jax.Array]):
  """Soft membership in the top ``topn``: ``step`` of the gap between ``-rank``
  and a stop-gradient threshold halfway between the ``topn``-th and the next
  item; 1 for every item of a segment with at most ``topn`` items."""
  if topn is None:
    return valid.astype(ranks.dtype)
  neg = -ranks
  order = exact_ranks(neg, valid, same)
  at = valid & ((order == topn) | (order == topn + 1))
  threshold = jax.lax.stop_gradient(group_sum(jnp.where(at, neg, 0.0), same, valid) / 2)
  size = group_sum(jnp.ones_like(neg), same, valid)
  soft = step(neg - threshold)
  return jnp.where(valid, jnp.where(size > topn, soft, 1.0), 0.0)
