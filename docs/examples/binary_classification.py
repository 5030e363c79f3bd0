"""Binary and multi-label classification: sigmoid cross-entropy on logits.

A logistic model trained with ``sigmoid_binary_cross_entropy`` (the Bernoulli
negative log-likelihood) recovers the true probabilities. The same loss on a
``[N, L]`` array of independent labels is multi-label classification: one
Bernoulli per label.

    python docs/examples/binary_classification.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, ky, km = jax.random.split(jax.random.key(5), 3)
x = jax.random.normal(kx, (4000, 2))
true_w = jnp.array([[2.0, 0.0, -1.0], [-1.0, 1.5, 1.0]])  # three labels
p_true = jax.nn.sigmoid(x @ true_w)
labels = jax.random.bernoulli(ky, p_true).astype(jnp.float32)


def logits(p):
  return x @ p["w"] + p["b"]


def main():
  # Binary: the first label only (logits first, never probabilities).
  binary = fit(
    lambda p: jaxobj.sigmoid_binary_cross_entropy(logits(p)[:, 0], labels[:, 0]),
    {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)},
    steps=500,
  )
  # Multi-label: all three labels at once, one independent sigmoid each.
  multi = fit(
    lambda p: jaxobj.sigmoid_binary_cross_entropy(logits(p), labels),
    {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)},
    steps=500,
  )
  err_binary = float(jnp.max(jnp.abs(binary["w"][:, 0] - true_w[:, 0])))
  err_multi = float(jnp.max(jnp.abs(multi["w"] - true_w)))
  print(f"binary: weights {binary['w'][:, 0]}, true {true_w[:, 0]}")
  print(f"multi-label: largest weight error {err_multi:.2f}")
  assert err_binary < 0.25 and err_multi < 0.25
  return multi


if __name__ == "__main__":
  main()
