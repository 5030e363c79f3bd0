"""The policy-gradient family: values and gradients against float64 NumPy
references written from TRL's ``GRPOTrainer`` and the papers' formulas, the
group advantages against TRL's ``scale_rewards`` (torch's unbiased std), stale
policies, masks, bad input, and exactness of every aggregation under
microbatching and sharding over 8 devices.

The registry-wide tests (conformance, splitting, second order, ...) cover the
loss's contract with its defaults.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxobj
from jaxobj import objective as jo
from jaxobj.losses import policy_gradient as pg

LOSS_TYPES = pg.LOSS_TYPES
LEVELS = pg.IMPORTANCE_SAMPLING_LEVELS
B, T = 6, 5
# Completion lengths: full, partial, a single token, none at all.
LENGTHS = np.array([5, 3, 1, 0, 4, 2])


# ---------------------------------------------------------------- references


def ref_loss(
  lp,
  old,
  adv,
  ref=None,
  mask=None,
  *,
  loss_type="grpo",
  epsilon=0.2,
  epsilon_high=None,
  delta=None,
  level="token",
  beta=0.0,
  kl="k3",
  entropy=None,
  coef=0.0,
  length=None,
  where=None,
  weights=None,
  reduction="mean",
):
  """TRL's per-token loss and aggregations in float64, for (B, T) inputs.

  ``bnpo`` here is over the whole batch (TRL's is per local batch, the same on
  one device without accumulation); ``cispo``'s clip is [1 - eps, 1 + eps_high]."""
  lp, old = np.asarray(lp, np.float64), np.asarray(old, np.float64)
  b, t = lp.shape
  m = np.ones((b, t)) if mask is None else np.asarray(mask, np.float64)
  a = np.asarray(adv, np.float64)
  a = a[:, None] if a.ndim == 1 else a
  log_ratio = lp - old
  if level == "token":
    log_w = log_ratio
  else:  # GSPO: exp of the masked mean log-ratio; GSPO-token has the same value
    seq = (log_ratio * m).sum(-1) / np.maximum(m.sum(-1), 1.0)
    log_w = np.broadcast_to(seq[:, None], (b, t))
  r = np.exp(log_w)
  high = epsilon if epsilon_high is None else epsilon_high
  clipped = np.clip(r, 1 - epsilon, 1 + high)
  if loss_type == "cispo":
    per = -clipped * a * lp
  else:
    unclipped = r if delta is None else np.minimum(r, delta)
    per = -np.minimum(unclipped * a, clipped * a)
  if ref is not None:
    d = np.asarray(ref, np.float64) - lp
    per = per + beta * {"k1": -d, "k2": 0.5 * d**2, "k3": np.exp(d) - d - 1}[kl]
  if entropy is not None:
    per = per - coef * np.asarray(entropy, np.float64)
  keep = np.ones(b, bool) if where is None else np.asarray(where)
  w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
  w = np.where(keep, w, 0.0)
  total = np.where(m > 0, per, 0.0).sum(-1)
  n = m.sum(-1)
  if loss_type == "grpo":
    values, count = total / np.maximum(n, 1.0), np.ones(b)
  elif loss_type == "dr_grpo":
    values, count = total / (t if length is None else length), np.ones(b)
  else:
    values, count = total, n
  values = np.where(keep, values, 0.0) * w
  if reduction == "none":
    return values
  s, c = values.sum(), (w * count).sum()
  if reduction == "sum":
    return s
  return s / c if c > 0 else 0.0


def ref_advantages(rewards, group_size, scale="group", baseline="mean", eps=1e-4):
  """TRL's advantages: group mean (or leave-one-out), torch's unbiased std."""
  r = np.asarray(rewards, np.float64)
  g = r.reshape(-1, group_size)
  mean = g.mean(1, keepdims=True)
  if baseline == "mean":
    adv = g - mean
  else:
    adv = g - (g.sum(1, keepdims=True) - g) / (group_size - 1)
  if scale == "group":
    adv = adv / (g.std(1, ddof=1, keepdims=True) + eps)
  elif scale == "batch":
    adv = adv / (r.std(ddof=1) + eps)
  return adv.reshape(-1)


