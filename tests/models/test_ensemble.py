"""Tests for the PETS probabilistic ensemble and the MLP."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.models import EnsembleConfig, make_ensemble
from wmjax.nets import MLP, get_activation
from wmjax.types import Transition

CAPACITY = 1500
SIZE = 1200
GARBAGE = 1e6


def _noise_std(x):
  return 0.02 + 0.1 * np.abs(x)


def _hetero_data(seed=0):
  """1-D heteroscedastic regression as transitions: next_obs = x + sin(x) + noise(x)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2.0, 2.0, CAPACITY).astype(np.float32)
  y = np.sin(x) + _noise_std(x) * rng.standard_normal(CAPACITY).astype(np.float32)
  obs, next_obs = x[:, None], (x + y)[:, None]
  obs[SIZE:] = GARBAGE
  next_obs[SIZE:] = -GARBAGE
  return Transition(
      obs=jnp.asarray(obs),
      action=jnp.zeros((CAPACITY, 1)),
      reward=jnp.zeros(CAPACITY),
      next_obs=jnp.asarray(next_obs),
      terminated=jnp.zeros(CAPACITY, bool),
  )


HETERO_CONFIG = EnsembleConfig(
    obs_size=1,
    action_size=1,
    ensemble_size=5,
    num_elites=3,
    hidden_sizes=(32, 32),
    learn_reward=False,
    batch_size=128,
    train_steps=500,
    holdout_fraction=0.2,
)


@pytest.fixture(scope="module")
def fitted():
  ens = make_ensemble(HETERO_CONFIG)
  data = _hetero_data()
  state = jax.jit(ens.init)(jax.random.key(0))
  fit = jax.jit(ens.fit)
  history = []
  for i, key in enumerate(jax.random.split(jax.random.key(1), 4)):
    state, metrics = fit(state, key, data, jnp.int32(SIZE - 100 * (3 - i)))
    history.append({k: float(v) for k, v in metrics.items()})
  return ens, state, data, history


def test_loss_falls_across_fits(fitted):
  _, _, _, history = fitted
  losses = [h["model/loss"] for h in history]
  assert all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0] - 0.05, losses
  assert history[-1]["model/train_mse"] < history[0]["model/train_mse"], history


def test_predicted_std_tracks_heteroscedastic_noise(fitted):
  ens, state, _, _ = fitted
  grid = jnp.linspace(-1.9, 1.9, 39)[:, None]
  mean, logvar = ens.predict(state, grid, jnp.zeros((39, 1)))
  assert mean.shape == logvar.shape == (5, 39, 1)
  elites = np.asarray(state.elite_idx)
  pred_std = np.exp(0.5 * np.asarray(logvar)[elites, :, 0]).mean(0)
  true_std = _noise_std(np.asarray(grid[:, 0]))
  corr = np.corrcoef(pred_std, true_std)[0, 1]
  rel_err = np.mean(np.abs(pred_std - true_std) / true_std)
  assert corr > 0.9, corr
  assert rel_err < 0.35, rel_err
  # The mean follows sin(x) (predicted next_obs = obs + delta).
  pred_mean = np.asarray(mean)[elites, :, 0].mean(0)
  np.testing.assert_allclose(pred_mean, grid[:, 0] + np.sin(grid[:, 0]), atol=0.1)


def test_disagreement_larger_off_data(fitted):
  ens, state, _, _ = fitted
  on = jnp.linspace(-1.5, 1.5, 16)[:, None]
  off = jnp.linspace(4.0, 5.0, 16)[:, None]
  spread = lambda x: float(jnp.mean(jnp.std(ens.predict(state, x, jnp.zeros_like(x))[0], 0)))
  assert spread(off) > 5 * spread(on), (spread(off), spread(on))


def _holdout_rows(size, fraction):
  is_val = np.asarray(jax.random.uniform(jax.random.key(0), (CAPACITY,))) < fraction
  valid = np.arange(CAPACITY) < size
  return valid & ~is_val, valid & is_val


