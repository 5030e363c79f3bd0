"""The pieces of the post-training example (jaxobj.workloads.post_training): the task,
its reward, the sampler, the masks and log-probabilities, and one step of each stage.

The whole pipeline (three stages, the reward rising in each) runs once, in
notebooks/07_post_training.ipynb, executed by tests/test_notebooks.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxobj.workloads import post_training as pt

PAD, BOS, SEP, EOS = pt.PAD, pt.BOS, pt.SEP, pt.EOS


def _prompt(digits):
  """A left-padded prompt row from a list of digits."""
  row = [BOS, *digits, SEP]
  return [PAD] * (pt.PROMPT_LEN - len(row)) + row


def _completion(tokens):
  return list(tokens) + [PAD] * (pt.COMPLETION_LEN - len(tokens))


def _reference_reward(prompt, completion):
  """The reward from its definition, in plain Python."""
  digits = [t for t in prompt if t < pt.DIGITS]
  answer = digits[::-1] + [EOS]
  seen, ended = [], False
  for t in completion:
    seen.append(PAD if ended else t)
    ended = ended or t == EOS
  return sum(a == c for a, c in zip(answer, seen)) / len(answer)


class Small:
  """A one-layer model, a second one (a reference), and jitted views of both."""

  def __init__(self):
    self.graphdef, self.params = nnx.split(pt.TinyLM(dim=16, heads=2, layers=1, rngs=nnx.Rngs(0)))
    _, self.other = nnx.split(pt.TinyLM(dim=16, heads=2, layers=1, rngs=nnx.Rngs(1)))

  def model(self, params):
    return nnx.merge(self.graphdef, params)

  @functools.partial(jax.jit, static_argnums=0)
  def forward(self, params, tokens):
    return self.model(params)(tokens)

  @functools.partial(jax.jit, static_argnums=0)
  def log_probs(self, params, prompts, completions):
    """Per-token and sequence log-probabilities, and the logits they come from."""
    model = self.model(params)
    logits = pt.completion_hidden(model, prompts, completions) @ model.kernel[...]
    return (
      pt.token_log_probs(model, prompts, completions),
      pt.sequence_log_prob(model, prompts, completions),
      logits,
    )


@pytest.fixture(scope="module")
def small():
  return Small()


# --- the task


def test_prompts_are_left_padded_digit_strings_and_answers_reverse_them():
  prompts = np.asarray(pt.make_prompts(jax.random.key(0), 256))
  answers = np.asarray(pt.target_completions(prompts))
  assert prompts.shape == (256, pt.PROMPT_LEN) and answers.shape == (256, pt.COMPLETION_LEN)
  lengths = set()
  for p, a in zip(prompts, answers):
    digits = [t for t in p if t < pt.DIGITS]
    lengths.add(len(digits))
    assert list(p) == _prompt(digits)
    assert list(a) == _completion(digits[::-1] + [EOS])
  assert lengths == set(range(pt.MIN_DIGITS, pt.MAX_DIGITS + 1))
  np.testing.assert_array_equal(pt.prompt_lengths(prompts), (prompts < pt.DIGITS).sum(1))
  assert pt.decode(_prompt([3, 1, 4])) == "<bos> 3 1 4 ="


def test_reward_on_hand_made_completions():
  p3, p6 = _prompt([3, 1, 4]), _prompt([1, 2, 3, 4, 5, 6])
  cases = [
    (p3, [4, 1, 3, EOS], 1.0),  # exact
    (p3, [4, 1, 3, 9, EOS], 0.75),  # no EOS where it belongs
    (p3, [4, EOS, 1, 3], 0.25),  # stops early: what follows EOS does not count
    (p3, [3, 1, 4, EOS], 0.5),  # not reversed: the middle digit and EOS
    (p3, [EOS], 0.0),
    (p3, [SEP, BOS, PAD, PAD], 0.0),
    (p6, [6, 5, 4, 3, 2, 1, EOS], 1.0),  # the longest prompt (no left padding)
    (p6, [6, 5, 4, 3, 2, 1, 0], 6 / 7),  # cut at COMPLETION_LEN without EOS
  ]
  prompts = jnp.array([c[0] for c in cases])
  completions = jnp.array([_completion(c[1]) for c in cases])
  got = np.asarray(pt.reward(prompts, completions))
  expected = [_reference_reward(p, c) for p, c in zip(prompts.tolist(), completions.tolist())]
  np.testing.assert_allclose(expected, [c[2] for c in cases], rtol=1e-6)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  np.testing.assert_array_equal(pt.exact_match(prompts, completions), np.array(expected) == 1)


def test_reward_of_random_completions_matches_the_definition():
  prompts = pt.make_prompts(jax.random.key(1), 64)
  # Mostly digits and EOS, so that some prefixes are right; every fourth row exact.
  completions = np.random.default_rng(0).choice([0, 1, 2, EOS], (64, pt.COMPLETION_LEN))
  completions[::4] = pt.target_completions(prompts)[::4]
  expected = [_reference_reward(p, c) for p, c in zip(prompts.tolist(), completions.tolist())]
  np.testing.assert_allclose(pt.reward(prompts, completions), expected, rtol=1e-6)


def test_completion_mask_keeps_the_tokens_up_to_the_first_eos():
  completions = jnp.array(
    [
      _completion([4, 1, 3, EOS]),
      _completion([EOS, 1, EOS]),
      [1, 2, 3, 4, 5, 6, 7],  # no EOS: all of it
      [1, 2, 3, 4, 5, 6, EOS],
    ]
  )
  expected = [
    [1, 1, 1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1],
  ]
  np.testing.assert_array_equal(pt.completion_mask(completions), np.array(expected, bool))


def test_supervised_batch_targets_only_the_answer_tokens():
  prompts = jnp.array([_prompt([3, 1, 4]), _prompt([1, 2, 3, 4, 5, 6])])
  batch = pt.supervised_batch(prompts)
  width = pt.PROMPT_LEN + pt.COMPLETION_LEN - 1
  assert batch["inputs"].shape == batch["targets"].shape == (2, width)
  ignored = [-100] * (pt.PROMPT_LEN - 1)
  np.testing.assert_array_equal(batch["targets"][0], ignored + [4, 1, 3, EOS, -100, -100, -100])
  np.testing.assert_array_equal(batch["targets"][1], ignored + [6, 5, 4, 3, 2, 1, EOS])
  # Teacher forcing: the input at t is the target at t - 1 wherever that is an answer token.
  np.testing.assert_array_equal(batch["inputs"][0, : pt.PROMPT_LEN], prompts[0])
  np.testing.assert_array_equal(batch["inputs"][0, pt.PROMPT_LEN : pt.PROMPT_LEN + 3], [4, 1, 3])


# --- the model, the sampler and the log-probabilities


def test_left_padding_does_not_change_the_hidden_states(small):
  short = jnp.array([[BOS, 3, 1, 4, SEP, 7, 2]])
  padded = jnp.array([[PAD, PAD, BOS, 3, 1, 4, SEP]])
  np.testing.assert_allclose(
    small.forward(small.params, padded)[:, 2:],
    small.forward(small.params, short)[:, :5],
    rtol=1e-5,
    atol=1e-6,
  )


def test_sampler_shapes_determinism_and_padding_after_eos(small):
  prompts = pt.make_prompts(jax.random.key(2), 32)
  a = pt.sample_completions(small.graphdef, small.params, prompts, jax.random.key(3))
  b = pt.sample_completions(small.graphdef, small.params, prompts, jax.random.key(3))
  c = pt.sample_completions(small.graphdef, small.params, prompts, jax.random.key(4))
  assert a.shape == (32, pt.COMPLETION_LEN) and a.dtype == jnp.int32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert bool(jnp.all((a >= 0) & (a < pt.VOCAB_SIZE)))
  mask = np.asarray(pt.completion_mask(a))
  assert np.all(np.asarray(a)[~mask] == PAD)
  assert np.any(np.asarray(a) == EOS) and not np.all(mask)


def test_sampled_tokens_and_log_probs_read_the_same_positions(small):
  """At a temperature near 0 each sampled token is the argmax of the teacher-forced
  logits that the log-probabilities are computed from; those match a float64
  log-softmax of these logits, 0 after EOS."""
  prompts = pt.make_prompts(jax.random.key(5), 32)
  cold = pt.sample_completions(small.graphdef, small.params, prompts, jax.random.key(6), 1e-4)
  token_logps, seq_logp, logits = small.log_probs(small.params, prompts, cold)
  mask = np.asarray(pt.completion_mask(cold))
  np.testing.assert_array_equal(np.where(mask, cold, -1), np.where(mask, np.argmax(logits, -1), -1))
  logits = np.asarray(logits, np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  direct = np.take_along_axis(logp, np.asarray(cold)[..., None], -1)[..., 0] * mask
  np.testing.assert_allclose(token_logps, direct, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(seq_logp, direct.sum(-1), rtol=1e-5)


# --- one step of each stage


@functools.partial(jax.jit, static_argnums=(0, 1))
def _before_and_after_a_step(loss, small, params, batch, lr, hyper):
  """The loss on the batch before and after one gradient-descent step on it."""

  def f(p):
    return loss(small.model(p), batch, **hyper)

  (value, info), grads = jax.value_and_grad(f, has_aux=True)(params)
  after = f(jax.tree.map(lambda p, g: p - lr * g, params, grads))[0]
  return value, info, after


def test_supervised_step_lowers_the_fused_cross_entropy(small):
  batch = pt.supervised_batch(pt.make_prompts(jax.random.key(9), 16))
  loss, info, after = _before_and_after_a_step(
    pt.supervised_loss, small, small.params, batch, 0.1, {}
  )
  # The objective is the mean cross-entropy of the logits over the answer tokens.
  logits = np.asarray(
    small.forward(small.params, batch["inputs"]) @ small.params["kernel"][...], np.float64
  )
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = np.asarray(batch["targets"])
  valid = targets != -100
  nll = -np.take_along_axis(logp, np.maximum(targets, 0)[..., None], -1)[..., 0]
  np.testing.assert_allclose(loss, nll[valid].mean(), rtol=1e-5)
  assert float(info["count/cross_entropy"]) == valid.sum()
  assert float(after) < float(loss)


def _sampled(small, key):
  """8 prompts and 4 completions of each, sampled from the small model (32 rows)."""
  prompts = pt.make_prompts(key, 8)
  repeated = jnp.repeat(prompts, 4, axis=0)
  return prompts, pt.sample_completions(small.graphdef, small.params, repeated, key)


def test_dpo_pairs_and_loss(small):
  prompts, completions = _sampled(small, jax.random.key(10))
  pairs = jax.jit(pt.dpo_batch, static_argnames="samples")
  batch = pairs(small.model(small.params), prompts, completions, samples=4)
  rewards = np.asarray(batch["rewards"]).reshape(8, 4)
  chosen_r = np.asarray(pt.reward(prompts, batch["chosen"]))
  rejected_r = np.asarray(pt.reward(prompts, batch["rejected"]))
  np.testing.assert_allclose(chosen_r, rewards.max(1), rtol=1e-6)
  np.testing.assert_allclose(rejected_r, rewards.min(1), rtol=1e-6)
  np.testing.assert_array_equal(batch["valid"], chosen_r > rejected_r)
  valid = np.asarray(batch["valid"])
  assert 0 < valid.sum() < 8  # ties happen, and are masked out
  # The policy is its own reference: every implicit reward margin is 0.
  loss, info, _ = _before_and_after_a_step(
    pt.dpo_batch_loss, small, small.params, batch, 0.0, {"beta": 0.1}
  )
  np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-5)
  assert float(info["count/dpo"]) == valid.sum()
  # Against another reference: -log sigmoid(beta * margin), averaged over valid pairs.
  batch["reference_chosen"] = small.log_probs(small.other, prompts, batch["chosen"])[1]
  batch["reference_rejected"] = small.log_probs(small.other, prompts, batch["rejected"])[1]
  policy_chosen = small.log_probs(small.params, prompts, batch["chosen"])[1]
  policy_rejected = small.log_probs(small.params, prompts, batch["rejected"])[1]
  margin = np.asarray(policy_chosen, np.float64) - np.asarray(policy_rejected, np.float64)
  margin -= np.asarray(batch["reference_chosen"], np.float64) - np.asarray(
    batch["reference_rejected"], np.float64
  )
  expected = np.log1p(np.exp(-0.5 * margin))[valid].mean()
  loss, _, after = _before_and_after_a_step(
    pt.dpo_batch_loss, small, small.params, batch, 0.05, {"beta": 0.5}
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert float(after) < float(loss)


def test_grpo_groups_and_loss(small):
  group = 4
  prompts, completions = _sampled(small, jax.random.key(12))
  groups = jax.jit(pt.grpo_batch, static_argnames="group_size")
  policy, reference = small.model(small.params), small.model(small.other)
  batch = groups(policy, reference, prompts, completions, group_size=group)
  assert batch["completions"].shape == (8 * group, pt.COMPLETION_LEN)
  np.testing.assert_array_equal(batch["prompts"], np.repeat(np.asarray(prompts), group, axis=0))
  np.testing.assert_array_equal(batch["mask"], pt.completion_mask(batch["completions"]))
  rewards = np.asarray(batch["rewards"], np.float64).reshape(8, group)
  spread = rewards.std(1, ddof=1, keepdims=True)
  advantages = (rewards - rewards.mean(1, keepdims=True)) / (spread + 1e-4)
  np.testing.assert_allclose(batch["advantages"], advantages.reshape(-1), rtol=1e-4, atol=1e-5)
  assert np.any(advantages != 0)
  # At the sampling policy every ratio is 1: the loss is -A plus beta times the k3 KL to
  # the reference, averaged over each completion's tokens, then over completions.
  logps = np.asarray(batch["old_logps"], np.float64)
  d = np.asarray(batch["reference_logps"], np.float64) - logps
  mask = np.asarray(batch["mask"])
  per_token = -advantages.reshape(-1, 1) + 0.3 * (np.exp(d) - d - 1)
  expected = np.mean((per_token * mask).sum(1) / mask.sum(1))
  loss, info, after = _before_and_after_a_step(
    pt.grpo_batch_loss, small, small.params, batch, 0.05, {"epsilon": 0.2, "beta": 0.3}
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  assert float(info["count/grpo"]) == 8 * group
  assert float(after) < float(loss)


def test_batches_refuse_completions_that_do_not_come_k_to_a_prompt(small):
  prompts = np.full((3, pt.PROMPT_LEN), PAD)
  completions = np.full((8, pt.COMPLETION_LEN), PAD)  # not 3 * 4 rows
  model = small.model(small.params)
  with pytest.raises(ValueError, match=r"samples=4.*completions.shape=\(8, 7\)"):
    pt.dpo_batch(model, prompts, completions, samples=4)
  with pytest.raises(ValueError, match=r"group_size=4.*jnp.repeat"):
    pt.grpo_batch(model, model, prompts, completions, group_size=4)
