r"""Schedules: functions of the training step that weight terms or set hyperparameters.

A schedule is any callable ``step -> value`` (optax schedules qualify). The ones
here are small frozen dataclasses so that an objective's ``repr`` and its config
show them plainly, and they are jit-friendly: ``step`` may be a traced integer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "Schedule",
  "constant",
  "cosine_warmup",
  "cyclical",
  "linear_warmup",
  "piecewise",
]


class Schedule:
  """Base class of jaxobj's schedules: ``schedule(step) -> float32 scalar``."""

  def __call__(self, step) -> jax.Array:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
  value: float

  def __call__(self, step):
    del step
    return jnp.asarray(self.value, jnp.float32)

  def __repr__(self):
    return f"constant({self.value:g})"


@dataclasses.dataclass(frozen=True)
class Warmup(Schedule):
  """A ramp from ``start`` to ``end`` over ``steps`` steps after ``begin``,
  linear or along a half cosine."""

  start: float
  end: float
  steps: int
  begin: int = 0
  shape: str = "linear"

  def __call__(self, step):
    step = jnp.asarray(step, jnp.float32)
    t = jnp.clip((step - self.begin) / max(self.steps, 1), 0.0, 1.0)
    if self.shape == "cosine":
      t = 0.5 * (1.0 - jnp.cos(math.pi * t))
    return self.start + (self.end - self.start) * t

  def __repr__(self):
    return (
      f"{self.shape}_warmup({self.start:g}→{self.end:g}, steps={self.steps}, begin={self.begin})"
    )


@dataclasses.dataclass(frozen=True)
class Cyclical(Schedule):
  period: int
  ramp: float = 0.5
  low: float = 0.0
  high: float = 1.0

  def __call__(self, step):
    step = jnp.asarray(step, jnp.float32)
    phase = jnp.mod(step, self.period) / self.period
    t = jnp.clip(phase / self.ramp, 0.0, 1.0)
    return self.low + (self.high - self.low) * t

  def __repr__(self):
    return f"cyclical(period={self.period}, ramp={self.ramp:g}, {self.low:g}→{self.high:g})"


@dataclasses.dataclass(frozen=True)
class Piecewise(Schedule):
  boundaries: tuple[int, ...]
  values: tuple[float, ...]
  interpolate: str = "constant"

  def __call__(self, step):
    step = jnp.asarray(step, jnp.float32)
    values = jnp.asarray(self.values, jnp.float32)
    bounds = jnp.asarray(self.boundaries, jnp.float32)
    if self.interpolate == "linear":
      return jnp.interp(step, bounds, values)
    return values[jnp.searchsorted(bounds, step, side="right")]

  def __repr__(self):
    pairs = ", ".join(f"{b}:{v:g}" for b, v in zip(self.boundaries, self.values))
    return f"piecewise({pairs}, interpolate={self.interpolate!r})"


def constant(value: float) -> Schedule:
  """The same value at every step (so a constant weight reads like a schedule)."""
  return Constant(float(value))


def linear_warmup(start: float, end: float, steps: int, *, begin: int = 0) -> Schedule:
  r"""Linear ramp from ``start`` to ``end`` over ``steps`` steps after ``begin``.

  .. math:: v(t) = v_0 + (v_1 - v_0)\,\mathrm{clip}\big((t - t_0)/T, 0, 1\big)

  Example:
    >>> from jaxobj.objective import linear_warmup
    >>> s = linear_warmup(0.0, 1.0, steps=10)
    >>> print(s(0), s(5), s(20))
    0.0 0.5 1.0
  """
  _check_steps("linear_warmup", steps, begin)
  return Warmup(float(start), float(end), int(steps), int(begin), "linear")


def cosine_warmup(start: float, end: float, steps: int, *, begin: int = 0) -> Schedule:
  r"""Half-cosine ramp from ``start`` to ``end`` over ``steps`` steps after ``begin``.

  .. math:: v(t) = v_0 + (v_1 - v_0)\,\tfrac12\big(1 - \cos(\pi p)\big),
     \quad p = \mathrm{clip}\big((t - t_0)/T, 0, 1\big)

  Example:
    >>> from jaxobj.objective import cosine_warmup
    >>> s = cosine_warmup(0.0, 2.0, steps=10)
    >>> print(s(0), s(5), s(10))
    0.0 1.0 2.0
  """
  _check_steps("cosine_warmup", steps, begin)
  return Warmup(float(start), float(end), int(steps), int(begin), "cosine")


