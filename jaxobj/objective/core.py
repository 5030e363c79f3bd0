r"""The objective algebra: named terms, weighted sums, groups, learnable values.

An :class:`Objective` is an immutable tree built once, outside ``jax.jit``:

- leaves are :class:`Term`\ s, a function (any jaxobj loss, a regularizer or
  your own) applied to inputs chosen by path (``"outputs.logits"``,
  ``"batch.mask"``, ``"model"``);
- inner nodes are sums (``a + b``), scalings (``w * a`` with ``w`` a float, an
  array or a schedule of the step), named groups, ``stop_gradient`` and
  multi-task weighting (:mod:`jaxobj.objective.weighting`).

Evaluation is pure and runs in two steps, so normalization stays exact when a
batch is split over microbatches or devices:

1. :meth:`Objective.statistics` evaluates every term to ``(sum, count)``: the
   loss summed over its valid elements and the mean's denominator, which the
   loss returns itself when called with ``reduction="sum_and_count"``. Sums
   and counts add across microbatches and ``psum`` across devices.
2. :meth:`Objective.finalize` turns the statistics into term values
   ``sum / count`` and the weighted total, and returns an :class:`Evaluation`:
   the total, every term's value, effective weight (∂ total / ∂ term) and
   count, the totals of named groups, the task-loss vector of every multi-task
   node, and the weighting state that follows from them.

:meth:`Objective.evaluate` does both (with an optional ``psum`` in between);
:meth:`Objective.apply` returns ``(evaluation.total, evaluation.info)``, the
flat dict for logging and for ``jax.value_and_grad(..., has_aux=True)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxobj import registry
from jaxobj._src import checks, numerics
from jaxobj.objective._tree import branch, check_name, check_unique
from jaxobj.objective.schedules import Schedule

Stats = dict[str, tuple[jax.Array, jax.Array]]

__all__ = [
  "Objective",
  "Evaluation",
  "Ref",
  "Learnable",
  "Term",
  "term",
  "regularizer",
  "ref",
  "learnable",
  "group",
  "named",
  "weighted_sum",
  "stop_gradient",
]


# ---------------------------------------------------------------- references


@dataclasses.dataclass(frozen=True)
class Ref:
  """A path into the data passed to ``apply``: ``"batch.labels"``, ``"outputs.0"``."""

  path: str

  def __repr__(self):
    return self.path

  def resolve(self, data: Mapping[str, Any], where: str):
    parts = self.path.split(".")
    if parts[0] not in data:
      got = ", ".join(sorted(data)) or "nothing"
      raise ValueError(
        f"{where} reads {self.path!r}, but apply() got no {parts[0]!r} (it got {got}). "
        f"Pass {parts[0]}=... to apply(), or change the term's input path."
      )
    value = data[parts[0]]
    for i, part in enumerate(parts[1:], start=1):
      value = _child(value, part, ".".join(parts[:i]), where, self.path)
    return value


def _child(value, part, parent, where, path):
  if isinstance(value, Mapping):
    if part in value:
      return value[part]
    keys = [str(k) for k in value]
  elif isinstance(value, (tuple, list)) and part.lstrip("-").isdigit():
    if -len(value) <= int(part) < len(value):
      return value[int(part)]
    keys = [str(i) for i in range(len(value))]
  elif hasattr(value, part):
    return getattr(value, part)
  else:
    keys = [k for k in dir(value) if not k.startswith("_")]
  close = difflib.get_close_matches(part, keys, n=1)
  hint = f" Did you mean {parent}.{close[0]}?" if close else ""
  shown = ", ".join(repr(k) for k in keys[:12])
  raise ValueError(f"{where} reads {path!r}, but {parent} has no {part!r} (it has {shown}).{hint}")


def ref(path: str) -> Ref:
  """Marks a keyword argument of a term as data to read at ``apply`` time.

  Positional inputs and ``where``/``weights`` given as strings are paths
  already; other keywords need ``ref`` because strings there are ordinary
  hyperparameters (``loss_type="hinge"``).
  """
  return Ref(path)


# ---------------------------------------------------------------- learnables


@dataclasses.dataclass(frozen=True)
class Learnable:
  """A value the objective learns: stored (unconstrained) in the objective's params.

  ``init`` is a number, an array, or ``init(key) -> array``. With
  ``positive=True`` the params hold ``log(value)`` and the term sees
  ``exp(param)``, so an optimizer can never push it below zero. A
  ``transform`` maps the stored param to the value the term sees (e.g. a
  sigmoid into an interval); ``init`` is then the unconstrained initial param.
  """

  init: Any
  positive: bool = False
  transform: Callable[[jax.Array], jax.Array] | None = None

  def initial(self, key) -> jax.Array:
    if callable(self.init):
      if key is None:
        raise ValueError(
          "objective.init(key): a learnable value has a random initializer "
          f"({getattr(self.init, '__name__', self.init)!r}); pass a PRNG key, "
          "e.g. objective.init(jax.random.key(0))."
        )
      drawn = self.init(key)
      _check_initial(drawn, self.positive)
      value = jnp.asarray(drawn, jnp.float32)
    else:
      _check_initial(self.init, self.positive)
      value = jnp.asarray(self.init, jnp.float32)
    if self.positive:
      value = jnp.log(value)
    return value

  def value(self, param: jax.Array) -> jax.Array:
    if self.transform is not None:
      return self.transform(param)
    return jnp.exp(param) if self.positive else param

  def __repr__(self):
    if callable(self.init):
      init = _name(self.init)
    elif np.ndim(self.init):
      init = f"array{tuple(np.shape(self.init))}"
    else:
      init = f"{float(self.init):g}"
    extra = ", positive" if self.positive else ""
    if self.transform is not None:
      extra += f", transform={_name(self.transform)}"
    return f"learnable({init}{extra})"


def learnable(init, *, positive: bool = False, transform=None) -> Learnable:
  """A term input or hyperparameter that the objective learns (see :class:`Learnable`).

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> t = jo.term(jaxobj.huber_loss, "outputs", "targets",
    ...             delta=jo.learnable(1.0, positive=True))
    >>> print(t.init(None))
    {'huber_loss': {'delta': Array(0., dtype=float32)}}
  """
  if positive and transform is not None:
    raise ValueError(
      "learnable(): positive=True is the transform exp; pass one of positive or transform."
    )
  if not callable(init):
    _check_initial(init, positive)
  return Learnable(init, positive, transform)


def _check_initial(init, positive: bool) -> None:
  """Refuses a bad initial value when it is known, before any tracing: under
  ``jax.jit(objective.init)`` the value would become a tracer and pass."""
  if not checks.is_concrete(init):
    return
  try:
    value = np.asarray(init, np.float64)
  except (TypeError, ValueError):
    raise TypeError(
      f"learnable({init!r}): the initial value must be a number or a numeric array."
    ) from None
  if not np.all(np.isfinite(value)):
    raise ValueError(f"learnable({init!r}): the initial value must be finite.")
  if positive and np.any(value <= 0):
    raise ValueError(
      f"learnable({init!r}, positive=True) needs a positive initial "
      "value (the params hold its log)."
    )


# ---------------------------------------------------------------- evaluation context


@dataclasses.dataclass(frozen=True)
class _Env:
  params: Mapping[str, Any]
  state: Mapping[str, Any]
  step: Any
  key: Any
  for_weights: bool = False  # evaluating effective weights: stop_gradient is the identity

  def step_for(self, who: str):
    if self.step is None:
      raise ValueError(
        f"{who} depends on the training step; pass step=... to "
        "apply()/evaluate()/finalize() (an integer or an integer array)."
      )
    return self.step


class _Record:
  """What one traversal of the tree collects besides the total: the totals of
  named groups and multi-task nodes, and each multi-task node's task losses."""

  def __init__(self):
    self.named: dict[str, jax.Array] = {}
    self.task_losses: dict[str, jax.Array] = {}


