"""Bring your own environment: register an env under a name, from Python or the command line.

``register_env("mine/Reacher", make_reacher, episode_length=500)`` adds an env whose factory
returns an object with brax's functional interface (``reset(key) -> State``,
``step(state, action) -> State``, ``observation_size``, ``action_size``): a brax ``Env``, a
MuJoCo Playground ``MjxEnv``, or an env of your own; or a gymnax environment (or what
``gymnax.make`` returns), through :class:`wmjax.envs.gymnax.GymnaxEnv`. :func:`wmjax.envs.make`
then wraps it like every built-in env: actions normalised to [-1, 1] (continuous; the MuJoCo
control range where the env has one) or checked integers (discrete, with ``num_actions``), the
episode limit, action repeat, and ``terminated`` kept apart from ``truncated``.

On the command line, ``--env my_package.my_module:make_env`` (or
``--env path/to/file.py:make_env``) names a factory directly; the run folder records that name,
so ``--resume`` and ``wmjax eval`` import it again. ``wmjax --import my_package.my_envs train
...`` imports a module whose ``register_env`` calls add envs by name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import pathlib
import sys
from collections.abc import Callable

import numpy as np

__all__ = ["register_env", "is_factory_name", "load_factory", "register_factory_name",
           "import_envs", "user_envs", "origin", "ensure_registered"]

_USER: set[str] = set()
_ORIGIN: dict[str, str] = {}      # env name -> the module (or file) whose import registered it
_FACTORY: dict[str, tuple] = {}   # env name -> (module, qualified name) of its factory
_IMPORTING: list[str] = []        # the module import_envs is importing now


def _check_env(obj, where: str) -> None:
  missing = [a for a in ("reset", "step", "observation_size", "action_size")
             if not hasattr(obj, a)]
  if missing:
    raise TypeError(
        f"{where} returned {type(obj).__name__}, which is not an environment: it lacks "
        f"{', '.join(missing)}. wmjax takes brax's functional interface (reset(key) -> State, "
        "step(state, action) -> State, observation_size, action_size): a brax Env, a MuJoCo "
        "Playground MjxEnv, or an object of your own with those.")


def _ctrl_range(env, action_size: int):
  from wmjax.envs.registry import _ctrl_range as mujoco_range

  model = getattr(env, "mj_model", None)
  if model is None:
    model = getattr(getattr(env, "sys", None), "mj_model", None)
  if model is not None:
    return mujoco_range(model, action_size)
  ones = np.ones(action_size, np.float32)
  return -ones, ones


def _build(factory: Callable, where: str, **kwargs):
  from wmjax.envs import gymnax as gymnax_suite

  try:
    env = factory(**kwargs)
  except Exception as e:
    raise ValueError(f"building the environment with {where} failed: "
                     f"{type(e).__name__}: {e}") from e
  # A gymnax env, or what gymnax.make returns (env, params): through the gymnax adapter.
  if isinstance(env, tuple) and len(env) == 2 and gymnax_suite.is_gymnax_env(env[0]):
    return gymnax_suite.adapt(*env)
  if gymnax_suite.is_gymnax_env(env):
    return gymnax_suite.adapt(env)
  _check_env(env, where)
  from wmjax.envs.base import spec_of

  spec = spec_of(env)   # refuses dictionary observations with a clear message
  if spec.discrete:
    return env, None, None
  return (env, *_ctrl_range(env, int(env.action_size)))


def register_env(name: str, factory: Callable, *, episode_length: int = 1000,
                 action_repeat: int = 1, description: str = "", replace: bool = False) -> None:
  """Registers ``factory`` (``(**kwargs) -> env``) under ``name`` (``suite/name``).

  ``episode_length``: env steps per episode by default; ``action_repeat``: env steps per agent
  step by default (``make`` and the agents' presets may override both). A name that a built-in
  env already has is refused; re-registering one of your own names needs ``replace=True``.
  """
  from wmjax.envs import registry

  if not callable(factory):
    raise TypeError(f"register_env({name!r}, ...): the factory must be callable (a function "
                    f"or class returning an env), got {type(factory).__name__}")
  if "/" not in name or name.startswith("/") or name.endswith("/"):
    raise ValueError(f"env names are 'suite/name', e.g. 'mine/Reacher'; got {name!r}")
  registry._register_builtin()   # noqa: SLF001
  if name in registry._REGISTRY and name not in _USER:   # noqa: SLF001
    raise ValueError(f"{name!r} is a built-in environment; register yours under another name "
                     "(e.g. another suite prefix)")
  factory_id = (getattr(factory, "__module__", None), getattr(factory, "__qualname__", None))
  # The same factory again (a notebook cell run twice, a module imported again) replaces it.
  if name in _USER and not replace and _FACTORY.get(name) != factory_id:
    raise ValueError(f"{name!r} is already registered (by {_FACTORY.get(name, ('?',))[-1]}); "
                     "pass replace=True to replace it")
  if episode_length < 1 or action_repeat < 1:
    raise ValueError(f"episode_length and action_repeat must be >= 1, got {episode_length}, "
                     f"{action_repeat}")
  where = f"the factory of {name!r} ({getattr(factory, '__qualname__', factory)!s})"
  registry.register(name, registry.EnvEntry(
      functools.partial(_build, factory, where), episode_length=int(episode_length),
      action_repeat=int(action_repeat), description=description or f"user env ({where})"))
  _USER.add(name)
  _FACTORY[name] = factory_id
  if _IMPORTING:
    _ORIGIN[name] = _IMPORTING[-1]


def user_envs() -> list[str]:
  return sorted(_USER)


def is_factory_name(name: str) -> bool:
  """``package.module:factory`` or ``path/to/file.py:factory``."""
  return ":" in name and not name.startswith(("http:", "https:"))


def _import(module: str):
  if module.endswith(".py"):
    path = pathlib.Path(module).resolve()
    if not path.exists():
      raise ValueError(f"--env {module}: no such file")
    mod_name = f"wmjax_user_{path.stem}_{abs(hash(str(path))) % 10**8}"
    if mod_name in sys.modules:
      return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod
  return importlib.import_module(module)


def load_factory(name: str) -> Callable:
  """The factory named ``module:attr`` (the module imported, or the file loaded)."""
  module, _, attr = name.rpartition(":")
  if not module or not attr:
    raise ValueError(f"--env {name!r}: expected package.module:factory or path/file.py:factory")
  try:
    mod = _import(module)
  except ImportError as e:
    raise ValueError(f"--env {name!r}: cannot import {module!r} ({e}). Is it on PYTHONPATH?") \
        from e
  factory = getattr(mod, attr, None)
  if factory is None:
    public = [n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")
              and not inspect.ismodule(v)]
    raise ValueError(f"--env {name!r}: {module} has no {attr!r}; its callables: "
                     f"{', '.join(sorted(public)[:12]) or 'none'}")
  return factory


def register_factory_name(name: str) -> None:
  """Registers ``package.module:factory`` (or ``file.py:factory``) under that very name, so a
  run folder that records it builds the env again. The factory may carry ``episode_length``
  and ``action_repeat`` attributes (defaults 1000 and 1) and a docstring."""
  from wmjax.envs import registry

  factory = load_factory(name)
  if not callable(factory):
    raise TypeError(f"--env {name!r}: {type(factory).__name__} is not callable; name a "
                    "function or class that returns an env")
  episode_length = int(getattr(factory, "episode_length", 1000))
  action_repeat = int(getattr(factory, "action_repeat", 1))
  doc = (inspect.getdoc(factory) or "").splitlines()
  registry.register(name, registry.EnvEntry(
      functools.partial(_build, factory, f"--env {name}"), episode_length=episode_length,
      action_repeat=action_repeat, description=f"user env: {doc[0] if doc else name}"))
  _USER.add(name)


def import_envs(module: str) -> list[str]:
  """Imports ``module`` (its ``register_env`` calls add envs); returns the names it added."""
  before = set(_USER)
  if module.endswith(".py"):
    module = str(pathlib.Path(module).resolve())
  _IMPORTING.append(module)
  try:
    _import(module)
  except ImportError as e:
    raise ValueError(f"--import {module}: cannot import it ({e}). Is it on PYTHONPATH?") from e
  finally:
    _IMPORTING.pop()
  return sorted(_USER - before)


def origin(name: str) -> str | None:
  """The module (or file) whose import registered ``name``, if ``--import`` did."""
  from wmjax.envs.registry import base_name

  return _ORIGIN.get(base_name(name))


def ensure_registered(name: str, module: str | None) -> None:
  """Before rebuilding a run on a user env: import the module that registered it, if the env
  is not registered in this process yet."""
  from wmjax.envs import registry

  registry._register_builtin()   # noqa: SLF001
  name = registry.base_name(name)
  if module and name not in registry._REGISTRY:   # noqa: SLF001
    import_envs(module)
