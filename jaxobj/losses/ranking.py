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
  ranks first, as in rax without a random ``key``; ``listmle_loss(key=...)``
  breaks its ties at random.
- **Functions as arguments**, as in rax: ``gain_fn`` and ``discount_fn`` (DCG,
  NDCG, the LambdaLoss weights, ``unique_softmax_loss``), ``label_fn``
  (``softmax_loss``), ``lambdaweight`` (the pairwise losses:
  ``dcg_lambdaweight``, ``dcg2_lambdaweight``, ``labeldiff_lambdaweight``),
  ``rank_fn`` and ``cutoff_fn`` (the rank-based metrics), and
  ``make_pairwise_loss(pair_fn)`` for a pairwise loss of your own.
- **Transformations** (rax's ``*_t12n``): ``approx_t12n`` and ``bound_t12n``
  turn a rank-based metric into a differentiable loss, ``gumbel_t12n`` makes a
  loss or metric see Gumbel-perturbed scores, ``segment_t12n`` gives segments
  to a ranking function that has none. Each returns a function with the
  ranking contract.
- **Unreduced outputs.** ``reduction="none"`` is one value per list. rax's
  ``reduce_fn=None`` keeps more for two families, and a keyword-only switch
  gives the same here, the per-element loss then being per item or per pair:

  ====================================  ==========================  ==============================
  rax, ``reduce_fn=None``               rax's shape                 jaxobj, ``reduction="none"``
  ====================================  ==========================  ==============================
  ``pointwise_mse_loss``,               ``[..., L]``, 0 on          ``per_item=True``: the same
  ``pointwise_sigmoid_loss``            masked items
  ``pairwise_*_loss``,                  ``[..., L*L]``, 0 outside   ``per_pair=True``:
  ``pairwise_loss``                     the valid pairs             ``[..., L, L]``; reshape to
                                                                    ``[..., L*L]`` for rax's layout
  ``softmax_loss``, ``listmle_loss``,   ``[...]`` per list;         the default (per list); with
  ``poly1_softmax_loss``,               ``[..., L]`` with segments  segments the mean of the
  ``unique_softmax_loss``               (each segment's value on    list's segments
                                        its first item)
  ====================================  ==========================  ==============================

  With the switch ``"mean"`` averages over every valid item (pair) of the
  batch, which is rax's default ``reduce_fn=jnp.mean``, ``"sum"`` is rax's
  ``jnp.sum``, and ``where``/``weights`` still act on whole lists (a list's
  weight multiplies each of its items or pairs). rax accepts
  ``lambdaweight_fn`` on its pairwise losses only, as ``lambdaweight`` here.
  Per-pair LambdaLoss weights come from the ``*_lambdaweight`` functions as
  ``[..., L, L]``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import ranking_utils as ru
from jaxobj._src.examples import ranking as examples
from jaxobj._src.reduce import Reduced, masked_fill
from jaxobj.registry import register

__all__ = [
  "ap_metric",
  "approx_ndcg_loss",
  "approx_t12n",
  "bound_t12n",
  "bpr_loss",
  "dcg2_lambdaweight",
  "dcg_lambdaweight",
  "dcg_metric",
  "gumbel_t12n",
  "labeldiff_lambdaweight",
  "listmle_loss",
  "make_pairwise_loss",
  "mrr_metric",
  "ndcg_metric",
  "opa_metric",
  "pairwise_hinge_loss",
  "pairwise_logistic_loss",
  "pairwise_mse_loss",
  "pairwise_qr_loss",
  "pairwise_soft_zero_one_loss",
  "pointwise_mse_loss",
  "pointwise_sigmoid_loss",
  "poly1_softmax_loss",
  "precision_metric",
  "recall_metric",
  "segment_t12n",
  "softmax_loss",
  "unique_softmax_loss",
]


# A LambdaLoss weight function, (scores, labels, *, item_where, segment_ids,
# item_weights) -> [..., L, L] pair weights: dcg_lambdaweight and its kin.
LambdaWeight = Callable[..., jax.Array]

# The Returns and Raises sections shared by the per-list losses' docstrings.
_RETURNS = """Returns:
    The reduced loss; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ or ``where`` has the item shape.
    TypeError: integer ``scores``, non-boolean masks, non-integer segment_ids."""


# The pointwise losses' version, with their per-item switch.
_RETURNS_ITEMS = _RETURNS.replace(
  'for ``reduction="none"``.',
  'for ``reduction="none"``, or\n    ``[..., L]`` per-item values with ``per_item=True``.',
).replace("segment_ids.", "segment_ids,\n      a non-bool ``per_item``.")


# The listwise losses' version, with their per-segment switch.
_RETURNS_SEGMENTS = _RETURNS.replace(
  'for ``reduction="none"``.',
  'for ``reduction="none"``, or\n    ``[..., L]`` per-segment values with ``per_segment=True``.',
).replace("segment_ids.", "segment_ids,\n      a non-bool ``per_segment``.")


def _with_returns(fn):
  doc = fn.__doc__.replace("{returns_items}", _RETURNS_ITEMS)
  fn.__doc__ = doc.replace("{returns_segments}", _RETURNS_SEGMENTS)
  return fn


# --------------------------------------------------------------------------
# Pointwise.


def _pointwise(values, valid, w, where, weights, reduction, per_item):
  checks.check_bool("per_item", per_item)
  if w is not None:
    values = values * w
  if per_item:
    return ru.finish_unreduced(values, valid, weights, reduction, 1)
  total = jnp.sum(jnp.where(valid, values, 0.0), axis=-1)
  count = jnp.sum(valid, axis=-1)
  per_list = total / jnp.maximum(count, 1).astype(total.dtype)
  return ru.finish(per_list, count > 0, where, weights, reduction)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def pointwise_mse_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_item: bool = False,
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
    per_item: keep the item axis (static): the per-element loss is each item's
      term :math:`w_i (s_i - y_i)^2` ``[..., L]`` (0 on invalid items), rax's
      ``reduce_fn=None`` output; ``"mean"`` then averages over every valid
      item of the batch (rax's default mean), and ``where``/``weights`` still
      act on lists.
    where, weights, reduction: the loss contract over lists
      (:func:`jaxobj.reduce_loss`).

  {returns_items}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pointwise_mse_loss(s, y, reduction="none"))
    [3.6667]
    >>> print(jaxobj.pointwise_mse_loss(s, y, per_item=True, reduction="none"))
    [[1. 1. 9.]]
  """
  s, y, valid, _ = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  return _pointwise(jnp.square(s - y), valid, w, where, weights, reduction, per_item)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def pointwise_sigmoid_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_item: bool = False,
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
    per_item: keep the item axis (static), as in :func:`pointwise_mse_loss`:
      ``[..., L]`` per-item terms, rax's ``reduce_fn=None`` output.
    where, weights, reduction: the loss contract over lists.

  {returns_items}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pointwise_sigmoid_loss(s, y, reduction="none"))
    [1.4963]
  """
  s, y, valid, _ = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  y = jnp.clip(y, 0.0, 1.0)
  values = y * jax.nn.softplus(-s) + (1.0 - y) * jax.nn.softplus(s)
  return _pointwise(values, valid, w, where, weights, reduction, per_item)


# --------------------------------------------------------------------------
# LambdaLoss weights: per-pair weights for the pairwise losses.


def _lambdaweight_lists(scores, labels, item_where, segment_ids, item_weights):
  s, y, valid, same = ru.prepare_lists(scores, labels, None, item_where, segment_ids)
  pairs = valid[..., :, None] & valid[..., None, :]
  if same is not None:
    pairs = pairs & same
  return s, y, valid, same, ru.item_weight_array(item_weights, valid), pairs


def labeldiff_lambdaweight(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
) -> jax.Array:
  r"""Pair weights equal to the label gap, :math:`\lambda_{ij} = |y_i - y_j|`.

  For ``lambdaweight=`` of a pairwise loss: pairs far apart in relevance
  weigh more. 0 for pairs with a masked item or in different segments.

  Args:
    scores: float array ``[..., L]`` (unused; the common signature).
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids.
    item_weights: optional per-item weights (unused; the common signature).

  Returns:
    The weights ``[..., L, L]``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([2.0, 1.0, 3.0]), jnp.array([2.0, 0.0, 1.0])
    >>> print(jaxobj.labeldiff_lambdaweight(s, y))
    [[0. 2. 1.]
     [2. 0. 1.]
     [1. 1. 0.]]
  """
  _, y, _, _, _, pairs = _lambdaweight_lists(scores, labels, item_where, segment_ids, item_weights)
  return jnp.where(pairs, jnp.abs(y[..., :, None] - y[..., None, :]), 0.0)


def _dcg_lambdaweight(
  pair_discount,
  scores,
  labels,
  item_where,
  segment_ids,
  item_weights,
  topn,
  normalize,
  gain_fn,
  discount_fn,
):
  ru.check_topn(topn)
  ru.check_function("discount_fn", discount_fn)
  s, y, valid, same, w, pairs = _lambdaweight_lists(
    scores, labels, item_where, segment_ids, item_weights
  )
  discount = discount_fn or ru.default_discount
  ranks = jnp.where(valid, ru.exact_ranks(s, valid, same), 1).astype(s.dtype)
  gains = ru.gains_of(y, w, gain_fn)
  if normalize:
    ideal = ru.ideal_dcg(gains, valid, same, topn, discount)
    gains = gains / jnp.where(ideal == 0, 1.0, ideal)
  gap = jnp.abs(gains[..., :, None] - gains[..., None, :])
  # Scaled by the list's size so that the weights are not tiny (rax's choice;
  # here the number of valid items, so masking an item equals removing it).
  size = jnp.sum(valid, axis=-1)[..., None, None].astype(s.dtype)
  return jnp.where(pairs, gap * pair_discount(ranks, discount, topn) * size, 0.0)


_DCG_LAMBDA_ARGS = """
  Args:
    scores: float array ``[..., L]``; their exact ranks (ties: the earlier item
      first) give the discounts.
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids; ranks are per segment.
    item_weights: optional per-item weights ``[..., L]`` multiplying the gains.
    topn: optional int cutoff (static).
    normalize: divide the gains by the segment's ideal DCG (NDCG weights; static).
    gain_fn: optional function of the labels giving the gains (default :math:`2^y - 1`).
    discount_fn: optional function of the 1-based ranks giving the discounts
      (default :math:`1 / \\log_2(1 + r)`).
{extra}
  Returns:
    The weights ``[..., L, L]``, 0 for pairs with a masked item or across
    segments. They are scaled by the number of valid items of the list (rax
    scales by the padded list size; the two agree when no item is masked).

  Raises:
    TypeError: non-integer ``topn``, a ``gain_fn`` or ``discount_fn`` that is not a function.
    ValueError: ``topn < 1``.
"""


def dcg_lambdaweight(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  topn: int | None = None,
  normalize: bool = False,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  discount_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  r"""LambdaRank's pair weights: the change in DCG when the two items swap places.

  .. math::
     \lambda_{ij} = n\,|g(y_i) - g(y_j)|\;
       \big|d(r_i)\,[r_i \le k] - d(r_j)\,[r_j \le k]\big|

  with gains :math:`g`, discounts :math:`d`, exact ranks :math:`r` by score,
  the cutoff :math:`k` = ``topn`` and :math:`n` the number of valid items.
  For ``lambdaweight=`` of a pairwise loss (``functools.partial`` sets the
  options): with :func:`pairwise_logistic_loss` it gives LambdaRank.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
    >>> print(jaxobj.dcg_lambdaweight(s, y))
    [[0.     0.3928 1.1072]
     [0.3928 0.     0.    ]
     [1.1072 0.     0.    ]]

  References:
    Burges et al., "Learning to Rank with Nonsmooth Cost Functions", NeurIPS 2006.
  """

  def pair_discount(ranks, discount, topn):
    d = discount(ranks)
    if topn is not None:
      d = jnp.where(ranks <= topn, d, 0.0)
    return jnp.abs(d[..., :, None] - d[..., None, :])

  return _dcg_lambdaweight(
    pair_discount,
    scores,
    labels,
    item_where,
    segment_ids,
    item_weights,
    topn,
    normalize,
    gain_fn,
    discount_fn,
  )


def dcg2_lambdaweight(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  topn: int | None = None,
  normalize: bool = False,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  discount_fn: Callable[[jax.Array], jax.Array] | None = None,
  light_discount: bool = False,
) -> jax.Array:
  r"""LambdaLoss's NDCG-Loss2 pair weights, discounted by the rank gap.

  .. math::
     \lambda_{ij} = n\,|g(y_i) - g(y_j)|\;
       \big|d(|r_i - r_j|) - d(|r_i - r_j| + 1)\big|

  (0 when :math:`r_i = r_j`), with :math:`|d(|r_i - r_j|)|` instead when
  ``light_discount``; with ``topn``, a pair whose lower item ranks below the
  cutoff is multiplied by :math:`1 / (1 - d(\max(r_i, r_j)))` (Jagerman et
  al. 2022). Gains :math:`g`, discounts :math:`d`, exact ranks :math:`r` and
  :math:`n` the number of valid items, as in :func:`dcg_lambdaweight`.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
    >>> print(jaxobj.dcg2_lambdaweight(s, y))
    [[0.     1.1072 1.1072]
     [1.1072 0.     0.    ]
     [1.1072 0.     0.    ]]

  References:
    Wang et al., "The LambdaLoss Framework for Ranking Metric Optimization",
    CIKM 2018; Jagerman et al., "On Optimizing Top-K Metrics for Neural
    Ranking Models", SIGIR 2022.
  """

  def pair_discount(ranks, discount, topn):
    gap = jnp.abs(ranks[..., :, None] - ranks[..., None, :])
    safe = jnp.where(gap == 0, 1.0, gap)  # the discount may be infinite at 0
    d = jnp.abs(discount(safe)) if light_discount else jnp.abs(discount(safe) - discount(safe + 1))
    d = jnp.where(gap == 0, 0.0, d)
    if topn is not None:
      lowest = jnp.maximum(ranks[..., :, None], ranks[..., None, :])
      d = d * jnp.where(lowest > topn, 1.0 / (1.0 - discount(lowest)), 1.0)
    return d

  return _dcg_lambdaweight(
    pair_discount,
    scores,
    labels,
    item_where,
    segment_ids,
    item_weights,
    topn,
    normalize,
    gain_fn,
    discount_fn,
  )


dcg_lambdaweight.__doc__ = (dcg_lambdaweight.__doc__ or "").replace(
  "{args}", _DCG_LAMBDA_ARGS.format(extra="")
)
dcg2_lambdaweight.__doc__ = (dcg2_lambdaweight.__doc__ or "").replace(
  "{args}",
  _DCG_LAMBDA_ARGS.format(extra="    light_discount: use the light discount (static).\n"),
)


# --------------------------------------------------------------------------
# Pairwise.


def _pair_values(pair_fn, s, y):
  """``pair_fn(s_i - s_j, y_i - y_j)`` on every pair ``[..., i, j]``, as
  ``(values, pairs)``; pairs default to ``y_i > y_j``."""
  out = pair_fn(s[..., :, None] - s[..., None, :], y[..., :, None] - y[..., None, :])
  if isinstance(out, tuple):
    values, pairs = out
    return values, jnp.broadcast_to(jnp.asarray(pairs, bool), values.shape)
  return out, y[..., :, None] > y[..., None, :]


def _pairwise(
  pair_fn,
  scores,
  labels,
  lambdaweight,
  item_where,
  item_weights,
  segment_ids,
  where,
  weights,
  reduction,
  per_pair=False,
):
  ru.check_function("lambdaweight", lambdaweight)
  checks.check_bool("per_pair", per_pair)
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  values, pairs = _pair_values(pair_fn, s, y)
  pairs = pairs & valid[..., :, None] & valid[..., None, :]
  if same is not None:
    pairs = pairs & same
  if w is not None:
    values = values * w[..., :, None]
  if lambdaweight is not None:
    values = values * lambdaweight(s, y, item_where=valid, segment_ids=segment_ids, item_weights=w)
  if per_pair:
    return ru.finish_unreduced(values, pairs, weights, reduction, 2, (s, y, valid))
  total = jnp.sum(jnp.where(pairs, values, 0.0), axis=(-2, -1))
  count = jnp.sum(pairs, axis=(-2, -1))
  per_list = total / jnp.maximum(count, 1).astype(total.dtype)
  return ru.finish(per_list, count > 0, where, weights, reduction, (s, y, valid))


_PAIRWISE_ARGS = """
  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape; {pairs}
    {hyper}lambdaweight: optional LambdaLoss weights: a function
      ``(scores, labels, *, item_where, segment_ids, item_weights) -> [..., L, L]``
      such as :func:`dcg_lambdaweight`, :func:`dcg2_lambdaweight` or
      :func:`labeldiff_lambdaweight` (``functools.partial`` sets their options);
      each pair's loss is multiplied by its weight.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]``; a pair is weighted
      by its first item :math:`i` (rax's convention), the denominator stays the
      number of pairs.
    segment_ids: optional integer ``[..., L]`` segment ids; only pairs within a
      segment count.
    per_pair: keep the pair axes (static): the per-element loss is each
      pair's term ``[..., L, L]`` (entry ``[i, j]``; 0 outside the valid pairs),
      rax's ``reduce_fn=None`` output in square form; ``"mean"`` then averages
      over every valid pair of the batch (rax's default mean), and
      ``where``/``weights`` still act on lists.
    where, weights, reduction: the loss contract over lists. ``weights=`` the
      number of valid pairs per list (or ``per_pair=True``) reproduces rax's
      mean over all pairs.

  Returns:
    The reduced loss; one value per list (its mean over pairs, 0 for a list
    without a valid pair) for ``reduction="none"``, or ``[..., L, L]`` per-pair
    values with ``per_pair=True``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape{raises}.
    TypeError: integer ``scores``, non-boolean masks, non-integer segment_ids,
      a ``lambdaweight`` that is not a function, a non-bool ``per_pair``.
"""
_ORDERED = "pairs with equal labels are skipped."


def _pairwise_doc(fn, hyper="", raises="", pairs=_ORDERED):
  fn.__doc__ = (fn.__doc__ or "").replace(
    "{args}", _PAIRWISE_ARGS.format(hyper=hyper, raises=raises, pairs=pairs)
  )
  return fn


def make_pairwise_loss(
  pair_fn: Callable[[jax.Array, jax.Array], Any], *, name: str | None = None
) -> Callable[..., Reduced]:
  r"""A pairwise ranking loss built from a function of a pair's score and label gaps.

  .. math::
     \ell(s, y) = \frac{1}{|P|} \sum_{(i,j) \in P} w_i\, \lambda_{ij}\,
       f(s_i - s_j,\ y_i - y_j),
     \qquad P = \{(i, j) : y_i > y_j\}

  over the valid pairs of the same segment (rax's ``pairwise_loss`` with a
  ``pair_loss_fn``). The returned function has the signature and contract of
  :func:`pairwise_logistic_loss`: ``lambdaweight``, ``item_where``,
  ``item_weights``, ``segment_ids``, ``per_pair``, ``where``, ``weights`` and
  ``reduction``. A hyperparameter of ``f`` is a closure variable, so it may be
  a traced array (build the loss inside the function that ``jax.vmap`` or
  ``jax.grad`` transforms).

  Args:
    pair_fn: ``f(score_diff, label_diff)`` on ``[..., L, L]`` arrays (entry
      ``[i, j]`` holds :math:`s_i - s_j` and :math:`y_i - y_j`) returning the
      per-pair losses, or ``(losses, pairs)`` with a boolean ``pairs`` to choose
      which pairs count instead of :math:`y_i > y_j`.
    name: the returned function's ``__name__`` (default ``"pairwise_loss"``).

  Returns:
    ``loss(scores, labels, *, lambdaweight=None, item_where=None,
    item_weights=None, segment_ids=None, per_pair=False, where=None,
    weights=None, reduction="mean")``.

  Raises:
    TypeError: ``pair_fn`` is not a function.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> exp_loss = jaxobj.make_pairwise_loss(lambda ds, dy: jnp.exp(-ds))
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(exp_loss(s, y, reduction="none"))
    [1.5431]
  """
  if not callable(pair_fn):
    raise TypeError(
      f"pair_fn must be a function f(score_diff, label_diff), got {pair_fn!r} of type "
      f"{type(pair_fn).__name__}."
    )

  def pairwise_loss(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    lambdaweight: LambdaWeight | None = None,
    item_where: ArrayLike | None = None,
    item_weights: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    per_pair: bool = False,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
  ) -> Reduced:
    return _pairwise(
      pair_fn,
      scores,
      labels,
      lambdaweight,
      item_where,
      item_weights,
      segment_ids,
      where,
      weights,
      reduction,
      per_pair,
    )

  pairwise_loss.__name__ = pairwise_loss.__qualname__ = name or "pairwise_loss"
  pairwise_loss.__doc__ = f"The pairwise loss built by make_pairwise_loss from {pair_fn!r}."
  return pairwise_loss


@register("ranking", inputs=examples.RANKED_LISTS)
def pairwise_logistic_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  lambdaweight: LambdaWeight | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_pair: bool = False,
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
  positives and sampled negatives instead). With
  ``lambdaweight=dcg_lambdaweight`` it is LambdaRank's loss, with
  ``dcg2_lambdaweight`` LambdaLoss's NDCG-Loss2.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_logistic_loss(s, y, reduction="none"))
    [0.8133]

  References:
    Burges et al., "Learning to Rank using Gradient Descent", ICML 2005;
    Wang et al., "The LambdaLoss Framework for Ranking Metric Optimization",
    CIKM 2018.
  """
  return _pairwise(
    lambda d, _: jax.nn.softplus(-d),
    scores,
    labels,
    lambdaweight,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
    per_pair,
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
  lambdaweight: LambdaWeight | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_pair: bool = False,
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
    >>> print(jaxobj.pairwise_hinge_loss(s, y, per_pair=True, reduction="none")[0])  # [i, j]
    [[0. 0. 2.]
     [0. 0. 0.]
     [0. 0. 0.]]

  References:
    Herbrich et al., "Large Margin Rank Boundaries for Ordinal Regression",
    2000; Joachims, "Optimizing Search Engines using Clickthrough Data", KDD 2002.
  """
  checks.check_range("margin", margin, low=0.0)
  return _pairwise(
    lambda d, _: jax.nn.relu(margin - d),
    scores,
    labels,
    lambdaweight,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
    per_pair,
  )


@register("ranking", inputs=examples.RANKED_LISTS)
def pairwise_soft_zero_one_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  lambdaweight: LambdaWeight | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_pair: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Pairwise soft zero-one loss: a sigmoid count of the misordered pairs.

  .. math::
     \ell(s, y) = \frac{1}{|P|} \sum_{(i,j) \in P} w_i\, \sigma\big(-(s_i - s_j)\big),
     \qquad P = \{(i, j) : y_i > y_j\}

  over valid pairs of the same segment: a smooth version of one minus the
  ordered-pair accuracy (:func:`opa_metric`). Bounded in [0, 1], so a badly
  misordered pair cannot dominate; its gradient vanishes for large gaps either way.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_soft_zero_one_loss(s, y, reduction="none"))
    [0.5]
  """
  return _pairwise(
    lambda d, _: jax.nn.sigmoid(-d),
    scores,
    labels,
    lambdaweight,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
    per_pair,
  )


def _all_pairs(ds, dy):
  return jnp.square(ds - dy), jnp.ones(ds.shape, bool)


@register("ranking", inputs=examples.RANKED_LISTS)
def pairwise_mse_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  lambdaweight: LambdaWeight | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_pair: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Pairwise squared error: score gaps should equal label gaps.

  .. math::
     \ell(s, y) = \frac{1}{|V|^2} \sum_{i \in V} \sum_{j \in V} w_i
       \big((s_i - s_j) - (y_i - y_j)\big)^2

  over **all** ordered pairs of valid items of the same segment, ties and
  :math:`i = j` included (:math:`|V|^2` pairs in one segment, as rax counts
  them). Invariant to a constant shift of the scores, unlike
  :func:`pointwise_mse_loss`.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_mse_loss(s, y, reduction="none"))
    [1.7778]
  """
  return _pairwise(
    _all_pairs,
    scores,
    labels,
    lambdaweight,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
    per_pair,
  )


