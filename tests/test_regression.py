"""Tests for jaxobj.losses.regression.

Values are checked against independent float64 NumPy references written from
the textbook formulas (and against optax where it overlaps), gradients with
``jax.test_util.check_grads`` and closed-form derivatives, then extreme
inputs, invalid hyperparameters, traced hyperparameters and the minimizers
each loss is known for (mean, median, quantile).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats
from jax.test_util import check_grads
from references import ref_reduce

import jaxobj
from jaxobj import registry
from jaxobj.losses import regression

SEED = 1234
SHAPE = (4, 8)
RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ("none", "sum", "mean")


def _rng(*salt: int) -> np.random.Generator:
  return np.random.default_rng((SEED,) + salt)


def _f32(*xs):
  return tuple(np.asarray(x, np.float32) for x in xs)


def _f64(xs):
  return tuple(np.asarray(x, np.float64) for x in xs)


def _away(rng, shape, low, high, avoid=(), margin=0.05):
  """Uniform draws in [low, high] at least ``margin`` from every point in ``avoid``."""
  n = int(np.prod(shape))
  out = np.empty(0)
  while out.size < n:
    x = rng.uniform(low, high, 4 * n)
    for a in avoid:
      x = x[np.abs(x - a) >= margin]
    out = np.concatenate([out, x])
  return out[:n].reshape(shape)


def _assert_close(actual, expected, rtol=RTOL, atol=ATOL, err_msg=""):
  np.testing.assert_allclose(
    np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol, err_msg=err_msg
  )


# --------------------------------------------------------------------------
# float64 references, written from the formulas (per-element losses)
# --------------------------------------------------------------------------


def ref_squared_error(p, t):
  return (p - t) ** 2


def ref_l2_loss(p, t):
  return 0.5 * (p - t) ** 2


def ref_absolute_error(p, t):
  return np.abs(p - t)


def ref_huber(p, t, delta=1.0):
  a = np.abs(p - t)
  return np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))


def ref_smooth_l1(p, t, beta=1.0):
  a = np.abs(p - t)
  if beta == 0:
    return a
  return np.where(a < beta, 0.5 * a**2 / beta, a - 0.5 * beta)


def ref_pseudo_huber(p, t, delta=1.0):
  return delta**2 * (np.sqrt(1.0 + ((p - t) / delta) ** 2) - 1.0)


def ref_log_cosh(p, t):
  return np.log(np.cosh(p - t))


def ref_quantile(p, t, quantile=0.5):
  d = t - p
  return np.maximum(quantile * d, (quantile - 1.0) * d)


def ref_epsilon_insensitive(p, t, epsilon=0.1):
  return np.maximum(np.abs(p - t) - epsilon, 0.0)


def ref_ape(p, t, eps=1.17e-6):
  return np.abs(p - t) / np.maximum(np.abs(t), eps)


def ref_squared_log_error(p, t):
  return (np.log(1.0 + np.maximum(p, 0.0)) - np.log(1.0 + np.maximum(t, 0.0))) ** 2


def ref_gaussian_nll(mu, y, v, eps=1e-6, log_variance=False, full=False):
  var = np.exp(v) if log_variance else np.maximum(v, eps)
  out = 0.5 * (np.log(var) + (y - mu) ** 2 / var)
  return out + 0.5 * np.log(2 * np.pi) if full else out


def ref_poisson_nll(x, y, log_input=True, full=False, eps=1e-8):
  if log_input:
    out = np.exp(x) - y * x
  else:
    out = x - y * np.log(x + eps)
  if full:
    ys = np.where(y > 1, y, 2.0)
    out = out + np.where(y > 1, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)
  return out


# --------------------------------------------------------------------------
# analytic gradients of the summed loss (float64)
# --------------------------------------------------------------------------


def _g_quantile(p, t, quantile=0.5):
  return (np.where(t > p, -quantile, 1.0 - quantile),)


def _g_gaussian(mu, y, v, eps=1e-6, log_variance=False, full=False):
  r2 = (y - mu) ** 2
  if log_variance:
    return -(y - mu) * np.exp(-v), 0.5 * (1.0 - r2 * np.exp(-v))
  var = np.maximum(v, eps)
  # The floor is invisible to the gradient (torch's convention): below eps,
  # the derivative is the one at eps.
  return -(y - mu) / var, 0.5 * (1.0 / var - r2 / var**2)


def _g_poisson(x, y, log_input=True, full=False, eps=1e-8):
  return (np.exp(x) - y,) if log_input else (1.0 - y / (x + eps),)


# --------------------------------------------------------------------------
# input makers: every draw keeps residuals away from the loss's kinks, so the
# same inputs serve values, check_grads and finite differences
# --------------------------------------------------------------------------


def _residuals(*kinks):
  def make(rng):
    t = rng.standard_normal(SHAPE)
    a = _away(rng, SHAPE, 0.05, 3.0, (0.0,) + kinks)
    return _f32(t + rng.choice([-1.0, 1.0], SHAPE) * a, t)

  return make


def _ape_inputs(eps):
  def make(rng):
    t = _away(rng, SHAPE, 0.3, 2.0, (eps,)) * rng.choice([-1.0, 1.0], SHAPE)
    p = t + rng.choice([-1.0, 1.0], SHAPE) * _away(rng, SHAPE, 0.05, 1.0)
    return _f32(p, t)

  return make


def _sle_inputs(rng):
  return _f32(rng.uniform(0.2, 3.0, SHAPE), rng.uniform(0.5, 2.0, SHAPE))


def _gaussian_inputs(eps):
  def make(rng):
    return _f32(
      rng.standard_normal(SHAPE), rng.standard_normal(SHAPE), _away(rng, SHAPE, 0.3, 2.5, (eps,))
    )

  return make


def _gaussian_log_inputs(rng):
  return _f32(rng.standard_normal(SHAPE), rng.standard_normal(SHAPE), rng.standard_normal(SHAPE))


def _poisson_log_inputs(rng):
  return _f32(rng.standard_normal(SHAPE), rng.poisson(2.5, SHAPE))


def _poisson_rate_inputs(rng):
  return _f32(rng.uniform(0.2, 3.0, SHAPE), rng.poisson(2.5, SHAPE))


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  fn: Callable[..., Any]
  ref: Callable[..., np.ndarray]
  make: Callable[[np.random.Generator], tuple[np.ndarray, ...]]
  grad: Callable[..., tuple[np.ndarray, ...]]  # analytic grads of the sum
  kwargs: dict = dataclasses.field(default_factory=dict)
  grad_argnums: tuple[int, ...] = (0,)  # inputs `grad` differentiates
  check_argnums: tuple[int, ...] = (0, 1)  # inputs check_grads perturbs

  def inputs(self):
    """The case's inputs: the same draw every call, a different one per case."""
    return self.make(_rng(zlib.crc32(self.id.encode())))


