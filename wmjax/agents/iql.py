"""IQL (Kostrikov, Nair & Levine 2021, "Offline RL with Implicit Q-Learning") as pure functions.

The model-free offline baseline: it learns from a fixed dataset of transitions and never steps
the env except to evaluate. Each update, on a batch drawn uniformly (with replacement) from the
dataset, follows the reference implementation (``ikostrikov/implicit_q_learning``, ``learner.py``)
in its order:

1. **value**: ``V(s)`` by expectile regression (expectile ``tau_e``, :func:`expectile_loss`)
   towards ``min_i Qtarget_i(s, a)`` of the *target* twin critic, on dataset actions only, so
   no out-of-distribution action is ever evaluated;
2. **actor**: advantage-weighted regression, ``-mean(w log pi(a | s))`` with
   ``w = min(exp(beta (min_i Qtarget_i(s, a) - V(s))), max_weight)`` under the new ``V``;
3. **critic**: both Q heads by squared TD error towards ``r + gamma (1 - terminated) V(s')``
   with the new ``V`` (``terminated``, not a time limit, stops bootstrapping);
4. **target**: Polyak averaging of the critic, ``target <- tau Q + (1 - tau) target``.

The actor is the paper's locomotion policy: a Gaussian whose mean is ``tanh`` of an MLP's output
and whose log standard deviation is a learned state-independent vector, clipped to ``[-5, 2]``
(not a tanh-squashed distribution); the deterministic action is the mean, a sampled action is
clipped to ``[-1, 1]``. The actor's learning rate can follow the paper's cosine decay to zero
(``IQLConfig.actor_lr_decay_updates``, as the reference's ``opt_decay_schedule="cosine"`` over
the whole run); by default it is constant. The networks use flax's default (LeCun normal)
initialisation rather than the reference's orthogonal one.

Data preparation (on the host, once, in :func:`make_iql`):

- ``normalize_reward`` (D4RL locomotion recipe, generalised): rewards are multiplied by
  ``T / max(max - min, |mean|)`` of the dataset's episode returns, ``T`` the episode length
  (:func:`reward_scale_of`; D4RL's ``1000 / (max - min)`` on its data). Q, V and the losses
  are then in scaled units; evaluation returns are always the env's own.
- ``normalize_obs``: observations are standardised by the dataset's per-feature mean and std
  (``+ 1e-3``). The statistics live in the state (``obs_mean``, ``obs_std``), so acting needs
  the state only, never the dataset.

The dataset (a :class:`~wmjax.types.Transition` of device arrays) is closed over, shared by all
vmapped runs and never part of the state or of a checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wmjax.agents.base import Policy, require_vector_continuous
from wmjax.agents.base import raw_key as _raw
from wmjax.nets.mlp import MLP, get_activation
from wmjax.offline.dataset import check_transitions, episode_returns
from wmjax.rl.rollout import Episodes, policy_episodes
from wmjax.types import Array, Key, Metrics, Transition

__all__ = ["IQLConfig", "IQLHyper", "IQLState", "IQL", "make_iql", "expectile_loss",
           "reward_scale_of", "episode_ends"]

_LOG_STD_MIN, _LOG_STD_MAX = -5.0, 2.0   # the reference's clip of the actor's log std
_OBS_STD_EPS = 1e-3                      # added to the dataset's obs std (TD3+BC, IQL forks)
_RETURN_SCALE = 1000.0                   # D4RL locomotion: rewards * 1000 / (max - min return)


@dataclasses.dataclass(frozen=True)
class IQLConfig:
  """Static settings of an IQL run: they fix shapes and so decide compilation."""

  dataset: str = ""                    # dataset folder (the driver fills it from --dataset)
  action_repeat: int = 1
  episode_length: int | None = None    # env steps per evaluation episode; env default if None
  hidden_sizes: tuple[int, ...] = (256, 256)   # V, each Q and the actor
  activation: str = "relu"
  batch_size: int = 256
  updates_per_iteration: int = 1000    # gradient steps per driver iteration (one jitted scan)
  eval_every: int = 5                  # iterations between evaluations; 0: only at the end
  eval_episodes: int = 10
  normalize_obs: bool = True           # standardise observations with the dataset's mean/std
  normalize_reward: bool = True        # rewards * 1000 / (max - min episode return) (D4RL)
  # Cosine decay of the actor's learning rate to 0 over this many updates (the paper decays
  # over the whole run, 1e6 updates); 0 keeps it constant.
  actor_lr_decay_updates: int = 0

  def __post_init__(self):
    if not self.hidden_sizes or not all(isinstance(h, int) and h >= 1
                                        for h in self.hidden_sizes):
      raise ValueError(f"IQLConfig.hidden_sizes must be positive ints, got {self.hidden_sizes}")
    get_activation(self.activation)
    for name in ("action_repeat", "batch_size", "updates_per_iteration", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"IQLConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.episode_length is not None and self.episode_length < 1:
      raise ValueError(f"IQLConfig.episode_length must be >= 1 or None, got "
                       f"{self.episode_length}")
    for name in ("eval_every", "actor_lr_decay_updates"):
      if getattr(self, name) < 0:
        raise ValueError(f"IQLConfig.{name} must be >= 0, got {getattr(self, name)}")


class IQLHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so seeds and sweeps vmap over them."""

  expectile: Array | float = 0.7       # tau of V's expectile regression, in (0, 1)
  temperature: Array | float = 3.0     # beta of advantage-weighted regression
  discount: Array | float = 0.99
  tau: Array | float = 0.005           # Polyak rate of the target critic
  actor_lr: Array | float = 3e-4
  critic_lr: Array | float = 3e-4
  value_lr: Array | float = 3e-4
  max_weight: Array | float = 100.0    # clip of the AWR weights exp(beta A)


