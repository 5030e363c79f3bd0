"""The front end shared by the chunked and sharded CLIP and SigLIP losses:
argument checks, the reduction's coefficients, and one blockwise loss on this
device's rows (on one device, or inside ``shard_map`` over a mesh axis).

The kernels live in :mod:`jaxobj._src.contrastive_sweep`.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import contrastive_sweep as sweep
from jaxobj._src.embedding_pairs import paired_rows
from jaxobj._src.reduce import Reduced, reduce_loss, reduce_total


def check_block_size(block_size: Any) -> None:
  if block_size is None:
    return
  if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
    raise TypeError(
      f"block_size must be a Python int (the number of text embeddings per block) "
      f"or None for the default, got {block_size!r} of type {type(block_size).__name__}. "
      f"It fixes array shapes, so it cannot be a traced value."
    )
  if block_size < 1:
    raise ValueError(
      f"block_size must be a positive number of columns, got block_size={block_size}."
    )


def check_method(method: Any) -> None:
  if method not in sweep.METHODS:
    raise ValueError(
      f"method={method!r} is not supported; choose 'ring' (per-device "
      f"memory independent of the mesh size) or 'all_gather'."
    )


def check_bound(axis_name: Any) -> None:
  """A clear error for a loss called with ``axis_name`` outside ``shard_map``."""
  try:
    jax.lax.axis_size(axis_name)
  except NameError:
    raise ValueError(
      f"axis_name={axis_name!r} is not a mesh axis in scope: call the loss inside "
      f"jax.shard_map over a mesh with that axis (the inputs are then the local "
      f"shards), or pass global arrays with mesh=... ."
    ) from None


def coefficients(
  batch_shape: tuple[int, ...], where: ArrayLike | None, weights: ArrayLike | None, dtype: Any
) -> tuple[jax.Array, jax.Array]:
  """Each row's factor in the reduced sum, and the mean's denominator: what
  :func:`jaxobj.reduce_loss` multiplies each value by, and their sum."""
  ones = jnp.ones(batch_shape, dtype)
  a = cast(jax.Array, reduce_loss(ones, where=where, weights=weights, reduction="none"))
  return a.reshape(-1), jnp.sum(a)


def blockwise_loss(
  kind: str,
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  log_temperature: ArrayLike,
  bias: ArrayLike,
  *,
  block_size: int | None,
  axis_name: Any,
  method: str,
  where: ArrayLike | None,
  weights: ArrayLike | None,
  reduction: str,
) -> Reduced:
  """The CLIP (``kind="clip"``) or SigLIP loss of these rows, in blocks.

  With ``axis_name=None`` the rows are the whole batch (the chunked losses);
  inside ``shard_map`` they are this device's shard, every device's texts are
  negatives, and reduced results (sums and counts) are summed over the axis.
  """
  checks.check_reduction(reduction)
  check_block_size(block_size)
  check_method(method)
  if axis_name is not None:
    check_bound(axis_name)
  x, y, valid, batch_shape = paired_rows(
    image_embeddings, text_embeddings, ("image_embeddings", "text_embeddings"), where
  )
  dtype = x.dtype
  n = x.shape[0]
  spec = sweep.Spec(kind, block_size, axis_name, method)
  valid = jnp.ones((n,), bool) if valid is None else valid
  hyper = (jnp.asarray(log_temperature, dtype), jnp.asarray(bias, dtype))
  args = (x, y, sweep.inverse_norm(x), sweep.inverse_norm(y), valid)
  if axis_name is not None:
    args, hyper = sweep.varying((args, hyper), axis_name)
  if reduction == "none":
    values = sweep.row_values(spec, *args, *hyper) if n else jnp.zeros((0,), dtype)
    return reduce_loss(values.reshape(batch_shape), where=where, weights=weights, reduction="none")
  a, count = coefficients(batch_shape, where, weights, dtype)
  if axis_name is not None:
    a = sweep.varying(a, axis_name)
  total = sweep.weighted_total(spec, *args, a, *hyper) if n else jnp.zeros((), dtype)
  if axis_name is not None:
    total, count = jax.lax.psum((total, count), axis_name)
  return reduce_total(total, count, reduction)