def _sign(p, t):
  return (np.sign(p - t),)


CASES = [
  Case(
    "squared_error",
    jaxobj.squared_error,
    ref_squared_error,
    _residuals(),
    lambda p, t: (2 * (p - t),),
  ),
  Case("l2_loss", jaxobj.l2_loss, ref_l2_loss, _residuals(), lambda p, t: (p - t,)),
  Case("absolute_error", jaxobj.absolute_error, ref_absolute_error, _residuals(), _sign),
  Case(
    "huber_d1",
    jaxobj.huber_loss,
    ref_huber,
    _residuals(1.0),
    lambda p, t, delta: (np.clip(p - t, -delta, delta),),
    {"delta": 1.0},
  ),
  Case(
    "huber_d0.3",
    jaxobj.huber_loss,
    ref_huber,
    _residuals(0.3),
    lambda p, t, delta: (np.clip(p - t, -delta, delta),),
    {"delta": 0.3},
  ),
  Case(
    "smooth_l1_b1",
    jaxobj.smooth_l1_loss,
    ref_smooth_l1,
    _residuals(1.0),
    lambda p, t, beta: (np.clip((p - t) / beta, -1, 1),),
    {"beta": 1.0},
  ),
  Case(
    "smooth_l1_b0.5",
    jaxobj.smooth_l1_loss,
    ref_smooth_l1,
    _residuals(0.5),
    lambda p, t, beta: (np.clip((p - t) / beta, -1, 1),),
    {"beta": 0.5},
  ),
  Case(
    "smooth_l1_b0",
    jaxobj.smooth_l1_loss,
    ref_smooth_l1,
    _residuals(),
    lambda p, t, beta: (np.sign(p - t),),
    {"beta": 0.0},
  ),
  Case(
    "pseudo_huber_d1",
    jaxobj.pseudo_huber_loss,
    ref_pseudo_huber,
    _residuals(),
    lambda p, t, delta: ((p - t) / np.sqrt(1 + ((p - t) / delta) ** 2),),
    {"delta": 1.0},
  ),
  Case(
    "pseudo_huber_d2.5",
    jaxobj.pseudo_huber_loss,
    ref_pseudo_huber,
    _residuals(),
    lambda p, t, delta: ((p - t) / np.sqrt(1 + ((p - t) / delta) ** 2),),
    {"delta": 2.5},
  ),
  Case("log_cosh", jaxobj.log_cosh, ref_log_cosh, _residuals(), lambda p, t: (np.tanh(p - t),)),
  Case(
    "quantile_q0.5",
    jaxobj.quantile_loss,
    ref_quantile,
    _residuals(),
    _g_quantile,
    {"quantile": 0.5},
  ),
  Case(
    "quantile_q0.1",
    jaxobj.quantile_loss,
    ref_quantile,
    _residuals(),
    _g_quantile,
    {"quantile": 0.1},
  ),
  Case(
    "quantile_q0.9",
    jaxobj.quantile_loss,
    ref_quantile,
    _residuals(),
    _g_quantile,
    {"quantile": 0.9},
  ),
  Case(
    "eps_insensitive_e0.1",
    jaxobj.epsilon_insensitive_loss,
    ref_epsilon_insensitive,
    _residuals(0.1),
    lambda p, t, epsilon: (np.sign(p - t) * (np.abs(p - t) > epsilon),),
    {"epsilon": 0.1},
  ),
  Case(
    "eps_insensitive_e0.5",
    jaxobj.epsilon_insensitive_loss,
    ref_epsilon_insensitive,
    _residuals(0.5),
    lambda p, t, epsilon: (np.sign(p - t) * (np.abs(p - t) > epsilon),),
    {"epsilon": 0.5},
  ),
  Case(
    "ape",
    jaxobj.absolute_percentage_error,
    ref_ape,
    _ape_inputs(1.17e-6),
    lambda p, t: (np.sign(p - t) / np.abs(t),),
  ),
  Case(
    "ape_eps0.8",
    jaxobj.absolute_percentage_error,
    ref_ape,
    _ape_inputs(0.8),
    lambda p, t, eps: (np.sign(p - t) / np.maximum(np.abs(t), eps),),
    {"eps": 0.8},
  ),
  Case(
    "squared_log_error",
    jaxobj.squared_log_error,
    ref_squared_log_error,
    _sle_inputs,
    lambda p, t: (2 * (np.log1p(p) - np.log1p(t)) / (1 + p),),
  ),
  Case(
    "gaussian_nll",
    jaxobj.gaussian_nll_loss,
    ref_gaussian_nll,
    _gaussian_inputs(1e-6),
    _g_gaussian,
    grad_argnums=(0, 2),
    check_argnums=(0, 1, 2),
  ),
  Case(
    "gaussian_nll_full",
    jaxobj.gaussian_nll_loss,
    ref_gaussian_nll,
    _gaussian_inputs(1e-6),
    _g_gaussian,
    {"full": True},
    (0, 2),
    (0, 1, 2),
  ),
  # Variances below the floor get the straight-through gradient, which
  # finite differences cannot see: check_grads perturbs only mean and target
  # (the analytic test checks the variance gradient).
  Case(
    "gaussian_nll_eps0.8",
    jaxobj.gaussian_nll_loss,
    ref_gaussian_nll,
    _gaussian_inputs(0.8),
    _g_gaussian,
    {"eps": 0.8},
    (0, 2),
    (0, 1),
  ),
  Case(
    "gaussian_nll_logvar",
    jaxobj.gaussian_nll_loss,
    ref_gaussian_nll,
    _gaussian_log_inputs,
    _g_gaussian,
    {"log_variance": True},
    (0, 2),
    (0, 1, 2),
  ),
  Case(
    "gaussian_nll_logvar_full",
    jaxobj.gaussian_nll_loss,
    ref_gaussian_nll,
    _gaussian_log_inputs,
    _g_gaussian,
    {"log_variance": True, "full": True},
    (0, 2),
    (0, 1, 2),
  ),
  # Targets are counts: check_grads perturbs only the predictions.
  Case(
    "poisson_nll",
    jaxobj.poisson_nll_loss,
    ref_poisson_nll,
    _poisson_log_inputs,
    _g_poisson,
    check_argnums=(0,),
  ),
  Case(
    "poisson_nll_full",
    jaxobj.poisson_nll_loss,
    ref_poisson_nll,
    _poisson_log_inputs,
    _g_poisson,
    {"full": True},
    check_argnums=(0,),
  ),
  Case(
    "poisson_nll_rate",
    jaxobj.poisson_nll_loss,
    ref_poisson_nll,
    _poisson_rate_inputs,
    _g_poisson,
    {"log_input": False},
    check_argnums=(0,),
  ),
  Case(
    "poisson_nll_rate_full",
    jaxobj.poisson_nll_loss,
    ref_poisson_nll,
    _poisson_rate_inputs,
    _g_poisson,
    {"log_input": False, "full": True},
    check_argnums=(0,),
  ),
]
CASE = {c.id: c for c in CASES}


