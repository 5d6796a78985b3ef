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

import dataclasses
import difflib
import itertools
import json
import math
import os
import pathlib
import time
import typing
from collections.abc import Callable

import numpy as np

from wmjax.train.common import RunAxis
from wmjax.train.overrides import apply_overrides, parse_value
from wmjax.train.rundir import RunDir, to_jsonable

__all__ = ["Algo", "ALGOS", "Grid", "parse_grid", "run_sweep", "aggregate", "init_distributed",
           "bootstrap_ci", "iqm"]


@dataclasses.dataclass(frozen=True)
class Algo:
  """What the sweep needs of one agent's driver."""

  name: str
  defaults: Callable        # env_name -> (config, hyper)
  train: Callable           # the runner's train_<algo>(env_name, *, ..., run_axis, devices)
  length_arg: str = "steps"  # the keyword of train that sets the run's length
  default_length: Callable | None = None   # env_name -> length when --steps is not given


def _pets():
  from wmjax.agents import pets
  from wmjax.train.pets_runner import train_pets
  return Algo("pets", lambda env: (pets.default_config(env), pets.PETSHyper()), train_pets,
              default_length=lambda env: 2_000)


def _dreamer():
  from wmjax.agents import dreamer
  from wmjax.train.dreamer_runner import train_dreamer
  return Algo("dreamer", lambda env: (dreamer.default_config(env), dreamer.default_hyper(env)),
              train_dreamer, default_length=lambda env: 20_000)


def _muzero():
  from wmjax.agents import muzero
  from wmjax.train.muzero_runner import default_steps, train_muzero
  return Algo("muzero", lambda env: (muzero.default_config(env), muzero.default_hyper(env)),
              train_muzero, default_length=default_steps)


def _mbpo():
  from wmjax.agents import mbpo
  from wmjax.train.mbpo_runner import train_mbpo
  return Algo("mbpo", lambda env: (mbpo.default_config(env), mbpo.default_hyper(env)),
              train_mbpo, default_length=lambda env: 20_000)


def _worldmodels():
  from wmjax.agents import worldmodels
  from wmjax.train.worldmodels_runner import train_worldmodels
  return Algo("worldmodels",
              lambda env: (worldmodels.default_config(env), worldmodels.default_hyper(env)),
              train_worldmodels, length_arg="generations",
              default_length=lambda env: None)


def _dyna():
  from wmjax.agents import dyna
  from wmjax.train.dyna_runner import train_dyna
  return Algo("dyna", lambda env: (dyna.default_config(env), dyna.DynaHyper()), train_dyna,
              default_length=lambda env: 3_000)


# Built on first use: importing a driver imports its agent's libraries (mctx, pgx, evosax).
ALGOS: dict[str, Callable[[], Algo]] = {
    "pets": _pets, "dreamer": _dreamer, "muzero": _muzero, "mbpo": _mbpo,
    "worldmodels": _worldmodels, "dyna": _dyna,
}


@dataclasses.dataclass(frozen=True)
class Grid:
  """A parsed ``--grid``: the hyperparameter points (vmapped) and the static combinations
  (compiled one by one), each a dict field -> value."""

  points: tuple[dict, ...]
  static: tuple[dict, ...]
  hyper_fields: tuple[str, ...]
  static_fields: tuple[str, ...]


def _split_values(text: str) -> list[str]:
  """``a,b,c``; tuple-valued settings separate their values with ``|``: ``64,64|128,128``."""
  parts = text.split("|") if "|" in text else text.split(",")
  values = [p.strip() for p in parts if p.strip()]
  if not values:
    raise ValueError(f"no values in {text!r}")
  return values


