"""Sweeps: many runs of one agent as few compiled programs, on every local device and host.

``wmjax sweep ALGO --env ENV --seeds 8 --grid learning_rate=1e-3,3e-4 --grid horizon=10,20``:

- a grid over a field of the agent's ``Hyper`` (learning rates, discounts, temperatures: arrays
  inside the program) adds hyperparameter *points* on the run axis: every point with every seed is
  one run of one vmapped program;
- a grid over a field of the agent's ``Config`` (shapes, horizons, sizes: they decide what is
  compiled) makes one program per value (per combination), run one after another;
- the run axis of each program is split over the local devices (``jax.sharding``: a 1-D ``Mesh``
  named ``runs`` and ``NamedSharding(mesh, P("runs"))``; see :func:`wmjax.train.common.run_mesh`);
- with several processes (``jax.distributed``), each process trains its share of every program's
  runs and writes its own run folder; process 0 waits for all (a barrier of jax.distributed's
  coordination service) and writes the aggregate. The sweep folder must be on a filesystem every
  host sees. Each share is trained by a child process that is an ordinary one-process JAX
  program on the host's devices: the runs are independent, so no arrays cross hosts, and each
  share keeps its own orbax checkpoints (orbax's multi-process mode writes one checkpoint of
  global arrays from all processes together, which separate programs per host cannot share).

The sweep folder holds ``sweep.json`` (what was asked), one run folder per program (and process),
and the aggregate: ``summary.json``, ``summary.md`` and ``sweep.png`` (per grid point: the mean of
the final metric over seeds with a 95% percentile-bootstrap interval, and the interquartile mean,
IQM, that rliable recommends for few seeds; the curve of the metric against env steps with its
bootstrap band).
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable

import numpy as np

from wmjax.train.common import RunAxis
from wmjax.train.distributed import barrier, cpu_core_devices, init_distributed
from wmjax.train.grid import Grid, grid_label, parse_grid
from wmjax.train.report import aggregate, bootstrap_ci, iqm
from wmjax.train.rundir import to_jsonable

__all__ = ["Grid", "parse_grid", "run_sweep", "aggregate", "init_distributed", "bootstrap_ci",
           "iqm", "cpu_core_devices"]


def _train_in_child(spec: dict, folder: pathlib.Path, cpu_devices: int = 1) -> None:
  """Trains one program (or one process's share of it) in a child process, an ordinary
  one-process JAX program; with ``cpu_devices`` > 1 on as many fake CPU devices."""
  import subprocess
  import sys

  spec_file = folder.parent / f".{folder.name}.json"
  spec_file.write_text(json.dumps(to_jsonable(spec)))
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
  if cpu_devices > 1:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
                        f"{cpu_devices}").strip()
  result = subprocess.run([sys.executable, "-m", "wmjax.train.sweep", str(spec_file)], env=env)
  if result.returncode != 0:
    raise RuntimeError(f"training {folder} failed (exit code {result.returncode}); its output "
                       "is above. Fix the cause and run the same command with --resume.")
  spec_file.unlink()


def _train_share(spec: dict) -> None:
  """The child's side of :func:`_train_in_child`."""
  from wmjax.train.loop import train

  axis = spec["axis"]
  run_axis = RunAxis(seed=axis["seed"], seeds=axis["seeds"], points=tuple(axis["points"]),
                     runs=tuple(tuple(r) for r in axis["runs"]))
  train(spec["algo"], spec["env"], **spec["kwargs"], run_axis=run_axis,
        echo=lambda line: print(f"    {line}", flush=True))


def _check_sweep_file(sweep_file: pathlib.Path, spec: dict, resume: bool) -> None:
  out = sweep_file.parent
  if sweep_file.exists():
    saved = json.loads(sweep_file.read_text())
    if not resume:
      raise FileExistsError(f"{out} already holds a sweep (sweep.json). Pass --resume to "
                            "continue it, or choose a new --out folder.")
    expected = to_jsonable(spec)
    if "preset" not in saved:   # a sweep.json written before sweeps took --preset
      expected.pop("preset", None)
    if {k: v for k, v in saved.items() if k != "created"} != expected:
      raise ValueError(f"--resume: the sweep in {out} was started with other settings "
                       f"({json.dumps(saved)[:400]}); resume it with the same command.")
  elif resume:
    raise FileNotFoundError(f"--resume: {out} holds no sweep (no sweep.json) to resume")


def run_sweep(algo_name: str, env_name: str, *, out: str | pathlib.Path, seeds: int = 4,
              grid: list[str] = (), sets: list[str] = (), steps: int | None = None,
              seed: int = 0, devices: int | None = 0, resume: bool = False,
              metric: str | None = None, progress: bool = True, preset: str | None = None,
              minutes: float | None = None, log: Callable[[str], None] = print,
              process: tuple[int, int] = (0, 1)) -> dict | None:
  """Runs a sweep into ``out`` and (on process 0) writes and returns the aggregate.

  Every static combination is one program; its run axis is every hyperparameter point with every
  seed (``RunAxis``), split over ``devices`` local devices (0: all). With several processes
  (``process`` = (index, count), from :func:`init_distributed`) each trains its share of every
  program's runs in a child process, and process 0 aggregates after a barrier. ``resume``
  continues each program from its checkpoint (one that finished is left as it is) and starts
  those not yet begun. ``preset`` names the preset every run starts from (default: the env's
  tuned one, else the device's generic one), as ``wmjax train --preset``. ``minutes``: a
  wall-clock budget for the whole sweep; the program running when it ends stops after its chunk
  (evaluated and checkpointed, as ``wmjax train --minutes``), programs not begun are left, and
  ``resume`` continues both. The aggregate is then of what has run.
  """
  from wmjax.train.algos import algo_names, get_algo
  from wmjax.train.loop import settings_for
  from wmjax.train.overrides import validate_hyper

  trainable = algo_names(trainable_only=True)
  if algo_name not in trainable:
    raise KeyError(f"unknown algorithm {algo_name!r}; sweeps know "
                   f"{', '.join(sorted(trainable))}")
  if seeds < 1:
    raise ValueError(f"--seeds must be >= 1, got {seeds}")
  if steps is not None and steps < 1:
    raise ValueError(f"--steps must be >= 1, got {steps}")
  if minutes is not None and not minutes > 0:
    raise ValueError(f"--minutes must be > 0, got {minutes}")
  deadline = None if minutes is None else time.time() + 60 * minutes
  algo = get_algo(algo_name)
  out = pathlib.Path(out)
  base_config, base_hyper, resolved = settings_for(algo, env_name, sets, preset)
  parsed = parse_grid(list(grid), base_config, base_hyper)
  for point in parsed.points:
    validate_hyper(base_hyper._replace(**point))
  length = steps if steps is not None else resolved.steps

  index, count = process
  spec = {"algo": algo_name, "env": env_name, "seeds": seeds, "seed": seed, "grid": list(grid),
          "sets": list(sets), "preset": resolved.name, algo.length_name: length,
          "points": list(parsed.points), "static": [dict(s) for s in parsed.static],
          "processes": count}
  sweep_file = out / "sweep.json"
  if index == 0:   # process 0 alone decides whether the folder may be used, then the others
    _check_sweep_file(sweep_file, spec, resume)
    out.mkdir(parents=True, exist_ok=True)
    if not sweep_file.exists():
      sweep_file.write_text(json.dumps(to_jsonable(
          {**spec, "created": time.strftime("%Y-%m-%d %H:%M:%S")}), indent=2) + "\n")
  barrier("wmjax-sweep-start", count, timeout_s=3600)
  if index > 0:
    _check_sweep_file(sweep_file, spec, resume=True)

  all_runs = [(p, s) for p in range(len(parsed.points)) for s in range(seeds)]
  shares = np.array_split(np.arange(len(all_runs)), count)
  mine = tuple(all_runs[i] for i in shares[index])
  log(f"sweep {algo_name} on {env_name}: {len(parsed.static)} program(s) x "
      f"{len(parsed.points)} hyperparameter point(s) x {seeds} seed(s) = "
      f"{len(parsed.static) * len(all_runs)} runs"
      + (f"; process {index} of {count} takes {len(mine)} run(s) of each program" if count > 1
         else ""))
  split = cpu_core_devices() if count == 1 and not devices else 1
  if split > 1:
    log(f"  CPU only: each program runs in a child process with its runs split over {split} "
        "CPU devices, one per core")
  for static in parsed.static:
    if not mine:
      continue
    folder = out / (grid_label(static) + (f"-part{index}" if count > 1 else ""))
    static_sets = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                   for k, v in static.items()]
    axis = RunAxis(seed=seed, seeds=seeds, points=parsed.points, runs=mine)
    again = (folder / "config.json").exists()
    if again and not resume:
      raise FileExistsError(f"{folder} already holds a run; pass --resume")
    kwargs = {"steps": length} if length is not None else {}
    if deadline is not None:
      left = (deadline - time.time()) / 60
      if left <= 0:
        log(f"  program {grid_label(static)}: not begun, the {minutes:g}-minute budget is "
            f"spent; continue with --resume --out {out}")
        continue
      kwargs["minutes"] = left
    log(f"  program {grid_label(static)}: {axis.size} run(s) -> {folder}")
    kwargs.update(seeds=seeds, out=str(folder), sets=[*sets, *static_sets], resume=again,
                  seed=seed, progress=progress, devices=devices,
                  preset=None if again else preset)
    if count > 1 or split > 1:
      _train_in_child({"algo": algo_name, "env": env_name, "kwargs": kwargs,
                       "axis": axis.to_dict()}, folder, cpu_devices=split)
    else:
      from wmjax.train.loop import train

      train(algo_name, env_name, **kwargs, run_axis=axis, echo=lambda line: log(f"    {line}"))
  barrier("wmjax-sweep-done", count)
  if index != 0:
    return None
  summary = aggregate(out, metric=metric)
  log(summary["table_markdown"])
  return summary


if __name__ == "__main__":   # a program of a sweep in a child process (see _train_in_child)
  import sys

  _train_share(json.loads(pathlib.Path(sys.argv[1]).read_text()))


