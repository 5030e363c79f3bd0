"""Evaluation metrics that configs can list beside the registry's (``metrics:``).

They are evaluated on the validation split only and logged as
``metric/<name>``. Any registered loss or metric works there too
(``absolute_error``, ``expected_calibration_error``, ...); these cover what
the registry does not: accuracies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxobj._src import checks

__all__ = ["accuracy", "balanced_accuracy", "retrieval_accuracy", "METRICS"]


def _predicted(logits):
  """Class predictions: argmax over the last axis, or ``logit > 0`` for one logit per example."""
  logits = jnp.asarray(logits)
  if not jnp.issubdtype(logits.dtype, jnp.floating):
    raise TypeError(f"logits must be floating point, got {logits.dtype}.")
  if logits.ndim == 1:
    return (logits > 0).astype(jnp.int32), 2
  return jnp.argmax(logits, axis=-1), logits.shape[-1]


def _valid(where, like, name="labels"):
  if where is None:
    return jnp.ones(like.shape, bool)
  where = jnp.asarray(where, bool)
  checks.check_same_shape(name, like, "where", where)
  return where


def accuracy(logits, labels, *, where=None):
  """Fraction of examples whose predicted class is the label.

  Args:
    logits: ``(B, K)`` class logits, or ``(B,)`` binary logits (class 1 when > 0).
    labels: ``(B,)`` integer (or 0/1 float) labels.
    where: optional boolean mask over examples.
  """
  pred, _ = _predicted(logits)
  labels = jnp.asarray(labels).astype(jnp.int32)
  checks.check_same_shape("predictions", pred, "labels", labels)
  valid = _valid(where, labels)
  hits = jnp.sum(jnp.where(valid, pred == labels, False))
  return hits / jnp.maximum(jnp.sum(valid), 1)


def balanced_accuracy(logits, labels, *, where=None):
  """The mean over classes (those present among the labels) of the recall.

  On imbalanced data it tells a classifier that always predicts the majority
  class (accuracy = its frequency, balanced accuracy = 1/K) from one that
  finds the rare classes.
  """
  pred, k = _predicted(logits)
  labels = jnp.asarray(labels).astype(jnp.int32)
  checks.check_same_shape("predictions", pred, "labels", labels)
  valid = _valid(where, labels)
  onehot = jax.nn.one_hot(labels, k) * valid[..., None]
  support = jnp.sum(onehot, axis=0)
  hits = jnp.sum(onehot * (pred == labels)[..., None], axis=0)
  present = support > 0
  recall = jnp.where(present, hits / jnp.where(present, support, 1.0), 0.0)
  return jnp.sum(recall) / jnp.maximum(jnp.sum(present), 1)


def retrieval_accuracy(image_embeddings, text_embeddings, *, where=None):
  """Top-1 retrieval accuracy of paired embeddings, both directions averaged:
  how often row ``i``'s nearest partner (cosine similarity) is its own pair."""
  x = jnp.asarray(image_embeddings, jnp.float32)
  y = jnp.asarray(text_embeddings, jnp.float32)
  checks.check_same_shape("image_embeddings", x, "text_embeddings", y)
  valid = _valid(where, x[:, 0], "image_embeddings[:, 0]")
  unit = lambda a: a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
  s = unit(x) @ unit(y).T
  s = jnp.where(valid[None, :] & valid[:, None], s, -jnp.inf)
  idx = jnp.arange(x.shape[0])
  hits = 0.5 * (
    (jnp.argmax(s, axis=1) == idx).astype(jnp.float32)
    + (jnp.argmax(s, axis=0) == idx).astype(jnp.float32)
  )
  return jnp.sum(jnp.where(valid, hits, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


METRICS = {f.__name__: f for f in (accuracy, balanced_accuracy, retrieval_accuracy)}
