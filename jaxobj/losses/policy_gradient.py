r"""Policy-gradient losses for LLM post-training: the GRPO family, and group advantages.

One row is one sampled **completion** (a sequence): every per-token input has
the shape ``(..., T)``, batch axes leading and tokens last, and
``reduction="none"`` gives one value per completion, shape ``(...)``.
``where``/``weights`` index completions (a masked row behaves as if sliced out
of the batch); the token mask is the separate keyword ``completion_mask``, as
in Hugging Face TRL.

:func:`policy_gradient_loss` is the clipped surrogate of PPO with the
variants of GRPO, DAPO, Dr. GRPO, GSPO and CISPO (option names follow TRL's
``GRPOConfig``); :func:`group_advantages` computes group-relative advantages
from rewards (GRPO, Dr. GRPO, RLOO); :data:`POLICY_GRADIENT_PRESETS` and
:func:`policy_gradient_preset` name the methods' settings.

Every aggregation is exact when the batch is split: the loss returns
``(sum, count)`` under ``reduction="sum_and_count"``, so an objective that
accumulates microbatches or ``psum``\ s over devices divides once, by the
whole batch's count (for DAPO the number of valid tokens of the *global*
batch).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import policy_gradient as token_math
from jaxobj._src.examples import policy_gradient as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss, reduce_total
from jaxobj.registry import register

__all__ = [
  "group_advantages",
  "policy_gradient_loss",
  "policy_gradient_preset",
]

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo", "cispo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence", "sequence_token")
KL_ESTIMATORS = ("k1", "k2", "k3")
ADVANTAGE_SCALES = ("group", "batch", "none")
ADVANTAGE_BASELINES = ("mean", "leave_one_out")

# Log importance ratios are clamped to [-LOG_RATIO_BOUND, LOG_RATIO_BOUND]
# before exp (see jaxobj._src.policy_gradient).
LOG_RATIO_BOUND = token_math.LOG_RATIO_BOUND

# The methods' settings of policy_gradient_loss (their papers' defaults).
POLICY_GRADIENT_PRESETS: dict[str, dict[str, Any]] = {
  # Shao et al. 2024: token ratios, per-sequence token mean, k3 KL with beta 0.04.
  "grpo": {"loss_type": "grpo", "epsilon": 0.2, "beta": 0.04, "kl_estimator": "k3"},
  # Yu et al. 2025: clip-higher (0.2, 0.28), token mean over the batch, no KL.
  "dapo": {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28, "beta": 0.0},
  # Liu et al. 2025: token sum over a constant (sequences x max length), no KL.
  "dr_grpo": {"loss_type": "dr_grpo", "epsilon": 0.2, "beta": 0.0},
  # Zheng et al. 2025: length-normalized sequence ratio, clip range (3e-4, 4e-4).
  "gspo": {
    "loss_type": "grpo",
    "importance_sampling_level": "sequence",
    "epsilon": 3e-4,
    "epsilon_high": 4e-4,
    "beta": 0.0,
  },
  # Schulman et al. 2017: PPO-clip, token ratios, mean over the batch's tokens.
  "ppo": {"loss_type": "dapo", "epsilon": 0.2, "beta": 0.0},
  # MiniMax 2025: stopped IS weight capped at 5 (1 + 4), no lower bound.
  "cispo": {"loss_type": "cispo", "epsilon": 1.0, "epsilon_high": 4.0, "beta": 0.0},
}

# The advantages each method uses, as keyword arguments of group_advantages
# (None: advantages from a learned value function, e.g. GAE, not from groups).
ADVANTAGE_PRESETS: dict[str, dict[str, Any] | None] = {
  "grpo": {"scale": "group", "baseline": "mean"},
  "dapo": {"scale": "group", "baseline": "mean"},
  "dr_grpo": {"scale": "none", "baseline": "mean"},
  "gspo": {"scale": "group", "baseline": "mean"},
  "ppo": None,
  "cispo": {"scale": "group", "baseline": "mean"},
  "rloo": {"scale": "none", "baseline": "leave_one_out"},
}


# --------------------------------------------------------------------------
# Shared preparation.


def _token_inputs(policy_logps, named: dict[str, ArrayLike | None]) -> list[jax.Array | None]:
  """Checked float per-token inputs of ``policy_logps``'s shape (None stays None)."""
  lp = checks.as_float(policy_logps, "policy_logps")
  if lp.ndim < 1:
    raise ValueError(
      f"policy_logps must have a token axis, got policy_logps.shape={lp.shape}; expected "
      f"(..., T): one row of T per-token log-probabilities per completion."
    )
  out: list[jax.Array | None] = [lp]
  for name, x in named.items():
    if x is None:
      out.append(None)
      continue
    checks.check_same_shape("policy_logps", lp, name, x)
    out.append(checks.as_float(x, name))
  return out


