"""Tabular Dyna-Q and Dyna-Q+ (Sutton 1990; Sutton & Barto 2nd ed., section 8.2 and 8.3).

Per real time step (the book's "Tabular Dyna-Q" box):

(a) ``s`` the current cell; (b) ``a`` epsilon-greedy in ``Q[s]``, ties broken at random;
(c) one real step gives ``r, s'``; (d) one Q-learning update of ``Q[s, a]``;
(e) the deterministic table model records ``Model(s, a) = (r, s')``; (f) ``n`` planning updates,
each a Q-learning update with the model's ``(r, s')`` on a random previously observed state and a
random action previously taken in it (``DynaConfig.sampling = "pair"``: a uniform previously
taken pair instead).

Dyna-Q+ (``kappa > 0``) plans with the reward ``r + kappa * sqrt(tau)``, where ``tau`` is the
number of real time steps since ``(s, a)`` was last taken, and (the book's footnote) also plans
with actions never taken from a visited state, modelled as leading back to the same state with
reward 0. The bonus is for planning only; the real step and its update use the real reward.

Everything is pure JAX: :attr:`Dyna.run_episode` is one ``lax.while_loop`` (until the goal), the
planning loop inside is a ``lax.fori_loop``, and many runs are one program under ``jax.vmap``::

    dyna = make_dyna(GridMaze(DYNA_MAZE), DynaConfig(planning_steps=50))
    run = jax.jit(jax.vmap(lambda k: dyna.run_episodes(dyna.init(k), k, 50)[1]))
    steps = run(jax.random.split(key, 30))            # [30 runs, 50 episodes]

Tables are ``[S, A]`` with ``S`` the maze's cells and ``A = 4`` actions. The agent drives a
:class:`~wmjax.envs.grid.GridMaze` directly (the registry's episode wrapper resets the maze's
clock, which a continuing agent on a changing maze must keep); a registered ``grid/...`` env is
unwrapped to its maze.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.envs.base import State
from wmjax.envs.grid import GridMaze, Maze, MazeSpec

__all__ = ["Dyna", "DynaConfig", "DynaHyper", "DynaState", "make_dyna"]


@dataclasses.dataclass(frozen=True)
class DynaConfig:
  """Dyna-Q settings; the defaults are the book's Example 8.1 (with ``n = 5``)."""

  planning_steps: int = 5        # n: planning updates per real step (0: plain Q-learning)
  alpha: float = 0.1             # step size
  epsilon: float = 0.1           # exploration rate of the epsilon-greedy behaviour
  gamma: float = 0.95            # discount
  kappa: float = 0.0             # Dyna-Q+ exploration bonus weight; 0 is plain Dyna-Q
  plan_untried: bool | None = None   # plan with never-taken actions too; None: when kappa > 0
  max_episode_steps: int = 1_000_000  # run_episode stops here if the goal is never reached
  # Dyna-Q's planning draws: "state" (the book's box) a random previously observed state, then a
  # random action previously taken in it; "pair" a uniform previously taken (state, action).
  sampling: str = "state"
  eval_episodes: int = 1         # greedy episodes per evaluation (the driver's, `wmjax eval`)

  def __post_init__(self):
    if int(self.planning_steps) != self.planning_steps or self.planning_steps < 0:
      raise ValueError(f"planning_steps must be an integer >= 0, got {self.planning_steps!r}")
    if not 0.0 <= self.epsilon <= 1.0 or not 0.0 < self.alpha <= 1.0:
      raise ValueError(f"need 0 <= epsilon <= 1 and 0 < alpha <= 1, got epsilon={self.epsilon}, "
                       f"alpha={self.alpha}")
    if self.sampling not in ("state", "pair"):
      raise ValueError(f"sampling must be 'state' or 'pair', got {self.sampling!r}")
    if self.kappa < 0:
      raise ValueError(f"kappa must be >= 0, got {self.kappa}")


class DynaHyper(NamedTuple):
  """The agent's numeric settings as a pytree, so that runs with different values are one vmapped
  program (``init(key, hyper)``); ``None`` fields are taken from the :class:`DynaConfig`."""

  alpha: float | None = None
  epsilon: float | None = None
  gamma: float | None = None
  kappa: float | None = None    # the Dyna-Q+ bonus weight (needs a config with kappa > 0 or
                                # plan_untried to plan with untried actions as the book does)


class DynaState(NamedTuple):
  """The agent's tables and the maze it acts in (one run; vmap for many)."""

  q: jax.Array             # [S, A] float32 action values
  model_next: jax.Array    # [S, A] int32 modelled next cell (initially the cell itself)
  model_reward: jax.Array  # [S, A] float32 modelled reward (initially 0)
  model_done: jax.Array    # [S, A] float32 1 where the modelled transition ends the episode
  last_tried: jax.Array    # [S, A] int32 real time step at which (s, a) was last taken (0: never)
  tried: jax.Array         # [S, A] bool (s, a) taken in the real env at least once
  tried_pairs: jax.Array   # [S * A] int32 flat s * A + a in the order first taken
  num_tried: jax.Array     # () int32 valid entries of tried_pairs
  visited_cells: jax.Array  # [S] int32 cells acted from, in the order first visited
  num_visited: jax.Array   # () int32 valid entries of visited_cells
  env_state: State         # the maze; env_state.info["t"] counts real steps across episodes
  hyper: DynaHyper         # float32 [] each: alpha, epsilon, gamma, kappa of this run


