"""World Models (Ha & Schmidhuber 2018): V (a VAE), M (an MDN-RNN) and C (a linear controller
trained by CMA-ES).

Three stages, each a jitted pure function over a :class:`WorldModelsState` (vmappable over seeds
and over :class:`WorldModelsHyper`):

1. ``init`` collects ``episodes`` random-policy episodes (as the paper) and initialises V, M and
   the CMA-ES search over C;
2. ``train_vae`` fits V to every frame; ``train_mdn`` fits M to the episodes' latent sequences
   (z sampled from V's posterior afresh each batch, as the paper);
3. ``es_generations`` runs CMA-ES generations (evosax's ``CMA_ES``): the whole population is
   evaluated as one vmapped rollout, ``rollouts`` episodes per candidate, either in the real
   environment (``mode='real'``: V encodes each frame, M tracks the hidden state) or entirely
   inside M's dream (``mode='dream'``: starts from V's encoding of real first frames, then z is
   sampled from M at temperature ``tau`` and rewards and terminations come from M's heads).

C sees ``[z, h]`` (h: M's LSTM hidden state) and acts ``a = tanh(W [z, h] + b)`` (continuous) or
``argmax(W [z, h] + b)`` (discrete). CMA-ES starts from zero weights with step size
``sigma_init`` and minimises the negative mean return. ``evaluate`` runs the distribution mean
(the paper's choice) in the real environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wmjax.agents.base import Policy
from wmjax.models.mdnrnn import MDNRNNConfig, MDNRNNFns, make_mdnrnn, mdn_sample
from wmjax.models.vae import VAEConfig, VAEFns, make_vae
from wmjax.rl.rollout import policy_episodes
from wmjax.types import Array, Key

__all__ = ["WorldModelsConfig", "WorldModelsHyper", "WorldModelsState", "WorldModels",
           "Rollouts", "make_worldmodels", "MODES",
           "min_population_size", "controller_size", "cma_es_generation"]

MODES = ("real", "dream")
MIN_POPULATION = 4   # CMA-ES's weights and rank-mu update need at least 2 parents of 4


@dataclasses.dataclass(frozen=True)
class WorldModelsConfig:
  """Static settings of a World Models run (they fix shapes, so they decide compilation)."""

  # Environment and random-policy data (the paper: 10,000 random episodes).
  action_repeat: int = 1
  episode_length: int | None = None   # env steps per episode; the env's default if None
  episodes: int = 1000                # random-policy episodes that train V and M
  # V.
  latent_size: int = 32
  vae_depth: int = 32
  kl_tolerance: float = 0.5           # free nats per latent dimension
  kl_weight: float = 1.0
  vae_epochs: int = 10
  vae_batch_size: int = 100
  # M.
  hidden_size: int = 256
  num_mixtures: int = 5
  mdn_epochs: int = 20
  mdn_batch_size: int = 100
  reward_scale: float = 1.0
  # C and CMA-ES.
  mode: str = "dream"                 # real | dream
  tau: float = 1.15                   # dream temperature (mode=dream)
  population_size: int = 64
  generations: int = 100
  rollouts: int = 16                  # episodes per candidate per generation
  # Driver.
  vae_epochs_per_chunk: int = 1
  mdn_epochs_per_chunk: int = 5
  eval_every: int = 5                 # generations between real-env evaluations (and logs)
  eval_episodes: int = 32

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"unknown mode {self.mode!r}; accepted: {', '.join(MODES)} (train the "
                       "controller in the real environment or inside M's dream)")
    if not self.tau > 0:
      raise ValueError(f"tau must be > 0 (the dream temperature; the paper uses about 1.0 to "
                       f"1.3), got {self.tau}")
    if self.population_size < MIN_POPULATION:
      raise ValueError(f"population_size {self.population_size} is too small for CMA-ES: the "
                       f"minimum is {MIN_POPULATION}; its default is 4 + floor(3 ln n) for n "
                       "controller parameters (e.g. 19 for n = 300)")
    for name in ("action_repeat", "episodes", "latent_size", "vae_depth", "vae_epochs",
                 "vae_batch_size", "hidden_size", "num_mixtures", "mdn_epochs", "mdn_batch_size",
                 "generations", "rollouts", "vae_epochs_per_chunk", "mdn_epochs_per_chunk",
                 "eval_every", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"WorldModelsConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.mdn_batch_size > self.episodes:
      raise ValueError(f"mdn_batch_size ({self.mdn_batch_size}) is more than the collected "
                       f"episodes ({self.episodes}); M trains on whole episodes")


class WorldModelsHyper(NamedTuple):
  """Array hyperparameters: vmappable across a sweep."""

  vae_lr: Any = 1e-3
  mdn_lr: Any = 1e-3
  sigma_init: Any = 0.1   # CMA-ES initial step size


def controller_size(latent_size: int, hidden_size: int, action_size: int) -> int:
  """Parameters of C: ``W [A, Z + H]`` and ``b [A]``."""
  return (latent_size + hidden_size + 1) * action_size


def min_population_size(num_params: int) -> int:
  """CMA-ES's default population ``4 + floor(3 ln n)`` (Hansen)."""
  return 4 + int(3 * math.log(num_params))


