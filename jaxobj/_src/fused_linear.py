"""The chunked engine behind the fused-linear losses (log-probabilities,
preference, policy-gradient and distillation losses of ``hidden @ kernel``).

A loss of the logits ``hidden @ kernel`` whose value is a sum of per-token
terms needs the ``[tokens, V]`` logits only one token at a time. The engine
takes the per-token part as a function ``fn(logits, aux, hyper)`` of one
chunk's logits (a tuple: one ``[n, V]`` array per projection, so a student
and a teacher can be compared), that chunk's slices of per-token ``aux``
arrays (targets, old log-probabilities, advantages) and scalar ``hyper``
parameters, returning a tuple of ``[n]`` per-token outputs. It runs ``fn`` one
chunk of tokens at a time, so no ``[N, V]`` array exists, and differentiates it
with ``jax.vjp`` on the chunk: the gradient with respect to a chunk's logits
is an ``[n, V]`` array, from which ``d hidden = g @ kernel.T`` and the
kernel's gradient (accumulated in place a block of vocabulary columns at a
time, so no ``[D, V]`` temporary besides the accumulator) are formed.

Two ``custom_vjp`` entry points share the sweep:

* :func:`token_outputs` returns the per-token outputs. Their cotangents are
  only known in the backward pass, which sweeps again (recomputing each
  chunk's logits): 2 N·D·V FLOPs per projection forward, 6 backward.
* :func:`weighted_total` returns ``sum_n coef_n * fn(...)[0][n]`` for known
  per-token coefficients (a reduction's weights). Its forward pass forms the
  gradients in the same sweep, and the backward pass only scales them by the
  scalar cotangent: the FLOPs of the unfused loss.

A projection that is not differentiated (a teacher or reference model under
``jax.lax.stop_gradient``) is detected with ``symbolic_zeros`` and gets no
backward matmuls at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxobj._src import numerics

# Elements of one chunk's [tokens, V] logits (8 MiB in float32). ``fn`` and
# its vjp keep a few arrays of this size alive at once.
CHUNK_ELEMENTS = 1 << 21
# Elements of one block of the kernel's gradient update, [D, columns].
KERNEL_BLOCK_ELEMENTS = 1 << 19

PerToken = Callable[[tuple, tuple, tuple], tuple]


class Blocks(NamedTuple):
  tokens: int  # tokens per chunk
  vocab: int  # kernel-gradient columns updated at a time


def default_blocks(
  dims: Sequence[int], vocab: int, token_block: int | None = None, vocab_block: int | None = None
) -> Blocks:
  """Chunk sizes that keep one chunk's ``[tokens, V]`` logits near
  ``CHUNK_ELEMENTS`` elements per projection (at least one token)."""
  per_token = vocab * max(1, len(dims))
  if token_block is None:
    token_block = max(1, min(1024, CHUNK_ELEMENTS // per_token))
  if vocab_block is None:
    vocab_block = max(128, KERNEL_BLOCK_ELEMENTS // max(dims))
  return Blocks(int(token_block), int(min(vocab_block, vocab)))


def check_blocks(token_block: Any, vocab_block: Any) -> None:
  """Raises for a block size that is not a positive integer or None."""
  for name, block in (("token_block", token_block), ("vocab_block", vocab_block)):
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
      raise ValueError(f"{name} must be a positive integer or None, got {block!r}.")


def compute_dtype(*arrays) -> Any:
  """float32 for low-precision inputs, float64 when an input is float64."""
  return jnp.result_type(jnp.float32, *(x.dtype for x in arrays))


def _dot(a, b, contract, dtype):
  return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=dtype)


def _is_float(x) -> bool:
  return jnp.issubdtype(x.dtype, jnp.floating)


def _kernel_grad(h, g, dk, block: int):
  """``dk + h.T @ g``, updated ``block`` columns at a time in place.

  The last block is shifted left to end at ``V``; the columns it shares with
  the previous block are zeroed in its ``g`` so they count once.
  """
  vocab = g.shape[1]

  def body(b, dk):
    start = jnp.minimum(b * block, vocab - block)
    fresh = (start + jnp.arange(block) >= b * block)[None, :]
    g_b = jnp.where(fresh, lax.dynamic_slice_in_dim(g, start, block, axis=1), 0.0)
    update = _dot(h, g_b, ((0,), (0,)), dk.dtype)  # [D, block]
    current = lax.dynamic_slice_in_dim(dk, start, block, axis=1)
    return lax.dynamic_update_slice_in_dim(dk, current + update, start, axis=1)

  return lax.fori_loop(0, -(-vocab // block), body, dk)


def scaled_log_probs(z, y, temperature, cap, soft_cap: bool):
  """One chunk's logits ``x = c tanh(z / c) / T`` (no cap unless ``soft_cap``),
  their log-sum-exp and the targets' log-probabilities (NaN for a target
  outside ``[0, V)``): the start of every per-token function on log-probs."""
  x = cap * jnp.tanh(z / cap) if soft_cap else z
  x = x / temperature
  in_range = (y >= 0) & (y < x.shape[1])
  lse = jax.nn.logsumexp(x, axis=1)
  x_y = jnp.take_along_axis(x, jnp.where(in_range, y, 0)[:, None], axis=1)[:, 0]
  return x, lse, jnp.where(in_range, x_y - lse, jnp.nan)


def entropies(x, lse):
  """Per-row entropies of ``softmax(x)`` given its log-sum-exp."""
  return lse - jnp.sum(jnp.exp(x - lse[:, None]) * x, axis=1)


def _split(aux):
  """Indices of the differentiable (floating) ``aux`` arrays."""
  return tuple(i for i, a in enumerate(aux) if _is_float(a))


def _sweep(fn, hs, ks, aux, hyper, blocks, cot, wrt):
  """Runs ``fn`` over all tokens, chunk by chunk.

  ``cot`` is None for the outputs alone, or a tuple of per-token cotangents
  (one per output, or None for an output that gets none), in which case the
  gradients are formed too: ``wrt`` says which projections get them.
  Returns ``(outputs, grads)`` with ``grads = (dhs, dks, daux, dhyper)``
  (None entries where not wanted).

  When the chunk size does not divide the tokens, the last chunk is shifted
  back to end at the last token (one loop body, no remainder buffers); its
  tokens already seen get the cotangent 0 there, so they count once.
  """
  n = hs[0].shape[0]
  tn = min(blocks.tokens, n)
  dtype = compute_dtype(*hs, *ks)
  hyper = tuple(jnp.asarray(x, dtype) for x in hyper)
  floats = _split(aux)
  probe = _output_shapes(fn, hs, ks, aux, hyper)
  grads = cot is not None
  outputs = tuple(jnp.zeros((n,), o.dtype) for o in probe)
  if grads:
    dhs = tuple(jnp.zeros(h.shape, dtype) if w else None for h, w in zip(hs, wrt))
    dks = tuple(jnp.zeros(k.shape, dtype) if w else None for k, w in zip(ks, wrt))
    daux = tuple(jnp.zeros(aux[i].shape, dtype) for i in floats)
    dhyper = tuple(jnp.zeros((), dtype) for _ in hyper)
    carry = (outputs, (dhs, dks, daux, dhyper))
  else:
    carry = (outputs, None)
  if n == 0:
    return carry

  def body(i, carry):
    outputs, acc = carry
    start = jnp.minimum(i * tn, n - tn)
    fresh = start + jnp.arange(tn) >= i * tn
    h_c = tuple(lax.dynamic_slice_in_dim(h, start, tn, axis=0) for h in hs)
    aux_c = tuple(lax.dynamic_slice_in_dim(a, start, tn, axis=0) for a in aux)
    logits = tuple(_dot(h, k, ((1,), (0,)), dtype) for h, k in zip(h_c, ks))
    if not grads:
      out = fn(logits, aux_c, hyper)
      outputs = tuple(
        lax.dynamic_update_slice_in_dim(o, v, start, axis=0) for o, v in zip(outputs, out)
      )
      return outputs, acc

    def chunk_fn(logits, float_aux, hyper):
      merged = list(aux_c)
      for i, a in zip(floats, float_aux):
        merged[i] = a
      return fn(logits, tuple(merged), hyper)

    out, vjp = jax.vjp(chunk_fn, logits, tuple(aux_c[i] for i in floats), hyper)
    cot_c = tuple(
      jnp.zeros_like(o)
      if c is None
      else jnp.where(fresh, lax.dynamic_slice_in_dim(c, start, tn, axis=0), 0.0).astype(o.dtype)
      for o, c in zip(out, cot)
    )
    d_logits, d_aux, d_hyper = vjp(cot_c)
    outputs = tuple(
      lax.dynamic_update_slice_in_dim(o, v, start, axis=0) for o, v in zip(outputs, out)
    )
    dhs, dks, daux, dhyper = acc
    new_dhs, new_dks = [], []
    for j, (h, k, g) in enumerate(zip(h_c, ks, d_logits)):
      if not wrt[j]:
        new_dhs.append(None)
        new_dks.append(None)
        continue
      g = g.astype(dtype)
      dh_c = _dot(g, k, ((1,), (1,)), dtype)  # [n, D]; zero rows where cot is 0
      current = lax.dynamic_slice_in_dim(dhs[j], start, tn, axis=0)
      new_dhs.append(lax.dynamic_update_slice_in_dim(dhs[j], current + dh_c, start, axis=0))
      new_dks.append(_kernel_grad(h, g, dks[j], blocks.vocab))
    daux = tuple(
      lax.dynamic_update_slice_in_dim(
        d, lax.dynamic_slice_in_dim(d, start, tn, axis=0) + da.astype(dtype), start, axis=0
      )
      for d, da in zip(daux, d_aux)
    )
    dhyper = tuple(t + dh.astype(dtype) for t, dh in zip(dhyper, d_hyper))
    return outputs, (tuple(new_dhs), tuple(new_dks), daux, dhyper)

  carry = numerics.vary_like(carry, *hs, *aux, *ks, hyper, cot)
  return lax.fori_loop(0, -(-n // tn), body, carry)


def _unwrap(tree):
  """Values and ``perturbed`` flags of a ``symbolic_zeros`` primal pytree."""
  leaves, treedef = jax.tree.flatten(tree, is_leaf=lambda x: hasattr(x, "perturbed"))
  values = [getattr(x, "value", x) for x in leaves]
  flags = [bool(getattr(x, "perturbed", True)) for x in leaves]
  return jax.tree.unflatten(treedef, values), jax.tree.unflatten(treedef, flags)


def _output_shapes(fn, hs, ks, aux, hyper):
  """The dtypes of ``fn``'s outputs (traced on one token, nothing computed)."""
  dtype = compute_dtype(*hs, *ks)
  return jax.eval_shape(
    lambda *args: fn(*args),
    tuple(jax.ShapeDtypeStruct((1, k.shape[1]), dtype) for k in ks),
    tuple(jax.ShapeDtypeStruct((1,) + a.shape[1:], a.dtype) for a in aux),
    tuple(jax.ShapeDtypeStruct((), dtype) for _ in hyper),
  )


