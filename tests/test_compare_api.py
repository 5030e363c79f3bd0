"""jaxobj.compare and jaxobj.compare_fits: losses side by side in Python.

Values and gradients against float64 NumPy written from the formulas, one
compile per loss whatever the grid, fits against the mean, median, base rate
and least squares, errors that name the argument, and plots that return a
``Figure``.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj.registry import UnknownLossError

DELTAS = [0.5, 1.0, 2.0]


def _huber(r, d):
  a = np.abs(r)
  return np.where(a <= d, 0.5 * r**2, d * (a - 0.5 * d))


@pytest.fixture(scope="module")
def regression():
  return jaxobj.compare(
    {
      "mse": "mse",  # an alias resolves through the registry
      "mae": jaxobj.absolute_error,
      "huber": "huber_loss",
      "huber_fixed": functools.partial(jaxobj.huber_loss, delta=0.25),
    },
    range=(-3.0, 3.0),
    points=13,
    grid={"delta": DELTAS},
  )


def test_values_and_gradients_match_the_formulas(regression):
  c = regression
  r = np.linspace(-3.0, 3.0, 13)
  np.testing.assert_allclose(c.x, r, atol=1e-6)
  np.testing.assert_allclose(c.values["mse"], r**2, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c.grads["mse"], 2 * r, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c.values["mae"], np.abs(r), atol=1e-6)
  np.testing.assert_allclose(c.grads["mae"][r != 0], np.sign(r[r != 0]))
  # The grid runs over the loss that takes delta, not over one that fixed it.
  assert c.grid_axes == {"mse": (), "mae": (), "huber": ("delta",), "huber_fixed": ()}
  assert c.values["huber"].shape == c.grads["huber"].shape == (3, 13)
  for i, d in enumerate(DELTAS):
    np.testing.assert_allclose(c.values["huber"][i], _huber(r, d), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.grads["huber"][i], np.clip(r, -d, d), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c.values["huber_fixed"], _huber(r, 0.25), rtol=1e-5, atol=1e-6)
  assert [line[0] for line in c.lines("huber")] == [f"huber (delta={d:g})" for d in DELTAS]


def test_one_compile_per_loss_whatever_the_grid():
  traces = []

  def counted(predictions, targets, *, delta=1.0, gamma=1.0, reduction="mean"):
    traces.append(1)  # runs once per trace, not once per grid point
    return delta * gamma * (predictions - targets) ** 2

  c = jaxobj.compare([counted], points=5, grid={"delta": [1.0, 2.0, 3.0], "gamma": [1.0, 10.0]})
  assert len(traces) == 1
  assert c.values["counted"].shape == (3, 2, 5)  # grid axes in the grid's order
  np.testing.assert_allclose(c.values["counted"][2, 1], 30.0 * c.x**2, rtol=1e-6)


def test_binary_losses_along_p_t_and_the_logit():
  gammas = [0.0, 2.0]
  c = jaxobj.compare(
    ["sigmoid_binary_cross_entropy", "sigmoid_focal_loss"],
    axis="p_t",
    range=(0.05, 0.95),
    points=7,
    grid={"gamma": gammas},
  )
  p = np.linspace(0.05, 0.95, 7)
  np.testing.assert_allclose(c.values["sigmoid_binary_cross_entropy"], -np.log(p), rtol=1e-4)
  # d/dz of -log(sigmoid(z)) is sigmoid(z) - 1 = p - 1
  np.testing.assert_allclose(c.grads["sigmoid_binary_cross_entropy"], p - 1, rtol=1e-4)
  for i, g in enumerate(gammas):
    focal = -((1 - p) ** g) * np.log(p)
    np.testing.assert_allclose(c.values["sigmoid_focal_loss"][i], focal, rtol=1e-4, atol=1e-7)
  z = jaxobj.compare(["sigmoid_binary_cross_entropy"], axis="logit", range=(-3, 3), points=5)
  np.testing.assert_allclose(
    z.values["sigmoid_binary_cross_entropy"], np.logaddexp(0, -z.x.astype(np.float64)), rtol=1e-5
  )


@pytest.mark.parametrize(
  "call,err,match",
  [
    (lambda: jaxobj.compare(["hubber_loss"]), UnknownLossError, "huber_loss"),
    (lambda: jaxobj.compare("huber_loss"), TypeError, r"losses=\['huber_loss'\]"),
    (lambda: jaxobj.compare([]), ValueError, "losses is empty"),
    (lambda: jaxobj.compare(["mse", "mse"]), ValueError, "label 'mse'"),
    (lambda: jaxobj.compare(["mse"], axis="x"), ValueError, "axis="),
    (lambda: jaxobj.compare(["mse"], range=(1.0, -1.0)), ValueError, "range="),
    (lambda: jaxobj.compare(["mse"], points=1), ValueError, "points=1"),
    (lambda: jaxobj.compare(["mse"], axis="p_t", range=(2.0, 3.0)), ValueError, r"\(0, 1\)"),
    (lambda: jaxobj.compare(["mse"], grid={"detla": [1.0]}), ValueError, "'detla'"),
    (lambda: jaxobj.compare(["huber_loss"], grid={"delta": [[1.0]]}), ValueError, "1-D"),
    (lambda: jaxobj.compare_fits(["mse"], np.zeros((2, 2))), ValueError, "1-D"),
    (lambda: jaxobj.compare_fits(["mse"], np.zeros(3), steps=0), ValueError, "steps=0"),
    (
      lambda: jaxobj.compare_fits(["mse"], np.zeros(3), inputs=np.zeros((4, 1))),
      ValueError,
      "one row per target",
    ),
  ],
)
def test_bad_arguments_say_what_to_write(call, err, match):
  with pytest.raises(err, match=match):
    call()


def test_a_loss_error_names_the_loss():
  def broken(predictions, targets, *, reduction="mean"):
    raise ValueError("targets must be labels")

  with pytest.raises(ValueError, match=r"losses\['mine'\].*targets must be labels"):
    jaxobj.compare({"mine": broken}, points=3)


def test_fitted_locations_and_lines():
  y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 20.0])
  fits = jaxobj.compare_fits(
    ["mse", "absolute_error", "huber_loss"], y, grid={"delta": [0.5, 100.0]}, steps=600
  )
  p = fits.params
  assert list(p) == ["mse", "absolute_error", "huber_loss (delta=0.5)", "huber_loss (delta=100)"]
  assert p["mse"]["location"] == pytest.approx(np.mean(y), abs=1e-3)
  # Any point of [2, 3] minimizes absolute error (even n); the median is 2.5.
  assert 2.0 - 1e-3 <= p["absolute_error"]["location"] <= 3.0 + 1e-3
  assert np.median(y) < p["huber_loss (delta=0.5)"]["location"] < np.mean(y)
  assert p["huber_loss (delta=100)"]["location"] == pytest.approx(np.mean(y), abs=1e-3)
  assert fits.references == {"mean": {"location": np.mean(y)}, "median": {"location": 2.5}}
  # A linear model: least squares, compared with NumPy's solution.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 2))
  t = x @ np.array([1.5, -2.0]) + 0.5 + 0.1 * rng.normal(size=32)
  lin = jaxobj.compare_fits(["mse"], t, inputs=x, steps=1500, learning_rate=0.05)
  a = np.c_[x, np.ones(32)]
  want = np.linalg.lstsq(a, t, rcond=None)[0]
  np.testing.assert_allclose(lin.params["mse"]["w"], want[:2], atol=2e-3)
  assert lin.params["mse"]["b"] == pytest.approx(want[2], abs=2e-3)
  assert lin.model == "linear" and lin.references == {}


def test_binary_fit_recovers_the_base_rate():
  labels = np.array([1.0] * 3 + [0.0] * 9)
  fits = jaxobj.compare_fits(["sigmoid_binary_cross_entropy"], labels, axis="p_t", steps=600)
  got = fits.params["sigmoid_binary_cross_entropy"]
  assert got["probability"] == pytest.approx(0.25, abs=1e-3)
  assert got["logit"] == pytest.approx(np.log(0.25 / 0.75), abs=5e-3)
  assert fits.references["base rate"]["probability"] == 0.25


def test_plots_return_figures(regression):
  from matplotlib.figure import Figure

  fig = regression.plot(title="regression")
  assert isinstance(fig, Figure)
  left, right = fig.axes[:2]
  # mse, mae, huber_fixed and one line per delta, on both panels.
  assert len(left.get_lines()) - 1 == len(right.get_lines()) - 1 == 3 + len(DELTAS)
  fits = jaxobj.compare_fits(["mse"], jnp.arange(4.0), steps=50)
  assert isinstance(fits.plot(), Figure)
  import matplotlib.pyplot as plt

  plt.close("all")
