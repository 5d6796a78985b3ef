"""MOPO and MOReL: they learn from a fixed dataset to beat its behaviour, their pessimism does
what it says (MOPO's penalty lowers model rewards by exactly lambda x u; MOReL halts everything at
threshold 0 and nothing at a huge threshold), seeds and penalties vmap, and bad input is refused
before training."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.agents.offline_data import pointmass_dataset
from wmjax import envs
from wmjax.agents import mopo as mopo_lib
from wmjax.cli import app
from wmjax.offline import DatasetError, from_arrays, save
from wmjax.train import loop

TINY = dict(ensemble_size=3, num_elites=2, hidden_sizes=(32, 32), model_updates=200,
            model_steps_per_iteration=100, model_batch_size=64, rollout_batch=64,
            rollout_length=4, model_retain_iterations=2, sac_hidden_sizes=(32,),
            sac_batch_size=32, updates_per_iteration=8, eval_episodes=2)


# The point mass's reference returns (random policy about 28, a good controller about 45), so
# runs on this dataset report D4RL's normalised score.
REFERENCE = {"random": 28.0, "expert": 45.0}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("offline") / "pointmass"
  data = pointmass_dataset()
  save(dataclasses.replace(data, meta={**data.meta, "reference": REFERENCE}), path)
  return path


@pytest.mark.parametrize("algo", ["mopo", "morel"])
def test_learns_from_the_dataset_to_beat_its_behaviour(algo, dataset_dir, tmp_path):
  """The `fast` preset (3k model steps, 5k SAC updates) on 3,000 transitions of random, good and
  bad behaviour: behaviour 26.5, random about 28, cloning the mean action about 35, the good
  controller about 45."""
  data = pointmass_dataset()
  behaviour = data.behaviour_return
  run = loop.train(algo, "fast/PointMass", out=tmp_path / algo, seeds=1,
                   sets=[f"dataset={dataset_dir}"], progress=False)
  records = run.read_metrics()
  final = [r for r in records if "eval/episode_return" in r][-1]
  assert final["updates"] == 5000 and final["env_steps"] == 0
  assert final["eval/episode_return_mean"] > max(behaviour, 28.0) + 8.0, (final, behaviour)
  config = json.loads((run.path / "config.json").read_text())
  assert config["derived"]["dataset"]["behaviour_return"] == pytest.approx(behaviour)
  assert (run.path / "curve.png").exists()
  returns = np.asarray(final["eval/episode_return"])
  np.testing.assert_allclose(final["eval/normalized_score"], 100 * (returns - 28.0) / 17.0,
                             rtol=1e-4)
  if algo == "mopo":   # `wmjax eval` reports the score too
    result = CliRunner().invoke(app, ["eval", str(run.path), "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert "normalised score (D4RL's): mean" in result.output, result.output


@pytest.fixture(scope="module")
def tiny_agents():
  env = envs.make("fast/PointMass")
  data = pointmass_dataset().device()
  mopo = mopo_lib.make_mopo(env, data, mopo_lib.MOPOConfig(**TINY))
  morel = mopo_lib.make_morel(env, data, mopo_lib.MOReLConfig(**TINY))
  return mopo, morel


def _fitted(agent, hyper):
  """Two runs (vmapped over ``hyper``'s leading axis) after the model phase."""
  keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
  state = jax.jit(jax.vmap(agent.init))(keys, hyper)
  fit = jax.jit(jax.vmap(agent.model_iteration))
  for _ in range(2):
    state, _ = fit(state, hyper)
  return state


def test_mopo_penalty_lowers_model_rewards_by_lambda_times_uncertainty(tiny_agents):
  """Two runs with the same key, lambda 0 and 2, vmapped: the same rollouts, rewards apart by
  exactly 2 x the mean uncertainty."""
  mopo, _ = tiny_agents
  hyper = mopo_lib.MOPOHyper(*[jnp.stack([jnp.asarray(v, jnp.float32)] * 2)
                               for v in mopo_lib.MOPOHyper()])
  hyper = hyper._replace(penalty_coef=jnp.array([0.0, 2.0]))
  state = _fitted(mopo, hyper)
  _, metrics = jax.jit(jax.vmap(mopo.policy_iteration))(state, hyper)
  u = np.asarray(metrics["mopo/uncertainty"])
  reward = np.asarray(metrics["model/rollout_reward"])
  assert u[0] > 0 and u[0] == pytest.approx(u[1], rel=1e-5)
  assert reward[0] - reward[1] == pytest.approx(2.0 * u[0], rel=1e-3)


def test_morel_halts_everything_at_threshold_zero_and_nothing_far_out(tiny_agents):
  _, morel = tiny_agents
  hyper = morel_lib_hyper(threshold=[0.0, 1e6])
  state = _fitted(morel, hyper)
  assert np.all(np.asarray(state.uncertainty_ref) > 0)
  state, metrics = jax.jit(jax.vmap(morel.policy_iteration))(state, hyper)
  halted = np.asarray(metrics["morel/halted"])
  live = np.asarray(metrics["model/rollout_live"])
  assert halted[0] == 1.0 and halted[1] == 0.0
  # Halted at the first step: only the first of 4 steps is live; the buffer holds no dead row.
  assert live[0] == pytest.approx(0.25) and live[1] == 1.0
  imagined = jax.tree.map(lambda x: np.asarray(x[0]), state.imagined.data)
  size = int(np.asarray(state.imagined.size)[0])
  assert np.all(imagined.terminated[:size] == 1.0)
  data = pointmass_dataset()
  halt_reward = data.reward.min() - 10.0 * (data.reward.max() - data.reward.min())
  np.testing.assert_allclose(imagined.reward[:size], halt_reward, rtol=1e-5)
  # Every stored halted row starts from a dataset state (no row past a halt was kept).
  starts = {tuple(np.round(o, 5)) for o in data.obs}
  assert all(tuple(np.round(o, 5)) in starts for o in imagined.obs[:size][:50])


def morel_lib_hyper(**values):
  hyper = mopo_lib.MOReLHyper(*[jnp.stack([jnp.asarray(v, jnp.float32)] * 2)
                                for v in mopo_lib.MOReLHyper()])
  return hyper._replace(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})


