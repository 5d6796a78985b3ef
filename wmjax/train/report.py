"""A sweep's aggregate: per program and hyperparameter point, the final metric over seeds
(mean with a 95% bootstrap interval, and the IQM), as ``summary.json``, ``summary.md`` and
``sweep.png``."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from wmjax.train.common import RunAxis
from wmjax.train.grid import grid_label
from wmjax.train.rundir import RunDir, to_jsonable

__all__ = ["aggregate", "bootstrap_ci", "iqm"]


def bootstrap_ci(values, stat=np.mean, samples: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
  """Percentile bootstrap interval of ``stat`` over ``values`` (resampled with replacement)."""
  values = np.asarray(values, float)
  if values.size == 0:
    return math.nan, math.nan
  if values.size == 1:
    return float(values[0]), float(values[0])
  rng = np.random.default_rng(seed)
  draws = values[rng.integers(0, values.size, size=(samples, values.size))]
  stats = np.apply_along_axis(stat, 1, draws) if stat is not np.mean else draws.mean(axis=1)
  lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
  return float(lo), float(hi)


def iqm(values) -> float:
  """Interquartile mean: the mean of the values left after cutting ``floor(n / 4)`` from each
  end (``scipy.stats.trim_mean(values, 0.25)``, which rliable's IQM is)."""
  x = np.sort(np.asarray(values, float))
  if x.size == 0:
    return math.nan
  cut = int(0.25 * x.size)
  return float(x[cut:x.size - cut].mean())


def _runs_of(folder: pathlib.Path):
  """``(config, run axis, metrics)`` of a run folder (a line cut short by a kill is skipped)."""
  run = RunDir(folder, resume=True)
  config = run.read_config()
  return config, RunAxis.from_saved(config), run.read_metrics()


def _pick_metric(lines: list[dict]) -> str | None:
  keys = {k for r in lines for k in r}
  # An offline run's D4RL normalised score first: it is what its table reports.
  for name in ("eval/normalized_score", "eval/episode_return", "eval/win_vs_greedy",
               "eval/steps_to_goal", "train/episode_return"):
    if name in keys:
      return name
  return None


def aggregate(out: str | pathlib.Path, metric: str | None = None) -> dict:
  """Reads every run folder of a sweep and writes ``summary.json``, ``summary.md`` and
  ``sweep.png``: per program and hyperparameter point, the final ``metric`` (default: the eval
  return, else the MuZero win rate against greedy, else the train return) per seed, its mean
  with a 95% bootstrap interval, and its IQM with one."""
  out = pathlib.Path(out)
  spec = json.loads((out / "sweep.json").read_text())
  static_labels = [grid_label(s) for s in spec["static"]]
  points = [dict(p) for p in spec["points"]]
  finals: dict[tuple[int, int], dict[int, float]] = {}
  curves: dict[tuple[int, int], dict[int, list[tuple[float, float]]]] = {}
  x_label = "env steps"
  for folder in sorted(p for p in out.iterdir() if (p / "config.json").exists()):
    label = folder.name.rsplit("-part", 1)[0]
    if label not in static_labels:
      continue
    c = static_labels.index(label)
    _, axis, lines = _runs_of(folder)
    metric = metric or _pick_metric(lines)
    if metric is None:
      continue
    for r, (p, s) in enumerate(axis.runs):
      for line in lines:
        if metric in line and line[metric] is not None:
          v = line[metric][r]
          if v is None:
            continue
          x, offline = _x_of(line)
          if offline:
            x_label = "gradient steps (offline: no env steps)"
          curves.setdefault((c, p), {}).setdefault(s, []).append((float(x), float(v)))
          finals.setdefault((c, p), {})[s] = float(v)
  rows = []
  for c, static in enumerate(spec["static"]):
    for p, point in enumerate(points):
      per_seed = finals.get((c, p), {})
      values = np.asarray([per_seed[s] for s in sorted(per_seed)], float)
      lo, hi = bootstrap_ci(values)
      ilo, ihi = bootstrap_ci(values, stat=iqm)
      rows.append({"program": static_labels[c], "static": static, "hyper": point,
                   "seeds_done": int(values.size),
                   "final_per_seed": {int(s): per_seed[s] for s in sorted(per_seed)},
                   "mean": float(values.mean()) if values.size else None,
                   "ci95": [lo, hi], "iqm": iqm(values), "iqm_ci95": [ilo, ihi]})
  table = _markdown(rows, metric, spec)
  summary = {"algo": spec["algo"], "env": spec["env"], "metric": metric, "rows": rows,
             "table_markdown": table}
  (out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
  (out / "summary.md").write_text(table + "\n")
  _plot(out / "sweep.png", curves, rows, spec, metric, x_label)
  return summary


def _fmt(x) -> str:
  return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def _markdown(rows: list[dict], metric: str | None, spec: dict) -> str:
  head = (f"Sweep of {spec['algo']} on {spec['env']}: final `{metric}` over seeds "
          "(mean with 95% bootstrap interval; IQM = interquartile mean, with its interval)\n\n"
          "| program | hyperparameters | seeds | mean | 95% CI | IQM | IQM 95% CI |\n"
          "|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    hyper = ", ".join(f"{k}={v:g}" for k, v in r["hyper"].items()) or "-"
    lines.append(f"| {r['program']} | {hyper} | {r['seeds_done']} | {_fmt(r['mean'])} | "
                 f"[{_fmt(r['ci95'][0])}, {_fmt(r['ci95'][1])}] | {_fmt(r['iqm'])} | "
                 f"[{_fmt(r['iqm_ci95'][0])}, {_fmt(r['iqm_ci95'][1])}] |")
  return "\n".join(lines)


def _plot(path: pathlib.Path, curves: dict, rows: list[dict], spec: dict, metric,
          x_label: str = "env steps") -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(12, 4.5))
  names = []
  for i, r in enumerate(rows):
    key = divmod(i, len(spec["points"]))     # rows are program-major, then point
    key = key if key in curves else None
    name = r["program"] if len(spec["static"]) > 1 else ""
    hyper = ", ".join(f"{k}={v:g}" for k, v in r["hyper"].items())
    name = ", ".join(x for x in (name, hyper) if x) or r["program"]
    names.append(name)
    color = f"C{i % 10}"
    if key is not None:
      per_seed = curves[key]
      xs = sorted({x for pts in per_seed.values() for x, _ in pts})
      table = np.full((len(per_seed), len(xs)), np.nan)
      for j, pts in enumerate(per_seed.values()):
        for x, v in pts:
          table[j, xs.index(x)] = v
      mean = np.nanmean(table, axis=0)
      band = np.asarray([bootstrap_ci(col[np.isfinite(col)], samples=1000) for col in table.T])
      ax_curve.plot(xs, mean, color=color, label=name, marker="o", markersize=3)
      ax_curve.fill_between(xs, band[:, 0], band[:, 1], color=color, alpha=0.2)
    if r["mean"] is not None:
      ax_bar.errorbar([i - 0.1], [r["mean"]], yerr=[[r["mean"] - r["ci95"][0]],
                                                     [r["ci95"][1] - r["mean"]]],
                      fmt="o", color=color, capsize=4)
      ax_bar.errorbar([i + 0.1], [r["iqm"]], yerr=[[r["iqm"] - r["iqm_ci95"][0]],
                                                    [r["iqm_ci95"][1] - r["iqm"]]],
                      fmt="s", color=color, capsize=4, mfc="white")
  ax_curve.set_xlabel(x_label)
  ax_curve.set_ylabel(metric or "metric")
  ax_curve.set_title(f"{spec['algo']} on {spec['env']}: mean over seeds, 95% bootstrap band")
  if rows:
    ax_curve.legend(fontsize=8)
  ax_bar.set_xticks(range(len(rows)))
  ax_bar.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
  ax_bar.set_title("final: mean (circle) and IQM (square), 95% CI")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _x_of(line: dict) -> tuple[float, bool]:
  """A metrics line's x and whether it is an offline run's: its env steps, or for an offline
  run (no env steps) its updates."""
  if not line.get("env_steps") and line.get("updates") is not None:
    return line["updates"], True
  return line.get("env_steps", line.get("iteration")), False
