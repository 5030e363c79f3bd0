"""The embedding cache: batch-coupled objectives over microbatches equal the whole
batch in value, info and gradients (model and objective params), composed with
per-row terms, regularizers, masks and multi-task weighting."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxobj
from jaxobj import objective as jo
from jaxobj import registry

N, M, D = 16, 4, 4  # rows, microbatches, embedding dimension
B = N // M


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  mask = rng.uniform(size=N) < 0.7
  mask[B : 2 * B] = False  # one microbatch fully masked, the others uneven
  mask[[0, 8, 12]] = True
  return {
    "x": jnp.asarray(rng.normal(size=(N, 5)), jnp.float32),
    "t": jnp.asarray(rng.normal(size=(N, 6)), jnp.float32),
    "labels": jnp.asarray(np.arange(N) % 4, jnp.int32),
    "y": jnp.asarray(rng.normal(size=N), jnp.float32),
    "mask": jnp.asarray(mask),
  }


def _model(seed=1, hidden=8):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s) / np.sqrt(s[0]), jnp.float32)
  return {
    "w1": f(5, hidden),
    "b1": f(hidden) * 0.1,
    "w2": f(hidden, D + 1),
    "u1": f(6, hidden),
    "u2": f(hidden, D),
  }


def _embed(mp, mb):
  """A two-tower MLP: image-like and text-like embeddings and a scalar prediction."""
  h = jnp.tanh(mb["x"] @ mp["w1"] + mp["b1"])
  out = h @ mp["w2"]
  text = jnp.tanh(mb["t"] @ mp["u1"]) @ mp["u2"]
  return {"image": out[:, :D], "text": text, "pred": out[:, D]}


def _data(mp, emb, batch):
  return {"outputs": emb, "batch": batch, "model": mp}


MASK = "batch.mask"
FIT = jo.term(jaxobj.squared_error, "outputs.pred", "batch.y", where=MASK, name="fit")
L2 = jo.regularizer(jaxobj.l2_penalty)
CLIP = jo.term(
  jaxobj.clip_loss,
  "outputs.image",
  "outputs.text",
  where=MASK,
  log_temperature=jo.learnable(np.log(5.0)),
)

OBJECTIVES = {
  "clip": CLIP + 0.3 * FIT + 1e-2 * L2,
  "siglip_learned_temperature_and_bias": jo.term(
    jaxobj.siglip_loss,
    "outputs.image",
    "outputs.text",
    where=MASK,
    log_temperature=jo.learnable(np.log(10.0)),
    bias=jo.learnable(-2.0),
  )
  + FIT,
  "supcon": jo.group(
    "ssl",
    jo.term(
      jaxobj.supervised_contrastive_loss,
      "outputs.text",
      "batch.labels",
      where=MASK,
      temperature=jo.learnable(0.3, positive=True),
      base_temperature=0.3,
    ),
  )
  + FIT,
  "barlow_twins": jo.term(
    jaxobj.barlow_twins_loss, "outputs.image", "outputs.text", sample_where=jo.ref(MASK)
  )
  + 0.5 * FIT,
  "uncertainty_weighting": jo.multitask(
    {"contrastive": CLIP, "regression": FIT},
    jo.UncertaintyWeighting(kinds={"contrastive": "classification"}),
  )
  + 1e-2 * L2,
  "geometric_mean": jo.multitask(
    {
      "contrastive": jo.term(
        jaxobj.vicreg_loss, "outputs.image", "outputs.text", sample_where=jo.ref(MASK)
      ),
      "regression": FIT,
    },
    jo.GeometricMean(),
  ),
}


def _params(obj):
  params = obj.init()
  if "uncertainty_weighting" in params:  # away from the symmetric start
    params["uncertainty_weighting"]["log_variance"] = {
      "contrastive": jnp.float32(0.4),
      "regression": jnp.float32(-0.3),
    }
  return params


def _split(batch):
  return jax.tree.map(lambda a: a.reshape((M, B) + a.shape[1:]), batch)


def _whole_batch(obj, mp, op, batch, **kw):
  return jax.jit(
    jax.value_and_grad(
      lambda m, o, b: obj.apply(o, **kw, **_data(m, _embed(m, b), b)), argnums=(0, 1), has_aux=True
    )
  )(mp, op, batch)


def _cached(obj, mp, op, microbatches, **kw):
  return jax.jit(lambda m, o, b: jo.cached_value_and_grad(obj, _embed, _data, m, o, b, **kw))(
    mp, op, microbatches
  )


def _close(a, b):
  """Equal to 1e-6 relative to each leaf's scale: the cache sums the rows'
  contributions in another order, so an entry that cancels to near 0 keeps
  the rounding of its larger neighbours."""
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = max(1.0, float(np.max(np.abs(y), initial=0.0)))
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_microbatches_with_the_cache_equal_the_whole_batch(name):
  obj, mp, batch = OBJECTIVES[name], _model(), _batch()
  op = _params(obj)
  (value, info), (g_model, g_obj) = _whole_batch(obj, mp, op, batch)
  (c_value, c_info), (c_model, c_obj) = _cached(obj, mp, op, _split(batch))
  _close(c_value, value)
  assert set(c_info) == set(info)
  _close(c_info, info)  # values, effective weights and whole-batch counts
  _close(c_model, g_model)
  _close(c_obj, g_obj)
  # The comparison has teeth: every gradient that should move does.
  assert all(float(jnp.max(jnp.abs(c_model[k]))) > 1e-3 for k in ("w1", "b1", "w2"))
  assert all(float(jnp.abs(g)) > 1e-5 for g in jax.tree.leaves(c_obj))


COUPLED = [
  s
  for s in registry.specs()
  if s.couples_rows and s.kind == "loss" and not s.name.startswith("sharded_")
]


@pytest.mark.structure
@pytest.mark.parametrize("spec", COUPLED, ids=lambda s: s.name)
def test_every_coupled_loss_equals_the_whole_batch(spec):
  """Every registered loss whose rows interact (the sharded ones need a mesh), masked,
  with every traceable hyperparameter learned, plus a regularizer on the model.

  The batch-statistic losses (Barlow Twins, VICReg, MMD) take one problem per row
  here; the composed cases above couple their samples."""
  rng = np.random.default_rng(0)
  inputs = spec.inputs.make(rng, (N,))
  names = spec.input_names[: len(inputs)]
  rows = len(inputs) if spec.inputs.batched is None else spec.inputs.batched
  batch = {n: jnp.asarray(x) for n, x in zip(names[:rows], inputs[:rows])}
  batch["mask"] = _batch()["mask"]
  # Inputs without the batch axis (class proxies) are parameters learned with the model.
  shared = {n: jnp.asarray(x) for n, x in zip(names[rows:], inputs[rows:])}
  assert all(jnp.issubdtype(x.dtype, jnp.floating) for x in shared.values()), shared
  floats = [n for n in names[:rows] if jnp.issubdtype(batch[n].dtype, jnp.floating)]
  # The encoder scales each feature; labels and other data come from the batch.
  model = {
    n: jnp.asarray(1 + 0.2 * rng.normal(size=batch[n].shape[1:]), jnp.float32) for n in floats
  } | shared

  def embed(mp, mb):
    return {n: mb[n] * mp[n] for n in floats}

  obj = jo.term(
    spec.fn,
    *[
      f"model.{n}" if n in shared else f"outputs.{n}" if n in floats else f"batch.{n}"
      for n in names
    ],
    where=MASK,
    **{h: jo.learnable(v) for h, v in spec.traceable.items()},
  )
  obj = obj + 1e-2 * L2
  op = obj.init()
  expected = jax.jit(
    jax.value_and_grad(
      lambda m, o, b: obj.apply(o, **_data(m, embed(m, b), b)), argnums=(0, 1), has_aux=True
    )
  )(model, op, batch)
  got = jax.jit(lambda m, o, b: jo.cached_value_and_grad(obj, embed, _data, m, o, b))(
    model, op, _split(batch)
  )
  _close(got, expected)
  (_, info), (g_model, g_obj) = got
  assert float(info[f"count/{spec.name}"]) > 0
  assert all(float(jnp.max(jnp.abs(g))) > 1e-4 for g in jax.tree.leaves(g_model))
  assert sorted(g_obj.get(spec.name, {})) == sorted(spec.traceable)


def test_info_counts_are_whole_batch_counts():
  obj, mp, batch = OBJECTIVES["clip"], _model(), _batch()
  (_, info), _ = _cached(obj, mp, _params(obj), _split(batch))
  valid = float(np.sum(np.asarray(batch["mask"])))
  assert float(info["count/clip_loss"]) == valid
  assert float(info["count/fit"]) == valid
  assert float(info["count/l2_penalty"]) == 1.0  # one evaluation, on the whole batch


def test_splitting_the_loss_itself_would_be_wrong():
  """Why the cache: the mean of microbatch CLIP losses is not the batch's loss."""
  mp, batch = _model(), _batch()
  clip = jax.jit(lambda b: jaxobj.clip_loss(*_two(_embed(mp, b))))
  whole = float(clip(batch))
  micro = _split(batch)
  parts = [float(clip({k: v[i] for k, v in micro.items()})) for i in range(M)]
  assert abs(np.mean(parts) - whole) > 1e-2


