"""Fused linear cross-entropy against the unfused loss on materialized logits.

The baseline is ``token_cross_entropy(hidden @ kernel, targets)``: the same
loss, written the obvious way. Both are the jitted ``value_and_grad`` with
respect to ``hidden`` and ``kernel`` (or the value alone where stated), in
float32. At the largest size only memory is measured (compiled, not run: the
baseline would need about 8 GiB). Each option is also measured against the
fused loss without it, which is what "an option adds at most 10% time and 2%
temp" means.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import harness
from jaxobj.losses.sequence import fused_linear_cross_entropy, token_cross_entropy

FULL = {"tokens": 2048, "dim": 256, "vocab": 32768}
QUICK = {"tokens": 512, "dim": 64, "vocab": 4096}
LARGE = {"tokens": 8192, "dim": 512, "vocab": 131072}
OPTIONS = {
  "z_loss": dict(z_loss=1e-4),
  "label_smoothing": dict(label_smoothing=0.1),
  "mask": dict(where="mask"),
  "logit_soft_cap": dict(logit_soft_cap=30.0),
}


def _losses(**kw):
  def fused(hidden, targets, kernel, mask):
    return fused_linear_cross_entropy(hidden, targets, kernel, **_with_mask(kw, mask))

  def unfused(hidden, targets, kernel, mask):
    return token_cross_entropy(hidden @ kernel, targets, **_with_mask(kw, mask))

  return fused, unfused


def _with_mask(kw, mask):
  return {k: (mask if v == "mask" else v) for k, v in kw.items()}


def _value_and_grad(f):
  return jax.value_and_grad(f, (0, 2))


def _inputs(shape):
  rng = np.random.default_rng(0)
  n, d, v = shape["tokens"], shape["dim"], shape["vocab"]
  return (
    jnp.asarray(rng.standard_normal((n, d)), jnp.float32),
    jnp.asarray(rng.integers(0, v, n), jnp.int32),
    jnp.asarray(rng.standard_normal((d, v)) / np.sqrt(d), jnp.float32),
    jnp.asarray(rng.uniform(size=n) < 0.9),
  )


def _abstract(shape):
  n, d, v = shape["tokens"], shape["dim"], shape["vocab"]
  return (
    jax.ShapeDtypeStruct((n, d), jnp.float32),
    jax.ShapeDtypeStruct((n,), jnp.int32),
    jax.ShapeDtypeStruct((d, v), jnp.float32),
    jax.ShapeDtypeStruct((n,), jnp.bool_),
  )


def run(quick: bool) -> list[dict]:
  shape = QUICK if quick else FULL
  args = _inputs(shape)
  repeats, rounds = (3, 2) if quick else (5, 3)
  # The goals are stated for the full size; at the quick size only the
  # direction (far less memory) is asked for.
  temp_goal = dict(max_temp_ratio=0.6) if quick else dict(max_temp_bytes=16 * harness.MIB)
  fused, unfused = _losses()
  records = [
    harness.compare(
      "fused linear cross-entropy value_and_grad",
      impl="jaxobj.fused_linear_cross_entropy",
      baseline="token_cross_entropy(hidden @ kernel)",
      shape=shape,
      ours=_value_and_grad(fused),
      base=_value_and_grad(unfused),
      args=args,
      max_time_ratio=None if quick else 1.10,
      repeats=repeats,
      rounds=rounds,
      **temp_goal,
    ),
    harness.compare(
      "fused linear cross-entropy value",
      impl="jaxobj.fused_linear_cross_entropy",
      baseline="token_cross_entropy(hidden @ kernel)",
      shape=shape,
      ours=fused,
      base=unfused,
      args=args,
      max_time_ratio=None if quick else 0.75,
      repeats=repeats,
      rounds=rounds,
    ),
  ]
  plain = _value_and_grad(fused)
  for option, kw in OPTIONS.items():
    with_option = _value_and_grad(_losses(**kw)[0])
    records.append(
      harness.compare(
        f"fused linear cross-entropy + {option}",
        impl=f"fused, {option}",
        baseline="fused, no option",
        shape=shape,
        ours=with_option,
        base=plain,
        args=args,
        max_temp_ratio=1.02,
        max_time_ratio=None if quick else 1.10,
        repeats=repeats,
        rounds=rounds,
      )
    )
  if not quick:
    records += _large_vocabulary()
  return records


def _large_vocabulary() -> list[dict]:
  """Compiled memory only: the largest size, and the same as V doubles."""
  fused, unfused = _losses()
  records = [
    harness.compare(
      "fused linear cross-entropy value_and_grad (large)",
      impl="jaxobj.fused_linear_cross_entropy",
      baseline="token_cross_entropy(hidden @ kernel)",
      shape=LARGE,
      ours=_value_and_grad(fused),
      base=_value_and_grad(unfused),
      args=_abstract(LARGE),
      time=False,
      max_temp_bytes=32 * harness.MIB,
    )
  ]
  base_shape = dict(LARGE, vocab=LARGE["vocab"] // 2)
  for vocab in (LARGE["vocab"], 2 * LARGE["vocab"]):
    shape = dict(LARGE, vocab=vocab)
    records.append(
      harness.compare(
        f"fused linear cross-entropy temp at V={vocab} over V={base_shape['vocab']}",
        impl=f"fused, V={vocab}",
        baseline=f"fused, V={base_shape['vocab']}",
        shape=shape,
        ours=_value_and_grad(fused),
        base=_value_and_grad(fused),
        args=_abstract(shape),
        time=False,
        max_temp_bytes=32 * harness.MIB,
      )
    )
    records[-1]["baseline_temp_bytes"] = harness.temp_bytes(
      _value_and_grad(fused), *_abstract(base_shape)
    )
  return records
