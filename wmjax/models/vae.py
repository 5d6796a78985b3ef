"""World Models' V: a convolutional VAE on image observations (Ha & Schmidhuber 2018).

The encoder and decoder are Dreamer's :class:`~wmjax.nets.cnn.ConvEncoder` and
:class:`~wmjax.nets.cnn.ConvDecoder`; a Dense layer maps the encoder's features to the mean and
log standard deviation of a diagonal Gaussian latent ``z [Z]`` (reparameterisation trick). The loss
is the paper's: summed squared reconstruction error per image plus the KL to ``N(0, I)``, the KL
floored at ``kl_tolerance * Z`` nats (the paper's code: ``max(KL, 0.5 * Z)``) so that the encoder
is free to use a few nats per dimension before the prior pulls it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from wmjax.nets.cnn import ConvDecoder, ConvEncoder, num_stages
from wmjax.types import Array, Key, Metrics, PyTree

__all__ = ["VAEConfig", "VAEFns", "make_vae", "gaussian_kl"]


@dataclasses.dataclass(frozen=True)
class VAEConfig:
  obs_shape: tuple[int, int, int]   # (H, W, C), images in [0, 1]
  latent_size: int = 32             # Z
  depth: int = 16                   # channels of the first convolution (doubling per stage)
  min_resolution: int = 4
  kl_tolerance: float = 0.5         # free nats per latent dimension (the paper's 0.5)
  kl_weight: float = 1.0

  def __post_init__(self):
    if len(self.obs_shape) != 3:
      raise ValueError(f"VAEConfig.obs_shape must be an image shape (H, W, C), got "
                       f"{self.obs_shape}")
    num_stages(self.obs_shape, self.min_resolution, what="VAE observations")
    if self.latent_size < 1 or self.depth < 1:
      raise ValueError(f"latent_size and depth must be >= 1, got {self.latent_size}, "
                       f"{self.depth}")
    if self.kl_tolerance < 0 or self.kl_weight < 0:
      raise ValueError("kl_tolerance and kl_weight must be >= 0")


class VAEFns(NamedTuple):
  """Pure functions of the VAE; images ``[..., H, W, C]`` in ``[0, 1]``, latents ``[..., Z]``."""

  init: Callable[[Key], PyTree]
  encode: Callable[[PyTree, Array], tuple[Array, Array]]     # -> mean, log_std  [..., Z]
  sample: Callable[[PyTree, Key, Array], Array]              # images -> z  [..., Z]
  decode: Callable[[PyTree, Array], Array]                   # z -> images [..., H, W, C]
  loss: Callable[[PyTree, Key, Array], tuple[Array, Metrics]]   # images [B, H, W, C]


class _Encoder(nn.Module):
  config: VAEConfig

  @nn.compact
  def __call__(self, images):
    c = self.config
    features = ConvEncoder(depth=c.depth, min_resolution=c.min_resolution, name="cnn")(images)
    stats = nn.Dense(2 * c.latent_size, name="stats")(features)
    mean, log_std = jnp.split(stats, 2, axis=-1)
    return mean, jnp.clip(log_std, -8.0, 4.0)


class _Decoder(nn.Module):
  config: VAEConfig

  @nn.compact
  def __call__(self, z):
    c = self.config
    return ConvDecoder(tuple(c.obs_shape), depth=c.depth, min_resolution=c.min_resolution,
                       name="cnn")(z)


def gaussian_kl(mean: Array, log_std: Array) -> Array:
  """``KL(N(mean, exp(log_std)^2) || N(0, 1))`` summed over the last axis: ``[..., Z] -> [...]``."""
  return 0.5 * jnp.sum(jnp.exp(2 * log_std) + mean**2 - 1.0 - 2 * log_std, axis=-1)


def make_vae(config: VAEConfig) -> VAEFns:
  encoder, decoder = _Encoder(config), _Decoder(config)
  image = jnp.zeros((1, *config.obs_shape), jnp.float32)

  def init(key):
    key_enc, key_dec = jax.random.split(key)
    return {"encoder": encoder.init(key_enc, image)["params"],
            "decoder": decoder.init(key_dec, jnp.zeros((1, config.latent_size)))["params"]}

  def encode(params, images):
    return encoder.apply({"params": params["encoder"]}, images)

  def sample(params, key, images):
    mean, log_std = encode(params, images)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)

  def decode(params, z):
    return decoder.apply({"params": params["decoder"]}, z)

  def loss(params, key, images):
    if images.ndim != 4:
      raise ValueError(f"VAE loss takes images [B, H, W, C], got shape {images.shape}")
    mean, log_std = encode(params, images)
    z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    recon = decode(params, z)
    recon_loss = jnp.sum((recon - images) ** 2, axis=(1, 2, 3)).mean()
    kl = gaussian_kl(mean, log_std).mean()
    kl_loss = jnp.maximum(kl, config.kl_tolerance * config.latent_size)
    total = recon_loss + config.kl_weight * kl_loss
    return total, {"vae/loss": total, "vae/recon": recon_loss, "vae/kl": kl,
                   "vae/mse": jnp.mean((recon - images) ** 2)}

  return VAEFns(init=init, encode=encode, sample=sample, decode=decode, loss=loss)
