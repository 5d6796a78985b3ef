"""experiments/dmc_policy_stats.py: its figures match a hand count on a made-up episode,
and a run of another task is refused with the reason."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))

import dmc_policy_stats  # noqa: E402


def test_stats_count_what_the_pole_and_cart_did():
  # Two episodes of 10 agent steps. The first holds the pole for 6 steps, then it falls below
  # horizontal for 2; the second holds it throughout.
  cos = np.array([[1, 1, .99, .98, .97, .96, .5, -.2, -.6, .3], [1.] * 10])
  obs = np.zeros((2, 10, 5))
  obs[..., 1] = cos
  obs[0, :, 0] = np.linspace(0, -0.9, 10)
  action = np.full((2, 10, 1), -0.5)
  action[1] = 0.1
  reward = np.ones((2, 10)) * np.array([[0.5], [1.0]])
  s = dmc_policy_stats.stats(obs, action, reward)
  assert s["returns"] == [5.0, 10.0] and s["agent_steps"] == 10
  assert s["upright_share"] == 0.8 and s["below_horizontal_share"] == 0.1
  assert s["first_step_falls"] == [6, 10] and s["first_step_upright"] == [0, 0]
  assert s["upright_share_after_reaching"] == 0.8
  assert s["cart_offset_max"] == 0.9 and s["cart_offset_mean"] == pytest.approx(0.225, abs=1e-3)
  assert s["abs_action_mean"] == 0.3


def test_a_swing_up_is_timed_from_when_the_pole_first_gets_up():
  cos = np.array([[-1, -.5, 0, .96, .99, .97, .2, .98], [-1.] * 8])
  obs = np.zeros((2, 8, 5))
  obs[..., 1] = cos
  s = dmc_policy_stats.stats(obs, np.zeros((2, 8, 1)), np.zeros((2, 8)))
  assert s["first_step_upright"] == [3, 8] and s["first_step_falls"] == [6, 8]
  assert s["upright_share_after_reaching"] == 0.8   # 4 of the 5 steps from step 3; never: left out


def test_a_run_of_another_task_is_refused(tmp_path, capsys):
  (tmp_path / "config.json").write_text(json.dumps({"env": "fast/PointMass", "seeds": 1}))
  with pytest.raises(SystemExit):
    dmc_policy_stats.main([str(tmp_path)])
  assert "not a DM Control cart-pole or pendulum task" in capsys.readouterr().err


def test_a_pendulum_counts_upright_by_its_reward_bound_and_has_no_cart():
  bound, cart = dmc_policy_stats.task_of("dmc/PendulumSwingup")
  assert not cart and bound == pytest.approx(np.cos(np.deg2rad(8)))
  cos = np.array([[-1, 0, .98, .995, .999, .993, .97, -.5]])   # up for steps 3-5 only
  obs = np.zeros((1, 8, 3))
  obs[..., 1] = cos
  s = dmc_policy_stats.stats(obs, np.ones((1, 8, 1)), (cos > bound)[..., None].sum(-1) * 1.0,
                             upright_above=bound, cart=False)
  assert s["first_step_upright"] == [3] and s["first_step_falls"] == [6]
  assert s["returns"] == [3.0] and s["highest_cos"] == [0.999] and s["start_cos"] == [-1.0]
  assert "cart_offset_mean" not in s
  with pytest.raises(ValueError, match="not a DM Control"):
    dmc_policy_stats.task_of("dmc/CheetahRun")


def test_discounted_returns_match_a_hand_sum():
  # The critic check's real returns: wmjax.rl.returns', never cut by a terminal here.
  g = dmc_policy_stats.discounted_returns(np.array([1.0, 0.0, 2.0]), np.ones(3), 0.5)
  np.testing.assert_allclose(g, [1 + 0.25 * 2, 0.5 * 2, 2.0])
