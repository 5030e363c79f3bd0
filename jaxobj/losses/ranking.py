r"""Ranking losses and metrics over lists of scores.

Conventions shared by every function here:

- **Lists.** ``scores`` and ``labels`` (graded relevance, higher is better)
  have shape ``[..., L]``: the last axis is the list, the leading axes are the
  batch. The per-element loss is **per list**, so ``reduction="none"`` returns
  ``scores.shape[:-1]`` and the contract's ``where`` and ``weights`` act on
  whole lists (a masked list behaves exactly as if it were sliced out).
- **Items.** ``item_where`` (boolean, ``[..., L]``) masks items inside a list,
  as ``where`` does in rax. In the losses an item whose score is ``-inf`` is
  masked too, so both spellings of padding give finite values and zero
  gradients. In the metrics a ``-inf`` score means *unranked* (never
  retrieved, but still counted as relevant in the ideal ranking), as in rax.
- **Segments.** ``segment_ids`` (integer, ``[..., L]``) splits one list into
  several queries: items are compared only with items of the same segment,
  and a listwise value is the mean over the list's segments (those with at
  least one valid item).
- **Per-list value = rax on that list.** With ``reduction="none"`` each entry
  is what rax returns for that list alone with its default ``reduce_fn=mean``
  (i.e. ``jax.vmap(rax.<loss>)``): pairwise losses average over the list's
  valid pairs, pointwise losses over its valid items, listwise losses and
  metrics over its segments.
- **Mean over lists.** ``reduction="mean"`` (the default) averages over the
  lists, and leaves out lists with nothing to rank (no valid item; for the
  pairwise losses no valid pair), which are 0 under ``"none"``, as rax leaves
  them out of its mean. Deliberate difference: rax's default mean for
  pairwise (pointwise) losses runs over all pairs (items) of the batch at
  once; ``weights=`` the number of valid pairs (items) per list gives exactly
  that mean.
- **Ties** are broken deterministically by position: of two items with equal
  score (labels, for ListMLE's target order and the ideal DCG), the earlier one
  ranks first, as in rax without a random ``key``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import ranking as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "approx_ndcg_loss",
  "bpr_loss",
  "listmle_loss",
  "mrr_metric",
  "ndcg_metric",
  "pairwise_hinge_loss",
  "pairwise_logistic_loss",
  "pointwise_mse_loss",
  "pointwise_sigmoid_loss",
  "precision_metric",
  "softmax_loss",
]


# The Returns and Raises sections shared by the per-list losses' docstrings.
_RETURNS = """Returns:
    The reduced loss; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ or ``where`` has the item shape.
    TypeError: integer ``scores``, non-boolean masks, non-integer segment_ids."""


def _with_returns(fn):
  fn.__doc__ = fn.__doc__.replace("{returns}", _RETURNS)
  return fn


# --------------------------------------------------------------------------
# Input preparation.


def _item_array(x, name, shape, kind):
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


def _check_list_where(where, shape):
  """A per-item ``where`` (rax's meaning) gets an error that says what to use."""
  if where is not None and len(shape) > 1 and tuple(np.shape(where)) == tuple(shape):
    raise ValueError(
      f"where.shape={tuple(np.shape(where))} equals scores.shape: where masks whole "
      f"lists and must have shape scores.shape[:-1]={tuple(shape[:-1])}. Pass a "
      f"per-item mask as item_where=."
    )


def _same_segment(segment_ids, shape):
  """``same[..., i, j]``: items i and j are in the same segment (None: one segment)."""
  if segment_ids is None:
    return None
  seg = _item_array(segment_ids, "segment_ids", shape, "ids")
  return seg[..., :, None] == seg[..., None, :]


def _lists(scores, labels, where, item_where, segment_ids, *, minus_inf_masks=True):
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
  _check_list_where(where, s.shape)
  batch = s.shape[:-1]
  s = masked_fill(where, s, batch, axis_extra=1)
  y = masked_fill(where, y, batch, axis_extra=1)
  valid = jnp.ones(s.shape, bool)
  if minus_inf_masks:
    valid = ~jnp.isneginf(s)
  if item_where is not None:
    valid = valid & _item_array(item_where, "item_where", s.shape, "mask")
  if where is not None:
    valid = valid & jnp.asarray(where)[..., None]
  # Double where: nothing behind an item mask reaches values or gradients.
  fill = 0.0 if minus_inf_masks else -jnp.inf
  s = jnp.where(valid, s, fill)
  y = jnp.where(valid, y, 0.0)
  return s, y, valid, _same_segment(segment_ids, s.shape)


def _item_weights(item_weights, valid):
  if item_weights is None:
    return None
  w = _item_array(item_weights, "item_weights", valid.shape, "float")
  return jnp.where(valid, w, 0.0)


def _finish(values, counted, where, weights, reduction, lists=None):
  """Lists with nothing to rank join the mask, so they leave the mean.

  ``lists`` is ``(s, y, valid)`` from :func:`_lists`: a list with a NaN score
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


# --------------------------------------------------------------------------
# Segment-aware reductions. ``same`` is None for one segment per list.


def _group_sum(x, same, valid):
  """For each item, the sum of ``x`` over the valid items of its segment."""
  if same is None:
    return jnp.sum(jnp.where(valid, x, 0.0), axis=-1, keepdims=True)
  return jnp.sum(jnp.where(same & valid[..., None, :], x[..., None, :], 0.0), axis=-1)


def _group_mask(valid, same):
  """``[..., i, j]``: j is a valid item of i's segment."""
  mask = jnp.broadcast_to(valid[..., None, :], valid.shape + valid.shape[-1:])
  return mask if same is None else mask & same


def _first_items(valid, same):
  """The first valid item of each segment (one per non-empty segment)."""
  if same is None:
    return valid & (jnp.cumsum(valid, axis=-1) == 1)
  n = valid.shape[-1]
  before = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j < i
  return valid & ~jnp.any(before & _group_mask(valid, same), axis=-1)


def _segment_mean(total, valid, same):
  """``total`` (a per-list sum of per-segment values) over the number of
  non-empty segments; also whether the list has any valid item."""
  count = jnp.sum(_first_items(valid, same), axis=-1)
  return total / jnp.maximum(count, 1).astype(total.dtype), count > 0


def _masked_logsumexp(x, mask):
  """``log sum_j exp(x_j)`` over ``mask`` along the last axis; 0 when empty.

  The shift is a stop-gradient max and masked entries enter as ``exp(-inf)``,
  so neither an empty set nor a masked extreme value makes a NaN gradient.
  """
  m = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(jnp.isinf(m), 0.0, m))  # a NaN max stays NaN
  z = jnp.sum(jnp.exp(jnp.where(mask, x - m, -jnp.inf)), axis=-1, keepdims=True)
  return (m + jnp.log(jnp.where(z == 0, 1.0, z)))[..., 0]