class IQLState(NamedTuple):
  value: Any            # V params
  critic: Any           # twin Q params (leading [2] axis)
  target_critic: Any
  actor: Any            # {"mean": MLP params, "log_std": [A]}
  value_opt: Any        # Adam moments (the learning rate comes from the hyper each update)
  critic_opt: Any
  actor_opt: Any
  obs_mean: Array       # [O] dataset observation mean (0 without normalize_obs)
  obs_std: Array        # [O] dataset observation std + 1e-3 (1 without normalize_obs)
  updates: Array        # int32: gradient steps so far
  key: Key              # raw uint32 key


class IQL(NamedTuple):
  config: IQLConfig
  init: Any              # (key, hyper) -> IQLState
  train_iteration: Any   # (state, hyper) -> (state, metrics): updates_per_iteration updates
  evaluate: Any          # (state, key, hyper) -> returns [eval_episodes] (deterministic policy)
  policy: Policy         # acting with a state's actor, one observation at a time
  update: Any            # (state, batch Transition [B] as in the dataset, hyper) -> (state, m)
  reward_scale: float    # the factor applied to the dataset's rewards (1.0 without scaling)


def expectile_loss(diff: Array, expectile) -> Array:
  """Asymmetric squared loss ``|expectile - 1(diff < 0)| diff^2``, elementwise (the
  reference's ``loss(diff, expectile)``, with ``diff = Q - V``). At ``expectile = 0.5`` it is
  half the squared error; above 0.5, ``V`` is pushed towards an upper expectile of Q."""
  weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
  return weight * jnp.square(diff)


def episode_ends(obs, next_obs, terminated) -> np.ndarray:
  """Episode ends of rows in episode order, inferred as the reference does
  (``split_into_trajectories``): a row ends an episode if it terminated, if the next row does
  not start where it ended (``obs[i + 1] != next_obs[i]``), or if it is the last row."""
  obs, next_obs = np.asarray(obs, np.float64), np.asarray(next_obs, np.float64)
  n = obs.shape[0]
  ends = np.asarray(terminated).reshape(n) > 0
  if n > 1:
    gap = np.linalg.norm((obs[1:] - next_obs[:-1]).reshape(n - 1, -1), axis=-1)
    ends[:-1] |= gap > 1e-6
  if n:
    ends[-1] = True
  return ends