class Rollouts(NamedTuple):
  """Episodes of the random policy (leading axis: episode)."""

  obs: Array          # [N, T + 1, H, W, C] uint8
  action: Array       # [N, T, A] as M sees it (one-hot for discrete actions)
  reward: Array       # [N, T] 0 after the episode's end
  terminated: Array   # [N, T] a true terminal state on arriving at t + 1
  mask: Array         # [N, T] 1 where step t is taken before the episode's end; steps after
                      # it (the env stepped on, without reset) are padding that M ignores


class WorldModelsState(NamedTuple):
  data: Rollouts
  vae_params: Any
  vae_opt: Any
  mdn_params: Any
  mdn_opt: Any
  es: Any                  # evosax CMA_ES state
  key: Array               # raw uint32 [2]
  vae_epochs: Array        # int32 counters
  mdn_epochs: Array
  generations: Array


class WorldModels(NamedTuple):
  init: Callable            # (key, hyper, data=None) -> WorldModelsState
  collect: Callable         # key -> Rollouts of the random policy (as init collects them)
  train_vae: Callable       # (state, hyper, epochs) -> (state, metrics [epochs])
  train_mdn: Callable       # (state, hyper, epochs) -> (state, metrics [epochs])
  es_generations: Callable  # (state, hyper, generations) -> (state, metrics [generations])
  evaluate: Callable        # (state, key) -> (mean returns, best returns) [eval_episodes] each
  real_returns: Callable    # (ctrl, vae_params, mdn_params, key) -> return of one real episode
  dream_returns: Callable   # (ctrl, mdn_params, key, z0 [Z]) -> return of one dream episode
  dream_rollout: Callable   # (ctrl, vae_params, mdn_params, key) -> dict of a real + dream pair
  act: Callable             # (ctrl, z [Z], h [H]) -> (env action, model action)
  controller_mean: Callable   # es state -> controller params
  controller_best: Callable   # es state -> controller params
  es: Any                   # the evosax CMA_ES instance
  vae: VAEFns
  mdn: MDNRNNFns
  vae_config: VAEConfig
  mdn_config: MDNRNNConfig
  num_params: int
  acting: Policy            # acting in the real env with the CMA-ES mean (wmjax.load)


def cma_es_generation(es, params, es_state, key: Key,
                      fitness: Callable[[Any, Key], Array]) -> tuple[Any, dict[str, Array]]:
  """One CMA-ES generation that maximises ``fitness(population, key) -> returns [P]``.

  ``population`` is the controller pytree with a leading ``[P]`` axis; evosax minimises, so it
  is told the negative returns.
  """
  key_ask, key_eval, key_tell = jax.random.split(key, 3)
  population, es_state = es.ask(key_ask, es_state, params)
  returns = fitness(population, key_eval)
  es_state, _ = es.tell(key_tell, population, -returns, es_state, params)
  return es_state, {"es/pop_mean_return": returns.mean(), "es/pop_best_return": returns.max(),
                    "es/pop_std_return": returns.std(), "es/sigma": es_state.std}


