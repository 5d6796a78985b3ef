"""A flat, append-only transition store for model learning (PETS keeps all real data).

Fixed capacity so it lives inside one jitted program; rows ``[0, size)`` are valid.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Spec, Transition

__all__ = ["TransitionBuffer", "init_buffer", "add_sequence"]


class TransitionBuffer(NamedTuple):
  data: Transition   # leaves [C, ...]
  size: Array        # int32 scalar: number of valid rows


def init_buffer(spec: Spec, capacity: int) -> TransitionBuffer:
  """An empty buffer of ``capacity`` rows for transitions of ``spec``."""
  if capacity < 1:
    raise ValueError(f"capacity must be >= 1, got {capacity}")
  obs = jnp.zeros((capacity, *spec.obs_shape), jnp.float32)
  data = Transition(
      obs=obs,
      action=jnp.zeros((capacity, *spec.action_shape), jnp.float32),
      reward=jnp.zeros((capacity,), jnp.float32),
      next_obs=obs,
      terminated=jnp.zeros((capacity,), jnp.float32),
  )
  return TransitionBuffer(data=data, size=jnp.zeros((), jnp.int32))


def add_sequence(buffer: TransitionBuffer, seq: Transition, valid: Array) -> TransitionBuffer:
  """Appends an episode ``seq`` (leaves ``[T, ...]``) whose valid steps are a prefix.

  ``valid`` [T] is 1 up to and including the episode's last step, 0 after it. All T rows are
  written at ``size`` and ``size`` grows by the valid count, so the invalid tail is overwritten
  by the next episode. The caller sizes the buffer with T rows of slack; past capacity, the
  write is clamped to the end (jax semantics) and ``size`` saturates at capacity.
  """
  capacity = buffer.data.reward.shape[0]
  steps = seq.reward.shape[0]
  if steps > capacity:
    raise ValueError(f"an episode of {steps} steps does not fit a buffer of {capacity} rows")
  start = jnp.minimum(buffer.size, capacity - steps)
  data = jax.tree.map(
      lambda b, s: jax.lax.dynamic_update_slice_in_dim(b, s.astype(b.dtype), start, axis=0),
      buffer.data, seq)
  size = jnp.minimum(start + jnp.sum(valid).astype(jnp.int32), capacity)
  return TransitionBuffer(data=data, size=size)