def test_learned_termination_ends_model_rollouts():
  """A dataset whose episodes end when |x| > 1.6: MOPO (auto) learns the terminal states and its
  rollouts end there, so terminated rows appear in the model buffer only past that line."""
  data = pointmass_dataset()
  far = np.linalg.norm(data.next_obs[:, :2], axis=1) > 1.6
  assert far.sum() > 20, far.sum()
  term = from_arrays(data.obs, data.action, data.reward, data.next_obs, far.astype(np.float32),
                     np.where(far, 0.0, data.truncated), env="fast/PointMass")
  env = envs.make("fast/PointMass")
  config = mopo_lib.MOPOConfig(**{**TINY, "rollout_batch": 512, "rollout_length": 8})
  agent = mopo_lib.make_mopo(env, term.device(), config)
  assert agent.learns_termination
  hyper = mopo_lib.MOPOHyper()
  state = jax.jit(agent.init)(jax.random.PRNGKey(1), hyper)
  fit = jax.jit(agent.model_iteration)
  for _ in range(6):
    state, fit_metrics = fit(state, hyper)
  assert float(fit_metrics["termination/recall"]) > 0.8
  state, metrics = jax.jit(agent.policy_iteration)(state, hyper)
  assert 0.0 < float(metrics["model/rollout_terminal"])
  rows = jax.tree.map(np.asarray, state.imagined.data)
  size = int(state.imagined.size)
  ended = rows.terminated[:size] > 0
  assert ended.any()
  assert np.median(np.linalg.norm(rows.next_obs[:size][ended, :2], axis=1)) > 1.4
  off = mopo_lib.make_mopo(env, term.device(),
                           dataclasses.replace(config, learn_termination="off"))
  assert not off.learns_termination