def _data(seed=0, per_token_advantages=False):
  rng = np.random.default_rng(seed)
  lp = -rng.uniform(0.05, 3.0, (B, T))
  return {
    "lp": lp,
    # Wide enough that ratios fall on both sides of every clip range.
    "old": lp + rng.normal(0.0, 0.3, (B, T)),
    "ref": lp + rng.normal(0.0, 0.5, (B, T)),
    "adv": rng.normal(size=(B, T) if per_token_advantages else B),
    "mask": np.arange(T) < LENGTHS[:, None],
    "entropy": rng.uniform(0.0, 2.0, (B, T)),
    "where": np.array([True, True, True, True, False, True]),
    "weights": rng.uniform(0.2, 2.0, B),
  }


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _close(got, want, rtol=2e-5, atol=2e-6):
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def _kwargs(loss_type, level, kl):
  """A full configuration: asymmetric clipping, delta, KL, entropy."""
  kw = {
    "loss_type": loss_type,
    "importance_sampling_level": level,
    "epsilon": 0.2,
    "epsilon_high": 0.28,
    "beta": 0.05,
    "kl_estimator": kl,
  }
  if loss_type != "cispo":
    kw["delta"] = 1.6
  if loss_type == "dr_grpo":
    kw["max_completion_length"] = 8
  return kw


def _as_ref(kw):
  out = {k: v for k, v in kw.items() if k not in ("importance_sampling_level", "kl_estimator")}
  out["level"] = kw.get("importance_sampling_level", "token")
  out["kl"] = kw.get("kl_estimator", "k3")
  if "max_completion_length" in out:
    out["length"] = out.pop("max_completion_length")
  return out


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_values_match_the_float64_reference(loss_type):
  """Every loss type x importance level x KL estimator, with a token mask
  (a single-token and a fully masked completion), row mask and weights."""
  d = _data()
  for level, kl in itertools.product(LEVELS, pg.KL_ESTIMATORS):
    kw = _kwargs(loss_type, level, kl)
    for reduction in ("mean", "sum", "none"):
      got = jaxobj.policy_gradient_loss(
        _f32(d["lp"]),
        _f32(d["old"]),
        _f32(d["adv"]),
        _f32(d["ref"]),
        completion_mask=d["mask"],
        entropy=_f32(d["entropy"]),
        entropy_coef=0.01,
        where=d["where"],
        weights=_f32(d["weights"]),
        reduction=reduction,
        **kw,
      )
      want = ref_loss(
        d["lp"],
        d["old"],
        d["adv"],
        d["ref"],
        d["mask"],
        entropy=d["entropy"],
        coef=0.01,
        where=d["where"],
        weights=d["weights"],
        reduction=reduction,
        **_as_ref(kw),
      )
      _close(got, want)


@pytest.mark.parametrize("level", LEVELS)
def test_per_token_advantages_and_defaults(level):
  d = _data(1, per_token_advantages=True)
  for loss_type in LOSS_TYPES:
    got = jaxobj.policy_gradient_loss(
      _f32(d["lp"]),
      _f32(d["old"]),
      _f32(d["adv"]),
      loss_type=loss_type,
      importance_sampling_level=level,
    )
    _close(got, ref_loss(d["lp"], d["old"], d["adv"], loss_type=loss_type, level=level))