def _log_softmax(s, valid, same):
  """Log-softmax over the valid items of each item's segment."""
  if same is None:
    return s - _masked_logsumexp(s, valid)[..., None]
  x = jnp.broadcast_to(s[..., None, :], same.shape)
  return s - _masked_logsumexp(x, _group_mask(valid, same))


def _ranks(x, valid, same):
  """1-based ranks by ``x`` descending among the valid items of a segment;
  ties go to the earlier position."""
  n = x.shape[-1]
  xi, xj = x[..., :, None], x[..., None, :]
  earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j < i
  ahead = ((xj > xi) | ((xj == xi) & earlier)) & _group_mask(valid, same)
  return 1 + jnp.sum(ahead, axis=-1)


def _pair_mask(y, valid, same):
  """Valid pairs ``[..., i, j]``: both items valid, same segment, y_i > y_j."""
  pairs = (y[..., :, None] > y[..., None, :]) & valid[..., :, None] & valid[..., None, :]
  return pairs if same is None else pairs & same


# --------------------------------------------------------------------------
# Pointwise.


def _pointwise(values, valid, w, where, weights, reduction):
  if w is not None:
    values = values * w
  total = jnp.sum(jnp.where(valid, values, 0.0), axis=-1)
  count = jnp.sum(valid, axis=-1)
  per_list = total / jnp.maximum(count, 1).astype(total.dtype)
  return _finish(per_list, count > 0, where, weights, reduction)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def pointwise_mse_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Squared error between each item's score and its label, averaged per list.

  .. math:: \ell(s, y) = \frac{1}{|V|} \sum_{i \in V} w_i\,(s_i - y_i)^2

  over the valid items :math:`V` of the list (rax's ``pointwise_mse_loss`` on
  that list). Segments change nothing: each item is scored alone.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights :math:`w_i` ``[..., L]`` (the
      denominator stays the number of valid items, as in rax).
    segment_ids: optional integer ``[..., L]`` segment ids (accepted for a
      uniform signature; no effect).
    where, weights, reduction: the loss contract over lists
      (:func:`jaxobj.reduce_loss`).

  {returns}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pointwise_mse_loss(s, y, reduction="none"))
    [3.6667]
  """
  s, y, valid, _ = _lists(scores, labels, where, item_where, segment_ids)
  w = _item_weights(item_weights, valid)
  return _pointwise(jnp.square(s - y), valid, w, where, weights, reduction)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def pointwise_sigmoid_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Sigmoid cross-entropy of each item's score against its label clipped to [0, 1].

  .. math::
     \ell(s, y) = \frac{1}{|V|} \sum_{i \in V} w_i \big[\bar y_i
       \operatorname{softplus}(-s_i) + (1 - \bar y_i)\operatorname{softplus}(s_i)\big],
     \qquad \bar y_i = \min(\max(y_i, 0), 1)

  Graded labels of 1 and above count as fully relevant (rax clips the same
  way). Computed with ``softplus``, so scores of any size are exact.

  Args:
    scores: float array ``[..., L]`` (logits); ``-inf`` masks an item.
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]``.
    segment_ids: optional integer ``[..., L]`` segment ids (no effect).
    where, weights, reduction: the loss contract over lists.

  {returns}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pointwise_sigmoid_loss(s, y, reduction="none"))
    [1.4963]
  """
  s, y, valid, _ = _lists(scores, labels, where, item_where, segment_ids)
  w = _item_weights(item_weights, valid)
  y = jnp.clip(y, 0.0, 1.0)
  values = y * jax.nn.softplus(-s) + (1.0 - y) * jax.nn.softplus(s)
  return _pointwise(values, valid, w, where, weights, reduction)


