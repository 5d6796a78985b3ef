"""Offline datasets collected in wmjax's own envs, D4RL's way (Fu et al., 2020).

:func:`collect` runs a policy in ``num_envs`` copies of an env, vmapped inside one jitted
``lax.scan`` (in chunks, for memory and progress), and returns a
:class:`~wmjax.offline.dataset.Dataset` in episode order. :func:`collect_suite` makes D4RL's
dataset kinds from a training run folder (``wmjax train ...``):

================  ===========================================================================
kind              behaviour policy
================  ===========================================================================
``random``        uniform random actions (no run needed)
``medium``        the run's checkpoint whose evaluation return is closest to
                  ``random + medium_fraction * (expert - random)`` (D4RL: about a third of
                  the expert's return)
``medium-replay`` a *reconstruction* of the run's replay up to the medium checkpoint (below)
``expert``        the run's final checkpoint (or its best, or another run's: ``expert_run``)
``medium-expert`` ``medium`` and ``expert`` concatenated
================  ===========================================================================

Default sizes: :data:`DEFAULT_SIZE` (100k) transitions for ``random``, ``medium`` and
``expert``; ``medium-expert`` is both (200k); ``medium-replay`` is as many transitions as the
run made before the medium checkpoint (the replay at that point), whatever ``size`` says.

Policies act by sampling (``sample=True``, as D4RL's behaviour policies did); the reference
returns of the normalised score are measured over ``reference_episodes`` episodes each: the
uniform random policy's, and the expert acting by its mode (``deterministic``), and stored in
every dataset of the suite as ``meta["reference"] = {"random": R, "expert": E, "episodes": N}``.

medium-replay: brax's trainers (``wmjax train sac|ppo``) keep a parameter checkpoint per
evaluation but not their replay, so it is rebuilt: uniform random actions for the env steps
before the first checkpoint (SAC's warm-up; brax's SAC actually warms up with its untrained
policy), then each checkpoint's policy (sampling, as the trainer acts) for the env steps the
trainer made between that checkpoint and the next, up to the medium one. The envs run on from
one policy to the next, as the trainer's did. This is a reconstruction of the replay's
*distribution* (the policy between two checkpoints was improving; here it is the earlier
checkpoint's throughout), not the replay itself; ``meta["source"]`` says so. It needs a brax
run: wmjax's own agents keep only their last two checkpoints.

Every row's ``terminated`` is the env's ``info["terminated"]`` (a true terminal state);
``truncated`` marks the other episode ends (the time limit, ``info["truncated"]``) and each
env's last row, when it ended no episode. An env that finishes an episode is reset (as the
agents' env loops do), and so is the policy's carry.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.offline.dataset import FIELDS, Dataset, DatasetError, from_arrays
from wmjax.types import Array, Key, Spec

__all__ = ["DEFAULT_EPISODES", "DEFAULT_NUM_ENVS", "DEFAULT_SIZE", "SUITE_KINDS",
           "RandomPolicy", "collect", "collect_suite", "concatenate", "dataset_name",
           "pick_medium", "policy_returns"]

SUITE_KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")
DEFAULT_SIZE = 100_000
DEFAULT_NUM_ENVS = 64
DEFAULT_EPISODES = 20           # reference episodes per policy
_CHUNK_BYTES = 128 * 2 ** 20    # device memory for one chunk's transitions
_CHUNK_STEPS = 500              # at most this many steps per chunk (progress granularity)

Progress = Callable[[int, int], None]   # (transitions done, transitions in all)


@dataclasses.dataclass(frozen=True)
class RandomPolicy:
  """Uniform random actions: in ``[-1, 1]`` per dimension for a box, a uniform index for a
  discrete env. Acts like a :class:`~wmjax.loaded.LoadedAgent` (``init``, ``act``)."""

  spec: Spec = dataclasses.field(metadata={"static": True})

  def init(self, key: Key, batch: int | None = None):
    del key, batch
    return ()

  def act(self, carry, obs: Array, key: Key) -> tuple[Any, Array]:
    del obs
    if self.spec.discrete:
      return carry, jax.random.randint(key, (), 0, self.spec.num_actions)
    return carry, jax.random.uniform(key, self.spec.action_shape, minval=-1.0, maxval=1.0)


jax.tree_util.register_dataclass(RandomPolicy)


@dataclasses.dataclass(frozen=True)
class _Stateless:
  """A plain ``act(obs, key) -> action`` function, as a policy."""

  fn: Callable = dataclasses.field(metadata={"static": True})

  def init(self, key: Key, batch: int | None = None):
    del key, batch
    return ()

  def act(self, carry, obs, key):
    return carry, self.fn(obs, key)


@dataclasses.dataclass(frozen=True)
class _Opaque:
  """A policy object that is not a pytree of arrays: closed over (a constant of the program)."""

  policy: Any = dataclasses.field(metadata={"static": True})

  def init(self, key, batch=None):
    return self.policy.init(key, batch)

  def act(self, carry, obs, key):
    return self.policy.act(carry, obs, key)


@dataclasses.dataclass(frozen=True)
class _Schedule:
  """Several checkpoints of one run acting in turn (medium-replay): ``states`` are the
  checkpoints' states stacked on a leading axis; at a step with index ``i``, checkpoint ``i``
  acts, or the uniform random policy where ``i < 0``."""

  agent: Any      # a LoadedAgent whose functions act for every checkpoint (same network)
  states: Any     # [K, ...] per leaf
  random: RandomPolicy

  def at(self, index):
    return _Scheduled(self, index)


@dataclasses.dataclass(frozen=True)
class _Scheduled:
  schedule: _Schedule
  index: Array    # [] int

  def init(self, key, batch=None):
    return self.schedule.agent.init(key, batch)

  def act(self, carry, obs, key):
    k_agent, k_random = jax.random.split(key)
    s = self.schedule
    state = jax.tree.map(lambda x: x[jnp.maximum(self.index, 0)], s.states)
    carry, action = dataclasses.replace(s.agent, state=state).act(carry, obs, k_agent)
    _, random_action = s.random.act((), obs, k_random)
    return carry, jnp.where(self.index < 0, random_action, action)


for _cls in (_Stateless, _Opaque, _Schedule):
  jax.tree_util.register_dataclass(_cls)


def _as_policy(policy):
  """A policy the jitted rollout takes as an argument: an object with ``init(key, batch)`` and
  ``act(carry, obs, key)`` (a :class:`~wmjax.loaded.LoadedAgent`, :class:`RandomPolicy`) or a
  function ``act(obs, key) -> action``."""
  if not hasattr(policy, "act"):
    if not callable(policy):
      raise TypeError(f"policy must have init(key, batch) and act(carry, obs, key) (as "
                      f"wmjax.load gives) or be a function act(obs, key) -> action; got "
                      f"{type(policy).__name__}")
    return _Stateless(policy)
  leaves = jax.tree.leaves(policy)
  if all(isinstance(x, (jax.Array, np.ndarray, np.generic, float, int)) for x in leaves):
    return policy
  return _Opaque(policy)


def _check_env(env) -> None:
  for attr in ("reset", "step", "spec", "steps_per_episode"):
    if not hasattr(env, attr):
      raise TypeError(f"collect needs a registered env (wmjax.envs.make(name)), which has "
                      f"{attr!r}; got {type(env).__name__}")


def _where(done, new, old):
  """Per env: ``new`` where ``done`` [N], else ``old`` (leaves [N, ...])."""
  return jax.tree.map(
      lambda f, s: jnp.where(done.reshape(done.shape + (1,) * (s.ndim - 1)), f, s), new, old)


def _start(policy, key: Key, *, env, num_envs: int):
  k_env, k_policy = jax.random.split(key)
  policy = policy.at(jnp.zeros((), jnp.int32)) if isinstance(policy, _Schedule) else policy
  return (jax.vmap(env.reset)(jax.random.split(k_env, num_envs)),
          policy.init(k_policy, num_envs))


def _rollout(policy, carry, keys: Key, index: Array, *, env, num_envs: int):
  """``len(keys)`` steps of ``num_envs`` envs from ``carry = (env_state, policy_carry)``.

  Returns the carry after and the transitions ``{field: [T, N, ...]}``. ``index`` [T]: which
  checkpoint acts at each step, for a :class:`_Schedule` (ignored otherwise).
  """
  discrete = env.spec.discrete

  def body(c, x):
    env_state, policy_carry = c
    key_t, index_t = x
    k_act, k_reset, k_init = jax.random.split(key_t, 3)
    acting = policy.at(index_t) if isinstance(policy, _Schedule) else policy
    policy_carry, action = jax.vmap(acting.act)(policy_carry, env_state.obs,
                                                jax.random.split(k_act, num_envs))
    if discrete:
      action = jnp.asarray(action, jnp.int32)
    else:   # what the env takes: NormalizeActions clips too
      action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    next_state = jax.vmap(env.step)(env_state, action)
    done = next_state.done > 0
    terminated = done & (next_state.info["terminated"] > 0)
    row = {"obs": env_state.obs, "action": action, "reward": next_state.reward,
           "next_obs": next_state.obs, "terminated": terminated.astype(jnp.float32),
           "truncated": (done & ~terminated).astype(jnp.float32)}
    def restart(states):   # only at steps where an episode ended: a reset costs a step
      env_state, policy_carry = states
      fresh = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
      new = (_where(done, fresh, env_state),
             _where(done, acting.init(k_init, num_envs), policy_carry))
      return jax.tree.map(lambda x, like: jnp.asarray(x, like.dtype), new, states)

    return jax.lax.cond(done.any(), restart, lambda s: s, (next_state, policy_carry)), row

  return jax.lax.scan(body, carry, (keys, index))


_start_jit = jax.jit(_start, static_argnames=("env", "num_envs"))
_rollout_jit = jax.jit(_rollout, static_argnames=("env", "num_envs"))


def _layout(size: int, num_envs: int, steps_per_episode: int) -> tuple[int, int]:
  """``(envs, steps per env)`` for ``size`` transitions with at most ``num_envs`` envs: each env
  runs a whole number of time-limited episodes where it can (so that only the last env's last
  episode is cut), using as few envs as that allows."""
  per_env = -(-size // num_envs)
  if per_env >= steps_per_episode // 2:
    episodes = -(-size // (num_envs * steps_per_episode))
    per_env = episodes * steps_per_episode
  return -(-size // per_env), per_env


def _chunking(steps: int, num_envs: int, row_bytes: int) -> tuple[int, int]:
  """``(chunks, steps per chunk)``: equal chunks (one compilation) covering ``steps``."""
  most = max(1, min(_CHUNK_STEPS, _CHUNK_BYTES // max(1, num_envs * row_bytes)))
  chunks = -(-steps // most)
  return chunks, -(-steps // chunks)


def _row_bytes(env) -> int:
  spec = env.spec
  obs = 4 * math.prod(spec.obs_shape)
  return 2 * obs + 4 * max(1, math.prod(spec.action_shape)) + 12


def _run(env, policy, key: Key, steps: int, num_envs: int, index: np.ndarray | None = None,
         progress: Progress | None = None) -> dict[str, np.ndarray]:
  """``steps`` steps of ``num_envs`` envs: ``{field: [steps, num_envs, ...]}`` (numpy)."""
  chunks, length = _chunking(steps, num_envs, _row_bytes(env))
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  k_start, k_steps = jax.random.split(key)
  carry = _start_jit(policy, k_start, env=env, num_envs=num_envs)
  keys = jax.random.split(k_steps, chunks * length).reshape(chunks, length, -1)
  if index is None:
    index = np.zeros(chunks * length, np.int32)
  index = np.concatenate([index, np.full(chunks * length - len(index), index[-1], np.int32)])
  parts = []
  for c in range(chunks):
    carry, rows = _rollout_jit(policy, carry, keys[c], index[c * length:(c + 1) * length],
                               env=env, num_envs=num_envs)
    parts.append(jax.device_get(rows))
    if progress is not None:
      progress(min((c + 1) * length, steps) * num_envs, steps * num_envs)
  return {k: np.concatenate([p[k] for p in parts])[:steps] for k in FIELDS}


def _episode_order(rows: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """``{field: [T, N, ...]}`` to ``size`` rows with each env's stream contiguous; the last row
  of every stream ends an episode (``truncated`` unless it terminated)."""
  steps, envs = rows["reward"].shape[:2]
  flat = {k: np.swapaxes(v, 0, 1).reshape((steps * envs,) + v.shape[2:])[:size]
          for k, v in rows.items()}
  ends = np.minimum(np.arange(1, envs + 1) * steps, size) - 1
  ends = np.unique(ends)
  open_ = (flat["terminated"][ends] == 0) & (flat["truncated"][ends] == 0)
  flat["truncated"][ends[open_]] = 1.0
  return flat


def collect(env, policy, key: Key, size: int = DEFAULT_SIZE, *,
            num_envs: int = DEFAULT_NUM_ENVS, kind: str = "user", source: dict | None = None,
            reference: dict | None = None, progress: Progress | None = None) -> Dataset:
  """``size`` transitions of ``policy`` acting in ``env`` (a registered env), as a Dataset.

  Args:
    env: a registered env (``wmjax.envs.make(name, ...)``, or a loaded agent's ``env``).
    policy: ``init(key, batch) -> carries`` and ``act(carry, obs, key) -> (carry, action)``
      for one env (a :class:`~wmjax.loaded.LoadedAgent` from ``wmjax.load``, which acts
      sampled or by its mode as loaded; :class:`RandomPolicy`), or a function
      ``act(obs, key) -> action``. A policy that is a pytree of arrays (those two are) is an
      argument of the compiled program, so another checkpoint of the same run reuses it.
    key: a PRNG key.
    size: transitions to keep.
    num_envs: envs run in parallel, at most; as few are used as let each env run whole
      time-limited episodes, so that only the last env's last episode is cut (when a stream
      would be shorter than half an episode, ``num_envs`` streams are cut instead).
    kind, source, reference: the dataset's metadata (see :mod:`wmjax.offline.dataset`).
    progress: called with ``(transitions done, transitions in all)`` after each chunk.

  Rows are in episode order: each env's stream is contiguous, so are its episodes; a stream's
  last row is ``truncated`` unless it ended an episode. ``meta["collection"]`` holds the
  wall-clock (compilation included) and the envs used.
  """
  _check_env(env)
  if size < 1:
    raise ValueError(f"size must be >= 1 transitions, got {size}")
  if num_envs < 1:
    raise ValueError(f"num_envs must be >= 1, got {num_envs}")
  policy = _as_policy(policy)
  t0 = time.perf_counter()
  envs, steps = _layout(int(size), int(num_envs), env.steps_per_episode)
  rows = _run(env, policy, key, steps, envs, progress=progress)
  return _dataset(env, _episode_order(rows, int(size)), kind=kind, source=source,
                  reference=reference, wall_s=time.perf_counter() - t0, envs=envs)


def _dataset(env, arrays: dict, *, kind: str, source: dict | None, reference: dict | None,
             wall_s: float, envs: int) -> Dataset:
  data = from_arrays(**arrays, env=env.name, action_repeat=env.action_repeat,
                     episode_length=env.episode_length, kind=kind, source=source)
  data.meta["collection"] = {"wall_s": round(wall_s, 3), "num_envs": int(envs),
                             "transitions_per_s": round(data.size / max(wall_s, 1e-9), 1)}
  if reference is not None:
    data.meta["reference"] = dict(reference)
  return data


def concatenate(datasets: Sequence[Dataset], *, kind: str, source: dict | None = None,
                reference: dict | None = None) -> Dataset:
  """Datasets of one env, one after the other (their episodes stay whole)."""
  if not datasets:
    raise DatasetError("nothing to concatenate")
  first = datasets[0].meta
  for d in datasets[1:]:
    for field in ("env", "action_repeat", "episode_length"):
      if d.meta.get(field) != first.get(field):
        raise DatasetError(f"cannot concatenate datasets of different {field}: "
                           f"{first.get(field)} and {d.meta.get(field)}")
  arrays = {k: np.concatenate([getattr(d, k) for d in datasets]) for k in FIELDS}
  data = from_arrays(**arrays, env=first.get("env"), action_repeat=first.get("action_repeat", 1),
                     episode_length=first.get("episode_length"), kind=kind,
                     source=source or {"parts": [d.meta.get("source") for d in datasets]})
  walls = [d.meta.get("collection", {}).get("wall_s") for d in datasets]
  if all(w is not None for w in walls):
    data.meta["collection"] = {"wall_s": round(float(sum(walls)), 3),
                               "parts": [d.size for d in datasets]}
  ref = reference if reference is not None else first.get("reference")
  if ref is not None:
    data.meta["reference"] = dict(ref)
  return data


def _returns(policy, key, *, env, episodes):
  from wmjax.agents.base import Policy
  from wmjax.rl import rollout

  adapter = Policy(init=lambda p, h, k: p.init(k), act=lambda p, h, c, o, k, d: p.act(c, o, k))
  return rollout.policy_returns(env, adapter, policy, (), key, episodes)


_returns_jit = jax.jit(_returns, static_argnames=("env", "episodes"))


def policy_returns(env, policy, key: Key, episodes: int = DEFAULT_EPISODES) -> np.ndarray:
  """Returns ``[episodes]`` of whole episodes of ``policy`` (as :func:`collect` takes it, and
  acting as it does: a LoadedAgent sampled or by its mode as loaded) in ``env``, run in
  parallel; episode ``i`` on ``jax.random.split(key, episodes)[i]``, as the agents' evaluators
  run theirs (:func:`wmjax.rl.rollout.policy_returns`)."""
  _check_env(env)
  if episodes < 1:
    raise ValueError(f"episodes must be >= 1, got {episodes}")
  return np.asarray(_returns_jit(_as_policy(policy), key, env=env, episodes=int(episodes)))


def pick_medium(candidates: Sequence, target: float):
  """The candidate (anything with ``eval_return``, e.g. a :class:`~wmjax.loaded.Checkpoint`)
  whose evaluation return is closest to ``target``; the earlier one on a tie."""
  scored = [c for c in candidates if c.eval_return is not None]
  if not scored:
    raise ValueError("no checkpoint has an evaluation return to choose the medium policy by")
  return min(scored, key=lambda c: abs(c.eval_return - target))


def dataset_name(env_name: str, kind: str) -> str:
  """The folder name of a suite's dataset: ``brax-halfcheetah-medium``."""
  return f"{env_name.replace('/', '-')}-{kind}"