def _two(emb):
  return emb["image"], emb["text"]


def _np_clip_objective(mp, batch, log_t):
  """float64 NumPy: masked CLIP of the MLP's embeddings, from the formula."""
  x, t, keep = (np.asarray(batch[k], np.float64) for k in ("x", "t", "mask"))
  keep = keep.astype(bool)
  h = np.tanh(x @ mp["w1"] + mp["b1"])
  img = (h @ mp["w2"])[:, :D][keep]
  txt = (np.tanh(t @ mp["u1"]) @ mp["u2"])[keep]
  unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
  s = np.exp(log_t) * unit(img) @ unit(txt).T

  def lse(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)

  rows = 0.5 * ((lse(s, 1) - np.diag(s)) + (lse(s, 0) - np.diag(s)))
  return rows.mean()


def test_clip_gradient_against_float64_finite_differences():
  obj = jo.term(
    jaxobj.clip_loss,
    "outputs.image",
    "outputs.text",
    where=MASK,
    log_temperature=jo.learnable(np.log(5.0)),
  )
  mp, batch = _model(), _batch()
  op = obj.init()
  (value, _), (g_model, g_obj) = _cached(obj, mp, op, _split(batch))
  mp64 = {k: np.asarray(v, np.float64) for k, v in mp.items()}
  log_t = float(np.log(5.0))
  np.testing.assert_allclose(float(value), _np_clip_objective(mp64, batch, log_t), rtol=1e-6)
  eps = 1e-6
  rng = np.random.default_rng(3)
  for name in ("w1", "b1", "w2", "u1", "u2"):
    for _ in range(2):
      idx = tuple(rng.integers(0, n) for n in mp64[name].shape)
      plus, minus = ({k: v.copy() for k, v in mp64.items()} for _ in range(2))
      plus[name][idx] += eps
      minus[name][idx] -= eps
      fd = (_np_clip_objective(plus, batch, log_t) - _np_clip_objective(minus, batch, log_t)) / (
        2 * eps
      )
      np.testing.assert_allclose(float(g_model[name][idx]), fd, rtol=1e-4, atol=1e-6)
  fd_t = (
    _np_clip_objective(mp64, batch, log_t + eps) - _np_clip_objective(mp64, batch, log_t - eps)
  ) / (2 * eps)
  np.testing.assert_allclose(
    float(g_obj["clip_loss"]["log_temperature"]), fd_t, rtol=1e-4, atol=1e-6
  )


