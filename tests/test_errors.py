"""Errors that say the fix: each misuse a new user meets, and the message it gets."""

import traceback

import jax
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


# ---------------------------------------------------------------- names and aliases


@pytest.mark.parametrize(
  "name, words",
  [
    ("hubber_loss", ["Did you mean 'huber_loss'"]),
    ("cross_entropy", ["alias of 'softmax_cross_entropy_with_integer_labels'", "close matches"]),
    ("mean_squared_error", ["alias of 'squared_error'", "use squared_error"]),
    ("bce", ["not an alias", "probabilities", "sigmoid_binary_cross_entropy"]),
    ("softmax_cross_entropy_with_integer_label", ["'softmax_cross_entropy_with_integer_labels'"]),
    ("objective", ["subpackage", "import jaxobj.objective"]),
  ],
)
def test_unknown_attribute_names_close_matches(name, words, monkeypatch):
  monkeypatch.delattr(jaxobj, "objective")  # as before `import jaxobj.objective`
  with pytest.raises(AttributeError) as info:
    getattr(jaxobj, name)
  message = str(info.value)
  assert message.startswith(f"module 'jaxobj' has no attribute {name!r}")
  for word in words:
    assert word in message, (word, message)


def test_module_getattr_keeps_the_module_protocols():
  assert hasattr(jaxobj, "huber_loss") and not hasattr(jaxobj, "hubber_loss")
  assert not hasattr(jaxobj, "__wrapped__")  # doctest and inspect probe dunders
  namespace: dict = {}
  exec("from jaxobj import *", namespace)
  assert "huber_loss" in namespace and "mse" not in namespace


def test_aliases_resolve_to_registered_losses_and_configs_accept_them():
  from jaxobj import registry
  from jaxobj.config.objective import registered_spec

  for alias, target in registry.ALIASES.items():
    assert alias not in registry.names() and target in registry.names()
    assert registry.get(alias) is registry.get(target)
    assert registered_spec(alias, "objective.terms.fit.loss").name == target
  for name, instead in registry.NOT_ALIASES.items():
    assert name not in registry.names() and name not in registry.ALIASES
    with pytest.raises(registry.UnknownLossError, match="not an alias"):
      registry.get(name)
    assert any(n in instead for n in registry.names())  # names what to use


def _keras_hinge(y_true, y_pred):
  # Keras's documented convention: 0/1 labels become -1/+1, then mean(max(1 - y s, 0)).
  y = np.where(y_true == 0, -1.0, y_true)
  return np.mean(np.maximum(1.0 - y * y_pred, 0.0))


def test_aliases_compute_the_peers_documented_values():
  rng = np.random.default_rng(0)
  p, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 3
  get = jaxobj.registry.get
  close = lambda a, b: np.testing.assert_allclose(float(a), b, rtol=1e-5)  # noqa: E731
  close(get("mse").fn(p, y), np.mean((p - y) ** 2))  # torch mse_loss, Keras MSE
  close(get("mae").fn(p, y), np.mean(np.abs(p - y)))
  r = np.abs(p - y)
  close(get("huber").fn(p, y), np.mean(np.where(r <= 1, 0.5 * r**2, r - 0.5)))
  close(get("logcosh").fn(p, y), np.mean(np.log(np.cosh(p - y))))
  pos, tgt = np.abs(p), np.abs(y)
  close(get("msle").fn(pos, tgt), np.mean((np.log1p(pos) - np.log1p(tgt)) ** 2))
  t = rng.uniform(size=(4, 3))
  close(
    get("binary_cross_entropy_with_logits").fn(p, t),
    np.mean(np.logaddexp(0, p) - t * p),  # torch: log(1 + e^x) - t x
  )
  labels = np.array([0, 2, 1, -100])  # torch's default ignore_index skips -100
  lse = np.log(np.exp(p).sum(-1))
  keep = labels >= 0
  picked = p[np.arange(4), np.where(keep, labels, 0)]
  close(get("cross_entropy").fn(p, labels), np.mean((lse - picked)[keep]))
  binary = (t > 0.5).astype(np.float64)
  close(get("hinge").fn(p, binary), _keras_hinge(binary, p))
  close(
    get("squared_hinge").fn(p, binary),
    np.mean(np.maximum(1.0 - np.where(binary == 0, -1.0, 1.0) * p, 0.0) ** 2),
  )


def test_alias_table_in_the_docs_matches_the_registry():
  from pathlib import Path

  page = (Path(__file__).parents[1] / "docs/concepts/contract.md").read_text()
  section = page.split("### Names from Keras and PyTorch", 1)[1]
  aliases, not_aliases = {}, set()
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if not line.startswith("|") or cells[0] in ("alias", "name") or set(cells[0]) <= {"-"}:
      continue
    names = [n.strip(" `") for n in cells[0].split(",")]
    if len(cells) == 3:
      aliases.update({n: cells[1].strip("`") for n in names})
    else:
      not_aliases.update(names)
  assert aliases == dict(jaxobj.registry.ALIASES)
  assert not_aliases == set(jaxobj.registry.NOT_ALIASES)


# ---------------------------------------------------------------- label conventions


