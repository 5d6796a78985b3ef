"""The ``wmjax`` command: train agents, evaluate runs, list environments."""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Annotated

import numpy as np
import typer

app = typer.Typer(
    help="wmjax: model-based RL and world models in JAX. Train an agent with "
    "`wmjax train pets --env dmc/CartpoleSwingup`, `wmjax train dreamer` or "
    "`wmjax train muzero --env pgx/tic_tac_toe`, evaluate a run folder with `wmjax eval RUN` "
    "(MuZero board games: `--opponent random|greedy|safe|RUN`), play a trained board-game "
    "agent with `wmjax play RUN`, list environments with `wmjax envs`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(help="Train an agent; writes a run folder (config, metrics, curve, "
                        "checkpoints).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@app.callback()
def _setup() -> None:
  """Persistent compilation cache: a second run of the same configuration skips compiling."""
  import os
  import warnings

  import jax

  # Third-party deprecation notices (jaxopt, brax's pipelines) are not the user's to act on.
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  warnings.filterwarnings("ignore", message="Brax System")

  cache = os.environ.get("WMJAX_CACHE", os.path.expanduser("~/.cache/wmjax/jax"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _fail(message: str) -> None:
  typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
  raise typer.Exit(code=2)


def _num(value) -> str:
  """A logged number (NaN is logged as null)."""
  return "nan" if value is None else f"{value:.1f}"


def _default_out(algo: str, env: str) -> pathlib.Path:
  stamp = time.strftime("%Y%m%d-%H%M%S")
  return pathlib.Path("runs") / f"{algo}-{env.replace('/', '-')}-{stamp}"


# Options every `train` command shares (each command adds its env, steps, out and --set).
SeedsOption = Annotated[int, typer.Option(
    help="Independent seeds, run as one vmapped program; curves are per seed and mean.")]
SeedOption = Annotated[int, typer.Option(help="Base random seed.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue the run in --out from its last checkpoint, with its saved settings.")]
ProgressOption = Annotated[bool, typer.Option(help="Show a progress bar.")]
DevicesOption = Annotated[int, typer.Option(
    help="Local devices to split the seeds over (jax.sharding; the largest count <= this that "
    "divides the seeds is used); 0: all.")]


@train_app.command("pets")
def train_pets(
    env: Annotated[str, typer.Option(help="Environment, suite/name (see `wmjax envs`).")] =
    "dmc/CartpoleSwingup",
    steps: Annotated[int, typer.Option(
        help="Agent steps of real data in all, random initial episodes included (each agent "
        "step is action_repeat env steps); rounded up to whole episodes.")] = 2_000,
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/pets-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set horizon=20 "
        "--set hidden_sizes=64,64 --set model_lr=3e-4. Keys are the fields of PETSConfig and "
        "PETSHyper (wmjax/agents/pets.py).")] = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: DevicesOption = 1,
):
  """PETS: probabilistic ensemble + trajectory sampling + CEM/MPPI model-predictive control."""
  from wmjax.train.pets_runner import train_pets as run_pets

  _train(run_pets, "pets", env, steps=steps, seeds=seeds, seed=seed, out=out, sets=set_,
         resume=resume, progress=progress, devices=devices)


@train_app.command("dreamer")
def train_dreamer(
    env: Annotated[str, typer.Option(help="Environment, suite/name (see `wmjax envs`); vector "
                                     "or image observations, continuous or discrete actions.")] =
    "dmc/CartpoleSwingup",
    steps: Annotated[int, typer.Option(
        help="Agent steps of real data in all, random prefill included (each agent step is "
        "action_repeat env steps); rounded up to whole training iterations. The default is "
        "100k env steps on dmc/CartpoleSwingup (action repeat 8).")] = 12_500,
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/dreamer-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set size=small "
        "--set train_ratio=512 --set model_lr=1e-4. Keys are the fields of DreamerConfig and "
        "DreamerHyper (wmjax/agents/dreamer.py); sizes: debug, xsmall, small, medium, large.")]
    = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: DevicesOption = 1,
):
  """Dreamer (V3-style): RSSM world model; actor and critic trained in imagination."""
  from wmjax.train.dreamer_runner import train_dreamer as run_dreamer

  run = _train(run_dreamer, "dreamer", env, steps=steps, seeds=seeds, seed=seed, out=out,
               sets=set_, resume=resume, progress=progress, devices=devices)
  if (run.path / "reconstructions.png").exists():
    typer.echo(f"world-model reconstructions: {run.path / 'reconstructions.png'}")


