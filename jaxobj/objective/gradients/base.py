"""The interface every gradient strategy shares, and the checks it runs.

A strategy is a frozen dataclass of hyperparameters with two pure methods:

- ``init(num_tasks, *, like=None, key=None) -> state``: a dict of arrays that
  checkpoints like any pytree; ``state["step"]`` counts calls and
  ``state["weights"]`` holds the task weights of the last update (for GradNorm,
  the learned weights).
- ``update(grads, state, *, losses=None) -> (update, new_state, info)``:
  ``grads`` is a pytree whose every leaf stacks the task gradients on a leading
  axis of size ``T`` (what :func:`value_and_task_grad` returns; a ``(T, P)``
  matrix is such a pytree); ``update`` has the shape of one task's gradient.

Most strategies only need the task Gram matrix :math:`M = G G^\\top`: they
implement ``weights(gram, state, losses=..., key=...)`` and the update is
:math:`\\sum_t w_t g_t`, computed leaf by leaf without concatenating the
gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GradientStrategy"]

HIGHEST = jax.lax.Precision.HIGHEST


def _name(strategy) -> str:
  return type(strategy).__name__


def stack_size(grads, who: str) -> int:
  """The task count ``T`` of a gradient stack, with clear errors for bad stacks."""
  leaves = jax.tree.leaves(grads)
  if not leaves:
    raise ValueError(
      f"{who}: the gradient stack is empty; pass a pytree whose leaves have "
      "a leading task axis (what jo.value_and_task_grad returns)."
    )
  sizes = set()
  for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
    shape = np.shape(leaf)
    if len(shape) == 0:
      raise ValueError(
        f"{who}: gradient leaf {jax.tree_util.keystr(path) or '(root)'} is a "
        "scalar; every leaf needs a leading task axis of size T."
      )
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise TypeError(
        f"{who}: gradient leaf {jax.tree_util.keystr(path) or '(root)'} has dtype "
        f"{jnp.result_type(leaf)}; task gradients must be floating point."
      )
    sizes.add(shape[0])
  if len(sizes) != 1:
    shapes = {
      jax.tree_util.keystr(p) or "(root)": tuple(np.shape(x))
      for p, x in jax.tree_util.tree_leaves_with_path(grads)
    }
    raise ValueError(
      f"{who}: the gradient leaves stack different numbers of tasks on their "
      f"leading axis: {shapes}. Every leaf needs the same leading size T."
    )
  return sizes.pop()


def compute_dtype(grads):
  return jnp.result_type(*jax.tree.leaves(grads), jnp.float32)


def gram_matrix(grads, dtype) -> jax.Array:
  """``M[s, t] = <g_s, g_t>`` summed over all leaves, in ``dtype``."""
  total = jnp.zeros((), dtype)
  for leaf in jax.tree.leaves(grads):
    flat = leaf.reshape(leaf.shape[0], -1).astype(dtype)
    total = total + jnp.matmul(flat, flat.T, precision=HIGHEST)
  return total


def weighted_sum(grads, weights):
  """``sum_t weights[t] * grads[t]`` leaf by leaf, in each leaf's dtype."""

  def one(leaf):
    dtype = jnp.result_type(leaf.dtype, weights.dtype)
    out = jnp.tensordot(weights.astype(dtype), leaf.astype(dtype), axes=1, precision=HIGHEST)
    return out.astype(leaf.dtype)

  return jax.tree.map(one, grads)


def finite_tasks(grads, num_tasks: int) -> jax.Array:
  ok = jnp.ones((num_tasks,), bool)
  for leaf in jax.tree.leaves(grads):
    ok = ok & jnp.all(jnp.isfinite(leaf.reshape(num_tasks, -1)), axis=1)
  return ok


def zero_tasks(grads, keep: jax.Array):
  def one(leaf):
    mask = keep.reshape((-1,) + (1,) * (leaf.ndim - 1))
    return jnp.where(mask, leaf, jnp.zeros((), leaf.dtype))

  return jax.tree.map(one, grads)


def safe_divide(a, b):
  return jnp.where(b != 0, a / jnp.where(b != 0, b, 1), 0.0)


def cosine_matrix(gram) -> jax.Array:
  norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
  return jnp.clip(safe_divide(gram, norms[:, None] * norms[None, :]), -1.0, 1.0)


