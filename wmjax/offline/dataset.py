"""Offline datasets of transitions: the on-disk format, its checks, and its device form.

A dataset is a folder::

    NAME/
      transitions.npz   # the arrays below, one row per agent step
      dataset.json      # metadata: env, how it was collected, size, return statistics

Arrays (``N`` rows, in episode order: each episode's rows are contiguous):

==============  ============  =====================================================================
field           shape         meaning
==============  ============  =====================================================================
``obs``         ``[N, *O]``   observation before the step (float32)
``action``      ``[N, *A]``   action taken, in the env's action space (``[-1, 1]`` for boxes)
``reward``      ``[N]``       reward of the step
``next_obs``    ``[N, *O]``   observation after the step
``terminated``  ``[N]``       1 where ``next_obs`` is a true terminal state (no bootstrapping)
``truncated``   ``[N]``       1 where the episode stopped for another reason: the time limit, or
                              the end of collection. Never 1 together with ``terminated``.
==============  ============  =====================================================================

An episode ends at a row whose ``terminated`` or ``truncated`` is 1, and the last row always ends
one. This keeps D4RL's two flags (``terminals``, ``timeouts``) apart under gymnasium's names.

The metadata (``dataset.json``) holds ``env`` (the registry name), ``action_repeat``,
``episode_length`` (env steps), ``kind`` (``random``, ``medium``, ... or ``user``), ``source`` (how
it was collected: policy run folder, checkpoint, whether actions were sampled), ``size``,
``returns`` (mean, std, min, max and count of complete episodes: those that terminated or ran to the
time limit) and, when measured, ``reference`` returns ``{"random": R, "expert": E}`` for D4RL's
normalised score (:func:`normalized_score`).

Bring your own data with :func:`from_arrays`; :func:`load` reads a folder and checks it (against
an env when one is given); :meth:`Dataset.device` gives the arrays as a
:class:`~wmjax.types.Transition` of float32 device arrays for a jitted learner.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any

import numpy as np

from wmjax.types import Transition

__all__ = ["FIELDS", "KINDS", "Dataset", "DatasetError", "from_arrays", "load", "load_meta",
           "save", "normalized_score", "episode_returns", "check_transitions"]

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert", "user")
FORMAT = "wmjax-dataset"
VERSION = 1
_ARRAYS = "transitions.npz"
_META = "dataset.json"


class DatasetError(ValueError):
  """A dataset that cannot be used as asked: the message names the field (and row) at fault."""


def episode_returns(reward: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-episode returns and lengths for rows in episode order, ``ends`` marking last rows."""
  reward = np.asarray(reward, np.float64)
  last = np.flatnonzero(np.asarray(ends) > 0)
  if last.size == 0 or last[-1] != reward.shape[0] - 1:
    last = np.append(last, reward.shape[0] - 1) if reward.shape[0] else last
  starts = np.concatenate([[0], last[:-1] + 1]) if last.size else np.zeros(0, int)
  sums = np.add.reduceat(reward, starts) if last.size else np.zeros(0)
  return sums, last - starts + 1


