"""The strategies as an optax gradient transformation, to put first in an ``optax.chain``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxobj.objective.gradients.base import GradientStrategy

__all__ = ["task_gradient_transform", "TaskGradientState"]


class TaskGradientState(NamedTuple):
  """State of :func:`task_gradient_transform`: the strategy's state and its last ``info``."""

  strategy: dict[str, Any]
  info: dict[str, Any]


def task_gradient_transform(
  strategy: GradientStrategy, num_tasks: int, *, key=None
) -> optax.GradientTransformationExtraArgs:
  """An optax transformation that combines a stack of task gradients with ``strategy``.

  ``update(task_grads, state, params, task_losses=None)`` takes the
  ``[T, ...]`` stack (what :func:`jo.value_and_task_grad
  <jaxobj.objective.value_and_task_grad>` returns) and returns one update with
  the params' structure, so the rest of a chain (``optax.adam``, clipping)
  sees an ordinary gradient. Pass ``task_losses=`` (an extra argument that
  ``optax.chain`` forwards) for GradNorm, DB-MTL and MGDA's loss
  normalizations. The state holds the strategy's state and the last ``info``
  (``state.info["weights"]`` etc., for logging); it checkpoints like any
  optax state.

  Args:
    strategy: a gradient strategy, e.g. ``jo.PCGrad()``.
    num_tasks: the number of tasks ``T``.
    key: PRNG key for the strategies that draw random numbers.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from jaxobj import objective as jo
    >>> tx = optax.chain(jo.task_gradient_transform(jo.UPGrad(), num_tasks=2), optax.sgd(0.1))
    >>> params = jnp.zeros(2)
    >>> state = tx.init(params)
    >>> task_grads = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    >>> updates, state = tx.update(task_grads, state, params)
    >>> print(bool(jnp.all(task_grads @ -updates >= -1e-6)), state[0].info["weights"].shape)
    True (2,)
  """
  if not isinstance(strategy, GradientStrategy):
    raise TypeError(
      f"task_gradient_transform(strategy={strategy!r}): pass a gradient strategy "
      "instance, e.g. jo.PCGrad()."
    )

  def init(params):
    state = strategy.init(num_tasks, like=params if strategy.needs_like else None, key=key)
    stacked = jax.tree.map(
      lambda p: jax.ShapeDtypeStruct(
        (num_tasks,) + tuple(np.shape(p)), jnp.result_type(p, jnp.float32)
      ),
      params,
    )
    losses = jax.ShapeDtypeStruct((num_tasks,), jnp.float32) if strategy.needs_losses else None
    _, _, info = jax.eval_shape(
      lambda g, s, l: strategy.update(g, s, losses=l), stacked, state, losses
    )
    return TaskGradientState(state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), info))

  def update(updates, state, params=None, *, task_losses=None, **extra_args):
    del params, extra_args
    combined, new_state, info = strategy.update(updates, state.strategy, losses=task_losses)
    return combined, TaskGradientState(new_state, info)

  return optax.GradientTransformationExtraArgs(init, update)