# ---------------------------------------------------------------- the record


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """The structured record of one evaluation of an objective (a JAX pytree).

  What :meth:`Objective.evaluate` and :meth:`Objective.finalize` return. It
  passes through ``jax.jit``, ``jax.lax.scan`` and the ``aux`` of
  ``jax.value_and_grad(..., has_aux=True)`` like any pytree.

  Attributes:
    total: the objective's value.
    values: every term's value, by term path (``"group/name"``).
    weights: every term's effective weight, ∂ total / ∂ value (a
      ``stop_gradient`` term counts with its weight in the value).
    counts: every term's element count: the loss's mean denominator over the
      whole batch, or 1 for a plain function (such as a regularizer), whose
      value is the mean of its evaluations over microbatches or devices.
    groups: the totals of named groups and multi-task nodes, by path.
    task_losses: the ``(T,)`` vector of task values of every multi-task node,
      by the node's path, in the order of its tasks.
    state: the objective's weighting state after this evaluation (``{}``
      when it has none): pass it as ``state=`` to the next evaluation.
  """

  total: jax.Array
  values: dict[str, jax.Array]
  weights: dict[str, jax.Array]
  counts: dict[str, jax.Array]
  groups: dict[str, jax.Array]
  task_losses: dict[str, jax.Array]
  state: dict[str, Any]

  @property
  def info(self) -> dict[str, jax.Array]:
    """The flat logging dict: ``"loss"`` (the total), ``"loss/<path>"``,
    ``"weight/<path>"`` and ``"count/<path>"`` for every term, and
    ``"loss/<path>"`` for every named group and multi-task node."""
    info = {"loss": self.total}
    for p, v in self.values.items():
      info[f"loss/{p}"] = v
      info[f"weight/{p}"] = self.weights[p]
      info[f"count/{p}"] = self.counts[p]
    info.update({f"loss/{p}": v for p, v in self.groups.items()})
    return info


jax.tree_util.register_dataclass(
  Evaluation,
  data_fields=["total", "values", "weights", "counts", "groups", "task_losses", "state"],
  meta_fields=[],
)


# ---------------------------------------------------------------- the tree