def normalized_score(returns, random_return: float, expert_return: float):
  """D4RL's normalised score, ``100 (return - random) / (expert - random)``."""
  if not math.isfinite(random_return) or not math.isfinite(expert_return):
    raise DatasetError(f"reference returns must be finite, got random {random_return}, expert "
                       f"{expert_return}")
  if expert_return == random_return:
    raise DatasetError(f"expert and random reference returns are equal ({expert_return}): "
                       "the normalised score is undefined")
  return 100.0 * (np.asarray(returns, np.float64) - random_return) / (
      expert_return - random_return)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Transitions in episode order, with their metadata (see the module docstring)."""

  obs: np.ndarray
  action: np.ndarray
  reward: np.ndarray
  next_obs: np.ndarray
  terminated: np.ndarray
  truncated: np.ndarray
  meta: dict

  @property
  def size(self) -> int:
    return int(self.reward.shape[0])

  @property
  def env_name(self) -> str | None:
    return self.meta.get("env")

  @property
  def ends(self) -> np.ndarray:
    """1 on each episode's last row."""
    return np.maximum(self.terminated, self.truncated)

  def episodes(self) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths (agent steps) of every episode, the cut ones included."""
    return episode_returns(self.reward, self.ends)

  def complete_returns(self) -> np.ndarray:
    """Returns of the episodes that terminated or reached the time limit (``episode_length`` /
    ``action_repeat`` agent steps); all episodes when the metadata gives no length."""
    returns, lengths = self.episodes()
    limit = self.meta.get("episode_length")
    if not limit:
      return returns
    per_episode = -(-int(limit) // int(self.meta.get("action_repeat", 1)))
    last = np.flatnonzero(self.ends > 0)
    terminated = self.terminated[last] > 0 if last.size == returns.size else np.zeros_like(
        returns, bool)
    keep = terminated | (lengths >= per_episode)
    return returns[keep]

  def return_stats(self) -> dict:
    returns = self.complete_returns()
    if returns.size == 0:
      return {"episodes": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"episodes": int(returns.size), "mean": float(returns.mean()),
            "std": float(returns.std()), "min": float(returns.min()),
            "max": float(returns.max())}

  @property
  def behaviour_return(self) -> float:
    """The dataset's own policy score: the mean return of its complete episodes."""
    returns = self.complete_returns()
    if returns.size == 0:
      raise DatasetError("the dataset has no complete episode (none terminated or reached the "
                         "time limit), so its behaviour return is undefined")
    return float(returns.mean())

  def normalized(self, returns):
    """``returns`` as D4RL normalised scores, with this dataset's reference returns."""
    ref = self.meta.get("reference") or {}
    if "random" not in ref or "expert" not in ref:
      raise DatasetError("this dataset's metadata has no reference returns (reference.random "
                         "and reference.expert); `wmjax dataset collect` measures them")
    return normalized_score(returns, float(ref["random"]), float(ref["expert"]))

  def device(self) -> Transition:
    """The transitions as float32 device arrays (``terminated`` as 0/1 floats)."""
    import jax.numpy as jnp

    return Transition(obs=jnp.asarray(self.obs, jnp.float32),
                      action=jnp.asarray(self.action, jnp.float32),
                      reward=jnp.asarray(self.reward, jnp.float32),
                      next_obs=jnp.asarray(self.next_obs, jnp.float32),
                      terminated=jnp.asarray(self.terminated, jnp.float32))

  def check(self, env=None) -> Dataset:
    """Raises :class:`DatasetError` naming the field (and row) of the first problem; with
    ``env`` (a registered env), also the shapes, action bounds and env name. Returns self."""
    n = self.size
    if n == 0:
      raise DatasetError("the dataset is empty (0 rows)")
    for name in FIELDS:
      value = getattr(self, name)
      if value.ndim == 0 or value.shape[0] != n:
        raise DatasetError(f"field {name!r} has {value.shape[0] if value.ndim else 0} rows "
                           f"(shape {value.shape}); reward has {n}")
      if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
        raise DatasetError(f"field {name!r} has dtype {value.dtype}, not a number")
      bad = ~np.isfinite(value.astype(np.float64, copy=False)).reshape(n, -1).all(axis=1)
      if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"field {name!r} has a NaN or infinite value at row {row} "
                           f"({int(bad.sum())} rows in all)")
    for name in ("reward", "terminated", "truncated"):
      if getattr(self, name).ndim != 1:
        raise DatasetError(f"field {name!r} must be one value per row, got shape "
                           f"{getattr(self, name).shape}")
    if self.obs.shape != self.next_obs.shape:
      raise DatasetError(f"fields 'obs' {self.obs.shape} and 'next_obs' {self.next_obs.shape} "
                         "differ in shape")
    for name in ("terminated", "truncated"):
      flags = getattr(self, name)
      bad = (flags != 0) & (flags != 1)
      if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"field {name!r} must be 0 or 1; row {row} holds {flags[row]}")
    both = (self.terminated > 0) & (self.truncated > 0)
    if both.any():
      row = int(np.flatnonzero(both)[0])
      raise DatasetError(f"row {row} is both terminated and truncated; a terminal state is "
                         "terminated only")
    if self.ends[-1] == 0:
      raise DatasetError(f"the last row ({n - 1}) ends no episode: set its 'truncated' to 1 "
                         "(from_arrays does this)")
    if env is not None:
      self._check_env(env)
    return self

  def _check_env(self, env) -> None:
    spec = env.spec
    if self.env_name is not None and self.env_name != env.name:
      raise DatasetError(f"the dataset was collected on {self.env_name}, not {env.name} "
                         f"(dataset.json 'env'); train on --env {self.env_name}")
    repeat = self.meta.get("action_repeat")
    if repeat is not None and int(repeat) != int(env.action_repeat):
      raise DatasetError(f"the dataset was collected at action repeat {repeat}, the env is made "
                         f"at {env.action_repeat}; use --set action_repeat={repeat}")
    if tuple(self.obs.shape[1:]) != tuple(spec.obs_shape):
      raise DatasetError(f"field 'obs' has rows of shape {tuple(self.obs.shape[1:])}; "
                         f"{env.name} observes {tuple(spec.obs_shape)}")
    if spec.discrete:
      if self.action.ndim != 1:
        raise DatasetError(f"field 'action' must hold action indices (shape [N]) for "
                           f"{env.name}'s discrete actions, got {self.action.shape}")
      bad = (self.action < 0) | (self.action >= spec.num_actions) | (
          self.action != np.round(self.action))
    else:
      if tuple(self.action.shape[1:]) != tuple(spec.action_shape):
        raise DatasetError(f"field 'action' has rows of shape {tuple(self.action.shape[1:])}; "
                           f"{env.name} takes {tuple(spec.action_shape)}")
      bad = (np.abs(self.action) > 1.0 + 1e-5).reshape(self.size, -1).any(axis=1)
    if bad.any():
      row = int(np.flatnonzero(bad)[0])
      raise DatasetError(f"field 'action' at row {row} is outside {env.name}'s action space "
                         f"({self.action[row]})")

  def describe(self) -> str:
    stats = self.return_stats()
    ref = self.meta.get("reference") or {}
    lines = [f"{self.meta.get('kind', 'user')} dataset on {self.env_name or '(no env)'}: "
             f"{self.size} transitions, {int(self.ends.sum())} episodes "
             f"({int(self.terminated.sum())} terminated)"]
    if stats["episodes"]:
      lines.append(f"return of complete episodes: mean {stats['mean']:.1f}, std "
                   f"{stats['std']:.1f}, min {stats['min']:.1f}, max {stats['max']:.1f} "
                   f"({stats['episodes']} episodes)")
    if "random" in ref and "expert" in ref:
      score = (f", behaviour {float(self.normalized(stats['mean'])):.1f} normalised"
               if stats["episodes"] else "")
      lines.append(f"reference returns: random {ref['random']:.1f}, expert "
                   f"{ref['expert']:.1f}{score}")
    return "\n".join(lines)