def _cotangents(hs, ks, aux, hyper, grads, wrt, scale=None):
  """The cotangents of ``(hiddens, kernels, aux, hyper)`` in the inputs'
  dtypes, None for what was not differentiated, float0 for integers."""
  dhs, dks, daux, dhyper = grads
  s = (lambda x: x) if scale is None else (lambda x: scale * x)
  floats = _split(aux)
  aux_ct: list[Any] = [np.zeros(a.shape, jax.dtypes.float0) for a in aux]
  for i, d in zip(floats, daux):
    aux_ct[i] = s(d).astype(aux[i].dtype)
  return (
    tuple(None if d is None or not w else s(d).astype(h.dtype) for h, d, w in zip(hs, dhs, wrt)),
    tuple(None if d is None or not w else s(d).astype(k.dtype) for k, d, w in zip(ks, dks, wrt)),
    tuple(aux_ct),
    tuple(s(d).astype(jnp.asarray(x).dtype) for x, d in zip(hyper, dhyper)),
  )


def _wrt(hs_flags, ks_flags):
  """A projection gets gradients when its hidden states or kernel do."""
  return tuple(bool(a or b) for a, b in zip(hs_flags, ks_flags))


# ----------------------------------------------------------- per-token outputs


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def token_outputs(fn: PerToken, hiddens, kernels, aux, hyper, blocks: Blocks):
  """The per-token outputs of ``fn`` over all tokens (see the module docs)."""
  return _sweep(fn, hiddens, kernels, aux, hyper, blocks, None, None)[0]


