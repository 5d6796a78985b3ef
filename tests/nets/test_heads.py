"""Two-hot heads, categorical and Gaussian latents: against NumPy references, under jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wmjax.nets import heads


def _twohot_reference(y, bins):
  """Python-loop two-hot encoding."""
  out = np.zeros((len(y), len(bins)))
  for i, v in enumerate(y):
    v = min(max(v, bins[0]), bins[-1])
    for k in range(len(bins) - 1):
      if bins[k] <= v <= bins[k + 1]:
        w = (v - bins[k]) / (bins[k + 1] - bins[k])
        out[i, k], out[i, k + 1] = 1 - w, w
        break
  return out


def test_symlog_symexp_roundtrip():
  x = jnp.array([-1e4, -3.0, -0.5, 0.0, 0.5, 3.0, 1e4])
  np.testing.assert_allclose(heads.symexp(heads.symlog(x)), x, rtol=1e-5)
  np.testing.assert_allclose(heads.symlog(x), np.sign(x) * np.log1p(np.abs(x)), rtol=1e-6)


def test_twohot_encode_matches_reference_and_decodes():
  bins = heads.twohot_bins(11, -5.0, 5.0)
  exact = np.asarray(bins)[[0, 5, 7, 10]]
  y = np.concatenate([np.random.default_rng(0).uniform(-7.0, 7.0, 20), exact]).astype(np.float32)
  enc = jax.jit(heads.twohot_encode)(y, bins)
  np.testing.assert_allclose(enc, _twohot_reference(y, np.asarray(bins)), atol=1e-5)
  np.testing.assert_allclose(enc.sum(-1), 1.0, atol=1e-6)
  # Exact bin hits are one-hot.
  np.testing.assert_array_equal(enc[-4:], np.eye(11)[[0, 5, 7, 10]])
  # Mean of the encoding (as probabilities) is symexp of the clipped target.
  logits = jnp.log(enc + 1e-30)
  np.testing.assert_allclose(heads.twohot_mean(logits, bins),
                             np.sign(y) * np.expm1(np.minimum(np.abs(y), 5.0)), rtol=1e-4,
                             atol=1e-4)
  # vmap over a leading axis agrees with leading axes in the input.
  enc2 = jax.vmap(heads.twohot_encode, in_axes=(0, None))(y.reshape(4, 6), bins)
  np.testing.assert_allclose(enc2.reshape(24, 11), enc, atol=1e-6)


def test_twohot_loss_recovers_target_by_gradient_descent():
  bins = heads.twohot_bins()
  target = jnp.array([-123.0, -0.3, 0.0, 2.5, 800.0])
  logits = jnp.zeros((5, bins.shape[0]))
  opt = optax.adam(0.3)

  @jax.jit
  def train(logits):
    def body(carry, _):
      logits, opt_state = carry
      loss, grad = jax.value_and_grad(
          lambda lg: heads.twohot_loss(lg, target, bins).sum())(logits)
      updates, opt_state = opt.update(grad, opt_state)
      return (optax.apply_updates(logits, updates), opt_state), loss
    (logits, _), losses = jax.lax.scan(body, (logits, opt.init(logits)), None, length=400)
    return logits, losses

  logits, losses = train(logits)
  assert losses[-1] < 0.1 * losses[0]
  pred = heads.twohot_mean(logits, bins)
  np.testing.assert_allclose(heads.symlog(pred), heads.symlog(target), atol=0.01)


def test_twohot_loss_gives_no_gradient_to_target():
  bins = heads.twohot_bins(21, -3.0, 3.0)
  g = jax.grad(lambda t: heads.twohot_loss(jnp.zeros(21), t, bins))(1.7)
  assert g == 0.0


def test_unimix_probabilities_are_floored():
  logits = 30.0 * jax.random.normal(jax.random.PRNGKey(0), (3, 4, 8))
  mixed = jax.jit(jax.vmap(heads.unimix_logits))(logits)
  probs = jax.nn.softmax(mixed, -1)
  assert float(probs.min()) >= 0.01 / 8 * (1 - 1e-5)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(jnp.exp(mixed).sum(-1), 1.0, atol=1e-5)   # already normalised
  np.testing.assert_allclose(
      probs, 0.99 * jax.nn.softmax(logits, -1) + 0.01 / 8, atol=1e-6)


def test_straight_through_sample_is_onehot_with_probs_gradient():
  key_logits, key_w, key_sample = jax.random.split(jax.random.PRNGKey(1), 3)
  logits = jax.random.normal(key_logits, (6, 5))
  w = jax.random.normal(key_w, (6, 5))
  keys = jax.random.split(key_sample, 6)
  sample = jax.jit(jax.vmap(heads.sample_onehot_straight_through))(keys, logits)
  np.testing.assert_allclose(sample.sum(-1), 1.0, atol=1e-6)
  assert set(np.unique(np.round(np.asarray(sample), 5))) <= {0.0, 1.0}
  grad_st = jax.grad(lambda lg: jnp.sum(
      w * jax.vmap(heads.sample_onehot_straight_through)(keys, lg)))(logits)
  grad_probs = jax.grad(lambda lg: jnp.sum(w * jax.nn.softmax(lg, -1)))(logits)
  np.testing.assert_allclose(grad_st, grad_probs, atol=1e-6)
  # Samples follow the distribution.
  many = heads.sample_onehot_straight_through(
      jax.random.PRNGKey(2), jnp.broadcast_to(jnp.log(jnp.array([0.1, 0.6, 0.3])), (4000, 3)))
  np.testing.assert_allclose(many.mean(0), [0.1, 0.6, 0.3], atol=0.03)


def test_categorical_kl_against_reference():
  kp, kq = jax.random.split(jax.random.PRNGKey(3))
  lp, lq = jax.random.normal(kp, (4, 3, 7)), jax.random.normal(kq, (4, 3, 7))
  kl = jax.jit(jax.vmap(heads.categorical_kl))(lp, lq)
  p = np.exp(lp) / np.exp(lp).sum(-1, keepdims=True)
  q = np.exp(lq) / np.exp(lq).sum(-1, keepdims=True)
  ref = np.zeros((4, 3))
  for i in range(4):
    for j in range(3):
      ref[i, j] = sum(p[i, j, k] * np.log(p[i, j, k] / q[i, j, k]) for k in range(7))
  np.testing.assert_allclose(kl, ref, rtol=1e-4, atol=1e-6)
  assert np.all(np.asarray(kl) > 0)
  np.testing.assert_array_equal(heads.categorical_kl(lp, lp), 0.0)


@pytest.mark.parametrize("shift", [0.0, 1.3])
def test_gaussian_kl_closed_form(shift):
  keys = jax.random.split(jax.random.PRNGKey(4), 4)
  mp, mq = jax.random.normal(keys[0], (5, 3)), jax.random.normal(keys[1], (5, 3)) + shift
  sp = jnp.exp(0.3 * jax.random.normal(keys[2], (5, 3)))
  sq = jnp.exp(0.3 * jax.random.normal(keys[3], (5, 3)))
  kl = jax.jit(jax.vmap(heads.gaussian_kl))(mp, sp, mq, sq)
  mp, sp, mq, sq = map(np.asarray, (mp, sp, mq, sq))
  ref = np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
  np.testing.assert_allclose(kl, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(heads.gaussian_kl(mp, sp, mp, sp), 0.0, atol=1e-6)
