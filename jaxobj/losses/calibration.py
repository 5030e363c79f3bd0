r"""Calibration and proper scoring: Brier and log scores, calibration error,
reliability diagrams, temperature scaling and the confidence penalty.

The Brier and log scores are strictly proper scoring rules: differentiable
losses under the full contract (registered as ``kind="loss"``), minimized in
expectation only by the true class probabilities. The expected and maximum
calibration errors and the reliability-diagram data are evaluation metrics
(``kind="metric"``): piecewise constant in the logits, so useless as
training signals. :func:`fit_temperature` fits the one-parameter
post-hoc calibration of Guo et al. on held-out logits, and
:func:`confidence_penalty` is the entropy regularizer of Pereyra et al.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples, inputs
from jaxobj._src.examples import calibration as calibration_examples
from jaxobj._src.numerics import relative_entropy, scale_logits
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.losses import classification
from jaxobj.registry import register

__all__ = [
  "ReliabilityDiagram",
  "binary_brier_score",
  "brier_score",
  "brier_score_with_integer_labels",
  "confidence_penalty",
  "expected_calibration_error",
  "fit_temperature",
  "log_score",
  "log_score_with_integer_labels",
  "maximum_calibration_error",
  "reliability_diagram",
  "temperature_scale",
]


# --------------------------------------------------------------------------
# Proper scoring rules.


@register("calibration", inputs=examples.PROBABILITY_LABELS)
def brier_score(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass Brier score of softmax probabilities against probability labels.

  .. math:: \ell(x, y) = \sum_k \big(\operatorname{softmax}(x)_k - y_k\big)^2

  Brier's original multiclass form, in :math:`[0, 2]` for one-hot labels:
  its mean is ``sklearn.metrics.brier_score_loss`` on a probability matrix
  (whose default leaves the multiclass sum unhalved); some libraries halve
  it or divide by :math:`K`. A strictly proper scoring
  rule, bounded (unlike the log score), so a single confidently wrong
  prediction cannot dominate the mean. Classes with ``-inf`` logits have
  probability 0.

  Args:
    logits: float array ``[..., K]`` (class axis set by ``axis``).
    labels: probabilities (or one-hot labels) of the same shape.
    axis: the class axis (static).
    where: mask over the rows, shape ``logits.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one score per row for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[0.0, 0.0, -jnp.inf]])
    >>> print(float(jaxobj.brier_score(logits, jnp.array([[1.0, 0.0, 0.0]]))))
    0.5

  References:
    Brier, "Verification of Forecasts Expressed in Terms of Probability",
    Monthly Weather Review 1950.
  """
  x, y, _ = inputs.softmax_inputs(logits, labels, axis, where)
  values = jnp.sum(jnp.square(jax.nn.softmax(x, axis=-1) - y), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("calibration", inputs=examples.INTEGER_LABELS)
def brier_score_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass Brier score of softmax probabilities against integer labels.

  .. math:: \ell(x, y) = \sum_k \big(p_k - [k = y]\big)^2,
     \qquad p = \operatorname{softmax}(x)

  :func:`brier_score` with one-hot labels, without building them. Labels
  equal to ``ignore_index`` are masked; other labels outside ``[0, K)`` give
  NaN unless masked.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one score per row for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != logits.shape[:-1]``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[0.0, 0.0, -jnp.inf]])
    >>> print(float(jaxobj.brier_score_with_integer_labels(logits, jnp.array([1]))))
    0.5

  References:
    Brier, "Verification of Forecasts Expressed in Terms of Probability",
    Monthly Weather Review 1950.
  """
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  k = x.shape[-1]
  one_hot = jnp.arange(k) == y[..., None]
  values = jnp.sum(jnp.square(jax.nn.softmax(x, axis=-1) - one_hot), axis=-1)
  values = jnp.where(inputs.in_range(y, k), values, jnp.nan)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("calibration", inputs=examples.BINARY)
def binary_brier_score(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Binary Brier score of sigmoid probabilities.

  .. math:: \ell(x, y) = \big(\sigma(x) - y\big)^2

  The mean is ``sklearn.metrics.brier_score_loss`` on :math:`\sigma(x)`; it
  is half the multiclass :func:`brier_score` of the two-class problem.

  Args:
    logits: float array of any shape.
    labels: targets in [0, 1] of the same shape.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-element scores for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.binary_brier_score(jnp.array([0.0, 1e4]), jnp.array([1.0, 0.0]),
    ...                                 reduction="none"))
    [0.25 1.  ]

  References:
    Brier, "Verification of Forecasts Expressed in Terms of Probability",
    Monthly Weather Review 1950.
  """
  x, y = inputs.binary_inputs(logits, labels, where)
  values = jnp.square(jax.nn.sigmoid(x) - y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("calibration", inputs=examples.PROBABILITY_LABELS)
def log_score(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Logarithmic score (negative log-likelihood) against probability labels.

  .. math:: \ell(x, y) = -\sum_k y_k \log \operatorname{softmax}(x)_k

  The strictly proper local scoring rule; the same function as
  :func:`jaxobj.softmax_cross_entropy` without label smoothing, named here
  for evaluating calibration beside :func:`brier_score`. Unbounded: a
  confident wrong prediction costs without limit.

  Args:
    logits: float array ``[..., K]``.
    labels: probabilities of the same shape.
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one score per row for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[0.0, 0.0, -jnp.inf]])
    >>> print(round(float(jaxobj.log_score(logits, jnp.array([[1.0, 0.0, 0.0]]))), 4))
    0.6931

  References:
    Good, "Rational Decisions", Journal of the Royal Statistical Society B 1952.
  """
  return classification.softmax_cross_entropy(
    logits, labels, axis=axis, where=where, weights=weights, reduction=reduction
  )


@register("calibration", inputs=examples.INTEGER_LABELS)
def log_score_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Logarithmic score (negative log-likelihood) against integer labels.

  .. math:: \ell(x, y) = -\log \operatorname{softmax}(x)_y

  :func:`jaxobj.softmax_cross_entropy_with_integer_labels` without label
  smoothing or class weights: ``ignore_index`` and out-of-range labels
  behave the same.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one score per row for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != logits.shape[:-1]``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[0.0, 0.0, -jnp.inf]])
    >>> print(round(float(jaxobj.log_score_with_integer_labels(logits, jnp.array([0]))), 4))
    0.6931

  References:
    Good, "Rational Decisions", Journal of the Royal Statistical Society B 1952.
  """
  return classification.softmax_cross_entropy_with_integer_labels(
    logits,
    labels,
    ignore_index=ignore_index,
    axis=axis,
    where=where,
    weights=weights,
    reduction=reduction,
  )


