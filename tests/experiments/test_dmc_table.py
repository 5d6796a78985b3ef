"""experiments/dmc_table.py: the suite driver resumes a run it stopped (to the metrics of an
uninterrupted run), skips what is finished, and its table reads the runs' own evaluations."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))

import dmc_table  # noqa: E402

# A tiny PETS on the point mass (the shapes of tests/train/tiny.py: its programs are cached).
SETS = {"pets": ["initial_episodes=1", "population=16", "iterations=2", "model_train_steps=20",
                 "eval_every=1"]}
TASKS = ("fast/PointMass",)


def _lines(path: pathlib.Path) -> list[dict]:
  return [{k: v for k, v in json.loads(x).items() if not (k.endswith("_s") or "time" in k)}
          for x in (path / "metrics.jsonl").read_text().splitlines() if x]


def test_the_suite_resumes_skips_what_is_done_and_tabulates_the_runs(tmp_path):
  kw = dict(agents=("pets",), tasks=TASKS, env_steps=200, seeds=2, presets={"pets": "fast"},
            sets=SETS, progress=False, echo=lambda line: None)
  whole = tmp_path / "whole"
  dmc_table.run_suite(whole, **kw)
  cut = tmp_path / "cut"
  status = dmc_table.run_suite(cut, minutes=1e-4, **kw)   # stops after its first chunk
  assert status["pets fast/PointMass"]["finished"] is False
  run = dmc_table.run_dir(cut, "pets", "fast/PointMass")
  assert len(_lines(run)) == 1
  # A fresh clone keeps the metrics but not the checkpoints (.gitignore): that run starts again.
  fresh = tmp_path / "fresh"
  shutil.copytree(cut, fresh, ignore=shutil.ignore_patterns("checkpoints"))
  dmc_table.run_suite(fresh, **kw)
  assert dmc_table.read_status(fresh)["pets fast/PointMass"]["sessions"] == 1   # its own time
  # Another driver's row (written meanwhile into the same status file) is kept.
  other = {"wall_s": 5.0, "sessions": 1, "finished": False}
  status_file = dmc_table._status_path(cut)  # noqa: SLF001
  status_file.write_text(json.dumps({**dmc_table.read_status(cut), "sac fast/PointMass": other}))
  status = dmc_table.run_suite(cut, **kw)                  # the next session resumes it
  assert status["sac fast/PointMass"] == other
  entry = status["pets fast/PointMass"]
  assert entry["finished"] is True and entry["sessions"] == 2 and entry["wall_s"] > 0
  assert _lines(run) == _lines(dmc_table.run_dir(whole, "pets", "fast/PointMass"))
  assert _lines(dmc_table.run_dir(fresh, "pets", "fast/PointMass")) == _lines(run)
  dmc_table.run_suite(cut, **kw)                           # done: nothing runs again
  assert dmc_table.read_status(cut)["pets fast/PointMass"]["sessions"] == 2
  # The table a `run` of one row writes keeps the rows the folder has (the other driver's sac),
  # and the default suite's when the row belongs to it.
  other.update(agent="sac", task="fast/PointMass")
  status_file.write_text(json.dumps({**dmc_table.read_status(cut), "sac fast/PointMass": other}))
  assert dmc_table.table_scope(cut, ["pets"], list(TASKS)) == (["pets", "sac"], list(TASKS))
  agents, tasks = dmc_table.table_scope(cut, ["sac"], ["dmc/CheetahRun"])
  assert agents == list(dmc_table.AGENTS) and tasks == [*dmc_table.TASKS, "fast/PointMass"]

  rows = dmc_table.report(cut, ("pets",), TASKS, report_at=(100, 200, 10_000))
  (row,) = rows
  lines = [x for x in _lines(run) if "eval/episode_return" in x]
  at_200 = [x for x in lines if x["env_steps"] <= 200][-1]["eval/episode_return"]
  assert row["at"]["200"]["seeds"] == at_200 and "10000" not in row["at"]
  means = np.mean([x["eval/episode_return"] for x in lines], axis=1)
  assert row["peak"] == max(means) and row["final"] == means[-1]
  assert row["drop_after_peak"] == max(means) - min(means[int(np.argmax(means)):])
  falls = [max(means[:t + 1]) - means[t] for t in range(len(means))]
  assert row["largest_fall"] == pytest.approx(max(falls)) and row["largest_fall"] >= 0
  mse = [x["model/val_mse"] for x in _lines(run) if "model/val_mse" in x]
  assert row["diagnostics"]["model/val_mse"] == (float(np.mean(mse[0])), float(np.mean(mse[-1])),
                                                 mse[-1])
  table = (cut / "table.md").read_text()
  assert "| fast/PointMass | pets |" in table and "| 0.1k | 0.2k |" in table
  assert row["action_repeat"] == 1 and "| action repeat | wall-clock |" in table
  # tasks x agents at the budget: a run short of it shows its last evaluation and its env steps
  random = dmc_table.read_random(cut)["fast/PointMass"]
  assert random["episodes"] == dmc_table.RANDOM_EPISODES and 0 < random["mean"] < 50
  assert (f"| fast/PointMass | {random['mean']:.0f} | {row['final']:.0f} (at 0.2k) | · | · |"
          in table)
  assert (cut / "all_tasks.png").stat().st_size > 5_000
  assert (cut / "curves" / "fast-PointMass.png").exists()


def test_a_row_another_live_driver_holds_is_left_to_it(tmp_path):
  """Drivers side by side (``--jobs``, or two commands) never train one row at once: a row whose
  lock a live process holds is skipped, and a lock left by a killed driver is taken over."""
  import subprocess

  path = dmc_table.run_dir(tmp_path, "pets", "fast/PointMass")
  lock = path.with_name(path.name + ".lock")
  assert dmc_table.claim(path) and lock.read_text() == str(os.getpid())
  lines = []
  dmc_table.run_suite(tmp_path, agents=("pets",), tasks=TASKS, env_steps=200, seeds=2,
                      presets={"pets": "fast"}, sets=SETS, progress=False, echo=lines.append)
  assert not path.exists() and any("another driver is training it" in x for x in lines)
  assert "pets fast/PointMass" not in dmc_table.read_status(tmp_path)
  dmc_table.release(path)
  assert not lock.exists()
  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True).stdout.strip()
  lock.write_text(gone)   # a driver that was killed while training the row
  assert dmc_table.claim(path) and lock.read_text() != gone
  dmc_table.release(path)
  assert not lock.exists() and not list(lock.parent.glob("*.tmp"))


def test_diagnostics_leave_out_seeds_without_a_value():
  """A chunk in which no training episode ended logs null (NaN) for that seed."""
  records = [{"k": [[1.0, 2.0]]}, {"k": [3.0, None]}, {"k": [None, None]}, {"other": 1.0}]
  assert dmc_table.diagnostics(records, ["k", "missing"]) == {"k": (1.5, 3.0, [3.0])}
  two = dmc_table.diagnostics([{"k": [1.0, 3.0]}, {"k": [0.5, 40.0]}], ["k"])
  assert two == {"k": (2.0, 20.25, [0.5, 40.0])}
  # The report shows the last record per seed where the seeds split.
  assert dmc_table._logged("k", *two["k"]) == "k 2 -> 20.2 (0.5, 40)"
  assert dmc_table._logged("k", 1.5, 3.0, [3.0]) == "k 1.5 -> 3"


def test_wall_matrix_marks_unfinished_and_unstarted_rows():
  rows = [{"agent": "pets", "task": "a", "wall_s": 600.0, "finished": True, "device": "CPU"},
          {"agent": "sac", "task": "a", "wall_s": 90.0, "finished": False, "device": "CPU"},
          {"agent": "pets", "task": "b", "wall_s": None, "finished": False, "device": None}]
  text = dmc_table.wall_matrix(rows)
  assert "| a | 10 | 2+ |" in text and "| b | · | · |" in text and "Ran on: CPU." in text
