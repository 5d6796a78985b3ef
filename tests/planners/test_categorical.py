"""Discrete-action planners find the known optimum of a separable objective, under jit and
vmap, and count non-finite returns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax import planners
from wmjax.types import Spec

H, K = 6, 4
SPEC = Spec(obs_shape=(2,), action_shape=(), num_actions=K)


def _objective(score):
  """Return of a one-hot sequence [N, H, K]: the sum of each step's score of its action."""
  def objective(key, actions):
    del key
    return jnp.einsum("nhk,hk->n", actions, score)
  return objective


@pytest.mark.parametrize("name, population", [("cem", 64), ("random_shooting", 4096)])
def test_discrete_planners_find_the_known_optimum(name, population):
  planner = planners.make_planner(name, horizon=H, population=population, discrete=True,
                                  **({"iterations": 6} if name == "cem" else {}))
  scores = jax.random.normal(jax.random.PRNGKey(0), (8, H, K))   # 8 problems

  def solve(score, key):
    state = planner.init(SPEC)
    _, action, info = planner.plan(state, key, _objective(score))
    return action, info["planner/return"], info["planner/nonfinite_returns"]

  actions, returns, nonfinite = jax.jit(jax.vmap(solve))(scores,
                                                         jax.random.split(jax.random.PRNGKey(1), 8))
  best = np.asarray(scores).max(-1).sum(-1)                      # the optimum, step by step
  first = np.asarray(scores)[:, 0].argmax(-1)
  assert actions.shape == (8, K)
  if name == "cem":   # CEM reaches the optimum of every problem
    np.testing.assert_allclose(returns, best, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(actions).argmax(-1), first)
  else:               # 4096 draws of 4^6 = 4096 sequences: near it, never above it
    assert np.all(np.asarray(returns) <= best + 1e-5)
    assert np.mean(np.asarray(returns) / best) > 0.8
  assert np.all(np.asarray(nonfinite) == 0)


def test_cem_warm_start_shifts_and_counts_nan_returns():
  planner = planners.make_categorical_cem(H, 32, iterations=2)
  state = planner.init(SPEC)
  nan_objective = lambda key, a: jnp.full(a.shape[0], jnp.nan)   # noqa: E731
  state, action, info = jax.jit(planner.plan, static_argnums=2)(state, jax.random.PRNGKey(0),
                                                                nan_objective)
  assert int(info["planner/nonfinite_returns"]) == 2 * 32
  np.testing.assert_allclose(state.probs[-1], 1.0 / K)           # the new last step is uniform
  assert action.shape == (K,)


def test_discrete_planners_refuse_continuous_specs_and_bad_settings():
  with pytest.raises(ValueError, match="plans over discrete actions"):
    planners.make_categorical_cem(H, 8).init(Spec(obs_shape=(2,), action_shape=(2,)))
  with pytest.raises(ValueError, match="for discrete actions; accepted: cem, random_shooting"):
    planners.make_planner("mppi", horizon=H, population=8, discrete=True)
  with pytest.raises(ValueError, match="elite_fraction"):
    planners.make_categorical_cem(H, 8, elite_fraction=0.0)
