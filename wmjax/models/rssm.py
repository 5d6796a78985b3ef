"""The recurrent state-space model (RSSM) world model of Dreamer (Hafner et al. 2019-2023).

The latent state is a deterministic GRU state ``deter`` plus a stochastic latent ``stoch``:
DreamerV2/V3's ``G`` categoricals of ``K`` classes (one-hot samples with straight-through
gradients and a 1% uniform mix), or DreamerV1's diagonal Gaussian. ``observe`` filters a sequence
of observations (resetting at episode starts), ``imagine`` rolls the prior forward under a policy
or an action sequence; both are pure functions over ``lax.scan``.

The world model adds an encoder (symlog MLP for vectors, CNN for images), a decoder, a reward
head (two-hot over symlog bins) and a continue head, and the loss with KL balancing and free bits.

Shapes: ``B`` batch (any leading axes), ``T`` time, ``D`` deter size, ``S`` stochastic size
(``G * K`` for categoricals), ``E`` embedding, ``A`` action size (one-hot for discrete actions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from wmjax.nets import heads
from wmjax.nets.cnn import ConvDecoder, ConvEncoder
from wmjax.nets.mlp import MLP, get_activation

__all__ = ["WorldModelConfig", "RSSMState", "WorldModel", "make_world_model", "WorldModelFns",
           "check_observation_shape"]


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
  """Sizes of the world model (static). Defaults are DreamerV3's "small" row."""

  deter: int = 512                  # GRU units
  hidden: int = 512                 # units of the RSSM's input/prior/posterior layers
  units: int = 512                  # units of encoder/decoder/head MLPs
  layers: int = 2                   # hidden layers of encoder/decoder/head MLPs
  latent: str = "categorical"       # categorical (V2/V3) | gaussian (V1)
  stoch_groups: int = 32            # categoricals (or Gaussian dims)
  stoch_classes: int = 32           # classes per categorical (unused for gaussian)
  unimix: float = 0.01              # uniform mix of categorical latents and discrete actions
  min_std: float = 0.1              # gaussian latents: lower bound of the std
  cnn_depth: int = 32               # channels of the first conv layer (images)
  reward_bins: int = 255            # two-hot bins over symlog(-20)..symlog(20) space
  activation: str = "silu"

  @property
  def stoch(self) -> int:
    return self.stoch_groups * (self.stoch_classes if self.latent == "categorical" else 1)

  @property
  def feature(self) -> int:
    return self.deter + self.stoch

  def __post_init__(self):
    if self.latent not in ("categorical", "gaussian"):
      raise ValueError(f"latent must be 'categorical' or 'gaussian', got {self.latent!r}")
    for name in ("deter", "hidden", "units", "stoch_groups", "stoch_classes", "cnn_depth",
                 "reward_bins"):
      if getattr(self, name) < 1:
        raise ValueError(f"WorldModelConfig.{name} must be >= 1, got {getattr(self, name)}")


class RSSMState(NamedTuple):
  deter: jax.Array   # [..., D]
  stoch: jax.Array   # [..., S] (flattened one-hots, or Gaussian sample)
  stats: jax.Array   # [..., G, K] logits, or [..., G, 2] (mean, std) for Gaussian latents


def check_observation_shape(obs_shape: tuple[int, ...]) -> str:
  """``'vector'`` or ``'image'``; any other observation is refused with what is accepted.

  Images are channels last with any number of channels (RGB frames, MinAtar's object planes)
  and at least 8 pixels a side (:func:`wmjax.nets.cnn.num_stages`).
  """
  if len(obs_shape) == 1:
    return "vector"
  if len(obs_shape) == 3 and min(obs_shape[:2]) >= 8 and obs_shape[-1] >= 1:
    return "image"
  raise ValueError(
      f"observation of shape {obs_shape}: Dreamer's encoder takes vectors [D] (MLP on symlog "
      "inputs) or channels-last images [H, W, C] at least 8x8 (CNN). Flatten other arrays "
      "into a vector, or move channels last.")


class _GRU(nn.Module):
  """DreamerV3's GRU cell: one dense layer over [input, state], layer norm, update bias -1."""

  size: int

  @nn.compact
  def __call__(self, x, state):
    parts = nn.Dense(3 * self.size, use_bias=False)(jnp.concatenate([x, state], -1))
    parts = nn.LayerNorm()(parts)
    reset, cand, update = jnp.split(parts, 3, -1)
    reset = jax.nn.sigmoid(reset)
    cand = jnp.tanh(reset * cand)
    update = jax.nn.sigmoid(update - 1.0)
    return update * cand + (1.0 - update) * state


