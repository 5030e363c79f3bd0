"""Errors that say the fix: each misuse a new user meets, and the message it gets."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo

# ---------------------------------------------------------------- objective.apply


@pytest.fixture(scope="module")
def fit():
  return jo.term(jaxobj.squared_error, "outputs", "batch.y", where="batch.valid", name="fit")


@pytest.mark.parametrize("method", ["apply", "evaluate", "statistics"])
def test_data_passed_positionally_names_params_and_keywords(fit, method):
  outputs = jnp.zeros(3)
  with pytest.raises(TypeError) as info:
    getattr(fit, method)(outputs, batch={"y": outputs, "valid": outputs > 0})
  message = str(info.value)
  assert f"objective.{method}() got an array of shape (3,)" in message
  assert "first positional argument" in message and "params" in message
  assert "by keyword" in message
  assert f"objective.{method}(params, batch=..., outputs=...)" in message


def test_params_dict_and_none_still_accepted(fit):
  batch = {"y": jnp.array([1.0, 2.0]), "valid": jnp.array([True, False])}
  for params in (None, {}):
    total, _ = fit.apply(params, outputs=jnp.zeros(2), batch=batch)
    np.testing.assert_allclose(float(total), 1.0)


# ---------------------------------------------------------------- learnable weights


@pytest.mark.parametrize(
  "combine",
  [
    lambda w, t: w * t,
    lambda w, t: t * w,
    lambda w, t: w + t,
    lambda w, t: t + w,
    lambda w, t: t - w,
  ],
  ids=["learnable*term", "term*learnable", "learnable+term", "term+learnable", "term-learnable"],
)
def test_learnable_weight_is_refused_with_the_alternative(fit, combine):
  with pytest.raises(TypeError) as info:
    combine(jo.learnable(1.0), fit)
  message = str(info.value)
  assert "learnable(1)" in message
  assert "sends them to zero" in message  # why
  assert "jo.UncertaintyWeighting()" in message and "delta=jo.learnable(" in message  # instead


def test_the_suggested_alternatives_work():
  # What the message tells the user to write must itself run.
  a = jo.term(jaxobj.squared_error, "p", None, name="a")
  b = jo.term(jaxobj.absolute_error, "p", None, name="b")
  weighted = jo.multitask({"a": a, "b": b}, jo.UncertaintyWeighting())
  total, _ = weighted.apply(weighted.init(None), p=jnp.array([2.0]))
  assert np.isfinite(float(total))
  huber = jo.term(jaxobj.huber_loss, "p", None, delta=jo.learnable(1.0, positive=True))
  assert "huber_loss" in huber.init(None)
