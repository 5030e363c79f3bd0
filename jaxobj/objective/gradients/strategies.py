r"""Multi-task gradient strategies: how the task gradients :math:`g_1..g_T` become one update.

Notation: :math:`G` stacks the task gradients as rows, :math:`M = G G^\top` is
their Gram matrix, :math:`\Delta` the probability simplex. Each class is a
frozen dataclass of hyperparameters; see :class:`GradientStrategy` for the
shared ``init``/``update`` interface and :mod:`jaxobj.objective.gradients`
for a usage guide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxobj.objective.gradients import solvers
from jaxobj.objective.gradients.base import (
  GradientStrategy,
  gram_matrix,
  safe_divide,
  weighted_sum,
)

__all__ = [
  "WeightedSum",
  "PCGrad",
  "GradVac",
  "GradDrop",
  "MGDA",
  "CAGrad",
  "GradNorm",
  "IMTLG",
  "NashMTL",
  "AlignedMTL",
  "UPGrad",
  "DBMTL",
]


def _task_orders(key, num_tasks: int, shuffle: bool) -> jax.Array:
  """``(T, T)``: row ``i`` is the order in which task ``i`` meets the tasks."""
  if not shuffle:
    return jnp.tile(jnp.arange(num_tasks), (num_tasks, 1))
  keys = jax.random.split(key, num_tasks)
  return jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)


def _check_task_vector(strategy, name, value, num_tasks):
  if value is not None and len(value) != num_tasks:
    raise ValueError(
      f"{type(strategy).__name__}({name}=...) has {len(value)} entries, but the "
      f"gradients stack {num_tasks} tasks; give one entry per task."
    )


@dataclasses.dataclass(frozen=True)
class WeightedSum(GradientStrategy):
  r"""Fixed weights, :math:`u = \sum_t w_t g_t` (equal weighting, "EW", by default).

  The gradient of the plain (weighted) sum of the task losses: the baseline
  every other strategy is compared with.

  Args:
    task_weights: one weight per task (default: all 1).
  """

  task_weights: Sequence[float] | None = None

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    _check_task_vector(self, "task_weights", self.task_weights, t)
    if self.task_weights is None:
      return jnp.ones((t,), gram.dtype), {}, {}
    return jnp.asarray(self.task_weights, gram.dtype), {}, {}


@dataclasses.dataclass(frozen=True)
class PCGrad(GradientStrategy):
  r"""Projecting conflicting gradients (Yu et al., 2020).

  For every task :math:`i`, starting from :math:`\tilde g_i = g_i`, and for the
  other tasks :math:`j` in random order:

  .. math::
     \text{if } \tilde g_i \cdot g_j < 0: \quad
     \tilde g_i \leftarrow \tilde g_i - \frac{\tilde g_i \cdot g_j}{\lVert g_j \rVert^2} g_j,
     \qquad u = \sum_i \tilde g_i .

  Every :math:`\tilde g_i` stays a combination of the task gradients, so the
  projections run on the Gram matrix alone and ``info["weights"]`` gives
  :math:`u = \sum_t w_t g_t`. With two tasks the projected gradients, and the
  update, conflict with neither task. A zero task gradient is never projected
  on. ``info["projections"]`` counts the projections made.

  Args:
    shuffle: draw a new task order for every task at every call (the paper);
      ``False`` uses the order ``0..T-1``.
    seed: seed of the state's PRNG key when ``init`` gets no ``key``.

  References:
    Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for
    Multi-Task Learning", NeurIPS 2020.
  """

  shuffle: bool = True
  seed: int = 0
  uses_key = True

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    orders = _task_orders(key, t, self.shuffle)
    eye = jnp.eye(t, dtype=gram.dtype)

    def project(i, order):
      def body(k, carry):
        c, count = carry
        j = order[k]
        dot = c @ gram[:, j]
        sq = gram[j, j]
        hit = (j != i) & (dot < 0) & (sq > 0)
        c = c - jnp.where(hit, safe_divide(dot, sq), 0.0) * eye[j]
        return c, count + hit.astype(jnp.int32)

      return jax.lax.fori_loop(0, t, body, (eye[i], jnp.zeros((), jnp.int32)))

    coefficients, count = jax.vmap(project)(jnp.arange(t), orders)
    return jnp.sum(coefficients, axis=0), {}, {"projections": jnp.sum(count)}


@dataclasses.dataclass(frozen=True)
class GradVac(GradientStrategy):
  r"""Gradient vaccine (Wang et al., 2021): align task gradients to their usual similarity.

  Keeps an EMA :math:`\hat\phi_{ij}` of the cosine :math:`\phi_{ij}` between
  :math:`\tilde g_i` and :math:`g_j` (state ``"target"``, starting at 0). For
  every task :math:`i` and the other tasks :math:`j` in random order, when
  :math:`\phi_{ij} < \hat\phi_{ij}`:

  .. math::
     \tilde g_i \leftarrow \tilde g_i + \frac{\lVert \tilde g_i \rVert
        \big(\hat\phi_{ij}\sqrt{1-\phi_{ij}^2} - \phi_{ij}\sqrt{1-\hat\phi_{ij}^2}\big)}
        {\lVert g_j \rVert \sqrt{1-\hat\phi_{ij}^2}}\, g_j,
     \qquad \hat\phi_{ij} \leftarrow (1-\beta)\hat\phi_{ij} + \beta\,\phi_{ij},

  which sets the cosine of :math:`\tilde g_i` and :math:`g_j` to exactly
  :math:`\hat\phi_{ij}`; :math:`u = \sum_i \tilde g_i`. With the target at 0
  this is PCGrad. The cosines are taken over the whole stack (the paper's
  "whole model" granularity).

  Args:
    beta: EMA rate of the target cosines (the paper's 1e-2).
    shuffle: random task order per task and call; ``False``: ``0..T-1``.
    seed: seed of the state's PRNG key when ``init`` gets no ``key``.

  References:
    Wang, Tsvetkov, Firat and Cao, "Gradient Vaccine: Investigating and
    Improving Multi-task Optimization in Massively Multilingual Models",
    ICLR 2021.
  """

  beta: float = 0.01
  shuffle: bool = True
  seed: int = 0
  uses_key = True

  def _init_state(self, num_tasks, like):
    return {"target": jnp.zeros((num_tasks, num_tasks), jnp.float32)}

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    orders = _task_orders(key, t, self.shuffle)
    eye = jnp.eye(t, dtype=gram.dtype)
    target = jnp.clip(state["target"].astype(gram.dtype), -1 + 1e-6, 1 - 1e-6)
    col = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))

    def vaccinate(i, order):
      def body(k, carry):
        c, phis = carry
        j = order[k]
        norm_i = jnp.sqrt(jnp.maximum(c @ gram @ c, 0.0))
        phi = jnp.clip(safe_divide(c @ gram[:, j], norm_i * col[j]), -1.0, 1.0)
        goal = target[i, j]
        scale = norm_i * (goal * jnp.sqrt(1 - phi**2) - phi * jnp.sqrt(1 - goal**2))
        coef = safe_divide(scale, col[j] * jnp.sqrt(1 - goal**2))
        hit = (j != i) & (phi < goal) & (norm_i > 0) & (col[j] > 0)
        c = c + jnp.where(hit, coef, 0.0) * eye[j]
        phis = phis.at[j].set(jnp.where(j != i, phi, 0.0))
        return c, phis

      return jax.lax.fori_loop(0, t, body, (eye[i], jnp.zeros((t,), gram.dtype)))

    coefficients, phis = jax.vmap(vaccinate)(jnp.arange(t), orders)
    off = 1.0 - eye
    new_target = state["target"] + off * self.beta * (phis - state["target"])
    return (
      jnp.sum(coefficients, axis=0),
      {"target": new_target.astype(jnp.float32)},
      {"target_cosine": new_target},
    )


@dataclasses.dataclass(frozen=True)
class GradDrop(GradientStrategy):
  r"""Gradient sign dropout (Chen et al., 2020): keep one sign per element.

  Per element of the stack, the positive sign purity and a fresh uniform draw
  :math:`U` decide which sign survives:

  .. math::
     \mathcal P = \tfrac12\Big(1 + \frac{\sum_i g_i}{\sum_i |g_i|}\Big), \qquad
     m_i = \ell_i + (1-\ell_i)\big(\mathbb 1[\mathcal P > U]\,\mathbb 1[g_i > 0]
           + \mathbb 1[\mathcal P < U]\,\mathbb 1[g_i < 0]\big), \qquad
     u = \sum_i m_i \odot g_i

  (:math:`\ell_i` the leak). The paper applies it to gradients at an
  activation layer: use it in representation mode, with ``sum_axes`` naming
  the per-example axes (e.g. ``(0,)`` for the batch axis of a ``(B, D)``
  representation) to compute :math:`\mathcal P` from their sum, as the paper
  does. ``info["weights"]`` is the fraction of each task's nonzero entries
  kept (the update is not a weighted sum of the task gradients).

  Args:
    leak: :math:`\ell`, a float or one value per task, in [0, 1]
      (1 passes a task's gradient through untouched).
    sum_axes: axes of one task's gradient leaves (0 is the first axis after the
      task axis) summed over before computing :math:`\mathcal P`.
    seed: seed of the state's PRNG key when ``init`` gets no ``key``.

  References:
    Chen, Ngiam, Huang, Luong, Kretzschmar, Chai and Anguelov, "Just Pick a
    Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
    NeurIPS 2020.
  """

  leak: float | Sequence[float] = 0.0
  sum_axes: tuple[int, ...] = ()
  seed: int = 0
  uses_key = True

  def _update(self, grads, gram, state, losses, key):
    leaves, treedef = jax.tree.flatten(grads)
    t = leaves[0].shape[0]
    if isinstance(self.leak, (int, float)):
      leak = [float(self.leak)] * t
    else:
      _check_task_vector(self, "leak", self.leak, t)
      leak = [float(v) for v in self.leak]
    keys = jax.random.split(key, len(leaves))
    kept, nonzero, out = [0.0] * t, [0.0] * t, []
    for k, leaf in zip(keys, leaves):
      dtype = jnp.result_type(leaf.dtype, jnp.float32)
      # Task by task: sums over the task axis as additions, which XLA fuses (its
      # CPU reductions over a leading axis are many times slower).
      g = [leaf[i].astype(dtype) for i in range(t)]
      axes = tuple(a % (leaf.ndim - 1) for a in self.sum_axes) if leaf.ndim > 1 else ()
      summed = [jnp.sum(x, axis=axes, keepdims=True) if axes else x for x in g]
      total, magnitude = _task_sum(summed), _task_sum([jnp.abs(x) for x in summed])
      purity = 0.5 * (1.0 + safe_divide(total, magnitude))
      uniform = jax.random.uniform(k, purity.shape, dtype)
      positive, negative = purity > uniform, purity < uniform
      update = []
      for i, x in enumerate(g):
        mask = jnp.where(x > 0, positive, jnp.where(x < 0, negative, False))
        m = leak[i] + (1.0 - leak[i]) * mask.astype(dtype)
        update.append(m * x)
        kept[i] = kept[i] + jnp.sum(jnp.where(x != 0, m, 0.0))
        nonzero[i] = nonzero[i] + jnp.sum(x != 0)
      out.append(_task_sum(update).astype(leaf.dtype))
    weights = safe_divide(jnp.stack(kept), jnp.stack(nonzero)).astype(jnp.float32)
    return jax.tree.unflatten(treedef, out), {"weights": weights}, {"weights": weights}


def _task_sum(parts):
  total = parts[0]
  for p in parts[1:]:
    total = total + p
  return total


_NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@dataclasses.dataclass(frozen=True)
class MGDA(GradientStrategy):
  r"""Multiple-gradient descent: the min-norm point of the convex hull (Sener & Koltun, 2018).

  .. math::
     w^\star = \operatorname*{arg\,min}_{w \in \Delta} \Big\lVert \sum_t w_t \hat g_t \Big\rVert^2
             = \operatorname*{arg\,min}_{w \in \Delta} w^\top \hat M w,
     \qquad u = \sum_t w^\star_t g_t

  The update is a common descent direction of all tasks, zero exactly when the
  parameters are Pareto-stationary (in particular when a task gradient is
  zero). :math:`\hat g_t = g_t / n_t` with ``normalize``: ``"none"``
  (:math:`n_t = 1`, the min-norm point itself), ``"l2"``
  (:math:`\lVert g_t\rVert`), ``"loss"`` (:math:`L_t`) or ``"loss+"``
  (:math:`L_t \lVert g_t \rVert`); as in the authors' code the weights found
  for the normalized gradients multiply the raw ones. Solved exactly by
  active-set enumeration for :math:`T \le 10`, by FISTA beyond
  (:mod:`~jaxobj.objective.gradients.solvers`). ``info["min_norm"]`` is
  :math:`\lVert u \rVert`. With ``representation`` gradients this is MGDA-UB.

  References:
    Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018; Désidéri, "Multiple-gradient descent algorithm (MGDA) for
    multiobjective optimization", 2012.
  """

  normalize: str = "none"

  def __post_init__(self):
    if self.normalize not in _NORMALIZATIONS:
      raise ValueError(f"MGDA(normalize={self.normalize!r}): choose one of {_NORMALIZATIONS}.")

  @property
  def needs_losses(self):
    return self.normalize in ("loss", "loss+")

  def weights(self, gram, state, *, losses=None, key=None):
    norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
    if self.normalize == "none":
      scale = jnp.ones_like(norms)
    elif self.normalize == "l2":
      scale = norms
    elif self.normalize == "loss":
      scale = losses
    else:
      scale = losses * norms
    inv = safe_divide(1.0, scale)
    inv = jnp.where(scale > 0, inv, 1.0)
    w = solvers.simplex_qp(solvers.ridged(gram * inv[:, None] * inv[None, :]))
    return w, {}, {"min_norm": jnp.sqrt(jnp.maximum(w @ gram @ w, 0.0))}


@dataclasses.dataclass(frozen=True)
class CAGrad(GradientStrategy):
  r"""Conflict-averse gradient descent (Liu et al., 2021).

  The update maximizes the worst task's improvement within a ball around the
  mean gradient :math:`g_0 = \tfrac1T\sum_t g_t`:

  .. math::
     \max_{d} \min_i g_i^\top d \ \text{ s.t. } \lVert d - g_0\rVert \le c\lVert g_0\rVert,
     \qquad d = g_0 + \frac{c \lVert g_0 \rVert}{\lVert g_w \rVert} g_w,
     \quad w = \operatorname*{arg\,min}_{w\in\Delta}
       g_w^\top g_0 + c\lVert g_0\rVert\lVert g_w\rVert

  with :math:`g_w = \sum_t w_t g_t`; :math:`u = d / (1 + c^2)` (``rescale=1``,
  the paper's default), :math:`d/(1+c)` (``2``) or :math:`d` (``0``).
  :math:`c = 0` gives the mean gradient. The dual over :math:`w` is solved
  exactly for :math:`T \le 10`
  (:func:`~jaxobj.objective.gradients.solvers.conflict_averse_weights`).

  Args:
    c: the ball's radius relative to :math:`\lVert g_0 \rVert` (0.4 in the
      paper's NYUv2 runs), >= 0.
    rescale: 0, 1 or 2, as above.

  References:
    Liu, Liu, Jin, Stone and Liu, "Conflict-Averse Gradient Descent for
    Multi-task Learning", NeurIPS 2021.
  """

  c: float = 0.4
  rescale: int = 1

  def __post_init__(self):
    if not self.c >= 0:
      raise ValueError(f"CAGrad(c={self.c!r}): c is a radius, >= 0.")
    if self.rescale not in (0, 1, 2):
      raise ValueError(f"CAGrad(rescale={self.rescale!r}): choose 0, 1 or 2.")

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    g0_norm = jnp.sqrt(jnp.maximum(jnp.sum(gram), 0.0)) / t
    radius = self.c * g0_norm
    w = solvers.conflict_averse_weights(solvers.ridged(gram), radius)
    gw_norm = jnp.sqrt(jnp.maximum(w @ gram @ w, 0.0))
    lam = safe_divide(radius, gw_norm)
    scale = {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
    return (1.0 / t + lam * w) / scale, {}, {"dual_weights": w}


@dataclasses.dataclass(frozen=True)
class GradNorm(GradientStrategy):
  r"""Gradient normalization with learned task weights (Chen et al., 2018).

  The update is :math:`u = \sum_t w_t g_t` with the learned weights
  :math:`w` (state ``"weights"``, starting at 1). Then the weights take one
  optimizer step on

  .. math::
     L_{\text{grad}} = \sum_t \big| w_t \lVert g_t \rVert - \bar G\, r_t^{\alpha} \big|,
     \quad \bar G = \tfrac1T \sum_t w_t \lVert g_t \rVert,
     \quad r_t = \frac{L_t / L_t^{(0)}}{\tfrac1T\sum_s L_s / L_s^{(0)}}

  (the targets :math:`\bar G r_t^\alpha` held constant) and are renormalized
  to :math:`\sum_t w_t = T` (negative weights clipped to 0 first).
  :math:`L^{(0)}` are the losses of the first call (state
  ``"initial_losses"``). At the fixed point the weighted gradient norms
  :math:`w_t \lVert g_t \rVert` equal :math:`\bar G r_t^\alpha`, all equal
  when the tasks train at the same rate or :math:`\alpha = 0`. The paper
  takes the norms at the last shared layer; representation mode is the
  cheap analogue here. Needs ``losses=``.

  Args:
    alpha: the asymmetry :math:`\alpha` (1.5 in the paper's NYUv2 runs).
    learning_rate: of the default optimizer, ``optax.adam(learning_rate)``.
    optimizer: any optax transformation for the weights (its state lives in
      the strategy's state, under ``"optimizer"``).

  References:
    Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks",
    ICML 2018.
  """

  alpha: float = 1.5
  learning_rate: float = 0.025
  optimizer: Any = None
  needs_losses = True

  def _optimizer(self):
    return self.optimizer if self.optimizer is not None else optax.adam(self.learning_rate)

  def _init_state(self, num_tasks, like):
    w = jnp.ones((num_tasks,), jnp.float32)
    return {
      "initial_losses": jnp.ones((num_tasks,), jnp.float32),
      "has_initial": jnp.zeros((), bool),
      "optimizer": self._optimizer().init(w),
    }

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    w = state["weights"].astype(gram.dtype)
    norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
    initial = jnp.where(state["has_initial"], state["initial_losses"].astype(gram.dtype), losses)
    ratio = jnp.where(initial > 0, safe_divide(losses, initial), 1.0)
    ratio = jnp.where(ratio > 0, ratio, 1.0)
    relative = ratio / jnp.mean(ratio)
    weighted = w * norms
    targets = jax.lax.stop_gradient(jnp.mean(weighted) * relative**self.alpha)
    grad = jnp.sign(weighted - targets) * norms
    updates, opt_state = self._optimizer().update(
      grad.astype(jnp.float32), state["optimizer"], state["weights"]
    )
    new = jnp.maximum(optax.apply_updates(state["weights"], updates), 0.0)
    total = jnp.sum(new)
    new = jnp.where(total > 0, t * new / jnp.where(total > 0, total, 1.0), 1.0)
    extra = {
      "weights": new.astype(jnp.float32),
      "optimizer": opt_state,
      "initial_losses": initial.astype(jnp.float32),
      "has_initial": jnp.ones((), bool),
    }
    info = {"grad_loss": jnp.sum(jnp.abs(weighted - targets)), "targets": targets}
    return w, extra, info


@dataclasses.dataclass(frozen=True)
class IMTLG(GradientStrategy):
  r"""Impartial MTL, gradient part (IMTL-G; Liu et al., 2021): equal projections.

  Finds the combination :math:`u = \sum_t \alpha_t g_t`,
  :math:`\sum_t\alpha_t = 1`, whose projections on every unit task gradient
  :math:`\hat u_t = g_t/\lVert g_t\rVert` are equal:

  .. math::
     u^\top \hat u_1 = \dots = u^\top \hat u_T, \qquad
     \alpha_{2:T} = g_1 U^\top (D U^\top)^{-1},\ \alpha_1 = 1 - \textstyle\sum_{t\ge2}\alpha_t,

  with :math:`D` and :math:`U` the rows :math:`g_1 - g_t` and
  :math:`\hat u_1 - \hat u_t`. Solved here as one
  :math:`(T+1)\times(T+1)` least-squares system on the Gram matrix (so
  degenerate, collinear tasks give the minimum-norm weights); tasks with a zero
  gradient are left out of the equal-projection condition and get weight 0.
  This is the gradient half of IMTL; its loss half (IMTL-L) is a loss-level
  scheme.

  References:
    Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards Impartial
    Multi-task Learning", ICLR 2021.
  """

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
    active = norms > 0
    proj = safe_divide(gram, norms[:, None])  # row t: u_t . g_s
    rows = jnp.where(active[:, None], proj, jnp.eye(t, dtype=gram.dtype))
    system = jnp.zeros((t + 1, t + 1), gram.dtype)
    system = system.at[:t, :t].set(rows).at[:t, t].set(-active.astype(gram.dtype))
    system = system.at[t, :t].set(active.astype(gram.dtype))
    rhs = jnp.zeros((t + 1,), gram.dtype).at[t].set(jnp.where(jnp.any(active), 1.0, 0.0))
    scale = jnp.where(jnp.any(active), jnp.max(norms), 1.0)
    sol = jnp.linalg.lstsq(system / jnp.where(jnp.arange(t + 1) < t, scale, 1.0)[:, None], rhs)[0]
    alpha = jnp.where(active, sol[:t], 0.0)
    return alpha, {}, {"projection": sol[t]}


@dataclasses.dataclass(frozen=True)
class NashMTL(GradientStrategy):
  r"""Multi-task learning as a bargaining game (Nash-MTL; Navon et al., 2022).

  The update :math:`u = \sum_t \alpha_t g_t` with the Nash bargaining solution

  .. math::
     M \alpha = 1/\alpha \ \ (\text{elementwise}), \quad \alpha > 0,
     \qquad\text{i.e.}\quad g_t^\top u = 1/\alpha_t,

  so every task's directional derivative is inversely proportional to its
  weight, and the update is invariant to the scale of the gradients (doubling
  them halves :math:`\alpha`). :math:`\alpha` is the minimizer of the
  self-concordant :math:`\tfrac12\alpha^\top\tilde M\alpha - \sum_t\log\alpha_t`
  on :math:`\tilde M = M/\lVert M\rVert_F` (for conditioning, as in the
  authors' code; rescaled after), found by damped Newton steps warm-started
  from the previous weights
  (:func:`~jaxobj.objective.gradients.solvers.nash_bargaining_weights`) where
  the paper runs a sequence of convex programs. With ``max_norm`` the update
  is scaled down to that norm when longer (the paper clips the shared
  gradient at 1). A zero task gradient gets a large, finite weight (through
  the solver's ridge) and adds nothing.

  Args:
    update_weights_every: recompute the weights every this many calls and
      reuse the last ones in between (the paper's speed-up).
    max_norm: largest norm of the update (``None``: no clipping).
    iterations: Newton steps per solve.

  References:
    Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and Fetaya,
    "Multi-Task Learning as a Bargaining Game", ICML 2022.
  """

  update_weights_every: int = 1
  max_norm: float | None = None
  iterations: int = 30

  def __post_init__(self):
    if self.update_weights_every < 1:
      raise ValueError(
        f"NashMTL(update_weights_every={self.update_weights_every!r}): an integer >= 1."
      )
    if self.max_norm is not None and not self.max_norm > 0:
      raise ValueError(f"NashMTL(max_norm={self.max_norm!r}): a positive norm, or None.")

  def weights(self, gram, state, *, losses=None, key=None):
    scale = jnp.sqrt(jnp.sum(gram**2))
    normalized = solvers.ridged(safe_divide(gram, scale), 1e-6)
    root = jnp.sqrt(jnp.where(scale > 0, scale, 1.0))
    previous = state["weights"].astype(gram.dtype)
    init = jnp.where(state["step"] > 0, previous * root, 1.0 / jnp.sqrt(jnp.diag(normalized)))
    alpha = solvers.nash_bargaining_weights(normalized, init, iterations=self.iterations) / root
    alpha = jnp.where(state["step"] % self.update_weights_every == 0, alpha, previous)
    if self.max_norm is not None:
      norm = jnp.sqrt(jnp.maximum(alpha @ gram @ alpha, 0.0))
      alpha = alpha * jnp.minimum(1.0, safe_divide(self.max_norm, norm) + (norm == 0))
    return alpha, {}, {}


@dataclasses.dataclass(frozen=True)
class AlignedMTL(GradientStrategy):
  r"""Aligned-MTL (Senushkin et al., 2023): align the principal components of the gradients.

  With the eigendecomposition :math:`M = V \Lambda V^\top` (eigenvalues below
  ``rtol`` :math:`\cdot \lambda_{\max}` dropped as rank deficiency):

  .. math::
     B = \sqrt{\lambda_{\min}}\; V \Lambda^{-1/2} V^\top, \qquad
     \alpha = B w, \qquad u = \sum_t \alpha_t g_t = (BG)^\top w

  The rows of :math:`BG` are orthogonal with equal norms
  :math:`\sqrt{\lambda_{\min}}` (the condition number of the aligned system
  is 1), and :math:`w` are the task weights.

  Args:
    task_weights: :math:`w` (default: all 1, as in the authors' code).
    rtol: relative eigenvalue threshold; default ``T * eps`` of the dtype.

  References:
    Senushkin, Patakin, Kuznetsov and Konushin, "Independent Component
    Alignment for Multi-Task Learning", CVPR 2023.
  """

  task_weights: Sequence[float] | None = None
  rtol: float | None = None

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    _check_task_vector(self, "task_weights", self.task_weights, t)
    lam, vec = jnp.linalg.eigh(gram)
    rtol = self.rtol if self.rtol is not None else t * float(jnp.finfo(gram.dtype).eps)
    keep = lam > rtol * jnp.max(lam)
    keep = keep & (lam > 0)
    lam_min = jnp.min(jnp.where(keep, lam, jnp.inf))
    inv_sqrt = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
    b = jnp.sqrt(jnp.where(jnp.any(keep), lam_min, 0.0)) * (vec * inv_sqrt) @ vec.T
    w = (
      jnp.ones((t,), gram.dtype)
      if self.task_weights is None
      else jnp.asarray(self.task_weights, gram.dtype)
    )
    return b @ w, {}, {"rank": jnp.sum(keep)}


@dataclasses.dataclass(frozen=True)
class UPGrad(GradientStrategy):
  r"""Unconflicting projection of gradients (UPGrad; Quinton & Rey, 2024).

  Projects every task gradient onto the dual cone of the task gradients,
  :math:`C = \{x : G x \ge 0\}` (the directions that conflict with no task),
  and averages:

  .. math::
     u = \frac1T \sum_i \pi_C(g_i), \qquad
     \pi_C(g_i) = G^\top (e_i + v_i), \quad
     v_i = \operatorname*{arg\,min}_{v \ge 0} \tfrac12 v^\top M v + v^\top M e_i

  (the dual of the projection, a nonnegative QP per task, solved exactly for
  :math:`T \le 10`). So :math:`G u \ge 0`: the update conflicts with no task,
  and equals the mean gradient when no pair conflicts. torchjd regularizes the
  normalized Gram by default (``reg_eps=1e-4``), so its values differ from
  these exact ones by about that much.

  References:
    Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization",
    arXiv:2406.16232, 2024.
  """

  def weights(self, gram, state, *, losses=None, key=None):
    t = gram.shape[0]
    v = solvers.nonnegative_qp(solvers.ridged(gram), gram)
    return jnp.mean(jnp.eye(t, dtype=gram.dtype) + v, axis=0), {}, {}


@dataclasses.dataclass(frozen=True)
class DBMTL(GradientStrategy):
  r"""Dual-balancing multi-task learning (DB-MTL; Lin et al., 2023).

  Balances the loss scales with logarithms and the gradient magnitudes with
  the largest one. With :math:`\hat g_t = \nabla\log(L_t + \epsilon) =
  g_t / (L_t + \epsilon)` and the step :math:`k = 1, 2, \dots`:

  .. math::
     h_t \leftarrow \beta_k h_t + (1 - \beta_k)\,\hat g_t,\quad \beta_k = \beta / k^{\sigma},
     \qquad u = \sum_t \frac{\max_s \lVert h_s\rVert}{\lVert h_t\rVert + \epsilon}\, h_t

  The averages :math:`h` (state ``"buffer"``, zeros at first) have one
  gradient per task, so ``init`` needs ``like=`` (the shared params, or the
  representation). ``info["weights"]`` are the factors on :math:`h_t`. Needs
  ``losses=``.

  Args:
    beta: :math:`\beta` (0.9 in the authors' code).
    beta_sigma: :math:`\sigma` (0).
    eps: :math:`\epsilon` (1e-8).

  References:
    Lin, Ye, Xu, Shi and Zhang, "Dual-Balancing for Multi-Task Learning",
    arXiv:2308.12029, 2023.
  """

  beta: float = 0.9
  beta_sigma: float = 0.0
  eps: float = 1e-8
  needs_losses = True
  needs_like = True

  def _init_state(self, num_tasks, like):
    return {
      "buffer": jax.tree.map(
        lambda x: jnp.zeros((num_tasks,) + tuple(np.shape(x)), jnp.float32), like
      )
    }

  def _update(self, grads, gram, state, losses, key):
    step = (state["step"] + 1).astype(losses.dtype)
    beta = self.beta / step**self.beta_sigma
    scale = 1.0 / (losses + self.eps)

    def average(h, g):
      shaped = scale.reshape((-1,) + (1,) * (g.ndim - 1)).astype(h.dtype)
      return beta.astype(h.dtype) * h + (1 - beta.astype(h.dtype)) * shaped * g.astype(h.dtype)

    buffer = jax.tree.map(average, state["buffer"], grads)
    norms = jnp.sqrt(jnp.maximum(jnp.diag(gram_matrix(buffer, gram.dtype)), 0.0))
    alpha = jnp.max(norms) / (norms + self.eps)
    update = jax.tree.map(lambda u, g: u.astype(g.dtype), weighted_sum(buffer, alpha), grads)
    alpha32 = alpha.astype(jnp.float32)
    return update, {"buffer": buffer, "weights": alpha32}, {"weights": alpha32}