# --------------------------------------------------------------------------
# Calibration metrics.


class ReliabilityDiagram(NamedTuple):
  """Per-bin data of a reliability diagram (all arrays of shape ``[num_bins]``,
  except ``edges``, ``[num_bins + 1]``).

  Attributes:
    confidence: mean top-label confidence of the predictions in each bin
      (0 for an empty bin).
    accuracy: fraction of those predictions that are correct (0 when empty).
    count: number of predictions in each bin (the sum of their weights when
      weights are given).
    edges: the bin edges, ``linspace(0, 1, num_bins + 1)``; bin ``b`` is
      ``(edges[b], edges[b + 1]]`` (the first one also holds 0).
  """

  confidence: jax.Array
  accuracy: jax.Array
  # Shadows tuple.count on purpose: the public name of the field since it was added.
  count: jax.Array  # type: ignore[assignment]
  edges: jax.Array


def _row_weights(where, weights, shape, dtype):
  """Per-row weights (1 without ``weights``), 0 on masked rows, selected so
  a NaN weight behind the mask cannot leak."""
  w = jnp.ones(shape, dtype)
  if weights is not None:
    weights = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", weights, shape)
    w = jnp.broadcast_to(weights, shape).astype(dtype)
  if where is not None:
    w = jnp.where(checks.as_mask(where, shape), w, 0.0)
  return w


