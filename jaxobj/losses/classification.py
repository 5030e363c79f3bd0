r"""Classification losses, computed from logits (never probabilities).

Everything with a sigmoid or softmax inside works in log space
(``log_sigmoid``, ``softplus``, log-sum-exp), so logits of :math:`\pm 10^4` and
``-inf``-masked classes give finite values and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples, inputs
from jaxobj._src.examples import parity as parity_examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "categorical_hinge",
  "hinge_loss",
  "multiclass_hinge_loss",
  "multilabel_margin_loss",
  "multilabel_soft_margin_loss",
  "nll_loss",
  "poly_loss_cross_entropy",
  "poly_loss_cross_entropy_with_integer_labels",
  "sigmoid_binary_cross_entropy",
  "sigmoid_focal_loss",
  "smooth_labels",
  "soft_margin_loss",
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
  "softmax_focal_loss",
  "softmax_focal_loss_with_integer_labels",
  "squared_hinge_loss",
]

# Why a hinge has a zero Hessian (see LossSpec.zero_hessian).
_HINGE = "piecewise linear: a hinge max(0, margin - ...), kinked at the margin"

# --------------------------------------------------------------------------
# Shared preparation of inputs (the rest is in jaxobj._src.inputs).


def _with_class_weights(weights, class_weights, labels):
  """Per-row weights times the weight of each row's label class."""
  ok = inputs.in_range(labels, class_weights.shape[0])
  w_y = jnp.where(ok, jnp.take(class_weights, jnp.where(ok, labels, 0)), jnp.nan)
  if weights is None:
    return w_y
  weights = checks.as_float(weights, "weights")
  checks.check_broadcastable("weights", weights, labels.shape)
  return weights * w_y


def _safe_log(v):
  """``log(v)`` with ``-inf`` for ``v <= 0`` and a zero (not NaN) gradient there."""
  pos = v > 0
  return jnp.where(pos, jnp.log(jnp.where(pos, v, 1.0)), -jnp.inf)


def _pow_from_log(log_q, gamma):
  r"""``q**gamma`` as ``exp(gamma * log_q)``, with ``0**0 = 1``.

  Every derivative is ``q**gamma`` times a polynomial in the derivatives of
  ``log_q``, so it stays finite wherever those do, for any ``gamma >= 0``
  (a power of ``q`` itself has ``q**(gamma - 2)`` in its second derivative).
  """
  zero = jnp.isneginf(log_q)
  out = jnp.exp(gamma * jnp.where(zero, 0.0, log_q))
  return jnp.where(zero, jnp.where(gamma == 0, 1.0, 0.0), out)


def _log_mass_outside(x, exclude):
  """``log(1 - sum_{k in exclude} p_k)``, ``p = softmax(x)``, as a difference of log-sum-exps.

  Each log-sum-exp is shifted by its own maximum and the two shifts are
  subtracted apart, so large logits (1e4) lose no precision to rounding at
  their scale. Its derivatives of every order are bounded (unlike those of
  ``log(1 - p)`` with ``1 - p`` rounding to 0); ``-inf`` where no possible
  class is left, with a zero gradient.
  """
  others = jnp.where(exclude, -jnp.inf, x)
  some = jnp.any(others > -jnp.inf, axis=-1, keepdims=True)
  others = jnp.where(some, others, 0.0)

  def shifted(v):
    m = jax.lax.stop_gradient(jnp.max(v, axis=-1, keepdims=True))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return m[..., 0], jnp.log(jnp.sum(jnp.exp(v - m), axis=-1))

  m_o, log_o = shifted(others)
  m, log_all = shifted(x)
  return jnp.where(some[..., 0], (m_o - m) + (log_o - log_all), -jnp.inf)


def _log1m_softmax(x, log_p):
  r"""``log(1 - p_k)`` for every class ``k`` of ``p = softmax(x)``.

  Only the most probable class can have :math:`p_k > 1/2`; its
  :math:`\log(1 - p_k)` is the log-mass of the other classes. For the rest
  ``log1p(-p_k)`` is accurate and its derivatives are bounded.
  """
  top = jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1], dtype=bool)
  rest = jnp.log1p(-jnp.exp(jnp.where(top, -1.0, log_p)))
  return jnp.where(top, _log_mass_outside(x, top)[..., None], rest)


# --------------------------------------------------------------------------
# Binary.


