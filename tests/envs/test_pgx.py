"""Games for MuZero: pgx board games with rewards to the mover, frozen finished games, registry
envs as one-player games, clear refusals; and the reference opponents of the arena."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wmjax.agents import arena
from wmjax.envs.pgx import make_game


def _play(game, moves, key=0):
  s = game.init(jax.random.PRNGKey(key))
  for a in moves:
    s = game.step(s, jnp.int32(a), jax.random.PRNGKey(0))
  return s


def test_tic_tac_toe_rewards_the_mover_and_freezes_after_the_end():
  game = make_game("pgx/tic_tac_toe")
  assert game.two_player and game.num_actions == 9 and game.obs_shape == (3, 3, 2)
  s = _play(game, [0, 3, 1, 4])
  mover = int(s.player)
  s = game.step(s, jnp.int32(2), jax.random.PRNGKey(0))     # 0-1-2: the mover wins
  assert bool(s.terminated) and float(s.reward) == 1.0 and int(s.player) != mover
  after = game.step(s, jnp.int32(5), jax.random.PRNGKey(0))
  assert float(after.reward) == 0.0 and bool(after.terminated) and int(after.steps) == 5


def test_registry_env_is_a_one_player_game_with_a_time_limit():
  game = make_game("fast/PointMassDiscrete")
  assert game.num_players == 1 and game.num_actions == 5 and game.max_steps == 50
  s = jax.jit(game.init)(jax.random.PRNGKey(0))
  step = jax.jit(game.step)
  for _ in range(50):
    s = step(s, jnp.int32(0), jax.random.PRNGKey(0))
  assert bool(s.truncated) and not bool(s.terminated) and bool(np.all(s.legal))


@pytest.mark.parametrize("name,match", [
    ("dmc/CartpoleSwingup", "continuous actions"),
    ("pgx/sparrow_mahjong", "not two-player zero-sum"),
    ("pgx/kuhn_poker", "imperfect-information"),
    ("pgx/conect_four", "Did you mean: pgx/connect_four"),
])
def test_games_muzero_cannot_play_are_refused(name, match):
  with pytest.raises(ValueError, match=match):
    make_game(name)


@pytest.mark.parametrize("opponent", ["greedy", "safe"])
def test_greedy_and_safe_take_the_win_and_block_the_loss(opponent):
  game = make_game("pgx/connect_four")
  greedy = arena.opponent_policy(game, opponent)
  batch = lambda s: jax.tree.map(lambda x: x[None], s)
  # Mover has three in column 0 (and the opponent three in column 1): take the win in 0.
  win = _play(game, [0, 1, 0, 1, 0, 1])
  # The opponent threatens column 1 and the mover has no win: block in 1.
  block = _play(game, [0, 1, 0, 1, 2, 1])
  for s, want in ((win, 0), (block, 1)):
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    actions = jax.vmap(lambda k, s=s: greedy(k, batch(s))[0])(keys)
    np.testing.assert_array_equal(actions, want)


def test_greedy_may_play_beneath_a_winning_cell_and_safe_never_does():
  game = make_game("pgx/connect_four")
  # The second player holds row 1 of columns 1-3; rows 0 of columns 0 and 4 are empty, so
  # its wins at row 1 of columns 0 and 4 are not playable yet: no threat to block, no win to
  # take. Playing column 0 or 4 lets it win on top.
  s = _play(game, [1, 2, 3, 1, 6, 2, 6, 3])
  batch = lambda s: jax.tree.map(lambda x: x[None], s)
  keys = jax.random.split(jax.random.PRNGKey(0), 512)
  picks = {}
  for name in ("greedy", "safe"):
    policy = arena.opponent_policy(game, name)
    picks[name] = np.asarray(jax.jit(jax.vmap(lambda k, p=policy: p(k, batch(s))[0]))(keys))
  beneath = np.isin(picks["greedy"], [0, 4])
  assert 0.15 < beneath.mean() < 0.45          # uniform over 7 columns: 2/7
  assert set(np.unique(picks["greedy"])) == set(range(7))
  assert set(np.unique(picks["safe"])) == {1, 2, 3, 5, 6}
  with pytest.raises(ValueError, match="accepted: random, greedy, safe"):
    arena.opponent_policy(game, "minimax")


def test_greedy_beats_random_and_random_has_first_move_advantage():
  game = make_game("pgx/connect_four")
  match = jax.jit(lambda a, b, k: arena.play_match(game, a, b, k, 200), static_argnums=(0, 1))
  greedy, rand = arena.greedy_policy(game), arena.random_policy(game)
  res = match(greedy, rand, jax.random.PRNGKey(0))
  assert float(jnp.mean(res.outcome > 0)) > 0.85
  assert float(jnp.mean(res.agent_first)) == 0.5
  ttt = make_game("pgx/tic_tac_toe")
  r = arena.random_policy(ttt)
  res = jax.jit(lambda k: arena.play_match(ttt, r, r, k, 1000))(jax.random.PRNGKey(1))
  first = np.asarray(res.outcome)[np.asarray(res.agent_first)]
  assert 0.5 < np.mean(first > 0) < 0.65       # random first player wins ~58.5% (exact value)
