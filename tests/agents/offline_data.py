"""A small offline dataset on fast/PointMass, made in-process for the offline agents' tests.

Half the episodes are uniform random actions, half a noisy proportional controller towards the
origin, so the behaviour return (about 34) lies between random (about 28) and a good controller
(about 45): an offline learner that stitches the good actions together should beat it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wmjax import envs
from wmjax.offline import from_arrays


@functools.cache
def pointmass_dataset(episodes: int = 60, seed: int = 0, noise: float = 0.6):
  env = envs.make("fast/PointMass")
  steps = env.steps_per_episode

  def episode(key, scripted):
    k_reset, k_steps = jax.random.split(key)
    state = env.reset(k_reset)

    def step(state, k):
      obs = state.obs
      control = jnp.clip(-2.0 * obs[:2] - 1.5 * obs[2:], -1.0, 1.0)
      control = jnp.clip(control + noise * jax.random.normal(k, (2,)), -1.0, 1.0)
      random = jax.random.uniform(jax.random.fold_in(k, 1), (2,), minval=-1.0, maxval=1.0)
      action = jnp.where(scripted, control, random)
      nxt = env.step(state, action)
      return nxt, (obs, action, nxt.reward, nxt.obs, nxt.info["terminated"])

    _, out = jax.lax.scan(step, state, jax.random.split(k_steps, steps))
    return out

  keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
  scripted = jnp.arange(episodes) % 2 == 0
  obs, action, reward, next_obs, terminated = jax.device_get(
      jax.jit(jax.vmap(episode))(keys, scripted))
  flat = lambda x: np.asarray(x).reshape((-1,) + x.shape[2:])   # noqa: E731
  truncated = np.zeros((episodes, steps), np.float32)
  truncated[:, -1] = 1.0
  return from_arrays(flat(obs), flat(action), flat(reward), flat(next_obs), flat(terminated),
                     truncated.reshape(-1), env="fast/PointMass",
                     episode_length=env.episode_length, kind="user",
                     source={"by": "tests/agents/offline_data.py", "noise": noise})
