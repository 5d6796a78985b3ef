"""Pixel and discrete point-mass envs through the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.envs import fast, wrappers
from wmjax.types import Spec


def _rollout(env, key, actions):
  """``actions [T, ...]`` -> final state, (obs, reward, done, truncated, true state) per step."""
  state = env.reset(key)

  def body(s, a):
    s = env.step(s, a)
    return s, (s.obs, s.reward, s.done, s.info["truncated"], s.pipeline_state)

  return jax.lax.scan(body, state, actions)


def _blob_position(image):
  """World position of the red blob's brightest pixel in an ``[S, S, 3]`` image."""
  size = image.shape[0]
  row, col = np.unravel_index(np.argmax(np.asarray(image[..., 0])), image.shape[:2])
  to_world = lambda i: -2.0 + (i + 0.5) * 4.0 / size
  return np.array([to_world(col), -to_world(row)])


def test_specs():
  pixels = envs.make("fast/PointMassPixels")
  assert pixels.spec.obs_shape == (16, 16, 3) and pixels.spec.action_shape == (2,)
  assert not pixels.spec.discrete and pixels.steps_per_episode == 50
  assert envs.make("fast/PointMassPixels", size=32).spec.obs_shape == (32, 32, 3)
  discrete = envs.make("fast/PointMassDiscrete")
  assert discrete.spec.obs_shape == (4,) and discrete.spec.action_shape == ()
  assert discrete.spec.num_actions == 5 and discrete.spec.action_size == 5
  assert discrete.spec.discrete and discrete.steps_per_episode == 50
  assert "discrete(5)" in discrete.spec.describe()
  # Continuous envs are unchanged.
  assert envs.make("fast/PointMass").spec == Spec(obs_shape=(4,), action_shape=(2,))


def test_pixel_observations_show_the_mass():
  env = envs.make("fast/PointMassPixels", episode_length=10, size=32)
  state = env.reset(jax.random.PRNGKey(0))
  obs = np.asarray(state.obs)
  assert obs.shape == (32, 32, 3) and obs.dtype == np.float32
  assert obs.min() >= 0.0 and obs.max() <= 1.0 and obs[..., 2].max() == 0.0
  # The goal marker is dim green at the centre; the mass is a bright red blob at its position.
  assert 0.1 < obs[..., 1].max() < 0.5 and obs[..., 1].max() == obs[15:17, 15:17, 1].max()
  assert obs[..., 0].max() > 0.8
  pos0 = np.asarray(state.pipeline_state[:2])
  np.testing.assert_allclose(_blob_position(obs), pos0, atol=4.0 / 32)
  # Pushing +x then -y for 10 steps: the blob follows the mass.
  actions = jnp.array([[1.0, -1.0]] * 10)
  _, (obs_t, _, _, _, true_t) = _rollout(env, jax.random.PRNGKey(0), actions)
  pos = np.asarray(true_t[-1, :2])
  assert pos[0] > pos0[0] + 0.1 and pos[1] < pos0[1] - 0.1
  np.testing.assert_allclose(_blob_position(obs_t[-1]), pos, atol=4.0 / 32)
  np.testing.assert_allclose(obs_t[:, ..., 1], np.broadcast_to(obs[..., 1], (10, 32, 32)))


def test_pixels_hide_velocity_and_share_pointmass_dynamics():
  raw = fast.PointMassPixels(size=32)
  still = jnp.array([0.5, -0.3, 0.0, 0.0])
  moving = jnp.array([0.5, -0.3, 1.0, 2.0])
  np.testing.assert_array_equal(raw.render(still), raw.render(moving))
  # Same key and actions: the same returns as the state-observation PointMass.
  actions = jax.random.uniform(jax.random.PRNGKey(1), (50, 2), minval=-1, maxval=1)
  _, (_, r_pix, *_) = _rollout(envs.make("fast/PointMassPixels"), jax.random.PRNGKey(2), actions)
  _, (obs, r_vec, *_) = _rollout(envs.make("fast/PointMass"), jax.random.PRNGKey(2), actions)
  np.testing.assert_allclose(r_pix, r_vec, rtol=1e-6)


