"""Pieces every training driver shares: seed-stacked hyperparameters, configs from JSON,
finiteness checks."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainingDiverged", "stack_hyper", "config_from_dict", "all_finite", "bad_seeds",
           "config_dict", "restore_or_init", "RunAxis", "run_mesh", "run_sharding",
           "place_runs", "SweepTooLarge", "check_memory", "tree_bytes", "resolve_axis",
           "axis_inputs", "memory_limit", "check_run_memory"]


class TrainingDiverged(RuntimeError):
  pass


def stack_hyper(hyper, seeds: int):
  """A Hyper NamedTuple of floats -> the same with ``[seeds]`` float32 arrays (vmapped axis)."""
  return type(hyper)(*(jnp.full((seeds,), float(v), jnp.float32) for v in hyper))


@dataclasses.dataclass(frozen=True)
class RunAxis:
  """The vmapped run axis of a training program: which seed and which hyperparameter point each
  run has.

  ``points`` are hyperparameter overrides (Hyper field -> float); ``runs`` lists ``(point,
  seed index)`` per run, in the order of the axis. Seed ``i`` of a run folder with base seed
  ``seed`` always gets the key ``split(PRNGKey(seed), seeds)[i]``, whatever its point, so runs
  that differ only in a hyperparameter share their random numbers (and a plain run's keys are
  those of ``train --seeds``).
  """

  seed: int
  seeds: int                                    # seed indices are 0 .. seeds - 1
  points: tuple[dict, ...] = ({},)
  runs: tuple[tuple[int, int], ...] | None = None   # None: every point with every seed

  def __post_init__(self):
    if self.seeds < 1:
      raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
    if self.runs is None:
      object.__setattr__(self, "runs", tuple((p, s) for p in range(len(self.points))
                                             for s in range(self.seeds)))
    for p, s in self.runs:
      if not (0 <= p < len(self.points) and 0 <= s < self.seeds):
        raise ValueError(f"run (point {p}, seed {s}) is outside {len(self.points)} points x "
                         f"{self.seeds} seeds")

  @property
  def size(self) -> int:
    return len(self.runs)

  def keys(self) -> jax.Array:
    """``[runs, 2]`` PRNG keys."""
    base = jax.random.split(jax.random.PRNGKey(self.seed), self.seeds)
    return base[np.asarray([s for _, s in self.runs], np.int32)]

  def hypers(self, hyper):
    """``hyper`` (a NamedTuple of floats) with each run's point applied, as ``[runs]`` float32
    arrays."""
    for point in self.points:
      unknown = sorted(set(point) - set(hyper._fields))
      if unknown:
        raise KeyError(f"{', '.join(unknown)}: not hyperparameters of {type(hyper).__name__} "
                       f"({', '.join(hyper._fields)})")
    rows = [hyper._replace(**self.points[p]) for p, _ in self.runs]
    return type(hyper)(*(jnp.asarray([float(getattr(r, f)) for r in rows], jnp.float32)
                         for f in hyper._fields))

  def to_dict(self) -> dict:
    return {"seed": self.seed, "seeds": self.seeds, "points": list(self.points),
            "runs": [list(r) for r in self.runs]}

  @classmethod
  def from_saved(cls, saved: dict) -> RunAxis:
    """From a run folder's ``config.json`` (folders written before sweeps: seeds only)."""
    axis = saved.get("run_axis")
    if axis is None:
      return cls(seed=saved["seed"], seeds=saved["seeds"])
    return cls(seed=axis["seed"], seeds=axis["seeds"], points=tuple(axis["points"]),
               runs=tuple(tuple(r) for r in axis["runs"]))


def run_mesh(runs: int, devices: int | None = 1):
  """A 1-D ``Mesh`` named ``runs`` over the local devices that the run axis is split across, or
  None for one device.

  ``devices``: how many local devices to use; 0 or None: all of them. The count actually used
  is the largest that divides ``runs`` (every device gets the same number of runs).
  """
  from jax.sharding import Mesh

  local = jax.local_devices()
  want = len(local) if not devices else devices
  if want > len(local):
    raise ValueError(f"--devices {devices}: only {len(local)} local device(s) "
                     f"({local[0].platform}) are available")
  use = max(d for d in range(1, want + 1) if runs % d == 0)
  if use == 1:
    return None
  return Mesh(np.asarray(local[:use]), ("runs",))