def _token_outputs_fwd(fn, hiddens, kernels, aux, hyper, blocks):
  (hs, ks, aux, hyper), flags = _unwrap((hiddens, kernels, aux, hyper))
  wrt = _wrt(flags[0], flags[1])
  out = _sweep(fn, hs, ks, aux, hyper, blocks, None, None)[0]
  return out, (hs, ks, aux, hyper, wrt)


def _token_outputs_bwd(fn, blocks, res, cts):
  hs, ks, aux, hyper, wrt = res
  cot = tuple(None if isinstance(c, SymbolicZero) or c is None else c for c in cts)
  grads = _sweep(fn, hs, ks, aux, hyper, blocks, cot, wrt)[1]
  return _cotangents(hs, ks, aux, hyper, grads, wrt)


token_outputs.defvjp(_token_outputs_fwd, _token_outputs_bwd, symbolic_zeros=True)


# ------------------------------------------------------ weighted total, 1 sweep


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6))
def weighted_total(fn: PerToken, hiddens, kernels, aux, hyper, coef, blocks: Blocks):
  """``sum_n coef_n * fn(...)[0][n]``, its gradients formed in the forward sweep."""
  (values,) = _sweep(fn, hiddens, kernels, aux, hyper, blocks, None, None)[0][:1]
  return jnp.sum(jnp.where(coef != 0, coef * values, 0.0))


