"""The generalized IoU loss against a float64 reference written from Rezatofighi et al. (2019).

The reference rasterizes nothing: it intersects the boxes' intervals axis by
axis, in plain Python floats. The registry-wide tests cover the contract.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxobj


def _np_giou_loss(a, b):
  d = len(a) // 2
  inter, size_a, size_b, hull = 1.0, 1.0, 1.0, 1.0
  for k in range(d):
    lo, hi = max(a[k], b[k]), min(a[d + k], b[d + k])
    inter *= max(hi - lo, 0.0)
    size_a *= a[d + k] - a[k]
    size_b *= b[d + k] - b[k]
    hull *= max(a[d + k], b[d + k]) - min(a[k], b[k])
  union = size_a + size_b - inter
  return 1 - inter / union + (hull - union) / hull


@pytest.mark.parametrize("dims", [2, 3])
def test_giou_matches_the_float64_reference(dims):
  rng = np.random.default_rng(dims)
  lo = rng.uniform(0, 4, (6, dims))
  targets = np.concatenate([lo, lo + rng.uniform(0.5, 2, (6, dims))], -1)
  plo = lo + rng.normal(0, 1.0, (6, dims))
  predictions = np.concatenate([plo, plo + rng.uniform(0.5, 2, (6, dims))], -1)
  predictions[0] = targets[0]  # identical: 0
  predictions[1, :dims] = targets[1, dims:] + 5.0  # far apart: close to 2
  predictions[1, dims:] = predictions[1, :dims] + 0.1
  got = jaxobj.box_giou_loss(predictions.astype(np.float32), targets, reduction="none")
  want = [_np_giou_loss(a, b) for a, b in zip(predictions, targets)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  g = np.asarray(got)
  assert g[0] == 0.0 and 1.9 < g[1] < 2.0 and np.all((g >= 0) & (g <= 2))


def test_giou_gradients_degenerate_boxes_and_errors():
  box = jnp.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
  with jax.enable_x64(True):
    x = jnp.array([[3.0, 0.5, 5.0, 1.5], [0.5, 0.2, 1.5, 2.5]], jnp.float64)
    f = jax.jit(lambda x: jaxobj.box_giou_loss(x, box[:1].repeat(2, 0)))
    check_grads(f, (x,), order=1, modes=["rev"], eps=1e-6)
    # Apart, IoU gives no gradient; GIoU pulls the box towards the target.
    assert float(jax.grad(f)(x)[0, 0]) > 0
  point = box[1:]  # a degenerate box against itself: zero union and hull
  value, grad = jax.value_and_grad(lambda p: jaxobj.box_giou_loss(p, point))(point)
  assert float(value) == 1.0 and np.all(np.isfinite(np.asarray(grad)))
  with pytest.raises(ValueError, match=r"\(\.\.\., 4\) corners"):
    jaxobj.box_giou_loss(box[:, :3], box[:, :3])
  with pytest.raises(ValueError, match=r"\(2, 4\)"):
    jaxobj.box_giou_loss(box, box[:1])
