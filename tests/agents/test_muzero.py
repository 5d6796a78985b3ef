"""MuZero's prioritized replay: windows are drawn by their value error, which each update
writes back, new windows enter at the largest priority, and the uniform default keeps the
buffer (and so old checkpoints) as it was."""

import dataclasses

import jax
import numpy as np

from wmjax import presets
from wmjax.agents import muzero as muzero_lib
from wmjax.envs.pgx import make_game


def _small(**kw):
  config = presets.defaults("muzero", "pgx/tic_tac_toe")[0]
  return dataclasses.replace(config, num_envs=8, steps_per_iteration=9, batch_size=16,
                             updates_per_iteration=4, latent=16, hidden=32, num_simulations=4,
                             max_num_considered_actions=4, replay_capacity=8 * 9 * 4, **kw)


def test_prioritized_replay_writes_value_errors_back_and_new_windows_enter_at_the_top():
  game = make_game("pgx/tic_tac_toe")
  agent = muzero_lib.make_muzero(game, _small(priority_alpha=1.0, priority_beta=0.5))
  hyper = presets.defaults("muzero", "pgx/tic_tac_toe")[1]
  state = jax.jit(agent.init)(jax.random.PRNGKey(0), hyper)
  step = jax.jit(agent.train_iteration)
  for _ in range(agent.window // 9 + 2):   # enough moves for windows, then some updates
    state, metrics = step(state, hyper)
  p = np.asarray(state.buffer.data["priority"])
  written = p[:, :int(state.buffer.count)]
  # Sampled windows now hold their first position's value error (+1e-3), in (0, 2.001] for
  # outcomes in [-1, 1]; the rest still hold the entry priority, which is at least 1.
  assert np.any(written < 0.999) and written.min() > 0 and written.max() <= 2.001 + 1e-6
  assert 0 < float(metrics["train/priority_weight_min"]) <= 1
  before = float(p.max())
  state, _ = step(state, hyper)
  newest = (int(state.buffer.pos) - 9 + np.arange(9)) % p.shape[1]
  entered = np.asarray(state.buffer.data["priority"])[:, newest]
  # The newest moves cannot start a whole window yet, so no update has touched them.
  np.testing.assert_allclose(entered, max(before, 1.0))
  assert np.isfinite(float(metrics["loss/total"]))


def test_uniform_replay_keeps_the_buffer_without_priorities():
  agent = muzero_lib.make_muzero(make_game("pgx/tic_tac_toe"), _small())
  state = jax.eval_shape(agent.init, jax.random.PRNGKey(0),
                         presets.defaults("muzero", "pgx/tic_tac_toe")[1])
  assert "priority" not in state.buffer.data


def test_replay_stores_the_observation_the_search_saw_for_fractional_planes():
  # animal_shogi's last plane is the move count / 256: fractional from the first move on, so a
  # uint8 replay would round it away and training would see other inputs than search.
  game = make_game("pgx/animal_shogi")
  config = muzero_lib.MuZeroConfig(
      num_envs=2, steps_per_iteration=1, batch_size=2, updates_per_iteration=0, unroll_steps=1,
      td_steps=1, latent=8, hidden=8, layers=1, value_support=2, reward_support=2,
      num_simulations=2, max_num_considered_actions=2, replay_capacity=2 * 8)
  agent = muzero_lib.make_muzero(game, config)
  hyper = muzero_lib.MuZeroHyper(discount=1.0)
  state = agent.init(jax.random.PRNGKey(0), hyper)
  step = jax.jit(agent.train_iteration)
  seen = []
  for _ in range(3):
    seen.append(np.asarray(state.games.observation))   # what this iteration's search sees
    state, _ = step(state, hyper)
  stored = np.asarray(state.buffer.data["obs"][:, :3].astype(np.float32))   # [B, 3, ...]
  seen = np.stack(seen, axis=1)
  assert np.any(seen != np.round(seen))   # the test does exercise fractional planes
  np.testing.assert_array_equal(stored, seen)


def test_pgx_bool_boards_are_still_stored_as_uint8():
  agent = muzero_lib.make_muzero(make_game("pgx/tic_tac_toe"), muzero_lib.MuZeroConfig(
      num_envs=2, steps_per_iteration=1, batch_size=2, unroll_steps=1, td_steps=1,
      replay_capacity=2 * 8))
  state = jax.eval_shape(agent.init, jax.random.PRNGKey(0), muzero_lib.MuZeroHyper())
  assert state.buffer.data["obs"].dtype == np.uint8
