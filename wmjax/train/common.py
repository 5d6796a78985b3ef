"""Pieces every training driver shares: seed-stacked hyperparameters, configs from JSON,
finiteness checks."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainingDiverged", "stack_hyper", "config_from_dict", "all_finite", "bad_seeds"]


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