class _Dense(nn.Module):
  """Dense -> LayerNorm -> activation."""

  size: int
  activation: str

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.size, use_bias=False)(x)
    return get_activation(self.activation)(nn.LayerNorm()(x))


class WorldModel(nn.Module):
  """Encoder, RSSM, decoder, reward and continue heads. Methods take any leading axes."""

  config: WorldModelConfig
  obs_shape: tuple[int, ...]
  action_size: int

  def setup(self):
    c = self.config
    kind = check_observation_shape(tuple(self.obs_shape))
    self.is_image = kind == "image"
    mlp = dict(activation=c.activation, layer_norm=True)
    if self.is_image:
      self.encoder = ConvEncoder(depth=c.cnn_depth, activation=c.activation)
      self.decoder = ConvDecoder(out_shape=tuple(self.obs_shape), depth=c.cnn_depth,
                                 activation=c.activation)
    else:
      self.encoder = MLP((c.units,) * (c.layers - 1), c.units, **mlp)
      self.decoder = MLP((c.units,) * c.layers, self.obs_shape[0], **mlp)
    self.img_in = _Dense(c.hidden, c.activation)
    self.gru = _GRU(c.deter)
    stats = c.stoch_groups * (c.stoch_classes if c.latent == "categorical" else 2)
    self.prior_net = MLP((c.hidden,), stats, **mlp)
    self.post_net = MLP((c.hidden,), stats, **mlp)
    self.reward_net = MLP((c.units,) * c.layers, c.reward_bins, zero_output=True, **mlp)
    self.cont_net = MLP((c.units,) * c.layers, 1, **mlp)

  # --- latent distributions ---
  def _stats(self, raw):
    c = self.config
    if c.latent == "categorical":
      logits = raw.reshape(raw.shape[:-1] + (c.stoch_groups, c.stoch_classes))
      return heads.unimix_logits(logits, c.unimix)
    raw = raw.reshape(raw.shape[:-1] + (c.stoch_groups, 2))
    mean, std = raw[..., 0], jax.nn.softplus(raw[..., 1]) + c.min_std
    return jnp.stack([mean, std], -1)

  def _sample(self, key, stats):
    if self.config.latent == "categorical":
      onehot = heads.sample_onehot_straight_through(key, stats)
      return onehot.reshape(onehot.shape[:-2] + (-1,))
    mean, std = stats[..., 0], stats[..., 1]
    return mean + std * jax.random.normal(key, mean.shape)

  # --- public methods ---
  def initial(self, batch_shape: tuple[int, ...]) -> RSSMState:
    c = self.config
    stats_last = c.stoch_classes if c.latent == "categorical" else 2
    stats = jnp.zeros(batch_shape + (c.stoch_groups, stats_last))
    if c.latent == "gaussian":
      stats = stats.at[..., 1].set(1.0)
    return RSSMState(jnp.zeros(batch_shape + (c.deter,)), jnp.zeros(batch_shape + (c.stoch,)),
                     stats)

  def encode(self, obs):
    if self.is_image:
      return self.encoder(obs)
    return self.encoder(heads.symlog(obs))

  def img_step(self, key, state: RSSMState, action) -> RSSMState:
    x = self.img_in(jnp.concatenate([state.stoch, action], -1))
    deter = self.gru(x, state.deter)
    stats = self._stats(self.prior_net(deter))
    return RSSMState(deter, self._sample(key, stats), stats)

  def obs_step(self, key, state: RSSMState, prev_action, embed, is_first):
    """Posterior and prior at one step; ``state``/``prev_action`` reset where ``is_first``."""
    init = self.initial(is_first.shape)
    first = is_first.astype(bool)
    state = jax.tree.map(lambda i, s: jnp.where(first[..., None] if s.ndim == first.ndim + 1
                                                else first[..., None, None], i, s), init, state)
    prev_action = jnp.where(first[..., None], 0.0, prev_action)
    key_prior, key_post = jax.random.split(key)
    prior = self.img_step(key_prior, state, prev_action)
    stats = self._stats(self.post_net(jnp.concatenate([prior.deter, embed], -1)))
    post = RSSMState(prior.deter, self._sample(key_post, stats), stats)
    return post, prior

  def decode(self, feat):
    return self.decoder(feat)

  def reward_logits(self, feat):
    return self.reward_net(feat)

  def cont_logit(self, feat):
    return self.cont_net(feat)[..., 0]

  def __call__(self, key, obs, prev_action, is_first):
    """Touches every submodule (for ``init``)."""
    embed = self.encode(obs)
    state = self.initial(is_first.shape)
    post, _ = self.obs_step(key, state, prev_action, embed, is_first)
    feat = features(post)
    return self.decode(feat), self.reward_logits(feat), self.cont_logit(feat)


