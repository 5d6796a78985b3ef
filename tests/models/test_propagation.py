"""Tests for particle propagation (the PETS objective) and branched rollouts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.models import PROPAGATIONS, EnsembleConfig, make_ensemble, make_objective, rollout
from wmjax.types import Transition

CONFIG = EnsembleConfig(
    obs_size=2,
    action_size=1,
    ensemble_size=4,
    num_elites=3,
    hidden_sizes=(16, 16),
    batch_size=64,
    train_steps=100,
)
HORIZON = 4


@pytest.fixture(scope="module")
def model():
  """An ensemble fitted briefly on a damped linear system with reward -|obs|^2."""
  rng = np.random.default_rng(0)
  capacity = 400
  obs = rng.normal(size=(capacity, 2)).astype(np.float32)
  act = rng.uniform(-1, 1, size=(capacity, 1)).astype(np.float32)
  nxt = 0.9 * obs + 0.2 * act + 0.05 * rng.normal(size=(capacity, 2)).astype(np.float32)
  rew = -np.sum(obs**2, axis=-1)
  data = Transition(*map(jnp.asarray, (obs, act, rew, nxt)), jnp.zeros(capacity, bool))
  ens = make_ensemble(CONFIG)
  state = jax.jit(ens.init)(jax.random.key(0))
  state, _ = jax.jit(ens.fit)(state, jax.random.key(1), data, jnp.int32(capacity))
  return ens, state


def _near_deterministic(state):
  """The same state with log-variances clamped far below zero: sampling returns the mean."""
  params = dict(state.params)
  params["max_logvar"] = jnp.full_like(params["max_logvar"], -40.0)
  params["min_logvar"] = jnp.full_like(params["min_logvar"], -50.0)
  return state._replace(params=params)


# Every test uses these shapes, so each mode compiles once (jit caches on shapes, not values).
NUM_CAND, NUM_PARTICLES = 5, 4   # 20 particles: padded to 21 for 3 elites


@functools.partial(jax.jit, static_argnames=("ens", "mode", "discount", "coef"))
def _returns(ens, state, obs, key, actions, *, mode, discount=1.0, coef=0.0):
  objective = make_objective(
      ens, state, obs, num_particles=NUM_PARTICLES, propagation=mode,
      disagreement_coef=coef, discount=discount,
  )
  return objective(key, actions)


def _actions(key, n=NUM_CAND):
  return jax.random.uniform(key, (n, HORIZON, 1), minval=-1, maxval=1)


def test_fixed_model_matches_python_loop(model):
  ens, state = model
  state = _near_deterministic(state)
  obs = jnp.array([0.5, -1.0])
  actions = _actions(jax.random.key(2))
  got = _returns(ens, state, obs, jax.random.key(3), actions, mode="fixed_model", discount=0.9)

  predict = jax.jit(ens.predict)
  elites = np.asarray(state.elite_idx)
  particles = NUM_CAND * NUM_PARTICLES
  cand = np.arange(particles) // NUM_PARTICLES
  members = elites[np.arange(particles) % CONFIG.num_elites]
  o = jnp.broadcast_to(obs, (particles, 2))
  total = np.zeros(particles)
  for t in range(HORIZON):
    mean, _ = predict(state, o, actions[cand, t])                # [E, particles, 3]
    mean = np.asarray(mean)[members, np.arange(particles)]
    o = jnp.asarray(mean[:, :2])
    total += 0.9**t * mean[:, 2]
  expected = total.reshape(NUM_CAND, NUM_PARTICLES).mean(-1)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_one_step_balanced_assignment_averages_elites(model):
  """With N = 1, P = K and H = 1 every elite is drawn once: the return is the elite mean."""
  ens, state = model
  obs = jnp.array([0.3, 0.7])
  actions = jnp.array([[[0.4]]])
  particles = NUM_CAND * NUM_PARTICLES   # the shapes of the other tests' predict calls
  mean, _ = jax.jit(ens.predict)(
      state, jnp.broadcast_to(obs, (particles, 2)), jnp.full((particles, 1), 0.4)
  )
  expected = float(jnp.mean(mean[state.elite_idx, 0, 2]))

  @jax.jit
  def both(key):
    return [
        make_objective(ens, state, obs, num_particles=3, propagation=mode)(key, actions)
        for mode in ("ts1", "tsinf")
    ]

  for got in both(jax.random.key(4)):
    np.testing.assert_allclose(got, [expected], rtol=1e-5)


def test_identical_members_make_all_modes_agree(model):
  """All elites equal and no noise: every assignment of particles gives the same returns."""
  ens, state = model
  state = _near_deterministic(state)
  state = state._replace(
      params=jax.tree.map(lambda p: jnp.broadcast_to(p[0], p.shape), state.params)
  )
  obs = jnp.array([-0.2, 0.9])
  actions = _actions(jax.random.key(8))
  results = [
      _returns(ens, state, obs, jax.random.key(9), actions, mode=mode) for mode in PROPAGATIONS
  ]
  for mode, got in zip(PROPAGATIONS, results, strict=True):
    np.testing.assert_allclose(got, results[-1], rtol=1e-4, atol=1e-4, err_msg=mode)


@pytest.mark.parametrize("mode", PROPAGATIONS)
def test_modes_under_jit_and_vmap(model, mode):
  ens, state = model
  obs = jax.random.normal(jax.random.key(5), (3, 2))
  keys = jax.random.split(jax.random.key(6), 3)
  actions = _actions(jax.random.key(7))
  run = functools.partial(_returns, ens, mode=mode)
  # vmap over seeds and observations: the state gets a leading axis too (as in sweeps).
  states = jax.tree.map(lambda x: jnp.stack([x] * 3), state)
  batched = jax.jit(jax.vmap(run, in_axes=(0, 0, 0, None)))(states, obs, keys, actions)
  assert batched.shape == (3, NUM_CAND)
  assert np.all(np.isfinite(batched))
  single = run(state, obs[1], keys[1], actions)
  np.testing.assert_allclose(batched[1], single, rtol=1e-4, atol=1e-4)


def test_disagreement_penalty_and_bonus(model):
  ens, state = model
  obs = jnp.array([1.5, -1.5])
  actions = _actions(jax.random.key(10))
  key = jax.random.key(11)

  @jax.jit   # one compile: the coefficient is traced, so all elites are evaluated
  def run(coef):
    objective = make_objective(
        ens, state, obs, num_particles=NUM_PARTICLES, propagation="ts1", disagreement_coef=coef
    )
    return objective(key, actions)

  base, penalised, bonus = (run(jnp.float32(c)) for c in (0.0, 1.0, -1.0))
  assert np.all(penalised < base) and np.all(bonus > base)
  # Same particles in all runs: the difference is exactly the disagreement term.
  np.testing.assert_allclose(base - penalised, bonus - base, rtol=1e-4, atol=1e-5)
  # The cheap path (static zero: one member per particle step) gives the same particles.
  cheap = _returns(ens, state, obs, key, actions, mode="ts1")
  np.testing.assert_allclose(cheap, base, rtol=1e-4, atol=1e-4)


def test_known_reward_and_termination(model):
  ens, state = model
  obs = jnp.array([0.1, 0.2])
  actions = _actions(jax.random.key(12))
  reward_fn = lambda o, a, next_o: jnp.sum(a)
  ones = lambda o, a, next_o: jnp.float32(1.0)

  @jax.jit
  def both(key):
    key_a, key_b = jax.random.split(key)
    known = make_objective(
        ens, state, obs, num_particles=2, propagation="tsinf", reward_fn=reward_fn, discount=0.5
    )
    done = make_objective(
        ens, state, obs, num_particles=2, reward_fn=ones, termination_fn=lambda o: jnp.bool_(True)
    )
    return known(key_a, actions), done(key_b, actions)

  got, got_done = both(jax.random.key(13))
  expected = np.sum(0.5 ** np.arange(HORIZON) * np.asarray(actions[..., 0]), axis=-1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # Terminal after the first step: only the first reward counts.
  np.testing.assert_allclose(got_done, np.ones(NUM_CAND))


def test_rollout_follows_each_rows_member(model):
  ens, state = model
  state = _near_deterministic(state)
  obs = jax.random.normal(jax.random.key(15), (4, 2))
  actions = _actions(jax.random.key(16), 4)
  members = jnp.array([0, 3, 1, 3], jnp.int32)
  next_obs, rewards = jax.jit(functools.partial(rollout, ens))(
      state, jax.random.key(17), obs, actions, members
  )
  assert next_obs.shape == (4, HORIZON, 2) and rewards.shape == (4, HORIZON)
  predict = jax.jit(ens.predict)
  o = obs
  for t in range(HORIZON):
    mean, _ = predict(state, o, actions[:, t])
    mean = mean[members, jnp.arange(4)]
    np.testing.assert_allclose(next_obs[:, t], mean[:, :2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rewards[:, t], mean[:, 2], rtol=1e-4, atol=1e-5)
    o = mean[:, :2]


def test_bad_input_raises(model):
  ens, state = model
  obs = jnp.zeros(2)
  with pytest.raises(ValueError, match="expectation"):
    make_objective(ens, state, obs, num_particles=2, propagation="ts2")
  objective = make_objective(ens, state, obs, num_particles=2)
  with pytest.raises(ValueError, match=r"\[N, H, A\]"):
    objective(jax.random.key(0), jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match="A = 1"):
    objective(jax.random.key(0), jnp.zeros((3, 4, 2)))
  no_reward = make_ensemble(EnsembleConfig(obs_size=2, action_size=1, learn_reward=False))
  with pytest.raises(ValueError, match="reward_fn"):
    make_objective(no_reward, state, obs, num_particles=2)


def test_learned_rewards_are_bounded_by_the_data(model):
  """Off the data the reward head extrapolates; the objective clips it to the seen range."""
  ens, state = model
  norm = state.normalizer
  assert float(norm.target_max[-1]) <= 0.0 + 1e-6   # rewards in the data are -|obs|^2 <= 0
  far = jnp.array([8.0, -8.0])                       # way off the data
  actions = jnp.zeros((NUM_CAND, HORIZON, 1))
  returns = _returns(ens, state, far, jax.random.key(3), actions, mode="tsinf")
  lo, hi = float(norm.target_min[-1]), float(norm.target_max[-1])
  assert np.all(np.asarray(returns) >= HORIZON * lo - 1e-4)
  assert np.all(np.asarray(returns) <= HORIZON * hi + 1e-4)
