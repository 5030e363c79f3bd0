r"""The blockwise kernels behind the chunked and sharded CLIP and SigLIP losses.

Rows are image embeddings :math:`x_i`, columns text embeddings :math:`y_j`.
The cosine similarity is computed as :math:`(x_i \cdot y_j)\, r_i\, q_j` with
the inverse norms :math:`r, q` passed in (computed by the caller, so that
autodiff handles the normalization), and the logits are
:math:`z_{ij} = t \cos_{ij} + b` (SigLIP) or :math:`s_{ij} = t \cos_{ij}`
(CLIP), with :math:`t = e^{t'}`.

A *sweep* visits the columns a chunk of ``block`` at a time: the chunk's
``[rows, block]`` logits are the only large array alive. Per-row state (loss
sums, online log-sum-exps, the rows' gradient) stays with the rows;
per-column state (online column log-sum-exps, the columns' gradient) is
stored with the columns. Where the columns come from is the only difference
between the three layouts:

* one device: the columns are the local batch;
* ``"ring"``: each device keeps its rows, and the column blocks travel around
  the mesh axis with ``ppermute``, carrying their column state with them, so
  every device holds one block at a time (memory independent of the number
  of devices) and the state is back home after a full turn;
* ``"all_gather"``: every device gathers all columns, sweeps them, and the
  column state is reduced across devices (a log-sum-exp merge, or a
  ``psum_scatter`` of the gradient).

Two ``custom_vjp`` functions sit on top:

* :func:`weighted_total` is ``sum_i a_i loss_i`` for known coefficients ``a``
  (the reduction's mask and weights). Its forward pass computes the gradient
  in the same sweep (SigLIP: one sweep, the FLOPs of the unchunked loss; CLIP:
  a statistics sweep then a gradient sweep, since a column's softmax needs
  the column's complete log-sum-exp), and its backward pass only scales.
* :func:`row_values` is the per-row losses (``reduction="none"``); its
  backward pass sweeps again with the cotangent as the coefficients.

Inside ``shard_map`` the total is local to the device and the caller
``psum``\ s it; the columns' gradient already holds every device's
contribution, which is right because that ``psum`` gives every device the
same cotangent.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Logits in one chunk (8 MiB in float32): large enough for efficient matrix
# products, small next to the [B, B] matrix this replaces.
CHUNK_ELEMENTS = 1 << 21
METHODS = ("ring", "all_gather")


class Spec(NamedTuple):
  """Static description of a sweep."""

  kind: str  # "siglip" or "clip"
  block: int | None  # columns per chunk; None: about CHUNK_ELEMENTS logits
  axis: Any = None  # mesh axis name(s); None on one device
  method: str = "ring"


class Rows(NamedTuple):
  x: jax.Array  # [R, D]
  r: jax.Array  # [R] inverse norms
  ids: jax.Array  # [R] global pair index (positives have equal ids)
  valid: jax.Array  # [R] bool


class Cols(NamedTuple):
  y: jax.Array
  q: jax.Array
  ids: jax.Array
  valid: jax.Array
  a: Any = None  # CLIP gradient sweep: the coefficient of the column's own pair
  lse: Any = None  # CLIP gradient sweep: the column's log-sum-exp


def chunk_columns(spec: Spec, rows: int, cols: int) -> int:
  if spec.block is not None:
    return min(spec.block, cols)
  return max(8, min(cols, CHUNK_ELEMENTS // max(rows, 1)))


# --------------------------------------------------------------------------
# One chunk.


def inverse_norm(x: jax.Array) -> jax.Array:
  """``1 / max(|x|, sqrt(eps))`` per row: the scaling of ``contrastive._unit``."""
  return lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1), jnp.finfo(x.dtype).eps))


def _cos(rows: Rows, cols: Cols) -> jax.Array:
  return (rows.x @ cols.y.T) * rows.r[:, None] * cols.q[None, :]


def _positive(rows: Rows, cols: Cols) -> jax.Array:
  return rows.ids[:, None] == cols.ids[None, :]


def _accumulate_grads(rows, cols, dcos, state, cstate):
  """Adds the chunk's ``dF/dcos`` to the rows' and columns' gradient sums.

  The sums are kept before the inverse norm of their own side, which is
  applied once at the end: ``px_i = sum_j dcos_ij q_j y_j``,
  ``qy_j = sum_i dcos_ij r_i x_i``.
  """
  state["px"] = state["px"] + (dcos * cols.q[None, :]) @ cols.y
  cstate["qy"] = cstate["qy"] + jnp.einsum("rc,rd->cd", dcos * rows.r[:, None], rows.x)


def _siglip_chunk(rows, a, hyper, values, state, cols, cstate):
  log_t, bias = hyper
  t = jnp.exp(log_t)
  tcos = t * _cos(rows, cols)
  pos = _positive(rows, cols)
  # Each pair's loss is softplus(-z) for the positive, softplus(z) otherwise.
  sz = jnp.where(pos, -(tcos + bias), tcos + bias)
  e = jnp.exp(-jnp.abs(sz))
  keep = cols.valid[None, :]
  if values:
    nll = jnp.maximum(sz, 0.0) + jnp.log1p(e)
    state["values"] = state["values"] + jnp.sum(jnp.where(keep, nll, 0.0), axis=1)
  if a is not None:
    sig = jnp.where(sz >= 0, 1.0, e) / (1.0 + e)  # sigmoid(sz), both signs stable
    dz = jnp.where(keep, jnp.where(pos, -sig, sig), 0.0) * a[:, None]
    state["d_log_t"] = state["d_log_t"] + jnp.sum(dz * tcos)
    state["d_bias"] = state["d_bias"] + jnp.sum(dz)
    _accumulate_grads(rows, cols, t * dz, state, cstate)
  return state, cstate


def _online_lse(m, total, s, axis):
  """Folds the logits ``s`` into a running ``(max, sum exp(s - max))``."""
  m_new = jnp.maximum(m, jnp.max(s, axis=axis))
  ref = jnp.where(m_new > -jnp.inf, m_new, 0.0)  # nothing seen yet: keep 0
  total = total * jnp.exp(m - ref) + jnp.sum(jnp.exp(s - jnp.expand_dims(ref, axis)), axis)
  return m_new, total


def _clip_stats_chunk(rows, hyper, state, cols, cstate):
  s = jnp.exp(hyper[0]) * _cos(rows, cols)
  state["diag"] = state["diag"] + jnp.sum(jnp.where(_positive(rows, cols), s, 0.0), axis=1)
  state["m"], state["sum"] = _online_lse(
    state["m"], state["sum"], jnp.where(cols.valid[None, :], s, -jnp.inf), 1
  )
  cstate["m"], cstate["sum"] = _online_lse(
    cstate["m"], cstate["sum"], jnp.where(rows.valid[:, None], s, -jnp.inf), 0
  )
  return state, cstate


def _clip_grad_chunk(rows, a, lse, hyper, state, cols, cstate):
  t = jnp.exp(hyper[0])
  s = t * _cos(rows, cols)
  # Softmax over the row (image -> text) and over the column (text -> image).
  # No autodiff runs through here, so a selected-away inf is harmless.
  p_row = jnp.where(cols.valid[None, :], jnp.exp(s - lse[:, None]), 0.0)
  p_col = jnp.where(rows.valid[:, None], jnp.exp(s - cols.lse[None, :]), 0.0)
  ds = 0.5 * (a[:, None] * p_row + cols.a[None, :] * p_col) - jnp.where(
    _positive(rows, cols) & cols.valid[None, :], a[:, None], 0.0
  )
  state["d_log_t"] = state["d_log_t"] + jnp.sum(ds * s)
  _accumulate_grads(rows, cols, t * ds, state, cstate)
  return state, cstate


# --------------------------------------------------------------------------
# Sweeps over the columns.


def _visit(chunk, block, state, cols: Cols, cstate):
  """Runs ``chunk`` over ``cols`` a block of columns at a time; the last,
  smaller block (when ``block`` does not divide the columns) runs on its own."""
  n = cols.y.shape[0]
  full, rest = divmod(n, block)
  if full == 1 and rest == 0:
    return chunk(state, cols, cstate)

  def run(start, size, carry):
    state, cstate = carry
    piece = functools.partial(lax.dynamic_slice_in_dim, start_index=start, slice_size=size)
    state, part = chunk(state, jax.tree.map(piece, cols), jax.tree.map(piece, cstate))
    cstate = jax.tree.map(
      lambda c, p: lax.dynamic_update_slice_in_dim(c, p, start, 0), cstate, part
    )
    return state, cstate

  carry = (state, cstate)
  if full:
    carry = lax.fori_loop(0, full, lambda k, c: run(k * block, block, c), carry)
  if rest:
    carry = run(full * block, rest, carry)
  return carry


def varying(tree, axis):
  """Marks values as varying over ``axis`` (a ``shard_map`` loop carry that
  will be ``ppermute``\\ d must start out varying)."""
  if axis is None:
    return tree
  axes = axis if isinstance(axis, tuple) else (axis,)

  def cast(x):
    mat = getattr(jax.typeof(x), "manual_axis_type", None)
    missing = tuple(n for n in axes if mat is None or n not in mat.varying)
    return lax.pcast(x, missing, to="varying") if missing else x

  return jax.tree.map(cast, tree)


def _sweep(spec: Spec, chunk, rows: int, state, cols: Cols, cstate, reduce_cols):
  """Sweeps ``chunk`` over every column of the batch; returns the row state
  and the local columns' (complete) state."""
  n = cols.y.shape[0]
  if spec.axis is None:
    return _visit(chunk, chunk_columns(spec, rows, n), state, cols, cstate)
  size = lax.axis_size(spec.axis)
  state, cols, cstate = varying((state, cols, cstate), spec.axis)
  if spec.method == "all_gather":
    every = jax.tree.map(lambda c: lax.all_gather(c, spec.axis, tiled=True), cols)
    every_state = varying(
      jax.tree.map(lambda c: jnp.zeros((size * n,) + c.shape[1:], c.dtype), cstate), spec.axis
    )
    state, every_state = _visit(
      chunk, chunk_columns(spec, rows, size * n), state, every, every_state
    )
    return state, reduce_cols(every_state, n)
  block = chunk_columns(spec, rows, n)
  perm = [(i, (i + 1) % size) for i in range(size)]
  shift = functools.partial(lax.ppermute, axis_name=spec.axis, perm=perm)

  def step(_, carry):
    state, cols, cstate = carry
    state, cstate = _visit(chunk, block, state, cols, cstate)
    return state, shift(cols), shift(cstate)

  state, cols, cstate = lax.fori_loop(0, size - 1, step, (state, cols, cstate))
  state, cstate = _visit(chunk, block, state, cols, cstate)
  return state, shift(cstate)  # one more step brings the column state home