def _cases(*ids):
  chosen = CASES if not ids else [CASE[i] for i in ids]
  return pytest.mark.parametrize("case", chosen, ids=[c.id for c in chosen])


def _where_weights(variant, rng):
  if variant == "plain":
    return None, None
  mask = rng.uniform(size=SHAPE) < 0.7
  mask[0, 0], mask[0, 1] = False, True
  weights = rng.uniform(0.1, 2.0, SHAPE).astype(np.float32)
  if variant == "where":
    return mask, None
  if variant == "weights":
    return None, weights
  if variant == "where+weights":
    return mask, weights
  assert variant == "broadcast"
  return np.array([[True], [False], [True], [True]]), weights[:1, :]


def test_every_regression_loss_has_a_case():
  tested = {c.fn.__name__ for c in CASES}
  assert set(regression.__all__) <= tested, set(regression.__all__) - tested
  for name in regression.__all__:
    assert registry.get(name).family == "regression"


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


@_cases()
@pytest.mark.parametrize("variant", ["plain", "where", "weights", "where+weights", "broadcast"])
def test_values_match_float64_reference(case, variant):
  inputs = case.inputs()
  where, weights = _where_weights(variant, _rng(7))
  per = case.ref(*_f64(inputs), **case.kwargs)
  got = {}
  for reduction in REDUCTIONS:
    out = case.fn(*inputs, where=where, weights=weights, reduction=reduction, **case.kwargs)
    assert out.dtype == jnp.float32
    assert out.shape == (SHAPE if reduction == "none" else ())
    _assert_close(out, ref_reduce(per, where, weights, reduction), err_msg=reduction)
    got[reduction] = np.asarray(out, np.float64)
  # The sum rule of the contract.
  _assert_close(got["none"].sum(), got["sum"])


