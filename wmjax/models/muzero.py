"""MuZero's networks (Schrittwieser et al. 2020): representation h, dynamics g, prediction f.

- ``represent(obs) -> s``: the observation to a latent state.
- ``dynamics(s, a) -> (s', reward_logits)``: one step of the learned model.
- ``predict(s) -> (policy_logits, value_logits)``.

Two variants, chosen by :class:`MuZeroNetConfig.kind`:

- ``mlp``: flattened observation, dense layers (with layer norm), a latent vector.
- ``resnet``: MuZero's board-game network, scaled down: a conv stem and residual blocks over the
  ``[H, W, C]`` board; the action enters the dynamics as ``A`` constant planes (one-hot); the
  latent is a ``[H, W, channels]`` stack of planes.

Latents are min-max scaled to ``[0, 1]`` per example after every ``represent`` and ``dynamics``,
as the paper does. Value and reward are categorical distributions over the integer support
``-S..S`` of the transformed scalar ``h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x`` (Pohlen et
al. 2018; MuZero Appendix F), encoded two-hot; :func:`support_to_scalar` inverts it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wmjax.nets import heads
from wmjax.nets.mlp import MLP
from wmjax.types import Array

__all__ = ["MuZeroNetConfig", "MuZeroNet", "MuZeroFns", "make_muzero_net", "value_transform",
           "inverse_value_transform", "scalar_to_support", "support_to_scalar", "scale_hidden",
           "scale_gradient"]

EPS = 1e-3   # the paper's epsilon in h(x)


@dataclasses.dataclass(frozen=True)
class MuZeroNetConfig:
  kind: str = "mlp"             # "mlp" or "resnet"
  # mlp
  latent: int = 64              # latent vector size
  hidden: int = 128             # units of every hidden dense layer
  layers: int = 2               # hidden layers of each of h, g, f
  # resnet
  channels: int = 32            # planes of the latent and of every residual block
  blocks: int = 2               # residual blocks in each of h, g, f
  head_channels: int = 4        # 1x1-conv planes before the dense policy/value/reward heads
  # both
  value_support: int = 10       # S: value logits over -S..S in h-space
  reward_support: int = 5       # S: reward logits over -S..S in h-space

  def __post_init__(self):
    if self.kind not in ("mlp", "resnet"):
      raise ValueError(f"MuZero network kind must be 'mlp' or 'resnet', got {self.kind!r}")
    for name in ("latent", "hidden", "layers", "channels", "blocks", "head_channels",
                 "value_support", "reward_support"):
      if getattr(self, name) < 1:
        raise ValueError(f"MuZeroNetConfig.{name} must be >= 1, got {getattr(self, name)}")


def value_transform(x: Array) -> Array:
  """h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x."""
  return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + EPS * x


def inverse_value_transform(y: Array) -> Array:
  """h^-1(y), in closed form (MuZero Appendix F / Pohlen et al. 2018, Prop. A.2)."""
  root = (jnp.sqrt(1.0 + 4.0 * EPS * (jnp.abs(y) + 1.0 + EPS)) - 1.0) / (2.0 * EPS)
  return jnp.sign(y) * (jnp.square(root) - 1.0)


def _support(size: int) -> Array:
  return jnp.arange(-size, size + 1, dtype=jnp.float32)


def scalar_to_support(x: Array, size: int) -> Array:
  """``x [...]`` -> two-hot ``[..., 2S+1]`` over ``-S..S`` of ``h(x)`` (clipped to the support)."""
  return heads.twohot_encode(value_transform(x), _support(size))


def support_to_scalar(logits: Array, size: int) -> Array:
  """``logits [..., 2S+1]`` -> ``h^-1(E[support])`` ``[...]``."""
  mean = jnp.sum(jax.nn.softmax(logits, axis=-1) * _support(size), axis=-1)
  return inverse_value_transform(mean)


def scale_hidden(s: Array, batch_dims: int) -> Array:
  """Min-max scales each example's latent (all axes after ``batch_dims``) to ``[0, 1]``."""
  axes = tuple(range(batch_dims, s.ndim))
  lo = jnp.min(s, axis=axes, keepdims=True)
  hi = jnp.max(s, axis=axes, keepdims=True)
  return (s - lo) / jnp.maximum(hi - lo, 1e-5)


def scale_gradient(x: Array, scale: float) -> Array:
  """Identity forward; the gradient is multiplied by ``scale`` (MuZero's 1/2 per dynamics step)."""
  return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


class _ResBlock(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, x):
    y = nn.Conv(self.channels, (3, 3), use_bias=False)(x)
    y = nn.relu(nn.LayerNorm()(y))
    y = nn.Conv(self.channels, (3, 3), use_bias=False)(y)
    y = nn.LayerNorm()(y)
    return nn.relu(x + y)


class _ConvTrunk(nn.Module):
  """3x3 conv stem to ``channels`` planes, then ``blocks`` residual blocks."""
  channels: int
  blocks: int

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.channels, (3, 3), use_bias=False)(x)
    x = nn.relu(nn.LayerNorm()(x))
    for _ in range(self.blocks):
      x = _ResBlock(self.channels)(x)
    return x