def _local_slice(spec, x, n):
  start = lax.axis_index(spec.axis) * n
  return lax.dynamic_slice_in_dim(x, start, n)


def _scatter_sum(spec):
  def reduce(every, n):
    return {
      k: lax.psum_scatter(v, spec.axis, scatter_dimension=0, tiled=True) for k, v in every.items()
    }

  return reduce


def _merge_lse(spec):
  def reduce(every, n):
    m = lax.pmax(every["m"], spec.axis)
    ref = jnp.where(m > -jnp.inf, m, 0.0)
    total = lax.psum(every["sum"] * jnp.exp(every["m"] - ref), spec.axis)
    return {"m": _local_slice(spec, m, n), "sum": _local_slice(spec, total, n)}

  return reduce


# --------------------------------------------------------------------------
# Losses and gradients.


class Result(NamedTuple):
  values: jax.Array | None  # None when only gradients are asked for
  stats: Any = None  # CLIP: (row lse, column lse), for a later gradient sweep
  grads: Any = None  # (dx, dy, dr, dq, d_log_t, d_bias)


def _layout(spec, x, y, r, q, valid):
  n = x.shape[0]
  ids = jnp.arange(n, dtype=jnp.int32)
  if spec.axis is not None:
    ids = ids + n * lax.axis_index(spec.axis).astype(jnp.int32)
  return Rows(x, r, ids, valid), Cols(y, q, ids, valid)


