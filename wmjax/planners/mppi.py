"""Model predictive path integral control (Williams et al. 2017; mbrl-lib's ``MPPIOptimizer``).

Shapes: ``N`` population, ``H`` horizon, ``A`` action size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wmjax.planners.random_shooting import (
  ShootingState,
  _check_sizes,
  _evaluate,
  _init_state,
  _shift,
)
from wmjax.types import Array, Key, ObjectiveFn, Planner, Spec


def _smooth(actions: Array, smoothing) -> Array:
  """Exponential smoothing along time: ``b_t = (1 - s) * a_t + s * b_{t-1}``, ``b_0 = a_0``."""

  def step(prev_t, a_t):
    b_t = (1.0 - smoothing) * a_t + smoothing * prev_t
    return b_t, b_t

  time_major = jnp.swapaxes(actions, 0, 1)                      # [H, N, A]
  _, smoothed = jax.lax.scan(step, time_major[0], time_major[1:])
  return jnp.swapaxes(jnp.concatenate([time_major[:1], smoothed], axis=0), 0, 1)


def make_mppi(
  horizon: int,
  population: int,
  iterations: int = 5,
  temperature: float = 1.0,
  noise_std: float = 0.5,
  smoothing: float = 0.0,
) -> Planner:
  """MPPI over action sequences, warm-started from the previous step's shifted mean.

  Each iteration perturbs the mean with Gaussian noise (``noise_std``), clips to the bounds,
  weights the samples by ``softmax(returns / temperature)`` and sets the mean to their weighted
  average. ``smoothing`` in ``[0, 1)`` exponentially smooths each sampled sequence over time
  (mbrl-lib's ``beta`` is ``1 - smoothing``; here the first step is left unsmoothed as the state
  does not carry the last executed action). ``temperature``, ``noise_std`` and ``smoothing`` may be
  traced scalars.

  Returns:
    ``Planner`` with ``ShootingState`` state. ``info``: ``planner/return`` (best sample's return in
    the last iteration), ``planner/weighted_return`` (the softmax-weighted average return) and
    ``planner/ess`` (effective sample size of the weights, ``1 / sum(w^2)``; near 1 means the
    temperature is too low for the returns' scale) and ``planner/nonfinite_returns`` (how
    many returns, over all iterations, were NaN or infinite).
  """
  _check_sizes(horizon=horizon, population=population, iterations=iterations)
  smooth = not (isinstance(smoothing, int | float) and smoothing == 0)

  def init(spec: Spec) -> ShootingState:
    return _init_state(spec, horizon, "mppi")

  def plan(state: ShootingState, key: Key, objective: ObjectiveFn):
    sample_keys, eval_keys = jax.random.split(key, (2, iterations))
    low, high = state.low, state.high                             # [A]
    shape = (population, *state.mean.shape)                       # [N, H, A]

    def iteration(mean, xs):
      sample_key, eval_key = xs
      samples = mean + noise_std * jax.random.normal(sample_key, shape)
      if smooth:
        samples = _smooth(samples, smoothing)
      samples = jnp.clip(samples, low, high)                       # [N, H, A]
      returns, nonfinite = _evaluate(objective, eval_key, samples)  # [N], []
      weights = jax.nn.softmax(returns / temperature)              # [N] (max subtracted inside)
      mean = jnp.einsum("n,nha->ha", weights, samples)
      out = {
        "planner/return": jnp.max(returns),
        "planner/weighted_return": jnp.sum(weights * jnp.where(weights > 0, returns, 0.0)),
        "planner/ess": 1.0 / jnp.sum(jnp.square(weights)),
        "planner/nonfinite_returns": nonfinite,
      }
      return mean, out

    mean, outs = jax.lax.scan(iteration, state.mean, (sample_keys, eval_keys))
    new_state = state._replace(mean=_shift(mean, low, high))
    info = {name: value[-1] for name, value in outs.items()}
    info["planner/nonfinite_returns"] = jnp.sum(outs["planner/nonfinite_returns"])
    return new_state, mean[0], info

  return Planner(init=init, plan=plan)
