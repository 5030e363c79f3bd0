"""The fused-linear preference losses equal the unfused losses of ``hidden @ kernel``.

Values and gradients (with respect to both hidden states, the kernel and the
traceable hyperparameters) against the unfused preference losses applied to
``sequence_log_probs`` of the full logits, with prompt and padding tokens
(``ignore_index``), a chunk size that does not divide the tokens, masked and
weighted rows, soft-capping and temperature; the new compositions (ORPO whole,
CPO with its NLL term) also against float64 NumPy written from the formulas.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj.losses.preference import sequence_log_probs
from jaxobj.losses.sequence import fused_linear_sequence_log_probs

B, TC, TR, D, V = 3, 5, 6, 8, 13
TEMPERATURE, CAP = 0.7, 4.0
# 33 tokens in chunks of 4, kernel gradient in blocks of 5 columns of 13.
BLOCKS = {"token_block": 4, "vocab_block": 5}
ROWS = np.array([True, True, False])  # the last pair is padding: masked
ROW_WEIGHTS = np.array([0.5, 2.0, 1.0], np.float32)


def _targets(rng, t):
  y = rng.integers(0, V, (B, t)).astype(np.int32)
  y[:, :2] = -100  # the prompt
  y[0, -1] = -100  # padding after a short answer
  return y


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  ch = rng.standard_normal((B, TC, D)).astype(np.float32)
  rh = rng.standard_normal((B, TR, D)).astype(np.float32)
  kernel = (0.7 * rng.standard_normal((D, V))).astype(np.float32)
  cy, ry = _targets(rng, TC), _targets(rng, TR)
  # The padded pair holds garbage: NaN hidden states, targets outside [0, V).
  ch[2], rh[2] = np.nan, np.nan
  cy[2], ry[2] = 10**6, -7
  ref_c = (-rng.uniform(4.0, 10.0, B)).astype(np.float32)
  ref_r = (-rng.uniform(4.0, 10.0, B)).astype(np.float32)
  ref_c[2] = np.nan
  labels = np.array([True, False, True])
  return {
    "ch": jnp.asarray(ch),
    "cy": jnp.asarray(cy),
    "rh": jnp.asarray(rh),
    "ry": jnp.asarray(ry),
    "ref_c": jnp.asarray(ref_c),
    "ref_r": jnp.asarray(ref_r),
    "kernel": jnp.asarray(kernel),
    "labels": jnp.asarray(labels),
  }


def _logps(h, y, kernel, temperature, cap, average=False):
  """The unfused sequence log-probabilities of the soft-capped, tempered logits."""
  z = h @ kernel
  return sequence_log_probs(cap * jnp.tanh(z / cap) / temperature, y, average=average)


def _close(a, b, rtol=1e-5):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6 * max(1.0, np.max(np.abs(b))))


# ---------------------------------------------------------------- pairs


def _pair_fused(name, kw):
  fn = getattr(jaxobj, name)

  def f(ch, rh, kernel, temperature, cap, beta, d):
    extra = (d["ref_c"], d["ref_r"]) if name == "fused_linear_dpo_loss" else ()
    return fn(
      ch,
      d["cy"],
      rh,
      d["ry"],
      *extra,
      kernel,
      beta=beta,
      temperature=temperature,
      logit_soft_cap=cap,
      where=jnp.asarray(ROWS),
      weights=jnp.asarray(ROW_WEIGHTS),
      **BLOCKS,
      **kw,
    )

  return f


def _pair_unfused(name, kw):
  """The same loss from the full logits, with the masked pair sliced out."""
  kw = dict(kw)
  keep = ROWS

  def f(ch, rh, kernel, temperature, cap, beta, d):
    cy, ry = d["cy"][keep], d["ry"][keep]
    ch, rh = ch[keep], rh[keep]
    w = jnp.asarray(ROW_WEIGHTS[keep])
    lp = functools.partial(_logps, kernel=kernel, temperature=temperature, cap=cap)
    cs, rs = lp(ch, cy), lp(rh, ry)
    ca, ra = lp(ch, cy, average=True), lp(rh, ry, average=True)
    if name == "fused_linear_dpo_loss":
      average = kw.pop("average", False)
      pc, pr = (ca, ra) if average else (cs, rs)
      ref = d["ref_c"][keep], d["ref_r"][keep]
      return jaxobj.dpo_loss(pc, pr, *ref, beta=beta, weights=w, **kw)
    if name == "fused_linear_simpo_loss":
      return jaxobj.simpo_loss(ca, ra, beta=beta, weights=w, **kw)
    if name == "fused_linear_orpo_loss":
      odds = jaxobj.orpo_odds_ratio_loss(ca, ra, beta=beta, reduction="none")
      return jnp.sum(w * (odds - ca)) / jnp.sum(w)
    # CPO: a reference-free DPO (or SimPO) plus alpha times the chosen NLL.
    loss_type = kw.get("loss_type", "sigmoid")
    alpha = kw.get("cpo_alpha", 1.0)
    ls = kw.get("label_smoothing", 0.0)
    if loss_type == "simpo":
      pref = jaxobj.simpo_loss(
        ca, ra, beta=beta, gamma=kw["simpo_gamma"], label_smoothing=ls, reduction="none"
      )
    else:
      pc, pr = (ca, ra) if loss_type == "ipo" else (cs, rs)
      zero = jnp.zeros_like(pc)
      pref = jaxobj.dpo_loss(
        pc, pr, zero, zero, beta=beta, loss_type=loss_type, label_smoothing=ls, reduction="none"
      )
    return jnp.sum(w * (pref - alpha * ca)) / jnp.sum(w)

  return f


# One case per loss (the engine and each loss's composition, every option of
# the fused path); the other loss types differ only in the unfused function
# applied to the same log-probabilities, and are checked by value below.
PAIR_CASES = [
  ("fused_linear_dpo_loss", {"loss_type": "sigmoid", "label_smoothing": 0.1}),
  ("fused_linear_simpo_loss", {"gamma": 0.3, "label_smoothing": 0.1}),
  ("fused_linear_orpo_loss", {}),
  ("fused_linear_cpo_loss", {"loss_type": "simpo", "simpo_gamma": 0.7, "cpo_alpha": 0.5}),
]
# Gradients with respect to both hidden states, the kernel, temperature, cap and beta.
ARGNUMS = (0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
  "name, kw", PAIR_CASES, ids=[f"{n[13:]}-{'-'.join(map(str, k.values()))}" for n, k in PAIR_CASES]
)
def test_pair_losses_equal_the_unfused_values_and_gradients(data, name, kw):
  beta = 0.9 if "simpo" in name or kw.get("loss_type") == "simpo" else 0.3
  args = (data["ch"], data["rh"], data["kernel"], TEMPERATURE, CAP, beta)
  fused = jax.jit(jax.value_and_grad(_pair_fused(name, kw), ARGNUMS))(*args, data)
  unfused = jax.jit(jax.value_and_grad(_pair_unfused(name, kw), ARGNUMS))(*args, data)
  _close(fused[0], unfused[0])
  assert np.isfinite(float(fused[0]))
  for i, (g, r) in enumerate(zip(fused[1], unfused[1])):
    if i < 2:  # the masked pair gets exactly 0, its NaN left behind
      assert np.all(np.asarray(g)[~ROWS] == 0.0)
      g, r = g[ROWS], r[ROWS]
    _close(g, r)


# ---------------------------------------------------------------- float64 references


def _np_logps(h, y, kernel):
  """float64 log-softmax gathered at the targets: summed and averaged per row."""
  z = np.asarray(h, np.float64) @ np.asarray(kernel, np.float64)
  z = z - z.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  y = np.asarray(y)
  keep = y != -100
  tok = np.take_along_axis(logp, np.where(keep, y, 0)[..., None], -1)[..., 0]
  total = np.where(keep, tok, 0.0).sum(-1)
  return total, total / keep.sum(-1)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


BETA, LS, ALPHA, GAMMA, KL = 0.2, 0.1, 0.7, 0.4, 0.3


@jax.jit
def _every_variant(d):
  """Per-pair values of every loss type of every fused loss, in one program."""
  where = jnp.asarray(ROWS)
  pair = (d["ch"], d["cy"], d["rh"], d["ry"])
  refs = (d["ref_c"], d["ref_r"])
  kw = {"where": where, "reduction": "none", "beta": BETA, **BLOCKS}
  out = {}
  for loss_type, ls in (("sigmoid", LS), ("hinge", 0.0), ("ipo", 0.0), ("robust", LS)):
    out["dpo-" + loss_type] = jaxobj.fused_linear_dpo_loss(
      *pair,
      *refs,
      d["kernel"],
      loss_type=loss_type,
      label_smoothing=ls,
      average=loss_type == "ipo",
      **kw,
    )
  for loss_type, ls in (("sigmoid", LS), ("hinge", 0.0), ("ipo", 0.0), ("simpo", LS)):
    out["cpo-" + loss_type] = jaxobj.fused_linear_cpo_loss(
      *pair,
      d["kernel"],
      loss_type=loss_type,
      label_smoothing=ls,
      cpo_alpha=ALPHA,
      simpo_gamma=GAMMA,
      **kw,
    )
  out["simpo"] = jaxobj.fused_linear_simpo_loss(
    *pair, d["kernel"], gamma=GAMMA, label_smoothing=LS, **kw
  )
  out["orpo"] = jaxobj.fused_linear_orpo_loss(*pair, d["kernel"], **kw)
  out["kto"] = jaxobj.fused_linear_kto_loss(
    d["ch"],
    d["cy"],
    d["ref_c"],
    d["labels"],
    d["kernel"],
    desirable_weight=1.5,
    undesirable_weight=0.5,
    kl=KL,
    **kw,
  )
  return out


def test_every_loss_type_matches_float64_formulas(data):
  """Every loss type, with TRL's conventions, written out in float64 NumPy."""
  keep = ROWS
  ch, rh, cy, ry = (np.asarray(data[k])[keep] for k in ("ch", "rh", "cy", "ry"))
  ref_c, ref_r = (np.asarray(data[k], np.float64)[keep] for k in ("ref_c", "ref_r"))
  labels = np.asarray(data["labels"])[keep]
  kernel = np.asarray(data["kernel"])
  cs, ca = _np_logps(ch, cy, kernel)
  rs, ra = _np_logps(rh, ry, kernel)

  def smoothed(z, ls):
    return -(1 - ls) * _log_sigmoid(z) - ls * _log_sigmoid(-z)

  h, ha = (cs - rs) - (ref_c - ref_r), (ca - ra) - (ref_c - ref_r)
  z = BETA * h
  u, ua = cs - rs, ca - ra
  # TRL's CPO "simpo": beta * (u - gamma / beta) in the smoothed log-sigmoid.
  simpo = smoothed(BETA * (ua - GAMMA / BETA), LS)
  log_odds = (ca - np.log1p(-np.exp(ca))) - (ra - np.log1p(-np.exp(ra)))
  r = BETA * ((cs - ref_c) - max(KL, 0.0))
  want = {
    "dpo-sigmoid": smoothed(z, LS),
    "dpo-hinge": np.maximum(0.0, 1.0 - z),
    "dpo-ipo": (ha - 1.0 / (2.0 * BETA)) ** 2,
    "dpo-robust": ((1 - LS) * -_log_sigmoid(z) + LS * _log_sigmoid(-z)) / (1 - 2 * LS),
    "cpo-sigmoid": smoothed(BETA * u, LS) - ALPHA * ca,
    "cpo-hinge": np.maximum(0.0, 1.0 - BETA * u) - ALPHA * ca,
    "cpo-ipo": (ua - 1.0 / (2.0 * BETA)) ** 2 - ALPHA * ca,
    "cpo-simpo": simpo - ALPHA * ca,
    "simpo": smoothed(BETA * ua - GAMMA, LS),
    # ORPO: the chosen answer's per-token NLL plus beta times -log sigmoid(log-odds ratio).
    "orpo": -ca - BETA * _log_sigmoid(log_odds),
    "kto": np.where(labels, 1.5 * _sigmoid(-r), 0.5 * _sigmoid(r)),
  }
  got = _every_variant(data)
  assert set(got) == set(want)
  for key, values in want.items():
    g = np.asarray(got[key])
    assert np.all(g[~ROWS] == 0.0), key
    _close(g[ROWS], values)


