"""World Models' M: the mixture density against numpy, temperature sampling, the LSTM unroll."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.models.mdnrnn import MDNRNNConfig, make_mdnrnn, mdn_log_prob, mdn_sample


def _numpy_log_prob(logit_pi, mean, log_std, x):
  w = np.exp(logit_pi - logit_pi.max(-1, keepdims=True))
  w = w / w.sum(-1, keepdims=True)
  std = np.exp(log_std)
  dens = np.exp(-0.5 * ((x[..., None] - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
  return np.log(np.sum(w * dens, -1))


def test_log_prob_matches_numpy_under_jit_and_vmap():
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  logit_pi = jax.random.normal(keys[0], (6, 3, 4))
  mean = jax.random.normal(keys[1], (6, 3, 4))
  log_std = 0.5 * jax.random.normal(keys[2], (6, 3, 4))
  x = jax.random.normal(keys[3], (6, 3))
  expected = _numpy_log_prob(*(np.asarray(a, np.float64) for a in (logit_pi, mean, log_std, x)))
  np.testing.assert_allclose(jax.jit(mdn_log_prob)(logit_pi, mean, log_std, x), expected,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.vmap(mdn_log_prob)(logit_pi, mean, log_std, x), expected,
                             rtol=1e-5, atol=1e-5)


def test_a_known_two_component_mixture():
  # 0.25 N(-1, 0.5^2) + 0.75 N(2, 1) at x = 0.5, by hand.
  logit_pi = jnp.log(jnp.array([[0.25, 0.75]]))
  mean, log_std = jnp.array([[-1.0, 2.0]]), jnp.log(jnp.array([[0.5, 1.0]]))
  by_hand = (0.25 * math.exp(-0.5 * 9) / (0.5 * math.sqrt(2 * math.pi))
             + 0.75 * math.exp(-0.5 * 2.25) / math.sqrt(2 * math.pi))
  np.testing.assert_allclose(mdn_log_prob(logit_pi, mean, log_std, jnp.array([0.5])),
                             [math.log(by_hand)], rtol=1e-6)


def test_temperature_sampling():
  """tau -> 0 gives the mean of the most likely component; the spread grows with tau, and at
  tau = 1 the samples have the mixture's mean and variance."""
  w = np.array([0.3, 0.7])
  m, s = np.array([-1.0, 1.5]), np.array([0.4, 0.6])
  logit_pi, mean, log_std = (jnp.asarray(a, jnp.float32)[None] for a in (np.log(w), m, np.log(s)))
  sample = jax.jit(jax.vmap(mdn_sample, (0, None, None, None, None)))
  keys = jax.random.split(jax.random.PRNGKey(0), 20_000)
  cold = np.asarray(sample(keys[:200], logit_pi, mean, log_std, 1e-4))
  np.testing.assert_allclose(cold, 1.5, atol=0.02)
  stds = [float(np.std(sample(keys, logit_pi, mean, log_std, tau))) for tau in (0.3, 1.0, 2.0)]
  assert stds[0] < stds[1] < stds[2], stds
  at_one = np.asarray(sample(keys, logit_pi, mean, log_std, 1.0))
  mix_mean = np.sum(w * m)
  mix_var = np.sum(w * (s**2 + m**2)) - mix_mean**2
  assert abs(at_one.mean() - mix_mean) < 0.03 and abs(at_one.var() - mix_var) < 0.05


def test_unroll_matches_steps_and_the_loss_is_finite():
  config = MDNRNNConfig(latent_size=3, action_size=2, hidden_size=8, num_mixtures=2)
  mdn = make_mdnrnn(config)
  params = mdn.init(jax.random.PRNGKey(0))
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
  actions = jax.random.uniform(jax.random.PRNGKey(2), (2, 5, 2), minval=-1, maxval=1)
  outputs = jax.jit(jax.vmap(mdn.unroll, (None, 0, 0)))(params, z[:, :-1], actions)
  assert outputs.logit_pi.shape == (2, 5, 3, 2) and outputs.reward.shape == (2, 5)
  carry = mdn.initial_carry((2,))
  for t in range(5):
    carry, out = mdn.step(params, carry, z[:, t], actions[:, t])
    np.testing.assert_allclose(out.mean, outputs.mean[:, t], atol=1e-5)
  loss, metrics = jax.jit(mdn.loss)(params, z, actions, jnp.zeros((2, 5)), jnp.zeros((2, 5)))
  assert np.isfinite(loss) and set(metrics) >= {"mdn/nll_per_dim", "mdn/reward_mse"}
  with pytest.raises(ValueError, match=r"z \[B, T\+1, Z\]"):
    mdn.loss(params, z[:, :-1], actions, jnp.zeros((2, 5)), jnp.zeros((2, 5)))
