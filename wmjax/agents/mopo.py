"""Offline model-based RL from a fixed dataset: MOPO (Yu et al. 2020) and MOReL (Kidambi et al.
2020), on one core.

Both learn the PETS probabilistic ensemble (:mod:`wmjax.models.ensemble`) on the dataset and then
train a SAC learner (:mod:`wmjax.agents.sac`) on short model rollouts branched from dataset
states, mixed with dataset transitions, as MBPO does online (:mod:`wmjax.agents.mbpo`), but with no
new interaction. They differ in how they stay pessimistic where the model is unsure:

- **MOPO** penalises the reward, ``r - lambda * u(s, a)``, with ``u`` the largest norm over the
  elite members of the predicted standard deviation (next observation and reward, raw units):
  the paper's "max aleatoric" estimator. ``lambda`` is ``MOPOHyper.penalty_coef``.
- **MOReL** builds a pessimistic MDP: where the elites' disagreement ``d(s, a)`` (the largest
  distance between two members' predicted next observations) exceeds ``threshold * d_ref``, the
  rollout halts: the step's reward becomes ``r_min - halt_penalty * (r_max - r_min)`` (the
  dataset's reward range) and the state is terminal. ``d_ref`` is the largest disagreement over
  a sample of dataset pairs, measured on the fitted model, so ``threshold`` is in its units
  (1: halt beyond anything the dataset shows). The paper trains its policy in that MDP with NPG;
  here it is SAC, as in MOPO, so the two differ only in the pessimism.

A run is two phases of the one driver: ``model`` (``model_updates`` gradient steps of the ensemble
on the dataset, in iterations of ``model_steps_per_iteration``; no evaluation) and ``policy``
(per iteration, ``rollout_batch`` rollouts of ``rollout_length`` steps into a ring that keeps
``model_retain_iterations`` iterations of them, then ``updates_per_iteration`` SAC updates on
batches that are ``real_ratio`` dataset rows and the rest model rows).

Terminal states: with ``learn_termination`` (``auto``: when the dataset has terminated rows) a
classifier of next observations (:mod:`wmjax.models.termination`) is fit beside the ensemble and
ends model rollouts where it calls a state terminal; the rows after a rollout's end are not
written, so the buffer holds only live transitions.

The dataset (a :class:`~wmjax.types.Transition` of device arrays) is closed over, not part of
the state: every vmapped run (seeds, penalties) shares one copy and checkpoints never hold it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax.agents import sac as sac_lib
from wmjax.agents.base import Policy, SharedPart, require_vector_continuous
from wmjax.agents.base import raw_key as _raw
from wmjax.models import ensemble as ensemble_lib
from wmjax.models.termination import make_termination
from wmjax.offline.dataset import check_transitions
from wmjax.replay.transitions import RingBuffer, add_batch, init_ring, sample_rows
from wmjax.rl.rollout import Episodes, policy_episodes
from wmjax.types import Array, Key, Metrics, Transition

__all__ = ["OfflineModelConfig", "MOPOConfig", "MOPOHyper", "MOReLConfig", "MOReLHyper",
           "OfflineModelState", "OfflineModelAgent", "make_mopo", "make_morel"]

_REF_ROWS = 4096   # dataset pairs on which the reference uncertainty is measured


@dataclasses.dataclass(frozen=True)
class OfflineModelConfig:
  """Static settings shared by MOPO and MOReL: they fix shapes and so decide compilation."""

  dataset: str = ""                    # the dataset folder (``--dataset``)
  action_repeat: int = 1               # must match the dataset's
  episode_length: int | None = None    # env steps per evaluation episode; the env's if None
  # Model (probabilistic ensemble, as PETS and MBPO).
  ensemble_size: int = 7
  num_elites: int = 5
  hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
  activation: str = "silu"
  model_batch_size: int = 256
  model_updates: int = 20_000          # ensemble gradient steps on the dataset (phase ``model``)
  model_steps_per_iteration: int = 1000
  holdout_fraction: float = 0.1
  nll_beta: float = 0.0                # 0: the plain Gaussian NLL, whose variance MOPO penalises
  learn_termination: str = "auto"      # auto (if the dataset has terminal rows) | on | off
  termination_hidden_sizes: tuple[int, ...] = (64, 64)
  # Model rollouts.
  rollout_batch: int = 10_000          # rollouts branched from dataset states per iteration
  rollout_length: int = 5              # model steps per rollout (h)
  model_retain_iterations: int = 5     # the model ring keeps this many iterations of rollouts
  # SAC learner (phase ``policy``).
  sac_hidden_sizes: tuple[int, ...] = (256, 256)
  sac_batch_size: int = 256
  sac_initial_alpha: float = 1.0
  sac_critic_layer_norm: bool = False  # LayerNorm in the critics, against Q divergence (sac.py)
  updates_per_iteration: int = 1000    # SAC updates per policy iteration
  real_ratio: float = 0.05             # fraction of each SAC batch from the dataset
  # Evaluation (driver), in the real env.
  eval_every: int = 5                  # policy iterations between evaluations; 0: only the end
  eval_episodes: int = 10

  def __post_init__(self):
    for name in ("action_repeat", "ensemble_size", "num_elites", "model_batch_size",
                 "model_updates", "model_steps_per_iteration", "rollout_batch",
                 "rollout_length", "model_retain_iterations", "sac_batch_size",
                 "updates_per_iteration", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
    if self.num_elites > self.ensemble_size:
      raise ValueError(f"num_elites ({self.num_elites}) > ensemble_size ({self.ensemble_size})")
    if not 0.0 <= self.real_ratio <= 1.0:
      raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
    if self.learn_termination not in ("auto", "on", "off"):
      raise ValueError(f"learn_termination must be auto, on or off, got "
                       f"{self.learn_termination!r}")
    if self.eval_every < 0:
      raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")

  @property
  def model_iterations(self) -> int:
    return -(-self.model_updates // self.model_steps_per_iteration)

  @property
  def real_per_batch(self) -> int:
    return int(round(self.real_ratio * self.sac_batch_size))

  @property
  def model_capacity(self) -> int:
    return self.rollout_batch * self.rollout_length * self.model_retain_iterations


@dataclasses.dataclass(frozen=True)
class MOPOConfig(OfflineModelConfig):
  """MOPO: the reward penalised by the ensemble's largest predicted standard deviation."""


