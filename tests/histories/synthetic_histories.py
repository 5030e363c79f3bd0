"""Synthetic labelled loss histories, generated deterministically (fixed seeds).

``HISTORIES`` maps a name to ``(pattern, history)``: the pattern of the
loss-curve table a reader names for it, and a :class:`jaxobj.train.History`
recorded step by step the way a hand-written loop records it.
"""

import numpy as np

from jaxobj.train import History


def _noisy(y, rel, seed):
  return y * (1.0 + rel * np.random.default_rng(seed).normal(size=len(y)))


def _record(train, val=None, *, every=1, val_every=None, extra=None):
  """A history with ``train`` logged every ``every`` steps and ``val`` spread over the same run."""
  h = History()
  steps = every * np.arange(len(train))
  for i, (s, x) in enumerate(zip(steps, train)):
    info = {"loss": x}
    if extra is not None:
      info.update(extra(i))
    h.record(int(s), info, time=float(i))
  if val is not None:
    v_steps = np.linspace(steps[0], steps[-1], len(val)).round().astype(int)
    for s, x in zip(v_steps, val):
      h.record(int(s), {"loss": x}, split="val", time=float(s))
  return h


N = 60
S = np.arange(N, dtype=np.float64)


def _terms(values, weights):
  """A history of two terms: ``fit`` with a weight schedule and a fixed ``decay``."""
  h = History()
  for i, (x, w) in enumerate(zip(values, weights)):
    for split, y in (("train", x), ("val", x * 1.1)):
      h.record(
        10 * i,
        {
          "loss": w * y + 1e-4 * 90.0,
          "loss/fit": y,
          "weight/fit": w,
          "count/fit": 64.0,
          "loss/decay": 90.0,
          "weight/decay": 1e-4,
          "count/decay": 1.0,
        },
        split=split,
      )
  return h


HISTORIES = {
  # Both fall together and are still falling in the second half.
  "healthy": (
    "healthy",
    _record(_noisy(np.exp(-S / 15) + 0.05, 0.01, 0), _noisy(np.exp(-S / 15) + 0.08, 0.01, 1)),
  ),
  # A total that goes negative (learned log-variances), logged every 10 steps.
  "healthy_negative_total": (
    "healthy",
    _record(1.9 - 2.5 * (1 - np.exp(-S / 30)), 2.0 - 2.5 * (1 - np.exp(-S[::3] / 30)), every=10),
  ),
  # A schedule ramps the fit weight from 0.1 to 1: the total rises with it, the term falls.
  "healthy_weight_schedule": (
    "healthy",
    _terms(np.exp(-S / 20) + 0.05, np.minimum(0.1 + S / 20, 1.0)),
  ),
  # Validation turns up after step 20 while training keeps falling.
  "overfitting": (
    "overfitting",
    _record(
      _noisy(np.exp(-S / 8) + 0.02, 0.01, 2),
      _noisy(np.exp(-S / 8) + 0.1 + 0.01 * np.maximum(S - 20, 0), 0.01, 3),
    ),
  ),
  # Validation evaluated 12 times: a U shape with its best value a third of the way in.
  "overfitting_sparse_validation": (
    "overfitting",
    _record(
      np.exp(-S / 10) + 0.01,
      (lambda u: 0.5 * np.exp(-u / 6) + 0.3 + 0.004 * np.maximum(u - 20, 0) ** 1.5)(
        np.linspace(0, N - 1, 12)
      ),
    ),
  ),
  # Both stay high: 11 % lower after the whole run.
  "underfitting": (
    "underfitting",
    _record(_noisy(1.0 - 0.002 * S, 0.01, 4), _noisy(1.05 - 0.002 * S, 0.01, 5)),
  ),
  # No validation: the training loss barely moves.
  "underfitting_no_validation": ("underfitting", _record(_noisy(2.3 - 0.004 * S, 0.005, 12))),
  # Jumping up and down around a level that does not fall.
  "learning_rate_too_high": (
    "learning_rate_too_high",
    _record(
      1.0 + 0.5 * np.random.default_rng(6).uniform(-1, 1, N),
      1.1 + 0.5 * np.random.default_rng(7).uniform(-1, 1, N),
    ),
  ),
  # Falls at first, then oscillates more and more widely.
  "learning_rate_too_high_oscillating": (
    "learning_rate_too_high",
    _record(np.exp(-S / 10) + 0.3 + 0.3 * (S / N) * np.cos(np.pi * S), None),
  ),
  # Divergence: the loss grows exponentially.
  "divergence": ("learning_rate_too_high", _record(np.exp(S / 20), np.exp(S[::5] / 20))),
  # Divergence: a NaN after a good start.
  "divergence_nan": (
    "learning_rate_too_high",
    _record(np.where(S < 40, np.exp(-S / 10), np.nan), np.exp(-S[::5] / 10)),
  ),
  # A sharp drop in the first few points, then flat.
  "plateau": (
    "plateau",
    _record(
      _noisy(2 * np.exp(-S / 2) + 0.3, 0.002, 8), _noisy(2 * np.exp(-S / 2) + 0.35, 0.002, 9)
    ),
  ),
  # No validation, flat from a third of the way in.
  "plateau_no_validation": (
    "plateau",
    _record(np.maximum(1.5 - 0.06 * S, 0.4) + 0.001 * np.sin(S)),
  ),
  # A smooth training curve, a validation curve with 20 % noise.
  "noisy_validation": (
    "noisy_validation",
    _record(_noisy(np.exp(-S / 15) + 0.05, 0.005, 10), _noisy(np.exp(-S / 15) + 0.08, 0.2, 11)),
  ),
  # A validation curve with a spike up and down at every other evaluation, 20 evaluations.
  "noisy_validation_spiky": (
    "noisy_validation",
    _record(
      np.exp(-S / 15) + 0.05,
      (np.exp(-np.linspace(0, N - 1, 20) / 15) + 0.08) * (1 + 0.15 * (-1.0) ** np.arange(20)),
    ),
  ),
  # A steep, smooth, monotone validation curve evaluated 5 times (a 200-step contrastive run).
  "few_evaluations_smooth": (
    "few_evaluations",
    _record(9.0 * np.exp(-S / 25) + 2.4, 9.1 * np.exp(-np.linspace(0, N - 1, 5) / 25) + 2.6),
  ),
  # Three evaluations that happen to zigzag: still not enough to call it noise.
  "few_evaluations_zigzag": (
    "few_evaluations",
    _record(np.exp(-S / 15) + 0.05, np.array([1.1, 0.5, 0.7])),
  ),
  # Two training points: nothing to read.
  "insufficient": ("insufficient", _record(np.array([1.0, 0.9]))),
}
