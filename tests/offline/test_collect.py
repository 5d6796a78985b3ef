"""`wmjax dataset collect` and :mod:`wmjax.offline.collect`: rows in episode order with whole
episodes, terminal states apart from time limits, statistics as recomputed by hand, the random
policy's known score, policies from trained runs (a wmjax TRPO run; a brax SAC run written with
brax's own checkpoint code, whose checkpoints act in ways told apart by their actions), the
reconstructed medium-replay, the CLI and its errors."""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import wmjax
from wmjax import envs
from wmjax.cli import app
from wmjax.offline import collect as C
from wmjax.offline import dataset as D
from wmjax.train import loop

from ..train.tiny import TINY_RUNS

runner = CliRunner()


def _invoke(*args):
  return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def point_mass():
  return envs.make("fast/PointMass")


def _episodes_by_hand(data: D.Dataset):
  """Per-episode (return, length, last row) by a plain loop over the rows."""
  out, total, length = [], 0.0, 0
  for i in range(data.size):
    total += float(data.reward[i])
    length += 1
    if data.terminated[i] or data.truncated[i]:
      out.append((total, length, i))
      total, length = 0.0, 0
  return out


def _assert_contiguous(data: D.Dataset):
  """Within an episode, each row's next observation is the next row's observation."""
  inside = np.flatnonzero(data.ends[:-1] == 0)
  np.testing.assert_array_equal(data.next_obs[inside], data.obs[inside + 1])
  # ... and a new episode starts afresh (PointMass resets to a random point).
  ends = np.flatnonzero(data.ends[:-1] > 0)
  assert (np.abs(data.next_obs[ends] - data.obs[ends + 1]).sum(axis=-1) > 0).all()


def test_random_rows_are_whole_episodes_in_order_with_hand_computed_statistics(point_mass,
                                                                              tmp_path):
  size = 2990   # 8 envs x 8 episodes of 50 steps, the last env's stream cut at 190 rows
  data = C.collect(point_mass, C.RandomPolicy(point_mass.spec), jax.random.PRNGKey(0), size,
                   num_envs=8, kind="random")
  assert data.size == size and data.meta["collection"]["num_envs"] == 8
  assert data.obs.shape == (size, 4) and data.action.shape == (size, 2)
  assert np.abs(data.action).max() <= 1.0 and data.terminated.sum() == 0
  _assert_contiguous(data)
  by_hand = _episodes_by_hand(data)
  lengths = [n for _, n, _ in by_hand]
  assert lengths == [50] * 59 + [40]   # whole episodes, but for the cut end of collection
  assert data.truncated[-1] == 1
  complete = np.array([r for r, n, _ in by_hand if n == point_mass.steps_per_episode])
  stats = data.return_stats()
  assert stats["episodes"] == 59
  np.testing.assert_allclose([stats["mean"], stats["std"], stats["min"], stats["max"]],
                             [complete.mean(), complete.std(), complete.min(), complete.max()],
                             rtol=1e-6)
  # The random policy's known score on the point mass: ~28 per 50-step episode.
  assert 24.0 < data.behaviour_return < 33.0
  reference = C.policy_returns(point_mass, C.RandomPolicy(point_mass.spec),
                               jax.random.PRNGKey(1), 40)
  assert abs(reference.mean() - data.behaviour_return) < 5.0
  # Saved and loaded, the statistics in dataset.json are the same numbers.
  loaded = D.load(D.save(data, tmp_path / "random"), env=point_mass)
  assert loaded.meta["returns"]["mean"] == pytest.approx(complete.mean())
  np.testing.assert_array_equal(loaded.obs, data.obs)


