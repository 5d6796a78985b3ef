"""Load a run and act from Python: :func:`load` gives a :class:`LoadedAgent` for one run of a run
folder (one seed of a multi-seed run, one point of a sweep), with the env it was trained on.

    agent = wmjax.load("runs/pets")
    carry = agent.init(key)                          # per-episode carry (planner, RSSM, ...)
    carry, action = agent.act(carry, obs, key)       # one observation; jax.vmap for a batch

``init`` and ``act`` are pure and jittable. A :class:`LoadedAgent` is a pytree (its run's
state and hyperparameters are its leaves), so it can be passed into ``jax.jit`` as an argument
rather than baked into the program as constants. Acting follows the run's evaluator exactly:
:meth:`LoadedAgent.episode_returns` on a key gives the returns that the agent's evaluation
reports for that key (see :mod:`wmjax.rl.rollout` for how a key is used).

The state is restored onto the devices of the loading process (a run trained on a GPU acts on
a CPU). The whole checkpoint is read (replay buffers included), then only the chosen run kept.

``load(run_dir, checkpoint=STEP)`` loads an earlier checkpoint than the last; :func:`checkpoints`
lists a run's checkpoints with their env steps and evaluation returns (brax's SAC and PPO keep
one per evaluation, named by env steps; wmjax's own agents keep the last two, named by chunk).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wmjax.agents.base import Policy
from wmjax.rl.rollout import Trajectories, policy_returns, policy_trajectories
from wmjax.types import Array, Key

__all__ = ["Checkpoint", "LoadedAgent", "checkpoints", "load"]


@dataclasses.dataclass(frozen=True)
class LoadedAgent:
  """One run of a run folder, ready to act. ``state`` and ``hyper`` are this run's (no run
  axis). ``env`` is the env it was trained on (for MuZero, the :class:`~wmjax.envs.pgx.Game`:
  its ``act`` takes the game state, which holds the observation and the legal moves)."""

  state: Any
  hyper: Any
  policy: Policy = dataclasses.field(metadata={"static": True})
  env: Any = dataclasses.field(metadata={"static": True})
  algo: str = dataclasses.field(metadata={"static": True})
  env_name: str = dataclasses.field(metadata={"static": True})
  run: int = dataclasses.field(metadata={"static": True})
  runs: int = dataclasses.field(metadata={"static": True})
  seed_index: int = dataclasses.field(metadata={"static": True})
  point: tuple = dataclasses.field(metadata={"static": True})   # ((field, value), ...)
  step: int = dataclasses.field(metadata={"static": True})   # the checkpoint's chunk count
  deterministic: bool = dataclasses.field(metadata={"static": True})
  config: Any = dataclasses.field(metadata={"static": True})
  path: str = dataclasses.field(metadata={"static": True})

  def init(self, key: Key, batch: int | None = None):
    """The carry at the start of an episode; ``batch``: carries for that many envs (stacked on
    a leading axis, for ``jax.vmap(agent.act)``)."""
    if batch is None:
      return self.policy.init(self.state, self.hyper, key)
    return jax.vmap(lambda k: self.policy.init(self.state, self.hyper, k))(
        jax.random.split(key, batch))

  def act(self, carry, obs, key: Key) -> tuple[Any, Array]:
    """``(carry, action)`` for one observation: the action the env's ``step`` takes."""
    return self.policy.act(self.state, self.hyper, carry, obs, key, self.deterministic)

  def episode_returns(self, key: Key, episodes: int) -> Array:
    """Returns ``[episodes]`` of full episodes in the env, in parallel: what the run's own
    evaluator reports for ``key`` (for agents evaluated by episode return)."""
    self._check_env()
    return policy_returns(self.env, self.policy, self.state, self.hyper, key, episodes,
                          self.deterministic)

  def trajectories(self, key: Key, episodes: int) -> Trajectories:
    """The episodes of :meth:`episode_returns` for ``key``, every step recorded: what the policy
    saw, did and earned (:class:`~wmjax.rl.rollout.Trajectories`, axes ``[episodes, T]``)."""
    self._check_env()
    return policy_trajectories(self.env, self.policy, self.state, self.hyper, key, episodes,
                               self.deterministic)

  def _check_env(self) -> None:
    if not hasattr(self.env, "reset"):   # a pgx Game (MuZero): init/step take keys
      raise TypeError(f"{self.env_name} is a game, not an env: run its episodes with "
                      "wmjax.agents.arena.play_episodes or play_match")

  def with_deterministic(self, deterministic: bool) -> LoadedAgent:
    """The same run, acting by the policy's mode (True) or by sampling (False)."""
    return dataclasses.replace(self, deterministic=bool(deterministic))

  def __repr__(self) -> str:
    which = f"seed {self.seed_index}" + (f", {dict(self.point)}" if self.point else "")
    return (f"LoadedAgent({self.algo} on {self.env_name}, run {self.run} of {self.runs} "
            f"({which}), checkpoint {self.step}, deterministic={self.deterministic}, "
            f"from {self.path})")


