"""Image losses against float64 NumPy references written from the papers.

SSIM from Wang et al. (2004) with a Gaussian window, MS-SSIM from Wang et al.
(2003), total variation (anisotropic and isotropic), and the feature-space
losses (Johnson et al.'s perceptual loss, Gatys et al.'s style loss,
pix2pixHD's feature matching) over a small Flax NNX network built with a fixed
seed (no pretrained weights). The registry-wide tests cover the contract of
the array losses; the feature-space losses take a function, so their contract
is checked here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx
from jax.test_util import check_grads
from numpy.lib.stride_tricks import sliding_window_view

import jaxobj
from jaxobj.losses.image import MS_SSIM_WEIGHTS

# ---------------------------------------------------------------- references


def _np_ssim_terms(x, y, data_range, window, sigma, k1=0.01, k2=0.03):
  """Per-channel means of the SSIM map and of its contrast-structure term, one image [H, W, C]."""
  k = np.arange(window) - (window - 1) / 2
  g = np.exp(-(k**2) / (2 * sigma**2))
  w = np.outer(g, g) / np.outer(g, g).sum()

  def blur(a):
    return np.einsum("ijcab,ab->ijc", sliding_window_view(a, (window, window), axis=(0, 1)), w)

  mx, my = blur(x), blur(y)
  vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  cs = (2 * cxy + c2) / (vx + vy + c2)
  ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
  return ssim.mean((0, 1)), cs.mean((0, 1))


def _np_ssim_loss(x, y, data_range=1.0, window=11, sigma=1.5):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  return np.array(
    [1 - _np_ssim_terms(a, b, data_range, window, sigma)[0].mean() for a, b in zip(x, y)]
  )


def _np_ms_ssim_loss(x, y, betas, window, sigma=1.5, data_range=1.0):
  out = []
  for a, b in zip(np.asarray(x, np.float64), np.asarray(y, np.float64)):
    total = np.ones(a.shape[-1])
    for j, beta in enumerate(betas):
      ssim, cs = _np_ssim_terms(a, b, data_range, window, sigma)
      total *= np.maximum(ssim if j == len(betas) - 1 else cs, 0.0) ** beta
      h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
      pool = lambda t: t[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3))
      a, b = pool(a), pool(b)
    out.append(1 - total.mean())
  return np.array(out)


def _np_total_variation(x, isotropic):
  x = np.asarray(x, np.float64)
  dh = np.diff(x, axis=-3)
  dw = np.diff(x, axis=-2)
  if not isotropic:
    return np.abs(dh).sum((-3, -2, -1)) + np.abs(dw).sum((-3, -2, -1))
  dh = np.concatenate([dh, np.zeros_like(x[..., :1, :, :])], axis=-3)
  dw = np.concatenate([dw, np.zeros_like(x[..., :, :1, :])], axis=-2)
  return np.sqrt(dh**2 + dw**2).sum((-3, -2, -1))


@pytest.fixture(scope="module")
def pairs():
  rng = np.random.default_rng(0)
  y = rng.uniform(0.0, 1.0, (3, 16, 16, 2))
  x = np.clip(y + 0.15 * rng.standard_normal(y.shape), 0, 1)
  x[2] = 1.0 - y[2]  # an anti-correlated pair: SSIM < 0
  return x.astype(np.float32), y.astype(np.float32)


# ---------------------------------------------------------------- SSIM


@functools.partial(jax.jit, static_argnames=("window_size",))
def _ssim_both_ways(x, y, data_range, window_size):
  kw = {"data_range": data_range, "window_size": window_size, "reduction": "none"}
  return jaxobj.ssim_loss(x, y, **kw), jaxobj.ssim_loss(y, x, **kw), jaxobj.ssim_loss(x, x, **kw)


@pytest.mark.parametrize("window_size", [7, 11])
def test_ssim_matches_the_float64_reference_and_its_properties(pairs, window_size):
  x, y = pairs
  got, swapped, same = _ssim_both_ways(x, y, 1.0, window_size)
  np.testing.assert_allclose(got, _np_ssim_loss(x, y, window=window_size), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(swapped, got, rtol=1e-6, atol=1e-7)  # symmetric
  np.testing.assert_allclose(same, 0.0, atol=1e-6)  # SSIM(x, x) = 1
  assert np.all((np.asarray(got) >= 0) & (np.asarray(got) <= 2)) and float(got[2]) > 1.0
  # 8-bit images with data_range=255: the same SSIM as [0, 1] images with 1.
  scaled, *_ = _ssim_both_ways(255 * x, 255 * y, 255.0, window_size)
  np.testing.assert_allclose(scaled, got, rtol=1e-4, atol=1e-6)


def test_ssim_and_ms_ssim_gradients_in_float64(pairs):
  x, y = (a[:1, :13, :13] for a in pairs)
  with jax.enable_x64(True):
    x, y = jnp.asarray(np.asarray(x), jnp.float64), jnp.asarray(np.asarray(y), jnp.float64)
    ssim = lambda x: jaxobj.ssim_loss(x, y, window_size=5, sigma=1.0)
    check_grads(jax.jit(ssim), (x,), order=1, modes=["rev"], eps=1e-5)
    ms = lambda x: jaxobj.ms_ssim_loss(x, y, window_size=3, scale_weights=(0.4, 0.6))
    check_grads(jax.jit(ms), (x,), order=1, modes=["rev"], eps=1e-5)


def test_ms_ssim_matches_the_float64_reference_with_the_standard_weights():
  rng = np.random.default_rng(1)
  y = rng.uniform(0.0, 1.0, (2, 49, 50, 2))
  x = np.clip(y + 0.1 * rng.standard_normal(y.shape), 0, 1)
  x, y = x.astype(np.float32), y.astype(np.float32)
  run = jax.jit(lambda x, y: jaxobj.ms_ssim_loss(x, y, window_size=3, reduction="none"))
  got = run(x, y)
  np.testing.assert_allclose(got, _np_ms_ssim_loss(x, y, MS_SSIM_WEIGHTS, 3), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(run(y, x), got, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(run(x, x), 0.0, atol=1e-6)
  assert np.all((np.asarray(got) > 0) & (np.asarray(got) < 1))


def test_ssim_errors_name_the_fix():
  x = jnp.zeros((1, 40, 40, 1))
  with pytest.raises(ValueError, match=r"176 x 176 pixels, got 40 x 40"):
    jaxobj.ms_ssim_loss(x, x)
  with pytest.raises(ValueError, match="smaller window_size"):
    jaxobj.ssim_loss(x[:, :8, :8], x[:, :8, :8])
  with pytest.raises(ValueError, match=r"x\[\.\.\., None\]"):
    jaxobj.ssim_loss(jnp.zeros((16, 16)), jnp.zeros((16, 16)))
  with pytest.raises(ValueError, match="data_range"):
    jaxobj.ssim_loss(x, x, data_range=0.0)
  with pytest.raises(ValueError, match="scale_weights"):
    jaxobj.ms_ssim_loss(x, x, scale_weights=())


# ---------------------------------------------------------------- total variation


def test_total_variation_matches_the_reference_in_both_forms():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 3, 5, 6, 2)).astype(np.float32)
  tv = jax.jit(
    lambda x: (
      jaxobj.total_variation_loss(x, reduction="none"),
      jaxobj.total_variation_loss(x, isotropic=True, reduction="none"),
      jax.grad(lambda x: jaxobj.total_variation_loss(x, isotropic=True))(x),
    )
  )
  aniso, iso, _ = tv(x)
  np.testing.assert_allclose(aniso, _np_total_variation(x, False), rtol=1e-5)
  np.testing.assert_allclose(iso, _np_total_variation(x, True), rtol=1e-5)
  # isotropic <= anisotropic, equal on an image that varies along one axis only.
  assert np.all(np.asarray(iso) <= np.asarray(aniso) + 1e-5)
  ramp = np.broadcast_to(np.arange(5.0)[:, None, None], (2, 3, 5, 6, 2)).astype(np.float32)
  a, i, g = tv(ramp)
  np.testing.assert_allclose(a, i)
  np.testing.assert_allclose(a, 4 * 6 * 2)
  # A flat image: value 0 and a zero (finite) gradient at the kink of the length.
  a, i, g = tv(np.zeros_like(x))
  assert float(jnp.max(i)) == 0.0 and np.all(np.asarray(g) == 0.0)
  with jax.enable_x64(True):
    x64 = jnp.asarray(x[0, :1], jnp.float64)
    check_grads(
      lambda x: jaxobj.total_variation_loss(x, isotropic=True), (x64,), order=1, modes=["rev"]
    )


# ---------------------------------------------------------------- feature-space losses


class Features(nnx.Module):
  """A two-layer convolutional feature extractor, random init with a fixed seed."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(2, 4, kernel_size=(3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(4, 3, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)

  def __call__(self, x):
    h1 = jnp.tanh(self.conv1(x))
    h2 = jnp.tanh(self.conv2(h1))
    return [h1, h2]


