"""Evaluation metrics: accuracies of class predictions and of paired retrieval.

Metrics are registered like losses (``kind="metric"``), so configs list them
under ``metrics:`` by name and the conformance tests hold them to the rules on
unusual inputs: NaN in an unmasked input reaches the value, masked rows change
nothing, an empty batch gives 0. They are not differentiable objectives (their
gradient is zero almost everywhere).

:func:`accuracy` is a per-example value under the loss contract (``where``,
``weights``, ``reduction``), so it splits exactly over microbatches and
devices; :func:`balanced_accuracy` and :func:`retrieval_accuracy` compare
examples across the batch (per-class recalls, in-batch nearest neighbours) and
give one value for the whole batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, examples
from jaxobj._src.examples import contrastive as contrastive_examples
from jaxobj._src.reduce import Reduced, reduce_loss
from jaxobj.registry import register

__all__ = ["accuracy", "balanced_accuracy", "retrieval_accuracy"]


def _predictions(
  logits: ArrayLike, labels: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array, int]:
  """Predicted and true classes, a NaN flag per example, and the number of classes.

  ``logits`` shaped like ``labels`` are binary (class 1 where the logit is
  positive); ``logits.shape == labels.shape + (K,)`` are K class logits (argmax).
  """
  logits = checks.as_float(logits, "logits")
  labels = jnp.asarray(labels)
  if logits.shape == labels.shape:
    pred, nan, classes = (logits > 0).astype(jnp.int32), jnp.isnan(logits), 2
  else:
    checks.check_label_shape("logits", logits, "labels", labels)
    pred = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    nan, classes = jnp.any(jnp.isnan(logits), axis=-1), logits.shape[-1]
  if jnp.issubdtype(labels.dtype, jnp.floating):  # 0/1 float labels
    nan = nan | jnp.isnan(labels)
  elif not jnp.issubdtype(labels.dtype, jnp.integer) and labels.dtype != jnp.bool_:
    raise TypeError(f"labels must be integer (or 0/1) class labels, got dtype {labels.dtype}.")
  return pred, labels.astype(jnp.int32), nan, classes


@register("classification", kind="metric", inputs=examples.INTEGER_LABELS)
def accuracy(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Fraction of examples whose predicted class is the label.

  .. math::
     \mathrm{acc} = \frac{1}{N} \sum_i [\operatorname{argmax}_k z_{ik} = y_i]

  With one logit per example (``logits.shape == labels.shape``) the predicted
  class is 1 where the logit is positive.

  Args:
    logits: ``[..., K]`` class logits, or ``[...]`` binary logits.
    labels: ``[...]`` integer labels (or 0/1 labels for binary logits).
    where: optional boolean mask over examples (broadcastable to ``labels``).
    weights: optional per-example weights; the mean divides by their sum.
    reduction: ``"mean"`` (the accuracy), ``"sum"`` (the number of hits) or
      ``"none"`` (1 for a hit, 0 for a miss, per example).

  Returns:
    A float32 scalar, or ``labels.shape`` for ``"none"``; NaN where an
    unmasked logit is NaN.

  Raises:
    ValueError: ``labels`` is neither ``logits.shape`` nor ``logits.shape[:-1]``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    >>> print(jaxobj.accuracy(logits, jnp.array([0, 1, 1])))
    0.6666667
  """
  pred, labels, nan, _ = _predictions(logits, labels)
  hits = jnp.where(nan, jnp.nan, (pred == labels).astype(jnp.float32))
  return reduce_loss(hits, where=where, weights=weights, reduction=reduction)