@pytest.mark.parametrize(
  "name, kwargs",
  [
    ("squared_error", {}),
    ("l2_loss", {}),
    ("huber_loss", {"delta": 1.0}),
    ("huber_loss", {"delta": 0.3}),
    ("huber_loss", {"delta": 2.5}),
    ("log_cosh", {}),
  ],
)
@pytest.mark.parametrize("with_targets", [True, False])
def test_matches_optax(name, kwargs, with_targets):
  rng = _rng(11)
  p, t = _f32(2.0 * rng.standard_normal(SHAPE), rng.standard_normal(SHAPE))
  t = t if with_targets else None
  ours = getattr(jaxobj, name)(p, t, reduction="none", **kwargs)
  theirs = getattr(optax.losses, name)(p, t, **kwargs)
  assert ours.shape == theirs.shape
  _assert_close(ours, np.asarray(theirs, np.float64))


@pytest.mark.parametrize(
  "fn",
  [
    jaxobj.squared_error,
    jaxobj.l2_loss,
    jaxobj.absolute_error,
    jaxobj.huber_loss,
    jaxobj.smooth_l1_loss,
    jaxobj.pseudo_huber_loss,
    jaxobj.log_cosh,
  ],
  ids=lambda f: f.__name__,
)
def test_targets_default_to_zero(fn):
  (p,) = _f32(_rng(12).standard_normal(SHAPE))
  _assert_close(
    fn(p, reduction="none"), np.asarray(fn(p, np.zeros_like(p), reduction="none")), rtol=0, atol=0
  )
  assert float(fn(p)) > 0


def test_quantile_half_is_half_absolute_error():
  p, t = CASE["quantile_q0.5"].inputs()
  _assert_close(
    jaxobj.quantile_loss(p, t, quantile=0.5, reduction="none"),
    0.5 * np.asarray(jaxobj.absolute_error(p, t, reduction="none"), np.float64),
  )


@pytest.mark.parametrize("kwargs", [{}, {"beta": 0.4}])
def test_smooth_l1_is_huber_over_beta(kwargs):
  p, t = CASE["smooth_l1_b0.5"].inputs()
  beta = kwargs.get("beta", 1.0)
  _assert_close(
    jaxobj.smooth_l1_loss(p, t, reduction="none", **kwargs),
    np.asarray(jaxobj.huber_loss(p, t, delta=beta, reduction="none"), np.float64) / beta,
  )


def test_gaussian_nll_full_is_normal_logpdf():
  mu, y, v = CASE["gaussian_nll"].inputs()
  expected = -scipy.stats.norm.logpdf(y, loc=mu, scale=np.sqrt(v.astype(np.float64)))
  _assert_close(jaxobj.gaussian_nll_loss(mu, y, v, full=True, reduction="none"), expected)
  # The log-variance parameterization is the same likelihood.
  _assert_close(
    jaxobj.gaussian_nll_loss(mu, y, np.log(v), log_variance=True, full=True, reduction="none"),
    expected,
    rtol=2e-5,
  )


def test_poisson_full_approximates_exact_nll():
  # Exact NLL: rate - y log(rate) + log(y!); Stirling's error is below 1/(12 y),
  # and for y in {0, 1} the full term is exactly log(y!) = 0.
  y = np.arange(0, 61, dtype=np.float32)
  x = np.log(y + 0.5).astype(np.float32)
  got = np.asarray(jaxobj.poisson_nll_loss(x, y, full=True, reduction="none"), np.float64)
  x64, y64 = x.astype(np.float64), y.astype(np.float64)
  exact = np.exp(x64) - y64 * x64 + scipy.special.gammaln(y64 + 1)
  err = np.abs(got - exact)
  bound = np.where(y64 > 1, 1.0 / (12 * np.maximum(y64, 1)), 0.0) + 1e-5 * (1 + np.abs(exact))
  assert np.all(err <= bound), (y[err > bound], err[err > bound])
  assert np.all(got[y > 1] <= exact[y > 1])  # Stirling under-estimates log(y!)


def test_poisson_integer_counts_equal_float_counts():
  x, y = CASE["poisson_nll"].inputs()
  for kwargs in ({}, {"full": True}):
    _assert_close(
      jaxobj.poisson_nll_loss(x, y.astype(np.int32), **kwargs),
      float(jaxobj.poisson_nll_loss(x, y, **kwargs)),
      rtol=0,
      atol=0,
    )


@_cases(
  "squared_error",
  "huber_d1",
  "log_cosh",
  "quantile_q0.1",
  "squared_log_error",
  "gaussian_nll",
  "poisson_nll",
)
def test_low_precision_inputs_computed_in_float32(case):
  inputs = case.inputs()
  low = tuple(x.astype(jnp.bfloat16) for x in inputs)
  up = tuple(np.asarray(x, np.float32) for x in low)
  out = case.fn(*low, reduction="none", **case.kwargs)
  assert out.dtype == jnp.float32
  _assert_close(out, case.ref(*_f64(up), **case.kwargs))


# --------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------


