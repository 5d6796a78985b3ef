"""``wmjax dataset collect`` and ``wmjax dataset info``: D4RL-style offline datasets made in
wmjax's own envs from training runs (:mod:`wmjax.offline.collect`), and what a dataset holds."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Annotated

import typer

from wmjax.cli.common import app, at_least_one, fail, message_of

__all__ = []

dataset_app = typer.Typer(
    help="Offline datasets (D4RL's kinds: random, medium, medium-replay, expert, "
    "medium-expert) collected in wmjax's envs from training runs, for the offline agents "
    "(`wmjax train iql --dataset PATH`).", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


def _errors():
  from wmjax.offline.dataset import DatasetError

  return (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError,
          NotImplementedError, DatasetError)


def _kinds(text: str) -> list[str]:
  from wmjax.offline.collect import SUITE_KINDS

  kinds = list(SUITE_KINDS) if text.strip() == "all" else [
      k.strip() for k in text.split(",") if k.strip()]
  unknown = [k for k in kinds if k not in SUITE_KINDS]
  if unknown or not kinds:
    fail(f"unknown dataset kind {', '.join(map(repr, unknown)) or repr(text)}; accepted: "
         f"{', '.join(SUITE_KINDS)}, a comma-separated list of them, or all")
  return kinds


@dataset_app.command("collect", epilog=(
    "Examples:\n\n"
    "  wmjax dataset collect --env fast/PointMass --kind random --size 20000 --out data\n\n"
    "  wmjax train sac --env brax/halfcheetah --steps 120000 --set eval_every=5000 "
    "--out runs/sac-hc\n\n"
    "  wmjax dataset collect --env brax/halfcheetah --kind all --run runs/sac-hc --out data\n\n"
    "  (writes data/brax-halfcheetah-random, -medium, -medium-replay, -expert, "
    "-medium-expert)\n\n"
    "  wmjax train iql --dataset data/brax-halfcheetah-medium"))
def collect_command(
    env: Annotated[str, typer.Option(help="The registered env, e.g. brax/halfcheetah; the run "
                                     "must have been trained on it.")],
    out: Annotated[pathlib.Path, typer.Option(
        help="Folder for the datasets: each goes to OUT/<env-with-dashes>-<kind>/ (refused if "
        "that already holds a dataset).")],
    kind: Annotated[str, typer.Option(
        help="random | medium | medium-replay | expert | medium-expert, a comma-separated "
        "list, or all. random: uniform random actions. medium: the run's checkpoint whose "
        "evaluation return is closest to random + 1/3 (expert - random). medium-replay: the "
        "run's replay up to the medium checkpoint, reconstructed from its checkpoints (brax "
        "SAC/PPO runs). expert: the final checkpoint. medium-expert: both concatenated.")] =
    "all",
    run: Annotated[pathlib.Path | None, typer.Option(
        help="The training run folder the policies come from (`wmjax train ...`; brax's SAC "
        "and PPO keep a checkpoint per evaluation, as medium and medium-replay want). Not "
        "needed for --kind random.")] = None,
    expert_run: Annotated[pathlib.Path | None, typer.Option(
        help="Another run folder for the expert policy (default: --run).")] = None,
    expert: Annotated[str, typer.Option(
        help="Which checkpoint is the expert: final, or best (highest logged evaluation "
        "return).")] = "final",
    seed_index: Annotated[int, typer.Option(help="Which seed of the run(s) acts.")] = 0,
    size: Annotated[int, typer.Option(
        help="Transitions of random, medium and expert each (medium-expert has both; "
        "medium-replay holds what the replay held).", callback=at_least_one("--size"))] =
    100_000,
    num_envs: Annotated[int, typer.Option(
        help="Envs run in parallel, at most (as few are used as let each run whole "
        "episodes).", callback=at_least_one("--num-envs"))] = 64,
    reference_episodes: Annotated[int, typer.Option(
        help="Episodes for each reference return of the normalised score (the random policy; "
        "the expert acting by its mode).", callback=at_least_one("--reference-episodes"))] =
    20,
    action_repeat: Annotated[int | None, typer.Option(
        help="The env's action repeat (without --run; with one, the run's is used and this "
        "must agree).", callback=at_least_one("--action-repeat"))] = None,
    episode_length: Annotated[int | None, typer.Option(
        help="Env steps per episode (without --run; with one, the run's).",
        callback=at_least_one("--episode-length"))] = None,
    sample: Annotated[bool, typer.Option(
        help="Behaviour policies sample their actions (D4RL), rather than act by their "
        "mode.")] = True,
    medium_fraction: Annotated[float, typer.Option(
        help="The medium policy's target return: this fraction of the way from the random to "
        "the expert return.")] = 1.0 / 3.0,
    medium_checkpoint: Annotated[int | None, typer.Option(
        help="Use this checkpoint (env steps for brax runs) as the medium policy instead of "
        "choosing by return.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the collection.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
):
  """Collect offline datasets in an env: uniform random, or from a training run's policies."""
  from wmjax.offline import save
  from wmjax.offline.collect import collect_suite, dataset_name

  kinds = _kinds(kind)
  if run is not None and not run.is_dir():
    fail(f"no run folder at {run} (--run takes a folder written by `wmjax train`)")
  if expert_run is not None and not expert_run.is_dir():
    fail(f"no run folder at {expert_run} (--expert-run)")
  if expert not in ("final", "best"):
    fail(f"--expert takes final or best, got {expert!r}")
  targets = {k: out / dataset_name(env, k) for k in kinds}
  taken = [str(p) for p in targets.values() if p.exists() and any(p.iterdir())]
  if taken:
    fail(f"{', '.join(taken)} already exist(s) and hold files; choose another --out or remove "
         "them")

  def log(message: str) -> None:
    typer.echo(message, err=True)

  def bar(name: str):
    if not progress:
      return None
    from tqdm.auto import tqdm

    state = {}

    def update(done: int, total: int) -> None:
      if "bar" not in state:
        state["bar"] = tqdm(total=total, unit="transition", desc=name, dynamic_ncols=True,
                            leave=False)
      state["bar"].update(done - state["bar"].n)
      if done >= total:
        state["bar"].close()
    return update

  def saved(name: str, data) -> None:
    path = save(data, targets[name])
    wall = data.meta.get("collection", {}).get("wall_s")
    typer.echo(f"{path}:")
    typer.echo("  " + data.describe().replace("\n", "\n  "))
    if wall is not None:
      typer.echo(f"  collected in {wall:.1f} s ({data.size / max(wall, 1e-9):,.0f} "
                 "transitions/s, compilation included)")

  t0 = time.perf_counter()
  try:
    collect_suite(env, kinds, run=run, expert_run=expert_run, seed_index=seed_index, size=size,
                  num_envs=num_envs, reference_episodes=reference_episodes,
                  action_repeat=action_repeat, episode_length=episode_length, seed=seed,
                  sample=sample, medium_fraction=medium_fraction,
                  medium_checkpoint=medium_checkpoint, expert=expert, log=log, progress=bar,
                  on_dataset=saved)
  except _errors() as e:
    fail(message_of(e))
  typer.echo(f"{len(kinds)} dataset(s) in {out}, {time.perf_counter() - t0:.1f} s in all")


@dataset_app.command("info")
def info_command(
    path: Annotated[pathlib.Path, typer.Argument(
        help="A dataset folder (transitions.npz and dataset.json).")],
):
  """What a dataset holds: size, episodes, returns, reference scores and its metadata."""
  from wmjax.offline import load

  try:
    data = load(path)
  except _errors() as e:
    fail(message_of(e))
  typer.echo(data.describe())
  typer.echo(json.dumps(data.meta, indent=1))