# --------------------------------------------------------------------------
# Pairwise.


def _pairwise(
  pair_loss, scores, labels, item_where, item_weights, segment_ids, where, weights, reduction
):
  s, y, valid, same = _lists(scores, labels, where, item_where, segment_ids)
  w = _item_weights(item_weights, valid)
  values = pair_loss(s[..., :, None] - s[..., None, :])  # [i, j]: s_i - s_j
  if w is not None:
    values = values * w[..., :, None]
  pairs = _pair_mask(y, valid, same)
  total = jnp.sum(jnp.where(pairs, values, 0.0), axis=(-2, -1))
  count = jnp.sum(pairs, axis=(-2, -1))
  per_list = total / jnp.maximum(count, 1).astype(total.dtype)
  return _finish(per_list, count > 0, where, weights, reduction, (s, y, valid))


_PAIRWISE_ARGS = """
  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape; pairs with equal labels are skipped.
    {hyper}item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]``; a pair is weighted
      by its more relevant item (rax's convention), the denominator stays the
      number of pairs.
    segment_ids: optional integer ``[..., L]`` segment ids; only pairs within a
      segment count.
    where, weights, reduction: the loss contract over lists. ``weights=`` the
      number of valid pairs per list reproduces rax's mean over all pairs.

  Returns:
    The reduced loss; one value per list (its mean over pairs, 0 for a list
    without a valid pair) for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape{raises}.
    TypeError: integer ``scores``, non-boolean masks, non-integer segment_ids.
"""


