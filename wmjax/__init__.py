"""wmjax: model-based RL and world models in JAX, fused on device.

Subpackages: ``wmjax.envs`` (registry and wrappers), ``wmjax.models`` (ensemble, propagation, RSSM,
MuZero, VAE, MDN-RNN), ``wmjax.planners`` (CEM, iCEM, MPPI, random shooting, MCTS),
``wmjax.agents`` (PETS, Dreamer, MBPO, MuZero, World Models, Dyna; ``base``: the contract with
the driver), ``wmjax.rl`` (returns, GAE, targets), ``wmjax.replay`` (jittable buffers),
``wmjax.train`` (the driver, the registry, run folders, sweeps) and ``wmjax.presets`` (tuned
settings per env, as data). ``wmjax.load(run_dir)`` loads a run to act with from Python
(:mod:`wmjax.loaded`).
"""

from wmjax.types import Planner, Spec, Transition

__version__ = "0.1.0"

__all__ = ["LoadedAgent", "Planner", "Spec", "Transition", "__version__", "load"]


def __getattr__(name):
  # ``wmjax.load`` and ``wmjax.LoadedAgent`` import the agents on first use, so that importing
  # a lower layer (``wmjax.planners``, ``wmjax.envs``) does not load every model.
  if name in ("load", "LoadedAgent"):
    from wmjax import loaded

    return getattr(loaded, name)
  raise AttributeError(f"module 'wmjax' has no attribute {name!r}")
