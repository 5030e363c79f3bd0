"""Shape-aware segmentation losses against float64 references written from the papers.

The soft skeleton of Shit et al. (2021) with SciPy's minimum and maximum
filters (an independent route to the soft erosion and dilation), clDice from
its precision/sensitivity formula, and the Hausdorff distance-transform loss
of Karimi and Salcudean (2019) with SciPy's exact Euclidean distance
transform. The registry-wide tests cover the loss contract.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import ndimage
from scipy.special import expit, softmax

import jaxobj

# ---------------------------------------------------------------- references


def _np_probs(logits, labels, activation, include_background):
  x = np.asarray(logits, np.float64)
  p = softmax(x, -1) if activation == "softmax" else expit(x)
  c = x.shape[-1]
  g = np.asarray(labels, np.float64)[..., None] if c == 1 else np.eye(c)[labels]
  if not include_background and c > 1:
    p, g = p[..., 1:], g[..., 1:]
  return p, g


def _np_skeleton(img, iterations):
  """One channel ``(*spatial)``: erosion by the cross, dilation by the box, outside ignored."""
  d = img.ndim
  cross = ndimage.generate_binary_structure(d, 1)
  erode = lambda a: ndimage.minimum_filter(a, footprint=cross, mode="constant", cval=np.inf)  # noqa: E731
  dilate = lambda a: ndimage.maximum_filter(a, size=3, mode="constant", cval=-np.inf)  # noqa: E731
  relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
  skel = relu(img - dilate(erode(img)))
  for _ in range(iterations):
    img = erode(img)
    delta = relu(img - dilate(erode(img)))
    skel = skel + relu(delta - skel * delta)
  return skel


def _np_cldice(p, g, iterations, smooth):
  """One image ``(*spatial, C)``: skeletons per channel, sums pooled over channels."""
  sp = np.stack([_np_skeleton(p[..., c], iterations) for c in range(p.shape[-1])], -1)
  sg = np.stack([_np_skeleton(g[..., c], iterations) for c in range(g.shape[-1])], -1)
  prec = ((sp * g).sum() + smooth) / (sp.sum() + smooth)
  sens = ((sg * p).sum() + smooth) / (sg.sum() + smooth)
  return 1 - 2 * prec * sens / (prec + sens)


def _np_field(mask):
  """Distance to the nearest pixel of the other label; 0 for a single-label mask."""
  if mask.all() or not mask.any():
    return np.zeros(mask.shape)
  return ndimage.distance_transform_edt(mask) + ndimage.distance_transform_edt(~mask)


def _np_hausdorff(p, g, alpha):
  """One image ``(*spatial, C)``."""
  out = 0.0
  for c in range(p.shape[-1]):
    dp, dg = _np_field(p[..., c] > 0.5), _np_field(g[..., c] > 0.5)
    out = out + ((p[..., c] - g[..., c]) ** 2 * (dp**alpha + dg**alpha)).sum()
  return out / p.size


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(21)
  labels = np.zeros((6, 8, 8), np.int32)
  labels[:, 2:6, 3] = 1  # a thin vertical structure
  labels[:, 5, 1:7] = 2  # and a horizontal one
  labels[1] = rng.integers(0, 3, (8, 8))
  labels[2] = 0  # empty foreground
  logits = (4.0 * np.eye(3)[labels] - 2.0 + 1.5 * rng.standard_normal((6, 8, 8, 3))).astype(
    np.float32
  )
  logits[2] = np.where(np.arange(3) == 0, 12.0, -12.0)  # a confident empty prediction
  logits[3] = 12.0 * (2 * np.eye(3)[labels[3]] - 1)  # a perfect one
  return logits, labels


# ---------------------------------------------------------------- clDice


@pytest.mark.parametrize(
  "activation, include_background, iterations, smooth",
  [("softmax", False, 3, 1.0), ("sigmoid", True, 0, 0.1)],
)
def test_cldice_matches_the_float64_reference(
  batch, activation, include_background, iterations, smooth
):
  logits, labels = batch
  kw = dict(
    activation=activation,
    include_background=include_background,
    iterations=iterations,
    smooth=smooth,
    reduction="none",
  )
  got = jaxobj.soft_cldice_loss(logits, labels, **kw)
  both = jaxobj.soft_dice_cldice_loss(logits, labels, alpha=0.3, **kw)
  p, g = _np_probs(logits, labels, activation, include_background)
  want = np.array([_np_cldice(a, b, iterations, smooth) for a, b in zip(p, g)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  dice = 1 - (2 * (p * g).sum((1, 2, 3)) + smooth) / (p.sum((1, 2, 3)) + g.sum((1, 2, 3)) + smooth)
  np.testing.assert_allclose(both, 0.7 * dice + 0.3 * want, rtol=1e-5, atol=1e-6)
  if not include_background:  # empty vs confidently empty, and perfect: 0
    np.testing.assert_allclose(np.asarray(got)[[2, 3]], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(both)[[2, 3]], 0.0, atol=1e-6)


def test_cldice_sees_a_break_that_dice_barely_sees_and_works_in_3d():
  vessel = np.zeros((1, 3, 9, 3), np.int32)
  vessel[0, 1, :, 1] = 1  # a line through a 3 x 9 x 3 volume
  good = 12.0 * (2 * np.eye(2)[vessel] - 1)
  broken = good.copy()
  broken[0, 1, 4, 1] = good[0, 0, 0, 0]  # one voxel missing
  kw = dict(spatial_dims=3, iterations=1)
  cl = [float(jaxobj.soft_cldice_loss(x, vessel, **kw)) for x in (good, broken)]
  p, g = _np_probs(broken, vessel, "softmax", False)
  np.testing.assert_allclose(cl[1], _np_cldice(p[0], g[0], 1, 1.0), rtol=1e-5)
  assert cl[0] < 1e-6 and cl[1] > 0.05


def test_cldice_gradients_in_float64(batch):
  logits, labels = batch
  with jax.enable_x64(True):
    x = jnp.asarray(logits[:1, 2:6, 1:5], jnp.float64)
    f = jax.jit(lambda x: jaxobj.soft_dice_cldice_loss(x, labels[:1, 2:6, 1:5], iterations=1))
    check_grads(f, (x,), order=1, modes=["rev"], eps=1e-6)


# ---------------------------------------------------------------- Hausdorff


@pytest.mark.parametrize("alpha, include_background", [(2.0, False), (1.0, True)])
def test_hausdorff_matches_scipy_distance_transforms(batch, alpha, include_background):
  logits, labels = batch
  kw = dict(alpha=alpha, include_background=include_background, reduction="none")
  got = jaxobj.hausdorff_dt_loss(logits, labels, **kw)
  log = jaxobj.log_hausdorff_dt_loss(logits, labels, **kw)
  p, g = _np_probs(logits, labels, "softmax", include_background)
  want = np.array([_np_hausdorff(a, b, alpha) for a, b in zip(p, g)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(log, np.log1p(want), rtol=1e-5, atol=1e-7)
  if not include_background:  # empty target and prediction: no distance, no loss
    assert float(got[2]) == 0.0 and float(log[2]) == 0.0


def test_hausdorff_3d_sigmoid_and_empty_masks():
  rng = np.random.default_rng(22)
  masks = (rng.uniform(size=(3, 4, 5, 3, 2)) < 0.3).astype(np.float32)
  masks[0] = 0.0
  logits = (3.0 * rng.standard_normal(masks.shape)).astype(np.float32)
  got = jaxobj.hausdorff_dt_loss(
    logits, masks, activation="sigmoid", include_background=True, spatial_dims=3, reduction="none"
  )
  p = expit(np.asarray(logits, np.float64))
  want = [_np_hausdorff(a, b, 2.0) for a, b in zip(p, masks.astype(bool).astype(float))]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # The distances are constants: the gradient is that of the weighted squared error.
  with jax.enable_x64(True):
    x = jnp.asarray(logits[:1], jnp.float64)
    f = jax.jit(
      lambda x: jaxobj.log_hausdorff_dt_loss(
        x, masks[:1], activation="sigmoid", include_background=True, spatial_dims=3
      )
    )
    check_grads(f, (x,), order=1, modes=["rev"], eps=1e-6)


def test_topology_bad_arguments(batch):
  logits, labels = batch
  with pytest.raises(ValueError, match="iterations must be a non-negative int"):
    jaxobj.soft_cldice_loss(logits, labels, iterations=-1)
  with pytest.raises(ValueError, match="smooth"):
    jaxobj.soft_cldice_loss(logits, labels, smooth=0.0)
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.soft_dice_cldice_loss(logits, labels, alpha=1.5)
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.hausdorff_dt_loss(logits, labels, alpha=-1.0)
  with pytest.raises(ValueError, match=r"labels.shape=\(6, 1, 8, 8\)"):
    jaxobj.hausdorff_dt_loss(logits, labels[:, None])
  with pytest.raises(TypeError, match="class indices must be integers"):
    jaxobj.soft_cldice_loss(logits, labels.astype(np.float32))
  with pytest.raises(ValueError, match="activation='relu' is not supported"):
    jaxobj.log_hausdorff_dt_loss(logits, labels, activation="relu")


# ---------------------------------------------------------------- class distances,
# imbalance and calibration


def _np_gwdl(p, y, m, smooth_nr=1e-5, smooth_dr=1e-5):
  """One image: ``p`` ``(*spatial, C)`` probabilities, ``y`` the label map."""
  p, y = p.reshape(-1, p.shape[-1]), y.ravel()
  w = np.array([sum(p[i, l] * m[l, y[i]] for l in range(len(m))) for i in range(len(y))])
  a = m[:, 0][y]
  tp = np.sum(a * (a - w))
  return 1 - (2 * tp + smooth_nr) / (2 * tp + w.sum() + smooth_dr)


def _np_aufl(p, g, weight, delta, gamma):
  """One image ``(*spatial, C)``, from Yeung et al.'s formulas."""
  eps = 1e-7
  ce = -g * np.log(p)
  back = (1 - delta) * (1 - p[..., 0]) ** gamma * ce[..., 0]
  focal = np.mean(back + delta * ce[..., 1:].sum(-1))
  axes = tuple(range(p.ndim - 1))
  tp, fn, fp = (p * g).sum(axes), ((1 - p) * g).sum(axes), (p * (1 - g)).sum(axes)
  ti = (tp + eps) / (tp + delta * fn + (1 - delta) * fp + eps)
  tversky = np.mean(np.concatenate([[1 - ti[0]], (1 - ti[1:]) ** (1 - gamma)]))
  return weight * focal + (1 - weight) * tversky


