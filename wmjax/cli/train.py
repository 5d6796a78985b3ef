"""``wmjax train <algo>``: one command per algorithm of the registry, all from one factory.

(No ``from __future__ import annotations`` here: the options' help texts come from each
registry entry, so the annotations must be evaluated when each command is made.)
"""

import pathlib
from typing import Annotated

import typer

from wmjax.cli.common import (
    ENV_OPTIONS_HELP,
    DevicesOption,
    ProgressOption,
    ResumeOption,
    SeedOption,
    SeedsOption,
    at_least_one,
    default_out,
    fail,
    message_of,
    num,
    train_app,
)
from wmjax.train.algos import ALGOS, Algo

__all__ = ["report"]

_FIGURES = ("reconstructions.png", "dream.gif")


def _errors():
  from wmjax.train.common import SweepTooLarge, TrainingDiverged
  from wmjax.train.rundir import RunExistsError

  return (ValueError, KeyError, RunExistsError, FileNotFoundError, TrainingDiverged,
          SweepTooLarge)


def _make_command(algo: Algo):
  types = algo.types
  where = f"{types[1]} and {types[2]} ({types[0].replace('.', '/')}.py)"

  def command(
      env: Annotated[str, typer.Option(help=algo.env_help + ENV_OPTIONS_HELP)] = algo.env_default,
      dataset: Annotated[pathlib.Path | None, typer.Option(
          help="The dataset folder to learn from (`wmjax dataset collect` makes them); the "
          "env, action repeat and episode length default to the dataset's.",
          hidden=not algo.offline)] = None,
      steps: Annotated[int | None, typer.Option(
          f"--{algo.length_name}", help=algo.length_help,
          callback=at_least_one(f"--{algo.length_name}"))] = None,
      seeds: SeedsOption = 1,
      seed: SeedOption = 0,
      out: Annotated[pathlib.Path | None, typer.Option(
          help=f"Run folder; default runs/{algo.name}-<env>-<time>. Refused if it already "
          "holds a run, unless --resume.")] = None,
      set_: Annotated[list[str] | None, typer.Option(
          "--set", help=f"Override a setting, key=value, repeatable"
          f"{': e.g. ' + algo.set_examples if algo.set_examples else ''}. Keys are the fields "
          f"of {where}; an unknown key lists them.")] = None,
      preset: Annotated[str | None, typer.Option(
          help=f"Start from this named preset (see `wmjax presets {algo.name}`); default: the "
          "env's tuned preset, else the generic one sized for this device.")] = None,
      resume: ResumeOption = False,
      progress: ProgressOption = True,
      devices: DevicesOption = 1,
      minutes: Annotated[float | None, typer.Option(
          help="Wall-clock budget: after the first chunk of iterations that ends past it, "
          "evaluate, checkpoint and stop (a machine lent for a while, a cluster slot); "
          "--resume continues.")] = None,
  ):
    from wmjax.train.loop import train

    if resume and out is None:
      fail("--resume needs --out RUN_DIR (the run to continue)")
    if resume and (set_ or preset):
      fail("--resume continues a run with its saved settings (config.json); --set and --preset "
           "are not accepted with it. Start a new run to change settings.")
    if minutes is not None and not minutes > 0:
      fail(f"--minutes must be > 0, got {minutes}")
    sets = list(set_ or [])
    if dataset is not None and not algo.offline:
      fail(f"{algo.name} learns by interacting with its env; --dataset is for the offline "
           "agents (mopo, morel, iql)")
    if algo.offline and not resume:
      if dataset is None:
        fail(f"{algo.name} learns from a dataset: give --dataset PATH (a folder made by "
             "`wmjax dataset collect`)")
      try:
        from wmjax.train.algos_offline import dataset_settings

        data_env, data_sets = dataset_settings(dataset)
      except _errors() as e:
        fail(message_of(e))
      env = env or data_env
      sets = data_sets + sets
    out = out or default_out(algo.name, env)
    try:
      run = train(algo.name, env, out=out, steps=steps, seeds=seeds, seed=seed,
                  sets=sets, preset=preset, resume=resume, progress=progress,
                  devices=devices, minutes=minutes, echo=typer.echo)
    except _errors() as e:
      fail(message_of(e))
    report(run)

  command.__doc__ = f"{algo.doc[0].upper()}{algo.doc[1:]}.\n\n{algo.long_help}".strip()
  return command


