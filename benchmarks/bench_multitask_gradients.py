"""Per-task gradients in one compiled step, against one backward pass per task.

A two-layer MLP encoder shared by ``T`` linear regression heads; every task's
loss is the mean squared error of its head. ``jo.value_and_task_grad`` pulls
the ``T`` one-hot cotangents back through one forward pass together
(``jax.vmap`` over one VJP); the baseline is what a per-task loop does
(LibMTL's one backward pass per task): ``T`` separate ``jax.grad`` calls, in
the same jitted function, where XLA shares the forward pass. The batched
pullback does the same arithmetic in fewer, larger operations: it wins where
dispatch and small kernels dominate (the --quick sizes on CPU, accelerators),
and on CPU at the full sizes, where the loop's GEMMs are already large, it
costs about the same (the goal allows 1.25x). Then a full MGDA step in
representation mode (the encoder's backward pass runs once, on the combined
cotangent) against the same step with per-task gradients of all the shared
params (at the full sizes; at the --quick sizes dispatch dominates both). Last,
what a strategy that solves a problem every step (UPGrad: a nonnegative QP per
task, by active sets) adds to the step, against the plain sum of the task
gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import harness
from jaxobj import objective as jo


def _encoder(params, batch):
  h = jax.nn.gelu(batch["x"] @ params["w1"] + params["b1"])
  return jax.nn.gelu(h @ params["w2"] + params["b2"])


def _heads(heads, z, batch):
  return jnp.mean((z @ heads - batch["y"]) ** 2, axis=0)  # (T,)


def _losses(params, batch):
  return _heads(params["heads"], _encoder(params["encoder"], batch), batch)


def one_step(params, batch):
  """Per-task gradients of every param, one forward and one batched backward pass."""
  return jo.value_and_task_grad(_losses)(params, batch)


def per_task_loop(params, batch):
  """The same, with one ``jax.grad`` (one backward pass) per task."""
  t = batch["y"].shape[1]
  grads = [jax.grad(lambda p, i=i: _losses(p, batch)[i])(params) for i in range(t)]
  return _losses(params, batch), jax.tree.map(lambda *g: jnp.stack(g), *grads)


MGDA = jo.MGDA()


def mgda_params_step(params, batch):
  losses, grads = jo.value_and_task_grad(_losses)(params, batch)
  shared, _, _ = MGDA.update(grads["encoder"], MGDA.init(losses.shape[0]))
  return losses, shared, jax.tree.map(lambda g: jnp.sum(g, 0), grads["heads"])


def mgda_representation_step(params, batch):
  losses, rep_grads, pullback = jo.representation_task_grads(
    _encoder, _heads, params["encoder"], params["heads"], batch
  )
  update, _, _ = MGDA.update(rep_grads, MGDA.init(losses.shape[0]))
  shared, heads = pullback(update)
  return losses, shared, heads


def _strategy_step(strategy):
  def step(params, batch):
    losses, grads = jo.value_and_task_grad(_losses)(params, batch)
    update, _, _ = strategy.update(grads["encoder"], strategy.init(losses.shape[0]), losses=losses)
    return losses, update

  return step


def _inputs(n, d, h, t):
  keys = jax.random.split(jax.random.key(0), 5)
  params = {
    "encoder": {
      "w1": jax.random.normal(keys[0], (d, h)) / d**0.5,
      "b1": jnp.zeros(h),
      "w2": jax.random.normal(keys[1], (h, h)) / h**0.5,
      "b2": jnp.zeros(h),
    },
    "heads": jax.random.normal(keys[2], (h, t)) / h**0.5,
  }
  batch = {"x": jax.random.normal(keys[3], (n, d)), "y": jax.random.normal(keys[4], (n, t))}
  return params, batch


def run(quick: bool) -> list[dict]:
  n, d, h = (64, 32, 64) if quick else (256, 256, 512)
  repeats, rounds = (5, 3) if quick else (10, 5)
  records = []
  for t in (2, 4, 8):
    params, batch = _inputs(n, d, h, t)
    records.append(
      harness.compare(
        f"per-task gradients, T={t}, one step vs one backward pass per task",
        impl="jo.value_and_task_grad (vmap over one VJP, one-hot cotangents)",
        baseline=f"{t} separate jax.grad calls in one jit",
        shape={"batch": n, "features": d, "hidden": h, "tasks": t},
        ours=one_step,
        base=per_task_loop,
        args=(params, batch),
        max_time_ratio=1.25,
        repeats=repeats,
        rounds=rounds,
      )
    )
  params, batch = _inputs(n, d, h, 8)
  records.append(
    harness.compare(
      "MGDA step, T=8: representation mode vs per-task gradients of the shared params",
      impl="jo.representation_task_grads + MGDA + one encoder backward pass",
      baseline="jo.value_and_task_grad of the encoder params + MGDA",
      shape={"batch": n, "features": d, "hidden": h, "tasks": 8},
      ours=mgda_representation_step,
      base=mgda_params_step,
      args=(params, batch),
      max_time_ratio=1.0 if quick else 0.6,
      max_temp_ratio=1.0,
      repeats=repeats,
      rounds=rounds,
    )
  )
  records.append(
    harness.compare(
      "UPGrad step, T=8, vs the sum of the task gradients",
      impl="jo.value_and_task_grad + jo.UPGrad (8 nonnegative QPs, exact)",
      baseline="jo.value_and_task_grad + jo.WeightedSum",
      shape={"batch": n, "features": d, "hidden": h, "tasks": 8},
      ours=_strategy_step(jo.UPGrad()),
      base=_strategy_step(jo.WeightedSum()),
      args=(params, batch),
      max_time_ratio=None if quick else 1.5,
      repeats=repeats,
      rounds=rounds,
    )
  )
  return records
