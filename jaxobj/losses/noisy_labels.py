r"""Classification losses that tolerate noisy labels.

Cross-entropy is unbounded: a wrong label on a confidently classified example
costs :math:`-\log p_y \to \infty`, so with enough capacity the model bends to
fit (memorize) every wrong label. The losses here bound or normalize that cost:

- **bounded**: generalized cross-entropy (between cross-entropy and MAE), the
  reverse cross-entropy (the mean absolute error up to scale);
- **symmetric** (Ghosh et al. 2017): :math:`\sum_k \ell(f(x), k)` is the same
  constant for every prediction, which makes the minimizer of the risk under
  symmetric label noise (of rate below :math:`(K - 1)/K`) the clean one. The
  reverse cross-entropy and the normalized losses of Ma et al. (2020) are
  symmetric;
- **active–passive** pairs (Ma et al. 2020): a normalized "active" loss that
  raises :math:`p_y` plus a symmetric "passive" one that lowers the other
  classes, which together fit well and stay robust;
- **bootstrapping** (Reed et al. 2015): the target mixed with the model's own
  prediction.

All take logits and integer labels: ``logits [..., K]``, ``labels
logits.shape[:-1]``, one value per example, with ``ignore_index`` (default
-100) and ``-inf`` logits for impossible classes handled as in
:func:`jaxobj.softmax_cross_entropy_with_integer_labels`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples, inputs
from jaxobj._src.reduce import Reduced, reduce_loss
from jaxobj.registry import register

__all__ = [
  "generalized_cross_entropy",
  "hard_bootstrap_loss",
  "nce_rce_loss",
  "nfl_rce_loss",
  "normalized_cross_entropy",
  "normalized_focal_loss",
  "reverse_cross_entropy",
  "soft_bootstrap_loss",
  "symmetric_cross_entropy",
]

_FAMILY = "noisy_labels"


def _prepare(logits, labels, axis, where, ignore_index):
  """Log-probabilities ``[..., K]``, the label's, the possible classes and the mask."""
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  log_p = jax.nn.log_softmax(x, axis=-1)
  possible = ~jnp.isneginf(x)  # NaN logits count, so that NaN reaches the value
  return x, log_p, inputs.take(log_p, y), y, possible, where


def _one_minus_p(log_p_y):
  """``1 - p_y`` from ``log p_y``, accurate for small and large ``p_y`` alike."""
  return -jnp.expm1(log_p_y)


def _log_one_minus_p(x, log_p):
  r"""``log(1 - p_k)`` for every class, ``p = softmax(x)``.

  Only the most probable class can have :math:`p_k > 1/2`: its value is the
  log-mass of the other classes (a difference of log-sum-exps); for the
  others ``log1p(-p_k)`` is accurate. ``-inf`` where no other class is
  possible, with zero (not NaN) gradients.
  """
  top = jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1], dtype=bool)
  others = jnp.where(top, -jnp.inf, x)
  some = jnp.any(others > -jnp.inf, axis=-1)
  others = jnp.where(some[..., None], others, 0.0)
  log_top = jax.nn.logsumexp(others, axis=-1) - jax.nn.logsumexp(x, axis=-1)
  log_top = jnp.where(some, log_top, -jnp.inf)
  rest = jnp.log1p(-jnp.exp(jnp.where(top, -1.0, log_p)))
  return jnp.where(top, log_top[..., None], rest)


def _power(log_q, gamma):
  """``q ** gamma`` from ``log q``, with ``0 ** 0 = 1`` and finite derivatives at ``q = 0``."""
  zero = jnp.isneginf(log_q)
  out = jnp.exp(gamma * jnp.where(zero, 0.0, log_q))
  return jnp.where(zero, jnp.where(gamma == 0, 1.0, 0.0), out)


def _normalized(numerator_k, y, possible):
  """``numerator_y / sum_k numerator_k`` over the possible classes; 0 when the
  sum is 0 (a single possible class, already certain)."""
  total = jnp.sum(jnp.where(possible, numerator_k, 0.0), axis=-1)
  ok = total < 0
  out = jnp.where(ok, inputs.take(numerator_k, y) / jnp.where(ok, total, -1.0), 0.0)
  return jnp.where(jnp.isnan(total), total, out)


def _check_log_clip(log_clip):
  checks.check_range("log_clip", log_clip, high=0.0, high_inclusive=False)


def _nce(log_p, y, possible):
  return _normalized(jnp.where(possible, log_p, 0.0), y, possible)


def _nfl(x, log_p, y, possible, gamma):
  weighted = _power(_log_one_minus_p(x, log_p), gamma) * jnp.where(possible, log_p, 0.0)
  return _normalized(weighted, y, possible)


