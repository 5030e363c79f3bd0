"""Per-task gradients in one compiled step: with respect to the shared params, or to a
shared representation.

Both run the forward pass once and pull the ``T`` one-hot cotangents back
through it together (``jax.vmap`` over one VJP), which XLA batches into one
backward pass of ``T`` columns instead of ``T`` separate passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxobj.objective.core import Evaluation, Objective

__all__ = [
  "value_and_task_grad",
  "representation_task_grads",
  "RepresentationGrads",
  "gradient_info",
]


def _task_names(tasks) -> tuple[str, ...]:
  """Task names from a sequence of names, or from an objective holding exactly one
  :func:`jo.multitask <jaxobj.objective.multitask>` node (its tasks, in order)."""
  if isinstance(tasks, Objective):
    from jaxobj.objective.weighting import MultiTask

    nodes = [n for n in tasks.nodes().values() if isinstance(n, MultiTask)]
    if len(nodes) != 1:
      raise ValueError(
        f"tasks=objective: the objective holds {len(nodes)} jo.multitask nodes; "
        "pass one that holds exactly one, or the task names, "
        "tasks=('depth', 'seg')."
      )
    return nodes[0].task_names
  if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
    raise ValueError(
      f"tasks={tasks!r}: pass a non-empty sequence of task names, or a jo.multitask objective."
    )
  return tuple(tasks)


def _evaluation_losses(evaluation: Evaluation, node: str | None, who: str) -> jax.Array:
  """The task-loss vector of one multi-task node of an evaluation."""
  found = sorted(evaluation.task_losses)
  if node is None:
    if len(found) != 1:
      raise ValueError(
        f"{who}: the evaluation holds {len(found)} jo.multitask nodes ({found}); "
        "pass node=<path> to say whose task losses to differentiate."
        if found
        else f"{who}: the evaluation holds no jo.multitask node, so it has no task "
        "losses; build the objective with jo.multitask({...}), or return the (T,) "
        "vector of task losses yourself."
      )
    node = found[0]
  if node not in evaluation.task_losses:
    raise KeyError(f"{who}(node={node!r}): the evaluation's multitask nodes are {found}.")
  return evaluation.task_losses[node]


def _task_losses(out, has_aux, node, who):
  """``(losses (T,), aux)`` from what the user's function returned."""
  if isinstance(out, Evaluation):
    losses, aux = _evaluation_losses(out, node, who), out
  elif has_aux:
    if not (isinstance(out, tuple) and len(out) == 2):
      raise TypeError(f"{who}(has_aux=True): the function must return (losses, aux).")
    losses, aux = out
  else:
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
      raise TypeError(
        f"{who}: the function returned (total, info), as Objective.apply does; return "
        "objective.evaluate(...) instead (an Evaluation), whose task losses are "
        "differentiated."
      )
    losses, aux = out, None
  losses = jnp.asarray(losses)
  if losses.ndim != 1 or losses.shape[0] < 1:
    raise ValueError(
      f"{who}: the function must return the vector of the T task losses, shape "
      f"(T,), got shape {losses.shape}"
      + (" (use has_aux=True to return (losses, aux))." if not has_aux else ".")
    )
  if not jnp.issubdtype(losses.dtype, jnp.floating):
    raise TypeError(f"{who}: the task losses have dtype {losses.dtype}; they must be floating.")
  return losses, aux


def _one_hot_pullback(vjp, losses, batch_size):
  eye = jnp.eye(losses.shape[0], dtype=losses.dtype)
  if batch_size is None:
    return jax.vmap(vjp)(eye)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(
      f"batch_size={batch_size!r}: the number of tasks pulled back together, "
      "an integer >= 1 (or None for all of them)."
    )
  return jax.lax.map(vjp, eye, batch_size=min(batch_size, losses.shape[0]))


