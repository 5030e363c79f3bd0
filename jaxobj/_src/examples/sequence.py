"""Example inputs for the sequence losses (token cross-entropy and CTC).

Batch axes lead: for the token loss the batch shape is the token shape (the
per-element loss is per token); for CTC it is the shape of the batch of
sequences, followed by the time and label axes.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs, _mask_classes, _normal

VOCAB = 7
CTC_FRAMES = 8
CTC_CLASSES = 5
CTC_LABELS = 3
BLANK = 0


def _tokens(rng, shape):
  return (_normal(rng, shape + (VOCAB,), 2.0), rng.integers(0, VOCAB, shape).astype(np.int32))


def _tokens_masked(rng, shape):
  logits, targets = _tokens(rng, shape)
  keep = np.arange(VOCAB) == targets[..., None]
  return _mask_classes(rng, logits, keep)[0], targets


def ctc_batch(
  rng, shape, frames=CTC_FRAMES, classes=CTC_CLASSES, max_labels=CTC_LABELS, blank=BLANK, scale=2.0
):
  """Right-padded CTC inputs whose every sequence has a feasible alignment.

  Label lengths are drawn in ``[0, max_labels]`` from the non-blank classes;
  each sequence gets at least as many frames as its labels need (one per
  label plus one blank between repeated labels), up to ``frames``.
  Paddings are 1.0 at padded positions, 0.0 elsewhere (optax's convention).
  """
  n = int(np.prod(shape, dtype=np.int64))
  logits = _normal(rng, (n, frames, classes), scale)
  non_blank = np.array([k for k in range(classes) if k != blank])
  labels = non_blank[rng.integers(0, len(non_blank), (n, max_labels))].astype(np.int32)
  lengths = rng.integers(0, max_labels + 1, n)
  label_pad = (np.arange(max_labels) >= lengths[:, None]).astype(np.float32)
  labels = np.where(label_pad > 0, 0, labels).astype(np.int32)
  repeats = np.sum((labels[:, 1:] == labels[:, :-1]) & (label_pad[:, 1:] == 0), axis=1)
  need = lengths + repeats
  if np.any(need > frames):
    raise ValueError(f"frames={frames} cannot hold {max_labels} labels with repeats.")
  valid = rng.integers(need, frames + 1)
  logit_pad = (np.arange(frames) >= valid[:, None]).astype(np.float32)
  return (
    logits.reshape(shape + (frames, classes)),
    logit_pad.reshape(shape + (frames,)),
    labels.reshape(shape + (max_labels,)),
    label_pad.reshape(shape + (max_labels,)),
  )


TOKENS = Inputs(_tokens, _tokens_masked)
CTC = Inputs(ctc_batch)

# A projection whose vocabulary (7) is not a multiple of any block size.
LINEAR_DIM, LINEAR_VOCAB = 4, 7


def _linear(rng, shape):
  hidden = rng.standard_normal(shape + (LINEAR_DIM,)).astype(np.float32)
  targets = rng.integers(0, LINEAR_VOCAB, shape).astype(np.int32)
  kernel = rng.standard_normal((LINEAR_DIM, LINEAR_VOCAB)).astype(np.float32)
  return hidden, targets, kernel


LINEAR = Inputs(_linear, batched=2)
