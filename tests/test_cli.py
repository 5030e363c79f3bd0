"""`jaxobj losses`: the table and the JSON listing; what every command shares (one
read of the config, extras, the Ctrl-C hook)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from jaxobj import cli, registry
from jaxobj._src import sigint
from jaxobj.config import yamlio


def test_losses_json_lists_every_loss_with_metadata(capsys):
  assert cli.main(["losses", "--json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert {r["name"] for r in rows} == set(registry.names())
  for r in rows:
    assert {"name", "family", "summary", "hyperparameters"} <= set(r)
    assert r["summary"]
  foundation = [r for r in rows if r["family"] in ("regression", "classification")]
  assert len(foundation) >= 20
  huber = next(r for r in rows if r["name"] == "huber_loss")
  assert huber["hyperparameters"] == {"delta": 1.0}


def test_losses_table_shows_names_and_defaults(capsys):
  assert cli.main(["losses", "--family", "regression"]) == 0
  out = capsys.readouterr().out
  assert "huber_loss" in out and "delta=1.0" in out
  assert "softmax_cross_entropy" not in out


def test_unknown_family_is_a_clear_error(capsys):
  assert cli.main(["losses", "--family", "regresion"]) == 2
  assert "unknown family 'regresion'" in capsys.readouterr().err


def test_module_entry_point_runs():
  out = subprocess.run(
    [sys.executable, "-m", "jaxobj", "losses", "--json", "--kind", "regularizer"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  assert [r["name"] for r in json.loads(out)] == ["elastic_net_penalty", "l1_penalty", "l2_penalty"]


def test_losses_table_prints_defaults_and_summaries_readably(capsys):
  assert cli.main(["losses", "--family", "contrastive"]) == 0
  out = capsys.readouterr().out
  assert "log_temperature=2.659" in out and "2.65926" not in out
  assert "B × B" in out
  assert cli.main(["losses"]) == 0
  out = capsys.readouterr().out
  for markup in (":math:", ":func:", "``", "\\times"):
    assert markup not in out


def test_every_summary_loses_its_markup():
  for spec in registry.specs():
    text = cli.plain_text(spec.summary)
    assert "`" not in text and ":math:" not in text, (spec.name, text)


@pytest.mark.parametrize(
  "value, shown",
  [
    (2.659260036932778, "2.659"),
    (1.0, "1.0"),
    (0.25, "0.25"),
    (1e-12, "1e-12"),
    (123456.0, "1.235e+05"),
    (-0.5, "-0.5"),
    (math.inf, "inf"),
    (3, "3"),
    (True, "True"),
    (None, "None"),
    ("mean", "'mean'"),
    ((0.1, 2.0), "(0.1, 2.0)"),
  ],
)
def test_defaults_are_shown_to_four_significant_digits(value, shown):
  assert cli.format_value(value) == shown


def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch, capsys):
  real = importlib.util.find_spec
  missing = {"rich", "matplotlib"}
  monkeypatch.setattr(
    importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a)
  )
  assert cli.main(["losses"]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "rich" in err and 'pip install "jaxobj[cli]"' in err
  assert cli.main(["losses", "--json"]) == 0  # the JSON listing needs no extra
  capsys.readouterr()
  missing.discard("rich")
  assert cli.main(["run", "robust_regression", "--steps", "1"]) == 1  # plots need matplotlib
  err = capsys.readouterr().err
  assert err == 'jaxobj run: needs matplotlib, not installed here: pip install "jaxobj[cli]"\n'


def test_run_reads_and_parses_the_config_once(tmp_path, monkeypatch, capsys):
  path = tmp_path / "tiny.yaml"
  path.write_text(
    "data: {name: regression_outliers, n_train: 32, n_val: 8}\n"
    "model: {name: mlp, hidden: [4], outputs: 1}\n"
    "objective: {terms: {fit: {loss: squared_error, inputs: [outputs, batch.y]}}}\n"
    "train: {steps: 2, host_devices: 1}\n"
  )
  reads, parses = [], []
  real_read, real_parse = yamlio.read, yamlio.parse
  monkeypatch.setattr(yamlio, "read", lambda p: reads.append(p) or real_read(p))
  monkeypatch.setattr(yamlio, "parse", lambda *a: parses.append(a) or real_parse(*a))

  def run(cfg, *args, **kwargs):  # stop before training: only the reading is counted
    assert cfg.train.steps == 2 and cfg.source == str(path)
    raise KeyboardInterrupt("before training started")

  monkeypatch.setattr(cli.loop, "run", run)
  assert cli.main(["run", str(path), "--no-progress", "--out", str(tmp_path / "run")]) == 130
  assert len(reads) == 1 and len(parses) == 1


def test_the_cli_notes_swallowed_ctrl_c_only_while_it_runs(monkeypatch):
  before = sys.unraisablehook
  seen = []
  monkeypatch.setattr(cli, "cmd_losses", lambda args: seen.append(sigint.installed()) or 0)
  assert cli.main(["losses"]) == 0
  assert seen == [True] and sys.unraisablehook is before


def test_run_sets_the_host_devices_of_its_config_before_jax_starts(tmp_path):
  path = tmp_path / "tiny.yaml"
  path.write_text(
    "data: {name: regression_outliers, n_train: 32, n_val: 8}\n"
    "model: {name: mlp, hidden: [4], outputs: 1}\n"
    "objective: {terms: {fit: {loss: squared_error, inputs: [outputs, batch.y]}}}\n"
    "train: {steps: 1, batch_size: 8, host_devices: 2}\n"
  )
  out = tmp_path / "run"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
    [sys.executable, "-m", "jaxobj", "run", str(path), "--no-progress", "--out", str(out)],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr
  assert json.loads((out / "summary.json").read_text())["devices"] == 2


@pytest.mark.parametrize(
  "orig_argv, argv0, cli_process",
  [
    (["python", "-m", "jaxobj", "run"], "-m", True),
    (["python", "-X", "dev", "-m", "jaxobj.__main__"], "-m", True),
    (["/venv/bin/python", "/venv/bin/jaxobj", "run"], "/venv/bin/jaxobj", True),
    (["python", "-m", "pytest", "tests"], "-m", False),
    (["python", "-c", "import jaxobj"], "-c", False),
    (["python", "train.py"], "train.py", False),
  ],
)
def test_the_hook_is_for_the_jaxobj_command_only(monkeypatch, orig_argv, argv0, cli_process):
  monkeypatch.setattr(sys, "orig_argv", orig_argv)
  monkeypatch.setattr(sys, "argv", [argv0])
  assert sigint.launched_as_cli() is cli_process


def test_the_jaxobj_command_notes_a_swallowed_ctrl_c_from_its_first_import():
  probe = (
    "import sys; sys.orig_argv = [sys.executable, '-m', 'jaxobj', 'run']; "
    "import jaxobj; print(sys.unraisablehook is not sys.__unraisablehook__)"
  )
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["True"]