@register(
  "ranking",
  inputs=examples.RANKED_LISTS,
  zero_hessian="piecewise linear in the scores (squared=False): two hinges kinked at 0",
)
def pairwise_qr_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  tau: float | ArrayLike = 0.5,
  squared: bool = False,
  lambdaweight: LambdaWeight | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_pair: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Pairwise quantile regression: the score gap fits a quantile of the label gap.

  .. math::
     \ell(s, y) = \frac{1}{|P|} \sum_{(i,j) \in P} w_i \big[
       \tau\, h\big(\Delta y_{ij} - \Delta s_{ij}\big)
       + (1 - \tau)\, h\big(\Delta s_{ij} - \Delta y_{ij}\big)\big],
     \qquad P = \{(i, j) : y_i > y_j\}

  with :math:`\Delta s_{ij} = s_i - s_j`, :math:`\Delta y_{ij} = y_i - y_j`
  and :math:`h(x) = \max(0, x)`, or :math:`\max(0, x)^2` with ``squared=True``.
  ``tau=0.5`` is median regression of the gaps.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.pairwise_qr_loss(s, y, reduction="none"))
    [0.5]

  References:
    Koenker and Bassett, "Regression Quantiles", Econometrica 1978.
  """
  checks.check_range("tau", tau, low=0.0, high=1.0, low_inclusive=False)

  def qr(ds, dy):
    under, over = jax.nn.relu(dy - ds), jax.nn.relu(ds - dy)
    if squared:
      under, over = jnp.square(under), jnp.square(over)
    return tau * under + (1.0 - tau) * over

  return _pairwise(
    qr,
    scores,
    labels,
    lambdaweight,
    item_where,
    item_weights,
    segment_ids,
    where,
    weights,
    reduction,
    per_pair,
  )


_pairwise_doc(pairwise_logistic_loss)
_pairwise_doc(pairwise_soft_zero_one_loss)
_pairwise_doc(
  pairwise_mse_loss,
  pairs="every pair counts, ties included.",
)
_pairwise_doc(
  pairwise_hinge_loss,
  hyper="margin: :math:`m`, non-negative (traceable).\n    ",
  raises=", ``margin < 0`` (when concrete)",
)
_pairwise_doc(
  pairwise_qr_loss,
  hyper="tau: the quantile :math:`\\tau \\in (0, 1]` (traceable).\n    "
  "squared: square each hinge (static).\n    ",
  raises=", ``tau`` outside (0, 1] (when concrete)",
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
  return ru.finish(per_row, count > 0, where, weights, reduction)


# --------------------------------------------------------------------------
# Listwise.


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def softmax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  normalize_labels: bool = True,
  label_fn: Callable[..., jax.Array] | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_segment: bool = False,
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
    label_fn: optional function ``(labels, *, where) -> targets`` applied to the
      weighted labels ``[..., L]`` (``where`` is the boolean item mask) in place
      of ``normalize_labels``, as rax's ``label_fn``.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]`` multiplying the labels.
    segment_ids: optional integer ``[..., L]`` segment ids: one softmax per segment.
    per_segment: keep one value per segment (static): the per-element loss is
      ``[..., L]``, each segment's value on its first valid item and 0
      elsewhere (rax's ``reduce_fn=None`` layout with segments; without
      ``segment_ids`` the list's value on its first valid item); ``"mean"``
      then averages over every segment of the batch (rax's default mean).
    where, weights, reduction: the loss contract over lists.

  {returns_segments}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 2.0]])
    >>> print(jaxobj.softmax_loss(s, y, reduction="none"))
    [0.9076]
    >>> seg = jnp.array([[0, 0, 1]])  # per segment, on its first item
    >>> print(jaxobj.softmax_loss(s, y, segment_ids=seg, per_segment=True, reduction="none"))
    [[0.3133 0.     0.    ]]

  References:
    Cao et al., "Learning to Rank: From Pairwise Approach to Listwise
    Approach", ICML 2007.
  """
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  ru.check_function("label_fn", label_fn)
  if w is not None:
    y = y * w
  if label_fn is not None:
    y = jnp.where(valid, label_fn(y, where=valid), 0.0)
  elif normalize_labels:
    total = ru.group_sum(y, same, valid)
    y = y / jnp.where(total != 0, total, 1.0)
  logp = ru.log_softmax(s, valid, same)
  terms = jnp.where(valid, -y * logp, 0.0)
  if per_segment:
    seg = ru.group_sum(terms, same, valid)
    return ru.segment_outputs(seg, valid, same, weights, reduction, (s, y, valid))
  total = jnp.sum(terms, axis=-1)
  per_list, counted = ru.segment_mean(total, valid, same)
  return ru.finish(per_list, counted, where, weights, reduction, (s, y, valid))