# --------------------------------------------------------------------------
# Bounded losses.


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def generalized_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  q: float | ArrayLike = 0.7,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized cross-entropy: the negative Box–Cox transform of :math:`p_y`.

  .. math:: \ell(x, y) = \frac{1 - p_y^{\,q}}{q}, \qquad p = \operatorname{softmax}(x)

  Cross-entropy :math:`-\log p_y` in the limit :math:`q \to 0` (``q=0`` gives
  it exactly) and the mean absolute error :math:`1 - p_y` (half the L1
  distance to the one-hot label) at :math:`q = 1`. Bounded by :math:`1/q`, so a
  wrong label costs at most that; the gradient is cross-entropy's times
  :math:`p_y^{\,q}`, which lowers the weight of the examples the model finds
  implausible (mislabelled ones, but also hard ones). ``q = 0.7`` is the
  paper's choice.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    q: the exponent, in ``[0, 1]`` (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``q`` outside ``[0, 1]``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[2.0, 0.0, 0.0]]), jnp.array([1])
    >>> print(round(float(jaxobj.generalized_cross_entropy(x, y, q=0.7)), 4))
    1.1307
    >>> print(round(float(jaxobj.generalized_cross_entropy(x, y, q=0.0)), 4))  # cross-entropy
    2.2395

  References:
    Zhang and Sabuncu, "Generalized Cross Entropy Loss for Training Deep
    Neural Networks with Noisy Labels", NeurIPS 2018.
  """
  checks.check_range("q", q, low=0.0, high=1.0)
  _, _, log_p_y, _, _, where = _prepare(logits, labels, axis, where, ignore_index)
  is_ce = q == 0
  values = jnp.where(is_ce, -log_p_y, -jnp.expm1(q * log_p_y) / jnp.where(is_ce, 1.0, q))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def reverse_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  log_clip: float | ArrayLike = -4.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Reverse cross-entropy: the cross-entropy of the one-hot label under the prediction.

  .. math::
     \ell(x, y) = -\sum_k p_k \log q_k = -A\,(1 - p_y),
     \qquad q = \text{one-hot}(y),\ \log 0 := A

  with :math:`A` = ``log_clip`` < 0 standing in for :math:`\log 0`. It is the
  mean absolute error scaled by :math:`-A/2` (``log_clip=-2`` gives the MAE
  :math:`\lVert p - q\rVert_1 = 2(1 - p_y)`): bounded, symmetric
  (:math:`\sum_k \ell(x, k) = -A(K - 1)` for every ``x``), so robust to
  symmetric label noise, but slow to fit on its own; it is the passive half of
  :func:`symmetric_cross_entropy`, :func:`nce_rce_loss` and :func:`nfl_rce_loss`.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    log_clip: :math:`A`, the value of :math:`\log 0`, negative (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``log_clip >= 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([0])
    >>> print(jaxobj.reverse_cross_entropy(x, y))
    2.0

  References:
    Wang, Ma, Chen, Luo, Yi and Bailey, "Symmetric Cross Entropy for Robust
    Learning with Noisy Labels", ICCV 2019.
  """
  _check_log_clip(log_clip)
  _, _, log_p_y, _, _, where = _prepare(logits, labels, axis, where, ignore_index)
  values = -(log_clip * _one_minus_p(log_p_y))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def symmetric_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.1,
  beta: float | ArrayLike = 1.0,
  log_clip: float | ArrayLike = -4.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Symmetric cross-entropy: cross-entropy plus the reverse cross-entropy.

  .. math:: \ell(x, y) = -\alpha \log p_y - \beta A\,(1 - p_y)

  The cross-entropy term fits the clean classes quickly; the reverse term
  (:func:`reverse_cross_entropy`, :math:`A` = ``log_clip``) is bounded and
  symmetric, and with a small :math:`\alpha` keeps the noisy labels from being
  memorized. The defaults are the paper's for CIFAR-10 (:math:`\alpha = 0.1,
  \beta = 1, A = -4`); harder data sets take a larger :math:`\alpha`.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    alpha: weight of the cross-entropy, ``>= 0`` (traceable).
    beta: weight of the reverse cross-entropy, ``>= 0`` (traceable).
    log_clip: :math:`A`, the value of :math:`\log 0`, negative (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, a negative weight, ``log_clip >= 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([0])
    >>> print(round(float(jaxobj.symmetric_cross_entropy(x, y)), 4))  # 0.1 log 2 + 2
    2.0693

  References:
    Wang, Ma, Chen, Luo, Yi and Bailey, "Symmetric Cross Entropy for Robust
    Learning with Noisy Labels", ICCV 2019.
  """
  checks.check_range("alpha", alpha, low=0.0)
  checks.check_range("beta", beta, low=0.0)
  _check_log_clip(log_clip)
  _, _, log_p_y, _, _, where = _prepare(logits, labels, axis, where, ignore_index)
  values = -(alpha * log_p_y) - beta * log_clip * _one_minus_p(log_p_y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Bootstrapping.


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def soft_bootstrap_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  beta: float | ArrayLike = 0.95,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft bootstrapping: cross-entropy against the label mixed with the prediction.

  .. math::
     \ell(x, y) = -\sum_k \big(\beta\, q_k + (1 - \beta)\, p_k\big) \log p_k
     = -\beta \log p_y + (1 - \beta)\, H(p)

  with :math:`q` the one-hot label. The prediction inside the target is
  differentiated, as in the paper, so the second term is an entropy penalty
  that rewards confident predictions, whatever the label says. ``beta = 1``
  is the cross-entropy; the paper uses 0.95.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    beta: weight of the given label, in ``[0, 1]`` (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``beta`` outside ``[0, 1]``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([0])
    >>> print(round(float(jaxobj.soft_bootstrap_loss(x, y)), 4))  # log 2 either way
    0.6931

  References:
    Reed, Lee, Anguelov, Szegedy, Erhan and Rabinovich, "Training Deep Neural
    Networks on Noisy Labels with Bootstrapping", ICLR 2015 workshop.
  """
  checks.check_range("beta", beta, low=0.0, high=1.0)
  _, log_p, log_p_y, _, possible, where = _prepare(logits, labels, axis, where, ignore_index)
  entropy = -jnp.sum(jnp.exp(log_p) * jnp.where(possible, log_p, 0.0), axis=-1)
  values = (1.0 - beta) * entropy - beta * log_p_y
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def hard_bootstrap_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  beta: float | ArrayLike = 0.8,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Hard bootstrapping: cross-entropy against the label mixed with the predicted class.

  .. math::
     \ell(x, y) = -\beta \log p_y - (1 - \beta) \log p_{\hat y},
     \qquad \hat y = \arg\max_k p_k

  The model's own most probable class stands in for part of the label (its
  one-hot vector is a constant target). ``beta = 1`` is the cross-entropy; the
  paper uses 0.8.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    beta: weight of the given label, in ``[0, 1]`` (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``beta`` outside ``[0, 1]``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[1.0, 0.0]]), jnp.array([1])
    >>> print(round(float(jaxobj.hard_bootstrap_loss(x, y)), 4))
    1.1133

  References:
    Reed, Lee, Anguelov, Szegedy, Erhan and Rabinovich, "Training Deep Neural
    Networks on Noisy Labels with Bootstrapping", ICLR 2015 workshop.
  """
  checks.check_range("beta", beta, low=0.0, high=1.0)
  _, log_p, log_p_y, _, _, where = _prepare(logits, labels, axis, where, ignore_index)
  log_p_top = jnp.max(log_p, axis=-1)
  values = -(beta * log_p_y) - (1.0 - beta) * log_p_top
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Normalized (symmetric) losses and the active-passive pairs.


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def normalized_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Normalized cross-entropy: the label's cross-entropy over the sum over every class.

  .. math:: \ell(x, y) = \frac{-\log p_y}{-\sum_{k} \log p_k} \in [0, 1]

  over the possible classes (``-inf`` logits left out). Symmetric:
  :math:`\sum_k \ell(x, k) = 1` for every ``x``, so robust to symmetric label
  noise (Ma et al., Theorem 1); on its own it underfits, which the passive
  term of :func:`nce_rce_loss` remedies. 0 when one class is possible.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0, 0.0]]), jnp.array([0])
    >>> print(round(float(jaxobj.normalized_cross_entropy(x, y)), 4))  # uniform: 1 / K
    0.3333

  References:
    Ma, Huang, Wang, Romano, Erfani and Bailey, "Normalized Loss Functions for
    Deep Learning with Noisy Labels", ICML 2020.
  """
  _, log_p, _, y, possible, where = _prepare(logits, labels, axis, where, ignore_index)
  values = _nce(log_p, y, possible)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def normalized_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  gamma: float | ArrayLike = 0.5,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Normalized focal loss: the label's focal loss over the sum over every class.

  .. math::
     \ell(x, y) = \frac{-(1 - p_y)^\gamma \log p_y}
       {-\sum_{k} (1 - p_k)^\gamma \log p_k} \in [0, 1]

  over the possible classes. Symmetric like :func:`normalized_cross_entropy`
  (which is ``gamma=0``); the paper pairs it with the reverse cross-entropy in
  :func:`nfl_rce_loss`, with :math:`\gamma = 0.5`.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    gamma: focusing exponent, ``>= 0`` (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``gamma < 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0, 0.0, 0.0]]), jnp.array([2])
    >>> print(jaxobj.normalized_focal_loss(x, y))  # uniform: 1 / K
    0.25

  References:
    Ma, Huang, Wang, Romano, Erfani and Bailey, "Normalized Loss Functions for
    Deep Learning with Noisy Labels", ICML 2020. Lin et al., "Focal Loss for
    Dense Object Detection", ICCV 2017.
  """
  checks.check_range("gamma", gamma, low=0.0)
  x, log_p, _, y, possible, where = _prepare(logits, labels, axis, where, ignore_index)
  values = _nfl(x, log_p, y, possible, gamma)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def nce_rce_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 1.0,
  beta: float | ArrayLike = 1.0,
  log_clip: float | ArrayLike = -4.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Active–passive loss NCE + RCE: normalized cross-entropy plus reverse cross-entropy.

  .. math::
     \ell(x, y) = \alpha\, \frac{\log p_y}{\sum_k \log p_k} - \beta A\,(1 - p_y)

  The active term (:func:`normalized_cross_entropy`) raises :math:`p_y`, the
  passive term (:func:`reverse_cross_entropy`, :math:`A` = ``log_clip``) lowers
  the other classes; both are symmetric, so the sum is robust to symmetric
  noise and fits better than either alone. ``log_clip=-2`` makes the passive
  term the mean absolute error (the paper's NCE + MAE). The paper uses
  :math:`\alpha = \beta = 1` on CIFAR-10 and :math:`\alpha = 10, \beta = 0.1`
  on CIFAR-100.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    alpha: weight of the normalized cross-entropy, ``>= 0`` (traceable).
    beta: weight of the reverse cross-entropy, ``>= 0`` (traceable).
    log_clip: :math:`A`, the value of :math:`\log 0`, negative (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, a negative weight, ``log_clip >= 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([0])
    >>> print(jaxobj.nce_rce_loss(x, y))  # 1/2 + 4 * (1 - 1/2)
    2.5

  References:
    Ma, Huang, Wang, Romano, Erfani and Bailey, "Normalized Loss Functions for
    Deep Learning with Noisy Labels", ICML 2020.
  """
  checks.check_range("alpha", alpha, low=0.0)
  checks.check_range("beta", beta, low=0.0)
  _check_log_clip(log_clip)
  _, log_p, log_p_y, y, possible, where = _prepare(logits, labels, axis, where, ignore_index)
  values = alpha * _nce(log_p, y, possible) - beta * log_clip * _one_minus_p(log_p_y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(_FAMILY, inputs=examples.INTEGER_LABELS)
def nfl_rce_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: float | ArrayLike = 1.0,
  beta: float | ArrayLike = 1.0,
  gamma: float | ArrayLike = 0.5,
  log_clip: float | ArrayLike = -4.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Active–passive loss NFL + RCE: normalized focal loss plus reverse cross-entropy.

  .. math::
     \ell(x, y) = \alpha\, \frac{(1 - p_y)^\gamma \log p_y}
       {\sum_k (1 - p_k)^\gamma \log p_k} - \beta A\,(1 - p_y)

  As :func:`nce_rce_loss`, with the normalized focal loss
  (:func:`normalized_focal_loss`) as the active term; ``log_clip=-2`` gives the
  paper's NFL + MAE.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    alpha: weight of the normalized focal loss, ``>= 0`` (traceable).
    beta: weight of the reverse cross-entropy, ``>= 0`` (traceable).
    gamma: focusing exponent, ``>= 0`` (traceable).
    log_clip: :math:`A`, the value of :math:`\log 0`, negative (traceable).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, a negative weight or ``gamma``, ``log_clip >= 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([0])
    >>> print(jaxobj.nfl_rce_loss(x, y))  # 1/2 + 4 * (1 - 1/2)
    2.5

  References:
    Ma, Huang, Wang, Romano, Erfani and Bailey, "Normalized Loss Functions for
    Deep Learning with Noisy Labels", ICML 2020.
  """
  checks.check_range("alpha", alpha, low=0.0)
  checks.check_range("beta", beta, low=0.0)
  checks.check_range("gamma", gamma, low=0.0)
  _check_log_clip(log_clip)
  x, log_p, log_p_y, y, possible, where = _prepare(logits, labels, axis, where, ignore_index)
  values = alpha * _nfl(x, log_p, y, possible, gamma) - beta * log_clip * _one_minus_p(log_p_y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
