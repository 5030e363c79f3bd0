"""The worker that tests/test_multiprocess.py launches: every sharded path, in one process.

Run by :func:`jaxobj.train.launch.launch` as each of P processes with D CPU
devices: ``python multiprocess_worker.py OUT_DIR`` (``tests/`` on the path,
for ``test_splitting``'s objective, batch and comparison). Every process
feeds only its own rows (``jax.make_array_from_process_local_data``) to
programs over one mesh of all P * D devices, and pickles each check's value
and gradients (host NumPy trees, identical on every process) to
``OUT_DIR/p<process>.pkl`` as ``{"sharded": {check: tree}}``.

In a single process (the 1 x 8 run) the worker also computes each check
unsharded, on one device, stores it as ``"whole"``, and compares the two
itself (the registry objectives also against ``jo.accumulate_value_and_grad``
over microbatches), so the test compares a 2 x 4 run with both. The checks:

- ``registry``: every registered loss whose rows are independent, as three
  terms (unmasked, masked, weighted) of ``test_splitting.OBJECTIVE``, through
  ``Objective.apply(axis_name=...)`` in ``shard_map``; ``multitask/<scheme>``:
  ``test_splitting.MULTITASK`` the same way (uncertainty weighting across
  processes, all six schemes in one process); ``untracked``: the same under
  ``check_vma=False`` (the value only);
- ``clip/<method>``, ``siglip/<method>``: the sharded contrastive losses per
  device (ring and all-gather) with a learnable temperature (and bias), the
  padded last rows masked;
- ``accumulate``: ``jo.accumulate_value_and_grad`` on microbatches whose rows
  are split over every device of every process: each process scans its own
  rows of each microbatch, and XLA reduces the statistics across processes;
- ``fused_xent``: the fused linear cross-entropy as terms of an objective,
  the token batch split over the processes, gradients for the hidden states
  and the (replicated) kernel;
- ``upgrad``: UPGrad in representation mode, the representation split over
  the processes.

Each process prints ``ok <check>`` as it goes; a failed comparison raises
(the launcher stops the others).
"""

from __future__ import annotations

import pathlib
import pickle
import sys
import time

from jaxobj.train.launch import initialize_from_env, process_slice

initialize_from_env()  # before any JAX computation

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import test_splitting as t  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jaxobj  # noqa: E402
from jaxobj import objective as jo  # noqa: E402

SINGLE = jax.process_count() == 1
MESH = jax.make_mesh((jax.device_count(),), ("data",))
REPLICATED = NamedSharding(MESH, P())
start = time.monotonic()
results: dict[str, dict] = {"sharded": {}, "whole": {}}


def split(tree, mesh=MESH):
  """Global arrays split by rows over every device, from this process's rows only."""
  rows = NamedSharding(mesh, P("data"))

  def one(a):
    a = np.asarray(a)
    return jax.make_array_from_process_local_data(rows, a[process_slice(a.shape[0])], a.shape)

  return jax.tree.map(one, tree)


def replicate(tree, mesh=MESH):
  everywhere = NamedSharding(mesh, P())
  return jax.tree.map(lambda a: jax.make_array_from_process_local_data(everywhere, a), tree)


def host(tree):
  """A result as NumPy, all of it on every process (rows split over processes gathered)."""

  def one(a):
    if a.is_fully_replicated:
      return np.asarray(a.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))

  return jax.tree.map(one, tree)


def close(got, want, what):
  for path, g in jax.tree_util.tree_leaves_with_path(got):
    w = np.asarray(dict(jax.tree_util.tree_leaves_with_path(want))[path])
    np.testing.assert_allclose(
      np.asarray(g), w, rtol=1e-6, atol=1e-6, err_msg=f"{what}{jax.tree_util.keystr(path)}"
    )


def record(name, sharded, whole=None, compare=close):
  """Stores a check's results; in a single process, compares sharded with whole first."""
  results["sharded"][name] = sharded
  if whole is not None:
    results["whole"][name] = whole
    compare(sharded, whole, name)
  print(f"ok {name} {time.monotonic() - start:.0f}s ({time.process_time():.0f}s CPU)", flush=True)


def on_mesh(fn, in_specs, out_specs=None):
  """Per device, over the one mesh; the results replicated unless ``out_specs`` says."""
  out_specs = P() if out_specs is None else out_specs
  return jax.jit(jax.shard_map(fn, mesh=MESH, in_specs=in_specs, out_specs=out_specs))


# ------------------------------------------------ Objective.apply(axis_name=...): the registry

BATCH, SHARED = t._batch()
BATCH_SPLIT = split(BATCH)
SHARED_R = replicate(SHARED)


