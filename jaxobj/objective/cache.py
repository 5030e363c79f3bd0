r"""Exact microbatching of batch-coupled losses with an embedding cache (GradCache).

Contrastive and other batch-coupled losses (CLIP, SigLIP, NT-Xent, SupCon,
batch-mined triplets, Barlow Twins, VICReg, MMD, ...) compare every row with
the rest of the batch, so the loss of a batch is not a sum over its
microbatches and :func:`~jaxobj.objective.accumulate_value_and_grad` cannot
split it. What such a loss reads, though, is small: one embedding per row. The
embedding cache of Gao et al. (2021) splits the *encoder* instead of the loss.
With :math:`e_m = e(\theta, x_m)` the embeddings of microbatch :math:`m`,
:math:`E = [e_1; \dots; e_M]` and the objective
:math:`L(\theta) = F(\theta, E(\theta))`, the chain rule gives

.. math::
   \nabla_\theta L = \partial_\theta F(\theta, E)
     + \sum_{m=1}^{M} \Big(\frac{\partial e(\theta, x_m)}{\partial \theta}\Big)^{\!\top}
       \frac{\partial F}{\partial e_m}(\theta, E)

and :func:`cached_value_and_grad` computes each part in its own pass:

1. embed every microbatch (forward only, nothing kept for a backward pass) and
   stack the embeddings :math:`E` of the whole batch;
2. evaluate the objective on the whole batch and take its gradient with
   respect to :math:`E`, the objective's params and the model's params where
   the objective reads them directly (a regularizer, a head applied to the
   embeddings);
3. backpropagate each microbatch again, pulling its slice
   :math:`\partial F / \partial e_m` back through the encoder with
   ``jax.vjp``, and sum.

Nothing is approximated: the value, ``info`` and every gradient are those of
the whole batch, up to float rounding. Peak memory holds one microbatch's
activations, the whole batch's embeddings and their gradient, and the loss's
own working set on the embeddings (for CLIP the :math:`B \times B` similarities,
or a few blocks of them with :func:`jaxobj.chunked_clip_loss`), instead of the
whole batch's activations. The price is one more forward pass per microbatch.

References:
  Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size
  under Memory Limited Setup", RepL4NLP 2021.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxobj.objective.accumulate import evaluation_or_apply
from jaxobj.objective.core import Objective

__all__ = ["cached_value_and_grad"]


def cached_value_and_grad(
  objective: Objective,
  embed_fn: Callable[[Any, Any], Any],
  data_fn: Callable[[Any, Any, Any], dict[str, Any]],
  model_params,
  objective_params,
  microbatches,
  *,
  step=None,
  state=None,
  key=None,
  return_evaluation: bool = False,
):
  r"""Whole-batch ``(total, info)`` and gradients of any objective, embedding microbatches.

  The tool for batch-coupled losses (in-batch negatives, batch statistics,
  mined triplets) when one batch's activations do not fit in memory; see the
  module docstring for the three passes and why they are exact. Every term of
  the objective is evaluated on the whole batch, so it works for any
  objective: coupled losses, per-row losses, regularizers on the model,
  masks, groups and multi-task weighting alike. It is a pure function: call it
  inside ``jax.jit``.

  Args:
    objective: the objective.
    embed_fn: ``embed_fn(model_params, microbatch) -> embeddings``, the
      expensive part of the model (the encoder). ``embeddings`` is a pytree of
      floating-point arrays whose leading axis is the microbatch's rows
      (e.g. ``{"image": (b, D), "text": (b, D)}``). It is called twice per
      microbatch (pass 1, then pass 3 with its backward pass).
    data_fn: ``data_fn(model_params, embeddings, batch) -> dict`` of the data
      sources ``objective.apply`` reads (e.g. ``{"outputs": embeddings,
      "batch": batch, "model": model_params}``). It sees the whole batch:
      ``embeddings`` and ``batch`` are the microbatches' stacked in order
      (``B = M * b`` rows), so keep it cheap; whatever it computes from
      ``model_params`` (a small head, a regularizer's input) is differentiated
      directly.
    model_params: the model's parameters (differentiated): any pytree, e.g.
      the ``nnx.State`` of ``nnx.split(model, nnx.Param, ...)``.
    objective_params: the objective's params (differentiated; ``{}`` if none).
    microbatches: a pytree whose leaves have shape ``(M, b, ...)``: ``M``
      microbatches of ``b`` rows each, e.g. a batch reshaped with
      ``jax.tree.map(lambda x: x.reshape(M, -1, *x.shape[1:]), batch)``.
    step, state, key: as in ``Objective.apply``.
    return_evaluation: return the whole batch's :class:`~jaxobj.objective.Evaluation`
      in place of ``(total, info)`` (its ``.state`` is the new weighting state).

  Returns:
    ``((total, info), (model_grads, objective_grads))``, equal to
    ``jax.value_and_grad(..., argnums=(0, 1), has_aux=True)`` of
    ``objective.apply(objective_params, **data_fn(model_params,
    embed_fn(model_params, batch), batch))`` on the whole batch; with
    ``return_evaluation=True``, ``(evaluation, (model_grads, objective_grads))``.

  Raises:
    ValueError: the microbatch leaves disagree on ``M`` or ``b``, or the
      embeddings do not have ``b`` rows.
    TypeError: ``objective`` is not an objective, an embedding is not
      floating-point, or ``data_fn`` returns no dict.

  Example:
    CLIP over 4 microbatches of 2 pairs equals CLIP over the batch of 8:

    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> obj = jo.term(jaxobj.clip_loss, "outputs.image", "outputs.text")
    >>> def embed(w, mb):
    ...   return {"image": jnp.tanh(mb["image"] @ w["image"]),
    ...           "text": jnp.tanh(mb["text"] @ w["text"])}
    >>> data = lambda w, emb, batch: {"outputs": emb}
    >>> k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    >>> w = {"image": jax.random.normal(k1, (3, 4)), "text": jax.random.normal(k2, (5, 4))}
    >>> batch = {"image": jax.random.normal(k3, (8, 3)), "text": jax.random.normal(k4, (8, 5))}
    >>> mbs = jax.tree.map(lambda x: x.reshape(4, 2, -1), batch)
    >>> step = jax.jit(lambda w, mbs: jo.cached_value_and_grad(obj, embed, data, w, {}, mbs))
    >>> (loss, info), (g, _) = step(w, mbs)
    >>> whole, g_whole = jax.value_and_grad(
    ...     lambda w: obj.apply(outputs=embed(w, batch))[0])(w)
    >>> print(jnp.allclose(loss, whole), jnp.allclose(g["text"], g_whole["text"], atol=1e-6))
    True True
    >>> print(info["count/clip_loss"])
    8.0
  """
  if not isinstance(objective, Objective):
    raise TypeError(
      f"cached_value_and_grad(objective=...) needs a jaxobj objective, got "
      f"{type(objective).__name__}."
    )
  m, b = _microbatch_shape(microbatches)
  first = jax.tree.map(lambda x: x[0], microbatches)
  _check_embeddings(jax.eval_shape(embed_fn, model_params, first), b)

  def rows(x):  # (M, b, ...) -> (M * b, ...)
    return x.reshape(m * b, *x.shape[2:])

  # Pass 1: forward only, so no activation outlives its microbatch.
  _, stacked = jax.lax.scan(lambda _, mb: (None, embed_fn(model_params, mb)), None, microbatches)
  embeddings = jax.tree.map(rows, stacked)
  batch = jax.tree.map(rows, microbatches)

  # Pass 2: the objective on the whole batch, differentiated w.r.t. the embeddings too.
  def whole(mp, op, emb):
    data = data_fn(mp, emb, batch)
    if not isinstance(data, Mapping):
      raise TypeError(
        f"cached_value_and_grad: data_fn must return a dict of the data sources "
        f"objective.apply reads (e.g. {{'outputs': embeddings, 'batch': batch}}), got "
        f"{type(data).__name__}."
      )
    evaluation = objective.evaluate(op, step=step, state=state, key=key, **data)
    return evaluation.total, evaluation

  (_, evaluation), (direct, objective_grads, embedding_grads) = jax.value_and_grad(
    whole, argnums=(0, 1, 2), has_aux=True
  )(model_params, objective_params, embeddings)

  # Pass 3: each microbatch's slice of dF/dE pulled back through the encoder.
  cotangents = jax.tree.map(lambda g: g.reshape(m, b, *g.shape[1:]), embedding_grads)

  def backward(acc, xs):
    mb, ct = xs
    _, pull = jax.vjp(lambda p: embed_fn(p, mb), model_params)
    (g,) = pull(ct)
    return jax.tree.map(jnp.add, acc, g), None

  model_grads, _ = jax.lax.scan(backward, direct, (microbatches, cotangents))
  return evaluation_or_apply(evaluation, return_evaluation), (model_grads, objective_grads)


def _described(tree) -> str:
  return ", ".join(
    f"{jax.tree_util.keystr(p) or 'the value'}: {tuple(jnp.shape(x))}"
    for p, x in jax.tree_util.tree_leaves_with_path(tree)
  )


def _microbatch_shape(microbatches) -> tuple[int, int]:
  """``(M, b)``: every leaf of ``microbatches`` has shape ``(M, b, ...)``."""
  leaves = jax.tree_util.tree_leaves_with_path(microbatches)
  fix = (
    "Split a batch of B rows into M microbatches with "
    "jax.tree.map(lambda x: x.reshape(M, B // M, *x.shape[1:]), batch)."
  )
  if not leaves:
    raise ValueError(
      "cached_value_and_grad: microbatches has no arrays; pass the "
      f"batch split into microbatches. {fix}"
    )
  flat = [jnp.shape(x) for _, x in leaves]
  if any(len(s) < 2 for s in flat) or len({s[:2] for s in flat}) != 1:
    raise ValueError(
      "cached_value_and_grad: every leaf of microbatches needs shape (M, b, ...), the "
      "same M microbatches of the same b rows (the rows are stacked into the whole "
      f"batch), got {_described(microbatches)}. {fix} Data without a row axis belongs "
      "in embed_fn or data_fn (closed over), not in the microbatches."
    )
  m, b = flat[0][:2]
  if m == 0:
    raise ValueError(
      "cached_value_and_grad: microbatches hold M = 0 microbatches; pass at least one."
    )
  return m, b


def _check_embeddings(shapes, b: int) -> None:
  leaves = jax.tree_util.tree_leaves_with_path(shapes)
  if not leaves:
    raise ValueError(
      "cached_value_and_grad: embed_fn returned no arrays; it must return "
      "the microbatch's embeddings, one row per row of the microbatch."
    )
  if any(len(x.shape) < 1 or x.shape[0] != b for _, x in leaves):
    raise ValueError(
      f"cached_value_and_grad: embed_fn must return arrays whose leading axis is the "
      f"microbatch's rows ({b} here), got {_described(shapes)}. Return per-row outputs "
      "(e.g. (b, D) embeddings); compute whole-batch quantities in data_fn."
    )
  bad = [(p, x.dtype) for p, x in leaves if not jnp.issubdtype(x.dtype, jnp.inexact)]
  if bad:
    shown = ", ".join(f"{jax.tree_util.keystr(p) or 'the value'}: {d}" for p, d in bad)
    raise TypeError(
      f"cached_value_and_grad: embed_fn's outputs are differentiated, so they must be "
      f"floating-point, got {shown}. Read integer data (labels, masks) from the batch "
      "in data_fn instead."
    )
