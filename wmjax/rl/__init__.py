"""RL math the agents share: return and advantage targets, return normalisation, two-hot.

Small pure functions of one sequence (time on axis 0); batch them with ``jax.vmap``.
"""

from wmjax.rl.returns import (
  discounted_returns,
  gae,
  lambda_returns,
  n_step_targets,
  percentile_ema_scale,
  percentile_ema_update,
  symexp,
  symlog,
  twohot_encode,
  twohot_mean,
)

__all__ = [
  "discounted_returns",
  "gae",
  "lambda_returns",
  "n_step_targets",
  "percentile_ema_scale",
  "percentile_ema_update",
  "symexp",
  "symlog",
  "twohot_encode",
  "twohot_mean",
]
