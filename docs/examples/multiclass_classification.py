"""Multi-class classification: softmax cross-entropy with integer labels.

``softmax_cross_entropy_with_integer_labels`` is the categorical negative
log-likelihood. ``label_smoothing`` keeps the logits finite on separable data
(the plain loss keeps pushing them apart), a mild regularizer that also tempers
over-confidence.

    python docs/examples/multiclass_classification.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kc, kx = jax.random.split(jax.random.key(6))
centers = 3.0 * jax.random.normal(kc, (4, 2))
labels = jnp.arange(800) % 4
x = centers[labels] + 0.3 * jax.random.normal(kx, (800, 2))  # well separated


def logits(p):
  return x @ p["w"] + p["b"]


def main():
  init = {"w": jnp.zeros((2, 4)), "b": jnp.zeros(4)}
  results = {}
  for smoothing in (0.0, 0.1):
    p = fit(
      lambda p, s=smoothing: jaxobj.softmax_cross_entropy_with_integer_labels(
        logits(p), labels, label_smoothing=s
      ),
      init,
      steps=1000,
    )
    z = logits(p)
    accuracy = float(jnp.mean(jnp.argmax(z, -1) == labels))
    confidence = float(jnp.mean(jnp.max(jax.nn.softmax(z), -1)))
    results[smoothing] = (accuracy, confidence)
    print(f"label_smoothing={smoothing}: accuracy {accuracy:.3f}, mean confidence {confidence:.4f}")
  assert results[0.0][0] > 0.97 and results[0.1][0] > 0.97
  assert results[0.1][1] < results[0.0][1]  # smoothing caps the confidence
  return results


if __name__ == "__main__":
  main()
