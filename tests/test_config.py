"""Configs: objective <-> config round trips, dict and YAML loading, overrides, and
one clear error (by key path, with close matches) for every kind of mistake."""

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxobj
from jaxobj import config
from jaxobj import objective as jo
from jaxobj.config import ConfigError
from jaxobj.losses import robust

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def _composite():
  """An objective using every kind of node and value a config can express."""
  return (
    jo.term(
      jaxobj.huber_loss,
      "outputs",
      "batch.y",
      where="batch.valid",
      delta=jo.learnable(1.0, positive=True),
      name="fit",
    )
    + jo.linear_warmup(0.0, 1e-4, steps=1000)
    * jo.regularizer(jaxobj.l2_penalty, mask=jaxobj.regularizers.exclude("b"), name="decay")
    + 0.5
    * jo.group(
      "aux",
      jo.term(jaxobj.absolute_error, "outputs", "batch.y")
      + jo.stop_gradient(jo.term(jaxobj.log_cosh, "outputs", "batch.y")),
    )
    + jo.multitask(
      {
        "a": jo.term(jaxobj.squared_error, "outputs", "batch.y"),
        "b": 2.0
        * jo.term(
          jaxobj.softmax_cross_entropy_with_integer_labels,
          "outputs.l",
          "batch.l",
          label_smoothing=jo.cosine_warmup(0.0, 0.1, 10),
        ),
      },
      jo.UncertaintyWeighting(kinds={"b": "classification"}),
    )
    + 0.1
    * (
      jo.term(
        jaxobj.general_robust_loss,
        "outputs",
        "batch.y",
        alpha=jo.learnable(0.0, transform=robust.robust_alpha_from_latent),
        name="barron",
      )
      + jo.term(jaxobj.quantile_loss, "outputs", "batch.y", quantile=0.9)
    )
    + jo.cyclical(100, ramp=0.5)
    * jo.regularizer(jaxobj.l1_penalty, mask=jaxobj.regularizers.matrices_only, name="sparse")
    + jo.piecewise([10, 20], [1.0, 0.5, 0.1])
    * jo.term(jaxobj.quantile_loss, "outputs", "batch.y", quantile=0.1, reduction="sum", name="low")
  )


def _data():
  rng = np.random.default_rng(0)
  y = jnp.asarray(rng.normal(size=6), jnp.float32)
  return dict(
    outputs=jnp.asarray(rng.normal(size=6), jnp.float32),
    batch={"y": y, "valid": jnp.arange(6) < 5, "l": jnp.asarray([0, 1, 2, 0, 1, 2])},
    model={"w": jnp.ones((2, 3)), "b": jnp.ones(3)},
  )


def test_objective_round_trips_through_config_and_yaml():
  obj = _composite()
  cfg = config.objective_to_config(obj)
  assert config.objective_from_config(cfg) == obj
  # Through YAML text too: plain data only, and the same objective back.
  again = config.objective_from_config(config.parse(config.dump(cfg)))
  assert again == obj
  assert config.objective_to_config(again) == cfg


def test_round_tripped_objective_gives_the_same_values():
  obj = _composite()
  # A multi-task scheme with random weights is not part of _composite; add the
  # outputs a multi-task head reads as a dict.
  data = _data()
  data["outputs"] = {"0": data["outputs"]}
  obj = config.objective_from_config(
    {
      "terms": {
        "fit": {
          "loss": "huber_loss",
          "inputs": ["outputs.0", "batch.y"],
          "delta": {"learnable": 0.5, "positive": True},
        },
        "decay": {
          "regularizer": "l2_penalty",
          "mask": {"exclude": ["b"]},
          "weight": {"schedule": "linear_warmup", "start": 0.0, "end": 0.1, "steps": 10},
        },
      }
    }
  )
  twin = config.objective_from_config(config.objective_to_config(obj))
  params = obj.init()
  v1, i1 = obj.apply(params, step=5, **data)
  v2, i2 = twin.apply(params, step=5, **data)
  assert float(v1) == float(v2) and set(i1) == set(i2)
  hand = jo.term(
    jaxobj.huber_loss, "outputs.0", "batch.y", delta=jo.learnable(0.5, positive=True), name="fit"
  ) + jo.linear_warmup(0.0, 0.1, steps=10) * jo.regularizer(
    jaxobj.l2_penalty, mask=jaxobj.regularizers.exclude("b"), name="decay"
  )
  np.testing.assert_allclose(float(hand.apply(params, step=5, **data)[0]), float(v1))