@train_app.command("muzero")
def train_muzero(
    env: Annotated[str, typer.Option(
        help="A game: pgx/<game> (two-player zero-sum board games: tic_tac_toe, connect_four, "
        "othello, animal_shogi, go_9x9, ...; one-player: minatar-breakout, minatar-asterix, "
        "...) or a discrete-action env of the registry (fast/PointMassDiscrete).")] =
    "pgx/tic_tac_toe",
    steps: Annotated[int | None, typer.Option(
        help="Self-play moves in all (every parallel game counted); rounded up to whole "
        "training iterations. Default: the game's tuned budget (150k for tic-tac-toe, 2M for "
        "connect four, 500k otherwise).")] = None,
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/muzero-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set num_simulations=64 "
        "--set search=puct --set net=resnet --set learning_rate=3e-4. Keys are the fields of "
        "MuZeroConfig and MuZeroHyper (wmjax/agents/muzero.py).")] = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: DevicesOption = 1,
    minutes: Annotated[float | None, typer.Option(
        help="Wall-clock budget: after the first chunk of iterations that ends past it, "
        "evaluate, checkpoint and stop (a machine lent for a while, a cluster slot); "
        "--resume continues towards --steps.")] = None,
):
  """MuZero: learned latent model + MCTS (mctx), self-play fused on device."""
  from wmjax.train.muzero_runner import train_muzero as run_muzero

  if minutes is not None and minutes <= 0:
    _fail(f"--minutes must be > 0, got {minutes}")
  run = _train(run_muzero, "muzero", env, steps=steps, seeds=seeds, seed=seed, out=out,
               sets=set_, resume=resume, progress=progress, devices=devices, minutes=minutes)
  last = run.read_metrics()[-1] if run.read_metrics() else {}
  for opp in ("random", "greedy"):
    if f"eval/win_vs_{opp}_mean" in last:
      typer.echo(f"against {opp}: win {last[f'eval/win_vs_{opp}_mean']:.1%}, draw "
                 f"{last[f'eval/draw_vs_{opp}_mean']:.1%}, loss "
                 f"{last[f'eval/loss_vs_{opp}_mean']:.1%}")


@train_app.command("mbpo")
def train_mbpo(
    env: Annotated[str, typer.Option(
        help="Environment, suite/name (see `wmjax envs`): continuous actions, vector "
        "observations, best without terminal states (model rollouts never terminate).")] =
    "dmc/CartpoleSwingup",
    steps: Annotated[int, typer.Option(
        help="Agent steps of real data in all, random prefill included (each agent step is "
        "action_repeat env steps); rounded up to whole iterations of steps_per_iteration.")] =
    12_500,
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/mbpo-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set rollout_length=5 "
        "--set updates_per_step=20 --set real_ratio=0.1 --set sac_lr=1e-3. Keys are the fields "
        "of MBPOConfig and MBPOHyper (wmjax/agents/mbpo.py).")] = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: DevicesOption = 1,
):
  """MBPO (deep Dyna): ensemble model, short branched rollouts, SAC trained mostly on model data.

  Each iteration refits the probabilistic ensemble on all real data, starts rollout_batch
  rollouts of rollout_length model steps from replayed real states, then takes
  steps_per_iteration real steps with SAC, each followed by updates_per_step SAC updates on
  batches that are real_ratio real data and the rest model data: one jitted program.
  """
  from wmjax.train.mbpo_runner import train_mbpo as run_mbpo

  _train(run_mbpo, "mbpo", env, steps=steps, seeds=seeds, seed=seed, out=out, sets=set_,
         resume=resume, progress=progress, devices=devices)