def test_bad_input_is_refused_before_training(dataset_dir, tmp_path):
  runner = CliRunner()
  # An online agent given a dataset; an offline agent without one.
  result = runner.invoke(app, ["train", "mbpo", "--env", "fast/PointMass", "--dataset",
                               str(dataset_dir), "--out", str(tmp_path / "a")])
  assert result.exit_code != 0 and "offline agents" in result.output
  result = runner.invoke(app, ["train", "mopo", "--out", str(tmp_path / "b")])
  assert result.exit_code != 0 and "--dataset PATH" in result.output
  result = runner.invoke(app, ["train", "mopo", "--dataset", str(tmp_path / "nothing")])
  assert result.exit_code != 0 and "no dataset at" in result.output
  # A dataset of another env.
  result = runner.invoke(app, ["train", "mopo", "--dataset", str(dataset_dir), "--env",
                               "fast/PointMassDiscrete", "--out", str(tmp_path / "c")])
  assert result.exit_code != 0 and "collected on fast/PointMass" in result.output
  assert not (tmp_path / "c").exists()
  # Shapes that do not fit the env, and a discrete-action env.
  env = envs.make("fast/PointMass")
  data = pointmass_dataset().device()
  with pytest.raises(ValueError, match="'obs' has rows of shape"):
    mopo_lib.make_mopo(env, data._replace(obs=data.obs[:, :3]), mopo_lib.MOPOConfig(**TINY))
  with pytest.raises(ValueError, match="continuous actions"):
    mopo_lib.make_mopo(envs.make("fast/PointMassDiscrete"), data, mopo_lib.MOPOConfig(**TINY))
  with pytest.raises(DatasetError, match="'reward' has a NaN or infinite value at row 7"):
    d = pointmass_dataset()
    reward = d.reward.copy()
    reward[7] = np.nan
    from_arrays(d.obs, d.action, reward, d.next_obs)
  with pytest.raises(ValueError, match="threshold"):
    loop.train("morel", "fast/PointMass", out=tmp_path / "d",
               sets=[f"dataset={dataset_dir}", "threshold=-1"], progress=False)


def test_a_penalty_sweep_fits_one_model_per_seed_and_trains_as_separate_runs(dataset_dir,
                                                                             tmp_path):
  """Two penalties x two seeds in one program over two devices: the model phase runs once per
  seed (the groups), and the runs that receive a copied model train as a run of their penalty
  alone does."""
  from wmjax.train.common import RunAxis

  sets = [f"dataset={dataset_dir}", *(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                      for k, v in TINY.items()), "eval_every=0"]
  axis = RunAxis(seed=0, seeds=2, points=({"penalty_coef": 0.0}, {"penalty_coef": 2.0}))
  hypers = axis.hypers(mopo_lib.MOPOHyper())
  first, member = loop.shared_groups(axis, hypers, ("model_lr", "weight_decay"))
  assert first.tolist() == [0, 1] and member.tolist() == [0, 1, 0, 1]   # runs: (point, seed)
  assert loop.shared_groups(axis, hypers, ("penalty_coef",)) is None

  def lines(run):
    return run.read_metrics()

  # Split over 2 devices, as a sweep's program is on this CPU: each holds one seed's model.
  said = []
  swept = lines(loop.train("mopo", "fast/PointMass", out=tmp_path / "sweep", steps=8,
                           run_axis=axis, sets=sets, progress=False, devices=2,
                           echo=said.append))
  assert any("phase model: computed 2 times for 4 runs" in line for line in said), said
  # The second penalty's runs are the ones that receive a copied model: alone, they fit it.
  alone = lines(loop.train("mopo", "fast/PointMass", out=tmp_path / "alone", steps=8, seeds=2,
                           sets=[*sets, "penalty_coef=2.0"], progress=False))
  assert len(alone) == len(swept) == 3   # 2 model iterations, 1 policy iteration
  compared = 0
  for a, s in zip(alone, swept, strict=True):
    for name in ("model/loss", "mopo/dataset_uncertainty_max", "model/rollout_reward",
                 "sac/critic_loss", "eval/episode_return"):
      if name in a:
        np.testing.assert_allclose(s[name][2:], a[name], rtol=1e-4, err_msg=name)
        compared += 1
  assert compared == 2 + 2 + 3
  model_loss = [r["model/loss"] for r in swept if "model/loss" in r][-1]
  assert model_loss[0] != model_loss[1]   # the seeds' models differ (not one copied to all)