def test_root_multitask_and_single_term_round_trip():
  mt = jo.multitask(
    {"x": jo.term(jaxobj.squared_error, "p", None), "y": jo.term(jaxobj.absolute_error, "p", None)},
    jo.StaticWeights({"y": 0.5}),
  )
  assert config.objective_from_config(config.objective_to_config(mt)) == mt
  single = jo.term(jaxobj.huber_loss, "p", "t", delta=0.3)
  assert config.objective_from_config(config.objective_to_config(single)) == single


def test_every_weighting_scheme_round_trips():
  tasks = {
    "x": jo.term(jaxobj.squared_error, "p", None),
    "y": jo.term(jaxobj.absolute_error, "p", None),
  }
  for scheme in (
    jo.StaticWeights(),
    jo.UncertaintyWeighting(init_log_variance=0.5),
    jo.DynamicWeightAverage(temperature=1.5),
    jo.FAMO(learning_rate=0.01),
    jo.RandomLossWeighting(),
    jo.GeometricMean(),
  ):
    obj = jo.multitask(tasks, scheme, name="mt") + jo.regularizer(jaxobj.l2_penalty)
    assert config.objective_from_config(config.objective_to_config(obj)) == obj


@pytest.mark.parametrize(
  "obj, match",
  [
    (jo.term(lambda p: jnp.sum(p), "p", name="mine"), "not registered"),
    (
      jo.term(jaxobj.arcface_loss, "e", "l", jo.learnable(lambda k: jnp.zeros((3, 4)))),
      "random initializer",
    ),
    (optax.constant_schedule(1.0) * jo.term(jaxobj.squared_error, "p", None), "no config form"),
  ],
)
def test_objective_to_config_names_what_a_config_cannot_express(obj, match):
  with pytest.raises(ConfigError, match=match):
    config.objective_to_config(obj)


RUN = {
  "name": "tiny",
  "data": {"name": "regression_outliers", "n_train": 32, "n_val": 16},
  "model": {"name": "mlp", "hidden": [8], "outputs": 1},
  "objective": {
    "terms": {"fit": {"loss": "huber_loss", "inputs": ["outputs", "batch.y"], "delta": 1}}
  },
  "metrics": {"mae": {"metric": "absolute_error", "inputs": ["outputs", "batch.y"]}},
  "optimizer": {
    "name": "adam",
    "learning_rate": {"schedule": "cosine_warmup", "start": 0.0, "end": 0.01, "steps": 10},
  },
  "train": {"steps": 4, "batch_size": 8, "log_every": 2, "eval_every": 2},
}


def test_from_dict_builds_every_section():
  before = config.dump(RUN)
  cfg = config.from_dict(RUN)
  assert config.dump(RUN) == before and cfg.raw == RUN  # the input is not changed
  assert cfg.objective == jo.named(
    "fit", jo.term(jaxobj.huber_loss, "outputs", "batch.y", delta=1.0)
  )
  assert cfg.data.kwargs == {"n_train": 32, "n_val": 16}
  assert cfg.model.kwargs == {"hidden": (8,), "outputs": 1}
  assert cfg.train.steps == 4 and cfg.train.metrics_format == "csv"
  tx = config.build_optimizer(cfg.optimizer)
  state = tx.init(jnp.zeros(2))
  assert jax.tree.leaves(state)  # an optax state
  assert "mae" in cfg.metrics.terms()


