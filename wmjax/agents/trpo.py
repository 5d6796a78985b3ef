"""TRPO (Schulman et al. 2015): a model-free on-policy baseline, as pure functions.

Every training iteration, in one jitted program:

1. ``rollout_length`` agent steps in each of ``num_envs`` vmapped envs with the current
   Gaussian policy (finished episodes restart at once); each step keeps ``terminated`` apart
   from ``truncated`` so that advantages bootstrap through time limits;
2. the running observation mean and variance (``normalize_observations``) take in the batch,
   as OpenAI baselines' TRPO and brax's PPO do, before the update;
3. advantages by GAE (:func:`wmjax.rl.gae`) under the current value function, normalised;
4. the natural-gradient step: conjugate gradient on Fisher-vector products (the Hessian of the
   batch's mean KL, forward-over-reverse, plus ``cg_damping``), scaled so that its quadratic
   model of the KL is ``max_kl``; a backtracking line search takes the first of the shrunken
   steps whose mean KL is at most ``max_kl`` and whose surrogate improves, otherwise the policy
   stays as it was;
5. the value function fitted apart (Adam, ``value_epochs`` passes of ``value_minibatches``
   minibatches) to the GAE targets ``A + V``.

The policy is the paper's (and baselines' / Spinning Up's) diagonal Gaussian without a tanh:
an MLP mean and a state-independent log-std. Actions are sampled unbounded (their
log-probabilities are of those samples) and clipped to the env's bounds when stepping.
Conjugate gradient and the Fisher-vector product are written by hand: no maintained JAX
library offers TRPO's (optax has no natural-gradient transformation).

Continuous floats (the KL bound, learning rate, discount, ...) are :class:`TRPOHyper` fields so
that runs vmap over them; :class:`TRPOConfig` holds what fixes shapes and loop lengths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from wmjax.agents.base import Policy, require_vector_continuous
from wmjax.agents.base import raw_key as _raw
from wmjax.nets.mlp import MLP, get_activation
from wmjax.rl.returns import gae
from wmjax.rl.rollout import policy_episodes
from wmjax.types import Array, Key, Metrics

__all__ = ["TRPOConfig", "TRPOHyper", "TRPOState", "ObsStats", "TRPO", "make_trpo",
           "conjugate_gradient", "fisher_vector_product", "gaussian_kl"]

_OBS_CLIP = 10.0       # normalised observations are clipped to [-10, 10]
_STD_MIN = 1e-3        # floor of the running std (constant features)


@dataclasses.dataclass(frozen=True)
class TRPOConfig:
  """Static settings of a TRPO run: they fix shapes and loop lengths, so decide compilation.

  The KL bound, CG damping, line-search ratio, value learning rate, discount and GAE lambda
  are :class:`TRPOHyper` fields (floats that runs vmap over).
  """

  # Environment and batch.
  action_repeat: int = 1
  episode_length: int | None = None      # env steps per episode; the env's default if None
  num_envs: int = 16                     # parallel envs (vmapped)
  rollout_length: int = 128              # agent steps per env per iteration
  # Networks: tanh MLPs as baselines and Spinning Up.
  policy_hidden_sizes: tuple[int, ...] = (64, 64)
  value_hidden_sizes: tuple[int, ...] = (64, 64)
  activation: str = "tanh"
  initial_log_std: float = -0.5          # Spinning Up's; baselines start at 0
  normalize_observations: bool = True    # running mean / std of observations
  # Natural gradient and line search.
  cg_iters: int = 10
  line_search_steps: int = 10            # step fractions ratio^0 .. ratio^(n - 1)
  # Value function.
  value_epochs: int = 5
  value_minibatches: int = 32
  # Evaluation (driver).
  eval_every: int = 10                   # iterations between evaluations; 0: only at the end
  eval_episodes: int = 8

  def __post_init__(self):
    for name in ("action_repeat", "num_envs", "rollout_length", "cg_iters",
                 "line_search_steps", "value_epochs", "value_minibatches", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"TRPOConfig.{name} must be >= 1, got {getattr(self, name)}")
    for name in ("policy_hidden_sizes", "value_hidden_sizes"):
      sizes = getattr(self, name)
      if not all(isinstance(h, int) and h >= 1 for h in sizes):
        raise ValueError(f"TRPOConfig.{name} must be positive ints, got {sizes}")
    get_activation(self.activation)
    if self.batch_size % self.value_minibatches:
      raise ValueError(f"value_minibatches ({self.value_minibatches}) must divide the batch "
                       f"num_envs x rollout_length = {self.batch_size}")
    if self.eval_every < 0:
      raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")

  @property
  def batch_size(self) -> int:
    """Agent steps per iteration (all envs)."""
    return self.num_envs * self.rollout_length


class TRPOHyper(NamedTuple):
  """Continuous hyperparameters: arrays, so seeds and sweeps vmap over them."""

  max_kl: Array | float = 0.01           # trust region: mean KL(old || new) per step
  cg_damping: Array | float = 0.1        # Fisher + damping * I
  backtrack_ratio: Array | float = 0.5   # line search shrink factor
  value_lr: Array | float = 1e-3
  gamma: Array | float = 0.99
  gae_lambda: Array | float = 0.97


class ObsStats(NamedTuple):
  """Running observation statistics (Chan et al.'s parallel update of mean and variance)."""

  count: Array      # [] float32
  mean: Array       # [O]
  var_sum: Array    # [O] sum of squared deviations from the mean


class TRPOState(NamedTuple):
  policy: Any              # {"mean": MLP params, "log_std": [A]}
  value: Any               # value MLP params
  value_opt: Any           # Adam state (the learning rate injected from the Hyper)
  obs_stats: ObsStats
  env_state: Any           # [num_envs] env states
  episode_return: Array    # [num_envs] running return of the current episodes
  key: Key                 # raw uint32 key
  agent_steps: Array       # int32: agent steps so far (all envs)
  iteration: Array         # int32


class TRPO(NamedTuple):
  config: TRPOConfig
  init: Any              # (key, hyper) -> TRPOState
  train_iteration: Any   # (state, hyper) -> (state, metrics)
  evaluate: Any          # (state, key, hyper) -> {"eval/episode_return": [eval_episodes]}
  policy: Policy         # acting with one observation (wmjax.load, evaluate)
  distribution: Any      # (policy params, obs_stats, obs [..., O]) -> (mean, log_std) [..., A]


def conjugate_gradient(matvec: Callable[[Array], Array], b: Array, iters: int,
                       tol: float = 1e-10) -> Array:
  """``x ~= A^{-1} b`` for a symmetric positive-definite ``A`` given as ``matvec``, by
  ``iters`` conjugate-gradient steps from ``x = 0`` (the steps after the squared residual
  falls below ``tol`` leave ``x`` as it is). ``b``: ``[P]``."""

  def step(carry, _):
    x, r, p, rr = carry
    active = rr > tol
    ap = matvec(p)
    alpha = jnp.where(active, rr / jnp.where(active, p @ ap, 1.0), 0.0)
    x = x + alpha * p
    r = r - alpha * ap
    rr_new = r @ r
    beta = jnp.where(active, rr_new / jnp.where(active, rr, 1.0), 0.0)
    p = jnp.where(active, r + beta * p, p)
    return (x, r, p, jnp.where(active, rr_new, rr)), None

  x0 = jnp.zeros_like(b)
  (x, _, _, _), _ = jax.lax.scan(step, (x0, b, b, b @ b), None, length=iters)
  return x


def fisher_vector_product(mean_kl: Callable[[Array], Array], flat_params: Array, vector: Array,
                          damping: Array | float = 0.0) -> Array:
  """``(H + damping I) v``, ``H`` the Hessian of ``mean_kl`` at ``flat_params`` (the Fisher
  information of the policy where ``mean_kl`` is the KL from the policy at ``flat_params``),
  by forward-over-reverse differentiation, without forming ``H``. Shapes ``[P]``."""
  return jax.jvp(jax.grad(mean_kl), (flat_params,), (vector,))[1] + damping * vector


def gaussian_kl(mean_p: Array, log_std_p: Array, mean_q: Array, log_std_q: Array) -> Array:
  """``KL(p || q)`` of diagonal Gaussians, summed over the last axis ``[..., A] -> [...]``."""
  var_p, var_q = jnp.exp(2.0 * log_std_p), jnp.exp(2.0 * log_std_q)
  kl = log_std_q - log_std_p + (var_p + jnp.square(mean_p - mean_q)) / (2.0 * var_q) - 0.5
  return jnp.sum(kl, axis=-1)


def _log_prob(mean: Array, log_std: Array, action: Array) -> Array:
  """Log-density of ``action`` under a diagonal Gaussian ``[..., A] -> [...]``."""
  z = (action - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def _update_stats(stats: ObsStats, obs: Array) -> ObsStats:
  """Takes a batch ``obs [B, O]`` into the running statistics."""
  n = jnp.asarray(obs.shape[0], jnp.float32)
  batch_mean = jnp.mean(obs, axis=0)
  batch_var_sum = jnp.sum(jnp.square(obs - batch_mean), axis=0)
  count = stats.count + n
  delta = batch_mean - stats.mean
  mean = stats.mean + delta * n / count
  var_sum = stats.var_sum + batch_var_sum + jnp.square(delta) * stats.count * n / count
  return ObsStats(count, mean, var_sum)


def make_trpo(env, config: TRPOConfig) -> TRPO:
  """Builds TRPO for a registered env with continuous actions and vector observations.

  Args:
    env: a :class:`wmjax.envs.RegisteredEnv` (made with ``config.action_repeat``).
    config: static settings.
  """
  spec = env.spec
  require_vector_continuous(env, "TRPO's Gaussian policy")
  cfg = config
  obs_size, action_size = spec.obs_size, spec.action_size
  low, high = spec.action_low, spec.action_high
  n_envs, length = cfg.num_envs, cfg.rollout_length
  batch = cfg.batch_size
  mean_net = MLP(tuple(cfg.policy_hidden_sizes), action_size, cfg.activation, zero_output=True)
  value_net = MLP(tuple(cfg.value_hidden_sizes), 1, cfg.activation)

  def value_tx(lr):
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)

  def normalize(stats: ObsStats, obs: Array) -> Array:
    if not cfg.normalize_observations:
      return obs
    std = jnp.maximum(jnp.sqrt(stats.var_sum / jnp.maximum(stats.count, 1.0)), _STD_MIN)
    std = jnp.where(stats.count > 0, std, 1.0)
    return jnp.clip((obs - stats.mean) / std, -_OBS_CLIP, _OBS_CLIP)

  def distribution(policy, stats: ObsStats, obs: Array) -> tuple[Array, Array]:
    """``(mean, log_std)`` ``[..., A]`` of the policy at raw observations ``[..., O]``."""
    mean = mean_net.apply(policy["mean"], normalize(stats, obs))
    return mean, jnp.broadcast_to(policy["log_std"], mean.shape)

  def value_of(value, stats: ObsStats, obs: Array) -> Array:
    return value_net.apply(value, normalize(stats, obs))[..., 0]

  def env_step(env_state, ep_return, action, key):
    """Steps every env; finished ones restart. Returns the step's record and finished
    returns (NaN where no episode ended)."""
    next_state = jax.vmap(env.step)(env_state, jnp.clip(action, low, high))
    ep_return = ep_return + next_state.reward
    done = next_state.done > 0
    record = {"reward": next_state.reward, "next_obs": next_state.obs,
              "terminated": next_state.info["terminated"],
              "truncated": next_state.info["truncated"]}
    finished = jnp.where(done, ep_return, jnp.nan)
    fresh = jax.vmap(env.reset)(jax.random.split(key, n_envs))
    env_state = jax.tree.map(
        lambda f, s: jnp.where(done.reshape(done.shape + (1,) * (s.ndim - 1)), f, s),
        fresh, next_state)
    return env_state, jnp.where(done, 0.0, ep_return), record, finished

  def init(key, hyper: TRPOHyper) -> TRPOState:
    hyper = TRPOHyper(*hyper)
    k_policy, k_value, k_env, k_next = jax.random.split(_raw(key), 4)
    dummy = jnp.zeros((1, obs_size))
    policy = {"mean": mean_net.init(k_policy, dummy),
              "log_std": jnp.full((action_size,), cfg.initial_log_std, jnp.float32)}
    value = value_net.init(k_value, dummy)
    stats = ObsStats(jnp.zeros((), jnp.float32), jnp.zeros(obs_size), jnp.zeros(obs_size))
    env_state = jax.vmap(env.reset)(jax.random.split(k_env, n_envs))
    return TRPOState(policy=policy, value=value, value_opt=value_tx(hyper.value_lr).init(value),
                     obs_stats=stats, env_state=env_state, episode_return=jnp.zeros(n_envs),
                     key=k_next, agent_steps=jnp.zeros((), jnp.int32),
                     iteration=jnp.zeros((), jnp.int32))

  def rollout(state: TRPOState, key):
    """``length`` steps of every env: per-step records ``[T, N, ...]``."""

    def body(carry, k):
      env_state, ep_return = carry
      k_act, k_reset = jax.random.split(k)
      obs = env_state.obs
      mean, log_std = distribution(state.policy, state.obs_stats, obs)
      action = mean + jnp.exp(log_std) * jax.random.normal(k_act, mean.shape)
      env_state, ep_return, record, finished = env_step(env_state, ep_return, action, k_reset)
      return (env_state, ep_return), {"obs": obs, "action": action, "finished": finished,
                                      **record}

    (env_state, ep_return), seq = jax.lax.scan(
        body, (state.env_state, state.episode_return), jax.random.split(key, length))
    return env_state, ep_return, seq

  def policy_step(policy, stats, obs, action, adv, hyper: TRPOHyper):
    """The natural-gradient step with its line search. ``obs [B, O]``, ``action [B, A]``,
    ``adv [B]``. Returns the new policy and the step's metrics."""
    flat_old, unravel = ravel_pytree(policy)
    mean_old, log_std_old = jax.lax.stop_gradient(distribution(policy, stats, obs))
    logp_old = _log_prob(mean_old, log_std_old, action)

    def surrogate(flat):
      mean, log_std = distribution(unravel(flat), stats, obs)
      return jnp.mean(jnp.exp(_log_prob(mean, log_std, action) - logp_old) * adv)

    def mean_kl(flat):
      mean, log_std = distribution(unravel(flat), stats, obs)
      return jnp.mean(gaussian_kl(mean_old, log_std_old, mean, log_std))

    surr_old, g = jax.value_and_grad(surrogate)(flat_old)
    step_dir = conjugate_gradient(
        lambda v: fisher_vector_product(mean_kl, flat_old, v, hyper.cg_damping), g,
        cfg.cg_iters)
    # Scale so that the quadratic model of the KL, 0.5 s^T F s, equals max_kl.
    shs = 0.5 * step_dir @ fisher_vector_product(mean_kl, flat_old, step_dir, hyper.cg_damping)
    full_step = step_dir * jnp.sqrt(hyper.max_kl / jnp.maximum(shs, 1e-12))
    expected = g @ full_step
    fractions = hyper.backtrack_ratio ** jnp.arange(cfg.line_search_steps, dtype=jnp.float32)
    candidates = flat_old[None] + fractions[:, None] * full_step[None]   # [S, P]
    surr = jax.vmap(surrogate)(candidates)
    kl = jax.vmap(mean_kl)(candidates)
    improve = surr - surr_old
    ok = (kl <= hyper.max_kl) & (improve > 0) & jnp.isfinite(surr) & jnp.isfinite(kl)
    ok = ok & jnp.all(jnp.isfinite(candidates), axis=1)
    accepted = jnp.any(ok)
    first = jnp.argmax(ok)
    flat_new = jnp.where(accepted, candidates[first], flat_old)
    metrics = {
        "trpo/kl": jnp.where(accepted, kl[first], 0.0),
        "trpo/surrogate_improvement": jnp.where(accepted, improve[first], 0.0),
        "trpo/expected_improvement": expected,
        "trpo/line_search_steps": jnp.where(accepted, first, cfg.line_search_steps),
        "trpo/accepted": accepted.astype(jnp.float32),
        "trpo/grad_norm": jnp.linalg.norm(g),
    }
    return unravel(flat_new), metrics

  def fit_value(value, value_opt, stats, obs, target, key, lr):
    """``value_epochs`` passes of ``value_minibatches`` Adam steps on ``(obs, target) [B]``."""
    tx = value_tx(lr)
    rate = value_opt.hyperparams["learning_rate"]
    value_opt = value_opt._replace(hyperparams={**value_opt.hyperparams,
                                                "learning_rate": jnp.asarray(lr, rate.dtype)})
    x = normalize(stats, obs)
    mb = batch // cfg.value_minibatches

    def loss_fn(params, xb, yb):
      return jnp.mean(jnp.square(value_net.apply(params, xb)[..., 0] - yb))

    def minibatch(carry, idx):
      params, opt = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], target[idx])
      updates, opt = tx.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), loss

    def epoch(carry, k):
      order = jax.random.permutation(k, batch).reshape(cfg.value_minibatches, mb)
      carry, losses = jax.lax.scan(minibatch, carry, order)
      return carry, jnp.mean(losses)

    (value, value_opt), losses = jax.lax.scan(epoch, (value, value_opt),
                                              jax.random.split(key, cfg.value_epochs))
    return value, value_opt, losses

  def train_iteration(state: TRPOState, hyper: TRPOHyper) -> tuple[TRPOState, Metrics]:
    hyper = TRPOHyper(*hyper)
    k_roll, k_value, k_next = jax.random.split(state.key, 3)
    env_state, ep_return, seq = rollout(state, k_roll)
    stats = state.obs_stats
    if cfg.normalize_observations:
      stats = _update_stats(stats, seq["obs"].reshape(batch, obs_size))
    # Advantages under the value function as it was before this iteration's fit.
    value_t = value_of(state.value, stats, seq["obs"])                       # [T, N]
    value_last = value_of(state.value, stats, env_state.obs)                 # [N]
    final_value = value_of(state.value, stats, seq["next_obs"])              # [T, N]
    values = jnp.concatenate([value_t, value_last[None]], axis=0)            # [T + 1, N]
    adv = gae(seq["reward"], values, seq["terminated"] > 0, seq["truncated"] > 0, final_value,
              hyper.gamma, hyper.gae_lambda)                                 # [T, N]
    target = (adv + value_t).reshape(batch)
    adv = adv.reshape(batch)
    norm_adv = (adv - jnp.mean(adv)) / (jnp.std(adv) + 1e-8)
    obs = seq["obs"].reshape(batch, obs_size)
    action = seq["action"].reshape(batch, action_size)
    policy, policy_metrics = policy_step(state.policy, stats, obs, action, norm_adv, hyper)
    value, value_opt, value_losses = fit_value(state.value, state.value_opt, stats, obs, target,
                                               k_value, hyper.value_lr)
    residual = target - value_of(value, stats, obs)
    finished = seq["finished"]
    n_finished = jnp.sum(jnp.isfinite(finished))
    metrics = {
        "train/episode_return": jnp.where(
            n_finished > 0, jnp.nansum(finished) / jnp.maximum(n_finished, 1), jnp.nan),
        "train/episodes": n_finished,
        "train/reward": jnp.mean(seq["reward"]),
        **policy_metrics,
        "trpo/std": jnp.mean(jnp.exp(policy["log_std"])),
        "value/loss": value_losses[-1],
        "value/explained_variance": 1.0 - jnp.var(residual) / jnp.maximum(jnp.var(target),
                                                                           1e-8),
    }
    new_state = TRPOState(policy=policy, value=value, value_opt=value_opt, obs_stats=stats,
                          env_state=env_state, episode_return=ep_return, key=k_next,
                          agent_steps=state.agent_steps + batch,
                          iteration=state.iteration + 1)
    return new_state, metrics

  def policy_init(state: TRPOState, hyper, key):
    del state, hyper, key
    return ()

  def policy_act(state: TRPOState, hyper, carry, obs, key, deterministic: bool = True):
    """The Gaussian's mean (deterministic) or a sample for one observation ``[O]``, clipped to
    the action bounds."""
    del hyper
    mean, log_std = distribution(state.policy, state.obs_stats, obs)
    if deterministic:
      action = mean
    else:
      action = mean + jnp.exp(log_std) * jax.random.normal(_raw(key), mean.shape)
    return carry, jnp.clip(action, low, high)

  policy = Policy(policy_init, policy_act)

  def evaluate(state: TRPOState, key, hyper) -> Metrics:
    """Returns of ``eval_episodes`` episodes with the mean action
    (:func:`wmjax.rl.rollout.policy_episodes`): ``eval/episode_return`` and ``.../length``."""
    return policy_episodes(env, policy, state, hyper, _raw(key), cfg.eval_episodes,
                           deterministic=True).metrics()

  return TRPO(config=cfg, init=init, train_iteration=train_iteration, evaluate=evaluate,
              policy=policy, distribution=distribution)
