"""RSSM: filtering resets at episode starts, imagination matches step-by-step rolls, losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.agents.dreamer import lambda_returns
from wmjax.models import rssm

CONFIG = rssm.WorldModelConfig(deter=16, hidden=16, units=16, layers=1, stoch_groups=3,
                               stoch_classes=4, reward_bins=21)
B, T, OBS, A = 2, 6, 5, 2


@pytest.fixture(scope="module")
def model():
  _, fns = rssm.make_world_model(CONFIG, (OBS,), A)
  params = fns.init(jax.random.PRNGKey(0))
  return fns, params


def test_observe_resets_at_episode_starts(model):
  fns, params = model
  key = jax.random.PRNGKey(1)
  obs = jax.random.normal(key, (B, T, OBS))
  actions = jax.random.uniform(jax.random.PRNGKey(2), (B, T, A), minval=-1, maxval=1)
  is_first = jnp.zeros((B, T)).at[:, 0].set(1).at[:, 3].set(1)
  # A different history before step 3 must not change the deterministic state at step 3.
  other_obs = obs.at[:, :3].set(jax.random.normal(jax.random.PRNGKey(3), (B, 3, OBS)))
  other_actions = actions.at[:, :3].set(0.3)
  observe = jax.jit(fns.observe)
  embed = fns.encode(params, obs)
  posts, priors = observe(params, key, embed, actions, is_first)
  posts2, _ = observe(params, key, fns.encode(params, other_obs), other_actions, is_first)
  assert posts.deter.shape == (B, T, CONFIG.deter)
  assert posts.stoch.shape == (B, T, CONFIG.stoch)
  assert posts.stats.shape == (B, T, CONFIG.stoch_groups, CONFIG.stoch_classes)
  np.testing.assert_allclose(posts.deter[:, 3], posts2.deter[:, 3], atol=1e-6)
  assert not np.allclose(posts.deter[:, 2], posts2.deter[:, 2])
  # The deterministic state at an episode start is that of the initial state.
  np.testing.assert_allclose(posts.deter[:, 0], posts.deter[:, 3], atol=1e-6)
  # Samples are one-hot per group.
  np.testing.assert_allclose(posts.stoch.reshape(B, T, 3, 4).sum(-1), 1.0, atol=1e-5)


def test_imagine_matches_a_python_loop_of_img_steps(model):
  fns, params = model
  start = fns.initial((B,))
  actions = jax.random.uniform(jax.random.PRNGKey(4), (B, 4, A), minval=-1, maxval=1)
  key = jax.random.PRNGKey(5)
  states = jax.jit(fns.imagine_actions)(params, key, start, actions)
  assert states.deter.shape == (B, 5, CONFIG.deter)
  state = start
  for t, k in enumerate(jax.random.split(key, 4)):
    state = fns.img_step(params, k, state, actions[:, t])
    np.testing.assert_allclose(states.deter[:, t + 1], state.deter, atol=1e-5)
    np.testing.assert_allclose(states.stoch[:, t + 1], state.stoch, atol=1e-5)
  # Under a policy: time-major outputs, policy aux carried through.
  policy = lambda k, feat: (jnp.tanh(feat[..., :A]), feat.sum(-1))
  states, acts, aux = fns.imagine(params, key, policy, start, 4)
  assert states.deter.shape == (5, B, CONFIG.deter)
  assert acts.shape == (4, B, A) and aux.shape == (4, B)


def test_world_model_loss_is_finite_and_decreases(model):
  import optax

  fns, params = model
  key = jax.random.PRNGKey(6)
  t = jnp.arange(T, dtype=jnp.float32)
  batch = {"obs": jnp.sin(t[None, :, None] + jnp.arange(OBS)[None, None] + jnp.arange(B)[:, None,
                                                                                    None]),
           "action": jnp.ones((B, T, A)) * 0.5, "reward": jnp.cos(t)[None].repeat(B, 0),
           "is_first": jnp.zeros((B, T)), "is_terminal": jnp.zeros((B, T))}
  loss_fn = lambda p, k: rssm.world_model_loss(fns, CONFIG, p, k, batch, is_image=False)[0]
  tx = optax.adam(3e-3)

  @jax.jit
  def train(params):
    def body(carry, k):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, k)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss
    (_, _), losses = jax.lax.scan(body, (params, tx.init(params)), jax.random.split(key, 150))
    return losses

  losses = np.asarray(train(params))
  assert np.all(np.isfinite(losses))
  assert losses[-10:].mean() < 0.5 * losses[:10].mean(), (losses[:3], losses[-3:])


def test_gaussian_latents():
  config = rssm.WorldModelConfig(deter=8, hidden=8, units=8, layers=1, stoch_groups=3,
                                 latent="gaussian", reward_bins=11)
  _, fns = rssm.make_world_model(config, (OBS,), A)
  params = fns.init(jax.random.PRNGKey(0))
  embed = fns.encode(params, jnp.ones((B, T, OBS)))
  posts, priors = fns.observe(params, jax.random.PRNGKey(1), embed, jnp.zeros((B, T, A)),
                              jnp.zeros((B, T)).at[:, 0].set(1))
  assert posts.stoch.shape == (B, T, 3)
  assert posts.stats.shape == (B, T, 3, 2)
  assert np.all(np.asarray(posts.stats[..., 1]) >= config.min_std)
  kl = rssm.kl_divergence(config, posts.stats, priors.stats)
  assert kl.shape == (B, T) and np.all(np.asarray(kl) >= -1e-5)


def test_observation_shapes_the_encoder_cannot_take():
  assert rssm.check_observation_shape((7,)) == "vector"
  assert rssm.check_observation_shape((16, 16, 3)) == "image"
  for shape in [(4, 5), (3, 16, 16), (2, 3, 4, 5)]:
    with pytest.raises(ValueError, match="encoder takes vectors"):
      rssm.check_observation_shape(shape)
  with pytest.raises(ValueError, match="latent"):
    rssm.WorldModelConfig(latent="beta")


def test_lambda_returns_match_a_python_loop():
  h, m = 5, 3
  rng = np.random.default_rng(0)
  reward, cont = rng.normal(size=(h, m)), rng.uniform(size=(h, m))
  value = rng.normal(size=(h + 1, m))
  discount, lam = 0.9, 0.8
  ref = np.zeros((h, m))
  nxt = value[-1]
  for t in reversed(range(h)):
    nxt = reward[t] + discount * cont[t] * ((1 - lam) * value[t + 1] + lam * nxt)
    ref[t] = nxt
  out = jax.jit(jax.vmap(lambda r, c, v: lambda_returns(r, c, v, discount, lam), 1, 1))(
      reward, cont, value)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  # lam = 0 is one-step TD targets.
  td = lambda_returns(reward, cont, value, discount, 0.0)
  np.testing.assert_allclose(td, reward + discount * cont * value[1:], rtol=1e-5, atol=1e-5)
