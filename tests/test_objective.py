"""The objective algebra: values and gradients against the same objective
written by hand, tracing behaviour, schedules, weighting schemes and misuse."""

import math
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo

RTOL = 1e-6


def _close(a, b, rtol=RTOL, atol=1e-7):
  chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


def _batch(seed=0, n=8, k=4):
  rng = np.random.default_rng(seed)
  return {
    "x": jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
    "labels": jnp.asarray(rng.integers(0, k, n), jnp.int32),
    "y": jnp.asarray(rng.normal(size=n), jnp.float32),
    "mask": jnp.asarray(rng.uniform(size=n) < 0.7),
  }


def _model_params(seed=1, k=4):
  rng = np.random.default_rng(seed)
  return {
    "w": jnp.asarray(rng.normal(size=(3, k)), jnp.float32),
    "v": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(k,)), jnp.float32),
  }


def _outputs(mp, batch):
  return {"logits": batch["x"] @ mp["w"] + mp["b"], "pred": batch["x"] @ mp["v"]}


CE = jo.term(
  jaxobj.softmax_cross_entropy_with_integer_labels,
  "outputs.logits",
  "batch.labels",
  where="batch.mask",
  name="ce",
)
HUBER = jo.term(jaxobj.huber_loss, "outputs.pred", "batch.y", delta=0.5)
L2 = jo.regularizer(jaxobj.l2_penalty, mask=jaxobj.regularizers.exclude("b"))
COMPOSED = CE + 0.1 * HUBER + 1e-3 * L2


def _by_hand(mp, batch):
  out = _outputs(mp, batch)
  ce = jaxobj.softmax_cross_entropy_with_integer_labels(
    out["logits"], batch["labels"], where=batch["mask"]
  )
  huber = jaxobj.huber_loss(out["pred"], batch["y"], delta=0.5)
  l2 = jnp.sum(mp["w"] ** 2) + jnp.sum(mp["v"] ** 2)
  return ce + 0.1 * huber + 1e-3 * l2


def _composed(mp, batch, objective=COMPOSED, params=None, **kw):
  return objective.apply(params, outputs=_outputs(mp, batch), batch=batch, model=mp, **kw)


# ---------------------------------------------------------------- values and info


def test_composed_equals_hand_written_value_and_gradient():
  mp, batch = _model_params(), _batch()
  (value, info), grads = jax.value_and_grad(_composed, has_aux=True)(mp, batch)
  ref_value, ref_grads = jax.value_and_grad(_by_hand)(mp, batch)
  _close(value, ref_value)
  _close(grads, ref_grads)
  assert float(info["loss"]) == float(value)
  assert float(info["count/ce"]) == float(jnp.sum(batch["mask"]))
  assert float(info["count/huber_loss"]) == 8.0 and float(info["count/l2_penalty"]) == 1.0
  assert float(info["weight/huber_loss"]) == pytest.approx(0.1)
  assert float(info["weight/l2_penalty"]) == pytest.approx(1e-3)
  out = _outputs(mp, batch)
  _close(info["loss/huber_loss"], jaxobj.huber_loss(out["pred"], batch["y"], delta=0.5))


def test_info_is_flat_and_complete():
  _, info = _composed(_model_params(), _batch())
  expected = {"loss"} | {
    f"{k}/{t}" for k in ("loss", "weight", "count") for t in ("ce", "huber_loss", "l2_penalty")
  }
  assert set(info) == expected
  assert all(jnp.shape(v) == () for v in info.values())


def test_sum_reduction_term_and_plain_function_term():
  batch = _batch()
  total = jo.term(jaxobj.squared_error, "batch.y", None, reduction="sum")
  plain = jo.term(lambda y: jnp.max(jnp.abs(y)), "batch.y", name="max_abs")
  value, info = (total + plain).apply(batch=batch)
  _close(info["loss/squared_error"], jnp.sum(batch["y"] ** 2))
  _close(info["loss/max_abs"], jnp.max(jnp.abs(batch["y"])))
  _close(value, jnp.sum(batch["y"] ** 2) + jnp.max(jnp.abs(batch["y"])))


