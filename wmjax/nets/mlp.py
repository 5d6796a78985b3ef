"""Multi-layer perceptron (flax.linen) and activation lookup."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": nn.silu,
    "swish": nn.silu,
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Returns the activation function called ``name``."""
  try:
    return _ACTIVATIONS[name]
  except KeyError:
    raise ValueError(
        f"Unknown activation {name!r}; accepted: {sorted(_ACTIVATIONS)}"
    ) from None


class MLP(nn.Module):
  """Dense layers with an activation between them; the output layer is linear.

  Works on any leading batch axes: ``x [..., in] -> [..., output_size]``.
  """

  hidden_sizes: Sequence[int]
  output_size: int
  activation: str = "silu"
  layer_norm: bool = False      # Dense -> LayerNorm -> activation (DreamerV3's blocks)
  zero_output: bool = False     # output layer starts at zero (DreamerV3's reward and critic heads)
  output_scale: float = 1.0     # variance scale of the output layer's init (DreamerV3's outscale)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = get_activation(self.activation)
    for i, size in enumerate(self.hidden_sizes):
      x = nn.Dense(size, name=f"hidden_{i}", use_bias=not self.layer_norm)(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f"norm_{i}")(x)
      x = act(x)
    init = (nn.initializers.zeros if self.zero_output else
            nn.initializers.variance_scaling(self.output_scale, "fan_in", "truncated_normal"))
    return nn.Dense(self.output_size, name="output", kernel_init=init)(x)
