"""The registry: metadata, lookup and close-match suggestions."""

import inspect

import pytest

import jaxobj
from jaxobj import registry


def test_every_public_loss_is_registered_under_its_name():
  """Public functions with the contract's ``reduction`` are losses or metrics and
  must be registered; helpers (``smooth_labels``, initializers) need not be."""
  losses = [
    n
    for n in jaxobj.losses.__all__
    if callable(getattr(jaxobj.losses, n))
    and "reduction" in inspect.signature(getattr(jaxobj.losses, n)).parameters
  ]
  assert len(losses) >= 24
  for name in losses:
    spec = registry.get(name)
    assert spec.fn is getattr(jaxobj, name)


def test_metadata_comes_from_the_signature_and_docstring():
  spec = registry.get("huber_loss")
  assert spec.family == "regression" and spec.kind == "loss"
  assert spec.hyperparameters == {"delta": 1.0}
  assert spec.traceable == {"delta": 1.0}
  assert spec.input_names == ("predictions", "targets")
  assert spec.summary.startswith("Huber loss")
  ce = registry.get("softmax_cross_entropy_with_integer_labels")
  assert ce.hyperparameters["ignore_index"] is None
  assert set(ce.traceable) == {"label_smoothing"}


def test_unknown_name_suggests_close_matches():
  with pytest.raises(KeyError, match=r"Did you mean 'huber_loss'"):
    registry.get("hubber_loss")
  with pytest.raises(KeyError, match="jaxobj losses"):
    registry.get("zzz")


def test_duplicate_registration_is_refused():
  with pytest.raises(ValueError, match="already registered"):
    registry.register("regression")(jaxobj.squared_error)


def test_filters_and_families():
  assert set(registry.names(kind="regularizer")) == {
    "l1_penalty",
    "l2_penalty",
    "elastic_net_penalty",
  }
  assert all(s.family == "classification" for s in registry.specs(family="classification"))
  assert {"regression", "classification", "regularization"} <= set(registry.families())