jax.tree_util.register_dataclass(LoadedAgent)


def load(run_dir: str | pathlib.Path, *, run: int = 0, seed: int | None = None,
         deterministic: bool | None = None, checkpoint: int | None = None,
         sets: Sequence[str] = ()) -> LoadedAgent:
  """Loads the last checkpoint (or ``checkpoint``) of one run of the run folder ``run_dir``.

  Runs of every agent load, brax's SAC and PPO (``wmjax train sac|ppo``) included (their
  ``step`` is brax's env-step count of the checkpoint).

  ``run``: the index on the folder's run axis (seeds, or hyperparameter points x seeds for a
  sweep; ``config.json`` lists them), or ``seed``: the seed index (0 .. seeds - 1) of a run
  with one hyperparameter point. ``deterministic``: act by the policy's mode (or mean) rather
  than by sampling; default: as the agent's evaluator acts (sampled for Dreamer with discrete
  actions and for World Models' V, the mode otherwise). ``checkpoint``: the step of the
  checkpoint to load (see :func:`checkpoints`): env steps, the name of a brax run's
  ``checkpoints/seed_<i>/<step>`` folder; for wmjax's agents the chunk count, of which the last
  two are kept. Default: the last. ``sets``: ``key=value`` settings to act with instead of the
  run's, as ``wmjax eval --set`` (e.g. ``["horizon=36"]``: a longer planner on the trained
  model); one that changes the checkpoint's arrays (an ensemble's size) is refused.
  """
  from wmjax.train.algos import get_algo
  from wmjax.train.loop import acting_settings, load_run, read_run_config

  run_dir = pathlib.Path(run_dir)
  saved = read_run_config(run_dir)
  axis, run = _run_index(run_dir, saved, run, seed)
  if saved["algo"] in ("sac", "ppo"):
    if sets:
      raise ValueError(f"sets= is for wmjax's own agents; {run_dir} is a brax "
                       f"{saved['algo']} run, which acts with its trained network as it is")
    return _load_brax(run_dir, saved, run, deterministic, checkpoint)
  sets = [sets] if isinstance(sets, str) else list(sets)
  replace, hyper_updates = acting_settings(get_algo(saved["algo"]), saved, sets)
  algo, built, state, saved, step = load_run(
      run_dir, replace=replace or None, step=None if checkpoint is None else int(checkpoint))
  program = built.program
  if program.policy is None:
    raise NotImplementedError(f"the {algo.name} agent has no policy to act with")
  hypers = axis.hypers(built.hyper)
  hypers = hypers._replace(**{k: jnp.full_like(getattr(hypers, k), v)
                              for k, v in hyper_updates.items()})
  one = jax.tree.map(lambda x: x[run], (state, hypers))
  del state
  point_index, seed_index = axis.runs[run]
  policy = program.policy
  return LoadedAgent(
      state=one[0], hyper=one[1], policy=policy, env=built.env, algo=algo.name,
      env_name=saved["env"], run=run, runs=axis.size, seed_index=int(seed_index),
      point=tuple(sorted(axis.points[point_index].items())), step=int(step),
      deterministic=policy.deterministic if deterministic is None else bool(deterministic),
      config=built.config, path=str(run_dir))


