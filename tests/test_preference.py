"""Values and gradients of jaxobj.losses.preference.

References are float64 NumPy/SciPy implementations written from the formulas
(DPO and its variants, KTO, SimPO, ORPO, Bradley–Terry, the RLHF objective
with Schulman's KL estimators), closed-form gradients, and an exact check that
the score-function gradient of the RLHF objective is the gradient of its
expectation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce
from scipy.special import expit, log_expit, log_softmax

import jaxobj
from jaxobj.losses.preference import sequence_log_probs

N = 8
RTOL, ATOL = 1e-5, 1e-6
LOG2 = np.log(2.0)


# --------------------------------------------------------------------------
# float64 references, per row (no reduction).


def ref_dpo(pc, pr, rc, rr, beta=0.1, label_smoothing=0.0, loss_type="sigmoid"):
  h = (pc - rc) - (pr - rr)  # chosen log-ratio minus rejected log-ratio
  z, e = beta * h, label_smoothing
  if loss_type == "sigmoid":
    return -(1 - e) * log_expit(z) - e * log_expit(-z)
  if loss_type == "hinge":
    return np.maximum(0.0, 1.0 - z)
  if loss_type == "ipo":
    return (h - 1.0 / (2.0 * beta)) ** 2
  return (-(1 - e) * log_expit(z) + e * log_expit(-z)) / (1 - 2 * e)


def ref_simpo(c, r, beta=2.0, gamma=0.5, label_smoothing=0.0):
  # TRL's arrangement: beta * (pi_logratios - gamma / beta).
  z = beta * ((c - r) - gamma / beta)
  return -(1 - label_smoothing) * log_expit(z) - label_smoothing * log_expit(-z)


def ref_orpo(c, r, beta=0.1):
  # log(p / (1 - p)) with 1 - p = -expm1(log p), exact in float64 even for p -> 1.
  odds_c = c - np.log(-np.expm1(c))
  odds_r = r - np.log(-np.expm1(r))
  return -beta * log_expit(odds_c - odds_r)


def ref_bt(c, r, margin=0.0, center_rewards_coefficient=0.0):
  return -log_expit(c - r - margin) + center_rewards_coefficient * (c + r) ** 2


def ref_kto(
  p,
  ref,
  labels,
  kp=None,
  kr=None,
  beta=0.1,
  desirable_weight=1.0,
  undesirable_weight=1.0,
  kl=None,
  where=None,
):
  if kl is not None:
    z0 = max(kl, 0.0)
  elif kp is None:
    z0 = 0.0
  else:
    m = np.ones(p.shape, bool) if where is None else where
    z0 = max(np.mean((kp - kr)[m]), 0.0) if m.any() else 0.0
  logratio = p - ref
  chosen = desirable_weight * (1.0 - expit(beta * (logratio - z0)))
  rejected = undesirable_weight * (1.0 - expit(beta * (z0 - logratio)))
  return np.where(labels, chosen, rejected)


def ref_kl(policy, reference, estimator):
  logr = reference - policy  # log(pi_ref / pi)
  if estimator == "k1":
    return -logr
  if estimator == "k2":
    return 0.5 * logr**2
  return np.expm1(logr) - logr


def ref_rlhf(rewards, policy, reference, beta=0.05, kl_estimator="k1", gradient=None):
  return -rewards + beta * ref_kl(policy, reference, kl_estimator)


def ref_sequence_log_probs(logits, tokens, mask, average=False):
  lp = np.take_along_axis(log_softmax(f64(logits), -1), tokens[..., None], -1)[..., 0]
  total = np.sum(np.where(mask, lp, 0.0), -1)
  if not average:
    return total
  count = mask.sum(-1)
  return np.where(count > 0, total / np.maximum(count, 1), 0.0)


# --------------------------------------------------------------------------
# Inputs: valid log-probabilities (<= 0), a reference near the policy.


def summed(rng, shape=(N,)):
  return (-rng.uniform(2.0, 40.0, shape)).astype(np.float32)


def near(rng, x, scale=3.0):
  return np.minimum(x + rng.normal(0.0, scale, x.shape), -0.1).astype(np.float32)


def averaged(rng, shape=(N,)):
  return (-rng.uniform(0.02, 4.0, shape)).astype(np.float32)


def make(name, seed=0, shape=(N,)):
  rng = np.random.default_rng(seed)
  if name == "dpo_loss":
    pc, pr = summed(rng, shape), summed(rng, shape)
    return pc, pr, near(rng, pc), near(rng, pr)
  if name in ("simpo_loss", "orpo_odds_ratio_loss"):
    return averaged(rng, shape), averaged(rng, shape)
  if name == "bradley_terry_loss":
    return (
      rng.normal(0.0, 3.0, shape).astype(np.float32),
      rng.normal(0.0, 3.0, shape).astype(np.float32),
      rng.uniform(0.0, 2.0, shape).astype(np.float32),
    )
  if name == "kto_loss":
    p = summed(rng, shape)
    labels = np.arange(np.prod(shape)).reshape(shape) % 3 != 0
    kp = summed(rng, shape)
    return p, near(rng, p), labels, kp, near(rng, kp, 1.0) - 1.0
  p = summed(rng, shape)
  return rng.normal(0.0, 2.0, shape).astype(np.float32), p, near(rng, p, 1.0)


REFS = {
  "dpo_loss": ref_dpo,
  "simpo_loss": ref_simpo,
  "orpo_odds_ratio_loss": ref_orpo,
  "bradley_terry_loss": ref_bt,
  "kto_loss": ref_kto,
  "rlhf_loss": ref_rlhf,
}

VALUE_CASES = [
  ("dpo_loss", {}),
  ("dpo_loss", {"beta": 0.5}),
  ("dpo_loss", {"label_smoothing": 0.2}),
  ("dpo_loss", {"beta": 0.3, "label_smoothing": 1.0}),
  ("dpo_loss", {"loss_type": "hinge", "beta": 0.2}),
  ("dpo_loss", {"loss_type": "ipo", "beta": 0.1}),
  ("dpo_loss", {"loss_type": "ipo", "beta": 2.0}),
  ("dpo_loss", {"loss_type": "robust", "label_smoothing": 0.2}),
  ("dpo_loss", {"loss_type": "robust"}),
  ("simpo_loss", {}),
  ("simpo_loss", {"beta": 2.5, "gamma": 1.375}),
  ("simpo_loss", {"beta": 0.1, "gamma": 0.5, "label_smoothing": 0.1}),
  ("orpo_odds_ratio_loss", {}),
  ("orpo_odds_ratio_loss", {"beta": 1.0}),
  ("bradley_terry_loss", {}),
  ("bradley_terry_loss", {"center_rewards_coefficient": 0.01}),
  ("kto_loss", {}),
  ("kto_loss", {"beta": 0.5, "desirable_weight": 1.33, "undesirable_weight": 0.7}),
  ("kto_loss", {"kl": 1.5}),
  ("kto_loss", {"kl": -2.0}),
  ("kto_loss", {"no_kl_inputs": True}),
  ("rlhf_loss", {}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k2"}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k3"}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k3", "gradient": "pathwise"}),
]


def _case_id(case):
  name, kw = case
  return name + "".join(f"-{k}={v}" for k, v in kw.items())


def _split(name, args, kw):
  """Arguments of the loss and of the reference for one case."""
  kw = dict(kw)
  if name == "kto_loss":
    if kw.pop("no_kl_inputs", False) or "kl" in kw:
      args = args[:3]
  return args, kw


@pytest.mark.parametrize("variant", ["plain", "where", "weights"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_value_matches_float64_reference(case, variant):
  name, kw = case
  args, kw = _split(name, make(name, seed=len(name) + len(kw)), kw)
  rng = np.random.default_rng(1)
  where = weights = None
  if variant == "where":
    where = rng.uniform(size=N) < 0.6
    where[0] = True
  if variant == "weights":
    weights = rng.uniform(0.5, 2.0, N).astype(np.float32)
  ref_kw = dict(kw, where=where) if name == "kto_loss" else kw
  values = REFS[name](*[f64(a) if a.dtype != bool else a for a in args], **ref_kw)
  fn = getattr(jaxobj, name)
  for reduction in ("none", "sum", "mean"):
    got = fn(*args, **kw, where=where, weights=weights, reduction=reduction)
    assert got.dtype == jnp.float32
    close(got, ref_reduce(values, where, weights, reduction))


def test_kto_per_row_losses_match_trl_split_form():
  # TRL concatenates weighted chosen losses then rejected ones and takes the
  # mean: the same numbers as the per-row form, in another order.
  p, ref, labels, kp, kr = map(f64, make("kto_loss", seed=3))
  labels = labels.astype(bool)
  z0 = max(np.mean(kp - kr), 0.0)
  chosen = 1.33 * (1 - expit(0.1 * ((p - ref)[labels] - z0)))
  rejected = 0.5 * (1 - expit(0.1 * (z0 - (p - ref)[~labels])))
  got = jaxobj.kto_loss(p, ref, labels, kp, kr, desirable_weight=1.33, undesirable_weight=0.5)
  close(got, np.mean(np.concatenate([chosen, rejected])))


def test_bradley_terry_matches_optax_logistic_loss():
  c, r, m = make("bradley_terry_loss", seed=4)
  want = optax.losses.sigmoid_binary_cross_entropy(c - r - m, jnp.ones(N))
  close(jaxobj.bradley_terry_loss(c, r, m, reduction="none"), np.asarray(want), rtol=2e-5)
  # A scalar margin is one number for every pair.
  close(jaxobj.bradley_terry_loss(c, r, 0.7, reduction="none"), ref_bt(f64(c), f64(r), 0.7))
  close(jaxobj.bradley_terry_loss(c, r, reduction="none"), ref_bt(f64(c), f64(r)))


def test_cdpo_is_cross_entropy_with_flipped_labels():
  # Conservative DPO = BCE of beta*h against the smoothed label 1 - eps.
  pc, pr, rc, rr = make("dpo_loss", seed=5)
  h = (f64(pc) - f64(pr)) - (f64(rc) - f64(rr))
  want = optax.losses.sigmoid_binary_cross_entropy(
    jnp.asarray(0.2 * h, jnp.float32), jnp.full(N, 0.75)
  )
  close(
    jaxobj.dpo_loss(pc, pr, rc, rr, beta=0.2, label_smoothing=0.25, reduction="none"),
    np.asarray(want),
    rtol=2e-5,
  )


# --------------------------------------------------------------------------
# Degenerate but legal inputs: finite, documented values.


@pytest.mark.parametrize(
  "loss_type,want",
  [
    ("sigmoid", lambda b: LOG2),
    ("robust", lambda b: LOG2),
    ("hinge", lambda b: 1.0),
    ("ipo", lambda b: 1.0 / (4 * b * b)),
  ],
)
def test_dpo_with_h_zero(loss_type, want):
  rng = np.random.default_rng(6)
  a, b = summed(rng), summed(rng)
  ls = 0.1 if loss_type == "robust" else 0.0
  for args in [
    (a, a, b, b),  # identical chosen and rejected answers
    (a, b, a, b),
  ]:  # policy equal to the reference
    kw = dict(beta=0.3, loss_type=loss_type, label_smoothing=ls)
    close(jaxobj.dpo_loss(*args, **kw, reduction="none"), np.full(N, want(0.3)))
    g = jax.grad(lambda x: jaxobj.dpo_loss(x, *args[1:], **kw))(args[0])
    assert np.all(np.isfinite(g))


def test_other_losses_with_identical_answers():
  rng = np.random.default_rng(7)
  a = averaged(rng)
  close(jaxobj.simpo_loss(a, a, gamma=0.5, reduction="none"), np.log1p(np.exp(0.5)))
  close(jaxobj.orpo_odds_ratio_loss(a, a, beta=0.3, reduction="none"), 0.3 * LOG2)
  close(jaxobj.bradley_terry_loss(a, a, reduction="none"), LOG2)
  close(
    jaxobj.kto_loss(a, a, a < -1.0, desirable_weight=2.0, reduction="none"),
    np.where(a < -1.0, 1.0, 0.5),
  )
  close(jaxobj.rlhf_loss(jnp.zeros(N), a, a, kl_estimator="k3", reduction="none"), 0.0)


def test_orpo_at_probability_one_is_finite():
  # Average log-probability 0 means p = 1 and infinite odds: floored, finite.
  lp = jnp.array([0.0, 0.0, -1e-30, -1e-8, 1e-7, -2.0])
  other = jnp.array([0.0, -0.5, -0.5, -0.5, -0.5, 0.0])
  values = jaxobj.orpo_odds_ratio_loss(lp, other, beta=1.0, reduction="none")
  assert np.all(np.isfinite(values))
  close(values[0], LOG2)  # both p = 1: equal odds
  # Values above 0 (rounding) count as 0; tiny negatives keep their exact odds.
  close(values[4], values[1])
  close(values[2:4], ref_orpo(np.array([-1e-30, -1e-8]), np.array([-0.5, -0.5]), 1.0))
  for arg in (0, 1):
    g = jax.grad(lambda a, b: jaxobj.orpo_odds_ratio_loss(a, b), argnums=arg)(lp, other)
    assert np.all(np.isfinite(g))


def test_orpo_log_odds_accurate_far_from_zero():
  # log(1 - p) for tiny p is -p, which a naive log(1 - exp(x)) loses in float32.
  c, r = jnp.array([-30.0, -20.0, -0.7]), jnp.array([-25.0, -0.69, -0.6])
  close(
    jaxobj.orpo_odds_ratio_loss(c, r, beta=1.0, reduction="none"),
    ref_orpo(f64(c), f64(r), 1.0),
    rtol=2e-6,
  )


def test_kto_reference_point_is_detached_clamped_and_masked():
  p, ref, labels, kp, kr = make("kto_loss", seed=8)
  # Detached: no gradient reaches the mismatched pairs.
  g = jax.grad(lambda a, b: jaxobj.kto_loss(p, ref, labels, a, b), argnums=(0, 1))(kp, kr)
  assert all(np.all(np.asarray(x) == 0.0) for x in g)
  # Clamped: a negative KL estimate gives z0 = 0, the same as no KL inputs.
  close(
    jaxobj.kto_loss(p, ref, labels, kr, kp + 1.0, reduction="none"),
    np.asarray(jaxobj.kto_loss(p, ref, labels, reduction="none")),
  )
  # The in-batch estimate equals the precomputed one passed as kl.
  z0 = float(np.mean(f64(kp) - f64(kr)))
  assert z0 > 0
  close(
    jaxobj.kto_loss(p, ref, labels, kp, kr, reduction="none"),
    np.asarray(jaxobj.kto_loss(p, ref, labels, kl=z0, reduction="none")),
    rtol=2e-5,
  )
  # Masked rows are left out of z0 (as if sliced out), weights are not.
  where = np.arange(N) % 4 != 1
  z0m = float(np.mean((f64(kp) - f64(kr))[where]))
  close(
    jaxobj.kto_loss(p, ref, labels, kp, kr, where=where, reduction="none"),
    np.where(where, ref_kto(f64(p), f64(ref), labels, kl=z0m), 0.0),
  )
  w = np.linspace(0.5, 2.0, N)
  close(
    jaxobj.kto_loss(p, ref, labels, kp, kr, weights=w, reduction="none"),
    w * ref_kto(f64(p), f64(ref), labels, f64(kp), f64(kr)),
  )


def test_kto_reference_point_under_vmap_over_kl():
  p, ref, labels, _, _ = make("kto_loss", seed=9)
  kls = jnp.array([0.0, 0.5, 3.0])
  got = jax.vmap(lambda k: jaxobj.kto_loss(p, ref, labels, kl=k))(kls)
  close(got, [ref_reduce(ref_kto(f64(p), f64(ref), labels, kl=float(k))) for k in kls])


# --------------------------------------------------------------------------
# RLHF objective: estimators and the two gradients.


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_rlhf_gradients_closed_form(estimator):
  r, p, ref = make("rlhf_loss", seed=10)
  beta = 0.3
  d = f64(ref) - f64(p)
  dk = {"k1": np.ones_like(d), "k2": -d, "k3": -np.expm1(d)}[estimator]  # dk/dlog pi
  value = ref_rlhf(f64(r), f64(p), f64(ref), beta, estimator)
  for gradient, want in [("pathwise", beta * dk), ("score_function", beta * dk + value)]:
    f = lambda x: jaxobj.rlhf_loss(
      r, x, ref, beta=beta, kl_estimator=estimator, gradient=gradient, reduction="sum"
    )
    close(f(p), value.sum(), rtol=2e-6)
    close(jax.grad(f)(p), want, rtol=2e-5, atol=1e-5)
    close(
      jax.grad(lambda x: jaxobj.rlhf_loss(x, p, ref, gradient=gradient, reduction="sum"))(r),
      -np.ones(N),
    )


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_rlhf_score_function_gradient_is_gradient_of_the_expectation(estimator):
  # A categorical policy over 6 answers: weighting every answer by its
  # (detached) probability makes the sample mean the exact expectation, so the
  # score-function gradient must equal the gradient of
  # J(theta) = E_pi[-r] + beta * KL(pi || pi_ref) exactly (k1, k3 are unbiased).
  rng = np.random.default_rng(11)
  theta, ref_logp, r = rng.normal(size=6), log_softmax(rng.normal(size=6)), rng.normal(size=6)
  beta = 0.4
  with jax.enable_x64(True):
    theta, ref_logp, r = (jnp.asarray(a, jnp.float64) for a in (theta, ref_logp, r))

    def surrogate(t):
      logp = jax.nn.log_softmax(t)
      probs = jax.lax.stop_gradient(jnp.exp(logp))
      return jaxobj.rlhf_loss(
        r, logp, ref_logp, beta=beta, kl_estimator=estimator, weights=probs, reduction="sum"
      )

    def exact(t):
      logp = jax.nn.log_softmax(t)
      pi = jnp.exp(logp)
      return -jnp.sum(pi * r) + beta * jnp.sum(pi * (logp - ref_logp))

    close(surrogate(theta), exact(theta), rtol=1e-12, atol=1e-12)
    close(jax.grad(surrogate)(theta), np.asarray(jax.grad(exact)(theta)), rtol=1e-10, atol=1e-12)
    # The pathwise gradient of the same value is not the policy gradient.
    pathwise = jax.grad(
      lambda t: jaxobj.rlhf_loss(
        r,
        jax.nn.log_softmax(t),
        ref_logp,
        beta=beta,
        kl_estimator=estimator,
        gradient="pathwise",
        weights=jax.lax.stop_gradient(jax.nn.softmax(t)),
        reduction="sum",
      )
    )(theta)
    assert not np.allclose(pathwise, jax.grad(exact)(theta), atol=1e-3)


def test_rlhf_k3_is_exact_near_zero_and_overflows_without_nan():
  p = jnp.array([-10.0, -10.0, -10.0, -10.0, -10.0, -200.0])
  ref = p + jnp.array([1e-6, -3e-4, 0.3, -0.49, 2.0, 0.0])
  ref = ref.at[-1].set(-5.0)  # log(pi_ref / pi) = 195: exp overflows float32
  with jax.enable_x64(True):
    d = np.asarray(jnp.asarray(ref, jnp.float64) - jnp.asarray(p, jnp.float64))
  values = jaxobj.rlhf_loss(jnp.zeros(6), p, ref, beta=1.0, kl_estimator="k3", reduction="none")
  close(values[:5], np.expm1(d[:5]) - d[:5], rtol=1e-5, atol=0)
  assert np.isposinf(values[5])
  # Masked, the overflowing sample leaves the value and the gradient finite.
  where = np.arange(6) < 5
  f = lambda x: jaxobj.rlhf_loss(jnp.zeros(6), x, ref, kl_estimator="k3", where=where)
  assert np.isfinite(float(f(p)))
  assert np.all(np.isfinite(jax.grad(f)(p)))


# --------------------------------------------------------------------------
# Gradients: check_grads in float64, over inputs and hyperparameters.


GRAD_CASES = [
  ("dpo_loss", {"beta": 0.2, "label_smoothing": 0.1}),
  ("dpo_loss", {"loss_type": "hinge", "beta": 0.05}),
  ("dpo_loss", {"loss_type": "ipo", "beta": 0.5}),
  ("dpo_loss", {"loss_type": "robust", "label_smoothing": 0.3}),
  ("simpo_loss", {"beta": 2.0, "gamma": 0.5, "label_smoothing": 0.1}),
  ("orpo_odds_ratio_loss", {"beta": 0.5}),
  ("bradley_terry_loss", {"center_rewards_coefficient": 0.1}),
  ("kto_loss", {"beta": 0.3, "desirable_weight": 1.2, "undesirable_weight": 0.8}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k1", "gradient": "pathwise"}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k2", "gradient": "pathwise"}),
  ("rlhf_loss", {"beta": 0.2, "kl_estimator": "k3", "gradient": "pathwise"}),
]
FLOAT_HYPER = (
  "beta",
  "label_smoothing",
  "gamma",
  "center_rewards_coefficient",
  "desirable_weight",
  "undesirable_weight",
)


@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_check_grads_float64(case):
  name, kw = case
  fn = getattr(jaxobj, name)
  args = make(name, seed=12)
  # KTO's reference point is detached by design: perturbing the mismatched
  # pairs moves the value but not the gradient, so they are held fixed.
  floats = [0, 1] if name == "kto_loss" else list(range(len(args)))
  hyper = {k: v for k, v in kw.items() if k in FLOAT_HYPER}
  fixed = {k: v for k, v in kw.items() if k not in FLOAT_HYPER}
  weights = np.random.default_rng(12).uniform(0.5, 2.0, N)
  with jax.enable_x64(True):

    def f(xs, hs):
      full = list(args)
      for i, x in zip(floats, xs):
        full[i] = x
      return fn(*full, **hs, **fixed, weights=weights)

    xs = [f64(args[i]) for i in floats]
    hs = {k: np.float64(v) for k, v in hyper.items()}
    assert f(xs, hs).dtype == jnp.float64
    check_grads(f, (xs, hs), order=1, modes=["rev"], eps=1e-4)


# --------------------------------------------------------------------------
# Extreme inputs: every loss type, every input scaled.


@pytest.mark.parametrize("case", VALUE_CASES, ids=_case_id)
def test_extreme_log_probs_are_finite(case):
  name, kw = case
  args, kw = _split(name, make(name, seed=13), kw)
  fn = getattr(jaxobj, name)
  floats = [i for i, a in enumerate(args) if a.dtype != bool]
  if name == "rlhf_loss" and kw.get("kl_estimator") in ("k2", "k3"):
    scales = [1e4, 1.0, 1.0]  # k2, k3 of a 1e4-nat log-ratio overflow by design
  else:
    scales = [1e4] * len(args)
  for i in floats:
    big = list(args)
    big[i] = args[i] * np.float32(scales[i])
    assert np.isfinite(float(fn(*big, **kw))), i
    for j in floats:
      g = jax.grad(lambda x: fn(*big[:j], x, *big[j + 1 :], **kw))(big[j])
      assert np.all(np.isfinite(g)), (i, j)


# --------------------------------------------------------------------------
# sequence_log_probs.


T, V = 5, 7


def make_tokens(seed=14, batch=(3,)):
  rng = np.random.default_rng(seed)
  logits = (2.0 * rng.standard_normal(batch + (T, V))).astype(np.float32)
  tokens = rng.integers(0, V, batch + (T,)).astype(np.int32)
  mask = rng.uniform(size=batch + (T,)) < 0.7
  mask[..., 0] = True
  return logits, tokens, mask


@pytest.mark.parametrize("average", [False, True])
def test_sequence_log_probs_matches_reference(average):
  logits, tokens, mask = make_tokens()
  mask[2] = False  # an empty sequence: 0, not NaN
  got = sequence_log_probs(logits, tokens, where=mask, average=average)
  assert got.shape == (3,) and got.dtype == jnp.float32
  close(got, ref_sequence_log_probs(logits, tokens, mask, average), rtol=2e-6)
  assert float(got[2]) == 0.0
  full = sequence_log_probs(logits, tokens, average=average)
  close(full, ref_sequence_log_probs(logits, tokens, np.ones_like(mask), average), rtol=2e-6)
  # ignore_index joins the mask (TRL's -100 labels).
  labels = np.where(mask, tokens, -100)
  close(sequence_log_probs(logits, labels, ignore_index=-100, average=average), got)
  # Extra batch axes.
  l2, t2, m2 = make_tokens(batch=(2, 3))
  close(
    sequence_log_probs(l2, t2, where=m2, average=average),
    ref_sequence_log_probs(l2, t2, m2, average),
    rtol=2e-6,
  )


def test_sequence_log_probs_masked_garbage_and_gradients():
  logits, tokens, mask = make_tokens(seed=15)
  poisoned = np.where(mask[..., None], logits, np.nan).astype(np.float32)
  bad_tokens = np.where(mask, tokens, 10**6).astype(np.int32)
  for average in (False, True):
    f = lambda x: jnp.sum(sequence_log_probs(x, bad_tokens, where=mask, average=average))
    close(f(poisoned), np.sum(ref_sequence_log_probs(logits, tokens, mask, average)), rtol=2e-6)
    g = np.asarray(jax.grad(f)(poisoned))
    assert np.all(np.isfinite(g)) and np.all(g[~mask] == 0.0)
    # d log p(y) / d logits = onehot(y) - softmax, per unmasked token.
    want = (np.eye(V)[tokens] - np.exp(log_softmax(f64(logits), -1))) * mask[..., None]
    if average:
      want = want / mask.sum(-1)[:, None, None]
    close(g, want, atol=2e-6)
  with jax.enable_x64(True):
    check_grads(
      lambda x: sequence_log_probs(x, tokens, where=mask, average=True),
      (f64(logits),),
      order=1,
      modes=["rev"],
    )


def test_sequence_log_probs_masked_vocabulary_and_bad_ids():
  logits, tokens, _ = make_tokens(seed=16)
  vocab_mask = (np.arange(V) >= V - 2) & (np.arange(V) != tokens[..., None])
  masked = np.where(vocab_mask, -np.inf, logits).astype(np.float32)
  got = sequence_log_probs(masked, tokens)
  close(got, ref_sequence_log_probs(masked, tokens, np.ones(tokens.shape, bool)), rtol=2e-6)
  assert np.all(np.isfinite(jax.grad(lambda x: jnp.sum(sequence_log_probs(x, tokens)))(masked)))
  bad = tokens.copy()
  bad[1, 2] = V
  with pytest.raises(ValueError, match=r"tokens must lie in \[0, V\)"):  # when concrete
    sequence_log_probs(logits, bad)
  out = np.asarray(jax.jit(sequence_log_probs)(logits, bad))  # under jit: NaN
  assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))


def test_dpo_end_to_end_from_token_logits():
  # Token logits -> summed log-probs -> DPO, against the float64 pipeline.
  # Policy logits for the chosen (0) and rejected (1) answers, then the
  # reference's for the same tokens (2, 3).
  parts = [make_tokens(seed=s, batch=(4,)) for s in (20, 21, 22, 23)]
  logps = [
    sequence_log_probs(l, parts[i % 2][1], where=parts[i % 2][2])
    for i, (l, _, _) in enumerate(parts)
  ]
  want = [
    ref_sequence_log_probs(l, parts[i % 2][1], parts[i % 2][2]) for i, (l, _, _) in enumerate(parts)
  ]
  close(jaxobj.dpo_loss(*logps, beta=0.5), ref_dpo(*want, beta=0.5).mean(), rtol=2e-6)


# --------------------------------------------------------------------------
# Bad input: clear errors naming the argument.


def test_dpo_shape_errors_name_the_pair():
  pc, pr, rc, rr = make("dpo_loss")
  names = ["policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps"]
  for i, name in enumerate(names, start=1):
    args = [pc, pr, rc, rr]
    args[i] = args[i][:-1]
    with pytest.raises(ValueError, match=rf"policy_chosen_logps and {name}.*\(8,\).*\(7,\)"):
      jaxobj.dpo_loss(*args)
  with pytest.raises(ValueError, match=r"reference_chosen_logps\.shape=\(8, 1\)"):
    jaxobj.dpo_loss(pc, pr, rc[:, None], rr)


@pytest.mark.parametrize(
  "call,match",
  [
    (lambda a: jaxobj.dpo_loss(*a, loss_type="kto"), "loss_type='kto'.*'sigmoid'"),
    (lambda a: jaxobj.dpo_loss(*a, beta=0.0), "beta"),
    (lambda a: jaxobj.dpo_loss(*a, label_smoothing=1.5), "label_smoothing"),
    (lambda a: jaxobj.dpo_loss(*a, loss_type="robust", label_smoothing=0.5), "label_smoothing"),
    (
      lambda a: jaxobj.dpo_loss(*a, loss_type="ipo", label_smoothing=0.1),
      "label_smoothing=0.1 has no meaning for loss_type='ipo'",
    ),
    (lambda a: jaxobj.dpo_loss(*a, loss_type="hinge", label_smoothing=0.1), "label_smoothing"),
  ],
  ids=["loss_type", "beta", "smoothing", "robust-smoothing", "ipo-smoothing", "hinge-smoothing"],
)
def test_dpo_bad_hyperparameters(call, match):
  with pytest.raises(ValueError, match=match):
    call(make("dpo_loss"))


def test_bad_inputs_of_the_other_losses():
  c, r = make("simpo_loss")
  with pytest.raises(ValueError, match=r"rejected_logps.*\(8,\).*\(4, 2\)"):
    jaxobj.simpo_loss(c, r.reshape(4, 2))
  with pytest.raises(ValueError, match="beta"):
    jaxobj.simpo_loss(c, r, beta=-1.0)
  with pytest.raises(ValueError, match="beta"):
    jaxobj.orpo_odds_ratio_loss(c, r, beta=-0.1)
  with pytest.raises(TypeError, match="rejected_logps"):
    jaxobj.orpo_odds_ratio_loss(c, r.astype(np.int32))
  cr, rr, m = make("bradley_terry_loss")
  with pytest.raises(ValueError, match=r"margin.*\(8,\).*\(4,\)"):
    jaxobj.bradley_terry_loss(cr, rr, m[:4])
  with pytest.raises(ValueError, match="center_rewards_coefficient"):
    jaxobj.bradley_terry_loss(cr, rr, center_rewards_coefficient=-1.0)
  p, ref, labels, kp, kr = make("kto_loss")
  with pytest.raises(ValueError, match=r"labels.*\(8,\).*\(8, 1\)"):
    jaxobj.kto_loss(p, ref, labels[:, None])
  with pytest.raises(ValueError, match=r"reference_kl_logps.*\(8,\).*\(7,\)"):
    jaxobj.kto_loss(p, ref, labels, kp, kr[:-1])
  with pytest.raises(ValueError, match="go together"):
    jaxobj.kto_loss(p, ref, labels, kp)
  with pytest.raises(ValueError, match="not both"):
    jaxobj.kto_loss(p, ref, labels, kp, kr, kl=0.1)
  with pytest.raises(ValueError, match="undesirable_weight"):
    jaxobj.kto_loss(p, ref, labels, undesirable_weight=-1.0)
  rw, pl, rl = make("rlhf_loss")
  with pytest.raises(ValueError, match="kl_estimator='k4'.*'k3'"):
    jaxobj.rlhf_loss(rw, pl, rl, kl_estimator="k4")
  with pytest.raises(ValueError, match="gradient='reinforce'"):
    jaxobj.rlhf_loss(rw, pl, rl, gradient="reinforce")
  with pytest.raises(ValueError, match=r"reference_logps.*\(8,\).*\(8, 1\)"):
    jaxobj.rlhf_loss(rw, pl, rl[:, None])


def test_sequence_log_probs_bad_inputs():
  logits, tokens, mask = make_tokens()
  with pytest.raises(ValueError, match=r"tokens\.shape must equal logits\.shape\[:-1\]"):
    sequence_log_probs(logits, tokens[:, :-1])
  with pytest.raises(TypeError, match="tokens"):
    sequence_log_probs(logits, tokens.astype(np.float32))
  with pytest.raises(TypeError, match="logits"):
    sequence_log_probs(logits.astype(np.int32), tokens)
  with pytest.raises(ValueError, match="sequence axis"):
    sequence_log_probs(logits[0, 0], tokens[0, 0])
  with pytest.raises(ValueError, match=r"where\.shape=\(3,\)"):
    sequence_log_probs(logits, tokens, where=mask[:, 0])


# --------------------------------------------------------------------------
# TRL's further DPO loss types and BCO. One compiled call covers every case
# (hyperparameters are traced arrays in it); the float64 references are
# written from each paper's formula as TRL documents it.

SORTED_TYPES = ("aot", "aot_pair")
# (case id, loss_type or "bco_loss", hyperparameters)
TRL_CASES = [
  ("exo_pair", "exo_pair", {"beta": 0.2, "label_smoothing": 0.05}),
  ("exo_pair-eps0", "exo_pair", {"beta": 0.1, "label_smoothing": 0.0}),
  ("nca_pair", "nca_pair", {"beta": 0.1}),
  ("bco_pair", "bco_pair", {"beta": 0.1, "reward_shift": 0.3}),
  ("sppo_hard", "sppo_hard", {"beta": 0.5}),
  ("aot", "aot", {"beta": 0.1, "label_smoothing": 0.1}),
  ("aot_pair", "aot_pair", {"beta": 0.2}),
  ("apo_zero", "apo_zero", {"beta": 0.1}),
  ("apo_down", "apo_down", {"beta": 0.3}),
  ("discopop", "discopop", {"beta": 0.1, "discopop_tau": 0.05}),
  ("discopop-tau0.5", "discopop", {"beta": 0.2, "discopop_tau": 0.5}),
  ("bco_loss", "bco_loss", {"beta": 0.2, "reward_shift": -0.4}),
]


def ref_aot(first, second, beta, label_smoothing, where):
  """Sorted unmasked values of both, paired by rank; zeros for the masked count."""
  d = np.sort(first[where]) - np.sort(second[where])
  values = -(1 - label_smoothing) * log_expit(beta * d) - label_smoothing * log_expit(-beta * d)
  return np.concatenate([values, np.zeros(first.size - d.size)])


def ref_trl(loss_type, args, where, beta=0.1, label_smoothing=0.0, reward_shift=0.0, **kw):
  if loss_type == "bco_loss":
    p, ref, labels = args
    r = beta * (p - ref)
    return np.where(labels, -log_expit(r - reward_shift), -log_expit(reward_shift - r))
  pc, pr, rc, rr = args
  a, b = pc - rc, pr - rr  # chosen and rejected log-ratios
  z = beta * (a - b)
  if loss_type == "exo_pair":  # KL(Bernoulli(sigma(z)) || Bernoulli(1 - eps))
    eps, p = label_smoothing or 1e-3, expit(z)
    return p * np.log(p / (1 - eps)) + (1 - p) * np.log((1 - p) / eps)
  if loss_type == "nca_pair":
    return -log_expit(beta * a) - 0.5 * log_expit(-beta * a) - 0.5 * log_expit(-beta * b)
  if loss_type == "bco_pair":
    return -log_expit(beta * a - reward_shift) - log_expit(-(beta * b - reward_shift))
  if loss_type == "sppo_hard":
    return (a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2
  if loss_type == "aot":
    return ref_aot(pc - pr, rc - rr, beta, label_smoothing, where)
  if loss_type == "aot_pair":
    return ref_aot(a, b, beta, label_smoothing, where)
  if loss_type == "apo_zero":
    return 1 - expit(beta * a) + expit(beta * b)
  if loss_type == "apo_down":
    return expit(beta * a) + 1 - expit(z)
  assert loss_type == "discopop"
  m = expit(z / kw["discopop_tau"])
  return -log_expit(z) * (1 - m) + np.exp(-z) * m


def trl_data(seed):
  pc, pr, rc, rr = make("dpo_loss", seed=seed)
  rng = np.random.default_rng(seed)
  p = summed(rng)
  bco = (p, near(rng, p), rng.uniform(size=N) < 0.5)
  return (pc, pr, rc, rr), bco


def _trl_case(loss_type, dpo, bco, hyper, **kw):
  if loss_type == "bco_loss":
    return jaxobj.bco_loss(*bco, **hyper, **kw)
  if loss_type in SORTED_TYPES:
    kw.pop("weights")
  return jaxobj.dpo_loss(*dpo, loss_type=loss_type, **hyper, **kw)


@jax.jit
def trl_values(dpo, bco, hypers, where, weights):
  """Every case, every reduction; and bco_pair against bco_loss on the same rows."""
  out = {}
  for cid, loss_type, _ in TRL_CASES:
    out[cid] = {
      r: _trl_case(loss_type, dpo, bco, hypers[cid], where=where, weights=weights, reduction=r)
      for r in ("none", "sum", "mean")
    }
  # A pair's two BCO terms are bco_loss of its chosen (desirable) and rejected rows.
  pc, pr, rc, rr = dpo
  rows = (jnp.concatenate([pc, pr]), jnp.concatenate([rc, rr]), jnp.arange(2 * N) < N)
  perm = np.random.default_rng(22).permutation(N)
  aot = dict(loss_type="aot", **hypers["aot"], reduction="sum")
  # The reference's rows in another order than the policy's (all rows kept).
  out["aot_permuted"] = jaxobj.dpo_loss(pc, pr, rc[perm], rr[perm], **aot)
  out["aot_2d"] = jaxobj.dpo_loss(
    *[x.reshape(2, N // 2) for x in dpo], where=where.reshape(2, N // 2), **aot
  )
  out["bco_rows"] = jaxobj.bco_loss(
    *rows,
    **hypers["bco_pair"],
    where=jnp.concatenate([where, where]),
    weights=jnp.concatenate([weights, weights]),
    reduction="sum",
  )
  return out


def _hypers(dtype=np.float32):
  return {cid: {k: dtype(v) for k, v in kw.items()} for cid, _, kw in TRL_CASES}


def test_trl_loss_types_and_bco_match_float64_references():
  dpo, bco = trl_data(20)
  rng = np.random.default_rng(21)
  mask = rng.uniform(size=N) < 0.6
  mask[:2] = True, False
  ones, w = np.ones(N, np.float32), rng.uniform(0.5, 2.0, N).astype(np.float32)
  for where, weights in [(np.ones(N, bool), ones), (mask, ones), (np.ones(N, bool), w)]:
    got = trl_values(dpo, bco, _hypers(), where, weights)
    for cid, loss_type, kw in TRL_CASES:
      args = tuple(
        f64(a) if a.dtype != bool else a for a in (bco if loss_type == "bco_loss" else dpo)
      )
      values = ref_trl(loss_type, args, where, **kw)
      if loss_type in SORTED_TYPES:  # ranked pairs: the mask is applied by ranking, no weights
        want = {r: ref_reduce(values, np.arange(N) < where.sum(), None, r) for r in got[cid]}
      else:
        want = {r: ref_reduce(values, where, weights, r) for r in got[cid]}
      for r in got[cid]:
        assert got[cid][r].dtype == jnp.float32
        close(got[cid][r], want[r], rtol=2e-5)
    close(got["bco_rows"], got["bco_pair"]["sum"], rtol=1e-5)
    # AOT sees the two distributions only: rows reordered or reshaped give the same loss.
    if where.all():
      close(got["aot_permuted"], got["aot"]["sum"], rtol=1e-6)
    close(got["aot_2d"], got["aot"]["sum"], rtol=1e-6)
  # EXO's epsilon 0 means 1e-3, as TRL documents.
  plain = trl_values(dpo, bco, _hypers(), np.ones(N, bool), ones)
  close(plain["exo_pair-eps0"]["none"], ref_trl("exo_pair", tuple(map(f64, dpo)), None, 0.1, 1e-3))


def _trl_inputs(loss_type, dpo, bco):
  return bco[:2] if loss_type == "bco_loss" else dpo


def _trl_with(loss_type, dpo, bco, xs, hyper, **kw):
  """The case with its float inputs replaced by ``xs``."""
  if loss_type == "bco_loss":
    return _trl_case(loss_type, dpo, (*xs, bco[2]), hyper, **kw)
  return _trl_case(loss_type, xs, bco, hyper, **kw)


def _differentiated(cid, kw):
  # EXO's epsilon 0 is a switch to 1e-3, not a point to differentiate at.
  return {k: v for k, v in kw.items() if not (cid == "exo_pair-eps0" and k == "label_smoothing")}


@jax.jit
def trl_grads(dpo, bco, hypers, where, weights):
  out = {}
  for cid, loss_type, kw in TRL_CASES:
    fixed = {k: v for k, v in hypers[cid].items() if k not in _differentiated(cid, kw)}

    def f(xs, hs, loss_type=loss_type, fixed=fixed):
      return _trl_with(
        loss_type, dpo, bco, xs, {**hs, **fixed}, where=where, weights=weights, reduction="sum"
      )

    hs = {k: v for k, v in hypers[cid].items() if k in _differentiated(cid, kw)}
    out[cid] = jax.grad(f, argnums=(0, 1))(_trl_inputs(loss_type, dpo, bco), hs)
  return out


def test_trl_loss_types_and_bco_gradients_match_finite_differences():
  """Float64 gradients in every input and hyperparameter (masked, weighted) against
  central differences of the NumPy references."""
  dpo, bco = trl_data(23)
  where = np.arange(N) % 5 != 2
  weights = np.random.default_rng(24).uniform(0.5, 2.0, N)
  dpo, bco = tuple(map(f64, dpo)), (f64(bco[0]), f64(bco[1]), bco[2])
  with jax.enable_x64(True):
    got = trl_grads(dpo, bco, _hypers(np.float64), where, weights)
  step = 1e-5
  for cid, loss_type, kw in TRL_CASES:
    rank_mask = np.arange(N) < where.sum()
    sorted_type = loss_type in SORTED_TYPES

    def ref(xs, hs, loss_type=loss_type, kw=kw, sorted_type=sorted_type):
      args = (*xs, bco[2]) if loss_type == "bco_loss" else xs
      values = ref_trl(loss_type, args, where, **{**kw, **hs})
      if sorted_type:
        return ref_reduce(values, rank_mask, None, "sum")
      return ref_reduce(values, where, weights, "sum")

    xs, hs = _trl_inputs(loss_type, dpo, bco), _differentiated(cid, kw)
    g_xs, g_hs = got[cid]
    for i, x in enumerate(xs):
      want = np.zeros(N)
      for j in range(N):
        e = np.zeros(N)
        e[j] = step
        up, down = list(xs), list(xs)
        up[i], down[i] = x + e, x - e
        want[j] = (ref(up, hs) - ref(down, hs)) / (2 * step)
      close(g_xs[i], want, rtol=1e-6, atol=1e-8)
      assert np.all(np.asarray(g_xs[i])[~where] == 0.0), (cid, i)  # masked rows: exactly 0
    for k, v in hs.items():
      want = (ref(xs, {**hs, k: v + step}) - ref(xs, {**hs, k: v - step})) / (2 * step)
      close(g_hs[k], want, rtol=1e-6, atol=1e-8)


@jax.jit
def trl_value_and_grads(dpo, bco, hypers):
  out = {}
  for cid, loss_type, _ in TRL_CASES:
    xs = _trl_inputs(loss_type, dpo, bco)
    out[cid] = jax.value_and_grad(
      lambda xs, loss_type=loss_type, h=hypers[cid]: _trl_with(
        loss_type, dpo, bco, xs, h, weights=None
      )
    )(xs)
  return out


def test_trl_loss_types_and_bco_are_finite_at_extreme_log_probs():
  """Log-ratio gaps of 1e5 nats either way (each input scaled by 1e4, then all):
  finite values and gradients, DiscoPOP's exponential included."""
  dpo, bco = trl_data(25)
  big = np.float32(1e4)
  scaled = [(dpo[:i] + (dpo[i] * big,) + dpo[i + 1 :], bco) for i in range(4)]
  scaled += [(dpo, (bco[0] * big, bco[1], bco[2])), (dpo, (bco[0], bco[1] * big, bco[2]))]
  scaled.append((tuple(x * big for x in dpo), (bco[0] * big, bco[1] * big, bco[2])))
  for k, (d, b) in enumerate(scaled):
    for cid, (value, grads) in trl_value_and_grads(d, b, _hypers()).items():
      assert np.isfinite(float(value)), (k, cid)
      assert all(np.all(np.isfinite(g)) for g in grads), (k, cid)


