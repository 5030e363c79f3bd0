"""`jaxobj run` and `jaxobj compare`: every shipped config runs, the default config
end to end, Ctrl-C keeps the metrics, malformed configs give one error line, and
the comparison's fits land where the theory says."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj import cli, config
from jaxobj.train import compare, loop
from jaxobj.train.history import History, MetricsWriter
from jaxobj.workloads import data, models

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
RUN_CONFIGS = [p for p in CONFIGS if "objective" in config.read(p)]
COMPARE_CONFIGS = [p for p in CONFIGS if p not in RUN_CONFIGS]


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _is_png(path):
  return pathlib.Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=[p.stem for p in RUN_CONFIGS])
def test_every_shipped_training_config_runs(path, tmp_path, capsys):
  out = tmp_path / "run"
  fmt = "jsonl" if path.stem == "bars_cnn" else "csv"
  assert (
    cli.main(
      [
        "run",
        str(path),
        "--steps",
        "2",
        "--no-progress",
        "--out",
        str(out),
        "--format",
        fmt,
        "--set",
        "train.log_every=2",
      ]
    )
    == 0
  )
  printed = capsys.readouterr().out
  assert "diagnosis:" in printed and "advice:" in printed
  history = History.read(out / f"metrics.{fmt}")
  cfg = config.load(path)
  for term in cfg.objective.terms():
    for split in ("train", "val"):
      for kind in ("loss", "weight", "count"):
        _, values = history.series(f"{kind}/{term}", split)
        assert len(values) >= 1 and np.all(np.isfinite(values)), (kind, term, split)
  # rows at step 0 (the untrained model) and after the two steps
  assert [r["step"] for r in history.rows if r["split"] == "train"] == [0, 2]
  assert [r["step"] for r in history.rows if r["split"] == "val"] == [0, 2]
  if cfg.metrics is not None:
    assert all(f"metric/{m}" in history.keys("val") for m in cfg.metrics.terms())
  assert _is_png(out / "loss_curves.png")
  summary = json.loads((out / "summary.json").read_text())
  assert summary["steps_done"] == 2 and not summary["interrupted"]
  assert config.load(out / "config.yaml").train.steps == 2  # the overrides are recorded


def test_learned_values_and_moving_weights_are_logged_and_plotted(tmp_path):
  out = tmp_path / "robust"
  assert (
    cli.main(
      [
        "run",
        "robust_regression",
        "--steps",
        "20",
        "--no-progress",
        "--out",
        str(out),
        "--set",
        "train.log_every=10",
      ]
    )
    == 0
  )
  history = History.read(out / "metrics.csv")
  _, alpha = history.series("param/fit/alpha", "train")
  assert alpha[0] == pytest.approx(1.0) and np.all((alpha > 0) & (alpha < 2))
  _, decay = history.series("weight/decay", "train")
  assert decay[0] == 0.0 and decay[-1] > 0.0  # the linear warm-up
  assert _is_png(out / "learned.png") and _is_png(out / "weights.png")
  assert _is_png(out / "metrics.png")


@pytest.mark.parametrize("path", COMPARE_CONFIGS, ids=[p.stem for p in COMPARE_CONFIGS])
def test_every_shipped_compare_config_runs(path, tmp_path, capsys):
  out = tmp_path / "cmp"
  assert cli.main(["compare", str(path), "--steps", "30", "--out", str(out)]) == 0
  assert "of the data" in capsys.readouterr().out  # the fits' table, with its references
  result = json.loads((out / "compare.json").read_text())
  assert result["curves"] and result["fits"] and result["grid"]
  assert _is_png(out / "curves.png") and _is_png(out / "fit.png")


def test_run_on_a_compare_config_runs_the_comparison(tmp_path, capsys):
  path = ROOT / "configs" / "compare" / "focal.yaml"
  assert cli.main(["run", str(path), "--out", str(tmp_path), "--steps", "3"]) == 0
  assert (tmp_path / "curves.png").exists()


def _env():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  return env


def test_default_config_end_to_end(tmp_path):
  out = tmp_path / "default"
  t0 = time.perf_counter()
  proc = subprocess.run(
    [sys.executable, "-m", "jaxobj", "run", "--out", str(out)],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=_env(),
    timeout=300,
  )
  wall = time.perf_counter() - t0
  assert proc.returncode == 0, proc.stderr
  assert "running the default, multitask_uncertainty" in proc.stdout
  assert "diagnosis:" in proc.stdout
  rows = _rows(out / "metrics.csv")
  cfg = config.load("multitask_uncertainty")
  train = [r for r in rows if r["split"] == "train"]
  assert int(train[-1]["step"]) == cfg.train.steps
  assert len(train) == cfg.train.steps // cfg.train.log_every + 1
  for name in ("loss_curves", "weights", "learned", "metrics"):
    assert _is_png(out / f"{name}.png")
  summary = json.loads((out / "summary.json").read_text())
  assert summary["diagnosis"]["pattern"] == "healthy"
  # the learned uncertainty weights favour the less noisy task at the end
  assert float(train[-1]["weight/regression"]) > 1.0
  assert wall < 120


def test_ctrl_c_keeps_the_metrics_and_shards_over_host_devices(tmp_path):
  out = tmp_path / "siglip"
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxobj",
      "run",
      "dual_encoder_siglip",
      "--steps",
      "1000000",
      "--no-progress",
      "--out",
      str(out),
      "--set",
      "train.eval_every=20",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    cwd=ROOT,
    env=_env(),
  )
  metrics_file = out / "metrics.csv"
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
      if metrics_file.exists() and len(metrics_file.read_text().splitlines()) > 6:
        break
      time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
  finally:
    proc.kill()
    proc.wait()
  assert proc.returncode == 130, stderr
  assert "Traceback" not in stderr
  rows = _rows(metrics_file)
  assert len(rows) >= 6 and all(r["loss"] for r in rows)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["interrupted"] and summary["steps_done"] < 1000000
  assert summary["devices"] == 2  # the config's host_devices: 2, batch sharded over them
  assert "interrupted" in stdout and _is_png(out / "loss_curves.png")
  assert not (out / "INCOMPLETE").exists()  # every file was written


MALFORMED = {
  "unknown_loss": ("objective.terms.fit.loss", "hubber_loss", "Did you mean 'huber_loss'"),
  "wrong_type": ("train.steps", "many", "expected an integer"),
  "misspelled_key": ("train.batchsize", 8, "Did you mean 'batch_size'"),
  "misspelled_hyper": ("objective.terms.fit.delat", 0.5, "Did you mean 'delta'"),
  "missing_input": ("objective.terms.fit.inputs", ["outputs", "batch.z"], "batch has no 'z'"),
  "shape_mismatch": ("model.outputs", 3, "same shape"),
  "bad_data_value": ("data.outlier_fraction", 1.5, "outlier_fraction"),
  # found while tracing, and blamed on the key that made it
  "bad_hyper_at_trace": (
    "objective.terms.fit.delta",
    -1.0,
    "objective.terms.fit.delta: delta must satisfy 0.0 < delta",
  ),
  "bad_metric_at_trace": (
    "metrics",
    {"mae": {"metric": "huber_loss", "delta": -2.0, "inputs": ["outputs", "batch.y"]}},
    "metrics.mae.delta: delta must satisfy 0.0 < delta",
  ),
  "too_many_devices": (
    "train.host_devices",
    20000,
    "train.host_devices: expected an integer from 1 to 256",
  ),
}

TINY = """\
name: tiny
data: {name: regression_outliers, n_train: 32, n_val: 16}
model: {name: mlp, hidden: [8], outputs: 1}
objective:
  terms:
    fit: {loss: huber_loss, inputs: [outputs, batch.y]}
