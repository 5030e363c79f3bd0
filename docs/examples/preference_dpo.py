"""Preference learning: a reward model (Bradley-Terry) and direct policy optimization (DPO).

Four candidate answers with a hidden order 0 > 1 > 2 > 3, seen only as
pairwise preferences. ``bradley_terry_loss`` fits a reward per answer from the
pairs; ``dpo_loss`` moves a policy's log-probabilities away from a frozen
reference in the preferred direction, with ``beta`` bounding how far.

    python docs/examples/preference_dpo.py
"""

import itertools

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

pairs = jnp.array(list(itertools.combinations(range(4), 2)))  # (chosen, rejected)
chosen, rejected = pairs[:, 0], pairs[:, 1]


def main():
  rewards = fit(
    lambda r: jaxobj.bradley_terry_loss(r[chosen], r[rejected]), jnp.zeros(4), steps=300
  )
  assert bool(jnp.all(jnp.diff(rewards) < 0))  # the hidden order, recovered

  reference = jax.nn.log_softmax(jnp.zeros(4))

  def dpo(theta, beta):
    logp = jax.nn.log_softmax(theta)
    return jaxobj.dpo_loss(
      logp[chosen], logp[rejected], reference[chosen], reference[rejected], beta=beta
    )

  policies = {
    beta: jax.nn.softmax(fit(lambda t, b=beta: dpo(t, b), jnp.zeros(4), steps=300))
    for beta in (0.1, 1.0)
  }
  print(
    "rewards:",
    [round(float(r), 2) for r in rewards],
    "| DPO policies:",
    {b: [round(float(x), 3) for x in p] for b, p in policies.items()},
  )
  for p in policies.values():
    assert bool(jnp.all(jnp.diff(p) < 0))
  # A larger beta keeps the policy closer to the (uniform) reference.
  assert float(policies[1.0][0]) < float(policies[0.1][0])
  return policies


if __name__ == "__main__":
  main()
