"""The `wmjax` command: run folder, refusal to overwrite, resume, eval, NaN stop, bad input."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from wmjax.cli import app

runner = CliRunner()
SMALL = ["--set", "initial_episodes=1", "--set", "population=16", "--set", "iterations=2",
         "--set", "model_train_steps=20", "--set", "eval_every=1"]


def _invoke(*args):
  return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "pm"
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--steps", 100, "--seeds", 2,
                   "--out", out, "--no-progress", *SMALL)
  assert result.exit_code == 0, result.output
  return out


def test_train_writes_a_run_folder(run_dir):
  config = json.loads((run_dir / "config.json").read_text())
  assert config["algo"] == "pets" and config["env"] == "fast/PointMass"
  assert config["config"]["population"] == 16 and config["seeds"] == 2
  records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
  assert len(records) == 1 and len(records[0]["eval/episode_return"]) == 2
  assert (run_dir / "curve.png").stat().st_size > 1000
  assert any((run_dir / "checkpoints").iterdir())


def test_existing_run_is_refused_and_resume_continues(run_dir):
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--steps", 100, "--out", run_dir,
                   "--no-progress")
  assert result.exit_code == 2 and "--resume" in result.output
  # Resuming a finished run changes nothing and says where it is.
  result = _invoke("train", "pets", "--out", run_dir, "--resume", "--no-progress")
  assert result.exit_code == 0, result.output
  assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1


def test_eval_prints_returns(run_dir):
  result = _invoke("eval", run_dir, "--episodes", 2)
  assert result.exit_code == 0, result.output
  assert "seed 0:" in result.output and "seed 1:" in result.output
  assert "mean return" in result.output


def test_eval_acts_with_other_planner_settings_on_the_trained_model(run_dir):
  """A bigger planner on the same checkpoint and episodes; a setting that would change the
  checkpoint's arrays, or an unknown one, is refused with the reason."""
  from wmjax.train import loop

  base, *_ = loop.evaluate_run(run_dir, episodes=2, seed=5)
  # Other tests in this worker may have filled the cache: count only what these calls add.
  before = set(loop._EVALUATE_PROGRAMS)
  evaluate = list(loop._EVALUATE_PROGRAMS.values())[-1]
  bigger, *_ = loop.evaluate_run(run_dir, episodes=2, seed=5,
                                 sets=["population=64", "iterations=3"])
  same, *_ = loop.evaluate_run(run_dir, episodes=2, seed=5, sets=["population=16"])
  np.testing.assert_array_equal(same["eval/episode_return"], base["eval/episode_return"])
  # The run's own settings again: the compiled evaluation is reused, not compiled again.
  assert len(set(loop._EVALUATE_PROGRAMS) - before) == 1
  assert list(loop._EVALUATE_PROGRAMS.values())[-1] is evaluate and evaluate._cache_size() == 1
  assert bigger["eval/episode_return"].shape == (2, 2)
  assert not np.array_equal(bigger["eval/episode_return"], base["eval/episode_return"])
  result = _invoke("eval", run_dir, "--episodes", 1, "--set", "population=64")
  assert result.exit_code == 0, result.output
  assert "acting with population=64" in result.output and "mean return" in result.output
  result = _invoke("eval", run_dir, "--set", "ensemble_size=7")
  assert result.exit_code == 2 and "changes the shapes of the checkpoint" in result.output
  result = _invoke("eval", run_dir, "--set", "populaton=64")
  assert result.exit_code == 2 and "Did you mean population" in result.output


def test_eval_of_a_folder_without_run():
  result = _invoke("eval", "/nonexistent/run")
  assert result.exit_code == 2 and "holds no run" in result.output
  assert "--resume" not in result.output


def test_ignored_disagreement_coefficient_is_refused(tmp_path):
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--out", tmp_path / "d",
                   "--set", "disagreement_coef=0.5")
  assert result.exit_code == 2 and "disagreement=true" in result.output


def test_unknown_setting_lists_fields(tmp_path):
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--out", tmp_path / "x",
                   "--set", "horizn=3")
  assert result.exit_code == 2
  assert "horizon" in result.output and "Settings:" in result.output


def test_unknown_env_is_an_error(tmp_path):
  result = _invoke("train", "pets", "--env", "dmc/CartpolSwingup", "--out", tmp_path / "y")
  assert result.exit_code == 2 and "dmc/CartpoleSwingup" in result.output


def test_diverging_first_fit_is_stopped(tmp_path):
  out = tmp_path / "nan0"
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--steps", 100, "--out", out,
                   "--no-progress", *SMALL, "--set", "model_lr=1e30")
  assert result.exit_code == 2, result.output
  assert "non-finite parameters right after initialisation" in result.output


def test_non_finite_loss_stops_with_the_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
  from wmjax.agents import pets as pets_lib

  real_make = pets_lib.make_pets

  def make_diverging(*args, **kwargs):
    pets = real_make(*args, **kwargs)

    def step(state, hyper):   # the loss turns NaN from the second planned episode on
      new_state, metrics = pets.step(state, hyper)
      loss = metrics["model/loss"]
      metrics["model/loss"] = jnp.where(state.episode >= 1, jnp.nan, loss)
      return new_state, metrics

    return pets._replace(step=step)

  monkeypatch.setattr(pets_lib, "make_pets", make_diverging)
  out = tmp_path / "nan"
  result = _invoke("train", "pets", "--env", "fast/PointMass", "--steps", 200, "--out", out,
                   "--no-progress", *SMALL)
  assert result.exit_code == 2, result.output
  assert "non-finite model/loss in chunk 2 (train iteration 2, 150 env steps)" in result.output
  steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] == 1          # the checkpoint of the last good episode is kept
  assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_envs_lists_specs():
  result = _invoke("envs", "fast")
  assert result.exit_code == 0
  assert "fast/PointMass" in result.output and "box(2" in result.output
  result = _invoke("envs", "connect")
  assert result.exit_code == 0 and "pgx/connect_four" in result.output
