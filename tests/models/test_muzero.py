"""MuZero networks and targets: the value transform, supports, latent scaling, gradient scaling,
shapes of both network variants, and n-step targets against a Python loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.models import muzero as mz


def test_value_transform_inverts_and_matches_the_formula():
  x = jnp.array([-300.0, -7.5, -1.0, 0.0, 0.3, 1.0, 42.0, 1e4])
  h = jax.jit(mz.value_transform)(x)
  np.testing.assert_allclose(h, np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + 1e-3 * x,
                             rtol=1e-6)
  np.testing.assert_allclose(jax.jit(mz.inverse_value_transform)(h), x, rtol=1e-4, atol=1e-4)


def test_support_round_trip_under_jit_and_vmap():
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 7), minval=-20, maxval=20)
  probs = jax.vmap(lambda r: mz.scalar_to_support(r, 10))(x)
  assert probs.shape == (5, 7, 21)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
  back = jax.jit(jax.vmap(lambda p: mz.support_to_scalar(jnp.log(p + 1e-30), 10)))(probs)
  np.testing.assert_allclose(back, x, rtol=1e-3, atol=1e-3)


def test_scale_hidden_is_min_max_per_example():
  s = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 5))
  out = mz.scale_hidden(s, 1)
  flat = np.asarray(s).reshape(3, -1)
  ref = (flat - flat.min(1, keepdims=True)) / (flat.max(1, keepdims=True)
                                               - flat.min(1, keepdims=True))
  np.testing.assert_allclose(np.asarray(out).reshape(3, -1), ref, rtol=1e-5, atol=1e-6)


def test_scale_gradient_halves_the_gradient_only():
  f = lambda x: jnp.sum(mz.scale_gradient(x, 0.5) ** 2)
  x = jnp.array([1.0, -2.0])
  assert float(f(x)) == pytest.approx(5.0)
  np.testing.assert_allclose(jax.grad(f)(x), 0.5 * 2 * x)


@pytest.mark.parametrize("kind,obs_shape", [("mlp", (3, 3, 2)), ("mlp", (6,)),
                                            ("resnet", (6, 7, 2))])
def test_networks_map_shapes(kind, obs_shape):
  config = mz.MuZeroNetConfig(kind=kind, latent=16, hidden=16, layers=1, channels=8, blocks=1,
                              value_support=3, reward_support=2)
  net = mz.make_muzero_net(config, obs_shape, 5)
  params = net.init(jax.random.PRNGKey(0))
  obs = jnp.ones((4, *obs_shape))
  latent = jax.jit(net.represent)(params, obs)
  assert latent.min() >= 0 and latent.max() <= 1 + 1e-6
  nxt, reward_logits = jax.jit(net.dynamics)(params, latent, jnp.arange(4) % 5)
  assert nxt.shape == latent.shape and reward_logits.shape == (4, 5)
  policy, value = jax.jit(net.predict)(params, nxt)
  assert policy.shape == (4, 5) and value.shape == (4, 7)
  # vmap over a second batch axis gives the same as the flat batch.
  two = jax.vmap(net.represent, in_axes=(None, 0))(params, obs.reshape(2, 2, *obs_shape))
  np.testing.assert_allclose(two.reshape(latent.shape), latent, rtol=1e-5, atol=1e-6)


def test_resnet_refuses_vector_observations():
  with pytest.raises(ValueError, match="kind='mlp'"):
    mz.make_muzero_net(mz.MuZeroNetConfig(kind="resnet"), (6,), 3)
  with pytest.raises(ValueError, match="'mlp' or 'resnet'"):
    mz.MuZeroNetConfig(kind="transformer")
