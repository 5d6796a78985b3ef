"""``make("suite/name")``: every environment wmjax knows, behind one name space.

Suites: ``dmc/<Task>`` (every DM Control task in MuJoCo Playground, on MJX with ``impl='jax'``),
``dmc-pixels/<Task>`` (the same tasks seen from a camera: ``[64, 64, 3]`` frames rendered in
JAX, see :mod:`wmjax.envs.render`),
``brax/<name>`` (every brax env, MJX backend by default), ``pets/cartpole`` (the PETS paper's
cart-pole), ``fast/<name>`` (tiny envs for tests), ``grid/<maze>`` (the tabular grid mazes of
Sutton & Barto's chapter 8: ``grid/dyna_maze``, ``grid/blocking_maze``, ``grid/shortcut_maze``)
``minatar/<Game>`` (MinAtar through pgx: ``[10, 10, C]`` binary frames, discrete actions, see
:mod:`wmjax.envs.minatar`) and ``gymnax/<Name>`` (gymnax's classic control, bsuite, MinAtar and
misc tasks). Your own envs: :func:`wmjax.envs.register_env`.

Options of an env's constructor can ride in its name, ``suite/name?key=value,key=value`` (for
example ``dmc-pixels/CartpoleSwingup?image_size=84,camera=1`` or
``minatar/Breakout?sticky_action_prob=0``), so the command line and a run folder's
``config.json`` carry them: ``make`` passes them on as keyword arguments (see
:func:`split_options` for the value syntax).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable

import numpy as np

from wmjax.envs import wrappers

__all__ = ["make", "names", "register", "split_options", "base_name", "EnvEntry"]


@dataclasses.dataclass(frozen=True)
class EnvEntry:
  """How to build one registered env: ``build(**kwargs) -> (env, ctrl_low, ctrl_high)``.

  Discrete envs (with ``num_actions``) return ``None`` for the control range.
  """

  build: Callable
  episode_length: int
  action_repeat: int = 1
  reward_fn: Callable | None = None   # known reward on normalised actions, if any
  description: str = ""
  # outer(**options) checks those of make()'s options that `outer_options` names (before the env
  # is built) and returns a wrapper for the wrapped env, outside the action repeat: dmc-pixels
  # renders one frame per agent step this way.
  outer: Callable | None = None
  outer_options: tuple[str, ...] = ()


_REGISTRY: dict[str, EnvEntry] = {}
_PIXEL_OPTIONS = ("image_size", "camera", "shadows", "supersample")   # render.PIXEL_OPTIONS


def register(name: str, entry: EnvEntry) -> None:
  """Adds an env under ``suite/name`` (or a ``module:factory`` name, see
  :mod:`wmjax.envs.user`). For your own envs use :func:`wmjax.envs.register_env`, which checks
  what it is given."""
  if "/" not in name and ":" not in name:
    raise ValueError(f"env names are 'suite/name', got {name!r}")
  _REGISTRY[name] = entry


def _ctrl_range(mj_model, action_size: int):
  ranges = np.asarray(mj_model.actuator_ctrlrange, np.float32).reshape(-1, 2)
  limited = ranges[:, 1] > ranges[:, 0]
  low = np.where(limited, ranges[:, 0], -1.0)
  high = np.where(limited, ranges[:, 1], 1.0)
  if low.shape[0] != action_size:
    return -np.ones(action_size, np.float32), np.ones(action_size, np.float32)
  return low, high


def _build_dmc(task: str, **kwargs):
  from mujoco_playground import registry as mp_registry

  overrides = {"impl": "jax", **kwargs.pop("config_overrides", {})}
  env = mp_registry.load(task, config_overrides=overrides, **kwargs)
  return (env, *_ctrl_range(env.mj_model, env.action_size))


def _build_dmc_pixels(task: str, **kwargs):
  from wmjax.envs import render

  render.check_no_other_renderer(kwargs.get("config_overrides"))
  return _build_dmc(task, **kwargs)


def _see_from_camera(**options):
  from wmjax.envs import render

  return render.pixel_wrapper(**options)


def _build_brax(name: str, backend: str = "mjx", **kwargs):
  from brax import envs as brax_envs

  env = brax_envs.get_environment(name, backend=backend, **kwargs)
  sys = getattr(env, "sys", None)
  if sys is not None and hasattr(sys, "mj_model"):
    return (env, *_ctrl_range(sys.mj_model, env.action_size))
  ones = np.ones(env.action_size, np.float32)
  return env, -ones, ones


def _build_pets_cartpole(**kwargs):
  from wmjax.envs.pets import PetsCartpole

  env = PetsCartpole(**kwargs)
  return (env, *_ctrl_range(env.sys.mj_model, env.action_size))


def _build_point_mass(**kwargs):
  from wmjax.envs.fast import PointMass

  env = PointMass(**kwargs)
  ones = np.ones(env.action_size, np.float32)
  return env, -ones, ones


def _build_point_mass_pixels(**kwargs):
  from wmjax.envs.fast import PointMassPixels

  env = PointMassPixels(**{"size": 16, **kwargs})
  ones = np.ones(env.action_size, np.float32)
  return env, -ones, ones


def _build_point_mass_discrete(**kwargs):
  from wmjax.envs.fast import PointMassDiscrete

  return PointMassDiscrete(**kwargs), None, None   # discrete: no control range


def _build_minatar(game: str, **kwargs):
  from wmjax.envs import minatar

  return minatar.build(game, **kwargs)


def _build_grid(maze: str, **kwargs):
  from wmjax.envs import grid

  return grid.GridMaze(getattr(grid, maze), **kwargs), None, None   # discrete: no control range


@functools.cache
def _register_builtin() -> None:
  from brax import envs as brax_envs
  from mujoco_playground import dm_control_suite

  from wmjax.envs import fast, pets

  for task in dm_control_suite.ALL_ENVS:
    register(f"dmc/{task}", EnvEntry(functools.partial(_build_dmc, task), episode_length=1000,
                                     description="DM Control (MuJoCo Playground, MJX)"))
  for task in dm_control_suite.ALL_ENVS:
    register(f"dmc-pixels/{task}", EnvEntry(
        functools.partial(_build_dmc_pixels, task), episode_length=1000,
        outer=_see_from_camera, outer_options=_PIXEL_OPTIONS,
        description="DM Control from pixels: 64x64x3 frames in [0, 1] rendered in JAX (options: "
                    "image_size, camera, shadows, supersample)"))
  for name in sorted(brax_envs._envs):  # noqa: SLF001 (brax has no public list of names)
    register(f"brax/{name}", EnvEntry(functools.partial(_build_brax, name), episode_length=1000,
                                      description="brax (MJX backend)"))
  register("pets/cartpole", EnvEntry(_build_pets_cartpole, episode_length=200,
                                     reward_fn=pets.reward,
                                     description="PETS paper cart-pole swing-up (MJX)"))
  register("fast/PointMass", EnvEntry(_build_point_mass, episode_length=50,
                                      reward_fn=fast.PointMass.reward,
                                      description="2-D point mass to the origin (tests)"))
  register("fast/PointMassPixels", EnvEntry(
      _build_point_mass_pixels, episode_length=50,
      description="fast/PointMass seen from pixels, 16x16x3 (tests)"))
  register("fast/PointMassDiscrete", EnvEntry(
      _build_point_mass_discrete, episode_length=50, reward_fn=fast.PointMassDiscrete.reward,
      description="fast/PointMass with 5 discrete actions (tests)"))
  for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"):
    register(f"minatar/{game}", EnvEntry(
        functools.partial(_build_minatar, game), episode_length=1000,
        description="MinAtar (pgx): 10x10xC binary frames, minimal action set, sticky actions "
                    "0.1 (option: sticky_action_prob)"))
  # The book has no time limit; 10_000 steps is far above a first episode's ~1,700 random steps.
  for maze, description in (
      ("DYNA_MAZE", "Sutton & Barto Figure 8.2: 6x9 Dyna maze, shortest path 14 (tabular)"),
      ("BLOCKING_MAZE", "Sutton & Barto Figure 8.4: blocking maze, wall moves after 1000 steps"),
      ("SHORTCUT_MAZE", "Sutton & Barto Figure 8.5: shortcut opens after 3000 steps")):
    register(f"grid/{maze.lower()}", EnvEntry(functools.partial(_build_grid, maze),
                                              episode_length=10_000, description=description))


@functools.cache
def _register_gymnax() -> None:
  """``gymnax/<Name>``: gymnax's classic control, bsuite, MinAtar and misc tasks (registered on
  first use: importing gymnax takes seconds that a run on another suite need not pay)."""
  try:
    from wmjax.envs import gymnax as gymnax_suite
  except ImportError:   # gymnax not installed: no gymnax/ suite
    return
  for name in gymnax_suite.suite_names():
    register(f"gymnax/{name}", EnvEntry(
        functools.partial(gymnax_suite.build, name),
        episode_length=gymnax_suite.default_episode_length(name),
        description="gymnax (Lange 2022); time limit as the env's own, kept apart from "
                    "termination"))


def names() -> list[str]:
  """Every registered env name, sorted."""
  _register_builtin()
  _register_gymnax()
  return sorted(_REGISTRY)


def _option_value(key: str, text: str):
  from wmjax.train.overrides import parse_literal

  parts = text.strip().lower().split("x")
  if len(parts) == 2 and all(p.isdigit() for p in parts):   # 84x64: (height, width)
    return (int(parts[0]), int(parts[1]))
  if not text.strip():
    raise ValueError(f"env option {key!r} has no value")
  return parse_literal(text)


def base_name(name: str) -> str:
  """``"suite/name?key=value,..."`` -> ``"suite/name"``: the registered name, options dropped
  unparsed (what presets and run folders key on)."""
  return name.partition("?")[0]


def split_options(name: str) -> tuple[str, dict]:
  """``"suite/name?key=value,..."`` -> ``("suite/name", {key: value})``.

  Values: ``true`` / ``false``; ``HxW`` (two integers, e.g. ``84x64``) a ``(H, W)`` tuple;
  integers; floats; anything else a string. A name without ``?`` has no options.
  """
  base, query = base_name(name), name.partition("?")[2]
  options = {}
  if base == name:
    return name, options
  for item in query.split(","):
    key, eq, text = item.partition("=")
    key = key.strip()
    if not eq or not key.isidentifier():
      raise ValueError(f"env options are key=value separated by commas after '?', got "
                       f"{item!r} in {name!r} (e.g. dmc-pixels/CartpoleSwingup?image_size=84)")
    if key in options:
      raise ValueError(f"env option {key!r} is given twice in {name!r}")
    options[key] = _option_value(key, text)
  return base, options


def entry(name: str) -> EnvEntry:
  name = split_options(name)[0]
  _register_builtin()
  if name.startswith("gymnax/") or name not in _REGISTRY:
    _register_gymnax()
  if name not in _REGISTRY:
    from wmjax.envs import user

    if user.is_factory_name(name):   # --env package.module:factory
      user.register_factory_name(name)
      return _REGISTRY[name]
    close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.4)
    lowered = [n for n in _REGISTRY if name.lower().split("/")[-1] in n.lower()]
    suggestions = list(dict.fromkeys(close + lowered))[:6]
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise ValueError(
        f"unknown environment {name!r}.{hint} Run `wmjax envs` to list all "
        f"{len(_REGISTRY)} environments (suites: dmc/, dmc-pixels/, brax/, pets/, fast/, grid/, "
        "minatar/, gymnax/), "
        "or name your own: --env package.module:make_env (see wmjax.envs.register_env)."
    )
  return _REGISTRY[name]


def build_entry(e: EnvEntry, name: str, kwargs: dict):
  """``e.build(**kwargs)``; an option the env's constructor does not take is a ValueError that
  names the env and the option."""
  try:
    return e.build(**kwargs)
  except TypeError as err:
    if kwargs and "argument" in str(err):
      raise ValueError(f"{name} does not take the option(s) {', '.join(sorted(kwargs))} as "
                       f"given: {err}") from None
    raise


def make(name: str, *, episode_length: int | None = None, action_repeat: int | None = None,
         **kwargs) -> wrappers.RegisteredEnv:
  """Builds a registered env, wrapped: actions in ``[-1, 1]`` (continuous) or checked integers
  (discrete), episode limit, action repeat.

  Args:
    name: ``suite/name``, e.g. ``dmc/CartpoleSwingup``, ``brax/hopper``, ``pets/cartpole``.
    episode_length: env steps per episode (before action repeat); the suite's default if None.
    action_repeat: env steps per agent step (rewards summed); 1 if None.
    **kwargs: passed to the underlying env's constructor, except the options an entry's
      ``outer`` wrapper takes (``dmc-pixels/``: ``image_size``, ``camera``, ``shadows``,
      ``supersample``; see :class:`wmjax.envs.render.PixelEnv`).

  The result follows brax's interface (``reset(key)``, ``step(state, action)``) for one env;
  vmap it for a batch. ``env.spec`` is its :class:`~wmjax.types.Spec`.
  """
  base, options = split_options(name)
  e = entry(base)
  kwargs = {**options, **kwargs}
  episode_length = e.episode_length if episode_length is None else int(episode_length)
  action_repeat = e.action_repeat if action_repeat is None else int(action_repeat)
  if episode_length < 1 or action_repeat < 1:
    raise ValueError(f"episode_length and action_repeat must be >= 1, got {episode_length}, "
                     f"{action_repeat}")
  outer_options = {k: kwargs.pop(k) for k in e.outer_options if k in kwargs}
  finish = e.outer(**outer_options) if e.outer is not None else None   # checks them first
  env, low, high = build_entry(e, base, kwargs)
  # A known per-step reward describes one env step; with action repeat it no longer applies.
  reward_fn = e.reward_fn if action_repeat == 1 else None
  wrapped = wrappers.wrap(env, name=name, episode_length=episode_length,
                          action_repeat=action_repeat, ctrl_low=low, ctrl_high=high,
                          reward_fn=reward_fn)
  return finish(wrapped) if finish is not None else wrapped
