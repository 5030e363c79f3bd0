r"""Robust losses: Barron's general and adaptive loss and its special cases.

:func:`general_robust_loss` is Barron's :math:`\rho(x, \alpha, c)`, one
function whose shape :math:`\alpha` moves continuously through the classic
robust losses (L2, Charbonnier, Cauchy, Geman-McClure, Welsch) and whose scale
:math:`c` sets where the quadratic bowl ends. :func:`adaptive_robust_loss` is
the negative log-likelihood of the matching distribution, which, unlike
:math:`\rho` itself, can be minimized over :math:`\alpha` and :math:`c` to
learn how robust to be. Both take :math:`\alpha` and :math:`c` as ordinary
traceable arguments (scalars, or arrays broadcast to the residuals, e.g. one per
feature); :func:`robust_alpha_from_latent` and :func:`robust_scale_from_latent`
map unconstrained learnable values to them as Barron does.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import robust as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "adaptive_robust_loss",
  "general_robust_loss",
  "robust_alpha_from_latent",
  "robust_latent_from_alpha",
  "robust_latent_from_scale",
  "robust_log_partition",
  "robust_scale_from_latent",
]

# Barron's defaults for the adaptive loss: alpha is kept inside (0.001, 1.999)
# (the log-partition's slope is unbounded at 2), and a latent of 0 means
# alpha = 1 (the middle of the range) and scale = 1.
ADAPTIVE_ALPHA_RANGE = (0.001, 1.999)
ADAPTIVE_SCALE_FLOOR = 1e-5
ADAPTIVE_SCALE_INIT = 1.0

# Taylor coefficients of expm1(u)/u = sum u^k/(k+1)!, used for |u| < 1/2
# (truncation below 1e-16 there, and the derivative stays exact, where the
# direct quotient's derivative cancels).
_EXPM1_RATIO = tuple(1.0 / math.factorial(k + 1) for k in range(14))
_EXPM1_RATIO_SLOPE = tuple((k + 1) * c for k, c in enumerate(_EXPM1_RATIO[1:]))
# log1p(r)/r = sum (-r)^k/(k+1), used for 0 <= r < 0.1.
_LOG1P_RATIO = tuple((-1.0) ** k / (k + 1) for k in range(16))


def _poly(coeffs, x):
  out = jnp.full_like(x, coeffs[-1])
  for c in coeffs[-2::-1]:
    out = out * x + c
  return out


def _exp_cap(dtype):
  return math.log(float(jnp.finfo(dtype).max)) - 1.0


def _expm1_ratio(u):
  """``expm1(u) / u`` (1 at 0), with the exponent capped so it cannot overflow.

  The cap (``log(max) - 1``) is reached only on the way to ``alpha = +inf``
  with enormous residuals; below it the value is exact.
  """
  small = jnp.abs(u) < 0.5
  u_small = jnp.where(small, u, 0.0)
  u_big = jnp.where(small, 1.0, u)
  cap = _exp_cap(u.dtype)
  return jnp.where(small, _poly(_EXPM1_RATIO, u_small), jnp.expm1(jnp.minimum(u_big, cap)) / u_big)


@jax.custom_jvp
def _scaled_expm1(v, s):
  """``expm1(s v) / s`` (``v`` at ``s = 0``), as ``v * expm1_ratio(s v)``.

  Its own derivative rule: autodiff would form d/dv as
  ``E(u) + u E'(u)`` (``u = s v``), two terms of size ``1/|u|`` that cancel
  to ``exp(u)`` for ``u << 0`` (Barron's loss at alpha < 0 and large
  residuals) and would leave only absolute accuracy in the gradient.
  """
  return v * _expm1_ratio(s * v)


@_scaled_expm1.defjvp
def _scaled_expm1_jvp(primals, tangents):
  v, s = primals
  dv, ds = tangents
  u = s * v
  cap = _exp_cap(u.dtype)
  small = jnp.abs(u) < 0.5
  # d/dv = exp(u), 0 past the cap (where the value no longer depends on v).
  dvalue_dv = jnp.where(u > cap, 0.0, jnp.exp(jnp.minimum(u, cap)))
  # d/ds = v^2 E'(u): by the series for small u (where v is moderate), else as
  # (u e^u - expm1(u)) / s^2, which neither overflows (v^2) nor underflows
  # (E'(u) ~ 1/u^2) for the huge v and u of alpha << 0 at large residuals.
  v_small = jnp.where(small, v, 0.0)
  slope_small = v_small * v_small * _poly(_EXPM1_RATIO_SLOPE, jnp.where(small, u, 0.0))
  u_big = jnp.where(small, 1.0, u)
  s_big = jnp.where(small, 1.0, s)  # nonzero: |u| >= 1/2 needs s != 0
  f_big = jnp.where(
    u_big > cap,
    -jnp.expm1(cap),
    u_big * jnp.exp(jnp.minimum(u_big, cap)) - jnp.expm1(jnp.minimum(u_big, cap)),
  )
  dvalue_ds = jnp.where(small, slope_small, f_big / (s_big * s_big))
  return v * _expm1_ratio(u), dvalue_dv * dv + dvalue_ds * ds


def _log1p_ratio(r):
  """``log1p(r) / r`` for ``0 <= r <= 1`` (1 at 0)."""
  small = r < 0.1
  r_small = jnp.where(small, r, 0.0)
  r_big = jnp.where(small, 1.0, r)
  return jnp.where(small, _poly(_LOG1P_RATIO, r_small), jnp.log1p(r_big) / r_big)


def _log1p_quotient(z, b):
  """``log(1 + z/b)`` for ``z >= 0``, ``b > 0``, also where ``z/b`` overflows
  (huge residuals with alpha within float precision of 2)."""
  big = z > b
  z_big = jnp.where(big, z, b)
  z_small = jnp.where(big, 0.0, z)
  return jnp.where(big, jnp.log(z_big) - jnp.log(b) + jnp.log1p(b / z_big), jnp.log1p(z_small / b))


def _hyper(name, value, shape, dtype, where, fill=1.0):
  """A traceable shape or scale parameter: a scalar or an array that broadcasts
  to the residuals without enlarging them; masked entries are filled when it
  has the residuals' full shape, so NaN there cannot reach the gradients."""
  v = jnp.asarray(value)
  if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)):
    raise TypeError(f"{name} must be a real number or array, got dtype {v.dtype}.")
  v = v.astype(dtype)
  try:
    ok = jnp.broadcast_shapes(v.shape, shape) == shape
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(
      f"{name}.shape={v.shape} must broadcast to the residuals' shape {shape} "
      f"without enlarging it (a scalar, or e.g. one value per feature: shape "
      f"{shape[-1:]} for residuals of shape {shape})."
    )
  if where is not None:
    v = masked_fill(where, jnp.broadcast_to(v, shape), shape, fill=fill)
  return v


