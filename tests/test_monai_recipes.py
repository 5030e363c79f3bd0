"""MONAI's wrapper losses as recipes of jaxobj pieces, checked against float64 references.

``DeepSupervisionLoss``, ``MultiScaleLoss``, ``JukeboxLoss`` and ``SURELoss``
wrap another loss or a model, so jaxobj has no registered counterpart: each
is one expression over existing losses, written here exactly as the
coverage table gives it, and compared with a NumPy/SciPy reference written
from its definition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage
from scipy.special import softmax

import jaxobj


def _np_dice(logits, labels, eps=1e-5):
  """MONAI's DiceLoss(softmax=True, to_onehot_y=True), per image then mean, channels last."""
  p = softmax(np.asarray(logits, np.float64), -1)
  g = np.eye(p.shape[-1])[labels]
  inter = (p * g).sum((1, 2))
  size = p.sum((1, 2)) + g.sum((1, 2))
  return np.mean(1 - (2 * inter + eps) / (size + eps))


def test_deep_supervision_recipe():
  """DeepSupervisionLoss(DiceLoss, weight_mode="exp"): weights max(0.5 ** l, 1 / 16),
  the target downsampled by nearest neighbour (a strided slice) to each output."""
  rng = np.random.default_rng(5)
  labels = rng.integers(0, 3, (6, 8, 8)).astype(np.int32)
  outputs = [rng.standard_normal((6, 8 // s, 8 // s, 3)).astype(np.float32) for s in (1, 2, 4)]
  weights, strides = (1.0, 0.5, 0.25), (1, 2, 4)
  recipe = sum(
    w * jaxobj.dice_loss(out, labels[:, ::s, ::s]) for w, s, out in zip(weights, strides, outputs)
  )
  want = sum(w * _np_dice(out, labels[:, ::s, ::s]) for w, s, out in zip(weights, strides, outputs))
  np.testing.assert_allclose(recipe, want, rtol=1e-5)


def _blur(x, sigma):
  """A Gaussian filter of std ``sigma`` over the spatial axes of ``(B, H, W, C)``
  images (zero padding, truncated at 3 sigma); ``sigma = 0`` is the identity."""
  if sigma == 0:
    return x
  r = int(3 * sigma + 0.5)
  k = jnp.exp(-0.5 * (jnp.arange(-r, r + 1) / sigma) ** 2)
  k = k / k.sum()
  n = x.shape[1]
  off = jnp.arange(n)[None, :] - jnp.arange(n)[:, None] + r
  m = jnp.where((off >= 0) & (off <= 2 * r), k[jnp.clip(off, 0, 2 * r)], 0.0)
  return jnp.einsum("iw,bhwc->bhic", m, jnp.einsum("ih,bhwc->biwc", m, x))


def test_multi_scale_recipe():
  """MultiScaleLoss(loss, scales, kernel="gaussian"): the mean over scales of the loss
  between both images blurred by a Gaussian of std ``scale``."""
  rng = np.random.default_rng(6)
  p, t = (rng.uniform(0, 1, (6, 8, 8, 2)).astype(np.float32) for _ in range(2))
  scales = (0, 1, 2)
  recipe = jnp.mean(
    jnp.stack([jaxobj.squared_error(_blur(p, s), _blur(t, s)).mean() for s in scales])
  )

  def ref_blur(a, s):
    if s == 0:
      return a
    return ndimage.gaussian_filter(a, (0, s, s, 0), mode="constant", truncate=3.0)

  p64, t64 = p.astype(np.float64), t.astype(np.float64)
  want = np.mean([((ref_blur(p64, s) - ref_blur(t64, s)) ** 2).mean() for s in scales])
  np.testing.assert_allclose(recipe, want, rtol=1e-5)


def test_jukebox_recipe():
  """JukeboxLoss(spatial_dims=2, fft_norm="ortho"): the mean squared difference of the
  amplitudes of the spatial FFTs."""
  rng = np.random.default_rng(7)
  x, y = (rng.standard_normal((6, 8, 8, 1)).astype(np.float32) for _ in range(2))
  amplitude = lambda a: jnp.abs(jnp.fft.fftn(a, axes=(1, 2), norm="ortho"))  # noqa: E731
  recipe = jaxobj.squared_error(amplitude(x), amplitude(y)).mean()
  ref = lambda a: np.abs(np.fft.fftn(np.asarray(a, np.float64), axes=(1, 2), norm="ortho"))  # noqa: E731
  np.testing.assert_allclose(recipe, ((ref(x) - ref(y)) ** 2).mean(), rtol=1e-5)
  grad = jax.grad(lambda x: jaxobj.squared_error(amplitude(x), amplitude(y)).mean())(x)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_sure_recipe():
  """Stein's unbiased risk estimate of a denoiser ``f`` on ``y = x + N(0, sigma^2)``, with
  the Monte-Carlo divergence of Ramani et al. (2008); unbiased for the true MSE."""
  rng = np.random.default_rng(8)
  clean = rng.uniform(0, 1, (6, 8, 8, 1))
  sigma, eps = 0.1, 1e-2
  y = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
  b = rng.standard_normal(y.shape).astype(np.float32)
  w = np.float32(0.7)

  def f(y):  # a linear shrinkage denoiser, exact divergence w * y.size
    return w * y + (1 - w) * 0.5

  recipe = (
    jaxobj.squared_error(f(y), y).mean()
    - sigma**2
    + 2 * sigma**2 * jnp.vdot(b, f(y + eps * b) - f(y)) / (eps * y.size)
  )
  y64 = y.astype(np.float64)
  # f is linear: the Monte-Carlo divergence is exactly w * mean(b^2).
  divergence = w * np.mean(b.astype(np.float64) ** 2)
  want = ((f(y64) - y64) ** 2).mean() - sigma**2 + 2 * sigma**2 * divergence
  np.testing.assert_allclose(recipe, want, rtol=1e-4)
  # The estimate tracks the true risk, which it cannot see.
  true_mse = ((f(y64) - clean) ** 2).mean()
  assert abs(float(recipe) - true_mse) < 0.2 * true_mse
