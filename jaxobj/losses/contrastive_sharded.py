r"""CLIP and SigLIP over a batch split across the devices of a mesh.

The same losses as :func:`jaxobj.clip_loss` and :func:`jaxobj.siglip_loss`
(and their one-device chunked forms, :func:`jaxobj.chunked_clip_loss` and
:func:`jaxobj.chunked_siglip_loss`), exact over the whole batch: every text on
every device is a negative. The blockwise kernels live in
:mod:`jaxobj._src.contrastive_sweep`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxobj._src import checks
from jaxobj._src import contrastive_blockwise as blockwise
from jaxobj._src.embedding_pairs import pair
from jaxobj._src.examples import contrastive as examples
from jaxobj._src.logit_scale import cap_log_temperature
from jaxobj._src.reduce import Reduced, reduce_total
from jaxobj.losses.contrastive import CLIP_LOG_TEMPERATURE, SIGLIP_BIAS, SIGLIP_LOG_TEMPERATURE
from jaxobj.registry import register

__all__ = ["sharded_clip_loss", "sharded_siglip_loss"]


def _axes(axis_name) -> tuple:
  return axis_name if isinstance(axis_name, tuple) else (axis_name,)


def _on_mesh(
  kind, image_embeddings, text_embeddings, log_temperature, bias, *, mesh, axis_name, **kw
):
  """Global arrays split over ``mesh`` along ``axis_name``, then :func:`blockwise.blockwise_loss`
  inside ``shard_map``."""
  names = ("image_embeddings", "text_embeddings")
  x, y = pair(image_embeddings, text_embeddings, names)
  if axis_name is None:
    if len(mesh.axis_names) != 1:
      raise ValueError(
        f"mesh has axes {tuple(mesh.axis_names)}: pass axis_name= to say which one "
        f"the batch is split over."
      )
    axis_name = mesh.axis_names[0]
  unknown = [a for a in _axes(axis_name) if a not in mesh.axis_names]
  if unknown:
    raise ValueError(
      f"axis_name={axis_name!r} is not an axis of the mesh, whose axes "
      f"are {tuple(mesh.axis_names)}."
    )
  size = math.prod(mesh.shape[a] for a in _axes(axis_name))
  batch_shape = x.shape[:-1]
  rows = math.prod(batch_shape)
  if rows % size:
    raise ValueError(
      f"the batch of {rows} pairs ({names[0]}.shape={x.shape}) does not split evenly "
      f"over the {size} devices of mesh axis {axis_name!r}. Pad the batch to a "
      f"multiple of {size} and mask the padding out with where= (a masked pair is "
      f"removed from the loss exactly)."
    )
  where, weights, reduction = kw.pop("where"), kw.pop("weights"), kw["reduction"]
  data = {"x": x.reshape(rows, -1), "y": y.reshape(rows, -1)}
  if where is not None:
    data["where"] = jnp.broadcast_to(checks.as_mask(where, batch_shape), batch_shape).reshape(rows)
  if weights is not None:
    w = checks.as_float(weights, "weights")
    checks.check_broadcastable("weights", w, batch_shape)
    data["weights"] = jnp.broadcast_to(w, batch_shape).reshape(rows)
  split = jax.sharding.NamedSharding(mesh, jax.P(axis_name))
  data = {k: jax.reshard(v, split) for k, v in data.items()}
  hyper = (jnp.asarray(log_temperature, x.dtype), jnp.asarray(bias, x.dtype))

  if reduction != "none":
    # The whole batch's (sum, count), psummed inside and so replicated: the
    # reduction is finished outside shard_map.
    kw["reduction"] = "sum_and_count"

  def local(data, hyper):
    return blockwise.blockwise_loss(
      kind,
      data["x"],
      data["y"],
      *hyper,
      axis_name=axis_name,
      where=data.get("where"),
      weights=data.get("weights"),
      **kw,
    )

  if reduction == "none":
    out = jax.shard_map(
      local, mesh=mesh, in_specs=(jax.P(axis_name), jax.P()), out_specs=jax.P(axis_name)
    )(data, hyper)
    return out.reshape(batch_shape)
  total, count = jax.shard_map(
    local, mesh=mesh, in_specs=(jax.P(axis_name), jax.P()), out_specs=(jax.P(), jax.P())
  )(data, hyper)
  return reduce_total(total, count, reduction)


def _scale_loss(kind, image_embeddings, text_embeddings, log_temperature, bias, *, mesh=None, **kw):
  checks.check_reduction(kw["reduction"])
  blockwise.check_block_size(kw["block_size"])
  blockwise.check_method(kw["method"])
  if mesh is not None:
    return _on_mesh(kind, image_embeddings, text_embeddings, log_temperature, bias, mesh=mesh, **kw)
  return blockwise.blockwise_loss(
    kind, image_embeddings, text_embeddings, log_temperature, bias, **kw
  )


_SHARDED_DOC = r"""

  **Where the batch lives.** Three ways to call it:

  * inside ``jax.shard_map`` with ``axis_name`` (the usual way in a training
    step written per device): the inputs are this device's shards of the
    batch (``where``/``weights`` too), in device order along the axis. The
    per-pair losses are those of the *whole* batch: every text on every
    device is a negative. ``"mean"`` and ``"sum"`` return the whole-batch
    value, the same on every device (use ``out_specs=P()``);
    ``reduction="none"`` returns this device's pairs' losses (use
    ``out_specs=P(axis_name)``). Take gradients inside the ``shard_map`` or
    outside it under ``jax.jit``; with ``check_vma=False`` only outside::

      def step(x, y):  # this device's rows
        return jax.value_and_grad(lambda x, y: {name}(
            x, y, axis_name="data"), argnums=(0, 1))(x, y)

      step = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P("data"), P("data")),
                                   out_specs=(P(), (P("data"), P("data")))))

  * with global arrays and ``mesh`` (under ``jax.jit`` or not): the batch is
    split over ``axis_name`` (the mesh's only axis by default) and the loss
    runs in ``shard_map`` as above. The number of pairs must be a multiple of
    the axis size.
  * with neither: one device, exactly {chunked}.

  **Methods.** ``"ring"``: each device keeps its images, and the blocks of
  texts travel around the axis with ``ppermute`` (``N`` steps for ``N``
  devices), carrying their partial results (column log-sum-exps, gradients)
  until they are home again. SigLIP's value and gradient take one turn,
  CLIP's two (statistics, then gradients); with ``reduction="none"`` the
  backward pass takes one more. Per-device memory depends on the local batch
  only, not on ``N``. ``"all_gather"``: every device gathers all texts, and
  their partial results are reduced back (a log-sum-exp merge, a
  ``psum_scatter`` of the gradient): fewer, larger messages, memory growing
  with ``N``; a good choice for a handful of devices. Both compute in blocks
  of ``block_size`` texts.

  **Multi-host.** Nothing changes: initialize JAX on every host, build a mesh
  over all devices and pass global arrays (or call it inside your
  ``shard_map``)::

      jax.distributed.initialize()  # once per host, before any JAX work
      mesh = jax.make_mesh((jax.device_count(),), ("data",))
      x = jax.make_array_from_process_local_data(
          NamedSharding(mesh, P("data")), local_images)
      y = jax.make_array_from_process_local_data(
          NamedSharding(mesh, P("data")), local_texts)
      loss = jax.jit(lambda x, y: {name}(x, y, mesh=mesh))(x, y)

  Every host then holds the same whole-batch loss.
"""


_SHARDED_ARGS = """
    axis_name: the mesh axis (or tuple of axes) the batch is split over.
    mesh: a ``jax.sharding.Mesh`` for global inputs; ``None`` inside
      ``shard_map`` or on one device.
    method: ``"ring"`` or ``"all_gather"``.
    block_size: text embeddings per block (a Python int); ``None`` picks about
      :math:`2^{21}` logits per block.
    where: boolean mask over pairs (this device's, inside ``shard_map``); a
      masked pair is removed from the batch on every device.
    weights, reduction: the loss contract (:func:`jaxobj.reduce_loss`); the
      mean divides by the whole batch's count or weight.

  Returns:
    The whole batch's reduced loss; this device's per-pair losses for
    ``reduction="none"`` inside ``shard_map`` (all of them with ``mesh``).

  Raises:
    ValueError: shapes differ, ``block_size < 1``, ``max_logit_scale <= 0``, an unknown ``method``,
      an ``axis_name`` that is not in scope or not an axis of ``mesh``, or a
      batch that does not split evenly over the axis.
    TypeError: integer embeddings, or a ``block_size`` that is not an int.
"""


def _sharding_doc(chunked: str):
  """Puts the shared text of the sharded losses where ``{sharding}`` (the
  layouts) and ``{sharded_args}`` (the common arguments, returns and raises)
  stand."""

  def decorate(fn):
    text = _SHARDED_DOC.replace("{chunked}", f":func:`{chunked}`").replace(
      "{name}", f"jaxobj.{fn.__name__}"
    )
    doc = fn.__doc__.replace("\n  {sharding}\n", text.rstrip("\n") + "\n")
    fn.__doc__ = doc.replace("\n    {sharded_args}\n", _SHARDED_ARGS.rstrip("\n") + "\n")
    return fn

  return decorate


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
@_sharding_doc("chunked_clip_loss")
def sharded_clip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = CLIP_LOG_TEMPERATURE,
  max_logit_scale: float | ArrayLike | None = None,
  axis_name: str | tuple[str, ...] | None = None,
  mesh: jax.sharding.Mesh | None = None,
  method: str = "ring",
  block_size: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""CLIP loss over a batch split across devices, exact, every text a negative.

  .. math::
     S_{ij} = e^{t'} \cos(x_i, y_j), \qquad
     \ell_i = \tfrac12\Big[\big(\operatorname{lse}_j S_{ij} - S_{ii}\big)
       + \big(\operatorname{lse}_j S_{ji} - S_{ii}\big)\Big]

  over the whole (global) batch: the same loss as :func:`clip_loss` on the
  concatenated shards, with its hyperparameter, masks, weights and
  reductions; values and gradients agree to float rounding. With the ring,
  each device accumulates its images' image → text log-sum-exps online as
  the text blocks pass, and each text block carries its own text → image
  log-sum-exp around the ring and home; the backward pass goes round again.
  Per-device memory at 1024 pairs per device, :math:`D = 512`, float32: the
  ring's temporaries are about 16 MiB at 4, 8 or 16 devices, where an
  all-gather of the dense logits needs 96, 192 and 385 MiB.

  {sharding}

  Args:
    image_embeddings: float ``(..., D)``: this device's pairs inside
      ``shard_map``, the global batch with ``mesh``.
    text_embeddings: the paired text embeddings, same shape.
    log_temperature: :math:`t'` (traceable; replicated over the devices).
    max_logit_scale: optional cap on :math:`e^{t'}`, as for :func:`clip_loss`.
    {sharded_args}

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> mesh = jax.make_mesh((1,), ("data",))  # all devices: (jax.device_count(),)
    >>> e = jnp.eye(2)  # the value of clip_loss's example
    >>> print(round(float(jaxobj.sharded_clip_loss(e, e, log_temperature=0.0,
    ...                                            mesh=mesh)), 4))
    0.3133

  References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021; Liu et al., "Ring Attention with Blockwise
    Transformers for Near-Infinite Context", ICLR 2024 (the ring layout).
  """
  return _scale_loss(
    "clip",
    image_embeddings,
    text_embeddings,
    cap_log_temperature(log_temperature, max_logit_scale),
    0.0,
    mesh=mesh,
    block_size=block_size,
    axis_name=axis_name,
    method=method,
    where=where,
    weights=weights,
    reduction=reduction,
  )


@register("contrastive", inputs=examples.VIEWS, couples_rows=True)
@_sharding_doc("chunked_siglip_loss")
def sharded_siglip_loss(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  log_temperature: float | ArrayLike = SIGLIP_LOG_TEMPERATURE,
  bias: float | ArrayLike = SIGLIP_BIAS,
  max_logit_scale: float | ArrayLike | None = None,
  axis_name: str | tuple[str, ...] | None = None,
  mesh: jax.sharding.Mesh | None = None,
  method: str = "ring",
  block_size: int | None = None,
  where: ArrayLike | None = None,
  weights: ArrayLike | None = None,
  reduction: str = "mean",
) -> Reduced:
  r"""SigLIP loss over a batch split across devices, exact, every text a negative.

  .. math::
     z_{ij} = e^{t'} \cos(x_i, y_j) + b, \qquad
     \ell_i = -\log\sigma(z_{ii}) - \sum_{j \ne i} \log\sigma(-z_{ij})

  over the whole (global) batch: the same loss as :func:`siglip_loss` on the
  concatenated shards, with its hyperparameters, masks, weights and
  reductions; values and gradients agree to float rounding. The pairwise
  terms are independent, so with the ring each device adds its images'
  terms against each text block as it passes (the positives only in the
  block that started on this device: :math:`\operatorname{softplus}(-z)`
  there, :math:`\operatorname{softplus}(z)` everywhere else), and the text
  block carries its gradient home. This is the chunked form of the paper's
  device-by-device computation. Per-device memory at 1024 pairs per device,
  :math:`D = 512`, float32: under 20 MiB of temporaries with the ring at 4,
  8 or 16 devices, where an all-gather grows with the number of devices.

  {sharding}

  Args:
    image_embeddings: float ``(..., D)``: this device's pairs inside
      ``shard_map``, the global batch with ``mesh``.
    text_embeddings: the paired text embeddings, same shape.
    log_temperature: :math:`t'` (traceable; replicated over the devices).
    bias: :math:`b` (traceable; replicated over the devices).
    max_logit_scale: optional cap on :math:`e^{t'}`, as for :func:`siglip_loss`.
    {sharded_args}

  Example:
    >>> import jax, jax.numpy as jnp, jaxobj
    >>> mesh = jax.make_mesh((1,), ("batch",))  # all devices: (jax.device_count(),)
    >>> e = jnp.array([[1.0, 0.0], [-1.0, 0.0]])  # z = +1 on the diagonal, -1 off it
    >>> print(jaxobj.sharded_siglip_loss(e, e, log_temperature=0.0, bias=0.0, mesh=mesh,
    ...                                  axis_name="batch", reduction="none"))
    [0.6265 0.6265]

  References:
    Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.
  """
  return _scale_loss(
    "siglip",
    image_embeddings,
    text_embeddings,
    cap_log_temperature(log_temperature, max_logit_scale),
    bias,
    mesh=mesh,
    block_size=block_size,
    axis_name=axis_name,
    method=method,
    where=where,
    weights=weights,
    reduction=reduction,
  )
