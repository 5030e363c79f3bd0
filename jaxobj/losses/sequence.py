r"""Sequence losses: token-level cross-entropy for language models and CTC.

:func:`token_cross_entropy` scores every position of a (possibly packed)
sequence against its target token, with the knobs language-model training
uses: ignored positions, label smoothing, the z-loss, logit soft-capping and
three ways to normalize. :func:`fused_linear_cross_entropy` is the same loss
of ``hidden @ kernel`` computed without the ``[tokens, vocabulary]`` logits.
:func:`ctc_loss` is the connectionist temporal classification loss, computed
exactly in log space.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks, fused_linear, fused_xent, inputs, numerics
from jaxobj._src.examples import sequence as sequence_examples
from jaxobj._src.reduce import (
  Reduced,
  masked_fill,
  reduce_loss,
  reduce_total,
  reduction_coefficients,
)
from jaxobj.registry import register

__all__ = [
  "ctc_loss",
  "ctc_loss_with_forward_probs",
  "fused_linear_cross_entropy",
  "fused_linear_sequence_log_probs",
  "fused_linear_token_log_probs",
  "token_cross_entropy",
]

NORMALIZE_MODES = ("tokens", "sequences")


def _is_zero(h) -> bool:
  """A hyperparameter that is the Python number 0 (its term can be skipped)."""
  return isinstance(h, (int, float)) and not isinstance(h, bool) and h == 0


# --------------------------------------------------------------------------
# Token-level cross-entropy.


def _soft_cap(x, cap):
  """``cap * tanh(x / cap)``, keeping ``-inf`` (a masked class) at ``-inf``."""
  finite = x > -jnp.inf
  safe = jnp.where(finite, x, 0.0)
  return jnp.where(finite, cap * jnp.tanh(safe / cap), -jnp.inf)


def _check_normalize(normalize) -> None:
  if isinstance(normalize, str):
    if normalize not in NORMALIZE_MODES:
      raise ValueError(
        f"normalize={normalize!r} is not supported; choose one of "
        f"{', '.join(repr(m) for m in NORMALIZE_MODES)} or a positive number "
        f"(the constant the sum is divided by)."
      )
    return
  if isinstance(normalize, bool) or normalize is None:
    raise TypeError(
      f"normalize must be 'tokens', 'sequences' or a positive number, got {normalize!r}."
    )
  checks.check_range("normalize", normalize, low=0.0, low_inclusive=False)


def _segment_totals(w, segment_ids):
  """Per token, the total of ``w`` over its segment: the maximal run of equal
  ``segment_ids`` along the last axis that contains it."""
  shape = w.shape
  t = shape[-1]
  rows = int(np.prod(shape[:-1], dtype=np.int64))
  seg = segment_ids.reshape(rows, t)
  starts = jnp.concatenate([jnp.ones((rows, 1), bool), seg[:, 1:] != seg[:, :-1]], axis=1)
  ids = jnp.cumsum(starts, axis=1) - 1 + t * jnp.arange(rows)[:, None]
  totals = jax.ops.segment_sum(
    w.reshape(-1), ids.reshape(-1), num_segments=rows * t, indices_are_sorted=True
  )
  return totals[ids].reshape(shape)


def _per_sequence_weights(mask, weights, segment_ids, shape):
  """Token weights that turn a weighted sum into a sum of per-sequence means."""
  if weights is None:
    w = jnp.ones(shape, jnp.float32)
  else:
    weights = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", weights, shape)
    w = jnp.broadcast_to(weights, shape)
  if mask is not None:
    w = jnp.where(jnp.broadcast_to(mask, shape), w, 0.0)
  if segment_ids is None:
    totals = jnp.sum(w, axis=-1, keepdims=True)
  else:
    totals = _segment_totals(w, segment_ids)
  nonempty = totals > 0
  return jnp.where(nonempty, w / jnp.where(nonempty, totals, 1.0), 0.0)


@register("sequence", inputs=sequence_examples.TOKENS)
def token_cross_entropy(
  logits: ArrayLike,
  targets: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  label_smoothing: float | ArrayLike = 0.0,
  z_loss: float | ArrayLike = 0.0,
  logit_soft_cap: float | ArrayLike | None = None,
  normalize: str | float | ArrayLike = "tokens",
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Token-level softmax cross-entropy for language models, with z-loss and soft-capping.

  Per token, with logits :math:`x` (soft-capped first when ``logit_soft_cap``
  :math:`c` is given), :math:`Z = \sum_k e^{x_k}` and target :math:`y`:

  .. math::
     x \leftarrow c \tanh(x / c), \qquad
     \ell = (1-\alpha)\big(\log Z - x_y\big)
       + \alpha\big(\log Z - \tfrac{1}{|F|}\textstyle\sum_{k\in F} x_k\big)
       + \beta\,(\log Z)^2

  with :math:`\alpha` the label smoothing (uniform over the classes :math:`F`
  whose logit is not ``-inf``, as in
  :func:`softmax_cross_entropy_with_integer_labels`) and :math:`\beta` the
  z-loss coefficient (PaLM and T5X use :math:`10^{-4}`), which keeps
  :math:`\log Z` near 0 for stable logits. Soft-capping (Gemma 2 uses
  :math:`c = 30`) keeps ``-inf`` logits at ``-inf``.

  A token is valid unless ``where`` is False there or its target equals
  ``ignore_index``. The per-element loss is per token (``targets.shape``), and
  ``where``/``weights`` index tokens. ``normalize`` sets how tokens are
  weighted and what ``reduction="mean"`` divides by:

  * ``"tokens"`` (default): the plain contract. ``"none"`` gives the per-token
    losses (0 at invalid tokens), ``"sum"`` their sum, ``"mean"`` the mean over
    valid tokens (weighted mean with ``weights``), so long sequences count
    more.
  * ``"sequences"``: each sequence counts equally. A sequence is a row along
    the last axis, or, with ``segment_ids``, a packed segment inside a row.
    Each valid token's loss is weighted by :math:`w_t / \sum_{t'\in s} w_{t'}`
    over its sequence :math:`s` (:math:`w = 1` without ``weights``), so
    ``"none"`` gives these weighted per-token terms, ``"sum"`` the sum of the
    per-sequence means and ``"mean"`` the mean of the per-sequence means over
    sequences with at least one valid token.
  * a positive number :math:`N`: ``"mean"`` is the (weighted) sum over valid
    tokens divided by :math:`N`, e.g. ``batch * max_len`` so that the
    gradient's scale does not depend on how much of a batch is padding;
    ``"none"`` and ``"sum"`` are as for ``"tokens"``. :math:`N` is the budget
    of the tokens this call sees: ``"sum_and_count"`` gives ``(sum, N)``, so
    an objective that splits a batch into microbatches or device shards adds
    their budgets. Give each part's budget (``microbatch * max_len``) and the
    whole batch is divided by their sum, as one call with the whole batch's
    budget would be.

  ``sum(loss(reduction="none")) == loss(reduction="sum")`` in every mode. With
  the defaults the value is PyTorch's ``F.cross_entropy`` over the flattened
  tokens (``ignore_index=-100``, mean over the rest; its ``label_smoothing``
  is the same formula), i.e. the mean of optax's
  ``softmax_cross_entropy_with_integer_labels`` over valid tokens; when every
  token is ignored the mean is 0 with a zero gradient (PyTorch gives NaN).

  Packed sequences: ``segment_ids`` only group tokens for ``"sequences"``
  normalization; a segment is a maximal run of equal ids along the last axis.
  They do not mask: padding (often segment id 0) must be masked with
  ``ignore_index`` targets or ``where=segment_ids != 0``. The loss never shifts
  anything: ``logits[..., t, :]`` is scored against ``targets[..., t]``. If
  targets were made by shifting a packed row by one, the last token of each
  segment predicts the next segment's first token; mask those positions
  (``segment_ids[..., t] != segment_ids[..., t + 1]``) or build targets per
  segment.

  Args:
    logits: float array ``[..., T, V]`` (any leading shape; the vocabulary axis
      last).
    targets: integer array ``logits.shape[:-1]``. Targets outside ``[0, V)``
      that are not masked give NaN.
    ignore_index: target value marking positions to skip (default -100, the
      PyTorch convention), or None.
    label_smoothing: :math:`\alpha` in [0, 1] (traceable).
    z_loss: :math:`\beta \ge 0` (traceable).
    logit_soft_cap: :math:`c > 0`, or None for no capping (traceable when
      given).
    normalize: ``"tokens"``, ``"sequences"`` or a positive number (see above).
    segment_ids: optional integer array ``targets.shape`` of packed-segment
      ids.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`),
      over tokens.

  Returns:
    The reduced loss; per-token terms for ``reduction="none"``.

  Raises:
    ValueError: ``targets.shape != logits.shape[:-1]``, a bad ``segment_ids``
      shape, an unknown ``normalize``, or a hyperparameter out of range.
    TypeError: integer ``logits``, floating ``targets`` or ``segment_ids``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.array([[[2.0, 0.0, -jnp.inf], [0.0, 0.0, 0.0]]])
    >>> targets = jnp.array([[0, -100]])
    >>> print(round(float(jaxobj.token_cross_entropy(logits, targets)), 4))
    0.1269

  References:
    Szegedy et al., "Rethinking the Inception Architecture for Computer
    Vision", CVPR 2016 (label smoothing). Chowdhery et al., "PaLM: Scaling
    Language Modeling with Pathways", JMLR 2023 (z-loss). Gemma Team, "Gemma 2:
    Improving Open Language Models at a Practical Size", 2024 (soft-capping).
  """
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  checks.check_range("z_loss", z_loss, low=0.0)
  checks.check_range("logit_soft_cap", logit_soft_cap, low=0.0, low_inclusive=False)
  _check_normalize(normalize)
  x = checks.as_float(logits, "logits")
  y = checks.as_labels(targets, "targets")
  checks.check_label_shape("logits", x, "targets", y)
  shape = y.shape
  segment_ids = _check_segment_ids(segment_ids, shape)
  mask = _valid_tokens(y, where, ignore_index, shape)
  x = masked_fill(mask, x, shape, axis_extra=1)
  y = masked_fill(mask, y, shape, fill=0)
  if logit_soft_cap is not None:
    x = _soft_cap(x, logit_soft_cap)

  log_z = jax.nn.logsumexp(x, axis=-1)
  values = log_z - inputs.take(x, y)
  if not _is_zero(label_smoothing):
    finite, count = inputs.finite_classes(x)
    mean_logit = jnp.sum(jnp.where(finite, x, 0.0), axis=-1) / count
    values = values * (1.0 - label_smoothing) + (log_z - mean_logit) * label_smoothing
  if not _is_zero(z_loss):
    values = values + z_loss * jnp.square(log_z)

  token_weights = _token_weights(mask, weights, normalize, segment_ids, shape)
  if isinstance(normalize, str) or reduction in ("none", "sum"):
    return reduce_loss(values, where=mask, weights=token_weights, reduction=reduction)
  # A constant normalizer is the mean's denominator (the token budget of this
  # call): "sum_and_count" returns it as the count, so budgets add over parts.
  total = cast(jax.Array, reduce_loss(values, where=mask, weights=weights, reduction="sum"))
  return reduce_total(total, normalize, reduction)


