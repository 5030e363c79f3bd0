"""The loss registry: name -> function plus the metadata that tools need.

Modules that define losses register them with :func:`register`; the CLI lists
them, configs build them by name, and the conformance tests iterate over them,
so a loss that is registered is checked against the whole contract for free.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import difflib
import functools
import inspect
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import jax
import numpy as np

from jaxobj._src import checks

if TYPE_CHECKING:
  from jaxobj._src.examples import Inputs

__all__ = [
  "ALIASES",
  "CONTRACT_KEYWORDS",
  "KINDS",
  "NOT_ALIASES",
  "LossSpec",
  "UnknownLossError",
  "eager_dispatch",
  "families",
  "get",
  "names",
  "register",
  "spec_for",
  "specs",
  "unknown_name_hint",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# Keyword arguments that belong to the contract, not to the loss's math.
CONTRACT_KEYWORDS = ("where", "weights", "reduction")
KINDS = ("loss", "metric", "regularizer")

# Hyperparameters with a ``None`` default ("off") that take a real number
# when given, and integer ones; checked like the float and int defaults.
_OPTIONAL_REALS = frozenset(
  {"alpha", "threshold", "sigma", "logit_soft_cap", "kl", "max_logit_scale"}
)
# String choices that also take a number (``normalize="tokens"`` or a constant).
_CHOICE_OR_REAL = frozenset({"normalize"})
_OPTIONAL_INTS = frozenset({"ignore_index", "topn", "block_size", "token_block", "vocab_block"})
# Integer hyperparameters that may also be integer arrays (compared with labels).
_ARRAY_INTS = frozenset({"ignore_index"})


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
      used by the conformance tests and by comparisons. A loss or metric
      without them states why in ``no_inputs``.
    no_inputs: why a loss or metric has no example ``inputs`` (it takes a
      function, such as a GAN critic); its own tests then check the contract.
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
    coupled_by: for a ``couples_rows`` loss whose rows interact only with
      some arguments given, those arguments (KTO's mismatched pairs, from
      which it estimates a batch-level reference point); empty when the rows
      always interact.
    limits: non-finite values a hyperparameter may take because the loss
      defines the limit there (``{"delta": (inf,)}`` for Huber: the squared
      error), declared with ``register(limits=...)``. Other concrete NaN or
      +-inf hyperparameters raise ``ValueError`` (``tests/test_hyperparameters.py``
      checks each limit against its closed form).
    axis_tuples: ``axis`` may be a tuple of class axes (flattened into one,
      in the order given, as optax's softmax cross-entropy does: an integer
      label is then a flat index into them); every other ``axis`` is an int.
    zero_hessian: why the loss's Hessian in its first input is exactly 0
      away from kinks (a hinge, an absolute value, a loss linear in it), or
      empty; the second-order tests require a nonzero Hessian otherwise.
  """

  name: str
  fn: Callable[..., Any]
  family: str
  kind: str
  summary: str
  input_names: tuple[str, ...]
  hyperparameters: dict[str, Any]
  inputs: Inputs | None = None
  no_inputs: str = ""
  extreme: float = 1e4
  couples_rows: bool = False
  coupled_by: tuple[str, ...] = ()
  limits: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
  axis_tuples: bool = False
  zero_hessian: str = ""

  @property
  def traceable(self) -> dict[str, float]:
    """The hyperparameters that may be traced arrays (those with float defaults)."""
    return {k: v for k, v in self.hyperparameters.items() if isinstance(v, float)}

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
      "limits": {k: [repr(x) for x in v] for k, v in self.limits.items()},
      "axis_tuples": self.axis_tuples,
    }


_REGISTRY: dict[str, LossSpec] = {}


