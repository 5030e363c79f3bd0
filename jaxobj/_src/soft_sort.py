r"""Isotonic regression by pool-adjacent-violators, and projections onto the permutahedron.

The soft sorting and ranking operators of Blondel et al. (2020) are
projections onto the permutahedron :math:`\mathcal{P}(w)` (the convex hull of
the permutations of ``w``), which reduce to an isotonic regression on the
sorted input. This module holds the two pieces:

- :func:`isotonic`: :math:`v^\star = \arg\min_{v_1 \ge \dots \ge v_n} \Omega`,
  with the quadratic (``"l2"``) or entropic (``"kl"``) objective, solved by
  pool-adjacent-violators (PAV) over the last axis;
- :func:`project`: :math:`P(z, w) = z - v^\star(z_{\sigma}, w)_{\sigma^{-1}}`,
  with :math:`\sigma` the permutation sorting ``z`` in descending order.

Derivatives are exact. The PAV solution is a partition of the positions into
consecutive blocks, each with a closed-form value (the mean of ``s - w`` over
the block, or ``logsumexp(s) - logsumexp(w)`` over it). The partition is
piecewise constant in the inputs, so PAV runs on ``stop_gradient`` inputs and
only returns the block of each position; the solution is then recomputed from
the block formula, whose derivative with the partition fixed is the
Jacobian of the isotonic regression (block-wise constant: a block mean for
``"l2"``, a block softmax for ``"kl"``). JAX differentiates that formula
directly: reverse mode, forward mode and second derivatives all come out
exact, and no loop is differentiated.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["REGULARIZATIONS", "isotonic", "pav_blocks", "project", "residual"]

REGULARIZATIONS = ("l2", "kl")


def _pav_1d(a0: jax.Array, b0: jax.Array, l2: bool) -> jax.Array:
  """The block index of each position of one non-increasing isotonic fit.

  A block holds two statistics: (sum of ``s - w``, count) for ``"l2"``, with
  value their ratio; (logsumexp of ``s``, logsumexp of ``w``) for ``"kl"``,
  with value their difference. Blocks are pushed left to right, and the top
  two merge while they violate the order (the left value not above the right).
  """
  n = a0.shape[0]

  def value(a, b):
    return a / b if l2 else a - b

  def merge(a1, b1, a2, b2):
    if l2:
      return a1 + a2, b1 + b2
    return jnp.logaddexp(a1, a2), jnp.logaddexp(b1, b2)

  def violated(state):
    a, b, _, top = state
    prev, cur = jnp.maximum(top - 2, 0), top - 1
    return (top >= 2) & (value(a[prev], b[prev]) <= value(a[cur], b[cur]))

  def pool(state):
    a, b, start, top = state
    ma, mb = merge(a[top - 2], b[top - 2], a[top - 1], b[top - 1])
    return a.at[top - 2].set(ma), b.at[top - 2].set(mb), start, top - 1

  def push(i, state):
    a, b, start, top = state
    state = (a.at[top].set(a0[i]), b.at[top].set(b0[i]), start.at[top].set(i), top + 1)
    return lax.while_loop(violated, pool, state)

  init = (jnp.zeros_like(a0), jnp.zeros_like(b0), jnp.zeros(n, jnp.int32), jnp.int32(0))
  _, _, start, top = lax.fori_loop(0, n, push, init)
  # Entries at and above ``top`` are stale (blocks merged away): drop them.
  starts = jnp.where(jnp.arange(n) < top, start, n)
  marks = jnp.zeros(n, jnp.int32).at[starts].add(1, mode="drop")
  return jnp.cumsum(marks) - 1


def pav_blocks(s: jax.Array, w: jax.Array, regularization: str = "l2") -> jax.Array:
  """The PAV partition of :func:`isotonic`: an int32 block index per position
  (0, 0, 1, 2, 2, ... along the last axis). Not differentiated."""
  s, w = lax.stop_gradient(s), lax.stop_gradient(w)
  l2 = regularization == "l2"
  a0, b0 = (s - w, jnp.ones_like(s)) if l2 else (s, w)
  shape = s.shape
  n = shape[-1]
  if n == 0:
    return jnp.zeros(shape, jnp.int32)
  flat = jax.vmap(lambda a, b: _pav_1d(a, b, l2))(a0.reshape(-1, n), b0.reshape(-1, n))
  return flat.reshape(shape)


def _segments(blocks: jax.Array) -> tuple[jax.Array, int]:
  """Block indices made unique across the leading axes, and their number."""
  n = blocks.shape[-1]
  rows = blocks.size // max(n, 1)
  offset = (jnp.arange(rows, dtype=jnp.int32) * n).reshape(blocks.shape[:-1] + (1,))
  return (blocks + offset).reshape(-1), rows * n


def _block_sum(x: jax.Array, seg: jax.Array, num: int) -> jax.Array:
  """The sum of ``x`` over each position's block, at every position."""
  return jax.ops.segment_sum(x.reshape(-1), seg, num)[seg].reshape(x.shape)


