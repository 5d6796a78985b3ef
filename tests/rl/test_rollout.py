"""wmjax.rl.rollout: an episode's length stops at its first ``done`` (a terminal state, e.g. a
fall), or is the env's episode length; its return counts no reward after ``done``."""

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents.base import Policy
from wmjax.envs import fast, wrappers
from wmjax.rl.rollout import policy_episodes, policy_returns


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
