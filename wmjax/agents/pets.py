"""PETS (Chua et al. 2018): probabilistic ensemble, trajectory sampling, model-predictive control.

One training iteration is one episode: plan every action with the learned model inside a
``lax.scan`` over env steps (planning and env stepping fused in one program), append the episode
to the data, refit the ensemble on all data (every episode, or every ``train_every`` steps inside
the episode). ``make_pets(env, config)`` gives pure functions; ``train(key, hyper)`` is the whole
run and vmaps over seeds and hyperparameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax import planners as planners_lib
from wmjax.models import ensemble as ensemble_lib
from wmjax.models import propagation
from wmjax.replay import TransitionBuffer, add_sequence, init_buffer
from wmjax.types import Array, Key, Metrics, Transition

__all__ = ["PETSConfig", "PETSHyper", "PETSState", "PETS", "make_pets"]


@dataclasses.dataclass(frozen=True)
class PETSConfig:
  """Static settings of a PETS run: they fix shapes and so decide compilation."""

  # Environment.
  action_repeat: int = 1            # env steps per agent step (rewards summed)
  episode_length: int | None = None  # env steps per episode; the env's default if None
  # Data and schedule.
  initial_episodes: int = 1         # random-action episodes before the first planned one
  train_every: int = 0              # refit every F agent steps inside an episode; 0: per episode
  # Model (probabilistic ensemble).
  ensemble_size: int = 5
  num_elites: int = 5
  hidden_sizes: tuple[int, ...] = (200, 200, 200)
  activation: str = "silu"
  batch_size: int = 256
  model_train_steps: int = 500      # gradient steps per refit
  holdout_fraction: float = 0.1
  nll_beta: float = 0.5             # beta-NLL weight; 0 is PETS' plain NLL (see ensemble.py)
  angle_dims: tuple[int, ...] = ()  # obs dims that are angles (fed to the model as sin, cos)
  known_reward: bool = False        # plan with the env's known reward instead of the learned one
  # Planner.
  planner: str = "cem"              # cem | icem | mppi | random_shooting
  horizon: int = 15
  population: int = 200
  iterations: int = 5
  elite_fraction: float = 0.1
  num_particles: int = 20
  propagation: str = "ts1"          # ts1 | tsinf | fixed_model | expectation
  disagreement: bool = False        # add hyper.disagreement_coef x ensemble spread to the plan
                                    # objective (evaluates every elite per particle: E x FLOPs)
  # Evaluation.
  eval_every: int = 1               # evaluate every N planned episodes (driver); 0: only at the end
  eval_episodes: int = 1            # evaluation episodes, run in parallel (vmapped)

  def __post_init__(self):
    for name in ("action_repeat", "initial_episodes", "ensemble_size", "num_elites", "horizon",
                 "population", "iterations", "num_particles", "batch_size",
                 "model_train_steps", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"PETSConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.train_every < 0 or self.eval_every < 0:
      raise ValueError("train_every and eval_every must be >= 0")
    if self.num_elites > self.ensemble_size:
      raise ValueError(f"num_elites ({self.num_elites}) > ensemble_size ({self.ensemble_size})")
    if self.planner not in planners_lib.PLANNERS:
      raise ValueError(f"unknown planner {self.planner!r}; accepted: "
                       f"{', '.join(sorted(planners_lib.PLANNERS))}")
    if self.propagation not in propagation.PROPAGATIONS:
      raise ValueError(f"unknown propagation {self.propagation!r}; accepted: "
                       f"{', '.join(propagation.PROPAGATIONS)}")
    if not 0.0 < self.elite_fraction <= 1.0:
      raise ValueError(f"elite_fraction must be in (0, 1], got {self.elite_fraction}")


class PETSHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so a sweep can vmap over them."""

  model_lr: Array | float = 1e-3
  weight_decay: Array | float = 5e-5
  planner_alpha: Array | float = 0.1        # CEM smoothing (0: take the elites' statistics)
  mppi_temperature: Array | float = 1.0
  disagreement_coef: Array | float = 0.0    # >0 risk-averse, <0 optimistic; needs
                                            # PETSConfig.disagreement=True


