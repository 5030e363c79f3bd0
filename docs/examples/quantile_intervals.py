"""Prediction intervals with the quantile (pinball) loss.

Two heads trained with ``quantile_loss`` at q = 0.1 and q = 0.9 bracket 80% of
the targets, on noise whose spread grows with x.

    python docs/examples/quantile_intervals.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kn = jax.random.split(jax.random.key(1))
x = jax.random.uniform(kx, (2000,), minval=0.0, maxval=2.0)
y = x + (0.2 + x) * jax.random.normal(kn, (2000,))


def model(p):
  return p["a"] * x + p["b"]


def main():
  heads = {}
  for q in (0.1, 0.9):
    heads[q] = fit(
      lambda p, q=q: jaxobj.quantile_loss(model(p), y, quantile=q),
      {"a": jnp.zeros(()), "b": jnp.zeros(())},
      steps=1500,
      learning_rate=0.02,
    )
  low, high = model(heads[0.1]), model(heads[0.9])
  coverage = float(jnp.mean((y >= low) & (y <= high)))
  width_small_x = float(jnp.mean((high - low)[x < 0.5]))
  width_large_x = float(jnp.mean((high - low)[x > 1.5]))
  print(f"coverage of the [q0.1, q0.9] interval: {coverage:.2f} (target 0.80)")
  print(f"interval width: {width_small_x:.2f} for x < 0.5, {width_large_x:.2f} for x > 1.5")
  assert abs(coverage - 0.8) < 0.05
  assert width_large_x > 2 * width_small_x  # the interval follows the noise
  return coverage


if __name__ == "__main__":
  main()
