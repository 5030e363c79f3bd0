"""Several JAX processes on one machine: starting them, and joining them into one run.

Real TPU pods and GPU clusters run one JAX process per host, joined by
``jax.distributed.initialize``. :func:`launch` starts such processes locally,
each with its own share of simulated CPU devices, so that multi-controller
code (``jax.make_array_from_process_local_data``, collectives across
processes) runs for real on one machine; :func:`initialize_from_env`, called by
each child before any JAX work, joins them.

The launcher tells each child who it is through environment variables:

- ``JAXOBJ_COORDINATOR_ADDRESS``: ``127.0.0.1:<port>``, where process 0
  serves the coordinator and the others connect;
- ``JAXOBJ_NUM_PROCESSES``: the number of processes, ``P``;
- ``JAXOBJ_PROCESS_ID``: this process's index, ``0`` to ``P - 1``;
- ``JAXOBJ_LOCAL_DEVICES``: the CPU devices of this process (``jax_num_cpu_devices``);
- ``JAXOBJ_INIT_TIMEOUT`` (optional): seconds to wait for every process to
  join (default :data:`DEFAULT_INIT_TIMEOUT`);
- ``JAXOBJ_PEER_TIMEOUT`` (optional): seconds of silence after which a peer
  counts as lost, JAX's heartbeat and shutdown timeouts (default
  :data:`DEFAULT_PEER_TIMEOUT`).

A script of your own can read them too, so ``launch([sys.executable,
"train.py"], processes=2, devices_per_process=4, timeout=600)`` runs
``train.py`` as two hosts of four devices if it starts with
``initialize_from_env()``. The children run on the CPU (``JAX_PLATFORMS=cpu``
unless ``env`` says otherwise) with JAX's gloo collectives between processes.

Failures end, never hang: a process that exits non-zero makes the launcher
stop the others after :data:`GRACE` seconds; the overall ``timeout`` stops
them all; a process that cannot join (a port in use, a peer that never
starts) exits with one line after ``JAXOBJ_INIT_TIMEOUT`` seconds. Stopping
is SIGTERM to each child's process group, then SIGKILL: no child outlives
:func:`launch`, and whatever a child started is sent SIGKILL with it.

Importing this module starts no JAX backend.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import IO, Any, NoReturn

import jax

from jaxobj.config.experiment import MAX_HOST_DEVICES

__all__ = [
  "DEFAULT_INIT_TIMEOUT",
  "DEFAULT_PEER_TIMEOUT",
  "ENV_COORDINATOR",
  "ENV_INIT_TIMEOUT",
  "ENV_LOCAL_DEVICES",
  "ENV_NUM_PROCESSES",
  "ENV_PEER_TIMEOUT",
  "ENV_PROCESS_ID",
  "GRACE",
  "LaunchError",
  "LaunchResult",
  "free_port",
  "initialize_from_env",
  "launch",
  "process_slice",
]

ENV_COORDINATOR = "JAXOBJ_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAXOBJ_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXOBJ_PROCESS_ID"
ENV_LOCAL_DEVICES = "JAXOBJ_LOCAL_DEVICES"
ENV_INIT_TIMEOUT = "JAXOBJ_INIT_TIMEOUT"
ENV_PEER_TIMEOUT = "JAXOBJ_PEER_TIMEOUT"

DEFAULT_INIT_TIMEOUT = 60.0
"""Seconds a child waits for every process to join before it exits with one line."""
DEFAULT_PEER_TIMEOUT = 30.0
"""Seconds of silence after which JAX's runtime counts a peer as lost (heartbeat, shutdown)."""
GRACE = 2.0
"""Seconds the other children get, by default, to end after one exits non-zero."""
# Seconds between SIGTERM and SIGKILL. JAX's preemption notice takes over SIGTERM in a
# joined process, so SIGKILL usually ends it.
_KILL_AFTER = 2.0
_POLL = 0.05


class LaunchError(RuntimeError):
  """A launched run failed: raised by :meth:`LaunchResult.check`, with the one-line reason."""


