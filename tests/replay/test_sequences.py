"""Sequence replay: against a NumPy reference ring, under jit and vmap, and its errors.

Every step carries a stamp ``env * 10_000 + t`` (``t`` the global step counter), so a sampled
sequence is a contiguous run from one environment iff its stamps are consecutive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.replay import (
    SequenceBuffer,
    add_chunk,
    add_step,
    can_sample,
    init_sequence_buffer,
    sample_prioritized,
    sample_sequences,
    set_priority,
)

_ENV = 10_000
_EXAMPLE = {"obs": np.zeros(2, np.float32), "stamp": np.zeros((), np.int32),
            "is_first": np.zeros((), bool)}

_add_step = jax.jit(add_step)
_add_chunk = jax.jit(add_chunk)
_sample = jax.jit(sample_sequences, static_argnums=(2, 3))


def _chunk(num_envs, t0, steps):
  """Steps t0 .. t0 + steps - 1 of every env; leaves [B, T, ...]."""
  stamp = np.arange(num_envs)[:, None] * _ENV + t0 + np.arange(steps)[None, :]
  return {"obs": np.stack([stamp, -stamp], -1).astype(np.float32), "stamp": stamp.astype(np.int32),
          "is_first": (stamp % 7) == 0}


def _step(num_envs, t):
  return jax.tree.map(lambda x: x[:, 0], _chunk(num_envs, t, 1))


class _RefRing:
  """The obvious Python ring buffer of stamps, one step at a time."""

  def __init__(self, num_envs, capacity):
    self.stamps = np.zeros((num_envs, capacity), np.int32)
    self.pos = self.count = self.total = 0

  def add(self, stamps):   # [B]
    self.stamps[:, self.pos] = stamps
    self.pos = (self.pos + 1) % self.stamps.shape[1]
    self.count = min(self.count + 1, self.stamps.shape[1])
    self.total += 1


def _check_sequences(seqs, total, count, seq_len):
  """Each row: one env, consecutive steps, all within the valid (not overwritten) window."""
  stamp = np.asarray(seqs["stamp"])                       # [N, L]
  assert stamp.shape[1] == seq_len
  np.testing.assert_array_equal(np.diff(stamp, axis=1), 1)
  t = stamp % _ENV
  assert t[:, 0].min() >= total - count                   # oldest valid step
  assert t[:, -1].max() <= total - 1                      # newest step: never crosses pos
  np.testing.assert_array_equal(np.asarray(seqs["obs"])[..., 0], stamp)
  np.testing.assert_array_equal(np.asarray(seqs["obs"])[..., 1], -stamp)
  np.testing.assert_array_equal(np.asarray(seqs["is_first"]), stamp % 7 == 0)


def test_random_adds_match_reference_and_samples_are_contiguous():
  num_envs, seq_len = 3, 4
  buf = init_sequence_buffer(_EXAMPLE, num_envs, capacity=31)   # 10 per env, 1 left over
  assert buf.data["obs"].shape == (3, 10, 2) and buf.data["is_first"].dtype == jnp.bool_
  ref = _RefRing(num_envs, 10)
  rng = np.random.default_rng(0)
  key = jax.random.key(0)
  sampled = 0
  for _ in range(25):
    if rng.random() < 0.5:
      buf = _add_step(buf, _step(num_envs, ref.total))
      ref.add(_chunk(num_envs, ref.total, 1)["stamp"][:, 0])
    else:
      steps = int(rng.choice([2, 3, 10, 13]))
      chunk = _chunk(num_envs, ref.total, steps)
      buf = _add_chunk(buf, chunk)
      for t in range(steps):
        ref.add(chunk["stamp"][:, t])
    np.testing.assert_array_equal(np.asarray(buf.data["stamp"]), ref.stamps)
    assert (int(buf.pos), int(buf.count)) == (ref.pos, ref.count)
    assert bool(can_sample(buf, seq_len)) == (ref.count >= seq_len)
    if ref.count >= seq_len:
      key, sample_key = jax.random.split(key)
      _check_sequences(_sample(buf, sample_key, 64, seq_len), ref.total, ref.count, seq_len)
      sampled += 1
  assert ref.total > 10 and sampled > 10   # wrapped around, sampled often


def _starts(seqs, total, count):
  """(env, offset from the oldest valid step) of each sampled sequence."""
  stamp = np.asarray(seqs["stamp"])[:, 0]
  return stamp // _ENV, stamp % _ENV - (total - count)


def test_sampling_is_uniform_over_envs_and_valid_starts():
  num_envs, seq_len = 2, 3
  buf = init_sequence_buffer(_EXAMPLE, num_envs, capacity=16)   # 8 per env
  buf = _add_chunk(buf, _chunk(num_envs, 0, 13))                 # wrapped: count 8, pos 5
  env, offset = _starts(_sample(buf, jax.random.key(1), 12_000, seq_len), 13, 8)
  hist = np.zeros((num_envs, 8 - seq_len + 1), int)
  np.add.at(hist, (env, offset), 1)
  assert hist.sum() == 12_000 and hist.min() > 0         # every start appears, and nothing else
  np.testing.assert_allclose(hist, 1000, rtol=0.15)        # ~5 standard deviations

  partial = _add_chunk(init_sequence_buffer(_EXAMPLE, num_envs, 16), _chunk(num_envs, 0, 5))
  env, offset = _starts(_sample(partial, jax.random.key(2), 600, seq_len), 5, 5)
  assert set(zip(env.tolist(), offset.tolist(), strict=True)) == {
      (b, o) for b in range(num_envs) for o in range(3)}


@pytest.mark.parametrize("prefill,steps", [(0, 1), (3, 4), (7, 10), (2, 23), (9, 8)])
def test_add_chunk_equals_repeated_add_step(prefill, steps):
  num_envs = 2
  buf = init_sequence_buffer(_EXAMPLE, num_envs, capacity=20)    # 10 per env
  for t in range(prefill):
    buf = _add_step(buf, _step(num_envs, t))
  by_steps = buf
  for t in range(prefill, prefill + steps):
    by_steps = _add_step(by_steps, _step(num_envs, t))
  by_chunk = _add_chunk(buf, _chunk(num_envs, prefill, steps))
  jax.tree.map(np.testing.assert_array_equal, by_chunk, by_steps)


def test_a_replay_that_never_fills_samples_the_same_for_any_bigger_capacity():
  """Dreamer fits a new run's replay to the steps the run collects: until a ring wraps, its
  capacity changes nothing that is sampled (same key, same sequences)."""
  seqs = []
  for capacity in (3 * 40, 3 * 1000):
    buffer = init_sequence_buffer(_EXAMPLE, 3, capacity)
    for t0 in range(0, 40, 10):
      buffer = _add_chunk(buffer, _chunk(3, t0, 10))
    seqs.append(_sample(buffer, jax.random.PRNGKey(2), 16, 8))
  assert int(buffer.count) == 40
  jax.tree.map(np.testing.assert_array_equal, *seqs)
  _check_sequences(seqs[0], 40, 40, 8)


def test_jit_matches_eager_and_traced_underfull_count_does_not_crash():
  buf = add_chunk(init_sequence_buffer(_EXAMPLE, 2, 12), _chunk(2, 0, 8))   # wrapped
  key = jax.random.key(3)
  jax.tree.map(np.testing.assert_array_equal, _sample(buf, key, 16, 4),
               sample_sequences(buf, key, 16, 4))

  one = _add_step(init_sequence_buffer(_EXAMPLE, 2, 12), _step(2, 0))
  seqs = _sample(one, key, 16, 4)          # count 1 < 4: traced, so unchecked; clamped indices
  assert seqs["stamp"].shape == (16, 4) and seqs["obs"].shape == (16, 4, 2)
  np.testing.assert_array_equal(np.asarray(seqs["stamp"])[:, 0] % _ENV, 0)   # oldest step first


def test_vmap_over_independent_buffers():
  num_buffers, num_envs = 3, 2
  bufs = jax.vmap(lambda _: init_sequence_buffer(_EXAMPLE, num_envs, 12))(jnp.arange(num_buffers))
  assert isinstance(bufs, SequenceBuffer) and bufs.data["obs"].shape == (3, 2, 6, 2)
  batched_add = jax.jit(jax.vmap(add_step))
  for t in range(9):   # buffer i holds stamps shifted by 100 * i
    step = _step(num_envs, t)
    bufs = batched_add(bufs, jax.tree.map(lambda x: np.stack([x + 100 * i for i in range(3)]),
                                          step))
  keys = jax.random.split(jax.random.key(4), num_buffers)
  seqs = jax.jit(jax.vmap(lambda b, k: sample_sequences(b, k, 8, 5)))(bufs, keys)
  assert seqs["stamp"].shape == (3, 8, 5)
  for i in range(num_buffers):
    one = jax.tree.map(lambda x, i=i: x[i], bufs)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x, i=i: x[i], seqs),
                 sample_sequences(one, keys[i], 8, 5))
    stamp = np.asarray(seqs["stamp"][i]) - 100 * i
    np.testing.assert_array_equal(np.diff(stamp, axis=1), 1)
    assert (stamp % _ENV).min() >= 9 - 6 and (stamp % _ENV).max() <= 8


_EXAMPLE_P = dict(_EXAMPLE, priority=np.zeros((), np.float32))
_sample_p = jax.jit(sample_prioritized, static_argnums=(2, 3), static_argnames=("alpha",))


def _chunk_p(num_envs, t0, steps, priority=1.0):
  return dict(_chunk(num_envs, t0, steps),
              priority=np.full((num_envs, steps), priority, np.float32))


def test_prioritized_with_equal_priorities_is_uniform_with_unit_weights():
  num_envs, seq_len = 2, 3
  buf = _add_chunk(init_sequence_buffer(_EXAMPLE_P, num_envs, 16), _chunk_p(num_envs, 0, 13))
  out = _sample_p(buf, jax.random.key(1), 12_000, seq_len, alpha=1.0)
  _check_sequences(out.batch, 13, 8, seq_len)
  env, offset = _starts(out.batch, 13, 8)
  hist = np.zeros((num_envs, 8 - seq_len + 1), int)
  np.add.at(hist, (env, offset), 1)
  np.testing.assert_allclose(hist, 1000, rtol=0.05)   # stratified: tighter than uniform's
  np.testing.assert_allclose(np.asarray(out.weight), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(out.env), env)
  np.testing.assert_array_equal(np.asarray(buf.data["stamp"])[env, np.asarray(out.start)],
                                np.asarray(out.batch["stamp"])[:, 0])


def test_prioritized_follows_priorities_and_never_crosses_the_write_position():
  num_envs, seq_len = 2, 3
  buf = _add_chunk(init_sequence_buffer(_EXAMPLE_P, num_envs, 16), _chunk_p(num_envs, 0, 13))
  # Valid starts: steps 5..10 of each env (ring indices (5..10) % 8). Give env 1, step 7 a
  # priority of 9 and env 0, step 5 a priority of 3; the newest steps 11, 12 (invalid starts,
  # their sequences would cross the write position) a huge one.
  p = np.ones((2, 8), np.float32)
  p[1, 7 % 8], p[0, 5 % 8] = 9.0, 3.0
  p[:, 11 % 8], p[:, 12 % 8] = 1e6, 1e6
  buf = buf._replace(data=dict(buf.data, priority=jnp.asarray(p)))
  for alpha in (1.0, 0.5):
    out = _sample_p(buf, jax.random.key(2), 20_000, seq_len, alpha=alpha)
    _check_sequences(out.batch, 13, 8, seq_len)
    stamp = np.asarray(out.batch["stamp"])[:, 0]
    w = np.ones(12) ** alpha
    w[0], w[6 + 2] = 3.0 ** alpha, 9.0 ** alpha   # env 0 step 5, env 1 step 7
    expected = w / w.sum()
    seen = np.array([np.mean(stamp == b * _ENV + t) for b in range(2) for t in range(5, 11)])
    np.testing.assert_allclose(seen, expected, atol=0.01)
    # Importance weights (1 / (M P))^beta over their max: the rarest start gets weight 1.
    weight = np.asarray(out.weight)
    at = {int(s): float(x) for s, x in zip(stamp, weight, strict=True)}
    np.testing.assert_allclose(at[_ENV + 7], expected.min() / expected.max(), rtol=1e-4)
    np.testing.assert_allclose(at[6], 1.0, rtol=1e-5)


def test_set_priority_writes_where_sampled():
  buf = _add_chunk(init_sequence_buffer(_EXAMPLE_P, 2, 16), _chunk_p(2, 0, 6))
  buf = set_priority(buf, jnp.array([0, 1]), jnp.array([2, 4]), jnp.array([5.0, 7.0]))
  p = np.asarray(buf.data["priority"])
  assert p[0, 2] == 5.0 and p[1, 4] == 7.0 and p.sum() == 5.0 + 7.0 + 10 * 1.0
  out = _sample_p(buf, jax.random.key(3), 1000, 2, alpha=1.0)
  assert np.mean(np.asarray(out.batch["stamp"])[:, 0] == _ENV + 4) > 0.25   # 7 of 20 mass
  with pytest.raises(ValueError, match=r"no 'priority' leaf to sample by; it holds \['is_first'"):
    sample_prioritized(_add_chunk(init_sequence_buffer(_EXAMPLE, 2, 16), _chunk(2, 0, 6)),
                       jax.random.key(0), 4, 2)


def test_errors_are_readable():
  with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
    init_sequence_buffer(_EXAMPLE, 0, 10)
  with pytest.raises(ValueError, match="capacity 3 gives 0 steps per environment for 4"):
    init_sequence_buffer(_EXAMPLE, 4, 3)

  buf = init_sequence_buffer(_EXAMPLE, 2, 100)   # 50 per env
  long = (r"sequence length 64 is longer than the buffer's 50 steps per environment; "
          r"raise capacity to at least seq_len \* num_envs = 64 \* 2 = 128")
  with pytest.raises(ValueError, match=long):
    sample_sequences(buf, jax.random.key(0), 4, 64)
  with pytest.raises(ValueError, match=long):
    _sample(buf, jax.random.key(0), 4, 64)
  with pytest.raises(ValueError, match=long):
    can_sample(buf, 64)

  buf = _add_chunk(buf, _chunk(2, 0, 5))
  with pytest.raises(ValueError, match=r"replay holds 5 steps per environment; sampling "
                                       r"sequences of 8 steps needs at least 8: collect more"):
    sample_sequences(buf, jax.random.key(0), 4, 8)

  bad = dict(_step(2, 0), obs=np.zeros((2, 3), np.float32))
  with pytest.raises(ValueError, match=r"add_step: leaf \['obs'\] has shape \(2, 3\), "
                                       r"expected \(2, 2\)"):
    _add_step(buf, bad)
  bad = dict(_chunk(2, 0, 4), stamp=np.zeros((2, 3), np.int32))
  with pytest.raises(ValueError, match=r"add_chunk: leaf \['stamp'\] has shape \(2, 3\), "
                                       r"expected \(2, 4\)"):
    _add_chunk(buf, bad)
  with pytest.raises(ValueError, match="add_step: the step's structure"):
    add_step(buf, {"obs": np.zeros((2, 2), np.float32)})