def cyclical(period: int, *, ramp: float = 0.5, low: float = 0.0, high: float = 1.0) -> Schedule:
  r"""Cyclical annealing: each period ramps linearly from ``low`` to ``high`` over
  the first ``ramp`` fraction, then holds ``high``.

  This is the cyclical KL-annealing schedule for VAEs (Fu et al., 2019), which
  lets the decoder learn to use the latent code before the KL term bites, and
  repeats so that later cycles can refine it.

  .. math:: v(t) = v_{lo} + (v_{hi} - v_{lo})\,\min\big(1, \tfrac{(t \bmod P)/P}{R}\big)

  Example:
    >>> from jaxobj.objective import cyclical
    >>> s = cyclical(period=10, ramp=0.5)
    >>> print(s(0), s(2), s(5), s(9), s(10))
    0.0 0.4 1.0 1.0 0.0

  References:
    Fu et al., "Cyclical Annealing Schedule: A Simple Approach to Mitigating KL
    Vanishing", NAACL 2019.
  """
  if _integer("cyclical", "period", period) < 1:
    raise ValueError(f"cyclical: period={period!r} must be a positive number of steps.")
  if not 0.0 < float(ramp) <= 1.0:
    raise ValueError(
      f"cyclical: ramp={ramp!r} is the rising fraction of a period; choose a value in (0, 1]."
    )
  return Cyclical(int(period), float(ramp), float(low), float(high))


def piecewise(
  boundaries: Sequence[int], values: Sequence[float], *, interpolate: str = "constant"
) -> Schedule:
  """Piecewise schedule.

  With ``interpolate="constant"``, ``values[i]`` holds from ``boundaries[i-1]``
  up to (not including) ``boundaries[i]``, so ``values`` has one more entry than
  ``boundaries``. With ``"linear"``, ``values[i]`` is the value *at*
  ``boundaries[i]`` (same length), linear in between and constant outside.

  Example:
    >>> from jaxobj.objective import piecewise
    >>> s = piecewise([10, 20], [1.0, 0.5, 0.1])
    >>> print(s(0), s(10), s(25))
    1.0 0.5 0.1
    >>> r = piecewise([0, 10], [0.0, 1.0], interpolate="linear")
    >>> print(r(5))
    0.5
  """
  boundaries = tuple(_integer("piecewise", "boundaries", b) for b in boundaries)
  values = tuple(float(v) for v in values)
  if list(boundaries) != sorted(boundaries):
    raise ValueError(f"piecewise: boundaries={boundaries} must be increasing.")
  expected = {"constant": len(boundaries) + 1, "linear": len(boundaries)}
  if interpolate not in expected:
    raise ValueError(f"piecewise: interpolate={interpolate!r}; choose 'constant' or 'linear'.")
  if len(values) != expected[interpolate] or not values:
    raise ValueError(
      f"piecewise: {len(boundaries)} boundaries need {expected[interpolate]} values "
      f"with interpolate={interpolate!r}, got {len(values)}."
    )
  return Piecewise(boundaries, values, interpolate)


def _integer(name, arg, value):
  """A whole number of steps: 1.9 steps is refused rather than truncated."""
  if isinstance(value, (bool, np.bool_)) or not (
    isinstance(value, (int, np.integer))
    or (isinstance(value, (float, np.floating)) and float(value).is_integer())
  ):
    raise ValueError(f"{name}: {arg}={value!r} must be a whole number of steps.")
  return int(value)


def _check_steps(name, steps, begin):
  steps, begin = _integer(name, "steps", steps), _integer(name, "begin", begin)
  if steps < 1 or begin < 0:
    raise ValueError(f"{name}: steps={steps!r} must be positive and begin={begin!r} non-negative.")
