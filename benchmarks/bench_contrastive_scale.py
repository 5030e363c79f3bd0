"""CLIP and SigLIP at scale: chunked on one device, a ring over a device mesh.

One device: ``jaxobj.chunked_siglip_loss`` and ``jaxobj.chunked_clip_loss``
against the unchunked ``jaxobj.siglip_loss`` and ``jaxobj.clip_loss``, which
form the whole ``[B, B]`` similarity matrix. Goals at B = 8192, D = 512
(float32, jitted ``value_and_grad`` with respect to both embeddings): SigLIP
temporaries <= 64 MiB, CLIP <= 128 MiB, both at most 1.10x the unchunked
time.

A mesh: ``sharded_siglip_loss`` and ``sharded_clip_loss`` with
``method="ring"`` against an all-gather written the obvious way (gather the
texts, or both sides for CLIP, and form the local ``[n, N n]`` logits), as
the per-device temporaries of the jitted ``value_and_grad`` taken inside
``shard_map`` with n = 1024 pairs per device, D = 512, at 4, 8 and 16
devices. Goals: the SigLIP ring <= 20 MiB at every size; the CLIP ring <=
0.2x the all-gather at 8 devices. The devices are CPU host devices
(``--xla_force_host_platform_device_count``) in a subprocess, and only memory
is measured there: their timings would say nothing about a real interconnect.
The library's own ``method="all_gather"`` is recorded beside them.

``--quick``: B = 1024, D = 64 in blocks of 128 on one device (temporaries
<= 1/4 of the unchunked loss's; no time goal), and
n = 128, D = 64 at 4 and 8 devices (the ring <= 1/2 of the all-gather at 8).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxobj
from benchmarks import harness
from jaxobj.losses.contrastive import CLIP_LOG_TEMPERATURE, SIGLIP_BIAS, SIGLIP_LOG_TEMPERATURE

ROOT = pathlib.Path(__file__).resolve().parent.parent
MIB = harness.MIB
LOSSES = {
  "siglip": (jaxobj.chunked_siglip_loss, jaxobj.siglip_loss, jaxobj.sharded_siglip_loss),
  "clip": (jaxobj.chunked_clip_loss, jaxobj.clip_loss, jaxobj.sharded_clip_loss),
}


def _views(rows: int, dim: int):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((rows, dim)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(x + 0.5 * rng.standard_normal((rows, dim)), jnp.float32)


def _value_and_grad(loss, **kw):
  return jax.value_and_grad(lambda x, y: loss(x, y, **kw), argnums=(0, 1))


def _single_device(quick: bool) -> list[dict]:
  rows, dim = (1024, 64) if quick else (8192, 512)
  # The default block is about 2**21 logits, the whole batch at B = 1024.
  block = 128 if quick else None
  timing = {"repeats": 3, "rounds": 1 if quick else 3}
  args = _views(rows, dim)
  records = []
  for kind, (chunked, naive, _) in LOSSES.items():
    if quick:
      goals = {"max_temp_ratio": 0.25}
    else:
      goals = {"max_temp_bytes": (64 if kind == "siglip" else 128) * MIB, "max_time_ratio": 1.10}
    records.append(
      harness.compare(
        f"{chunked.__name__} value_and_grad",
        impl=f"jaxobj.{chunked.__name__}",
        baseline=f"jaxobj.{naive.__name__}",
        shape={"B": rows, "D": dim, "dtype": "float32", "block_size": block or "default"},
        ours=_value_and_grad(chunked, block_size=block),
        base=_value_and_grad(naive),
        args=args,
        **goals,
        **timing,
      )
    )
  return records


# --------------------------------------------------------------------------
# Per-device memory on a mesh, measured in a subprocess with host devices.


def _unit(x):
  return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), jnp.finfo(x.dtype).eps))


def _gathered_siglip(x, y, *, axis, log_temperature=SIGLIP_LOG_TEMPERATURE, bias=SIGLIP_BIAS):
  """SigLIP with the texts all-gathered: local [n, N n] logits."""
  n = x.shape[0]
  texts = jax.lax.all_gather(y, axis, tiled=True)
  z = _unit(x) @ _unit(texts).T * jnp.exp(log_temperature) + bias
  rows = jax.lax.axis_index(axis) * n + jnp.arange(n)
  pos = rows[:, None] == jnp.arange(texts.shape[0])[None, :]
  total = jnp.sum(jax.nn.softplus(jnp.where(pos, -z, z)))
  return jax.lax.psum(total, axis) / texts.shape[0]


def _gathered_clip(x, y, *, axis, log_temperature=CLIP_LOG_TEMPERATURE):
  """CLIP with both sides all-gathered: local [n, N n] logits each way."""
  scale = jnp.exp(log_temperature)
  images = jax.lax.all_gather(x, axis, tiled=True)
  texts = jax.lax.all_gather(y, axis, tiled=True)
  diag = jnp.sum(_unit(x) * _unit(y), -1) * scale
  to_text = jax.nn.logsumexp(_unit(x) @ _unit(texts).T * scale, axis=1) - diag
  to_image = jax.nn.logsumexp(_unit(y) @ _unit(images).T * scale, axis=1) - diag
  return jax.lax.psum(jnp.sum(0.5 * (to_text + to_image)), axis) / texts.shape[0]


def _per_device(mesh, loss):
  """The value_and_grad of ``loss`` inside shard_map, on global arrays."""
  return jax.shard_map(
    _value_and_grad(loss),
    mesh=mesh,
    in_specs=(P("data"), P("data")),
    out_specs=(P(), (P("data"), P("data"))),
  )


def _mesh_records(devices: list[int], rows: int, dim: int, quick: bool) -> list[dict]:
  """Runs inside the subprocess: one record per loss, method and mesh size."""
  records = []
  baselines = {"siglip": _gathered_siglip, "clip": _gathered_clip}
  for size in devices:
    mesh = jax.make_mesh((size,), ("data",), devices=jax.devices()[:size])
    x = jax.device_put(jnp.zeros((size * rows, dim), jnp.float32), NamedSharding(mesh, P("data")))
    args = (x, x)
    for kind, (_, _, sharded) in LOSSES.items():
      base = _per_device(mesh, lambda a, b, kind=kind: baselines[kind](a, b, axis="data"))
      methods = ["ring"] + (["all_gather"] if size == 8 else [])
      for method in methods:
        goals = {}
        if method == "ring" and kind == "siglip" and not quick:
          goals = {"max_temp_bytes": 20 * MIB}
        if method == "ring" and size == 8:
          goals.setdefault("max_temp_ratio", 0.5 if quick else 0.2)
        ours = _per_device(
          mesh, lambda a, b, s=sharded, m=method: s(a, b, axis_name="data", method=m)
        )
        records.append(
          harness.compare(
            f"{sharded.__name__}(method={method!r}) per-device value_and_grad",
            impl=f"jaxobj.{sharded.__name__}(method={method!r})",
            baseline=f"all_gather of the {'texts' if kind == 'siglip' else 'embeddings'}, "
            f"dense [n, N n] logits",
            shape={"devices": size, "n_per_device": rows, "D": dim, "dtype": "float32"},
            ours=ours,
            base=base,
            args=args,
            time=False,
            **goals,
          )
        )
  return records


def _mesh(quick: bool) -> list[dict]:
  devices = [4, 8] if quick else [4, 8, 16]
  rows, dim = (128, 64) if quick else (1024, 512)
  script = (
    "import json, sys\n"
    "from benchmarks import bench_contrastive_scale as b\n"
    f"records = b._mesh_records({devices}, {rows}, {dim}, {quick})\n"
    "sys.stdout.write('RECORDS ' + json.dumps(records) + '\\n')\n"
  )
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={max(devices)}",
    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
  )
  proc = subprocess.run(
    [sys.executable, "-c", script],
    env=env,
    cwd=ROOT,
    check=False,
    capture_output=True,
    text=True,
    timeout=1200,
  )
  if proc.returncode:
    raise RuntimeError(f"the {max(devices)}-device subprocess failed:\n{proc.stderr[-4000:]}")
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RECORDS "))
  return json.loads(line.removeprefix("RECORDS "))


def run(quick: bool) -> list[dict]:
  return _single_device(quick) + _mesh(quick)
