r"""Batch-structure embedding losses: every pair of a labelled batch, weighed together.

The losses of this module take a **labelled batch**, as the batch losses of
:mod:`jaxobj.losses.metric_learning` do: embeddings ``[..., D]`` with integer
labels ``[...]``; the leading axes are flattened into one batch, every row is
an anchor, and every other row is a positive (same label) or a negative
(another label). The loss is per anchor (shape ``labels.shape``); a row
masked with ``where`` leaves the batch entirely (as anchor, positive and
negative), so ``loss(x, y, where=m) == loss(x[m], y[m])`` even with NaN in
masked rows, and ``weights`` weight each anchor's loss. An anchor with nothing
to compare (no positive, or no negative, as each loss says) gets 0 and is
left out of the mean, like a masked one.

Where a paper averages over the pairs of the batch, each anchor's loss here is
the mean over its own pairs; ``weights`` equal to each anchor's pair count
(for example ``n_pos`` below) turn the mean over anchors into the paper's
mean over pairs:

>>> import jax.numpy as jnp, jaxobj
>>> y = jnp.array([0, 0, 0, 1, 1, 2])
>>> n_pos = jnp.sum(y[:, None] == y[None, :], axis=1) - 1.0
>>> print(n_pos)
[2. 2. 2. 1. 1. 0.]

Distances are those of :func:`jaxobj.batch_hard_triplet_loss` (one matmul at
full precision, the batch mean removed first, square roots with gradient 0 at
0); cosine similarities divide by :math:`\max(\|x\|, 10^{-12})`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import labelled_batches as lb
from jaxobj._src.examples import embedding_structure as structure_examples
from jaxobj._src.examples import metric_learning as examples
from jaxobj._src.reduce import Reduced
from jaxobj.registry import register

__all__ = [
  "angular_loss",
  "centroid_triplet_loss",
  "fast_ap_loss",
  "generalized_lifted_structure_loss",
  "histogram_loss",
  "intra_pair_variance_loss",
  "lifted_structure_loss",
  "margin_loss",
  "nca_loss",
  "pnp_loss",
  "ranked_list_loss",
  "snr_contrastive_loss",
  "tuplet_margin_loss",
]


def _pair_mean(pair_values, pos):
  """Each anchor's mean of ``pair_values`` over its positives (0 if none)."""
  total = jnp.sum(jnp.where(pos, pair_values, 0.0), axis=1)
  return total / jnp.maximum(jnp.sum(pos, axis=1), 1).astype(total.dtype)


