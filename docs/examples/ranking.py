"""Learning to rank: pairwise and listwise losses, judged by NDCG.

Lists of 10 items with graded relevance 0-3 from a hidden linear scorer. A
scoring model trained with ``pairwise_logistic_loss`` (RankNet, the BPR form
for one pair) or ``listmle_loss`` (Plackett-Luce likelihood of the order)
ranks the held-out lists almost perfectly by ``ndcg_metric``.

    python docs/examples/ranking.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kx, kw, kn = jax.random.split(jax.random.key(11), 3)
features = jax.random.normal(kx, (400, 10, 5))  # 400 lists of 10 items
hidden = jax.random.normal(kw, (5,))
relevance = jnp.digitize(
  features @ hidden + 0.3 * jax.random.normal(kn, (400, 10)), jnp.array([-1.0, 0.5, 1.5])
).astype(jnp.float32)
train, test = slice(0, 300), slice(300, None)


def scores(p, rows):
  return features[rows] @ p["w"]


ndcg_metric = jax.jit(jaxobj.ndcg_metric)  # one compilation for the three evaluations


def main():
  init = {"w": jnp.zeros(5)}
  ndcg = {"untrained": float(ndcg_metric(scores({"w": jnp.ones(5)}, test), relevance[test]))}
  for name, loss in (
    ("pairwise_logistic_loss", jaxobj.pairwise_logistic_loss),
    ("listmle_loss", jaxobj.listmle_loss),
  ):
    p = fit(lambda p, loss=loss: loss(scores(p, train), relevance[train]), init, steps=400)
    ndcg[name] = float(ndcg_metric(scores(p, test), relevance[test]))
  print("held-out NDCG:", {k: round(v, 3) for k, v in ndcg.items()})
  assert ndcg["pairwise_logistic_loss"] > 0.95 and ndcg["listmle_loss"] > 0.95
  return ndcg


if __name__ == "__main__":
  main()
