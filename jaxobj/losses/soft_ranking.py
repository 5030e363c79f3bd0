r"""Differentiable sorting and ranking, and the losses built on them.

:func:`soft_sort` and :func:`soft_rank` are the operators of Blondel et al.
(2020): projections onto the permutahedron (the convex hull of the
permutations of a vector), computed exactly in :math:`O(n \log n)` by sorting
and an isotonic regression (pool-adjacent-violators), with exact derivatives
(the Jacobian is block-wise constant; see ``jaxobj._src.soft_sort``). With
:math:`\rho = (n, n - 1, \dots, 1)` and regularization strength
:math:`\varepsilon`,

.. math::
   r_\varepsilon(\theta) = P(\theta / \varepsilon, \rho), \qquad
   s_\varepsilon(\theta) = P(\rho / \varepsilon, \theta),

where :math:`P(z, w)` is the projection of :math:`z` onto the permutahedron of
:math:`w`: Euclidean (``regularization="l2"``, piecewise linear) or entropic
(``"kl"``, smooth; the ranks are then :math:`\exp P_{KL}(\theta/\varepsilon,
\log\rho)`). As :math:`\varepsilon \to 0` they are the hard ranks and the sorted
values; as :math:`\varepsilon \to \infty` every soft rank tends to the mean
rank :math:`(n + 1) / 2`.

The losses are per list: the last axis is the list (or the classes), the
leading axes the batch, and ``where`` and ``weights`` act on whole lists.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples, inputs
from jaxobj._src import soft_sort as _ops
from jaxobj._src.examples import robust_labels as list_examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "soft_rank",
  "soft_sort",
  "soft_top_k_loss",
  "spearman_loss",
]

_PIECEWISE_LINEAR = (
  "the L2 soft rank (the default) is piecewise linear in the logits, and so is the hinge on it"
)


def _check_operator(regularization_strength, regularization) -> None:
  checks.check_choice("regularization", regularization, _ops.REGULARIZATIONS)
  checks.check_real("regularization_strength", regularization_strength)
  checks.check_range(
    "regularization_strength", regularization_strength, low=0.0, low_inclusive=False
  )


# The operators and the losses' per-list values are jitted (strings and flags
# static): an eager call then compiles one program, not one per primitive.
@functools.partial(jax.jit, static_argnames=("regularization", "descending"))
def _rank(x: jax.Array, eps, regularization: str, descending: bool) -> jax.Array:
  """Soft ranks over the last axis of a float array (1 = smallest, or largest
  when ``descending``)."""
  n = x.shape[-1]
  z = (-x if descending else x) / eps
  rho = jnp.arange(n, 0, -1, dtype=x.dtype)
  if regularization == "l2":
    return _ops.project(z, rho, "l2")
  return jnp.exp(_ops.project(z, jnp.log(rho), "kl"))


@functools.partial(jax.jit, static_argnames=("regularization", "descending"))
def _sort(x: jax.Array, eps, regularization: str, descending: bool) -> jax.Array:
  n = x.shape[-1]
  # The values in descending order (ascending: -values, sorted descending).
  w = jnp.sort(x, axis=-1)[..., ::-1] if descending else -jnp.sort(x, axis=-1)
  z = jnp.broadcast_to(jnp.arange(n, 0, -1, dtype=x.dtype) / eps, x.shape)
  # rho / eps is already sorted, so P(rho / eps, w) is one isotonic regression.
  out = _ops.residual(z, w, regularization)
  return out if descending else -out


def soft_rank(
  values: ArrayLike,
  *,
  regularization_strength: float | ArrayLike = 1.0,
  regularization: str = "l2",
  descending: bool = False,
  axis: int = -1,
) -> jax.Array:
  r"""Soft ranks along an axis: ``values / eps`` projected onto the permutahedron of the ranks.

  .. math::
     r_\varepsilon(\theta) = \arg\min_{\mu \in \mathcal{P}(\rho)}
       \tfrac12 \lVert \mu - \theta / \varepsilon \rVert^2,
     \qquad \rho = (n, \dots, 1)

  for ``regularization="l2"`` (``"kl"``: the KL projection, smooth and
  positive). Ranks are 1-based: 1 is the smallest value (the largest with
  ``descending=True``). Every output lies in the permutahedron, so the soft
  ranks always sum to :math:`n(n+1)/2`. As ``regularization_strength`` goes to
  0 they become the hard ranks (exactly, once it is below the smallest gap
  between values for ``"l2"``).

  Args:
    values: float array; ranked along ``axis``.
    regularization_strength: :math:`\varepsilon > 0` (traceable).
    regularization: ``"l2"`` (piecewise linear) or ``"kl"`` (smooth).
    descending: rank 1 for the largest value.
    axis: the axis to rank along (static).

  Returns:
    Soft ranks, ``values.shape``, in float32 at least.

  Raises:
    ValueError: an unknown ``regularization``, ``regularization_strength <= 0``.
    TypeError: integer ``values``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([0.3, -1.2, 2.0, 0.5])
    >>> print(jaxobj.soft_rank(x, regularization_strength=1e-3))
    [2. 1. 4. 3.]
    >>> print(jnp.round(jaxobj.soft_rank(x), 3))  # 0.3 and 0.5 are closer than eps
    [2.4 1.  4.  2.6]

  References:
    Blondel, Teboul, Berthet and Djolonga, "Fast Differentiable Sorting and
    Ranking", ICML 2020.
  """
  _check_operator(regularization_strength, regularization)
  checks.check_bool("descending", descending)
  x = jnp.moveaxis(checks.as_float(values, "values"), axis, -1)
  out = _rank(x, regularization_strength, regularization, descending)
  return jnp.moveaxis(out, -1, axis)


def soft_sort(
  values: ArrayLike,
  *,
  regularization_strength: float | ArrayLike = 1.0,
  regularization: str = "l2",
  descending: bool = False,
  axis: int = -1,
) -> jax.Array:
  r"""Soft sorted values: ``rho / eps`` projected onto the permutahedron of ``values``.

  .. math::
     s_\varepsilon(\theta) = \arg\min_{\mu \in \mathcal{P}(\theta)}
       \tfrac12 \lVert \mu - \rho / \varepsilon \rVert^2,
     \qquad \rho = (n, \dots, 1)

  for ``regularization="l2"`` (``"kl"``: :math:`\log` of the KL projection of
  :math:`e^{\rho/\varepsilon}` onto the permutahedron of :math:`e^\theta`).
  The output is sorted (ascending, or descending with ``descending=True``) and
  lies in the permutahedron of ``values``, so it always sums to
  ``values.sum()``. As ``regularization_strength`` goes to 0 it becomes
  ``jnp.sort(values)``; as it grows, every entry tends to the mean.

  Args:
    values: float array; sorted along ``axis``.
    regularization_strength: :math:`\varepsilon > 0` (traceable).
    regularization: ``"l2"`` or ``"kl"``.
    descending: sort in descending order.
    axis: the axis to sort along (static).

  Returns:
    Soft sorted values, ``values.shape``, in float32 at least.

  Raises:
    ValueError: an unknown ``regularization``, ``regularization_strength <= 0``.
    TypeError: integer ``values``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([0.3, -1.2, 2.0, 0.5])
    >>> print(jnp.round(jaxobj.soft_sort(x, regularization_strength=0.1), 3))
    [-1.2  0.3  0.5  2. ]
    >>> soft = jaxobj.soft_sort(x, regularization_strength=10.0)
    >>> print(jnp.round(soft, 3), round(float(soft.sum()), 3))  # towards the mean
    [0.25 0.35 0.45 0.55] 1.6

  References:
    Blondel, Teboul, Berthet and Djolonga, "Fast Differentiable Sorting and
    Ranking", ICML 2020.
  """
  _check_operator(regularization_strength, regularization)
  checks.check_bool("descending", descending)
  x = jnp.moveaxis(checks.as_float(values, "values"), axis, -1)
  out = _sort(x, regularization_strength, regularization, descending)
  return jnp.moveaxis(out, -1, axis)


def _average_ranks(t: jax.Array) -> jax.Array:
  """Hard ascending ranks over the last axis, ties given their average rank
  (as Spearman's coefficient takes them); NaN where ``t`` is NaN."""
  n = t.shape[-1]
  flat = t.reshape(-1, n)
  ordered = jnp.sort(flat, axis=-1)

  def one(sorted_row, row):
    left = jnp.searchsorted(sorted_row, row, side="left")
    right = jnp.searchsorted(sorted_row, row, side="right")
    return (left + right + 1).astype(t.dtype) / 2

  ranks = jax.vmap(one)(ordered, flat).reshape(t.shape)
  return jnp.where(jnp.isnan(t), jnp.nan, ranks)


def _pearson(a: jax.Array, b: jax.Array) -> jax.Array:
  """Pearson correlation over the last axis; 0 where either side is constant."""
  da = a - jnp.mean(a, axis=-1, keepdims=True)
  db = b - jnp.mean(b, axis=-1, keepdims=True)
  cov = jnp.sum(da * db, axis=-1)
  var = jnp.sum(da * da, axis=-1) * jnp.sum(db * db, axis=-1)
  ok = var > 0
  return jnp.where(
    ok, cov * jax.lax.rsqrt(jnp.where(ok, var, 1.0)), jnp.where(jnp.isnan(var), var, 0.0)
  )


@functools.partial(jax.jit, static_argnames="regularization")
def _spearman_values(x, y, eps, regularization):
  ranks = _rank(x, eps, regularization, descending=False)
  return 1.0 - _pearson(ranks, jax.lax.stop_gradient(_average_ranks(y)))


@register("soft_ranking", inputs=list_examples.PAIRED_LISTS)
def spearman_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  regularization_strength: float | ArrayLike = 1.0,
  regularization: str = "l2",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""One minus Spearman's rank correlation, with soft ranks of the predictions.

  .. math::
     \ell(\theta, t) = 1 - \operatorname{corr}\big(r_\varepsilon(\theta),\ r(t)\big)

  per list (the last axis): :math:`r_\varepsilon` the soft ranks
  (:func:`soft_rank`), :math:`r(t)` the hard ranks of the targets with ties
  averaged, and corr Pearson's correlation. As ``regularization_strength`` goes to
  0 the loss is one minus Spearman's coefficient exactly; as it grows the soft
  ranks become affine in the predictions and the loss tends to one minus the
  Pearson correlation of the predictions with the target ranks. A list whose
  target (or soft) ranks are all equal has correlation 0 (loss 1). The value
  lies in ``[0, 2]``.

  Args:
    predictions: float array ``[..., L]``.
    targets: real array ``[..., L]`` (only their order matters; no gradient).
    regularization_strength: :math:`\varepsilon > 0` (traceable).
    regularization: ``"l2"`` or ``"kl"`` (see :func:`soft_rank`).
    where, weights, reduction: the loss contract, per list (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one value per list for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, an unknown ``regularization``, ``regularization_strength <= 0``.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> p, t = jnp.array([[0.1, 0.9, 0.5]]), jnp.array([[1.0, 3.0, 2.0]])
    >>> print(jaxobj.spearman_loss(p, t, regularization_strength=1e-3))
    0.0

  References:
    Blondel, Teboul, Berthet and Djolonga, "Fast Differentiable Sorting and
    Ranking", ICML 2020 (section 6, soft Spearman's rank correlation).
  """
  _check_operator(regularization_strength, regularization)
  x = checks.as_float(predictions, "predictions")
  checks.check_same_shape("predictions", x, "targets", targets)
  if x.ndim == 0:
    raise ValueError("predictions must have a list axis, got a scalar; pass shape [..., L].")
  y = checks.as_target(targets, "targets", x)
  shape = x.shape[:-1]
  x = masked_fill(where, x, shape, axis_extra=1)
  y = masked_fill(where, y, shape, axis_extra=1)
  values = _spearman_values(x, y, regularization_strength, regularization)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@functools.partial(jax.jit, static_argnames="regularization")
def _top_k_values(x, y, k, eps, regularization):
  n = x.shape[-1]
  # -inf logits (impossible classes) sit one full rank gap per class below the
  # smallest finite logit: their own blocks, last, without moving the others.
  finite = x > -jnp.inf
  lowest = jnp.min(jnp.where(finite, x, jnp.inf), axis=-1, keepdims=True)
  lowest = jax.lax.stop_gradient(jnp.where(jnp.isfinite(lowest), lowest, 0.0))
  x = jnp.where(finite | jnp.isnan(x), x, lowest - n * eps)
  ranks = _rank(x, eps, regularization, descending=True)
  values = jax.nn.relu(inputs.take(ranks, y) - k)
  # A NaN logit of another class must reach the value (its rank is NaN alone).
  return jnp.where(jnp.any(jnp.isnan(x), axis=-1), jnp.nan, values)


@register("soft_ranking", inputs=examples.INTEGER_LABELS, zero_hessian=_PIECEWISE_LINEAR)
def soft_top_k_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  k: int = 1,
  regularization_strength: float | ArrayLike = 1.0,
  regularization: str = "l2",
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Top-k classification hinge on the soft rank of the true class.

  .. math::
     \ell(x, y) = \max\big(0,\ r_\varepsilon(x)_y - k\big)

  with :math:`r_\varepsilon` the descending soft ranks over the classes
  (:func:`soft_rank`, rank 1 the largest logit). With hard ranks
  (``regularization_strength`` to 0) the loss is 0 exactly when the true class
  is among the ``k`` largest logits, and at least 1 otherwise, so it bounds the
  top-k error from above; the soft ranks give it a gradient everywhere the
  true class is not safely inside the top ``k``. Classes with a ``-inf`` logit
  rank last and get no gradient; the ranks of the others are their ranks among
  the possible classes.

  Args:
    logits: float array ``[..., K]``.
    labels: integer array ``logits.shape`` without the class axis.
    k: how many top classes count as correct, ``k >= 1`` (static).
    regularization_strength: :math:`\varepsilon > 0` (traceable); in units of
      the logits.
    regularization: ``"l2"`` (piecewise linear) or ``"kl"`` (smooth).
    ignore_index: label value to skip (default -100; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss.

  Raises:
    ValueError: bad label shape, ``k < 1``, an unknown ``regularization``,
      ``regularization_strength <= 0``.
    TypeError: integer ``logits`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    >>> y = jnp.array([2, 1])
    >>> loss = jaxobj.soft_top_k_loss(x, y, k=2, regularization_strength=0.01, reduction="none")
    >>> print(loss)
    [0. 1.]

  References:
    Blondel, Teboul, Berthet and Djolonga, "Fast Differentiable Sorting and
    Ranking", ICML 2020. Cuturi, Teboul and Vert, "Differentiable Ranking and
    Sorting using Optimal Transport", NeurIPS 2019 (top-k losses on soft ranks).
  """
  _check_operator(regularization_strength, regularization)
  checks.check_range("k", k, low=1)
  x, y, where = inputs.integer_inputs(logits, labels, axis, where, ignore_index)
  values = _top_k_values(x, y, k, regularization_strength, regularization)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