train: {steps: 2, batch_size: 8, log_every: 1, eval_every: 1}
"""


def _bad_config(tmp_path, where, value):
  raw = config.parse(TINY)
  node = raw
  *parents, last = where.split(".")
  for p in parents:
    node = node[p]
  node[last] = value
  path = tmp_path / "bad.yaml"
  path.write_text(config.dump(raw))
  return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_is_one_error_line(case, tmp_path, capsys):
  where, value, words = MALFORMED[case]
  path = _bad_config(tmp_path, where, value)
  assert cli.main(["run", str(path), "--no-progress", "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("jaxobj: error: "), err
  assert words in err and "Traceback" not in err


def test_unusable_out_and_devices_are_one_error_line(tmp_path, capsys):
  path = tmp_path / "tiny.yaml"
  path.write_text(TINY)
  (tmp_path / "afile").write_text("")
  for args, words in [
    (["--out", str(tmp_path / "afile")], "is a file"),
    (["--out", str(tmp_path / "afile" / "run")], "which is a file"),
    (["--devices", "20000"], "--devices: expected an integer from 1 to 256"),
  ]:
    assert cli.main(["run", str(path), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def _signal_self_in_gc_callback(monkeypatch, times=1):
  """Sends this process SIGINT from inside a garbage-collection callback (where JAX's
  own callback runs), the next time the trainer is built: a KeyboardInterrupt raised
  there would be printed and dropped."""
  import gc

  sent = []

  def callback(phase, info):
    if phase == "start" and len(sent) < times:
      sent.append(1)
      os.kill(os.getpid(), signal.SIGINT)
      sum(range(100))  # Python runs the handler here, inside the callback

  real = loop.Trainer

  def trainer(cfg):
    gc.callbacks.append(callback)
    try:
      gc.collect()
    finally:
      gc.callbacks.remove(callback)
    return real(cfg)

  monkeypatch.setattr(loop, "Trainer", trainer)
  return sent


def test_ctrl_c_in_a_callback_before_training_stops_the_run(tmp_path, monkeypatch, capsys):
  path = tmp_path / "tiny.yaml"
  path.write_text(TINY)
  out = tmp_path / "run"
  sent = _signal_self_in_gc_callback(monkeypatch)
  assert cli.main(["run", str(path), "--no-progress", "--out", str(out)]) == 130
  assert sent and not out.exists()  # stopped before training: nothing written
  assert "interrupted before training started" in capsys.readouterr().err


def test_second_ctrl_c_in_the_final_writes_leaves_a_marker_and_reruns_refuse(
  tmp_path, monkeypatch, capsys
):
  path = tmp_path / "tiny.yaml"
  path.write_text(TINY)
  out = tmp_path / "run"
  args = ["run", str(path), "--no-progress", "--out", str(out)]

  def plot_interrupted(*a, **k):  # Ctrl-C twice while the plots are drawn
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(100))
    raise AssertionError("the second Ctrl-C did not stop the run")

  with monkeypatch.context() as m:
    m.setattr(loop, "plot_run", plot_interrupted)
    assert cli.main(args) == 130
  err = capsys.readouterr().err
  assert "interrupted while writing the plots" in err and "INCOMPLETE" in err
  marker = (out / "INCOMPLETE").read_text()
  assert "plots and summary.json were not all written" in marker and "--overwrite" in marker
  assert len(_rows(out / "metrics.csv")) == 6  # every row of the 2 steps is kept
  assert json.loads((out / "summary.json").read_text())["steps_done"] == 2  # before the plots
  # a rerun does not silently replace the interrupted run
  assert cli.main(args) == 2
  assert "holds an interrupted run" in capsys.readouterr().err
  # --overwrite replaces it; another --format leaves no stale metrics file. One Ctrl-C
  # while the plots are drawn lets them finish, and the exit status says interrupted.
  real_plot_run = loop.plot_run

  def plot_after_one_ctrl_c(*a, **k):
    os.kill(os.getpid(), signal.SIGINT)
    return real_plot_run(*a, **k)

  with monkeypatch.context() as m:
    m.setattr(loop, "plot_run", plot_after_one_ctrl_c)
    assert cli.main([*args, "--overwrite", "--format", "jsonl"]) == 130
  assert not (out / "metrics.csv").exists() and not (out / "INCOMPLETE").exists()
  assert len(History.read(out / "metrics.jsonl").rows) == 6
  summary = json.loads((out / "summary.json").read_text())
  assert summary["interrupted"] and summary["steps_done"] == 2
  assert _is_png(out / "loss_curves.png")


def test_ctrl_c_early_in_a_real_process_is_never_swallowed(tmp_path):
  """SIGINT while Python imports JAX and compiles (where JAX's garbage-collection
  callback used to swallow it and the run went on to the end with exit 0)."""
  path = tmp_path / "tiny.yaml"
  path.write_text(TINY)
  out = tmp_path / "run"
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "jaxobj",
      "run",
      str(path),
      "--steps",
      "1000000",
      "--no-progress",
      "--out",
      str(out),
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    cwd=tmp_path,
    env=_env(),
  )
  try:
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=90)  # a swallowed Ctrl-C trains a million steps
  finally:
    proc.kill()
    proc.wait()
  # 130, or killed by SIGINT itself if it landed before jaxobj's own code ran (the
  # shell shows 130 too); never a run that went on
  assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, stderr[-2000:])
  if out.exists():
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["steps_done"] < 1000000


def test_code_execution_tag_is_refused_without_running_it(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.yaml"
  path.write_text(TINY + f"description: !!python/object/apply:os.system ['touch {marker}']\n")
  proc = subprocess.run(
    [sys.executable, "-m", "jaxobj", "run", str(path)],
    capture_output=True,
    text=True,
    cwd=tmp_path,
    env=_env(),
    timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "tags that build Python objects" in proc.stderr
  assert not marker.exists()


def test_unknown_config_name_suggests_shipped_ones(capsys):
  assert cli.main(["run", "robust_regresion"]) == 2
  assert "Did you mean 'robust_regression'" in capsys.readouterr().err
  assert cli.main(["compare", "multitask_uncertainty"]) == 2
  assert "no compare: section" in capsys.readouterr().err


def test_run_list_names_the_shipped_configs(capsys):
  assert cli.main(["run", "--list"]) == 0
  out = capsys.readouterr().out
  assert "multitask_uncertainty" in out and "compare/regression" in out


# ---------------------------------------------------------------- compare


REGRESSION = config.from_dict(
  {
    "data": {
      "name": "location_outliers",
      "n_train": 101,
      "outlier_fraction": 0.25,
      "outlier_shift": 10.0,
    },
    "compare": {
      "axis": "residual",
      "range": [-3.0, 3.0],
      "points": 13,
      "losses": {
        "mse": {"loss": "squared_error"},
        "mae": {"loss": "absolute_error"},
        "huber": {"loss": "huber_loss", "delta": 1.0},
      },
      "grid": {"loss": "huber_loss", "over": "delta", "values": [0.5, 2.0]},
      "fit": {"model": "constant", "target": "y", "steps": 1500, "learning_rate": 0.1},
    },
  }
)


def test_curves_match_the_formulas():
  x, curves, grid = compare.curves(REGRESSION.compare)
  np.testing.assert_allclose(x, np.linspace(-3, 3, 13), atol=1e-6)
  np.testing.assert_allclose(curves["mse"][0], x**2, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(curves["mse"][1], 2 * x, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(curves["mae"][0], np.abs(x), atol=1e-6)
  np.testing.assert_allclose(curves["mae"][1][x != 0], np.sign(x[x != 0]))
  for i, d in enumerate([0.5, 2.0]):
    huber = np.where(np.abs(x) <= d, 0.5 * x**2, d * (np.abs(x) - 0.5 * d))
    np.testing.assert_allclose(grid["curves"][i], huber, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grid["grads"][i], np.clip(x, -d, d), rtol=1e-5, atol=1e-6)
  assert list(curves) == ["mse", "mae", "huber"]


def test_vmapped_fits_land_on_the_mean_and_the_median():
  batch = data.location_outliers(n_train=101, outlier_fraction=0.25, outlier_shift=10.0).train
  fits = compare.fit(REGRESSION.compare, batch)
  y = batch["y"].astype(np.float64)
  assert fits["mse"]["location"] == pytest.approx(np.mean(y), abs=1e-3)
  assert fits["mae"]["location"] == pytest.approx(np.median(y), abs=1e-3)
  # Huber lies between them, and grows towards the mean with delta
  assert np.median(y) < fits["huber"]["location"] < np.mean(y)
  assert fits["huber_loss(delta=0.5)"]["location"] < fits["huber_loss(delta=2)"]["location"]


def test_cross_entropy_fit_recovers_the_base_rate():
  settings = config.from_dict(
    {
      "data": {"name": "binary_labels", "n_train": 200, "positive_fraction": 0.2},
      "compare": {
        "axis": "p_t",
        "points": 5,
        "losses": {
          "ce": {"loss": "sigmoid_binary_cross_entropy"},
          "focal": {"loss": "sigmoid_focal_loss", "gamma": 2.0},
        },
        "fit": {"target": "labels", "steps": 800, "learning_rate": 0.1},
      },
    }
  ).compare
  labels = data.binary_labels(n_train=200, positive_fraction=0.2).train
  fits = compare.fit(settings, labels)
  rate = float(np.mean(labels["labels"]))
  assert fits["ce"]["probability"] == pytest.approx(rate, abs=1e-3)
  assert rate < fits["focal"]["probability"] < 0.5


# ---------------------------------------------------------------- parts


def test_data_sets_have_the_promised_properties():
  d = data.regression_outliers(n_train=400, n_val=100, outlier_fraction=0.2)
  assert d.train["x"].shape == (400, 1) and d.val["y"].shape == (100,)
  assert 0.12 < d.train["outlier"].mean() < 0.28 and not d.val["outlier"].any()
  c = data.imbalanced_classification(n_train=4000, n_val=10, proportions=(0.7, 0.2, 0.1))
  np.testing.assert_allclose(np.bincount(c.train["labels"]) / 4000, [0.7, 0.2, 0.1], atol=0.03)
  t = data.two_tasks(n_train=20, n_val=5, alignment=-0.5)
  assert set(t.train) == {"x", "y", "labels"} and t.n_val == 5
  b = data.bars(n_train=30, n_val=3, flatten=True)
  assert b.train["x"].shape == (30, 64) and set(np.unique(b.train["x"])) <= {0.0, 1.0}
  with pytest.raises(ValueError, match="proportions"):
    data.imbalanced_classification(proportions=(0.5, 0.5))


def test_models_shapes():
  key = jax.random.key(0)
  paired = data.paired_views(n_train=4, n_val=1).train
  out = models.build_model("dual_encoder", {"embed_dim": 5}, paired)(paired)
  assert {k: v.shape for k, v in out.items()} == {"image": (4, 5), "text": (4, 5)}
  images = data.bars(n_train=4, n_val=1).train
  heads = models.build_model("cnn", {"outputs": {"a": 1, "b": 3}}, images)(images)
  assert heads["a"].shape == (4,) and heads["b"].shape == (4, 3)
  flat = data.bars(n_train=4, n_val=1, flatten=True).train
  vae = models.build_model("vae", {"latent": 2}, flat)
  sampled, mean = vae(flat, key=key), vae(flat)
  np.testing.assert_array_equal(mean["z"], mean["mean"])
  assert not np.allclose(sampled["z"], sampled["mean"])
  assert sampled["logits"].shape == (4, 64)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_metrics_files_round_trip(tmp_path, fmt):
  path = tmp_path / f"m.{fmt}"
  with MetricsWriter(path, ["loss", "loss/a", "metric/acc"], fmt) as w:
    w.write({"step": 0, "split": "train", "time": 0.1, "loss": 1.5, "loss/a": jnp.float32(0.5)})
    w.write({"step": 0, "split": "val", "time": 0.2, "loss": float("nan"), "metric/acc": 0.75})
  h = History.read(path)
  assert h.series("loss/a", "train")[1].tolist() == [0.5]
  assert h.series("metric/acc", "val")[1].tolist() == [0.75]
  assert np.isnan(h.last("loss", "val")) and h.keys("train") == ["loss", "loss/a"]
