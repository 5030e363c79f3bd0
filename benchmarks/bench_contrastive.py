"""NT-Xent: jaxobj's one-matmul similarity matrix against optax's broadcast.

``optax.ntxent`` forms cosine similarities by broadcasting the embeddings to
``[2B, 2B, D]``; ``jaxobj.ntxent`` normalizes once and takes one matrix
product, so its memory grows with ``(2B)^2`` instead of ``(2B)^2 D``. Both are
measured as the jitted ``value_and_grad`` with respect to the embeddings
(SimCLR labels: two views of ``B`` examples), in float32, in one process.

The goal at 2B = 2048, D = 256: at most 1/100 of optax's temporary memory and
1/50 of its time. At that size optax needs about 12 GiB of temporaries and
about a minute per call on 2 CPU cores, so the full run times each side once
after a warm-up. ``--quick`` uses 2B = 256, D = 64, where optax's broadcast
costs 4x less relative to the matrix, so the goals there are looser
(1/20 of the memory, 1/10 of the time).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxobj
from benchmarks import harness


def _simclr_batch(two_b: int, dim: int):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((two_b, dim)), jnp.float32)
  labels = jnp.tile(jnp.arange(two_b // 2), 2)
  return x, labels


def _ours(x, labels):
  return jax.value_and_grad(lambda e: jaxobj.ntxent(e, labels, temperature=0.07))(x)


def _optax(x, labels):
  return jax.value_and_grad(lambda e: optax.ntxent(e, labels, 0.07))(x)


def run(quick: bool) -> list[dict]:
  if quick:
    two_b, dim, goals, timing = (
      256,
      64,
      dict(max_temp_ratio=0.05, max_time_ratio=0.1),
      dict(repeats=5, rounds=3),
    )
  else:
    two_b, dim, goals, timing = (
      2048,
      256,
      dict(max_temp_ratio=0.01, max_time_ratio=0.02),
      dict(repeats=1, rounds=1),
    )
  args = _simclr_batch(two_b, dim)
  return [
    harness.compare(
      "ntxent value_and_grad",
      impl="jaxobj.ntxent",
      baseline="optax.ntxent",
      shape={"2B": two_b, "D": dim, "dtype": "float32"},
      ours=_ours,
      base=_optax,
      args=args,
      **goals,
      **timing,
    )
  ]