def _uniform_if_zero(y, valid, same):
  """Labels over their segment's sum; a segment summing to 0 gets a uniform target."""
  total = ru.group_sum(y, same, valid)
  size = ru.group_sum(jnp.ones_like(y), same, valid)
  return jnp.where(total != 0, y / jnp.where(total != 0, total, 1.0), 1.0 / jnp.maximum(size, 1.0))


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def poly1_softmax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: float | ArrayLike = 1.0,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_segment: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Poly-1 softmax loss: the softmax loss plus a linear term in the target's probability.

  .. math::
     \ell(s, y) = -\sum_{i \in V} w_i y_i \log p_i + \epsilon\,(1 - p_t),
     \qquad p_i = \frac{e^{s_i}}{\sum_{j \in V} e^{s_j}},\quad
     p_t = \sum_{i \in V} \hat y_i\, p_i

  over the valid items :math:`V` of a segment, with :math:`\hat y` the
  weighted labels normalized to sum to 1 (uniform over :math:`V` when they
  are all 0, as rax does). The cross-entropy uses the labels as given (rax's
  ``poly1_softmax_loss``); ``epsilon=0`` is :func:`softmax_loss` with
  ``normalize_labels=False``. A list's value is the mean over its segments.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: non-negative relevance labels, same shape.
    epsilon: :math:`\epsilon`, the weight of the first polynomial term (traceable;
      negative values are allowed, as in the paper).
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights ``[..., L]`` multiplying the labels.
    segment_ids: optional integer ``[..., L]`` segment ids: one softmax per segment.
    per_segment: keep one value per segment (static): the per-element loss is
      ``[..., L]``, each segment's value on its first valid item and 0
      elsewhere (rax's ``reduce_fn=None`` layout with segments; without
      ``segment_ids`` the list's value on its first valid item); ``"mean"``
      then averages over every segment of the batch (rax's default mean).
    where, weights, reduction: the loss contract over lists.

  {returns_segments}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 0.0, 0.0]])
    >>> print(jaxobj.poly1_softmax_loss(s, y, reduction="none"))
    [2.1629]

  References:
    Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022.
  """
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  if w is not None:
    y = y * w
  logp = ru.log_softmax(s, valid, same)
  target = jnp.where(valid, _uniform_if_zero(y, valid, same), 0.0)
  pt = ru.group_sum(target * jnp.exp(logp), same, valid)
  ce = ru.group_sum(-y * logp, same, valid)
  if per_segment:
    seg = ce + epsilon * (1.0 - pt)
    return ru.segment_outputs(seg, valid, same, weights, reduction, (s, y, valid))
  per_list, counted = ru.segment_values_mean(ce + epsilon * (1.0 - pt), valid, same)
  return ru.finish(per_list, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def unique_softmax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  item_where: ArrayLike | None = None,
  item_weights: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_segment: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Unique softmax loss: each item against only the items less relevant than it.

  .. math::
     \ell(s, y) = -\sum_{i \in V} g(y_i)\, w_i
       \log \frac{e^{s_i}}{e^{s_i} + \sum_{j \in V:\ y_j < y_i} e^{s_j}}

  over the valid items :math:`V` of a segment, with the gain
  :math:`g(y) = 2^y - 1` by default; a list's value is the mean over its
  segments. Items of equal label do not compete, so ties cost nothing
  (unlike ListMLE, which orders them).

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape.
    gain_fn: optional function of the labels giving each item's gain
      (default :math:`2^y - 1`; ``lambda y: jnp.ones_like(y)`` weighs items
      equally, as rax's ``gain_fn=None``).
    item_where: optional boolean ``[..., L]`` mask of valid items.
    item_weights: optional per-item weights :math:`w_i` ``[..., L]``.
    segment_ids: optional integer ``[..., L]`` segment ids.
    per_segment: keep one value per segment (static): the per-element loss is
      ``[..., L]``, each segment's value on its first valid item and 0
      elsewhere (rax's ``reduce_fn=None`` layout with segments; without
      ``segment_ids`` the list's value on its first valid item); ``"mean"``
      then averages over every segment of the batch (rax's default mean).
    where, weights, reduction: the loss contract over lists.

  {returns_segments}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.unique_softmax_loss(s, y, reduction="none"))
    [4.3497]

  References:
    Zhu and Klabjan, "Listwise Learning to Rank by Exploring Unique Ratings",
    WSDM 2020.
  """
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  w = ru.item_weight_array(item_weights, valid)
  n = s.shape[-1]
  below = (y[..., None, :] < y[..., :, None]) & ru.group_mask(valid, same)
  competitors = below | jnp.eye(n, dtype=bool)
  lse = ru.masked_logsumexp(jnp.broadcast_to(s[..., None, :], competitors.shape), competitors)
  g = ru.gains_of(y, w, gain_fn)
  terms = jnp.where(valid, -g * (s - lse), 0.0)
  if per_segment:
    seg = ru.group_sum(terms, same, valid)
    return ru.segment_outputs(seg, valid, same, weights, reduction, (s, y, valid))
  total = jnp.sum(terms, axis=-1)
  per_list, counted = ru.segment_mean(total, valid, same)
  return ru.finish(per_list, counted, where, weights, reduction, (s, y, valid))


