"""One ``jaxobj run`` over several JAX processes: joining, the data each loads, lost peers.

A distributed run (``train.distributed: true``, the CLI's ``--distributed``,
or ``--processes N``, which starts N local processes itself) is one JAX
program run by every process (JAX's multi-controller model): each process
calls :func:`join` before JAX starts its backends, sees every device of the
run in ``jax.devices()``, feeds the rows of the training split that its own
devices hold, and takes part in every compiled step. Process 0 alone writes
the metrics, the plots and the summary.

:func:`join` uses the variables that :mod:`jaxobj.train.launch` gives the
processes it starts when they are present, and otherwise
``jax.distributed.initialize()``'s own detection of the cluster (SLURM, Open
MPI, Cloud TPU pods, or ``JAX_COORDINATOR_ADDRESS`` with the rest detected).

A process that dies leaves the others waiting inside a collective. JAX's
runtime ends them after its heartbeat timeout, by aborting with a stack
trace; :class:`Watchdog` ends them first, with one line: every process
publishes a counter through the runtime's key-value store every second and
watches the others', and a counter that stays still for ``timeout`` seconds
(``train.peer_timeout``) means that process is lost. The loss of process 0,
which runs the coordination service itself, is seen by JAX's runtime at once
and ends the others its own way.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["DistributedError", "Watchdog", "join", "local_rows", "global_array", "is_primary"]

LOST_STATUS = 75
"""The exit status of a process that stops because another one was lost."""


class DistributedError(RuntimeError):
  """A distributed run cannot start or go on; the message is one line with the fix."""


def join(*, join_timeout: float, peer_timeout: float) -> None:
  """Joins this process to its run's other processes (``jax.distributed.initialize``).

  Must be called before JAX starts its backends. Sets gloo as the CPU
  collectives (CPU processes exchange data through it; accelerators keep
  their own). JAX's own heartbeat timeout is set to ``2 * peer_timeout + 10``
  seconds, so that :class:`Watchdog` (after ``peer_timeout``) speaks first.

  Args:
    join_timeout: seconds to wait for every process to join.
    peer_timeout: seconds of silence after which a process counts as lost.

  Raises:
    DistributedError: the processes could not join (outside
      :mod:`jaxobj.train.launch`'s processes, which exit with one line
      themselves).
  """
  from jaxobj.train import launch

  runtime_timeout = 2 * peer_timeout + 10
  if launch.initialize_from_env(init_timeout=join_timeout, peer_timeout=runtime_timeout):
    return
  try:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
      initialization_timeout=max(1, math.ceil(join_timeout)),
      heartbeat_timeout_seconds=math.ceil(runtime_timeout),
      shutdown_timeout_seconds=max(300, math.ceil(runtime_timeout)),
    )
  except Exception as err:  # noqa: BLE001 (JAX's runtime errors have no public class)
    message = " ".join(str(err).split())[:300]
    raise DistributedError(
      f"this process could not join a distributed run ({type(err).__name__}: {message}); "
      "start it under SLURM, on a TPU pod or with Open MPI (where jax.distributed.initialize "
      "finds the others), or start the processes with jaxobj run --processes N."
    ) from None


def is_primary() -> bool:
  """Whether this is process 0, the one that writes the run's files."""
  return jax.process_index() == 0


def local_rows(n: int, sharding: jax.sharding.Sharding) -> slice:
  """The rows of an ``(n, ...)`` array split by ``sharding`` that this process's devices hold.

  The rows of one process are contiguous (a mesh over ``jax.devices()`` lists
  each process's devices together), so a process loads one slice.
  """
  blocks = sorted(
    {
      (index[0].start or 0, n if index[0].stop is None else index[0].stop)
      for index in sharding.addressable_devices_indices_map((n,)).values()
      if index is not None
    }
  )
  if any(a[1] != b[0] for a, b in zip(blocks, blocks[1:])):
    raise ValueError("this process's rows are not one contiguous block; order the mesh by process.")
  return slice(blocks[0][0], blocks[-1][1])


def global_array(sharding: jax.sharding.Sharding, local: Any, global_shape: tuple[int, ...]):
  """A global array from this process's part of it (the whole of it when replicated)."""
  return jax.make_array_from_process_local_data(sharding, np.asarray(local), global_shape)


def _client() -> Any:
  """The distributed runtime's client (``None`` outside a distributed run).

  JAX has no public handle on it; its key-value store is what
  :class:`Watchdog` needs.
  """
  try:
    from jax._src import distributed as jax_distributed
  except ImportError:  # pragma: no cover
    return None
  return getattr(getattr(jax_distributed, "global_state", None), "client", None)


class Watchdog:
  """Ends this process, with one line on stderr, when another process of the run is lost.

  Args:
    timeout: seconds without a sign of life from a process before it counts as lost.
    describe: called when a process is lost; says where the run stands (the
      last complete checkpoint), for the line.
    interval: seconds between two signs of life.
  """

  def __init__(
    self,
    timeout: float,
    describe: Callable[[], str] = lambda: "",
    *,
    interval: float = 1.0,
  ) -> None:
    self.timeout = timeout
    self.describe = describe
    self.interval = min(interval, timeout / 4)
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None
    self._client = _client()

  def start(self) -> Watchdog:
    if self._client is not None and jax.process_count() > 1:
      self._thread = threading.Thread(target=self._watch, name="jaxobj-watchdog", daemon=True)
      self._thread.start()
    return self

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()

  def __enter__(self) -> Watchdog:
    return self.start()

  def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
    self.stop()
    if value is not None and not isinstance(value, KeyboardInterrupt) and self._thread is not None:
      # An error inside a step of a run over several processes (a collective whose peer
      # died): this process cannot go on alone, and exiting normally would wait for the
      # others at JAX's shutdown barrier.
      message = " ".join(str(value).split())[:200]
      self._lost(f"a step failed ({type(value).__name__}: {message})")

  def _watch(self) -> None:
    me, count = jax.process_index(), jax.process_count()
    seen: dict[int, tuple[str | None, float]] = {}
    beat = 0
    started = time.monotonic()
    while not self._stop.wait(self.interval):
      beat += 1
      now = time.monotonic()
      try:
        self._client.key_value_set(f"jaxobj/alive/{me}", str(beat), allow_overwrite=True)
        for other in range(count):
          if other == me:
            continue
          try:
            value = self._client.key_value_try_get(f"jaxobj/alive/{other}")
          except Exception:  # noqa: BLE001 (not published yet)
            value = None
          if seen.get(other, (None, started))[0] != value or other not in seen:
            if value is not None or other not in seen:
              seen[other] = (value, now)
          if now - seen[other][1] > self.timeout:
            self._lost(f"process {other} of {count} gave no sign of life for {self.timeout:g} s")
      except Exception as err:  # noqa: BLE001 (the coordinator itself is gone)
        if self._stop.is_set():
          return
        message = " ".join(str(err).split())[:120]
        self._lost(f"the run's coordinator (process 0) cannot be reached ({message})")

  def _lost(self, what: str) -> None:
    try:
      where = self.describe()
    except Exception:  # noqa: BLE001
      where = ""
    print(
      f"jaxobj: error: process {jax.process_index()}: {what}; stopping this process"
      f"{f' ({where})' if where else ''}.",
      file=sys.stderr,
      flush=True,
    )
    os._exit(LOST_STATUS)
