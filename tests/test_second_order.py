"""Second derivatives of every registered loss (the conformance test's second order).

Hessian-vector products with respect to the first input are finite at
ordinary inputs and at large ones (the first input times 50, or the loss's
``spec.extreme`` where that is smaller: logits, residuals and scores of
about +-50 and beyond), and
at ordinary inputs they equal float64 central differences of the gradient.
Trainers that use curvature (Newton-type steps, Hessian-free, Sophia, influence
functions, meta-learning through an inner step) need both.

Losses that are linear or piecewise linear in the first input (hinges,
absolute errors, Lovasz hinge, 1-d Wasserstein) have a zero Hessian away
from their kinks, which random inputs miss: they are listed in
``ZERO_HESSIAN`` with the reason, and their H v must be exactly 0 (the rest
must have a nonzero one). Losses that sort or mine (Lovasz softmax, batch-hard
triplets, ranking) are piecewise smooth and are checked like the rest. Losses
whose second derivative is not defined at the drawn inputs would be left out,
with the reason, in ``NOT_TWICE_DIFFERENTIABLE``: none is.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj import registry

# Losses that take a function (a GAN critic) have no example inputs to draw
# (as in test_conformance.py); their own tests cover their gradients.
TAKES_A_FUNCTION = {"wgan_gradient_penalty", "r1_penalty"}
# name -> why its second derivative is not defined at the drawn inputs: none
# so far (kinks and sorts are met with probability 0 by random inputs).
NOT_TWICE_DIFFERENTIABLE: dict[str, str] = {}
# name -> why its Hessian in the first input is exactly 0 (away from kinks):
# H v must then be exactly 0; for every other loss it must not be.
_HINGE = "piecewise linear: a hinge max(0, margin - ...), kinked at the margin"
ZERO_HESSIAN: dict[str, str] = {
  "hinge_loss": _HINGE,
  "multiclass_hinge_loss": _HINGE + " and at ties of the runner-up class",
  "pairwise_hinge_loss": _HINGE,
  "lovasz_hinge_loss": _HINGE + "; the Lovasz extension sorts the errors (kinked at ties)",
  "absolute_error": "piecewise linear: |r|, kinked at r = 0",
  "absolute_percentage_error": "piecewise linear in the predictions: |r| / |y|",
  "epsilon_insensitive_loss": "piecewise linear: max(0, |r| - epsilon)",
  "quantile_loss": "piecewise linear: the pinball loss, kinked at r = 0",
  "wasserstein_1d": "piecewise linear: sorted samples (kinked at ties), absolute differences",
  "wasserstein_1d_histogram": "piecewise linear: absolute differences of the CDFs",
  "kl_divergence": "linear in log_predictions",
  "kl_divergence_with_log_targets": "linear in log_predictions",
  "negative_elbo": "linear in the reconstruction term",
  "rlhf_loss": "linear in the rewards",
}
SPECS = [
  s
  for s in registry.specs(kind="loss")
  if s.name not in TAKES_A_FUNCTION | set(NOT_TWICE_DIFFERENTIABLE)
]
BATCH = (4,)
LARGE = 50.0
EPS = 1e-5  # float64 central differences: truncation ~EPS^2, rounding ~1e-16 / EPS


def _draw(spec):
  rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
  return tuple(jnp.asarray(a) for a in spec.inputs.make(rng, BATCH))


def _is_float(a):
  return jnp.issubdtype(a.dtype, jnp.floating)


def test_exceptions_are_registered_losses():
  names = set(registry.names(kind="loss"))
  assert set(NOT_TWICE_DIFFERENTIABLE) | set(ZERO_HESSIAN) <= names
  assert not set(NOT_TWICE_DIFFERENTIABLE) & set(ZERO_HESSIAN)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_hessian_vector_products_are_finite_and_match_float64_differences(spec):
  args = _draw(spec)
  x, rest = args[0], args[1:]
  assert _is_float(x), f"{spec.name}: the first input is not floating"
  v = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape), x.dtype)

  # One compiled HVP per loss, called at every scale.
  @jax.jit
  def hvp(x, v, *rest):
    return jax.jvp(jax.grad(lambda x: spec.fn(x, *rest)), (x,), (v,))[1]

  # Scaled as in test_conformance's extremes (not negated: some first inputs
  # are log-probabilities, which must stay <= 0).
  for s in (1.0, min(LARGE, spec.extreme)):
    h = np.asarray(hvp(x * s, v, *rest))
    assert np.all(np.isfinite(h)), f"{spec.name}: non-finite H v at inputs times {s}"
    if s == 1.0:
      ordinary = h.astype(np.float64)

  with jax.enable_x64(True):
    up = lambda a: jnp.asarray(np.asarray(a), jnp.float64) if _is_float(a) else a
    x64, v64, rest64 = up(x), up(v), tuple(up(a) for a in rest)
    grad = jax.jit(jax.grad(lambda x, *rest: spec.fn(x, *rest)))
    want = np.asarray(grad(x64 + EPS * v64, *rest64) - grad(x64 - EPS * v64, *rest64)) / (2 * EPS)
  if spec.name in ZERO_HESSIAN:
    assert np.all(ordinary == 0.0), f"{spec.name}: {ZERO_HESSIAN[spec.name]}, yet H v != 0"
  else:
    assert np.max(np.abs(ordinary)) > 0.0, f"{spec.name}: H v is 0; list it in ZERO_HESSIAN"
  err = np.max(np.abs(ordinary - want))
  assert err <= 1e-3 * np.max(np.abs(want)) + 1e-5, (
    f"{spec.name}: H v differs from float64 differences of the gradient by {err:.3g} "
    f"(max |H v| = {np.max(np.abs(want)):.3g})"
  )