@pytest.mark.parametrize(
  "kw,match",
  [
    ({"loss_type": "exo_pair", "label_smoothing": 1.0}, "label_smoothing"),
    ({"loss_type": "aot", "label_smoothing": 1.5}, "label_smoothing"),
    (
      {"loss_type": "nca_pair", "label_smoothing": 0.1},
      "label_smoothing=0.1 has no meaning for loss_type='nca_pair'",
    ),
    ({"loss_type": "discopop", "discopop_tau": 0.0}, r"discopop_tau.*0\.0"),
    ({"loss_type": "sppo_hard", "beta": -1.0}, "beta"),
    ({"loss_type": "aot", "weights": np.ones(N)}, "weights cannot be used with loss_type='aot'"),
    ({"loss_type": "aot_pair", "reduction": "sum_and_count"}, "sum_and_count.*split batch"),
    ({"loss_type": "kto_pair"}, "loss_type='kto_pair'.*'discopop'"),
  ],
  ids=["exo-eps", "aot-eps", "nca-eps", "tau", "beta", "aot-weights", "aot-split", "type"],
)
def test_trl_loss_types_bad_arguments(kw, match):
  with pytest.raises(ValueError, match=match):
    jaxobj.dpo_loss(*make("dpo_loss"), **kw)


def test_bco_loss_bad_arguments():
  p, ref, labels = trl_data(26)[1]
  with pytest.raises(ValueError, match=r"labels.*\(8,\).*\(8, 1\)"):
    jaxobj.bco_loss(p, ref, labels[:, None])
  with pytest.raises(ValueError, match=r"policy_logps and reference_logps.*\(8,\).*\(7,\)"):
    jaxobj.bco_loss(p, ref[:-1], labels)
  with pytest.raises(ValueError, match="beta"):
    jaxobj.bco_loss(p, ref, labels, beta=0.0)
  with pytest.raises(TypeError, match="reference_logps"):
    jaxobj.bco_loss(p, ref.astype(np.int32), labels)


