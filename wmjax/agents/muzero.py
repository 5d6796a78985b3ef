"""MuZero (Schrittwieser et al. 2020): a learned latent model trained so that MCTS in latent space
matches real returns; self-play, replay and updates fused into one jitted iteration.

One iteration (``train_iteration``, pure, vmappable over seeds and :class:`MuZeroHyper`):

1. Self-play ``steps_per_iteration`` moves in each of ``num_envs`` vmapped games, with an mctx
   search (``wmjax.planners.mcts``) at every move; finished games restart.
2. Write the moves to a pure-JAX sequence replay (``wmjax.replay.sequences``): observation,
   action, reward to the mover, the search's policy and value, whether the game ended.
3. ``updates_per_iteration`` updates, each on ``batch_size`` windows of ``unroll_steps +
   td_steps + 1`` moves: the K-step unrolled loss of MuZero (policy cross-entropy against the
   search policy, value against n-step targets bootstrapped from a target network, reward), with
   the gradient through each dynamics step scaled by 1/2 and the unrolled steps' losses by 1/K,
   AdamW with weight decay. Optionally (``reanalyse > 0``) the policy targets of that many
   windows per batch are recomputed by a fresh search with the latest network (MuZero
   Reanalyze).

Two-player zero-sum games use one sign convention end to end: values are to the player to move,
rewards to the player who moved, and one ply multiplies by ``-discount``. So the n-step target
of move t is ``u_t - d u_{t+1} + d^2 u_{t+2} ...`` with alternating signs, which for a board
game with ``td_steps`` at least its length is the game's outcome for the player to move.

A time limit (truncation) ends the n-step sum without a bootstrap (a documented approximation:
the state after the limit is not stored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wmjax.agents.base import Policy
from wmjax.envs.pgx import Game, GameState
from wmjax.models import muzero as mz
from wmjax.planners.mcts import (
  RecurrentFnOutput,
  RootFnOutput,
  SearchConfig,
  SearchOutput,
  make_search,
)
from wmjax.replay.sequences import (
  SequenceBuffer,
  add_chunk,
  init_sequence_buffer,
  sample_prioritized,
  sample_sequences,
  set_priority,
)
from wmjax.rl.returns import n_step_targets
from wmjax.types import Array, Key

__all__ = ["MuZeroConfig", "MuZeroHyper", "MuZeroState", "MuZero", "make_muzero",
           "make_muzero_search", "net_config", "search_config"]


@dataclasses.dataclass(frozen=True)
class MuZeroConfig:
  """Static settings (they fix shapes and programs, so they decide compilation)."""

  # Self-play and replay.
  num_envs: int = 64                  # games played in parallel (vmapped)
  steps_per_iteration: int = 8        # moves per game per iteration
  replay_capacity: int = 100_000      # moves kept (all games)
  batch_size: int = 128               # replayed windows per update
  updates_per_iteration: int = 4
  unroll_steps: int = 5               # K
  td_steps: int | None = None         # n; None: the game's move limit for two-player games
                                      # (Monte Carlo outcome), 10 for one-player tasks
  target_update_interval: int = 100   # updates between copies of the target network
  reanalyse: int = 0                  # windows per batch whose policy targets are re-searched
  priority_alpha: float = 0.0         # prioritized replay (MuZero's): windows drawn with
                                      # P ~ |value error of their first position|^alpha;
                                      # 0: uniform, new positions at the largest priority
  priority_beta: float = 1.0          # importance-weight exponent correcting that bias
  max_grad_norm: float = 5.0
  # Network (wmjax.models.muzero.MuZeroNetConfig fields).
  net: str = "mlp"                    # mlp | resnet
  latent: int = 64
  hidden: int = 128
  layers: int = 2
  channels: int = 32
  blocks: int = 2
  head_channels: int = 4
  value_support: int = 10
  reward_support: int = 5
  # Search (wmjax.planners.mcts.SearchConfig fields).
  search: str = "gumbel"              # gumbel | puct
  num_simulations: int = 32
  max_num_considered_actions: int = 16
  dirichlet_alpha: float = 0.3
  dirichlet_fraction: float = 0.25
  sample_moves: int = 0               # the first N moves of a self-play game are sampled from
                                      # the search policy (AlphaZero's temperature 1), after
                                      # that the search's own choice
  random_move_prob: float = 0.0      # chance that a self-play move is uniformly random (legal)
                                      # instead: exploration that reaches positions search
                                      # alone would not (value targets then describe the noisy
                                      # player, as AlphaZero's sampled openings do)
  # Evaluation (driver).
  eval_every: int = 10                # iterations between evaluations; 0: only at the end
  eval_games: int = 100               # games (or episodes) per evaluation
  eval_simulations: int | None = None # simulations per move when evaluating (None: as training)

  def __post_init__(self):
    for name in ("num_envs", "steps_per_iteration", "replay_capacity", "batch_size",
                 "unroll_steps", "target_update_interval", "num_simulations", "eval_games"):
      if getattr(self, name) < 1:
        raise ValueError(f"MuZeroConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.priority_alpha < 0 or not 0.0 <= self.priority_beta <= 1.0:
      raise ValueError(f"priority_alpha must be >= 0 and priority_beta in [0, 1], got "
                       f"{self.priority_alpha} and {self.priority_beta}")
    if min(self.updates_per_iteration, self.reanalyse, self.eval_every, self.sample_moves) < 0:
      raise ValueError("updates_per_iteration, reanalyse, eval_every and sample_moves must be "
                       ">= 0")
    if not 0.0 <= self.random_move_prob < 1.0:
      raise ValueError(f"random_move_prob must be in [0, 1), got {self.random_move_prob}")
    if self.td_steps is not None and self.td_steps < 1:
      raise ValueError(f"td_steps must be >= 1 (or None), got {self.td_steps}")
    if self.reanalyse > self.batch_size:
      raise ValueError(f"reanalyse ({self.reanalyse}) is more than batch_size "
                       f"({self.batch_size})")
    net_config(self)
    search_config(self)


class MuZeroHyper(NamedTuple):
  """Array hyperparameters: vmappable across a sweep."""

  learning_rate: Any = 1e-3
  discount: Any = 0.997               # gamma; two-player games use 1 (and a sign flip per ply)
  weight_decay: Any = 1e-4
  value_coef: Any = 0.25              # MuZero Reanalyze's value-loss weight
  reward_coef: Any = 1.0              # reward-loss weight (wins are rare transitions in games)


def net_config(config: MuZeroConfig) -> mz.MuZeroNetConfig:
  return mz.MuZeroNetConfig(
      kind=config.net, latent=config.latent, hidden=config.hidden, layers=config.layers,
      channels=config.channels, blocks=config.blocks, head_channels=config.head_channels,
      value_support=config.value_support, reward_support=config.reward_support)


def search_config(config: MuZeroConfig) -> SearchConfig:
  return SearchConfig(
      algorithm=config.search, num_simulations=config.num_simulations,
      max_num_considered_actions=config.max_num_considered_actions,
      dirichlet_alpha=config.dirichlet_alpha, dirichlet_fraction=config.dirichlet_fraction)


class MuZeroState(NamedTuple):
  params: Any
  target_params: Any
  opt_state: Any
  buffer: SequenceBuffer
  games: GameState            # [B] the running self-play games
  episode_return: Array       # [B] reward so far in each running game (to player 0)
  key: Key
  moves: Array                # int32 []: self-play moves made (all games)
  updates: Array              # int32 []


class MuZero(NamedTuple):
  init: Callable                # (key, hyper) -> MuZeroState
  train_iteration: Callable     # (state, hyper) -> (state, metrics)
  search: Callable              # (params, key, obs [B], legal [B, A], discount, explore)
  policy: Callable              # (params, hyper, key, GameState [B]) -> action [B] (no noise)
  loss: Callable                # (params, target_params, hyper, key, batch) -> (loss, metrics)
  net: mz.MuZeroFns
  game: Game
  window: int                   # moves per replayed window: K + n + 1
  td_steps: int
  # Acting in one game (wmjax.load): the observation is the GameState (observation and legal
  # moves of the player to move); the carry is ().
  acting: Policy


def _optimizer(hyper: MuZeroHyper, max_grad_norm: float):
  return optax.chain(optax.clip_by_global_norm(max_grad_norm),
                     optax.adamw(hyper.learning_rate, weight_decay=hyper.weight_decay))


def ply_discount(game: Game, discount: Array) -> Array:
  """The factor one move applies to the next player's value: -gamma in two-player games."""
  return -discount if game.two_player else discount