@_cases()
def test_check_grads(case):
  inputs = case.inputs()
  where, weights = _where_weights("where+weights", _rng(7))

  def loss(**extra):
    def f(*diffed):
      args = list(inputs)
      for i, a in zip(case.check_argnums, diffed):
        args[i] = a
      return case.fn(*args, **case.kwargs, **extra)

    return f

  # Finite differences in float32 are too noisy for a tight check; float64
  # inputs stay float64 inside the loss. The float32 path is checked against
  # closed-form gradients below.
  with jax.enable_x64(True):
    inputs = [x.astype(np.float64) for x in inputs]
    diffed = [jnp.asarray(inputs[i]) for i in case.check_argnums]
    assert loss(reduction="none")(*diffed).dtype == jnp.float64
    check_grads(loss(reduction="none"), diffed, order=1, modes=["rev"])
    check_grads(loss(where=where, weights=weights), diffed, order=1, modes=["rev"])


@_cases()
def test_analytic_gradients(case):
  inputs = case.inputs()
  grads = jax.grad(
    lambda *a: case.fn(*a, reduction="sum", **case.kwargs), argnums=case.grad_argnums
  )(*inputs)
  expected = case.grad(*_f64(inputs), **case.kwargs)
  assert len(grads) == len(expected)
  for g, e in zip(grads, expected):
    assert np.all(np.isfinite(g))
    _assert_close(g, e)

  # Through a masked, weighted mean the gradient is w * dl / sum(w | unmasked).
  where, weights = _where_weights("where+weights", _rng(7))
  g = jax.grad(lambda p: case.fn(p, *inputs[1:], where=where, weights=weights, **case.kwargs))(
    inputs[0]
  )
  _assert_close(g, np.where(where, weights * expected[0], 0.0) / weights[where].sum())


HYPER_GRADS = [
  ("huber_d1", "delta"),
  ("huber_d0.3", "delta"),
  ("smooth_l1_b1", "beta"),
  ("smooth_l1_b0.5", "beta"),
  ("pseudo_huber_d1", "delta"),
  ("pseudo_huber_d2.5", "delta"),
  ("quantile_q0.1", "quantile"),
  ("quantile_q0.9", "quantile"),
  ("eps_insensitive_e0.5", "epsilon"),
  ("ape_eps0.8", "eps"),
  ("gaussian_nll_eps0.8", "eps"),
  ("poisson_nll_rate", "eps"),
]


@pytest.mark.parametrize("case_id, name", HYPER_GRADS, ids=[f"{c}-{n}" for c, n in HYPER_GRADS])
def test_hyperparameter_gradient_matches_finite_differences(case_id, name):
  case = CASE[case_id]
  inputs = case.inputs()
  value = case.kwargs.get(name, registry.get(case.fn.__name__).hyperparameters[name])
  kwargs = {k: v for k, v in case.kwargs.items() if k != name}
  g = jax.grad(lambda h: case.fn(*inputs, **kwargs, **{name: h}))(jnp.float32(value))
  x64 = _f64(inputs)
  h = 1e-6
  fd = (
    case.ref(*x64, **kwargs, **{name: value + h}).mean()
    - case.ref(*x64, **kwargs, **{name: value - h}).mean()
  ) / (2 * h)
  assert abs(fd) > 1e-3  # the hyperparameter matters on these inputs
  _assert_close(g, fd, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------
# extreme inputs
# --------------------------------------------------------------------------


def test_log_cosh_large_residuals():
  r = np.array([1e4, -1e4, 1e30, -1e30, 3e38], np.float32)
  for p, t in ((r, np.zeros_like(r)), (np.zeros_like(r), -r)):
    out = jaxobj.log_cosh(p, t, reduction="none")
    g = jax.grad(lambda p: jaxobj.log_cosh(p, t, reduction="sum"))(p)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(g))
    _assert_close(out, np.abs(r.astype(np.float64)) - np.log(2.0), rtol=1e-6)
    _assert_close(g, np.sign(r), rtol=0, atol=0)


def test_log_cosh_past_float32_cosh_overflow():
  r = np.array([5.0, 20.0, 88.0, 89.5, 95.0, 300.0, -300.0], np.float32)
  out = jaxobj.log_cosh(r, reduction="none")
  _assert_close(out, np.log(np.cosh(r.astype(np.float64))))


@pytest.mark.parametrize(
  "fn, ref",
  [(jaxobj.log_cosh, ref_log_cosh), (jaxobj.pseudo_huber_loss, ref_pseudo_huber)],
  ids=["log_cosh", "pseudo_huber"],
)
def test_small_residuals_keep_relative_precision(fn, ref):
  # Both are r^2 / 2 (1 + O(r^2)) near 0: a non-negative loss must not round to
  # 0 or below while its gradient is non-zero.
  r = np.concatenate([np.geomspace(1e-8, 0.5, 40), -np.geomspace(1e-6, 0.3, 9)])
  r = r.astype(np.float32)
  r64 = r.astype(np.float64)
  series = 0.5 * r64**2 - r64**4 / (12 if fn is jaxobj.log_cosh else 8)
  exact = np.where(np.abs(r64) > 1e-3, ref(r64, 0.0), series)
  out = fn(r, reduction="none")
  _assert_close(out, exact, rtol=1e-5, atol=0)
  u = _rng(13).uniform(0, 1e-3, 64).astype(np.float32)
  assert np.all(np.asarray(fn(u, reduction="none")) >= 0)
  assert float(fn(np.zeros(3, np.float32), reduction="sum")) == 0.0


