"""Example inputs for the fused logit distillation loss.

A student and a teacher given as hidden states and output kernels: the hidden
states carry the batch (token) axes, the kernels are shared by every token.
The teacher has another hidden size, and the vocabulary (7) is not a multiple
of any block size.
"""

from __future__ import annotations

import numpy as np

from jaxobj._src.examples import Inputs

STUDENT_DIM, TEACHER_DIM, VOCAB = 4, 6, 7


def _hidden_pairs(rng, shape):
  student = rng.standard_normal(shape + (STUDENT_DIM,)).astype(np.float32)
  teacher = rng.standard_normal(shape + (TEACHER_DIM,)).astype(np.float32)
  student_kernel = rng.standard_normal((STUDENT_DIM, VOCAB)).astype(np.float32)
  teacher_kernel = rng.standard_normal((TEACHER_DIM, VOCAB)).astype(np.float32)
  return student, teacher, student_kernel, teacher_kernel


HIDDEN_PAIRS = Inputs(_hidden_pairs, batched=2)