@dataclasses.dataclass(frozen=True)
class LaunchResult:
  """What :func:`launch` returns.

  Attributes:
    returncodes: each process's exit status, by process id (negative: ended by
      that signal, e.g. ``-9`` when the launcher had to SIGKILL it).
    outputs: each process's stdout and stderr, interleaved as written (empty
      strings when the output was not captured).
    pids: each process's id (all of them have exited when :func:`launch` returns).
    failure: one line saying why the run failed (the first process to fail,
      its exit status and the last line it wrote, or the timeout); ``None``
      when every process exited with status 0.
    timed_out: the overall timeout stopped the run.
    elapsed: seconds from the first start to the last exit.
    first_failed: the process that exited non-zero first (``None`` when none
      did, or when the timeout stopped the run).
  """

  returncodes: tuple[int, ...]
  outputs: tuple[str, ...]
  pids: tuple[int, ...]
  failure: str | None
  timed_out: bool
  elapsed: float
  first_failed: int | None = None

  @property
  def ok(self) -> bool:
    """Every process exited with status 0."""
    return self.failure is None

  def why(self, i: int) -> str:
    """How process ``i`` ended: its exit status and the line of its output that says why."""
    line = _last_line(self.outputs[i])
    return _describe(self.returncodes[i]) + (f": {line}" if line != "(no output)" else "")

  def check(self) -> LaunchResult:
    """Returns ``self``; raises :class:`LaunchError` with :attr:`failure` if the run failed."""
    if self.failure is not None:
      raise LaunchError(self.failure)
    return self


def free_port() -> int:
  """A TCP port on the loopback interface (127.0.0.1) that is free now.

  The port is released before this returns, so another program could take it
  before the coordinator binds it; the coordinator then fails with a clear
  line (see :func:`initialize_from_env`) and the launch can be retried.
  """
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return int(s.getsockname()[1])


def _positive_int(value: Any, name: str, hi: int | None = None) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be a positive integer; got {value!r}.")
  if hi is not None and value > hi:
    raise ValueError(f"{name} is {value}, above the limit of {hi}.")
  return value


def _child_env(
  env: Mapping[str, str] | None, address: str, processes: int, pid: int, devices: int
) -> dict[str, str]:
  out = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  # The device count is JAXOBJ_LOCAL_DEVICES's: a count forced in XLA_FLAGS would override it.
  flags = [
    f
    for f in out.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
  ]
  out["XLA_FLAGS"] = " ".join(flags)
  out["PYTHONUNBUFFERED"] = "1"  # lines arrive as written, and survive an abort
  out.update(
    {
      ENV_COORDINATOR: address,
      ENV_NUM_PROCESSES: str(processes),
      ENV_PROCESS_ID: str(pid),
      ENV_LOCAL_DEVICES: str(devices),
    }
  )
  return out


_NOISE = ("@ ", "*** ", "[Gloo]", "RPC:", "---", "For simplicity, JAX has removed")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _last_line(text: str) -> str:
  """The line of a child's output that says why it failed.

  The last exception line of a Python traceback if there is one near the end
  (JAX appends notes after it), else the last line that is not a native
  stack frame or runtime chatter.
  """
  lines = [line.strip() for line in text.splitlines()]
  lines = [line for line in lines if line and not line.startswith(_NOISE)]
  for line in reversed(lines[-40:]):
    if _EXCEPTION.match(line):
      return line[:300]
  return lines[-1][:300] if lines else "(no output)"


def _describe(code: int) -> str:
  if code < 0:
    try:
      return f"signal {signal.Signals(-code).name}"
    except ValueError:
      return f"signal {-code}"
  return f"exit status {code}"


