"""Episodes of a :class:`~wmjax.agents.base.Policy` in an env: the one rollout that agents'
evaluators and loaded policies (:func:`wmjax.load`) share, with one convention for keys.

Episode ``i`` of ``policy_episodes(..., key, episodes)`` (and of ``policy_returns``) runs on
``jax.random.split(key, episodes)[i]``. An episode's key ``k`` gives ``key_reset, key_init,
key_steps = jax.random.split(k, 3)``: the env's reset, the policy's initial carry, and the
per-step keys ``jax.random.split(key_steps, env.steps_per_episode)``. A step acts on the current
observation, then steps the env; rewards after the first ``done`` are not counted.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Key

__all__ = ["Episodes", "episode_keys", "policy_episode", "policy_episodes", "policy_returns"]


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


def policy_episode(env, policy, state, hyper, key: Key, deterministic: bool = True,
                   steps: int | None = None, start=None) -> tuple[Array, Array]:
  """One episode: ``(return, length)`` (length counts agent steps up to and including the
  first ``done``; ``steps`` if none). ``steps`` defaults to ``env.steps_per_episode``;
  ``start``: an env state to start from instead of ``env.reset(key_reset)`` (e.g. a maze that
  changes over time, as it is now)."""
  steps = env.steps_per_episode if steps is None else steps
  key_reset, key_init, key_steps = episode_keys(key)
  env_state = env.reset(key_reset) if start is None else start
  carry = policy.init(state, hyper, key_init)

  def body(c, key_t):
    env_state, carry, ret, length, ended = c
    carry, action = policy.act(state, hyper, carry, env_state.obs, key_t, deterministic)
    env_state = env.step(env_state, action)
    alive = 1.0 - ended
    ret = ret + alive * env_state.reward
    length = length + alive
    ended = jnp.maximum(ended, env_state.done)
    return (env_state, carry, ret, length, ended), None

  zero = jnp.zeros(())
  (_, _, ret, length, _), _ = jax.lax.scan(
      body, (env_state, carry, zero, zero, zero), jax.random.split(key_steps, steps))
  return ret, length


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
