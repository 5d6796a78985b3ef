"""A terminal-state classifier, ``P(terminated | next_obs)``, for model rollouts that must end
where the real env would: PETS' ``learn_termination`` and the offline agents (MOPO, MOReL) on
tasks with terminal states (hopper, walker). The learned counterpart of the known termination
functions mbrl-lib and MBPO plan with (``mbrl.env.termination_fns``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wmjax.nets.mlp import MLP
from wmjax.types import Array, Key, Transition

__all__ = ["TerminationState", "Termination", "make_termination"]


class TerminationState(NamedTuple):
  """The terminal-state classifier (``learn_termination``)."""

  params: Any
  opt_state: Any
  obs_mean: Array       # [O] input normalisation, from the data of the last fit
  obs_std: Array        # [O]


class Termination(NamedTuple):
  init: Any    # key -> TerminationState
  fit: Any     # (state, key, data [C], size) -> (state, metrics)
  logit: Any   # (state, next_obs [..., O]) -> logit of P(terminated) [...]


def make_termination(obs_size: int, hidden_sizes: tuple[int, ...] = (64, 64),
                     activation: str = "silu", batch_size: int = 256,
                     train_steps: int = 200) -> Termination:
  """A classifier of next observations, ``P(terminated | next_obs)``: an MLP fit by binary
  cross-entropy for ``train_steps`` steps per ``fit``, on batches drawn half from the
  terminal steps and half from the others (all from the others while there is no terminal
  step). Balanced so that the few terminal steps are not drowned out; ``P > 1/2`` then errs
  towards calling a state near the boundary terminal, the safe side for planning."""
  module = MLP(tuple(hidden_sizes), 1, activation)
  tx = optax.adam(1e-3)
  half = max(1, batch_size // 2)

  def init(key: Key) -> TerminationState:
    params = module.init(key, jnp.zeros((1, obs_size)))
    return TerminationState(params, tx.init(params), jnp.zeros(obs_size), jnp.ones(obs_size))

  def apply(params, obs_mean, obs_std, next_obs):
    return module.apply(params, (next_obs - obs_mean) / obs_std)[..., 0]

  def logit(state: TerminationState, next_obs: Array) -> Array:
    return apply(state.params, state.obs_mean, state.obs_std, next_obs)

  def fit(state: TerminationState, key: Key, data: Transition, size: Array):
    capacity = data.reward.shape[0]
    x, y = data.next_obs, data.terminated                         # [C, O], [C]
    valid = jnp.arange(capacity) < size
    count = jnp.maximum(size, 1).astype(jnp.float32)
    mean = jnp.sum(jnp.where(valid[:, None], x, 0.0), axis=0) / count
    var = jnp.sum(jnp.where(valid[:, None], jnp.square(x - mean), 0.0), axis=0) / count
    std = jnp.where(var < 1e-12, 1.0, jnp.sqrt(var))
    terminal = valid & (y > 0.5)
    other = valid & (y <= 0.5)
    pools = [jnp.where(jnp.any(pool), pool, valid).astype(jnp.float32)
             for pool in (terminal, other)]
    probs = [pool / jnp.maximum(jnp.sum(pool), 1.0) for pool in pools]   # [C] each

    def loss_fn(params, rows):
      return jnp.mean(optax.sigmoid_binary_cross_entropy(apply(params, mean, std, x[rows]),
                                                         y[rows]))

    def train_step(carry, k):
      params, opt_state = carry
      key_terminal, key_other = jax.random.split(k)
      rows = jnp.concatenate([jax.random.choice(key_terminal, capacity, (half,), p=probs[0]),
                              jax.random.choice(key_other, capacity, (half,), p=probs[1])])
      loss, grads = jax.value_and_grad(loss_fn)(params, rows)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        train_step, (state.params, state.opt_state),
        jax.random.split(key, train_steps))
    called = apply(params, mean, std, x) > 0                      # [C]
    rate = lambda mask: jnp.sum(called & mask) / jnp.maximum(jnp.sum(mask), 1)  # noqa: E731
    last = max(1, train_steps // 10)
    metrics = {"termination/loss": jnp.mean(losses[-last:]),
               "termination/recall": rate(terminal),           # terminal steps called terminal
               "termination/false_alarms": rate(other)}        # other steps called terminal
    return TerminationState(params, opt_state, mean, std), metrics

  return Termination(init=init, fit=fit, logit=logit)
