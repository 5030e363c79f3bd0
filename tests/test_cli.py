"""`jaxobj losses`: the table and the JSON listing."""

import json
import subprocess
import sys

from jaxobj import cli, registry


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
