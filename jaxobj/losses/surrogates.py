r"""Differentiable surrogates of evaluation metrics: AUC, average precision, F-beta.

When the metric that matters is not accuracy, train on a loss built from it:

- :func:`auc_margin_loss`, the min-max margin objective of deep AUC
  maximization (Yuan et al. 2021), with its learnable ``a``, ``b`` and ``alpha``
  held as objective params (``alpha`` maximized: see :func:`auc_margin_alpha`);
- :func:`smooth_ap_loss`, one minus average precision with each rank's
  indicator replaced by a sigmoid (Smooth-AP, Brown et al. 2020);
- :func:`soft_fbeta_loss`, one minus the F-beta score of a multi-label
  prediction with counts made of probabilities.

Each equals its metric where the surrogate is tight (saturated scores, a small
temperature); the tests check it against the exact metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples, inputs
from jaxobj._src.examples import ranking as ranking_examples
from jaxobj._src.examples import robust_labels as label_examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "auc_margin_alpha",
  "auc_margin_loss",
  "smooth_ap_loss",
  "soft_fbeta_loss",
]

_FAMILY = "metric_surrogates"


@jax.custom_vjp
def _ascend(x: jax.Array) -> jax.Array:
  return x


def _ascend_fwd(x):
  return x, None


def _ascend_bwd(_, g):
  return (-g,)


_ascend.defvjp(_ascend_fwd, _ascend_bwd)


def auc_margin_alpha(param: ArrayLike) -> jax.Array:
  r"""The transform of a learnable ``alpha`` of :func:`auc_margin_loss`: positive, and maximized.

  The AUC-margin objective is a min-max problem: minimized over the model,
  ``a`` and ``b``, maximized over :math:`\alpha \ge 0`. Given as
  ``jo.learnable(0.0, transform=jaxobj.auc_margin_alpha)``, the term sees
  :math:`\alpha = \operatorname{softplus}(\text{param})` and the gradient
  that reaches the stored param is negated, so the one optimizer that
  minimizes the objective over the model and the other params ascends in
  ``alpha``: the simultaneous gradient descent–ascent of the paper's PESG
  (without its proximal and restart terms). The value is unchanged, so the
  logged loss is the min-max objective itself.

  Args:
    param: the stored, unconstrained param.

  Returns:
    :math:`\operatorname{softplus}(\text{param})`, with the gradient of an ascent.

  Example:
    >>> import jax, jaxobj
    >>> print(round(float(jaxobj.auc_margin_alpha(0.0)), 4))
    0.6931
    >>> print(jax.grad(jaxobj.auc_margin_alpha)(0.0))
    -0.5
  """
  return _ascend(jax.nn.softplus(jnp.asarray(param, jnp.float32)))


@register(_FAMILY, inputs=examples.BINARY)
def auc_margin_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  a: float | ArrayLike = 0.0,
  b: float | ArrayLike = 0.0,
  alpha: float | ArrayLike = 0.0,
  margin: float | ArrayLike = 1.0,
  positive_fraction: float | ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""AUC-margin loss: the min-max margin objective of deep AUC maximization.

  .. math::
     \ell(h, y) = (1 - p)(h - a)^2\, [y = 1] + p\,(h - b)^2\, [y = 0]
       + 2\alpha\big(p(1 - p)\, m + p\, h\, [y = 0] - (1 - p)\, h\, [y = 1]\big)
       - p(1 - p)\,\alpha^2

  with :math:`p` = ``positive_fraction`` (the positives' share of the data) and
  :math:`m` = ``margin``. Its mean is minimized over the model and
  :math:`a, b` and maximized over :math:`\alpha \ge 0`. At the saddle point
  :math:`a` and :math:`b` are the mean scores of the positives and the negatives,
  :math:`\alpha = \max(0, m - (a - b))`, and the value is
  :math:`p(1 - p)` times the sum of the two classes' score variances plus the
  squared hinge :math:`\max(0, m - (a - b))^2`: a square loss on the AUC's
  pairs, robust to noisy pairs by its margin. The paper's scores are sigmoid
  outputs in ``[0, 1]`` with ``margin=1``.

  Train ``a``, ``b`` and ``alpha`` as objective params (the transform
  :func:`auc_margin_alpha` makes ``alpha`` positive and ascended)::

    auc = jo.term(jaxobj.auc_margin_loss, "outputs.scores", "batch.labels",
                  a=jo.learnable(0.0), b=jo.learnable(0.0),
                  alpha=jo.learnable(0.0, transform=jaxobj.auc_margin_alpha),
                  positive_fraction=0.1)

  Each example's value depends on the others only through
  ``positive_fraction``, a constant, so the loss splits over microbatches and
  devices like any mean.

  Args:
    scores: float array ``[...]``, the model's scores (e.g. sigmoid outputs).
    labels: 0/1 array ``scores.shape``.
    a, b: the positives' and negatives' score centres (traceable; learnable).
    alpha: the dual variable, ``>= 0`` in the paper (traceable; learnable).
    margin: :math:`m` (traceable).
    positive_fraction: :math:`p`, in ``(0, 1)`` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``positive_fraction`` outside ``(0, 1)``.
    TypeError: integer ``scores``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> h, y = jnp.array([0.9, 0.7, 0.2, 0.4]), jnp.array([1.0, 1.0, 0.0, 0.0])
    >>> # At the saddle point: a, b the class means, alpha = m - (a - b)
    >>> loss = jaxobj.auc_margin_loss(h, y, a=0.8, b=0.3, alpha=0.5)
    >>> print(round(float(loss), 4))  # p(1 - p) (var+ + var- + (m - (a - b))^2)
    0.0675

  References:
    Yuan, Yan, Sonka and Yang, "Large-scale Robust Deep AUC Maximization: A
    New Surrogate Loss and Empirical Studies on Medical Image
    Classification", ICCV 2021.
  """
  checks.check_range(
    "positive_fraction",
    positive_fraction,
    low=0.0,
    high=1.0,
    low_inclusive=False,
    high_inclusive=False,
  )
  h, y = inputs.binary_inputs(scores, labels, where, names=("scores", "labels"))
  p = positive_fraction
  pos, neg = y, 1.0 - y
  values = (
    (1.0 - p) * (h - a) ** 2 * pos
    + p * (h - b) ** 2 * neg
    + 2.0 * alpha * (p * (1.0 - p) * margin + p * h * neg - (1.0 - p) * h * pos)
    - p * (1.0 - p) * alpha**2
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=ranking_examples.RANKED_LISTS)
def smooth_ap_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: float | ArrayLike = 0.01,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Smooth-AP: one minus average precision with sigmoid ranks.

  .. math::
     \ell(s, y) = 1 - \frac{1}{|P|} \sum_{i \in P}
       \frac{1 + \sum_{j \in P, j \ne i} \sigma(D_{ij})}
            {1 + \sum_{j \ne i} \sigma(D_{ij})},
     \qquad D_{ij} = \frac{s_j - s_i}{\tau}

  per list (the last axis), with :math:`P` the relevant items (``labels >
  0``) and :math:`\sigma` the sigmoid: the rank of item :math:`i` among all
  items and among the relevant ones, each indicator :math:`[s_j > s_i]`
  replaced by :math:`\sigma(D_{ij})`. As :math:`\tau \to 0` (for scores
  without ties) it is one minus the average precision exactly; Brown et al.
  use :math:`\tau = 0.01` on cosine similarities. Items with a ``-inf`` score
  are left out; a list with no relevant item has nothing to rank: it is 0 and
  left out of the mean.

  Args:
    scores: float array ``[..., L]``.
    labels: relevance ``[..., L]``; items with ``labels > 0`` are relevant.
    temperature: :math:`\tau > 0` (traceable), in units of the scores.
    where, weights, reduction: the loss contract, per list (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``temperature <= 0``.
    TypeError: integer ``scores``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, y = jnp.array([[0.9, 0.8, 0.3, 0.1]]), jnp.array([[1.0, 0.0, 1.0, 0.0]])
    >>> print(round(float(jaxobj.smooth_ap_loss(s, y, temperature=1e-3)), 4))  # 1 - (1 + 2/3) / 2
    0.1667

  References:
    Brown, Xie, Kalogeiton and Zisserman, "Smooth-AP: Smoothing the Path
    Towards Large-Scale Image Retrieval", ECCV 2020.
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  s = checks.as_float(scores, "scores")
  checks.check_same_shape("scores", s, "labels", labels)
  if s.ndim == 0:
    raise ValueError("scores must have a list axis, got a scalar; pass shape [..., L].")
  y = checks.as_target(labels, "labels", s)
  shape = s.shape[:-1]
  s = masked_fill(where, s, shape, axis_extra=1)
  y = masked_fill(where, y, shape, axis_extra=1)
  valid = ~jnp.isneginf(s)  # a NaN score stays, so that NaN reaches the value
  relevant = (y > 0) & valid
  s = jnp.where(valid, s, 0.0)
  n = s.shape[-1]
  others = valid[..., None, :] & ~jnp.eye(n, dtype=bool)  # [..., i, j]
  above = jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / temperature)
  above = jnp.where(others, above, 0.0)
  rank_all = 1.0 + jnp.sum(above, axis=-1)
  rank_relevant = 1.0 + jnp.sum(jnp.where(relevant[..., None, :], above, 0.0), axis=-1)
  count = jnp.sum(relevant, axis=-1)
  has = count > 0
  precision = jnp.where(relevant, rank_relevant / rank_all, 0.0)
  ap = jnp.sum(precision, axis=-1) / jnp.where(has, count, 1)
  values = jnp.where(has, 1.0 - ap, 0.0)
  values = jnp.where(jnp.any(jnp.isnan(y), axis=-1), jnp.nan, values)  # a NaN label reaches it
  where = has if where is None else jnp.logical_and(checks.as_mask(where, shape), has)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=label_examples.MULTILABEL)
