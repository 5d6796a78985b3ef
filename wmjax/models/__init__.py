"""World models: the PETS probabilistic ensemble and particle propagation; Dreamer's RSSM;
MuZero's representation, dynamics and prediction networks."""

from wmjax.models.ensemble import (
    Ensemble,
    EnsembleConfig,
    EnsembleState,
    Normalizer,
    make_ensemble,
)
from wmjax.models.muzero import MuZeroFns, MuZeroNetConfig, make_muzero_net
from wmjax.models.propagation import PROPAGATIONS, make_objective, rollout
from wmjax.models.rssm import RSSMState, WorldModelConfig, WorldModelFns, make_world_model

__all__ = [
    "PROPAGATIONS",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleState",
    "Normalizer",
    "make_ensemble",
    "make_objective",
    "rollout",
    "RSSMState",
    "WorldModelConfig",
    "WorldModelFns",
    "make_world_model",
    "MuZeroFns",
    "MuZeroNetConfig",
    "make_muzero_net",
]