def _brax_command(algo: str, doc: str):
  """``wmjax train sac|ppo``: brax's own trainer, writing our run folder."""

  def command(
      env: Annotated[str, typer.Option(
          help="Environment, suite/name (see `wmjax envs`): continuous actions, vector "
          "observations.")] = "dmc/CartpoleSwingup",
      steps: Annotated[int, typer.Option(
          help="Env steps per seed (action repeat included, as brax counts them).")] = 50_000,
      seeds: Annotated[int, typer.Option(
          help="Seeds seed .. seed+seeds-1, trained one after another.")] = 1,
      seed: SeedOption = 0,
      out: Annotated[pathlib.Path | None, typer.Option(
          help="Run folder; default runs/<sac|ppo>-<env>-<time>. Refused if it already holds "
          "a run.")] = None,
      set_: Annotated[list[str] | None, typer.Option(
          "--set", help="Override an argument of brax's trainer, key=value, repeatable: e.g. "
          "--set learning_rate=1e-3 --set num_envs=64 --set eval_every=5000 (env steps between "
          "evaluations).")] = None,
      progress: ProgressOption = True,
  ):
    from wmjax.train.brax_runner import train_brax

    _train(lambda env_, **kw: train_brax(algo, env_, **kw), algo, env, steps=steps,
           seeds=seeds, seed=seed, out=out, sets=set_, resume=False, progress=progress)

  command.__doc__ = doc
  train_app.command(algo)(command)


_brax_command("sac", "SAC (model-free baseline) through brax's own trainer "
              "(brax.training.agents.sac), on the same envs and run folder as our agents.")
_brax_command("ppo", "PPO (model-free baseline) through brax's own trainer "
              "(brax.training.agents.ppo), on the same envs and run folder as our agents.")


@train_app.command("worldmodels")
def train_worldmodels(
    env: Annotated[str, typer.Option(
        help="A pixel environment, suite/name (see `wmjax envs`): image observations "
        "[H, W, C], continuous (or discrete) actions.")] = "fast/PointMassPixels",
    generations: Annotated[int | None, typer.Option(
        help="CMA-ES generations for the controller (default: the env's tuned setting, 60 for "
        "fast/ envs).")] = None,
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/worldmodels-<env>-<time>. Refused if it already holds a "
        "run, unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set mode=real "
        "--set mode=dream --set tau=1.15 --set population_size=64 --set rollouts=16 "
        "--set latent_size=32 --set hidden_size=256 --set episodes=1000. Keys are the fields "
        "of WorldModelsConfig and WorldModelsHyper (wmjax/agents/worldmodels.py).")] = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: DevicesOption = 1,
):
  """World Models (Ha & Schmidhuber 2018): VAE (V) + MDN-RNN (M) + linear controller (C) by
  CMA-ES.

  Three stages. 1. Collect `episodes` random-policy episodes and train V, a convolutional VAE,
  on their frames. 2. Train M, an LSTM with a mixture-of-Gaussians output, to predict the next
  latent z (and reward, termination) from z and the action a. 3. Train C, a linear controller
  a = tanh(W (z, h) + b) on z and M's hidden state h, with
  CMA-ES (evosax), the whole population evaluated as one vmapped rollout. Two modes:
  `--set mode=real` evaluates candidates in the real environment; `--set mode=dream` evaluates
  them only inside M's dream at temperature `--set tau=...` (higher tau: a noisier dream that
  is harder to exploit), and the curve shows the controller's return in the real environment.
  Writes curve.png, reconstructions.png (V) and dream.gif / dream.png (a real episode next to
  M's dream from the same first frame).
  """
  from wmjax.train.worldmodels_runner import train_worldmodels as run_worldmodels

  run = _train(run_worldmodels, "worldmodels", env, generations=generations, seeds=seeds,
               seed=seed, out=out, sets=set_, resume=resume, progress=progress, devices=devices)
  for name in ("reconstructions.png", "dream.gif"):
    if (run.path / name).exists():
      typer.echo(f"{name}: {run.path / name}")