def _block_mean(x: jax.Array, seg: jax.Array, num: int) -> jax.Array:
  """The mean of ``x`` over each position's block, at every position."""
  return _block_sum(x, seg, num) / _block_sum(jnp.ones_like(x), seg, num)


def _block_logsumexp(x: jax.Array, seg: jax.Array, num: int) -> jax.Array:
  """``logsumexp`` of ``x`` over each position's block, at every position."""
  m = lax.stop_gradient(jax.ops.segment_max(x.reshape(-1), seg, num)[seg].reshape(x.shape))
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  return jnp.log(_block_sum(jnp.exp(x - m), seg, num)) + m


@functools.partial(jax.jit, static_argnames="regularization")
def isotonic(s: jax.Array, w: jax.Array, regularization: str = "l2") -> jax.Array:
  r"""Non-increasing isotonic regression over the last axis.

  ``"l2"``: :math:`\arg\min_{v_1 \ge \dots \ge v_n} \tfrac12 \lVert v - (s - w)\rVert^2`;
  ``"kl"``: :math:`\arg\min_{v_1 \ge \dots \ge v_n} \langle e^{s - v}, 1\rangle +
  \langle e^{w}, v\rangle`. Exact derivatives in ``s`` and ``w`` (see the module).
  """
  blocks = pav_blocks(s, w, regularization)
  seg, num = _segments(blocks)
  if regularization == "l2":
    return _block_mean(s - w, seg, num)
  return _block_logsumexp(s, seg, num) - _block_logsumexp(w, seg, num)


@functools.partial(jax.jit, static_argnames="regularization")
def residual(s: jax.Array, w: jax.Array, regularization: str = "l2") -> jax.Array:
  """``s - isotonic(s, w)``, computed without cancellation.

  Where ``s`` is large (``rho / eps`` for a small ``eps``) and the result is
  small (the sorted values), ``s - v`` would lose the digits of the result to
  rounding at the scale of ``s``. Block by block it is ``(s - mean(s)) +
  mean(w)`` (``"l2"``) or ``(s - logsumexp(s)) + logsumexp(w)`` (``"kl"``),
  each term at its own scale.
  """
  blocks = pav_blocks(s, w, regularization)
  seg, num = _segments(blocks)
  if regularization == "l2":
    return (s - _block_mean(s, seg, num)) + _block_mean(w, seg, num)
  return (s - _block_logsumexp(s, seg, num)) + _block_logsumexp(w, seg, num)


@functools.partial(jax.jit, static_argnames="regularization")
def project(z: jax.Array, w: jax.Array, regularization: str = "l2") -> jax.Array:
  r"""The projection :math:`P(z, w)` onto the permutahedron of ``w`` over the last axis.

  ``w`` must be sorted in descending order along the last axis (it is not
  checked). ``"l2"`` is the Euclidean projection; ``"kl"`` is :math:`\log` of
  the KL projection of :math:`e^z` onto the permutahedron of :math:`e^w`.
  """
  order = jnp.argsort(-lax.stop_gradient(z), axis=-1, stable=True)
  s = jnp.take_along_axis(z, order, axis=-1)
  primal = residual(s, jnp.broadcast_to(w, s.shape), regularization)
  inverse = jnp.argsort(order, axis=-1)
  return jnp.take_along_axis(primal, inverse, axis=-1)
