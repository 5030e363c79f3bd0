"""An eager call of a registered loss, from the second call of a signature on,
runs as one cached compiled call (``jaxobj.registry.eager_dispatch``), with
the same values and the same errors as the loss run op by op; under a trace
the loss is called as written.

The wrapper is exercised on small local functions (``_with_argument_checks``,
the one the registry wraps every loss in) that count their traces, so these
tests compile little and say exactly what is traced when.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import registry
from jaxobj._src import checks
from jaxobj.registry import eager_dispatch


@pytest.fixture(autouse=True)
def _dispatch_on():
  # The suite runs with JAXOBJ_EAGER_DISPATCH=0 (conftest.py); here it is on.
  with eager_dispatch(True):
    yield


def _counting(body=None):
  """A loss-shaped function wrapped as the registry wraps losses, and the list
  of the argument kinds it saw on each Python call (each trace, or each op-by-op run)."""
  seen = []

  def loss(predictions, targets, *, scale=1.0, mode="abs", where=None, weights=None):
    seen.append(("traced" if isinstance(predictions, jax.core.Tracer) else "concrete", scale, mode))
    if body is not None:
      return body(predictions, targets, scale=scale, mode=mode)
    r = jnp.asarray(predictions) - jnp.asarray(targets)
    values = scale * (jnp.abs(r) if mode == "abs" else r**2)
    return jaxobj.reduce_loss(values, where=where, weights=weights)

  data = ("predictions", "targets", "where", "weights")
  return registry._with_argument_checks(loss, {}, data=data), seen


P = np.array([0.5, -2.0, 3.0], np.float32)
Y = np.zeros(3, np.float32)


def test_one_trace_per_static_signature_and_values_match():
  fn, seen = _counting()
  # The first call of a signature runs op by op, the second compiles, the rest reuse it.
  assert [float(fn(k * P, Y)) for k in (1, 2, 3)] == pytest.approx([5.5 / 3, 11.0 / 3, 16.5 / 3])
  assert [s[0] for s in seen] == ["concrete", "traced"]
  m1, m2 = np.array([True, False, True]), np.array([False, True, True])
  assert [float(fn(P, Y, where=m)) for m in (m1, m2, m1)] == pytest.approx([1.75, 2.5, 1.75])
  assert [s[0] for s in seen[2:]] == ["concrete", "traced"]
  fn(P[:2], Y[:2]), fn(P[:2], Y[:2])  # a new shape is a new signature
  assert [s[0] for s in seen[4:]] == ["concrete", "traced"]
  # Python hyperparameters are static: each value compiles once, and is concrete.
  assert [float(fn(P, Y, scale=2.0)) for _ in range(3)] == pytest.approx([11.0 / 3] * 3)
  assert [float(fn(P, Y, mode="sq")) for _ in range(2)] == pytest.approx([13.25 / 3] * 2)
  assert seen[6:] == [("concrete", 2.0, "abs"), ("traced", 2.0, "abs")] + [
    ("concrete", 1.0, "sq"),
    ("traced", 1.0, "sq"),
  ]
  # 1, 1.0 and True, or 0.0 and -0.0, are different static values.
  for scale in (1, -0.0, 0.0):
    fn(P, Y, scale=scale), fn(P, Y, scale=scale)
  traced = [s[1] for s in seen[10:] if s[0] == "traced"]
  assert [type(v) for v in traced] == [int, float, float]
  assert [str(v) for v in traced[1:]] == ["-0.0", "0.0"]


def test_calls_that_stay_op_by_op():
  fn, seen = _counting()
  for _ in range(2):  # a second call would compile if it were dispatched
    fn(P, Y, scale=jnp.array(2.0))  # an array hyperparameter: its checks read it
    fn(list(P), Y)  # data that is not an array
    with eager_dispatch(False):
      fn(P, Y)
    with jax.disable_jit():
      fn(2 * P, Y)
  assert [s[0] for s in seen] == ["concrete"] * 8


def test_under_a_trace_the_loss_is_called_as_written():
  fn, seen = _counting()
  jaxpr = jax.make_jaxpr(lambda p: fn(p, Y))(P)
  jaxpr_closed = jax.make_jaxpr(lambda: fn(jnp.asarray(P), Y))()  # concrete arguments
  assert "body" not in str(jaxpr) and "body" not in str(jaxpr_closed)  # no nested dispatch
  grads = jax.grad(lambda p: fn(p, Y, mode="sq"))(jnp.asarray(P))
  np.testing.assert_allclose(grads, 2 * P / 3, rtol=1e-6)
  values = jax.vmap(lambda s: fn(P, Y, scale=s))(jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(values, [5.5 / 3, 11.0 / 3], rtol=1e-6)


def test_a_loss_that_reads_values_in_python_stays_op_by_op():
  def body(p, y, **_):
    return jnp.asarray(float(np.sum(np.asarray(p) - np.asarray(y))))

  fn, seen = _counting(body)
  assert [float(fn(P, Y)) for _ in range(3)] == pytest.approx([1.5] * 3)
  # The second call's trace failed; it and the next ran op by op, with no new trace.
  assert [s[0] for s in seen] == ["concrete", "traced", "concrete", "concrete"]


def test_value_checks_on_traced_data_are_deferred_and_raise_as_op_by_op():
  def body(p, y, **_):
    checks.check_range("targets", y, low=0.0)
    return jnp.sum(jnp.asarray(p))

  fn, seen = _counting(body)
  assert float(fn(P, Y)) == pytest.approx(1.5)
  assert float(fn(P, Y)) == pytest.approx(1.5)  # compiled: the check is deferred
  with pytest.raises(ValueError, match=r"targets must satisfy 0.0 <= targets"):
    fn(P, Y - 1.0)
  assert [s[0] for s in seen] == ["concrete", "traced", "concrete"]  # the rerun raised


@pytest.mark.parametrize(
  "loss",
  [jaxobj.softmax_cross_entropy_with_integer_labels, jaxobj.log_score_with_integer_labels],
)
def test_labels_outside_the_classes_raise_the_op_by_op_error(loss):
  logits = np.zeros((3, 4), np.float32)
  bad = np.array([0, 4, -1])
  with eager_dispatch(False), pytest.raises(ValueError) as op_by_op:
    loss(logits, bad)
  loss(logits, np.array([0, 1, 2]))
  loss(logits, np.array([3, 1, 2]))  # this signature is compiled from now on
  with pytest.raises(ValueError) as dispatched:
    loss(logits, bad)
  assert str(dispatched.value) == str(op_by_op.value)
  assert "got [-1, 4]" in str(dispatched.value)
  # Masked, the same labels count nowhere: no error, the unmasked row's loss.
  keep = np.array([True, False, False])
  assert float(loss(logits, bad, where=keep)) == pytest.approx(np.log(4.0), rel=1e-6)


def test_registered_losses_keep_their_errors_and_values():
  p, y = np.array([0.5, 3.0], np.float32), np.zeros(2, np.float32)
  with pytest.raises(ValueError, match="delta must satisfy 0.0 < delta"):
    jaxobj.huber_loss(p, y, delta=-1.0)
  with pytest.raises(ValueError, match=r"predictions.shape=\(2, 1\)"):
    jaxobj.huber_loss(p[:, None], y)
  with pytest.raises(ValueError, match="must be finite"):
    jaxobj.huber_loss(p, y, delta=float("nan"))
  with eager_dispatch(False):
    expected = jaxobj.huber_loss(p, y, delta=0.5, reduction="sum_and_count")
  for _ in range(2):  # op by op, then compiled
    got = jaxobj.huber_loss(p, y, delta=0.5, reduction="sum_and_count")
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6)