def objective_check(name, obj, **kw):
  params = (t._model(), obj.init())
  local = lambda m, b, s: t._whole(obj, m, b, s, axis_name="data", **kw)
  sharded = host(on_mesh(local, (P(), P("data"), P()))(replicate(params), BATCH_SPLIT, SHARED_R))
  whole = None
  if SINGLE:
    whole = host(jax.jit(lambda m, b, s: t._whole(obj, m, b, s, **kw))(params, BATCH, SHARED))
    micro = jax.jit(lambda m, b, s: t._accumulated(obj, m, b, s, **kw))(params, BATCH, SHARED)
    t._compare(host(micro), whole)
  record(name, sharded, whole, lambda got, want, _: t._compare(got, want))
  return sharded


(_, info), _ = objective_check("registry", t.OBJECTIVE)
# Counts are the whole batch's, summed over every process: unmasked N rows, masked the mask's.
assert float(info["count/regression/squared_error.plain"]) == t.N
assert float(info["count/regression/squared_error.masked"]) == float(np.sum(BATCH["mask"]))
# Every scheme in one process (their 8-device check); across processes, uncertainty
# weighting (learned params) alone, as each scheme costs a compile in every process.
for scheme, obj in sorted(t.MULTITASK.items()):
  if SINGLE or scheme == "uncertainty":
    objective_check(f"multitask/{scheme}", obj, **t._scheme_args(obj))

# check_vma=False: nothing is tracked, so every term is summed over the devices.
# (Gradients there are JAX's per-device ones, without the psum that tracking
# inserts for replicated params: only the value is whole.)
obj = t.MULTITASK["uncertainty"]
params = (t._model(), obj.init())
untracked = jax.jit(
  jax.shard_map(
    lambda p, b, s: obj.apply(p[1], step=t.STEP, axis_name="data", **t._data_fn(p[0], b, s)),
    mesh=MESH,
    in_specs=(P(), P("data"), P()),
    out_specs=P(),
    check_vma=False,
  )
)
got = host(untracked(replicate(params), BATCH_SPLIT, SHARED_R))
whole = None
if SINGLE:
  whole = host(
    jax.jit(lambda p: obj.apply(p[1], step=t.STEP, **t._data_fn(p[0], BATCH, SHARED)))(params)
  )
record("untracked", got, whole)

# ------------------------------------------------ sharded CLIP and SigLIP, learnable scale and bias

rng = np.random.default_rng(3)
N, D = 16, 4
X = rng.standard_normal((N, D)).astype(np.float32)
Y = (X + 0.5 * rng.standard_normal((N, D))).astype(np.float32)
VALID = np.arange(N) < N - 3  # the padded last rows, masked
LOSSES = {
  "clip": (jaxobj.clip_loss, jaxobj.sharded_clip_loss, {}),
  "siglip": (jaxobj.siglip_loss, jaxobj.sharded_siglip_loss, {"bias": -1.5}),
}
SCALE = np.float32(1.1)  # log temperature, a learned value

for kind, (plain, sharded_fn, fixed) in LOSSES.items():
  learned = {"log_temperature": SCALE, **{k: np.float32(v) for k, v in fixed.items()}}

  def whole_fn(x, y, learned, m):
    return jax.value_and_grad(lambda x, y, h: plain(x, y, **h, where=m), (0, 1, 2))(x, y, learned)

  whole = host(jax.jit(whole_fn)(X, Y, learned, VALID)) if SINGLE else None
  for method in ("ring", "all_gather"):

    def local(x, y, learned, m, method=method):
      def f(x, y, h):
        return sharded_fn(x, y, **h, axis_name="data", method=method, where=m)

      return jax.value_and_grad(f, (0, 1, 2))(x, y, learned)

    fn = on_mesh(local, (P("data"), P("data"), P(), P("data")), (P(), (P("data"), P("data"), P())))
    got = host(fn(*split((X, Y)), replicate(learned), split(VALID)))
    record(f"{kind}/{method}", got, whole)

# ------------------------------------------------ accumulate_value_and_grad, rows over processes

