"""Episodes of a :class:`~wmjax.agents.base.Policy` in an env: the one rollout that agents'
evaluators and loaded policies (:func:`wmjax.load`) share, with one convention for keys.

Episode ``i`` of ``policy_episodes(..., key, episodes)`` (and of ``policy_returns``) runs on
``jax.random.split(key, episodes)[i]``. An episode's key ``k`` gives ``key_reset, key_init,
key_steps = jax.random.split(k, 3)``: the env's reset, the policy's initial carry, and the
per-step keys ``jax.random.split(key_steps, env.steps_per_episode)``. A step acts on the current
observation, then steps the env; rewards after the first ``done`` are not counted.

:func:`policy_trajectories` runs the same episodes on the same keys and records each step (what
the policy saw, what it did, what that earned), for looking at what a policy does, not only at
its return.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Key

__all__ = ["Episodes", "Trajectories", "episode_keys", "policy_episode", "policy_episodes",
           "policy_returns", "policy_trajectories", "policy_trajectory"]


class Episodes(NamedTuple):
  """Whole episodes run in parallel: each one's return and length (agent steps up to and
  including the first ``done``; a length below ``env.steps_per_episode`` is a terminal state,
  e.g. a fall)."""

  returns: Array    # [episodes]
  lengths: Array    # [episodes]

  def metrics(self, prefix: str = "eval") -> dict:
    return {f"{prefix}/episode_return": self.returns, f"{prefix}/episode_length": self.lengths}


def episode_keys(key: Key) -> tuple[Key, Key, Key]:
  """``(key_reset, key_init, key_steps)`` of one episode's key."""
  key_reset, key_init, key_steps = jax.random.split(key, 3)
  return key_reset, key_init, key_steps


class Trajectories(NamedTuple):
  """Every step of episodes run by :func:`policy_trajectories` (leading axes ``[episodes, T]``;
  :func:`policy_trajectory` has no episode axis). Step ``t``: the policy saw ``obs[t]``, took
  ``actions[t]``, and the env answered ``rewards[t]`` and ``dones[t]``. Steps after the first
  ``done`` are recorded as the env gave them; ``alive`` is 1 up to and including the first
  ``done`` and 0 after, so ``(rewards * alive).sum(-1)`` is :func:`policy_episodes`'s return."""

  obs: Array
  actions: Array
  rewards: Array
  dones: Array
  alive: Array

  def returns(self) -> Array:
    return (self.rewards * self.alive).sum(-1)


def _run_episode(env, policy, state, hyper, key: Key, deterministic: bool, steps: int | None,
                 start, record: bool):
  """The one episode loop: ``(return, length, Trajectories or None)``."""
  steps = env.steps_per_episode if steps is None else steps
  key_reset, key_init, key_steps = episode_keys(key)
  env_state = env.reset(key_reset) if start is None else start
  carry = policy.init(state, hyper, key_init)

  def body(c, key_t):
    env_state, carry, ret, length, ended = c
    obs = env_state.obs
    carry, action = policy.act(state, hyper, carry, obs, key_t, deterministic)
    env_state = env.step(env_state, action)
    alive = 1.0 - ended
    ret = ret + alive * env_state.reward
    length = length + alive
    ended = jnp.maximum(ended, env_state.done)
    step = (obs, action, env_state.reward, env_state.done, alive) if record else None
    return (env_state, carry, ret, length, ended), step

  zero = jnp.zeros(())
  (_, _, ret, length, _), recorded = jax.lax.scan(
      body, (env_state, carry, zero, zero, zero), jax.random.split(key_steps, steps))
  return ret, length, (Trajectories(*recorded) if record else None)


def policy_episode(env, policy, state, hyper, key: Key, deterministic: bool = True,
                   steps: int | None = None, start=None) -> tuple[Array, Array]:
  """One episode: ``(return, length)`` (length counts agent steps up to and including the
  first ``done``; ``steps`` if none). ``steps`` defaults to ``env.steps_per_episode``;
  ``start``: an env state to start from instead of ``env.reset(key_reset)`` (e.g. a maze that
  changes over time, as it is now)."""
  ret, length, _ = _run_episode(env, policy, state, hyper, key, deterministic, steps, start,
                                record=False)
  return ret, length


def policy_trajectory(env, policy, state, hyper, key: Key, deterministic: bool = True,
                      steps: int | None = None, start=None) -> Trajectories:
  """:func:`policy_episode`'s episode for ``key``, every step recorded."""
  return _run_episode(env, policy, state, hyper, key, deterministic, steps, start,
                      record=True)[2]


def policy_trajectories(env, policy, state, hyper, key: Key, episodes: int,
                        deterministic: bool = True) -> Trajectories:
  """:func:`policy_episodes`'s episodes for ``key`` (the same keys, so the same episodes), every
  step recorded: leading axes ``[episodes, env.steps_per_episode]``."""
  keys = jax.random.split(key, episodes)
  return jax.vmap(lambda k: policy_trajectory(env, policy, state, hyper, k, deterministic))(keys)


def policy_episodes(env, policy, state, hyper, key: Key, episodes: int,
                    deterministic: bool = True) -> Episodes:
  """Returns and lengths of ``episodes`` episodes run in parallel (vmapped), on the keys
  ``jax.random.split(key, episodes)``."""
  keys = jax.random.split(key, episodes)
  return Episodes(*jax.vmap(
      lambda k: policy_episode(env, policy, state, hyper, k, deterministic))(keys))


def policy_returns(env, policy, state, hyper, key: Key, episodes: int,
                   deterministic: bool = True) -> Array:
  """Returns ``[episodes]`` of :func:`policy_episodes`."""
  return policy_episodes(env, policy, state, hyper, key, episodes, deterministic).returns
