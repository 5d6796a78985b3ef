"""A sequence replay buffer for recurrent world models (Dreamer): jittable, pure functions.

Data arrives from ``B`` parallel environments one time step (``add_step``) or a chunk of ``T``
steps (``add_chunk``) at a time. Each environment keeps a ring of ``C = capacity // B`` steps;
all environments share one write position, since they are stepped together. Samples are
contiguous runs of ``L`` steps from one environment, drawn uniformly over (environment, start)
among the starts whose whole run lies in the valid data, so a sequence never crosses the write
position (never joins the newest step to the oldest). Sequences may cross episode boundaries:
the data carries ``is_first`` flags and the consumer resets its recurrent state there.

This follows flashbax's ``make_trajectory_buffer`` (``[B, C, ...]`` storage, a shared write
index, uniform sampling of valid starts); it is written here, small, so wmjax does not depend
on flashbax for one buffer.

Shapes: ``B`` environments, ``C`` steps per environment, ``T`` steps per chunk, ``N`` sampled
sequences (``batch_size``), ``L`` steps per sequence (``seq_len``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.types import Array, Key, PyTree

__all__ = [
    "SequenceBuffer",
    "init_sequence_buffer",
    "add_step",
    "add_chunk",
    "sample_sequences",
    "sample_prioritized",
    "set_priority",
    "can_sample",
]


class SequenceBuffer(NamedTuple):
  data: PyTree   # each leaf [B, C, ...]
  pos: Array     # int32 []: next write index in [0, C), shared by all environments
  count: Array   # int32 []: valid steps per environment, saturates at C


def init_sequence_buffer(example_step: PyTree, num_envs: int, capacity: int) -> SequenceBuffer:
  """An empty buffer for steps shaped like ``example_step``.

  ``example_step`` is a pytree of arrays (or ``jax.ShapeDtypeStruct``) for ONE environment and
  ONE time step, e.g. ``{'obs': [O], 'action': [A], 'reward': [], 'is_first': [],
  'is_terminal': []}``; only shapes and dtypes are used. ``capacity`` counts steps across all
  environments: each keeps ``C = capacity // num_envs`` (the remainder is unused).
  """
  if num_envs < 1:
    raise ValueError(f"num_envs must be >= 1, got {num_envs}")
  steps_per_env = capacity // num_envs
  if steps_per_env < 1:
    raise ValueError(
        f"capacity {capacity} gives {steps_per_env} steps per environment for {num_envs} "
        f"environments; capacity counts steps across all environments, so it must be at "
        f"least num_envs = {num_envs} (and at least seq_len * num_envs to sample sequences)")
  if not jax.tree.leaves(example_step):
    raise ValueError("example_step has no array leaves; pass one step, e.g. {'obs': obs, ...}")

  def zeros(x):
    shape, dtype = _shape_dtype(x)
    return jnp.zeros((num_envs, steps_per_env, *shape), jax.dtypes.canonicalize_dtype(dtype))

  return SequenceBuffer(data=jax.tree.map(zeros, example_step),
                        pos=jnp.zeros((), jnp.int32), count=jnp.zeros((), jnp.int32))


def add_step(buffer: SequenceBuffer, step: PyTree) -> SequenceBuffer:
  """Writes one time step ``step`` (leaves ``[B, ...]``) for every environment at ``pos``.

  Leaves are cast to the buffer's dtypes; their shapes are checked at trace time.
  """
  num_envs, capacity = _dims(buffer)
  _check_leaves(buffer.data, step, (num_envs,), "add_step", "[num_envs, *step_shape]")
  pos = buffer.pos
  data = jax.tree.map(
      lambda d, s: jax.lax.dynamic_update_index_in_dim(d, s.astype(d.dtype), pos, axis=1),
      buffer.data, step)
  return SequenceBuffer(data=data, pos=(pos + 1) % capacity,
                        count=jnp.minimum(buffer.count + 1, capacity))


def add_chunk(buffer: SequenceBuffer, chunk: PyTree) -> SequenceBuffer:
  """Writes ``T`` consecutive time steps ``chunk`` (leaves ``[B, T, ...]``, ``T`` static).

  Equal to ``T`` calls of ``add_step`` on ``chunk[:, t]`` in order: the write wraps around the
  ring, and when ``T > C`` only the last ``C`` steps are kept.
  """
  num_envs, capacity = _dims(buffer)
  first = jax.tree.leaves(chunk)
  if not first or np.ndim(first[0]) < 2:
    raise ValueError(
        "add_chunk expects leaves shaped [num_envs, T, *step_shape]; got "
        f"{'no leaves' if not first else f'a leaf of shape {tuple(np.shape(first[0]))}'}")
  steps = np.shape(first[0])[1]
  _check_leaves(buffer.data, chunk, (num_envs, steps), "add_chunk",
                "[num_envs, T, *step_shape]")
  kept = min(steps, capacity)
  # Step t of the chunk lands at (pos + t) % C; the kept steps are t in [steps - kept, steps).
  index = (buffer.pos + (steps - kept) + jnp.arange(kept, dtype=jnp.int32)) % capacity   # [kept]
  data = jax.tree.map(
      lambda d, c: d.at[:, index].set(c[:, steps - kept:].astype(d.dtype), unique_indices=True),
      buffer.data, chunk)
  return SequenceBuffer(data=data, pos=(buffer.pos + steps) % capacity,
                        count=jnp.minimum(buffer.count + steps, capacity))


def sample_sequences(buffer: SequenceBuffer, key: Key, batch_size: int, seq_len: int) -> PyTree:
  """Samples ``batch_size`` contiguous sequences of ``seq_len`` steps; leaves ``[N, L, ...]``.

  Each sequence comes from one environment ``b`` (uniform) and starts at ``offset`` (uniform in
  ``[0, count - seq_len]``) steps after the oldest valid step ``(pos - count) % C``, so it lies
  in the valid data and never crosses the write position. ``batch_size`` and ``seq_len`` are
  static.

  With a concrete ``count`` (outside jit) sampling too early raises ``ValueError``. Under jit
  ``count`` is traced and cannot be checked: guard with ``can_sample`` (e.g. ``lax.cond``) or
  prefill at least ``seq_len`` steps first. If called anyway, it does not fail: it returns the
  ``seq_len`` steps from the oldest valid one, which include unwritten (zero) or stale rows.
  """
  num_envs, capacity = _dims(buffer)
  _check_seq_len(seq_len, num_envs, capacity)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  count = buffer.count
  try:  # concrete outside jit; a tracer under it cannot be checked
    held = int(count)
  except jax.errors.ConcretizationTypeError:
    held = seq_len
  if held < seq_len:
    raise ValueError(
        f"replay holds {held} steps per environment; sampling sequences of {seq_len} "
        f"steps needs at least {seq_len}: collect more before training (e.g. more prefill "
        "steps)")
  env_key, offset_key = jax.random.split(key)
  env = jax.random.randint(env_key, (batch_size,), 0, num_envs)                       # [N]
  num_starts = jnp.maximum(count - seq_len + 1, 1)
  offset = jax.random.randint(offset_key, (batch_size,), 0, num_starts)               # [N]
  oldest = (buffer.pos - count) % capacity
  time = (oldest + offset[:, None] + jnp.arange(seq_len, dtype=jnp.int32)) % capacity  # [N, L]
  return jax.tree.map(lambda d: d[env[:, None], time], buffer.data)


class PrioritizedSample(NamedTuple):
  batch: PyTree     # leaves [N, L, ...]
  env: Array        # int32 [N]: environment of each sequence
  start: Array      # int32 [N]: ring index of each sequence's first step
  weight: Array     # float32 [N]: importance weight (1/(M P(i)))^beta over its batch maximum


def sample_prioritized(buffer: SequenceBuffer, key: Key, batch_size: int, seq_len: int, *,
                       priority: str = "priority", alpha: float = 1.0,
                       beta: float | Array = 1.0) -> PrioritizedSample:
  """Samples sequences whose start ``i`` is drawn with ``P(i) = p_i^alpha / sum_j p_j^alpha``
  (prioritized replay, Schaul et al. 2016, as MuZero samples its windows).

  ``p`` is the data leaf named ``priority`` (``[B, C]``, one per step: the priority of the
  sequence that starts there); only starts whose whole sequence lies in the valid data (as in
  :func:`sample_sequences`) can be drawn. Starts are drawn by stratified inverse-CDF sampling
  (one uniform per ``1/N`` slice of the total), ``O(B C + N log(B C))``. ``weight`` corrects
  the bias: ``(1 / (M P(i)))^beta`` with ``M`` valid starts, divided by the batch's largest.
  With all priorities equal this is :func:`sample_sequences`'s distribution, weights 1.
  """
  num_envs, capacity = _dims(buffer)
  _check_seq_len(seq_len, num_envs, capacity)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if priority not in buffer.data:
    raise ValueError(f"the buffer has no {priority!r} leaf to sample by; it holds "
                     f"{sorted(buffer.data)}")
  count = buffer.count
  oldest = (buffer.pos - count) % capacity
  offset = (jnp.arange(capacity, dtype=jnp.int32) - oldest) % capacity                # [C]
  valid = offset <= count - seq_len                                                    # [C]
  p = jnp.maximum(buffer.data[priority].astype(jnp.float32), 0.0)
  p = jnp.where(valid[None, :], p ** alpha, 0.0).reshape(-1)                           # [B C]
  cdf = jnp.cumsum(p)
  total = cdf[-1]
  u = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) / batch_size * total
  flat = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, p.shape[0] - 1)
  # Guard against rounding landing on a zero-probability index: fall back to the oldest start.
  flat = jnp.where(p[flat] > 0, flat, jnp.argmax(p > 0))
  env, start = flat // capacity, flat % capacity
  m = jnp.maximum(count - seq_len + 1, 1) * num_envs
  prob = p[flat] / jnp.maximum(total, 1e-30)
  w = (1.0 / (m * jnp.maximum(prob, 1e-30))) ** beta
  time = (start[:, None] + jnp.arange(seq_len, dtype=jnp.int32)) % capacity            # [N, L]
  batch = jax.tree.map(lambda d: d[env[:, None], time], buffer.data)
  return PrioritizedSample(batch, env.astype(jnp.int32), start.astype(jnp.int32),
                           (w / jnp.max(w)).astype(jnp.float32))


def set_priority(buffer: SequenceBuffer, env: Array, start: Array, value: Array, *,
                 priority: str = "priority") -> SequenceBuffer:
  """Writes ``value [N]`` as the priority of the sequences starting at ``(env, start)``."""
  data = dict(buffer.data)
  data[priority] = data[priority].at[env, start].set(value.astype(data[priority].dtype))
  return buffer._replace(data=data)


def can_sample(buffer: SequenceBuffer, seq_len: int) -> Array:
  """bool []: whether every environment holds at least ``seq_len`` steps.

  Raises ``ValueError`` when ``seq_len`` exceeds the steps per environment, where the answer
  would be False forever.
  """
  num_envs, capacity = _dims(buffer)
  _check_seq_len(seq_len, num_envs, capacity)
  return buffer.count >= seq_len


def _shape_dtype(x) -> tuple[tuple[int, ...], np.dtype]:
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return tuple(x.shape), x.dtype
  x = np.asarray(x)
  return x.shape, x.dtype


def _dims(buffer: SequenceBuffer) -> tuple[int, int]:
  """(B, C) from the first data leaf."""
  leaf = jax.tree.leaves(buffer.data)[0]
  return leaf.shape[0], leaf.shape[1]


def _check_seq_len(seq_len: int, num_envs: int, capacity: int) -> None:
  if seq_len < 1:
    raise ValueError(f"seq_len must be >= 1, got {seq_len}")
  if seq_len > capacity:
    raise ValueError(
        f"sequence length {seq_len} is longer than the buffer's {capacity} steps per "
        f"environment; raise capacity to at least seq_len * num_envs = {seq_len} * {num_envs} "
        f"= {seq_len * num_envs}")


def _check_leaves(data: PyTree, new: PyTree, lead: tuple[int, ...], fn: str, layout: str) -> None:
  """Trace-time check that ``new`` matches ``data``'s structure, with leading axes ``lead``."""
  data_leaves, data_def = jax.tree_util.tree_flatten_with_path(data)
  new_leaves, new_def = jax.tree_util.tree_flatten(new)
  if data_def != new_def:
    raise ValueError(f"{fn}: the step's structure {new_def} does not match the buffer's "
                     f"{data_def}")
  for (path, d), n in zip(data_leaves, new_leaves, strict=True):
    expected = (*lead, *d.shape[2:])
    given = tuple(np.shape(n))
    if given != expected:
      raise ValueError(
          f"{fn}: leaf {jax.tree_util.keystr(path)} has shape {given}, expected {expected} "
          f"= {layout} with step shape {tuple(d.shape[2:])}")
