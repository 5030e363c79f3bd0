"""Composition costs nothing: a composed objective against the same objective by hand.

Cross-entropy + 0.1·Huber + 1e-4·L2 (biases excluded) + 1e-4·z-loss on a
two-layer model's outputs; both sides are ``jax.value_and_grad`` of model plus
objective, returning the total and the per-term values for logging.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxobj
from benchmarks import harness
from jaxobj import objective as jo


def _z_loss(logits):
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) ** 2)


OBJECTIVE = (
  jo.term(
    jaxobj.softmax_cross_entropy_with_integer_labels,
    "outputs.logits",
    "batch.labels",
    where="batch.mask",
    name="ce",
  )
  + 0.1 * jo.term(jaxobj.huber_loss, "outputs.value", "batch.target", name="huber")
  + 1e-4 * jo.regularizer(jaxobj.l2_penalty, mask=jaxobj.regularizers.exclude("b1", "b2"))
  + 1e-4 * jo.term(_z_loss, "outputs.logits", name="z_loss")
)


def _model(params, x):
  h = jax.nn.gelu(x @ params["w1"] + params["b1"])
  out = h @ params["w2"] + params["b2"]
  return {"logits": out[:, :-1], "value": out[:, -1]}


def composed(params, batch):
  return OBJECTIVE.apply(outputs=_model(params, batch["x"]), batch=batch, model=params)


def by_hand(params, batch):
  out = _model(params, batch["x"])
  ce = jaxobj.softmax_cross_entropy_with_integer_labels(
    out["logits"], batch["labels"], where=batch["mask"]
  )
  huber = jaxobj.huber_loss(out["value"], batch["target"])
  l2 = jnp.sum(params["w1"] ** 2) + jnp.sum(params["w2"] ** 2)
  z = _z_loss(out["logits"])
  total = ce + 0.1 * huber + 1e-4 * l2 + 1e-4 * z
  return total, {"ce": ce, "huber": huber, "l2_penalty": l2, "z_loss": z}


def _inputs(n, d, h, k):
  keys = jax.random.split(jax.random.key(0), 6)
  params = {
    "w1": jax.random.normal(keys[0], (d, h)) / d**0.5,
    "b1": jnp.zeros(h),
    "w2": jax.random.normal(keys[1], (h, k + 1)) / h**0.5,
    "b2": jnp.zeros(k + 1),
  }
  batch = {
    "x": jax.random.normal(keys[2], (n, d)),
    "labels": jax.random.randint(keys[3], (n,), 0, k),
    "target": jax.random.normal(keys[4], (n,)),
    "mask": jax.random.uniform(keys[5], (n,)) < 0.9,
  }
  return params, batch


def run(quick: bool) -> list[dict]:
  n, d, h, k = (256, 32, 64, 100) if quick else (4096, 256, 512, 1000)
  params, batch = _inputs(n, d, h, k)
  grad = lambda f: jax.value_and_grad(f, has_aux=True)  # noqa: E731
  return [
    harness.compare(
      "composed objective vs hand-written (value_and_grad)",
      impl="jaxobj.objective: ce + 0.1*huber + 1e-4*l2 + 1e-4*z_loss",
      baseline="the same objective written by hand",
      shape={"batch": n, "features": d, "hidden": h, "classes": k},
      ours=grad(composed),
      base=grad(by_hand),
      args=(params, batch),
      max_temp_ratio=1.02,
      max_time_ratio=1.05,
      repeats=7 if quick else 10,
      rounds=3 if quick else 5,
    )
  ]
