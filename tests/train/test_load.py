"""wmjax.load: a run loaded from its folder acts as its evaluator did. For every agent, a loaded
seed stepped through its env by a plain Python loop (the way a user drives it) scores, episode by
episode, what `wmjax eval` (the run's own evaluator) reports for the same keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import wmjax
from wmjax.train import loop

from .tiny import TINY_RUNS

EPISODES = 2
SEED = 123


@jax.jit
def _act(agent, carry, obs, key):
  return agent.act(carry, obs, key)


def _python_episode(agent, key, step, start=None):
  """One episode by hand, on wmjax.rl.rollout's key convention: (return, length)."""
  env = agent.env if start is None else getattr(agent.env, "unwrapped", agent.env)
  key_reset, key_init, key_steps = jax.random.split(key, 3)
  state = env.reset(key_reset) if start is None else start
  carry = agent.init(key_init)
  total = length = 0.0
  for key_t in jax.random.split(key_steps, env.steps_per_episode if start is None else 4 *
                                env.num_cells):
    carry, action = _act(agent, carry, state.obs, key_t)
    state = step(state, action)
    total += float(state.reward)
    length += 1
    if float(state.done) > 0:
      break
  return total, length


def _muzero_episode(agent, key):
  """One game as wmjax.agents.arena.play_episodes plays it (one game per key)."""
  game = agent.env
  k_init, k_play = jax.random.split(key)
  g = game.init(jax.random.split(k_init, 1)[0])
  step = jax.jit(game.step)
  total = 0.0
  for key_t in jax.random.split(k_play, game.max_steps):
    k_agent, k_step = jax.random.split(key_t)
    _, action = _act(agent, (), g, k_agent)
    g = step(g, action, jax.random.split(k_step, 1)[0])
    total += float(g.reward)
  return total


@pytest.mark.parametrize("name", list(TINY_RUNS))
def test_a_loaded_seed_scores_what_the_runs_evaluator_reports(tiny_run, name):
  run = tiny_run(name).path
  episodes = 1 if name == "muzero" else EPISODES   # MuZero's evaluator searches a batch of games
  results, saved, _, algo = loop.evaluate_run(run, episodes=episodes, seed=SEED)
  metric = "eval/episode_return" if name == "muzero" else algo.eval_metric   # one-player game
  reported = np.asarray(results[metric])            # [runs, episodes]
  run_keys = jax.random.split(jax.random.PRNGKey(SEED), saved["seeds"])

  agent = wmjax.load(run, seed=1)
  assert (agent.run, agent.runs, agent.algo) == (1, 2, name)
  keys = jax.random.split(run_keys[1], episodes)
  if name == "muzero":
    mine = [_muzero_episode(agent, run_keys[1])]   # play_episodes splits the key itself
  elif name == "dyna":   # steps to the goal, from the maze as it is now
    grid = getattr(agent.env, "unwrapped", agent.env)
    step = jax.jit(grid.step)
    mine = [_python_episode(agent, k, step, start=grid.restart(agent.state[0].env_state))[1]
            for k in keys]
  else:
    step = jax.jit(agent.env.step)
    mine = [_python_episode(agent, k, step)[0] for k in keys]
  np.testing.assert_allclose(mine, reported[1], rtol=1e-4, atol=1e-3)
  if name not in ("muzero", "dyna"):   # the same, in one vmapped program
    np.testing.assert_allclose(agent.episode_returns(run_keys[1], episodes), reported[1],
                               rtol=1e-4, atol=1e-3)
  if name == "pets":   # the same episodes, every step recorded
    traj = agent.trajectories(run_keys[1], episodes)
    assert traj.obs.shape[:2] == (episodes, agent.env.steps_per_episode)
    np.testing.assert_allclose(traj.returns(), reported[1], rtol=1e-4, atol=1e-3)