def run_sharding(mesh):
  """``NamedSharding(mesh, P("runs"))``: arrays with a leading run axis split over ``mesh``; None
  for no mesh."""
  if mesh is None:
    return None
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  return NamedSharding(mesh, P("runs"))


def place_runs(tree, mesh):
  """Puts every array of ``tree`` (leading axis: runs) on ``mesh``, split along the run axis
  (:func:`run_sharding`); jitted vmapped programs on such inputs then run each device's runs on
  that device (GSPMD). With ``mesh`` None, ``tree`` is returned as it is."""
  if mesh is None:
    return tree
  return jax.device_put(tree, run_sharding(mesh))


class SweepTooLarge(RuntimeError):
  """The runs asked for would not fit in device memory."""


def tree_bytes(tree) -> int:
  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def device_memory_bytes() -> int:
  """Memory of one local device: the allocator's limit on GPU/TPU, physical memory on CPU."""
  device = jax.local_devices()[0]
  stats = None
  try:
    stats = device.memory_stats()
  except Exception:  # CPU backends may not implement it
    stats = None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"])
  import os

  return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(abstract_state, runs: int, mesh, limit_bytes: int | None = None,
                 factor: float = 3.0) -> dict:
  """Stops a run axis too large for device memory before anything is allocated.

  The estimate is ``factor`` x the training state of the runs each device holds (replay buffers
  included): the state going into an iteration, the one coming out, and room for the
  iteration's own temporaries. Raises :class:`SweepTooLarge` with the estimate and the number of
  runs per device that would fit; returns the estimate otherwise.
  """
  per_run = tree_bytes(abstract_state) / max(runs, 1)
  per_device_runs = runs // (1 if mesh is None else mesh.size)
  need = factor * per_run * per_device_runs
  limit = device_memory_bytes() if limit_bytes is None else int(limit_bytes)
  info = {"state_bytes_per_run": int(per_run), "runs_per_device": per_device_runs,
          "estimate_bytes": int(need), "device_bytes": limit}
  if need > limit:
    fits = int(limit // (factor * per_run))
    raise SweepTooLarge(
        f"{per_device_runs} run(s) per device need about {need / 2**30:.2f} GiB "
        f"({factor:g} x {per_run / 2**20:.1f} MiB of training state per run, replay included), "
        f"more than the {limit / 2**30:.2f} GiB of one device. Use at most {max(fits, 0)} run(s) "
        f"per device: fewer seeds or grid points, more devices (--devices), or a smaller "
        f"replay/batch setting.")
  return info


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


def return_postfix(record: dict, evaluated: bool) -> dict:
  """The progress-bar fields every return-based agent shows: the mean training episode return
  (when an episode ended in the chunk) and, when the chunk evaluated, the mean eval return."""
  post = {}
  if record.get("train/episode_return_mean") is not None:
    post["return"] = f"{record['train/episode_return_mean']:.1f}"
  if evaluated:
    post["eval"] = f"{record['eval/episode_return_mean']:.1f}"
  return post


def config_dict(algo: str, env_name: str, steps: int, seeds: int, seed: int, config,
                hyper, derived: dict, run_axis: RunAxis | None = None) -> dict:
  """A run folder's ``config.json``. ``seeds`` there is the number of runs on the vmapped axis;
  ``run_axis`` (when given) which seed and hyperparameter point each of them is."""
  d = {
      "algo": algo, "env": env_name, "steps": steps, "seeds": seeds, "seed": seed,
      "config": dataclasses.asdict(config), "hyper": hyper._asdict(), "derived": derived,
      "jax": {"version": jax.__version__, "backend": jax.default_backend()},
  }
  if run_axis is not None:
    d["seeds"] = run_axis.size
    d["run_axis"] = run_axis.to_dict()
  return d


def resolve_axis(resume: bool, saved: dict | None, seeds: int, seed: int,
                 run_axis: RunAxis | None) -> RunAxis:
  """The run axis of a run being started (``run_axis``, else ``seeds`` plain seeds) or resumed
  (from its ``config.json``)."""
  if resume:
    return RunAxis.from_saved(saved)
  if run_axis is not None:
    return run_axis
  if seeds < 1:
    raise ValueError(f"--seeds must be >= 1, got {seeds}")
  return RunAxis(seed=seed, seeds=seeds)


def axis_inputs(axis: RunAxis, hyper, devices: int | None = 1):
  """``(keys [R], hypers [R], mesh)`` for a run axis, placed on the mesh of ``devices`` local
  devices (see :func:`run_mesh`)."""
  mesh = run_mesh(axis.size, devices)
  keys, hypers = place_runs((axis.keys(), axis.hypers(hyper)), mesh)
  return keys, hypers, mesh


def memory_limit() -> int | None:
  """``WMJAX_DEVICE_MEMORY`` (bytes, or with a unit: 512MiB, 2GiB, 80GB), if set."""
  import os
  import re

  text = os.environ.get("WMJAX_DEVICE_MEMORY", "").strip()
  if not text:
    return None
  m = re.fullmatch(r"([0-9.]+)\s*([KMGT]i?B|B)?", text, flags=re.IGNORECASE)
  if not m:
    raise ValueError(f"WMJAX_DEVICE_MEMORY={text!r}: expected bytes, e.g. 2GiB or 500MB")
  unit = (m.group(2) or "B").upper()
  scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20,
           "GIB": 2**30, "TIB": 2**40}[unit]
  return int(float(m.group(1)) * scale)