def register(
  family: str,
  *,
  inputs: Inputs | None = None,
  no_inputs: str = "",
  kind: str = "loss",
  name: str | None = None,
  extreme: float = 1e4,
  couples_rows: bool = False,
  coupled_by: tuple[str, ...] = (),
  limits: Mapping[str, tuple[float, ...]] | None = None,
  axis_tuples: bool = False,
  zero_hessian: str = "",
) -> Callable[[_F], _F]:
  """Decorator that adds a loss to the registry: the one place a loss is declared.

  The arguments are the :class:`LossSpec` fields the tools need (the
  conformance tests, the CLI, configs); a loss registered with them is
  checked against the whole contract without naming it anywhere else.

  It returns the loss wrapped in a check of its keyword arguments, keyed on
  each hyperparameter's default (see :func:`_argument_checks`), that runs an
  eager call as one compiled call (see :func:`eager_dispatch`); the registry
  stores the same wrapped function, so ``spec.fn is jaxobj.<loss>``, and
  ``functools.wraps`` keeps the signature (with its type hints, through
  ``__wrapped__``) and docstring.
  """
  if kind not in KINDS:
    raise ValueError(f"kind={kind!r}; choose one of {KINDS}.")

  def decorator(fn: _F) -> _F:
    key = name or fn.__name__
    if key in _REGISTRY:
      raise ValueError(
        f"a loss named {key!r} is already registered (from {_REGISTRY[key].fn.__module__})."
      )
    if kind != "regularizer" and (inputs is None) == (not no_inputs):
      raise ValueError(
        f"register {key!r} with inputs= (how to draw its positional inputs, from "
        f"jaxobj._src.examples) or, if none can be drawn, no_inputs= (why), not "
        f"{'both' if inputs is not None else 'neither'}: the conformance tests use them."
      )
    params = inspect.signature(fn).parameters.values()
    positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
    hyper = {
      p.name: p.default
      for p in params
      if p.kind is p.KEYWORD_ONLY and p.name not in CONTRACT_KEYWORDS
    }
    doc = inspect.getdoc(fn) or ""
    unknown = set(limits or {}) - {k for k, v in hyper.items() if isinstance(v, float)}
    if unknown:
      raise ValueError(
        f"limits of {key!r} name {sorted(unknown)}, which are not float hyperparameters of {key}."
      )
    if axis_tuples and "axis" not in hyper:
      raise ValueError(f"axis_tuples=True, but {key} has no axis argument.")
    checks_ = _argument_checks(key, hyper, dict(limits or {}), axis_tuples)
    wrapped = _with_argument_checks(fn, checks_, data=(*positional, "where", "weights"))
    _REGISTRY[key] = LossSpec(
      name=key,
      fn=wrapped,
      family=family,
      kind=kind,
      summary=doc.strip().splitlines()[0] if doc.strip() else "",
      input_names=positional,
      hyperparameters=hyper,
      inputs=inputs,
      no_inputs=no_inputs,
      extreme=extreme,
      couples_rows=couples_rows,
      coupled_by=tuple(coupled_by),
      limits=dict(limits or {}),
      axis_tuples=axis_tuples,
      zero_hessian=zero_hessian,
    )
    return wrapped

  return decorator


def _argument_checks(
  loss: str, hyper: dict[str, Any], limits: dict[str, tuple[float, ...]], axis_tuples: bool
) -> dict[str, Callable[[Any], None]]:
  """One check per hyperparameter, chosen by its default.

  float: a real number or array, concrete NaN/+-inf refused unless in ``limits``;
  bool: True or False; int: an int in int32 range; ``axis``: an int (or a tuple
  of ints where the loss supports it). ``None`` defaults of known real or
  integer hyperparameters are checked when given. String choices are left to
  the loss, which lists them. Traced values always pass.
  """
  out: dict[str, Callable[[Any], None]] = {}
  for k, d in hyper.items():
    if k == "axis":
      out[k] = functools.partial(checks.check_axis, k, loss=loss, tuples=axis_tuples)
    elif isinstance(d, bool):
      out[k] = functools.partial(checks.check_bool, k, loss=loss)
    elif isinstance(d, float):
      out[k] = functools.partial(checks.check_real, k, loss=loss, limits=limits.get(k, ()))
    elif isinstance(d, int) and k in _OPTIONAL_INTS:  # None switches it off
      out[k] = functools.partial(
        _unless_none, checks.check_int, k, loss=loss, arrays=k in _ARRAY_INTS
      )
    elif isinstance(d, int):
      out[k] = functools.partial(checks.check_int, k, loss=loss, arrays=k in _ARRAY_INTS)
    elif isinstance(d, str) and k in _CHOICE_OR_REAL:
      out[k] = functools.partial(_unless_str, checks.check_real, k, loss=loss)
    elif k == "classes":  # a choice or a list of class indices
      out[k] = functools.partial(checks.check_classes, k, loss=loss)
    elif d is None and k in _OPTIONAL_REALS:
      out[k] = functools.partial(_unless_none, checks.check_real, k, loss=loss)
    elif d is None and k in _OPTIONAL_INTS:
      out[k] = functools.partial(
        _unless_none, checks.check_int, k, loss=loss, arrays=k in _ARRAY_INTS
      )
  return out


def _unless_none(check, name, value, **kw):
  if value is not None:
    check(name, value, **kw)


def _unless_str(check, name, value, **kw):
  if not isinstance(value, str):  # the loss validates its string choices
    check(name, value, **kw)


