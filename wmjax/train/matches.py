"""MuZero runs against reference opponents and against each other (``wmjax eval --opponent``,
``wmjax play``, ``experiments/muzero_tactics.py``)."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents import arena
from wmjax.agents import muzero as muzero_lib
from wmjax.train.common import RunAxis

__all__ = ["load_muzero_run", "evaluate_muzero_run", "match_runs"]


def load_muzero_run(run_dir: str | pathlib.Path):
  """A MuZero run at its last checkpoint: ``(built, state, saved, step)``; ``built.env`` is the
  game."""
  from wmjax.train.loop import load_run, read_run_config

  algo = read_run_config(run_dir)["algo"]
  if algo != "muzero":
    raise ValueError(f"{run_dir} is a {algo} run, not muzero")
  _, built, state, saved, step = load_run(run_dir)
  return built, state, saved, step


def _agent(built, simulations: int | None):
  config = built.config
  if simulations is not None:
    config = dataclasses.replace(config, eval_simulations=simulations)
  return muzero_lib.make_muzero(built.env, config)


def evaluate_muzero_run(run_dir, *, games: int = 200, opponent: str = "random",
                        seed: int = 123, simulations: int | None = None):
  """Plays ``games`` games (or episodes) per trained seed against ``opponent`` (random,
  greedy or safe). Returns ``(results [seeds, games], saved, step, two_player)``: outcomes
  +1/0/-1 for games, returns for one-player tasks."""
  if games < 1:
    raise ValueError(f"--games must be >= 1, got {games}")
  if opponent not in arena.OPPONENTS:
    raise ValueError(f"unknown opponent {opponent!r}; accepted: {', '.join(arena.OPPONENTS)} "
                     "or a run folder")
  built, state, saved, step = load_muzero_run(run_dir)
  game = built.env
  if opponent != "random" and not game.two_player:
    raise ValueError(f"{saved['env']} is a one-player task: it has no opponent; evaluate "
                     "without --opponent")
  agent = _agent(built, simulations)

  def evaluate(params, hyper, key):
    def policy(k, g):
      return agent.policy(params, hyper, k, g)
    if game.two_player:
      return arena.play_match(game, policy, arena.opponent_policy(game, opponent), key,
                              games).outcome
    return arena.play_episodes(game, policy, key, games).returns

  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  hypers = RunAxis.from_saved(saved).hypers(built.hyper)
  results = jax.jit(jax.vmap(evaluate))(state.params, hypers, keys)
  return np.asarray(results), saved, step, game.two_player


def match_runs(run_a, run_b, *, games: int = 200, seed: int = 123,
               simulations: int | None = None):
  """Seed 0 of run ``a`` against seed 0 of run ``b`` on their game: outcomes ``[games]`` for
  ``a`` (each side moves first in half the games)."""
  built_a, state_a, saved_a, _ = load_muzero_run(run_a)
  built_b, state_b, saved_b, _ = load_muzero_run(run_b)
  if saved_a["env"] != saved_b["env"]:
    raise ValueError(f"{run_a} plays {saved_a['env']} but {run_b} plays {saved_b['env']}")
  if not built_a.env.two_player:
    raise ValueError(f"{saved_a['env']} is a one-player task; there is no match to play")
  agents = [_agent(built, simulations) for built in (built_a, built_b)]
  params = [jax.tree.map(lambda x: x[0], s.params) for s in (state_a, state_b)]
  hypers = [type(b.hyper)(*(jnp.float32(v) for v in b.hyper)) for b in (built_a, built_b)]

  def play(key):
    pol = [lambda k, g, i=i: agents[i].policy(params[i], hypers[i], k, g) for i in range(2)]
    return arena.play_match(built_a.env, pol[0], pol[1], key, games).outcome
  return np.asarray(jax.jit(play)(jax.random.PRNGKey(seed))), saved_a, saved_b
