"""IQL (offline, model-free): its expectile loss against a numpy reference, learning on a
point-mass dataset of mixed quality (beating the data and behaviour cloning), vmap over runs
against single runs, and the refusal of data and envs it cannot use."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.agents.offline_data import collect
from wmjax.agents.iql import (
    IQLConfig,
    IQLHyper,
    episode_ends,
    expectile_loss,
    make_iql,
    reward_scale_of,
)
from wmjax.envs import make
from wmjax.offline import DatasetError, from_arrays
from wmjax.types import Transition

_ENV = "fast/PointMass"


@pytest.fixture(scope="module")
def env():
  return make(_ENV)


@pytest.fixture(scope="module")
def dataset(env):
  return collect(env, jax.random.PRNGKey(0), (20, 20, 20))


def _stack(*trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def test_expectile_loss_matches_numpy_reference_under_jit_and_vmap():
  diff = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (4, 7)))
  expectiles = np.array([0.5, 0.7, 0.9, 0.1])
  reference = np.where(diff > 0, expectiles[:, None], 1.0 - expectiles[:, None]) * diff**2
  got = jax.jit(jax.vmap(expectile_loss))(jnp.asarray(diff), jnp.asarray(expectiles))
  np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-6)
  # At expectile 0.5 the loss is half the squared error: V regresses on the mean of Q.
  np.testing.assert_allclose(np.asarray(expectile_loss(diff[0], 0.5)), 0.5 * diff[0]**2,
                             rtol=1e-6)


def test_reward_scale_from_inferred_episode_ends_matches_the_datasets_own(dataset):
  ends = episode_ends(dataset.obs, dataset.next_obs, dataset.terminated)
  np.testing.assert_array_equal(ends, dataset.ends > 0)
  returns, _ = dataset.episodes()
  # A wide spread (returns 2-47, mean 26.5): D4RL's rule with T = 50 steps per episode.
  expected = 50.0 / (returns.max() - returns.min())
  assert reward_scale_of(dataset) == pytest.approx(expected)
  assert reward_scale_of(dataset, steps_per_episode=1000) == pytest.approx(
      1000.0 / (returns.max() - returns.min()))
  iql = make_iql(make(_ENV), dataset.device(), IQLConfig(hidden_sizes=(8,)))
  assert iql.reward_scale == pytest.approx(expected, rel=1e-6)
  # A narrow spread (the good controller's episodes only): the floor at |mean| holds the scale
  # near 1 rather than 50 / (a few points).
  good = returns[20:40]
  rows = slice(20 * 50, 40 * 50)
  narrow = from_arrays(dataset.obs[rows], dataset.action[rows], dataset.reward[rows],
                       dataset.next_obs[rows], dataset.terminated[rows], dataset.truncated[rows],
                       env=_ENV, episode_length=50)
  assert good.max() - good.min() < abs(good.mean())
  assert reward_scale_of(narrow) == pytest.approx(50.0 / abs(good.mean()))
  flat = from_arrays(np.zeros((5, 4)), np.zeros((5, 2)), np.zeros(5), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="normalize_reward=False"):
    reward_scale_of(flat)


def test_iql_beats_the_behaviour_policy_and_behaviour_cloning(env, dataset):
  """Random, helpful and harmful episodes: the behaviour return is about a random policy's
  (~28), and cloning the mean action is mediocre; IQL (beta 3) must pick out the helpful ones.
  Behaviour cloning is the same program at temperature 0 (all weights 1), run beside IQL as a
  second vmapped run."""
  returns, _ = dataset.episodes()
  behaviour = dataset.behaviour_return
  random_return = float(returns[:20].mean())
  assert behaviour < 30.0 and random_return < 30.0, (behaviour, random_return)

  config = IQLConfig(hidden_sizes=(64, 64), updates_per_iteration=3000, eval_episodes=20)
  iql = make_iql(env, dataset.device(), config)
  hyper = _stack(IQLHyper(temperature=0.0), IQLHyper(temperature=3.0))
  keys = jnp.stack([jax.random.PRNGKey(1)] * 2)
  state = jax.jit(jax.vmap(iql.init))(keys, hyper)
  state, metrics = jax.jit(jax.vmap(iql.train_iteration))(state, hyper)
  eval_keys = jnp.stack([jax.random.PRNGKey(7)] * 2)
  episodes = jax.jit(jax.vmap(iql.evaluate))(state, eval_keys, hyper)
  bc, iql_returns = np.asarray(episodes.returns).mean(1)
  print(f"behaviour {behaviour:.1f}, random {random_return:.1f}, behaviour cloning {bc:.1f}, "
        f"IQL {iql_returns:.1f}")
  assert np.all(np.asarray(state.updates) == 3000)
  assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
  assert iql_returns > behaviour + 10.0
  assert iql_returns > random_return + 8.0
  assert iql_returns > bc + 4.0

  # The policy acts on one observation; a sample is the mean plus noise, kept in [-1, 1].
  one = jax.tree.map(lambda x: x[1], (state, hyper))
  act = jax.jit(iql.policy.act, static_argnums=5)
  carry = iql.policy.init(*one, jax.random.PRNGKey(2))
  obs = jnp.asarray(dataset.obs[0])
  _, mean = act(*one, carry, obs, jax.random.PRNGKey(3), True)
  _, sample = act(*one, carry, obs, jax.random.PRNGKey(3), False)
  assert mean.shape == sample.shape == (2,)
  assert bool(jnp.all(jnp.abs(mean) <= 1.0)) and bool(jnp.all(jnp.abs(sample) <= 1.0))
  assert not np.allclose(mean, sample)


def test_vmapped_runs_match_single_runs(env, dataset):
  config = IQLConfig(hidden_sizes=(16,), batch_size=32, updates_per_iteration=40,
                     eval_episodes=3, actor_lr_decay_updates=50)
  iql = make_iql(env, dataset.device(), config)
  hypers = [IQLHyper(expectile=0.6, temperature=1.0, actor_lr=1e-3),
            IQLHyper(expectile=0.9, temperature=5.0, discount=0.9, critic_lr=1e-3)]
  key, eval_key = jax.random.PRNGKey(4), jax.random.PRNGKey(5)
  hyper = _stack(*hypers)

  def run(key, hyper):
    state, metrics = iql.train_iteration(iql.init(key, hyper), hyper)
    return state, metrics, iql.evaluate(state, eval_key, hyper)

  batched = jax.jit(jax.vmap(run))(jnp.stack([key, key]), hyper)
  single = jax.jit(run)
  for i, h in enumerate(hypers):
    alone = single(key, jax.tree.map(jnp.asarray, h))
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(batched), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=2e-4, atol=2e-5)
  # The two runs differ (different hypers).
  assert not np.allclose(*np.asarray(batched[1]["iql/v"]))
  assert batched[0].updates.tolist() == [40, 40]


def test_bad_dataset_and_env_are_refused_with_clear_errors(env, dataset):
  data = dataset.device()
  wrong_obs = data._replace(obs=data.obs[:, :3], next_obs=data.next_obs[:, :3])
  with pytest.raises(ValueError, match=r"'obs' has shape \(3000, 3\).*needs \(3000, 4\)"):
    make_iql(env, wrong_obs, IQLConfig())
  with pytest.raises(DatasetError, match="'action'"):
    make_iql(env, data._replace(action=data.action[:, :1]), IQLConfig())
  with pytest.raises(DatasetError, match="'terminated'"):
    make_iql(env, data._replace(terminated=data.terminated[:10]), IQLConfig())
  empty = Transition(*(x[:0] for x in data))
  with pytest.raises(DatasetError, match="N >= 1"):
    make_iql(env, empty, IQLConfig())
  with pytest.raises(ValueError, match="discrete actions"):
    make_iql(make("fast/PointMassDiscrete"), data, IQLConfig())
  with pytest.raises(ValueError, match="vector observations"):
    make_iql(make("fast/PointMassPixels"), data, IQLConfig())
  with pytest.raises(ValueError, match="reward_scale must be"):
    make_iql(env, data, IQLConfig(), reward_scale=0.0)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    IQLConfig(batch_size=0)
  with pytest.raises(ValueError, match="hidden_sizes"):
    IQLConfig(hidden_sizes=())