def _binned(logits, labels, num_bins, ignore_index, axis, where, weights, right_closed=True):
  """Per-bin sums of weight, weighted confidence and weighted correctness.

  Bins are equal-width and right-closed, ``((b-1)/B, b/B]`` as in Guo et al.
  (the bin of a confidence is the number of inner edges strictly below it);
  with ``right_closed=False`` they are torchmetrics' ``[b/B, (b+1)/B)`` plus
  a bin ``B`` of its own for a confidence of exactly 1 (the number of edges
  after 0 at or below it).
  """
  if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
    raise ValueError(f"num_bins must be a positive int (static), got num_bins={num_bins!r}.")
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  w = _row_weights(where, weights, y.shape, x.dtype)
  log_p = jax.nn.log_softmax(x, axis=-1)
  confidence = jnp.exp(jnp.max(log_p, axis=-1))
  correct = (jnp.argmax(x, axis=-1) == y).astype(x.dtype)
  correct = jnp.where(inputs.in_range(y, x.shape[-1]), correct, jnp.nan)
  edges = jnp.linspace(0.0, 1.0, num_bins + 1, dtype=x.dtype)
  if right_closed:
    bins = jnp.searchsorted(edges[1:-1], confidence, side="left")
  else:
    bins = jnp.searchsorted(edges[1:], confidence, side="right")
  bins = bins.reshape(-1)
  num_segments = num_bins if right_closed else num_bins + 1

  def per_bin(v):
    return jax.ops.segment_sum(v.reshape(-1), bins, num_segments=num_segments)

  return per_bin(w), per_bin(w * confidence), per_bin(w * correct), edges


def _safe_divide(a, b):
  nonzero = b != 0
  return jnp.where(nonzero, a / jnp.where(nonzero, b, 1.0), 0.0)


@register("calibration", kind="metric", inputs=examples.INTEGER_LABELS, couples_rows=True)
def expected_calibration_error(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 15,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  right_closed: bool = True,
) -> jax.Array:
  r"""Expected calibration error of the top-label confidence (a metric, not a loss).

  .. math::
     \mathrm{ECE} = \sum_{b=1}^{B} \frac{n_b}{N}\,
       \big|\mathrm{acc}_b - \mathrm{conf}_b\big|
     = \frac1N \sum_b \Big|\sum_{i \in b} (\mathrm{correct}_i - c_i)\Big|

  with confidence :math:`c_i = \max_k \operatorname{softmax}(x_i)_k`,
  :math:`\mathrm{correct}_i = [\arg\max_k x_{ik} = y_i]` and :math:`B`
  equal-width bins :math:`((b-1)/B,\ b/B]` on the confidence (Guo et al.,
  2017). Empty bins contribute 0; an empty (all-masked) input gives 0.

  ``torchmetrics.functional.classification.multiclass_calibration_error``
  (``norm="l1"``) uses left-closed bins :math:`[b/B, (b+1)/B)` with a
  separate bin for a confidence of exactly 1: the two agree except for
  confidences exactly on an edge, which saturated logits make common (in
  float32 a confidence rounds to 1 once the top logit leads by about 17).
  ``right_closed=False`` gives torchmetrics' bins. Its
  ``binary_calibration_error`` bins :math:`p(y = 1)`, not the top-label
  confidence, so it is a different quantity from this one on two classes.

  ``where`` and ``ignore_index`` leave rows out; ``weights`` make
  :math:`n_b` and the bin means weighted (:math:`N = \sum_i w_i`).

  Args:
    logits: float array ``[..., K]`` (class axis set by ``axis``).
    labels: integer array ``logits.shape`` without the class axis.
    num_bins: number of equal-width bins :math:`B` (static int).
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where: optional boolean mask over the rows.
    weights: optional non-negative per-row weights.
    right_closed: Guo et al.'s bins :math:`((b-1)/B, b/B]` (default), or
      torchmetrics' (static bool).

  Returns:
    A scalar in :math:`[0, 1]`; NaN if an unmasked label is outside ``[0, K)``.

  Raises:
    ValueError: bad label shape, ``num_bins`` not a positive int.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.7, 0.3]]))
    >>> labels = jnp.array([0, 1, 0, 0])
    >>> print(round(float(jaxobj.expected_calibration_error(logits, labels, num_bins=5)), 4))
    0.35

  References:
    Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural
    Networks", ICML 2017; Naeini, Cooper and Hauskrecht, "Obtaining Well
    Calibrated Probabilities Using Bayesian Binning", AAAI 2015.
  """
  count, conf_sum, acc_sum, _ = _binned(
    logits, labels, num_bins, ignore_index, axis, where, weights, right_closed
  )
  return _safe_divide(jnp.sum(jnp.abs(acc_sum - conf_sum)), jnp.sum(count))


