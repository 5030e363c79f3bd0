r"""Logit distillation: a student's token distributions matched to a teacher's.

:func:`logit_distillation_loss` compares ``softmax(teacher / T)`` with
``softmax(student / T)`` per row (per token) with the forward KL, the reverse
KL or the generalized Jensen–Shannon divergence of GKD;
:func:`fused_linear_distillation_loss` is the same loss of
``student_hidden @ student_kernel`` and ``teacher_hidden @ teacher_kernel``
computed without either ``[tokens, V]`` logits array. Both belong to the
distribution family.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, fused_linear, numerics
from jaxobj._src.examples import distillation as distillation_examples
from jaxobj._src.examples import distribution as distribution_examples
from jaxobj._src.numerics import relative_entropy, scale_logits
from jaxobj._src.reduce import (
  Reduced,
  masked_fill,
  reduce_loss,
  reduce_total,
  reduction_coefficients,
)
from jaxobj.registry import register

__all__ = ["fused_linear_distillation_loss", "logit_distillation_loss"]

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


# --------------------------------------------------------------------------
# The per-row divergences of the unfused loss (the fused one has a chunk form below).


def _log_mixture(log_p, log_q, beta):
  r""":math:`\log(\beta p + (1 - \beta) q)` from the log-probabilities.

  ``beta`` enters linearly (never through :math:`\log\beta`), so ``beta`` of
  exactly 0 or 1 gives the exact value and the exact gradient with respect to
  ``beta``. The shift is a constant for the gradient (the expression does not
  depend on it). Where both are ``-inf`` the result is ``-inf``; NaN propagates.
  """
  top = jax.lax.stop_gradient(jnp.maximum(log_p, log_q))
  top = jnp.where(jnp.isfinite(top), top, 0.0)
  mix = beta * jnp.exp(log_p - top) + (1.0 - beta) * jnp.exp(log_q - top)
  empty = mix == 0
  return jnp.where(empty, -jnp.inf, top + jnp.log(jnp.where(empty, 1.0, mix)))


def _divergence_rows(student, teacher, beta, temperature, divergence: str):
  """One divergence per row of ``[..., V]`` student and teacher logits (class axis last)."""
  log_q = jax.nn.log_softmax(scale_logits(student, temperature), axis=-1)
  log_p = jax.nn.log_softmax(scale_logits(teacher, temperature), axis=-1)
  if divergence == "forward_kl":
    return relative_entropy(jnp.exp(log_p), log_p, log_q)
  if divergence == "reverse_kl":
    return relative_entropy(jnp.exp(log_q), log_q, log_p)
  log_m = _log_mixture(log_p, log_q, beta)
  # A class the mixture gives no mass (only at beta = 0 or 1, where the other
  # distribution has none either) carries the weight 0: it contributes 0, the
  # limit of its term, instead of 0 * inf.
  reach = log_m != -jnp.inf
  p = jnp.where(reach, jnp.exp(log_p), 0.0)
  q = jnp.where(reach, jnp.exp(log_q), 0.0)
  return beta * relative_entropy(p, log_p, log_m) + (1.0 - beta) * relative_entropy(q, log_q, log_m)


def _check_hyperparameters(divergence, beta, temperature) -> None:
  checks.check_choice("divergence", divergence, DIVERGENCES)
  checks.check_range("beta", beta, low=0.0, high=1.0)
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)


# --------------------------------------------------------------------------
# The unfused loss.


@register("distribution", inputs=distribution_examples.LOGIT_PAIRS)
def logit_distillation_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  divergence: str = "jsd",
  beta: float | ArrayLike = 0.5,
  temperature: float | ArrayLike = 1.0,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Logit distillation: forward KL, reverse KL or generalized Jensen–Shannon (GKD).

  With :math:`p = \operatorname{softmax}(t / T)` the teacher's and
  :math:`q = \operatorname{softmax}(s / T)` the student's distribution of a
  row (a token):

  .. math::
     \mathrm{forward\_kl} = \mathrm{KL}(p \,\|\, q), \qquad
     \mathrm{reverse\_kl} = \mathrm{KL}(q \,\|\, p),

     \mathrm{jsd}_\beta = \beta\,\mathrm{KL}(p \,\|\, m)
       + (1 - \beta)\,\mathrm{KL}(q \,\|\, m), \qquad m = \beta p + (1 - \beta) q

  The forward KL is mass-covering (the student spreads over every token the
  teacher allows), the reverse KL mode-seeking; the generalized JSD of GKD
  (Agarwal et al.) interpolates: it is bounded (by :math:`h(\beta) \le
  \log 2`, the binary entropy), :math:`\mathrm{jsd}_{1/2}` is the usual
  Jensen–Shannon divergence, and for small :math:`\beta` it behaves like
  :math:`\beta\,\mathrm{KL}(p\,\|\,q)`, for :math:`\beta` near 1 like
  :math:`(1-\beta)\,\mathrm{KL}(q\,\|\,p)`.

  Conventions, against TRL's ``GKDTrainer.generalized_jsd_loss`` (which
  defines the same :math:`\beta` and :math:`m`, teacher first):

  * ``beta`` is the exact formula everywhere, its limits included:
    :math:`\mathrm{jsd}_0 = \mathrm{jsd}_1 = 0` (continuous and
    differentiable in ``beta``, with :math:`\partial/\partial\beta =
    \mathrm{KL}(p\|q)` at 0). TRL switches to the forward KL at
    ``beta=0`` and the reverse KL at ``beta=1`` instead (the limits of
    :math:`\mathrm{jsd}_\beta / \beta` and :math:`/(1-\beta)`): here ask for
    ``divergence="forward_kl"`` or ``"reverse_kl"``.
  * No :math:`T^2` factor, as in TRL and GKD. :func:`knowledge_distillation_loss`
    is :math:`T^2` times ``divergence="forward_kl"`` (Hinton et al.'s scaling,
    which keeps the gradient's size independent of :math:`T`); multiply by
    ``temperature**2`` for it.
  * The mean is over unmasked rows (tokens), which is TRL's ``"batchmean"``
    with ``labels`` (its sum over tokens and vocabulary divided by the
    number of unmasked tokens); pass ``where=labels != -100``.

  Classes at ``-inf`` (vocabulary masking) contribute 0 with finite
  gradients when both logits are ``-inf`` there; a class the teacher allows
  and the student rules out makes the forward KL :math:`+\infty` (the true
  value), while the JSD stays finite. Gradients flow into both logits: wrap
  ``teacher_logits`` in ``jax.lax.stop_gradient`` for a fixed teacher.

  Args:
    student_logits: float array ``[..., V]`` (class axis set by ``axis``).
    teacher_logits: float array, same shape.
    divergence: ``"jsd"`` (default), ``"forward_kl"`` or ``"reverse_kl"``
      (static).
    beta: :math:`\beta \in [0, 1]`, the teacher's share of the mixture
      (``"jsd"`` only; traceable, differentiable).
    temperature: :math:`T > 0` (traceable, differentiable).
    axis: the class axis (static).
    where: mask over the rows (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`); the
      mean divides by the number of unmasked rows (the sum of their weights).

  Returns:
    The reduced loss; one divergence per row for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, an unknown ``divergence``, ``beta`` outside
      [0, 1] or ``temperature <= 0`` (when concrete).
    TypeError: integer ``student_logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, t = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([[1.0, 1.0, -jnp.inf]])
    >>> print(round(float(jaxobj.logit_distillation_loss(s, t, beta=0.5)), 4))
    0.1022
    >>> print(round(float(jaxobj.logit_distillation_loss(s, t, divergence="forward_kl")), 4))
    0.4767

  References:
    Agarwal et al., "On-Policy Distillation of Language Models: Learning
    from Self-Generated Mistakes", ICLR 2024 (GKD, Eq. 1). Hinton, Vinyals
    and Dean, "Distilling the Knowledge in a Neural Network", 2015. Gu et
    al., "MiniLLM: Knowledge Distillation of Large Language Models", ICLR
    2024 (reverse KL).
  """
  _check_hyperparameters(divergence, beta, temperature)
  s = checks.as_float(student_logits, "student_logits")
  checks.check_same_shape("student_logits", s, "teacher_logits", teacher_logits)
  if s.ndim < 1:
    raise ValueError(
      "student_logits must have a class axis, got a scalar; pass arrays of shape [..., V]."
    )
  t = checks.as_target(teacher_logits, "teacher_logits", s)
  s, t = jnp.moveaxis(s, axis, -1), jnp.moveaxis(t, axis, -1)
  shape = s.shape[:-1]
  # Masked rows become two uniform distributions: every term there is finite.
  s = masked_fill(where, s, shape, axis_extra=1)
  t = masked_fill(where, t, shape, axis_extra=1)
  values = _divergence_rows(s, t, beta, temperature, divergence)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# The fused loss: neither model's logits are ever formed whole.


