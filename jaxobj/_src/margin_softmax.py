"""Cosines against class centres and the margin softmax over them.

Shared by the metric-learning families: ArcFace and CosFace
(``jaxobj.losses.metric_learning``) and the proxy and sub-centre losses
(``jaxobj.losses.proxies``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import inputs
from jaxobj._src.reduce import Reduced, reduce_loss

# torch.nn.functional.normalize's eps (pytorch-metric-learning's CosineSimilarity).
NORMALIZE_EPS = 1e-12
ARCFACE_MODES = ("threshold", "easy", "plain")

HIGHEST = jax.lax.Precision.HIGHEST


def safe_sqrt(s: jax.Array) -> jax.Array:
  """``sqrt(s)`` for ``s >= 0`` with gradient 0 (not inf) where ``s == 0``; NaN stays NaN."""
  pos = s > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), jnp.where(jnp.isnan(s), s, 0.0))


def sq_norm(x: jax.Array) -> jax.Array:
  return jnp.sum(x * x, axis=-1)


def normalize(x: jax.Array, eps: float = NORMALIZE_EPS) -> jax.Array:
  """``x / max(||x||, eps)`` over the last axis (``torch.nn.functional.normalize``)."""
  return x / jnp.maximum(safe_sqrt(sq_norm(x)), eps)[..., None]


def gram(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a @ b.T`` over the last axis, ``[..., D] x [K, D] -> [..., K]``, at full precision."""
  return jnp.einsum("...d,kd->...k", a, b, precision=HIGHEST)


def arcface_target_logit(c: jax.Array, margin: ArrayLike, margin_mode: str) -> jax.Array:
  r"""ArcFace's target cosine :math:`\cos(\theta + m)` from :math:`c = \cos\theta`.

  No arccos: :math:`\cos\theta\cos m - \sin\theta\sin m` with
  :math:`\sin\theta = \sqrt{(1 - c)(1 + c)}` (gradient 0 at :math:`c = \pm 1`).
  ``margin_mode`` (one of :data:`ARCFACE_MODES`) decides the value where
  :math:`\theta + m` passes :math:`\pi`.
  """
  cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)
  phi = c * cos_m - safe_sqrt((1.0 - c) * (1.0 + c)) * sin_m
  if margin_mode == "threshold":
    return jnp.where(c > -cos_m, phi, c - margin * sin_m)
  if margin_mode == "easy":
    return jnp.where(c > 0, phi, c)
  return phi


def margin_softmax_values(
  cos: jax.Array,
  y: jax.Array,
  target_logit: Callable[[jax.Array], jax.Array],
  scale: ArrayLike,
) -> jax.Array:
  """Per-row cross-entropy of ``scale * cos`` with the target cosine replaced by
  ``target_logit(cos_y)``; NaN for labels outside ``[0, K)``.

  ``scale`` broadcasts against ``cos`` (``[..., K]``): a scalar, or per-row
  and per-class factors such as feature and weight norms.
  """
  k = cos.shape[-1]
  is_target = jnp.arange(k) == y[..., None]
  c = jnp.sum(jnp.where(is_target, cos, 0.0), axis=-1)
  logits = scale * jnp.where(is_target, target_logit(c)[..., None], cos)
  values = jax.nn.logsumexp(logits, axis=-1) - jnp.sum(jnp.where(is_target, logits, 0.0), axis=-1)
  return jnp.where(inputs.in_range(y, k), values, jnp.nan)


def margin_softmax(
  cos: jax.Array,
  y: jax.Array,
  target_logit: Callable[[jax.Array], jax.Array],
  scale: ArrayLike,
  where: ArrayLike | None,
  weights: ArrayLike | None,
  reduction: str,
) -> Reduced:
  """:func:`margin_softmax_values`, reduced under the loss contract."""
  values = margin_softmax_values(cos, y, target_logit, scale)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
