r"""Penalties on parameter pytrees: L1, L2 and elastic net, with masks.

A mask chooses which leaves are penalized. It is either a pytree of booleans
with the structure of the parameters (or a prefix of it), or a predicate
``fn(path: str, leaf) -> bool`` over "/"-joined key paths such as
``"Dense_0/kernel"``. The usual choice, no penalty on biases and normalization
scales, is :func:`matrices_only` or ``exclude("bias", "scale")``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.numerics import abs_with_sign_grad
from jaxobj.registry import register

__all__ = [
  "elastic_net_penalty",
  "exclude",
  "l1_penalty",
  "l2_penalty",
  "matrices_only",
  "path_str",
]

# A pytree of arrays (the parameters a penalty reads).
Params = Any
# A pytree of bools, a prefix of one, or a (path, leaf) -> bool predicate.
Mask = Any


def path_str(path: Iterable[Any]) -> str:
  """A key path as "a/b/0/c"."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def exclude(*patterns: str) -> Callable[[str, Any], bool]:
  """A predicate that is False for leaves whose path matches any pattern.

  A pattern matches a whole path segment (``"bias"`` matches
  ``"Dense_0/bias"``) or, with wildcards, the whole path
  (``"*/norm*/scale"``).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    >>> print(jaxobj.l2_penalty(params, mask=jaxobj.regularizers.exclude("bias")))
    4.0
  """
  return _Exclude(tuple(patterns))


@dataclasses.dataclass(frozen=True)
class _Exclude:
  """The predicate :func:`exclude` returns; a dataclass so it prints (and
  compares) by its patterns, as objectives and configs show it."""

  patterns: tuple[str, ...]

  def __call__(self, path: str, leaf: Any) -> bool:
    del leaf
    segments = path.split("/")
    return not any(p in segments or fnmatch.fnmatchcase(path, p) for p in self.patterns)

  def __repr__(self) -> str:
    return f"exclude({', '.join(repr(p) for p in self.patterns)})"


def matrices_only(path: str, leaf: ArrayLike) -> bool:
  """Penalize leaves of rank >= 2 (kernels, embeddings), not biases or scales."""
  del path
  return jnp.ndim(leaf) >= 2


def _masked_leaves(params, mask: Mask) -> list[jax.Array]:
  leaves_with_path = jax.tree_util.tree_leaves_with_path(params)
  if mask is None:
    chosen = [leaf for _, leaf in leaves_with_path]
  elif callable(mask):
    chosen = [
      leaf
      for path, leaf in leaves_with_path
      if _flag(mask(path_str(path), leaf), f"mask({path_str(path)!r}, leaf)")
    ]
  elif isinstance(mask, (str, bytes, int, float)) and not isinstance(mask, bool):
    raise TypeError(
      f"mask={mask!r}: a mask is a pytree of booleans with the structure of params "
      "(or a prefix of it), or a predicate fn(path, leaf) -> bool. To leave out "
      "leaves by name, pass jaxobj.regularizers.exclude('bias', ...)."
    )
  else:
    try:
      full = jax.tree_util.tree_map(
        lambda m, sub: jax.tree_util.tree_map(lambda _: m, sub), mask, params
      )
    except ValueError as e:
      raise ValueError(
        "mask must be a pytree of booleans with the structure of params (or a "
        "prefix of it), or a predicate fn(path, leaf) -> bool; the structures "
        f"differ: {e}"
      ) from None
    flags = jax.tree_util.tree_leaves(full)
    chosen = [
      leaf
      for flag, (path, leaf) in zip(flags, leaves_with_path)
      if _flag(flag, f"mask at {path_str(path)!r}")
    ]
  return [checks.as_float(leaf, "params leaf") for leaf in chosen]


def _flag(value, where: str) -> bool:
  """One leaf's choice: True or False, nothing that merely converts to one."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if (
    isinstance(value, (np.ndarray, jax.Array))
    and value.shape == ()
    and value.dtype == bool
    and checks.is_concrete(value)
  ):
    return bool(value)
  raise TypeError(
    f"{where} is {value!r}; a mask chooses whole leaves, so each of its entries "
    "is True or False (known before tracing), one per leaf. To penalize part of "
    "an array, multiply the array by a mask before the penalty."
  )


def _total(leaves, fn) -> jax.Array:
  return sum((jnp.sum(fn(leaf)) for leaf in leaves), jnp.zeros((), jnp.float32))


@register("regularization", kind="regularizer")
def l1_penalty(params: Params, *, mask: Mask = None) -> jax.Array:
  r"""L1 penalty (lasso): the sum of absolute values of the chosen leaves.

  .. math:: R(\theta) = \|\theta\|_1 = \sum_j |\theta_j|

  A Laplace prior on the weights; drives many of them to exactly zero. The
  gradient is :math:`\operatorname{sign}(\theta)`, 0 at 0.

  Args:
    params: a pytree of float arrays.
    mask: which leaves to penalize (see the module docstring); all when None.

  Returns:
    A float32 scalar (0 when no leaf is chosen).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.l1_penalty({"w": jnp.array([1.0, -2.0])}))
    3.0
  """
  return _total(_masked_leaves(params, mask), abs_with_sign_grad)


@register("regularization", kind="regularizer")
def l2_penalty(params: Params, *, mask: Mask = None) -> jax.Array:
  r"""L2 penalty (ridge): the sum of squares of the chosen leaves.

  .. math:: R(\theta) = \|\theta\|_2^2 = \sum_j \theta_j^2

  A Gaussian prior on the weights; shrinks all of them toward zero. Note the
  absence of a factor 1/2: with coefficient :math:`\lambda` the gradient is
  :math:`2\lambda\theta`.

  Args:
    params: a pytree of float arrays.
    mask: which leaves to penalize (see the module docstring); all when None.

  Returns:
    A float32 scalar.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.l2_penalty({"w": jnp.array([1.0, -2.0])}))
    5.0
  """
  return _total(_masked_leaves(params, mask), jnp.square)


@register("regularization", kind="regularizer")
def elastic_net_penalty(
  params: Params, *, l1_ratio: float | ArrayLike = 0.5, mask: Mask = None
) -> jax.Array:
  r"""Elastic net: a convex mix of the L1 and L2 penalties.

  .. math:: R(\theta) = \rho\,\|\theta\|_1 + (1 - \rho)\,\|\theta\|_2^2

  Sparsity from the L1 part, stability among correlated features from the L2
  part.

  Args:
    params: a pytree of float arrays.
    l1_ratio: :math:`\rho` in [0, 1] (traceable).
    mask: which leaves to penalize; all when None.

  Returns:
    A float32 scalar.

  Raises:
    ValueError: ``l1_ratio`` outside [0, 1] (when concrete).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.elastic_net_penalty({"w": jnp.array([1.0, -2.0])}, l1_ratio=0.5))
    4.0

  References:
    Zou and Hastie, "Regularization and variable selection via the elastic
    net", JRSS-B 2005.
  """
  checks.check_range("l1_ratio", l1_ratio, low=0.0, high=1.0)
  leaves = _masked_leaves(params, mask)
  rho = jnp.asarray(l1_ratio)
  return rho * _total(leaves, abs_with_sign_grad) + (1.0 - rho) * _total(leaves, jnp.square)
