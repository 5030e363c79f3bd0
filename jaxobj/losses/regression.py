r"""Regression losses: pointwise penalties on the residual :math:`r = \hat y - y`.

Each loss matches a noise model: squared error is the Gaussian negative
log-likelihood, absolute error the Laplace one, Huber and log-cosh trade
between them, the quantile loss targets a conditional quantile, and the
Gaussian and Poisson NLLs take a predicted variance or rate.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples
from jaxobj._src.numerics import abs_with_sign_grad
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "absolute_error",
  "absolute_percentage_error",
  "epsilon_insensitive_loss",
  "gaussian_nll_loss",
  "huber_loss",
  "l2_loss",
  "log_cosh",
  "poisson_nll_loss",
  "pseudo_huber_loss",
  "quantile_loss",
  "smooth_l1_loss",
  "squared_error",
  "squared_log_error",
]


def _pair(predictions, targets, where, names=("predictions", "targets")):
  """Checked, f32 predictions and targets (zeros when ``targets`` is None),
  with masked entries replaced so they cannot poison gradients."""
  p = checks.as_float(predictions, names[0])
  if targets is None:
    t = jnp.zeros_like(p)
  else:
    checks.check_same_shape(names[0], p, names[1], targets)
    t = checks.as_target(targets, names[1], p)
  return masked_fill(where, p, p.shape), masked_fill(where, t, p.shape)


@register("regression", inputs=examples.POINTWISE)
def squared_error(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Squared error, the Gaussian negative log-likelihood up to constants.

  .. math:: \ell(\hat y, y) = (\hat y - y)^2

  The mean is the MSE; its minimizer is the conditional mean. Sensitive to
  outliers: one residual of 10 weighs as much as a hundred residuals of 1.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted, as in optax).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-element losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, or an unknown ``reduction``.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
    2.5
  """
  p, t = _pair(predictions, targets, where)
  return reduce_loss(jnp.square(p - t), where=where, weights=weights, reduction=reduction)


@register("regression", inputs=examples.POINTWISE)
def l2_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Half the squared error, whose gradient is the residual itself.

  .. math:: \ell(\hat y, y) = \tfrac12 (\hat y - y)^2

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
    1.25
  """
  p, t = _pair(predictions, targets, where)
  return reduce_loss(0.5 * jnp.square(p - t), where=where, weights=weights, reduction=reduction)


@register(
  "regression", inputs=examples.POINTWISE, zero_hessian="piecewise linear: |r|, kinked at r = 0"
)
def absolute_error(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Absolute error, the Laplace negative log-likelihood up to constants.

  .. math:: \ell(\hat y, y) = |\hat y - y|

  The mean is the MAE; its minimizer is the conditional median, so it is
  robust to outliers. The gradient is :math:`\operatorname{sign}(r)` (0 at 0).

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.absolute_error(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0])))
    2.0
  """
  p, t = _pair(predictions, targets, where)
  return reduce_loss(abs_with_sign_grad(p - t), where=where, weights=weights, reduction=reduction)


def _huber(r, delta):
  a = jnp.abs(r)
  if type(delta) in (int, float) and math.isfinite(delta):
    # A finite Python delta (the common case): the shortest form, which
    # compiles fastest. Its gradient is right at a tie too: minimum's halved
    # derivative there cancels between the two terms (q q' + delta (1 - q') = delta).
    quadratic = jnp.minimum(a, delta)
    return 0.5 * quadratic**2 + delta * (a - quadratic)
  # Branch-free form: finite value and gradient for any finite residual. The
  # linear part's factor is 0 where |r| <= delta, so delta = inf (never
  # linear) gives exactly r^2 / 2, not inf * 0.
  quadratic = jnp.where(a <= delta, a, delta)  # not minimum: its gradient halves at a tie
  return 0.5 * quadratic**2 + jnp.where(a > delta, delta, 0.0) * (a - quadratic)