def _residuals(predictions, targets, alpha, scale, where):
  x = checks.as_float(predictions, "predictions")
  if targets is not None:
    checks.check_same_shape("predictions", x, "targets", targets)
    x = x - checks.as_target(targets, "targets", x)
  x = masked_fill(where, x, x.shape)
  a = _hyper("alpha", alpha, x.shape, x.dtype, where)
  c = _hyper("scale", scale, x.shape, x.dtype, where)
  return x, a, c


def _rho(x, alpha, scale):
  r"""Barron's :math:`\rho(x, \alpha, c)` elementwise, for any :math:`\alpha`.

  With :math:`b = |\alpha - 2|`, :math:`z = (x/c)^2` and
  :math:`v = \tfrac b2 \log(1 + z/b)`, two exact rearrangements of the
  definition cover every :math:`\alpha`:

  * :math:`\rho = v\,E(\tfrac{\alpha}{b} v)` with :math:`E(u) = (e^u - 1)/u`,
    no division by :math:`\alpha` (so :math:`\alpha = 0` is an ordinary point
    with its true derivative), and :math:`v` computed as
    :math:`\tfrac z2 \log(1 + r)/r` with :math:`r = z/b`, so
    :math:`\alpha \to -\infty` (:math:`b = \infty`, :math:`\alpha/b = -1`)
    gives Welsch's :math:`1 - e^{-z/2}` without a special case;
  * near :math:`\alpha = 2`, where :math:`b \to 0` makes the first form lose
    digits, :math:`\rho = \big(z + (b + z)\,\mathrm{expm1}(\tfrac{\alpha-2}{2}
    \log(1 + z/b))\big)/\alpha`, exact as :math:`b \to 0`; it is used for
    :math:`\alpha \in [2, 3)` and for :math:`\alpha \in (1, 2)` while
    :math:`b \log(1 + z/b) < 4`, where its cancellation is mild.
  """
  # |x/c| past max**0.45 (~2e17 in float32) is clipped, with the gradient
  # passed straight through, so (x/c)^2 cannot overflow.
  bound = float(np.finfo(x.dtype).max) ** 0.45
  q = x / scale
  q = jax.lax.stop_gradient(jnp.clip(q, -bound, bound)) + (q - jax.lax.stop_gradient(q))
  z = q * q
  half_z = 0.5 * z
  b = jnp.abs(alpha - 2.0)
  # Which form: a boolean, so its (possibly NaN) arithmetic carries no gradient.
  near_two = (
    jnp.isfinite(alpha)
    & (alpha > 1.0)
    & (alpha < 3.0)
    & ((alpha >= 2.0) | (b * _log1p_quotient(z, b) < 4.0))
  )

  # General form; alpha = 0 stands in where the other form is used.
  a = jnp.where(near_two, 0.0, alpha)
  finite = jnp.isfinite(a)
  a_fin = jnp.where(finite, a, 0.0)
  b_fin = jnp.abs(a_fin - 2.0)
  ratio = jnp.where(finite, a_fin / b_fin, jnp.sign(a))
  r = jnp.where(finite, z / b_fin, 0.0)
  # v = (b/2) log1p(r), as (z/2) log1p(r)/r while r < 1 (b may be huge or
  # infinite there). Not that form for large r: its reverse pass would form
  # (huge z) * (cotangent up to e^87) before the tiny d/dr of log1p(r)/r.
  below = r < 1.0
  r_below = jnp.where(below, r, 0.0)
  r_above = jnp.where(below, 1.0, r)
  v = jnp.where(
    below, jnp.where(below, half_z, 0.0) * _log1p_ratio(r_below), 0.5 * b_fin * jnp.log1p(r_above)
  )
  rho_general = _scaled_expm1(v, ratio)

  # Form near alpha = 2; alpha = 1.5 stands in elsewhere (and at exactly 2,
  # where the value is z/2 and the alpha-derivative, unbounded around 2, is 0).
  two = alpha == 2.0
  a2 = jnp.where(near_two & ~two, alpha, 1.5)
  b2 = jnp.abs(a2 - 2.0)
  rho_two = (z + (b2 + z) * jnp.expm1(0.5 * (a2 - 2.0) * _log1p_quotient(z, b2))) / a2

  rho = jnp.where(two, half_z, jnp.where(near_two, rho_two, rho_general))
  return jnp.where(scale > 0, rho, jnp.nan)


