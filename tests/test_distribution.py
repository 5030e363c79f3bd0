"""Values and gradients of jaxobj.losses.distribution.

References are float64 SciPy/NumPy implementations written from the
definitions (``scipy.special.rel_entr``/``kl_div``,
``scipy.spatial.distance.jensenshannon``, ``scipy.stats.wasserstein_distance``,
an explicit pairwise-difference MMD), optax where it has the loss, and closed
forms.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce
from scipy.spatial.distance import jensenshannon
from scipy.special import kl_div, log_softmax, rel_entr, softmax
from scipy.stats import wasserstein_distance

import jaxobj

N, K = 6, 5
RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ("none", "sum", "mean")


# --------------------------------------------------------------------------
# float64 references, one value per distribution.


def ref_kl(log_q, p):
  return rel_entr(p, np.exp(log_q)).sum(-1)


def ref_kl_log(log_q, log_p):
  return rel_entr(np.exp(log_p), np.exp(log_q)).sum(-1)


def ref_reverse_kl(log_q, p):
  return rel_entr(np.exp(log_q), p).sum(-1)


def ref_generalized_kl(log_q, p):
  return kl_div(p, np.exp(log_q)).sum(-1)


def ref_js(log_q, p):
  return jensenshannon(np.exp(log_q), p, axis=-1) ** 2  # natural log by default


def ref_kd(s, t, temperature=1.0):
  p_t = softmax(t / temperature, axis=-1)
  return temperature**2 * rel_entr(p_t, softmax(s / temperature, axis=-1)).sum(-1)


def ref_w1_histogram(q, p, bin_width=1.0):
  support = np.arange(q.shape[-1]) * bin_width
  return np.array(
    [
      wasserstein_distance(support, support, a, b)
      for a, b in zip(q.reshape(-1, q.shape[-1]), p.reshape(-1, p.shape[-1]))
    ]
  ).reshape(q.shape[:-1])


def ref_w1(x, y):
  return np.array(
    [
      wasserstein_distance(a, b)
      for a, b in zip(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
    ]
  ).reshape(x.shape[:-1])


def _gram(a, b, bandwidths):
  d = np.sum((a[:, None, :] - b[None, :, :]) ** 2, -1)  # explicit differences
  return sum(np.exp(-d / (2.0 * s**2)) for s in np.atleast_1d(bandwidths))


def ref_mmd(x, y, bandwidth=1.0, unbiased=False):
  out = []
  for a, b in zip(x.reshape((-1,) + x.shape[-2:]), y.reshape((-1,) + y.shape[-2:])):
    kxx, kyy, kxy = _gram(a, a, bandwidth), _gram(b, b, bandwidth), _gram(a, b, bandwidth)
    n, m = len(a), len(b)
    if unbiased:
      xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
      yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    else:
      xx, yy = kxx.mean(), kyy.mean()
    out.append(xx + yy - 2.0 * kxy.mean())
  return np.array(out).reshape(x.shape[:-2])


# --------------------------------------------------------------------------
# Inputs.


def _probs(rng, shape, zeros=0.0):
  p = softmax(2.0 * rng.standard_normal(shape), axis=-1)
  if zeros:
    p = np.where((rng.uniform(size=shape) < zeros) & (p < p.max(-1, keepdims=True)), 0.0, p)
  return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def make_inputs(kind, seed=0, batch=(N,)):
  rng = np.random.default_rng(seed)
  full = batch + (K,)
  if kind == "log_probs":  # log q (normalized) and target probabilities with zeros
    return log_softmax(2.0 * rng.standard_normal(full), -1).astype(np.float32), _probs(
      rng, full, zeros=0.3
    )
  if kind == "log_pairs":
    return log_softmax(2.0 * rng.standard_normal(full), -1).astype(np.float32), log_softmax(
      2.0 * rng.standard_normal(full), -1
    ).astype(np.float32)
  if kind == "unnormalized":
    return np.log(rng.uniform(0.1, 2.0, full)).astype(np.float32), np.where(
      rng.uniform(size=full) < 0.2, 0.0, rng.uniform(0.0, 2.0, full)
    ).astype(np.float32)
  if kind == "logits":
    return (2.0 * rng.standard_normal(full)).astype(np.float32), (
      2.0 * rng.standard_normal(full)
    ).astype(np.float32)
  if kind == "histograms":
    return _probs(rng, batch + (7,), zeros=0.3), _probs(rng, batch + (7,), zeros=0.3)
  if kind == "samples":
    return rng.standard_normal(batch + (7,)).astype(np.float32), (
      1.5 * rng.standard_normal(batch + (4,)) + 0.3
    ).astype(np.float32)
  if kind == "sets":
    return rng.standard_normal(batch + (4, 3)).astype(np.float32), (
      rng.standard_normal(batch + (5, 3)) + 0.5
    ).astype(np.float32)
  raise ValueError(kind)


# name: (function, kind of inputs, reference)
LOSSES = {
  "kl_divergence": (jaxobj.kl_divergence, "log_probs", ref_kl),
  "kl_divergence_with_log_targets": (
    jaxobj.kl_divergence_with_log_targets,
    "log_pairs",
    ref_kl_log,
  ),
  "reverse_kl_divergence": (jaxobj.reverse_kl_divergence, "log_pairs", ref_reverse_kl),
  "generalized_kl_divergence": (
    jaxobj.generalized_kl_divergence,
    "unnormalized",
    ref_generalized_kl,
  ),
  "jensen_shannon_divergence": (jaxobj.jensen_shannon_divergence, "log_probs", ref_js),
  "knowledge_distillation_loss": (jaxobj.knowledge_distillation_loss, "logits", ref_kd),
  "wasserstein_1d_histogram": (jaxobj.wasserstein_1d_histogram, "histograms", ref_w1_histogram),
  "wasserstein_1d": (jaxobj.wasserstein_1d, "samples", ref_w1),
  "maximum_mean_discrepancy": (jaxobj.maximum_mean_discrepancy, "sets", ref_mmd),
}


def _jit(fn):
  """One compiled function per loss for the value and gradient tests."""
  params = inspect.signature(fn).parameters
  return jax.jit(fn, static_argnames=[a for a in ("reduction", "unbiased", "axis") if a in params])


JITTED = {name: _jit(fn) for name, (fn, _, _) in LOSSES.items()}
J = JITTED
CLASS_AXIS = [
  "kl_divergence",
  "kl_divergence_with_log_targets",
  "reverse_kl_divergence",
  "generalized_kl_divergence",
  "jensen_shannon_divergence",
  "knowledge_distillation_loss",
]


def inputs_for(name, seed=0, batch=(N,)):
  a, b = make_inputs(LOSSES[name][1], seed, batch)
  if name == "reverse_kl_divergence":  # positive targets: the reverse KL is finite
    b = np.exp(b).astype(np.float32)
  return a, b


VALUE_CASES = [(n, {}) for n in LOSSES] + [
  ("knowledge_distillation_loss", {"temperature": 0.5}),
  ("knowledge_distillation_loss", {"temperature": 4.0}),
  ("wasserstein_1d_histogram", {"bin_width": 0.25}),
  ("maximum_mean_discrepancy", {"bandwidth": 0.7}),
  ("maximum_mean_discrepancy", {"bandwidth": 2.0, "unbiased": True}),
  ("maximum_mean_discrepancy", {"bandwidth": (0.5, 1.0, 4.0)}),
  ("maximum_mean_discrepancy", {"bandwidth": np.array([0.5, 2.0]), "unbiased": True}),
]


def _case_id(case):
  name, kw = case
  return name + "".join(f"-{k}={v}" for k, v in kw.items() if np.isscalar(v))


@pytest.mark.parametrize("variant", ["plain", "where+weights"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_value_matches_float64_reference(case, variant):
  name, kw = case
  fn, _, ref = LOSSES[name]
  a, b = inputs_for(name, seed=len(name))
  rng = np.random.default_rng(1)
  where = weights = None
  if variant != "plain":
    where = rng.uniform(size=(N,)) < 0.7
    where[0] = True
    weights = rng.uniform(0.5, 2.0, (N,)).astype(np.float32)
  per_row = ref(f64(a), f64(b), **kw)
  assert np.all(np.isfinite(per_row))

  @jax.jit  # one compilation for the three reductions
  def all_reductions(a, b, where, weights):
    return {r: fn(a, b, **kw, where=where, weights=weights, reduction=r) for r in REDUCTIONS}

  for reduction, got in all_reductions(a, b, where, weights).items():
    assert got.dtype == jnp.float32
    close(got, ref_reduce(per_row, where, None if weights is None else f64(weights), reduction))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_extra_batch_axes(name):
  fn, _, ref = LOSSES[name]
  a, b = inputs_for(name, seed=3, batch=(2, 3))
  got = fn(a, b, reduction="none")
  assert got.shape == (2, 3)
  close(got, ref(f64(a), f64(b)))


@pytest.mark.parametrize("name", CLASS_AXIS)
def test_class_axis_argument(name):
  fn = LOSSES[name][0]
  a, b = inputs_for(name, seed=4)
  close(
    fn(jnp.moveaxis(a, -1, 0), jnp.moveaxis(b, -1, 0), axis=0, reduction="none"),
    np.asarray(fn(a, b, reduction="none")),
    rtol=1e-6,
  )


# --------------------------------------------------------------------------
# optax, where it has the loss.


@pytest.mark.parametrize(
  "ours, theirs, kind",
  [
    (jaxobj.kl_divergence, optax.losses.kl_divergence, "log_probs"),
    (
      jaxobj.kl_divergence_with_log_targets,
      optax.losses.kl_divergence_with_log_targets,
      "log_pairs",
    ),
    (jaxobj.generalized_kl_divergence, optax.losses.generalized_kl_divergence, "unnormalized"),
  ],
)
def test_matches_optax_values_and_gradients(ours, theirs, kind):
  a, b = make_inputs(kind, seed=5)
  if kind != "log_pairs":
    b = np.maximum(b, 1e-3).astype(np.float32)  # optax's gradient is NaN at a zero target
  close(ours(a, b, reduction="none"), np.asarray(theirs(a, b)), rtol=2e-6)
  g_ours = jax.grad(lambda x: ours(x, b, reduction="sum"))(a)
  g_theirs = jax.grad(lambda x: jnp.sum(theirs(x, b)))(a)
  close(g_ours, np.asarray(g_theirs), rtol=1e-6)


def test_optax_kl_value_at_zero_targets():
  # optax's value is right at a zero target (0 log 0 = 0); its gradient there
  # w.r.t. the targets is NaN, ours is finite.
  log_q, p = make_inputs("log_probs", seed=5)
  assert (p == 0).any()
  close(
    J["kl_divergence"](log_q, p, reduction="none"),
    np.asarray(optax.losses.kl_divergence(log_q, p)),
    rtol=2e-6,
  )
  assert np.all(np.isfinite(jax.grad(lambda t: J["kl_divergence"](log_q, t))(p)))


# --------------------------------------------------------------------------
# Gradients.


GRAD_CASES = [(n, {}) for n in LOSSES] + [
  ("knowledge_distillation_loss", {"temperature": 3.0}),
  ("maximum_mean_discrepancy", {"bandwidth": (0.5, 2.0), "unbiased": True}),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_gradients_float64(case):
  name, kw = case
  fn = JITTED[name]
  a, b = inputs_for(name, seed=6, batch=(3,))
  if LOSSES[name][1] in ("log_probs", "unnormalized"):
    # Away from zero targets: d/dp of p log p is unbounded at p = 0.
    b = b + 0.05
    b = b / b.sum(-1, keepdims=True) if LOSSES[name][1] == "log_probs" else b
  with jax.enable_x64(True):
    a, b = jnp.asarray(f64(a)), jnp.asarray(f64(b))
    # Both inputs at once: the targets' gradient is checked too.
    check_grads(lambda x, y: fn(x, y, **kw), (a, b), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize(
  "name, hyper, value",
  [
    ("knowledge_distillation_loss", "temperature", 2.0),
    ("wasserstein_1d_histogram", "bin_width", 0.3),
    ("maximum_mean_discrepancy", "bandwidth", 0.8),
  ],
)
def test_hyperparameter_gradients_float64(name, hyper, value):
  fn = JITTED[name]
  a, b = inputs_for(name, seed=7, batch=(3,))
  with jax.enable_x64(True):
    a, b = jnp.asarray(f64(a)), jnp.asarray(f64(b))
    check_grads(
      lambda h: fn(a, b, **{hyper: h}), (jnp.float64(value),), order=2, modes=["rev"], eps=1e-5
    )


def test_kl_gradient_closed_forms():
  log_q, p = make_inputs("log_probs", seed=8)
  # d KL(p||q) / d log q = -p, also where p = 0.
  close(jax.grad(lambda x: J["kl_divergence"](x, p, reduction="sum"))(log_q), -f64(p))
  # Through a log-softmax it is the familiar softmax(x) - p.
  x = (2.0 * np.random.default_rng(8).standard_normal((N, K))).astype(np.float32)
  g = jax.grad(lambda x: J["kl_divergence"](jax.nn.log_softmax(x), p, reduction="sum"))(x)
  close(g, softmax(f64(x), -1) - f64(p))


def test_distillation_t_squared_keeps_the_gradient_scale():
  # Hinton et al.: for T >> |logits| the gradient of T^2 KL is about
  # ((s - mean s) - (t - mean t)) / K, whatever T is.
  rng = np.random.default_rng(9)
  s, t = rng.standard_normal((2, N, K)).astype(np.float32)
  expected = ((s - s.mean(-1, keepdims=True)) - (t - t.mean(-1, keepdims=True))) / K
  for temperature in (100.0, 1000.0):
    g = jax.grad(
      lambda s: J["knowledge_distillation_loss"](s, t, temperature=temperature, reduction="sum")
    )(s)
    close(g, f64(expected), rtol=5e-2, atol=5e-3 * 100.0 / temperature)
  # And T = 1 is the plain KL between the softmaxes.
  close(
    J["knowledge_distillation_loss"](s, t, reduction="none"),
    ref_kl(log_softmax(f64(s), -1), softmax(f64(t), -1)),
  )


# --------------------------------------------------------------------------
# Zero probabilities, -inf logits, degenerate inputs.


def _masked_pair(seed):
  """Logits with random non-argmax classes at -inf in both inputs."""
  s, t = make_inputs("logits", seed=seed)
  rng = np.random.default_rng(seed)
  drop = (rng.uniform(size=s.shape) < 0.5) & (np.arange(K) != t.argmax(-1)[:, None])
  drop[0] = np.arange(K) != t[0].argmax()  # a row with one class left
  return np.where(drop, -np.inf, s).astype(np.float32), np.where(drop, -np.inf, t).astype(
    np.float32
  )


@pytest.mark.parametrize("name", CLASS_AXIS)
def test_zero_probabilities_and_minus_inf_are_finite_and_exact(name):
  fn, _, ref = LOSSES[name]
  s, t = _masked_pair(10)
  log_q, log_p = jax.nn.log_softmax(s), jax.nn.log_softmax(t)
  p = jnp.exp(log_p)
  args = {
    "kl_divergence": (log_q, p),
    "kl_divergence_with_log_targets": (log_q, log_p),
    "reverse_kl_divergence": (log_q, p),
    "generalized_kl_divergence": (log_q, p),
    "jensen_shannon_divergence": (log_q, p),
    "knowledge_distillation_loss": (s, t),
  }[name]
  a, b = (np.asarray(v) for v in args)
  got = fn(a, b, reduction="none")
  assert np.all(np.isfinite(got))
  with np.errstate(divide="ignore", invalid="ignore"):
    close(got, ref(f64(a), f64(b)), atol=2e-6)
  for i in range(2):
    g = jax.grad(lambda *xs: fn(*xs), argnums=i)(a, b)
    assert np.all(np.isfinite(g)), (name, i)
  if name == "knowledge_distillation_loss":
    dt = jax.grad(lambda h: fn(a, b, temperature=h))(2.0)
    assert np.isfinite(float(dt))


def test_support_mismatch_gives_infinity_not_nan():
  # A target class the model rules out: KL(p||q) is +inf, the true value; the
  # reverse KL is finite there (the model's zero mass costs nothing).
  log_q = jnp.log(jnp.array([[0.5, 0.5, 0.0]]))
  p = jnp.array([[0.4, 0.4, 0.2]])
  assert np.isposinf(float(J["kl_divergence"](log_q, p)))
  close(J["reverse_kl_divergence"](log_q, p), ref_reverse_kl(f64(log_q), f64(p)))
  assert np.isposinf(float(J["reverse_kl_divergence"](jnp.log(p), jnp.exp(log_q))))
  g = jax.grad(lambda x: J["kl_divergence"](x, p))(log_q)
  close(g, -f64(p))  # finite even at the infinite value


def test_identical_distributions_give_zero_with_zero_gradient():
  x, _ = make_inputs("logits", seed=11)
  log_q = jax.nn.log_softmax(x)
  p = jnp.exp(log_q)
  for fn in (
    J["kl_divergence"],
    J["reverse_kl_divergence"],
    J["jensen_shannon_divergence"],
    J["generalized_kl_divergence"],
  ):
    close(fn(log_q, p), 0.0, atol=1e-6)
    # A minimum over the logits (log q itself is free, so only the generalized
    # KL is stationary in log q: the others' gradients there are -p, q, ...).
    close(jax.grad(lambda x: fn(jax.nn.log_softmax(x), p))(x), np.zeros((N, K)), atol=1e-6)
  close(
    jax.grad(lambda lq: J["generalized_kl_divergence"](lq, p))(log_q), np.zeros((N, K)), atol=1e-6
  )
  close(J["kl_divergence_with_log_targets"](log_q, log_q), 0.0)
  s, _ = make_inputs("logits", seed=11)
  close(J["knowledge_distillation_loss"](s, s, temperature=3.0), 0.0, atol=1e-6)
  h, _ = make_inputs("histograms", seed=11)
  close(J["wasserstein_1d_histogram"](h, h), 0.0)
  assert np.all(np.asarray(jax.grad(lambda q: J["wasserstein_1d_histogram"](q, h))(h)) == 0)
  x, _ = make_inputs("samples", seed=11)
  close(J["wasserstein_1d"](x, x[:, ::-1]), 0.0)
  sets, _ = make_inputs("sets", seed=11)
  close(J["maximum_mean_discrepancy"](sets, sets[:, ::-1]), 0.0, atol=1e-6)


def test_jensen_shannon_bounds_and_symmetry():
  disjoint_q = jnp.log(jnp.array([[0.5, 0.5, 0.0, 0.0]]))
  disjoint_p = jnp.array([[0.0, 0.0, 0.3, 0.7]])
  close(J["jensen_shannon_divergence"](disjoint_q, disjoint_p), np.log(2.0))
  assert np.all(
    np.isfinite(jax.grad(lambda x: J["jensen_shannon_divergence"](x, disjoint_p))(disjoint_q))
  )
  log_q, p = make_inputs("log_probs", seed=12)
  q = np.exp(log_q).astype(np.float32)
  with np.errstate(divide="ignore"):
    swapped = J["jensen_shannon_divergence"](np.log(p), q, reduction="none")
  close(J["jensen_shannon_divergence"](log_q, p, reduction="none"), np.asarray(swapped), rtol=1e-5)


def test_extreme_log_predictions():
  log_q, p = make_inputs("log_probs", seed=13)
  big = log_q * 1e4
  for name in ("kl_divergence", "reverse_kl_divergence", "jensen_shannon_divergence"):
    fn = LOSSES[name][0]
    assert np.isfinite(float(fn(big, p)))
    assert np.all(np.isfinite(jax.grad(lambda x: fn(x, p))(big)))
  s, t = make_inputs("logits", seed=13)
  for temperature in (0.01, 1.0, 100.0):
    v, g = jax.value_and_grad(
      lambda s: J["knowledge_distillation_loss"](s, t * 1e4, temperature=temperature)
    )(s * 1e4)
    assert np.isfinite(float(v)) and np.all(np.isfinite(g))


# --------------------------------------------------------------------------
# Wasserstein and MMD specifics.


def test_wasserstein_closed_forms():
  # A point mass moved by d bins costs d * bin_width.
  q = jnp.zeros((1, 9)).at[0, 2].set(1.0)
  p = jnp.zeros((1, 9)).at[0, 7].set(1.0)
  close(J["wasserstein_1d_histogram"](q, p, bin_width=0.1), 0.5)
  # Shifting every sample by c costs |c|; equal counts pair the sorted samples.
  x = np.random.default_rng(14).standard_normal((3, 6)).astype(np.float32)
  close(J["wasserstein_1d"](x, x + 2.5, reduction="none"), np.full(3, 2.5), rtol=1e-6)
  y = np.random.default_rng(15).standard_normal((3, 6)).astype(np.float32)
  close(
    J["wasserstein_1d"](x, y, reduction="none"),
    np.mean(np.abs(np.sort(f64(x), -1) - np.sort(f64(y), -1)), -1),
  )
  # Sample gradient: sign(x_(i) - y_(i)) / n at the sorted position.
  g = jax.grad(lambda x: J["wasserstein_1d"](x, y, reduction="sum"))(x)
  order = np.argsort(x, -1)
  sign = np.sign(np.sort(f64(x), -1) - np.sort(f64(y), -1)) / 6
  expected = np.zeros_like(sign)
  np.put_along_axis(expected, order, sign, -1)
  close(g, expected)


@pytest.mark.parametrize("n, m", [(1, 1), (1, 4), (3, 7), (6, 4), (5, 5)])
def test_wasserstein_samples_any_counts(n, m):
  rng = np.random.default_rng(n * 10 + m)
  x = rng.standard_normal((2, n)).astype(np.float32)
  y = (2.0 * rng.standard_normal((2, m))).astype(np.float32)
  close(J["wasserstein_1d"](x, y, reduction="none"), ref_w1(f64(x), f64(y)))


def test_wasserstein_histogram_matches_the_samples_form():
  # Integer samples are histograms on the integer grid.
  x = np.array([[0.0, 2.0, 2.0, 5.0]], np.float32)
  y = np.array([[1.0, 1.0, 3.0, 4.0]], np.float32)
  hx = np.bincount(x[0].astype(int), minlength=6)[None] / 4.0
  hy = np.bincount(y[0].astype(int), minlength=6)[None] / 4.0
  close(
    J["wasserstein_1d_histogram"](hx.astype(np.float32), hy.astype(np.float32)),
    np.asarray(J["wasserstein_1d"](x, y)),
    rtol=1e-6,
  )


def test_mmd_uses_no_n_m_d_intermediate():
  x, y = make_inputs("sets", seed=16)  # n=4, m=5, D=3
  jaxpr = jax.make_jaxpr(jax.grad(lambda x: J["maximum_mean_discrepancy"](x, y)))(x)

  def shapes(jaxpr):
    for eqn in jaxpr.eqns:
      for v in eqn.outvars:
        yield tuple(getattr(v.aval, "shape", ()))
      for param in eqn.params.values():
        sub = getattr(param, "jaxpr", param)
        if hasattr(sub, "eqns"):
          yield from shapes(sub)

  seen = list(shapes(jaxpr.jaxpr))
  assert (N, 4, 5) in seen  # the cross-kernel matrix is there
  assert not [s for s in seen if len(s) >= 3 and s[-1] == 3 and set(s[-3:-1]) <= {4, 5}]


def test_mmd_properties():
  x, y = make_inputs("sets", seed=17)
  # The kernel sum is linear: several bandwidths add their MMDs.
  close(
    J["maximum_mean_discrepancy"](x, y, bandwidth=(0.5, 2.0)),
    float(J["maximum_mean_discrepancy"](x, y, bandwidth=0.5))
    + float(J["maximum_mean_discrepancy"](x, y, bandwidth=2.0)),
    rtol=1e-5,
  )
  # vmap over the bandwidth equals the loop.
  bws = jnp.array([0.3, 1.0, 3.0])
  close(
    jax.vmap(lambda b: J["maximum_mean_discrepancy"](x, y, bandwidth=b))(bws),
    [ref_reduce(ref_mmd(f64(x), f64(y), float(b))) for b in bws],
  )
  # The biased estimator is non-negative; the unbiased one is not always.
  assert np.all(np.asarray(J["maximum_mean_discrepancy"](x, x + 1e-3, reduction="none")) >= 0)
  same = np.random.default_rng(18).standard_normal((1, 4, 3)).astype(np.float32)
  close(J["maximum_mean_discrepancy"](same, same), 0.0, atol=1e-6)
  assert float(J["maximum_mean_discrepancy"](same, same, unbiased=True)) < 0
  # Far-apart sets saturate at mean k(x, x') + mean k(y, y'), computed exactly
  # even though |y|^2 ~ 1e8 (the sets are centred before the matmul).
  far = (y + 1e4).astype(np.float32)
  close(J["maximum_mean_discrepancy"](x, far, reduction="none"), ref_mmd(f64(x), f64(far)))
  # A common offset changes nothing.
  close(
    J["maximum_mean_discrepancy"](x + 1e3, y + 1e3, reduction="none"),
    ref_mmd(f64(x), f64(y)),
    rtol=1e-3,
    atol=1e-4,
  )


# --------------------------------------------------------------------------
# Bad inputs.


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_shape_and_dtype_errors_name_the_arguments(name):
  fn = LOSSES[name][0]
  a, b = inputs_for(name)
  names = {
    "wasserstein_1d": ("samples", "target_samples"),
    "maximum_mean_discrepancy": ("samples", "target_samples"),
    "wasserstein_1d_histogram": ("predictions", "targets"),
    "knowledge_distillation_loss": ("student_logits", "teacher_logits"),
    "kl_divergence_with_log_targets": ("log_predictions", "log_targets"),
  }.get(name, ("log_predictions", "targets"))
  with pytest.raises(ValueError, match=rf"{names[1]}\.shape=\({N - 1}, "):
    fn(a, b[:-1])
  with pytest.raises(TypeError, match=names[0]):
    fn(a.astype(np.int32), b)


def test_specific_errors():
  x, y = make_inputs("sets")
  with pytest.raises(ValueError, match="feature size"):
    jaxobj.maximum_mean_discrepancy(x, y[..., :2])
  with pytest.raises(ValueError, match="at least 2 samples"):
    jaxobj.maximum_mean_discrepancy(x[:, :1], y, unbiased=True)
  with pytest.raises(ValueError, match="bandwidth"):
    jaxobj.maximum_mean_discrepancy(x, y, bandwidth=(1.0, 0.0))
  with pytest.raises(ValueError, match=r"bandwidth.shape=\(2, 1\)"):
    jaxobj.maximum_mean_discrepancy(x, y, bandwidth=np.ones((2, 1)))
  with pytest.raises(ValueError, match="n, m >= 1"):
    jaxobj.wasserstein_1d(np.zeros((2, 0), np.float32), np.zeros((2, 3), np.float32))
  h, _ = make_inputs("histograms")
  with pytest.raises(ValueError, match="bin_width"):
    jaxobj.wasserstein_1d_histogram(h, h, bin_width=0.0)
  s, t = make_inputs("logits")
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.knowledge_distillation_loss(s, t, temperature=-1.0)
  with pytest.raises(ValueError, match="distribution axis"):
    jaxobj.kl_divergence(np.float32(0.0), np.float32(1.0))


def test_distillation_nan_logits_reach_the_value():
  # A NaN logit was taken for a -inf (masked) class: inf for the student,
  # a finite loss for the teacher.
  s, t = jnp.array([[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]]), jnp.array([[0.0, 1.0, 2.0]] * 2)
  for args in ((s.at[0, 1].set(jnp.nan), t), (s, t.at[0, 1].set(jnp.nan))):
    out = jaxobj.knowledge_distillation_loss(*args, temperature=2.0, reduction="none")
    assert np.isnan(out[0]) and np.isfinite(out[1])
  # A -inf teacher logit is still a class of probability 0.
  assert np.isfinite(float(jaxobj.knowledge_distillation_loss(s, t.at[0, 1].set(-jnp.inf))))


def test_wasserstein_nan_in_the_last_bin_reaches_the_value():
  # The last bin enters no CDF gap, so a NaN there was dropped.
  q = jnp.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
  p = jnp.array([[0.5, 0.3, 0.2]] * 2)
  for args in ((q.at[0, 2].set(jnp.nan), p), (q, p.at[0, 2].set(jnp.nan))):
    out = np.asarray(jaxobj.wasserstein_1d_histogram(*args, reduction="none"))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    masked = jaxobj.wasserstein_1d_histogram(*args, where=jnp.array([False, True]))
    close(masked, jaxobj.wasserstein_1d_histogram(q[1:], p[1:]))