def test_elites_have_lowest_validation_error(fitted):
  ens, state, data, history = fitted
  train, val = _holdout_rows(SIZE, HETERO_CONFIG.holdout_fraction)
  assert val.sum() > 100
  obs, nxt = np.asarray(data.obs)[val], np.asarray(data.next_obs)[val]
  mean, _ = ens.predict(state, jnp.asarray(obs), jnp.zeros((len(obs), 1)))   # [E, V, 1]
  norm = state.normalizer
  pred_delta = (np.asarray(mean) - obs - np.asarray(norm.target_mean)) / np.asarray(
      norm.target_std
  )
  true_delta = (nxt - obs - np.asarray(norm.target_mean)) / np.asarray(norm.target_std)
  val_mse = np.mean((pred_delta - true_delta) ** 2, axis=(1, 2))              # [E]
  expected = np.argsort(val_mse)[: HETERO_CONFIG.num_elites]
  np.testing.assert_array_equal(np.asarray(state.elite_idx), expected)
  np.testing.assert_allclose(history[-1]["model/val_mse"], val_mse[expected].mean(), rtol=1e-3)


def test_predict_members_matches_predict(fitted):
  ens, state, _, _ = fitted
  key_obs, key_act = jax.random.split(jax.random.key(3))
  obs = jax.random.uniform(key_obs, (4, 6, 1), minval=-2, maxval=2)
  act = jax.random.normal(key_act, (4, 6, 1))
  idx = jnp.array([3, 0, 3, 1], jnp.int32)
  mean_g, logvar_g = jax.jit(ens.predict_members)(state, idx, obs, act)
  mean_all, logvar_all = jax.jit(ens.predict)(state, obs, act)           # [E, 4, 6, D]
  for g in range(4):
    np.testing.assert_allclose(mean_g[g], mean_all[idx[g], g], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar_g[g], logvar_all[idx[g], g], rtol=1e-5, atol=1e-5)


ANGLE_CONFIG = EnsembleConfig(
    obs_size=3,
    action_size=2,
    ensemble_size=3,
    num_elites=2,
    hidden_sizes=(16,),
    angle_dims=(1,),
    batch_size=32,
    train_steps=3,
    holdout_fraction=0.25,
)


def _angle_data(capacity, size, seed=0):
  rng = np.random.default_rng(seed)
  obs = rng.normal(size=(capacity, 3)).astype(np.float32) * [1.0, 3.0, 2.0]
  act = rng.uniform(-1, 1, size=(capacity, 2)).astype(np.float32)
  nxt = (obs + 0.3 * rng.normal(size=(capacity, 3))).astype(np.float32)
  rew = rng.normal(size=capacity).astype(np.float32) + 2.0
  for x in (obs, act, nxt, rew):
    x[size:] = GARBAGE
  return Transition(*map(jnp.asarray, (obs, act, rew, nxt)), jnp.zeros(capacity, bool))


def test_angle_preprocessing_uses_sin_cos():
  ens = make_ensemble(ANGLE_CONFIG)
  obs = jnp.array([[0.5, 1.0, -2.0], [1.5, -3.0, 0.25]])
  act = jnp.array([[0.1, -0.2], [0.3, 0.4]])
  x = np.asarray(jax.jit(ens.preprocess)(obs, act))
  o = np.asarray(obs)
  expected = np.stack(
      [o[:, 0], o[:, 2], np.sin(o[:, 1]), np.cos(o[:, 1]), act[:, 0], act[:, 1]], axis=-1
  )
  np.testing.assert_allclose(x, expected, rtol=1e-6)
  assert ANGLE_CONFIG.input_size == 6


