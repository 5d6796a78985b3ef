"""Cross-entropy method (PETS, as mbrl-lib) and its iCEM variant (coloured noise, kept elites).

Shapes: ``N`` population, ``H`` horizon, ``A`` action size, ``E`` elites, ``K`` kept elites.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from wmjax.planners.noise import colored_noise
from wmjax.planners.random_shooting import (
  ShootingState,
  _check_sizes,
  _evaluate,
  _init_state,
  _shift,
)
from wmjax.types import Key, ObjectiveFn, Planner, Spec


def _is_static_zero(value) -> bool:
  return isinstance(value, int | float) and value == 0


def make_cem(
  horizon: int,
  population: int,
  iterations: int = 5,
  elite_fraction: float = 0.1,
  alpha: float = 0.1,
  init_std: float | None = None,
  min_std: float = 1e-3,
  noise_beta: float = 0.0,
  keep_elites: float = 0.0,
  return_mean_elites: bool = True,
) -> Planner:
  """CEM over action sequences, warm-started from the previous step's shifted plan.

  Each iteration samples ``population`` sequences around the mean, keeps the best
  ``E = ceil(elite_fraction * population)`` and blends: ``mean <- alpha * mean + (1 - alpha) *
  mean(elites)``, likewise the variance. The std restarts at ``init_std`` every step (as mbrl-lib).

  Sampling: with ``noise_beta == 0`` (a Python number) as mbrl-lib: Gaussian noise truncated at
  2 std, the variance clipped to ``(distance to the nearer bound / 2)^2`` so samples stay inside.
  Otherwise as iCEM: coloured noise ``1/f^noise_beta`` over the horizon, samples clipped to the
  bounds (no variance clipping, so mass can sit on a bound). ``noise_beta`` may then be traced.

  Args:
    horizon, population, iterations: static sizes.
    elite_fraction: fraction of the population kept as elites (static).
    alpha: weight of the old mean/variance in the update; may be traced.
    init_std: the std each step starts from; ``None`` gives ``(high - low) / 4``; may be traced.
    min_std: floor on the sampling std (samples are clipped to the bounds); may be traced.
    noise_beta: coloured-noise exponent; 0 is white noise.
    keep_elites: fraction of each iteration's elites carried into the next iteration's
      population (iCEM), re-evaluated there; ``K = floor(keep_elites * E)`` (static).
    return_mean_elites: return the final mean (True) or the best sequence evaluated (False).

  Returns:
    ``Planner`` with ``ShootingState`` state. ``info``: ``planner/return`` (best elite's return in
    the last iteration), ``planner/best_return`` (best seen over iterations), ``planner/std`` (mean
    sampling std of the last iteration), ``planner/nonfinite_returns`` (how many returns, over
    all iterations, were NaN or infinite).
  """
  _check_sizes(horizon=horizon, population=population, iterations=iterations)
  num_elites = math.ceil(elite_fraction * population) if elite_fraction > 0 else 0
  if not 1 <= num_elites <= population:
    raise ValueError(
      f"elite_fraction={elite_fraction!r} gives {num_elites} elites of a population of "
      f"{population}; it must give between 1 and the population (0 < elite_fraction <= 1)"
    )
  if not 0.0 <= keep_elites <= 1.0:
    raise ValueError(f"keep_elites must be a fraction in [0, 1]; got {keep_elites!r}")
  num_kept = min(math.floor(keep_elites * num_elites), population - 1)
  white = _is_static_zero(noise_beta)

  def init(spec: Spec) -> ShootingState:
    return _init_state(spec, horizon, "cem")

  def plan(state: ShootingState, key: Key, objective: ObjectiveFn):
    sample_keys, eval_keys = jax.random.split(key, (2, iterations))
    low, high = state.low, state.high                             # [A]
    size = state.mean.shape[-1]
    shape = (population, horizon, size)
    if init_std is None:
      std0 = (high - low) / 4.0
    else:
      std0 = jnp.asarray(init_std, jnp.float32)
    var0 = jnp.broadcast_to(jnp.square(std0), (horizon, size))    # [H, A]

    def iteration(carry, xs):
      mean, var, kept, best_return, best_plan = carry
      sample_key, eval_key, step = xs
      if white:
        # As mbrl-lib: 2 std never reach past a bound.
        bound_var = jnp.square(jnp.minimum(mean - low, high - mean) / 2.0)
        std = jnp.maximum(jnp.sqrt(jnp.minimum(var, bound_var)), min_std)   # [H, A]
        noise = jax.random.truncated_normal(sample_key, -2.0, 2.0, shape)
      else:
        std = jnp.maximum(jnp.sqrt(var), min_std)
        noise = colored_noise(sample_key, noise_beta, shape)
      samples = jnp.clip(mean + std * noise, low, high)          # [N, H, A]
      if num_kept:
        tail = jnp.where(step > 0, kept, samples[population - num_kept:])
        samples = samples.at[population - num_kept:].set(tail)
      returns, nonfinite = _evaluate(objective, eval_key, samples)   # [N], []
      elite_returns, elite_idx = jax.lax.top_k(returns, num_elites)   # [E]
      elites = samples[elite_idx]                                 # [E, H, A]
      mean = alpha * mean + (1.0 - alpha) * jnp.mean(elites, axis=0)
      var = alpha * var + (1.0 - alpha) * jnp.var(elites, axis=0)
      improved = elite_returns[0] > best_return
      best_return = jnp.where(improved, elite_returns[0], best_return)
      best_plan = jnp.where(improved, elites[0], best_plan)
      kept = elites[:num_kept]
      out = {"planner/return": elite_returns[0], "planner/std": jnp.mean(std),
             "planner/nonfinite_returns": nonfinite}
      return (mean, var, kept, best_return, best_plan), out

    carry = (
      state.mean,
      var0,
      jnp.zeros((num_kept, horizon, size), jnp.float32),
      jnp.array(-jnp.inf, jnp.float32),
      state.mean,
    )
    xs = (sample_keys, eval_keys, jnp.arange(iterations))
    (mean, _, _, best_return, best_plan), outs = jax.lax.scan(iteration, carry, xs)
    chosen = mean if return_mean_elites else best_plan            # [H, A]
    new_state = state._replace(mean=_shift(chosen, low, high))
    info = {
      "planner/return": outs["planner/return"][-1],
      "planner/best_return": best_return,
      "planner/std": outs["planner/std"][-1],
      "planner/nonfinite_returns": jnp.sum(outs["planner/nonfinite_returns"]),
    }
    return new_state, chosen[0], info

  return Planner(init=init, plan=plan)
