"""PETS end to end on the tiny point-mass env: learning, vmapped seeds, bad input."""

import dataclasses

import jax
import numpy as np
import pytest

from wmjax import envs, presets
from wmjax.agents import pets as pets_lib
from wmjax.rl.rollout import policy_returns

EPISODES = 5   # planned episodes after the random ones (50 steps each)


@pytest.fixture(scope="module")
def point_mass_run():
  env = envs.make("fast/PointMass")
  config = presets.defaults("pets", "fast/PointMass")[0]
  total = (EPISODES + config.initial_episodes) * env.steps_per_episode
  pets = pets_lib.make_pets(env, config, total_steps=total)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  hypers = jax.tree.map(lambda v: np.full((2,), v, np.float32), tuple(pets_lib.PETSHyper()))
  train = jax.jit(jax.vmap(lambda k, h: pets.train(k, h, EPISODES)))
  state, metrics = train(keys, hypers)
  returns = np.asarray(jax.jit(jax.vmap(pets.evaluate))(
      state, jax.random.split(jax.random.PRNGKey(9), 2), hypers).returns)
  return env, pets, keys, hypers, state, metrics, returns


def _random_return(env, episodes=16):
  def one(key):
    k_reset, k_act = jax.random.split(key)
    s = env.reset(k_reset)

    def body(s, k):
      s = env.step(s, jax.random.uniform(k, (2,), minval=-1, maxval=1))
      return s, s.reward

    return jax.lax.scan(body, s, jax.random.split(k_act, env.steps_per_episode))[1].sum()

  return float(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(3), episodes)).mean())


def test_pets_learns_point_mass(point_mass_run):
  env, _, _, _, _, metrics, returns = point_mass_run
  random_return = _random_return(env)
  # A controller that reaches the origin and stays scores ~45 of 50; random actions ~28.
  assert random_return < 32
  assert returns.shape == (2, 1)
  assert np.all(returns > 38), (returns, random_return)
  train_returns = np.asarray(metrics["train/episode_return"])   # [seeds, episodes]
  assert train_returns.shape == (2, EPISODES)
  assert np.all(np.isfinite(np.asarray(metrics["model/loss"])))


def test_evaluation_is_the_shared_rollout_of_the_policy(point_mass_run):
  """The evaluator's returns are those of ``policy_returns`` with the run's policy on the same
  key: what a loaded policy scores, vmapped over runs as the driver does or one run alone."""
  env, pets, _, hypers, state, _, returns = point_mass_run
  keys = jax.random.split(jax.random.PRNGKey(9), 2)
  episodes = pets.config.eval_episodes

  def rollout(s, k, h):
    return policy_returns(env, pets.policy, s, h, k, episodes)

  np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(rollout))(state, keys, hypers)),
                             returns, rtol=0, atol=1e-5)
  first_state, first_hyper = jax.tree.map(lambda x: x[0], (state, hypers))
  np.testing.assert_allclose(np.asarray(jax.jit(rollout)(first_state, keys[0], first_hyper)),
                             returns[0], rtol=0, atol=1e-5)
  # The policy acts on one observation: the env's action, and the planner's warm start.
  carry = pets.policy.init(first_state, first_hyper, jax.random.PRNGKey(0))
  obs = env.reset(jax.random.PRNGKey(1)).obs
  new_carry, action = pets.policy.act(first_state, first_hyper, carry, obs,
                                      jax.random.PRNGKey(2), False)
  assert action.shape == env.spec.action_shape
  assert jax.tree.map(np.shape, new_carry) == jax.tree.map(np.shape, carry)


def test_vmapped_seeds_match_single_seed_runs(point_mass_run):
  _, pets, keys, hypers, _, metrics, _ = point_mass_run
  single = jax.jit(lambda k, h: pets.train(k, h, EPISODES))
  _, m1 = single(keys[1], jax.tree.map(lambda x: x[1], hypers))
  # Same keys, same program: the first episodes agree. Later ones drift apart by float
  # rounding (vmap batches the matmuls differently) amplified by planning, so they are not
  # compared to the last bit.
  np.testing.assert_allclose(np.asarray(m1["train/episode_return"])[:2],
                             np.asarray(metrics["train/episode_return"])[1, :2], rtol=1e-3,
                             atol=1e-2)
  np.testing.assert_allclose(np.asarray(m1["model/loss"])[0],
                             np.asarray(metrics["model/loss"])[1, 0], rtol=1e-3)


@pytest.mark.parametrize("every, fits_in_episode", [(10, [True, True]), (30, [False, True])])
def test_refit_every_f_steps_inside_the_episode(every, fits_in_episode):
  """Refits follow the run's planned-step count, also when the period exceeds an episode."""
  env = envs.make("fast/PointMass", episode_length=20)
  config = dataclasses.replace(presets.defaults("pets", "fast/PointMass")[0], train_every=every,
                               initial_episodes=1,
                               model_train_steps=20, population=16, iterations=2)
  pets = pets_lib.make_pets(env, config, total_steps=60)
  state, metrics = jax.jit(lambda k: pets.train(k, pets_lib.PETSHyper(), 2))(
      jax.random.PRNGKey(0))
  assert int(state.buffer.size) == 60
  loss = np.asarray(metrics["model/loss"])
  assert np.all(np.isfinite(loss))
  np.testing.assert_array_equal(loss != 0.0, fits_in_episode)
  with pytest.raises(ValueError, match="total_steps=60"):
    pets.train(jax.random.PRNGKey(0), pets_lib.PETSHyper(), 3)


def test_bad_input_is_refused():
  env = envs.make("fast/PointMass")
  with pytest.raises(ValueError, match="num_elites"):
    pets_lib.PETSConfig(ensemble_size=3, num_elites=5)
  with pytest.raises(ValueError, match="horizon"):
    pets_lib.PETSConfig(horizon=0)
  with pytest.raises(ValueError, match="known reward"):
    pets_lib.make_pets(envs.make("dmc/CartpoleSwingup"),
                       pets_lib.PETSConfig(known_reward=True), total_steps=10)
  with pytest.raises(ValueError, match="unknown planner"):
    dataclasses.replace(presets.defaults("pets", "fast/PointMass")[0], planner="nope")
  with pytest.raises(ValueError, match="unknown propagation"):
    pets_lib.PETSConfig(propagation="ts2")
  del env