def test_every_env_stream_ends_an_episode(point_mass):
  # 100 rows over 16 envs: streams of 7 rows (too short for whole episodes), each cut.
  data = C.collect(point_mass, C.RandomPolicy(point_mass.spec), jax.random.PRNGKey(2), 100,
                   num_envs=16)
  envs_used = data.meta["collection"]["num_envs"]
  assert envs_used == 15
  assert [n for _, n, _ in _episodes_by_hand(data)] == [7] * 14 + [2]
  assert data.truncated.sum() == 15 and data.return_stats()["episodes"] == 0
  _assert_contiguous(data)


def test_terminal_states_are_terminated_and_time_limits_truncated():
  env = envs.make("gymnax/CartPole-v1")   # discrete; a random pole falls in ~20 steps
  data = C.collect(env, C.RandomPolicy(env.spec), jax.random.PRNGKey(0), 1000, num_envs=4)
  assert data.action.dtype == np.int32 and set(np.unique(data.action)) == {0, 1}
  by_hand = _episodes_by_hand(data)
  terminated = [i for _, _, i in by_hand if data.terminated[i]]
  cut = [i for _, _, i in by_hand if data.truncated[i]]
  assert len(terminated) > 20 and not (data.terminated * data.truncated).any()
  assert data.meta["collection"]["num_envs"] == 2   # as few as run whole 500-step episodes
  assert set(cut) <= {499, 999} and 999 in cut      # only where each env's stream ends
  assert 12.0 < data.behaviour_return < 35.0   # random CartPole: ~22
  inside = np.flatnonzero(data.ends[:-1] == 0)
  np.testing.assert_array_equal(data.next_obs[inside], data.obs[inside + 1])


@pytest.fixture(scope="module")
def trpo_run(tmp_path_factory):
  env, steps, sets = TINY_RUNS["trpo"]
  return loop.train("trpo", env, out=tmp_path_factory.mktemp("trpo") / "run", steps=steps,
                    seeds=2, sets=sets, progress=False).path


def test_a_policy_dataset_acts_as_the_loaded_agent(trpo_run):
  agent = wmjax.load(trpo_run, seed=1, deterministic=True)
  data = C.collect(agent.env, agent, jax.random.PRNGKey(3), 400, num_envs=4, kind="expert")
  keys = jax.random.split(jax.random.PRNGKey(9), data.size)
  carries = agent.init(jax.random.PRNGKey(0), data.size)
  _, actions = jax.vmap(agent.act)(carries, jnp.asarray(data.obs), keys)
  np.testing.assert_allclose(data.action, np.clip(actions, -1, 1), atol=1e-5)
  _assert_contiguous(data)
  # An earlier checkpoint of a wmjax run loads too; one it does not keep is a clear error.
  steps = [c.step for c in wmjax.loaded.checkpoints(trpo_run, seed=1)]
  assert len(steps) == 2
  assert wmjax.load(trpo_run, seed=1, checkpoint=steps[0]).step == steps[0]
  with pytest.raises(ValueError, match=r"checkpoint 1000 is not in .*: it has checkpoint\(s\)"):
    wmjax.load(trpo_run, checkpoint=1000)


def test_the_suite_of_a_wmjax_run(trpo_run):
  out = C.collect_suite("fast/PointMass", ["medium", "expert", "medium-expert"], run=trpo_run,
                        seed_index=1, size=300, num_envs=4, reference_episodes=4)
  assert list(out) == ["medium", "expert", "medium-expert"]
  ref = out["expert"].meta["reference"]
  assert set(ref) == {"random", "expert", "episodes"} and ref["episodes"] == 4
  for data in out.values():
    assert data.meta["reference"] == ref and data.meta["env"] == "fast/PointMass"
  medium = out["medium"].meta["source"]
  target = ref["random"] + (ref["expert"] - ref["random"]) / 3
  assert medium["target_return"] == pytest.approx(target)
  candidates = {int(k): v for k, v in medium["candidates"].items()}
  assert medium["checkpoint"] == min(candidates, key=lambda s: abs(candidates[s] - target))
  both = out["medium-expert"]
  assert both.size == 600
  np.testing.assert_array_equal(both.obs[:300], out["medium"].obs)
  np.testing.assert_array_equal(both.obs[300:], out["expert"].obs)
  with pytest.raises(ValueError, match="medium-replay rebuilds the replay"):
    C.collect_suite("fast/PointMass", ["medium-replay"], run=trpo_run, size=100,
                    num_envs=4, reference_episodes=2)