def _zeros(n, dtype, dim=None):
  return jnp.zeros((n,) if dim is None else (n, dim), dtype)


def _lse(m, total):
  return jnp.where(total > 0, m + jnp.log(jnp.where(total > 0, total, 1.0)), 0.0)


def _finish_grads(rows, cols, state, cstate, d_bias):
  px, qy = state["px"], cstate["qy"]
  return (
    rows.r[:, None] * px,
    cols.q[:, None] * qy,
    jnp.sum(rows.x * px, axis=1),
    jnp.sum(cols.y * qy, axis=1),
    state["d_log_t"],
    d_bias,
  )


def evaluate(spec: Spec, x, y, r, q, valid, log_t, bias, a=None, stats=None, values=True) -> Result:
  """Per-row losses and, with coefficients ``a``, the gradient of ``sum a * loss``.

  ``stats`` (CLIP) skips the statistics sweep when it is already known.
  """
  rows, cols = _layout(spec, x, y, r, q, valid)
  n, dim, dtype = x.shape[0], x.shape[1], x.dtype
  scalar = jnp.zeros((), dtype)
  grad_state = {"px": _zeros(n, dtype, dim), "d_log_t": scalar}
  grad_cstate = {"qy": _zeros(n, dtype, dim)}
  hyper = (log_t, bias)
  if spec.kind == "siglip":
    state, cstate = {}, {}
    if values:
      state["values"] = _zeros(n, dtype)
    if a is not None:
      state.update(grad_state, d_bias=scalar)
      cstate.update(grad_cstate)
    chunk = functools.partial(_siglip_chunk, rows, a, hyper, values)
    state, cstate = _sweep(spec, chunk, n, state, cols, cstate, _scatter_sum(spec))
    out = jnp.where(valid, state["values"], 0.0) if values else None
    grads = None if a is None else _finish_grads(rows, cols, state, cstate, state["d_bias"])
    return Result(out, None, grads)

  out = None
  if stats is None:
    minus_inf = jnp.full((n,), -jnp.inf, dtype)
    state = {"m": minus_inf, "sum": _zeros(n, dtype), "diag": _zeros(n, dtype)}
    cstate = {"m": minus_inf, "sum": _zeros(n, dtype)}
    state, cstate = _sweep(
      spec,
      functools.partial(_clip_stats_chunk, rows, hyper),
      n,
      state,
      cols,
      cstate,
      _merge_lse(spec),
    )
    stats = (_lse(state["m"], state["sum"]), _lse(cstate["m"], cstate["sum"]))
    if values:
      d = state["diag"]
      row = (state["m"] - d) + jnp.log(jnp.where(state["sum"] > 0, state["sum"], 1.0))
      col = (cstate["m"] - d) + jnp.log(jnp.where(cstate["sum"] > 0, cstate["sum"], 1.0))
      out = jnp.where(valid, 0.5 * (row + col), 0.0)
  if a is None:
    return Result(out, stats, None)
  cols = cols._replace(a=a, lse=stats[1])
  chunk = functools.partial(_clip_grad_chunk, rows, a, stats[0], hyper)
  state, cstate = _sweep(
    spec, chunk, n, dict(grad_state), cols, dict(grad_cstate), _scatter_sum(spec)
  )
  return Result(out, stats, _finish_grads(rows, cols, state, cstate, jnp.zeros_like(bias)))


