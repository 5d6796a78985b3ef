"""Shooting planners over discrete actions: CEM over per-step categorical distributions, and
random shooting.

Actions reach the objective one-hot, ``[N, H, K]`` for ``K`` actions (a model takes them as any
other action vector), and ``plan`` returns the action to take as a one-hot ``[K]`` (its
``argmax`` is the env's integer action). Shapes: ``N`` candidate sequences (population), ``H``
horizon, ``K`` actions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.planners.random_shooting import _check_sizes, _evaluate
from wmjax.types import Array, Key, ObjectiveFn, Planner, Spec

__all__ = ["CategoricalState", "make_categorical_cem", "make_categorical_shooting"]


class CategoricalState(NamedTuple):
  """Warm start: per-step action probabilities ``[H, K]``, shifted by one step each ``plan``."""

  probs: Array


def _init_state(spec: Spec, horizon: int, planner: str) -> CategoricalState:
  if not spec.discrete:
    raise ValueError(f"{planner} plans over discrete actions; got continuous actions of shape "
                     f"{spec.action_shape} (use cem, icem, mppi or random_shooting)")
  k = int(spec.num_actions)
  return CategoricalState(probs=jnp.full((horizon, k), 1.0 / k, jnp.float32))


def _shift(probs: Array) -> Array:
  """Drops the step just taken; the new last step is uniform."""
  k = probs.shape[-1]
  return jnp.concatenate([probs[1:], jnp.full((1, k), 1.0 / k, probs.dtype)], axis=0)


def _sample(key: Key, probs: Array, population: int) -> Array:
  """``population`` sequences ``[N, H]`` of action indices, step ``h`` drawn from
  ``probs[h]``."""
  logits = jnp.log(jnp.maximum(probs, 1e-30))
  return jax.random.categorical(key, logits, axis=-1, shape=(population, probs.shape[0]))


def make_categorical_cem(horizon: int, population: int, *, iterations: int = 5,
                         elite_fraction: float = 0.1, alpha: float = 0.1,
                         smoothing: float = 0.01, warm_start: float = 0.0) -> Planner:
  """CEM over categorical distributions (Rubinstein 1999; the discrete case of PETS' CEM).

  Each iteration samples ``population`` sequences from the per-step distributions, scores them
  with the objective and refits each step's distribution to the frequencies of the actions in
  the elites (the ``elite_fraction`` best), mixed with the old one by ``alpha`` and with the
  uniform one by ``smoothing`` (so no action's probability reaches zero). ``plan`` takes the
  first action of the best sequence it scored.

  Each ``plan`` starts from ``warm_start`` times the previous step's shifted distributions plus
  ``1 - warm_start`` times the uniform one. The default, 0, starts every step afresh, as the
  continuous CEM restarts its std every step: a shifted categorical plan has collapsed (its
  entropy is a fraction of a nat), so starting from it (1) samples the previous plan again and
  again and cannot revise it. Measured with PETS on ``fast/PointMassDiscrete`` (4 seeds, the
  same trained models planned with each, 16 evaluation episodes per seed): 1 gave a seed 32 of
  50 and episodes as low as 9; 0 gave 43-46 on every seed and no episode under 34.
  """
  _check_sizes(horizon=horizon, population=population, iterations=iterations)
  if not 0.0 < elite_fraction <= 1.0:
    raise ValueError(f"elite_fraction must be in (0, 1], got {elite_fraction}")
  num_elites = max(1, int(round(elite_fraction * population)))
  if not 0.0 <= smoothing < 1.0:
    raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
  if not 0.0 <= warm_start <= 1.0:
    raise ValueError(f"warm_start must be in [0, 1], got {warm_start}")

  def init(spec: Spec) -> CategoricalState:
    return _init_state(spec, horizon, "categorical CEM")

  def plan(state: CategoricalState, key: Key, objective: ObjectiveFn):
    k = state.probs.shape[-1]

    def iteration(carry, key_i):
      probs, best_return, best_plan, nonfinite = carry
      key_sample, key_eval = jax.random.split(key_i)
      index = _sample(key_sample, probs, population)                 # [N, H]
      actions = jax.nn.one_hot(index, k)                             # [N, H, K]
      returns, bad = _evaluate(objective, key_eval, actions)         # [N], []
      top, elites = jax.lax.top_k(returns, num_elites)               # [E]
      freq = jnp.mean(actions[elites], axis=0)                       # [H, K]
      probs = alpha * probs + (1.0 - alpha) * freq
      probs = (1.0 - smoothing) * probs + smoothing / k
      better = top[0] > best_return
      best_plan = jnp.where(better, actions[elites[0]], best_plan)
      best_return = jnp.where(better, top[0], best_return)
      return (probs, best_return, best_plan, nonfinite + bad), None

    probs0 = warm_start * state.probs + (1.0 - warm_start) / k
    carry = (probs0, jnp.float32(-jnp.inf), jax.nn.one_hot(jnp.zeros(horizon, int), k),
             jnp.int32(0))
    (probs, best_return, best_plan, nonfinite), _ = jax.lax.scan(
        iteration, carry, jax.random.split(key, iterations))
    info = {"planner/return": best_return, "planner/nonfinite_returns": nonfinite,
            "planner/entropy": -jnp.mean(jnp.sum(probs * jnp.log(probs + 1e-30), -1))}
    return CategoricalState(probs=_shift(probs)), best_plan[0], info

  return Planner(init=init, plan=plan)


def make_categorical_shooting(horizon: int, population: int) -> Planner:
  """Random shooting over discrete actions: ``population`` uniform sequences, the best one's
  first action."""
  _check_sizes(horizon=horizon, population=population)

  def init(spec: Spec) -> CategoricalState:
    return _init_state(spec, horizon, "categorical random shooting")

  def plan(state: CategoricalState, key: Key, objective: ObjectiveFn):
    k = state.probs.shape[-1]
    key_sample, key_eval = jax.random.split(key)
    uniform = jnp.full_like(state.probs, 1.0 / k)
    actions = jax.nn.one_hot(_sample(key_sample, uniform, population), k)   # [N, H, K]
    returns, nonfinite = _evaluate(objective, key_eval, actions)
    best = jnp.argmax(returns)
    info = {"planner/return": returns[best], "planner/nonfinite_returns": nonfinite}
    return state, actions[best, 0], info

  return Planner(init=init, plan=plan)
