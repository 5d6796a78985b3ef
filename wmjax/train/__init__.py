"""Run folders, checkpoints, plots and the drivers that call the jitted programs."""
