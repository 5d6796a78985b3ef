"""Shared types: environment spec, transitions, planner and objective protocols.

Shapes are written in comments: ``N`` candidate action sequences, ``H`` planning horizon,
``A`` action size, ``O`` observation size, ``E`` ensemble members, ``P`` particles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

Array = jax.Array
Key = jax.Array
PyTree = Any
Metrics = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class Spec:
  """What an environment takes and gives.

  Continuous actions are always normalised to ``[-1, 1]`` by the registry's wrappers, so
  ``action_low``/``action_high`` are ``-1``/``1`` for every registered continuous env; the
  bounds are kept so planners never hard-code them.
  """

  obs_shape: tuple[int, ...]
  action_shape: tuple[int, ...]          # (A,) for continuous, () for discrete
  num_actions: int | None = None         # discrete: number of actions; None: continuous
  action_low: float = -1.0
  action_high: float = 1.0

  @property
  def discrete(self) -> bool:
    return self.num_actions is not None

  @property
  def obs_size(self) -> int:
    size = 1
    for d in self.obs_shape:
      size *= d
    return size

  @property
  def action_size(self) -> int:
    """Continuous: the action dimension. Discrete: the number of actions."""
    if self.num_actions is not None:
      return self.num_actions
    return self.action_shape[0]

  def describe(self) -> str:
    obs = "x".join(str(d) for d in self.obs_shape)
    if self.discrete:
      act = f"discrete({self.num_actions})"
    else:
      act = f"box({self.action_shape[0]}, [{self.action_low:g}, {self.action_high:g}])"
    return f"obs {obs:>8}  action {act}"


class Transition(NamedTuple):
  """One environment step, or a batch of them with leading axes."""

  obs: Array          # [..., O]
  action: Array       # [..., A]
  reward: Array       # [...]
  next_obs: Array     # [..., O]
  terminated: Array   # [...] true terminal state: no bootstrapping past it (not a time limit)


# Action sequences [N, H, A] -> predicted returns [N]; the key is consumed.
ObjectiveFn = Callable[[Key, Array], Array]

PlannerState = Any
PlanInfo = dict[str, Array]


class Planner(NamedTuple):
  """A trajectory optimiser over an objective; it never sees a model (as mbrl-lib).

  ``init(spec)`` gives the state (e.g. the warm-start mean, ``[H, A]``).
  ``plan(state, key, objective)`` returns the next state (shifted by one step for warm
  starts), the action to take now ``[A]``, and diagnostics.
  """

  init: Callable[[Spec], PlannerState]
  plan: Callable[[PlannerState, Key, ObjectiveFn], tuple[PlannerState, Array, PlanInfo]]
