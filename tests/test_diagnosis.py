"""Loss-curve diagnosis, histories recorded in your own loop, and their plots.

The labelled histories (``tests/histories/``): synthetic ones generated with
fixed seeds, and real ones recorded once by ``jaxobj run`` (``labels.json``
says how). The diagnosis must name each one's pattern, and quote only values
of the curve it names.
"""

import importlib.util
import json
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

from jaxobj.train import (
  PATTERNS,
  History,
  diagnose,
  diagnose_history,
  diagnosis_curves,
  plot_learned,
  plot_loss_curves,
  plot_metrics,
  plot_run,
  plot_weights,
)

HERE = pathlib.Path(__file__).parent / "histories"
_spec = importlib.util.spec_from_file_location(
  "synthetic_histories", HERE / "synthetic_histories.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
SYNTHETIC = _module.HISTORIES
LABELS = {k: v for k, v in json.loads((HERE / "labels.json").read_text()).items() if k[0] != "_"}


def _labelled():
  out = {name: case for name, case in SYNTHETIC.items()}
  for file, label in LABELS.items():
    out[file] = (label["pattern"], History.read(HERE / file))
  return out


LABELLED = _labelled()


def test_the_labelled_set_covers_every_pattern_with_real_runs():
  assert len(LABELLED) >= 20 and len(LABELS) >= 6
  assert {pattern for pattern, _ in LABELLED.values()} == set(PATTERNS)
  names = " ".join(LABELLED)
  for kind in ("divergence", "overfitting", "plateau", "noisy", "few_evaluations"):
    assert kind in names


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_each_labelled_history_is_named_right(name):
  pattern, history = LABELLED[name]
  d = diagnose_history(history)
  assert d.pattern == pattern, f"{name}: {d}"
  assert d.title in str(d) and d.advice in str(d) and d.evidence in str(d)


_QUOTE = re.compile(r"(-?\d[\d.]*(?:e[+-]?\d+)?|nan|inf) at step (\d+)")


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_the_evidence_quotes_logged_values_of_the_named_curve(name):
  # Every "<value> at step <s>" in the evidence is the named curve's logged
  # value at that step (as the summary table prints it, 4 significant digits).
  _, history = LABELLED[name]
  d = diagnose_history(history)
  assert d.curve in [key for key, _ in diagnosis_curves(history)]
  curve = dict(diagnosis_curves(history))[d.curve]
  assert d.pattern == "insufficient" or curve in d.evidence
  shown = set()
  for split in ("train", "val"):
    steps, values = history.series(d.curve, split)
    shown |= {(f"{v:.4g}", str(s)) for s, v in zip(steps, values)}
  for value, step in _QUOTE.findall(d.evidence):
    assert (value, step) in shown, f"{name}: {value} at step {step} is not logged ({d.evidence})"


def test_a_total_is_quoted_as_the_total_not_as_terms_at_final_weights():
  # The total goes from 1.89 to -0.59 while the terms, summed at their final
  # weights, go from 9.88 to 0.91: the diagnosis quotes the total and says so.
  h = History()
  for i, (total, fit) in enumerate(zip(np.linspace(1.89, -0.59, 40), np.linspace(9.8, 0.9, 40))):
    info = {"loss": total, "loss/fit": fit, "weight/fit": 1.0, "loss/l2": 94.0, "weight/l2": 1e-4}
    h.record(5 * i, info)
    h.record(5 * i, info, split="val")
  d = diagnose_history(h)
  assert "total loss 1.89 at step 0" in d.evidence and "-0.59 at step 195" in d.evidence
  assert "9.8" not in d.evidence


def test_a_smooth_monotone_validation_curve_is_never_called_noisy():
  # The shipped SigLIP config at 200 steps: 5 validation points, steep and smooth.
  history = History.read(HERE / "real_siglip_200_steps.csv")
  d = diagnose_history(history)
  assert d.title == "not enough evaluations to judge"
  assert "5 evaluation(s)" in d.evidence
  # Even when judged, a curve that never turns is not noise.
  assert diagnose_history(history, min_evaluations=2).pattern != "noisy_validation"


def test_diverging_or_nan_losses_mean_the_learning_rate_is_too_high():
  s = np.arange(60.0)
  assert diagnose(np.exp(s / 20)).pattern == "learning_rate_too_high"
  train = np.exp(-s / 10)
  train[40] = np.nan
  d = diagnose(train, None, name="total loss")
  assert d.pattern == "learning_rate_too_high"
  assert d.evidence == "the training total loss became nan at step 40"


def test_validation_steps_line_up_with_training_steps():
  # Validation logged every 60 steps over the same 600-step run as training.
  pattern, history = SYNTHETIC["overfitting"]
  _, train = history.series("loss", "train")
  _, val = history.series("loss", "val")
  t_steps = np.arange(10, 610, 10)
  d = diagnose(train, val[::6], train_steps=t_steps, val_steps=t_steps[::6])
  assert d.pattern == pattern == "overfitting"
  assert "at step 10" in d.evidence


def test_thresholds_are_arguments():
  _, history = SYNTHETIC["underfitting"]
  assert diagnose_history(history, min_drop=0.05).pattern != "underfitting"
  _, history = SYNTHETIC["few_evaluations_zigzag"]
  assert diagnose_history(history, min_evaluations=3).pattern != "few_evaluations"


def test_steps_of_the_wrong_length_are_refused():
  with pytest.raises(ValueError, match="train_steps has 3 entries and train 5"):
    diagnose(np.ones(5), train_steps=[0, 1, 2])
  with pytest.raises(ValueError, match="val_steps has 2 entries and val 4"):
    diagnose(np.ones(5), np.ones(4), val_steps=[0, 1])


def test_with_moving_weights_each_data_term_is_read_on_its_own():
  pattern, history = SYNTHETIC["healthy_weight_schedule"]
  # the decay (counted once per row) is a penalty, not a curve to read
  assert diagnosis_curves(history) == [("loss/fit", "term 'fit'")]
  _, total = history.series("loss", "train")
  assert total[15] > 3 * total[0]  # the ramp alone makes the total rise at first
  d = diagnose_history(history)
  assert d.pattern == pattern == "healthy" and d.curve == "loss/fit"
  # Two tasks under learned weights: one has converged, the other still learns.
  h = History()
  s = np.arange(60.0)
  for i in range(60):
    info = {
      "loss": 0.0,
      "loss/a": max(1.0 - 0.1 * i, 0.2),
      "loss/b": 2.0 * np.exp(-s[i] / 30),
      "weight/a": 1.0 + 0.01 * i,
      "weight/b": 1.0,
      "count/a": 32.0,
      "count/b": 32.0,
    }
    h.record(i, info)
  assert [k for k, _ in diagnosis_curves(h)] == ["loss/b", "loss/a"]
  assert diagnose(h.series("loss/a")[1]).pattern == "plateau"
  d = diagnose_history(h)
  assert d.pattern == "healthy" and d.curve == "loss/b" and "term 'b'" in d.evidence
  # a problem on any term names the run
  h.rows[40]["loss/a"] = float("nan")
  d = diagnose_history(h)
  assert d.pattern == "learning_rate_too_high" and d.curve == "loss/a"


# -- recording in your own loop ------------------------------------------------


def _loop_history():
  h = History()
  for step in range(4):
    info = {
      "loss": jnp.float32(2.0 - 0.5 * step),
      "loss/fit": np.float64(1.0 + step),
      "weight/fit": 0.5,
      "param/log_temperature": 2.3 + 0.01 * step,
      "param/bias": -10.0 + 0.5 * step,
    }
    h.record(step * 10, info)
  h.record(30, {"loss": 0.6, "metric/accuracy": jnp.array(0.75)}, split="val")
  return h


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_history_records_info_and_reads_it_back(tmp_path, fmt):
  h = _loop_history()
  assert h.series("loss")[0].tolist() == [0, 10, 20, 30]
  assert h.series("loss")[1].tolist() == [2.0, 1.5, 1.0, 0.5]
  path = h.write(tmp_path / "new" / "folder" / f"metrics.{fmt}")
  back = History.read(path)
  assert len(back.rows) == 5
  for key in ("loss", "loss/fit", "param/bias"):
    np.testing.assert_array_equal(back.series(key)[1], h.series(key)[1])
  assert back.last("metric/accuracy", "val") == 0.75
  assert [r["time"] for r in back.rows] == [r["time"] for r in h.rows]


def test_history_refuses_what_it_cannot_record(tmp_path):
  h = History()
  with pytest.raises(ValueError, match="split='valid'; record rows with split='train'"):
    h.record(0, {"loss": 1.0}, split="valid")
  with pytest.raises(ValueError, match=r"info\['loss/fit'\] has shape \(3,\); record scalars"):
    h.record(0, {"loss/fit": np.ones(3)})
  with pytest.raises(TypeError, match=r"info\['name'\] = 'x' is not a number"):
    h.record(0, {"name": "x"})
  with pytest.raises(ValueError, match="key 'step'"):
    h.record(0, {"step": 3})
  with pytest.raises(ValueError, match="step=0.5"):
    h.record(0.5, {"loss": 1.0})
  with pytest.raises(ValueError, match="name the file"):
    h.write(tmp_path / "metrics.txt")
  assert h.rows == []


# -- plots ---------------------------------------------------------------------


def test_plots_return_figures_and_save_into_a_new_folder(tmp_path):
  from matplotlib.figure import Figure

  h = _loop_history()
  out = tmp_path / "a" / "b"
  assert isinstance(plot_loss_curves(h, out / "loss.png"), Figure)
  assert isinstance(plot_metrics(h), Figure)
  assert plot_weights(h) is None  # no weight moves
  assert (out / "loss.png").stat().st_size > 0
  written = plot_run(h, tmp_path / "run")
  assert sorted(written) == ["learned_plot", "loss_curves", "metrics_plot"]
  assert all(p.exists() for p in written.values())


def test_learned_values_on_different_scales_each_visibly_move():
  figure = plot_learned(_loop_history())
  titles = [ax.get_title() for ax in figure.axes]
  assert titles == ["log_temperature", "bias"]
  for ax in figure.axes:
    (line,) = ax.get_lines()
    y = line.get_ydata()
    low, high = ax.get_ylim()
    assert np.ptp(y) > 0.5 * (high - low), ax.get_title()  # the curve fills its axes


def test_weighted_terms_are_value_times_weight_and_legends_sit_outside():
  h = _loop_history()
  figure = plot_loss_curves(h, weighted=True)
  terms = figure.axes[1]
  (line,) = terms.get_lines()
  assert line.get_label() == "fit × weight"
  np.testing.assert_allclose(line.get_ydata(), 0.5 * np.array([1.0, 2.0, 3.0, 4.0]))
  figure.canvas.draw()
  for ax in figure.axes:
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent()), ax.get_title()
