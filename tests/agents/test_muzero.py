"""MuZero's prioritized replay: windows are drawn by their value error, which each update
writes back, new windows enter at the largest priority, and the uniform default keeps the
buffer (and so old checkpoints) as it was."""

import dataclasses

import jax
import numpy as np

from wmjax.agents import muzero as muzero_lib
from wmjax.envs.pgx import make_game


def _small(**kw):
  config = muzero_lib.default_config("pgx/tic_tac_toe")
  return dataclasses.replace(config, num_envs=8, steps_per_iteration=9, batch_size=16,
                             updates_per_iteration=4, latent=16, hidden=32, num_simulations=4,
                             max_num_considered_actions=4, replay_capacity=8 * 9 * 4, **kw)


def test_prioritized_replay_writes_value_errors_back_and_new_windows_enter_at_the_top():
  game = make_game("pgx/tic_tac_toe")
  agent = muzero_lib.make_muzero(game, _small(priority_alpha=1.0, priority_beta=0.5))
  hyper = muzero_lib.default_hyper("pgx/tic_tac_toe")
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
                         muzero_lib.default_hyper("pgx/tic_tac_toe"))
  assert "priority" not in state.buffer.data
