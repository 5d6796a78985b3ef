"""Particle propagation through a probabilistic ensemble: the PETS planning objective.

Shapes: ``N`` candidate action sequences, ``H`` horizon, ``A`` action size, ``O`` observation
size, ``D`` model output size, ``P`` particles per candidate, ``M = N * P`` particles, ``K``
elites, ``Mp`` particles padded to a multiple of ``K``, ``B = Mp // K`` particles per elite.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from wmjax.models.ensemble import Ensemble, EnsembleState
from wmjax.types import Array, Key, ObjectiveFn

PROPAGATIONS = ("ts1", "tsinf", "fixed_model", "expectation")

RewardFn = Callable[[Array, Array, Array], Array]   # (obs [O], action [A], next_obs [O]) -> []
TerminationFn = Callable[[Array], Array]            # next_obs [O] -> bool []


def _check_actions(actions: Array, action_size: int, rank: int, name: str) -> None:
  if actions.ndim != rank or actions.shape[-1] != action_size:
    dims = "[N, H, A]" if rank == 3 else "[B, H, A]"
    raise ValueError(
        f"{name}: actions must be {dims} with A = {action_size}, got shape {actions.shape}"
    )


def _check_reward_source(ensemble: Ensemble, reward_fn, name: str) -> None:
  if reward_fn is None and not ensemble.config.learn_reward:
    raise ValueError(
        f"{name}: the ensemble does not learn the reward (learn_reward=False); pass reward_fn"
    )


def make_objective(
    ensemble: Ensemble,
    state: EnsembleState,
    obs: Array,
    *,
    num_particles: int,
    propagation: str = "ts1",
    reward_fn: RewardFn | None = None,
    termination_fn: TerminationFn | None = None,
    disagreement_coef: float | Array = 0.0,
    discount: float | Array = 1.0,
) -> ObjectiveFn:
  """Returns ``objective(key, actions [N, H, A]) -> returns [N]`` from the current ``obs [O]``.

  Each candidate's return is the mean over its particles of the discounted sum of rewards,
  minus ``disagreement_coef * sum_t mean_particles(disagreement_t)``, where the disagreement is
  the std over elites of the normalised predicted means, averaged over output dims. Rewards and
  disagreement after a terminal state (``termination_fn``) are zeroed.

  Modes: ``ts1`` (a fresh random elite per particle at every step), ``tsinf`` (one random elite
  per particle for the whole horizon), ``fixed_model`` (particle ``p`` uses elite ``p % K``),
  ``expectation`` (the mean of the elites' means, no sampling). Random assignments are balanced:
  a random permutation of the particles is split into ``K`` equal groups (as mbrl-lib), so each
  particle step costs one member evaluation unless the disagreement term needs all elites.
  """
  if propagation not in PROPAGATIONS:
    raise ValueError(f"Unknown propagation {propagation!r}; accepted: {list(PROPAGATIONS)}")
  if num_particles < 1:
    raise ValueError(f"num_particles must be >= 1, got {num_particles}")
  _check_reward_source(ensemble, reward_fn, "make_objective")
  cfg = ensemble.config
  num_obs, num_elites = cfg.obs_size, cfg.num_elites
  if obs.shape != (num_obs,):
    raise ValueError(f"make_objective: obs must be [{num_obs}], got shape {obs.shape}")
  use_disagreement = not (
      isinstance(disagreement_coef, (int, float)) and disagreement_coef == 0
  )
  elites = state.elite_idx                                         # [K]
  target_std = state.normalizer.target_std                         # [D]

  def all_elites(obs_r: Array, act_r: Array) -> tuple[Array, Array]:
    """Every elite on every row: ``[R, O]``, ``[R, A]`` -> mean, logvar ``[K, R, D]``."""
    tile = lambda x: jnp.broadcast_to(x, (num_elites, *x.shape))
    return ensemble.predict_members(state, elites, tile(obs_r), tile(act_r))

  def disagreement(means: Array) -> Array:
    """``[K, R, D]`` -> ``[R]``."""
    return jnp.mean(jnp.std(means, axis=0) / target_std, axis=-1)

  def rewards_of(obs_r, act_r, next_r, mean_r):
    if reward_fn is not None:
      return jax.vmap(reward_fn)(obs_r, act_r, next_r)
    # A learned reward is bounded by the rewards seen in the data: off the data an MLP
    # extrapolates freely, and the planner would chase those made-up rewards.
    norm = state.normalizer
    return jnp.clip(mean_r[:, num_obs], norm.target_min[num_obs], norm.target_max[num_obs])

  def accumulate(carry, reward_t, dis_t, next_r):
    """Masks by alive, then updates the alive flags from ``next_r``."""
    obs_r, alive = carry
    del obs_r
    reward_t = jnp.where(alive, reward_t, 0.0)
    dis_t = jnp.where(alive, dis_t, 0.0)
    if termination_fn is not None:
      alive = alive & ~jax.vmap(termination_fn)(next_r).astype(bool)
    return (next_r, alive), (reward_t, dis_t)

  def finish(rewards: Array, dis: Array, num_cand: int, per_cand: int) -> Array:
    """``rewards``, ``dis`` ``[H, R]`` (first ``num_cand * per_cand`` rows real) -> ``[N]``."""
    horizon = rewards.shape[0]
    rewards = rewards[:, : num_cand * per_cand].reshape(horizon, num_cand, per_cand)
    discounts = jnp.asarray(discount, rewards.dtype) ** jnp.arange(horizon, dtype=rewards.dtype)
    returns = jnp.einsum("t,tnp->n", discounts, rewards) / per_cand
    if use_disagreement:
      dis = dis[:, : num_cand * per_cand].reshape(horizon, num_cand, per_cand)
      returns = returns - disagreement_coef * jnp.sum(jnp.mean(dis, axis=-1), axis=0)
    return returns

  def expectation_objective(key: Key, actions: Array) -> Array:
    # Deterministic: all particles of a candidate coincide, so one row per candidate is exact.
    del key
    num_cand = actions.shape[0]
    obs0 = jnp.broadcast_to(obs, (num_cand, num_obs))

    def step(carry, act_t):
      obs_r, _ = carry
      means, _ = all_elites(obs_r, act_t)                          # [K, N, D]
      mean_r = jnp.mean(means, axis=0)                             # [N, D]
      next_r = mean_r[:, :num_obs]
      reward_t = rewards_of(obs_r, act_t, next_r, mean_r)
      dis_t = disagreement(means) if use_disagreement else jnp.zeros_like(reward_t)
      return accumulate(carry, reward_t, dis_t, next_r)

    carry = (obs0, jnp.ones(num_cand, bool))
    _, (rewards, dis) = jax.lax.scan(step, carry, jnp.swapaxes(actions, 0, 1))
    return finish(rewards, dis, num_cand, 1)

  def sampling_objective(key: Key, actions: Array) -> Array:
    perm_key, noise_key = jax.random.split(key)
    num_cand, horizon, _ = actions.shape
    num_real = num_cand * num_particles
    num_padded = -(-num_real // num_elites) * num_elites
    group = num_padded // num_elites
    act = jnp.repeat(actions, num_particles, axis=0)               # [M, H, A]
    act = jnp.pad(act, ((0, num_padded - num_real), (0, 0), (0, 0)))
    act = jnp.swapaxes(act, 0, 1)                                  # [H, Mp, A]
    obs0 = jnp.broadcast_to(obs, (num_padded, num_obs))

    # Particles live in "slot" order: slot q is evaluated by elite q // group, and slot_of[q]
    # is the particle in slot q. TS-inf / fixed-model fix the order once; TS-1 reshuffles the
    # slots every step with one gather (no scatter back), and the per-slot rewards are put back
    # in particle order once, after the rollout.
    if propagation == "fixed_model":
      slot_of = jnp.arange(num_padded).reshape(group, num_elites).T.reshape(-1)
    else:
      slot_of = jax.random.permutation(perm_key, num_padded)
    step_keys = jax.random.split(noise_key, horizon)
    act_all = act                                                  # [H, Mp, A] particle order

    def step(carry, xs):
      key_t, t = xs
      shuffle_key_t, sample_key_t = jax.random.split(key_t)
      obs_r, alive, slot_of = carry
      if propagation == "ts1":
        shuffle = jax.random.permutation(shuffle_key_t, num_padded)
        obs_r, alive, slot_of = obs_r[shuffle], alive[shuffle], slot_of[shuffle]
      act_t = act_all[t][slot_of]                                  # [Mp, A] slot order
      if use_disagreement:
        means, logvars = all_elites(obs_r, act_t)                  # [K, Mp, D]
        member = jnp.arange(num_padded) // group
        pick = lambda x: jnp.take_along_axis(x, member[None, :, None], axis=0)[0]
        mean_r, logvar_r = pick(means), pick(logvars)              # [Mp, D]
        dis_t = disagreement(means)
      else:
        grouped = lambda x: x.reshape(num_elites, group, x.shape[-1])
        mean_g, logvar_g = ensemble.predict_members(
            state, elites, grouped(obs_r), grouped(act_t)
        )                                                          # [K, B, D]
        mean_r = mean_g.reshape(num_padded, -1)
        logvar_r = logvar_g.reshape(num_padded, -1)                # [Mp, D]
        dis_t = jnp.zeros(num_padded)
      noise = jax.random.normal(sample_key_t, (num_padded, num_obs))
      next_r = mean_r[:, :num_obs] + jnp.exp(0.5 * logvar_r[:, :num_obs]) * noise
      reward_t = rewards_of(obs_r, act_t, next_r, mean_r)
      (next_r, alive), (reward_t, dis_t) = accumulate((obs_r, alive), reward_t, dis_t, next_r)
      return (next_r, alive, slot_of), (reward_t, dis_t, slot_of)

    if propagation == "ts1":
      carry = (obs0, jnp.ones(num_padded, bool), jnp.arange(num_padded))
    else:
      carry = (obs0, jnp.ones(num_padded, bool), slot_of)
    _, (rewards, dis, slots) = jax.lax.scan(step, carry, (step_keys, jnp.arange(horizon)))
    # Back to particle order: [H, Mp] slot order -> particle order, one scatter per rollout.
    to_particles = lambda x, s: jnp.zeros_like(x).at[s].set(x)
    rewards = jax.vmap(to_particles)(rewards, slots)
    dis = jax.vmap(to_particles)(dis, slots)
    return finish(rewards, dis, num_cand, num_particles)

  def objective(key: Key, actions: Array) -> Array:
    _check_actions(actions, cfg.action_size, 3, "objective")
    if propagation == "expectation":
      return expectation_objective(key, actions)
    return sampling_objective(key, actions)

  return objective


def rollout(
    ensemble: Ensemble,
    state: EnsembleState,
    key: Key,
    obs: Array,
    actions: Array,
    members: Array,
    *,
    reward_fn: RewardFn | None = None,
) -> tuple[Array, Array]:
  """Rolls each row with its own member (TS-inf style), sampling next observations.

  ``obs [B, O]``, ``actions [B, H, A]``, ``members [B]`` (member ids in ``[0, E)``) ->
  ``next_obs [B, H, O]``, ``rewards [B, H]`` (the member's mean reward, or ``reward_fn``).
  Rows may use any member, so every member is evaluated on every row and the row's own is
  selected: ``E`` evaluations per row step (robust to unbalanced ``members``, at ``E``x cost).
  """
  _check_reward_source(ensemble, reward_fn, "rollout")
  _check_actions(actions, ensemble.config.action_size, 3, "rollout")
  num_obs = ensemble.config.obs_size
  num_rows, horizon, _ = actions.shape
  if obs.shape != (num_rows, num_obs) or members.shape != (num_rows,):
    raise ValueError(
        f"rollout: obs must be [{num_rows}, {num_obs}] and members [{num_rows}], "
        f"got {obs.shape} and {members.shape}"
    )
  step_keys = jax.random.split(key, horizon)

  def step(obs_t, xs):
    key_t, act_t = xs
    means, logvars = ensemble.predict(state, obs_t, act_t)         # [E, B, D]
    pick = lambda x: jnp.take_along_axis(x, members[None, :, None], axis=0)[0]
    mean, logvar = pick(means), pick(logvars)                      # [B, D]
    noise = jax.random.normal(key_t, (num_rows, num_obs))
    next_obs = mean[:, :num_obs] + jnp.exp(0.5 * logvar[:, :num_obs]) * noise
    if reward_fn is not None:
      reward = jax.vmap(reward_fn)(obs_t, act_t, next_obs)
    else:
      reward = mean[:, num_obs]
    return next_obs, (next_obs, reward)

  _, (next_obs, rewards) = jax.lax.scan(step, obs, (step_keys, jnp.swapaxes(actions, 0, 1)))
  return jnp.swapaxes(next_obs, 0, 1), jnp.swapaxes(rewards, 0, 1)
