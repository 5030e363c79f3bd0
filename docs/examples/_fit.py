"""The one training loop the examples share: full-batch Adam, compiled once."""

from __future__ import annotations

import jax
import optax


def fit(loss, params, *, steps=300, learning_rate=0.05):
  """Minimizes ``loss(params)`` with Adam; returns the trained params."""
  opt = optax.adam(learning_rate)

  def step(carry, _):
    p, s = carry
    grads = jax.grad(loss)(p)
    updates, s = opt.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=steps))(
    params
  )
  return params