@register("calibration", kind="metric", inputs=examples.INTEGER_LABELS, couples_rows=True)
def maximum_calibration_error(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 15,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  right_closed: bool = True,
) -> jax.Array:
  r"""Maximum calibration error: the worst bin's confidence–accuracy gap (a metric).

  .. math:: \mathrm{MCE} = \max_{b:\ n_b > 0} \big|\mathrm{acc}_b - \mathrm{conf}_b\big|

  over the same bins as :func:`expected_calibration_error` (empty bins are
  skipped; 0 when every bin is empty). ``right_closed=False`` gives
  torchmetrics' ``norm="max"`` value, whose separate bin for confidences of
  exactly 1 often holds the worst gap when logits saturate.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    num_bins: number of equal-width bins (static int).
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where: optional boolean mask over the rows.
    weights: optional non-negative per-row weights.
    right_closed: Guo et al.'s bins (default), or torchmetrics' (static bool).

  Returns:
    A scalar in :math:`[0, 1]`.

  Raises:
    ValueError: bad label shape, ``num_bins`` not a positive int.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.7, 0.3]]))
    >>> labels = jnp.array([0, 1, 0, 0])
    >>> print(round(float(jaxobj.maximum_calibration_error(logits, labels, num_bins=5)), 4))
    0.4

  References:
    Naeini, Cooper and Hauskrecht, "Obtaining Well Calibrated Probabilities
    Using Bayesian Binning", AAAI 2015.
  """
  count, conf_sum, acc_sum, _ = _binned(
    logits, labels, num_bins, ignore_index, axis, where, weights, right_closed
  )
  return jnp.max(_safe_divide(jnp.abs(acc_sum - conf_sum), count))


@register("calibration", kind="metric", inputs=examples.INTEGER_LABELS, couples_rows=True)
def reliability_diagram(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  num_bins: int = 15,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
) -> ReliabilityDiagram:
  r"""Per-bin confidence, accuracy and count for a reliability diagram (a metric).

  .. math::
     \mathrm{conf}_b = \frac{1}{n_b}\sum_{i \in b} c_i, \qquad
     \mathrm{acc}_b = \frac{1}{n_b}\sum_{i \in b} \mathrm{correct}_i

  on the bins of :func:`expected_calibration_error` (whose value is
  ``sum(count * |accuracy - confidence|) / sum(count)``). Plot ``accuracy``
  against ``confidence`` (or against the bin centres) for the bins with
  ``count > 0``; empty bins hold 0.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    num_bins: number of equal-width bins (static int).
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where: optional boolean mask over the rows.
    weights: optional non-negative per-row weights.

  Returns:
    A :class:`ReliabilityDiagram` ``(confidence, accuracy, count, edges)``.

  Raises:
    ValueError: bad label shape, ``num_bins`` not a positive int.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.log(jnp.array([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.7, 0.3]]))
    >>> diagram = jaxobj.reliability_diagram(logits, jnp.array([0, 1, 0, 0]), num_bins=5)
    >>> print(diagram.count, diagram.accuracy)
    [0. 0. 0. 2. 2.] [0.  0.  0.  1.  0.5]

  References:
    DeGroot and Fienberg, "The Comparison and Evaluation of Forecasters",
    The Statistician 1983; Guo et al., "On Calibration of Modern Neural
    Networks", ICML 2017.
  """
  count, conf_sum, acc_sum, edges = _binned(
    logits, labels, num_bins, ignore_index, axis, where, weights
  )
  return ReliabilityDiagram(
    _safe_divide(conf_sum, count), _safe_divide(acc_sum, count), count, edges
  )


# --------------------------------------------------------------------------
# Temperature scaling.