def _stop(procs: Sequence[subprocess.Popen]) -> None:
  """SIGTERM every child's process group, then SIGKILL what is left; reaps the children."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    for p in procs:
      if sig == signal.SIGKILL or p.poll() is None:
        try:
          os.killpg(p.pid, sig)  # start_new_session: the group id is the child's pid
        except (ProcessLookupError, PermissionError):
          pass
    deadline = time.monotonic() + _KILL_AFTER
    while sig == signal.SIGTERM and time.monotonic() < deadline:
      if all(p.poll() is not None for p in procs):
        break
      time.sleep(_POLL)
  for p in procs:
    p.wait()


def launch(
  argv: Sequence[str],
  *,
  processes: int,
  devices_per_process: int,
  timeout: float,
  env: Mapping[str, str] | None = None,
  cwd: str | os.PathLike[str] | None = None,
  port: int | None = None,
  grace: float = GRACE,
  capture: bool = True,
  tee: IO[str] | None = None,
) -> LaunchResult:
  """Runs ``argv`` as ``processes`` local JAX processes joined into one run.

  Each child gets the ``JAXOBJ_*`` variables of this module's docstring (a
  fresh loopback port for the coordinator, its process id, the process count
  and ``devices_per_process``), ``JAX_PLATFORMS=cpu`` and unbuffered Python
  output, on top of this process's environment and ``env``. It should call
  :func:`initialize_from_env` before any JAX work.

  The launcher waits for all children. When one exits non-zero, the others
  get ``grace`` seconds, then are stopped; when ``timeout`` seconds pass,
  all are stopped. Stopping sends SIGTERM to each child's process group, then
  SIGKILL: every child has ended when this returns, and everything a child
  started has been sent SIGKILL (also on Ctrl-C, which is re-raised).

  Args:
    argv: the command each child runs, e.g. ``[sys.executable, "train.py"]``
      or ``[sys.executable, "-m", "jaxobj", "run", "config.yaml"]``.
    processes: the number of processes ``P`` (``>= 1``).
    devices_per_process: CPU devices in each process; ``P *
      devices_per_process`` devices in all, at most ``MAX_HOST_DEVICES``.
    timeout: seconds the whole run may take.
    env: variables to set in the children (over this process's environment;
      ``JAX_PLATFORMS`` may be set here to use another platform).
    cwd: the children's working directory.
    port: the coordinator's port on 127.0.0.1 (default: :func:`free_port`).
    grace: seconds the others get to end by themselves (and say why) after one
      process exits non-zero, before they are stopped.
    capture: keep each child's output in :attr:`LaunchResult.outputs`;
      ``False`` lets the children write to this process's stdout and stderr
      directly (a terminal stays a terminal, for progress bars).
    tee: a text stream that also receives each captured line as it arrives,
      prefixed with ``[process i]``.

  Returns:
    A :class:`LaunchResult`; :meth:`LaunchResult.check` raises on failure.

  Raises:
    ValueError: ``argv`` is empty or not a sequence of strings, a count is not
      a positive integer, more devices are asked for than the limit, or
      ``timeout`` is not a positive number.

  Example:
    >>> import sys
    >>> from jaxobj.train.launch import launch
    >>> code = "import os; print(os.environ['JAXOBJ_PROCESS_ID'])"
    >>> result = launch([sys.executable, "-c", code], processes=2, devices_per_process=4,
    ...                 timeout=60)
    >>> result.ok, result.returncodes, [out.strip() for out in result.outputs]
    (True, (0, 0), ['0', '1'])
  """
  if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
    raise ValueError(
      f"argv must be a non-empty sequence of strings, e.g. [sys.executable, 'train.py']; "
      f"got {argv!r}."
    )
  processes = _positive_int(processes, "processes", MAX_HOST_DEVICES)
  devices = _positive_int(devices_per_process, "devices_per_process", MAX_HOST_DEVICES)
  if processes * devices > MAX_HOST_DEVICES:
    raise ValueError(
      f"{processes} processes x {devices} devices_per_process = {processes * devices} "
      f"devices, more than the {MAX_HOST_DEVICES} host devices jaxobj allows; ask for fewer "
      "processes or fewer devices per process."
    )
  if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
    raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}.")
  if not math.isfinite(timeout):
    raise ValueError(f"timeout must be finite, so that a hung run ends; got {timeout!r}.")
  if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < math.inf:
    raise ValueError(f"grace must be a non-negative, finite number of seconds; got {grace!r}.")

  if port is not None:
    port = _positive_int(port, "port", 65535)
  address = f"127.0.0.1:{port or free_port()}"
  chunks: list[list[str]] = [[] for _ in range(processes)]
  procs: list[subprocess.Popen] = []
  readers: list[threading.Thread] = []
  start = time.monotonic()

  def read(i: int, stream: IO[str]) -> None:
    for line in stream:
      chunks[i].append(line)
      if tee is not None:
        tee.write(f"[process {i}] {line}")
        tee.flush()

  failure: str | None = None
  timed_out = False
  try:
    for i in range(processes):
      p = subprocess.Popen(
        list(argv),
        env=_child_env(env, address, processes, i, devices),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        errors="replace",
        start_new_session=True,
      )
      procs.append(p)
      if capture:
        assert p.stdout is not None
        readers.append(threading.Thread(target=read, args=(i, p.stdout), daemon=True))
        readers[-1].start()
    deadline = start + timeout
    failed_at: float | None = None
    first_failed: int | None = None
    while True:
      polled = [p.poll() for p in procs]
      if all(c is not None for c in polled):
        break
      now = time.monotonic()
      if first_failed is None:
        first_failed = next((i for i, c in enumerate(polled) if c not in (None, 0)), None)
        if first_failed is not None:
          failed_at = now
      if now >= deadline:
        timed_out = True
        break
      if failed_at is not None and now >= failed_at + grace:
        break
      time.sleep(_POLL)
    if timed_out:
      running = [i for i, p in enumerate(procs) if p.poll() is None]
      failure = (
        f"timed out after {timeout:g} s with process(es) {running} of {processes} still "
        "running; all were stopped"
      )
    elif first_failed is None:
      first_failed = next((i for i, p in enumerate(procs) if p.returncode != 0), None)
  finally:
    _stop(procs)  # also on Ctrl-C or an error here: no child outlives launch
    for t in readers:
      t.join(timeout=5.0)
  elapsed = time.monotonic() - start
  outputs = tuple("".join(c) for c in chunks)
  codes = tuple(int(p.returncode) for p in procs)
  if failure is None and first_failed is not None:
    why = _last_line(outputs[first_failed]) if capture else "see its output above"
    failure = (
      f"process {first_failed} of {processes} failed with {_describe(codes[first_failed])}: {why}"
    )
  return LaunchResult(
    returncodes=codes,
    outputs=outputs,
    pids=tuple(p.pid for p in procs),
    failure=failure,
    timed_out=timed_out,
    elapsed=elapsed,
    first_failed=None if timed_out else first_failed,
  )


def _seconds(value: float | None, name: str, env_name: str, default: float) -> float:
  """A timeout: the argument, else the environment variable, else the default."""
  raw: Any = value
  if value is None:
    raw = os.environ.get(env_name) or default
    name = f"{env_name}={raw!r}"
  try:
    seconds = float(raw)
  except (TypeError, ValueError):
    seconds = math.nan
  if not (math.isfinite(seconds) and seconds > 0):
    raise ValueError(f"{name} must be a positive, finite number of seconds; got {raw!r}.")
  return seconds


def _env_int(name: str) -> int:
  raw = os.environ.get(name, "")
  try:
    return int(raw)
  except ValueError:
    raise ValueError(
      f"{name}={raw!r} is not an integer; {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, "
      f"{ENV_PROCESS_ID} and {ENV_LOCAL_DEVICES} are set together by jaxobj.train.launch."
    ) from None


def _fail(line: str) -> NoReturn:
  """Ends this process with one line on stderr and exit status 1 (no JAX shutdown)."""
  sys.stdout.flush()
  print(line, file=sys.stderr, flush=True)
  os._exit(1)


def _can_bind(address: str) -> bool:
  host, port = address.rsplit(":", 1)
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is free
    try:
      s.bind((host, int(port)))
    except OSError:
      return False
  return True


def _exit_on_uncaught_error() -> None:
  """An uncaught exception ends the process at once, skipping JAX's shutdown barrier.

  Otherwise the failing process waits at exit for peers that are still
  computing (up to the peer timeout) before the launcher learns of it.
  """
  previous = sys.excepthook

  def hook(kind, value, tb) -> None:
    if issubclass(kind, KeyboardInterrupt):
      previous(kind, value, tb)
      return
    traceback.print_exception(kind, value, tb)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)

  sys.excepthook = hook


def initialize_from_env(
  *, init_timeout: float | None = None, peer_timeout: float | None = None
) -> bool:
  """Joins this process to a run started by :func:`launch`; call it before any JAX work.

  Reads the ``JAXOBJ_*`` variables (see the module docstring), sets
  ``jax_num_cpu_devices`` and the gloo CPU collectives, and calls
  ``jax.distributed.initialize`` with the coordinator address, the process
  count and id and bounded timeouts. With no ``JAXOBJ_COORDINATOR_ADDRESS``
  it does nothing and returns ``False`` (a single process; on a cluster call
  ``jax.distributed.initialize()`` yourself, which reads SLURM's or the TPU
  runtime's variables).

  A process that cannot join ends with one line on stderr and exit status 1:
  when the coordinator's port is taken, at once; when a peer never joins,
  after ``init_timeout`` seconds. After joining, an uncaught exception
  prints its traceback and exits with status 1 at once (not after JAX's
  shutdown barrier), so the launcher can stop the others.

  Args:
    init_timeout: seconds to wait for every process to join (default:
      ``JAXOBJ_INIT_TIMEOUT``, else :data:`DEFAULT_INIT_TIMEOUT`).
    peer_timeout: seconds of silence after which JAX's runtime counts a peer
      as lost, and the longest it waits for the others at exit (default:
      ``JAXOBJ_PEER_TIMEOUT``, else :data:`DEFAULT_PEER_TIMEOUT`).

  Returns:
    Whether this process joined a multi-process run.

  Raises:
    ValueError: a ``JAXOBJ_*`` variable is malformed, or the process id is
      not below the process count.
    RuntimeError: JAX's backend had started already, so the device count
      could not be set (call this first, before any JAX computation).
  """
  address = os.environ.get(ENV_COORDINATOR)
  if not address:
    return False
  if jax.distributed.is_initialized():
    return True
  processes = _env_int(ENV_NUM_PROCESSES)
  pid = _env_int(ENV_PROCESS_ID)
  devices = _env_int(ENV_LOCAL_DEVICES)
  if processes < 1 or devices < 1 or not 0 <= pid < processes:
    raise ValueError(
      f"{ENV_PROCESS_ID}={pid}, {ENV_NUM_PROCESSES}={processes} and {ENV_LOCAL_DEVICES}="
      f"{devices}: the process id must be in [0, processes) and the counts positive."
    )
  init = _seconds(init_timeout, "init_timeout", ENV_INIT_TIMEOUT, DEFAULT_INIT_TIMEOUT)
  peer = _seconds(peer_timeout, "peer_timeout", ENV_PEER_TIMEOUT, DEFAULT_PEER_TIMEOUT)
  try:
    jax.config.update("jax_num_cpu_devices", devices)
  except RuntimeError:
    raise RuntimeError(
      f"process {pid}: JAX had started its backend before initialize_from_env, so it "
      f"cannot be given {devices} CPU devices; call initialize_from_env() first, before "
      "any JAX computation."
    ) from None
  jax.config.update("jax_cpu_collectives_implementation", "gloo")

  joined = threading.Event()
  who = f"jaxobj: process {pid} of {processes}"

  def watchdog() -> None:
    if not joined.wait(init):
      _fail(
        f"{who} could not join the run at {address} within {init:g} s: a process "
        f"never started or died before joining ({ENV_INIT_TIMEOUT} sets the wait)."
      )

  if pid == 0 and not _can_bind(address):
    # JAX's coordinator would fail to bind too, and may crash doing so.
    _fail(
      f"{who} could not start the coordinator at {address}: the port is in use "
      "(another program listens there); launch again with a free port."
    )
  # JAX's own join timeout aborts the process with a native stack trace; the
  # watchdog ends it first, with one line.
  threading.Thread(target=watchdog, daemon=True).start()
  try:
    jax.distributed.initialize(
      address,
      processes,
      pid,
      initialization_timeout=math.ceil(init) + 30,
      heartbeat_timeout_seconds=math.ceil(peer),
      shutdown_timeout_seconds=math.ceil(peer),
      coordinator_bind_address=address,  # the loopback interface only
    )
  except Exception as error:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    _fail(f"{who} could not join the run at {address}: {message}")
  finally:
    joined.set()
  _exit_on_uncaught_error()
  return True


def process_slice(batch_size: int) -> slice:
  """The rows of a global batch that this process feeds, by process index.

  For ``jax.make_array_from_process_local_data`` with the batch split over
  every device of every process: process ``i`` of ``P`` gets rows ``[i *
  batch_size / P, (i + 1) * batch_size / P)``.

  Raises:
    ValueError: ``batch_size`` does not divide over the processes' devices.

  Example:
    >>> from jaxobj.train.launch import process_slice
    >>> process_slice(16)  # one process here
    slice(0, 16, None)
  """
  processes, devices = jax.process_count(), jax.local_device_count()
  total = processes * devices
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
  if batch_size % total:
    lo = max(total, batch_size - batch_size % total)
    raise ValueError(
      f"a batch of {batch_size} rows does not divide over {processes} process(es) x "
      f"{devices} device(s) = {total} devices; use a multiple of {total}, such as {lo} "
      f"or {lo + total}."
    )
  rows = batch_size // processes
  i = jax.process_index()
  return slice(i * rows, (i + 1) * rows)