@train_app.command("dyna")
def train_dyna(
    env: Annotated[str, typer.Option(
        help="A grid maze: grid/dyna_maze, grid/blocking_maze or grid/shortcut_maze.")] =
    "grid/dyna_maze",
    steps: Annotated[int, typer.Option(help="Real time steps per run (rounded up to 100s).")] =
    3_000,
    seeds: Annotated[int, typer.Option(
        help="Independent runs, one vmapped program; curves are per run and mean.")] = 1,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/dyna-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set planning_steps=50 "
        "--set kappa=1e-3 (Dyna-Q+) --set alpha=0.5. Keys are the fields of DynaConfig "
        "(wmjax/agents/dyna.py).")] = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
    devices: Annotated[int, typer.Option(
        help="Local devices to split the runs over; 0: all.")] = 1,
):
  """Tabular Dyna-Q / Dyna-Q+ (Sutton & Barto ch. 8) on a grid maze.

  Per real step: an epsilon-greedy action, a Q-learning update, a model update, then
  planning_steps updates from remembered transitions; logs the cumulative reward and the
  greedy path length every 100 steps.
  """
  from wmjax.train.dyna_runner import train_dyna as run_dyna

  run = _train(run_dyna, "dyna", env, steps=steps, seeds=seeds, seed=seed, out=out, sets=set_,
               resume=resume, progress=progress, devices=devices)
  last = run.read_metrics()[-1]
  typer.echo(f"cumulative reward after {last['env_steps']} steps: "
             f"{last['train/cumulative_reward_mean']:.1f}; greedy path: "
             f"{last['eval/steps_to_goal_mean']:.1f} steps")


@app.command("sweep")
def sweep(
    algo: Annotated[str, typer.Argument(
        help="Agent: pets, dreamer, muzero, mbpo, worldmodels or dyna.")],
    env: Annotated[str, typer.Option(help="Environment, suite/name (see `wmjax envs`).")],
    seeds: Annotated[int, typer.Option(help="Seeds per grid point.")] = 4,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="name=v1,v2,...; repeatable. A hyperparameter (a field of the agent's "
        "Hyper, e.g. learning_rate, discount) is vmapped with the seeds in one program; a static "
        "setting (a Config field, e.g. horizon, hidden_sizes) compiles one program per value. "
        "Tuple values are separated by |: --grid hidden_sizes=64,64|128,128.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="A fixed setting for every run, key=value, repeatable (as in train).")] =
    None,
    steps: Annotated[int | None, typer.Option(
        help="Length of each run, as the agent's train command counts it (World Models: "
        "CMA-ES generations); default: the agent's.")] = None,
    seed: SeedOption = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Sweep folder; default sweeps/<algo>-<env>-<time>.")] = None,
    devices: Annotated[int, typer.Option(
        help="Local devices to split each program's runs over; 0: all.")] = 0,
    resume: Annotated[bool, typer.Option(
        help="Continue the sweep in --out: unfinished programs from their checkpoints, missing "
        "ones from the start.")] = False,
    metric: Annotated[str | None, typer.Option(
        help="Metric of the aggregate (a key of metrics.jsonl); default: eval/episode_return, "
        "else eval/win_vs_greedy (board games), eval/steps_to_goal (Dyna).")] = None,
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
):
  """A sweep: seeds x hyperparameter grid as few compiled programs, over all local devices and
  hosts, into one folder with an aggregate table and plot.

  Every run of a program is one entry of its vmapped run axis (all hyperparameter points x
  seeds), split over the local devices with jax.sharding. Static settings in the grid compile one
  program per combination. With several processes each takes its share of every program's runs;
  process 0 writes summary.json, summary.md and sweep.png (mean with 95% bootstrap interval and
  interquartile mean over seeds, per grid point).
  """
  import os

  from wmjax.train.common import SweepTooLarge, TrainingDiverged
  from wmjax.train.rundir import RunExistsError
  from wmjax.train.sweep import init_distributed, run_sweep

  previous = os.environ.get("WMJAX_DEVICE_MEMORY")
  if memory_limit:
    os.environ["WMJAX_DEVICE_MEMORY"] = memory_limit
  try:
    index, count = init_distributed(coordinator, num_processes, process_id, distributed_auto)
    if out is None:
      if index > 0 or num_processes:
        _fail("multi-process sweeps need the same --out on every process")
      out = pathlib.Path("sweeps") / _default_out(algo, env).name
    summary = run_sweep(algo, env, out=out, seeds=seeds, grid=grid or [], sets=set_ or [],
                        steps=steps, seed=seed, devices=devices, resume=resume, metric=metric,
                        progress=progress, log=typer.echo, process=(index, count))
  except (ValueError, KeyError, RunExistsError, FileNotFoundError, FileExistsError,
          TrainingDiverged, SweepTooLarge, RuntimeError) as e:
    _fail(str(e.args[0]) if e.args else str(e))
  finally:
    if previous is None:
      os.environ.pop("WMJAX_DEVICE_MEMORY", None)
    else:
      os.environ["WMJAX_DEVICE_MEMORY"] = previous
  if summary is not None:
    typer.echo(f"sweep folder: {out} (summary.md, summary.json, sweep.png)")


