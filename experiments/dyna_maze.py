"""Reproduce Sutton & Barto's Dyna-Q figures (2nd ed., chapter 8) with tabular Dyna-Q in JAX.

- Figure 8.2 (Example 8.1, the 6x9 Dyna maze): steps per episode over the first 50 episodes for
  n = 0, 5 and 50 planning steps, mean of 30 runs, with the book's settings (alpha 0.1,
  epsilon 0.1, gamma 0.95, Q = 0 initially, greedy ties broken at random). The book: with
  n = 50 the agent reaches the 14-step path in about 3 episodes, n = 5 about 5, n = 0 about 25.
- Figure 8.4 (Example 8.2, the blocking maze): cumulative reward over 3000 time steps for
  Dyna-Q and Dyna-Q+; the short path on the right is blocked after 1000 steps and a longer one
  opens on the left. Dyna-Q+ should find the new path sooner.
- Figure 8.5 (Example 8.3, the shortcut maze): cumulative reward over 6000 time steps; a shorter
  path opens on the right after 3000 steps. Dyna-Q+ should find it; Dyna-Q usually never does.

The book does not give the settings of Figures 8.4 and 8.5; ``changing_maze_config`` uses
alpha 1.0 (the mazes are deterministic, so one update sets a value), n = 10, epsilon 0.1,
gamma 0.95 and kappa 1e-3 for Dyna-Q+ (kappa 1e-2 is too large here: the bonus then outweighs
the goal and Dyna-Q+ stops reaching it).

Every configuration's runs are one program (``jax.jit(jax.vmap(...))`` over the run keys); each
configuration uses the same keys.

    python experiments/dyna_maze.py --runs 30 --out experiments/results/dyna

Writes ``figure_8_2.{png,json}``, ``figure_8_4.{png,json}`` and ``figure_8_5.{png,json}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from wmjax.agents.dyna import DynaConfig, make_dyna  # noqa: E402
from wmjax.envs import grid  # noqa: E402

BOOK_8_2 = {0: 25, 5: 5, 50: 3}   # episodes to the 14-step path, read off Figure 8.2
PLANNING_STEPS_8_2 = (0, 5, 50)
EPISODES_8_2 = 50
# "Reaching" the 14-step path: an epsilon-greedy agent never averages 14 steps. Its floor is
# the expected length of an epsilon-greedy walk around an optimal policy (15.9 steps here).
CLOSE = 1.10   # first episode whose mean is within 10% of that floor
STAYS = 1.25   # first episode from which the mean stays within 25% of it up to episode 50


def example_8_1_config(planning_steps: int) -> DynaConfig:
  """The book's Example 8.1 settings."""
  return DynaConfig(planning_steps=planning_steps, alpha=0.1, epsilon=0.1, gamma=0.95)


def changing_maze_config(kappa: float = 0.0) -> DynaConfig:
  """Figures 8.4 and 8.5 (settings not given in the book; see the module docstring)."""
  return DynaConfig(planning_steps=10, alpha=1.0, epsilon=0.1, gamma=0.95, kappa=kappa)


KAPPA_PLUS = 1e-3


def _episodes_program(env, config: DynaConfig, num_episodes: int):
  dyna = make_dyna(env, config)
  return jax.jit(jax.vmap(lambda key: dyna.run_episodes(dyna.init(key), key, num_episodes)[1]))


def _steps_program(env, config: DynaConfig, num_steps: int):
  dyna = make_dyna(env, config)

  def run(key):
    state, rewards = dyna.run_steps(dyna.init(key), key, num_steps)
    return rewards, state.q

  return jax.jit(jax.vmap(run))


def _first(mask: np.ndarray) -> int | None:
  hits = np.flatnonzero(mask)
  return int(hits[0]) if hits.size else None


