"""The PETS paper's cart-pole swing-up (Chua et al. 2018; mbrl-lib's ``cartpole_pets_version``).

A 0.6 m pole hanging down at angle 0, frame skip 2 (0.04 s per agent step), 200-step episodes,
start state qpos, qvel ~ N(0, 0.1^2). Observation ``[x, theta, x_dot, theta_dot]``; reward
``exp(-|p_tip - (0, 0.6)|^2 / 0.6^2) - 0.01 |a|^2`` with ``a`` in the motor's range ``[-3, 3]``.
Runs on MJX through brax's ``PipelineEnv``.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
from brax.envs.base import PipelineEnv, State
from brax.io import mjcf

__all__ = ["PetsCartpole", "POLE_LENGTH", "MAX_FORCE"]

POLE_LENGTH = 0.6
MAX_FORCE = 3.0   # control range of the motor; the env takes actions in [-1, 1]
_XML = pathlib.Path(__file__).parent / "assets" / "pets_cartpole.xml"


def tip_position(obs: jax.Array) -> jax.Array:
  """Pole tip (x, z) for observation ``[x, theta, ...]``; theta = 0 hangs down."""
  x, theta = obs[0], obs[1]
  return jnp.stack([x - POLE_LENGTH * jnp.sin(theta), -POLE_LENGTH * jnp.cos(theta)])


def reward(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
  """The paper's reward, for an action in ``[-1, 1]`` (scaled to the motor's ``[-3, 3]``)."""
  del obs
  target = jnp.array([0.0, POLE_LENGTH])
  dist2 = jnp.sum((tip_position(next_obs) - target) ** 2)
  force = MAX_FORCE * jnp.clip(action, -1.0, 1.0)
  return jnp.exp(-dist2 / POLE_LENGTH**2) - 0.01 * jnp.sum(force**2)


class PetsCartpole(PipelineEnv):
  """PETS cart-pole on MJX. Takes raw motor controls in ``[-3, 3]`` (the registry normalises)."""

  def __init__(self, backend: str = "mjx", **kwargs):
    sys = mjcf.loads(_XML.read_text())
    super().__init__(sys=sys, backend=backend, n_frames=2, **kwargs)

  def reset(self, rng: jax.Array) -> State:
    rng_q, rng_qd = jax.random.split(rng)
    q = 0.1 * jax.random.normal(rng_q, (self.sys.q_size(),))
    qd = 0.1 * jax.random.normal(rng_qd, (self.sys.qd_size(),))
    pipeline_state = self.pipeline_init(q, qd)
    obs = self._obs(pipeline_state)
    zero = jnp.zeros(())
    return State(pipeline_state, obs, zero, zero, {}, {})

  def step(self, state: State, action: jax.Array) -> State:
    pipeline_state = self.pipeline_step(state.pipeline_state, action)
    obs = self._obs(pipeline_state)
    r = reward(state.obs, action / MAX_FORCE, obs)
    return state.replace(pipeline_state=pipeline_state, obs=obs, reward=r)

  def _obs(self, pipeline_state) -> jax.Array:
    return jnp.concatenate([pipeline_state.q, pipeline_state.qd])
