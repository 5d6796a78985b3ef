"""``wmjax eval``, ``wmjax compare`` and ``wmjax play``: what one does with run folders."""

from __future__ import annotations

import pathlib
from typing import Annotated

import numpy as np
import typer

from wmjax.cli.common import app, fail, message_of, num

__all__ = []


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
    fail(f"--at takes comma-separated env steps, e.g. 20000,50000; got {at!r}")
  try:
    rows = compare_runs(run_dirs, out, at_steps=at_steps)
  except (ValueError, FileNotFoundError) as e:
    fail(str(e))
  header = ["algo", "env", "seeds", *[f"@{int(s)}" for s in at_steps], "last", "at steps",
            "wall s"]
  typer.echo("  ".join(f"{h:>12}" for h in header))
  for r in rows:
    cells = [r["algo"], r["env"].split("/")[-1][:12], str(r["seeds"])]
    cells += [num(r[f"return@{int(s)}"]) for s in at_steps]
    cells += [num(r["last_return"]), str(r["last_env_steps"]),
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
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Act with this setting instead of the run's, key=value, repeatable: e.g. "
        "a bigger planner on the trained model, --set population=800 --set iterations=8. "
        "Settings that change the checkpoint's arrays (an ensemble's size) are refused.")] =
    None,
):
  """Load a run's last checkpoint and evaluate it (returns; MuZero win/draw/loss rates; Dyna's
  greedy steps to the goal)."""
  from wmjax.train.algos import get_algo
  from wmjax.train.loop import evaluate_run, read_run_config

  if episodes < 1:
    fail(f"--episodes must be >= 1, got {episodes}")
  try:
    algo_name = read_run_config(run_dir)["algo"]
    algo = get_algo(algo_name)
  except (ValueError, FileNotFoundError, KeyError) as e:
    fail(message_of(e))
  if set_ and (algo.name == "muzero" or algo.build is None):
    fail(f"--set is for wmjax's own agents (not {algo.name}); MuZero's search size is "
         "--simulations")
  if algo.name == "muzero":
    _eval_muzero(run_dir, opponent=opponent, games=games, seed=seed, simulations=simulations)
    return
  if opponent is not None:
    fail(f"--opponent is for MuZero board-game runs; {run_dir} is a {algo.name!r} run")
  if algo.build is None:
    fail(f"{run_dir} is a {algo.name!r} run (brax's trainer keeps no checkpoint wmjax can "
         "load); its evaluations are in metrics.jsonl")
  try:
    results, saved, step, algo = evaluate_run(run_dir, episodes=episodes, seed=seed,
                                              sets=set_ or ())
  except (ValueError, FileNotFoundError, KeyError) as e:
    fail(message_of(e))
  returns = results[algo.eval_metric]
  acting = f", acting with {', '.join(set_)}" if set_ else ""
  typer.echo(f"{saved['algo']} on {saved['env']}, checkpoint iteration {step}, "
             f"{episodes} episode(s) per seed{acting}")
  for i, row in enumerate(returns):
    typer.echo(f"  seed {i}: " + "  ".join(f"{r:8.1f}" for r in row) +
               f"   mean {row.mean():8.1f}")
  typer.echo(f"mean {algo.eval_label} {returns.mean():.1f} +- {returns.std():.1f} over "
             f"{returns.size} episodes")
  if "eval/normalized_score" in results:   # offline runs on a dataset with reference returns
    score = np.asarray(results["eval/normalized_score"])
    per_seed = ", ".join(f"{v:.1f}" for v in score.mean(-1))
    typer.echo(f"normalised score (D4RL's): mean {score.mean():.1f} (per seed: {per_seed})")


def _eval_muzero(run_dir, *, opponent, games, seed, simulations) -> None:
  from wmjax.agents import arena
  from wmjax.train.matches import evaluate_muzero_run, match_runs

  opponent = opponent or "random"
  try:
    if opponent in arena.OPPONENTS:
      results, saved, step, two_player = evaluate_muzero_run(
          run_dir, games=games, opponent=opponent, seed=seed, simulations=simulations)
      label = opponent
    else:
      if not (pathlib.Path(opponent) / "config.json").exists():
        fail(f"--opponent {opponent!r} is neither {', '.join(arena.OPPONENTS)} nor a run "
              "folder")
      outcome, saved, _ = match_runs(run_dir, opponent, games=games, seed=seed,
                                     simulations=simulations)
      results, step, two_player, label = outcome[None], "last", True, f"run {opponent}"
  except (ValueError, FileNotFoundError) as e:
    fail(str(e))
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
    fail(str(e))

