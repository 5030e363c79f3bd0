"""Sequences: token cross-entropy when the alignment is known, CTC when it is not.

Language modelling and tagging know which output goes with which position:
``token_cross_entropy`` scores each token, skips padding (``ignore_index``),
and normalizes per token or per sequence. Speech and handwriting do not: a
label sequence of 3 symbols must be read from 12 frames. ``ctc_loss`` sums over
every alignment, and frame logits trained with it decode (merge repeats, drop
blanks) to the labels without ever being told where each symbol is.

    python docs/examples/sequences.py
"""

import jax
import jax.numpy as jnp
from _fit import fit

import jaxobj

BLANK = 0


def greedy_decode(frame_logits):
  best = [int(k) for k in jnp.argmax(frame_logits, -1)]
  merged = [k for i, k in enumerate(best) if i == 0 or k != best[i - 1]]
  return [k for k in merged if k != BLANK]


def main():
  # Known alignment: one target per position, padding marked -100.
  targets = jnp.array([[3, 1, 4, 1, 5], [2, 6, 5, -100, -100]])
  lm = fit(
    lambda p: jaxobj.token_cross_entropy(p, targets, ignore_index=-100),
    jnp.zeros((2, 5, 8)),
    steps=100,
    learning_rate=0.1,
  )
  valid = targets != -100
  assert bool(jnp.all(jnp.where(valid, jnp.argmax(lm, -1) == targets, True)))

  # Unknown alignment: 12 frames, labels [2, 3, 3] (a repeat needs a blank between).
  labels = jnp.array([[2, 3, 3, 0]])
  label_paddings = jnp.array([[0.0, 0.0, 0.0, 1.0]])  # 3 labels + padding
  frame_paddings = jnp.zeros((1, 12))
  frames = fit(
    lambda p: jaxobj.ctc_loss(p, frame_paddings, labels, label_paddings, blank_id=BLANK),
    0.01 * jax.random.normal(jax.random.key(13), (1, 12, 5)),
    steps=200,
    learning_rate=0.1,
  )
  decoded = greedy_decode(frames[0])
  print(f"token_cross_entropy: all valid tokens predicted; CTC decodes to {decoded}")
  assert decoded == [2, 3, 3]
  return decoded


if __name__ == "__main__":
  main()
