"""MONAI's wrapper losses as recipes of jaxobj pieces, checked against float64 references.

``DeepSupervisionLoss``, ``MultiScaleLoss``, ``JukeboxLoss`` and ``SURELoss``
wrap another loss or a model, so jaxobj has no registered counterpart: each
is one expression over existing losses and ``jnp``, written here exactly as
the coverage table gives it, evaluated verbatim and compared with a
NumPy/SciPy reference written from its definition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage
from scipy.special import softmax

import jaxobj

RECIPES = {
  "DeepSupervisionLoss": (
    "dice_loss(out1, labels) + 0.5 * dice_loss(out2, labels[:, ::2, ::2])"
    " + 0.25 * dice_loss(out3, labels[:, ::4, ::4])"
  ),
  "MultiScaleLoss": (
    "jnp.mean(jnp.stack([squared_error(p, t), squared_error("
    'jnp.einsum("ih,jw,bhwc->bijc", k, k, p), jnp.einsum("ih,jw,bhwc->bijc", k, k, t))]))'
  ),
  "JukeboxLoss": (
    'squared_error(jnp.abs(jnp.fft.fftn(x, axes=(1, 2), norm="ortho")),'
    ' jnp.abs(jnp.fft.fftn(y, axes=(1, 2), norm="ortho")))'
  ),
  "SURELoss": (
    "squared_error(out, y) - sigma**2 + 2 * sigma**2 * jnp.vdot(b, out_b - out) / (eps * y.size)"
  ),
}


def _recipe(name, **values):
  names = {n: getattr(jaxobj, n) for n in jaxobj.__all__}
  return eval(RECIPES[name], {"jnp": jnp, **names}, values)


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
  out1, out2, out3 = (
    rng.standard_normal((6, 8 // s, 8 // s, 3)).astype(np.float32) for s in (1, 2, 4)
  )
  recipe = _recipe("DeepSupervisionLoss", out1=out1, out2=out2, out3=out3, labels=labels)
  levels = zip((1.0, 0.5, 0.25), (1, 2, 4), (out1, out2, out3))
  want = sum(w * _np_dice(out, labels[:, ::s, ::s]) for w, s, out in levels)
  np.testing.assert_allclose(recipe, want, rtol=1e-5)


def _filter_matrix(n, sigma):
  """The ``(n, n)`` matrix of a Gaussian filter of std ``sigma``: row ``i`` the
  normalized kernel (truncated at 3 sigma) centred at pixel ``i``, zero padding."""
  r = int(3 * sigma + 0.5)
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k = k / k.sum()
  off = np.arange(n)[None, :] - np.arange(n)[:, None] + r
  return np.where((off >= 0) & (off <= 2 * r), k[np.clip(off, 0, 2 * r)], 0.0).astype(np.float32)


def test_multi_scale_recipe():
  """MultiScaleLoss(loss, scales=[0, s], kernel="gaussian"): the mean over scales of the
  loss between both images blurred by a Gaussian of std ``s`` (scale 0: no blur)."""
  rng = np.random.default_rng(6)
  p, t = (rng.uniform(0, 1, (6, 8, 8, 2)).astype(np.float32) for _ in range(2))
  s = 1.5
  recipe = _recipe("MultiScaleLoss", p=p, t=t, k=_filter_matrix(8, s))
  p64, t64 = p.astype(np.float64), t.astype(np.float64)
  blur = lambda a: ndimage.gaussian_filter(a, (0, s, s, 0), mode="constant", truncate=3.0)  # noqa: E731
  want = np.mean([((p64 - t64) ** 2).mean(), ((blur(p64) - blur(t64)) ** 2).mean()])
  np.testing.assert_allclose(recipe, want, rtol=1e-5)


def test_jukebox_recipe():
  """JukeboxLoss(spatial_dims=2, fft_norm="ortho"): the mean squared difference of the
  amplitudes of the spatial FFTs."""
  rng = np.random.default_rng(7)
  x, y = (rng.standard_normal((6, 8, 8, 1)).astype(np.float32) for _ in range(2))
  recipe = _recipe("JukeboxLoss", x=x, y=y)
  ref = lambda a: np.abs(np.fft.fftn(np.asarray(a, np.float64), axes=(1, 2), norm="ortho"))  # noqa: E731
  np.testing.assert_allclose(recipe, ((ref(x) - ref(y)) ** 2).mean(), rtol=1e-5)
  grad = jax.grad(lambda x: _recipe("JukeboxLoss", x=x, y=y))(x)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_sure_recipe():
  """Stein's unbiased risk estimate of a denoiser ``f`` on ``y = x + N(0, sigma^2)``, with
  the Monte-Carlo divergence of Ramani et al. (2008); it tracks the true MSE."""
  rng = np.random.default_rng(8)
  clean = rng.uniform(0, 1, (6, 8, 8, 1))
  sigma, eps = 0.1, 1e-2
  y = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
  b = rng.standard_normal(y.shape).astype(np.float32)
  w = np.float32(0.7)

  def f(y):  # a linear shrinkage denoiser
    return w * y + (1 - w) * 0.5

  out, out_b = f(y), f(y + eps * b)  # the denoiser at y and at y perturbed along b
  recipe = _recipe("SURELoss", out=out, out_b=out_b, y=y, b=b, sigma=sigma, eps=eps)
  y64 = y.astype(np.float64)
  # f is linear: the Monte-Carlo divergence is exactly w * mean(b^2).
  divergence = w * np.mean(b.astype(np.float64) ** 2)
  want = ((f(y64) - y64) ** 2).mean() - sigma**2 + 2 * sigma**2 * divergence
  np.testing.assert_allclose(recipe, want, rtol=1e-4)
  true_mse = ((f(y64) - clean) ** 2).mean()  # which the estimate cannot see
  assert abs(float(recipe) - true_mse) < 0.2 * true_mse