@register("classification", inputs=examples.BINARY)
def sigmoid_binary_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  pos_weight: float | ArrayLike = 1.0,
  label_smoothing: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Binary cross-entropy of sigmoid logits, with positive-class weighting.

  .. math::
     \ell(x, y) = -\,w_+\, y \log \sigma(x) - (1 - y) \log(1 - \sigma(x)),
     \qquad y \leftarrow (1 - \alpha)\, y + \alpha / 2

  computed as :math:`w_+ y\,\operatorname{softplus}(-x) + (1-y)\operatorname{softplus}(x)`,
  so logits of any size are exact and a zero label never multiplies an infinity.

  Args:
    logits: float array of any shape.
    labels: targets in [0, 1] of the same shape (soft labels allowed).
    pos_weight: weight :math:`w_+` of the positive term (traceable; broadcast
      to ``logits``, e.g. one per class for multi-label problems).
    label_smoothing: :math:`\alpha` in [0, 1] (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``pos_weight < 0`` or ``label_smoothing``
      outside [0, 1] (when concrete).
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.sigmoid_binary_cross_entropy(
    ...     jnp.array([0.0, 1e4]), jnp.array([1.0, 1.0]))), 4))
    0.3466
  """
  checks.check_range("pos_weight", pos_weight, low=0.0)
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  x, y = inputs.binary_inputs(logits, labels, where)
  y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
  pos = y * inputs.safe_logp(y, jax.nn.softplus(-x))
  neg = (1.0 - y) * inputs.safe_logp(1.0 - y, jax.nn.softplus(x))
  values = pos_weight * pos + neg
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.BINARY)
def sigmoid_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  gamma: float | ArrayLike = 2.0,
  alpha: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Focal loss on sigmoid logits: cross-entropy down-weighted on easy examples.

  .. math::
     \ell(x, y) = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x, y),\quad
     p_t = p y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y)

  :math:`(1 - p_t)^\gamma` is evaluated as
  :math:`\exp(\gamma \log(1-p_t))`, with :math:`\log(1-p_t)` a log-sum-exp
  of log-sigmoids, so confident logits give finite values, gradients and
  second derivatives, and it is differentiable in ``gamma``. ``gamma=0`` and
  ``alpha=None`` give the plain cross-entropy.

  The defaults are optax's (``gamma=2``, ``alpha=None``);
  ``torchvision.ops.sigmoid_focal_loss`` defaults to ``alpha=0.25`` (pass it)
  and to ``reduction="none"``. The gradient w.r.t. ``labels`` is the exact
  one, as in torchvision (optax's log-space form drops the
  :math:`\partial(1-p_t)/\partial y` term at labels of exactly 0 or 1).

  Args:
    logits: float array of any shape.
    labels: targets in [0, 1] of the same shape.
    gamma: focusing exponent, non-negative (traceable).
    alpha: positive-class balance in [0, 1], or None for no balancing
      (traceable when given).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``gamma < 0`` or ``alpha`` outside [0, 1].

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> easy, hard = jnp.array([4.0]), jnp.array([-1.0])
    >>> y = jnp.array([1.0])
    >>> ratio = jaxobj.sigmoid_focal_loss(easy, y) / jaxobj.sigmoid_focal_loss(hard, y)
    >>> print(float(ratio) < 1e-3)
    True

  References:
    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
  """
  checks.check_range("gamma", gamma, low=0.0)
  checks.check_range("alpha", alpha, low=0.0, high=1.0)
  x, y = inputs.binary_inputs(logits, labels, where)
  ce = y * inputs.safe_logp(y, jax.nn.softplus(-x)) + (1.0 - y) * inputs.safe_logp(
    1.0 - y, jax.nn.softplus(x)
  )
  # log(1 - p_t) with 1 - p_t = y (1 - p) + (1 - y) p, as a log-sum-exp of
  # log_sigmoid terms: its x-derivatives of every order are bounded, so
  # second derivatives stay finite where 1 - p_t underflows.
  log_q = jnp.logaddexp(
    _safe_log(y) + jax.nn.log_sigmoid(-x), _safe_log(1.0 - y) + jax.nn.log_sigmoid(x)
  )
  # At y = 0 (y = 1) the log y (log(1 - y)) branch is cut off, and with it
  # its share of d log(1 - p_t) / dy, e^{-x} (-e^{x}); restore it, exactly 0
  # in value. Capped so that it times a (then vanishing) focal factor is
  # never inf * 0.
  cut = jnp.where(y == 0, jnp.exp(jnp.minimum(-x, 80.0)), 0.0) - jnp.where(
    y == 1, jnp.exp(jnp.minimum(x, 80.0)), 0.0
  )
  log_q = log_q + (y - jax.lax.stop_gradient(y)) * cut
  values = _pow_from_log(log_q, gamma) * ce
  if alpha is not None:
    values = (alpha * y + (1.0 - alpha) * (1.0 - y)) * values
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.SIGNED, zero_hessian=_HINGE)
def hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Hinge loss of a binary classifier with labels in {-1, +1} (or {0, 1}).

  .. math:: \ell(s, y) = \max(0,\ m - y\,s)

  A label 0 is read as -1, so {0, 1} labels work as they are. This is the
  least surprising choice: 0 is never a ±1 label, so reading it as the
  negative class is unambiguous, it gives the right value under ``jax.jit``
  too (where a check cannot see the labels, and a 0 taken at face value would
  give the constant ``margin`` and no gradient), and it is what Keras's
  ``hinge`` and scikit-learn's ``hinge_loss`` do. Other values are taken as
  they are, as in optax (a real-valued label scales the score).

  Args:
    scores: real-valued decision scores, float array of any shape.
    labels: -1 or +1 (0 is read as -1), same shape.
    margin: :math:`m`, non-negative (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``margin < 0`` (when concrete).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1.0, 1.0, 1.0]),
    ...                         reduction="none"))
    [0.  0.5 2. ]
  """
  checks.check_range("margin", margin, low=0.0)
  s, y = inputs.binary_inputs(scores, labels, where, names=("scores", "labels"))
  y = _signed_labels(y)
  return reduce_loss(
    jnp.maximum(margin - y * s, 0.0), where=where, weights=weights, reduction=reduction
  )


def _signed_labels(y: jax.Array) -> jax.Array:
  """±1 labels, with 0 read as -1 (see hinge_loss for why)."""
  return jnp.where(y == 0, -1.0, y).astype(y.dtype)


@register("classification", inputs=examples.SIGNED)
def squared_hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Squared hinge loss with labels in {-1, +1}: smooth, and harsher on large violations.

  .. math:: \ell(s, y) = \max(0,\ m - y\,s)^2

  A label 0 is read as -1, as in :func:`hinge_loss` (and Keras's
  ``squared_hinge``).

  Args:
    scores: float array of any shape.
    labels: -1 or +1 (0 is read as -1), same shape.
    margin: :math:`m`, non-negative (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``margin < 0`` (when concrete).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.squared_hinge_loss(jnp.array([0.5, -1.0]), jnp.array([1.0, 1.0]),
    ...                                 reduction="none"))
    [0.25 4.  ]
  """
  checks.check_range("margin", margin, low=0.0)
  s, y = inputs.binary_inputs(scores, labels, where, names=("scores", "labels"))
  y = _signed_labels(y)
  return reduce_loss(
    jnp.square(jnp.maximum(margin - y * s, 0.0)), where=where, weights=weights, reduction=reduction
  )


