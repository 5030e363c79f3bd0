"""Trace-time checks: every bad input fails here, with a message that names the
argument, shows what was received and says how to fix it."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

REDUCTIONS = ("mean", "sum", "none", "sum_and_count")


def _shape(x: ArrayLike) -> tuple[int, ...]:
  return tuple(np.shape(x))


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
  """A string option (a static choice) must be one of ``choices``, which the error lists."""
  if not isinstance(value, str) or value not in choices:
    raise ValueError(
      f"{name}={value!r} is not supported; choose one of {', '.join(repr(c) for c in choices)}."
    )


def check_reduction(reduction: str) -> None:
  check_choice("reduction", reduction, REDUCTIONS)


def compute_dtype(dtype: DTypeLike) -> jnp.dtype:
  """float32 for bf16/f16/f32 inputs (losses are computed in f32); f64 stays f64."""
  return jnp.promote_types(dtype, jnp.float32)


def as_float(x: ArrayLike, name: str) -> jax.Array:
  """A floating input (predictions, logits, ...) upcast to at least float32.

  Integer or boolean predictions are a bug (often labels passed in the wrong
  slot), so they raise instead of being cast.
  """
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
      f"{name} must be a floating-point array, got dtype {x.dtype} with "
      f"shape {x.shape}. Integer {name} usually means labels were passed in "
      f"its place; if the values are right, cast with {name}.astype(jnp.float32)."
    )
  return x.astype(compute_dtype(x.dtype))


def as_target(x: ArrayLike, name: str, like: jax.Array) -> jax.Array:
  """A real-valued target: integer and boolean targets (counts, 0/1 labels) are cast."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise TypeError(f"{name} must be real, got dtype {x.dtype}.")
  if jnp.issubdtype(x.dtype, jnp.floating):
    return x.astype(jnp.promote_types(compute_dtype(x.dtype), like.dtype))
  return x.astype(like.dtype)