def soft_fbeta_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  beta: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft F-beta loss for multi-label classification: one minus F-beta with soft counts.

  .. math::
     \ell(x, y) = 1 - \frac{(1 + \beta^2)\,\mathrm{TP}}
       {(1 + \beta^2)\,\mathrm{TP} + \beta^2\,\mathrm{FN} + \mathrm{FP}},
     \quad \mathrm{TP} = \sum_k p_k y_k,\ \mathrm{FP} = \sum_k p_k (1 - y_k),\
     \mathrm{FN} = \sum_k (1 - p_k)\, y_k

  per example over the class axis (the last), with :math:`p =
  \sigma(x)`. With saturated logits the probabilities are 0 or 1 and it is one
  minus the example's F-beta score exactly; ``beta=1`` is the soft F1. An
  example with no positive label and no predicted mass (``0 / 0``) scores 1
  (loss 0). The macro-averaged form over a batch (per class over the
  examples) is this function on the transposed arrays,
  ``soft_fbeta_loss(logits.T, labels.T)``: a batch-level value, not a mean of
  per-example values, so it does not split over microbatches.

  Args:
    logits: float array ``[..., K]``, one sigmoid logit per class.
    labels: 0/1 (or soft) labels ``[..., K]``.
    beta: :math:`\beta > 0`, the weight of recall against precision (traceable).
    where, weights, reduction: the loss contract, per example (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one value per example for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``beta <= 0``.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[30.0, 30.0, -30.0, -30.0]])  # predicts classes 0 and 1
    >>> y = jnp.array([[1.0, 0.0, 1.0, 0.0]])  # TP = 1, FP = 1, FN = 1: F1 = 1/2
    >>> print(jaxobj.soft_fbeta_loss(x, y))
    0.5

  References:
    Lipton, Elkan and Narayanaswamy, "Thresholding Classifiers to Maximize F1
    Score", ECML PKDD 2014 (F-measure); soft counts as in Jansche, "Maximum
    Expected F-Measure Training of Logistic Regression Models", HLT/EMNLP 2005.
  """
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  x = checks.as_float(logits, "logits")
  checks.check_same_shape("logits", x, "labels", labels)
  if x.ndim == 0:
    raise ValueError("logits must have a class axis, got a scalar; pass shape [..., K].")
  y = checks.as_target(labels, "labels", x)
  shape = x.shape[:-1]
  x = masked_fill(where, x, shape, axis_extra=1)
  y = masked_fill(where, y, shape, axis_extra=1)
  p = jax.nn.sigmoid(x)
  b2 = beta**2
  tp = jnp.sum(p * y, axis=-1)
  fp = jnp.sum(p * (1.0 - y), axis=-1)
  fn = jnp.sum((1.0 - p) * y, axis=-1)
  denominator = (1.0 + b2) * tp + b2 * fn + fp
  ok = denominator > 0
  f = jnp.where(ok, (1.0 + b2) * tp / jnp.where(ok, denominator, 1.0), 1.0)
  f = jnp.where(jnp.isnan(denominator), jnp.nan, f)
  return reduce_loss(1.0 - f, where=where, weights=weights, reduction=reduction)