def parse_grid(items: list[str], config, hyper) -> Grid:
  """Parses ``--grid name=v1,v2,...`` items against a config dataclass and a Hyper NamedTuple.

  A name that is neither gets an error listing both sets of fields (and the close ones).
  """
  config_fields = {f.name for f in dataclasses.fields(config)}
  hints = typing.get_type_hints(type(config))
  hyper_values: dict[str, list[float]] = {}
  static_values: dict[str, list] = {}
  for item in items:
    if "=" not in item:
      raise ValueError(f"--grid takes name=value1,value2,..., got {item!r}")
    name, text = (s.strip() for s in item.split("=", 1))
    if name in hyper_values or name in static_values:
      raise ValueError(f"--grid {name} is given twice")
    try:
      if name in hyper._fields:
        hyper_values[name] = [float(v) for v in _split_values(text)]
      elif name in config_fields:
        static_values[name] = [parse_value(v, hints.get(name), getattr(config, name))
                               for v in _split_values(text)]
      else:
        every = sorted(config_fields | set(hyper._fields))
        close = difflib.get_close_matches(name.split(".")[-1], every, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"--grid {name}: not a field of {type(config).__name__} or {type(hyper).__name__}."
            f"{hint} Hyperparameters (vmapped in one program): {', '.join(hyper._fields)}. "
            f"Static settings (one program per value): {', '.join(sorted(config_fields))}.")
    except ValueError as e:
      raise ValueError(f"--grid {item}: {e}") from e

  def product(values: dict) -> tuple[dict, ...]:
    names = list(values)
    return tuple(dict(zip(names, combo, strict=True)) for combo in itertools.product(
        *(values[n] for n in names)))
  return Grid(points=product(hyper_values), static=product(static_values),
              hyper_fields=tuple(hyper_values), static_fields=tuple(static_values))


def _label(d: dict) -> str:
  if not d:
    return "base"
  text = "_".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                  for k, v in d.items())
  return "".join(c if c.isalnum() or c in "=_,.-" else "-" for c in text)


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, auto: bool = False) -> tuple[int, int]:
  """Starts ``jax.distributed`` when asked: ``(process index, process count)``.

  From the arguments, else from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``; with ``auto``, JAX's own cluster detection (SLURM, Open MPI, Cloud TPU).
  Without any of these the sweep runs in this process alone. Only the coordination service is
  started here: this process never initialises a device backend (its children train).
  """
  import jax

  coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JAX_PROCESS_ID"):
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if not (auto or coordinator or num_processes):
    return 0, 1
  if not auto and (coordinator is None or num_processes is None or process_id is None):
    raise ValueError("multi-process sweeps need --coordinator HOST:PORT, --num-processes N and "
                     "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
                     "JAX_PROCESS_ID), or --distributed-auto on a cluster JAX detects")
  if auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  from jax._src.distributed import global_state  # the index without starting a backend

  return int(global_state.process_id), int(global_state.num_processes)


def _barrier(name: str, count: int, timeout_s: float = 7 * 24 * 3600) -> None:
  """Waits until every process of the sweep reaches ``name`` (jax.distributed's coordination
  service; no device is touched)."""
  if count > 1:
    from jax._src.distributed import global_state

    global_state.client.wait_at_barrier(name, int(timeout_s * 1000))


