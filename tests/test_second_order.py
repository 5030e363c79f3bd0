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
from their kinks, which random inputs miss: they are registered with the
reason (``LossSpec.zero_hessian``), and their H v must be exactly 0 (the rest
must have a nonzero one). Losses that sort or mine (Lovasz softmax, batch-hard
triplets, ranking) are piecewise smooth and are checked like the rest. Losses
whose second derivative is not defined at the drawn inputs would be left out,
with the reason, in ``NOT_TWICE_DIFFERENTIABLE`` (the Sinkhorn divergence, whose
gradient holds its converged potentials fixed).
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj import registry

# name -> why its second derivative is not defined at the drawn inputs (kinks
# and sorts are met with probability 0 by random inputs, so none of those).
NOT_TWICE_DIFFERENTIABLE: dict[str, str] = {
  "sinkhorn_divergence": "its gradient comes from the envelope theorem at converged potentials, "
  "which are held fixed: exact first derivatives, not the Hessian",
}
# Losses whose Hessian in the first input is exactly 0 away from kinks say why
# at registration (``zero_hessian``): H v must then be exactly 0, and for
# every other loss it must not be. Losses without example inputs (they take
# a function) are covered by their own tests.
SPECS = [
  s
  for s in registry.specs(kind="loss")
  if s.inputs is not None and s.name not in NOT_TWICE_DIFFERENTIABLE
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
  zero = {s.name for s in registry.specs() if s.zero_hessian}
  assert set(NOT_TWICE_DIFFERENTIABLE) <= names
  assert zero <= names and len(zero) >= 14
  assert not set(NOT_TWICE_DIFFERENTIABLE) & zero


@pytest.mark.structure
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
  if spec.zero_hessian:
    assert np.all(ordinary == 0.0), f"{spec.name}: {spec.zero_hessian}, yet H v != 0"
  else:
    assert np.max(np.abs(ordinary)) > 0.0, (
      f"{spec.name}: H v is 0; register it with zero_hessian= (why)"
    )
  err = np.max(np.abs(ordinary - want))
  assert err <= 1e-3 * np.max(np.abs(want)) + 1e-5, (
    f"{spec.name}: H v differs from float64 differences of the gradient by {err:.3g} "
    f"(max |H v| = {np.max(np.abs(want)):.3g})"
  )
