"""Values and gradients of jaxobj.losses.robust (Barron's general and adaptive loss).

References are written from the paper's formulas, not from the jaxobj code:
rho in extended precision (``np.longdouble``) with ``expm1``/``log1p``, the
closed forms of the special cases, the closed-form derivatives in x, c and
alpha, and the partition function by ``scipy.integrate.quad``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
from jax.test_util import check_grads
from references import ref_reduce

import jaxobj

LD = np.longdouble


# --------------------------------------------------------------------------
# References.


@np.errstate(over="ignore")
def ref_rho(x, alpha, c=1.0):
  """rho(x, alpha, c) from the definition, in extended precision (inf past its range)."""
  z = (np.asarray(x, LD) / LD(c)) ** 2
  a = LD(alpha)
  if a == 0:
    return np.log1p(z / 2)
  if a == 2:
    return z / 2
  if np.isinf(a):
    return -np.expm1(-z / 2) if a < 0 else np.expm1(z / 2)
  b = abs(a - 2)
  # (b/a) ((z/b + 1)^(a/2) - 1), with the power as exp of a log1p.
  return b / a * np.expm1(a / 2 * np.log1p(z / b))


@np.errstate(over="ignore", invalid="ignore")
def ref_drho(x, alpha, c=1.0):
  """(d/dx, d/dalpha, d/dc) of rho from the closed-form derivatives."""
  x, a, c = np.asarray(x, LD), LD(alpha), LD(c)
  z = (x / c) ** 2
  if np.isinf(a):
    w_pow = np.exp(-z / 2) if a < 0 else np.exp(z / 2)
  elif a == 2:
    w_pow = np.ones_like(z)
  else:  # (1 + z/b)^(a/2 - 1), with the power through log1p (exact for |a| >> 1)
    w_pow = np.exp((a / 2 - 1) * np.log1p(z / abs(a - 2)))
  dx, dc = x / c**2 * w_pow, -z / c * w_pow
  if a == 0:
    l = np.log1p(z / 2)
    da = -l / 2 + z / (2 * (2 + z)) + l * l / 4
  elif np.isinf(a) or a == 2:
    da = np.zeros_like(z)
  else:
    # rho = (z + (b + z) m) / a with b = |a - 2|, m = w^((a-2)/2) - 1, w = 1 + z/b;
    # differentiating that form leaves no cancellation near a = 2.
    b, sg = abs(a - 2), np.sign(a - 2)
    log_w = np.log1p(z / b)
    m = np.expm1((a - 2) / 2 * log_w)
    rho = (z + (b + z) * m) / a
    da = (-rho + sg * m + (b + z) * (m + 1) * (log_w / 2 - z / (2 * (b + z)))) / a
  return dx, da, dc


CLOSED_FORMS = {  # alpha: rho(x, alpha, 1) as a function of z = x^2, cancellation-free
  2.0: lambda z: z / 2,  # L2
  1.0: lambda z: z / (np.sqrt(z + 1) + 1),  # Charbonnier: sqrt(z + 1) - 1
  0.0: lambda z: np.log1p(z / 2),  # Cauchy
  -2.0: lambda z: 2 * z / (z + 4),  # Geman-McClure
  -np.inf: lambda z: -np.expm1(-z / 2),  # Welsch: 1 - exp(-z/2)
  np.inf: lambda z: np.expm1(z / 2),
}


def _rho_integrand(x, alpha):
  z = x * x
  if alpha == 0:
    return 1.0 / (1.0 + z / 2)
  if alpha == 2:
    return np.exp(-z / 2)
  b = abs(alpha - 2)
  return np.exp(-(b / alpha) * np.expm1(alpha / 2 * np.log1p(z / b)))


def quad_log_z(alpha):
  """log of the integral of exp(-rho(x, alpha, 1)) over the line, by adaptive quadrature."""
  alpha = float(alpha)  # float64 arithmetic also for a float32 alpha
  parts = [
    scipy.integrate.quad(
      _rho_integrand, lo, hi, args=(alpha,), epsabs=1e-15, epsrel=1e-12, limit=200
    )[0]
    for lo, hi in ((0, 1), (1, 30), (30, np.inf))
  ]
  return float(np.log(2 * sum(parts)))


def residuals(n=8, seed=0, spread=3.0):
  """Residuals over many orders of magnitude, both signs, and an exact zero."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(n) * 10.0 ** rng.uniform(-spread, spread, n)
  x[0] = 0.0
  return x