def test_normalizer_uses_valid_training_rows_only_under_vmap():
  capacity, size = 300, 250
  ens = make_ensemble(ANGLE_CONFIG)
  data = _angle_data(capacity, size)
  lrs = jnp.array([1e-3, 3e-3])
  init = jax.jit(jax.vmap(ens.init))
  states = init(jax.random.split(jax.random.key(0), 2), lrs, jnp.full(2, 1e-4))
  keys = jax.random.split(jax.random.key(1), 2)
  fit = jax.jit(jax.vmap(ens.fit, in_axes=(0, 0, None, None)))
  states, metrics = fit(states, keys, data, jnp.int32(size))
  for value in metrics.values():
    assert value.shape == (2,) and np.all(np.isfinite(value))
  np.testing.assert_allclose(states.opt_state.hyperparams["learning_rate"], lrs)
  assert states.elite_idx.shape == (2, 2)

  is_val = np.asarray(jax.random.uniform(jax.random.key(0), (capacity,))) < 0.25
  rows = (np.arange(capacity) < size) & ~is_val
  obs, act = np.asarray(data.obs)[rows], np.asarray(data.action)[rows]
  nxt, rew = np.asarray(data.next_obs)[rows], np.asarray(data.reward)[rows]
  inputs = np.concatenate(
      [obs[:, [0, 2]], np.sin(obs[:, [1]]), np.cos(obs[:, [1]]), act], axis=-1
  )
  delta = nxt - obs
  delta[:, 1] = np.mod(delta[:, 1] + np.pi, 2 * np.pi) - np.pi
  targets = np.concatenate([delta, rew[:, None]], axis=-1)
  for seed in range(2):
    norm = jax.tree.map(lambda x, s=seed: np.asarray(x[s]), states.normalizer)
    np.testing.assert_allclose(norm.input_mean, inputs.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.input_std, inputs.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.target_mean, targets.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.target_std, targets.std(0), rtol=1e-4, atol=1e-5)
  # Different seeds give different members.
  kernel = states.params["net"]["params"]["hidden_0"]["kernel"]
  assert kernel.shape == (2, 3, 6, 16)
  assert not np.allclose(kernel[0], kernel[1])


def test_config_validation():
  with pytest.raises(ValueError, match="num_elites"):
    EnsembleConfig(obs_size=2, action_size=1, ensemble_size=3, num_elites=4)
  with pytest.raises(ValueError, match="holdout_fraction"):
    EnsembleConfig(obs_size=2, action_size=1, holdout_fraction=1.0)
  with pytest.raises(ValueError, match="angle_dims"):
    EnsembleConfig(obs_size=2, action_size=1, angle_dims=(2,))
  with pytest.raises(ValueError, match="accepted"):
    EnsembleConfig(obs_size=2, action_size=1, activation="gelu")
  cfg = dataclasses.replace(HETERO_CONFIG, train_steps=7)
  assert hash(cfg) != hash(HETERO_CONFIG)


def test_fit_rejects_bad_shapes():
  ens = make_ensemble(ANGLE_CONFIG)
  data = _angle_data(40, 40)
  state = jax.eval_shape(ens.init, jax.random.key(0))   # shapes only: the error is at trace time
  with pytest.raises(ValueError, match="action"):
    jax.eval_shape(ens.fit, state, jax.random.key(1), data._replace(action=data.action[:, :1]), 40)


def test_mlp_and_activations():
  for name in ("silu", "swish", "relu", "tanh", "elu"):
    assert callable(get_activation(name))
  with pytest.raises(ValueError, match="silu"):
    get_activation("softsign")
  net = MLP(hidden_sizes=(8, 8), output_size=3, activation="tanh")
  params = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 5)))
  assert jax.eval_shape(net.apply, params, jnp.ones((2, 4, 5))).shape == (2, 4, 3)


def test_beta_nll_fits_a_hard_mean_that_plain_nll_leaves_to_the_variance():
  """beta-NLL (Seitzer et al. 2022): with beta = 0.5 the reward mean is fitted much better."""
  rng = np.random.default_rng(0)
  n = 1500
  obs = rng.uniform(-1.5, 1.5, size=(n, 2)).astype(np.float32)
  act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
  nxt = obs + 0.05 * act
  rew = np.exp(-2.0 * np.sum(obs**2, axis=-1)).astype(np.float32)   # a sharp bump
  data = Transition(*map(jnp.asarray, (obs, act, rew, nxt)), jnp.zeros(n))
  errors = {}
  for beta in (0.0, 0.5):
    cfg = EnsembleConfig(obs_size=2, action_size=1, ensemble_size=2, num_elites=2,
                         hidden_sizes=(32, 32), batch_size=64, train_steps=800, nll_beta=beta)
    ens = make_ensemble(cfg)
    state = ens.init(jax.random.key(0))
    state, _ = jax.jit(ens.fit)(state, jax.random.key(1), data, jnp.int32(n))
    mean, _ = ens.predict(state, data.obs, data.action)
    errors[beta] = float(jnp.sqrt(jnp.mean((mean[..., -1] - data.reward) ** 2)))
  assert errors[0.5] < 0.7 * errors[0.0], errors