def _tie_order(key, valid):
  """The position of each item when ties are broken: by position, or at random."""
  n = valid.shape[-1]
  if key is None:
    return jnp.broadcast_to(jnp.arange(n), valid.shape)
  u = jax.random.uniform(key, valid.shape)
  return jnp.argsort(jnp.argsort(u, axis=-1), axis=-1)


def _listmle_sorted(s, y, valid, order):
  """Sum over items of ``logsumexp(s over the items ranked at or below) - s``.

  Items are sorted with the invalid ones first and then by label descending
  (stable: ties keep their order), so each valid item's reverse cumulative
  log-sum-exp covers exactly the valid items at or below it.
  """
  key_valid = valid.astype(jnp.int32)
  _, _, _, s_sorted, valid_sorted = jax.lax.sort(
    (key_valid, -y, order, s, valid), dimension=-1, num_keys=3, is_stable=True
  )
  lse = jax.lax.cumlogsumexp(s_sorted, axis=s.ndim - 1, reverse=True)
  return jnp.sum(jnp.where(valid_sorted, lse - s_sorted, 0.0), axis=-1)


def _listmle_segments(s, y, valid, same, order):
  """The same terms, item by item, with the items at or below each item found
  pairwise, per segment."""
  yi, yj = y[..., :, None], y[..., None, :]
  not_before = order[..., None, :] >= order[..., :, None]  # [i, j]: j is not before i
  below = ((yj < yi) | ((yj == yi) & not_before)) & ru.group_mask(valid, same)
  lse = ru.masked_logsumexp(jnp.broadcast_to(s[..., None, :], below.shape), below)
  return jnp.where(valid, lse - s, 0.0)


