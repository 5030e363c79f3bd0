"""Eager calls and compile time of the losses optax also has, against optax.

In a notebook a loss is called eagerly on small arrays. jaxobj runs such a
call as one cached compiled call (``jaxobj.registry.eager_dispatch``);
optax's losses run one dispatch per operation. Two records per loss that
both libraries have (same name, or a registry alias of an optax name), on the
same 256-row input:

- ``eager: <loss>``: the median time of an eager call that returns the mean
  (``jnp.mean`` of optax's per-example values), ours over optax's; goal 1.0x;
- ``compile: <loss>``: the trace-plus-compile time of
  ``jax.jit(jax.value_and_grad(loss))`` (a new function each time, so
  nothing is cached), ours over optax's; goal 1.1x.

The formulas agree where the names do, except ``dice_loss`` (optax smooths
with 1.0, jaxobj with 1e-5 by default) and ``ctc_loss`` (the same loss, with
jaxobj's mean over sequences): the work is of the same kind, which is what a
time ratio compares. ``temp_bytes`` is the compiled ``value_and_grad``'s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxobj
from benchmarks import harness

ROWS, CLASSES = 256, 16
EAGER_GOAL, COMPILE_GOAL = 1.0, 1.1
# The losses quick mode measures (tests/test_benchmarks.py runs it in CI).
QUICK = ("huber_loss", "softmax_cross_entropy_with_integer_labels")


def _inputs(rng: np.random.Generator) -> dict[str, tuple]:
  """The positional inputs of each loss, the same for both libraries."""

  def normal(*shape):
    return jnp.asarray(rng.standard_normal(shape, dtype=np.float32))

  x, y = normal(ROWS, CLASSES), normal(ROWS, CLASSES)
  ints = jnp.asarray(rng.integers(0, CLASSES, ROWS), jnp.int32)
  onehot = jax.nn.one_hot(ints, CLASSES)
  probs = jax.nn.softmax(y)
  bits = jnp.asarray(rng.integers(0, 2, (ROWS, CLASSES)), jnp.float32)
  signs = 2.0 * jnp.asarray(rng.integers(0, 2, ROWS), jnp.float32) - 1.0
  frames, label_len, k = 16, 4, 8
  ctc = (
    normal(ROWS, frames, k),
    jnp.zeros((ROWS, frames)),
    jnp.asarray(rng.integers(1, k, (ROWS, label_len)), jnp.int32),
    jnp.zeros((ROWS, label_len)),
  )
  seg = normal(ROWS, 2, 2, 4)
  seg_targets = jax.nn.one_hot(jnp.asarray(rng.integers(0, 4, (ROWS, 2, 2))), 4)
  return {
    "ctc_loss": ctc,
    "dice_loss": (seg, seg_targets),
    "generalized_kl_divergence": (jax.nn.log_softmax(x), probs),
    "hinge_loss": (x[:, 0], signs),
    "huber_loss": (x, y),
    "kl_divergence": (jax.nn.log_softmax(x), probs),
    "kl_divergence_with_log_targets": (jax.nn.log_softmax(x), jnp.log(probs)),
    "l2_loss": (x, y),
    "log_cosh": (x, y),
    "multiclass_hinge_loss": (x, ints),
    "multiclass_sparsemax_loss": (x, ints),
    "ntxent": (x, jnp.arange(ROWS) // 2),
    "poly_loss_cross_entropy": (x, onehot),
    "sigmoid_binary_cross_entropy": (x, bits),
    "sigmoid_focal_loss": (x, bits),
    "softmax_cross_entropy": (x, onehot),
    "softmax_cross_entropy_with_integer_labels": (x, ints),
    "sparsemax_loss": (x, bits),
    "squared_error": (x, y),
    "triplet_margin_loss": (x, y, normal(ROWS, CLASSES)),
  }


def overlap() -> list[tuple[str, str]]:
  """``(optax name, jaxobj name)`` of every optax loss that jaxobj registers
  under that name or as an alias."""
  names = set(jaxobj.registry.names())
  out = []
  for name in sorted(dir(optax.losses)):
    target = jaxobj.registry.ALIASES.get(name, name)
    if not name.startswith("_") and callable(getattr(optax.losses, name)) and target in names:
      out.append((name, target))
  return out


# An eager measurement stops after this many seconds per function (at least 5
# calls): optax's ctc_loss (a scan) takes a good part of a second per eager call.
EAGER_BUDGET_S = 2.0


def _eager_ratio(ours: Callable, base: Callable, args: tuple, repeats: int, rounds: int) -> float:
  """Median over ``rounds`` of the median eager time of ours over base's, their
  calls interleaved one by one, so that a busy spell of a shared machine slows
  both (timing each in its own block made small losses' ratios swing 3x)."""
  for fn in (ours, base):
    for _ in range(3):  # the first call compiles (ours) or fills the op caches (optax)
      jax.block_until_ready(fn(*args))
  ratios = []
  for _ in range(rounds):
    times: tuple[list[float], list[float]] = ([], [])
    deadline = time.perf_counter() + 2 * EAGER_BUDGET_S
    while len(times[0]) < repeats and (len(times[0]) < 5 or time.perf_counter() < deadline):
      for fn, out in zip((ours, base), times):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - start)
    ratios.append(statistics.median(times[0]) / statistics.median(times[1]))
  return statistics.median(ratios)