def test_aot_is_refused_as_a_split_objective_term_and_row_types_are_not():
  from jaxobj import objective as jo

  data = {"x": tuple(jnp.asarray(a) for a in make("dpo_loss"))}
  paths = [f"x.{k}" for k in range(4)]
  with pytest.raises(ValueError, match="sum_and_count"):
    jo.term(jaxobj.dpo_loss, *paths, loss_type="aot").apply({}, **data)
  value, _ = jo.term(jaxobj.dpo_loss, *paths, loss_type="bco_pair", reward_shift=0.1).apply(
    {}, **data
  )
  close(value, jaxobj.dpo_loss(*data["x"], loss_type="bco_pair", reward_shift=0.1), rtol=1e-6)


def test_fused_dpo_takes_the_trl_loss_types_and_their_hyperparameters():
  """fused_linear_dpo_loss forwards reward_shift and discopop_tau; AOT's rows
  (masked ones too) are ranked over the whole batch as unfused."""
  rng = np.random.default_rng(27)  # NumPy inputs: no PRNG compiles
  ch, rh = rng.normal(size=(4, 5, 8)).astype(np.float32), rng.normal(size=(4, 3, 8))
  rh, kernel = rh.astype(np.float32), rng.normal(size=(8, 11)).astype(np.float32)
  cy = np.array([[-100, 2, 3, 4, 5]] * 4, np.int32)
  ry = rng.integers(0, 11, (4, 3)).astype(np.int32)
  ref_c, ref_r = np.float32([-9.0, -5.0, -12.0, -7.0]), np.float32([-10.0, -12.0, -6.0, -8.0])
  where = np.array([True, True, False, True])
  kws = [
    {"loss_type": "bco_pair", "reward_shift": 0.7},
    {"loss_type": "discopop", "discopop_tau": 0.3, "beta": 0.5},
    {"loss_type": "aot", "label_smoothing": 0.1},
  ]

  @jax.jit
  def both(ch, rh, kernel):
    pc, pr = sequence_log_probs(ch @ kernel, cy), sequence_log_probs(rh @ kernel, ry)
    return [
      (
        jaxobj.fused_linear_dpo_loss(ch, cy, rh, ry, ref_c, ref_r, kernel, **kw, where=where),
        jaxobj.dpo_loss(pc, pr, ref_c, ref_r, **kw, where=where),
      )
      for kw in kws
    ]

  for fused, unfused in both(ch, rh, kernel):
    close(fused, unfused, rtol=1e-5)
  with pytest.raises(ValueError, match="weights cannot be used"):  # at trace time
    jax.eval_shape(
      lambda: jaxobj.fused_linear_dpo_loss(
        ch, cy, rh, ry, ref_c, ref_r, kernel, loss_type="aot_pair", weights=jnp.ones(4)
      )
    )
