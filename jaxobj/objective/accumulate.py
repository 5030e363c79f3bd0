r"""Exact gradient accumulation over microbatches.

Averaging per-microbatch means is wrong whenever microbatches hold different
numbers of valid elements (padding, masks, ignored labels). jaxobj carries each
term's ``(sum, count)`` instead, so the accumulated loss is exactly the
whole-batch loss. The gradient is exact too, for any combination of the terms
(uncertainty weighting and geometric means included), in two passes:

1. a forward pass over the microbatches accumulates every term's
   ``(sum, count)``; the combination :math:`f` of the term values
   :math:`L_t = S_t / C_t` gives the total and :math:`g_t = \partial f /
   \partial S_t`;
2. a backward pass over the microbatches accumulates
   :math:`\nabla \sum_t g_t S_t^{(m)}`, which sums to :math:`\nabla f` by the
   chain rule.

The first pass costs one forward pass per microbatch on top of the usual
forward and backward. Across devices, ``Objective.apply(..., axis_name=...)``
does the same with one ``psum`` of the statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxobj.objective.core import Evaluation, Objective

__all__ = ["accumulate_value_and_grad"]


def accumulate_value_and_grad(
  objective: Objective,
  data_fn: Callable[[Any, Any], dict[str, Any]],
  model_params,
  objective_params,
  microbatches,
  *,
  step=None,
  state=None,
  key=None,
  return_evaluation: bool = False,
):
  """Whole-batch ``(total, info)`` and gradients from microbatches, exactly.

  Args:
    objective: the objective.
    data_fn: ``data_fn(model_params, microbatch) -> dict`` of the data sources
      ``objective.apply`` reads (e.g. ``{"outputs": model(params, mb["x"]),
      "batch": mb, "model": params}``). It runs the model, so it is called
      twice per microbatch (forward pass, then forward and backward).
    model_params: the model's parameters (differentiated).
    objective_params: the objective's params (differentiated; ``{}`` if none).
    microbatches: a pytree whose leaves have a leading microbatch axis; it is
      scanned over with ``jax.lax.scan``, so memory holds one microbatch.
    step, state, key: as in ``Objective.apply``.
    return_evaluation: return the whole batch's :class:`~jaxobj.objective.Evaluation`
      in place of ``(total, info)``: its ``.state`` is the weighting state
      (DWA, FAMO) after this batch.

  A plain-function term (one without the loss contract's ``reduction``, such
  as your own scalar function) counts once per microbatch: its value is the
  mean over the microbatches, exact when it does not depend on the batch
  (a regularizer) or the microbatches are of equal size.

  Raises:
    ValueError: a term's loss couples the rows of its batch (CLIP, SigLIP,
      NT-Xent, mined triplets, ...: ``couples_rows`` in the registry); use
      :func:`jaxobj.objective.cached_value_and_grad` for those.

  Returns:
    ``((total, info), (model_grads, objective_grads))``, equal to
    ``jax.value_and_grad(objective.apply)`` on the whole batch; with
    ``return_evaluation=True``, ``(evaluation, (model_grads, objective_grads))``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> obj = jo.term(jaxobj.squared_error, "outputs", "batch.y", where="batch.valid")
    >>> data_fn = lambda w, mb: {"outputs": w * mb["x"], "batch": mb}
    >>> mbs = {"x": jnp.ones((2, 3)), "y": jnp.zeros((2, 3)),
    ...        "valid": jnp.array([[True, True, True], [True, False, False]])}
    >>> (loss, info), (g, _) = jo.accumulate_value_and_grad(obj, data_fn, 2.0, {}, mbs)
    >>> print(loss, info["count/squared_error"], g)
    4.0 4.0 4.0
  """
  evaluation, grads = accumulate(
    objective,
    lambda p: p[1],
    lambda p, mb: data_fn(p[0], mb),
    (model_params, objective_params),
    microbatches,
    step=step,
    state=state,
    key=key,
  )
  return evaluation_or_apply(evaluation, return_evaluation), grads


def evaluation_or_apply(evaluation: Evaluation, return_evaluation: bool):
  """What the value-and-grad functions return: the record, or ``apply``'s ``(total, info)``."""
  return evaluation if return_evaluation else (evaluation.total, evaluation.info)


def accumulate(
  objective: Objective,
  objective_params_of: Callable[[Any], Any],
  data_fn: Callable[[Any, Any], dict[str, Any]],
  params,
  microbatches,
  *,
  step=None,
  state=None,
  key=None,
):
  """The two passes over one differentiated pytree ``params``.

  ``objective_params_of(params)`` picks the objective's params out of it and
  ``data_fn(params, microbatch)`` gives ``apply``'s data; the public functions
  (:func:`accumulate_value_and_grad` and its NNX form) are thin layers over it.
  Returns ``(evaluation, grads)`` with ``grads`` shaped like ``params``.
  """
  _check_separable(objective, microbatches)

  def stats(params, mb):
    return objective.statistics(objective_params_of(params), step=step, **data_fn(params, mb))

  def add(a, b):
    return jax.tree.map(jnp.add, a, b)

  first = jax.tree.map(lambda x: x[0], microbatches)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(stats, params, first))
  totals, _ = jax.lax.scan(lambda acc, mb: (add(acc, stats(params, mb)), None), zeros, microbatches)
  sums = {p: s for p, (s, _) in totals.items()}
  counts = {p: c for p, (_, c) in totals.items()}

  def combined(params, sums):
    stats_ = {p: (sums[p], counts[p]) for p in sums}
    evaluation = objective.finalize(
      objective_params_of(params), stats_, step=step, state=state, key=key
    )
    return evaluation.total, evaluation

  (_, evaluation), (direct, g_sums) = jax.value_and_grad(combined, argnums=(0, 1), has_aux=True)(
    params, sums
  )

  def surrogate(params, mb):
    s = stats(params, mb)
    return sum(g_sums[p] * s[p][0] for p in s)

  grad = jax.grad(surrogate)
  grads, _ = jax.lax.scan(
    lambda acc, mb: (add(acc, grad(params, mb)), None),
    jax.tree.map(jnp.zeros_like, params),
    microbatches,
  )
  return evaluation, add(grads, direct)


def _check_separable(objective: Objective, microbatches) -> None:
  """Refuses terms whose rows interact: their microbatch sums do not add up."""
  leaves = jax.tree.leaves(microbatches)
  if not leaves or jnp.shape(leaves[0])[0] <= 1:
    return
  coupled = [(p, t.fn) for p, t in objective.terms().items() if t.couples_rows]
  if coupled:
    path, fn = coupled[0]
    raise ValueError(
      f"term {path!r}: {getattr(fn, '__name__', fn)} couples the rows of its batch "
      "(in-batch negatives, batch statistics or mined pairs), so its value on a "
      "microbatch is not a part of the whole batch's and accumulate_value_and_grad "
      "cannot add microbatches up exactly. Use jo.cached_value_and_grad: it embeds "
      "every microbatch, computes the loss and its gradient on the whole batch of "
      "embeddings, then backpropagates microbatch by microbatch (exact, with one "
      "microbatch's activations in memory)."
    )
