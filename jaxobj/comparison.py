r"""Losses side by side in Python: values, gradients and fits, one compile per loss.

:func:`compare` evaluates losses along one axis with their gradients:

- ``axis="residual"``: regression losses at ``predictions = r``,
  ``targets = 0``; the gradient is the pull of one residual on the fit;
- ``axis="p_t"``: binary losses at ``logits = logit(p_t)``, ``labels = 1``,
  as the probability of the true class goes from wrong to right; the
  gradient is taken with respect to the logit;
- ``axis="logit"``: the same binary losses against the logit itself.

A ``grid`` of hyperparameter values runs every loss that takes that keyword
over all of them with ``jax.vmap`` (hyperparameters are traced values), so
each loss compiles once whatever the grid's size.

:func:`compare_fits` fits a constant (the loss's estimate of location: the
mean for squared error, the median for absolute error) or a linear model
``x @ w + b`` to the same data under each loss, with full-batch Adam, the
grid's members in one vmapped run.

Both return arrays (NumPy) and draw them with ``.plot()``, which returns a
matplotlib ``Figure`` (matplotlib, the ``plot`` extra, is imported then).
``jaxobj compare CONFIG`` is a thin layer over these two functions.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxobj import registry

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn
  from matplotlib.axes import Axes
  from matplotlib.figure import Figure

__all__ = ["AXES", "Comparison", "FitComparison", "compare", "compare_fits"]

AXES = ("residual", "p_t", "logit")

LossLike = str | Callable[..., Any]
Losses = Sequence[LossLike] | Mapping[str, LossLike]

_AXIS_LABEL = {
  "residual": "residual r = prediction − target",
  "p_t": "p_t (probability of the true class)",
  "logit": "logit of the true class",
}
_GRAD_LABEL = {"residual": "∂ loss / ∂ r", "p_t": "∂ loss / ∂ logit", "logit": "∂ loss / ∂ logit"}


def _label(loss: LossLike) -> str:
  if isinstance(loss, str):
    return loss
  if isinstance(loss, functools.partial):
    args = ", ".join(
      f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in loss.keywords.items()
    )
    return f"{_label(loss.func)}({args})" if args else _label(loss.func)
  return getattr(loss, "__name__", type(loss).__name__)


def _resolve(losses: Losses) -> dict[str, Callable[..., Any]]:
  """``{label: function}``; registry names (and aliases) become their losses."""
  if isinstance(losses, (str, bytes)) or callable(losses):
    raise TypeError(
      f"losses must be a list or a dict of losses, got {losses!r}: write "
      f"losses=[{losses!r}] for one loss."
    )
  items = list(losses.items()) if isinstance(losses, Mapping) else [(_label(f), f) for f in losses]
  if not items:
    raise ValueError("losses is empty: pass at least one loss (a function, a name or a partial).")
  out: dict[str, Callable[..., Any]] = {}
  for label, loss in items:
    if label in out:
      raise ValueError(
        f"two losses have the label {label!r}: pass a dict, {{label: loss}}, to name them apart."
      )
    if isinstance(loss, str):
      loss = registry.get(loss).fn
    if not callable(loss):
      raise TypeError(
        f"losses[{label!r}] must be a loss function, a registry name or a functools.partial, "
        f"got {loss!r}."
      )
    out[str(label)] = loss
  return out


def _keywords(fn: Callable[..., Any]) -> set[str]:
  """The keyword arguments ``fn`` accepts (``**kwargs``: any)."""
  try:
    params = inspect.signature(fn).parameters.values()
  except (TypeError, ValueError):
    return set()
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
    return {"*"}
  return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _n_inputs(fn: Callable[..., Any]) -> int:
  spec = registry.spec_for(fn)
  return len(spec.input_names) if spec is not None else 2


def _grid(grid: Mapping[str, ArrayLike] | None) -> dict[str, np.ndarray]:
  if grid is None:
    return {}
  if not isinstance(grid, Mapping):
    raise TypeError(
      f"grid must be a dict {{hyperparameter: values}}, got {grid!r}: for example "
      f"grid={{'delta': [0.5, 1.0, 2.0]}}."
    )
  out = {}
  for name, values in grid.items():
    v = np.asarray(values, np.float32)
    if v.ndim != 1 or v.size == 0:
      raise ValueError(
        f"grid[{name!r}] must be a non-empty 1-D list of values, got shape {v.shape}: "
        f"write grid={{{name!r}: [v1, v2, ...]}}."
      )
    out[name] = v
  return out


def _grid_names(fn, grid: dict[str, np.ndarray]) -> tuple[str, ...]:
  """The grid's hyperparameters that ``fn`` takes (and has not fixed in a partial)."""
  accepted = _keywords(fn)
  fixed = getattr(fn, "keywords", {}) or {}
  return tuple(k for k in grid if (k in accepted or "*" in accepted) and k not in fixed)


