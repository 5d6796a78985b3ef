"""`wmjax sweep`: hyperparameters vmapped with seeds, static settings compiled per value, the run
axis sharded over 8 fake CPU devices, the aggregate table, bad input, and two real processes
(jax.distributed over JAX's CPU collectives) merging into one sweep folder.

Most of it runs tabular Dyna-Q (tiny programs, exact integer-valued results); the sharding of a
neural agent is checked on MBPO's point mass."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.stats
from typer.testing import CliRunner

from wmjax.agents import dyna as dyna_lib
from wmjax.cli import app
from wmjax.envs import grid
from wmjax.train import sweep as sweep_lib
from wmjax.train.common import RunAxis, SweepTooLarge, check_memory, run_mesh, tree_bytes

runner = CliRunner()


def _invoke(*args):
  return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _lines(folder):
  return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


def test_run_axis_keys_and_hypers():
  axis = RunAxis(seed=3, seeds=2, points=({"alpha": 0.1}, {"alpha": 0.5}))
  assert axis.runs == ((0, 0), (0, 1), (1, 0), (1, 1))
  base = jax.random.split(jax.random.PRNGKey(3), 2)
  np.testing.assert_array_equal(axis.keys(), np.concatenate([base, base]))
  hypers = axis.hypers(dyna_lib.DynaHyper(alpha=0.2, epsilon=0.1, gamma=0.9, kappa=0.0))
  np.testing.assert_allclose(hypers.alpha, [0.1, 0.1, 0.5, 0.5])
  np.testing.assert_allclose(hypers.gamma, [0.9] * 4)
  # A plain run's keys are those of `train --seeds`.
  np.testing.assert_array_equal(RunAxis(seed=0, seeds=3).keys(),
                                jax.random.split(jax.random.PRNGKey(0), 3))
  with pytest.raises(KeyError, match="alpha, epsilon, gamma, kappa"):
    RunAxis(seed=0, seeds=1, points=({"alfa": 1.0},)).hypers(dyna_lib.DynaHyper(0, 0, 0, 0))


def test_parse_grid_splits_vmapped_from_static():
  config, hyper = dyna_lib.DynaConfig(), dyna_lib.DynaHyper(0.1, 0.1, 0.95, 0.0)
  grid = sweep_lib.parse_grid(["alpha=0.1,0.5", "planning_steps=0,5,50", "gamma=0.9,0.99"],
                              config, hyper)
  assert grid.hyper_fields == ("alpha", "gamma") and grid.static_fields == ("planning_steps",)
  assert len(grid.points) == 4 and grid.points[1] == {"alpha": 0.1, "gamma": 0.99}
  assert [s["planning_steps"] for s in grid.static] == [0, 5, 50]
  from wmjax.agents import mbpo
  tuples = sweep_lib.parse_grid(["hidden_sizes=64,64|128,128"], mbpo.MBPOConfig(),
                                mbpo.MBPOHyper())
  assert [s["hidden_sizes"] for s in tuples.static] == [(64, 64), (128, 128)]
  with pytest.raises(KeyError, match="Did you mean planning_steps.*Hyperparameters"):
    sweep_lib.parse_grid(["planing_steps=1,2"], config, hyper)


def test_iqm_and_bootstrap_match_references():
  rng = np.random.default_rng(0)
  for n in (1, 4, 5, 7, 10):
    x = rng.normal(size=n)
    assert sweep_lib.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))
  x = rng.normal(5.0, 1.0, size=400)
  lo, hi = sweep_lib.bootstrap_ci(x)
  half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)       # the normal interval it approximates
  assert lo == pytest.approx(x.mean() - half, abs=0.03)
  assert hi == pytest.approx(x.mean() + half, abs=0.03)


@pytest.fixture(scope="module")
def dyna_sweep(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweeps") / "dyna"
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--seeds", 4,
                   "--grid", "alpha=0.1,0.5", "--grid", "planning_steps=0,10", "--steps", 800,
                   "--out", out, "--no-progress")
  assert result.exit_code == 0, result.output
  return out, result.output


def test_sweep_folder_and_aggregate(dyna_sweep):
  out, output = dyna_sweep
  assert "2 program(s) x 2 hyperparameter point(s) x 4 seed(s) = 16 runs" in output
  summary = json.loads((out / "summary.json").read_text())
  assert summary["metric"] == "eval/steps_to_goal"
  rows = summary["rows"]
  assert [(r["program"], r["hyper"]["alpha"]) for r in rows] == [
      ("planning_steps=0", 0.1), ("planning_steps=0", 0.5), ("planning_steps=10", 0.1),
      ("planning_steps=10", 0.5)]
  for r in rows:
    finals = np.asarray(list(r["final_per_seed"].values()))
    assert r["seeds_done"] == 4 and r["mean"] == pytest.approx(finals.mean())
    assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]
    assert r["iqm"] == pytest.approx(scipy.stats.trim_mean(finals, 0.25))
  # Planning finds the goal's path sooner: a shorter greedy path after 800 steps.
  assert rows[3]["mean"] < rows[1]["mean"]
  assert (out / "summary.md").read_text().count("\n| planning_steps=") == 4
  assert (out / "sweep.png").exists()
  # The vmapped alpha made the runs differ (same keys, different step sizes).
  lines = _lines(out / "planning_steps=10")
  q = np.asarray(lines[-1]["train/cumulative_reward"])
  assert q.shape == (8,)
  config = json.loads((out / "planning_steps=10" / "config.json").read_text())
  assert config["run_axis"]["runs"][4] == [1, 0] and config["config"]["planning_steps"] == 10


def test_offline_sweeps_report_the_normalised_score():
  from wmjax.train.report import _pick_metric

  both = {"eval/episode_return": 1.0, "eval/normalized_score": 2.0}
  assert _pick_metric([{"iteration": 1}, both]) == "eval/normalized_score"
  assert _pick_metric([{"eval/episode_return": 1.0}]) == "eval/episode_return"


def test_sweep_runs_equal_single_runs(dyna_sweep, tmp_path):
  """A sweep's run (point alpha=0.5, seed 2) is the run `train dyna --set alpha=0.5 --seeds 4`
  gives for seed 2: the grid point changes the hyperparameter, not the random numbers."""
  out, _ = dyna_sweep
  single = tmp_path / "single"
  result = _invoke("train", "dyna", "--env", "grid/dyna_maze", "--seeds", 4, "--steps", 800,
                   "--set", "alpha=0.5", "--set", "planning_steps=10", "--out", single,
                   "--no-progress")
  assert result.exit_code == 0, result.output
  swept, plain = _lines(out / "planning_steps=10"), _lines(single)
  for a, b in zip(swept, plain, strict=True):
    for key in ("train/cumulative_reward", "eval/steps_to_goal"):
      assert a[key][4:] == b[key]


def test_sweep_resume_keeps_finished_programs(dyna_sweep):
  out, _ = dyna_sweep
  before = (out / "planning_steps=0" / "metrics.jsonl").read_text()
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--seeds", 4,
                   "--grid", "alpha=0.1,0.5", "--grid", "planning_steps=0,10", "--steps", 800,
                   "--out", out, "--no-progress", "--resume")
  assert result.exit_code == 0, result.output
  assert (out / "planning_steps=0" / "metrics.jsonl").read_text() == before
  again = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--seeds", 2, "--out", out,
                  "--resume", "--no-progress")
  assert again.exit_code == 2 and "other settings" in again.output


def test_sharded_runs_equal_single_device(tmp_path):
  """8 runs on 8 fake CPU devices (NamedSharding over a `runs` mesh) give exactly the per-run
  results of the same 8 runs vmapped on one device."""
  assert len(jax.local_devices()) == 8
  folders = {}
  for devices in (1, 0):
    folders[devices] = tmp_path / f"dev{devices}"
    result = _invoke("train", "dyna", "--env", "grid/blocking_maze", "--seeds", 8,
                     "--steps", 300, "--devices", devices, "--out", folders[devices],
                     "--no-progress")
    assert result.exit_code == 0, result.output
  # The largest device count <= the one asked for that divides the runs.
  assert [getattr(run_mesh(n, d), "size", 1) for n, d in ((8, 0), (7, 0), (9, 0), (6, 4),
                                                            (5, 2), (1, 0))] == [8, 7, 3, 3, 1, 1]
  assert _lines(folders[1])[-1]["train/cumulative_reward"] == \
      _lines(folders[0])[-1]["train/cumulative_reward"]


def test_sharded_mbpo_equals_single_device(tmp_path):
  """The same for a neural agent (MBPO's ensemble and SAC), to float32 round-off: one iteration
  (random prefill, model refit, branched rollouts, 20 real steps with SAC updates). XLA's CPU
  matmuls round differently for the one-device batch of 4 runs and the per-device batch of 1,
  and training amplifies such differences over many iterations (eval returns drift by ~0.3%
  after two), so the check is made after one."""
  finals = {}
  for devices in (1, 0):
    out = tmp_path / f"mbpo{devices}"
    result = _invoke("train", "mbpo", "--env", "fast/PointMass", "--steps", 70, "--seeds", 4,
                     "--set", "prefill_steps=50", "--set", "steps_per_iteration=20",
                     "--set", "eval_every=0", "--set", "eval_episodes=2", "--set",
                     "model_train_steps=20", "--set", "rollout_batch=100", "--set",
                     "hidden_sizes=32,32", "--set", "sac_hidden_sizes=32,32", "--devices",
                     devices, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    finals[devices] = _lines(out)[-1]
    assert finals[devices]["iteration"] == 1
  for key in ("model/loss", "model/val_mse", "sac/critic_loss", "sac/actor_loss",
              "eval/episode_return"):
    np.testing.assert_allclose(finals[0][key], finals[1][key], rtol=1e-4, atol=1e-5,
                               err_msg=key)


def test_memory_check_stops_a_sweep_too_large(tmp_path):
  dyna = dyna_lib.make_dyna(grid.DYNA_MAZE)
  abstract = jax.eval_shape(jax.vmap(dyna.init), jax.random.split(jax.random.PRNGKey(0), 8))
  per_run = tree_bytes(abstract) / 8
  check_memory(abstract, 8, None, limit_bytes=int(3 * per_run * 8))   # fits exactly
  with pytest.raises(SweepTooLarge, match="at most 2 run"):
    check_memory(abstract, 8, None, limit_bytes=int(3 * per_run * 2.5))
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--seeds", 64, "--steps", 100,
                   "--devices", 1, "--memory-limit", "64KiB", "--out", tmp_path / "big",
                   "--no-progress")
  assert result.exit_code == 2
  assert "64 run(s) per device need about" in result.output
  assert "Use at most" in result.output and not (tmp_path / "big" / "base").exists()


def test_sweep_bad_input(tmp_path):
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--grid", "alfa=1,2",
                   "--out", tmp_path / "x")
  assert result.exit_code == 2
  assert "not a field of DynaConfig or DynaHyper" in result.output
  assert "Did you mean alpha" in result.output and "planning_steps" in result.output
  result = _invoke("sweep", "nope", "--env", "grid/dyna_maze", "--out", tmp_path / "y")
  assert result.exit_code == 2 and "sweeps know dreamer, dyna" in result.output


def test_sweep_starts_every_run_from_a_named_preset(tmp_path):
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--preset", "nope",
                   "--out", tmp_path / "x")
  assert result.exit_code == 2 and "no preset 'nope'" in result.output, result.output
  out = tmp_path / "plus"
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--preset", "dyna-q+",
                   "--seeds", 2, "--grid", "alpha=0.5,1", "--steps", 200, "--out", out,
                   "--no-progress")
  assert result.exit_code == 0, result.output
  assert json.loads((out / "sweep.json").read_text())["preset"] == "dyna-q+"
  config = json.loads((out / "base" / "config.json").read_text())
  assert config["preset"] == "dyna-q+" and config["config"]["kappa"] == pytest.approx(1e-3)
  # Resuming with another preset is refused: the runs would not be comparable.
  result = _invoke("sweep", "dyna", "--env", "grid/dyna_maze", "--seeds", 2, "--grid",
                   "alpha=0.5,1", "--steps", 200, "--out", out, "--resume", "--no-progress")
  assert result.exit_code == 2 and "other settings" in result.output, result.output


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_share_a_sweep(dyna_sweep, tmp_path):
  """Two real processes (jax.distributed: coordinator, process ids, barriers) each train half of
  the runs (process 0: alpha 0.1, process 1: alpha 0.5, 4 seeds each); process 0 waits at the
  barrier and writes the merged aggregate, which equals the one-process sweep's."""
  single, _ = dyna_sweep
  out = tmp_path / "multi"
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen(
      [sys.executable, "-m", "wmjax.cli", "sweep", "dyna", "--env", "grid/dyna_maze",
       "--seeds", "4", "--grid", "alpha=0.1,0.5", "--set", "planning_steps=10",
       "--steps", "800", "--out", str(out), "--no-progress", "--coordinator",
       f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], "\n\n".join(
      "\n".join(x for x in log.splitlines() if not x.lstrip().startswith("@"))[-3000:]
      for log in logs)
  assert "process 1 of 2 takes 4 run(s)" in logs[1]
  assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["base-part0", "base-part1"]
  merged = json.loads((out / "summary.json").read_text())["rows"]
  alone = json.loads((single / "summary.json").read_text())["rows"][2:]   # planning_steps=10
  assert [r["final_per_seed"] for r in merged] == [r["final_per_seed"] for r in alone]
  assert [r["seeds_done"] for r in merged] == [4, 4]


def test_cpu_sweeps_split_runs_over_cores(tmp_path, monkeypatch):
  """On a CPU-only JAX without a device count in XLA_FLAGS, a sweep runs each program in a child
  process with one fake CPU device per core (one XLA:CPU device uses about one core)."""
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  assert sweep_lib.cpu_core_devices() == 1
  monkeypatch.setenv("XLA_FLAGS", "")
  cores = len(os.sched_getaffinity(0))
  assert sweep_lib.cpu_core_devices() == cores
  env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
  out = tmp_path / "cpu"
  proc = subprocess.run(
      [sys.executable, "-m", "wmjax.cli", "sweep", "dyna", "--env", "grid/dyna_maze",
       "--seeds", "4", "--steps", "200", "--out", str(out), "--no-progress"],
      env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  if cores > 1:
    assert f"split over {cores} CPU devices" in proc.stdout
  rows = json.loads((out / "summary.json").read_text())["rows"]
  assert rows[0]["seeds_done"] == 4
  # A run saved split over the cores loads in a process with one device.
  proc = subprocess.run([sys.executable, "-m", "wmjax.cli", "eval", str(out / "base")],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "mean greedy steps to the goal" in proc.stdout


def test_sweep_minutes_stops_then_resume_finishes(dyna_sweep, tmp_path, monkeypatch):
  """Out of wall-clock, a sweep stops the program it is in after one chunk (as `train
  --minutes`) and leaves the next one unbegun; --resume finishes both with the runs of the
  uninterrupted sweep. The sweep's clock is faked: spent once the first program has begun."""
  import types

  out, _ = dyna_sweep
  part = tmp_path / "part"
  clock = iter([0.0, 0.0] + [1e9] * 100)   # deadline, program 1 (budget left), program 2 (spent)
  fake = types.SimpleNamespace(time=lambda: next(clock), strftime=sweep_lib.time.strftime)
  kwargs = dict(seeds=4, grid=["alpha=0.1,0.5", "planning_steps=0,10"], steps=800, devices=1,
                progress=False)
  lines = []
  monkeypatch.setattr(sweep_lib, "time", fake)
  sweep_lib.run_sweep("dyna", "grid/dyna_maze", out=part, minutes=1e-6, log=lines.append,
                      **kwargs)
  monkeypatch.undo()
  full = _lines(out / "planning_steps=0")
  assert 0 < len(_lines(part / "planning_steps=0")) < len(full)
  assert not (part / "planning_steps=10").exists()
  assert any("not begun" in line and "--resume" in line for line in lines), lines
  sweep_lib.run_sweep("dyna", "grid/dyna_maze", out=part, resume=True, log=lines.append,
                      **kwargs)
  for program in ("planning_steps=0", "planning_steps=10"):
    for a, b in zip(_lines(part / program), _lines(out / program), strict=True):
      assert a["eval/steps_to_goal"] == b["eval/steps_to_goal"]
  with pytest.raises(ValueError, match="minutes"):
    sweep_lib.run_sweep("dyna", "grid/dyna_maze", out=tmp_path / "bad", minutes=0, **kwargs)