@pytest.mark.parametrize("name", ["hinge_loss", "squared_hinge_loss"])
def test_hinge_reads_zero_one_labels_as_minus_one_plus_one(name):
  fn = getattr(jaxobj, name)
  s = np.array([2.0, 0.5, -2.0, -0.3], np.float32)
  zero_one = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
  signed = 2 * zero_one - 1
  power = 2 if name.startswith("squared") else 1
  expected = np.maximum(1.0 - signed.astype(np.float64) * s, 0.0) ** power
  np.testing.assert_allclose(fn(s, zero_one, reduction="none"), expected, rtol=1e-6)
  np.testing.assert_array_equal(fn(s, zero_one, reduction="none"), fn(s, signed, reduction="none"))
  # The gradient of a 0-labelled row pushes its score down, as a -1 label's does.
  g = np.asarray(jax.grad(lambda s: fn(s, zero_one, reduction="sum"))(jnp.asarray(s)))
  assert g[1] > 0 and g[2] == 0.0


# ---------------------------------------------------------------- configs

TINY = (
  "data: {name: regression_outliers, n_train: 32, n_val: 8}\n"
  "model: {name: mlp, hidden: [4], outputs: 1}\n"
  "objective:\n"
  "  terms:\n"
  "    fit: {loss: huber_loss, inputs: [outputs, batch.y]}\n"
  "    decay: {regularizer: l2_penalty, weight: 1.0e-4}\n"
  "train: {steps: 2, host_devices: 1}\n"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
  path.write_text(TINY)
  return path


def test_trace_time_error_names_the_config_key_path(tiny):
  from jaxobj import config

  objective = config.load(tiny).objective
  assert objective.terms()["fit"].origin == "objective.terms.fit"
  apply = jax.jit(lambda o, y: objective.apply(outputs=o, batch={"y": y}, model={})[0])
  with pytest.raises(ValueError) as info:
    apply(jnp.zeros((4, 1)), jnp.zeros(4))  # (N, 1) against (N,): refused at trace time
  assert str(info.value).startswith("predictions and targets must have the same shape")
  shown = "".join(traceback.format_exception_only(info.value))  # what a traceback prints
  assert "(in the term 'fit', built from the config key objective.terms.fit)" in shown
  # The origin is not part of the term's identity: a config still equals its Python twin.
  twin = jo.term(jaxobj.huber_loss, "outputs", "batch.y", name="fit")
  assert objective.terms()["fit"] == twin and twin.origin == ""


@pytest.mark.parametrize(
  "assignment, path",
  [
    ("train.stpes=3", "train.stpes"),  # a typo in a key
    ("objective.terms.fit.delat=0.5", "objective.terms.fit.delat"),
    ("train.steps=ten", "train.steps"),  # a bad value from the command line
    ("objective.terms.fti.loss=huber_loss", "objective.terms.fti.inputs"),  # a new node
  ],
)
def test_set_typo_is_blamed_on_the_command_line(tiny, assignment, path):
  from jaxobj import config

  with pytest.raises(config.ConfigError) as info:
    config.load(tiny, ["train.steps=1", assignment])
  assert info.value.source == f"--set {assignment}"
  assert info.value.path == path
  assert str(info.value).startswith(f"--set {assignment}: {path}: ")


def test_file_errors_stay_blamed_on_the_file(tmp_path):
  from jaxobj import config

  path = tmp_path / "typo.yaml"
  path.write_text(TINY.replace("steps: 2", "stpes: 2"))
  with pytest.raises(config.ConfigError) as info:
    config.load(path, ["train.steps=3", "train.log_every=1"])
  assert info.value.source == str(path) and info.value.path == "train.stpes"


def test_cli_prints_the_set_blame(tiny, capsys):
  from jaxobj import cli

  assert cli.main(["run", str(tiny), "--set", "train.stpes=3"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("jaxobj: error: --set train.stpes=3: train.stpes: unknown key 'stpes'")
  assert "Did you mean 'steps'" in err and str(tiny) not in err


INTEGER_LABEL_LOSSES = [
  "softmax_cross_entropy_with_integer_labels",
  "softmax_focal_loss_with_integer_labels",
  "poly_loss_cross_entropy_with_integer_labels",
  "multiclass_hinge_loss",
  "brier_score_with_integer_labels",
  "log_score_with_integer_labels",
]


@pytest.mark.parametrize("name", INTEGER_LABEL_LOSSES)
def test_concrete_integer_labels_out_of_range_raise_with_the_fix(name):
  fn = getattr(jaxobj, name)
  logits = np.zeros((3, 4), np.float32)
  for bad in (4, -1):
    labels = np.array([0, bad, 3])
    with pytest.raises(ValueError) as info:
      fn(logits, labels)
    message = str(info.value)
    assert f"[0, {4})" in message and f"[{bad}]" in message and "where=" in message
    # Masked, or given as ignore_index, the same label is skipped.
    keep = np.array([True, False, True])
    masked = float(fn(logits, labels, where=keep))
    assert masked == float(fn(logits, labels, ignore_index=bad))
    assert masked == float(fn(logits[keep], labels[keep]))