ALPHAS = [
  -np.inf,
  -1e8,
  -50.0,
  -2.0,
  -1.0,
  -1e-3,
  -1e-9,
  0.0,
  1e-9,
  1e-4,
  0.3,
  1.0,
  1.5,
  1.8,
  1.99,
  2 - 1e-6,
  2 - 1e-12,
  2.0,
  2 + 1e-12,
  2 + 1e-6,
  2.01,
  2.5,
  3.0,
  4.0,
  10.0,
  1e8,
  np.inf,
]

_rho64 = jax.jit(lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c, reduction="none"))
_grads64 = jax.jit(
  jax.vmap(
    jax.grad(
      lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c, reduction="sum"),
      argnums=(0, 1, 2),
    ),
    in_axes=(0, None, None),
  )
)


def _close(actual, expected, rtol, atol=0.0):
  np.testing.assert_allclose(
    np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol
  )


# --------------------------------------------------------------------------
# general_robust_loss: values.


@pytest.mark.parametrize("alpha", list(CLOSED_FORMS), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_special_cases_match_closed_forms(alpha, dtype):
  x = residuals(spread=1.5 if alpha == np.inf else 3.0)
  with jax.enable_x64(dtype == np.float64):
    got = jaxobj.general_robust_loss(x.astype(dtype), alpha=alpha, reduction="none")
  assert got.dtype == dtype
  z = x.astype(dtype).astype(np.float64) ** 2
  _close(got, CLOSED_FORMS[alpha](z), rtol=1e-13 if dtype == np.float64 else 2e-6, atol=1e-300)


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_scale_divides_the_residual(scale):
  x = residuals()
  for alpha in (-2.0, 0.0, 1.0, 2.0):
    got = jaxobj.general_robust_loss(
      x.astype(np.float32), alpha=alpha, scale=scale, reduction="none"
    )
    _close(got, ref_rho(x.astype(np.float32), alpha, scale), rtol=2e-6, atol=1e-30)


def test_values_against_extended_precision_reference_f64():
  x = residuals(n=40, seed=1, spread=4.0)
  with jax.enable_x64(True):
    for alpha in ALPHAS:
      got = np.asarray(_rho64(x, alpha, 0.7))
      expected = ref_rho(x, alpha, 0.7)
      finite = np.abs(expected) < 1e300  # float64 overflow is checked elsewhere
      assert np.all(np.isfinite(got[finite]))
      _close(got[finite], expected[finite], rtol=2e-14, atol=1e-300)


def test_values_against_reference_f32():
  """float32 error stays within the problem's own conditioning (~u eps, u the exponent)."""
  x = residuals(n=40, seed=2, spread=3.0).astype(np.float32)
  for alpha in ALPHAS:
    a32 = np.float32(alpha)
    got = jaxobj.general_robust_loss(x, alpha=a32, reduction="none")
    expected = ref_rho(x, a32)  # the float32 alpha, exactly
    finite = np.isfinite(expected) & (expected < 1e38)
    _close(np.asarray(got)[finite], expected[finite], rtol=5e-6, atol=1e-37)


def test_continuous_at_the_singular_alphas():
  """alpha -> 0 and alpha -> 2 from both sides: values converge to the limits
  at the rate the alpha-derivative gives (log-singular at 2)."""
  x = np.array([0.0, 1e-3, 0.3, 1.0, 4.0, 30.0, 1e3])
  z = x**2
  with jax.enable_x64(True):
    at_zero = np.asarray(_rho64(x, 0.0, 1.0))
    slope_zero = np.asarray(_grads64(x, 0.0, 1.0)[1])
    for d in (1e-3, 1e-6, 1e-9):
      for sign in (-1, 1):
        near = np.asarray(_rho64(x, sign * d, 1.0))
        # alpha = 0 is a regular point: first-order Taylor, second-order error.
        assert np.all(
          np.abs(near - at_zero - sign * d * slope_zero) <= d * d * (1 + z) + 1e-15 * at_zero
        )
        near2 = np.asarray(_rho64(x, 2.0 + sign * d, 1.0))
        bound = 0.5 * z * d * (np.log1p(z / d) + 1)
        assert np.all(np.abs(near2 - z / 2) <= bound + 1e-15)
        assert np.all(np.sign(near2 - z / 2) * sign >= 0)  # rho increases with alpha


def test_monotone_in_alpha():
  x = residuals(n=16, seed=3)
  alphas = np.array([-np.inf, -1e3, -4, -2, -1, -0.1, 0, 0.1, 1, 1.9, 2, 2.1, 4, 20, np.inf])
  with jax.enable_x64(True):
    vals = np.stack([np.asarray(_rho64(x, a, 1.0)) for a in alphas])
  assert np.all(np.diff(vals, axis=0) >= -1e-15 * np.abs(vals[1:]))


def test_matches_regression_losses_where_they_overlap():
  x = residuals().astype(np.float32)
  y = np.zeros_like(x)
  _close(jaxobj.general_robust_loss(x, y, alpha=2.0), jaxobj.l2_loss(x, y), rtol=1e-6)
  for delta in (0.5, 2.0):
    _close(
      delta**2 * jaxobj.general_robust_loss(x, y, alpha=1.0, scale=delta, reduction="none"),
      jaxobj.pseudo_huber_loss(x, y, delta=delta, reduction="none"),
      rtol=3e-6,
      atol=1e-12,
    )


def test_targets_give_the_residual():
  rng = np.random.default_rng(4)
  p, t = rng.standard_normal((2, 6)).astype(np.float32)
  _close(
    jaxobj.general_robust_loss(p, t, alpha=0.5, reduction="none"),
    jaxobj.general_robust_loss(p - t, alpha=0.5, reduction="none"),
    rtol=1e-6,
  )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_where_weights_reduction(reduction):
  x = residuals(n=6, seed=5).astype(np.float32)
  where = np.array([True, False, True, True, False, True])
  w = np.linspace(0.5, 2.0, 6).astype(np.float32)
  got = jaxobj.general_robust_loss(
    x, alpha=-1.0, scale=2.0, where=where, weights=w, reduction=reduction
  )
  _close(
    got,
    ref_reduce(np.asarray(ref_rho(x, -1.0, 2.0), np.float64), where, w, reduction),
    rtol=2e-6,
    atol=1e-12,
  )


def test_per_feature_alpha_and_scale():
  rng = np.random.default_rng(6)
  x = (3 * rng.standard_normal((4, 3))).astype(np.float32)
  alpha = np.array([-2.0, 0.0, 1.5], np.float32)
  scale = np.array([0.5, 1.0, 2.0], np.float32)
  got = np.asarray(jaxobj.general_robust_loss(x, alpha=alpha, scale=scale, reduction="none"))
  for j in range(3):
    _close(got[:, j], ref_rho(x[:, j], alpha[j], scale[j]), rtol=2e-6)
  with pytest.raises(ValueError, match=r"alpha\.shape=\(4,\)"):
    jaxobj.general_robust_loss(x, alpha=np.ones(4, np.float32))
  with pytest.raises(ValueError, match=r"scale\.shape=\(2, 4, 3\)"):
    jaxobj.general_robust_loss(x, scale=np.ones((2, 4, 3), np.float32))


def test_nan_alpha_behind_the_mask_changes_nothing():
  x = residuals(n=6, seed=7).astype(np.float32)
  where = jnp.array([True, False, True, True, False, True])
  alpha = jnp.where(where, 0.5, jnp.nan)
  loss = jax.jit(lambda x, a: jaxobj.general_robust_loss(x, alpha=a, where=where))
  _close(loss(x, alpha), loss(x, 0.5), rtol=1e-6)
  gx, ga = jax.grad(loss, argnums=(0, 1))(x, alpha)
  assert np.all(np.isfinite(gx)) and np.all(np.isfinite(ga))
  assert np.all(np.asarray(ga)[~np.asarray(where)] == 0)


# --------------------------------------------------------------------------
# general_robust_loss: gradients.


def test_gradients_in_x_and_scale_match_closed_forms():
  x = residuals(n=30, seed=8, spread=3.0)
  with jax.enable_x64(True):
    for alpha in ALPHAS:
      if alpha == np.inf:
        continue  # exp(z/2) overflows for these residuals; checked below
      gx, _, gc = (np.asarray(g) for g in _grads64(x, alpha, 0.7))
      dx, _, dc = ref_drho(x, alpha, 0.7)
      ok = ref_rho(x, alpha, 0.7) < 1e300  # past float64's range the exponent is capped
      _close(gx[ok], dx[ok], rtol=1e-12, atol=1e-300)
      _close(gc[ok], dc[ok], rtol=1e-12, atol=1e-300)
    small = x[np.abs(x) < 5]
    gx, _, gc = (np.asarray(g) for g in _grads64(small, np.inf, 0.7))
    dx, _, dc = ref_drho(small, np.inf, 0.7)
    _close(gx, dx, rtol=1e-12)
    _close(gc, dc, rtol=1e-12)


def test_gradient_in_alpha_matches_closed_form():
  x = np.concatenate([np.geomspace(0.1, 300, 12), -np.geomspace(0.2, 50, 4)])
  with jax.enable_x64(True):
    for alpha in ALPHAS:
      if 0 < abs(alpha) < 1e-2 or alpha == np.inf:
        continue  # the closed form itself cancels there; continuity is checked below
      if alpha > 1e3:
        continue  # rho overflows float64 for most of these residuals
      _, ga, _ = (np.asarray(g) for g in _grads64(x, alpha, 0.7))
      _, da, _ = ref_drho(x, alpha, 0.7)
      ok = np.abs(da) < 1e300
      ga, da = ga[ok], da[ok]
      # The closed form cancels to ~1e-19 absolute (terms of size 1, result O(1/alpha^2)).
      _close(ga, da, rtol=1e-9, atol=1e-15)


def test_gradient_in_alpha_is_continuous_through_zero():
  """alpha = 0 is a regular point: the alpha-derivative there is the true one
  (not 0), and it agrees with the derivative just beside it."""
  x = np.array([0.1, 1.0, 3.0, 30.0])
  with jax.enable_x64(True):
    at_zero = np.asarray(_grads64(x, 0.0, 1.0)[1])
    _close(at_zero, ref_drho(x, 0.0)[1], rtol=1e-10)
    assert np.all(at_zero != 0)
    for a in (-1e-6, 1e-6, -1e-9, 1e-9):
      _close(_grads64(x, a, 1.0)[1], at_zero, rtol=1e-5)


def test_gradient_in_alpha_near_two_grows_like_log():
  x = np.array([0.5, 2.0])
  z = x**2
  with jax.enable_x64(True):
    assert np.all(np.asarray(_grads64(x, 2.0, 1.0)[1]) == 0.0)  # documented convention
    for d in (1e-4, 1e-8, 1e-12):
      for a in (2 - d, 2 + d):
        ga = np.asarray(_grads64(x, a, 1.0)[1])
        _close(ga, ref_drho(x, a)[1], rtol=1e-8)
        # d rho / d alpha ~ (z/4) log(z/d): positive, unbounded, finite.
        _close(ga, z / 4 * np.log(z / d), rtol=0.3)


_value64 = jax.jit(lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c, reduction="sum"))
_grad64 = jax.jit(jax.grad(_value64, argnums=(0, 1, 2)))


