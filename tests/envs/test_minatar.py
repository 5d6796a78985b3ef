"""The ``minatar/`` suite (pgx's MinAtar): registry, episodes, options, and the image models that
take its 10x10xC frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import envs, presets
from wmjax.agents import dreamer as dreamer_lib

SHAPES = {"Asterix": ((10, 10, 4), 5), "Breakout": ((10, 10, 4), 3), "Freeway": ((10, 10, 7), 3),
          "Seaquest": ((10, 10, 10), 6), "SpaceInvaders": ((10, 10, 6), 4)}


def test_every_game_is_registered_with_its_shapes():
  for game, (shape, actions) in SHAPES.items():
    env = envs.make(f"minatar/{game}")
    assert env.spec.obs_shape == shape and env.spec.discrete
    assert env.spec.num_actions == actions
    assert env.steps_per_episode == 1000
  assert {f"minatar/{g}" for g in SHAPES} <= set(envs.names())


def test_random_breakout_episodes_end_in_a_game_over_kept_apart_from_the_time_limit():
  env = envs.make("minatar/Breakout", episode_length=400)

  def episode(key):
    k_reset, k_act = jax.random.split(key)
    state = env.reset(k_reset)

    def body(s, k):
      s = env.step(s, jax.random.randint(k, (), 0, 3))
      return s, (s.reward, s.done, s.info["terminated"], s.info["truncated"])

    return jax.lax.scan(body, state, jax.random.split(k_act, 400))[1]

  reward, done, terminated, truncated = jax.device_get(
      jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(0), 16)))
  # A random paddle loses the ball within a few dozen steps: a true terminal, not the limit.
  assert terminated.max(1).all() and not truncated.any()
  first = done.argmax(1)
  assert (first < 200).all()
  assert set(np.unique(reward)) <= {0.0, 1.0}
  obs = env.reset(jax.random.PRNGKey(1)).obs
  assert obs.dtype == jnp.float32 and set(np.unique(np.asarray(obs))) <= {0.0, 1.0}


def test_time_limit_is_truncation():
  env = envs.make("minatar/Freeway", episode_length=5)   # Freeway never ends on its own early
  state = env.reset(jax.random.PRNGKey(0))
  for _ in range(5):
    state = env.step(state, jnp.asarray(1))
  assert float(state.done) == 1.0 and float(state.info["truncated"]) == 1.0
  assert float(state.info["terminated"]) == 0.0


def test_sticky_actions_option_and_bad_values():
  sticky = envs.make("minatar/Breakout", sticky_action_prob=0.0)
  assert sticky.unwrapped.sticky_action_prob == 0.0
  assert envs.make("minatar/Breakout").unwrapped.sticky_action_prob == 0.1
  with pytest.raises(ValueError, match=r"sticky_action_prob must be in \[0, 1\)"):
    envs.make("minatar/Breakout", sticky_action_prob=1.0)
  with pytest.raises(ValueError, match="unknown environment 'minatar/Pong'"):
    envs.make("minatar/Pong")


def test_dreamer_takes_minatar_frames_as_small_images():
  """10x10 is not 4 x 2**n: the CNN takes it in two stages (to 3x3) and the decoder crops."""
  env = envs.make("minatar/Breakout")
  config, hyper = presets.defaults("dreamer", "minatar/Breakout")[:2]
  assert config.action_repeat == 1
  agent = dreamer_lib.make_dreamer(env, config)
  state = jax.eval_shape(agent.init, jax.random.PRNGKey(0), hyper)
  assert state.buffer.data["obs"].shape[2:] == (10, 10, 4)
  assert state.buffer.data["obs"].dtype == jnp.uint8
  assert state.buffer.data["action"].shape[-1] == 3
