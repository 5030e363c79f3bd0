"""LLM post-training end to end, in miniature: a tiny causal language model learns to
reverse a digit string by fused cross-entropy, then by DPO on pairs it generates, then
by GRPO on groups it samples; every stage is a jaxobj objective.

The task has a verifiable reward. A prompt is ``BOS d_1 ... d_L =`` (left-padded with
``PAD`` to a fixed width), the answer is ``d_L ... d_1 EOS``. A sampled completion
earns the fraction of the ``L + 1`` answer positions it gets right (the digits and the
``EOS`` that ends it), so 1 is an exact answer and a model that stops too early or too
late loses the positions it misses.

- :class:`TinyLM`: a Flax NNX decoder (token and position embeddings, pre-norm causal
  self-attention blocks) that returns its last hidden states; its output projection
  ``kernel`` is a separate ``[D, V]`` parameter, so the losses take ``hidden`` and
  ``kernel`` and never need the logits (:func:`jaxobj.fused_linear_cross_entropy`).
- :func:`make_prompts`, :func:`target_completions`, :func:`completion_mask`,
  :func:`reward`: the task.
- :func:`sample_completions`: temperature sampling with a fixed-length ``lax.scan``
  (fixed shapes, one compile); :func:`token_log_probs` and :func:`sequence_log_prob`:
  the fused log-probabilities of completions, the inputs of the preference and
  policy-gradient losses.
- :data:`SFT_OBJECTIVE`, :data:`DPO_OBJECTIVE`, :data:`GRPO_OBJECTIVE`: the stages'
  objectives, with the batches they read (:func:`supervised_batch`, :func:`dpo_batch`,
  :func:`grpo_batch`) and their losses on a model (:func:`supervised_loss`,
  :func:`dpo_batch_loss`, :func:`grpo_batch_loss`).
- :func:`supervised_stage`, :func:`dpo_stage`, :func:`grpo_stage`: the three stages,
  each a loop over one jitted step (fresh prompts, sampling, the objective's gradient,
  Adam) that returns the new parameters and the mean reward of the completions sampled
  at each step.

Every step is jitted once, with the model's ``GraphDef`` static, so the three stages
together (compiles included) take about half a minute on two CPU cores.
notebooks/07_post_training.ipynb runs them and plots the reward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

import jaxobj
from jaxobj import objective as jo
from jaxobj.losses.sequence import fused_linear_sequence_log_probs, fused_linear_token_log_probs

__all__ = [
  "DIGITS",
  "SEP",
  "BOS",
  "EOS",
  "PAD",
  "VOCAB_SIZE",
  "MIN_DIGITS",
  "MAX_DIGITS",
  "PROMPT_LEN",
  "COMPLETION_LEN",
  "TinyLM",
  "make_prompts",
  "prompt_lengths",
  "target_completions",
  "completion_mask",
  "reward",
  "exact_match",
  "decode",
  "sample_completions",
  "completion_hidden",
  "token_log_probs",
  "sequence_log_prob",
  "SFT_OBJECTIVE",
  "DPO_OBJECTIVE",
  "GRPO_OBJECTIVE",
  "supervised_batch",
  "supervised_loss",
  "dpo_batch",
  "dpo_batch_loss",
  "grpo_batch",
  "grpo_batch_loss",
  "StageResult",
  "supervised_stage",
  "dpo_stage",
  "grpo_stage",
]

DIGITS = 10
"""Token ids ``0 .. 9`` are the digits."""
SEP, BOS, EOS, PAD = 10, 11, 12, 13
"""The separator ``=`` that ends a prompt, begin and end of sequence, padding."""
VOCAB_SIZE = 14
MIN_DIGITS, MAX_DIGITS = 2, 6
PROMPT_LEN = MAX_DIGITS + 2
"""``BOS``, up to ``MAX_DIGITS`` digits, ``=``: prompts are left-padded to this width."""
COMPLETION_LEN = MAX_DIGITS + 1
"""Up to ``MAX_DIGITS`` digits and ``EOS``: completions are right-padded to this width."""

_NAMES = [str(d) for d in range(DIGITS)] + ["=", "<bos>", "<eos>", "<pad>"]

# --- the model


class _Block(nnx.Module):
  """Pre-norm causal self-attention and MLP, each added to the residual stream."""

  def __init__(self, dim: int, heads: int, rngs: nnx.Rngs) -> None:
    self.heads = heads
    self.norm1 = nnx.RMSNorm(dim, rngs=rngs)
    self.qkv = nnx.Linear(dim, 3 * dim, use_bias=False, rngs=rngs)
    self.out = nnx.Linear(dim, dim, use_bias=False, rngs=rngs)
    self.norm2 = nnx.RMSNorm(dim, rngs=rngs)
    self.up = nnx.Linear(dim, 4 * dim, rngs=rngs)
    self.down = nnx.Linear(4 * dim, dim, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    b, t, d = x.shape
    q, k, v = jnp.split(self.qkv(self.norm1(x)).reshape(b, t, 3 * self.heads, -1), 3, axis=2)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // self.heads)
    attn = jax.nn.softmax(jnp.where(mask[:, None], scores, -1e9), axis=-1)
    x = x + self.out(jnp.einsum("bhqk,bkhd->bqhd", attn, v).reshape(b, t, d))
    return x + self.down(jax.nn.gelu(self.up(self.norm2(x))))


class TinyLM(nnx.Module):
  """A small causal decoder that returns its last hidden states.

  Positions count the non-padding tokens (left padding does not shift them) and no
  token attends to padding, so a left-padded prompt reads as the same prompt unpadded.
  The output projection is :attr:`kernel` (``[dim, vocab_size]``): logits are
  ``model(tokens) @ model.kernel``, but the losses below take the two apart.

  Args:
    vocab_size: number of token ids.
    dim: width of the residual stream.
    heads: attention heads (``dim`` must be a multiple).
    layers: number of blocks.
    max_len: longest sequence (for the position embeddings).
    rngs: the NNX random streams for the initialization.

  Example:
    >>> from flax import nnx
    >>> model = TinyLM(VOCAB_SIZE, dim=16, heads=2, layers=1, rngs=nnx.Rngs(0))
    >>> model(jnp.array([[PAD, BOS, 3, 1, SEP]])).shape
    (1, 5, 16)
  """

  def __init__(
    self,
    vocab_size: int = VOCAB_SIZE,
    *,
    dim: int = 64,
    heads: int = 4,
    layers: int = 2,
    max_len: int = PROMPT_LEN + COMPLETION_LEN,
    rngs: nnx.Rngs,
  ) -> None:
    if dim % heads:
      raise ValueError(f"dim={dim} must be a multiple of heads={heads}; pick dim = k * heads.")
    self.embed = nnx.Embed(vocab_size, dim, rngs=rngs)
    self.position = nnx.Embed(max_len, dim, rngs=rngs)
    self.blocks = nnx.List([_Block(dim, heads, rngs) for _ in range(layers)])
    self.norm = nnx.RMSNorm(dim, rngs=rngs)
    init = nnx.initializers.normal(1.0 / np.sqrt(dim))
    self.kernel = nnx.Param(init(rngs.params(), (dim, vocab_size)))

  def __call__(self, tokens: ArrayLike) -> jax.Array:
    tokens = jnp.asarray(tokens)
    valid = tokens != PAD
    positions = jnp.maximum(jnp.cumsum(valid, axis=-1) - 1, 0)
    t = tokens.shape[-1]
    causal = jnp.tril(jnp.ones((t, t), bool))
    # A padding query attends to itself only, so no softmax row is empty.
    mask = causal & (valid[:, None, :] | jnp.eye(t, dtype=bool))
    x = self.embed(tokens) + self.position(positions)
    for block in self.blocks:
      x = block(x, mask)
    return self.norm(x)


# --- the task


@functools.partial(jax.jit, static_argnames=("batch_size",))
def make_prompts(key: jax.Array, batch_size: int) -> jax.Array:
  """Random prompts ``BOS d_1 ... d_L =`` with ``L`` uniform in ``[MIN_DIGITS, MAX_DIGITS]``.

  Args:
    key: a PRNG key.
    batch_size: number of prompts.

  Returns:
    int32 ``(batch_size, PROMPT_LEN)``, left-padded with ``PAD``.
  """
  k_len, k_digits = jax.random.split(key)
  lengths = jax.random.randint(k_len, (batch_size, 1), MIN_DIGITS, MAX_DIGITS + 1)
  digits = jax.random.randint(k_digits, (batch_size, MAX_DIGITS), 0, DIGITS)
  col = jnp.arange(MAX_DIGITS)[None, :]
  # Right-aligned digits: column MAX_DIGITS - L + j holds d_{j+1}.
  body = jnp.where(col >= MAX_DIGITS - lengths, digits, PAD)
  bos = jnp.where(col == MAX_DIGITS - 1 - lengths, BOS, PAD)
  body = jnp.where(bos == BOS, BOS, body)
  first = jnp.where(lengths == MAX_DIGITS, BOS, PAD)
  sep = jnp.full((batch_size, 1), SEP)
  return jnp.concatenate([first, body, sep], axis=1).astype(jnp.int32)


@jax.jit
def prompt_lengths(prompts: ArrayLike) -> jax.Array:
  """The number of digits ``L`` of each prompt, ``(B,)``."""
  prompts = jnp.asarray(prompts)
  return jnp.sum(prompts < DIGITS, axis=-1)


@jax.jit
def target_completions(prompts: ArrayLike) -> jax.Array:
  """The right answers: the prompt's digits reversed, then ``EOS``, right-padded.

  Returns:
    int32 ``(B, COMPLETION_LEN)``.
  """
  prompts = jnp.asarray(prompts)
  digits = prompts[:, 1:-1]  # (B, MAX_DIGITS), right-aligned
  lengths = prompt_lengths(prompts)[:, None]
  col = jnp.arange(COMPLETION_LEN)[None, :]
  # Reversed, the right-aligned digits become left-aligned: answer j is column M - 1 - j.
  reversed_digits = jnp.concatenate([digits[:, ::-1], jnp.full_like(lengths, PAD)], axis=1)
  out = jnp.where(col < lengths, reversed_digits, PAD)
  return jnp.where(col == lengths, EOS, out).astype(jnp.int32)


@jax.jit
def completion_mask(completions: ArrayLike) -> jax.Array:
  """The tokens a completion is made of: every token up to and including its first ``EOS``.

  A completion with no ``EOS`` is all valid (it was cut at ``COMPLETION_LEN``).

  Returns:
    bool ``(B, T)``.
  """
  completions = jnp.asarray(completions)
  is_eos = completions == EOS
  before = jnp.cumsum(is_eos, axis=-1) - is_eos  # EOS tokens strictly before each position
  return before == 0


@jax.jit
def reward(prompts: ArrayLike, completions: ArrayLike) -> jax.Array:
  r"""The verifiable reward: the fraction of the ``L + 1`` answer positions right.

  .. math::
     r = \frac{1}{L + 1} \sum_{j=1}^{L+1} [c_j = a_j], \qquad
     a = (d_L, \dots, d_1, \mathrm{EOS})

  Tokens after a completion's first ``EOS`` count as ``PAD`` (never right).

  Args:
    prompts: int ``(B, PROMPT_LEN)``.
    completions: int ``(B, COMPLETION_LEN)``.

  Returns:
    float32 ``(B,)`` in ``[0, 1]``.

  Example:
    >>> prompts = jnp.array([[PAD, PAD, PAD, PAD, BOS, 3, 1, SEP]])
    >>> print(reward(prompts, jnp.array([[1, 3, EOS, PAD, PAD, PAD, PAD]])))
    [1.]
    >>> print(reward(prompts, jnp.array([[1, EOS, 3, PAD, PAD, PAD, PAD]])))  # 1 of 3 right
    [0.3333]
  """
  prompts, completions = jnp.asarray(prompts), jnp.asarray(completions)
  target = target_completions(prompts)
  seen = jnp.where(completion_mask(completions), completions, PAD)
  lengths = prompt_lengths(prompts)
  scored = jnp.arange(COMPLETION_LEN)[None, :] <= lengths[:, None]
  right = jnp.sum((seen == target) & scored, axis=-1)
  return (right / (lengths + 1)).astype(jnp.float32)


@jax.jit
def exact_match(prompts: ArrayLike, completions: ArrayLike) -> jax.Array:
  """1.0 where the completion is exactly the answer (ending with ``EOS``), else 0.0."""
  return (reward(prompts, completions) == 1.0).astype(jnp.float32)


def decode(tokens: ArrayLike) -> str:
  """A readable string of one row of token ids (padding dropped)."""
  return " ".join(_NAMES[int(t)] for t in np.asarray(tokens) if int(t) != PAD)


# --- sampling and log-probabilities


@functools.partial(jax.jit, static_argnames=("graphdef",))
def sample_completions(
  graphdef: nnx.GraphDef,
  params: Any,
  prompts: ArrayLike,
  key: jax.Array,
  temperature: float | ArrayLike = 1.0,
) -> jax.Array:
  """Samples one completion per prompt, token by token, from ``softmax(logits / temperature)``.

  A fixed-length ``lax.scan`` over ``COMPLETION_LEN`` positions, each a full forward
  pass of the (short) sequence: one compile for a batch shape. After a row's first
  ``EOS`` the rest of it is ``PAD``.

  Args:
    graphdef: the model's graph definition, ``nnx.split(model)[0]`` (static).
    params: the model's state, ``nnx.split(model)[1]``.
    prompts: int ``(B, PROMPT_LEN)``.
    key: a PRNG key; the same key gives the same completions.
    temperature: softmax temperature (traced).

  Returns:
    int32 ``(B, COMPLETION_LEN)``.
  """
  model = nnx.merge(graphdef, params)
  prompts = jnp.asarray(prompts, jnp.int32)
  b = prompts.shape[0]
  buffer = jnp.concatenate([prompts, jnp.full((b, COMPLETION_LEN), PAD, jnp.int32)], axis=1)

  def step(carry, i):
    buffer, done = carry
    hidden = model(buffer[:, :-1])
    h = jax.lax.dynamic_index_in_dim(hidden, PROMPT_LEN - 1 + i, axis=1, keepdims=False)
    logits = h @ model.kernel[...]
    token = jax.random.categorical(jax.random.fold_in(key, i), logits / temperature)
    token = jnp.where(done, PAD, token).astype(jnp.int32)
    buffer = jax.lax.dynamic_update_slice_in_dim(buffer, token[:, None], PROMPT_LEN + i, axis=1)
    return (buffer, done | (token == EOS)), None

  (buffer, _), _ = jax.lax.scan(step, (buffer, jnp.zeros(b, bool)), jnp.arange(COMPLETION_LEN))
  return buffer[:, PROMPT_LEN:]


def completion_hidden(model: TinyLM, prompts: ArrayLike, completions: ArrayLike) -> jax.Array:
  """The last hidden states that predict each completion token.

  Position ``t`` of the result is the model's state after the prompt and
  ``completions[:, :t]``: its logits (``@ model.kernel``) give the distribution of
  ``completions[:, t]``.

  Returns:
    float ``(B, COMPLETION_LEN, dim)``.
  """
  tokens = jnp.concatenate([jnp.asarray(prompts), jnp.asarray(completions)], axis=1)
  return model(tokens[:, :-1])[:, PROMPT_LEN - 1 :]


def token_log_probs(model: TinyLM, prompts: ArrayLike, completions: ArrayLike) -> jax.Array:
  """``log pi(c_t | prompt, c_<t)`` of each completion token, 0 after its first ``EOS``.

  Computed from the hidden states and the output kernel with
  :func:`jaxobj.losses.sequence.fused_linear_token_log_probs` (no logits held).

  Returns:
    float32 ``(B, COMPLETION_LEN)``.
  """
  completions = jnp.asarray(completions)
  hidden = completion_hidden(model, prompts, completions)
  logps = fused_linear_token_log_probs(
    hidden, completions, model.kernel[...], where=completion_mask(completions)
  )
  assert isinstance(logps, jax.Array)  # not the (log_probs, entropies) pair
  return logps


def sequence_log_prob(model: TinyLM, prompts: ArrayLike, completions: ArrayLike) -> jax.Array:
  """``log pi(c | prompt)``: the summed log-probability of each completion's tokens up to
  and including its first ``EOS``, ``(B,)``, with
  :func:`jaxobj.losses.sequence.fused_linear_sequence_log_probs`."""
  completions = jnp.asarray(completions)
  hidden = completion_hidden(model, prompts, completions)
  return fused_linear_sequence_log_probs(
    hidden, completions, model.kernel[...], where=completion_mask(completions)
  )


# --- the objectives, one per stage

SFT_OBJECTIVE = jo.term(
  jaxobj.fused_linear_cross_entropy,
  "outputs.hidden",
  "batch.targets",
  "outputs.kernel",
  name="cross_entropy",
)
"""Stage 1: next-token cross-entropy on the answer tokens, from the hidden states and
the output kernel (no logits); prompt and padding targets are ``-100`` (ignored)."""

DPO_OBJECTIVE = jo.term(
  jaxobj.dpo_loss,
  "policy.chosen",
  "policy.rejected",
  "batch.reference_chosen",
  "batch.reference_rejected",
  beta=jo.ref("hyper.beta"),
  where="batch.valid",
  name="dpo",
)
"""Stage 2: DPO on sequence log-probabilities; pairs whose rewards tie are masked out."""

GRPO_OBJECTIVE = jo.term(
  jaxobj.policy_gradient_loss,
  "policy.logps",
  "batch.old_logps",
  "batch.advantages",
  "batch.reference_logps",
  completion_mask=jo.ref("batch.mask"),
  loss_type="grpo",
  epsilon=jo.ref("hyper.epsilon"),
  beta=jo.ref("hyper.beta"),
  name="grpo",
)
"""Stage 3: GRPO's clipped surrogate per token, averaged per completion then over
completions, with the k3 KL penalty to the reference."""


# --- the batches each stage trains on, and their losses


@jax.jit
def supervised_batch(prompts: ArrayLike) -> dict[str, jax.Array]:
  """Teacher forcing: the prompt followed by its answer.

  Returns:
    ``{"inputs", "targets"}``, both int32 ``(B, PROMPT_LEN + COMPLETION_LEN - 1)``:
    ``inputs`` is the prompt and the answer less its last token; ``targets`` the next
    token where it is an answer token (up to ``EOS``) and ``-100`` elsewhere.
  """
  prompts = jnp.asarray(prompts)
  answers = target_completions(prompts)
  tokens = jnp.concatenate([prompts, answers], axis=1)
  is_answer = jnp.concatenate(
    [jnp.zeros_like(prompts, bool), completion_mask(answers) & (answers != PAD)], axis=1
  )
  targets = jnp.where(is_answer, tokens, -100)[:, 1:]
  return {"inputs": tokens[:, :-1].astype(jnp.int32), "targets": targets.astype(jnp.int32)}


def supervised_loss(model: TinyLM, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
  """:data:`SFT_OBJECTIVE` on a :func:`supervised_batch`: ``(loss, info)``."""
  outputs = {"hidden": model(batch["inputs"]), "kernel": model.kernel[...]}
  return SFT_OBJECTIVE.apply(outputs=outputs, batch=batch)


def _check_rows(prompts: jax.Array, completions: jax.Array, per_prompt: int, name: str) -> None:
  """Completions must come ``per_prompt`` to a prompt, at the fixed widths."""
  b = prompts.shape[0]
  if prompts.shape != (b, PROMPT_LEN) or completions.shape != (b * per_prompt, COMPLETION_LEN):
    raise ValueError(
      f"expected prompts ({b}, {PROMPT_LEN}) and completions ({b} * {name}="
      f"{per_prompt}, {COMPLETION_LEN}), got prompts.shape={prompts.shape} and "
      f"completions.shape={completions.shape}; sample {name} completions per prompt, "
      f"a prompt's completions in consecutive rows (jnp.repeat(prompts, {name}, axis=0))."
    )


def _pair_log_probs(model: TinyLM, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """Sequence log-probabilities of the chosen and the rejected completions, in one pass
  of the model over both."""
  prompts = jnp.concatenate([batch["prompts"], batch["prompts"]])
  both = sequence_log_prob(model, prompts, jnp.concatenate([batch["chosen"], batch["rejected"]]))
  return both[: len(both) // 2], both[len(both) // 2 :]


def dpo_batch(
  reference: TinyLM, prompts: ArrayLike, completions: ArrayLike, *, samples: int
) -> dict[str, jax.Array]:
  """Preference pairs from sampled completions: of the ``samples`` completions of each
  prompt, the one with the highest reward is chosen and the one with the lowest rejected.

  Args:
    reference: the frozen reference model.
    prompts: int ``(B, PROMPT_LEN)``.
    completions: int ``(B * samples, COMPLETION_LEN)``, sampled from the policy: rows
      ``i * samples`` to ``(i + 1) * samples - 1`` answer prompt ``i``.
    samples: completions per prompt.

  Returns:
    ``{"prompts", "chosen", "rejected", "valid", "reference_chosen",
    "reference_rejected", "rewards"}``: ``valid`` is False where the two rewards tie
    (no preference); ``reference_*`` are the reference's sequence log-probabilities
    (under ``stop_gradient``); ``rewards`` are those of all ``B * samples`` completions.
  """
  prompts, completions = jnp.asarray(prompts), jnp.asarray(completions)
  _check_rows(prompts, completions, samples, "samples")
  rewards = reward(jnp.repeat(prompts, samples, axis=0), completions)
  r = rewards.reshape(-1, samples)
  c = completions.reshape(r.shape[0], samples, -1)
  rows = jnp.arange(r.shape[0])
  best, worst = jnp.argmax(r, axis=1), jnp.argmin(r, axis=1)
  batch = {"prompts": prompts, "chosen": c[rows, best], "rejected": c[rows, worst]}
  ref_chosen, ref_rejected = jax.lax.stop_gradient(_pair_log_probs(reference, batch))
  return {
    **batch,
    "valid": r[rows, best] > r[rows, worst],
    "reference_chosen": ref_chosen,
    "reference_rejected": ref_rejected,
    "rewards": rewards,
  }


def dpo_batch_loss(
  model: TinyLM, batch: dict[str, jax.Array], *, beta: float | ArrayLike = 0.1
) -> tuple[jax.Array, dict]:
  """:data:`DPO_OBJECTIVE` on a :func:`dpo_batch`: ``(loss, info)``."""
  chosen, rejected = _pair_log_probs(model, batch)
  policy = {"chosen": chosen, "rejected": rejected}
  return DPO_OBJECTIVE.apply(policy=policy, batch=batch, hyper={"beta": beta})


def grpo_batch(
  policy: TinyLM,
  reference: TinyLM,
  prompts: ArrayLike,
  completions: ArrayLike,
  *,
  group_size: int,
) -> dict[str, jax.Array]:
  """Groups of completions with their group-relative advantages.

  Args:
    policy: the model that sampled the completions (the behaviour policy).
    reference: the frozen reference model (for the KL penalty).
    prompts: int ``(B, PROMPT_LEN)``.
    completions: int ``(B * group_size, COMPLETION_LEN)``, sampled from ``policy``: a
      prompt's group is consecutive.
    group_size: completions per prompt (GRPO's :math:`G`).

  Returns:
    ``{"prompts", "completions", "mask", "rewards", "advantages", "old_logps",
    "reference_logps"}``, with ``B * group_size`` rows (``prompts`` repeated);
    ``old_logps`` and ``reference_logps`` are per-token, ``(rows, COMPLETION_LEN)``,
    under ``policy`` and ``reference`` (under ``stop_gradient``).
  """
  prompts, completions = jnp.asarray(prompts), jnp.asarray(completions)
  _check_rows(prompts, completions, group_size, "group_size")
  repeated = jnp.repeat(prompts, group_size, axis=0)
  rewards = reward(repeated, completions)
  return {
    "prompts": repeated,
    "completions": completions,
    "mask": completion_mask(completions),
    "rewards": rewards,
    "advantages": jaxobj.group_advantages(rewards, group_size=group_size),
    "old_logps": jax.lax.stop_gradient(token_log_probs(policy, repeated, completions)),
    "reference_logps": jax.lax.stop_gradient(token_log_probs(reference, repeated, completions)),
  }


def grpo_batch_loss(
  model: TinyLM,
  batch: dict[str, jax.Array],
  *,
  epsilon: float | ArrayLike = 0.2,
  beta: float | ArrayLike = 0.04,
) -> tuple[jax.Array, dict]:
  """:data:`GRPO_OBJECTIVE` on a :func:`grpo_batch`: ``(loss, info)``."""
  policy = {"logps": token_log_probs(model, batch["prompts"], batch["completions"])}
  hyper = {"epsilon": epsilon, "beta": beta}
  return GRPO_OBJECTIVE.apply(policy=policy, batch=batch, hyper=hyper)


# --- the stages: one jitted step each, in a Python loop

_ADAM = optax.scale_by_adam()


class StageResult(NamedTuple):
  """What a stage returns."""

  params: Any
  """The model state after the stage (``nnx.merge(graphdef, params)`` is the model)."""
  rewards: np.ndarray
  """Mean reward of the completions sampled at each step, ``(steps,)``."""
  losses: np.ndarray
  """The stage's objective at each step (before its update), ``(steps,)``."""


def _value_and_grad(loss: Callable, graphdef: nnx.GraphDef, params: Any, *args, **kwargs):
  def f(params):
    return loss(nnx.merge(graphdef, params), *args, **kwargs)

  (value, _), grads = jax.value_and_grad(f, has_aux=True)(params)
  return value, grads


def _adam(params: Any, opt_state: Any, grads: Any, learning_rate: jax.Array):
  updates, opt_state = _ADAM.update(grads, opt_state, params)
  return jax.tree.map(lambda p, u: p - learning_rate * u, params, updates), opt_state


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size"))
def _supervised_step(graphdef, params, opt_state, key, learning_rate, *, batch_size):
  k_prompt, k_sample = jax.random.split(key)
  prompts = make_prompts(k_prompt, batch_size)
  loss, grads = _value_and_grad(supervised_loss, graphdef, params, supervised_batch(prompts))
  # The reward of the model as it is before the step, sampled as the RL stages sample.
  completions = sample_completions(graphdef, params, prompts, k_sample)
  params, opt_state = _adam(params, opt_state, grads, learning_rate)
  return params, opt_state, loss, jnp.mean(reward(prompts, completions))


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size", "samples"))
def _dpo_step(graphdef, params, reference, opt_state, key, hyper, *, batch_size, samples):
  k_prompt, k_sample = jax.random.split(key)
  prompts = make_prompts(k_prompt, batch_size)
  repeated = jnp.repeat(prompts, samples, axis=0)
  completions = sample_completions(graphdef, params, repeated, k_sample)
  batch = dpo_batch(nnx.merge(graphdef, reference), prompts, completions, samples=samples)
  loss, grads = _value_and_grad(dpo_batch_loss, graphdef, params, batch, beta=hyper["beta"])
  params, opt_state = _adam(params, opt_state, grads, hyper["learning_rate"])
  return params, opt_state, loss, jnp.mean(batch["rewards"])


@functools.partial(
  jax.jit, static_argnames=("graphdef", "batch_size", "group_size", "updates_per_batch")
)
def _grpo_step(
  graphdef, params, reference, opt_state, key, hyper, *, batch_size, group_size, updates_per_batch
):
  k_prompt, k_sample = jax.random.split(key)
  prompts = make_prompts(k_prompt, batch_size)
  repeated = jnp.repeat(prompts, group_size, axis=0)
  completions = sample_completions(graphdef, params, repeated, k_sample)
  policy, ref = nnx.merge(graphdef, params), nnx.merge(graphdef, reference)
  batch = grpo_batch(policy, ref, prompts, completions, group_size=group_size)
  first = None
  # Several updates per sampled batch: from the second on, the policy has moved away
  # from the behaviour policy (old_logps) and the clipped ratio matters.
  for _ in range(updates_per_batch):
    loss, grads = _value_and_grad(
      grpo_batch_loss, graphdef, params, batch, epsilon=hyper["epsilon"], beta=hyper["beta"]
    )
    first = loss if first is None else first
    params, opt_state = _adam(params, opt_state, grads, hyper["learning_rate"])
  return params, opt_state, first, jnp.mean(batch["rewards"])


def _run(step: Callable, params: Any, key: jax.Array, steps: int) -> StageResult:
  opt_state = _ADAM.init(params)
  rewards, losses = [], []
  for k in jax.random.split(key, steps):
    params, opt_state, loss, mean_reward = step(params, opt_state, k)
    rewards.append(mean_reward)
    losses.append(loss)
  return StageResult(params, np.asarray(rewards), np.asarray(losses))


def supervised_stage(
  graphdef: nnx.GraphDef,
  params: Any,
  key: jax.Array,
  *,
  steps: int = 25,
  batch_size: int = 64,
  learning_rate: float = 3e-3,
) -> StageResult:
  """Stage 1: supervised warm-up on the right answers (:data:`SFT_OBJECTIVE`).

  Args:
    graphdef, params: ``nnx.split(model)``.
    key: a PRNG key (prompts, and the completions sampled to measure the reward).
    steps: Adam steps, each on ``batch_size`` fresh prompts.
    batch_size: prompts per step.
    learning_rate: Adam's step size.
  """
  lr = jnp.float32(learning_rate)

  def step(p, o, k):
    return _supervised_step(graphdef, p, o, k, lr, batch_size=batch_size)

  return _run(step, params, key, steps)


def dpo_stage(
  graphdef: nnx.GraphDef,
  params: Any,
  key: jax.Array,
  *,
  reference: Any = None,
  steps: int = 30,
  batch_size: int = 32,
  samples: int = 4,
  learning_rate: float = 3e-3,
  beta: float = 0.1,
) -> StageResult:
  r"""Stage 2: online DPO (:data:`DPO_OBJECTIVE`) on pairs the policy generates.

  At every step ``samples`` completions are sampled per prompt from the current policy,
  the best and the worst (by reward) make a pair, and the policy takes one step of DPO
  against the frozen reference.

  Args:
    graphdef, params: ``nnx.split(model)``.
    key: a PRNG key.
    reference: the reference model's state (default: a frozen copy of ``params``).
    steps: Adam steps, each on ``batch_size`` fresh prompts.
    batch_size: prompts (pairs) per step.
    samples: completions sampled per prompt.
    learning_rate: Adam's step size.
    beta: DPO's :math:`\beta`.
  """
  reference = jax.tree.map(jnp.copy, params if reference is None else reference)
  hyper = {"learning_rate": jnp.float32(learning_rate), "beta": jnp.float32(beta)}

  def step(p, o, k):
    return _dpo_step(graphdef, p, reference, o, k, hyper, batch_size=batch_size, samples=samples)

  return _run(step, params, key, steps)


def grpo_stage(
  graphdef: nnx.GraphDef,
  params: Any,
  key: jax.Array,
  *,
  reference: Any = None,
  steps: int = 100,
  batch_size: int = 16,
  group_size: int = 8,
  updates_per_batch: int = 1,
  learning_rate: float = 2e-3,
  epsilon: float = 0.2,
  beta: float = 0.04,
) -> StageResult:
  r"""Stage 3: GRPO (:data:`GRPO_OBJECTIVE`) with groups sampled from the policy.

  At every step ``group_size`` completions are sampled per prompt, their rewards turned
  into group-relative advantages (:func:`jaxobj.group_advantages`), and the policy
  takes ``updates_per_batch`` steps of the clipped surrogate with the sampling policy's
  log-probabilities as ``old_logps``.

  Args:
    graphdef, params: ``nnx.split(model)``.
    key: a PRNG key.
    reference: the reference model's state for the KL penalty (default: a frozen copy
      of ``params``).
    steps: sampled batches, each of ``batch_size`` fresh prompts.
    batch_size: prompts per step.
    group_size: completions per prompt (GRPO's :math:`G`).
    updates_per_batch: Adam steps on each sampled batch (GRPO's :math:`\mu`).
    learning_rate: Adam's step size.
    epsilon: the clip range.
    beta: the KL coefficient.
  """
  reference = jax.tree.map(jnp.copy, params if reference is None else reference)
  hyper = {
    "learning_rate": jnp.float32(learning_rate),
    "epsilon": jnp.float32(epsilon),
    "beta": jnp.float32(beta),
  }
  sizes = {"batch_size": batch_size, "group_size": group_size}

  def step(p, o, k):
    return _grpo_step(
      graphdef, p, reference, o, k, hyper, updates_per_batch=updates_per_batch, **sizes
    )

  return _run(step, params, key, steps)
