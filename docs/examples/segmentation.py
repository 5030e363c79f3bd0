"""Segmentation of a small object: Dice + cross-entropy against pixel imbalance.

The object covers about 4% of each 16x16 image. Pixel-wise cross-entropy alone
is dominated by the easy background and under-segments the object at this
budget; ``dice_ce_loss`` (MONAI's DiceCELoss: the overlap of the whole mask
plus the pixel calibration of cross-entropy) finds it.

    python docs/examples/segmentation.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

kc, kn = jax.random.split(jax.random.key(12))
n, size = 32, 16
corner = jax.random.randint(kc, (n, 2), 0, size - 3)
rows, cols = jnp.arange(size)[None, :, None], jnp.arange(size)[None, None, :]
mask = (
  (rows >= corner[:, 0, None, None])
  & (rows < corner[:, 0, None, None] + 3)
  & (cols >= corner[:, 1, None, None])
  & (cols < corner[:, 1, None, None] + 3)
)
labels = mask.astype(jnp.int32)  # (n, 16, 16)
image = mask + 1.2 * jax.random.normal(kn, (n, size, size))  # a faint object


def logits(p):
  # A per-pixel linear model over a 3x3 neighbourhood, two classes.
  patches = jnp.stack(
    [jnp.roll(image, (dy, dx), (1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], -1
  )
  return patches @ p["w"] + p["b"]  # (n, 16, 16, 2)


def dice_score(p):
  pred = jnp.argmax(logits(p), -1)
  inter = jnp.sum(pred * labels)
  return float(2 * inter / (jnp.sum(pred) + jnp.sum(labels)))


def main():
  init = {"w": jnp.zeros((9, 2)), "b": jnp.zeros(2)}
  ce = fit(
    lambda p: jaxobj.softmax_cross_entropy_with_integer_labels(logits(p), labels), init, steps=150
  )
  dice_ce = fit(
    lambda p: jaxobj.dice_ce_loss(logits(p), labels, include_background=False), init, steps=150
  )
  scores = {"cross-entropy": dice_score(ce), "dice_ce_loss": dice_score(dice_ce)}
  print("Dice score of the predicted masks:", {k: round(v, 3) for k, v in scores.items()})
  assert scores["dice_ce_loss"] > scores["cross-entropy"] + 0.1
  return scores


if __name__ == "__main__":
  main()
