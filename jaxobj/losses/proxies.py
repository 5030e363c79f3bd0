r"""Proxy- and classifier-based metric-learning losses: embeddings against class proxies.

Every loss here but one takes ``(embeddings, labels, proxies)`` (or ``centers``):
embeddings ``[..., D]``, integer labels ``embeddings.shape[:-1]`` and a
``(C, D)`` array of class proxies, or ``(C, K, D)`` with ``K`` centres per
class (:func:`soft_triple_loss`, :func:`sub_center_arcface_loss`). The
proxies are a positional array like any parameter: hold them in the model or
as a learnable objective parameter (:func:`jaxobj.init_class_centers` draws
unit-norm ones; reshape its output for ``K`` centres per class). Their rows
are pytorch-metric-learning's ``W.T`` (its ``W`` is ``(D, C)``).

* **Proxy losses** (:func:`proxy_nca_loss`, :func:`proxy_anchor_loss`,
  :func:`soft_triple_loss`) compare normalised embeddings with normalised
  proxies.
* **Margin softmax classifiers** (:func:`large_margin_softmax_loss`,
  :func:`sphereface_loss`, :func:`sub_center_arcface_loss`) are the
  cross-entropy of a linear classifier whose target logit gets an angular
  margin; :func:`jaxobj.arcface_loss` and :func:`jaxobj.cosface_loss` are
  the others of the kind; :func:`p2sgrad_loss` regresses the cosines on
  the one-hot label instead.
* **Labelled batches without proxies** (``(embeddings, labels)``):
  :func:`instance_loss`, the batch as its own classifier, and the
  regularizer :func:`threshold_consistent_margin_loss`, added to any base
  metric loss.

All losses are one value per embedding; :func:`instance_loss`,
:func:`proxy_anchor_loss` and :func:`threshold_consistent_margin_loss` couple
the rows of a batch (the last two pool it: see their docstrings for what
``reduction="none"`` gives). A label
outside ``[0, C)`` (and not masked) gives NaN. Cosines divide by
:math:`\max(\|\cdot\|, 10^{-12})`, so a zero vector has cosine 0 with
everything, with finite gradients.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs
from jaxobj._src.examples import metric_learning as labelled_examples
from jaxobj._src.examples import proxies as examples
from jaxobj._src.margin_softmax import (
  ARCFACE_MODES,
  HIGHEST,
  arcface_target_logit,
  gram,
  margin_softmax,
  margin_softmax_values,
  normalize,
  safe_sqrt,
  sq_norm,
)
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "instance_loss",
  "large_margin_softmax_loss",
  "p2sgrad_loss",
  "proxy_anchor_loss",
  "proxy_nca_loss",
  "soft_triple_loss",
  "sphereface_loss",
  "sub_center_arcface_loss",
  "threshold_consistent_margin_loss",
]

_FAMILY = "metric_learning"
# The largest multiplicative margin: cos(m theta) is a degree-m polynomial
# unrolled at trace time (the papers use m <= 4).
MAX_ANGULAR_MARGIN = 64
# Inside the square root of SoftTriple's centre regularizer, as in the paper's
# code: keeps its gradient finite when two centres of a class coincide.
_SOFT_TRIPLE_REG_EPS = 1e-5


# --------------------------------------------------------------------------
# Inputs.


def _class_inputs(embeddings, labels, proxies, where, name, per_class_axis):
  """Embeddings ``[..., D]`` and labels with masked rows zeroed, and the proxies.

  ``per_class_axis``: the proxies are ``(C, K, D)`` (``K`` centres per class)
  instead of ``(C, D)``.
  """
  x = checks.as_float(embeddings, "embeddings")
  y = checks.as_labels(labels, "labels")
  checks.check_label_shape("embeddings", x, "labels", y)
  w = checks.as_float(proxies, name)
  want = "(num_classes, K, D)" if per_class_axis else "(num_classes, D)"
  if w.ndim != (3 if per_class_axis else 2) or w.shape[-1] != x.shape[-1] or 0 in w.shape:
    raise ValueError(
      f"{name} must have shape {want} with D = embeddings.shape[-1] and no empty axis, "
      f"got {name}.shape={w.shape} and embeddings.shape={x.shape}. Draw them with "
      f"jaxobj.init_class_centers(key, num_classes{' * K' if per_class_axis else ''}, "
      f"{x.shape[-1]}){'.reshape(num_classes, K, -1)' if per_class_axis else ''}."
    )
  shape = y.shape
  x = masked_fill(where, x, shape, axis_extra=1)
  y = masked_fill(where, y, shape, fill=0)
  return x, y, w, shape


def _cosines(x, w):
  """Cosines ``[..., C]`` (or ``[..., C, K]`` for ``(C, K, D)`` proxies)."""
  wn = normalize(w)
  cos = gram(normalize(x), wn.reshape(-1, wn.shape[-1]))
  return cos.reshape(cos.shape[:-1] + w.shape[:-1])


# --------------------------------------------------------------------------
# Proxy losses.


@register(_FAMILY, inputs=examples.PROXIES)
def proxy_nca_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  proxies: ArrayLike,
  *,
  scale: float | ArrayLike = 1.0,
  exclude_positive: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Proxy-NCA loss: a softmax over negative squared distances to the class proxies.

  .. math::
     \ell_i = -\log \frac{\exp(-s\, d(\hat x_i, \hat p_{y_i}))}
       {\sum_{k \in Z} \exp(-s\, d(\hat x_i, \hat p_k))},\qquad
     d(a, b) = \|a - b\|_2^2

  with :math:`\hat x = x / \max(\|x\|, 10^{-12})` and likewise for the proxies
  :math:`p_k`. By default :math:`Z` is every class, as in ProxyNCA++ (Teh et
  al. 2020), whose temperature is :math:`T = 1/s` (their best, 1/9, is
  ``scale=9``), and as in pytorch-metric-learning's ``ProxyNCALoss``
  (``softmax_scale`` is ``scale``; default 1). ``exclude_positive=True``
  takes :math:`Z` as the other classes, Movshovitz-Attias et al.'s original
  NCA form; that loss can be negative, and needs at least two classes. For
  unit vectors :math:`d = 2 - 2\cos`, so this is a softmax over
  :math:`2s\cos` (up to the shift).

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    proxies: float array ``(C, D)``, one proxy per class (learnable).
    scale: :math:`s > 0`, the inverse temperature (traceable).
    exclude_positive: leave the target out of the denominator (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``proxies`` not
      ``(C, D)`` with the embeddings' ``D`` (both shapes are named),
      ``scale <= 0``, or ``exclude_positive`` with a single class.
    TypeError: integer embeddings or proxies, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = jaxobj.proxy_nca_loss(jnp.array([[3.0, 0.0]]), jnp.array([0]), proxies)
    >>> print(round(float(loss), 4))  # log(1 + exp(0 - 2))
    0.1269

  References:
    Movshovitz-Attias et al., "No Fuss Distance Metric Learning using
    Proxies", ICCV 2017.
    Teh, DeVries and Taylor, "ProxyNCA++: Revisiting and Revitalizing Proxy
    Neighborhood Component Analysis", ECCV 2020.
  """
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  x, y, p, _ = _class_inputs(embeddings, labels, proxies, where, "proxies", False)
  num_classes = p.shape[0]
  if exclude_positive and num_classes < 2:
    raise ValueError(
      f"exclude_positive=True needs at least 2 classes (the denominator is the other "
      f"classes), got proxies.shape={p.shape}; use exclude_positive=False."
    )
  xn, pn = normalize(x), normalize(p)
  d = jnp.maximum(sq_norm(xn)[..., None] + sq_norm(pn) - 2.0 * gram(xn, pn), 0.0)
  logits = -(scale * d)
  is_target = jnp.arange(num_classes) == y[..., None]
  target = jnp.sum(jnp.where(is_target, logits, 0.0), axis=-1)
  others = jnp.where(is_target, -jnp.inf, logits) if exclude_positive else logits
  values = jax.nn.logsumexp(others, axis=-1) - target
  values = jnp.where(inputs.in_range(y, num_classes), values, jnp.nan)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _log1p_sum_exp_rows(t, keep):
  r"""``log(1 + sum_i exp(t_ic))`` over the kept rows ``i`` of each column ``c``; 0 if none."""
  t = jnp.where(keep, t, -jnp.inf)
  return jax.nn.logsumexp(jnp.concatenate([t, jnp.zeros_like(t[:1])], axis=0), axis=0)