# Barron's alpha = +inf (an exponential, exp(x^2/2c^2) - 1) and alpha = -inf (Welsch /
# Leclerc, 1 - exp(-x^2/2c^2)) are limits the loss computes exactly.
@register("robust", inputs=examples.RESIDUALS, limits={"alpha": (math.inf, -math.inf)})
def general_robust_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  alpha: float | ArrayLike = 1.0,
  scale: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Barron's general robust loss, spanning L2, Charbonnier, Cauchy, Geman-McClure and Welsch.

  .. math::
     \rho(x, \alpha, c) = \frac{|\alpha - 2|}{\alpha}\left(
       \left(\frac{(x/c)^2}{|\alpha - 2|} + 1\right)^{\alpha/2} - 1\right),
     \qquad x = \hat y - y

  with its limits :math:`\rho(x, 0, c) = \log(1 + \tfrac12 (x/c)^2)`,
  :math:`\rho(x, 2, c) = \tfrac12 (x/c)^2`,
  :math:`\rho(x, -\infty, c) = 1 - e^{-(x/c)^2/2}` and
  :math:`\rho(x, +\infty, c) = e^{(x/c)^2/2} - 1`. Special cases:
  :math:`\alpha = 2` is L2, :math:`1` Charbonnier / pseudo-Huber
  (:math:`\sqrt{(x/c)^2 + 1} - 1`), :math:`0` Cauchy / Lorentzian,
  :math:`-2` Geman-McClure (:math:`2 (x/c)^2 / ((x/c)^2 + 4)`),
  :math:`-\infty` Welsch / Leclerc. Smaller :math:`\alpha` discounts outliers
  more; for :math:`\alpha \le 0` the loss is bounded, and for
  :math:`\alpha < 0` it saturates at :math:`|\alpha - 2|/|\alpha|`. The
  gradient in :math:`x` is :math:`\frac{x}{c^2}\left(\frac{(x/c)^2}{|\alpha-2|}
  + 1\right)^{\alpha/2 - 1}`, at most :math:`1/c` in size for
  :math:`\alpha \le 1`.

  Numerics: the singular values of the formula are handled by exact
  rearrangements, not by clamping :math:`\alpha` away from them (see the
  module source), so values and gradients in :math:`x`, :math:`\alpha` and
  :math:`c` are accurate at and around :math:`\alpha = 0` (an ordinary point
  of :math:`\rho`, where this loss has the true :math:`\alpha`-derivative
  rather than the reference implementation's 0) and for any
  :math:`\alpha \in [-\infty, \infty]`. At :math:`\alpha = 2` the
  :math:`\alpha`-derivative of :math:`\rho` is unbounded (it grows like
  :math:`\tfrac{z}{4}\log\frac{z}{|\alpha - 2|}`, :math:`z = (x/c)^2`); at
  exactly 2 it is reported as 0, as Barron's implementation does. Minimizing
  :math:`\rho` over :math:`\alpha` drives it to :math:`-\infty`; to learn
  :math:`\alpha` use :func:`adaptive_robust_loss`.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape; when omitted, ``predictions`` are the
      residuals :math:`x`.
    alpha: shape :math:`\alpha`, any real or :math:`\pm\infty` (traceable; a
      scalar or an array broadcasting to the residuals, e.g. per feature).
    scale: scale :math:`c > 0` (traceable, broadcast like ``alpha``).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``alpha`` or ``scale`` would enlarge the
      residuals' shape, ``alpha`` is NaN or ``scale <= 0`` (when concrete).
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([0.5, 3.0, 50.0])
    >>> print(jaxobj.general_robust_loss(x, alpha=1.0, reduction="none"))
    [ 0.118   2.1623 49.01  ]
    >>> print(jaxobj.general_robust_loss(x, alpha=-2.0, reduction="none"))
    [0.1176 1.3846 1.9968]

  References:
    Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.
  """
  if checks.is_concrete(alpha) and np.isnan(np.asarray(alpha)).any():
    raise ValueError(f"alpha must be a number or +-inf, got alpha={alpha!r}.")
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  x, a, c = _residuals(predictions, targets, alpha, scale, where)
  return reduce_loss(_rho(x, a, c), where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# The log-partition function log Z(alpha) of Barron's distribution.
#
# Z(alpha) = integral of exp(-rho(x, alpha, 1)) over the real line (finite for
# alpha >= 0). It is tabulated once, in float64 NumPy, at 513 knots, and
# interpolated by a cubic Hermite spline in a coordinate u(alpha) that puts
# knots densely near alpha = 0 (where log Z is smooth but its high derivatives
# are large) and near alpha = 2 (where its slope diverges like log(2 - alpha)).
# Each knot's value and slope come from the trapezoidal rule in s = log|x| (an
# exponentially convergent rule for this integrand, with h = 1/8 on
# [-40, 42]). Against adaptive quadrature, the spline's error is below 1e-9
# in log Z over [0, 2] and below 1e-5 (relative) in its slope over
# [0, 1.999].

_LOGZ_KNOTS = 513
_LOGZ_A0, _LOGZ_KAPPA, _LOGZ_POWER = 0.05, 0.3, 6.0
_LOGZ_SPAN = _LOGZ_KAPPA * math.log1p(2.0 / _LOGZ_A0) + 1.0
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _knot_coordinate(alpha, xp):
  """u(alpha): 0 at alpha = 0, 1 at alpha = 2, increasing (alpha < 2)."""
  return (
    _LOGZ_KAPPA * xp.log1p(alpha / _LOGZ_A0) + 1.0 - ((2.0 - alpha) / 2.0) ** (1.0 / _LOGZ_POWER)
  ) / _LOGZ_SPAN


def _knot_coordinate_slope(alpha):
  return (
    _LOGZ_KAPPA / (_LOGZ_A0 + alpha)
    + ((2.0 - alpha) / 2.0) ** (1.0 / _LOGZ_POWER - 1.0) / (2.0 * _LOGZ_POWER)
  ) / _LOGZ_SPAN


def _np_expm1_ratio(u):
  """NumPy ``expm1(u)/u`` and its derivative (float64, table building only)."""
  small = np.abs(u) < 0.5
  us, ub = np.where(small, u, 0.0), np.where(small, 1.0, u)
  series = np.polynomial.polynomial.polyval(us, _EXPM1_RATIO)
  dseries = np.polynomial.polynomial.polyval(us, _EXPM1_RATIO_SLOPE)
  value = np.where(small, series, np.expm1(ub) / ub)
  slope = np.where(small, dseries, (ub * np.exp(ub) - np.expm1(ub)) / ub**2)
  return value, slope


def _np_rho_and_alpha_slope(z, alpha):
  """rho(x, alpha, 1) and d rho / d alpha for z = x^2 and 0 <= alpha < 2."""
  b = 2.0 - alpha
  log_w = np.log1p(z / b)
  v = 0.5 * b * log_w
  e, de = _np_expm1_ratio(0.5 * alpha * log_w)
  dlog_w = z / (b * (b + z))
  dv = -0.5 * log_w + 0.5 * b * dlog_w
  du = 0.5 * log_w + 0.5 * alpha * dlog_w
  return v * e, dv * e + v * de * du


@functools.cache
def _log_partition_table():
  """(values, slopes in u) of log Z at the knots, uniform in u; float64."""
  u = np.linspace(0.0, 1.0, _LOGZ_KNOTS)
  lo, hi = np.zeros_like(u), np.full_like(u, 2.0)
  for _ in range(64):  # bisection for alpha(u), to float64 resolution
    mid = 0.5 * (lo + hi)
    above = _knot_coordinate(mid, np) > u
    lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
  alpha = 0.5 * (lo + hi)[1:-1, None]
  alpha = np.concatenate([[[0.0]], alpha])
  step = 0.125
  s = np.arange(-40.0, 42.0 + step / 2, step)
  rho, drho = _np_rho_and_alpha_slope(np.exp(2.0 * s), alpha)
  w = np.exp(s - rho)
  z = 2.0 * step * w.sum(-1)
  dlog_z = -2.0 * step * (w * drho).sum(-1) / z
  values = np.append(np.log(z), _LOG_SQRT_2PI)
  slopes = np.append(dlog_z / _knot_coordinate_slope(alpha[:, 0]), 0.0)
  return values, slopes


def robust_log_partition(
  alpha: ArrayLike,
) -> jax.Array:
  r"""Log-partition function :math:`\log Z(\alpha)` of Barron's distribution.

  .. math::
     Z(\alpha) = \int_{-\infty}^{\infty} e^{-\rho(x, \alpha, 1)}\, dx,
     \qquad 0 \le \alpha \le 2

  :math:`Z(0) = \pi\sqrt2` (Cauchy), :math:`Z(1) = 2e K_1(1)`,
  :math:`Z(2) = \sqrt{2\pi}` (normal). There is no closed form in general: a
  float64 table computed once by quadrature is interpolated by a cubic Hermite
  spline, differentiable in :math:`\alpha` (error below 1e-9 in value; see
  the module source). The slope is unbounded at :math:`\alpha = 2`; at
  exactly 2 it is reported as 0.

  Args:
    alpha: array of shapes in [0, 2] (traceable); values outside give NaN.

  Returns:
    :math:`\log Z(\alpha)`, same shape, float32 (float64 for float64 input).

  Raises:
    ValueError: ``alpha`` outside [0, 2] (when concrete).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.robust_log_partition(jnp.array([0.0, 1.0, 2.0])))
    [1.4913 1.1855 0.9189]
  """
  checks.check_range("alpha", alpha, low=0.0, high=2.0)
  a = jnp.asarray(alpha)
  a = a.astype(
    checks.compute_dtype(a.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else jnp.float32
  )
  values, slopes = (jnp.asarray(t, a.dtype) for t in _log_partition_table())
  inside = (a >= 0.0) & (a < 2.0)
  a_in = jnp.where(inside, a, 1.0)
  u = jnp.where(inside, _knot_coordinate(a_in, jnp), 1.0)
  n = _LOGZ_KNOTS - 1
  pos = u * n
  i = jnp.clip(jnp.floor(pos), 0, n - 1).astype(jnp.int32)
  t = pos - i
  h = 1.0 / n
  t2, t3 = t * t, t * t * t
  value = (
    (2 * t3 - 3 * t2 + 1) * values[i]
    + (t3 - 2 * t2 + t) * h * slopes[i]
    + (3 * t2 - 2 * t3) * values[i + 1]
    + (t3 - t2) * h * slopes[i + 1]
  )
  return jnp.where(inside | (a == 2.0), value, jnp.nan)


@register("robust", inputs=examples.RESIDUALS)
def adaptive_robust_loss(
  predictions: ArrayLike,
  targets: ArrayLike | None = None,
  *,
  alpha: float | ArrayLike = 1.0,
  scale: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Barron's adaptive robust loss: his distribution's NLL, learnable in shape and scale.

  .. math::
     -\log p(x \mid \alpha, c) = \rho(x, \alpha, c) + \log c + \log Z(\alpha),
     \qquad x = \hat y - y

  with :math:`\rho` as in :func:`general_robust_loss` and :math:`\log Z`
  from :func:`robust_log_partition`. Unlike :math:`\rho`, this is a proper
  objective for :math:`\alpha` and :math:`c`: the normalizer penalizes
  heavy tails and large scales, so minimizing it over them fits the residual
  distribution (Cauchy at :math:`\alpha = 0`, normal at :math:`\alpha = 2`).
  Values can be negative.

  ``alpha`` and ``scale`` are the constrained values. To learn them, hold
  unconstrained latents as objective parameters and pass
  ``alpha=robust_alpha_from_latent(a)`` (a sigmoid into
  :data:`ADAPTIVE_ALPHA_RANGE`, Barron's (0.001, 1.999)) and
  ``scale=robust_scale_from_latent(s)`` (a softplus above
  :data:`ADAPTIVE_SCALE_FLOOR`); latents of 0 give Barron's initial
  :math:`\alpha = 1`, :math:`c = 1`. Per-feature shapes and scales are arrays
  of the feature shape.

  Args:
    predictions: float array of any shape.
    targets: array of the same shape; when omitted, ``predictions`` are the
      residuals.
    alpha: shape in [0, 2] (traceable; scalar or broadcasting to the
      residuals); outside it the loss is NaN. The gradient in ``alpha`` is
      unbounded at 2 (0 at exactly 2), hence the default range.
    scale: :math:`c > 0` (traceable, broadcast like ``alpha``).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ, ``alpha`` outside [0, 2] or ``scale <= 0``
      (when concrete).
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([0.0, 1.0, 10.0])
    >>> print(jaxobj.adaptive_robust_loss(x, alpha=2.0, reduction="none"))  # normal NLL
    [ 0.9189  1.4189 50.9189]
    >>> print(jaxobj.adaptive_robust_loss(x, alpha=0.0, reduction="none"))  # Cauchy NLL
    [1.4913 1.8968 5.4231]

  References:
    Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.
  """
  checks.check_range("alpha", alpha, low=0.0, high=2.0)
  checks.check_range("scale", scale, low=0.0, low_inclusive=False)
  x, a, c = _residuals(predictions, targets, alpha, scale, where)
  values = _rho(x, a, c) + jnp.log(c) + robust_log_partition(a)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Unconstrained parametrizations of alpha and scale, for learning them.