@pytest.mark.parametrize("delta", [1.0, 0.5, 3.0])
def test_pseudo_huber_huge_residual(delta):
  r = np.array([1e30, -1e30, 1e20, -1e4], np.float32)
  out = jaxobj.pseudo_huber_loss(r, delta=delta, reduction="none")
  g = jax.grad(lambda p: jaxobj.pseudo_huber_loss(p, delta=delta, reduction="sum"))(r)
  gd = jax.grad(lambda d: jaxobj.pseudo_huber_loss(r, delta=d, reduction="sum"))(jnp.float32(delta))
  assert np.all(np.isfinite(out)) and np.all(np.isfinite(g)) and np.isfinite(gd)
  _assert_close(out, ref_pseudo_huber(r.astype(np.float64), 0.0, delta), rtol=1e-5)
  _assert_close(g, delta * np.sign(r), rtol=1e-5)


def test_squared_log_error_negative_values_clamped():
  p = np.array([-0.5, -1.0, -5.0, -1e3, -1e30, 2.0], np.float32)
  t = np.array([1.0, 2.0, 0.5, 3.0, 1.0, -4.0], np.float32)
  out = jaxobj.squared_log_error(p, t, reduction="none")
  g = jax.grad(lambda p: jaxobj.squared_log_error(p, t, reduction="sum"))(p)
  assert np.all(np.isfinite(out)) and np.all(np.isfinite(g))
  _assert_close(out, ref_squared_log_error(p.astype(np.float64), t.astype(np.float64)))
  _assert_close(g[:5], np.zeros(5), rtol=0, atol=0)  # clamped predictions get no gradient
  _assert_close(g[5], 2 * np.log1p(2.0) / 3.0)


def test_smooth_l1_beta_zero_is_absolute_error():
  p = np.array([0.0, 1e-6, -2.0, 3.5, 1e30, 0.25], np.float32)
  t = np.array([0.0, 0.0, 1.0, -1.0, 0.0, 0.5], np.float32)
  out = jaxobj.smooth_l1_loss(p, t, beta=0.0, reduction="none")
  _assert_close(
    out, np.asarray(jaxobj.absolute_error(p, t, reduction="none"), np.float64), rtol=0, atol=0
  )
  g = jax.grad(lambda p: jaxobj.smooth_l1_loss(p, t, beta=0.0, reduction="sum"))(p)
  assert np.all(np.isfinite(g))
  _assert_close(g, np.sign(p - t), rtol=0, atol=0)
  # Traced beta = 0: every residual is on the linear branch, d/dbeta = -1/2 each.
  nz = slice(1, None)
  gb = jax.grad(lambda b: jaxobj.smooth_l1_loss(p[nz], t[nz], beta=b))(jnp.float32(0.0))
  assert np.isfinite(gb)
  _assert_close(gb, -0.5, rtol=1e-6)


def test_smooth_l1_huge_residual_traced_beta():
  p = np.array([1e30, -1e25, 0.3], np.float32)
  t = np.zeros(3, np.float32)
  gb = jax.grad(lambda b: jaxobj.smooth_l1_loss(p, t, beta=b, reduction="sum"))(jnp.float32(1.0))
  g = jax.grad(lambda x: jaxobj.smooth_l1_loss(x, t, beta=jnp.float32(1.0), reduction="sum"))(p)
  assert np.isfinite(gb) and np.all(np.isfinite(g))
  _assert_close(gb, -0.5 - 0.5 - 0.5 * 0.3**2, rtol=1e-6)
  _assert_close(g, [1.0, -1.0, 0.3], rtol=1e-6)


@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_gaussian_nll_tiny_variance_clamps_at_eps(eps):
  v = np.array([1e-30, 0.0, 1e-12, -1.0, eps / 10, 0.5], np.float32)
  mu = np.array([0.0, 0.1, -0.2, 1e-3, 0.0, 0.3], np.float32)
  y = np.array([1e-3, 0.0, 0.0, 0.0, 2e-3, -0.1], np.float32)
  out = jaxobj.gaussian_nll_loss(mu, y, v, eps=eps, reduction="none")
  gm, gv = jax.grad(
    lambda m, s: jaxobj.gaussian_nll_loss(m, y, s, eps=eps, reduction="sum"), argnums=(0, 1)
  )(mu, v)
  assert np.all(np.isfinite(out)) and np.all(np.isfinite(gm)) and np.all(np.isfinite(gv))
  r2 = (y.astype(np.float64) - mu) ** 2
  expected = 0.5 * (np.log(np.maximum(v.astype(np.float64), eps)) + r2 / np.maximum(v, eps))
  _assert_close(out, expected, rtol=1e-5)
  # Below the floor the variance still gets the gradient the loss has at eps
  # (the clamp is invisible to autodiff); above it, the ordinary one.
  var = np.maximum(v.astype(np.float64), eps)
  # (1/eps - r^2/eps^2) cancels: compare to the float32 rounding of its terms.
  _assert_close(gv, 0.5 * (1.0 / var - r2 / var**2), rtol=1e-5, atol=1e-7 / eps)
  _assert_close(gm, -(y - mu.astype(np.float64)) / var, rtol=1e-5)