# --------------------------------------------------------------------------
# Multiclass.


def smooth_labels(
  labels: ArrayLike,
  alpha: ArrayLike,
) -> jax.Array:
  r"""Mixes probability labels with the uniform distribution over the last axis.

  .. math:: y \leftarrow (1 - \alpha)\, y + \alpha / K

  The losses take ``label_smoothing=`` directly (and avoid a one-hot for
  integer labels); this helper is for building smoothed targets by hand.

  Args:
    labels: probability labels, shape ``[..., K]``.
    alpha: smoothing in [0, 1] (traceable).

  Returns:
    The smoothed labels, same shape.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.smooth_labels(jnp.array([0.0, 1.0]), 0.2))
    [0.1 0.9]
  """
  checks.check_range("alpha", alpha, low=0.0, high=1.0)
  y = checks.as_float(labels, "labels")
  return y * (1.0 - alpha) + jnp.asarray(alpha) / y.shape[-1]


def _smooth_over_finite(y, x, label_smoothing):
  """Label smoothing whose uniform part covers only classes with finite logits:
  a class masked with -inf is impossible and must receive no target mass."""
  finite, count = inputs.finite_classes(x)
  uniform = finite / count[..., None]
  return (1.0 - label_smoothing) * y + label_smoothing * uniform