# ---------------------------------------------------------------- KTO


def test_kto_equals_the_unfused_values_and_gradients(data):
  where, w = jnp.asarray(ROWS), jnp.asarray(ROW_WEIGHTS)

  def fused(h, kernel, temperature, beta):
    return jaxobj.fused_linear_kto_loss(
      h,
      data["cy"],
      data["ref_c"],
      data["labels"],
      kernel,
      beta=beta,
      desirable_weight=1.5,
      kl=0.4,
      temperature=temperature,
      where=where,
      weights=w,
      **BLOCKS,
    )

  def unfused(h, kernel, temperature, beta):
    lp = _logps(h[ROWS], data["cy"][ROWS], kernel, temperature, 1e9)
    return jaxobj.kto_loss(
      lp,
      data["ref_c"][ROWS],
      data["labels"][ROWS],
      beta=beta,
      desirable_weight=1.5,
      kl=0.4,
      weights=w[ROWS],
    )

  args = (data["ch"], data["kernel"], TEMPERATURE, 0.5)
  got = jax.jit(jax.value_and_grad(fused, (0, 1, 2, 3)))(*args)
  want = jax.jit(jax.value_and_grad(unfused, (0, 1, 2, 3)))(*args)
  _close(got[0], want[0])
  _close(got[1][0][ROWS], want[1][0][ROWS])
  assert np.all(np.asarray(got[1][0])[~ROWS] == 0.0)
  for g, r in zip(got[1][1:], want[1][1:]):
    _close(g, r)


