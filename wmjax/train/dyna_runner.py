"""The tabular Dyna-Q driver: Python calls one jitted, run-vmapped chunk of real steps at a time
(each with its Q-learning update, model update and n planning updates); it only logs, evaluates
the greedy path, checkpoints and draws the curve (cumulative reward against steps, as Sutton &
Barto's Figures 8.4 and 8.5).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from wmjax import envs
from wmjax.agents import dyna as dyna_lib
from wmjax.train.checkpoint import Checkpointer
from wmjax.train.common import (
  RunAxis,
  axis_inputs,
  config_dict,
  load_run,
  resolve_axis,
  restore_or_init,
)
from wmjax.train.overrides import apply_overrides
from wmjax.train.plots import plot_curve
from wmjax.train.rundir import RunDir

__all__ = ["train_dyna", "load_dyna_run", "evaluate_dyna_run", "greedy_steps", "CHUNK_STEPS"]

CHUNK_STEPS = 100   # real steps per jitted call (one metrics line each)


def _hyper_of(config: dyna_lib.DynaConfig) -> dyna_lib.DynaHyper:
  return dyna_lib.DynaHyper(alpha=config.alpha, epsilon=config.epsilon, gamma=config.gamma,
                            kappa=config.kappa)


@dataclasses.dataclass
class _Built:
  maze: object
  config: dyna_lib.DynaConfig
  hyper: dyna_lib.DynaHyper
  dyna: dyna_lib.Dyna
  chunks: int


def _build(env_name: str, steps: int, config, hyper) -> _Built:
  if not env_name.startswith("grid/"):
    raise ValueError(f"tabular Dyna-Q needs a grid maze (grid/dyna_maze, grid/blocking_maze, "
                     f"grid/shortcut_maze); got {env_name}. For deep Dyna on continuous control "
                     "use `wmjax train mbpo`.")
  if steps < 1:
    raise ValueError(f"--steps must be >= 1, got {steps}")
  maze = envs.make(env_name)
  dyna = dyna_lib.make_dyna(maze, config)
  return _Built(maze, config, hyper, dyna, math.ceil(steps / CHUNK_STEPS))


def greedy_steps(dyna: dyna_lib.Dyna, maze, state: dyna_lib.DynaState, key,
                 max_steps: int) -> jax.Array:
  """Steps the greedy policy (ties at random) takes from the start to the goal on the maze as it
  is now (its clock kept), without learning; ``max_steps`` if it does not get there."""
  grid = getattr(maze, "unwrapped", maze)
  env_state = grid.restart(state.env_state)

  def cond(carry):
    _, _, steps, done = carry
    return (done == 0) & (steps < max_steps)

  def body(carry):
    env_state, key, steps, _ = carry
    key, key_act = jax.random.split(key)
    action = dyna.greedy_action(state, key_act, env_state.info["cell"])
    env_state = grid.step(env_state, action)
    return env_state, key, steps + 1, env_state.done

  carry = (env_state, key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
  _, _, steps, done = jax.lax.while_loop(cond, body, carry)
  return jnp.where(done > 0, steps, max_steps)


def train_dyna(env_name: str = "grid/dyna_maze", *, steps: int = 3000, seeds: int = 1,
               out: str | pathlib.Path, sets: list[str] = (), resume: bool = False,
               seed: int = 0, progress: bool = True, run_axis: RunAxis | None = None,
               devices: int | None = 1) -> RunDir:
  """Trains tabular Dyna-Q (Dyna-Q+ with ``--set kappa=...``) on a grid maze for ``steps`` real
  steps, ``seeds`` runs in one vmapped program. Writes ``config.json``, ``metrics.jsonl`` (per
  100 steps: reward, episodes, cumulative reward, greedy path length), ``curve.png`` and
  checkpoints to ``out``; ``resume`` continues a run."""
  from tqdm.auto import tqdm

  run = RunDir(out, resume=resume)
  if resume:
    saved = run.read_config()
    if saved["algo"] != "dyna":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not dyna")
    env_name, steps, seed = saved["env"], saved["steps"], saved["seed"]
    config = _config_from(saved["config"])
  else:
    saved = None
    config, _ = apply_overrides(dyna_lib.default_config(env_name), dyna_lib.DynaHyper(),
                                list(sets))
  hyper = _hyper_of(config)
  axis = resolve_axis(resume, saved, seeds, seed, run_axis)
  seeds = axis.size
  built = _build(env_name, steps, config, hyper)
  dyna, maze = built.dyna, built.maze
  grid = getattr(maze, "unwrapped", maze)
  max_greedy = 4 * grid.num_cells
  if not resume:
    run.write_config(config_dict("dyna", env_name, steps, seeds, seed, config, hyper,
                                 {"chunks": built.chunks, "chunk_steps": CHUNK_STEPS,
                                  "cells": grid.num_cells, "greedy_cap": max_greedy},
                                 run_axis=axis))
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)

  def init(key, hyper_):
    state = dyna.init(key, dyna_lib.DynaHyper(*hyper_))
    return state, jnp.zeros((), jnp.float32), key

  def chunk(carry, hyper_):
    del hyper_   # kept in the state since init
    state, total, key = carry
    key, key_run, key_eval = jax.random.split(key, 3)
    state, rewards = dyna.run_steps(state, key_run, CHUNK_STEPS)
    total = total + rewards.sum()
    metrics = {"train/reward": rewards.sum(), "train/cumulative_reward": total,
               "eval/steps_to_goal": greedy_steps(dyna, maze, state, key_eval, max_greedy)}
    return (state, total, key), metrics

  init_fn = jax.jit(jax.vmap(init))
  chunk_fn = jax.jit(jax.vmap(chunk))
  ckpt = Checkpointer(run.checkpoint_dir)
  bar = tqdm(total=built.chunks * CHUNK_STEPS, unit="step", disable=not progress,
             dynamic_ncols=True, desc=f"Dyna-Q {env_name} x{seeds}")
  t_start = time.time()
  carry, done, wall_offset = restore_or_init(run, ckpt, init_fn, keys, hypers, resume,
                                             mesh=mesh)
  bar.update(done * CHUNK_STEPS)
  try:
    while done < built.chunks:
      carry, metrics = chunk_fn(carry, hypers)
      metrics = jax.device_get(metrics)
      done += 1
      record = {"iteration": done, "env_steps": done * CHUNK_STEPS,
                "wall_s": wall_offset + time.time() - t_start}
      for k, v in metrics.items():
        record[k] = np.asarray(v, float)
        record[k + "_mean"] = float(np.mean(v))
      run.log(record)
      ckpt.save(done, carry)
      bar.update(CHUNK_STEPS)
      bar.set_postfix({"cumulative reward": f"{record['train/cumulative_reward_mean']:.1f}",
                       "greedy path": f"{record['eval/steps_to_goal_mean']:.1f}"})
  finally:
    bar.close()
    ckpt.close()
  plot_curve(run.read_metrics(), run.path / "curve.png",
             title=f"Dyna-Q on {env_name} ({seeds} run{'s' if seeds > 1 else ''})",
             keys=("train/cumulative_reward",), y_label="cumulative reward")
  return run


def _config_from(d: dict) -> dyna_lib.DynaConfig:
  return dyna_lib.DynaConfig(**d)


def load_dyna_run(run_dir: str | pathlib.Path):
  """Rebuilds a Dyna run from its folder: ``(built, carry, config_dict, chunk)``."""

  def init_of(built):
    def init(key, hyper_):
      return (built.dyna.init(key, dyna_lib.DynaHyper(*hyper_)), jnp.zeros((), jnp.float32),
              key)
    return init

  return load_run(run_dir, "dyna", dyna_lib.DynaConfig, dyna_lib.DynaHyper,
                  lambda env, steps, config, hyper: _build(env, steps, config, hyper), init_of)


def evaluate_dyna_run(run_dir: str | pathlib.Path, *, episodes: int = 5, seed: int = 123):
  """Greedy episodes of each trained seed on its maze as it is at the checkpoint (ties at
  random, no learning): ``(steps to the goal [seeds, episodes], saved config, chunk)``. An
  episode that does not reach the goal counts the cap, 4 x the maze's cells."""
  if episodes < 1:
    raise ValueError(f"--episodes must be >= 1, got {episodes}")
  built, (state, _, _), saved, chunk = load_dyna_run(run_dir)
  grid = getattr(built.maze, "unwrapped", built.maze)
  cap = 4 * grid.num_cells

  def one_seed(state_, key):
    keys = jax.random.split(key, episodes)
    return jax.vmap(lambda k: greedy_steps(built.dyna, built.maze, state_, k, cap))(keys)

  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  return np.asarray(jax.jit(jax.vmap(one_seed))(state, keys)), saved, chunk
