r"""Optimal transport between point clouds in any dimension: the Sinkhorn divergence.

One value per pair of weighted point clouds ``x`` ``[*batch, n, d]`` and ``y``
``[*batch, m, d]``, so ``where`` and ``weights`` index pairs of clouds. The
solver runs in the log domain (log-sum-exp updates, no kernel matrix that
underflows at small :math:`\varepsilon`), anneals :math:`\varepsilon` from the
clouds' diameter down to its target (:math:`\varepsilon`-scaling), and stops
each pair when its potentials have converged. Gradients come from the envelope
theorem at the converged potentials, not from unrolling the iterations: memory
and time of the backward pass do not grow with the iteration count.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, numerics
from jaxobj._src.examples import transport as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = ["sinkhorn_divergence"]

# Each annealing step divides epsilon by this factor (Feydy et al.'s default
# "scaling" of 0.5): one Sinkhorn iteration per step, then iterations at the
# target epsilon until convergence.
_ANNEALING = 0.5


def _cost(x, y, p):
  """``|x_i - y_j|^p / p`` for p = 1, 2: ``[..., n, m]``."""
  diff = x[..., :, None, :] - y[..., None, :, :]
  sq = jnp.sum(diff * diff, axis=-1)
  if p == 2:
    return 0.5 * sq
  # Double where: the norm's derivative is infinite at 0 (the diagonal of a
  # cloud's cost to itself). NaN stays NaN.
  positive = sq > 0
  return jnp.where(
    positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), jnp.where(jnp.isnan(sq), sq, 0.0)
  )


def _softmin(eps, cost, log_w, potential):
  """The c-transform ``-eps log sum_j w_j exp((potential_j - cost_ij) / eps)``."""
  e = eps[:, None, None]
  return -eps[:, None] * jax.nn.logsumexp(
    log_w[:, None, :] + (potential[:, None, :] - cost) / e, axis=-1
  )


def _plan(eps, cost, log_a, f, b):
  """The plan of potential ``f`` with its exact c-transform ``g`` on the other
  side, its column sums exactly ``b``; and ``g`` and ``KL(plan | a x b)``."""
  e = eps[:, None, None]
  logits = log_a[:, :, None] + (f[:, :, None] - cost) / e
  g = -eps[:, None] * jax.nn.logsumexp(logits, axis=-2)
  plan = b[:, None, :] * jax.nn.softmax(logits, axis=-2)
  h = (f[:, :, None] + g[:, None, :] - cost) / e
  kl = jnp.sum(jnp.where(plan > 0, plan * h, 0.0), axis=(-2, -1))
  return plan, g, kl


def _log(w):
  return jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), jnp.where(jnp.isnan(w), w, -jnp.inf))


@functools.partial(jax.jit, static_argnames=("max_iterations", "debias"))
def _solve(cxy, cxx, cyy, a, b, eps, tolerance, *, max_iterations, debias):
  """Converged dual potentials and plans of OT(a, b) (and OT(a, a), OT(b, b)).

  Rows (the flattened batch) are independent: each stops when its own
  marginals are within ``tolerance`` (L1) at the target epsilon, so a row's
  result does not depend on the rest of the batch.
  """
  rows = cxy.shape[0]
  log_a, log_b = _log(a), _log(b)
  start = jnp.max(cxy, axis=(-2, -1), initial=0.0)
  if debias:
    start = jnp.maximum(start, jnp.max(cxx, axis=(-2, -1), initial=0.0))
    start = jnp.maximum(start, jnp.max(cyy, axis=(-2, -1), initial=0.0))
  start = jnp.maximum(start, eps)
  cyx = jnp.swapaxes(cxy, -1, -2)

  def cond(state):
    k, *_, active = state
    return (k < max_iterations) & jnp.any(active)

  def marginal_error(w, potential, transformed, e):
    # L1 error of the row marginals of the plan of (potential, its c-transform):
    # row i sums to w_i * exp((potential_i - transformed_i) / e).
    d = (potential - transformed) / e[:, None]
    return jnp.sum(jnp.where(w > 0, w * jnp.abs(jnp.expm1(d)), 0.0), -1)

  def body(state):
    k, f, g, pa, pb, active = state
    e = jnp.maximum(eps, start * _ANNEALING**k)
    annealed = ~(start * _ANNEALING ** jnp.maximum(k - 1, 0) > eps)  # also before this step
    f1 = _softmin(e, cxy, log_b, g)
    g1 = _softmin(e, cyx, log_a, f1)
    error = marginal_error(a, f, f1, e)  # of (f, g): g is the c-transform of f
    if debias:  # averaged symmetric updates converge fast for OT(a, a)
      ta, tb = _softmin(e, cxx, log_a, pa), _softmin(e, cyy, log_b, pb)
      pa1, pb1 = 0.5 * (pa + ta), 0.5 * (pb + tb)
      error = jnp.maximum(error, marginal_error(a, pa, ta, e))
      error = jnp.maximum(error, marginal_error(b, pb, tb, e))
    else:
      pa1, pb1 = pa, pb
    # A NaN row counts as done: its value is NaN whatever the iterations do.
    done = (k > 0) & annealed & ~(error > tolerance)
    keep = lambda new, old: jnp.where(active[:, None], new, old)
    return k + 1, keep(f1, f), keep(g1, g), keep(pa1, pa), keep(pb1, pb), active & ~done

  zeros_a, zeros_b = jnp.zeros_like(a), jnp.zeros_like(b)
  state = (0, zeros_a, zeros_b, zeros_a, zeros_b, jnp.ones((rows,), bool))
  # Inside shard_map the body mixes in per-device data: the carry must vary too.
  state = numerics.vary_like(state, cxy, cxx, cyy, a, b, eps, tolerance)
  _, f, _, pa, pb, _ = jax.lax.while_loop(cond, body, state)
  plan, g, kl = _plan(eps, cxy, log_a, f, b)
  out = {"f": f, "g": g, "plan": plan, "kl": kl}
  if debias:
    for name, cost, w, log_w, p in (("a", cxx, a, log_a, pa), ("b", cyy, b, log_b, pb)):
      plan, q, kl = _plan(eps, cost, log_w, p, w)
      out[name] = {"f": p, "g": q, "plan": 0.5 * (plan + jnp.swapaxes(plan, -1, -2)), "kl": kl}
  return out


def _envelope(a, b, cost, eps, solved):
  """The dual value ``<a, f> + <b, g>`` at fixed converged potentials, whose
  gradient is the envelope theorem's: ``f`` and ``g`` for the weights, the plan
  (through the cost) for the points and ``KL(plan | a x b)`` for epsilon."""
  s = jax.lax.stop_gradient(solved)
  value = jnp.sum(a * s["f"], -1) + jnp.sum(b * s["g"], -1)
  moved = jnp.sum(s["plan"] * (cost - jax.lax.stop_gradient(cost)), axis=(-2, -1))
  return value + moved + (eps - jax.lax.stop_gradient(eps)) * s["kl"]


def _clouds(x, y, x_weights, y_weights, where):
  """Checked clouds and weights, flattened to ``[rows, ...]``, masked pairs replaced."""
  x = checks.as_float(x, "x")
  if x.ndim < 2 or x.shape[-2] == 0:
    raise ValueError(
      f"x must be a point cloud [*batch, n, d] with n >= 1, got x.shape={x.shape}. "
      f"For 1-D samples add a trailing axis: x[..., None]."
    )
  yy = jnp.asarray(y)
  if yy.ndim != x.ndim or yy.shape[:-2] != x.shape[:-2] or yy.shape[-1:] != x.shape[-1:]:
    raise ValueError(
      f"y must be a point cloud [*batch, m, d] with the batch axes and the dimension d of x, "
      f"got x.shape={x.shape} and y.shape={yy.shape}. The clouds may differ in size (n, m) "
      f"only; jaxobj never broadcasts them silently."
    )
  if yy.shape[-2] == 0:
    raise ValueError(f"y must hold at least one point, got y.shape={yy.shape}.")
  y = checks.as_target(yy, "y", x)
  dtype = jnp.promote_types(x.dtype, y.dtype)
  x, y = x.astype(dtype), y.astype(dtype)
  shape = x.shape[:-2]

  def cloud_weights(w, name, cloud):
    n = cloud.shape[-2]
    if w is None:
      return jnp.full(cloud.shape[:-1], 1.0 / n, dtype)
    w = checks.as_float(w, name)
    if w.shape != cloud.shape[:-1]:
      raise ValueError(
        f"{name} must hold one weight per point, shape {cloud.shape[:-1]}, got "
        f"{name}.shape={w.shape}."
      )
    return masked_fill(where, w.astype(dtype), shape, 1.0 / n, axis_extra=1)

  a = cloud_weights(x_weights, "x_weights", x)
  b = cloud_weights(y_weights, "y_weights", y)
  x = masked_fill(where, x, shape, axis_extra=2)
  y = masked_fill(where, y, shape, axis_extra=2)
  flat = lambda t, k: t.reshape((-1,) + t.shape[t.ndim - k :])
  return flat(x, 2), flat(y, 2), flat(a, 1), flat(b, 1), shape


@register("distribution", inputs=examples.WEIGHTED_POINT_CLOUDS)
def sinkhorn_divergence(
  x: ArrayLike,
  y: ArrayLike,
  x_weights: ArrayLike | None = None,
  y_weights: ArrayLike | None = None,
  *,
  epsilon: float | ArrayLike = 0.01,
  p: int = 2,
  debias: bool = True,
  max_iterations: int = 1000,
  tolerance: float | ArrayLike = 1e-3,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Debiased Sinkhorn divergence between two weighted point clouds (entropic optimal transport).

  .. math::
     S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
       - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
       - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
     \qquad
     \mathrm{OT}_\varepsilon(\alpha, \beta) = \min_{\pi \in \Pi(a, b)}
       \langle \pi, C \rangle + \varepsilon\, \mathrm{KL}(\pi \,\|\, a \otimes b)

  for :math:`\alpha = \sum_i a_i \delta_{x_i}`, :math:`\beta = \sum_j b_j
  \delta_{y_j}` and the cost :math:`C_{ij} = \lVert x_i - y_j \rVert^p / p`
  (:math:`p = 2`: half the squared distance; :math:`p = 1`: the distance).
  Feydy et al.'s divergence: it is 0 when the clouds coincide, positive
  otherwise, and interpolates between optimal transport
  (:math:`\varepsilon \to 0`: the Wasserstein cost
  :math:`W_p^p / p`) and a kernel MMD (:math:`\varepsilon \to \infty`).
  ``debias=False`` gives :math:`\mathrm{OT}_\varepsilon(\alpha, \beta)` alone,
  which is biased (not 0 for equal clouds).

  Each :math:`\mathrm{OT}_\varepsilon` is the dual value
  :math:`\langle a, f \rangle + \langle b, g \rangle` at the potentials of
  log-domain Sinkhorn iterations, with :math:`\varepsilon` annealed from the
  largest cost by halves (one iteration per value) and then iterated until
  the plan's marginals are within ``tolerance`` of the weights (in L1 norm,
  the criterion of most Sinkhorn solvers), or ``max_iterations`` in all.
  Smaller :math:`\varepsilon` is closer to optimal transport but takes more
  iterations; in float32 the potentials resolve about
  :math:`10^{-7}` of the largest cost, so :math:`\varepsilon` far below that
  runs to ``max_iterations``.

  **Gradients** are those of the envelope theorem at the final potentials:
  :math:`\partial S/\partial x_i = \sum_j \pi_{ij}\,\partial_{x_i} C_{ij}`
  (minus the self terms), the potentials for the weights, and
  :math:`\mathrm{KL}(\pi\,\|\,a\otimes b)` for :math:`\varepsilon`. They are
  exact at convergence, cost one pass over the cost matrices, and do not
  backpropagate through the iterations. Second derivatives are not those of
  :math:`S` (the potentials are held fixed).

  Args:
    x: points ``[*batch, n, d]``, float (a 1-D sample set is ``[..., n, 1]``).
    y: points ``[*batch, m, d]``, the same batch axes and ``d``.
    x_weights: probability weights ``[*batch, n]``, non-negative and summing
      to 1 per cloud (default uniform, :math:`1/n`). Not renormalized: the
      gradient with respect to them is the dual potential.
    y_weights: probability weights ``[*batch, m]`` (default uniform).
    epsilon: the entropic regularization :math:`\varepsilon > 0`, in the
      units of the cost (traceable; Feydy et al.'s "blur" :math:`\sigma` is
      :math:`\varepsilon = \sigma^p`).
    p: the cost's exponent, 1 or 2 (static).
    debias: subtract the self terms (static; default True).
    max_iterations: the most Sinkhorn iterations, annealing included (static).
    tolerance: convergence threshold on the L1 error of the plans' marginals
      (traceable). The value's error is of the order of ``tolerance`` times
      the typical cost, often far less.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the batch shape: one value per pair of clouds.

  Returns:
    The reduced divergence; one value per pair of clouds for ``"none"``.

  Raises:
    ValueError: clouds with different batch axes or dimensions, an empty
      cloud, weights of the wrong shape, ``epsilon <= 0``, ``p`` not 1 or 2,
      ``max_iterations < 1``.
    TypeError: integer ``x``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> x = jax.random.normal(jax.random.key(0), (64, 2))
    >>> print(abs(float(jaxobj.sinkhorn_divergence(x, x))) < 1e-4)
    True
    >>> shifted = x + jnp.array([1.0, 0.0])  # W2^2 / 2 = 0.5 as epsilon -> 0
    >>> print(round(float(jaxobj.sinkhorn_divergence(x, shifted, epsilon=1e-3)), 2))
    0.5

  References:
    Feydy, Séjourné, Vialard, Amari, Trouvé and Peyré, "Interpolating between
    Optimal Transport and MMD using Sinkhorn Divergences", AISTATS 2019;
    Cuturi, "Sinkhorn Distances", NeurIPS 2013; Peyré and Cuturi,
    "Computational Optimal Transport", 2019 (chapter 4, log-domain
    iterations and epsilon-scaling).
  """
  checks.check_range("epsilon", epsilon, low=0.0, low_inclusive=False)
  checks.check_range("tolerance", tolerance, low=0.0)
  checks.check_bool("debias", debias, loss="sinkhorn_divergence")
  if p not in (1, 2) or isinstance(p, bool):
    raise ValueError(f"p must be 1 or 2 (the cost |x - y|^p / p), got p={p!r}.")
  if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
    raise ValueError(f"max_iterations must be a positive int, got {max_iterations!r}.")
  xs, ys, a, b, shape = _clouds(x, y, x_weights, y_weights, where)
  eps = jnp.asarray(epsilon, xs.dtype)
  cxy = _cost(xs, ys, p)
  cxx = _cost(xs, xs, p) if debias else jnp.zeros((xs.shape[0], 0, 0), xs.dtype)
  cyy = _cost(ys, ys, p) if debias else jnp.zeros((ys.shape[0], 0, 0), ys.dtype)
  eps_rows = jnp.broadcast_to(eps, (xs.shape[0],))
  stop = jax.lax.stop_gradient
  solved = _solve(
    stop(cxy),
    stop(cxx),
    stop(cyy),
    stop(a),
    stop(b),
    stop(eps_rows),
    stop(jnp.asarray(tolerance, xs.dtype)),
    max_iterations=max_iterations,
    debias=debias,
  )
  values = _envelope(a, b, cxy, eps, solved)
  if debias:
    values = (
      values
      - 0.5 * _envelope(a, a, cxx, eps, solved["a"])
      - 0.5 * _envelope(b, b, cyy, eps, solved["b"])
    )
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)
