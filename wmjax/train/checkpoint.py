"""Orbax checkpoints of a whole training state (a pytree of arrays), saved asynchronously."""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]


def _empty(x) -> bool:
  return hasattr(x, "shape") and math.prod(x.shape) == 0


def _fill_empty(tree):
  """Orbax cannot save zero-size arrays: each is stored as one element of its dtype instead."""
  def fill(x):
    if not _empty(x):
      return x
    if isinstance(x, jax.ShapeDtypeStruct):
      return jax.ShapeDtypeStruct((1,), x.dtype)
    return jnp.zeros((1,), x.dtype)
  return jax.tree.map(fill, tree)


class Checkpointer:
  """Keeps the last ``max_to_keep`` good checkpoints under ``directory``, by iteration."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, state) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(_fill_empty(state)))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def restore(self, abstract_state, step: int | None = None):
    """Restores ``step`` (the latest if None) into the structure of ``abstract_state``."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(_fill_empty(abstract)))
    # Zero-size arrays (e.g. MJX's actuator activations of a model without any) come back empty.
    return step, jax.tree.map(
        lambda a, r: jnp.zeros(a.shape, a.dtype) if _empty(a) else r, abstract, restored)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
