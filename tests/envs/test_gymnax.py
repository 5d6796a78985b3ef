"""The gymnax/ suite: the adapter steps exactly as gymnax does, keeps termination apart from the
time limit, maps [-1, 1] onto a continuous control range, and accepts gymnax envs in
register_env."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.envs import registry, user


def test_the_suite_lists_gymnax_tasks_by_name():
  names = envs.names()
  for name in ("gymnax/CartPole-v1", "gymnax/Pendulum-v1", "gymnax/Breakout-MinAtar",
               "gymnax/Catch-bsuite", "gymnax/DeepSea-bsuite"):
    assert name in names
  assert "gymnax/MNISTBandit-bsuite" not in names   # downloads its data set: not buildable here


def test_cartpole_steps_as_gymnax_and_terminates_apart_from_the_time_limit():
  env = envs.make("gymnax/CartPole-v1")
  assert env.spec.num_actions == 2 and env.spec.obs_shape == (4,) and env.episode_length == 500
  gx, params = gymnax.make("CartPole-v1")
  state = env.reset(jax.random.PRNGKey(0))
  # The same keys as the adapter: reset with the first half of the key, then one key per step.
  key_reset, key = jax.random.split(jax.random.key_data(jax.random.PRNGKey(0)))
  obs, gx_state = gx.reset_env(key_reset, params)
  np.testing.assert_allclose(state.obs, obs, rtol=1e-6)
  step = jax.jit(env.step)
  steps = 0
  for _ in range(40):   # always push right: the pole falls within a few dozen steps
    steps += 1
    state = step(state, jnp.asarray(1, jnp.int32))
    key_step, key = jax.random.split(key)
    obs, gx_state, reward, done, _ = gx.step_env(key_step, gx_state, 1, params)
    np.testing.assert_allclose(state.obs, obs, rtol=1e-5, atol=1e-6)
    assert float(state.reward) == pytest.approx(float(reward))
    if bool(done):
      break
  assert bool(done) and steps < 40
  assert float(state.info["terminated"]) == 1.0 and float(state.info["truncated"]) == 0.0


def test_pendulum_maps_actions_onto_its_torque_range_and_truncates_at_its_limit():
  env = envs.make("gymnax/Pendulum-v1")
  assert env.spec.action_shape == (1,) and env.episode_length == 200
  gx, params = gymnax.make("Pendulum-v1")
  state = env.reset(jax.random.PRNGKey(1))
  key_reset, key = jax.random.split(jax.random.key_data(jax.random.PRNGKey(1)))
  _, gx_state = gx.reset_env(key_reset, params)
  state = env.step(state, jnp.array([1.0]))                       # +1 is the top of [-2, 2]
  _, _, reward, _, _ = gx.step_env(jax.random.split(key)[0], gx_state, jnp.array([2.0]), params)
  assert float(state.reward) == pytest.approx(float(reward), rel=1e-5)
  step = jax.jit(env.step)
  for _ in range(199):
    state = step(state, jnp.array([0.0]))
  assert float(state.info["truncated"]) == 1.0 and float(state.info["terminated"]) == 0.0


def test_minatar_observations_are_float_planes():
  env = envs.make("gymnax/Breakout-MinAtar")
  state = env.reset(jax.random.PRNGKey(0))
  assert env.spec.obs_shape == (10, 10, 4) and state.obs.dtype == jnp.float32
  state = jax.jit(jax.vmap(env.step))(jax.vmap(env.reset)(jax.random.split(
      jax.random.PRNGKey(0), 3)), jnp.zeros(3, jnp.int32))
  assert state.obs.shape == (3, 10, 10, 4)


def test_register_env_takes_a_gymnax_env_or_what_gymnax_make_returns():
  try:
    envs.register_env("mine/CartPole", lambda: gymnax.make("CartPole-v1"), episode_length=100)
    env = envs.make("mine/CartPole")
    assert env.spec.num_actions == 2 and env.episode_length == 100
  finally:
    registry._REGISTRY.pop("mine/CartPole", None)
    user._USER.discard("mine/CartPole")
    user._FACTORY.pop("mine/CartPole", None)
  with pytest.raises(ValueError, match="not parameters of its EnvParams"):
    envs.make("gymnax/CartPole-v1", gravit=9.0)
