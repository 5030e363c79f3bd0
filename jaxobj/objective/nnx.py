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

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from jaxobj.objective import accumulate as _accumulate
from jaxobj.objective.core import Evaluation, Objective

__all__ = ["ObjectiveModule", "ObjectiveParam", "ObjectiveState", "accumulate_value_and_grad"]


class ObjectiveParam(nnx.Param):
  """A learnable value of an objective (log-variance, temperature, Barron α, ...)."""


class ObjectiveState(nnx.Variable):
  """Weighting-scheme state (DWA, FAMO): set from an evaluation's ``.state``, not by optimizers."""


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
      raise TypeError(
        f"ObjectiveModule(objective=...) needs a jaxobj objective, got {type(objective).__name__}."
      )
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
    evaluation = self.evaluate(step=step, key=key, axis_name=axis_name, **data)
    return evaluation.total, evaluation.info

  def evaluate(self, *, step=None, key=None, axis_name=None, previous=None, **data) -> Evaluation:
    """``objective.evaluate`` with this module's params and state.

    The module is not changed: keep the evaluation's weighting state with
    :meth:`set_state` (once per step, after the gradient is taken).

    Example:
      >>> import jax.numpy as jnp, jaxobj
      >>> from jaxobj import objective as jo
      >>> from jaxobj.objective.nnx import ObjectiveModule
      >>> module = ObjectiveModule(jo.multitask(
      ...     {"a": jo.term(jaxobj.squared_error, "p", None),
      ...      "b": jo.term(jaxobj.absolute_error, "p", None)}, jo.DynamicWeightAverage()))
      >>> evaluation = module.evaluate(p=jnp.array([3.0]))
      >>> module.set_state(evaluation.state)
      >>> print(module.state["dynamic_weight_average"]["last"][...])
      [9. 3.]
    """
    state = _values(self.state) if self.state else None
    return self.objective.evaluate(
      self.param_values,
      state=state,
      step=step,
      key=key,
      axis_name=axis_name,
      previous=previous,
      **data,
    )

  def set_state(self, state) -> None:
    """Stores a new weighting state (an evaluation's ``.state``) in the state variables."""
    if not self.state:
      return
    expected = self.objective.init_state()
    if jax.tree.structure(state) != jax.tree.structure(expected):  # type: ignore[operator]
      raise ValueError(
        f"set_state: the state does not fit this objective: expected the structure "
        f"{jax.tree.structure(expected)}, got {jax.tree.structure(state)}. Pass "
        "evaluation.state from this module's evaluate()."
      )
    jax.tree.map(
      lambda var, value: (
        var.set_value(value) if hasattr(var, "set_value") else setattr(var, "value", value)
      ),
      self.state,
      state,
      is_leaf=_is_variable,
    )


def _objective_module(module: nnx.Module) -> ObjectiveModule:
  found = [m for _, m in nnx.iter_graph(module) if isinstance(m, ObjectiveModule)]
  if len(found) != 1:
    raise ValueError(
      f"accumulate_value_and_grad(module, ...): the module holds {len(found)} "
      "ObjectiveModules; it needs exactly one (the objective being optimized). Hold "
      "the model and one ObjectiveModule in the module you pass, as nnx.Optimizer "
      "holds them."
    )
  return found[0]


def accumulate_value_and_grad(
  module: nnx.Module,
  data_fn: Callable[[Any, Any], dict],
  microbatches,
  *,
  wrt=nnx.Param,
  step=None,
  key=None,
  return_evaluation: bool = False,
):
  """Exact whole-batch ``(total, info)`` and gradients of an NNX module, from microbatches.

  The NNX form of :func:`jaxobj.objective.accumulate_value_and_grad`: the
  ``module`` holds the model and one :class:`ObjectiveModule` (the same module
  ``nnx.Optimizer(module, tx, wrt=...)`` holds), and the gradients come back
  as an ``nnx.State`` of its ``wrt`` variables, ready for
  ``optimizer.update(module, grads)``: model params and objective params
  alike, with no leaf to wrap by hand. The weighting state (DWA, FAMO) is
  read from the objective module; to move it on, ask for the evaluation and
  set its state: ``module.objective.set_state(evaluation.state)``.

  Args:
    module: the module being trained.
    data_fn: ``data_fn(module, microbatch) -> dict`` of the data the
      objective reads (e.g. ``{"outputs": module.model(mb["x"]), "batch": mb}``).
    microbatches: a pytree whose leaves have a leading microbatch axis.
    wrt: the variables to differentiate (an NNX filter; default ``nnx.Param``,
      which includes :class:`ObjectiveParam`).
    step, key: as in ``Objective.apply``.
    return_evaluation: return the whole batch's :class:`~jaxobj.objective.Evaluation`
      in place of ``(total, info)``.

  Returns:
    ``((total, info), grads)`` with ``grads`` an ``nnx.State``; with
    ``return_evaluation=True``, ``(evaluation, grads)``.

  Example:
    >>> import jax.numpy as jnp, jaxobj, optax
    >>> from flax import nnx
    >>> from jaxobj import objective as jo
    >>> from jaxobj.objective.nnx import ObjectiveModule, accumulate_value_and_grad
    >>> class Trainer(nnx.Module):
    ...   def __init__(self):
    ...     self.model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    ...     self.objective = ObjectiveModule(jo.multitask(
    ...         {"fit": jo.term(jaxobj.squared_error, "outputs", "batch.y")},
    ...         jo.UncertaintyWeighting()))
    >>> trainer = Trainer()
    >>> optimizer = nnx.Optimizer(trainer, optax.sgd(0.1), wrt=nnx.Param)
    >>> data_fn = lambda t, mb: {"outputs": t.model(mb["x"])[:, 0], "batch": mb}
    >>> micro = {"x": jnp.ones((4, 2, 2)), "y": jnp.zeros((4, 2))}
    >>> (loss, info), grads = accumulate_value_and_grad(trainer, data_fn, micro)
    >>> _ = optimizer.update(trainer, grads)
    >>> print(sorted(grads["objective"]["params"]), info["count/fit"])
    ['uncertainty_weighting'] 8.0
  """
  objective = _objective_module(module)
  graphdef, params, rest = nnx.split(module, wrt, ...)  # type: ignore[misc]
  path = next(p for p, m in nnx.iter_graph(module) if m is objective)

  def merged(params):
    return nnx.merge(graphdef, params, rest, copy=True)

  def objective_params_of(params):
    return _objective_at(merged(params), path).param_values

  state = _values(objective.state) if objective.state else None
  evaluation, grads = _accumulate.accumulate(
    objective.objective,
    objective_params_of,
    lambda params, mb: data_fn(merged(params), mb),
    params,
    microbatches,
    step=step,
    state=state,
    key=key,
  )
  return _accumulate.evaluation_or_apply(evaluation, return_evaluation), grads


def _objective_at(module, path) -> ObjectiveModule:
  for p in path:
    module = getattr(module, p) if isinstance(p, str) else module[p]
  return module