@dataclasses.dataclass(frozen=True)
class MOReLConfig(OfflineModelConfig):
  """MOReL: rollouts halt (terminal, with a low reward) where the ensemble disagrees."""


class MOPOHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so seeds and sweeps over lambda vmap."""

  penalty_coef: Array | float = 1.0   # lambda: r - lambda * u(s, a)
  sac_lr: Array | float = 3e-4
  discount: Array | float = 0.99
  tau: Array | float = 0.005
  model_lr: Array | float = 1e-3
  weight_decay: Array | float = 5e-5


class MOReLHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so seeds and sweeps over the threshold vmap."""

  threshold: Array | float = 1.0      # halt where d(s, a) > threshold * d_ref
  halt_penalty: Array | float = 10.0  # halt reward: r_min - halt_penalty * (r_max - r_min)
  sac_lr: Array | float = 3e-4
  discount: Array | float = 0.99
  tau: Array | float = 0.005
  model_lr: Array | float = 1e-3
  weight_decay: Array | float = 5e-5


class OfflineModelState(NamedTuple):
  model: ensemble_lib.EnsembleState
  termination: Any        # TerminationState, or () without a learned termination
  sac: sac_lib.SACState
  imagined: RingBuffer
  uncertainty_ref: Array  # [] largest uncertainty over a sample of dataset pairs (last fit)
  key: Key                # raw uint32 key
  model_updates: Array    # int32: ensemble gradient steps so far
  iteration: Array        # int32: policy iterations so far


class OfflineModelAgent(NamedTuple):
  config: OfflineModelConfig
  init: Any               # (key, hyper) -> OfflineModelState
  model_iteration: Any    # (state, hyper) -> (state, metrics): one refit block
  policy_iteration: Any   # (state, hyper) -> (state, metrics): rollouts + SAC updates
  evaluate: Any           # (state, key, hyper) -> returns [eval_episodes]
  policy: Policy
  ensemble: ensemble_lib.Ensemble
  sac: sac_lib.SAC
  learns_termination: bool
  uncertainty: Any        # (state, obs [N, O], action [N, A]) -> u [N] (this agent's estimator)
  # The model phase reads only the model's part of the state and no hyperparameter but the
  # model's own: runs of one seed that differ in the penalty (or SAC's settings) fit one model.
  model_phase_shared: SharedPart


def make_mopo(env, data: Transition, config: MOPOConfig) -> OfflineModelAgent:
  """MOPO for a registered env (continuous actions, vector observations) and its dataset."""
  return _make(env, data, config, "mopo")


def make_morel(env, data: Transition, config: MOReLConfig) -> OfflineModelAgent:
  """MOReL for a registered env (continuous actions, vector observations) and its dataset."""
  return _make(env, data, config, "morel")