def test_gradients_against_finite_differences_float64():
  x = np.array([-2.5, -0.3, 0.05, 0.8, 4.0])
  c = 1.3
  h = 1e-6
  with jax.enable_x64(True):
    for alpha in (-1e3, -2.0, -0.5, 0.0, 0.7, 1.0, 1.5, 1.9, 2.1, 2.5, 5.0):
      gx, ga, gc = _grad64(x, alpha, c)
      fd_x = [
        (_value64(x + h * e, alpha, c) - _value64(x - h * e, alpha, c)) / (2 * h)
        for e in np.eye(len(x))
      ]
      fd_a = (_value64(x, alpha + h, c) - _value64(x, alpha - h, c)) / (2 * h)
      fd_c = (_value64(x, alpha, c + h) - _value64(x, alpha, c - h)) / (2 * h)
      _close(gx, fd_x, rtol=1e-7, atol=1e-9)
      _close(ga, fd_a, rtol=1e-7, atol=1e-9)
      _close(gc, fd_c, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("alpha", [-2.0, 0.0, 1.5])
def test_check_grads_second_order_float64(alpha):
  """Second derivatives too (through the custom derivative rule)."""
  x = np.array([-2.5, 0.05, 4.0])
  with jax.enable_x64(True):
    f = lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c, reduction="sum")
    check_grads(f, (x, alpha, 1.3), order=2, modes=["rev"], eps=1e-5, atol=1e-6, rtol=1e-6)


