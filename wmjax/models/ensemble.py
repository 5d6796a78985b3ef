"""Probabilistic ensemble of Gaussian dynamics models (PETS, Chua et al. 2018).

Each of ``E`` members is an MLP mapping a normalised input (preprocessed observation ++ action)
to the mean and log-variance of a normalised target: the observation delta ``next_obs - obs``,
plus the reward when ``learn_reward``. All members share one params pytree with a leading
``[E]`` axis and are trained together with ``vmap``.

Shapes: ``E`` members, ``K`` elites, ``C`` buffer capacity, ``O`` observation size, ``A`` action
size, ``I`` network input size, ``D`` target size (``O + 1`` with a learned reward, else ``O``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wmjax.nets.mlp import MLP, get_activation
from wmjax.types import Array, Key, Metrics, PyTree, Transition

_STD_EPS = 1e-6          # a target or input with smaller spread is left unscaled
_EVAL_CHUNK = 4096       # rows per vmapped chunk when scoring the members after a fit
_TRAIN_SAMPLE = 4096     # training rows (at least) on which model/train_mse is estimated
_INIT_MAX_LOGVAR = 0.5   # PETS / mbrl-lib initial soft bounds
_INIT_MIN_LOGVAR = -10.0


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
  """Static configuration: every field decides compilation."""

  obs_size: int
  action_size: int
  ensemble_size: int = 7
  num_elites: int = 5
  hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
  activation: str = "silu"
  learn_reward: bool = True             # also predict the reward as one more Gaussian output
  angle_dims: tuple[int, ...] = ()      # obs dims that are angles: inputs use (sin, cos) of them
  batch_size: int = 256
  train_steps: int = 200                # gradient steps per fit() call, in one lax.scan
  holdout_fraction: float = 0.1
  logvar_bound_coef: float = 0.01
  # beta-NLL (Seitzer et al. 2022): each point's NLL is weighted by stop_grad(var ** beta).
  # 0 is PETS' plain Gaussian NLL. With 0 the net can explain a hard-to-fit output (often the
  # reward) with a large variance instead of fitting its mean; 0.5 fits means much better.
  nll_beta: float = 0.0

  def __post_init__(self):
    if self.obs_size < 1:
      raise ValueError(f"obs_size must be >= 1, got {self.obs_size}")
    if self.action_size < 0:
      raise ValueError(f"action_size must be >= 0, got {self.action_size}")
    if self.ensemble_size < 1:
      raise ValueError(f"ensemble_size must be >= 1, got {self.ensemble_size}")
    if not 1 <= self.num_elites <= self.ensemble_size:
      raise ValueError(
          f"num_elites must be in [1, ensemble_size={self.ensemble_size}], got {self.num_elites}"
      )
    if not all(isinstance(h, int) and h >= 1 for h in self.hidden_sizes):
      raise ValueError(f"hidden_sizes must be positive ints, got {self.hidden_sizes}")
    get_activation(self.activation)  # raises on an unknown name
    if len(set(self.angle_dims)) != len(self.angle_dims) or not all(
        0 <= d < self.obs_size for d in self.angle_dims
    ):
      raise ValueError(
          f"angle_dims must be distinct obs dims in [0, {self.obs_size}), got {self.angle_dims}"
      )
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if self.train_steps < 1:
      raise ValueError(f"train_steps must be >= 1, got {self.train_steps}")
    if not 0.0 <= self.holdout_fraction < 1.0:
      raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
    if not 0.0 <= self.nll_beta <= 1.0:
      raise ValueError(f"nll_beta must be in [0, 1], got {self.nll_beta}")
    if self.logvar_bound_coef < 0:
      raise ValueError(f"logvar_bound_coef must be >= 0, got {self.logvar_bound_coef}")

  @property
  def target_size(self) -> int:
    """``D``: observation delta, plus the reward when it is learned."""
    return self.obs_size + int(self.learn_reward)

  @property
  def input_size(self) -> int:
    """``I``: each angle dim becomes (sin, cos), then the action is appended."""
    return self.obs_size + len(self.angle_dims) + self.action_size


class Normalizer(NamedTuple):
  input_mean: Array    # [I]
  input_std: Array     # [I]
  target_mean: Array   # [D]
  target_std: Array    # [D]
  target_min: Array    # [D] smallest raw target seen in training (bounds predicted rewards)
  target_max: Array    # [D] largest


class EnsembleState(NamedTuple):
  params: PyTree       # every leaf has a leading [E] axis; incl. max_logvar / min_logvar [E, D]
  opt_state: Any       # optax inject_hyperparams(adamw) state: lr and weight decay live here
  normalizer: Normalizer
  elite_idx: Array     # [K] int32, members sorted by validation error (best first)


class Ensemble(NamedTuple):
  """Pure functions over an ``EnsembleState``; see ``make_ensemble``."""

  config: EnsembleConfig
  init: Callable[..., EnsembleState]
  fit: Callable[[EnsembleState, Key, Transition, Array], tuple[EnsembleState, Metrics]]
  predict: Callable[[EnsembleState, Array, Array], tuple[Array, Array]]
  predict_members: Callable[[EnsembleState, Array, Array, Array], tuple[Array, Array]]
  preprocess: Callable[[Array, Array], Array]


def _soft_bound_logvar(raw: Array, max_lv: Array, min_lv: Array) -> Array:
  logvar = max_lv - jax.nn.softplus(max_lv - raw)
  return min_lv + jax.nn.softplus(logvar - min_lv)


def _kernel_mask(params: PyTree) -> PyTree:
  """Weight decay applies to dense kernels only (not biases or the log-variance bounds)."""

  def is_kernel(path, _):
    last = path[-1]
    return getattr(last, "key", None) == "kernel"

  return jax.tree_util.tree_map_with_path(is_kernel, params)


def _make_optimizer(learning_rate, weight_decay) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
      learning_rate=learning_rate, weight_decay=weight_decay, mask=_kernel_mask
  )


def _masked_mean_std(x: Array, mask: Array, count: Array) -> tuple[Array, Array]:
  """Mean and std (ddof 0) over rows of ``x [C, F]`` where ``mask [C]``; garbage rows ignored."""
  m = mask[:, None]
  mean = jnp.sum(jnp.where(m, x, 0.0), axis=0) / count
  var = jnp.sum(jnp.where(m, jnp.square(x - mean), 0.0), axis=0) / count
  std = jnp.sqrt(var)
  return mean, jnp.where(std < _STD_EPS, 1.0, std)


def make_ensemble(config: EnsembleConfig) -> Ensemble:
  """Builds the pure functions of a PETS probabilistic ensemble."""
  cfg = config
  num_obs, num_out = cfg.obs_size, cfg.target_size
  num_members, num_elites = cfg.ensemble_size, cfg.num_elites
  module = MLP(tuple(cfg.hidden_sizes), 2 * num_out, cfg.activation)
  angle = jnp.asarray(cfg.angle_dims, jnp.int32)
  plain = jnp.asarray([d for d in range(num_obs) if d not in cfg.angle_dims], jnp.int32)

  def preprocess(obs: Array, action: Array) -> Array:
    """Raw network input: ``obs [..., O]``, ``action [..., A]`` -> ``[..., I]``."""
    if not cfg.angle_dims:
      return jnp.concatenate([obs, action], axis=-1)
    theta = obs[..., angle]
    return jnp.concatenate([obs[..., plain], jnp.sin(theta), jnp.cos(theta), action], axis=-1)

  def targets_of(data: Transition) -> Array:
    """Raw targets ``[..., D]``; angle deltas are wrapped to [-pi, pi)."""
    delta = data.next_obs - data.obs
    if cfg.angle_dims:
      wrapped = jnp.mod(delta[..., angle] + jnp.pi, 2 * jnp.pi) - jnp.pi
      delta = delta.at[..., angle].set(wrapped)
    if cfg.learn_reward:
      delta = jnp.concatenate([delta, data.reward[..., None]], axis=-1)
    return delta

  def apply_member(params: PyTree, x_norm: Array) -> tuple[Array, Array]:
    """One member on normalised inputs ``[..., I]`` -> normalised (mean, logvar) ``[..., D]``."""
    out = module.apply(params["net"], x_norm)
    mean, raw = out[..., :num_out], out[..., num_out:]
    return mean, _soft_bound_logvar(raw, params["max_logvar"], params["min_logvar"])

  def init(key: Key, learning_rate=1e-3, weight_decay=5e-5) -> EnsembleState:
    """``learning_rate`` and ``weight_decay`` may be traced scalars (vmapped in sweeps)."""
    keys = jax.random.split(key, num_members)
    net = jax.vmap(module.init, in_axes=(0, None))(keys, jnp.zeros((1, cfg.input_size)))
    params = {
        "net": net,
        "max_logvar": jnp.full((num_members, num_out), _INIT_MAX_LOGVAR, jnp.float32),
        "min_logvar": jnp.full((num_members, num_out), _INIT_MIN_LOGVAR, jnp.float32),
    }
    normalizer = Normalizer(
        input_mean=jnp.zeros(cfg.input_size),
        input_std=jnp.ones(cfg.input_size),
        target_mean=jnp.zeros(num_out),
        target_std=jnp.ones(num_out),
        target_min=jnp.full(num_out, -jnp.inf),
        target_max=jnp.full(num_out, jnp.inf),
    )
    opt_state = _make_optimizer(learning_rate, weight_decay).init(params)
    return EnsembleState(params, opt_state, normalizer, jnp.arange(num_elites, dtype=jnp.int32))

  def _denormalize(state: EnsembleState, obs: Array, mean: Array, logvar: Array):
    norm = state.normalizer
    mean = mean * norm.target_std + norm.target_mean
    logvar = logvar + 2.0 * jnp.log(norm.target_std)
    next_obs = obs + mean[..., :num_obs]
    return jnp.concatenate([next_obs, mean[..., num_obs:]], axis=-1), logvar

  def _normalize_input(state: EnsembleState, obs: Array, action: Array) -> Array:
    norm = state.normalizer
    return (preprocess(obs, action) - norm.input_mean) / norm.input_std

  def predict(state: EnsembleState, obs: Array, action: Array) -> tuple[Array, Array]:
    """All members: ``obs [..., O]``, ``action [..., A]`` -> mean, logvar ``[E, ..., D]``.

    Raw units; the first ``O`` outputs are the next observation, the last the reward.
    """
    x = _normalize_input(state, obs, action)
    mean, logvar = jax.vmap(apply_member, in_axes=(0, None))(state.params, x)
    return _denormalize(state, obs, mean, logvar)

  def predict_members(
      state: EnsembleState, member_idx: Array, obs: Array, action: Array
  ) -> tuple[Array, Array]:
    """Member ``member_idx[g]`` on its own group: ``obs [G, B, O]``, ``action [G, B, A]``.

    Returns mean, logvar ``[G, B, D]`` in raw units; costs ``G * B`` single-member evaluations.
    """
    params = jax.tree.map(lambda p: p[member_idx], state.params)   # [G, ...]
    x = _normalize_input(state, obs, action)                       # [G, B, I]
    mean, logvar = jax.vmap(apply_member)(params, x)
    return _denormalize(state, obs, mean, logvar)

  def _nll(params: PyTree, x: Array, y: Array) -> tuple[Array, tuple[Array, Array]]:
    """Sum over members of the Gaussian NLL; ``x [E, B, I]``, ``y [E, B, D]`` normalised."""
    mean, logvar = jax.vmap(apply_member)(params, x)
    point_nll = jnp.square(mean - y) * jnp.exp(-logvar) + logvar
    if cfg.nll_beta > 0:
      point_nll = point_nll * jax.lax.stop_gradient(jnp.exp(cfg.nll_beta * logvar))
    nll = jnp.mean(point_nll, axis=(1, 2))                                          # [E]
    bound = cfg.logvar_bound_coef * (
        jnp.sum(params["max_logvar"]) - jnp.sum(params["min_logvar"])
    )
    return jnp.sum(nll) + bound, (jnp.mean(nll), jnp.mean(logvar))

  def fit(
      state: EnsembleState, key: Key, data: Transition, size: Array
  ) -> tuple[EnsembleState, Metrics]:
    """``train_steps`` minibatch steps on rows ``[0, size)`` of ``data`` (leading axis ``[C]``)."""
    boot_key, perm_key, scan_key = jax.random.split(key, 3)
    capacity = data.obs.shape[0]
    if data.obs.shape != (capacity, num_obs) or data.next_obs.shape != (capacity, num_obs):
      raise ValueError(
          f"fit: obs/next_obs must be [C, {num_obs}], got {data.obs.shape}, {data.next_obs.shape}"
      )
    if data.action.shape != (capacity, cfg.action_size):
      raise ValueError(f"fit: action must be [C, {cfg.action_size}], got {data.action.shape}")
    if cfg.learn_reward and data.reward.shape != (capacity,):
      raise ValueError(f"fit: reward must be [C], got {data.reward.shape}")

    size = jnp.minimum(jnp.asarray(size, jnp.int32), capacity)
    rows = jnp.arange(capacity)
    valid = rows < size
    # A fixed key, so each row's split is stable as the buffer grows; a compile-time constant.
    with jax.ensure_compile_time_eval():
      is_val = jax.random.uniform(jax.random.key(0), (capacity,)) < cfg.holdout_fraction
    train_mask = valid & ~is_val
    train_mask = jnp.where(jnp.any(train_mask), train_mask, valid)
    val_mask = valid & is_val & ~train_mask
    n_train = jnp.sum(train_mask).astype(jnp.int32)
    n_val = jnp.sum(val_mask).astype(jnp.int32)

    inputs = preprocess(data.obs, data.action)                    # [C, I]
    targets = targets_of(data)                                    # [C, D]
    in_mean, in_std = _masked_mean_std(inputs, train_mask, n_train)
    out_mean, out_std = _masked_mean_std(targets, train_mask, n_train)
    big = jnp.finfo(targets.dtype).max
    out_min = jnp.min(jnp.where(train_mask[:, None], targets, big), axis=0)
    out_max = jnp.max(jnp.where(train_mask[:, None], targets, -big), axis=0)
    normalizer = Normalizer(in_mean, in_std, out_mean, out_std, out_min, out_max)
    x_all = (inputs - in_mean) / in_std
    y_all = (targets - out_mean) / out_std

    # Training rows first (stable), then a per-member bootstrap: C draws, the first n_train used.
    train_rows = jnp.argsort(~train_mask, stable=True)            # [C]
    draws = jax.random.randint(boot_key, (num_members, capacity), 0, n_train)
    boot = train_rows[draws]                                      # [E, C] row ids

    def new_perm(k: Key) -> Array:
      """[E, C]: each member's first n_train slots are a permutation of range(n_train)."""
      u = jax.random.uniform(k, (num_members, capacity))
      return jnp.argsort(jnp.where(rows < n_train, u, 2.0), axis=-1).astype(jnp.int32)

    tx = _make_optimizer(0.0, 0.0)   # placeholder values: the live ones are in opt_state
    members = jnp.arange(num_members)[:, None]
    offsets = jnp.arange(cfg.batch_size)

    def train_step(carry, k):
      params, opt_state, perm, cursor = carry
      slot = perm[members, (cursor + offsets) % n_train]          # [E, B]
      idx = boot[members, slot]                                   # [E, B]
      (_, (nll, logvar_mean)), grads = jax.value_and_grad(_nll, has_aux=True)(
          params, x_all[idx], y_all[idx]
      )
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      cursor = cursor + cfg.batch_size
      epoch_done = cursor >= n_train
      perm = jax.lax.cond(epoch_done, new_perm, lambda _: perm, k)
      cursor = jnp.where(epoch_done, 0, cursor)
      return (params, opt_state, perm, cursor), (nll, logvar_mean)

    carry = (state.params, state.opt_state, new_perm(perm_key), jnp.zeros((), jnp.int32))
    step_keys = jax.random.split(scan_key, cfg.train_steps)
    (params, opt_state, _, _), (nlls, logvars) = jax.lax.scan(train_step, carry, step_keys)

    # Per-member MSE (normalised targets) on the holdout rows, which pick the elites, and on up
    # to max(V, _TRAIN_SAMPLE) training rows, which only the metric model/train_mse reads: not
    # a pass over the whole buffer. The holdout's row ids are a compile-time constant (is_val
    # above); rows past ``size`` are masked out.
    def sq_err(ids):
      def row(i):
        mean, _ = jax.vmap(apply_member, in_axes=(0, None))(params, x_all[i])   # [E, D]
        return jnp.mean(jnp.square(mean - y_all[i]), axis=-1)                  # [E]
      if ids.shape[0] <= _EVAL_CHUNK:
        return jax.vmap(row)(ids)                                  # [N, E]
      return jax.lax.map(row, ids, batch_size=_EVAL_CHUNK)

    val_ids = jnp.asarray(np.flatnonzero(np.asarray(is_val)), jnp.int32)    # [V], static
    sample = min(capacity, max(int(val_ids.shape[0]), _TRAIN_SAMPLE))
    # Every training row if they fit in the sample, else evenly spaced ones: the same rows at
    # every fit of one buffer, so the metric compares across fits.
    slots = jnp.arange(sample)
    spread = jnp.floor(slots * (n_train / sample)).astype(jnp.int32)
    train_ids = train_rows[jnp.where(n_train <= sample, slots, spread)]
    weight = (slots < n_train).astype(jnp.float32)[:, None]
    train_mse = jnp.sum(weight * sq_err(train_ids), axis=0) / jnp.maximum(jnp.sum(weight), 1)
    if cfg.holdout_fraction > 0 and val_ids.shape[0] > 0:
      in_val = val_mask[val_ids]
      val_sum = jnp.sum(jnp.where(in_val[:, None], sq_err(val_ids), 0.0), axis=0)
      val_mse = jnp.where(n_val > 0, val_sum / jnp.maximum(n_val, 1), train_mse)
    else:
      val_mse = train_mse
    elite_idx = jnp.argsort(val_mse)[:num_elites].astype(jnp.int32)

    last = max(1, cfg.train_steps // 10)
    metrics = {
        "model/loss": jnp.mean(nlls[-last:]),
        "model/train_mse": jnp.mean(train_mse),
        "model/val_mse": jnp.mean(val_mse[elite_idx]),
        "model/logvar_mean": jnp.mean(logvars[-last:]),
    }
    return EnsembleState(params, opt_state, normalizer, elite_idx), metrics

  return Ensemble(
      config=cfg,
      init=init,
      fit=fit,
      predict=predict,
      predict_members=predict_members,
      preprocess=preprocess,
  )