def episodes_to_reach(mean_steps: np.ndarray, floor: float) -> dict:
  """Both definitions of "reaches the path" for a curve of mean steps ``[E]`` (episode 1 first).

  Episodes are 1-based; the first episode (a random walk for every n) is skipped, as the book's
  plot does. None where never reached within the curve.
  """
  curve = mean_steps[1:]
  close = _first(curve <= CLOSE * floor)
  above = np.flatnonzero(curve > STAYS * floor)
  stays = 0 if above.size == 0 else (None if above[-1] == curve.size - 1 else int(above[-1]) + 1)
  to_episode = lambda i: None if i is None else i + 2
  return {"first_within_10pct": to_episode(close), "stays_within_25pct": to_episode(stays)}


def figure_8_2(runs: int, seed: int, out: pathlib.Path) -> dict:
  env = grid.GridMaze(grid.DYNA_MAZE)
  maze = env.maze
  shortest = int(grid.distances_to_goal(maze)[maze.start])
  floor = grid.expected_steps(maze, 0.1)
  keys = jax.random.split(jax.random.PRNGKey(seed), runs)
  curves, reach, timing = {}, {}, {}
  for n in PLANNING_STEPS_8_2:
    start = time.perf_counter()
    steps = np.asarray(_episodes_program(env, example_8_1_config(n), EPISODES_8_2)(keys))
    timing[n] = time.perf_counter() - start
    curves[n] = steps.mean(axis=0)
    reach[n] = episodes_to_reach(curves[n], floor)
  result = {
      "figure": "Sutton & Barto Figure 8.2 (Example 8.1, Dyna maze)",
      "settings": {**dataclasses.asdict(example_8_1_config(0)), "planning_steps": "varies",
                   "runs": runs, "episodes": EPISODES_8_2, "seed": seed},
      "shortest_path": shortest,
      "epsilon_greedy_floor": floor,
      "definition": (
          "Episodes are 1-based and episode 1 (a random walk for every n) is skipped, as in the "
          "book's plot. 'first_within_10pct': the first episode whose mean steps over the runs "
          f"is <= {CLOSE} x {floor:.2f} = {CLOSE * floor:.2f}, where {floor:.2f} is the "
          "expected episode length of an epsilon-greedy (0.1) walk around an optimal policy "
          f"(the {shortest}-step path plus exploration: where a converged Q-learner settles). "
          "'stays_within_25pct': the first episode from which the mean stays <= "
          f"{STAYS} x {floor:.2f} = {STAYS * floor:.2f} up to episode {EPISODES_8_2}."),
      "episodes_to_reach": {str(n): reach[n] for n in PLANNING_STEPS_8_2},
      "book_episodes_to_reach": {str(n): v for n, v in BOOK_8_2.items()},
      "mean_steps_per_episode": {str(n): curves[n].round(3).tolist() for n in PLANNING_STEPS_8_2},
      "wall_s_per_n": {str(n): round(t, 2) for n, t in timing.items()},
  }
  _plot_8_2(curves, shortest, floor, runs, out / "figure_8_2.png")
  (out / "figure_8_2.json").write_text(json.dumps(result, indent=1))
  return result


def _recovery_steps(rewards: np.ndarray, switch: int) -> np.ndarray:
  """Per run: steps after the switch until the first goal (``T - switch`` if none)."""
  after = rewards[:, switch:] > 0
  return np.where(after.any(axis=1), after.argmax(axis=1) + 1, after.shape[1])


def _greedy_path_length(env: grid.GridMaze, q: np.ndarray, layout: int, cap: int = 100) -> int:
  """Steps of the greedy policy (first maximum) from the start to the goal; ``cap`` if looping."""
  cell = env.start_cell
  for steps in range(cap):
    if cell == env.goal_cell:
      return steps
    cell = int(env.transitions[layout, cell, int(np.argmax(q[cell]))])
  return cap