def cpu_core_devices() -> int:
  """How many devices a sweep on a CPU-only JAX splits its runs over: one per core.

  One XLA:CPU device runs most of its ops on one thread, so runs vmapped on it use about one
  core; split over one (fake) device per core they use all of them (``benchmarks/run_all.py``'s
  devices section: 8 PETS runs take 1.28 s on one device and 0.68 s over 8 fake devices on 2
  cores). 1 where that does not apply: an accelerator plugin is installed (and
  ``JAX_PLATFORMS`` does not force the CPU), or ``XLA_FLAGS`` already sets the device count.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return 1
  if not os.environ.get("JAX_PLATFORMS", "").startswith("cpu") and _accelerator_installed():
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(1, cores or 1)


def _accelerator_installed() -> bool:
  import importlib.metadata

  names = {(d.metadata["Name"] or "").lower().replace("_", "-")
           for d in importlib.metadata.distributions()}
  return any(n.startswith(("jax-cuda", "libtpu", "jax-rocm")) for n in names)


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
  algo = ALGOS[spec["algo"]]()
  axis = spec["axis"]
  run_axis = RunAxis(seed=axis["seed"], seeds=axis["seeds"], points=tuple(axis["points"]),
                     runs=tuple(tuple(r) for r in axis["runs"]))
  algo.train(spec["env"], **spec["kwargs"], run_axis=run_axis)


def _check_sweep_file(sweep_file: pathlib.Path, spec: dict, resume: bool) -> None:
  out = sweep_file.parent
  if sweep_file.exists():
    saved = json.loads(sweep_file.read_text())
    if not resume:
      raise FileExistsError(f"{out} already holds a sweep (sweep.json). Pass --resume to "
                            "continue it, or choose a new --out folder.")
    if {k: v for k, v in saved.items() if k != "created"} != to_jsonable(spec):
      raise ValueError(f"--resume: the sweep in {out} was started with other settings "
                       f"({json.dumps(saved)[:400]}); resume it with the same command.")
  elif resume:
    raise FileNotFoundError(f"--resume: {out} holds no sweep (no sweep.json) to resume")


def run_sweep(algo_name: str, env_name: str, *, out: str | pathlib.Path, seeds: int = 4,
              grid: list[str] = (), sets: list[str] = (), steps: int | None = None,
              seed: int = 0, devices: int | None = 0, resume: bool = False,
              metric: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print,
              process: tuple[int, int] = (0, 1)) -> dict | None:
  """Runs a sweep into ``out`` and (on process 0) writes and returns the aggregate.

  Every static combination is one program; its run axis is every hyperparameter point with every
  seed (``RunAxis``), split over ``devices`` local devices (0: all). With several processes
  (``process`` = (index, count), from :func:`init_distributed`) each trains its share of every
  program's runs in a child process, and process 0 aggregates after a barrier. ``resume``
  continues each program from its checkpoint (one that finished is left as it is) and starts
  those not yet begun.
  """
  if algo_name not in ALGOS:
    raise KeyError(f"unknown algorithm {algo_name!r}; sweeps know {', '.join(sorted(ALGOS))}")
  if seeds < 1:
    raise ValueError(f"--seeds must be >= 1, got {seeds}")
  algo = ALGOS[algo_name]()
  out = pathlib.Path(out)
  base_config, base_hyper = algo.defaults(env_name)
  base_config, base_hyper = apply_overrides(base_config, base_hyper, list(sets))
  parsed = parse_grid(list(grid), base_config, base_hyper)
  length = steps if steps is not None else algo.default_length(env_name)

  index, count = process
  spec = {"algo": algo_name, "env": env_name, "seeds": seeds, "seed": seed, "grid": list(grid),
          "sets": list(sets), algo.length_arg: length, "points": list(parsed.points),
          "static": [dict(s) for s in parsed.static], "processes": count}
  sweep_file = out / "sweep.json"
  if index == 0:   # process 0 alone decides whether the folder may be used, then the others
    _check_sweep_file(sweep_file, spec, resume)
    out.mkdir(parents=True, exist_ok=True)
    if not sweep_file.exists():
      sweep_file.write_text(json.dumps(to_jsonable(
          {**spec, "created": time.strftime("%Y-%m-%d %H:%M:%S")}), indent=2) + "\n")
  _barrier("wmjax-sweep-start", count, timeout_s=3600)
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
    folder = out / (_label(static) + (f"-part{index}" if count > 1 else ""))
    static_sets = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                   for k, v in static.items()]
    axis = RunAxis(seed=seed, seeds=seeds, points=parsed.points, runs=mine)
    again = (folder / "config.json").exists()
    if again and not resume:
      raise FileExistsError(f"{folder} already holds a run; pass --resume")
    log(f"  program {_label(static)}: {axis.size} run(s) -> {folder}")
    kwargs = {algo.length_arg: length} if length is not None else {}
    kwargs.update(seeds=seeds, out=str(folder), sets=[*sets, *static_sets], resume=again,
                  seed=seed, progress=progress, devices=devices)
    if count > 1 or split > 1:
      _train_in_child({"algo": algo_name, "env": env_name, "kwargs": kwargs,
                       "axis": axis.to_dict()}, folder, cpu_devices=split)
    else:
      algo.train(env_name, **kwargs, run_axis=axis)
  _barrier("wmjax-sweep-done", count)
  if index != 0:
    return None
  summary = aggregate(out, metric=metric)
  log(summary["table_markdown"])
  return summary


def bootstrap_ci(values, stat=np.mean, samples: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
  """Percentile bootstrap interval of ``stat`` over ``values`` (resampled with replacement)."""
  values = np.asarray(values, float)
  if values.size == 0:
    return math.nan, math.nan
  if values.size == 1:
    return float(values[0]), float(values[0])
  rng = np.random.default_rng(seed)
  draws = values[rng.integers(0, values.size, size=(samples, values.size))]
  stats = np.apply_along_axis(stat, 1, draws) if stat is not np.mean else draws.mean(axis=1)
  lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
  return float(lo), float(hi)


def iqm(values) -> float:
  """Interquartile mean: the mean of the values left after cutting ``floor(n / 4)`` from each
  end (``scipy.stats.trim_mean(values, 0.25)``, which rliable's IQM is)."""
  x = np.sort(np.asarray(values, float))
  if x.size == 0:
    return math.nan
  cut = int(0.25 * x.size)
  return float(x[cut:x.size - cut].mean())


def _runs_of(folder: pathlib.Path):
  """``(config, run axis, metrics)`` of a run folder (a line cut short by a kill is skipped)."""
  run = RunDir(folder, resume=True)
  config = run.read_config()
  return config, RunAxis.from_saved(config), run.read_metrics()


def _pick_metric(lines: list[dict]) -> str | None:
  keys = {k for r in lines for k in r}
  for name in ("eval/episode_return", "eval/win_vs_greedy", "eval/steps_to_goal",
               "train/episode_return"):
    if name in keys:
      return name
  return None


def aggregate(out: str | pathlib.Path, metric: str | None = None) -> dict:
  """Reads every run folder of a sweep and writes ``summary.json``, ``summary.md`` and
  ``sweep.png``: per program and hyperparameter point, the final ``metric`` (default: the eval
  return, else the MuZero win rate against greedy, else the train return) per seed, its mean
  with a 95% bootstrap interval, and its IQM with one."""
  out = pathlib.Path(out)
  spec = json.loads((out / "sweep.json").read_text())
  static_labels = [_label(s) for s in spec["static"]]
  points = [dict(p) for p in spec["points"]]
  finals: dict[tuple[int, int], dict[int, float]] = {}
  curves: dict[tuple[int, int], dict[int, list[tuple[float, float]]]] = {}
  for folder in sorted(p for p in out.iterdir() if (p / "config.json").exists()):
    label = folder.name.rsplit("-part", 1)[0]
    if label not in static_labels:
      continue
    c = static_labels.index(label)
    _, axis, lines = _runs_of(folder)
    metric = metric or _pick_metric(lines)
    if metric is None:
      continue
    for r, (p, s) in enumerate(axis.runs):
      for line in lines:
        if metric in line and line[metric] is not None:
          v = line[metric][r]
          if v is None:
            continue
          x = line.get("env_steps", line.get("iteration"))
          curves.setdefault((c, p), {}).setdefault(s, []).append((float(x), float(v)))
          finals.setdefault((c, p), {})[s] = float(v)
  rows = []
  for c, static in enumerate(spec["static"]):
    for p, point in enumerate(points):
      per_seed = finals.get((c, p), {})
      values = np.asarray([per_seed[s] for s in sorted(per_seed)], float)
      lo, hi = bootstrap_ci(values)
      ilo, ihi = bootstrap_ci(values, stat=iqm)
      rows.append({"program": static_labels[c], "static": static, "hyper": point,
                   "seeds_done": int(values.size),
                   "final_per_seed": {int(s): per_seed[s] for s in sorted(per_seed)},
                   "mean": float(values.mean()) if values.size else None,
                   "ci95": [lo, hi], "iqm": iqm(values), "iqm_ci95": [ilo, ihi]})
  table = _markdown(rows, metric, spec)
  summary = {"algo": spec["algo"], "env": spec["env"], "metric": metric, "rows": rows,
             "table_markdown": table}
  (out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
  (out / "summary.md").write_text(table + "\n")
  _plot(out / "sweep.png", curves, rows, spec, metric)
  return summary


def _fmt(x) -> str:
  return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def _markdown(rows: list[dict], metric: str | None, spec: dict) -> str:
  head = (f"Sweep of {spec['algo']} on {spec['env']}: final `{metric}` over seeds "
          "(mean with 95% bootstrap interval; IQM = interquartile mean, with its interval)\n\n"
          "| program | hyperparameters | seeds | mean | 95% CI | IQM | IQM 95% CI |\n"
          "|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    hyper = ", ".join(f"{k}={v:g}" for k, v in r["hyper"].items()) or "-"
    lines.append(f"| {r['program']} | {hyper} | {r['seeds_done']} | {_fmt(r['mean'])} | "
                 f"[{_fmt(r['ci95'][0])}, {_fmt(r['ci95'][1])}] | {_fmt(r['iqm'])} | "
                 f"[{_fmt(r['iqm_ci95'][0])}, {_fmt(r['iqm_ci95'][1])}] |")
  return "\n".join(lines)


def _plot(path: pathlib.Path, curves: dict, rows: list[dict], spec: dict, metric) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(12, 4.5))
  for i, r in enumerate(rows):
    key = divmod(i, len(spec["points"]))     # rows are program-major, then point
    key = key if key in curves else None
    name = r["program"] if len(spec["static"]) > 1 else ""
    hyper = ", ".join(f"{k}={v:g}" for k, v in r["hyper"].items())
    name = ", ".join(x for x in (name, hyper) if x) or "base"
    color = f"C{i % 10}"
    if key is not None:
      per_seed = curves[key]
      xs = sorted({x for pts in per_seed.values() for x, _ in pts})
      table = np.full((len(per_seed), len(xs)), np.nan)
      for j, pts in enumerate(per_seed.values()):
        for x, v in pts:
          table[j, xs.index(x)] = v
      mean = np.nanmean(table, axis=0)
      band = np.asarray([bootstrap_ci(col[np.isfinite(col)], samples=1000) for col in table.T])
      ax_curve.plot(xs, mean, color=color, label=name, marker="o", markersize=3)
      ax_curve.fill_between(xs, band[:, 0], band[:, 1], color=color, alpha=0.2)
    if r["mean"] is not None:
      ax_bar.errorbar([i - 0.1], [r["mean"]], yerr=[[r["mean"] - r["ci95"][0]],
                                                     [r["ci95"][1] - r["mean"]]],
                      fmt="o", color=color, capsize=4)
      ax_bar.errorbar([i + 0.1], [r["iqm"]], yerr=[[r["iqm"] - r["iqm_ci95"][0]],
                                                    [r["iqm_ci95"][1] - r["iqm"]]],
                      fmt="s", color=color, capsize=4, mfc="white")
  ax_curve.set_xlabel("env steps")
  ax_curve.set_ylabel(metric or "metric")
  ax_curve.set_title(f"{spec['algo']} on {spec['env']}: mean over seeds, 95% bootstrap band")
  if rows:
    ax_curve.legend(fontsize=8)
  ax_bar.set_xticks(range(len(rows)))
  ax_bar.set_xticklabels([", ".join(f"{k}={v:g}" for k, v in r["hyper"].items()) or r["program"]
                          for r in rows], rotation=30, ha="right", fontsize=8)
  ax_bar.set_title("final: mean (circle) and IQM (square), 95% CI")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":   # a program of a sweep in a child process (see _train_in_child)
  import sys

  _train_share(json.loads(pathlib.Path(sys.argv[1]).read_text()))

