"""Fused-linear DPO and GRPO against the same losses on materialized logits.

DPO: ``fused_linear_dpo_loss`` against ``dpo_loss`` of
``sequence_log_probs(hidden @ kernel, targets)`` for the chosen and the
rejected answers (half the tokens each). GRPO: ``fused_linear_policy_gradient_loss``
(token ratios, clipping, the k3 KL penalty with ``beta=0.04``, the per-sequence
token mean) against ``policy_gradient_loss`` of the per-token log-probabilities
of ``hidden @ kernel``. Both are the jitted ``value_and_grad`` with respect to
the hidden states and the kernel, in float32, with prompt and padding tokens
(``-100``) among the targets. At the large sizes only memory is measured
(compiled, not run: the unfused losses would need several GiB).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from jaxobj.losses.fused_policy_gradient import fused_linear_policy_gradient_loss
from jaxobj.losses.fused_preference import fused_linear_dpo_loss
from jaxobj.losses.policy_gradient import policy_gradient_loss
from jaxobj.losses.preference import dpo_loss, sequence_log_probs

# Sequences x tokens per sequence; DPO's pairs are half the sequences.
FULL = {"sequences": 8, "length": 256, "dim": 256, "vocab": 32768}
QUICK = {"sequences": 4, "length": 64, "dim": 32, "vocab": 2048}
LARGE = {"sequences": 16, "length": 512, "dim": 512, "vocab": 131072}
GROWTH = (65536, 262144)  # temp may grow by at most 5% between these vocabularies
GRPO = {"loss_type": "grpo", "beta": 0.04, "kl_estimator": "k3"}


def _dpo(ch, cy, rh, ry, ref_c, ref_r, kernel):
  return fused_linear_dpo_loss(ch, cy, rh, ry, ref_c, ref_r, kernel)


def _unfused_dpo(ch, cy, rh, ry, ref_c, ref_r, kernel):
  return dpo_loss(
    sequence_log_probs(ch @ kernel, cy), sequence_log_probs(rh @ kernel, ry), ref_c, ref_r
  )


def _grpo(hidden, targets, old, adv, ref, kernel):
  return fused_linear_policy_gradient_loss(hidden, targets, old, adv, ref, kernel, **GRPO)


def _unfused_grpo(hidden, targets, old, adv, ref, kernel):
  logp = jax.nn.log_softmax(hidden @ kernel, axis=-1)
  lp = jnp.take_along_axis(logp, jnp.maximum(targets, 0)[..., None], -1)[..., 0]
  return policy_gradient_loss(lp, old, adv, ref, completion_mask=targets != -100, **GRPO)


def _dpo_grad(f):
  return jax.value_and_grad(f, (0, 2, 6))  # both hidden states and the kernel


def _grpo_grad(f):
  return jax.value_and_grad(f, (0, 5))


def _targets(rng, rows, length, vocab):
  """Targets with a prompt (-100) of a quarter of the positions and ragged padding."""
  y = rng.integers(0, vocab, (rows, length)).astype(np.int32)
  y[:, : length // 4] = -100
  ends = rng.integers(length // 2, length + 1, rows)
  y[np.arange(length)[None, :] >= ends[:, None]] = -100
  return jnp.asarray(y)


def _dpo_inputs(shape):
  rng = np.random.default_rng(0)
  p, t, d, v = shape["sequences"] // 2, shape["length"], shape["dim"], shape["vocab"]
  hidden = lambda: jnp.asarray(rng.standard_normal((p, t, d)), jnp.float32)
  return (
    hidden(),
    _targets(rng, p, t, v),
    hidden(),
    _targets(rng, p, t, v),
    jnp.asarray(-rng.uniform(100.0, 300.0, p), jnp.float32),
    jnp.asarray(-rng.uniform(100.0, 300.0, p), jnp.float32),
    jnp.asarray(rng.standard_normal((d, v)) / np.sqrt(d), jnp.float32),
  )


def _grpo_inputs(shape):
  rng = np.random.default_rng(1)
  s, t, d, v = shape["sequences"], shape["length"], shape["dim"], shape["vocab"]
  logps = lambda: jnp.asarray(-rng.uniform(5.0, 15.0, (s, t)), jnp.float32)
  return (
    jnp.asarray(rng.standard_normal((s, t, d)), jnp.float32),
    _targets(rng, s, t, v),
    logps(),
    jnp.asarray(rng.standard_normal(s), jnp.float32),
    logps(),
    jnp.asarray(rng.standard_normal((d, v)) / np.sqrt(d), jnp.float32),
  )


def _dpo_abstract(shape):
  p, t, d, v = shape["sequences"] // 2, shape["length"], shape["dim"], shape["vocab"]
  f32, i32 = jnp.float32, jnp.int32
  tokens = (jax.ShapeDtypeStruct((p, t, d), f32), jax.ShapeDtypeStruct((p, t), i32))
  rows = jax.ShapeDtypeStruct((p,), f32)
  return tokens + tokens + (rows, rows, jax.ShapeDtypeStruct((d, v), f32))


def _grpo_abstract(shape):
  s, t, d, v = shape["sequences"], shape["length"], shape["dim"], shape["vocab"]
  f32 = jnp.float32
  per_token = jax.ShapeDtypeStruct((s, t), f32)
  return (
    jax.ShapeDtypeStruct((s, t, d), f32),
    jax.ShapeDtypeStruct((s, t), jnp.int32),
    per_token,
    jax.ShapeDtypeStruct((s,), f32),
    per_token,
    jax.ShapeDtypeStruct((d, v), f32),
  )


CASES = (
  ("fused DPO", "jaxobj.fused_linear_dpo_loss", "dpo_loss(sequence_log_probs(hidden @ kernel))",
   _dpo, _unfused_dpo, _dpo_grad, _dpo_inputs, _dpo_abstract),
  ("fused GRPO", "jaxobj.fused_linear_policy_gradient_loss",
   "policy_gradient_loss(log_softmax(hidden @ kernel)[targets])",
   _grpo, _unfused_grpo, _grpo_grad, _grpo_inputs, _grpo_abstract),
)  # fmt: skip


def run(quick: bool) -> list[dict]:
  shape = QUICK if quick else FULL
  repeats, rounds = (2, 1) if quick else (5, 3)
  records = []
  for name, impl, baseline, fused, unfused, grad, inputs, _ in CASES:
    records.append(
      harness.compare(
        f"{name} value_and_grad",
        impl=impl,
        baseline=baseline,
        shape=shape,
        ours=grad(fused),
        base=grad(unfused),
        args=inputs(shape),
        # The goals are stated for the full size; at the quick size only the
        # direction (less memory) is asked for.
        max_temp_ratio=1.0 if quick else None,
        max_time_ratio=None if quick else 1.10,
        repeats=repeats,
        rounds=rounds,
      )
    )
  if not quick:
    for case in CASES:
      records += _large_vocabulary(*case)
  return records


def _large_vocabulary(name, impl, baseline, fused, unfused, grad, _, abstract) -> list[dict]:
  """Compiled memory only: the large size, and the growth from V = 65,536 to 262,144."""
  records = [
    harness.compare(
      f"{name} value_and_grad (large)",
      impl=impl,
      baseline=baseline,
      shape=LARGE,
      ours=grad(fused),
      base=grad(unfused),
      args=abstract(LARGE),
      time=False,
      max_temp_bytes=64 * harness.MIB,
    )
  ]
  small, large = (dict(LARGE, vocab=v) for v in GROWTH)
  small_temp = harness.temp_bytes(grad(fused), *abstract(small))
  record = harness.compare(
    f"{name} temp at V={large['vocab']} over V={small['vocab']}",
    impl=f"fused, V={large['vocab']}",
    baseline=f"fused, V={small['vocab']}",
    shape=large,
    ours=grad(fused),
    base=grad(fused),
    args=abstract(large),
    time=False,
  )
  # The baseline is the same loss at the smaller vocabulary (other arguments).
  record.update(
    baseline_temp_bytes=small_temp,
    goal="temp <= 1.05 x baseline",
    ok=bool(record["temp_bytes"] <= 1.05 * small_temp),
  )
  return records + [record]
