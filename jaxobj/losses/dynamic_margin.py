r"""Metric-learning losses whose margin comes from the data: a running CDF, a random walk.

* :func:`dynamic_soft_margin_loss` (Zhang & Rusinkiewicz 2019) weighs every
  triplet of a labelled batch by the cumulative distribution of the triplets'
  signed distances, kept as a running histogram across steps. jaxobj is
  functional, so the histogram is explicit state:
  :func:`dynamic_soft_margin_init` makes an empty one and
  :func:`dynamic_soft_margin_update` returns the next one from a batch; the
  loss takes it as its third input.
* :func:`manifold_loss` (Aziere & Todorovic 2019) compares embeddings with
  proxies through manifold similarities, the closed-form limit of a random
  walk on the graph of the batch and the proxies.

Both couple the rows of a batch (declared ``couples_rows``); a row masked
with ``where`` leaves the batch entirely, so ``loss(x, y, h, where=m) ==
loss(x[m], y[m], h)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, inputs
from jaxobj._src import labelled_batches as lb
from jaxobj._src.examples import dynamic_margin as dm_examples
from jaxobj._src.examples import proxies as proxy_examples
from jaxobj._src.margin_softmax import gram, normalize
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = [
  "dynamic_soft_margin_init",
  "dynamic_soft_margin_loss",
  "dynamic_soft_margin_update",
  "manifold_loss",
]

_FAMILY = "metric_learning"


# --------------------------------------------------------------------------
# Dynamic soft margin.


def _check_histogram(histogram: ArrayLike) -> jax.Array:
  h = checks.as_float(histogram, "histogram")
  if h.ndim != 1 or h.shape[0] == 0:
    raise ValueError(
      f"histogram must be a non-empty 1-D array (num_bins,), got histogram.shape={h.shape}; "
      "make one with jaxobj.dynamic_soft_margin_init(num_bins)."
    )
  return h


def _unit(x):
  """Rows scaled to unit norm; the largest entry is divided out first, so that
  huge rows do not overflow the squared norm (the result does not depend on
  the row's scale, so holding that factor constant keeps the gradient exact)."""
  top = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
  return normalize(x / jnp.where(top > 0, top, 1.0))


def _triplet_differences(embeddings, labels, where):
  r""":math:`x_{apn} = D_{ap} - D_{an}` ``[N, N, N]`` on L2-normalised rows, which
  triplets are valid, which anchors have one, and the per-anchor loss shape."""
  (x,), y, valid, shape = lb.labelled_batch(("embeddings",), (embeddings,), labels, where)
  pos, neg = lb.positives_negatives(y, valid)
  d = lb.distance_matrix(_unit(x), valid, "euclidean")
  keep = pos[:, :, None] & neg[:, None, :]
  return d[:, :, None] - d[:, None, :], keep, jnp.any(keep, axis=(1, 2)), shape


def _bin_position(x, min_val, num_bins):
  """Position of ``x`` on the bin grid: bin ``k`` sits at ``min_val + k * delta``."""
  delta = -2.0 * min_val / num_bins
  return (x - min_val) / delta


def dynamic_soft_margin_init(num_bins: int = 10) -> jax.Array:
  r"""An empty running histogram for :func:`dynamic_soft_margin_loss`.

  Args:
    num_bins: the number of bins over :math:`[m, -m]` (``min_val`` :math:`= m`);
      the paper's and pytorch-metric-learning's default is 10.

  Returns:
    ``zeros((num_bins,), float32)``: the first :func:`dynamic_soft_margin_update`
    replaces it by the batch's histogram.

  Raises:
    ValueError: ``num_bins`` is not a positive integer.

  Example:
    >>> import jaxobj
    >>> print(jaxobj.dynamic_soft_margin_init(4))
    [0. 0. 0. 0.]
  """
  checks.check_int("num_bins", num_bins)
  if num_bins < 1:
    raise ValueError(f"num_bins must be a positive integer, got num_bins={num_bins!r}.")
  return jnp.zeros((num_bins,), jnp.float32)


def dynamic_soft_margin_update(
  histogram: ArrayLike,
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  momentum: float | ArrayLike = 0.01,
  min_val: float | ArrayLike = -2.0,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""The next running histogram of the dynamic soft margin: a pure function, no gradient.

  .. math::
     \hat h_k = \frac{1}{T} \sum_{(a,p,n)} \big[(1 - f)\,\mathbb 1_{k = \lfloor u \rfloor}
       + f\,\mathbb 1_{k = \lfloor u \rfloor + 1}\big],\qquad
     h' = \frac{(1 - \mu)\,h / \textstyle\sum h + \mu\,\hat h}{\cdot}

  over the :math:`T` valid triplets of the batch, with :math:`u = (x - m)/\delta`
  the position of the triplet's :math:`x = D_{ap} - D_{an}` on the grid of
  ``num_bins`` points :math:`m + k\delta`, :math:`\delta = 2|m| / \text{num\_bins}`
  (clipped to the grid), :math:`f = u - \lfloor u \rfloor`: each triplet's
  unit mass is split linearly between its two neighbouring bins, as in the
  paper. :math:`\mu` is the momentum; a histogram that sums to 0 (the
  :func:`dynamic_soft_margin_init` one) is replaced by :math:`\hat h`, and a
  batch without a triplet leaves the (normalised) histogram as it was.
  :math:`D` is the distance of the L2-normalised embeddings, as in
  :func:`dynamic_soft_margin_loss`.

  pytorch-metric-learning adds the batch's raw counts (which sum to
  :math:`T`) to the normalised histogram, so its momentum acts as
  :math:`\mu T / (1 - \mu + \mu T)` here; pass that value to reproduce it.

  Args:
    histogram: float array ``(num_bins,)``, nonnegative: the previous histogram.
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer array ``embeddings.shape[:-1]``.
    momentum: :math:`\mu \in [0, 1]`, the batch's share (traceable).
    min_val: :math:`m < 0`, the low end of the grid (traceable); ``-2`` covers
      every :math:`x` of normalised embeddings.
    where: mask over the rows; a masked row is removed from the batch.

  Returns:
    The next histogram ``(num_bins,)``, summing to 1 (or all 0 while no
    triplet has been seen), under ``stop_gradient``.

  Raises:
    ValueError: bad shapes (both are named), ``momentum`` outside ``[0, 1]``,
      ``min_val >= 0``.
    TypeError: integer embeddings or histogram, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> h = jaxobj.dynamic_soft_margin_update(
    ...   jaxobj.dynamic_soft_margin_init(4), x, jnp.array([0, 0, 1]))
    >>> print(h)  # x = 0 - sqrt(2) for both triplets: 0.586 of the way from bin 0 to 1
    [0.4142 0.5858 0.     0.    ]
  """
  checks.check_range("momentum", momentum, low=0.0, high=1.0)
  checks.check_range("min_val", min_val, high=0.0, high_inclusive=False)
  h = _check_histogram(histogram)
  num_bins = h.shape[0]
  x, keep, _, _ = _triplet_differences(jax.lax.stop_gradient(embeddings), labels, where)
  u = jnp.clip(_bin_position(x, min_val, num_bins), 0.0, num_bins - 1.0)
  low = jnp.clip(jnp.floor(u), 0.0, max(num_bins - 2, 0))
  frac = u - low
  low = low.astype(jnp.int32).ravel()
  high = jnp.minimum(low + 1, num_bins - 1)
  keep_f = keep.astype(x.dtype).ravel()
  frac = frac.ravel()
  counts = jnp.zeros(num_bins, x.dtype).at[low].add(keep_f * (1.0 - frac))
  counts = counts.at[high].add(keep_f * frac)
  num_triplets = jnp.sum(keep_f)
  batch = counts / jnp.maximum(num_triplets, 1.0)
  h = h.astype(x.dtype)
  total = jnp.sum(h)
  # `== 0`, not `> 0`: a NaN histogram must reach the result, not take the guard.
  previous = h / jnp.where(total == 0, 1.0, total)
  mu = jnp.where(total == 0, 1.0, momentum)
  new = jnp.where(num_triplets > 0, (1.0 - mu) * previous + mu * batch, previous)
  return jax.lax.stop_gradient(new)


@register(_FAMILY, inputs=dm_examples.HISTOGRAM_LABELLED_EMBEDDINGS, couples_rows=True)
def dynamic_soft_margin_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  histogram: ArrayLike,
  *,
  min_val: float | ArrayLike = -2.0,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Dynamic soft margin loss (Zhang & Rusinkiewicz 2019): triplets weighed by a running CDF.

  .. math::
     \ell_a = \frac{1}{|P_a|\,|N_a|} \sum_{p \in P_a} \sum_{n \in N_a}
       \Phi(x_{apn})\, x_{apn},\qquad x_{apn} = D_{ap} - D_{an}

  with :math:`D` the Euclidean distance of the L2-normalised embeddings
  (:math:`x \in [-2, 2]`), :math:`P_a` the other rows with anchor
  :math:`a`'s label, :math:`N_a` the rows with another label, and
  :math:`\Phi` the CDF of the running ``histogram`` (under ``stop_gradient``):
  :math:`\Phi(x) = \sum_{j \le k} h_j / \sum_j h_j` for :math:`x` in bin
  :math:`k = \lfloor (x - m)/\delta \rfloor` (clipped to the bins),
  :math:`\delta = 2|m|/\text{num\_bins}`, :math:`m` = ``min_val``.
  The gradient of a triplet is :math:`\Phi(x)\,\nabla x`: the paper's soft
  margin, which pushes a triplet harder the larger the share of triplets
  it is worse than is. Easy triplets (:math:`x < 0`) add negative values.

  **The histogram is state**: make it with :func:`dynamic_soft_margin_init`
  and advance it each step with :func:`dynamic_soft_margin_update` (pure,
  no gradient) before the loss, which then weighs with the updated
  histogram, as pytorch-metric-learning does (the example below). Keep it
  beside the optimizer state. In an objective it is data, read from the
  batch like the labels (the example's last lines): an objective's own
  state (``init_state``) is the weighting state of multi-task schemes,
  computed from task losses, not a loss's internal statistics.

  Each anchor's value is the mean over its own triplets; ``weights`` equal
  to each anchor's triplet count :math:`|P_a|\,|N_a|` give the paper's and
  pytorch-metric-learning's mean over all triplets of the batch. Memory is
  :math:`O(N^3)` (every triplet is formed). An anchor without a positive or
  a negative is left out of the mean.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one
      batch; normalised inside.
    labels: integer array ``embeddings.shape[:-1]``.
    histogram: float array ``(num_bins,)``, nonnegative, shared by every row;
      all 0 gives :math:`\Phi = 0` (loss 0).
    min_val: :math:`m < 0`, the low end of the bins (traceable).
    where: mask over the rows; a masked row is removed from the batch.
    weights: per-anchor weights; the mean is over anchors with a triplet.
    reduction: the loss contract (:func:`jaxobj.reduce_loss`).

  Returns:
    The reduced loss; per-anchor losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: bad shapes (both are named), ``min_val >= 0``.
    TypeError: integer embeddings or histogram, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj import objective as jo
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> y = jnp.array([0, 0, 1])
    >>> hist = jaxobj.dynamic_soft_margin_init(4)
    >>> hist = jaxobj.dynamic_soft_margin_update(hist, x, y)  # each step, first
    >>> loss = jaxobj.dynamic_soft_margin_loss(x, y, hist, reduction="none")
    >>> print(loss)  # Phi(-sqrt 2) = 0.4142 (bin 0) times -sqrt 2; row 2 has no positive
    [-0.5858 -0.5858  0.    ]
    >>> term = jo.term(jaxobj.dynamic_soft_margin_loss, "outputs", "batch.y", "batch.hist")
    >>> total, info = term.apply(outputs=x, batch={"y": y, "hist": hist})
    >>> print(round(float(total), 4))
    -0.5858

  References:
    Zhang and Rusinkiewicz, "Learning Local Descriptors with a CDF-Based
    Dynamic Soft Margin", ICCV 2019.
  """
  checks.check_range("min_val", min_val, high=0.0, high_inclusive=False)
  h = _check_histogram(histogram)
  num_bins = h.shape[0]
  x, keep, has_triplet, shape = _triplet_differences(embeddings, labels, where)
  h = jax.lax.stop_gradient(h.astype(x.dtype))
  total = jnp.sum(h)
  cdf = jnp.cumsum(h) / jnp.where(total == 0, 1.0, total)  # NaN in h stays NaN
  k = jnp.clip(
    jnp.floor(_bin_position(jax.lax.stop_gradient(x), min_val, num_bins)), 0, num_bins - 1
  )
  phi = cdf[k.astype(jnp.int32)]
  num = jnp.sum(keep, axis=(1, 2))
  total_a = jnp.sum(jnp.where(keep, phi * x, 0.0), axis=(1, 2))
  values = total_a / jnp.maximum(num, 1).astype(x.dtype)
  return lb.reduce_anchors(values, has_triplet, shape, weights, reduction)


# --------------------------------------------------------------------------
# Manifold loss.


def _manifold_inputs(embeddings, labels, proxies, where):
  x = checks.as_float(embeddings, "embeddings")
  y = checks.as_labels(labels, "labels")
  checks.check_label_shape("embeddings", x, "labels", y)
  p = checks.as_float(proxies, "proxies")
  if p.ndim != 2 or p.shape[-1] != x.shape[-1] or 0 in p.shape:
    raise ValueError(
      f"proxies must have shape (K, D) with D = embeddings.shape[-1] and K >= 1, got "
      f"proxies.shape={p.shape} and embeddings.shape={x.shape}. Draw them with "
      f"jaxobj.init_class_centers(key, K, {x.shape[-1]})."
    )
  shape = y.shape
  valid = jnp.ones(shape, bool) if where is None else checks.as_mask(where, shape)
  valid = jnp.broadcast_to(valid, shape).reshape(-1)
  x = masked_fill(where, x, shape, axis_extra=1).reshape(-1, x.shape[-1])
  y = masked_fill(where, y, shape, fill=0).reshape(-1)
  dtype = jnp.promote_types(x.dtype, p.dtype)
  return x.astype(dtype), y, p.astype(dtype), valid, shape


def _normalized_affinities(nodes, keep_node, temperature):
  r""":math:`\bar S = D^{-1/2} W D^{-1/2}` with :math:`W_{ij} = e^{\max(s_{ij}, 0)/\tau}`
  off the diagonal between kept nodes, computed in the log domain (no overflow
  for a small :math:`\tau`); a node without an edge gets an empty row and column."""
  z = _unit(nodes)
  t = jnp.maximum(gram(z, z), 0.0) / temperature
  n = nodes.shape[0]
  edge = keep_node[:, None] & keep_node[None, :] & ~jnp.eye(n, dtype=bool)
  t = jnp.where(edge, t, -jnp.inf)
  has = jnp.any(edge, axis=1)
  log_degree = jax.nn.logsumexp(jnp.where(has[:, None], t, 0.0), axis=1)
  half = jnp.where(has, 0.5 * log_degree, 0.0)
  return jnp.where(edge, jnp.exp(jnp.where(edge, t, 0.0) - half[:, None] - half[None, :]), 0.0)


def _violations(scores, y, margin):
  r"""``log(1 + sum_k exp(z_k))`` over the other proxies with :math:`z_k \ge 0`,
  :math:`z_k = s_k - s_y + \text{margin}`."""
  own = jnp.take_along_axis(scores, y[:, None], axis=1)
  z = scores - own + margin
  # `~(z < 0)`, not `z >= 0`: a NaN score must pass the gate and reach the value.
  gate = (jnp.arange(scores.shape[1]) != y[:, None]) & ~(z < 0)
  return lb.log1p_sum_exp(z, gate)


@register(_FAMILY, inputs=proxy_examples.PROXIES, couples_rows=True)
def manifold_loss(
  embeddings: ArrayLike,
  labels: ArrayLike,
  proxies: ArrayLike,
  *,
  alpha: float | ArrayLike = 0.8,
  margin: float | ArrayLike = 5e-4,
  lambda_int: float | ArrayLike = 1.0,
  lambda_c: float | ArrayLike = 1.0,
  temperature: float | ArrayLike = 0.5,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Manifold loss (Aziere & Todorovic 2019): N-pair losses on random-walk similarities to proxies.

  .. math::
     F = (1 - \alpha)(I - \alpha \bar S)^{-1},\qquad
     \ell_i = \lambda_{int}\, g\big(F_{i,\cdot}^{\,prox}\big)
       + \lambda_C\, g\big(\cos(F_i, F_{N + \cdot})\big),\qquad
     g(s) = \log\Big(1 + \sum_{k \ne y_i,\ z_k \ge 0} e^{z_k}\Big),\
     z_k = s_k - s_{y_i} + m

  The graph has the :math:`N` embeddings and the :math:`K` proxies as
  nodes, with affinities :math:`W_{ij} = e^{\max(\cos_{ij}, 0)/\tau}`
  (:math:`\tau` = ``temperature``, 0 on the diagonal) and
  :math:`\bar S = D^{-1/2} W D^{-1/2}`, :math:`D` the row sums.
  :math:`F` is the closed-form limit of a random walk with restart
  (:math:`\alpha` the share passed on at each step): the manifold
  similarities. The intrinsic term :math:`g(F_{i, N+k})` compares embedding
  :math:`i`'s similarities to the proxies, the context term the cosines
  between its row of :math:`F` and each proxy's row; :math:`y_i` is the
  proxy of row :math:`i` (its class, or the meta-class of the paper's
  random partition), and only proxies violating the margin :math:`m` enter
  the sum (as in pytorch-metric-learning's ``ManifoldLoss``, whose
  ``lambdaC`` is :math:`\lambda_C`; its ``lambdaC=inf`` is
  ``lambda_int=0, lambda_c=1``). The mean over rows is its value for the
  same proxy assignment (it draws a random one when given none: pass yours
  as ``labels``).

  **Numerics.** The inverse exists and is well conditioned by construction:
  :math:`W > 0` off the diagonal (the clamp and the exponential), so every
  node with a neighbour has a degree :math:`\ge` its neighbour count and
  :math:`\bar S` is symmetric with eigenvalues in :math:`[-1, 1]`;
  :math:`I - \alpha\bar S` is positive definite with eigenvalues in
  :math:`[1 - \alpha, 1 + \alpha]` (condition number at most 9 for
  :math:`\alpha = 0.8`). :math:`\bar S` is formed in the log domain,
  :math:`\exp(t_{ij} - \tfrac12 \log D_i - \tfrac12 \log D_j)`, so a small
  :math:`\tau` neither overflows :math:`W` nor underflows :math:`D`. A
  masked row is removed from the graph (no edges; its degree is taken as 1),
  which makes the matrix block diagonal: the others' :math:`F` is exactly
  that of the batch without it. One :math:`(N+K)^2` solve, computed in at
  least float32 (bf16 inputs are upcast). The rows' loss is coupled
  through the graph: declared ``couples_rows``.

  Args:
    embeddings: float array ``[..., D]``; leading axes are flattened into one batch.
    labels: integer proxy indices ``embeddings.shape[:-1]`` in ``[0, K)``;
      outside (and not masked) gives NaN.
    proxies: float array ``(K, D)`` (learnable; :func:`jaxobj.init_class_centers`).
    alpha: :math:`\alpha \in [0, 1)` (traceable).
    margin: :math:`m` (traceable).
    lambda_int: weight of the intrinsic term, :math:`\ge 0` (traceable).
    lambda_c: :math:`\lambda_C \ge 0`, weight of the context term (traceable).
    temperature: :math:`\tau > 0` of the affinities (traceable; 0.5 in the reference code).
    where: mask over the rows; a masked row is removed from the graph.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`), per row.

  Returns:
    The reduced loss; per-row losses (``labels.shape``) for ``"none"``.

  Raises:
    ValueError: bad label or proxy shapes (both shapes are named), a
      hyperparameter out of range.
    TypeError: integer embeddings or proxies, floating labels.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> x = jnp.array([[1.0, 0.1], [0.2, 1.0], [1.0, 0.9]])
    >>> loss = jaxobj.manifold_loss(x, jnp.array([0, 1, 1]), proxies, reduction="none")
    >>> print(loss)  # rows 0 and 1 are closest to their proxy; row 2 is not
    [0.     0.     1.3979]

  References:
    Aziere and Todorovic, "Ensemble Deep Manifold Similarity Learning using
    Hard Proxies", CVPR 2019.
  """
  checks.check_range("alpha", alpha, low=0.0, high=1.0, high_inclusive=False)
  checks.check_range("lambda_int", lambda_int, low=0.0)
  checks.check_range("lambda_c", lambda_c, low=0.0)
  checks.check_range("temperature", temperature, low=0.0, low_inclusive=False)
  x, y, p, valid, shape = _manifold_inputs(embeddings, labels, proxies, where)
  n, num_proxies = x.shape[0], p.shape[0]
  keep_node = jnp.concatenate([valid, jnp.ones(num_proxies, bool)])
  s_bar = _normalized_affinities(jnp.concatenate([x, p]), keep_node, temperature)
  eye = jnp.eye(n + num_proxies, dtype=x.dtype)
  f = (1.0 - alpha) * jnp.linalg.solve(eye - alpha * s_bar, eye)
  ok = inputs.in_range(y, num_proxies)
  y_safe = jnp.where(ok, y, 0)
  intrinsic = _violations(f[:n, n:], y_safe, margin)
  context = _violations(gram(normalize(f[:n]), normalize(f[n:])), y_safe, margin)
  values = jnp.where(ok, lambda_int * intrinsic + lambda_c * context, jnp.nan)
  return reduce_loss(values.reshape(shape), where=where, weights=weights, reduction=reduction)
