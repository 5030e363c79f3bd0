"""Post-training losses at vocabulary scale: fused forms against the unfused ones.

Distillation: ``fused_linear_distillation_loss`` (GKD's generalized JSD,
``beta=0.5``, the default) against ``logit_distillation_loss`` on the
materialized logits of both models, ``student_hidden @ student_kernel`` and
``teacher_hidden @ teacher_kernel``. Both are the jitted ``value_and_grad``
with respect to the student's hidden states and kernel (the teacher is
frozen: not differentiated), in float32. At the large sizes only memory is
measured (compiled, not run: the unfused loss would need several GiB).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from jaxobj.losses.distillation import fused_linear_distillation_loss, logit_distillation_loss

# The teacher is wider than the student (768 against 512 at the large size).
FULL = {"tokens": 2048, "dim": 256, "teacher_dim": 384, "vocab": 32768}
QUICK = {"tokens": 256, "dim": 32, "teacher_dim": 48, "vocab": 2048}
LARGE = {"tokens": 8192, "dim": 512, "teacher_dim": 768, "vocab": 131072}
GROWTH = (65536, 262144)  # temp may grow by at most 5% between these vocabularies


def _distillation(token_block=None):
  """The fused loss (``token_block`` None: the automatic chunks)."""

  def fused(student_hidden, teacher_hidden, student_kernel, teacher_kernel, mask):
    return fused_linear_distillation_loss(
      student_hidden, teacher_hidden, student_kernel, teacher_kernel, where=mask,
      token_block=token_block,
    )  # fmt: skip

  return fused


def _unfused_distillation(student_hidden, teacher_hidden, student_kernel, teacher_kernel, mask):
  return logit_distillation_loss(
    student_hidden @ student_kernel, teacher_hidden @ teacher_kernel, where=mask
  )


def _value_and_grad(f):
  return jax.value_and_grad(f, (0, 2))  # the student's hidden states and kernel


def _inputs(shape):
  rng = np.random.default_rng(0)
  n, d, dt, v = shape["tokens"], shape["dim"], shape["teacher_dim"], shape["vocab"]
  return (
    jnp.asarray(rng.standard_normal((n, d)), jnp.float32),
    jnp.asarray(rng.standard_normal((n, dt)), jnp.float32),
    jnp.asarray(rng.standard_normal((d, v)) / np.sqrt(d), jnp.float32),
    jnp.asarray(rng.standard_normal((dt, v)) / np.sqrt(dt), jnp.float32),
    jnp.asarray(rng.uniform(size=n) < 0.9),
  )


def _abstract(shape):
  n, d, dt, v = shape["tokens"], shape["dim"], shape["teacher_dim"], shape["vocab"]
  return (
    jax.ShapeDtypeStruct((n, d), jnp.float32),
    jax.ShapeDtypeStruct((n, dt), jnp.float32),
    jax.ShapeDtypeStruct((d, v), jnp.float32),
    jax.ShapeDtypeStruct((dt, v), jnp.float32),
    jax.ShapeDtypeStruct((n,), jnp.bool_),
  )


def run(quick: bool) -> list[dict]:
  shape = QUICK if quick else FULL
  repeats, rounds = (2, 1) if quick else (5, 3)
  records = [
    harness.compare(
      "fused distillation (JSD) value_and_grad",
      impl="jaxobj.fused_linear_distillation_loss",
      baseline="logit_distillation_loss(student_hidden @ W_s, teacher_hidden @ W_t)",
      shape=shape,
      # At the quick size the automatic chunk would hold every token.
      ours=_value_and_grad(_distillation(64 if quick else None)),
      base=_value_and_grad(_unfused_distillation),
      args=_inputs(shape),
      # The goal is stated for the full size; at the quick size only the
      # direction (less memory) is asked for.
      max_temp_ratio=0.6 if quick else None,
      max_time_ratio=None if quick else 1.25,
      repeats=repeats,
      rounds=rounds,
    )
  ]
  if not quick:
    records += _large_vocabulary()
  return records


def _large_vocabulary() -> list[dict]:
  """Compiled memory only: the large size, and the growth from V = 65,536 to 262,144."""
  fused = _value_and_grad(_distillation())
  records = [
    harness.compare(
      "fused distillation (JSD) value_and_grad (large)",
      impl="jaxobj.fused_linear_distillation_loss",
      baseline="logit_distillation_loss(student_hidden @ W_s, teacher_hidden @ W_t)",
      shape=LARGE,
      ours=fused,
      base=_value_and_grad(_unfused_distillation),
      args=_abstract(LARGE),
      time=False,
      max_temp_bytes=64 * harness.MIB,
    )
  ]
  small, large = (dict(LARGE, vocab=v) for v in GROWTH)
  small_temp = harness.temp_bytes(fused, *_abstract(small))
  record = harness.compare(
    f"fused distillation temp at V={large['vocab']} over V={small['vocab']}",
    impl=f"fused, V={large['vocab']}",
    baseline=f"fused, V={small['vocab']}",
    shape=large,
    ours=fused,
    base=fused,
    args=_abstract(large),
    time=False,
  )
  # The baseline is the same loss at the smaller vocabulary (other arguments).
  record.update(
    baseline_temp_bytes=small_temp,
    goal="temp <= 1.05 x baseline",
    ok=bool(record["temp_bytes"] <= 1.05 * small_temp),
  )
  return records + [record]