def make_muzero_search(net: mz.MuZeroFns, config: SearchConfig):
  """The MCTS of :func:`wmjax.planners.mcts.make_search` over MuZero's networks.

  The root is ``represent`` then ``predict``; an expansion is ``dynamics`` then ``predict``;
  value and reward supports become scalars (``support_to_scalar``). The model predicts no
  terminal states (discount 1); the search applies the ply discount.
  """
  vs = net.config.value_support
  rs = net.config.reward_support

  def root_fn(params, obs):
    latent = net.represent(params, obs)
    policy_logits, value_logits = net.predict(params, latent)
    return RootFnOutput(prior_logits=policy_logits, value=mz.support_to_scalar(value_logits, vs),
                        embedding=latent)

  def recurrent_fn(params, key, action, embedding):
    del key
    latent, reward_logits = net.dynamics(params, embedding, action)
    policy_logits, value_logits = net.predict(params, latent)
    out = RecurrentFnOutput(
        reward=mz.support_to_scalar(reward_logits, rs),
        discount=jnp.ones(action.shape, jnp.float32),
        prior_logits=policy_logits,
        value=mz.support_to_scalar(value_logits, vs))
    return out, latent

  return make_search(root_fn, recurrent_fn, config)


def make_muzero(game: Game, config: MuZeroConfig) -> MuZero:
  net = mz.make_muzero_net(net_config(config), game.obs_shape, game.num_actions)
  search = make_muzero_search(net, search_config(config))
  eval_search = make_muzero_search(net, dataclasses.replace(
      search_config(config), num_simulations=config.eval_simulations or config.num_simulations))
  num_envs, steps = config.num_envs, config.steps_per_iteration
  K = config.unroll_steps
  if config.td_steps is not None:
    n = config.td_steps
  else:
    n = game.max_steps if game.two_player else 10
  window = K + n + 1
  if config.replay_capacity // num_envs < window + steps:
    raise ValueError(
        f"replay_capacity {config.replay_capacity} keeps {config.replay_capacity // num_envs} "
        f"moves per game slot; windows need {window} (unroll_steps + td_steps + 1) plus one "
        f"iteration's {steps}: raise replay_capacity to at least "
        f"{(window + steps) * num_envs}")
  A = game.num_actions
  vs, rs = config.value_support, config.reward_support
  # uint8 replay only where it is lossless: training must see the inputs search saw.
  obs_dtype = jnp.uint8 if game.uint8_obs else jnp.float32
  prioritized = config.priority_alpha > 0

  def example_row():
    row = {"obs": jax.ShapeDtypeStruct(game.obs_shape, obs_dtype),
           "legal": jax.ShapeDtypeStruct((A,), jnp.bool_),
           "action": jax.ShapeDtypeStruct((), jnp.int32),
           "reward": jax.ShapeDtypeStruct((), jnp.float32),
           "policy": jax.ShapeDtypeStruct((A,), jnp.float32),
           "root_value": jax.ShapeDtypeStruct((), jnp.float32),
           "ended": jax.ShapeDtypeStruct((), jnp.bool_)}
    if prioritized:   # of the window starting at this move (absent: uniform replay)
      row["priority"] = jax.ShapeDtypeStruct((), jnp.float32)
    return row

  def init(key, hyper):
    k_params, k_games, k_state = jax.random.split(key, 3)
    params = net.init(k_params)
    games = jax.vmap(game.init)(jax.random.split(k_games, num_envs))
    return MuZeroState(
        params=params, target_params=params,
        opt_state=_optimizer(hyper, config.max_grad_norm).init(params),
        buffer=init_sequence_buffer(example_row(), num_envs, config.replay_capacity),
        games=games, episode_return=jnp.zeros((num_envs,), jnp.float32), key=k_state,
        moves=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32))

  def self_play_step(params, hyper, carry, key):
    games, ep_return = carry
    k_search, k_sample, k_explore, k_step, k_reset = jax.random.split(key, 5)
    out = search(params, k_search, games.observation, games.legal,
                 ply_discount(game, hyper.discount), True)
    action = out.action
    if config.sample_moves:
      sampled = jax.random.categorical(
          k_sample, jnp.log(jnp.where(games.legal, out.policy_target, 0.0))).astype(jnp.int32)
      action = jnp.where(games.steps < config.sample_moves, sampled, action)
    if config.random_move_prob > 0:
      k_rand, k_coin = jax.random.split(k_explore)
      uniform = jax.random.categorical(
          k_rand, jnp.where(games.legal, 0.0, -jnp.inf)).astype(jnp.int32)
      coin = jax.random.uniform(k_coin, (num_envs,)) < config.random_move_prob
      action = jnp.where(coin, uniform, action)
    nxt = jax.vmap(game.step)(games, action, jax.random.split(k_step, num_envs))
    ended = nxt.terminated | nxt.truncated
    # Return to player 0: the mover's reward, signed by who moved.
    signed = jnp.where(games.player == 0, nxt.reward, -nxt.reward)
    ep_return = ep_return + signed
    row = {"obs": games.observation.astype(obs_dtype), "legal": games.legal,
           "action": action, "reward": nxt.reward, "policy": out.policy_target,
           "root_value": out.root_value, "ended": ended}
    stats = {"return": jnp.where(ended, ep_return, 0.0), "length": jnp.where(ended, nxt.steps, 0),
             "ended": ended, "root_value": out.root_value, "prior_value": out.prior_value}
    fresh = jax.vmap(game.init)(jax.random.split(k_reset, num_envs))
    games = jax.tree.map(
        lambda f, x: jnp.where(ended.reshape(-1, *([1] * (x.ndim - 1))), f, x), fresh, nxt)
    return (games, jnp.where(ended, 0.0, ep_return)), (row, stats)

  def loss_fn(params, target_params, hyper, key, batch, weight=None):
    """``batch``: leaves ``[N, L, ...]`` (windows of ``L = K + n + 1`` moves); ``weight [N]``:
    importance weights of prioritized replay (None: all 1). The metrics carry
    ``priority [N]``, each window's new priority (its first position's value error)."""
    w = jnp.ones(batch["action"].shape[:1]) if weight is None else weight
    d = ply_discount(game, hyper.discount)
    obs = batch["obs"].astype(jnp.float32)
    # Bootstrap values of positions k + n from the target network.
    boot_obs = obs[:, n:n + K + 1]                                            # [N, K+1, ...]
    boot_latent = net.represent(target_params, boot_obs)
    _, boot_logits = net.predict(target_params, boot_latent)
    boot = jax.lax.stop_gradient(mz.support_to_scalar(boot_logits, vs))       # [N, K+1]
    value_t, valid = jax.vmap(n_step_targets, in_axes=(0, 0, 0, None, None, None))(
        batch["reward"], batch["ended"], boot, d, K, n)                      # [N, K+1]
    policy_t = batch["policy"][:, :K + 1]                                     # [N, K+1, A]
    if config.reanalyse:
      policy_t = _reanalyse(params, key, batch, obs, policy_t, d)
    reward_t = jnp.where(valid[:, :K], batch["reward"][:, :K], 0.0)          # [N, K]
    actions = batch["action"][:, :K]                                          # [N, K]

    latent = net.represent(params, obs[:, 0])

    def unroll(s, action):
      nxt, reward_logits = net.dynamics(params, s, action)
      return mz.scale_gradient(nxt, 0.5), (s, reward_logits)

    # States 0..K-1 come out of the scan, state K is its final carry.
    last, (before, reward_logits) = jax.lax.scan(unroll, latent, actions.T)
    all_latents = jnp.concatenate([before, last[None]], 0)                   # [K+1, N, ...]
    policy_logits, value_logits = net.predict(params, all_latents)           # [K+1, N, ...]
    policy_logits = jnp.swapaxes(policy_logits, 0, 1)                        # [N, K+1, A]
    value_logits = jnp.swapaxes(value_logits, 0, 1)
    reward_logits = jnp.swapaxes(reward_logits, 0, 1)                        # [N, K, 2S+1]

    step_weight = jnp.concatenate([jnp.ones((1,)), jnp.full((K,), 1.0 / K)])  # [K+1]
    policy_ce = -jnp.sum(policy_t * jax.nn.log_softmax(policy_logits), -1)   # [N, K+1]
    value_ce = -jnp.sum(mz.scalar_to_support(value_t, vs)
                        * jax.nn.log_softmax(value_logits), -1)
    reward_ce = -jnp.sum(mz.scalar_to_support(reward_t, rs)
                         * jax.nn.log_softmax(reward_logits), -1)             # [N, K]
    policy_loss = jnp.mean(w * jnp.sum(step_weight * valid * policy_ce, -1))
    value_loss = jnp.mean(w * jnp.sum(step_weight * value_ce, -1))
    reward_loss = jnp.mean(w * jnp.sum(step_weight[1:] * reward_ce, -1))
    loss = policy_loss + hyper.value_coef * value_loss + hyper.reward_coef * reward_loss
    value_pred = mz.support_to_scalar(value_logits, vs)
    metrics = {"loss/total": loss, "loss/policy": policy_loss, "loss/value": value_loss,
               "loss/reward": reward_loss,
               "train/value_error": jnp.mean(jnp.abs(value_pred[:, 0] - value_t[:, 0])),
               "train/value_target": jnp.mean(value_t[:, 0]),
               "priority": jax.lax.stop_gradient(jnp.abs(value_pred[:, 0] - value_t[:, 0]))}
    return loss, metrics

  def _reanalyse(params, key, batch, obs, policy_t, d):
    """Fresh search policies for the first ``reanalyse`` windows' positions 0..K."""
    R = config.reanalyse
    sub = obs[:R, :K + 1].reshape(R * (K + 1), *game.obs_shape)
    legal = batch["legal"][:R, :K + 1].reshape(R * (K + 1), A)
    out = search(jax.lax.stop_gradient(params), key, sub, legal, d, True)
    fresh = out.policy_target.reshape(R, K + 1, A)
    return policy_t.at[:R].set(jax.lax.stop_gradient(fresh))

  def update(state, hyper, key):
    k_sample, k_loss = jax.random.split(key)
    buffer = state.buffer
    if prioritized:
      sample = sample_prioritized(buffer, k_sample, config.batch_size, window,
                                  alpha=config.priority_alpha, beta=config.priority_beta)
      batch, weight = sample.batch, sample.weight
    else:
      batch, weight = sample_sequences(buffer, k_sample, config.batch_size, window), None
    grads, metrics = jax.grad(loss_fn, has_aux=True)(
        state.params, state.target_params, hyper, k_loss, batch, weight)
    priority = metrics.pop("priority")
    if prioritized:
      buffer = set_priority(buffer, sample.env, sample.start, priority + 1e-3)
      metrics["train/priority_weight_min"] = jnp.min(weight)
    updates, opt_state = _optimizer(hyper, config.max_grad_norm).update(
        grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    count = state.updates + 1
    copy = (count % config.target_update_interval) == 0
    target = jax.tree.map(lambda p, t: jnp.where(copy, p, t), params, state.target_params)
    metrics["train/grad_norm"] = optax.global_norm(grads)
    return state._replace(params=params, target_params=target, opt_state=opt_state,
                          buffer=buffer, updates=count), metrics

  def train_iteration(state, hyper):
    key, k_play, k_update = jax.random.split(state.key, 3)
    (games, ep_return), (rows, stats) = jax.lax.scan(
        lambda c, k: self_play_step(state.params, hyper, c, k),
        (state.games, state.episode_return), jax.random.split(k_play, steps))
    rows = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)               # [B, T, ...]
    if prioritized:   # new windows first get the largest priority, so each is seen soon
      top = jnp.maximum(jnp.max(state.buffer.data["priority"]), 1.0)
      rows["priority"] = jnp.full(rows["action"].shape, top, jnp.float32)
    buffer = add_chunk(state.buffer, rows)
    state = state._replace(games=games, episode_return=ep_return, buffer=buffer, key=key,
                           moves=state.moves + num_envs * steps)

    def do_updates(s):
      def body(s, k):
        return update(s, hyper, k)
      return jax.lax.scan(body, s, jax.random.split(k_update, config.updates_per_iteration))

    empty = jax.eval_shape(lambda s: do_updates(s)[1], state)
    if config.updates_per_iteration:
      ready = buffer.count >= window
      state, upd = jax.lax.cond(
          ready, do_updates,
          lambda s: (s, jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), empty)),
          state)
      upd = jax.tree.map(lambda x: jnp.mean(x), upd)
    else:
      upd = {}
    episodes = jnp.sum(stats["ended"])
    metrics = {
        "train/episodes": episodes,
        "train/episode_return": jnp.where(
            episodes > 0, jnp.sum(stats["return"]) / jnp.maximum(episodes, 1), jnp.nan),
        "train/episode_length": jnp.where(
            episodes > 0, jnp.sum(stats["length"]) / jnp.maximum(episodes, 1), jnp.nan),
        "search/root_value": jnp.mean(stats["root_value"]),
        "search/prior_value": jnp.mean(stats["prior_value"]),
        **upd,
    }
    return state, metrics

  def policy(params, hyper, key, games: GameState) -> Array:
    out: SearchOutput = eval_search(params, key, games.observation, games.legal,
                                    ply_discount(game, hyper.discount), False)
    return out.action

  def act_init(state, hyper, key):
    return ()

  def act_one(state, hyper, carry, games: GameState, key, deterministic: bool = True):
    """The search's move in one game (``deterministic``: no exploration noise, as evaluated;
    else self-play's)."""
    one = jax.tree.map(lambda x: x[None], games)
    out: SearchOutput = eval_search(state.params, key, one.observation, one.legal,
                                    ply_discount(game, hyper.discount), not deterministic)
    return carry, out.action[0]

  return MuZero(init=init, train_iteration=train_iteration, search=search, policy=policy,
                loss=loss_fn, net=net, game=game, window=window, td_steps=n,
                acting=Policy(act_init, act_one))
