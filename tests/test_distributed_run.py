"""`jaxobj run` over several JAX processes: the same results as one process over the same
devices, checkpoints, a lost process that stops the others with one line, an exact resume,
and bad input answered with one line.

The runs are real: `jaxobj run --processes 2 --devices 4` starts two CPU processes of four
devices each, joined over a loopback coordinator with gloo collectives; the reference is one
process over 8 devices. They are started together, once, by a module-scoped fixture.
"""

import csv
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxobj import cli
from jaxobj.train import checkpoint, launch
from jaxobj.train.history import History

ROOT = pathlib.Path(__file__).resolve().parent.parent

TINY = """\
name: tiny
data: {name: two_tasks, n_train: 60, n_val: 16, features: 4}
model: {name: mlp, hidden: [8], outputs: {y: 1, labels: 2}}
objective:
  terms:
    reg: {loss: squared_error, inputs: [outputs.y, batch.y]}
    cls: {loss: softmax_cross_entropy_with_integer_labels, inputs: [outputs.labels, batch.labels]}
optimizer: {name: adam, learning_rate: 0.01}
train: {steps: 16, batch_size: 16, eval_every: 4, log_every: 2, checkpoint_every: 4,
        peer_timeout: 2}
"""

LOST_BOUND = 60.0
"""Seconds from the loss of a process to the exit of the whole run. The survivor sees the
loss in its next collective (or after the peer timeout, 2 s here) and the launcher then
stops at once; the rest is room for a loaded machine. A hang would last until JAX's own
heartbeat timeout aborted the survivor, without jaxobj's line (which the test checks)."""


def _env():
  launcher = {launch.ENV_COORDINATOR, launch.ENV_NUM_PROCESSES, launch.ENV_PROCESS_ID}
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and k not in launcher}
  env["JAX_PLATFORMS"] = "cpu"
  return env


def _start(config, out, *args, env=None):
  return subprocess.Popen(
    [sys.executable, "-m", "jaxobj", "run", str(config), "--no-progress", "--out", str(out)]
    + list(args),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    cwd=ROOT,
    env={**_env(), **(env or {})},
  )