# --- the suite -----------------------------------------------------------------------------


def _log_default(message: str) -> None:
  del message


def collect_suite(env_name: str, kinds: Sequence[str] = SUITE_KINDS, *,
                  run: str | pathlib.Path | None = None,
                  expert_run: str | pathlib.Path | None = None, seed_index: int = 0,
                  size: int = DEFAULT_SIZE, num_envs: int = DEFAULT_NUM_ENVS,
                  reference_episodes: int = DEFAULT_EPISODES, action_repeat: int | None = None,
                  episode_length: int | None = None, seed: int = 0, sample: bool = True,
                  medium_fraction: float = 1.0 / 3.0, medium_checkpoint: int | None = None,
                  expert: str = "final", eval_episodes: int = 8,
                  log: Callable[[str], None] = _log_default,
                  progress: Callable[[str], Progress | None] | None = None,
                  on_dataset: Callable[[str, Dataset], None] | None = None
                  ) -> dict[str, Dataset]:
  """D4RL's datasets ``kinds`` (see the module docstring) of ``env_name``, from ``run``.

  Args:
    env_name: the registered env; a run of another env is refused.
    kinds: any of :data:`SUITE_KINDS`; all but ``random`` need ``run``.
    run: the run folder of the policies (medium, medium-replay and, without ``expert_run``,
      expert); its env settings (episode length, action repeat) are the datasets'.
    expert_run: another run folder for the expert (its final or best checkpoint).
    seed_index: which seed of the run(s) acts.
    size: transitions of ``random``, ``medium`` and ``expert`` each.
    num_envs: envs in parallel, at most (:func:`collect`).
    reference_episodes: episodes for each reference return (random; expert, by its mode).
    action_repeat, episode_length: the env's, for ``random`` without a run (with a run they
      must agree with it).
    seed: the PRNG seed; each kind draws from its own stream of it.
    sample: behaviour policies sample their actions (D4RL) rather than act by their mode.
    medium_fraction: the medium policy's target return, as a fraction of the way from the
      random to the expert reference return.
    medium_checkpoint: use this checkpoint as the medium policy instead of choosing one.
    expert: ``"final"`` (the last checkpoint) or ``"best"`` (highest logged evaluation return).
    eval_episodes: episodes per checkpoint to measure returns that ``metrics.jsonl`` does not
      hold (a brax run still training writes it at the end).
    log: receives one line per decision (chosen checkpoints, references).
    progress: ``progress(kind)`` gives the :func:`collect` progress callback for a kind.
    on_dataset: called with ``(kind, dataset)`` as each dataset is ready (e.g. to save it).

  Returns ``{kind: Dataset}`` in the order of ``kinds``.
  """
  from wmjax import envs
  from wmjax.loaded import checkpoints as list_checkpoints
  from wmjax.loaded import load
  from wmjax.train.loop import read_run_config

  kinds = list(dict.fromkeys(kinds))
  unknown = [k for k in kinds if k not in SUITE_KINDS]
  if unknown or not kinds:
    raise ValueError(f"unknown dataset kind {', '.join(map(repr, unknown)) or '(none)'}; "
                     f"accepted: {', '.join(SUITE_KINDS)} (or all)")
  if expert not in ("final", "best"):
    raise ValueError(f"expert must be 'final' or 'best', got {expert!r}")
  if not 0.0 <= medium_fraction <= 1.0:
    raise ValueError(f"medium_fraction must be in [0, 1], got {medium_fraction}")
  needs_run = [k for k in kinds if k != "random"]
  if needs_run and run is None:
    raise ValueError(f"kind {needs_run[0]} needs a run folder (--run) of {env_name} to take "
                     "its policies from; only random needs none")
  progress = progress or (lambda kind: None)
  key = jax.random.PRNGKey(seed)

  def stream(kind: str) -> Key:
    return jax.random.fold_in(key, SUITE_KINDS.index(kind))

  # The expert (also the env settings) and the runs' checks.
  expert_agent = None
  for name, path in (("run", run), ("expert run", expert_run)):
    if path is None:
      continue
    saved = read_run_config(path)
    if saved["env"] != env_name:
      raise ValueError(f"the {name} {path} was trained on {saved['env']}, not {env_name}; "
                       f"pass --env {saved['env']} or a run of {env_name}")
  if run is not None:
    expert_source = pathlib.Path(expert_run if expert_run is not None else run)
    ckpts = list_checkpoints(expert_source, seed=seed_index)
    if not ckpts:
      raise FileNotFoundError(f"{expert_source} holds no checkpoint yet")
    expert_ckpt = ckpts[-1]
    if expert == "best":
      scored = [c for c in ckpts if c.eval_return is not None]
      if not scored:
        raise ValueError(f"{expert_source}'s metrics.jsonl logs no evaluation return for its "
                         "checkpoints, so the best cannot be told; use expert='final'")
      expert_ckpt = max(scored, key=lambda c: c.eval_return)
    expert_agent = load(expert_source, seed=seed_index, deterministic=True,
                        checkpoint=expert_ckpt.step)
    env = expert_agent.env
    if not hasattr(env, "reset"):
      raise ValueError(f"{env_name} is a game (pgx), not an env: offline datasets need an env")
    log(f"expert: {expert_source} seed {seed_index}, checkpoint {expert_ckpt.step} "
        f"({expert} of {len(ckpts)}; logged return "
        f"{'-' if expert_ckpt.eval_return is None else f'{expert_ckpt.eval_return:.1f}'})")
    for what, given, have in (("action repeat", action_repeat, env.action_repeat),
                              ("episode length", episode_length, env.episode_length)):
      if given is not None and int(given) != int(have):
        raise ValueError(f"--{what.replace(' ', '-')} {given} differs from the run's {have}: "
                         "datasets are collected with the settings the policy was trained at")
    if expert_run is not None:
      medium_env = load(run, seed=seed_index).env if needs_run != ["expert"] else env
      if (medium_env.action_repeat, medium_env.episode_length) != (env.action_repeat,
                                                                    env.episode_length):
        raise ValueError(f"{run} and {expert_run} were trained at different env settings "
                         f"(action repeat, episode length): {medium_env.action_repeat}, "
                         f"{medium_env.episode_length} vs {env.action_repeat}, "
                         f"{env.episode_length}")
  else:
    env = envs.make(env_name, action_repeat=action_repeat, episode_length=episode_length)

  random_policy = RandomPolicy(env.spec)
  expert_source_meta = None
  reference: dict[str, Any] = {"episodes": int(reference_episodes)}
  t = time.perf_counter()
  reference["random"] = float(policy_returns(env, random_policy, jax.random.fold_in(key, 100),
                                             reference_episodes).mean())
  if expert_agent is not None:
    reference["expert"] = float(policy_returns(env, expert_agent, jax.random.fold_in(key, 101),
                                               reference_episodes).mean())
    expert_source_meta = {**_agent_source(expert_agent, sample),
                          "eval_return": expert_ckpt.eval_return, "checkpoint_choice": expert}
  log(f"reference returns over {reference_episodes} episodes: random {reference['random']:.1f}"
      + (f", expert {reference['expert']:.1f}" if "expert" in reference else "")
      + f" ({time.perf_counter() - t:.1f} s)")

  out: dict[str, Dataset] = {}

  def done(kind: str, data: Dataset) -> Dataset:
    out[kind] = data
    if on_dataset is not None:
      on_dataset(kind, data)
    return data

  def behaviour(agent):
    return agent.with_deterministic(not sample)

  medium = None   # (checkpoint, agent, meta)
  if any(k in kinds for k in ("medium", "medium-replay", "medium-expert")):
    medium = _choose_medium(run, seed_index, env, expert_agent, reference, medium_fraction,
                            medium_checkpoint, eval_episodes, key, log)

  cache: dict[str, Dataset] = {}

  def single(kind: str) -> Dataset:
    """random, medium or expert, collected once."""
    if kind not in cache:
      if kind == "random":
        policy, source = random_policy, {"policy": "uniform random", "sampled": True}
      elif kind == "medium":
        policy, source = behaviour(medium[1]), medium[2]
      else:
        policy, source = behaviour(expert_agent), expert_source_meta
      cache[kind] = collect(env, policy, stream(kind), size, num_envs=num_envs, kind=kind,
                            source=source, reference=reference, progress=progress(kind))
    return cache[kind]

  for kind in kinds:
    if kind == "medium-expert":
      parts = [single("medium"), single("expert")]
      data = concatenate(parts, kind=kind, reference=reference,
                         source={"parts": [d.meta["source"] for d in parts],
                                 "note": "medium then expert, concatenated (D4RL)"})
    elif kind == "medium-replay":
      data = _medium_replay(run, seed_index, env, medium, stream(kind), num_envs, reference,
                            log, progress(kind))
    else:
      data = single(kind)
    done(kind, data)
  return out


