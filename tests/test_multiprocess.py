"""Several JAX processes on one machine: the launcher, the multi-process harness, bad input.

The harness (``runs``): ``multiprocess_worker.py`` launched as 2 processes x
4 CPU devices, joined by ``jax.distributed.initialize`` over loopback with
the gloo collectives, each process feeding only its own rows; and, side by
side, the same worker as 1 process x 8 devices, which also computes every
check unsharded and compares (the 8-device check of ``test_splitting``'s
objectives, microbatches included, runs there). The test then compares each
process's values and gradients with both.

The launcher tests run small Python children (most without JAX), so they are
cheap; the children that join a run share one launch per bad input, run side
by side. Every test checks that no child, nor anything it started, outlives
the launch.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import pickle
import signal
import socket
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
import test_splitting as t

from jaxobj.train import launch as launcher
from jaxobj.train.launch import LaunchError, free_port, initialize_from_env, launch


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  # A zombie is not running: only the launcher could reap it, and it has.
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _assert_all_gone(pids) -> None:
  # The launcher has reaped its children; a grandchild it sent SIGKILL to may
  # take a moment to end (the kernel tears it down after launch returns).
  deadline = time.monotonic() + 5.0
  alive = [p for p in pids if _alive(p)]
  while alive and time.monotonic() < deadline:
    time.sleep(0.05)
    alive = [p for p in alive if _alive(p)]
  for p in alive:  # never leave one behind, even when the test fails
    os.kill(p, signal.SIGKILL)
  assert not alive, f"processes outlived the launch: {alive}"


def _python(code: str) -> list[str]:
  return [sys.executable, "-c", textwrap.dedent(code)]


# A child that starts a grandchild in its own process group, writes the
# grandchild's pid, then does what its argument says.
FAMILY = """
    import os, subprocess, sys, time
    i = int(os.environ["JAXOBJ_PROCESS_ID"])
    g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print("grandchild", g.pid, os.environ["JAXOBJ_COORDINATOR_ADDRESS"],
          os.environ["JAXOBJ_NUM_PROCESSES"], os.environ["JAXOBJ_LOCAL_DEVICES"], flush=True)
    {body}
