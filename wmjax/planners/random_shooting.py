"""Random shooting, and the pieces every shooting planner shares (state, bounds, evaluation).

Shapes: ``N`` candidate sequences (population), ``H`` horizon, ``A`` action size.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Key, ObjectiveFn, Planner, Spec


class ShootingState(NamedTuple):
  """Warm start of a shooting planner; ``plan`` returns it shifted by one step.

  The bounds ride along because ``plan`` never sees the ``Spec``.
  """

  mean: Array   # [H, A] sequence to search around (random shooting: last best, unused)
  low: Array    # [A] action lower bound
  high: Array   # [A] action upper bound


def _check_sizes(**sizes: int) -> None:
  for name, value in sizes.items():
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be an int >= 1 (it sets a shape); got {value!r}")


def _init_state(spec: Spec, horizon: int, planner: str) -> ShootingState:
  """The state at episode start: the bounds' midpoint at every step."""
  if spec.discrete:
    raise ValueError(
      f"{planner} plans over continuous actions only; got a discrete spec with "
      f"{spec.num_actions} actions (use MCTS for discrete actions)"
    )
  if len(spec.action_shape) != 1:
    raise ValueError(f"{planner} needs a flat action shape (A,); got {spec.action_shape}")
  size = spec.action_shape[0]
  low = jnp.full((size,), spec.action_low, jnp.float32)
  high = jnp.full((size,), spec.action_high, jnp.float32)
  mean = jnp.broadcast_to((low + high) / 2.0, (horizon, size))
  return ShootingState(mean=mean, low=low, high=high)


def _shift(plan: Array, low: Array, high: Array) -> Array:
  """Drops the step just taken and fills the new last step with the bounds' midpoint."""
  return jnp.concatenate([plan[1:], ((low + high) / 2.0)[None]], axis=0)   # [H, A]


def _evaluate(objective: ObjectiveFn, key: Key, actions: Array) -> tuple[Array, Array]:
  """Calls the objective and checks it gives ``[N]`` returns.

  Returns ``(returns [N], nonfinite [])``: the returns with NaN mapped to ``-inf`` (so sorting
  and ``argmax`` never pick one) and the number of returns that were not finite. The count is
  reported in every planner's info as ``planner/nonfinite_returns``: a model that gives NaN
  must stop a run, not be planned around in silence.
  """
  returns = objective(key, actions)
  num = actions.shape[0]
  if not hasattr(returns, "shape") or tuple(returns.shape) != (num,):
    got = tuple(returns.shape) if hasattr(returns, "shape") else type(returns).__name__
    raise ValueError(
      f"objective must map action sequences {tuple(actions.shape)} [N, H, A] to returns of "
      f"shape [N] = ({num},); it returned {got}"
    )
  returns = returns.astype(jnp.float32)
  nonfinite = jnp.sum(~jnp.isfinite(returns)).astype(jnp.int32)
  return jnp.where(jnp.isnan(returns), -jnp.inf, returns), nonfinite


def make_random_shooting(horizon: int, population: int) -> Planner:
  """Samples ``population`` uniform sequences in the bounds and takes the best one's first action.

  The state's ``mean`` holds the best sequence, shifted; sampling ignores it.
  """
  _check_sizes(horizon=horizon, population=population)

  def init(spec: Spec) -> ShootingState:
    return _init_state(spec, horizon, "random_shooting")

  def plan(state: ShootingState, key: Key, objective: ObjectiveFn):
    sample_key, eval_key = jax.random.split(key)
    size = state.mean.shape[-1]
    actions = jax.random.uniform(
      sample_key, (population, horizon, size), minval=state.low, maxval=state.high
    )                                                       # [N, H, A]
    returns, nonfinite = _evaluate(objective, eval_key, actions)   # [N], []
    best = jnp.argmax(returns)
    best_plan = actions[best]                               # [H, A]
    new_state = state._replace(mean=_shift(best_plan, state.low, state.high))
    info = {"planner/return": returns[best], "planner/nonfinite_returns": nonfinite}
    return new_state, best_plan[0], info

  return Planner(init=init, plan=plan)