@register(_FAMILY, inputs=examples.PROXIES, couples_rows=True)
def proxy_anchor_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  proxies: ArrayLike,
  *,
  alpha: float | ArrayLike = 32.0,
  margin: float | ArrayLike = 0.1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Proxy-Anchor loss: each proxy is an anchor pulling its batch positives, pushing the rest.

  .. math::
     L = \frac{1}{|P^+|} \sum_{p \in P^+}
         \log\Big(1 + \sum_{x \in X_p^+} e^{-\alpha(s(x, p) - \delta)}\Big)
       + \frac{1}{|P|} \sum_{p \in P}
         \log\Big(1 + \sum_{x \in X_p^-} e^{\alpha(s(x, p) + \delta)}\Big)

  :math:`s` is the cosine similarity, :math:`P` all ``C`` proxies,
  :math:`P^+` those with at least one embedding of their class in the
  (unmasked) batch, :math:`X_p^+` those embeddings and :math:`X_p^-` the
  others. Defaults :math:`\alpha = 32`, :math:`\delta = 0.1` are the paper's
  and pytorch-metric-learning's ``ProxyAnchorLoss`` (whose mean is this
  :math:`L`).

  **Rows are coupled** (each log pools the batch): the loss is declared
  ``couples_rows`` and an objective does not split it over devices or
  microbatches. So that ``"mean"`` is :math:`L` and the contract's sum rule
  holds, ``reduction="none"`` gives each embedding an equal share of each
  term it enters, times the number of unmasked embeddings :math:`N`:
  :math:`\ell_i = N\big(\frac{T^+_{y_i}}{|P^+|\,|X_{y_i}^+|} + \sum_{p \ne y_i}
  \frac{T^-_p}{|P|\,|X_p^-|}\big)`, with :math:`T^\pm_p` the two logs above.
  Their mean is :math:`L` and their sum :math:`N L`; ``weights`` weight
  these shares (a weighted mean of them). A masked row leaves the batch.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    proxies: float array ``(C, D)``, one proxy per class (learnable).
    alpha: :math:`\alpha > 0`, the scale (traceable).
    margin: :math:`\delta` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`), over
      the shares above.

  Returns:
    The reduced loss; the per-embedding shares (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: bad label or proxy shapes (both shapes are named),
      ``alpha <= 0``.
    TypeError: integer embeddings or proxies, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> loss = jaxobj.proxy_anchor_loss(x, jnp.array([0, 1]), proxies, alpha=1.0, margin=0.0)
    >>> print(round(float(loss), 4))  # log(1 + e^-1) + log(1 + e^0)
    1.0064

  References:
    Kim, Kim, Cho and Kwak, "Proxy Anchor Loss for Deep Metric Learning",
    CVPR 2020.
  """
  checks.check_range("alpha", alpha, low=0.0, low_inclusive=False)
  x, y, p, shape = _class_inputs(embeddings, labels, proxies, where, "proxies", False)
  num_classes = p.shape[0]
  valid = jnp.ones(shape, bool) if where is None else checks.as_mask(where, shape)
  valid = jnp.broadcast_to(valid, shape).reshape(-1)
  y = y.reshape(-1)
  cos = _cosines(x, p).reshape(-1, num_classes)
  ok = inputs.in_range(y, num_classes)
  is_class = jnp.arange(num_classes) == y[:, None]
  pos = is_class & valid[:, None]
  neg = ~is_class & (valid & ok)[:, None]
  pos_term = _log1p_sum_exp_rows(alpha * (margin - cos), pos)
  neg_term = _log1p_sum_exp_rows(alpha * (cos + margin), neg)
  n_pos, n_neg = jnp.sum(pos, axis=0), jnp.sum(neg, axis=0)
  num_pos_proxies = jnp.maximum(jnp.sum(n_pos > 0), 1).astype(cos.dtype)
  pos_share = pos_term / (jnp.maximum(n_pos, 1).astype(cos.dtype) * num_pos_proxies)
  neg_share = neg_term / (jnp.maximum(n_neg, 1).astype(cos.dtype) * num_classes)
  share = jnp.sum(jnp.where(pos, pos_share, 0.0) + jnp.where(neg, neg_share, 0.0), axis=1)
  values = jnp.where(ok, share * jnp.sum(valid).astype(cos.dtype), jnp.nan)
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.MULTI_PROXIES)
def soft_triple_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  scale: float | ArrayLike = 20.0,
  gamma: float | ArrayLike = 0.1,
  margin: float | ArrayLike = 0.01,
  tau: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SoftTriple loss: a margin softmax over soft-max-pooled similarities to K centres per class.

  .. math::
     \mathcal S_{i,c} = \sum_{k=1}^{K}
       \frac{e^{s_{i,c,k}/\gamma}}{\sum_{k'} e^{s_{i,c,k'}/\gamma}}\, s_{i,c,k},
     \qquad
     \ell_i = -\log \frac{e^{\lambda(\mathcal S_{i,y_i} - \delta)}}
       {e^{\lambda(\mathcal S_{i,y_i} - \delta)} + \sum_{c \ne y_i} e^{\lambda \mathcal S_{i,c}}}
       + \tau R

  with :math:`s_{i,c,k}` the cosine between embedding :math:`i` and centre
  :math:`k` of class :math:`c`. The regularizer merges centres of a class:

  .. math::
     R = \frac{1}{C K (K - 1)} \sum_{c=1}^{C} \sum_{k < k'}
       \sqrt{2 + \epsilon - 2\, \hat w_{c,k} \cdot \hat w_{c,k'}},\qquad \epsilon = 10^{-5}

  (:math:`\epsilon` keeps its gradient finite when centres coincide; 0 when
  :math:`K = 1`). It depends on the centres only; it is added to every row so
  that the mean is the paper's objective :math:`\frac1N\sum_i \ell^{\rm ST}_i +
  \tau R`, and the sum over a split batch still adds up. ``tau=0`` (the
  default, as pytorch-metric-learning's ``SoftTripleLoss``) leaves it out; the
  paper uses :math:`\tau = 0.2`. Defaults :math:`\lambda = 20`,
  :math:`\gamma = 0.1`, :math:`\delta = 0.01` are the paper's and
  pytorch-metric-learning's (``la``, ``gamma``, ``margin``; its ``fc`` of
  shape ``(D, C K)`` is ``centers.reshape(C * K, D).T``). With :math:`K = 1`
  it is a normalized softmax with an additive margin (CosFace).

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    centers: float array ``(C, K, D)``, ``K`` centres per class (learnable).
    scale: :math:`\lambda > 0` (traceable).
    gamma: :math:`\gamma > 0`, the temperature of the pooling over centres (traceable).
    margin: :math:`\delta` (traceable).
    tau: :math:`\tau \ge 0`, the weight of the regularizer (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named), ``scale``
      or ``gamma`` not positive, ``tau < 0``.
    TypeError: integer embeddings or centres, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    >>> loss = jaxobj.soft_triple_loss(jnp.array([[2.0, 0.0]]), jnp.array([0]), centers,
    ...                                scale=1.0, margin=0.0)
    >>> print(round(float(loss), 4))  # log(1 + exp(0 - 1))
    0.3133

  References:
    Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet
    Sampling", ICCV 2019.
  """
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  checks.check_range("gamma", gamma, low=0.0, low_inclusive=False)
  checks.check_range("tau", tau, low=0.0)
  x, y, w, _ = _class_inputs(embeddings, labels, centers, where, "centers", True)
  s = _cosines(x, w)  # [..., C, K]
  pooled = jnp.sum(jax.nn.softmax(s / gamma, axis=-1) * s, axis=-1)
  values = margin_softmax_values(pooled, y, lambda c: c - margin, scale)
  k = w.shape[1]
  if k > 1:
    wn = normalize(w)
    sim = jnp.einsum("ckd,cld->ckl", wn, wn, precision=HIGHEST)
    upper = np.triu(np.ones((k, k), bool), 1)
    dist = safe_sqrt(jnp.maximum(2.0 + _SOFT_TRIPLE_REG_EPS - 2.0 * sim, 0.0))
    reg = jnp.sum(jnp.where(upper, dist, 0.0)) / (w.shape[0] * k * (k - 1))
    values = values + tau * reg
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Margin softmax classifiers.


def _check_angular_margin(margin):
  if not 1 <= margin <= MAX_ANGULAR_MARGIN:
    raise ValueError(
      f"margin must be an integer in [1, {MAX_ANGULAR_MARGIN}] (the multiplicative angular "
      f"margin m of cos(m theta); 1 is the plain softmax), got margin={margin!r}."
    )


def _psi(c, m):
  r"""L-Softmax's :math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k` for
  :math:`\theta \in [k\pi/m, (k+1)\pi/m]`, from :math:`c = \cos\theta`.

  :math:`\cos(m\theta)` is the Chebyshev polynomial :math:`T_m(c)` (no
  arccos, so finite gradients at :math:`c = \pm 1`); :math:`k` counts the
  thresholds :math:`\cos(j\pi/m)`, :math:`j = 1..m-1`, above :math:`c`.
  :math:`\psi` is continuous and decreasing in :math:`\theta`.
  """
  t_prev, t = jnp.ones_like(c), c
  for _ in range(m - 1):
    t_prev, t = t, 2.0 * c * t - t_prev
  thresholds = np.cos(np.arange(1, m) * np.pi / m)
  k = jnp.sum(c[..., None] < jnp.asarray(thresholds, c.dtype), axis=-1).astype(c.dtype)
  sign = 1.0 - 2.0 * jnp.mod(k, 2.0)
  return sign * t - 2.0 * k


def _angular_margin_softmax(
  embeddings, labels, centers, margin, scale, softmax_weight, normalize_centers, where
):
  _check_angular_margin(margin)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  checks.check_range("softmax_weight", softmax_weight, low=0.0)
  x, y, w, _ = _class_inputs(embeddings, labels, centers, where, "centers", False)
  cos = _cosines(x, w)
  norms = safe_sqrt(sq_norm(x))[..., None]
  if not normalize_centers:
    norms = norms * safe_sqrt(sq_norm(w))

  def target_logit(c):
    return (softmax_weight * c + _psi(c, margin)) / (1.0 + softmax_weight)

  return margin_softmax_values(cos, y, target_logit, scale * norms)


@register(_FAMILY, inputs=examples.PROXIES)
def large_margin_softmax_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: int = 4,
  scale: float | ArrayLike = 1.0,
  softmax_weight: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Large-margin softmax (L-Softmax): a linear classifier with a multiplicative angular margin.

  .. math::
     \ell_i = -\log \frac{e^{s \|w_{y_i}\| \|x_i\| \psi(\theta_{y_i})}}
       {e^{s \|w_{y_i}\| \|x_i\| \psi(\theta_{y_i})}
        + \sum_{k \ne y_i} e^{s \|w_k\| \|x_i\| \cos\theta_k}}

  with :math:`\theta_k` the angle between embedding :math:`x_i` and centre
  :math:`w_k`, and

  .. math::
     \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\qquad
     \theta \in \Big[\frac{k\pi}{m}, \frac{(k+1)\pi}{m}\Big],\ k = 0, \dots, m - 1

  which is :math:`\cos(m\theta)` where that decreases and continues it
  monotonically beyond :math:`\pi/m`. :math:`\cos(m\theta)` is computed as the
  Chebyshev polynomial :math:`T_m(\cos\theta)`, without an arccos, so
  values and gradients are finite at :math:`\cos\theta = \pm 1`.
  ``softmax_weight`` :math:`\lambda` is the papers' training schedule, which
  anneals from the plain softmax: the target uses
  :math:`(\lambda \cos\theta + \psi(\theta)) / (1 + \lambda)` (0, the
  default, is the loss itself; pass a schedule's value each step).

  :math:`m = 1` is the softmax cross-entropy of the logits :math:`x_i \cdot
  w_k` (a linear layer without bias). Defaults (:math:`m = 4`, :math:`s = 1`)
  are pytorch-metric-learning's ``LargeMarginSoftmaxLoss`` (``W`` is
  ``centers.T``), which computes :math:`k` from the arccos.

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    centers: float array ``(C, D)``, the classifier's weight rows (learnable).
    margin: :math:`m`, an int in ``[1, 64]`` (static).
    scale: :math:`s > 0`, a factor on every logit (traceable).
    softmax_weight: :math:`\lambda \ge 0` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named),
      ``margin`` outside ``[1, 64]``, ``scale <= 0``, ``softmax_weight < 0``.
    TypeError: integer embeddings or centres, floating labels, a non-int ``margin``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> x = jnp.array([[1.0, 1.0]])  # 45 degrees from both: psi = cos(90 deg) = 0
    >>> loss = jaxobj.large_margin_softmax_loss(x, jnp.array([0]), centers, margin=2)
    >>> print(round(float(loss), 4))  # log(1 + exp(1 - 0))
    1.3133

  References:
    Liu, Wen, Yu and Yang, "Large-Margin Softmax Loss for Convolutional
    Neural Networks", ICML 2016.
  """
  values = _angular_margin_softmax(
    embeddings, labels, centers, margin, scale, softmax_weight, False, where
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.PROXIES)
def sphereface_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  margin: int = 4,
  scale: float | ArrayLike = 1.0,
  softmax_weight: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SphereFace (A-Softmax): L-Softmax with unit-norm class weights, margins purely angular.

  .. math::
     \ell_i = -\log \frac{e^{s \|x_i\| \psi(\theta_{y_i})}}
       {e^{s \|x_i\| \psi(\theta_{y_i})} + \sum_{k \ne y_i} e^{s \|x_i\| \cos\theta_k}}

  with :math:`\theta_k` the angle between embedding :math:`x_i` and centre
  :math:`w_k`, and

  .. math::
     \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\qquad
     \theta \in \Big[\frac{k\pi}{m}, \frac{(k+1)\pi}{m}\Big],\ k = 0, \dots, m - 1

  which is :math:`\cos(m\theta)` where that decreases and continues it
  monotonically beyond :math:`\pi/m`. :math:`\cos(m\theta)` is computed as the
  Chebyshev polynomial :math:`T_m(\cos\theta)`, without an arccos, so
  values and gradients are finite at :math:`\cos\theta = \pm 1`.
  ``softmax_weight`` :math:`\lambda` is the papers' training schedule, which
  anneals from the plain softmax: the target uses
  :math:`(\lambda \cos\theta + \psi(\theta)) / (1 + \lambda)` (0, the
  default, is the loss itself; pass a schedule's value each step).

  The centres are normalised (:math:`\|w_k\| = 1`, zero-bias), the
  embeddings are not: their norm scales the logits. It is
  :func:`large_margin_softmax_loss` of unit-norm centres. Defaults
  (:math:`m = 4`, :math:`s = 1`) are pytorch-metric-learning's
  ``SphereFaceLoss`` (``W`` is ``centers.T``).

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    centers: float array ``(C, D)``, the class weights (learnable; only their
      directions matter).
    margin: :math:`m`, an int in ``[1, 64]`` (static).
    scale: :math:`s > 0`, a factor on every logit (traceable).
    softmax_weight: :math:`\lambda \ge 0` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named),
      ``margin`` outside ``[1, 64]``, ``scale <= 0``, ``softmax_weight < 0``.
    TypeError: integer embeddings or centres, floating labels, a non-int ``margin``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[2.0, 0.0], [0.0, 3.0]])
    >>> x = jnp.array([[1.0, 1.0]])  # |x| = sqrt(2); psi(45 deg) = cos(90 deg) = 0
    >>> loss = jaxobj.sphereface_loss(x, jnp.array([0]), centers, margin=2)
    >>> print(round(float(loss), 4))  # log(1 + exp(sqrt(2) cos(45 deg) - 0))
    1.3133

  References:
    Liu et al., "SphereFace: Deep Hypersphere Embedding for Face
    Recognition", CVPR 2017.
  """
  values = _angular_margin_softmax(
    embeddings, labels, centers, margin, scale, softmax_weight, True, where
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.MULTI_PROXIES)
def sub_center_arcface_loss(
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
  r"""Sub-centre ArcFace: ArcFace on each class's closest of K sub-centres.

  .. math::
     \cos\theta_{i,c} = \max_{k} \cos(x_i, w_{c,k}),\qquad
     \ell_i = -\log \frac{e^{s\,\phi(\theta_{i,y_i})}}
       {e^{s\,\phi(\theta_{i,y_i})} + \sum_{c \ne y_i} e^{s \cos\theta_{i,c}}},\qquad
     \phi(\theta) = \cos(\theta + m)

  The max lets noisy samples of a class gather at a non-dominant sub-centre
  instead of pulling the dominant one. ``margin_mode`` and the margin itself
  are :func:`jaxobj.arcface_loss`'s (``K = 1`` is ArcFace). Defaults
  (:math:`m = 0.5`, :math:`s = 64`) are ArcFace's; pytorch-metric-learning's
  ``SubCenterArcFaceLoss`` takes ``margin`` in degrees (its 28.6° is 0.4992
  rad), ``sub_centers=3`` and ``W`` of shape ``(D, C K)``, which is
  ``centers.reshape(C * K, D).T``. Its ``get_outliers`` (dropping samples far
  from their dominant sub-centre) is a data-cleaning step, left to the caller:
  the cosines to the sub-centres are ``normalize(x) @ normalize(w).T``.

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    centers: float array ``(C, K, D)``, ``K`` sub-centres per class (learnable).
    margin: :math:`m` in radians, in :math:`[0, \pi)` (traceable).
    scale: :math:`s > 0` (traceable).
    margin_mode: ``"threshold"``, ``"easy"`` or ``"plain"`` (static), as in
      :func:`jaxobj.arcface_loss`.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named), unknown
      ``margin_mode``, ``margin`` or ``scale`` out of range.
    TypeError: integer embeddings or centres, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[[1.0, 0.0], [-1.0, 0.0]], [[0.0, 1.0], [0.0, -1.0]]])
    >>> x = jnp.array([[-2.0, 0.0]])  # at class 0's second sub-centre
    >>> loss = jaxobj.sub_center_arcface_loss(x, jnp.array([0]), centers, margin=0.5, scale=1.0)
    >>> print(round(float(loss), 4))  # log(1 + exp(0 - cos 0.5))
    0.3477

  References:
    Deng et al., "Sub-center ArcFace: Boosting Face Recognition by
    Large-Scale Noisy Web Faces", ECCV 2020.
  """
  checks.check_range("margin", margin, low=0.0, high=math.pi, high_inclusive=False)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  checks.check_choice("margin_mode", margin_mode, ARCFACE_MODES)
  x, y, w, _ = _class_inputs(embeddings, labels, centers, where, "centers", True)
  cos = jnp.max(_cosines(x, w), axis=-1)
  target_logit = functools.partial(arcface_target_logit, margin=margin, margin_mode=margin_mode)
  return margin_softmax(cos, y, target_logit, scale, where, weights, reduction)


@register(_FAMILY, inputs=examples.PROXIES)
def p2sgrad_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  centers: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""P2SGrad: squared error between the cosines to the class centres and the one-hot label.

  .. math::
     \ell_i = \sum_{k=1}^{C} \big(\cos\theta_{i,k} - [k = y_i]\big)^2

  Its gradient with respect to each cosine is :math:`2(\cos\theta_{i,k} -
  [k = y_i])`, the probability-to-similarity gradient of Zhang et al.
  (their Eq. 11, up to the factor 2): the update of a margin softmax without
  its scale and margin hyperparameters. Cosines as in
  :func:`jaxobj.arcface_loss`. pytorch-metric-learning's ``P2SGradLoss`` is
  the mean over all :math:`N \times C` squared errors, i.e. this mean divided
  by :math:`C` (its ``weight`` is ``centers.T``, kept at unit norm; here the
  centres are normalised inside the loss).

  Args:
    embeddings: float array ``[..., D]``.
    labels: integer class indices ``embeddings.shape[:-1]``; outside
      ``[0, C)`` (and not masked) gives NaN.
    centers: float array ``(C, D)``, the class centres (learnable; only their
      directions matter).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the embeddings.

  Returns:
    The reduced loss; one value per embedding for ``reduction="none"``.

  Raises:
    ValueError: bad label or centre shapes (both shapes are named).
    TypeError: integer embeddings or centres, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> centers = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> x = jnp.array([[3.0, 4.0]])  # cosines 0.6 and 0.8
    >>> print(round(float(jaxobj.p2sgrad_loss(x, jnp.array([0]), centers)), 4))  # 0.4^2 + 0.8^2
    0.8

  References:
    Zhang et al., "P2SGrad: Refined Gradients for Optimizing Deep Face
    Models", CVPR 2019.
  """
  x, y, w, _ = _class_inputs(embeddings, labels, centers, where, "centers", False)
  cos = _cosines(x, w)
  one_hot = (jnp.arange(w.shape[0]) == y[..., None]).astype(cos.dtype)
  values = jnp.sum(jnp.square(cos - one_hot), axis=-1)
  values = jnp.where(inputs.in_range(y, w.shape[0]), values, jnp.nan)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Labelled batches without proxies.


