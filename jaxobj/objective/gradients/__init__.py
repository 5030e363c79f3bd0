r"""Multi-task gradient strategies, with every task gradient computed in one compiled step.

Loss-level schemes (:mod:`jaxobj.objective.weighting`) weigh the task *losses*;
the strategies here act on the task *gradients* :math:`g_1..g_T`: they
project away conflicts (PCGrad, GradVac, GradDrop), find a common descent
direction (MGDA, CAGrad, UPGrad, Nash-MTL, IMTL-G, Aligned-MTL), or balance
magnitudes (GradNorm, DB-MTL). Three pieces, all pure and ``jit``-able:

1. **Per-task gradients in one step.** :func:`value_and_task_grad` (with
   respect to the shared params) or :func:`representation_task_grads` (with
   respect to a shared representation: cheaper, the encoder runs backward once
   on the combined cotangent). Both give a stack with a leading task axis.
2. **A strategy** (``jo.MGDA()``, ``jo.PCGrad()``, ...): ``state =
   s.init(num_tasks)`` then ``update, state, info = s.update(grads, state,
   losses=losses)``. The state is an explicit pytree (PRNG keys, GradNorm's
   weights, EMAs) that checkpoints; ``info`` has the task weights, gradient
   norms and cosines (:func:`gradient_info` names them for logging).
3. **Or an optax transformation**: :func:`task_gradient_transform` first in an
   ``optax.chain`` takes the stack and hands one gradient to the optimizer.

Example — two tasks pulling a shared ``w`` apart; MGDA's update decreases both:

>>> import jax, jax.numpy as jnp, optax
>>> from jaxobj import objective as jo
>>> a, b = jnp.array([1.0, 0.0]), jnp.array([-1.0, 1.0])
>>> def task_losses(w):
...   return jnp.stack([0.5 * jnp.sum((w - a) ** 2), 0.5 * jnp.sum((w - b) ** 2)])
>>> strategy = jo.MGDA()
>>> state = strategy.init(num_tasks=2)
>>> w = jnp.zeros(2)
>>> losses, grads = jo.value_and_task_grad(task_losses)(w)   # grads: (2, 2), row t = dL_t/dw
>>> update, state, info = strategy.update(grads, state)
>>> print(jnp.round(info["weights"], 3), bool(jnp.all(grads @ update > 0)))
[0.6 0.4] True

The same inside an optax chain, with a ``jo.multitask`` objective's task losses:

>>> import jaxobj
>>> obj = jo.multitask({"a": jo.term(jaxobj.squared_error, "w", "a"),
...                     "b": jo.term(jaxobj.squared_error, "w", "b")})
>>> tx = optax.chain(jo.task_gradient_transform(jo.PCGrad(), num_tasks=2), optax.sgd(0.1))
>>> opt_state = tx.init(w)
>>> @jax.jit
... def step(w, opt_state):
...   (losses, evaluation), grads = jo.value_and_task_grad(
...       lambda w: obj.evaluate(w=w, a=a, b=b))(w)
...   updates, opt_state = tx.update(grads, opt_state, w, task_losses=losses)
...   return optax.apply_updates(w, updates), opt_state, losses
>>> w2, opt_state, before = step(w, opt_state)
>>> _, _, after = step(w2, opt_state)      # both task losses went down
>>> print(before, after, opt_state[0].info["weights"])
[0.5 1. ] [0.4625 0.9125] [2.  1.5]

Strategies share :class:`GradientStrategy`'s interface; those that solve a
small optimization problem (MGDA, CAGrad, UPGrad, Nash-MTL) do it inside JAX
on the :math:`T\times T` Gram matrix (:mod:`.solvers`: exact active-set
enumeration for :math:`T \le 10`, fixed-iteration solvers beyond).

Bad input: a task whose gradient (or, for strategies that use losses, loss)
holds NaN or inf counts as a zero gradient for that step and is flagged in
``info["nonfinite"]``, so the update stays finite (for MGDA a zero task
gradient means Pareto-stationarity: the update is zero). A single task gives
its own gradient (CAGrad scales it by :math:`(1+c)/(1+c^2)`, Nash-MTL to unit
length, DB-MTL uses its running average). A state made for another number of tasks raises
``ValueError`` at trace time.
"""

from jaxobj.objective.gradients.base import GradientStrategy
from jaxobj.objective.gradients.strategies import (
  DBMTL,
  IMTLG,
  MGDA,
  AlignedMTL,
  CAGrad,
  GradDrop,
  GradNorm,
  GradVac,
  NashMTL,
  PCGrad,
  UPGrad,
  WeightedSum,
)
from jaxobj.objective.gradients.task_grads import (
  RepresentationGrads,
  gradient_info,
  representation_task_grads,
  value_and_task_grad,
)
from jaxobj.objective.gradients.transform import TaskGradientState, task_gradient_transform

__all__ = [
  "GradientStrategy",
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
  "value_and_task_grad",
  "representation_task_grads",
  "RepresentationGrads",
  "gradient_info",
  "task_gradient_transform",
  "TaskGradientState",
]