def _compile_seconds(fn: Callable, args: tuple) -> float:
  """Trace plus compile of the jitted ``value_and_grad`` of a new function."""
  start = time.perf_counter()
  jax.jit(jax.value_and_grad(lambda *a: fn(*a))).lower(*args).compile()
  return time.perf_counter() - start


def _ratio(measure: Callable[[Callable], float], ours: Callable, base: Callable, rounds: int):
  """Median over ``rounds`` of ours over base, measured alternately."""
  return statistics.median(measure(ours) / measure(base) for _ in range(rounds))


def run(quick: bool) -> list[dict]:
  inputs = _inputs(np.random.default_rng(0))
  pairs = [(o, j) for o, j in overlap() if not quick or j in QUICK]
  missing = {j for _, j in pairs} - set(inputs)
  if missing:
    raise RuntimeError(f"bench_eager has no inputs for {sorted(missing)}: add them to _inputs.")
  repeats, rounds = (20, 1) if quick else (200, 5)
  compile_rounds = 1 if quick else 5
  records = []
  for optax_name, name in pairs:
    ours = getattr(jaxobj, name)
    theirs = getattr(optax.losses, optax_name)

    def base(*a, theirs=theirs):
      return jnp.mean(theirs(*a))

    args = inputs[name]
    eager = _eager_ratio(ours, base, args, repeats, rounds)
    _compile_seconds(ours, args), _compile_seconds(base, args)  # one-off imports and caches
    compile_ = _ratio(lambda f, args=args: _compile_seconds(f, args), ours, base, compile_rounds)
    ours_temp = harness.temp_bytes(jax.value_and_grad(ours), *args)
    base_temp = harness.temp_bytes(jax.value_and_grad(base), *args)
    shape = {"rows": ROWS, "inputs": " ".join("x".join(map(str, np.shape(a))) for a in args)}
    alias = "" if optax_name == name else f" (optax {optax_name})"
    for kind, ratio, goal in (("eager", eager, EAGER_GOAL), ("compile", compile_, COMPILE_GOAL)):
      what = "eager call" if kind == "eager" else "trace + compile of jit(value_and_grad)"
      records.append(
        {
          "name": f"{kind}: {name}{alias}",
          "impl": f"jaxobj.{name}",
          "baseline": f"optax.losses.{optax_name}",
          "shape": shape,
          "temp_bytes": ours_temp,
          "baseline_temp_bytes": base_temp,
          "time_ratio": round(ratio, 4),
          "goal": f"{what} <= {goal:g} x optax",
          "ok": bool(ratio <= goal),
        }
      )
  return records