def test_all_masked_term_is_zero_with_zero_gradient():
  mp, batch = _model_params(), dict(_batch(), mask=jnp.zeros(8, bool))
  (value, info), g = jax.value_and_grad(
    lambda m: CE.apply(outputs=_outputs(m, batch), batch=batch), has_aux=True
  )(mp)
  assert float(value) == 0.0 and float(info["count/ce"]) == 0.0
  assert all(np.all(np.asarray(x) == 0.0) for x in jax.tree.leaves(g))


# ---------------------------------------------------------------- transformations


def test_jit_grad_vmap_checkpoint_and_no_retrace():
  mp = _model_params()
  sched = jo.linear_warmup(0.0, 1e-3, steps=10)
  obj = CE + 0.1 * HUBER + sched * L2
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step_fn(mp, batch, step):
    f = jax.checkpoint(lambda m: _composed(m, batch, obj, step=step))
    return jax.value_and_grad(f, has_aux=True)(mp)

  for i in range(3):  # new data and steps reuse the one trace
    (value, info), _ = step_fn(mp, _batch(seed=i), jnp.int32(i))
    _close(info["weight/l2_penalty"], 1e-4 * i)
  eager = _composed(mp, _batch(seed=2), obj, step=2)[0]
  _close(value, eager, rtol=1e-5)

  batches = jax.tree.map(lambda *x: jnp.stack(x), _batch(0), _batch(1), _batch(2))
  values, _ = jax.vmap(lambda b: _composed(mp, b))(batches)
  _close(values, jnp.stack([_by_hand(mp, _batch(i)) for i in range(3)]), rtol=1e-5)


def test_vmap_over_a_traced_weight():
  mp, batch = _model_params(), _batch()
  values = jax.vmap(lambda w: _composed(mp, batch, CE + w * HUBER)[0])(jnp.array([0.0, 1.0]))
  out = _outputs(mp, batch)
  ce = jaxobj.softmax_cross_entropy_with_integer_labels(
    out["logits"], batch["labels"], where=batch["mask"]
  )
  huber = jaxobj.huber_loss(out["pred"], batch["y"], delta=0.5)
  _close(values, jnp.stack([ce, ce + huber]), rtol=1e-5)


# ---------------------------------------------------------------- algebra


def test_subtraction_negation_division_and_builtin_sum():
  batch = _batch()
  a = jo.term(jaxobj.squared_error, "batch.y", None)
  b = jo.term(jaxobj.absolute_error, "batch.y", None)
  la, lb = float(jnp.mean(batch["y"] ** 2)), float(jnp.mean(jnp.abs(batch["y"])))
  assert float((a - b).apply(batch=batch)[0]) == pytest.approx(la - lb, rel=1e-6)
  assert float((-a).apply(batch=batch)[0]) == pytest.approx(-la, rel=1e-6)
  assert float((a / 4).apply(batch=batch)[0]) == pytest.approx(la / 4, rel=1e-6)
  assert float(sum([a, b]).apply(batch=batch)[0]) == pytest.approx(la + lb, rel=1e-6)


def test_array_weights_scalar_and_one_per_summand():
  batch = _batch()
  a = jo.term(jaxobj.squared_error, "batch.y", None)
  b = jo.term(jaxobj.absolute_error, "batch.y", None)
  la, lb = jnp.mean(batch["y"] ** 2), jnp.mean(jnp.abs(batch["y"]))
  _close((jnp.float32(3.0) * a).apply(batch=batch)[0], 3 * la)
  value, info = (jnp.array([2.0, 0.5]) * (a + b)).apply(batch=batch)
  _close(value, 2 * la + 0.5 * lb)
  _close((info["weight/squared_error"], info["weight/absolute_error"]), (2.0, 0.5))


def test_groups_nest_names_and_weights():
  batch = _batch()
  inner = jo.group("inner", jo.term(jaxobj.squared_error, "batch.y", None))
  outer = jo.group("outer", 0.5 * inner + jo.term(jaxobj.absolute_error, "batch.y", None))
  value, info = (2.0 * outer).apply(batch=batch)
  la, lb = jnp.mean(batch["y"] ** 2), jnp.mean(jnp.abs(batch["y"]))
  _close(value, 2 * (0.5 * la + lb))
  _close(info["weight/outer/inner/squared_error"], 1.0)
  _close(info["weight/outer/absolute_error"], 2.0)
  _close(info["loss/outer"], 0.5 * la + lb)
  _close(info["loss/outer/inner"], la)


