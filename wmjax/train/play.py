"""``wmjax play RUN_DIR``: a person plays a board game against a trained MuZero agent in the
terminal. Moves are typed as numbers (a cell for tic-tac-toe, a column for connect four); an
illegal or unreadable move is refused with the legal moves listed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents import muzero as muzero_lib

__all__ = ["play_in_terminal", "render_board", "PLAYABLE"]

PLAYABLE = ("pgx/tic_tac_toe", "pgx/connect_four")


def render_board(game_name: str, observation: np.ndarray, to_move_symbol: str,
                 other_symbol: str) -> str:
  """Text board from an observation (plane 0: the player to move, plane 1: the other)."""
  obs = np.asarray(observation)
  mine, theirs = obs[..., 0] > 0, obs[..., 1] > 0
  rows, cols = mine.shape
  lines = []
  for r in range(rows):
    cells = []
    for c in range(cols):
      if mine[r, c]:
        cells.append(to_move_symbol)
      elif theirs[r, c]:
        cells.append(other_symbol)
      elif game_name == "pgx/tic_tac_toe":
        cells.append(str(r * cols + c))      # free cells show their move number
      else:
        cells.append(".")
    lines.append(" " + " ".join(cells))
  if game_name == "pgx/connect_four":
    lines.append(" " + " ".join(str(c) for c in range(cols)))
  return "\n".join(lines)


def play_in_terminal(run_dir, *, human_first: bool = True, simulations: int | None = None,
                     seed: int = 0, input_fn: Callable[[str], str] = input,
                     print_fn: Callable[[str], None] = print) -> float:
  """Plays one game; returns the outcome for the person (+1 win, 0 draw, -1 loss, or NaN if
  they quit). ``input_fn``/``print_fn`` are the terminal (replaceable in tests)."""
  from wmjax.train.matches import load_muzero_run

  built, state, saved, step = load_muzero_run(run_dir)
  name = saved["env"]
  if name not in PLAYABLE:
    raise ValueError(f"{run_dir} plays {name}; `wmjax play` draws {', '.join(PLAYABLE)} "
                     "(evaluate other games with `wmjax eval RUN_DIR --opponent ...`)")
  game = built.env
  config = built.config
  if simulations is not None:
    config = dataclasses.replace(config, eval_simulations=simulations)
  agent = muzero_lib.make_muzero(game, config)
  params = jax.tree.map(lambda x: x[0], state.params)
  hyper = type(built.hyper)(*(jnp.float32(v) for v in built.hyper))
  policy = jax.jit(lambda key, g: agent.policy(
      params, hyper, key, jax.tree.map(lambda x: x[None], g))[0])
  step_fn = jax.jit(game.step)
  key = jax.random.PRNGKey(seed)
  key, k_init = jax.random.split(key)
  s = game.init(k_init)
  human = int(s.player) if human_first else 1 - int(s.player)
  symbol = {human: "X" if human_first else "O", 1 - human: "O" if human_first else "X"}
  what = "cell" if name == "pgx/tic_tac_toe" else "column"
  print_fn(f"You are {symbol[human]}, the agent (MuZero, checkpoint {step}) is "
           f"{symbol[1 - human]}. Type a {what} number to move, q to quit.")
  outcome = 0.0
  while not bool(s.terminated | s.truncated):
    mover = int(s.player)
    if mover == human:
      print_fn(render_board(name, s.observation, symbol[human], symbol[1 - human]))
      legal = [int(a) for a in np.flatnonzero(np.asarray(s.legal))]
      while True:
        text = input_fn(f"your move ({what}): ").strip()
        if text.lower() in ("q", "quit", "exit"):
          print_fn("game abandoned")
          return float("nan")
        try:
          action = int(text)
        except ValueError:
          print_fn(f"{text!r} is not a move; legal moves: {' '.join(map(str, legal))}")
          continue
        if action not in legal:
          print_fn(f"{action} is not a legal move; legal moves: {' '.join(map(str, legal))}")
          continue
        break
    else:
      key, k_agent = jax.random.split(key)
      action = int(policy(k_agent, s))
      print_fn(f"agent plays {what} {action}")
    key, k_step = jax.random.split(key)
    s = step_fn(s, jnp.int32(action), k_step)
    outcome += float(s.reward) if mover == human else -float(s.reward)
  # The player to move now is the one who did not make the last move.
  to_move = int(s.player)
  print_fn(render_board(name, s.observation, symbol[to_move], symbol[1 - to_move]))
  print_fn({1: "you win", 0: "draw", -1: "the agent wins"}[int(np.sign(outcome))])
  return float(np.sign(outcome))