def _no_cotangent(valid):
  return np.zeros(valid.shape, dtype=jax.dtypes.float0)


def _scaled(grads, ct, like):
  return tuple((ct * g).astype(v.dtype) for g, v in zip(grads, like))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def weighted_total(spec, x, y, r, q, valid, a, log_t, bias):
  """``sum_i a_i loss_i`` over the local rows, with a single-sweep gradient."""
  return jnp.sum(a * evaluate(spec, x, y, r, q, valid, log_t, bias).values)


def _weighted_total_fwd(spec, x, y, r, q, valid, a, log_t, bias):
  res = evaluate(spec, x, y, r, q, valid, log_t, bias, a=a)
  return jnp.sum(a * res.values), (res.values, res.grads, (x, y, r, q, log_t, bias), valid)


def _weighted_total_bwd(spec, res, ct):
  values, grads, like, valid = res
  dx, dy, dr, dq, dlt, db = _scaled(grads, ct, like)
  return dx, dy, dr, dq, _no_cotangent(valid), ct * values, dlt, db


weighted_total.defvjp(_weighted_total_fwd, _weighted_total_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def row_values(spec, x, y, r, q, valid, log_t, bias):
  """Per-row losses; the backward pass sweeps again with the cotangent."""
  return evaluate(spec, x, y, r, q, valid, log_t, bias).values


def _row_values_fwd(spec, x, y, r, q, valid, log_t, bias):
  res = evaluate(spec, x, y, r, q, valid, log_t, bias)
  return res.values, (x, y, r, q, valid, log_t, bias, res.stats)


def _row_values_bwd(spec, res, ct):
  x, y, r, q, valid, log_t, bias, stats = res
  grads = evaluate(spec, x, y, r, q, valid, log_t, bias, a=ct, stats=stats, values=False).grads
  dx, dy, dr, dq, dlt, db = _scaled(grads, 1.0, (x, y, r, q, log_t, bias))
  return dx, dy, dr, dq, _no_cotangent(valid), dlt, db


row_values.defvjp(_row_values_fwd, _row_values_bwd)
