r"""Preference and alignment losses over policy and reference log-probabilities.

Every loss here takes **per-sequence** log-probabilities with the batch
leading: :math:`\log\pi(y \mid x)` of a whole answer, either summed over its
tokens (DPO, KTO, the RLHF objective) or averaged over them (SimPO, ORPO, and
TRL's IPO). :func:`sequence_log_probs` (``from jaxobj.losses.preference import
sequence_log_probs``) computes both from token logits, target ids and a token
mask. One row is one preference pair (or one answer), so
``where``/``weights`` index rows and a masked row behaves exactly as if it had
been sliced out of the batch.

Conventions follow Hugging Face TRL (``DPOTrainer``, ``KTOTrainer``,
``CPOTrainer`` for SimPO, ``ORPOTrainer``, ``RewardTrainer``, the KL
estimators of its online trainers); deliberate differences are stated in each
docstring. As everywhere in jaxobj the default reduction is the mean over
unmasked rows; ``reduction="none"`` gives TRL's per-row ``losses``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs, numerics
from jaxobj._src.examples import preference as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

# sequence_log_probs is a helper, not a registered loss: it is imported from
# this module rather than re-exported as jaxobj.sequence_log_probs.
__all__ = [
  "bco_loss",
  "bradley_terry_loss",
  "dpo_loss",
  "kto_loss",
  "orpo_odds_ratio_loss",
  "rlhf_loss",
  "sequence_log_probs",
  "simpo_loss",
]

DPO_LOSS_TYPES = (
  "sigmoid",
  "hinge",
  "ipo",
  "robust",
  "exo_pair",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "aot",
  "aot_pair",
  "apo_zero",
  "apo_down",
  "discopop",
)
# Loss types whose terms pair the i-th smallest values of two batch-wide
# distributions: their rows are coupled (see dpo_loss).
DPO_SORTED_TYPES = ("aot", "aot_pair")
# EXO's epsilon when label_smoothing is 0 (the log of 0 would be -inf).
EXO_DEFAULT_EPSILON = 1e-3
KL_ESTIMATORS = ("k1", "k2", "k3")
RLHF_GRADIENTS = ("score_function", "pathwise")

_LOG_HALF = -math.log(2.0)
# Smallest positive normal float32: floors 1 - p so log(1 - p) stays finite.
_TINY = float(jnp.finfo(jnp.float32).tiny)


# --------------------------------------------------------------------------
# Shared preparation and building blocks.


def _rows(where, **arrays):
  """Checked float inputs of one shape in a common dtype, masked rows zeroed.

  Every array is compared with the first, so a mismatch names both arguments;
  a zero is a valid log-probability, reward or margin, so masked rows (NaN or
  not) compute harmlessly and cannot reach the gradient.
  """
  names = list(arrays)
  out = [checks.as_float(arrays[names[0]], names[0])]
  for name in names[1:]:
    checks.check_same_shape(names[0], out[0], name, arrays[name])
    out.append(checks.as_float(arrays[name], name))
  dtype = jnp.result_type(*out)
  shape = out[0].shape
  return [masked_fill(where, a.astype(dtype), shape) for a in out]


def _smoothed_logistic(z, label_smoothing):
  """``-(1 - eps) log sigma(z) - eps log sigma(-z)``, exact for any ``z``."""
  return (1.0 - label_smoothing) * jax.nn.softplus(-z) + label_smoothing * jax.nn.softplus(z)


def _log1m_exp(logp):
  """``log(1 - exp(logp))`` for ``logp <= 0``, accurate on both sides of -log 2.

  Near 0 it is ``log(-expm1(logp))`` (floored at log(tiny) so ``p == 1``
  gives a finite value and gradient); far below, ``log1p(-exp(logp))`` keeps
  the tiny ``-p``. Each branch only sees arguments in its own range, so the
  unused one cannot put an infinity into the gradient.
  """
  near = logp > _LOG_HALF
  lp_near = jnp.where(near, logp, _LOG_HALF)
  lp_far = jnp.where(near, _LOG_HALF, logp)
  return jnp.where(
    near, jnp.log(jnp.maximum(-jnp.expm1(lp_near), _TINY)), jnp.log1p(-jnp.exp(lp_far))
  )


def _log_odds(logp):
  """``log(p / (1 - p))`` from ``log p``; values above 0 are taken as 0."""
  logp = jnp.minimum(logp, 0.0)
  return logp - _log1m_exp(logp)


def _sorted_rows(where, *arrays):
  """Each array sorted ascending over all its entries, its unmasked entries first.

  Returns the sorted arrays (in the shape of the inputs) and the mask of the
  positions that hold unmasked entries (None without ``where``). The masked
  entries are put last by a second sort key, not by a sentinel value, so an
  unmasked ``inf`` or NaN keeps its place and its effect.
  """
  shape = arrays[0].shape
  flat = [jnp.ravel(a) for a in arrays]
  if where is None:
    return [jnp.sort(a).reshape(shape) for a in flat], None
  mask = jnp.ravel(jnp.broadcast_to(checks.as_mask(where, shape), shape))
  masked_last = jnp.logical_not(mask).astype(jnp.int32)
  out = [jax.lax.sort((masked_last, a), num_keys=2)[1].reshape(shape) for a in flat]
  valid = jnp.arange(mask.size) < jnp.sum(mask, dtype=jnp.int32)
  return out, valid.reshape(shape)


# --------------------------------------------------------------------------
# Token log-probabilities -> sequence log-probabilities (a helper, not a loss).


def sequence_log_probs(
  logits: ArrayLike,
  tokens: ArrayLike,
  *,
  where: ArrayLike | None = None,
  ignore_index: int | ArrayLike | None = -100,
  average: bool = False,
) -> jax.Array:
  r"""Per-sequence log-probabilities of target tokens under token logits.

  .. math::
     \log\pi(y) = \sum_{t:\,m_t} \big(x_{t, y_t} - \operatorname{logsumexp}_v x_{t, v}\big),
     \qquad \overline{\log\pi}(y) = \log\pi(y) / \textstyle\sum_t m_t

  The inputs of every preference loss. ``logits[..., t, :]`` must already be
  the prediction for ``tokens[..., t]``: for a causal LM pass
  ``logits[:, :-1]``, ``tokens[:, 1:]`` and the completion mask ``[:, 1:]``.
  Masked tokens (and prompt/padding tokens) contribute exactly 0, with zero
  gradient even when their logits are NaN; a sequence with no unmasked token
  has log-probability 0 (and average 0). An unmasked target whose logit is
  ``-inf`` has log-probability ``-inf``; an unmasked id outside ``[0, V)``
  gives NaN, never a plausible number.

  Args:
    logits: float array ``(..., T, V)``.
    tokens: integer target ids ``(..., T)``.
    where: optional boolean token mask broadcastable to ``(..., T)``
      (same rank, axes equal or 1).
    ignore_index: id whose positions join the mask (default -100, which TRL
      and PyTorch use for prompt and padding labels; None skips none).
    average: return the length-averaged log-probability (SimPO, ORPO, TRL's
      IPO) instead of the sum (DPO, KTO, RLHF).

  Returns:
    float array ``(...,)``, at least float32.

  Raises:
    ValueError: ``tokens.shape != logits.shape[:-1]``, fewer than one
      sequence axis, or a mask that does not broadcast.
    TypeError: integer ``logits``, non-integer ``tokens``.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxobj.losses.preference import sequence_log_probs
    >>> logits = jnp.log(jnp.array([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
    >>> tokens = jnp.array([[0, 1, 1]])
    >>> lp = sequence_log_probs(logits, tokens, where=jnp.array([[True, True, False]]))
    >>> print(round(float(lp[0]), 4), round(float(jnp.log(0.5 * 0.1)), 4))
    -2.9957 -2.9957
  """
  x, y, where = inputs.integer_inputs(
    logits, tokens, -1, where, ignore_index, names=("logits", "tokens")
  )
  if y.ndim < 1:
    raise ValueError(
      f"tokens must have a sequence axis, got tokens.shape={y.shape} "
      f"and logits.shape={x.shape}; expected (..., T) and (..., T, V)."
    )
  shape = y.shape
  token_logps = inputs.take(x, y) - jax.nn.logsumexp(x, axis=-1)
  if where is not None:
    token_logps = jnp.where(where, token_logps, 0.0)
  total = jnp.sum(token_logps, axis=-1)
  if not average:
    return total
  if where is None:
    return total / max(shape[-1], 1)
  count = jnp.sum(jnp.broadcast_to(where, shape), axis=-1, dtype=total.dtype)
  return total / jnp.maximum(count, 1.0)


# --------------------------------------------------------------------------
# Reward models.


@register("preference", inputs=examples.REWARD_PAIRS)
def bradley_terry_loss(
  chosen_rewards: ArrayLike,
  rejected_rewards: ArrayLike,
  margin: ArrayLike | None = None,
  *,
  center_rewards_coefficient: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Bradley–Terry reward-model loss on scalar rewards of preference pairs.

  .. math::
     \ell = -\log\sigma(r_w - r_l - m) + c\,(r_w + r_l)^2

  The negative log-likelihood of "chosen beats rejected" under the
  Bradley–Terry model :math:`P(w \succ l) = \sigma(r_w - r_l)`, computed as
  :math:`\operatorname{softplus}(r_l + m - r_w)` (exact for any rewards). The
  optional per-pair ``margin`` asks for a larger gap where annotators were
  more certain (Llama 2); :math:`c` is TRL's ``center_rewards_coefficient``,
  which pulls the rewards towards zero mean. As in TRL's ``RewardTrainer``,
  whose mean of this per-pair loss this is; there the centering term is
  ``c * mean((r_w + r_l)**2)`` over the batch, which the per-pair form equals
  under the unweighted mean.

  Args:
    chosen_rewards: float ``(...)``, scalar reward of each preferred answer.
    rejected_rewards: same shape, reward of each rejected answer.
    margin: optional float margin, a scalar or the same shape (default 0).
    center_rewards_coefficient: :math:`c \ge 0` (traceable).
    where, weights, reduction: the loss contract over pairs
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``center_rewards_coefficient < 0`` (when concrete).
    TypeError: integer rewards.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.bradley_terry_loss(jnp.array([1.0, 0.0]),
    ...                                             jnp.array([0.0, 0.0]))), 4))
    0.5032

  References:
    Bradley & Terry, "Rank Analysis of Incomplete Block Designs", 1952;
    Ouyang et al., "Training language models to follow instructions with
    human feedback", 2022; Touvron et al., "Llama 2", 2023 (margins).
  """
  checks.check_range("center_rewards_coefficient", center_rewards_coefficient, low=0.0)
  chosen, rejected = _rows(where, chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
  m: float | jax.Array = 0.0
  if margin is not None:
    if jnp.ndim(margin):  # a scalar margin is one number for all pairs
      checks.check_same_shape("chosen_rewards", chosen, "margin", margin)
    m = checks.as_target(margin, "margin", chosen)
    if m.ndim:
      m = masked_fill(where, m, chosen.shape)
  values = jax.nn.softplus(rejected + m - chosen)
  values = values + center_rewards_coefficient * jnp.square(chosen + rejected)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Direct preference optimization with a reference model.


@register("preference", inputs=examples.PAIRED_LOGPS)
def dpo_loss(
  policy_chosen_logps: ArrayLike,
  policy_rejected_logps: ArrayLike,
  reference_chosen_logps: ArrayLike,
  reference_rejected_logps: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  label_smoothing: float | ArrayLike = 0.0,
  loss_type: str = "sigmoid",
  reward_shift: float | ArrayLike = 0.0,
  discopop_tau: float | ArrayLike = 0.05,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Direct preference optimization (DPO) and every loss type of TRL's DPO trainer.

  .. math::
     a = \log\pi_w - \log\pi^{\mathrm{ref}}_w,\quad
     b = \log\pi_l - \log\pi^{\mathrm{ref}}_l,\quad
     h = a - b,\quad z = \beta h,

  .. math::
     \ell = \begin{cases}
       -(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z) & \texttt{sigmoid} \\
       \max(0,\ 1 - z) & \texttt{hinge} \\
       \big(h - \tfrac{1}{2\beta}\big)^2 & \texttt{ipo} \\
       \dfrac{-(1-\varepsilon)\log\sigma(z)
              + \varepsilon\log\sigma(-z)}{1 - 2\varepsilon} & \texttt{robust} \\
       \sigma(z)\big(\log\sigma(z) - \log(1-\varepsilon)\big)
         + \sigma(-z)\big(\log\sigma(-z) - \log\varepsilon\big) & \texttt{exo\_pair} \\
       -\log\sigma(\beta a) - \tfrac12\log\sigma(-\beta a) - \tfrac12\log\sigma(-\beta b)
         & \texttt{nca\_pair} \\
       -\log\sigma(\beta a - \delta) - \log\sigma(\delta - \beta b) & \texttt{bco\_pair} \\
       \big(a - \tfrac{1}{2\beta}\big)^2 + \big(b + \tfrac{1}{2\beta}\big)^2
         & \texttt{sppo\_hard} \\
       -(1-\varepsilon)\log\sigma(\beta d_{(i)}) - \varepsilon\log\sigma(-\beta d_{(i)})
         & \texttt{aot},\ \texttt{aot\_pair} \\
       1 - \sigma(\beta a) + \sigma(\beta b) & \texttt{apo\_zero} \\
       \sigma(\beta a) + 1 - \sigma(z) & \texttt{apo\_down} \\
       \big(1 - \sigma(z/\tau)\big)\big(-\log\sigma(z)\big) + \sigma(z/\tau)\,e^{-z}
         & \texttt{discopop}
     \end{cases}

  :math:`a` and :math:`b` are the log-ratios of the chosen and the rejected
  answer (their implicit rewards divided by :math:`\beta`), :math:`h` their
  difference. These are the ``loss_type`` values of TRL's ``DPOTrainer``, with
  ``beta``, ``label_smoothing`` and ``discopop_tau`` meaning the same, and
  TRL's per-pair values for ``reduction="none"``:

  - ``"sigmoid"`` is DPO (Rafailov et al.); with ``label_smoothing``
    :math:`\varepsilon > 0` it is conservative DPO (cDPO), the cross-entropy
    against labels flipped with probability :math:`\varepsilon`.
  - ``"hinge"`` is the SLiC/RSO hinge, ``"ipo"`` IPO's squared loss (Azar et
    al., :math:`\beta` is their :math:`\tau`), ``"robust"`` the unbiased rDPO
    estimator under label noise :math:`\varepsilon` (Chowdhury et al.).
  - ``"exo_pair"`` is EXO (Ji et al.), the reverse KL divergence from
    :math:`\operatorname{Bernoulli}(\sigma(z))` to the smoothed label
    :math:`\operatorname{Bernoulli}(1 - \varepsilon)`, with
    ``label_smoothing`` as :math:`\varepsilon`; 0 means
    :math:`\varepsilon = 10^{-3}`, as in TRL.
  - ``"nca_pair"`` is NCA (Chen et al.), which raises the chosen answer's
    implicit reward in absolute terms, not only relative to the rejected one.
  - ``"bco_pair"`` is BCO (Jung et al.) on pairs: a binary classifier with
    logit :math:`\beta a - \delta` (chosen) and :math:`\beta b - \delta`
    (rejected). :math:`\delta` is ``reward_shift``, on the reward scale
    :math:`\beta\,(\log\pi - \log\pi^{\mathrm{ref}})`; TRL uses the running mean
    of the implicit rewards of every answer seen so far, this step's included.
    Keep that mean yourself (detached) and pass it: the rows stay independent.
    :func:`bco_loss` is the unpaired form.
  - ``"sppo_hard"`` is SPPO (Wu et al.) with hard win probabilities (1 for the
    chosen answer, 0 for the rejected one).
  - ``"apo_zero"`` and ``"apo_down"`` are APO (D'Oosterlinck et al.):
    ``"apo_zero"`` raises the chosen and lowers the rejected likelihood (for
    chosen answers better than the model's own), ``"apo_down"`` lowers both,
    the rejected more (for chosen answers worse than the model's own).
  - ``"discopop"`` is DiscoPOP (Lu et al.), the log-ratio modulated loss that
    blends the logistic and the exponential loss with weight
    :math:`\sigma(z/\tau)`, :math:`\tau` = ``discopop_tau``. Its exponential
    term is computed as :math:`e^{-z - \operatorname{softplus}(-z/\tau)}`, so
    it stays finite for any :math:`z` when :math:`\tau < 1` (for
    :math:`\tau \ge 1` the loss itself grows without bound as
    :math:`z \to -\infty`).
  - ``"aot"`` and ``"aot_pair"`` are AOT (Melnyk et al.), alignment via
    optimal transport: first-order stochastic dominance of one distribution
    over another over the batch, as a smoothed logistic loss (with
    ``label_smoothing``) on :math:`d_{(i)}`, the difference of the
    :math:`i`-th smallest values of the two. ``"aot"`` (paired data) compares
    the policy's margins :math:`\log\pi_w - \log\pi_l` with the reference's
    :math:`\log\pi^{\mathrm{ref}}_w - \log\pi^{\mathrm{ref}}_l`; ``"aot_pair"``
    (TRL's name for the unpaired form) compares the chosen log-ratios
    :math:`a` with the rejected :math:`b`.

  The log-sigmoids are softplus, exact for any :math:`z`.

  **AOT couples the rows of the batch.** Both distributions are sorted over
  all rows (every entry of a batch with several axes), so:
  ``where`` removes a row from both distributions before sorting, exactly as
  if it were sliced out; ``reduction="none"`` gives the loss of the
  :math:`i`-th ranked pair at flat position :math:`i` of the inputs' shape,
  not a per-row loss (masked rows leave zeros at the end); ``weights`` are
  refused, because a term is not a row; and ``reduction="sum_and_count"`` is
  refused, because the loss of a microbatch or a device's shard is not a part
  of the whole batch's loss, so an objective that splits the batch would
  compute another loss (compute it on the whole batch, gathering the rows
  first under ``shard_map``; the other loss types are row-wise and split
  exactly).

  **Inputs** are sequence log-probabilities **summed** over the answer's tokens
  (:func:`sequence_log_probs`), as in TRL's DPO. TRL's ``"ipo"`` divides them
  by the answer length first: to reproduce it, pass length-averaged
  log-probabilities (``average=True``). For reference-free DPO pass zeros as
  the reference log-probabilities.

  Degenerate but legal: identical chosen and rejected answers, or a policy
  equal to the reference, give :math:`h = 0`, i.e. :math:`\log 2` for
  ``"sigmoid"``/``"robust"``, 1 for ``"hinge"`` and :math:`1/(4\beta^2)` for
  ``"ipo"``.

  Args:
    policy_chosen_logps: float ``(...)``, :math:`\log\pi_\theta(y_w\mid x)`.
    policy_rejected_logps: same shape, :math:`\log\pi_\theta(y_l\mid x)`.
    reference_chosen_logps: same shape, under the frozen reference model.
    reference_rejected_logps: same shape, under the reference model.
    beta: :math:`\beta > 0`, the strength of the implicit KL penalty (traceable).
    label_smoothing: :math:`\varepsilon` (traceable): the assumed fraction of
      flipped labels, in [0, 1] for ``"sigmoid"``, ``"aot"`` and
      ``"aot_pair"``, [0, 0.5) for ``"robust"``; EXO's :math:`\varepsilon` in
      [0, 1) for ``"exo_pair"`` (0: :math:`10^{-3}`); must be 0 for the other
      types.
    loss_type: ``"sigmoid"`` (default), ``"hinge"``, ``"ipo"``, ``"robust"``,
      ``"exo_pair"``, ``"nca_pair"``, ``"bco_pair"``, ``"sppo_hard"``,
      ``"aot"``, ``"aot_pair"``, ``"apo_zero"``, ``"apo_down"`` or
      ``"discopop"``.
    reward_shift: :math:`\delta` of ``"bco_pair"`` (traceable, not
      differentiated by TRL: pass it detached); ignored by the other types.
    discopop_tau: :math:`\tau > 0` of ``"discopop"`` (traceable, default 0.05
      as in the paper and TRL); ignored by the other types.
    where, weights, reduction: the loss contract over pairs
      (:func:`jaxobj.reduce_loss`); for ``"aot"``/``"aot_pair"`` see above.

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"`` (per ranked
    pair for ``"aot"``/``"aot_pair"``).

  Raises:
    ValueError: any two of the four inputs differ in shape (the message names
      the pair), an unknown ``loss_type``, (when concrete) ``beta <= 0``,
      ``discopop_tau <= 0`` or ``label_smoothing`` out of range for the
      ``loss_type``; ``weights`` or ``reduction="sum_and_count"`` with
      ``"aot"``/``"aot_pair"``.
    TypeError: integer log-probabilities.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> lp = jnp.array([-10.0])
    >>> print(round(float(jaxobj.dpo_loss(lp, lp, lp, lp)), 4))  # h = 0: log 2
    0.6931
    >>> print(round(float(jaxobj.dpo_loss(jnp.array([-5.0]), jnp.array([-20.0]),
    ...                                   jnp.array([-10.0]), jnp.array([-10.0]))), 4))
    0.2014
    >>> print(round(float(jaxobj.dpo_loss(lp, lp, lp, lp, loss_type="apo_zero")), 4))
    1.0

  References:
    Rafailov et al., "Direct Preference Optimization: Your Language Model is
    Secretly a Reward Model", NeurIPS 2023; Mitchell, "A note on DPO with
    noisy preferences & relationship to IPO", 2023 (cDPO); Azar et al., "A
    General Theoretical Paradigm to Understand Learning from Human
    Preferences", AISTATS 2024 (IPO); Zhao et al., "SLiC-HF", 2023; Liu et
    al., "Statistical Rejection Sampling Improves Preference Optimization",
    ICLR 2024 (hinge); Chowdhury et al., "Provably Robust DPO", ICML 2024;
    Ji et al., "Towards Efficient Exact Optimization of Language Model
    Alignment", ICML 2024 (EXO); Chen et al., "Noise Contrastive Alignment of
    Language Models with Explicit Rewards", NeurIPS 2024 (NCA); Jung et al.,
    "Binary Classifier Optimization for Large Language Model Alignment", 2024
    (BCO); Wu et al., "Self-Play Preference Optimization for Language Model
    Alignment", 2024 (SPPO); Melnyk et al., "Distributional Preference
    Alignment of LLMs via Optimal Transport", NeurIPS 2024 (AOT);
    D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive
    Revisions", 2024 (APO); Lu et al., "Discovering Preference Optimization
    Algorithms with and for Large Language Models", NeurIPS 2024 (DiscoPOP).
  """
  checks.check_choice("loss_type", loss_type, DPO_LOSS_TYPES)
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  checks.check_range("discopop_tau", discopop_tau, low=0.0, low_inclusive=False)
  if loss_type in ("sigmoid", *DPO_SORTED_TYPES):
    checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  elif loss_type == "robust":
    checks.check_range("label_smoothing", label_smoothing, low=0.0, high=0.5, high_inclusive=False)
  elif loss_type == "exo_pair":
    checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0, high_inclusive=False)
  # NumPy, not jnp: under jit a jnp comparison of a concrete value is traced.
  elif checks.is_concrete(label_smoothing) and np.any(np.asarray(label_smoothing) != 0):
    raise ValueError(
      f"label_smoothing={label_smoothing!r} has no meaning for "
      f"loss_type={loss_type!r}; use loss_type='sigmoid' (cDPO), 'robust', "
      f"'exo_pair', 'aot' or 'aot_pair', or leave label_smoothing at 0."
    )
  if loss_type in DPO_SORTED_TYPES:
    _check_sorted_type(loss_type, weights, reduction)
  pc, pr, rc, rr = _rows(
    where,
    policy_chosen_logps=policy_chosen_logps,
    policy_rejected_logps=policy_rejected_logps,
    reference_chosen_logps=reference_chosen_logps,
    reference_rejected_logps=reference_rejected_logps,
  )
  if loss_type in DPO_SORTED_TYPES:
    if loss_type == "aot":
      first, second = pc - pr, rc - rr
    else:
      first, second = pc - rc, pr - rr
    (first, second), where = _sorted_rows(where, first, second)
    values = _smoothed_logistic(beta * (first - second), label_smoothing)
    return reduce_loss(values, where=where, reduction=reduction)
  h = (pc - pr) - (rc - rr)
  z = beta * h
  # Chosen and rejected log-ratios, for the types that score each answer.
  a, b = pc - rc, pr - rr
  if loss_type == "sigmoid":
    values = _smoothed_logistic(z, label_smoothing)
  elif loss_type == "hinge":
    values = jax.nn.relu(1.0 - z)
  elif loss_type == "ipo":
    values = jnp.square(h - 0.5 / beta)
  elif loss_type == "robust":
    values = (
      (1.0 - label_smoothing) * jax.nn.softplus(-z) - label_smoothing * jax.nn.softplus(z)
    ) / (1.0 - 2.0 * label_smoothing)
  elif loss_type == "exo_pair":
    eps = jnp.where(jnp.asarray(label_smoothing) == 0, EXO_DEFAULT_EPSILON, label_smoothing)
    values = jax.nn.sigmoid(z) * (-jax.nn.softplus(-z) - jnp.log1p(-eps)) + jax.nn.sigmoid(-z) * (
      -jax.nn.softplus(z) - jnp.log(eps)
    )
  elif loss_type == "nca_pair":
    values = (
      jax.nn.softplus(-(beta * a))
      + 0.5 * jax.nn.softplus(beta * a)
      + 0.5 * jax.nn.softplus(beta * b)
    )
  elif loss_type == "bco_pair":
    values = jax.nn.softplus(reward_shift - beta * a) + jax.nn.softplus(beta * b - reward_shift)
  elif loss_type == "sppo_hard":
    values = jnp.square(a - 0.5 / beta) + jnp.square(b + 0.5 / beta)
  elif loss_type == "apo_zero":
    values = jax.nn.sigmoid(-(beta * a)) + jax.nn.sigmoid(beta * b)
  elif loss_type == "apo_down":
    values = jax.nn.sigmoid(beta * a) + jax.nn.sigmoid(-z)
  else:  # discopop
    # sigma(z/tau) e^{-z} as one exponential: no inf * 0 for large -z.
    values = jax.nn.sigmoid(-z / discopop_tau) * jax.nn.softplus(-z) + jnp.exp(
      -z - jax.nn.softplus(-z / discopop_tau)
    )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _check_sorted_type(loss_type, weights, reduction):
  """AOT's terms are ranked pairs of the whole batch: no row weights, no split sums."""
  if weights is not None:
    raise ValueError(
      f"weights cannot be used with loss_type={loss_type!r}: its terms pair the i-th "
      "smallest value of one batch-wide distribution with the i-th smallest of the "
      "other, so a term is not a row and has no row weight. Leave weights=None (mask "
      "rows with where=, which removes them from both distributions)."
    )
  if reduction == "sum_and_count":
    raise ValueError(
      f"dpo_loss(loss_type={loss_type!r}) cannot return reduction='sum_and_count': it "
      "sorts the log-ratios of the whole batch and pairs them by rank, so the sums over "
      "the parts of a split batch (microbatches, devices) do not add up to the whole "
      "batch's and an objective would compute another loss. Compute it on the whole "
      "batch with reduction='mean' or 'sum' (under shard_map, gather the rows first: "
      "jax.lax.all_gather(..., tiled=True)); as an objective term, wrap it in a function "
      "without a reduction parameter (a plain scalar term of the batch it is given)."
    )


# --------------------------------------------------------------------------
# Reference-free pairwise losses on length-averaged log-probabilities.


@register("preference", inputs=examples.AVERAGED_PAIRS)
def simpo_loss(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  *,
  beta: float | ArrayLike = 2.0,
  gamma: float | ArrayLike = 0.5,
  label_smoothing: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SimPO: a reference-free margin loss on length-normalized log-probabilities.

  .. math::
     z = \beta\,\big(\overline{\log\pi}_w - \overline{\log\pi}_l\big) - \gamma,
     \qquad \ell = -(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)

  The average log-probability per token is SimPO's implicit reward (so long
  answers are not favoured), and :math:`\gamma` is the target reward margin.
  TRL's ``CPOTrainer`` with ``loss_type="simpo"`` computes the same value as
  :math:`\beta\,((\overline{\log\pi}_w - \overline{\log\pi}_l) - \gamma/\beta)`;
  the form here does not divide by :math:`\beta`. ``label_smoothing`` is
  TRL's conservative variant (0 in the paper).

  **Inputs** are **length-averaged** log-probabilities, as TRL feeds SimPO
  (:func:`sequence_log_probs` with ``average=True``). Defaults are the SimPO
  paper's :math:`\beta = 2`, :math:`\gamma = 0.5`; TRL's ``CPOConfig`` defaults
  ``beta`` to 0.1 for all its loss types, so pass ``beta`` explicitly when
  comparing with it.

  Args:
    chosen_logps: float ``(...)``, average per-token log-probability of each
      preferred answer.
    rejected_logps: same shape, of each rejected answer.
    beta: :math:`\beta > 0` (traceable).
    gamma: target margin :math:`\gamma` (traceable).
    label_smoothing: :math:`\varepsilon` in [0, 1] (traceable).
    where, weights, reduction: the loss contract over pairs
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, or (when concrete) ``beta <= 0`` or
      ``label_smoothing`` outside [0, 1].
    TypeError: integer log-probabilities.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.simpo_loss(jnp.array([-0.5]), jnp.array([-1.0]))), 4))
    0.4741

  References:
    Meng, Xia & Chen, "SimPO: Simple Preference Optimization with a
    Reference-Free Reward", NeurIPS 2024.
  """
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  checks.check_range("label_smoothing", label_smoothing, low=0.0, high=1.0)
  chosen, rejected = _rows(where, chosen_logps=chosen_logps, rejected_logps=rejected_logps)
  z = beta * (chosen - rejected) - gamma
  values = _smoothed_logistic(z, label_smoothing)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("preference", inputs=examples.AVERAGED_PAIRS)
def orpo_odds_ratio_loss(
  chosen_logps: ArrayLike,
  rejected_logps: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""ORPO's odds-ratio term: the log-odds of the chosen answer should exceed the rejected one's.

  .. math::
     \ell = -\beta \log\sigma\big(\operatorname{logodds}_w - \operatorname{logodds}_l\big),
     \qquad \operatorname{logodds} = \log\frac{p}{1-p}
       = \overline{\log\pi} - \log\!\big(1 - e^{\overline{\log\pi}}\big)

  with :math:`p = \exp(\overline{\log\pi})` the geometric-mean token
  probability. :math:`\log(1 - e^{x})` is evaluated as ``log(-expm1(x))`` near
  0 and ``log1p(-exp(x))`` below :math:`-\log 2`, and the outer term as a
  softplus, so any log-probabilities give finite values and gradients.
  :math:`\beta` is the paper's :math:`\lambda` and TRL's ``ORPOConfig.beta``.

  This is only the odds-ratio term. The full ORPO objective adds the
  supervised NLL of the chosen answers, e.g.
  ``-jnp.mean(chosen_logps) + orpo_odds_ratio_loss(...)`` (TRL averages that
  NLL over all chosen tokens of the batch instead, which differs when answer
  lengths differ).

  **Inputs** are **length-averaged** log-probabilities, as TRL's ORPO uses
  (:func:`sequence_log_probs` with ``average=True``); they must be :math:`\le 0`.
  Degenerate but legal: an average log-probability of exactly 0
  (:math:`p = 1`, infinite odds) is taken as :math:`1 - p` = the smallest
  normal float32, so two such answers give :math:`\beta\log 2`, not NaN
  (TRL gives NaN there). Values above 0 (rounding in a log-softmax) are
  treated as 0.

  Args:
    chosen_logps: float ``(...)``, average per-token log-probability of each
      preferred answer.
    rejected_logps: same shape, of each rejected answer.
    beta: weight :math:`\beta \ge 0` of the term (traceable).
    where, weights, reduction: the loss contract over pairs
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-pair losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, or ``beta < 0`` (when concrete).
    TypeError: integer log-probabilities.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.orpo_odds_ratio_loss(
    ...     jnp.log(jnp.array([0.5])), jnp.log(jnp.array([0.2])), beta=1.0)), 4))
    0.2231

  References:
    Hong, Lee & Thorne, "ORPO: Monolithic Preference Optimization without
    Reference Model", EMNLP 2024.
  """
  checks.check_range("beta", beta, low=0.0)
  chosen, rejected = _rows(where, chosen_logps=chosen_logps, rejected_logps=rejected_logps)
  log_odds_ratio = _log_odds(chosen) - _log_odds(rejected)
  values = beta * jax.nn.softplus(-log_odds_ratio)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Unpaired (binary) feedback.


def _kto_reference_point(kl_rows, kl, where):
  """KTO's z0: the clamped, detached mean log-ratio over mismatched pairs."""
  if kl is not None:
    z0 = jnp.asarray(kl)
  elif kl_rows:
    ratio = kl_rows[0] - kl_rows[1]
    if where is None:
      z0 = jnp.mean(ratio) if ratio.size else jnp.zeros((), ratio.dtype)
    else:
      mask = jnp.broadcast_to(jnp.asarray(where), ratio.shape)
      count = jnp.sum(mask, dtype=ratio.dtype)
      z0 = jnp.sum(jnp.where(mask, ratio, 0.0)) / jnp.maximum(count, 1.0)
  else:
    return 0.0
  return jax.lax.stop_gradient(jnp.maximum(z0, 0.0))


@register(
  "preference", inputs=examples.UNPAIRED_LOGPS, couples_rows=True, coupled_by=("policy_kl_logps",)
)
def kto_loss(
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  labels: ArrayLike,
  policy_kl_logps: ArrayLike | None = None,
  reference_kl_logps: ArrayLike | None = None,
  *,
  beta: float | ArrayLike = 0.1,
  desirable_weight: float | ArrayLike = 1.0,
  undesirable_weight: float | ArrayLike = 1.0,
  kl: float | ArrayLike | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""KTO: Kahneman–Tversky optimization from unpaired desirable/undesirable answers.

  .. math::
     r = \log\pi - \log\pi^{\mathrm{ref}},\qquad
     \ell = \begin{cases}
       \lambda_D\,\big(1 - \sigma(\beta (r - z_0))\big) & \text{desirable} \\
       \lambda_U\,\big(1 - \sigma(\beta (z_0 - r))\big) & \text{undesirable}
     \end{cases}
     \qquad z_0 = \operatorname{sg}\Big(\max\big(0,\ \operatorname{mean}_i
       (\log\pi(y'_i\mid x_i) - \log\pi^{\mathrm{ref}}(y'_i\mid x_i))\big)\Big)

  The reference point :math:`z_0` estimates :math:`\mathrm{KL}(\pi\,\|\,\pi^{\mathrm{ref}})`
  from mismatched pairs (each prompt :math:`x_i` with another row's answer
  :math:`y'_i`), clamped at 0 and detached (no gradient), exactly as TRL's
  ``KTOTrainer``; :math:`1 - \sigma(u)` is computed as :math:`\sigma(-u)`.
  The mean runs over the unmasked rows only, so a masked row is left out of
  :math:`z_0` too (``weights`` do not enter it). With neither mismatched
  inputs nor ``kl``, :math:`z_0 = 0` (TRL's ``calculate_KL=False``).
  ``desirable_weight``/``undesirable_weight`` rebalance classes as in TRL; the
  mean (like TRL's) divides by the number of rows, not by these weights.

  **Inputs** are sequence log-probabilities **summed** over the answer's
  tokens, as in TRL. Rows of both kinds share one batch: ``labels`` says which
  is which (TRL splits them into chosen/rejected tensors; the per-row losses
  are the same). :math:`z_0` estimated from the mismatched pairs couples the
  rows: on a microbatch or a device's shard it is that part's own mean, not
  the whole batch's, so an objective refuses such a term under
  ``jo.accumulate_value_and_grad`` and ``apply(axis_name=...)``. Compute the
  estimate over the whole batch yourself (under data parallelism TRL averages
  it over devices, e.g. a ``jax.lax.pmean`` of the local means) and pass it
  as ``kl``; the rows are then independent.

  Args:
    policy_logps: float ``(...)``, :math:`\log\pi_\theta(y\mid x)` per answer.
    reference_logps: same shape, under the frozen reference model.
    labels: same shape, boolean (or 0/1) — True for desirable answers.
    policy_kl_logps: optional, same shape: :math:`\log\pi_\theta(y'\mid x)` of
      the mismatched pairs.
    reference_kl_logps: optional, same shape: the same under the reference.
    beta: :math:`\beta > 0` (traceable).
    desirable_weight: :math:`\lambda_D \ge 0` (traceable).
    undesirable_weight: :math:`\lambda_U \ge 0` (traceable).
    kl: optional precomputed KL estimate used for :math:`z_0` instead
      (clamped at 0, not differentiated).
    where, weights, reduction: the loss contract over rows
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, only one of the two mismatched inputs, or
      both of them and ``kl``; or (when concrete) ``beta <= 0`` or negative weights.
    TypeError: integer log-probabilities.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> lp, ref = jnp.array([-10.0, -10.0]), jnp.array([-12.0, -12.0])
    >>> print(jaxobj.kto_loss(lp, ref, jnp.array([True, False]), reduction="none"))
    [0.4502 0.5498]

  References:
    Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic
    Optimization", ICML 2024.
  """
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  checks.check_range("desirable_weight", desirable_weight, low=0.0)
  checks.check_range("undesirable_weight", undesirable_weight, low=0.0)
  arrays: dict[str, ArrayLike | None] = {
    "policy_logps": policy_logps,
    "reference_logps": reference_logps,
  }
  if (policy_kl_logps is None) != (reference_kl_logps is None):
    raise ValueError(
      "policy_kl_logps and reference_kl_logps go together: pass "
      "both (z0 is estimated from them) or neither."
    )
  if policy_kl_logps is not None:
    if kl is not None:
      raise ValueError(
        "pass either kl= (a precomputed KL estimate) or "
        "policy_kl_logps and reference_kl_logps, not both."
      )
    arrays.update(policy_kl_logps=policy_kl_logps, reference_kl_logps=reference_kl_logps)
  rows = _rows(where, **arrays)
  policy, reference = rows[:2]
  checks.check_same_shape("policy_logps", policy, "labels", labels)
  desirable = jnp.asarray(labels) != 0
  z0 = _kto_reference_point(rows[2:], kl, where)
  u = beta * ((policy - reference) - z0)
  values = jnp.where(
    desirable, desirable_weight * jax.nn.sigmoid(-u), undesirable_weight * jax.nn.sigmoid(u)
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("preference", inputs=examples.UNPAIRED_BINARY)
def bco_loss(
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  labels: ArrayLike,
  *,
  beta: float | ArrayLike = 0.1,
  reward_shift: float | ArrayLike = 0.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""BCO: binary classifier optimization from unpaired desirable/undesirable answers.

  .. math::
     r = \beta\,\big(\log\pi - \log\pi^{\mathrm{ref}}\big),\qquad
     \ell = \begin{cases}
       -\log\sigma(r - \delta) & \text{desirable} \\
       -\log\sigma(\delta - r) & \text{undesirable}
     \end{cases}

  The implicit reward :math:`r` is the logit of a binary classifier that tells
  desirable answers (label 1) from undesirable ones (label 0); its loss is the
  binary cross-entropy, computed as a softplus (exact for any :math:`r`). The
  reward shift :math:`\delta` (``reward_shift``) centres the classifier: Jung et
  al. and TRL's ``BCOTrainer`` use the running mean of the implicit rewards of
  every answer seen so far, this step's batch included (a cumulative mean
  over steps, not differentiated). Keep that mean yourself and pass it, e.g.
  ``delta = (n * delta + jnp.sum(sg(r))) / (n + r.size)`` with ``n`` answers
  seen before this batch (``sg = jax.lax.stop_gradient``): the rows then stay
  independent, so the loss splits exactly over microbatches and devices.
  ``reward_shift=0`` is the uncentred classifier.

  TRL's underlying-distribution matching (UDM) multiplies the undesirable
  rows' losses by density-ratio weights and still divides by the number of
  rows: pass those weights (1 for desirable rows) as ``weights`` with
  ``reduction="sum"`` and divide by the number of rows. The pairwise form,
  two terms per preference pair, is ``dpo_loss(loss_type="bco_pair")``.

  **Inputs** are sequence log-probabilities **summed** over the answer's
  tokens, as in TRL. Rows of both kinds share one batch: ``labels`` says which
  is which (TRL splits them into chosen/rejected tensors and concatenates the
  per-row losses: the same numbers, in another order).

  Args:
    policy_logps: float ``(...)``, :math:`\log\pi_\theta(y\mid x)` per answer.
    reference_logps: same shape, under the frozen reference model.
    labels: same shape, boolean (or 0/1): True for desirable answers.
    beta: :math:`\beta > 0` (traceable).
    reward_shift: :math:`\delta`, on the reward scale :math:`\beta\,(\log\pi -
      \log\pi^{\mathrm{ref}})` (traceable; pass it detached).
    where, weights, reduction: the loss contract over rows
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-row losses for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, or ``beta <= 0`` (when concrete).
    TypeError: integer log-probabilities.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> lp, ref = jnp.array([-10.0, -10.0]), jnp.array([-12.0, -12.0])
    >>> print(jaxobj.bco_loss(lp, ref, jnp.array([True, False]), reduction="none"))
    [0.5981 0.7981]

  References:
    Jung et al., "Binary Classifier Optimization for Large Language Model
    Alignment", 2024.
  """
  checks.check_range("beta", beta, low=0.0, low_inclusive=False)
  policy, reference = _rows(where, policy_logps=policy_logps, reference_logps=reference_logps)
  checks.check_same_shape("policy_logps", policy, "labels", labels)
  desirable = jnp.asarray(labels) != 0
  u = beta * (policy - reference) - reward_shift
  values = jax.nn.softplus(jnp.where(desirable, -u, u))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# The KL-regularized RLHF objective from samples.


@register("preference", inputs=examples.SAMPLED_LOGPS, zero_hessian="linear in the rewards")
def rlhf_loss(
  rewards: ArrayLike,
  policy_logps: ArrayLike,
  reference_logps: ArrayLike,
  *,
  beta: float | ArrayLike = 0.05,
  kl_estimator: str = "k1",
  gradient: str = "score_function",
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""The KL-regularized RLHF objective, -reward + beta KL(pi || pi_ref), from samples.

  .. math::
     \ell_i = -r_i + \beta\,k(d_i),\qquad d_i = \log\pi^{\mathrm{ref}}(y_i) - \log\pi(y_i),
     \qquad k(d) = \begin{cases} -d & \texttt{k1} \\ \tfrac12 d^2 & \texttt{k2} \\
       e^{d} - 1 - d & \texttt{k3} \end{cases}

  for answers :math:`y_i \sim \pi` sampled from the policy. Schulman's
  estimators of :math:`\mathrm{KL}(\pi\|\pi^{\mathrm{ref}})` with ratio
  :math:`\rho = \pi^{\mathrm{ref}}/\pi = e^d`: ``k1`` (TRL's default) is
  unbiased but can be negative per sample; ``k3`` is unbiased and never
  negative; ``k2`` is biased with low variance. TRL's ``kl_estimator`` options
  ``"k1"``/``"k3"`` are the same functions (its ``kl_coef`` is ``beta``); here
  :math:`e^d - 1 - d` is computed without cancellation near :math:`d = 0`.

  **Gradient.** The value is the plain sample mean, but the answers were drawn
  from :math:`\pi_\theta` itself, so differentiating the value alone (``gradient=
  "pathwise"``) gives only :math:`\beta\,\nabla k` and drops the reward's
  policy gradient entirely. The default ``gradient="score_function"`` adds
  :math:`\operatorname{sg}(\ell_i)\,(\log\pi(y_i) - \operatorname{sg}(\log\pi(y_i)))`,
  which is 0 in value, so ``jax.grad`` with respect to the model parameters
  behind ``policy_logps`` is the unbiased REINFORCE estimate of
  :math:`\nabla_\theta \mathbb{E}_{y\sim\pi_\theta}[\ell(y)]`
  (:math:`\ell_i \nabla\log\pi + \nabla\ell_i`). No baseline is subtracted:
  to reduce variance pass centred rewards (e.g. minus a leave-one-out mean,
  as RLOO does), which shifts the value by a constant. The rewards themselves
  get the pathwise gradient :math:`-1` per sample either way.

  **Inputs** are log-probabilities of each sampled answer **summed** over its
  tokens (a sequence-level KL). For TRL's per-token penalty pass per-token
  arrays ``(B, T)`` with the reward placed on its token (e.g. the last) and a
  token mask as ``where``: the loss is elementwise.

  Overflow: ``k3`` grows like :math:`e^d`; past :math:`d \approx 88` nats
  (the policy giving a sample :math:`e^{-88}` times the reference's
  probability) it is inf in float32 (the score-function term then adds
  nothing instead of NaN). Use ``k1`` or per-token log-probabilities there.

  Args:
    rewards: float ``(...)``, the reward of each sampled answer.
    policy_logps: same shape, :math:`\log\pi_\theta(y_i)` of the sample.
    reference_logps: same shape, :math:`\log\pi^{\mathrm{ref}}(y_i)`.
    beta: KL coefficient :math:`\beta \ge 0` (traceable).
    kl_estimator: ``"k1"`` (default), ``"k2"`` or ``"k3"``.
    gradient: ``"score_function"`` (default) or ``"pathwise"`` (see above).
    where, weights, reduction: the loss contract over samples
      (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss (the negated KL-regularized return); per-sample values
    for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, an unknown ``kl_estimator`` or ``gradient``, or
      ``beta < 0`` (when concrete).
    TypeError: integer inputs.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> r, lp, ref = jnp.array([1.0, 2.0]), jnp.array([-3.0, -5.0]), jnp.array([-4.0, -4.0])
    >>> print(jaxobj.rlhf_loss(r, lp, ref, beta=0.5, reduction="none"))
    [-0.5 -2.5]
    >>> print(jax.grad(lambda p: jaxobj.rlhf_loss(r, p, ref, beta=0.5, reduction="sum"))(lp))
    [ 0. -2.]

  References:
    Ouyang et al., "Training language models to follow instructions with
    human feedback", 2022; Schulman, "Approximating KL Divergence", 2020
    (k1, k2, k3); Williams, "Simple statistical gradient-following
    algorithms", 1992 (REINFORCE).
  """
  checks.check_choice("kl_estimator", kl_estimator, KL_ESTIMATORS)
  checks.check_choice("gradient", gradient, RLHF_GRADIENTS)
  checks.check_range("beta", beta, low=0.0)
  r, policy, reference = _rows(
    where, rewards=rewards, policy_logps=policy_logps, reference_logps=reference_logps
  )
  d = reference - policy
  if kl_estimator == "k1":
    k = -d
  elif kl_estimator == "k2":
    k = 0.5 * jnp.square(d)
  else:
    k = numerics.expm1_minus_x(d)
  values = beta * k - r
  if gradient == "score_function":
    weight = jax.lax.stop_gradient(values)
    weight = jnp.where(jnp.isfinite(weight), weight, 0.0)
    values = values + weight * (policy - jax.lax.stop_gradient(policy))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
