"""Embeddings from pairs: InfoNCE with in-batch negatives, or a triplet margin.

Each sample has content (4 dims) and nuisance (8 dims); its two "views" share
the content and get fresh nuisance. A linear encoder trained with
``info_nce_loss`` (the other pairs of the batch are the negatives) learns to
keep the content, so a view retrieves its partner among 256. The triplet
margin loss does the same with one explicit negative per anchor.

    python docs/examples/embeddings_contrastive.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kc, k1, k2, kw = jax.random.split(jax.random.key(10), 4)
batch = 256
content = jax.random.normal(kc, (batch, 4))
view1 = jnp.concatenate([content, 2.0 * jax.random.normal(k1, (batch, 8))], -1)
view2 = jnp.concatenate([content, 2.0 * jax.random.normal(k2, (batch, 8))], -1)
init = {"w": 0.1 * jax.random.normal(kw, (12, 8))}


def retrieval_accuracy(p):
  a, b = view1 @ p["w"], view2 @ p["w"]
  a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
  return float(jnp.mean(jnp.argmax(a @ b.T, -1) == jnp.arange(batch)))


def main():
  before = retrieval_accuracy(init)
  nce = fit(
    lambda p: jaxobj.info_nce_loss(view1 @ p["w"], view2 @ p["w"], temperature=0.1), init, steps=300
  )
  triplet = fit(
    lambda p: jaxobj.triplet_margin_loss(
      view1 @ p["w"],
      view2 @ p["w"],
      jnp.roll(view2, 1, axis=0) @ p["w"],
      margin=1.0,
      distance="cosine",
    ),
    init,
    steps=300,
  )
  after = {
    "info_nce_loss": retrieval_accuracy(nce),
    "triplet_margin_loss": retrieval_accuracy(triplet),
  }
  print(f"top-1 retrieval among {batch}: {before:.2f} before, {after}")
  assert after["info_nce_loss"] > 0.9 and after["triplet_margin_loss"] > 0.5
  return after


if __name__ == "__main__":
  main()