def _make_external_command(algo: Algo):
  def command(
      env: Annotated[str, typer.Option(help=algo.env_help + ENV_OPTIONS_HELP)] = algo.env_default,
      steps: Annotated[int, typer.Option(help=algo.length_help,
                                         callback=at_least_one("--steps"))] = 50_000,
      seeds: Annotated[int, typer.Option(
          help="Seeds seed .. seed+seeds-1, trained one after another.",
          callback=at_least_one("--seeds"))] = 1,
      seed: SeedOption = 0,
      out: Annotated[pathlib.Path | None, typer.Option(
          help=f"Run folder; default runs/{algo.name}-<env>-<time>. Refused if it already "
          "holds a run.")] = None,
      set_: Annotated[list[str] | None, typer.Option(
          "--set", help="Override an argument of brax's trainer, key=value, repeatable: e.g. "
          "--set learning_rate=1e-3 --set num_envs=64 --set eval_every=5000 (env steps between "
          "evaluations).")] = None,
      progress: ProgressOption = True,
  ):
    out = out or default_out(algo.name, env)
    try:
      run = algo.external_train(env, steps=steps, seeds=seeds, seed=seed, out=out,
                                sets=set_ or [], resume=False, progress=progress)
    except _errors() as e:
      fail(message_of(e))
    report(run)

  command.__doc__ = f"{algo.doc[0].upper()}{algo.doc[1:]}."
  return command


def report(run) -> None:
  """What a finished (or stopped) run prints: its folder, its final evaluation, its figures."""
  records = run.read_metrics()
  last = records[-1] if records else {}
  evals = [r for r in records if any(k.startswith("eval/") for k in r)]
  final = evals[-1] if evals else {}
  typer.echo(f"run folder: {run.path}")
  if "eval/episode_return" in final:
    per_seed = ", ".join(num(v) for v in final["eval/episode_return"])
    typer.echo(f"final evaluation return: mean {num(final['eval/episode_return_mean'])} "
               f"(per seed: {per_seed}) after {final['env_steps']} env steps, "
               f"{final['wall_s']:.0f} s")
  if "eval/normalized_score" in final:
    per_seed = ", ".join(f"{v:.1f}" for v in final["eval/normalized_score"])
    typer.echo(f"normalised score (D4RL's): mean {final['eval/normalized_score_mean']:.1f} "
               f"(per seed: {per_seed})")
  for opp in ("random", "greedy"):
    if f"eval/win_vs_{opp}_mean" in final:
      typer.echo(f"against {opp}: win {final[f'eval/win_vs_{opp}_mean']:.1%}, draw "
                 f"{final[f'eval/draw_vs_{opp}_mean']:.1%}, loss "
                 f"{final[f'eval/loss_vs_{opp}_mean']:.1%}")
  if "train/cumulative_reward_mean" in last:
    typer.echo(f"cumulative reward after {last['env_steps']} steps: "
               f"{last['train/cumulative_reward_mean']:.1f}; greedy path: "
               f"{final.get('eval/steps_to_goal_mean', float('nan')):.1f} steps")
  typer.echo(f"learning curve: {run.path / 'curve.png'}")
  for name in _FIGURES:
    if (run.path / name).exists():
      typer.echo(f"{name}: {run.path / name}")


for _algo in ALGOS.values():
  if _algo.external_train is not None:
    train_app.command(_algo.name)(_make_external_command(_algo))
  else:
    train_app.command(_algo.name)(_make_command(_algo))