# ---------------------------------------------------------------------------
# Eager dispatch: an eager call of a registered loss runs as one compiled call.

_DISPATCH: contextvars.ContextVar[bool] = contextvars.ContextVar(
  "jaxobj_eager_dispatch",
  default=os.environ.get("JAXOBJ_EAGER_DISPATCH", "1").lower() not in ("0", "false", "off"),
)
# Compiled dispatches kept per loss (one per combination of static arguments).
_CACHE_SIZE = 64
# Calls of one signature (static arguments, shapes and dtypes) that run op by
# op before it is compiled.
_COMPILE_AFTER = 1
# What a loss may do in Python that a trace refuses (a value read with float()):
# such a call stays op by op, and so do later calls with the same static arguments.
_NOT_TRACEABLE = (
  jax.errors.ConcretizationTypeError,
  jax.errors.TracerArrayConversionError,
  jax.errors.TracerBoolConversionError,
  jax.errors.TracerIntegerConversionError,
)
_ARRAYS = (jax.Array, np.ndarray, np.generic, bool, int, float, complex)

try:  # whether no trace is under way (closed-over concrete arguments inside a jit)
  from jax._src.core import trace_state_clean as _top_level
except ImportError:  # pragma: no cover (a jax without it: the outputs tell)

  def _top_level() -> bool:
    return True


@contextlib.contextmanager
def eager_dispatch(enabled: bool = True) -> Iterator[None]:
  """Turns the compiled dispatch of eager loss calls on or off inside a ``with`` block.

  Outside any ``jax.jit``, ``jax.grad`` or ``jax.vmap`` trace, a registered
  loss called again with the same signature (static arguments, shapes and
  dtypes) runs as one cached compiled call (``jax.jit`` of the whole loss:
  checks, mask, weights and reduction) instead of one dispatch per
  operation, which makes repeated small eager calls (a notebook's loop)
  several times faster. The first call of a signature runs op by op: a
  one-off call is not worth a compile. Under a trace the loss is called
  directly and adds nothing to the compiled program. What is traced and what
  is static:

  - positional data, ``where`` and ``weights`` (arrays or Python numbers)
    are traced: new values reuse the compiled call, new shapes or dtypes
    compile once more;
  - hyperparameters given as Python values (floats, ints, bools, strings,
    ``None``, tuples of them) are static: each value the loss sees is
    concrete, so its value checks run unchanged, and each new value compiles
    once (sweep a hyperparameter with ``jax.vmap`` instead: one compile).

  A call stays op by op, exactly as the loss is written, when an argument is
  a tracer, a hyperparameter is an array, a list, a dict or a function, data
  is not an array (a pytree, a function), or under ``jax.disable_jit()``.
  Errors are the same either way: argument checks run before the dispatch,
  and a check that reads concrete data (integer labels inside ``[0, K)``)
  is deferred into the compiled call, which then reruns the loss op by op
  to raise its usual error.

  The default is on; the environment variable ``JAXOBJ_EAGER_DISPATCH=0``
  turns it off for a process.

  Args:
    enabled: whether eager calls inside the block are dispatched compiled.

  Example:
    >>> import jax.numpy as jnp, jaxobj
    >>> from jaxobj.registry import eager_dispatch
    >>> p, y = jnp.array([0.5, 3.0]), jnp.zeros(2)
    >>> with eager_dispatch(False):  # op by op, as the loss is written
    ...   slow = jaxobj.huber_loss(p, y)
    >>> bool(jnp.allclose(slow, jaxobj.huber_loss(p, y)))
    True
  """
  token = _DISPATCH.set(bool(enabled))
  try:
    yield
  finally:
    _DISPATCH.reset(token)


def _static_key(value: Any) -> Any:
  """A hashable key that tells apart values a loss may treat differently
  (``1``, ``1.0`` and ``True``; ``0.0`` and ``-0.0``), or None when ``value``
  is not a static value."""
  t = type(value)
  if value is None or t is bool or t is int or t is str:
    return (t, value)
  if t is float or t is complex or isinstance(value, np.generic):
    return (t, repr(value))
  if t is tuple:
    keys = tuple(_static_key(v) for v in value)
    return None if any(k is None for k in keys) else (t, keys)
  return None


def _data_ok(value: Any) -> bool | None:
  """True for an array or number, False for anything else, None for a tracer."""
  if isinstance(value, jax.core.Tracer):
    return None
  return value is None or isinstance(value, _ARRAYS)


def _abstract(value: Any) -> Any:
  """What a compiled call is specialized on: shape and dtype, or a number's type."""
  if value is None or type(value) in (bool, int, float, complex):
    return type(value)
  return (value.shape, value.dtype, getattr(value, "weak_type", False))