class PETSState(NamedTuple):
  model: ensemble_lib.EnsembleState
  buffer: TransitionBuffer
  key: Key              # raw uint32 key, consumed and replaced every iteration
  episode: Array        # planned episodes so far (int32)
  env_steps: Array      # agent steps of real data so far, random episodes included (int32)


class PETS(NamedTuple):
  """Pure functions of a PETS run (vmap over seeds: keys and hypers get a leading axis)."""

  config: PETSConfig
  init: Any        # (key, hyper) -> PETSState  (random episodes + first model fit)
  step: Any        # (state, hyper) -> (state, metrics)  one planned episode + refit
  collect: Any     # (state, key, hyper) -> (transitions [T], valid [T], return, info)
  update: Any      # (state, transitions, valid, return, info) -> (state, metrics)
  evaluate: Any    # (state, key, hyper) -> returns [eval_episodes]
  train: Any       # (key, hyper, num_episodes: static) -> (state, metrics [num_episodes])
  act: Any         # (model_state, key, obs, planner_state, hyper) -> (planner_state, action, info)
  ensemble: ensemble_lib.Ensemble


def _planner_kwargs(config: PETSConfig, hyper: PETSHyper) -> dict:
  if config.planner in ("cem", "icem"):
    return dict(iterations=config.iterations, elite_fraction=config.elite_fraction,
                alpha=hyper.planner_alpha)
  if config.planner == "mppi":
    return dict(iterations=config.iterations, temperature=hyper.mppi_temperature)
  return {}


