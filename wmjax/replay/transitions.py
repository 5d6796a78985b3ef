"""A flat, append-only transition store for model learning (PETS keeps all real data).

Fixed capacity so it lives inside one jitted program; rows ``[0, size)`` are valid.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Spec, Transition

__all__ = ["TransitionBuffer", "init_buffer", "add_sequence", "RingBuffer", "init_ring",
           "add_batch", "sample_rows"]


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


class RingBuffer(NamedTuple):
  """A fixed-capacity ring of transitions: rows ``[0, size)`` valid, the next write at ``index``."""

  data: Transition   # leaves [C, ...]
  size: Array        # int32 scalar
  index: Array       # int32 scalar


def init_ring(obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
              capacity: int) -> RingBuffer:
  """An empty ring of ``capacity`` transitions."""
  if capacity < 1:
    raise ValueError(f"capacity must be >= 1, got {capacity}")
  obs = jnp.zeros((capacity, *obs_shape), jnp.float32)
  data = Transition(obs=obs, action=jnp.zeros((capacity, *action_shape), jnp.float32),
                    reward=jnp.zeros((capacity,), jnp.float32), next_obs=obs,
                    terminated=jnp.zeros((capacity,), jnp.float32))
  zero = jnp.zeros((), jnp.int32)
  return RingBuffer(data=data, size=zero, index=zero)


def add_batch(ring: RingBuffer, batch: Transition, valid: Array | None = None) -> RingBuffer:
  """Writes the ``N`` rows of ``batch`` (leaves ``[N, ...]``) at the write position, wrapping.

  With ``valid [N]`` (bool or 0/1) only the valid rows are written, packed in order; the others
  are dropped. ``N`` may not exceed the capacity.
  """
  capacity = ring.data.reward.shape[0]
  n = batch.reward.shape[0]
  if n > capacity:
    raise ValueError(f"a batch of {n} rows does not fit a ring of {capacity}")
  if valid is None:
    offsets = jnp.arange(n)
    count = jnp.asarray(n, jnp.int32)
  else:
    valid = jnp.asarray(valid) > 0
    offsets = jnp.where(valid, jnp.cumsum(valid) - 1, capacity)   # invalid rows -> dropped
    count = jnp.sum(valid).astype(jnp.int32)
  rows = jnp.where(offsets < capacity, (ring.index + offsets) % capacity, capacity)
  data = jax.tree.map(lambda b, x: b.at[rows].set(x.astype(b.dtype), mode="drop"),
                      ring.data, batch)
  return RingBuffer(data=data, size=jnp.minimum(ring.size + count, capacity),
                    index=(ring.index + count) % capacity)


def sample_rows(ring: RingBuffer, key: Array, n: int) -> Transition:
  """``n`` rows drawn uniformly with replacement from the valid rows (garbage if empty)."""
  idx = jax.random.randint(key, (n,), 0, jnp.maximum(ring.size, 1))
  return jax.tree.map(lambda x: x[idx], ring.data)
