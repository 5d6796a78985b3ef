"""The World Models driver: random-policy data, then V, then M, then C by CMA-ES.

Python walks a fixed schedule of chunks (VAE epochs, MDN-RNN epochs, CMA-ES generations); each
chunk is one jitted, seed-vmapped call. After each chunk it logs a line, writes an orbax
checkpoint (so ``resume`` continues from the last chunk) and, during the CMA-ES stage, evaluates
the controller in the real environment and redraws ``curve.png``. It also draws the VAE's
``reconstructions.png`` and a dreamed rollout (``dream.gif`` and ``dream.png``).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time

import jax
import numpy as np

from wmjax import envs
from wmjax.agents import worldmodels as wm_lib
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
from wmjax.train.plots import plot_curve
from wmjax.train.rundir import RunDir

__all__ = ["train_worldmodels", "load_worldmodels_run", "evaluate_worldmodels_run",
           "save_reconstructions", "save_dream", "schedule"]


@dataclasses.dataclass
class _Built:
  env: object
  config: wm_lib.WorldModelsConfig
  hyper: wm_lib.WorldModelsHyper
  wm: wm_lib.WorldModels
  chunks: list[tuple[str, int]]


def schedule(config: wm_lib.WorldModelsConfig) -> list[tuple[str, int]]:
  """The chunks of a run in order: ``(stage, epochs or generations)``, stage vae | mdn | es."""
  chunks = []
  for stage, total, per in (("vae", config.vae_epochs, config.vae_epochs_per_chunk),
                            ("mdn", config.mdn_epochs, config.mdn_epochs_per_chunk),
                            ("es", config.generations, config.eval_every)):
    done = 0
    while done < total:
      chunks.append((stage, min(per, total - done)))
      done += chunks[-1][1]
  return chunks


def _build(env_name: str, steps, config, hyper) -> _Built:
  del steps   # the run's length is config.generations
  env = envs.make(env_name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  wm = wm_lib.make_worldmodels(env, config)
  return _Built(env, config, hyper, wm, schedule(config))


def _resolve(env_name, sets, generations):
  config = wm_lib.default_config(env_name)
  hyper = wm_lib.default_hyper(env_name)
  config, hyper = apply_overrides(config, hyper, list(sets))
  if generations is not None:
    if generations < 1:
      raise ValueError(f"--generations must be >= 1, got {generations}")
    config = dataclasses.replace(config, generations=generations)
  return config, hyper


def train_worldmodels(env_name: str, *, generations: int | None = None, seeds: int = 1,
                      out: str | pathlib.Path, sets: list[str] = (), resume: bool = False,
                      seed: int = 0, progress: bool = True,
                      run_axis: RunAxis | None = None, devices: int | None = 1) -> RunDir:
  """Trains World Models on ``env_name`` (``seeds`` seeds in one vmapped program): V and M on
  random-policy episodes, then C by CMA-ES for ``generations`` (default: the config's) in the
  real environment or in M's dream (``--set mode=real|dream``). Writes ``config.json``,
  ``metrics.jsonl``, ``curve.png``, ``reconstructions.png``, ``dream.gif``/``dream.png`` and
  orbax checkpoints to ``out``; ``resume`` continues a run.
  """
  from tqdm.auto import tqdm

  if resume:
    run = RunDir(out, resume=True)
    saved = run.read_config()
    if saved["algo"] != "worldmodels":
      raise ValueError(f"{run.path} is a {saved['algo']} run, not worldmodels")
    env_name, seeds, seed = saved["env"], saved["seeds"], saved["seed"]
    config, hyper = config_from_dict(wm_lib.WorldModelsConfig, wm_lib.WorldModelsHyper, saved)
    built = _build(env_name, None, config, hyper)
    axis = resolve_axis(True, saved, seeds, seed, None)
  else:
    axis = resolve_axis(False, None, seeds, seed, run_axis)
    config, hyper = _resolve(env_name, sets, generations)
    built = _build(env_name, None, config, hyper)   # bad settings fail before the folder exists
    run = RunDir(out)
  seeds = axis.size   # runs on the vmapped axis (seeds x hyperparameter points)
  wm, env, chunks = built.wm, built.env, built.chunks
  steps_per_episode = env.steps_per_episode
  repeat = config.action_repeat
  data_env_steps = config.episodes * steps_per_episode * repeat
  es_env_steps = (config.population_size * config.rollouts * steps_per_episode * repeat
                  if config.mode == "real" else 0)   # real env steps per generation
  if not resume:
    derived = {"chunks": len(chunks), "controller_params": wm.num_params,
               "cma_es_default_population": wm_lib.min_population_size(wm.num_params),
               "data_env_steps": data_env_steps, "env_steps_per_generation": es_env_steps,
               "vae": dataclasses.asdict(wm.vae_config), "mdn": dataclasses.asdict(wm.mdn_config),
               "spec": dataclasses.asdict(env.spec)}
    run.write_config(config_dict("worldmodels", env_name, config.generations, seeds, seed,
                                 config, hyper, derived, run_axis=axis))
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)

  collect_fn = jax.jit(jax.vmap(wm.collect))
  init_params_fn = jax.jit(jax.vmap(wm.init))

  def init_fn(keys, hypers):
    # Two programs: one that both collects (a scan over env steps) and initialises the conv
    # VAE hung in XLA:CPU (jax 0.10.2, vmapped over seeds); each alone runs.
    return init_params_fn(keys, hypers, collect_fn(keys))

  stage_fns = {"vae": wm.train_vae, "mdn": wm.train_mdn, "es": wm.es_generations}

  compiled: set[tuple[str, int]] = set()

  @functools.cache
  def chunk_fn(stage: str, n: int):
    return jax.jit(jax.vmap(lambda s, h: stage_fns[stage](s, h, n)))

  eval_fn = jax.jit(jax.vmap(wm.evaluate))
  finite_fn = jax.jit(jax.vmap(lambda s: all_finite((s.vae_params, s.mdn_params))))
  ckpt = Checkpointer(run.checkpoint_dir)
  prefix = config.mode

  bar = tqdm(total=len(chunks), unit="chunk", disable=not progress, dynamic_ncols=True,
             desc=f"World Models ({config.mode}) {env_name} x{seeds}")
  t_start = time.time()
  state, done_chunks, wall_offset = restore_or_init(
      run, ckpt, init_fn, keys, hypers, resume,
      lambda: bar.set_postfix_str(f"collect {config.episodes} random episodes + compile"),
      mesh=mesh)
  random_returns = np.asarray(state.data.reward).sum(-1)   # [seeds, episodes]
  bar.update(done_chunks)
  try:
    while done_chunks < len(chunks):
      stage, n = chunks[done_chunks]
      if (stage, n) not in compiled:
        bar.set_postfix_str(f"{stage} (compiling)")
        compiled.add((stage, n))
      state, metrics = chunk_fn(stage, n)(state, hypers)
      metrics = jax.device_get(metrics)          # leaves [seeds, n]
      done_chunks += 1
      finite = np.asarray(finite_fn(state))
      generation = int(np.asarray(state.generations)[0])
      record = {"iteration": done_chunks, "stage": stage,
                "vae_epochs": int(np.asarray(state.vae_epochs)[0]),
                "mdn_epochs": int(np.asarray(state.mdn_epochs)[0]), "generation": generation,
                "env_steps": data_env_steps + generation * es_env_steps,
                "wall_s": wall_offset + time.time() - t_start}
      if done_chunks == 1:
        record["random/episode_return"] = random_returns.mean(1)
        record["random/episode_return_mean"] = float(random_returns.mean())
      for k, v in metrics.items():
        per_seed = np.asarray(v, float)[:, -1]    # the chunk's last epoch / generation
        if k.startswith("es/"):
          k = f"{prefix}/{k[3:]}"
        record[k] = per_seed
        record[k + "_mean"] = float(np.mean(per_seed))
      if stage != "es":
        loss = np.where(finite, record[f"{stage}/loss"], np.nan)
        if not np.all(np.isfinite(loss)):
          raise TrainingDiverged(
              f"non-finite {stage} loss or parameters at chunk {done_chunks} for seed(s) "
              f"{bad_seeds(loss)}; stopped. The last good checkpoint is kept in "
              f"{ckpt.directory}. Try a lower {stage}_lr.")
      else:
        mean_ret, best_ret = (np.asarray(x) for x in eval_fn(
            state, jax.random.split(jax.random.fold_in(eval_key, done_chunks), seeds)))
        record["eval/episode_return"] = mean_ret.mean(1)
        record["eval/episode_return_mean"] = float(mean_ret.mean())
        record["eval/best_episode_return"] = best_ret.mean(1)
        record["eval/best_episode_return_mean"] = float(best_ret.mean())
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      ckpt.save(done_chunks, state)
      last_of_stage = done_chunks == len(chunks) or chunks[done_chunks][0] != stage
      one = jax.tree.map(lambda x: x[0], state)
      if stage == "vae" and last_of_stage:
        save_reconstructions(wm, one, run.path / "reconstructions.png")
      if stage == "es":
        plot_curve(run.read_metrics(), run.path / "curve.png",
                   title=f"World Models ({config.mode}"
                   f"{f', tau {config.tau:g}' if config.mode == 'dream' else ''}) on {env_name}",
                   keys=("eval/episode_return", "eval/best_episode_return",
                         f"{prefix}/pop_mean_return"),
                   x_key="generation", x_label="CMA-ES generation",
                   reference=(float(random_returns.mean()),
                              f"random policy ({random_returns.size} episodes)"))
      if done_chunks == len(chunks) or (stage == "mdn" and last_of_stage):
        save_dream(wm, one, jax.random.fold_in(eval_key, 2_000_000 + done_chunks),
                   run.path / "dream.gif", run.path / "dream.png")
      bar.update(1)
      post = {"stage": stage}
      if stage == "es":
        post["eval"] = f"{record['eval/episode_return_mean']:.1f}"
        post[prefix] = f"{record[f'{prefix}/pop_mean_return_mean']:.1f}"
      else:
        post["loss"] = f"{record[f'{stage}/loss_mean']:.3f}"
      bar.set_postfix(post)
  finally:
    bar.close()
    ckpt.close()
  return run


def save_reconstructions(wm: wm_lib.WorldModels, state, path, *, frames: int = 12) -> float:
  """Draws ``frames`` random-policy frames of one seed (top) above V's reconstructions from the
  posterior mean (bottom); returns their per-pixel MSE."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  obs = np.asarray(state.data.obs)
  episodes, length = obs.shape[:2]
  rng = np.random.default_rng(0)
  picks = [(rng.integers(episodes), rng.integers(length)) for _ in range(frames)]
  images = np.stack([obs[e, t] for e, t in picks]).astype(np.float32) / 255.0
  mean, _ = wm.vae.encode(state.vae_params, images)
  recon = np.clip(np.asarray(wm.vae.decode(state.vae_params, mean)), 0.0, 1.0)
  mse = float(np.mean((recon - images) ** 2))
  grid = np.concatenate([np.concatenate(list(images), 1), np.concatenate(list(recon), 1)], 0)
  fig, ax = plt.subplots(figsize=(frames * 0.8, 2.0))
  ax.imshow(grid, interpolation="nearest")
  height = images.shape[1]
  ax.set_yticks([height * 0.5, height * 1.5])
  ax.set_yticklabels(["observed", "VAE"], fontsize=8)
  ax.set_xticks([])
  ax.set_title(f"V: observations (top) and reconstructions (bottom), per-pixel MSE {mse:.5f}",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return mse


def save_dream(wm: wm_lib.WorldModels, state, key, gif_path, png_path, *, scale: int = 8) -> dict:
  """A real episode of the CMA-ES mean controller and a dream by M from the same first frame,
  with the same controller acting on the dream: ``gif_path`` animates them side by side (real
  left, decoded dream right), ``png_path`` shows every 5th step as a strip. Returns both
  returns."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from PIL import Image, ImageDraw

  ctrl = wm.controller_mean(state.es)
  trace = jax.device_get(jax.jit(wm.dream_rollout)(ctrl, state.vae_params, state.mdn_params,
                                                   key))
  real, dream = np.asarray(trace["real"]), np.asarray(trace["dream"])
  real_ret = np.cumsum(trace["real_rewards"])
  dream_ret = np.cumsum(trace["dream_rewards"])
  frames = []
  for t in range(real.shape[0]):
    pair = np.concatenate([real[t], np.ones((real.shape[1], 1, 3)), dream[t]], 1)
    img = Image.fromarray((np.clip(pair, 0, 1) * 255).astype(np.uint8)).resize(
        (pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + 28), (255, 255, 255))
    canvas.paste(img, (0, 28))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"real t={t} R={real_ret[t]:.1f}", fill=(0, 0, 0))
    draw.text((img.width // 2 + 4, 2), f"dream R={dream_ret[t]:.1f}", fill=(0, 0, 0))
    frames.append(canvas)
  frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=120, loop=0)
  times = np.arange(0, real.shape[0], 5)
  grid = np.concatenate([np.concatenate([real[t] for t in times], 1),
                         np.concatenate([dream[t] for t in times], 1)], 0)
  fig, ax = plt.subplots(figsize=(len(times) * 0.8, 2.0))
  ax.imshow(np.clip(grid, 0, 1), interpolation="nearest")
  height, width = real.shape[1:3]
  ax.set_yticks([height * 0.5, height * 1.5])
  ax.set_yticklabels(["real", "dream"], fontsize=8)
  ax.set_xticks([width * (i + 0.5) for i in range(len(times))])
  ax.set_xticklabels([str(t) for t in times], fontsize=7)
  ax.set_xlabel("time step")
  ax.set_title(f"controller in reality (return {real_ret[-1]:.1f}) and in M's dream from the "
               f"same first frame (return {dream_ret[-1]:.1f})", fontsize=8)
  fig.tight_layout()
  fig.savefig(png_path, dpi=110)
  plt.close(fig)
  return {"real_return": float(real_ret[-1]), "dream_return": float(dream_ret[-1])}


def load_worldmodels_run(run_dir: str | pathlib.Path):
  """Rebuilds a World Models run from its folder: ``(built, state, config_dict, chunk)``."""
  return load_run(run_dir, "worldmodels", wm_lib.WorldModelsConfig, wm_lib.WorldModelsHyper,
                  _build, lambda built: built.wm.init)


def evaluate_worldmodels_run(run_dir: str | pathlib.Path, episodes: int = 5, seed: int = 123):
  """Real-env returns ``[seeds, episodes]`` of each seed's CMA-ES mean controller."""
  built, state, saved, step = load_worldmodels_run(run_dir)
  config = dataclasses.replace(built.config, eval_episodes=episodes)
  wm = wm_lib.make_worldmodels(built.env, config)
  keys = jax.random.split(jax.random.PRNGKey(seed), saved["seeds"])
  mean, _ = jax.jit(jax.vmap(wm.evaluate))(state, keys)
  return np.asarray(mean), saved, step