def _run_index(run_dir: pathlib.Path, saved: dict, run: int, seed: int | None):
  """``(axis, run)``: the run axis of a run folder and the index that ``run`` / ``seed`` name."""
  from wmjax.train.common import RunAxis

  axis = RunAxis.from_saved(saved)
  if seed is not None:
    if len(axis.points) != 1:
      raise ValueError(f"{run_dir} is a sweep over {len(axis.points)} hyperparameter points; "
                       f"choose one of its {axis.size} runs with run=")
    if not 0 <= seed < axis.seeds:
      raise ValueError(f"seed {seed} is not in {run_dir}: it has seeds 0..{axis.seeds - 1}")
    run = seed
  if not 0 <= run < axis.size:
    raise ValueError(f"run {run} is not in {run_dir}: it has {axis.size} run(s), 0.."
                     f"{axis.size - 1}")
  return axis, run


class Checkpoint(NamedTuple):
  """One checkpoint of a run (:func:`checkpoints`)."""

  step: int                   # what load(checkpoint=) takes: env steps (brax), chunk (wmjax)
  env_steps: int | None       # env steps trained when it was saved (None: not in the metrics)
  eval_return: float | None   # this run's evaluation return then (metrics.jsonl), if logged
  path: str                   # its folder


def checkpoints(run_dir: str | pathlib.Path, *, run: int = 0,
                seed: int | None = None) -> list[Checkpoint]:
  """The checkpoints of one run of ``run_dir`` (``run`` / ``seed`` as :func:`load`), oldest
  first, with the env steps and the evaluation return that ``metrics.jsonl`` logged for each.

  A brax run (``wmjax train sac|ppo``) keeps one checkpoint per evaluation, named by env steps;
  its ``metrics.jsonl`` is written when training ends, so a run still training has no returns
  here yet. wmjax's own agents keep the last two checkpoints, named by chunk (the metrics'
  ``iteration``); their evaluation return is there for chunks that evaluated.
  """
  from wmjax.train.loop import read_run_config

  run_dir = pathlib.Path(run_dir)
  saved = read_run_config(run_dir)
  _, run = _run_index(run_dir, saved, run, seed)
  records = _read_records(run_dir / "metrics.jsonl")
  brax = saved["algo"] in ("sac", "ppo")
  key = "env_steps" if brax else "iteration"
  by_step = {int(r[key]): r for r in records if key in r}
  folder = run_dir / "checkpoints" / (f"seed_{run}" if brax else "")
  folders = {int(p.name): p for p in folder.iterdir()
             if p.is_dir() and p.name.isdigit()} if folder.is_dir() else {}
  out = []
  for step in sorted(folders):
    record = by_step.get(step, {})
    value = record.get("eval/episode_return")
    if isinstance(value, list):
      value = value[run] if run < len(value) else None
    value = None if value is None or not math.isfinite(float(value)) else float(value)
    env_steps = step if brax else record.get("env_steps")
    out.append(Checkpoint(step=step, env_steps=None if env_steps is None else int(env_steps),
                          eval_return=value, path=str(folders[step])))
  return out


def _read_records(path: pathlib.Path) -> list[dict]:
  """The lines of a ``metrics.jsonl`` (none if it is missing; a last line cut short is
  dropped)."""
  if not path.exists():
    return []
  records = []
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  for i, line in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        break
      raise
  return records


