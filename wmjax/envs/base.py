"""The environment protocol: brax's functional interface.

``reset(key) -> State`` and ``step(state, action) -> State``, where ``State`` has ``obs``,
``reward``, ``done`` and an ``info`` dict. Brax envs, MuJoCo Playground envs and our own envs
all fit, so brax's wrappers are reused rather than rewritten. After :func:`wmjax.envs.make`,
``state.info`` also carries ``terminated`` (a true terminal state) and ``truncated`` (the time
limit), kept apart as gymnax 1.0 does: a time limit is not a terminal state for bootstrapping.
"""

from __future__ import annotations

from brax.envs.base import Env, State, Wrapper

from wmjax.types import Spec

__all__ = ["Env", "State", "Wrapper", "Spec", "spec_of"]


def spec_of(env) -> Spec:
  """The ``Spec`` of an env with brax's ``observation_size``/``action_size`` properties.

  ``observation_size`` may be an int or a shape (e.g. ``(H, W, C)`` for images). An env with an
  ``num_actions`` attribute is discrete: ``action_shape=()``.
  """
  obs_size = env.observation_size
  if isinstance(obs_size, dict):
    raise ValueError(
        f"{type(env).__name__} has dictionary observations {obs_size}; wmjax's agents take one "
        "array observation. Pick a state-observation variant of the task."
    )
  obs_shape = (obs_size,) if isinstance(obs_size, int) else tuple(int(d) for d in obs_size)
  num_actions = getattr(env, "num_actions", None)
  if num_actions is not None:   # discrete: one integer action in 0..num_actions-1
    return Spec(obs_shape=obs_shape, action_shape=(), num_actions=int(num_actions))
  return Spec(obs_shape=obs_shape, action_shape=(int(env.action_size),))