@register("ranking", inputs=examples.RANKED_LISTS)
@_with_returns
def listmle_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  key: ArrayLike | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  per_segment: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""ListMLE: negative Plackett–Luce log-likelihood of the label order.

  .. math::
     \ell(s, y) = -\sum_{k=1}^{|V|} \log
       \frac{e^{s_{\pi(k)}}}{\sum_{m \ge k} e^{s_{\pi(m)}}}

  where :math:`\pi` sorts the valid items of a segment by label, descending;
  equal labels keep their order in the list, or are ordered at random with a
  ``key`` (rax's random tie-breaking: the loss is then an unbiased sample
  over the orders of tied items). A list's value is the mean over its
  segments. The cumulative log-sum-exp is computed stably, so scores of any
  size give finite values and gradients.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape.
    key: optional ``jax.random`` key that breaks ties between equal labels at
      random (a fresh key per step gives a new order of the ties).
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids: one ranking per segment.
    per_segment: keep one value per segment (static): the per-element loss is
      ``[..., L]``, each segment's value on its first valid item and 0
      elsewhere (rax's ``reduce_fn=None`` layout with segments; without
      ``segment_ids`` the list's value on its first valid item); ``"mean"``
      then averages over every segment of the batch (rax's default mean).
    where, weights, reduction: the loss contract over lists.

  {returns_segments}

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.listmle_loss(s, y, reduction="none"))
    [1.5345]

  References:
    Xia et al., "Listwise Approach to Learning to Rank: Theory and
    Algorithm", ICML 2008.
  """
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  order = _tie_order(key, valid)
  if same is None:
    total = _listmle_sorted(s, y, valid, order)
    seg = total[..., None]
  else:
    terms = _listmle_segments(s, y, valid, same, order)
    total = jnp.sum(terms, axis=-1)
    seg = ru.group_sum(terms, same, valid) if per_segment else None
  if per_segment:
    return ru.segment_outputs(seg, valid, same, weights, reduction, (s, y, valid))
  per_list, counted = ru.segment_mean(total, valid, same)
  return ru.finish(per_list, counted, where, weights, reduction, (s, y, valid))


# --------------------------------------------------------------------------
# NDCG: the exact metric and its smooth approximation.


def _step_sigmoid(temperature):
  return lambda d: jax.nn.sigmoid(d / temperature)


@register("ranking", inputs=examples.RANKED_LISTS)
def approx_ndcg_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: float | ArrayLike = 1.0,
  topn: int | None = None,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  discount_fn: Callable[[jax.Array], jax.Array] | None = None,
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

  (rax's ``approx_t12n(ndcg_metric)``; ``jaxobj.approx_t12n(jaxobj.ndcg_metric)``
  computes the same). IDCG is the exact ideal DCG; a list
  with no relevant item scores 0. With ``topn`` each term is multiplied by a
  soft top-``topn`` indicator, as rax's ``approx_cutoff`` does. Values lie in
  [-1, 0]; a list's value is the mean over its segments. Deliberate
  difference: masked items take no part in the soft cutoff (rax ranks them
  there, at approximate rank 1, so with ``where`` and ``topn`` a masked item
  can move rax's threshold); here masking an item equals removing it.

  Args:
    scores: float array ``[..., L]``; ``-inf`` masks an item.
    labels: relevance labels, same shape.
    temperature: :math:`T > 0`, smoothness of the ranks (traceable).
    topn: optional int cutoff (static).
    gain_fn: optional function of the labels giving the gains (default :math:`2^y - 1`).
    discount_fn: optional function of the 1-based ranks giving the discounts
      (default :math:`1 / \log_2(1 + r)`).
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
  ru.check_topn(topn)
  ru.check_function("discount_fn", discount_fn)
  s, y, valid, same = ru.prepare_lists(scores, labels, where, item_where, segment_ids)
  step = _step_sigmoid(temperature)
  ranks = ru.smooth_ranks(s, valid, same, step)
  cutoff = ru.smooth_cutoff(ranks, valid, same, topn, step)
  ndcg = _ndcg(
    s,
    y,
    ru.item_weight_array(item_weights, valid),
    valid,
    same,
    ranks,
    cutoff,
    topn,
    gain_fn,
    discount_fn,
  )
  values, counted = ru.segment_values_mean(ndcg, valid, same)
  return ru.finish(-values, counted, where, weights, reduction, (s, y, valid))


# --------------------------------------------------------------------------
# Metrics.

# A metric's ranks and top-n cutoff are replaceable, which is how
# jaxobj.approx_t12n and jaxobj.bound_t12n turn a metric into a loss.
RankFn = Callable[[jax.Array, jax.Array, "jax.Array | None"], jax.Array]
CutoffFn = Callable[[jax.Array, jax.Array, "jax.Array | None", "int | None"], jax.Array]


def _retrieval(scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn):
  """Valid items, their ranks, and how much each is retrieved (finite score,
  within ``topn``: 0 or 1 exactly, in [0, 1] for smooth cutoffs). ``-inf``
  scores stay valid but are never retrieved."""
  ru.check_topn(topn)
  ru.check_function("rank_fn", rank_fn)
  ru.check_function("cutoff_fn", cutoff_fn)
  s, y, valid, same = ru.prepare_lists(
    scores, labels, where, item_where, segment_ids, minus_inf_masks=False
  )
  ranks = (rank_fn or ru.exact_ranks)(s, valid, same).astype(s.dtype)
  ranks = jnp.where(valid, ranks, 1.0)
  cutoff = (cutoff_fn or ru.exact_cutoff)(ranks, valid, same, topn)
  retrieved = jnp.where(valid & (s > -jnp.inf), cutoff, 0.0)
  return s, y, valid, same, ranks, retrieved


def _ndcg(s, y, w, valid, same, ranks, retrieved, topn, gain_fn, discount_fn, normalize=True):
  """Per-item DCG (or NDCG) of each item's segment. The ideal DCG ranks the
  valid items by gain, exactly; a segment whose ideal DCG is 0 has NDCG 0."""
  ru.check_function("discount_fn", discount_fn)
  discount = discount_fn or ru.default_discount
  gains = ru.gains_of(y, w, gain_fn)
  items = jnp.where(valid, retrieved * gains * discount(ranks), 0.0)
  dcg = ru.group_sum(items, same, valid)
  if not normalize:
    return dcg
  ideal = ru.ideal_dcg(gains, valid, same, topn, discount)
  return dcg / jnp.where(ideal == 0, 1.0, ideal)


def _relevant(y, valid):
  return (valid & (y >= 1)).astype(y.dtype)


_METRIC_ARGS = """
  Args:
    scores: float array ``[..., L]``; an item scored ``-inf`` is unranked.
    labels: relevance labels, same shape.
    topn: optional int cutoff: only the top ``topn`` items count (static).
    {extra}rank_fn: optional function ``(scores, valid, same) -> ranks`` giving
      the 1-based rank of each item (``valid``: boolean ``[..., L]``; ``same``:
      boolean ``[..., L, L]``, items in one segment, or None); default exact
      ranks. :func:`approx_t12n` and :func:`bound_t12n` set it.
    cutoff_fn: optional function ``(ranks, valid, same, topn) -> [..., L]``, the
      degree to which each item is in the top ``topn``; default exact.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids; a list's value is the
      mean over its non-empty segments.
    where, weights, reduction: the contract over lists; the mean leaves out
      lists without a valid item.

  Returns:
    The reduced metric; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape, ``topn < 1``.
    TypeError: integer ``scores``, non-integer ``topn``, non-boolean masks, a
      ``rank_fn``, ``cutoff_fn``, ``gain_fn`` or ``discount_fn`` that is not a function.
"""
_GAIN_ARGS = (
  "gain_fn: optional function of the labels giving the gains (default :math:`2^y - 1`).\n"
  "    discount_fn: optional function of the 1-based ranks giving the discounts\n"
  "      (default :math:`1 / \\log_2(1 + r)`).\n"
  "    item_weights: optional per-item weights ``[..., L]`` multiplying the gains.\n    "
)


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def ndcg_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  discount_fn: Callable[[jax.Array], jax.Array] | None = None,
  item_weights: ArrayLike | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
  item_where: ArrayLike | None = None,
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
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  w = ru.item_weight_array(item_weights, valid)
  ndcg = _ndcg(s, y, w, valid, same, ranks, retrieved, topn, gain_fn, discount_fn)
  values, counted = ru.segment_values_mean(ndcg, valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def dcg_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  gain_fn: Callable[[jax.Array], jax.Array] | None = None,
  discount_fn: Callable[[jax.Array], jax.Array] | None = None,
  item_weights: ArrayLike | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Discounted cumulative gain, DCG@topn (not normalized).

  .. math::
     \mathrm{DCG}(s, y) = \sum_{i:\ r_i \le n} w_i \frac{g(y_i)}{d^{-1}(r_i)}
       = \sum_{i:\ r_i \le n} w_i \frac{2^{y_i} - 1}{\log_2(1 + r_i)}

  with the default gain and discount, :math:`r_i` the 1-based rank of item
  :math:`i` by score (ties: the earlier item first). Unranked (``-inf``) items
  add nothing. Unbounded: it grows with the list and the labels, so compare
  it only across lists of one kind (:func:`ndcg_metric` is normalized).
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.dcg_metric(s, y, reduction="none"))
    [2.8928]

  References:
    Järvelin and Kekäläinen, "Cumulated Gain-Based Evaluation of IR
    Techniques", TOIS 2002.
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  w = ru.item_weight_array(item_weights, valid)
  dcg = _ndcg(s, y, w, valid, same, ranks, retrieved, topn, gain_fn, discount_fn, normalize=False)
  values, counted = ru.segment_values_mean(dcg, valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def mrr_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
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
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  rr = _relevant(y, valid) * retrieved / ranks
  if same is None:
    best = jnp.max(rr, axis=-1, keepdims=True)
  else:
    best = jnp.max(jnp.where(ru.group_mask(valid, same), rr[..., None, :], 0.0), axis=-1)
  values, counted = ru.segment_values_mean(best, valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def precision_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
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
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  hits = ru.group_sum(retrieved * _relevant(y, valid), same, valid)
  count = ru.group_sum(retrieved, same, valid)
  values, counted = ru.segment_values_mean(hits / jnp.where(count == 0, 1.0, count), valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def recall_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Fraction of the relevant items that are retrieved in the top ``topn`` (recall@topn).

  .. math::
     \mathrm{R@n}(s, y) = \frac{|\{i : y_i \ge 1,\ r_i \le n\}|}{|\{i : y_i \ge 1\}|}

  Items with label :math:`\ge 1` are relevant; an unranked (``-inf``)
  relevant item counts in the denominator only. A list with no relevant item
  scores 0, as in rax.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 1.0, 0.0]])
    >>> print(jaxobj.recall_metric(s, y, topn=2, reduction="none"))
    [0.5]
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  relevant = _relevant(y, valid)
  hits = ru.group_sum(retrieved * relevant, same, valid)
  count = ru.group_sum(relevant, same, valid)
  values, counted = ru.segment_values_mean(hits / jnp.where(count == 0, 1.0, count), valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def ap_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  topn: int | None = None,
  rank_fn: RankFn | None = None,
  cutoff_fn: CutoffFn | None = None,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Average precision, AP@topn: the mean of the precisions at each relevant item's rank.

  .. math::
     \mathrm{AP@n}(s, y) = \frac{1}{|R|} \sum_{i \in R,\ r_i \le n}
       \frac{|\{j \in R : r_j \le r_i\}|}{r_i},
     \qquad R = \{i : y_i \ge 1\}

  Items with label :math:`\ge 1` are relevant; the denominator counts every
  relevant item, retrieved or not (rax's convention), so a relevant item
  below the cutoff or unranked (``-inf``) lowers AP. A list with no relevant
  item scores 0.
  {args}
  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[1.0, 1.0, 0.0]])
    >>> print(jaxobj.ap_metric(s, y, reduction="none"))
    [0.5833]

  References:
    Manning, Raghavan and Schütze, "Introduction to Information Retrieval",
    section 8.4, 2008.
  """
  s, y, valid, same, ranks, retrieved = _retrieval(
    scores, labels, where, item_where, segment_ids, topn, rank_fn, cutoff_fn
  )
  relevant = _relevant(y, valid)
  above = (ranks[..., None, :] <= ranks[..., :, None]) & ru.group_mask(valid, same)
  hits_above = jnp.sum(jnp.where(above, relevant[..., None, :], 0.0), axis=-1)
  precisions = retrieved * relevant * hits_above / ranks
  total = ru.group_sum(precisions, same, valid)
  count = ru.group_sum(relevant, same, valid)
  values, counted = ru.segment_values_mean(total / jnp.where(count == 0, 1.0, count), valid, same)
  return ru.finish(values, counted, where, weights, reduction, (s, y, valid))


@register("ranking", inputs=examples.RANKED_LISTS, kind="metric")
def opa_metric(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  item_where: ArrayLike | None = None,
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Ordered pair accuracy: the fraction of a list's ordered pairs that the scores order.

  .. math::
     \mathrm{OPA}(s, y) = \frac{|\{(i, j) \in P : s_i > s_j\}|}{|P|},
     \qquad P = \{(i, j) : y_i > y_j\}

  over valid pairs of the same segment (as the pairwise losses count them;
  :func:`pairwise_soft_zero_one_loss` is its smooth complement). Pairs with
  equal labels are skipped; pairs with equal scores count as misordered, and
  an unranked (``-inf``) item is below every ranked one, as in rax. A list
  without a valid pair is 0 and leaves the mean (rax keeps it in its mean as
  0).

  Args:
    scores: float array ``[..., L]``; an item scored ``-inf`` is unranked.
    labels: relevance labels, same shape.
    item_where: optional boolean ``[..., L]`` mask of valid items.
    segment_ids: optional integer ``[..., L]`` segment ids; only pairs within a
      segment count.
    where, weights, reduction: the contract over lists.

  Returns:
    The reduced metric; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``where`` has the item shape.
    TypeError: integer ``scores``, non-boolean masks, non-integer segment_ids.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[2.0, 1.0, 3.0]]), jnp.array([[2.0, 0.0, 1.0]])
    >>> print(jaxobj.opa_metric(s, y, reduction="none"))
    [0.6667]
  """
  s, y, valid, same = ru.prepare_lists(
    scores, labels, where, item_where, segment_ids, minus_inf_masks=False
  )
  pairs = ru.pair_mask(y, valid, same)
  correct = pairs & (s[..., :, None] > s[..., None, :])
  count = jnp.sum(pairs, axis=(-2, -1))
  values = jnp.sum(correct, axis=(-2, -1)) / jnp.maximum(count, 1).astype(s.dtype)
  return ru.finish(values, count > 0, where, weights, reduction, (s, y, valid))


for _metric in (mrr_metric, precision_metric, recall_metric, ap_metric):
  _metric.__doc__ = (_metric.__doc__ or "").replace("{args}", _METRIC_ARGS.format(extra=""))
for _metric in (ndcg_metric, dcg_metric):
  _metric.__doc__ = (_metric.__doc__ or "").replace("{args}", _METRIC_ARGS.format(extra=_GAIN_ARGS))


# --------------------------------------------------------------------------
# Transformations: functions in, functions out (rax's ``*_t12n``).
#
# approx_t12n and bound_t12n turn a metric that takes rank_fn and cutoff_fn
# into a differentiable loss (the negated metric with smooth ranks);
# gumbel_t12n makes a loss or metric see Gumbel-perturbed scores;
# segment_t12n gives segments to a ranking function that has none. Each
# returned function keeps the ranking contract.


def _accepts(fn: Callable[..., Any], name: str) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_callable(name: str, fn: Any) -> None:
  if not callable(fn):
    raise TypeError(f"{name} must be a function, got {fn!r} of type {type(fn).__name__}.")


def _negate(out):
  """The negated metric; for ``reduction="sum_and_count"`` only the sum."""
  if isinstance(out, tuple):
    total, count = out
    return -total, count
  return -out


def _smooth_metric_loss(metric_fn, rank_step, cutoff_step, prefix, what):
  _check_callable("metric_fn", metric_fn)
  params = inspect.signature(metric_fn).parameters
  smooth = {}
  if "rank_fn" in params:
    smooth["rank_fn"] = functools.partial(ru.smooth_ranks, step=rank_step)
  if "cutoff_fn" in params:
    smooth["cutoff_fn"] = functools.partial(ru.smooth_cutoff, step=cutoff_step)
  if not smooth:
    name = getattr(metric_fn, "__name__", repr(metric_fn))
    raise TypeError(
      f"{name} takes neither rank_fn nor cutoff_fn, so {prefix}_t12n cannot smooth it: its "
      f"gradient would be 0. Pass a metric with those arguments (ndcg_metric, dcg_metric, "
      f"mrr_metric, precision_metric, recall_metric, ap_metric), or use a loss such as "
      f"pairwise_soft_zero_one_loss (the smooth complement of opa_metric)."
    )

  @functools.wraps(metric_fn)
  def loss(scores: ArrayLike, labels: ArrayLike, **kwargs: Any) -> Any:
    # A -inf score masks the item, as in every jaxobj loss (in the metric it
    # would be an unranked item, which has no gradient to give).
    s = checks.as_float(scores, "scores")
    unmasked = ~jnp.isneginf(s)
    item_where = kwargs.get("item_where")
    if item_where is not None:
      unmasked = unmasked & ru.item_array(item_where, "item_where", s.shape, "mask")
    kwargs["item_where"] = unmasked
    return _negate(metric_fn(jnp.where(unmasked, s, 0.0), labels, **{**smooth, **kwargs}))

  name = getattr(metric_fn, "__name__", "metric")
  loss.__name__ = loss.__qualname__ = f"{prefix}_{name}"
  loss.__doc__ = (
    f"The negated {name} with {what} (built by jaxobj.{prefix}_t12n): a loss to minimize.\n\n"
    f"Same arguments as {name}; a -inf score masks the item."
  )
  return loss


def approx_t12n(metric_fn: Callable[..., Any], *, temperature: float = 1.0) -> Callable[..., Any]:
  r"""Turns a ranking metric into a differentiable loss through sigmoid ranks.

  .. math::
     \hat r_i = 1 + \sum_{j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big),
     \qquad \ell(s, y) = -\mathrm{metric}(s, y;\ \hat r)

  The metric is computed with the smooth ranks :math:`\hat r` and, for a
  ``topn`` cutoff, a smooth top-``topn`` membership
  :math:`\sigma((\hat r_{(k)} - \hat r_i) / T)` around a stop-gradient
  threshold halfway between the ``topn``-th and the next item (Qin et al.;
  rax's ``approx_t12n``). The ideal DCG of NDCG stays exact.
  ``approx_t12n(ndcg_metric)`` is :func:`~jaxobj.approx_ndcg_loss`. A
  ``-inf`` score masks the item (in the metric it would be unranked), so
  padded lists give finite values and gradients. Explicit ``rank_fn=`` or
  ``cutoff_fn=`` keywords of the call override the smooth ones.

  Args:
    metric_fn: a ranking metric taking ``rank_fn`` and/or ``cutoff_fn``
      keywords (``(scores, valid, same) -> ranks`` and
      ``(ranks, valid, same, topn) -> [..., L]``, as :func:`~jaxobj.ndcg_metric`).
    temperature: :math:`T > 0`; smaller is closer to the exact metric, with
      sparser gradients. May be a traced array: build the loss inside the
      function that ``jax.vmap`` or ``jax.grad`` transforms.

  Returns:
    ``loss(scores, labels, **metric_kwargs)``, the negated smooth metric, with
    the metric's arguments (``topn``, masks, ``where``, ``weights``,
    ``reduction``...).

  Raises:
    TypeError: ``metric_fn`` is not a function or takes neither ``rank_fn``
      nor ``cutoff_fn`` (its gradient would be 0).
    ValueError: ``temperature <= 0`` (when concrete).

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> approx_mrr = jaxobj.approx_t12n(jaxobj.mrr_metric)
    >>> s, y = jnp.array([[0.0, 1.0, 3.0, 2.0]]), jnp.array([[0.0, 0.0, 1.0, 2.0]])
    >>> print(round(float(approx_mrr(s, y)), 4))
    -0.6966
    >>> print(jax.grad(approx_mrr)(s, y))
    [[ 0.0219  0.0509 -0.1683  0.0954]]

  References:
    Qin et al., "A General Approximation Framework for Direct Optimization of
    Information Retrieval Measures", Information Retrieval 2010.
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)

  def step(d):
    return jax.nn.sigmoid(d / temperature)

  return _smooth_metric_loss(metric_fn, step, step, "approx", "sigmoid ranks")


