"""The MuZero driver: Python calls one jitted, seed-vmapped chunk of training iterations at a
time (self-play, replay, updates all inside); it only logs, evaluates (win/draw/loss against
reference opponents for board games, returns for one-player tasks), checkpoints and plots.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents import arena
from wmjax.agents import muzero as muzero_lib
from wmjax.envs.pgx import make_game
from wmjax.train.checkpoint import Checkpointer
from wmjax.train.common import (
  RunAxis,
  TrainingDiverged,
  all_finite,
  axis_inputs,
  bad_seeds,
  config_dict,
  config_from_dict,
  load_run,
  resolve_axis,
  restore_or_init,
)
from wmjax.train.overrides import apply_overrides
from wmjax.train.plots import plot_curve, seeds_label
from wmjax.train.rundir import RunDir

__all__ = ["train_muzero", "load_muzero_run", "evaluate_muzero_run", "match_runs",
           "default_steps", "make_evaluator"]

LOG_EVERY = 10   # training iterations per jitted chunk (one metrics line per chunk)

# Self-play moves of the default run per game (what the closing notes measured).
_DEFAULT_STEPS = {"pgx/tic_tac_toe": 150_000, "pgx/connect_four": 2_000_000}


def default_steps(game_name: str) -> int:
  return _DEFAULT_STEPS.get(game_name, 500_000)


@dataclasses.dataclass
class _Built:
  game: object
  config: muzero_lib.MuZeroConfig
  hyper: muzero_lib.MuZeroHyper
  agent: muzero_lib.MuZero
  chunks: int
  chunk_iterations: int

  @property
  def moves_per_iteration(self) -> int:
    return self.config.num_envs * self.config.steps_per_iteration


def _build(game_name: str, steps: int, config, hyper) -> _Built:
  game = make_game(game_name)
  agent = muzero_lib.make_muzero(game, config)
  per_iteration = config.num_envs * config.steps_per_iteration
  iterations = max(1, math.ceil(steps / per_iteration))
  chunk = min(LOG_EVERY, iterations)
  return _Built(game, config, hyper, agent, math.ceil(iterations / chunk), chunk)


def make_evaluator(agent: muzero_lib.MuZero, games: int, opponent: str | None = None):
  """``evaluate(params, hyper, key) -> [games]``: outcomes (+1/0/-1) against ``opponent``
  (random | greedy | safe, see :mod:`wmjax.agents.arena`) for two-player games, episode returns
  for one-player tasks."""
  game = agent.game

  def evaluate(params, hyper, key):
    def policy(k, g):
      return agent.policy(params, hyper, k, g)
    if game.two_player:
      opp = arena.opponent_policy(game, opponent or "random")
      return arena.play_match(game, policy, opp, key, games).outcome
    return arena.play_episodes(game, policy, key, games)
  return evaluate


def _resolve(game_name, sets):
  config = muzero_lib.default_config(game_name)
  hyper = muzero_lib.default_hyper(game_name)
  return apply_overrides(config, hyper, list(sets))


def train_muzero(env_name: str, *, steps: int | None = None, seeds: int = 1,
                 out: str | pathlib.Path, sets: list[str] = (), resume: bool = False,
                 seed: int = 0, progress: bool = True,
                 run_axis: RunAxis | None = None, devices: int | None = 1,
                 minutes: float | None = None) -> RunDir:
  """Trains MuZero on a game for ``steps`` self-play moves (all parallel games together),
  ``seeds`` seeds in one vmapped program. Writes ``config.json``, ``metrics.jsonl``,
  ``curve.png`` and orbax checkpoints to ``out``; ``resume`` continues a run. ``minutes``:
  stop early (evaluated and checkpointed) after the first chunk that ends past this budget."""
  from tqdm.auto import tqdm

  run = RunDir(out, resume=resume)
  if resume:
    saved = run.read_config()
    if saved["algo"] != "muzero":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not muzero")
    env_name, steps, seeds, seed = saved["env"], saved["steps"], saved["seeds"], saved["seed"]
    config, hyper = config_from_dict(muzero_lib.MuZeroConfig, muzero_lib.MuZeroHyper, saved)
  else:
    if seeds < 1:
      raise ValueError(f"--seeds must be >= 1, got {seeds}")
    steps = steps or default_steps(env_name)
    make_game(env_name)    # refuses unknown, continuous or non-zero-sum games before any work
    config, hyper = _resolve(env_name, sets)
  axis = resolve_axis(resume, run.read_config() if resume else None, seeds, seed, run_axis)
  seeds = axis.size   # runs on the vmapped axis (seeds x hyperparameter points)
  built = _build(env_name, steps, config, hyper)
  agent, game = built.agent, built.game
  two_player = game.two_player
  if not resume:
    derived = {"iterations": built.chunks * built.chunk_iterations,
               "window": agent.window, "td_steps": agent.td_steps,
               "players": game.num_players, "num_actions": game.num_actions,
               "obs_shape": list(game.obs_shape), "max_steps": game.max_steps}
    run.write_config(config_dict("muzero", env_name, steps, seeds, seed, config, hyper,
                                 derived, run_axis=axis))
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)
  chunk = built.chunk_iterations

  def run_chunk(state, hyper_):
    return jax.lax.scan(lambda s, _: agent.train_iteration(s, hyper_), state, None,
                        length=chunk)

  init_fn = jax.jit(jax.vmap(agent.init))
  chunk_fn = jax.jit(jax.vmap(run_chunk))
  opponents = ("random", "greedy") if two_player else (None,)
  eval_fns = {o: jax.jit(jax.vmap(make_evaluator(agent, config.eval_games, o)))
              for o in opponents}
  finite_fn = jax.jit(jax.vmap(lambda s: all_finite(s.params)))
  ckpt = Checkpointer(run.checkpoint_dir)
  moves = built.moves_per_iteration

  bar = tqdm(total=built.chunks * chunk * moves, unit="move", disable=not progress,
             dynamic_ncols=True,
             desc=f"MuZero {env_name}, {seeds_label(seeds)}")
  t_start = time.time()
  state, done_chunks, wall_offset = restore_or_init(
      run, ckpt, init_fn, keys, hypers, resume, lambda: bar.set_postfix_str("compiling"), mesh=mesh)
  bar.update(done_chunks * chunk * moves)
  eval_every = config.eval_every
  try:
    while done_chunks < built.chunks:
      state, metrics = chunk_fn(state, hypers)
      metrics = jax.device_get(metrics)          # leaves [seeds, chunk]
      done_chunks += 1
      iteration = done_chunks * chunk
      finite = np.asarray(finite_fn(state))
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss = np.nanmean(np.asarray(metrics["loss/total"], float), axis=1)
      loss = np.where(finite, np.where(np.isnan(loss), 0.0, loss), np.nan)
      if not np.all(np.isfinite(loss)):
        raise TrainingDiverged(
            f"non-finite loss or parameters in iterations {iteration - chunk + 1}-{iteration} "
            f"for seed(s) {bad_seeds(loss)}; stopped. The last good checkpoint is kept in "
            f"{ckpt.directory}. Try a lower learning_rate.")
      record = {"iteration": done_chunks, "train_iterations": iteration,
                "env_steps": int(np.mean(np.asarray(state.moves))),
                "updates": int(np.mean(np.asarray(state.updates))),
                "wall_s": wall_offset + time.time() - t_start}
      for k, v in metrics.items():
        v = np.asarray(v, float)
        with warnings.catch_warnings():   # a chunk without updates or finished games is NaN
          warnings.simplefilter("ignore", RuntimeWarning)
          per_seed = v.sum(axis=1) if k == "train/episodes" else np.nanmean(v, axis=1)
        record[k] = per_seed
        record[k + "_mean"] = (float(np.nanmean(per_seed)) if np.any(np.isfinite(per_seed))
                               else None)
      out_of_time = minutes is not None and time.time() - t_start > 60 * minutes
      last = done_chunks == built.chunks or out_of_time
      do_eval = last or (eval_every > 0 and iteration % eval_every < chunk)
      post = {}
      if do_eval:
        for opp, fn in eval_fns.items():
          k = jax.random.split(jax.random.fold_in(eval_key, done_chunks), seeds)
          res = np.asarray(fn(state.params, hypers, k))            # [seeds, games]
          if two_player:
            for name, value in (("win", 1), ("draw", 0), ("loss", -1)):
              rate = (res == value).mean(axis=1)
              record[f"eval/{name}_vs_{opp}"] = rate
              record[f"eval/{name}_vs_{opp}_mean"] = float(rate.mean())
            post[f"win/loss vs {opp}"] = (f"{record[f'eval/win_vs_{opp}_mean']:.2f}/"
                                          f"{record[f'eval/loss_vs_{opp}_mean']:.2f}")
          else:
            record["eval/episode_return"] = res.mean(axis=1)
            record["eval/episode_return_mean"] = float(res.mean())
            post["eval"] = f"{res.mean():.1f}"
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      ckpt.save(done_chunks, state)
      _plot(run, env_name, seeds, two_player)
      bar.update(moves * chunk)
      if record.get("loss/total_mean") is not None:
        post["loss"] = f"{record['loss/total_mean']:.2f}"
      if not two_player and record.get("train/episode_return_mean") is not None:
        post["return"] = f"{record['train/episode_return_mean']:.1f}"
      bar.set_postfix(post)
      if out_of_time and done_chunks < built.chunks:
        bar.write(f"stopped at the {minutes:g}-minute budget after {record['env_steps']} "
                  f"moves; continue with --resume --out {run.path}")
        break
  finally:
    bar.close()
    ckpt.close()
  return run


def _plot(run: RunDir, env_name: str, seeds: int, two_player: bool) -> None:
  title = f"MuZero on {env_name} ({seeds_label(seeds)})"
  if two_player:
    plot_curve(run.read_metrics(), run.path / "curve.png", title=title,
               keys=("eval/win_vs_random", "eval/win_vs_greedy", "eval/loss_vs_greedy"),
               x_key="env_steps", y_label="rate over evaluation games",
               x_label="self-play moves (all games)")
  else:
    plot_curve(run.read_metrics(), run.path / "curve.png", title=title, x_key="env_steps",
               x_label="env steps (agent moves)")


def load_muzero_run(run_dir: str | pathlib.Path):
  """Rebuilds a MuZero run from its folder: ``(built, state, config_dict, chunk)``."""
  return load_run(run_dir, "muzero", muzero_lib.MuZeroConfig, muzero_lib.MuZeroHyper,
                  _build, lambda built: built.agent.init)


def evaluate_muzero_run(run_dir, *, games: int = 200, opponent: str = "random",
                        seed: int = 123, simulations: int | None = None):
  """Plays ``games`` games (or episodes) per trained seed against ``opponent`` (random,
  greedy or safe). Returns ``(results [seeds, games], saved, step, two_player)``: outcomes
  +1/0/-1 for games, returns for one-player tasks."""
  if games < 1:
    raise ValueError(f"--games must be >= 1, got {games}")
  built, state, saved, step = load_muzero_run(run_dir)
  agent = built.agent
  if simulations is not None:
    config = dataclasses.replace(built.config, eval_simulations=simulations)
    agent = muzero_lib.make_muzero(built.game, config)
  if opponent not in arena.OPPONENTS:
    raise ValueError(f"unknown opponent {opponent!r}; accepted: {', '.join(arena.OPPONENTS)} "
                     "or a run folder")
  if opponent != "random" and not built.game.two_player:
    raise ValueError(f"{saved['env']} is a one-player task: it has no opponent; evaluate "
                     "without --opponent")
  fn = jax.jit(jax.vmap(make_evaluator(agent, games, opponent)))
  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  hypers = RunAxis.from_saved(saved).hypers(built.hyper)
  return np.asarray(fn(state.params, hypers, keys)), saved, step, built.game.two_player


def match_runs(run_a, run_b, *, games: int = 200, seed: int = 123,
               simulations: int | None = None):
  """Seed 0 of run ``a`` against seed 0 of run ``b`` on their game: outcomes ``[games]`` for
  ``a`` (each side moves first in half the games)."""
  built_a, state_a, saved_a, _ = load_muzero_run(run_a)
  built_b, state_b, saved_b, _ = load_muzero_run(run_b)
  if saved_a["env"] != saved_b["env"]:
    raise ValueError(f"{run_a} plays {saved_a['env']} but {run_b} plays {saved_b['env']}")
  if not built_a.game.two_player:
    raise ValueError(f"{saved_a['env']} is a one-player task; there is no match to play")
  agents = []
  for built in (built_a, built_b):
    config = built.config
    if simulations is not None:
      config = dataclasses.replace(config, eval_simulations=simulations)
    agents.append(muzero_lib.make_muzero(built.game, config))
  params = [jax.tree.map(lambda x: x[0], s.params) for s in (state_a, state_b)]
  hypers = [built_a.hyper, built_b.hyper]
  hypers = [type(h)(*(jnp.float32(v) for v in h)) for h in hypers]

  def play(key):
    pol = [lambda k, g, i=i: agents[i].policy(params[i], hypers[i], k, g) for i in range(2)]
    return arena.play_match(built_a.game, pol[0], pol[1], key, games).outcome
  return np.asarray(jax.jit(play)(jax.random.PRNGKey(seed))), saved_a, saved_b
