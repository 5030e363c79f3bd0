"""Synthetic data sets, generated on the spot (nothing is downloaded).

Each generator takes keyword arguments only (a config's ``data:`` section sets
them) and returns a :class:`Dataset`: a train and a validation split, each a
dict of NumPy arrays with the examples on the first axis. An objective reads
them as ``batch.<key>``.

==========================  =========================================  =====================
generator                   keys                                       for
==========================  =========================================  =====================
``regression_outliers``     ``x (n, d)``, ``y (n,)``                   robust regression
``imbalanced_classification`` ``x (n, d)``, ``labels (n,)`` int          focal vs cross-entropy
``two_tasks``               ``x (n, d)``, ``y (n,)``, ``labels (n,)``  multi-task weighting
``paired_views``            ``image (n, d1)``, ``text (n, d2)``        CLIP / SigLIP
``bars``                    ``x (n, s, s, 1)`` or ``(n, s*s)``,        CNN, VAE
                            ``labels (n,)``
``location_outliers``       ``y (n,)``                                 fitting a location
``binary_labels``           ``labels (n,)`` float                      fitting a base rate
==========================  =========================================  =====================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
  "Dataset",
  "DATASETS",
  "regression_outliers",
  "imbalanced_classification",
  "two_tasks",
  "paired_views",
  "bars",
  "location_outliers",
  "binary_labels",
]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A train and a validation split: dicts of arrays with examples on axis 0."""

  train: dict[str, np.ndarray]
  val: dict[str, np.ndarray]
  description: str = ""

  @property
  def n_train(self) -> int:
    return len(next(iter(self.train.values())))

  @property
  def n_val(self) -> int:
    return len(next(iter(self.val.values()))) if self.val else 0

  def rows(self, rows: slice, *, pad_to: int | None = None) -> dict[str, np.ndarray]:
    """The training rows ``rows`` (a process's slice in a run over several processes).

    Args:
      rows: a contiguous slice of the training split, read as if it were
        padded with zero rows to ``pad_to`` rows.
      pad_to: the padded length (default: ``n_train``, no padding).

    Raises:
      ValueError: ``pad_to`` is less than ``n_train``, or ``rows`` steps or
        reaches past the padded length.

    >>> d = Dataset({"y": np.arange(5.0)}, {})
    >>> d.rows(slice(4, 8), pad_to=8)["y"]
    array([4., 0., 0., 0.])
    """
    n = self.n_train
    total = n if pad_to is None else pad_to
    if total < n:
      raise ValueError(f"pad_to={pad_to} is less than the {n} training rows.")
    start, stop, step = rows.indices(total)
    if step != 1 or rows.stop is not None and rows.stop > total:
      raise ValueError(f"rows={rows} is not a contiguous slice of the {total} (padded) rows.")
    out = {}
    for k, v in self.train.items():
      part = v[start : min(stop, n)]
      missing = stop - start - len(part)
      if missing > 0:  # padding: rows never drawn, zeros of the same dtype
        part = np.concatenate([part, np.zeros((missing, *v.shape[1:]), v.dtype)])
      out[k] = part
    return out


def _split(arrays: dict[str, np.ndarray], n_train: int) -> tuple[dict, dict]:
  return ({k: v[:n_train] for k, v in arrays.items()}, {k: v[n_train:] for k, v in arrays.items()})


def _check_sizes(n_train, n_val, minimum_val=0):
  if n_train < 1 or n_val < minimum_val:
    raise ValueError(
      f"n_train={n_train} must be positive and n_val={n_val} at least {minimum_val}."
    )