def _labelled_rows(embeddings, labels, where):
  """Unit embeddings ``[N, D]`` (masked rows zeroed), labels ``[N]``, the row
  mask ``[N]`` and the per-anchor shape."""
  x = checks.as_float(embeddings, "embeddings")
  y = checks.as_labels(labels, "labels")
  checks.check_label_shape("embeddings", x, "labels", y)
  shape = y.shape
  valid = jnp.ones(shape, bool) if where is None else checks.as_mask(where, shape)
  valid = jnp.broadcast_to(valid, shape).reshape(-1)
  z = normalize(masked_fill(where, x, shape, axis_extra=1).reshape(-1, x.shape[-1]))
  return z, y.reshape(-1), valid, shape


@register(_FAMILY, inputs=labelled_examples.LABELLED_EMBEDDINGS, couples_rows=True)
def threshold_consistent_margin_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin_plus: float | ArrayLike = 0.9,
  margin_minus: float | ArrayLike = 0.5,
  lambda_plus: float | ArrayLike = 1.0,
  lambda_minus: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Threshold-consistent margin (TCM): the hard pairs' shortfall from two cosine margins.

  .. math::
     L = \lambda^+ \frac{\sum_{(i,j) \in P} (m^+ - s_{ij})\,[s_{ij} \le m^+]}
                        {\sum_{(i,j) \in P} [s_{ij} \le m^+]}
       + \lambda^- \frac{\sum_{(i,j) \in N} (s_{ij} - m^-)\,[s_{ij} \ge m^-]}
                        {\sum_{(i,j) \in N} [s_{ij} \ge m^-]}

  over the ordered pairs of the (unmasked) batch: :math:`P` those with the
  same label (:math:`i \ne j`), :math:`N` those with different labels;
  :math:`s_{ij}` is their cosine similarity. A fraction with no pair in its
  denominator is 0. It is a **regularizer** added to a base metric loss (Zhang
  et al. 2023): it makes the accepting threshold of a verification system the
  same across classes. Add it to the base loss as its own objective term
  (``jo.term(jaxobj.threshold_consistent_margin_loss, ...)`` beside, say, a
  ``jo.term(jaxobj.multi_similarity_loss, ...)``).
  Defaults are the paper's and pytorch-metric-learning's
  ``ThresholdConsistentMarginLoss`` (which adds its ``base_loss`` itself and
  takes all pairs when no miner is given; its cosine divides by
  :math:`\max(\|x_i\|\|x_j\|, 10^{-8})`, here each vector by
  :math:`\max(\|x\|, 10^{-12})`).

  **Rows are coupled** (the averages run over the selected pairs of the whole
  batch): declared ``couples_rows``. ``reduction="none"`` gives each anchor
  :math:`i` its pairs' share times the number of unmasked rows :math:`B`:
  :math:`\ell_i = B\big(\lambda^+ \sum_{j:(i,j) \in P}(\cdot) / n^+ +
  \lambda^- \sum_{j:(i,j) \in N}(\cdot) / n^-\big)`, whose mean is
  :math:`L`; ``weights`` weight these shares. A masked row leaves the batch.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    margin_plus: :math:`m^+`, positive pairs less similar than it count (traceable).
    margin_minus: :math:`m^-`, negative pairs more similar than it count (traceable).
    lambda_plus: :math:`\lambda^+ \ge 0` (traceable).
    lambda_minus: :math:`\lambda^- \ge 0` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`), over
      the shares above.

  Returns:
    The reduced loss; the per-anchor shares (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, a negative
      ``lambda_plus`` or ``lambda_minus``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> y = jnp.array([0, 0, 1])  # positive cosine 0.6; negatives 0 and 0.8
    >>> print(round(float(jaxobj.threshold_consistent_margin_loss(x, y)), 4))  # 0.3 + 0.3
    0.6

  References:
    Zhang et al., "Threshold-Consistent Margin Loss for Open-World Deep
    Metric Learning", ICLR 2024 (arXiv:2307.04047, 2023).
  """
  checks.check_range("lambda_plus", lambda_plus, low=0.0)
  checks.check_range("lambda_minus", lambda_minus, low=0.0)
  z, y, valid, shape = _labelled_rows(embeddings, labels, where)
  s = gram(z, z)
  same = y[:, None] == y[None, :]
  both = valid[:, None] & valid[None, :]
  # "not beyond the margin" rather than "within it", so a NaN cosine is selected and propagates.
  pos = same & both & ~jnp.eye(y.shape[0], dtype=bool) & ~(s > margin_plus)
  neg = ~same & both & ~(s < margin_minus)
  n_pos = jnp.maximum(jnp.sum(pos), 1).astype(s.dtype)
  n_neg = jnp.maximum(jnp.sum(neg), 1).astype(s.dtype)
  pos_part = jnp.sum(jnp.where(pos, margin_plus - s, 0.0), axis=1) / n_pos
  neg_part = jnp.sum(jnp.where(neg, s - margin_minus, 0.0), axis=1) / n_neg
  values = (lambda_plus * pos_part + lambda_minus * neg_part) * jnp.sum(valid).astype(s.dtype)
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=labelled_examples.LABELLED_EMBEDDINGS, couples_rows=True)
def instance_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  scale: float | ArrayLike = 64.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Instance loss over the batch: each embedding classified among the batch's embeddings.

  .. math::
     \ell_i = -\log \frac{\sum_{j : y_j = y_i} e^{s \cos(x_i, x_j)}}
                          {\sum_{j} e^{s \cos(x_i, x_j)}}

  over the (unmasked) batch, :math:`j = i` included. With distinct labels
  (one instance per row: ``labels = arange(N)``) each row is its own class,
  the instance discrimination of Zheng et al.; pytorch-metric-learning's
  ``InstanceLoss`` (``gamma`` is ``scale``; default 64) gives the same values
  for those labels. For other labels it picks the target column by the
  label's rank among the batch's labels; here every row with the same label
  is a positive. The paper's classifier form, a learnable
  ``(num_instances, D)`` weight ``W`` shared by image and text, is
  ``jaxobj.softmax_cross_entropy_with_integer_labels(x @ W.T, instance_ids)``.

  Rows are coupled (the batch is the classifier): declared ``couples_rows``.
  A masked row leaves the batch.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``, the instance (or class) ids.
    scale: :math:`s > 0` (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`) over
      the anchors.

  Returns:
    The reduced loss; one value per anchor (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``scale <= 0``.
    TypeError: integer embeddings or floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> loss = jaxobj.instance_loss(x, jnp.array([0, 1]), scale=1.0, reduction="none")
    >>> print(loss)  # log(1 + exp(0 - 1)) each
    [0.3133 0.3133]

  References:
    Zheng et al., "Dual-path Convolutional Image-Text Embeddings with
    Instance Loss", ACM TOMM 2020 (arXiv:1711.05535).
  """
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  z, y, valid, shape = _labelled_rows(embeddings, labels, where)
  logits = scale * gram(z, z)
  # A masked row keeps itself as a column, so its (discarded) value stays finite.
  columns = valid[None, :] | jnp.eye(y.shape[0], dtype=bool)
  same = y[:, None] == y[None, :]
  every = jax.nn.logsumexp(jnp.where(columns, logits, -jnp.inf), axis=1)
  positives = jax.nn.logsumexp(jnp.where(columns & same, logits, -jnp.inf), axis=1)
  values = (every - positives).reshape(shape)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
