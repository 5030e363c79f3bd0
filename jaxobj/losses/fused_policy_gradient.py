r"""The clipped policy-gradient loss of ``hidden @ kernel`` without the ``[tokens, V]`` logits.

:func:`fused_linear_policy_gradient_loss` is :func:`jaxobj.policy_gradient_loss`
(GRPO, DAPO, Dr. GRPO, GSPO, PPO-clip, CISPO) whose policy log-probabilities
(and entropies, for the entropy bonus) come from the policy's last hidden
states and output kernel through the chunked fused-linear engine
(:func:`jaxobj.losses.sequence.fused_linear_token_log_probs`): the logits
exist one chunk of tokens at a time, and memory does not grow with the
vocabulary.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, fused_linear, numerics
from jaxobj._src import policy_gradient as token_math
from jaxobj._src.examples import fused as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_total
from jaxobj.losses.policy_gradient import policy_gradient_loss
from jaxobj.losses.sequence import fused_linear_token_log_probs
from jaxobj.registry import register

__all__ = ["fused_linear_policy_gradient_loss"]


class _TokenLoss(NamedTuple):
  """The engine's per-token function: the clipped policy-gradient loss of one
  token (with its KL and entropy terms) from one chunk's logits, the formula
  of :func:`jaxobj.policy_gradient_loss` for token-level ratios."""

  soft_cap: bool
  cispo: bool
  delta: bool
  reference: bool
  entropy: bool
  kl_estimator: str

  def __call__(self, logits, aux, hyper):
    (z,) = logits
    y, old, adv, ref = aux
    temperature, cap, eps, eps_high, delta, beta, entropy_coef = hyper
    x, lse, lp = fused_linear.scaled_log_probs(z, y, temperature, cap, self.soft_cap)
    values = token_math.clipped_token_loss(
      lp - old, lp, adv, eps, eps_high, delta if self.delta else None, cispo=self.cispo
    )
    if self.reference:
      values = values + beta * token_math.kl_estimate(ref - lp, self.kl_estimator)
    if self.entropy:
      values = values - entropy_coef * fused_linear.entropies(x, lse)
    return (values,)


@register("policy_gradient", inputs=examples.COMPLETIONS)
def fused_linear_policy_gradient_loss(
  hidden: ArrayLike,
  targets: ArrayLike,
  old_logps: ArrayLike,
  advantages: ArrayLike,
  reference_logps: ArrayLike | None,
  kernel: ArrayLike,
  *,
  loss_type: str = "grpo",
  epsilon: float | ArrayLike = 0.2,
  epsilon_high: float | ArrayLike | None = None,
  delta: float | ArrayLike | None = None,
  importance_sampling_level: str = "token",
  beta: float | ArrayLike = 0.0,
  kl_estimator: str = "k3",
  entropy_coef: float | ArrayLike | None = None,
  max_completion_length: int | None = None,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`jaxobj.policy_gradient_loss` of the policy ``hidden @ kernel``, without the logits.

  .. math::
     \log\pi_\theta(y_{i,t}) = \log\operatorname{softmax}
       \big(c\tanh(h_{i,t} W / c) / \tau\big)_{y_{i,t}}, \qquad
     \ell = \operatorname{pg}\big(\log\pi_\theta, \log\pi_{\mathrm{old}}, A,
       \log\pi_{\mathrm{ref}}, H\big)

  with every option of :func:`jaxobj.policy_gradient_loss` (clipped
  surrogate with asymmetric clipping and TRL's ``delta``, token or sequence
  importance ratios, the KL penalty with ``k1``/``k2``/``k3``, the entropy
  bonus, and the ``grpo``, ``bnpo``/``dapo``, ``dr_grpo`` and ``cispo``
  aggregations, exact under microbatching and sharding through
  ``reduction="sum_and_count"``). Values and gradients (with respect to
  ``hidden``, ``kernel``, ``temperature``, ``logit_soft_cap`` and the
  loss's traceable hyperparameters) equal ``policy_gradient_loss`` of the
  per-token log-probabilities of the full logits. With ``entropy_coef``
  the per-token entropies :math:`H` of the same distributions come from the
  same sweep.

  **Tokens.** ``targets`` holds the sampled tokens; prompt and padding
  positions are ``ignore_index`` (default -100) and form the complement of
  TRL's ``completion_mask``. ``old_logps`` (and ``reference_logps``) there
  are ignored, whatever their values. For a causal LM pass the hidden states
  of positions ``:-1`` and the tokens ``1:``.

  **Old and reference log-probabilities** are inputs (the behaviour policy's
  are usually stored at sampling time). From a model's own hidden states and
  kernel, fused and without gradients:
  ``fused_linear_token_log_probs(jax.lax.stop_gradient(ref_hidden), targets,
  jax.lax.stop_gradient(ref_kernel))``
  (:func:`jaxobj.losses.sequence.fused_linear_token_log_probs`; only its
  forward sweep runs). For a fully on-policy step pass
  ``jax.lax.stop_gradient`` of the policy's own.

  Memory: one chunk of ``[token_block, V]`` logits (about 8 MiB by default)
  plus the gradients' accumulators, whatever the vocabulary. Cost: with
  token-level ratios and ``reduction`` ``"mean"``, ``"sum"`` or
  ``"sum_and_count"``, every aggregation is a sum of per-token losses with
  coefficients known up front, so the per-token loss is computed from each
  chunk's logits and its gradient formed in the same sweep: :math:`6NDV`
  FLOPs for value and gradient, as many as the unfused loss. Sequence-level
  ratios (GSPO) and ``reduction="none"`` go through the per-token
  log-probabilities: :math:`2NDV` forward and :math:`6NDV` backward.

  Args:
    hidden: float ``[..., T, D]``, the policy's last hidden states at the
      positions that predict each completion token.
    targets: integer ``[..., T]``, the sampled tokens (``ignore_index``: not
      counted).
    old_logps: float ``[..., T]``, :math:`\log\pi_{\mathrm{old}}` of each
      token under the behaviour policy.
    advantages: float ``[...]`` (one per completion) or ``[..., T]`` (one per token).
    reference_logps: float ``[..., T]``, the reference model's per-token
      log-probabilities, or None (then ``beta`` must be 0). Positional, as in
      :func:`jaxobj.policy_gradient_loss`, so that every per-row input comes
      before the shared kernel.
    kernel: float ``[D, V]``, the policy's output projection.
    loss_type, epsilon, epsilon_high, delta, importance_sampling_level,
      beta, kl_estimator, max_completion_length: as in
      :func:`jaxobj.policy_gradient_loss` (``max_completion_length``
      defaults to ``T``).
    entropy_coef: the entropy bonus :math:`c` (traceable); None: no bonus
      and no entropy computed.
    temperature: :math:`\tau > 0` dividing the logits, the sampling
      temperature (traceable).
    logit_soft_cap: :math:`c > 0` or None (traceable).
    ignore_index: target id of the tokens that do not count (None: none).
    where, weights, reduction: the loss contract over completions, with the
      denominators of :func:`jaxobj.policy_gradient_loss`.
    token_block, vocab_block: chunk sizes, as in
      :func:`jaxobj.fused_linear_cross_entropy` (default: automatic).

  Returns:
    The reduced loss; per-completion contributions ``[...]`` for
    ``reduction="none"``; ``(sum, count)`` for ``"sum_and_count"``.

  Raises:
    ValueError: mismatched shapes (named), a kernel that is not ``[D, V]``,
      concrete targets outside ``[0, V)`` where they count, or the errors of
      :func:`jaxobj.policy_gradient_loss`.
    TypeError: integer hidden states, log-probabilities or kernel, floating targets.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.sequence import fused_linear_token_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 3)
    >>> h, kernel = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (8, 11))
    >>> y = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> old = fused_linear_token_log_probs(h, y, kernel) + 0.1
    >>> adv = jnp.array([1.0, -0.5])
    >>> fused = jaxobj.fused_linear_policy_gradient_loss(h, y, old, adv, None, kernel,
    ...                                                  loss_type="dapo")
    >>> logits = jax.nn.log_softmax(h @ kernel)
    >>> lp = jnp.take_along_axis(logits, jnp.maximum(y, 0)[..., None], -1)[..., 0]
    >>> unfused = jaxobj.policy_gradient_loss(lp, old, adv, completion_mask=y >= 0,
    ...                                       loss_type="dapo")
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Schulman et al., "Proximal Policy Optimization Algorithms", 2017; Shao
    et al., "DeepSeekMath", 2024 (GRPO); Yu et al., "DAPO", 2025; Liu et al.,
    "Understanding R1-Zero-Like Training", 2025 (Dr. GRPO); Zheng et al.,
    "Group Sequence Policy Optimization", 2025; Hsu et al., "Liger Kernel:
    Efficient Triton Kernels for LLM Training", 2024 (fused-linear GRPO).
  """
  checks.check_reduction(reduction)
  h = checks.as_float(hidden, "hidden")
  y = checks.as_labels(targets, "targets")
  w = checks.as_float(kernel, "kernel")
  checks.check_label_shape("hidden", h, "targets", y)
  if y.ndim < 1:
    raise ValueError(
      f"targets must have a token axis, got targets.shape={y.shape}; expected (..., T) "
      f"with hidden (..., T, D)."
    )
  if w.ndim != 2 or w.shape[0] != h.shape[-1]:
    raise ValueError(
      f"kernel must be [D, V] with D = hidden.shape[-1] = {h.shape[-1]}, got "
      f"kernel.shape={w.shape}; the logits are hidden @ kernel (transpose a [V, D] "
      f"embedding table)."
    )
  checks.check_same_shape("targets", y, "old_logps", old_logps)
  if reference_logps is not None:
    checks.check_same_shape("targets", y, "reference_logps", reference_logps)
  rows = y.shape[:-1]
  mask = None
  if where is not None:
    mask = jnp.broadcast_to(checks.as_mask(where, rows)[..., None], y.shape)
  if ignore_index is not None:
    keep = y != ignore_index
    mask = keep if mask is None else mask & keep
  checks.check_labels_in_vocab(
    "targets",
    y,
    mask,
    w.shape[1],
    "mark prompt and padding tokens with ignore_index (default -100) or mask the row with where=.",
  )
  # policy_gradient_loss with every option but its per-token inputs.
  loss = functools.partial(
    policy_gradient_loss,
    old_logps=old_logps,
    advantages=advantages,
    reference_logps=reference_logps,
    completion_mask=mask,
    loss_type=loss_type,
    epsilon=epsilon,
    epsilon_high=epsilon_high,
    delta=delta,
    importance_sampling_level=importance_sampling_level,
    beta=beta,
    kl_estimator=kl_estimator,
    entropy_coef=entropy_coef,
    max_completion_length=max_completion_length,
    where=where,
    weights=weights,
    reduction=reduction,
  )
  if reduction != "none" and importance_sampling_level == "token":
    # The value and gradient in one sweep: validate as the loss would, then
    # sum the per-token losses with their known coefficients.
    lp_shape = jax.ShapeDtypeStruct(y.shape, fused_linear.compute_dtype(h, w))
    jax.eval_shape(lambda lp: loss(lp, entropy=None if entropy_coef is None else lp), lp_shape)
    return _one_sweep(
      h,
      y,
      w,
      old_logps,
      advantages,
      reference_logps,
      mask,
      loss_type=loss_type,
      epsilon=epsilon,
      epsilon_high=epsilon_high,
      delta=delta,
      beta=beta,
      kl_estimator=kl_estimator,
      entropy_coef=entropy_coef,
      max_completion_length=max_completion_length,
      temperature=temperature,
      logit_soft_cap=logit_soft_cap,
      where=where,
      weights=weights,
      reduction=reduction,
      token_block=token_block,
      vocab_block=vocab_block,
    )
  out = fused_linear_token_log_probs(
    h,
    y,
    w,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=None,
    where=mask,
    entropy=entropy_coef is not None,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  logps, entropy = out if isinstance(out, tuple) else (out, None)
  return loss(logps, entropy=entropy)


def _one_sweep(
  h,
  y,
  w,
  old_logps,
  advantages,
  reference_logps,
  mask,
  *,
  loss_type,
  epsilon,
  epsilon_high,
  delta,
  beta,
  kl_estimator,
  entropy_coef,
  max_completion_length,
  temperature,
  logit_soft_cap,
  where,
  weights,
  reduction,
  token_block,
  vocab_block,
) -> Reduced:
  """The reduced loss for token-level ratios, its gradient formed in the forward sweep.

  Every aggregation is a sum of per-token losses with coefficients known up
  front (the completion's weight, over its token count for ``grpo`` or over
  ``L`` for ``dr_grpo``), so the engine's ``weighted_total`` applies: 6 N·D·V
  FLOPs for value and gradient instead of 8.
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  checks.check_range("logit_soft_cap", logit_soft_cap, low=0.0, low_inclusive=False)
  fused_linear.check_blocks(token_block, vocab_block)
  shape = y.shape
  rows, length = shape[:-1], shape[-1]
  old = checks.as_float(old_logps, "old_logps")
  adv = checks.as_float(advantages, "advantages")
  floats = [h, w, old, adv]
  ref = None
  if reference_logps is not None:
    ref = checks.as_float(reference_logps, "reference_logps")
    floats.append(ref)
  dtype = fused_linear.compute_dtype(*floats)
  tokens = jnp.ones(shape, bool) if mask is None else mask
  n = jnp.sum(tokens, axis=-1, dtype=dtype)
  v = jnp.ones(rows, dtype)
  if weights is not None:
    v = jnp.broadcast_to(checks.as_float(weights, "weights"), rows).astype(dtype)
  if where is not None:
    v = jnp.where(jnp.broadcast_to(checks.as_mask(where, rows), rows), v, 0.0)
  if loss_type == "grpo":
    per_row, count = v / jnp.maximum(n, 1.0), jnp.sum(v)
  elif loss_type == "dr_grpo":
    norm = length if max_completion_length is None else max_completion_length
    per_row, count = v / max(norm, 1), jnp.sum(v)
  else:  # a token mean over the batch
    per_row, count = v, jnp.sum(v * n)
  coef = jnp.where(tokens, per_row[..., None], 0.0)

  # Masked tokens get finite harmless inputs: their coefficient is 0, and a
  # NaN there would turn the zero cotangent into NaN.
  def per_token(x):
    x = jnp.broadcast_to(x[..., None], shape) if x.shape == rows else x
    return jnp.where(tokens, x.astype(dtype), 0.0).reshape(-1)

  dim, vocab = w.shape
  h2 = masked_fill(tokens, h, shape, axis_extra=1).reshape(-1, dim)
  y2 = jnp.where(tokens, y, 0).reshape(-1)
  aux = (
    y2,
    per_token(old),
    per_token(adv),
    per_token(jnp.zeros(shape, dtype) if ref is None else ref),
  )
  eps_high = epsilon if epsilon_high is None else epsilon_high
  hyper = tuple(
    jnp.asarray(x, dtype)
    for x in (
      temperature,
      1.0 if logit_soft_cap is None else logit_soft_cap,
      epsilon,
      eps_high,
      1.0 if delta is None else delta,
      beta,
      0.0 if entropy_coef is None else entropy_coef,
    )
  )
  fn = _TokenLoss(
    soft_cap=logit_soft_cap is not None,
    cispo=loss_type == "cispo",
    delta=delta is not None,
    reference=ref is not None,
    entropy=entropy_coef is not None,
    kl_estimator=kl_estimator,
  )
  blocks = fused_linear.default_blocks((dim,), vocab, token_block, vocab_block)
  # Inside shard_map: a replicated kernel's cotangent is summed over devices.
  h2, aux, w, hyper = numerics.vary_like((h2, aux, w, hyper), h2, y2, tokens)
  coef = numerics.vary_like(coef.reshape(-1), h2)
  total = fused_linear.weighted_total(fn, (h2,), (w,), aux, hyper, coef, blocks)
  return reduce_total(total, count, reduction)