def check_transitions(env, data: Transition, who: str) -> int:
  """The number of rows of ``data`` (a :class:`~wmjax.types.Transition`, e.g. from
  :meth:`Dataset.device`), after checking every field's shape against ``env``; ``who`` (an agent's
  name) heads the :class:`DatasetError` that names the field at fault."""
  spec = env.spec
  fields = {name: tuple(np.shape(getattr(data, name))) for name in Transition._fields}
  n = fields["reward"][0] if fields["reward"] else 0
  if len(fields["reward"]) != 1 or n < 1:
    raise DatasetError(f"{who}'s dataset field 'reward' must have shape [N] with N >= 1, got "
                       f"{fields['reward']}")
  expected = {"obs": (n, *spec.obs_shape), "action": (n, *spec.action_shape),
              "reward": (n,), "next_obs": (n, *spec.obs_shape), "terminated": (n,)}
  for name, shape in expected.items():
    if fields[name] != shape:
      raise DatasetError(f"{who}'s dataset field {name!r} has shape {fields[name]} ({name!r} "
                         f"has rows of shape {fields[name][1:]}); {env.name} "
                         f"({spec.describe().strip()}) with {n} rows needs {shape}")
  return n


def _flags(value, n: int, name: str) -> np.ndarray:
  if value is None:
    return np.zeros(n, np.float32)
  value = np.asarray(value)
  if value.dtype == np.bool_:
    value = value.astype(np.float32)
  return value.astype(np.float32) if np.issubdtype(value.dtype, np.number) else value