def make_worldmodels(env, config: WorldModelsConfig) -> WorldModels:
  """Builds World Models for a registered env with image observations."""
  from evosax.algorithms import CMA_ES

  spec = env.spec
  name = getattr(env, "name", "this env")
  if len(spec.obs_shape) != 3:
    raise ValueError(
        f"World Models needs image observations [H, W, C]; {name} gives observations of shape "
        f"{tuple(spec.obs_shape)}. Use a pixel env, e.g. fast/PointMassPixels.")
  discrete = spec.discrete
  action_size = spec.action_size
  vae_config = VAEConfig(obs_shape=tuple(spec.obs_shape), latent_size=config.latent_size,
                         depth=config.vae_depth, kl_tolerance=config.kl_tolerance,
                         kl_weight=config.kl_weight)
  mdn_config = MDNRNNConfig(latent_size=config.latent_size, action_size=action_size,
                            hidden_size=config.hidden_size, num_mixtures=config.num_mixtures,
                            reward_scale=config.reward_scale)
  vae, mdn = make_vae(vae_config), make_mdnrnn(mdn_config)
  num_params = controller_size(config.latent_size, config.hidden_size, action_size)
  dummy = {"w": jnp.zeros((config.latent_size + config.hidden_size, action_size)),
           "b": jnp.zeros((action_size,))}
  es = CMA_ES(population_size=config.population_size, solution=dummy)
  tx = optax.scale_by_adam()
  steps = env.steps_per_episode
  frames = config.episodes * (steps + 1)
  if config.vae_batch_size > frames:
    raise ValueError(f"vae_batch_size ({config.vae_batch_size}) is more than the collected "
                     f"frames ({frames})")

  def unit(obs):
    return obs.astype(jnp.float32) / 255.0 if obs.dtype == jnp.uint8 else obs

  def store(obs):
    if obs.dtype == jnp.uint8:
      return obs
    return jnp.round(jnp.clip(obs, 0.0, 1.0) * 255.0).astype(jnp.uint8)

  def act(ctrl, z, h):
    logits = jnp.concatenate([z, h], -1) @ ctrl["w"] + ctrl["b"]
    if discrete:
      action = jnp.argmax(logits, -1)
      return action, jax.nn.one_hot(action, action_size)
    action = jnp.tanh(logits)
    return action, action

  def random_action(key):
    if discrete:
      action = jax.random.randint(key, (), 0, action_size)
      return action, jax.nn.one_hot(action, action_size)
    action = jax.random.uniform(key, (action_size,), minval=-1.0, maxval=1.0)
    return action, action

  def random_episode(key):
    """One random-policy episode, padded to ``steps`` after its end (there is no reset): the
    padding steps have ``mask`` 0 and no reward."""
    key_reset, key_steps = jax.random.split(key)
    env_state = env.reset(key_reset)

    def step(carry, key_t):
      env_state, alive = carry
      action, model_action = random_action(key_t)
      obs = store(env_state.obs)
      env_state = env.step(env_state, action)
      # Once ended, stays ended (an env's ``done`` need not stay set when stepped on).
      reward = alive * env_state.reward
      terminated = alive * env_state.info["terminated"]
      out = (obs, model_action, reward, terminated, alive)
      return (env_state, alive * (1.0 - env_state.done)), out

    (env_state, _), (obs, actions, rewards, terminated, mask) = jax.lax.scan(
        step, (env_state, jnp.ones(())), jax.random.split(key_steps, steps))
    obs = jnp.concatenate([obs, store(env_state.obs)[None]], 0)
    return Rollouts(obs, actions, rewards, terminated, mask)

  def es_params(hyper):
    return es.default_params.replace(std_init=jnp.asarray(hyper.sigma_init, jnp.float32))

  def _raw(key):
    return jnp.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                       else key)

  def collect(key):
    """``episodes`` random-policy episodes (the data ``init`` starts from, same key)."""
    key_data = jax.random.split(_raw(key), 5)[1]
    return jax.vmap(random_episode)(jax.random.split(key_data, config.episodes))

  def init(key, hyper, data: Rollouts | None = None):
    """The state at the start: random-policy data (``collect(key)`` unless given), fresh V, M
    and CMA-ES."""
    key, key_data, key_vae, key_mdn, key_es = jax.random.split(_raw(key), 5)
    if data is None:
      data = jax.vmap(random_episode)(jax.random.split(key_data, config.episodes))
    vae_params, mdn_params = vae.init(key_vae), mdn.init(key_mdn)
    es_state = es.init(key_es, dummy, es_params(hyper))
    zero = jnp.zeros((), jnp.int32)
    return WorldModelsState(data, vae_params, tx.init(vae_params), mdn_params,
                            tx.init(mdn_params), es_state, key, zero, zero, zero)

  def _adam_step(loss_fn, params, opt_state, lr, *args):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
    return params, opt_state, metrics

  def train_vae(state, hyper, epochs: int):
    images = state.data.obs.reshape((-1, *spec.obs_shape))
    batches = frames // config.vae_batch_size

    def epoch(carry, key):
      params, opt_state = carry
      key_perm, key_steps = jax.random.split(key)
      order = jax.random.permutation(key_perm, frames)[:batches * config.vae_batch_size]

      def batch_step(carry, inputs):
        params, opt_state = carry
        idx, key_b = inputs
        params, opt_state, metrics = _adam_step(vae.loss, params, opt_state, hyper.vae_lr,
                                                key_b, unit(images[idx]))
        return (params, opt_state), metrics

      carry, metrics = jax.lax.scan(
          batch_step, (params, opt_state),
          (order.reshape(batches, -1), jax.random.split(key_steps, batches)))
      return carry, jax.tree.map(jnp.mean, metrics)

    key, key_epochs = jax.random.split(state.key)
    (params, opt_state), metrics = jax.lax.scan(
        epoch, (state.vae_params, state.vae_opt), jax.random.split(key_epochs, epochs))
    return state._replace(vae_params=params, vae_opt=opt_state, key=key,
                          vae_epochs=state.vae_epochs + epochs), metrics

  def encode_episodes(vae_params, obs):
    """obs [N, T+1, H, W, C] uint8 -> mean, log_std [N, T+1, Z], one episode at a time."""
    return jax.lax.map(lambda o: vae.encode(vae_params, unit(o)), obs)

  def train_mdn(state, hyper, epochs: int):
    data = state.data
    mean, log_std = encode_episodes(state.vae_params, data.obs)
    batches = config.episodes // config.mdn_batch_size

    def loss_fn(params, key, idx):
      z = mean[idx] + jnp.exp(log_std[idx]) * jax.random.normal(key, mean[idx].shape)
      return mdn.loss(params, z, data.action[idx], data.reward[idx], data.terminated[idx],
                      data.mask[idx])

    def epoch(carry, key):
      params, opt_state = carry
      key_perm, key_steps = jax.random.split(key)
      order = jax.random.permutation(key_perm, config.episodes)
      order = order[:batches * config.mdn_batch_size].reshape(batches, -1)

      def batch_step(carry, inputs):
        params, opt_state = carry
        idx, key_b = inputs
        params, opt_state, metrics = _adam_step(loss_fn, params, opt_state, hyper.mdn_lr,
                                                key_b, idx)
        return (params, opt_state), metrics

      carry, metrics = jax.lax.scan(batch_step, (params, opt_state),
                                    (order, jax.random.split(key_steps, batches)))
      return carry, jax.tree.map(jnp.mean, metrics)

    key, key_epochs = jax.random.split(state.key)
    (params, opt_state), metrics = jax.lax.scan(
        epoch, (state.mdn_params, state.mdn_opt), jax.random.split(key_epochs, epochs))
    return state._replace(mdn_params=params, mdn_opt=opt_state, key=key,
                          mdn_epochs=state.mdn_epochs + epochs), metrics

  def real_episode(ctrl, vae_params, mdn_params, key, record: bool = False):
    """One real episode with C; V samples z from each frame (as the paper), M tracks h."""
    key_reset, key_steps = jax.random.split(key)
    env_state = env.reset(key_reset)

    def step(carry, key_t):
      env_state, lstm, ret = carry
      obs = unit(store(env_state.obs))
      z = vae.sample(vae_params, key_t, obs)
      action, model_action = act(ctrl, z, lstm.h)
      alive = 1.0 - env_state.done
      env_state = env.step(env_state, action)
      ret = ret + alive * env_state.reward
      lstm, _ = mdn.step(mdn_params, lstm, z, model_action)
      return (env_state, lstm, ret), ((obs, env_state.reward) if record else None)

    init = (env_state, mdn.initial_carry(), jnp.zeros(()))
    (_, _, ret), trace = jax.lax.scan(step, init, jax.random.split(key_steps, steps))
    return (ret, trace) if record else ret

  def dream_episode(ctrl, mdn_params, key, z0, record: bool = False):
    """One episode inside M from ``z0 [Z]``: z sampled at temperature ``tau``, rewards and
    terminations from M's heads."""

    def step(carry, key_t):
      z, lstm, ret, alive = carry
      key_z, key_done = jax.random.split(key_t)
      action, model_action = act(ctrl, z, lstm.h)
      lstm, out = mdn.step(mdn_params, lstm, z, model_action)
      ret = ret + alive * out.reward
      done = jax.random.bernoulli(key_done, jax.nn.sigmoid(out.done_logit))
      alive = alive * (1.0 - done)
      z_next = mdn_sample(key_z, out.logit_pi, out.mean, out.log_std, config.tau)
      return (z_next, lstm, ret, alive), ((z, out.reward) if record else None)

    init = (z0, mdn.initial_carry(), jnp.zeros(()), jnp.ones(()))
    (_, _, ret, _), trace = jax.lax.scan(step, init, jax.random.split(key, steps))
    return (ret, trace) if record else ret

  def es_generations(state, hyper, generations: int):
    params = es_params(hyper)
    rollouts = config.rollouts
    first_mean, first_log_std = vae.encode(state.vae_params, unit(state.data.obs[:, 0]))

    def fitness(population, key):
      """Mean return of each candidate over ``rollouts`` episodes: [P]."""
      keys = jax.random.split(key, (config.population_size, rollouts))
      if config.mode == "real":
        per = jax.vmap(jax.vmap(real_episode, (None, None, None, 0)), (0, None, None, 0))
        return per(population, state.vae_params, state.mdn_params, keys).mean(-1)

      def dream(ctrl, key):
        key_start, key_noise, key_run = jax.random.split(key, 3)
        i = jax.random.randint(key_start, (), 0, config.episodes)
        z0 = first_mean[i] + jnp.exp(first_log_std[i]) * jax.random.normal(
            key_noise, first_mean[i].shape)
        return dream_episode(ctrl, state.mdn_params, key_run, z0)

      return jax.vmap(jax.vmap(dream, (None, 0)), (0, 0))(population, keys).mean(-1)

    def generation(es_state, key):
      return cma_es_generation(es, params, es_state, key, fitness)

    key, key_gens = jax.random.split(state.key)
    es_state, metrics = jax.lax.scan(generation, state.es,
                                     jax.random.split(key_gens, generations))
    return state._replace(es=es_state, key=key,
                          generations=state.generations + generations), metrics

  def controller_mean(es_state):
    return es.get_mean(es_state)

  def controller_best(es_state):
    best = jnp.where(jnp.isfinite(es_state.best_fitness), es_state.best_solution,
                     es_state.mean)
    return es._unravel_solution(best)  # noqa: SLF001 (evosax has no public unravel)

  def acting(controller: Callable) -> Policy:
    """Acting in the real env with ``controller(es_state)`` (the CMA-ES mean or best): V
    encodes each frame into z (a sample, as the paper; the mean when ``deterministic``), C acts
    on (z, h), and M's LSTM, the carry, steps on (z, action)."""

    def init_carry(state, hyper, key):
      return mdn.initial_carry()

    def act_one(state, hyper, lstm, obs, key, deterministic: bool = False):
      frame = unit(store(obs))
      if deterministic:
        z = vae.encode(state.vae_params, frame)[0]
      else:
        z = vae.sample(state.vae_params, key, frame)
      action, model_action = act(controller(state.es), z, lstm.h)
      lstm, _ = mdn.step(state.mdn_params, lstm, z, model_action)
      return lstm, action

    return Policy(init_carry, act_one, deterministic=False)

  acting_mean, acting_best = acting(controller_mean), acting(controller_best)

  def evaluate(state, key):
    """Real-env returns ``[eval_episodes]`` of the CMA-ES mean and of the best candidate, on the
    same keys (:func:`wmjax.rl.rollout.policy_episodes`): two :class:`Episodes`."""
    n = config.eval_episodes
    mean = policy_episodes(env, acting_mean, state, None, key, n, deterministic=False)
    best = policy_episodes(env, acting_best, state, None, key, n, deterministic=False)
    return mean, best

  def dream_rollout(ctrl, vae_params, mdn_params, key):
    """A real episode and a dream from its first frame with the same controller: frames
    ``[T, H, W, C]`` (real), decoded dream frames, and both reward sequences."""
    key_real, key_dream, key_z0 = jax.random.split(key, 3)
    _, (obs, real_rewards) = real_episode(ctrl, vae_params, mdn_params, key_real, record=True)
    z0 = vae.sample(vae_params, key_z0, obs[0])
    _, (zs, dream_rewards) = dream_episode(ctrl, mdn_params, key_dream, z0, record=True)
    return {"real": obs, "dream": jnp.clip(vae.decode(vae_params, zs), 0.0, 1.0),
            "real_rewards": real_rewards, "dream_rewards": dream_rewards}

  return WorldModels(init=init, collect=collect, train_vae=train_vae, train_mdn=train_mdn,
                     es_generations=es_generations, evaluate=evaluate, real_returns=real_episode,
                     dream_returns=dream_episode, dream_rollout=dream_rollout, act=act,
                     controller_mean=controller_mean, controller_best=controller_best, es=es,
                     vae=vae, mdn=mdn, vae_config=vae_config, mdn_config=mdn_config,
                     num_params=num_params, acting=acting_mean)