def test_discrete_actions_move_the_mass_in_their_direction():
  env = envs.make("fast/PointMassDiscrete", episode_length=10)
  key = jax.random.PRNGKey(3)
  start = env.reset(key).obs[:2]
  rollout = jax.jit(jax.vmap(lambda a: _rollout(env, key, jnp.full((6,), a, jnp.int32))))
  _, (obs, reward, *_) = rollout(jnp.arange(5))
  moved = np.asarray(obs[:, -1, :2] - start)   # [5, 2]
  np.testing.assert_allclose(moved[0], 0.0, atol=1e-6)   # no force, starts at rest
  directions = moved[1:] / np.linalg.norm(moved[1:], axis=-1, keepdims=True)
  np.testing.assert_allclose(directions, fast.PointMassDiscrete.forces[1:], atol=1e-5)
  # The action cost: no-force steps are 0.01 better than forced steps at the same position.
  np.testing.assert_allclose(
      env.reward_fn(obs[0, 0], jnp.int32(1), obs[0, 0]) + 0.01,
      env.reward_fn(obs[0, 0], jnp.int32(0), obs[0, 0]), rtol=1e-6)


@pytest.mark.parametrize("action", [jnp.zeros(()), jnp.zeros((1,), jnp.int32),
                                    jnp.zeros((5,), jnp.int32), 1.0])
def test_bad_discrete_action_is_refused(action):
  env = envs.make("fast/PointMassDiscrete")
  state = env.reset(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"one integer action in 0\.\.4"):
    env.step(state, action)


@pytest.mark.parametrize("name", ["fast/PointMassPixels", "fast/PointMassDiscrete"])
def test_random_policy_over_four_vmapped_envs(name):
  env = envs.make(name)
  spec = env.spec
  key_reset, key_act = jax.random.split(jax.random.PRNGKey(4))
  shape = (4, env.steps_per_episode)
  if spec.discrete:
    actions = jax.random.randint(key_act, shape, 0, spec.num_actions)
  else:
    actions = jax.random.uniform(key_act, (*shape, *spec.action_shape), minval=-1, maxval=1)
  final, (obs, reward, done, truncated, _) = jax.jit(jax.vmap(lambda k, a: _rollout(env, k, a)))(
      jax.random.split(key_reset, 4), actions)
  assert obs.shape == (*shape, *spec.obs_shape)
  returns = np.asarray(reward.sum(1))
  print(name, "random-policy returns", returns)
  # At most 50 (one per step); 256 random episodes average about 28 for both (std 9).
  assert np.all((returns > 0) & (returns < 50)) and 15 < returns.mean() < 42
  # brax's EpisodeWrapper and our TerminationInfo are in the stack.
  assert np.all(np.asarray(done[:, -1]) == 1) and np.all(np.asarray(truncated[:, -1]) == 1)
  assert np.all(np.asarray(final.info["terminated"]) == 0)
  np.testing.assert_allclose(final.info["episode_metrics"]["sum_reward"], returns, rtol=1e-5)


def test_countdown_pixels_terminate_after_their_steps_not_by_time_limit():
  ones = np.ones(2, np.float32)
  env = wrappers.wrap(fast.PointMassPixelsCountdown(8, terminate_after=3), name="countdown",
                      episode_length=5, action_repeat=1, ctrl_low=-ones, ctrl_high=ones)
  state = env.reset(jax.random.PRNGKey(0))
  flags = []
  for _ in range(5):
    state = env.step(state, jnp.zeros(2))
    flags.append((float(state.done), float(state.info["terminated"]),
                  float(state.info["truncated"])))
  assert flags == [(0, 0, 0), (0, 0, 0), (1, 1, 0), (1, 1, 0), (1, 1, 0)]
  assert float(state.reward) > 0   # stepped past its end, it still pays: agents must stop
  with pytest.raises(ValueError, match="terminate_after"):
    fast.PointMassPixelsCountdown(8, terminate_after=0)
