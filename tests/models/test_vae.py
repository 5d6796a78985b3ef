"""World Models' V: the KL against a closed form, learning fixed images, bad shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wmjax.models.vae import VAEConfig, gaussian_kl, make_vae

CONFIG = VAEConfig(obs_shape=(8, 8, 3), latent_size=4, depth=4, kl_tolerance=0.0,
                   kl_weight=0.1)


def _blobs(n):
  """``[n, 8, 8, 3]`` images, each a bright square at its own place."""
  images = np.zeros((n, 8, 8, 3), np.float32)
  for i in range(n):
    r, c = 2 * (i // 3), 2 * (i % 3)
    images[i, r:r + 3, c:c + 3, i % 3] = 1.0
  return jnp.asarray(images)


def test_gaussian_kl_matches_the_closed_form_under_jit_and_vmap():
  key_m, key_s = jax.random.split(jax.random.PRNGKey(0))
  mean = jax.random.normal(key_m, (3, 5))
  log_std = 0.3 * jax.random.normal(key_s, (3, 5))
  m, s = np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))
  expected = np.sum(np.log(1 / s) + (s**2 + m**2) / 2 - 0.5, axis=-1)
  np.testing.assert_allclose(jax.jit(gaussian_kl)(mean, log_std), expected, rtol=1e-5)
  np.testing.assert_allclose(jax.vmap(gaussian_kl)(mean, log_std), expected, rtol=1e-5)


def test_the_vae_learns_fixed_images():
  vae = make_vae(CONFIG)
  images = _blobs(6)
  tx = optax.adam(3e-3)

  @jax.jit
  def train(params, key):
    def step(carry, key_t):
      params, opt_state = carry
      (loss, metrics), grads = jax.value_and_grad(vae.loss, has_aux=True)(params, key_t, images)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), metrics
    (params, _), metrics = jax.lax.scan(step, (params, tx.init(params)),
                                        jax.random.split(key, 300))
    return params, metrics

  params = vae.init(jax.random.PRNGKey(0))
  mean0, _ = vae.encode(params, images)
  mse0 = float(jnp.mean((vae.decode(params, mean0) - images) ** 2))
  params, metrics = train(params, jax.random.PRNGKey(1))
  loss = np.asarray(metrics["vae/loss"])
  assert loss[-20:].mean() < 0.3 * loss[:20].mean(), (loss[:5], loss[-5:])
  mean, log_std = vae.encode(params, images)
  assert mean.shape == log_std.shape == (6, 4)
  recon = vae.decode(params, mean)
  assert recon.shape == images.shape
  mse = float(jnp.mean((recon - images) ** 2))
  assert mse < 0.2 * mse0, (mse0, mse)
  # Different images get different codes; sampling adds the posterior's noise around them.
  assert float(jnp.min(jnp.linalg.norm(mean[:, None] - mean[None] + 10 * jnp.eye(6)[..., None],
                                       axis=-1))) > 0.1
  z = vae.sample(params, jax.random.PRNGKey(2), images)
  assert z.shape == (6, 4) and not np.allclose(z, mean)


def test_the_kl_floor_frees_the_first_nats():
  """Below ``kl_tolerance * Z`` nats the KL term is constant: no gradient pulls the encoder."""
  config = VAEConfig(obs_shape=(8, 8, 3), latent_size=4, depth=4, kl_tolerance=100.0)
  vae = make_vae(config)
  params = vae.init(jax.random.PRNGKey(0))
  loss, metrics = jax.jit(vae.loss)(params, jax.random.PRNGKey(1), _blobs(2))
  np.testing.assert_allclose(loss, metrics["vae/recon"] + 400.0, rtol=1e-5)


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="image shape"):
    VAEConfig(obs_shape=(4,))
  with pytest.raises(ValueError, match="at least 8 pixels"):
    VAEConfig(obs_shape=(6, 12, 3))
  vae = make_vae(CONFIG)
  with pytest.raises(ValueError, match=r"images \[B, H, W, C\]"):
    vae.loss(vae.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), jnp.zeros((8, 8, 3)))
