r"""Sequence-level risk: train a sequence model toward its evaluation metric.

Token cross-entropy trains each token toward the reference; the evaluation
(BLEU, ROUGE, word error rate) scores whole sequences. Minimum risk training
samples candidate sequences from the model, scores each with the task's cost
(for example :math:`1 - \mathrm{BLEU}` against the reference, computed by the
user, outside the graph), and minimizes the expected cost under the model's
distribution renormalized over the candidates. The per-element loss is one
value per source (a row of candidates), so ``where`` and ``weights`` index
sources.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import risk as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = ["minimum_risk_loss"]


@register("sequence", inputs=examples.SAMPLED_CANDIDATES)
def minimum_risk_loss(
  sequence_log_probs: ArrayLike,
  costs: ArrayLike,
  *,
  alpha: float | ArrayLike = 5e-3,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Minimum risk training: the expected task cost over sampled candidates under the model.

  .. math::
     \ell = \sum_{k} Q_k\, \Delta_k,
     \qquad Q_k = \frac{\exp(\alpha \log P(y_k \mid x))}
                       {\sum_{k'} \exp(\alpha \log P(y_{k'} \mid x))}

  Shen et al.'s risk for one source :math:`x`: :math:`y_1, \dots, y_K` are
  candidate sequences sampled from the model (deduplicated, the reference
  often added), :math:`\log P(y_k \mid x)` their log-probabilities under the
  model, :math:`\Delta_k` their costs, and :math:`\alpha` sharpens
  (:math:`\alpha > 1`) or flattens (:math:`\alpha < 1`; 0.005 in the paper)
  the renormalized distribution :math:`Q`. The gradient is exact:
  :math:`\partial\ell / \partial\log P(y_k) = \alpha\, Q_k
  (\Delta_k - \ell)`, so candidates cheaper than the current risk gain
  probability and dearer ones lose it. The costs are data (no gradient).

  The log-probabilities are sums of token log-probabilities, e.g.
  ``jaxobj.sequence_log_probs(logits, tokens, where=mask)`` (or
  ``jaxobj.fused_linear_sequence_log_probs`` from hidden states without the
  logits) on the ``[batch * K, T]`` candidates, reshaped to ``[batch, K]``.
  Pad rows with fewer candidates with log-probability ``-inf``: such a
  candidate has :math:`Q_k = 0` and its cost is ignored. Each row needs at
  least one finite candidate.

  Args:
    sequence_log_probs: :math:`\log P(y_k \mid x)`, float ``[*batch, K]``.
    costs: :math:`\Delta_k`, float ``[*batch, K]`` (for instance
      :math:`1 - \mathrm{BLEU}(y_k, y^\ast)`).
    alpha: the sharpness :math:`\alpha > 0` (traceable).
    where, weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`)
      over the batch shape (sources); the mean divides by the number of
      unmasked sources.

  Returns:
    The reduced expected cost; one value per source for ``"none"``.

  Raises:
    ValueError: shapes differ, no candidate axis, ``alpha <= 0`` (when
      concrete).
    TypeError: integer ``sequence_log_probs``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> log_p = jnp.log(jnp.array([[0.5, 0.3, 0.2]]))
    >>> cost = jnp.array([[0.0, 1.0, 1.0]])
    >>> print(jaxobj.minimum_risk_loss(log_p, cost, alpha=1.0))
    0.5
    >>> print(jax.grad(lambda lp: jaxobj.minimum_risk_loss(lp, cost, alpha=1.0))(log_p))
    [[-0.25  0.15  0.1 ]]

  References:
    Shen et al., "Minimum Risk Training for Neural Machine Translation",
    ACL 2016; Edunov et al., "Classical Structured Prediction Losses for
    Sequence to Sequence Learning", NAACL 2018.
  """
  checks.check_range("alpha", alpha, low=0.0, low_inclusive=False)
  lp = checks.as_float(sequence_log_probs, "sequence_log_probs")
  if lp.ndim < 1:
    raise ValueError(
      "sequence_log_probs must be [*batch, K] (K candidates per source), got a scalar. "
      "For one source pass a [1, K] array."
    )
  checks.check_same_shape("sequence_log_probs", lp, "costs", costs)
  cost = checks.as_target(costs, "costs", lp)
  dtype = jnp.promote_types(lp.dtype, cost.dtype)
  shape = lp.shape[:-1]
  lp = masked_fill(where, lp.astype(dtype), shape, axis_extra=1)
  cost = masked_fill(where, cost.astype(dtype), shape, axis_extra=1)
  # Padded candidates: exp(-inf) = 0. Select before scaling, so that neither
  # alpha * -inf (NaN gradient for alpha) nor their costs reach the result.
  padded = jnp.isneginf(lp)
  scores = jnp.where(padded, -jnp.inf, alpha * jnp.where(padded, 0.0, lp))
  q = jax.nn.softmax(scores, axis=-1)
  values = jnp.sum(q * jnp.where(padded, 0.0, cost), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
