"""Distributions as targets: knowledge distillation with a temperature.

A small student learns a teacher's full output distribution, not only its
argmax, with ``knowledge_distillation_loss`` (the temperature-softened KL
divergence, times T² so the gradient scale does not depend on T). For targets
that are already probabilities, ``kl_divergence`` takes them directly.

    python docs/examples/distillation.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kt = jax.random.split(jax.random.key(9))
x = jax.random.normal(kx, (1000, 4))
teacher_w = jax.random.normal(kt, (4, 6))
teacher_logits = x @ teacher_w


def student(p):
  return x @ p["w"] + p["b"]


def main():
  init = {"w": jnp.zeros((4, 6)), "b": jnp.zeros(6)}
  p = fit(
    lambda p: jaxobj.knowledge_distillation_loss(student(p), teacher_logits, temperature=2.0),
    init,
    steps=800,
  )
  teacher_probs = jax.nn.softmax(teacher_logits)
  gap = float(jaxobj.kl_divergence(jax.nn.log_softmax(student(p)), teacher_probs))
  agree = float(jnp.mean(jnp.argmax(student(p), -1) == jnp.argmax(teacher_logits, -1)))
  print(f"KL(teacher || student) after distillation: {abs(gap):.4f}; top-1 agreement {agree:.3f}")
  assert gap < 0.01 and agree > 0.97
  return gap


if __name__ == "__main__":
  main()
