"""Trajectory optimisers over an objective ``(key, actions [N, H, A]) -> returns [N]``.

They never see a model: an agent builds the objective (e.g. PETS: an ensemble rollout) and
calls ``plan(state, key, objective)`` once per environment step.
"""

from __future__ import annotations

from wmjax.planners.categorical import (
  CategoricalState,
  make_categorical_cem,
  make_categorical_shooting,
)
from wmjax.planners.cem import make_cem
from wmjax.planners.mppi import make_mppi
from wmjax.planners.noise import colored_noise
from wmjax.planners.random_shooting import ShootingState, make_random_shooting
from wmjax.types import Planner

__all__ = [
  "CategoricalState",
  "DISCRETE_PLANNERS",
  "PLANNERS",
  "make_categorical_cem",
  "make_categorical_shooting",
  "ShootingState",
  "colored_noise",
  "make_cem",
  "make_icem",
  "make_mppi",
  "make_planner",
  "make_random_shooting",
]


def make_icem(
  horizon: int,
  population: int,
  *,
  noise_beta: float = 2.0,
  keep_elites: float = 0.3,
  **kwargs,
) -> Planner:
  """iCEM (Pinneri et al. 2020): CEM with coloured noise and elites kept between iterations."""
  return make_cem(horizon, population, noise_beta=noise_beta, keep_elites=keep_elites, **kwargs)


PLANNERS = {
  "random_shooting": make_random_shooting,
  "cem": make_cem,
  "icem": make_icem,
  "mppi": make_mppi,
}


# The same names over discrete actions (one-hot into the objective, see categorical.py).
DISCRETE_PLANNERS = {
  "random_shooting": make_categorical_shooting,
  "cem": make_categorical_cem,
}


def make_planner(name: str, *, horizon: int, population: int, discrete: bool = False,
                 **kwargs) -> Planner:
  """Builds a planner by name (``PLANNERS``' keys, or with ``discrete`` those of
  ``DISCRETE_PLANNERS``); ``kwargs`` go to its factory."""
  table = DISCRETE_PLANNERS if discrete else PLANNERS
  if name not in table:
    kind = "discrete" if discrete else "continuous"
    raise ValueError(f"unknown planner {name!r} for {kind} actions; accepted: "
                     f"{', '.join(sorted(table))}")
  return table[name](horizon, population, **kwargs)