def test_stop_gradient_counts_in_the_value_but_not_the_gradient():
  mp, batch = _model_params(), _batch()
  obj = CE + jo.stop_gradient(HUBER)
  (value, info), g = jax.value_and_grad(_composed, has_aux=True)(mp, batch, obj)
  only_ce = jax.grad(lambda m: _composed(m, batch, CE)[0])(mp)
  _close(g, only_ce)
  _close(value, info["loss/ce"] + info["loss/huber_loss"])
  assert float(info["weight/huber_loss"]) == 1.0  # its weight in the value


def test_weighted_sum_names_terms_by_key():
  batch = _batch()
  obj = jo.weighted_sum(
    {
      "fit": jo.term(jaxobj.squared_error, "batch.y", None),
      "robust": jo.term(jaxobj.absolute_error, "batch.y", None),
    },
    weights={"robust": 0.25},
  )
  value, info = obj.apply(batch=batch)
  assert {"loss/fit", "loss/robust"} <= set(info)
  _close(value, jnp.mean(batch["y"] ** 2) + 0.25 * jnp.mean(jnp.abs(batch["y"])))


def test_learnable_hyperparameter_is_an_objective_param():
  batch = _batch()
  obj = jo.term(jaxobj.huber_loss, "batch.y", None, delta=jo.learnable(0.5, positive=True))
  params = obj.init()
  _close(params["huber_loss"]["delta"], math.log(0.5))
  (value, _), g = jax.value_and_grad(lambda p: obj.apply(p, batch=batch), has_aux=True)(params)
  _close(value, jaxobj.huber_loss(batch["y"], delta=0.5))
  d = jax.grad(lambda d: jaxobj.huber_loss(batch["y"], delta=d))(0.5)
  _close(g["huber_loss"]["delta"], d * 0.5, rtol=1e-5)  # chain rule through exp


def test_learnable_positional_input_with_random_initializer():
  init = lambda key: jax.random.normal(key, (4, 3))  # noqa: E731
  obj = jo.term(
    lambda x, c: jnp.mean((x @ c.T) ** 2), "batch.x", jo.learnable(init), name="centers"
  )
  with pytest.raises(ValueError, match="PRNG key"):
    obj.init()
  params = obj.init(jax.random.key(0))
  assert params["centers"]["c"].shape == (4, 3)


def test_schedule_as_hyperparameter():
  batch = _batch()
  obj = jo.term(jaxobj.huber_loss, "batch.y", None, delta=jo.linear_warmup(0.1, 1.0, steps=10))
  _close(obj.apply(batch=batch, step=5)[0], jaxobj.huber_loss(batch["y"], delta=0.55))
  with pytest.raises(ValueError, match="step"):
    obj.apply(batch=batch)


def test_regularizer_masks_by_path_and_predicate():
  mp = _model_params()
  by_path = jo.regularizer(jaxobj.l1_penalty, mask=jaxobj.regularizers.exclude("b", "v"))
  by_predicate = jo.regularizer(
    jaxobj.l2_penalty, mask=jaxobj.regularizers.matrices_only, name="l2_matrices"
  )
  value, info = (by_path + by_predicate).apply(model=mp)
  _close(info["loss/l1_penalty"], jnp.sum(jnp.abs(mp["w"])))
  _close(info["loss/l2_matrices"], jnp.sum(mp["w"] ** 2))


# ---------------------------------------------------------------- schedules


def test_schedules_match_their_formulas():
  steps = np.arange(0, 40)
  lin = jo.linear_warmup(1.0, 3.0, steps=10, begin=5)
  np.testing.assert_allclose(
    jax.vmap(lin)(steps), 1.0 + 2.0 * np.clip((steps - 5) / 10, 0, 1), rtol=1e-6
  )
  cos = jo.cosine_warmup(0.0, 1.0, steps=20)
  np.testing.assert_allclose(
    jax.vmap(cos)(steps),
    0.5 * (1 - np.cos(np.pi * np.clip(steps / 20, 0, 1))),
    rtol=1e-6,
    atol=1e-7,
  )
  cyc = jo.cyclical(period=8, ramp=0.25, low=0.1, high=0.9)
  np.testing.assert_allclose(
    jax.vmap(cyc)(steps), 0.1 + 0.8 * np.clip((steps % 8) / 8 / 0.25, 0, 1), rtol=1e-6
  )
  pw = jo.piecewise([10, 25], [1.0, 0.5, 0.1])
  np.testing.assert_allclose(
    jax.vmap(pw)(steps), np.where(steps < 10, 1.0, np.where(steps < 25, 0.5, 0.1))
  )
  assert float(jo.constant(2.5)(7)) == 2.5


