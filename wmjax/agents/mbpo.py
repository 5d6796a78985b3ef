"""MBPO (Janner et al. 2019): deep Dyna with a probabilistic ensemble and a SAC learner.

Every training iteration, in one jitted program:

1. refit the PETS ensemble (``wmjax.models.ensemble``) on all real transitions;
2. branch ``rollout_batch`` short model rollouts (``rollout_length`` steps, a random elite member
   per row and step, Gaussian samples) from replayed real states with the current policy, and
   add them to the model buffer (a ring that keeps the last ``model_retain_iterations``
   iterations of rollouts);
3. ``steps_per_iteration`` real env steps with the SAC policy; after each,
   ``updates_per_step`` SAC updates on batches that are ``real_ratio`` real data and the rest
   model data.

The ensemble predicts the next observation and the reward. By default model rollouts never
terminate, which suits tasks without terminal states (DM Control, brax halfcheetah, ...). For
tasks that end episodes (hopper, walker, ant), ``learn_termination`` fits a classifier of next
observations (:mod:`wmjax.models.termination`) on the real data with every refit, and model
rollouts end where it calls a state terminal (the transition is stored as terminal; the steps
after it are not stored): the learned counterpart of the paper's known termination function
per task. An env that reports a terminal state without it is flagged in the metrics
(``train/terminations``) and the runner warns.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax.agents import sac as sac_lib
from wmjax.agents.base import Policy, require_vector_continuous
from wmjax.agents.base import raw_key as _raw
from wmjax.models import ensemble as ensemble_lib
from wmjax.models.termination import make_termination
from wmjax.replay.transitions import RingBuffer, add_batch, init_ring, sample_rows
from wmjax.rl.rollout import Episodes, policy_episodes
from wmjax.types import Array, Key, Metrics, Transition

__all__ = ["MBPOConfig", "MBPOHyper", "MBPOState", "MBPOTerminationState", "MBPO", "make_mbpo",
           "termination_of"]


@dataclasses.dataclass(frozen=True)
class MBPOConfig:
  """Static settings of an MBPO run: they fix shapes and so decide compilation."""

  # Environment and schedule.
  action_repeat: int = 1
  episode_length: int | None = None    # env steps per episode; the env's default if None
  num_envs: int = 1                    # parallel real envs
  steps_per_iteration: int = 250       # agent steps per env between model refits
  prefill_steps: int = 5000            # random-action agent steps (all envs) before learning
  # Model (probabilistic ensemble, as PETS).
  ensemble_size: int = 7
  num_elites: int = 5
  hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
  activation: str = "silu"
  model_batch_size: int = 256
  model_train_steps: int = 200         # gradient steps per refit (one refit per iteration)
  holdout_fraction: float = 0.1
  nll_beta: float = 0.5                # beta-NLL (see ensemble.py): 0 is the plain Gaussian NLL
  learn_termination: bool = False      # end model rollouts at learned terminal states
  termination_hidden_sizes: tuple[int, ...] = (64, 64)
  # Branched rollouts.
  rollout_batch: int = 10_000          # rollouts started per iteration
  rollout_length: int = 1              # model steps per rollout (k)
  model_retain_iterations: int = 5     # model buffer keeps this many iterations of rollouts
  # SAC learner.
  sac_hidden_sizes: tuple[int, ...] = (256, 256)
  sac_batch_size: int = 256
  sac_initial_alpha: float = 0.1       # entropy temperature at the start (then learned)
  sac_critic_layer_norm: bool = False  # LayerNorm in the critics, against Q divergence (sac.py)
  updates_per_step: int = 10           # SAC updates per agent step (G), per env
  real_ratio: float = 0.05             # fraction of each SAC batch from real data
  # Evaluation (driver).
  eval_every: int = 4                  # iterations between evaluations; 0: only at the end
  eval_episodes: int = 4

  def __post_init__(self):
    for name in ("action_repeat", "num_envs", "steps_per_iteration", "ensemble_size",
                 "num_elites", "model_batch_size", "model_train_steps", "rollout_batch",
                 "rollout_length", "model_retain_iterations", "sac_batch_size",
                 "updates_per_step", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"MBPOConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.prefill_steps < self.num_envs:
      raise ValueError(f"prefill_steps ({self.prefill_steps}) must be at least num_envs "
                       f"({self.num_envs}): the first model fit needs real data")
    if self.num_elites > self.ensemble_size:
      raise ValueError(f"num_elites ({self.num_elites}) > ensemble_size ({self.ensemble_size})")
    if not 0.0 <= self.real_ratio <= 1.0:
      raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
    if self.eval_every < 0:
      raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")

  @property
  def real_per_batch(self) -> int:
    return int(round(self.real_ratio * self.sac_batch_size))

  @property
  def model_capacity(self) -> int:
    return self.rollout_batch * self.rollout_length * self.model_retain_iterations


class MBPOHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so seeds and sweeps vmap over them."""

  sac_lr: Array | float = 3e-4
  discount: Array | float = 0.99
  tau: Array | float = 0.005
  model_lr: Array | float = 1e-3
  weight_decay: Array | float = 5e-5