@pytest.fixture(scope="module")
def net():
  return Features(nnx.Rngs(0))


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(3)
  y = rng.uniform(0.0, 1.0, (6, 8, 8, 2))
  x = y + 0.3 * rng.standard_normal(y.shape)
  return x.astype(np.float32), y.astype(np.float32)


def _np_gram_term(a, b):
  """Gatys et al.: 1 / (4 C^2 M^2) sum (G - A)^2 with unnormalized Gram matrices."""
  fa, fb = a.reshape(a.shape[0], -1, a.shape[-1]), b.reshape(b.shape[0], -1, b.shape[-1])
  m, c = fa.shape[1], fa.shape[2]
  ga, gb = np.einsum("bmi,bmj->bij", fa, fa), np.einsum("bmi,bmj->bij", fb, fb)
  return ((ga - gb) ** 2).sum((1, 2)) / (4 * c**2 * m**2)


def _np_reference(name, fx, fy, lw):
  out = 0.0
  for w, a, b in zip(lw, fx, fy):
    axes = tuple(range(1, a.ndim))
    if name == "perceptual_loss":
      out = out + w * ((a - b) ** 2).mean(axes)
    elif name == "feature_matching_loss":
      out = out + w * np.abs(a - b).mean(axes)
    else:
      out = out + w * _np_gram_term(a, b)
  return out