def test_pick_medium_takes_the_closest_logged_return():
  c = wmjax.loaded.Checkpoint
  cands = [c(1, 1, 10.0, ""), c(2, 2, None, ""), c(3, 3, 31.0, ""), c(4, 4, 90.0, "")]
  assert C.pick_medium(cands, 30.0).step == 3
  assert C.pick_medium(cands, 0.0).step == 1
  with pytest.raises(ValueError, match="no checkpoint has an evaluation return"):
    C.pick_medium([c(1, 1, None, "")], 3.0)


# A brax SAC run written by brax's own checkpoint code. Each checkpoint's policy outputs one
# action whatever it sees (zero kernels; the output bias sets the mean, with a tiny std), so
# the rows of each checkpoint are told apart by their actions.
_BRAX_CHECKPOINTS = {100: 2.0, 200: -2.0, 300: 0.5}      # env steps -> pre-tanh action mean
_BRAX_RETURNS = {0: 20.0, 100: -500.0, 200: 30.0, 300: 500.0}   # what metrics.jsonl logs


def _write_brax_sac_run(path: pathlib.Path, env_name: str = "fast/PointMass"):
  from brax.training.acme import running_statistics, specs
  from brax.training.agents.sac import checkpoint as sac_checkpoint
  from brax.training.agents.sac import networks as sac_networks

  factory = functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=(4,))
  network = factory(4, 2)
  config = sac_checkpoint.network_config(observation_size=4, action_size=2,
                                         normalize_observations=False, network_factory=factory)
  normalizer = running_statistics.init_state(specs.Array((4,), jnp.dtype("float32")))
  folder = (path / "checkpoints" / "seed_0").absolute()
  for step, mean in _BRAX_CHECKPOINTS.items():
    params = jax.tree.map(jnp.zeros_like, network.policy_network.init(jax.random.PRNGKey(0)))
    params["params"]["hidden_1"]["bias"] = jnp.array([mean, mean, -30.0, -30.0])
    sac_checkpoint.save(folder, step, (normalizer, params), config)
  (path / "config.json").write_text(json.dumps({
      "algo": "sac", "env": env_name, "steps": 300, "seeds": 1, "seed": 0, "hyper": {},
      "config": {"episode_length": 50, "action_repeat": 1, "num_envs": 1,
                 "max_replay_size": 1300, "eval_every": 100}}))
  (path / "metrics.jsonl").write_text("".join(
      json.dumps({"iteration": i, "env_steps": s, "eval/episode_return": [r]}) + "\n"
      for i, (s, r) in enumerate(_BRAX_RETURNS.items())))
  return path


@pytest.fixture(scope="module")
def brax_run(tmp_path_factory):
  return _write_brax_sac_run(tmp_path_factory.mktemp("brax") / "sac")


