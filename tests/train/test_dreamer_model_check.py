"""experiments/dreamer_model_check.py: its figures match a hand count on made-up predictions, and
on a trained (tiny) Dreamer run it reads the episodes that ``wmjax eval`` scores."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np
import pytest

import wmjax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))

import dreamer_model_check as check  # noqa: E402


def test_figures_match_a_hand_count():
  # One episode of 6 agent steps, starts 0 and 2, horizon 2, one observation dimension.
  obs = np.array([[[0.], [1.], [2.], [3.], [4.], [5.]]])
  reward = np.array([[1., 0., 2., 2., 0., 1.]])
  starts = np.array([0, 2])
  reward_taken = np.array([[[1., 1.], [2., 1.]]])     # sums 2 and 3; real sums 1 and 4
  # 1 ahead: 1.5 against 1, 3 against 3; 2 ahead: 2 against 2, 4.5 against 4.
  decoded = np.array([[[[1.5], [2.]], [[3.], [4.5]]]])
  reward_actor = np.array([[[2., 2.], [3., 3.]]])     # sums 4 and 6: 5 against a real 2.5
  values = np.array([[10., 0., 0., 0., 0., 8.]])
  s = check.summarise(obs, reward, starts, reward_taken, decoded, reward_actor, values, horizon=2,
                      discount=0.5)
  spread = obs.std()
  assert s["starts"] == 2 and s["returns"] == [6.0]
  assert s["model"]["real_reward"] == 2.5 and s["model"]["predicted_reward"] == 2.5
  assert s["model"]["reward_error_mean"] == 1.0 and s["model"]["reward_correlation"] == 1.0
  errs = s["model"]["obs_error_in_spreads"]
  assert errs["1_ahead"] == pytest.approx(0.25 / spread, abs=1e-3)
  assert errs["2_ahead"] == pytest.approx(0.25 / spread, abs=1e-3)
  assert s["actor"]["imagined_reward"] == 5.0 and s["actor"]["ratio"] == 2.0
  # Critic: start 0's remainder weighs 0.5 ** 6 (kept), start 2's 0.5 ** 4 (kept, <= 0.25).
  g0 = 1 + 0.25 * 2 + 0.125 * 2 + 0.5 ** 5 * 1 + 0.5 ** 6 * 8
  g2 = 2 + 0.5 * 2 + 0.125 * 1 + 0.5 ** 4 * 8
  assert s["critic"]["starts"] == 2 and s["critic"]["value"] == 5.0
  assert s["critic"]["real_return"] == pytest.approx((g0 + g2) / 2, abs=0.01)


def test_a_trained_dreamer_run_is_checked_on_the_episodes_eval_scores(tiny_run, tmp_path, capsys):
  run = tiny_run("dreamer").path
  out = tmp_path / "check.json"
  check.main([str(run), "--episodes", "2", "--horizon", "3", "--every", "4", "--json", str(out)])
  figures = json.loads(out.read_text())
  assert set(figures["seeds"]) == {"0", "1"}
  agent = wmjax.load(run, seed=1)
  returns = np.asarray(agent.episode_returns(jax.random.PRNGKey(7), 2))
  s = figures["seeds"]["1"]
  np.testing.assert_allclose(s["returns"], returns, atol=0.06)
  assert s["starts"] == 2 * len(range(0, s["agent_steps"] - 3, 4))
  assert all(np.isfinite(v) for v in s["model"]["obs_error_in_spreads"].values())
  # fast/PointMass episodes are short for the critic's horizon: said, not averaged over none.
  assert s["critic"]["starts"] == 0 and "short for the critic's horizon" in s["critic"]["note"]
  assert "seed 1: returns" in capsys.readouterr().out


def test_a_run_of_another_agent_is_refused(tmp_path, capsys):
  (tmp_path / "config.json").write_text(json.dumps({"algo": "pets", "env": "fast/PointMass"}))
  with pytest.raises(SystemExit):
    check.main([str(tmp_path)])
  assert "is a pets run" in capsys.readouterr().err