def test_gaussian_nll_extreme_log_variance():
  # Past s = -88, exp(-s) overflows float32: an exact prediction must still give
  # the finite s / 2, not 0 * inf.
  s = np.array([-30.0, -10.0, 0.0, 30.0, 80.0, -100.0, -150.0, -100.0], np.float32)
  mu = np.zeros(8, np.float32)
  y = np.array([1e-3, 1.0, 1.0, 1e4, 1e4, 0.0, 0.0, 1e-20], np.float32)
  out = jaxobj.gaussian_nll_loss(mu, y, s, log_variance=True, reduction="none")
  gm, gs = jax.grad(
    lambda m, v: jaxobj.gaussian_nll_loss(m, y, v, log_variance=True, reduction="sum"),
    argnums=(0, 1),
  )(mu, s)
  assert np.all(np.isfinite(out)) and np.all(np.isfinite(gm)) and np.all(np.isfinite(gs))
  s64, y64 = s.astype(np.float64), y.astype(np.float64)
  _assert_close(out, 0.5 * (s64 + y64**2 * np.exp(-s64)), rtol=1e-5)
  _assert_close(gs, 0.5 * (1 - y64**2 * np.exp(-s64)), rtol=1e-5)


def test_poisson_large_log_rate():
  x = np.array([50.0, 50.0, 40.0, -50.0], np.float32)
  y = np.array([0.0, 3.0, 100.0, 7.0], np.float32)
  for full in (False, True):
    out = jaxobj.poisson_nll_loss(x, y, full=full, reduction="none")
    g = jax.grad(lambda p: jaxobj.poisson_nll_loss(p, y, full=full, reduction="sum"))(x)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(g))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    _assert_close(out, ref_poisson_nll(x64, y64, full=full), rtol=1e-5)
    _assert_close(g, np.exp(x64) - y64, rtol=1e-5)


@_cases()
def test_nan_targets_masked_equal_slicing(case):
  inputs = case.inputs()
  keep = _rng(21).uniform(size=SHAPE) < 0.6
  keep[0, :2] = [True, False]
  poisoned = [inputs[0]] + [np.where(keep, x, np.nan).astype(np.float32) for x in inputs[1:]]
  sliced = [x[keep] for x in inputs]

  def value_and_grad(args, **kw):
    return jax.value_and_grad(lambda p: case.fn(p, *args[1:], **case.kwargs, **kw))(args[0])

  v, g = value_and_grad(poisoned, where=keep)
  v_ref, g_ref = value_and_grad(sliced)
  assert np.isfinite(v) and np.all(np.isfinite(g))
  _assert_close(v, float(v_ref))
  _assert_close(g[keep], np.asarray(g_ref, np.float64))
  _assert_close(g[~keep], np.zeros((~keep).sum()), rtol=0, atol=0)
  none = case.fn(*poisoned, where=keep, reduction="none", **case.kwargs)
  _assert_close(none[~keep], np.zeros((~keep).sum()), rtol=0, atol=0)
  _assert_close(
    none[keep], np.asarray(case.fn(*sliced, reduction="none", **case.kwargs), np.float64)
  )

  # Everything masked: loss 0 with zero, finite gradients.
  nothing = np.zeros_like(keep)
  for weights in (None, np.ones_like(inputs[0])):
    v, g = value_and_grad(poisoned, where=nothing, weights=weights)
    assert float(v) == 0.0
    assert np.all(np.asarray(g) == 0.0)


# --------------------------------------------------------------------------
# invalid and traced hyperparameters
# --------------------------------------------------------------------------

BAD = [
  ("huber_d1", {"delta": 0.0}),
  ("huber_d1", {"delta": -1.0}),
  ("huber_d1", {"delta": np.float32(-0.5)}),
  ("huber_d1", {"delta": jnp.array(0.0)}),
  ("pseudo_huber_d1", {"delta": 0.0}),
  ("pseudo_huber_d1", {"delta": -2.0}),
  ("quantile_q0.5", {"quantile": -0.1}),
  ("quantile_q0.5", {"quantile": 1.5}),
  ("quantile_q0.5", {"quantile": float("nan")}),
  ("smooth_l1_b1", {"beta": -0.5}),
  ("eps_insensitive_e0.1", {"epsilon": -0.1}),
  ("ape", {"eps": 0.0}),
  ("ape", {"eps": -1e-3}),
  ("gaussian_nll", {"eps": 0.0}),
  ("gaussian_nll", {"eps": -1.0}),
  ("poisson_nll_rate", {"eps": 0.0}),
  ("poisson_nll", {"eps": -1e-8}),
]


@pytest.mark.parametrize(
  "case_id, kwargs", BAD, ids=[f"{c}-{k}={v!r}" for c, kw in BAD for k, v in kw.items()]
)
def test_invalid_hyperparameters_raise(case_id, kwargs):
  case = CASE[case_id]
  (name,) = kwargs
  with pytest.raises(ValueError, match=name):
    case.fn(*case.inputs(), **{**case.kwargs, **kwargs})


