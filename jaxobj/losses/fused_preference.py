r"""Preference losses of ``hidden @ kernel`` without the ``[tokens, V]`` logits.

Each loss here is a preference loss of :mod:`jaxobj.losses.preference` applied
to sequence log-probabilities that are computed from the policy's last hidden
states and its output kernel by the chunked fused-linear engine
(:func:`jaxobj.losses.sequence.fused_linear_token_log_probs`): the logits
exist one chunk of tokens at a time, the gradients with respect to the hidden
states, the kernel, ``temperature`` and ``logit_soft_cap`` are accumulated
chunk by chunk, and memory does not grow with the vocabulary. The chosen and
rejected answers (which may differ in length) go through the engine in one
sweep.

One row is one preference pair (one answer for KTO): ``where`` and ``weights``
index rows, and a masked row is exactly a row sliced out. Within a row,
target ``ignore_index`` (default -100) marks prompt and padding tokens. For a
causal LM, pass the hidden states of positions ``:-1`` and the tokens
``1:``.

The reference model's log-probabilities are inputs. Computed fused from its
own hidden states and kernel, without gradients::

  ref = fused_linear_sequence_log_probs(
    jax.lax.stop_gradient(ref_hidden), targets, jax.lax.stop_gradient(ref_kernel)
  )

(:func:`jaxobj.losses.sequence.fused_linear_sequence_log_probs`; only its
forward sweep runs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import fused as examples
from jaxobj._src.reduce import Reduced, reduce_loss
from jaxobj.losses.preference import (
  DPO_LOSS_TYPES,
  dpo_loss,
  kto_loss,
  orpo_odds_ratio_loss,
  simpo_loss,
)
from jaxobj.losses.sequence import fused_linear_token_log_probs
from jaxobj.registry import register

__all__ = [
  "fused_linear_cpo_loss",
  "fused_linear_dpo_loss",
  "fused_linear_kto_loss",
  "fused_linear_orpo_loss",
  "fused_linear_simpo_loss",
]

CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "simpo")


# --------------------------------------------------------------------------
# Shared preparation: one engine sweep over every answer of the batch.


def _answers(
  answers, kernel, *, where, temperature, logit_soft_cap, ignore_index, token_block, vocab_block
):
  """Summed log-probabilities and token counts of each group of answers.

  ``answers`` is a list of ``(hidden_name, hidden, targets_name, targets)``
  groups with one row shape. Their tokens are flattened and concatenated into
  one call of the engine; ``where`` (per row) and ``ignore_index`` (per
  token) mark what counts. Returns ``(rows, [(sums, counts), ...])``.
  """
  w = checks.as_float(kernel, "kernel")
  prepared = []
  rows = None
  first = None
  for h_name, hidden, y_name, targets in answers:
    h = checks.as_float(hidden, h_name)
    y = checks.as_labels(targets, y_name)
    checks.check_label_shape(h_name, h, y_name, y)
    if y.ndim < 1:
      raise ValueError(
        f"{y_name} must have a sequence axis, got {y_name}.shape={y.shape}; expected "
        f"(..., T) with {h_name} (..., T, D)."
      )
    if w.ndim != 2 or w.shape[0] != h.shape[-1]:
      raise ValueError(
        f"kernel must be [D, V] with D = {h_name}.shape[-1] = {h.shape[-1]}, got "
        f"kernel.shape={w.shape}; the logits are hidden @ kernel (transpose a [V, D] "
        f"embedding table)."
      )
    if rows is None:
      rows, first = y.shape[:-1], y_name
    elif y.shape[:-1] != rows:
      raise ValueError(
        f"{y_name}.shape[:-1] must equal {first}.shape[:-1] (one answer of each kind "
        f"per row), got {y_name}.shape={y.shape} and {first}.shape[:-1]={rows}; pad "
        f"the shorter answers with ignore_index instead."
      )
    prepared.append((y_name, h, y))
  assert rows is not None
  row_mask = None if where is None else checks.as_mask(where, rows)
  vocab = w.shape[1]
  hs, ys, masks = [], [], []
  for y_name, h, y in prepared:
    mask = None
    if row_mask is not None:
      mask = jnp.broadcast_to(row_mask[..., None], y.shape)
    if ignore_index is not None:
      keep = y != ignore_index
      mask = keep if mask is None else mask & keep
    checks.check_labels_in_vocab(
      y_name,
      y,
      mask,
      vocab,
      "mark prompt and padding tokens with ignore_index (default -100) or mask the row "
      "with where=.",
    )
    hs.append(h.reshape(-1, h.shape[-1]))
    ys.append(y.reshape(-1))
    masks.append(jnp.ones(y.shape, bool) if mask is None else mask)
  any_mask = row_mask is not None or ignore_index is not None
  flat_mask = jnp.concatenate([m.reshape(-1) for m in masks]) if any_mask else None
  token_logps = fused_linear_token_log_probs(
    jnp.concatenate(hs) if len(hs) > 1 else hs[0],
    jnp.concatenate(ys) if len(ys) > 1 else ys[0],
    w,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=None,
    where=flat_mask,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  assert isinstance(token_logps, jax.Array)
  out = []
  start = 0
  for (_, _, y), mask in zip(prepared, masks):
    size = int(np.prod(y.shape, dtype=np.int64))
    lp = token_logps[start : start + size].reshape(y.shape)
    start += size
    out.append((jnp.sum(lp, axis=-1), jnp.sum(mask, axis=-1, dtype=lp.dtype)))
  return rows, out


def _average(sums, counts):
  """Length-averaged log-probabilities; an answer with no counted token has 0."""
  return sums / jnp.maximum(counts, 1.0)


def _pair(chosen_hidden, chosen_targets, rejected_hidden, rejected_targets, kernel, **kw):
  return _answers(
    [
      ("chosen_hidden", chosen_hidden, "chosen_targets", chosen_targets),
      ("rejected_hidden", rejected_hidden, "rejected_targets", rejected_targets),
    ],
    kernel,
    **kw,
  )


def _per_row(name, value, rows, like_name):
  """A per-row float input of the row shape (``targets.shape[:-1]``)."""
  x = checks.as_float(value, name)
  if x.shape != rows:
    raise ValueError(
      f"{name} must have one value per row, shape {like_name}.shape[:-1] = {rows}, got "
      f"{name}.shape={x.shape}; pass per-sequence log-probabilities (e.g. from "
      f"fused_linear_sequence_log_probs), not per-token ones."
    )
  return x


# --------------------------------------------------------------------------
# The losses.


@register("preference", inputs=examples.PAIRS_WITH_REFERENCE)
def fused_linear_dpo_loss(
  chosen_hidden: ArrayLike,
  chosen_targets: ArrayLike,
  rejected_hidden: ArrayLike,
  rejected_targets: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  kernel: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  label_smoothing: float | ArrayLike = 0.0,
  loss_type: str = "sigmoid",
  reward_shift: float | ArrayLike = 0.0,
  discopop_tau: float | ArrayLike = 0.05,
  average: bool = False,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`jaxobj.dpo_loss` of the policy ``hidden @ kernel``, without the logits.

  .. math::
     \log\pi_w = \sum_{t} \log\operatorname{softmax}
       \big(c\tanh(h_{w,t} W / c) / \tau\big)_{y_{w,t}},
     \qquad
     \ell = \operatorname{dpo}\big(\log\pi_w, \log\pi_l,
       \log\pi^{\mathrm{ref}}_w, \log\pi^{\mathrm{ref}}_l\big)

  with every loss type of :func:`jaxobj.dpo_loss` (``"sigmoid"`` with
  conservative label smoothing, ``"hinge"``, ``"ipo"``, ``"robust"``,
  ``"exo_pair"``, ``"nca_pair"``, ``"bco_pair"``, ``"sppo_hard"``, ``"aot"``,
  ``"aot_pair"``, ``"apo_zero"``, ``"apo_down"``, ``"discopop"``). The
  value and the gradients (with respect to both hidden states, the kernel,
  ``beta``, ``label_smoothing``, ``reward_shift``, ``discopop_tau``,
  ``temperature`` and ``logit_soft_cap``)
  equal ``dpo_loss`` of ``sequence_log_probs(hidden @ kernel, targets)``
  (soft-capped, divided by :math:`\tau`). ``average=True`` length-averages
  the policy's log-probabilities (TRL's ``"ipo"``; pass averaged reference
  log-probabilities then).

  Memory: one chunk of ``[token_block, V]`` logits (about 8 MiB by default)
  plus the gradients' accumulators, whatever the vocabulary; the chosen and
  rejected tokens share one sweep. Cost: :math:`2NDV` FLOPs forward and
  :math:`6NDV` backward over the :math:`N` tokens of both answers.

  The reference log-probabilities are summed over the same tokens (for
  ``average=True``, averaged). From a reference model's hidden states and
  kernel, fused and without gradients:
  ``fused_linear_sequence_log_probs(jax.lax.stop_gradient(ref_hidden),
  targets, jax.lax.stop_gradient(ref_kernel))``.

  Args:
    chosen_hidden: float ``[..., Tw, D]``, the policy's last hidden states of
      each preferred answer (the positions that predict its tokens).
    chosen_targets: integer ``[..., Tw]``, its tokens; ``ignore_index`` marks
      prompt and padding positions.
    rejected_hidden: float ``[..., Tl, D]`` (``Tl`` may differ from ``Tw``).
    rejected_targets: integer ``[..., Tl]``.
    reference_chosen_logps: float ``[...]``, :math:`\log\pi^{\mathrm{ref}}_w`.
    reference_rejected_logps: float ``[...]``, :math:`\log\pi^{\mathrm{ref}}_l`.
    kernel: float ``[D, V]``, the policy's output projection.
    beta, label_smoothing, loss_type, reward_shift, discopop_tau: as in
      :func:`jaxobj.dpo_loss` (``"aot"``/``"aot_pair"`` couple the rows: no
      ``weights``, no ``reduction="sum_and_count"``).
    average: length-average the policy's log-probabilities.
    temperature: :math:`\tau > 0` dividing the logits (traceable).
    logit_soft_cap: :math:`c > 0` or None (traceable).
    ignore_index: target id of the tokens that do not count (None: none).
    where, weights, reduction: the loss contract over pairs
      (:func:`jaxobj.reduce_loss`).
    token_block, vocab_block: chunk sizes, as in
      :func:`jaxobj.fused_linear_cross_entropy` (default: automatic).

  Returns:
    The reduced loss; per-pair losses ``[...]`` for ``reduction="none"``.

  Raises:
    ValueError: mismatched shapes (named), a kernel that is not ``[D, V]``,
      concrete targets outside ``[0, V)`` where they count, or the errors of
      :func:`jaxobj.dpo_loss`.
    TypeError: integer hidden states, reference log-probabilities or kernel,
      floating targets.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 5)
    >>> ch, rh = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (2, 4, 8))
    >>> kernel = jax.random.normal(ks[2], (8, 11))
    >>> cy = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> ry = jax.random.randint(ks[3], (2, 4), 0, 11)
    >>> ref_c, ref_r = jnp.array([-9.0, -5.0]), jnp.array([-10.0, -12.0])
    >>> fused = jaxobj.fused_linear_dpo_loss(ch, cy, rh, ry, ref_c, ref_r, kernel)
    >>> pc, pr = sequence_log_probs(ch @ kernel, cy), sequence_log_probs(rh @ kernel, ry)
    >>> bool(jnp.allclose(fused, jaxobj.dpo_loss(pc, pr, ref_c, ref_r), rtol=1e-5))
    True

  References:
    Rafailov et al., "Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model", NeurIPS 2023; Hsu et al., "Liger Kernel:
    Efficient Triton Kernels for LLM Training", 2024 (fused-linear
    preference losses).
  """
  checks.check_choice("loss_type", loss_type, DPO_LOSS_TYPES)
  checks.check_reduction(reduction)
  rows, ((cs, cn), (rs, rn)) = _pair(
    chosen_hidden,
    chosen_targets,
    rejected_hidden,
    rejected_targets,
    kernel,
    where=where,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  ref_c = _per_row("reference_chosen_logps", reference_chosen_logps, rows, "chosen_targets")
  ref_r = _per_row("reference_rejected_logps", reference_rejected_logps, rows, "chosen_targets")
  if average:
    cs, rs = _average(cs, cn), _average(rs, rn)
  return dpo_loss(
    cs,
    rs,
    ref_c,
    ref_r,
    beta=beta,
    label_smoothing=label_smoothing,
    loss_type=loss_type,
    reward_shift=reward_shift,
    discopop_tau=discopop_tau,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@register("preference", inputs=examples.PAIRS)
def fused_linear_simpo_loss(
  chosen_hidden: ArrayLike,
  chosen_targets: ArrayLike,
  rejected_hidden: ArrayLike,
  rejected_targets: ArrayLike,
  kernel: ArrayLike,
  *,
  beta: float | ArrayLike = 2.0,
  gamma: float | ArrayLike = 0.5,
  label_smoothing: float | ArrayLike = 0.0,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`jaxobj.simpo_loss` of the policy ``hidden @ kernel``, without the logits.

  .. math::
     z = \beta\,\big(\overline{\log\pi}_w - \overline{\log\pi}_l\big) - \gamma,
     \qquad \ell = -(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)

  with the length-averaged log-probabilities :math:`\overline{\log\pi}` of
  each answer's counted tokens under ``hidden @ kernel`` (soft-capped,
  divided by ``temperature``), computed in one fused sweep over both answers
  (see :func:`fused_linear_dpo_loss` for memory and cost). Values and
  gradients equal :func:`jaxobj.simpo_loss` of
  ``sequence_log_probs(hidden @ kernel, targets, average=True)``. An answer
  with no counted token has the average 0.

  Args:
    chosen_hidden: float ``[..., Tw, D]``, hidden states of the preferred answers.
    chosen_targets: integer ``[..., Tw]`` (``ignore_index``: not counted).
    rejected_hidden: float ``[..., Tl, D]``.
    rejected_targets: integer ``[..., Tl]``.
    kernel: float ``[D, V]``.
    beta, gamma, label_smoothing: as in :func:`jaxobj.simpo_loss`.
    temperature, logit_soft_cap, ignore_index, token_block, vocab_block: as in
      :func:`fused_linear_dpo_loss`.
    where, weights, reduction: the loss contract over pairs.

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`fused_linear_dpo_loss`, or the errors of
      :func:`jaxobj.simpo_loss`.
    TypeError: as :func:`fused_linear_dpo_loss`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 4)
    >>> ch, rh = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (2, 5, 8))
    >>> kernel = jax.random.normal(ks[2], (8, 11))
    >>> cy = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> ry = jax.random.randint(ks[3], (2, 5), 0, 11)
    >>> fused = jaxobj.fused_linear_simpo_loss(ch, cy, rh, ry, kernel)
    >>> avg = lambda h, y: sequence_log_probs(h @ kernel, y, average=True)
    >>> bool(jnp.allclose(fused, jaxobj.simpo_loss(avg(ch, cy), avg(rh, ry)), rtol=1e-5))
    True

  References:
    Meng, Xia & Chen, "SimPO: Simple Preference Optimization with a
    Reference-Free Reward", NeurIPS 2024.
  """
  checks.check_reduction(reduction)
  _, ((cs, cn), (rs, rn)) = _pair(
    chosen_hidden,
    chosen_targets,
    rejected_hidden,
    rejected_targets,
    kernel,
    where=where,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  return simpo_loss(
    _average(cs, cn),
    _average(rs, rn),
    beta=beta,
    gamma=gamma,
    label_smoothing=label_smoothing,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@register("preference", inputs=examples.PAIRS)
def fused_linear_orpo_loss(
  chosen_hidden: ArrayLike,
  chosen_targets: ArrayLike,
  rejected_hidden: ArrayLike,
  rejected_targets: ArrayLike,
  kernel: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r"""ORPO, whole (the chosen answer's NLL plus the odds-ratio term), of ``hidden @ kernel``.

  .. math::
     \ell = -\overline{\log\pi}_w
       - \beta \log\sigma\big(\operatorname{logodds}_w - \operatorname{logodds}_l\big),
     \qquad \operatorname{logodds} = \overline{\log\pi} - \log\big(1 - e^{\overline{\log\pi}}\big)

  The supervised term is the chosen answer's negative log-likelihood per
  token, :math:`-\overline{\log\pi}_w` (the ORPO paper's
  :math:`\mathcal{L}_{SFT}`, averaged over each answer's own tokens); the
  second term is :func:`jaxobj.orpo_odds_ratio_loss` of the length-averaged
  log-probabilities. Both come from one fused sweep over the chosen and
  rejected tokens (see :func:`fused_linear_dpo_loss` for memory and cost),
  never from the ``[tokens, V]`` logits.

  **Normalization of the NLL.** TRL's ``ORPOTrainer`` divides the chosen
  answers' summed NLL by the number of chosen tokens in the whole batch (one
  token mean), which equals the mean of the per-answer averages used here
  when all chosen answers have the same length, and otherwise weighs long
  answers more. The per-answer form keeps one value per pair, so the loss is
  exact under ``where``, ``weights``, microbatching and sharding
  (``reduction="sum_and_count"``). For TRL's token mean, add
  ``jaxobj.fused_linear_cross_entropy(chosen_hidden, chosen_targets, kernel)``
  (the token mean over the batch) to ``jaxobj.orpo_odds_ratio_loss`` of the
  averaged log-probabilities from ``fused_linear_sequence_log_probs(...,
  average=True)`` (two sweeps over the chosen tokens instead of one).

  Args:
    chosen_hidden: float ``[..., Tw, D]``, hidden states of the preferred answers.
    chosen_targets: integer ``[..., Tw]`` (``ignore_index``: not counted).
    rejected_hidden: float ``[..., Tl, D]``.
    rejected_targets: integer ``[..., Tl]``.
    kernel: float ``[D, V]``.
    beta: weight :math:`\beta \ge 0` of the odds-ratio term (the paper's
      :math:`\lambda`, TRL's ``ORPOConfig.beta``; traceable).
    temperature, logit_soft_cap, ignore_index, token_block, vocab_block: as in
      :func:`fused_linear_dpo_loss`.
    where, weights, reduction: the loss contract over pairs.

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`fused_linear_dpo_loss`, or ``beta < 0`` (concrete).
    TypeError: as :func:`fused_linear_dpo_loss`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 4)
    >>> ch, rh = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (2, 5, 8))
    >>> kernel = jax.random.normal(ks[2], (8, 11))
    >>> cy = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> ry = jax.random.randint(ks[3], (2, 5), 0, 11)
    >>> avg = lambda h, y: sequence_log_probs(h @ kernel, y, average=True)
    >>> ac, ar = avg(ch, cy), avg(rh, ry)
    >>> unfused = jnp.mean(-ac + jaxobj.orpo_odds_ratio_loss(ac, ar, reduction="none"))
    >>> fused = jaxobj.fused_linear_orpo_loss(ch, cy, rh, ry, kernel)
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Hong, Lee & Thorne, "ORPO: Monolithic Preference Optimization without
    Reference Model", EMNLP 2024.
  """
  checks.check_reduction(reduction)
  _, ((cs, cn), (rs, rn)) = _pair(
    chosen_hidden,
    chosen_targets,
    rejected_hidden,
    rejected_targets,
    kernel,
    where=where,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  chosen, rejected = _average(cs, cn), _average(rs, rn)
  odds = orpo_odds_ratio_loss(chosen, rejected, beta=beta, where=where, reduction="none")
  return reduce_loss(odds - chosen, where=where, weights=weights, reduction=reduction)


@register("preference", inputs=examples.PAIRS)
def fused_linear_cpo_loss(
  chosen_hidden: ArrayLike,
  chosen_targets: ArrayLike,
  rejected_hidden: ArrayLike,
  rejected_targets: ArrayLike,
  kernel: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  label_smoothing: float | ArrayLike = 0.0,
  loss_type: str = "sigmoid",
  cpo_alpha: float | ArrayLike = 1.0,
  simpo_gamma: float | ArrayLike = 0.5,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r"""CPO (contrastive preference optimization) of ``hidden @ kernel``, without the logits.

  .. math::
     u = \log\pi_w - \log\pi_l, \qquad
     \ell = \begin{cases}
       -(1-\varepsilon)\log\sigma(\beta u) - \varepsilon\log\sigma(-\beta u) & \texttt{sigmoid} \\
       \max(0,\ 1 - \beta u) & \texttt{hinge} \\
       \big(\bar u - \tfrac{1}{2\beta}\big)^2 & \texttt{ipo} \\
       -(1-\varepsilon)\log\sigma(\beta \bar u - \gamma)
         - \varepsilon\log\sigma(\gamma - \beta \bar u) & \texttt{simpo}
     \end{cases}
     \; - \; \alpha\,\overline{\log\pi}_w

  A reference-free DPO (the reference log-probabilities taken as 0) plus
  :math:`\alpha` times the chosen answer's per-token NLL
  :math:`-\overline{\log\pi}_w` (Xu et al.'s behaviour-cloning regularizer).
  As in TRL's ``CPOTrainer``: ``"sigmoid"`` and ``"hinge"`` use summed
  log-probabilities :math:`u`, ``"ipo"`` and ``"simpo"`` length-averaged
  ones :math:`\bar u`; ``cpo_alpha`` (:math:`\alpha`, default 1), ``beta``
  (default 0.1), ``label_smoothing`` and ``simpo_gamma`` (:math:`\gamma`,
  default 0.5) mean the same; ``cpo_alpha=0`` with ``loss_type="simpo"`` is
  SimPO. Every term comes from one fused sweep over the chosen and rejected
  tokens (see :func:`fused_linear_dpo_loss` for memory and cost).

  **Normalization of the NLL.** TRL divides the chosen answers' summed NLL
  by the number of chosen tokens in the whole batch; here each answer's NLL
  is averaged over its own tokens, which is the same when the chosen answers
  have equal lengths and keeps one value per pair (exact under masks,
  weights, microbatching and sharding). See :func:`fused_linear_orpo_loss`.

  Args:
    chosen_hidden: float ``[..., Tw, D]``, hidden states of the preferred answers.
    chosen_targets: integer ``[..., Tw]`` (``ignore_index``: not counted).
    rejected_hidden: float ``[..., Tl, D]``.
    rejected_targets: integer ``[..., Tl]``.
    kernel: float ``[D, V]``.
    beta: :math:`\beta > 0` (traceable).
    label_smoothing: :math:`\varepsilon` in [0, 1] for ``"sigmoid"`` and
      ``"simpo"``, 0 otherwise (traceable).
    loss_type: ``"sigmoid"`` (default), ``"hinge"``, ``"ipo"`` or ``"simpo"``.
    cpo_alpha: :math:`\alpha \ge 0`, the weight of the NLL term (traceable).
    simpo_gamma: :math:`\gamma`, SimPO's target margin (traceable; used by
      ``"simpo"`` only).
    temperature, logit_soft_cap, ignore_index, token_block, vocab_block: as in
      :func:`fused_linear_dpo_loss`.
    where, weights, reduction: the loss contract over pairs.

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`fused_linear_dpo_loss`, an unknown ``loss_type``,
      or (concrete) ``beta <= 0``, ``cpo_alpha < 0``, ``label_smoothing`` out
      of range for the ``loss_type``.
    TypeError: as :func:`fused_linear_dpo_loss`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 4)
    >>> ch, rh = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (2, 5, 8))
    >>> kernel = jax.random.normal(ks[2], (8, 11))
    >>> cy = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> ry = jax.random.randint(ks[3], (2, 5), 0, 11)
    >>> lp = lambda h, y, **kw: sequence_log_probs(h @ kernel, y, **kw)
    >>> u = lp(ch, cy) - lp(rh, ry)
    >>> nll = -lp(ch, cy, average=True)
    >>> unfused = jnp.mean(jax.nn.softplus(-0.1 * u) + nll)
    >>> fused = jaxobj.fused_linear_cpo_loss(ch, cy, rh, ry, kernel)
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Xu et al., "Contrastive Preference Optimization: Pushing the Boundaries
    of LLM Performance in Machine Translation", ICML 2024; Meng, Xia & Chen,
    "SimPO", NeurIPS 2024.
  """
  checks.check_choice("loss_type", loss_type, CPO_LOSS_TYPES)
  checks.check_range("cpo_alpha", cpo_alpha, low=0.0)
  checks.check_reduction(reduction)
  _, ((cs, cn), (rs, rn)) = _pair(
    chosen_hidden,
    chosen_targets,
    rejected_hidden,
    rejected_targets,
    kernel,
    where=where,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  chosen_avg, rejected_avg = _average(cs, cn), _average(rs, rn)
  if loss_type == "simpo":
    preference = simpo_loss(
      chosen_avg,
      rejected_avg,
      beta=beta,
      gamma=simpo_gamma,
      label_smoothing=label_smoothing,
      where=where,
      reduction="none",
    )
  else:
    chosen, rejected = (chosen_avg, rejected_avg) if loss_type == "ipo" else (cs, rs)
    zero = jnp.zeros_like(chosen)
    preference = dpo_loss(
      chosen,
      rejected,
      zero,
      zero,
      beta=beta,
      label_smoothing=label_smoothing,
      loss_type=loss_type,
      where=where,
      reduction="none",
    )
  values = preference - cpo_alpha * chosen_avg
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("preference", inputs=examples.UNPAIRED)
def fused_linear_kto_loss(
  hidden: ArrayLike,
  targets: ArrayLike,
  reference_logps: ArrayLike,
  labels: ArrayLike,
  kernel: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  desirable_weight: float | ArrayLike = 1.0,
  undesirable_weight: float | ArrayLike = 1.0,
  kl: float | ArrayLike | None = None,
  temperature: float | ArrayLike = 1.0,
  logit_soft_cap: float | ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
  token_block: int | None = None,
  vocab_block: int | None = None,
) -> Reduced:
  r""":func:`jaxobj.kto_loss` of the policy ``hidden @ kernel``, without the logits.

  .. math::
     r = \log\pi - \log\pi^{\mathrm{ref}},\qquad
     \ell = \begin{cases}
       \lambda_D\,\big(1 - \sigma(\beta (r - z_0))\big) & \text{desirable} \\
       \lambda_U\,\big(1 - \sigma(\beta (z_0 - r))\big) & \text{undesirable}
     \end{cases}
     \qquad z_0 = \operatorname{sg}(\max(0, \texttt{kl}))

  with :math:`\log\pi` the answer's summed log-probability under
  ``hidden @ kernel`` (soft-capped, divided by ``temperature``), computed by
  the fused engine (see :func:`fused_linear_dpo_loss` for memory and cost).
  Values and gradients equal :func:`jaxobj.kto_loss` of
  ``sequence_log_probs(hidden @ kernel, targets)`` with the same ``kl``.

  The reference point :math:`z_0` is passed in as ``kl`` (0 when None, TRL's
  ``calculate_KL=False``), so the rows stay independent and the loss is exact
  under microbatching and sharding. TRL estimates it from mismatched pairs
  (each prompt with another row's answer), without gradients; fused, over the
  whole batch:
  ``kl = jnp.mean(fused_linear_sequence_log_probs(jax.lax.stop_gradient(kl_hidden),
  kl_targets, jax.lax.stop_gradient(kernel)) - reference_kl_logps)``.

  Args:
    hidden: float ``[..., T, D]``, the policy's hidden states of each answer.
    targets: integer ``[..., T]`` (``ignore_index``: not counted).
    reference_logps: float ``[...]``, the reference model's summed
      log-probability of each answer.
    labels: ``[...]``, boolean (or 0/1): True for desirable answers.
    kernel: float ``[D, V]``.
    beta, desirable_weight, undesirable_weight, kl: as in
      :func:`jaxobj.kto_loss`.
    temperature, logit_soft_cap, ignore_index, token_block, vocab_block: as in
      :func:`fused_linear_dpo_loss`.
    where, weights, reduction: the loss contract over answers.

  Returns:
    The reduced loss; per-answer losses for ``reduction="none"``.

  Raises:
    ValueError: as :func:`fused_linear_dpo_loss`, or the errors of
      :func:`jaxobj.kto_loss`.
    TypeError: as :func:`fused_linear_dpo_loss`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> ks = jax.random.split(jax.random.key(0), 3)
    >>> h, kernel = jax.random.normal(ks[0], (2, 5, 8)), jax.random.normal(ks[1], (8, 11))
    >>> y = jnp.array([[-100, 2, 3, 4, 5], [-100, -100, 7, 8, -100]])
    >>> ref, labels = jnp.array([-12.0, -6.0]), jnp.array([True, False])
    >>> fused = jaxobj.fused_linear_kto_loss(h, y, ref, labels, kernel, kl=0.5)
    >>> unfused = jaxobj.kto_loss(sequence_log_probs(h @ kernel, y), ref, labels, kl=0.5)
    >>> bool(jnp.allclose(fused, unfused, rtol=1e-5))
    True

  References:
    Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic
    Optimization", ICML 2024.
  """
  checks.check_reduction(reduction)
  rows, ((logps, _),) = _answers(
    [("hidden", hidden, "targets", targets)],
    kernel,
    where=where,
    temperature=temperature,
    logit_soft_cap=logit_soft_cap,
    ignore_index=ignore_index,
    token_block=token_block,
    vocab_block=vocab_block,
  )
  reference = _per_row("reference_logps", reference_logps, rows, "targets")
  if jnp.shape(labels) != rows:
    raise ValueError(
      f"labels must have one value per row, shape targets.shape[:-1] = {rows}, got "
      f"labels.shape={jnp.shape(labels)}."
    )
  return kto_loss(
    logps,
    reference,
    labels,
    beta=beta,
    desirable_weight=desirable_weight,
    undesirable_weight=undesirable_weight,
    kl=kl,
    where=where,
    weights=weights,
    reduction=reduction,
  )
