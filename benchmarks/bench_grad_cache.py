"""The embedding cache: CLIP over 8 microbatches against the whole-batch step.

A two-tower MLP encoder (wide GELU layers, small embeddings) trained with
``chunked_clip_loss + 1e-4 * l2``: its activations, not the loss, dominate the
memory of one step. The baseline is ``jax.value_and_grad`` of the objective on
the whole batch, which keeps every layer's activations for every row;
``jo.cached_value_and_grad`` over 8 microbatches keeps one microbatch's
activations, the batch's embeddings and their gradient, and the model
gradients' accumulator. Both take the same microbatched arrays (the baseline
reshapes them back) and give the same value and gradients.

The goal: compiled temporaries at most 0.25x the whole-batch step's. The time
ratio is recorded without a goal: the cache runs one more forward pass per
microbatch (about 4/3 of the work) and smaller matrix products.
"""

from __future__ import annotations

import itertools

import jax
import numpy as np

import jaxobj
from benchmarks import harness
from jaxobj import objective as jo

MICROBATCHES = 8

OBJECTIVE = jo.term(
  jaxobj.chunked_clip_loss, "outputs.image", "outputs.text", name="clip", block_size=256
) + 1e-4 * jo.regularizer(jaxobj.l2_penalty)


def _mlp(weights, x):
  for w in weights[:-1]:
    x = jax.nn.gelu(x @ w)
  return x @ weights[-1]


def _embed(params, mb):
  return {"image": _mlp(params["image"], mb["image"]), "text": _mlp(params["text"], mb["text"])}


def _data(params, embeddings, batch):
  return {"outputs": embeddings, "model": params}


def cached(params, objective_params, microbatches):
  return jo.cached_value_and_grad(OBJECTIVE, _embed, _data, params, objective_params, microbatches)


def whole_batch(params, objective_params, microbatches):
  batch = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), microbatches)
  return jax.value_and_grad(
    lambda p, o: OBJECTIVE.apply(o, **_data(p, _embed(p, batch), batch)),
    argnums=(0, 1),
    has_aux=True,
  )(params, objective_params)


def _inputs(n, d_in, hidden, depth, dim):
  rng = np.random.default_rng(0)
  dims = [d_in] + [hidden] * depth + [dim]

  def tower():
    return [
      np.asarray(rng.standard_normal((a, b)) / a**0.5, np.float32)
      for a, b in itertools.pairwise(dims)
    ]

  params = {"image": tower(), "text": tower()}
  batch = {
    k: np.asarray(rng.standard_normal((MICROBATCHES, n // MICROBATCHES, d_in)), np.float32)
    for k in ("image", "text")
  }
  return params, batch


def run(quick: bool) -> list[dict]:
  n, d_in, hidden, depth, dim = (1024, 64, 256, 3, 32) if quick else (4096, 128, 512, 3, 64)
  params, microbatches = _inputs(n, d_in, hidden, depth, dim)
  args = (params, OBJECTIVE.init(), microbatches)
  ours, base = jax.jit(cached)(*args)[0][0], jax.jit(whole_batch)(*args)[0][0]
  if not np.isclose(float(ours), float(base), rtol=1e-5):  # measure only a correct step
    raise AssertionError(f"cached_value_and_grad gave {float(ours)}, the whole batch {float(base)}")
  return [
    harness.compare(
      f"CLIP over {MICROBATCHES} microbatches with an embedding cache (value_and_grad)",
      impl="jo.cached_value_and_grad",
      baseline="jax.value_and_grad on the whole batch",
      shape={
        "batch": n,
        "microbatches": MICROBATCHES,
        "features": d_in,
        "hidden": hidden,
        "layers": depth,
        "embedding": dim,
        "towers": 2,
      },
      ours=cached,
      base=whole_batch,
      args=args,
      max_temp_ratio=0.25,
      repeats=5 if quick else 3,
      rounds=3,
    )
  ]
