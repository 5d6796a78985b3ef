"""Offline reinforcement learning: datasets (:mod:`wmjax.offline.dataset`) and their collection.

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
