"""wmjax: model-based RL and world models in JAX, fused on device.

Subpackages: ``wmjax.envs`` (registry and wrappers), ``wmjax.models`` (ensemble, propagation, RSSM),
``wmjax.planners`` (CEM, iCEM, MPPI, random shooting), ``wmjax.agents`` (PETS, Dreamer),
``wmjax.replay`` (jittable buffers), ``wmjax.train`` (run folders, checkpoints, drivers).
"""

from wmjax.types import Planner, Spec, Transition

__version__ = "0.1.0"

__all__ = ["Planner", "Spec", "Transition", "__version__"]