_loss32 = jax.jit(lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c, reduction="none"))
_grad32 = jax.jit(
  jax.grad(lambda x, a, c: jaxobj.general_robust_loss(x, alpha=a, scale=c), argnums=(0, 1, 2))
)


def test_gradients_are_finite_everywhere():
  """Residuals up to 1e30 in float32 (|x/c| past ~2e17 is clipped with a
  straight-through gradient). For alpha near 2 and above, rho and its
  derivatives grow like (x/c)^alpha and overflow float32 where the true values do,
  so alpha > 1 runs on residuals up to 1e4 only."""
  x = np.concatenate([residuals(n=8, seed=9), [1e4, -3e7, 1e20, -1e30]]).astype(np.float32)
  for alpha in [-np.inf, -1e30, -2.0, 0.0, 1e-7, 1.0, 1.5, 1.999999, 2.0, 2.000001, 3.0, np.inf]:
    xs = x if alpha <= 1.0 else x[np.abs(x) <= 1e4]
    for scale in (1e-3, 1.0, 1e3):
      args = (xs, np.float32(alpha), np.float32(scale))
      assert np.all(np.isfinite(_loss32(*args))), (alpha, scale)
      for grad in _grad32(*args):
        assert np.all(np.isfinite(grad)), (alpha, scale)


