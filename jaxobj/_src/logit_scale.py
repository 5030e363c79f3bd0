r"""The optional cap on the learnable logit scale of CLIP and SigLIP.

CLIP (Radford et al., 2021) clips the learned scale :math:`e^{t'}` at 100 so
that training does not become unstable; open_clip clamps the parameter
``logit_scale`` to :math:`[0, \log 100]` after each step. The losses take the
cap as ``max_logit_scale`` and use :math:`\min(t', \log s_{\max})` in place
of :math:`t'`, the same function as ``torch.clamp`` in the forward pass and
the backward pass: the gradient with respect to :math:`t'` is the uncapped
one up to and at the cap (inclusive, as ``torch.clamp``), and exactly zero
above it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks

__all__ = ["cap_log_temperature"]


def cap_log_temperature(
  log_temperature: ArrayLike, max_logit_scale: ArrayLike | None
) -> ArrayLike | jax.Array:
  """``min(log_temperature, log(max_logit_scale))``; unchanged for ``None``.

  The gradient passes where ``log_temperature <= log(max_logit_scale)``
  (a ``where``, not ``jnp.minimum``, which would halve it at the tie).

  Raises:
    ValueError: a concrete ``max_logit_scale <= 0``.
  """
  if max_logit_scale is None:
    return log_temperature
  if checks.is_concrete(max_logit_scale) and not isinstance(max_logit_scale, bool):
    checks.check_range("max_logit_scale", max_logit_scale, low=0.0, low_inclusive=False)
  t = jnp.asarray(log_temperature)
  cap = jnp.log(jnp.asarray(max_logit_scale, jnp.result_type(t, float)))
  return jnp.where(t <= cap, t, cap)