@register("classification", kind="metric", inputs=examples.INTEGER_LABELS, couples_rows=True)
def balanced_accuracy(
  logits: ArrayLike, labels: ArrayLike, *, where: ArrayLike | None = None
) -> jax.Array:
  r"""The mean over classes (those present among the labels) of the recall.

  .. math::
     \mathrm{bacc} = \frac{1}{|C|} \sum_{c \in C}
       \frac{|\{i : \hat y_i = c,\ y_i = c\}|}{|\{i : y_i = c\}|}

  where :math:`C` is the set of classes present among the unmasked labels. On
  imbalanced data it tells a classifier that always predicts the majority
  class (accuracy = its frequency, balanced accuracy = 1/K) from one that
  finds the rare classes.

  Args:
    logits: ``[..., K]`` class logits, or ``[...]`` binary logits.
    labels: ``[...]`` integer labels (or 0/1 labels for binary logits).
    where: optional boolean mask over examples, shaped like ``labels``.

  Returns:
    A float32 scalar (0 for an empty or fully masked batch); NaN where an
    unmasked logit is NaN.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.balanced_accuracy(logits, jnp.array([0, 0, 0, 0])))
    0.75
  """
  pred, labels, nan, classes = _predictions(logits, labels)
  valid = _valid(where, labels, "labels")
  onehot = jax.nn.one_hot(labels, classes, dtype=jnp.float32) * valid[..., None]
  onehot = onehot.reshape(-1, classes)
  support = jnp.sum(onehot, axis=0)
  hits = jnp.sum(onehot * (pred == labels).reshape(-1, 1), axis=0)
  present = support > 0
  recall = jnp.where(present, hits / jnp.where(present, support, 1.0), 0.0)
  value = jnp.sum(recall) / jnp.maximum(jnp.sum(present), 1)
  return jnp.where(jnp.any(nan & valid), jnp.nan, value)


@register("contrastive", kind="metric", inputs=contrastive_examples.VIEWS, couples_rows=True)
def retrieval_accuracy(
  image_embeddings: ArrayLike, text_embeddings: ArrayLike, *, where: ArrayLike | None = None
) -> jax.Array:
  r"""Top-1 retrieval accuracy of paired embeddings, both directions averaged.

  How often row ``i``'s nearest partner by cosine similarity is its own pair:

  .. math::
     \frac{1}{2N} \sum_i \big([\operatorname{argmax}_j s_{ij} = i]
       + [\operatorname{argmax}_j s_{ji} = i]\big),
     \quad s_{ij} = \cos(x_i, y_j)

  Args:
    image_embeddings: ``[B, D]`` embeddings of one side of the pairs.
    text_embeddings: ``[B, D]`` embeddings of the other side.
    where: optional ``[B]`` boolean mask; masked pairs are neither queries nor
      candidates.

  Returns:
    A float32 scalar (0 for an empty or fully masked batch); NaN where an
    unmasked embedding holds NaN.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.eye(3)
    >>> print(jaxobj.retrieval_accuracy(x, 2.0 * x), jaxobj.retrieval_accuracy(x, x[::-1]))
    1.0 0.33333334
  """
  x = checks.as_float(image_embeddings, "image_embeddings").astype(jnp.float32)
  y = checks.as_float(text_embeddings, "text_embeddings").astype(jnp.float32)
  checks.check_same_shape("image_embeddings", x, "text_embeddings", y)
  if x.ndim != 2:
    raise ValueError(
      f"retrieval_accuracy takes [B, D] embeddings, got image_embeddings.shape={x.shape}; "
      "flatten the batch axes with x.reshape(-1, x.shape[-1])."
    )
  valid = _valid(where, x[:, 0], "image_embeddings[:, 0]")
  if x.shape[0] == 0:
    return jnp.zeros((), jnp.float32)
  nan = jnp.any(jnp.isnan(x) | jnp.isnan(y), axis=-1)

  def unit(a):
    return a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)

  s = unit(x) @ unit(y).T
  s = jnp.where(valid[None, :] & valid[:, None], s, -jnp.inf)
  idx = jnp.arange(x.shape[0])
  hits = 0.5 * (
    (jnp.argmax(s, axis=1) == idx).astype(jnp.float32)
    + (jnp.argmax(s, axis=0) == idx).astype(jnp.float32)
  )
  value = jnp.sum(jnp.where(valid, hits, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
  return jnp.where(jnp.any(nan & valid), jnp.nan, value)


def _valid(where: ArrayLike | None, like: jax.Array, name: str) -> jax.Array:
  """The example mask: all True when ``where`` is None, else checked against ``like``."""
  if where is None:
    return jnp.ones(like.shape, bool)
  mask = checks.as_mask(where, like.shape, to=f"{name}'s shape")
  return jnp.broadcast_to(mask, like.shape)