def as_labels(x: ArrayLike, name: str) -> jax.Array:
  """Integer class labels."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise TypeError(
      f"{name} must be integer class indices, got dtype {x.dtype} with shape "
      f"{x.shape}. For one-hot or probability labels use the loss without "
      f"'_with_integer_labels'; otherwise cast with {name}.astype(jnp.int32)."
    )
  return x


def check_same_shape(name_a: str, a: ArrayLike, name_b: str, b: ArrayLike) -> None:
  """Paired inputs must agree exactly: no silent (N, 1)-vs-(N,) broadcast."""
  sa, sb = _shape(a), _shape(b)
  if sa != sb:
    raise ValueError(
      f"{name_a} and {name_b} must have the same shape, got {name_a}.shape={sa} "
      f"and {name_b}.shape={sb}. jaxobj never broadcasts them silently; "
      f"{_fix_hint(name_a, sa, name_b, sb)}"
    )


def check_label_shape(
  logits_name: str, logits: ArrayLike, labels_name: str, labels: ArrayLike
) -> None:
  """Integer labels index the last axis of the logits: labels.shape == logits.shape[:-1]."""
  sl, sy = _shape(logits), _shape(labels)
  if len(sl) < 1 or sy != sl[:-1]:
    raise ValueError(
      f"{labels_name}.shape must equal {logits_name}.shape[:-1] (one class index "
      f"per row of {logits_name}), got {logits_name}.shape={sl} and "
      f"{labels_name}.shape={sy}. {_fix_hint(labels_name, sy, '', sl[:-1])}"
    )


def _fix_hint(name_a, sa, name_b, sb) -> str:
  if len(sa) == len(sb) + 1 and sa[-1] == 1 and sa[:-1] == sb:
    return f"drop the trailing axis with {name_a}[..., 0] or {name_a}.squeeze(-1)."
  if len(sb) == len(sa) + 1 and sb[-1] == 1 and sb[:-1] == sa and name_b:
    return f"drop the trailing axis with {name_b}[..., 0] or {name_b}.squeeze(-1)."
  return "reshape or broadcast explicitly (jnp.broadcast_to) so the shapes match."


def check_broadcastable(
  name: str,
  x: ArrayLike,
  loss_shape: tuple[int, ...],
  *,
  to: str = "the per-element loss shape",
  scalar: bool = True,
  hint: str = "",
) -> None:
  """A mask, weights or per-entry array must broadcast to ``loss_shape`` without growing it.

  The one broadcast rule of jaxobj: same rank (or, with ``scalar``, a scalar),
  each axis either equal or 1. NumPy's right-aligned broadcasting would
  silently pair a (B,) mask with the last axis of a (B, T) loss. ``to`` names
  the shape in the message; ``hint``, when given, replaces the suggested fix.
  """
  sx = _shape(x)
  ok = (scalar and sx == ()) or (
    len(sx) == len(loss_shape) and all(a in (1, b) for a, b in zip(sx, loss_shape))
  )
  if not ok:
    if not hint and len(sx) < len(loss_shape) and loss_shape[: len(sx)] == sx:
      extra = len(loss_shape) - len(sx)
      hint = f" Add the missing trailing axes, e.g. {name}[{'...' + ', None' * extra}]."
    raise ValueError(
      f"{name}.shape={sx} does not broadcast to {to} {tuple(loss_shape)}: it must "
      f"{'be a scalar or ' if scalar else ''}have the same rank with each axis "
      f"equal or 1.{hint}"
    )


def as_mask(
  where: ArrayLike,
  loss_shape: tuple[int, ...],
  *,
  name: str = "where",
  to: str = "the per-element loss shape",
  scalar: bool = True,
  hint: str = "",
) -> jax.Array:
  """A boolean mask (``name``) checked against ``loss_shape`` by the broadcast rule above."""
  mask = jnp.asarray(where)
  if mask.dtype != jnp.bool_:
    raise TypeError(
      f"{name} must be a boolean mask, got dtype {mask.dtype}. Build it with a "
      f"comparison (e.g. labels != ignore) or cast with {name}.astype(bool); "
      f"real-valued per-element factors belong in weights."
    )
  check_broadcastable(name, mask, loss_shape, to=to, scalar=scalar, hint=hint)
  return mask


def is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _out_of_range(xp, value, low, high, low_inclusive, high_inclusive):
  v = xp.asarray(value)
  bad = xp.zeros(v.shape, bool)
  if low is not None:
    bad |= (v < low) if low_inclusive else (v <= low)
  if high is not None:
    bad |= (v > high) if high_inclusive else (v >= high)
  if xp.issubdtype(v.dtype, xp.floating):
    bad |= xp.isnan(v)
  return bad


def check_range(
  name: str, value, *, low=None, high=None, low_inclusive=True, high_inclusive=True
) -> None:
  """Validate a hyperparameter when it is a concrete value.

  Traced hyperparameters (under vmap, grad or jit) cannot be inspected at trace
  time and are taken as given (inside an eager call's compiled dispatch the
  check is deferred instead: see :class:`DeferredChecks`).
  """
  if value is None:
    return
  if not is_concrete(value):
    defer(lambda: _out_of_range(jnp, value, low, high, low_inclusive, high_inclusive).any())
    return
  if _out_of_range(np, value, low, high, low_inclusive, high_inclusive).any():
    lo = "" if low is None else f"{low} {'<=' if low_inclusive else '<'} "
    hi = "" if high is None else f" {'<=' if high_inclusive else '<'} {high}"
    raise ValueError(f"{name} must satisfy {lo}{name}{hi}, got {name}={value!r}.")


# --------------------------------------------------------------------------
# Argument checks that the registry runs on every call of a registered loss
# (see ``jaxobj.registry.register``): cheap, and silent for traced values.

INT_RANGE = (-(2**31), 2**31 - 1)  # integer hyperparameters meet int32 labels and axes


class ArgumentTypeError(TypeError, ValueError):
  """A keyword argument of the wrong type: a ``TypeError`` that is also a
  ``ValueError``, as the losses' own checks raise ``ValueError`` for bad
  hyperparameters of either kind."""


def _show(value) -> str:
  text = repr(value)
  return text if len(text) <= 60 else text[:57] + "..."


def _where(loss: str) -> str:
  return f"{loss}: " if loss else ""


def check_real(name: str, value: Any, *, loss: str = "", limits: tuple = ()) -> None:
  """A real hyperparameter: a number or a real array; NaN and +-inf are refused
  when concrete, except the values in ``limits`` (limits the loss defines)."""
  t = type(value)
  if t is float or t is int:  # the common case, kept cheap
    try:
      if math.isfinite(value) or value in limits:
        return
    except OverflowError:  # an int too large for a float
      pass
    _raise_nonfinite(name, value, loss, limits)
  if isinstance(value, jax.core.Tracer):
    return
  if isinstance(value, (tuple, list)):  # e.g. several bandwidths, possibly traced
    for v in value:
      check_real(name, v, loss=loss, limits=limits)
    return
  if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
    raise ArgumentTypeError(
      f"{_where(loss)}{name} must be a real number or a real array, got {name}={_show(value)} "
      f"of type {type(value).__name__}. Pass a number (strings are not parsed), e.g. "
      f"{name}=1.0."
    )
  try:
    v = np.asarray(value)
  except Exception:  # noqa: BLE001 (anything np.asarray refuses is not a number)
    v = np.asarray(None)
  if v.dtype.kind not in "fiu":
    raise ArgumentTypeError(
      f"{_where(loss)}{name} must be a real number or a real array, got {name}={_show(value)} "
      f"of type {type(value).__name__}" + (f" (dtype {v.dtype})" if v.dtype != object else "") + "."
    )
  if v.dtype.kind == "f":
    bad = ~np.isfinite(v)
    if bad.any():
      if limits:
        bad &= ~np.isin(v, np.asarray(limits, dtype=v.dtype))
      if bad.any():
        _raise_nonfinite(name, value, loss, limits)


def _raise_nonfinite(name, value, loss, limits) -> None:
  allowed = " or ".join(repr(float(x)) for x in limits)
  extra = f" (or {allowed}, a limit {loss or 'the loss'} defines)" if limits else ""
  raise ValueError(
    f"{_where(loss)}{name} must be finite{extra}, got {name}={_show(value)}. A NaN or "
    f"infinite hyperparameter gives a NaN or meaningless loss; pass a finite value."
  )


def check_bool(name: str, value: Any, *, loss: str = "") -> None:
  """A switch: True or False, or a boolean array where the loss traces it (the
  string "false" is truthy, so no string or number passes)."""
  if value is True or value is False or isinstance(value, np.bool_):
    return
  if isinstance(value, (jax.Array, np.ndarray)) and value.dtype == np.bool_ and np.ndim(value) == 0:
    return
  raise ArgumentTypeError(
    f"{_where(loss)}{name} must be True or False, got {name}={_show(value)} of type "
    f"{type(value).__name__}. Strings and numbers are not read as switches "
    f'("false" would count as True).'
  )


def check_int(name: str, value: Any, *, loss: str = "", arrays: bool = False) -> None:
  """An integer hyperparameter: a Python or NumPy int in int32 range; with
  ``arrays``, also a concrete integer array. Traced integers are taken as given."""
  if type(value) is int or (isinstance(value, np.integer) and not isinstance(value, bool)):
    if INT_RANGE[0] <= value <= INT_RANGE[1]:
      return
    raise ValueError(
      f"{_where(loss)}{name}={_show(value)} is out of range: {name} must lie in "
      f"[{INT_RANGE[0]}, {INT_RANGE[1]}] (int32)."
    )
  if isinstance(value, jax.core.Tracer) and jnp.issubdtype(value.dtype, jnp.integer):
    return  # traced: the loss decides whether it can be
  if arrays and not isinstance(value, (bool, str, bytes, float)) and hasattr(value, "dtype"):
    if jnp.issubdtype(value.dtype, jnp.integer):
      v = np.asarray(value)
      if v.size == 0 or (v.min() >= INT_RANGE[0] and v.max() <= INT_RANGE[1]):
        return
      raise ValueError(
        f"{_where(loss)}{name} is out of range: {name} must lie in "
        f"[{INT_RANGE[0]}, {INT_RANGE[1]}] (int32), got {name}={_show(value)}."
      )
  what = "an int or an integer array" if arrays else "a Python int"
  raise ArgumentTypeError(
    f"{_where(loss)}{name} must be {what}, got {name}={_show(value)} of type "
    f"{type(value).__name__}."
    + (f" Use {name}={int(value)}." if isinstance(value, float) and value.is_integer() else "")
  )


def check_axis(name: str, value: Any, *, loss: str = "", tuples: bool = False) -> None:
  """A static axis: an int, or (where the loss supports it) a tuple of distinct ints."""
  if type(value) is int:
    return
  if isinstance(value, tuple) and tuples:
    if value and all(type(a) is int or isinstance(a, np.integer) for a in value):
      if len(set(int(a) for a in value)) != len(value):
        raise ValueError(
          f"{_where(loss)}{name}={value!r} repeats an axis; list each class axis once."
        )
      return
  elif isinstance(value, np.integer) and not isinstance(value, bool):
    return
  elif (
    not tuples
    and isinstance(value, (tuple, list))
    and value
    and all(type(a) is int or isinstance(a, np.integer) for a in value)
  ):
    raise ValueError(
      f"{_where(loss)}{name}={_show(value)}: this loss takes one class axis (an int). "
      f"Merge the class axes into one first (jnp.moveaxis, then reshape) or pick a loss "
      f"that accepts a tuple of class axes (softmax_cross_entropy and its variants)."
    )
  allowed = "an int or a non-empty tuple of ints" if tuples else "an int"
  raise ArgumentTypeError(
    f"{_where(loss)}{name} must be {allowed} (a static axis), got {name}={_show(value)} of "
    f"type {type(value).__name__}."
  )


def feature_axis_last(
  loss: str, axis: int, names: tuple[str, str], a: ArrayLike, b: ArrayLike
) -> tuple[ArrayLike, ArrayLike]:
  """Two same-shape inputs with their feature axis ``axis`` moved last."""
  check_axis("axis", axis, loss=loss)
  if axis == -1:
    return a, b
  rank = np.ndim(a)
  if not -rank <= axis < rank:
    raise ValueError(
      f"{loss}: axis={axis} is out of range for {names[0]} of shape {np.shape(a)}; "
      f"the feature axis must be in [{-rank}, {rank})."
    )
  check_same_shape(names[0], a, names[1], b)
  return jnp.moveaxis(jnp.asarray(a), axis, -1), jnp.moveaxis(jnp.asarray(b), axis, -1)


def check_classes(name: str, value: Any, *, loss: str = "") -> None:
  """A string choice (validated by the loss) or a sequence of class indices."""
  if isinstance(value, str):
    return
  if (
    hasattr(value, "__iter__")
    and np.ndim(value) <= 1
    and all(
      isinstance(c, (int, np.integer))
      and not isinstance(c, bool)
      or getattr(c, "dtype", None) is not None
      and jnp.issubdtype(c.dtype, jnp.integer)
      for c in value
    )
  ):
    return
  raise ArgumentTypeError(
    f"{_where(loss)}{name} must be a string choice or a sequence of class indices "
    f"(ints), got {name}={_show(value)} of type {type(value).__name__}."
  )


def check_labels_in_vocab(name: str, y: Any, mask: Any, vocab: int, fix: str) -> None:
  """Raises for concrete integer ``y`` outside ``[0, vocab)`` where ``mask`` is
  True (everywhere when it is None); traced values are not checked (inside an
  eager call's compiled dispatch the check is deferred: :class:`DeferredChecks`)."""
  if isinstance(y, jax.core.Tracer) or isinstance(mask, jax.core.Tracer):
    defer(lambda: _outside_vocab(jnp, y, mask, vocab).any())
    return
  y = np.asarray(y)
  bad = _outside_vocab(np, y, mask, vocab)
  if bad.any():
    values = sorted(set(y[bad].tolist()))[:5]
    raise ValueError(
      f"{name} must lie in [0, V) = [0, {vocab}) wherever they count, got {values}; {fix}"
    )


def _outside_vocab(xp, y, mask, vocab):
  y = xp.asarray(y)
  bad = (y < 0) | (y >= vocab)
  return bad if mask is None else bad & xp.asarray(mask)


# --------------------------------------------------------------------------
# Value checks of an eager call dispatched as one compiled call.
#
# The registry runs an eager call of a loss as one jitted call (see
# ``jaxobj.registry``): its data arrive traced, so the checks above that read
# concrete values (labels inside the vocabulary, ranges) would be skipped.
# Inside that dispatch they record a boolean "bad" flag instead; the registry
# reads it after the call and, when set, runs the loss op by op, where the
# check raises its usual error.

_DEFERRED: contextvars.ContextVar[DeferredChecks | None] = contextvars.ContextVar(
  "jaxobj_deferred_checks", default=None
)


class DeferredChecks:
  """Collects the value checks on ``traced``'s trace while the body of one
  compiled dispatch is traced; :meth:`flag` is True where one would raise.

  Only flags of that trace are kept: a check on the tracers of a
  transformation inside the loss (a ``vmap``, a ``scan``) cannot leave it,
  and is skipped as it is under any ``jax.jit``.
  """

  def __init__(self, traced: Any) -> None:
    # Tracers of one trace share its trace object (jax's stackless tracing).
    self.trace = getattr(traced, "_trace", None)
    self.flags: list[jax.Array] = []
    self._token: contextvars.Token | None = None

  def __enter__(self) -> DeferredChecks:
    self._token = _DEFERRED.set(self)
    return self

  def __exit__(self, *exc: object) -> None:
    assert self._token is not None
    _DEFERRED.reset(self._token)

  def flag(self) -> jax.Array | None:
    """Whether any recorded check fails (None when none was recorded)."""
    if not self.flags:
      return None
    return jnp.any(jnp.stack([jnp.asarray(f, bool) for f in self.flags]))


def defer(bad: Callable[[], Any]) -> None:
  """Records ``bad()`` (a traced boolean) with the compiled dispatch being traced, if any."""
  collector = _DEFERRED.get()
  if collector is None or collector.trace is None:
    return
  flag = bad()
  if getattr(flag, "_trace", None) is collector.trace:
    collector.flags.append(flag)
