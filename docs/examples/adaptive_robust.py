"""Unknown tails: learn the robustness of the loss with the model.

Barron's ``adaptive_robust_loss`` is a negative log-likelihood, so its shape
α and scale c can be trained like any parameter. As objective parameters
(``jo.learnable``) they live in ``objective.init()`` and get gradients with the
model's: on heavy-tailed (Cauchy) noise α goes down towards 0, the
Cauchy-like shape.

    python docs/examples/adaptive_robust.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj
from jaxobj import objective as jo

kx, kn = jax.random.split(jax.random.key(4))
x = jax.random.uniform(kx, (2000,), minval=-1.0, maxval=1.0)
y = 2.0 * x + 0.1 * jax.random.cauchy(kn, (2000,))

objective = jo.term(
  jaxobj.adaptive_robust_loss,
  "outputs",
  "batch.y",
  # α in (0, 2) through a sigmoid, the scale through exp: always in range.
  alpha=jo.learnable(0.0, transform=lambda a: 2.0 * jax.nn.sigmoid(a)),
  scale=jo.learnable(1.0, positive=True),
  name="fit",
)


def loss(p):
  out = p["model"]["w"] * x + p["model"]["b"]
  value, _ = objective.apply(p["objective"], outputs=out, batch={"y": y})
  return value


def main():
  params = {"model": {"w": jnp.zeros(()), "b": jnp.zeros(())}, "objective": objective.init()}
  p = fit(loss, params, steps=1500, learning_rate=0.02)
  alpha = float(2.0 * jax.nn.sigmoid(p["objective"]["fit"]["alpha"]))
  scale = float(jnp.exp(p["objective"]["fit"]["scale"]))
  print(
    f"slope {float(p['model']['w']):.2f} (true 2.00), learned alpha {alpha:.2f}, scale {scale:.3f}"
  )
  assert abs(float(p["model"]["w"]) - 2.0) < 0.05
  assert alpha < 0.5  # heavy tails: close to the Cauchy shape (alpha = 0)
  return p


if __name__ == "__main__":
  main()
