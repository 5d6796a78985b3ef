"""World Models' M: an LSTM with a mixture-density output (MDN-RNN; Ha & Schmidhuber 2018).

At each step the LSTM reads ``[z_t, a_t]`` and its new hidden state ``h_{t+1}`` gives, for every
latent dimension independently (as the paper), a mixture of ``K`` Gaussians over ``z_{t+1}``, plus
a reward ``r_t`` (regressed) and the logit that the episode terminates at ``t + 1``. Sampling
takes a temperature ``tau``: the mixture logits are divided by ``tau`` and the standard
deviations multiplied by ``sqrt(tau)`` (the paper's code), so ``tau -> 0`` gives the mean of the
most likely component and a larger ``tau`` a more uncertain, harder dream.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from wmjax.types import Array, Key, Metrics, PyTree

__all__ = ["MDNRNNConfig", "MDNOutput", "MDNRNNFns", "LSTMCarry", "make_mdnrnn",
           "mdn_log_prob", "mdn_sample"]


@dataclasses.dataclass(frozen=True)
class MDNRNNConfig:
  latent_size: int              # Z
  action_size: int              # A (one-hot size for discrete actions)
  hidden_size: int = 256        # LSTM units H
  num_mixtures: int = 5         # K Gaussians per latent dimension
  reward_scale: float = 1.0     # weight of the reward regression in the loss
  done_scale: float = 1.0       # weight of the termination classifier in the loss

  def __post_init__(self):
    for name in ("latent_size", "action_size", "hidden_size", "num_mixtures"):
      if getattr(self, name) < 1:
        raise ValueError(f"MDNRNNConfig.{name} must be >= 1, got {getattr(self, name)}")


class LSTMCarry(NamedTuple):
  c: Array   # [..., H]
  h: Array   # [..., H] the hidden state the controller sees


class MDNOutput(NamedTuple):
  """The prediction of one step (leading axes ``...``)."""

  logit_pi: Array     # [..., Z, K] mixture logits
  mean: Array         # [..., Z, K]
  log_std: Array      # [..., Z, K]
  reward: Array       # [...]
  done_logit: Array   # [...]


class MDNRNNFns(NamedTuple):
  init: Callable[[Key], PyTree]
  initial_carry: Callable[[tuple[int, ...]], LSTMCarry]
  # (params, carry, z [..., Z], action [..., A]) -> (carry, output)
  step: Callable[[PyTree, LSTMCarry, Array, Array], tuple[LSTMCarry, MDNOutput]]
  # (params, z [T, Z], actions [T, A]) -> outputs [T, ...] from a zero carry
  unroll: Callable[[PyTree, Array, Array], MDNOutput]
  # (params, z [B, T+1, Z], actions [B, T, A], rewards [B, T], dones [B, T]) -> (loss, metrics)
  loss: Callable[[PyTree, Array, Array, Array, Array], tuple[Array, Metrics]]


def mdn_log_prob(logit_pi: Array, mean: Array, log_std: Array, x: Array) -> Array:
  """Log density of ``x [..., Z]`` under per-dimension mixtures ``[..., Z, K]``: ``[..., Z]``."""
  log_weights = jax.nn.log_softmax(logit_pi, axis=-1)
  x = x[..., None]
  log_normal = (-0.5 * ((x - mean) / jnp.exp(log_std)) ** 2 - log_std
                - 0.5 * math.log(2 * math.pi))
  return jax.nn.logsumexp(log_weights + log_normal, axis=-1)


def mdn_sample(key: Key, logit_pi: Array, mean: Array, log_std: Array, tau: float | Array
               ) -> Array:
  """One sample ``[..., Z]`` of per-dimension mixtures ``[..., Z, K]`` at temperature ``tau``."""
  key_pi, key_eps = jax.random.split(key)
  component = jax.random.categorical(key_pi, logit_pi / tau, axis=-1)      # [..., Z]
  take = lambda x: jnp.take_along_axis(x, component[..., None], axis=-1)[..., 0]
  eps = jax.random.normal(key_eps, component.shape)
  return take(mean) + jnp.exp(take(log_std)) * jnp.sqrt(tau) * eps


class _MDNRNN(nn.Module):
  config: MDNRNNConfig

  @nn.compact
  def __call__(self, carry, z, action):
    c = self.config
    lstm = nn.OptimizedLSTMCell(c.hidden_size, name="lstm")
    (cell, hidden), _ = lstm((carry.c, carry.h), jnp.concatenate([z, action], axis=-1))
    zk = (c.latent_size, c.num_mixtures)
    mdn = nn.Dense(3 * c.latent_size * c.num_mixtures, name="mdn")(hidden)
    mdn = mdn.reshape((*hidden.shape[:-1], 3, *zk))
    reward = nn.Dense(1, name="reward")(hidden)[..., 0]
    done = nn.Dense(1, name="done")(hidden)[..., 0]
    output = MDNOutput(logit_pi=mdn[..., 0, :, :], mean=mdn[..., 1, :, :],
                       log_std=jnp.clip(mdn[..., 2, :, :], -7.0, 3.0), reward=reward,
                       done_logit=done)
    return LSTMCarry(cell, hidden), output


def make_mdnrnn(config: MDNRNNConfig) -> MDNRNNFns:
  module = _MDNRNN(config)

  def initial_carry(batch_shape=()):
    zeros = jnp.zeros((*batch_shape, config.hidden_size))
    return LSTMCarry(zeros, zeros)

  def init(key):
    z = jnp.zeros((1, config.latent_size))
    a = jnp.zeros((1, config.action_size))
    return module.init(key, initial_carry((1,)), z, a)["params"]

  def step(params, carry, z, action):
    return module.apply({"params": params}, carry, z, action)

  def unroll(params, z, actions):
    def body(carry, inputs):
      return step(params, carry, *inputs)
    _, outputs = jax.lax.scan(body, initial_carry(), (z, actions))
    return outputs

  def loss(params, z, actions, rewards, dones, mask=None):
    """``mask [B, T]`` (default all 1): which steps count; 0 for the padding after an
    episode's end, whose predictions are then left out of every term."""
    if z.ndim != 3 or z.shape[1] != actions.shape[1] + 1:
      raise ValueError(f"MDN-RNN loss takes z [B, T+1, Z] and actions [B, T, A], got "
                       f"{z.shape} and {actions.shape}")
    mask = jnp.ones(rewards.shape) if mask is None else mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(mask), 1.0)

    def mean(x):   # over the valid steps of [B, T]
      return jnp.sum(mask * x) / count

    out = jax.vmap(unroll, in_axes=(None, 0, 0))(params, z[:, :-1], actions)
    log_prob = mdn_log_prob(out.logit_pi, out.mean, out.log_std, z[:, 1:])   # [B, T, Z]
    nll = -mean(jnp.mean(log_prob, -1))
    reward_loss = mean((out.reward - rewards) ** 2)
    done_loss = mean(optax.sigmoid_binary_cross_entropy(out.done_logit, dones))
    total = nll + config.reward_scale * reward_loss + config.done_scale * done_loss
    return total, {"mdn/loss": total, "mdn/nll_per_dim": nll, "mdn/reward_mse": reward_loss,
                   "mdn/done_bce": done_loss}

  return MDNRNNFns(init=init, initial_carry=initial_carry, step=step, unroll=unroll, loss=loss)