def regression_outliers(
  *,
  n_train: int = 256,
  n_val: int = 256,
  features: int = 1,
  function: Literal["sin", "linear"] = "sin",
  noise: float = 0.1,
  outlier_fraction: float = 0.1,
  outlier_scale: float = 10.0,
  seed: int = 0,
) -> Dataset:
  """A smooth function of ``x`` with Gaussian noise; in the train split a fraction
  of the targets is shifted upwards by ``outlier_scale`` times ``|N(0, 1)| + 1``.

  The outliers are one-sided, so the mean squared error's fit is pulled up
  towards them while the median (absolute error) and robust losses stay on
  the clean function. The validation split is clean: its loss measures the fit
  to the function, not to the outliers.
  """
  _check_sizes(n_train, n_val)
  if not 0.0 <= outlier_fraction < 1.0:
    raise ValueError(f"outlier_fraction={outlier_fraction} must be in [0, 1).")
  rng = np.random.default_rng(seed)
  n = n_train + n_val
  x = rng.uniform(-3.0, 3.0, size=(n, features))
  w = rng.normal(size=features)
  w /= np.linalg.norm(w)
  t = x @ w
  clean = np.sin(1.5 * t) if function == "sin" else 0.8 * t
  y = clean + noise * rng.normal(size=n)
  outlier = (rng.uniform(size=n) < outlier_fraction) & (np.arange(n) < n_train)
  y = np.where(outlier, y + outlier_scale * (np.abs(rng.normal(size=n)) + 1.0), y)
  train, val = _split(
    {"x": x.astype(np.float32), "y": y.astype(np.float32), "outlier": outlier}, n_train
  )
  return Dataset(train, val, f"{function}(x) + noise, {outlier.sum()} one-sided train outliers")


def imbalanced_classification(
  *,
  n_train: int = 1024,
  n_val: int = 512,
  features: int = 2,
  classes: int = 3,
  proportions: Sequence[float] = (0.90, 0.08, 0.02),
  separation: float = 2.0,
  seed: int = 0,
) -> Dataset:
  """Gaussian blobs (unit variance) whose centres lie ``separation`` apart, with
  class frequencies ``proportions`` (the same in both splits)."""
  _check_sizes(n_train, n_val)
  p = np.asarray(proportions, np.float64)
  if p.shape != (classes,) or np.any(p <= 0):
    raise ValueError(
      f"proportions={tuple(proportions)} needs {classes} positive entries (one per class)."
    )
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, features))
  centres *= separation / np.sqrt(2.0) / np.linalg.norm(centres, axis=1, keepdims=True)
  n = n_train + n_val
  labels = rng.choice(classes, size=n, p=p / p.sum())
  x = centres[labels] + rng.normal(size=(n, features))
  train, val = _split({"x": x.astype(np.float32), "labels": labels.astype(np.int32)}, n_train)
  return Dataset(train, val, f"{classes} blobs, class frequencies {np.round(p / p.sum(), 3)}")


def two_tasks(
  *,
  n_train: int = 512,
  n_val: int = 256,
  features: int = 8,
  regression_noise: float = 0.3,
  label_noise: float = 0.5,
  alignment: float = 0.0,
  nonlinear: bool = False,
  seed: int = 0,
) -> Dataset:
  """Two tasks on one input: a regression ``y = x·a + noise`` and a binary
  classification ``labels = [x·b + noise > 0]``.

  ``alignment`` is the cosine between the task directions ``a`` and ``b``:
  positive values make the tasks agree, negative values make them conflict
  (their gradients on a shared trunk point apart). With ``nonlinear=True`` the
  tasks are ``y = 2 sin(1.5 x·a) + noise`` and ``labels = [|x·b + noise| > 0.67]``
  (a band, about half the examples), which a network learns more slowly.
  """
  _check_sizes(n_train, n_val)
  if not -1.0 <= alignment <= 1.0 or features < 2:
    raise ValueError(
      f"alignment={alignment} must be in [-1, 1] and features={features} at least 2."
    )
  rng = np.random.default_rng(seed)
  basis, _ = np.linalg.qr(rng.normal(size=(features, 2)))
  a = basis[:, 0]
  b = alignment * basis[:, 0] + np.sqrt(1.0 - alignment**2) * basis[:, 1]
  n = n_train + n_val
  x = rng.normal(size=(n, features))
  u, v = x @ a, x @ b + label_noise * rng.normal(size=n)
  y = (2.0 * np.sin(1.5 * u) if nonlinear else u) + regression_noise * rng.normal(size=n)
  labels = ((np.abs(v) > 0.67) if nonlinear else (v > 0)).astype(np.int32)
  train, val = _split(
    {"x": x.astype(np.float32), "y": y.astype(np.float32), "labels": labels}, n_train
  )
  kind = "nonlinear " if nonlinear else ""
  return Dataset(train, val, f"{kind}regression + binary classification, alignment {alignment:g}")


