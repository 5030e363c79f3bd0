r"""Contrastive and self-supervised losses over paired embeddings.

Two kinds of inputs:

* **Pairwise losses** (:func:`info_nce_loss`, :func:`ntxent`,
  :func:`clip_loss`, :func:`siglip_loss`, :func:`supervised_contrastive_loss`,
  :func:`decoupled_contrastive_loss`, :func:`negative_cosine_similarity`) take
  rows of embeddings of shape ``(..., D)``. All leading axes index rows: they
  are flattened into one batch of :math:`B` rows that are each other's
  negatives, and the per-element loss is the per-row (per-anchor) loss of
  shape ``(...)``. A row masked with ``where`` is removed from the batch: it
  is neither an anchor, nor a positive, nor a negative, so
  ``loss(x, y, where=m) == loss(x[m], y[m])``, whatever values it holds.
* **Batch-statistic losses** (:func:`barlow_twins_loss`, :func:`vicreg_loss`)
  have no per-row decomposition. They take ``(..., n, D)``: the leading axes
  index independent problems of ``n`` samples each, and the per-element loss
  has the leading shape (``()`` for a plain ``(n, D)`` call), so ``where`` and
  ``weights`` select whole problems. ``sample_where`` removes single samples.

Similarities are cosine similarities computed with one matrix product (never
a ``[B, B, D]`` broadcast). Squared norms are floored at the machine epsilon
of the compute dtype (as :func:`optax.ntxent` does), so a zero vector has
cosine similarity 0 with everything, with a finite gradient. torch-based
implementations (lightly, pytorch-metric-learning, open_clip) floor the norm
at 1e-12 or 1e-8 instead, so values agree for embeddings whose norm exceeds
:math:`\sqrt{\epsilon}` (3.5e-4 in float32, 1.5e-8 in float64); smaller
ones are not scale-invariant here: rescale them (or compute in float64). Log-sum-exps over
masked entries are stabilized by their maximum and masked with the double
``where``, so empty rows and masked entries never reach a value or gradient.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import contrastive_blockwise as blockwise
from jaxobj._src import embedding_pairs as pairs
from jaxobj._src.examples import contrastive as examples
from jaxobj._src.logit_scale import cap_log_temperature
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "barlow_twins_loss",
  "chunked_clip_loss",
  "chunked_siglip_loss",
  "clip_loss",
  "decoupled_contrastive_loss",
  "info_nce_loss",
  "negative_cosine_similarity",
  "ntxent",
  "siglip_loss",
  "supervised_contrastive_loss",
  "vicreg_loss",
]

# Published initial values of the learnable scale and bias, stored in the form
# the losses take (log-scale and raw bias): CLIP (Radford et al. 2021) starts
# its logit scale at 1/0.07, SigLIP (Zhai et al. 2023) at t' = log 10, b = -10.
CLIP_LOG_TEMPERATURE = math.log(1.0 / 0.07)
SIGLIP_LOG_TEMPERATURE = math.log(10.0)
SIGLIP_BIAS = -10.0


# --------------------------------------------------------------------------
# Shared preparation of inputs.


def _labeled_rows(embeddings, labels, where):
  """Flattened rows of embeddings and their integer group labels."""
  x = pairs.as_embeddings(embeddings, "embeddings")
  y = jnp.asarray(labels)
  if y.shape != x.shape[:-1]:
    raise ValueError(
      f"labels.shape must equal embeddings.shape[:-1] (one group label per "
      f"embedding), got embeddings.shape={x.shape} and labels.shape={y.shape}. "
      f"Pass labels of shape {x.shape[:-1]}."
    )
  if not (jnp.issubdtype(y.dtype, jnp.integer) or y.dtype == jnp.bool_):
    raise TypeError(
      f"labels must be integer group ids (equal ids mark positives), got dtype "
      f"{y.dtype}. Cast with labels.astype(jnp.int32)."
    )
  batch_shape = x.shape[:-1]
  valid = pairs.row_mask(where, batch_shape)
  x = masked_fill(where, x, batch_shape, axis_extra=1)
  return x.reshape(-1, x.shape[-1]), y.reshape(-1), valid, batch_shape


def _unit(x: jax.Array) -> jax.Array:
  """``x / max(|x|, sqrt(eps))``: the zero vector maps to 0 with a finite gradient."""
  eps = jnp.finfo(x.dtype).eps
  sq = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x / jnp.sqrt(jnp.maximum(sq, eps))


def _with_columns(mask, valid):
  """``mask`` (a ``(B, B)`` boolean or None) restricted to valid columns."""
  if valid is None:
    return mask
  cols = jnp.broadcast_to(valid[None, :], (valid.shape[0],) * 2)
  return cols if mask is None else mask & cols


def _lse_parts(s: jax.Array, mask, axis: int = -1):
  """``log sum exp(s - m)`` over the entries where ``mask`` holds, the
  stabilizing maximum ``m`` (without gradient; the sum's dependence on it
  cancels) and whether the row has any entry, all with ``axis`` kept.

  Masked entries are replaced by ``-inf`` *before* the exponential (the double
  ``where``), so a large masked value cannot overflow into an ``inf * 0``
  gradient, and an empty row takes ``log 1`` instead of ``log 0``. A NaN
  entry makes ``m`` NaN and the row non-empty, so the NaN reaches the value.
  """
  masked = s if mask is None else jnp.where(mask, s, -jnp.inf)
  # The initial value lets an empty batch (a zero-size axis) reduce too.
  m = jnp.max(masked, axis=axis, keepdims=True, initial=-jnp.inf)
  nonempty = m != -jnp.inf
  m = jax.lax.stop_gradient(jnp.where(nonempty, m, 0.0))
  total = jnp.sum(jnp.exp(masked - m), axis=axis, keepdims=True)
  return jnp.log(jnp.where(nonempty, total, 1.0)), m, nonempty


def _masked_lse(s: jax.Array, mask=None, axis: int = -1, fill=-jnp.inf, offset=None) -> jax.Array:
  r"""``log sum_j exp(s_j) - offset`` over the entries where ``mask`` holds.

  Rows with no entry give ``fill``. The offset (a logit of the row, e.g. the
  positive's) is subtracted from the maximum before the log-sum is added, so
  a loss much smaller than the logits (a confident positive at logit 14
  leaving a loss of 0.005) keeps its relative precision.
  """
  log_total, m, nonempty = _lse_parts(s, mask, axis)
  if offset is not None:
    m = m - jnp.expand_dims(offset, axis)
  return jnp.squeeze(jnp.where(nonempty, log_total + m, fill), axis)


def _eye(n: int) -> jax.Array:
  i = jnp.arange(n)
  return i[:, None] == i[None, :]


def _count(valid, n: int):
  """Number of rows that take part: all of them, or the unmasked ones."""
  return n if valid is None else jnp.sum(valid)


def _finish(values, batch_shape, where, weights, reduction):
  return reduce_loss(values.reshape(batch_shape), where=where, weights=weights, reduction=reduction)


def _check_temperature(temperature) -> None:
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)


# --------------------------------------------------------------------------
# One positive per row.


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def info_nce_loss(
  queries: ArrayLike,
  keys: ArrayLike,
  negatives: ArrayLike | None = None,
  *,
  temperature: float | ArrayLike = 0.1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""InfoNCE: cross-entropy of each query's positive key against negatives.

  .. math::
     \ell_i = -\log \frac{e^{s(q_i, k_i)/\tau}}
       {e^{s(q_i, k_i)/\tau} + \sum_{n \in N_i} e^{s(q_i, n)/\tau}}

  with :math:`s` the cosine similarity. Without ``negatives`` the other keys
  of the batch are the negatives (:math:`N_i = \{k_j\}_{j \ne i}`, the
  in-batch form: a softmax over the row of the :math:`B \times B` similarity
  matrix, target on its diagonal). With ``negatives`` only those are used:
  a shared bank of shape ``(M, D)`` for every query, or ``(..., M, D)``
  with the batch shape of ``queries`` for per-query negatives. This is the
  convention of the ``info-nce-pytorch`` package (its ``'unpaired'`` and
  ``'paired'`` modes, told apart here by rank), with the same default
  temperature; only the query → key direction is scored (see
  :func:`clip_loss` for the symmetric form).

  Args:
    queries: float ``(..., D)``; leading axes index rows (flattened).
    keys: positive key of each query, same shape.
    negatives: optional ``(M, D)`` shared or ``(..., M, D)`` per-query
      negatives.
    temperature: :math:`\tau > 0` (traceable).
    where: boolean mask over rows, shape ``queries.shape[:-1]``. A masked row
      is removed from the batch, from the in-batch negatives too.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; the per-query losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension),
      ``negatives`` of neither form, ``temperature <= 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.eye(2)  # orthogonal rows: positive 1, negative 0
    >>> print(round(float(jaxobj.info_nce_loss(e, e, temperature=1.0)), 4))
    0.3133

  References:
    van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding", 2018.
  """
  _check_temperature(temperature)
  q, k, valid, batch_shape = pairs.paired_rows(queries, keys, ("queries", "keys"), where)
  q, k = _unit(q), _unit(k)
  if negatives is None:
    s = (q @ k.T) / temperature
    values = _masked_lse(s, _with_columns(None, valid), offset=jnp.diagonal(s))
  else:
    n, paired = _negatives(negatives, batch_shape, q.shape[-1], where)
    sn = (jnp.einsum("bd,bmd->bm", q, n) if paired else q @ n.T) / temperature
    pos = jnp.sum(q * k, axis=-1) / temperature
    values = _masked_lse(jnp.concatenate([pos[:, None], sn], -1), offset=pos)
  return _finish(values, batch_shape, where, weights, reduction)


def _negatives(negatives, batch_shape, dim, where):
  """Unit negatives: a shared ``(M, D)`` bank or per-row ``(B, M, D)``."""
  n = checks.as_float(negatives, "negatives")
  shared = n.ndim == 2 and n.shape[-1] == dim
  paired = n.ndim == len(batch_shape) + 2 and n.shape[:-2] == batch_shape and n.shape[-1] == dim
  if not (shared or paired):
    raise ValueError(
      f"negatives must have shape (M, {dim}) (one bank shared by every query) "
      f"or {batch_shape + ('M', dim)} (M negatives per query), got "
      f"negatives.shape={n.shape} for queries.shape={batch_shape + (dim,)}."
    )
  if paired:
    n = masked_fill(where, n, batch_shape, axis_extra=2)
    n = n.reshape((-1,) + n.shape[-2:])
  return _unit(n), paired


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def clip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = CLIP_LOG_TEMPERATURE,
  max_logit_scale: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Symmetric CLIP loss: image→text and text→image cross-entropy, averaged.

  .. math::
     S_{ij} = e^{t'}\, \cos(x_i, y_j), \qquad
     \ell_i = \tfrac12\Big[\big(\operatorname{lse}_j S_{ij} - S_{ii}\big)
       + \big(\operatorname{lse}_j S_{ji} - S_{ii}\big)\Big]

  The mean over rows is open_clip's ``ClipLoss``: the mean of the two
  cross-entropies with targets on the diagonal. Following the CLIP paper's
  pseudocode, the learnable scale :math:`t = e^{t'}` *multiplies* the logits
  (it is the inverse of the temperature of :func:`info_nce_loss`) and is
  passed in log space: ``log_temperature`` is open_clip's ``logit_scale``
  parameter before its ``exp``, and defaults to the published initial value
  :math:`\log(1/0.07)` (:data:`CLIP_LOG_TEMPERATURE`). CLIP caps the scale
  at 100 (open_clip clamps ``logit_scale`` to :math:`[0, \log 100]` after each
  step): pass ``max_logit_scale=100.0`` to use :math:`\min(t', \log 100)`
  instead of :math:`t'` (no cap by default). Embeddings are
  normalized inside (open_clip expects normalized features, so the values
  agree on them).

  Args:
    image_embeddings: float ``(..., D)``; leading axes index pairs (flattened).
    text_embeddings: the paired text embeddings, same shape.
    log_temperature: :math:`t'` (traceable; learn it as an objective parameter).
    max_logit_scale: optional cap :math:`s_{\max} > 0` on the scale
      :math:`e^{t'}` (traceable; ``None``: no cap; CLIP uses 100). The loss
      uses :math:`\min(t', \log s_{\max})`, a clamp: the gradient with
      respect to ``log_temperature`` is the uncapped one up to and at the cap
      and exactly 0 above it (as ``torch.clamp``), so a scale learned past
      the cap stops receiving gradient from this loss.
    where: boolean mask over pairs, shape ``image_embeddings.shape[:-1]``; a
      masked pair is removed from both softmaxes.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension), or
      ``max_logit_scale <= 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.eye(2)
    >>> print(round(float(jaxobj.clip_loss(e, e, log_temperature=0.0)), 4))
    0.3133

  References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021.
  """
  x, y, valid, batch_shape = pairs.paired_rows(
    image_embeddings, text_embeddings, ("image_embeddings", "text_embeddings"), where
  )
  s = (_unit(x) @ _unit(y).T) * jnp.exp(cap_log_temperature(log_temperature, max_logit_scale))
  cols, d = _with_columns(None, valid), jnp.diagonal(s)
  image_to_text = _masked_lse(s, cols, axis=1, offset=d)
  text_to_image = _masked_lse(s, None if cols is None else cols.T, axis=0, offset=d)
  values = 0.5 * (image_to_text + text_to_image)
  return _finish(values, batch_shape, where, weights, reduction)


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def siglip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = SIGLIP_LOG_TEMPERATURE,
  bias: float | ArrayLike = SIGLIP_BIAS,
  max_logit_scale: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SigLIP pairwise sigmoid loss: every image-text pair is a binary problem.

  .. math::
     z_{ij} = e^{t'} \cos(x_i, y_j) + b, \qquad
     \ell_i = -\sum_j \log \sigma\big(\pm z_{ij}\big)
     \quad (+ \text{ for } j = i,\ - \text{ otherwise})

  As in Zhai et al. (2023), the loss of an image sums over all texts of the
  batch, and the mean over images divides by the batch size. The learnable
  scale :math:`t = e^{t'}` multiplies the logits and starts at
  :math:`t' = \log 10`, the bias at :math:`b = -10` (the published initial
  values, :data:`SIGLIP_LOG_TEMPERATURE` and :data:`SIGLIP_BIAS`); both are
  traceable, so an objective can learn them. ``max_logit_scale`` caps the
  scale as in :func:`clip_loss`. Embeddings are normalized inside.

  Args:
    image_embeddings: float ``(..., D)``; leading axes index pairs (flattened).
    text_embeddings: the paired text embeddings, same shape.
    log_temperature: :math:`t'` (traceable).
    bias: :math:`b` (traceable).
    max_logit_scale: optional cap :math:`s_{\max} > 0` on the scale
      :math:`e^{t'}` (traceable; ``None``: no cap; CLIP uses 100). The loss
      uses :math:`\min(t', \log s_{\max})`, a clamp: the gradient with
      respect to ``log_temperature`` is the uncapped one up to and at the cap
      and exactly 0 above it (as ``torch.clamp``), so a scale learned past
      the cap stops receiving gradient from this loss.
    where: boolean mask over pairs; a masked pair is removed from the batch
      (its text is no negative for the other images).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-image losses (summed over texts) for
    ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension), or
      ``max_logit_scale <= 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # z = +1 on the diagonal, -1 off it
    >>> print(round(float(jaxobj.siglip_loss(e, e, log_temperature=0.0, bias=0.0)), 4))
    0.6265

  References:
    Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.
  """
  x, y, valid, batch_shape = pairs.paired_rows(
    image_embeddings, text_embeddings, ("image_embeddings", "text_embeddings"), where
  )
  scale = jnp.exp(cap_log_temperature(log_temperature, max_logit_scale))
  z = (_unit(x) @ _unit(y).T) * scale + bias
  pair = _eye(z.shape[0])
  nll = jax.nn.softplus(jnp.where(pair, -z, z))
  cols = _with_columns(None, valid)
  if cols is not None:
    nll = jnp.where(cols, nll, 0.0)
  return _finish(jnp.sum(nll, axis=-1), batch_shape, where, weights, reduction)


# --------------------------------------------------------------------------
# Scale paths: CLIP and SigLIP in blocks on one device (the sharded forms are
# in jaxobj.losses.contrastive_sharded).
#
# Same losses, same hyperparameters, masks, weights and reductions as
# clip_loss and siglip_loss; only the memory differs. The kernels live in
# jaxobj._src.contrastive_sweep.


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def chunked_clip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = CLIP_LOG_TEMPERATURE,
  max_logit_scale: float | ArrayLike | None = None,
  block_size: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""CLIP loss computed in blocks: :func:`clip_loss` without the :math:`B \times B` matrix.

  .. math::
     S_{ij} = e^{t'} \cos(x_i, y_j), \qquad
     \ell_i = \tfrac12\Big[\big(\operatorname{lse}_j S_{ij} - S_{ii}\big)
       + \big(\operatorname{lse}_j S_{ji} - S_{ii}\big)\Big]

  The same loss as :func:`clip_loss` (same hyperparameter, masks, weights and
  reductions; values agree to float rounding). The similarities are formed
  ``block_size`` text embeddings at a time: the image → text log-sum-exp of
  each row is accumulated online over the blocks (a running maximum and a
  rescaled sum), the text → image log-sum-exp of each column is complete
  within its block. The gradient is written by hand (``jax.custom_vjp``): a
  second sweep recomputes each block and applies both softmaxes, so no
  :math:`B \times B` array exists in the forward or the backward pass.

  Memory (XLA's temporaries of the jitted ``value_and_grad``) is a few
  :math:`B \times` ``block_size`` blocks plus :math:`O(BD)` gradient
  accumulators, instead of several :math:`B \times B` matrices: at
  :math:`B = 8192`, :math:`D = 512` in float32 under 64 MiB instead of
  0.8 GiB. The cost is one extra matrix product (4 instead of 3 for value and
  gradient). ``reduction="none"`` recomputes the statistics sweep as well
  (the per-row cotangent is known only then).

  Args:
    image_embeddings, text_embeddings, log_temperature, max_logit_scale,
      where, weights, reduction: as for :func:`clip_loss`.
    block_size: text embeddings per block (a Python int); ``None`` picks about
      :math:`2^{21}` similarities per block. Need not divide the batch.

  Returns:
    As :func:`clip_loss`: the reduced loss; per-pair losses for
    ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension),
      ``block_size < 1`` or ``max_logit_scale <= 0``.
    TypeError: integer embeddings, or a ``block_size`` that is not an int.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.eye(2)  # one text per block; the value of clip_loss's example
    >>> print(round(float(jaxobj.chunked_clip_loss(e, e, log_temperature=0.0,
    ...                                            block_size=1)), 4))
    0.3133

  References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021.
  """
  return blockwise.blockwise_loss(
    "clip",
    image_embeddings,
    text_embeddings,
    cap_log_temperature(log_temperature, max_logit_scale),
    0.0,
    block_size=block_size,
    axis_name=None,
    method="ring",
    where=where,
    weights=weights,
    reduction=reduction,
  )


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def chunked_siglip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = SIGLIP_LOG_TEMPERATURE,
  bias: float | ArrayLike = SIGLIP_BIAS,
  max_logit_scale: float | ArrayLike | None = None,
  block_size: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SigLIP loss computed in blocks: :func:`siglip_loss` without the :math:`B \times B` matrix.

  .. math::
     z_{ij} = e^{t'} \cos(x_i, y_j) + b, \qquad
     \ell_i = \sum_j \operatorname{softplus}(z_{ij}) - z_{ii}
       = -\log\sigma(z_{ii}) - \sum_{j \ne i} \log\sigma(-z_{ij})

  The same loss as :func:`siglip_loss` (same hyperparameters, masks, weights
  and reductions; values agree to float rounding). The pairwise losses are
  independent, so each row's sum is accumulated over blocks of
  ``block_size`` text embeddings; each term is computed as
  :math:`\operatorname{softplus}(\mp z)` directly (the decomposition above is
  never subtracted, so a confident positive keeps its relative precision).
  For ``reduction="mean"`` or ``"sum"`` the gradient is computed in the same
  sweep as the value (``jax.custom_vjp``; the backward pass only scales it),
  so value and gradient cost the three matrix products of the unchunked loss.
  ``reduction="none"`` sweeps again in the backward pass, since the per-row
  cotangent is known only then.

  Memory (XLA's temporaries of the jitted ``value_and_grad``) is a few
  :math:`B \times` ``block_size`` blocks plus :math:`O(BD)` gradient
  accumulators, instead of several :math:`B \times B` matrices: at
  :math:`B = 8192`, :math:`D = 512` in float32 under 64 MiB instead of about
  0.5 GiB.

  Args:
    image_embeddings, text_embeddings, log_temperature, bias,
      max_logit_scale, where, weights, reduction: as for :func:`siglip_loss`.
    block_size: text embeddings per block (a Python int); ``None`` picks about
      :math:`2^{21}` logits per block. Need not divide the batch.

  Returns:
    As :func:`siglip_loss`: the reduced loss; per-image losses (summed over
    texts) for ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension),
      ``block_size < 1`` or ``max_logit_scale <= 0``.
    TypeError: integer embeddings, or a ``block_size`` that is not an int.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # z = +1 on the diagonal, -1 off it
    >>> print(jaxobj.chunked_siglip_loss(e, e, log_temperature=0.0, bias=0.0,
    ...                                  block_size=1, reduction="none"))
    [0.6265 0.6265]

  References:
    Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.
  """
  return blockwise.blockwise_loss(
    "siglip",
    image_embeddings,
    text_embeddings,
    cap_log_temperature(log_temperature, max_logit_scale),
    bias,
    block_size=block_size,
    axis_name=None,
    method="ring",
    where=where,
    weights=weights,
    reduction=reduction,
  )


# --------------------------------------------------------------------------
# Positives given by labels.


@register("contrastive", inputs=examples.LABELED_EMBEDDINGS, couples_rows=True)
def ntxent(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: float | ArrayLike = 0.07,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""NT-Xent (SimCLR): normalized temperature-scaled cross-entropy over positive pairs.

  .. math::
     t_{ij} = -\log \frac{e^{s_{ij}/\tau}}{e^{s_{ij}/\tau}
       + \sum_{k \in N(i)} e^{s_{ik}/\tau}}, \qquad
     \ell_i = \frac{1}{\bar P}\sum_{j \in P(i)} t_{ij}

  with :math:`s` the cosine similarity, :math:`P(i)` the other rows with
  the label of row :math:`i` and :math:`N(i)` the rows with another label.
  The mean over anchors divided by the mean number of positives per anchor,
  :math:`\bar P`, makes the default ``"mean"`` the mean over positive pairs:
  exactly :func:`optax.ntxent` (and pytorch-metric-learning's
  ``NTXentLoss``) for the same inputs. In the SimCLR setting (two views per
  example, :math:`\bar P = 1`) :math:`\ell_i` is the loss of anchor
  :math:`i`. An anchor with no positive has loss 0 and leaves the mean over
  positive pairs unchanged (as in optax); a batch without any positive pair
  gives 0, where optax gives NaN (0/0). The similarity matrix is one matrix
  product: memory and time grow with :math:`B^2`, not :math:`B^2 D`.

  Args:
    embeddings: float ``(..., D)``; leading axes index rows (flattened).
    labels: integer group ids of shape ``embeddings.shape[:-1]``; rows with
      equal ids are positives (for two views, ``[0..B-1, 0..B-1]``).
    temperature: :math:`\tau > 0` (traceable).
    where: boolean mask over rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses :math:`\ell_i` for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, ``temperature <= 0``.
    TypeError: integer embeddings or non-integer labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> print(round(float(jaxobj.ntxent(x, jnp.array([0, 0, 1, 1]), temperature=1.0)), 4))
    0.5514

  References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020.
  """
  _check_temperature(temperature)
  x, y, valid, batch_shape = _labeled_rows(embeddings, labels, where)
  u = _unit(x)
  s = (u @ u.T) / temperature
  same = y[:, None] == y[None, :]
  pos = _with_columns(same & ~_eye(s.shape[0]), valid)
  neg = _with_columns(~same, valid)
  # t_ij = log(e^{s_ij} + e^{n_i}) - s_ij; no negatives (n_i = -inf) gives 0.
  n = _masked_lse(s, neg)
  row = jnp.sum(jnp.where(pos, jax.nn.softplus(n[:, None] - s), 0.0), axis=-1)
  counts = jnp.sum(pos, axis=-1)
  if valid is not None:
    counts = jnp.where(valid, counts, 0)
  # Counts are integers: divide in the compute dtype (int / int is float64 under x64).
  mean_positives = jnp.sum(counts).astype(s.dtype) / jnp.maximum(
    _count(valid, s.shape[0]), 1
  ).astype(s.dtype)
  values = row / jnp.where(mean_positives > 0, mean_positives, 1.0)
  return _finish(values, batch_shape, where, weights, reduction)


@register("contrastive", inputs=examples.LABELED_EMBEDDINGS, couples_rows=True)
def supervised_contrastive_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: float | ArrayLike = 0.07,
  base_temperature: float | ArrayLike = 0.07,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Supervised contrastive loss (SupCon, the "out" variant).

  .. math::
     \ell_i = -\frac{\tau}{\tau_b}\,\frac{1}{|P(i)|}\sum_{p \in P(i)}
       \log \frac{e^{s_{ip}/\tau}}{\sum_{a \ne i} e^{s_{ia}/\tau}}

  with :math:`s` the cosine similarity, :math:`P(i)` the other rows with the
  label of row :math:`i`, and the denominator over every other row
  (positives included, unlike :func:`ntxent`). This is the reference
  implementation of Khosla et al. with ``contrast_mode='all'``: its
  ``[bsz, n_views, D]`` features are rows here (pass them with labels
  broadcast to ``[bsz, n_views]``; the leading axes are flattened), its mean
  over all anchors is the ``"mean"`` reduction, and an anchor with no positive
  has loss 0 and still counts in the mean, as there. Embeddings are
  normalized inside (the reference expects normalized features).
  pytorch-metric-learning's ``SupConLoss`` has no :math:`\tau/\tau_b` factor
  and averages over the anchors with a non-zero loss only: its values are
  ``loss(x, y, temperature=t, base_temperature=t, weights=has_positive)``
  with ``has_positive`` true for anchors whose label occurs on another
  (unmasked) row.

  Args:
    embeddings: float ``(..., D)``; leading axes index rows (flattened).
    labels: integer class ids, shape ``embeddings.shape[:-1]``.
    temperature: :math:`\tau > 0` (traceable).
    base_temperature: :math:`\tau_b > 0` (traceable); the loss is scaled by
      :math:`\tau / \tau_b`.
    where: boolean mask over rows; a masked row is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses for ``reduction="none"``.

  Raises:
    ValueError: ``labels.shape != embeddings.shape[:-1]``, a temperature
      ``<= 0``.
    TypeError: integer embeddings or non-integer labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(jaxobj.supervised_contrastive_loss(
    ...     x, jnp.array([0, 0, 1]), temperature=1.0, base_temperature=1.0,
    ...     reduction="none"))
    [0.3133 0.3133 0.    ]

  References:
    Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
  """
  _check_temperature(temperature)
  checks.check_range("base_temperature", base_temperature, low=0.0, low_inclusive=False)
  x, y, valid, batch_shape = _labeled_rows(embeddings, labels, where)
  u = _unit(x)
  s = (u @ u.T) / temperature
  others = _with_columns(~_eye(s.shape[0]), valid)
  pos = others & (y[:, None] == y[None, :])
  # sum_p (lse_i - s_ip) = |P(i)| log sum_a e^{s_ia - m_i} + sum_p (m_i - s_ip)
  log_total, m, _ = _lse_parts(s, others)
  counts = jnp.sum(pos, axis=-1)
  neg_log_prob_pos = counts * log_total[:, 0] + jnp.sum(jnp.where(pos, m - s, 0.0), axis=-1)
  values = (temperature / base_temperature) * neg_log_prob_pos / jnp.maximum(counts, 1)
  return _finish(values, batch_shape, where, weights, reduction)


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
def decoupled_contrastive_loss(
  view1: ArrayLike,
  view2: ArrayLike,
  *,
  temperature: float | ArrayLike = 0.1,
  sigma: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Decoupled contrastive loss (DCL): NT-Xent without the positive in the denominator.

  .. math::
     \ell^{(1)}_i = -w_i\, s(z^1_i, z^2_i)/\tau + \log \sum_{k \ne i}
       \Big(e^{s(z^1_i, z^1_k)/\tau} + e^{s(z^1_i, z^2_k)/\tau}\Big),
     \qquad \ell_i = \tfrac12\big(\ell^{(1)}_i + \ell^{(2)}_i\big)

  with :math:`s` the cosine similarity and :math:`\ell^{(2)}` the same with
  the views swapped. Both views of the other items are negatives; the two
  views of item :math:`i` never appear in the log-sum-exp (the decoupling).
  This is Eq. 6 of the paper, one log-sum-exp over the negatives of both
  views, averaged over both views: the values of lightly's ``DCLLoss`` (since
  lightly 1.5.x; older versions added two separate log-sum-exps, one per
  view of the negatives). With ``sigma`` the positive term is weighted as in DCLW by the
  negative von Mises-Fisher weights
  :math:`w_i = 2 - B\,\operatorname{softmax}_i\big(s(z^1_i, z^2_i)/\sigma\big)`
  (without gradient, as in lightly's ``DCLWLoss``); otherwise :math:`w_i = 1`.
  All similarities come from one :math:`2B \times 2B` matrix product. An item
  with no negative (a batch of one) has loss 0.

  Args:
    view1: float ``(..., D)``; leading axes index items (flattened).
    view2: the second view of each item, same shape.
    temperature: :math:`\tau > 0` (traceable).
    sigma: ``None`` for DCL, or :math:`\sigma > 0` for DCLW weights.
    where: boolean mask over items; a masked item is removed from the batch.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-item losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension),
      ``temperature <= 0`` or ``sigma <= 0``.
    TypeError: integer embeddings.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> e = jnp.eye(2)  # positive similarity 1, all negatives 0
    >>> print(round(float(jaxobj.decoupled_contrastive_loss(e, e, temperature=1.0)), 4))
    -0.3069

  References:
    Yeh et al., "Decoupled Contrastive Learning", ECCV 2022.
  """
  _check_temperature(temperature)
  checks.check_range("sigma", sigma, low=0.0, low_inclusive=False)
  a, b, valid, batch_shape = pairs.paired_rows(view1, view2, ("view1", "view2"), where)
  n = a.shape[0]
  z = jnp.concatenate([_unit(a), _unit(b)])
  s = (z @ z.T) / temperature
  i = jnp.arange(2 * n)
  partner = (i + n) % (2 * n)
  pos = s[i, partner]
  both = None if valid is None else jnp.concatenate([valid, valid])
  negs = _with_columns((i[None, :] != i[:, None]) & (i[None, :] != partner[:, None]), both)
  has_negative = jnp.any(negs, axis=-1)
  if sigma is not None:
    pos = pos * jnp.tile(_mises_fisher_weights(pos[:n] * temperature, sigma, valid), 2)
  per_view = jnp.where(has_negative, _masked_lse(s, negs, fill=0.0) - pos, 0.0)
  return _finish(0.5 * (per_view[:n] + per_view[n:]), batch_shape, where, weights, reduction)


def _mises_fisher_weights(cosines, sigma, valid):
  """DCLW's ``2 - B softmax(cos / sigma)`` over the valid items, without gradient."""
  c = jax.lax.stop_gradient(cosines) / sigma
  log_p = c - _masked_lse(c, valid, fill=0.0)
  return jax.lax.stop_gradient(2.0 - _count(valid, c.shape[0]) * jnp.exp(log_p))


@register("contrastive", inputs=examples.VIEWS)
def negative_cosine_similarity(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Negative cosine similarity with stop-gradient on the targets (SimSiam, BYOL).

  .. math::
     \ell(p, z) = -\frac{p}{\lVert p\rVert} \cdot
       \operatorname{sg}\Big(\frac{z}{\lVert z\rVert}\Big)

  The predictor output ``predictions`` is pulled toward the target branch
  ``targets``, through which no gradient flows (SimSiam's stop-gradient;
  in BYOL the targets come from the momentum encoder). The symmetric SimSiam
  loss is ``0.5 * (loss(p1, z2) + loss(p2, z1))``; BYOL's normalized squared
  error :math:`2 - 2\cos` is ``2 + 2 * loss(p, z)``. The value is lightly's
  ``NegativeCosineSimilarity``. A zero vector has cosine 0 (loss 0).

  Args:
    predictions: float ``(..., D)`` (the feature axis ``D`` at ``axis``).
    targets: same shape; treated as constants.
    axis: the feature axis (static int), ``-1`` by default; e.g. ``axis=1``
      for ``(B, D, H, W)`` feature maps compares the ``D``-vectors at each
      position.
    where, weights, reduction: the loss contract over the rows: the other
      axes, in order (``(B, H, W)`` above).

  Returns:
    The reduced loss; per-row losses in [-1, 1] for ``reduction="none"``.

  Raises:
    ValueError: shapes differ (including the embedding dimension), ``axis``
      out of range.
    TypeError: integer predictions, ``axis`` not an int.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> p = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> z = jnp.array([[3.0, 0.0], [0.0, -1.0]])
    >>> print(jaxobj.negative_cosine_similarity(p, z, reduction="none"))
    [-1.  1.]

  References:
    Chen and He, "Exploring Simple Siamese Representation Learning", CVPR 2021;
    Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020.
  """
  predictions, targets = checks.feature_axis_last(
    "negative_cosine_similarity", axis, ("predictions", "targets"), predictions, targets
  )
  p, z = pairs.pair(predictions, targets, ("predictions", "targets"), min_rank=1, layout="(D)")
  shape = p.shape[:-1]
  p = masked_fill(where, p, shape, axis_extra=1)
  z = jax.lax.stop_gradient(masked_fill(where, z, shape, axis_extra=1))
  values = -jnp.sum(_unit(p) * _unit(z), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Batch statistics: leading axes are independent problems of n samples.


def _sample_sets(a, b, names, where, sample_where):
  """Two ``(..., n, D)`` views, masked problems and samples zeroed, and the
  number of samples of each problem (a Python int without ``sample_where``)."""
  x, y = pairs.pair(a, b, names, layout="(n, D)")
  batch_shape, n = x.shape[:-2], x.shape[-2]
  if n < 2:
    raise ValueError(
      f"{names[0]} must hold at least 2 samples (axis -2) to estimate batch "
      f"statistics, got {names[0]}.shape={x.shape}."
    )
  x = masked_fill(where, x, batch_shape, axis_extra=2)
  y = masked_fill(where, y, batch_shape, axis_extra=2)
  if sample_where is None:
    return x, y, None, n, batch_shape
  mask = checks.as_mask(sample_where, x.shape[:-1], name="sample_where", to="the sample shape")
  keep = jnp.broadcast_to(mask, x.shape[:-1])[..., None]
  x, y = jnp.where(keep, x, 0.0), jnp.where(keep, y, 0.0)
  return x, y, keep, jnp.sum(keep, axis=(-2, -1)), batch_shape


def _centred(x, keep, count):
  """Samples minus their mean over axis -2 (masked samples stay 0)."""
  mean = jnp.sum(x, axis=-2, keepdims=True) / _per_problem(jnp.maximum(count, 1))
  c = x - mean
  return c if keep is None else jnp.where(keep, c, 0.0)


def _per_problem(count):
  """A per-problem count broadcast against ``(..., n, D)`` arrays."""
  return count if jnp.ndim(count) == 0 else count[..., None, None]


def _unbiased_var(c, count):
  return jnp.sum(jnp.square(c), axis=-2, keepdims=True) / _per_problem(jnp.maximum(count - 1, 1))


def _off_diagonal_squares(m):
  d = m.shape[-1]
  return jnp.sum(jnp.where(_eye(d), 0.0, jnp.square(m)), axis=(-2, -1))


def _standardize(x, keep, count, eps):
  """Per-dimension batch normalization without affine parameters: centred
  samples over ``sqrt(biased variance + eps)`` (``torch.nn.BatchNorm1d`` in
  training mode). A dimension constant to within float resolution
  standardizes to 0 (also when ``eps == 0``, where it would be 0/0)."""
  c = _centred(x, keep, count)
  var = jnp.sum(jnp.square(c), axis=-2, keepdims=True) / _per_problem(jnp.maximum(count, 1))
  second_moment = jnp.sum(jnp.square(x), axis=-2, keepdims=True) / _per_problem(
    jnp.maximum(count, 1)
  )
  tiny = jnp.finfo(x.dtype).eps
  constant = var <= 16.0 * tiny * tiny * second_moment
  return jnp.where(constant, 0.0, c * jax.lax.rsqrt(jnp.where(constant, 1.0, var + eps)))


@register("contrastive", inputs=examples.SAMPLE_SETS, couples_rows=True)
def barlow_twins_loss(
  view1: ArrayLike,
  view2: ArrayLike,
  *,
  lambda_param: float | ArrayLike = 5e-3,
  eps: float | ArrayLike = 1e-5,
  sample_where: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Barlow Twins: push the cross-correlation of two views to the identity.

  .. math::
     C_{de} = \frac1n \sum_{k=1}^{n} \hat z^1_{kd}\, \hat z^2_{ke}, \qquad
     \ell = \sum_d (1 - C_{dd})^2 + \lambda \sum_{d \ne e} C_{de}^2

  where :math:`\hat z_{kd} = (z_{kd} - \bar z_d) / \sqrt{\sigma_d^2 + \epsilon}`
  is standardized per dimension over the :math:`n` samples with the biased
  (divide-by-:math:`n`) variance :math:`\sigma_d^2` and
  :math:`\epsilon = 10^{-5}`: the affine-free batch norm of the authors'
  training code and of lightly's ``BarlowTwinsLoss``, whose values this
  reproduces. The paper's Algorithm 1 divides by the unbiased standard
  deviation without :math:`\epsilon`; that differs by :math:`O(1/n)` and is
  not offered. A dimension that is constant over the samples (to within
  float resolution, e.g. a collapsed unit) standardizes to 0 (exactly, also
  for ``eps=0``): it adds 1 to the invariance term and 0 to the redundancy
  term.

  There is no per-sample loss: the leading axes of the inputs index
  independent problems, and ``where`` and ``weights`` select whole problems.

  Args:
    view1: float ``(..., n, D)``: ``n >= 2`` samples of dimension ``D`` per problem.
    view2: the second view, same shape.
    lambda_param: :math:`\lambda \ge 0`, the redundancy-reduction weight
      (traceable; the paper's 5e-3).
    eps: :math:`\epsilon \ge 0` added to the variance (traceable; batch
      norm's 1e-5).
    sample_where: optional boolean mask ``(..., n)`` of the samples that take
      part; statistics use the unmasked ones only (fewer than two give the
      constant-dimension value above).
    where: boolean mask over the problems, shape ``view1.shape[:-2]``.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one loss per problem for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, fewer than 2 samples, ``lambda_param < 0``,
      ``eps < 0``.
    TypeError: integer embeddings or a non-boolean ``sample_where``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> z = jnp.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    >>> print(float(jaxobj.barlow_twins_loss(z, z, eps=0.0)))  # C = I
    0.0
    >>> print(round(float(jaxobj.barlow_twins_loss(z, z, eps=1.0)), 4))  # C = I / 2
    0.5

  References:
    Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction", ICML 2021.
  """
  checks.check_range("lambda_param", lambda_param, low=0.0)
  checks.check_range("eps", eps, low=0.0)
  x, y, keep, count, batch_shape = _sample_sets(
    view1, view2, ("view1", "view2"), where, sample_where
  )
  zx, zy = _standardize(x, keep, count, eps), _standardize(y, keep, count, eps)
  c = jnp.einsum("...nd,...ne->...de", zx, zy) / _per_problem(jnp.maximum(count, 1))
  on = jnp.sum(jnp.square(1.0 - jnp.diagonal(c, axis1=-2, axis2=-1)), axis=-1)
  values = on + lambda_param * _off_diagonal_squares(c)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("contrastive", inputs=examples.SAMPLE_SETS, couples_rows=True)
def vicreg_loss(
  view1: ArrayLike,
  view2: ArrayLike,
  *,
  sim_coeff: float | ArrayLike = 25.0,
  std_coeff: float | ArrayLike = 25.0,
  cov_coeff: float | ArrayLike = 1.0,
  eps: float | ArrayLike = 1e-4,
  sample_where: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""VICReg: variance-invariance-covariance regularization of two views.

  .. math::
     \ell = \lambda\,\frac{1}{nD}\lVert Z^1 - Z^2\rVert^2
       + \mu \sum_{v=1,2} \frac{1}{2D}\sum_d
         \max\big(0,\ 1 - \sqrt{\operatorname{Var}(Z^v_{:d}) + \epsilon}\big)
       + \nu \sum_{v=1,2} \frac1D \sum_{d \ne e} \operatorname{Cov}(Z^v)_{de}^2

  with the unbiased variance and covariance over the :math:`n` samples and
  :math:`(\lambda, \mu, \nu) = (25, 25, 1)`, :math:`\epsilon = 10^{-4}`: the
  authors' implementation and lightly's ``VICRegLoss``. A batch whose
  samples are all equal is legal: its variance term is
  :math:`\mu (1 - \sqrt\epsilon)`.

  There is no per-sample loss: the leading axes of the inputs index
  independent problems, and ``where`` and ``weights`` select whole problems.

  Args:
    view1: float ``(..., n, D)``: ``n >= 2`` samples of dimension ``D`` per problem.
    view2: the second view, same shape.
    sim_coeff: invariance weight :math:`\lambda` (traceable).
    std_coeff: variance weight :math:`\mu` (traceable).
    cov_coeff: covariance weight :math:`\nu` (traceable).
    eps: :math:`\epsilon > 0` inside the square root (traceable).
    sample_where: optional boolean mask ``(..., n)`` of the samples that take
      part; statistics use the unmasked ones (the unbiased estimates divide by
      ``max(count - 1, 1)``).
    where: boolean mask over the problems, shape ``view1.shape[:-2]``.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one loss per problem for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, fewer than 2 samples, ``eps <= 0``.
    TypeError: integer embeddings or a non-boolean ``sample_where``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> z = jnp.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    >>> print(float(jaxobj.vicreg_loss(z, z)))  # std > 1, cov = 0: nothing to pay
    0.0

  References:
    Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", ICLR 2022.
  """
  checks.check_range("eps", eps, low=0.0, low_inclusive=False)
  x, y, keep, count, batch_shape = _sample_sets(
    view1, view2, ("view1", "view2"), where, sample_where
  )
  d = x.shape[-1]
  invariance = jnp.sum(jnp.square(x - y), axis=(-2, -1)) / (jnp.maximum(count, 1) * d)
  variance: float | jax.Array = 0.0
  covariance: float | jax.Array = 0.0
  for v in (x, y):
    c = _centred(v, keep, count)
    std = jnp.sqrt(_unbiased_var(c, count)[..., 0, :] + eps)
    variance = variance + 0.5 * jnp.mean(jax.nn.relu(1.0 - std), axis=-1)
    cov = jnp.einsum("...nd,...ne->...de", c, c) / _per_problem(jnp.maximum(count - 1, 1))
    covariance = covariance + _off_diagonal_squares(cov) / d
  values = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
