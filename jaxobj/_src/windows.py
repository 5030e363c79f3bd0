"""Separable sliding windows as matrices: local sums without convolution layouts.

A window along one axis of ``n`` pixels is an ``(n, n)`` matrix whose row
``i`` holds the kernel centred at pixel ``i``, cut at the image borders;
applying one matrix per spatial axis gives the windowed sums of any
separable kernel. Matrix products differentiate to any order, and the
windows' mass (the sums of ones) normalizes them where they are cut.
"""

from __future__ import annotations

import string

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

KERNEL_TYPES = ("rectangular", "gaussian")


def window_matrix(
  n: int, kernel_size: int, kernel_type: str, dtype, sigma: ArrayLike | None = None
) -> jax.Array:
  """The ``(n, n)`` matrix of a 1-D window of odd ``kernel_size`` centred at each
  pixel: a box, or a sampled Gaussian of std ``sigma`` (``kernel_size / 3`` by
  default), peak 1."""
  r = kernel_size // 2
  k = jnp.arange(kernel_size, dtype=dtype) - r
  if kernel_type == "rectangular":
    kernel = jnp.ones((kernel_size,), dtype)
  else:
    s = kernel_size / 3.0 if sigma is None else sigma
    kernel = jnp.exp(-0.5 * jnp.square(k / s)).astype(dtype)
  offset = jnp.arange(n)[None, :] - jnp.arange(n)[:, None] + r
  inside = (offset >= 0) & (offset < kernel_size)
  return jnp.where(inside, kernel[jnp.clip(offset, 0, kernel_size - 1)], 0.0).astype(dtype)


def window_sums(a: jax.Array, matrices, first_axis: int) -> jax.Array:
  """Applies ``matrices[i]`` along axis ``first_axis + i`` of ``a`` (a separable filter)."""
  letters = string.ascii_letters[: a.ndim]
  for i, m in enumerate(matrices):
    ax = first_axis + i
    out = letters[:ax] + "Z" + letters[ax + 1 :]
    a = jnp.einsum(f"Z{letters[ax]},{letters}->{out}", m, a)
  return a