@register("classification", inputs=examples.PROBABILITY_LABELS, axis_tuples=True)
def softmax_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  label_smoothing: float | ArrayLike = 0.0,
  class_weights: ArrayLike | None = None,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Softmax cross-entropy against probability (or one-hot) labels.

  .. math::
     \ell(x, y) = -\sum_k w_k\, y_k \log \operatorname{softmax}(x)_k,
     \qquad y \leftarrow (1 - \alpha)\, y + \alpha\, u

  where :math:`u` is uniform over the classes whose logit is not ``-inf``
  (masked classes get no smoothing mass, so masking vocabulary entries with
  ``-inf`` stays finite). Terms with :math:`y_k = 0` are exactly 0.

  ``class_weights`` :math:`w_k` weight each class's term inside the sum; the
  mean still divides by the number of (weighted, unmasked) rows.

  Args:
    logits: float array ``[..., K]`` (class axis set by ``axis``).
    labels: probabilities of the same shape.
    label_smoothing: :math:`\alpha` in [0, 1] (traceable).
    class_weights: optional ``[K]`` per-class weights.
    axis: the class axis, or a tuple of class axes flattened into one (static).
    where: mask over the rows, shape ``logits.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``class_weights`` of the wrong shape,
      ``label_smoothing`` outside [0, 1].
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[2.0, 0.0, -jnp.inf]])
    >>> print(round(float(jaxobj.softmax_cross_entropy(logits, jnp.array([[1.0, 0.0, 0.0]]))), 4))
    0.1269
  """
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  x, y, shape = inputs.softmax_inputs(logits, labels, axis, where)
  if isinstance(label_smoothing, float) and label_smoothing == 0.0:
    target = y
  else:
    target = _smooth_over_finite(y, x, label_smoothing)
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if cw is not None:
    target = target * cw
  logp = _safe_log_softmax(target, jax.nn.log_softmax(x, axis=-1))
  values = -jnp.sum(target * logp, axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _pick(x: jax.Array, labels: jax.Array, is_label: jax.Array | None = None) -> jax.Array:
  """``inputs.take(x, labels)`` (``x[..., labels]``, NaN for labels outside
  ``[0, K)``) as a sum over the label's one-hot selection, which compiles to a
  smaller program than a gather; the value and gradient are the same (the other
  classes add exact zeros, whatever they hold)."""
  if is_label is None:
    is_label = jnp.arange(x.shape[-1]) == labels[..., None]
  got = jnp.sum(jnp.where(is_label, x, 0.0), axis=-1)
  return jnp.where(inputs.in_range(labels, x.shape[-1]), got, jnp.nan)


def _safe_log_softmax(y: jax.Array, logp: jax.Array) -> jax.Array:
  """``inputs.safe_logp`` for a log-softmax, which is never ``+inf``: one
  comparison with ``-inf`` instead of ``isinf``'s two-sided test, which
  compiles to a smaller program (the value and gradient are the same)."""
  return jnp.where((logp == -jnp.inf) & (y == 0), 0.0, logp)


@register("classification", inputs=examples.INTEGER_LABELS, axis_tuples=True)
def softmax_cross_entropy_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  label_smoothing: float | ArrayLike = 0.0,
  class_weights: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Softmax cross-entropy against integer class labels, without a one-hot.

  .. math::
     \ell(x, y) = (1-\alpha)\, w_y \big(\operatorname{lse}(x) - x_y\big)
       + \frac{\alpha}{|F|} \sum_{k\in F} w_k \big(\operatorname{lse}(x) - x_k\big)

  where :math:`F` is the set of classes whose logit is not ``-inf``: the
  per-row loss is :func:`softmax_cross_entropy` of the smoothed one-hot label,
  computed without the one-hot. The class weight :math:`w_y` of each row's
  label joins ``weights``, so the mean is :math:`\sum_i \ell_i / \sum_i
  w_{y_i}` (the class-weighted mean), as in ``torch.nn.functional.cross_entropy``
  with ``weight`` and ``label_smoothing``, which this matches when no logit
  is ``-inf`` (torch spreads the smoothing mass over all :math:`K` classes).
  A row whose label class has weight 0 contributes nothing (torch still adds
  its smoothing term to the numerator).

  Labels equal to ``ignore_index`` are masked like ``where=False``. Labels
  outside ``[0, K)`` that are not masked raise ``ValueError`` when the labels
  are concrete (an eager call); under ``jax.jit`` they give NaN, so a bad
  label never passes as a plausible number (validate traced labels with
  ``jax.experimental.checkify``). This holds for every loss with integer
  class labels.

  Args:
    logits: float array ``[..., K]`` (class axis set by ``axis``).
    labels: integer array ``logits.shape`` without the class axis.
    label_smoothing: :math:`\alpha` in [0, 1] (traceable).
    class_weights: optional ``[K]`` per-class weights.
    ignore_index: label value to skip (default -100, PyTorch's padding label;
      None skips none).
    axis: the class axis, or a tuple of class axes flattened into one in the
      order given, a label being a flat index into them (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != logits.shape[:-1]``, bad ``class_weights``
      shape, ``label_smoothing`` outside [0, 1], an unmasked label outside
      ``[0, K)`` (when concrete).
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[2.0, 0.0, -jnp.inf], [0.0, 0.0, 0.0]])
    >>> labels = jnp.array([0, -100])
    >>> print(round(float(jaxobj.softmax_cross_entropy_with_integer_labels(
    ...     logits, labels, ignore_index=-100)), 4))
    0.1269
  """
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  lse = jax.nn.logsumexp(x, axis=-1)
  values = lse - _pick(x, y)
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if not (isinstance(label_smoothing, float) and label_smoothing == 0.0):
    finite, count = inputs.finite_classes(x)
    # -log p_k = lse - x_k summed over the finite classes (class-weighted).
    nll_k = jnp.where(finite, lse[..., None] - jnp.where(finite, x, 0.0), 0.0)
    if cw is None:
      smooth = jnp.sum(nll_k, axis=-1) / count
    else:
      # The row's w_y joins the weights (the mean's denominator), so the
      # smoothing term, weighted per class inside the sum, is divided by it.
      w_y = jnp.take(cw, jnp.clip(y, 0, cw.shape[0] - 1))  # bad labels: NaN above
      nonzero = w_y != 0
      smooth = jnp.where(
        nonzero, jnp.sum(cw * nll_k, axis=-1) / (count * jnp.where(nonzero, w_y, 1.0)), 0.0
      )
    values = values * (1.0 - label_smoothing) + smooth * label_smoothing
  if cw is not None:
    weights = _with_class_weights(weights, cw, y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.PROBABILITY_LABELS, axis_tuples=True)