def test_bounded_for_negative_alpha_with_vanishing_gradient():
  x = np.array([1e8, 1e15], np.float32)
  for alpha in (-1.0, -2.0, -10.0):
    got = _loss32(x, np.float32(alpha), np.float32(1.0))
    _close(got, np.full(2, abs(alpha - 2) / abs(alpha)), rtol=1e-6)
    g = _grad32(x, np.float32(alpha), np.float32(1.0))[0] * len(x)  # grad of the mean
    _close(g, ref_drho(x, alpha)[0], rtol=1e-5, atol=1e-20)


# --------------------------------------------------------------------------
# general_robust_loss: bad input.


def test_bad_hyperparameters_raise():
  x = np.ones(3, np.float32)
  with pytest.raises(ValueError, match="scale"):
    jaxobj.general_robust_loss(x, scale=0.0)
  with pytest.raises(ValueError, match="scale"):
    jaxobj.general_robust_loss(x, scale=np.array([1.0, -1.0, 1.0]))
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.general_robust_loss(x, alpha=float("nan"))
  with pytest.raises(TypeError, match="alpha"):
    jaxobj.general_robust_loss(x, alpha=1j)
  with pytest.raises(TypeError, match="predictions"):
    jaxobj.general_robust_loss(np.ones(3, np.int32))
  with pytest.raises(ValueError, match="targets"):
    jaxobj.general_robust_loss(x, np.ones((3, 1), np.float32))


