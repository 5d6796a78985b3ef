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

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = get_activation(self.activation)
    for i, size in enumerate(self.hidden_sizes):
      x = act(nn.Dense(size, name=f"hidden_{i}")(x))
    return nn.Dense(self.output_size, name="output")(x)