def _agent_source(agent, sample: bool) -> dict:
  return {"run": agent.path, "algo": agent.algo, "seed_index": agent.seed_index,
          "checkpoint": agent.step, "sampled": bool(sample)}


def _same_program(template, agent):
  """``agent`` (another checkpoint of ``template``'s run) acting through ``template``'s
  functions, so that the compiled rollout of one serves the other."""
  if template is None or template.path != agent.path or template.algo != agent.algo:
    return agent
  return dataclasses.replace(template, state=agent.state, hyper=agent.hyper,
                             deterministic=agent.deterministic, step=agent.step)


def _choose_medium(run, seed_index, env, expert_agent, reference, fraction, forced,
                   eval_episodes, key, log):
  """``(checkpoint, agent, source meta)`` of the medium policy."""
  from wmjax.loaded import checkpoints as list_checkpoints
  from wmjax.loaded import load

  ckpts = list_checkpoints(run, seed=seed_index)
  target = reference["random"] + fraction * (reference["expert"] - reference["random"])
  measured = False
  if forced is not None:
    chosen = [c for c in ckpts if c.step == int(forced)]
    if not chosen:
      raise ValueError(f"checkpoint {forced} is not in {run}: it has "
                       f"{', '.join(str(c.step) for c in ckpts)}")
    chosen = chosen[0]
  else:
    missing = [c for c in ckpts if c.eval_return is None]
    if missing:
      log(f"{run}: {len(missing)} of {len(ckpts)} checkpoints have no logged evaluation "
          f"return; measuring them ({eval_episodes} episodes each, acting by the mode)")
      measured = True
      filled = {}
      template = expert_agent
      for i, c in enumerate(missing):
        agent = _same_program(template, load(run, seed=seed_index, deterministic=True,
                                             checkpoint=c.step))
        returns = policy_returns(env, agent, jax.random.fold_in(key, 200 + i), eval_episodes)
        filled[c.step] = float(returns.mean())
      ckpts = [c._replace(eval_return=filled.get(c.step, c.eval_return)) for c in ckpts]
    chosen = pick_medium(ckpts, target)
  agent = _same_program(expert_agent, load(run, seed=seed_index, checkpoint=chosen.step))
  log(f"medium: {run} seed {seed_index}, checkpoint {chosen.step} (return "
      f"{'-' if chosen.eval_return is None else f'{chosen.eval_return:.1f}'}; target "
      f"{target:.1f} = random + {fraction:.2f} (expert - random))")
  span = abs(reference["expert"] - reference["random"])
  if chosen.eval_return is not None and span > 0 and abs(
      chosen.eval_return - target) > 0.25 * span:
    log(f"note: no checkpoint of {run} is near the target; the closest is "
        f"{chosen.eval_return:.1f} (a run keeping more checkpoints, e.g. brax's SAC or PPO with "
        "a smaller eval_every, gives a closer medium policy)")
  meta = {**_agent_source(agent, True), "env_steps": chosen.env_steps,
          "eval_return": chosen.eval_return,
          "eval_return_from": "measured" if measured and forced is None else "metrics.jsonl",
          "target_return": target, "medium_fraction": fraction,
          "selection": "forced" if forced is not None else "closest evaluation return to target",
          "candidates": {str(c.step): c.eval_return for c in ckpts}}
  return chosen, agent, meta