def test_yaml_numbers_overrides_and_names(tmp_path):
  text = config.dump(RUN).replace("learning_rate:", "learning_rate: 1e-3\n  old_lr:")
  assert config.parse("x: 1e-3")["x"] == 1e-3  # YAML 1.1 would give the string '1e-3'
  cfg_path = tmp_path / "tiny.yaml"
  cfg_path.write_text(config.dump({**RUN, "optimizer": {"name": "sgd", "learning_rate": 0.1}}))
  cfg = config.load(cfg_path, ["train.steps=7", "model.hidden=[4, 4]", "name=renamed"])
  assert (cfg.train.steps, cfg.model.kwargs["hidden"], cfg.name) == (7, (4, 4), "renamed")
  assert config.load(cfg_path).name == "tiny"
  assert "old_lr" in text


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_shipped_configs_load(path):
  cfg = config.load(path)
  assert cfg.description
  assert (cfg.objective is not None) != (cfg.compare is not None)
  if cfg.objective is not None:
    assert config.objective_from_config(config.objective_to_config(cfg.objective)) == cfg.objective


def _set(cfg, dotted, value):
  cfg = config.parse(config.dump(cfg))
  node = cfg
  *parents, last = dotted.split(".")
  for p in parents:
    node = node[p]
  if value is _DELETE:
    del node[last]
  else:
    node[last] = value
  return cfg


_DELETE = object()

BAD = [
  # (where, value, expected path, expected words)
  (
    "objective.terms.fit.loss",
    "hubber_loss",
    "objective.terms.fit.loss",
    "Did you mean 'huber_loss'",
  ),
  ("objective.terms.fit.delat", 1.0, "objective.terms.fit.delat", "Did you mean 'delta'"),
  ("objective.terms.fit.delta", "big", "objective.terms.fit.delta", "expected a number"),
  (
    "objective.terms.fit.inputs",
    ["outputs", "batch.y", "batch.z"],
    "objective.terms.fit.inputs",
    "takes 1 to 2 inputs",
  ),
  ("objective.terms.fit.reduction", "avg", "objective.terms.fit.reduction", "'mean', 'sum'"),
  (
    "objective.terms.fit.weight",
    {"schedule": "linear_warmpu", "start": 0, "end": 1, "steps": 3},
    "objective.terms.fit.weight.schedule",
    "Did you mean 'linear_warmup'",
  ),
  (
    "objective.terms.fit.weight",
    {"schedule": "linear_warmup", "start": 0, "end": 1},
    "objective.terms.fit.weight.steps",
    "needs 'steps'",
  ),
  (
    "objective.terms.fit.delta",
    {"learnable": 1.0, "transform": "sigmiod"},
    "objective.terms.fit.delta.transform",
    "Did you mean 'sigmoid'",
  ),
  (
    "objective.terms.fit.loss",
    "expected_calibration_error",
    "objective.terms.fit.loss",
    "metrics:",
  ),
  ("objective.terms.fit", {"los": "huber_loss"}, "objective.terms.fit", "Did you mean 'loss'"),
  (
    "objective.terms.fit",
    {"regularizer": "l2_penalty", "mask": "matrix_only"},
    "objective.terms.fit.mask",
    "Did you mean 'matrices_only'",
  ),
  (
    "objective",
    {
      "tasks": {"a": {"loss": "squared_error", "inputs": ["outputs", "batch.y"]}},
      "scheme": "uncertainty",
    },
    "objective.scheme",
    "Did you mean 'uncertainty_weighting'",
  ),
  ("train.steps", "ten", "train.steps", "expected an integer"),
  ("train.stpes", 3, "train.stpes", "Did you mean 'steps'"),
  ("train.steps", 0, "train.steps", "from 1 to"),
  ("train.metrics_format", "parquet", "train.metrics_format", "'csv', 'jsonl'"),
  ("optimizer.name", "adamm", "optimizer.name", "Did you mean 'adam'"),
  ("optimizer.learning_rate", -1.0, "optimizer.learning_rate", "positive"),
  ("optimizer.momentun", 0.9, "optimizer.momentun", "optimizer 'adam'"),
  ("data.name", "regresion_outliers", "data.name", "Did you mean 'regression_outliers'"),
  ("data.n_trian", 10, "data.n_trian", "Did you mean 'n_train'"),
  ("model.hidden", "big", "model.hidden", "expected a list"),
  ("model.activation", "rleu", "model.activation", "Did you mean 'relu'"),
  (
    "metrics.mae",
    {"metric": "accuracyy", "inputs": ["outputs", "batch.y"]},
    "metrics.mae.metric",
    "no loss named 'accuracyy'",
  ),
  ("objectiv", {}, "objectiv", "Did you mean 'objective'"),
  ("model", _DELETE, "model", "needs a model"),
  # values out of range: the key path and the range (fuzzed configs)
  ("seed", 10**29, "seed", "from 0 to 4,294,967,295"),
  ("seed", -1, "seed", "from 0 to 4,294,967,295"),
  ("name", "a\x00b", "name", "character '\\x00'"),
  ("name", "x" * 300, "name", "1 to 100 printable characters"),
  ("data.n_train", 2e10, "data.n_train", "from 1 to 1,000,000"),
  ("data.n_train", 2 * 10**10, "data.n_train", "from 1 to 1,000,000"),
  ("data.features", 10**9, "data.features", "from 1 to 4,096"),
  ("train.host_devices", 20000, "train.host_devices", "from 1 to 256"),
  ("train.host_devices", 1000000, "train.host_devices", "from 1 to 256"),
  ("train.steps", 2**40, "train.steps", "from 1 to 2,147,483,647"),
  ("model.hidden", [8, 10**9], "model.hidden[1]", "from 1 to 4,096"),
  ("model.hidden", [8] * 100, "model.hidden", "at most 64"),
  ("model.outputs", 10**6, "model.outputs", "from 1 to 4,096"),
  # a forgotten target is an error, not zeros; null asks for zeros where a loss allows it
  ("objective.terms.fit.inputs", ["outputs"], "objective.terms.fit.inputs", "'targets' is missing"),
  (
    "objective.terms.fit.inputs",
    [None, "batch.y"],
    "objective.terms.fit.inputs[0]",
    "null stands for an input left as zeros",
  ),
]


