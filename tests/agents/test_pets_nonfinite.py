"""PETS reports non-finite plan returns (a model that gives NaN must stop a run, not be planned
around): ``nonfinite/plan_returns`` in every iteration's metrics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from wmjax import envs
from wmjax.agents import pets as pets_lib

CONFIG = pets_lib.PETSConfig(initial_episodes=1, ensemble_size=2, num_elites=2,
                             hidden_sizes=(8,), batch_size=8, model_train_steps=2, horizon=2,
                             population=8, iterations=2, num_particles=2, eval_episodes=1)


def _one_episode(poison: bool, config=CONFIG):
  env = envs.make("fast/PointMass", episode_length=4)
  pets = pets_lib.make_pets(env, config, total_steps=2 * 4)
  hyper = pets_lib.PETSHyper()
  state = pets.init(jax.random.PRNGKey(0), hyper)
  if poison:   # one weight of one member: its predictions, and so the plan returns, are NaN
    leaves, treedef = jax.tree.flatten(state.model.params)
    leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
    state = state._replace(model=state.model._replace(
        params=jax.tree.unflatten(treedef, leaves)))
  step_state, step_metrics = jax.jit(pets.step)(state, hyper)
  seq, valid, ret, info = jax.jit(pets.collect)(state, jax.random.PRNGKey(1), hyper)
  _, update_metrics = jax.jit(pets.update)(state, seq, valid, ret, info)
  return step_metrics, update_metrics


def test_healthy_model_reports_no_nonfinite_plan_returns():
  for metrics in _one_episode(poison=False):
    assert float(metrics["nonfinite/plan_returns"]) == 0


def test_nan_model_reports_nonfinite_plan_returns():
  for metrics in _one_episode(poison=True):
    count = float(metrics["nonfinite/plan_returns"])
    # At most every return of every planner iteration of the 4 steps.
    assert 0 < count <= 4 * CONFIG.iterations * CONFIG.population
    assert np.isfinite(count)


def test_nan_model_is_reported_when_refitting_inside_the_episode():
  step_metrics, _ = _one_episode(True, dataclasses.replace(CONFIG, train_every=2))
  assert float(step_metrics["nonfinite/plan_returns"]) > 0
