"""Image encoder and decoder (flax.linen, channels-last), as in DreamerV3.

The encoder halves the resolution with stride-2 convolutions (doubling channels) until it
reaches ``min_resolution``; the decoder mirrors it with transposed convolutions. Both take any
number of leading batch axes.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from wmjax.nets.mlp import get_activation

__all__ = ["ConvEncoder", "ConvDecoder", "num_stages"]


def num_stages(shape: tuple[int, ...], min_resolution: int, what: str = "image") -> int:
  """Stride-2 stages ``n`` that take ``min(H, W)`` of ``shape = (H, W, C)`` to ``min_resolution``.

  Raises ``ValueError`` unless ``min(H, W) == min_resolution * 2**n`` with ``n >= 1`` and both
  ``H`` and ``W`` are divisible by ``2**n``.
  """
  height, width = shape[0], shape[1]
  small = min(height, width)
  n = round(math.log2(small / min_resolution)) if small >= min_resolution > 0 else 0
  if n < 1 or min_resolution * 2**n != small or height % 2**n or width % 2**n:
    examples = ", ".join(str(min_resolution * 2**k) for k in (2, 3, 4))
    raise ValueError(
        f"{what} of shape {tuple(shape)}: height and width must be min_resolution "
        f"({min_resolution}) times a power of two (2, 4, 8, ...), e.g. {examples}, and the "
        f"larger side divisible by the same power of two."
    )
  return n


class ConvEncoder(nn.Module):
  """Images ``[..., H, W, C]`` (floats in ``[0, 1]``) -> features ``[..., F]``.

  ``n = log2(min(H, W) / min_resolution)`` stride-2 'SAME' convolutions with ``depth * 2**i``
  channels (``i = 0 .. n-1``), each followed by a LayerNorm over channels (if ``layer_norm``)
  and the activation; ``F = (H / 2**n) * (W / 2**n) * depth * 2**(n-1)``.
  """

  depth: int = 16
  kernel: int = 4
  min_resolution: int = 4
  activation: str = "silu"
  layer_norm: bool = True

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim < 3:
      raise ValueError(f"ConvEncoder takes images [..., H, W, C], got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(
          f"ConvEncoder takes float images in [0, 1], got dtype {images.dtype}; "
          "convert (e.g. uint8 / 255) first.")
    height, width, channels = images.shape[-3:]
    n = num_stages(images.shape[-3:], self.min_resolution)
    act = get_activation(self.activation)
    lead = images.shape[:-3]
    x = images.reshape((-1, height, width, channels)) - 0.5
    for i in range(n):
      x = nn.Conv(self.depth * 2**i, (self.kernel, self.kernel), strides=(2, 2), padding="SAME",
                  use_bias=not self.layer_norm, name=f"conv_{i}")(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f"norm_{i}")(x)
      x = act(x)
    return x.reshape((*lead, -1))


class ConvDecoder(nn.Module):
  """Features ``[..., F]`` -> images ``[..., H, W, C]`` for ``out_shape = (H, W, C)``.

  A Dense layer to ``(H / 2**n, W / 2**n, depth * 2**(n-1))`` (``min_resolution`` squared for
  square images), then ``n`` stride-2 transposed convolutions halving channels and doubling
  resolution; the last outputs ``C`` channels with no norm or activation. Adds 0.5, so it
  predicts images on the ``[0, 1]`` scale (the caller's loss is MSE; output is not clipped).
  """

  out_shape: tuple[int, int, int]
  depth: int = 16
  kernel: int = 4
  min_resolution: int = 4
  activation: str = "silu"
  layer_norm: bool = True

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if len(self.out_shape) != 3:
      raise ValueError(f"ConvDecoder out_shape must be (H, W, C), got {self.out_shape}")
    height, width, channels = self.out_shape
    n = num_stages(self.out_shape, self.min_resolution, what="ConvDecoder out_shape")
    act = get_activation(self.activation)
    lead = features.shape[:-1]
    h, w = height // 2**n, width // 2**n
    x = nn.Dense(h * w * self.depth * 2 ** (n - 1), name="project")(
        features.reshape((-1, features.shape[-1])))
    x = x.reshape((-1, h, w, self.depth * 2 ** (n - 1)))
    for i in range(n - 1):
      x = nn.ConvTranspose(self.depth * 2 ** (n - 2 - i), (self.kernel, self.kernel),
                           strides=(2, 2), padding="SAME", use_bias=not self.layer_norm,
                           name=f"deconv_{i}")(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f"norm_{i}")(x)
      x = act(x)
    x = nn.ConvTranspose(channels, (self.kernel, self.kernel), strides=(2, 2), padding="SAME",
                         name=f"deconv_{n - 1}")(x)
    return x.reshape((*lead, height, width, channels)) + 0.5