# delta = inf is a limit Huber defines: never linear, exactly half the squared error.
@register("regression", inputs=examples.POINTWISE, limits={"delta": (math.inf,)})
def huber_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  delta: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Huber loss: quadratic for small residuals, linear beyond ``delta``.

  .. math::
     \ell_\delta(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
                      \delta\,(|r| - \tfrac12\delta) & |r| > \delta \end{cases}

  Smooth near the minimum like squared error, robust to outliers like absolute
  error; ``delta`` sets the residual scale where one turns into the other.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    delta: positive threshold (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``delta <= 0`` (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.huber_loss(jnp.array([0.5, 3.0]), delta=1.0, reduction="sum"))
    2.625

  References:
    Huber, "Robust Estimation of a Location Parameter", 1964.
  """
  checks.check_range("delta", delta, low=0.0, low_inclusive=False)
  p, t = _pair(predictions, targets, where)
  return reduce_loss(_huber(p - t, delta), where=where, weights=weights, reduction=reduction)


@register("regression", inputs=examples.POINTWISE)
def smooth_l1_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  beta: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Smooth L1 loss: Huber loss divided by its threshold, tending to L1.

  .. math::
     \ell_\beta(r) = \begin{cases} \tfrac12 r^2/\beta & |r| < \beta \\
                     |r| - \tfrac12\beta & |r| \ge \beta \end{cases}

  Unlike Huber, the linear part has slope 1 whatever ``beta``; ``beta = 0``
  is exactly the absolute error.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    beta: non-negative threshold (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``beta < 0`` (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.smooth_l1_loss(jnp.array([0.5, 3.0]), beta=1.0, reduction="sum"))
    2.625

  References:
    Girshick, "Fast R-CNN", ICCV 2015.
  """
  checks.check_range("beta", beta, low=0.0)
  p, t = _pair(predictions, targets, where)
  r = abs_with_sign_grad(p - t)
  beta = jnp.asarray(beta)
  quadratic = r < beta
  # Double where: no 0/0 (beta = 0) and no overflowing r**2 (huge residuals) in
  # the unused branch, either of which turns its zero cotangent into NaN.
  safe_beta = jnp.where(beta > 0, beta, 1.0)
  r_small = jnp.where(quadratic, r, 0.0)
  values = jnp.where(quadratic, 0.5 * r_small**2 / safe_beta, r - 0.5 * beta)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("regression", inputs=examples.POINTWISE)
def pseudo_huber_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  delta: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Pseudo-Huber (Charbonnier) loss: a smooth Huber with every derivative.

  .. math:: \ell_\delta(r) = \delta^2\left(\sqrt{1 + (r/\delta)^2} - 1\right)

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    delta: positive scale (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``delta <= 0`` (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.pseudo_huber_loss(jnp.array([0.0, 3.0]), reduction="sum")), 4))
    2.1623

  References:
    Charbonnier et al., "Two deterministic half-quadratic regularization
    algorithms for computed imaging", ICIP 1994.
  """
  checks.check_range("delta", delta, low=0.0, low_inclusive=False)
  p, t = _pair(predictions, targets, where)
  r = p - t
  # delta * (hypot(delta, r) - delta) never overflows but cancels for
  # |r| << delta (it rounds to 0 below |r| ~ 3e-4 delta in float32); the equal
  # delta * r**2 / (hypot(delta, r) + delta) is exact there, and the double
  # where keeps its r**2 from overflowing for huge residuals.
  near = jnp.abs(r) < delta
  r_near = jnp.where(near, r, 0.0)
  values = jnp.where(
    near,
    delta * jnp.square(r_near) / (jnp.hypot(delta, r_near) + delta),
    delta * (jnp.hypot(delta, r) - delta),
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# Taylor coefficients of log cosh r in powers of r^2, from r^2 / 2 (the integral
# of tanh's series, 2^2n (2^2n - 1) B_2n / (2n (2n)!)); seven terms reach float32
# precision for |r| <= 1/2.
_LOG_COSH_SERIES = (
  1 / 2,
  -1 / 12,
  1 / 45,
  -17 / 2520,
  31 / 14175,
  -691 / 935550,
  10922 / 42567525,
)


@register("regression", inputs=examples.POINTWISE)
def log_cosh(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Log-cosh loss: about :math:`r^2/2` for small residuals, :math:`|r| - \log 2` for large.

  .. math:: \ell(r) = \log\cosh r = |r| + \operatorname{softplus}(-2|r|) - \log 2

  The right-hand form never overflows (``cosh`` does past :math:`|r| \approx 89`
  in float32) but cancels for small :math:`|r|`, where the Taylor series
  :math:`r^2/2 - r^4/12 + r^6/45 - \dots` is used instead (below
  :math:`|r| = 1/2`); the gradient is :math:`\tanh r`.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape (zeros when omitted).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.log_cosh(jnp.array([1e4]), jnp.array([0.0])))
    9999.307
  """
  p, t = _pair(predictions, targets, where)
  r = p - t
  # logaddexp(r, -r) - log 2 never overflows but cancels for small |r| (it
  # rounds to 0, or even below 0, for |r| < ~1e-3 in float32); below |r| = 1/2
  # the Taylor series in r^2 is exact instead (relative error < 2e-8). Double
  # where: r^2 overflows in the unused branch for huge |r|. (The series costs
  # a compile far less than sinh or expm1 would.)
  near = jnp.abs(r) < 0.5
  s = jnp.square(jnp.where(near, r, 0.0))
  series: jax.Array | float = _LOG_COSH_SERIES[-1]
  for c in _LOG_COSH_SERIES[-2::-1]:
    series = series * s + c
  values = jnp.where(near, series * s, jnp.logaddexp(r, -r) - math.log(2.0))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "regression",
  inputs=examples.POINTWISE,
  zero_hessian="piecewise linear: the pinball loss, kinked at r = 0",
)
def quantile_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  quantile: float | ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Quantile (pinball) loss, minimized by the conditional ``quantile`` of the target.

  .. math::
     \ell_q(\hat y, y) = \max\big(q\,(y - \hat y),\ (q - 1)\,(y - \hat y)\big)

  Under-prediction costs ``q`` per unit, over-prediction ``1 - q``;
  ``quantile=0.5`` is half the absolute error.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape.
    quantile: level in [0, 1] (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``quantile`` outside [0, 1] (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> y = jnp.array([1.0, 1.0])
    >>> print(jaxobj.quantile_loss(jnp.array([0.0, 2.0]), y, quantile=0.9, reduction="none"))
    [0.9 0.1]

  References:
    Koenker and Bassett, "Regression Quantiles", Econometrica 1978.
  """
  checks.check_range("quantile", quantile, low=0.0, high=1.0)
  p, t = _pair(predictions, targets, where)
  r = t - p
  values = jnp.maximum(quantile * r, (quantile - 1.0) * r)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "regression", inputs=examples.POINTWISE, zero_hessian="piecewise linear: max(0, |r| - epsilon)"
)
def epsilon_insensitive_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  epsilon: float | ArrayLike = 0.1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Epsilon-insensitive loss of support vector regression: no cost inside a tube.

  .. math:: \ell_\epsilon(r) = \max(0, |r| - \epsilon)

  Args:
    predictions: float array of any shape.
    targets: array of the same shape.
    epsilon: non-negative half-width of the tube (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``epsilon < 0`` (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.epsilon_insensitive_loss(jnp.array([0.05, 1.0]), jnp.zeros(2),
    ...                                       epsilon=0.1, reduction="sum"))
    0.9

  References:
    Vapnik, "The Nature of Statistical Learning Theory", 1995.
  """
  checks.check_range("epsilon", epsilon, low=0.0)
  p, t = _pair(predictions, targets, where)
  values = jnp.maximum(abs_with_sign_grad(p - t) - epsilon, 0.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "regression",
  inputs=examples.POSITIVE,
  zero_hessian="piecewise linear in the predictions: |r| / |y|",
)
def absolute_percentage_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  eps: float | ArrayLike = 1.17e-6,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Absolute percentage error as a fraction; its mean is the MAPE.

  .. math:: \ell(\hat y, y) = \frac{|\hat y - y|}{\max(|y|, \epsilon)}

  A fraction (0.1 is 10%), not a percentage. Targets near zero make it explode;
  ``eps`` only keeps it finite, so mask such targets with ``where``.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape.
    eps: positive floor on :math:`|y|` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: ``eps <= 0`` (when concrete), shapes differ.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.absolute_percentage_error(jnp.array([110.0, 45.0]),
    ...                                        jnp.array([100.0, 50.0])))
    0.1
  """
  checks.check_range("eps", eps, low=0.0, low_inclusive=False)
  p, t = _pair(predictions, targets, where)
  values = abs_with_sign_grad(p - t) / jnp.maximum(jnp.abs(t), eps)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("regression", inputs=examples.POSITIVE)
def squared_log_error(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Squared logarithmic error: squared error of :math:`\log(1 + \cdot)`, for positive targets.

  .. math:: \ell(\hat y, y) = \big(\log(1 + \max(\hat y, 0)) - \log(1 + \max(y, 0))\big)^2

  Penalizes ratios rather than differences, and under-prediction more than
  over-prediction. Negative values are clamped to 0 (their gradient is 0) so
  the logarithm stays defined.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; its mean is the MSLE.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.squared_log_error(jnp.array([3.0]), jnp.array([1.0]))), 4))
    0.4805
  """
  p, t = _pair(predictions, targets, where)
  values = jnp.square(jnp.log1p(jnp.maximum(p, 0.0)) - jnp.log1p(jnp.maximum(t, 0.0)))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@jax.custom_jvp
def _floor_straight_through(v, eps):
  """``max(v, eps)`` whose derivative w.r.t. ``v`` is 1 everywhere (the floor
  is invisible to autodiff, as in ``torch.nn.functional.gaussian_nll_loss``);
  the derivative w.r.t. ``eps`` is the exact one, 1 where the floor is active."""
  return jnp.maximum(v, eps)


@_floor_straight_through.defjvp
def _floor_straight_through_jvp(primals, tangents):
  v, eps = primals
  dv, deps = tangents
  out = jnp.maximum(v, eps)
  return out, (dv + jnp.where(v < eps, deps, 0.0)).astype(out.dtype)


@register("regression", inputs=examples.GAUSSIAN)
def gaussian_nll_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  variance: ArrayLike,
  *,
  eps: float | ArrayLike = 1e-6,
  log_variance: bool = False,
  full: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Gaussian negative log-likelihood with a predicted (heteroscedastic) variance.

  .. math::
     \ell(\mu, y, \sigma^2) = \tfrac12\left(\log \max(\sigma^2, \epsilon)
       + \frac{(y - \mu)^2}{\max(\sigma^2, \epsilon)}\right)
       \;[+\ \tfrac12 \log 2\pi \text{ if full}]

  With ``log_variance=True`` the third input is :math:`s = \log \sigma^2`
  (unconstrained, the stable choice for a network output) and the loss is
  :math:`\tfrac12 (s + (y-\mu)^2 e^{-s})`; ``eps`` is then unused.

  As in ``torch.nn.functional.gaussian_nll_loss``, the floor at ``eps``
  changes the value but not the gradient w.r.t. ``variance``: a variance
  below ``eps`` gets the gradient the loss has at ``eps`` (not 0), so a
  network output stuck under the floor is still pushed back up. Pass
  ``jnp.maximum(variance, eps)`` yourself for the zero-gradient clamp.

  Args:
    predictions: predicted means, float array of any shape.
    targets: array of the same shape.
    variance: predicted variances (or log-variances), same shape. Broadcast a
      shared variance explicitly with ``jnp.broadcast_to``.
    eps: positive floor on the variance (traceable).
    log_variance: whether ``variance`` holds log-variances (static).
    full: add the constant :math:`\tfrac12\log 2\pi` (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``eps <= 0`` (when concrete).
    TypeError: integer ``predictions`` or ``variance``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.gaussian_nll_loss(jnp.array([0.0]), jnp.array([2.0]), jnp.array([1.0])))
    2.0

  References:
    Nix and Weigend, "Estimating the mean and variance of the target
    probability distribution", ICNN 1994.
  """
  checks.check_range("eps", eps, low=0.0, low_inclusive=False)
  p, t = _pair(predictions, targets, where)
  v = checks.as_float(variance, "variance")
  checks.check_same_shape("predictions", p, "variance", v)
  v = masked_fill(where, v, p.shape, fill=0.0 if log_variance else 1.0)
  if log_variance:
    # (r e^{-s/2})^2, not r^2 e^{-s}: e^{-s} overflows already at s < -88 in
    # float32, and 0 * inf would make an exact prediction's loss NaN.
    values = 0.5 * (v + jnp.square((t - p) * jnp.exp(-0.5 * v)))
  else:
    v = _floor_straight_through(v, jnp.asarray(eps, v.dtype))
    values = 0.5 * (jnp.log(v) + jnp.square(t - p) / v)
  if full:
    values = values + 0.5 * math.log(2 * math.pi)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("regression", inputs=examples.LOG_RATE_COUNTS, extreme=50.0)
def poisson_nll_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  log_input: bool = True,
  full: bool = False,
  eps: float | ArrayLike = 1e-8,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Poisson negative log-likelihood of counts given a predicted rate.

  .. math::
     \ell(\lambda, y) = \lambda - y \log \lambda
     \;[+\ y\log y - y + \tfrac12\log(2\pi y) \text{ for } y > 1 \text{ if full}]

  With ``log_input=True`` (default) ``predictions`` is :math:`\log\lambda` and
  the loss is :math:`e^{x} - y x`, exact for any log-rate. With
  ``log_input=False`` it is the rate itself, which must be non-negative, and
  :math:`\log(\lambda + \epsilon)` is used. ``full`` adds the Stirling
  approximation of :math:`\log y!`.

  Args:
    predictions: log-rates (or rates), float array of any shape.
    targets: non-negative counts, same shape (integers are accepted).
    log_input: whether ``predictions`` holds log-rates (static).
    full: add the Stirling term (static).
    eps: positive offset inside the log for rate inputs (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``eps <= 0`` (when concrete).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.poisson_nll_loss(jnp.array([0.0]), jnp.array([3.0])))
    1.0
  """
  checks.check_range("eps", eps, low=0.0, low_inclusive=False)
  x, y = _pair(predictions, targets, where)
  if log_input:
    values = jnp.exp(x) - y * x
  else:
    values = x - y * jnp.log(x + eps)
  if full:
    safe_y = jnp.where(y > 1, y, 2.0)
    stirling = safe_y * jnp.log(safe_y) - safe_y + 0.5 * jnp.log(2 * math.pi * safe_y)
    values = values + jnp.where(y > 1, stirling, 0.0)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