def _np_nacl(x, g, alpha, kernel_size, sigma, kernel_type, distance):
  """One image ``(H, W, C)``: explicit windows cut at the borders."""
  h, w, _ = x.shape
  r = kernel_size // 2
  k = np.arange(-r, r + 1)
  k1 = np.ones(kernel_size) if kernel_type == "rectangular" else np.exp(-(k**2) / (2 * sigma**2))
  shares = np.zeros_like(g)
  for i in range(h):
    for j in range(w):
      num, den = 0.0, 0.0
      for a in range(max(0, i - r), min(h, i + r + 1)):
        for b in range(max(0, j - r), min(w, j + r + 1)):
          kk = k1[a - i + r] * k1[b - j + r]
          num, den = num + kk * g[a, b], den + kk
      shares[i, j] = num / den
  log_p = x - np.log(np.exp(x).sum(-1, keepdims=True))
  gap = np.abs(x - shares) if distance == "l1" else (x - shares) ** 2
  return -(g * log_p).sum(-1).mean() + alpha * gap.mean()


def test_generalized_wasserstein_dice_matches_the_float64_reference(batch):
  logits, labels = batch
  m = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3], [0.8, 0.3, 0.0]])
  p = softmax(np.asarray(logits, np.float64), -1)
  for mat in (None, m):
    got = jaxobj.generalized_wasserstein_dice_loss(
      logits, labels, dist_matrix=mat, reduction="none"
    )
    want = [_np_gwdl(a, y, 1 - np.eye(3) if mat is None else mat) for a, y in zip(p, labels)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Empty image, confident empty prediction: sum W / (sum W + s), small; perfect: 0.
    assert abs(float(got[2])) < 1e-3 and abs(float(got[3])) < 1e-4
  # One-hot targets give the same value as the label map.
  onehot = np.eye(3, dtype=np.float32)[labels]
  np.testing.assert_allclose(
    jaxobj.generalized_wasserstein_dice_loss(logits, onehot, dist_matrix=m),
    jaxobj.generalized_wasserstein_dice_loss(logits, labels, dist_matrix=m),
    rtol=1e-6,
  )


@pytest.mark.parametrize("weight, delta, gamma", [(0.5, 0.7, 0.5), (0.2, 0.6, 1.0)])
def test_asymmetric_unified_focal_matches_the_float64_reference(batch, weight, delta, gamma):
  logits, labels = batch
  got = jaxobj.asymmetric_unified_focal_loss(
    logits, labels, weight=weight, delta=delta, gamma=gamma, reduction="none"
  )
  p, g = _np_probs(logits, labels, "softmax", True)
  want = [_np_aufl(a, b, weight, delta, gamma) for a, b in zip(p, g)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  if gamma < 1:  # a confident, correct prediction (gamma = 1 makes (1 - TI)^0 = 1)
    assert float(got[3]) < 1e-4
  # Binary: two channels, MONAI's case.
  two = jaxobj.asymmetric_unified_focal_loss(logits[..., :2], (labels > 0).astype(np.int32))
  p2, g2 = _np_probs(logits[..., :2], (labels > 0).astype(int), "softmax", True)
  want2 = np.mean([_np_aufl(a, b, 0.5, 0.7, 0.5) for a, b in zip(p2, g2)])
  np.testing.assert_allclose(two, want2, rtol=1e-5)


@pytest.mark.parametrize(
  "kernel_size, kernel_type, sigma, distance",
  [(3, "rectangular", 1.0, "l1"), (5, "gaussian", 0.8, "l2")],
)
def test_nacl_matches_the_float64_reference(batch, kernel_size, kernel_type, sigma, distance):
  logits, labels = batch
  kw = dict(kernel_size=kernel_size, kernel_type=kernel_type, sigma=sigma, distance=distance)
  got = jaxobj.nacl_loss(logits, labels, alpha=0.3, reduction="none", **kw)
  x = np.asarray(logits, np.float64)
  g = np.eye(3)[labels]
  want = [_np_nacl(a, b, 0.3, kernel_size, sigma, kernel_type, distance) for a, b in zip(x, g)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_class_distance_imbalance_and_calibration_gradients_in_float64(batch):
  logits, labels = batch
  m = jnp.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3], [0.8, 0.3, 0.0]])
  with jax.enable_x64(True):
    x = jnp.asarray(logits[:2, :4, :4], jnp.float64)
    y = labels[:2, :4, :4]

    def total(x):
      return (
        jaxobj.generalized_wasserstein_dice_loss(x, y, dist_matrix=m)
        + jaxobj.asymmetric_unified_focal_loss(x, y)
        + jaxobj.nacl_loss(x, y, distance="l2")
      )

    check_grads(jax.jit(total), (x,), order=1, modes=["rev"], eps=1e-6)
    # Confident logits: the focal powers of exact zeros keep finite gradients.
    grad = jax.grad(lambda x: jaxobj.asymmetric_unified_focal_loss(x, labels[3:4, :4, :4]))(
      jnp.asarray(logits[3:4, :4, :4]) * 100
    )
    assert np.all(np.isfinite(np.asarray(grad)))


def test_class_distance_imbalance_and_calibration_bad_arguments(batch):
  logits, labels = batch
  with pytest.raises(ValueError, match=r"dist_matrix must be \(C, C\) = \(3, 3\)"):
    jaxobj.generalized_wasserstein_dice_loss(logits, labels, dist_matrix=np.ones((2, 2)))
  with pytest.raises(ValueError, match="needs at least 2 classes"):
    jaxobj.generalized_wasserstein_dice_loss(logits[..., :1], (labels > 0).astype(np.int32))
  with pytest.raises(ValueError, match="gamma"):
    jaxobj.asymmetric_unified_focal_loss(logits, labels, gamma=1.5)
  with pytest.raises(ValueError, match="positive odd int"):
    jaxobj.nacl_loss(logits, labels, kernel_size=2)
  with pytest.raises(ValueError, match="distance='l3' is not supported"):
    jaxobj.nacl_loss(logits, labels, distance="l3")
