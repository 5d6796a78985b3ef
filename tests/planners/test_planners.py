"""Planners on known objectives (a quadratic, a linear system), under jit and vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.planners import (
  ShootingState,
  colored_noise,
  make_cem,
  make_mppi,
  make_planner,
  make_random_shooting,
)
from wmjax.types import Spec

H, A = 5, 2
SPEC = Spec(obs_shape=(2,), action_shape=(A,))
CONFIGS = {   # name -> (kwargs, tolerance on the first action, tolerance on the rest of the plan)
  # mbrl-lib's variance clipping slows CEM's approach to a bound, hence 0.15 on the rest.
  "cem": (dict(population=1000, iterations=10), 0.05, 0.15),
  # Brown (beta = 2) noise over only 5 steps is nearly constant in time, so single steps are
  # tuned slowly.
  "icem": (dict(population=1000, iterations=10), 0.1, 0.2),
  # MPPI's weighted average of clipped samples sits a little inside a bound, hence 0.08.
  "mppi": (dict(population=1000, iterations=10, temperature=0.2, noise_std=0.3), 0.08, 0.1),
}


def quadratic(target):
  """Objective with its maximum at ``target`` [H, A]."""
  return lambda key, actions: -jnp.sum(jnp.square(actions - target), axis=(1, 2))


def linear_system(x0):
  """x_{t+1} = x_t + 0.1 a_t; reward -|x_{t+1}|^2 - 0.01 |a_t|^2, summed over the horizon."""

  def objective(key, actions):   # [N, H, 2] -> [N]
    del key
    xs = x0 + 0.1 * jnp.cumsum(actions, axis=1)
    return -jnp.sum(jnp.square(xs), axis=(1, 2)) - 0.01 * jnp.sum(jnp.square(actions), axis=(1, 2))

  return objective


def _targets():
  rng = np.random.default_rng(0)
  inside = rng.uniform(-0.8, 0.8, (2, H, A))
  on_bound = rng.uniform(-0.8, 0.8, (H, A))
  on_bound[0] = [1.4, -1.3]          # outside the bounds: the best first action is (1, -1)
  on_bound[2, 1] = 1.6
  return jnp.asarray(np.concatenate([inside, on_bound[None]]), jnp.float32)   # [B, H, A]


@functools.cache
def _quadratic_fns(name):
  kwargs, _, _ = CONFIGS[name]
  planner = make_planner(name, horizon=H, **kwargs)

  def solve(key, target):
    return planner.plan(planner.init(SPEC), key, quadratic(target))

  return jax.jit(solve), jax.jit(jax.vmap(solve))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_finds_quadratic_optimum_batched_and_per_row(name):
  _, first_tol, rest_tol = CONFIGS[name]
  solve, batched_solve = _quadratic_fns(name)
  targets = _targets()
  keys = jax.random.split(jax.random.key(1), targets.shape[0])
  states, actions, infos = batched_solve(keys, targets)
  best = jnp.clip(targets, -1.0, 1.0)
  assert actions.shape == (targets.shape[0], A)
  np.testing.assert_allclose(actions, best[:, 0], atol=first_tol)
  # Warm start: the optimised plan shifted by one, the bounds' midpoint appended.
  assert isinstance(states, ShootingState)
  np.testing.assert_allclose(states.mean[:, :-1], best[:, 1:], atol=rest_tol)
  np.testing.assert_array_equal(states.mean[:, -1], 0.0)
  assert infos["planner/return"].shape == (targets.shape[0],)
  assert bool(jnp.all(jnp.isfinite(infos["planner/return"])))
  for i in range(targets.shape[0]):
    state, action, info = solve(keys[i], targets[i])
    np.testing.assert_allclose(action, actions[i], atol=1e-4)
    np.testing.assert_allclose(state.mean, states.mean[i], atol=1e-4)
    np.testing.assert_allclose(info["planner/return"], infos["planner/return"][i], rtol=1e-4)


def test_cem_returns_best_sequence_seen():
  planner = make_cem(H, 100, iterations=3, keep_elites=0.5, return_mean_elites=False)
  target = _targets()[0]

  def objective(key, actions):   # ignores the last step, which the shifted state drops
    return quadratic(target[:-1])(key, actions[:, :-1])

  state, action, info = jax.jit(planner.plan, static_argnums=2)(
    planner.init(SPEC), jax.random.key(9), objective
  )
  best_plan = jnp.concatenate([action[None], state.mean[:-1]])   # [H, A], last step unused
  np.testing.assert_allclose(objective(None, best_plan[None])[0], info["planner/best_return"],
                             rtol=1e-5)
  assert info["planner/best_return"] >= info["planner/return"]


def test_random_shooting_one_step_optimum():
  spec = Spec(obs_shape=(1,), action_shape=(1,), action_low=-2.0, action_high=1.0)
  planner = make_random_shooting(horizon=1, population=2000)

  @jax.jit
  @jax.vmap
  def solve(key, target):
    return planner.plan(planner.init(spec), key, quadratic(target))

  targets = jnp.array([[[0.37]], [[-1.5]], [[1.8]]])
  states, actions, infos = solve(jax.random.split(jax.random.key(2), 3), targets)
  np.testing.assert_allclose(actions[:, 0], [0.37, -1.5, 1.0], atol=0.05)
  np.testing.assert_allclose(infos["planner/return"], -jnp.square(actions[:, 0] - targets[:, 0, 0]))
  np.testing.assert_array_equal(states.mean, -0.5)     # shifted: only the midpoint is left
  assert bool(jnp.all((actions >= -2.0) & (actions <= 1.0)))


@functools.cache
def _closed_loop(name, steps=30, horizon=10):
  kwargs, _, _ = CONFIGS[name]
  kwargs = dict(kwargs, population=300, iterations=5)
  planner = make_planner(name, horizon=horizon, **kwargs)

  @jax.jit
  def run(key, x0):
    def step(carry, key_t):
      state, x_t = carry
      state, action_t, info = planner.plan(state, key_t, linear_system(x_t))
      x_tp1 = x_t + 0.1 * action_t
      return (state, x_tp1), (action_t, x_tp1, info["planner/return"])

    _, (actions, xs, returns) = jax.lax.scan(
      step, (planner.init(SPEC), x0), jax.random.split(key, steps)
    )
    return actions, xs, returns

  return run


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_linear_system_closed_loop(name):
  actions, xs, returns = _closed_loop(name)(jax.random.key(3), jnp.array([0.5, -0.3]))
  # Far from the origin the optimal first action is (-1, 1), on the bounds, with return -0.422
  # (projected gradient descent on the same objective); doing nothing returns -3.4.
  assert actions[0, 0] < -0.7 and actions[0, 1] > 0.4, actions[0]
  assert returns[0] > -0.65, returns[0]
  assert float(jnp.linalg.norm(xs[-1])) < 0.05, xs[-1]
  assert bool(jnp.all(jnp.isfinite(returns)))


def test_random_shooting_pushes_towards_origin():
  planner = make_random_shooting(horizon=3, population=1000)
  _, action, _ = jax.jit(planner.plan, static_argnums=2)(
    planner.init(SPEC), jax.random.key(4), linear_system(jnp.array([0.5, -0.3]))
  )
  assert action[0] < -0.3 and action[1] > 0.3, action


def test_traced_hyperparameters_cem_alpha():
  state = make_cem(H, 200).init(SPEC)
  target = _targets()[0]
  key = jax.random.key(5)

  def solve(alpha):
    return make_cem(H, 200, iterations=3, alpha=alpha).plan(state, key, quadratic(target))

  _, actions, _ = jax.jit(jax.vmap(solve))(jnp.array([0.1, 0.9]))
  single = jax.jit(solve)
  for i, alpha in enumerate([0.1, 0.9]):
    np.testing.assert_allclose(single(jnp.float32(alpha))[1], actions[i], atol=1e-5)
  # More weight on the old mean (0) leaves the action further from the target.
  err = jnp.abs(actions - target[0]).sum(-1)
  assert err[0] < err[1]


def test_traced_hyperparameters_mppi_temperature():
  state = make_mppi(H, 200).init(SPEC)
  target = _targets()[0]
  key = jax.random.key(6)

  def solve(temperature, noise_std):
    planner = make_mppi(H, 200, iterations=2, temperature=temperature, noise_std=noise_std)
    return planner.plan(state, key, quadratic(target))

  temps, stds = jnp.array([0.1, 100.0]), jnp.array([0.3, 0.5])
  _, actions, infos = jax.jit(jax.vmap(solve))(temps, stds)
  single = jax.jit(solve)
  for i in range(2):
    np.testing.assert_allclose(single(temps[i], stds[i])[1], actions[i], atol=1e-5)
  assert infos["planner/ess"][0] < infos["planner/ess"][1]   # hotter: weights more uniform


def test_colored_noise_statistics():
  @jax.jit
  @jax.vmap   # over keys and a traced beta
  def stats(key, beta):
    x = colored_noise(key, beta, (2000, 32, 2))
    lag1 = jnp.mean(x[:, 1:] * x[:, :-1]) / jnp.mean(jnp.square(x))
    return jnp.std(x), jnp.mean(x), lag1

  betas = jnp.array([0.0, 2.0])
  keys = jax.random.split(jax.random.key(7), 2)
  stds, means, lag1s = stats(keys, betas)
  np.testing.assert_allclose(stds[0], 1.0, atol=0.03)
  assert abs(float(means[0])) < 0.03
  assert abs(float(lag1s[0])) < 0.03
  assert float(lag1s[1]) > 0.5
  np.testing.assert_allclose(stds[1], 1.0, atol=0.1)
  small = colored_noise(jax.random.key(8), 1.0, (3, 1, 4))
  assert small.shape == (3, 1, 4) and small.dtype == jnp.float32


def test_bad_input():
  with pytest.raises(ValueError, match="accepted: cem, icem, mppi, random_shooting"):
    make_planner("bogus", horizon=H, population=10)
  with pytest.raises(ValueError, match="population"):
    make_planner("cem", horizon=H, population=0)
  with pytest.raises(ValueError, match="horizon"):
    make_planner("mppi", horizon=0, population=10)
  with pytest.raises(ValueError, match="elite_fraction"):
    make_planner("cem", horizon=H, population=10, elite_fraction=0.0)
  with pytest.raises(ValueError, match="colored_noise"):
    colored_noise(jax.random.key(0), 2.0, (5,))
  discrete = Spec(obs_shape=(3,), action_shape=(), num_actions=4)
  for name in ("random_shooting", "cem", "icem", "mppi"):
    planner = make_planner(name, horizon=H, population=10)
    with pytest.raises(ValueError, match="continuous"):
      planner.init(discrete)
    bad_objective = lambda key, actions: jnp.zeros((actions.shape[0], 1))
    with pytest.raises(ValueError, match=r"returned \(10, 1\)"):
      jax.jit(planner.plan, static_argnums=2)(planner.init(SPEC), jax.random.key(0), bad_objective)


@pytest.mark.parametrize("name", ["random_shooting", "cem", "icem", "mppi"])
def test_nonfinite_returns_are_counted(name):
  """A NaN or infinite return is never silently dropped: every planner reports how many of
  the returns it evaluated (over all its iterations) were not finite."""
  iterations = {} if name == "random_shooting" else dict(iterations=3)
  planner = make_planner(name, horizon=H, population=8, **iterations)
  target = jnp.zeros((H, A))

  def broken(key, actions):   # NaN for the sequences that start with a positive action
    returns = quadratic(target)(key, actions)
    return jnp.where(actions[:, 0, 0] > 0, jnp.nan, returns)

  plan = jax.jit(lambda s, k, f: planner.plan(s, k, f), static_argnums=2)
  _, _, info = plan(planner.init(SPEC), jax.random.PRNGKey(0), quadratic(target))
  assert int(info["planner/nonfinite_returns"]) == 0
  _, _, info = plan(planner.init(SPEC), jax.random.PRNGKey(0), broken)
  assert int(info["planner/nonfinite_returns"]) > 0
  _, _, info = plan(planner.init(SPEC), jax.random.PRNGKey(0),
                    lambda key, actions: jnp.full(actions.shape[:1], jnp.inf))
  evaluated = 8 * iterations.get("iterations", 1)
  assert int(info["planner/nonfinite_returns"]) == evaluated
