"""World models: the PETS probabilistic ensemble and particle propagation."""

from wmjax.models.ensemble import (
    Ensemble,
    EnsembleConfig,
    EnsembleState,
    Normalizer,
    make_ensemble,
)
from wmjax.models.propagation import PROPAGATIONS, make_objective, rollout

__all__ = [
    "PROPAGATIONS",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleState",
    "Normalizer",
    "make_ensemble",
    "make_objective",
    "rollout",
]