def temperature_scale(
  logits: ArrayLike,
  temperature: ArrayLike,
) -> jax.Array:
  r"""Divides logits by a temperature: :math:`x / T` (``-inf`` stays ``-inf``).

  Args:
    logits: float array of any shape.
    temperature: :math:`T > 0`, a scalar or an array broadcastable to
      ``logits`` (traceable and differentiable).

  Returns:
    The scaled logits, in the compute dtype (float32 for low-precision input).

  Raises:
    ValueError: ``temperature <= 0`` (when concrete).
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.temperature_scale(jnp.array([2.0, -jnp.inf]), 2.0))
    [  1. -inf]
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  return scale_logits(checks.as_float(logits, "logits"), temperature)


@functools.partial(jax.jit, static_argnames="num_steps")
def _fit_temperature(x, y, w, bracket, num_steps):
  """Safeguarded Newton on u = log(1/T) over ``bracket``; x [N, K], y [N], w [N]."""
  k = x.shape[-1]
  total = jnp.sum(w)
  w = w / jnp.where(total > 0, total, 1.0)
  finite = x > -jnp.inf
  x0 = jnp.where(finite, x, 0.0)
  x_label = jnp.take_along_axis(x, jnp.clip(y, 0, k - 1)[:, None], axis=-1)[:, 0]
  x_label = jnp.where(inputs.in_range(y, k), x_label, jnp.nan)

  def derivatives(u):
    # d/du and d^2/du^2 of the mean NLL at beta = exp(u), from the moments of
    # the logits under p = softmax(beta x): dF/dbeta = E_p[x - x_y] and
    # d^2F/dbeta^2 = Var_p[x]. Centring on x_y avoids the cancellation of
    # E_p[x] - x_y, so the slope stays exact (and negative) for confident,
    # correct rows.
    beta = jnp.exp(u)
    p = jax.nn.softmax(jnp.where(finite, beta * x0, -jnp.inf), axis=-1)
    gap = jnp.where(finite, x0 - x_label[:, None], 0.0)
    mean = jnp.sum(p * gap, axis=-1)
    var = jnp.sum(p * jnp.square(gap - mean[:, None]), axis=-1)
    d1 = jnp.sum(w * mean)
    d2 = jnp.sum(w * var)
    return beta * d1, beta * d1 + beta**2 * d2

  def step(_, state):
    lo, hi, u = state
    g1, g2 = derivatives(u)
    lo = jnp.where(g1 < 0, u, lo)
    hi = jnp.where(g1 > 0, u, hi)
    newton = u - g1 / jnp.where(g2 > 0, g2, 1.0)
    inside = (g2 > 0) & (newton > lo) & (newton < hi)
    u = jnp.where(g1 == 0, u, jnp.where(inside, newton, 0.5 * (lo + hi)))
    return lo, hi, u

  lo, hi = bracket[0], bracket[1]
  u0 = jnp.clip(jnp.zeros((), x.dtype), lo, hi)
  _, _, u = jax.lax.fori_loop(0, num_steps, step, (lo, hi, u0))
  return jnp.where(total > 0, jnp.exp(-u), 1.0)


def fit_temperature(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  min_temperature: float = 1e-2,
  max_temperature: float = 1e2,
  num_steps: int = 50,
) -> jax.Array:
  r"""Fits one temperature on held-out logits by minimizing the log score.

  .. math::
     T^\star = \arg\min_{T \in [T_{\min}, T_{\max}]} \frac{1}{\sum_i w_i}
       \sum_i w_i \big[\operatorname{lse}(x_i / T) - x_{i y_i} / T\big]

  (Guo et al.'s temperature scaling). With :math:`\beta = 1/T` the
  objective is convex in :math:`\beta`, so its derivative changes sign once;
  the search runs in :math:`u = \log \beta = -\log T` as a safeguarded
  Newton iteration (exact first and second derivatives, a bisection step
  whenever Newton would leave the bracket that holds the optimum):
  ``num_steps`` fixed iterations, jit-able, converging to the optimum (to
  the bracket end when it lies outside :math:`[T_{\min}, T_{\max}]`, e.g.
  :math:`T \to 0` for separable logits). It is a fitting procedure, not a
  loss: the result carries no gradient (``stop_gradient``). An all-masked
  input returns 1. ``-inf`` logits (masked classes) are fine, but a row whose
  label has a ``-inf`` logit has infinite NLL at every temperature: mask it.

  Args:
    logits: float array ``[..., K]`` of a held-out (validation) set.
    labels: integer array ``logits.shape`` without the class axis.
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where: optional boolean mask over the rows.
    weights: optional non-negative per-row weights.
    min_temperature, max_temperature: the search interval (concrete floats,
      ``0 < min < max``).
    num_steps: number of iterations (static int); 50 reaches the float
      precision of the bracket even by bisection alone.

  Returns:
    The fitted temperature, a scalar; apply it with :func:`temperature_scale`.

  Raises:
    ValueError: bad label shape or search interval.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> labels = jnp.array([0, 0, 1, 1])  # 98% confident, right 3 times in 4
    >>> t = jaxobj.fit_temperature(logits, labels)
    >>> print(round(float(t), 3), jax.nn.softmax(jaxobj.temperature_scale(logits[0], t)))
    3.641 [0.75 0.25]

  References:
    Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural
    Networks", ICML 2017.
  """
  if not 0.0 < min_temperature < max_temperature:
    raise ValueError(
      f"the search interval must satisfy 0 < min_temperature < max_temperature, got "
      f"min_temperature={min_temperature!r} and max_temperature={max_temperature!r}."
    )
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  w = _row_weights(where, weights, y.shape, x.dtype)
  k = x.shape[-1]
  bounds = jnp.log(jnp.asarray([max_temperature, min_temperature], x.dtype))
  return jax.lax.stop_gradient(
    _fit_temperature(x.reshape(-1, k), y.reshape(-1), w.reshape(-1), -bounds, num_steps)
  )


# --------------------------------------------------------------------------
# Confidence penalty.


@register("calibration", inputs=calibration_examples.LOGITS)
def confidence_penalty(
  logits: ArrayLike,
  *,
  threshold: float | ArrayLike | None = None,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Confidence penalty: the negative entropy of the predicted distribution.

  .. math::
     \ell(x) = -H(p) = \sum_k p_k \log p_k, \qquad p = \operatorname{softmax}(x);
     \qquad \ell_\Gamma(x) = \max\big(0,\ \Gamma - H(p)\big)

  Added to the cross-entropy with a small weight :math:`\beta` (Pereyra et
  al. use 0.1 to 4), it discourages low-entropy, overconfident predictive
  distributions: ``ce + beta * confidence_penalty(logits)``. With
  ``threshold`` :math:`\Gamma` only entropies below :math:`\Gamma` are
  penalized (the hinge form of the paper). Values lie in
  :math:`[-\log K, 0]` (unthresholded). Classes with ``-inf`` logits have
  zero probability and contribute exactly 0.

  Args:
    logits: float array ``[..., K]`` (class axis set by ``axis``).
    threshold: optional entropy threshold :math:`\Gamma \ge 0` in nats
      (traceable when given).
    axis: the class axis (static).
    where: mask over the rows, shape ``logits.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced penalty; one value per row for ``reduction="none"``.

  Raises:
    ValueError: ``logits`` is a scalar, ``threshold < 0`` (when concrete).
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj.losses.calibration import confidence_penalty
    >>> logits = jnp.array([[0.0, 0.0, -jnp.inf], [1e4, 0.0, 0.0]])
    >>> print(confidence_penalty(logits, reduction="none"))
    [-0.6931  0.    ]

  References:
    Pereyra, Tucker, Chorowski, Kaiser and Hinton, "Regularizing Neural
    Networks by Penalizing Confident Output Distributions", ICLR 2017
    workshop (arXiv:1701.06548).
  """
  checks.check_range("threshold", threshold, low=0.0)
  x = checks.as_float(logits, "logits")
  if x.ndim < 1:
    raise ValueError("logits must have a class axis, got a scalar; pass [..., K].")
  x = jnp.moveaxis(x, axis, -1)
  x = masked_fill(where, x, x.shape[:-1], axis_extra=1)
  log_p = jax.nn.log_softmax(x, axis=-1)
  values = relative_entropy(jnp.exp(log_p), log_p, jnp.zeros_like(log_p))
  if threshold is not None:
    values = jnp.maximum(threshold + values, 0.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