def _first_leaf(out: Any) -> Any:
  if isinstance(out, jax.Array):
    return out
  leaves = jax.tree.leaves(out)
  return leaves[0] if leaves else None


def _with_argument_checks(
  fn: _F, argument_checks: dict[str, Callable[[Any], None]], data: tuple[str, ...] = ()
) -> _F:
  data_names = frozenset(data)
  cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()
  calls: collections.OrderedDict[Any, int] = collections.OrderedDict()

  def compiled(static: dict[str, Any]) -> Any:
    def body(args: tuple, dynamic: dict[str, Any]) -> Any:
      leaves = jax.tree.leaves((args, dynamic))
      with checks.DeferredChecks(leaves[0] if leaves else None) as deferred:
        out = fn(*args, **dynamic, **static)
      return out, deferred.flag()

    return jax.jit(body)

  def direct(*args: Any, **kwargs: Any) -> Any:
    token = _DISPATCH.set(False)  # losses it calls run op by op too
    try:
      return fn(*args, **kwargs)
    finally:
      _DISPATCH.reset(token)

  @functools.wraps(fn)
  def checked(*args: Any, **kwargs: Any) -> Any:
    # Only the keywords given: defaults are valid. Cheap on every eager call.
    for k, v in kwargs.items():
      check = argument_checks.get(k)
      if check is not None:
        check(v)
    disabled = jax.config.jax_disable_jit  # type: ignore[attr-defined]
    if disabled or not _DISPATCH.get() or not _top_level():  # op by op, or under a trace
      return fn(*args, **kwargs)
    for a in args:
      if not _data_ok(a):
        return fn(*args, **kwargs)
    static: dict[str, Any] = {}
    dynamic: dict[str, Any] = {}
    keys: list[Any] = []
    for k, v in kwargs.items():
      if k in data_names:
        if not _data_ok(v):
          return fn(*args, **kwargs)
        dynamic[k] = v
        keys.append(k)
      else:
        key = _static_key(v)
        if key is None:  # an array, list, dict or function: op by op
          return fn(*args, **kwargs)
        static[k] = v
        keys.append((k, key))
    cache_key = (len(args), tuple(keys))
    # A one-off call (a test's variant, a doctest) is not worth a compile: the
    # first call of a signature runs op by op, later ones compiled.
    signature = (cache_key, *map(_abstract, args), *map(_abstract, dynamic.values()))
    count = calls.get(signature, 0)
    if count < _COMPILE_AFTER:
      calls[signature] = count + 1
      while len(calls) > _CACHE_SIZE * 4:
        calls.popitem(last=False)
      return fn(*args, **kwargs)
    jitted = cache.get(cache_key)
    if jitted is None:
      if cache_key in cache:  # not traceable with these static arguments
        return fn(*args, **kwargs)
      jitted = cache[cache_key] = compiled(static)
      while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    try:
      out, bad = jitted(args, dynamic)
    except _NOT_TRACEABLE:
      cache[cache_key] = None
      return fn(*args, **kwargs)
    if isinstance(_first_leaf(out), jax.core.Tracer):
      # Inside an outer trace with concrete (closed-over) arguments: call the
      # loss itself, so that the outer program is the one written.
      return fn(*args, **kwargs)
    if bad is not None and bool(bad):  # a deferred value check fails
      return direct(*args, **kwargs)  # raises the loss's own error
    return out

  return cast(_F, checked)


# Names that Keras and PyTorch users type, for the jaxobj loss that computes the
# same value (with the mean reduction) from the same kind of input. Arguments
# keep jaxobj's order: predictions or logits first, targets second (Keras's
# functions take ``(y_true, y_pred)``). The table is on the loss contract page.
ALIASES: Mapping[str, str] = {
  "mse": "squared_error",
  "mean_squared_error": "squared_error",
  "mse_loss": "squared_error",
  "mae": "absolute_error",
  "mean_absolute_error": "absolute_error",
  "l1_loss": "absolute_error",
  "huber": "huber_loss",
  "logcosh": "log_cosh",
  "msle": "squared_log_error",
  "mean_squared_logarithmic_error": "squared_log_error",
  "binary_cross_entropy_with_logits": "sigmoid_binary_cross_entropy",
  "cross_entropy": "softmax_cross_entropy_with_integer_labels",
  "hinge": "hinge_loss",
  "squared_hinge": "squared_hinge_loss",
  "triplet_margin_with_distance_loss": "triplet_margin_loss",
}