def _weighted_total_fwd(fn, hiddens, kernels, aux, hyper, coef, blocks):
  (hs, ks, aux, hyper, coef), flags = _unwrap((hiddens, kernels, aux, hyper, coef))
  wrt = _wrt(flags[0], flags[1])
  n_out = len(_output_shapes(fn, hs, ks, aux, hyper))
  cot = (coef,) + (None,) * (n_out - 1)
  outputs, grads = _sweep(fn, hs, ks, aux, hyper, blocks, cot, wrt)
  values = outputs[0]
  total = jnp.sum(jnp.where(coef != 0, coef * values, 0.0))
  return total, (hs, ks, aux, hyper, values, grads, wrt)


def _weighted_total_bwd(fn, blocks, res, ct):
  hs, ks, aux, hyper, values, grads, wrt = res
  if isinstance(ct, SymbolicZero):
    ct = jnp.zeros((), values.dtype)
  # A coefficient of 0 (a masked token) gets the gradient 0 even where its
  # value is NaN (a target outside the vocabulary).
  d_coef = ct * jnp.where(jnp.isnan(values), 0.0, values)
  return _cotangents(hs, ks, aux, hyper, grads, wrt, scale=ct) + (d_coef,)


weighted_total.defvjp(_weighted_total_fwd, _weighted_total_bwd, symbolic_zeros=True)
