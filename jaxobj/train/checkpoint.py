"""Checkpoints of a training run, written with orbax every ``train.checkpoint_every`` steps.

A checkpoint holds the trainer's whole carry: the model's and the objective's
params, the weighting state (DWA, FAMO) and the optimizer state, under the step
it was taken at. Nothing else is needed to continue exactly: the batch of step
``s`` and every random draw of it come from the config's seed folded with
``s``, so a resumed run draws the same data in the same order.

orbax writes each checkpoint into a temporary directory and renames it when
every process has written its part, so ``<run>/checkpoints`` only ever lists
complete checkpoints; the last one is kept, the one before it deleted. With
several processes, orbax coordinates them through JAX's distributed runtime
(each process writes the shards it holds) and the run directory must be on a
file system every process sees.

orbax is imported when a run checkpoints, not before.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax

__all__ = ["CHECKPOINTS", "Checkpoints", "latest_step", "read_arrays"]

CHECKPOINTS = "checkpoints"
"""The run directory's subdirectory that holds the checkpoints."""


def _ocp():
  try:
    import orbax.checkpoint as ocp
  except ImportError:  # pragma: no cover - orbax is a dependency of the cli extra
    raise ImportError(
      'checkpoints need orbax-checkpoint, not installed here: pip install "jaxobj[cli]"'
    ) from None
  return ocp


def latest_step(out: str | pathlib.Path) -> int | None:
  """The step of the last complete checkpoint in the run directory ``out`` (``None``: none).

  Reads the directory names only (orbax names a finished checkpoint by its
  step; an unfinished one carries a temporary suffix), so it imports nothing.
  """
  root = pathlib.Path(out) / CHECKPOINTS
  if not root.is_dir():
    return None
  steps = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
  return max(steps) if steps else None


def read_arrays(out: str | pathlib.Path, step: int | None = None) -> Any:
  """A run's checkpoint as NumPy arrays, in one process and without the run's config.

  The tree is the trainer's carry as orbax stores it: ``[[model params,
  objective params], weighting state, optimizer state]``, mappings as dicts
  and sequences as lists. For a look at the weights of a run, or to compare
  two runs.

  Args:
    out: the run directory.
    step: the checkpoint's step (default: the last complete one).

  Raises:
    FileNotFoundError: there is no such checkpoint.
  """
  step = latest_step(out) if step is None else step
  path = pathlib.Path(out).absolute() / CHECKPOINTS / str(step) / "default"
  if step is None or not path.is_dir():
    raise FileNotFoundError(f"{str(out)!r} has no complete checkpoint of step {step}.")
  ocp = _ocp()
  import numpy as np

  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(path, restore_args=restore_args)


class Checkpoints:
  """Saves and restores a pytree of global arrays under ``<out>/checkpoints/<step>``.

  Every process of a run makes one and calls :meth:`save` and :meth:`restore`
  together. Saving is synchronous: when :meth:`save` returns, the checkpoint
  is complete on disk.

  Args:
    out: the run directory.
  """

  def __init__(self, out: str | pathlib.Path) -> None:
    ocp = _ocp()
    self.directory = (pathlib.Path(out) / CHECKPOINTS).absolute()
    options = ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True, enable_async_checkpointing=False
    )
    self._ocp = ocp
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, tree: Any) -> None:
    """Writes ``tree`` as the checkpoint of ``step`` (the previous one is then deleted)."""
    self._manager.save(step, args=self._ocp.args.StandardSave(tree), force=True)
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    """The step of the last complete checkpoint (``None``: none)."""
    return self._manager.latest_step()

  def restore(self, step: int, like: Any) -> Any:
    """The checkpoint of ``step``, as arrays with the shapes, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), like
    )
    return self._manager.restore(step, args=self._ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> Checkpoints:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()