def key_data(key, seed: int) -> jax.Array:
  """Raw ``uint32`` key data (checkpoints everywhere) from a key, or from ``seed``."""
  if key is None:
    key = jax.random.key(seed)
  if jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return jnp.asarray(key, jnp.uint32)


def split_state_key(data):
  """``(new key data, subkey)`` from the key data kept in a state."""
  key, sub = jax.random.split(jax.random.wrap_key_data(data))
  return jax.random.key_data(key), sub


def same_structure(a, b) -> bool:
  """Whether two pytrees have the same structure (containers and keys)."""
  return jax.tree.structure(a) == jax.tree.structure(b)  # type: ignore[operator]


def _describe(tree):
  return {
    jax.tree_util.keystr(p): tuple(np.shape(x))
    for p, x in jax.tree_util.tree_leaves_with_path(tree)
  }


@dataclasses.dataclass(frozen=True)
class GradientStrategy:
  """Base class of the gradient strategies; see the module docstring.

  Subclasses set ``needs_losses`` (``update`` then requires ``losses=``),
  ``uses_key`` (``state["key"]`` holds a PRNG key, split every call) and
  ``needs_like`` (``init`` needs ``like=``, a pytree shaped like one task's
  gradient), and implement ``weights`` or override ``_update``.

  Example — a strategy that gives every task a unit-norm gradient:

    >>> import dataclasses, jax.numpy as jnp
    >>> from jaxobj import objective as jo
    >>> @dataclasses.dataclass(frozen=True)
    ... class UnitNorms(jo.GradientStrategy):
    ...   def weights(self, gram, state, *, losses=None, key=None):
    ...     return 1.0 / jnp.sqrt(jnp.diag(gram)), {}, {}   # weights, state updates, info
    >>> s = UnitNorms()
    >>> update, state, info = s.update(jnp.array([[3.0, 4.0], [0.0, 2.0]]), s.init(2))
    >>> print(update, info["weights"])
    [0.6 1.8] [0.2 0.5]
  """

  needs_losses: ClassVar[bool] = False
  uses_key: ClassVar[bool] = False
  needs_like: ClassVar[bool] = False

  # --- state

  def init(self, num_tasks: int, *, like=None, key=None) -> dict[str, Any]:
    """The strategy's state for ``num_tasks`` tasks.

    Args:
      num_tasks: the number of tasks ``T`` (at least 1).
      like: a pytree shaped like one task's gradient (the shared params, or the
        representation); needed only by strategies that keep gradient averages
        (DB-MTL). Arrays or ``jax.ShapeDtypeStruct``\\ s.
      key: a PRNG key for the strategies that draw random numbers (PCGrad and
        GradVac task orders, GradDrop masks); default ``jax.random.key(seed)``.
    """
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)) or num_tasks < 1:
      raise ValueError(
        f"{_name(self)}.init(num_tasks={num_tasks!r}): num_tasks is the number "
        "of tasks, an integer >= 1."
      )
    num_tasks = int(num_tasks)
    if self.needs_like and like is None:
      raise ValueError(
        f"{_name(self)}.init(num_tasks, like=...): this strategy keeps a running "
        "average of every task's gradient, so it needs like=, a pytree shaped "
        "like one task's gradient (e.g. the shared params)."
      )
    state = {"step": jnp.zeros((), jnp.int32), "weights": jnp.ones((num_tasks,), jnp.float32)}
    if self.uses_key:
      state["key"] = key_data(key, getattr(self, "seed", 0))
    state.update(self._init_state(num_tasks, like))
    return state

  def _init_state(self, num_tasks: int, like) -> dict[str, Any]:
    del num_tasks, like
    return {}

  def check_state(self, state, num_tasks: int, grads=None) -> None:
    """Raises ``ValueError`` unless ``state`` was made by ``init`` for ``num_tasks`` tasks."""
    who = f"{_name(self)}.update"
    if not isinstance(state, dict) or "weights" not in state:
      raise ValueError(
        f"{who}: state must be the dict made by {_name(self)}().init(num_tasks); "
        f"got {type(state).__name__}."
      )
    held = np.shape(state["weights"])
    if held != (num_tasks,):
      raise ValueError(
        f"{who}: the state was made for {held[0] if held else '?'} tasks "
        f"(init(num_tasks={held[0] if held else '?'})) but the gradients stack {num_tasks} "
        f"tasks on their leading axis. Make the state with init(num_tasks={num_tasks}), "
        "or pass the gradients of the tasks the state was made for."
      )
    like = None
    if self.needs_like:
      if grads is None:
        return  # the buffers' shapes are checked when the gradients come
      like = jax.tree.map(lambda g: jax.ShapeDtypeStruct(np.shape(g)[1:], jnp.float32), grads)
    expected = jax.eval_shape(lambda: self.init(num_tasks, like=like))
    if not same_structure(state, expected) or _describe(state) != _describe(expected):
      raise ValueError(
        f"{who}: the state does not fit this strategy and these gradients: "
        f"expected {_describe(expected)}, got {_describe(state)}. Pass the state "
        f"made by {_name(self)}(...).init(num_tasks"
        f"{', like=params' if self.needs_like else ''})."
      )

  # --- combination

  def update(self, grads, state, *, losses=None):
    """Combines a stack of task gradients into one update.

    Args:
      grads: a pytree whose leaves stack the ``T`` task gradients on axis 0.
      state: this strategy's state (from ``init`` or the last ``update``).
      losses: the ``(T,)`` task losses; needed by GradNorm, DB-MTL and MGDA's
        loss normalizations, ignored by the others.

    Returns:
      ``(update, new_state, info)``: ``update`` has the structure of one task's
      gradient; ``info`` has ``"weights"`` (``(T,)``, the update is
      :math:`\\sum_t w_t g_t` except for GradDrop and DB-MTL, see theirs),
      ``"grad_norms"`` (``(T,)``), ``"cosine"`` (``(T, T)``, of the task
      gradients as received) and ``"nonfinite"`` (``(T,)`` bool, the tasks
      whose gradient or loss held NaN/inf: their gradient counts as zero for
      this step).

    Raises:
      ValueError: ``state`` was made for another number of tasks, the stack is
        malformed, or ``losses`` is missing or has the wrong shape.
      TypeError: a gradient leaf is not floating point.
    """
    who = f"{_name(self)}.update"
    num_tasks = stack_size(grads, who)
    self.check_state(state, num_tasks, grads)
    dtype = compute_dtype(grads)
    if losses is not None:
      losses = jnp.asarray(losses)
      if losses.shape != (num_tasks,):
        raise ValueError(
          f"{who}: losses has shape {losses.shape}, but the gradients stack "
          f"{num_tasks} tasks; pass the vector of the {num_tasks} task losses."
        )
      losses = losses.astype(dtype)
    elif self.needs_losses:
      raise ValueError(
        f"{who}: this strategy uses the task losses; pass losses=..., the "
        f"({num_tasks},) vector of task losses (what jo.value_and_task_grad "
        "returns with the gradients)."
      )
    finite = finite_tasks(grads, num_tasks)
    if losses is not None and self.needs_losses:
      finite = finite & jnp.isfinite(losses)
      losses = jnp.where(finite, losses, 1.0)
    grads = zero_tasks(grads, finite)
    gram = gram_matrix(grads, dtype)
    key = None
    new_state = dict(state)
    if self.uses_key:
      new_state["key"], key = split_state_key(state["key"])
    update, extra_state, info = self._update(grads, gram, state, losses, key)
    new_state.update(extra_state)
    new_state["step"] = state["step"] + 1
    info = {
      **info,
      "grad_norms": jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0)),
      "cosine": cosine_matrix(gram),
      "nonfinite": ~finite,
    }
    new_state["weights"] = jnp.asarray(new_state.get("weights", info["weights"]), jnp.float32)
    return update, new_state, info

  def _update(self, grads, gram, state, losses, key):
    weights, extra_state, info = self.weights(gram, state, losses=losses, key=key)
    weights = jnp.where(jnp.isfinite(weights), weights, 0.0)
    extra_state = {"weights": weights, **extra_state}
    return weighted_sum(grads, weights), extra_state, {"weights": weights, **info}

  def weights(self, gram: jax.Array, state, *, losses=None, key=None):
    """``(weights (T,), state updates, info)`` from the Gram matrix of the task gradients."""
    raise NotImplementedError(f"{_name(self)} combines gradients element-wise; use update().")
