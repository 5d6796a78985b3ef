"""Offline reinforcement learning: datasets (:mod:`wmjax.offline.dataset`) and their collection
(:mod:`wmjax.offline.collect`: ``collect`` one dataset with a policy, ``collect_suite`` D4RL's
five kinds from a training run; ``wmjax.offline.collect_suite`` imports it on first use).

The offline agents (MOPO, MOReL, IQL) live in :mod:`wmjax.agents` beside the online ones and
train with ``wmjax train <algo> --dataset PATH``.
"""

from wmjax.offline.dataset import (
    FIELDS,
    KINDS,
    Dataset,
    DatasetError,
    episode_returns,
    from_arrays,
    load,
    load_meta,
    normalized_score,
    save,
)

__all__ = ["FIELDS", "KINDS", "Dataset", "DatasetError", "from_arrays", "load", "load_meta", "save",
           "normalized_score", "episode_returns"]


def __getattr__(name):   # collection imports the envs and brax: only when asked for
  if name == "collect_suite":
    import importlib

    return getattr(importlib.import_module("wmjax.offline.collect"), name)
  raise AttributeError(f"module 'wmjax.offline' has no attribute {name!r}")
