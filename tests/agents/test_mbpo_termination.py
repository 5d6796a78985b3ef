"""MBPO's learned termination: with ``learn_termination`` the classifier is fit on the real
data and model rollouts end at the states it calls terminal (stored as terminal, the steps
after not stored); without it, rollouts never end."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from tests.agents.offline_data import pointmass_dataset
from wmjax import envs
from wmjax.agents import mbpo as mbpo_lib

CONFIG = mbpo_lib.MBPOConfig(steps_per_iteration=5, prefill_steps=50, ensemble_size=3,
                             num_elites=2, hidden_sizes=(32, 32), model_batch_size=64,
                             model_train_steps=300, rollout_batch=512, rollout_length=6,
                             model_retain_iterations=1, sac_hidden_sizes=(16,),
                             sac_batch_size=16, updates_per_step=1, eval_episodes=1,
                             learn_termination=True)


def _with_real_data(state, data):
  """The state with its real buffer holding ``data`` (episodes that end at |x| > 1.6)."""
  n = data.reward.shape[0]
  real = state.real
  rows = jax.tree.map(lambda buf, x: buf.at[:n].set(jnp.asarray(x, buf.dtype)), real.data, data)
  return state._replace(real=real._replace(data=rows, size=jnp.asarray(n, jnp.int32),
                                           index=jnp.asarray(n, jnp.int32)))


def test_model_rollouts_end_at_learned_terminal_states():
  env = envs.make("fast/PointMass")
  d = pointmass_dataset()
  far = (np.linalg.norm(d.next_obs[:, :2], axis=1) > 1.6).astype(np.float32)
  data = d.device()._replace(terminated=jnp.asarray(far))
  hyper = mbpo_lib.MBPOHyper()
  results = {}
  for learn in (True, False):
    agent = mbpo_lib.make_mbpo(env, dataclasses.replace(CONFIG, learn_termination=learn),
                               total_steps=4000)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hyper)
    state = _with_real_data(state, data)
    step = jax.jit(agent.train_iteration)
    state, metrics = step(state, hyper)
    first = int(state.imagined.size)   # rows stored by the first write
    for _ in range(2):
      state, metrics = step(state, hyper)
    rows = jax.tree.map(np.asarray, state.imagined.data)
    results[learn] = (rows, int(state.imagined.size), metrics, first)
  rows, size, metrics, first = results[True]
  assert float(metrics["termination/recall"]) > 0.8
  assert 0.0 < float(metrics["model/rollout_terminal"]) < 1.0
  ended = rows.terminated[:size] > 0
  assert ended.any()
  assert np.median(np.linalg.norm(rows.next_obs[:size][ended, :2], axis=1)) > 1.4
  # Rows past a rollout's end are not stored: fewer than all 6 x 512 steps of the last write.
  assert first < CONFIG.rollout_batch * CONFIG.rollout_length
  rows, size, metrics, first = results[False]
  assert "model/rollout_terminal" not in metrics and not np.any(rows.terminated[:size])
  assert first == size == CONFIG.rollout_batch * CONFIG.rollout_length
