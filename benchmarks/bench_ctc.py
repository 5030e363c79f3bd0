"""CTC loss: jaxobj.ctc_loss against optax.ctc_loss, value and gradient.

Both are timed as the jitted ``value_and_grad`` of the summed per-sequence loss
with respect to the logits, on the same right-padded batch, in one process.
The goal is to be at least as fast as optax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import harness
from jaxobj._src.examples.sequence import ctc_batch
from jaxobj.losses.sequence import ctc_loss

FULL = {"batch": 32, "frames": 200, "classes": 64, "labels": 40}
QUICK = {"batch": 16, "frames": 100, "classes": 32, "labels": 20}


def _ours(logits, logit_pad, labels, label_pad):
  return ctc_loss(logits, logit_pad, labels, label_pad, reduction="sum")


def _optax(logits, logit_pad, labels, label_pad):
  return jnp.sum(optax.ctc_loss(logits, logit_pad, labels, label_pad))


def _with_grad(f):
  return jax.value_and_grad(f)


def run(quick: bool) -> list[dict]:
  shape = QUICK if quick else FULL
  rng = np.random.default_rng(0)
  args = tuple(
    jnp.asarray(a)
    for a in ctc_batch(
      rng,
      (shape["batch"],),
      frames=shape["frames"],
      classes=shape["classes"],
      max_labels=shape["labels"],
    )
  )
  repeats, rounds = (3, 2) if quick else (7, 3)
  records = []
  for kind, wrap in (("value_and_grad", _with_grad), ("value", lambda f: f)):
    records.append(
      harness.compare(
        f"ctc_loss {kind}",
        impl="jaxobj.ctc_loss",
        baseline="optax.ctc_loss",
        shape=shape,
        ours=wrap(_ours),
        base=wrap(_optax),
        args=args,
        max_time_ratio=1.0,
        repeats=repeats,
        rounds=rounds,
      )
    )
  return records
