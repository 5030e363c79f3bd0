"""Loss-curve diagnosis: one synthetic pair of histories per pattern of the table."""

import numpy as np
import pytest

from jaxobj.train.diagnosis import PATTERNS, diagnose, diagnose_history, objective_curve
from jaxobj.train.history import History

N = 60
S = np.arange(N, dtype=np.float64)


def _noisy(y, rel, seed):
  return y * (1.0 + rel * np.random.default_rng(seed).normal(size=len(y)))


CASES = {
  # Both fall together and are still falling in the second half.
  "healthy": (_noisy(np.exp(-S / 15) + 0.05, 0.01, 0), _noisy(np.exp(-S / 15) + 0.08, 0.01, 1)),
  # Validation turns up after step 20 while training keeps falling.
  "overfitting": (
    _noisy(np.exp(-S / 8) + 0.02, 0.01, 2),
    _noisy(np.exp(-S / 8) + 0.1 + 0.01 * np.maximum(S - 20, 0), 0.01, 3),
  ),
  # Both stay high: 11% lower after the whole run.
  "underfitting": (_noisy(1.0 - 0.002 * S, 0.01, 4), _noisy(1.05 - 0.002 * S, 0.01, 5)),
  # Jumping up and down around a level that does not fall.
  "learning_rate_too_high": (
    1.0 + 0.5 * np.random.default_rng(6).uniform(-1, 1, N),
    1.1 + 0.5 * np.random.default_rng(7).uniform(-1, 1, N),
  ),
  # A sharp drop in the first few points, then flat.
  "plateau": (
    _noisy(2 * np.exp(-S / 2) + 0.3, 0.002, 8),
    _noisy(2 * np.exp(-S / 2) + 0.35, 0.002, 9),
  ),
  # A smooth training curve, a validation curve with 20% noise.
  "noisy_validation": (
    _noisy(np.exp(-S / 15) + 0.05, 0.005, 10),
    _noisy(np.exp(-S / 15) + 0.08, 0.2, 11),
  ),
}


@pytest.mark.parametrize("pattern", sorted(CASES))
def test_each_pattern_is_named(pattern):
  train, val = CASES[pattern]
  d = diagnose(train, val)
  assert d.pattern == pattern, str(d)
  assert d.title and d.advice and d.evidence
  assert d.title in str(d) and d.advice in str(d)


def test_patterns_are_the_tables_rows():
  assert set(CASES) <= set(PATTERNS)


def test_diverging_or_nan_losses_mean_the_learning_rate_is_too_high():
  assert diagnose(np.exp(S / 20)).pattern == "learning_rate_too_high"
  train = np.exp(-S / 10)
  train[40] = np.nan
  d = diagnose(train, None)
  assert d.pattern == "learning_rate_too_high" and "NaN" in d.evidence


def test_too_short_a_history_is_not_diagnosed():
  assert diagnose([1.0, 0.9]).pattern == "insufficient"


def test_validation_steps_line_up_with_training_steps():
  # Validation logged every 10 steps over the same 600-step run as training.
  t_steps = np.arange(10, 610, 10)
  train, val = CASES["overfitting"]
  d = diagnose(train, val[::6], train_steps=t_steps, val_steps=t_steps[::6])
  assert d.pattern == "overfitting"
  assert "step" in d.evidence


def test_thresholds_are_arguments():
  train, val = CASES["underfitting"]
  assert diagnose(train, val, min_drop=0.05).pattern != "underfitting"


def _history(train, val, weight=None):
  h = History()
  for i, (t, v) in enumerate(zip(train, val)):
    for split, x in (("train", t), ("val", v)):
      row = {
        "step": 10 * i,
        "split": split,
        "loss": 5.0 * x + 3.0,
        "loss/fit": x,
        "count/fit": 8.0,
        "weight/fit": 1.0 if weight is None else weight[i],
        "loss/decay": 2.0,
        "count/decay": 1.0,
        "weight/decay": 0.0,
      }
      h.append(row)
  return h


def test_history_is_diagnosed_on_the_terms_with_final_weights():
  train, val = CASES["overfitting"]
  # A weight that ramps up (a schedule) moves the total; the diagnosis reads the
  # terms held at their final weights, so the ramp does not hide the pattern.
  h = _history(train, val, weight=np.linspace(0.0, 1.0, N))
  steps, curve = objective_curve(h, "val")
  np.testing.assert_allclose(curve, val)  # decay has final weight 0
  assert list(steps) == list(range(0, 10 * N, 10))
  assert diagnose_history(h).pattern == "overfitting"
