"""Per-token pieces of the policy-gradient losses, shared by
:func:`jaxobj.policy_gradient_loss` and its fused form (which evaluates them
inside the fused-linear engine, one chunk of tokens at a time)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxobj._src import numerics

# Log importance ratios (and the k3 estimator's log-ratio) are clamped to
# [-LOG_RATIO_BOUND, LOG_RATIO_BOUND] before exp: e^20 ~ 4.9e8 is far past any
# clip range, and a stale behaviour policy (log-ratios of 1e4) stays finite.
LOG_RATIO_BOUND = 20.0


def clipped_token_loss(log_w, logp, advantages, epsilon, epsilon_high, delta, cispo: bool):
  """The clipped surrogate per token from the log importance weight ``log_w``.

  PPO's ``-min(w A, clip(w, 1 - eps, 1 + eps_high) A)``, with the unclipped
  ``w`` capped at ``delta`` unless it is None (two-sided clipping); CISPO's
  ``-sg(clip(w, ...)) A log pi`` when ``cispo``.
  """
  ratio = jnp.exp(jnp.clip(log_w, -LOG_RATIO_BOUND, LOG_RATIO_BOUND))
  clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon_high)
  if cispo:
    return -jax.lax.stop_gradient(clipped) * advantages * logp
  unclipped = ratio if delta is None else jnp.minimum(ratio, delta)
  return -jnp.minimum(unclipped * advantages, clipped * advantages)


def kl_estimate(d, estimator: str):
  """Schulman's estimator of KL(pi || pi_ref) from ``d = log pi_ref - log pi`` per token.

  ``k3 = e^d - 1 - d`` is continued linearly (same slope) past
  ``LOG_RATIO_BOUND``: finite value and gradient for any ``d``, exact below it.
  """
  if estimator == "k1":
    return -d
  if estimator == "k2":
    return 0.5 * jnp.square(d)
  bound = LOG_RATIO_BOUND
  inside = numerics.expm1_minus_x(jnp.minimum(d, bound))
  return inside + jnp.where(d > bound, float(np.expm1(bound)) * (d - bound), 0.0)
