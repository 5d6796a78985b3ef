"""Environments: one functional protocol (brax's), one registry."""

from wmjax.envs.base import Env, State, Wrapper, spec_of
from wmjax.envs.registry import EnvEntry, make, names, register
from wmjax.envs.user import import_envs, register_env
from wmjax.envs.wrappers import NormalizeActions, RegisteredEnv, TerminationInfo

__all__ = [
    "Env", "EnvEntry", "NormalizeActions", "RegisteredEnv", "State", "TerminationInfo",
    "Wrapper", "make", "names", "register", "register_env", "import_envs", "spec_of",
]
