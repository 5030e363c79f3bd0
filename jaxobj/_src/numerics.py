"""Small numerical building blocks shared across loss families."""

import jax
import jax.numpy as jnp


def abs_with_sign_grad(x: jax.Array) -> jax.Array:
  """``|x|`` whose gradient is ``sign(x)``: 0 at 0, not ``jnp.abs``'s 1.

  The zero subgradient is the one that keeps an L1-penalized weight, or an
  exact prediction under absolute error, where it is.
  """
  return x * jax.lax.stop_gradient(jnp.sign(x))


def varying_axes(x) -> frozenset:
  """The mesh axes ``x`` differs over inside ``shard_map`` (empty outside it)."""
  manual = getattr(jax.typeof(x), "manual_axis_type", None)
  return frozenset(manual.varying) if manual is not None else frozenset()


def vary_like(x, *refs):
  """``x`` (a pytree) marked as varying over every mesh axis ``refs`` vary over.

  Inside ``shard_map`` a loop needs its initial carry to have the type the
  body returns; a carry built from constants is invariant while the body
  mixes in per-device data, so it is cast first. Likewise the inputs of a
  ``custom_vjp`` whose backward pass mixes them: a replicated kernel cast
  here gets its cotangent summed over the devices by JAX, as it should.
  Outside ``shard_map`` nothing changes.
  """
  axes = frozenset().union(*(varying_axes(r) for r in jax.tree.leaves(refs)))

  def one(leaf):
    missing = tuple(sorted(axes - varying_axes(leaf)))
    return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

  return jax.tree.map(one, x) if axes else x
