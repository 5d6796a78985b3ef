"""Return and advantage targets shared by the agents: small pure functions of one sequence.

Conventions (rlax's, with DreamerV3's names where Dreamer uses them):

- Time is axis 0. Step ``t`` is: observe ``o_t``, act, receive ``reward[t]`` and arrive at
  ``o_{t+1}``. ``value`` has one more entry than ``reward``: ``value[t] = v(o_t)`` for
  ``t = 0..T``, so ``value[T]`` bootstraps the step after the last.
- The sequence functions (:func:`lambda_returns`, :func:`discounted_returns`, :func:`gae`)
  take one sequence ``[T]``; trailing axes ``[T, ...]``, if any, are independent sequences
  handled elementwise (Dreamer passes ``[H, M]``, time-major). Batch-major data: ``jax.vmap``.
  :func:`n_step_targets` takes exactly one window ``[L]``.
- ``cont[t]`` is the continue flag of the state reached by step ``t`` (0 when the step ended
  the episode in a terminal state; DreamerV3 predicts it). ``terminated`` and ``truncated``
  are kept apart where a sequence may cross an episode boundary (:func:`gae`): a time limit is
  not a terminal state, so a truncated step still bootstraps, from the value of its final
  observation.
- ``discount`` and ``lam`` are scalars or arrays that broadcast against ``reward``; they may
  be traced (vmapped hyperparameters).

Return normalisation (DreamerV3): :func:`percentile_ema_update` keeps an EMA of the 5th and
95th percentiles of the returns, and :func:`percentile_ema_scale` divides advantages by
``max(1, high - low)``.

Symlog and two-hot (:func:`symlog`, :func:`symexp`, :func:`twohot_encode`,
:func:`twohot_mean`) are re-exported from :mod:`wmjax.nets.heads`, where they live.

Written by hand rather than taken from rlax: rlax is not a dependency, its ``lambda_returns``
has no DreamerV3 continue flag and its GAE no separate truncation, and each is a few lines.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from wmjax.nets.heads import symexp, symlog, twohot_encode, twohot_mean
from wmjax.types import Array

__all__ = [
    "discounted_returns",
    "gae",
    "lambda_returns",
    "n_step_targets",
    "percentile_ema_scale",
    "percentile_ema_update",
    "symexp",
    "symlog",
    "twohot_encode",
    "twohot_mean",
]


def _check_sequence(reward: Array, value: Array | None = None, *flags: Array) -> None:
  """``reward [T, ...]``, each flag ``[T, ...]``, ``value [T + 1, ...]``."""
  chex.assert_shape(reward, (None, ...))
  if flags:
    chex.assert_equal_shape([reward, *flags])
  if value is not None:
    chex.assert_shape(value, (reward.shape[0] + 1, *reward.shape[1:]))


def lambda_returns(reward: Array, cont: Array, value: Array, discount: Array,
                   lam: Array) -> Array:
  """TD(lambda) returns, DreamerV3's form (Hafner et al. 2023, eq. 7).

  ``R_t = r_t + discount c_t ((1 - lam) v_{t+1} + lam R_{t+1})`` with ``R_T = v_T``.
  ``lam = 1`` gives the Monte-Carlo return bootstrapped from ``v_T``
  (:func:`discounted_returns`); ``lam = 0`` the one-step TD targets ``r_t + discount c_t
  v_{t+1}``.

  Args:
    reward: ``[T, ...]`` reward of step ``t`` (on arriving at ``t + 1``).
    cont: ``[T, ...]`` continue flag of the state step ``t`` reached (probability or 0/1).
    value: ``[T + 1, ...]`` ``v(o_t)``; ``value[T]`` bootstraps the last step.
    discount, lam: scalars (or broadcastable to ``[T, ...]``).
  Returns:
    ``[T, ...]`` the returns ``R_0..R_{T-1}``.
  """
  _check_sequence(reward, value, cont)

  def step(ret_next, inputs):
    r, c, v_next = inputs
    ret = r + discount * c * ((1.0 - lam) * v_next + lam * ret_next)
    return ret, ret

  _, rets = jax.lax.scan(step, value[-1], (reward, cont, value[1:]), reverse=True)
  return rets


def discounted_returns(reward: Array, cont: Array, discount: Array,
                       bootstrap: Array = 0.0) -> Array:
  """Monte-Carlo returns ``G_t = r_t + discount c_t G_{t+1}``, ``G_T = bootstrap``.

  Args:
    reward: ``[T, ...]``.
    cont: ``[T, ...]`` continue flag of the state step ``t`` reached (0 after a terminal).
    discount: scalar (or broadcastable to ``[T, ...]``).
    bootstrap: ``[...]`` value of the state after the last step (0: none).
  Returns:
    ``[T, ...]``.
  """
  _check_sequence(reward, None, cont)
  reward = jnp.asarray(reward)
  discount = jnp.broadcast_to(discount, reward.shape)
  cont = jnp.asarray(cont, reward.dtype)
  init = jnp.broadcast_to(jnp.asarray(bootstrap, reward.dtype), reward.shape[1:])

  def step(ret_next, inputs):
    r, c, d = inputs
    ret = r + d * c * ret_next
    return ret, ret

  _, rets = jax.lax.scan(step, init, (reward, cont, discount), reverse=True)
  return rets


def gae(reward: Array, value: Array, terminated: Array, truncated: Array, final_value: Array,
        discount: Array, lam: Array) -> Array:
  """Generalized advantage estimation (Schulman et al. 2016) over episode boundaries.

  The sequence may span several episodes of an auto-resetting environment: after a step that
  ended an episode, ``o_{t+1}`` (and so ``value[t + 1]``) is the first observation of the next
  episode. With ``v'_t`` the value of the state step ``t`` actually reached,

  - ``v'_t = final_value[t]`` if ``truncated[t]`` (a time limit: the episode could have gone on,
    so bootstrap from the value of its final observation, not of the reset one);
  - ``v'_t = value[t + 1]`` otherwise; and it counts for nothing if ``terminated[t]``;

  ``delta_t = r_t + discount (1 - terminated_t) v'_t - value[t]`` and
  ``A_t = delta_t + discount lam (1 - terminated_t)(1 - truncated_t) A_{t+1}``, ``A_T = 0``:
  no advantage crosses an episode boundary either way. A step both terminated and truncated
  counts as terminated. ``lam = 1`` gives Monte-Carlo returns minus ``value[t]``; ``lam = 0``
  the one-step TD errors ``delta_t``. Value targets are ``A + value[:-1]``.

  Args:
    reward: ``[T, ...]`` reward of step ``t``.
    value: ``[T + 1, ...]`` ``v(o_t)``; ``value[T]`` bootstraps the last step if it did not end
      the episode.
    terminated: ``[T, ...]`` bool, step ``t`` reached a terminal state.
    truncated: ``[T, ...]`` bool, step ``t`` hit a time limit (not a terminal state).
    final_value: ``[T, ...]`` value of the observation step ``t`` reached before any reset;
      read only where ``truncated`` (zeros are fine where nothing is truncated).
    discount, lam: scalars (or broadcastable to ``[T, ...]``).
  Returns:
    ``[T, ...]`` the advantages ``A_0..A_{T-1}``.
  """
  _check_sequence(reward, value, terminated, truncated, final_value)
  reward = jnp.asarray(reward)
  not_terminal = 1.0 - jnp.asarray(terminated, reward.dtype)
  not_truncated = 1.0 - jnp.asarray(truncated, reward.dtype)
  discount = jnp.broadcast_to(discount, reward.shape)
  lam = jnp.broadcast_to(lam, reward.shape)
  next_value = jnp.where(jnp.asarray(truncated, bool), final_value, value[1:])
  delta = reward + discount * not_terminal * next_value - value[:-1]
  carry_on = discount * lam * not_terminal * not_truncated

  def step(adv_next, inputs):
    d, c = inputs
    adv = d + c * adv_next
    return adv, adv

  _, adv = jax.lax.scan(step, jnp.zeros_like(delta[0]), (delta, carry_on), reverse=True)
  return adv


def n_step_targets(reward: Array, ended: Array, bootstrap: Array, discount: Array, unroll: int,
                   td_steps: int) -> tuple[Array, Array]:
  """MuZero's n-step value targets of positions ``0..K`` of one window (vmap for a batch).

  The target of position ``k`` is ``sum_{j<n} d^j r_{k+j} + d^n bootstrap[k]``, each term kept
  only while no move from ``k`` up to (not including) the one it comes from ended the episode.
  An episode end (terminal or time limit) thus stops the sum without a bootstrap. Two-player
  games pass ``discount = -gamma``: rewards are to the mover and values to the player to move.

  Args:
    reward: ``[L]`` reward to the mover of each move, ``L >= unroll + td_steps``.
    ended: ``[L]`` bool, the move ended the episode (terminal or time limit).
    bootstrap: ``[K + 1]`` target-network value of the position ``k + n`` (to its player).
    discount: ``[]`` per-move discount ``d`` (``-gamma`` for two-player games).
    unroll: ``K``, static.
    td_steps: ``n``, static.
  Returns:
    ``(value [K+1], valid [K+1])``: the n-step target of positions ``0..K`` (0 past the end of
    the window's first episode) and whether the position is in that episode.
  """
  chex.assert_rank([reward, ended, bootstrap], 1)
  chex.assert_equal_shape([reward, ended])
  chex.assert_shape(bootstrap, (unroll + 1,))
  length = reward.shape[0]
  if length < unroll + td_steps:
    raise ValueError(f"n_step_targets needs a window of at least unroll + td_steps = "
                     f"{unroll + td_steps} moves, got {length}")
  ends_before = jnp.concatenate([jnp.zeros((1,), jnp.int32),
                                 jnp.cumsum(ended.astype(jnp.int32))])          # [L + 1]
  k = jnp.arange(unroll + 1)[:, None]                                           # [K+1, 1]
  j = jnp.arange(td_steps)[None, :]                                             # [1, n]
  pos = jnp.minimum(k + j, length - 1)
  alive = (ends_before[k + j] - ends_before[k]) == 0                            # [K+1, n]
  powers = discount ** jnp.arange(td_steps + 1, dtype=jnp.float32)
  summed = jnp.sum(powers[:td_steps] * alive * reward[pos], axis=1)
  alive_n = (ends_before[k[:, 0] + td_steps] - ends_before[k[:, 0]]) == 0
  value = summed + powers[td_steps] * alive_n * bootstrap
  valid = ends_before[jnp.arange(unroll + 1)] == 0
  return jnp.where(valid, value, 0.0), valid


def percentile_ema_update(state: Array, returns: Array, decay: Array, low: float = 5.0,
                          high: float = 95.0) -> Array:
  """One step of DreamerV3's return normalisation statistics.

  Args:
    state: ``[2]`` EMA of the ``low``-th and ``high``-th percentiles (start from zeros).
    returns: ``[...]`` the returns of one update (all of them pooled; no gradient flows).
    decay: EMA decay (DreamerV3: 0.99).
  Returns:
    ``[2]`` ``decay * state + (1 - decay) * (percentile(low), percentile(high))``.
  """
  chex.assert_shape(state, (2,))
  returns = jax.lax.stop_gradient(returns)
  lo = jnp.percentile(returns, low)
  hi = jnp.percentile(returns, high)
  return decay * state + (1.0 - decay) * jnp.stack([lo, hi])


def percentile_ema_scale(state: Array) -> Array:
  """``[]`` DreamerV3's return scale ``max(1, high - low)`` of a ``[2]`` percentile EMA."""
  chex.assert_shape(state, (2,))
  return jnp.maximum(1.0, state[1] - state[0])