def _medium_replay(run, seed_index, env, medium, key, num_envs, reference, log, progress):
  """The reconstructed replay of ``run`` up to the medium checkpoint (module docstring)."""
  from wmjax.loaded import checkpoints as list_checkpoints
  from wmjax.loaded import load
  from wmjax.train.loop import read_run_config

  saved = read_run_config(run)
  if saved["algo"] not in ("sac", "ppo"):
    raise ValueError(f"medium-replay rebuilds the replay from a checkpoint per evaluation, which "
                     f"brax's trainers keep (wmjax train sac|ppo); {run} is a {saved['algo']} "
                     "run, which keeps its last two checkpoints only")
  chosen, medium_agent, medium_meta = medium
  ckpts = [c for c in list_checkpoints(run, seed=seed_index) if c.step <= chosen.step]
  repeat = int(env.action_repeat)
  # Segment i runs the env steps [bounds[i], bounds[i + 1]): 0 the warm-up, i the checkpoint
  # ckpts[i - 1].
  bounds = np.array([0] + [c.step for c in ckpts])
  transitions = [int(n) for n in np.diff(bounds) // repeat]
  total = int(sum(transitions))
  cap = (saved.get("config") or {}).get("max_replay_size")
  if total < 1:
    raise ValueError(f"{run} made no env steps before checkpoint {chosen.step}")
  t0 = time.perf_counter()
  envs, steps = _layout(total, num_envs, env.steps_per_episode)
  # Step t of every env belongs to the segment holding transition t * envs.
  starts = np.cumsum([0] + transitions[:-1])
  index = np.searchsorted(starts, np.arange(steps) * envs, side="right").astype(np.int32) - 2
  # index -1: the random warm-up (segment 0); i >= 0: checkpoint ckpts[i] (segment i + 1).
  agents = [_same_program(medium_agent, load(run, seed=seed_index, deterministic=False,
                                             checkpoint=c.step)) for c in ckpts[:-1]]
  if agents:
    template = agents[0]
    policy = _Schedule(template, jax.tree.map(lambda *x: jnp.stack(x),
                                              *[a.state for a in agents]),
                       RandomPolicy(env.spec))
  else:
    policy, index = RandomPolicy(env.spec), None
  log(f"medium-replay: {total} transitions, {len(ckpts)} segments (random warm-up, then "
      f"checkpoints {', '.join(str(c.step) for c in ckpts[:-1]) or 'none'}), {envs} envs")
  rows = _episode_order(_run(env, policy, key, steps, envs, index=index, progress=progress),
                        total)
  if cap and total > int(cap):   # the trainer's buffer held its newest rows only
    rows = {k: v[-int(cap):] for k, v in rows.items()}
  source = {"run": str(run), "algo": saved["algo"], "seed_index": seed_index,
            "checkpoint": chosen.step, "up_to_env_steps": chosen.step, "sampled": True,
            "reconstruction": True,
            "note": "a reconstruction of the replay's distribution, not the replay itself: "
                    "uniform random actions before the first checkpoint, then each "
                    "checkpoint's sampled policy for the env steps the trainer made until the "
                    "next one, up to the medium checkpoint",
            "segments": [{"policy": "uniform random" if i == 0 else ckpts[i - 1].step,
                          "transitions": n} for i, n in enumerate(transitions)],
            "medium_eval_return": medium_meta["eval_return"]}
  return _dataset(env, rows, kind="medium-replay", source=source, reference=reference,
                  wall_s=time.perf_counter() - t0, envs=envs)