# ---------------------------------------------------------------- precision, references


def test_bf16_hidden_states_compute_in_float32(data):
  keep = jnp.asarray(ROWS)
  args = [data[k] for k in ("ch", "cy", "rh", "ry", "ref_c", "ref_r", "kernel")]
  low = list(args)
  low[0], low[2] = args[0].astype(jnp.bfloat16), args[2].astype(jnp.bfloat16)
  up = list(low)
  up[0], up[2] = low[0].astype(jnp.float32), low[2].astype(jnp.float32)

  def loss(ch, rh, *rest):
    return jaxobj.fused_linear_dpo_loss(ch, rest[0], rh, *rest[1:], where=keep, **BLOCKS)

  f = jax.jit(jax.value_and_grad(loss, (0, 1)))
  value, grads = f(low[0], low[2], low[1], *low[3:])
  value_up, grads_up = f(up[0], up[2], up[1], *up[3:])
  assert value.dtype == jnp.float32 and grads[0].dtype == jnp.bfloat16
  _close(value, value_up, rtol=1e-6)
  for g, r in zip(grads, grads_up):  # the same float32 gradients, rounded to bf16
    np.testing.assert_array_equal(np.asarray(g), np.asarray(r.astype(jnp.bfloat16)))


def test_fused_reference_log_probs_under_stop_gradient(data):
  """The documented one-liner: reference log-probabilities fused from the
  reference model's own hidden states and kernel, with no gradient to it."""
  rng = np.random.default_rng(1)
  keep = ROWS
  ref_kernel = jnp.asarray(rng.standard_normal((D, V)), jnp.float32)
  ch, rh, cy, ry = (data[k][keep] for k in ("ch", "rh", "cy", "ry"))

  def loss(kernel, ref_kernel):
    ref = [
      fused_linear_sequence_log_probs(
        jax.lax.stop_gradient(h), y, jax.lax.stop_gradient(ref_kernel)
      )
      for h, y in ((ch, cy), (rh, ry))
    ]
    return jaxobj.fused_linear_dpo_loss(ch, cy, rh, ry, *ref, kernel)

  value, (dk, dref) = jax.jit(jax.value_and_grad(loss, (0, 1)))(data["kernel"], ref_kernel)

  @jax.jit
  def unfused(kernel, ref_kernel):
    lp = [
      sequence_log_probs(h @ k, y) for k in (kernel, ref_kernel) for h, y in ((ch, cy), (rh, ry))
    ]
    return jaxobj.dpo_loss(*lp)

  _close(value, unfused(data["kernel"], ref_kernel))
  assert np.all(np.asarray(dref) == 0.0) and np.any(np.asarray(dk) != 0.0)


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_naming_the_argument(data):
  d = data
  keep = ROWS
  args = [d[k][keep] for k in ("ch", "cy", "rh", "ry", "ref_c", "ref_r")] + [d["kernel"]]
  with pytest.raises(ValueError, match=r"rejected_targets.*chosen_targets"):
    bad = list(args)
    bad[2], bad[3] = bad[2][:1], bad[3][:1]
    jaxobj.fused_linear_dpo_loss(*bad)
  with pytest.raises(ValueError, match=r"reference_rejected_logps.*\(2,\).*\(2, 6\)"):
    bad = list(args)
    bad[5] = jnp.zeros((2, 6))
    jaxobj.fused_linear_dpo_loss(*bad)
  with pytest.raises(ValueError, match=r"chosen_targets must lie in \[0, V\) = \[0, 13\).*\[13\]"):
    bad = list(args)
    bad[1] = bad[1].at[0, 3].set(V)
    jaxobj.fused_linear_dpo_loss(*bad)
  with pytest.raises(ValueError, match=r"kernel must be \[D, V\].*\(13, 8\)"):
    jaxobj.fused_linear_simpo_loss(*args[:4], d["kernel"].T)
  with pytest.raises(TypeError, match="rejected_hidden"):
    jaxobj.fused_linear_orpo_loss(
      args[0], args[1], args[2].astype(jnp.int32), *args[3:4], d["kernel"]
    )
  with pytest.raises(ValueError, match="loss_type='kto_pair'.*'simpo'"):
    jaxobj.fused_linear_cpo_loss(*args[:4], d["kernel"], loss_type="kto_pair")
  with pytest.raises(ValueError, match=r"labels.*\(2,\).*\(3,\)"):
    jaxobj.fused_linear_kto_loss(args[0], args[1], args[4], d["labels"], d["kernel"])
