"""Neural network building blocks: MLP, CNN encoder/decoder, two-hot and latent heads."""

from wmjax.nets.cnn import ConvDecoder, ConvEncoder
from wmjax.nets.mlp import MLP, get_activation

__all__ = ["MLP", "get_activation", "ConvEncoder", "ConvDecoder"]