class MBPOState(NamedTuple):
  model: ensemble_lib.EnsembleState
  sac: sac_lib.SACState
  real: RingBuffer
  imagined: RingBuffer
  env_state: Any           # [num_envs] brax states
  episode_return: Array    # [num_envs] running return of the current episodes
  key: Key                 # raw uint32 key
  agent_steps: Array       # int32: real agent steps so far (all envs, prefill included)
  iteration: Array         # int32


class MBPOTerminationState(NamedTuple):
  """:class:`MBPOState` plus the terminal-state classifier (``learn_termination``). A class of
  its own so that runs without it keep the state, and the checkpoints, they always had."""

  model: ensemble_lib.EnsembleState
  sac: sac_lib.SACState
  real: RingBuffer
  imagined: RingBuffer
  env_state: Any
  episode_return: Array
  key: Key
  agent_steps: Array
  iteration: Array
  termination: Any         # TerminationState


def _make_state(termination, **fields) -> MBPOState | MBPOTerminationState:
  if termination is None or (isinstance(termination, tuple) and not termination):
    return MBPOState(**fields)
  return MBPOTerminationState(termination=termination, **fields)


def termination_of(state) -> Any:
  """The classifier's state of an MBPO state, or ``()`` without ``learn_termination``."""
  return getattr(state, "termination", ())


class MBPO(NamedTuple):
  config: MBPOConfig
  init: Any              # (key, hyper) -> MBPOState  (random prefill included)
  train_iteration: Any   # (state, hyper) -> (state, metrics)
  evaluate: Any          # (state, key) -> returns [eval_episodes] (deterministic policy)
  ensemble: ensemble_lib.Ensemble
  sac: sac_lib.SAC
  policy: Policy         # acting with a state's actor (wmjax.load)


