"""The MBPO driver: Python calls one jitted, seed-vmapped training iteration at a time (model
refit, branched rollouts, real steps with SAC updates); it only logs, evaluates, checkpoints and
draws the curve.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
import warnings

import jax
import numpy as np

from wmjax import envs
from wmjax.agents import mbpo as mbpo_lib
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
  return_postfix,
)
from wmjax.train.overrides import apply_overrides
from wmjax.train.plots import plot_curve, seeds_label
from wmjax.train.rundir import RunDir

__all__ = ["train_mbpo", "load_mbpo_run", "evaluate_mbpo_run", "summarize_metrics"]


@dataclasses.dataclass
class _Built:
  env: object
  config: mbpo_lib.MBPOConfig
  hyper: mbpo_lib.MBPOHyper
  mbpo: mbpo_lib.MBPO
  iterations: int


def _build(env_name: str, steps: int, config, hyper) -> _Built:
  env = envs.make(env_name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  rows = config.num_envs * config.steps_per_iteration
  prefill = -(-config.prefill_steps // config.num_envs) * config.num_envs
  if steps <= prefill:
    raise ValueError(
        f"--steps {steps} agent steps are all spent on the random prefill ({prefill} steps); "
        f"ask for more, e.g. --steps {prefill + 20 * rows}.")
  iterations = math.ceil((steps - prefill) / rows)
  mbpo = mbpo_lib.make_mbpo(env, config, total_steps=prefill + iterations * rows)
  return _Built(env, config, hyper, mbpo, iterations)


def summarize_metrics(record: dict, metrics: dict) -> None:
  """Adds per-seed values (``[seeds]``) and their mean (``<name>_mean``) to ``record``."""
  for k, v in metrics.items():
    per_seed = np.asarray(v, float)
    record[k] = per_seed
    finite = per_seed[np.isfinite(per_seed)]
    record[k + "_mean"] = float(finite.mean()) if finite.size else None


def train_mbpo(env_name: str, *, steps: int, seeds: int = 1, out: str | pathlib.Path,
               sets: list[str] = (), resume: bool = False, seed: int = 0,
               progress: bool = True,
               run_axis: RunAxis | None = None, devices: int | None = 1) -> RunDir:
  """Trains MBPO on ``env_name`` for ``steps`` agent steps (random prefill included), ``seeds``
  seeds in one vmapped program. Writes ``config.json``, ``metrics.jsonl``, ``curve.png`` and
  orbax checkpoints to ``out``; ``resume`` continues a run.
  """
  from tqdm.auto import tqdm

  run = RunDir(out, resume=resume)
  if resume:
    saved = run.read_config()
    if saved["algo"] != "mbpo":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not mbpo")
    env_name, steps, seeds, seed = saved["env"], saved["steps"], saved["seeds"], saved["seed"]
    config, hyper = config_from_dict(mbpo_lib.MBPOConfig, mbpo_lib.MBPOHyper, saved)
  else:
    if seeds < 1:
      raise ValueError(f"--seeds must be >= 1, got {seeds}")
    config, hyper = apply_overrides(mbpo_lib.default_config(env_name),
                                    mbpo_lib.default_hyper(env_name), list(sets))
  axis = resolve_axis(resume, run.read_config() if resume else None, seeds, seed, run_axis)
  seeds = axis.size   # runs on the vmapped axis (seeds x hyperparameter points)
  built = _build(env_name, steps, config, hyper)
  mbpo, env = built.mbpo, built.env
  if not resume:
    derived = {"iterations": built.iterations, "real_per_batch": config.real_per_batch,
               "model_capacity": config.model_capacity,
               "spec": dataclasses.asdict(env.spec)}
    run.write_config(config_dict("mbpo", env_name, steps, seeds, seed, config, hyper, derived,
                                 run_axis=axis))
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)

  init_fn = jax.jit(jax.vmap(mbpo.init))
  iteration_fn = jax.jit(jax.vmap(mbpo.train_iteration))
  eval_fn = jax.jit(jax.vmap(mbpo.evaluate))
  finite_fn = jax.jit(jax.vmap(lambda s: all_finite((s.sac.actor, s.sac.critic,
                                                     s.model.params))))
  ckpt = Checkpointer(run.checkpoint_dir)
  repeat = config.action_repeat
  rows = config.num_envs * config.steps_per_iteration
  bar = tqdm(total=steps * repeat, unit="env step", disable=not progress, dynamic_ncols=True,
             desc=f"MBPO {env_name}, {seeds_label(seeds)}")
  t_start = time.time()
  state, done, wall_offset = restore_or_init(
      run, ckpt, init_fn, keys, hypers, resume, lambda: bar.set_postfix_str("prefill + compile"),
      mesh=mesh)
  bar.update(int(np.mean(np.asarray(state.agent_steps))) * repeat)
  warned = False
  try:
    while done < built.iterations:
      state, metrics = iteration_fn(state, hypers)
      metrics = jax.device_get(metrics)            # leaves [seeds]
      done += 1
      finite = np.asarray(finite_fn(state))
      if not np.all(finite):
        raise TrainingDiverged(
            f"non-finite SAC or model parameters at iteration {done} for seed(s) "
            f"{bad_seeds(np.where(finite, 0.0, np.nan))}; stopped. The last good checkpoint is "
            f"kept in {ckpt.directory}. Try a lower sac_lr or model_lr.")
      if not warned and np.any(np.asarray(metrics["train/terminations"]) > 0):
        warnings.warn(f"{env_name} reached terminal states, but MBPO's model rollouts never "
                      "terminate here; its value targets past those states are biased.",
                      stacklevel=2)
        warned = True
      agent_steps = int(np.mean(np.asarray(state.agent_steps)))
      record = {"iteration": done, "agent_steps": agent_steps, "env_steps": agent_steps * repeat,
                "sac_updates": int(np.mean(np.asarray(state.sac.updates))),
                "wall_s": wall_offset + time.time() - t_start}
      summarize_metrics(record, metrics)
      last = done == built.iterations
      do_eval = last or (config.eval_every > 0 and done % config.eval_every == 0)
      if do_eval:
        returns = np.asarray(eval_fn(state, jax.random.split(jax.random.fold_in(eval_key, done),
                                                             seeds)))
        record["eval/episode_return"] = returns.mean(axis=1)
        record["eval/episode_return_mean"] = float(returns.mean())
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      ckpt.save(done, state)
      plot_curve(run.read_metrics(), run.path / "curve.png",
                 title=f"MBPO on {env_name} ({seeds_label(seeds)})")
      bar.update(rows * repeat)
      post = return_postfix(record, do_eval)
      post["model mse"] = f"{record['model/val_mse_mean']:.3f}"
      bar.set_postfix(post)
  finally:
    bar.close()
    ckpt.close()
  return run


def load_mbpo_run(run_dir: str | pathlib.Path):
  """Rebuilds an MBPO run from its folder: ``(built, state, config_dict, iteration)``."""
  return load_run(run_dir, "mbpo", mbpo_lib.MBPOConfig, mbpo_lib.MBPOHyper, _build,
                  lambda built: built.mbpo.init)


def evaluate_mbpo_run(run_dir: str | pathlib.Path, episodes: int = 5, seed: int = 123):
  """Runs ``episodes`` evaluation episodes per trained seed: returns ``[seeds, episodes]``."""
  built, state, saved, step = load_mbpo_run(run_dir)
  config = dataclasses.replace(built.config, eval_episodes=episodes)
  mbpo = mbpo_lib.make_mbpo(built.env, config, total_steps=saved["steps"])
  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  returns = jax.jit(jax.vmap(mbpo.evaluate))(state, keys)
  return np.asarray(returns), saved, step
