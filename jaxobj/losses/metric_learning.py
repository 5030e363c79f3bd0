r"""Metric-learning losses: embeddings pulled together or pushed apart by label.

Three kinds of input:

* **Explicit tuples**: pairs (:func:`pairwise_contrastive_loss`,
  :func:`cosine_embedding_loss`) or triplets (:func:`triplet_margin_loss`)
  of embeddings ``[..., D]``, one loss per tuple.
* **Labelled batches**: embeddings ``[..., D]`` with integer labels ``[...]``
  (:func:`npairs_loss`, :func:`multi_similarity_loss`,
  :func:`batch_hard_triplet_loss`, :func:`batch_all_triplet_loss`). The
  leading axes are flattened into one batch; every row is an anchor and every
  other row is a candidate positive (same label) or negative (other label).
  The loss is per anchor (shape ``labels.shape``), and a row masked with
  ``where`` leaves the batch entirely (as anchor, positive and negative), so
  ``loss(x, y, where=m) == loss(x[m], y[m])`` even with NaN in masked rows.
  ``weights`` weight each anchor's loss, not its role as someone's positive
  or negative.
* **Margin softmax against class centres** (:func:`arcface_loss`,
  :func:`cosface_loss`): one loss per embedding; the ``(K, D)`` centres are a
  positional array, learnable like any parameter
  (:func:`init_class_centers` draws initial ones).

Numerics: every distance or similarity matrix is one matmul at
``Precision.HIGHEST`` (TF32/bf16 matmuls would ruin the cancellation in
distances), never a ``[B, B, D]`` broadcast. Squared Euclidean distances are
:math:`\|a\|^2 + \|b\|^2 - 2a\cdot b` of embeddings centred on the batch mean
(distances do not change, the cancellation error shrinks), clamped at 0;
square roots have gradient 0 at 0, so duplicate embeddings give finite
gradients. Hinges :math:`\max(0, v)` have gradient 0 at :math:`v = 0` (as
``jax.nn.relu`` and torch's ``clamp_min``), not ``jnp.maximum``'s 1/2.
Cosine similarities divide by :math:`\max(\|x\|, \epsilon)`, so a
zero vector has similarity 0 with everything, with finite gradients.
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxobj._src import checks, inputs
from jaxobj._src.examples import metric_learning as examples
from jaxobj._src.examples import parity as parity_examples
from jaxobj._src.labelled_batches import distances_and_masks as _distances_and_masks
from jaxobj._src.labelled_batches import labelled_batch as _labelled_batch
from jaxobj._src.labelled_batches import log1p_sum_exp as _log1p_sum_exp
from jaxobj._src.labelled_batches import masked_embeddings as _embeddings
from jaxobj._src.labelled_batches import masked_logsumexp as _masked_logsumexp
from jaxobj._src.labelled_batches import positives_negatives as _positives_negatives
from jaxobj._src.labelled_batches import reduce_anchors as _reduce_anchors
from jaxobj._src.margin_softmax import (
  ARCFACE_MODES,
  NORMALIZE_EPS,
  arcface_target_logit,
)
from jaxobj._src.margin_softmax import gram as _gram
from jaxobj._src.margin_softmax import margin_softmax as _margin_softmax
from jaxobj._src.margin_softmax import normalize as _normalize
from jaxobj._src.margin_softmax import safe_sqrt as _safe_sqrt
from jaxobj._src.margin_softmax import sq_norm as _sq_norm
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "arcface_loss",
  "batch_all_triplet_loss",
  "batch_hard_triplet_loss",
  "circle_loss",
  "cosface_loss",
  "cosine_embedding_loss",
  "hinge_embedding_loss",
  "init_class_centers",
  "margin_ranking_loss",
  "multi_similarity_loss",
  "npairs_loss",
  "pairwise_contrastive_loss",
  "triplet_margin_loss",
]

# torch.nn.functional.cosine_similarity's default eps.
_COSINE_SIMILARITY_EPS = 1e-8
# Added to the squared norms by torch.nn.functional.cosine_embedding_loss.
_COSINE_EMBEDDING_EPS = 1e-12

TRIPLET_DISTANCES = ("lp", "squared_euclidean", "cosine")


# --------------------------------------------------------------------------
# Numerical building blocks.


def _lp_norm(v, p):
  """``||v||_p`` over the last axis, for any ``p > 0`` (traceable).

  Computed as ``s * (sum (|v|/s)^p)^(1/p)`` with ``s = max |v|`` held
  constant, which cannot overflow; the norm is homogeneous of degree 1, so
  that gradient is exact. Zero entries (and all-zero ``v``) have gradient 0.
  """
  if isinstance(p, (int, float)) and p == 2:
    return _safe_sqrt(_sq_norm(v))
  a = jnp.abs(v)
  scale = jax.lax.stop_gradient(jnp.max(a, axis=-1))
  nonzero = scale != 0  # a NaN scale takes the nonzero branch, so NaN reaches the value
  r = a / jnp.where(nonzero, scale, 1.0)[..., None]
  pos = r != 0
  powers = jnp.where(pos, jnp.exp(p * jnp.log(jnp.where(pos, r, 1.0))), 0.0)
  total = jnp.where(nonzero, jnp.sum(powers, axis=-1), 1.0)  # >= 1 when nonzero
  return jnp.where(nonzero, scale * jnp.exp(jnp.log(total) / p), 0.0)


def _sum_of_hinges(thresholds, d, neg):
  r"""``h[i, j] = sum_{n : neg[i, n]} max(0, thresholds[i, j] - d[i, n])``.

  For every anchor ``i`` its negatives' distances are sorted once; the sum
  for a threshold ``t`` is ``k t - (sum of the k smallest)``, with ``k`` the
  number of them below ``t`` (a binary search). ``O(N^2 log N)`` time and
  ``O(N^2)`` memory instead of an ``[N, N, N]`` triplet tensor. Each row is
  shifted by its median negative distance (a constant, so gradients are
  exact) to keep the prefix sums and hence their cancellation small.
  """
  srt = jnp.sort(jnp.where(neg, d, jnp.inf), axis=1)  # negatives first
  n_neg = jnp.sum(neg, axis=1)
  median = jnp.take_along_axis(srt, (n_neg // 2)[:, None], axis=1)
  shift = jax.lax.stop_gradient(jnp.where(n_neg[:, None] > 0, median, 0.0))
  shifted = jnp.where(jnp.isfinite(srt), srt - shift, 0.0)
  prefix = jnp.cumsum(jnp.concatenate([jnp.zeros_like(shifted[:, :1]), shifted], axis=1), axis=1)
  below = jax.vmap(functools.partial(jnp.searchsorted, side="left"))(srt, thresholds)
  # A NaN distance sorts last and is never below a threshold: pass it on explicitly.
  nan = jnp.where(jnp.any(neg & jnp.isnan(d), axis=1, keepdims=True), jnp.nan, 0.0)
  return (
    below.astype(d.dtype) * (thresholds - shift) - jnp.take_along_axis(prefix, below, axis=1) + nan
  )


# --------------------------------------------------------------------------
# Inputs.


def _pair_labels(labels, like, like_name, shape, where, fill):
  """One real-valued label per pair, shape ``like.shape[:-1]``."""
  y = jnp.asarray(labels)
  if y.shape != shape:
    raise ValueError(
      f"labels.shape must equal {like_name}.shape[:-1] (one label per pair), got "
      f"{like_name}.shape={like.shape} and labels.shape={y.shape}. Reshape labels "
      f"(e.g. labels.squeeze(-1) for a trailing axis of 1)."
    )
  return masked_fill(where, checks.as_target(y, "labels", like), shape, fill=fill)


def _margin_inputs(embeddings, labels, centers, where):
  """Cosines ``[..., K]`` of embeddings to centres and the labels (masked rows zeroed)."""
  x = checks.as_float(embeddings, "embeddings")
  y = checks.as_labels(labels, "labels")
  checks.check_label_shape("embeddings", x, "labels", y)
  w = checks.as_float(centers, "centers")
  if w.ndim != 2 or w.shape[1] != x.shape[-1]:
    raise ValueError(
      f"centers must have shape (num_classes, D) with D = embeddings.shape[-1], got "
      f"centers.shape={w.shape} and embeddings.shape={x.shape}. Draw them with "
      f"init_class_centers(key, num_classes, {x.shape[-1]})."
    )
  shape = y.shape
  x = masked_fill(where, x, shape, axis_extra=1)
  y = masked_fill(where, y, shape, fill=0)
  cos = _gram(_normalize(x, NORMALIZE_EPS), _normalize(w, NORMALIZE_EPS))
  return cos, y


# --------------------------------------------------------------------------
# Pairs and triplets.


@register("metric_learning", inputs=examples.PAIRS_BINARY)
def pairwise_contrastive_loss(
  embeddings1: ArrayLike,
  embeddings2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Contrastive loss of embedding pairs: similar pairs pulled in, dissimilar pushed past a margin.

  .. math::
     \ell(x_1, x_2, y) = y\, d^2 + (1 - y) \max(0,\ m - d)^2,
     \qquad d = \|x_1 - x_2\|_2

  The form of Hadsell, Chopra and LeCun (2006) without its factors of 1/2 and
  with :math:`y = 1` for a *similar* pair (their :math:`Y = 0`), as in
  TensorFlow Addons' ``contrastive_loss`` (which takes :math:`d` itself).
  pytorch-metric-learning's ``ContrastiveLoss`` is another loss: unsquared
  hinges :math:`\max(0, d - m_+)` and :math:`\max(0, m_- - d)` over every
  pair of a labelled batch, averaged over the non-zero ones.
  Soft labels in [0, 1] interpolate linearly. At :math:`d = 0` (identical
  embeddings) the hinge term's gradient is taken as 0: the direction to push
  apart is undefined there.

  Args:
    embeddings1: float array ``[..., D]``.
    embeddings2: float array of the same shape.
    labels: ``[...]`` (``embeddings1.shape[:-1]``), 1 for a similar pair and
      0 for a dissimilar one (bool, int or float).
    margin: :math:`m`, non-negative (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the pairs.

  Returns:
    The reduced loss; one value per pair for ``reduction="none"``.

  Raises:
    ValueError: embedding shapes differ, ``labels.shape`` is not
      ``embeddings1.shape[:-1]``, or ``margin < 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x1 = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    >>> x2 = jnp.array([[0.6, 0.8], [0.3, 0.4]])
    >>> print(jaxobj.pairwise_contrastive_loss(x1, x2, jnp.array([1.0, 0.0]),
    ...                                        reduction="none"))
    [1.   0.25]

  References:
    Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an
    Invariant Mapping", CVPR 2006.
  """
  checks.check_range("margin", margin, low=0.0)
  (x1, x2), shape = _embeddings(("embeddings1", "embeddings2"), (embeddings1, embeddings2), where)
  y = _pair_labels(labels, x1, "embeddings1", shape, where, fill=1.0)
  d2 = _sq_norm(x1 - x2)
  hinge = jax.nn.relu(margin - _safe_sqrt(d2))
  values = y * d2 + (1.0 - y) * jnp.square(hinge)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("metric_learning", inputs=examples.PAIRS_SIGNED)