def test_reductions_and_their_denominators():
  d = _data(2)
  args = (_f32(d["lp"]), _f32(d["old"]), _f32(d["adv"]))
  n_tokens = LENGTHS.sum()
  for loss_type in LOSS_TYPES:
    kw = {"loss_type": loss_type, "completion_mask": d["mask"]}
    none = jaxobj.policy_gradient_loss(*args, **kw, reduction="none")
    total, count = jaxobj.policy_gradient_loss(*args, **kw, reduction="sum_and_count")
    mean = jaxobj.policy_gradient_loss(*args, **kw)
    _close(jnp.sum(none), float(total), rtol=1e-6, atol=1e-6)
    _close(mean, float(total) / float(count), rtol=1e-6)
    assert float(count) == (n_tokens if loss_type in ("bnpo", "dapo", "cispo") else B)
    if loss_type in ("grpo", "dr_grpo"):  # their mean is the mean of "none"
      _close(mean, float(jnp.mean(none)), rtol=1e-6)
    # The fully masked completion contributes exactly 0.
    assert float(none[3]) == 0.0


def test_degenerate_groups_single_tokens_and_empty_completions():
  """Equal rewards give zero advantages, so only the KL term is left; a
  single-token batch; every completion empty gives 0 with zero gradients."""
  d = _data(3)
  rewards = jnp.array([0.5] * 3 + [1.0, 0.0, 0.0])
  adv = jaxobj.group_advantages(rewards, group_size=3)
  assert np.all(np.asarray(adv[:3]) == 0.0)
  lp, old, ref = _f32(d["lp"]), _f32(d["old"]), _f32(d["ref"])
  got = jaxobj.policy_gradient_loss(lp, old, adv, ref, beta=0.1, completion_mask=d["mask"])
  _close(got, ref_loss(d["lp"], d["old"], np.asarray(adv), d["ref"], d["mask"], beta=0.1))
  none = jnp.zeros((B, T), bool)
  for loss_type, level in zip(LOSS_TYPES, itertools.cycle(LEVELS)):
    one = jaxobj.policy_gradient_loss(lp[:, :1], old[:, :1], _f32(d["adv"]), loss_type=loss_type)
    _close(one, ref_loss(d["lp"][:, :1], d["old"][:, :1], d["adv"], loss_type=loss_type))
    f = lambda x, lt=loss_type, lv=level: jaxobj.policy_gradient_loss(
      x, old, _f32(d["adv"]), ref, beta=0.1, completion_mask=none, loss_type=lt,
      importance_sampling_level=lv,
    )  # fmt: skip
    assert float(f(lp)) == 0.0
    assert np.all(np.asarray(jax.grad(f)(lp)) == 0.0)


# ---------------------------------------------------------------- gradients


def _fd_grad(fn, x, step=1e-6):
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = step
    g[i] = (fn(x + e) - fn(x - e)) / (2 * step)
  return g


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gradients_match_differences_of_the_float64_reference(loss_type):
  """jax.grad in float64 against central differences of the NumPy reference
  (GSPO-token's gradient is the sequence level's for per-sequence advantages,
  Zheng et al. 2025, eq. 15)."""
  d = _data(4)
  with jax.enable_x64(True):
    for level, kl in zip(LEVELS, pg.KL_ESTIMATORS):
      kw = _kwargs(loss_type, level, kl)
      rkw = _as_ref(kw)
      if loss_type == "cispo":  # the weight is stopped: differentiate lp * sg(weight)
        continue
      got = jax.grad(
        lambda x, kw=kw: jaxobj.policy_gradient_loss(
          x,
          jnp.asarray(d["old"]),
          jnp.asarray(d["adv"]),
          jnp.asarray(d["ref"]),
          completion_mask=d["mask"],
          where=d["where"],
          weights=jnp.asarray(d["weights"]),
          **kw,
        )
      )(jnp.asarray(d["lp"]))
      want = _fd_grad(
        lambda x, rkw=rkw: ref_loss(
          x,
          d["old"],
          d["adv"],
          d["ref"],
          d["mask"],
          where=d["where"],
          weights=d["weights"],
          **rkw,
        ),
        d["lp"],
      )
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-8)


