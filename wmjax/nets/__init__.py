"""Neural network building blocks."""

from wmjax.nets.mlp import MLP, get_activation

__all__ = ["MLP", "get_activation"]
