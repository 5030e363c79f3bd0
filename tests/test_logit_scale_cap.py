"""The optional cap on the learnable logit scale of CLIP and SigLIP.

``max_logit_scale`` replaces the log-scale :math:`t'` by
:math:`\\min(t', \\log s_{\\max})`, a clamp: the values are checked against a
float64 NumPy reference written from the formula, the gradient with respect
to :math:`t'` is the uncapped one up to and at the cap and exactly 0 above it
(as ``torch.clamp``), in the plain, chunked and sharded forms alike.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import config

RNG = np.random.default_rng(18)
X = RNG.normal(size=(5, 3)).astype(np.float32)
Y = RNG.normal(size=(5, 3)).astype(np.float32)
LOG_CAP = math.log(100.0)
BIAS = -2.0


def _cos(x, y):
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  y = y / np.linalg.norm(y, axis=1, keepdims=True)
  return x @ y.T


def _lse(s, axis):
  m = s.max(axis=axis, keepdims=True)
  return np.squeeze(m + np.log(np.exp(s - m).sum(axis=axis, keepdims=True)), axis)


def clip_reference(t, cap=None):
  scale = math.exp(t if cap is None else min(t, math.log(cap)))
  s = scale * _cos(X, Y)
  d = np.diagonal(s)
  return float(np.mean(0.5 * ((_lse(s, 1) - d) + (_lse(s, 0) - d))))


def siglip_reference(t, cap=None):
  scale = math.exp(t if cap is None else min(t, math.log(cap)))
  z = scale * _cos(X, Y) + BIAS
  sign = np.where(np.eye(len(z), dtype=bool), 1.0, -1.0)
  return float(np.mean(np.sum(np.logaddexp(0.0, -sign * z), axis=1)))


MESH = jax.make_mesh((1,), ("batch",))
LOSSES = [
  ("clip_loss", {}, clip_reference),
  ("chunked_clip_loss", {"block_size": 2}, clip_reference),
  ("sharded_clip_loss", {"mesh": MESH, "axis_name": "batch"}, clip_reference),
  ("siglip_loss", {"bias": BIAS}, siglip_reference),
  ("chunked_siglip_loss", {"bias": BIAS, "block_size": 2}, siglip_reference),
  ("sharded_siglip_loss", {"bias": BIAS, "mesh": MESH, "axis_name": "batch"}, siglip_reference),
]


@pytest.mark.parametrize("name,extra,reference", LOSSES, ids=[n for n, _, _ in LOSSES])
def test_cap_is_a_clamp_in_value_and_gradient(name, extra, reference):
  fn = getattr(jaxobj, name)

  @jax.jit
  def value_and_grads(t, cap):
    capped = jax.value_and_grad(lambda t: fn(X, Y, log_temperature=t, max_logit_scale=cap, **extra))
    free = jax.value_and_grad(lambda t: fn(X, Y, log_temperature=t, **extra))
    return capped(t), free(t)

  # Below, at and above the cap: one compile for the three points.
  ts = jnp.array([1.0, LOG_CAP, 6.0])
  (v, g), (v_free, g_free) = jax.vmap(value_and_grads, in_axes=(0, None))(ts, 100.0)
  for i, t in enumerate(np.asarray(ts, np.float64)):
    np.testing.assert_allclose(v[i], reference(float(t), cap=100.0), rtol=1e-5)
  # Below the cap and at it the loss is the uncapped one, with its gradient
  # (the clamp passes the gradient at the boundary, as torch.clamp does).
  np.testing.assert_allclose(v[:2], v_free[:2], rtol=1e-6)
  np.testing.assert_allclose(g[:2], g_free[:2], rtol=1e-6)
  assert abs(float(g_free[1])) > 1.0  # the check above is not between zeros
  # Above it the loss is the loss at the cap, and flat in the log-scale.
  np.testing.assert_allclose(v[2], v_free[1], rtol=1e-6)
  assert float(g[2]) == 0.0
  # The uncapped loss keeps growing the scale: the cap changes the value.
  assert not np.isclose(float(v_free[2]), float(v[2]), rtol=1e-3)
  np.testing.assert_allclose(v_free[2], reference(6.0), rtol=1e-5)


def test_no_cap_by_default_and_cap_is_traceable():
  t = 6.0
  assert float(jaxobj.clip_loss(X, Y, log_temperature=t)) == pytest.approx(
    clip_reference(t), rel=1e-5
  )
  # The gradient with respect to the cap itself, when the clamp is active:
  # d/ds loss(log s) = loss'(log s) / s.
  g_cap = jax.grad(lambda s: jaxobj.clip_loss(X, Y, log_temperature=t, max_logit_scale=s))(50.0)
  h = 1e-4
  fd = (clip_reference(math.log(50.0) + h) - clip_reference(math.log(50.0) - h)) / (2 * h) / 50.0
  assert float(g_cap) == pytest.approx(fd, rel=1e-3)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_cap_raises_naming_it(bad):
  with pytest.raises(ValueError, match="max_logit_scale"):
    jaxobj.siglip_loss(X, Y, max_logit_scale=bad)


def test_config_sets_the_cap_as_a_loss_hyperparameter():
  obj = config.objective_from_config(
    {
      "terms": {
        "clip": {
          "loss": "clip_loss",
          "inputs": ["batch.image", "batch.text"],
          "log_temperature": {"learnable": 6.0},
          "max_logit_scale": 100.0,
        }
      }
    }
  )
  params = obj.init(None)
  batch = {"image": X, "text": Y}
  (value, _), grads = jax.value_and_grad(lambda p: obj.apply(p, batch=batch), has_aux=True)(params)
  assert float(value) == pytest.approx(clip_reference(6.0, cap=100.0), rel=1e-5)
  assert all(float(g) == 0.0 for g in jax.tree.leaves(grads))