def softmax_focal_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  gamma: float | ArrayLike = 2.0,
  class_weights: ArrayLike | None = None,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass focal loss on softmax logits against probability labels.

  .. math:: \ell(x, y) = -\sum_k w_k\, y_k\, (1 - p_k)^\gamma \log p_k,
     \qquad p = \operatorname{softmax}(x)

  :math:`\log(1 - p_k)` is computed in log space (for the most probable class,
  as the log-sum-exp of the other logits), so confident logits give finite
  values, gradients and second derivatives. ``gamma=0`` is :func:`softmax_cross_entropy`.

  Args:
    logits: float array ``[..., K]``.
    labels: probabilities of the same shape.
    gamma: focusing exponent, non-negative (traceable).
    class_weights: optional ``[K]`` per-class weights (the multiclass
      :math:`\alpha`).
    axis: the class axis, or a tuple of class axes flattened into one (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``gamma < 0``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[3.0, 0.0]]), jnp.array([[1.0, 0.0]])
    >>> print(float(jaxobj.softmax_focal_loss(x, y)) < float(jaxobj.softmax_cross_entropy(x, y)))
    True

  References:
    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
  """
  checks.check_range("gamma", gamma, low=0.0)
  x, y, _ = inputs.softmax_inputs(logits, labels, axis, where)
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if cw is not None:
    y = y * cw
  log_p = jax.nn.log_softmax(x, axis=-1)
  modulator = _pow_from_log(_log1m_softmax(x, log_p), gamma)
  values = -jnp.sum(y * modulator * inputs.safe_logp(y, log_p), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.INTEGER_LABELS, axis_tuples=True)
def softmax_focal_loss_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  gamma: float | ArrayLike = 2.0,
  class_weights: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass focal loss on softmax logits against integer labels.

  .. math:: \ell(x, y) = -w_y\,(1 - p_y)^\gamma \log p_y

  Masking, ``ignore_index``, class weights (a weighted mean) and out-of-range
  labels behave as in :func:`softmax_cross_entropy_with_integer_labels`.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    gamma: focusing exponent, non-negative (traceable).
    class_weights: optional ``[K]`` per-class weights.
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis, or a tuple of class axes flattened into one (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``gamma < 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[3.0, 0.0], [0.0, 3.0]])
    >>> print(round(float(jaxobj.softmax_focal_loss_with_integer_labels(
    ...     x, jnp.array([0, 0]), gamma=0.0)), 4))
    1.5486

  References:
    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
  """
  checks.check_range("gamma", gamma, low=0.0)
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  # Both logs from logits shifted by the row maximum (x_y - lse would round
  # at the scale of the logits).
  log_p = inputs.take(jax.nn.log_softmax(x, axis=-1), y)
  label = jax.nn.one_hot(y, x.shape[-1], dtype=bool)  # all False out of range
  values = -_pow_from_log(_log_mass_outside(x, label), gamma) * log_p
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if cw is not None:
    weights = _with_class_weights(weights, cw, y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.PROBABILITY_LABELS, axis_tuples=True)