"""


def _grandchildren(result) -> list[int]:
  pids = []
  for out in result.outputs:
    pids += [int(line.split()[1]) for line in out.splitlines() if line.startswith("grandchild")]
  return pids


def test_a_failing_process_stops_the_others_and_its_reason_is_one_line():
  body = """
    if i == 1:
      print("reading the data failed: no such file 'shard-1'", flush=True)
      sys.exit(3)
    time.sleep(300)
  """
  start = time.monotonic()
  result = launch(
    _python(FAMILY.format(body=textwrap.dedent(body).strip().replace("\n", "\n    "))),
    processes=3,
    devices_per_process=2,
    timeout=120,
  )
  elapsed = time.monotonic() - start
  assert not result.ok and not result.timed_out
  assert result.returncodes[1] == 3
  assert result.returncodes[0] < 0 and result.returncodes[2] < 0  # stopped by a signal
  assert result.failure == (
    "process 1 of 3 failed with exit status 3: reading the data failed: no such file 'shard-1'"
  )
  assert "\n" not in result.failure
  # The others were stopped after the grace period, not after the timeout.
  assert elapsed < launcher.GRACE + 2 * launcher._KILL_AFTER + 20, elapsed
  # Every child saw the same coordinator and counts.
  lines = [out.splitlines()[0].split()[2:] for out in result.outputs]
  assert len({tuple(x) for x in lines}) == 1 and lines[0][1:] == ["3", "2"]
  assert lines[0][0].startswith("127.0.0.1:")
  grandchildren = _grandchildren(result)
  assert len(grandchildren) == 3
  _assert_all_gone(result.pids + tuple(grandchildren))
  with pytest.raises(LaunchError, match="process 1 of 3 failed"):
    result.check()


def test_the_timeout_stops_every_process_even_one_that_ignores_sigterm():
  body = """
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(300)
  """
  start = time.monotonic()
  result = launch(
    _python(FAMILY.format(body=textwrap.dedent(body).strip().replace("\n", "\n    "))),
    processes=2,
    devices_per_process=1,
    timeout=1.5,
  )
  elapsed = time.monotonic() - start
  assert result.timed_out and not result.ok
  assert result.returncodes == (-signal.SIGKILL, -signal.SIGKILL)
  assert result.failure.startswith(
    "timed out after 1.5 s with process(es) [0, 1] of 2 still running"
  )
  assert elapsed < 1.5 + 2 * launcher._KILL_AFTER + 20, elapsed
  _assert_all_gone(result.pids + tuple(_grandchildren(result)))


def test_a_successful_launch_tees_its_output_and_leaves_nothing_behind(tmp_path):
  log = (tmp_path / "tee.txt").open("w")
  code = """
    import os, sys
    print("hello from", os.environ["JAXOBJ_PROCESS_ID"], os.getcwd())
    print("flags:", os.environ.get("XLA_FLAGS"), os.environ["JAX_PLATFORMS"], file=sys.stderr)
  """
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_cpu_enable_fast_math=false"}
  result = launch(
    _python(code), processes=2, devices_per_process=4, timeout=60, env=env, cwd=tmp_path, tee=log
  )
  log.close()
  assert result.check() is result and result.returncodes == (0, 0)
  for i, out in enumerate(result.outputs):
    assert f"hello from {i} {tmp_path}" in out
    # The device count is the launcher's, not a count forced in XLA_FLAGS.
    assert "flags: --xla_cpu_enable_fast_math=false cpu" in out
  teed = (tmp_path / "tee.txt").read_text()
  assert f"[process 1] hello from 1 {tmp_path}" in teed
  _assert_all_gone(result.pids)


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"processes": 0}, r"processes must be a positive integer; got 0"),
    ({"processes": 2.0}, r"processes must be a positive integer; got 2.0"),
    ({"devices_per_process": 300}, r"devices_per_process is 300, above the limit of 256"),
    (
      {"processes": 64, "devices_per_process": 8},
      r"64 processes x 8 devices_per_process = 512 devices, more than the 256 .*fewer",
    ),
    ({"timeout": 0}, r"timeout must be a positive number of seconds; got 0"),
    ({"timeout": float("inf")}, r"timeout must be finite"),
    ({"argv": "python train.py"}, r"argv must be a non-empty sequence of strings"),
    ({"argv": []}, r"argv must be a non-empty sequence of strings"),
    ({"port": 70000}, r"port is 70000, above the limit of 65535"),
    ({"grace": -1.0}, r"grace must be a non-negative, finite number of seconds; got -1.0"),
  ],
)
def test_bad_launch_arguments_are_refused_before_anything_starts(kwargs, match):
  args = {"argv": [sys.executable, "-c", "pass"], "processes": 2, "devices_per_process": 4}
  args.update(kwargs)
  args.setdefault("timeout", 10)
  with pytest.raises(ValueError, match=match):
    launch(args.pop("argv"), **args)


def test_free_port_is_a_loopback_port_that_can_be_bound():
  port = free_port()
  with socket.socket() as s:
    s.bind(("127.0.0.1", port))


def test_initialize_from_env_without_the_variables_does_nothing(monkeypatch):
  for name in (launcher.ENV_COORDINATOR, launcher.ENV_NUM_PROCESSES, launcher.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  assert initialize_from_env() is False


# ------------------------------------------------------------ joining: bad inputs

# Joins the run, then reads its rows of a 12-row batch: 12 does not divide over
# 2 processes x 4 devices.
JOIN_AND_SLICE = """
    import sys
    from jaxobj.train.launch import initialize_from_env, process_slice
    initialize_from_env()
    import jax
    print("joined", jax.process_index(), jax.device_count(), jax.local_device_count(), flush=True)
    try:
      process_slice(int(sys.argv[1]))
    except ValueError as error:
      sys.exit(f"jaxobj: {error}")
"""
# Process 1 never joins (it sleeps where it should call initialize_from_env).
NEVER_JOINS = """
    import os, time
    if os.environ["JAXOBJ_PROCESS_ID"] == "1":
      time.sleep(300)
    from jaxobj.train.launch import initialize_from_env
    initialize_from_env()
