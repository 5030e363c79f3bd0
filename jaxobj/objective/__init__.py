"""The objective algebra: pure ``(init, apply)`` objectives built from named terms.

>>> import jax.numpy as jnp, jaxobj
>>> from jaxobj import objective as jo
>>> obj = (jo.term(jaxobj.squared_error, "outputs", "batch.y")
...        + jo.linear_warmup(0.0, 0.1, steps=100) * jo.regularizer(jaxobj.l2_penalty))
>>> loss, info = obj.apply(outputs=jnp.array([1.0]), batch={"y": jnp.array([0.0])},
...                        model={"w": jnp.array([2.0])}, step=50)
>>> print(loss, info["weight/l2_penalty"])
1.2 0.05
"""

from jaxobj.objective.accumulate import accumulate_value_and_grad
from jaxobj.objective.cache import cached_value_and_grad
from jaxobj.objective.core import (
  Evaluation,
  Learnable,
  Objective,
  Ref,
  Term,
  group,
  learnable,
  named,
  ref,
  regularizer,
  stop_gradient,
  term,
  weighted_sum,
)
from jaxobj.objective.gradients import (
  DBMTL,
  IMTLG,
  MGDA,
  AlignedMTL,
  CAGrad,
  GradDrop,
  GradientStrategy,
  GradNorm,
  GradVac,
  NashMTL,
  PCGrad,
  RepresentationGrads,
  TaskGradientState,
  UPGrad,
  WeightedSum,
  gradient_info,
  representation_task_grads,
  task_gradient_transform,
  value_and_task_grad,
)
from jaxobj.objective.schedules import (
  Schedule,
  constant,
  cosine_warmup,
  cyclical,
  linear_warmup,
  piecewise,
)
from jaxobj.objective.weighting import (
  FAMO,
  DynamicWeightAverage,
  GeometricMean,
  MultiTask,
  RandomLossWeighting,
  StaticWeights,
  UncertaintyWeighting,
  WeightingScheme,
  multitask,
)

__all__ = [
  "Evaluation",
  "Learnable",
  "Objective",
  "Ref",
  "Term",
  "group",
  "learnable",
  "named",
  "ref",
  "regularizer",
  "stop_gradient",
  "term",
  "weighted_sum",
  "DBMTL",
  "IMTLG",
  "MGDA",
  "AlignedMTL",
  "CAGrad",
  "GradDrop",
  "GradientStrategy",
  "GradNorm",
  "GradVac",
  "NashMTL",
  "PCGrad",
  "RepresentationGrads",
  "TaskGradientState",
  "UPGrad",
  "WeightedSum",
  "gradient_info",
  "representation_task_grads",
  "task_gradient_transform",
  "value_and_task_grad",
  "Schedule",
  "constant",
  "cosine_warmup",
  "cyclical",
  "linear_warmup",
  "piecewise",
  "FAMO",
  "DynamicWeightAverage",
  "GeometricMean",
  "MultiTask",
  "RandomLossWeighting",
  "StaticWeights",
  "UncertaintyWeighting",
  "WeightingScheme",
  "multitask",
  "accumulate_value_and_grad",
  "cached_value_and_grad",
]
