"""Noise whose variance depends on the input: the Gaussian NLL learns both.

``gaussian_nll_loss`` with a predicted log-variance fits the mean and the
noise level together; the learned standard deviation tracks the true one,
which squared error cannot express.

    python docs/examples/heteroscedastic_regression.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kn = jax.random.split(jax.random.key(2))
x = jax.random.uniform(kx, (2000,), minval=0.0, maxval=2.0)
true_std = 0.1 + 0.5 * x
y = 3.0 * x + true_std * jax.random.normal(kn, (2000,))


def heads(p):
  mean = p["a"] * x + p["b"]
  log_var = p["c"] * x + p["d"]
  return mean, log_var


def loss(p):
  mean, log_var = heads(p)
  return jaxobj.gaussian_nll_loss(mean, y, log_var, log_variance=True)


def main():
  p = fit(loss, {k: jnp.zeros(()) for k in "abcd"}, steps=1500, learning_rate=0.02)
  _, log_var = heads(p)
  std = jnp.exp(0.5 * log_var)
  for lo, hi in ((0.0, 0.5), (1.5, 2.0)):
    sel = (x >= lo) & (x < hi)
    print(
      f"x in [{lo}, {hi}): learned std {float(jnp.mean(std[sel])):.2f}, "
      f"true {float(jnp.mean(true_std[sel])):.2f}"
    )
  print(f"slope {float(p['a']):.2f} (true 3.00)")
  assert abs(float(p["a"]) - 3.0) < 0.1
  assert float(jnp.mean(std[x > 1.5])) > 2.5 * float(jnp.mean(std[x < 0.5]))
  return p


if __name__ == "__main__":
  main()