@pytest.mark.parametrize(
  "bad",
  [
    lambda: jo.linear_warmup(0, 1, steps=0),
    lambda: jo.cyclical(period=0),
    lambda: jo.cyclical(period=4, ramp=0.0),
    lambda: jo.piecewise([5, 1], [1.0, 2.0, 3.0]),
    lambda: jo.piecewise([5], [1.0]),
  ],
)
def test_bad_schedules_raise(bad):
  with pytest.raises(ValueError):
    bad()


# ---------------------------------------------------------------- misuse


def test_params_from_another_objective_raise():
  a = jo.term(jaxobj.huber_loss, "batch.y", None, delta=jo.learnable(1.0))
  b = jo.term(jaxobj.huber_loss, "batch.y", None, delta=jo.learnable(1.0), name="other")
  with pytest.raises(ValueError, match="params do not match this objective"):
    a.apply(b.init(), batch=_batch())
  with pytest.raises(ValueError, match="params do not match"):
    a.apply(None, batch=_batch())


def test_missing_input_names_the_term_and_suggests():
  with pytest.raises(ValueError, match=r"term 'ce' \(labels\).*Did you mean batch\.labels"):
    CE.apply(
      outputs={"logits": jnp.zeros((2, 4))},
      batch={"label": jnp.zeros(2, jnp.int32), "labels_": 0, "mask": jnp.ones(2, bool)},
    )
  with pytest.raises(ValueError, match="got no 'outputs'"):
    CE.apply(batch=_batch())


def test_weight_of_the_wrong_shape_raises():
  with pytest.raises(ValueError, match=r"weight of shape \(3,\)"):
    jnp.ones(3) * (CE + HUBER)
  with pytest.raises(ValueError, match=r"weight of shape \(2, 2\)"):
    jnp.ones((2, 2)) * CE


def test_schedule_weight_without_step_raises():
  obj = jo.cyclical(period=10) * HUBER
  with pytest.raises(ValueError, match="pass step="):
    obj.apply(outputs={"pred": jnp.zeros(2)}, batch={"y": jnp.zeros(2)})


def test_other_misuse():
  with pytest.raises(TypeError, match="constant changes no gradient"):
    CE + 1.0
  with pytest.raises(ValueError, match="named 'ce'"):
    CE + CE
  with pytest.raises(TypeError, match="Did you mean 'delta'"):
    jo.term(jaxobj.huber_loss, "a", "b", detla=1.0)
  with pytest.raises(ValueError, match="returned shape"):
    jo.term(lambda y: y, "batch.y", name="vector").apply(batch=_batch())
  with pytest.raises(TypeError, match="callable"):
    jo.term("huber_loss", "a")


# ---------------------------------------------------------------- repr


def test_repr_shows_the_tree():
  obj = CE + 0.1 * jo.group("aux", HUBER) + jo.cosine_warmup(0.0, 1e-4, steps=100) * L2
  text = repr(obj)
  for piece in (
    "Objective",
    "ce = softmax_cross_entropy_with_integer_labels(outputs.logits, "
    "batch.labels, where=batch.mask)",
    "0.1 · [aux]",
    "huber_loss = huber_loss(outputs.pred, batch.y, delta=0.5)",
    "cosine_warmup(0→0.0001, steps=100, begin=0) · l2_penalty",
    "mask=exclude('b')",
  ):
    assert piece in text, (piece, text)
  mt = jo.multitask({"a": CE, "b": HUBER}, jo.UncertaintyWeighting())
  assert "[uncertainty_weighting] UncertaintyWeighting" in repr(mt)


# ---------------------------------------------------------------- misuse found by fuzzing