def _train(run_fn, algo: str, env: str, *, out, sets, resume: bool, **kwargs):
  """Checks the resume flags, runs ``run_fn``, turns known errors into a clean exit, reports."""
  from wmjax.train.common import SweepTooLarge, TrainingDiverged
  from wmjax.train.rundir import RunExistsError

  if resume and out is None:
    _fail("--resume needs --out RUN_DIR (the run to continue)")
  if resume and sets:
    _fail("--resume continues a run with its saved settings (config.json); --set is not "
          "accepted with it. Start a new run to change settings.")
  out = out or _default_out(algo, env)
  try:
    run = run_fn(env, out=out, sets=sets or [], resume=resume, **kwargs)
  except (ValueError, KeyError, RunExistsError, FileNotFoundError, TrainingDiverged,
          SweepTooLarge) as e:
    _fail(str(e.args[0]) if e.args else str(e))
  _report(run)
  return run


def _report(run) -> None:
  records = run.read_metrics()
  last = records[-1] if records else {}
  typer.echo(f"run folder: {run.path}")
  if "eval/episode_return" in last:
    per_seed = ", ".join(_num(v) for v in last["eval/episode_return"])
    typer.echo(f"final evaluation return: mean {_num(last['eval/episode_return_mean'])} "
               f"(per seed: {per_seed}) after {last['env_steps']} env steps, "
               f"{last['wall_s']:.0f} s")
  typer.echo(f"learning curve: {run.path / 'curve.png'}")


