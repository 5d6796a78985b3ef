"""Soft actor-critic (Haarnoja et al. 2018) as pure functions: the learner inside MBPO.

Twin Q networks with target copies (Polyak averaging), a tanh-squashed Gaussian actor, and a
learned temperature towards a target entropy of ``-A``. ``make_sac`` gives ``init``, ``act`` and
``update``; ``update`` takes one batch of transitions, so a caller can feed it real data, model
data or a mix (MBPO), and scan it for many updates per env step. The model-free baseline that
MBPO is compared with is brax's own SAC (``wmjax train sac``); this one is for learners that
must live inside our jitted iterations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wmjax.nets.mlp import MLP, get_activation
from wmjax.types import Array, Key, Transition

__all__ = ["SACConfig", "SACState", "SAC", "make_sac", "config_from"]

_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass(frozen=True)
class SACConfig:
  """Static SAC settings (network sizes decide compilation)."""

  hidden_sizes: tuple[int, ...] = (256, 256)
  activation: str = "relu"
  initial_alpha: float = 1.0     # entropy temperature at the start (learned in log space)
  # LayerNorm after each hidden layer of the critics (Ball et al. 2023, RLPD): Q at actions the
  # data never held stays within the scale that the data's targets give the output layer, so
  # the actor cannot climb an extrapolated Q and bootstrap it past every possible return.
  critic_layer_norm: bool = False

  def __post_init__(self):
    if not self.hidden_sizes or not all(isinstance(h, int) and h >= 1
                                        for h in self.hidden_sizes):
      raise ValueError(f"SAC hidden_sizes must be positive ints, got {self.hidden_sizes}")
    get_activation(self.activation)
    if self.initial_alpha <= 0:
      raise ValueError(f"initial_alpha must be > 0, got {self.initial_alpha}")


def config_from(settings, prefix: str = "sac_") -> SACConfig:
  """The ``SACConfig`` an agent's own config holds as ``<prefix><field>`` (MBPO's and MOPO's
  ``sac_hidden_sizes``, ``sac_initial_alpha``, ...); fields it does not hold keep SAC's
  defaults, so a new SAC option reaches every agent that names it, with no plumbing."""
  values = {f.name: getattr(settings, prefix + f.name) for f in dataclasses.fields(SACConfig)
            if hasattr(settings, prefix + f.name)}
  if "hidden_sizes" in values:
    values["hidden_sizes"] = tuple(values["hidden_sizes"])
  return SACConfig(**values)


class SACState(NamedTuple):
  actor: Any            # actor params
  critic: Any           # twin critic params (leading [2] axis)
  target_critic: Any
  log_alpha: Array      # []
  actor_opt: Any
  critic_opt: Any
  alpha_opt: Any
  updates: Array        # int32 count


class SAC(NamedTuple):
  config: SACConfig
  init: Any     # (key, lr) -> SACState
  act: Any      # (actor params, key, obs [..., O], deterministic: bool) -> action [..., A]
  update: Any   # (state, key, batch Transition [B], discount, tau, lr) -> (state, metrics)
  q: Any        # (critic params, obs [..., O], action [..., A]) -> twin Q values [2, ...]


def make_sac(obs_size: int, action_size: int, config: SACConfig = SACConfig()) -> SAC:
  """SAC for observations ``[O]`` and actions in ``[-1, 1]^A``."""
  if obs_size < 1 or action_size < 1:
    raise ValueError(f"SAC needs obs_size and action_size >= 1, got {obs_size}, {action_size}")
  actor_net = MLP(tuple(config.hidden_sizes), 2 * action_size, config.activation)
  critic_net = MLP(tuple(config.hidden_sizes), 1, config.activation,
                   layer_norm=config.critic_layer_norm)
  target_entropy = -float(action_size)

  def optimizer(lr):
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)

  def with_lr(opt_state, lr):
    # inject_hyperparams reads the rate from its state, not from the transformation it was
    # built with, so a new ``lr`` must be written into the state to take effect.
    rate = opt_state.hyperparams["learning_rate"]
    hyper = {**opt_state.hyperparams, "learning_rate": jnp.asarray(lr, rate.dtype)}
    return opt_state._replace(hyperparams=hyper)

  def init(key: Key, lr=3e-4) -> SACState:
    k_actor, k_critic = jax.random.split(key)
    actor = actor_net.init(k_actor, jnp.zeros((1, obs_size)))
    critic = jax.vmap(critic_net.init, in_axes=(0, None))(
        jax.random.split(k_critic, 2), jnp.zeros((1, obs_size + action_size)))
    log_alpha = jnp.log(jnp.asarray(config.initial_alpha, jnp.float32))
    tx = optimizer(lr)
    return SACState(actor, critic, critic, log_alpha, tx.init(actor), tx.init(critic),
                    tx.init(log_alpha), jnp.zeros((), jnp.int32))

  def dist(actor, obs):
    out = actor_net.apply(actor, obs)
    mean, log_std = jnp.split(out, 2, axis=-1)
    log_std = _LOG_STD_MIN + 0.5 * (_LOG_STD_MAX - _LOG_STD_MIN) * (jnp.tanh(log_std) + 1.0)
    return mean, log_std

  def sample(actor, key, obs):
    """A squashed sample and its log-probability (with the tanh correction)."""
    mean, log_std = dist(actor, obs)
    std = jnp.exp(log_std)
    eps = jax.random.normal(key, mean.shape)
    pre = mean + std * eps
    action = jnp.tanh(pre)
    log_prob = jnp.sum(-0.5 * eps**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), numerically stable.
    log_prob -= jnp.sum(2.0 * (jnp.log(2.0) - pre - jax.nn.softplus(-2.0 * pre)), axis=-1)
    return action, log_prob

  def act(actor, key, obs, deterministic: bool = False):
    if deterministic:
      return jnp.tanh(dist(actor, obs)[0])
    return sample(actor, key, obs)[0]

  def q_values(critic, obs, action):
    x = jnp.concatenate([obs, action], axis=-1)
    return jax.vmap(lambda p: critic_net.apply(p, x)[..., 0])(critic)   # [2, ...]

  def update(state: SACState, key: Key, batch: Transition, discount=0.99, tau=0.005, lr=3e-4):
    """One critic, actor and temperature step on ``batch`` (leaves ``[B, ...]``)."""
    k_next, k_pi = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)
    tx = optimizer(lr)

    next_action, next_logp = sample(state.actor, k_next, batch.next_obs)
    next_q = jnp.min(q_values(state.target_critic, batch.next_obs, next_action), axis=0)
    target = batch.reward + discount * (1.0 - batch.terminated) * (next_q - alpha * next_logp)
    target = jax.lax.stop_gradient(target)

    def critic_loss(critic):
      q = q_values(critic, batch.obs, batch.action)
      return 0.5 * jnp.mean(jnp.sum(jnp.square(q - target[None]), axis=0)), jnp.mean(q)

    (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    c_updates, critic_opt = tx.update(c_grads, with_lr(state.critic_opt, lr), state.critic)
    critic = optax.apply_updates(state.critic, c_updates)

    def actor_loss(actor):
      action, logp = sample(actor, k_pi, batch.obs)
      q = jnp.min(q_values(critic, batch.obs, action), axis=0)
      return jnp.mean(alpha * logp - q), logp

    (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    a_updates, actor_opt = tx.update(a_grads, with_lr(state.actor_opt, lr), state.actor)
    actor = optax.apply_updates(state.actor, a_updates)

    entropy_gap = jax.lax.stop_gradient(-jnp.mean(logp) - target_entropy)
    alpha_grad = entropy_gap * jnp.exp(state.log_alpha)   # d/dlog_alpha of alpha * gap
    al_updates, alpha_opt = tx.update(alpha_grad, with_lr(state.alpha_opt, lr),
                                      state.log_alpha)
    log_alpha = optax.apply_updates(state.log_alpha, al_updates)

    target_critic = optax.incremental_update(critic, state.target_critic, tau)
    new = SACState(actor, critic, target_critic, log_alpha, actor_opt, critic_opt, alpha_opt,
                   state.updates + 1)
    metrics = {"sac/critic_loss": c_loss, "sac/actor_loss": a_loss, "sac/q": q_mean,
               "sac/alpha": alpha, "sac/entropy": -jnp.mean(logp)}
    return new, metrics

  return SAC(config=config, init=init, act=act, update=update, q=q_values)