def paired_views(
  *,
  n_train: int = 1024,
  n_val: int = 256,
  latent: int = 8,
  image_dim: int = 16,
  text_dim: int = 12,
  noise: float = 0.3,
  seed: int = 0,
) -> Dataset:
  """Paired "image" and "text" vectors: two random linear views of one latent
  code, each with its own noise. Pair ``i`` of a batch is the positive; the
  other rows are negatives."""
  _check_sizes(n_train, n_val)
  rng = np.random.default_rng(seed)
  n = n_train + n_val
  z = rng.normal(size=(n, latent))
  image = z @ rng.normal(size=(latent, image_dim)) / np.sqrt(latent)
  text = np.tanh(z @ rng.normal(size=(latent, text_dim)) / np.sqrt(latent))
  image += noise * rng.normal(size=image.shape)
  text += noise * rng.normal(size=text.shape)
  train, val = _split({"image": image.astype(np.float32), "text": text.astype(np.float32)}, n_train)
  return Dataset(train, val, f"paired views of a {latent}-d latent code")


def bars(
  *,
  n_train: int = 1024,
  n_val: int = 256,
  size: int = 8,
  flip: float = 0.05,
  proportions: Sequence[float] = (1.0, 1.0, 1.0),
  flatten: bool = False,
  seed: int = 0,
) -> Dataset:
  """Binary ``size × size`` images of bars: class 0 has horizontal bars only,
  class 1 vertical bars only, class 2 both; each pixel is then flipped with
  probability ``flip``. ``x`` is ``(n, size, size, 1)``, or ``(n, size*size)``
  with ``flatten=True``."""
  _check_sizes(n_train, n_val)
  p = np.asarray(proportions, np.float64)
  if p.shape != (3,) or np.any(p <= 0):
    raise ValueError(f"proportions={tuple(proportions)} needs 3 positive entries.")
  rng = np.random.default_rng(seed)
  n = n_train + n_val
  labels = rng.choice(3, size=n, p=p / p.sum())
  rows = rng.uniform(size=(n, size)) < 0.3
  cols = rng.uniform(size=(n, size)) < 0.3
  rows[np.arange(n), rng.integers(0, size, n)] = True  # at least one bar
  cols[np.arange(n), rng.integers(0, size, n)] = True
  rows &= (labels != 1)[:, None]
  cols &= (labels != 0)[:, None]
  img = rows[:, :, None] | cols[:, None, :]
  img ^= rng.uniform(size=img.shape) < flip
  x = img.astype(np.float32)
  x = x.reshape(n, size * size) if flatten else x[..., None]
  train, val = _split({"x": x, "labels": labels.astype(np.int32)}, n_train)
  return Dataset(train, val, f"{size}x{size} bar images in 3 classes")


def location_outliers(
  *,
  n_train: int = 201,
  n_val: int = 0,
  noise: float = 1.0,
  outlier_fraction: float = 0.2,
  outlier_shift: float = 8.0,
  seed: int = 0,
) -> Dataset:
  """Samples ``y`` from ``N(0, noise²)``, a fraction of them shifted up by
  ``outlier_shift``: the mean moves towards the outliers, the median barely."""
  _check_sizes(n_train, n_val)
  rng = np.random.default_rng(seed)
  n = n_train + n_val
  y = noise * rng.normal(size=n)
  y = np.where(rng.uniform(size=n) < outlier_fraction, y + outlier_shift, y)
  train, val = _split({"y": y.astype(np.float32)}, n_train)
  return Dataset(
    train,
    val,
    f"N(0, {noise:g}²) with a {outlier_fraction:g} fraction shifted by {outlier_shift:g}",
  )


def binary_labels(
  *, n_train: int = 200, n_val: int = 0, positive_fraction: float = 0.1, seed: int = 0
) -> Dataset:
  """Bernoulli labels (floats 0/1) with the given positive fraction."""
  _check_sizes(n_train, n_val)
  rng = np.random.default_rng(seed)
  labels = (rng.uniform(size=n_train + n_val) < positive_fraction).astype(np.float32)
  train, val = _split({"labels": labels}, n_train)
  return Dataset(train, val, f"Bernoulli({positive_fraction:g}) labels")


DATASETS = {
  f.__name__: f
  for f in (
    regression_outliers,
    imbalanced_classification,
    two_tasks,
    paired_views,
    bars,
    location_outliers,
    binary_labels,
  )
}
