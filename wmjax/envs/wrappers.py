"""Wrappers on top of brax's: action checks and normalisation, terminated vs truncated.

Episode limits, action repeat, vmap and auto-reset come from ``brax.envs.wrappers.training``
(``EpisodeWrapper``, ``VmapWrapper``, ``AutoResetWrapper``); only what brax lacks is here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.wrappers import training as brax_training

from wmjax.envs.base import Env, State, Wrapper, spec_of
from wmjax.types import Spec

__all__ = ["DiscreteActions", "NormalizeActions", "TerminationInfo", "RegisteredEnv", "wrap"]


class NormalizeActions(Wrapper):
  """Takes actions in ``[-1, 1]`` and rescales them to the env's control range.

  Actions of the wrong shape are refused at trace time with the expected shape.
  """

  def __init__(self, env: Env, low: np.ndarray, high: np.ndarray):
    super().__init__(env)
    self._low = np.asarray(low, np.float32)
    self._high = np.asarray(high, np.float32)
    self._identity = bool(np.all(self._low == -1.0) and np.all(self._high == 1.0))

  def step(self, state: State, action: jax.Array) -> State:
    action = jnp.asarray(action)
    expected = (self.env.action_size,)
    if action.shape[-1:] != expected:
      raise ValueError(
          f"action has shape {action.shape}; this environment takes actions of shape "
          f"{expected} (with leading batch axes if vmapped), in [-1, 1]."
      )
    action = jnp.clip(action, -1.0, 1.0)
    if not self._identity:
      action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
    return self.env.step(state, action)


class DiscreteActions(Wrapper):
  """Takes one integer action in ``0 .. num_actions - 1`` (shape ``()``; vmap for a batch).

  Actions of another shape or a non-integer dtype are refused at trace time; values out of
  range are clipped (they cannot be checked at trace time).
  """

  def __init__(self, env: Env, num_actions: int):
    super().__init__(env)
    self._num_actions = int(num_actions)

  def step(self, state: State, action: jax.Array) -> State:
    action = jnp.asarray(action)
    if action.shape != () or not jnp.issubdtype(action.dtype, jnp.integer):
      raise ValueError(
          f"action has shape {action.shape} and dtype {action.dtype}; this environment takes "
          f"one integer action in 0..{self._num_actions - 1} (shape (), an integer dtype; vmap "
          "the env for a batch)."
      )
    return self.env.step(state, jnp.clip(action, 0, self._num_actions - 1))


class TerminationInfo(Wrapper):
  """Adds ``info['terminated']`` and ``info['truncated']`` (floats), from brax's ``truncation``.

  ``done`` stays the episode end (either); ``terminated`` is a true terminal state only.
  """

  def reset(self, rng: jax.Array) -> State:
    state = self.env.reset(rng)
    zero = jnp.zeros_like(state.reward)
    state.info["terminated"] = zero
    state.info["truncated"] = zero
    return state

  def step(self, state: State, action: jax.Array) -> State:
    ended_before = state.done
    prev_terminated, prev_truncated = state.info["terminated"], state.info["truncated"]
    state = self.env.step(state, action)
    truncated = state.info["truncation"]
    terminated = state.done * (1.0 - truncated)
    # Past the end (no auto-reset), keep the flags the episode ended with.
    state.info["truncated"] = jnp.where(ended_before > 0, prev_truncated, truncated)
    state.info["terminated"] = jnp.where(ended_before > 0, prev_terminated, terminated)
    return state


class RegisteredEnv(Wrapper):
  """The outermost wrapper of a registered env: carries its name, spec and episode facts.

  ``steps_per_episode`` counts agent steps (each of ``action_repeat`` env steps).
  """

  def __init__(self, env: Env, name: str, spec: Spec, episode_length: int, action_repeat: int,
               reward_fn=None):
    super().__init__(env)
    self.name = name
    self.spec = spec
    self.episode_length = episode_length
    self.action_repeat = action_repeat
    self.steps_per_episode = -(-episode_length // action_repeat)
    # Known reward (obs, action in [-1, 1], next_obs) -> reward per agent step, if the env has one.
    self.reward_fn = reward_fn

  def reset(self, rng: jax.Array) -> State:
    if not (jnp.issubdtype(rng.dtype, jnp.uint32) and rng.shape[-1:] == (2,)):
      # brax's EpisodeWrapper reads rng.shape[:-1] as the batch shape: it wants raw keys.
      rng = jax.random.key_data(rng)
    return self.env.reset(rng)


def wrap(env: Env, *, name: str, episode_length: int, action_repeat: int, ctrl_low, ctrl_high,
         reward_fn=None) -> RegisteredEnv:
  """The standard stack: checked (continuous: normalised) actions, brax's episode limit +
  action repeat, termination. For a discrete env ``ctrl_low``/``ctrl_high`` are ignored."""
  spec = spec_of(env)
  if spec.discrete:
    env = DiscreteActions(env, spec.num_actions)
  else:
    env = NormalizeActions(env, ctrl_low, ctrl_high)
  env = brax_training.EpisodeWrapper(env, episode_length, action_repeat)
  env = TerminationInfo(env)
  return RegisteredEnv(env, name, spec, episode_length, action_repeat, reward_fn)