def _check_interval(low_name, low, high_name, high):
  if not low < high:
    raise ValueError(
      f"{low_name} must be < {high_name}, got {low_name}={low!r} and {high_name}={high!r}."
    )


def robust_alpha_from_latent(
  latent: ArrayLike,
  *,
  low: float = ADAPTIVE_ALPHA_RANGE[0],
  high: float = ADAPTIVE_ALPHA_RANGE[1],
) -> jax.Array:
  r"""Maps an unconstrained latent to a shape :math:`\alpha \in (\text{low}, \text{high})`.

  .. math:: \alpha = \text{low} + (\text{high} - \text{low})\,\sigma(\text{latent})

  A latent of 0 gives the middle of the range (Barron's initial value).

  Args:
    latent: float array (the learnable value).
    low, high: the open range, ``low < high`` (static floats).

  Returns:
    :math:`\alpha`, same shape.

  Example:
    >>> import jaxobj
    >>> print(jaxobj.robust_alpha_from_latent(0.0))
    1.0
  """
  _check_interval("low", low, "high", high)
  return low + (high - low) * jax.nn.sigmoid(checks.as_float(latent, "latent"))


def robust_latent_from_alpha(
  alpha: ArrayLike,
  *,
  low: float = ADAPTIVE_ALPHA_RANGE[0],
  high: float = ADAPTIVE_ALPHA_RANGE[1],
) -> jax.Array:
  r"""The latent that :func:`robust_alpha_from_latent` maps to ``alpha`` (its inverse).

  .. math:: \text{latent} = \operatorname{logit}\frac{\alpha - \text{low}}{\text{high} - \text{low}}

  Use it to initialize a latent at a chosen :math:`\alpha` inside the range.

  Example:
    >>> import jaxobj
    >>> print(round(float(jaxobj.robust_latent_from_alpha(1.5)), 4))
    1.0999
  """
  _check_interval("low", low, "high", high)
  p = (checks.as_float(alpha, "alpha") - low) / (high - low)
  return jnp.log(p) - jnp.log1p(-p)


