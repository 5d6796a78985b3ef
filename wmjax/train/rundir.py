"""A run folder: ``config.json``, ``metrics.jsonl``, ``curve.png``, ``checkpoints/``."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np

__all__ = ["RunDir", "RunExistsError", "to_jsonable"]


class RunExistsError(FileExistsError):
  pass


def to_jsonable(x: Any) -> Any:
  """Numbers, arrays, tuples and dataclass-like dicts to plain JSON values (NaN -> None)."""
  if isinstance(x, dict):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  if hasattr(x, "shape") and hasattr(x, "tolist"):
    return to_jsonable(np.asarray(x).tolist())
  if isinstance(x, float):
    return x if math.isfinite(x) else None
  if isinstance(x, (np.floating,)):
    return to_jsonable(float(x))
  if isinstance(x, (np.integer,)):
    return int(x)
  return x


class RunDir:
  """Creates (or reopens with ``resume``) a run folder. Refuses to overwrite an existing run."""

  def __init__(self, path: str | pathlib.Path, *, resume: bool = False):
    self.path = pathlib.Path(path)
    exists = (self.path / "config.json").exists()
    if exists and not resume:
      raise RunExistsError(
          f"{self.path} already holds a run (config.json is there). Pass --resume to continue "
          "it, or choose a new --out folder.")
    if resume and not exists:
      raise FileNotFoundError(f"--resume: {self.path} holds no run (no config.json) to resume.")
    self.path.mkdir(parents=True, exist_ok=True)
    self.resumed = resume

  @property
  def config_path(self) -> pathlib.Path:
    return self.path / "config.json"

  @property
  def metrics_path(self) -> pathlib.Path:
    return self.path / "metrics.jsonl"

  @property
  def checkpoint_dir(self) -> pathlib.Path:
    return self.path / "checkpoints"

  def write_config(self, config: dict) -> None:
    self.config_path.write_text(json.dumps(to_jsonable(config), indent=2) + "\n")

  def read_config(self) -> dict:
    return json.loads(self.config_path.read_text())

  def log(self, record: dict) -> None:
    with self.metrics_path.open("a") as f:
      f.write(json.dumps(to_jsonable(record)) + "\n")

  def read_metrics(self) -> list[dict]:
    if not self.metrics_path.exists():
      return []
    records = []
    lines = [line for line in self.metrics_path.read_text().splitlines() if line]
    for i, line in enumerate(lines):
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        if i == len(lines) - 1:   # a line cut short when the process was killed mid-write
          break
        raise
    return records

  def truncate_metrics(self, last_iteration: int) -> None:
    """Drops records logged after ``last_iteration`` (work lost when a run stopped early)."""
    kept = [r for r in self.read_metrics() if r.get("iteration", 0) <= last_iteration]
    self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

  def discard(self) -> None:
    """Removes a run folder that never started (config written, nothing trained): its
    ``config.json``, an empty ``metrics.jsonl`` and ``checkpoints/``, and the folder if empty."""
    import shutil

    if self.checkpoint_dir.exists() and not any(
        p for p in self.checkpoint_dir.iterdir() if not p.name.startswith(".")):
      shutil.rmtree(self.checkpoint_dir)
    if self.metrics_path.exists() and not self.metrics_path.read_text().strip():
      self.metrics_path.unlink()
    if self.config_path.exists():
      self.config_path.unlink()
    if self.path.exists() and not any(self.path.iterdir()):
      self.path.rmdir()