class Objective:
  """A tree of named terms; see the module docstring.

  Public methods are pure functions of their arguments: the tree itself holds
  no arrays that change, so one objective serves every step without retracing.
  """

  # --- structure (implemented by subclasses)

  def _nodes(self, prefix: str) -> Iterator[tuple[str, Objective]]:
    """Named nodes (terms, groups, multi-task nodes) with their full paths."""
    raise NotImplementedError

  def _total(
    self, values: Mapping[str, jax.Array], env: _Env, prefix: str, record: _Record
  ) -> jax.Array:
    raise NotImplementedError

  def _lines(self) -> list[str]:
    raise NotImplementedError

  # --- introspection

  def nodes(self) -> dict[str, Objective]:
    """The named nodes (terms, groups, multi-task nodes) by full path."""
    return dict(self._nodes(""))

  def terms(self) -> dict[str, Term]:
    """The leaf terms by full path (``"group/name"``)."""
    return {p: n for p, n in self._nodes("") if isinstance(n, Term)}

  def _owners(self) -> dict[str, Any]:
    """Nodes that own learnable params or state, by path."""
    return {p: n for p, n in self._nodes("") if hasattr(n, "_init_params")}

  def __repr__(self):
    return "\n".join(["Objective"] + branch(_parts(self)))

  # --- params and state

  def init(self, key=None) -> dict[str, Any]:
    """The objective's learnable values (``{}`` when it has none).

    Args:
      key: a PRNG key, needed only when a learnable has a random initializer.
    """
    owners = self._owners()
    keys = jax.random.split(key, max(len(owners), 1)) if key is not None else [None] * len(owners)
    params = {}
    for k, (path, node) in zip(keys, sorted(owners.items())):
      p = node._init_params(k)
      if p:
        params[path] = p
    return params

  def init_state(self) -> dict[str, Any]:
    """Explicit state of stateful weighting schemes (DWA, FAMO); ``{}`` if none.

    Pass it as ``state=`` to :meth:`evaluate`; the evaluation's ``.state`` is
    the state that follows (for the next step).
    """
    state = {}
    for path, node in sorted(self._owners().items()):
      s = node._init_state()
      if s:
        state[path] = s
    return state

  def _state_after(self, state, task_losses, previous) -> dict[str, Any]:
    """The state after an evaluation with these task losses (and, for FAMO,
    ``previous``: an earlier evaluation of the same batch)."""
    if previous is not None and not isinstance(previous, Evaluation):
      raise TypeError(
        f"previous= takes an Evaluation (what objective.evaluate returns) of the same "
        f"batch before the model update, got {type(previous).__name__}."
      )
    new = dict(state)
    for path, node in self._owners().items():
      if path not in state:
        continue
      before = None
      if previous is not None:
        if path not in previous.task_losses:
          raise ValueError(
            f"previous= has no task losses for {path!r} (it has "
            f"{sorted(previous.task_losses)}); pass an evaluation of this objective."
          )
        before = jax.lax.stop_gradient(previous.task_losses[path])
      losses = jax.lax.stop_gradient(task_losses[path])
      new[path] = node._next_state(state[path], losses, before)
    return new

  # --- evaluation

  def statistics(self, params=None, *, step=None, **data) -> Stats:
    """``{term path: (sum, count)}`` for this batch (or microbatch, or shard).

    ``step`` is needed only when a term's hyperparameter follows a schedule.
    """
    self._check_params_not_data(params, "statistics")
    params = self._checked_params(params)
    return {
      path: t._statistics(params.get(path), data, step, path) for path, t in self.terms().items()
    }

  def finalize(
    self, params, stats: Stats, *, step=None, state=None, key=None, previous=None
  ) -> Evaluation:
    """The :class:`Evaluation` from (possibly accumulated or psummed) statistics.

    Args:
      params: this objective's params (see :meth:`apply`).
      stats: what :meth:`statistics` returned, summed over microbatches or
        devices.
      step, state, key: as in :meth:`apply`.
      previous: an earlier :class:`Evaluation` of the same batch (before the
        model update), for FAMO's exact state update; see :meth:`evaluate`.
    """
    params = self._checked_params(params)
    state = self._checked_state(state)
    terms = self.terms()
    missing = sorted(set(terms) - set(stats))
    if missing:
      raise ValueError(
        f"finalize() got no statistics for term(s) {missing}; pass the "
        "dict that objective.statistics() returns."
      )
    values = {p: terms[p]._value(*stats[p]) for p in terms}
    env = _Env(params, state, step, key)
    record = _Record()
    total = self._total(values, env, "", record)
    weights = jax.grad(
      lambda v: self._total(v, dataclasses.replace(env, for_weights=True), "", _Record())
    )(jax.lax.stop_gradient(values))
    counts = {p: stats[p][1] if terms[p].contract else jnp.float32(1.0) for p in terms}
    return Evaluation(
      total=total,
      values=values,
      weights=weights,
      counts=counts,
      groups=record.named,
      task_losses=record.task_losses,
      state=self._state_after(state, record.task_losses, previous),
    )

  def evaluate(
    self, params=None, *, state=None, step=None, key=None, axis_name=None, previous=None, **data
  ) -> Evaluation:
    """The structured :class:`Evaluation` of one batch.

    Arguments as for :meth:`apply`, and:

    Args:
      previous: an earlier :class:`Evaluation` of the same batch, made before
        the model update. FAMO then updates its state from the change of every
        task loss across the update (the paper's algorithm); without it, the
        losses of the last evaluation stand in for "before".

    Returns:
      An :class:`Evaluation`; its ``.info`` is what :meth:`apply` returns with
      the total, and its ``.state`` the weighting state for the next step.

    Example:
      >>> import jax.numpy as jnp, jaxobj
      >>> from jaxobj import objective as jo
      >>> obj = jo.multitask({"a": jo.term(jaxobj.squared_error, "p", None),
      ...                     "b": jo.term(jaxobj.absolute_error, "p", None)},
      ...                    jo.DynamicWeightAverage())
      >>> state = obj.init_state()
      >>> for p in (4.0, 2.0):
      ...   ev = obj.evaluate(state=state, p=jnp.array([p]))
      ...   state = ev.state
      >>> print(ev.task_losses["dynamic_weight_average"], state["dynamic_weight_average"]["last"])
      [4. 2.] [4. 2.]
    """
    self._check_params_not_data(params, "evaluate")
    stats = self.statistics(params, step=step, **data)
    if axis_name is not None:
      stats = _psum_over_devices(self.terms(), stats, axis_name)
    return self.finalize(params, stats, step=step, state=state, key=key, previous=previous)

  def apply(self, params=None, *, step=None, state=None, key=None, axis_name=None, **data):
    """``(total, info)`` for one batch: :meth:`evaluate`'s total and ``info``.

    ``info`` is a flat dict: ``"loss"`` (the total), and for every term
    ``"loss/<path>"`` (its value), ``"weight/<path>"`` (the effective weight,
    ∂ total / ∂ value, where a ``stop_gradient`` term counts with its weight
    in the value) and ``"count/<path>"`` (the element count: the loss's
    mean denominator over the whole batch, or 1 for a plain function such as
    a regularizer, whose value is the mean of its evaluations over
    microbatches or devices); named groups and tasks add ``"loss/<path>"``.
    A stateful objective's next state is in :meth:`evaluate`'s result.

    Args:
      params: this objective's params (``init``'s result; ``None`` or ``{}``
        when it has none).
      step: the training step, needed by schedules.
      state: weighting state (``init_state``), needed by DWA and FAMO.
      key: a PRNG key, needed by random loss weighting.
      axis_name: when called inside ``shard_map``/``pmap`` over a batch split
        across devices, the mesh axis (or axes) to ``psum`` the statistics
        over, so every device sees the whole-batch loss. A term whose loss
        couples the rows of its batch (CLIP, SigLIP, NT-Xent, mined
        triplets, ...: ``couples_rows`` in the registry) is refused unless it
        reduces over the devices itself (the sharded losses given
        ``axis_name``). Under ``shard_map(..., check_vma=False)`` JAX does
        not track which values vary: every other term is summed, the value
        is the whole batch's, and gradients of replicated params are JAX's
        per-device ones (keep the default ``check_vma=True`` to get them whole).
      **data: the sources term inputs are read from, e.g.
        ``outputs=..., batch=..., model=model_params``.
    """
    self._check_params_not_data(params, "apply")
    evaluation = self.evaluate(params, state=state, step=step, key=key, axis_name=axis_name, **data)
    return evaluation.total, evaluation.info

  __call__ = apply

  # --- checks

  def _data_keywords(self) -> list[str]:
    """The keywords this objective reads its data from (``outputs``, ``batch``, ...)."""
    roots = {
      v.path.split(".")[0] for t in self.terms().values() for _, v in t._slots if isinstance(v, Ref)
    }
    return sorted(roots)

  def _check_params_not_data(self, params, method: str) -> None:
    # The first positional argument is the objective's params; an array there
    # is almost always data passed positionally, as to a loss function.
    if params is None or isinstance(params, Mapping):
      return
    keywords = self._data_keywords()
    expects = (
      f"; this objective reads {', '.join(keywords)}: "
      f"objective.{method}(params, {', '.join(k + '=...' for k in keywords)})"
      if keywords
      else ""
    )
    got = (
      f"an array of shape {tuple(np.shape(params))}"
      if hasattr(params, "shape")
      else f"a {type(params).__name__}"
    )
    raise TypeError(
      f"objective.{method}() got {got} as its first positional "
      "argument, which is the objective's params (what objective.init() returns: "
      "None or {} when nothing is learnable), not data. Pass data by keyword"
      f"{expects}."
    )

  def _checked_params(self, params):
    # The key is made inside eval_shape (abstractly), never at import time.
    expected = jax.eval_shape(lambda: self.init(jax.random.key(0)))
    if params is None and not expected:
      return {}
    self._check_tree("params", params, expected)
    return params

  def _checked_state(self, state):
    expected = self.init_state()
    if state is None:
      if expected:
        raise ValueError(
          f"this objective has weighting state ({', '.join(expected)}); pass "
          "state=objective.init_state() to evaluate() (or apply()), and the "
          "evaluation's .state to the next one."
        )
      return {}
    self._check_tree("state", state, expected)
    return state

  def _check_tree(self, what, given, expected):
    def describe(tree):
      return {
        jax.tree_util.keystr(p): tuple(np.shape(x))
        for p, x in jax.tree_util.tree_leaves_with_path(tree)
      }

    if given is None or (
      jax.tree.structure(given) != jax.tree.structure(expected)
      or describe(given) != describe(expected)
    ):
      got = "None" if given is None else describe(given)
      raise ValueError(
        f"{what} do not match this objective: expected {describe(expected)}, got "
        f"{got}. Pass the {what} made by this objective's "
        f"{'init()' if what == 'params' else 'init_state()'}; {what} from another "
        "objective (or from before it was changed) do not fit."
      )

  # --- algebra

  def __add__(self, other):
    if isinstance(other, Objective):
      return Sum(summands(self) + summands(other))
    if isinstance(other, Learnable):
      _no_learnable_weight("add", other)
    if isinstance(other, (int, float)) and other == 0:
      return self  # so that builtin sum() works
    return _no_constant("add", other)

  def __radd__(self, other):
    return self.__add__(other)

  def __sub__(self, other):
    if isinstance(other, Objective):
      return self + (-1.0) * other
    if isinstance(other, Learnable):
      _no_learnable_weight("subtract", other)
    return _no_constant("subtract", other)

  def __neg__(self):
    return (-1.0) * self

  def __mul__(self, weight):
    return _scale(self, weight)

  __rmul__ = __mul__

  def __truediv__(self, divisor):
    if isinstance(divisor, (int, float)) and not isinstance(divisor, bool):
      if divisor == 0 or not math.isfinite(divisor):
        raise ValueError(
          f"cannot divide an objective by {divisor!r}: the divisor must "
          "be a finite non-zero number."
        )
      return _scale(self, 1.0 / divisor)
    return NotImplemented


