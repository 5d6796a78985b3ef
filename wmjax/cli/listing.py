"""``wmjax envs`` and ``wmjax presets``: what can be trained on, and with which settings."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wmjax.cli.common import app, fail

__all__ = []


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
    fail(f"no environment name contains {pattern!r}")
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



@app.command("presets")
def list_presets(
    algo: Annotated[str | None, typer.Argument(
        help="Only this algorithm's presets (pets, dreamer, mbpo, muzero, worldmodels, dyna).")]
    = None,
    settings: Annotated[bool, typer.Option(
        help="Also print each preset's settings (its changes to the Config and Hyper "
        "defaults).")] = False,
):
  """List the tuned settings of each algorithm: which envs each preset is for and why.

  A run uses the first preset whose pattern matches its env; an env that none matches gets the
  generic preset for the device it runs on (generic-cpu, generic-gpu). Pick another with
  `wmjax train ALGO --preset NAME`; change single settings with --set.
  """
  from wmjax import presets as presets_lib

  names = [algo] if algo else list(presets_lib.PRESETS)
  for name in names:
    try:
      table = presets_lib.presets_of(name)
    except KeyError as e:
      fail(str(e.args[0]))
    here = presets_lib.device_kind()
    typer.echo(f"{name}:")
    for p in table:
      where = ", ".join(p.match) if p.match else f"any env on a {p.device}"
      if p.match and p.device:
        where += f" (on a {p.device})"
      mark = " (this device)" if not p.match and p.device == here else ""
      steps = f"; {p.steps:,} steps by default" if p.steps else ""
      typer.echo(f"  {p.name:<22} {where}{mark}{steps}")
      if p.note:
        typer.echo(f"  {'':<22} {p.note}")
      if p.suite_action_repeat:
        repeats = ", ".join(f"{k}/ {v}" for k, v in p.suite_action_repeat.items())
        typer.echo(f"  {'':<22} action repeat per suite: {repeats}")
      if settings:
        changes = {**dict(p.config), **dict(p.hyper)}
        if p.base:
          changes = {"base": p.base, **changes}
        text = ", ".join(f"{k}={v}" for k, v in changes.items()) or "(the class defaults)"
        typer.echo(f"  {'':<22} {text}")
