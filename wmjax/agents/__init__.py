"""Agents: each a static Config, a Hyper pytree of arrays and ``make_*`` giving pure functions;
the training driver sees each through one contract (:mod:`wmjax.agents.base`). Tuned settings
per env are in :mod:`wmjax.presets`."""

from wmjax.agents.base import Phase, Policy, Program
from wmjax.agents.dreamer import (
    Dreamer,
    DreamerConfig,
    DreamerHyper,
    DreamerState,
    make_dreamer,
)
from wmjax.agents.dyna import Dyna, DynaConfig, DynaState, make_dyna
from wmjax.agents.muzero import MuZero, MuZeroConfig, MuZeroHyper, MuZeroState, make_muzero
from wmjax.agents.pets import PETS, PETSConfig, PETSHyper, PETSState, make_pets
from wmjax.agents.worldmodels import (
    WorldModels,
    WorldModelsConfig,
    WorldModelsHyper,
    WorldModelsState,
    make_worldmodels,
)

__all__ = ["Program", "Phase", "Policy",
           "PETS", "PETSConfig", "PETSHyper", "PETSState", "make_pets",
           "Dreamer", "DreamerConfig", "DreamerHyper", "DreamerState", "make_dreamer",
           "MuZero", "MuZeroConfig", "MuZeroHyper", "MuZeroState", "make_muzero",
           "WorldModels", "WorldModelsConfig", "WorldModelsHyper", "WorldModelsState",
           "make_worldmodels",
           "Dyna", "DynaConfig", "DynaState", "make_dyna"]
