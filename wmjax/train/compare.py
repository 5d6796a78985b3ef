"""``wmjax compare RUN_DIR...``: evaluation return of several runs on one figure, against env
steps (sample efficiency) and against wall-clock, with a table of returns at chosen steps.

Runs are grouped into panels by environment; each run is one line (the mean over its seeds,
with the range of its seeds shaded).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from wmjax.train.plots import seeds_label

__all__ = ["RunCurve", "load_curve", "compare_runs", "value_at"]

_KEY = "eval/episode_return"


class RunCurve:
  """One run's evaluation curve: ``steps [T]``, ``wall [T]``, ``returns [T, seeds]``."""

  def __init__(self, path: pathlib.Path, algo: str, env: str, steps, wall, returns):
    self.path, self.algo, self.env = path, algo, env
    self.steps, self.wall, self.returns = steps, wall, returns

  @property
  def label(self) -> str:
    seeds = self.returns.shape[1]
    return f"{self.algo} ({self.path.name}, {seeds_label(seeds)})"


def load_curve(run_dir: str | pathlib.Path) -> RunCurve:
  """Reads a run folder's evaluation records; a clear error if it has none."""
  path = pathlib.Path(run_dir)
  config_path = path / "config.json"
  if not config_path.exists():
    raise FileNotFoundError(f"{path} holds no run (no config.json); pass folders written by "
                            "`wmjax train`.")
  config = json.loads(config_path.read_text())
  metrics_path = path / "metrics.jsonl"
  records = []
  if metrics_path.exists():
    for line in metrics_path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue   # a line cut short by a killed run
      if record.get(_KEY) is not None:
        records.append(record)
  if not records:
    raise ValueError(f"{path} has no evaluation records yet ({_KEY} in metrics.jsonl)")
  steps = np.array([r["env_steps"] for r in records], float)
  wall = np.array([r.get("wall_s", np.nan) for r in records], float)
  returns = np.array([np.atleast_1d(np.asarray(r[_KEY], float)) for r in records])
  return RunCurve(path, config.get("algo", "?"), config.get("env", "?"), steps, wall, returns)


def value_at(curve: RunCurve, step: float, tolerance: float = 0.1) -> np.ndarray | None:
  """Per-seed return of the evaluation nearest to ``step`` env steps (within ``tolerance`` of
  it, relative), or None if the run has none there."""
  i = int(np.argmin(np.abs(curve.steps - step)))
  if abs(curve.steps[i] - step) > tolerance * step:
    return None
  return curve.returns[i]


def compare_runs(run_dirs, out: str | pathlib.Path, at_steps=(), title: str = "") -> list[dict]:
  """Draws ``out`` (PNG) and returns the table rows: per run, the mean and per-seed returns at
  each of ``at_steps``, the last evaluation and the wall-clock."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  curves = [load_curve(d) for d in run_dirs]
  envs = list(dict.fromkeys(c.env for c in curves))
  fig, axes = plt.subplots(len(envs), 2, figsize=(12, 4.2 * len(envs)), squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for row, env in enumerate(envs):
    for i, c in enumerate(x for x in curves if x.env == env):
      color = colors[i % len(colors)]
      mean = c.returns.mean(axis=1)
      for col, x in enumerate((c.steps, c.wall)):
        ax = axes[row, col]
        ax.plot(x, mean, color=color, linewidth=2, marker="o", markersize=3, label=c.label)
        if c.returns.shape[1] > 1:
          ax.fill_between(x, c.returns.min(axis=1), c.returns.max(axis=1), color=color,
                          alpha=0.15, linewidth=0)
    for col, xlabel in enumerate(("env steps", "wall-clock (s)")):
      ax = axes[row, col]
      ax.set_xlabel(xlabel)
      ax.set_ylabel("evaluation return")
      ax.set_title(f"{env}: return against {xlabel.split(' (')[0]}")
      ax.grid(alpha=0.3)
      for step in at_steps if col == 0 else ():
        ax.axvline(step, color="gray", linewidth=0.6, linestyle=":")
      ax.legend(fontsize=7, loc="best")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)

  rows = []
  for c in curves:
    row = {"run": str(c.path), "algo": c.algo, "env": c.env, "seeds": int(c.returns.shape[1]),
           "last_env_steps": int(c.steps[-1]), "last_return": float(c.returns[-1].mean()),
           "wall_s": float(c.wall[-1]) if np.isfinite(c.wall[-1]) else None}
    for step in at_steps:
      v = value_at(c, step)
      row[f"return@{int(step)}"] = None if v is None else float(v.mean())
      row[f"per_seed@{int(step)}"] = None if v is None else [float(x) for x in v]
    rows.append(row)
  return rows