def _no_learnable_weight(verb, learnable):
  raise TypeError(
    f"cannot {verb} {learnable!r} and an objective: a weight on a term is not learnable on "
    "purpose, since minimizing a total over its own weights sends them to zero (or below). "
    "To learn task weights, use a scheme with a regularizing term, e.g. "
    "jo.multitask({'a': term_a, 'b': term_b}, jo.UncertaintyWeighting()), or a "
    "gradient-level strategy (jo.UPGrad()); to learn a loss's hyperparameter, pass the "
    "learnable as that hyperparameter: "
    "jo.term(jaxobj.huber_loss, ..., delta=jo.learnable(1.0, positive=True))."
  )


def _no_constant(verb, other):
  raise TypeError(
    f"cannot {verb} {other!r} to an objective: a constant changes no gradient "
    "and would only shift the logged total. Add terms (objectives) or scale "
    "them (weight * objective)."
  )


def summands(obj: Objective) -> list[Objective]:
  """The parts of a sum (the objective itself when it is not a sum)."""
  return list(obj.children) if isinstance(obj, Sum) else [obj]


def _parts(obj) -> list[list[str]]:
  """The lines of each summand, so a sum prints as siblings under its parent."""
  return [c._lines() for c in summands(obj)]


# ---------------------------------------------------------------- leaves


