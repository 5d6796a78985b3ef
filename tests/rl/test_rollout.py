"""wmjax.rl.rollout: an episode's length stops at its first ``done`` (a terminal state, e.g. a
fall), or is the env's episode length; its return counts no reward after ``done``."""

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents.base import Policy
from wmjax.envs import fast, wrappers
from wmjax.rl.rollout import episode_keys, policy_episodes, policy_returns, policy_trajectories


def _env(terminate_after: int | None):
  ones = np.ones(2, np.float32)
  raw = (fast.PointMassPixels(8) if terminate_after is None
         else fast.PointMassPixelsCountdown(8, terminate_after))
  return wrappers.wrap(raw, name="countdown", episode_length=6, action_repeat=1,
                       ctrl_low=-ones, ctrl_high=ones)


def _policy(action: float) -> Policy:
  return Policy(lambda state, hyper, key: (),
                lambda state, hyper, carry, obs, key, deterministic=True:
                (carry, jnp.full((2,), action)))


def test_lengths_stop_at_a_terminal_state_and_returns_match_policy_returns():
  key = jax.random.PRNGKey(0)
  for terminate_after, length in ((3, 3), (None, 6)):
    env = _env(terminate_after)
    episodes = jax.jit(lambda k, env=env: policy_episodes(env, _policy(0.5), None, None, k, 4))(
        key)
    np.testing.assert_array_equal(episodes.lengths, np.full(4, float(length)))
    returns = policy_returns(env, _policy(0.5), None, None, key, 4)
    np.testing.assert_allclose(episodes.returns, returns, rtol=1e-6)
    assert set(episodes.metrics()) == {"eval/episode_return", "eval/episode_length"}
  # The terminating env still pays after its end when stepped on: the return does not count it.
  longer = policy_episodes(_env(None), _policy(0.5), None, None, key, 4).returns
  shorter = policy_episodes(_env(3), _policy(0.5), None, None, key, 4).returns
  assert np.all(np.asarray(shorter) < np.asarray(longer))


def test_trajectories_record_the_episodes_that_policy_episodes_score():
  key, policy = jax.random.PRNGKey(3), _policy(0.25)
  for terminate_after in (3, None):
    env = _env(terminate_after)
    traj = jax.jit(lambda k, env=env: policy_trajectories(env, policy, None, None, k, 4))(key)
    episodes = policy_episodes(env, policy, None, None, key, 4)
    assert traj.obs.shape[:2] == (4, 6) and traj.actions.shape == (4, 6, 2)
    np.testing.assert_allclose(traj.returns(), episodes.returns, rtol=1e-6)
    np.testing.assert_array_equal(traj.alive.sum(-1), episodes.lengths)
    np.testing.assert_array_equal(traj.actions, np.full((4, 6, 2), 0.25))
    # Step 0 saw the reset of the episode's own key (episode_keys' first key), step t+1 what
    # step t led to.
    key_reset = episode_keys(jax.random.split(key, 4)[2])[0]
    np.testing.assert_array_equal(traj.obs[2, 0], env.reset(key_reset).obs)
    np.testing.assert_allclose(traj.obs[2, 1], env.step(env.reset(key_reset),
                                                        traj.actions[2, 0]).obs, rtol=1e-6)
    if terminate_after:   # alive up to and including the first done, then 0
      np.testing.assert_array_equal(traj.alive[0], [1, 1, 1, 0, 0, 0])
      assert float(traj.dones[0, 2]) == 1.0
