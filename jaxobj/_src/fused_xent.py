"""The tiled kernel behind :func:`jaxobj.fused_linear_cross_entropy`.

The loss of ``hidden @ kernel`` against integer targets is computed one chunk
of tokens at a time: a chunk's logits ``[token_block, V]`` are the only large
array alive, so memory does not grow with the number of tokens, and (as the
chunk shrinks when ``V`` grows) barely with the vocabulary.

Two ``custom_vjp`` primitives share one sweep over the chunks:

* :func:`weighted_total` returns ``sum_n a_n * loss_n`` for per-token
  coefficients ``a`` (the reduction's weights). Its forward pass computes the
  gradients in the same sweep (the softmax of a chunk is at hand there), and
  the backward pass only scales them by the scalar cotangent: 6 N·D·V FLOPs for
  the value and gradient, as many as the unfused loss, with no ``[N, V]``
  array.
* :func:`token_values` returns the per-token losses (``reduction="none"``). A
  per-token cotangent cannot be folded in before it is known, so its backward
  pass sweeps again with the cotangent as the coefficients (8 N·D·V FLOPs).

The gradient with respect to a chunk's logits is formed from them one
vocabulary block of ``vocab_block`` columns at a time, so the logits are the
only ``[token_block, V]`` buffer, and the kernel's gradient is accumulated in
place block by block, so no ``[D, V]`` temporary is created besides the
accumulator (which becomes the output).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxobj._src import numerics

# Elements in a chunk's one live [tokens, V] buffer, its logits (8 MiB in
# float32), and in one block of the logits' gradient (formed from them a block
# of columns at a time): large enough for efficient matmuls, small next to the
# [N, V] logits this replaces.
CHUNK_ELEMENTS = 1 << 21
KERNEL_BLOCK_ELEMENTS = 1 << 19


class Options(NamedTuple):
  """Which optional terms are on (static: a Python 0 or None skips the work)."""

  smoothing: bool
  z_loss: bool
  soft_cap: bool


class Blocks(NamedTuple):
  tokens: int  # tokens per chunk
  vocab: int  # columns of the gradient formed at a time


def default_blocks(dim: int, vocab: int, token_block=None, vocab_block=None) -> Blocks:
  """Chunk sizes that keep a chunk's ``[tokens, V]`` logits near
  ``CHUNK_ELEMENTS`` elements (at least one token)."""
  if token_block is None:
    token_block = max(1, min(1024, CHUNK_ELEMENTS // vocab))
  if vocab_block is None:
    vocab_block = max(128, KERNEL_BLOCK_ELEMENTS // dim)
  return Blocks(int(token_block), int(min(vocab_block, vocab)))


def compute_dtype(*arrays):
  """float32 for low-precision inputs, float64 when an input is float64."""
  return jnp.result_type(jnp.float32, *(x.dtype for x in arrays))


def _dot(a, b, contract, dtype):
  """A matmul accumulated in ``dtype`` whatever the input dtypes."""
  return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=dtype)


def _chunk(h, y, a, kernel, kernel_sum, hyper, opts: Options, grads: bool):
  """Loss terms of one chunk of tokens, and what its gradients need.

  Returns ``(values, w, rows, hyper_grads)``: per-token losses, the chunk's
  logits ``w`` (``tanh(z / cap)`` with a cap), the per-token coefficients
  from which :func:`_backprop_chunk` forms the gradient with respect to ``z``,
  and the ``a``-weighted gradients with respect to ``(smoothing, z_loss,
  soft_cap)``. The last three are None unless ``grads``.

  Every quantity is a row reduction of ``w``, so ``w`` is the only ``[n, V]``
  array kept; the gradient is formed from it one vocabulary block at a time.
  """
  smoothing, z_loss, cap = hyper
  vocab = kernel.shape[1]
  z = _dot(h, kernel, ((1,), (0,)), compute_dtype(h, kernel))  # [n, V]
  rows = jnp.arange(y.shape[0])
  in_range = (y >= 0) & (y < vocab)
  y_safe = jnp.where(in_range, y, 0)

  # With a cap, the logits are x = cap w with w = tanh(z / cap). Only w is
  # kept, and every reduction reads it directly (cap > 0 factors out of the
  # max and the sum), so XLA keeps one [n, V] buffer, not one for w and one
  # for x.
  scale = cap if opts.soft_cap else 1.0
  w = jnp.tanh(z / cap) if opts.soft_cap else z
  m_w = jnp.max(w, axis=1)
  m = scale * m_w
  if opts.soft_cap:
    # exp(cap (w - max w)) with the cap as a per-row vector: a scalar
    # constant broadcast to [n, V] is kept out of XLA:CPU's fused reduction
    # and made a buffer of its own (as is cap * w), a second [n, V] array
    # where the chunk loop is unrolled (a single chunk, at small sizes).
    # XLA does not fold 0 * m_w (NaN semantics), so the vector stays one.
    cap_rows = m_w * 0.0 + scale
    sum_exp = jnp.sum(jnp.exp((w - m_w[:, None]) * cap_rows[:, None]), axis=1)
  else:
    sum_exp = jnp.sum(jnp.exp(w - m[:, None]), axis=1)
  lse = m + jnp.log(sum_exp)
  x_y = scale * w[rows, y_safe]
  values = lse - x_y
  if opts.soft_cap:
    sum_x = scale * jnp.sum(w, axis=1)
  elif opts.smoothing:  # sum_k z_k = h . sum_k W_k: no pass over the chunk
    sum_x = h.astype(z.dtype) @ kernel_sum
  if opts.smoothing:
    values = (1.0 - smoothing) * values + smoothing * (lse - sum_x / vocab)
  if opts.z_loss:
    values = values + z_loss * jnp.square(lse)
  values = jnp.where(in_range, values, jnp.nan)
  if not grads:
    return values, None, None, None

  # a * d loss / d x = c p - u - t onehot(y), with p the softmax,
  # c = a (1 + 2 beta lse), u = a alpha / V and t = a (1 - alpha).
  c = a * (1.0 + 2.0 * z_loss * lse) if opts.z_loss else a
  c = jnp.where(in_range, c, jnp.nan)  # a target outside [0, V) gives NaN
  t = a * (1.0 - smoothing) if opts.smoothing else a
  u = a * smoothing / vocab if opts.smoothing else jnp.zeros_like(a)
  zero = jnp.zeros((), z.dtype)
  d_smoothing = jnp.sum(a * (x_y - sum_x / vocab)) if opts.smoothing else zero
  d_z = jnp.sum(a * jnp.square(lse)) if opts.z_loss else zero
  if opts.soft_cap:
    # x = cap tanh(z / cap) is homogeneous of degree 1 in (z, cap), so
    # dx/dcap = (x - z dx/dz) / cap and the cap's gradient is
    # (sum(G * x) - sum(g * z)) / cap with G = dloss/dx and g = dloss/dz. Of
    # sum(G * x) = sum(c p x) - sum(u sum_x) - sum(t x_y), the first part is
    # summed with the gradient's blocks (see ``_backprop_chunk``); sum(g * z)
    # equals sum(h * dh), which the sweep subtracts once dh is known.
    d_cap = jnp.sum(-u * sum_x - t * x_y) / cap
  else:
    d_cap = zero
  return values, w, (y_safe, lse, c, u, t), (d_smoothing, d_z, d_cap)


def _backprop_chunk(h, w, rows, kernel, dkernel, cap, opts: Options, block: int):
  """The chunk's ``dh = g @ kernel.T`` and ``dkernel += h.T @ g``, with the
  gradient ``g`` with respect to the uncapped logits formed from ``w`` (see
  :func:`_chunk`) one block of columns at a time (never as a whole ``[n, V]``
  array) and the kernel's gradient updated in place. Returns ``(dh, dkernel,
  sum(c p x))``, the last a part of the cap's gradient (0 without a cap).

  The last block is shifted left to end at ``V`` (a dynamic slice clamps it);
  the columns it shares with the previous block are zeroed in its ``g`` so
  they are not counted twice.
  """
  y, lse, c, u, t = rows
  vocab = w.shape[1]
  num_blocks = -(-vocab // block)

  def body(b, carry):
    dh, dk, cpx = carry
    start = jnp.minimum(b * block, vocab - block)
    cols = start + jnp.arange(block)
    w_b = lax.dynamic_slice_in_dim(w, start, block, axis=1)
    x_b = cap * w_b if opts.soft_cap else w_b
    fresh = (cols >= b * block)[None, :]
    cp_b = c[:, None] * jnp.exp(x_b - lse[:, None])
    g_b = cp_b - u[:, None] - jnp.where(cols[None, :] == y[:, None], t[:, None], 0.0)
    if opts.soft_cap:  # dx/dz = 1 - tanh^2
      cpx = cpx + jnp.sum(jnp.where(fresh, cp_b * x_b, 0.0))
      g_b = g_b * ((1.0 - w_b) * (1.0 + w_b))
    g_b = jnp.where(fresh, g_b, 0.0)
    k_b = lax.dynamic_slice_in_dim(kernel, start, block, axis=1)
    dh = dh + _dot(g_b, k_b, ((1,), (1,)), dh.dtype)
    update = _dot(h, g_b, ((0,), (0,)), dk.dtype)  # [D, block]
    current = lax.dynamic_slice_in_dim(dk, start, block, axis=1)
    return dh, lax.dynamic_update_slice_in_dim(dk, current + update, start, axis=1), cpx

  init = (jnp.zeros(h.shape, dkernel.dtype), dkernel, jnp.zeros((), dkernel.dtype))
  return lax.fori_loop(0, num_blocks, body, numerics.vary_like(init, h, w, rows, kernel, cap))


def sweep(h, y, a, kernel, hyper, opts: Options, blocks: Blocks, grads: bool):
  """Runs :func:`_chunk` over all tokens.

  Returns ``(total, values, dh, dkernel, hyper_grads)`` with ``total = sum(a *
  values)``; the gradient entries are None unless ``grads``.

  When the chunk size does not divide the number of tokens, the last chunk is
  shifted back to end at the last token (one compiled loop body, no second
  set of buffers for a remainder); the tokens it shares with the previous
  chunk get the coefficient 0 there, so they count once.
  """
  n, dim = h.shape
  tn = min(blocks.tokens, n)
  dtype = compute_dtype(h, kernel)
  a = a.astype(dtype)
  hyper = tuple(x.astype(dtype) for x in hyper)
  kernel_sum = jnp.sum(kernel, axis=1, dtype=dtype) if opts.smoothing else None

  def body(i, carry):
    total, values, dh, dk, dhyper = carry
    start = jnp.minimum(i * tn, n - tn)
    h_c = lax.dynamic_slice_in_dim(h, start, tn, axis=0)
    y_c = lax.dynamic_slice_in_dim(y, start, tn, axis=0)
    fresh = start + jnp.arange(tn) >= i * tn
    a_c = jnp.where(fresh, lax.dynamic_slice_in_dim(a, start, tn, axis=0), 0.0)
    v, w, rows, d_hyper = _chunk(h_c, y_c, a_c, kernel, kernel_sum, hyper, opts, grads)
    total = total + jnp.sum(jnp.where(a_c != 0, a_c * v, 0.0))
    values = lax.dynamic_update_slice_in_dim(values, v, start, axis=0)
    if grads:
      # dh_c has zero rows where a_c is 0.
      dh_c, dk, cpx = _backprop_chunk(h_c, w, rows, kernel, dk, hyper[2], opts, blocks.vocab)
      dh = lax.dynamic_update_slice_in_dim(
        dh, lax.dynamic_slice_in_dim(dh, start, tn, axis=0) + dh_c, start, axis=0
      )
      if opts.soft_cap:  # the rest of the cap's gradient (see _chunk)
        d_hyper = d_hyper[:2] + (d_hyper[2] + (cpx - jnp.sum(h_c * dh_c)) / hyper[2],)
      dhyper = tuple(total_d + chunk_d for total_d, chunk_d in zip(dhyper, d_hyper))
    return total, values, dh, dk, dhyper

  zero = jnp.zeros((), dtype)
  init = (
    zero,
    jnp.zeros((n,), dtype),
    jnp.zeros((n, dim), dtype) if grads else None,
    jnp.zeros(kernel.shape, dtype) if grads else None,
    (zero, zero, zero),
  )
  if n == 0:  # no tokens: a total of 0 with zero gradients
    return init
  return lax.fori_loop(0, -(-n // tn), body, numerics.vary_like(init, h, y, a, kernel, hyper))


def _hyper_cotangents(hyper, dhyper, scale):
  return tuple((scale * d).astype(x.dtype) for x, d in zip(hyper, dhyper))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def weighted_total(h, y, a, kernel, hyper, opts: Options, blocks: Blocks):
  """``sum_n a_n * loss_n`` with a single-sweep gradient (see the module docs)."""
  return sweep(h, y, a, kernel, hyper, opts, blocks, grads=False)[0]


def _weighted_total_fwd(h, y, a, kernel, hyper, opts, blocks):
  total, values, dh, dk, dhyper = sweep(h, y, a, kernel, hyper, opts, blocks, grads=True)
  # Stored in the inputs' dtypes: a bfloat16 kernel keeps a bfloat16 gradient.
  return total, (values, dh.astype(h.dtype), dk.astype(kernel.dtype), dhyper, hyper, y)


def _weighted_total_bwd(opts, blocks, res, ct):
  values, dh, dk, dhyper, hyper, y = res
  # A coefficient of 0 (a masked token) gets the gradient 0 even where its
  # value would be NaN (a target outside the vocabulary).
  d_a = ct * jnp.where(jnp.isnan(values), 0.0, values)
  return (
    (ct * dh).astype(dh.dtype),
    _int_zeros(y),
    d_a,
    (ct * dk).astype(dk.dtype),
    _hyper_cotangents(hyper, dhyper, ct),
  )


weighted_total.defvjp(_weighted_total_fwd, _weighted_total_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def token_values(h, y, kernel, hyper, opts: Options, blocks: Blocks):
  """Per-token losses; the backward pass recomputes each chunk's logits."""
  a = jnp.zeros(y.shape, compute_dtype(h, kernel))
  return sweep(h, y, a, kernel, hyper, opts, blocks, grads=False)[1]


def _token_values_fwd(h, y, kernel, hyper, opts, blocks):
  return token_values(h, y, kernel, hyper, opts, blocks), (h, y, kernel, hyper)


def _token_values_bwd(opts, blocks, res, ct):
  h, y, kernel, hyper = res
  _, _, dh, dk, dhyper = sweep(h, y, ct, kernel, hyper, opts, blocks, grads=True)
  return (
    dh.astype(h.dtype),
    _int_zeros(y),
    dk.astype(kernel.dtype),
    _hyper_cotangents(hyper, dhyper, 1.0),
  )


token_values.defvjp(_token_values_fwd, _token_values_bwd)


def _int_zeros(y):
  """The cotangent of an integer input: float0 zeros."""
  return np.zeros(y.shape, dtype=jax.dtypes.float0)
