"""Image-registration losses against float64 NumPy references written from the formulas.

The regularizers' derivatives come from ``np.gradient`` (central differences
in the interior, an independent route to the same finite differences); the
local cross-correlation is computed pixel by pixel over explicit windows; the
mutual information from an explicit Parzen-window joint histogram. The
registry-wide tests cover the loss contract (masks, reductions, splitting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxobj

# ---------------------------------------------------------------- references


def _np_regularizer(u, order, normalize=False):
  """Bending energy (order 2) or diffusion (order 1) of one field ``(*spatial, D)``."""
  u = np.asarray(u, np.float64)
  d = u.ndim - 1
  spatial = u.shape[:-1]
  if normalize:
    u = u / np.asarray(spatial, np.float64)
  h = [1.0 / n if normalize else 1.0 for n in spatial]
  inner = tuple([slice(order, -order)] * d)
  total = 0.0
  for a in range(d):
    first = np.gradient(u, h[a], axis=a)
    if order == 1:
      total = total + first[inner] ** 2
      continue
    for b in range(a, d):
      second = np.gradient(first, h[b], axis=b)
      total = total + (1.0 if a == b else 2.0) * second[inner] ** 2
  return total.mean()


def _np_lncc(p, t, kernel_size, kernel_type, smooth_nr=0.0, smooth_dr=1e-5):
  """One image pair ``(H, W, C)``: explicit weighted windows cut at the borders."""
  p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
  r = kernel_size // 2
  h, w, _ = p.shape
  k = np.arange(-r, r + 1, dtype=np.float64)
  k1 = (
    np.ones_like(k)
    if kernel_type == "rectangular"
    else np.exp(-(k**2) / (2 * (kernel_size / 3) ** 2))
  )
  out = []
  for i in range(h):
    for j in range(w):
      rows = [(ii, k1[ii - i + r]) for ii in range(max(0, i - r), min(h, i + r + 1))]
      cols = [(jj, k1[jj - j + r]) for jj in range(max(0, j - r), min(w, j + r + 1))]
      wts = np.array([[a * b for _, b in cols] for _, a in rows])[..., None]
      pw = p[rows[0][0] : rows[-1][0] + 1, cols[0][0] : cols[-1][0] + 1]
      tw = t[rows[0][0] : rows[-1][0] + 1, cols[0][0] : cols[-1][0] + 1]
      m = wts.sum()
      mp, mt = (wts * pw).sum((0, 1)) / m, (wts * tw).sum((0, 1)) / m
      vp = (wts * (pw - mp) ** 2).sum((0, 1)) / m
      vt = (wts * (tw - mt) ** 2).sum((0, 1)) / m
      cov = (wts * (pw - mp) * (tw - mt)).sum((0, 1)) / m
      out.append((cov**2 + smooth_nr) / (vp * vt + smooth_dr))
  return -np.mean(out)


def _np_mi(a, b, num_bins=23, sigma_ratio=0.5, smooth_nr=1e-7, smooth_dr=1e-7):
  a = np.clip(np.asarray(a, np.float64).ravel(), 0, 1)
  b = np.clip(np.asarray(b, np.float64).ravel(), 0, 1)
  centres = np.linspace(0, 1, num_bins)
  sigma = sigma_ratio * (centres[1] - centres[0])

  def parzen(v):
    e = np.exp(-((v[:, None] - centres[None, :]) ** 2) / (2 * sigma**2))
    return e / e.sum(1, keepdims=True)

  wa, wb = parzen(a), parzen(b)
  joint = wa.T @ wb / len(a)
  pa, pb = wa.mean(0), wb.mean(0)
  prod = np.outer(pa, pb)
  terms = np.where(joint > 0, joint * np.log((joint + smooth_nr) / (prod + smooth_dr)), 0.0)
  return -terms.sum()


# ---------------------------------------------------------------- regularizers


@pytest.fixture(scope="module")
def fields():
  rng = np.random.default_rng(19)
  return {
    2: rng.standard_normal((6, 6, 5, 2)).astype(np.float32),
    3: rng.standard_normal((2, 5, 6, 5, 3)).astype(np.float32),
  }


@pytest.mark.parametrize("normalize", [False, True])
def test_regularizers_match_the_float64_reference_in_2d_and_3d(fields, normalize):
  for d, u in fields.items():
    for loss, order in ((jaxobj.bending_energy_loss, 2), (jaxobj.diffusion_loss, 1)):
      got = loss(u, spatial_dims=d, normalize=normalize, reduction="none")
      want = [_np_regularizer(f, order, normalize) for f in u]
      np.testing.assert_allclose(got, want, rtol=2e-5)
      mean = loss(u, spatial_dims=d, normalize=normalize)
      np.testing.assert_allclose(mean, np.mean(want), rtol=2e-5)


def test_regularizers_vanish_on_their_null_spaces_and_scale_quadratically():
  i, j = np.meshgrid(np.arange(6.0), np.arange(7.0), indexing="ij")
  affine = np.stack([3 * i - 2 * j + 1, 0.5 * i + j], -1)[None]
  shift = np.stack([np.full_like(i, 2.0), np.full_like(i, -1.0)], -1)[None]
  assert float(jaxobj.bending_energy_loss(affine)) == 0.0  # affine maps do not bend
  assert float(jaxobj.diffusion_loss(shift)) == 0.0  # translations do not stretch
  assert float(jaxobj.diffusion_loss(affine)) > 0.0
  quad = np.stack([i * j, i * i], -1)[None].astype(np.float32)
  e1, e2 = jaxobj.bending_energy_loss(quad), jaxobj.bending_energy_loss(3 * quad)
  np.testing.assert_allclose(e2, 9 * e1, rtol=1e-6)
  # d2(ij)/didj = 1 (counted twice), d2(i^2)/di2 = 2: (2 * 1 + 4) / 2 channels.
  np.testing.assert_allclose(e1, 3.0, rtol=1e-6)


def test_regularizer_gradients_in_float64(fields):
  with jax.enable_x64(True):
    u = jnp.asarray(fields[2][:2], jnp.float64)
    for loss in (jaxobj.bending_energy_loss, jaxobj.diffusion_loss):
      check_grads(
        jax.jit(lambda u, loss=loss: loss(u, normalize=True)), (u,), order=1, modes=["rev"]
      )


def test_regularizer_bad_arguments(fields):
  u = fields[2]
  with pytest.raises(ValueError, match="at least 5 pixels"):
    jaxobj.bending_energy_loss(u[:, :4])
  with pytest.raises(ValueError, match="at least 3 pixels"):
    jaxobj.diffusion_loss(u[:, :2])
  with pytest.raises(ValueError, match=r"ddf.shape\[-1\] must equal spatial_dims=2"):
    jaxobj.diffusion_loss(u[..., :1], normalize=True)
  with pytest.raises(ValueError, match="spatial_dims must be a positive int"):
    jaxobj.diffusion_loss(u, spatial_dims=0)
  with pytest.raises(TypeError, match="ddf must be a floating-point array"):
    jaxobj.diffusion_loss(u.astype(np.int32))


# ---------------------------------------------------------------- similarities


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(20)
  t = rng.uniform(0, 1, (6, 6, 7, 2))
  p = np.clip(0.7 * t + 0.3 * rng.uniform(0, 1, t.shape), 0, 1)
  p[1] = 0.25 + 0.5 * t[1]  # an affine intensity map: LNCC -1
  p[2] = 0.5  # a constant image: both similarities 0
  p[3] = 1.0 - t[3]  # inverted intensities
  p[4] = t[4]
  p[5, :, :3] = 1.7  # out of [0, 1]: clipped by the mutual information
  return p.astype(np.float32), t.astype(np.float32)


@pytest.mark.parametrize(
  "kernel_size, kernel_type", [(3, "rectangular"), (5, "gaussian"), (1, "rectangular")]
)
def test_lncc_matches_the_float64_reference(images, kernel_size, kernel_type):
  p, t = images
  got = jaxobj.local_normalized_cross_correlation_loss(
    p, t, kernel_size=kernel_size, kernel_type=kernel_type, reduction="none"
  )
  want = [_np_lncc(a, b, kernel_size, kernel_type) for a, b in zip(p, t)]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  g = np.asarray(got)
  assert np.all(g <= 0) and np.all(g >= -1 - 1e-6)
  if kernel_size > 1:  # local affine maps of the intensities: -1 up to smooth_dr
    exact = jaxobj.local_normalized_cross_correlation_loss(
      p[[1, 4]], t[[1, 4]], kernel_size=kernel_size, kernel_type=kernel_type, smooth_dr=1e-12
    )
    np.testing.assert_allclose(exact, -1.0, rtol=1e-4)
  assert g[2] == 0.0  # a constant image has no local structure


def test_lncc_3d_smoothing_and_gradients(images):
  p, t = images
  p3, t3 = p[:2, :4, :5, :, None], t[:2, :4, :5, :, None]
  got = jaxobj.local_normalized_cross_correlation_loss(
    p3, t3, spatial_dims=3, smooth_nr=1e-3, smooth_dr=1e-2, reduction="none"
  )
  want = []
  for a, b in zip(p3, t3):  # a 3x3x3 box: the 2-D reference summed over depth slices is not it,
    a, b = np.asarray(a, np.float64)[..., 0], np.asarray(b, np.float64)[..., 0]
    vals = []
    for idx in np.ndindex(a.shape):
      sl = tuple(slice(max(0, i - 1), i + 2) for i in idx)
      pw, tw = a[sl], b[sl]
      cov = ((pw - pw.mean()) * (tw - tw.mean())).mean()
      vals.append((cov**2 + 1e-3) / (pw.var() * tw.var() + 1e-2))
    want.append(-np.mean(vals))
  np.testing.assert_allclose(got, want, rtol=1e-4)
  with jax.enable_x64(True):
    x, y = (jnp.asarray(a[:2, :5, :5], jnp.float64) for a in (p, t))
    f = jax.jit(
      lambda x: jaxobj.local_normalized_cross_correlation_loss(x, y, kernel_type="gaussian")
    )
    check_grads(f, (x,), order=1, modes=["rev"], eps=1e-5)
    g = jax.grad(
      lambda y: jaxobj.local_normalized_cross_correlation_loss(jnp.full_like(y, 0.3), y)
    )(y)
    assert np.all(np.isfinite(np.asarray(g)))  # constant images: finite (zero) gradients


def test_mutual_information_matches_the_float64_reference(images):
  p, t = images
  got = jaxobj.global_mutual_information_loss(p, t, reduction="none")
  want = [_np_mi(a, b) for a, b in zip(p, t)]
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
  g = np.asarray(got)
  assert abs(g[2]) < 1e-6  # a constant image carries no information
  inverted = jaxobj.global_mutual_information_loss(1.0 - t[4], t[4])
  np.testing.assert_allclose(inverted, g[4], rtol=1e-4)  # invariant to inverting intensities
  assert g[4] < g[0] < 0  # the image itself shares the most
  coarse = jaxobj.global_mutual_information_loss(
    p, t, num_bins=8, sigma_ratio=1.0, smooth_nr=0.0, smooth_dr=0.0, reduction="none"
  )
  want = [_np_mi(a, b, 8, 1.0, 0.0, 0.0) for a, b in zip(p, t)]
  np.testing.assert_allclose(coarse, want, rtol=2e-4, atol=1e-6)


def test_mutual_information_gradients_in_float64(images):
  p, t = images
  with jax.enable_x64(True):
    x, y = (jnp.asarray(a[:2, :4, :4], jnp.float64) for a in (p, t))
    f = jax.jit(lambda x: jaxobj.global_mutual_information_loss(x, y, num_bins=6))
    check_grads(f, (0.8 * x + 0.1,), order=1, modes=["rev"], eps=1e-6)


def test_similarity_bad_arguments(images):
  p, t = images
  lncc = jaxobj.local_normalized_cross_correlation_loss
  with pytest.raises(ValueError, match="positive odd int"):
    lncc(p, t, kernel_size=4)
  with pytest.raises(ValueError, match="kernel_type='box' is not supported"):
    lncc(p, t, kernel_type="box")
  with pytest.raises(ValueError, match="smooth_dr"):
    lncc(p, t, smooth_dr=-1.0)
  with pytest.raises(ValueError, match=r"\(6, 6, 7, 2, 1\)"):
    lncc(p, t[..., None])
  with pytest.raises(ValueError, match="num_bins must be an int >= 2"):
    jaxobj.global_mutual_information_loss(p, t, num_bins=1)
  with pytest.raises(ValueError, match="sigma_ratio"):
    jaxobj.global_mutual_information_loss(p, t, sigma_ratio=0.0)
  with pytest.raises(ValueError, match="Add a channel axis"):
    jaxobj.global_mutual_information_loss(p[0, 0], t[0, 0])