class Dyna(NamedTuple):
  """Pure functions of a tabular Dyna-Q agent; jit them (``num_*`` arguments are static)."""

  init: Callable[..., DynaState]      # (key, hyper=None) -> state
  # One real step with learning and planning -> (state, reward, done); at the goal the maze
  # restarts (clock kept), so the state is always ready for the next step.
  step: Callable[[DynaState, jax.Array], tuple[DynaState, jax.Array, jax.Array]]
  plan: Callable[[DynaState, jax.Array], DynaState]   # the n planning updates alone
  run_episode: Callable[[DynaState, jax.Array], tuple[DynaState, jax.Array]]   # -> steps ()
  run_episodes: Callable[[DynaState, jax.Array, int], tuple[DynaState, jax.Array]]   # [E]
  run_steps: Callable[[DynaState, jax.Array, int], tuple[DynaState, jax.Array]]   # rewards [T]
  greedy_action: Callable[[DynaState, jax.Array, jax.Array], jax.Array]   # ties at random
  # Epsilon-greedy from uniform noise [A + 2] at a cell (the behaviour policy)
  act: Callable[[DynaState, jax.Array, jax.Array], jax.Array]


def _as_grid_maze(env) -> GridMaze:
  if isinstance(env, str | Maze | MazeSpec):
    return GridMaze(env)
  maze = getattr(env, "unwrapped", env)
  if not isinstance(maze, GridMaze):
    raise ValueError(f"tabular Dyna-Q needs a grid maze (a GridMaze, a registered grid/... env, "
                     f"a MazeSpec or a maze string), got {type(env).__name__}")
  return maze


def _argmax_random_ties(noise: jax.Array, values: jax.Array) -> jax.Array:
  """An index of a maximum of ``values [A]``, uniformly among ties given uniform ``noise [A]``."""
  return jnp.argmax(jnp.where(values == values.max(), noise, -1.0))