def value_and_task_grad(
  fun: Callable,
  *,
  argnums: int | Sequence[int] = 0,
  has_aux: bool = False,
  node: str | None = None,
  batch_size: int | None = None,
) -> Callable:
  """Like ``jax.value_and_grad``, for a function returning a vector of task losses.

  Args:
    fun: ``fun(*args) -> losses`` of shape ``(T,)`` (or ``(losses, aux)`` with
      ``has_aux``), or an :class:`~jaxobj.objective.Evaluation`
      (``objective.evaluate(...)``): its multi-task node's task losses are
      differentiated (the unweighted task values; the gradient strategy
      replaces the objective's weighting).
    argnums: which positional argument(s) to differentiate (the shared
      params); an int or a tuple of ints.
    has_aux: ``fun`` returns ``(losses, aux)``.
    node: with an evaluation holding several
      :func:`jo.multitask <jaxobj.objective.multitask>` nodes, the path of the
      one whose task losses are differentiated.
    batch_size: how many tasks are pulled back together: ``None`` (all ``T``,
      one batched backward pass, the fastest where there is parallelism to
      spare) or ``k`` (``jax.lax.map`` in chunks of ``k``; 1 is one backward
      pass per task, holding one task's cotangents at a time).

  Returns:
    A function with ``fun``'s signature returning ``(value, grads)``.
    ``value`` is ``losses``, or ``(losses, aux)`` with ``has_aux``, or
    ``(losses, evaluation)`` when ``fun`` returns an evaluation. ``grads`` has the structure of the
    differentiated argument (a tuple of them for a tuple ``argnums``) with a
    leading task axis of size ``T`` on every leaf: ``grads[t]`` is the
    gradient of ``losses[t]``. One forward pass, and one batched backward pass
    of ``T`` one-hot cotangents.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj import objective as jo
    >>> f = lambda w: jnp.stack([jnp.sum(w ** 2), jnp.sum(3.0 * w)])
    >>> losses, grads = jo.value_and_task_grad(f)(jnp.array([1.0, 2.0]))
    >>> print(losses, grads.tolist())
    [5. 9.] [[2.0, 4.0], [3.0, 3.0]]
  """
  nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
  who = "value_and_task_grad"

  def wrapped(*args, **kwargs):
    if max(nums) >= len(args):
      raise ValueError(
        f"{who}(argnums={argnums!r}): the function got only {len(args)} positional arguments."
      )

    def restricted(*diff):
      full = list(args)
      for i, a in zip(nums, diff):
        full[i] = a
      return _task_losses(fun(*full, **kwargs), has_aux, node, who)

    losses, vjp, aux = jax.vjp(restricted, *[args[i] for i in nums], has_aux=True)
    grads = _one_hot_pullback(vjp, losses, batch_size)
    grads = grads[0] if isinstance(argnums, int) else grads
    value = (losses, aux) if (has_aux or isinstance(aux, Evaluation)) else losses
    return value, grads

  return wrapped


class RepresentationGrads(NamedTuple):
  """What :func:`representation_task_grads` returns."""

  value: Any
  """The task losses, or ``(losses, aux)`` / ``(losses, info)``."""
  grads: Any
  """Per-task gradients with respect to the representation, leading axis ``T``."""
  pullback: Callable
  """``pullback(update) -> (encoder_grads, head_grads)``: one encoder backward pass."""


