"""The loss registry: name -> function plus the metadata that tools need.

Modules that define losses register them with :func:`register`; the CLI lists
them, configs build them by name, and the conformance tests iterate over them,
so a loss that is registered is checked against the whole contract for free.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Iterable

# Keyword arguments that belong to the contract, not to the loss's math.
CONTRACT_KEYWORDS = ("where", "weights", "reduction")
KINDS = ("loss", "metric", "regularizer")


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """What the registry knows about one loss.

  Attributes:
    name: registry name (the function's name unless registered otherwise).
    fn: the function.
    family: e.g. ``"regression"``, ``"classification"``.
    kind: ``"loss"`` (differentiable objective), ``"metric"`` (evaluation only)
      or ``"regularizer"`` (a penalty on a parameter pytree).
    summary: the docstring's first line.
    input_names: the positional (data) arguments, in order.
    hyperparameters: keyword-only arguments with their defaults, contract
      keywords (``where``, ``weights``, ``reduction``) excluded. Those with float
      defaults are traceable: ``jax.vmap`` and ``jax.grad`` may run over them.
    inputs: how to draw valid positional inputs (see ``jaxobj._src.examples``);
      used by the conformance tests and by comparisons.
    extreme: the scale the first input is multiplied by in the extreme-input
      checks (1e4 for logits and residuals; smaller where the exact loss
      overflows float32, as ``exp`` of a log-rate does).
    couples_rows: the loss's value over a batch is not a sum of per-row
      values: rows interact (in-batch negatives, batch statistics, mined
      triplets, a batch-level reference point). Such a loss gives a different
      value on each part of a split batch, so an objective refuses it under
      ``apply(axis_name=...)`` (unless the loss reduces over the devices
      itself, as the sharded losses do) and under
      ``accumulate_value_and_grad``; ``jaxobj.objective.cached_value_and_grad``
      accumulates it exactly.
  """
  name: str
  fn: Callable[..., Any]
  family: str
  kind: str
  summary: str
  input_names: tuple[str, ...]
  hyperparameters: dict[str, Any]
  inputs: Any = None
  extreme: float = 1e4
  couples_rows: bool = False

  @property
  def traceable(self) -> dict[str, float]:
    """The hyperparameters that may be traced arrays (those with float defaults)."""
    return {k: v for k, v in self.hyperparameters.items()
            if isinstance(v, float)}

  def as_dict(self) -> dict[str, Any]:
    return {
        "name": self.name,
        "family": self.family,
        "kind": self.kind,
        "summary": self.summary,
        "hyperparameters": {k: _jsonable(v) for k, v in self.hyperparameters.items()},
        "traceable": sorted(self.traceable),
        "inputs": list(self.input_names),
        "module": self.fn.__module__,
        "couples_rows": self.couples_rows,
    }


_REGISTRY: dict[str, LossSpec] = {}


def register(family: str, *, inputs=None, kind: str = "loss",
             name: str | None = None, extreme: float = 1e4, couples_rows: bool = False):
  """Decorator that adds a loss to the registry and returns it unchanged."""
  if kind not in KINDS:
    raise ValueError(f"kind={kind!r}; choose one of {KINDS}.")

  def decorator(fn):
    key = name or fn.__name__
    if key in _REGISTRY:
      raise ValueError(f"a loss named {key!r} is already registered "
                       f"(from {_REGISTRY[key].fn.__module__}).")
    params = inspect.signature(fn).parameters.values()
    positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
    hyper = {p.name: p.default for p in params
             if p.kind is p.KEYWORD_ONLY and p.name not in CONTRACT_KEYWORDS}
    doc = inspect.getdoc(fn) or ""
    _REGISTRY[key] = LossSpec(
        name=key, fn=fn, family=family, kind=kind,
        summary=doc.strip().splitlines()[0] if doc.strip() else "",
        input_names=positional, hyperparameters=hyper, inputs=inputs, extreme=extreme,
        couples_rows=couples_rows)
    return fn

  return decorator


class UnknownLossError(KeyError):
  """Raised for a name that is not in the registry; suggests close matches."""

  def __str__(self):
    return str(self.args[0])


def get(name: str) -> LossSpec:
  """The :class:`LossSpec` registered under ``name``."""
  _load()
  try:
    return _REGISTRY[name]
  except KeyError:
    close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
    hint = (f" Did you mean {', '.join(repr(c) for c in close)}?" if close
            else " Run `jaxobj losses` to list them.")
    raise UnknownLossError(f"no loss named {name!r} is registered.{hint}") from None


def spec_for(fn: Callable) -> LossSpec | None:
  """The spec registered for ``fn`` (a partial's function counts), or None."""
  _load()
  fn = getattr(fn, "func", fn)
  for s in _REGISTRY.values():
    if s.fn is fn:
      return s
  return None


def specs(family: str | None = None, kind: str | None = None) -> list[LossSpec]:
  """Registered losses, sorted by family then name, optionally filtered."""
  _load()
  out = [s for s in _REGISTRY.values()
         if (family is None or s.family == family) and (kind is None or s.kind == kind)]
  return sorted(out, key=lambda s: (s.family, s.name))


def names(family: str | None = None, kind: str | None = None) -> list[str]:
  return [s.name for s in specs(family, kind)]


def families() -> list[str]:
  return sorted({s.family for s in specs()})


def _load() -> None:
  # Importing the families fills the registry; a no-op once jaxobj is imported.
  import jaxobj.losses  # noqa: F401
  import jaxobj.regularizers  # noqa: F401


def _jsonable(v: Any) -> Any:
  if v is None or isinstance(v, (bool, int, float, str)):
    return v
  if isinstance(v, Iterable):
    return [_jsonable(x) for x in v]
  return repr(v)
