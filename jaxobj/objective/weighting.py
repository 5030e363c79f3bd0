r"""Loss-level multi-task weighting: how the task losses :math:`L_1..L_T` become one total.

A scheme sees the vector of task values and returns the total; learned values
live in the objective's params and evolving ones in explicit state, so every
scheme stays a pure function::

    obj = jo.multitask({"depth": depth_term, "seg": seg_term},
                       jo.UncertaintyWeighting(kinds={"seg": "classification"}))
    params, state = obj.init(key), obj.init_state()
    evaluation = obj.evaluate(params, state=state, ...)  # .info["weight/seg"], ...
    state = evaluation.state                              # DWA and FAMO only

The effective weight of each task (``info["weight/<task>"]``) is the derivative
of the total with respect to the task's value, whatever the scheme.

Adding a scheme: subclass :class:`WeightingScheme` and implement ``weigh``
(and ``init``/``init_state``/``update_state`` when it learns or keeps state);
see its docstring for a complete example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxobj.objective._tree import branch, check_name, check_unique
from jaxobj.objective.core import Objective, named

__all__ = [
  "WeightingScheme",
  "StaticWeights",
  "UncertaintyWeighting",
  "DynamicWeightAverage",
  "FAMO",
  "RandomLossWeighting",
  "GeometricMean",
  "MultiTask",
  "multitask",
]


class WeightingScheme:
  """Base class of multi-task weighting schemes.

  Override ``weigh`` and, when needed, ``init`` (learned params), ``init_state``
  and ``update_state`` (explicit state). All are pure functions; ``tasks`` is
  the tuple of task names, ``losses`` the float32 vector of task values in
  that order. ``update_state(state, losses, previous)`` gives the state that
  follows an evaluation with these task losses (``previous``: the losses of an
  earlier evaluation of the same batch, or ``None``); the objective calls it
  and returns the result as :attr:`Evaluation.state <jaxobj.objective.Evaluation>`.

  Example — a scheme that weights each task by the inverse of its initial loss
  (kept in state):

    >>> import dataclasses, jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> @dataclasses.dataclass(frozen=True)
    ... class InitialLossRatio(jo.WeightingScheme):
    ...   def init_state(self, tasks):
    ...     return {"initial": jnp.ones(len(tasks)), "seen": jnp.array(False)}
    ...   def weigh(self, params, state, losses, *, tasks, step, key):
    ...     return jnp.sum(losses / state["initial"])
    ...   def update_state(self, state, losses, previous):
    ...     initial = jnp.where(state["seen"], state["initial"], losses)
    ...     return {"initial": initial, "seen": jnp.array(True)}
    >>> obj = jo.multitask({"a": jo.term(jaxobj.squared_error, "p", None),
    ...                     "b": jo.term(jaxobj.absolute_error, "p", None)}, InitialLossRatio())
    >>> state = obj.init_state()
    >>> state = obj.evaluate(state=state, p=jnp.array([4.0])).state
    >>> info = obj.evaluate(state=state, p=jnp.array([2.0])).info
    >>> print(info["weight/a"], info["weight/b"])
    0.0625 0.25
  """

  def init(self, key, tasks: tuple[str, ...]) -> dict[str, Any]:
    del key, tasks
    return {}

  def init_state(self, tasks: tuple[str, ...]) -> dict[str, Any]:
    del tasks
    return {}

  def weigh(self, params, state, losses: jax.Array, *, tasks, step, key) -> jax.Array:
    raise NotImplementedError

  def update_state(self, state, losses: jax.Array, previous: jax.Array | None):
    del losses, previous
    return state

  def check(self, tasks: tuple[str, ...]) -> None:
    """Raises at construction when the scheme does not fit these tasks."""


def _known(scheme, field, mapping, tasks):
  unknown = sorted(set(mapping) - set(tasks))
  if unknown:
    raise ValueError(
      f"{type(scheme).__name__}: {field} names {unknown}, which are not "
      f"tasks; the tasks are {list(tasks)}."
    )


@dataclasses.dataclass(frozen=True)
class StaticWeights(WeightingScheme):
  r"""Fixed weights, :math:`\sum_t w_t L_t` (tasks not named weigh 1)."""

  weights: Mapping[str, float] = dataclasses.field(default_factory=dict)

  def check(self, tasks):
    _known(self, "weights", self.weights, tasks)

  def weigh(self, params, state, losses, *, tasks, step, key):
    w = jnp.asarray([float(self.weights.get(t, 1.0)) for t in tasks])
    return jnp.sum(w * losses)


@dataclasses.dataclass(frozen=True)
class UncertaintyWeighting(WeightingScheme):
  r"""Homoscedastic uncertainty weighting with learned log-variances (Kendall et al., 2018).

  Each task has a learned :math:`s_t = \log \sigma_t^2` (params
  ``{"log_variance": {task: s_t}}``, initialized to ``init``):

  .. math::
     \mathcal L = \sum_{t \in \text{regression}} \Big(\tfrac12 e^{-s_t} L_t + \tfrac12 s_t\Big)
                + \sum_{t \in \text{classification}} \Big(e^{-s_t} L_t + \tfrac12 s_t\Big)

  These are eqs. (7) and (10) of the paper written with
  :math:`\log\sigma_t = s_t/2`: a Gaussian likelihood with variance
  :math:`\sigma^2` for a regression task whose :math:`L_t` is the mean squared
  error, and a softmax scaled by :math:`1/\sigma^2` for a classification task
  whose :math:`L_t` is the cross-entropy. For a regression task the optimum is
  :math:`\sigma_t^2 = L_t`: the learned variance estimates the task's residual
  variance, so tasks are weighted by their inverse noise.

  References:
    Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
    Losses for Scene Geometry and Semantics", CVPR 2018.
  """

  kinds: Mapping[str, str] | str = "regression"
  init_log_variance: float = 0.0

  def check(self, tasks):
    kinds = self._kinds(tasks)
    bad = {t: k for t, k in kinds.items() if k not in ("regression", "classification")}
    if bad:
      raise ValueError(
        f"UncertaintyWeighting: kinds {bad}; each is 'regression' or 'classification'."
      )

  def _kinds(self, tasks):
    if isinstance(self.kinds, str):
      return {t: self.kinds for t in tasks}
    _known(self, "kinds", self.kinds, tasks)
    return {t: self.kinds.get(t, "regression") for t in tasks}

  def init(self, key, tasks):
    return {"log_variance": {t: jnp.float32(self.init_log_variance) for t in tasks}}

  def weigh(self, params, state, losses, *, tasks, step, key):
    kinds = self._kinds(tasks)
    s = jnp.stack([params["log_variance"][t] for t in tasks])
    c = jnp.asarray([0.5 if kinds[t] == "regression" else 1.0 for t in tasks])
    return jnp.sum(c * jnp.exp(-s) * losses + 0.5 * s)


@dataclasses.dataclass(frozen=True)
class DynamicWeightAverage(WeightingScheme):
  r"""Dynamic weight average (Liu, Johns and Davison, 2019).

  .. math::
     w_t = T\,\frac{\exp(r_t/\tau)}{\sum_i \exp(r_i/\tau)}, \qquad
     r_t = \frac{L_t^{(k-1)}}{L_t^{(k-2)}}

  where :math:`L^{(k-1)}, L^{(k-2)}` are the task losses recorded by the last
  two evaluations whose ``.state`` was kept. The paper records epoch averages:
  keep the state through an epoch and advance it once with the epoch's mean
  task losses, ``scheme.update_state(state[path], mean_losses, None)``. Until
  two records exist the weights are 1. The weights are constants for the
  gradient.

  State: ``{"last": (T,), "before_last": (T,), "records": int32}``.

  References:
    Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
    CVPR 2019.
  """

  temperature: float = 2.0

  def init_state(self, tasks):
    return {
      "last": jnp.ones(len(tasks)),
      "before_last": jnp.ones(len(tasks)),
      "records": jnp.int32(0),
    }

  def weigh(self, params, state, losses, *, tasks, step, key):
    ratio = state["last"] / jnp.where(state["before_last"] > 0, state["before_last"], 1.0)
    w = losses.shape[0] * jax.nn.softmax(ratio / self.temperature)
    w = jnp.where(state["records"] >= 2, w, 1.0)
    return jnp.sum(jax.lax.stop_gradient(w) * losses)

  def update_state(self, state, losses, previous):
    return {
      "last": losses,
      "before_last": state["last"],
      "records": jnp.minimum(state["records"] + 1, 2),
    }


@dataclasses.dataclass(frozen=True)
class FAMO(WeightingScheme):
  r"""Fast adaptive multitask optimization (Liu et al., 2023).

  Task logits :math:`\xi` (state) give weights :math:`z = \mathrm{softmax}(\xi)`.
  The total is

  .. math::
     \mathcal L = \frac{1}{c}\sum_t z_t \log(L_t - b_t + \epsilon), \qquad
     c = \sum_t \frac{z_t}{L_t - b_t + \epsilon} \ \text{(a constant)},

  so each task's effective weight is :math:`z_t / (c\,(L_t - b_t + \epsilon))`
  and every step decreases all :math:`\log L_t` at a balanced rate. The state
  after an evaluation moves :math:`\xi` along
  :math:`J_{\mathrm{softmax}}(\xi)^\top \delta`, with
  :math:`\delta_t = \log(L^{\text{before}}_t - b_t + \epsilon) -
  \log(L^{\text{after}}_t - b_t + \epsilon)`, using Adam with L2 weight decay
  (``learning_rate``, ``weight_decay``), as in the paper.

  For the paper's algorithm, evaluate the same batch before and after the model
  update and keep ``objective.evaluate(..., previous=before).state`` of the
  second evaluation. Without ``previous``, the losses of the last evaluation
  whose state was kept stand in for "before" (the cheaper variant that needs no
  second forward pass).

  The task losses must exceed ``min_losses`` :math:`b` (0 by default).

  References:
    Liu, Liang, Liu, Stone and Liu, "FAMO: Fast Adaptive Multitask
    Optimization", NeurIPS 2023.
  """

  learning_rate: float = 0.025
  weight_decay: float = 1e-3
  min_losses: float = 0.0
  eps: float = 1e-8

  def _optimizer(self):
    return optax.chain(optax.add_decayed_weights(self.weight_decay), optax.adam(self.learning_rate))

  def init_state(self, tasks):
    logits = jnp.zeros(len(tasks))
    return {
      "logits": logits,
      "optimizer": self._optimizer().init(logits),
      "last": jnp.ones(len(tasks)),
      "has_last": jnp.array(False),
    }

  def _gap(self, losses):
    return losses - self.min_losses + self.eps

  def weigh(self, params, state, losses, *, tasks, step, key):
    z = jax.nn.softmax(state["logits"])
    gap = self._gap(losses)
    c = jax.lax.stop_gradient(jnp.sum(z / gap))
    return jnp.sum(z * jnp.log(gap)) / c

  def update_state(self, state, losses, previous):
    has_before = jnp.array(True) if previous is not None else state["has_last"]
    before = previous if previous is not None else state["last"]
    delta = jnp.log(self._gap(before)) - jnp.log(self._gap(losses))
    _, vjp = jax.vjp(jax.nn.softmax, state["logits"])
    (direction,) = vjp(delta)
    updates, opt = self._optimizer().update(direction, state["optimizer"], state["logits"])
    logits = optax.apply_updates(state["logits"], updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(has_before, a, b), new, old)
    return {
      "logits": keep(logits, state["logits"]),
      "optimizer": keep(opt, state["optimizer"]),
      "last": losses,
      "has_last": jnp.array(True),
    }


@dataclasses.dataclass(frozen=True)
class RandomLossWeighting(WeightingScheme):
  r"""Random loss weighting (Lin et al., 2022): fresh weights every step.

  .. math:: w = \mathrm{softmax}(\lambda), \quad \lambda \sim \mathcal N(0, I_T),
     \qquad \mathcal L = \sum_t w_t L_t

  Needs ``key=`` in ``apply`` (a new key each step). The weights are constants
  for the gradient.

  References:
    Lin, Ye, Xu, Shi and Zhang, "Reasonable Effectiveness of Random Weighting:
    A Litmus Test for Multi-Task Learning", TMLR 2022.
  """

  def weigh(self, params, state, losses, *, tasks, step, key):
    if key is None:
      raise ValueError(
        "RandomLossWeighting draws new weights every step; pass "
        "key=... (a fresh PRNG key per step) to apply()."
      )
    w = jax.nn.softmax(jax.random.normal(key, losses.shape))
    return jnp.sum(jax.lax.stop_gradient(w) * losses)


@dataclasses.dataclass(frozen=True)
class GeometricMean(WeightingScheme):
  r"""Geometric-mean loss (Chennupati et al., 2019).

  .. math:: \mathcal L = \Big(\prod_t L_t\Big)^{1/T} = \exp\Big(\tfrac1T\sum_t \log L_t\Big)

  Invariant to each task's scale, so no task dominates by its units; the
  effective weight of a task is :math:`\mathcal L / (T L_t)`. Task values are
  clamped at ``floor`` (1e-12) inside the logarithm so a task at exactly zero
  gives a finite gradient.

  References:
    Chennupati, Sistu, Yogamani and Rawashdeh, "MultiNet++: Multi-Stream
    Feature Aggregation and Geometric Loss Strategy for Multi-Task Learning",
    CVPR Workshops 2019.
  """

  floor: float = 1e-12

  def weigh(self, params, state, losses, *, tasks, step, key):
    return jnp.exp(jnp.mean(jnp.log(jnp.maximum(losses, self.floor))))


# ---------------------------------------------------------------- the node


@dataclasses.dataclass(frozen=True, repr=False)
class MultiTask(Objective):
  """Tasks combined by a weighting scheme; build with :func:`multitask`."""

  name: str
  tasks: tuple  # ((task name, named objective), ...)
  scheme: WeightingScheme

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(n for n, _ in self.tasks)

  def _nodes(self, prefix):
    yield prefix + self.name, self
    for _, child in self.tasks:
      yield from child._nodes(prefix)

  def _total(self, values, env, prefix, record):
    path = prefix + self.name
    losses = jnp.stack([c._total(values, env, prefix, record) for _, c in self.tasks])
    record.task_losses[path] = losses
    total = self.scheme.weigh(
      env.params.get(path, {}),
      env.state.get(path, {}),
      losses,
      tasks=self.task_names,
      step=env.step,
      key=env.key,
    )
    record.named[path] = total
    return total

  def _init_params(self, key):
    return self.scheme.init(key, self.task_names)

  def _init_state(self):
    return self.scheme.init_state(self.task_names)

  def _next_state(self, state, losses, previous):
    return self.scheme.update_state(state, losses, previous)

  def _lines(self):
    return [f"[{self.name}] {self.scheme!r}"] + branch([c._lines() for _, c in self.tasks])


def multitask(
  tasks: Mapping[str, Objective], scheme: WeightingScheme | None = None, *, name: str | None = None
) -> Objective:
  """Combines named tasks with a weighting scheme (default: equal weights).

  Each task (a term, or any objective, which becomes a named group) is named by
  its key; ``info`` has ``"loss/<task>"`` and, for every term, its effective
  weight; an :class:`~jaxobj.objective.Evaluation` holds the node's task-loss
  vector in ``task_losses[<node path>]``. The node itself is named ``name``
  (default: the scheme's class name in snake case); its learned values are
  ``params[name]`` and its state ``state[name]``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> obj = jo.multitask({"a": jo.term(jaxobj.squared_error, "p", "y"),
    ...                     "b": jo.term(jaxobj.absolute_error, "p", "y")},
    ...                    jo.UncertaintyWeighting())
    >>> params = obj.init()
    >>> params["uncertainty_weighting"]["log_variance"]["a"] = jnp.log(4.0)
    >>> loss, info = obj.apply(params, p=jnp.array([2.0]), y=jnp.array([0.0]))
    >>> print(info["weight/a"], info["weight/b"])
    0.125 0.5
  """
  scheme = scheme if scheme is not None else StaticWeights()
  if not isinstance(scheme, WeightingScheme):
    raise TypeError(
      f"multitask(scheme={scheme!r}): pass a WeightingScheme instance, "
      "e.g. jo.UncertaintyWeighting()."
    )
  if len(tasks) < 1:
    raise ValueError("multitask() needs at least one task.")
  for t in tasks:
    check_name(t)
  task_names = tuple(tasks)
  scheme.check(task_names)
  name = name or _snake(type(scheme).__name__)
  check_name(name)
  node = MultiTask(name, tuple((t, named(t, o)) for t, o in tasks.items()), scheme)
  check_unique([path for path, _ in node._nodes("")])
  return node


def _snake(name: str) -> str:
  out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
  return {"f_a_m_o": "famo"}.get(out, out)