def test_cispo_gradient_is_the_clipped_stopped_weight_times_the_advantage():
  """CISPO: d/d lp of -sg(clip(r)) A lp is -clip(r) A (plus nothing from the
  weight), so clipped tokens keep a gradient, unlike PPO's."""
  d = _data(5)
  with jax.enable_x64(True):
    g = jax.grad(
      lambda x: jaxobj.policy_gradient_loss(
        x, jnp.asarray(d["old"]), jnp.asarray(d["adv"]), loss_type="cispo", reduction="sum"
      )
    )(jnp.asarray(d["lp"]))
  r = np.clip(np.exp(d["lp"] - d["old"]), 0.8, 1.2)
  np.testing.assert_allclose(np.asarray(g), -r * d["adv"][:, None], rtol=1e-12)
  assert np.all(np.asarray(g) != 0.0)


def test_gspo_token_gives_each_token_its_advantage():
  """GSPO-token with per-token advantages: value of GSPO, gradient per token
  -A_t s_i / n_i where unclipped (Zheng et al. 2025, eq. 17), 0 where clipped."""
  d = _data(6, per_token_advantages=True)
  lp, old, adv, m = d["lp"], d["old"], d["adv"], d["mask"]
  kw = {"completion_mask": m, "epsilon": 0.05}
  with jax.enable_x64(True):
    f = lambda x, level: jaxobj.policy_gradient_loss(  # noqa: E731
      x, jnp.asarray(old), jnp.asarray(adv), importance_sampling_level=level, **kw
    )
    x = jnp.asarray(lp)
    np.testing.assert_allclose(float(f(x, "sequence_token")), float(f(x, "sequence")), rtol=1e-12)
    g = np.asarray(jax.grad(f)(x, "sequence_token"))
  n = m.sum(-1)
  s = np.exp(((lp - old) * m).sum(-1) / np.maximum(n, 1))[:, None]
  clipped = np.clip(s, 0.95, 1.05)
  active = (s * adv <= clipped * adv) | ((s > 0.95) & (s < 1.05))  # unclipped branch
  want = np.where(m & active, -adv * s / np.maximum(n, 1)[:, None] / B, 0.0)
  np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- stale policies, masks


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stale_policies_give_finite_clipped_values_and_gradients(sign):
  """Log-ratios of +-1e4: finite, and the clipped branch's value where the
  advantage's sign makes it the minimum."""
  lp = jnp.full((2, 3), -1.0)
  old = lp - sign * 1e4
  adv = jnp.array([1.0, -1.0])
  ref = lp + sign * 1e4
  cases = zip(itertools.product(LOSS_TYPES, LEVELS), itertools.cycle(pg.KL_ESTIMATORS))
  for (loss_type, level), kl in cases:
    f = lambda x: jaxobj.policy_gradient_loss(  # noqa: E731
      x, old, adv, ref, loss_type=loss_type, importance_sampling_level=level, beta=0.1,
      kl_estimator=kl, reduction="none",
    )  # fmt: skip
    value, grad = f(lp), jax.grad(lambda x: jnp.sum(f(x)))(lp)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)), (loss_type, level, kl)
  # Ratio e^20 (clamped): A > 0 takes the clip 1 + eps; A < 0 is capped by delta.
  if sign > 0:
    pg_only = jaxobj.policy_gradient_loss(lp, old, adv, delta=2.0, reduction="none")
    np.testing.assert_allclose(pg_only, [-1.2, 2.0], rtol=1e-6)
    big = jaxobj.policy_gradient_loss(lp, old, adv, reduction="none")
    np.testing.assert_allclose(big[1], np.exp(np.float32(20.0)), rtol=1e-5)
  else:  # ratio e^-20: A > 0 unclipped (about 0), A < 0 clipped at 1 - eps
    np.testing.assert_allclose(
      jaxobj.policy_gradient_loss(lp, old, adv, reduction="none"), [0.0, 0.8], atol=1e-6
    )