@register("sequence", inputs=sequence_examples.LINEAR)
def fused_linear_cross_entropy(
  hidden: ArrayLike,
  targets: ArrayLike,
  kernel: ArrayLike,
  *,
  ignore_index: int | ArrayLike | None = -100,
  label_smoothing: float | ArrayLike = 0.0,
  z_loss: float | ArrayLike = 0.0,
  logit_soft_cap: float | ArrayLike | None = None,
  normalize: str | float | ArrayLike = "tokens",
  segment_ids: ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`token_cross_entropy` of ``hidden @ kernel``, without the logits.

  The value is exactly ``token_cross_entropy(hidden @ kernel, targets, ...)``
  with the same options (ignored targets, label smoothing, z-loss, soft-capping,
  ``normalize``, masks, weights and reductions), but the ``[tokens, V]``
  logits are never stored: tokens are processed in chunks of ``token_block``,
  each chunk's logits are used and dropped, and the gradients with respect to
  ``hidden`` and ``kernel`` are accumulated chunk by chunk inside a
  ``jax.custom_vjp``.

  .. math::
     x_t = c \tanh\big((h_t W) / c\big), \qquad
     \ell_t = (1-\alpha)\big(\log Z_t - x_{t,y_t}\big)
       + \alpha\big(\log Z_t - \tfrac{1}{V}\textstyle\sum_k x_{t,k}\big)
       + \beta\,(\log Z_t)^2

  with :math:`Z_t = \sum_k e^{x_{t,k}}` (no cap when ``logit_soft_cap`` is
  None).

  Cost. For ``"mean"`` and ``"sum"`` the forward pass of ``jax.grad`` computes
  the gradients in the same sweep (each chunk's softmax is at hand), so value
  and gradient cost :math:`6 N D V` FLOPs, as many as the unfused loss, and
  the value alone :math:`2 N D V`. ``reduction="none"`` recomputes each chunk
  in the backward pass (:math:`8 N D V`), since its per-token cotangents are
  only known there. Memory: one ``[token_block, V]`` buffer of logits, with
  or without the options; by default ``token_block`` is chosen so that it
  holds about 8 MiB in float32 whatever ``V`` (at least one token), so memory
  does not grow with ``N`` and grows with ``V`` only once ``V`` exceeds about
  two million. The gradient with respect to the logits is formed
  ``vocab_block`` columns at a time from them, and the kernel's gradient is
  accumulated in place. Low-precision inputs are multiplied with float32
  accumulation, and their gradients come back in their own dtype.

  Args:
    hidden: float array ``[..., D]``, the inputs of the output projection.
    targets: integer array ``hidden.shape[:-1]``. A concrete target outside
      ``[0, V)`` at a valid position raises ``ValueError``; under ``jit`` it
      gives NaN, as in :func:`token_cross_entropy`.
    kernel: float array ``[D, V]``, the output projection (fold a bias in by
      appending a constant 1 to ``hidden`` and the bias as a row of
      ``kernel``).
    ignore_index, label_smoothing, z_loss, logit_soft_cap, normalize,
      segment_ids, where, weights, reduction: as in
      :func:`token_cross_entropy`. The hyperparameters are traceable, with
      gradients.
    token_block: tokens per chunk (default: automatic, see above). Any
      positive integer works; the last chunk may be smaller.
    vocab_block: columns of the logits' gradient formed (and of the kernel's
      gradient updated) at a time (default :math:`2^{19} / D`).

  Returns:
    The reduced loss; per-token losses ``targets.shape`` for
    ``reduction="none"``.

  Raises:
    ValueError: ``targets.shape != hidden.shape[:-1]``, a kernel that is not
      ``[D, V]``, concrete targets outside ``[0, V)``, bad blocks, or the
      errors of :func:`token_cross_entropy`.
    TypeError: integer ``hidden`` or ``kernel``, floating ``targets``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> hidden = jax.random.normal(jax.random.key(0), (2, 5, 8))
    >>> kernel = jax.random.normal(jax.random.key(1), (8, 11))
    >>> targets = jnp.array([[1, 2, 3, 4, -100], [5, 6, 7, 8, 9]])
    >>> fused = jaxobj.fused_linear_cross_entropy(hidden, targets, kernel, token_block=4)
    >>> unfused = jaxobj.token_cross_entropy(hidden @ kernel, targets)
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
    ICLR 2025 (blockwise cross-entropy without logits). Hsu et al., "Liger
    Kernel: Efficient Triton Kernels for LLM Training", 2024 (gradients in the
    forward pass).
  """
  checks.check_reduction(reduction)
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  checks.check_range("z_loss", z_loss, low=0.0)
  checks.check_range("logit_soft_cap", logit_soft_cap, low=0.0, low_inclusive=False)
  _check_normalize(normalize)
  h = checks.as_float(hidden, "hidden")
  y = checks.as_labels(targets, "targets")
  w = checks.as_float(kernel, "kernel")
  checks.check_label_shape("hidden", h, "targets", y)
  if w.ndim != 2 or w.shape[0] != h.shape[-1]:
    raise ValueError(
      f"kernel must be [D, V] with D = hidden.shape[-1] = {h.shape[-1]}, got "
      f"kernel.shape={w.shape}; the logits are hidden @ kernel (transpose a "
      f"[V, D] embedding table)."
    )
  for name, block in (("token_block", token_block), ("vocab_block", vocab_block)):
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
      raise ValueError(f"{name} must be a positive integer or None, got {block!r}.")
  shape = y.shape
  dim, vocab = w.shape
  segment_ids = _check_segment_ids(segment_ids, shape)
  mask = _valid_tokens(y, where, ignore_index, shape)
  _check_targets_in_vocab(y, mask, vocab)
  h = masked_fill(mask, h, shape, axis_extra=1)
  y = masked_fill(mask, y, shape, fill=0)
  token_weights = _token_weights(mask, weights, normalize, segment_ids, shape)

  opts = fused_xent.Options(
    smoothing=not _is_zero(label_smoothing),
    z_loss=not _is_zero(z_loss),
    soft_cap=logit_soft_cap is not None,
  )
  dtype = fused_xent.compute_dtype(h, w)
  hyper = tuple(
    jnp.asarray(v, dtype)
    for v in (label_smoothing, z_loss, 1.0 if logit_soft_cap is None else logit_soft_cap)
  )
  blocks = fused_xent.default_blocks(dim, vocab, token_block, vocab_block)
  h2, y2 = h.reshape(-1, dim), y.reshape(-1)
  # Inside shard_map: every input of the custom_vjp varies like the tokens, so
  # the cotangents of replicated ones (the kernel) are summed over devices.
  h2, y2, w, hyper = numerics.vary_like((h2, y2, w, hyper), h2, y2, mask, token_weights)
  if reduction == "none":
    values = fused_xent.token_values(h2, y2, w, hyper, opts, blocks).reshape(shape)
    return reduce_loss(values, where=mask, weights=token_weights, reduction="none")

  # The reduction as per-token coefficients: exactly what reduce_loss multiplies
  # each value by before summing, and whose sum is its denominator.
  coef = reduction_coefficients(mask, token_weights, shape, dtype)
  coef = numerics.vary_like(coef.reshape(-1), h2)
  total = fused_xent.weighted_total(h2, y2, coef, w, hyper, opts, blocks)
  # A constant normalizer replaces the token count as the mean's denominator
  # (and as the count of "sum_and_count"), as in token_cross_entropy.
  count = jnp.sum(coef) if isinstance(normalize, str) else normalize
  return reduce_total(total, count, reduction)


class _TokenLogProbs(NamedTuple):
  """The engine's per-token function: the target's log-probability (and the
  entropy) under ``softmax(c tanh(z / c) / T)`` of one chunk's logits ``z``."""

  soft_cap: bool
  entropy: bool

  def __call__(self, logits, aux, hyper):
    (z,) = logits
    (y,) = aux
    temperature, cap = hyper
    x, lse, logp = fused_linear.scaled_log_probs(z, y, temperature, cap, self.soft_cap)
    return (logp, fused_linear.entropies(x, lse)) if self.entropy else (logp,)