def _children(parent: int) -> dict[int, int]:
  """The launched processes of ``parent``: {JAXOBJ_PROCESS_ID: pid} (read from /proc)."""
  found = {}
  for entry in pathlib.Path("/proc").iterdir():
    if not entry.name.isdigit():
      continue
    try:
      ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
      if ppid != parent:
        continue
      env = (entry / "environ").read_bytes().split(b"\0")
    except (OSError, IndexError, ValueError):
      continue
    for item in env:
      if item.startswith(b"JAXOBJ_PROCESS_ID="):
        found[int(item.split(b"=", 1)[1])] = int(entry.name)
  return found


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  try:  # a zombie has exited
    return (pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
  except OSError:
    return False


def _finish(proc, timeout=300):
  try:
    out, err = proc.communicate(timeout=timeout)
  finally:
    proc.kill()
  return proc.returncode, out, err


def _kill(proc, out, victim):
  """Holds a run still once it has a checkpoint, kills its process ``victim`` (the run's
  only process when ``victim`` is None) and lets the others go on.

  Returns (the step of the checkpoint kept, the pids of the run's processes, when killed).
  """
  children = _children(proc.pid) if victim is not None else {0: proc.pid}
  assert len(children) == (2 if victim is not None else 1), children
  pids = list(children.values())
  for pid in pids:  # hold the run still, so that the checkpoint kept is known
    os.kill(pid, signal.SIGSTOP)
  kept = checkpoint.latest_step(out)
  os.kill(children[victim or 0], signal.SIGKILL)
  killed_at = time.monotonic()
  for pid in pids:
    os.kill(pid, signal.SIGCONT)
  return kept, pids, killed_at


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The runs, started together: one process over 8 devices, whole and killed after a
  checkpoint then resumed; two processes of 4, whole and with one process killed after a
  checkpoint then resumed. A shared compilation cache lets the resumed runs skip compiling."""
  tmp = tmp_path_factory.mktemp("distributed")
  config = tmp / "tiny.yaml"
  config.write_text(TINY)
  env = {"JAX_COMPILATION_CACHE_DIR": str(tmp / "cache")}
  two = ["--processes", "2", "--devices", "4", "--timeout", "300"]
  procs = {
    "one": _start(config, tmp / "one", "--devices", "8", env=env),
    "solo": _start(config, tmp / "solo", "--devices", "8", env=env),
    "two": _start(config, tmp / "two", *two, env=env),
    "lost": _start(config, tmp / "lost", *two, env=env),
  }
  result = {"tmp": tmp}
  pids = []
  try:
    pending = {"solo": None, "lost": 1}  # the run, and the process to kill in it
    deadline = time.monotonic() + 240
    while pending:
      for name, victim in list(pending.items()):
        if checkpoint.latest_step(tmp / name) is None and procs[name].poll() is None:
          continue
        del pending[name]
        result[f"{name}_kept"], more, result[f"{name}_at"] = _kill(procs[name], tmp / name, victim)
        pids += more
      assert time.monotonic() < deadline, "no checkpoint within 240 s"
      time.sleep(0.02)
    for name, resume in (("solo", ("--devices", "8")), ("lost", two)):
      result[name] = _finish(procs[name], timeout=120)
      result[f"{name}_after"] = time.monotonic() - result[f"{name}_at"]
      result[f"{name}_rows"] = History.read(tmp / name / "metrics.csv").rows
      procs[f"{name}_resumed"] = _start(config, tmp / name, *resume, "--resume", env=env)
    result["outlived"] = [pid for pid in pids if _alive(pid)]
    for name in ("one", "two", "solo_resumed", "lost_resumed"):
      result[name] = _finish(procs[name])
  finally:
    for proc in procs.values():
      proc.kill()
      proc.wait()
    for pid in pids:
      if _alive(pid):
        os.kill(pid, signal.SIGKILL)
  return result


def _table(path):
  with open(path, newline="") as f:
    return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def _leaves(tree):
  return jax.tree.leaves(tree)


def test_two_processes_give_the_results_of_one_over_the_same_devices(runs):
  tmp = runs["tmp"]
  for name in ("one", "two"):
    code, out, err = runs[name]
    assert code == 0, err
  one, two = _table(tmp / "one" / "metrics.csv"), _table(tmp / "two" / "metrics.csv")
  assert [(r["step"], r["split"]) for r in one] == [(r["step"], r["split"]) for r in two]
  assert len(one) == 14  # train and val rows at step 0, then 8 train and 4 val rows
  for a, b in zip(one, two):
    for key in a:
      if key not in ("step", "split") and a[key]:
        np.testing.assert_allclose(float(b[key]), float(a[key]), rtol=1e-6, atol=1e-6)
  # the final parameters, optimizer state included
  final_one, final_two = checkpoint.read_arrays(tmp / "one"), checkpoint.read_arrays(tmp / "two")
  assert checkpoint.latest_step(tmp / "two") == 16
  for a, b in zip(_leaves(final_one), _leaves(final_two), strict=True):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
  summaries = [json.loads((tmp / n / "summary.json").read_text()) for n in ("one", "two")]
  assert summaries[0]["devices"] == summaries[1]["devices"] == 8
  assert summaries[1]["steps_done"] == 16 and not summaries[1]["interrupted"]
  # process 0 alone wrote the files and printed the summary
  assert "tiny: step 16 of 16" in runs["two"][1]
  assert not (tmp / "two" / "INCOMPLETE").exists()


def test_a_lost_process_stops_the_run_with_one_line_and_resume_is_exact(runs):
  tmp = runs["tmp"]
  code, out, err = runs["lost"]
  kept = runs["lost_kept"]
  # the run stops with one line naming the checkpoint and --resume, status 75: the survivor's
  # own (it saw its peer's connection close in a collective, or its silence), relayed by the
  # launcher, or the launcher's, when gloo aborted the survivor on a message cut short first
  assert code == 75, err
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert (
    lines[0].startswith("jaxobj: error: process 0: ")
    and ("Connection reset by peer" in lines[0] or "process 1 of 2 gave no sign" in lines[0])
  ) or lines[0].startswith("jaxobj: error: process 1 of 2 was lost (signal SIGKILL)"), err
  assert f"checkpoint of step {kept}: continue with --resume" in lines[0]
  assert runs["lost_after"] < LOST_BOUND
  assert runs["outlived"] == []
  # the run directory keeps a readable metrics file and the checkpoint
  assert runs["lost_rows"] and runs["lost_rows"][-1]["step"] >= kept
  assert (tmp / "lost" / "INCOMPLETE").exists() or kept is not None
  # resumed, the run ends where an uninterrupted one does, bit for bit
  code, out, err = runs["lost_resumed"]
  assert code == 0, err
  assert 0 < kept < 16
  for a, b in zip(
    _leaves(checkpoint.read_arrays(tmp / "two")),
    _leaves(checkpoint.read_arrays(tmp / "lost")),
    strict=True,
  ):
    np.testing.assert_array_equal(b, a)
  assert _table(tmp / "lost" / "metrics.csv") == _table(tmp / "two" / "metrics.csv")
  summary = json.loads((tmp / "lost" / "summary.json").read_text())
  assert summary["steps_done"] == 16 and not summary["interrupted"]
  assert not (tmp / "lost" / "INCOMPLETE").exists()


# ---------------------------------------------------------------- bad input, one line each


def _config(tmp_path, text=TINY):
  path = tmp_path / "tiny.yaml"
  path.write_text(text)
  return path


@pytest.mark.parametrize(
  "args, words",
  [
    (
      ["--processes", "2", "--devices", "4", "--set", "train.batch_size=12"],
      "train.batch_size: 12 examples per step do not split evenly over 2 processes × 4 devices",
    ),
    (["--processes", "2", "--devices", "200"], "--processes: 2 processes × 200 devices = 400"),
    (["--resume"], "--resume: "),
  ],
)
def test_bad_distributed_runs_are_one_line_before_anything_starts(tmp_path, capsys, args, words):
  path = _config(tmp_path)
  assert cli.main(["run", str(path), "--no-progress", "--out", str(tmp_path / "o"), *args]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("jaxobj: error: ") and words in err, err


def test_more_devices_than_the_process_has_is_one_line(tmp_path, capsys, monkeypatch):
  path = _config(tmp_path, TINY.replace("peer_timeout: 2", "peer_timeout: 2, host_devices: 64"))
  jax.devices()  # JAX has started: no host devices can be added
  monkeypatch.setattr(jax, "process_count", lambda: 2)  # as in a run over two processes
  assert cli.main(["run", str(path), "--no-progress", "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "train.host_devices: 64 devices asked for" in err, err


def test_a_port_in_use_and_a_process_that_never_joins_are_one_line(tmp_path):
  path = _config(tmp_path)
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    procs = {}
    for case, address in (
      ("port", f"127.0.0.1:{port}"),
      ("never", f"127.0.0.1:{_free_port()}"),
    ):
      env = _env()
      env.update(
        JAXOBJ_COORDINATOR_ADDRESS=address,
        JAXOBJ_NUM_PROCESSES="2",
        JAXOBJ_PROCESS_ID="0",
        JAXOBJ_LOCAL_DEVICES="4",
      )
      procs[case] = subprocess.Popen(
        [sys.executable, "-m", "jaxobj", "run", str(path), "--no-progress"]
        + ["--out", str(tmp_path / case), "--distributed", "--set", "train.join_timeout=2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
      )
    results = {case: _finish(proc, timeout=120) for case, proc in procs.items()}
  for case, words in (("port", "is in use"), ("never", "could not join the run")):
    code, out, err = results[case]
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and words in lines[0], (case, err)
  assert not (tmp_path / "port").exists() and not (tmp_path / "never").exists()


def _free_port():
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_one_process_killed_after_a_checkpoint_resumes_exactly(runs, capsys):
  tmp, kept = runs["tmp"], runs["solo_kept"]
  code, out, err = runs["solo"]
  assert code == -signal.SIGKILL and 0 < kept < 16
  code, out, err = runs["solo_resumed"]
  assert code == 0, err
  for a, b in zip(
    _leaves(checkpoint.read_arrays(tmp / "one")),
    _leaves(checkpoint.read_arrays(tmp / "solo")),
    strict=True,
  ):
    np.testing.assert_array_equal(b, a)
  assert _table(tmp / "solo" / "metrics.csv") == _table(tmp / "one" / "metrics.csv")


def test_resume_needs_the_runs_config_and_a_checkpoint(runs, tmp_path, capsys):
  run_dir = runs["tmp"] / "lost"
  other = _config(tmp_path, TINY.replace("name: tiny", "name: tiny\nseed: 3"))
  assert cli.main(["run", str(other), "--no-progress", "--out", str(run_dir), "--resume"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--resume: the config differs" in err and " at seed;" in err
  # a run directory with an interrupted run is refused without --resume, naming it
  (tmp_path / "cut").mkdir()
  (tmp_path / "cut" / "INCOMPLETE").write_text("")
  config = _config(tmp_path)
  assert cli.main(["run", str(config), "--no-progress", "--out", str(tmp_path / "cut")]) == 2
  err = capsys.readouterr().err
  assert "holds an interrupted run; it kept no checkpoint to resume from" in err, err


def test_a_survivor_aborted_by_its_collectives_is_reported_as_a_lost_run(
  tmp_path, capsys, monkeypatch
):
  # gloo may abort the survivor (SIGABRT) on a message its killed peer cut short, before its
  # watchdog speaks: the launcher then says in one line which process was lost, how the
  # survivor ended, and where to resume, with the lost run's status
  path = _config(tmp_path)
  abort = (
    "terminate called after throwing an instance of 'gloo::EnforceNotMet'\n"
    "  what():  [enforce fail at pair.cc:459] Received data size doesn't match expected size.\n"
  )
  result = launch.LaunchResult(
    returncodes=(-signal.SIGABRT, -signal.SIGKILL),
    outputs=(abort, ""),
    pids=(1, 2),
    failure="process 1 of 2 failed with signal SIGKILL: (no output)",
    timed_out=False,
    elapsed=3.0,
    first_failed=1,
  )
  monkeypatch.setattr(launch, "launch", lambda *a, **k: result)
  out = tmp_path / "o"
  assert cli.main(["run", str(path), "--no-progress", "--out", str(out), "--processes", "2"]) == 75
  err = capsys.readouterr().err
  assert err.count("\n") == 1, err
  assert err.startswith(
    "jaxobj: error: process 1 of 2 was lost (signal SIGKILL); process 0 then "
    "ended with signal SIGABRT: what():  [enforce fail"
  ), err