def test_nan_behind_token_and_row_masks_does_not_leak():
  d = _data(7)
  lp, old, adv, ref = (_f32(d[k]) for k in ("lp", "old", "adv", "ref"))
  masked_tok = ~d["mask"]
  bad_row = 4  # where=False
  poison = lambda x: jnp.where(masked_tok, jnp.nan, x).at[bad_row].set(jnp.nan)  # noqa: E731
  kw = {"completion_mask": d["mask"], "where": d["where"], "beta": 0.1}
  for loss_type, level in itertools.product(LOSS_TYPES, LEVELS):
    kw.update(loss_type=loss_type, importance_sampling_level=level)
    clean = jaxobj.policy_gradient_loss(lp, old, adv, ref, **kw)
    f = lambda x: jaxobj.policy_gradient_loss(  # noqa: E731
      x, poison(old), adv.at[bad_row].set(jnp.nan), poison(ref), **kw
    )
    _close(f(poison(lp)), float(clean), rtol=1e-6)
    g = np.asarray(jax.grad(f)(poison(lp)))
    assert np.all(np.isfinite(g)) and np.all(g[masked_tok] == 0.0) and np.all(g[bad_row] == 0.0)


def test_nan_at_a_valid_token_reaches_the_value():
  d = _data(8)
  lp = _f32(d["lp"]).at[0, 0].set(jnp.nan)
  for loss_type in LOSS_TYPES:
    value = jaxobj.policy_gradient_loss(lp, _f32(d["old"]), _f32(d["adv"]), loss_type=loss_type)
    assert np.isnan(float(value))


# ---------------------------------------------------------------- presets


def test_presets_are_the_loss_with_the_papers_settings():
  d = _data(9)
  args = (_f32(d["lp"]), _f32(d["old"]), _f32(d["adv"]), _f32(d["ref"]))
  assert set(pg.POLICY_GRADIENT_PRESETS) == {"grpo", "dapo", "dr_grpo", "gspo", "ppo", "cispo"}
  for name, settings in pg.POLICY_GRADIENT_PRESETS.items():
    loss = jaxobj.policy_gradient_preset(name)
    assert jaxobj.registry.spec_for(loss).name == "policy_gradient_loss"
    got = loss(*args, completion_mask=d["mask"])
    want = ref_loss(d["lp"], d["old"], d["adv"], d["ref"], d["mask"], **_as_ref(settings))
    _close(got, want)
  assert pg.POLICY_GRADIENT_PRESETS["dapo"]["epsilon_high"] == 0.28
  assert pg.POLICY_GRADIENT_PRESETS["gspo"]["importance_sampling_level"] == "sequence"
  # TRL's cispo: torch.clamp(ratio, max=epsilon_high=5.0), detached, no lower bound.
  ratio = np.exp(d["lp"] - d["old"]) * 4.0  # some above 5
  trl = -np.minimum(ratio, 5.0) * d["adv"][:, None] * d["lp"]
  got = jaxobj.policy_gradient_preset("cispo")(
    _f32(d["lp"]), _f32(d["old"] - np.log(4.0)), _f32(d["adv"]), reduction="sum"
  )
  _close(got, trl.sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="name='grpo2'"):
    jaxobj.policy_gradient_preset("grpo2")
  # Overrides replace the preset's values.
  _close(
    jaxobj.policy_gradient_preset("dapo", epsilon_high=0.2)(*args[:3]),
    ref_loss(d["lp"], d["old"], d["adv"], loss_type="dapo"),
  )


# ---------------------------------------------------------------- advantages