def bound_t12n(metric_fn: Callable[..., Any]) -> Callable[..., Any]:
  r"""Turns a ranking metric into a loss through hinge bounds on ranks and cutoffs.

  .. math::
     \bar r_i = 1 + \sum_{j \ne i} \max(0,\ s_j - s_i + 1),
     \qquad \ell(s, y) = -\mathrm{metric}(s, y;\ \bar r)

  Each step :math:`[s_j > s_i]` is replaced by the hinge
  :math:`\max(0, s_j - s_i + 1) \ge [s_j > s_i]`, so :math:`\bar r_i` bounds
  the rank from above; a ``topn`` cutoff uses the lower bound
  :math:`1 - \max(0, 1 - x)` of its step. For metrics that fall with the rank
  (NDCG, DCG, MRR, AP) the result is a lower bound of the metric and the
  loss an upper bound of its negation (rax's ``bound_t12n``). A ``-inf``
  score masks the item.

  Args:
    metric_fn: a ranking metric taking ``rank_fn`` and/or ``cutoff_fn``
      keywords, as for :func:`approx_t12n`.

  Returns:
    ``loss(scores, labels, **metric_kwargs)``, the negated bound.

  Raises:
    TypeError: ``metric_fn`` is not a function or takes neither ``rank_fn``
      nor ``cutoff_fn``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> bound_mrr = jaxobj.bound_t12n(jaxobj.mrr_metric)
    >>> s, y = jnp.array([[0.0, 1.0, 3.0, 2.0]]), jnp.array([[0.0, 1.0, 0.0, 1.0]])
    >>> print(round(float(bound_mrr(s, y)), 4))
    -0.3333
  """

  def upper(d):
    return jax.nn.relu(d + 1.0)

  def lower(d):
    return 1.0 - jax.nn.relu(1.0 - d)

  return _smooth_metric_loss(metric_fn, upper, lower, "bounded", "hinge-bounded ranks")


