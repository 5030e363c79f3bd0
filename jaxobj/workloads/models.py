"""Small Flax NNX models for configs: MLP, CNN, dual encoder, VAE.

Every model is called as ``model(batch, key=None)`` on a dict of arrays and
reads its input(s) by name (``input="x"`` by default); ``key`` feeds models
that sample (the VAE) and is ``None`` at evaluation. A config's ``model:``
section names the model and sets its keyword arguments; the input sizes come
from the data.

``outputs`` sets the heads of the MLP and the CNN: an integer ``k`` gives one
head of ``k`` logits (``k == 1`` gives one value per example, shape ``(B,)``),
a mapping ``{name: k}`` gives a dict of heads (multi-task), read by an
objective as ``outputs.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["MLP", "CNN", "DualEncoder", "VAE", "MODELS", "INFERRED", "build_model"]

Outputs = jax.Array | dict[str, jax.Array]
"""What a model returns: one array, or a dict of heads (``outputs.<name>`` in a config)."""

Activation = Literal["relu", "gelu", "tanh", "silu", "elu", "softplus"]
ACTIVATIONS: dict[str, Callable] = {
  "relu": jax.nn.relu,
  "gelu": jax.nn.gelu,
  "tanh": jnp.tanh,
  "silu": jax.nn.silu,
  "elu": jax.nn.elu,
  "softplus": jax.nn.softplus,
}


class _Stack(nnx.Module):
  """Linear layers with an activation between them (and none after the last)."""

  def __init__(
    self, sizes: Sequence[int], activation: str, rngs: nnx.Rngs, *, last_activation: bool = False
  ) -> None:
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
    self.activation = activation
    self.last_activation = last_activation

  def __call__(self, x):
    act = ACTIVATIONS[self.activation]
    for i, layer in enumerate(self.layers):
      x = layer(x)
      if i < len(self.layers) - 1 or self.last_activation:
        x = act(x)
    return x


class _Heads(nnx.Module):
  """One linear head (``outputs`` an int) or a dict of them (a mapping)."""

  def __init__(self, features: int, outputs, rngs: nnx.Rngs):
    self.names = None if isinstance(outputs, int) else tuple(outputs)
    sizes = {"": outputs} if self.names is None else dict(outputs)
    for name, k in sizes.items():
      if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(
          f"outputs{'.' + name if name else ''}={k!r}: a head has a positive "
          "integer number of outputs."
        )
    self.sizes = sizes
    self.heads = nnx.Dict(
      {name or "out": nnx.Linear(features, k, rngs=rngs) for name, k in sizes.items()}
    )

  def __call__(self, h):
    def head(name, k):
      y = self.heads[name or "out"](h)
      return y[..., 0] if k == 1 else y

    if self.names is None:
      return head("", self.sizes[""])
    return {name: head(name, self.sizes[name]) for name in self.names}


def _read(batch, name: str, model: str):
  if name not in batch:
    raise KeyError(
      f"{model} reads batch[{name!r}], but the data has "
      f"{', '.join(sorted(batch))}; set model.input (or inputs)."
    )
  return batch[name]


def _check_widths(hidden):
  if any(not isinstance(h, int) or h < 1 for h in hidden):
    raise ValueError(f"hidden={tuple(hidden)}: widths are positive integers.")


class MLP(nnx.Module):
  """A multilayer perceptron on ``batch[input]`` (flattened after the batch axis)."""

  def __init__(
    self,
    in_features: int,
    *,
    hidden: Sequence[int] = (32, 32),
    outputs: int | Mapping[str, int] = 1,
    activation: Activation = "relu",
    input: str = "x",
    rngs: nnx.Rngs,
  ) -> None:
    _check_widths(hidden)
    self.input = input
    self.trunk = _Stack([in_features, *hidden], activation, rngs, last_activation=True)
    self.heads = _Heads(([in_features, *hidden])[-1], outputs, rngs)

  @classmethod
  def from_batch(cls, batch: Mapping[str, Any], *, rngs: nnx.Rngs, **kwargs: Any) -> Self:
    x = _read(batch, kwargs.get("input", "x"), "mlp")
    return cls(int(np.prod(x.shape[1:])), rngs=rngs, **kwargs)

  def __call__(self, batch: Mapping[str, jax.Array], *, key: jax.Array | None = None) -> Outputs:
    del key
    x = _read(batch, self.input, "mlp")
    return self.heads(self.trunk(x.reshape(x.shape[0], -1)))


class CNN(nnx.Module):
  """A small convolutional net on images ``(B, H, W)`` or ``(B, H, W, C)``:
  3×3 convolutions with 2×2 average pooling, then a hidden layer and heads."""

  def __init__(
    self,
    in_shape: tuple[int, ...],
    *,
    channels: Sequence[int] = (8, 16),
    kernel_size: int = 3,
    hidden: int = 32,
    outputs: int | Mapping[str, int] = 1,
    activation: Activation = "relu",
    input: str = "x",
    rngs: nnx.Rngs,
  ) -> None:
    _check_widths([*channels, hidden, kernel_size])
    h, w, c = (*in_shape, 1) if len(in_shape) == 2 else in_shape
    self.input = input
    self.activation = activation
    sizes = [c, *channels]
    self.convs = nnx.List(
      [nnx.Conv(a, b, (kernel_size, kernel_size), rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
    )
    for _ in channels:
      h, w = max(h // 2, 1), max(w // 2, 1)
    self.dense = nnx.Linear(h * w * sizes[-1], hidden, rngs=rngs)
    self.heads = _Heads(hidden, outputs, rngs)

  @classmethod
  def from_batch(cls, batch: Mapping[str, Any], *, rngs: nnx.Rngs, **kwargs: Any) -> Self:
    x = _read(batch, kwargs.get("input", "x"), "cnn")
    if x.ndim not in (3, 4):
      raise ValueError(
        f"cnn needs images (B, H, W) or (B, H, W, C); batch[{kwargs.get('input', 'x')!r}] "
        f"has shape {x.shape}."
      )
    return cls(tuple(x.shape[1:]), rngs=rngs, **kwargs)

  def __call__(self, batch: Mapping[str, jax.Array], *, key: jax.Array | None = None) -> Outputs:
    del key
    act = ACTIVATIONS[self.activation]
    x = _read(batch, self.input, "cnn")
    x = x[..., None] if x.ndim == 3 else x
    for conv in self.convs:
      x = act(conv(x))
      window = (min(2, x.shape[1]), min(2, x.shape[2]))
      x = nnx.avg_pool(x, window, strides=window)
    return self.heads(act(self.dense(x.reshape(x.shape[0], -1))))


class DualEncoder(nnx.Module):
  """Two MLP towers mapping paired inputs into one embedding space:
  ``{name: (B, embed_dim)}`` for each name in ``inputs`` (the contrastive
  losses normalize the embeddings themselves)."""

  def __init__(
    self,
    in_features: Mapping[str, int],
    *,
    hidden: Sequence[int] = (64,),
    embed_dim: int = 16,
    activation: Activation = "relu",
    inputs: Sequence[str] = ("image", "text"),
    rngs: nnx.Rngs,
  ) -> None:
    _check_widths([*hidden, embed_dim])
    self.inputs = tuple(inputs)
    self.towers = nnx.Dict(
      {
        name: _Stack([in_features[name], *hidden, embed_dim], activation, rngs)
        for name in self.inputs
      }
    )

  @classmethod
  def from_batch(cls, batch: Mapping[str, Any], *, rngs: nnx.Rngs, **kwargs: Any) -> Self:
    names = tuple(kwargs.get("inputs", ("image", "text")))
    if len(names) != 2:
      raise ValueError(f"dual_encoder.inputs={names}: name the two paired inputs.")
    sizes = {n: int(np.prod(_read(batch, n, "dual_encoder").shape[1:])) for n in names}
    return cls(sizes, rngs=rngs, **kwargs)

  def __call__(self, batch: Mapping[str, jax.Array], *, key: jax.Array | None = None) -> Outputs:
    del key
    return {
      name: self.towers[name](_read(batch, name, "dual_encoder").reshape(batch[name].shape[0], -1))
      for name in self.inputs
    }


class VAE(nnx.Module):
  """A variational autoencoder with a Gaussian posterior and Bernoulli logits.

  Outputs ``{"logits", "mean", "log_variance", "z"}``: the decoder's logits
  for ``batch[input]`` (flattened), the posterior's parameters and the sample
  (the mean when ``key`` is ``None``).
  """

  def __init__(
    self,
    in_features: int,
    *,
    hidden: Sequence[int] = (64,),
    latent: int = 4,
    activation: Activation = "relu",
    input: str = "x",
    rngs: nnx.Rngs,
  ) -> None:
    _check_widths([*hidden, latent])
    self.input = input
    self.encoder = _Stack([in_features, *hidden], activation, rngs, last_activation=True)
    self.mean = nnx.Linear(hidden[-1] if hidden else in_features, latent, rngs=rngs)
    self.log_variance = nnx.Linear(hidden[-1] if hidden else in_features, latent, rngs=rngs)
    self.decoder = _Stack([latent, *reversed(hidden), in_features], activation, rngs)

  @classmethod
  def from_batch(cls, batch: Mapping[str, Any], *, rngs: nnx.Rngs, **kwargs: Any) -> Self:
    x = _read(batch, kwargs.get("input", "x"), "vae")
    return cls(int(np.prod(x.shape[1:])), rngs=rngs, **kwargs)

  def __call__(self, batch: Mapping[str, jax.Array], *, key: jax.Array | None = None) -> Outputs:
    x = _read(batch, self.input, "vae")
    h = self.encoder(x.reshape(x.shape[0], -1))
    mean, log_variance = self.mean(h), self.log_variance(h)
    z = mean
    if key is not None:
      z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)
    return {"logits": self.decoder(z), "mean": mean, "log_variance": log_variance, "z": z}


MODELS: dict[str, Any] = {"mlp": MLP, "cnn": CNN, "dual_encoder": DualEncoder, "vae": VAE}

# Arguments a model takes from the data, not from the config.
INFERRED = ("in_features", "in_shape", "rngs")


def build_model(
  name: str, kwargs: Mapping[str, Any], batch: Mapping[str, Any], *, seed: int = 0
) -> nnx.Module:
  """``MODELS[name]`` built for inputs shaped like ``batch``.

  The parameters are initialized in one compiled call (eagerly, every
  initializer would compile on its own: seconds on a small CPU).
  """
  shapes = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for k, v in batch.items()}

  def create():
    return MODELS[name].from_batch(shapes, rngs=nnx.Rngs(seed), **dict(kwargs))

  graphdef, _ = nnx.split(nnx.eval_shape(create))
  return nnx.merge(graphdef, jax.jit(lambda: nnx.split(create())[1])())