def test_a_forgotten_target_is_an_error_and_zeros_are_asked_for():
  with pytest.raises(TypeError, match=r"no input given for 'targets'.*pass None"):
    jo.term(jaxobj.huber_loss, "outputs")
  with pytest.raises(TypeError, match=r"no input given for 'labels'"):
    jo.term(jaxobj.softmax_cross_entropy, "outputs")
  y = jnp.array([1.0, -3.0])
  for t in (
    jo.term(jaxobj.huber_loss, "outputs", None),
    jo.term(jaxobj.huber_loss, "outputs", targets=None),
  ):
    _close(t.apply(outputs=y)[0], jaxobj.huber_loss(y, jnp.zeros(2)))


@pytest.mark.parametrize("name", ["a/b", 3, ""])
def test_term_names_follow_the_group_rule(name):
  with pytest.raises(ValueError, match="names are non-empty strings without '/'"):
    jo.term(jaxobj.squared_error, "p", "y", name=name)


def test_division_and_weights_must_be_finite():
  t = jo.term(jaxobj.squared_error, "p", "y")
  for bad in (0, 0.0, math.inf, math.nan):
    with pytest.raises(ValueError, match="finite non-zero"):
      t / bad
  for bad in (jnp.float32(jnp.nan), np.array(np.inf), jnp.array([1.0, jnp.nan])):
    with pytest.raises(ValueError, match="not finite"):
      bad * (t + jo.term(jaxobj.absolute_error, "p", "y"))


def test_schedules_refuse_fractional_steps():
  with pytest.raises(ValueError, match=r"period=1.9 must be a whole number"):
    jo.cyclical(period=1.9)
  with pytest.raises(ValueError, match=r"steps=2.5 must be a whole number"):
    jo.linear_warmup(0.0, 1.0, steps=2.5)
  with pytest.raises(ValueError, match="boundaries=.*whole number"):
    jo.piecewise([1.5], [0.0, 1.0])
  assert jo.cyclical(period=4.0).period == 4


def test_learnable_initial_values_are_checked_before_tracing():
  for bad, positive in ((-1.0, True), (0.0, True), (math.nan, False), (math.inf, True)):
    with pytest.raises(ValueError, match="initial value"):
      jo.learnable(bad, positive=positive)
  # A random initializer is checked when drawn, outside jit.
  obj = jo.term(
    jaxobj.huber_loss, "p", "y", delta=jo.learnable(lambda key: -jnp.ones(()), positive=True)
  )
  with pytest.raises(ValueError, match="positive initial"):
    obj.init(jax.random.key(0))


def test_previous_must_be_an_evaluation_of_the_same_objective():
  tasks = {
    "a": jo.term(jaxobj.squared_error, "p", "y"),
    "b": jo.term(jaxobj.absolute_error, "p", "y"),
  }
  obj = jo.multitask(tasks, jo.FAMO())
  state = obj.init_state()
  data = {"p": jnp.ones(2), "y": jnp.zeros(2)}
  _, info = obj.apply(state=state, **data)
  with pytest.raises(TypeError, match="previous= takes an Evaluation"):
    obj.evaluate(state=state, previous=info, **data)
  other = jo.multitask(tasks, jo.FAMO(), name="other").evaluate(
    state={"other": state["famo"]}, **data
  )
  with pytest.raises(ValueError, match=r"no task losses for 'famo'.*\['other'\]"):
    obj.evaluate(state=state, previous=other, **data)
  with pytest.raises(ValueError, match=r"weighting state.*evaluation's \.state"):
    obj.evaluate(**data)


def test_evaluation_is_a_pytree_whose_info_is_applys():
  obj = jo.multitask({"cls": CE, "reg": HUBER}, jo.UncertaintyWeighting()) + 1e-3 * L2
  mp, batch = _model_params(), _batch()
  params = obj.init()
  params["uncertainty_weighting"]["log_variance"]["reg"] = jnp.float32(0.5)
  _, info = _composed(mp, batch, obj, params)
  evaluation = jax.jit(
    lambda mp, batch: obj.evaluate(params, outputs=_outputs(mp, batch), batch=batch, model=mp)
  )(mp, batch)
  assert isinstance(evaluation, jo.Evaluation)
  assert evaluation.info.keys() == info.keys()
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), evaluation.info, info)
  assert set(evaluation.values) == {"cls", "reg", "l2_penalty"}
  assert set(evaluation.groups) == {"uncertainty_weighting"}
  _close(
    evaluation.task_losses["uncertainty_weighting"], jnp.stack([info["loss/cls"], info["loss/reg"]])
  )
  assert evaluation.state == {}
  leaves, treedef = jax.tree.flatten(evaluation)
  assert jax.tree.unflatten(treedef, leaves).info.keys() == info.keys()