@pytest.mark.parametrize(
  "where, value, path, words", BAD, ids=[b[0] + "=" + repr(b[1])[:20] for b in BAD]
)
def test_mistakes_are_one_line_errors_naming_the_key_path(where, value, path, words):
  with pytest.raises(ConfigError) as info:
    config.from_dict(_set(RUN, where, value), source="tiny.yaml")
  err = info.value
  assert err.path == path, str(err)
  assert words in str(err)
  assert str(err).startswith(f"tiny.yaml: {path}: ")
  assert "\n" not in str(err)


@pytest.mark.parametrize(
  "text, words",
  [
    ("!!python/object/apply:os.system ['echo pwned']", "tags that build Python objects"),
    ("a: !!python/name:os.system\n", "tags that build Python objects"),
    ("train: {steps: 1}\ntrain: {steps: 2}\n", "appears twice"),
    ("train: [1, 2\n", "YAML error"),
    ("- just\n- a list\n", "a config is a mapping"),
    ("", "empty"),
  ],
)
def test_yaml_that_is_not_plain_data_is_refused(tmp_path, text, words):
  path = tmp_path / "bad.yaml"
  path.write_text(text)
  with pytest.raises(ConfigError, match=words) as info:
    config.load(path)
  assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_missing_config_suggests_shipped_names():
  with pytest.raises(ConfigError, match="Did you mean 'robust_regression'"):
    config.resolve("robust_regresion")
  assert "multitask_uncertainty" in config.available()
  assert "compare/regression" in config.available()


def test_bad_override_is_an_error():
  with pytest.raises(ConfigError, match="KEY=VALUE"):
    config.override({}, ["train.steps"])
  with pytest.raises(ConfigError, match="not a mapping"):
    config.override({"train": 3}, ["train.steps=3"])


def test_the_readme_config_example_is_valid():
  import re

  readme = (ROOT / "README.md").read_text()
  block = re.search(r"## Configs and the command line.*?```yaml\n(.*?)```", readme, re.S).group(1)
  cfg = config.from_dict(config.parse(block))
  assert set(cfg.objective.terms()) == {"fit", "decay"}