def test_traced_nonpositive_scale_gives_nan():
  x = np.ones(3, np.float32)
  out = jax.jit(lambda c: jaxobj.general_robust_loss(x, scale=c))(0.0)
  assert np.isnan(out)


# --------------------------------------------------------------------------
# The log-partition function and the adaptive loss.


def test_log_partition_closed_forms():
  with jax.enable_x64(True):
    got = np.asarray(jaxobj.robust_log_partition(np.array([0.0, 1.0, 2.0])))
  expected = [
    np.log(np.pi * np.sqrt(2)),
    np.log(2 * np.e * scipy.special.k1(1.0)),
    0.5 * np.log(2 * np.pi),
  ]
  _close(got, expected, rtol=0, atol=1e-9)


def test_log_partition_against_quadrature():
  rng = np.random.default_rng(10)
  alphas = np.concatenate([rng.uniform(0, 2, 12), [1e-6, 1e-3, 0.02, 1.99, 1.999, 2 - 1e-6]])
  with jax.enable_x64(True):
    got = np.asarray(jaxobj.robust_log_partition(alphas))
  expected = np.array([quad_log_z(a) for a in alphas])
  _close(got, expected, rtol=0, atol=1e-9)
  got32 = jaxobj.robust_log_partition(alphas.astype(np.float32))
  assert got32.dtype == jnp.float32
  _close(got32, [quad_log_z(a) for a in alphas.astype(np.float32).astype(float)], rtol=0, atol=1e-6)


def test_log_partition_slope_against_quadrature():
  alphas = np.array([0.0, 0.01, 0.25, 0.8, 1.3, 1.9, 1.99])
  h = 1e-5
  with jax.enable_x64(True):
    got = np.asarray(jax.vmap(jax.grad(jaxobj.robust_log_partition))(alphas))
  lo = [quad_log_z(a - h) if a >= h else quad_log_z(a) for a in alphas]
  hi = [quad_log_z(a + h) for a in alphas]
  fd = (np.array(hi) - lo) / np.where(alphas >= h, 2 * h, h)
  _close(got[1:], fd[1:], rtol=1e-5)
  _close(got[0], fd[0], rtol=1e-3)  # one-sided difference at the end of the domain


def test_log_partition_out_of_range():
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.robust_log_partition(2.5)
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.robust_log_partition(np.array([0.5, -0.1]))
  traced = jax.jit(jaxobj.robust_log_partition)(jnp.array([-0.1, 0.5, 2.1]))
  assert np.isnan(traced[0]) and np.isfinite(traced[1]) and np.isnan(traced[2])
  assert jax.grad(jaxobj.robust_log_partition)(2.0) == 0.0  # documented convention


def ref_nll(x, alpha, c):
  return np.asarray(ref_rho(x, alpha, c), np.float64) + np.log(c) + quad_log_z(alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.37, 1.0, 1.6, 1.999, 2.0])