def test_cli_collects_every_kind_from_a_brax_run_and_info_reads_it(brax_run, tmp_path):
  out = tmp_path / "data"
  result = _invoke("dataset", "collect", "--env", "fast/PointMass", "--kind", "all", "--run",
                   brax_run, "--size", 400, "--num-envs", 8, "--reference-episodes", 4,
                   "--out", out, "--no-progress")
  assert result.exit_code == 0, result.output
  names = sorted(p.name for p in out.iterdir())
  assert names == sorted(f"fast-PointMass-{k}" for k in C.SUITE_KINDS)
  data = {k: D.load(out / f"fast-PointMass-{k}", env=envs.make("fast/PointMass"))
          for k in C.SUITE_KINDS}
  for kind, d in data.items():
    assert kind in result.output and d.meta["kind"] == kind
    assert d.meta["reference"]["episodes"] == 4 and "wall_s" in d.meta["collection"]
  # medium: the checkpoint whose logged return (30) is nearest random + (expert - random) / 3.
  assert data["medium"].meta["source"]["checkpoint"] == 200
  np.testing.assert_allclose(data["medium"].action, np.tanh(-2.0), atol=0.01)
  assert data["expert"].meta["source"]["checkpoint"] == 300
  np.testing.assert_allclose(data["expert"].action, np.tanh(0.5), atol=0.01)
  assert data["medium-expert"].size == 800
  # medium-replay: the 200 env steps before the medium checkpoint, random then checkpoint 100.
  replay = data["medium-replay"]
  source = replay.meta["source"]
  assert replay.size == 200 and source["reconstruction"] is True
  assert "not the replay itself" in source["note"]
  assert source["segments"] == [{"policy": "uniform random", "transitions": 100},
                                {"policy": 100, "transitions": 100}]
  from_100 = np.all(np.abs(replay.action - np.tanh(2.0)) < 0.01, axis=1)
  assert from_100.sum() == 100   # 4 envs x 50 steps; the switch falls on step 25
  for stream in np.split(from_100, np.flatnonzero(replay.ends)[:-1] + 1):
    assert not np.any(np.diff(stream.astype(int)) < 0)   # random first, then the checkpoint
  _assert_contiguous(replay)
  # info prints the summary and the metadata.
  result = _invoke("dataset", "info", out / "fast-PointMass-medium-replay")
  assert result.exit_code == 0, result.output
  assert "medium-replay dataset on fast/PointMass: 200 transitions" in result.output
  assert '"reconstruction": true' in result.output
  # The same out again is refused before anything is collected.
  result = _invoke("dataset", "collect", "--env", "fast/PointMass", "--kind", "random",
                   "--out", out, "--no-progress")
  assert result.exit_code == 2 and "already exist" in result.output


def test_a_random_dataset_needs_no_run(tmp_path):
  result = _invoke("dataset", "collect", "--env", "fast/PointMass", "--kind", "random",
                   "--size", 500, "--num-envs", 4, "--reference-episodes", 2,
                   "--action-repeat", 2, "--out", tmp_path, "--no-progress")
  assert result.exit_code == 0, result.output
  data = D.load(tmp_path / "fast-PointMass-random")
  assert data.meta["action_repeat"] == 2 and set(data.meta["reference"]) == {"random",
                                                                              "episodes"}
  assert [n for _, n, _ in _episodes_by_hand(data)] == [25] * 20


@pytest.mark.parametrize("args, message", [
    (["--kind", "bogus"], "unknown dataset kind 'bogus'; accepted: random, medium"),
    (["--kind", "medium"], "kind medium needs a run folder (--run)"),
    (["--kind", "expert", "--run", "/nonexistent/run"], "no run folder at /nonexistent/run"),
    (["--kind", "random", "--env", "fast/NoSuchEnv"], "unknown environment 'fast/NoSuchEnv'"),
])
def test_bad_input_is_refused_with_what_is_accepted(args, message, tmp_path):
  if "--env" not in args:
    args = ["--env", "fast/PointMass", *args]
  result = _invoke("dataset", "collect", *args, "--size", 100, "--reference-episodes", 1,
                   "--out", tmp_path / "out", "--no-progress")
  assert result.exit_code == 2
  assert message in " ".join(result.output.split())


def test_a_run_of_another_env_is_refused(brax_run, tmp_path):
  result = _invoke("dataset", "collect", "--env", "fast/PointMassDiscrete", "--kind", "expert",
                   "--run", brax_run, "--out", tmp_path, "--no-progress")
  assert result.exit_code == 2
  assert "was trained on fast/PointMass, not fast/PointMassDiscrete" in result.output
  result = _invoke("dataset", "info", tmp_path / "nothing")
  assert result.exit_code == 2 and "no dataset at" in result.output
