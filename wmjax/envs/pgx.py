"""Games for search-based agents (MuZero): pgx board games and single-player discrete tasks,
behind one small functional interface.

``make_game("pgx/connect_four")`` wraps a pgx environment (board games, MinAtar through
``pgx-minatar``, 2048); ``make_game("fast/PointMassDiscrete")`` wraps any discrete-action env of
the registry as a one-player game. Every game gives :class:`GameState` with

- ``observation``: from the view of the player to move (pgx's convention), float32;
- ``legal``: bool ``[A]`` legal-action mask (all True for registry envs);
- ``reward``: the reward of the step that led here, **to the player who moved** (so in a
  two-player zero-sum game, ``+1`` on a winning move);
- ``terminated`` / ``truncated``: a true end of the game / a time limit (kept apart, as gymnax);
- ``player``: int32, the player to move now (always 0 in one-player games).

Two-player games are zero-sum by construction in search: a value is always from the view of the
player to move, and one ply flips the sign (mctx discount ``-1``), as pgx's AlphaZero example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp

from wmjax.types import Array, Key, PyTree

__all__ = ["Game", "GameState", "make_game", "game_names", "TWO_PLAYER_ZERO_SUM"]

# pgx's perfect-information two-player zero-sum games (MuZero's board-game setting).
TWO_PLAYER_ZERO_SUM = ("tic_tac_toe", "connect_four", "othello", "animal_shogi", "go_9x9",
                       "go_19x19", "hex", "gardner_chess", "chess", "shogi")
# pgx games MuZero cannot play as the issue defines it, and why.
_REFUSED = {
    "kuhn_poker": "an imperfect-information game (MuZero's search assumes the board is seen)",
    "leduc_holdem": "an imperfect-information game (MuZero's search assumes the board is seen)",
    "sparrow_mahjong": "a game for 3-4 players that is not two-player zero-sum",
    "backgammon": "a two-player game with dice (chance nodes), which MuZero's deterministic "
                  "model and search do not represent",
}
_SINGLE_PLAYER = ("minatar-asterix", "minatar-breakout", "minatar-freeway", "minatar-seaquest",
                  "minatar-space_invaders", "2048")


@flax.struct.dataclass
class GameState:
  inner: PyTree          # the wrapped environment's own state
  observation: Array     # float32 [*obs_shape]
  legal: Array           # bool [A]
  reward: Array          # float32 []: to the player who made the last move
  terminated: Array      # bool []
  truncated: Array       # bool []
  player: Array          # int32 []: to move
  steps: Array           # int32 []: moves made in this episode


@dataclasses.dataclass(frozen=True)
class Game:
  """One game: ``init(key) -> GameState``, ``step(state, action, key) -> GameState`` (one game;
  vmap for a batch). Stepping a finished game returns it unchanged with zero reward."""

  name: str
  num_players: int                 # 1 or 2
  num_actions: int
  obs_shape: tuple[int, ...]
  max_steps: int                   # moves per episode before truncation
  init: Callable[[Key], GameState]
  step: Callable[[GameState, Array, Key], GameState]
  # Whether every observation is exactly representable as uint8 (pgx's bool planes), so
  # replay may store it as uint8 losslessly. False for float planes: chess, gardner_chess and
  # animal_shogi carry fractional move counters, which uint8 would round away.
  uint8_obs: bool = False

  @property
  def two_player(self) -> bool:
    return self.num_players == 2

  @property
  def board(self) -> bool:
    """Whether the observation is a board of planes ``[H, W, C]``."""
    return len(self.obs_shape) == 3


def game_names() -> list[str]:
  return ([f"pgx/{n}" for n in TWO_PLAYER_ZERO_SUM + _SINGLE_PLAYER]
          + ["fast/PointMassDiscrete"])


def make_game(name: str, max_steps: int | None = None) -> Game:
  """A game by name: ``pgx/<pgx env id>`` or a discrete-action registry env (``suite/name``).

  ``max_steps`` truncates episodes (default: the cell count for tic-tac-toe and connect four,
  which no game exceeds; four times the cell count for other boards; 1000 moves for MinAtar; the
  registry's episode length for registry envs).
  """
  if name.startswith("pgx/"):
    return _pgx_game(name, max_steps)
  from wmjax.envs import registry

  env = registry.make(name)
  if not env.spec.discrete:
    raise ValueError(
        f"{name} has continuous actions ({env.spec.describe().strip()}); MuZero searches over "
        "discrete actions. Use a pgx game (e.g. pgx/connect_four, pgx/minatar-breakout) or a "
        "discrete registry env (fast/PointMassDiscrete); for continuous control use "
        "`wmjax train pets` or `wmjax train dreamer`.")
  return _registry_game(name, env, max_steps)


def _pgx_game(name: str, max_steps: int | None) -> Game:
  import pgx

  env_id = name.removeprefix("pgx/")
  if env_id in _REFUSED:
    raise ValueError(f"{name} is {_REFUSED[env_id]}; `wmjax train muzero` plays two-player "
                     f"zero-sum perfect-information games ({', '.join(TWO_PLAYER_ZERO_SUM)}) "
                     f"and single-player tasks ({', '.join(_SINGLE_PLAYER)}).")
  if env_id not in pgx.available_envs():
    import difflib
    close = difflib.get_close_matches(env_id, pgx.available_envs(), n=3)
    hint = f" Did you mean: {', '.join('pgx/' + c for c in close)}?" if close else ""
    raise ValueError(f"unknown pgx game {name!r}.{hint} Known: "
                     f"{', '.join('pgx/' + n for n in pgx.available_envs())}")
  env = pgx.make(env_id)
  if env.num_players not in (1, 2):
    raise ValueError(f"{name} has {env.num_players} players; MuZero here takes one-player "
                     "tasks and two-player zero-sum games")
  obs_shape = tuple(int(d) for d in env.observation_shape)
  # Decided from the dtype pgx gives its observations (no tracing cost: shapes only): bool
  # and uint8 planes fit uint8; float planes may be fractional somewhere in a game.
  raw_dtype = jax.eval_shape(env.init, jax.random.PRNGKey(0)).observation.dtype
  uint8_obs = raw_dtype in (jnp.bool_, jnp.uint8)
  if max_steps is None:
    cells = obs_shape[0] * obs_shape[1] if len(obs_shape) >= 2 else 100
    # tic-tac-toe and connect four cannot outlast their cell count; other boards get 4x.
    max_steps = (1000 if env.num_players == 1
                 else cells if env_id in ("tic_tac_toe", "connect_four") else 4 * cells)

  def wrap(inner, reward, steps):
    truncated = inner.truncated | ((steps >= max_steps) & ~inner.terminated)
    return GameState(inner=inner, observation=inner.observation.astype(jnp.float32),
                     legal=inner.legal_action_mask, reward=reward.astype(jnp.float32),
                     terminated=inner.terminated, truncated=truncated,
                     player=inner.current_player.astype(jnp.int32), steps=steps)

  def init(key):
    inner = env.init(key)
    return wrap(inner, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

  def step(state, action, key):
    done = state.terminated | state.truncated
    mover = state.inner.current_player
    inner = env.step(state.inner, action, key)
    reward = jnp.where(done, 0.0, inner.rewards[mover])
    new = wrap(inner, reward, state.steps + jnp.where(done, 0, 1))
    # Past the end, the game stays as it ended (pgx would lift the truncation flag we add),
    # with zero reward.
    new = jax.tree.map(lambda old, n: jnp.where(done, old, n), state, new)
    return new.replace(reward=jnp.where(done, 0.0, new.reward))

  return Game(name, int(env.num_players), int(env.num_actions), obs_shape, int(max_steps),
              init, step, uint8_obs=uint8_obs)


def _registry_game(name: str, env, max_steps: int | None) -> Game:
  num_actions = int(env.spec.num_actions)
  limit = env.steps_per_episode if max_steps is None else int(max_steps)
  legal = jnp.ones((num_actions,), bool)

  def wrap(inner, steps):
    terminated = inner.info["terminated"] > 0
    truncated = ((inner.info["truncated"] > 0) | (steps >= limit)) & ~terminated
    return GameState(inner=inner, observation=inner.obs.astype(jnp.float32), legal=legal,
                     reward=inner.reward.astype(jnp.float32), terminated=terminated,
                     truncated=truncated, player=jnp.zeros((), jnp.int32), steps=steps)

  def init(key):
    return wrap(env.reset(key), jnp.zeros((), jnp.int32))

  def step(state, action, key):
    del key
    done = state.terminated | state.truncated
    new = wrap(env.step(state.inner, action.astype(jnp.int32)), state.steps + 1)
    new = jax.tree.map(lambda old, n: jnp.where(done, old, n), state, new)
    return new.replace(reward=jnp.where(done, 0.0, new.reward))

  return Game(name, 1, num_actions, tuple(env.spec.obs_shape), int(limit), init, step)