def _load_brax(run_dir: pathlib.Path, saved: dict, seed_index: int,
               deterministic: bool | None, checkpoint: int | None = None) -> LoadedAgent:
  """A run of brax's SAC or PPO trainer (``wmjax train sac|ppo``): the last parameter checkpoint
  (or the one of ``checkpoint`` env steps) of one seed (``checkpoints/seed_<i>/<step>``), acting
  through brax's own inference function, in a wmjax env with the run's episode length and
  action repeat."""
  import importlib

  from brax.training import checkpoint as brax_checkpoint

  from wmjax.train.brax_runner import _jax_compat

  _jax_compat()
  algo = saved["algo"]
  # orbax (under brax's loader) refuses relative checkpoint paths.
  folder = run_dir.absolute() / "checkpoints" / f"seed_{seed_index}"
  steps = sorted(p for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
  if not steps:
    raise FileNotFoundError(f"{folder} holds no checkpoint of brax's {algo.upper()} trainer")
  if checkpoint is not None:
    chosen = [p for p in steps if int(p.name) == int(checkpoint)]
    if not chosen:
      raise ValueError(f"checkpoint {checkpoint} is not in {folder}: it has "
                       f"{', '.join(str(int(p.name)) for p in steps)} (env steps)")
    steps = chosen
  checkpoint = importlib.import_module(f"brax.training.agents.{algo}.checkpoint")
  networks = importlib.import_module(f"brax.training.agents.{algo}.networks")
  factory = getattr(networks, f"make_{algo}_networks")
  network = brax_checkpoint.get_network(_brax_network_config(steps[-1], algo), factory)
  params = jax.device_put(checkpoint.load(steps[-1]))
  make_policy = networks.make_inference_fn(network)

  def init(state, hyper, key):
    return ()

  def act(state, hyper, carry, obs, key, deterministic: bool = True):
    action, _ = make_policy(state, deterministic=deterministic)(obs, key)
    return carry, action

  config = saved["config"]
  env = _brax_env(saved["env"], int(config["episode_length"]), int(config["action_repeat"]))
  return LoadedAgent(
      state=params, hyper=(), policy=Policy(init, act), env=env, algo=algo,
      env_name=saved["env"], run=seed_index, runs=int(saved["seeds"]), seed_index=seed_index,
      point=(), step=int(steps[-1].name),
      deterministic=True if deterministic is None else bool(deterministic), config=None,
      path=str(run_dir))


@functools.lru_cache(maxsize=8)
def _brax_env(name: str, episode_length: int, action_repeat: int):
  """The env of a brax run, built once per process: loading several checkpoints of a run
  (``wmjax dataset collect``'s medium-replay) then costs no env build each (seconds for an MJX
  env), and their agents share one env, so a program compiled for one serves the others."""
  from wmjax import envs

  return envs.make(name, episode_length=episode_length, action_repeat=action_repeat)


def _brax_network_config(path: pathlib.Path, algo: str):
  """brax's network config of a checkpoint, as ``brax.training.checkpoint.load_config`` reads
  it, except for two things brax 0.14's PPO saves and its own loader cannot read: a kernel
  initialiser saved as ``null`` is left to the network's default, and an observation size
  saved as a ``ShapeDtypeStruct``'s text becomes its shape."""
  import json

  from brax.training import checkpoint as brax_checkpoint
  from brax.training import networks
  from brax.training.agents.ppo import networks as brax_networks  # noqa: F401 (registers names)
  from ml_collections import config_dict

  loaded = json.loads((path / f"{algo}_network_config.json").read_text())
  obs = loaded["observation_size"]
  if isinstance(obs, dict) and set(obs) == {"shape", "dtype"}:   # a ShapeDtypeStruct, as text
    shape = tuple(obs["shape"])
    loaded["observation_size"] = shape[0] if len(shape) == 1 else shape
  kwargs = loaded["network_factory_kwargs"]
  if "activation" in kwargs:
    kwargs["activation"] = networks.ACTIVATION[kwargs["activation"]]
  for name in brax_checkpoint._KERNEL_INIT_FN_KEYWORDS:  # noqa: SLF001
    if name in kwargs:
      if kwargs[name] is None:
        del kwargs[name]
      else:
        kwargs[name] = networks.KERNEL_INITIALIZER[kwargs[name]]
  return config_dict.create(**loaded)
