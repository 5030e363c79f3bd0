"""Multi-task gradient strategies: each one's defining property, float64 references
written from the papers' formulas (SciPy for the small optimization problems), the
per-task gradient helpers, the optax wrapper, checkpointed state and bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import scipy.optimize

import jaxobj
from jaxobj import objective as jo
from jaxobj.objective.gradients import solvers

P = 8  # gradient length of the matrix cases: every case shares the compiled functions


@functools.cache
def _combine(strategy):
  return jax.jit(lambda g, s, l: strategy.update(g, s, losses=l))


def run(strategy, grads, state=None, losses=None, **init):
  """``(update, new_state, info)`` of one jitted call, from a fresh state by default.

  Losses default to ones (ignored by most strategies), so that every call on
  the same shapes shares one compiled function.
  """
  leaf = jax.tree.leaves(grads)[0]
  state = strategy.init(leaf.shape[0], **init) if state is None else state
  losses = (
    jnp.ones(leaf.shape[:1], jnp.result_type(leaf, jnp.float32)) if losses is None else losses
  )
  return _combine(strategy)(grads, state, losses)


def f64(x):
  return np.asarray(x, np.float64)


def gradients(t, seed, scales=None):
  """``(t, P)`` float64 task gradients with conflicting pairs and uneven norms."""
  rng = np.random.default_rng(seed)
  g = rng.normal(size=(t, P))
  g *= np.asarray(scales if scales is not None else rng.uniform(0.3, 3.0, t))[:, None]
  dots = g @ g.T
  assert np.any(dots[np.triu_indices(t, 1)] < 0), "a case must have a conflicting pair"
  return g


CASES = [(2, 0), (3, 1), (4, 2), (4, 3)]


def _degenerate():
  g = gradients(3, 1)
  g[1] = -2.0 * g[0]  # collinear and opposed
  return g


# ---------------------------------------------------------------- per-task gradients


def _mlp_losses(params, x, y):
  h = jnp.tanh(x @ params["w"] + params["b"])
  out = h @ params["heads"]  # (N, 3): one column per task
  return jnp.mean((out - y) ** 2, axis=0)


def _mlp_inputs():
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 5)), "b": rng.normal(size=5), "heads": rng.normal(size=(5, 3))}
  return params, rng.normal(size=(6, 4)), rng.normal(size=(6, 3))


def test_value_and_task_grad_equals_one_grad_per_task():
  params, x, y = _mlp_inputs()
  with jax.enable_x64(True):
    params = jax.tree.map(jnp.asarray, params)
    losses, grads = jax.jit(jo.value_and_task_grad(_mlp_losses))(params, x, y)
    np.testing.assert_allclose(f64(losses), f64(_mlp_losses(params, x, y)), rtol=1e-12)
    for t in range(3):
      want = jax.grad(lambda p, t=t: _mlp_losses(p, x, y)[t])(params)
      jax.tree.map(
        lambda a, b, t=t: np.testing.assert_allclose(f64(a[t]), f64(b), rtol=1e-10, atol=1e-12),
        grads,
        want,
      )
    chunked = jax.jit(jo.value_and_task_grad(_mlp_losses, batch_size=2))(params, x, y)[1]
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(f64(a), f64(b), rtol=1e-12), chunked, grads
    )
    (_, aux), (gx, gp) = jo.value_and_task_grad(
      lambda p, x: (_mlp_losses(p, x, y), "aux"), argnums=(1, 0), has_aux=True
    )(params, x)
    assert aux == "aux" and gx.shape == (3,) + x.shape and gp["w"].shape == (3, 4, 5)
    np.testing.assert_allclose(
      f64(gx[1]),
      f64(jax.grad(lambda x: _mlp_losses(params, x, y)[1])(jnp.asarray(x))),
      rtol=1e-10,
      atol=1e-12,
    )


def test_value_and_task_grad_reads_a_multitask_evaluations_task_losses():
  obj = jo.multitask(
    {
      "fit": jo.term(jaxobj.squared_error, "p", "y"),
      "robust": jo.term(jaxobj.huber_loss, "p", "y", delta=0.5),
    },
    jo.UncertaintyWeighting(),
  )
  y = jnp.asarray([0.0, 1.0, -2.0])
  params = obj.init()
  fn = lambda w: obj.evaluate(params, p=w * jnp.arange(3.0), y=y)
  (losses, evaluation), grads = jax.jit(jo.value_and_task_grad(fn))(jnp.float32(0.7))
  assert isinstance(evaluation, jo.Evaluation)
  info = evaluation.info
  np.testing.assert_allclose(losses, [info["loss/fit"], info["loss/robust"]])
  for t, name in enumerate(["fit", "robust"]):
    want = jax.grad(lambda w, name=name: fn(w).values[name])(jnp.float32(0.7))
    np.testing.assert_allclose(float(grads[t]), float(want), rtol=1e-6)
  # A nested node is found by its path; with two nodes, node= picks one.
  two = jo.group("mtl", obj) + jo.multitask(
    {"rev": jo.term(jaxobj.absolute_error, "p", "y")}, name="other"
  )
  fn2 = lambda w: two.evaluate(
    {"mtl/uncertainty_weighting": params["uncertainty_weighting"]}, p=w * jnp.arange(3.0), y=y
  )
  (nested, _), nested_grads = jo.value_and_task_grad(fn2, node="mtl/uncertainty_weighting")(
    jnp.float32(0.7)
  )
  np.testing.assert_allclose(nested, losses, rtol=1e-6)
  np.testing.assert_allclose(nested_grads, grads, rtol=1e-6)
  with pytest.raises(ValueError, match="2 jo.multitask nodes.*node="):
    jo.value_and_task_grad(fn2)(jnp.float32(0.7))
  with pytest.raises(KeyError, match="other"):
    jo.value_and_task_grad(fn2, node="mtl")(jnp.float32(0.7))
  single = jo.term(jaxobj.squared_error, "p", "y")
  with pytest.raises(ValueError, match="no jo.multitask node"):
    jo.value_and_task_grad(lambda w: single.evaluate(p=w * jnp.arange(3.0), y=y))(jnp.float32(0.7))
  with pytest.raises(TypeError, match="evaluate"):
    jo.value_and_task_grad(lambda w: obj.apply(params, p=w * jnp.arange(3.0), y=y))(
      jnp.float32(0.7)
    )


def test_value_and_task_grad_rejects_a_scalar_loss():
  with pytest.raises(ValueError, match=r"shape \(T,\).*got shape \(\)"):
    jo.value_and_task_grad(lambda w: jnp.sum(w))(jnp.ones(2))
  with pytest.raises(ValueError, match="argnums"):
    jo.value_and_task_grad(lambda w: w, argnums=1)(jnp.ones(2))
  with pytest.raises(ValueError, match="batch_size"):
    jo.value_and_task_grad(lambda w: w, batch_size=0)(jnp.ones(2))


def _encoder(p, x, y):
  return jnp.tanh(x @ p["w"] + p["b"])


def _heads(h, z, x, y):
  return jnp.mean((z @ h - y) ** 2, axis=0)


def test_representation_grads_pull_back_the_combined_cotangent_once():
  params, x, y = _mlp_inputs()
  enc = {"w": params["w"], "b": params["b"]}
  with jax.enable_x64(True):
    enc, heads = jax.tree.map(jnp.asarray, enc), jnp.asarray(params["heads"])
    value, rep_grads, pullback = jo.representation_task_grads(_encoder, _heads, enc, heads, x, y)
    z = _encoder(enc, x, y)
    np.testing.assert_allclose(f64(value), f64(_heads(heads, z, x, y)), rtol=1e-12)
    for t in range(3):
      np.testing.assert_allclose(
        f64(rep_grads[t]),
        f64(jax.grad(lambda z, t=t: _heads(heads, z, x, y)[t])(z)),
        rtol=1e-10,
        atol=1e-12,
      )
    # Any weights on the representation gradients give the gradient of the
    # weighted loss for the encoder; the heads get the gradient of the sum.
    w = jnp.asarray([0.2, 1.5, 0.7])
    enc_grads, head_grads = pullback(jnp.tensordot(w, rep_grads, axes=1))
    want = jax.grad(lambda p: w @ _heads(heads, _encoder(p, x, y), x, y))(enc)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(f64(a), f64(b), rtol=1e-10), enc_grads, want
    )
    np.testing.assert_allclose(
      f64(head_grads), f64(jax.grad(lambda h: jnp.sum(_heads(h, z, x, y)))(heads)), rtol=1e-10
    )


# ---------------------------------------------------------------- PCGrad and GradVac


def pcgrad_reference(g, orders):
  """Yu et al. (2020), Alg. 1, in float64: returns (update, projected gradients)."""
  projected = []
  for i in range(len(g)):
    gi = g[i].copy()
    for j in orders[i]:
      if j != i and gi @ g[j] < 0:
        gi = gi - (gi @ g[j]) / (g[j] @ g[j]) * g[j]
    projected.append(gi)
  return np.sum(projected, axis=0), np.asarray(projected)


@pytest.mark.parametrize("t, seed", CASES)
def test_pcgrad_fixed_order_matches_reference(t, seed):
  g = gradients(t, seed)
  with jax.enable_x64(True):
    u, _, info = run(jo.PCGrad(shuffle=False), jnp.asarray(g))
  want, projected = pcgrad_reference(g, [range(t)] * t)
  np.testing.assert_allclose(f64(u), want, rtol=1e-10, atol=1e-12)
  # Each projected gradient conflicts with none of the tasks it was last projected on.
  assert projected[0] @ g[t - 1] >= -1e-10 and projected[t - 1] @ g[t - 2] >= -1e-10
  assert int(info["projections"]) >= 1


def test_pcgrad_two_tasks_leave_no_conflicting_pair():
  g = gradients(2, 0)
  with jax.enable_x64(True):
    u, _, _ = run(jo.PCGrad(), jnp.asarray(g))
  _, projected = pcgrad_reference(g, [[1], [0]])
  assert projected[0] @ g[1] >= -1e-12 and projected[1] @ g[0] >= -1e-12
  assert np.all(g @ f64(u) >= -1e-10)
  np.testing.assert_allclose(f64(u), projected.sum(0), rtol=1e-10)


def test_pcgrad_random_orders_are_some_permutation_and_change_per_call():
  g = gradients(3, 1)
  orders = [(a, b) for a in range(3) for b in range(3) if a != b]
  candidates = [
    pcgrad_reference(g, [o0, o1, o2])[0]
    for o0 in orders
    if 0 not in o0
    for o1 in orders
    if 1 not in o1
    for o2 in orders
    if 2 not in o2
  ]
  with jax.enable_x64(True):
    state = jo.PCGrad().init(3, key=jax.random.key(5))
    seen = set()
    for _ in range(4):
      u, state, _ = run(jo.PCGrad(), jnp.asarray(g), state)
      match = [i for i, c in enumerate(candidates) if np.allclose(f64(u), c, rtol=1e-9)]
      assert match, "the update is PCGrad for no task order"
      seen.add(match[0])
  assert len(seen) > 1 or len({tuple(np.round(c, 8)) for c in candidates}) == 1


def test_gradvac_reaches_its_target_cosine_and_updates_the_ema():
  g = gradients(2, 0)
  cos = g[0] @ g[1] / np.linalg.norm(g[0]) / np.linalg.norm(g[1])
  target = 0.5
  assert cos < target
  strategy = jo.GradVac(beta=0.1, shuffle=False)
  state = strategy.init(2)
  state["target"] = jnp.asarray([[0.0, target], [target, 0.0]], jnp.float32)
  with jax.enable_x64(True):
    _, new_state, info = run(strategy, jnp.asarray(g), state)
  w = f64(info["weights"])
  # The update is g0 + c0 g1 (task 0 vaccinated) + g1 + c1 g0.
  c1, c0 = w[0] - 1.0, w[1] - 1.0
  vaccinated0 = g[0] + c0 * g[1]
  vaccinated1 = g[1] + c1 * g[0]
  for a, b in [(vaccinated0, g[1]), (vaccinated1, g[0])]:
    np.testing.assert_allclose(a @ b / np.linalg.norm(a) / np.linalg.norm(b), target, rtol=1e-6)
  target_f32 = float(np.float32(target))
  np.testing.assert_allclose(
    f64(new_state["target"])[0, 1], (1 - 0.1) * target_f32 + 0.1 * cos, rtol=1e-6
  )
  np.testing.assert_allclose(f64(new_state["target"]).diagonal(), 0.0)


def test_gradvac_with_zero_targets_is_pcgrad():
  g = gradients(4, 2)
  with jax.enable_x64(True):
    u, state, _ = run(jo.GradVac(shuffle=False), jnp.asarray(g))
    want, _ = run(jo.PCGrad(shuffle=False), jnp.asarray(g))[:2]
  np.testing.assert_allclose(f64(u), f64(want), rtol=1e-9)
  cos = g @ g.T / np.outer(np.linalg.norm(g, axis=1), np.linalg.norm(g, axis=1))
  assert np.any(f64(state["target"]) != 0) and np.all(np.abs(f64(state["target"])) <= 0.01)
  np.testing.assert_allclose(f64(state["target"])[0, 1], 0.01 * cos[0, 1], rtol=1e-5)


# ---------------------------------------------------------------- GradDrop


def test_graddrop_keeps_one_sign_per_element_and_follows_the_sign_purity():
  rng = np.random.default_rng(7)
  g = rng.normal(size=(3, P))
  g[:, 0] = [1.0, -3.0, 0.5]  # P = (1.5 - 3 + 0 ...) -> purity (1 - 1.5/4.5)/2 = 1/3
  positive, negative = np.where(g > 0, g, 0).sum(0), np.where(g < 0, g, 0).sum(0)
  keys = jax.random.split(jax.random.key(0), 400)
  strategy = jo.GradDrop()
  with jax.enable_x64(True):
    grads = jnp.asarray(g)
    updates = jax.jit(jax.vmap(lambda k: strategy.update(grads, strategy.init(3, key=k))[0]))(keys)
  updates = f64(updates)
  is_pos = np.isclose(updates, positive, rtol=1e-12)
  assert np.all(is_pos | np.isclose(updates, negative, rtol=1e-12))
  purity = 0.5 * (1 + g.sum(0) / np.abs(g).sum(0))
  np.testing.assert_allclose(is_pos.mean(0), purity, atol=0.08)
  leaky = jo.GradDrop(leak=1.0)
  np.testing.assert_allclose(f64(run(leaky, jnp.asarray(g, jnp.float32))[0]), g.sum(0), rtol=1e-5)


def test_graddrop_sum_axes_decide_one_sign_per_feature():
  rng = np.random.default_rng(8)
  g = rng.normal(size=(2, 4, 3)).astype(np.float32)  # (tasks, batch, features)
  u, _, info = run(jo.GradDrop(sum_axes=(0,)), jnp.asarray(g))
  summed = g.sum(1)
  for f in range(3):
    pos = np.where(g[:, :, f] > 0, g[:, :, f], 0).sum(0)
    neg = np.where(g[:, :, f] < 0, g[:, :, f], 0).sum(0)
    assert np.allclose(u[:, f], pos, atol=1e-6) or np.allclose(u[:, f], neg, atol=1e-6), summed
  assert np.all((f64(info["weights"]) >= 0) & (f64(info["weights"]) <= 1))


# ---------------------------------------------------------------- MGDA


def min_norm_reference(g):
  """The min-norm point of the convex hull of the rows, by SLSQP from every vertex."""
  m = g @ g.T
  best = None
  for start in [np.full(len(g), 1 / len(g))] + list(np.eye(len(g))):
    res = scipy.optimize.minimize(
      lambda w: w @ m @ w,
      start,
      jac=lambda w: 2 * m @ w,
      method="SLSQP",
      bounds=[(0, 1)] * len(g),
      constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
      options={"ftol": 1e-16, "maxiter": 500},
    )
    if best is None or res.fun < best.fun:
      best = res
  return best.x, best.fun


@pytest.mark.parametrize(
  "g",
  [gradients(t, s) for t, s in CASES] + [_degenerate()],
  ids=[f"T{t}-{s}" for t, s in CASES] + ["collinear"],
)
def test_mgda_is_the_min_norm_point_of_the_convex_hull(g):
  with jax.enable_x64(True):
    u, _, info = run(jo.MGDA(), jnp.asarray(g))
  w = f64(info["weights"])
  w_ref, value_ref = min_norm_reference(g)
  scale = np.max(np.sum(g**2, 1))
  assert np.all(w >= 0) and np.isclose(w.sum(), 1.0)
  np.testing.assert_allclose(f64(u), w @ g, rtol=1e-9, atol=1e-12)
  assert f64(u) @ f64(u) <= value_ref + 1e-7 * scale
  np.testing.assert_allclose(f64(u), w_ref @ g, atol=1e-4 * np.sqrt(scale))
  # KKT: every task improves at least as much as the min-norm point's squared norm.
  assert np.all(g @ f64(u) >= f64(u) @ f64(u) - 1e-7 * scale)


def test_mgda_normalizations_weight_the_raw_gradients():
  g = gradients(3, 1)
  losses = np.array([0.5, 2.0, 1.5])
  with jax.enable_x64(True):
    for mode, n in [
      ("l2", np.linalg.norm(g, axis=1)),
      ("loss+", losses * np.linalg.norm(g, axis=1)),
    ]:
      u, _, info = run(jo.MGDA(normalize=mode), jnp.asarray(g), losses=jnp.asarray(losses))
      w_ref, _ = min_norm_reference(g / n[:, None])
      np.testing.assert_allclose(f64(info["weights"]), w_ref, atol=1e-5)
      np.testing.assert_allclose(f64(u), f64(info["weights"]) @ g, rtol=1e-9)
  with pytest.raises(ValueError, match="losses="):
    jo.MGDA(normalize="loss").update(jnp.asarray(g), jo.MGDA().init(3))
  with pytest.raises(ValueError, match="normalize"):
    jo.MGDA(normalize="L2")


def test_solvers_beyond_the_exact_size_match_scipy():
  g = np.random.default_rng(3).normal(size=(12, 6))
  m = g @ g.T
  w = f64(jax.jit(solvers.simplex_qp)(jnp.asarray(solvers.ridged(jnp.asarray(m)), jnp.float32)))
  _, value_ref = min_norm_reference(g)
  assert abs(w @ m @ w - value_ref) <= 1e-5 * np.trace(m) / 12
  # One column of UPGrad's dual, by FISTA against SLSQP.
  v = f64(
    jax.jit(solvers.nonnegative_qp)(
      solvers.ridged(jnp.asarray(m, jnp.float32)), jnp.asarray(m[:1], jnp.float32)
    )
  )[0]
  ref = scipy.optimize.minimize(
    lambda v: 0.5 * v @ m @ v + v @ m[0],
    np.zeros(12),
    jac=lambda v: m @ v + m[0],
    bounds=[(0, None)] * 12,
    method="L-BFGS-B",
    options={"ftol": 1e-15, "gtol": 1e-12},
  )
  value = 0.5 * v @ m @ v + v @ m[0]
  assert value <= ref.fun + 1e-5 * np.trace(m) / 12
  # CAGrad's dual by bisection: the same objective as SLSQP's, to 1e-4 of its scale.
  radius = 0.4 * np.sqrt(m.mean())
  w = f64(
    jax.jit(solvers.conflict_averse_weights)(
      solvers.ridged(jnp.asarray(m, jnp.float32)), jnp.float32(radius)
    )
  )
  objective = lambda w: w @ m.mean(1) + radius * np.sqrt(w @ m @ w)  # noqa: E731
  w_ref = scipy.optimize.minimize(
    objective,
    np.full(12, 1 / 12),
    method="SLSQP",
    bounds=[(0, 1)] * 12,
    options={"ftol": 1e-16},
    constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
  ).x
  assert abs(w.sum() - 1) < 1e-5 and np.all(w >= 0)
  assert objective(w) <= objective(w_ref) + 1e-4 * np.sqrt(np.trace(m) / 12)


# ---------------------------------------------------------------- CAGrad


def cagrad_reference(g, c):
  """Liu et al. (2021): the dual by SLSQP, then d = g0 + c|g0| g_w / |g_w|, over 1 + c^2."""
  m = g @ g.T
  t = len(g)
  b = m.mean(1)
  radius = c * np.sqrt(m.mean())
  obj = lambda w: w @ b + radius * np.sqrt(w @ m @ w)
  best = None
  for start in [np.full(t, 1 / t)] + list(np.eye(t)):
    res = scipy.optimize.minimize(
      obj,
      start,
      method="SLSQP",
      bounds=[(0, 1)] * t,
      constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
      options={"ftol": 1e-16, "maxiter": 500},
    )
    if best is None or res.fun < best.fun:
      best = res
  gw = best.x @ g
  g0 = g.mean(0)
  return (g0 + radius / np.linalg.norm(gw) * gw) / (1 + c**2)


@pytest.mark.parametrize("t, seed", CASES)
def test_cagrad_matches_reference_and_maximizes_the_worst_improvement(t, seed):
  g = gradients(t, seed)
  c = 0.4
  with jax.enable_x64(True):
    u, _, _ = run(jo.CAGrad(c=c), jnp.asarray(g))
  d = f64(u) * (1 + c**2)
  np.testing.assert_allclose(
    d, cagrad_reference(g, c) * (1 + c**2), atol=1e-5 * np.linalg.norm(g.mean(0))
  )
  g0 = g.mean(0)
  radius = c * np.linalg.norm(g0)
  assert np.linalg.norm(d - g0) <= radius * (1 + 1e-6)
  rng = np.random.default_rng(seed)
  others = rng.normal(size=(2000, P))
  others = g0 + radius * others / np.linalg.norm(others, axis=1, keepdims=True) * rng.uniform(
    0, 1, (2000, 1)
  ) ** (1 / P)
  assert np.min(g @ d) >= np.max(np.min(others @ g.T, axis=1)) - 1e-9


def test_cagrad_with_zero_radius_is_the_mean_gradient():
  g = gradients(3, 1)
  with jax.enable_x64(True):
    u, _, _ = run(jo.CAGrad(c=0.0), jnp.asarray(g))
  np.testing.assert_allclose(f64(u), g.mean(0), rtol=1e-10)
  with pytest.raises(ValueError, match="radius"):
    jo.CAGrad(c=-1.0)


# ---------------------------------------------------------------- UPGrad


def dual_cone_projection_reference(g, x):
  """argmin_y |y - x|^2 s.t. g y >= 0, by SLSQP."""
  res = scipy.optimize.minimize(
    lambda y: np.sum((y - x) ** 2),
    x,
    jac=lambda y: 2 * (y - x),
    method="SLSQP",
    constraints={"type": "ineq", "fun": lambda y: g @ y, "jac": lambda y: g},
    options={"ftol": 1e-16, "maxiter": 1000},
  )
  return res.x


@pytest.mark.parametrize(
  "g",
  [gradients(t, s) for t, s in CASES] + [_degenerate()],
  ids=[f"T{t}-{s}" for t, s in CASES] + ["collinear"],
)
def test_upgrad_conflicts_with_no_task_and_averages_the_projections(g):
  with jax.enable_x64(True):
    u, _, _ = run(jo.UPGrad(), jnp.asarray(g))
  u = f64(u)
  scale = np.max(np.linalg.norm(g, axis=1))
  assert np.all(g @ u >= -1e-6 * scale * np.linalg.norm(u))
  want = np.mean([dual_cone_projection_reference(g, gi) for gi in g], axis=0)
  np.testing.assert_allclose(u, want, atol=1e-5 * scale)


def test_upgrad_without_conflict_is_the_mean():
  g = np.abs(np.random.default_rng(2).normal(size=(3, P)))
  with jax.enable_x64(True):
    u, _, _ = run(jo.UPGrad(), jnp.asarray(g))
  np.testing.assert_allclose(f64(u), g.mean(0), rtol=1e-6)


# ---------------------------------------------------------------- IMTL-G, Nash-MTL, Aligned-MTL


@pytest.mark.parametrize("t, seed", CASES)
def test_imtlg_projects_equally_on_every_task(t, seed):
  g = gradients(t, seed)
  with jax.enable_x64(True):
    u, _, info = run(jo.IMTLG(), jnp.asarray(g))
  unit = g / np.linalg.norm(g, axis=1, keepdims=True)
  proj = unit @ f64(u)
  np.testing.assert_allclose(proj, proj[0], rtol=1e-8)
  np.testing.assert_allclose(proj[0], f64(info["projection"]), rtol=1e-8)
  # The paper's closed form: alpha_2..T = g_1 U^T (D U^T)^-1, alpha_1 = 1 - sum.
  d, du = g[0] - g[1:], unit[0] - unit[1:]
  rest = g[0] @ du.T @ np.linalg.inv(d @ du.T)
  np.testing.assert_allclose(f64(info["weights"]), np.r_[1 - rest.sum(), rest], rtol=1e-7)


@pytest.mark.parametrize("t, seed", CASES)
def test_nash_mtl_solves_the_bargaining_equation(t, seed):
  g = gradients(t, seed)
  with jax.enable_x64(True):
    _, _, info = run(jo.NashMTL(), jnp.asarray(g))
  alpha = f64(info["weights"])
  assert np.all(alpha > 0)
  np.testing.assert_allclose(g @ g.T @ alpha, 1 / alpha, rtol=1e-5)  # g_t . u = 1 / alpha_t


def test_nash_mtl_reuses_its_weights_is_scale_invariant_and_clips():
  g = gradients(2, 0)
  every = jo.NashMTL(update_weights_every=2)
  with jax.enable_x64(True):
    u1, s1, i1 = run(every, jnp.asarray(g))
    _, s2, i2 = run(every, jnp.asarray(g[::-1]), s1)
    u3, _, i3 = run(every, jnp.asarray(10.0 * g), s2)
    clipped, _, _ = run(jo.NashMTL(max_norm=0.1), jnp.asarray(g))
  np.testing.assert_allclose(f64(i2["weights"]), f64(np.float32(f64(i1["weights"]))))
  np.testing.assert_allclose(f64(u3), f64(u1), rtol=1e-5)  # 10x the gradients: same update
  np.testing.assert_allclose(f64(i3["weights"]), f64(i1["weights"]) / 10, rtol=1e-5)
  np.testing.assert_allclose(
    np.linalg.norm(f64(clipped)), min(0.1, np.linalg.norm(f64(u1))), rtol=1e-6
  )


@pytest.mark.parametrize("t, seed", CASES)
def test_aligned_mtl_aligns_the_principal_components(t, seed):
  g = gradients(t, seed)
  with jax.enable_x64(True):
    u, _, info = run(jo.AlignedMTL(), jnp.asarray(g))
  lam, vec = np.linalg.eigh(g @ g.T)
  b = np.sqrt(lam.min()) * vec @ np.diag(lam**-0.5) @ vec.T
  np.testing.assert_allclose(f64(info["weights"]), b.sum(1), rtol=1e-7)
  aligned = b @ g  # rows orthogonal, each of norm sqrt(lambda_min)
  np.testing.assert_allclose(aligned @ aligned.T, lam.min() * np.eye(t), atol=1e-9 * lam.max())
  np.testing.assert_allclose(f64(u), aligned.sum(0), rtol=1e-7)


# ---------------------------------------------------------------- GradNorm and DB-MTL


def test_gradnorm_equalizes_weighted_gradient_norms_at_its_fixed_point():
  g = gradients(3, 1, scales=[0.2, 1.0, 5.0])
  norms = np.linalg.norm(g, axis=1)
  losses = jnp.asarray([2.0, 1.0, 0.5])
  strategy = jo.GradNorm(alpha=1.5, optimizer=optax.adam(optax.exponential_decay(0.1, 50, 0.5)))
  with jax.enable_x64(True):
    state = strategy.init(3)
    for _ in range(300):  # constant loss ratios (1 each): the targets are all equal
      _, state, info = run(strategy, jnp.asarray(g), state, losses)
  w = f64(state["weights"])
  np.testing.assert_allclose(w.sum(), 3.0, rtol=1e-6)
  weighted = w * norms
  np.testing.assert_allclose(weighted, weighted.mean(), rtol=5e-3)
  np.testing.assert_allclose(w, 3 * (1 / norms) / np.sum(1 / norms), rtol=5e-3)
  assert float(info["grad_loss"]) < 1e-2 * weighted.mean()


def test_gradnorm_step_follows_the_formula():
  g = gradients(3, 1)
  norms = np.linalg.norm(g, axis=1)
  l0, l1 = np.array([2.0, 1.0, 0.5]), np.array([1.0, 0.9, 0.45])
  lr, alpha = 0.01, 1.5
  strategy = jo.GradNorm(alpha=alpha, optimizer=optax.sgd(lr))
  with jax.enable_x64(True):
    u0, s, _ = run(strategy, jnp.asarray(g), losses=jnp.asarray(l0))
    u1, s, info = run(strategy, jnp.asarray(g), s, jnp.asarray(l1))
  w = np.ones(3)
  for losses in (l0, l1):
    r = (losses / l0) / np.mean(losses / l0)
    target = np.mean(w * norms) * r**alpha
    used = w
    w = np.maximum(w - lr * np.sign(w * norms - target) * norms, 0)
    w = 3 * w / w.sum()
  np.testing.assert_allclose(f64(u0), g.sum(0), rtol=1e-7)
  np.testing.assert_allclose(f64(info["weights"]), used, rtol=1e-6)
  np.testing.assert_allclose(f64(u1), used @ g, rtol=1e-6)
  np.testing.assert_allclose(f64(s["weights"]), w, rtol=1e-6)
  np.testing.assert_allclose(f64(s["initial_losses"]), l0)


def test_dbmtl_matches_reference_over_steps():
  rng = np.random.default_rng(9)
  beta, sigma, eps = 0.9, 0.5, 1e-8
  strategy = jo.DBMTL(beta=beta, beta_sigma=sigma)
  buffer = np.zeros((3, P))
  with jax.enable_x64(True):
    state = strategy.init(3, like=jnp.zeros(P))
    for k in range(1, 4):
      g = rng.normal(size=(3, P))
      losses = rng.uniform(0.1, 3.0, 3)
      u, state, _ = run(strategy, jnp.asarray(g), state, jnp.asarray(losses))
      b = beta / k**sigma
      buffer = b * buffer + (1 - b) * g / (losses + eps)[:, None]
      n = np.linalg.norm(buffer, axis=1)
      want = (n.max() / (n + eps)) @ buffer
      np.testing.assert_allclose(f64(u), want, rtol=1e-6)
      np.testing.assert_allclose(f64(state["buffer"]), buffer, rtol=1e-5)  # stored in f32
  with pytest.raises(ValueError, match="like="):
    strategy.init(3)


# ---------------------------------------------------------------- two conflicting tasks


def _toy_losses(x):
  a = jnp.zeros(P).at[0].set(-1.0)
  b = jnp.zeros(P).at[0].set(1.0)
  return jnp.stack([5.0 * jnp.sum((x - a) ** 2), 0.5 * jnp.sum((x - b) ** 2)])


_TOY_GRAD = jax.jit(jo.value_and_task_grad(_toy_losses))

CONFLICT_AVERSE = [
  jo.PCGrad(),
  jo.GradVac(),
  jo.MGDA(),
  jo.CAGrad(),
  jo.CAGrad(c=1.5),
  jo.GradNorm(alpha=0.0, learning_rate=0.1),
  jo.IMTLG(),
  jo.NashMTL(),
  jo.AlignedMTL(),
  jo.UPGrad(),
  jo.DBMTL(),
]


def _train(strategy, steps=300, lr=0.01):
  # float64 (it shares the compiled T = 2 cases): in float32, Aligned-MTL's
  # rank truncation at eps * T (as in the authors' code) turns it into the
  # dominant direction once the two gradients are collinear at the Pareto front.
  with jax.enable_x64(True):
    x = jnp.zeros(P, jnp.float64).at[1].set(0.9)
    state = strategy.init(2, like=x)
    first = None
    for _ in range(steps):
      losses, grads = _TOY_GRAD(x)
      update, new_state, _ = run(strategy, grads, state, losses)
      assert jax.tree.structure(new_state) == jax.tree.structure(state)
      assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(lambda a: a.dtype, state)
      state = new_state
      if first is None:
        first = (f64(losses), f64(grads) @ f64(update))
      x = x - lr * update
    return first, f64(_toy_losses(x))


def test_equal_weighting_sacrifices_the_weak_task():
  # Task 0's gradient is ten times larger and conflicts with task 1's: the
  # plain sum (EW) drives task 1's loss up on the way to the sum's minimizer.
  (start, slopes), end = _train(jo.WeightedSum())
  assert slopes[1] < 0 and end[1] > 1.5 * start[1] and end[0] < start[0]
  # GradDrop keeps the majority sign, so it follows the dominant task as well.
  (_, _), end = _train(jo.GradDrop())
  assert end[1] > start[1]


@pytest.mark.parametrize("strategy", CONFLICT_AVERSE, ids=repr)
def test_strategies_make_progress_on_both_conflicting_tasks(strategy):
  (start, slopes), end = _train(strategy)
  if not isinstance(strategy, jo.GradNorm):  # GradNorm starts from equal weights
    assert np.all(slopes > 0), "the first update must be a descent direction of both tasks"
  if isinstance(strategy, jo.CAGrad) and strategy.c < 1:
    return  # c < 1 converges to the sum's minimizer (Liu et al. 2021, Thm. 3.2)
  assert np.all(end < start), (start, end)


# ---------------------------------------------------------------- optax, checkpoints


ALL = [
  jo.WeightedSum(),
  jo.PCGrad(),
  jo.GradVac(),
  jo.GradDrop(),
  jo.MGDA(),
  jo.CAGrad(),
  jo.GradNorm(),
  jo.IMTLG(),
  jo.NashMTL(),
  jo.AlignedMTL(),
  jo.UPGrad(),
  jo.DBMTL(),
]


STATEFUL = [jo.GradNorm(), jo.DBMTL(), jo.PCGrad()]  # optimizer state, buffers, a key
SHAPED = STATEFUL[:2]  # the optax wrapper: task_losses= and init(like=params)
PARAMS = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
STACK = jax.tree.map(lambda p: jnp.stack([p + 1.0, -2.0 * p + 0.5]), PARAMS)
LOSSES = jnp.asarray([1.0, 2.0])


def test_optax_chain_equals_combine_then_optimizer():
  for strategy in SHAPED:
    tx = optax.chain(jo.task_gradient_transform(strategy, 2, key=jax.random.key(3)), optax.sgd(0.1))
    state = tx.init(PARAMS)
    updates, state = jax.jit(lambda g, s, p, l, tx=tx: tx.update(g, s, p, task_losses=l))(
      STACK, state, PARAMS, LOSSES
    )
    combined, _, info = run(strategy, STACK, losses=LOSSES, like=PARAMS, key=jax.random.key(3))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, -0.1 * b, rtol=1e-6), updates, combined)
    np.testing.assert_allclose(state[0].info["weights"], info["weights"], rtol=1e-6)
  with pytest.raises(TypeError, match="strategy"):
    jo.task_gradient_transform("pcgrad", 2)


def test_state_round_trips_through_a_checkpoint(tmp_path):
  states = {}
  for strategy in STATEFUL:
    _, state, _ = run(strategy, STACK, losses=LOSSES, like=PARAMS)
    states[type(strategy).__name__] = state
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "state", states)
    ckpt.wait_until_finished()
    restored = ckpt.restore(
      tmp_path / "state", target=jax.tree.map(ocp.utils.to_shape_dtype_struct, states)
    )
  assert jax.tree.structure(restored) == jax.tree.structure(states)
  for strategy in STATEFUL:
    name = type(strategy).__name__
    a = run(strategy, STACK, states[name], LOSSES)
    b = run(strategy, STACK, restored[name], LOSSES)
    jax.tree.map(np.testing.assert_array_equal, a, b)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("strategy", ALL, ids=repr)
def test_a_single_task_gives_its_own_gradient(strategy):
  g = jnp.asarray([[0.5, -1.0, 2.0]], jnp.float32)
  u, _, _ = run(strategy, g, losses=jnp.asarray([0.7]), like=jnp.zeros(3))
  scale = {
    "CAGrad": (1 + 0.4) / (1 + 0.4**2),
    "DBMTL": (1 - 0.9) / 0.7,
    "NashMTL": 1 / np.linalg.norm(g),
  }.get(type(strategy).__name__, 1.0)
  np.testing.assert_allclose(u, scale * g[0], rtol=1e-5)


@pytest.mark.parametrize("strategy", ALL, ids=repr)
def test_nonfinite_and_zero_gradients_give_finite_updates(strategy):
  g = gradients(2, 0)  # float64 (2, P): the compiled functions of the T = 2 cases
  g[1, :3] = [np.nan, np.inf, -np.inf]
  losses = np.asarray([1.5, np.nan])
  with jax.enable_x64(True):
    u, state, info = run(strategy, jnp.asarray(g), losses=jnp.asarray(losses), like=jnp.zeros(P))
    assert np.all(np.isfinite(u)) and np.all(np.isfinite(state["weights"]))
    np.testing.assert_array_equal(info["nonfinite"], [False, True])
    # The same as if the task's gradient had been zero.
    zeroed = jnp.asarray(g).at[1].set(0.0)
    np.testing.assert_allclose(
      u,
      run(strategy, zeroed, losses=jnp.asarray([1.5, 1.0]), like=jnp.zeros(P))[0],
      rtol=1e-9,
      atol=1e-12,
    )
    u, _, _ = run(strategy, jnp.zeros((2, P)), like=jnp.zeros(P))
  np.testing.assert_array_equal(u, 0.0)


def test_mgda_with_a_zero_task_gradient_is_pareto_stationary():
  g = jnp.asarray([[0.0, 0.0, 0.0], [0.5, -1.0, 2.0]])
  u, _, info = run(jo.MGDA(), g)
  np.testing.assert_allclose(u, 0.0, atol=1e-6)
  np.testing.assert_allclose(info["weights"], [1.0, 0.0], atol=1e-6)


def test_state_and_call_must_agree_on_the_task_count():
  grads = jnp.ones((2, 3))
  for strategy in (jo.PCGrad(), jo.GradNorm(), jo.MGDA()):
    with pytest.raises(ValueError, match=r"made for 3 tasks.*stack 2 tasks.*num_tasks=2"):
      strategy.update(grads, strategy.init(3), losses=jnp.ones(2))
  with pytest.raises(ValueError, match="does not fit"):
    jo.DBMTL().update(grads, jo.DBMTL().init(2, like=jnp.zeros(4)), losses=jnp.ones(2))
  with pytest.raises(ValueError, match=r"losses has shape \(3,\)"):
    jo.GradNorm().update(grads, jo.GradNorm().init(2), losses=jnp.ones(3))
  with pytest.raises(ValueError, match="losses="):
    jo.GradNorm().update(grads, jo.GradNorm().init(2))
  with pytest.raises(ValueError, match="num_tasks"):
    jo.MGDA().init(0)
  with pytest.raises(ValueError, match="task_weights"):
    jo.WeightedSum([1.0, 2.0, 3.0]).update(grads, jo.WeightedSum().init(2))


def test_malformed_gradient_stacks():
  s = jo.MGDA()
  with pytest.raises(ValueError, match="different numbers of tasks"):
    s.update({"a": jnp.ones((2, 3)), "b": jnp.ones((3,))}, s.init(2))
  with pytest.raises(TypeError, match="floating"):
    s.update(jnp.ones((2, 3), jnp.int32), s.init(2))
  with pytest.raises(ValueError, match="scalar"):
    s.update({"a": jnp.ones((2, 3)), "b": jnp.float32(1.0)}, s.init(2))
  with pytest.raises(ValueError, match="empty"):
    s.update({}, s.init(2))


def test_low_precision_gradients_keep_their_dtype():
  g = {"w": jnp.asarray(gradients(3, 1), jnp.bfloat16)}
  u, _, info = run(jo.UPGrad(), g)
  assert u["w"].dtype == jnp.bfloat16 and info["weights"].dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(u["w"], np.float32)))


def test_gradient_info_names_the_tasks():
  with jax.enable_x64(True):
    _, _, info = run(jo.MGDA(), jnp.asarray(gradients(3, 1)))
  logs = jo.gradient_info(info, ["a", "b", "c"])
  assert set(logs) == {
    "grad_weight/a",
    "grad_weight/b",
    "grad_weight/c",
    "grad_norm/a",
    "grad_norm/b",
    "grad_norm/c",
    "grad_cosine/a/b",
    "grad_cosine/a/c",
    "grad_cosine/b/c",
  }
  g = gradients(3, 1)
  np.testing.assert_allclose(
    float(logs["grad_cosine/a/c"]),
    g[0] @ g[2] / np.linalg.norm(g[0]) / np.linalg.norm(g[2]),
    rtol=1e-5,
  )
  with pytest.raises(ValueError, match="2 task names for 3 tasks"):
    jo.gradient_info(info, ["a", "b"])
