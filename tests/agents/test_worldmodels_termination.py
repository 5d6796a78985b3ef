"""World Models on an env that terminates early: the random-policy data stops at the end (no
reward counted after it, the steps after it masked out of M's loss)."""

import jax
import numpy as np

from wmjax.agents import worldmodels as wm_lib
from wmjax.envs import fast, wrappers

TINY = wm_lib.WorldModelsConfig(episodes=4, latent_size=2, vae_depth=4, vae_batch_size=4,
                                hidden_size=2, num_mixtures=2, mdn_batch_size=2,
                                population_size=16, rollouts=1, eval_episodes=2)


def _countdown_env(terminate_after=3, episode_length=6):
  ones = np.ones(2, np.float32)
  return wrappers.wrap(fast.PointMassPixelsCountdown(16, terminate_after), name="countdown",
                       episode_length=episode_length, action_repeat=1, ctrl_low=-ones,
                       ctrl_high=ones)


def test_random_episodes_stop_at_termination():
  """Steps after a true terminal state count no reward and are marked invalid for M."""
  wm = wm_lib.make_worldmodels(_countdown_env(), TINY)
  data = jax.jit(wm.collect)(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(data.mask, np.tile([1, 1, 1, 0, 0, 0], (4, 1)))
  np.testing.assert_array_equal(data.terminated, np.tile([0, 0, 1, 0, 0, 0], (4, 1)))
  reward = np.asarray(data.reward)
  assert np.all(reward[:, :3] > 0) and np.all(reward[:, 3:] == 0)
  # ... although the env itself, stepped past its end, still pays: the baseline (the sum of
  # the rewards) counts the episode only.
  env = _countdown_env()
  state = env.reset(jax.random.PRNGKey(1))
  for t in range(6):
    state = env.step(state, data.action[0, t])
  assert float(state.done) == 1.0 and float(state.reward) > 0


def test_m_ignores_the_steps_after_termination():
  """M's training is the same whatever the data after the end holds."""
  wm = wm_lib.make_worldmodels(_countdown_env(), TINY)
  hyper = wm_lib.WorldModelsHyper()
  key = jax.random.PRNGKey(0)
  data = wm.collect(key)
  junk = data._replace(
      obs=data.obs.at[:, 4:].set(255),                  # frames after the terminal one
      action=data.action.at[:, 3:].set(-1.0),
      reward=data.reward.at[:, 3:].set(100.0),
      terminated=data.terminated.at[:, 3:].set(1.0))
  train = jax.jit(lambda d: wm.train_mdn(wm.init(key, hyper, d), hyper, 1)[0].mdn_params)
  for a, b in zip(jax.tree.leaves(train(data)), jax.tree.leaves(train(junk)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
