"""Grid mazes of Sutton & Barto (2nd ed., chapter 8) as JAX envs, built from text.

A maze is written as rows of characters, one row per line, all rows the same length:

- ``S`` the start cell (exactly one),
- ``G`` the goal cell (exactly one),
- ``#`` a wall,
- ``.`` a free cell.

Leading and trailing blank lines and the indentation of each line are ignored, so a maze can be
written as an indented triple-quoted string. Row 0 is the top row; cells are numbered
``row * cols + col``.

Four actions: ``0`` up, ``1`` down, ``2`` right, ``3`` left. A move into a wall or off the grid
leaves the agent where it is. Reaching the goal gives reward 1 and ends the episode
(``done = 1``); every other step gives 0 (the book's Example 8.1). The goal is absorbing: a step
from it stays there with reward 0.

A maze may change its layout after a given number of time steps (the blocking and shortcut mazes
of Examples 8.2 and 8.3). The step counter ``state.info["t"]`` counts every step since
:meth:`GridMaze.reset`; steps ``0 .. switch_step - 1`` use the first layout, later steps the
second. A continuing agent (Dyna-Q counts time steps across episodes) returns to the start with
:meth:`GridMaze.restart`, which keeps the counter; :meth:`GridMaze.reset` sets it to zero.
Through ``make("grid/...")`` the episode wrapper's time limit applies as for any env, and the
clock restarts with every ``reset``.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.envs.base import Env, State

__all__ = ["BLOCKING_MAZE", "DYNA_MAZE", "GridMaze", "Maze", "MazeSpec", "SHORTCUT_MAZE",
           "distances_to_goal", "expected_steps", "parse_maze"]

ACTION_NAMES = ("up", "down", "right", "left")
MOVES = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], np.int32)   # [4, (d_row, d_col)]
_ALLOWED = {"S": "start", "G": "goal", "#": "wall", ".": "free"}
_ALLOWED_TEXT = ", ".join(f"{c!r} {what}" for c, what in _ALLOWED.items())


class Maze(NamedTuple):
  """A parsed maze: numpy arrays and plain ints."""

  walls: np.ndarray            # [rows, cols] bool
  start: tuple[int, int]       # (row, col)
  goal: tuple[int, int]        # (row, col)
  shape: tuple[int, int]       # (rows, cols)


class MazeSpec(NamedTuple):
  """A maze as text, optionally replaced by a second layout after ``switch_step`` steps."""

  layout: str
  switched_layout: str | None = None
  switch_step: int | None = None


def parse_maze(text: str) -> Maze:
  """Parses a maze string (see the module docstring); raises ``ValueError`` naming the problem."""
  lines = [line.strip() for line in text.strip("\n").splitlines()]
  while lines and not lines[0]:
    lines.pop(0)
  while lines and not lines[-1]:
    lines.pop()
  if not lines:
    raise ValueError(f"the maze is empty; write rows of {_ALLOWED_TEXT}")
  widths = {len(line) for line in lines}
  if len(widths) > 1:
    lengths = [len(line) for line in lines]
    raise ValueError(f"maze rows have different lengths {lengths}; every row must have the "
                     "same number of cells")
  for r, line in enumerate(lines):
    for c, ch in enumerate(line):
      if ch not in _ALLOWED:
        raise ValueError(f"unknown maze character {ch!r} at row {r}, column {c}; allowed: "
                         f"{_ALLOWED_TEXT}")
  grid = np.array([list(line) for line in lines])
  found = {}
  for ch in "SG":
    where = [tuple(int(i) for i in rc) for rc in np.argwhere(grid == ch)]
    if len(where) != 1:
      what = "no" if not where else f"{len(where)}"
      raise ValueError(f"the maze has {what} {_ALLOWED[ch]} cell{'s' if where else ''} "
                       f"({ch!r}{' at ' + str(where) if where else ''}); it needs exactly one")
    found[ch] = where[0]
  return Maze(walls=grid == "#", start=found["S"], goal=found["G"], shape=grid.shape)


def _transitions(maze: Maze, absorbing_goal: bool = True) -> np.ndarray:
  """``next_cell [cells, 4]``: where each action leads from each cell."""
  rows, cols = maze.shape
  nxt = np.zeros((rows * cols, len(MOVES)), np.int32)
  for r in range(rows):
    for c in range(cols):
      for a, (dr, dc) in enumerate(MOVES):
        r2, c2 = r + dr, c + dc
        blocked = not (0 <= r2 < rows and 0 <= c2 < cols) or maze.walls[r2, c2]
        stay = blocked or (absorbing_goal and (r, c) == maze.goal)
        nxt[r * cols + c, a] = r * cols + c if stay else r2 * cols + c2
  return nxt


def distances_to_goal(maze: Maze) -> np.ndarray:
  """``[rows, cols]`` shortest number of steps from each cell to the goal (BFS); -1 where the
  goal cannot be reached (walls included)."""
  rows, cols = maze.shape
  nxt = _transitions(maze, absorbing_goal=False)
  # Moves are reversible on a grid (a free neighbour can step back), so BFS from the goal.
  dist = np.full(rows * cols, -1, np.int64)
  goal = maze.goal[0] * cols + maze.goal[1]
  dist[goal] = 0
  queue = deque([goal])
  while queue:
    cell = queue.popleft()
    for prev in set(nxt[cell].tolist()):
      if dist[prev] < 0 and not maze.walls.flat[prev]:
        dist[prev] = dist[cell] + 1
        queue.append(prev)
  return dist.reshape(rows, cols)


def expected_steps(maze: Maze, epsilon: float) -> float:
  """Expected steps from start to goal of the epsilon-greedy policy around an optimal one.

  The greedy part picks uniformly among the actions that shorten the distance to the goal; an
  exploratory step (probability ``epsilon``) picks any of the 4 actions uniformly. This is the
  level a converged epsilon-greedy learner settles at (above the shortest path).
  """
  rows, cols = maze.shape
  nxt = _transitions(maze)
  dist = distances_to_goal(maze).reshape(-1)
  goal = maze.goal[0] * cols + maze.goal[1]
  cells = [s for s in range(rows * cols) if dist[s] > 0]
  index = {s: i for i, s in enumerate(cells)}
  # E(s) = 1 + sum_a pi(a|s) E(next(s, a)), with E(goal) = 0.
  a_mat = np.eye(len(cells))
  b_vec = np.ones(len(cells))
  for s in cells:
    best = [a for a in range(4) if dist[nxt[s, a]] == dist[s] - 1]
    for a in range(4):
      prob = epsilon / 4 + (1 - epsilon) * (a in best) / len(best)
      if nxt[s, a] != goal:
        a_mat[index[s], index[nxt[s, a]]] -= prob
  values = np.linalg.solve(a_mat, b_vec)
  return float(values[index[maze.start[0] * cols + maze.start[1]]])


def _as_maze(layout) -> Maze:
  return layout if isinstance(layout, Maze) else parse_maze(layout)


class GridMaze(Env):
  """A grid maze with the brax interface (see the module docstring for the rules).

  ``obs`` is the one-hot of the agent's cell (float32 ``[rows * cols]``); ``state.info["cell"]``
  is the cell index (int32) for tabular agents and ``state.info["t"]`` the step counter.

  Args:
    layout: a maze string, a parsed :class:`Maze`, or a :class:`MazeSpec` (then the other two
      arguments come from it).
    switched_layout: the layout used from step ``switch_step`` on (same shape, start and goal).
    switch_step: steps taken (since ``reset``) before the layout changes.
  """

  num_actions = 4

  def __init__(self, layout: str | Maze | MazeSpec, switched_layout: str | Maze | None = None,
               switch_step: int | None = None):
    if isinstance(layout, MazeSpec):
      if switched_layout is not None or switch_step is not None:
        raise ValueError("give either a MazeSpec or switched_layout/switch_step, not both")
      layout, switched_layout, switch_step = layout
    self.maze = _as_maze(layout)
    self.switched_maze = None if switched_layout is None else _as_maze(switched_layout)
    if (self.switched_maze is None) != (switch_step is None):
      raise ValueError("a changing maze needs both switched_layout and switch_step, got "
                       f"switched_layout={switched_layout!r}, switch_step={switch_step!r}")
    mazes = [self.maze]
    if self.switched_maze is not None:
      m, s = self.maze, self.switched_maze
      if (m.shape, m.start, m.goal) != (s.shape, s.start, s.goal):
        raise ValueError(f"the switched layout must keep the shape, start and goal: got "
                         f"{(s.shape, s.start, s.goal)}, expected {(m.shape, m.start, m.goal)}")
      if int(switch_step) != switch_step or switch_step < 0:
        raise ValueError(f"switch_step must be an integer >= 0, got {switch_step!r}")
      mazes.append(s)
    self.switch_step = None if switch_step is None else int(switch_step)
    self.rows, self.cols = self.maze.shape
    self.num_cells = self.rows * self.cols
    self.start_cell = self.maze.start[0] * self.cols + self.maze.start[1]
    self.goal_cell = self.maze.goal[0] * self.cols + self.maze.goal[1]
    self.transitions = np.stack([_transitions(m) for m in mazes])   # [layouts, cells, 4]

  def reset(self, rng: jax.Array) -> State:
    del rng   # the start is fixed
    return self._at_start(jnp.zeros((), jnp.int32), {})

  def restart(self, state: State) -> State:
    """Back to the start for a new episode, keeping the step counter (and other info)."""
    return self._at_start(state.info["t"], state.info)

  def _at_start(self, t: jax.Array, info: dict) -> State:
    cell = jnp.asarray(self.start_cell, jnp.int32)
    zero = jnp.zeros((), jnp.float32)
    info = {**info, "cell": cell, "t": t}
    return State(pipeline_state=None, obs=self.observe(cell), reward=zero, done=zero,
                 metrics={}, info=info)

  def step(self, state: State, action: jax.Array) -> State:
    cell, t = state.info["cell"], state.info["t"]
    next_cell = self.next_cell(cell, action, t)
    arrived = (next_cell == self.goal_cell) & (cell != self.goal_cell)
    reward = arrived.astype(jnp.float32)
    done = (next_cell == self.goal_cell).astype(jnp.float32)
    info = {**state.info, "cell": next_cell, "t": t + 1}
    return state.replace(obs=self.observe(next_cell), reward=reward, done=done, info=info)

  def next_cell(self, cell: jax.Array, action: jax.Array, t: jax.Array) -> jax.Array:
    """The cell that ``action`` leads to from ``cell`` at step ``t`` (int32 scalars)."""
    table = jnp.asarray(self.transitions)
    layout = 0 if self.switch_step is None else (t >= self.switch_step).astype(jnp.int32)
    return table[layout, cell, action]

  def observe(self, cell: jax.Array) -> jax.Array:
    return jax.nn.one_hot(cell, self.num_cells, dtype=jnp.float32)

  def cell_index(self, row: int, col: int) -> int:
    return row * self.cols + col

  def render_text(self, cell: int | None = None, t: int = 0) -> str:
    """The layout in use at step ``t`` as text, the agent (if ``cell`` given) drawn as ``A``."""
    switched = self.switch_step is not None and t >= self.switch_step
    maze = self.switched_maze if switched else self.maze
    grid = np.where(maze.walls, "#", ".")
    grid[maze.start] = "S"
    grid[maze.goal] = "G"
    if cell is not None:
      grid[divmod(int(cell), self.cols)] = "A"
    return "\n".join("".join(row) for row in grid)

  @property
  def observation_size(self) -> int:
    return self.num_cells

  @property
  def action_size(self) -> int:
    """The number of actions (as ``Spec.action_size`` for discrete envs)."""
    return self.num_actions

  @property
  def backend(self) -> str:
    return "jax"


# Figure 8.2 (Example 8.1): 6x9, start (2, 0), goal (0, 8); shortest path 14 steps.
DYNA_MAZE = MazeSpec("""
    .......#G
    ..#....#.
    S.#....#.
    ..#......
    .....#...
    .........
""")

# Figure 8.4 (Example 8.2): the gap in the wall moves from the right end to the left end after
# 1000 steps, so the learned short path is blocked and a longer one opens.
BLOCKING_MAZE = MazeSpec("""
    ........G
    .........
    .........
    ########.
    .........
    ...S.....
""", """
    ........G
    .........
    .........
    .########
    .........
    ...S.....
""", 1000)

# Figure 8.5 (Example 8.3): after 3000 steps a shortcut opens at the right end of the wall,
# while the old path on the left stays open.
SHORTCUT_MAZE = MazeSpec("""
    ........G
    .........
    .........
    .########
    .........
    ...S.....
""", """
    ........G
    .........
    .........
    .#######.
    .........
    ...S.....
""", 3000)
