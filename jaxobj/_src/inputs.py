"""Input preparation shared by the families that read logits and labels.

Binary (sigmoid) inputs, probability labels over a class axis (softmax) and
integer class labels: checked, upcast, with the class axis moved last and
masked rows filled with harmless values (the first half of the "double
where"). Classification, calibration, segmentation and sequence losses all
build on these, so a label is read the same way everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src.reduce import masked_fill

Axis = int | tuple[int, ...]

# The default ``ignore_index`` of every loss that reads integer labels:
# PyTorch's and Hugging Face's padding label, the value data pipelines already
# write. Labels outside [0, K) give NaN, so this default changes no finite
# result: a -100 label that would have been NaN is skipped instead. Pass
# ``ignore_index=None`` to skip nothing.
IGNORE_INDEX = -100


def classes_last(x: jax.Array, axis: Axis, name: str = "logits") -> jax.Array:
  """``x`` with the class axis last; a tuple of class axes (as in optax) is
  moved to the end in the order given and flattened into one, so an integer
  label is a flat (C-order) index into ``x``'s slice over those axes."""
  if x.ndim == 0:
    raise ValueError(
      f"{name} must have a class axis, got a scalar (shape {x.shape}); pass an "
      f"array of shape [..., K]."
    )
  if axis == -1:
    return x
  if not isinstance(axis, tuple):
    return jnp.moveaxis(x, axis, -1)
  n = len(axis)
  if len({a % x.ndim if -x.ndim <= a < x.ndim else a for a in axis}) != n:
    raise ValueError(
      f"axis={axis} names an axis twice for {name} of rank {x.ndim}; list each class axis once."
    )
  x = jnp.moveaxis(x, axis, tuple(range(-n, 0)))
  return x.reshape(x.shape[: x.ndim - n] + (-1,))


def binary_inputs(
  logits: ArrayLike,
  labels: ArrayLike,
  where: ArrayLike | None,
  names: tuple[str, str] = ("logits", "labels"),
) -> tuple[jax.Array, jax.Array]:
  """Same-shape logits (or scores) and real labels, masked entries zeroed."""
  x = checks.as_float(logits, names[0])
  checks.check_same_shape(names[0], x, names[1], labels)
  y = checks.as_target(labels, names[1], x)
  return masked_fill(where, x, x.shape), masked_fill(where, y, x.shape)


def softmax_inputs(
  logits: ArrayLike, labels: ArrayLike, axis: Axis, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, tuple[int, ...]]:
  """Logits and probability labels with the class axis moved last, and the loss shape."""
  x = checks.as_float(logits, "logits")
  checks.check_same_shape("logits", x, "labels", labels)
  y = checks.as_target(labels, "labels", x)
  x, y = classes_last(x, axis), classes_last(y, axis)
  shape = x.shape[:-1]
  return (
    masked_fill(where, x, shape, axis_extra=1),
    masked_fill(where, y, shape, axis_extra=1),
    shape,
  )


def integer_inputs(
  logits: ArrayLike,
  labels: ArrayLike,
  axis: Axis,
  where: ArrayLike | None,
  ignore_index: ArrayLike | None = None,
  names: tuple[str, str] = ("logits", "labels"),
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """Logits with the class axis last, integer labels and the combined mask.

  ``ignore_index`` entries join the mask; masked labels are set to class 0 so
  the gather stays in range. Unmasked labels outside ``[0, K)`` raise when
  the labels (and the mask) are concrete; under ``jax.jit`` they gather NaN:
  an out-of-range label never yields a plausible-looking number.
  """
  x = classes_last(checks.as_float(logits, names[0]), axis, names[0])
  y = checks.as_labels(labels, names[1])
  checks.check_label_shape(names[0], x, names[1], y)
  shape = y.shape
  mask = None if where is None else checks.as_mask(where, shape)
  if ignore_index is not None:
    keep = y != ignore_index
    mask = keep if mask is None else jnp.logical_and(mask, keep)
  checks.check_labels_in_vocab(
    names[1],
    labels,
    mask,
    x.shape[-1],
    "mask such rows with where= (or give them ignore_index); the classes are "
    f"the {names[0]}' class axis.",
  )
  x = masked_fill(mask, x, shape, axis_extra=1)
  y = masked_fill(mask, y, shape, fill=0)
  return x, y, mask


def in_range(labels: jax.Array, num_classes: int) -> jax.Array:
  """Which labels are valid class indices, in ``[0, num_classes)``."""
  return (labels >= 0) & (labels < num_classes)


def take(x: jax.Array, labels: jax.Array) -> jax.Array:
  """``x[..., labels]`` with NaN for labels outside ``[0, K)``.

  The range is checked explicitly: gathers (even with ``mode="fill"``) wrap
  negative indices, so a label of -1 would silently read the last class.
  """
  ok = in_range(labels, x.shape[-1])
  got = jnp.take_along_axis(x, jnp.where(ok, labels, 0)[..., None], axis=-1)[..., 0]
  return jnp.where(ok, got, jnp.nan)


def finite_classes(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mask of classes that are possible (logit > -inf) and their count per row."""
  finite = x > -jnp.inf
  return finite, jnp.maximum(jnp.sum(finite, axis=-1), 1)


def class_weights(weights: ArrayLike | None, num_classes: int, of: str = "") -> jax.Array | None:
  """Per-class factors, shape ``(num_classes,)``; ``of`` says which classes they index."""
  if weights is None:
    return None
  w = checks.as_float(weights, "class_weights")
  if w.shape != (num_classes,):
    raise ValueError(
      f"class_weights must have shape ({num_classes},) (one weight per "
      f"class{of}), got class_weights.shape={w.shape}."
    )
  return w


def safe_logp(y: jax.Array, logp: jax.Array) -> jax.Array:
  """``logp`` (a log-probability, or a ``softplus`` term of the binary losses)
  with 0 where it is infinite and the label ``y`` is 0, so ``y * logp`` is
  exactly 0 there (with a finite gradient).

  The guard is on ``logp``, not on ``y > 0``: where ``logp`` is finite the
  product keeps its gradient w.r.t. ``y`` even at ``y == 0``, which a traced
  ``label_smoothing`` of 0 needs (d target / d alpha is not 0 there).
  """
  return jnp.where(jnp.isinf(logp) & (y == 0), 0.0, logp)
