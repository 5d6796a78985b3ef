"""World models: the PETS probabilistic ensemble and particle propagation; Dreamer's RSSM;
MuZero's representation, dynamics and prediction networks; World Models' VAE and MDN-RNN."""

from wmjax.models.ensemble import (
    Ensemble,
    EnsembleConfig,
    EnsembleState,
    Normalizer,
    make_ensemble,
)
from wmjax.models.mdnrnn import MDNOutput, MDNRNNConfig, MDNRNNFns, make_mdnrnn
from wmjax.models.muzero import MuZeroFns, MuZeroNetConfig, make_muzero_net
from wmjax.models.propagation import PROPAGATIONS, make_objective, rollout
from wmjax.models.rssm import RSSMState, WorldModelConfig, WorldModelFns, make_world_model
from wmjax.models.vae import VAEConfig, VAEFns, make_vae

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
    "VAEConfig",
    "VAEFns",
    "make_vae",
    "MDNOutput",
    "MDNRNNConfig",
    "MDNRNNFns",
    "make_mdnrnn",
]
