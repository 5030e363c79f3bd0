"""jaxobj: objective functions for JAX.

Every loss is a pure, jit-able function with one contract: data positional
(predictions or logits first), hyperparameters keyword-only and traceable,
``where``/``weights`` masks and weights, and ``reduction`` in
``"mean" | "sum" | "none"``. See ``jaxobj.registry`` for the catalogue.
"""

# First: in the jaxobj command only, notes a Ctrl-C lost while JAX imports.
from jaxobj._src import sigint  # noqa: F401, I001
from jaxobj import losses, registry, regularizers
from jaxobj._src.reduce import Reduced, reduce_loss, reduce_total
from jaxobj.comparison import Comparison, FitComparison, compare, compare_fits
from jaxobj.losses import *  # noqa: F401,F403
from jaxobj.regularizers import elastic_net_penalty, l1_penalty, l2_penalty

__version__ = "0.1.0"

__all__ = [
  "losses",
  "registry",
  "regularizers",
  "reduce_loss",
  "reduce_total",
  "Reduced",
  "l1_penalty",
  "l2_penalty",
  "elastic_net_penalty",
  "compare",
  "compare_fits",
  "Comparison",
  "FitComparison",
]
__all__ += losses.__all__


def __getattr__(name: str) -> object:
  # Defined last, so nothing during the import above reaches it. Private and
  # dunder names (asked by hasattr, doctest, pickling, IPython) fail fast with
  # the usual message.
  message = f"module 'jaxobj' has no attribute {name!r}"
  if name.startswith("_") or not name.isidentifier():
    raise AttributeError(message)
  import importlib.util

  if importlib.util.find_spec(f"jaxobj.{name}") is not None:
    raise AttributeError(f"{message}; it is a subpackage: import jaxobj.{name} first.")
  raise AttributeError(f"{message}. {registry.unknown_name_hint(name)}")
