"""``wmjax sweep``: seeds x a hyperparameter grid as few compiled programs."""

from __future__ import annotations

import pathlib
from typing import Annotated

import typer

from wmjax.cli.common import (
    ENV_OPTIONS_HELP,
    SeedOption,
    app,
    at_least_one,
    default_out,
    fail,
    non_negative,
)

__all__ = []


@app.command("sweep")
def sweep(
    algo: Annotated[str, typer.Argument(
        help="Agent: any of `wmjax train`'s (pets, dreamer, mbpo, trpo, muzero, worldmodels, "
        "dyna; offline: mopo, morel, iql); `wmjax presets` lists their settings.")],
    env: Annotated[str | None, typer.Option(
        help="Environment, suite/name (see `wmjax envs`); for an offline agent, default: its "
        "dataset's." + ENV_OPTIONS_HELP)] = None,
    dataset: Annotated[pathlib.Path | None, typer.Option(
        help="Offline agents (mopo, morel, iql): the dataset folder every run learns from.")] =
    None,
    seeds: Annotated[int, typer.Option(help="Seeds per grid point.",
                                       callback=at_least_one("--seeds"))] = 4,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="name=v1,v2,...; repeatable. A hyperparameter (a field of the agent's "
        "Hyper, e.g. learning_rate, discount) is vmapped with the seeds in one program; a static "
        "setting (a Config field, e.g. horizon, hidden_sizes) compiles one program per value. "
        "Tuple values are separated by |: --grid hidden_sizes=64,64|128,128.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="A fixed setting for every run, key=value, repeatable (as in train).")] =
    None,
    preset: Annotated[str | None, typer.Option(
        help="Start every run from this named preset (see `wmjax presets ALGO`), e.g. a CPU "
        "preset on a GPU to compare with a CPU run; default: the env's tuned preset, else the "
        "generic one sized for this device.")] = None,
    steps: Annotated[int | None, typer.Option(
        help="Length of each run, as the agent's train command counts it (World Models: "
        "CMA-ES generations); default: the agent's.")] = None,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Sweep folder; default sweeps/<algo>-<env>-<time>.")] = None,
    devices: Annotated[int, typer.Option(
        help="Local devices to split each program's runs over; 0: all.",
        callback=non_negative("--devices"))] = 0,
    resume: Annotated[bool, typer.Option(
        help="Continue the sweep in --out: unfinished programs from their checkpoints, missing "
        "ones from the start.")] = False,
    metric: Annotated[str | None, typer.Option(
        help="Metric of the aggregate (a key of metrics.jsonl); default: "
        "eval/normalized_score (offline agents), else eval/episode_return, eval/win_vs_greedy "
        "(board games), eval/steps_to_goal (Dyna).")] = None,
    memory_limit: Annotated[str | None, typer.Option(
        help="Device memory to plan against, e.g. 16GiB (default: what the device reports).")] =
    None,
    coordinator: Annotated[str | None, typer.Option(
        help="Multi-host: HOST:PORT of process 0 (or JAX_COORDINATOR_ADDRESS).")] = None,
    num_processes: Annotated[int | None, typer.Option(
        help="Multi-host: number of processes (or JAX_NUM_PROCESSES).")] = None,
    process_id: Annotated[int | None, typer.Option(
        help="Multi-host: this process's index (or JAX_PROCESS_ID).")] = None,
    distributed_auto: Annotated[bool, typer.Option(
        help="Multi-host: let jax.distributed detect the cluster (SLURM, Open MPI, TPU).")] =
    False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per program.")] = True,
    minutes: Annotated[float | None, typer.Option(
        help="Wall-clock budget for the whole sweep: the program running when it ends stops "
        "after its chunk (evaluated, checkpointed), programs not begun wait; --resume "
        "continues both.")] = None,
):
  """A sweep: seeds x hyperparameter grid as few compiled programs, over all local devices and
  hosts, into one folder with an aggregate table and plot.

  Every run of a program is one entry of its vmapped run axis (all hyperparameter points x
  seeds), split over the local devices with jax.sharding. Static settings in the grid compile one
  program per combination. A stage that the swept values do not enter runs once per seed
  (MOPO's and MOReL's model fit across penalties, World Models' V and M across sigma_init).
  With several processes each takes its share of every program's runs;
  process 0 writes summary.json, summary.md and sweep.png (mean with 95% bootstrap interval and
  interquartile mean over seeds, per grid point).
  """
  import os

  from wmjax.train.algos import ALGOS
  from wmjax.train.common import SweepTooLarge, TrainingDiverged
  from wmjax.train.distributed import init_distributed
  from wmjax.train.rundir import RunExistsError
  from wmjax.train.sweep import run_sweep

  offline = algo in ALGOS and ALGOS[algo].offline   # an unknown name: run_sweep lists the known
  if dataset is not None and not offline:
    fail(f"{algo} learns by interacting with its env; --dataset is for the offline agents "
         "(mopo, morel, iql)")
  if offline:   # a resumed sweep is given the same arguments again
    if dataset is None:
      fail(f"{algo} learns from a dataset: give --dataset PATH")
    from wmjax.train.algos_offline import dataset_settings

    try:
      data_env, data_sets = dataset_settings(dataset)
    except (ValueError, FileNotFoundError) as e:
      fail(str(e))
    env = env or data_env
    set_ = data_sets + list(set_ or [])
  if env is None:
    fail("--env ENV is needed (see `wmjax envs`)")
  previous = os.environ.get("WMJAX_DEVICE_MEMORY")
  if memory_limit:
    os.environ["WMJAX_DEVICE_MEMORY"] = memory_limit
  try:
    index, count = init_distributed(coordinator, num_processes, process_id, distributed_auto)
    if out is None:
      if index > 0 or num_processes:
        fail("multi-process sweeps need the same --out on every process")
      out = pathlib.Path("sweeps") / default_out(algo, env).name
    summary = run_sweep(algo, env, out=out, seeds=seeds, grid=grid or [], sets=set_ or [],
                        steps=steps, seed=seed, devices=devices, resume=resume, metric=metric,
                        progress=progress, log=typer.echo, process=(index, count),
                        preset=preset, minutes=minutes)
  except (ValueError, KeyError, RunExistsError, FileNotFoundError, FileExistsError,
          TrainingDiverged, SweepTooLarge, RuntimeError) as e:
    fail(str(e.args[0]) if e.args else str(e))
  finally:
    if previous is None:
      os.environ.pop("WMJAX_DEVICE_MEMORY", None)
    else:
      os.environ["WMJAX_DEVICE_MEMORY"] = previous
  if summary is not None:
    typer.echo(f"sweep folder: {out} (summary.md, summary.json, sweep.png)")

