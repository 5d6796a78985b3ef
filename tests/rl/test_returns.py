"""wmjax.rl.returns against plain Python loops, under jit and vmap (a batch of independent
sequences), on small random inputs; and the limits lambda = 1 (Monte Carlo) and lambda = 0
(one-step TD)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.nets import heads
from wmjax.rl import returns as rl

B, T = 4, 7
RTOL = ATOL = 1e-5


def _rng(seed):
  return np.random.default_rng(seed)


def _sequences(seed):
  """``reward [B, T]``, ``cont [B, T]`` (some zeros), ``value [B, T + 1]``, float32."""
  rng = _rng(seed)
  reward = rng.normal(size=(B, T)).astype(np.float32)
  cont = (rng.random((B, T)) > 0.2).astype(np.float32)
  value = rng.normal(size=(B, T + 1)).astype(np.float32)
  return reward, cont, value


# Plain-loop references (one sequence each).

def _lambda_returns_loop(reward, cont, value, discount, lam):
  out = np.zeros(len(reward))
  nxt = value[-1]
  for t in reversed(range(len(reward))):
    nxt = reward[t] + discount * cont[t] * ((1 - lam) * value[t + 1] + lam * nxt)
    out[t] = nxt
  return out


def _discounted_returns_loop(reward, cont, discount, bootstrap):
  out = np.zeros(len(reward))
  g = bootstrap
  for t in reversed(range(len(reward))):
    g = reward[t] + discount * cont[t] * g
    out[t] = g
  return out


def _gae_loop(reward, value, terminated, truncated, final_value, discount, lam):
  """Split the sequence into episode pieces, then textbook GAE inside each piece."""
  adv = np.zeros(len(reward))
  a = 0.0
  for t in reversed(range(len(reward))):
    if terminated[t]:
      delta = reward[t] - value[t]
      a = delta                       # nothing flows in from the next episode
    elif truncated[t]:
      delta = reward[t] + discount * final_value[t] - value[t]
      a = delta
    else:
      delta = reward[t] + discount * value[t + 1] - value[t]
      a = delta + discount * lam * a
    adv[t] = a
  return adv


def _n_step_loop(reward, ended, bootstrap, d, unroll, n):
  value, valid = [], []
  for k in range(unroll + 1):
    in_first_episode = not any(ended[:k])
    total, alive = 0.0, True
    for j in range(n):
      total += d ** j * reward[k + j]
      if ended[k + j]:
        alive = False
        break
    if alive:
      total += d ** n * bootstrap[k]
    value.append(total if in_first_episode else 0.0)
    valid.append(in_first_episode)
  return np.array(value), np.array(valid)


# lambda_returns


@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_lambda_returns_match_a_python_loop_under_jit_and_vmap(lam):
  reward, cont, value = _sequences(0)
  discount = 0.9
  fn = jax.jit(jax.vmap(lambda r, c, v: rl.lambda_returns(r, c, v, discount, lam)))
  out = fn(reward, cont, value)
  for b in range(B):
    ref = _lambda_returns_loop(reward[b], cont[b], value[b], discount, lam)
    np.testing.assert_allclose(out[b], ref, rtol=RTOL, atol=ATOL)


def test_lambda_returns_take_time_major_trailing_axes():
  reward, cont, value = _sequences(1)
  batched = rl.lambda_returns(reward.T, cont.T, value.T, 0.95, 0.8)          # [T, B]
  mapped = jax.vmap(lambda r, c, v: rl.lambda_returns(r, c, v, 0.95, 0.8))(reward, cont, value)
  np.testing.assert_allclose(batched.T, mapped, rtol=RTOL, atol=ATOL)


def test_lambda_one_is_monte_carlo_and_lambda_zero_is_one_step_td():
  reward, cont, value = _sequences(2)
  discount = 0.9
  one = jax.vmap(lambda r, c, v: rl.lambda_returns(r, c, v, discount, 1.0))(reward, cont, value)
  mc = jax.vmap(lambda r, c, v: rl.discounted_returns(r, c, discount, v[-1]))(
      reward, cont, value)
  np.testing.assert_allclose(one, mc, rtol=RTOL, atol=ATOL)
  zero = jax.vmap(lambda r, c, v: rl.lambda_returns(r, c, v, discount, 0.0))(reward, cont, value)
  np.testing.assert_allclose(zero, reward + discount * cont * value[:, 1:], rtol=RTOL, atol=ATOL)


def test_lambda_returns_refuse_mismatched_shapes():
  reward, cont, value = _sequences(3)
  with pytest.raises(AssertionError):
    rl.lambda_returns(reward[0], cont[0], value[0, :-1], 0.9, 0.9)     # value must be [T + 1]
  with pytest.raises(AssertionError):
    rl.lambda_returns(reward[0], cont[0, :-1], value[0], 0.9, 0.9)


def test_dreamer_uses_the_shared_lambda_returns():
  from wmjax.agents import dreamer

  assert dreamer.lambda_returns is rl.lambda_returns


# discounted_returns


def test_discounted_returns_match_a_python_loop_under_jit_and_vmap():
  reward, cont, value = _sequences(4)
  discount = jnp.float32(0.97)
  out = jax.jit(jax.vmap(rl.discounted_returns, in_axes=(0, 0, None, 0)))(
      reward, cont, discount, value[:, -1])
  for b in range(B):
    ref = _discounted_returns_loop(reward[b], cont[b], 0.97, value[b, -1])
    np.testing.assert_allclose(out[b], ref, rtol=RTOL, atol=ATOL)
  # Without a bootstrap and with no episode end: the plain discounted sum.
  plain = rl.discounted_returns(reward[0], np.ones(T, np.float32), 0.5)
  np.testing.assert_allclose(plain[0], sum(0.5 ** t * reward[0, t] for t in range(T)),
                             rtol=RTOL, atol=ATOL)


# gae


def _gae_inputs(seed):
  rng = _rng(seed)
  reward = rng.normal(size=(B, T)).astype(np.float32)
  value = rng.normal(size=(B, T + 1)).astype(np.float32)
  final_value = rng.normal(size=(B, T)).astype(np.float32)
  terminated = rng.random((B, T)) < 0.15
  truncated = rng.random((B, T)) < 0.15
  return reward, value, terminated, truncated, final_value


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_a_python_loop_under_jit_and_vmap(lam):
  reward, value, terminated, truncated, final_value = _gae_inputs(5)
  fn = jax.jit(jax.vmap(rl.gae, in_axes=(0, 0, 0, 0, 0, None, None)))
  out = fn(reward, value, terminated, truncated, final_value, jnp.float32(0.9), jnp.float32(lam))
  for b in range(B):
    ref = _gae_loop(reward[b], value[b], terminated[b], truncated[b], final_value[b], 0.9, lam)
    np.testing.assert_allclose(out[b], ref, rtol=RTOL, atol=ATOL)


def test_gae_with_a_termination_and_a_truncation_in_the_middle():
  # Steps 0-1: episode 1, terminated at step 1. Steps 2-4: episode 2, truncated at step 4 with
  # final value 10. Steps 5-6: episode 3, bootstrapped from value[7].
  reward = np.array([1.0, 2.0, 0.5, 0.0, 1.0, 3.0, -1.0], np.float32)
  value = np.array([0.3, -0.2, 0.8, 0.1, 0.4, 0.6, -0.5, 2.0], np.float32)
  terminated = np.array([0, 1, 0, 0, 0, 0, 0], bool)
  truncated = np.array([0, 0, 0, 0, 1, 0, 0], bool)
  final_value = np.array([0, 0, 0, 0, 10.0, 0, 0], np.float32)
  d, lam = 0.9, 0.5
  adv = np.asarray(jax.jit(rl.gae)(reward, value, terminated, truncated, final_value, d, lam))
  # By hand, piece by piece.
  a1 = reward[1] - value[1]
  a0 = reward[0] + d * value[1] - value[0] + d * lam * a1
  a4 = reward[4] + d * 10.0 - value[4]                 # final value, not value[5] (next episode)
  a3 = reward[3] + d * value[4] - value[3] + d * lam * a4
  a2 = reward[2] + d * value[3] - value[2] + d * lam * a3
  a6 = reward[6] + d * value[7] - value[6]
  a5 = reward[5] + d * value[6] - value[5] + d * lam * a6
  np.testing.assert_allclose(adv, [a0, a1, a2, a3, a4, a5, a6], rtol=RTOL, atol=ATOL)
  # Nothing leaks across a boundary: episode 2's rewards and final value change only episode
  # 2's advantages; the next episode's first value changes none of episode 2's.
  reward2, final2 = reward.copy(), final_value * 5
  reward2[2:5] = 100.0
  other = np.asarray(rl.gae(reward2, value, terminated, truncated, final2, d, lam))
  np.testing.assert_allclose(other[[0, 1, 5, 6]], adv[[0, 1, 5, 6]], rtol=RTOL, atol=ATOL)
  value2 = value.copy()
  value2[5] = -50.0
  other = np.asarray(rl.gae(reward, value2, terminated, truncated, final_value, d, lam))
  np.testing.assert_allclose(other[:5], adv[:5], rtol=RTOL, atol=ATOL)


def test_gae_limits_are_monte_carlo_and_td_errors():
  reward, value, terminated, _, final_value = _gae_inputs(6)
  truncated = np.zeros_like(terminated)
  d = 0.9
  gae_b = jax.vmap(rl.gae, in_axes=(0, 0, 0, 0, 0, None, None))
  one = gae_b(reward, value, terminated, truncated, final_value, d, 1.0)
  mc = jax.vmap(rl.discounted_returns, in_axes=(0, 0, None, 0))(
      reward, 1.0 - terminated, d, value[:, -1])
  np.testing.assert_allclose(one + value[:, :-1], mc, rtol=RTOL, atol=ATOL)
  zero = gae_b(reward, value, terminated, truncated, final_value, d, 0.0)
  np.testing.assert_allclose(zero, reward + d * (1.0 - terminated) * value[:, 1:] - value[:, :-1],
                             rtol=RTOL, atol=ATOL)


def test_gae_terminated_wins_over_truncated():
  reward = np.ones(3, np.float32)
  value = np.zeros(4, np.float32)
  both = np.array([0, 1, 0], bool)
  adv = rl.gae(reward, value, both, both, np.full(3, 7.0, np.float32), 1.0, 1.0)
  np.testing.assert_allclose(adv, [2.0, 1.0, 1.0], rtol=RTOL, atol=ATOL)


# n_step_targets


@pytest.mark.parametrize("d", [0.9, -1.0])
def test_n_step_targets_match_a_python_loop_under_jit_and_vmap(d):
  unroll, n = 3, 4
  length = unroll + n + 1
  fn = jax.jit(jax.vmap(rl.n_step_targets, in_axes=(0, 0, 0, None, None, None)),
               static_argnums=(4, 5))
  rng = _rng(7)
  reward = rng.normal(size=(8, length)).astype(np.float32)
  ended = rng.random((8, length)) < 0.15
  boot = rng.normal(size=(8, unroll + 1)).astype(np.float32)
  value, valid = fn(reward, ended, boot, jnp.float32(d), unroll, n)
  for b in range(8):
    ref_v, ref_ok = _n_step_loop(reward[b], ended[b], boot[b], d, unroll, n)
    np.testing.assert_allclose(value[b], ref_v, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(valid[b], ref_ok)


def test_n_step_targets_refuse_a_short_window():
  with pytest.raises(ValueError, match="unroll \\+ td_steps"):
    rl.n_step_targets(jnp.zeros(5), jnp.zeros(5, bool), jnp.zeros(4), 0.9, 3, 4)


def test_muzero_uses_the_shared_n_step_targets():
  from wmjax.agents import muzero

  assert muzero.n_step_targets is rl.n_step_targets


# Return normalisation


def test_percentile_ema_matches_a_loop_under_jit_and_vmap():
  rng = _rng(8)
  rets = rng.normal(size=(B, 5, 6)).astype(np.float32) * 3.0          # B runs, 5 updates each
  decay = 0.9
  step = jax.jit(jax.vmap(lambda s, r: rl.percentile_ema_update(s, r, decay)))
  state = jnp.zeros((B, 2))
  ref = np.zeros((B, 2))
  for u in range(rets.shape[1]):
    state = step(state, rets[:, u])
    for b in range(B):
      lo, hi = np.percentile(rets[b, u], 5.0), np.percentile(rets[b, u], 95.0)
      ref[b] = decay * ref[b] + (1 - decay) * np.array([lo, hi])
  np.testing.assert_allclose(state, ref, rtol=RTOL, atol=ATOL)
  scale = jax.jit(jax.vmap(rl.percentile_ema_scale))(state)
  np.testing.assert_allclose(scale, np.maximum(1.0, ref[:, 1] - ref[:, 0]), rtol=RTOL, atol=ATOL)


def test_percentile_ema_scale_is_at_least_one_and_passes_no_gradient():
  assert float(rl.percentile_ema_scale(jnp.array([0.2, 0.5]))) == 1.0
  assert float(rl.percentile_ema_scale(jnp.array([-1.0, 3.0]))) == 4.0
  grad = jax.grad(lambda r: rl.percentile_ema_update(jnp.zeros(2), r, 0.5).sum())(
      jnp.arange(10.0))
  np.testing.assert_array_equal(grad, 0.0)


# Re-exports


def test_symlog_and_twohot_are_re_exported_not_copied():
  for name in ("symlog", "symexp", "twohot_encode", "twohot_mean"):
    assert getattr(rl, name) is getattr(heads, name)