def test_a_loaded_agent_acts_on_a_batch_under_vmap_and_jit(tiny_run):
  agent = wmjax.load(tiny_run("dreamer").path)
  assert agent.seed_index == 0 and "dreamer on fast/PointMass" in repr(agent)
  batch = 3
  env = agent.env
  states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), batch))
  carry = agent.init(jax.random.PRNGKey(1), batch=batch)
  act = jax.jit(jax.vmap(agent.act))
  carry, actions = act(carry, states.obs, jax.random.split(jax.random.PRNGKey(2), batch))
  assert actions.shape == (batch,) + tuple(env.spec.action_shape)
  assert np.all(np.abs(np.asarray(actions)) <= 1.0)
  # One by one gives the same actions.
  for i in range(batch):
    one = jax.tree.map(lambda x, i=i: x[i], (agent.init(jax.random.PRNGKey(1), batch=batch),
                                             states.obs, jax.random.split(
                                                 jax.random.PRNGKey(2), batch)))
    _, action = agent.act(*one)
    np.testing.assert_allclose(action, actions[i], rtol=1e-5, atol=1e-5)
  # The agent is a pytree: passed into jit as an argument, its state is not a constant.
  leaves = jax.tree.leaves(agent)
  assert leaves and all(isinstance(x, jnp.ndarray) for x in leaves)
  sampled = agent.with_deterministic(False)
  _, a1 = sampled.act(agent.init(jax.random.PRNGKey(1)), states.obs[0], jax.random.PRNGKey(5))
  _, a2 = sampled.act(agent.init(jax.random.PRNGKey(1)), states.obs[0], jax.random.PRNGKey(6))
  assert not np.allclose(a1, a2)   # sampled actions differ by key


@pytest.mark.parametrize("kwargs, message", [
    ({"run": 2}, r"run 2 is not in .*: it has 2 run\(s\), 0..1"),
    ({"seed": 5}, r"seed 5 is not in .*: it has seeds 0..1"),
])
def test_loading_a_run_that_is_not_there_says_which_exist(tiny_run, kwargs, message):
  with pytest.raises(ValueError, match=message):
    wmjax.load(tiny_run("dyna").path, **kwargs)


def test_loading_a_folder_without_a_run_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    wmjax.load(tmp_path)


def test_a_run_loads_to_act_with_other_settings_as_eval_does(tiny_run):
  """``sets=``: a bigger planner on the trained model, the episodes ``wmjax eval --set`` scores;
  a setting that changes the checkpoint's arrays is refused with the reason."""
  run = tiny_run("pets").path
  sets = ["population=32", "iterations=3"]
  agent = wmjax.load(run, seed=1, sets=sets)
  assert (agent.config.population, agent.config.iterations) == (32, 3)
  assert wmjax.load(run, seed=1).config.population == 16
  results, saved, *_ = loop.evaluate_run(run, episodes=EPISODES, seed=SEED, sets=sets)
  run_keys = jax.random.split(jax.random.PRNGKey(SEED), saved["seeds"])
  np.testing.assert_allclose(agent.episode_returns(run_keys[1], EPISODES),
                             np.asarray(results["eval/episode_return"])[1], rtol=1e-4, atol=1e-3)
  with pytest.raises(ValueError, match="changes the shapes of the checkpoint"):
    wmjax.load(run, sets="ensemble_size=7")


def test_a_dreamer_run_loads_to_act_by_planning_on_its_model_as_eval_does(tiny_run):
  """``act_with=plan``: the loaded agent plans (CEM on its world model and critic) and scores
  what ``wmjax eval --set act_with=plan`` reports for the same keys."""
  run = tiny_run("dreamer").path
  sets = ["act_with=plan", "plan_horizon=3", "plan_population=16", "plan_iterations=2"]
  agent = wmjax.load(run, sets=sets)
  assert agent.config.act_with == "plan" and agent.policy.deterministic
  results, saved, *_ = loop.evaluate_run(run, episodes=EPISODES, seed=SEED, sets=sets)
  run_keys = jax.random.split(jax.random.PRNGKey(SEED), saved["seeds"])
  np.testing.assert_allclose(agent.episode_returns(run_keys[0], EPISODES),
                             np.asarray(results["eval/episode_return"])[0], rtol=1e-4, atol=1e-3)
