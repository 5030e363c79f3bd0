"""Flax NNX adapter: an objective's learnable values as NNX variables.

The objective itself stays a pure ``(init, apply)`` pair; this module only
holds its params as :class:`ObjectiveParam` (an ``nnx.Param`` subclass) and its
weighting state as :class:`ObjectiveState`, so that

- ``nnx.Optimizer(trainer, tx, wrt=nnx.Param)`` trains model and objective
  together (``wrt=ObjectiveParam`` trains only the objective), and
- ``nnx.state(trainer, ObjectiveParam)`` picks out the objective's values for
  logging or checkpointing.

Example:
  >>> import jax.numpy as jnp, jaxobj
  >>> from flax import nnx
  >>> from jaxobj import objective as jo
  >>> from jaxobj.objective.nnx import ObjectiveModule, ObjectiveParam
  >>> obj = jo.multitask({"a": jo.term(jaxobj.squared_error, "p", "y"),
  ...                     "b": jo.term(jaxobj.absolute_error, "p", "y")},
  ...                    jo.UncertaintyWeighting())
  >>> module = ObjectiveModule(obj)
  >>> loss, info = module(p=jnp.array([2.0]), y=jnp.array([0.0]))
  >>> print(loss, sorted(nnx.state(module, ObjectiveParam)["params"]))
  3.0 ['uncertainty_weighting']
"""

from __future__ import annotations

import jax
from flax import nnx

from jaxobj.objective.core import Objective

__all__ = ["ObjectiveModule", "ObjectiveParam", "ObjectiveState"]


class ObjectiveParam(nnx.Param):
  """A learnable value of an objective (log-variance, temperature, Barron α, ...)."""


class ObjectiveState(nnx.Variable):
  """Weighting-scheme state (DWA, FAMO): updated by ``update_state``, not by optimizers."""


def _is_variable(x):
  return isinstance(x, nnx.Variable)


def _values(tree):
  return jax.tree.map(lambda v: v[...], tree, is_leaf=_is_variable)


class ObjectiveModule(nnx.Module):
  """Holds an objective's params and state as NNX variables.

  Args:
    objective: the objective (kept as static structure).
    rngs: an ``nnx.Rngs``, needed only when a learnable has a random
      initializer (its ``params`` stream is used).
  """

  def __init__(self, objective: Objective, *, rngs: nnx.Rngs | None = None):
    if not isinstance(objective, Objective):
      raise TypeError(f"ObjectiveModule(objective=...) needs a jaxobj objective, got "
                      f"{type(objective).__name__}.")
    self.objective = nnx.static(objective)
    key = rngs.params() if rngs is not None else None
    self.params = nnx.data(jax.tree.map(ObjectiveParam, objective.init(key)))
    self.state = nnx.data(jax.tree.map(ObjectiveState, objective.init_state()))

  @property
  def param_values(self):
    """The objective's params as a plain pytree (what ``objective.apply`` takes)."""
    return _values(self.params)

  def __call__(self, *, step=None, key=None, axis_name=None, **data):
    """``(total, info)``: ``objective.apply`` with this module's params and state."""
    state = _values(self.state) if self.state else None
    return self.objective.apply(self.param_values, step=step, state=state, key=key,
                                axis_name=axis_name, **data)

  def update_state(self, info, previous=None) -> None:
    """Advances the weighting state in place (DWA, FAMO; a no-op otherwise)."""
    if not self.state:
      return
    new = self.objective.update_state(_values(self.state), info, previous)
    jax.tree.map(lambda var, value: var.set_value(value) if hasattr(var, "set_value")
                 else setattr(var, "value", value), self.state, new, is_leaf=_is_variable)
