r"""Reading loss curves: name the likely pattern from train and validation histories.

The patterns and their advice follow the usual table of loss-curve diagnoses:

=========================  ==========================  ===========================  ==========================================
pattern                    training loss               validation loss              likely diagnosis / what to try
=========================  ==========================  ===========================  ==========================================
``healthy``                falling                     falling                      learning generalizable features
``overfitting``            falling                     rising after an initial drop memorizing the training data: regularization,
                                                                                    dropout, more data or early stopping
``underfitting``           flat or slowly falling      flat or slowly falling       too little capacity: a larger model, another
                                                                                    architecture or less regularization
``learning_rate_too_high`` jumping up and down         jumping up and down          reduce the learning rate or use a schedule
``plateau``                flat after an initial drop  flat after an initial drop   local minimum or saddle point: another
                                                                                    optimizer, warm-up or a restart
``noisy_validation``       smooth                      noisy or spiky               batch (or validation set) too small: increase
                                                                                    it or accumulate gradients
=========================  ==========================  ===========================  ==========================================

How each is measured (on the curves as logged; every threshold is a keyword
argument of :func:`diagnose`):

- *noise* of a curve: the robust spread (1.4826 × median absolute value) of
  its second differences over :math:`\sqrt 6`, relative to its level. Second
  differences cancel a smooth trend, so a steep but smooth drop is not noise;
  for white noise of standard deviation :math:`\sigma` they give
  :math:`\sigma`.
- *start* and *end*: the median of a curve's first three points and of its
  last tenth; *drop* = (start − end) / |start|. (``jaxobj run`` logs both
  losses at step 0, before training, so the start is the untrained loss.)
- ``learning_rate_too_high``: a non-finite loss, a training loss that ends
  above where it started, or training noise above ``noise_high`` (0.12).
- ``overfitting``: the validation curve (smoothed by a running median) ends
  above its minimum by more than ``rise`` (5 %) of the minimum and more than
  twice its noise, its minimum lies before the last 15 % of the run, and the
  training loss kept falling after that minimum.
- ``noisy_validation``: validation noise above ``noise_val`` (0.05) and above
  three times the training noise.
- ``underfitting``: the training (and validation) loss dropped by less than
  ``min_drop`` (25 %).
- ``plateau``: the second half of the run lowered the training loss by less
  than ``late_drop`` (2 %) of its total drop and by less than ``late_level``
  (5 %) of its final value: flat after an initial drop. A model that
  converged early looks the same; if the loss is where you expect it, the run
  could simply have stopped sooner.
- otherwise ``healthy``.

Fewer than ``min_points`` (4) training points give ``insufficient``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from jaxobj.train.history import History

__all__ = ["Diagnosis", "PATTERNS", "diagnose", "diagnose_history", "objective_curve"]

PATTERNS = {
  "healthy": (
    "healthy",
    "training is progressing well; the model is learning generalizable features.",
    "keep going, or stop when the validation loss levels off.",
  ),
  "overfitting": (
    "overfitting",
    "the model memorizes the training data.",
    "try regularization, dropout, more data, or early stopping.",
  ),
  "underfitting": (
    "underfitting",
    "both losses remain high; the model lacks capacity or training.",
    "try a larger model, a different architecture, lower regularization, or more steps.",
  ),
  "learning_rate_too_high": (
    "learning rate too high",
    "the loss oscillates wildly or diverges.",
    "reduce the learning rate or use a learning-rate schedule.",
  ),
  "plateau": (
    "plateau",
    "the loss dropped, then stayed flat: a local minimum or a saddle point, or simply converged.",
    "try a different optimizer, learning-rate warm-up, or a restart; if the "
    "loss is where you expect it, stop earlier.",
  ),
  "noisy_validation": (
    "noisy validation",
    "the training loss is smooth but the validation loss is noisy or spiky.",
    "the batch (or validation set) may be too small; increase it or use gradient accumulation.",
  ),
  "insufficient": (
    "not enough history",
    "too few logged points to read a trend.",
    "train longer or log more often.",
  ),
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
  """A named pattern, what it means, the numbers behind it and what to try."""

  pattern: str
  evidence: str

  @property
  def title(self) -> str:
    return PATTERNS[self.pattern][0]

  @property
  def meaning(self) -> str:
    return PATTERNS[self.pattern][1]

  @property
  def advice(self) -> str:
    return PATTERNS[self.pattern][2]

  def __str__(self) -> str:
    return f"{self.title}: {self.meaning} ({self.evidence}) Advice: {self.advice}"


def _running_median(y: np.ndarray, w: int) -> np.ndarray:
  if len(y) < 3 or w < 2:
    return y.copy()
  h = w // 2
  padded = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
  return np.array([np.median(padded[i : i + 2 * h + 1]) for i in range(len(y))])


def _scale(y: np.ndarray) -> float:
  level = float(np.median(np.abs(y)))
  spread = float(np.max(y) - np.min(y)) if len(y) else 0.0
  return max(level, 0.1 * spread, 1e-12)


def _noise(y: np.ndarray) -> float:
  """Robust spread of the second differences over sqrt(6), relative to the level."""
  if len(y) < 4:
    return 0.0
  d2 = y[2:] - 2.0 * y[1:-1] + y[:-2]
  return float(1.4826 * np.median(np.abs(d2)) / math.sqrt(6.0) / _scale(y))


def _ends(y: np.ndarray) -> tuple[float, float]:
  return float(np.median(y[:3])), float(np.median(y[-max(1, len(y) // 10) :]))


def diagnose(
  train: npt.ArrayLike,
  val: npt.ArrayLike | None = None,
  *,
  train_steps: npt.ArrayLike | None = None,
  val_steps: npt.ArrayLike | None = None,
  noise_high: float = 0.12,
  noise_val: float = 0.05,
  rise: float = 0.05,
  min_drop: float = 0.25,
  late_drop: float = 0.02,
  late_level: float = 0.05,
  min_points: int = 4,
) -> Diagnosis:
  """Names the likely pattern of a training run from its loss histories.

  Args:
    train: training losses in order (e.g. one per logging interval).
    val: validation losses in order, or ``None``.
    train_steps, val_steps: the steps they were logged at (default: evenly
      spread over the same run), to line the two curves up.
    noise_high, noise_val, rise, min_drop, late_drop, late_level, min_points:
      the thresholds described in the module docstring.

  Returns:
    A :class:`Diagnosis` with ``pattern`` one of :data:`PATTERNS`.

  Example:
    >>> import numpy as np
    >>> steps = np.arange(50)
    >>> train = np.exp(-steps / 8) + 0.05
    >>> val = np.exp(-steps / 8) + 0.1 + 0.01 * np.maximum(steps - 15, 0)
    >>> diagnose(train, val).pattern
    'overfitting'
  """
  t = np.asarray(train, np.float64)
  v = None if val is None or np.size(val) == 0 else np.asarray(val, np.float64)
  if len(t) < min_points:
    return Diagnosis("insufficient", f"{len(t)} training point(s)")
  ts = (
    np.arange(len(t), dtype=np.float64) if train_steps is None else np.asarray(train_steps, float)
  )
  if v is not None:
    vs = (
      np.linspace(ts[0], ts[-1], len(v)) if val_steps is None else np.asarray(val_steps, np.float64)
    )
  bad = [
    name
    for name, y in (("training", t), ("validation", v))
    if y is not None and not np.all(np.isfinite(y))
  ]
  if bad:
    return Diagnosis("learning_rate_too_high", f"the {bad[0]} loss became NaN or infinite")

  t_start, t_end = _ends(t)
  t_noise = _noise(t)
  t_drop = (t_start - t_end) / max(abs(t_start), 1e-12)
  if t_end > t_start + 0.05 * _scale(t):
    return Diagnosis(
      "learning_rate_too_high",
      f"the training loss ended at {t_end:.4g}, above its start {t_start:.4g}",
    )
  if t_noise > noise_high:
    return Diagnosis(
      "learning_rate_too_high",
      f"training noise {t_noise:.0%} of the loss level (threshold {noise_high:.0%})",
    )

  if v is not None and len(v) >= min_points:
    v_noise = _noise(v)
    smooth = _running_median(v, max(3, len(v) // 8) | 1)
    i_min = int(np.argmin(smooth))
    v_min = float(smooth[i_min])
    v_start, v_end = _ends(v)
    grew = v_end - v_min
    t_smooth = _running_median(t, max(3, len(t) // 8) | 1)
    t_at_min = float(np.interp(vs[i_min], ts, t_smooth))
    span = ts[-1] - ts[0] if ts[-1] > ts[0] else 1.0
    if (
      grew > rise * max(abs(v_min), 1e-12)
      and grew > 2.0 * v_noise * _scale(v)
      and (vs[i_min] - ts[0]) < 0.85 * span
      and t_end < t_at_min
    ):
      return Diagnosis(
        "overfitting",
        f"validation loss rose from its minimum {v_min:.4g} at step "
        f"{int(vs[i_min])} to {v_end:.4g} while the training loss fell from "
        f"{t_at_min:.4g} to {t_end:.4g}",
      )
    if v_noise > noise_val and v_noise > 3.0 * t_noise:
      return Diagnosis(
        "noisy_validation",
        f"validation noise {v_noise:.0%} of its level against training noise {t_noise:.0%}",
      )
    v_drop = (v_start - v_end) / max(abs(v_start), 1e-12)
    v_path = f", validation {v_start:.4g} → {v_end:.4g}"
  else:
    v_drop, v_path = None, ""

  if t_drop < min_drop and (v_drop is None or v_drop < min_drop):
    shown = f"training loss dropped {t_drop:.0%}" + (
      f", validation loss {v_drop:.0%}" if v_drop is not None else ""
    )
    return Diagnosis("underfitting", f"{shown} over the run (threshold {min_drop:.0%})")

  t_smooth = _running_median(t, max(3, len(t) // 8) | 1)
  mid = float(np.interp(ts[0] + 0.5 * (ts[-1] - ts[0]), ts, t_smooth))
  late = (mid - t_end) / max(t_start - t_end, 1e-12)
  late_rel = (mid - t_end) / max(abs(t_end), 1e-12)
  if late < late_drop and late_rel < late_level:
    return Diagnosis(
      "plateau",
      f"the second half of the run made {max(late, 0.0):.1%} of the training "
      f"loss's drop from {t_start:.4g} to {t_end:.4g}, lowering it by "
      f"{max(late_rel, 0.0):.1%}",
    )
  return Diagnosis(
    "healthy",
    f"training loss {t_start:.4g} → {t_end:.4g}{v_path}; the "
    f"second half of the run lowered the training loss by {late_rel:.0%}",
  )


def objective_curve(history: History, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of the curve a run is diagnosed on.

  The sum of the terms' values times their *final* effective weights (so
  schedules and learned weights do not move the curve by themselves), or the
  total ``loss`` when the history has no per-term columns.
  """
  keys = history.keys(split)
  terms = [k[len("count/") :] for k in keys if k.startswith("count/")]
  if not terms:
    return history.series("loss", split)
  steps, _ = history.series(f"loss/{terms[0]}", split)
  parts = []
  for term in terms:
    _, values = history.series(f"loss/{term}", split)
    weight = history.last(f"weight/{term}", split)
    parts.append(values * (1.0 if weight is None else weight))
  return steps, np.sum(parts, axis=0)


def diagnose_history(history: History, **thresholds: Any) -> Diagnosis:
  """:func:`diagnose` on a run's :class:`~jaxobj.train.history.History`."""
  t_steps, t = objective_curve(history, "train")
  v_steps, v = objective_curve(history, "val")
  return diagnose(
    t,
    v if len(v) else None,
    train_steps=t_steps,
    val_steps=v_steps if len(v) else None,
    **thresholds,
  )
