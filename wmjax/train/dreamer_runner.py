"""The Dreamer driver: Python calls one jitted, seed-vmapped chunk of training iterations at a
time; it only logs, evaluates, checkpoints and draws the curve and the model's reconstructions.
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
from wmjax.agents import dreamer as dreamer_lib
from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.replay.sequences import sample_sequences
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

__all__ = ["train_dreamer", "load_dreamer_run", "evaluate_dreamer_run", "save_reconstructions"]

LOG_EVERY = 5   # training iterations per jitted chunk (one metrics line per chunk)


@dataclasses.dataclass
class _Built:
  env: object
  config: dreamer_lib.DreamerConfig
  hyper: dreamer_lib.DreamerHyper
  dreamer: dreamer_lib.Dreamer
  chunks: int
  chunk_iterations: int

  @property
  def rows_per_iteration(self) -> int:
    return self.config.num_envs * self.config.steps_per_iteration


def _build(env_name: str, steps: int, config, hyper) -> _Built:
  env = envs.make(env_name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  dreamer = dreamer_lib.make_dreamer(env, config)
  rows = config.num_envs * config.steps_per_iteration
  prefill_rows = config.prefill_iterations * rows
  if steps <= prefill_rows:
    raise ValueError(
        f"--steps {steps} agent steps are all spent on the random prefill ({prefill_rows} "
        f"steps); ask for more than that, e.g. --steps {prefill_rows + 20 * rows}.")
  iterations = math.ceil((steps - prefill_rows) / rows)
  chunk = min(LOG_EVERY, iterations)
  return _Built(env, config, hyper, dreamer, math.ceil(iterations / chunk), chunk)


def _resolve(env_name, sets):
  config = dreamer_lib.default_config(env_name)
  hyper = dreamer_lib.default_hyper(env_name)
  return apply_overrides(config, hyper, list(sets))


def train_dreamer(env_name: str, *, steps: int, seeds: int = 1, out: str | pathlib.Path,
                  sets: list[str] = (), resume: bool = False, seed: int = 0,
                  progress: bool = True, reference: tuple[float, str] | None = None,
                  run_axis: RunAxis | None = None, devices: int | None = 1) -> RunDir:
  """Trains Dreamer on ``env_name`` for ``steps`` agent steps (prefill included), ``seeds``
  seeds in one vmapped program. Writes ``config.json``, ``metrics.jsonl``, ``curve.png``,
  ``reconstructions.png`` and orbax checkpoints to ``out``; ``resume`` continues a run.
  """
  from tqdm.auto import tqdm

  run = RunDir(out, resume=resume)
  if resume:
    saved = run.read_config()
    if saved["algo"] != "dreamer":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not dreamer")
    env_name, steps, seeds, seed = saved["env"], saved["steps"], saved["seeds"], saved["seed"]
    config, hyper = config_from_dict(dreamer_lib.DreamerConfig, dreamer_lib.DreamerHyper, saved)
  else:
    if seeds < 1:
      raise ValueError(f"--seeds must be >= 1, got {seeds}")
    config, hyper = _resolve(env_name, sets)
  axis = resolve_axis(resume, run.read_config() if resume else None, seeds, seed, run_axis)
  seeds = axis.size   # runs on the vmapped axis (seeds x hyperparameter points)
  built = _build(env_name, steps, config, hyper)
  dreamer, env = built.dreamer, built.env
  if not resume:
    derived = {"updates_per_iteration": config.updates_per_iteration,
               "prefill_iterations": config.prefill_iterations,
               "iterations": built.chunks * built.chunk_iterations,
               "model": dataclasses.asdict(dreamer.model_config),
               "spec": dataclasses.asdict(env.spec)}
    run.write_config(config_dict("dreamer", env_name, steps, seeds, seed, config, hyper,
                                 derived, run_axis=axis))
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)
  chunk = built.chunk_iterations

  def run_chunk(state, hyper_):
    def body(s, _):
      return dreamer.train_iteration(s, hyper_)
    state, metrics = jax.lax.scan(body, state, None, length=chunk)
    return state, metrics

  init_fn = jax.jit(jax.vmap(dreamer.init))
  # No donation: the asynchronous checkpoint of the previous state may still be reading it.
  chunk_fn = jax.jit(jax.vmap(run_chunk))
  eval_fn = jax.jit(jax.vmap(dreamer.evaluate))
  finite_fn = jax.jit(jax.vmap(lambda s: all_finite(s.params)))
  ckpt = Checkpointer(run.checkpoint_dir)
  repeat = config.action_repeat
  rows = built.rows_per_iteration

  bar = tqdm(total=steps * repeat, unit="env step", disable=not progress, dynamic_ncols=True,
             desc=f"Dreamer {env_name}, {seeds_label(seeds)}")
  t_start = time.time()
  state, done_chunks, wall_offset = restore_or_init(
      run, ckpt, init_fn, keys, hypers, resume, lambda: bar.set_postfix_str("prefill + compile"),
      mesh=mesh)
  bar.update(int(np.mean(np.asarray(state.agent_steps))) * repeat)
  eval_every = config.eval_every
  try:
    while done_chunks < built.chunks:
      state, metrics = chunk_fn(state, hypers)
      metrics = jax.device_get(metrics)          # leaves [seeds, chunk]
      done_chunks += 1
      iteration = done_chunks * chunk
      finite = np.asarray(finite_fn(state))
      loss = np.where(finite, np.nanmean(metrics["model/loss"], axis=1), np.nan)
      if not np.all(np.isfinite(loss)):
        raise TrainingDiverged(
            f"non-finite world-model loss or parameters in iterations {iteration - chunk + 1}-"
            f"{iteration} for seed(s) {bad_seeds(loss)}; stopped. The last good checkpoint is "
            f"kept in {ckpt.directory}. Try a lower model_lr.")
      agent_steps = int(np.mean(np.asarray(state.agent_steps)))
      record = {"iteration": done_chunks, "train_iterations": iteration,
                "agent_steps": agent_steps, "env_steps": agent_steps * repeat,
                "updates": int(np.mean(np.asarray(state.updates))),
                "wall_s": wall_offset + time.time() - t_start}
      for k, v in metrics.items():
        v = np.asarray(v, float)
        with np.errstate(all="ignore"):
          per_seed = np.nanmean(v, axis=1) if k == "train/episode_return" else v.mean(axis=1)
        if k == "train/episodes":
          per_seed = v.sum(axis=1)
        record[k] = per_seed
        record[k + "_mean"] = float(np.nanmean(per_seed)) if np.any(np.isfinite(per_seed)) \
            else None
      last = done_chunks == built.chunks
      do_eval = last or (eval_every > 0 and iteration % eval_every < chunk)
      if do_eval:
        returns = np.asarray(eval_fn(state, jax.random.split(
            jax.random.fold_in(eval_key, done_chunks), seeds)))
        record["eval/episode_return"] = returns.mean(axis=1)
        record["eval/episode_return_mean"] = float(returns.mean())
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      ckpt.save(done_chunks, state)
      plot_curve(run.read_metrics(), run.path / "curve.png",
                 title=f"Dreamer on {env_name} ({seeds_label(seeds)})",
                 reference=reference)
      if do_eval:
        save_reconstructions(dreamer, jax.tree.map(lambda x: x[0], state),
                             jax.random.fold_in(eval_key, 1_000_000 + done_chunks),
                             run.path / "reconstructions.png")
      bar.update(rows * chunk * repeat)
      post = return_postfix(record, do_eval)
      post["model"] = f"{record['model/loss_mean']:.2f}"
      bar.set_postfix(post)
  finally:
    bar.close()
    ckpt.close()
  return run


def save_reconstructions(dreamer: dreamer_lib.Dreamer, state, key, path, *, sequences: int = 4,
                         context: int = 5) -> dict:
  """Draws what the world model sees for replayed sequences of one seed: the observations, the
  decoder's reconstructions from the posterior, and open-loop predictions after ``context``
  observed steps (the real actions, no more observations). Returns the errors it drew."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  wm = dreamer.world_model
  params = state.params["model"]
  key_sample, key_observe, key_imagine = jax.random.split(key, 3)
  seq_len = min(int(state.buffer.count), 48)
  batch = sample_sequences(state.buffer, key_sample, sequences, seq_len)
  obs = batch["obs"].astype(jnp.float32)
  is_image = obs.ndim == 5
  if is_image:
    obs = obs / 255.0
  is_first = batch["is_first"].at[:, 0].set(1.0)
  embed = wm.encode(params, obs)
  posts, _ = wm.observe(params, key_observe, embed, batch["action"], is_first)
  recon = wm.decode(params, rssm.features(posts))
  start = jax.tree.map(lambda x: x[:, context - 1], posts)
  states = wm.imagine_actions(params, key_imagine, start, batch["action"][:, context - 1:-1])
  openloop = wm.decode(params, rssm.features(states))[:, 1:]
  predicted = jnp.concatenate([recon[:, :context], openloop], 1)
  if not is_image:
    recon, predicted = heads.symexp(recon), heads.symexp(predicted)
  obs, recon, predicted = (np.asarray(x) for x in (obs, recon, predicted))
  errors = {"recon_mse": float(np.mean((recon - obs) ** 2)),
            "openloop_mse": float(np.mean((predicted[:, context:] - obs[:, context:]) ** 2))}
  if is_image:
    frames = min(seq_len, 12)
    times = np.linspace(0, seq_len - 1, frames).astype(int)
    rows = []
    for s in range(min(sequences, 2)):
      for arr in (obs, recon, predicted):
        rows.append(np.concatenate([np.clip(arr[s, t], 0, 1) for t in times], 1))
    grid = np.concatenate(rows, 0)
    fig, ax = plt.subplots(figsize=(frames * 0.9, len(rows) * 0.95))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
              cmap="gray" if grid.shape[-1] == 1 else None, interpolation="nearest")
    height = obs.shape[2]
    ax.set_yticks([height * (i + 0.5) for i in range(len(rows))])
    ax.set_yticklabels(["observed", "reconstructed", f"open loop (after {context})"] *
                       (len(rows) // 3), fontsize=7)
    ax.set_xticks([obs.shape[3] * (i + 0.5) for i in range(frames)])
    ax.set_xticklabels([str(t) for t in times], fontsize=7)
    ax.set_xlabel("time step")
  else:
    dims = min(obs.shape[-1], 6)
    fig, axes = plt.subplots(dims, 1, figsize=(7, 1.3 * dims), sharex=True, squeeze=False)
    for d in range(dims):
      ax = axes[d, 0]
      ax.plot(obs[0, :, d], color="black", label="observed")
      ax.plot(recon[0, :, d], color="tab:blue", linestyle="--", label="reconstructed")
      ax.plot(predicted[0, :, d], color="tab:red", alpha=0.8, label=f"open loop (after {context})")
      ax.axvline(context - 1, color="gray", linewidth=0.6)
      ax.set_ylabel(f"obs[{d}]", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("time step")
  fig.suptitle(f"world model: reconstruction MSE {errors['recon_mse']:.4f}, open-loop MSE "
               f"{errors['openloop_mse']:.4f}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return errors


def load_dreamer_run(run_dir: str | pathlib.Path):
  """Rebuilds a Dreamer run from its folder: ``(built, state, config_dict, chunk)``."""
  return load_run(run_dir, "dreamer", dreamer_lib.DreamerConfig, dreamer_lib.DreamerHyper,
                  _build, lambda built: built.dreamer.init)


def evaluate_dreamer_run(run_dir: str | pathlib.Path, episodes: int = 5, seed: int = 123):
  """Runs ``episodes`` evaluation episodes per trained seed: returns ``[seeds, episodes]``."""
  built, state, saved, step = load_dreamer_run(run_dir)
  config = dataclasses.replace(built.config, eval_episodes=episodes)
  dreamer = dreamer_lib.make_dreamer(built.env, config)
  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  returns = jax.jit(jax.vmap(dreamer.evaluate))(state, keys)
  return np.asarray(returns), saved, step
