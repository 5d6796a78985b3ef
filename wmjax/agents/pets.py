"""PETS (Chua et al. 2018): probabilistic ensemble, trajectory sampling, model-predictive control.

One training iteration is one episode: plan every action with the learned model inside a
``lax.scan`` over env steps (planning and env stepping fused in one program), append the episode
to the data, refit the ensemble on all data (every episode, or every ``train_every`` steps inside
the episode). ``make_pets(env, config)`` gives pure functions; ``train(key, hyper)`` is the whole
run and vmaps over seeds and hyperparameters.

Discrete actions (``spec.num_actions`` set): the data and the ensemble see each action one-hot
(``[K]``), the planner is the categorical one of the same name (``planners.make_planner(...,
discrete=True)``), which returns a one-hot action, and the env gets its index. Random episodes
draw actions uniformly.

An env with true terminal states (e.g. a pole that falls) whose reward says nothing about them
(cart-pole: +1 every step) needs ``learn_termination``: a classifier of the next observation,
``P(terminated | next_obs)``, fit with the ensemble on the same data, with each batch half
terminal and half not (terminal steps are rare: a few in a thousand); a particle whose
predicted next observation it calls terminal (``P > 1/2``) collects no more reward. It is the
learned counterpart of the known termination functions mbrl-lib's PETS plans with
(``mbrl.env.termination_fns``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax import planners as planners_lib
from wmjax.agents.base import Policy
from wmjax.agents.base import raw_key as _raw
from wmjax.models import ensemble as ensemble_lib
from wmjax.models import propagation
from wmjax.models.termination import TerminationState, make_termination
from wmjax.replay import TransitionBuffer, add_sequence, init_buffer
from wmjax.rl.rollout import Episodes, policy_episodes
from wmjax.types import Array, Key, Metrics, Spec, Transition

__all__ = ["PETSConfig", "PETSHyper", "PETSState", "PETSTerminationState", "PETS", "make_pets"]


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
  learn_termination: bool = False   # classify next observations as terminal (fit with the
                                    # ensemble); a particle's rewards stop at a predicted one
  termination_hidden_sizes: tuple[int, ...] = (64, 64)   # the classifier's MLP
  # Planner (discrete actions: cem | random_shooting, over categorical distributions).
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


class PETSTerminationState(NamedTuple):
  """:class:`PETSState` plus the terminal-state classifier (``learn_termination``). A class of
  its own so that runs without it keep the state layout their checkpoints were written in."""

  model: ensemble_lib.EnsembleState
  buffer: TransitionBuffer
  key: Key
  episode: Array
  env_steps: Array
  termination: TerminationState


def _make_state(termination, **fields) -> PETSState | PETSTerminationState:
  if not isinstance(termination, TerminationState):
    return PETSState(**fields)
  return PETSTerminationState(termination=termination, **fields)


def _termination_of(state) -> TerminationState | tuple:
  return getattr(state, "termination", ())


class PETS(NamedTuple):
  """Pure functions of a PETS run (vmap over seeds: keys and hypers get a leading axis)."""

  config: PETSConfig
  init: Any        # (key, hyper) -> PETSState  (random episodes + first model fit)
  step: Any        # (state, hyper) -> (state, metrics)  one planned episode + refit
  collect: Any     # (state, key, hyper) -> (transitions [T], valid [T], return, info)
  update: Any      # (state, transitions, valid, return, info) -> (state, metrics)
  evaluate: Any    # (state, key, hyper) -> returns [eval_episodes]
  train: Any       # (key, hyper, num_episodes: static) -> (state, metrics [num_episodes])
  act: Any         # (models, key, obs, planner_state, hyper) -> (planner_state, action, info)
                   # models: (ensemble state, termination state); the action as the model sees
                   # it (one-hot [K] for discrete actions)
  ensemble: ensemble_lib.Ensemble
  policy: Policy   # acting in the env with a state (evaluate and wmjax.load run it)
  terminal_prob: Any   # (state, next_obs [O]) -> P(terminated) [] (learn_termination), or None


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
  discrete = spec.discrete
  if len(spec.obs_shape) != 1:
    raise ValueError(f"PETS models vector observations; {env.name} has shape {spec.obs_shape}.")
  if discrete and config.planner not in planners_lib.DISCRETE_PLANNERS:
    raise ValueError(f"{env.name} has discrete actions: planner must be one of "
                     f"{', '.join(sorted(planners_lib.DISCRETE_PLANNERS))}, got "
                     f"{config.planner!r}")
  if config.known_reward and env.reward_fn is None:
    raise ValueError(f"known_reward=True but {env.name} has no known reward function "
                     "(or action_repeat > 1); use the learned reward.")
  steps_per_episode = env.steps_per_episode
  capacity = total_steps + steps_per_episode
  # What the data and the model see: one-hot actions [K] for discrete envs.
  data_spec = Spec(obs_shape=spec.obs_shape, action_shape=(spec.action_size,))

  def known_reward(obs: Array, action: Array, next_obs: Array) -> Array:
    """The env's reward of one step, for the model's (one-hot, if discrete) action."""
    return env.reward_fn(obs, jnp.argmax(action) if discrete else action, next_obs)

  reward_fn = known_reward if config.known_reward else None
  ens_config = ensemble_lib.EnsembleConfig(
      obs_size=spec.obs_size, action_size=spec.action_size,
      ensemble_size=config.ensemble_size, num_elites=config.num_elites,
      hidden_sizes=tuple(config.hidden_sizes), activation=config.activation,
      learn_reward=not config.known_reward, angle_dims=tuple(config.angle_dims),
      batch_size=config.batch_size, train_steps=config.model_train_steps,
      holdout_fraction=config.holdout_fraction, nll_beta=config.nll_beta)
  ensemble = ensemble_lib.make_ensemble(ens_config)
  termination = None
  if config.learn_termination:
    termination = make_termination(spec.obs_size, tuple(config.termination_hidden_sizes),
                                   config.activation, config.batch_size, config.model_train_steps)

  def init_models(key: Key, hyper: PETSHyper):
    """``(ensemble state, termination state or ())``."""
    model_state = ensemble.init(key, learning_rate=hyper.model_lr,
                                weight_decay=hyper.weight_decay)
    term_state = () if termination is None else termination.init(jax.random.fold_in(key, 1))
    return model_state, term_state

  def fit(models, key: Key, buffer: TransitionBuffer):
    """Refits the ensemble (and the termination classifier) on all data."""
    model_state, term_state = models
    model_state, metrics = ensemble.fit(model_state, key, buffer.data, buffer.size)
    if termination is not None:
      term_state, term_metrics = termination.fit(term_state, jax.random.fold_in(key, 1),
                                                 buffer.data, buffer.size)
      metrics = {**metrics, **term_metrics}
    return (model_state, term_state), metrics

  terminal_prob = None
  if termination is not None:
    def terminal_prob(state: PETSState, next_obs: Array) -> Array:
      return jax.nn.sigmoid(termination.logit(_termination_of(state), next_obs))

  def make_planner(hyper: PETSHyper):
    return planners_lib.make_planner(config.planner, horizon=config.horizon,
                                     population=config.population, discrete=discrete,
                                     **_planner_kwargs(config, hyper))

  def env_action(action: Array) -> Array:
    """The model's action (one-hot ``[K]`` if discrete) as the env takes it (its index)."""
    return jnp.argmax(action).astype(jnp.int32) if discrete else action

  def random_action(key: Key) -> Array:
    """A uniformly random action, as the model sees it."""
    if discrete:
      return jax.nn.one_hot(jax.random.randint(key, (), 0, spec.num_actions), spec.num_actions)
    return jax.random.uniform(key, spec.action_shape, minval=spec.action_low,
                              maxval=spec.action_high)

  def act(models, key, obs, planner_state, hyper: PETSHyper):
    model_state, term_state = models

    def predicted_terminal(next_obs: Array) -> Array:
      return termination.logit(term_state, next_obs) > 0

    termination_fn = None if termination is None else predicted_terminal
    objective = propagation.make_objective(
        ensemble, model_state, obs, num_particles=config.num_particles,
        propagation=config.propagation, reward_fn=reward_fn, termination_fn=termination_fn,
        disagreement_coef=hyper.disagreement_coef if config.disagreement else 0.0)
    return make_planner(hyper).plan(planner_state, key, objective)

  def policy_init(state: PETSState, hyper: PETSHyper, key: Key):
    """The planner's initial state (its warm start) for one episode."""
    del state, key
    return make_planner(PETSHyper(*hyper)).init(spec)

  def policy_act(state: PETSState, hyper: PETSHyper, carry, obs: Array, key: Key,
                 deterministic: bool = True):
    """Plans with the state's ensemble from ``obs [O]``: the env's action, and the planner's
    state shifted one step (the next step's warm start). PETS has no separate mode: the
    plan uses ``key`` either way."""
    del deterministic
    carry, action, _ = act((state.model, _termination_of(state)), _raw(key), obs, carry,
                           PETSHyper(*hyper))
    return carry, env_action(action)

  policy = Policy(policy_init, policy_act)

  def run_episode(models, key, hyper: PETSHyper, random: bool, buffer=None, step_offset=0):
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
      env_state, planner_state, models, buffer, ended = carry
      t, key_t = x
      key_act, key_fit = jax.random.split(key_t)
      obs = env_state.obs
      if random:
        action = random_action(key_act)
        info = {}
      else:
        planner_state, action, info = act(models, key_act, obs, planner_state, hyper)
      next_state = env.step(env_state, env_action(action))
      transition = Transition(obs=obs, action=action, reward=next_state.reward,
                              next_obs=next_state.obs,
                              terminated=next_state.info["terminated"])
      valid = 1.0 - ended
      fit_metrics = {}
      if refit_inside:
        one = jax.tree.map(lambda x: x[None], transition)
        buffer = add_sequence(buffer, one, valid[None])
        models, fit_metrics = jax.lax.cond(
            (step_offset + t + 1) % config.train_every == 0,
            lambda m: fit(m, key_fit, buffer),
            lambda m: (m, _zeros_like_fit_metrics(fit, m, buffer)), models)
      ended = jnp.maximum(ended, next_state.done)
      return (next_state, planner_state, models, buffer, ended), (
          transition, valid, info, fit_metrics)

    steps = jnp.arange(steps_per_episode)
    keys = jax.random.split(key_steps, steps_per_episode)
    carry0 = (env_state, planner_state, models, buffer, jnp.zeros(()))
    (_, _, models, buffer, _), (seq, valid, info, fit_metrics) = jax.lax.scan(
        body, carry0, (steps, keys))
    episode_return = jnp.sum(seq.reward * valid)
    return seq, valid, episode_return, info, models, buffer, fit_metrics

  def init(key, hyper: PETSHyper) -> PETSState:
    hyper = PETSHyper(*hyper)
    key = _raw(key)
    key_model, key_eps, key_fit, key_next = jax.random.split(key, 4)
    models = init_models(key_model, hyper)
    buffer = init_buffer(data_spec, capacity)
    # The random episodes run in parallel (one traced episode, vmapped), then are appended.
    seqs, valids, *_ = jax.vmap(lambda k: run_episode(models, k, hyper, random=True))(
        jax.random.split(key_eps, config.initial_episodes))
    buffer, _ = jax.lax.scan(lambda b, sv: (add_sequence(b, *sv), None), buffer,
                             (seqs, valids))
    (model_state, term_state), _ = fit(models, key_fit, buffer)
    return _make_state(term_state, model=model_state, buffer=buffer, key=key_next,
                       episode=jnp.zeros((), jnp.int32), env_steps=buffer.size)

  def collect(state: PETSState, key, hyper: PETSHyper):
    """One planned episode with the current model; nothing is learned or stored.

    Returns the transitions [T], the valid mask [T], the return and per-step plan info.
    """
    hyper = PETSHyper(*hyper)
    seq, valid, ret, info, *_ = run_episode((state.model, _termination_of(state)), _raw(key), hyper,
                                            random=False)
    return seq, valid, ret, info

  def update(state: PETSState, seq: Transition, valid: Array, ret: Array, info) -> tuple[
      PETSState, Metrics]:
    """Appends a collected episode and refits the ensemble on all data."""
    key_fit, key_next = jax.random.split(state.key)
    buffer = add_sequence(state.buffer, seq, valid)
    (model_state, term_state), fit_metrics = fit((state.model, _termination_of(state)), key_fit,
                                                 buffer)
    new_state = _make_state(term_state, model=model_state, buffer=buffer, key=key_next,
                            episode=state.episode + 1, env_steps=buffer.size)
    return new_state, _episode_metrics(ret, valid, info, fit_metrics)

  def step(state: PETSState, hyper: PETSHyper) -> tuple[PETSState, Metrics]:
    """One planned episode, then a refit: ``update(collect(...))`` fused, or with
    ``train_every > 0`` refits every F steps inside the episode."""
    hyper = PETSHyper(*hyper)
    key_ep, key_state = jax.random.split(state.key)
    if config.train_every > 0:
      seq, valid, ret, info, (model_state, term_state), buffer, fit_metrics = run_episode(
          (state.model, _termination_of(state)), key_ep, hyper, random=False, buffer=state.buffer,
          step_offset=state.episode * steps_per_episode)
      # The metrics of the episode's last refit (zeros if none fell in this episode).
      steps = jnp.arange(steps_per_episode)
      fitted = (state.episode * steps_per_episode + steps + 1) % config.train_every == 0
      last = jnp.max(jnp.where(fitted, steps, 0))
      fit_metrics = jax.tree.map(lambda x: x[last], fit_metrics)
      new_state = _make_state(term_state, model=model_state, buffer=buffer, key=key_state,
                              episode=state.episode + 1, env_steps=buffer.size)
      return new_state, _episode_metrics(ret, valid, info, fit_metrics)
    seq, valid, ret, info = collect(state, key_ep, hyper)
    return update(state._replace(key=key_state), seq, valid, ret, info)

  def evaluate(state: PETSState, key, hyper: PETSHyper) -> Episodes:
    """``config.eval_episodes`` planned episodes run in parallel (vmapped): the shared rollout
    of :attr:`policy` (:func:`wmjax.rl.rollout.policy_episodes`), so a loaded policy scores
    what the evaluator reported on the same key."""
    return policy_episodes(env, policy, state, hyper, _raw(key), config.eval_episodes)

  def train(key, hyper: PETSHyper, num_episodes: int):
    needed = (config.initial_episodes + num_episodes) * steps_per_episode
    if needed > total_steps:
      raise ValueError(
          f"train: {config.initial_episodes} random + {num_episodes} planned episodes need "
          f"{needed} agent steps of data, but make_pets was given total_steps={total_steps}")
    state = init(key, hyper)
    return jax.lax.scan(lambda s, _: step(s, hyper), state, None, length=num_episodes)

  return PETS(config=config, init=init, step=step, collect=collect, update=update,
              evaluate=evaluate, train=train, act=act, ensemble=ensemble, policy=policy,
              terminal_prob=terminal_prob)


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


def _zeros_like_fit_metrics(fit, models, buffer) -> Metrics:
  shapes = jax.eval_shape(lambda m: fit(m, jax.random.PRNGKey(0), buffer)[1], models)
  return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