@register("ranking", inputs=examples.RANKED_LISTS)
def pairwise_logistic_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""RankNet's pairwise logistic loss, averaged over a list's ordered pairs.

  .. math::
     \ell(s, y) = \frac{1}{|P|} \sum_{(i,j) \in P} w_i
       \log\big(1 + e^{-(s_i - s_j)}\big),
     \qquad P = \{(i, j) : y_i > y_j\}

  over valid pairs of the same segment, computed as
  :math:`\operatorname{softplus}(s_j - s_i)` (exact for any score gap). With
  labels 1 for the positive and 0 for the negatives this is Bayesian
  Personalized Ranking within a list (:func:`bpr_loss` takes the scores of
  positives and sampled negatives instead).
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_logistic_loss(s, y, reduction="none"))
    [0.8133]

  References:
    Burges et al., "Learning to Rank using Gradient Descent", ICML 2005.
  """
  return _pairwise(
    lambda d: jax.nn.softplus(-d),
    scores,
    labels,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
  )


@register(
  "ranking",
  inputs=examples.RANKED_LISTS,
  zero_hessian="piecewise linear: a hinge max(0, margin - ...), kinked at the margin",
)
def pairwise_hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Pairwise hinge loss: each ordered pair must be separated by a margin.

  .. math::
     \ell(s, y) = \frac{1}{|P|} \sum_{(i,j) \in P} w_i
       \max\big(0,\ m - (s_i - s_j)\big),
     \qquad P = \{(i, j) : y_i > y_j\}

  over valid pairs of the same segment. ``margin=1`` is rax's loss.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_hinge_loss(s, y, reduction="none"))
    [1.]

  References:
    Herbrich et al., "Large Margin Rank Boundaries for Ordinal Regression",
    2000; Joachims, "Optimizing Search Engines using Clickthrough Data", KDD 2002.
  """
  checks.check_range("margin", margin, low=0.0)
  return _pairwise(
    lambda d: jax.nn.relu(margin - d),
    scores,
    labels,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
  )


pairwise_logistic_loss.__doc__ = (pairwise_logistic_loss.__doc__ or "").replace(
  "{args}", _PAIRWISE_ARGS.format(hyper="", raises="")
)
pairwise_hinge_loss.__doc__ = (pairwise_hinge_loss.__doc__ or "").replace(
  "{args}",
  _PAIRWISE_ARGS.format(
    hyper="margin: :math:`m`, non-negative (traceable).\n    ",
    raises=", ``margin < 0`` (when concrete)",
  ),
)


