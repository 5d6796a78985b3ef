"""Dreamer (Hafner et al. 2020-2023), DreamerV3-style: RSSM world model, actor and critic
trained only on imagined latent trajectories.

One training iteration is one jitted program: step a vmapped batch of environments with the
policy (filtering the RSSM online), add the steps to a pure-JAX sequence replay, then run
``updates_per_iteration`` updates, each a world-model step on replayed sequences followed by an
actor-critic step on trajectories imagined from the replayed posterior states. Real data trains
only the world model. ``make_dreamer(env, config)`` gives pure functions that vmap over seeds and
over the arrays in :class:`DreamerHyper`.

What follows DreamerV3: symlog inputs, two-hot symlog rewards and values, KL balancing with free
bits, 1% unimix, percentile return normalisation, a slow critic as regulariser, zero-initialised
reward/critic outputs. Deliberate differences: Adam with global-norm clipping instead of LaProp
with adaptive clipping; the latent state of replayed sequences starts from zeros (no stored
replay context). The actor learns by dynamics backprop for continuous actions and by REINFORCE
for discrete ones (``actor_grad=auto``, DreamerV3's choice; DreamerV2 found REINFORCE
substantially better than straight-through on Atari). ``actor_grad=dynamics`` also takes
discrete actions, as straight-through one-hot samples (DreamerV2's option). It learns in fewer
updates: on ``fast/PointMassDiscrete`` (the ``fast`` preset, 2 seeds, uniform random 26)
straight-through reaches 37 and 44 after 1,125 updates, REINFORCE 29 and 38, then 41 and 42 by
2,375 and 46 and 45 by 10^4 (experiments/results/dreamer-discrete-reinforce). So the ``fast``
preset, sized for tests of 10^3 updates, uses straight-through; on MinAtar Breakout it drove one
seed's policy entropy from 1.10 to 0.05 nats within 50 updates, so it is not the default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from wmjax.agents.base import Policy
from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.nets.mlp import MLP
from wmjax.planners import make_cem
from wmjax.replay.sequences import (
    SequenceBuffer,
    add_chunk,
    init_sequence_buffer,
    sample_sequences,
)
from wmjax.rl.returns import (
    lambda_returns,
    percentile_ema_scale,
    percentile_ema_update,
)
from wmjax.rl.rollout import Episodes, policy_episodes
from wmjax.types import Array, Key

__all__ = ["DreamerConfig", "DreamerHyper", "DreamerState", "Dreamer", "make_dreamer", "SIZES",
           "model_config"]

# DreamerV3's model sizes (Hafner et al. 2023, Table B.1: GRU units, dense units, CNN multiplier,
# MLP layers; 32 x 32 categorical latents), plus `debug` for tests.
SIZES: dict[str, dict[str, int]] = {
    "debug": dict(deter=32, hidden=32, units=32, layers=1, stoch_groups=4, stoch_classes=4,
                  cnn_depth=4),
    "xsmall": dict(deter=256, hidden=256, units=256, layers=1, stoch_groups=32,
                   stoch_classes=32, cnn_depth=24),
    "small": dict(deter=512, hidden=512, units=512, layers=2, stoch_groups=32, stoch_classes=32,
                  cnn_depth=32),
    "medium": dict(deter=1024, hidden=640, units=640, layers=3, stoch_groups=32,
                   stoch_classes=32, cnn_depth=48),
    "large": dict(deter=2048, hidden=768, units=768, layers=4, stoch_groups=32,
                  stoch_classes=32, cnn_depth=64),
}


@dataclasses.dataclass(frozen=True)
class DreamerConfig:
  """Static settings of a Dreamer run (they fix shapes, so they decide compilation).

  Model sizes come from the ``size`` preset (see ``SIZES``); a size field set here overrides it.
  """

  # Environment and data.
  action_repeat: int = 2
  episode_length: int | None = None   # env steps per episode; the env's default if None
  num_envs: int = 4                   # environments stepped in parallel (vmapped)
  steps_per_iteration: int = 16       # agent steps per environment per training iteration
  prefill: int = 1024                 # random-action agent steps (all envs) before training
  replay_capacity: int = 1_000_000    # agent steps kept (all envs)
  batch_size: int = 16                # replayed sequences per update
  seq_len: int = 64
  train_ratio: float = 512.0          # replayed steps per agent step (DreamerV3's train_ratio)
  # World model.
  size: str = "small"
  deter: int | None = None
  hidden: int | None = None
  units: int | None = None
  layers: int | None = None
  stoch_groups: int | None = None
  stoch_classes: int | None = None
  cnn_depth: int | None = None
  latent: str = "categorical"         # categorical (V2/V3) | gaussian (V1)
  free_nats: float = 1.0
  dyn_scale: float = 0.5
  rep_scale: float = 0.1
  grad_clip: float = 1000.0
  # Adam's epsilon per network. DreamerV3 (Table W.1) uses 1e-5 for actor and critic; with
  # that and DreamerV3's actor outscale 0.01, the point mass after 20 iterations (2 seeds) read
  # 17 and 15 against 22 and 13 with 1e-8 and scale 1 (random 28), and the discrete point mass
  # 31 against 34-38: no better at CPU budgets, so both stay settings, not defaults.
  model_eps: float = 1e-8
  actor_eps: float = 1e-8
  critic_eps: float = 1e-8
  # Behaviour.
  horizon: int = 15                   # imagination horizon
  imagine_starts: int = 0             # start states per update (0: every replayed state)
  actor_outscale: float = 1.0        # variance scale of the actor's output layer at init
                                      # (DreamerV3: 0.01, a near-uniform first policy)
  actor_min_std: float = 0.1
  actor_max_std: float = 1.0
  unimix: float = 0.01
  actor_grad: str = "auto"            # auto (dynamics if continuous, reinforce if discrete:
                                      # DreamerV3's) | dynamics (backprop through the model;
                                      # straight-through one-hot samples if discrete)
                                      # | reinforce (score function)
  retnorm_decay: float = 0.99
  slow_critic_decay: float = 0.98
  slow_critic_reg: float = 1.0
  # Evaluation (driver).
  eval_every: int = 10                # evaluate every N iterations; 0: only at the end
  eval_episodes: int = 4              # evaluation episodes, run in parallel
  # Acting (evaluation, wmjax eval and wmjax.load; training collects with the actor). "actor":
  # the actor's mode. "plan": CEM over plan_horizon-step action sequences on the world model's
  # rewards and then the critic's value (planning_policy; as TD-MPC acts), continuous actions.
  # None of these change the checkpoint: `wmjax eval RUN --set act_with=plan` on a trained run.
  act_with: str = "actor"
  plan_horizon: int = 15
  plan_population: int = 256
  plan_iterations: int = 5
  plan_act: str = "mean"              # mean: the elites' mean (mbrl-lib's CEM) | best: the best
                                      # sequence sampled (the mean of bang-bang elites that
                                      # push both ways can be a weak push)
  plan_samples: int = 1               # prior samples per sequence, scores averaged (particles)

  def __post_init__(self):
    if self.size not in SIZES:
      raise ValueError(f"unknown size {self.size!r}; accepted: {', '.join(SIZES)}")
    for name in ("action_repeat", "num_envs", "steps_per_iteration", "batch_size", "seq_len",
                 "horizon", "eval_episodes", "replay_capacity"):
      if getattr(self, name) < 1:
        raise ValueError(f"DreamerConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.prefill < 0 or self.imagine_starts < 0 or self.eval_every < 0:
      raise ValueError("prefill, imagine_starts and eval_every must be >= 0")
    if self.act_with not in ("actor", "plan"):
      raise ValueError(f"act_with must be actor or plan, got {self.act_with!r}")
    if self.plan_act not in ("mean", "best"):
      raise ValueError(f"plan_act must be mean or best, got {self.plan_act!r}")
    for name in ("plan_horizon", "plan_population", "plan_iterations", "plan_samples"):
      if getattr(self, name) < 1:
        raise ValueError(f"DreamerConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.actor_grad not in ("auto", "reinforce", "dynamics"):
      raise ValueError(f"actor_grad must be auto, reinforce or dynamics, got {self.actor_grad!r}")
    if self.train_ratio <= 0:
      raise ValueError(f"train_ratio must be > 0, got {self.train_ratio}")
    if self.imagine_starts > self.batch_size * self.seq_len:
      raise ValueError(f"imagine_starts ({self.imagine_starts}) is more than the replayed "
                       f"states per update (batch_size x seq_len = "
                       f"{self.batch_size * self.seq_len})")
    model_config(self)   # validates the latent settings

  @property
  def updates_per_iteration(self) -> int:
    """Updates per iteration so that replayed / collected steps is about ``train_ratio``."""
    collected = self.num_envs * self.steps_per_iteration
    return max(1, round(self.train_ratio * collected / (self.batch_size * self.seq_len)))

  @property
  def prefill_iterations(self) -> int:
    return -(-self.prefill // (self.num_envs * self.steps_per_iteration))


def model_config(config: DreamerConfig) -> rssm.WorldModelConfig:
  sizes = dict(SIZES[config.size])
  for name in sizes:
    value = getattr(config, name)
    if value is not None:
      sizes[name] = value
  return rssm.WorldModelConfig(latent=config.latent, unimix=config.unimix, **sizes)


class DreamerHyper(NamedTuple):
  """Array hyperparameters: vmappable across a sweep."""

  model_lr: Any = 1e-4
  actor_lr: Any = 3e-5
  critic_lr: Any = 3e-5
  discount: Any = 0.997
  lam: Any = 0.95
  entropy_coef: Any = 3e-4


class _Actor(nn.Module):
  """Continuous: tanh mean and a bounded std (DreamerV3). Discrete: logits (1% unimix).

  ``outscale`` scales the output layer's initial variance (DreamerV3's 0.01 starts near
  uniform, or centred, in every state).
  """

  units: int
  layers: int
  action_size: int
  discrete: bool
  outscale: float = 1.0

  @nn.compact
  def __call__(self, feat):
    out = 1 if self.discrete else 2
    return MLP((self.units,) * self.layers, out * self.action_size, layer_norm=True,
               output_scale=self.outscale)(feat)


class PolicyCarry(NamedTuple):
  latent: rssm.RSSMState     # [B, ...] posterior at the last observation
  prev_action: Array         # [B, A] (one-hot for discrete actions)
  episode_return: Array      # [B] return of the running episode


class DreamerState(NamedTuple):
  params: dict               # {'model', 'actor', 'critic'}
  slow_critic: Any
  opt_state: dict
  retnorm: Array             # [2] EMA of the 5th and 95th return percentiles
  buffer: SequenceBuffer
  env_state: Any             # [B] env states
  carry: PolicyCarry
  key: Array                 # raw uint32 [2]
  agent_steps: Array         # int32: real agent steps collected (all envs)
  updates: Array             # int32: updates done


class Dreamer(NamedTuple):
  init: Callable          # (key, hyper) -> DreamerState (prefilled with random actions)
  train_iteration: Callable   # (state, hyper) -> (state, metrics)
  collect: Callable       # (state, hyper, random: bool) -> (state, metrics)
  update: Callable        # (params..., key, batch, hyper) -> one update
  evaluate: Callable      # (state, key, hyper=None) -> returns [eval_episodes]
  policy: Callable        # (params, key, feat, mode) -> (action, (logp, entropy))
  world_model: rssm.WorldModelFns
  model_config: rssm.WorldModelConfig
  preprocess: Callable    # (obs) -> obs as the model sees it
  acting: Policy          # acting in the env with a state (evaluation, wmjax.load)
  value: Callable         # (critic params, feat) -> the critic's expected return [...]
  filter: Callable        # (model params, key, latent, prev_action, obs [B, ...], first) -> latent


def _adam(clip: float, eps: float):
  return optax.chain(optax.clip_by_global_norm(clip), optax.scale_by_adam(eps=eps))


def _apply(tx, grads, opt_state, params, lr):
  updates, opt_state = tx.update(grads, opt_state, params)
  params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
  return params, opt_state, optax.global_norm(grads)


class _StepKeys(NamedTuple):
  policy: Key     # the action sample
  model: Key      # the posterior latent sample
  random: Key     # a uniformly random action (prefill)


def _step_keys(key: Key) -> _StepKeys:
  """The keys of one acting step, from one split: no two of its samples share a key."""
  return _StepKeys(*jax.random.split(key, 3))


def make_dreamer(env, config: DreamerConfig) -> Dreamer:
  """Builds Dreamer for a registered env (see :func:`wmjax.envs.make`)."""
  spec = env.spec
  kind = rssm.check_observation_shape(tuple(spec.obs_shape))
  is_image = kind == "image"
  discrete = spec.discrete
  action_size = spec.action_size
  reinforce = config.actor_grad == "reinforce" or (discrete and config.actor_grad == "auto")
  mcfg = model_config(config)
  _, wm = rssm.make_world_model(mcfg, spec.obs_shape, action_size)
  actor = _Actor(mcfg.units, max(1, mcfg.layers), action_size, discrete, config.actor_outscale)
  critic = MLP((mcfg.units,) * max(1, mcfg.layers), mcfg.reward_bins, layer_norm=True,
               zero_output=True)
  bins = wm.bins
  tx_model, tx_actor, tx_critic = (_adam(config.grad_clip, config.model_eps),
                                   _adam(100.0, config.actor_eps),
                                   _adam(100.0, config.critic_eps))
  num_envs = config.num_envs
  updates_per_iteration = config.updates_per_iteration
  capacity_per_env = config.replay_capacity // num_envs
  if config.seq_len > capacity_per_env:
    raise ValueError(
        f"sequence length {config.seq_len} is longer than the replay's {capacity_per_env} steps "
        f"per environment; raise replay_capacity to at least seq_len x num_envs = "
        f"{config.seq_len * num_envs}")
  if config.prefill_iterations * config.steps_per_iteration < config.seq_len:
    raise ValueError(
        f"prefill ({config.prefill} agent steps over {num_envs} envs) gives "
        f"{config.prefill_iterations * config.steps_per_iteration} steps per environment, fewer "
        f"than one sequence of seq_len={config.seq_len}: raise prefill to at least "
        f"{config.seq_len * num_envs}.")

  def preprocess(obs):
    """Images are stored as uint8; the model sees them in [0, 1] after the same rounding."""
    if is_image:
      return jnp.round(jnp.clip(obs, 0.0, 1.0) * 255.0) / 255.0
    return obs

  def store(obs):
    if is_image:
      return jnp.round(jnp.clip(obs, 0.0, 1.0) * 255.0).astype(jnp.uint8)
    return obs.astype(jnp.float32)

  def unstore(obs):
    return obs.astype(jnp.float32) / 255.0 if is_image else obs

  def filter_obs(model_params, key, latent, prev_action, obs, first):
    """The posterior latent after observing ``obs`` ``[B, ...]`` (as the env gives it)."""
    embed = wm.encode(model_params, preprocess(obs))
    return wm.obs_step(model_params, key, latent, prev_action, embed, first)[0]

  def to_model_action(action):
    return jax.nn.one_hot(action, action_size) if discrete else action

  # --- policy ---
  def policy(actor_params, key, feat, mode=False):
    """Returns ``(env_action, model_action, (logp, entropy))`` for features ``[..., F]``."""
    out = actor.apply(actor_params, feat)
    if discrete:
      logits = heads.unimix_logits(out, config.unimix)
      sample = jax.random.categorical(key, logits)
      action = jnp.where(mode, jnp.argmax(logits, -1), sample)
      logp_all = jax.nn.log_softmax(logits)
      logp = jnp.take_along_axis(logp_all, action[..., None], -1)[..., 0]
      probs = jnp.exp(logp_all)
      entropy = -(probs * logp_all).sum(-1)
      # One-hot in value, the probabilities' gradient (straight-through): dynamics backprop.
      onehot = jax.nn.one_hot(action, action_size)
      return action, onehot + (probs - jax.lax.stop_gradient(probs)), (logp, entropy)
    mean_raw, std_raw = jnp.split(out, 2, -1)
    mean = jnp.tanh(mean_raw)
    std = (config.actor_max_std - config.actor_min_std) * jax.nn.sigmoid(std_raw + 2.0) + \
        config.actor_min_std
    raw = mean + std * jax.random.normal(key, mean.shape)
    raw = jnp.where(mode, mean, raw)
    # Clipped with a straight-through gradient, so dynamics backprop still sees the sample.
    action = raw + jax.lax.stop_gradient(jnp.clip(raw, -1.0, 1.0) - raw)
    # Log-density of the sample as a fixed point (the score-function gradient for REINFORCE).
    logp = jnp.sum(-0.5 * ((jax.lax.stop_gradient(raw) - mean) / std) ** 2 - jnp.log(std)
                   - 0.5 * jnp.log(2 * jnp.pi), -1)
    entropy = jnp.sum(jnp.log(std) + 0.5 * jnp.log(2 * jnp.pi * jnp.e), -1)
    return action, action, (logp, entropy)

  # --- environment interaction ---
  def random_action(key):
    if discrete:
      return jax.random.randint(key, (num_envs,), 0, action_size)
    return jax.random.uniform(key, (num_envs, action_size), minval=-1.0, maxval=1.0)

  def collect(state: DreamerState, hyper: DreamerHyper, random: bool | Array = False):
    """Steps the ``num_envs`` envs ``steps_per_iteration`` times and adds them to replay.

    An env whose episode ended is reset on its next step (the row of the reset observation
    has ``is_first``); the rows of the last observation keep ``is_terminal`` (a true end) apart
    from a time limit. Fresh reset states are drawn once per call.
    """
    del hyper
    key, key_reset, key_steps = jax.random.split(state.key, 3)
    resets = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))

    def step(carry, key_t):
      env_state, pc, completed_sum, completed_n = carry
      key_policy, key_model, key_random = _step_keys(key_t)
      is_first = env_state.info["steps"] == 0 if "steps" in env_state.info else jnp.zeros(
          (num_envs,), bool)
      is_first = is_first.astype(jnp.float32)
      latent = filter_obs(state.params["model"], key_model, pc.latent, pc.prev_action,
                          env_state.obs, is_first)
      env_action, model_action, _ = policy(state.params["actor"], key_policy,
                                           rssm.features(latent))
      rand = random_action(key_random)
      env_action = jnp.where(random, rand, env_action)
      model_action = jnp.where(random, to_model_action(rand), model_action)
      done = env_state.done.astype(bool)
      row = {"obs": store(preprocess(env_state.obs)), "action": model_action.astype(jnp.float32),
             "reward": jnp.where(is_first > 0, 0.0, env_state.reward).astype(jnp.float32),
             "is_first": is_first,
             "is_terminal": env_state.info["terminated"].astype(jnp.float32)}
      stepped = jax.vmap(env.step)(env_state, jax.lax.stop_gradient(env_action))
      nxt = jax.tree.map(
          lambda r, s: jnp.where(done.reshape(done.shape + (1,) * (s.ndim - 1)), r, s),
          resets, stepped)
      ep_return = jnp.where(is_first > 0, 0.0, pc.episode_return) + row["reward"]
      completed_sum += jnp.sum(jnp.where(done, ep_return, 0.0))
      completed_n += jnp.sum(done)
      real = 1.0 - done.astype(jnp.float32)   # a step from a finished episode only resets
      pc = PolicyCarry(latent, model_action.astype(jnp.float32), ep_return)
      return (nxt, pc, completed_sum, completed_n), (row, real)

    init = (state.env_state, state.carry, jnp.zeros(()), jnp.zeros((), jnp.int32))
    (env_state, carry, ret_sum, ret_n), (rows, real) = jax.lax.scan(
        step, init, jax.random.split(key_steps, config.steps_per_iteration))
    rows = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)   # [B, T, ...]
    buffer = add_chunk(state.buffer, rows)
    steps = jnp.sum(real).astype(jnp.int32)
    state = state._replace(buffer=buffer, env_state=env_state, carry=carry, key=key,
                           agent_steps=state.agent_steps + steps)
    metrics = {"train/episode_return": jnp.where(ret_n > 0, ret_sum / jnp.maximum(ret_n, 1),
                                                 jnp.nan),
               "train/episodes": ret_n}
    return state, metrics

  # --- updates ---
  def model_update(params, opt_state, key, batch, hyper):
    def loss_fn(model_params):
      return rssm.world_model_loss(wm, mcfg, model_params, key, batch, is_image=is_image,
                                   free_nats=config.free_nats, dyn_scale=config.dyn_scale,
                                   rep_scale=config.rep_scale)
    (_, (posts, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    params, opt_state, gnorm = _apply(tx_model, grads, opt_state, params, hyper.model_lr)
    metrics["model/grad_norm"] = gnorm
    return params, opt_state, posts, metrics

  def value(critic_p, feat):
    return heads.twohot_mean(critic.apply(critic_p, feat), bins)

  def actor_critic_update(params, slow_critic, opt_state, retnorm, key, posts, batch, hyper):
    sg = jax.lax.stop_gradient
    model_params = params["model"]
    key_starts, key_imagine = jax.random.split(key)
    starts = jax.tree.map(lambda x: sg(x.reshape((-1,) + x.shape[2:])), posts)
    terminal = batch["is_terminal"].reshape(-1)
    if config.imagine_starts:
      idx = jax.random.choice(key_starts, terminal.shape[0], (config.imagine_starts,),
                              replace=False)
      starts = jax.tree.map(lambda x: x[idx], starts)
      terminal = terminal[idx]
    critic_params = params["critic"]

    def actor_loss(actor_params):
      def pol(k, feat):
        _, model_action, aux = policy(actor_params, k, sg(feat) if reinforce else feat)
        return (sg(model_action) if reinforce else model_action), aux
      states, _, (logp, entropy) = wm.imagine(model_params, key_imagine, pol, starts,
                                              config.horizon)
      feat = rssm.features(states)                                    # [H+1, M, F]
      reward = wm.reward(model_params, feat[1:])                      # [H, M]
      cont = jax.nn.sigmoid(wm.cont_logit(model_params, feat[1:]))    # [H, M]
      value_t = value(critic_params, feat)                            # [H+1, M]
      rets = lambda_returns(reward, cont, value_t, hyper.discount, hyper.lam)   # [H, M]
      cont_all = jnp.concatenate([(1.0 - terminal)[None], cont], 0)
      weight = sg(jnp.cumprod(jnp.concatenate(
          [cont_all[:1], hyper.discount * cont_all[1:-1]], 0), 0))     # [H, M]
      new_retnorm = percentile_ema_update(retnorm, rets, config.retnorm_decay)
      scale = percentile_ema_scale(new_retnorm)
      if reinforce:
        adv = sg((rets - value_t[:-1]) / scale)
        objective = logp * adv
      else:
        objective = (rets - sg(value_t[:-1])) / scale
      loss = -jnp.mean(weight * (objective + hyper.entropy_coef * entropy))
      aux = (sg(feat), sg(rets), weight, new_retnorm, {
          "actor/loss": loss, "actor/entropy": entropy.mean(), "actor/return_scale": scale,
          "imagine/return": rets.mean(), "imagine/reward": reward.mean(),
          "imagine/cont": cont.mean()})
      return loss, aux

    (_, (feat, rets, weight, retnorm, metrics)), actor_grads = jax.value_and_grad(
        actor_loss, has_aux=True)(params["actor"])
    actor_params, actor_opt, actor_gnorm = _apply(tx_actor, actor_grads, opt_state["actor"],
                                                  params["actor"], hyper.actor_lr)
    slow_target = value(slow_critic, feat[:-1])

    def critic_loss(critic_p):
      logits = critic.apply(critic_p, feat[:-1])
      loss = heads.twohot_loss(logits, rets, bins)
      loss += config.slow_critic_reg * heads.twohot_loss(logits, slow_target, bins)
      return jnp.mean(weight * loss)

    c_loss, critic_grads = jax.value_and_grad(critic_loss)(critic_params)
    critic_params, critic_opt, critic_gnorm = _apply(
        tx_critic, critic_grads, opt_state["critic"], critic_params, hyper.critic_lr)
    decay = config.slow_critic_decay
    slow_critic = jax.tree.map(lambda s, p: decay * s + (1 - decay) * p, slow_critic,
                               critic_params)
    metrics.update({"critic/loss": c_loss, "actor/grad_norm": actor_gnorm,
                    "critic/grad_norm": critic_gnorm})
    params = dict(params, actor=actor_params, critic=critic_params)
    opt_state = dict(opt_state, actor=actor_opt, critic=critic_opt)
    return params, slow_critic, opt_state, retnorm, metrics

  def update(params, slow_critic, opt_state, retnorm, key, batch, hyper):
    """One world-model update, then one actor-critic update from its posterior states."""
    key_model, key_ac = jax.random.split(key)
    model_params, model_opt, posts, metrics = model_update(
        params["model"], opt_state["model"], key_model, batch, hyper)
    params = dict(params, model=model_params)
    opt_state = dict(opt_state, model=model_opt)
    params, slow_critic, opt_state, retnorm, ac_metrics = actor_critic_update(
        params, slow_critic, opt_state, retnorm, key_ac, posts, batch, hyper)
    metrics.update(ac_metrics)
    return params, slow_critic, opt_state, retnorm, metrics

  def sample_batch(buffer, key):
    batch = sample_sequences(buffer, key, config.batch_size, config.seq_len)
    return dict(batch, obs=unstore(batch["obs"]))

  def train_updates(state: DreamerState, hyper):
    key, key_updates = jax.random.split(state.key)

    def body(carry, key_u):
      params, slow, opt_state, retnorm = carry
      key_sample, key_update = jax.random.split(key_u)
      batch = sample_batch(state.buffer, key_sample)
      params, slow, opt_state, retnorm, metrics = update(params, slow, opt_state, retnorm,
                                                         key_update, batch, hyper)
      return (params, slow, opt_state, retnorm), metrics

    carry = (state.params, state.slow_critic, state.opt_state, state.retnorm)
    (params, slow, opt_state, retnorm), metrics = jax.lax.scan(
        body, carry, jax.random.split(key_updates, updates_per_iteration))
    state = state._replace(params=params, slow_critic=slow, opt_state=opt_state,
                           retnorm=retnorm, key=key,
                           updates=state.updates + updates_per_iteration)
    return state, jax.tree.map(jnp.mean, metrics)

  def train_iteration(state: DreamerState, hyper: DreamerHyper):
    state, collect_metrics = collect(state, hyper)
    state, update_metrics = train_updates(state, hyper)
    return state, {**collect_metrics, **update_metrics}

  def init(key: Key, hyper: DreamerHyper) -> DreamerState:
    """Parameters, optimisers, envs and a replay prefilled with random-action steps."""
    key = jnp.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                      else key)
    key, key_model, key_actor, key_critic, key_env = jax.random.split(key, 5)
    feat = jnp.zeros((1, mcfg.feature))
    params = {"model": wm.init(key_model), "actor": actor.init(key_actor, feat),
              "critic": critic.init(key_critic, feat)}
    opt_state = {"model": tx_model.init(params["model"]), "actor": tx_actor.init(params["actor"]),
                 "critic": tx_critic.init(params["critic"])}
    env_state = jax.vmap(env.reset)(jax.random.split(key_env, num_envs))
    example = {"obs": store(jnp.zeros(spec.obs_shape)),
               "action": jnp.zeros((action_size,), jnp.float32),
               "reward": jnp.zeros(()), "is_first": jnp.zeros(()), "is_terminal": jnp.zeros(())}
    buffer = init_sequence_buffer(example, num_envs, config.replay_capacity)
    carry = PolicyCarry(wm.initial((num_envs,)), jnp.zeros((num_envs, action_size)),
                        jnp.zeros((num_envs,)))
    state = DreamerState(params, params["critic"], opt_state, jnp.zeros(2), buffer, env_state,
                         carry, key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def prefill(s, _):
      s, _ = collect(s, hyper, True)
      return s, None

    state, _ = jax.lax.scan(prefill, state, None, length=config.prefill_iterations)
    return state

  # --- acting with a trained state (evaluation, wmjax.load) ---
  def act_init(state: DreamerState, hyper, key):
    """The carry of one episode: the RSSM latent, the previous model action and the first-step
    flag, each with a leading axis of 1 (the model's batch)."""
    return (wm.initial((1,)), jnp.zeros((1, action_size)), jnp.ones((1,)))

  def act(state: DreamerState, hyper, carry, obs, key, deterministic: bool = True):
    """Filters ``obs`` into the latent, then acts from its features: the policy's mode
    (``deterministic``) or a sample."""
    latent, prev_action, first = carry
    keys = _step_keys(key)
    params = state.params
    latent = filter_obs(params["model"], keys.model, latent, prev_action, obs[None], first)
    env_action, model_action, _ = policy(params["actor"], keys.policy, rssm.features(latent),
                                         deterministic)
    return (latent, model_action, jnp.zeros((1,))), env_action[0]

  # Continuous actions are evaluated at the policy's mean; discrete ones by sampling (the argmax
  # of a policy still spread over near-equal actions repeats one action and can do worse than
  # random).
  acting = Policy(act_init, act, deterministic=not discrete)

  fns = Dreamer(init, train_iteration, collect, update, None, policy, wm, mcfg, preprocess,
                acting, value, filter_obs)
  if config.act_with == "plan":
    acting = planning_policy(env, fns, make_cem(config.plan_horizon, config.plan_population,
                                                config.plan_iterations,
                                                return_mean_elites=config.plan_act == "mean"),
                             samples=config.plan_samples)

  def evaluate(state: DreamerState, key: Key, hyper: DreamerHyper | None = None) -> Episodes:
    """Returns and lengths of ``eval_episodes`` full episodes, in parallel
    (:func:`wmjax.rl.rollout.policy_episodes`), acted as ``act_with`` says. The planner
    discounts by ``hyper.discount`` (the defaults' without one)."""
    return policy_episodes(env, acting, state, DreamerHyper() if hyper is None else hyper, key,
                           config.eval_episodes, acting.deterministic)

  return fns._replace(evaluate=evaluate, acting=acting)


def planning_objective(fns: Dreamer, params: dict, latent: rssm.RSSMState, discount,
                       key: Key, samples: int = 1):
  """The objective of :func:`planning_policy` from the latent ``latent`` (batch 1): action
  sequences ``[N, H, A]`` -> ``sum_t discount^t r_t + discount^H V(s_H)`` ``[N]``, the prior
  sampled with ``key`` whatever key the planner passes. ``samples``: the prior sampled that
  many times per sequence and the scores averaged (PETS's particles). One sample scores a
  sequence by one draw of the stochastic latent: on a trained pendulum its spread (std 4-78)
  exceeded the differences between plans, so a search that keeps the best-scored sequences
  partly keeps lucky draws."""
  wm = fns.world_model

  def objective(_, actions):
    n = actions.shape[0]
    actions = jnp.repeat(actions, samples, axis=0)                   # [N * S, H, A]
    start = jax.tree.map(lambda x: jnp.broadcast_to(x, (n * samples,) + x.shape[1:]), latent)
    feat = rssm.features(wm.imagine_actions(params["model"], key, start, actions))
    reward = wm.reward(params["model"], feat[:, 1:])                 # [N * S, H]
    powers = discount ** jnp.arange(actions.shape[1] + 1)
    last = fns.value(params["critic"], feat[:, -1])                  # [N * S]
    return (reward @ powers[:-1] + powers[-1] * last).reshape(n, samples).mean(1)

  return objective


def planning_policy(env, fns: Dreamer, planner, discount: float | None = None,
                    samples: int = 1) -> Policy:
  """Acting by planning in Dreamer's own world model instead of with its actor (MPC, as TD-MPC
  plans with its model and value): filters each observation into the RSSM latent as the actor
  does, then ``planner`` (e.g. :func:`wmjax.planners.make_cem`) searches action sequences of its
  horizon ``H`` for the largest ``sum_t discount^t r_t + discount^H V(s_H)``: the world model's
  rewards along the prior under those actions, then the critic's value of the last state. The
  prior's samples are drawn with one key per plan, the same in each of the planner's
  iterations. The carry holds the planner's warm start. It asks: do the model and critic hold
  better actions than the actor found? ``discount``: the run's ``hyper.discount`` if None.
  ``samples``: prior samples per sequence, averaged (:func:`planning_objective`).
  Continuous actions only. ``DreamerConfig(act_with="plan")`` makes it the agent's acting."""
  if env.spec.discrete:
    raise ValueError("planning_policy plans over continuous actions; "
                     f"{env.spec.num_actions} discrete actions need a tree search (MCTS)")
  wm, action_size = fns.world_model, env.spec.action_size

  def init(state: DreamerState, hyper, key):
    return (wm.initial((1,)), jnp.zeros((1, action_size)), jnp.ones((1,)),
            planner.init(env.spec))

  def act(state: DreamerState, hyper, carry, obs, key, deterministic: bool = True):
    del deterministic   # the planner's plan, sampled by its own key
    latent, prev_action, first, plan_state = carry
    params = state.params
    keys = _step_keys(key)   # as the actor's act: the same latent for the same key
    latent = fns.filter(params["model"], keys.model, latent, prev_action, obs[None], first)

    objective = planning_objective(fns, params, latent,
                                   hyper.discount if discount is None else discount,
                                   jax.random.fold_in(keys.policy, 1), samples)
    plan_state, action, _ = planner.plan(plan_state, keys.policy, objective)
    return (latent, action[None], jnp.zeros((1,)), plan_state), action

  return Policy(init, act, deterministic=True)


def param_count(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


