"""The one contract between an agent and the training driver (:mod:`wmjax.train.loop`).

An agent is built for one env and one run length into a :class:`Program`: pure functions of
*one* run (the driver adds the run axis with ``jax.vmap`` and places it on devices). The driver
owns everything else: the run folder, resume, chunking, ``jit``, finiteness checks, metric
lines, evaluation cadence, checkpoints, the progress bar and the curve.

A run is a sequence of :class:`Phase` s, each a number of iterations of one pure function. Most
agents have one phase (``train``); a staged agent, such as World Models (V, then M, then C), has
one phase per stage. The driver scans ``per_chunk`` iterations of a phase inside one jitted call
and writes one metrics line per call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax.types import Array, Key, Metrics

__all__ = ["Phase", "Program", "Policy", "SharedPart", "require_vector_continuous", "raw_key"]

State = Any   # a pytree of arrays: the whole state of one run (replay buffers included)
Hyper = Any   # a NamedTuple of float arrays (vmappable hyperparameters)


class SharedPart(NamedTuple):
  """A phase that runs of one seed compute alike, whatever most of their hyperparameters.

  The contract: the phase's iteration writes only the part of a run's state that ``get``
  returns (``put`` writes it back), reads no Hyper field but ``hyper_fields``, and everything of
  the state it reads is the same at the phase's start for runs that share a seed (hence a key)
  and those fields' values. Then the driver computes the phase once per such group, on the
  group's first run, and copies the part to the others; their metrics are the first's.
  Example: MOPO's model phase fits the ensemble from the seed's key and ``model_lr``, whatever
  the penalty, so a sweep of K penalties fits K times fewer ensembles.
  """

  hyper_fields: tuple[str, ...]
  get: Callable[[State], Any]
  put: Callable[[State, Any], State]


class Phase(NamedTuple):
  """``iterations`` iterations of ``iteration``, ``per_chunk`` of them per jitted call."""

  name: str
  iteration: Callable[[State, Hyper], tuple[State, Metrics]]   # one iteration of one run
  iterations: int
  per_chunk: int = 1
  # How the per-iteration metrics of a chunk become one line: "mean" (NaN-aware; a metric that
  # counts, e.g. train/episodes, is summed) or "last" (the chunk's last iteration).
  reduce: str = "mean"
  evaluate: bool = True   # whether the driver evaluates during this phase
  shared: SharedPart | None = None   # computed once per group of alike runs (see SharedPart)


class Policy(NamedTuple):
  """Acting with one run's state in its env, one observation at a time (vmap for a batch).

  - ``init(state, hyper, key) -> carry``: what acting carries from step to step for one
    episode (a planner's warm start, a recurrent latent and the previous action, or ``()``).
  - ``act(state, hyper, carry, obs, key, deterministic) -> (carry, action)``: the action the
    env's ``step`` takes. ``deterministic`` (a Python bool) picks the policy's mode (or mean)
    rather than a sample; planners and searches use ``key`` either way.

  Both are pure and traceable; :func:`wmjax.rl.rollout.policy_returns` runs episodes with
  them, and an agent's ``evaluate`` is those returns on its evaluation keys, so a loaded policy
  (:func:`wmjax.load`) scores exactly what the run's evaluator reported.
  """

  init: Callable[[State, Hyper, Key], Any]
  act: Callable[..., tuple[Any, Array]]
  deterministic: bool = True   # how the agent's evaluator acts (its default when loaded)


@dataclasses.dataclass(frozen=True)
class Program:
  """What an agent gives the driver for one run on one env.

  - ``init(key, hyper) -> state``: a fresh run (random prefill and first fits included). An
    agent whose start must run as several programs gives ``init_runs(keys, hypers) -> states``
    over the run axis instead (the driver then does not vmap ``init``).
  - ``phases``: the run's schedule (see :class:`Phase`).
  - ``evaluate(state, key, hyper) -> {name: [episodes]}``: evaluation in the real env, one value
    per episode (or game); the driver logs each run's mean and the mean over runs. Names start
    with ``eval/``.
  - ``counters(state) -> {name: scalar}``: progress counters logged as integers (the mean over
    runs): ``env_steps`` always; ``agent_steps``, ``updates``... where they exist.
  - ``params(state)``: the parameters that must stay finite; a run whose parameters turn NaN
    or infinite is stopped (the last good checkpoint is kept). Metrics named ``nonfinite/...``
    count non-finite values an iteration met (e.g. NaN plan returns) and stop the run when
    above zero.
  - ``losses``: metric names that must be finite wherever an iteration logs them (a NaN loss
    stops the run, as NaN parameters do).
  - ``eval_every``: iterations between evaluations (0: only at the end of the run).
  - ``eval_count_field``: the ``Config`` field holding the episodes (or games) per evaluation,
    which ``wmjax eval --episodes`` replaces.
  - ``summed``: metric names summed over a chunk rather than averaged (counts).
  - ``policy``: acting in the env with a run's state (:class:`Policy`), for :func:`wmjax.load`.
  """

  init: Callable[[Key, Hyper], State] | None
  phases: tuple[Phase, ...]
  evaluate: Callable[[State, Key, Hyper], Metrics]
  counters: Callable[[State], Metrics]
  params: Callable[[State], Any]
  eval_every: int = 0
  init_runs: Callable[[Array, Hyper], State] | None = None
  summed: tuple[str, ...] = ("train/episodes",)
  losses: tuple[str, ...] = ()
  policy: Policy | None = None

  def __post_init__(self):
    if (self.init is None) == (self.init_runs is None):
      raise ValueError("a Program needs exactly one of init and init_runs")
    if not self.phases:
      raise ValueError("a Program needs at least one phase")
    for phase in self.phases:
      if phase.iterations < 0 or phase.per_chunk < 1:
        raise ValueError(f"phase {phase.name}: iterations must be >= 0 and per_chunk >= 1")
      if phase.reduce not in ("mean", "last"):
        raise ValueError(f"phase {phase.name}: reduce must be mean or last, got {phase.reduce}")

  def chunks(self) -> list[tuple[int, int]]:
    """The run's jitted calls in order: ``(phase index, iterations in that call)``."""
    out = []
    for index, phase in enumerate(self.phases):
      done = 0
      while done < phase.iterations:
        n = min(phase.per_chunk, phase.iterations - done)
        out.append((index, n))
        done += n
    return out


def require_vector_continuous(env, who: str) -> None:
  """Refuses an env with discrete actions or non-vector observations, for an agent (``who``:
  "MBPO's SAC learner", "TRPO's Gaussian policy") that takes neither, naming an agent that does."""
  spec = env.spec
  if spec.discrete:
    raise ValueError(f"{who} takes continuous actions; {env.name} has discrete actions (try "
                     "`wmjax train muzero`, `wmjax train pets` or `wmjax train dreamer`).")
  if len(spec.obs_shape) != 1:
    raise ValueError(f"{who} takes vector observations; {env.name} has observations of shape "
                     f"{spec.obs_shape} (try `wmjax train dreamer` for images).")


def raw_key(key: Key) -> Key:
  """``key`` as a raw ``uint32[2]`` key, which agents keep in their states and orbax checkpoints
  and brax's wrappers take; a typed key (``jax.random.key``) is unwrapped."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return key
