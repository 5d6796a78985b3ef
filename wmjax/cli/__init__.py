"""The ``wmjax`` command: train agents, evaluate and compare runs, sweep, list envs and presets.

One module per concern: :mod:`wmjax.cli.train` (a ``train`` command per algorithm of the
registry, :mod:`wmjax.train.algos`), :mod:`wmjax.cli.runs` (``eval``, ``compare``, ``play``),
:mod:`wmjax.cli.sweep` and :mod:`wmjax.cli.listing` (``envs``, ``presets``).
"""

from wmjax.cli import dataset, listing, runs, sweep, train  # noqa: E402,F401  (registers commands)
from wmjax.cli.common import app

__all__ = ["app"]
