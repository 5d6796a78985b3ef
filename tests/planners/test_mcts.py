"""The generic mctx search finds known optima with an exact (hand-written) model: a delayed
reward in a one-player chain, a poisoned move in a two-player game (the sign flip per ply), and
never an illegal root action. Each runs twice: with the model given directly as
``root_fn``/``recurrent_fn``, and through MuZero's adapter (``make_muzero_search``) over
``MuZeroFns`` with value and reward supports. And ``wmjax.planners`` imports no model."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import wmjax.planners
from wmjax.agents.muzero import make_muzero_search
from wmjax.models.muzero import MuZeroFns, MuZeroNetConfig, scalar_to_support
from wmjax.planners.mcts import RecurrentFnOutput, RootFnOutput, SearchConfig, make_search

CONFIG = MuZeroNetConfig(value_support=5, reward_support=5)


def _exact_muzero_net(next_state, reward):
  """A tabular model: latent = one-hot state; state 0 at the root; zero values, flat priors."""
  next_state, reward = jnp.asarray(next_state), jnp.asarray(reward, jnp.float32)
  states, actions = next_state.shape

  def represent(params, obs):
    return jax.nn.one_hot(jnp.zeros(obs.shape[0], jnp.int32), states)

  def dynamics(params, latent, action):
    s = jnp.argmax(latent, -1)
    r = reward[s, action]
    return (jax.nn.one_hot(next_state[s, action], states),
            jnp.log(scalar_to_support(r, CONFIG.reward_support) + 1e-12))

  def predict(params, latent):
    batch = latent.shape[0]
    return (jnp.zeros((batch, actions)),
            jnp.log(scalar_to_support(jnp.zeros(batch), CONFIG.value_support) + 1e-12))

  return MuZeroFns(lambda key: {}, represent, dynamics, predict, CONFIG)


def _exact_fns(next_state, reward):
  """The same tabular model as mctx-style ``root_fn``/``recurrent_fn`` (the state index is the
  embedding)."""
  next_state, reward = jnp.asarray(next_state), jnp.asarray(reward, jnp.float32)
  actions = next_state.shape[1]

  def root_fn(params, obs):
    batch = obs.shape[0]
    return RootFnOutput(prior_logits=jnp.zeros((batch, actions)), value=jnp.zeros(batch),
                        embedding=jnp.zeros(batch, jnp.int32))

  def recurrent_fn(params, key, action, state):
    del key
    batch = action.shape[0]
    out = RecurrentFnOutput(reward=reward[state, action], discount=jnp.ones(batch),
                            prior_logits=jnp.zeros((batch, actions)), value=jnp.zeros(batch))
    return out, next_state[state, action]

  return root_fn, recurrent_fn


def _search(model, next_state, reward, config):
  if model == "direct":
    return make_search(*_exact_fns(next_state, reward), config)
  return make_muzero_search(_exact_muzero_net(next_state, reward), config)


MODELS = ["direct", "muzero"]


# State 0: action 0 pays 0.5 and ends (state 3, absorbing), action 1 pays 0 and goes to state 1,
# action 2 pays 0.1 and ends. State 1: action 0 pays 1.0 and ends; others 0.
NEXT = [[3, 1, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
PAY = [[0.5, 0.0, 0.1], [1.0, 0.0, 0.0], [0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("model", MODELS)
def test_one_player_search_finds_the_delayed_reward(model):
  search = _search(model, NEXT, PAY, SearchConfig(algorithm="gumbel", num_simulations=48))
  obs = jnp.zeros((4, 1))
  legal = jnp.ones((4, 3), bool)
  out = jax.jit(search, static_argnums=5)({}, jax.random.PRNGKey(0), obs, legal,
                                          jnp.float32(0.9), False)
  np.testing.assert_array_equal(out.action, 1)     # 0.9 * 1.0 later beats 0.5 now
  assert np.all(np.asarray(out.root_value) > 0.5)
  np.testing.assert_allclose(out.policy_target.sum(-1), 1.0, rtol=1e-5)


# Action 1 pays 0.8 now and leads to state 1, where the next mover can take 1.0.
POISON = [[3, 1, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], \
    [[0.5, 0.8, 0.1], [1.0, 0.0, 0.0], [0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_the_sign_flip_makes_a_good_move_poisoned_in_a_two_player_game(algorithm, model):
  # One player (discount 0.9): action 1 is worth 0.8 + 0.9 * 1.0, the best. Two players, zero
  # sum (discount -1): the 1.0 goes to the opponent, so action 1 is worth 0.8 - 1.0 and action
  # 0 (0.5) is the best.
  search = _search(model, *POISON, SearchConfig(algorithm=algorithm, num_simulations=64))
  obs, legal = jnp.zeros((4, 1)), jnp.ones((4, 3), bool)
  one = search({}, jax.random.PRNGKey(1), obs, legal, jnp.float32(0.9), False)
  two = search({}, jax.random.PRNGKey(1), obs, legal, jnp.float32(-1.0), False)
  np.testing.assert_array_equal(one.action, 1)
  np.testing.assert_array_equal(two.action, 0)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_illegal_root_actions_are_never_chosen(algorithm, model):
  search = _search(model, NEXT, PAY, SearchConfig(algorithm=algorithm, num_simulations=16))
  legal = jnp.array([[False, True, True]] * 64)
  out = search({}, jax.random.PRNGKey(2), jnp.zeros((64, 1)), legal, jnp.float32(-1.0), True)
  assert not np.any(np.asarray(out.action) == 0)
  np.testing.assert_allclose(np.asarray(out.policy_target)[:, 0], 0.0)


def test_bad_search_settings_are_refused():
  with pytest.raises(ValueError, match="gumbel' or 'puct"):
    SearchConfig(algorithm="alphabeta")
  with pytest.raises(ValueError, match="num_simulations"):
    SearchConfig(num_simulations=0)


def test_a_legal_mask_of_the_wrong_shape_is_refused():
  search = make_search(*_exact_fns(NEXT, PAY), SearchConfig(num_simulations=4))
  with pytest.raises(AssertionError):
    search({}, jax.random.PRNGKey(0), jnp.zeros((4, 1)), jnp.ones((4, 5), bool),
           jnp.float32(1.0), False)


def test_the_planners_import_no_model():
  """Every module of wmjax.planners, freshly imported, pulls in nothing from wmjax.models."""
  names = sorted(f"wmjax.planners.{p.stem}"
                 for p in pathlib.Path(wmjax.planners.__file__).parent.glob("*.py")
                 if p.stem != "__init__")
  assert "wmjax.planners.mcts" in names
  code = ("import importlib, sys\n"
          f"for name in {names!r}:\n"
          "  importlib.import_module(name)\n"
          "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['wmjax', 'models']))\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        check=True)
  assert done.stdout.strip() == "[]", f"wmjax.planners imports {done.stdout.strip()}"