FEATURE_LOSSES = ["perceptual_loss", "style_loss", "feature_matching_loss"]


@pytest.mark.parametrize("name", FEATURE_LOSSES)
def test_feature_losses_match_the_reference_over_an_nnx_network(name, net, batch):
  x, y = batch
  fx = [np.asarray(a, np.float64) for a in net(jnp.asarray(x))]
  fy = [np.asarray(a, np.float64) for a in net(jnp.asarray(y))]
  lw = [0.7, 2.0]
  got = getattr(jaxobj, name)(x, y, features=net, layer_weights=lw, reduction="none")
  np.testing.assert_allclose(got, _np_reference(name, fx, fy, lw), rtol=2e-5, atol=1e-8)
  default = getattr(jaxobj, name)(x, y, features=net, reduction="none")
  np.testing.assert_allclose(default, _np_reference(name, fx, fy, [1.0, 1.0]), rtol=2e-5)
  assert float(jnp.max(jnp.abs(getattr(jaxobj, name)(y, y, features=net)))) == 0.0


MASK = np.array([True, False, True, True, False, True])


@pytest.mark.parametrize("name", FEATURE_LOSSES)
def test_feature_losses_follow_the_loss_contract(name, net, batch):
  """What the conformance tests check for losses with drawn inputs, in one compile."""
  x, y = (jnp.asarray(a) for a in batch)
  loss = functools.partial(getattr(jaxobj, name), features=net)
  mask = jnp.asarray(MASK)
  w = jnp.asarray(np.random.default_rng(0).uniform(0.1, 2.0, 6), jnp.float32)
  poisoned = jnp.where(mask[:, None, None, None], x, jnp.nan)

  @jax.jit
  def run(x, y, poisoned):
    grad = lambda x, **kw: jax.grad(lambda x: loss(x, y, **kw))(x)
    return {
      "none": loss(x, y, reduction="none"),
      "sum": loss(x, y, reduction="sum"),
      "mean": loss(x, y),
      "masked": loss(x, y, where=mask),
      "pair": loss(x, y, where=mask, reduction="sum_and_count"),
      "weighted": loss(x, y, weights=w),
      "poisoned": loss(poisoned, y, where=mask),
      "poisoned_grad": grad(poisoned, where=mask),
      "all_masked": loss(x, y, where=jnp.zeros(6, bool)),
      "all_masked_grad": grad(x, where=jnp.zeros(6, bool)),
      "bf16": loss(x.astype(jnp.bfloat16), y.astype(jnp.bfloat16)),
    }

  out = run(x, y, poisoned)
  none = np.asarray(out["none"], np.float64)
  assert none.shape == (6,) and np.all(np.isfinite(none)) and np.all(none > 0)
  np.testing.assert_allclose(out["sum"], none.sum(), rtol=2e-6)
  np.testing.assert_allclose(out["mean"], none.mean(), rtol=2e-6)
  sliced = loss(x[MASK], y[MASK])
  np.testing.assert_allclose(out["masked"], sliced, rtol=2e-5)
  np.testing.assert_allclose(out["pair"][0] / out["pair"][1], sliced, rtol=2e-5)
  np.testing.assert_allclose(out["weighted"], (np.asarray(w) * none).sum() / w.sum(), rtol=2e-5)
  np.testing.assert_allclose(out["poisoned"], out["masked"], rtol=1e-6)
  g = np.asarray(out["poisoned_grad"])
  assert np.all(np.isfinite(g)) and np.all(g[~MASK] == 0.0) and np.any(g[MASK] != 0.0)
  assert float(out["all_masked"]) == 0.0 and np.all(np.asarray(out["all_masked_grad"]) == 0.0)
  assert out["bf16"].dtype == jnp.float32 and np.isfinite(float(out["bf16"]))
  with jax.enable_x64(True):
    x64, y64 = (jnp.asarray(np.asarray(a[:2]), jnp.float64) for a in (x, y))
    check_grads(lambda x: loss(x, y64), (x64,), order=1, modes=["rev"], eps=1e-5)
  # Bad inputs: clear errors.
  with pytest.raises(ValueError, match=r"\(6, 8, 8, 2, 1\)"):
    loss(x, y[..., None])
  with pytest.raises(TypeError):
    loss(x.astype(jnp.int32), y)
  with pytest.raises(ValueError, match="one weight per layer"):
    loss(x, y, layer_weights=[1.0])


def test_features_may_be_a_linen_module_or_any_pytree_of_layers(batch):
  x, y = batch
  module = linen.Dense(5)
  variables = module.init(jax.random.key(0), x[:, 0, 0])
  flat = lambda a: a.reshape(a.shape[0], -1)[:, :2]
  bound = functools.partial(module.apply, variables)
  with_linen = jaxobj.perceptual_loss(
    x, y, features=lambda a: {"dense": bound(flat(a)), "pixels": a}, distance="absolute"
  )
  by_hand = jaxobj.perceptual_loss(
    x, y, features=lambda a: (bound(flat(a)), a), distance="absolute"
  )
  np.testing.assert_allclose(with_linen, by_hand, rtol=1e-6)
  with pytest.raises(TypeError, match="functools.partial"):
    jaxobj.perceptual_loss(x, y, features=module)
  with pytest.raises(ValueError, match="batch axis"):
    jaxobj.style_loss(x, y, features=lambda a: [a.sum(0)])
  with pytest.raises(ValueError, match="distance"):
    jaxobj.feature_matching_loss(x, y, features=lambda a: [a], distance="l3")