# --------------------------------------------------------------------------
# Lifted structure.


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def lifted_structure_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Lifted structured loss (Oh Song et al. 2016): each positive pair against both rows' negatives.

  .. math::
     J_{ij} = \log\Big(\sum_{k \in N_i} e^{\alpha - D_{ik}}
       + \sum_{l \in N_j} e^{\alpha - D_{jl}}\Big) + D_{ij},\qquad
     \ell_i = \frac{1}{|P_i|} \sum_{j \in P_i} \tfrac{1}{2} \max(0, J_{ij})^2

  the smooth upper bound of the paper (its eq. 4), with :math:`D` the
  Euclidean distance (``distance`` as in :func:`jaxobj.batch_hard_triplet_loss`),
  :math:`\alpha` the margin, :math:`P_i` the other rows with anchor
  :math:`i`'s label and :math:`N_i` the rows with another label. The paper's
  :math:`\tilde J = \frac{1}{2|\mathcal P|}\sum_{(i,j)} \max(0, J_{ij})^2`
  over the batch's positive pairs is this loss with ``weights=n_pos``
  (:math:`|P_i|` per anchor; each pair appears as :math:`(i, j)` and
  :math:`(j, i)` with the same :math:`J`), which is also
  pytorch-metric-learning's ``LiftedStructureLoss`` (``neg_margin`` is
  :math:`\alpha`; its default distance L2-normalises the embeddings first).
  The log-sum-exps are taken per row, so the negatives are never summed
  through an overflowing exponential.

  An anchor without a positive or without a negative is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`\alpha` (traceable).
    distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive and a negative.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown ``distance``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
    >>> print(jaxobj.lifted_structure_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [0.5546 0.5546 0.    ]

  References:
    Oh Song, Xiang, Jegelka and Savarese, "Deep Metric Learning via Lifted
    Structured Feature Embedding", CVPR 2016.
  """
  d, pos, neg, shape = lb.distances_and_masks(embeddings, labels, where, distance)
  neg_lse, has_neg = lb.masked_logsumexp(margin - d, neg)
  # A positive pair's rows share their label, so both have negatives or neither.
  both = jnp.any(pos, axis=1) & has_neg
  lse = jnp.where(has_neg, neg_lse, 0.0)
  j = jnp.logaddexp(lse[:, None], lse[None, :]) + d
  values = _pair_mean(0.5 * jnp.square(jax.nn.relu(jnp.where(pos, j, 0.0))), pos)
  return lb.reduce_anchors(values, both, shape, weights, reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def generalized_lifted_structure_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized lifted structure loss (Hermans et al. 2017): a soft batch-hard triplet loss.

  .. math::
     \ell_i = \max\Big(0,\ \log \sum_{p \in P_i} e^{D_{ip}}
       + \log \sum_{n \in N_i} e^{m - D_{in}}\Big)

  per anchor, with :math:`D` the Euclidean distance (``distance`` as in
  :func:`jaxobj.batch_hard_triplet_loss`), :math:`P_i` the other rows with
  anchor :math:`i`'s label and :math:`N_i` the rows with another label: the
  log-sum-exps are smooth maxima, so this is a soft batch-hard triplet loss.
  The paper sums over anchors (``reduction="sum"``); the mean over anchors is
  pytorch-metric-learning's ``GeneralizedLiftedStructureLoss`` with
  ``pos_margin=0`` (``neg_margin`` is :math:`m`; its default distance
  L2-normalises the embeddings first).

  An anchor without a positive or without a negative is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`m` (traceable).
    distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive and a negative.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown ``distance``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
    >>> loss = jaxobj.generalized_lifted_structure_loss(x, jnp.array([0, 0, 1]), reduction="none")
    >>> print(loss)  # anchor 0: 1 + (1 - 1.5); row 2 has no positive
    [0.5    0.1972 0.    ]

  References:
    Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", arXiv:1703.07737, 2017.
  """
  d, pos, neg, shape = lb.distances_and_masks(embeddings, labels, where, distance)
  pos_lse, has_pos = lb.masked_logsumexp(d, pos)
  neg_lse, has_neg = lb.masked_logsumexp(margin - d, neg)
  both = has_pos & has_neg
  values = jax.nn.relu(jnp.where(both, pos_lse + neg_lse, 0.0))
  return lb.reduce_anchors(values, both, shape, weights, reduction)


# --------------------------------------------------------------------------
# Margin loss and NCA.


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def margin_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.2,
  beta: float | ArrayLike = 1.2,
  nu: float | ArrayLike = 0.0,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Margin loss (Wu et al. 2017): every pair's distance on the right side of a boundary beta.

  .. math::
     \ell_i = \frac{1}{|P_i| + |N_i|} \sum_{j \in P_i \cup N_i}
       \max\big(0,\ \alpha + y_{ij}(D_{ij} - \beta)\big) + \nu\,\beta,
     \qquad y_{ij} = \begin{cases} 1 & j \in P_i \\ -1 & j \in N_i \end{cases}

  with :math:`D` the Euclidean distance (``distance`` as in
  :func:`jaxobj.batch_hard_triplet_loss`), :math:`P_i` the other rows with
  anchor :math:`i`'s label and :math:`N_i` the rows with another label.
  Positive pairs are pulled inside :math:`\beta - \alpha`, negative pairs
  pushed beyond :math:`\beta + \alpha`. Every valid pair is used (no
  distance-weighted sampling); each anchor's loss is the mean over its pairs,
  and ``weights=n_pos + n_neg`` gives the mean over all ordered pairs of the
  batch.

  :math:`\beta` is a traceable hyperparameter with an exact gradient, so an
  objective can learn it (a learnable objective parameter, as the paper's
  :math:`\beta^{(0)}`); :math:`\nu\beta` is the paper's regularizer on it
  (:math:`\nu = 0` by default, as in pytorch-metric-learning). The paper and
  pytorch-metric-learning's ``MarginLoss`` L2-normalise the embeddings
  (there :math:`\beta = 1.2` suits distances in :math:`[0, 2]`): pass
  normalised embeddings for the same scale. pytorch-metric-learning also
  counts each pair once per triplet that contains it and averages over the
  non-zero terms; ``beta`` here is one value, not one per class.

  An anchor alone in the batch (no other row) is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`\alpha`, non-negative (traceable).
    beta: :math:`\beta`, the boundary between positive and negative distances
      (traceable, differentiable).
    nu: :math:`\nu`, the weight of the penalty on :math:`\beta`, non-negative (traceable).
    distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with at least one pair.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown
      ``distance``, ``margin < 0`` or ``nu < 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.margin_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [0.45 0.25 0.2 ]

  References:
    Wu, Manmatha, Smola and Krähenbühl, "Sampling Matters in Deep Embedding
    Learning", ICCV 2017.
  """
  checks.check_range("margin", margin, low=0.0)
  checks.check_range("nu", nu, low=0.0)
  d, pos, neg, shape = lb.distances_and_masks(embeddings, labels, where, distance)
  pairs = pos | neg
  y = jnp.where(pos, 1.0, -1.0).astype(d.dtype)
  hinge = jax.nn.relu(margin + y * (d - beta))
  has = jnp.any(pairs, axis=1)
  values = _pair_mean(hinge, pairs) + nu * jnp.asarray(beta, d.dtype)
  return lb.reduce_anchors(values, has, shape, weights, reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def nca_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  scale: float | ArrayLike = 1.0,
  distance: str = "squared_euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Neighbourhood components analysis (Goldberger et al. 2005) over the batch.

  .. math::
     \ell_i = -\log \sum_{j \in P_i} p_{ij},\qquad
     p_{ij} = \frac{e^{-s D_{ij}}}{\sum_{k \ne i} e^{-s D_{ik}}}

  the negative log-probability that anchor :math:`i` picks a neighbour of its
  own label when it picks row :math:`j \ne i` with probability
  :math:`p_{ij}`. :math:`D` is the squared Euclidean distance (the paper's,
  :math:`\|Ax_i - Ax_j\|^2` with the embeddings as :math:`Ax`; ``distance``
  as in :func:`jaxobj.batch_hard_triplet_loss`), :math:`s` the softmax scale
  and :math:`P_i` the other rows with anchor :math:`i`'s label. The paper
  maximises :math:`\sum_i \log p_i`; this is its negated mean.
  pytorch-metric-learning's ``NCALoss`` (``softmax_scale`` is :math:`s`)
  L2-normalises the embeddings first with its default distance: pass
  normalised embeddings for its values. Computed as a difference of two
  log-sum-exps, so nothing underflows.

  An anchor without a positive is left out of the mean (one with positives
  only has loss 0).

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    scale: :math:`s > 0` (traceable).
    distance: ``"squared_euclidean"`` (default), ``"euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown
      ``distance``, ``scale <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.nca_loss(x, jnp.array([0, 0, 1]), reduction="none"))  # log 2, log(1 + 1/e)
    [0.6931 0.3133 0.    ]

  References:
    Goldberger, Roweis, Hinton and Salakhutdinov, "Neighbourhood Components
    Analysis", NeurIPS 2004 (published 2005).
  """
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  d, pos, neg, shape = lb.distances_and_masks(embeddings, labels, where, distance)
  logits = -jnp.asarray(scale) * d
  all_lse, _ = lb.masked_logsumexp(logits, pos | neg)
  pos_lse, has_pos = lb.masked_logsumexp(logits, pos)
  values = jnp.where(has_pos, all_lse - pos_lse, 0.0)
  return lb.reduce_anchors(values, has_pos, shape, weights, reduction)


# --------------------------------------------------------------------------
# Angular loss.

# tan^2 of the largest alpha (degrees) whose float32 sums cannot underflow:
# each pair's sum of exponentials is at least e^{-8 tan^2 alpha} of its shift.
_ANGULAR_MAX_DEGREES = 72.0


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def angular_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 40.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Angular loss (Wang et al. 2017): the angle at the negative of each triangle bounded by alpha.

  .. math::
     \ell_i = \frac{1}{|P_i|} \sum_{p \in P_i}
       \log\Big(1 + \sum_{n \in N_i} e^{f_{ipn}}\Big),\qquad
     f_{ipn} = 4\tan^2\alpha\,(x_i + x_p)^\top x_n - 2(1 + \tan^2\alpha)\,x_i^\top x_p

  the N-pair form of the paper (its eq. 10) on L2-normalised embeddings
  (divided by :math:`\max(\|x\|, 10^{-12})`), for every positive pair
  :math:`(i, p)` with the negatives :math:`N_i` of the anchor (rows with
  another label). ``alpha`` is in **degrees**, as in the paper and
  pytorch-metric-learning's ``AngularLoss`` (default 40), whose mean over
  positive pairs is this loss with ``weights=n_pos``. The sum over negatives
  is one matmul (never a :math:`B^3` tensor) in the log domain; ``alpha`` is
  at most 72°, where no term of that sum can underflow in float32.

  An anchor without a positive or without a negative is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    alpha: :math:`\alpha` in degrees, in :math:`(0, 72]` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive and a negative.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``alpha`` outside (0, 72].
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.angular_loss(x, jnp.array([0, 0, 1]), alpha=45.0, reduction="none"))
    [0.0181 0.0181 0.    ]

  References:
    Wang, Zhou, Wen, Liu and Lin, "Deep Metric Learning with Angular Loss",
    ICCV 2017.
  """
  checks.check_range("alpha", alpha, low=0.0, high=_ANGULAR_MAX_DEGREES, low_inclusive=False)
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  s = lb.cosine_matrix(x)
  t2 = jnp.square(jnp.tan(jnp.asarray(alpha, s.dtype) * (math.pi / 180.0)))
  u = 4.0 * t2 * s  # u[i, n]: the anchor's half of f, and the positive's half as u[p, n]
  # log sum_{n in N_i} exp(u[i, n] + u[p, n]) for every (i, p), as one matmul of
  # exponentials shifted by their row maxima (held constant: exact gradients).
  has_neg = jnp.any(neg, axis=1)
  shift_a = jax.lax.stop_gradient(jnp.max(jnp.where(neg, u, -jnp.inf), axis=1, initial=-jnp.inf))
  shift_a = jnp.where(has_neg, shift_a, 0.0)
  cols = valid[None, :]
  shift_p = jax.lax.stop_gradient(jnp.max(jnp.where(cols, u, -jnp.inf), axis=1, initial=-jnp.inf))
  shift_p = jnp.where(jnp.any(cols), shift_p, 0.0)
  ea = jnp.where(neg, jnp.exp(jnp.where(neg, u - shift_a[:, None], 0.0)), 0.0)
  ep = jnp.where(cols, jnp.exp(jnp.where(cols, u - shift_p[:, None], 0.0)), 0.0)
  sums = lb.gram(ea, ep)
  # A sum that underflowed to 0 (only beyond 72 degrees) is left out; NaN passes on.
  ok = pos & has_neg[:, None] & ~(sums <= 0)
  lse = jnp.log(jnp.where(ok, sums, 1.0)) + shift_a[:, None] + shift_p[None, :]
  pair = jax.nn.softplus(lse - 2.0 * (1.0 + t2) * s)
  values = _pair_mean(jnp.where(ok, pair, 0.0), pos)
  return lb.reduce_anchors(values, jnp.any(pos, axis=1) & has_neg, shape, weights, reduction)


# --------------------------------------------------------------------------
# Tuplet margin and intra-pair variance (Yu & Tao 2019).


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def tuplet_margin_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.1,
  scale: float | ArrayLike = 64.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Tuplet margin loss (Yu & Tao 2019): positive angles minus a margin against all negatives.

  .. math::
     \ell_i = \frac{1}{|P_i|} \sum_{p \in P_i}
       \log\Big(1 + \sum_{n \in N_i} e^{s(\cos\theta_{in} - \cos(\theta_{ip} - \beta))}\Big)

  with :math:`\theta` the angle between two embeddings, :math:`\beta` the
  margin in **radians** (the default 0.1 is pytorch-metric-learning's
  5.73°), :math:`s` the scale, :math:`P_i` the other rows with anchor
  :math:`i`'s label and :math:`N_i` the rows with another label. The margin
  *shrinks* the positive angle: the loss asks :math:`\theta_{ip} - \beta`
  to beat every :math:`\theta_{in}`, which slows the pull on positives that
  are already close (the paper's remedy for overfitting the easy pairs).
  :math:`\cos(\theta - \beta) = \cos\theta\cos\beta + \sin\theta\sin\beta`
  with :math:`\sin\theta = \sqrt{(1 - \cos\theta)(1 + \cos\theta)}` (no
  arccos; gradient 0 at :math:`\cos\theta = \pm 1`), and the sum is a
  log-sum-exp, so a large scale does not overflow. The mean over positive
  pairs of pytorch-metric-learning's ``TupletMarginLoss`` is this loss with
  ``weights=n_pos``. The paper adds :func:`intra_pair_variance_loss`.

  An anchor without a positive or without a negative is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`\beta` in radians, in :math:`[0, \pi]` (traceable).
    scale: :math:`s > 0` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive and a negative.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``margin``
      outside :math:`[0, \pi]`, ``scale <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> loss = jaxobj.tuplet_margin_loss(x, jnp.array([0, 0, 1]), margin=0.0, scale=1.0,
    ...                                  reduction="none")
    >>> print(loss)  # log(1 + e^{0 - 1})
    [0.3133 0.3133 0.    ]

  References:
    Yu and Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019.
  """
  checks.check_range("margin", margin, low=0.0, high=math.pi)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  c = jnp.clip(lb.cosine_matrix(x), -1.0, 1.0)
  sin = lb.safe_sqrt((1.0 - c) * (1.0 + c))
  shifted = c * jnp.cos(margin) + sin * jnp.sin(margin)
  neg_lse, has_neg = lb.masked_logsumexp(scale * c, neg)
  neg_lse = jnp.where(has_neg, neg_lse, 0.0)
  pair = jax.nn.softplus(neg_lse[:, None] - scale * shifted)
  values = _pair_mean(pair, pos)
  return lb.reduce_anchors(values, jnp.any(pos, axis=1) & has_neg, shape, weights, reduction)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def intra_pair_variance_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  pos_eps: float | ArrayLike = 0.01,
  neg_eps: float | ArrayLike = 0.01,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Intra-pair variance loss (Yu & Tao 2019): pair similarities kept close to their batch means.

  .. math::
     \ell_i = \frac{1}{|P_i|} \sum_{p \in P_i}
       \big[(1 - \epsilon_+)\mu_+ - \cos\theta_{ip}\big]_+^2
       + \frac{1}{|N_i|} \sum_{n \in N_i}
       \big[\cos\theta_{in} - (1 + \epsilon_-)\mu_-\big]_+^2

  with :math:`\mu_+` and :math:`\mu_-` the means of the cosine similarities
  over **all** positive and all negative pairs of the (unmasked) batch
  (gradients flow through them), :math:`P_i` the other rows with anchor
  :math:`i`'s label and :math:`N_i` the rows with another label; an empty
  sum is 0. Positive pairs much less similar than the average positive, and
  negative pairs much more similar than the average negative, are pulled
  back: the variance of each kind of pair shrinks. The paper (and
  pytorch-metric-learning's ``IntraPairVarianceLoss``) averages each term
  over the batch's pairs instead of per anchor; the two agree when every
  anchor has as many positives and as many negatives as the others (a batch
  of :math:`P` classes with :math:`K` rows each). Use it beside
  :func:`tuplet_margin_loss`, as the paper does.

  An anchor without any other row is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    pos_eps: :math:`\epsilon_+` (traceable).
    neg_eps: :math:`\epsilon_-` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with at least one pair.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    >>> loss = jaxobj.intra_pair_variance_loss(x, jnp.array([0, 0, 0, 1]), pos_eps=0.0,
    ...                                        neg_eps=0.0, reduction="none")
    >>> print(loss)  # mu_+ = (0.6 + 1 + 0.6) / 3, mu_- = (0 + 0.8 + 0) / 3
    [0.0089 0.3022 0.0089 0.0948]

  References:
    Yu and Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019.
  """
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  c = lb.cosine_matrix(x)

  def batch_mean(mask):
    return jnp.sum(jnp.where(mask, c, 0.0)) / jnp.maximum(jnp.sum(mask), 1).astype(c.dtype)

  pos_term = jnp.square(jax.nn.relu((1.0 - pos_eps) * batch_mean(pos) - c))
  neg_term = jnp.square(jax.nn.relu(c - (1.0 + neg_eps) * batch_mean(neg)))
  values = _pair_mean(pos_term, pos) + _pair_mean(neg_term, neg)
  return lb.reduce_anchors(values, jnp.any(pos | neg, axis=1), shape, weights, reduction)


# --------------------------------------------------------------------------
# Signal-to-noise ratio distance.


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def snr_contrastive_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  pos_margin: float | ArrayLike = 0.0,
  neg_margin: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Contrastive loss on the signal-to-noise-ratio distance (Yuan et al. 2019).

  .. math::
     \ell_i = \frac{1}{|P_i| + |N_i|}\Big(\sum_{p \in P_i} [d_{ip} - m_+]_+
       + \sum_{n \in N_i} [m_- - d_{in}]_+\Big),\qquad
     d_{ij} = \frac{\operatorname{Var}(x_j - x_i)}{\operatorname{Var}(x_i)}

  the noise (:math:`x_j - x_i`) to signal (the anchor :math:`x_i`) variance
  ratio, variances taken over the :math:`D` features: the SNR distance is
  asymmetric and invariant to scaling both embeddings. :math:`P_i` are the
  other rows with anchor :math:`i`'s label and :math:`N_i` the rows with
  another label; each anchor's loss is the mean over its pairs
  (``weights=n_pos + n_neg`` gives the mean over all pairs of the batch).
  pytorch-metric-learning's ``SignalToNoiseRatioContrastiveLoss`` (the same
  margins) averages the positive and the negative terms separately over
  the non-zero ones. The paper adds a penalty on the embeddings' means
  (:math:`\lambda \sum_i |\sum_k x_{ik}|`): add it as an objective term.
  An anchor whose features are all equal has no signal: its distances are
  NaN.

  An anchor without any other row is left out of the mean.

  Args:
    embeddings: float array ``[..., D]`` with :math:`D \ge 2`; leading axes
      are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    pos_margin: :math:`m_+` (traceable).
    neg_margin: :math:`m_-` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with at least one pair.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``D < 2``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, -1.0], [2.0, -2.0], [1.0, 1.5]])
    >>> print(jaxobj.snr_contrastive_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [0.5    0.125  0.    ]

  References:
    Yuan, Chen, Wang, Chen and Guo, "Signal-To-Noise Ratio: A Robust
    Distance Metric for Deep Metric Learning", CVPR 2019.
  """
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  if x.shape[-1] < 2:
    raise ValueError(
      f"snr_contrastive_loss takes variances over the features, so embeddings need at "
      f"least 2 of them, got embeddings.shape={jnp.shape(embeddings)}."
    )
  pos, neg = lb.positives_negatives(y, valid)
  # Variances over the features are squared norms of the row-centred embeddings.
  c = x - jnp.mean(x, axis=-1, keepdims=True)
  noise = lb.distance_matrix(c, valid, "squared_euclidean")
  signal = lb.sq_norm(c)[:, None]
  has_signal = signal > 0
  d = jnp.where(has_signal, noise / jnp.where(has_signal, signal, 1.0), jnp.nan)
  pairs = pos | neg
  hinge = jnp.where(pos, jax.nn.relu(d - pos_margin), jax.nn.relu(neg_margin - d))
  values = _pair_mean(hinge, pairs)
  return lb.reduce_anchors(values, jnp.any(pairs, axis=1), shape, weights, reduction)


# --------------------------------------------------------------------------
# Soft histograms: FastAP and the histogram loss.


def _check_num_bins(num_bins):
  if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
    raise ValueError(
      f"num_bins must be a positive int (the number of histogram intervals, static), "
      f"got num_bins={num_bins!r}."
    )


def _node_weights(v, low, high, num_bins):
  """Each value's linear-interpolation (triangular-kernel) weights on the
  ``num_bins + 1`` nodes ``low + k (high - low) / num_bins``: the lower node's
  index and the upper node's weight (the lower one has ``1 - frac``)."""
  t = (jnp.clip(v, low, high) - low) * (num_bins / (high - low))
  lower = jnp.clip(jnp.floor(jax.lax.stop_gradient(t)), 0, num_bins - 1)
  return lower.astype(jnp.int32), t - lower


def _soft_histograms(lower, frac, keep, num_bins):
  """``[N, num_bins + 1]``: row ``i``'s kept values spread over the nodes."""
  rows = jnp.broadcast_to(jnp.arange(lower.shape[0])[:, None], lower.shape)
  hist = jnp.zeros((lower.shape[0], num_bins + 1), frac.dtype)
  hist = hist.at[rows, lower].add(jnp.where(keep, 1.0 - frac, 0.0))
  return hist.at[rows, lower + 1].add(jnp.where(keep, frac, 0.0))


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def fast_ap_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 10,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""FastAP (Cakir et al. 2019): one minus average precision, from soft distance histograms.

  .. math::
     \ell_i = 1 - \frac{1}{|P_i|} \sum_{l=0}^{L} \frac{h^+_{il}\, H^+_{il}}{H_{il}},
     \qquad h^+_{il} = \sum_{j \in P_i} \delta(d_{ij}, z_l),\quad
     H^+_{il} = \sum_{k \le l} h^+_{ik}

  with :math:`h_{il}, H_{il}` the same over all other rows
  :math:`P_i \cup N_i`; :math:`d` the squared Euclidean distance of the
  L2-normalised embeddings (in :math:`[0, 4]`), :math:`z_l = l\Delta` the
  :math:`L + 1` nodes with :math:`\Delta = 4/L` and
  :math:`\delta(d, z) = \max(0, 1 - |d - z|/\Delta)` the triangular kernel
  (each distance is split between its two nearest nodes, which makes the
  ranking differentiable). A bin with :math:`H_{il} = 0` adds 0. The mean
  over anchors with a positive is pytorch-metric-learning's ``FastAPLoss``
  (``num_bins`` is :math:`L`; the paper suggests 10). The histograms are
  ``[B, L + 1]``, never ``[B, B, L]``.

  An anchor without a positive is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    num_bins: :math:`L`, a positive int (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``num_bins`` not a positive int.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.fast_ap_loss(x, jnp.array([0, 0, 1, 2]), reduction="none"))
    [0. 0. 0. 0.]
    >>> x = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.fast_ap_loss(x, jnp.array([0, 0, 1, 2]), reduction="none"))  # ranked last
    [0.6667 0.6667 0.     0.    ]

  References:
    Cakir, He, Xia, Kulis and Sclaroff, "Deep Metric Learning to Rank",
    CVPR 2019.
  """
  _check_num_bins(num_bins)
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  d = 2.0 - 2.0 * lb.cosine_matrix(x)
  lower, frac = _node_weights(d, 0.0, 4.0, num_bins)
  h_pos = _soft_histograms(lower, frac, pos, num_bins)
  h_all = _soft_histograms(lower, frac, pos | neg, num_bins)
  big_h = jnp.cumsum(h_all, axis=1)
  filled = ~(big_h <= 0)  # NaN passes on
  precision = jnp.cumsum(h_pos, axis=1) / jnp.where(filled, big_h, 1.0)
  ap = jnp.sum(jnp.where(filled, h_pos * precision, 0.0), axis=1)
  n_pos = jnp.sum(pos, axis=1)
  values = 1.0 - ap / jnp.maximum(n_pos, 1).astype(ap.dtype)
  return lb.reduce_anchors(values, n_pos > 0, shape, weights, reduction)


@register(
  "metric_learning", inputs=structure_examples.CLUSTERED_LABELLED_EMBEDDINGS, couples_rows=True
)
def histogram_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Histogram loss (Ustinova & Lempitsky 2016): how often negative pairs beat positive ones.

  .. math::
     \ell_i = \frac{1}{|N_i|} \sum_{n \in N_i} \sum_{r=0}^{R} \delta(s_{in}, t_r)\, \Phi^+_r,
     \qquad \Phi^+_r = \sum_{q \le r} p^+_q,\quad
     p^+_q = \frac{1}{|\mathcal S^+|} \sum_{(i, j) \in \mathcal S^+} \delta(s_{ij}, t_q)

  with :math:`s` the cosine similarities, :math:`t_r = -1 + r\Delta` the
  :math:`R + 1` nodes with :math:`\Delta = 2/R`, :math:`\delta` the
  triangular kernel (linear interpolation between the two nearest nodes),
  :math:`p^+` the soft histogram of the batch's positive-pair similarities
  :math:`\mathcal S^+` and :math:`\Phi^+` its cumulative sum; :math:`N_i` are
  the rows with another label than anchor :math:`i`. The paper's loss
  :math:`\sum_r p^-_r \Phi^+_r` over the batch's negative pairs is this loss
  with ``weights=n_neg`` (:math:`|N_i|` per anchor), which is also
  pytorch-metric-learning's ``HistogramLoss`` (``num_bins`` is :math:`R`).
  :math:`\sum_r \delta(s, t_r)\Phi^+_r` is :math:`\Phi^+` interpolated at
  :math:`s`, so no ``[pairs, R]`` tensor is formed.

  An anchor without a negative, or any anchor of a batch without a positive
  pair, is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    num_bins: :math:`R`, a positive int (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over the anchors above.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``num_bins`` not a positive int.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    >>> # positive pairs at cosines 0 and -1: Phi+ is 0.5 at -1 and 1 from 0 on
    >>> print(jaxobj.histogram_loss(x, jnp.array([0, 0, 1, 1]), num_bins=2, reduction="none"))
    [0.75 1.   1.   0.75]

  References:
    Ustinova and Lempitsky, "Learning Deep Embeddings with Histogram Loss",
    NeurIPS 2016.
  """
  _check_num_bins(num_bins)
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  s = lb.cosine_matrix(x)
  lower, frac = _node_weights(s, -1.0, 1.0, num_bins)
  n_pairs = jnp.sum(pos)
  p_pos = jnp.sum(_soft_histograms(lower, frac, pos, num_bins), axis=0)
  cdf = jnp.cumsum(p_pos) / jnp.maximum(n_pairs, 1).astype(p_pos.dtype)
  at_s = cdf[lower] * (1.0 - frac) + cdf[lower + 1] * frac
  n_neg = jnp.sum(neg, axis=1)
  values = jnp.sum(jnp.where(neg, at_s, 0.0), axis=1) / jnp.maximum(n_neg, 1).astype(s.dtype)
  return lb.reduce_anchors(values, (n_neg > 0) & (n_pairs > 0), shape, weights, reduction)


