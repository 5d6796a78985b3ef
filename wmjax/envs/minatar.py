"""MinAtar (Young & Tian 2019) through pgx's JAX port (``pgx-minatar``), as the ``minatar/``
suite: ``minatar/Breakout``, ``minatar/Asterix``, ``minatar/Freeway``, ``minatar/Seaquest`` and
``minatar/SpaceInvaders``.

Observations are the game's ``[10, 10, C]`` binary channels (``C`` = 4, 4, 7, 10, 6: one per
kind of object) as float32, channels last, so image models (Dreamer's CNN) take them as small
images and vector models can flatten them. Actions are the game's minimal action set (3 to 6
integers). Sticky actions with probability 0.1, as MinAtar and pgx by default
(``sticky_action_prob`` changes it). A game over is a true terminal state; the time limit is the
registry's episode length (1000 agent steps by default, as ``wmjax train muzero`` on
``pgx/minatar-*``), kept apart as ``truncated``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State

__all__ = ["GAMES", "MinAtarEnv", "build"]

# Registry name -> pgx env id.
GAMES = {"Asterix": "minatar-asterix", "Breakout": "minatar-breakout",
         "Freeway": "minatar-freeway", "Seaquest": "minatar-seaquest",
         "SpaceInvaders": "minatar-space_invaders"}


class MinAtarEnv(Env):
  """One pgx MinAtar game behind brax's ``reset(key)`` / ``step(state, action)``.

  The pgx state and the key of the next step (sticky actions and the game's own randomness draw
  from it) ride in ``State.info``; ``done`` is pgx's ``terminated`` (game over).
  """

  def __init__(self, game: str, sticky_action_prob: float = 0.1):
    if game not in GAMES:
      raise ValueError(f"unknown MinAtar game {game!r}; known: {', '.join(GAMES)}")
    prob = float(sticky_action_prob)
    if not 0.0 <= prob < 1.0:
      raise ValueError(f"sticky_action_prob must be in [0, 1), got {sticky_action_prob!r}")
    try:
      import pgx
    except ImportError as e:   # pragma: no cover (pgx is a dependency)
      raise ImportError("the minatar/ suite needs pgx and pgx-minatar: pip install pgx "
                        "pgx-minatar") from e
    base = pgx.make(GAMES[game])
    self.pgx_env = type(base)(sticky_action_prob=prob)
    self.game = game
    self.sticky_action_prob = prob
    self.num_actions = int(self.pgx_env.num_actions)
    self._obs_shape = tuple(int(d) for d in self.pgx_env.observation_shape)

  @property
  def observation_size(self):
    return self._obs_shape

  @property
  def action_size(self) -> int:
    return 1

  @property
  def backend(self) -> str:
    return "pgx"

  def reset(self, rng: jax.Array) -> State:
    key_init, key_next = jax.random.split(rng)
    inner = self.pgx_env.init(key_init)
    zero = jnp.zeros((), jnp.float32)
    return State(pipeline_state=None, obs=inner.observation.astype(jnp.float32), reward=zero,
                 done=zero, info={"pgx_state": inner, "pgx_key": key_next})

  def step(self, state: State, action: jax.Array) -> State:
    key_step, key_next = jax.random.split(state.info["pgx_key"])
    inner = self.pgx_env.step(state.info["pgx_state"], jnp.asarray(action, jnp.int32), key_step)
    info = {**state.info, "pgx_state": inner, "pgx_key": key_next}
    return state.replace(obs=inner.observation.astype(jnp.float32),
                         reward=inner.rewards[0].astype(jnp.float32),
                         done=inner.terminated.astype(jnp.float32), info=info)


def build(game: str, **kwargs):
  """The registry's builder for ``minatar/<game>`` (discrete: no control range)."""
  return MinAtarEnv(game, **kwargs), None, None