def _check_grid_used(fns: dict[str, Callable[..., Any]], grid: dict[str, np.ndarray]) -> None:
  """A grid hyperparameter that no loss takes is a typo, not a silent no-op."""
  unused = [k for k in grid if not any(k in _grid_names(fn, grid) for fn in fns.values())]
  if unused:
    raise ValueError(
      f"grid hyperparameter(s) {', '.join(map(repr, unused))} are taken by none of the losses "
      f"({', '.join(map(repr, fns))}): check the spelling, or add a loss that takes them."
    )


def _over_grid(f, names: tuple[str, ...]):
  """``f(x, **hyper)`` vmapped over every name in turn: leading axes in ``names`` order."""
  g = lambda x, *values: f(x, **dict(zip(names, values)))
  for i in reversed(range(len(names))):
    axes: list[int | None] = [None] * (len(names) + 1)
    axes[i + 1] = 0
    g = jax.vmap(g, in_axes=tuple(axes))
  return g


def _with_context(label: str, what: str, err: Exception) -> Exception:
  msg = " ".join(str(err.args[0] if isinstance(err, KeyError) and err.args else err).split())
  text = f"compare: losses[{label!r}] cannot be {what}: {msg}"
  try:
    return type(err)(text)
  except Exception:  # an exception type with another signature
    return ValueError(text)


# ---------------------------------------------------------------- curves