def test_null_input_is_explicit_zeros():
  obj = config.objective_from_config(
    {"terms": {"fit": {"loss": "huber_loss", "inputs": ["outputs", None], "delta": 0.5}}}
  )
  assert obj == jo.term(jaxobj.huber_loss, "outputs", None, delta=0.5, name="fit")
  assert config.objective_from_config(config.objective_to_config(obj)) == obj
  x = np.array([-2.0, -0.3, 0.1, 1.5], np.float32)
  value, _ = obj.apply(outputs=jnp.asarray(x))
  a = np.abs(x.astype(np.float64))  # Huber toward 0, from the formula
  want = np.mean(np.where(a <= 0.5, 0.5 * a**2, 0.5 * (a - 0.25)))
  np.testing.assert_allclose(float(value), want, rtol=1e-6)


def test_missing_input_path_names_the_zeros_option_only_where_it_exists():
  with pytest.raises(ConfigError) as info:
    config.objective_from_config({"terms": {"fit": {"loss": "huber_loss", "inputs": "outputs"}}})
  assert info.value.path == "objective.terms.fit.inputs"
  assert "or null to use zeros" in str(info.value) and "\n" not in str(info.value)


def _alias_bomb(levels=9, width=9):
  lines, prev = ["a: &a [" + ", ".join(["x"] * width) + "]"], "a"
  for n in "bcdefghijk"[: levels - 1]:
    lines.append(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * width) + "]")
    prev = n
  return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
  text = _alias_bomb()  # 9**9 (387 million) values once expanded, from under 400 bytes
  assert len(text) < 400
  path = tmp_path / "bomb.yaml"
  path.write_text(text)
  t0 = time.perf_counter()
  with pytest.raises(ConfigError, match="more than 100,000 values") as info:
    config.load(path)
  assert time.perf_counter() - t0 < 5  # bounded work: at most 100,000 values copied
  assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
  # aliases below the limit are expanded into copies (no shared, mutable parts)
  data = config.parse(_alias_bomb(levels=3, width=3))
  assert data["c"] == [[["x"] * 3] * 3] * 3 and data["c"][0] is not data["c"][1]


def test_deep_nesting_is_refused_in_one_line(tmp_path):
  path = tmp_path / "deep.yaml"
  path.write_text("name: deep\nx: " + "[" * 3000 + "]" * 3000 + "\n")
  with pytest.raises(ConfigError, match="nests at most 100 levels") as info:
    config.load(path)
  assert "\n" not in str(info.value)
  config.parse("x: " + "[" * 99 + "]" * 99)  # the limit itself is fine
  deep = {}
  node = deep
  for _ in range(3000):  # from Python: the same limit, no RecursionError
    node["a"] = {}
    node = node["a"]
  with pytest.raises(ConfigError, match="nests at most 100 levels"):
    config.from_dict(deep)


def test_term_paths_follow_groups_and_tasks():
  from jaxobj.config.objective import find_term_path, term_paths

  cfg = {
    "terms": {
      "fit": {"loss": "huber_loss", "inputs": ["outputs", "batch.y"]},
      "aux": {"terms": {"l1": {"loss": "absolute_error", "inputs": ["outputs", "batch.y"]}}},
      "mt": {
        "tasks": {"a": {"loss": "squared_error", "inputs": ["outputs", "batch.y"]}},
        "scheme": "static_weights",
      },
    }
  }
  obj = config.objective_from_config(cfg)
  paths = term_paths(cfg)
  found = {name: find_term_path(paths, name) for name in obj.terms()}
  assert found == {
    "fit": "objective.terms.fit",
    "aux/l1": "objective.terms.aux.terms.l1",
    "a": "objective.terms.mt.tasks.a",
  }


def test_comparison_sizes_are_bounded():
  cfg = {
    "data": {"name": "location_outliers", "n_train": 11},
    "compare": {"losses": {"mse": {"loss": "squared_error"}}, "points": 10**9},
  }
  with pytest.raises(ConfigError, match="from 3 to 100,000") as info:
    config.from_dict(cfg)
  assert info.value.path == "compare.points"
