"""experiments/muzero_tactics.py: the win-in-one and block-in-one positions it draws are what
they say (checked by playing the labelled moves)."""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.envs.pgx import make_game

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "experiments"))

import muzero_tactics  # noqa: E402


def test_win_and_block_positions_are_labelled_right():
  game = make_game("pgx/tic_tac_toe")
  G = 64
  win_s, win_m, win_f, blk_s, blk_m, blk_f = jax.jit(
      muzero_tactics.tactical_positions, static_argnums=(0, 2))(game, jax.random.PRNGKey(3), G)
  win_f, blk_f = np.asarray(win_f), np.asarray(blk_f)
  assert win_f.mean() > 0.5 and blk_f.mean() > 0.5      # random tic-tac-toe games have both
  step_all = jax.jit(jax.vmap(lambda s: jax.vmap(
      lambda a: game.step(s, a, jax.random.PRNGKey(0)))(jnp.arange(9))))
  after = step_all(win_s)                                  # leaves [G, A]
  wins_now = np.asarray(after.terminated & (after.reward > 0))
  legal = np.asarray(win_s.legal)
  np.testing.assert_array_equal(np.asarray(win_m)[win_f], (wins_now & legal)[win_f])
  # A block position: no win for the mover, and after any legal move other than a labelled
  # cell, the opponent wins by playing that cell.
  after = step_all(blk_s)
  step1 = jax.jit(game.step)
  for g in np.flatnonzero(blk_f)[:16]:
    s_legal, cells = np.asarray(blk_s.legal[g]), np.flatnonzero(np.asarray(blk_m[g]))
    assert len(cells) >= 1 and s_legal[cells].all()
    for a in np.flatnonzero(s_legal):
      nxt = jax.tree.map(lambda x, a=a, g=g: x[g, a], after)
      assert not (bool(nxt.terminated) and float(nxt.reward) > 0)   # no win in one for mover
      for c in cells:
        if a == c:
          continue
        reply = step1(nxt, jnp.int32(c), jax.random.PRNGKey(0))
        assert bool(reply.terminated) and float(reply.reward) > 0
