r"""Sparsemax and Fenchel–Young losses: sparse probabilities and their losses.

A Fenchel–Young loss (Blondel, Martins and Niculae, 2020) is built from a
regularized prediction function: given a convex regularizer :math:`\Omega` and
its conjugate :math:`\Omega^*` (a "regularized max" of the scores),

.. math::
   L_\Omega(\theta, y) = \Omega^*(\theta) + \Omega(y) - \langle \theta, y \rangle,
   \qquad \nabla_\theta L_\Omega = \nabla\Omega^*(\theta) - y = \hat y_\Omega(\theta) - y.

The negative Shannon entropy gives the softmax and cross-entropy; the squared
norm :math:`\tfrac12\|p\|^2` on the simplex gives sparsemax and the sparsemax
loss, whose predictions are exactly zero on classes far below the best.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs
from jaxobj._src.examples import parity as examples
from jaxobj._src.reduce import Reduced, reduce_loss
from jaxobj.registry import register

__all__ = [
  "make_fenchel_young_loss",
  "multiclass_sparsemax_loss",
  "sparsemax",
  "sparsemax_loss",
]


# --------------------------------------------------------------------------
# The projection.


def _finite_logits(x: jax.Array) -> jax.Array:
  """``-inf`` entries replaced by a finite value two below the row's largest
  finite entry: sparsemax gives them exactly 0 either way (every entry of the
  support lies within 1 of the maximum), and the sort stays finite."""
  finite = x > -jnp.inf
  m = jnp.max(jnp.where(finite, x, -jnp.inf), axis=-1, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  return jnp.where(finite | jnp.isnan(x), x, m - 2.0)


@jax.custom_jvp
def _sparsemax_last(x: jax.Array) -> jax.Array:
  # The threshold tau of Martins & Astudillo (2016), Alg. 1, on scores shifted
  # by their maximum (sparsemax is shift-invariant; the shift keeps the
  # cumulative sums at the scale of the support, not of the scores).
  z = x - jnp.max(x, axis=-1, keepdims=True)
  z_sorted = -jnp.sort(-z, axis=-1)
  k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
  cumsum = jnp.cumsum(z_sorted, axis=-1)
  support = 1.0 + k * z_sorted > cumsum
  n = jnp.sum(support, axis=-1, keepdims=True)
  n = jnp.maximum(n, 1)  # NaN rows: keep the gather in range, NaN flows on
  tau = (jnp.take_along_axis(cumsum, n - 1, axis=-1) - 1.0) / n.astype(z.dtype)
  return jnp.maximum(z - tau, 0.0)


@_sparsemax_last.defjvp
def _sparsemax_last_jvp(primals, tangents):
  # J = diag(s) - s s^T / |S| on the support S (s its indicator): the tangent
  # restricted to the support, minus its mean there. Piecewise constant in x,
  # so second derivatives through this rule are the exact ones (zero).
  (x,), (v,) = primals, tangents
  p = _sparsemax_last(x)
  s = (p > 0).astype(p.dtype)
  n = jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), 1.0)
  sv = s * v
  return p, sv - s * jnp.sum(sv, axis=-1, keepdims=True) / n


def sparsemax(logits: ArrayLike, *, axis: int = -1) -> jax.Array:
  r"""Sparsemax: the Euclidean projection of the scores onto the probability simplex.

  .. math::
     \operatorname{sparsemax}(x) = \arg\min_{p \in \Delta^{K-1}} \|p - x\|^2
       = \max(x - \tau(x), 0)

  where :math:`\tau(x)` is the threshold that makes the result sum to 1. Unlike
  the softmax, classes whose score lies more than 1 below the best get exactly
  0. Computed by sorting (:math:`O(K \log K)`); the Jacobian is the exact one,
  :math:`\operatorname{diag}(s) - s s^\top / |S|` on the support :math:`S`.
  Scores of ``-inf`` get probability 0.

  Args:
    logits: float array ``[..., K]``.
    axis: the class axis (static).

  Returns:
    Probabilities of the same shape, summing to 1 over ``axis``.

  Raises:
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.sparsemax(jnp.array([1.0, 0.5, -2.0])))
    [0.75 0.25 0.  ]

  References:
    Martins and Astudillo, "From Softmax to Sparsemax: A Sparse Model of
    Attention and Multi-Label Classification", ICML 2016.
  """
  checks.check_axis("axis", axis, loss="sparsemax")
  x = inputs.classes_last(checks.as_float(logits, "logits"), axis)
  p = _sparsemax_last(_finite_logits(x))
  return p if axis == -1 else jnp.moveaxis(p, -1, axis)


def _sparsemax_conjugate(x: jax.Array, p: jax.Array) -> jax.Array:
  r""":math:`\Omega^*(x) = \langle x, p\rangle - \tfrac12\|p\|^2`, with ``p = sparsemax(x)``,
  terms with :math:`p_k = 0` exactly 0 (so ``-inf`` scores add nothing)."""
  return jnp.sum(jnp.where(p > 0, x, 0.0) * p, axis=-1) - 0.5 * jnp.sum(p * p, axis=-1)


# --------------------------------------------------------------------------
# Losses.


def _sparse_plus(x: jax.Array) -> jax.Array:
  """0 below -1, (x + 1)^2 / 4 on [-1, 1], x above 1: the binary sparsemax conjugate."""
  return jnp.where(x <= -1.0, 0.0, jnp.where(x >= 1.0, x, 0.25 * jnp.square(x + 1.0)))


@register("classification", inputs=examples.BINARY_CLOSE)
def sparsemax_loss(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Binary sparsemax loss: the Fenchel–Young loss of the sparse sigmoid.

  .. math::
     \ell(x, y) = y\,\operatorname{sparseplus}(-x) + (1 - y)\operatorname{sparseplus}(x)
       - y (1 - y),
     \qquad \operatorname{sparseplus}(x) = \begin{cases}
       0 & x \le -1 \\ (x + 1)^2 / 4 & |x| < 1 \\ x & x \ge 1 \end{cases}

  The gradient is :math:`\operatorname{sparsesigmoid}(x) - y` with
  :math:`\operatorname{sparsesigmoid}(x) = \operatorname{clip}((x + 1) / 2, 0, 1)`,
  and the loss is 0 exactly when that equals the label (at :math:`x \ge 1`
  for :math:`y = 1`: a margin, reached in finite logits). For labels in
  {0, 1} it is optax's ``sparsemax_loss``; soft labels in [0, 1] are the
  general Fenchel–Young loss (the :math:`y(1 - y)` term keeps its minimum 0).

  Args:
    logits: float array of any shape.
    labels: targets in [0, 1] (usually 0 or 1), same shape.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`);
      the mean is over the unmasked elements.

  Returns:
    The reduced loss.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(jaxobj.sparsemax_loss(jnp.array([2.0, 0.0, -3.0]), jnp.array([1.0, 1.0, 1.0]),
    ...                             reduction="none"))
    [0.   0.25 3.  ]

  References:
    Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses",
    JMLR 2020 (Sec. 4.4).
  """
  x, y = inputs.binary_inputs(logits, labels, where)
  values = y * _sparse_plus(-x) + (1.0 - y) * _sparse_plus(x) - y * (1.0 - y)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("classification", inputs=examples.CLOSE_SCORES)