"""


def test_bad_runs_end_with_one_clear_line_and_no_orphans():
  """A batch that does not divide, a taken coordinator port and a process that never
  joins, as three launches side by side (their children import JAX)."""
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    runs = {
      "batch": dict(argv=_python(JOIN_AND_SLICE) + ["12"], processes=2),
      # Process 0 serves the coordinator: one process is enough (one JAX import fewer).
      "port": dict(argv=_python(JOIN_AND_SLICE) + ["8"], port=taken.getsockname()[1], processes=1),
      # A short wait to join, for the process that waits in vain.
      "never": dict(argv=_python(NEVER_JOINS), processes=2, env={launcher.ENV_INIT_TIMEOUT: "4"}),
    }
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
      futures = {
        k: pool.submit(launch, devices_per_process=4, timeout=120, **kw) for k, kw in runs.items()
      }
      results = {k: f.result() for k, f in futures.items()}
  for k, result in results.items():
    _assert_all_gone(result.pids)
    assert not result.ok and not result.timed_out, (k, result.failure, result.outputs)
    assert "\n" not in result.failure

  batch = results["batch"]
  assert batch.returncodes == (1, 1), batch.outputs
  assert all("joined" in out and "8 4" in out for out in batch.outputs), batch.outputs
  assert batch.failure.endswith(
    "failed with exit status 1: jaxobj: a batch of 12 rows does not divide over 2 process(es) "
    "x 4 device(s) = 8 devices; use a multiple of 8, such as 8 or 16."
  )

  port = results["port"]
  address = f"127.0.0.1:{runs['port']['port']}"
  assert port.returncodes == (1,), port.outputs
  assert port.failure == (
    f"process 0 of 1 failed with exit status 1: jaxobj: process 0 of 1 could not start the "
    f"coordinator at {address}: the port is in use (another program listens there); launch "
    "again with a free port."
  )

  never = results["never"]
  assert never.returncodes[0] == 1 and never.returncodes[1] < 0, never.outputs
  assert never.failure.startswith("process 0 of 2 failed with exit status 1: jaxobj: process 0 ")
  assert never.failure.endswith(
    "within 4 s: a process never started or died before joining (JAXOBJ_INIT_TIMEOUT sets the "
    "wait)."
  )
  # The one line is all the joining process wrote (no native stack trace).
  assert never.outputs[0].strip().splitlines() == [never.failure.split(": ", 1)[1]]


# ------------------------------------------------------------ the harness: 2 x 4 against 1 x 8

WORKER = pathlib.Path(__file__).with_name("multiprocess_worker.py")
# Every check of the worker (its module docstring says what each covers).
CHECKS = {
  "registry",
  *(f"multitask/{name}" for name in t.MULTITASK),
  "untracked",
  *(f"{kind}/{method}" for kind in ("clip", "siglip") for method in ("ring", "all_gather")),
  "accumulate",
  "fused_xent",
  "upgrad",
}
OBJECTIVES = {"registry", "accumulate", *(f"multitask/{name}" for name in t.MULTITASK)}
# Across processes, one multi-task scheme (uncertainty weighting): each costs a compile.
ACROSS = CHECKS - {f"multitask/{name}" for name in t.MULTITASK if name != "uncertainty"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The worker as 1 process x 8 devices and as 2 processes x 4 devices, side by side
  (each process compiles each program once); ``{layout: (LaunchResult, [results])}``."""
  layouts = {"1x8": (1, 8), "2x4": (2, 4)}
  dirs = {k: tmp_path_factory.mktemp(k) for k in layouts}
  with concurrent.futures.ThreadPoolExecutor(len(layouts)) as pool:
    futures = {
      k: pool.submit(
        launch,
        [sys.executable, str(WORKER), str(dirs[k])],
        processes=p,
        devices_per_process=d,
        timeout=1500,  # about 300 s of CPU for the one process: generous, for a loaded machine
        # Generous waits to join and at exit, for a loaded machine (they cost nothing when
        # all goes well).
        env={
          launcher.ENV_INIT_TIMEOUT: "180",
          launcher.ENV_PEER_TIMEOUT: "120",
          # The check is one program against another, so XLA's backend need not optimize:
          # the objective over the whole registry then compiles in about a third less CPU.
          "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
        },
      )
      for k, (p, d) in layouts.items()
    }
    launched = {k: f.result() for k, f in futures.items()}
  out = {}
  for k, result in launched.items():
    _assert_all_gone(result.pids)
    assert result.ok, f"{k}: {result.failure}\n" + "\n".join(o[-3000:] for o in result.outputs)
    loaded = []
    for i in range(layouts[k][0]):
      with open(dirs[k] / f"p{i}.pkl", "rb") as f:
        loaded.append(pickle.load(f))
    out[k] = (result, loaded)
  return out


def _close(got, want, what):
  assert jax.tree.structure(got) == jax.tree.structure(want), what
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(
      g, w, rtol=1e-6, atol=1e-6, err_msg=f"{what}{jax.tree_util.keystr(path)}"
    )


def test_every_sharded_path_on_two_processes_equals_one_process_and_the_whole_batch(runs):
  """Value and every gradient of each check, from each of the 2 processes, equal the
  single-process 8-device result and the unsharded one (float32, 1e-6); the single
  process compared its sharded results, and its microbatches, with the whole itself."""
  (one_result, (one,)), (two_result, two) = runs["1x8"], runs["2x4"]
  for result, checks in ((one_result, CHECKS), (two_result, ACROSS)):
    for out in result.outputs:
      assert sum(line.startswith("ok ") for line in out.splitlines()) == len(checks), out[-2000:]
  assert set(one["whole"]) == set(one["sharded"]) == CHECKS
  for i, process in enumerate(two):
    assert set(process["sharded"]) == ACROSS and not process["whole"]
    for name in sorted(ACROSS):
      got = process["sharded"][name]
      for layout, want in (("1x8", one["sharded"][name]), ("whole", one["whole"][name])):
        what = f"process {i} of 2, {name}, against {layout}"
        if name in OBJECTIVES:
          try:
            t._compare(got, want)
          except AssertionError as error:
            raise AssertionError(f"{what}: {error}") from None
        else:
          _close(got, want, what)
  # The unmasked counts are the whole batch's, summed over both processes.
  (_, info), _ = two[1]["sharded"]["registry"]
  assert float(info["count/regression/squared_error.plain"]) == t.N
