"""The PETS driver: Python calls one jitted, seed-vmapped episode at a time; it only logs,
checkpoints, evaluates and draws the curve.
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
from wmjax.agents import pets as pets_lib
from wmjax.train.checkpoint import Checkpointer
from wmjax.train.common import (
  RunAxis,
  TrainingDiverged,
  axis_inputs,
  bad_seeds,
  check_run_memory,
  config_from_dict,
  load_run,
  place_runs,
  resolve_axis,
  return_postfix,
  run_sharding,
)
from wmjax.train.overrides import apply_overrides
from wmjax.train.plots import plot_curve, seeds_label
from wmjax.train.rundir import RunDir

__all__ = ["TrainingDiverged", "train_pets", "load_pets_run", "evaluate_pets_run"]


@dataclasses.dataclass
class _Built:
  env: object
  config: pets_lib.PETSConfig
  hyper: pets_lib.PETSHyper
  pets: pets_lib.PETS
  num_episodes: int        # real episodes in all (random + planned)
  planned_episodes: int


def _build(env_name: str, steps: int, config: pets_lib.PETSConfig,
           hyper: pets_lib.PETSHyper) -> _Built:
  env = envs.make(env_name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  per_episode = env.steps_per_episode
  num_episodes = max(1, math.ceil(steps / per_episode))
  planned = num_episodes - config.initial_episodes
  if planned < 1:
    raise ValueError(
        f"--steps {steps} gives {num_episodes} episode(s) of {per_episode} agent steps, all "
        f"spent on the {config.initial_episodes} random initial episode(s); ask for at least "
        f"{(config.initial_episodes + 1) * per_episode} steps.")
  pets = pets_lib.make_pets(env, config, total_steps=num_episodes * per_episode)
  return _Built(env, config, hyper, pets, num_episodes, planned)


def _config_dict(algo, env_name, steps, seeds, seed, built: _Built,
                 run_axis: RunAxis | None = None) -> dict:
  d = {
      "algo": algo, "env": env_name, "steps": steps, "seeds": seeds, "seed": seed,
      "config": dataclasses.asdict(built.config), "hyper": built.hyper._asdict(),
      "derived": {"steps_per_episode": built.env.steps_per_episode,
                  "episodes": built.num_episodes, "planned_episodes": built.planned_episodes,
                  "spec": dataclasses.asdict(built.env.spec)},
      "jax": {"version": jax.__version__, "backend": jax.default_backend()},
  }
  if run_axis is not None:
    d["seeds"], d["run_axis"] = run_axis.size, run_axis.to_dict()
  return d


def _from_config_dict(d: dict) -> tuple[pets_lib.PETSConfig, pets_lib.PETSHyper]:
  return config_from_dict(pets_lib.PETSConfig, pets_lib.PETSHyper, d)


def _params_finite(state: pets_lib.PETSState) -> jax.Array:
  leaves = jax.tree.leaves(state.model.params)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def train_pets(env_name: str, *, steps: int, seeds: int = 1, out: str | pathlib.Path,
               sets: list[str] = (), resume: bool = False, seed: int = 0,
               progress: bool = True, reference: tuple[float, str] | None = None,
               run_axis: RunAxis | None = None, devices: int | None = 1) -> RunDir:
  """Trains PETS on ``env_name`` for ``steps`` agent steps, ``seeds`` seeds in one program.

  Writes ``config.json``, ``metrics.jsonl`` (one line per episode, per-seed lists and means),
  ``curve.png`` and orbax checkpoints to ``out``. With ``resume``, continues from the last
  checkpoint with the saved configuration.
  """
  from tqdm.auto import tqdm

  run = RunDir(out, resume=resume)
  if resume:
    saved = run.read_config()
    if saved["algo"] != "pets":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not pets")
    env_name, steps, seeds, seed = saved["env"], saved["steps"], saved["seeds"], saved["seed"]
    config, hyper = _from_config_dict(saved)
  else:
    if seeds < 1:
      raise ValueError(f"--seeds must be >= 1, got {seeds}")
    config, hyper = apply_overrides(pets_lib.default_config(env_name), pets_lib.PETSHyper(),
                                    list(sets))
  if float(hyper.disagreement_coef) != 0.0 and not config.disagreement:
    raise ValueError("disagreement_coef is set but disagreement=false: the coefficient would "
                     "be ignored. Add --set disagreement=true.")
  axis = resolve_axis(resume, run.read_config() if resume else None, seeds, seed, run_axis)
  seeds = axis.size   # runs on the vmapped axis (seeds x hyperparameter points)
  built = _build(env_name, steps, config, hyper)
  if not resume:
    run.write_config(_config_dict("pets", env_name, steps, seeds, seed, built, run_axis=axis))
  pets, env = built.pets, built.env
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)

  init_fn = jax.jit(jax.vmap(pets.init))
  # The driver runs a planned episode (collect) and the refit (update) as two programs so
  # that evaluation episodes reuse the compiled episode; `pets.train` fuses them for sweeps.
  # No buffer donation: the async checkpoint of the previous state may still be reading it.
  collect_fn = jax.jit(jax.vmap(pets.collect))
  update_fn = jax.jit(jax.vmap(pets.update))
  fused_step_fn = jax.jit(jax.vmap(pets.step))

  split_fn = jax.jit(jax.vmap(lambda k: tuple(jax.random.split(k))))
  params_finite_fn = jax.jit(jax.vmap(_params_finite))

  def train_episode(state):
    """Same keys and results as the fused ``pets.step``."""
    if config.train_every > 0:   # refits inside the episode: only the fused program does that
      return fused_step_fn(state, hypers)
    key_episode, key_state = split_fn(state.key)
    state = state._replace(key=key_state)
    seq, valid, ret, info = collect_fn(state, key_episode, hypers)
    return update_fn(state, seq, valid, ret, info)

  def evaluate(state, key):
    returns = [collect_fn(state, jax.random.split(k, seeds), hypers)[2]
               for k in jax.random.split(key, config.eval_episodes)]
    return np.stack([np.asarray(r) for r in returns], axis=1)   # [seeds, episodes]
  ckpt = Checkpointer(run.checkpoint_dir)

  per_episode = env.steps_per_episode
  repeat = config.action_repeat
  t_start = time.time()
  abstract = jax.eval_shape(init_fn, keys, hypers)
  check_run_memory(run, ckpt, abstract, mesh, resume)
  if resume and ckpt.latest_step() is not None:
    iteration, state = ckpt.restore(abstract, sharding=run_sharding(mesh))
    state = place_runs(state, mesh)
    run.truncate_metrics(iteration)
    prior = run.read_metrics()
    wall_offset = prior[-1]["wall_s"] if prior else 0.0
  else:
    run.truncate_metrics(-1)
    state = place_runs(init_fn(keys, hypers), mesh)
    finite = np.asarray(params_finite_fn(state))
    if not finite.all():
      ckpt.close()
      raise TrainingDiverged(
          f"non-finite model loss in the first model fit (after the random episodes, agent step "
          f"{config.initial_episodes * per_episode}) for seed(s) "
          f"{[int(i) for i in np.flatnonzero(~finite)]}; stopped before any checkpoint. "
          "Try a lower model_lr.")
    iteration, wall_offset = 0, 0.0
    ckpt.save(0, state)

  bar = tqdm(total=built.num_episodes * per_episode * repeat, unit="env step",
             disable=not progress, dynamic_ncols=True,
             desc=f"PETS {env_name}, {seeds_label(seeds)}")
  bar.update((config.initial_episodes + iteration) * per_episode * repeat)
  last_good = iteration
  try:
    while iteration < built.planned_episodes:
      state, metrics = train_episode(state)
      metrics = jax.device_get(metrics)
      iteration += 1
      loss = np.asarray(metrics.get("model/loss", np.zeros(seeds)))
      loss = np.where(np.asarray(params_finite_fn(state)), loss, np.nan)
      if not np.all(np.isfinite(loss)):
        raise TrainingDiverged(
            f"non-finite model loss at planned episode {iteration} (agent step "
            f"{(config.initial_episodes + iteration) * per_episode}) for seed(s) "
            f"{bad_seeds(loss)}; stopped. The last good checkpoint (iteration "
            f"{last_good}) is kept in {ckpt.directory}. Try a lower model_lr.")
      # Real data collected (episodes that terminate early count only their steps).
      agent_steps = int(np.mean(np.asarray(state.env_steps)))
      record = {
          "iteration": iteration,
          "agent_steps": agent_steps,
          "env_steps": agent_steps * repeat,
          "wall_s": wall_offset + time.time() - t_start,
      }
      for k, v in metrics.items():
        record[k] = np.asarray(v)
        record[k + "_mean"] = float(np.mean(v))
      do_eval = (config.eval_every > 0 and iteration % config.eval_every == 0) or (
          iteration == built.planned_episodes)
      if do_eval:
        returns = evaluate(state, jax.random.fold_in(eval_key, iteration))
        record["eval/episode_return"] = returns.mean(axis=1)
        record["eval/episode_return_mean"] = float(returns.mean())
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      ckpt.save(iteration, state)
      last_good = iteration
      plot_curve(run.read_metrics(), run.path / "curve.png",
                 title=f"PETS on {env_name} ({seeds_label(seeds)})",
                 reference=reference)
      bar.update(per_episode * repeat)
      bar.set_postfix(return_postfix(record, do_eval))
  finally:
    bar.close()
    ckpt.close()
  return run


def load_pets_run(run_dir: str | pathlib.Path):
  """Rebuilds a PETS run from its folder: ``(built, state, config_dict, step)``."""
  return load_run(run_dir, "pets", pets_lib.PETSConfig, pets_lib.PETSHyper, _build,
                  lambda built: built.pets.init)


def evaluate_pets_run(run_dir: str | pathlib.Path, episodes: int = 5, seed: int = 123):
  """Runs ``episodes`` evaluation episodes per trained seed; returns returns [seeds, episodes]."""
  built, state, saved, step = load_pets_run(run_dir)
  config = dataclasses.replace(built.config, eval_episodes=episodes)
  pets = pets_lib.make_pets(built.env, config,
                            total_steps=built.num_episodes * built.env.steps_per_episode)
  seeds = saved["seeds"]
  hypers = RunAxis.from_saved(saved).hypers(built.hyper)
  keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
  returns = jax.jit(jax.vmap(pets.evaluate))(state, keys, hypers)
  return np.asarray(returns), saved, step
