"""Training: the one driver (``loop``), the registry of algorithms (``algos``), run folders,
checkpoints, sweeps (``sweep``, ``grid``, ``distributed``, ``report``), plots and figures."""
