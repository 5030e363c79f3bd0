"""Values and gradients of jaxobj.losses.classification.

References are float64 NumPy/SciPy implementations written from the formulas
in the docstrings (not from the jaxobj code), optax where the two overlap, and
closed-form gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce
from scipy.special import expit, log_expit, log_softmax, softmax

import jaxobj

N, K = 8, 5
RTOL, ATOL = 1e-5, 1e-6


# --------------------------------------------------------------------------
# float64 references, one per loss, per element (no reduction).


def ref_bce(x, y, pos_weight=1.0, label_smoothing=0.0):
  y = (1.0 - label_smoothing) * y + label_smoothing / 2.0
  return -(pos_weight * y * log_expit(x) + (1.0 - y) * log_expit(-x))


def ref_sigmoid_focal(x, y, gamma=2.0, alpha=None):
  ce = -(y * log_expit(x) + (1.0 - y) * log_expit(-x))
  one_minus_pt = y * expit(-x) + (1.0 - y) * expit(x)  # 1 - p_t, without cancellation
  out = one_minus_pt**gamma * ce
  if alpha is not None:
    out = out * (alpha * y + (1.0 - alpha) * (1.0 - y))
  return out


def ref_hinge(s, y, margin=1.0):
  return np.maximum(0.0, margin - y * s)


def ref_squared_hinge(s, y, margin=1.0):
  return ref_hinge(s, y, margin) ** 2


def ref_smooth_labels(y, alpha):
  return (1.0 - alpha) * y + alpha / y.shape[-1]


def _xlogp(t, logp):
  """sum_k t_k log p_k with 0 * log 0 = 0."""
  return np.sum(t * np.where(t != 0, logp, 0.0), axis=-1)


def ref_softmax_ce(x, y, label_smoothing=0.0, class_weights=None):
  finite = np.isfinite(x)
  uniform = finite / finite.sum(-1, keepdims=True)  # no mass on -inf classes
  t = (1.0 - label_smoothing) * y + label_smoothing * uniform
  if class_weights is not None:
    t = t * class_weights
  return -_xlogp(t, log_softmax(x, axis=-1))


def ref_softmax_focal(x, y, gamma=2.0, class_weights=None):
  logp = log_softmax(x, axis=-1)
  w = y if class_weights is None else y * class_weights
  return -_xlogp(w * (-np.expm1(logp)) ** gamma, logp)


def ref_poly(x, y, epsilon=2.0):
  logp = log_softmax(x, axis=-1)
  return -_xlogp(y, logp) + epsilon * np.sum(y * (1.0 - np.exp(logp)), -1)


def _one_hot(labels, k=K):
  return (np.arange(k) == np.asarray(labels)[..., None]).astype(np.float64)


def ref_int_ce(x, labels, label_smoothing=0.0, class_weights=None):
  # The per-row loss is the probability-label one of the smoothed one-hot,
  # class weights inside the sum (torch.nn.functional.cross_entropy's too).
  return ref_softmax_ce(x, _one_hot(labels, x.shape[-1]), label_smoothing, class_weights)


def ref_int_focal(x, labels, gamma=2.0, class_weights=None):
  return ref_softmax_focal(x, _one_hot(labels, x.shape[-1]), gamma, class_weights)


def ref_int_poly(x, labels, epsilon=2.0):
  return ref_poly(x, _one_hot(labels, x.shape[-1]), epsilon)


def ref_multiclass_hinge(s, labels, margin=1.0):
  k = s.shape[-1]
  rows, ys = s.reshape(-1, k), np.asarray(labels).reshape(-1)
  out = [max(0.0, margin + np.max(np.delete(r, y)) - r[y]) for r, y in zip(rows, ys)]
  return np.array(out).reshape(np.shape(labels))


# name: (function, kind of inputs, reference, class-axis loss?)
LOSSES = {
  "sigmoid_binary_cross_entropy": (jaxobj.sigmoid_binary_cross_entropy, "binary", ref_bce),
  "sigmoid_focal_loss": (jaxobj.sigmoid_focal_loss, "binary", ref_sigmoid_focal),
  "hinge_loss": (jaxobj.hinge_loss, "signed", ref_hinge),
  "squared_hinge_loss": (jaxobj.squared_hinge_loss, "signed", ref_squared_hinge),
  "softmax_cross_entropy": (jaxobj.softmax_cross_entropy, "probs", ref_softmax_ce),
  "softmax_cross_entropy_with_integer_labels": (
    jaxobj.softmax_cross_entropy_with_integer_labels,
    "ints",
    ref_int_ce,
  ),
  "softmax_focal_loss": (jaxobj.softmax_focal_loss, "probs", ref_softmax_focal),
  "softmax_focal_loss_with_integer_labels": (
    jaxobj.softmax_focal_loss_with_integer_labels,
    "ints",
    ref_int_focal,
  ),
  "poly_loss_cross_entropy": (jaxobj.poly_loss_cross_entropy, "probs", ref_poly),
  "poly_loss_cross_entropy_with_integer_labels": (
    jaxobj.poly_loss_cross_entropy_with_integer_labels,
    "ints",
    ref_int_poly,
  ),
  "multiclass_hinge_loss": (jaxobj.multiclass_hinge_loss, "ints", ref_multiclass_hinge),
}
ALL = sorted(LOSSES)
CLASS_AXIS = [n for n in ALL if LOSSES[n][1] in ("probs", "ints")]
INTEGER = [n for n in ALL if LOSSES[n][1] == "ints"]
WITH_CLASS_WEIGHTS = [
  "softmax_cross_entropy",
  "softmax_cross_entropy_with_integer_labels",
  "softmax_focal_loss",
  "softmax_focal_loss_with_integer_labels",
]


def make_inputs(kind, seed=0, batch=(N,), soft=False):
  """float32 inputs (and integer labels) for one kind of loss."""
  rng = np.random.default_rng(seed)
  x = (2.0 * rng.standard_normal(batch + (K,))).astype(np.float32)
  if kind == "binary":
    y = rng.integers(0, 2, x.shape).astype(np.float32)
    if soft:
      y = np.where(rng.uniform(size=x.shape) < 0.5, y, rng.uniform(size=x.shape))
  elif kind == "signed":
    y = rng.choice([-1.0, 1.0], x.shape)
  elif kind == "probs":
    # Soft labels with some exact zeros (0 * log p must be 0, with its gradient).
    y = softmax(2.0 * rng.standard_normal(x.shape), axis=-1)
    y = np.where((rng.uniform(size=x.shape) < 0.3) & (y < y.max(-1, keepdims=True)), 0.0, y)
    y = y / y.sum(-1, keepdims=True)
  else:
    return x, rng.integers(0, K, batch).astype(np.int32)
  return x, y.astype(np.float32)


def loss_shape(kind, x):
  return x.shape if kind in ("binary", "signed") else x.shape[:-1]


# --------------------------------------------------------------------------
# Values against the float64 references, every reduction, with where/weights.

VALUE_CASES = [
  ("sigmoid_binary_cross_entropy", {}),
  ("sigmoid_binary_cross_entropy", {"pos_weight": 2.5}),
  ("sigmoid_binary_cross_entropy", {"label_smoothing": 0.2}),
  ("sigmoid_binary_cross_entropy", {"pos_weight": 0.5, "label_smoothing": 0.3}),
  ("sigmoid_binary_cross_entropy", {"pos_weight": np.linspace(0.5, 3.0, K)}),
  ("sigmoid_focal_loss", {"gamma": 0.0}),
  ("sigmoid_focal_loss", {"gamma": 0.5, "alpha": 0.25}),
  ("sigmoid_focal_loss", {"gamma": 2.0}),
  ("hinge_loss", {}),
  ("hinge_loss", {"margin": 0.5}),
  ("squared_hinge_loss", {"margin": 2.0}),
  ("softmax_cross_entropy", {}),
  ("softmax_cross_entropy", {"label_smoothing": 0.1}),
  ("softmax_cross_entropy", {"class_weights": np.linspace(0.2, 2.0, K)}),
  ("softmax_cross_entropy", {"label_smoothing": 0.3, "class_weights": np.linspace(2, 0.5, K)}),
  ("softmax_cross_entropy", {"label_smoothing": 0.2, "axis": 0}),
  ("softmax_cross_entropy_with_integer_labels", {}),
  ("softmax_cross_entropy_with_integer_labels", {"label_smoothing": 0.1}),
  ("softmax_cross_entropy_with_integer_labels", {"class_weights": np.linspace(0.2, 2.0, K)}),
  (
    "softmax_cross_entropy_with_integer_labels",
    {"label_smoothing": 0.3, "class_weights": np.linspace(2, 0.5, K)},
  ),
  ("softmax_cross_entropy_with_integer_labels", {"axis": 0, "label_smoothing": 0.2}),
  ("softmax_focal_loss", {"gamma": 0.0}),
  ("softmax_focal_loss", {"gamma": 2.0, "class_weights": np.linspace(0.2, 2.0, K)}),
  ("softmax_focal_loss_with_integer_labels", {"gamma": 0.5}),
  (
    "softmax_focal_loss_with_integer_labels",
    {"gamma": 2.0, "class_weights": np.linspace(0.2, 2.0, K)},
  ),
  ("poly_loss_cross_entropy", {"epsilon": 2.0}),
  ("poly_loss_cross_entropy", {"epsilon": -1.0, "axis": 0}),
  ("poly_loss_cross_entropy_with_integer_labels", {"epsilon": 2.0}),
  ("multiclass_hinge_loss", {}),
  ("multiclass_hinge_loss", {"margin": 0.5, "axis": 0}),
]


def _case_id(case):
  name, kw = case
  return name + "-" + "-".join(k if not np.isscalar(v) else f"{k}={v}" for k, v in kw.items())


def call(name, x, y, **kw):
  """Calls a loss on canonical ``[..., K]`` inputs, moving the class axis to ``axis``."""
  fn, kind, _ = LOSSES[name]
  axis = kw.get("axis")
  if axis is not None:
    x = jnp.moveaxis(x, -1, axis)
    if kind == "probs":
      y = jnp.moveaxis(y, -1, axis)
  return fn(x, y, **kw)


def expected(name, x, y, kw, where=None, weights=None, reduction="mean"):
  _, kind, ref = LOSSES[name]
  kw = {k: v for k, v in kw.items() if k != "axis"}
  values = ref(f64(x), y if kind == "ints" else f64(y), **kw)
  if kind == "ints" and "class_weights" in kw:
    # Integer labels: the mean divides the summed row losses by sum_i w_{y_i}
    # (w_{y_i} joins the weights, so the weighted value is the row loss).
    cw = f64(kw["class_weights"])[y]
    values = values / cw
    weights = cw if weights is None else weights * cw
  return ref_reduce(values, where, weights, reduction)


@pytest.mark.parametrize("variant", ["plain", "where", "weights", "where+weights"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_value_matches_float64_reference(case, variant):
  name, kw = case
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=len(name), soft=True)
  rng = np.random.default_rng(1)
  shape = loss_shape(kind, x)
  where = weights = None
  if "where" in variant:
    where = rng.uniform(size=shape) < 0.7
    where.flat[0] = True
  if "weights" in variant:
    weights = rng.uniform(0.5, 2.0, shape).astype(np.float32)
  for reduction in ("none", "sum", "mean"):
    got = call(name, x, y, **kw, where=where, weights=weights, reduction=reduction)
    assert got.dtype == jnp.float32
    want = expected(name, x, y, kw, where, f64(weights) if weights is not None else None, reduction)
    assert got.shape == np.shape(want)
    close(got, want)


def test_closed_form_values():
  # log 2 for a zero logit; pos_weight scales only the positive term.
  close(
    jaxobj.sigmoid_binary_cross_entropy(
      jnp.zeros(2), jnp.array([1.0, 0.0]), pos_weight=3.0, reduction="none"
    ),
    [3 * np.log(2), np.log(2)],
  )
  # Uniform logits over K classes: CE = log K whatever the labels or smoothing.
  close(
    jaxobj.softmax_cross_entropy_with_integer_labels(
      jnp.zeros((2, K)), jnp.array([0, 3]), label_smoothing=0.4
    ),
    np.log(K),
  )
  close(jaxobj.multiclass_hinge_loss(jnp.array([[3.0, 2.5, 0.0]]), jnp.array([0]), margin=2.0), 1.5)
  close(jaxobj.hinge_loss(jnp.array([0.3]), jnp.array([-1.0]), margin=0.0), 0.3)


# --------------------------------------------------------------------------
# Semantics documented in the docstrings.


def test_integer_class_weights_give_the_weighted_mean():
  x, y = make_inputs("ints", seed=3)
  cw = np.linspace(0.5, 3.0, K).astype(np.float32)
  plain = np.asarray(jaxobj.softmax_cross_entropy_with_integer_labels(x, y, reduction="none"))
  got = jaxobj.softmax_cross_entropy_with_integer_labels(x, y, class_weights=cw)
  close(got, np.sum(cw[y] * plain) / np.sum(cw[y]), rtol=2e-5)
  close(got, np.sum(cw[y] * ref_int_ce(f64(x), y)) / np.sum(f64(cw)[y]))


def test_probability_class_weights_sit_inside_the_sum_and_mean_divides_by_rows():
  x, y = make_inputs("ints", seed=4)
  cw = np.linspace(0.5, 3.0, K).astype(np.float32)
  onehot = _one_hot(y).astype(np.float32)
  per_row = ref_int_ce(f64(x), y) * cw[y]
  close(jaxobj.softmax_cross_entropy(x, onehot, class_weights=cw), per_row.sum() / N)
  # Sums agree with the integer-label loss; means differ by the denominator.
  close(
    jaxobj.softmax_cross_entropy(x, onehot, class_weights=cw, reduction="sum"),
    np.asarray(
      jaxobj.softmax_cross_entropy_with_integer_labels(x, y, class_weights=cw, reduction="sum")
    ),
    rtol=2e-5,
  )
  # Soft labels: every class term is weighted, not only the argmax.
  _, p = make_inputs("probs", seed=4)
  close(
    jaxobj.softmax_cross_entropy(x, p, class_weights=cw, reduction="none"),
    -np.sum(cw * p * log_softmax(f64(x), -1), -1),
  )


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.7, 1.0])
def test_integer_label_smoothing_equals_smoothed_one_hot(alpha):
  x, y = make_inputs("ints", seed=5)
  onehot = jax.nn.one_hot(y, K)
  got = jaxobj.softmax_cross_entropy_with_integer_labels(
    x, y, label_smoothing=alpha, reduction="none"
  )
  close(
    got,
    np.asarray(
      jaxobj.softmax_cross_entropy(x, jaxobj.smooth_labels(onehot, alpha), reduction="none")
    ),
    rtol=2e-5,
  )
  close(
    got,
    np.asarray(optax.losses.softmax_cross_entropy(x, optax.losses.smooth_labels(onehot, alpha))),
    rtol=2e-5,
  )
  close(got, ref_softmax_ce(f64(x), ref_smooth_labels(_one_hot(y), alpha)))


@pytest.mark.parametrize("alpha", [0.1, 0.6])
def test_integer_smoothing_with_class_weights_weights_each_class_term(alpha):
  # Row loss -sum_k w_k t_k log p_k with t the smoothed one-hot (the
  # probability-label loss); the mean divides by sum_i w_{y_i}.
  x, y = make_inputs("ints", seed=16)
  cw = np.linspace(0.3, 2.5, K)
  t = (1 - alpha) * _one_hot(y) + alpha / K
  rows = -np.sum(cw * t * log_softmax(f64(x), -1), -1)
  fn = jaxobj.softmax_cross_entropy_with_integer_labels
  close(fn(x, y, label_smoothing=alpha, class_weights=cw, reduction="none"), rows)
  close(fn(x, y, label_smoothing=alpha, class_weights=cw, reduction="sum"), rows.sum())
  close(fn(x, y, label_smoothing=alpha, class_weights=cw), rows.sum() / cw[y].sum())
  close(
    fn(x, y, label_smoothing=alpha, class_weights=cw, reduction="none"),
    np.asarray(
      jaxobj.softmax_cross_entropy(x, t.astype(np.float32), class_weights=cw, reduction="none")
    ),
    rtol=2e-5,
  )
  # A label class of weight 0 drops its rows entirely, with finite gradients.
  cw0 = cw.copy()
  cw0[y[0]] = 0.0
  drop = y == y[0]
  want = np.where(drop, 0.0, -np.sum(cw0 * t * log_softmax(f64(x), -1), -1))
  close(fn(x, y, label_smoothing=alpha, class_weights=cw0, reduction="none"), want)
  g = jax.grad(lambda x: fn(x, y, label_smoothing=alpha, class_weights=cw0))(x)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[drop] == 0.0)


def _random_class_mask(seed, labels_or_probs, kind):
  """Logits with random non-label classes at -inf (different counts per row)."""
  x, _ = make_inputs(kind, seed=seed)
  rng = np.random.default_rng(seed)
  keep = (labels_or_probs > 0) if kind == "probs" else _one_hot(labels_or_probs) > 0
  drop = (rng.uniform(size=x.shape) < 0.5) & ~keep
  drop[0] = ~keep[0]  # one row with only its label class left
  return np.where(drop, -np.inf, x).astype(np.float32)


@pytest.mark.parametrize(
  "kw",
  [
    {},
    {"label_smoothing": 0.2},
    {"label_smoothing": 1.0},
    {"label_smoothing": 0.3, "class_weights": np.arange(1.0, 6.0)},
  ],
)
@pytest.mark.parametrize(
  "name", ["softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels"]
)
def test_smoothing_mass_goes_only_to_finite_classes(name, kw):
  kind = LOSSES[name][1]
  _, y = make_inputs("ints", seed=6)
  labels = y if kind == "ints" else _one_hot(y).astype(np.float32)
  x = _random_class_mask(6, y, "ints")
  got = call(name, x, labels, **kw, reduction="none")
  assert np.all(np.isfinite(got))
  close(got, expected(name, x, y if kind == "ints" else labels, kw, reduction="none"))
  # The uniform part is 1/|F| over the finite classes F, not 1/K: written out
  # again here so the test does not rest on the reference alone.
  alpha = kw.get("label_smoothing", 0.0)
  finite = np.isfinite(x)
  t = (1 - alpha) * _one_hot(y) + alpha * finite / finite.sum(-1, keepdims=True)
  assert np.all(t[~finite] == 0)
  nll = -t * np.where(t > 0, log_softmax(f64(x), -1), 0.0)
  cw = kw.get("class_weights", np.ones(K))
  # Both weight each class term inside the sum (integer labels divide the mean
  # by sum w_y instead of the row count).
  close(got, np.sum(nll * cw, -1))


@pytest.mark.parametrize("name", INTEGER)
def test_ignore_index_rows_are_left_out(name):
  fn = LOSSES[name][0]
  x, y = make_inputs("ints", seed=7)
  y = y.copy()
  y[[1, 4, 5]] = -100
  keep = y != -100
  full = fn(x, y, ignore_index=-100, reduction="none")
  np.testing.assert_array_equal(np.asarray(full)[~keep], 0.0)
  close(full[keep], expected(name, x[keep], y[keep], {}, reduction="none"))
  close(fn(x, y, ignore_index=-100), expected(name, x[keep], y[keep], {}))
  close(fn(x, y, ignore_index=-100), np.asarray(fn(x, np.where(keep, y, 0), where=keep)))
  # Combined with where: both masks apply.
  where = np.arange(N) != 0
  close(
    fn(x, y, ignore_index=-100, where=where), expected(name, x[keep & where], y[keep & where], {})
  )
  g = jax.grad(lambda x: fn(x, y, ignore_index=-100))(x)
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~keep] == 0.0)


@pytest.mark.parametrize(
  "name", ["softmax_cross_entropy_with_integer_labels", "softmax_focal_loss_with_integer_labels"]
)
def test_ignore_index_with_class_weights(name):
  fn = LOSSES[name][0]
  x, y = make_inputs("ints", seed=8)
  y = y.copy()
  y[[0, 3]] = -1
  keep = y != -1
  cw = np.linspace(0.5, 2.0, K).astype(np.float32)
  close(
    fn(x, y, ignore_index=-1, class_weights=cw),
    expected(name, x[keep], y[keep], {"class_weights": cw}),
  )


@pytest.mark.parametrize("bad", [K, -1, -K - 3])
@pytest.mark.parametrize("name", INTEGER)
def test_out_of_range_labels_give_nan_unless_masked(name, bad):
  # Concrete labels are checked (the error names the value and the fix); under
  # jit nothing can be checked, and the row is NaN rather than a plausible number.
  fn = LOSSES[name][0]
  jitted = jax.jit(fn, static_argnames="reduction")
  x, y = make_inputs("ints", seed=9)
  y = y.copy()
  y[2] = bad
  with pytest.raises(ValueError, match=rf"labels must lie in \[0, V\) = \[0, {K}\).*\[{bad}\]"):
    fn(x, y)
  kws = [{}] + ([{"class_weights": np.ones(K, np.float32)}] if name in WITH_CLASS_WEIGHTS else [])
  for kw in kws:
    per_row = np.asarray(jitted(x, y, reduction="none", **kw))
    assert np.isnan(per_row[2]), (bad, per_row)
    assert np.all(np.isfinite(np.delete(per_row, 2)))
    assert np.isnan(jitted(x, y, **kw))
    where = np.arange(N) != 2
    close(fn(x, y, where=where, **kw), expected(name, x[where], y[where], kw))
    assert np.all(np.isfinite(jax.grad(lambda x: fn(x, y, where=where, **kw))(x)))
  # An out-of-range label equal to ignore_index is simply skipped.
  close(fn(x, y, ignore_index=bad), expected(name, x[where], y[where], {}))


def test_label_smoothing_zero_paths_agree():
  # A Python 0.0 skips smoothing; an int 0 or an array 0 goes through it.
  x, y = make_inputs("probs", seed=10)
  x[0, 1] = -np.inf
  y[0] = [1.0, 0.0, 0.0, 0.0, 0.0]
  base = np.asarray(jaxobj.softmax_cross_entropy(x, y, reduction="none"))
  assert np.all(np.isfinite(base))
  for zero in (0, np.float32(0.0), jnp.array(0.0)):
    close(jaxobj.softmax_cross_entropy(x, y, label_smoothing=zero, reduction="none"), base)


@pytest.mark.parametrize("name", CLASS_AXIS)
def test_class_axis_of_a_three_dimensional_batch(name):
  _, kind, _ = LOSSES[name]
  x, y = make_inputs(kind, seed=11, batch=(2, 3))
  base = call(name, x, y, reduction="none")
  assert base.shape == (2, 3)
  for axis in (0, 1, -3):
    close(call(name, x, y, axis=axis, reduction="none"), np.asarray(base), rtol=2e-6)
  close(base, expected(name, x, y, {}, reduction="none"))


# --------------------------------------------------------------------------
# optax, where it overlaps (optax returns per-element values).


def _soft_binary(seed):
  return make_inputs("binary", seed=seed, soft=True)


OPTAX_CASES = [
  (
    "bce",
    lambda x, y: jaxobj.sigmoid_binary_cross_entropy(x, y, reduction="none"),
    optax.losses.sigmoid_binary_cross_entropy,
    _soft_binary,
  ),
  (
    "sigmoid_focal_default",
    lambda x, y: jaxobj.sigmoid_focal_loss(x, y, reduction="none"),
    optax.losses.sigmoid_focal_loss,
    _soft_binary,
  ),
  (
    "sigmoid_focal_g0.5_a0.25",
    lambda x, y: jaxobj.sigmoid_focal_loss(x, y, gamma=0.5, alpha=0.25, reduction="none"),
    lambda x, y: optax.losses.sigmoid_focal_loss(x, y, gamma=0.5, alpha=0.25),
    _soft_binary,
  ),
  (
    "sigmoid_focal_g0_a0.75",
    lambda x, y: jaxobj.sigmoid_focal_loss(x, y, gamma=0.0, alpha=0.75, reduction="none"),
    lambda x, y: optax.losses.sigmoid_focal_loss(x, y, gamma=0.0, alpha=0.75),
    lambda s: make_inputs("binary", seed=s),
  ),
  (
    "hinge",
    lambda x, y: jaxobj.hinge_loss(x, y, reduction="none"),
    optax.losses.hinge_loss,
    lambda s: make_inputs("signed", seed=s),
  ),
  (
    "softmax_ce",
    lambda x, y: jaxobj.softmax_cross_entropy(x, y, reduction="none"),
    optax.losses.softmax_cross_entropy,
    lambda s: make_inputs("probs", seed=s),
  ),
  # optax.losses.softmax_cross_entropy gives NaN (0 * -inf) here; its "safe"
  # variant and its where= class mask agree with jaxobj.
  (
    "softmax_ce_masked_classes",
    lambda x, y: jaxobj.softmax_cross_entropy(x, y, reduction="none"),
    optax.losses.safe_softmax_cross_entropy,
    lambda s: (
      _random_class_mask(s, make_inputs("ints", seed=s)[1], "ints"),
      _one_hot(make_inputs("ints", seed=s)[1]).astype(np.float32),
    ),
  ),
  (
    "softmax_ce_masked_classes_where",
    lambda x, y: jaxobj.softmax_cross_entropy(x, y, reduction="none"),
    lambda x, y: optax.losses.softmax_cross_entropy(x, y, where=jnp.isfinite(x)),
    lambda s: (
      _random_class_mask(s, make_inputs("ints", seed=s)[1], "ints"),
      _one_hot(make_inputs("ints", seed=s)[1]).astype(np.float32),
    ),
  ),
  (
    "softmax_ce_axis0",
    lambda x, y: jaxobj.softmax_cross_entropy(x.T, y.T, axis=0, reduction="none"),
    lambda x, y: optax.losses.softmax_cross_entropy(x.T, y.T, axis=0),
    lambda s: make_inputs("probs", seed=s),
  ),
  (
    "int_ce",
    lambda x, y: jaxobj.softmax_cross_entropy_with_integer_labels(x, y, reduction="none"),
    optax.losses.softmax_cross_entropy_with_integer_labels,
    lambda s: make_inputs("ints", seed=s),
  ),
  (
    "int_ce_3d_axis1",
    lambda x, y: jaxobj.softmax_cross_entropy_with_integer_labels(
      jnp.moveaxis(x, -1, 1), y, axis=1, reduction="none"
    ),
    lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(
      jnp.moveaxis(x, -1, 1), y, axis=1
    ),
    lambda s: make_inputs("ints", seed=s, batch=(2, 4)),
  ),
  (
    "int_focal_gamma0",
    lambda x, y: jaxobj.softmax_focal_loss_with_integer_labels(x, y, gamma=0.0, reduction="none"),
    optax.losses.softmax_cross_entropy_with_integer_labels,
    lambda s: make_inputs("ints", seed=s),
  ),
  (
    "poly_eps2",
    lambda x, y: jaxobj.poly_loss_cross_entropy(x, y, reduction="none"),
    optax.losses.poly_loss_cross_entropy,
    lambda s: make_inputs("probs", seed=s),
  ),
  (
    "poly_eps-1",
    lambda x, y: jaxobj.poly_loss_cross_entropy(x, y, epsilon=-1.0, reduction="none"),
    lambda x, y: optax.losses.poly_loss_cross_entropy(x, y, epsilon=-1.0),
    lambda s: make_inputs("probs", seed=s),
  ),
  (
    "poly_int_eps3",
    lambda x, y: jaxobj.poly_loss_cross_entropy_with_integer_labels(
      x, y, epsilon=3.0, reduction="none"
    ),
    lambda x, y: optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(y, K), epsilon=3.0),
    lambda s: make_inputs("ints", seed=s),
  ),
  (
    "multiclass_hinge",
    lambda x, y: jaxobj.multiclass_hinge_loss(x, y, reduction="none"),
    optax.losses.multiclass_hinge_loss,
    lambda s: make_inputs("ints", seed=s),
  ),
  (
    "smooth_labels",
    lambda x, y: jaxobj.smooth_labels(y, 0.15),
    lambda x, y: optax.losses.smooth_labels(y, 0.15),
    lambda s: make_inputs("probs", seed=s),
  ),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
  "ours,theirs,make", [c[1:] for c in OPTAX_CASES], ids=[c[0] for c in OPTAX_CASES]
)
def test_matches_optax(ours, theirs, make, seed):
  x, y = make(100 + seed)
  a, b = ours(x, y), theirs(jnp.asarray(x), jnp.asarray(y))
  assert a.shape == b.shape
  assert np.all(np.isfinite(a))
  close(a, np.asarray(b), rtol=2e-5, atol=2e-6)


def test_poly_loss_matches_optax_for_unnormalized_labels():
  # The linear term is per class, eps * sum_k y_k (1 - p_k), as in optax; for
  # labels that do not sum to 1 it differs from eps * (1 - sum_k y_k p_k).
  x, y = make_inputs("probs", seed=12)
  y = y * np.linspace(0.5, 1.5, N)[:, None].astype(np.float32)
  ours = jaxobj.poly_loss_cross_entropy(x, y, epsilon=2.0, reduction="none")
  theirs = optax.losses.poly_loss_cross_entropy(x, y, epsilon=2.0)
  close(ours, ref_poly(f64(x), f64(y), 2.0), rtol=2e-5)
  close(ours, theirs, rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------
# smooth_labels.


def test_smooth_labels_value_vmap_and_grad():
  _, y = make_inputs("probs", seed=13)
  close(jaxobj.smooth_labels(y, 0.3), ref_smooth_labels(f64(y), 0.3))
  alphas = jnp.array([0.0, 0.25, 1.0])
  batched = jax.vmap(lambda a: jaxobj.smooth_labels(y, a))(alphas)
  for i, a in enumerate([0.0, 0.25, 1.0]):
    close(batched[i], ref_smooth_labels(f64(y), a))
  np.testing.assert_allclose(np.asarray(batched[-1]), 1.0 / K)
  c = np.arange(1.0, K + 1)
  g = jax.grad(lambda a: jnp.sum(jaxobj.smooth_labels(y, a) * c))(0.3)
  close(g, np.sum((1.0 / K - f64(y)) * c), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# Gradients: check_grads (float64), closed forms, hyperparameters.


GRAD_CASES = [
  ("sigmoid_binary_cross_entropy", {"pos_weight": 2.0, "label_smoothing": 0.1}),
  ("sigmoid_focal_loss", {"gamma": 2.0, "alpha": 0.25}),
  ("sigmoid_focal_loss", {"gamma": 0.5}),
  ("hinge_loss", {}),
  ("squared_hinge_loss", {}),
  ("softmax_cross_entropy", {"label_smoothing": 0.2, "class_weights": np.arange(1.0, 6.0)}),
  (
    "softmax_cross_entropy_with_integer_labels",
    {"label_smoothing": 0.2, "class_weights": np.arange(1.0, 6.0)},
  ),
  ("softmax_focal_loss", {"gamma": 2.0}),
  ("softmax_focal_loss_with_integer_labels", {"gamma": 0.5}),
  ("poly_loss_cross_entropy", {"epsilon": 2.0}),
  ("poly_loss_cross_entropy_with_integer_labels", {"epsilon": 2.0}),
  ("multiclass_hinge_loss", {}),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_check_grads_float64(case):
  name, kw = case
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=14, soft=True)
  rng = np.random.default_rng(14)
  weights = rng.uniform(0.5, 2.0, loss_shape(kind, x))
  with jax.enable_x64(True):
    y64 = y if kind == "ints" else f64(y)
    f = lambda x: call(name, x, y64, **kw, weights=weights)
    check_grads(f, (f64(x),), order=1, modes=["rev"])
    assert f(f64(x)).dtype == jnp.float64


def _grad(f, *args):
  return np.asarray(jax.grad(f)(*args), np.float64)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_label_gradient_at_hard_labels(gamma):
  # d/dy of (1 - p_t)^gamma CE with 1 - p_t = y (1 - p) + (1 - y) p: the
  # (1 - 2p) term must survive at y in {0, 1} (a log-space form with
  # log y = -inf there drops it).
  x = np.array([0.3, -1.2, 2.0, 0.7, -3.0, 4.0])
  y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
  with jax.enable_x64(True):
    g = np.asarray(
      jax.grad(
        lambda y: jaxobj.sigmoid_focal_loss(jnp.asarray(x), y, gamma=gamma, reduction="sum")
      )(jnp.asarray(y))
    )
  p = expit(x)
  q = y * (1 - p) + (1 - y) * p
  ce = -(y * log_expit(x) + (1 - y) * log_expit(-x))
  want = gamma * q ** (gamma - 1) * (1 - 2 * p) * ce + q**gamma * (-x)
  close(g, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pos_weight", [1.0, 3.0])
def test_bce_gradient_is_sigmoid_minus_label(pos_weight):
  x, y = make_inputs("binary", seed=15, soft=True)
  g = _grad(
    lambda x: jaxobj.sigmoid_binary_cross_entropy(x, y, pos_weight=pos_weight, reduction="sum"), x
  )
  x, y = f64(x), f64(y)
  close(g, expit(x) * (pos_weight * y + 1 - y) - pos_weight * y, atol=2e-6)
  # Mean over the unmasked elements divides by their count.
  where = np.arange(K) < 3
  g = _grad(
    lambda x: jaxobj.sigmoid_binary_cross_entropy(
      x, y.astype(np.float32), pos_weight=pos_weight, where=where[None]
    ),
    x.astype(np.float32),
  )
  want = expit(x) * (pos_weight * y + 1 - y) - pos_weight * y
  close(g, np.where(where, want, 0.0) / (3 * N), atol=2e-7)


@pytest.mark.parametrize(
  "name,kw",
  [
    ("softmax_cross_entropy", {}),
    ("softmax_cross_entropy", {"label_smoothing": 0.3}),
    ("softmax_cross_entropy_with_integer_labels", {}),
    ("softmax_cross_entropy_with_integer_labels", {"label_smoothing": 0.3}),
    ("softmax_focal_loss", {"gamma": 0.0}),  # focal with gamma=0 is the plain CE
    ("softmax_focal_loss_with_integer_labels", {"gamma": 0.0}),
  ],
  ids=str,
)
def test_softmax_ce_gradient_is_softmax_minus_target(name, kw):
  x, y = make_inputs("ints", seed=16)
  labels = y if name.endswith("integer_labels") else _one_hot(y).astype(np.float32)
  rng = np.random.default_rng(16)
  w = rng.uniform(0.5, 2.0, N).astype(np.float32)
  g = _grad(lambda x: call(name, x, labels, **kw, weights=w), x)
  target = ref_smooth_labels(_one_hot(y), kw.get("label_smoothing", 0.0))
  close(g, (softmax(f64(x), -1) - target) * f64(w)[:, None] / f64(w).sum(), atol=2e-7)


def test_poly_integer_gradient_closed_form():
  x, y = make_inputs("ints", seed=17)
  g = _grad(
    lambda x: jaxobj.poly_loss_cross_entropy_with_integer_labels(
      x, y, epsilon=2.5, reduction="sum"
    ),
    x,
  )
  p, e = softmax(f64(x), -1), _one_hot(y)
  p_y = np.sum(p * e, -1, keepdims=True)
  close(g, p - e - 2.5 * p_y * (e - p), atol=2e-6)


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_hinge_gradients_closed_form(margin):
  s, y = make_inputs("signed", seed=18)
  active = margin - f64(y) * f64(s) > 0
  g = _grad(lambda s: jaxobj.hinge_loss(s, y, margin=margin, reduction="sum"), s)
  close(g, np.where(active, -f64(y), 0.0))
  g = _grad(lambda s: jaxobj.squared_hinge_loss(s, y, margin=margin, reduction="sum"), s)
  close(g, -2.0 * f64(y) * ref_hinge(f64(s), f64(y), margin), atol=1e-5)
  s, labels = make_inputs("ints", seed=18)
  g = _grad(lambda s: jaxobj.multiclass_hinge_loss(s, labels, margin=margin, reduction="sum"), s)
  e = _one_hot(labels)
  runner = np.argmax(np.where(e > 0, -np.inf, s), -1)
  active = ref_multiclass_hinge(f64(s), labels, margin) > 0
  want = (_one_hot(runner) - e) * active[:, None]
  close(g, want)


# (loss, hyperparameter, value, other kwargs, labels)
HYPER_CASES = [
  ("sigmoid_binary_cross_entropy", "pos_weight", 2.0, {"label_smoothing": 0.1}),
  ("sigmoid_binary_cross_entropy", "label_smoothing", 0.0, {"pos_weight": 2.0}),
  ("sigmoid_binary_cross_entropy", "label_smoothing", 0.3, {}),
  ("sigmoid_focal_loss", "gamma", 0.5, {"alpha": 0.25}),
  ("sigmoid_focal_loss", "gamma", 2.0, {}),
  ("sigmoid_focal_loss", "alpha", 0.25, {"gamma": 2.0}),
  ("hinge_loss", "margin", 1.0, {}),
  ("squared_hinge_loss", "margin", 0.5, {}),
  ("softmax_cross_entropy", "label_smoothing", 0.0, {}),
  ("softmax_cross_entropy", "label_smoothing", 0.3, {"class_weights": np.arange(1.0, 6.0)}),
  ("softmax_cross_entropy_with_integer_labels", "label_smoothing", 0.0, {}),
  (
    "softmax_cross_entropy_with_integer_labels",
    "label_smoothing",
    0.3,
    {"class_weights": np.arange(1.0, 6.0)},
  ),
  ("softmax_focal_loss", "gamma", 0.5, {}),
  ("softmax_focal_loss", "gamma", 2.0, {"class_weights": np.arange(1.0, 6.0)}),
  ("softmax_focal_loss_with_integer_labels", "gamma", 0.5, {}),
  ("softmax_focal_loss_with_integer_labels", "gamma", 2.0, {}),
  ("poly_loss_cross_entropy", "epsilon", -1.0, {}),
  ("poly_loss_cross_entropy_with_integer_labels", "epsilon", 2.0, {}),
  ("multiclass_hinge_loss", "margin", 1.0, {}),
]


@pytest.mark.parametrize(
  "name,hp,value,kw", HYPER_CASES, ids=[f"{c[0]}-{c[1]}={c[2]}" for c in HYPER_CASES]
)
def test_hyperparameter_gradient_and_vmap(name, hp, value, kw):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=19, soft=True)
  rng = np.random.default_rng(19)
  w = rng.uniform(0.5, 2.0, loss_shape(kind, x))

  def ref(v):
    return expected(name, x, y, {**kw, hp: v}, weights=w)

  f = lambda v: call(name, x, y, **kw, **{hp: v}, weights=w.astype(np.float32))
  h = 1e-6
  fd = (ref(value + h) - ref(value - h)) / (2 * h)
  g = jax.grad(f)(jnp.float32(value))
  assert np.isfinite(g)
  close(g, fd, rtol=1e-4, atol=1e-5)
  # The hyperparameter is traced: vmap over it matches separate calls.
  values = [value, value + 0.2, value + 0.5]
  close(jax.vmap(f)(jnp.array(values, jnp.float32)), [ref(v) for v in values], rtol=2e-5)
  close(jax.jit(f)(value), ref(value), rtol=2e-5)


# --------------------------------------------------------------------------
# Extreme inputs.


EXTREME_CASES = [(n, {}) for n in ALL] + [
  ("sigmoid_binary_cross_entropy", {"pos_weight": 3.0, "label_smoothing": 0.1}),
  ("sigmoid_focal_loss", {"gamma": 0.5}),
  ("sigmoid_focal_loss", {"gamma": 2.0, "alpha": 0.25}),
  ("softmax_cross_entropy", {"label_smoothing": 0.1}),
  ("softmax_cross_entropy_with_integer_labels", {"label_smoothing": 0.1}),
  ("softmax_focal_loss", {"gamma": 0.5}),
  ("softmax_focal_loss_with_integer_labels", {"gamma": 0.5}),
]


@pytest.mark.parametrize("case", EXTREME_CASES, ids=_case_id)
def test_huge_logits_give_finite_exact_values_and_gradients(case):
  name, kw = case
  kind = LOSSES[name][1]
  _, y = make_inputs(kind, seed=20)
  rng = np.random.default_rng(20)
  # +-1e4 and 0, with ties between the largest classes.
  x = rng.choice([-1e4, 0.0, 1e4], size=y.shape + (K,) if kind == "ints" else y.shape).astype(
    np.float32
  )
  loss = lambda x, **hp: call(name, x, y, **kw, **hp, reduction="sum")
  value = loss(x)
  assert np.isfinite(value)
  close(value, expected(name, x, y, kw, reduction="sum"), rtol=1e-5, atol=1e-5)
  assert np.all(np.isfinite(jax.grad(loss)(x)))
  if "gamma" in kw:
    gamma = kw["gamma"]
    h = 1e-6
    fd = (
      expected(name, x, y, {**kw, "gamma": gamma + h}, reduction="sum")
      - expected(name, x, y, {**kw, "gamma": gamma - h}, reduction="sum")
    ) / (2 * h)
    kw_rest = {k: v for k, v in kw.items() if k != "gamma"}
    dg = jax.grad(lambda g: call(name, x, y, **kw_rest, gamma=g, reduction="sum"))(gamma)
    assert np.isfinite(dg)
    close(dg, fd, rtol=1e-4, atol=1e-4)


def _drop_classes(x, labels_or_probs, kind, drop, cw=None):
  keep = [k for k in range(K) if k not in drop]
  if kind == "ints":
    remap = np.full(K, -1)
    remap[keep] = np.arange(len(keep))
    small_y = remap[labels_or_probs].astype(np.int32)
  else:
    small_y = labels_or_probs[:, keep]
  return x[:, keep], small_y, (None if cw is None else cw[keep]), keep


MASKED_CLASS_CASES = [(n, {}) for n in CLASS_AXIS] + [
  ("softmax_cross_entropy", {"label_smoothing": 0.2, "class_weights": np.arange(1.0, 6.0)}),
  (
    "softmax_cross_entropy_with_integer_labels",
    {"label_smoothing": 0.2, "class_weights": np.arange(1.0, 6.0)},
  ),
  ("softmax_focal_loss", {"gamma": 0.5, "class_weights": np.arange(1.0, 6.0)}),
  ("softmax_focal_loss_with_integer_labels", {"class_weights": np.arange(1.0, 6.0)}),
  ("multiclass_hinge_loss", {"margin": 3.0}),
]


@pytest.mark.parametrize("case", MASKED_CLASS_CASES, ids=_case_id)
def test_minus_inf_classes_equal_removing_them(case):
  name, kw = case
  kind = LOSSES[name][1]
  drop = (1, 3)
  rng = np.random.default_rng(21)
  x, _ = make_inputs(kind, seed=21)
  labels = rng.choice([0, 2, 4], N).astype(np.int32)
  y = (
    labels
    if kind == "ints"
    else (_one_hot(labels) * 0.7 + 0.1 * (np.arange(K) % 2 == 0)).astype(np.float32)
  )  # soft, zero on the dropped classes
  x_inf = x.copy()
  x_inf[:, list(drop)] = -np.inf
  small_x, small_y, small_cw, keep = _drop_classes(x, y, kind, drop, kw.get("class_weights"))
  small_kw = dict(kw, **({} if small_cw is None else {"class_weights": small_cw}))
  f = lambda x: LOSSES[name][0](x, y, **kw, reduction="sum")
  f_small = lambda x: LOSSES[name][0](x, small_y, **small_kw, reduction="sum")
  close(f(x_inf), np.asarray(f_small(small_x)), rtol=2e-5)
  g, g_small = jax.grad(f)(x_inf), jax.grad(f_small)(small_x)
  assert np.all(np.isfinite(g))
  np.testing.assert_array_equal(np.asarray(g)[:, list(drop)], 0.0)
  close(np.asarray(g)[:, keep], np.asarray(g_small), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", CLASS_AXIS)
def test_random_minus_inf_masks_match_reference(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=22)
  if kind == "probs":  # mass on classes 0 and 1 only; the rest may be -inf
    u = np.random.default_rng(22).uniform(0.1, 0.9, N)
    y = np.zeros((N, K), np.float32)
    y[:, 0], y[:, 1] = u, 1.0 - u
  x = _random_class_mask(22, y, kind)
  got = call(name, x, y, reduction="none")
  assert np.all(np.isfinite(got))
  close(got, expected(name, x, y, {}, reduction="none"))
  assert np.all(np.isfinite(jax.grad(lambda x: call(name, x, y))(x)))


@pytest.mark.parametrize("name", ALL)
def test_masked_row_of_minus_inf_contributes_nothing(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=23)
  x[0] = -np.inf
  where = np.ones(loss_shape(kind, x), bool)
  where[0] = False
  none = call(name, x, y, where=where, reduction="none")
  np.testing.assert_array_equal(np.asarray(none)[0], 0.0)
  close(call(name, x, y, where=where), expected(name, x[1:], y[1:], {}))
  g = jax.grad(lambda x: call(name, x, y, where=where))(x)
  assert np.all(np.isfinite(g))
  np.testing.assert_array_equal(np.asarray(g)[0], 0.0)
  # The mask may also broadcast over the element axis for elementwise losses.
  if kind in ("binary", "signed"):
    row_mask = where[:, :1]
    close(call(name, x, y, where=row_mask), expected(name, x[1:], y[1:], {}))


@pytest.mark.parametrize("name", ALL)
def test_all_masked_is_zero_with_zero_gradients(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=24)
  x[:2] = -np.inf
  where = np.zeros(loss_shape(kind, x), bool)
  for reduction in ("mean", "sum", "none"):
    f = lambda x: jnp.sum(call(name, x, y, where=where, reduction=reduction))
    assert float(f(x)) == 0.0
    g = jax.grad(f)(x)
    assert np.all(np.isfinite(g)) and not np.any(np.asarray(g))
  w0 = jnp.zeros(loss_shape(kind, x))
  g = jax.grad(lambda x: call(name, x, y, where=where, weights=w0))(x)
  assert not np.any(np.asarray(g))
  if kind == "ints":
    ignored = np.full_like(y, -100)
    fn = LOSSES[name][0]
    assert float(fn(x, ignored, ignore_index=-100)) == 0.0
    g = jax.grad(lambda x: fn(x, ignored, ignore_index=-100))(x)
    assert np.all(np.isfinite(g)) and not np.any(np.asarray(g))


@pytest.mark.parametrize("name", ALL)
def test_bfloat16_logits_compute_in_float32(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=25, soft=True)
  x16 = jnp.asarray(x, jnp.bfloat16)
  got = call(name, x16, y)
  assert got.dtype == jnp.float32 and np.isfinite(got)
  # Exactly the f32 computation on the bf16-rounded logits, and close to the f32 loss.
  close(got, np.asarray(call(name, x16.astype(jnp.float32), y)), rtol=1e-6)
  close(got, np.asarray(call(name, x, y)), rtol=3e-2, atol=1e-2)
  g = jax.grad(lambda x: call(name, x, y))(x16)
  assert g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))
  extreme = jnp.asarray(np.sign(x) * 1e4, jnp.bfloat16)
  assert np.isfinite(call(name, extreme, y))


# --------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("name", ALL)
def test_integer_logits_raise_type_error(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=26)
  with pytest.raises(TypeError, match="floating"):
    call(name, x.astype(np.int32), y)


@pytest.mark.parametrize("name", INTEGER)
def test_float_labels_for_integer_losses_raise_type_error(name):
  x, y = make_inputs("ints", seed=27)
  with pytest.raises(TypeError, match="integer"):
    LOSSES[name][0](x, y.astype(np.float32))
  with pytest.raises(TypeError, match="integer"):
    LOSSES[name][0](x, jax.nn.one_hot(y, K))


@pytest.mark.parametrize("name", ALL)
def test_label_shape_mismatch_names_both_shapes(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=28)
  bad = y[:, :1] if y.ndim == 2 else y[:, None]  # (N, 1)
  with pytest.raises(ValueError) as err:
    LOSSES[name][0](x, bad)
  msg = str(err.value)
  assert str(x.shape) in msg and str(bad.shape) in msg, msg
  if kind in ("binary", "signed"):  # the classic (N, 1) vs (N,) silent broadcast
    with pytest.raises(ValueError, match=r"\(8,\).*\(8, 1\)|\(8, 1\).*\(8,\)"):
      LOSSES[name][0](x[:, 0], y[:, :1])


@pytest.mark.parametrize("shape", [(K + 1,), (1, K), (), (K - 1,)])
@pytest.mark.parametrize("name", WITH_CLASS_WEIGHTS)
def test_class_weights_of_wrong_shape_raise(name, shape):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=29)
  with pytest.raises(ValueError, match="class_weights"):
    LOSSES[name][0](x, y, class_weights=np.ones(shape, np.float32))


@pytest.mark.parametrize("name", ALL)
def test_unknown_reduction_lists_the_choices(name):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=30)
  with pytest.raises(ValueError) as err:
    LOSSES[name][0](x, y, reduction="average")
  for choice in ("'mean'", "'sum'", "'none'", "average"):
    assert choice in str(err.value)


BAD_HYPER = [
  ("sigmoid_binary_cross_entropy", "pos_weight", -1.0),
  ("sigmoid_binary_cross_entropy", "label_smoothing", 1.5),
  ("sigmoid_binary_cross_entropy", "label_smoothing", -0.1),
  ("sigmoid_focal_loss", "gamma", -1.0),
  ("sigmoid_focal_loss", "gamma", float("nan")),
  ("sigmoid_focal_loss", "alpha", 1.5),
  ("sigmoid_focal_loss", "alpha", -0.5),
  ("hinge_loss", "margin", -1.0),
  ("squared_hinge_loss", "margin", -0.5),
  ("softmax_cross_entropy", "label_smoothing", 1.5),
  ("softmax_cross_entropy_with_integer_labels", "label_smoothing", -0.2),
  ("softmax_focal_loss", "gamma", -0.5),
  ("softmax_focal_loss_with_integer_labels", "gamma", -2.0),
  ("multiclass_hinge_loss", "margin", -1.0),
]


@pytest.mark.parametrize("name,hp,value", BAD_HYPER)
def test_concrete_hyperparameters_out_of_range_raise(name, hp, value):
  kind = LOSSES[name][1]
  x, y = make_inputs(kind, seed=31)
  with pytest.raises(ValueError, match=hp):
    LOSSES[name][0](x, y, **{hp: value})
  with pytest.raises(ValueError, match=hp):
    LOSSES[name][0](x, y, **{hp: np.array([0.5, value])})


def test_smooth_labels_alpha_out_of_range_raises():
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.smooth_labels(jnp.ones((2, K)) / K, 1.5)
  with pytest.raises(ValueError, match="alpha"):
    jaxobj.smooth_labels(jnp.ones((2, K)) / K, -0.1)


def test_out_of_range_labels_are_caught_by_checkify():
  # The documented way to validate labels up front: NaN checks under checkify.
  from jax.experimental import checkify

  f = checkify.checkify(
    jaxobj.softmax_cross_entropy_with_integer_labels, errors=checkify.float_checks
  )
  x = jnp.zeros((2, 3))
  err, _ = f(x, jnp.array([0, 2]))
  assert err.get() is None
  err, _ = jax.jit(f)(x, jnp.array([0, 3]))
  assert err.get() is not None and "nan" in err.get().lower()


# --------------------------------------------------------------------------
# Second derivatives of the focal losses at confident logits.


def _second_difference(f, x, v, h):
  """v . Hessian(f)(x) . v by central differences of the float64 reference."""
  return (f(x + h * v) - 2.0 * f(x) + f(x - h * v)) / h**2


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_second_derivative_is_finite_and_exact(gamma):
  # Before: NaN from |x| ~ 44 with hard labels (1 - p_t underflowing when squared).
  x = np.array([-1e4, -100.0, -50.0, -44.0, -3.0, 0.5, 4.0, 44.0, 50.0, 100.0, 1e4])
  x, y = np.repeat(x, 3), np.tile([0.0, 1.0, 0.3], x.size)
  f = lambda x: jaxobj.sigmoid_focal_loss(
    x, jnp.asarray(y, jnp.float32), gamma=gamma, reduction="sum"
  )
  # Elementwise loss: the Hessian is diagonal, its diagonal the HVP with ones.
  hess = np.asarray(
    jax.jvp(jax.grad(f), (jnp.asarray(x, jnp.float32),), (jnp.ones(x.size, jnp.float32),))[1],
    np.float64,
  )
  assert np.all(np.isfinite(hess)), x[~np.isfinite(hess)]
  ref = lambda x: ref_sigmoid_focal(x, y, gamma)
  want = _second_difference(ref, x, np.ones_like(x), 1e-3)
  ok = np.abs(x) <= 100  # the float64 reference itself is inexact at 1e4
  close(hess[ok], want[ok], rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("gap", [3.0, 17.0, 100.0, 1e4])
def test_softmax_focal_hessian_is_finite_and_exact(gap, gamma):
  # Before: all NaN from a logit gap of about 17 (p rounding to 1).
  x = np.array([[gap, 0.0, -1.0, 0.5], [0.2, -gap, gap, 1.0]])
  probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.5, 0.25, 0.25]])
  labels = np.array([1, 2])
  v = np.random.default_rng(0).standard_normal(x.shape)
  cases = [
    (jaxobj.softmax_focal_loss, probs, ref_softmax_focal),
    (jaxobj.softmax_focal_loss_with_integer_labels, labels, ref_int_focal),
  ]
  for fn, y, ref in cases:
    f = lambda x: fn(x, y, gamma=gamma, reduction="sum")
    hess = jax.hessian(f)(jnp.asarray(x, jnp.float32))
    assert np.all(np.isfinite(hess)), (fn.__name__, gap)
    hvp = np.einsum("ijkl,kl->ij", np.asarray(hess, np.float64), v)
    # v' H v against the float64 reference (exact where p does not round to
    # 1 in float32 either; beyond that only finiteness is asked for).
    if gap <= 17:
      want = _second_difference(lambda x: np.sum(ref(x, y, gamma)), x, v, 1e-3)
      close(np.sum(hvp * v), want, rtol=2e-3, atol=1e-5)


def test_scalar_logits_have_no_class_axis():
  for fn, labels in (
    (jaxobj.softmax_cross_entropy, jnp.float32(1.0)),
    (jaxobj.softmax_focal_loss, jnp.float32(1.0)),
    (jaxobj.softmax_cross_entropy_with_integer_labels, jnp.int32(0)),
  ):
    with pytest.raises(ValueError, match=r"logits must have a class axis, got a scalar"):
      fn(jnp.float32(1.0), labels)
  with pytest.raises(ValueError, match=r"scores must have a class axis"):
    jaxobj.multiclass_hinge_loss(jnp.float32(1.0), jnp.int32(0))
