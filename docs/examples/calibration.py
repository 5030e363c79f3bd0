"""Calibration: measure it, score it with a proper rule, fix it after training.

An over-confident classifier (its logits twice the Bayes posterior's) has a high
expected calibration error. Proper scoring rules, the log score (cross-entropy)
and the Brier score, are minimized only by the true probabilities, so both
prefer the rescaled logits; ``fit_temperature`` finds that rescaling on
held-out data and ``temperature_scale`` applies it without changing a single
prediction.

    python docs/examples/calibration.py
"""

import jax
import jax.numpy as jnp

import jaxobj

kl, kx = jax.random.split(jax.random.key(8))
n, classes = 4000, 5
labels = jax.random.randint(kl, (n,), 0, classes)
features = 1.5 * jax.nn.one_hot(labels, classes) + jax.random.normal(kx, (n, classes))
posterior = 1.5 * features  # the Bayes posterior logits of this data
logits = 2.0 * posterior  # what an over-confident network outputs
held_out, test = slice(0, 2000), slice(2000, None)


def report(name, z):
  ece = float(jaxobj.expected_calibration_error(z[test], labels[test]))
  log_score = float(jaxobj.log_score_with_integer_labels(z[test], labels[test]))
  brier = float(jaxobj.brier_score_with_integer_labels(z[test], labels[test]))
  print(f"{name:>14}: ECE {ece:.3f}, log score {log_score:.3f}, Brier {brier:.3f}")
  return ece, log_score, brier


def main():
  before = report("raw", logits)
  t = jaxobj.fit_temperature(logits[held_out], labels[held_out])
  scaled = jaxobj.temperature_scale(logits, t)
  after = report(f"T = {float(t):.2f}", scaled)
  assert abs(float(t) - 2.0) < 0.2
  assert all(a < b for a, b in zip(after, before))  # better on every score
  assert bool(jnp.all(jnp.argmax(scaled, -1) == jnp.argmax(logits, -1)))
  return float(t)


if __name__ == "__main__":
  main()