class _ChunkDivergence(NamedTuple):
  """The engine's per-token function: the divergence between one chunk's
  student and teacher logits, soft-capped first when ``soft_cap``. A
  hashable value, so every call with the same options shares one compile."""

  divergence: str
  soft_cap: bool

  def __call__(self, logits, aux, hyper):
    student, teacher = logits
    beta, temperature, cap = hyper
    if self.soft_cap:  # the logits of a matmul are finite: no -inf to keep
      student = cap * jnp.tanh(student / cap)
      teacher = cap * jnp.tanh(teacher / cap)
    return (_chunk_rows(student, teacher, beta, temperature, self.divergence),)


def _chunk_terms(student, teacher, temperature, lse_s, lse_t):
  """Log-probabilities and probabilities of a chunk's finite ``[n, V]`` logits."""
  log_q = student / temperature - lse_s[:, None]
  log_p = teacher / temperature - lse_t[:, None]
  return log_q, log_p, jnp.exp(log_q), jnp.exp(log_p)


def _chunk_log_mixture(log_p, log_q, beta):
  """``log m`` of finite log-probabilities without a select: one of the two
  shifted terms is 1, so the sum only underflows at ``beta`` of exactly 0 or
  1, where the clamp keeps the zero-weight term finite (its weight makes it
  0, the limit). Few selects let XLA fuse each reduction with its inputs."""
  top = jnp.maximum(log_p, log_q)
  mix = beta * jnp.exp(log_p - top) + (1.0 - beta) * jnp.exp(log_q - top)
  return top + jnp.log(jnp.maximum(mix, jnp.finfo(mix.dtype).tiny))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _chunk_rows(student, teacher, beta, temperature, divergence: str):
  r"""Per-row divergences of one chunk's finite logits, with a closed-form vjp.

  The same values as :func:`_divergence_rows`, but the backward pass keeps
  only the logits (which the engine holds anyway) and per-row scalars, and
  forms each gradient in one pass over the chunk: with :math:`x = z / T`,

  * forward KL :math:`F`: :math:`\partial/\partial x_s = q - p`,
    :math:`\partial/\partial x_t = p\,(\log p - \log q - F)`;
  * reverse KL :math:`R`: :math:`q\,(\log q - \log p - R)` and :math:`p - q`;
  * JSD :math:`\beta K_p + (1-\beta) K_q` with :math:`K_p = KL(p\|m)`,
    :math:`K_q = KL(q\|m)`: :math:`(1-\beta)\,q\,(\log q - \log m - K_q)`,
    :math:`\beta\,p\,(\log p - \log m - K_p)`, and
    :math:`\partial/\partial\beta = K_p - K_q`;

  and :math:`\partial/\partial T = -\sum_k (g_{s,k} \log q_k + g_{t,k}
  \log p_k) / T` (each softmax gradient sums to 0 over the classes, so the
  log-probabilities stand in for :math:`x`). Autodiff of the forward would
  keep a dozen ``[n, V]`` residuals instead.
  """
  return _chunk_rows_fwd(student, teacher, beta, temperature, divergence)[0]


