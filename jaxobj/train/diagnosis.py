r"""Reading loss curves: name the likely pattern from train and validation histories.

The patterns and their advice follow the usual table of loss-curve diagnoses
(the full table, each threshold and the labelled histories it is tested on are
on the *Diagnosis* page of the documentation):

=========================  ==========================  ============================  ==========================================
pattern                    training loss               validation loss               likely diagnosis / what to try
=========================  ==========================  ============================  ==========================================
``healthy``                falling                     falling                       learning generalizable features
``overfitting``            falling                     rising after an initial drop  memorizing the training data: regularization,
                                                                                     dropout, more data or early stopping
``underfitting``           flat or slowly falling      flat or slowly falling        too little capacity: a larger model, another
                                                                                     architecture or less regularization
``learning_rate_too_high`` jumping, rising or NaN      jumping up and down           reduce the learning rate or use a schedule
``plateau``                flat after an initial drop  flat after an initial drop    local minimum or saddle point: another
                                                                                     optimizer, warm-up or a restart
``noisy_validation``       smooth                      noisy or spiky                batch (or validation set) too small: increase
                                                                                     it or accumulate gradients
``few_evaluations``        falling                     too few points to judge       evaluate more often
=========================  ==========================  ============================  ==========================================

How each is measured (on the curves as logged; every threshold is a keyword
argument of :func:`diagnose`):

- *noise* of a curve: the robust spread (1.4826 × median absolute value) of
  its second differences over :math:`\sqrt 6`, relative to its level. Second
  differences cancel a smooth trend, so a steep but smooth drop is not noise;
  for white noise of standard deviation :math:`\sigma` they give
  :math:`\sigma`. *Jitter*: the fraction of points where the curve turns
  (its first differences change sign); about 2/3 for white noise, 0 for a
  monotone curve.
- *start* and *end*: the median of a curve's first three points and of its
  last tenth; *drop* = (start − end) / |start|. These decide; the evidence
  quotes the curve's first, last and best logged values with their steps,
  the numbers that ``jaxobj run``'s table and plots show.
- ``learning_rate_too_high``: a non-finite loss, a training loss that ends
  above where it started, or training noise above ``noise_high`` (0.12).
- fewer than ``min_evaluations`` (8) validation points: overfitting and
  validation noise are not judged; the training curve alone can still name
  ``underfitting`` or ``plateau``, and otherwise the pattern is
  ``few_evaluations`` ("not enough evaluations to judge").
- ``overfitting``: the validation curve (smoothed by a running median) ends
  above its minimum by more than ``rise`` (5 %) of the minimum and more than
  twice its noise, its minimum lies before the last 15 % of the run, and the
  training loss kept falling after that minimum.
- ``noisy_validation``: validation noise above ``noise_val`` (0.05) and above
  three times the training noise, and validation jitter of at least
  ``min_jitter`` (0.3).
- ``underfitting``: the training (and validation) loss dropped by less than
  ``min_drop`` (25 %).
- ``plateau``: the second half of the run lowered the training loss by less
  than ``late_drop`` (2 %) of its total drop and by less than ``late_level``
  (5 %) of its final value: flat after an initial drop. A model that
  converged early looks the same; if the loss is where you expect it, the run
  could simply have stopped sooner.
- otherwise ``healthy``.

Fewer than ``min_points`` (4) training points give ``insufficient``.
:func:`diagnose_history` reads a :class:`~jaxobj.train.history.History`: its
total loss, or each data term on its own when the weights move
(:func:`diagnosis_curves`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from jaxobj.train.history import History

__all__ = ["Diagnosis", "PATTERNS", "diagnose", "diagnose_history", "diagnosis_curves"]

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
  "few_evaluations": (
    "not enough evaluations to judge",
    "the training loss is falling, but the validation loss was evaluated too few "
    "times to tell a trend from noise or to spot overfitting.",
    "evaluate more often (train.eval_every in a config) or train longer.",
  ),
  "insufficient": (
    "not enough history",
    "too few logged points to read a trend.",
    "train longer or log more often.",
  ),
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
  """A named pattern, what it means, the numbers behind it and what to try.

  ``curve`` is the history column the pattern was read on (``"loss"``,
  ``"loss/<term>"``), empty for :func:`diagnose` on plain arrays.
  """

  pattern: str
  evidence: str
  curve: str = ""

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


def _jitter(y: np.ndarray) -> float:
  """The fraction of interior points where the curve turns (first differences change sign)."""
  d = np.diff(y)
  d = d[d != 0]
  if len(d) < 2:
    return 0.0
  return float(np.mean(np.sign(d[1:]) != np.sign(d[:-1])))


def _g(x: float) -> str:
  return f"{x:.4g}"


def diagnose(
  train: npt.ArrayLike,
  val: npt.ArrayLike | None = None,
  *,
  train_steps: npt.ArrayLike | None = None,
  val_steps: npt.ArrayLike | None = None,
  name: str = "loss",
  noise_high: float = 0.12,
  noise_val: float = 0.05,
  min_jitter: float = 0.3,
  rise: float = 0.05,
  min_drop: float = 0.25,
  late_drop: float = 0.02,
  late_level: float = 0.05,
  min_points: int = 4,
  min_evaluations: int = 8,
) -> Diagnosis:
  """Names the likely pattern of a training run from its loss histories.

  The evidence quotes logged values of the curves (first, last, best, with
  their steps) under ``name``, so the numbers can be found in a table or a
  plot of the same curves; the measures that decide (noise, drops) are named
  with their thresholds.

  Args:
    train: training losses in order (e.g. one per logging interval).
    val: validation losses in order, or ``None``.
    train_steps, val_steps: the steps they were logged at (default: evenly
      spread over the same run), to line the two curves up and to quote.
    name: what the curves are, as quoted in the evidence (``"total loss"``,
      ``"term 'fit'"``).
    noise_high, noise_val, min_jitter, rise, min_drop, late_drop, late_level, min_points,
      min_evaluations: the thresholds described in the module docstring.

  Returns:
    A :class:`Diagnosis` with ``pattern`` one of :data:`PATTERNS`.

  Raises:
    ValueError: steps whose length differs from their curve's.

  Example:
    >>> import numpy as np
    >>> steps = np.arange(50)
    >>> train = np.exp(-steps / 8) + 0.05
    >>> val = np.exp(-steps / 8) + 0.1 + 0.01 * np.maximum(steps - 15, 0)
    >>> diagnose(train, val).pattern
    'overfitting'
    >>> diagnose(train, val[::10]).title  # five evaluations
    'not enough evaluations to judge'
  """
  t = np.asarray(train, np.float64).ravel()
  v = None if val is None or np.size(val) == 0 else np.asarray(val, np.float64).ravel()
  if len(t) < min_points:
    return Diagnosis("insufficient", f"{len(t)} training point(s), at least {min_points} needed")
  ts = (
    np.arange(len(t), dtype=np.float64) if train_steps is None else np.asarray(train_steps, float)
  )
  if ts.shape != t.shape:
    raise ValueError(
      f"train_steps has {ts.size} entries and train {t.size}; pass one step per training value."
    )
  vs = np.zeros(0)
  if v is not None:
    if val_steps is None:
      vs = np.linspace(ts[0], ts[-1], len(v))
    else:
      vs = np.asarray(val_steps, np.float64).ravel()
    if vs.shape != v.shape:
      raise ValueError(
        f"val_steps has {vs.size} entries and val {v.size}; pass one step per validation value."
      )
  for label, y, s in (("training", t, ts), ("validation", v, vs)):
    if y is not None and not np.all(np.isfinite(y)):
      i = int(np.argmin(np.isfinite(y)))
      return Diagnosis(
        "learning_rate_too_high", f"the {label} {name} became {y[i]} at step {int(s[i])}"
      )

  def path(label: str, y: np.ndarray, s: np.ndarray) -> str:
    return f"{label} {name} {_g(y[0])} at step {int(s[0])} → {_g(y[-1])} at step {int(s[-1])}"

  t_path = path("training", t, ts)
  t_start, t_end = _ends(t)
  t_noise = _noise(t)
  t_drop = (t_start - t_end) / max(abs(t_start), 1e-12)
  if t_end > t_start + 0.05 * _scale(t):
    return Diagnosis("learning_rate_too_high", f"{t_path}: it rose over the run")
  if t_noise > noise_high:
    return Diagnosis(
      "learning_rate_too_high",
      f"{t_path}; training noise measure {t_noise:.0%} of its level (threshold {noise_high:.0%})",
    )

  few = v is not None and len(v) < min_evaluations
  v_drop = None
  v_path = ""
  if v is not None and not few:
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
      j = int(np.argmin(v))
      return Diagnosis(
        "overfitting",
        f"validation {name}: best {_g(v[j])} at step {int(vs[j])}, last {_g(v[-1])} at step "
        f"{int(vs[-1])}, while the {t_path}",
      )
    jitter = _jitter(v)
    if v_noise > noise_val and v_noise > 3.0 * t_noise and jitter >= min_jitter:
      return Diagnosis(
        "noisy_validation",
        f"validation {name}: noise measure {v_noise:.0%} of its level (threshold "
        f"{noise_val:.0%}) against {t_noise:.0%} in training; it turns at {jitter:.0%} of "
        f"its points",
      )
    v_drop = (v_start - v_end) / max(abs(v_start), 1e-12)
    v_path = "; " + path("validation", v, vs)
  few_note = (
    f"; validation: {len(v)} evaluation(s), not enough to judge (at least {min_evaluations})"
    if few and v is not None
    else ""
  )

  if t_drop < min_drop and (v_drop is None or v_drop < min_drop):
    shown = f"dropped {max(t_drop, 0.0):.0%}" + (
      f", validation {max(v_drop, 0.0):.0%}" if v_drop is not None else ""
    )
    return Diagnosis(
      "underfitting", f"{t_path}{v_path}: {shown} (threshold {min_drop:.0%}){few_note}"
    )

  t_smooth = _running_median(t, max(3, len(t) // 8) | 1)
  mid = float(np.interp(ts[0] + 0.5 * (ts[-1] - ts[0]), ts, t_smooth))
  late = (mid - t_end) / max(t_start - t_end, 1e-12)
  late_rel = (mid - t_end) / max(abs(t_end), 1e-12)
  if late < late_drop and late_rel < late_level:
    return Diagnosis(
      "plateau",
      f"{t_path}; the second half of the run made {max(late, 0.0):.1%} of the drop "
      f"(threshold {late_drop:.0%}){few_note}",
    )
  if few:
    return Diagnosis("few_evaluations", f"{t_path}{few_note}")
  return Diagnosis(
    "healthy",
    f"{t_path}{v_path}; the second half of the run made {late:.0%} of the training drop",
  )


def _moving_weights(history: History) -> bool:
  for key in history.keys("train"):
    if key.startswith("weight/"):
      _, w = history.series(key, "train")
      if len(w) > 1 and np.ptp(w) > 1e-6 * max(float(np.max(np.abs(w))), 1e-12):
        return True
  return False


def _contribution(history: History, term: str) -> float:
  """Mean |value × weight| of a term over the training rows (the weight at each row)."""
  steps, values = history.series(f"loss/{term}", "train")
  w_steps, w = history.series(f"weight/{term}", "train")
  if len(w) and len(values):
    values = values * np.interp(steps, w_steps, w)
  values = np.abs(values[np.isfinite(values)])
  return float(np.mean(values)) if len(values) else -math.inf


def diagnosis_curves(history: History) -> list[tuple[str, str]]:
  """The ``(column, name)`` pairs of the curves a history is diagnosed on.

  ``[("loss", "total loss")]`` when no effective weight moves over the
  training rows. When one does (a schedule, learned or adaptive weighting),
  the total moves with the weights alone, so each leaf term that fits data is
  read on its own, unweighted: ``("loss/<term>", "term '<term>'")``, largest
  mean contribution ``|value × weight|`` first. A term counted 1 on every row
  is a penalty on parameters (an L2 decay grows as the weights do) and is
  left out, unless every term is.
  """
  keys = history.keys("train")
  terms = [k[len("count/") :] for k in keys if k.startswith("count/")]
  if not terms or "loss" in keys and not _moving_weights(history):
    return [("loss", "total loss")]
  data = [t for t in terms if not np.all(history.series(f"count/{t}", "train")[1] == 1.0)]
  ordered = sorted(data or terms, key=lambda t: -_contribution(history, t))
  return [(f"loss/{t}", f"term {t!r}") for t in ordered]


# How terms' patterns combine: an alarm on any term names the run (first in
# this order); otherwise the run progresses as well as its best term.
_ALARMS = ("learning_rate_too_high", "overfitting", "noisy_validation")
_PROGRESS = ("healthy", "few_evaluations", "plateau", "underfitting", "insufficient")


def diagnose_history(history: History, **thresholds: Any) -> Diagnosis:
  """:func:`diagnose` on a :class:`~jaxobj.train.history.History` (a run's, or your own).

  The curves are chosen by :func:`diagnosis_curves`. With several terms, a
  problem on any term (``learning_rate_too_high``, ``overfitting``,
  ``noisy_validation``) names the run; otherwise the best-progressing term
  does (a task that has converged does not make a run whose other task still
  learns a plateau). The evidence names the curve, and
  :attr:`Diagnosis.curve` is its column.

  Args:
    history: rows recorded with :meth:`~jaxobj.train.history.History.record`
      or read with :meth:`~jaxobj.train.history.History.read`.
    **thresholds: keyword arguments of :func:`diagnose`.

  Returns:
    A :class:`Diagnosis`.
  """
  found = []
  for key, name in diagnosis_curves(history):
    t_steps, t = history.series(key, "train")
    v_steps, v = history.series(key, "val")
    d = diagnose(
      t,
      v if len(v) else None,
      train_steps=t_steps,
      val_steps=v_steps if len(v) else None,
      name=name,
      **thresholds,
    )
    found.append(dataclasses.replace(d, curve=key))
  for pattern in _ALARMS + _PROGRESS:
    for d in found:
      if d.pattern == pattern:
        return d
  raise AssertionError(f"unknown patterns {[d.pattern for d in found]}")  # pragma: no cover