# --------------------------------------------------------------------------
# Ranked list and class centroids.


def _nan_in_pairs(d, pairs):
  """NaN for anchors with a NaN distance among their pairs (a set selected by
  comparing distances would silently drop it), 0 otherwise."""
  return jnp.where(jnp.any(pairs & jnp.isnan(d), axis=1), jnp.nan, 0.0)


def _weighted_mean(violation, keep, temperature, detach):
  """Per row, the mean of ``violation`` over ``keep`` weighted by
  ``exp(temperature * violation)`` (a softmax, so no weight overflows); 0 if none."""
  logits = temperature * violation
  if detach:
    logits = jax.lax.stop_gradient(logits)
  lse, has = lb.masked_logsumexp(logits, keep)
  lse = jnp.where(has, lse, 0.0)
  w = jnp.where(keep, jnp.exp(jnp.where(keep, logits - lse[:, None], 0.0)), 0.0)
  return jnp.sum(w * jnp.where(keep, violation, 0.0), axis=1)


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def ranked_list_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.4,
  alpha: float | ArrayLike = 1.2,
  neg_temperature: float | ArrayLike = 10.0,
  pos_temperature: float | ArrayLike = 0.0,
  imbalance: float | ArrayLike = 0.5,
  detach_weights: bool = False,
  distance: str = "euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Ranked list loss (Wang et al. 2019): positives inside alpha - m, negatives beyond alpha.

  .. math::
     \ell_i = (1 - \lambda) \frac{\sum_{j \in P^*_i} w_{ij}\,(D_{ij} - (\alpha - m))}
       {\sum_{j \in P^*_i} w_{ij}}
       + \lambda \frac{\sum_{k \in N^*_i} w_{ik}\,(\alpha - D_{ik})}{\sum_{k \in N^*_i} w_{ik}}

  with :math:`w_{ij} = e^{T_p (D_{ij} - (\alpha - m))}` on the positives
  farther than :math:`\alpha - m` (:math:`P^*_i`) and
  :math:`w_{ik} = e^{T_n (\alpha - D_{ik})}` on the negatives closer than
  :math:`\alpha` (:math:`N^*_i`); an empty set adds 0. :math:`D` is the
  Euclidean distance (``distance`` as in :func:`jaxobj.batch_hard_triplet_loss`).
  The paper and pytorch-metric-learning's ``RankedListLoss`` (the same
  parameters; its ``alpha=None`` means :math:`1 + m/2`) L2-normalise the
  embeddings (:math:`\alpha = 1.2` suits distances in :math:`[0, 2]`): pass
  normalised embeddings for the same scale. The weighted means are softmaxes,
  so a large temperature does not overflow. By default the gradient is the
  value's exact derivative, weights included; ``detach_weights=True`` holds
  the weights constant (they then only re-weigh the pairs' gradients).

  An anchor without any other row is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`m`, the gap between the positive and negative boundaries (traceable).
    alpha: :math:`\alpha`, the negative boundary (traceable).
    neg_temperature: :math:`T_n \ge 0` (traceable).
    pos_temperature: :math:`T_p \ge 0`; 0 weighs the positives equally (traceable).
    imbalance: :math:`\lambda \in [0, 1]`, the negatives' share (traceable).
    detach_weights: hold the weights constant in the gradient (static).
    distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with at least one pair.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown
      ``distance``, a negative temperature, ``imbalance`` outside [0, 1].
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]])
    >>> print(jaxobj.ranked_list_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [0.45   0.141  0.3494]

  References:
    Wang, Hua, Kodirov, Hu, Garnier and Robertson, "Ranked List Loss for Deep
    Metric Learning", CVPR 2019.
  """
  checks.check_range("neg_temperature", neg_temperature, low=0.0)
  checks.check_range("pos_temperature", pos_temperature, low=0.0)
  checks.check_range("imbalance", imbalance, low=0.0, high=1.0)
  d, pos, neg, shape = lb.distances_and_masks(embeddings, labels, where, distance)
  a, m = jnp.asarray(alpha, d.dtype), jnp.asarray(margin, d.dtype)
  pos_violation = d - (a - m)
  neg_violation = a - d
  loss_pos = _weighted_mean(
    pos_violation, pos & (pos_violation > 0), pos_temperature, detach_weights
  )
  loss_neg = _weighted_mean(
    neg_violation, neg & (neg_violation > 0), neg_temperature, detach_weights
  )
  values = (1.0 - imbalance) * loss_pos + imbalance * loss_neg + _nan_in_pairs(d, pos | neg)
  return lb.reduce_anchors(values, jnp.any(pos | neg, axis=1), shape, weights, reduction)


@register(
  "metric_learning", inputs=structure_examples.CLUSTERED_LABELLED_EMBEDDINGS, couples_rows=True
)
def centroid_triplet_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 0.05,
  distance: str = "squared_euclidean",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Centroid triplet loss (Wieczorek et al. 2021): each anchor against class centroids.

  .. math::
     \ell_i = \frac{1}{|K_i|} \sum_{k \in K_i}
       \max\big(0,\ d(x_i, c^{-i}_{y_i}) - d(x_i, c_k) + m\big)

  with :math:`c^{-i}_{y_i}` the mean of the *other* rows of anchor
  :math:`i`'s class (the anchor is left out of its own centroid),
  :math:`c_k` the mean of the rows of class :math:`k`, :math:`K_i` the other
  classes of the batch and :math:`d` the squared Euclidean distance
  (``"euclidean"`` for its square root). Comparing with centroids instead of
  single rows makes the loss less sensitive to one unrepresentative sample.
  The mean over anchors of pytorch-metric-learning's ``CentroidTripletLoss``
  (the same default margin; one term per anchor and other class) is this
  loss with ``weights`` equal to each anchor's number of other classes; its
  default distance L2-normalises the embeddings first. Centroids are
  computed with one matmul over the class-membership matrix, distances as a
  Gram matrix at full precision (centred on the batch mean).

  A row alone in its class has no positive centroid: it is no anchor (left
  out of the mean) but its centroid is a negative for the others.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin: :math:`m`, non-negative (traceable).
    distance: ``"squared_euclidean"`` (default) or ``"euclidean"`` (static).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive and another class.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown
      ``distance``, ``margin < 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    >>> # anchor 0: positive centroid (2, 0) at 4, negative centroid (0, 1.5) at 2.25
    >>> print(jaxobj.centroid_triplet_loss(x, jnp.array([0, 0, 1, 1]), reduction="none"))
    [1.8 0.  0.  0. ]

  References:
    Wieczorek, Rychalska and Dąbrowski, "On the Unreasonable Effectiveness of
    Centroids in Image Retrieval", ICONIP 2021.
  """
  checks.check_range("margin", margin, low=0.0)
  checks.check_choice("distance", distance, ("squared_euclidean", "euclidean"))
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  members = (y[:, None] == y[None, :]) & valid[:, None] & valid[None, :]
  size = jnp.sum(members, axis=1).astype(x.dtype)  # rows in each row's class
  # Distances are translation-invariant: centre on the batch mean (held constant).
  count = jnp.maximum(jnp.sum(valid), 1).astype(x.dtype)
  z = x - jax.lax.stop_gradient(jnp.sum(jnp.where(valid[:, None], x, 0.0), axis=0) / count)
  z = jnp.where(valid[:, None], z, 0.0)
  class_sum = lb.gram(members.astype(z.dtype), z.T)  # row i: the sum over its class
  centroid = class_sum / jnp.maximum(size, 1.0)[:, None]  # row j: its class's centroid
  others = jnp.maximum(size - 1.0, 1.0)[:, None]
  own = (class_sum - z) / others  # row i: its class's centroid without it
  d_pos = lb.sq_norm(z - own)
  sq = lb.sq_norm(z)
  d_neg = jnp.maximum(sq[:, None] + lb.sq_norm(centroid)[None, :] - 2.0 * lb.gram(z, centroid), 0.0)
  if distance == "euclidean":
    d_pos, d_neg = lb.safe_sqrt(d_pos), lb.safe_sqrt(d_neg)
  hinge = jax.nn.relu(d_pos[:, None] - d_neg + margin)
  # Every row of a negative class carries 1/size of that class's term.
  share = jnp.where(neg, 1.0 / jnp.maximum(size, 1.0)[None, :], 0.0)
  n_classes = jnp.sum(share, axis=1)
  values = jnp.sum(share * hinge, axis=1) / jnp.maximum(n_classes, 1.0)
  has = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  return lb.reduce_anchors(values, has, shape, weights, reduction)


# --------------------------------------------------------------------------
# Average precision: penalising negatives before positives.

PNP_VARIANTS = ("O", "Iu", "Ib", "Ds", "Dq")


@register("metric_learning", inputs=examples.LABELLED_EMBEDDINGS, couples_rows=True)
def pnp_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  variant: str = "O",
  anneal: float | ArrayLike = 0.01,
  b: float | ArrayLike = 2.0,
  alpha: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""PNP loss (Li et al. 2022): penalise the negatives ranked before each positive.

  .. math::
     \ell_q = \frac{1}{|P_q|} \sum_{i \in P_q} f\big(R_{qi}\big),\qquad
     R_{qi} = \sum_{n \in N_q} \sigma\Big(\frac{s_{qn} - s_{qi}}{\tau}\Big)

  with :math:`s` the cosine similarities, :math:`\sigma` the logistic
  sigmoid and :math:`\tau` the annealing temperature, so :math:`R_{qi}` is a
  smooth count of the negatives that query :math:`q` ranks above its
  positive :math:`i`; :math:`P_q` are the other rows with the query's label
  and :math:`N_q` the rows with another label. ``variant`` picks :math:`f`,
  the paper's eqs. 5, 7, 9, 12 and 13:

  * ``"O"``: :math:`R`;
  * ``"Iu"``: :math:`(1 + R)\log(1 + R)` (increasing gradients);
  * ``"Ib"``: :math:`(bR - \log(1 + bR)) / b^2`;
  * ``"Ds"``: :math:`\log(1 + R)` (decreasing gradients);
  * ``"Dq"``: :math:`1 - (1 + R)^{-\alpha}` (the paper's recommended form,
    with :math:`\alpha \ge 1`; any :math:`\alpha > 0` is accepted).

  pytorch-metric-learning's ``PNPLoss`` (the same parameters and default
  variant) counts the query among its own positives, as the authors' code
  does; here, as in the paper's definitions, a query is not its own
  positive. The smooth counts for one query are a ``[B, B]`` matrix, one
  query at a time (``lax.map``), so memory stays :math:`O(B^2)`.

  An anchor without a positive is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    variant: ``"O"`` (default), ``"Iu"``, ``"Ib"``, ``"Ds"`` or ``"Dq"`` (static).
    anneal: :math:`\tau > 0` (traceable).
    b: :math:`b > 0`, for ``"Ib"`` (traceable).
    alpha: :math:`\alpha > 0`, for ``"Dq"`` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a positive.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, unknown
      ``variant``, ``anneal <= 0``, ``b <= 0`` or ``alpha <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> # rows 0 and 1 each rank the negative (row 2) above their positive
    >>> print(jaxobj.pnp_loss(x, jnp.array([0, 0, 1]), reduction="none"))
    [1. 1. 0.]

  References:
    Li, Bai, Xu, Wu and Li, "Rethinking the Optimization of Average
    Precision: Only Penalizing Negative Instances before Positive Ones is
    Enough", AAAI 2022.
  """
  checks.check_choice("variant", variant, PNP_VARIANTS)
  checks.check_range("anneal", anneal, low=0.0, low_inclusive=False)
  checks.check_range("b", b, low=0.0, low_inclusive=False)
  checks.check_range("alpha", alpha, low=0.0, low_inclusive=False)
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  s = lb.cosine_matrix(x)
  tau = jnp.asarray(anneal, s.dtype)

  def counts(row):  # R[q, i] for one query: [i, n] sigmoids summed over its negatives
    s_q, neg_q = row
    ahead = jax.nn.sigmoid((s_q[None, :] - s_q[:, None]) / tau)
    return jnp.sum(jnp.where(neg_q[None, :], ahead, 0.0), axis=1)

  r = jax.lax.map(counts, (s, neg))
  if variant == "O":
    f = r
  elif variant == "Iu":
    f = (1.0 + r) * jnp.log1p(r)
  elif variant == "Ib":
    br = b * r
    f = (br - jnp.log1p(br)) / jnp.square(b)
  elif variant == "Ds":
    f = jnp.log1p(r)
  else:
    f = 1.0 - jnp.exp(-jnp.asarray(alpha, r.dtype) * jnp.log1p(r))
  values = _pair_mean(f, pos)
  return lb.reduce_anchors(values, jnp.any(pos, axis=1), shape, weights, reduction)