@register("ranking", inputs=examples.POSITIVE_NEGATIVE)
def bpr_loss(
  positive_scores: ArrayLike,
  negative_scores: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Bayesian Personalized Ranking: a positive should outscore its negatives.

  .. math::
     \ell(s^+, s^-) = \frac{1}{|K|} \sum_{k \in K} -\log \sigma(s^+ - s^-_k)
       = \frac{1}{|K|} \sum_{k \in K} \operatorname{softplus}(s^-_k - s^+)

  over the valid negatives :math:`K` of each positive (a negative score of
  ``-inf`` is masked). One value per positive: a row without a valid negative
  (or with a positive of ``-inf``) is 0 and leaves the mean. Within a list
  with labels, BPR is :func:`pairwise_logistic_loss`.

  Args:
    positive_scores: float array ``[...]``, the score of each positive item.
    negative_scores: float array ``[...]`` (one negative per positive) or
      ``[..., K]`` (K sampled negatives per positive).
    where, weights, reduction: the loss contract over positives
      (shape ``positive_scores.shape``).

  Returns:
    The reduced loss; one value per positive for ``reduction="none"``.

  Raises:
    ValueError: ``negative_scores.shape`` is neither ``positive_scores.shape``
      nor ``positive_scores.shape + (K,)``.
    TypeError: integer scores.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> pos, neg = jnp.array([2.0, 0.0]), jnp.array([[0.0, 1.0], [0.0, -jnp.inf]])
    >>> print(jaxobj.bpr_loss(pos, neg, reduction="none"))
    [0.2201 0.6931]

  References:
    Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
    Feedback", UAI 2009.
  """
  pos = checks.as_float(positive_scores, "positive_scores")
  neg = checks.as_float(negative_scores, "negative_scores")
  if neg.shape == pos.shape:
    neg = neg[..., None]
  elif neg.shape[:-1] != pos.shape:
    raise ValueError(
      f"negative_scores.shape must be positive_scores.shape (one negative each) "
      f"or positive_scores.shape + (K,) (K negatives each), got "
      f"positive_scores.shape={pos.shape} and negative_scores.shape={neg.shape}."
    )
  pos = masked_fill(where, pos, pos.shape)
  neg = masked_fill(where, neg, pos.shape, axis_extra=1)
  valid = ~jnp.isneginf(neg) & ~jnp.isneginf(pos)[..., None]
  gap = jnp.where(valid, neg - pos[..., None], 0.0)
  total = jnp.sum(jnp.where(valid, jax.nn.softplus(gap), 0.0), axis=-1)
  count = jnp.sum(valid, axis=-1)
  per_row = total / jnp.maximum(count, 1).astype(total.dtype)
  return _finish(per_row, count > 0, where, weights, reduction)


# --------------------------------------------------------------------------
# Listwise.


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def softmax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  normalize_labels: bool = True,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Listwise softmax cross-entropy (ListNet's top-one loss).

  .. math::
     \ell(s, y) = -\sum_{i \in V} \hat y_i
       \log \frac{e^{s_i}}{\sum_{j \in V} e^{s_j}},
     \qquad \hat y_i = \frac{w_i y_i}{\sum_{j \in V} w_j y_j}

  over the valid items :math:`V` of a segment; a list's value is the mean over
  its segments. With ``normalize_labels=False`` the labels are used as given
  (:math:`\hat y_i = w_i y_i`), which is rax's ``softmax_loss`` default; the
  two agree for one-hot labels. A list whose labels are all 0 has no target:
  its value is 0 (rax's ``normalize_probabilities`` would use a uniform
  target), and it stays in the mean, as in rax. Labels must be non-negative.
  With segments the labels are normalized within each segment (rax's
  ``label_fn`` sees the whole list).

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: non-negative relevance labels, same shape.
    normalize_labels: divide the labels by their sum over the segment (static).
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]`` multiplying the labels.
    segment_ids: optional integer ``[..., L]`` segment ids: one softmax per segment.
    where, weights, reduction: the loss contract over lists.

  {returns}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 2.0]])
    >>> print(jaxobj.softmax_loss(s, y, reduction="none"))
    [0.9076]

  References:
    Cao et al., "Learning to Rank: From Pairwise Approach to Listwise
    Approach", ICML 2007.
  """
  s, y, valid, same = _lists(scores, labels, where, item_where, segment_ids)
  w = _item_weights(item_weights, valid)
  if w is not None:
    y = y * w
  if normalize_labels:
    total = _group_sum(y, same, valid)
    y = y / jnp.where(total != 0, total, 1.0)
  logp = _log_softmax(s, valid, same)
  total = -jnp.sum(jnp.where(valid, y * logp, 0.0), axis=-1)
  per_list, counted = _segment_mean(total, valid, same)
  return _finish(per_list, counted, where, weights, reduction, (s, y, valid))


def _listmle_sorted(s, y, valid):
  """Sum over items of ``logsumexp(s over the items ranked at or below) - s``.

  Items are sorted with the invalid ones first and then by label descending
  (stable: ties keep their order), so each valid item's reverse cumulative
  log-sum-exp covers exactly the valid items at or below it.
  """
  key_valid = valid.astype(jnp.int32)
  _, _, s_sorted, valid_sorted = jax.lax.sort(
    (key_valid, -y, s, valid), dimension=-1, num_keys=2, is_stable=True
  )
  lse = jax.lax.cumlogsumexp(s_sorted, axis=s.ndim - 1, reverse=True)
  return jnp.sum(jnp.where(valid_sorted, lse - s_sorted, 0.0), axis=-1)


def _listmle_segments(s, y, valid, same):
  """The same sum with the items at or below each item found pairwise, per segment."""
  n = s.shape[-1]
  yi, yj = y[..., :, None], y[..., None, :]
  not_before = jnp.arange(n)[None, :] >= jnp.arange(n)[:, None]  # [i, j]: j >= i
  below = ((yj < yi) | ((yj == yi) & not_before)) & _group_mask(valid, same)
  lse = _masked_logsumexp(jnp.broadcast_to(s[..., None, :], below.shape), below)
  return jnp.sum(jnp.where(valid, lse - s, 0.0), axis=-1)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def listmle_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""ListMLE: negative Plackett–Luce log-likelihood of the label order.

  .. math::
     \ell(s, y) = -\sum_{k=1}^{|V|} \log
       \frac{e^{s_{\pi(k)}}}{\sum_{m \ge k} e^{s_{\pi(m)}}}

  where :math:`\pi` sorts the valid items of a segment by label, descending;
  equal labels keep their order in the list (rax without a random ``key``).
  A list's value is the mean over its segments. The cumulative log-sum-exp
  is computed stably, so scores of any size give finite values and gradients.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids: one ranking per segment.
    where, weights, reduction: the loss contract over lists.

  {returns}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.listmle_loss(s, y, reduction="none"))
    [1.5345]

  References:
    Xia et al., "Listwise Approach to Learning to Rank: Theory and
    Algorithm", ICML 2008.
  """
  s, y, valid, same = _lists(scores, labels, where, item_where, segment_ids)
  if same is None:
    total = _listmle_sorted(s, y, valid)
  else:
    total = _listmle_segments(s, y, valid, same)
  per_list, counted = _segment_mean(total, valid, same)
  return _finish(per_list, counted, where, weights, reduction, (s, y, valid))


# --------------------------------------------------------------------------
# NDCG: the exact metric and its smooth approximation.


def _check_topn(topn):
  if topn is None:
    return
  if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)):
    raise TypeError(
      f"topn must be a Python int or None, got {topn!r} of type {type(topn).__name__}."
    )
  checks.check_range("topn", topn, low=1)


def _gains(y, w):
  g = jnp.exp2(y) - 1.0
  return g if w is None else g * w


def _discount(ranks):
  return 1.0 / jnp.log2(1.0 + ranks)


def _ndcg(dcg_items, gains, valid, same, topn):
  """Per-list NDCG (mean over segments) from per-item DCG contributions.

  The ideal DCG ranks the valid items by gain (exactly, never approximated);
  a segment whose ideal DCG is 0 (no relevant item) has NDCG 0.
  """
  ideal_ranks = _ranks(gains, valid, same).astype(gains.dtype)
  take = valid if topn is None else valid & (ideal_ranks <= topn)
  ideal_items = jnp.where(take, gains * _discount(ideal_ranks), 0.0)
  dcg = _group_sum(dcg_items, same, valid)
  ideal = _group_sum(ideal_items, same, valid)
  ndcg = dcg / jnp.where(ideal == 0, 1.0, ideal)
  first = _first_items(valid, same)
  total = jnp.sum(jnp.where(first, jnp.broadcast_to(ndcg, valid.shape), 0.0), axis=-1)
  return _segment_mean(total, valid, same)


def _approx_cutoff(neg_ranks, valid, same, topn, temperature):
  """Soft membership in the top ``topn`` (rax's ``approx_cutoff``): a sigmoid
  of the gap to a stop-gradient threshold halfway between the ``topn``-th and
  the next item; 1 for every item of a segment with at most ``topn`` items."""
  order = _ranks(neg_ranks, valid, same)
  at = valid & ((order == topn) | (order == topn + 1))
  threshold = jax.lax.stop_gradient(_group_sum(jnp.where(at, neg_ranks, 0.0), same, valid) / 2)
  size = _group_sum(jnp.ones_like(neg_ranks), same, valid)
  soft = jax.nn.sigmoid((neg_ranks - threshold) / temperature)
  return jnp.where(size > topn, soft, 1.0)


@register("ranking", inputs=examples.RANKED_LISTS)
def approx_ndcg_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: float | ArrayLike = 1.0,
  topn: int | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Negated NDCG with smooth (sigmoid) ranks: a differentiable NDCG to minimize.

  .. math::
     \ell(s, y) = -\frac{1}{\mathrm{IDCG}} \sum_{i \in V}
       \frac{2^{y_i} - 1}{\log_2(1 + \hat r_i)},
     \qquad \hat r_i = 1 + \sum_{j \in V, j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big)

  (rax's ``approx_t12n(ndcg_metric)``). IDCG is the exact ideal DCG; a list
  with no relevant item scores 0. With ``topn`` each term is multiplied by a
  soft top-``topn`` indicator, as rax's ``approx_cutoff`` does. Values lie in
  [-1, 0]; a list's value is the mean over its segments. Deliberate
  difference: masked items take no part in the soft cutoff (rax ranks them
  there, at approximate rank 1, so with ``where`` and ``topn`` a masked item
  can move rax's threshold); here masking an item equals removing it.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape (gain :math:`2^y - 1`).
    temperature: :math:`T > 0`, smoothness of the ranks (traceable).
    topn: optional int cutoff (static).
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]`` multiplying the gains.
    segment_ids: optional integer ``[..., L]`` segment ids.
    where, weights, reduction: the loss contract over lists.

  Returns:
    The reduced loss; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape, ``temperature <= 0``
      or ``topn < 1`` (when concrete).
    TypeError: integer ``scores``, non-integer ``topn``, non-boolean masks.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[-1.0, 1.0, 0.0]]), jnp.array([[0.0, 0.0, 1.0]])
    >>> print(jaxobj.approx_ndcg_loss(s, y, reduction="none"))
    [-0.6309]

  References:
    Qin et al., "A General Approximation Framework for Direct Optimization of
    Information Retrieval Measures", Information Retrieval 2010.
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  _check_topn(topn)
  s, y, valid, same = _lists(scores, labels, where, item_where, segment_ids)
  gains = _gains(y, _item_weights(item_weights, valid))
  n = s.shape[-1]
  pair = _group_mask(valid, same) & ~jnp.eye(n, dtype=bool)
  steps = jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / temperature)
  ranks = 1.0 + jnp.sum(jnp.where(pair, steps, 0.0), axis=-1)
  dcg_items = jnp.where(valid, gains * _discount(ranks), 0.0)
  if topn is not None:
    dcg_items = dcg_items * _approx_cutoff(-ranks, valid, same, topn, temperature)
  ndcg, counted = _ndcg(dcg_items, gains, valid, same, topn)
  return _finish(-ndcg, counted, where, weights, reduction, (s, y, valid))


# --------------------------------------------------------------------------
# Metrics.


def _retrieval(scores, labels, where, item_where, segment_ids, topn):
  """Valid items, their exact ranks, and which are retrieved (finite score,
  within ``topn``). ``-inf`` scores stay valid but are never retrieved."""
  _check_topn(topn)
  s, y, valid, same = _lists(scores, labels, where, item_where, segment_ids, minus_inf_masks=False)
  ranks = _ranks(s, valid, same)
  retrieved = valid & (s > -jnp.inf)
  if topn is not None:
    retrieved = retrieved & (ranks <= topn)
  return s, y, valid, same, ranks.astype(s.dtype), retrieved


_METRIC_ARGS = """
  Args:
    scores: float array ``[..., L]``; an item scored ``-inf`` is unranked.
    labels: relevance labels, same shape.
    topn: optional int cutoff: only the top ``topn`` items count (static).
    {extra}item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids; a list's value is the
      mean over its non-empty segments.
    where, weights, reduction: the contract over lists; the mean leaves out
      lists without a valid item.

  Returns:
    The reduced metric; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape, ``topn < 1``.
    TypeError: integer ``scores``, non-integer ``topn``, non-boolean masks.
"""


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def ndcg_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Normalized discounted cumulative gain, NDCG@topn.

  .. math::
     \mathrm{NDCG}(s, y) = \frac{\mathrm{DCG}(s, y)}{\mathrm{DCG}(y, y)},\qquad
     \mathrm{DCG}(s, y) = \sum_{i:\ r_i \le n} \frac{2^{y_i} - 1}{\log_2(1 + r_i)}

  with :math:`r_i` the 1-based rank of item :math:`i` by score (ties: the
  earlier item first). Unranked (``-inf``) items add nothing to the DCG but
  their gain counts in the ideal DCG. A list with no relevant item (ideal
  DCG 0) scores 0, as in rax.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.ndcg_metric(s, y, reduction="none"))
    [0.7967]

  References:
    Järvelin and Kekäläinen, "Cumulated Gain-Based Evaluation of IR
    Techniques", TOIS 2002.
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn
  )
  gains = _gains(y, _item_weights(item_weights, valid))
  dcg_items = jnp.where(retrieved, gains * _discount(ranks), 0.0)
  values, counted = _ndcg(dcg_items, gains, valid, same, topn)
  return _finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def mrr_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Reciprocal rank of the first relevant item (mean reciprocal rank, MRR@topn).

  .. math:: \mathrm{RR}(s, y) = \max_{i:\ y_i \ge 1,\ r_i \le n} \frac{1}{r_i}

  Items with label :math:`\ge 1` are relevant (rax's convention for graded
  labels). A list with no relevant item retrieved in the top ``topn`` scores 0.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.mrr_metric(s, y, reduction="none"))
    [0.5]
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn
  )
  rr = jnp.where(retrieved & (y >= 1), 1.0 / ranks, 0.0)
  if same is None:
    best = jnp.max(rr, axis=-1, keepdims=True)
  else:
    best = jnp.max(jnp.where(_group_mask(valid, same), rr[..., None, :], 0.0), axis=-1)
  first = _first_items(valid, same)
  total = jnp.sum(jnp.where(first, jnp.broadcast_to(best, valid.shape), 0.0), axis=-1)
  values, counted = _segment_mean(total, valid, same)
  return _finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def precision_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Fraction of relevant items among the retrieved top ``topn`` (precision@topn).

  .. math::
     \mathrm{P@n}(s, y) = \frac{|\{i : y_i \ge 1,\ r_i \le n\}|}{|\{i : r_i \le n\}|}

  The denominator counts the items actually retrieved (valid, finite score,
  rank :math:`\le n`), so a list shorter than ``topn`` is not penalized
  (rax's convention); a list with nothing retrieved scores 0. Items with
  label :math:`\ge 1` are relevant.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 1.0]])
    >>> print(jaxobj.precision_metric(s, y, topn=2, reduction="none"))
    [1.]
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn
  )
  hits = _group_sum((retrieved & (y >= 1)).astype(s.dtype), same, valid)
  count = _group_sum(retrieved.astype(s.dtype), same, valid)
  precision = hits / jnp.maximum(count, 1.0)
  first = _first_items(valid, same)
  total = jnp.sum(jnp.where(first, jnp.broadcast_to(precision, valid.shape), 0.0), axis=-1)
  values, counted = _segment_mean(total, valid, same)
  return _finish(values, counted, where, weights, reduction, (s, y, valid))


_NDCG_EXTRA = "item_weights: optional per-item weights ``[..., L]`` multiplying the gains.\n    "
ndcg_metric.__doc__ = (ndcg_metric.__doc__ or "").replace(
  "{args}", _METRIC_ARGS.format(extra=_NDCG_EXTRA)
)
mrr_metric.__doc__ = (mrr_metric.__doc__ or "").replace("{args}", _METRIC_ARGS.format(extra=""))
precision_metric.__doc__ = (precision_metric.__doc__ or "").replace(
  "{args}", _METRIC_ARGS.format(extra="")
)