def gumbel_t12n(
  fn: Callable[..., Any],
  *,
  samples: int = 8,
  beta: float = 1.0,
  smoothing_factor: float | None = None,
) -> Callable[..., Any]:
  r"""Makes a ranking loss or metric see Gumbel-perturbed scores, averaged over samples.

  .. math::
     \ell_G(s, y) = \frac{1}{S} \sum_{k=1}^{S} \ell(s + \beta g_k, y),
     \qquad g_k \sim \mathrm{Gumbel}(0, 1)^L

  i.i.d. per item and sample; with ``smoothing_factor`` :math:`\epsilon` the
  perturbed scores become :math:`\log(\operatorname{softmax}(s + \beta g_k) +
  \epsilon)` over the list's valid items (rax's option; ``1e-20`` matches
  TF-Ranking's Gumbel losses). Sampling scores from the Plackett–Luce model
  this way turns a deterministic ranking loss into a stochastic one (Bruch
  et al. 2020). The returned function needs a ``key=``; if ``fn`` takes a
  ``key`` itself (:func:`~jaxobj.listmle_loss`), it gets a key split off it.
  The noise is drawn as rax draws it: under one jax version a key gives
  rax's values.

  Reductions: ``"none"`` gives each list's mean over the samples; ``"mean"``,
  ``"sum"`` and ``"sum_and_count"`` reduce those over the lists (with
  ``where`` and ``weights``) as ``fn`` does.

  Args:
    fn: a ranking loss or metric ``fn(scores, labels, **kwargs)`` with the
      jaxobj contract (``where``, ``weights``, ``reduction``).
    samples: :math:`S`, the number of Gumbel samples (static).
    beta: :math:`\beta`, the scale of the noise (may be a traced array).
    smoothing_factor: optional :math:`\epsilon`; ``<= 0`` may give ``-inf``.

  Returns:
    ``fn_gumbel(scores, labels, *, key, **kwargs)``.

  Raises:
    TypeError: ``fn`` is not a function, ``samples`` not an int, or ``key`` missing.
    ValueError: ``samples < 1``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> loss = jaxobj.gumbel_t12n(jaxobj.softmax_loss)
    >>> s, y = jnp.array([[0.0, 1.0, 3.0, 2.0]]), jnp.array([[0.0, 0.0, 1.0, 2.0]])
    >>> print(round(float(loss(s, y, normalize_labels=False, key=jax.random.PRNGKey(42))), 4))
    3.457

  References:
    Bruch et al., "A Stochastic Treatment of Learning to Rank Scoring
    Functions", WSDM 2020.
  """
  _check_callable("fn", fn)
  checks.check_int("samples", samples)
  checks.check_range("samples", samples, low=1)
  takes_key = _accepts(fn, "key")

  def repeat(x):
    return jnp.broadcast_to(x, (samples,) + jnp.shape(x))

  @functools.wraps(fn)
  def gumbel_fn(scores: ArrayLike, labels: ArrayLike, *, key: ArrayLike, **kwargs: Any) -> Any:
    if key is None:
      raise TypeError(f"gumbel_{fn.__name__} needs key=, a jax.random key.")
    reduction = kwargs.pop("reduction", "mean")
    checks.check_reduction(reduction)
    s = checks.as_float(scores, "scores")
    s, y = repeat(s), repeat(jnp.asarray(labels))
    kwargs = {
      k: repeat(v) if isinstance(v, (jax.Array, np.ndarray)) and k != "key" else v
      for k, v in kwargs.items()
    }
    if takes_key:
      key, kwargs["key"] = jax.random.split(key)
    noisy = s + beta * jax.random.gumbel(key, s.shape, s.dtype)
    if smoothing_factor is not None:
      valid = ~jnp.isneginf(noisy)
      if kwargs.get("item_where") is not None:
        valid = valid & ru.item_array(kwargs["item_where"], "item_where", s.shape, "mask")
      # log(softmax + eps) rather than log_softmax: the smoothing is the point.
      noisy = jnp.log(jax.nn.softmax(jnp.where(valid, noisy, -jnp.inf)) + smoothing_factor)
    if reduction == "none":
      return jnp.mean(fn(noisy, y, reduction="none", **kwargs), axis=0)
    out = fn(noisy, y, reduction=reduction, **kwargs)
    if reduction == "mean":
      return out
    if reduction == "sum":
      return out / samples
    total, count = out
    return total / samples, count / samples

  gumbel_fn.__name__ = gumbel_fn.__qualname__ = f"gumbel_{getattr(fn, '__name__', 'fn')}"
  return gumbel_fn