def features(state: RSSMState) -> jax.Array:
  """``[..., D + S]``: the input of decoder, heads, actor and critic."""
  return jnp.concatenate([state.deter, state.stoch], -1)


def kl_divergence(config: WorldModelConfig, stats_p, stats_q) -> jax.Array:
  """KL(p || q) summed over the latent groups: ``[...]``."""
  if config.latent == "categorical":
    return heads.categorical_kl(stats_p, stats_q).sum(-1)
  return heads.gaussian_kl(stats_p[..., 0], stats_p[..., 1], stats_q[..., 0],
                           stats_q[..., 1]).sum(-1)


class WorldModelFns(NamedTuple):
  """Pure functions over world-model params (``wm`` below), built by :func:`make_world_model`."""

  init: Callable            # (key) -> params
  initial: Callable         # (batch_shape) -> RSSMState of zeros
  encode: Callable          # (params, obs [..., *obs_shape]) -> embed [..., E]
  obs_step: Callable        # (params, key, state, prev_action, embed, is_first) -> (post, prior)
  img_step: Callable        # (params, key, state, action) -> state
  observe: Callable         # (params, key, embed [B,T,E], action [B,T,A], is_first [B,T], state)
  imagine: Callable         # (params, key, policy, start [B], horizon) -> (states, actions, aux)
  imagine_actions: Callable  # (params, key, start [B], actions [B, H, A]) -> states [B, H+1]
  decode: Callable          # (params, feat) -> obs prediction (symlog space for vectors)
  reward: Callable          # (params, feat) -> reward [...]
  reward_logits: Callable   # (params, feat) -> [..., bins]
  cont_logit: Callable      # (params, feat) -> [...]
  bins: jax.Array           # [bins] two-hot bins (symlog space)


def make_world_model(config: WorldModelConfig, obs_shape: tuple[int, ...],
                     action_size: int) -> tuple[WorldModel, WorldModelFns]:
  """The world model's flax module and pure functions (single params pytree)."""
  module = WorldModel(config, tuple(obs_shape), action_size)
  bins = heads.twohot_bins(config.reward_bins)

  def init(key):
    key_params, key_sample = jax.random.split(key)
    obs = jnp.zeros((1,) + tuple(obs_shape))
    return module.init(key_params, key_sample, obs, jnp.zeros((1, action_size)),
                       jnp.ones((1,)))

  def call(method):
    return lambda params, *args: module.apply(params, *args, method=method)

  encode = call(WorldModel.encode)
  obs_step = call(WorldModel.obs_step)
  img_step = call(WorldModel.img_step)
  decode = call(WorldModel.decode)
  reward_logits = call(WorldModel.reward_logits)
  cont_logit = call(WorldModel.cont_logit)

  def initial(batch_shape):
    return module.initial(tuple(batch_shape))

  def observe(params, key, embed, action, is_first, state=None):
    """Filters ``[B, T]`` sequences. ``action[:, t]`` is the action taken at step ``t``, so
    the step ``t`` update uses ``action[:, t - 1]`` (zero, and the state reset, at ``is_first``).

    Returns ``(posts, priors)``, each an :class:`RSSMState` of ``[B, T, ...]``.
    """
    batch = embed.shape[:1]
    if state is None:
      state = initial(batch)
    prev_actions = jnp.concatenate([jnp.zeros_like(action[:, :1]), action[:, :-1]], 1)
    keys = jax.random.split(key, embed.shape[1])

    def step(carry, inputs):
      key_t, embed_t, prev_action_t, first_t = inputs
      post, prior = obs_step(params, key_t, carry, prev_action_t, embed_t, first_t)
      return post, (post, prior)

    swap = lambda x: jnp.swapaxes(x, 0, 1)
    _, (posts, priors) = jax.lax.scan(
        step, state, (keys, swap(embed), swap(prev_actions), swap(is_first)))
    return jax.tree.map(swap, posts), jax.tree.map(swap, priors)

  def imagine(params, key, policy, start: RSSMState, horizon: int):
    """Rolls the prior ``horizon`` steps under ``policy(key, feat) -> (action, aux)``.

    Returns ``states`` ``[H + 1, B, ...]`` (the start first), ``actions`` ``[H, B, A]`` and the
    policy's ``aux`` ``[H, ...]`` (e.g. log-probabilities and entropies), time-major.
    """
    def step(state, key_t):
      key_policy, key_model = jax.random.split(key_t)
      action, aux = policy(key_policy, features(state))
      nxt = img_step(params, key_model, state, action)
      return nxt, (nxt, action, aux)

    _, (states, actions, aux) = jax.lax.scan(step, start, jax.random.split(key, horizon))
    states = jax.tree.map(lambda s0, s: jnp.concatenate([s0[None], s], 0), start, states)
    return states, actions, aux

  def imagine_actions(params, key, start: RSSMState, actions):
    """Rolls the prior under a given action sequence ``[B, H, A]``: states ``[B, H + 1, ...]``."""
    def step(state, inputs):
      key_t, action = inputs
      nxt = img_step(params, key_t, state, action)
      return nxt, nxt

    keys = jax.random.split(key, actions.shape[1])
    _, states = jax.lax.scan(step, start, (keys, jnp.swapaxes(actions, 0, 1)))
    return jax.tree.map(lambda s0, s: jnp.concatenate([s0[:, None], jnp.swapaxes(s, 0, 1)], 1),
                        start, states)

  def reward(params, feat):
    return heads.twohot_mean(reward_logits(params, feat), bins)

  fns = WorldModelFns(init, initial, encode, obs_step, img_step, observe, imagine,
                      imagine_actions, decode, reward, reward_logits, cont_logit, bins)
  return module, fns