# Names that look like aliases but whose peer computes something else (from
# probabilities, with another reduction or scale): what to use instead.
NOT_ALIASES: Mapping[str, str] = {
  "bce": "torch's BCELoss and Keras's binary_crossentropy take probabilities; use "
  "sigmoid_binary_cross_entropy with logits",
  "binary_cross_entropy": "torch's binary_cross_entropy takes probabilities; use "
  "sigmoid_binary_cross_entropy with logits",
  "binary_crossentropy": "Keras's binary_crossentropy takes probabilities by default "
  "(from_logits=False); use sigmoid_binary_cross_entropy with logits",
  "categorical_crossentropy": "Keras's categorical_crossentropy takes probabilities by "
  "default (from_logits=False); use softmax_cross_entropy with logits",
  "sparse_categorical_crossentropy": "Keras's sparse_categorical_crossentropy takes "
  "probabilities by default (from_logits=False); use "
  "softmax_cross_entropy_with_integer_labels with logits",
  "kl_div": "torch's kl_div averages over every element with reduction='mean'; use "
  "kl_divergence (log-predictions first), which is torch's reduction='batchmean'",
  "kld": "Keras's kl_divergence takes probabilities; use kl_divergence with "
  "log-probabilities first",
  "mape": "Keras's MAPE is a percentage (100 times the fraction); use "
  "100 * absolute_percentage_error",
  "mean_absolute_percentage_error": "Keras's MAPE is a percentage (100 times the "
  "fraction); use 100 * absolute_percentage_error",
  "cosine_similarity": "torch's cosine_similarity is a similarity and Keras's loss its "
  "negative; use negative_cosine_similarity (the targets get no gradient)",
  "poisson": "Keras's poisson takes rates; use poisson_nll_loss with log_input=False",
  "multi_margin_loss": "torch's multi_margin_loss sums over every violating class and "
  "divides by the class count; multiclass_hinge_loss takes the worst one",
  "binary_focal_crossentropy": "Keras's binary_focal_crossentropy takes probabilities by "
  "default (from_logits=False); use sigmoid_focal_loss with logits",
  "categorical_focal_crossentropy": "Keras's categorical_focal_crossentropy takes "
  "probabilities by default; use softmax_focal_loss with logits",
  "dice": "Keras's dice takes probabilities and pools the whole batch into one ratio; use "
  "dice_loss with logits (activation=...) and batch=True",
  "tversky": "Keras's tversky takes probabilities and pools the whole batch into one ratio; "
  "use tversky_loss with logits and batch=True",
  "ctc": "Keras's ctc takes dense labels padded with 0 and no padding masks; use ctc_loss "
  "with logit_paddings and label_paddings",
  "circle": "Keras's circle expects L2-normalized embeddings (it does not normalize) and "
  "averages over the non-zero losses; use circle_loss, which normalizes the embeddings",
}


def unknown_name_hint(name: str) -> str:
  """What to write instead of ``name``, an unknown loss name: its alias target,
  why it is not an alias, or the registry's close matches (with aliases)."""
  _load()
  target = ALIASES.get(name, name)
  candidates = [c for c in [*_REGISTRY, *ALIASES] if ALIASES.get(c, c) != target]
  close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
  shown = ", ".join(
    repr(c) if c in _REGISTRY else f"{c!r} (alias of {ALIASES[c]!r})" for c in close
  )
  if name in ALIASES:
    hint = f"{name!r} is an alias of {ALIASES[name]!r}: use {ALIASES[name]}."
    return f"{hint} Other close matches: {shown}." if close else hint
  if name in NOT_ALIASES:
    return f"{name!r} is not an alias: {NOT_ALIASES[name]}."
  if close:
    return f"Did you mean {shown}?"
  return "Run `jaxobj losses` to list the registered losses."


class UnknownLossError(KeyError):
  """Raised for a name that is not in the registry; suggests close matches."""

  def __str__(self) -> str:
    return str(self.args[0])


def get(name: str) -> LossSpec:
  """The :class:`LossSpec` registered under ``name``, or under the loss that
  ``name`` is an alias of (:data:`ALIASES`: ``"mse"`` is ``squared_error``)."""
  _load()
  spec = _REGISTRY.get(ALIASES.get(name, name))
  if spec is None:
    raise UnknownLossError(f"no loss named {name!r} is registered. {unknown_name_hint(name)}")
  return spec


def spec_for(fn: Callable[..., Any]) -> LossSpec | None:
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
  out = [
    s
    for s in _REGISTRY.values()
    if (family is None or s.family == family) and (kind is None or s.kind == kind)
  ]
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