def reward_scale_of(dataset=None, *, reward=None, ends=None,
                    steps_per_episode: int | None = None) -> float:
  """D4RL's locomotion reward scale, generalised to any episode length and spread of returns:
  ``T / max(max - min, |mean|)`` of the episode returns (cut episodes included, as the
  reference), with ``T`` the episode length in agent steps.

  For D4RL's 1000-step episodes with returns spread wider than their mean (random, medium-replay,
  medium-expert data) this is the paper's ``1000 / (max - min)``. The floor at ``|mean|`` keeps
  a narrow dataset (near-expert data, returns within a few percent of each other) from being
  scaled up a hundredfold: on a point-mass dataset of returns 39-48 the plain rule scales rewards
  by 106, Q reaches about 1,700 and IQL falls to 22 against the data's 44; with the floor it
  scores 46.

  Pass a :class:`~wmjax.offline.Dataset` (its own episode ends and episode length are used) or
  ``reward`` ``[N]`` and ``ends`` ``[N]`` (1 on each episode's last row) and
  ``steps_per_episode`` (default 1000). Raises ``ValueError`` when every episode returns 0.
  """
  if dataset is not None:
    reward, ends = dataset.reward, dataset.ends
    if steps_per_episode is None and dataset.meta.get("episode_length"):
      repeat = int(dataset.meta.get("action_repeat") or 1)
      steps_per_episode = -(-int(dataset.meta["episode_length"]) // repeat)
  if reward is None or ends is None:
    raise ValueError("reward_scale_of needs a Dataset, or both reward and ends")
  returns, _ = episode_returns(np.asarray(reward), np.asarray(ends))
  if not returns.size:
    raise ValueError("reward_scale_of: the dataset has no episode")
  spread = max(float(returns.max() - returns.min()), abs(float(returns.mean())))
  if not spread > 1e-8:
    raise ValueError(f"cannot scale rewards by the spread of episode returns: the dataset's "
                     f"{returns.size} episode(s) all return {float(returns.max()):.4g}; set "
                     "normalize_reward=False or pass reward_scale")
  return float(steps_per_episode or _RETURN_SCALE) / spread


def make_iql(env, data: Transition, config: IQLConfig = IQLConfig(),
             reward_scale: float | None = None) -> IQL:
  """Builds IQL for a registered env with continuous actions and vector observations.

  Args:
    env: a :class:`wmjax.envs.RegisteredEnv` (made with ``config.action_repeat`` and
      ``config.episode_length``): evaluation runs in it, and the data must fit its spec.
    data: the dataset as a :class:`~wmjax.types.Transition` with leaves ``[N, ...]`` in episode
      order (:meth:`wmjax.offline.Dataset.device`). The functions close over it.
    config: static settings.
    reward_scale: the factor applied to rewards when ``config.normalize_reward``; if None it is
      computed from ``data`` with episode ends inferred as the reference does
      (:func:`episode_ends`). Pass ``reward_scale_of(dataset)`` to use a dataset's recorded
      ends. Ignored (1.0) without ``normalize_reward``.

  Raises:
    ValueError: discrete actions or non-vector observations, a dataset whose shapes do not fit
      the env (:class:`~wmjax.offline.DatasetError`), or undefined reward scaling.
  """
  require_vector_continuous(env, "IQL")
  cfg = config
  n_rows = check_transitions(env, data, "IQL")
  obs_size, action_size = env.spec.obs_size, env.spec.action_size

  # Host-side statistics of the dataset, computed once.
  if not cfg.normalize_reward:
    reward_scale = 1.0
  elif reward_scale is None:
    ends = episode_ends(data.obs, data.next_obs, data.terminated)
    reward_scale = reward_scale_of(reward=np.asarray(data.reward), ends=ends,
                                   steps_per_episode=env.steps_per_episode)
  elif not (np.isfinite(reward_scale) and reward_scale > 0):
    raise ValueError(f"reward_scale must be a finite number > 0, got {reward_scale}")
  reward_scale = float(reward_scale)
  if cfg.normalize_obs:
    obs_np = np.asarray(data.obs, np.float64)
    obs_mean = obs_np.mean(axis=0).astype(np.float32)
    obs_std = (obs_np.std(axis=0) + _OBS_STD_EPS).astype(np.float32)
  else:
    obs_mean, obs_std = np.zeros(obs_size, np.float32), np.ones(obs_size, np.float32)
  data = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), data)

  value_net = MLP(tuple(cfg.hidden_sizes), 1, cfg.activation)
  critic_net = MLP(tuple(cfg.hidden_sizes), 1, cfg.activation)
  mean_net = MLP(tuple(cfg.hidden_sizes), action_size, cfg.activation)
  adam = optax.scale_by_adam()   # the learning rate is applied by hand: it comes from the hyper

  def init(key: Key, hyper: IQLHyper) -> IQLState:
    del hyper   # learning rates are read each update, not stored
    k_value, k_critic, k_actor, k_next = jax.random.split(_raw(key), 4)
    value = value_net.init(k_value, jnp.zeros((1, obs_size)))
    critic = jax.vmap(critic_net.init, in_axes=(0, None))(
        jax.random.split(k_critic, 2), jnp.zeros((1, obs_size + action_size)))
    actor = {"mean": mean_net.init(k_actor, jnp.zeros((1, obs_size))),
             "log_std": jnp.zeros((action_size,))}
    return IQLState(value=value, critic=critic, target_critic=critic, actor=actor,
                    value_opt=adam.init(value), critic_opt=adam.init(critic),
                    actor_opt=adam.init(actor), obs_mean=jnp.asarray(obs_mean),
                    obs_std=jnp.asarray(obs_std), updates=jnp.zeros((), jnp.int32), key=k_next)

  def normalize(state: IQLState, obs: Array) -> Array:
    return (obs - state.obs_mean) / state.obs_std

  def v_of(value, obs):
    return value_net.apply(value, obs)[..., 0]

  def q_of(critic, obs, action):
    x = jnp.concatenate([obs, action], axis=-1)
    return jax.vmap(lambda p: critic_net.apply(p, x)[..., 0])(critic)   # [2, ...]

  def actor_dist(actor, obs):
    """Mean ``tanh(MLP(obs))`` ``[..., A]`` and the clipped log std ``[A]``."""
    mean = jnp.tanh(mean_net.apply(actor["mean"], obs))
    return mean, jnp.clip(actor["log_std"], _LOG_STD_MIN, _LOG_STD_MAX)

  def adam_step(params, opt_state, grads, lr):
    updates, opt_state = adam.update(grads, opt_state, params)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state

  def actor_lr_at(hyper: IQLHyper, updates: Array) -> Array:
    if not cfg.actor_lr_decay_updates:
      return jnp.asarray(hyper.actor_lr, jnp.float32)
    progress = jnp.minimum(updates.astype(jnp.float32) / cfg.actor_lr_decay_updates, 1.0)
    return hyper.actor_lr * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

  def update(state: IQLState, batch: Transition, hyper: IQLHyper) -> tuple[IQLState, Metrics]:
    """One value, actor, critic and target step on ``batch`` (leaves ``[B, ...]``, raw: as in
    the dataset; observations are normalised and rewards scaled here)."""
    hyper = IQLHyper(*hyper)
    obs, next_obs = normalize(state, batch.obs), normalize(state, batch.next_obs)
    reward = batch.reward * reward_scale
    q_target = jnp.min(q_of(state.target_critic, obs, batch.action), axis=0)   # [B]

    def value_loss(value):
      v = v_of(value, obs)
      return jnp.mean(expectile_loss(q_target - v, hyper.expectile)), v

    (v_loss, v), v_grads = jax.value_and_grad(value_loss, has_aux=True)(state.value)
    value, value_opt = adam_step(state.value, state.value_opt, v_grads, hyper.value_lr)

    adv = q_target - v_of(value, obs)
    weight = jnp.minimum(jnp.exp(hyper.temperature * adv), hyper.max_weight)

    def actor_loss(actor):
      mean, log_std = actor_dist(actor, obs)
      z = (batch.action - mean) / jnp.exp(log_std)
      log_prob = jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)
      return -jnp.mean(weight * log_prob), log_prob

    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    actor_lr = actor_lr_at(hyper, state.updates)
    actor, actor_opt = adam_step(state.actor, state.actor_opt, a_grads, actor_lr)

    td_target = reward + hyper.discount * (1.0 - batch.terminated) * v_of(value, next_obs)

    def critic_loss(critic):
      q = q_of(critic, obs, batch.action)
      return jnp.mean(jnp.sum(jnp.square(q - td_target[None]), axis=0)), q

    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    critic, critic_opt = adam_step(state.critic, state.critic_opt, c_grads, hyper.critic_lr)
    target_critic = optax.incremental_update(critic, state.target_critic, hyper.tau)

    new = state._replace(value=value, critic=critic, target_critic=target_critic, actor=actor,
                         value_opt=value_opt, critic_opt=critic_opt, actor_opt=actor_opt,
                         updates=state.updates + 1)
    metrics = {"iql/value_loss": v_loss, "iql/critic_loss": c_loss, "iql/actor_loss": a_loss,
               "iql/q": jnp.mean(q), "iql/v": jnp.mean(v), "iql/adv": jnp.mean(adv),
               "iql/weight": jnp.mean(weight),
               "iql/weight_clipped": jnp.mean((weight >= hyper.max_weight).astype(jnp.float32)),
               "iql/log_prob": jnp.mean(log_prob),
               "iql/log_std": jnp.mean(jnp.clip(actor["log_std"], _LOG_STD_MIN, _LOG_STD_MAX)),
               "iql/actor_lr": actor_lr}
    return new, metrics

  def sample_batch(key: Key) -> Transition:
    rows = jax.random.randint(key, (cfg.batch_size,), 0, n_rows)
    return jax.tree.map(lambda x: x[rows], data)

  def train_iteration(state: IQLState, hyper: IQLHyper) -> tuple[IQLState, Metrics]:
    """``updates_per_iteration`` updates in one scan; metrics are their means."""
    k_updates, k_next = jax.random.split(state.key)

    def one_update(s, k):
      return update(s, sample_batch(k), hyper)

    state, metrics = jax.lax.scan(one_update, state._replace(key=k_next),
                                  jax.random.split(k_updates, cfg.updates_per_iteration))
    return state, jax.tree.map(jnp.mean, metrics)

  def policy_init(state: IQLState, hyper, key):
    del state, hyper, key
    return ()

  def policy_act(state: IQLState, hyper, carry, obs, key, deterministic: bool = True):
    """The action for one observation ``[O]``: the Gaussian's mean (deterministic) or a sample
    clipped to ``[-1, 1]`` (the reference's ``sample_actions``)."""
    del hyper
    mean, log_std = actor_dist(state.actor, normalize(state, obs))
    if deterministic:
      return carry, mean
    noise = jax.random.normal(_raw(key), mean.shape)
    return carry, jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)

  policy = Policy(policy_init, policy_act)

  def evaluate(state: IQLState, key: Key, hyper) -> Episodes:
    """``eval_episodes`` episodes of the deterministic (mean) policy in the real env, vmapped
    (:func:`wmjax.rl.rollout.policy_episodes`)."""
    return policy_episodes(env, policy, state, hyper, _raw(key), cfg.eval_episodes)

  return IQL(config=cfg, init=init, train_iteration=train_iteration, evaluate=evaluate,
             policy=policy, update=update, reward_scale=reward_scale)
