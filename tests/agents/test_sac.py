"""Our SAC learner (used inside MBPO): the squashed-Gaussian log-probability against a direct
reference, and learning a continuous bandit's optimum."""

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents.sac import SACConfig, make_sac
from wmjax.types import Transition


def test_log_prob_matches_change_of_variables_reference():
  sac = make_sac(3, 2, SACConfig(hidden_sizes=(8,)))
  state = sac.init(jax.random.PRNGKey(0))
  obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
  key = jax.random.PRNGKey(2)
  # Reproduce the sample from the same noise, then the density of tanh(u) by hand.
  out = np.asarray(sac.act(state.actor, key, obs))
  from wmjax.nets.mlp import MLP
  raw = np.asarray(MLP((8,), 4, "relu").apply(state.actor, obs), np.float64)
  mean, log_std = raw[:, :2], raw[:, 2:]
  log_std = -5.0 + 0.5 * 7.0 * (np.tanh(log_std) + 1.0)
  eps = np.asarray(jax.random.normal(key, (5, 2)), np.float64)
  u = mean + np.exp(log_std) * eps
  np.testing.assert_allclose(out, np.tanh(u), rtol=1e-5, atol=1e-6)
  # The entropy metric of an update is minus the mean log-probability on the batch's obs.
  batch = Transition(obs=obs, action=jnp.zeros((5, 2)), reward=jnp.zeros(5), next_obs=obs,
                     terminated=jnp.ones(5))
  _, metrics = jax.jit(sac.update)(state, jax.random.split(jax.random.PRNGKey(9))[1], batch)
  assert np.isfinite(float(metrics["sac/entropy"]))
  # Same key path as update's actor loss: split(key) -> (k_next, k_pi); use k_pi directly.
  k_next, k_pi = jax.random.split(jax.random.split(jax.random.PRNGKey(9))[1])
  del k_next
  eps2 = np.asarray(jax.random.normal(k_pi, (5, 2)), np.float64)
  u2 = mean + np.exp(log_std) * eps2
  ref2 = np.sum(-0.5 * eps2**2 - log_std - 0.5 * np.log(2 * np.pi)
                - np.log(1.0 - np.tanh(u2) ** 2), axis=-1)
  np.testing.assert_allclose(float(metrics["sac/entropy"]), -ref2.mean(), rtol=1e-3, atol=1e-3)


def test_sac_finds_the_optimum_of_a_continuous_bandit():
  """One-step episodes with reward -(a - target)^2: the mean action must go to the target."""
  target = jnp.array([0.5, -0.3])
  sac = make_sac(2, 2, SACConfig(hidden_sizes=(32, 32), initial_alpha=0.05))
  obs = jnp.ones((128, 2))

  def step(state, key):
    k_a, k_u = jax.random.split(key)
    action = jax.random.uniform(k_a, (128, 2), minval=-1.0, maxval=1.0)
    reward = -jnp.sum((action - target) ** 2, axis=-1)
    batch = Transition(obs=obs, action=action, reward=reward, next_obs=obs,
                       terminated=jnp.ones(128))
    return sac.update(state, k_u, batch, lr=3e-3)

  state = sac.init(jax.random.PRNGKey(0), 3e-3)
  state, metrics = jax.jit(lambda s, k: jax.lax.scan(step, s, jax.random.split(k, 1500)))(
      state, jax.random.PRNGKey(1))
  greedy = np.asarray(sac.act(state.actor, jax.random.PRNGKey(2), obs[:1], deterministic=True))
  np.testing.assert_allclose(greedy[0], np.asarray(target), atol=0.1)
  assert float(metrics["sac/critic_loss"][-100:].mean()) < 0.05


def test_update_learning_rate_takes_effect_and_zero_leaves_params_unchanged():
  sac = make_sac(3, 2, SACConfig(hidden_sizes=(8,)))
  state = sac.init(jax.random.PRNGKey(0), 3e-4)
  obs = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  batch = Transition(obs=obs, action=jnp.zeros((4, 2)), reward=jnp.ones(4), next_obs=obs,
                     terminated=jnp.zeros(4))
  update = jax.jit(sac.update)
  key = jax.random.PRNGKey(2)

  def learned(s):
    return jax.tree.leaves((s.actor, s.critic, s.log_alpha))

  slow, _ = update(state, key, batch, 0.99, 0.005, 1e-4)
  fast, _ = update(state, key, batch, 0.99, 0.005, 1e-1)
  still, _ = update(state, key, batch, 0.99, 0.005, 0.0)
  for a, b in zip(learned(slow), learned(fast), strict=True):
    assert not np.allclose(a, b)
  for a, b in zip(learned(still), learned(state), strict=True):
    np.testing.assert_array_equal(a, b)


def test_layer_norm_critic_bounds_q_far_outside_the_data():
  """With ``critic_layer_norm`` each hidden layer's output is normalised, so no input, however
  far from the data, can push |Q| past the bound that its output layer gives. A plain critic's
  Q grows with the input, which is what lets an actor climb an extrapolated Q."""
  obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
  action = jax.random.uniform(jax.random.PRNGKey(2), (64, 2), minval=-1.0, maxval=1.0)
  batch = Transition(obs=obs, action=action, reward=jnp.ones(64), next_obs=obs,
                     terminated=jnp.zeros(64))
  far = jnp.linspace(1.0, 1e4, 50)[:, None] * jnp.ones((50, 2))   # actions 1 to 10,000
  q_far = {}
  for layer_norm in (False, True):
    sac = make_sac(3, 2, SACConfig(hidden_sizes=(16, 16), critic_layer_norm=layer_norm))
    state = sac.init(jax.random.PRNGKey(0), 1e-2)
    step = jax.jit(lambda s, k, sac=sac: sac.update(s, k, batch, 0.99, 0.005, 1e-2)[0])
    for key in jax.random.split(jax.random.PRNGKey(3), 20):   # learned norms, not the init's
      state = step(state, key)
    q_far[layer_norm] = np.asarray(sac.q(state.critic, jnp.ones((50, 3)), far))   # [2, 50]
  params = state.critic["params"]
  assert {"norm_0", "norm_1"} <= set(params), set(params)
  for i in range(2):   # each twin: relu(LayerNorm(x)) of width H is <= sqrt(H-1)|scale| + |bias|
    norm, out = params["norm_1"], params["output"]
    unit_max = np.sqrt(15) * np.abs(norm["scale"][i]) + np.abs(norm["bias"][i])
    bound = np.sum(np.abs(out["kernel"][i][:, 0]) * unit_max) + abs(float(out["bias"][i][0]))
    assert np.all(np.abs(q_far[True][i]) <= bound + 1e-4), (np.abs(q_far[True][i]).max(), bound)
  # The plain critic's Q at the farthest action is orders beyond anything the normed one gives.
  assert np.all(np.abs(q_far[False][:, -1]) > 100 * np.abs(q_far[True]).max()), q_far


def test_agents_hand_their_prefixed_settings_to_sac():
  """MBPO's and MOPO's ``sac_*`` fields reach the SACConfig their learner is built with."""
  from wmjax.agents.mbpo import MBPOConfig
  from wmjax.agents.mopo import OfflineModelConfig
  from wmjax.agents.sac import config_from
  for cls in (MBPOConfig, OfflineModelConfig):
    cfg = config_from(cls(sac_hidden_sizes=[7, 5], sac_initial_alpha=0.3,
                          sac_critic_layer_norm=True))
    assert cfg == SACConfig(hidden_sizes=(7, 5), initial_alpha=0.3, critic_layer_norm=True)
  assert config_from(MBPOConfig()).activation == SACConfig().activation   # not held: default
