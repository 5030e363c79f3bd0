"""Input preparation for losses over embeddings: checked float arrays, paired
embeddings of one shape, and rows flattened with their mask.

Shared by the contrastive losses and their chunked and sharded scale paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.reduce import masked_fill


def as_embeddings(x: ArrayLike, name: str, min_rank: int = 2, layout: str = "(B, D)") -> jax.Array:
  """``x`` as a float array with at least ``min_rank`` axes (``layout`` names them)."""
  x = checks.as_float(x, name)
  if x.ndim < min_rank:
    raise ValueError(
      f"{name} must have at least {min_rank} axes, laid out as (..., {layout[1:]}, "
      f"got {name}.shape={x.shape}. Add the missing leading axis with {name}[None]."
    )
  return x


def check_pair(name_a: str, a: ArrayLike, name_b: str, b: ArrayLike) -> None:
  """Paired embeddings share their shape; a differing last axis is named as
  an embedding-dimension mismatch, the commonest way to get this wrong."""
  sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
  if len(sa) == len(sb) and sa[:-1] == sb[:-1] and sa[-1:] != sb[-1:]:
    raise ValueError(
      f"{name_a} and {name_b} must have the same embedding dimension (last "
      f"axis), got {name_a}.shape={sa} and {name_b}.shape={sb}. Project both "
      f"into one space (e.g. with a linear head) before the loss."
    )
  checks.check_same_shape(name_a, a, name_b, b)


def pair(
  a: ArrayLike, b: ArrayLike, names: tuple[str, str], min_rank: int = 2, layout: str = "(B, D)"
) -> tuple[jax.Array, jax.Array]:
  """Two checked float embeddings of one shape, in a common compute dtype."""
  x = as_embeddings(a, names[0], min_rank, layout)
  check_pair(names[0], x, names[1], b)
  y = checks.as_float(b, names[1])
  dtype = jnp.promote_types(x.dtype, y.dtype)
  return x.astype(dtype), y.astype(dtype)


def row_mask(where: ArrayLike | None, batch_shape: tuple[int, ...]) -> jax.Array | None:
  """``where`` broadcast to the batch and flattened to one flag per row."""
  if where is None:
    return None
  where = checks.as_mask(where, batch_shape)
  return jnp.broadcast_to(where, batch_shape).reshape(-1)


def paired_rows(
  a: ArrayLike, b: ArrayLike, names: tuple[str, str], where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array | None, tuple[int, ...]]:
  """Flattened ``(B, D)`` rows of two paired embeddings, masked rows zeroed.

  Returns the rows, the row mask (``None`` when nothing is masked) and the
  batch shape the per-row loss must be reshaped to.
  """
  x, y = pair(a, b, names)
  batch_shape = x.shape[:-1]
  valid = row_mask(where, batch_shape)
  x = masked_fill(where, x, batch_shape, axis_extra=1)
  y = masked_fill(where, y, batch_shape, axis_extra=1)
  d = x.shape[-1]
  return x.reshape(-1, d), y.reshape(-1, d), valid, batch_shape