@app.command("compare")
def compare(
    run_dirs: Annotated[list[pathlib.Path], typer.Argument(
        help="Run folders written by `wmjax train` (any algorithms, model-based and "
        "model-free); runs of different envs get their own row of panels.")],
    out: Annotated[pathlib.Path, typer.Option(help="The figure to write (PNG).")] =
    pathlib.Path("compare.png"),
    at: Annotated[str, typer.Option(
        help="Env steps at which to tabulate the evaluation return, comma-separated (the "
        "evaluation nearest to each, within 10%).")] = "",
    json_out: Annotated[pathlib.Path | None, typer.Option(
        "--json", help="Also write the table as JSON here.")] = None,
):
  """Evaluation return of several runs against env steps (sample efficiency) and wall-clock."""
  import json

  from wmjax.train.compare import compare_runs

  try:
    at_steps = [float(x) for x in at.split(",") if x.strip()]
  except ValueError:
    _fail(f"--at takes comma-separated env steps, e.g. 20000,50000; got {at!r}")
  try:
    rows = compare_runs(run_dirs, out, at_steps=at_steps)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))
  header = ["algo", "env", "seeds", *[f"@{int(s)}" for s in at_steps], "last", "at steps",
            "wall s"]
  typer.echo("  ".join(f"{h:>12}" for h in header))
  for r in rows:
    cells = [r["algo"], r["env"].split("/")[-1][:12], str(r["seeds"])]
    cells += [_num(r[f"return@{int(s)}"]) for s in at_steps]
    cells += [_num(r["last_return"]), str(r["last_env_steps"]),
              "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}"]
    typer.echo("  ".join(f"{c:>12}" for c in cells))
  typer.echo(f"figure: {out}")
  if json_out is not None:
    json_out.write_text(json.dumps(rows, indent=2) + "\n")
    typer.echo(f"table: {json_out}")


@app.command("eval")
def eval_run(
    run_dir: Annotated[pathlib.Path, typer.Argument(help="A run folder written by `wmjax train`.")],
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per trained seed.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the evaluation episodes.")] = 123,
    opponent: Annotated[str | None, typer.Option(
        help="MuZero board games: the opponent, random | greedy (takes a winning move, else "
        "blocks an immediate loss, else random) | safe (takes a winning move, else never leaves "
        "an immediate win to the other side) | another MuZero RUN_DIR of the same game. "
        "Default random.")] = None,
    games: Annotated[int, typer.Option(
        help="MuZero: games per trained seed (each side moves first in half).")] = 200,
    simulations: Annotated[int | None, typer.Option(
        help="MuZero: search simulations per move (default: the run's eval_simulations).")] =
    None,
):
  """Load a run's last checkpoint and evaluate it (returns; MuZero win/draw/loss rates; Dyna's
  greedy steps to the goal)."""
  import json

  from wmjax.train.dreamer_runner import evaluate_dreamer_run
  from wmjax.train.pets_runner import evaluate_pets_run

  if episodes < 1:
    _fail(f"--episodes must be >= 1, got {episodes}")
  config_path = pathlib.Path(run_dir) / "config.json"
  if not config_path.exists():
    _fail(f"{run_dir} holds no run (no config.json); pass a folder written by `wmjax train`.")
  algo = json.loads(config_path.read_text()).get("algo")
  if algo == "muzero":
    _eval_muzero(run_dir, opponent=opponent, games=games, seed=seed, simulations=simulations)
    return
  if opponent is not None:
    _fail(f"--opponent is for MuZero board-game runs; {run_dir} is a {algo!r} run")
  from wmjax.train.dyna_runner import evaluate_dyna_run
  from wmjax.train.mbpo_runner import evaluate_mbpo_run
  from wmjax.train.worldmodels_runner import evaluate_worldmodels_run

  evaluators = {"pets": evaluate_pets_run, "dreamer": evaluate_dreamer_run,
                "mbpo": evaluate_mbpo_run, "worldmodels": evaluate_worldmodels_run,
                "dyna": evaluate_dyna_run}
  measure = "greedy steps to the goal" if algo == "dyna" else "return"
  if algo not in evaluators:
    _fail(f"{run_dir} is a {algo!r} run; `wmjax eval` knows {', '.join(evaluators)}")
  try:
    returns, saved, step = evaluators[algo](run_dir, episodes=episodes, seed=seed)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))
  typer.echo(f"{saved['algo']} on {saved['env']}, checkpoint iteration {step}, "
             f"{episodes} episode(s) per seed")
  for i, row in enumerate(returns):
    typer.echo(f"  seed {i}: " + "  ".join(f"{r:8.1f}" for r in row) +
               f"   mean {row.mean():8.1f}")
  typer.echo(f"mean {measure} {returns.mean():.1f} +- {returns.std():.1f} over {returns.size} "
             "episodes")


