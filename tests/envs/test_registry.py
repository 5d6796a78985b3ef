"""Registry, wrappers and our own envs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.envs import pets as pets_env


def _rollout(env, key, actions):
  state = env.reset(key)

  def body(s, a):
    s = env.step(s, a)
    return s, (s.obs, s.reward, s.done, s.info["terminated"], s.info["truncated"])

  return jax.lax.scan(body, state, actions)


def test_unknown_env_lists_close_matches():
  with pytest.raises(ValueError, match="dmc/CartpoleSwingup"):
    envs.make("dmc/CartpoleSwingp")
  with pytest.raises(ValueError, match="wmjax envs"):
    envs.make("nosuchsuite/thing")


def test_registry_covers_every_suite():
  names = envs.names()
  for expected in ("dmc/CartpoleSwingup", "dmc/WalkerWalk", "brax/hopper", "brax/ant",
                   "pets/cartpole", "fast/PointMass"):
    assert expected in names
  assert sum(n.startswith("dmc/") for n in names) >= 20


def test_fast_env_spec_episode_limit_and_truncation():
  env = envs.make("fast/PointMass", episode_length=10)
  assert env.spec.obs_shape == (4,) and env.spec.action_shape == (2,)
  assert env.steps_per_episode == 10
  _, (obs, reward, done, terminated, truncated) = _rollout(
      env, jax.random.PRNGKey(0), jnp.zeros((12, 2)))
  done, truncated, terminated = map(np.asarray, (done, truncated, terminated))
  assert done[:9].sum() == 0 and done[9] == 1
  assert truncated[9:].min() == 1 and terminated.sum() == 0   # a time limit is not a terminal state


def test_action_repeat_sums_rewards():
  env1 = envs.make("fast/PointMass", episode_length=20)
  env2 = envs.make("fast/PointMass", episode_length=20, action_repeat=2)
  assert env2.steps_per_episode == 10
  a = jnp.full((10, 2), 0.3)
  _, (_, r2, *_) = _rollout(env2, jax.random.PRNGKey(1), a)
  _, (_, r1, *_) = _rollout(env1, jax.random.PRNGKey(1), jnp.repeat(a, 2, axis=0))
  np.testing.assert_allclose(np.asarray(r2), np.asarray(r1).reshape(10, 2).sum(1), rtol=1e-5)
  assert env2.reward_fn is None   # a per-step known reward no longer applies


def test_wrong_action_shape_is_refused():
  env = envs.make("fast/PointMass")
  state = env.reset(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"takes actions of shape \(2,\)"):
    env.step(state, jnp.zeros(3))


def test_actions_are_normalised_to_the_control_range():
  env = envs.make("pets/cartpole")
  norm = env.env.env.env   # RegisteredEnv > TerminationInfo > EpisodeWrapper > NormalizeActions
  assert isinstance(norm, envs.NormalizeActions)
  np.testing.assert_allclose(norm._low, [-3.0])
  np.testing.assert_allclose(norm._high, [3.0])


def test_pets_cartpole_physics_and_reward():
  env = envs.make("pets/cartpole")
  assert env.spec.obs_shape == (4,) and env.steps_per_episode == 200
  state = env.reset(jax.random.PRNGKey(0))
  # Starts hanging down with small noise.
  assert np.all(np.abs(np.asarray(state.obs)) < 0.5)
  # Upright tip at the target gives reward 1 (minus the action cost).
  up = jnp.array([0.0, jnp.pi, 0.0, 0.0])
  np.testing.assert_allclose(pets_env.reward(up, jnp.zeros(1), up), 1.0, atol=1e-6)
  np.testing.assert_allclose(pets_env.reward(up, jnp.ones(1), up), 1.0 - 0.01 * 9.0, atol=1e-6)
  # Pushing right moves the cart right; the free pole swings back (it starts hanging).
  _, (obs, reward, *_) = _rollout(env, jax.random.PRNGKey(0), jnp.ones((5, 1)))
  assert float(obs[-1, 0]) > float(state.obs[0]) + 0.05
  assert np.all(np.asarray(reward) < 0.2)


@pytest.mark.slow
def test_dmc_cartpole_swingup_runs_on_mjx():
  env = envs.make("dmc/CartpoleSwingup", episode_length=50)
  assert env.spec.obs_shape == (5,) and env.spec.action_shape == (1,)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  actions = jnp.zeros((2, 50, 1))
  rollout = jax.jit(jax.vmap(lambda k, a: _rollout(env, k, a)))
  _, (obs, reward, done, *_) = rollout(keys, actions)
  assert obs.shape == (2, 50, 5)
  assert np.all(np.isfinite(np.asarray(obs)))
  assert np.asarray(done)[:, -1].all()
  # Hanging down: upright reward near zero.
  assert float(reward.mean()) < 0.1


def test_options_ride_in_the_env_name():
  from wmjax import presets
  from wmjax.cli.common import default_out
  from wmjax.envs.registry import split_options

  assert split_options("dmc-pixels/CartpoleSwingup?image_size=84x64,camera=1,shadows=false") == (
      "dmc-pixels/CartpoleSwingup", {"image_size": (84, 64), "camera": 1, "shadows": False})
  assert split_options("minatar/Breakout?sticky_action_prob=0.25") == (
      "minatar/Breakout", {"sticky_action_prob": 0.25})
  assert split_options("fast/PointMass") == ("fast/PointMass", {})
  assert envs.make("fast/PointMassPixels?size=8").spec.obs_shape == (8, 8, 3)
  # A keyword argument of make() wins over the name's.
  assert envs.make("fast/PointMassPixels?size=8", size=12).spec.obs_shape == (12, 12, 3)
  # The preset follows the env, not its options; the default run folder has a plain name.
  assert presets.defaults("dreamer", "fast/PointMassPixels?size=8") == \
      presets.defaults("dreamer", "fast/PointMassPixels")
  assert default_out("dreamer", "fast/PointMassPixels?size=8").name.startswith(
      "dreamer-fast-PointMassPixels-size=8-")


@pytest.mark.parametrize("name,match", [
    ("fast/PointMassPixels?size", "key=value separated by commas"),
    ("fast/PointMassPixels?size=8,size=9", "'size' is given twice"),
    ("fast/PointMassPixels?colour=red", "does not take the option.*colour"),
    ("fast/PointMassPixels?size=4", "size must be an integer >= 8"),
    ("fast/PointMasss?size=8", "unknown environment 'fast/PointMasss'"),
])
def test_bad_options_in_the_env_name_are_refused(name, match):
  with pytest.raises(ValueError, match=match):
    envs.make(name)
