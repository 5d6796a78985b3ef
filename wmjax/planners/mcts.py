"""MCTS over a learned model, through mctx (Danihelka et al. 2022).

:func:`make_search` takes the model as mctx does: a ``root_fn`` giving the root's prior logits,
value and embedding, and a ``recurrent_fn`` giving one expansion; it runs
``mctx.gumbel_muzero_policy`` (``algorithm='gumbel'``) or ``mctx.muzero_policy``
(``algorithm='puct'``, with Dirichlet noise at the root). It knows no network: an agent adapts its
own (MuZero's: :func:`wmjax.agents.muzero.make_muzero_search`, as Stoix and pgx's AlphaZero
example do).

Two-player zero-sum games: every value is from the view of the player to move at that node and
every reward is to the player who moved, so one ply multiplies by ``discount = -gamma`` (pgx's
AlphaZero example uses ``-1``); one-player tasks use ``discount = gamma``. The search applies this
ply discount to every expansion, on top of the model's own discount (1, or 0 past a terminal
state the model predicts). Illegal actions are masked at the root from the game's legal-action
mask (``invalid_actions``); deeper in the tree the learned model has no mask, as in MuZero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax.numpy as jnp
import mctx

from wmjax.types import Array, Key

__all__ = ["RecurrentFn", "RecurrentFnOutput", "RootFn", "RootFnOutput", "SearchConfig",
           "SearchOutput", "make_search"]

# mctx's types, named here so agents need not import mctx:
#   RootFnOutput(prior_logits [B, A], value [B], embedding [B, ...])
#   RecurrentFnOutput(reward [B], discount [B], prior_logits [B, A], value [B])
RootFnOutput = mctx.RootFnOutput
RecurrentFnOutput = mctx.RecurrentFnOutput

# (params, obs [B, ...]) -> RootFnOutput
RootFn = Callable[[Any, Array], RootFnOutput]
# (params, key, action [B], embedding [B, ...]) -> (RecurrentFnOutput, embedding [B, ...]);
# values to the player to move at the new node, rewards to the player who moved, discount the
# model's own (the search multiplies it by the ply discount).
RecurrentFn = Callable[[Any, Key, Array, Any], tuple[RecurrentFnOutput, Any]]


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  algorithm: str = "gumbel"          # "gumbel" (gumbel_muzero_policy) | "puct" (muzero_policy)
  num_simulations: int = 32
  max_depth: int | None = None       # None: as deep as the simulations reach
  # gumbel (mctx defaults)
  max_num_considered_actions: int = 16
  gumbel_scale: float = 1.0
  # puct (MuZero's constants, mctx defaults)
  dirichlet_alpha: float = 0.3
  dirichlet_fraction: float = 0.25
  pb_c_init: float = 1.25
  temperature: float = 1.0

  def __post_init__(self):
    if self.algorithm not in ("gumbel", "puct"):
      raise ValueError(f"search algorithm must be 'gumbel' or 'puct', got {self.algorithm!r}")
    if self.num_simulations < 1:
      raise ValueError(f"num_simulations must be >= 1, got {self.num_simulations}")
    if self.max_num_considered_actions < 1:
      raise ValueError("max_num_considered_actions must be >= 1")


class SearchOutput(NamedTuple):
  action: Array          # int32 [B]: the move to play
  policy_target: Array   # float32 [B, A]: the search's improved policy (training target)
  root_value: Array      # float32 [B]: the search's value of the root, to the player to move
  prior_value: Array     # float32 [B]: the network's value of the root before search


def make_search(root_fn: RootFn, recurrent_fn: RecurrentFn, config: SearchConfig):
  """``search(params, key, obs [B, ...], legal [B, A], discount [], explore) -> SearchOutput``.

  ``discount`` is the ply discount (``-gamma`` in two-player zero-sum games, ``gamma``
  otherwise). ``explore=True`` (self-play): Gumbel noise on the root (gumbel) or Dirichlet noise
  and visit-count sampling (puct). ``explore=False`` (evaluation): no noise, and the most visited
  legal action (puct) or the deterministic Gumbel choice. ``explore`` is static.
  """

  def ply_recurrent_fn(params_and_discount, key, action, embedding):
    params, discount = params_and_discount
    out, embedding = recurrent_fn(params, key, action, embedding)
    return out.replace(discount=(out.discount * discount).astype(jnp.float32)), embedding

  def search(params, key: Key, obs: Array, legal: Array, discount: Array,
             explore: bool = True) -> SearchOutput:
    root = root_fn(params, obs)
    chex.assert_rank([legal, root.prior_logits, root.value], [2, 2, 1])
    chex.assert_equal_shape([legal, root.prior_logits])
    chex.assert_equal_shape_prefix([legal, root.value], 1)
    invalid = ~legal
    if config.algorithm == "gumbel":
      out = mctx.gumbel_muzero_policy(
          params=(params, discount), rng_key=key, root=root, recurrent_fn=ply_recurrent_fn,
          num_simulations=config.num_simulations, invalid_actions=invalid,
          max_depth=config.max_depth,
          max_num_considered_actions=config.max_num_considered_actions,
          gumbel_scale=config.gumbel_scale if explore else 0.0)
      action = out.action
    else:
      out = mctx.muzero_policy(
          params=(params, discount), rng_key=key, root=root, recurrent_fn=ply_recurrent_fn,
          num_simulations=config.num_simulations, invalid_actions=invalid,
          max_depth=config.max_depth,
          dirichlet_fraction=config.dirichlet_fraction if explore else 0.0,
          dirichlet_alpha=config.dirichlet_alpha, pb_c_init=config.pb_c_init,
          temperature=config.temperature)
      action = out.action if explore else jnp.argmax(
          jnp.where(legal, out.action_weights, -1.0), axis=-1)
    root_value = out.search_tree.node_values[:, mctx.Tree.ROOT_INDEX]
    return SearchOutput(action.astype(jnp.int32), out.action_weights, root_value, root.value)

  return search
