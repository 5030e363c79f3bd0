"""Values and gradients of jaxobj.losses.distillation.

References are float64 NumPy/SciPy implementations written from the
definitions (the forward and reverse KL, GKD's generalized Jensen–Shannon
divergence with the mixture formed in probability space); the fused loss is
checked against the unfused one of the same logits, values and gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from references import close, f64, ref_reduce
from scipy.special import rel_entr, softmax

import jaxobj

N, V = 6, 9
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


# --------------------------------------------------------------------------
# float64 references, one value per row.


def ref_divergence(s, t, divergence="jsd", beta=0.5, temperature=1.0):
  q = softmax(f64(s) / temperature, axis=-1)  # student
  p = softmax(f64(t) / temperature, axis=-1)  # teacher
  if divergence == "forward_kl":
    return rel_entr(p, q).sum(-1)
  if divergence == "reverse_kl":
    return rel_entr(q, p).sum(-1)
  m = beta * p + (1.0 - beta) * q
  # rel_entr(0, 0) = 0: a weight of 0 drops its term, as in the limit.
  return beta * rel_entr(p, m).sum(-1) + (1.0 - beta) * rel_entr(q, m).sum(-1)


def logits(seed, shape=(N, V), scale=2.0):
  rng = np.random.default_rng(seed)
  return tuple((scale * rng.standard_normal(shape)).astype(np.float32) for _ in range(2))


def masks(seed, shape=(N,)):
  rng = np.random.default_rng(seed)
  where = rng.uniform(size=shape) < 0.7
  where.flat[0] = True
  return where, rng.uniform(0.5, 2.0, shape).astype(np.float32)


@jax.jit
def _reductions(s, t, where, weights, beta, temperature):
  """Every divergence and reduction of the unfused loss in one compile."""
  out = {}
  for d in DIVERGENCES:
    kw = dict(divergence=d, beta=beta, temperature=temperature, where=where, weights=weights)
    out[d] = tuple(
      jaxobj.logit_distillation_loss(s, t, reduction=r, **kw) for r in ("none", "sum", "mean")
    )
  return out


@pytest.mark.parametrize(
  "beta, temperature", [(0.5, 1.0), (0.0, 1.0), (1.0, 1.0), (0.1, 2.5), (0.9, 0.5)]
)
def test_values_match_float64_reference(beta, temperature):
  s, t = logits(0)
  where, weights = masks(1)
  out = _reductions(s, t, where, weights, beta, temperature)
  for d in DIVERGENCES:
    per_row = ref_divergence(s, t, d, beta, temperature)
    assert np.all(per_row >= 0) and np.all(np.isfinite(per_row))
    for r, value in zip(("none", "sum", "mean"), out[d]):
      close(value, ref_reduce(per_row, where, weights, r))


def test_jsd_limits_are_exact():
  """jsd is 0 at beta = 0 and 1, with d/dbeta = KL(p||q) at 0 and -KL(q||p) at 1
  (jsd_beta ~ beta KL(p||q) for small beta: GKD's forward-KL limit), and it is
  bounded by the binary entropy of beta."""
  s, t = logits(2)
  loss = jax.jit(lambda b: jaxobj.logit_distillation_loss(s, t, beta=b, reduction="sum"))
  grad = jax.jit(jax.grad(lambda b: jaxobj.logit_distillation_loss(s, t, beta=b, reduction="sum")))
  assert float(loss(0.0)) == pytest.approx(0.0, abs=1e-6)
  assert float(loss(1.0)) == pytest.approx(0.0, abs=1e-6)
  close(grad(0.0), ref_divergence(s, t, "forward_kl").sum(), rtol=1e-5, atol=1e-5)
  close(grad(1.0), -ref_divergence(s, t, "reverse_kl").sum(), rtol=1e-5, atol=1e-5)
  for beta in (0.05, 0.3, 0.5, 0.95):
    bound = -beta * np.log(beta) - (1 - beta) * np.log1p(-beta)
    assert np.all(ref_divergence(s, t, "jsd", beta) <= bound)
    assert float(loss(beta)) <= N * bound


def test_jsd_at_one_half_is_the_jensen_shannon_divergence():
  s, t = logits(3)
  close(
    jaxobj.logit_distillation_loss(s, t, beta=0.5, temperature=2.0),
    jaxobj.jensen_shannon_divergence(jax.nn.log_softmax(s / 2.0), jax.nn.softmax(t / 2.0)),
  )


def test_forward_kl_is_knowledge_distillation_without_t_squared():
  s, t = logits(4)
  temperature = 3.0
  close(
    temperature**2
    * jaxobj.logit_distillation_loss(s, t, divergence="forward_kl", temperature=temperature),
    jaxobj.knowledge_distillation_loss(s, t, temperature=temperature),
  )


@jax.jit
def _masked_value_and_grads(s, t):
  out = {}
  for d in DIVERGENCES:
    fn = lambda a, b, beta, d=d: jaxobj.logit_distillation_loss(
      a, b, divergence=d, beta=beta, temperature=1.5, reduction="sum"
    )
    out[d] = jax.value_and_grad(fn, argnums=(0, 1, 2))(s, t, 0.3)
  return out


def test_vocabulary_masking_matches_the_reduced_vocabulary():
  """-inf classes shared by both models are as if they were not there, with
  finite gradients; a class only the teacher rules out keeps the JSD finite."""
  s, t = logits(5)
  drop = np.zeros((N, V), bool)
  drop[:, 2] = drop[:, 7] = True
  keep = ~drop[0]
  out = _masked_value_and_grads(np.where(drop, -np.inf, s), np.where(drop, -np.inf, t))
  for d in DIVERGENCES:
    value, grads = out[d]
    close(value, ref_divergence(s[:, keep], t[:, keep], d, 0.3, 1.5).sum())
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert np.all(np.asarray(grads[0])[drop] == 0) and np.all(np.asarray(grads[1])[drop] == 0)
  t_only = np.where(drop, -np.inf, t)  # the teacher rules out what the student allows
  value, grads = _masked_value_and_grads(s, t_only)["jsd"]
  close(value, ref_divergence(s, t_only, "jsd", 0.3, 1.5).sum())
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_gradients_float64():
  s, t = logits(6, shape=(3, 5))
  with jax.enable_x64(True):
    s, t = jnp.asarray(f64(s)), jnp.asarray(f64(t))
    for d in DIVERGENCES:
      fn = jax.jit(
        lambda a, b, beta, temperature, d=d: jaxobj.logit_distillation_loss(
          a, b, divergence=d, beta=beta, temperature=temperature
        )
      )
      args = (s, t, jnp.float64(0.35), jnp.float64(1.7))
      check_grads(fn, args, order=1, modes=["rev"], eps=1e-6)


def test_class_axis():
  s, t = logits(7)
  close(
    jaxobj.logit_distillation_loss(s.T, t.T, axis=0, divergence="reverse_kl"),
    ref_divergence(s, t, "reverse_kl").mean(),
  )


def test_bad_arguments_raise_clear_errors():
  s, t = logits(8)
  with pytest.raises(ValueError, match="divergence='kl'.*forward_kl"):
    jaxobj.logit_distillation_loss(s, t, divergence="kl")
  with pytest.raises(ValueError, match="beta"):
    jaxobj.logit_distillation_loss(s, t, beta=1.5)
  with pytest.raises(ValueError, match="temperature"):
    jaxobj.logit_distillation_loss(s, t, temperature=0.0)
  with pytest.raises(ValueError, match=r"\(6, 9\).*\(6, 8\)|\(6, 8\).*\(6, 9\)"):
    jaxobj.logit_distillation_loss(s, t[:, :8])


# --------------------------------------------------------------------------
# The fused loss against the unfused loss of the same logits.

TOKENS, DS, DT, VOCAB = (13,), 6, 10, 29  # a token_block of 5 does not divide 13


def projections(seed, tokens=TOKENS):
  rng = np.random.default_rng(seed)

  def normal(*shape, scale=1.0):
    return jnp.asarray((scale * rng.standard_normal(shape)).astype(np.float32))

  return (
    normal(*tokens, DS),
    normal(*tokens, DT),
    normal(DS, VOCAB, scale=0.8),
    normal(DT, VOCAB, scale=0.8),
  )


def _cap(z, cap):
  return z if cap is None else cap * jnp.tanh(z / cap)


def _fused(hs, ht, ws, wt, beta, temperature, where, weights, opts):
  divergence, cap, reduction = opts
  return jaxobj.fused_linear_distillation_loss(
    hs, ht, ws, wt, divergence=divergence, beta=beta, temperature=temperature,
    logit_soft_cap=cap, where=where, weights=weights, reduction=reduction,
    token_block=5, vocab_block=8,
  )  # fmt: skip


def _unfused(hs, ht, ws, wt, beta, temperature, where, weights, opts):
  divergence, cap, reduction = opts
  return jaxobj.logit_distillation_loss(
    _cap(hs @ ws, cap), _cap(ht @ wt, cap), divergence=divergence, beta=beta,
    temperature=temperature, where=where, weights=weights, reduction=reduction,
  )  # fmt: skip


def _scalar(loss, cotangent):
  """A scalar of the loss whose gradient reaches every input: the sum of
  ``"sum_and_count"``, a random projection of ``"none"``."""

  def fn(*args):
    out = loss(*args)
    opts = args[-1]
    if opts[2] == "none":
      return jnp.sum(cotangent * out)
    return out[0] + 0.0 * out[1] if opts[2] == "sum_and_count" else out

  return fn


ARGNUMS = (0, 1, 2, 3, 4, 5)
FUSED_CASES = [
  ("jsd", None, "mean"),
  ("jsd", 3.0, "none"),
  ("forward_kl", 3.0, "sum_and_count"),
  ("reverse_kl", None, "none"),
]


@pytest.mark.parametrize("opts", FUSED_CASES, ids=lambda o: "-".join(map(str, o)))
def test_fused_equals_unfused_values_and_gradients(opts):
  """Values and gradients w.r.t. both hidden states, both kernels, beta and
  temperature agree to 1e-5 relative, with masks, weights and a soft cap."""
  hs, ht, ws, wt = projections(10)
  where, weights = masks(11, TOKENS)
  cotangent = jnp.asarray(np.random.default_rng(12).standard_normal(TOKENS), jnp.float32)
  args = (hs, ht, ws, wt, jnp.float32(0.3), jnp.float32(1.7), where, weights)
  fused_vg, unfused_vg = (
    jax.jit(jax.value_and_grad(_scalar(loss, cotangent), argnums=ARGNUMS), static_argnums=8)(
      *args, opts
    )
    for loss in (_fused, _unfused)
  )
  for a, b in zip(jax.tree.leaves(fused_vg), jax.tree.leaves(unfused_vg)):
    scale = float(jnp.max(jnp.abs(b)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
  # Masked tokens: zero gradient for both hidden states.
  for g in fused_vg[1][:2]:
    assert np.all(np.asarray(g)[~where] == 0)


def test_fused_jsd_limits_in_beta():
  """At beta = 0 and 1 the fused JSD is 0 with the unfused loss's d/dbeta."""
  hs, ht, ws, wt = projections(15)

  def grad(loss):
    return jax.jit(jax.value_and_grad(lambda b: loss(hs, ht, ws, wt, b, 1.3, None, None, OPTS)))

  fused, unfused = grad(_fused), grad(_unfused)
  for beta in (0.0, 1.0):
    (value, d_beta), (ref_value, ref_d_beta) = fused(beta), unfused(beta)
    assert abs(float(value)) < 1e-6 and abs(float(ref_value)) < 1e-6
    close(d_beta, ref_d_beta, rtol=1e-5, atol=1e-6)
    assert abs(float(d_beta)) > 1e-3


OPTS = ("jsd", None, "mean")


def test_fused_with_a_stopped_teacher_and_extra_token_axes():
  hs, ht, ws, wt = projections(13, tokens=(3, 4))
  stop = jax.lax.stop_gradient

  def fused(hs, ht, ws, wt):
    return jaxobj.fused_linear_distillation_loss(
      hs, stop(ht), ws, stop(wt), divergence="forward_kl", temperature=2.0, token_block=5
    )

  def unfused(hs, ht, ws, wt):
    return jaxobj.logit_distillation_loss(
      hs @ ws, stop(ht @ wt), divergence="forward_kl", temperature=2.0
    )

  a = jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2, 3)))(hs, ht, ws, wt)
  b = jax.jit(jax.value_and_grad(unfused, argnums=(0, 1, 2, 3)))(hs, ht, ws, wt)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  assert not np.any(a[1][1]) and not np.any(a[1][3])  # the teacher gets nothing


def test_fused_bad_arguments_raise_clear_errors():
  hs, ht, ws, wt = projections(14)
  loss = jaxobj.fused_linear_distillation_loss
  with pytest.raises(ValueError, match=r"same token axes.*\(13, 6\).*\(12, 10\)"):
    loss(hs, ht[:12], ws, wt)
  with pytest.raises(ValueError, match=r"teacher_kernel must be \[D, V\].*= 10.*\(6, 29\)"):
    loss(hs, ht, ws, ws)
  with pytest.raises(ValueError, match=r"same vocabulary.*\(6, 29\).*\(10, 28\)"):
    loss(hs, ht, ws, wt[:, :28])
  with pytest.raises(ValueError, match="token_block"):
    loss(hs, ht, ws, wt, token_block=0)
  with pytest.raises(ValueError, match="divergence"):
    loss(hs, ht, ws, wt, divergence="js")
  with pytest.raises(ValueError, match="logit_soft_cap"):
    loss(hs, ht, ws, wt, logit_soft_cap=-1.0)
