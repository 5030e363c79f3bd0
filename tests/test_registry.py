"""The registry: metadata, lookup and close-match suggestions."""

import inspect
import sys
import typing

import pytest
from jax.typing import ArrayLike

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
  assert ce.hyperparameters["ignore_index"] == -100
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


# Public names of jaxobj.losses that are not registered losses or metrics: the
# NamedTuples some losses return, and helpers that go with a loss.
HELPERS = {
  "ElboTerms",
  "ReliabilityDiagram",
  "approx_t12n",
  "bound_t12n",
  "dcg2_lambdaweight",
  "dcg_lambdaweight",
  "gumbel_t12n",
  "labeldiff_lambdaweight",
  "make_pairwise_loss",
  "segment_t12n",
  "ctc_loss_with_forward_probs",
  "fit_temperature",
  "group_advantages",
  "init_class_centers",
  "dynamic_soft_margin_init",
  "dynamic_soft_margin_update",
  "make_fenchel_young_loss",
  "policy_gradient_preset",
  "robust_alpha_from_latent",
  "robust_latent_from_alpha",
  "robust_latent_from_scale",
  "robust_log_partition",
  "robust_scale_from_latent",
  "sequence_log_probs",
  "fused_linear_sequence_log_probs",
  "fused_linear_token_log_probs",
  "smooth_labels",
  "auc_margin_alpha",
  "soft_rank",
  "soft_sort",
  "sparsemax",
  "temperature_scale",
}


def test_losses_all_is_the_registered_losses_and_metrics_plus_helpers():
  names = jaxobj.losses.__all__
  assert isinstance(names, list) and len(names) == len(set(names))
  registered = {s.name for s in registry.specs() if s.fn.__module__.startswith("jaxobj.losses.")}
  assert set(names) == registered | HELPERS
  for name in names:
    assert getattr(jaxobj.losses, name) is getattr(jaxobj, name), name


def test_each_family_exports_its_own_public_names():
  families = {sys.modules[s.fn.__module__] for s in registry.specs()}
  exported = set()
  for module in families:
    own = set(module.__all__)
    assert len(own) == len(module.__all__), module.__name__
    for name in own:
      assert getattr(module, name).__module__ == module.__name__, (module.__name__, name)
    exported |= own
  assert exported == set(jaxobj.losses.__all__) | set(jaxobj.regularizers.__all__)


def test_constants_and_private_names_are_not_star_exported():
  for module in (jaxobj, jaxobj.losses):
    for name in module.__all__:
      assert not name.startswith("_") and not name.isupper(), (module.__name__, name)
  # Still importable from their module.
  from jaxobj.losses.generative import GAN_LOSS_TYPES
  from jaxobj.losses.robust import ADAPTIVE_ALPHA_RANGE

  assert "hinge" in GAN_LOSS_TYPES and len(ADAPTIVE_ALPHA_RANGE) == 2


def test_one_ignore_index_default_for_every_integer_label_loss():
  """PyTorch's -100 everywhere (see jaxobj._src.inputs.IGNORE_INDEX)."""
  with_ignore = [s for s in registry.specs() if "ignore_index" in s.hyperparameters]
  assert len(with_ignore) >= 15
  assert {s.hyperparameters["ignore_index"] for s in with_ignore} == {-100}
  params = inspect.signature(jaxobj.sequence_log_probs).parameters
  assert params["ignore_index"].default == -100


def test_every_public_signature_is_typed_and_the_wrapper_shows_it():
  """Hints on every argument and the return, seen through the registry's wrapper
  (``inspect.signature`` follows ``__wrapped__``) and resolvable, as the docs read them."""
  public = [getattr(jaxobj.losses, n) for n in jaxobj.losses.__all__]
  public += [s.fn for s in registry.specs(kind="regularizer")]
  for fn in public:
    if isinstance(fn, type):  # the NamedTuples some losses return
      continue
    sig = inspect.signature(fn)
    untyped = [n for n, p in sig.parameters.items() if p.annotation is inspect.Parameter.empty]
    assert not untyped and sig.return_annotation is not sig.empty, (fn.__name__, untyped)
    hints = typing.get_type_hints(fn)
    assert set(hints) == set(sig.parameters) | {"return"}, fn.__name__
  hints = typing.get_type_hints(jaxobj.huber_loss)
  assert hints["predictions"] is ArrayLike and hints["reduction"] is str