@dataclasses.dataclass(frozen=True, repr=False)
class Term(Objective):
  """A named loss, regularizer or function of the data; build with :func:`term`."""

  name: str
  fn: Callable
  inputs: tuple
  kwargs: tuple
  reduction: str = "mean"
  contract: bool = True  # fn takes reduction=: evaluated as (sum, count) by "sum_and_count"
  input_names: tuple = ()  # fn's names for the positional inputs
  # Where the term was declared (a config's key path, "objective.terms.fit"):
  # errors raised while it is evaluated name it. Not part of the term's identity.
  origin: str = dataclasses.field(default="", compare=False)

  def _nodes(self, prefix):
    yield prefix + self.name, self

  def _total(self, values, env, prefix, record):
    return values[prefix + self.name]

  def _lines(self):
    args = [repr(a) for a in self.inputs] + [f"{k}={v!r}" for k, v in self.kwargs]
    fn = getattr(self.fn, "__name__", repr(self.fn))
    return [f"{self.name} = {fn}({', '.join(args)})"]

  @property
  def _slots(self) -> list[tuple[str, Any]]:
    """(argument name, value) for every input."""
    return list(zip(self.input_names, self.inputs)) + list(self.kwargs)

  @property
  def _learnables(self) -> dict[str, Learnable]:
    return {k: v for k, v in self._slots if isinstance(v, Learnable)}

  def _given(self) -> dict[str, Any]:
    """fn's arguments by name, a partial's own keywords included."""
    return {**(getattr(self.fn, "keywords", None) or {}), **dict(self._slots)}

  @property
  def couples_rows(self) -> bool:
    """Whether fn's rows interact, so that each part of a split batch gives a
    value that is not part of the whole batch's (see the registry)."""
    spec = registry.spec_for(self.fn)
    if spec is None or not spec.couples_rows:
      return False
    given = self._given()
    return not spec.coupled_by or any(given.get(k) is not None for k in spec.coupled_by)

  @property
  def reduces_over_devices(self) -> bool:
    """A sharded loss given its axis or mesh returns the whole batch's
    ``(sum, count)`` on every device: nothing is left to ``psum``."""
    given = self._given()
    return given.get("axis_name") is not None or given.get("mesh") is not None

  def _init_params(self, key):
    learn = self._learnables
    keys = jax.random.split(key, max(len(learn), 1)) if key is not None else [None] * len(learn)
    return {k: v.initial(kk) for kk, (k, v) in zip(keys, sorted(learn.items()))}

  def _init_state(self):
    return {}

  def _resolve(self, value, slot, params, data, step):
    if isinstance(value, Ref):
      return value.resolve(data, f"term {self.name!r} ({slot})")
    if isinstance(value, Learnable):
      return value.value(params[slot])
    if isinstance(value, Schedule):
      if step is None:
        raise ValueError(
          f"term {self.name!r}: {slot}={value!r} is a schedule of the "
          "training step; pass step=... to apply()."
        )
      return value(step)
    return value

  def _statistics(self, params, data, step, path):
    if not self.origin:
      return self._evaluated(params, data, step, path)
    try:
      return self._evaluated(params, data, step, path)
    except Exception as err:
      _name_origin(err, self.origin, path)
      raise

  def _evaluated(self, params, data, step, path):
    slots = [(k, self._resolve(v, k, params, data, step)) for k, v in self._slots]
    args = [v for _, v in slots[: len(self.inputs)]]
    kwargs = dict(slots[len(self.inputs) :])
    if not self.contract:
      out = jnp.asarray(self.fn(*args, **kwargs))
      if out.shape != ():
        raise ValueError(
          f"term {path!r}: {_name(self.fn)} returned shape {out.shape}; a term must "
          "give a scalar. Reduce it inside the function, or use a loss with the "
          "jaxobj contract (it takes reduction=...)."
        )
      return out.astype(jnp.float32), jnp.float32(1.0)
    out = self.fn(*args, reduction="sum_and_count", **kwargs)
    if not (isinstance(out, tuple) and len(out) == 2 and all(np.shape(x) == () for x in out)):
      got = (
        f"a tuple of shapes {[np.shape(x) for x in out]}"
        if isinstance(out, tuple)
        else f"a value of shape {np.shape(out)}"
      )
      raise TypeError(
        f"term {path!r}: {_name(self.fn)} takes reduction=, so the term calls it with "
        f"reduction='sum_and_count' for its (sum, count), but it returned {got}. End "
        "the function with `return jaxobj.reduce_loss(values, where=..., weights=..., "
        "reduction=reduction)` (it returns the pair), or wrap it in a function without "
        "a reduction parameter to make it a plain scalar term (count 1)."
      )
    total, count = out
    return jnp.asarray(total, jnp.float32), jnp.asarray(count, jnp.float32)

  def _value(self, total, count):
    """The term's value from its (accumulated) statistics.

    Contract losses give the exact mean (or the sum); plain functions count 1
    per call, so accumulated calls average.
    """
    if self.reduction == "sum" and self.contract:
      return total
    return total / jnp.where(count > 0, count, 1.0)


