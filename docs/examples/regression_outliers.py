"""Regression with outliers: squared error follows them, robust losses do not.

A line y = 2x + 1 with Gaussian noise, and 10% of the targets replaced by gross
outliers. The same linear model is fitted with five losses; the robust ones
recover the true slope, squared error is dragged off.

    python docs/examples/regression_outliers.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kn, ko = jax.random.split(jax.random.key(0), 3)
x = jax.random.uniform(kx, (200,), minval=-2.0, maxval=2.0)
y = 2.0 * x + 1.0 + 0.1 * jax.random.normal(kn, (200,))
outlier = jnp.arange(200) % 10 == 0
y = jnp.where(outlier & (x > 0), y + 30.0 * jax.random.uniform(ko, (200,)), y)

LOSSES = {
  "squared_error": jaxobj.squared_error,  # Gaussian noise: the mean
  "absolute_error": jaxobj.absolute_error,  # Laplace noise: the median
  "huber_loss": lambda p, t: jaxobj.huber_loss(p, t, delta=1.0),
  "log_cosh": jaxobj.log_cosh,  # Huber-like, no threshold to pick
  "general_robust_loss": lambda p, t: jaxobj.general_robust_loss(p, t, alpha=0.0),
}


def main():
  slopes = {}
  for name, loss in LOSSES.items():
    params = fit(
      lambda p, loss=loss: loss(p["w"] * x + p["b"], y),
      {"w": jnp.zeros(()), "b": jnp.zeros(())},
      steps=800,
    )
    slopes[name] = float(params["w"])
    print(f"{name:>22}: slope {slopes[name]:.2f} (true 2.00)")
  assert abs(slopes["squared_error"] - 2.0) > 0.3  # pulled by the outliers
  for name in ("absolute_error", "huber_loss", "log_cosh", "general_robust_loss"):
    assert abs(slopes[name] - 2.0) < 0.1, name
  return slopes


if __name__ == "__main__":
  main()