@pytest.mark.parametrize("scale", pg.ADVANTAGE_SCALES)
@pytest.mark.parametrize("baseline", pg.ADVANTAGE_BASELINES)
def test_group_advantages_match_trl(scale, baseline):
  rng = np.random.default_rng(10)
  rewards = rng.normal(size=12)
  rewards[8:] = 0.7  # a degenerate group
  got = jaxobj.group_advantages(_f32(rewards), group_size=4, scale=scale, baseline=baseline)
  want = ref_advantages(rewards, 4, scale, baseline)
  _close(got, want, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(got[8:]) == 0.0)
  # The same groups given by shuffled ids.
  perm = rng.permutation(12)
  ids = jnp.asarray(np.repeat([5, -2, 9], 4)[perm])
  shuffled = jaxobj.group_advantages(
    _f32(rewards[perm]), group_ids=ids, scale=scale, baseline=baseline
  )
  _close(shuffled, want[perm], rtol=1e-5, atol=1e-6)


def test_group_advantages_degenerate_groups_are_exactly_zero():
  r = jnp.array([0.1, 0.1, 0.1, 3.0])
  for scale, baseline in itertools.product(pg.ADVANTAGE_SCALES, pg.ADVANTAGE_BASELINES):
    kw = {"scale": scale, "baseline": baseline, "epsilon": 0.0}
    assert np.all(np.asarray(jaxobj.group_advantages(r[:3], group_size=3, **kw)) == 0.0)
    single = jaxobj.group_advantages(r, group_size=1, **kw)  # one member per group
    assert np.all(np.asarray(single) == 0.0)
    sized = jaxobj.group_advantages(r, group_ids=jnp.array([0, 0, 0, 1]), **kw)
    assert np.all(np.asarray(sized) == 0.0), sized
  g = jax.grad(lambda x: jnp.sum(jaxobj.group_advantages(x, group_size=2) ** 2))(r)
  assert np.all(np.isfinite(g))


def test_group_advantages_bad_input():
  r = jnp.arange(6.0)
  with pytest.raises(ValueError, match="group_size=4 does not divide the 6 rewards"):
    jaxobj.group_advantages(r, group_size=4)
  with pytest.raises(ValueError, match="exactly one of group_size"):
    jaxobj.group_advantages(r)
  with pytest.raises(ValueError, match="exactly one of group_size"):
    jaxobj.group_advantages(r, group_size=2, group_ids=jnp.zeros(6, jnp.int32))
  with pytest.raises(ValueError, match=r"group_ids.shape=\(5,\)"):
    jaxobj.group_advantages(r, group_ids=jnp.zeros(5, jnp.int32))
  with pytest.raises(TypeError, match="group_ids must be integer"):
    jaxobj.group_advantages(r, group_ids=jnp.zeros(6))
  with pytest.raises(ValueError, match="scale='std'"):
    jaxobj.group_advantages(r, group_size=2, scale="std")
  with pytest.raises(ValueError, match="epsilon"):
    jaxobj.group_advantages(r, group_size=2, epsilon=-1.0)
  with pytest.raises(TypeError, match="rewards"):
    jaxobj.group_advantages(jnp.arange(6), group_size=2)