def make_dyna(env: GridMaze | MazeSpec | Maze | str, config: DynaConfig = DynaConfig()) -> Dyna:
  """Tabular Dyna-Q (``config.kappa == 0``) or Dyna-Q+ on a grid maze.

  Args:
    env: a :class:`GridMaze`, a registered ``grid/...`` env (unwrapped to its maze), or a maze
      (:class:`MazeSpec`, :class:`Maze` or string) to build one from.
    config: the agent's settings (static: ``planning_steps`` is a loop count).
  """
  maze = _as_grid_maze(env)
  num_cells, num_actions = maze.num_cells, maze.num_actions
  plan_untried = config.kappa > 0 if config.plan_untried is None else bool(config.plan_untried)

  def init(key: jax.Array, hyper: DynaHyper | None = None) -> DynaState:
    hyper = DynaHyper() if hyper is None else hyper
    values = DynaHyper(*(
        jnp.asarray(getattr(config, f) if v is None else v, jnp.float32)
        for f, v in zip(DynaHyper._fields, hyper, strict=True)))
    shape = (num_cells, num_actions)
    cells = jnp.arange(num_cells, dtype=jnp.int32)
    return DynaState(
        q=jnp.zeros(shape, jnp.float32),
        model_next=jnp.broadcast_to(cells[:, None], shape),
        model_reward=jnp.zeros(shape, jnp.float32),
        model_done=jnp.zeros(shape, jnp.float32),
        last_tried=jnp.zeros(shape, jnp.int32),
        tried=jnp.zeros(shape, bool),
        tried_pairs=jnp.zeros(num_cells * num_actions, jnp.int32),
        num_tried=jnp.zeros((), jnp.int32),
        visited_cells=jnp.zeros(num_cells, jnp.int32),
        num_visited=jnp.zeros((), jnp.int32),
        env_state=maze.reset(key),
        hyper=values,
    )

  def greedy_action(state: DynaState, key: jax.Array, cell: jax.Array) -> jax.Array:
    return _argmax_random_ties(jax.random.uniform(key, (num_actions,)), state.q[cell])

  def act(state: DynaState, noise: jax.Array, cell: jax.Array) -> jax.Array:
    """Epsilon-greedy from uniform ``noise [A + 2]`` (one random draw per step compiles fast)."""
    explore = noise[0] < state.hyper.epsilon
    random_action = jnp.minimum((noise[1] * num_actions).astype(jnp.int32), num_actions - 1)
    greedy = _argmax_random_ties(noise[2:], state.q[cell])
    return jnp.where(explore, random_action, greedy)

  def q_update(hyper, q, cell, action, reward, done, next_cell):
    target = reward + hyper.gamma * (1.0 - done) * q[next_cell].max()
    return q.at[cell, action].add(hyper.alpha * (target - q[cell, action]))

  def sample_pair(state: DynaState, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The (cell, action) of one planning update, from uniform ``noise [1 + A]``."""
    def pick(u, count):
      return jnp.minimum((u * count).astype(jnp.int32), jnp.maximum(count - 1, 0))

    if plan_untried:
      # Any action of a visited cell: uniform over cells, then over all A actions.
      cell = state.visited_cells[pick(noise[0], state.num_visited)]
      return cell, pick(noise[1], num_actions)
    if config.sampling == "pair":
      return jnp.divmod(state.tried_pairs[pick(noise[0], state.num_tried)], num_actions)
    # The book's box: a random previously observed state, a random action previously taken in it.
    cell = state.visited_cells[pick(noise[0], state.num_visited)]
    return cell, _argmax_random_ties(noise[1:], state.tried[cell])

  def plan(state: DynaState, key: jax.Array) -> DynaState:
    if config.planning_steps == 0:
      return state
    noise = jax.random.uniform(key, (config.planning_steps, 1 + num_actions))
    return _plan(state, noise)

  def _plan(state: DynaState, noise: jax.Array) -> DynaState:
    """``n`` planning updates from uniform ``noise [n, 1 + A]``."""
    now = state.env_state.info["t"]

    def body(i, q):
      cell, action = sample_pair(state, noise[i])
      reward = state.model_reward[cell, action]
      # The Dyna-Q+ bonus; with kappa 0 (Dyna-Q) it adds exactly 0.
      tau = (now - state.last_tried[cell, action]).astype(jnp.float32)
      reward = reward + state.hyper.kappa * jnp.sqrt(tau)
      return q_update(state.hyper, q, cell, action, reward, state.model_done[cell, action],
                      state.model_next[cell, action])

    return state._replace(q=jax.lax.fori_loop(0, config.planning_steps, body, state.q))

  def step(state: DynaState, key: jax.Array) -> tuple[DynaState, jax.Array, jax.Array]:
    n = config.planning_steps
    # One random draw for the whole step (each threefry call adds compile time).
    noise = jax.random.uniform(key, (num_actions + 2 + (1 + num_actions) * n,))
    env_state = state.env_state
    cell = env_state.info["cell"]
    action = act(state, noise[:num_actions + 2], cell)
    next_env_state = maze.step(env_state, action)
    next_cell, reward, done = (next_env_state.info["cell"], next_env_state.reward,
                               next_env_state.done)
    pair = cell * num_actions + action
    new_pair = ~state.tried[cell, action]
    new_cell = ~state.tried[cell].any()
    state = state._replace(
        q=q_update(state.hyper, state.q, cell, action, reward, done, next_cell),
        model_next=state.model_next.at[cell, action].set(next_cell),
        model_reward=state.model_reward.at[cell, action].set(reward),
        model_done=state.model_done.at[cell, action].set(done),
        last_tried=state.last_tried.at[cell, action].set(next_env_state.info["t"]),
        tried=state.tried.at[cell, action].set(True),
        tried_pairs=state.tried_pairs.at[state.num_tried].set(
            jnp.where(new_pair, pair, state.tried_pairs[state.num_tried]), mode="drop"),
        num_tried=state.num_tried + new_pair,
        visited_cells=state.visited_cells.at[state.num_visited].set(
            jnp.where(new_cell, cell, state.visited_cells[state.num_visited]), mode="drop"),
        num_visited=state.num_visited + new_cell,
        env_state=next_env_state,
    )
    if n > 0:
      state = _plan(state, noise[num_actions + 2:].reshape(n, 1 + num_actions))
    restarted = maze.restart(next_env_state)
    env_state = jax.tree.map(lambda a, b: jnp.where(done > 0, a, b), restarted, next_env_state)
    return state._replace(env_state=env_state), reward, done

  def run_episode(state: DynaState, key: jax.Array) -> tuple[DynaState, jax.Array]:
    """From the current cell (the start, after init or a finished episode) to the goal."""

    def cond(carry):
      _, _, steps, done = carry
      return (done == 0) & (steps < config.max_episode_steps)

    def body(carry):
      state, key, steps, _ = carry
      key, key_step = jax.random.split(key)
      state, _, done = step(state, key_step)
      return state, key, steps + 1, done

    init_carry = (state, key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
    state, _, steps, _ = jax.lax.while_loop(cond, body, init_carry)
    return state, steps

  def run_episodes(state: DynaState, key: jax.Array, num_episodes: int):
    """``num_episodes`` episodes in a row -> (state, steps per episode ``[num_episodes]``)."""
    return jax.lax.scan(run_episode, state, jax.random.split(key, num_episodes))

  def run_steps(state: DynaState, key: jax.Array, num_steps: int):
    """``num_steps`` real time steps, restarting at the goal -> (state, rewards ``[T]``)."""

    def body(state, key):
      state, reward, _ = step(state, key)
      return state, reward

    return jax.lax.scan(body, state, jax.random.split(key, num_steps))

  return Dyna(init=init, step=step, plan=plan, run_episode=run_episode,
              run_episodes=run_episodes, run_steps=run_steps, greedy_action=greedy_action,
              act=act)
