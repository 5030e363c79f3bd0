r"""Labelled batches of embeddings: checked inputs, all-pairs distances and
similarities, positive / negative masks, and the per-anchor reduction.

Shared by the metric-learning families (``jaxobj.losses.metric_learning`` and
``jaxobj.losses.embedding_structure``).

Numerics: every distance or similarity matrix is one matmul at
``Precision.HIGHEST`` (TF32/bf16 matmuls would ruin the cancellation in
distances), never a ``[B, B, D]`` broadcast. Squared Euclidean distances are
:math:`\|a\|^2 + \|b\|^2 - 2a\cdot b` of embeddings centred on the batch mean
(distances do not change, the cancellation error shrinks), clamped at 0;
square roots have gradient 0 at 0, so duplicate embeddings give finite
gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxobj._src import checks
from jaxobj._src.margin_softmax import (
  NORMALIZE_EPS,
  gram,
  normalize,
  safe_sqrt,
  sq_norm,
)
from jaxobj._src.reduce import masked_fill, reduce_loss

BATCH_DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def cosine_matrix(x):
  """All-pairs cosine similarities ``[N, N]`` (rows divided by ``max(||x||, 1e-12)``)."""
  z = normalize(x, NORMALIZE_EPS)
  return gram(z, z)


def distance_matrix(x, valid, distance):
  """All-pairs distances ``[N, N]`` of the rows of ``x`` (masked rows are 0)."""
  if distance == "cosine":
    return 1.0 - cosine_matrix(x)
  # Distances are translation-invariant, so the batch mean (held constant,
  # which keeps the gradient exact) can be removed first.
  count = jnp.maximum(jnp.sum(valid), 1).astype(x.dtype)
  z = x - jax.lax.stop_gradient(jnp.sum(x, axis=0) / count)
  sq = sq_norm(z)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram(z, z), 0.0)
  return d2 if distance == "squared_euclidean" else safe_sqrt(d2)


def log1p_sum_exp(t, keep):
  r"""``log(1 + sum_j exp(t_ij))`` over the kept ``j`` of each row; 0 if none."""
  t = jnp.where(keep, t, -jnp.inf)
  return jax.nn.logsumexp(jnp.concatenate([t, jnp.zeros_like(t[:, :1])], axis=1), axis=1)


def masked_logsumexp(t, keep):
  """Log-sum-exp over the kept entries of each row; ``-inf`` (zero gradient) if none."""
  has = jnp.any(keep, axis=1)
  t = jnp.where(keep, t, -jnp.inf)
  t = jnp.where(has[:, None], t, 0.0)
  return jnp.where(has, jax.nn.logsumexp(t, axis=1), -jnp.inf), has


def masked_embeddings(names, arrays, where):
  """Float embeddings ``[..., D]`` of one shape, with masked rows zeroed.

  Returns the arrays and the per-element loss shape (``shape[:-1]``).
  """
  xs = [checks.as_float(a, n) for n, a in zip(names, arrays)]
  if xs[0].ndim < 1:
    raise ValueError(
      f"{names[0]} must have a trailing feature axis [..., D], got "
      f"{names[0]}.shape={xs[0].shape}; add one with {names[0]}[..., None]."
    )
  for n, x in zip(names[1:], xs[1:]):
    checks.check_same_shape(names[0], xs[0], n, x)
  shape = xs[0].shape[:-1]
  return [masked_fill(where, x, shape, axis_extra=1) for x in xs], shape


def labelled_batch(names, arrays, labels, where):
  """Embeddings flattened to ``[N, D]``, labels ``[N]``, the row mask ``[N]``
  and the per-anchor loss shape."""
  xs, shape = masked_embeddings(names, arrays, where)
  y = checks.as_labels(labels, "labels")
  checks.check_label_shape(names[0], xs[0], "labels", y)
  valid = (
    jnp.ones(shape, bool)
    if where is None
    else jnp.broadcast_to(checks.as_mask(where, shape), shape)
  )
  dim = xs[0].shape[-1]
  return [x.reshape(-1, dim) for x in xs], y.reshape(-1), valid.reshape(-1), shape


def positives_negatives(labels, valid):
  """``[N, N]`` masks: same label (self excluded), and other label; both
  restricted to unmasked rows and columns."""
  same = labels[:, None] == labels[None, :]
  both = valid[:, None] & valid[None, :]
  pos = same & both & ~jnp.eye(labels.shape[0], dtype=bool)
  return pos, ~same & both


def distances_and_masks(embeddings, labels, where, distance):
  """All-pairs distances of a labelled batch, its positive and negative masks
  and the per-anchor loss shape."""
  checks.check_choice("distance", distance, BATCH_DISTANCES)
  (x,), y, valid, shape = labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = positives_negatives(y, valid)
  return distance_matrix(x, valid, distance), pos, neg, shape


def reduce_anchors(values, has_triplet, shape, weights, reduction):
  """Anchors without a positive or a negative are left out like masked ones."""
  values = jnp.where(has_triplet, values, 0.0)
  return reduce_loss(
    values.reshape(shape), where=has_triplet.reshape(shape), weights=weights, reduction=reduction
  )