def _make(env, data: Transition, config: OfflineModelConfig, kind: str) -> OfflineModelAgent:
  who = "MOPO" if kind == "mopo" else "MOReL"
  require_vector_continuous(env, f"{who}'s SAC learner")
  check_transitions(env, data, who)
  cfg = config
  spec = env.spec
  obs_size, action_size = spec.obs_size, spec.action_size
  n_data = int(data.reward.shape[0])
  has_terminal = bool(jnp.any(data.terminated > 0))
  learns_termination = (cfg.learn_termination == "on"
                        or (cfg.learn_termination == "auto" and has_terminal))
  ensemble = ensemble_lib.make_ensemble(ensemble_lib.EnsembleConfig(
      obs_size=obs_size, action_size=action_size, ensemble_size=cfg.ensemble_size,
      num_elites=cfg.num_elites, hidden_sizes=tuple(cfg.hidden_sizes), activation=cfg.activation,
      learn_reward=True, batch_size=cfg.model_batch_size,
      train_steps=cfg.model_steps_per_iteration, holdout_fraction=cfg.holdout_fraction,
      nll_beta=cfg.nll_beta))
  termination = (make_termination(obs_size, tuple(cfg.termination_hidden_sizes), cfg.activation,
                                  cfg.model_batch_size, cfg.model_steps_per_iteration)
                 if learns_termination else None)
  sac = sac_lib.make_sac(obs_size, action_size, sac_lib.config_from(cfg))
  reward_lo = jnp.min(data.reward)
  reward_range = jnp.maximum(jnp.max(data.reward) - reward_lo, 1e-6)
  hyper_cls = MOPOHyper if kind == "mopo" else MOReLHyper

  def uncertainty(model, obs, action):
    """``u [N]``: MOPO's max aleatoric std norm, or MOReL's max pairwise disagreement."""
    return uncertainty_of(model, *ensemble.predict(model, obs, action))

  def uncertainty_of(model, mean, logvar):
    """:func:`uncertainty` from every member's prediction ``[E, N, O + 1]``."""
    mean, logvar = mean[model.elite_idx], logvar[model.elite_idx]   # [K, N, O + 1]
    if kind == "mopo":
      return jnp.max(jnp.linalg.norm(jnp.exp(0.5 * logvar), axis=-1), axis=0)
    nxt = mean[..., :obs_size]
    gaps = jnp.linalg.norm(nxt[:, None] - nxt[None, :], axis=-1)     # [K, K, N]
    return jnp.max(gaps, axis=(0, 1))

  def init(key, hyper) -> OfflineModelState:
    hyper = hyper_cls(*hyper)
    k_model, k_term, k_sac, k_next = jax.random.split(_raw(key), 4)
    model = ensemble.init(k_model, learning_rate=hyper.model_lr,
                          weight_decay=hyper.weight_decay)
    term = termination.init(k_term) if termination is not None else ()
    return OfflineModelState(
        model=model, termination=term, sac=sac.init(k_sac, hyper.sac_lr),
        imagined=init_ring(spec.obs_shape, spec.action_shape, cfg.model_capacity),
        uncertainty_ref=jnp.zeros(()), key=k_next, model_updates=jnp.zeros((), jnp.int32),
        iteration=jnp.zeros((), jnp.int32))

  def model_iteration(state: OfflineModelState, hyper) -> tuple[OfflineModelState, Metrics]:
    k_fit, k_term, k_ref, k_next = jax.random.split(state.key, 4)
    model, metrics = ensemble.fit(state.model, k_fit, data, n_data)
    term = state.termination
    if termination is not None:
      term, term_metrics = termination.fit(term, k_term, data, n_data)
      metrics = {**metrics, **term_metrics}
    rows = jax.random.randint(k_ref, (min(_REF_ROWS, n_data),), 0, n_data)
    u = uncertainty(model, data.obs[rows], data.action[rows])
    metrics = {**metrics, f"{kind}/dataset_uncertainty_mean": jnp.mean(u),
               f"{kind}/dataset_uncertainty_max": jnp.max(u)}
    new = state._replace(model=model, termination=term, uncertainty_ref=jnp.max(u), key=k_next,
                         model_updates=state.model_updates + cfg.model_steps_per_iteration)
    return new, metrics

  def terminal(term_state, next_obs):
    if termination is None:
      return jnp.zeros(next_obs.shape[:-1], bool)
    return termination.logit(term_state, next_obs) > 0

  def rollouts(state: OfflineModelState, hyper, key) -> tuple[RingBuffer, Metrics]:
    model = state.model
    k_start, k_steps = jax.random.split(key)
    n = cfg.rollout_batch
    obs = data.obs[jax.random.randint(k_start, (n,), 0, n_data)]
    lo, hi = model.normalizer.target_min[-1], model.normalizer.target_max[-1]

    def step(carry, k):
      obs, alive = carry
      k_act, k_member, k_noise = jax.random.split(k, 3)
      action = sac.act(state.sac.actor, k_act, obs)
      mean, logvar = ensemble.predict(model, obs, action)                # [E, N, O + 1]
      member = model.elite_idx[jax.random.randint(k_member, (n,), 0, cfg.num_elites)]
      rows = jnp.arange(n)
      m, lv = mean[member, rows], logvar[member, rows]                   # [N, O + 1]
      sample = m + jnp.exp(0.5 * lv) * jax.random.normal(k_noise, m.shape)
      next_obs = sample[:, :obs_size]
      reward = jnp.clip(sample[:, obs_size], lo, hi)
      u = uncertainty_of(model, mean, logvar)   # the prediction above, not a second one
      done = terminal(state.termination, next_obs)
      if kind == "mopo":
        reward = reward - hyper.penalty_coef * u
        halted = jnp.zeros_like(done)
      else:
        halted = u > hyper.threshold * state.uncertainty_ref
        halt_reward = reward_lo - hyper.halt_penalty * reward_range
        reward = jnp.where(halted, halt_reward, reward)
      ended = done | halted
      transition = Transition(obs=obs, action=action, reward=reward, next_obs=next_obs,
                              terminated=ended.astype(jnp.float32))
      return (next_obs, alive & ~ended), (transition, alive, u, halted, done)

    init_carry = (obs, jnp.ones(n, bool))
    _, (seq, alive, u, halted, done) = jax.lax.scan(
        step, init_carry, jax.random.split(k_steps, cfg.rollout_length))
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), seq)   # [h * N, ...]
    valid = alive.reshape(-1)             # a row is live if its rollout had not ended before it
    keep = min(flat.reward.shape[0], state.imagined.data.reward.shape[0])
    flat = jax.tree.map(lambda x: x[-keep:], flat)
    live = alive.astype(jnp.float32)
    metrics = {"model/rollout_reward": jnp.sum(seq.reward * live) / jnp.sum(live),
               "model/rollout_live": jnp.mean(live),
               "model/rollout_terminal": jnp.sum(done * live) / jnp.sum(live),
               f"{kind}/uncertainty": jnp.sum(u * live) / jnp.sum(live)}
    if kind == "morel":
      metrics["morel/halted"] = jnp.sum(halted * live) / jnp.sum(live)
    return add_batch(state.imagined, flat, valid[-keep:]), metrics

  def sac_batch(imagined: RingBuffer, key) -> Transition:
    k_real, k_model = jax.random.split(key)
    n_real = cfg.real_per_batch
    parts = []
    if n_real:
      rows = jax.random.randint(k_real, (n_real,), 0, n_data)
      parts.append(jax.tree.map(lambda x: x[rows], data))
    if cfg.sac_batch_size - n_real:
      parts.append(sample_rows(imagined, k_model, cfg.sac_batch_size - n_real))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *parts)

  def policy_iteration(state: OfflineModelState, hyper) -> tuple[OfflineModelState, Metrics]:
    hyper = hyper_cls(*hyper)
    k_roll, k_upd, k_next = jax.random.split(state.key, 3)
    imagined, roll_metrics = rollouts(state, hyper, k_roll)

    def one_update(s, k):
      k_batch, k_sac = jax.random.split(k)
      return sac.update(s, k_sac, sac_batch(imagined, k_batch), hyper.discount, hyper.tau,
                        hyper.sac_lr)

    sac_state, sac_metrics = jax.lax.scan(one_update, state.sac,
                                          jax.random.split(k_upd, cfg.updates_per_iteration))
    new = state._replace(sac=sac_state, imagined=imagined, key=k_next,
                         iteration=state.iteration + 1)
    return new, {**roll_metrics, **jax.tree.map(jnp.mean, sac_metrics)}

  def policy_init(state, hyper, key):
    return ()

  def policy_act(state, hyper, carry, obs, key, deterministic: bool = True):
    return carry, sac.act(state.sac.actor, _raw(key), obs, deterministic=deterministic)

  policy = Policy(policy_init, policy_act)

  def evaluate(state, key, hyper=None) -> Episodes:
    """``eval_episodes`` real episodes with the deterministic (mean) policy."""
    return policy_episodes(env, policy, state, None, _raw(key), cfg.eval_episodes)

  def model_part(state: OfflineModelState):
    return (state.model, state.termination, state.uncertainty_ref, state.key,
            state.model_updates)

  def put_model_part(state: OfflineModelState, part) -> OfflineModelState:
    model, term, ref, key, updates = part
    return state._replace(model=model, termination=term, uncertainty_ref=ref, key=key,
                          model_updates=updates)

  shared = SharedPart(("model_lr", "weight_decay"), model_part, put_model_part)
  return OfflineModelAgent(config=cfg, init=init, model_iteration=model_iteration,
                           policy_iteration=policy_iteration, evaluate=evaluate, policy=policy,
                           ensemble=ensemble, sac=sac, learns_termination=learns_termination,
                           uncertainty=uncertainty, model_phase_shared=shared)