def poly_loss_cross_entropy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: float | ArrayLike = 2.0,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Poly-1 loss: cross-entropy plus a linear term in the target probability.

  .. math:: \ell(x, y) = -\sum_k y_k \log p_k + \epsilon \sum_k y_k\,(1 - p_k)

  The first term of the Taylor expansion of cross-entropy in :math:`1 - p_t`,
  re-weighted by :math:`\epsilon` (:math:`\epsilon = -1` cancels it). For
  labels that sum to 1 the linear term is :math:`\epsilon(1 - p_t)`; the
  per-class form (as in optax) also keeps labels that do not sum to 1 linear.

  Args:
    logits: float array ``[..., K]``.
    labels: probabilities of the same shape.
    epsilon: coefficient of the linear term (traceable; may be negative).
    axis: the class axis, or a tuple of class axes flattened into one (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])
    >>> print(round(float(jaxobj.poly_loss_cross_entropy(x, y, epsilon=2.0)), 4))
    1.6931

  References:
    Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022.
  """
  x, y, _ = inputs.softmax_inputs(logits, labels, axis, where)
  log_p = jax.nn.log_softmax(x, axis=-1)
  ce = -jnp.sum(y * inputs.safe_logp(y, log_p), axis=-1)
  linear = jnp.sum(y * -jnp.expm1(log_p), axis=-1)  # sum_k y_k (1 - p_k)
  return reduce_loss(ce + epsilon * linear, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.INTEGER_LABELS, axis_tuples=True)
def poly_loss_cross_entropy_with_integer_labels(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  epsilon: float | ArrayLike = 2.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Poly-1 loss against integer labels.

  .. math:: \ell(x, y) = -\log p_y + \epsilon\,(1 - p_y)

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    epsilon: coefficient of the linear term (traceable).
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis, or a tuple of class axes flattened into one in the
      order given, a label being a flat index into them (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.poly_loss_cross_entropy_with_integer_labels(
    ...     jnp.array([[0.0, 0.0]]), jnp.array([0]), epsilon=2.0)), 4))
    1.6931

  References:
    Leng et al., "PolyLoss", ICLR 2022.
  """
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  log_p = inputs.take(x, y) - jax.nn.logsumexp(x, axis=-1)
  values = -log_p + epsilon * (1.0 - jnp.exp(log_p))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "classification",
  inputs=examples.INTEGER_LABELS,
  axis_tuples=True,
  zero_hessian=_HINGE + " and at ties of the runner-up class",
)
def multiclass_hinge_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  ignore_index: int | ArrayLike | None = -100,
  axis: int | tuple[int, ...] = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass (Crammer–Singer) hinge loss against integer labels.

  .. math:: \ell(s, y) = \max\big(0,\ m + \max_{k \ne y} s_k - s_y\big)

  optax's ``multiclass_hinge_loss`` (``margin=1``). Not
  ``torch.nn.functional.multi_margin_loss``, which is the Weston–Watkins form
  :math:`\frac1K\sum_{k \ne y} \max(0, m - s_y + s_k)`: a sum over every
  violating class rather than the worst one.

  Args:
    scores: float array ``[..., K]``; ``-inf`` rules a class out.
    labels: integer array ``scores.shape`` without the class axis.
    margin: :math:`m`, non-negative (traceable).
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis, or a tuple of class axes flattened into one in the
      order given, a label being a flat index into them (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``margin < 0``.
    TypeError: integer ``scores`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s = jnp.array([[3.0, 2.5, 0.0], [0.0, 1.0, 0.0]])
    >>> print(jaxobj.multiclass_hinge_loss(s, jnp.array([0, 0]), reduction="none"))
    [0.5 2. ]

  References:
    Crammer and Singer, "On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines", JMLR 2001.
  """
  checks.check_range("margin", margin, low=0.0)
  s, y, where = inputs.integer_inputs(
    scores, labels, axis, where, ignore_index, names=("scores", "labels")
  )
  is_label = jnp.arange(s.shape[-1]) == y[..., None]
  runner_up = jnp.max(jnp.where(is_label, -jnp.inf, s), axis=-1)
  values = jnp.maximum(margin + runner_up - _pick(s, y, is_label), 0.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Keras's and PyTorch's margin losses and the NLL of log-probabilities.


@register("classification", inputs=parity_examples.ONE_HOT, zero_hessian=_HINGE)
def categorical_hinge(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Keras's categorical hinge: one-hot targets, the label's score against the best other one.

  .. math::
     \ell(s, y) = \max\Big(0,\ m + \max_k\, (1 - y_k)\, s_k - \sum_k y_k s_k\Big)

  Keras's ``categorical_hinge`` (``margin=1``), with its convention kept
  exactly: the label's own slot enters the max as :math:`(1 - 1)\,s_y = 0`, so
  for one-hot targets the "best other score" is :math:`\max(0, \max_{k \ne y}
  s_k)`. When every wrong class scores below 0 the loss is
  :math:`\max(0, m - s_y)`, not the Crammer–Singer
  :func:`multiclass_hinge_loss` (which compares with the runner-up however
  low it is, and takes integer labels).

  Args:
    scores: float array ``[..., K]``.
    labels: one-hot (or probability) targets of the same shape.
    margin: :math:`m`, non-negative (traceable).
    axis: the class axis (static).
    where: mask over the rows, shape ``scores.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`); the
      mean is over the unmasked rows.

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``margin < 0`` (when concrete).
    TypeError: integer ``scores``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s = jnp.array([[2.0, 1.5, 0.0], [-1.0, -2.0, 0.5]])
    >>> y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> print(jaxobj.categorical_hinge(s, y, reduction="none"))
    [0.5 0.5]

  References:
    Crammer and Singer, "On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines", JMLR 2001; Keras, ``keras.losses.categorical_hinge``.
  """
  checks.check_range("margin", margin, low=0.0)
  s = checks.as_float(scores, "scores")
  checks.check_same_shape("scores", s, "labels", labels)
  y = checks.as_target(labels, "labels", s)
  s, y = inputs.classes_last(s, axis, "scores"), inputs.classes_last(y, axis, "labels")
  s, y = (
    masked_fill(where, s, s.shape[:-1], axis_extra=1),
    masked_fill(where, y, s.shape[:-1], axis_extra=1),
  )
  pos = jnp.sum(y * s, axis=-1)
  neg = jnp.max((1.0 - y) * s, axis=-1)
  values = jnp.maximum(margin + neg - pos, 0.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.SIGNED)
def soft_margin_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Soft-margin loss of a binary classifier with ±1 labels: the logistic loss of the margin.

  .. math:: \ell(s, y) = \log\big(1 + e^{-y s}\big) = \operatorname{softplus}(-y\,s)

  PyTorch's ``soft_margin_loss`` (the mean over every element). It is
  :func:`sigmoid_binary_cross_entropy` with the label mapped to
  :math:`(y + 1) / 2`; a label 0 is read as -1, as in :func:`hinge_loss`.

  Args:
    scores: float array of any shape.
    labels: -1 or +1 (0 is read as -1), same shape.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`);
      the mean is over the unmasked elements.

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``scores``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.soft_margin_loss(jnp.array([0.0, 3.0, -2.0]), jnp.array([1.0, 1.0, 1.0]),
    ...                               reduction="none"))
    [0.6931 0.0486 2.1269]
  """
  s, y = inputs.binary_inputs(scores, labels, where, names=("scores", "labels"))
  values = jax.nn.softplus(-_signed_labels(y) * s)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=parity_examples.MULTILABEL)