def representation_task_grads(
  encoder: Callable,
  heads: Callable,
  encoder_params,
  head_params,
  *args,
  has_aux: bool = False,
  node: str | None = None,
  batch_size: int | None = None,
  **kwargs,
) -> RepresentationGrads:
  """Per-task gradients with respect to a shared representation (MGDA-UB style).

  Cheaper than per-task gradients of all the shared params: only the heads run
  backward ``T`` times (batched); the encoder runs backward once, on the
  combined cotangent, when you call ``pullback``.

  Args:
    encoder: ``encoder(encoder_params, *args, **kwargs) -> representation``
      (any pytree).
    heads: ``heads(head_params, representation, *args, **kwargs) -> losses``
      of shape ``(T,)`` (or ``(losses, aux)`` with ``has_aux``, or an
      evaluation, as in :func:`value_and_task_grad`).
    encoder_params, head_params: the shared and the task-specific params.
    *args, **kwargs: the batch, passed to both.
    has_aux, node, batch_size: as in :func:`value_and_task_grad`.

  Returns:
    ``RepresentationGrads(value, grads, pullback)``: ``grads`` stacks the ``T``
    gradients with respect to the representation; combine them with a
    strategy and call ``pullback(update)`` for ``(encoder_grads,
    head_grads)``, where ``head_grads`` is the gradient of the plain sum of
    the task losses (each head sees only its own task, as in LibMTL).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj import objective as jo
    >>> encoder = lambda w, x: w * x
    >>> heads = lambda h, z, x: jnp.stack([jnp.sum(h[0] * z), jnp.sum(h[1] * z ** 2)])
    >>> value, rep_grads, pullback = jo.representation_task_grads(
    ...     encoder, heads, 2.0, jnp.array([1.0, 1.0]), jnp.array([1.0, 3.0]))
    >>> update, state, info = jo.WeightedSum().update(rep_grads, jo.WeightedSum().init(2))
    >>> enc_grad, head_grads = pullback(update)
    >>> print(value, rep_grads.tolist(), enc_grad, head_grads)
    [ 8. 40.] [[1.0, 1.0], [4.0, 12.0]] 44.0 [ 8. 40.]
  """
  who = "representation_task_grads"
  rep, encoder_vjp = jax.vjp(lambda p: encoder(p, *args, **kwargs), encoder_params)

  def head_losses(hp, z):
    return _task_losses(heads(hp, z, *args, **kwargs), has_aux, node, who)

  losses, heads_vjp, aux = jax.vjp(head_losses, head_params, rep, has_aux=True)
  grads = _one_hot_pullback(lambda ct: heads_vjp(ct)[1], losses, batch_size)

  def pullback(update):
    (encoder_grads,) = encoder_vjp(update)
    head_grads = heads_vjp(jnp.ones_like(losses))[0]
    return encoder_grads, head_grads

  value = (losses, aux) if (has_aux or isinstance(aux, Evaluation)) else losses
  return RepresentationGrads(value, grads, pullback)


def gradient_info(info: dict, tasks) -> dict[str, jax.Array]:
  """A strategy's ``info`` as flat, named scalars for logging.

  Gives ``"grad_weight/<task>"``, ``"grad_norm/<task>"`` and
  ``"grad_cosine/<a>/<b>"`` (for every pair ``a`` before ``b``); ``tasks`` are
  the task names or a :func:`jo.multitask <jaxobj.objective.multitask>`
  objective.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj import objective as jo
    >>> s = jo.MGDA()
    >>> _, _, info = s.update(jnp.array([[1.0, 0.0], [0.0, 2.0]]), s.init(2))
    >>> logs = jo.gradient_info(info, ["a", "b"])
    >>> print(sorted(logs), round(float(logs["grad_weight/a"]), 3))
    ['grad_cosine/a/b', 'grad_norm/a', 'grad_norm/b', 'grad_weight/a', 'grad_weight/b'] 0.8
  """
  names = _task_names(tasks)
  if len(names) != info["weights"].shape[0]:
    raise ValueError(
      f"gradient_info: {len(names)} task names for {info['weights'].shape[0]} tasks in info."
    )
  out = {}
  for i, t in enumerate(names):
    out[f"grad_weight/{t}"] = info["weights"][i]
    out[f"grad_norm/{t}"] = info["grad_norms"][i]
  for i, a in enumerate(names):
    for j in range(i + 1, len(names)):
      out[f"grad_cosine/{a}/{names[j]}"] = info["cosine"][i, j]
  return out