def check_run_memory(run, ckpt, abstract_state, mesh, resume: bool) -> dict:
  """:func:`check_memory` for a driver about to start: the run axis is the leading axis of
  ``abstract_state``; a new run folder is removed again (nothing was trained) if it stops."""
  runs = int(jax.tree.leaves(abstract_state)[0].shape[0])
  try:
    return check_memory(abstract_state, runs, mesh, memory_limit())
  except SweepTooLarge:
    if not resume:
      ckpt.close()
      run.discard()
    raise


def restore_or_init(run, ckpt, init_fn, keys, hypers, resume: bool, on_init=None, mesh=None):
  """The start of every driver: ``(state, done_chunks, wall_offset)``.

  First the memory check (:func:`check_memory`, against ``WMJAX_DEVICE_MEMORY`` where set): a
  run axis too large for a device stops here with :class:`SweepTooLarge`.

  With ``resume`` and a checkpoint: restore the newest one that restores (into ``init_fn``'s
  output structure; a corrupt or unfinished newer one is skipped with a
  ``CheckpointFallbackWarning`` naming it, see ``Checkpointer.restore``), drop the metrics logged
  after the step restored and continue the wall clock from there. If checkpoints exist but none
  restores, ``UnrestorableCheckpointError`` (a FileNotFoundError) is raised: a run is never
  silently restarted from scratch. Otherwise clear the metrics and call ``init_fn(keys,
  hypers)``, after ``on_init()`` (e.g. a progress-bar note). The state is placed on ``mesh``
  (split along the run axis) when one is given.
  """
  abstract = jax.eval_shape(init_fn, keys, hypers)
  check_run_memory(run, ckpt, abstract, mesh, resume)
  if resume and ckpt.latest_step() is not None:
    done, state = ckpt.restore(abstract, sharding=run_sharding(mesh))
    run.truncate_metrics(done)
    prior = run.read_metrics()
    return place_runs(state, mesh), done, (prior[-1]["wall_s"] if prior else 0.0)
  run.truncate_metrics(-1)
  if on_init is not None:
    on_init()
  return place_runs(init_fn(keys, hypers), mesh), 0, 0.0