def make_mbpo(env, config: MBPOConfig, total_steps: int) -> MBPO:
  """Builds MBPO for a registered env with continuous actions and vector observations.

  Args:
    env: a :class:`wmjax.envs.RegisteredEnv` (made with ``config.action_repeat``).
    config: static settings.
    total_steps: agent steps of real data the run will collect (sizes the real buffer).
  """
  spec = env.spec
  require_vector_continuous(env, "MBPO's SAC learner")
  cfg = config
  obs_size, action_size = spec.obs_size, spec.action_size
  ensemble = ensemble_lib.make_ensemble(ensemble_lib.EnsembleConfig(
      obs_size=obs_size, action_size=action_size, ensemble_size=cfg.ensemble_size,
      num_elites=cfg.num_elites, hidden_sizes=tuple(cfg.hidden_sizes), activation=cfg.activation,
      learn_reward=True, batch_size=cfg.model_batch_size, train_steps=cfg.model_train_steps,
      holdout_fraction=cfg.holdout_fraction, nll_beta=cfg.nll_beta))
  sac = sac_lib.make_sac(obs_size, action_size, sac_lib.config_from(cfg))
  termination = (make_termination(obs_size, tuple(cfg.termination_hidden_sizes), cfg.activation,
                                  cfg.model_batch_size, cfg.model_train_steps)
                 if cfg.learn_termination else None)
  n_envs = cfg.num_envs
  prefill_iters = -(-cfg.prefill_steps // n_envs)
  real_capacity = total_steps + (prefill_iters + cfg.steps_per_iteration) * n_envs

  def env_step(env_state, ep_return, action, key):
    """Steps every env; finished ones restart. Returns transitions and finished returns."""
    next_state = jax.vmap(env.step)(env_state, action)
    transition = Transition(obs=env_state.obs, action=action, reward=next_state.reward,
                            next_obs=next_state.obs, terminated=next_state.info["terminated"])
    ep_return = ep_return + next_state.reward
    done = next_state.done > 0
    finished = jnp.where(done, ep_return, jnp.nan)
    fresh = jax.vmap(env.reset)(jax.random.split(key, n_envs))
    env_state = jax.tree.map(
        lambda f, s: jnp.where(done.reshape(done.shape + (1,) * (s.ndim - 1)), f, s),
        fresh, next_state)
    return env_state, jnp.where(done, 0.0, ep_return), transition, finished

  def init(key, hyper: MBPOHyper) -> MBPOState:
    hyper = MBPOHyper(*hyper)
    key = _raw(key)
    k_model, k_sac, k_env, k_prefill, k_next = jax.random.split(key, 5)
    model = ensemble.init(k_model, learning_rate=hyper.model_lr,
                          weight_decay=hyper.weight_decay)
    sac_state = sac.init(k_sac, hyper.sac_lr)
    real = init_ring(spec.obs_shape, spec.action_shape, real_capacity)
    imagined = init_ring(spec.obs_shape, spec.action_shape, cfg.model_capacity)
    env_state = jax.vmap(env.reset)(jax.random.split(k_env, n_envs))

    def prefill(carry, k):
      env_state, ep_return, real = carry
      k_act, k_reset = jax.random.split(k)
      action = jax.random.uniform(k_act, (n_envs, action_size), minval=-1.0, maxval=1.0)
      env_state, ep_return, transition, _ = env_step(env_state, ep_return, action, k_reset)
      return (env_state, ep_return, add_batch(real, transition)), None

    (env_state, ep_return, real), _ = jax.lax.scan(
        prefill, (env_state, jnp.zeros(n_envs), real), jax.random.split(k_prefill, prefill_iters))
    term = termination.init(jax.random.fold_in(k_model, 1)) if termination is not None else ()
    return _make_state(term, model=model, sac=sac_state, real=real, imagined=imagined,
                       env_state=env_state, episode_return=ep_return, key=k_next,
                       agent_steps=jnp.asarray(prefill_iters * n_envs, jnp.int32),
                       iteration=jnp.zeros((), jnp.int32))

  def branch_rollouts(model, term, actor, imagined: RingBuffer, real: RingBuffer, key) -> tuple[
      RingBuffer, Metrics]:
    k_start, k_steps = jax.random.split(key)
    obs = sample_rows(real, k_start, cfg.rollout_batch).obs
    lo, hi = model.normalizer.target_min[-1], model.normalizer.target_max[-1]

    def step(carry, k):
      obs, alive = carry
      k_act, k_member, k_noise = jax.random.split(k, 3)
      action = sac.act(actor, k_act, obs)
      mean, logvar = ensemble.predict(model, obs, action)                # [E, N, O + 1]
      member = model.elite_idx[jax.random.randint(k_member, (cfg.rollout_batch,), 0,
                                                  cfg.num_elites)]
      rows = jnp.arange(cfg.rollout_batch)
      mean, logvar = mean[member, rows], logvar[member, rows]            # [N, O + 1]
      sample = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_noise, mean.shape)
      next_obs = sample[:, :obs_size]
      reward = jnp.clip(sample[:, obs_size], lo, hi)
      done = (termination.logit(term, next_obs) > 0 if termination is not None
              else jnp.zeros(reward.shape, bool))
      transition = Transition(obs=obs, action=action, reward=reward, next_obs=next_obs,
                              terminated=done.astype(jnp.float32))
      return (next_obs, alive & ~done), (transition, alive)

    _, (seq, alive) = jax.lax.scan(step, (obs, jnp.ones(cfg.rollout_batch, bool)),
                                   jax.random.split(k_steps, cfg.rollout_length))
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), seq)   # [k * N, ...]
    valid = alive.reshape(-1)   # steps after a rollout's (learned) terminal state are not kept
    # The ring takes at most its capacity per write: keep the newest rows if k * N exceeds it.
    keep = min(flat.reward.shape[0], imagined.data.reward.shape[0])
    flat = jax.tree.map(lambda x: x[-keep:], flat)
    live = alive.astype(jnp.float32)
    metrics = {"model/rollout_reward": jnp.sum(seq.reward * live) / jnp.sum(live)}
    if termination is not None:
      metrics["model/rollout_terminal"] = jnp.sum(seq.terminated * live) / jnp.sum(live)
    return add_batch(imagined, flat, valid[-keep:]), metrics

  def sac_batch(real: RingBuffer, imagined: RingBuffer, key) -> Transition:
    k_real, k_model = jax.random.split(key)
    n_real = cfg.real_per_batch
    n_model = cfg.sac_batch_size - n_real
    parts = []
    if n_real:
      parts.append(sample_rows(real, k_real, n_real))
    if n_model:
      parts.append(sample_rows(imagined, k_model, n_model))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *parts)

  def train_iteration(state: MBPOState, hyper: MBPOHyper) -> tuple[MBPOState, Metrics]:
    hyper = MBPOHyper(*hyper)
    k_fit, k_roll, k_steps, k_next = jax.random.split(state.key, 4)
    model, fit_metrics = ensemble.fit(state.model, k_fit, state.real.data, state.real.size)
    term = termination_of(state)
    if termination is not None:
      term, term_metrics = termination.fit(term, jax.random.fold_in(k_fit, 1), state.real.data,
                                           state.real.size)
      fit_metrics = {**fit_metrics, **term_metrics}
    imagined, roll_metrics = branch_rollouts(model, term, state.sac.actor, state.imagined,
                                             state.real, k_roll)
    updates = cfg.updates_per_step * n_envs

    def env_and_updates(carry, k):
      sac_state, env_state, ep_return, real = carry
      k_act, k_reset, k_upd = jax.random.split(k, 3)
      action = sac.act(sac_state.actor, k_act, env_state.obs)
      env_state, ep_return, transition, finished = env_step(env_state, ep_return, action,
                                                            k_reset)
      real = add_batch(real, transition)

      def one_update(s, ku):
        k_batch, k_sac = jax.random.split(ku)
        batch = sac_batch(real, imagined, k_batch)
        return sac.update(s, k_sac, batch, hyper.discount, hyper.tau, hyper.sac_lr)

      sac_state, sac_metrics = jax.lax.scan(one_update, sac_state,
                                            jax.random.split(k_upd, updates))
      sac_metrics = jax.tree.map(jnp.mean, sac_metrics)
      return (sac_state, env_state, ep_return, real), (finished, transition.terminated,
                                                       sac_metrics)

    carry = (state.sac, state.env_state, state.episode_return, state.real)
    (sac_state, env_state, ep_return, real), (finished, terminated, sac_metrics) = jax.lax.scan(
        env_and_updates, carry, jax.random.split(k_steps, cfg.steps_per_iteration))
    n_finished = jnp.sum(jnp.isfinite(finished))
    metrics = {
        "train/episode_return": jnp.where(
            n_finished > 0, jnp.nansum(finished) / jnp.maximum(n_finished, 1), jnp.nan),
        "train/episodes": n_finished,
        "train/terminations": jnp.sum(terminated),
        **fit_metrics, **roll_metrics, **jax.tree.map(jnp.mean, sac_metrics),
    }
    new_state = _make_state(term, model=model, sac=sac_state, real=real, imagined=imagined,
                            env_state=env_state, episode_return=ep_return, key=k_next,
                            agent_steps=state.agent_steps + cfg.steps_per_iteration * n_envs,
                            iteration=state.iteration + 1)
    return new_state, metrics

  def policy_init(state: MBPOState, hyper, key):
    return ()

  def policy_act(state: MBPOState, hyper, carry, obs, key, deterministic: bool = True):
    """SAC's action for one observation: the mean (deterministic) or a sample."""
    return carry, sac.act(state.sac.actor, _raw(key), obs, deterministic=deterministic)

  policy = Policy(policy_init, policy_act)

  def evaluate(state: MBPOState, key) -> Episodes:
    """``eval_episodes`` episodes with the deterministic (mean) policy, vmapped
    (:func:`wmjax.rl.rollout.policy_episodes`)."""
    return policy_episodes(env, policy, state, None, _raw(key), cfg.eval_episodes)

  return MBPO(config=cfg, init=init, train_iteration=train_iteration, evaluate=evaluate,
              ensemble=ensemble, sac=sac, policy=policy)