def fused_linear_token_log_probs(
  hidden: ArrayLike,
  targets: ArrayLike,
  kernel: ArrayLike,
  *,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  entropy: bool = False,
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
  r"""Per-token log-probabilities of the targets under ``hidden @ kernel``, without the logits.

  .. math::
     x_t = c \tanh\big((h_t W) / c\big) / \tau, \qquad
     \log\pi(y_t) = x_{t, y_t} - \log\textstyle\sum_k e^{x_{t,k}}, \qquad
     H_t = -\textstyle\sum_k \pi_k \log \pi_k

  The building block of the fused preference, policy-gradient and
  log-probability losses: the ``[tokens, V]`` logits are formed one chunk of
  ``token_block`` tokens at a time and dropped, and the backward pass
  (a ``jax.custom_vjp``) recomputes each chunk and accumulates the gradients
  with respect to ``hidden``, ``kernel``, ``temperature`` and
  ``logit_soft_cap``. Cost: :math:`2NDV` FLOPs for the value, :math:`6NDV`
  more for the gradient (the unfused form needs :math:`6NDV` in all, and an
  ``[N, V]`` array). Under ``jax.lax.stop_gradient`` (a frozen reference or
  old policy) only the forward sweep runs.

  ``temperature`` :math:`\tau` divides the (soft-capped) logits, as sampling
  does; ``logit_soft_cap`` :math:`c` is as in :func:`token_cross_entropy`
  (no cap when None). Positions where ``where`` is False or the target equals
  ``ignore_index`` get 0 (and entropy 0) with zero gradient, whatever their
  inputs.

  Args:
    hidden: float array ``[..., D]``, the inputs of the output projection.
    targets: integer array ``hidden.shape[:-1]``, the tokens whose
      log-probabilities are wanted. A concrete target outside ``[0, V)`` at
      a counted position raises; under ``jit`` it gives NaN.
    kernel: float array ``[D, V]``, the output projection.
    temperature: :math:`\tau > 0` (traceable).
    logit_soft_cap: :math:`c > 0` or None (traceable).
    ignore_index: target id whose positions are skipped (None: none).
    where: optional boolean mask of the positions that count.
    entropy: also return the per-token entropies of the distributions.
    token_block, vocab_block: chunk sizes, as in
      :func:`fused_linear_cross_entropy`.

  Returns:
    Log-probabilities ``targets.shape`` (float32 at least); with
    ``entropy=True`` the pair ``(log_probs, entropies)``.

  Raises:
    ValueError: mismatched shapes, a kernel that is not ``[D, V]``, concrete
      targets outside ``[0, V)``, a non-positive temperature or cap, bad
      blocks.
    TypeError: integer ``hidden`` or ``kernel``, floating ``targets``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxobj.losses.sequence import fused_linear_token_log_probs
    >>> hidden = jax.random.normal(jax.random.key(0), (2, 5, 8))
    >>> kernel = jax.random.normal(jax.random.key(1), (8, 11))
    >>> targets = jnp.array([[1, 2, 3, 4, -100], [5, 6, 7, 8, 9]])
    >>> fused = fused_linear_token_log_probs(hidden, targets, kernel, temperature=0.7)
    >>> logits = jax.nn.log_softmax(hidden @ kernel / 0.7)
    >>> direct = jnp.take_along_axis(logits, jnp.maximum(targets, 0)[..., None], -1)[..., 0]
    >>> bool(jnp.allclose(fused, jnp.where(targets >= 0, direct, 0.0), rtol=1e-5))
    True
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  checks.check_range("logit_soft_cap", logit_soft_cap, low=0.0, low_inclusive=False)
  fused_linear.check_blocks(token_block, vocab_block)
  h, y, w, mask = _fused_inputs(hidden, targets, kernel, where, ignore_index)
  shape = y.shape
  dim, vocab = w.shape
  dtype = fused_linear.compute_dtype(h, w)
  fn = _TokenLogProbs(soft_cap=logit_soft_cap is not None, entropy=bool(entropy))
  hyper = (
    jnp.asarray(temperature, dtype),
    jnp.asarray(1.0 if logit_soft_cap is None else logit_soft_cap, dtype),
  )
  blocks = fused_linear.default_blocks((dim,), vocab, token_block, vocab_block)
  h2, y2 = h.reshape(-1, dim), y.reshape(-1)
  # Inside shard_map: a replicated kernel's cotangent is summed over devices.
  h2, y2, w, hyper = numerics.vary_like((h2, y2, w, hyper), h2, y2, mask)
  outputs = fused_linear.token_outputs(fn, (h2,), (w,), (y2,), hyper, blocks)
  outputs = tuple(o.reshape(shape) for o in outputs)
  if mask is not None:
    outputs = tuple(jnp.where(mask, o, 0.0) for o in outputs)
  return outputs if entropy else outputs[0]


def fused_linear_sequence_log_probs(
  hidden: ArrayLike,
  targets: ArrayLike,
  kernel: ArrayLike,
  *,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  average: bool = False,
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> jax.Array:
  r"""Per-sequence log-probabilities of ``hidden @ kernel``, without the logits.

  .. math::
     \log\pi(y) = \sum_{t:\,m_t} \log\pi(y_t \mid h_t), \qquad
     \overline{\log\pi}(y) = \log\pi(y) / \textstyle\sum_t m_t

  :func:`jaxobj.losses.preference.sequence_log_probs` of the logits
  ``hidden @ kernel`` (soft-capped and divided by ``temperature``), computed
  with :func:`fused_linear_token_log_probs`: the inputs of every preference
  loss, for a policy and, under ``jax.lax.stop_gradient``, for a reference
  model with its own kernel. The last axis of ``targets`` is the sequence
  (for a causal LM pass the hidden states of positions ``:-1`` and the
  tokens ``1:``); a sequence with no counted token has log-probability 0.

  Args:
    hidden: float array ``[..., T, D]``.
    targets: integer array ``[..., T]``; ``ignore_index`` (default -100)
      marks prompt and padding positions.
    kernel: float array ``[D, V]``.
    temperature, logit_soft_cap, ignore_index, where, token_block,
      vocab_block: as in :func:`fused_linear_token_log_probs`.
    average: return the length-averaged log-probability (SimPO, ORPO).

  Returns:
    float array ``targets.shape[:-1]``.

  Raises:
    ValueError: as :func:`fused_linear_token_log_probs`, or targets without
      a sequence axis.
    TypeError: as :func:`fused_linear_token_log_probs`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> from jaxobj.losses.sequence import fused_linear_sequence_log_probs
    >>> hidden = jax.random.normal(jax.random.key(0), (2, 5, 8))
    >>> kernel = jax.random.normal(jax.random.key(1), (8, 11))
    >>> targets = jnp.array([[1, 2, 3, 4, -100], [5, 6, 7, 8, 9]])
    >>> fused = fused_linear_sequence_log_probs(hidden, targets, kernel)
    >>> bool(jnp.allclose(fused, sequence_log_probs(hidden @ kernel, targets), rtol=1e-5))
    True
  """
  if jnp.ndim(targets) < 1:
    raise ValueError(
      f"targets must have a sequence axis, got targets.shape={jnp.shape(targets)}; "
      f"expected (..., T) with hidden (..., T, D)."
    )
  token_logps = fused_linear_token_log_probs(
    hidden,
    targets,
    kernel,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    where=where,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  assert isinstance(token_logps, jax.Array)
  total = jnp.sum(token_logps, axis=-1)
  if not average:
    return total
  # Only the count is needed here: the inputs were checked above.
  y = jnp.asarray(targets)
  mask = _valid_tokens(y, where, ignore_index, y.shape)
  if mask is None:
    return total / max(y.shape[-1], 1)
  count = jnp.sum(mask, axis=-1, dtype=total.dtype)
  return total / jnp.maximum(count, 1.0)


def _fused_inputs(hidden, targets, kernel, where, ignore_index):
  """Checked ``(hidden, targets, kernel, mask)`` of a fused-linear function,
  with masked positions made harmless (zero hidden states, target 0)."""
  h = checks.as_float(hidden, "hidden")
  y = checks.as_labels(targets, "targets")
  w = checks.as_float(kernel, "kernel")
  checks.check_label_shape("hidden", h, "targets", y)
  if w.ndim != 2 or w.shape[0] != h.shape[-1]:
    raise ValueError(
      f"kernel must be [D, V] with D = hidden.shape[-1] = {h.shape[-1]}, got "
      f"kernel.shape={w.shape}; the logits are hidden @ kernel (transpose a "
      f"[V, D] embedding table)."
    )
  shape = y.shape
  mask = _valid_tokens(y, where, ignore_index, shape)
  _check_targets_in_vocab(y, mask, w.shape[1])
  h = masked_fill(mask, h, shape, axis_extra=1)
  y = masked_fill(mask, y, shape, fill=0)
  return h, y, w, mask


def _check_targets_in_vocab(y, mask, vocab: int) -> None:
  checks.check_labels_in_vocab(
    "targets", y, mask, vocab, "mark positions to skip with ignore_index or where=."
  )


def _check_segment_ids(segment_ids, shape):
  if segment_ids is None:
    return None
  segment_ids = jnp.asarray(segment_ids)
  if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
    raise TypeError(
      f"segment_ids must be an integer array, got dtype "
      f"{segment_ids.dtype}; cast with segment_ids.astype(jnp.int32)."
    )
  if segment_ids.shape != shape:
    raise ValueError(
      f"segment_ids must have the shape of targets (one id per token), got "
      f"segment_ids.shape={segment_ids.shape} and targets.shape={shape}."
    )
  return segment_ids


def _token_weights(mask, weights, normalize, segment_ids, shape):
  """The weights ``reduce_loss`` gets under ``normalize``: the given ``weights``
  for ``"tokens"`` or a number, per-sequence weights for ``"sequences"``."""
  if isinstance(normalize, str) and normalize == "sequences":
    if not shape:
      raise ValueError(
        "normalize='sequences' needs a sequence axis: targets must have at least one dimension."
      )
    return _per_sequence_weights(mask, weights, segment_ids, shape)
  return weights


def _valid_tokens(y, where, ignore_index, shape):
  """Tokens that count: ``where`` and not ``ignore_index``."""
  mask = None if where is None else checks.as_mask(where, shape)
  if ignore_index is not None:
    keep = y != ignore_index
    mask = keep if mask is None else jnp.logical_and(mask, keep)
  return mask


# --------------------------------------------------------------------------
# CTC.


def _shift(a, k, fill, axis=0):
  """``a`` moved ``k`` places along ``axis`` (towards higher indices for k > 0)."""
  a = jnp.moveaxis(a, axis, 0)
  k = max(-a.shape[0], min(k, a.shape[0]))
  if k == 0:
    return jnp.moveaxis(jnp.full_like(a, fill), 0, axis)
  pad = jnp.full((abs(k),) + a.shape[1:], fill, a.dtype)
  out = jnp.concatenate([pad, a[:-k]] if k > 0 else [a[-k:], pad], axis=0)
  return jnp.moveaxis(out, 0, axis)


def _logsumexp3(a, b, c):
  """Elementwise ``log(e^a + e^b + e^c)``; all ``-inf`` gives ``-inf``.

  The largest term contributes exactly 1 inside the log, so only the other
  two need an ``exp`` (the recursions spend most of their time here).
  """
  hi, lo = jnp.maximum(a, b), jnp.minimum(a, b)
  top, mid, low = jnp.maximum(hi, c), jnp.maximum(lo, jnp.minimum(hi, c)), jnp.minimum(lo, c)
  shift = jnp.where(top == -jnp.inf, 0.0, top)
  return top + jnp.log(1.0 + jnp.exp(mid - shift) + jnp.exp(low - shift))


# The CTC recursions run over the extended labels (blank, l1, blank, l2, ...,
# blank: S' = 2S + 1 states) with the state axis first and the batch last,
# [S', B]: the shifts between neighbouring states then move whole rows, which
# keeps the per-frame work vectorized over the batch.


def _forward_step(skip):
  """One frame of the forward recursion: stay, advance one state, or skip the
  blank between two different labels. Padded frames change nothing."""

  def step(alpha, inputs):
    emit, valid = inputs
    new = (
      _logsumexp3(
        alpha, _shift(alpha, 1, -jnp.inf), jnp.where(skip, _shift(alpha, 2, -jnp.inf), -jnp.inf)
      )
      + emit
    )
    return jnp.where(valid, new, alpha)

  return step


def _ctc_tables(logits, frame_valid, ext):
  """Log-normalizers [B, T], the scan inputs (emissions [T, S', B], frame flags
  [T, 1, B]) and the state before the first frame (all mass on the first blank)."""
  log_z = jax.nn.logsumexp(logits, axis=-1)
  emit = jnp.take_along_axis(logits, ext[:, None, :], axis=2) - log_z[..., None]
  emit = emit.transpose(1, 2, 0)
  init = jnp.where(jnp.arange(ext.shape[1]) == 0, 0.0, -jnp.inf).astype(logits.dtype)
  init = jnp.broadcast_to(init[:, None], (ext.shape[1], ext.shape[0]))
  return log_z, numerics.vary_like(init, emit), (emit, frame_valid.T[:, None, :])


def _final_log_likelihood(alpha, last):
  """``log P`` from the last forward state: paths end on the last label or the
  blank after it (``last`` [2, B] holds both states, equal for no labels)."""
  ends = jnp.take_along_axis(alpha, last, axis=0)
  return jnp.logaddexp(ends[0], jnp.where(last[0] == last[1], -jnp.inf, ends[1]))


@jax.custom_jvp
def _ctc_log_likelihood(logits, frame_valid, ext, skip, last):
  """``log p(labels | logits)`` per sequence (``-inf`` when no alignment exists).

  ``logits`` [B, T, K], ``frame_valid`` [B, T], ``ext`` [B, S'] extended labels,
  ``skip`` [S', B] where the state may be entered from two states back,
  ``last`` [2, B] the two final states. The custom JVP uses the classic
  occupancy form of the derivative, ``d log P / d x_tk = gamma_tk - softmax(x)_tk``
  on valid frames (Graves et al. 2006, eq. 16), from one forward and one
  backward pass instead of differentiating through the recursion.
  """
  _, init, xs = _ctc_tables(logits, frame_valid, ext)
  step = _forward_step(skip)
  alpha, _ = jax.lax.scan(lambda a, x: (step(a, x), None), init, xs)
  return _final_log_likelihood(alpha, last)


def _ctc_coefficients(logits, frame_valid, ext, skip, last):
  """``log P`` and ``d log P / d logits`` (zero for impossible alignments)."""
  log_z, init, xs = _ctc_tables(logits, frame_valid, ext)
  step = _forward_step(skip)

  def forward(alpha, x):
    alpha = step(alpha, x)
    return alpha, alpha

  alpha_last, alphas = jax.lax.scan(forward, init, xs)
  log_lik = _final_log_likelihood(alpha_last, last)

  possible = log_lik > -jnp.inf

  # The backward variables beta[t, s, b] = log P(frames after t | state s at
  # frame t) are used as soon as they are known, to turn alpha + beta into the
  # state occupancies of frame t. Each valid frame is in exactly one state on
  # every path, so these sum to 1; normalizing per frame absorbs rounding drift.
  states = jnp.arange(ext.shape[1])[:, None]
  beta_init = jnp.where((states == last[:1]) | (states == last[1:]), 0.0, -jnp.inf)
  skip_next = _shift(skip, -2, False)

  def backward(beta, x):
    emit, valid, alpha = x
    log_occ = alpha + beta
    use = valid & possible
    top = jnp.where(use, jnp.max(log_occ, axis=0, keepdims=True), 0.0)
    occ = jnp.where(use, jnp.exp(log_occ - top), 0.0)
    occ = occ / jnp.where(use, jnp.sum(occ, axis=0, keepdims=True), 1.0)
    here = beta + emit
    new = _logsumexp3(
      here, _shift(here, -1, -jnp.inf), jnp.where(skip_next, _shift(here, -2, -jnp.inf), -jnp.inf)
    )
    return jnp.where(valid, new, beta), (occ[1::2], jnp.sum(occ[0::2], axis=0))

  _, (occ_labels, occ_blank) = jax.lax.scan(
    backward,
    numerics.vary_like(beta_init.astype(logits.dtype), alphas),
    xs + (alphas,),
    reverse=True,
  )
  classes = logits.shape[-1]
  labels_hot = jax.nn.one_hot(ext[:, 1::2], classes, dtype=logits.dtype)  # [B, S, K]
  blank_hot = jax.nn.one_hot(ext[:, :1], classes, dtype=logits.dtype)  # [B, 1, K]
  occ_k = jnp.einsum("tsb,bsk->btk", occ_labels, labels_hot) + occ_blank.T[..., None] * blank_hot
  use = frame_valid[..., None] & possible[:, None, None]
  coef = jnp.where(use, occ_k - jnp.exp(logits - log_z[..., None]), 0.0)
  return log_lik, coef


@_ctc_log_likelihood.defjvp
def _ctc_log_likelihood_jvp(primals, tangents):
  log_lik, coef = _ctc_coefficients(*primals)
  return log_lik, jnp.sum(coef * tangents[0], axis=(1, 2))


def _paddings(p, name, like_name, like, axes):
  """A padding array of shape ``like.shape[:axes]`` (1.0 marks padding)."""
  p = jnp.asarray(p)
  shape = like.shape[:axes]
  if p.shape != shape:
    want = f"{like_name}.shape" + ("" if axes is None else f"[:{axes}]")
    raise ValueError(
      f"{name} must have shape {want} = {shape} (one padding flag per position), "
      f"got {name}.shape={p.shape} and {like_name}.shape={like.shape}. jaxobj "
      f"never broadcasts it silently; reshape it to {shape}."
    )
  if not (
    jnp.issubdtype(p.dtype, jnp.floating)
    or jnp.issubdtype(p.dtype, jnp.integer)
    or p.dtype == jnp.bool_
  ):
    raise TypeError(f"{name} must be real (1.0 marks padding), got dtype {p.dtype}.")
  return p


def _ctc_prepare(x, frame_pad, y, label_pad, blank_id):
  """Frame flags, extended labels, skip flags, final states and bad rows of a flat batch."""
  classes = x.shape[-1]
  frame_valid = ~(frame_pad > 0.5)
  label_valid = ~(label_pad > 0.5)
  num_labels = jnp.sum(label_valid, axis=1)
  bad = jnp.any(label_valid & ((y < 0) | (y >= classes) | (y == blank_id)), axis=1)
  # Unpadded labels first, in order: padding may sit anywhere, not only at the end.
  order = jnp.argsort(~label_valid, axis=1, stable=True)
  y = jnp.take_along_axis(jnp.where(label_valid & ~bad[:, None], y, blank_id), order, axis=1)

  # Extended labels: blank, l1, blank, l2, ..., lS, blank (S' = 2S + 1 states).
  ext = jnp.full((y.shape[0], 2 * y.shape[1] + 1), blank_id, y.dtype).at[:, 1::2].set(y)
  skip = ((ext != blank_id) & (ext != _shift(ext, 2, blank_id, axis=1))).T
  last = jnp.stack([2 * num_labels, jnp.maximum(2 * num_labels - 1, 0)]).astype(jnp.int32)
  return frame_valid, ext, skip, last, bad


@functools.partial(jax.jit, static_argnames="blank_id")
def _ctc_values(x, frame_pad, y, label_pad, zero_infinity, *, blank_id):
  """Per-sequence CTC losses of a flat batch ``x`` [B, T, K] (jitted, so that
  eager calls reuse one compiled recursion per shape)."""
  frame_valid, ext, skip, last, bad = _ctc_prepare(x, frame_pad, y, label_pad, blank_id)
  log_lik = _ctc_log_likelihood(x, frame_valid, ext, skip, last)
  impossible = log_lik == -jnp.inf
  nll = jnp.where(impossible, 0.0, -log_lik)
  nll = nll + jax.lax.stop_gradient(jnp.maximum(nll, 0.0) - nll)  # clamp, keep gradient
  values = jnp.where(impossible, jnp.where(zero_infinity, 0.0, jnp.inf), nll)
  # A NaN padding flag compares as "not padding": pass it on instead.
  nan_pad = jnp.any(jnp.isnan(frame_pad), axis=1) | jnp.any(jnp.isnan(label_pad), axis=1)
  return jnp.where(bad | nan_pad, jnp.nan, values)


@functools.partial(jax.jit, static_argnames="blank_id")
def _ctc_forward_variables(x, frame_pad, y, label_pad, *, blank_id):
  """The forward variables ``[T, S', B]`` of a flat batch (no gradient: diagnostics)."""
  x = jax.lax.stop_gradient(x)
  frame_valid, ext, skip, _, bad = _ctc_prepare(x, frame_pad, y, label_pad, blank_id)
  _, init, xs = _ctc_tables(x, frame_valid, ext)
  step = _forward_step(skip)

  def forward(alpha, inputs):
    alpha = step(alpha, inputs)
    return alpha, alpha

  _, alphas = jax.lax.scan(forward, init, xs)
  return jnp.where(bad[None, None, :], jnp.nan, alphas)


def ctc_loss_with_forward_probs(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: int = 0,
  zero_infinity: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""The CTC loss together with its forward log-probabilities, as optax returns them.

  The loss is :func:`ctc_loss` per sequence (``reduction="none"``: exact,
  with its gradient), as optax returns it; for a masked or weighted mean
  call :func:`ctc_loss`. The forward
  variables of Graves et al. (2006) are the log-probabilities of the frames
  up to :math:`t` over the alignments that are, at frame :math:`t`, in the
  blank before label :math:`n` (``log_alpha_blank[t, b, n]``, :math:`n \le
  N`) or on label :math:`n` (``log_alpha_label[t, b, n]``, :math:`n < N`),
  with :math:`N` the labels' length axis. The layout is optax's
  ``ctc_loss_with_forward_probs`` (time first, ``(T, B, N + 1)`` and
  ``(T, B, N)``), and so is its last frame: ``log_alpha_blank[-1, b, n]``
  also counts the alignments that end on label :math:`n - 1`, so
  ``-log_alpha_blank[-1, b, N_b]`` is sequence ``b``'s loss (with
  :math:`N_b` its number of labels). Impossible states are ``-inf`` (optax
  floors them at ``log_epsilon = -1e5``; the probabilities agree). Padded
  frames carry the variables unchanged; the positions :math:`n` count the
  unpadded labels in order, and entries past a sequence's labels hold no
  meaning. The forward variables carry no gradient (they are diagnostics:
  alignments, posteriors); differentiate the loss.

  Args:
    logits: float array ``[B, T, K]`` (one batch axis, frames, classes
      including the blank).
    logit_paddings: ``[B, T]``, 1.0 at padded frames.
    labels: integer array ``[B, N]``.
    label_paddings: ``[B, N]``, 1.0 at padded labels.
    blank_id: the blank class (static int in ``[0, K)``).
    zero_infinity: give impossible alignments a loss of 0 instead of ``+inf``.

  Returns:
    ``(loss, log_alpha_blank, log_alpha_label)``: the per-sequence losses
    ``(B,)``, and the
    forward log-probabilities of shapes ``(T, B, N + 1)`` and ``(T, B, N)``
    (NaN for a sequence with an unpadded label outside ``[0, K)`` or equal
    to ``blank_id``).

  Raises:
    ValueError: as :func:`ctc_loss`, and for ``logits`` without exactly one
      batch axis.
    TypeError: integer ``logits``, floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.zeros((1, 2, 3))  # 2 frames, uniform over {blank, a, b}
    >>> loss, blank, label = jaxobj.ctc_loss_with_forward_probs(
    ...     logits, jnp.zeros((1, 2)), jnp.array([[1]]), jnp.zeros((1, 1)))
    >>> print(jnp.exp(label[:, 0, 0]))  # on "a" after frame 1 (a), after frame 2 (aa, _a)
    [0.3333 0.2222]
    >>> print(round(float(jnp.exp(-loss[0])), 4), round(float(jnp.exp(blank[-1, 0, 1])), 4))
    0.3333 0.3333

  References:
    Graves et al., "Connectionist Temporal Classification: Labelling
    Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
  """
  x = checks.as_float(logits, "logits")
  if x.ndim != 3:
    raise ValueError(
      f"logits must have shape [B, T, K] (one batch axis, frames, classes), as in optax, got "
      f"logits.shape={x.shape}; reshape the batch axes into one (ctc_loss takes any number)."
    )
  loss = cast(
    jax.Array,
    ctc_loss(
      x,
      logit_paddings,
      labels,
      label_paddings,
      blank_id=blank_id,
      zero_infinity=zero_infinity,
      reduction="none",
    ),
  )
  logit_pad = _paddings(logit_paddings, "logit_paddings", "logits", x, -1)
  y = checks.as_labels(labels, "labels")
  label_pad = _paddings(label_paddings, "label_paddings", "labels", y, None)
  alphas = _ctc_forward_variables(
    x, logit_pad.astype(x.dtype), y, label_pad.astype(x.dtype), blank_id=int(blank_id)
  )
  blank = alphas[:, 0::2, :].transpose(0, 2, 1)  # [T, B, N + 1]
  label = alphas[:, 1::2, :].transpose(0, 2, 1)  # [T, B, N]
  # optax's last frame: the blank after label n also holds the paths ending on label n.
  last = blank[-1].at[:, 1:].set(jnp.logaddexp(blank[-1, :, 1:], label[-1]))
  return loss, blank.at[-1].set(last), label


@register("sequence", inputs=sequence_examples.CTC)
def ctc_loss(
  logits: ArrayLike,
  logit_paddings: ArrayLike,
  labels: ArrayLike,
  label_paddings: ArrayLike,
  *,
  blank_id: int = 0,
  zero_infinity: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Connectionist temporal classification loss, exact in log space.

  The negative log-likelihood of the label sequence :math:`l` summed over
  every frame-level alignment :math:`\pi` that collapses to it (merge repeats,
  then drop blanks), :math:`\mathcal{B}(\pi) = l`:

  .. math::
     \ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(l)} \prod_{t} p_t(\pi_t),
     \qquad p_t = \operatorname{softmax}(x_t)

  computed with the forward recursion over the blank-interleaved labels in
  log space (a ``lax.scan`` over time); the gradient uses the forward and
  backward variables (a custom JVP, so forward and reverse mode both work).

  Same inputs and per-sequence values as ``optax.ctc_loss``, with these
  differences: the result is exact (no ``log_epsilon`` floor) and clamped at
  0 (rounding cannot make it negative; the gradient passes through
  unchanged); a sequence with no alignment at all (more labels, counting a
  blank between repeats, than valid frames, or labels whose logits are
  ``-inf``) gives ``+inf``, or 0 with ``zero_infinity=True`` (as in PyTorch),
  always with a zero gradient, never NaN (PyTorch's gradient is NaN there); and
  jaxobj reduces to the mean by default (``reduction="none"`` gives optax's
  output). The per-sequence values also equal PyTorch's
  ``F.ctc_loss(log_softmax(logits), ..., reduction="none")``; PyTorch's default
  ``reduction="mean"`` first divides each loss by its label length, which is
  ``jnp.mean(ctc_loss(..., reduction="none") / jnp.maximum(label_lengths, 1))``
  here, with ``label_lengths = jnp.sum(1 - label_paddings, axis=-1)``.

  Paddings follow optax: 1.0 marks a padded position (values above 0.5 count
  as padding). Padded frames and padded labels are skipped wherever they are
  (optax needs labels right-padded). Unpadded labels outside ``[0, K)`` or
  equal to ``blank_id`` give NaN.

  Args:
    logits: float array ``[..., T, K]`` (leading batch axes, frames, classes
      including the blank).
    logit_paddings: ``[..., T]``, 1.0 at padded frames.
    labels: integer array ``[..., S]`` (same batch axes).
    label_paddings: ``[..., S]``, 1.0 at padded labels.
    blank_id: the blank class (static int in ``[0, K)``).
    zero_infinity: give impossible alignments a loss of 0 instead of ``+inf``.
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over sequences (shape ``logits.shape[:-2]``).

  Returns:
    The reduced loss; per-sequence losses for ``reduction="none"``.

  Raises:
    ValueError: shapes that do not match (named, with both shapes) or
      ``blank_id`` outside ``[0, K)``.
    TypeError: integer ``logits``, floating ``labels``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> logits = jnp.zeros((1, 2, 3))  # 2 frames, uniform over {blank, a, b}
    >>> labels, label_pad = jnp.array([[1]]), jnp.zeros((1, 1))
    >>> loss = jaxobj.ctc_loss(logits, jnp.zeros((1, 2)), labels, label_pad)
    >>> print(round(float(loss), 4))  # 3 alignments (a_, _a, aa) of 9: -log(1/3)
    1.0986

  References:
    Graves et al., "Connectionist Temporal Classification: Labelling
    Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
  """
  x = checks.as_float(logits, "logits")
  if x.ndim < 2:
    raise ValueError(
      f"logits must have shape [..., T, K] (frames, classes), got logits.shape={x.shape}."
    )
  batch, (frames, classes) = x.shape[:-2], x.shape[-2:]
  logit_pad = _paddings(logit_paddings, "logit_paddings", "logits", x, -1)
  y = checks.as_labels(labels, "labels")
  if y.ndim < 1 or y.shape[:-1] != batch:
    raise ValueError(
      f"labels must have shape [..., S] with the batch axes of logits, got "
      f"labels.shape={y.shape} and logits.shape={x.shape} (batch axes {batch})."
    )
  label_pad = _paddings(label_paddings, "label_paddings", "labels", y, None)
  if not isinstance(blank_id, (int, np.integer)) or not 0 <= blank_id < classes:
    raise ValueError(
      f"blank_id must be an int in [0, {classes}) (a class of logits), got blank_id={blank_id!r}."
    )

  x = masked_fill(where, x, batch, axis_extra=2)
  frame_pad = masked_fill(where, logit_pad.astype(x.dtype), batch, axis_extra=1)
  y = masked_fill(where, y, batch, fill=blank_id, axis_extra=1)
  label_pad = masked_fill(where, label_pad.astype(x.dtype), batch, fill=1.0, axis_extra=1)

  n = int(np.prod(batch, dtype=np.int64))
  values = _ctc_values(
    x.reshape(n, frames, classes),
    frame_pad.reshape(n, frames),
    y.reshape(n, y.shape[-1]),
    label_pad.reshape(n, y.shape[-1]),
    zero_infinity,
    blank_id=int(blank_id),
  )
  return reduce_loss(values.reshape(batch), where=where, weights=weights, reduction=reduction)
