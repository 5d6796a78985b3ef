"""gymnax environments behind brax's functional interface: the ``gymnax/`` suite, and gymnax
envs given to :func:`wmjax.envs.register_env`.

gymnax (Lange 2022) steps ``env.step_env(key, state, action, params) -> (obs, state, reward,
done, info)`` with explicit environment parameters and a key per step. :class:`GymnaxEnv`
carries the gymnax state and a key in brax's ``State.info`` and steps without gymnax's own
auto-reset. gymnax ends an episode at ``params.max_steps_in_episode`` inside ``done``; here the
env runs with that limit lifted, so its ``done`` is a true terminal state only, and the time
limit is brax's ``EpisodeWrapper`` (the registry's episode length, the env's own limit by
default): ``terminated`` and ``truncated`` stay apart.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

__all__ = ["GymnaxEnv", "is_gymnax_env", "adapt", "suite_names", "build"]

# MNISTBandit downloads its data set at import time: it cannot be built here.
_EXCLUDED = ("MNISTBandit-bsuite",)


def is_gymnax_env(obj) -> bool:
  return all(hasattr(obj, a) for a in ("step_env", "reset_env", "default_params",
                                       "action_space", "observation_space"))


class GymnaxEnv(Env):
  """A gymnax ``Environment`` with brax's ``reset(key)`` / ``step(state, action)``.

  Observations are float32 arrays of the env's observation shape. Discrete action spaces give
  ``num_actions`` (one integer action); continuous ones a control range (:attr:`ctrl_range`)
  that :func:`wmjax.envs.make` maps [-1, 1] onto.
  """

  def __init__(self, env, params=None):
    self.gymnax_env = env
    params = env.default_params if params is None else params
    self.time_limit = int(getattr(params, "max_steps_in_episode", 1000))
    if hasattr(params, "max_steps_in_episode"):   # brax's EpisodeWrapper keeps the time limit
      params = params.replace(max_steps_in_episode=np.iinfo(np.int32).max)
    self.params = params
    space = env.action_space(params)
    self._obs_shape = tuple(int(d) for d in env.observation_space(params).shape)
    if hasattr(space, "n"):
      self.num_actions = int(space.n)
      self._action_size = 1
      self.ctrl_range = None
    else:
      shape = tuple(int(d) for d in space.shape)
      if len(shape) != 1:
        raise ValueError(f"{type(env).__name__}: continuous actions of shape {shape}; wmjax "
                         "takes one vector of actions")
      self._action_size = shape[0]
      low = np.broadcast_to(np.asarray(space.low, np.float32), shape).copy()
      high = np.broadcast_to(np.asarray(space.high, np.float32), shape).copy()
      self.ctrl_range = (low, high)

  @property
  def observation_size(self):
    return self._obs_shape[0] if len(self._obs_shape) == 1 else self._obs_shape

  @property
  def action_size(self) -> int:
    return self._action_size

  @property
  def backend(self) -> str:
    return "gymnax"

  def _obs(self, obs) -> jax.Array:
    return jnp.asarray(obs, jnp.float32).reshape(self._obs_shape)

  def reset(self, rng: jax.Array) -> State:
    key_reset, key_next = jax.random.split(rng)
    obs, env_state = self.gymnax_env.reset_env(key_reset, self.params)
    zero = jnp.zeros((), jnp.float32)
    return State(pipeline_state=None, obs=self._obs(obs), reward=zero, done=zero,
                 info={"gymnax_state": env_state, "gymnax_key": key_next})

  def step(self, state: State, action: jax.Array) -> State:
    key_step, key_next = jax.random.split(state.info["gymnax_key"])
    obs, env_state, reward, done, _ = self.gymnax_env.step_env(
        key_step, state.info["gymnax_state"], action, self.params)
    info = {**state.info, "gymnax_state": env_state, "gymnax_key": key_next}
    return state.replace(obs=self._obs(obs), reward=jnp.asarray(reward, jnp.float32),
                         done=jnp.asarray(done, jnp.float32), info=info)


def adapt(env, params=None):
  """``(GymnaxEnv, ctrl_low, ctrl_high)`` (``None`` bounds for discrete actions), as the
  registry's builders return."""
  wrapped = GymnaxEnv(env, params)
  if wrapped.ctrl_range is None:
    return wrapped, None, None
  return (wrapped, *wrapped.ctrl_range)


def suite_names() -> list[str]:
  import gymnax

  return [n for n in gymnax.registered_envs if n not in _EXCLUDED]


def build(name: str, **kwargs):
  """The registry's builder for ``gymnax/<name>``: ``kwargs`` replace fields of the env's
  default parameters (e.g. ``gravity=9.0``)."""
  import gymnax

  env, params = gymnax.make(name)
  if kwargs:
    unknown = sorted(set(kwargs) - set(params.__dataclass_fields__))
    if unknown:
      raise ValueError(f"gymnax/{name}: {', '.join(unknown)} are not parameters of its "
                       f"EnvParams ({', '.join(params.__dataclass_fields__)})")
    params = params.replace(**kwargs)
  return adapt(env, params)


@functools.cache
def default_episode_length(name: str) -> int:
  import gymnax

  _, params = gymnax.make(name)
  return int(getattr(params, "max_steps_in_episode", 1000))
