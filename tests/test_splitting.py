"""Every registered loss, as a term of an objective, is exact under splitting.

The promise: an objective gives the whole batch's value and gradients whether
the batch is whole, split into microbatches (``jo.accumulate_value_and_grad``)
or sharded over devices (``apply(axis_name=...)`` inside ``shard_map``). The
case users hit first is the unmasked one, where a loss's count comes from a
static shape; masked and weighted terms are checked beside it, with a
microbatch (and so two devices' shards) fully masked.

Each loss whose rows are independent becomes three terms of one objective
(unmasked, masked, weighted), so one compile covers the whole registry. The
objectives below (``OBJECTIVE``, ``MULTITASK``) are checked whole, sharded over
8 devices and accumulated over microbatches by ``tests/multiprocess_worker.py``,
in the one 8-device process that ``tests/test_multiprocess.py`` launches beside
the 2-process run (which checks the same objectives across processes). A
model of two scalars per loss, ``x * (1 + a) + b`` on its first float input,
gives gradients that gather every row. Losses whose rows interact
(``couples_rows`` in the registry) must be refused instead, with the tool
that handles them named.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import subprocess
import sys
import textwrap
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo
from jaxobj import registry

N, M = 16, 4  # rows, microbatches (and 8 devices in the sharded check)
# Entries registered without example inputs (no_inputs: the GAN penalties take
# a critic function, the regularizers a parameter tree) are tested elsewhere.
SEPARABLE = [s for s in registry.specs() if s.inputs is not None and not s.couples_rows]
# Contract losses (they take reduction=): the calibration-error metrics bin the
# whole batch and are plain functions, refused like the other coupled ones.
COUPLED = [
  s
  for s in registry.specs()
  if s.couples_rows and s.inputs is not None and "reduction" in inspect.signature(s.fn).parameters
]
VARIANTS = {"plain": {}, "masked": {"where": "batch.mask"}, "weighted": {"weights": "batch.w"}}


def _inputs(spec):
  rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
  args = [jnp.asarray(a) for a in spec.inputs.make(rng, (N,))]
  n = len(args) if spec.inputs.batched is None else spec.inputs.batched
  return args[:n], args[n:]


def _batch(seed=0):
  """Row data of every loss, plus a mask (microbatch 0 all masked) and weights."""
  rng = np.random.default_rng(seed)
  mask = rng.uniform(size=N) < 0.6
  mask[: N // M] = False
  mask[N // M] = True  # uneven but never empty beyond the first microbatch
  batch = {"mask": jnp.asarray(mask), "w": jnp.asarray(rng.uniform(0.2, 2.0, N), jnp.float32)}
  shared = {}
  for spec in SEPARABLE:
    rows, rest = _inputs(spec)
    batch[spec.name] = tuple(rows)
    shared[spec.name] = tuple(rest)
  return batch, shared


def _model():
  """Two scalars per loss; evaluated at a = b = 0, so the inputs stay valid."""
  return {s.name: {"a": jnp.float32(0.0), "b": jnp.float32(0.0)} for s in SEPARABLE}


def _data_fn(mp, batch, shared):
  outputs = {}
  for spec in SEPARABLE:
    rows = list(batch[spec.name])
    if jnp.issubdtype(rows[0].dtype, jnp.floating):
      p = mp[spec.name]
      rows[0] = rows[0] * (1.0 + p["a"]) + p["b"]
    outputs[spec.name] = tuple(rows) + tuple(shared[spec.name])
  return {"outputs": outputs, "batch": batch, "model": mp}


def _objective():
  """Three terms per loss, in one group per family; some scaled by a schedule."""
  families = {}
  for i, spec in enumerate(SEPARABLE):
    n = len(spec.inputs.make(np.random.default_rng(0), (1,)))
    paths = [f"outputs.{spec.name}.{k}" for k in range(n)]
    for variant, kw in VARIANTS.items():
      t = jo.term(spec.fn, *paths, name=f"{spec.name}.{variant}", **kw)
      if i % 3 == 0 and variant == "plain":
        t = jo.linear_warmup(0.5, 1.5, steps=10) * t
      families.setdefault(spec.family, []).append(t)
  return sum(jo.group(f, sum(ts)) for f, ts in sorted(families.items()))


OBJECTIVE = _objective()
STEP = 4


def _whole(obj, params, batch, shared, **kw):
  """Value, info and gradients for ``params = (model params, objective params)``."""
  return jax.value_and_grad(
    lambda p: obj.apply(p[1], step=STEP, **kw, **_data_fn(p[0], batch, shared)), has_aux=True
  )(params)


# Gradients from an iterative solver stopped at a tolerance: another batch layout
# rounds differently inside the iterations, so its converged potentials (and the
# envelope-theorem gradient built from them) agree to about the solver's
# tolerance, not to float32 rounding. Values still agree to 1e-6.
GRAD_RTOL = {"sinkhorn_divergence": 1e-4}


def _compare(got, want):
  (value, info), grads = got
  (w_value, w_info), w_grads = want
  assert set(info) == set(w_info)
  bad = [
    k for k in w_info if not np.allclose(info[k], w_info[k], rtol=1e-6, atol=1e-6, equal_nan=False)
  ]
  assert not bad, {k: (float(info[k]), float(w_info[k])) for k in bad[:10]}
  chex.assert_trees_all_close(value, w_value, rtol=1e-6, atol=1e-6)
  (model, objective), (w_model, w_objective) = grads, w_grads
  bad = [
    k
    for k in w_model
    if not all(
      np.allclose(model[k][p], w_model[k][p], rtol=GRAD_RTOL.get(k, 1e-6), atol=1e-5)
      for p in ("a", "b")
    )
  ]
  assert not bad, {k: (model[k], w_model[k]) for k in bad[:10]}
  chex.assert_trees_all_close(objective, w_objective, rtol=1e-6, atol=1e-6)


def _micro(tree):
  return jax.tree.map(lambda a: a.reshape((M, N // M) + a.shape[1:]), tree)


def _accumulated(obj, params, batch, shared, **kw):
  return jo.accumulate_value_and_grad(
    obj, lambda m, mb: _data_fn(m, mb, shared), *params, _micro(batch), step=STEP, **kw
  )


def test_every_separable_loss_is_covered():
  names = {s.name for s in SEPARABLE}
  assert len(names) >= 70
  assert {
    "squared_error",
    "softmax_cross_entropy_with_integer_labels",
    "ctc_loss",
    "fused_linear_cross_entropy",
    "dpo_loss",
    "lovasz_softmax_loss",
  } <= names


# Every multi-task weighting scheme over unmasked terms (the case that was 8x
# wrong on a mesh), with the regularizer and a schedule beside it.
TASKS = {
  "sq": "squared_error",
  "ce": "softmax_cross_entropy_with_integer_labels",
  "rank": "pairwise_logistic_loss",
}


def _tasks():
  out = {}
  for task, name in TASKS.items():
    spec = registry.get(name)
    n = len(spec.inputs.make(np.random.default_rng(0), (1,)))
    out[task] = jo.term(spec.fn, *[f"outputs.{name}.{k}" for k in range(n)], name=task)
  return out


SCHEMES = {
  "static": jo.StaticWeights({"sq": 0.5, "ce": 2.0}),
  "uncertainty": jo.UncertaintyWeighting(kinds={"ce": "classification"}, init_log_variance=0.3),
  "dwa": jo.DynamicWeightAverage(),
  "famo": jo.FAMO(),
  "random": jo.RandomLossWeighting(),
  "geometric": jo.GeometricMean(),
}
MULTITASK = {
  name: jo.multitask(_tasks(), scheme)
  + jo.cosine_warmup(0.0, 1e-2, steps=10) * jo.regularizer(jaxobj.l2_penalty)
  for name, scheme in SCHEMES.items()
}


def _scheme_args(obj):
  state = obj.init_state() or None
  return {"state": state, "key": jax.random.key(3)}


def _run_on_eight_devices(script):
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(pathlib.Path(__file__).parent),
  )
  proc = subprocess.run(
    [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc.stdout


# ---------------------------------------------------------------- batch-coupled losses


def _coupled_term(spec):
  n = len(spec.inputs.make(np.random.default_rng(0), (1,)))
  return jo.term(spec.fn, *[f"x.{k}" for k in range(n)], name="coupled")


def _rows(spec, args, rows):
  """The batched inputs sliced to ``rows``; shared ones (class proxies) whole."""
  n = len(args) if spec.inputs.batched is None else spec.inputs.batched
  return tuple(a[rows] for a in args[:n]) + tuple(args[n:])


@pytest.mark.parametrize("spec", COUPLED, ids=[s.name for s in COUPLED])
def test_coupled_losses_are_refused_by_accumulation(spec):
  rng = np.random.default_rng(0)
  args = tuple(jnp.asarray(a) for a in spec.inputs.make(rng, (N,)))
  obj = _coupled_term(spec)
  n = len(args) if spec.inputs.batched is None else spec.inputs.batched
  micro = _micro(args[:n])
  with pytest.raises(ValueError, match=r"couples the rows.*cached_value_and_grad"):
    jo.accumulate_value_and_grad(obj, lambda m, mb: {"x": mb + args[n:]}, {}, {}, micro)


@pytest.mark.structure
def test_coupled_losses_are_registered_honestly():
  """Each loss marked as coupling its rows does give a different value on a split batch."""
  for spec in COUPLED:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    args = tuple(jnp.asarray(a) for a in spec.inputs.make(rng, (N,)))
    if spec.coupled_by:  # KTO couples rows only through its mismatched pairs
      assert len(args) > 3, spec.name
      # A KL estimate that differs between the halves (and stays positive).
      args = args[:3] + (args[4] + jnp.linspace(1.0, 5.0, N),) + args[4:]
    rows = [
      spec.fn(*_rows(spec, args, slice(i, i + N // 2)), reduction="none") for i in (0, N // 2)
    ]
    if np.allclose(np.concatenate(rows), spec.fn(*args, reduction="none"), rtol=1e-5):
      args = tuple(a[0] for a in args)  # each example row is a set: split one set's samples
    n = args[0].shape[0]
    whole = spec.fn(*args, reduction="sum")
    halves = sum(
      spec.fn(*_rows(spec, args, slice(i, i + n // 2)), reduction="sum") for i in (0, n // 2)
    )
    assert not np.isclose(float(whole), float(halves), rtol=1e-4), spec.name


COUPLED_SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, pytest
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxobj
    from jaxobj import objective as jo
    mesh = jax.make_mesh((8,), ("data",))
    x0 = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)), jnp.float32)
    x = jax.device_put(x0, NamedSharding(mesh, P("data")))
    for vma in (True, False):
      t = jo.term(jaxobj.siglip_loss, "a", "b")
      f = jax.jit(jax.shard_map(lambda a: t.apply(a=a, b=a[:, ::-1], axis_name="data")[0],
                                mesh=mesh, in_specs=P("data"), out_specs=P(), check_vma=vma))
      with pytest.raises(ValueError, match=r"couples the rows.*sharded_siglip_loss"):
        f(x)
    # The sharded form given the axis reduces over the devices itself: accepted, exact.
    t = jo.term(jaxobj.sharded_siglip_loss, "a", "b", axis_name="data")
    for vma in (True, False):
      f = jax.jit(jax.shard_map(lambda a: t.apply(a=a, b=a[:, ::-1], axis_name="data")[0],
                                mesh=mesh, in_specs=P("data"), out_specs=P(), check_vma=vma))
      np.testing.assert_allclose(f(x), jaxobj.siglip_loss(x0, x0[:, ::-1]), rtol=1e-6)
    print("ok coupled")
""")


def test_coupled_losses_are_refused_on_a_mesh():
  assert "ok coupled" in _run_on_eight_devices(COUPLED_SHARDED)


def test_kto_with_a_whole_batch_reference_point_is_separable():
  rng = np.random.default_rng(0)
  args = [jnp.asarray(rng.normal(size=N), jnp.float32) - 5.0 for _ in range(2)]
  labels = jnp.asarray(rng.integers(0, 2, N).astype(bool))
  obj = jo.term(jaxobj.kto_loss, "p", "r", "y", kl=0.3)
  data = {"p": args[0], "r": args[1], "y": labels}
  (value, _), _ = jo.accumulate_value_and_grad(obj, lambda m, mb: mb, {}, {}, _micro(data))
  np.testing.assert_allclose(value, jaxobj.kto_loss(*args, labels, kl=0.3), rtol=1e-6)
