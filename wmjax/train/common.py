"""Pieces every training driver shares: seed-stacked hyperparameters, configs from JSON,
finiteness checks."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainingDiverged", "stack_hyper", "config_from_dict", "all_finite", "bad_seeds",
           "config_dict", "load_run", "restore_or_init"]


class TrainingDiverged(RuntimeError):
  pass


def stack_hyper(hyper, seeds: int):
  """A Hyper NamedTuple of floats -> the same with ``[seeds]`` float32 arrays (vmapped axis)."""
  return type(hyper)(*(jnp.full((seeds,), float(v), jnp.float32) for v in hyper))


def config_from_dict(config_cls, hyper_cls, d: dict):
  """Rebuilds ``(config, hyper)`` from a run folder's ``config.json`` (lists back to tuples)."""
  cfg = dict(d["config"])
  for name, value in cfg.items():
    if isinstance(value, list):
      cfg[name] = tuple(value)
  return config_cls(**cfg), hyper_cls(**d["hyper"])


def all_finite(tree) -> jax.Array:
  """bool []: every array in ``tree`` is finite."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def bad_seeds(values: np.ndarray) -> list[int]:
  return [int(i) for i in np.flatnonzero(~np.isfinite(values))]


def config_dict(algo: str, env_name: str, steps: int, seeds: int, seed: int, config,
                hyper, derived: dict) -> dict:
  return {
      "algo": algo, "env": env_name, "steps": steps, "seeds": seeds, "seed": seed,
      "config": dataclasses.asdict(config), "hyper": hyper._asdict(), "derived": derived,
      "jax": {"version": jax.__version__, "backend": jax.default_backend()},
  }


def load_run(run_dir: str | pathlib.Path, algo: str, config_cls, hyper_cls, build, init_of):
  """Rebuilds a run from its folder at its last checkpoint: ``(built, state, saved, step)``.

  ``build(env, steps, config, hyper)`` is the driver's builder; ``init_of(built)`` its agent's
  ``init(key, hyper)``, whose (seed-vmapped) output structure the checkpoint is restored into.
  """
  from wmjax.train.checkpoint import Checkpointer
  from wmjax.train.rundir import RunDir

  if not (pathlib.Path(run_dir) / "config.json").exists():
    raise FileNotFoundError(f"{run_dir} holds no run (no config.json); pass a folder written "
                            "by `wmjax train`.")
  run = RunDir(run_dir, resume=True)
  saved = run.read_config()
  if saved["algo"] != algo:
    raise ValueError(f"{run.path} is a {saved['algo']} run, not {algo}")
  config, hyper = config_from_dict(config_cls, hyper_cls, saved)
  built = build(saved["env"], saved["steps"], config, hyper)
  keys = jax.random.split(jax.random.PRNGKey(saved["seed"]), saved["seeds"])
  abstract = jax.eval_shape(jax.vmap(init_of(built)), keys, stack_hyper(hyper, saved["seeds"]))
  ckpt = Checkpointer(run.checkpoint_dir)
  try:
    if ckpt.latest_step() is None:
      raise FileNotFoundError(f"{run.path} has no checkpoint yet (checkpoints/ is empty)")
    step, state = ckpt.restore(abstract)
  finally:
    ckpt.close()
  return built, state, saved, step


def restore_or_init(run, ckpt, init_fn, keys, hypers, resume: bool, on_init=None):
  """The start of every driver: ``(state, done_chunks, wall_offset)``.

  With ``resume`` and a checkpoint: restore the newest one that restores (into ``init_fn``'s
  output structure; a corrupt or unfinished newer one is skipped with a
  ``CheckpointFallbackWarning`` naming it, see ``Checkpointer.restore``), drop the metrics logged
  after the step restored and continue the wall clock from there. If checkpoints exist but none
  restores, ``UnrestorableCheckpointError`` (a FileNotFoundError) is raised: a run is never
  silently restarted from scratch. Otherwise clear the metrics and call ``init_fn(keys,
  hypers)``, after ``on_init()`` (e.g. a progress-bar note).
  """
  if resume and ckpt.latest_step() is not None:
    abstract = jax.eval_shape(init_fn, keys, hypers)
    done, state = ckpt.restore(abstract)
    run.truncate_metrics(done)
    prior = run.read_metrics()
    return state, done, (prior[-1]["wall_s"] if prior else 0.0)
  run.truncate_metrics(-1)
  if on_init is not None:
    on_init()
  return init_fn(keys, hypers), 0, 0.0
