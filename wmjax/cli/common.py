"""The ``wmjax`` app, its set-up, and what every command shares (options, errors, output)."""

from __future__ import annotations

import pathlib
import re
import time
from typing import Annotated

import typer

app = typer.Typer(
    help="wmjax: model-based RL and world models in JAX. Train an agent with "
    "`wmjax train pets --env dmc/CartpoleSwingup`, `wmjax train dreamer` or "
    "`wmjax train muzero --env pgx/tic_tac_toe`, evaluate a run folder with `wmjax eval RUN` "
    "(MuZero board games: `--opponent random|greedy|safe|RUN`), play a trained board-game "
    "agent with `wmjax play RUN`, list environments with `wmjax envs` and each algorithm's "
    "tuned settings with `wmjax presets`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(help="Train an agent; writes a run folder (config, metrics, curve, "
                        "checkpoints).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@app.callback()
def _setup(
    imports: Annotated[list[str] | None, typer.Option(
        "--import", help="Import this module (package.module or path/to/file.py) first: its "
        "wmjax.envs.register_env(...) calls add your environments by name (repeatable). Or "
        "name a factory directly: --env package.module:make_env.")] = None,
) -> None:
  """Persistent compilation cache: a second run of the same configuration skips compiling."""
  import os
  import warnings

  import jax

  for module in imports or []:
    from wmjax.envs import import_envs

    try:
      added = import_envs(module)
    except (ValueError, TypeError) as e:
      fail(message_of(e))
    if not added:
      typer.secho(f"note: --import {module} registered no environment (no register_env call)",
                  err=True)

  # Third-party deprecation notices (jaxopt, brax's pipelines) are not the user's to act on.
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  warnings.filterwarnings("ignore", message="Brax System")

  cache = os.environ.get("WMJAX_CACHE", os.path.expanduser("~/.cache/wmjax/jax"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def fail(message: str) -> None:
  typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
  raise typer.Exit(code=2)


def message_of(e: BaseException) -> str:
  return str(e.args[0]) if e.args else str(e)


def num(value) -> str:
  """A logged number (NaN is logged as null)."""
  return "nan" if value is None else f"{value:.1f}"


ENV_OPTIONS_HELP = (" Options of the env's constructor ride in the name, quoted for the shell: "
                    "'suite/name?key=value,key=value' (e.g. "
                    "'dmc-pixels/CartpoleSwingup?image_size=84,camera=1', "
                    "'minatar/Breakout?sticky_action_prob=0'); the run folder keeps them.")


def default_out(algo: str, env: str) -> pathlib.Path:
  stamp = time.strftime("%Y%m%d-%H%M%S")
  name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", env)   # suite/name?key=value,... -> a plain name
  return pathlib.Path("runs") / f"{algo}-{name}-{stamp}"


def at_least_one(name: str):
  """A typer callback refusing counts below 1."""
  def check(value):
    if value is not None and value < 1:
      raise typer.BadParameter(f"must be >= 1, got {value}", param_hint=name)
    return value
  return check


def non_negative(name: str):
  def check(value):
    if value is not None and value < 0:
      raise typer.BadParameter(f"must be >= 0 (0: all local devices), got {value}",
                               param_hint=name)
    return value
  return check


# Options every `train` command shares.
SeedsOption = Annotated[int, typer.Option(
    help="Independent seeds, run as one vmapped program; curves are per seed and mean.",
    callback=at_least_one("--seeds"))]
SeedOption = Annotated[int, typer.Option(help="Base random seed.")]
ResumeOption = Annotated[bool, typer.Option(
    help="Continue the run in --out from its last checkpoint, with its saved settings.")]
ProgressOption = Annotated[bool, typer.Option(help="Show a progress bar.")]
DevicesOption = Annotated[int, typer.Option(
    help="Local devices to split the seeds over (jax.sharding; the largest count <= this that "
    "divides the seeds is used); 0: all.", callback=non_negative("--devices"))]
