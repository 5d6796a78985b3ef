"""PETS on discrete actions: one-hot actions into the data and the ensemble, the categorical
planner, integer actions to the env; it learns ``fast/PointMassDiscrete`` (a random policy does
not pass the same bar); learned terminal states on gymnax's cart-pole."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.agents import pets as pets_lib
from wmjax.agents.base import Policy
from wmjax.rl.rollout import policy_returns

ENV = "fast/PointMassDiscrete"
EPISODES = 6   # planned episodes after the random ones (50 steps each)
SEEDS = 2
# Tiny, for a 2-core CPU: ~1 minute with compilation.
CONFIG = pets_lib.PETSConfig(
    initial_episodes=2, ensemble_size=5, num_elites=5, hidden_sizes=(64, 64), batch_size=64,
    model_train_steps=500, horizon=10, population=128, iterations=3, num_particles=5,
    propagation="tsinf", eval_episodes=8)
EVAL_KEY = jax.random.PRNGKey(9)


def _uniform_policy(num_actions: int) -> Policy:
  return Policy(lambda state, hyper, key: (),
                lambda state, hyper, carry, obs, key, deterministic=True: (
                    carry, jax.random.randint(key, (), 0, num_actions)))


@pytest.fixture(scope="module")
def discrete_run():
  env = envs.make(ENV)
  total = (EPISODES + CONFIG.initial_episodes) * env.steps_per_episode
  pets = pets_lib.make_pets(env, CONFIG, total_steps=total)
  hypers = jax.tree.map(lambda v: np.full((SEEDS,), v, np.float32), tuple(pets_lib.PETSHyper()))
  keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)
  state, metrics = jax.jit(jax.vmap(lambda k, h: pets.train(k, h, EPISODES)))(keys, hypers)
  eval_keys = jax.random.split(EVAL_KEY, SEEDS)
  returns = np.asarray(jax.jit(jax.vmap(pets.evaluate))(state, eval_keys, hypers).returns)
  return env, pets, hypers, state, metrics, returns


def test_pets_learns_point_mass_with_discrete_actions(discrete_run):
  env, _, _, _, metrics, returns = discrete_run
  # The same episodes (same keys) under a uniformly random policy: ~27 of 50 (doing nothing
  # scores ~31); a controller that reaches the origin and stays ~45.
  random_returns = np.asarray(jax.jit(jax.vmap(
      lambda k: policy_returns(env, _uniform_policy(5), None, None, k, CONFIG.eval_episodes)))(
          jax.random.split(EVAL_KEY, SEEDS)))
  assert returns.shape == random_returns.shape == (SEEDS, CONFIG.eval_episodes)
  assert random_returns.mean() < 32, random_returns.mean(1)
  assert returns.mean() > 40, (returns.mean(1), random_returns.mean(1))
  assert np.all(returns.mean(1) > 36), (returns.mean(1), random_returns.mean(1))
  assert np.all(np.isfinite(np.asarray(metrics["model/loss"])))


def test_data_holds_one_hot_actions_and_the_env_gets_integers(discrete_run):
  env, pets, hypers, state, _, _ = discrete_run
  size = int(state.buffer.size[0])
  actions = np.asarray(state.buffer.data.action[0, :size])
  assert actions.shape == (size, 5)
  np.testing.assert_array_equal(actions.sum(-1), 1.0)
  assert set(np.unique(actions)) == {0.0, 1.0}
  assert np.all(actions.mean(0) > 0.05)   # random and planned episodes use every action
  one = jax.tree.map(lambda x: x[0], (state, hypers))
  carry = pets.policy.init(*one, jax.random.PRNGKey(0))
  obs = env.reset(jax.random.PRNGKey(1)).obs
  carry, action = jax.jit(pets.policy.act, static_argnums=5)(*one, carry, obs,
                                                            jax.random.PRNGKey(2), True)
  assert action.shape == () and jnp.issubdtype(action.dtype, jnp.integer)
  assert 0 <= int(action) < 5
  assert carry.probs.shape == (CONFIG.horizon, 5)


def test_continuous_only_planners_are_refused_for_discrete_actions():
  env = envs.make(ENV)
  with pytest.raises(ValueError, match="discrete actions: planner must be one of cem, "
                     "random_shooting, got 'mppi'"):
    pets_lib.make_pets(env, dataclasses.replace(CONFIG, planner="mppi"), total_steps=100)


def test_learned_termination_classifies_fallen_poles():
  """gymnax cart-pole ends when the pole falls (its reward is +1 every step): the classifier of
  next observations, fit on random episodes, calls their terminal steps terminal, few others,
  and an upright pole at rest not."""
  env = envs.make("gymnax/CartPole-v1", episode_length=100)
  config = dataclasses.replace(CONFIG, initial_episodes=4, model_train_steps=300,
                               learn_termination=True)
  pets = pets_lib.make_pets(env, config, total_steps=500)
  state = jax.jit(pets.init)(jax.random.PRNGKey(0), pets_lib.PETSHyper())
  size = int(state.buffer.size)
  data = jax.tree.map(lambda x: np.asarray(x[:size]), state.buffer.data)
  assert data.obs.shape == (size, 4) and data.action.shape == (size, 2)
  assert data.terminated.sum() == 4   # random actions drop the pole within 100 steps
  prob = jax.jit(jax.vmap(lambda o: pets.terminal_prob(state, o)))
  p_next = np.asarray(prob(jnp.asarray(data.next_obs)))
  assert np.all(p_next[data.terminated > 0] > 0.5), p_next[data.terminated > 0]
  assert np.mean(p_next[data.terminated == 0] > 0.5) < 0.1
  assert float(prob(jnp.zeros((1, 4)))[0]) < 0.1   # upright and still, in the middle
