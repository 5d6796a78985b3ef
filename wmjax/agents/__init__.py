"""Agents: each a static Config, a Hyper pytree of arrays and ``make_*`` giving pure functions."""

from wmjax.agents.dreamer import (
    Dreamer,
    DreamerConfig,
    DreamerHyper,
    DreamerState,
    make_dreamer,
)
from wmjax.agents.dyna import Dyna, DynaConfig, DynaState, make_dyna
from wmjax.agents.muzero import MuZero, MuZeroConfig, MuZeroHyper, MuZeroState, make_muzero
from wmjax.agents.pets import PETS, PETSConfig, PETSHyper, PETSState, default_config, make_pets
from wmjax.agents.worldmodels import (
    WorldModels,
    WorldModelsConfig,
    WorldModelsHyper,
    WorldModelsState,
    make_worldmodels,
)

__all__ = ["PETS", "PETSConfig", "PETSHyper", "PETSState", "default_config", "make_pets",
           "Dreamer", "DreamerConfig", "DreamerHyper", "DreamerState", "make_dreamer",
           "MuZero", "MuZeroConfig", "MuZeroHyper", "MuZeroState", "make_muzero",
           "WorldModels", "WorldModelsConfig", "WorldModelsHyper", "WorldModelsState",
           "make_worldmodels",
           "Dyna", "DynaConfig", "DynaState", "make_dyna"]
