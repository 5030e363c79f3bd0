"""Small numerical building blocks shared across loss families."""

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def abs_with_sign_grad(x: jax.Array) -> jax.Array:
  """``|x|`` whose gradient is ``sign(x)``: 0 at 0, not ``jnp.abs``'s 1.

  The zero subgradient is the one that keeps an L1-penalized weight, or an
  exact prediction under absolute error, where it is.
  """
  return x * jax.lax.stop_gradient(jnp.sign(x))


def varying_axes(x) -> frozenset:
  """The mesh axes ``x`` differs over inside ``shard_map`` (empty outside it)."""
  manual = getattr(jax.typeof(x), "manual_axis_type", None)
  return frozenset(manual.varying) if manual is not None else frozenset()


def vary_like(x, *refs):
  """``x`` (a pytree) marked as varying over every mesh axis ``refs`` vary over.

  Inside ``shard_map`` a loop needs its initial carry to have the type the
  body returns; a carry built from constants is invariant while the body
  mixes in per-device data, so it is cast first. Likewise the inputs of a
  ``custom_vjp`` whose backward pass mixes them: a replicated kernel cast
  here gets its cotangent summed over the devices by JAX, as it should.
  Outside ``shard_map`` nothing changes.
  """
  axes = frozenset().union(*(varying_axes(r) for r in jax.tree.leaves(refs)))

  def one(leaf):
    missing = tuple(sorted(axes - varying_axes(leaf)))
    return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

  return jax.tree.map(one, x) if axes else x


def relative_entropy(p: jax.Array, log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  r""":math:`\sum_k p_k(\log p_k - \log q_k)` along the last axis (the sum of
  :func:`relative_entropy_terms`)."""
  return jnp.sum(relative_entropy_terms(p, log_p, log_q), axis=-1)


def relative_entropy_terms(p: jax.Array, log_p: jax.Array, log_q: jax.Array) -> jax.Array:
  r"""The terms :math:`p_k(\log p_k - \log q_k)` of :func:`relative_entropy`.

  Terms with :math:`p_k = 0` are exactly 0, with zero gradient, whatever
  :math:`\log q_k` and :math:`\log p_k` are there (``-inf`` included): their
  difference is replaced by 0 before it meets :math:`p_k`, so no ``0 * inf``
  is formed and no gradient reaches either log (one select: a lean program).
  """
  return p * jnp.where(p != 0, log_p - log_q, 0.0)


def scale_logits(x: jax.Array, temperature: ArrayLike) -> jax.Array:
  """``x / temperature`` that keeps ``-inf`` logits at ``-inf`` with a finite
  gradient w.r.t. the temperature (``-inf / T`` would send NaN to dT)."""
  finite = x != -jnp.inf  # NaN included: it must reach the value
  return jnp.where(finite, jnp.where(finite, x, 0.0) / temperature, -jnp.inf)


def expm1_minus_x(d: jax.Array) -> jax.Array:
  """``exp(d) - 1 - d`` without cancellation near 0 (Taylor series there).

  Schulman's k3 estimator of a KL divergence, :math:`e^d - 1 - d` with ``d``
  the log-ratio of the two densities: never negative, and accurate to the last
  bit for tiny ``d``, where the direct form rounds to 0 or below.
  """
  small = jnp.abs(d) < 0.5
  ds = jnp.where(small, d, 0.0)
  # 1/2! + d/3! + ... + d^14/16!: the tail is below 1e-16 relative for |d| < 1/2.
  series: jax.Array | float = 0.0
  for n in range(16, 1, -1):
    series = 1.0 / math.factorial(n) + ds * series
  dl = jnp.where(small, 1.0, d)
  return jnp.where(small, ds * ds * series, jnp.expm1(dl) - dl)


def safe_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator`` with 0 where the denominator is 0 (empty vs
  empty), and a gradient free of NaN there; a NaN denominator stays NaN."""
  ok = denominator != 0
  return jnp.where(ok, numerator / jnp.where(ok, denominator, 1.0), 0.0)