def from_arrays(obs, action, reward, next_obs, terminated=None, truncated=None, *,
                env: str | None = None, action_repeat: int = 1,
                episode_length: int | None = None, kind: str = "user",
                source: dict | None = None, reference: dict | None = None,
                check: bool = True) -> Dataset:
  """A :class:`Dataset` from plain arrays in episode order (numpy, jax or lists).

  ``terminated`` defaults to all 0 (no terminal states), ``truncated`` to 0 except on the last
  row, which always ends an episode (a cut one unless it terminated). ``env`` (a registry name)
  lets :func:`load` and the offline agents check that the data fits the env they train on.
  """
  arrays = {"obs": obs, "action": action, "reward": reward, "next_obs": next_obs}
  for name, value in arrays.items():
    if value is None:
      raise DatasetError(f"field {name!r} is missing")
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  for name in ("obs", "reward", "next_obs"):
    if np.issubdtype(arrays[name].dtype, np.number):
      arrays[name] = arrays[name].astype(np.float32)
  if arrays["action"].dtype.kind == "f":
    arrays["action"] = arrays["action"].astype(np.float32)
  n = arrays["reward"].shape[0] if arrays["reward"].ndim else 0
  term = _flags(terminated, n, "terminated")
  trunc = _flags(truncated, n, "truncated")
  if truncated is None and n and term.shape == (n,):
    trunc = trunc.copy()
    trunc[-1] = 1.0 - min(float(term[-1]), 1.0)
  if kind not in KINDS:
    raise DatasetError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
  meta = {"format": FORMAT, "version": VERSION, "env": env, "action_repeat": int(action_repeat),
          "episode_length": episode_length, "kind": kind, "source": source or {"by": "user"},
          "size": int(n)}
  if reference is not None:
    meta["reference"] = {k: float(v) for k, v in reference.items()}
  data = Dataset(meta=meta, terminated=term, truncated=trunc, **arrays)
  if check:
    data.check()
    data.meta["returns"] = data.return_stats()
  return data


def save(dataset: Dataset, path: str | os.PathLike) -> pathlib.Path:
  """Writes ``dataset`` to the folder ``path`` (created; an existing dataset is refused)."""
  path = pathlib.Path(path)
  if (path / _ARRAYS).exists():
    raise FileExistsError(f"{path} already holds a dataset; choose another --out or remove it")
  dataset.check()
  path.mkdir(parents=True, exist_ok=True)
  meta = {**{k: v for k, v in dataset.meta.items() if k != "path"}, "size": dataset.size,
          "returns": dataset.return_stats(),
          "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  tmp = path / (_ARRAYS + ".tmp.npz")
  np.savez(tmp, **{name: getattr(dataset, name) for name in FIELDS})
  os.replace(tmp, path / _ARRAYS)
  (path / _META).write_text(json.dumps(meta, indent=1) + "\n")
  return path


def load_meta(path: str | os.PathLike) -> dict:
  """The metadata (``dataset.json``) of the dataset folder ``path``, without reading arrays."""
  path = pathlib.Path(path)
  if not (path / _ARRAYS).exists():
    raise FileNotFoundError(f"no dataset at {path} (a dataset is a folder with transitions.npz "
                            "and dataset.json)")
  if not (path / _META).exists():
    return {}
  try:
    return json.loads((path / _META).read_text())
  except json.JSONDecodeError as e:
    raise DatasetError(f"{path / _META} is not valid JSON: {e}") from None


def load(path: str | os.PathLike, env=None) -> Dataset:
  """Reads and checks the dataset folder ``path`` (against ``env``, a registered env, if given).

  Raises :class:`DatasetError` (a ``ValueError``) for a missing field, wrong shapes, NaN or
  infinite values, an empty dataset or data of another env, naming the field and row; and
  ``FileNotFoundError`` for a folder that holds no dataset.
  """
  path = pathlib.Path(path)
  arrays_path = path / _ARRAYS
  meta: dict[str, Any] = {**load_meta(path), "path": str(path.resolve())}
  with np.load(arrays_path, allow_pickle=False) as npz:
    missing = [name for name in FIELDS if name not in npz.files]
    if missing:
      raise DatasetError(f"{arrays_path} lacks field(s) {', '.join(map(repr, missing))}; a "
                         f"dataset has {', '.join(FIELDS)}")
    arrays = {name: npz[name] for name in FIELDS}
  for name in ("terminated", "truncated"):
    arrays[name] = _flags(arrays[name], 0, name)
  return Dataset(meta=meta, **arrays).check(env)