def test_weighting_state_step_and_key_reach_the_objective():
  """DWA's state and a schedule of the step act as on the whole batch."""
  obj = (
    jo.multitask({"contrastive": CLIP, "regression": FIT}, jo.DynamicWeightAverage())
    + jo.linear_warmup(0.0, 0.1, steps=10) * L2
  )
  mp, batch = _model(), _batch()
  op = obj.init()
  state = obj.init_state()
  state["dynamic_weight_average"] = {
    "last": jnp.array([0.5, 2.0]),
    "before_last": jnp.array([1.0, 1.0]),
    "records": jnp.int32(2),
  }
  kw = {"step": 4, "state": state}
  (value, info), grads = _whole_batch(obj, mp, op, batch, **kw)
  (c_value, c_info), c_grads = _cached(obj, mp, op, _split(batch), **kw)
  _close((c_value, c_info, c_grads), (value, info, grads))
  assert float(info["weight/contrastive"]) != 1.0


def test_nnx_model_params():
  from flax import nnx

  class Encoder(nnx.Module):
    def __init__(self, rngs):
      self.a = nnx.Linear(5, 8, rngs=rngs)
      self.b = nnx.Linear(8, D, rngs=rngs)

    def __call__(self, x):
      return self.b(jnp.tanh(self.a(x)))

  model = Encoder(nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  obj = jo.term(jaxobj.ntxent, "outputs", "batch.labels", where=MASK) + 1e-2 * L2
  embed = lambda p, mb: nnx.merge(graphdef, p)(mb["x"])
  batch = _batch()
  (value, _), (grads, _) = jax.jit(
    lambda p, b: jo.cached_value_and_grad(obj, embed, _data, p, {}, b)
  )(params, _split(batch))
  whole, expected = jax.jit(
    jax.value_and_grad(lambda p, b: obj.apply(**_data(p, embed(p, b), b))[0])
  )(params, batch)
  _close(value, whole)
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  _close(grads, expected)
  before = np.array(model.a.kernel[...])
  optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  optimizer.update(model, grads)  # the gradients have the model's structure
  np.testing.assert_allclose(
    model.a.kernel[...],
    before - 0.1 * np.asarray(expected["a"]["kernel"][...]),
    rtol=1e-5,
    atol=1e-6,
  )


# ---------------------------------------------------------------- misuse


def test_microbatches_of_different_sizes_raise():
  mp, obj = _model(), OBJECTIVES["clip"]
  op = _params(obj)
  micro = _split(_batch())
  for bad, word in [
    ({**micro, "t": micro["t"].reshape(2 * M, B // 2, 6)}, "same M"),
    ({**micro, "y": micro["y"][:, :2]}, "same M"),
    ({**micro, "scale": jnp.ones(M)}, "without a row axis"),
  ]:
    with pytest.raises(ValueError, match=word) as err:
      jo.cached_value_and_grad(obj, _embed, _data, mp, op, bad)
    assert "['t']" in str(err.value) or "['y']" in str(err.value) or "scale" in str(err.value)
  with pytest.raises(ValueError, match="no arrays"):
    jo.cached_value_and_grad(obj, _embed, _data, mp, op, {})


def test_embeddings_without_the_row_axis_raise():
  mp, obj = _model(), OBJECTIVES["clip"]
  op, micro = _params(obj), _split(_batch())

  def pooled(m, mb):  # one vector per microbatch, not one per row
    return jax.tree.map(lambda e: jnp.mean(e, axis=0), _embed(m, mb))

  for fn in (pooled, lambda m, mb: jnp.sum(_embed(m, mb)["pred"])):
    with pytest.raises(ValueError, match=rf"leading axis is the microbatch's rows \({B} here\)"):
      jo.cached_value_and_grad(obj, fn, _data, mp, op, micro)
  with pytest.raises(TypeError, match="floating-point"):
    jo.cached_value_and_grad(
      obj, lambda m, mb: {**_embed(m, mb), "k": mb["labels"]}, _data, mp, op, micro
    )


def test_other_misuse_raises():
  mp, obj = _model(), OBJECTIVES["clip"]
  op, micro = _params(obj), _split(_batch())
  with pytest.raises(TypeError, match="must return a dict"):
    jo.cached_value_and_grad(obj, _embed, lambda m, e, b: (e, b), mp, op, micro)
  with pytest.raises(TypeError, match="needs a jaxobj objective"):
    jo.cached_value_and_grad(jaxobj.clip_loss, _embed, _data, mp, op, micro)
