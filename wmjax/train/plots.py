"""Learning curves from ``metrics.jsonl``: each seed thin, the mean thick."""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = ["plot_curve", "seeds_label"]


def seeds_label(seeds: int) -> str:
  """``"1 seed"``, ``"4 seeds"``: for progress bars, plot titles and legends."""
  return f"{seeds} seed{'s' if seeds > 1 else ''}"


def plot_curve(records: list[dict], path: str | pathlib.Path, *, title: str = "",
               keys: tuple[str, ...] = ("eval/episode_return", "train/episode_return"),
               x_key: str = "env_steps", reference: tuple[float, str] | None = None,
               y_label: str = "episode return", x_label: str | None = None) -> None:
  """Draws return against env steps for every key present; per-seed lists become thin lines."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for key, color in zip(keys, ("tab:blue", "tab:orange", "tab:green"), strict=False):
    rows = [r for r in records if r.get(key) is not None]
    if not rows:
      continue
    x = np.array([r[x_key] for r in rows], float)
    y = np.array([np.atleast_1d(r[key]) for r in rows], float)   # [T, seeds]
    if y.shape[1] > 1:
      for s in range(y.shape[1]):
        ax.plot(x, y[:, s], color=color, alpha=0.25, linewidth=0.8)
    label = key + (f" (mean of {y.shape[1]} seeds)" if y.shape[1] > 1 else "")
    ax.plot(x, y.mean(axis=1), color=color, linewidth=2, marker="o", markersize=3, label=label)
  if reference is not None:
    ax.axhline(reference[0], color="gray", linestyle="--", linewidth=1, label=reference[1])
  ax.set_xlabel(x_label or x_key.replace("_", " "))
  ax.set_ylabel(y_label)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  if ax.get_legend_handles_labels()[0]:
    ax.legend(loc="best", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
