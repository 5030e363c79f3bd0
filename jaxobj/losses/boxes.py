r"""Bounding-box regression losses: overlap-based losses between axis-aligned boxes.

Boxes are ``(..., 4)`` arrays of corners ``(x1, y1, x2, y2)`` (2-D) or
``(..., 6)`` ``(x1, y1, z1, x2, y2, z2)`` (3-D), with ``x1 <= x2`` and so on;
the per-element loss is one value per box pair (the leading axes), on which
``where`` and ``weights`` act.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks, numerics
from jaxobj._src.examples import boxes as examples
from jaxobj._src.reduce import Reduced, masked_fill, reduce_loss
from jaxobj.registry import register

__all__ = ["box_giou_loss"]


@register("regression", inputs=examples.BOX_PAIRS)
def box_giou_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  *,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""Generalized IoU loss between axis-aligned boxes: one minus GIoU.

  .. math::
     \ell = 1 - \mathrm{GIoU} = 1 - \frac{|A\cap B|}{|A\cup B|}
       + \frac{|C| - |A\cup B|}{|C|}

  with :math:`A` the predicted box, :math:`B` the target box and :math:`C`
  the smallest box enclosing both (areas in 2-D, volumes in 3-D). In [0, 2]:
  0 for identical boxes; unlike :math:`1 - \mathrm{IoU}` it keeps a gradient
  when the boxes do not overlap (the enclosing box shrinks as they approach).
  A degenerate pair (zero union or zero enclosing box) takes IoU 0 and no
  penalty term, never NaN.

  Args:
    predictions: ``(..., 4)`` boxes ``(x1, y1, x2, y2)`` or ``(..., 6)``
      ``(x1, y1, z1, x2, y2, z2)``, float.
    targets: boxes of the same shape.
    where, weights, reduction: the loss contract over box pairs.

  Returns:
    The reduced loss; one value per box pair for ``reduction="none"``.

  Raises:
    ValueError: shapes differ, or the last axis is not 4 or 6.
    TypeError: integer ``predictions``.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> target = jnp.array([[0.0, 0.0, 2.0, 2.0]])
    >>> print(jaxobj.box_giou_loss(target, target))
    0.0
    >>> half = jnp.array([[1.0, 0.0, 3.0, 2.0]])  # IoU 1/3, enclosing box = union
    >>> print(round(float(jaxobj.box_giou_loss(half, target)), 4))
    0.6667
    >>> apart = jnp.array([[3.0, 0.0, 5.0, 2.0]])  # no overlap: 1 + 2/10
    >>> print(round(float(jaxobj.box_giou_loss(apart, target)), 4))
    1.2

  References:
    Rezatofighi et al., "Generalized Intersection over Union: A Metric and
    A Loss for Bounding Box Regression", CVPR 2019. MONAI
    ``monai.losses.BoxGIoULoss``.
  """
  a = checks.as_float(predictions, "predictions")
  checks.check_same_shape("predictions", a, "targets", targets)
  b = checks.as_target(targets, "targets", a).astype(a.dtype)
  if a.ndim < 1 or a.shape[-1] not in (4, 6):
    raise ValueError(
      f"boxes must be (..., 4) corners (x1, y1, x2, y2) or (..., 6) (x1, y1, z1, x2, y2, z2), "
      f"got predictions.shape={a.shape}."
    )
  shape = a.shape[:-1]
  a = masked_fill(where, a, shape, axis_extra=1)
  b = masked_fill(where, b, shape, axis_extra=1)
  d = a.shape[-1] // 2
  lo_a, hi_a, lo_b, hi_b = a[..., :d], a[..., d:], b[..., :d], b[..., d:]
  size_a = jnp.prod(hi_a - lo_a, axis=-1)
  size_b = jnp.prod(hi_b - lo_b, axis=-1)
  overlap = jnp.clip(jnp.minimum(hi_a, hi_b) - jnp.maximum(lo_a, lo_b), 0.0)
  inter = jnp.prod(overlap, axis=-1)
  union = size_a + size_b - inter
  hull = jnp.prod(jnp.maximum(hi_a, hi_b) - jnp.minimum(lo_a, lo_b), axis=-1)
  values = 1.0 - numerics.safe_ratio(inter, union) + numerics.safe_ratio(hull - union, hull)
  return reduce_loss(values, where=where, weights=weights, reduction=reduction)