def multiclass_sparsemax_loss(
  scores: ArrayLike,
  labels: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Multiclass sparsemax loss against integer labels (the Fenchel–Young loss of sparsemax).

  .. math::
     \ell(s, y) = \langle p, s - s_y \rangle + \tfrac12\big(1 - \|p\|^2\big),
     \qquad p = \operatorname{sparsemax}(s)

  Its gradient is :math:`p - e_y`, so it is 0 exactly when sparsemax puts all
  its mass on the label (the label's score at least 1 above every other):
  unlike cross-entropy, it stops pushing once the margin is reached. optax's
  ``multiclass_sparsemax_loss``. Scores of ``-inf`` rule a class out.
  Masking and ``ignore_index`` behave as in
  :func:`~jaxobj.softmax_cross_entropy_with_integer_labels`.

  Args:
    scores: float array ``[..., K]``.
    labels: integer array ``scores.shape`` without the class axis.
    ignore_index: label value to skip (default -100, PyTorch's; None skips none).
    axis: the class axis (static).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`);
      the mean is over the unmasked rows.

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != scores.shape[:-1]``, an unmasked label
      outside ``[0, K)`` (when concrete).
    TypeError: integer ``scores`` or floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s = jnp.array([[2.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    >>> print(jaxobj.multiclass_sparsemax_loss(s, jnp.array([0, 0]), reduction="none"))
    [0.     0.3333]

  References:
    Martins and Astudillo, "From Softmax to Sparsemax", ICML 2016;
    Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 2020.
  """
  s, y, where = inputs.integer_inputs(
    scores, labels, axis, where, ignore_index, names=("scores", "labels")
  )
  ruled_out = jnp.isneginf(inputs.take(s, y))  # the label's class is impossible
  s = _finite_logits(s)
  # Relative to the label's score, so large scores lose no precision; a bad
  # label gathers NaN.
  rel = s - inputs.take(s, y)[..., None]
  p = _sparsemax_last(rel)
  values = jnp.where(ruled_out, jnp.inf, _sparsemax_conjugate(rel, p) + 0.5)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# The constructor.


def make_fenchel_young_loss(
  max_fn: Callable[[jax.Array], jax.Array],
  *,
  regularizer: Callable[[jax.Array], jax.Array] | None = None,
) -> Callable[..., Reduced]:
  r"""The Fenchel–Young loss of a regularized max function, under the loss contract.

  .. math::
     L(\theta, y) = \Omega^*(\theta) - \langle \theta, y \rangle\ [+\ \Omega(y)],
     \qquad \nabla_\theta L = \nabla\Omega^*(\theta) - y

  ``max_fn`` is :math:`\Omega^*`, a convex "regularized max" of one score
  vector (``jax.nn.logsumexp`` gives the softmax cross-entropy); its gradient
  is the prediction :math:`\hat y = \nabla\Omega^*(\theta)`, so the loss's
  gradient is :math:`\hat y - y` exactly, by construction: nothing is solved
  iteratively and nothing is approximated. Without ``regularizer`` the loss is
  optax's ``make_fenchel_young_loss`` (up to the :math:`\Omega(y)` constant it
  omits, so its minimum need not be 0); with :math:`\Omega` given, it is the
  full Fenchel–Young loss, non-negative and 0 exactly when :math:`\hat y = y`.

  Args:
    max_fn: a function from one score vector ``[K]`` to a scalar; it is
      vectorized over the leading axes.
    regularizer: optional :math:`\Omega`, from one target vector ``[K]`` to a
      scalar (e.g. :math:`\sum_k y_k \log y_k` for ``logsumexp``).

  Returns:
    ``loss(scores, targets, *, axis=-1, where=None, weights=None,
    reduction="mean")``: scores and targets of the same shape ``[..., K]``
    (targets in the domain of :math:`\Omega`, usually the simplex), one value
    per row (the mean is over the unmasked rows). Targets of 0 never meet a
    ``-inf`` score in the inner product.

  Raises:
    TypeError: ``max_fn`` or ``regularizer`` is not callable.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> loss = jaxobj.make_fenchel_young_loss(jax.nn.logsumexp)
    >>> x, y = jnp.array([[1.0, 2.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])
    >>> print(bool(jnp.allclose(loss(x, y), jaxobj.softmax_cross_entropy(x, y))))
    True
    >>> print(jax.grad(loss)(x, y).round(3))  # softmax(x) - y
    [[ 0.245 -0.335  0.09 ]]

  References:
    Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses",
    JMLR 2020.
  """
  for name, fn in (("max_fn", max_fn), ("regularizer", regularizer)):
    if fn is not None and not callable(fn):
      raise TypeError(
        f"make_fenchel_young_loss: {name} must be a function of one vector [K] returning a "
        f"scalar (e.g. jax.nn.logsumexp), got {name}={fn!r} of type {type(fn).__name__}."
      )
  omega_star = jnp.vectorize(max_fn, signature="(k)->()")
  omega = None if regularizer is None else jnp.vectorize(regularizer, signature="(k)->()")

  def fenchel_young_loss(
    scores: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    reduction: str = "mean",
  ) -> Reduced:
    checks.check_axis("axis", axis, loss="fenchel_young_loss")
    x, y, _ = inputs.softmax_inputs(scores, targets, axis, where)
    # A zero target times a -inf score is 0, with finite gradients.
    inner = jnp.sum(jnp.where(y == 0, 0.0, x) * y, axis=-1)
    values = omega_star(x) - inner
    if omega is not None:
      values = values + omega(y)
    return reduce_loss(values, where=where, weights=weights, reduction=reduction)

  fenchel_young_loss.__doc__ = (
    f"The Fenchel-Young loss of {getattr(max_fn, '__name__', repr(max_fn))} "
    "(built by jaxobj.make_fenchel_young_loss)."
  )
  return fenchel_young_loss
