"""Matches between policies on a :class:`~wmjax.envs.pgx.Game`: reference opponents (random,
one-ply greedy, one-ply safe) and a jitted, vmapped match that reports wins, draws and losses.

A policy is ``policy(key, games: GameState [B]) -> action [B]`` over a batch of games.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.envs.pgx import Game, GameState
from wmjax.rl.rollout import Episodes
from wmjax.types import Array, Key

__all__ = ["Policy", "MatchResult", "random_policy", "greedy_policy", "safe_policy", "one_ply",
           "OnePly", "opponent_policy", "play_match", "play_episodes", "OPPONENTS"]

Policy = Callable[[Key, GameState], Array]
OPPONENTS = ("random", "greedy", "safe")


class MatchResult(NamedTuple):
  outcome: Array        # float32 [G]: +1 win, 0 draw, -1 loss, for the agent
  agent_first: Array    # bool [G]: the agent made the first move
  length: Array         # int32 [G]: moves played


def _sample_masked(key: Key, mask: Array) -> Array:
  """One uniform index per row among ``mask [B, A]`` True entries (any if none is True)."""
  mask = jnp.where(jnp.any(mask, -1, keepdims=True), mask, True)
  return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf), axis=-1).astype(jnp.int32)


def random_policy(game: Game) -> Policy:
  """Uniform over the legal moves."""
  del game

  def policy(key, games):
    return _sample_masked(key, games.legal)
  return policy


class OnePly(NamedTuple):
  """One position's immediate tactics, for the side to move."""
  wins: Array       # bool [A]: legal moves that win now
  threats: Array    # bool [A]: cells where the opponent wins next move after every other legal
                    #   move (the cells to block)
  opp_wins: Array   # bool [A, A]: after our move a, the opponent's reply b wins for them


def one_ply(game: Game, state: GameState, key: Key) -> OnePly:
  """Immediate wins and threats of one (unbatched) position, by stepping every move and every
  reply. A threatened cell ``b`` is one the opponent wins at after each legal ``a != b``."""
  A = game.num_actions
  actions = jnp.arange(A, dtype=jnp.int32)
  after = jax.vmap(lambda a: game.step(state, a, key))(actions)                 # [A]
  wins = state.legal & after.terminated & (after.reward > 0)

  def replies(s):
    nxt = jax.vmap(lambda b: game.step(s, b, key))(actions)
    return s.legal & nxt.terminated & (nxt.reward > 0) & ~s.terminated          # [A]
  opp_wins = jax.vmap(replies)(after)                                           # [A, A]
  others = state.legal[:, None] & ~jnp.eye(A, dtype=bool)                       # [a, b]: a != b
  threats = state.legal & jnp.all(opp_wins | ~others, axis=0)                   # [b]
  return OnePly(wins, threats, opp_wins)


def _batched(one: Callable[[Key, GameState], Array]) -> Policy:
  def policy(key, games):
    keys = jax.random.split(key, games.legal.shape[0])
    return jax.vmap(one)(keys, games)
  return policy


def _two_player(game: Game, name: str) -> None:
  if not game.two_player:
    raise ValueError(f"the {name} opponent is for two-player games; {game.name} has one player")


def greedy_policy(game: Game) -> Policy:
  """One-ply greedy (two-player games), as the MuZero issue defines it: play a winning move if
  there is one; else block an immediate loss (a cell where the opponent would win next move
  whatever else is played: ``b`` wins for them after every other legal move ``a != b``);
  else a uniformly random legal move. Ties are broken uniformly at random.

  The random fallback may play beneath the opponent's winning cell in connect four or leave a
  win open; :func:`safe_policy` never does.
  """
  _two_player(game, "greedy")

  def one(key, state):
    k_step, k_pick = jax.random.split(key)
    wins, threats, _ = one_ply(game, state, k_step)
    choice = jnp.where(jnp.any(wins), wins, jnp.where(jnp.any(threats), threats, state.legal))
    return _sample_masked(k_pick, choice[None])[0]
  return _batched(one)


def safe_policy(game: Game) -> Policy:
  """One-ply safe (two-player games), stronger than :func:`greedy_policy`: play a winning move
  if there is one; otherwise a move after which the opponent has no winning reply (this blocks
  an immediate loss, and in connect four also never plays beneath the opponent's winning
  cell); otherwise any legal move. Ties are broken uniformly at random.
  """
  _two_player(game, "safe")

  def one(key, state):
    k_step, k_pick = jax.random.split(key)
    wins, _, opp_wins = one_ply(game, state, k_step)
    safe = state.legal & ~jnp.any(opp_wins, axis=1)
    choice = jnp.where(jnp.any(wins), wins, jnp.where(jnp.any(safe), safe, state.legal))
    return _sample_masked(k_pick, choice[None])[0]
  return _batched(one)


def opponent_policy(game: Game, name: str) -> Policy:
  """The reference opponent called ``name`` (one of :data:`OPPONENTS`)."""
  policies = {"random": random_policy, "greedy": greedy_policy, "safe": safe_policy}
  if name not in policies:
    raise ValueError(f"unknown opponent {name!r}; accepted: {', '.join(OPPONENTS)}")
  return policies[name](game)


def play_match(game: Game, agent: Policy, opponent: Policy, key: Key, num_games: int
               ) -> MatchResult:
  """``num_games`` games of ``agent`` against ``opponent``; the agent moves first in the even
  games. Jittable (``num_games`` static); runs ``game.max_steps`` plies."""
  if not game.two_player:
    raise ValueError(f"{game.name} is a one-player task; use play_episodes")
  k_init, k_play = jax.random.split(key)
  games = jax.vmap(game.init)(jax.random.split(k_init, num_games))
  agent_first = jnp.arange(num_games) % 2 == 0
  # pgx picks the first player at random; the agent is whoever moves first in its games.
  agent_player = jnp.where(agent_first, games.player, 1 - games.player)

  def body(carry, key):
    games, outcome = carry
    k_agent, k_opp, k_step = jax.random.split(key, 3)
    a = agent(k_agent, games)
    o = opponent(k_opp, games)
    agent_moves = games.player == agent_player
    action = jnp.where(agent_moves, a, o)
    nxt = jax.vmap(game.step)(games, action, jax.random.split(k_step, num_games))
    outcome = outcome + jnp.where(agent_moves, nxt.reward, -nxt.reward)
    return (nxt, outcome), None

  (games, outcome), _ = jax.lax.scan(body, (games, jnp.zeros((num_games,))),
                                     jax.random.split(k_play, game.max_steps))
  return MatchResult(jnp.sign(outcome), agent_first, games.steps)


def play_episodes(game: Game, agent: Policy, key: Key, num_episodes: int) -> Episodes:
  """Returns and lengths (moves to the game's end, at most its move limit) ``[E]`` of
  ``num_episodes`` one-player episodes."""
  k_init, k_play = jax.random.split(key)
  games = jax.vmap(game.init)(jax.random.split(k_init, num_episodes))

  def body(carry, key):
    games, total = carry
    k_agent, k_step = jax.random.split(key)
    nxt = jax.vmap(game.step)(games, agent(k_agent, games),
                              jax.random.split(k_step, num_episodes))
    return (nxt, total + nxt.reward), None

  (games, total), _ = jax.lax.scan(body, (games, jnp.zeros((num_episodes,))),
                                   jax.random.split(k_play, game.max_steps))
  return Episodes(total, games.steps.astype(jnp.float32))   # steps stop counting at the end