def _name_origin(err: Exception, origin: str, path: str) -> None:
  """Adds the key path that declared the term to ``err`` as a note, which
  tracebacks (and notebooks) print under the message; the message itself is
  left as the loss wrote it."""
  note = f"(in the term {path!r}, built from the config key {origin})"
  if note not in getattr(err, "__notes__", ()):
    err.add_note(note)


def _name(fn):
  return getattr(fn, "__name__", repr(fn))


def _input_names(fn, n) -> tuple[str, ...]:
  """fn's names for its first ``n`` positional parameters (``input<i>`` if unknown)."""
  try:
    names = [
      p.name
      for p in inspect.signature(fn).parameters.values()
      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
  except (TypeError, ValueError):
    names = []
  names += [f"input{i}" for i in range(len(names), n)]
  return tuple(names[:n])


def takes_reduction(fn: Callable) -> bool:
  """Whether ``fn`` has a ``reduction`` parameter (the jaxobj loss contract)."""
  try:
    return "reduction" in inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False


_PATH_KEYWORDS = ("where", "weights")


def term(
  fn: Callable,
  *inputs,
  name: str | None = None,
  reduction: str = "mean",
  **kwargs,
) -> Term:
  """Makes ``fn`` a named term of an objective, with explicitly chosen inputs.

  Args:
    fn: any jaxobj loss (or a function with the same contract: it takes
      ``reduction`` and returns the pair ``(sum, count)`` for
      ``reduction="sum_and_count"``, as :func:`jaxobj.reduce_loss` does), a
      regularizer, or any function returning a scalar (a plain term, count 1).
    *inputs: positional inputs: strings are paths into ``apply``'s data
      (``"outputs.logits"``, ``"batch.labels"``, ``"model"``); arrays are
      constants; :func:`learnable` values are learned.
    name: the term's name in ``info`` and ``repr`` (default ``fn.__name__``).
    reduction: ``"mean"`` (the term's value is its sum over the count of valid
      elements, exact across microbatches and devices) or ``"sum"``.
    **kwargs: keyword arguments of ``fn``. ``where`` and ``weights`` given as
      strings are paths; for any other keyword use :func:`ref` for a path,
      :func:`learnable` for a learned value, or a schedule for a value that
      follows the training step.

  Raises:
    TypeError: ``fn`` is not callable or does not take these arguments; at
      evaluation, ``fn`` takes ``reduction`` but does not return the pair
      ``(sum, count)`` for ``reduction="sum_and_count"``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> fit = jo.term(jaxobj.squared_error, "outputs", "batch.y", where="batch.valid")
    >>> loss, info = fit.apply(outputs=jnp.array([1.0, 2.0, 9.0]),
    ...                        batch={"y": jnp.zeros(3), "valid": jnp.array([True, True, False])})
    >>> print(loss, info["count/squared_error"])
    2.5 2.0
  """
  if not callable(fn):
    raise TypeError(f"term(fn, ...): fn must be callable, got {fn!r}.")
  if reduction not in ("mean", "sum"):
    raise ValueError(
      f"term(reduction={reduction!r}): a term reduces to a scalar; choose 'mean' or 'sum'."
    )
  if "reduction" in kwargs:
    raise TypeError("term(): pass reduction= as the term's own argument, not as a keyword of fn.")
  if name is not None:
    check_name(name)
  inputs = tuple(Ref(v) if isinstance(v, str) else v for v in inputs)
  kw = {k: Ref(v) if k in _PATH_KEYWORDS and isinstance(v, str) else v for k, v in kwargs.items()}
  _check_signature(fn, inputs, kw)
  _check_inputs_named(fn, inputs, kw)
  return Term(
    name or _name(fn),
    fn,
    inputs,
    tuple(sorted(kw.items())),
    reduction,
    contract=takes_reduction(fn),
    input_names=_input_names(fn, len(inputs)),
  )


def _check_signature(fn, inputs, kwargs):
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError):
    return
  try:
    sig.bind_partial(*inputs, **kwargs)
  except TypeError as err:
    known = [p for p in sig.parameters if p not in ("reduction",)]
    bad = [k for k in kwargs if k not in sig.parameters]
    hint = ""
    if bad:
      close = difflib.get_close_matches(bad[0], known, n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TypeError(
      f"term({_name(fn)}, ...): {err}. {_name(fn)} takes ({', '.join(known)}).{hint}"
    ) from None


# Inputs that a loss would take as zeros when left out (optax's convention for
# regression targets): in an objective, a forgotten input must not silently
# train toward zero, so a term names them, as None when zeros are meant.
_ZEROS_WHEN_OMITTED = ("targets",)


def _check_inputs_named(fn, inputs, kwargs):
  """Every positional input fn needs is given (as a path, a value, or None for zeros)."""
  try:
    params = list(inspect.signature(fn).parameters.values())
  except (TypeError, ValueError):
    return
  positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  given = {p.name for p in positional[: len(inputs)]} | set(kwargs)
  bound = set(getattr(fn, "keywords", None) or {})
  missing = [
    p.name
    for p in positional[len(inputs) :]
    if p.name not in given | bound and (p.default is p.empty or p.name in _ZEROS_WHEN_OMITTED)
  ]
  if missing:
    zeros = [m for m in missing if m in _ZEROS_WHEN_OMITTED]
    hint = (
      f" To fit toward zeros, say so: pass None for {zeros[0]!r} "
      f"(jo.term({_name(fn)}, ..., None) or {zeros[0]}=None)."
      if zeros
      else ""
    )
    raise TypeError(
      f"term({_name(fn)}, ...): no input given for {', '.join(map(repr, missing))}. "
      f"A term names every input its loss needs: add a path such as "
      f'"batch.{missing[0]}" after the {len(inputs)} given.{hint}'
    )


def regularizer(
  penalty: Callable, source: str = "model", *, name: str | None = None, **kwargs
) -> Term:
  """A penalty on a parameter pytree (default: ``apply``'s ``model=``) as a term.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> decay = 1e-2 * jo.regularizer(jaxobj.l2_penalty, mask=jaxobj.regularizers.exclude("b"))
    >>> loss, info = decay.apply(model={"w": jnp.array([3.0, 4.0]), "b": jnp.array(9.0)})
    >>> print(loss, info["loss/l2_penalty"])
    0.25 25.0
  """
  return term(penalty, source, name=name, **kwargs)


# ---------------------------------------------------------------- inner nodes


@dataclasses.dataclass(frozen=True, repr=False)
class Sum(Objective):
  children: tuple

  def __init__(self, children):
    object.__setattr__(self, "children", tuple(children))
    check_unique([path for path, _ in self._nodes("")])

  def _nodes(self, prefix):
    for c in self.children:
      yield from c._nodes(prefix)

  def _total(self, values, env, prefix, record):
    return sum(c._total(values, env, prefix, record) for c in self.children)

  def _lines(self):
    if len(self.children) == 1:
      return self.children[0]._lines()
    return ["sum"] + branch([c._lines() for c in self.children])


@dataclasses.dataclass(frozen=True, repr=False)
class Scaled(Objective):
  child: Objective
  weight: Any

  def _nodes(self, prefix):
    yield from self.child._nodes(prefix)

  def _total(self, values, env, prefix, record):
    w = self.weight
    if isinstance(w, Learnable):
      raise TypeError(
        "learned weights belong to a weighting scheme; see jaxobj.objective.weighting."
      )
    if callable(w):
      w = w(env.step_for(f"the weight {w!r}"))
    return w * self.child._total(values, env, prefix, record)

  def _lines(self):
    w = self.weight
    shown = f"{w:g}" if isinstance(w, float) else repr(w)
    lines = self.child._lines()
    return [f"{shown} · {lines[0]}"] + lines[1:]


def _scale(obj, weight):
  if isinstance(weight, Learnable):
    _no_learnable_weight("multiply", weight)
  if isinstance(weight, (bool, np.bool_)):
    raise TypeError(f"cannot multiply an objective by {weight!r}.")
  if isinstance(weight, (int, float, np.integer, np.floating)):
    if not math.isfinite(float(weight)):
      raise ValueError(f"weight {weight!r} is not finite.")
    return Scaled(obj, float(weight))
  if callable(weight):
    return Scaled(obj, weight)
  if isinstance(weight, (jax.Array, np.ndarray)):
    if checks.is_concrete(weight) and not np.all(np.isfinite(np.asarray(weight))):
      raise ValueError(f"weight {np.asarray(weight)!r} is not finite.")
    w = jnp.asarray(weight, jnp.float32)
    if w.ndim == 0:
      return Scaled(obj, w)
    parts = summands(obj)
    if w.ndim == 1 and w.shape[0] == len(parts) and len(parts) > 1:
      return Sum([Scaled(p, w[i]) for i, p in enumerate(parts)])
    names = [", ".join(p.terms()) for p in parts]
    raise ValueError(
      f"weight of shape {w.shape} does not fit this objective: a weight is a scalar, "
      f"or a vector with one entry per summand ({len(parts)} here: {names})."
    )
  return NotImplemented


@dataclasses.dataclass(frozen=True, repr=False)
class Group(Objective):
  """Named subtree: its terms are logged as ``<name>/<term>``."""

  name: str
  child: Objective

  def _nodes(self, prefix):
    yield prefix + self.name, self
    yield from self.child._nodes(prefix + self.name + "/")

  def _total(self, values, env, prefix, record):
    total = self.child._total(values, env, prefix + self.name + "/", record)
    record.named[prefix + self.name] = total
    return total

  def _lines(self):
    return [f"[{self.name}]"] + branch(_parts(self.child))


@dataclasses.dataclass(frozen=True, repr=False)
class StopGradient(Objective):
  child: Objective

  def _nodes(self, prefix):
    yield from self.child._nodes(prefix)

  def _total(self, values, env, prefix, record):
    total = self.child._total(values, env, prefix, record)
    return total if env.for_weights else jax.lax.stop_gradient(total)

  def _lines(self):
    lines = self.child._lines()
    return [f"stop_gradient({lines[0]})"] + lines[1:]


def group(name: str, objective: Objective) -> Objective:
  """Names a subtree; its terms appear in ``info`` as ``"<name>/<term>"``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> aux = jo.group("aux", jo.term(jaxobj.absolute_error, "p", "y"))
    >>> loss, info = (jo.term(jaxobj.squared_error, "p", "y") + 0.5 * aux).apply(
    ...     p=jnp.array([2.0]), y=jnp.array([0.0]))
    >>> print(loss, info["loss/aux/absolute_error"], info["weight/aux/absolute_error"])
    5.0 2.0 0.5
  """
  check_name(name)
  return Group(name, objective)


def stop_gradient(objective: Objective) -> Objective:
  """The objective's value counts in the total but passes no gradient."""
  return StopGradient(objective)


def named(name: str, objective: Objective) -> Objective:
  """A term renamed, or any other objective as a named group."""
  check_name(name)
  if isinstance(objective, Term):
    return dataclasses.replace(objective, name=name)
  return Group(name, objective)


def weighted_sum(
  terms: Mapping[str, Objective], weights: Mapping[str, Any] | None = None
) -> Objective:
  """The (weighted) sum over a dict of terms, each named by its key.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> obj = jo.weighted_sum({"mse": jo.term(jaxobj.squared_error, "p", "y"),
    ...                        "mae": jo.term(jaxobj.absolute_error, "p", "y")},
    ...                       weights={"mae": 0.5})
    >>> loss, info = obj.apply(p=jnp.array([2.0]), y=jnp.array([0.0]))
    >>> print(loss, info["weight/mae"])
    5.0 0.5
  """
  weights = dict(weights or {})
  unknown = sorted(set(weights) - set(terms))
  if unknown:
    raise ValueError(f"weights for {unknown}, which are not among the terms {sorted(terms)}.")
  parts = [named(k, v) for k, v in terms.items()]
  parts = [weights[k] * p if k in weights else p for k, p in zip(terms, parts)]
  return Sum(parts)


def _psum_over_devices(terms: Mapping[str, Term], stats: Stats, axis_name) -> Stats:
  """Each term's ``(sum, count)`` summed over the devices its batch is split over.

  A term's batch is split over the axes its sum or its count varies over,
  and then both are summed there: a count computed from a static shape does
  not vary, yet it is a per-device count all the same. A term whose loss
  already reduced over the devices (a sharded loss such as
  :func:`jaxobj.sharded_siglip_loss` given ``axis_name``) is invariant and
  is not summed again. Which values vary is known when ``shard_map`` tracks
  it (``check_vma=True``, the default); without tracking every term is
  summed except those that reduce over the devices themselves.
  """
  axes = (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
  tracked = all(a in numerics.varying_axes(jax.lax.axis_index(a)) for a in axes)
  out = {}
  for path, (total, count) in stats.items():
    t = terms[path]
    if tracked:
      varying = numerics.varying_axes(total) | numerics.varying_axes(count)
      split = tuple(a for a in axes if a in varying)
    else:
      split = () if t.reduces_over_devices else axes
    if split and t.couples_rows:
      raise ValueError(
        f"term {path!r}: {_name(t.fn)} couples the rows of its batch, so on a batch "
        f"split over {split} each device would compute it on its own shard and the "
        "sum of those values is not the whole batch's loss. Use its sharded form "
        "given the axis (jaxobj.sharded_clip_loss or jaxobj.sharded_siglip_loss with "
        "axis_name=...), gather the rows first (jax.lax.all_gather(..., tiled=True)), "
        "or compute this term outside shard_map."
      )
    out[path] = jax.lax.psum((total, count), split) if split else (total, count)
  return out
