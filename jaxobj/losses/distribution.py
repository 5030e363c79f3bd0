r"""Distribution losses: divergences and distances between distributions.

Kullback–Leibler (forward, reverse, with log targets, generalized),
Jensen–Shannon and knowledge distillation compare categorical distributions
along a trailing class axis; the 1-D Wasserstein distance compares histograms
or empirical samples; the maximum mean discrepancy compares two sample sets.
The per-element loss is one value per distribution (or per pair of sample
sets): batch axes lead, and ``where``/``weights`` index them.

Terms with zero probability are exactly 0 (:math:`0 \log 0 = 0`) with finite
gradients, so classes masked with ``-inf`` logits (or log-probabilities) are
safe. Names and argument meanings follow optax where optax has the loss
(``kl_divergence(log_predictions, targets)``, ...); unlike optax, which
returns one value per distribution, jaxobj reduces to the mean by default
(``reduction="none"`` gives optax's output), and ``where`` masks whole
distributions rather than single classes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.examples import distribution as examples
from jaxobj._src.numerics import (
  abs_with_sign_grad,
  relative_entropy,
  relative_entropy_terms,
  scale_logits,
)
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "generalized_kl_divergence",
  "jensen_shannon_divergence",
  "kl_divergence",
  "kl_divergence_with_log_targets",
  "knowledge_distillation_loss",
  "maximum_mean_discrepancy",
  "reverse_kl_divergence",
  "wasserstein_1d",
  "wasserstein_1d_histogram",
]

_LOG2 = math.log(2.0)


# --------------------------------------------------------------------------
# Shared building blocks.


def _distributions(first, second, names, axis, where, fills=(0.0, 0.0)):
  """Two same-shape inputs with the distribution axis moved last.

  Masked rows are replaced by ``fills`` (a log-probability of 0 and a
  probability of 1 describe the same point mass, so every term there is 0).
  """
  x = checks.as_float(first, names[0])
  checks.check_same_shape(names[0], x, names[1], second)
  if x.ndim < 1:
    raise ValueError(
      f"{names[0]} must have a distribution axis, got a scalar; pass arrays of shape [..., K]."
    )
  y = checks.as_target(second, names[1], x)
  x, y = jnp.moveaxis(x, axis, -1), jnp.moveaxis(y, axis, -1)
  shape = x.shape[:-1]
  return (
    masked_fill(where, x, shape, fills[0], axis_extra=1),
    masked_fill(where, y, shape, fills[1], axis_extra=1),
  )


def _safe_log(p):
  """``log p`` with ``-inf`` at 0 and a finite gradient there (NaN for p < 0)."""
  zero = p == 0
  return jnp.where(zero, -jnp.inf, jnp.log(jnp.where(zero, 1.0, p)))


# --------------------------------------------------------------------------
# Kullback–Leibler and Jensen–Shannon.


@register(
  "distribution", inputs=examples.LOG_PROBABILITIES, zero_hessian="linear in log_predictions"
)
def kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Forward Kullback–Leibler divergence of the predictions from the targets.

  .. math::
     \ell(\log q, p) = \mathrm{KL}(p \,\|\, q) = \sum_k p_k\,(\log p_k - \log q_k)

  with :math:`0 \log 0 = 0`: a class with zero target probability contributes
  exactly 0 (and a finite gradient), even where ``log_predictions`` is
  ``-inf``. Minimizing it over :math:`q` is minimizing the cross-entropy to
  :math:`p` ("mean-seeking"). A class with :math:`p_k > 0` and
  :math:`q_k = 0` gives :math:`+\infty`, the true value.

  As in optax (and ``torch.nn.functional.kl_div``), the first input is a
  log-probability, e.g. ``jax.nn.log_softmax(logits)``; the gradient w.r.t.
  it is :math:`-p`. Differences from optax: the result is reduced (mean over
  distributions by default; ``reduction="none"`` gives optax's values),
  ``where`` masks whole distributions, and a zero target never yields NaN.

  Against ``torch.nn.functional.kl_div(log_predictions, targets)``: torch
  sums nothing over the class axis for ``reduction="none"`` (sum its output
  over ``axis`` to get ours); its ``"batchmean"`` divides the total by the
  first axis only, which is our ``"mean"`` for ``[N, K]`` inputs and
  ``reduction="sum"`` divided by ``N`` for ``[N, T, K]``; its ``"mean"``
  also divides by ``K``. The gradient w.r.t. a zero target probability is 0
  here (torch's is :math:`-\infty`).

  Args:
    log_predictions: float array ``[..., K]`` of log-probabilities
      :math:`\log q` (class axis set by ``axis``).
    targets: probabilities :math:`p`, same shape.
    axis: the class axis (static).
    where: mask over the distributions, shape ``log_predictions.shape``
      without the class axis.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one divergence per distribution for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``log_predictions``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> log_q = jax.nn.log_softmax(jnp.array([[0.0, 0.0, -jnp.inf]]))
    >>> print(round(float(jaxobj.kl_divergence(log_q, jnp.array([[0.9, 0.1, 0.0]]))), 4))
    0.3681

  References:
    Kullback and Leibler, "On Information and Sufficiency", Annals of
    Mathematical Statistics 1951.
  """
  log_q, p = _distributions(
    log_predictions, targets, ("log_predictions", "targets"), axis, where, fills=(0.0, 1.0)
  )
  values = relative_entropy(p, _safe_log(p), log_q)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register(
  "distribution", inputs=examples.LOG_PROBABILITY_PAIRS, zero_hessian="linear in log_predictions"
)
def kl_divergence_with_log_targets(
  log_predictions: ArrayLike,
  log_targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Forward Kullback–Leibler divergence with the targets given as log-probabilities.

  .. math::
     \ell(\log q, \log p) = \sum_k e^{\log p_k}\,(\log p_k - \log q_k)

  The same divergence as :func:`kl_divergence`; log targets avoid the
  underflow of tiny target probabilities (a teacher's log-softmax, say).
  ``log_targets`` of ``-inf`` contribute exactly 0 (optax's
  ``kl_divergence_with_log_targets`` and torch's ``kl_div(...,
  log_target=True)`` give NaN there). Reductions compare with torch's as in
  :func:`kl_divergence`.

  Args:
    log_predictions: float array ``[..., K]`` of log-probabilities :math:`\log q`.
    log_targets: log-probabilities :math:`\log p`, same shape.
    axis: the class axis (static).
    where: mask over the distributions (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one divergence per distribution for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``log_predictions``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> log_q = jax.nn.log_softmax(jnp.array([[0.0, 0.0, -jnp.inf]]))
    >>> log_p = jnp.log(jnp.array([[0.9, 0.1, 0.0]]))
    >>> print(round(float(jaxobj.kl_divergence_with_log_targets(log_q, log_p)), 4))
    0.3681
  """
  log_q, log_p = _distributions(
    log_predictions, log_targets, ("log_predictions", "log_targets"), axis, where
  )
  values = relative_entropy(jnp.exp(log_p), log_p, log_q)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("distribution", inputs=examples.LOG_PROBABILITIES)
def reverse_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Reverse Kullback–Leibler divergence: of the targets from the predictions.

  .. math::
     \ell(\log q, p) = \mathrm{KL}(q \,\|\, p) = \sum_k q_k\,(\log q_k - \log p_k)

  The model distribution :math:`q` comes first ("mode-seeking": it is
  infinite where the model puts mass on a class the target rules out, and
  indifferent to target modes the model ignores). Classes with
  :math:`q_k = 0` contribute exactly 0.

  Args:
    log_predictions: float array ``[..., K]`` of log-probabilities :math:`\log q`.
    targets: probabilities :math:`p`, same shape.
    axis: the class axis (static).
    where: mask over the distributions (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one divergence per distribution for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``log_predictions``.

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> log_q = jnp.log(jnp.array([[0.5, 0.5, 0.0]]))
    >>> print(round(float(jaxobj.reverse_kl_divergence(log_q, jnp.array([[0.9, 0.1, 0.0]]))), 4))
    0.5108
  """
  log_q, p = _distributions(
    log_predictions, targets, ("log_predictions", "targets"), axis, where, fills=(0.0, 1.0)
  )
  values = relative_entropy(jnp.exp(log_q), log_q, _safe_log(p))
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("distribution", inputs=examples.UNNORMALIZED)
def generalized_kl_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized Kullback–Leibler divergence between unnormalized measures.

  .. math::
     \ell(\log q, p) = \sum_k \big[p_k\,(\log p_k - \log q_k) - p_k + q_k\big]

  The Bregman divergence of :math:`x \log x - x`: non-negative and zero only
  at :math:`q = p` for any non-negative vectors, and equal to
  :func:`kl_divergence` when both sum to 1 (e.g. for non-negative matrix
  factorization or Poisson-like intensities). optax's
  ``generalized_kl_divergence`` (formerly ``convex_kl_divergence``).

  Args:
    log_predictions: float array ``[..., K]``, the log of the predicted
      non-negative measure :math:`q`.
    targets: non-negative targets :math:`p`, same shape.
    axis: the class axis (static).
    where: mask over the rows (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one value per row for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``log_predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> print(round(float(jaxobj.generalized_kl_divergence(
    ...     jnp.log(jnp.array([[2.0, 1.0]])), jnp.array([[1.0, 1.0]]))), 4))
    0.3069

  References:
    Lee and Seung, "Algorithms for Non-negative Matrix Factorization",
    NeurIPS 2000.
  """
  log_q, p = _distributions(
    log_predictions, targets, ("log_predictions", "targets"), axis, where, fills=(0.0, 1.0)
  )
  # KL(p || q) + sum(q - p) as one sum (one reduction: a shorter program); log p
  # is any finite value where p == 0, where its term is 0.
  log_p = jnp.log(jnp.where(p != 0, p, 1.0))
  values = jnp.sum(relative_entropy_terms(p, log_p, log_q) + jnp.exp(log_q) - p, axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("distribution", inputs=examples.LOG_PROBABILITIES)
def jensen_shannon_divergence(
  log_predictions: ArrayLike,
  targets: ArrayLike,
  *,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Jensen–Shannon divergence: symmetric, bounded by :math:`\log 2`.

  .. math::
     \ell(\log q, p) = \tfrac12\,\mathrm{KL}(q \,\|\, m) + \tfrac12\,\mathrm{KL}(p \,\|\, m),
     \qquad m = \tfrac12 (p + q)

  in nats, with :math:`\log m = \operatorname{logaddexp}(\log q, \log p) - \log 2`,
  so it is finite even where one distribution is 0 and the other is not.
  ``scipy.spatial.distance.jensenshannon`` returns the square root of this
  value (a metric).

  Args:
    log_predictions: float array ``[..., K]`` of log-probabilities :math:`\log q`.
    targets: probabilities :math:`p`, same shape.
    axis: the class axis (static).
    where: mask over the distributions (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one divergence per distribution for ``reduction="none"``.

  Raises:
    ValueError: shapes differ.
    TypeError: integer ``log_predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> log_q = jnp.log(jnp.array([[1.0, 0.0]]))
    >>> print(round(float(jaxobj.jensen_shannon_divergence(log_q, jnp.array([[0.0, 1.0]]))), 4))
    0.6931

  References:
    Lin, "Divergence Measures Based on the Shannon Entropy", IEEE
    Transactions on Information Theory 1991.
  """
  log_q, p = _distributions(
    log_predictions, targets, ("log_predictions", "targets"), axis, where, fills=(0.0, 1.0)
  )
  log_p = _safe_log(p)
  # Double where: logaddexp(-inf, -inf) has a NaN gradient.
  either = (log_q > -jnp.inf) | (p != 0)
  log_m = (
    jnp.where(
      either, jnp.logaddexp(jnp.where(either, log_q, 0.0), jnp.where(either, log_p, 0.0)), -jnp.inf
    )
    - _LOG2
  )
  values = 0.5 * (
    relative_entropy(jnp.exp(log_q), log_q, log_m) + relative_entropy(p, log_p, log_m)
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


@register("distribution", inputs=examples.LOGIT_PAIRS)
def knowledge_distillation_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  *,
  temperature: float | ArrayLike = 1.0,
  axis: int = -1,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Knowledge distillation: temperature-softened KL from teacher to student, times T².

  .. math::
     \ell(s, t) = T^2\,\mathrm{KL}\big(\operatorname{softmax}(t/T) \,\|\,
       \operatorname{softmax}(s/T)\big)

  The :math:`T^2` factor keeps the gradient's scale independent of the
  temperature (the soft-target gradient scales as :math:`1/T^2`), as in
  Hinton et al.; combine it with a hard-label cross-entropy by adding the
  two. The gradient also flows into ``teacher_logits``: wrap them in
  ``jax.lax.stop_gradient`` when the teacher is being trained alongside.
  Classes that are ``-inf`` in the teacher contribute 0.

  For ``[N, K]`` logits the default mean is the common PyTorch recipe
  ``F.kl_div(F.log_softmax(s / T), F.softmax(t / T), reduction="batchmean")
  * T**2``; with more batch axes torch's ``"batchmean"`` divides by the first
  axis only (use ``reduction="sum"`` divided by it).

  Args:
    student_logits: float array ``[..., K]``.
    teacher_logits: float array, same shape.
    temperature: :math:`T > 0` (traceable; differentiable).
    axis: the class axis (static).
    where: mask over the rows (shape without the class axis).
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one value per row for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``temperature <= 0`` (when concrete).
    TypeError: integer ``student_logits``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> s, t = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([[1.0, 1.0, -jnp.inf]])
    >>> print(round(float(jaxobj.knowledge_distillation_loss(s, t, temperature=2.0)), 4))
    1.0849

  References:
    Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
    Network", NeurIPS Deep Learning Workshop 2014 (arXiv:1503.02531).
  """
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  s, t = _distributions(
    student_logits, teacher_logits, ("student_logits", "teacher_logits"), axis, where
  )
  log_q = jax.nn.log_softmax(scale_logits(s, temperature), axis=-1)
  log_p = jax.nn.log_softmax(scale_logits(t, temperature), axis=-1)
  values = temperature**2 * relative_entropy(jnp.exp(log_p), log_p, log_q)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Wasserstein-1 in one dimension.


@register(
  "distribution",
  inputs=examples.HISTOGRAMS,
  zero_hessian="piecewise linear: absolute differences of the CDFs",
)
def wasserstein_1d_histogram(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  bin_width: float | ArrayLike = 1.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Wasserstein-1 (earth mover's) distance between histograms on a shared 1-D grid.

  .. math::
     \ell(q, p) = \Delta \sum_{j=1}^{B-1} \Big|\sum_{k \le j} (q_k - p_k)\Big|

  the area between the two cumulative distribution functions on ``B``
  equally spaced bins :math:`\Delta` apart. Both histograms should carry the
  same total mass (probability vectors, e.g. ``jax.nn.softmax(logits)``);
  they are not renormalized (``scipy.stats.wasserstein_distance`` with the bin
  centres as values normalizes its weights first). The gradient of
  :math:`|\cdot|` is its sign, 0 where the CDFs agree.

  Args:
    predictions: float array ``[..., B]``, the predicted histogram.
    targets: the target histogram, same shape.
    bin_width: :math:`\Delta > 0`, the spacing of the support (traceable).
    where: mask over the histograms, shape ``predictions.shape[:-1]``.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one distance per histogram pair for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, ``bin_width <= 0`` (when concrete).
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> q, p = jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[0.0, 0.0, 1.0]])
    >>> print(float(jaxobj.wasserstein_1d_histogram(q, p, bin_width=0.5)))
    1.0

  References:
    Hou, Yu and Samaras, "Squared Earth Mover's Distance-based Loss for
    Training Deep Neural Networks", arXiv:1611.05916, 2016.
  """
  checks.check_range("bin_width", bin_width, low=0.0, low_inclusive=False)
  q, p = _distributions(predictions, targets, ("predictions", "targets"), -1, where)
  cdf_gap = jnp.cumsum(q - p, axis=-1)[..., :-1]
  values = bin_width * jnp.sum(abs_with_sign_grad(cdf_gap), axis=-1)
  # The last bin enters no CDF gap; a NaN there must still reach the value.
  last_nan = jnp.isnan(q[..., -1]) | jnp.isnan(p[..., -1])
  values = jnp.where(last_nan, jnp.nan, values)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


def _quantile_pairing(n: int, m: int):
  r"""Static indices and widths pairing the quantile functions of n and m samples.

  On each interval between consecutive breakpoints of :math:`\{i/n\} \cup
  \{j/m\}` both empirical quantile functions are constant; the breakpoints are
  integers on a grid of :math:`1/(nm)`, so the pairing is exact.
  """
  grid = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)
  lower = np.concatenate([[0], grid[:-1]])
  twice_mid = lower + grid
  return twice_mid // (2 * m), twice_mid // (2 * n), (grid - lower) / (n * m)


@register(
  "distribution",
  inputs=examples.SAMPLES_1D,
  couples_rows=True,
  zero_hessian="piecewise linear: sorted samples (kinked at ties), absolute differences",
)
def wasserstein_1d(
  samples: ArrayLike,
  target_samples: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Wasserstein-1 distance between two 1-D empirical distributions.

  .. math::
     \ell(x, y) = \int_0^1 \big|F_x^{-1}(u) - F_y^{-1}(u)\big|\,du
     \;\overset{n = m}{=}\; \frac1n \sum_{i=1}^n \big|x_{(i)} - y_{(i)}\big|

  between the uniform empirical measures of ``n`` samples :math:`x` and
  ``m`` samples :math:`y` (:math:`x_{(i)}` sorted). Equal counts pair the
  sorted samples; different counts pair the two step quantile functions on
  the union of their breakpoints (static indices, no search at run time).
  Matches ``scipy.stats.wasserstein_distance(x, y)``. The gradient moves each
  sample towards its matched quantile (sign of the difference, 0 at ties).

  Args:
    samples: float array ``[..., n]``.
    target_samples: float array ``[..., m]`` with the same batch axes.
    where: mask over the sample sets, shape ``samples.shape[:-1]``.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one distance per pair of sample sets for
    ``reduction="none"``.

  Raises:
    ValueError: batch axes differ or a sample axis is empty.
    TypeError: integer ``samples``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x, y = jnp.array([[0.0, 1.0, 3.0]]), jnp.array([[5.0, 1.0]])
    >>> print(round(float(jaxobj.wasserstein_1d(x, y)), 4))
    1.6667

  References:
    Villani, "Optimal Transport: Old and New", Springer 2009 (Remark 2.19).
  """
  x = checks.as_float(samples, "samples")
  y = jnp.asarray(target_samples)
  sx, sy = x.shape, y.shape
  if x.ndim < 1 or y.ndim < 1 or sx[:-1] != sy[:-1] or 0 in (sx[-1:] + sy[-1:]):
    raise ValueError(
      f"samples and target_samples must be [..., n] and [..., m] with the same "
      f"batch axes and n, m >= 1, got samples.shape={sx} and "
      f"target_samples.shape={sy}. Put the samples on the last axis of both."
    )
  y = checks.as_target(y, "target_samples", x)
  shape = sx[:-1]
  x = jnp.sort(masked_fill(where, x, shape, axis_extra=1), axis=-1)
  y = jnp.sort(masked_fill(where, y, shape, axis_extra=1), axis=-1)
  ix, iy, width = _quantile_pairing(sx[-1], sy[-1])
  gap = jnp.take(x, ix, axis=-1) - jnp.take(y, iy, axis=-1)
  values = jnp.sum(abs_with_sign_grad(gap) * width.astype(x.dtype), axis=-1)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)


# --------------------------------------------------------------------------
# Maximum mean discrepancy.


def _squared_distances(a, b, same: bool):
  """Pairwise ``||a_i - b_j||^2`` as ``|a|^2 + |b|^2 - 2 a.b`` (a matmul, never
  an ``[n, m, D]`` difference tensor), clamped at 0 against cancellation; the
  diagonal of a set against itself is exactly 0."""
  aa = jnp.sum(a * a, axis=-1)[..., :, None]
  bb = jnp.sum(b * b, axis=-1)[..., None, :]
  ab = jnp.einsum("...id,...jd->...ij", a, b)
  d = jnp.maximum(aa + bb - 2.0 * ab, 0.0)
  if same:
    d = jnp.where(jnp.eye(d.shape[-1], dtype=bool), 0.0, d)
  return d


def _rbf(d, bandwidth):
  """Sum of Gaussian kernels ``exp(-d / (2 sigma^2))`` over the bandwidths."""
  sigma = jnp.asarray(bandwidth, d.dtype)
  if sigma.ndim == 0:
    return jnp.exp(-0.5 * d / sigma**2)
  return jnp.sum(jnp.exp(-0.5 * d[..., None] / sigma**2), axis=-1)


def _mean_kernel(k, unbiased: bool):
  """Mean of a within-set kernel matrix; the U-statistic leaves out the diagonal."""
  n = k.shape[-1]
  if not unbiased:
    return jnp.mean(k, axis=(-2, -1))
  off = jnp.where(jnp.eye(n, dtype=bool), 0.0, k)
  return jnp.sum(off, axis=(-2, -1)) / (n * (n - 1))


@register("distribution", inputs=examples.SAMPLE_SETS, couples_rows=True)
def maximum_mean_discrepancy(
  samples: ArrayLike,
  target_samples: ArrayLike,
  *,
  bandwidth: float | ArrayLike = 1.0,
  unbiased: bool = False,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Squared maximum mean discrepancy between two sample sets, Gaussian RBF kernel.

  .. math::
     \mathrm{MMD}^2(x, y) = \overline{k(x, x')} + \overline{k(y, y')}
       - 2\,\overline{k(x, y)},
     \qquad k(a, b) = \sum_s \exp\!\Big(-\frac{\|a - b\|^2}{2\sigma_s^2}\Big)

  where each bar is a mean over pairs. The biased (V-statistic) estimator,
  the default, averages over all pairs, diagonal included: it is
  non-negative and what generative-moment-matching and domain-adaptation
  losses use. ``unbiased=True`` gives Gretton et al.'s U-statistic, which
  leaves out the :math:`i = j` pairs of each within-set mean: unbiased for
  :math:`\mathrm{MMD}^2`, and it can be slightly negative.

  Pairwise squared distances come from a matmul, :math:`\|a\|^2 + \|b\|^2 -
  2 a \cdot b` clamped at 0 (memory :math:`O(nm)`, never :math:`O(nmD)`), on
  centred sets, so a common offset of the samples costs no precision.
  Several bandwidths (a tuple or 1-D array) sum their kernels (a
  multi-kernel MMD).

  Args:
    samples: float array ``[..., n, D]``.
    target_samples: float array ``[..., m, D]`` with the same batch axes and ``D``.
    bandwidth: kernel width :math:`\sigma > 0` (traceable: ``jax.vmap`` and
      ``jax.grad`` over it work), or a sequence of widths.
    unbiased: use the U-statistic (static; needs ``n, m >= 2``).
    where: mask over the pairs of sets, shape ``samples.shape[:-2]``.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; one :math:`\mathrm{MMD}^2` per pair of sets for
    ``reduction="none"``.

  Raises:
    ValueError: batch axes or feature sizes differ, ``unbiased`` with fewer
      than 2 samples, ``bandwidth <= 0`` (when concrete).
    TypeError: integer ``samples``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[[0.0], [1.0]]])
    >>> print(round(float(jaxobj.maximum_mean_discrepancy(x, x + 1.0)), 4))
    0.4323

  References:
    Gretton et al., "A Kernel Two-Sample Test", JMLR 2012; Li, Swersky and
    Zemel, "Generative Moment Matching Networks", ICML 2015.
  """
  if isinstance(bandwidth, (tuple, list)):
    bandwidth = jnp.asarray(bandwidth)  # a sequence may hold tracers (jit, vmap)
  if np.ndim(bandwidth) > 1:
    raise ValueError(
      f"bandwidth must be a scalar or 1-D (one kernel per width), got "
      f"bandwidth.shape={np.shape(bandwidth)}."
    )
  checks.check_range("bandwidth", bandwidth, low=0.0, low_inclusive=False)
  x = checks.as_float(samples, "samples")
  y = jnp.asarray(target_samples)
  sx, sy = x.shape, y.shape
  if x.ndim < 2 or y.ndim < 2 or sx[:-2] != sy[:-2] or sx[-1] != sy[-1]:
    raise ValueError(
      f"samples and target_samples must be [..., n, D] and [..., m, D] with the "
      f"same batch axes and feature size D, got samples.shape={sx} and "
      f"target_samples.shape={sy}."
    )
  if unbiased and min(sx[-2], sy[-2]) < 2:
    raise ValueError(
      f"unbiased=True needs at least 2 samples per set, got "
      f"samples.shape={sx} and target_samples.shape={sy}."
    )
  y = checks.as_target(y, "target_samples", x)
  shape = sx[:-2]
  x = masked_fill(where, x, shape, axis_extra=2)
  y = masked_fill(where, y, shape, axis_extra=2)
  # Distances are translation invariant; centring each set (and the pair at
  # their midpoint) keeps the matmul form's cancellation error relative to
  # the spread of the points, not to their distance from the origin.
  cx = jax.lax.stop_gradient(jnp.mean(x, axis=-2, keepdims=True))
  cy = jax.lax.stop_gradient(jnp.mean(y, axis=-2, keepdims=True))
  c = 0.5 * (cx + cy)
  kxx = _rbf(_squared_distances(x - cx, x - cx, True), bandwidth)
  kyy = _rbf(_squared_distances(y - cy, y - cy, True), bandwidth)
  kxy = _rbf(_squared_distances(x - c, y - c, False), bandwidth)
  values = (
    _mean_kernel(kxx, unbiased) + _mean_kernel(kyy, unbiased) - 2.0 * jnp.mean(kxy, axis=(-2, -1))
  )
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
