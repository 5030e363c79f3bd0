"""Sparse models: an L1 penalty as a term of the objective.

20 features, 3 of which matter. The objective is the data term plus
``0.1 * l1_penalty`` on the weights (``jo.regularizer``; the bias excluded
with a mask). L1 drives the 17 irrelevant weights to about zero; L2 at the
same strength only shrinks them.

    python docs/examples/sparse_regression.py
"""

import jax
import jax.numpy as jnp
import optax
from _fit import fit

import jaxobj
from jaxobj import objective as jo

kx, kn = jax.random.split(jax.random.key(15))
x = jax.random.normal(kx, (200, 20))
true_w = jnp.zeros(20).at[:3].set(jnp.array([2.0, -1.5, 1.0]))
y = x @ true_w + 0.5 * jax.random.normal(kn, (200,))


def objective_with(penalty):
  return jo.term(jaxobj.squared_error, "outputs", "batch.y", name="fit") + 0.1 * jo.regularizer(
    penalty, mask=jaxobj.regularizers.exclude("b")
  )


def main():
  near_zero = {}
  for penalty in (jaxobj.l1_penalty, jaxobj.l2_penalty):
    obj = objective_with(penalty)

    def loss(p, obj=obj):
      value, _ = obj.apply(outputs=x @ p["w"] + p["b"], batch={"y": y}, model=p)
      return value

    # A decaying step size lets the L1 kink settle at zero instead of hopping around it.
    p = fit(
      loss,
      {"w": jnp.zeros(20), "b": jnp.zeros(())},
      steps=1500,
      learning_rate=optax.linear_schedule(0.05, 0.0, 1500),
    )
    near_zero[penalty.__name__] = int(jnp.sum(jnp.abs(p["w"][3:]) < 0.01))
  print("irrelevant weights below 0.01 (of 17):", near_zero)
  assert near_zero["l1_penalty"] >= 14 and near_zero["l2_penalty"] <= 10
  return near_zero


if __name__ == "__main__":
  main()
