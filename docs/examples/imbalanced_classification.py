"""Imbalanced classes: positive-class weights or the focal loss.

2% positives. Plain cross-entropy learns that "negative" is almost always right
and misses most positives at the 0.5 threshold; ``pos_weight`` (cross-entropy
with class weights) and ``sigmoid_focal_loss`` (easy negatives down-weighted)
both recover them.

    python docs/examples/imbalanced_classification.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kl, kx = jax.random.split(jax.random.key(7))
n = 5000
labels = (jax.random.uniform(kl, (n,)) < 0.02).astype(jnp.float32)
x = jax.random.normal(kx, (n, 2)) + 1.5 * labels[:, None]  # overlapping classes

LOSSES = {
  "cross-entropy": lambda z: jaxobj.sigmoid_binary_cross_entropy(z, labels),
  "cross-entropy, pos_weight=49": lambda z: jaxobj.sigmoid_binary_cross_entropy(
    z, labels, pos_weight=49.0
  ),  # negatives / positives
  "focal loss, gamma=2, alpha=0.9": lambda z: jaxobj.sigmoid_focal_loss(
    z, labels, gamma=2.0, alpha=0.9
  ),
}


def main():
  recall = {}
  for name, loss in LOSSES.items():
    p = fit(
      lambda p, loss=loss: loss(x @ p["w"] + p["b"]),
      {"w": jnp.zeros(2), "b": jnp.zeros(())},
      steps=600,
    )
    predicted = (x @ p["w"] + p["b"]) > 0
    recall[name] = float(jnp.sum(predicted * labels) / jnp.sum(labels))
    print(f"{name:>32}: recall of the positives {recall[name]:.2f}")
  assert recall["cross-entropy"] < 0.2
  assert recall["cross-entropy, pos_weight=49"] > 0.6
  assert recall["focal loss, gamma=2, alpha=0.9"] > 0.4
  return recall


if __name__ == "__main__":
  main()