def multilabel_soft_margin_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multi-label soft-margin loss: the sigmoid cross-entropy averaged over the classes of each row.

  .. math::
     \ell(x, y) = -\frac1K \sum_k w_k \big(y_k \log\sigma(x_k)
       + (1 - y_k)\log\sigma(-x_k)\big)

  PyTorch's ``multilabel_soft_margin_loss`` (``weight`` is ``class_weights``):
  one value per row, the mean over the rows. Computed with ``softplus``, so
  logits of any size are exact.

  Args:
    logits: float array ``[..., K]``.
    labels: targets in [0, 1] (usually 0 or 1) of the same shape.
    class_weights: optional ``[K]`` per-class weights :math:`w_k` (inside the
      class mean, which still divides by :math:`K`).
    axis: the class axis (static).
    where: mask over the rows, shape ``logits.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`); the
      mean is over the unmasked rows.

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, bad ``class_weights`` shape.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 2.0]]), jnp.array([[1.0, 0.0]])
    >>> print(round(float(jaxobj.multilabel_soft_margin_loss(x, y)), 4))
    1.41
  """
  x, y, _ = inputs.softmax_inputs(logits, labels, axis, where)
  per_class = y * inputs.safe_logp(y, jax.nn.softplus(-x)) + (1.0 - y) * inputs.safe_logp(
    1.0 - y, jax.nn.softplus(x)
  )
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if cw is not None:
    per_class = per_class * cw
  values = jnp.mean(per_class, axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=parity_examples.MULTILABEL_INDICES, zero_hessian=_HINGE)
def multilabel_margin_loss(
  scores: ArrayLike,
  targets: ArrayLike,
  *,
  margin: float | ArrayLike = 1.0,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multi-label margin loss: every target class scores a margin above every other class.

  .. math::
     \ell(s, T) = \frac1K \sum_{j \in T} \sum_{i \notin T} \max(0,\ m - s_j + s_i)

  PyTorch's ``multilabel_margin_loss`` (``margin=1``), with its target format:
  ``targets`` has the shape of ``scores`` and lists the target classes
  :math:`T` first, ended by the first ``-1`` (what follows it is ignored). A
  row with no target class (a leading ``-1``) or with every class a target
  has loss 0; a class listed twice counts twice, as in torch.

  Args:
    scores: float array ``[..., K]``.
    targets: integer array of the same shape: class indices in ``[0, K)``,
      then ``-1`` padding.
    margin: :math:`m`, non-negative (traceable).
    axis: the class axis, of both arrays (static).
    where: mask over the rows, shape ``scores.shape`` without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`); the
      mean is over the unmasked rows.

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``margin < 0``, or (when concrete) a target
      before the first ``-1`` outside ``[0, K)``; under ``jax.jit`` such a row
      gives NaN.
    TypeError: integer ``scores`` or floating ``targets``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s = jnp.array([[0.1, 0.2, 0.4, 0.8]])
    >>> print(round(float(jaxobj.multilabel_margin_loss(s, jnp.array([[3, 0, -1, 1]]))), 4))
    0.85
  """
  checks.check_range("margin", margin, low=0.0)
  x = checks.as_float(scores, "scores")
  t = checks.as_labels(targets, "targets")
  checks.check_same_shape("scores", x, "targets", t)
  x, t = inputs.classes_last(x, axis, "scores"), inputs.classes_last(t, axis, "targets")
  shape = x.shape[:-1]
  mask = None if where is None else checks.as_mask(where, shape)
  k = x.shape[-1]
  listed = jnp.cumprod(t != -1, axis=-1).astype(bool)  # before the first -1
  checks.check_labels_in_vocab(
    "targets",
    jnp.where(listed, t, 0),
    None if mask is None else mask[..., None],
    k,
    "list target classes first and end them with -1 (PyTorch's format); mask rows with where=.",
  )
  x = masked_fill(mask, x, shape, axis_extra=1)
  bad = jnp.any(listed & ~inputs.in_range(t, k), axis=-1)
  # How often each class is listed (torch counts a repeated target each time).
  times = jnp.sum(listed[..., :, None] & (t[..., :, None] == jnp.arange(k)), axis=-2)
  # hinge[j, i] = max(0, m - s_j + s_i) for target j and non-target i.
  hinge = jnp.maximum(margin - x[..., :, None] + x[..., None, :], 0.0)
  pair = times[..., :, None] * (times[..., None, :] == 0)
  values = jnp.sum(pair * hinge, axis=(-2, -1)) / k
  values = jnp.where(bad, jnp.nan, values)
  return reduce_loss(values, where=mask, weights=weights, reduction=reduction)


@register(
  "classification",
  inputs=parity_examples.LOG_PROBABILITIES,
  zero_hessian="linear in the log-probabilities",
)
def nll_loss(
  log_probs: ArrayLike,
  labels: ArrayLike,
  *,
  class_weights: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Negative log-likelihood of integer labels, from log-probabilities (not logits).

  .. math::
     \ell(\log p, y) = -w_y \log p_y,
     \qquad \text{mean} = \frac{\sum_i -w_{y_i} \log p_{i, y_i}}{\sum_i w_{y_i}}

  PyTorch's ``nll_loss``: the input is already normalized (a
  ``jax.nn.log_softmax``, or any log-probabilities), and the gradient is
  :math:`-w_y` on the label's entry only; it is not renormalized. From
  logits use :func:`softmax_cross_entropy_with_integer_labels`, which is this
  loss of ``log_softmax(logits)`` with the softmax's gradient. Class weights
  give torch's weighted mean; ``ignore_index`` (default -100, torch's) and
  out-of-range labels behave as in the softmax cross-entropy.

  Args:
    log_probs: float array ``[..., K]`` of log-probabilities (``<= 0``).
    labels: integer array ``log_probs.shape`` without the class axis.
    class_weights: optional ``[K]`` per-class weights (torch's ``weight``).
    ignore_index: label value to skip (None skips none).
    axis: the class axis (static; torch's class axis is 1 for ``(N, C, d...)``
      inputs: pass ``axis=1``).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != log_probs.shape[:-1]``, bad
      ``class_weights`` shape, an unmasked label outside ``[0, K)`` (when
      concrete).
    TypeError: integer ``log_probs`` or floating ``labels``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> log_p = jax.nn.log_softmax(jnp.array([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    >>> print(round(float(jaxobj.nll_loss(log_p, jnp.array([0, -100]))), 4))
    0.4076
  """
  x, y, where = inputs.integer_inputs(
    log_probs, labels, axis, where, ignore_index, names=("log_probs", "labels")
  )
  # A NaN anywhere in a row reaches its value (the gather alone would skip it).
  values = jnp.where(jnp.any(jnp.isnan(x), axis=-1), jnp.nan, -inputs.take(x, y))
  cw = inputs.class_weights(class_weights, x.shape[-1])
  if cw is not None:
    weights = _with_class_weights(weights, cw, y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
