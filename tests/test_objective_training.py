"""Objectives in training loops: a Flax NNX model trained together with learned
uncertainty weights, and checkpoint / restore of objective params and state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

import jaxobj
from jaxobj import objective as jo
from jaxobj.objective.nnx import ObjectiveModule, ObjectiveParam, ObjectiveState

SIGMA = (0.3, 1.2)  # true noise of the two tasks: ratio 0.25


def _two_task_data(n=2048, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  a, b = rng.normal(size=4), rng.normal(size=4)
  y1 = x @ a + SIGMA[0] * rng.normal(size=n)
  y2 = np.sin(x @ b) + SIGMA[1] * rng.normal(size=n)
  return jnp.asarray(x), {"y1": jnp.asarray(y1, jnp.float32), "y2": jnp.asarray(y2, jnp.float32)}


TWO_TASKS = jo.multitask(
  {
    "first": jo.term(jaxobj.squared_error, "outputs.0", "batch.y1"),
    "second": jo.term(jaxobj.squared_error, "outputs.1", "batch.y2"),
  },
  jo.UncertaintyWeighting(),
)


class TwoHeads(nnx.Module):
  def __init__(self, rngs):
    self.trunk = nnx.Linear(4, 32, rngs=rngs)
    self.first = nnx.Linear(32, 1, rngs=rngs)
    self.second = nnx.Linear(32, 1, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.trunk(x))
    return self.first(h)[:, 0], self.second(h)[:, 0]


class Trainer(nnx.Module):
  def __init__(self, objective, rngs):
    self.model = TwoHeads(rngs)
    self.objective = ObjectiveModule(objective, rngs=rngs)


@nnx.jit
def _train_step(trainer, optimizer, x, batch):
  def loss_fn(trainer):
    return trainer.objective(outputs=trainer.model(x), batch=batch)

  (loss, info), grads = nnx.value_and_grad(loss_fn, has_aux=True)(trainer)
  optimizer.update(trainer, grads)
  return loss, info


def test_nnx_training_recovers_the_noise_ratio():
  x, batch = _two_task_data()
  trainer = Trainer(TWO_TASKS, nnx.Rngs(0))
  optimizer = nnx.Optimizer(trainer, optax.adam(0.02), wrt=nnx.Param)
  for _ in range(600):
    _, info = _train_step(trainer, optimizer, x, batch)
  s = trainer.objective.param_values["uncertainty_weighting"]["log_variance"]
  sigma = np.sqrt(np.exp([float(s["first"]), float(s["second"])]))
  ratio = sigma[0] / sigma[1]
  assert abs(ratio / (SIGMA[0] / SIGMA[1]) - 1) < 0.10, (sigma, ratio)
  # At the optimum each learned variance is the task's mean squared error.
  np.testing.assert_allclose(
    sigma**2, [float(info["loss/first"]), float(info["loss/second"])], rtol=0.05
  )


def test_nnx_filters_see_objective_params_apart_from_the_model():
  trainer = Trainer(TWO_TASKS, nnx.Rngs(0))
  objective_state = nnx.state(trainer, ObjectiveParam)
  leaves = jax.tree.leaves(objective_state)
  assert len(leaves) == 2  # the two log-variances, nothing of the model
  assert len(jax.tree.leaves(nnx.state(trainer, nnx.Param))) == 2 + 6

  # Training only the objective leaves the model untouched.
  x, batch = _two_task_data(n=64)
  before = jax.tree.map(jnp.copy, nnx.state(trainer.model, nnx.Param))
  optimizer = nnx.Optimizer(trainer, optax.sgd(0.1), wrt=ObjectiveParam)
  _train_step(trainer, optimizer, x, batch)
  jax.tree.map(np.testing.assert_array_equal, nnx.state(trainer.model, nnx.Param), before)
  assert any(float(v) != 0.0 for v in jax.tree.leaves(nnx.state(trainer, ObjectiveParam)))


def test_nnx_module_keeps_weighting_state():
  obj = jo.multitask(
    {"a": jo.term(jaxobj.squared_error, "p", None), "b": jo.term(jaxobj.absolute_error, "p", None)},
    jo.DynamicWeightAverage(),
  )
  module = ObjectiveModule(obj)
  assert len(jax.tree.leaves(nnx.state(module, ObjectiveState))) == 3
  for scale in (1.0, 0.5):
    evaluation = module.evaluate(p=jnp.array([2.0 * scale]))
    module.set_state(evaluation.state)
  state = obj.evaluate(state=obj.init_state(), p=jnp.array([2.0])).state
  np.testing.assert_allclose(
    float(module.state["dynamic_weight_average"]["before_last"][0]),
    float(state["dynamic_weight_average"]["last"][0]),
  )
  np.testing.assert_allclose(
    np.asarray(module.state["dynamic_weight_average"]["last"][...]), [1.0, 1.0]
  )


# ---------------------------------------------------------------- checkpointing


CHECKPOINTED = jo.multitask(
  {
    "first": jo.term(jaxobj.squared_error, "outputs.0", "batch.y1"),
    "second": jo.term(
      jaxobj.huber_loss, "outputs.1", "batch.y2", delta=jo.learnable(1.0, positive=True)
    ),
  },
  jo.FAMO(),
) + 1e-3 * jo.regularizer(jaxobj.l2_penalty)
TX = optax.adam(0.01)


def _functional_model(params, x):
  h = jnp.tanh(x @ params["w1"])
  return h @ params["w2"][:, 0], h @ params["w2"][:, 1]


@jax.jit
def _functional_step(carry, x, batch):
  mp, op, state, opt = carry

  def loss_fn(params):
    mp, op = params
    evaluation = CHECKPOINTED.evaluate(
      op, state=state, outputs=_functional_model(mp, x), batch=batch, model=mp
    )
    return evaluation.total, evaluation

  (loss, evaluation), grads = jax.value_and_grad(loss_fn, has_aux=True)((mp, op))
  updates, opt = TX.update(grads, opt, (mp, op))
  mp, op = optax.apply_updates((mp, op), updates)
  state = evaluation.state
  return (mp, op, state, opt), loss


def test_checkpoint_restore_continues_identically(tmp_path):
  x, batch = _two_task_data(n=128)
  key = jax.random.key(0)
  mp = {"w1": 0.5 * jax.random.normal(key, (4, 8)), "w2": jnp.zeros((8, 2))}
  op = CHECKPOINTED.init()
  carry = (mp, op, CHECKPOINTED.init_state(), TX.init((mp, op)))
  for _ in range(5):
    carry, _ = _functional_step(carry, x, batch)

  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "step5", carry)
    ckpt.wait_until_finished()
    restored = ckpt.restore(
      tmp_path / "step5", target=jax.tree.map(ocp.utils.to_shape_dtype_struct, carry)
    )
  assert jax.tree.structure(restored) == jax.tree.structure(carry)

  losses = []
  for start in (carry, restored):
    c = start
    run = []
    for _ in range(5):
      c, loss = _functional_step(c, x, batch)
      run.append(float(loss))
    losses.append((run, c))
  assert losses[0][0] == losses[1][0]
  jax.tree.map(np.testing.assert_array_equal, losses[0][1], losses[1][1])
  # The FAMO logits moved and were carried through the checkpoint.
  assert np.any(np.asarray(restored[2]["famo"]["logits"]) != 0.0)


def test_accumulated_and_cached_evaluations_carry_the_weighting_state():
  """Under microbatching the new DWA state is the whole batch's, as from evaluate()."""
  obj = jo.multitask(
    {
      "a": jo.term(jaxobj.squared_error, "outputs", "batch.y"),
      "b": jo.term(jaxobj.absolute_error, "outputs", "batch.y"),
    },
    jo.DynamicWeightAverage(),
  )
  state = obj.init_state()
  x = jnp.linspace(-1.0, 1.0, 8)
  batch = {"x": x, "y": 2.0 * x + 0.5}
  w = jnp.float32(0.3)
  whole = obj.evaluate(state=state, outputs=w * batch["x"], batch=batch)
  mbs = jax.tree.map(lambda v: v.reshape(4, 2), batch)
  evaluation, _ = jo.accumulate_value_and_grad(
    obj,
    lambda w, mb: {"outputs": w * mb["x"], "batch": mb},
    w,
    {},
    mbs,
    state=state,
    return_evaluation=True,
  )
  cached, _ = jo.cached_value_and_grad(
    obj,
    lambda w, mb: w * mb["x"][:, None],
    lambda w, emb, b: {"outputs": emb[:, 0], "batch": b},
    w,
    {},
    mbs,
    state=state,
    return_evaluation=True,
  )
  for got in (evaluation, cached):
    np.testing.assert_allclose(got.total, whole.total, rtol=1e-6)
    for leaf, want in zip(jax.tree.leaves(got.state), jax.tree.leaves(whole.state)):
      np.testing.assert_allclose(leaf, want, rtol=1e-6)
  # The default return is apply's (total, info).
  (total, info), _ = jo.accumulate_value_and_grad(
    obj, lambda w, mb: {"outputs": w * mb["x"], "batch": mb}, w, {}, mbs, state=state
  )
  np.testing.assert_allclose(total, whole.total, rtol=1e-6)
  assert info.keys() == whole.info.keys()