def cosine_embedding_loss(
  embeddings1: ArrayLike,
  embeddings2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.0,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Cosine embedding loss: 1 - cos for similar pairs, a hinge on cos for dissimilar ones.

  .. math::
     \ell(x_1, x_2, y) = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\
       \max(0,\ \cos(x_1, x_2) - m) & y = -1 \end{cases},\qquad
     \cos(x_1, x_2) = \frac{x_1 \cdot x_2}
       {\sqrt{(\|x_1\|^2 + \epsilon)(\|x_2\|^2 + \epsilon)}}

  with :math:`\epsilon = 10^{-12}` as in ``torch.nn.functional.cosine_embedding_loss``,
  so a zero vector has cosine 0 (loss 1 if similar, :math:`\max(0, -m)` if
  not) with finite gradients. Unlike torch, which gives 0 for labels other
  than :math:`\pm 1`, such labels give NaN, so a {0, 1} label vector cannot
  pass silently: map it with ``2 * labels - 1``.

  Args:
    embeddings1: float array ``[..., D]`` (the feature axis ``D`` at ``axis``).
    embeddings2: float array of the same shape.
    labels: +1 (similar) or -1, one per pair: the shape of ``embeddings1``
      without the feature axis (``embeddings1.shape[:-1]`` for ``axis=-1``).
    margin: :math:`m` in [-1, 1] (traceable).
    axis: the feature axis (static int), ``-1`` by default; e.g. ``axis=0``
      for ``[D, N]`` embeddings stored one per column.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the pairs (the other axes, in order).

  Returns:
    The reduced loss; one value per pair for ``reduction="none"``.

  Raises:
    ValueError: embedding shapes differ, bad ``labels`` shape, ``margin``
      outside [-1, 1], ``axis`` out of range.
    TypeError: integer embeddings, ``axis`` not an int.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x1 = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    >>> x2 = jnp.array([[0.0, 2.0], [1.0, 1.0], [3.0, 4.0]])
    >>> print(jaxobj.cosine_embedding_loss(x1, x2, jnp.array([1.0, -1.0, 1.0]),
    ...                                    margin=0.5, reduction="none"))
    [1.     0.2071 1.    ]
  """
  checks.check_range("margin", margin, low=-1.0, high=1.0)
  embeddings1, embeddings2 = checks.feature_axis_last(
    "cosine_embedding_loss", axis, ("embeddings1", "embeddings2"), embeddings1, embeddings2
  )
  (x1, x2), shape = _embeddings(("embeddings1", "embeddings2"), (embeddings1, embeddings2), where)
  y = _pair_labels(labels, x1, "embeddings1", shape, where, fill=1.0)
  cos = jnp.sum(x1 * x2, axis=-1) / (
    jnp.sqrt(_sq_norm(x1) + _COSINE_EMBEDDING_EPS) * jnp.sqrt(_sq_norm(x2) + _COSINE_EMBEDDING_EPS)
  )
  values = jnp.where(y == 1, 1.0 - cos, jnp.where(y == -1, jax.nn.relu(cos - margin), jnp.nan))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


_PAIR_HINGE = "piecewise linear: a hinge max(0, margin - ...), kinked at the margin"


def _signed(y: jax.Array) -> jax.Array:
  """±1 labels with 0 read as -1 (as the binary hinge losses do)."""
  return jnp.where(y == 0, -1.0, y).astype(y.dtype)


@register("metric_learning", inputs=parity_examples.RANKING_PAIRS, zero_hessian=_PAIR_HINGE)
def margin_ranking_loss(
  scores1: ArrayLike,
  scores2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Margin ranking loss: for label +1 the first score should beat the second by a margin.

  .. math:: \ell(s_1, s_2, y) = \max\big(0,\ m - y\,(s_1 - s_2)\big)

  PyTorch's ``margin_ranking_loss`` (``margin=0``, the mean over every
  pair). ``y = -1`` asks for :math:`s_2 > s_1`; a label 0 is read as -1
  (as in :func:`~jaxobj.hinge_loss`); other values scale the difference, as
  in torch.

  Args:
    scores1: float array of any shape.
    scores2: float array of the same shape.
    labels: +1 or -1 (0 is read as -1), same shape.
    margin: :math:`m` (traceable; torch allows any real value).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`);
      the mean is over the unmasked pairs.

  Returns:
    The reduced loss; one value per pair for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer scores.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.margin_ranking_loss(jnp.array([2.0, 0.0]), jnp.array([1.75, 1.0]),
    ...                                  jnp.array([1.0, 1.0]), margin=0.5, reduction="none"))
    [0.25 1.5 ]
  """
  s1 = checks.as_float(scores1, "scores1")
  checks.check_same_shape("scores1", s1, "scores2", scores2)
  s2 = checks.as_float(scores2, "scores2")
  checks.check_same_shape("scores1", s1, "labels", labels)
  y = _signed(checks.as_target(labels, "labels", s1))
  shape = s1.shape
  s1, s2, y = (masked_fill(where, a, shape) for a in (s1, s2, y))
  values = jax.nn.relu(margin - y * (s1 - s2))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("metric_learning", inputs=parity_examples.DISTANCES_SIGNED, zero_hessian=_PAIR_HINGE)
def hinge_embedding_loss(
  distances: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Hinge embedding loss: small distances for similar pairs, a margin for dissimilar ones.

  .. math::
     \ell(d, y) = \begin{cases} d & y = 1 \\ \max(0,\ m - d) & y = -1 \end{cases}

  PyTorch's ``hinge_embedding_loss`` (``margin=1``, the mean over every
  pair): ``distances`` are usually the L1 or L2 distances of two embeddings.
  A label 0 is read as -1 (as in :func:`~jaxobj.hinge_loss`); any other label
  gives NaN, so a mistaken label never passes as a number.

  Args:
    distances: float array of any shape (non-negative in the usual use).
    labels: +1 (similar) or -1 (dissimilar), 0 read as -1, same shape.
    margin: :math:`m` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`);
      the mean is over the unmasked pairs.

  Returns:
    The reduced loss; one value per pair for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``distances``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.hinge_embedding_loss(jnp.array([0.3, 0.4, 2.0]), jnp.array([1.0, -1.0, -1.0]),
    ...                                   reduction="none"))
    [0.3 0.6 0. ]
  """
  d, y = inputs.binary_inputs(distances, labels, where, names=("distances", "labels"))
  y = _signed(y)
  values = jnp.where(y == 1, d, jnp.where(y == -1, jax.nn.relu(margin - d), jnp.nan))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _tuple_distance(x, y, distance, p, eps):
  if distance == "squared_euclidean":
    return _sq_norm(x - y)
  if distance == "cosine":
    return 1.0 - jnp.sum(
      _normalize(x, _COSINE_SIMILARITY_EPS) * _normalize(y, _COSINE_SIMILARITY_EPS), axis=-1
    )
  return _lp_norm(x - y + eps, p)


@register("metric_learning", inputs=examples.TRIPLETS)
def triplet_margin_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  negatives: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  p: float | ArrayLike = 2.0,
  eps: float | ArrayLike = 1e-6,
  swap: bool = False,
  distance: str = "lp",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Triplet margin loss: the positive closer to the anchor than the negative by a margin.

  .. math::
     \ell(a, p, n) = \max\big(0,\ d(a, p) - d(a, n) + m\big),\qquad
     d(a, n) \leftarrow \min\big(d(a, n),\ d(p, n)\big)\ \text{with swap}

  ``distance`` chooses :math:`d`:

  * ``"lp"`` (default): :math:`\|x - y + \epsilon\|_p`, exactly
    ``torch.nn.functional.pairwise_distance`` (so the defaults reproduce
    ``torch.nn.functional.triplet_margin_loss``, including ``swap``, the
    distance swap of Balntas et al.);
  * ``"squared_euclidean"``: :math:`\|x - y\|^2` (FaceNet; ``p`` and ``eps``
    unused);
  * ``"cosine"``: :math:`1 - \cos(x, y)` with torch's ``cosine_similarity``
    (:math:`x\cdot y / (\max(\|x\|, 10^{-8}) \max(\|y\|, 10^{-8}))`), i.e.
    ``triplet_margin_with_distance_loss`` with that distance function.

  The :math:`\ell_p` norm is computed scaled by the largest entry (no
  overflow, any traced ``p``); its gradient at a zero difference is 0.

  Args:
    anchors: float array ``[..., D]``.
    positives: float array of the same shape.
    negatives: float array of the same shape.
    margin: :math:`m`, non-negative (traceable).
    p: the norm's order, positive (traceable; ``"lp"`` only).
    eps: :math:`\epsilon` added to the difference, non-negative (traceable;
      ``"lp"`` only).
    swap: use :math:`\min(d(a, n), d(p, n))` as the negative distance (static).
    distance: ``"lp"``, ``"squared_euclidean"`` or ``"cosine"`` (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the triplets.

  Returns:
    The reduced loss; one value per triplet for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, unknown ``distance``, ``margin < 0``,
      ``p <= 0`` or ``eps < 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.5]])
    >>> print(round(float(jaxobj.triplet_margin_loss(a, pos, neg, eps=0.0)), 4))
    0.5

  References:
    Schroff, Kalenichenko and Philbin, "FaceNet", CVPR 2015; Balntas et al.,
    "Learning local feature descriptors with triplets and shallow
    convolutional neural networks", BMVC 2016.
  """
  checks.check_range("margin", margin, low=0.0)
  checks.check_range("p", p, low=0.0, low_inclusive=False)
  checks.check_range("eps", eps, low=0.0)
  checks.check_choice("distance", distance, TRIPLET_DISTANCES)
  (a, pos, neg), _ = _embeddings(
    ("anchors", "positives", "negatives"), (anchors, positives, negatives), where
  )
  dist = functools.partial(_tuple_distance, distance=distance, p=p, eps=eps)
  d_neg = dist(a, neg)
  if swap:
    d_neg = jnp.minimum(d_neg, dist(pos, neg))
  values = jax.nn.relu(dist(a, pos) - d_neg + margin)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Labelled batches.


@register("metric_learning", inputs=examples.ANCHOR_POSITIVE_LABELS, couples_rows=True)
def npairs_loss(
  anchors: ArrayLike,
  positives: ArrayLike,
  labels: ArrayLike,
  *,
  reg_lambda: float | ArrayLike = 0.002,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multi-class N-pair loss: each anchor's positive picked from the batch's positives by softmax.

  .. math::
     \ell_i = -\sum_j t_{ij} \log \operatorname{softmax}_j(a_i \cdot p_j)
       + \tfrac{\lambda}{4}\big(\|a_i\|^2 + \|p_i\|^2\big),\qquad
     t_{ij} = \frac{[y_i = y_j]}{\sum_k [y_i = y_k]}

  Row :math:`i` of ``positives`` is the positive of anchor :math:`i`; the
  other rows are its negatives, except rows with the same label, which share
  the target mass (the soft targets of TensorFlow's ``npairs_loss``). The
  mean over anchors equals TensorFlow's ``npairs_loss(labels, anchors,
  positives, reg_lambda)``, whose L2 term
  :math:`\frac{\lambda}{4}(\overline{\|a\|^2} + \overline{\|p\|^2})` is split
  over the anchors. Similarities are plain dot products (no normalisation).
  pytorch-metric-learning's ``NPairsLoss`` differs: it draws one
  (anchor, positive) pair per label from a single labelled batch, L2-normalises
  the embeddings (its default ``DotProductSimilarity`` has
  ``normalize_embeddings=True``) and has no L2 term: ``reg_lambda=0`` on
  those pairs, each divided by its norm, reproduces it.

  Every anchor has at least its own positive, so nothing is degenerate; a
  batch of one pair gives only the L2 term.

  Args:
    anchors: float array ``[..., D]``; leading axes are flattened into one batch.
    positives: float array of the same shape.
    labels: integer array ``anchors.shape[:-1]``: the class of each pair.
    reg_lambda: :math:`\lambda`, the L2 penalty on the embeddings,
      non-negative (traceable).
    where: mask over the pairs; a masked pair is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`) over
      the anchors.

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: shapes differ, ``reg_lambda < 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = jaxobj.npairs_loss(a, a, jnp.array([0, 1]), reg_lambda=0.0)
    >>> print(round(float(loss), 4))  # log(1 + e^-1)
    0.3133

  References:
    Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
    Objective", NeurIPS 2016.
  """
  checks.check_range("reg_lambda", reg_lambda, low=0.0)
  (a, p), y, valid, shape = _labelled_batch(
    ("anchors", "positives"), (anchors, positives), labels, where
  )
  sim = _gram(a, p)
  cols = valid[None, :]
  # Rows of masked anchors get harmless logits (all -inf would give NaN gradients).
  logits = jnp.where(valid[:, None], jnp.where(cols, sim, -jnp.inf), 0.0)
  target = (y[:, None] == y[None, :]) & cols
  target_sim = jnp.sum(jnp.where(target, sim, 0.0), axis=1) / jnp.maximum(
    jnp.sum(target, axis=1), 1
  )
  values = (
    jax.nn.logsumexp(logits, axis=1) - target_sim + 0.25 * reg_lambda * (_sq_norm(a) + _sq_norm(p))
  )
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def multi_similarity_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 2.0,
  beta: float | ArrayLike = 50.0,
  base: float | ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multi-similarity loss: soft weighting of every positive and negative cosine similarity.

  .. math::
     \ell_i = \frac{1}{\alpha}\log\Big(1 + \sum_{p \in P_i} e^{-\alpha (S_{ip} - \lambda)}\Big)
       + \frac{1}{\beta}\log\Big(1 + \sum_{n \in N_i} e^{\beta (S_{in} - \lambda)}\Big)

  with :math:`S` the cosine similarities (embeddings divided by
  :math:`\max(\|x\|, 10^{-12})`), :math:`P_i` the other rows with anchor
  :math:`i`'s label and :math:`N_i` the rows with another label. This is
  pytorch-metric-learning's ``MultiSimilarityLoss`` with its defaults (cosine
  similarity, no miner; the paper's pair mining is a separate miner there
  too), including its mean over all anchors. Computed with log-sum-exp.

  An anchor without positives (or negatives) gets 0 for that term, so an
  anchor alone in the batch has loss 0; it still counts in the mean (as in
  pytorch-metric-learning).

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    alpha: positive-pair scale :math:`\alpha > 0` (traceable).
    beta: negative-pair scale :math:`\beta > 0` (traceable).
    base: the similarity offset :math:`\lambda` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`) over
      the anchors.

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``alpha <= 0``
      or ``beta <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    >>> print(jaxobj.multi_similarity_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [0.2568 0.2568 0.1139]

  References:
    Wang et al., "Multi-Similarity Loss with General Pair Weighting for Deep
    Metric Learning", CVPR 2019.
  """
  checks.check_range("alpha", alpha, low=0.0, low_inclusive=False)
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  (x,), y, valid, shape = _labelled_batch(("embeddings",), (embeddings,), labels, where)
  z = _normalize(x, NORMALIZE_EPS)
  sim = _gram(z, z) - base
  pos, neg = _positives_negatives(y, valid)
  a, b = jnp.asarray(alpha), jnp.asarray(beta)
  values = _log1p_sum_exp(-a * sim, pos) / a + _log1p_sum_exp(b * sim, neg) / b
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def circle_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.4,
  gamma: float | ArrayLike = 80.0,
  detach_weights: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Circle loss (Sun et al. 2020): every pair re-weighted by how far it is from its optimum.

  .. math::
     \ell_i = \log\Big(1 + \sum_{n \in N_i} e^{\gamma\,\alpha_n (s_n - \Delta_n)}
       \sum_{p \in P_i} e^{-\gamma\,\alpha_p (s_p - \Delta_p)}\Big),
     \qquad \alpha_p = [1 + m - s_p]_+,\ \alpha_n = [s_n + m]_+,
     \ \Delta_p = 1 - m,\ \Delta_n = m

  the pair-based form, on the cosine similarities :math:`s` of anchor
  :math:`i` to the other rows with its label (:math:`P_i`) and with another
  label (:math:`N_i`); embeddings are divided by :math:`\max(\|x\|,
  10^{-12})`. The defaults are pytorch-metric-learning's and Keras's
  (``m=0.4``, ``gamma=80``; the paper uses ``m=0.25, gamma=256`` for faces).
  By default the gradient is the exact derivative of the value, weights
  :math:`\alpha` included; the paper's implementation and
  pytorch-metric-learning hold the weights constant (``stop_gradient``):
  ``detach_weights=True`` gives that update (the same value, a gradient
  that is not the value's derivative).
  Computed as ``softplus`` of a sum of log-sum-exps, so a large ``gamma``
  does not overflow.

  An anchor without a positive or without a negative has no pairs to
  weigh: it is left out of the mean (as pytorch-metric-learning's average
  over non-zero losses does) and gets 0 under ``reduction="none"``.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: the relaxation :math:`m` (traceable).
    gamma: the scale :math:`\gamma > 0` (traceable).
    detach_weights: hold :math:`\alpha_p, \alpha_n` constant in the gradient,
      as the paper's code does.
    where: mask over the rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`) over
      the anchors that have both a positive and a negative.

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``gamma <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> print(jaxobj.circle_loss(x, jnp.array([0, 0, 1, 1]), gamma=4.0, reduction="none"))
    [0.6653 0.9945 0.9945 0.6653]

  References:
    Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
    Optimization", CVPR 2020.
  """
  checks.check_range("gamma", gamma, low=0.0, low_inclusive=False)
  (x,), y, valid, shape = _labelled_batch(("embeddings",), (embeddings,), labels, where)
  z = _normalize(x, NORMALIZE_EPS)
  s = _gram(z, z)
  pos, neg = _positives_negatives(y, valid)
  m, g = jnp.asarray(margin), jnp.asarray(gamma)
  alpha_p, alpha_n = jax.nn.relu(1.0 + m - s), jax.nn.relu(s + m)
  if detach_weights:
    alpha_p, alpha_n = jax.lax.stop_gradient(alpha_p), jax.lax.stop_gradient(alpha_n)
  lse_p, has_p = _masked_logsumexp(-g * alpha_p * (s - (1.0 - m)), pos)
  lse_n, has_n = _masked_logsumexp(g * alpha_n * (s - m), neg)
  both = has_p & has_n
  values = jax.nn.softplus(jnp.where(both, lse_p + lse_n, 0.0))
  return _reduce_anchors(values, both, shape, weights, reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def batch_hard_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  soft: bool = False,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Batch-hard triplet loss: each anchor's farthest positive against its nearest negative.

  .. math::
     \ell_i = h\Big(\max_{p \in P_i} d_{ip} - \min_{n \in N_i} d_{in} + m\Big),
     \qquad h = \max(0, \cdot)\ \text{or}\ \operatorname{softplus}\ (\text{soft})

  :math:`P_i`: the other rows with anchor :math:`i`'s label; :math:`N_i`:
  rows with another label. ``distance`` is ``"euclidean"`` (default),
  ``"squared_euclidean"`` or ``"cosine"`` (:math:`1 - \cos`). Embeddings are
  used as given. pytorch-metric-learning's ``TripletMarginLoss`` with a
  ``BatchHardMiner`` gives the same per-anchor values on normalised
  embeddings (its default distance normalises them; its default margin is
  0.05), but with the hinge its default ``AvgNonZeroReducer`` averages over
  the anchors with a positive loss only: that is ``reduction="sum"`` divided
  by the number of positive values of ``reduction="none"``.

  An anchor with no positive or no negative in the (unmasked) batch forms no
  triplet: its loss is 0 and it is **left out of the mean**, like a masked
  anchor. When every anchor has both, the mean equals TensorFlow Addons'
  ``triplet_hard_loss`` (L2 distance); its ``soft=True`` drops the margin,
  ours is ``softplus(... + m)`` as pytorch-metric-learning's ``smooth_loss``
  (``margin=0`` gives the soft margin of Hermans et al.).

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`m`, non-negative (traceable).
    soft: softplus instead of the hinge (static).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is :math:`\sum w_i\ell_i / \sum w_i`
      over anchors with a triplet.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: bad shapes, unknown ``distance``, ``margin < 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [9.0, 9.0]])
    >>> y = jnp.array([0, 0, 1, 2])  # rows 2 and 3 have no positive
    >>> print(jaxobj.batch_hard_triplet_loss(x, y, reduction="none"))
    [0.5    0.1972 0.     0.    ]
    >>> print(round(float(jaxobj.batch_hard_triplet_loss(x, y)), 4))  # mean of two
    0.3486

  References:
    Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", arXiv:1703.07737, 2017.
  """
  checks.check_range("margin", margin, low=0.0)
  d, pos, neg, shape = _distances_and_masks(embeddings, labels, where, distance)
  has_triplet = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  # The initial values let an empty batch reduce.
  hardest_pos = jnp.max(jnp.where(pos, d, -jnp.inf), axis=1, initial=-jnp.inf)
  hardest_neg = jnp.min(jnp.where(neg, d, jnp.inf), axis=1, initial=jnp.inf)
  v = jnp.where(has_triplet, hardest_pos - hardest_neg + margin, 0.0)
  values = jax.nn.softplus(v) if soft else jax.nn.relu(v)
  return _reduce_anchors(values, has_triplet, shape, weights, reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def batch_all_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Batch-all triplet loss: every valid triplet of the batch, averaged per anchor.

  .. math::
     \ell_i = \frac{1}{|P_i|\,|N_i|} \sum_{p \in P_i} \sum_{n \in N_i}
       \max\big(0,\ d_{ip} - d_{in} + m\big)

  :math:`P_i`: the other rows with anchor :math:`i`'s label; :math:`N_i`:
  rows with another label; ``distance`` as in :func:`batch_hard_triplet_loss`.
  The sum over negatives is computed from each anchor's sorted negative
  distances (a prefix sum and a binary search), in :math:`O(B^2 \log B)` time
  and :math:`O(B^2)` memory, never a :math:`B^3` triplet tensor.

  Each anchor's loss is the mean over its own triplets. Other implementations
  average over all triplets of the batch (or, as TensorFlow's reference code
  and pytorch-metric-learning's ``AvgNonZeroReducer``, over those with a
  positive loss); the mean over all triplets is
  ``loss(..., weights=n_pos * n_neg)`` with :math:`n_\mathrm{pos} = |P_i|`,
  :math:`n_\mathrm{neg} = |N_i|` per anchor, and ``reduction="sum"`` with the
  same weights is their sum.

  An anchor with no positive or no negative forms no triplet: its loss is 0
  and it is **left out of the mean**, like a masked anchor.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`m`, non-negative (traceable).
    distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a triplet.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: bad shapes, unknown ``distance``, ``margin < 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [0.0, 3.0]])
    >>> print(jaxobj.batch_all_triplet_loss(x, jnp.array([0, 0, 1, 1]), reduction="none"))
    [0.25   0.0986 0.8486 0.    ]

  References:
    Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", arXiv:1703.07737, 2017.
  """
  checks.check_range("margin", margin, low=0.0)
  d, pos, neg, shape = _distances_and_masks(embeddings, labels, where, distance)
  n_pos, n_neg = jnp.sum(pos, axis=1), jnp.sum(neg, axis=1)
  hinges = _sum_of_hinges(d + margin, d, neg)  # [anchor, positive]: sum over negatives
  total = jnp.sum(jnp.where(pos, hinges, 0.0), axis=1)
  values = total / jnp.maximum(n_pos * n_neg, 1).astype(total.dtype)
  return _reduce_anchors(values, (n_pos > 0) & (n_neg > 0), shape, weights, reduction)


# --------------------------------------------------------------------------
# Margin softmax against class centres.


def init_class_centers(
  key: jax.Array,
  num_classes: int,
  dim: int,
  dtype: DTypeLike = jnp.float32,
) -> jax.Array:
  r"""Initial class centres for :func:`arcface_loss` / :func:`cosface_loss`.

  .. math:: w_k = g_k / \|g_k\|,\qquad g_k \sim \mathcal{N}(0, I_D)

  Unit vectors uniformly distributed on the sphere. The losses normalise the
  centres themselves, so only directions matter; unit norm keeps an
  optimizer's step size comparable across classes. (pytorch-metric-learning
  draws :math:`\mathcal{N}(0, 1)` entries without normalising, InsightFace
  Xavier-uniform ones: the same directions in distribution.)

  Args:
    key: a ``jax.random`` key.
    num_classes: :math:`K`, positive.
    dim: :math:`D`, the embedding dimension, positive.
    dtype: floating dtype of the result.

  Returns:
    A ``(num_classes, dim)`` array with unit-norm rows.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> w = jaxobj.init_class_centers(jax.random.key(0), 10, 4)
    >>> print(w.shape, bool(jnp.allclose(jnp.linalg.norm(w, axis=1), 1.0)))
    (10, 4) True
  """
  for name, n in (("num_classes", num_classes), ("dim", dim)):
    try:
      ok = operator.index(n) >= 1
    except TypeError:
      ok = False
    if not ok:
      raise ValueError(f"{name} must be a positive int, got {name}={n!r}.")
  g = jax.random.normal(key, (num_classes, dim), dtype)
  return _normalize(g, NORMALIZE_EPS)


@register("metric_learning", inputs=examples.MARGIN_SOFTMAX)
def arcface_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: float | ArrayLike = 0.5,
  scale: float | ArrayLike = 64.0,
  margin_mode: str = "threshold",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""ArcFace (additive angular margin) loss: softmax over scaled cosines, target angle plus m.

  .. math::
     \ell_i = -\log \frac{e^{s\,\phi(\theta_{y_i})}}
       {e^{s\,\phi(\theta_{y_i})} + \sum_{k \ne y_i} e^{s \cos\theta_k}},\qquad
     \phi(\theta) = \cos(\theta + m)

  where :math:`\cos\theta_k` is the cosine between embedding :math:`i` and
  centre :math:`k` (both divided by :math:`\max(\|\cdot\|, 10^{-12})`).
  ``margin_mode`` decides what happens where :math:`\theta + m` passes
  :math:`\pi` (there :math:`\cos(\theta + m)` turns back up, so the target
  logit stops decreasing with the angle):

  * ``"threshold"`` (default, InsightFace's ``easy_margin=False`` and
    pytorch-metric-learning's ``ArcFaceLoss``, whose ``margin`` is in
    degrees: its default 28.6° is 0.4992 rad; its ``W`` is our
    ``centers.T``): :math:`\phi = \cos\theta - m \sin m` when
    :math:`\cos\theta \le \cos(\pi - m)`;
  * ``"easy"`` (InsightFace's ``easy_margin=True``): :math:`\phi = \cos\theta`
    when :math:`\cos\theta \le 0`;
  * ``"plain"``: :math:`\cos(\theta + m)` everywhere.

  No arccos is taken: :math:`\cos(\theta + m) = \cos\theta\cos m - \sin\theta\sin m`
  with :math:`\sin\theta = \sqrt{(1 - \cos\theta)(1 + \cos\theta)}`, whose
  gradient is taken as 0 at :math:`\cos\theta = \pm 1` (where
  :math:`d\theta/d\cos\theta` is infinite and the direction of the angle's
  change undefined), so values and gradients stay finite there.

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, K)`` (and not masked) gives NaN.
    centers: float array ``(K, D)``, the class centres (learnable; see
      :func:`init_class_centers`). Gradients flow to them.
    margin: :math:`m` in radians, in :math:`[0, \pi)` (traceable).
    scale: :math:`s > 0` (traceable).
    margin_mode: ``"threshold"``, ``"easy"`` or ``"plain"`` (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``centers`` not
      ``(K, D)`` with the embeddings' ``D`` (both shapes are named), unknown
      ``margin_mode``, ``margin`` or ``scale`` out of range.
    TypeError: integer embeddings or centres, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> x = jnp.array([[2.0, 0.0]])
    >>> loss = jaxobj.arcface_loss(x, jnp.array([0]), centers, margin=0.5, scale=1.0)
    >>> print(round(float(loss), 4))  # log(1 + exp(0 - cos 0.5))
    0.3477

  References:
    Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", CVPR 2019.
  """
  checks.check_range("margin", margin, low=0.0, high=math.pi, high_inclusive=False)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  checks.check_choice("margin_mode", margin_mode, ARCFACE_MODES)
  cos, y = _margin_inputs(embeddings, labels, centers, where)
  target_logit = functools.partial(arcface_target_logit, margin=margin, margin_mode=margin_mode)
  return _margin_softmax(cos, y, target_logit, scale, where, weights, reduction)


@register("metric_learning", inputs=examples.MARGIN_SOFTMAX)
def cosface_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: float | ArrayLike = 0.35,
  scale: float | ArrayLike = 64.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""CosFace (additive cosine margin) loss: softmax over scaled cosines, target cosine minus m.

  .. math::
     \ell_i = -\log \frac{e^{s(\cos\theta_{y_i} - m)}}
       {e^{s(\cos\theta_{y_i} - m)} + \sum_{k \ne y_i} e^{s \cos\theta_k}}

  Cosines as in :func:`arcface_loss`. Defaults (:math:`m = 0.35`,
  :math:`s = 64`) and values are those of pytorch-metric-learning's
  ``CosFaceLoss`` (with ``W = centers.T``).

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, K)`` (and not masked) gives NaN.
    centers: float array ``(K, D)``, the class centres (learnable).
    margin: :math:`m \ge 0` (traceable).
    scale: :math:`s > 0` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named),
      ``margin < 0``, ``scale <= 0``.
    TypeError: integer embeddings or centres, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = jaxobj.cosface_loss(jnp.array([[2.0, 0.0]]), jnp.array([0]), centers,
    ...                            margin=0.35, scale=1.0)
    >>> print(round(float(loss), 4))  # log(1 + exp(0 - 0.65))
    0.4201

  References:
    Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
    Recognition", CVPR 2018.
  """
  checks.check_range("margin", margin, low=0.0)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  cos, y = _margin_inputs(embeddings, labels, centers, where)
  return _margin_softmax(cos, y, lambda c: c - margin, scale, where, weights, reduction)
