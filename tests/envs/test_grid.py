"""Grid mazes: parsing, the book's layouts, moves, goal, layout switch, registry."""

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs
from wmjax.envs import grid

UP, DOWN, RIGHT, LEFT = range(4)


def _bfs_steps(maze: grid.Maze) -> int:
  """Shortest start-to-goal path on the walls array, by a plain BFS (the test's own reference)."""
  rows, cols = maze.shape
  dist = {maze.start: 0}
  queue = deque([maze.start])
  while queue:
    r, c = queue.popleft()
    if (r, c) == maze.goal:
      return dist[(r, c)]
    for dr, dc in ((-1, 0), (1, 0), (0, 1), (0, -1)):
      nxt = (r + dr, c + dc)
      if 0 <= nxt[0] < rows and 0 <= nxt[1] < cols and not maze.walls[nxt] and nxt not in dist:
        dist[nxt] = dist[(r, c)] + 1
        queue.append(nxt)
  raise AssertionError("goal unreachable")


def _at(env: grid.GridMaze, state, row: int, col: int, t: int = 0):
  """``state`` moved to ``(row, col)`` at step ``t``."""
  info = {**state.info, "cell": jnp.int32(env.cell_index(row, col)), "t": jnp.int32(t)}
  return state.replace(info=info)


@pytest.mark.parametrize("text, match", [
    ("...\n..G", "no start cell"),
    ("S..\n...", "no goal cell"),
    ("S.S\n..G", "2 start cells"),
    ("SG.\n..G", "2 goal cells"),
    ("S..\n..\n..G", "different lengths"),
    ("S.x\n..G", "unknown maze character 'x' at row 0, column 2; allowed: 'S' start"),
    ("\n  \n", "empty"),
])
def test_parse_errors_name_the_problem(text, match):
  with pytest.raises(ValueError, match=match):
    grid.parse_maze(text)


def test_parse_maze():
  maze = grid.parse_maze("""
      S.#
      ..G
  """)
  assert maze.shape == (2, 3) and maze.start == (0, 0) and maze.goal == (1, 2)
  np.testing.assert_array_equal(maze.walls, [[False, False, True], [False, False, False]])