class _ConvHead(nn.Module):
  """1x1 conv to a few planes, flatten, dense hidden layer, dense output."""
  head_channels: int
  hidden: int
  output: int
  zero_output: bool = False

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(self.head_channels, (1, 1))(x))
    x = x.reshape(*x.shape[:-3], -1)
    return MLP((self.hidden,), self.output, activation="relu", zero_output=self.zero_output)(x)


class MuZeroNet(nn.Module):
  """The three MuZero functions as methods of one module (one parameter tree).

  Shapes: ``obs [..., *obs_shape]``; latent ``[..., latent]`` (mlp) or ``[..., H, W, channels]``
  (resnet); ``action [...]`` int; logits ``[..., A]``, ``[..., 2S+1]``.
  """

  config: MuZeroNetConfig
  obs_shape: tuple[int, ...]
  num_actions: int

  def setup(self):
    c = self.config
    value_bins = 2 * c.value_support + 1
    reward_bins = 2 * c.reward_support + 1
    if c.kind == "mlp":
      hidden = (c.hidden,) * c.layers
      self.repr_net = MLP(hidden, c.latent, activation="relu", layer_norm=True)
      self.dyn_net = MLP(hidden, c.latent, activation="relu", layer_norm=True)
      self.reward_net = MLP((c.hidden,), reward_bins, activation="relu", layer_norm=True,
                            zero_output=True)
      self.policy_net = MLP(hidden, self.num_actions, activation="relu", layer_norm=True)
      self.value_net = MLP(hidden, value_bins, activation="relu", layer_norm=True,
                           zero_output=True)
    else:
      self.repr_net = _ConvTrunk(c.channels, c.blocks)
      self.dyn_net = _ConvTrunk(c.channels, c.blocks)
      self.pred_net = _ConvTrunk(c.channels, max(c.blocks // 2, 1))
      self.reward_net = _ConvHead(c.head_channels, c.hidden, reward_bins, zero_output=True)
      self.policy_net = _ConvHead(2 * c.head_channels, c.hidden, self.num_actions)
      self.value_net = _ConvHead(c.head_channels, c.hidden, value_bins, zero_output=True)

  def _board(self, obs):
    """Observation -> ``[..., H, W, C]`` float planes for the conv trunk."""
    obs = obs.astype(jnp.float32)
    if len(self.obs_shape) == 3:
      return obs
    if len(self.obs_shape) == 2:
      return obs[..., None]
    raise ValueError(
        f"the resnet MuZero network needs [H, W] or [H, W, C] observations, got "
        f"{self.obs_shape}; use kind='mlp' for vector observations")

  def represent(self, obs: Array) -> Array:
    n = len(self.obs_shape)
    batch = obs.shape[:obs.ndim - n]
    if self.config.kind == "mlp":
      s = self.repr_net(obs.astype(jnp.float32).reshape(*batch, -1))
      return scale_hidden(s, len(batch))
    return scale_hidden(self.repr_net(self._board(obs)), len(batch))

  def dynamics(self, latent: Array, action: Array) -> tuple[Array, Array]:
    onehot = jax.nn.one_hot(action, self.num_actions, dtype=latent.dtype)
    if self.config.kind == "mlp":
      nxt = self.dyn_net(jnp.concatenate([latent, onehot], -1))
      batch = action.ndim
      return scale_hidden(nxt, batch), self.reward_net(nxt)
    planes = jnp.broadcast_to(onehot[..., None, None, :],
                              (*latent.shape[:-1], self.num_actions))
    nxt = self.dyn_net(jnp.concatenate([latent, planes], -1))
    return scale_hidden(nxt, action.ndim), self.reward_net(nxt)

  def predict(self, latent: Array) -> tuple[Array, Array]:
    if self.config.kind == "mlp":
      return self.policy_net(latent), self.value_net(latent)
    x = self.pred_net(latent)
    return self.policy_net(x), self.value_net(x)

  def __call__(self, obs: Array, action: Array):
    """Touches every sub-network (for ``init``): one representation, dynamics and prediction."""
    s = self.represent(obs)
    s1, r = self.dynamics(s, action)
    return self.predict(s1), r


class MuZeroFns(NamedTuple):
  """Pure functions over the parameters (each takes ``params`` first)."""
  init: object        # (key) -> params
  represent: object   # (params, obs [..., *obs_shape]) -> latent
  dynamics: object    # (params, latent, action [...]) -> (latent, reward_logits)
  predict: object     # (params, latent) -> (policy_logits, value_logits)
  config: MuZeroNetConfig


def make_muzero_net(config: MuZeroNetConfig, obs_shape: tuple[int, ...],
                    num_actions: int) -> MuZeroFns:
  if config.kind == "resnet" and len(obs_shape) not in (2, 3):
    raise ValueError(
        f"the resnet MuZero network needs [H, W] or [H, W, C] observations, got {obs_shape}; "
        "use kind='mlp' for vector observations")
  net = MuZeroNet(config, tuple(obs_shape), int(num_actions))

  def init(key):
    obs = jnp.zeros((1, *obs_shape), jnp.float32)
    return net.init(key, obs, jnp.zeros((1,), jnp.int32))

  def represent(params, obs):
    return net.apply(params, obs, method=MuZeroNet.represent)

  def dynamics(params, latent, action):
    return net.apply(params, latent, action, method=MuZeroNet.dynamics)

  def predict(params, latent):
    return net.apply(params, latent, method=MuZeroNet.predict)

  return MuZeroFns(init, represent, dynamics, predict, config)


def param_count(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
