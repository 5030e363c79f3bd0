"""Multi-task weighting schemes against float64 references written from their
papers' formulas, and their explicit state."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo

Y = jnp.asarray(np.random.default_rng(0).normal(size=6), jnp.float32)
TASKS = {
  "mse": jo.term(jaxobj.squared_error, "y", None),
  "mae": jo.term(jaxobj.absolute_error, "y", None),
  "l2": jo.term(jaxobj.l2_loss, "y", None),
}
L = np.array(
  [np.mean(np.float64(Y) ** 2), np.mean(np.abs(np.float64(Y))), 0.5 * np.mean(np.float64(Y) ** 2)]
)


def _weights(info):
  return np.array([float(info[f"weight/{t}"]) for t in TASKS])


def test_static_weights():
  obj = jo.multitask(TASKS, jo.StaticWeights({"mae": 2.0}))
  value, info = obj.apply(y=Y)
  np.testing.assert_allclose(float(value), L @ [1.0, 2.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(_weights(info), [1.0, 2.0, 1.0])
  with pytest.raises(ValueError, match="not tasks"):
    jo.multitask(TASKS, jo.StaticWeights({"msee": 1.0}))


def test_uncertainty_weighting_formula_and_gradient():
  kinds = {"mae": "classification"}
  obj = jo.multitask(TASKS, jo.UncertaintyWeighting(kinds=kinds))
  s = np.array([0.3, -0.7, 1.1])
  params = {
    "uncertainty_weighting": {"log_variance": dict(zip(TASKS, jnp.asarray(s, jnp.float32)))}
  }
  (value, info), g = jax.value_and_grad(lambda p: obj.apply(p, y=Y), has_aux=True)(params)
  c = np.array([0.5, 1.0, 0.5])
  np.testing.assert_allclose(float(value), np.sum(c * np.exp(-s) * L + 0.5 * s), rtol=1e-6)
  np.testing.assert_allclose(_weights(info), c * np.exp(-s), rtol=1e-6)
  grads = np.array([float(g["uncertainty_weighting"]["log_variance"][t]) for t in TASKS])
  np.testing.assert_allclose(grads, -c * np.exp(-s) * L + 0.5, rtol=1e-5)
  with pytest.raises(ValueError, match="'regression' or 'classification'"):
    jo.multitask(TASKS, jo.UncertaintyWeighting(kinds={"mse": "ordinal"}))


def test_dynamic_weight_average_follows_loss_ratios():
  obj = jo.multitask(TASKS, jo.DynamicWeightAverage(temperature=2.0))
  state = obj.init_state()
  history = []
  for scale in (1.0, 0.5, 0.8):
    y = Y * scale
    evaluation = obj.evaluate(state=state, y=y)
    if len(history) < 2:
      np.testing.assert_allclose(_weights(evaluation.info), 1.0)
    history.append(L * scale ** np.array([2, 1, 2]))
    state = evaluation.state
    # The update rule in NumPy: the new record shifts the last one back.
    dwa = state["dynamic_weight_average"]
    np.testing.assert_allclose(np.asarray(dwa["last"]), history[-1], rtol=1e-6)
    before = history[-2] if len(history) > 1 else np.ones(3)
    np.testing.assert_allclose(np.asarray(dwa["before_last"]), before, rtol=1e-6)
    assert int(dwa["records"]) == min(len(history), 2)
  _, info = obj.apply(state=state, y=Y)
  r = history[-1] / history[-2]
  expected = 3 * np.exp(r / 2) / np.sum(np.exp(r / 2))
  np.testing.assert_allclose(_weights(info), expected, rtol=1e-5)


def _famo_reference(losses_before, losses_after, logits, m, v, t, lr=0.025, wd=1e-3, eps=1e-8):
  """One FAMO logit update in float64: gradient J_softmax^T delta, L2 decay, Adam."""
  z = np.exp(logits - logits.max())
  z /= z.sum()
  delta = np.log(losses_before + eps) - np.log(losses_after + eps)
  grad = z * delta - z * np.dot(z, delta) + wd * logits
  m = 0.9 * m + 0.1 * grad
  v = 0.999 * v + 0.001 * grad**2
  m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
  return logits - lr * m_hat / (np.sqrt(v_hat) + 1e-8), m, v


def test_famo_total_weights_and_logit_updates():
  obj = jo.multitask(TASKS, jo.FAMO())
  state = obj.init_state()
  logits, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
  for t, (before, after) in enumerate([(1.0, 0.7), (0.7, 0.6), (0.6, 0.2)], start=1):
    evaluation_before = obj.evaluate(state=state, y=Y * before)
    evaluation = obj.evaluate(state=state, y=Y * after, previous=evaluation_before)
    value, info_after = obj.apply(state=state, y=Y * after)
    assert evaluation.info.keys() == info_after.keys()
    jax.tree.map(np.testing.assert_array_equal, evaluation.info, info_after)
    lb = L * before ** np.array([2, 1, 2])
    la = L * after ** np.array([2, 1, 2])
    z = np.exp(logits) / np.exp(logits).sum()
    c = np.sum(z / (la + 1e-8))
    np.testing.assert_allclose(float(value), np.sum(z * np.log(la + 1e-8)) / c, rtol=1e-5)
    np.testing.assert_allclose(_weights(info_after), z / (c * (la + 1e-8)), rtol=1e-5)
    state = evaluation.state
    logits, m, v = _famo_reference(lb, la, logits, m, v, t)
    np.testing.assert_allclose(np.asarray(state["famo"]["logits"]), logits, rtol=1e-4, atol=1e-7)


def test_famo_without_previous_uses_the_last_update():
  obj = jo.multitask(TASKS, jo.FAMO())
  state = obj.init_state()
  first = obj.evaluate(state=state, y=Y)
  state = first.state  # first record: logits unchanged
  np.testing.assert_array_equal(np.asarray(state["famo"]["logits"]), 0.0)
  explicit = obj.evaluate(state=state, y=Y * 0.5, previous=first).state
  implicit = obj.evaluate(state=state, y=Y * 0.5).state
  np.testing.assert_allclose(
    np.asarray(implicit["famo"]["logits"]), np.asarray(explicit["famo"]["logits"])
  )
  assert np.any(np.asarray(implicit["famo"]["logits"]) != 0.0)


def test_random_loss_weighting_needs_a_key_and_draws_softmax_normal_weights():
  obj = jo.multitask(TASKS, jo.RandomLossWeighting())
  with pytest.raises(ValueError, match="key="):
    obj.apply(y=Y)
  key = jax.random.key(3)
  value, info = obj.apply(y=Y, key=key)
  w = np.asarray(jax.nn.softmax(jax.random.normal(key, (3,))), np.float64)
  np.testing.assert_allclose(_weights(info), w, rtol=1e-6)
  np.testing.assert_allclose(float(value), w @ L, rtol=1e-6)
  assert not np.allclose(_weights(obj.apply(y=Y, key=jax.random.key(4))[1]), w)


def test_geometric_mean_and_its_zero_floor():
  obj = jo.multitask(TASKS, jo.GeometricMean())
  value, info = obj.apply(y=Y)
  gm = np.exp(np.mean(np.log(L)))
  np.testing.assert_allclose(float(value), gm, rtol=1e-6)
  np.testing.assert_allclose(_weights(info), gm / (3 * L), rtol=1e-5)
  g = jax.grad(lambda y: obj.apply(y=y)[0])(jnp.zeros(6))
  assert np.all(np.isfinite(g))


def test_tasks_can_be_groups_and_state_sees_their_values():
  obj = jo.multitask(
    {"a": TASKS["mse"] + TASKS["mae"], "b": TASKS["l2"]}, jo.DynamicWeightAverage()
  )
  state = obj.init_state()
  evaluation = obj.evaluate(state=state, y=Y)
  np.testing.assert_allclose(float(evaluation.info["loss/a"]), L[0] + L[1], rtol=1e-6)
  np.testing.assert_allclose(
    np.asarray(evaluation.task_losses["dynamic_weight_average"]), [L[0] + L[1], L[2]], rtol=1e-6
  )
  state = evaluation.state
  np.testing.assert_allclose(
    np.asarray(state["dynamic_weight_average"]["last"]), [L[0] + L[1], L[2]], rtol=1e-6
  )


def test_stateful_scheme_without_state_raises():
  obj = jo.multitask(TASKS, jo.DynamicWeightAverage())
  with pytest.raises(ValueError, match="init_state"):
    obj.apply(y=Y)
  with pytest.raises(ValueError, match="state do not match"):
    obj.apply(state={"famo": {}}, y=Y)


def test_a_new_scheme_by_subclassing():
  @dataclasses.dataclass(frozen=True)
  class MaxLoss(jo.WeightingScheme):
    def weigh(self, params, state, losses, *, tasks, step, key):
      return jnp.max(losses)

  value, info = jo.multitask(TASKS, MaxLoss()).apply(y=Y)
  np.testing.assert_allclose(float(value), L.max(), rtol=1e-6)
  np.testing.assert_allclose(_weights(info), np.eye(3)[np.argmax(L)])


def test_a_single_task_and_bad_scheme():
  value, _ = jo.multitask({"only": TASKS["mse"]}, jo.UncertaintyWeighting()).apply(
    {"uncertainty_weighting": {"log_variance": {"only": jnp.float32(0.0)}}}, y=Y
  )
  np.testing.assert_allclose(float(value), 0.5 * L[0], rtol=1e-6)
  with pytest.raises(TypeError, match="WeightingScheme"):
    jo.multitask(TASKS, "uncertainty")
  with pytest.raises(ValueError, match="at least one task"):
    jo.multitask({}, jo.GeometricMean())