def test_book_layouts():
  dyna = grid.parse_maze(grid.DYNA_MAZE.layout)
  assert dyna.shape == (6, 9) and dyna.start == (2, 0) and dyna.goal == (0, 8)
  assert {tuple(w) for w in np.argwhere(dyna.walls)} == {
      (1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}
  assert _bfs_steps(dyna) == 14
  assert grid.distances_to_goal(dyna)[dyna.start] == 14
  # Blocking maze: the short path (right gap) closes after 1000 steps, a longer one opens.
  # Shortcut maze: the reverse, after 3000 steps, the old path staying open.
  for spec, switch, before, after in ((grid.BLOCKING_MAZE, 1000, 10, 16),
                                      (grid.SHORTCUT_MAZE, 3000, 16, 10)):
    old, new = grid.parse_maze(spec.layout), grid.parse_maze(spec.switched_layout)
    assert spec.switch_step == switch
    assert old.shape == new.shape == (6, 9) and old.start == new.start == (5, 3)
    assert old.goal == new.goal == (0, 8)
    assert (_bfs_steps(old), _bfs_steps(new)) == (before, after)
  # An epsilon-greedy walk around the optimal policy: the shortest path at epsilon 0, longer above.
  assert grid.expected_steps(dyna, 0.0) == pytest.approx(14.0)
  assert 14.0 < grid.expected_steps(dyna, 0.1) < 17.0


def test_moves_walls_edges_and_goal():
  env = grid.GridMaze(grid.DYNA_MAZE)
  assert env.num_actions == 4 and env.observation_size == 54
  step = jax.jit(env.step)
  state = env.reset(jax.random.PRNGKey(0))
  assert int(state.info["cell"]) == env.cell_index(2, 0)
  np.testing.assert_array_equal(state.obs, jax.nn.one_hot(18, 54))
  assert state.obs.dtype == jnp.float32

  def cell_after(row, col, action):
    s = step(_at(env, state, row, col), jnp.int32(action))
    assert float(s.reward) == 0.0 and float(s.done) == 0.0
    return divmod(int(s.info["cell"]), 9)

  assert cell_after(2, 0, LEFT) == (2, 0)     # off the grid
  assert cell_after(0, 3, UP) == (0, 3)       # off the top
  assert cell_after(5, 4, DOWN) == (5, 4)     # off the bottom
  assert cell_after(2, 1, RIGHT) == (2, 1)    # into the wall at (2, 2)
  assert cell_after(3, 5, DOWN) == (3, 5)     # into the wall at (4, 5)
  assert cell_after(2, 0, RIGHT) == (2, 1)
  assert cell_after(2, 0, UP) == (1, 0) and cell_after(2, 0, DOWN) == (3, 0)
  assert cell_after(2, 1, LEFT) == (2, 0)
  # Reaching the goal: reward 1, done; the goal is absorbing with reward 0.
  s = step(_at(env, state, 1, 8), jnp.int32(UP))
  assert divmod(int(s.info["cell"]), 9) == (0, 8)
  assert float(s.reward) == 1.0 and float(s.done) == 1.0 and int(s.info["t"]) == 1
  s = step(s, jnp.int32(LEFT))
  assert int(s.info["cell"]) == env.goal_cell and float(s.reward) == 0.0 and float(s.done) == 1.0
  # restart keeps the clock, reset does not.
  again = env.restart(s)
  assert int(again.info["cell"]) == env.start_cell and int(again.info["t"]) == 2
  assert float(again.done) == 0.0


def test_layout_switch_at_the_configured_step():
  env = grid.GridMaze(grid.BLOCKING_MAZE)
  step = jax.jit(env.step)
  state = env.reset(jax.random.PRNGKey(0))
  # (4, 8) -> up -> (3, 8): the gap before the switch, a wall after it.
  assert divmod(int(step(_at(env, state, 4, 8, t=999), jnp.int32(UP)).info["cell"]), 9) == (3, 8)
  assert divmod(int(step(_at(env, state, 4, 8, t=1000), jnp.int32(UP)).info["cell"]), 9) == (4, 8)
  # (4, 0) -> up: a wall before, the gap after.
  assert divmod(int(step(_at(env, state, 4, 0, t=999), jnp.int32(UP)).info["cell"]), 9) == (4, 0)
  assert divmod(int(step(_at(env, state, 4, 0, t=1000), jnp.int32(UP)).info["cell"]), 9) == (3, 0)
  # Stepping counts: 1000 steps in place, then the layout has changed.
  state = _at(env, state, 4, 8, t=0)
  state = jax.lax.fori_loop(0, 1000, lambda i, s: env.step(s, jnp.int32(RIGHT)), state)
  assert int(state.info["t"]) == 1000
  assert int(step(state, jnp.int32(UP)).info["cell"]) == env.cell_index(4, 8)
  assert env.render_text(t=1000).splitlines()[3] == ".########"
  with pytest.raises(ValueError, match="keep the shape, start and goal"):
    grid.GridMaze(grid.DYNA_MAZE.layout, grid.BLOCKING_MAZE.layout, 10)
  with pytest.raises(ValueError, match="both switched_layout and switch_step"):
    grid.GridMaze(grid.DYNA_MAZE.layout, grid.DYNA_MAZE.layout)


def test_registered_grid_envs():
  names = envs.names()
  assert {"grid/dyna_maze", "grid/blocking_maze", "grid/shortcut_maze"} <= set(names)
  env = envs.make("grid/dyna_maze")
  assert env.spec.obs_shape == (54,) and env.spec.discrete and env.spec.num_actions == 4
  assert env.episode_length >= 10_000
  assert envs.make("grid/blocking_maze").unwrapped.switch_step == 1000
  assert envs.make("grid/shortcut_maze").unwrapped.switch_step == 3000
  # The shortest path, vmapped over two keys: reward 1 and terminated on the 14th step.
  path = [DOWN, RIGHT, DOWN, RIGHT, RIGHT, RIGHT, UP, RIGHT, RIGHT, RIGHT, RIGHT, UP, UP, UP]
  actions = jnp.array(path, jnp.int32)

  def rollout(key):
    def body(s, a):
      s = env.step(s, a)
      return s, (s.reward, s.done, s.info["terminated"], s.info["truncated"])
    return jax.lax.scan(body, env.reset(key), actions)

  final, (reward, done, terminated, truncated) = jax.jit(jax.vmap(rollout))(
      jax.random.split(jax.random.PRNGKey(0), 2))
  assert final.obs.shape == (2, 54)
  np.testing.assert_array_equal(reward[:, -1], 1.0)
  assert float(reward.sum()) == 2.0 and float(done[:, :-1].sum()) == 0.0
  np.testing.assert_array_equal(terminated[:, -1], 1.0)
  np.testing.assert_array_equal(truncated, 0.0)
  with pytest.raises(ValueError, match="integer action"):
    env.step(env.reset(jax.random.PRNGKey(0)), jnp.float32(1.0))
  with pytest.raises(ValueError, match="grid/"):
    envs.make("grid/no_such_maze")