def world_model_loss(fns: WorldModelFns, config: WorldModelConfig, params, key, batch, *,
                     is_image: bool, free_nats: float = 1.0, dyn_scale: float = 0.5,
                     rep_scale: float = 0.1):
  """DreamerV3's world-model loss on a replay batch of ``[B, T]`` sequences.

  ``batch``: ``obs`` [B, T, ...] (images in [0, 1]), ``action`` [B, T, A] (taken at t),
  ``reward`` [B, T] (received on arriving at t), ``is_first``, ``is_terminal`` [B, T].
  The first step of every sequence starts from the initial state (it is treated as is_first).

  Returns ``(loss, (posts, metrics))``.
  """
  is_first = batch["is_first"].at[:, 0].set(1.0)
  embed = fns.encode(params, batch["obs"])
  posts, priors = fns.observe(params, key, embed, batch["action"], is_first)
  feat = features(posts)
  pred = fns.decode(params, feat)
  if is_image:
    recon = jnp.sum((pred - batch["obs"]) ** 2, axis=(-3, -2, -1))
  else:
    recon = jnp.sum((pred - heads.symlog(batch["obs"])) ** 2, -1)
  reward_loss = heads.twohot_loss(fns.reward_logits(params, feat), batch["reward"], fns.bins)
  cont_target = 1.0 - batch["is_terminal"]
  cont_loss = optax_sigmoid_bce(fns.cont_logit(params, feat), cont_target)
  sg = jax.lax.stop_gradient
  dyn = kl_divergence(config, sg(posts.stats), priors.stats)
  rep = kl_divergence(config, posts.stats, sg(priors.stats))
  dyn_loss = jnp.maximum(dyn, free_nats)
  rep_loss = jnp.maximum(rep, free_nats)
  loss = recon + reward_loss + cont_loss + dyn_scale * dyn_loss + rep_scale * rep_loss
  metrics = {
      "model/loss": loss.mean(), "model/recon": recon.mean(), "model/reward": reward_loss.mean(),
      "model/cont": cont_loss.mean(), "model/kl": dyn.mean(),
      "model/post_entropy": _entropy(config, posts.stats).mean(),
  }
  return loss.mean(), (posts, metrics)


def optax_sigmoid_bce(logits, labels):
  """Binary cross-entropy with logits: ``[...]``."""
  return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def _entropy(config: WorldModelConfig, stats):
  if config.latent == "categorical":
    logp = jax.nn.log_softmax(stats, -1)
    return -(jnp.exp(logp) * logp).sum((-2, -1))
  return jnp.sum(jnp.log(stats[..., 1]) + 0.5 * jnp.log(2 * jnp.pi * jnp.e), -1)
