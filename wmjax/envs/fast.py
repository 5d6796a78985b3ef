"""Tiny, fast environments for unit tests and smoke runs (no physics engine)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wmjax.envs.base import Env, State

__all__ = ["PointMass"]


class PointMass(Env):
  """A 2-D point mass pushed towards the origin.

  State ``(x, v)`` in R^2 x R^2; action: a force in ``[-1, 1]^2``; semi-implicit Euler with
  ``dt = 0.1`` and velocity damping. Reward per step ``exp(-|x|^2 / 2) - 0.01 |a|^2``, so an
  episode of 50 steps scores at most about 50; a random policy scores about 28 and a good
  controller about 45. Starts at a random position at distance 0.5 to 1.5 from the origin
  (the right push depends on the state, so a constant action does not solve it).
  """

  dt = 0.1
  damping = 0.5

  def reset(self, rng: jax.Array) -> State:
    rng_angle, rng_radius = jax.random.split(rng)
    angle = jax.random.uniform(rng_angle, (), minval=0.0, maxval=2 * jnp.pi)
    radius = jax.random.uniform(rng_radius, (), minval=0.5, maxval=1.5)
    pos = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
    obs = jnp.concatenate([pos, jnp.zeros(2)])
    zero = jnp.zeros(())
    return State(pipeline_state=None, obs=obs, reward=zero, done=zero, metrics={}, info={})

  def step(self, state: State, action: jax.Array) -> State:
    pos, vel = state.obs[:2], state.obs[2:]
    vel = vel + self.dt * (action - self.damping * vel)
    pos = pos + self.dt * vel
    obs = jnp.concatenate([pos, vel])
    reward = self.reward(state.obs, action, obs)
    return state.replace(obs=obs, reward=reward)

  @staticmethod
  def reward(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    del obs
    return jnp.exp(-0.5 * jnp.sum(next_obs[:2] ** 2)) - 0.01 * jnp.sum(action**2)

  @property
  def observation_size(self) -> int:
    return 4

  @property
  def action_size(self) -> int:
    return 2

  @property
  def backend(self) -> str:
    return "jax"