@dataclasses.dataclass(frozen=True)
class Comparison:
  """The result of :func:`compare`.

  Attributes:
    axis: ``"residual"``, ``"p_t"`` or ``"logit"``.
    x: the points of the axis, shape ``(points,)``.
    values: ``{label: per-point loss}``, shape ``(*grid, points)``, where
      ``grid`` has one axis per grid hyperparameter the loss takes.
    grads: ``{label: derivative}`` with respect to the residual or the logit,
      same shapes.
    grid: ``{hyperparameter: values}`` of the grid.
    grid_axes: ``{label: the grid hyperparameters of its leading axes}``.
  """

  axis: str
  x: np.ndarray
  values: dict[str, np.ndarray]
  grads: dict[str, np.ndarray]
  grid: dict[str, np.ndarray]
  grid_axes: dict[str, tuple[str, ...]]

  def lines(self, label: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(line label, values, grads)]`` of one loss: one line per grid point."""
    names = self.grid_axes[label]
    if not names:
      return [(label, self.values[label], self.grads[label])]
    out = []
    for idx in itertools.product(*(range(len(self.grid[n])) for n in names)):
      tag = ", ".join(f"{n}={self.grid[n][i]:g}" for n, i in zip(names, idx))
      out.append((f"{label} ({tag})", self.values[label][idx], self.grads[label][idx]))
    return out

  def plot(self, *, title: str | None = None, axes: Sequence[Axes] | None = None) -> Figure:
    """Values (left) and gradients (right) of every loss and grid point.

    Args:
      title: the figure's title.
      axes: two matplotlib ``Axes`` to draw into (a row of a larger figure,
        as ``jaxobj compare`` draws a grid under the losses); a new figure
        when None.

    Returns:
      The matplotlib ``Figure`` (the one holding ``axes`` when given); save
      it with ``fig.savefig(path)``.
    """
    from jaxobj.train.plots import pyplot

    plt = pyplot()
    if axes is None:
      fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    else:
      if len(axes) != 2:
        raise ValueError(f"axes must be two Axes (values, gradients), got {len(axes)}.")
      left, right = axes
      fig = left.figure
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    viridis = plt.get_cmap("viridis")
    for k, label in enumerate(self.values):
      lines = self.lines(label)
      styles = ("-", "--", ":", "-.")
      for i, (name, v, g) in enumerate(lines):
        if len(lines) > 1 and len(self.values) == 1:
          color, ls = viridis(i / max(len(lines) - 1, 1)), "-"
        else:
          color, ls = cycle[k % len(cycle)], styles[i % len(styles)]
        left.plot(self.x, v, color=color, ls=ls, label=name)
        right.plot(self.x, g, color=color, ls=ls, label=name)
    left.set(title="value", xlabel=_AXIS_LABEL[self.axis], ylabel="loss")
    right.set(title="gradient", xlabel=_AXIS_LABEL[self.axis], ylabel=_GRAD_LABEL[self.axis])
    for ax in (left, right):
      ax.grid(alpha=0.3)
      ax.axhline(0.0, color="grey", lw=0.6)
    right.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
      fig.suptitle(title)
    if axes is None:
      fig.tight_layout()
    return fig


def _axis_points(axis: str, range: tuple[float, float], points: int) -> np.ndarray:
  if axis not in AXES:
    raise ValueError(f"axis must be one of {', '.join(map(repr, AXES))}, got axis={axis!r}.")
  if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
    raise ValueError(f"points must be an int >= 2, got points={points!r}.")
  lo, hi = (float(v) for v in range)
  if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
    raise ValueError(f"range must be (low, high) with finite low < high, got range={range!r}.")
  if axis == "p_t":
    # Only the ends outside (0, 1) move: a range inside it is used as given.
    lo, hi = (1e-4 if lo <= 0.0 else lo), (1.0 - 1e-4 if hi >= 1.0 else hi)
    if lo >= hi:
      raise ValueError(
        f"axis='p_t' runs over probabilities: range must overlap (0, 1), got range={range!r}; "
        "for example range=(0.01, 0.99)."
      )
  return np.linspace(lo, hi, points, dtype=np.float32)


def _curve_fn(fn, axis: str):
  """``(x, **hyper) -> (values, grads)`` along the axis, one loss call per trace."""
  n = _n_inputs(fn)

  def curve(x, **hyper):
    if axis == "residual":
      first, rest = x, ((jnp.zeros_like(x),) if n > 1 else ())
    else:
      first = jnp.log(x) - jnp.log1p(-x) if axis == "p_t" else x
      rest = (jnp.ones_like(x),)

    def total(a):
      v = fn(a, *rest, reduction="none", **hyper)
      return jnp.sum(v), v

    (_, values), grads = jax.value_and_grad(total, has_aux=True)(first)
    return values, grads

  return curve


def compare(
  losses: Losses,
  *,
  axis: str = "residual",
  range: tuple[float, float] = (-4.0, 4.0),
  points: int = 201,
  grid: Mapping[str, ArrayLike] | None = None,
) -> Comparison:
  r"""Values and gradients of several losses along a residual or logit axis.

  .. math::
     \text{values}[\ell][g, i] = \ell(x_i;\ \theta_g), \qquad
     \text{grads}[\ell][g, i] = \partial \ell(x_i;\ \theta_g) / \partial x_i

  where :math:`x_i` runs over the axis and :math:`\theta_g` over the grid.
  Each loss is evaluated with ``reduction="none"`` at every point and
  differentiated in the same ``jax.jit`` call, vmapped over the grid: one
  compile per loss.

  Args:
    losses: a list of losses (functions with the jaxobj contract, registry
      names or aliases such as ``"mse"``, ``functools.partial`` with fixed
      hyperparameters), or a dict ``{label: loss}``.
    axis: ``"residual"`` (``predictions = r``, ``targets = 0``), ``"p_t"``
      (``logits = logit(p_t)``, ``labels = 1``) or ``"logit"`` (``logits = x``,
      ``labels = 1``).
    range: ``(low, high)`` of the axis (``p_t`` is kept inside (0, 1)).
    points: number of points (an int >= 2).
    grid: ``{hyperparameter: values}``; every loss that takes a hyperparameter
      of the grid (and has not fixed it in a partial) is evaluated over all
      its values (several hyperparameters: their product).

  Returns:
    A :class:`Comparison`: ``x``, ``values`` and ``grads`` (NumPy arrays,
    ``(*grid, points)`` per loss) and ``.plot()``.

  Raises:
    ValueError: an unknown ``axis``, a bad ``range``, ``points`` or grid, two
      losses with one label, or a loss that cannot be evaluated on the axis
      (the loss's own message, prefixed by its label).
    TypeError: ``losses`` that is not a list or dict of losses.
    KeyError: an unknown registry name (with the registry's close matches).

  Example:
    >>> import jaxobj
    >>> c = jaxobj.compare(["squared_error", "absolute_error", "huber_loss"],
    ...                    range=(-2.0, 2.0), points=5, grid={"delta": [0.5, 1.0]})
    >>> print(c.values["huber_loss"].shape, c.grads["absolute_error"])
    (2, 5) [-1. -1.  0.  1.  1.]

  References:
    Barron, "A General and Adaptive Robust Loss Function", CVPR 2019 (the
    loss-and-gradient plots this reproduces).
  """
  fns = _resolve(losses)
  x = _axis_points(axis, range, points)
  g = _grid(grid)
  _check_grid_used(fns, g)
  values, grads, grid_axes = {}, {}, {}
  for label, fn in fns.items():
    names = _grid_names(fn, g)
    evaluate = jax.jit(_over_grid(_curve_fn(fn, axis), names))
    try:
      v, d = evaluate(x, *(g[n] for n in names))
    except (ValueError, TypeError, KeyError) as err:
      raise _with_context(label, f"evaluated on axis={axis!r}", err) from None
    values[label], grads[label], grid_axes[label] = np.asarray(v), np.asarray(d), names
  return Comparison(axis, x, values, grads, g, grid_axes)


# ---------------------------------------------------------------- fits


@dataclasses.dataclass(frozen=True)
class FitComparison:
  """The result of :func:`compare_fits`.

  Attributes:
    axis: ``"residual"`` (regression) or ``"p_t"``/``"logit"`` (binary).
    model: ``"constant"`` or ``"linear"``.
    params: ``{label: {name: value}}``, one entry per loss and grid point
      (``"label (delta=0.5)"``): ``location`` for a constant regression fit,
      ``logit`` and ``probability`` for a constant binary fit, ``w`` and
      ``b`` for a linear fit.
    references: what a constant fit compares with: the data's ``mean`` and
      ``median`` (regression) or its ``base rate`` (binary).
    targets: the targets fitted, and ``inputs`` the inputs of a linear fit.
  """

  axis: str
  model: str
  params: dict[str, dict[str, Any]]
  references: dict[str, dict[str, float]]
  targets: np.ndarray
  inputs: np.ndarray | None = None

  def plot(self, *, title: str | None = None) -> Figure:
    """The data with each loss's fit: the fitted constants on a histogram
    (regression), fitted probabilities as bars (binary), or the fitted lines
    over the first input (linear).

    Returns:
      The matplotlib ``Figure``.
    """
    from jaxobj.train.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    y = np.asarray(self.targets, np.float64)
    if self.model == "linear":
      assert self.inputs is not None
      x = np.asarray(self.inputs, np.float64).reshape(len(y), -1)
      ax.scatter(x[:, 0], y, s=6, color="grey", alpha=0.5, label="data")
      xs = np.linspace(x[:, 0].min(), x[:, 0].max(), 50)
      for i, (label, p) in enumerate(self.params.items()):
        ax.plot(xs, p["w"][0] * xs + p["b"], color=colors[i % len(colors)], label=label)
      ax.set(xlabel="inputs[:, 0]", ylabel="target")
    else:
      binary = self.axis != "residual"
      key = "probability" if binary else "location"
      if binary:
        ax.bar(
          list(self.params),
          [p[key] for p in self.params.values()],
          color=[colors[i % len(colors)] for i in range(len(self.params))],
        )
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        ax.set(ylabel="fitted probability of the positive class")
      else:
        ax.hist(y, bins=40, color="lightgrey", label="data")
        for i, (label, p) in enumerate(self.params.items()):
          ax.axvline(p[key], color=colors[i % len(colors)], lw=2, label=f"{label}: {p[key]:.3f}")
        ax.set(xlabel="target", ylabel="count")
      for (ref, values), style in zip(self.references.items(), ("--", ":")):
        line = ax.axhline if binary else ax.axvline
        line(values[key], color="black", ls=style, label=f"{ref}: {values[key]:.3f}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or f"each loss fitted with full-batch Adam ({self.model} model)")
    fig.tight_layout()
    return fig


def _describe(p: dict[str, np.ndarray], axis: str) -> dict[str, Any]:
  if "c" in p:
    c = float(p["c"])
    if axis != "residual":
      return {"logit": c, "probability": float(1.0 / (1.0 + math.exp(-c)))}
    return {"location": c}
  return {"w": [float(v) for v in np.ravel(p["w"])], "b": float(p["b"])}


def _references(y: np.ndarray, axis: str, model: str) -> dict[str, dict[str, float]]:
  if model != "constant":
    return {}
  y = np.asarray(y, np.float64)
  if axis != "residual":
    rate = float(np.mean(y))
    logit = math.log(rate / (1.0 - rate)) if 0 < rate < 1 else math.copysign(math.inf, rate - 0.5)
    return {"base rate": {"logit": logit, "probability": rate}}
  return {"mean": {"location": float(np.mean(y))}, "median": {"location": float(np.median(y))}}


def compare_fits(
  losses: Losses,
  targets: ArrayLike,
  *,
  inputs: ArrayLike | None = None,
  axis: str = "residual",
  grid: Mapping[str, ArrayLike] | None = None,
  steps: int = 2000,
  learning_rate: float = 0.1,
) -> FitComparison:
  r"""Fits a constant or a linear model to the same data under each loss.

  .. math::
     \hat\theta_\ell = \arg\min_\theta\ \ell\big(f_\theta(x), y\big), \qquad
     f_\theta = c \ \text{(constant)} \quad\text{or}\quad x w + b \ \text{(linear)}

  Full-batch Adam for ``steps`` steps, the learning rate decaying along a
  cosine to 1/1000 of ``learning_rate`` (so even absolute error settles on
  its minimizer); each loss compiles once, its grid points trained in one
  vmapped run. A constant fit is the loss's estimate of location: the mean
  for squared error, the median for absolute error, in between for the
  robust losses; for binary losses (``axis="p_t"`` or ``"logit"``) the
  logit of the base rate for cross-entropy.

  Args:
    losses: as for :func:`compare`; called as ``loss(predictions, targets)``.
    targets: ``(N,)`` targets (0/1 labels for binary losses).
    inputs: ``(N, ...)`` inputs for a linear model; ``None`` fits a constant.
    axis: ``"residual"`` for regression losses, ``"p_t"`` or ``"logit"`` for
      binary ones (only the description of a constant fit differs).
    grid: as for :func:`compare`.
    steps: Adam steps (an int >= 1).
    learning_rate: the initial learning rate (> 0).

  Returns:
    A :class:`FitComparison`: ``params`` per loss (and grid point),
    ``references`` and ``.plot()``.

  Raises:
    ValueError: ``targets`` that is not 1-D, ``inputs`` with another number
      of rows, bad ``steps`` or ``learning_rate``, or a loss that cannot be
      fitted on these data (the loss's message, prefixed by its label).
    TypeError, KeyError: as for :func:`compare`.

  Example:
    >>> import numpy as np, jaxobj
    >>> y = np.array([0.0, 1.0, 2.0, 3.0, 14.0])
    >>> fits = jaxobj.compare_fits(["squared_error", "absolute_error"], y, steps=500)
    >>> print({k: round(p["location"], 2) for k, p in fits.params.items()})
    {'squared_error': 4.0, 'absolute_error': 2.0}

  References:
    Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist.
    35(1), 1964.
  """
  import optax  # with the fits only: the curves need no optimizer

  fns = _resolve(losses)
  if axis not in AXES:
    raise ValueError(f"axis must be one of {', '.join(map(repr, AXES))}, got axis={axis!r}.")
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f"steps must be an int >= 1, got steps={steps!r}.")
  if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
    raise ValueError(f"learning_rate must be a number > 0, got learning_rate={learning_rate!r}.")
  y_np = np.asarray(targets)
  if y_np.ndim != 1 or y_np.size == 0:
    raise ValueError(
      f"targets must be a non-empty 1-D array, got shape {y_np.shape}: flatten it, "
      "or fit each output separately."
    )
  y = jnp.asarray(y_np, jnp.float32)
  x_np = None
  if inputs is not None:
    x_in = np.asarray(inputs, np.float32)
    if x_in.ndim == 0 or x_in.shape[0] != len(y_np):
      raise ValueError(
        f"inputs must have one row per target: inputs.shape={x_in.shape}, "
        f"targets.shape={y_np.shape}."
      )
    x_np = x_in.reshape(len(y_np), -1)
    x = jnp.asarray(x_np)
    init: dict[str, jax.Array] = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
    predict = lambda p: x @ p["w"] + p["b"]
  else:
    init = {"c": jnp.zeros(())}
    predict = lambda p: jnp.broadcast_to(p["c"], y.shape)
  tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-3))
  g = _grid(grid)
  _check_grid_used(fns, g)

  def train(fn, **hyper):
    loss = lambda p: fn(predict(p), y, **hyper)

    def step(carry, _):
      p, s = carry
      u, s = tx.update(jax.grad(loss)(p), s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (init, tx.init(init)), None, length=steps)
    return p

  params: dict[str, dict[str, Any]] = {}
  for label, fn in fns.items():
    names = _grid_names(fn, g)
    run = jax.jit(_over_grid(lambda _, **h: train(fn, **h), names))
    try:
      out = jax.tree.map(np.asarray, run(jnp.zeros(()), *(g[n] for n in names)))
    except (ValueError, TypeError, KeyError) as err:
      raise _with_context(label, "fitted on these data", err) from None
    if not names:
      params[label] = _describe(out, axis)
      continue
    for idx in itertools.product(*(range(len(g[n])) for n in names)):
      tag = ", ".join(f"{n}={g[n][i]:g}" for n, i in zip(names, idx))
      params[f"{label} ({tag})"] = _describe({k: v[idx] for k, v in out.items()}, axis)
  return FitComparison(
    axis,
    "linear" if x_np is not None else "constant",
    params,
    _references(y_np, axis, "linear" if x_np is not None else "constant"),
    y_np,
    x_np,
  )