def segment_t12n(fn: Callable[..., Any]) -> Callable[..., Any]:
  r"""Gives ``segment_ids=`` to a ranking loss or metric that has no segments.

  .. math:: \ell(s, y) = \frac{1}{|G|} \sum_{g \in G} \ell(s_g, y_g)

  over the segments :math:`G` of a list that have something to rank (those
  that ``fn`` counts in its mean): each segment is computed as a separate
  list. A function that already takes ``segment_ids`` (every jaxobj ranking
  loss and metric) is returned as it is: its own segments are faster, and for
  the pairwise losses they average over all the list's pairs instead. Costs
  :math:`O(L^2)` memory per list (one row per item), as rax's
  ``segment_t12n`` does.

  Args:
    fn: ``fn(scores, labels, *, item_where, where, weights, reduction, ...)``
      with the ranking contract, per-list values for ``reduction="none"``
      and ``"sum_and_count"`` supported (any jaxobj ranking function, or one
      built on :func:`jaxobj.reduce_loss`).

  Returns:
    ``fn_segmented(scores, labels, *, segment_ids=None, **kwargs)``; array
    keyword arguments of rank at least 1 are per-item (``[..., L]``).

  Raises:
    TypeError: ``fn`` is not a function; non-integer ``segment_ids``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> def top1(s, y, *, item_where=None, where=None, weights=None, reduction="mean"):
    ...   return jaxobj.softmax_loss(
    ...     s, y, item_where=item_where, where=where, weights=weights, reduction=reduction
    ...   )
    >>> s, y = jnp.array([[2.0, 1.0, 3.0, 0.0]]), jnp.array([[1.0, 0.0, 1.0, 0.0]])
    >>> seg = jnp.array([[0, 0, 1, 1]])
    >>> print(jaxobj.segment_t12n(top1)(s, y, segment_ids=seg, reduction="none"))
    [0.1809]
    >>> print(jaxobj.softmax_loss(s, y, segment_ids=seg, reduction="none"))
    [0.1809]
  """
  _check_callable("fn", fn)
  if _accepts(fn, "segment_ids"):
    return fn

  @functools.wraps(fn)
  def segmented(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    segment_ids: ArrayLike | None = None,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
    **kwargs: Any,
  ) -> Any:
    if segment_ids is None:
      return fn(scores, labels, where=where, weights=weights, reduction=reduction, **kwargs)
    checks.check_reduction(reduction)
    s = checks.as_float(scores, "scores")
    checks.check_same_shape("scores", s, "labels", labels)
    ru.check_list_where(where, s.shape)
    shape, n = s.shape, s.shape[-1]
    same = ru.same_segment(segment_ids, shape)
    # Row r holds the items of r's segment if r is its first item, else nothing.
    rows = same & (jnp.cumsum(same, axis=-2) == 1)
    item_where = kwargs.pop("item_where", None)
    if item_where is not None:
      rows = rows & ru.item_array(item_where, "item_where", shape, "mask")[..., None, :]

    def per_row(x):  # [..., L] -> [M, 1, L], one list per (list, row)
      return jnp.broadcast_to(jnp.asarray(x)[..., None, :], shape + (n,)).reshape(-1, 1, n)

    args = {
      k: per_row(jnp.broadcast_to(v, shape))
      if isinstance(v, (jax.Array, np.ndarray)) and v.ndim >= 1 and k != "key"
      else v
      for k, v in kwargs.items()
    }
    arrays = {k: v for k, v in args.items() if k in kwargs and v is not kwargs[k]}
    static = {k: v for k, v in args.items() if k not in arrays}

    def one(s_row, y_row, mask_row, extra):
      return fn(s_row, y_row, item_where=mask_row, reduction="sum_and_count", **extra, **static)

    total, count = jax.vmap(one)(per_row(s), per_row(labels), rows.reshape(-1, 1, n), arrays)
    total, count = total.reshape(shape), count.reshape(shape)
    total, count = jnp.sum(total, axis=-1), jnp.sum(count, axis=-1)
    values = total / jnp.maximum(count, 1.0)
    return ru.finish(values, count > 0, where, weights, reduction)

  segmented.__name__ = segmented.__qualname__ = f"segment_{getattr(fn, '__name__', 'fn')}"
  return segmented
