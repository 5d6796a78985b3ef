"""Tabular Dyna-Q / Dyna-Q+: planning converges, learning speeds up with n, Dyna-Q+ adapts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.agents.dyna import DynaConfig, make_dyna
from wmjax.envs import grid

TINY = """
    S.#G
    ....
"""


def _runs(n: int, key: int):
  return jax.random.split(jax.random.PRNGKey(key), n)


@pytest.mark.parametrize("sampling", ["state", "pair"])
def test_planning_converges_to_optimal_values(sampling):
  """With the full deterministic model, planning alone gives Q*(s, a) = gamma^d(next(s, a))."""
  env = grid.GridMaze(TINY)
  gamma = 0.9
  # Explore at random (no planning) until every action of every free cell has been tried.
  explore = make_dyna(env, DynaConfig(planning_steps=0, epsilon=1.0, gamma=gamma))
  state, _ = jax.jit(explore.run_steps, static_argnums=2)(
      explore.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 400)
  free = ~env.maze.walls.reshape(-1)
  free[env.goal_cell] = False
  assert bool(state.tried[free].all()) and int(state.num_tried) == 4 * free.sum()
  planner = make_dyna(env, DynaConfig(planning_steps=2000, alpha=0.5, gamma=gamma,
                                      sampling=sampling))
  state = state._replace(q=jnp.zeros_like(state.q))
  plan = jax.jit(planner.plan)
  for i in range(3):
    state = plan(state, jax.random.PRNGKey(10 + i))
  dist = grid.distances_to_goal(env.maze).reshape(-1)
  q_star = gamma ** dist[env.transitions[0]]          # [S, A]
  np.testing.assert_allclose(np.asarray(state.q)[free], q_star[free], atol=1e-4)
  np.testing.assert_array_equal(np.asarray(state.q)[~free], 0.0)


def test_dyna_q_plus_bonus_and_untried_actions():
  """One planning update of Dyna-Q+ on a never-tried action: a self-loop with reward
  kappa * sqrt(tau); plain Dyna-Q never plans with it."""
  env = grid.GridMaze(TINY)
  plus = make_dyna(env, DynaConfig(planning_steps=1, alpha=0.5, kappa=0.01))
  state = plus.init(jax.random.PRNGKey(0))
  info = {**state.env_state.info, "t": jnp.int32(100)}
  state = state._replace(env_state=state.env_state.replace(info=info),
                         visited_cells=state.visited_cells.at[0].set(env.start_cell),
                         num_visited=jnp.int32(1))
  q = np.asarray(jax.jit(plus.plan)(state, jax.random.PRNGKey(1)).q)
  assert np.count_nonzero(q) == 1 and np.count_nonzero(q[env.start_cell]) == 1
  np.testing.assert_allclose(q.sum(), 0.5 * 0.01 * np.sqrt(100.0), rtol=1e-6)
  # Dyna-Q after one real step plans with that step only: untried actions stay at 0.
  plain = make_dyna(env, DynaConfig(planning_steps=20, kappa=0.0))
  state, _, _ = jax.jit(plain.step)(plain.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(2))
  assert int(state.num_tried) == 1 and np.count_nonzero(np.asarray(state.q)) == 0


def test_greedy_ties_are_broken_at_random():
  env = grid.GridMaze(TINY)
  dyna = make_dyna(env, DynaConfig())
  state = dyna.init(jax.random.PRNGKey(0))
  state = state._replace(q=state.q.at[0].set(jnp.array([1.0, 1.0, 0.0, 1.0])))
  actions = jax.vmap(dyna.greedy_action, in_axes=(None, 0, None))(
      state, _runs(600, 0), jnp.int32(0))
  counts = np.bincount(np.asarray(actions), minlength=4)
  assert counts[2] == 0 and counts.min(initial=600, where=[True, True, False, True]) > 150


def test_dyna_q_learns_faster_with_planning():
  """Figure 8.2 in small: 10 vmapped runs of 10 episodes on the Dyna maze (shortest path 14)."""
  env = grid.GridMaze(grid.DYNA_MAZE)

  def steps_per_episode(n):
    dyna = make_dyna(env, DynaConfig(planning_steps=n))
    run = jax.jit(jax.vmap(lambda k: dyna.run_episodes(dyna.init(k), k, 10)[1]))
    return np.asarray(run(_runs(10, 0))).mean(axis=0)

  with_planning, without = steps_per_episode(50), steps_per_episode(0)
  # n = 50: near the epsilon-greedy level (15.9 steps) from episode 3 on.
  assert with_planning[4:].mean() < 20.0
  assert with_planning[2:].max() < 25.0
  # n = 0 learns one step per episode at first: episodes 2-3 are far longer.
  assert without[1:3].mean() > 5 * with_planning[1:3].mean()
  assert without[1:3].mean() > 150.0
  # Both start with the same random walk (Q = 0, ties at random, same keys).
  assert with_planning[0] == without[0] > 100


def test_dyna_q_plus_beats_dyna_q_on_the_blocking_maze():
  env = envs.make("grid/blocking_maze")   # unwrapped to its GridMaze by make_dyna
  rewards = {}
  for kappa in (0.0, 1e-3):
    dyna = make_dyna(env, DynaConfig(planning_steps=10, alpha=1.0, kappa=kappa))
    run = jax.jit(jax.vmap(lambda k: dyna.run_steps(dyna.init(k), k, 3000)[1]))  # noqa: B023
    rewards[kappa] = np.asarray(run(_runs(10, 0)))
  total = {k: r.sum(axis=1).mean() for k, r in rewards.items()}
  after_switch = {k: r[:, 1000:].sum(axis=1).mean() for k, r in rewards.items()}
  # Both find the right-hand path before the switch (about 60 goals per 1000 steps at best).
  assert rewards[0.0][:, :1000].sum(axis=1).mean() > 20
  assert total[1e-3] > total[0.0] + 20
  assert after_switch[1e-3] > 1.5 * after_switch[0.0]


def test_bad_input():
  with pytest.raises(ValueError, match="planning_steps"):
    DynaConfig(planning_steps=-1)
  with pytest.raises(ValueError, match="alpha"):
    DynaConfig(alpha=0.0)
  with pytest.raises(ValueError, match="sampling"):
    DynaConfig(sampling="uniform")
  with pytest.raises(ValueError, match="grid maze"):
    make_dyna(envs.make("fast/PointMassDiscrete"))
  assert make_dyna(grid.DYNA_MAZE).init(jax.random.PRNGKey(0)).q.shape == (54, 4)