def test_adaptive_values(alpha):
  x = residuals(n=8, seed=11, spread=2.0)
  with jax.enable_x64(True):
    got = jaxobj.adaptive_robust_loss(x, alpha=alpha, scale=0.6, reduction="none")
  _close(got, ref_nll(x, alpha, 0.6), rtol=1e-12, atol=1e-9)
  got32 = jaxobj.adaptive_robust_loss(
    x.astype(np.float32), alpha=alpha, scale=0.6, reduction="none"
  )
  _close(got32, ref_nll(x.astype(np.float32), np.float32(alpha), 0.6), rtol=2e-6, atol=1e-6)


def test_adaptive_special_cases():
  x = residuals(n=8, seed=12, spread=2.0)
  c = 1.7
  z = (x / c) ** 2
  with jax.enable_x64(True):
    normal = jaxobj.adaptive_robust_loss(x, alpha=2.0, scale=c, reduction="none")
    cauchy = jaxobj.adaptive_robust_loss(x, alpha=0.0, scale=c, reduction="none")
  _close(normal, -scipy.stats.norm.logpdf(x, scale=c), rtol=1e-12)
  _close(cauchy, np.log1p(z / 2) + np.log(c) + np.log(np.pi * np.sqrt(2)), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.8, 1.5, 1.999])
def test_adaptive_is_a_normalized_density(alpha):
  s = np.arange(-30.0, 30.0, 0.05)
  x = np.exp(s)
  with jax.enable_x64(True):
    nll = np.asarray(jaxobj.adaptive_robust_loss(x, alpha=alpha, scale=0.4, reduction="none"))
  total = 2 * np.trapezoid(x * np.exp(-nll), s)  # both half-lines, x = e^s
  assert abs(total - 1.0) < 1e-9


def test_adaptive_gradients():
  """d/dx and d/dc in closed form; d/dalpha is d rho/d alpha in closed form plus
  the slope of log Z by differences of quadratures."""
  x = np.array([-3.0, -0.4, 0.0, 0.9, 6.0])
  h = 1e-5
  with jax.enable_x64(True):
    grad = jax.jit(
      jax.grad(
        lambda x, a, c: jaxobj.adaptive_robust_loss(x, alpha=a, scale=c, reduction="sum"),
        argnums=(0, 1, 2),
      )
    )
    for alpha in (0.3, 1.0, 1.7):
      gx, ga, gc = grad(x, alpha, 0.8)
      dx, da, dc = ref_drho(x, alpha, 0.8)
      dlogz = (quad_log_z(alpha + h) - quad_log_z(alpha - h)) / (2 * h)
      _close(gx, dx, rtol=1e-12)
      _close(ga, float(np.sum(da)) + len(x) * dlogz, rtol=1e-5)
      _close(gc, float(np.sum(dc)) + len(x) / 0.8, rtol=1e-12)


def test_adaptive_fit_recovers_the_shape():
  """Minimizing the mean NLL over alpha picks heavy tails for Cauchy data and
  alpha = 2 for normal data (and the right scale for the latter)."""
  rng = np.random.default_rng(13)
  alphas = jnp.linspace(0.0, 2.0, 41)
  scales = jnp.geomspace(0.25, 4.0, 33)
  nll = jax.jit(
    jax.vmap(
      jax.vmap(
        lambda x, a, c: jaxobj.adaptive_robust_loss(x, alpha=a, scale=c), in_axes=(None, None, 0)
      ),
      in_axes=(None, 0, None),
    )
  )
  normal = (1.5 * rng.standard_normal(4000)).astype(np.float32)
  i, j = np.unravel_index(np.argmin(nll(normal, alphas, scales)), (41, 33))
  assert alphas[i] >= 1.8 and abs(float(scales[j]) / 1.5 - 1) < 0.1
  cauchy = rng.standard_cauchy(4000).astype(np.float32)
  i, _ = np.unravel_index(np.argmin(nll(cauchy, alphas, scales)), (41, 33))
  assert alphas[i] <= 0.2


