"""Counts: the Poisson negative log-likelihood on a log-rate.

Event counts with rate exp(0.5 + 1.5 x). ``poisson_nll_loss`` on a predicted
log-rate (the default ``log_input=True``: any real output is a valid rate)
recovers the coefficients.

    python docs/examples/count_regression.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kc = jax.random.split(jax.random.key(3))
x = jax.random.uniform(kx, (3000,), minval=0.0, maxval=2.0)
counts = jax.random.poisson(kc, jnp.exp(0.5 + 1.5 * x)).astype(jnp.float32)


def log_rate(p):
  return p["a"] * x + p["b"]


def main():
  p = fit(
    lambda p: jaxobj.poisson_nll_loss(log_rate(p), counts),
    {"a": jnp.zeros(()), "b": jnp.zeros(())},
    steps=1500,
    learning_rate=0.02,
  )
  print(f"Poisson NLL: log-rate = {float(p['a']):.2f} x + {float(p['b']):.2f} (true 1.50 x + 0.50)")
  assert abs(float(p["a"]) - 1.5) < 0.1 and abs(float(p["b"]) - 0.5) < 0.15
  return p


if __name__ == "__main__":
  main()
