r"""Small convex problems over task weights, solved inside JAX with fixed work.

Every gradient strategy that needs an optimizer reduces its problem to the
:math:`T \times T` Gram matrix :math:`M = G G^\top` of the task gradients, so
the solvers here never touch the (large) gradients themselves.

For :math:`T \le` ``max_exact_tasks`` (10) the quadratic problems are solved
**exactly** by enumerating active sets: for every support :math:`S` (a subset
of the tasks) the equality-constrained problem restricted to :math:`S` is one
small linear solve; each candidate is made feasible (negative entries clipped)
and the feasible candidate with the lowest objective wins. The optimum's
support is among those tried, so the result is the global optimum up to the
round-off of a :math:`(T+1) \times (T+1)` solve. For larger :math:`T`
accelerated projected gradient descent runs a fixed number of iterations.

All problems are solved on a ridged Gram :math:`M + \epsilon\,\bar m\,I`
(:math:`\bar m = \operatorname{tr}(M)/T`, :math:`\epsilon` = ``RIDGE``), which
keeps each restricted system nonsingular when task gradients are collinear or
zero; the ridge moves objective values by a relative :math:`\sim 10^{-7}`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "RIDGE",
  "MAX_EXACT_TASKS",
  "ridged",
  "simplex_qp",
  "nonnegative_qp",
  "conflict_averse_weights",
  "nash_bargaining_weights",
  "project_to_simplex",
]

RIDGE = 1e-7
MAX_EXACT_TASKS = 10
ITERATIONS = 2000


def ridged(gram: jax.Array, ridge: float = RIDGE) -> jax.Array:
  """``gram + ridge * mean(diag(gram)) * I`` (plus a tiny floor for an all-zero Gram)."""
  t = gram.shape[-1]
  scale = jnp.trace(gram) / t
  tiny = jnp.finfo(gram.dtype).tiny ** 0.5
  return gram + (ridge * scale + tiny) * jnp.eye(t, dtype=gram.dtype)


@functools.cache
def _supports(t: int, include_empty: bool) -> np.ndarray:
  """Every subset of ``range(t)`` as a bool mask, shape ``(2**t [- 1], t)``."""
  codes = np.arange(0 if include_empty else 1, 2**t)
  return ((codes[:, None] >> np.arange(t)) & 1).astype(bool)


def _restricted(a: jax.Array, supports: np.ndarray) -> jax.Array:
  """``a`` restricted to each support, identity on the other rows: ``(K, T, T)``."""
  s = jnp.asarray(supports, a.dtype)
  outer = s[:, :, None] * s[:, None, :]
  return a * outer + jnp.eye(a.shape[-1], dtype=a.dtype) * (1 - s)[:, :, None]


def project_to_simplex(v: jax.Array) -> jax.Array:
  """Euclidean projection of ``v`` (last axis) onto the probability simplex."""
  t = v.shape[-1]
  u = jnp.sort(v, axis=-1)[..., ::-1]
  css = jnp.cumsum(u, axis=-1) - 1.0
  k = jnp.arange(1, t + 1, dtype=v.dtype)
  rho = jnp.sum(u - css / k > 0, axis=-1, keepdims=True)
  theta = jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(v.dtype)
  return jnp.maximum(v - theta, 0.0)


def _to_simplex(w):
  """Clip negatives and renormalize; ``ok`` is False where nothing positive is left."""
  w = jnp.maximum(w, 0.0)
  total = jnp.sum(w, axis=-1, keepdims=True)
  ok = total[..., 0] > 0
  return w / jnp.where(total > 0, total, 1.0), ok


def _quadratic(a, c, w):
  return 0.5 * jnp.einsum("...i,ij,...j->...", w, a, w) + jnp.sum(c * w, axis=-1)


def _max_eigenvalue(a):
  return jnp.linalg.eigvalsh(a)[..., -1]


def simplex_qp(
  a: jax.Array,
  c: jax.Array | None = None,
  *,
  max_exact_tasks: int = MAX_EXACT_TASKS,
  iterations: int = ITERATIONS,
  init: jax.Array | None = None,
) -> jax.Array:
  r"""Solves :math:`\min_{w \in \Delta} \tfrac12 w^\top A w + c^\top w` (``A`` PSD).

  :math:`\Delta` is the probability simplex. With ``c = None`` (zero) and
  :math:`A = G G^\top` this is the min-norm point of the convex hull of the
  rows of :math:`G` (MGDA). Exact by active-set enumeration for
  ``T <= max_exact_tasks``; otherwise ``iterations`` steps of accelerated
  projected gradient (FISTA) from ``init`` (default: uniform weights).
  """
  t = a.shape[-1]
  c = jnp.zeros((t,), a.dtype) if c is None else c
  if t <= max_exact_tasks:
    supports = _supports(t, include_empty=False)
    s = jnp.asarray(supports, a.dtype)
    k = supports.shape[0]
    kkt = jnp.zeros((k, t + 1, t + 1), a.dtype)
    kkt = kkt.at[:, :t, :t].set(_restricted(a, supports))
    kkt = kkt.at[:, :t, t].set(s).at[:, t, :t].set(s)
    rhs = jnp.concatenate([-c * s, jnp.ones((k, 1), a.dtype)], axis=1)
    w = jnp.linalg.solve(kkt, rhs[..., None])[..., :t, 0]
    w, ok = _to_simplex(jnp.where(jnp.isfinite(w), w, -1.0) * s)
    value = jnp.where(ok, _quadratic(a, c, w), jnp.inf)
    return w[jnp.argmin(value)]
  step = 1.0 / jnp.maximum(_max_eigenvalue(a), jnp.finfo(a.dtype).tiny)
  init = jnp.full((t,), 1.0 / t, a.dtype) if init is None else init
  return _fista(lambda w: a @ w + c, project_to_simplex, init, step, iterations)


def nonnegative_qp(
  a: jax.Array,
  c: jax.Array,
  *,
  max_exact_tasks: int = MAX_EXACT_TASKS,
  iterations: int = ITERATIONS,
) -> jax.Array:
  r"""Solves :math:`\min_{v \ge 0} \tfrac12 v^\top A v + c^\top v` for each row of ``c``.

  ``a`` is ``(T, T)`` and positive definite, ``c`` is ``(R, T)``; returns
  ``(R, T)``. Exact by active-set enumeration for ``T <= max_exact_tasks``
  (the empty support, :math:`v = 0`, included); otherwise FISTA.
  """
  t = a.shape[-1]
  if t <= max_exact_tasks:
    supports = _supports(t, include_empty=True)
    s = jnp.asarray(supports, a.dtype)
    rhs = -(s[:, :, None] * c.T[None])  # (K, T, R)
    v = jnp.linalg.solve(_restricted(a, supports), rhs)  # (K, T, R)
    v = jnp.maximum(jnp.where(jnp.isfinite(v), v, 0.0), 0.0) * s[:, :, None]
    v = jnp.swapaxes(v, 1, 2)  # (K, R, T)
    value = _quadratic(a, c[None], v)
    best = jnp.argmin(value, axis=0)  # (R,)
    return jnp.take_along_axis(v, best[None, :, None], axis=0)[0]
  step = 1.0 / jnp.maximum(_max_eigenvalue(a), jnp.finfo(a.dtype).tiny)
  solve = lambda ci: _fista(
    lambda v: a @ v + ci, lambda v: jnp.maximum(v, 0.0), jnp.zeros((t,), a.dtype), step, iterations
  )
  return jax.vmap(solve)(c)


def _fista(grad, project, x0, step, iterations):
  def body(_, carry):
    x, y, theta = carry
    x_new = project(y - step * grad(y))
    theta_new = 0.5 * (1 + jnp.sqrt(1 + 4 * theta**2))
    y = x_new + ((theta - 1) / theta_new) * (x_new - x)
    return x_new, y, theta_new

  x, _, _ = jax.lax.fori_loop(0, iterations, body, (x0, x0, jnp.ones((), x0.dtype)))
  return x


def conflict_averse_weights(
  gram: jax.Array,
  radius: jax.Array,
  *,
  max_exact_tasks: int = MAX_EXACT_TASKS,
  iterations: int = ITERATIONS,
) -> jax.Array:
  r"""CAGrad's dual: :math:`\min_{w\in\Delta} b^\top w + r\sqrt{w^\top M w}`,
  :math:`b = M\mathbf 1/T`.

  ``gram`` is :math:`M` (ridged, so :math:`w^\top M w > 0`) and ``radius`` is
  :math:`r = c\,\lVert g_0 \rVert`.

  Exact for ``T <= max_exact_tasks``: on a face :math:`S` the minimizer of
  :math:`b^\top w + \tfrac{r}{2\mu} w^\top M w` is affine in :math:`\mu`,
  :math:`w(\mu) = a_S + \mu\,d_S`, and the minimizer of the objective is
  :math:`w(\mu)` with :math:`\mu = \lVert g_{w(\mu)} \rVert`, a quadratic
  equation in :math:`\mu`; both roots of every face are tried. For larger
  :math:`T`, bisection on :math:`\mu` (whose optimality condition is monotone)
  with a FISTA inner solve.
  """
  t = gram.shape[-1]
  b = gram @ jnp.full((t,), 1.0 / t, gram.dtype)

  def objective(w):
    return w @ b + radius * jnp.sqrt(jnp.maximum(jnp.einsum("...i,ij,...j->...", w, gram, w), 0.0))

  if t <= max_exact_tasks:
    supports = _supports(t, include_empty=False)
    s = jnp.asarray(supports, gram.dtype)
    rhs = jnp.stack([b * s, s], axis=-1)  # (K, T, 2)
    sol = jnp.linalg.solve(_restricted(gram, supports), rhs) * s[:, :, None]
    u, v = sol[..., 0], sol[..., 1]
    sv = jnp.sum(v, axis=-1, keepdims=True)
    a = v / sv
    safe_r = jnp.where(radius > 0, radius, 1.0)
    d = jnp.where(radius > 0, (jnp.sum(u, -1, keepdims=True) / sv * v - u) / safe_r, 0.0)
    qa = jnp.einsum("ki,ij,kj->k", a, gram, a)
    qad = jnp.einsum("ki,ij,kj->k", a, gram, d)
    qd = jnp.einsum("ki,ij,kj->k", d, gram, d)
    # (qd - 1) mu^2 + 2 qad mu + qa = 0
    quad = qd - 1.0
    disc = jnp.maximum(qad**2 - quad * qa, 0.0)
    root = jnp.sqrt(disc)
    safe_quad = jnp.where(quad != 0, quad, 1.0)
    mu1 = jnp.where(quad != 0, (-qad + root) / safe_quad, -qa / jnp.where(qad != 0, 2 * qad, 1.0))
    mu2 = jnp.where(quad != 0, (-qad - root) / safe_quad, mu1)
    mus = jnp.stack([jnp.zeros_like(mu1), jnp.maximum(mu1, 0.0), jnp.maximum(mu2, 0.0)])
    cand = a[None] + mus[:, :, None] * d[None]  # (3, K, T)
    cand = jnp.where(jnp.isfinite(cand), cand, -1.0).reshape(-1, t)
    cand, ok = _to_simplex(cand)
    value = jnp.where(ok, objective(cand), jnp.inf)
    return cand[jnp.argmin(value)]

  # mu-bisection: h'(mu) has the sign of mu^2 - q(w_mu), increasing in mu.
  lo = jnp.log(jnp.sqrt(jnp.min(jnp.diag(gram))) * 1e-3 + jnp.finfo(gram.dtype).tiny)
  hi = jnp.log(jnp.sqrt(jnp.max(jnp.diag(gram))) + jnp.finfo(gram.dtype).tiny)

  def inner(mu, w):
    return simplex_qp(
      (radius / mu) * gram, b, max_exact_tasks=0, iterations=iterations // 10, init=w
    )

  def body(_, carry):
    lo, hi, w = carry
    mid = 0.5 * (lo + hi)
    w = inner(jnp.exp(mid), w)
    below = w @ gram @ w > jnp.exp(2 * mid)  # h' < 0: the optimum is above mid
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid), w

  w0 = jnp.full((t,), 1.0 / t, gram.dtype)
  lo, hi, w = jax.lax.fori_loop(0, 40, body, (lo, hi, w0))
  return inner(jnp.exp(0.5 * (lo + hi)), w)


def nash_bargaining_weights(
  gram: jax.Array, init: jax.Array | None = None, *, iterations: int = 20
) -> jax.Array:
  r"""The positive :math:`\alpha` with :math:`M\alpha = 1/\alpha` (elementwise).

  This is the unique minimizer of the self-concordant convex function
  :math:`f(\alpha) = \tfrac12 \alpha^\top M \alpha - \sum_t \log\alpha_t`
  (its gradient is :math:`M\alpha - 1/\alpha`), found by damped Newton steps
  :math:`\alpha \leftarrow \alpha - \Delta/(1 + \lambda)`, :math:`\lambda`
  the Newton decrement, which stay positive and converge globally (quadratically
  near the optimum). ``gram`` must be positive definite (ridged).
  """
  t = gram.shape[-1]
  default = 1.0 / jnp.sqrt(jnp.diag(gram))
  if init is None:
    init = default
  else:
    init = jnp.where(jnp.all(init > 0) & jnp.all(jnp.isfinite(init)), init, default)

  def body(_, alpha):
    grad = gram @ alpha - 1.0 / alpha
    hess = gram + jnp.diag(1.0 / alpha**2)
    delta = jnp.linalg.solve(hess, grad)
    decrement = jnp.sqrt(jnp.maximum(grad @ delta, 0.0))
    new = alpha - delta / (1.0 + decrement)
    return jnp.where(jnp.all(jnp.isfinite(new) & (new > 0)), new, alpha)

  del t
  return jax.lax.fori_loop(0, iterations, body, init)
