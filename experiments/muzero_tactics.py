"""Tactics check of a trained MuZero board-game agent: does it take a win in one, and does it
block the opponent's win in one?

Positions come from random play: in each of ``--games`` random games, the first position
where the side to move can win at once (a *win* position), and the first where it cannot but
the opponent threatens to win next move (a *block* position; the threatened cells as
``wmjax.agents.arena.one_ply`` finds them). On each set it reports how often

- the agent's move with search (``--simulations``, default the run's ``eval_simulations``), and
- the network's prior alone (the argmax of the prediction head's legal policy, no search)

pick a right move (any winning move; any threatened cell), and, on the win positions, the
reward the learned dynamics model predicts for winning and other moves. A one-ply greedy
player scores 100% on both by construction, so a low block rate says why an agent loses to it.

    python experiments/muzero_tactics.py experiments/results/muzero-connect-four-cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents import arena
from wmjax.agents import muzero as muzero_lib
from wmjax.models import muzero as mz
from wmjax.train.common import RunAxis
from wmjax.train.matches import load_muzero_run


def tactical_positions(game, key, games: int):
  """``(win_states, win_moves, win_found, block_states, block_moves, block_found)``: per random
  game the first win / block position (``*_found`` False where the game had none)."""
  def labels(state, key):
    wins, threats, _ = arena.one_ply(game, state, key)
    live = ~(state.terminated | state.truncated)
    win_pos = live & jnp.any(wins)
    block_pos = live & ~jnp.any(wins) & jnp.any(threats) & (jnp.sum(state.legal) > 1)
    return wins, threats, win_pos, block_pos

  def ply(carry, key):
    states = carry
    k_lab, k_act, k_step = jax.random.split(key, 3)
    wins, threats, win_pos, block_pos = jax.vmap(labels)(states, jax.random.split(k_lab, games))
    action = arena.random_policy(game)(k_act, states)
    nxt = jax.vmap(game.step)(states, action, jax.random.split(k_step, games))
    return nxt, (states, wins, threats, win_pos, block_pos)

  k_init, k_play = jax.random.split(key)
  states = jax.vmap(game.init)(jax.random.split(k_init, games))
  _, (hist, wins, threats, win_pos, block_pos) = jax.lax.scan(
      ply, states, jax.random.split(k_play, game.max_steps))           # leaves [T, G, ...]

  def first(mask, moves):
    t = jnp.argmax(mask, axis=0)                                           # [G]
    g = jnp.arange(games)
    pick = jax.tree.map(lambda x: x[t, g], hist)
    return pick, moves[t, g], jnp.any(mask, axis=0)

  return (*first(win_pos, wins), *first(block_pos, threats))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("run_dir", type=pathlib.Path, help="a MuZero run folder (board game)")
  parser.add_argument("--games", type=int, default=1000, help="random games to draw positions from")
  parser.add_argument("--simulations", type=int, default=None)
  parser.add_argument("--run", type=int, default=0,
                      help="which run of the folder's run axis (seed, or sweep point x seed)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", type=pathlib.Path, default=None, help="write the rates here")
  args = parser.parse_args()
  built, state, saved, step = load_muzero_run(args.run_dir)
  game = built.env
  if not game.two_player:
    parser.error(f"{saved['env']} is a one-player task: no tactics to check")
  config = built.config
  if args.simulations is not None:
    config = dataclasses.replace(config, eval_simulations=args.simulations)
  agent = muzero_lib.make_muzero(game, config)
  hypers = RunAxis.from_saved(saved).hypers(built.hyper)
  runs = jax.tree.leaves(state.params)[0].shape[0]
  if not 0 <= args.run < runs:
    parser.error(f"--run {args.run}: the folder holds runs 0..{runs - 1}")
  pick = lambda tree: jax.tree.map(lambda x: x[args.run], tree)
  params, hyper = pick(state.params), pick(hypers)
  key = jax.random.PRNGKey(args.seed)
  k_pos, k_search = jax.random.split(key)
  win_s, win_m, win_f, blk_s, blk_m, blk_f = jax.jit(
      tactical_positions, static_argnums=(0, 2))(game, k_pos, args.games)

  @jax.jit
  def moves(states):
    searched = agent.policy(params, hyper, k_search, states)
    latent = agent.net.represent(params, states.observation.astype(jnp.float32))
    logits, _ = agent.net.predict(params, latent)
    prior = jnp.argmax(jnp.where(states.legal, logits, -jnp.inf), axis=-1)
    return searched, prior

  result = {"run": str(args.run_dir), "run_index": args.run, "env": saved["env"], "step": step,
            "simulations": config.eval_simulations}
  @jax.jit
  def model_rewards(states):
    """The learned model's reward for every move: ``[G, A]``."""
    latent = agent.net.represent(params, states.observation.astype(jnp.float32))
    def one_action(a):
      _, logits = agent.net.dynamics(params, latent, jnp.full(latent.shape[:1], a, jnp.int32))
      return mz.support_to_scalar(logits, config.reward_support)
    return jax.vmap(one_action, out_axes=1)(jnp.arange(game.num_actions))

  rewards = np.asarray(model_rewards(win_s))[np.asarray(win_f)]
  legal, winning = (np.asarray(x)[np.asarray(win_f)] for x in (win_s.legal, win_m))
  top = np.argmax(np.where(legal, rewards, -np.inf), axis=1)
  result["model_reward"] = {
      "winning_moves_mean": float(rewards[winning].mean()),
      "other_legal_moves_mean": float(rewards[legal & ~winning].mean()),
      "top_reward_is_a_win": float(winning[np.arange(len(top)), top].mean())}
  print(f"learned reward on win positions: winning moves {rewards[winning].mean():.3f}, other "
        f"legal moves {rewards[legal & ~winning].mean():.3f}; the highest-reward move wins in "
        f"{result['model_reward']['top_reward_is_a_win']:.1%}")
  for name, states, right, found in (("win", win_s, win_m, win_f), ("block", blk_s, blk_m, blk_f)):
    searched, prior = moves(states)
    found = np.asarray(found)
    hit = lambda a, right=right, found=found: np.asarray(
        jnp.take_along_axis(right, a[:, None], axis=1)[:, 0])[found]
    result[name] = {"positions": int(found.sum()), "search": float(hit(searched).mean()),
                    "prior": float(hit(prior).mean())}
    print(f"{name:5s} in one: {found.sum():5d} positions; right move with search "
          f"{result[name]['search']:6.1%}, by the prior alone {result[name]['prior']:6.1%}")
  if args.json is not None:
    args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