# ---------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_the_fix():
  d = _data(11)
  lp, old, adv, ref = (_f32(d[k]) for k in ("lp", "old", "adv", "ref"))
  f = jaxobj.policy_gradient_loss
  with pytest.raises(ValueError, match=r"policy_logps.shape=\(6, 5\).*old_logps.shape=\(6, 4\)"):
    f(lp, old[:, :4], adv)
  with pytest.raises(ValueError, match=r"reference_logps.shape=\(6, 5, 1\)"):
    f(lp, old, adv, ref[..., None])
  with pytest.raises(ValueError, match=r"advantages.shape=\(6, 1\)"):
    f(lp, old, adv[:, None])
  with pytest.raises(ValueError, match="loss_type='ppo' is not supported"):
    f(lp, old, adv, loss_type="ppo")
  with pytest.raises(ValueError, match="importance_sampling_level='seq'"):
    f(lp, old, adv, importance_sampling_level="seq")
  with pytest.raises(ValueError, match="epsilon <= 1"):
    f(lp, old, adv, epsilon=1.5)
  with pytest.raises(ValueError, match="0.0 <= epsilon_high"):
    f(lp, old, adv, epsilon_high=-0.1)
  with pytest.raises(ValueError, match="delta must be at least 1 \\+ epsilon_high"):
    f(lp, old, adv, delta=1.1)
  with pytest.raises(ValueError, match="loss_type='cispo' has no unclipped ratio"):
    f(lp, old, adv, delta=2.0, loss_type="cispo")
  with pytest.raises(ValueError, match="beta=0.04 but reference_logps is None"):
    f(lp, old, adv, beta=0.04)
  with pytest.raises(ValueError, match="beta is traced"):
    jax.jit(lambda b: f(lp, old, adv, beta=b))(0.1)
  with pytest.raises(ValueError, match="entropy is given but entropy_coef is None"):
    f(lp, old, adv, entropy=lp)
  with pytest.raises(ValueError, match="entropy_coef is given but entropy is None"):
    f(lp, old, adv, entropy_coef=0.1)
  with pytest.raises(ValueError, match="max_completion_length must be at least 1"):
    f(lp, old, adv, loss_type="dr_grpo", max_completion_length=0)
  with pytest.raises(TypeError, match="completion_mask must be a boolean"):
    f(lp, old, adv, completion_mask=jnp.ones((B, T)))
  with pytest.raises(ValueError, match=r"completion_mask.shape=\(6,\)"):
    f(lp, old, adv, completion_mask=jnp.ones(B, bool))
  with pytest.raises(ValueError, match="token axis"):
    f(lp[0, 0], old[0, 0], adv[0])
  # A traced epsilon, and a (1, T) mask shared by every completion, are fine.
  jax.jit(lambda e: f(lp, old, adv, epsilon=e))(0.1)
  _close(
    f(lp, old, adv, completion_mask=jnp.ones((1, T), bool)), ref_loss(d["lp"], d["old"], d["adv"])
  )


# ---------------------------------------------------------------- exactness under splitting

N, M, TT = 16, 4, 6  # completions, microbatches, tokens


def _split_data(seed=12):
  rng = np.random.default_rng(seed)
  base = -rng.uniform(0.1, 2.5, (N, TT))
  lengths = rng.integers(0, TT + 1, N)
  lengths[:4] = [1, 0, 2, 1]  # one microbatch (two devices' shards) of short completions
  lengths[4:8] = TT
  rows = rng.uniform(size=N) < 0.75
  rows[1] = rows[4] = False
  return {
    "base": jnp.asarray(base, jnp.float32),
    "old": jnp.asarray(base + rng.normal(0.0, 0.3, (N, TT)), jnp.float32),
    "ref": jnp.asarray(base + rng.normal(0.0, 0.4, (N, TT)), jnp.float32),
    "adv": jnp.asarray(rng.normal(size=N), jnp.float32),
    "adv_tok": jnp.asarray(rng.normal(size=(N, TT)), jnp.float32),
    "entropy": jnp.asarray(rng.uniform(0.0, 2.0, (N, TT)), jnp.float32),
    "mask": jnp.asarray(np.arange(TT) < lengths[:, None]),
    "rows": jnp.asarray(rows),
    "w": jnp.asarray(rng.uniform(0.2, 2.0, N), jnp.float32),
  }


