"""The mctx adapter finds known optima with an exact (hand-written) model: a delayed reward in a
one-player chain, a poisoned move in a two-player game (the sign flip per ply), and never an
illegal root action."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.models.muzero import MuZeroFns, MuZeroNetConfig, scalar_to_support
from wmjax.planners.mcts import SearchConfig, make_search

CONFIG = MuZeroNetConfig(value_support=5, reward_support=5)


def _exact_model(next_state, reward):
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


# State 0: action 0 pays 0.5 and ends (state 3, absorbing), action 1 pays 0 and goes to state 1,
# action 2 pays 0.1 and ends. State 1: action 0 pays 1.0 and ends; others 0.
NEXT = [[3, 1, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
PAY = [[0.5, 0.0, 0.1], [1.0, 0.0, 0.0], [0, 0, 0], [0, 0, 0]]


def test_one_player_search_finds_the_delayed_reward():
  search = make_search(_exact_model(NEXT, PAY),
                       SearchConfig(algorithm="gumbel", num_simulations=48))
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


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_the_sign_flip_makes_a_good_move_poisoned_in_a_two_player_game(algorithm):
  # One player (discount 0.9): action 1 is worth 0.8 + 0.9 * 1.0, the best. Two players, zero
  # sum (discount -1): the 1.0 goes to the opponent, so action 1 is worth 0.8 - 1.0 and action
  # 0 (0.5) is the best.
  search = make_search(_exact_model(*POISON),
                       SearchConfig(algorithm=algorithm, num_simulations=64))
  obs, legal = jnp.zeros((4, 1)), jnp.ones((4, 3), bool)
  one = search({}, jax.random.PRNGKey(1), obs, legal, jnp.float32(0.9), False)
  two = search({}, jax.random.PRNGKey(1), obs, legal, jnp.float32(-1.0), False)
  np.testing.assert_array_equal(one.action, 1)
  np.testing.assert_array_equal(two.action, 0)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_illegal_root_actions_are_never_chosen(algorithm):
  search = make_search(_exact_model(NEXT, PAY),
                       SearchConfig(algorithm=algorithm, num_simulations=16))
  legal = jnp.array([[False, True, True]] * 64)
  out = search({}, jax.random.PRNGKey(2), jnp.zeros((64, 1)), legal, jnp.float32(-1.0), True)
  assert not np.any(np.asarray(out.action) == 0)
  np.testing.assert_allclose(np.asarray(out.policy_target)[:, 0], 0.0)


def test_bad_search_settings_are_refused():
  with pytest.raises(ValueError, match="gumbel' or 'puct"):
    SearchConfig(algorithm="alphabeta")
  with pytest.raises(ValueError, match="num_simulations"):
    SearchConfig(num_simulations=0)
