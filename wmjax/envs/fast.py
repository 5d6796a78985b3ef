"""Tiny, fast environments for unit tests and smoke runs (no physics engine)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.envs.base import Env, State

__all__ = ["PointMass", "PointMassDiscrete", "PointMassPixels", "PointMassPixelsCountdown"]


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
    obs = self._initial_state(rng)
    zero = jnp.zeros(())
    return State(pipeline_state=None, obs=obs, reward=zero, done=zero, metrics={}, info={})

  def step(self, state: State, action: jax.Array) -> State:
    obs = self._advance(state.obs, action)
    reward = self.reward(state.obs, action, obs)
    return state.replace(obs=obs, reward=reward)

  def _initial_state(self, rng: jax.Array) -> jax.Array:
    """``(x, v) [4]``: a random position at distance 0.5 to 1.5, at rest."""
    rng_angle, rng_radius = jax.random.split(rng)
    angle = jax.random.uniform(rng_angle, (), minval=0.0, maxval=2 * jnp.pi)
    radius = jax.random.uniform(rng_radius, (), minval=0.5, maxval=1.5)
    pos = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
    return jnp.concatenate([pos, jnp.zeros(2)])

  def _advance(self, x: jax.Array, force: jax.Array) -> jax.Array:
    """One semi-implicit Euler step of ``(x, v) [4]`` under ``force [2]``."""
    pos, vel = x[:2], x[2:]
    vel = vel + self.dt * (force - self.damping * vel)
    pos = pos + self.dt * vel
    return jnp.concatenate([pos, vel])

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


class PointMassPixels(PointMass):
  """:class:`PointMass` seen from pixels: observations are ``[size, size, 3]`` float32 images.

  The world square ``[-2, 2]^2`` fills the image (``+y`` up): black background, a fixed dim
  green marker at the origin (the goal) and the mass as a soft red Gaussian blob (radius 1.5 px
  at ``size = 32``, scaled with ``size``). One frame shows the position only; the velocity must
  be inferred from successive frames, as in DM Control from pixels. The true state
  ``(x, v) [4]`` is kept in ``state.pipeline_state``. Same dynamics and reward as
  :class:`PointMass` (the reward is a function of that state, not of the image).
  """

  extent = 2.0          # the image shows [-extent, extent]^2
  goal_brightness = 0.3

  def __init__(self, size: int = 32):
    if int(size) != size or size < 8:
      raise ValueError(f"PointMassPixels size must be an integer >= 8, got {size!r}")
    self.size = int(size)
    pixel = 2 * self.extent / self.size
    self._xs = -self.extent + (np.arange(self.size, dtype=np.float32) + 0.5) * pixel   # columns
    self._ys = self._xs[::-1].copy()   # rows: row 0 is the top, so y decreases down the rows
    # 1.5 px at size 32 (in world units), and 1.5 px on smaller images.
    self._sigma = np.float32(max(1.5 * 2 * self.extent / 32, 1.5 * pixel))
    self._goal = self.goal_brightness * np.outer(self._gauss(self._ys, 0.0),
                                                 self._gauss(self._xs, 0.0))

  def reset(self, rng: jax.Array) -> State:
    x = self._initial_state(rng)
    zero = jnp.zeros(())
    return State(pipeline_state=x, obs=self.render(x), reward=zero, done=zero, metrics={},
                 info={})

  def step(self, state: State, action: jax.Array) -> State:
    x = state.pipeline_state
    next_x = self._advance(x, action)
    reward = self.reward(x, action, next_x)
    return state.replace(pipeline_state=next_x, obs=self.render(next_x), reward=reward)

  def _gauss(self, coords, centre):
    return np.exp(-0.5 * ((coords - centre) / self._sigma) ** 2).astype(np.float32)

  def render(self, x: jax.Array) -> jax.Array:
    """The image ``[size, size, 3]`` in ``[0, 1]`` of state ``(x, v) [4]``."""
    # A 2-D Gaussian is the outer product of two 1-D ones: 2 * size exps, not size^2.
    gx = jnp.exp(-0.5 * ((self._xs - x[0]) / self._sigma) ** 2)
    gy = jnp.exp(-0.5 * ((self._ys - x[1]) / self._sigma) ** 2)
    red = gy[:, None] * gx[None, :]
    return jnp.stack([red, jnp.asarray(self._goal), jnp.zeros_like(red)], axis=-1)

  @property
  def observation_size(self) -> tuple[int, int, int]:
    return (self.size, self.size, 3)


class PointMassPixelsCountdown(PointMassPixels):
  """:class:`PointMassPixels` whose episode ends in a true terminal state after
  ``terminate_after`` steps (``done = 1`` from then on, not a time limit).

  A stand-in for tasks that end early (a fall, a goal reached), to test how agents treat the
  steps after a termination. Stepped past its end (no auto-reset), the mass keeps moving and
  the reward keeps coming, as a physics env's would: agents must ignore those steps.
  """

  def __init__(self, size: int = 16, terminate_after: int = 10):
    super().__init__(size)
    if int(terminate_after) != terminate_after or terminate_after < 1:
      raise ValueError(f"terminate_after must be an integer >= 1, got {terminate_after!r}")
    self.terminate_after = int(terminate_after)

  def reset(self, rng: jax.Array) -> State:
    state = super().reset(rng)
    return state.replace(info={**state.info, "steps_left": jnp.asarray(self.terminate_after)})

  def step(self, state: State, action: jax.Array) -> State:
    state = super().step(state, action)
    left = state.info["steps_left"] - 1
    done = (left <= 0).astype(jnp.float32)
    return state.replace(done=done, info={**state.info, "steps_left": left})


class PointMassDiscrete(PointMass):
  """:class:`PointMass` with 5 discrete actions: an integer action (shape ``()``).

  ``0`` no force, ``1`` +x, ``2`` -x, ``3`` +y, ``4`` -y (force magnitude 1). Observation and
  reward as :class:`PointMass` (the action cost is that of the force).
  """

  num_actions = 5
  forces = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)   # [5, 2]

  def step(self, state: State, action: jax.Array) -> State:
    force = jnp.asarray(self.forces)[action]
    obs = self._advance(state.obs, force)
    return state.replace(obs=obs, reward=self.reward(state.obs, action, obs))

  @staticmethod
  def reward(obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
    """:meth:`PointMass.reward` with the integer ``action`` taken as its force."""
    force = jnp.asarray(PointMassDiscrete.forces)[action]
    return PointMass.reward(obs, force, next_obs)

  @property
  def action_size(self) -> int:
    """The number of actions (as ``Spec.action_size`` for discrete envs)."""
    return self.num_actions