# One term per aggregation (and importance level), so one compile covers them all.
SPLIT_CASES = {
  "grpo": ({"loss_type": "grpo", "beta": 0.04, "reference_logps": "batch.ref"}, {}),
  "bnpo": ({"loss_type": "bnpo", "entropy": "batch.entropy", "entropy_coef": 0.01}, {}),
  "dapo": ({"loss_type": "dapo", "epsilon_high": 0.28, "delta": 1.5}, {"where": "batch.rows"}),
  "dr_grpo": ({"loss_type": "dr_grpo", "max_completion_length": 8}, {"weights": "batch.w"}),
  "cispo": ({"loss_type": "cispo", "epsilon": 1.0, "epsilon_high": 4.0}, {"where": "batch.rows"}),
  "gspo": ({"importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4}, {}),
  "gspo_token_dapo": (
    {"importance_sampling_level": "sequence_token", "loss_type": "dapo"},
    {"weights": "batch.w"},
  ),
  "dapo_token_advantages": ({"loss_type": "dapo", "kl_estimator": "k2"}, {"adv": "batch.adv_tok"}),
}


def _split_objective():
  terms = []
  for name, (kw, extra) in SPLIT_CASES.items():
    kw = {k: jo.ref(v) if str(v).startswith("batch.") else v for k, v in kw.items()}
    if "reference_logps" not in kw and kw.get("beta") is None:
      kw["beta"] = 0.0
    extra = dict(extra)
    advantages = extra.pop("adv", "batch.adv")
    terms.append(
      jo.term(
        jaxobj.policy_gradient_loss,
        "outputs.policy",
        "batch.old",
        advantages,
        completion_mask=jo.ref("batch.mask"),
        name=name,
        **kw,
        **extra,
      )
    )
  return sum(terms[1:], terms[0])


SPLIT_OBJECTIVE = _split_objective()
SPLIT_PARAMS = {"a": jnp.float32(0.1), "b": jnp.float32(-0.05)}


def _split_data_fn(p, batch):
  return {"outputs": {"policy": batch["base"] * (1.0 + p["a"]) + p["b"]}, "batch": batch}


def _split_whole(batch):
  return jax.jit(
    jax.value_and_grad(lambda p, b: SPLIT_OBJECTIVE.apply(**_split_data_fn(p, b)), has_aux=True)
  )(SPLIT_PARAMS, batch)


def test_microbatches_equal_the_whole_batch_for_every_loss_type():
  batch = _split_data()
  (value, info), grads = _split_whole(batch)
  assert all(float(info[f"count/{name}"]) > 0 for name in SPLIT_CASES)
  micro = jax.tree.map(lambda a: a.reshape((M, N // M) + a.shape[1:]), batch)
  (a_value, a_info), (a_grads, _) = jax.jit(
    lambda p, b: jo.accumulate_value_and_grad(SPLIT_OBJECTIVE, _split_data_fn, p, {}, b)
  )(SPLIT_PARAMS, micro)
  chex.assert_trees_all_close(a_value, value, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(a_info, info, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(a_grads, grads, rtol=1e-6, atol=1e-7)
  # The naive mean of per-microbatch DAPO means would differ.
  dapo = jo.term(
    jaxobj.policy_gradient_loss, "outputs.policy", "batch.old", "batch.adv",
    completion_mask=jo.ref("batch.mask"), loss_type="dapo",
  )  # fmt: skip
  parts = [
    float(dapo.apply(**_split_data_fn(SPLIT_PARAMS, jax.tree.map(lambda a, i=i: a[i], micro)))[0])
    for i in range(M)
  ]
  whole = float(dapo.apply(**_split_data_fn(SPLIT_PARAMS, batch))[0])
  assert abs(np.mean(parts) - whole) > 1e-3


SHARDED = textwrap.dedent("""
    import chex, jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    import test_policy_gradient as t
    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",))
    batch = t._split_data()
    (value, info), grads = t._split_whole(batch)

    def local(p, b):
      return jax.value_and_grad(
        lambda p: t.SPLIT_OBJECTIVE.apply(axis_name="data", **t._split_data_fn(p, b)),
        has_aux=True)(p)

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))
    (s_value, s_info), s_grads = sharded(
        t.SPLIT_PARAMS, jax.device_put(batch, NamedSharding(mesh, P("data"))))
    chex.assert_trees_all_close(s_value, value, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(s_info, info, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(s_grads, grads, rtol=1e-6, atol=1e-7)
    print("ok", len(info))
""")


def test_sharded_over_eight_devices_equals_the_whole_batch():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(pathlib.Path(__file__).parent),
  )
  proc = subprocess.run(
    [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert proc.stdout.startswith("ok"), proc.stdout