def test_adaptive_bad_input():
  x = np.ones(3, np.float32)
  for alpha in (-0.5, 2.5, float("nan")):
    with pytest.raises(ValueError, match="alpha"):
      jaxobj.adaptive_robust_loss(x, alpha=alpha)
  with pytest.raises(ValueError, match="scale"):
    jaxobj.adaptive_robust_loss(x, scale=-1.0)
  out = jax.jit(lambda a: jaxobj.adaptive_robust_loss(x, alpha=a, reduction="none"))(2.5)
  assert np.all(np.isnan(out))


# --------------------------------------------------------------------------
# Latent parametrizations.


def test_latents_round_trip_and_defaults():
  assert float(jaxobj.robust_alpha_from_latent(0.0)) == pytest.approx(1.0)
  assert float(jaxobj.robust_scale_from_latent(0.0)) == pytest.approx(1.0, rel=1e-6)
  alphas = np.array([0.0015, 0.3, 1.0, 1.9, 1.998])
  _close(
    jaxobj.robust_alpha_from_latent(jaxobj.robust_latent_from_alpha(alphas)), alphas, rtol=1e-5
  )
  scales = np.array([2e-5, 1e-3, 0.5, 1.0, 30.0, 1e4])
  _close(
    jaxobj.robust_scale_from_latent(jaxobj.robust_latent_from_scale(scales)), scales, rtol=1e-5
  )
  lo, hi = 0.5, 1.5
  a = jaxobj.robust_alpha_from_latent(jnp.array([-1e4, 0.0, 1e4]), low=lo, high=hi)
  _close(a, [lo, 1.0, hi], rtol=1e-6)
  c = jaxobj.robust_scale_from_latent(jnp.array([-1e4, 1e4]), floor=0.1, init=2.0)
  _close(c, [0.1, 1.9 * (1e4 + np.log(np.e - 1)) + 0.1], rtol=1e-6)


def test_latents_formulas():
  latent = np.linspace(-6, 6, 7)
  _close(
    jaxobj.robust_alpha_from_latent(latent, low=0.2, high=1.8),
    0.2 + 1.6 * scipy.special.expit(latent),
    rtol=1e-6,
  )
  _close(
    jaxobj.robust_scale_from_latent(latent, floor=1e-3, init=0.5),
    1e-3 + (0.5 - 1e-3) * np.logaddexp(0, latent + np.log(np.e - 1)),
    rtol=1e-6,
  )


def test_learning_through_latents_has_finite_gradients():
  x = np.array([0.0, 0.5, -2.0, 40.0, 1e4], np.float32)

  def objective(latents):
    alpha = jaxobj.robust_alpha_from_latent(latents["alpha"])
    scale = jaxobj.robust_scale_from_latent(latents["scale"])
    return jaxobj.adaptive_robust_loss(x, alpha=alpha, scale=scale)

  grad = jax.jit(jax.grad(objective))
  for la, ls in ((-30.0, -30.0), (0.0, 0.0), (30.0, 30.0), (-30.0, 30.0), (30.0, -30.0)):
    g = grad({"alpha": jnp.float32(la), "scale": jnp.float32(ls)})
    assert all(np.isfinite(v) for v in jax.tree.leaves(g))
  per_feature = jax.grad(
    lambda la: jaxobj.adaptive_robust_loss(
      np.ones((4, 3), np.float32), alpha=jaxobj.robust_alpha_from_latent(la)
    )
  )(jnp.zeros(3))
  assert per_feature.shape == (3,)


def test_latent_bad_ranges():
  with pytest.raises(ValueError, match="low"):
    jaxobj.robust_alpha_from_latent(0.0, low=1.0, high=1.0)
  with pytest.raises(ValueError, match="floor"):
    jaxobj.robust_scale_from_latent(0.0, floor=2.0, init=1.0)
  with pytest.raises(ValueError, match="floor"):
    jaxobj.robust_scale_from_latent(0.0, floor=0.0)
  with pytest.raises(TypeError, match="latent"):
    jaxobj.robust_alpha_from_latent(np.int32(1))