def test_a_reduction_taking_function_must_return_the_pair():
  def mean_only(x, *, reduction="mean"):
    return jnp.mean(x)  # ignores reduction

  with pytest.raises(TypeError, match=r"returned a value of shape \(\).*reduce_loss.*without"):
    jo.term(mean_only, "p").apply(p=jnp.ones(3))

  def three(x, *, reduction="mean"):
    return jnp.sum(x), jnp.float32(3.0), jnp.float32(1.0)

  with pytest.raises(TypeError, match=r"tuple of shapes \[\(\), \(\), \(\)\]"):
    jo.term(three, "p").apply(p=jnp.ones(3))

  # The fixes the message names: end with reduce_loss, or drop reduction (a plain term).
  def fixed(x, *, where=None, reduction="mean"):
    return jaxobj.reduce_loss(jnp.square(x), where=where, reduction=reduction)

  p, where = jnp.arange(4.0), jnp.array([True, True, False, True])
  value, info = jo.term(fixed, "p", where="w").apply(p=p, w=where)
  _close(value, (0.0 + 1.0 + 9.0) / 3.0)
  assert float(info["count/fixed"]) == 3.0
  value, info = jo.term(lambda x: mean_only(x), "p", name="plain").apply(p=p)
  _close(value, 1.5)
  assert float(info["count/plain"]) == 1.0


def test_importing_the_objective_starts_no_jax_backend():
  code = (
    "import jaxobj.objective\n"
    "from jax._src import xla_bridge\n"
    "assert not xla_bridge._backends, sorted(xla_bridge._backends)\n"
  )
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_plain_function_terms_count_once_when_accumulated():
  obj = jo.term(jaxobj.squared_error, "batch.x", "batch.y") + jo.term(
    lambda x: jnp.mean(x), "batch.x", name="mean_x"
  )
  batch = {"x": jnp.arange(8.0), "y": jnp.zeros(8)}
  (value, info), _ = jo.accumulate_value_and_grad(
    obj, lambda m, mb: {"batch": mb}, {}, {}, jax.tree.map(lambda a: a.reshape(4, 2), batch)
  )
  whole_value, whole_info = obj.apply(batch=batch)
  _close(value, whole_value)
  _close(info, whole_info)
  assert float(info["count/mean_x"]) == 1.0 and float(info["count/squared_error"]) == 8.0


def test_nnx_accumulation_gives_optimizer_ready_gradients():
  optax = pytest.importorskip("optax")
  from flax import nnx

  from jaxobj.objective.nnx import ObjectiveModule, accumulate_value_and_grad

  class Trainer(nnx.Module):
    def __init__(self):
      self.model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
      self.objective = ObjectiveModule(
        jo.multitask(
          {
            "fit": jo.term(jaxobj.huber_loss, "outputs", "batch.y", where="batch.mask"),
            "abs": jo.term(jaxobj.absolute_error, "outputs", "batch.y"),
          },
          jo.UncertaintyWeighting(init_log_variance=0.2),
        )
      )

  def data_fn(t, mb):
    return {"outputs": t.model(mb["x"])[:, 0], "batch": mb}

  batch = _batch(n=8)
  trainer = Trainer()
  (value, info), grads = accumulate_value_and_grad(
    trainer, data_fn, jax.tree.map(lambda a: a.reshape((4, 2) + a.shape[1:]), batch)
  )

  def whole(t):
    return t.objective(**data_fn(t, batch))

  (w_value, w_info), w_grads = nnx.value_and_grad(whole, has_aux=True)(trainer)
  _close(value, w_value)
  _close(info, w_info)
  chex.assert_trees_all_close(
    nnx.to_pure_dict(grads), nnx.to_pure_dict(w_grads), rtol=1e-5, atol=1e-6
  )
  optimizer = nnx.Optimizer(trainer, optax.sgd(0.1), wrt=nnx.Param)
  before = trainer.objective.param_values
  optimizer.update(trainer, grads)
  assert not np.allclose(
    before["uncertainty_weighting"]["log_variance"]["fit"],
    trainer.objective.param_values["uncertainty_weighting"]["log_variance"]["fit"],
  )