def make_pets(env, config: PETSConfig, total_steps: int) -> PETS:
  """Builds PETS for a registered env (see :func:`wmjax.envs.make`).

  Args:
    env: a :class:`wmjax.envs.RegisteredEnv` (made with ``config.action_repeat``).
    config: static settings.
    total_steps: agent steps of real data the run will collect (sizes the data buffer).
  """
  spec = env.spec
  if spec.discrete:
    raise ValueError(f"PETS plans continuous actions; {env.name} has discrete actions.")
  if len(spec.obs_shape) != 1:
    raise ValueError(f"PETS models vector observations; {env.name} has shape {spec.obs_shape}.")
  reward_fn = None
  if config.known_reward:
    if env.reward_fn is None:
      raise ValueError(f"known_reward=True but {env.name} has no known reward function "
                       "(or action_repeat > 1); use the learned reward.")
    reward_fn = env.reward_fn
  steps_per_episode = env.steps_per_episode
  capacity = total_steps + steps_per_episode

  ens_config = ensemble_lib.EnsembleConfig(
      obs_size=spec.obs_size, action_size=spec.action_size,
      ensemble_size=config.ensemble_size, num_elites=config.num_elites,
      hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
      learn_reward=not config.known_reward, angle_dims=tuple(config.angle_dims),
      batch_size=config.batch_size, train_steps=config.model_train_steps,
      holdout_fraction=config.holdout_fraction, nll_beta=config.nll_beta)
  ensemble = ensemble_lib.make_ensemble(ens_config)

  def make_planner(hyper: PETSHyper):
    return planners_lib.make_planner(config.planner, horizon=config.horizon,
                                     population=config.population,
                                     **_planner_kwargs(config, hyper))

  def act(model_state, key, obs, planner_state, hyper: PETSHyper):
    objective = propagation.make_objective(
        ensemble, model_state, obs, num_particles=config.num_particles,
        propagation=config.propagation, reward_fn=reward_fn,
        disagreement_coef=hyper.disagreement_coef if config.disagreement else 0.0)
    return make_planner(hyper).plan(planner_state, key, objective)

  def run_episode(model_state, key, hyper: PETSHyper, random: bool, buffer=None,
                  step_offset=0):
    """One episode. Returns the transitions [T], their valid mask [T], return, plan info.

    With ``config.train_every > 0`` and a ``buffer``, the model is refit inside the episode
    whenever the run's planned-step count (``step_offset + t + 1``) is a multiple of
    ``train_every``, on all data so far (the episode's own steps included); so a period
    longer than an episode still refits, every few episodes.
    """
    key_reset, key_steps = jax.random.split(key)
    env_state = env.reset(key_reset)
    planner = make_planner(hyper)
    planner_state = planner.init(spec)
    refit_inside = (not random) and config.train_every > 0 and buffer is not None

    def body(carry, x):
      env_state, planner_state, model_state, buffer, ended = carry
      t, key_t = x
      key_act, key_fit = jax.random.split(key_t)
      obs = env_state.obs
      if random:
        action = jax.random.uniform(key_act, spec.action_shape, minval=spec.action_low,
                                    maxval=spec.action_high)
        info = {}
      else:
        planner_state, action, info = act(model_state, key_act, obs, planner_state, hyper)
      next_state = env.step(env_state, action)
      transition = Transition(obs=obs, action=action, reward=next_state.reward,
                              next_obs=next_state.obs,
                              terminated=next_state.info["terminated"])
      valid = 1.0 - ended
      fit_metrics = {}
      if refit_inside:
        one = jax.tree.map(lambda x: x[None], transition)
        buffer = add_sequence(buffer, one, valid[None])
        model_state, fit_metrics = jax.lax.cond(
            (step_offset + t + 1) % config.train_every == 0,
            lambda s: ensemble.fit(s, key_fit, buffer.data, buffer.size),
            lambda s: (s, _zeros_like_fit_metrics(ensemble, s, buffer)), model_state)
      ended = jnp.maximum(ended, next_state.done)
      return (next_state, planner_state, model_state, buffer, ended), (
          transition, valid, info, fit_metrics)

    steps = jnp.arange(steps_per_episode)
    keys = jax.random.split(key_steps, steps_per_episode)
    carry0 = (env_state, planner_state, model_state, buffer, jnp.zeros(()))
    (_, _, model_state, buffer, _), (seq, valid, info, fit_metrics) = jax.lax.scan(
        body, carry0, (steps, keys))
    episode_return = jnp.sum(seq.reward * valid)
    return seq, valid, episode_return, info, model_state, buffer, fit_metrics

  def init(key, hyper: PETSHyper) -> PETSState:
    hyper = PETSHyper(*hyper)
    key = _raw(key)
    key_model, key_eps, key_fit, key_next = jax.random.split(key, 4)
    model_state = ensemble.init(key_model, learning_rate=hyper.model_lr,
                                weight_decay=hyper.weight_decay)
    buffer = init_buffer(spec, capacity)
    # The random episodes run in parallel (one traced episode, vmapped), then are appended.
    seqs, valids, *_ = jax.vmap(lambda k: run_episode(model_state, k, hyper, random=True))(
        jax.random.split(key_eps, config.initial_episodes))
    buffer, _ = jax.lax.scan(lambda b, sv: (add_sequence(b, *sv), None), buffer,
                             (seqs, valids))
    model_state, _ = ensemble.fit(model_state, key_fit, buffer.data, buffer.size)
    return PETSState(model=model_state, buffer=buffer, key=key_next,
                     episode=jnp.zeros((), jnp.int32), env_steps=buffer.size)

  def collect(state: PETSState, key, hyper: PETSHyper):
    """One planned episode with the current model; nothing is learned or stored.

    Returns the transitions [T], the valid mask [T], the return and per-step plan info.
    Training episodes and evaluation episodes are the same program (PETS adds no exploration
    noise), so the driver compiles it once and uses it for both.
    """
    hyper = PETSHyper(*hyper)
    seq, valid, ret, info, *_ = run_episode(state.model, _raw(key), hyper, random=False)
    return seq, valid, ret, info

  def update(state: PETSState, seq: Transition, valid: Array, ret: Array, info) -> tuple[
      PETSState, Metrics]:
    """Appends a collected episode and refits the ensemble on all data."""
    key_fit, key_next = jax.random.split(state.key)
    buffer = add_sequence(state.buffer, seq, valid)
    model_state, fit_metrics = ensemble.fit(state.model, key_fit, buffer.data, buffer.size)
    new_state = PETSState(model=model_state, buffer=buffer, key=key_next,
                          episode=state.episode + 1, env_steps=buffer.size)
    return new_state, _episode_metrics(ret, valid, info, fit_metrics)

  def step(state: PETSState, hyper: PETSHyper) -> tuple[PETSState, Metrics]:
    """One planned episode, then a refit: ``update(collect(...))`` fused, or with
    ``train_every > 0`` refits every F steps inside the episode."""
    hyper = PETSHyper(*hyper)
    key_ep, key_state = jax.random.split(state.key)
    if config.train_every > 0:
      seq, valid, ret, info, model_state, buffer, fit_metrics = run_episode(
          state.model, key_ep, hyper, random=False, buffer=state.buffer,
          step_offset=state.episode * steps_per_episode)
      # The metrics of the episode's last refit (zeros if none fell in this episode).
      steps = jnp.arange(steps_per_episode)
      fitted = (state.episode * steps_per_episode + steps + 1) % config.train_every == 0
      last = jnp.max(jnp.where(fitted, steps, 0))
      fit_metrics = jax.tree.map(lambda x: x[last], fit_metrics)
      new_state = PETSState(model=model_state, buffer=buffer, key=key_state,
                            episode=state.episode + 1, env_steps=buffer.size)
      return new_state, _episode_metrics(ret, valid, info, fit_metrics)
    seq, valid, ret, info = collect(state, key_ep, hyper)
    return update(state._replace(key=key_state), seq, valid, ret, info)

  def evaluate(state: PETSState, key, hyper: PETSHyper) -> Array:
    """Returns of ``config.eval_episodes`` planned episodes run in parallel (vmapped)."""
    keys = jax.random.split(_raw(key), config.eval_episodes)
    return jax.vmap(lambda k: collect(state, k, hyper)[2])(keys)

  def train(key, hyper: PETSHyper, num_episodes: int):
    needed = (config.initial_episodes + num_episodes) * steps_per_episode
    if needed > total_steps:
      raise ValueError(
          f"train: {config.initial_episodes} random + {num_episodes} planned episodes need "
          f"{needed} agent steps of data, but make_pets was given total_steps={total_steps}")
    state = init(key, hyper)
    return jax.lax.scan(lambda s, _: step(s, hyper), state, None, length=num_episodes)

  return PETS(config=config, init=init, step=step, collect=collect, update=update,
              evaluate=evaluate, train=train, act=act, ensemble=ensemble)


def _episode_metrics(ret, valid, info, fit_metrics) -> Metrics:
  """Per-step plan info averaged over the episode's steps, except the count of non-finite
  plan returns: summed, as ``nonfinite/plan_returns`` (the driver stops a run on any
  ``nonfinite/`` metric above zero: a model that gives NaN must not be planned around)."""
  info = dict(info)
  nonfinite = info.pop("planner/nonfinite_returns", None)
  metrics = {"train/episode_return": ret, "train/episode_length": jnp.sum(valid),
             **{k: jnp.sum(v * valid) / jnp.maximum(jnp.sum(valid), 1)
                for k, v in info.items()},
             **fit_metrics}
  if nonfinite is not None:   # random episodes plan nothing
    metrics["nonfinite/plan_returns"] = jnp.sum(nonfinite * valid)
  return metrics


def _zeros_like_fit_metrics(ensemble, model_state, buffer) -> Metrics:
  shapes = jax.eval_shape(lambda s: ensemble.fit(s, jax.random.PRNGKey(0), buffer.data,
                                                 buffer.size)[1], model_state)
  return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def _raw(key: Key) -> Key:
  """Raw uint32 keys, which orbax checkpoints and brax's wrappers take."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return key