def _eval_muzero(run_dir, *, opponent, games, seed, simulations) -> None:
  from wmjax.agents import arena
  from wmjax.train.muzero_runner import evaluate_muzero_run, match_runs

  opponent = opponent or "random"
  try:
    if opponent in arena.OPPONENTS:
      results, saved, step, two_player = evaluate_muzero_run(
          run_dir, games=games, opponent=opponent, seed=seed, simulations=simulations)
      label = opponent
    else:
      if not (pathlib.Path(opponent) / "config.json").exists():
        _fail(f"--opponent {opponent!r} is neither {', '.join(arena.OPPONENTS)} nor a run "
              "folder")
      outcome, saved, _ = match_runs(run_dir, opponent, games=games, seed=seed,
                                     simulations=simulations)
      results, step, two_player, label = outcome[None], "last", True, f"run {opponent}"
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))
  if not two_player:
    typer.echo(f"muzero on {saved['env']}, checkpoint {step}, {games} episode(s) per seed")
    for i, row in enumerate(results):
      typer.echo(f"  seed {i}: mean return {row.mean():8.2f} (min {row.min():.1f}, max "
                 f"{row.max():.1f})")
    typer.echo(f"mean return {results.mean():.2f} +- {results.std():.2f} over {results.size} "
               "episodes")
    return
  typer.echo(f"muzero on {saved['env']} against {label}, checkpoint {step}, {results.shape[1]} "
             "games per seed (each side first in half)")
  for i, row in enumerate(results):
    typer.echo(f"  seed {i}: win {np.mean(row > 0):6.1%}  draw {np.mean(row == 0):6.1%}  "
               f"loss {np.mean(row < 0):6.1%}")
  typer.echo(f"all seeds: win {np.mean(results > 0):.1%}, draw {np.mean(results == 0):.1%}, "
             f"loss {np.mean(results < 0):.1%} over {results.size} games")


@app.command("play")
def play(
    run_dir: Annotated[pathlib.Path, typer.Argument(
        help="A MuZero run folder of a board game (tic-tac-toe or connect four).")],
    first: Annotated[bool, typer.Option(
        "--first/--second", help="Whether you make the first move.")] = True,
    simulations: Annotated[int | None, typer.Option(
        help="The agent's search simulations per move (default: the run's eval_simulations).")]
    = None,
    seed: Annotated[int, typer.Option(help="Seed of the agent's search.")] = 0,
):
  """Play a board game against a trained MuZero agent in the terminal."""
  from wmjax.train.play import play_in_terminal

  try:
    play_in_terminal(run_dir, human_first=first, simulations=simulations, seed=seed)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))


@app.command("envs")
def list_envs(
    pattern: Annotated[str, typer.Argument(help="Only names containing this text.")] = "",
    specs: Annotated[bool, typer.Option(
        help="Build each env to print its observation/action spec (takes a while).")] = True,
):
  """List every registered environment with its observation and action spec."""
  from wmjax.envs import make, names
  from wmjax.envs.pgx import game_names
  from wmjax.envs.registry import entry

  matched = [n for n in names() if pattern.lower() in n.lower()]
  games = [n for n in game_names() if n.startswith("pgx/") and pattern.lower() in n.lower()]
  if not matched and not games:
    _fail(f"no environment name contains {pattern!r}")
  for name in games:
    typer.echo(f"{name}  pgx game for `wmjax train muzero` (legal-action masks, rewards to the "
               "mover)")
  if not matched:
    return
  width = max(len(n) for n in matched)
  for name in matched:
    line = f"{name:<{width}}"
    if specs:
      try:
        env = make(name)
        line += f"  {env.spec.describe()}  episode {env.episode_length}"
      except Exception as e:  # an env that cannot be built here is listed with the reason
        line += f"  (cannot build: {type(e).__name__}: {str(e).splitlines()[0][:80]})"
    line += f"  {entry(name).description}"
    typer.echo(line)
    sys.stdout.flush()


if __name__ == "__main__":
  app()