@pytest.mark.parametrize(
  "case_id, kwargs",
  [
    ("quantile_q0.5", {"quantile": 0.0}),
    ("quantile_q0.5", {"quantile": 1.0}),
    ("smooth_l1_b1", {"beta": 0.0}),
    ("eps_insensitive_e0.1", {"epsilon": 0.0}),
  ],
)
def test_boundary_hyperparameters_are_valid(case_id, kwargs):
  case = CASE[case_id]
  inputs = case.inputs()
  kw = {**case.kwargs, **kwargs}
  _assert_close(case.fn(*inputs, reduction="none", **kw), case.ref(*_f64(inputs), **kw))


def test_shape_and_dtype_errors():
  mu, y, v = CASE["gaussian_nll"].inputs()
  with pytest.raises(ValueError, match="variance"):
    jaxobj.gaussian_nll_loss(mu, y, v[..., :1])
  with pytest.raises(ValueError, match="targets"):
    jaxobj.huber_loss(mu[:, :1], y)
  with pytest.raises(TypeError, match="variance"):
    jaxobj.gaussian_nll_loss(mu, y, np.ones(SHAPE, np.int32))
  with pytest.raises(TypeError, match="predictions"):
    jaxobj.squared_error(np.ones(SHAPE, np.int32), y)


VMAPS = [
  ("huber_d1", "delta", [0.1, 0.5, 1.0, 2.0]),
  ("pseudo_huber_d1", "delta", [0.1, 1.0, 4.0]),
  ("smooth_l1_b1", "beta", [0.0, 0.3, 1.0]),
  ("quantile_q0.5", "quantile", [0.0, 0.1, 0.5, 0.9, 1.0]),
  ("eps_insensitive_e0.1", "epsilon", [0.0, 0.1, 0.7]),
  ("ape", "eps", [1e-6, 0.5, 1.0]),
  ("gaussian_nll", "eps", [1e-6, 0.5, 1.0]),
  ("poisson_nll_rate", "eps", [1e-8, 0.1, 1.0]),
]


@pytest.mark.parametrize("case_id, name, values", VMAPS, ids=[f"{c}-{n}" for c, n, _ in VMAPS])
def test_vmap_over_hyperparameter_equals_loop(case_id, name, values):
  case = CASE[case_id]
  inputs = case.inputs()
  kwargs = {k: v for k, v in case.kwargs.items() if k != name}
  hs = jnp.asarray(values, jnp.float32)
  for reduction in ("mean", "none"):
    f = lambda h: case.fn(*inputs, reduction=reduction, **kwargs, **{name: h})  # noqa: E731
    batched = jax.vmap(f)(hs)
    jitted = jax.jit(jax.vmap(f))(hs)
    looped = np.stack([np.asarray(f(v)) for v in values])
    assert batched.shape == (len(values),) + looped.shape[1:]
    _assert_close(batched, looped, rtol=1e-6)
    _assert_close(jitted, looped, rtol=1e-6)
    refs = np.stack(
      [
        ref_reduce(case.ref(*_f64(inputs), **kwargs, **{name: v}), None, None, reduction)
        for v in values
      ]
    )
    _assert_close(batched, refs)


def test_every_traceable_hyperparameter_is_vmapped():
  covered = {(CASE[c].fn.__name__, n) for c, n, _ in VMAPS}
  for name in regression.__all__:
    for hp in registry.get(name).traceable:
      assert (name, hp) in covered, (name, hp)


# --------------------------------------------------------------------------
# statistical sanity: the minimizer over a constant prediction
# --------------------------------------------------------------------------


def _grid_argmin(fn, y, spacing=0.005, **kwargs):
  grid = np.arange(y.min() - 0.5, y.max() + 0.5, spacing).astype(np.float32)
  losses = jax.jit(jax.vmap(lambda c: fn(jnp.full(y.shape, c), y, **kwargs)))(grid)
  return grid, np.asarray(losses)


@pytest.mark.parametrize("q", [0.1, 0.25, 0.5, 0.9])
def test_quantile_loss_minimizer_is_empirical_quantile(q):
  y = _rng(31).standard_normal(41).astype(np.float32)  # n*q never an integer
  grid, losses = _grid_argmin(jaxobj.quantile_loss, y, quantile=q)
  y64 = y.astype(np.float64)
  ref = np.array([ref_quantile(c, y64, q).mean() for c in grid.astype(np.float64)])
  _assert_close(losses, ref)
  expected = np.quantile(y64, q, method="inverted_cdf")
  assert abs(grid[np.argmin(losses)] - expected) <= 0.005 + 1e-6


@pytest.mark.parametrize(
  "fn, target",
  [(jaxobj.squared_error, np.mean), (jaxobj.l2_loss, np.mean), (jaxobj.absolute_error, np.median)],
  ids=["squared->mean", "l2->mean", "absolute->median"],
)
def test_minimizer_is_mean_or_median(fn, target):
  y = _rng(32).standard_normal(41).astype(np.float32)
  grid, losses = _grid_argmin(fn, y)
  assert abs(grid[np.argmin(losses)] - target(y.astype(np.float64))) <= 0.005 + 1e-6
  # First-order condition at the closed-form minimizer.
  c = np.float32(target(y.astype(np.float64)))
  g = jax.grad(lambda c: fn(jnp.full(y.shape, c), y))(c)
  assert abs(float(g)) < 1e-5
