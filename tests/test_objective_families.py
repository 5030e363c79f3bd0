"""Learnable objective parameters and schedules with the loss families: the
published initial values, gradients reaching them, and values equal to the
direct call."""

import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxobj
from jaxobj import objective as jo
from jaxobj.losses import robust

RNG = np.random.default_rng(0)
IMG = jnp.asarray(RNG.normal(size=(6, 4)), jnp.float32)
TXT = jnp.asarray(RNG.normal(size=(6, 4)), jnp.float32)


def _value_and_grads(obj, params, **data):
  return jax.value_and_grad(lambda p: obj.apply(p, **data), has_aux=True)(params)


def _finite_nonzero(tree):
  leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
  return all(np.all(np.isfinite(x)) for x in leaves) and all(np.any(x != 0) for x in leaves)


def test_siglip_temperature_and_bias_start_at_the_published_values():
  obj = jo.term(
    jaxobj.siglip_loss,
    "img",
    "txt",
    log_temperature=jo.learnable(jaxobj.losses.contrastive.SIGLIP_LOG_TEMPERATURE),
    bias=jo.learnable(jaxobj.losses.contrastive.SIGLIP_BIAS),
  )
  params = obj.init()
  assert float(params["siglip_loss"]["log_temperature"]) == np.float32(math.log(10.0))
  assert float(params["siglip_loss"]["bias"]) == -10.0
  (value, _), grads = _value_and_grads(obj, params, img=IMG, txt=TXT)
  np.testing.assert_allclose(float(value), float(jaxobj.siglip_loss(IMG, TXT)), rtol=1e-6)
  assert _finite_nonzero(grads)


def test_arcface_class_centres_are_learned_objective_params():
  labels = jnp.asarray(RNG.integers(0, 3, 6), jnp.int32)
  init = lambda key: jaxobj.init_class_centers(key, 3, 4)  # noqa: E731
  obj = jo.term(jaxobj.arcface_loss, "emb", "labels", jo.learnable(init), scale=8.0)
  params = obj.init(jax.random.key(1))
  centers = params["arcface_loss"]["centers"]
  np.testing.assert_allclose(np.linalg.norm(np.asarray(centers), axis=1), 1.0, rtol=1e-6)
  (value, _), grads = _value_and_grads(obj, params, emb=IMG, labels=labels)
  np.testing.assert_allclose(
    float(value), float(jaxobj.arcface_loss(IMG, labels, centers, scale=8.0)), rtol=1e-6
  )
  assert _finite_nonzero(grads)


def test_barron_shape_and_scale_learned_through_latents():
  residuals = jnp.asarray(RNG.standard_t(2, size=32), jnp.float32)
  obj = jo.term(
    jaxobj.adaptive_robust_loss,
    "r",
    None,
    alpha=jo.learnable(
      float(robust.robust_latent_from_alpha(1.0)), transform=robust.robust_alpha_from_latent
    ),
    scale=jo.learnable(
      float(robust.robust_latent_from_scale(1.0)), transform=robust.robust_scale_from_latent
    ),
  )
  params = obj.init()
  (value, _), grads = _value_and_grads(obj, params, r=residuals)
  np.testing.assert_allclose(
    float(value), float(jaxobj.adaptive_robust_loss(residuals, alpha=1.0, scale=1.0)), rtol=1e-5
  )
  assert _finite_nonzero(grads)
  assert "transform=robust_alpha_from_latent" in repr(obj)
  # A few steps of gradient descent on the shape and scale lower the NLL.
  step = jax.jit(
    lambda p: jax.tree.map(lambda a, g: a - 0.1 * g, p, _value_and_grads(obj, p, r=residuals)[1])
  )
  p = params
  for _ in range(20):
    p = step(p)
  assert float(obj.apply(p, r=residuals)[0]) < float(value)


def test_elbo_with_a_cyclical_kl_weight():
  rng = np.random.default_rng(1)
  mean = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
  log_var = jnp.asarray(rng.normal(size=(5, 3)) * 0.1, jnp.float32)
  logits = jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)
  x = jnp.asarray(rng.integers(0, 2, (5, 8)), jnp.float32)
  recon = jo.term(jaxobj.bernoulli_reconstruction_loss, "logits", "x", name="reconstruction")
  kl = jo.term(jaxobj.gaussian_kl_divergence, "mean", "log_var", name="kl")
  beta = jo.cyclical(period=100, ramp=0.5)
  obj = recon + beta * kl
  for step in (0, 25, 60, 130):
    value, info = obj.apply(logits=logits, x=x, mean=mean, log_var=log_var, step=step)
    b = float(beta(step))
    r = jaxobj.bernoulli_reconstruction_loss(logits, x)
    k = jaxobj.gaussian_kl_divergence(mean, log_var)
    np.testing.assert_allclose(float(value), float(jaxobj.negative_elbo(r, k, beta=b)), rtol=1e-6)
    np.testing.assert_allclose(float(info["weight/kl"]), b, rtol=1e-6)