MICRO = 2  # microbatches of 8 rows: one row of each on every device
ACC_OBJECTIVE = (
  t.MULTITASK["uncertainty"]
  + jo.term(jaxobj.squared_error, "outputs.squared_error.0", "outputs.squared_error.1",
            where="batch.mask", name="masked")
  + 0.5 * jo.term(jaxobj.huber_loss, "outputs.huber_loss.0", "outputs.huber_loss.1",
                  weights="batch.w", name="weighted")
)  # fmt: skip
ACC_KW = t._scheme_args(ACC_OBJECTIVE)
ACC_PARAMS = (t._model(), ACC_OBJECTIVE.init())
# Microbatch m holds rows [8m, 8m + 8); P(None, "data") gives device d row d of each.
MICRO_ROWS = jax.tree.map(lambda a: np.asarray(a).reshape((MICRO, -1) + a.shape[1:]), BATCH)
micro_split = jax.tree.map(
  lambda a: jax.make_array_from_process_local_data(
    NamedSharding(MESH, P(None, "data")), a[:, process_slice(a.shape[1])], a.shape
  ),
  MICRO_ROWS,
)
acc_fn = jax.jit(
  lambda p, mb, s: jo.accumulate_value_and_grad(
    ACC_OBJECTIVE, lambda m, b: t._data_fn(m, b, s), *p, mb, step=t.STEP, **ACC_KW
  ),
  out_shardings=REPLICATED,
)
got = host(acc_fn(replicate(ACC_PARAMS), micro_split, SHARED_R))
whole = None
if SINGLE:
  whole = host(
    jax.jit(lambda p, b, s: t._whole(ACC_OBJECTIVE, p, b, s, **ACC_KW))(ACC_PARAMS, BATCH, SHARED)
  )
record("accumulate", got, whole, lambda got, want, _: t._compare(got, want))

# ------------------------------------------------ the fused cross-entropy, tokens over processes

TOKENS, HIDDEN, VOCAB = 16, 8, 12
hidden = rng.standard_normal((TOKENS, HIDDEN)).astype(np.float32)
kernel = (0.5 * rng.standard_normal((HIDDEN, VOCAB))).astype(np.float32)
labels = rng.integers(0, VOCAB, TOKENS).astype(np.int32)
labels[[1, 6]] = -100  # ignored tokens, beside the mask
tokens_valid = rng.uniform(size=TOKENS) < 0.7
tokens_valid[:4] = False  # one process's first devices hold no valid token
XENT = jo.term(
  jaxobj.fused_linear_cross_entropy, "h", "y", "W", where="valid", token_block=2, name="masked"
) + 0.3 * jo.term(
  jaxobj.fused_linear_cross_entropy, "h", "y", "W", label_smoothing=0.1, z_loss=1e-3, name="plain"
)


def xent(h, w, y, valid, axis_name=None):
  return jax.value_and_grad(
    lambda h, w: XENT.apply(h=h, W=w, y=y, valid=valid, axis_name=axis_name), (0, 1), has_aux=True
  )(h, w)


fn = on_mesh(
  lambda h, w, y, v: xent(h, w, y, v, "data"),
  (P("data"), P(), P("data"), P("data")),
  (P(), (P("data"), P())),
)
got = host(fn(split(hidden), replicate(kernel), split(labels), split(tokens_valid)))
whole = host(jax.jit(xent)(hidden, kernel, labels, tokens_valid)) if SINGLE else None
record("fused_xent", got, whole)

# ------------------------------------------------ UPGrad on a representation split over processes

TASKS = 3
enc_params = {
  "w": (0.5 * rng.standard_normal((D, HIDDEN))).astype(np.float32),
  "b": (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32),
}
head_params = (0.5 * rng.standard_normal((HIDDEN, TASKS))).astype(np.float32)
targets = rng.standard_normal((N, TASKS)).astype(np.float32)
targets[:, 1] = -targets[:, 0]  # two tasks in conflict


def upgrad(enc, heads, x, y):
  encoder = lambda p, x, y: jnp.tanh(x @ p["w"] + p["b"])
  task_losses = lambda h, z, x, y: jnp.mean((z @ h - y) ** 2, axis=0)
  losses, rep_grads, pullback = jo.representation_task_grads(encoder, task_losses, enc, heads, x, y)
  strategy = jo.UPGrad()
  update, _, info = strategy.update(rep_grads, strategy.init(TASKS))
  return losses, update, pullback(update), info["weights"]


# The partitioner places the strategy's inner products over the split rows (Auto axes:
# explicit sharding would ask where each product's result lives).
auto = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
args = (enc_params, head_params, X, targets)
fn = jax.jit(upgrad, out_shardings=NamedSharding(auto, P()))
sharded_args = replicate((enc_params, head_params), auto) + split((X, targets), auto)
got = host(fn(*sharded_args))
whole = host(jax.jit(upgrad)(*args)) if SINGLE else None
record("upgrad", got, whole)

out = pathlib.Path(sys.argv[1]) / f"p{jax.process_index()}.pkl"
with open(out.with_suffix(".tmp"), "wb") as f:
  pickle.dump(results, f)
out.with_suffix(".tmp").rename(out)  # whole, or not there
print(f"done {time.monotonic() - start:.0f}s ({time.process_time():.0f}s CPU)", flush=True)
