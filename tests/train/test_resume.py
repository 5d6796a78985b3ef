"""Resuming a run: after a real SIGKILL it continues bit for bit; a corrupt or unfinished
checkpoint is skipped, with a warning, for the newest one that restores."""

import concurrent.futures
import gc
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from wmjax.cli import app
from wmjax.train.checkpoint import (
    Checkpointer,
    CheckpointFallbackWarning,
    UnrestorableCheckpointError,
)
from wmjax.train.loop import load_run

# A failed orbax restore leaves TensorStore read coroutines behind that are only reaped later.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

# fast/PointMass: 50-step episodes, so 200 steps are 1 random + 3 planned episodes, a checkpoint
# after each (steps 0..3) and an evaluation after each.
PLANNED = 3
TRAIN = ["train", "pets", "--env", "fast/PointMass", "--steps", "200", "--no-progress",
         "--set", "initial_episodes=1", "--set", "population=16", "--set", "iterations=2",
         "--set", "model_train_steps=20", "--set", "eval_every=1"]


def _is_timing(key: str) -> bool:
  return key.endswith("_s") or "time" in key or "sps" in key or "per_sec" in key


def _records(run: pathlib.Path) -> list[dict]:
  lines = (run / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines if line]


def _numbers(run: pathlib.Path) -> list[dict]:
  """Every logged value but wall-clock/timing ones, as parsed from the JSON (exact floats)."""
  return [{k: v for k, v in r.items() if not _is_timing(k)} for r in _records(run)]


def _complete_lines(path: pathlib.Path) -> int:
  try:
    return path.read_bytes().count(b"\n")
  except FileNotFoundError:
    return 0


def _env() -> dict:
  """The subprocesses use the test session's compilation cache (and its XLA flags)."""
  env = dict(os.environ)
  env["WMJAX_CACHE"] = jax.config.jax_compilation_cache_dir
  env["JAX_PLATFORMS"] = "cpu"
  return env


def _cli(args, log: pathlib.Path) -> subprocess.Popen:
  """``wmjax ARGS`` in a new process, its output to ``log``."""
  with log.open("w") as out:
    return subprocess.Popen([sys.executable, "-m", "wmjax.cli", *map(str, args)], env=_env(),
                            stdout=out, stderr=subprocess.STDOUT)


def _invoke(*args):
  """The CLI in this process, on the same compilation cache."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("WMJAX_CACHE", jax.config.jax_compilation_cache_dir)
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _wait_for_lines(proc: subprocess.Popen, metrics: pathlib.Path, lines: int,
                    timeout: float = 300.0) -> bool:
  """Polls until ``metrics`` holds ``lines`` complete lines; False if ``proc`` ended first."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and proc.poll() is None:
    if _complete_lines(metrics) >= lines:
      return True
    time.sleep(0.01)
  return False


