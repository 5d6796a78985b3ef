"""The ``wmjax`` command: train agents, evaluate runs, list environments."""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Annotated

import typer

app = typer.Typer(
    help="wmjax: model-based RL and world models in JAX. Train an agent with "
    "`wmjax train pets --env dmc/CartpoleSwingup` or `wmjax train dreamer`, evaluate a run "
    "folder with `wmjax eval RUN`, "
    "list environments with `wmjax envs`.",
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


@train_app.command("pets")
def train_pets(
    env: Annotated[str, typer.Option(help="Environment, suite/name (see `wmjax envs`).")] =
    "dmc/CartpoleSwingup",
    steps: Annotated[int, typer.Option(
        help="Agent steps of real data in all, random initial episodes included (each agent "
        "step is action_repeat env steps); rounded up to whole episodes.")] = 2_000,
    seeds: Annotated[int, typer.Option(
        help="Independent seeds, run as one vmapped program; curves are per seed and mean.")] = 1,
    seed: Annotated[int, typer.Option(help="Base random seed.")] = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/pets-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set horizon=20 "
        "--set hidden_sizes=64,64 --set model_lr=3e-4. Keys are the fields of PETSConfig and "
        "PETSHyper (wmjax/agents/pets.py).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --out from its last checkpoint, with its saved settings.")] =
    False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
):
  """PETS: probabilistic ensemble + trajectory sampling + CEM/MPPI model-predictive control."""
  from wmjax.train.pets_runner import train_pets as run_pets

  _train(run_pets, "pets", env, steps=steps, seeds=seeds, seed=seed, out=out, sets=set_,
         resume=resume, progress=progress)


@train_app.command("dreamer")
def train_dreamer(
    env: Annotated[str, typer.Option(help="Environment, suite/name (see `wmjax envs`); vector "
                                     "or image observations, continuous or discrete actions.")] =
    "dmc/CartpoleSwingup",
    steps: Annotated[int, typer.Option(
        help="Agent steps of real data in all, random prefill included (each agent step is "
        "action_repeat env steps); rounded up to whole training iterations. The default is "
        "100k env steps on dmc/CartpoleSwingup (action repeat 8).")] = 12_500,
    seeds: Annotated[int, typer.Option(
        help="Independent seeds, run as one vmapped program; curves are per seed and mean.")] = 1,
    seed: Annotated[int, typer.Option(help="Base random seed.")] = 0,
    out: Annotated[pathlib.Path | None, typer.Option(
        help="Run folder; default runs/dreamer-<env>-<time>. Refused if it already holds a run, "
        "unless --resume.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a setting, key=value, repeatable: e.g. --set size=small "
        "--set train_ratio=512 --set model_lr=1e-4. Keys are the fields of DreamerConfig and "
        "DreamerHyper (wmjax/agents/dreamer.py); sizes: debug, xsmall, small, medium, large.")]
    = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --out from its last checkpoint, with its saved settings.")] =
    False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
):
  """Dreamer (V3-style): RSSM world model; actor and critic trained in imagination."""
  from wmjax.train.dreamer_runner import train_dreamer as run_dreamer

  run = _train(run_dreamer, "dreamer", env, steps=steps, seeds=seeds, seed=seed, out=out,
               sets=set_, resume=resume, progress=progress)
  if (run.path / "reconstructions.png").exists():
    typer.echo(f"world-model reconstructions: {run.path / 'reconstructions.png'}")


def _train(run_fn, algo: str, env: str, *, out, sets, resume: bool, **kwargs):
  """Checks the resume flags, runs ``run_fn``, turns known errors into a clean exit, reports."""
  from wmjax.train.common import TrainingDiverged
  from wmjax.train.rundir import RunExistsError

  if resume and out is None:
    _fail("--resume needs --out RUN_DIR (the run to continue)")
  if resume and sets:
    _fail("--resume continues a run with its saved settings (config.json); --set is not "
          "accepted with it. Start a new run to change settings.")
  out = out or _default_out(algo, env)
  try:
    run = run_fn(env, out=out, sets=sets or [], resume=resume, **kwargs)
  except (ValueError, KeyError, RunExistsError, FileNotFoundError, TrainingDiverged) as e:
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


@app.command("eval")
def eval_run(
    run_dir: Annotated[pathlib.Path, typer.Argument(help="A run folder written by `wmjax train`.")],
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per trained seed.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the evaluation episodes.")] = 123,
):
  """Load a run's last checkpoint, run evaluation episodes, print the returns."""
  import json

  from wmjax.train.dreamer_runner import evaluate_dreamer_run
  from wmjax.train.pets_runner import evaluate_pets_run

  if episodes < 1:
    _fail(f"--episodes must be >= 1, got {episodes}")
  config_path = pathlib.Path(run_dir) / "config.json"
  if not config_path.exists():
    _fail(f"{run_dir} holds no run (no config.json); pass a folder written by `wmjax train`.")
  algo = json.loads(config_path.read_text()).get("algo")
  evaluators = {"pets": evaluate_pets_run, "dreamer": evaluate_dreamer_run}
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
  typer.echo(f"mean return {returns.mean():.1f} +- {returns.std():.1f} over {returns.size} "
             "episodes")


@app.command("envs")
def list_envs(
    pattern: Annotated[str, typer.Argument(help="Only names containing this text.")] = "",
    specs: Annotated[bool, typer.Option(
        help="Build each env to print its observation/action spec (takes a while).")] = True,
):
  """List every registered environment with its observation and action spec."""
  from wmjax.envs import make, names
  from wmjax.envs.registry import entry

  matched = [n for n in names() if pattern.lower() in n.lower()]
  if not matched:
    _fail(f"no environment name contains {pattern!r}")
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
