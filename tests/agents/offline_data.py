"""A small offline dataset on fast/PointMass, made in-process for the offline agents' tests.

Episodes of three behaviours, in episode order: uniform random actions, a noisy proportional
controller towards the origin (``-x - v``), and a noisy controller that pushes away from it
(``+x``). With the default 20 of each the behaviour return is about 26.5 (random about 28, the
controller about 45) and cloning the average action scores about 35, so a learner that beats
the data by a clear margin has picked out the good actions, not copied the mean one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wmjax import envs
from wmjax.offline import from_arrays

ENV = "fast/PointMass"


def collect(env, key, counts=(20, 20, 20), noise=0.5):
  """``counts``: episodes of (random, towards, away); a checked :class:`Dataset`."""
  steps = env.steps_per_episode

  def episode(key, kind):
    k_reset, k_steps = jax.random.split(key)

    def step(env_state, k):
      k_random, k_noise = jax.random.split(k)
      obs = env_state.obs
      noise_t = noise * jax.random.normal(k_noise, (2,))
      random = jax.random.uniform(k_random, (2,), minval=-1.0, maxval=1.0)
      towards = jnp.clip(-obs[:2] - obs[2:], -1.0, 1.0) + noise_t
      away = jnp.clip(obs[:2], -1.0, 1.0) + noise_t
      action = jnp.clip(jnp.select([kind == 0, kind == 1], [random, towards], away), -1.0, 1.0)
      next_state = env.step(env_state, action)
      return next_state, (obs, action, next_state.reward, next_state.obs,
                          next_state.info["terminated"])

    _, rows = jax.lax.scan(step, env.reset(k_reset), jax.random.split(k_steps, steps))
    return rows

  kinds = jnp.concatenate([jnp.full(n, i) for i, n in enumerate(counts)])
  rows = jax.jit(jax.vmap(episode))(jax.random.split(key, kinds.shape[0]), kinds)
  obs, action, reward, next_obs, terminated = (
      np.asarray(x).reshape((-1,) + x.shape[2:]) for x in rows)
  truncated = np.zeros_like(reward)
  truncated[steps - 1::steps] = 1.0
  return from_arrays(obs, action, reward, next_obs, terminated, truncated, env=env.name,
                     episode_length=env.episode_length,
                     source={"by": "tests/agents/offline_data.py", "counts": list(counts),
                             "noise": noise})


@functools.cache
def pointmass_dataset(seed: int = 0):
  """The default mix (20 episodes of each behaviour), made once per process."""
  return collect(envs.make(ENV), jax.random.PRNGKey(seed))