def _kill_at(proc: subprocess.Popen, run: pathlib.Path, lines: int) -> tuple[bool, list[dict]]:
  """SIGKILLs ``proc`` as soon as ``lines`` iterations are logged: ``(killed, records then)``."""
  if not _wait_for_lines(proc, run / "metrics.jsonl", lines):
    return False, []
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  return proc.returncode == -signal.SIGKILL, _records(run)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A run SIGKILLed (in a subprocess) after its second logged iteration, its third checkpoint
  usually still being written, then resumed; and the same run uninterrupted, in this process
  while the first one runs."""
  root = tmp_path_factory.mktemp("resume")
  killed = root / "killed"
  proc = _cli([*TRAIN, "--out", killed], root / "killed.log")
  try:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      outcome = pool.submit(_kill_at, proc, killed, 2)
      result = _invoke(*TRAIN, "--out", root / "reference")
      assert result.exit_code == 0, result.output
      was_killed, before_kill = outcome.result()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert was_killed, (root / "killed.log").read_text()[-3000:]
  result = _invoke("train", "pets", "--out", killed, "--resume", "--no-progress")
  assert result.exit_code == 0, result.output
  return root / "reference", killed, before_kill


def test_sigkilled_run_resumes_bit_identically(runs):
  reference, killed, before_kill = runs
  assert 2 <= len(before_kill) < PLANNED
  after = _records(killed)
  assert [r["iteration"] for r in after] == list(range(1, PLANNED + 1))
  # Restored, not restarted: the first iteration's line (its wall clock too) was kept.
  assert after[0] == before_kill[0]
  assert _numbers(killed) == _numbers(reference)
  assert after[-1]["wall_s"] >= before_kill[0]["wall_s"]


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  """The array data files of a checkpoint, largest first."""
  files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
  return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def _make_unfinished(source: pathlib.Path, target: pathlib.Path) -> None:
  """A step folder as orbax leaves it before committing: data, no commit marks."""
  shutil.copytree(source, target)
  for marker in target.rglob("commit_success.txt"):
    marker.unlink()
  meta = target / "_CHECKPOINT_METADATA"
  meta.write_text(json.dumps({**json.loads(meta.read_text()), "commit_timestamp_nsecs": None}))


def test_corrupt_latest_checkpoint_of_a_finished_run_falls_back(runs, tmp_path):
  reference, _, _ = runs
  run = tmp_path / "run"
  shutil.copytree(reference, run)
  ckpts = run / "checkpoints"
  last, good = PLANNED, PLANNED - 1
  assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [good, last]
  data = _data_files(ckpts / str(last))[0]
  os.truncate(data, data.stat().st_size // 2)
  # A newer step folder whose save never committed, and a killed save's temporary folder.
  _make_unfinished(ckpts / str(good), ckpts / str(last + 1))
  shutil.copytree(ckpts / str(good), ckpts / f"{last + 2}.orbax-checkpoint-tmp")
  with pytest.warns(CheckpointFallbackWarning) as caught:
    result = _invoke("train", "pets", "--out", run, "--resume", "--no-progress")
  assert result.exit_code == 0, result.output
  message = str(caught[0].message)
  assert f"[{last}, {last + 1}]" in message and f"step {last}: ValueError" in message
  assert f"step {last + 1}: unfinished save" in message and f"step {last + 2}" not in message
  assert f"restored step {good} instead" in message
  # The last iteration was run again from the checkpoint before it: the same numbers again,
  # and the metrics logged after the step restored were dropped first.
  assert _numbers(run) == _numbers(reference)
  names = {p.name for p in ckpts.iterdir()}
  assert {str(last), f"{last}.bad", f"{last + 1}.bad"} <= names and str(last + 1) not in names
  with warnings.catch_warnings():   # the new last checkpoint restores, with no fallback
    warnings.simplefilter("error", CheckpointFallbackWarning)
    assert load_run(run)[4] == last


@pytest.fixture(scope="module", autouse=True)
def _reap_orbax_leftovers():
  """Collects, within this module, what failed restores left behind (see ``pytestmark``)."""
  yield
  gc.collect()


def _state(i: int):
  return {"w": jnp.arange(2_000, dtype=jnp.float32) + i, "key": jax.random.PRNGKey(i),
          "n": jnp.int32(i), "none": jnp.zeros((0, 3))}


def test_checkpointer_skips_bad_steps_and_saves_over_them(tmp_path):
  ckpt = Checkpointer(tmp_path, max_to_keep=5)
  for i in range(4):
    ckpt.save(i, _state(i))
  ckpt.close()
  os.truncate(_data_files(tmp_path / "3")[0], 10)                 # truncated
  for path in _data_files(tmp_path / "2"):                        # missing files
    path.unlink()
  _make_unfinished(tmp_path / "1", tmp_path / "4")                # never committed
  shutil.copytree(tmp_path / "1", tmp_path / "5.orbax-checkpoint-tmp")  # ignored by orbax
  abstract = jax.eval_shape(lambda: _state(0))

  ckpt = Checkpointer(tmp_path, max_to_keep=5)
  assert ckpt.latest_step() == 4
  with pytest.warns(CheckpointFallbackWarning, match=r"restored step 1 instead") as caught:
    step, state = ckpt.restore(abstract)
  assert step == 1 and int(state["n"]) == 1 and state["none"].shape == (0, 3)
  np.testing.assert_array_equal(state["w"], _state(1)["w"])
  message = str(caught[0].message)
  assert "step 4: unfinished save" in message and "step 3:" in message and "step 2:" in message
  assert "step 5" not in message
  assert set(ckpt.skipped_steps) == {2, 3, 4}
  with pytest.raises(UnrestorableCheckpointError, match="step 3"):
    ckpt.restore(abstract, step=3)
  # The run goes on from step 1: saving steps 2.. sets the bad folders aside as <step>.bad.
  with pytest.warns(CheckpointFallbackWarning):
    ckpt.restore(abstract)
  ckpt.save(2, _state(2))
  ckpt.save(3, _state(3))
  ckpt.close()
  names = {p.name for p in tmp_path.iterdir()}
  assert {"2.bad", "3.bad", "4.bad"} <= names and "4" not in names
  ckpt = Checkpointer(tmp_path, max_to_keep=5)
  with warnings.catch_warnings():
    warnings.simplefilter("error", CheckpointFallbackWarning)
    step, state = ckpt.restore(abstract)
  ckpt.close()
  assert step == 3 and int(state["n"]) == 3


def test_no_restorable_checkpoint_is_an_error(tmp_path):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(0, _state(0))
  ckpt.close()
  for path in _data_files(tmp_path / "0"):
    path.write_bytes(b"not a checkpoint")
  ckpt = Checkpointer(tmp_path)
  with pytest.raises(UnrestorableCheckpointError, match=r"can be restored:\n  step 0: "):
    ckpt.restore(jax.eval_shape(lambda: _state(0)))
  ckpt.close()


def test_restore_or_init_truncates_metrics_to_the_step_restored(tmp_path):
  from wmjax.train.common import restore_or_init
  from wmjax.train.rundir import RunDir

  run = RunDir(tmp_path / "run")
  run.write_config({"algo": "test"})
  ckpt = Checkpointer(run.checkpoint_dir)
  for i in range(4):
    ckpt.save(i, _state(i))
    if i:
      run.log({"iteration": i, "wall_s": 10.0 * i})
  ckpt.close()
  os.truncate(_data_files(run.checkpoint_dir / "3")[0], 10)
  run = RunDir(tmp_path / "run", resume=True)
  ckpt = Checkpointer(run.checkpoint_dir)
  init = lambda keys, hypers: _state(0)
  with pytest.warns(CheckpointFallbackWarning, match="restored step 2 instead"):
    state, done, wall = restore_or_init(run, ckpt, init, None, None, resume=True)
  ckpt.close()
  assert done == 2 and int(state["n"]) == 2 and wall == 20.0
  assert [r["iteration"] for r in run.read_metrics()] == [1, 2]


def test_restore_places_arrays_where_asked_not_where_they_were_saved(tmp_path):
  """A state saved split over devices 0-1 restores onto one device by default, or onto the
  sharding asked for (devices 4-7 here): a sweep's run loads in a process with other devices."""
  from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
  from jax.sharding import PartitionSpec as P

  devices = jax.devices()
  state = {"w": jnp.arange(8.0).reshape(4, 2), "k": jnp.arange(4, dtype=jnp.int32)}
  saved = jax.device_put(state, NamedSharding(Mesh(np.array(devices[:2]), ("runs",)), P("runs")))
  ckpt = Checkpointer(tmp_path)
  ckpt.save(7, saved)
  ckpt.close()
  abstract = jax.eval_shape(lambda: state)
  ckpt = Checkpointer(tmp_path)
  step, one = ckpt.restore(abstract)
  assert step == 7
  for leaf in jax.tree.leaves(one):
    assert leaf.sharding == SingleDeviceSharding(devices[0])
  target = NamedSharding(Mesh(np.array(devices[4:8]), ("runs",)), P("runs"))
  _, four = ckpt.restore(abstract, sharding=target)
  ckpt.close()
  for got, want in zip(jax.tree.leaves(four), jax.tree.leaves(state), strict=True):
    assert got.sharding == target
    np.testing.assert_array_equal(got, want)