def _chunk_rows_fwd(student, teacher, beta, temperature, divergence):
  lse_s = jax.nn.logsumexp(student / temperature, axis=-1)
  lse_t = jax.nn.logsumexp(teacher / temperature, axis=-1)
  log_q, log_p, q, p = _chunk_terms(student, teacher, temperature, lse_s, lse_t)
  if divergence == "forward_kl":
    stats = (jnp.sum(p * (log_p - log_q), axis=-1),)
    values = stats[0]
  elif divergence == "reverse_kl":
    stats = (jnp.sum(q * (log_q - log_p), axis=-1),)
    values = stats[0]
  else:
    log_m = _chunk_log_mixture(log_p, log_q, beta)
    stats = (jnp.sum(p * (log_p - log_m), axis=-1), jnp.sum(q * (log_q - log_m), axis=-1))
    values = beta * stats[0] + (1.0 - beta) * stats[1]
  return values, (student, teacher, beta, temperature, lse_s, lse_t, stats)


def _chunk_rows_bwd(divergence, res, ct):
  student, teacher, beta, temperature, lse_s, lse_t, stats = res
  log_q, log_p, q, p = _chunk_terms(student, teacher, temperature, lse_s, lse_t)
  c = ct[:, None]
  d_beta = jnp.zeros_like(beta)
  if divergence == "forward_kl":
    g_s = c * (q - p)
    g_t = c * p * (log_p - log_q - stats[0][:, None])
  elif divergence == "reverse_kl":
    g_s = c * q * (log_q - log_p - stats[0][:, None])
    g_t = c * (p - q)
  else:
    log_m = _chunk_log_mixture(log_p, log_q, beta)
    g_s = c * (1.0 - beta) * q * (log_q - log_m - stats[1][:, None])
    g_t = c * beta * p * (log_p - log_m - stats[0][:, None])
    d_beta = jnp.sum(ct * (stats[0] - stats[1])).astype(d_beta.dtype)
  d_temperature = -jnp.sum(g_s * log_q + g_t * log_p) / temperature
  return g_s / temperature, g_t / temperature, d_beta, d_temperature.astype(temperature.dtype)


