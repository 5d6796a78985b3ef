"""Dreamer's planning policy: CEM on its own world model and critic instead of its actor. Its
objective matches a step-by-step reference, it acts within bounds for whole episodes (the same
episodes its actor is scored on), and discrete actions are refused."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs, presets
from wmjax.agents import dreamer as dreamer_lib
from wmjax.models import rssm
from wmjax.planners import make_cem
from wmjax.rl.rollout import episode_keys, policy_episodes, policy_trajectories

TINY = dict(size="debug", units=32, deter=32, hidden=32, num_envs=2, steps_per_iteration=16,
            prefill=64, batch_size=4, seq_len=16, imagine_starts=16)


def fns_config():
  config, _ = presets.defaults("dreamer", "fast/PointMass")
  return dataclasses.replace(config, **TINY)


@pytest.fixture(scope="module")
def tiny():
  config, hyper = fns_config(), presets.defaults("dreamer", "fast/PointMass")[1]
  env = envs.make("fast/PointMass", action_repeat=config.action_repeat)
  fns = dreamer_lib.make_dreamer(env, config)
  state = jax.jit(fns.init)(jax.random.PRNGKey(0), hyper)
  return env, fns, state, hyper


def test_the_objective_is_discounted_model_rewards_then_the_critics_value(tiny):
  env, fns, state, hyper = tiny
  wm, params = fns.world_model, state.params
  obs = env.reset(jax.random.PRNGKey(1)).obs
  latent, _ = wm.obs_step(params["model"], jax.random.PRNGKey(2), wm.initial((1,)),
                          jnp.zeros((1, 2)), wm.encode(params["model"], obs[None]),
                          jnp.ones((1,)))
  actions = jax.random.uniform(jax.random.PRNGKey(3), (3, 4, 2), minval=-1, maxval=1)
  key, discount = jax.random.PRNGKey(4), 0.9
  got = dreamer_lib.planning_objective(fns, params, latent, discount, key)(
      jax.random.PRNGKey(99), actions)   # the planner's key is not the model's
  # Step by step, on imagine_actions' key convention (one key per step).
  s = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,) + x.shape[1:]), latent)
  want = np.zeros(3)
  for t, key_t in enumerate(jax.random.split(key, 4)):
    s = wm.img_step(params["model"], key_t, s, actions[:, t])
    want += discount ** t * np.asarray(wm.reward(params["model"], rssm.features(s)))
  want += discount ** 4 * np.asarray(fns.value(params["critic"], rssm.features(s)))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # samples=4: each sequence scored on 4 draws of the prior (the rows of a repeated batch,
  # whose latents differ), averaged.
  repeated = jnp.repeat(actions, 4, axis=0)
  draws = wm.imagine_actions(params["model"], key, jax.tree.map(
    lambda x: jnp.broadcast_to(x, (12,) + x.shape[1:]), latent), repeated).stoch
  assert not np.array_equal(draws[0], draws[1])   # one sequence, two draws
  single = dreamer_lib.planning_objective(fns, params, latent, discount, key)(
    None, repeated).reshape(3, 4)
  averaged = dreamer_lib.planning_objective(fns, params, latent, discount, key, samples=4)(
    None, actions)
  np.testing.assert_allclose(averaged, single.mean(1), rtol=1e-5, atol=1e-5)


def test_the_planning_policy_acts_within_bounds_on_the_actors_episodes(tiny):
  env, fns, state, hyper = tiny
  policy = dreamer_lib.planning_policy(env, fns, make_cem(3, 16, 2), float(hyper.discount))
  key = jax.random.PRNGKey(5)
  traj = jax.jit(lambda k: policy_trajectories(env, policy, state, hyper, k, 2))(key)
  assert traj.actions.shape == (2, env.steps_per_episode, 2)
  assert np.all(np.abs(np.asarray(traj.actions)) <= 1.0) and np.all(np.isfinite(traj.rewards))
  assert np.asarray(traj.actions).std() > 0   # it plans, not a constant
  # The episodes the actor is scored on: reset by the same keys (wmjax.rl.rollout's).
  for i, k in enumerate(jax.random.split(key, 2)):
    np.testing.assert_array_equal(traj.obs[i, 0], env.reset(episode_keys(k)[0]).obs)


def test_act_with_plan_makes_the_planner_the_agents_evaluation(tiny):
  """``act_with=plan`` (as ``wmjax eval --set act_with=plan``): the same trained state is
  evaluated by the planner, discounting by the run's hyper, not by the actor; ``plan_act=best``
  acts on the best sequence sampled (the elites' mean is test_load's)."""
  env, fns, state, hyper = tiny
  config = dataclasses.replace(fns_config(), act_with="plan", plan_horizon=3,
                               plan_population=16, plan_iterations=2, eval_episodes=2,
                               plan_act="best")
  planned = dreamer_lib.make_dreamer(env, config)
  assert planned.acting.deterministic
  key, hyper = jax.random.PRNGKey(6), hyper._replace(discount=jnp.float32(0.9))
  got = jax.jit(planned.evaluate)(state, key, hyper)
  policy = dreamer_lib.planning_policy(env, fns, make_cem(3, 16, 2, return_mean_elites=False),
                                      0.9)
  want = jax.jit(lambda k: policy_episodes(env, policy, state, hyper, k, 2, True))(key)
  np.testing.assert_allclose(got.returns, want.returns, rtol=1e-5, atol=1e-4)


def test_discrete_actions_are_refused():
  env = envs.make("fast/PointMassDiscrete")
  config = dataclasses.replace(presets.defaults("dreamer", "fast/PointMassDiscrete")[0], **TINY)
  fns = dreamer_lib.make_dreamer(env, config)
  with pytest.raises(ValueError, match="continuous actions"):
    dreamer_lib.planning_policy(env, fns, make_cem(3, 16, 2), 0.99)
  with pytest.raises(ValueError, match="continuous actions"):   # before any compilation
    dreamer_lib.make_dreamer(env, dataclasses.replace(config, act_with="plan"))
  with pytest.raises(ValueError, match="act_with must be actor or plan"):
    dataclasses.replace(config, act_with="cem")
  with pytest.raises(ValueError, match="plan_act must be mean or best"):
    dataclasses.replace(config, plan_act="elite")