def _advantages(advantages: ArrayLike, shape: tuple[int, ...]) -> jax.Array:
  a = checks.as_float(advantages, "advantages")
  if a.shape != shape[:-1] and a.shape != shape:
    raise ValueError(
      f"advantages must have one value per completion, shape policy_logps.shape[:-1]="
      f"{shape[:-1]}, or one per token, shape policy_logps.shape={shape}; got "
      f"advantages.shape={a.shape}. Reshape them explicitly: jaxobj never broadcasts "
      f"them silently."
    )
  return a


def _is_zero(x) -> bool:
  return checks.is_concrete(x) and bool(np.all(np.asarray(x) == 0))


# --------------------------------------------------------------------------
# The loss.


@register("policy_gradient", inputs=examples.COMPLETIONS)
def policy_gradient_loss(
  policy_logps: ArrayLike,
  old_logps: ArrayLike,
  advantages: ArrayLike,
  reference_logps: ArrayLike | None = None,
  *,
  completion_mask: ArrayLike | None = None,
  loss_type: str = "grpo",
  epsilon: float | ArrayLike = 0.2,
  epsilon_high: float | ArrayLike | None = None,
  delta: float | ArrayLike | None = None,
  importance_sampling_level: str = "token",
  beta: float | ArrayLike = 0.0,
  kl_estimator: str = "k3",
  entropy: ArrayLike | None = None,
  entropy_coef: float | ArrayLike | None = None,
  max_completion_length: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Clipped policy-gradient loss of PPO, GRPO, DAPO, Dr. GRPO, GSPO and CISPO, per completion.

  Per token :math:`t` of completion :math:`i` (valid tokens :math:`m_{i,t}`,
  :math:`n_i = \sum_t m_{i,t}` of them), with the log importance ratio
  :math:`\Delta_{i,t} = \log\pi_\theta - \log\pi_{\mathrm{old}}`:

  .. math::
     \log w_{i,t} = \begin{cases}
       \Delta_{i,t} & \texttt{token} \\
       \bar\Delta_i = \tfrac{1}{n_i}\textstyle\sum_t m_{i,t}\Delta_{i,t}
         & \texttt{sequence} \\
       \operatorname{sg}(\bar\Delta_i) + \log\pi_\theta - \operatorname{sg}(\log\pi_\theta)
         & \texttt{sequence\_token}
     \end{cases}
     \qquad w = e^{\operatorname{clip}(\log w,\,-20,\,20)}

  .. math::
     \ell_{i,t} = \begin{cases}
       -\min\!\big(\min(w, \delta)\,A_{i,t},\
                   \operatorname{clip}(w, 1-\varepsilon, 1+\varepsilon_h)\,A_{i,t}\big)
         & \texttt{grpo, bnpo, dapo, dr\_grpo} \\
       -\operatorname{sg}\!\big(\operatorname{clip}(w, 1-\varepsilon, 1+\varepsilon_h)\big)
         \,A_{i,t}\,\log\pi_\theta & \texttt{cispo}
     \end{cases}
     \;+\ \beta\,k(\log\pi_{\mathrm{ref}} - \log\pi_\theta)\ -\ c\,H_{i,t}

  with :math:`k` the ``k1`` (:math:`-d`), ``k2`` (:math:`d^2/2`) or ``k3``
  (:math:`e^d - 1 - d`) estimator of :math:`\mathrm{KL}(\pi_\theta\Vert\pi_{\mathrm{ref}})`
  and :math:`H` an optional per-token entropy. The completions are then
  aggregated by ``loss_type``, with :math:`S_i = \sum_t m_{i,t}\ell_{i,t}`:

  .. math::
     \texttt{grpo: } \frac{1}{N}\sum_i \frac{S_i}{\max(n_i, 1)} \qquad
     \texttt{bnpo, dapo, cispo: } \frac{\sum_i S_i}{\sum_i n_i} \qquad
     \texttt{dr\_grpo: } \frac{\sum_i S_i}{N\,L}

  **Variants.** The clipped surrogate is PPO's (Schulman et al. 2017); GRPO
  (Shao et al. 2024) averages it over each completion's tokens, adds the KL
  penalty to the reference per token, and uses group-relative advantages
  (:func:`group_advantages`). DAPO (Yu et al. 2025) clips asymmetrically
  (``epsilon_high`` :math:`\varepsilon_h` above ``epsilon`` :math:`\varepsilon`,
  "clip-higher") and averages over all tokens of the batch; Dr. GRPO (Liu et
  al. 2025) divides the token sum by a constant, :math:`N` completions times
  ``max_completion_length`` :math:`L`, removing the length bias. GSPO (Zheng
  et al. 2025) uses one length-normalized ratio per completion
  (``importance_sampling_level="sequence"``, TRL's convention
  :math:`\exp\bar\Delta_i`); ``"sequence_token"`` is GSPO-token, whose value is
  the same but whose gradient flows through each token's log-probability.
  ``delta`` is TRL's two-sided clipping: for negative advantages the unclipped
  ratio is capped at :math:`\delta` too. CISPO (MiniMax 2025) weights the
  REINFORCE term by the clipped, stopped ratio, so clipped tokens keep their
  gradient. :data:`POLICY_GRADIENT_PRESETS` has each method's settings.

  **TRL.** The per-token loss, the KL term (added only where ``beta`` is
  nonzero in TRL; here whenever ``reference_logps`` is given, times ``beta``)
  and the ``grpo``/``dr_grpo``/``dapo`` aggregations are those of TRL's
  ``GRPOTrainer``. Differences: TRL's ``bnpo`` divides by the tokens of each
  local (per-device, per-microbatch) batch; here ``bnpo`` and ``dapo`` are the
  same, exact over the whole batch under splitting. TRL's ``cispo`` clamps the
  ratio as :math:`\min(w, \varepsilon_h)` (``epsilon_high`` an absolute cap,
  5.0 recommended, no lower bound); here the bounds are
  :math:`[1-\varepsilon, 1+\varepsilon_h]` as in the paper, so TRL's
  ``epsilon_high=5.0`` is ``epsilon=1.0, epsilon_high=4.0`` (the ``cispo``
  preset). Log-ratios are clamped to :math:`\pm 20` before ``exp``
  (``LOG_RATIO_BOUND``), and ``k3`` continues linearly past :math:`d = 20`,
  so a very stale behaviour policy gives finite values and gradients;
  ratios beyond :math:`e^{\pm 20}` are far outside any clip range.

  **Rows and tokens.** A completion whose ``completion_mask`` is all False
  contributes 0; it still counts as one completion in ``grpo`` and
  ``dr_grpo`` (as in TRL) and adds no token to the ``dapo`` count. Its
  sequence-level ratio is taken as 1 (no valid token to average).
  ``reduction="none"`` gives each completion's contribution to the sum:
  :math:`S_i / \max(n_i, 1)` (``grpo``), :math:`S_i / L` (``dr_grpo``) or
  :math:`S_i` (``bnpo``, ``dapo``, ``cispo``); ``"mean"`` divides their sum
  by the number of completions (``grpo``, ``dr_grpo``: the mean of
  ``"none"``) or by the number of valid tokens (``bnpo``, ``dapo``,
  ``cispo``). With ``weights`` :math:`v_i` the sums are weighted and the
  denominators are :math:`\sum_i v_i` and :math:`\sum_i v_i n_i`.
  ``"sum_and_count"`` returns that sum and denominator, which objectives add
  over microbatches and devices. For ``dr_grpo`` pass ``max_completion_length``
  when microbatches are padded to different lengths (its default is ``T``).

  Args:
    policy_logps: float ``(..., T)``, :math:`\log\pi_\theta` of each sampled
      token under the policy being trained.
    old_logps: same shape, under the behaviour policy that sampled them (pass
      ``jax.lax.stop_gradient(policy_logps)`` for a fully on-policy step).
    advantages: float ``(...)``, one per completion, or ``(..., T)``, one per token.
    reference_logps: optional, same shape as ``policy_logps``, under the
      frozen reference model; required when ``beta`` is not 0.
    completion_mask: optional boolean token mask broadcastable to ``(..., T)``
      (False for padding after the completion); default all tokens valid.
    loss_type: ``"grpo"`` (default), ``"bnpo"``, ``"dapo"``, ``"dr_grpo"`` or
      ``"cispo"``: the aggregation (and for ``"cispo"`` the per-token loss).
    epsilon: lower clip range :math:`\varepsilon \in [0, 1]`, the ratio's
      lower bound is :math:`1 - \varepsilon` (traceable).
    epsilon_high: upper clip range :math:`\varepsilon_h \ge 0` (default
      ``epsilon``; traceable).
    delta: optional cap :math:`\delta \ge 1 + \varepsilon_h` of the unclipped
      ratio (two-sided clipping; not for ``"cispo"``).
    importance_sampling_level: ``"token"`` (default), ``"sequence"`` (GSPO)
      or ``"sequence_token"`` (GSPO-token).
    beta: KL coefficient :math:`\beta \ge 0` (traceable); not 0 needs
      ``reference_logps``.
    kl_estimator: ``"k3"`` (default, TRL's), ``"k1"`` or ``"k2"``.
    entropy: optional float ``(..., T)``, the policy's entropy at each token.
    entropy_coef: the entropy bonus :math:`c` (traceable); given with ``entropy``.
    max_completion_length: :math:`L` of ``"dr_grpo"`` (default ``T``).
    where, weights, reduction: the loss contract over completions, shape
      ``(...)``; see above for the denominators.

  Returns:
    The reduced loss; ``(...)`` per-completion contributions for
    ``reduction="none"``; ``(sum, count)`` for ``"sum_and_count"``.

  Raises:
    ValueError: shapes of the per-token inputs differ (both named), advantages
      neither ``(...)`` nor ``(..., T)``, an unknown ``loss_type``,
      ``importance_sampling_level`` or ``kl_estimator``, ``epsilon`` outside
      ``[0, 1]``, ``epsilon_high < 0``, ``delta < 1 + epsilon_high``, ``delta``
      with ``"cispo"``, ``beta < 0`` or ``beta`` not 0 (or traced) without
      ``reference_logps``, ``entropy`` without ``entropy_coef`` or the reverse,
      ``max_completion_length < 1``.
    TypeError: integer log-probabilities, a non-boolean ``completion_mask``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> lp = jnp.log(jnp.array([[0.5, 0.4, 0.9], [0.2, 0.3, 0.6]]))
    >>> old = jnp.log(jnp.array([[0.5, 0.2, 0.9], [0.2, 0.3, 0.3]]))
    >>> adv = jnp.array([1.0, -1.0])
    >>> mask = jnp.array([[True, True, True], [True, True, False]])
    >>> # Row 0: ratios 1, 2 -> 1.2 (clipped), 1; row 1: ratios 1, 1 (third token masked).
    >>> loss = jaxobj.policy_gradient_loss(lp, old, adv, completion_mask=mask, reduction="none")
    >>> print(loss.round(4))
    [-1.0667  1.    ]
    >>> dapo = jaxobj.policy_gradient_loss(lp, old, adv, completion_mask=mask, loss_type="dapo")
    >>> print(round(float(dapo), 4))  # (-3.2 + 2) / 5 tokens
    -0.24

  References:
    Schulman et al., "Proximal Policy Optimization Algorithms", 2017;
    Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning
    in Open Language Models", 2024 (GRPO); Yu et al., "DAPO: An Open-Source
    LLM Reinforcement Learning System at Scale", 2025; Liu et al.,
    "Understanding R1-Zero-Like Training: A Critical Perspective", 2025
    (Dr. GRPO); Zheng et al., "Group Sequence Policy Optimization", 2025
    (GSPO); MiniMax, "MiniMax-M1: Scaling Test-Time Compute Efficiently with
    Lightning Attention", 2025 (CISPO); Schulman, "Approximating KL
    Divergence", 2020 (k1, k2, k3).
  """
  checks.check_choice("loss_type", loss_type, LOSS_TYPES)
  checks.check_choice(
    "importance_sampling_level", importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS
  )
  checks.check_choice("kl_estimator", kl_estimator, KL_ESTIMATORS)
  checks.check_reduction(reduction)
  checks.check_range("epsilon", epsilon, low=0.0, high=1.0)
  if epsilon_high is not None:
    checks.check_real("epsilon_high", epsilon_high, loss="policy_gradient_loss")
    checks.check_range("epsilon_high", epsilon_high, low=0.0)
  eps_high = epsilon if epsilon_high is None else epsilon_high
  if delta is not None:
    checks.check_real("delta", delta, loss="policy_gradient_loss")
    if loss_type == "cispo":
      raise ValueError(
        f"delta={delta!r} caps the unclipped ratio of the clipped losses; loss_type='cispo' "
        f"has no unclipped ratio. Drop delta, or bound the weight with epsilon_high."
      )
    if checks.is_concrete(delta) and checks.is_concrete(eps_high):
      if np.any(np.asarray(delta) < 1.0 + np.asarray(eps_high)):
        raise ValueError(
          f"delta must be at least 1 + epsilon_high = {1.0 + np.asarray(eps_high)!r} (it caps "
          f"the ratio above the clip range), got delta={delta!r}."
        )
  checks.check_range("beta", beta, low=0.0)
  if reference_logps is None and not _is_zero(beta):
    what = " is traced" if not checks.is_concrete(beta) else f"={beta!r}"
    raise ValueError(
      f"beta{what} but reference_logps is None: the KL penalty needs the reference "
      f"model's per-token log-probabilities. Pass reference_logps=..., or beta=0.0."
    )
  if (entropy is None) != (entropy_coef is None):
    given, missing = (
      ("entropy", "entropy_coef") if entropy is not None else ("entropy_coef", "entropy")
    )
    raise ValueError(
      f"{given} is given but {missing} is None: the entropy bonus -entropy_coef * entropy "
      f"needs both. Pass {missing}=..., or neither."
    )
  if entropy_coef is not None:
    checks.check_real("entropy_coef", entropy_coef, loss="policy_gradient_loss")
  if max_completion_length is not None:
    checks.check_int("max_completion_length", max_completion_length, loss="policy_gradient_loss")
    if max_completion_length < 1:
      raise ValueError(
        f"max_completion_length must be at least 1, got max_completion_length="
        f"{max_completion_length!r}."
      )

  lp, old, ref, ent = _token_inputs(
    policy_logps, {"old_logps": old_logps, "reference_logps": reference_logps, "entropy": entropy}
  )
  assert lp is not None and old is not None
  shape = lp.shape
  rows, num_tokens = shape[:-1], shape[-1]
  adv = _advantages(advantages, shape)
  dtype = jnp.result_type(*(x for x in (lp, old, ref, ent, adv) if x is not None))

  # Masked rows and tokens are zeroed before any arithmetic ("double where"):
  # a NaN or a stale 1e4 there must reach neither the value nor the gradient.
  def prepare(x: jax.Array | None, tokens: bool = True) -> jax.Array | None:
    if x is None:
      return None
    x = masked_fill(where, x.astype(dtype), rows, axis_extra=int(tokens))
    return x if mask is None or not tokens else jnp.where(mask, x, 0.0)

  mask = None
  if completion_mask is not None:
    mask = checks.as_mask(
      completion_mask, shape, name="completion_mask", to="the per-token shape (..., T)"
    )
    mask = jnp.broadcast_to(mask, shape)
  lp, old, ref, ent = (prepare(x) for x in (lp, old, ref, ent))
  adv = cast(jax.Array, prepare(adv, tokens=adv.ndim == len(shape)))
  assert lp is not None and old is not None
  if adv.ndim < len(shape):
    adv = adv[..., None]
  if mask is None:
    n = jnp.full(rows, num_tokens, dtype)
  else:
    n = jnp.sum(mask, axis=-1, dtype=dtype)

  log_ratio = lp - old
  if importance_sampling_level == "token":
    log_w = log_ratio
  else:
    # Length-normalized sequence log-ratio (GSPO); 0 (ratio 1) without valid tokens.
    seq = (jnp.sum(log_ratio, axis=-1) / jnp.maximum(n, 1.0))[..., None]
    if importance_sampling_level == "sequence":
      log_w = jnp.broadcast_to(seq, shape)
    else:
      sg = jax.lax.stop_gradient
      log_w = sg(seq) + lp - sg(lp)
  values = token_math.clipped_token_loss(
    log_w, lp, adv, epsilon, eps_high, delta, cispo=loss_type == "cispo"
  )
  if ref is not None:
    values = values + beta * token_math.kl_estimate(ref - lp, kl_estimator)
  if ent is not None and entropy_coef is not None:
    values = values - entropy_coef * ent
  if mask is not None:
    values = jnp.where(mask, values, 0.0)
  total = jnp.sum(values, axis=-1)

  if loss_type == "grpo":
    return reduce_loss(
      total / jnp.maximum(n, 1.0), where=where, weights=weights, reduction=reduction
    )
  if loss_type == "dr_grpo":
    length = num_tokens if max_completion_length is None else max_completion_length
    return reduce_loss(total / max(length, 1), where=where, weights=weights, reduction=reduction)
  # Token means over the batch: the count is the batch's valid tokens.
  per_row = cast(jax.Array, reduce_loss(total, where=where, weights=weights, reduction="none"))
  if reduction == "none":
    return per_row
  count = cast(jax.Array, reduce_loss(n, where=where, weights=weights, reduction="none"))
  return reduce_total(jnp.sum(per_row), jnp.sum(count), reduction)


def policy_gradient_preset(name: str, **overrides: Any) -> Callable[..., Reduced]:
  """:func:`policy_gradient_loss` with a method's settings (:data:`POLICY_GRADIENT_PRESETS`).

  Args:
    name: ``"grpo"``, ``"dapo"``, ``"dr_grpo"``, ``"gspo"``, ``"ppo"`` or ``"cispo"``.
    **overrides: keyword arguments that replace or add to the preset's.

  The ``"grpo"`` preset has the paper's KL penalty (``beta=0.04``), so it
  needs ``reference_logps``; the others have none. The matching advantages
  are in ``ADVANTAGE_PRESETS`` (keyword arguments of :func:`group_advantages`).

  Returns:
    ``functools.partial(jaxobj.policy_gradient_loss, **settings)``: a loss
    with the same contract, usable as an objective's term.

  Raises:
    ValueError: an unknown ``name``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> dapo = jaxobj.policy_gradient_preset("dapo")
    >>> lp = jnp.log(jnp.array([[0.5, 0.4]]))
    >>> print(round(float(dapo(lp, lp - 1.0, jnp.array([1.0]))), 4))  # ratio e clipped at 1.28
    -1.28
  """
  checks.check_choice("name", name, tuple(POLICY_GRADIENT_PRESETS))
  return functools.partial(policy_gradient_loss, **{**POLICY_GRADIENT_PRESETS[name], **overrides})


# --------------------------------------------------------------------------
# Advantages.


def group_advantages(
  rewards: ArrayLike,
  *,
  group_size: int | None = None,
  group_ids: ArrayLike | None = None,
  scale: str = "group",
  baseline: str = "mean",
  epsilon: float | ArrayLike = 1e-4,
) -> jax.Array:
  r"""Group-relative advantages from rewards: GRPO, Dr. GRPO and RLOO.

  For completion :math:`i` in a group :math:`g` of :math:`G` completions of the
  same prompt, with group mean :math:`\bar r_g` and unbiased group standard
  deviation :math:`s_g`:

  .. math::
     A_i = \frac{r_i - b_i}{\sigma_i + \epsilon},\qquad
     b_i = \begin{cases} \bar r_g & \texttt{mean} \\
       \frac{1}{G-1}\sum_{j \in g,\, j \ne i} r_j & \texttt{leave\_one\_out}
     \end{cases},\qquad
     \sigma_i = \begin{cases} s_g & \texttt{group} \\ s & \texttt{batch} \\
       \text{(no division)} & \texttt{none} \end{cases}

  with :math:`s` the unbiased standard deviation of the whole batch's
  rewards (along the last axis). ``scale`` is TRL's ``scale_rewards``:
  ``"group"`` is GRPO (Shao et al. 2024), ``"batch"`` scales by the batch's
  spread instead (Lite PPO), ``"none"`` is Dr. GRPO (Liu et al. 2025), which
  drops the division as a source of difficulty bias. The leave-one-out baseline
  is RLOO's (Ahmadian et al. 2024): :math:`r_i - b_i = \frac{G}{G-1}(r_i - \bar r_g)`.

  **Degenerate groups** (a single completion, or all rewards equal) give
  exactly 0, never NaN (torch's unbiased std of one value is NaN). Rewards
  are float at least float32; a NaN reward makes its group's advantages NaN.

  Args:
    rewards: float ``(..., N)``: the rewards of ``N`` completions (groups lie
      along the last axis).
    group_size: ``G``: consecutive groups of ``G`` completions (TRL's
      ``num_generations``); must divide ``N``.
    group_ids: integer ``(..., N)`` ids instead: completions with equal ids
      form a group, in any order and of any sizes (costs ``N x N``
      comparisons). Give exactly one of ``group_size`` and ``group_ids``.
    scale: ``"group"`` (default), ``"batch"`` or ``"none"``.
    baseline: ``"mean"`` (default) or ``"leave_one_out"``.
    epsilon: :math:`\epsilon \ge 0` added to the standard deviation (TRL's 1e-4).

  Returns:
    float ``(..., N)``, the advantages, at least float32.

  Raises:
    ValueError: both or neither of ``group_size`` and ``group_ids``, a group
      size that does not divide ``N``, ``group_ids`` of another shape, an
      unknown ``scale`` or ``baseline``, ``epsilon < 0``.
    TypeError: integer rewards, non-integer ``group_ids``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> r = jnp.array([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])  # the second group is degenerate
    >>> print(jaxobj.group_advantages(r, group_size=3, epsilon=0.0).round(4))
    [ 1.1547 -0.5774 -0.5774  0.      0.      0.    ]
    >>> print(jaxobj.group_advantages(r, group_size=3, scale="none", baseline="leave_one_out"))
    [ 1.  -0.5 -0.5  0.   0.   0. ]

  References:
    Shao et al., "DeepSeekMath", 2024 (GRPO); Liu et al., "Understanding
    R1-Zero-Like Training: A Critical Perspective", 2025 (Dr. GRPO);
    Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style
    Optimization for Learning from Human Feedback in LLMs", 2024 (RLOO).
  """
  checks.check_choice("scale", scale, ADVANTAGE_SCALES)
  checks.check_choice("baseline", baseline, ADVANTAGE_BASELINES)
  checks.check_real("epsilon", epsilon, loss="group_advantages")
  checks.check_range("epsilon", epsilon, low=0.0)
  r = checks.as_float(rewards, "rewards")
  if r.ndim < 1:
    raise ValueError(
      f"rewards must have a completion axis, got rewards.shape={r.shape}; expected (..., N)."
    )
  num = r.shape[-1]
  if (group_size is None) == (group_ids is None):
    raise ValueError(
      "group_advantages needs exactly one of group_size (consecutive groups of that size) "
      f"and group_ids (a group id per completion), got group_size={group_size!r} and "
      f"group_ids={'None' if group_ids is None else 'an array'}."
    )
  if group_size is not None:
    checks.check_int("group_size", group_size, loss="group_advantages")
    if group_size < 1 or num % group_size:
      raise ValueError(
        f"group_size={group_size!r} does not divide the {num} rewards (rewards.shape="
        f"{r.shape}): every group must be complete. Pass group_ids for groups of "
        f"different sizes."
      )
    g = r.reshape(r.shape[:-1] + (num // group_size, group_size))
    size = jnp.asarray(group_size, r.dtype)
    mean = jnp.mean(g, axis=-1, keepdims=True)
    centered = g - mean
    equal = jnp.max(g, axis=-1, keepdims=True) == jnp.min(g, axis=-1, keepdims=True)
    squares = jnp.sum(jnp.square(centered), axis=-1, keepdims=True)
    centered, equal, squares = (
      jnp.broadcast_to(x, g.shape).reshape(r.shape) for x in (centered, equal, squares)
    )
  else:
    ids = jnp.asarray(group_ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise TypeError(
        f"group_ids must be integer ids, got dtype {ids.dtype}; cast with "
        f"group_ids.astype(jnp.int32)."
      )
    checks.check_same_shape("rewards", r, "group_ids", ids)
    same = ids[..., :, None] == ids[..., None, :]
    others = jnp.broadcast_to(r[..., None, :], same.shape)
    size = jnp.sum(same, axis=-1, dtype=r.dtype)
    mean = jnp.sum(jnp.where(same, others, 0.0), axis=-1) / size
    centered = r - mean
    big = jnp.where(same, others, -jnp.inf).max(axis=-1)
    small = jnp.where(same, others, jnp.inf).min(axis=-1)
    equal = big == small
    squares = jnp.sum(jnp.where(same, jnp.square(others - mean[..., None]), 0.0), axis=-1)
  several = size > 1
  if baseline == "leave_one_out":
    centered = centered * (size / jnp.where(several, size - 1.0, 1.0))
  if scale == "group":
    variance = squares / jnp.where(several, size - 1.0, 1.0)
    centered = centered / (_safe_sqrt(variance) + epsilon)
  elif scale == "batch":
    variance = jnp.var(r, axis=-1, keepdims=True, ddof=1) if num > 1 else jnp.zeros_like(r)
    centered = centered / (_safe_sqrt(variance) + epsilon)
  # A lone completion or equal rewards: exactly 0 (std 0 and epsilon 0 would give 0/0).
  return jnp.where(equal | ~several, 0.0, centered)


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """sqrt with gradient 0, not inf, at 0 (a degenerate group's spread)."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