_chunk_rows.defvjp(_chunk_rows_fwd, _chunk_rows_bwd)


def _check_projection(hidden, kernel, names):
  h = checks.as_float(hidden, names[0])
  w = checks.as_float(kernel, names[1])
  if h.ndim < 1:
    raise ValueError(f"{names[0]} must be [..., D] with a feature axis, got a scalar.")
  if w.ndim != 2 or w.shape[0] != h.shape[-1]:
    raise ValueError(
      f"{names[1]} must be [D, V] with D = {names[0]}.shape[-1] = {h.shape[-1]}, got "
      f"{names[1]}.shape={w.shape}; the logits are {names[0]} @ {names[1]} (transpose a "
      f"[V, D] embedding table)."
    )
  return h, w


@register("distribution", inputs=distillation_examples.HIDDEN_PAIRS)
def fused_linear_distillation_loss(
  student_hidden: ArrayLike,
  teacher_hidden: ArrayLike,
  student_kernel: ArrayLike,
  teacher_kernel: ArrayLike,
  *,
  divergence: str = "jsd",
  beta: float | ArrayLike = 0.5,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`logit_distillation_loss` of two projections, without either model's logits.

  The value is ``logit_distillation_loss(cap(student_hidden @ student_kernel),
  cap(teacher_hidden @ teacher_kernel), ...)`` with the same divergence,
  ``beta``, ``temperature``, masks, weights and reductions, where
  :math:`\mathrm{cap}(z) = c \tanh(z / c)` when ``logit_soft_cap`` :math:`c`
  is given (the identity otherwise; the same cap for both models, applied
  before the temperature):

  .. math::
     s_t = \mathrm{cap}(h^S_t W^S), \quad x_t = \mathrm{cap}(h^T_t W^T), \qquad
     \ell_t = D_\beta\big(\operatorname{softmax}(x_t / T),\,
       \operatorname{softmax}(s_t / T)\big)

  with :math:`D_\beta` the forward KL, the reverse KL or the generalized
  Jensen–Shannon divergence (see :func:`logit_distillation_loss` for the
  formulas and conventions: no :math:`T^2` factor, exact limits at
  :math:`\beta = 0, 1`). The teacher may have another hidden size:
  ``teacher_kernel`` is ``[D_T, V]``, ``student_kernel`` ``[D_S, V]``.

  Neither ``[tokens, V]`` logits array is stored: tokens are processed in
  chunks of ``token_block``, each chunk's two logits are formed, used and
  dropped, and the gradients with respect to both hidden states, both
  kernels, ``beta``, ``temperature`` and ``logit_soft_cap`` are accumulated
  chunk by chunk inside a ``jax.custom_vjp``. A teacher under
  ``jax.lax.stop_gradient`` (its hidden states and kernel) gets no backward
  matmuls at all.

  Cost. For ``"mean"``, ``"sum"`` and ``"sum_and_count"`` the forward pass of
  ``jax.grad`` forms the gradients in the same sweep: value and gradient cost
  :math:`2 N V (3 D_S + D_T)` FLOPs with a frozen teacher, as the unfused
  loss does. ``reduction="none"`` recomputes each chunk in the backward pass.
  Memory: a few ``[token_block, V]`` buffers per model; by default
  ``token_block`` keeps each near 4 MiB in float32 whatever ``V``, so memory
  does not grow with the number of tokens and barely with ``V``.

  Args:
    student_hidden: float array ``[..., D_S]``, the inputs of the student's
      output projection.
    teacher_hidden: float array ``[..., D_T]`` with the same leading (token)
      axes.
    student_kernel: float array ``[D_S, V]``.
    teacher_kernel: float array ``[D_T, V]``, the same vocabulary.
    divergence, beta, temperature: as in :func:`logit_distillation_loss`
      (traceable, differentiable).
    logit_soft_cap: :math:`c > 0` applied to both models' logits, or None
      (traceable when given).
    where: mask over the tokens, shape ``student_hidden.shape[:-1]`` (padding,
      prompt tokens); a masked token contributes 0 with zero gradients.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`) over
      tokens; the mean divides by the number of unmasked tokens.
    token_block: tokens per chunk (default: automatic, see above). Any
      positive integer works; the last chunk may be smaller.
    vocab_block: columns of a kernel's gradient updated at a time.

  Returns:
    The reduced loss; per-token divergences ``student_hidden.shape[:-1]`` for
    ``reduction="none"``.

  Raises:
    ValueError: token axes that differ, a kernel that is not ``[D, V]`` for
      its hidden states, kernels with different vocabularies, bad blocks, or
      the errors of :func:`logit_distillation_loss`.
    TypeError: integer hidden states or kernels.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> hs = jnp.sin(jnp.arange(80.0)).reshape(2, 5, 8)  # student: [batch, tokens, 8]
    >>> ht = jnp.cos(jnp.arange(120.0)).reshape(2, 5, 12)  # teacher: [batch, tokens, 12]
    >>> ws = jnp.sin(0.7 * jnp.arange(88.0)).reshape(8, 11)  # [D_S, V]
    >>> wt = jax.lax.stop_gradient(jnp.cos(0.3 * jnp.arange(132.0)).reshape(12, 11))  # frozen
    >>> fused = jaxobj.fused_linear_distillation_loss(hs, ht, ws, wt, token_block=4)
    >>> unfused = jaxobj.logit_distillation_loss(hs @ ws, ht @ wt)
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Agarwal et al., "On-Policy Distillation of Language Models: Learning
    from Self-Generated Mistakes", ICLR 2024. Hsu et al., "Liger Kernel:
    Efficient Triton Kernels for LLM Training", 2024 (chunked fused-linear
    distillation). Wijmans et al., "Cut Your Losses in Large-Vocabulary
    Language Models", ICLR 2025.
  """
  checks.check_reduction(reduction)
  _check_hyperparameters(divergence, beta, temperature)
  checks.check_range("logit_soft_cap", logit_soft_cap, low=0.0, low_inclusive=False)
  fused_linear.check_blocks(token_block, vocab_block)
  s_shape, t_shape = jnp.shape(student_hidden), jnp.shape(teacher_hidden)
  if s_shape[:-1] != t_shape[:-1]:
    raise ValueError(
      f"student_hidden and teacher_hidden must have the same token axes, got "
      f"student_hidden.shape={s_shape} and teacher_hidden.shape={t_shape}; pass the two "
      f"models' hidden states for the same tokens (only the last axis may differ)."
    )
  hs, ws = _check_projection(student_hidden, student_kernel, ("student_hidden", "student_kernel"))
  ht, wt = _check_projection(teacher_hidden, teacher_kernel, ("teacher_hidden", "teacher_kernel"))
  if ws.shape[1] != wt.shape[1]:
    raise ValueError(
      f"student_kernel and teacher_kernel must have the same vocabulary V, got "
      f"student_kernel.shape={ws.shape} and teacher_kernel.shape={wt.shape}."
    )
  shape = hs.shape[:-1]
  mask = None if where is None else checks.as_mask(where, shape)
  # Masked tokens get zero hidden states: two uniform distributions, a
  # finite divergence of 0 whatever the inputs were.
  hs = masked_fill(mask, hs, shape, axis_extra=1)
  ht = masked_fill(mask, ht, shape, axis_extra=1)
  dtype = fused_linear.compute_dtype(hs, ht, ws, wt)
  hyper = tuple(
    jnp.asarray(v, dtype)
    for v in (beta, temperature, 1.0 if logit_soft_cap is None else logit_soft_cap)
  )
  fn = _ChunkDivergence(divergence, logit_soft_cap is not None)
  vocab = ws.shape[1]
  blocks = fused_linear.default_blocks((ws.shape[0], wt.shape[0]), vocab, token_block, vocab_block)
  hs2, ht2 = hs.reshape(-1, hs.shape[-1]), ht.reshape(-1, ht.shape[-1])
  # Inside shard_map: every input of the custom_vjp varies like the tokens, so
  # the cotangents of replicated ones (the kernels) are summed over devices.
  hs2, ht2, ws, wt, hyper = numerics.vary_like((hs2, ht2, ws, wt, hyper), hs2, ht2, mask, weights)
  if reduction == "none":
    (values,) = fused_linear.token_outputs(fn, (hs2, ht2), (ws, wt), (), hyper, blocks)
    return reduce_loss(values.reshape(shape), where=mask, weights=weights, reduction="none")

  # The reduction as per-token coefficients: exactly what reduce_loss multiplies
  # each value by before summing, and whose sum is its denominator.
  coef = reduction_coefficients(mask, weights, shape, dtype)
  coef = numerics.vary_like(coef.reshape(-1), hs2)
  total = fused_linear.weighted_total(fn, (hs2, ht2), (ws, wt), (), hyper, coef, blocks)
  return reduce_total(total, jnp.sum(coef), reduction)