_SOFTPLUS_OF_ONE_INVERSE = math.log(math.e - 1.0)  # softplus(this) == 1


def robust_scale_from_latent(
  latent: ArrayLike,
  *,
  floor: float = ADAPTIVE_SCALE_FLOOR,
  init: float = ADAPTIVE_SCALE_INIT,
) -> jax.Array:
  r"""Maps an unconstrained latent to a scale :math:`c > \text{floor}`.

  .. math::
     c = \text{floor} + (\text{init} - \text{floor})\,
         \operatorname{softplus}(\text{latent} + \log(e - 1))

  A latent of 0 gives ``init``; the floor keeps the adaptive loss from
  collapsing onto a point mass (the NLL is unbounded below as :math:`c \to 0`).

  Args:
    latent: float array (the learnable value).
    floor: the positive lower bound (static float).
    init: the scale a latent of 0 gives, ``init > floor`` (static float).

  Returns:
    :math:`c`, same shape.

  Example:
    >>> import jaxobj
    >>> print(jaxobj.robust_scale_from_latent(0.0))
    1.0
  """
  _check_interval("floor", floor, "init", init)
  checks.check_range("floor", floor, low=0.0, low_inclusive=False)
  latent = checks.as_float(latent, "latent")
  return floor + (init - floor) * jax.nn.softplus(latent + _SOFTPLUS_OF_ONE_INVERSE)


def robust_latent_from_scale(
  scale: ArrayLike,
  *,
  floor: float = ADAPTIVE_SCALE_FLOOR,
  init: float = ADAPTIVE_SCALE_INIT,
) -> jax.Array:
  r"""The latent that :func:`robust_scale_from_latent` maps to ``scale`` (its inverse).

  .. math:: \text{latent} = \operatorname{softplus}^{-1}\frac{c - \text{floor}}
            {\text{init} - \text{floor}} - \log(e - 1)

  Example:
    >>> import jaxobj
    >>> print(round(float(jaxobj.robust_latent_from_scale(2.0)), 4))
    1.3133
  """
  _check_interval("floor", floor, "init", init)
  y = (checks.as_float(scale, "scale") - floor) / (init - floor)
  # softplus^{-1}(y) = y + log(-expm1(-y)), exact for small and large y.
  return y + jnp.log(-jnp.expm1(-y)) - _SOFTPLUS_OF_ONE_INVERSE