def changing_maze_figure(name: str, spec: grid.MazeSpec, num_steps: int, runs: int, seed: int,
                         out: pathlib.Path) -> dict:
  env = grid.GridMaze(spec)
  switch = env.switch_step
  keys = jax.random.split(jax.random.PRNGKey(seed), runs)
  floors = [grid.expected_steps(m, 0.1) for m in (env.maze, env.switched_maze)]
  agents, cumulative = {}, {}
  for label, kappa in (("Dyna-Q", 0.0), ("Dyna-Q+", KAPPA_PLUS)):
    start = time.perf_counter()
    rewards, q = _steps_program(env, changing_maze_config(kappa), num_steps)(keys)
    rewards, q = np.asarray(rewards), np.asarray(q)
    wall = time.perf_counter() - start
    cum = rewards.cumsum(axis=1)                                     # [runs, T]
    cumulative[label] = cum
    greedy = [_greedy_path_length(env, q[r], layout=1) for r in range(runs)]
    agents[label] = {
        "kappa": kappa,
        "cumulative_at_switch": float(cum[:, switch - 1].mean()),
        "cumulative_at_end": float(cum[:, -1].mean()),
        "cumulative_at_end_stderr": float(cum[:, -1].std(ddof=1) / np.sqrt(runs)),
        "rewards_per_1000_after_switch": float(
            (cum[:, -1] - cum[:, switch - 1]).mean() * 1000 / (num_steps - switch)),
        "rewards_per_1000_last_1000": float((cum[:, -1] - cum[:, -1001]).mean()),
        "mean_steps_to_first_goal_after_switch": float(_recovery_steps(rewards, switch).mean()),
        "runs_without_goal_after_switch": int((cum[:, -1] == cum[:, switch - 1]).sum()),
        "final_greedy_path_lengths": greedy,
        "wall_s": round(wall, 2),
    }
  result = {
      "figure": name,
      "settings": {"dyna_q": dataclasses.asdict(changing_maze_config(0.0)),
                   "dyna_q_plus": dataclasses.asdict(changing_maze_config(KAPPA_PLUS)),
                   "runs": runs, "time_steps": num_steps, "switch_step": switch, "seed": seed},
      "shortest_path_before_after": [
          int(grid.distances_to_goal(m)[m.start]) for m in (env.maze, env.switched_maze)],
      "optimal_epsilon_greedy_rewards_per_1000_before_after": [1000 / f for f in floors],
      "agents": agents,
      "mean_cumulative_reward_every_100_steps": {
          label: cum.mean(axis=0)[99::100].round(3).tolist() for label, cum in cumulative.items()},
  }
  stem = "figure_8_4" if "8.4" in name else "figure_8_5"
  _plot_cumulative(cumulative, switch, name, runs, out / f"{stem}.png")
  (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
  return result


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _plot_8_2(curves: dict, shortest: int, floor: float, runs: int, path: pathlib.Path) -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.2))
  episodes = np.arange(1, EPISODES_8_2 + 1)
  for n, color in zip(PLANNING_STEPS_8_2, ("tab:blue", "tab:orange", "tab:red"), strict=True):
    ax.plot(episodes[1:], curves[n][1:], color=color, linewidth=1.8,
            label=f"{n} planning steps" + (" (direct RL only)" if n == 0 else ""))
  ax.axhline(shortest, color="gray", linestyle="--", linewidth=1,
             label=f"shortest path ({shortest} steps)")
  ax.axhline(floor, color="gray", linestyle=":", linewidth=1,
             label=f"epsilon-greedy around the optimum ({floor:.1f})")
  ax.set_xlim(2, EPISODES_8_2)
  ax.set_ylim(0, 800)
  ax.set_xlabel("episodes (the first, a random walk, not shown)")
  ax.set_ylabel("steps per episode")
  ax.set_title(f"Dyna-Q on the Dyna maze (Figure 8.2), mean of {runs} runs")
  ax.grid(alpha=0.3)
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_cumulative(cumulative: dict, switch: int, name: str, runs: int,
                     path: pathlib.Path) -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.2))
  for (label, cum), color in zip(cumulative.items(), ("tab:blue", "tab:red"), strict=True):
    steps = np.arange(1, cum.shape[1] + 1)
    mean = cum.mean(axis=0)
    stderr = cum.std(axis=0, ddof=1) / np.sqrt(cum.shape[0])
    ax.plot(steps, mean, color=color, linewidth=1.8, label=label)
    ax.fill_between(steps, mean - stderr, mean + stderr, color=color, alpha=0.2, linewidth=0)
  ax.axvline(switch, color="gray", linestyle="--", linewidth=1, label="maze changes")
  ax.set_xlabel("time steps")
  ax.set_ylabel("cumulative reward")
  ax.set_title(f"{name}, mean of {runs} runs (band: 1 standard error)")
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n".join(__doc__.splitlines()[1:]))
  parser.add_argument("--runs", type=int, default=30, help="independent runs per curve")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--figures", nargs="+", choices=["8.2", "8.4", "8.5"],
                      default=["8.2", "8.4", "8.5"])
  parser.add_argument("--out", default="experiments/results/dyna", help="output folder")
  args = parser.parse_args()
  if args.runs < 2:
    parser.error("--runs must be at least 2")
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  lines = [f"JAX {jax.__version__} on {jax.devices()[0].device_kind}, {args.runs} runs"]
  if "8.2" in args.figures:
    r = figure_8_2(args.runs, args.seed, out)
    lines.append(f"Figure 8.2 (Dyna maze; shortest path {r['shortest_path']}, epsilon-greedy "
                 f"floor {r['epsilon_greedy_floor']:.2f} steps): episodes to the path")
    lines.append(f"  {'n':>3}  {'within 10%':>10}  {'stays <25%':>10}  {'book':>5}  "
                 f"{'ep 2':>6}  {'ep 10':>6}  {'ep 50':>6}")
    for n in PLANNING_STEPS_8_2:
      reach, curve = r["episodes_to_reach"][str(n)], r["mean_steps_per_episode"][str(n)]
      lines.append(f"  {n:>3}  {reach['first_within_10pct']!s:>10}  "
                   f"{reach['stays_within_25pct']!s:>10}  {BOOK_8_2[n]:>5}  {curve[1]:>6.1f}  "
                   f"{curve[9]:>6.1f}  {curve[49]:>6.1f}")
  for fig, spec, steps in (("8.4", grid.BLOCKING_MAZE, 3000), ("8.5", grid.SHORTCUT_MAZE, 6000)):
    if fig not in args.figures:
      continue
    maze = "blocking" if fig == "8.4" else "shortcut"
    r = changing_maze_figure(f"Figure {fig} ({maze} maze)", spec, steps, args.runs, args.seed,
                             out)
    switch = r["settings"]["switch_step"]
    lines.append(f"Figure {fig} ({maze} maze, switch at {switch}, {steps} steps): cumulative "
                 "reward")
    best = r["shortest_path_before_after"][1]
    lines.append(f"  {'agent':<8} {'at switch':>9} {'at end':>13} {'per 1000 after':>14} "
                 f"{'first goal after':>16} {'last 1000':>9} {f'greedy {best}':>9}")
    for label, a in r["agents"].items():
      paths = np.asarray(a["final_greedy_path_lengths"])
      lines.append(f"  {label:<8} {a['cumulative_at_switch']:>9.1f} "
                   f"{a['cumulative_at_end']:>7.1f} ±{a['cumulative_at_end_stderr']:>4.1f} "
                   f"{a['rewards_per_1000_after_switch']:>14.1f} "
                   f"{a['mean_steps_to_first_goal_after_switch']:>16.0f} "
                   f"{a['rewards_per_1000_last_1000']:>9.1f} {(paths == best).mean():>9.0%}")
    lines.append("  first goal after: mean steps from the switch to the next goal "
                 f"({steps - switch} if never)")
    lines.append(f"  greedy {best}: share of runs whose final greedy policy takes the new "
                 f"{best}-step path")
    lines.append("  (Dyna-Q+'s values include its bonus, so its greedy policy may wander on "
                 "purpose)")
  lines.append(f"wall-clock {time.perf_counter() - start:.0f} s; results in {out}/")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
