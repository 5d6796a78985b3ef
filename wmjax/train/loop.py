"""The one training driver, for every agent of the registry (:mod:`wmjax.train.algos`).

``train("pets", "dmc/CartpoleSwingup", steps=2000, seeds=4, out="runs/x")`` resolves the
settings (preset, then ``--set``), builds the agent's :class:`~wmjax.agents.base.Program`, and
runs its phases as jitted, run-vmapped chunks. Python only drives: it owns the run folder
(``config.json``, ``metrics.jsonl``, ``curve.png``, orbax checkpoints), resume, the run axis
and its placement on devices, finiteness checks, evaluation cadence, the progress bar and the
agent's extra figures (hooks).

Host work per chunk is constant in the run's length: metric lines are kept in memory (read
once on resume), and the curve is redrawn after an evaluation at most every
``PLOT_EVERY_S`` seconds (and always at the end). The training state is donated to each chunk,
so a device holds one copy of it (replay buffers included), not two; the checkpoint of a state
is finished before that state is donated.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.agents.base import Program
from wmjax.train.checkpoint import Checkpointer
from wmjax.train.common import (
  RunAxis,
  TrainingDiverged,
  all_finite,
  axis_inputs,
  bad_seeds,
  config_dict,
  config_from_dict,
  resolve_axis,
  restore_or_init,
  run_sharding,
)
from wmjax.train.plots import plot_curve, seeds_label
from wmjax.train.rundir import RunDir, RunExistsError

__all__ = ["train", "Built", "HookContext", "read_run_config", "load_run", "evaluate_run",
           "settings_for", "reduce_chunk", "PLOT_EVERY_S"]

PLOT_EVERY_S = 20.0   # the curve is redrawn at most this often (and at the end)


@dataclasses.dataclass
class Built:
  """An agent built for one run: what its registry entry's ``build`` returns."""

  env: Any                      # the env (or game) it trains on
  program: Program
  config: Any
  hyper: Any
  derived: dict                 # values derived from the settings, for config.json
  progress_total: int           # the progress bar's total, in progress_unit
  progress_unit: str = "env step"
  progress_key: str = "env_steps"   # the record field the bar follows ("iteration": chunks)
  extra: dict = dataclasses.field(default_factory=dict)   # what the entry's hooks need


@dataclasses.dataclass
class HookContext:
  """What an agent's host-side hook sees after each chunk."""

  run: RunDir
  built: Built
  state: Any                    # every run's state (leading axis: runs); not to be kept
  record: dict                  # the line just logged
  phase: str
  last_of_phase: bool
  last: bool                    # the run's last chunk (or the last before a time budget)
  evaluated: bool
  key: jax.Array                # a fresh key for the hook's own sampling

  def first_run(self):
    """The state of the run axis' first run (a copy: replay buffers included; a hook that
    needs a few fields should slice those)."""
    return jax.tree.map(lambda x: x[0], self.state)


def read_run_config(run_dir: str | pathlib.Path) -> dict:
  """A run folder's ``config.json``, with a clear error where it is missing or damaged."""
  path = pathlib.Path(run_dir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{run_dir} holds no run (no config.json); pass a folder written "
                            "by `wmjax train`.")
  try:
    saved = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is damaged ({e}); the run cannot be resumed or evaluated. "
                     "Restore the file from a copy, or start a new run.") from e
  missing = [k for k in ("algo", "env", "config", "hyper") if k not in saved]
  if not isinstance(saved, dict) or missing:
    raise ValueError(f"{path} is damaged: it lacks {', '.join(missing) or 'its fields'}; the run "
                     "cannot be resumed or evaluated.")
  return saved


def _user_env(saved: dict) -> None:
  """A run on an env that ``--import MODULE`` registered imports that module again."""
  from wmjax.envs import user

  user.ensure_registered(saved["env"], saved.get("env_import"))


def settings_for(algo, env_name: str, sets=(), preset: str | None = None):
  """``(config, hyper, resolved preset)`` of a new run: the preset, then ``--set``, checked."""
  from wmjax import presets as presets_lib
  from wmjax.train.overrides import apply_overrides, validate_hyper

  resolved = presets_lib.resolve(algo.name, env_name, algo.config_cls, algo.hyper_cls,
                                 name=preset)
  config, hyper = apply_overrides(resolved.config, resolved.hyper, list(sets))
  if algo.hyper_from_config is not None:
    hyper = algo.hyper_from_config(config, hyper)
  validate_hyper(hyper)
  return config, hyper, resolved


def _saved_settings(algo, saved: dict):
  try:
    return config_from_dict(algo.config_cls, algo.hyper_cls, saved)
  except TypeError as e:
    raise ValueError(f"the run's config.json does not fit this version of wmjax's "
                     f"{algo.name} ({e}); it was written by another version and cannot be "
                     "resumed or evaluated here.") from e


def reduce_chunk(metrics: dict, reduce: str, summed=()) -> dict:
  """Per-run values of a chunk's metrics (leaves ``[runs, iterations, ...]``): NaN-aware mean
  over the iterations (and any trailing axes), a sum for ``summed`` names, or the last."""
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v, float)
    v = v.reshape(v.shape[0], v.shape[1], -1)
    with warnings.catch_warnings():   # a chunk without updates or finished episodes is NaN
      warnings.simplefilter("ignore", RuntimeWarning)
      if reduce == "last":
        out[k] = np.nanmean(v[:, -1], axis=1)
      elif k in summed or k.startswith("nonfinite/"):   # counts
        out[k] = np.nansum(v, axis=(1, 2))
      else:
        out[k] = np.nanmean(v, axis=(1, 2))
  return out


def _add(record: dict, name: str, per_run) -> None:
  per_run = np.asarray(per_run, float)
  record[name] = per_run
  finite = per_run[np.isfinite(per_run)]
  record[name + "_mean"] = float(finite.mean()) if finite.size else None


class _Curve:
  """Redraws ``curve.png`` from the lines in memory, at most every ``PLOT_EVERY_S``."""

  def __init__(self, path: pathlib.Path, kwargs: dict):
    self.path, self.kwargs, self.last = path, kwargs, -math.inf

  def draw(self, records: list[dict], force: bool = False) -> None:
    if not records or (not force and time.time() - self.last < PLOT_EVERY_S):
      return
    plot_curve(records, self.path, **self.kwargs)
    self.last = time.time()


def train(algo_name: str, env_name: str | None = None, *, out: str | pathlib.Path,
          steps: int | None = None, seeds: int = 1, seed: int = 0, sets=(),
          preset: str | None = None, resume: bool = False, progress: bool = True,
          run_axis: RunAxis | None = None, devices: int | None = 1,
          minutes: float | None = None, donate: bool = True,
          reference: tuple[float, str] | None = None,
          echo: Callable[[str], None] | None = None) -> RunDir:
  """Trains ``algo_name`` on ``env_name`` into the run folder ``out``.

  ``steps``: the run's length as the algorithm counts it (agent steps, self-play moves, CMA-ES
  generations; default: the preset's). ``seeds`` runs (or the runs of ``run_axis``: seeds x
  hyperparameter points) form one vmapped program, split over ``devices`` local devices (0:
  all). ``resume`` continues the run in ``out`` from its last checkpoint with its saved
  settings. ``minutes``: stop (evaluated and checkpointed) after the first chunk that ends past
  this wall-clock budget; ``resume`` continues. ``donate=False`` keeps the input state of each
  chunk alive (twice the memory; for measuring what donation saves). ``echo`` receives one line
  naming the preset used.
  """
  from tqdm.auto import tqdm

  from wmjax.train.algos import get_algo

  algo = get_algo(algo_name)
  out = pathlib.Path(out)
  if minutes is not None and not minutes > 0:
    raise ValueError(f"--minutes must be > 0, got {minutes}")
  if resume:
    if not (out / "config.json").exists():
      raise FileNotFoundError(f"--resume: {out} holds no run (no config.json) to resume.")
    saved = read_run_config(out)
    if saved["algo"] != algo.name:
      raise ValueError(f"{out} is a {saved['algo']} run, not {algo.name}")
    env_name, steps, seed = saved["env"], saved["steps"], saved["seed"]
    _user_env(saved)
    config, hyper = _saved_settings(algo, saved)
    preset_name = saved.get("preset", "(not recorded)")
    if echo is not None:
      echo(f"{algo.title} on {env_name}: resuming {out} (preset {preset_name})")
  else:
    if (out / "config.json").exists():
      raise RunExistsError(f"{out} already holds a run (config.json is there). Pass --resume to "
                           "continue it, or choose a new --out folder.")
    if env_name is None:
      raise ValueError("an env name is needed for a new run")
    saved = None
    config, hyper, resolved = settings_for(algo, env_name, sets, preset)
    preset_name = resolved.name
    if steps is None:
      steps = resolved.steps
    if steps is not None and steps < 1:
      raise ValueError(f"--{algo.length_name} must be >= 1, got {steps}")
    if echo is not None:
      echo(f"{algo.title} on {env_name}: {resolved.describe(env_name)}")
    if algo.fit_to_length is not None and steps is not None:
      config, note = algo.fit_to_length(config, steps)
      if note and echo is not None:
        echo(f"  {note}")
  axis = resolve_axis(resume, saved, seeds, seed, run_axis)
  runs = axis.size   # seeds x hyperparameter points
  built = algo.build(env_name, steps, config, hyper)   # bad settings fail before any folder
  program = built.program
  run = RunDir(out, resume=resume)
  if not resume:
    d = config_dict(algo.name, env_name, steps, runs, seed, config, hyper, built.derived,
                    run_axis=axis)
    d["preset"] = preset_name
    from wmjax.envs import user

    if user.origin(env_name):   # an env registered by --import: resume and eval import it again
      d["env_import"] = user.origin(env_name)
    run.write_config(d)
  keys, hypers, mesh = axis_inputs(axis, hyper, devices)
  eval_key = jax.random.PRNGKey(seed + 10_000)
  chunks = program.chunks()
  # Per phase: (first run of each group, each run's group) where runs share it, else None.
  phase_groups = [shared_groups(axis, hypers, phase.shared.hyper_fields)
                  if phase.shared is not None and phase.iterations else None
                  for phase in program.phases]
  for phase, groups in zip(program.phases, phase_groups, strict=True):
    if groups is not None and echo is not None:
      echo(f"phase {phase.name}: computed {len(groups[0])} times for {runs} runs (runs of one "
           f"seed share it; it reads only {', '.join(phase.shared.hyper_fields)})")

  init_fn = program.init_runs or jax.jit(jax.vmap(program.init))

  @functools.cache
  def chunk_fn(phase_index: int, n: int):
    phase = program.phases[phase_index]

    def run_chunk(state, hyper_):
      state, metrics = jax.lax.scan(lambda s, _: phase.iteration(s, hyper_), state, None,
                                    length=n)
      return state, (metrics, program.counters(state), all_finite(program.params(state)))

    groups = phase_groups[phase_index]
    if groups is None:
      return jax.jit(jax.vmap(run_chunk), donate_argnums=(0,) if donate else ())
    first, member = groups
    # On a mesh, the groups' runs are split over its devices as well (when they divide evenly),
    # rather than left wherever their first runs live, and what returns is split as it came.
    split = run_sharding(mesh)
    split_groups = split is not None and len(first) % mesh.size == 0

    def on_runs(tree, where):
      return tree if where is None else jax.lax.with_sharding_constraint(tree, where)

    def run_shared(state, hyper_):
      """The phase once per group of alike runs (their first), its part copied to the rest."""
      pick = functools.partial(jax.tree.map, lambda x: x[first])
      sub = on_runs((pick(state), pick(hyper_)), split if split_groups else None)
      done_, (metrics, _, _) = jax.vmap(run_chunk)(*sub)
      part = jax.tree.map(lambda x: x[member], phase.shared.get(done_))
      state = on_runs(jax.vmap(phase.shared.put)(state, part), split)
      metrics = jax.tree.map(lambda x: x[member], metrics)
      return state, (metrics, jax.vmap(program.counters)(state),
                     jax.vmap(lambda s: all_finite(program.params(s)))(state))
    return jax.jit(run_shared, donate_argnums=(0,) if donate else ())

  eval_fn = jax.jit(jax.vmap(program.evaluate))
  # Each run's evaluation keys come from its own seed's key (not from a split over the run
  # axis), so a run evaluates alike alone or inside a sweep of any size.
  eval_keys_fn = jax.jit(jax.vmap(
      lambda k, d: jax.random.fold_in(jax.random.fold_in(k, 10_000), d), in_axes=(0, None)))
  finite_fn = jax.jit(jax.vmap(lambda s: all_finite(program.params(s))))
  counters_fn = jax.jit(jax.vmap(program.counters))
  ckpt = Checkpointer(run.checkpoint_dir)
  title = f"{algo.title} on {env_name} ({seeds_label(runs)})"
  curve = _Curve(run.path / "curve.png", {"title": title, "reference": reference,
                                          **algo.plot_kwargs(built)})
  bar = tqdm(total=built.progress_total, unit=built.progress_unit, disable=not progress,
             dynamic_ncols=True, desc=f"{algo.title} {env_name}, {seeds_label(runs)}")
  t_start = time.time()
  records: list[dict] = []
  try:
    fresh = []

    def on_init():
      fresh.append(True)
      bar.set_postfix_str("initialising + compiling")

    state, done, wall_offset = restore_or_init(run, ckpt, init_fn, keys, hypers, resume,
                                               on_init, mesh=mesh)
    if fresh:
      finite = np.asarray(finite_fn(state))
      if not finite.all():
        raise TrainingDiverged(
            f"non-finite parameters right after initialisation (e.g. the first model fit) for "
            f"seed(s) {bad_seeds(np.where(finite, 0.0, np.nan))}; stopped before any "
            f"checkpoint. Try a lower learning rate ({algo.lr_hint}).")
      ckpt.save(0, state)
    records = run.read_metrics()
    counters = {k: float(np.mean(v)) for k, v in jax.device_get(counters_fn(state)).items()}
    _bar_to(bar, built, counters, done)
    phase_done = _phase_progress(program, chunks[:done])
    host_s = None   # host time of the previous chunk's line: logging, checkpoint, plots, hooks
    while done < len(chunks):
      t_loop = time.perf_counter()
      phase_index, n = chunks[done]
      phase = program.phases[phase_index]
      ckpt.wait()   # the state about to be donated is no longer read by its checkpoint
      t_call = time.perf_counter()
      state, (metrics, counters, finite) = chunk_fn(phase_index, n)(state, hypers)
      metrics, counters, finite = jax.device_get((metrics, counters, np.asarray(finite)))
      chunk_s = time.perf_counter() - t_call
      done += 1
      before = phase_done[phase_index]
      phase_done[phase_index] = after = before + n
      per_run = reduce_chunk(metrics, phase.reduce, program.summed)
      where = (f"chunk {done} ({phase.name} iteration {after}, "
               f"{int(np.mean(counters['env_steps']))} env steps)")
      _check_finite(algo, program, where, finite, metrics, per_run, ckpt)
      record = {"iteration": done}
      if len(program.phases) > 1:
        record["stage"] = phase.name
      record["train_iterations"] = sum(phase_done)
      record.update({k: int(round(float(np.mean(v)))) for k, v in counters.items()})
      record["wall_s"] = wall_offset + time.time() - t_start
      record["time/chunk_s"] = chunk_s
      if host_s is not None:
        record["time/host_s"] = host_s
      for k, v in per_run.items():
        _add(record, k, v)
      out_of_time = minutes is not None and time.time() - t_start > 60 * minutes
      last = done == len(chunks) or out_of_time
      last_of_phase = done == len(chunks) or chunks[done][0] != phase_index
      every = program.eval_every
      evaluated = phase.evaluate and (last or (every > 0 and after // every > before // every))
      eval_s = 0.0
      if evaluated:
        t_eval = time.perf_counter()
        results = jax.device_get(eval_fn(state, eval_keys_fn(keys, done), hypers))
        for k, v in results.items():
          _add(record, k, np.asarray(v, float).reshape(runs, -1).mean(axis=1))
        eval_s = record["time/eval_s"] = time.perf_counter() - t_eval
      if algo.after_chunk is not None:
        algo.after_chunk(HookContext(run, built, state, record, phase.name, last_of_phase, last,
                                     evaluated, jax.random.fold_in(eval_key, 1_000_000 + done)))
      run.log(record)   # before the checkpoint: a kill between them loses no line on resume
      records.append(record)
      ckpt.save(done, state)
      if evaluated:
        curve.draw(records)
      _bar_to(bar, built, record, done)
      bar.set_postfix(algo.postfix(record, evaluated, built))
      host_s = time.perf_counter() - t_loop - chunk_s - eval_s
      if out_of_time and done < len(chunks):
        bar.write(f"stopped at the {minutes:g}-minute budget after {record['env_steps']} "
                  f"{built.progress_unit}s; continue with --resume --out {run.path}")
        break
  finally:
    bar.close()
    try:   # the curve as far as the run got (also when it stopped on an error)
      curve.draw(records, force=True)
    except Exception as e:  # a figure must never hide why the run stopped
      warnings.warn(f"could not draw {curve.path}: {e}", stacklevel=2)
    ckpt.close()
  return run


def shared_groups(axis: RunAxis, hypers, fields) -> tuple[np.ndarray, np.ndarray] | None:
  """Runs alike for a :class:`~wmjax.agents.base.SharedPart` phase: those with one seed and the
  same values of ``fields``. ``(first [G], member [R])``: each group's first run, and each
  run's group; None when every run is its own group (nothing to share)."""
  values = [np.asarray(jax.device_get(getattr(hypers, f))) for f in fields]
  index: dict[tuple, int] = {}
  first, member = [], []
  for r, (_, seed_index) in enumerate(axis.runs):
    key = (seed_index, *(v[r].item() for v in values))
    if key not in index:
      index[key] = len(first)
      first.append(r)
    member.append(index[key])
  if len(first) == len(member):
    return None
  return np.asarray(first, np.int32), np.asarray(member, np.int32)


def _phase_progress(program: Program, done_chunks) -> list[int]:
  done = [0] * len(program.phases)
  for index, n in done_chunks:
    done[index] += n
  return done


def _bar_to(bar, built: Built, counters: dict, done: int) -> None:
  value = done if built.progress_key == "iteration" else counters.get(built.progress_key, 0)
  bar.n = min(int(value), int(built.progress_total))
  bar.refresh()


def _check_finite(algo, program: Program, where: str, finite, metrics: dict, per_run: dict,
                  ckpt) -> None:
  """Stops a run whose parameters or losses (at any iteration of the chunk) turned NaN or
  infinite, or whose iterations met non-finite values they count (``nonfinite/...``)."""
  kept = (f"stopped. The last good checkpoint is kept in {ckpt.directory}. Try a lower "
          f"learning rate ({algo.lr_hint}).")
  for k in program.losses:
    if k in metrics:
      values = np.asarray(metrics[k], float).reshape(len(finite), -1)
      ok = np.all(np.isfinite(values), axis=1)
      if not ok.all():
        raise TrainingDiverged(f"non-finite {k} in {where} for seed(s) "
                               f"{bad_seeds(np.where(ok, 0.0, np.nan))}; " + kept)
  finite = np.asarray(finite, bool)
  if not finite.all():
    raise TrainingDiverged(f"non-finite parameters in {where} for seed(s) "
                           f"{bad_seeds(np.where(finite, 0.0, np.nan))}; " + kept)
  for k, v in per_run.items():
    if k.startswith("nonfinite/") and np.any(np.nan_to_num(v, nan=1.0) > 0):
      bad = [int(i) for i in np.flatnonzero(np.nan_to_num(v, nan=1.0) > 0)]
      raise TrainingDiverged(
          f"{np.nansum(v):g} non-finite {k[len('nonfinite/'):].replace('_', ' ')} in {where} "
          f"for seed(s) {bad}: the model produces NaN or infinite predictions; " + kept)


def load_run(run_dir: str | pathlib.Path, *, replace: dict | None = None,
             step: int | None = None):
  """Rebuilds a run from its folder at its last checkpoint (or at checkpoint ``step``):
  ``(algo, built, state, saved, step)``. ``replace``: Config fields to change in the rebuilt
  agent (e.g. the evaluation's episode count, the planner's population); one that changes the
  checkpoint's arrays is refused."""
  from wmjax.train.algos import get_algo

  saved = read_run_config(run_dir)
  algo = get_algo(saved["algo"])
  _user_env(saved)
  config, hyper = _saved_settings(algo, saved)
  axis = RunAxis.from_saved(saved)
  keys, hypers = axis.keys(), axis.hypers(hyper)

  def state_shapes(config):
    built = algo.build(saved["env"], saved["steps"], config, hyper)
    program = built.program
    return built, jax.eval_shape(program.init_runs or jax.vmap(program.init), keys, hypers)

  built, abstract = state_shapes(dataclasses.replace(config, **(replace or {})))
  changed = {k: v for k, v in (replace or {}).items() if k != algo.eval_count_field}
  if changed:   # the episode count shapes no state
    _, trained = state_shapes(config)
    if jax.tree.structure(trained) != jax.tree.structure(abstract) or any(
        (a.shape, a.dtype) != (b.shape, b.dtype)
        for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(abstract), strict=True)):
      raise ValueError(
          f"{', '.join(f'{k}={v}' for k, v in changed.items())}: changes the shapes of the "
          f"checkpoint's arrays, so the trained {algo.name} state cannot act with it; only "
          "settings that act at evaluation (e.g. a planner's population or iterations) can "
          "change")
  ckpt = Checkpointer(pathlib.Path(run_dir) / "checkpoints")
  try:
    if ckpt.latest_step() is None:
      raise FileNotFoundError(f"{run_dir} has no checkpoint yet (checkpoints/ is empty)")
    if step is not None and step not in ckpt.all_steps():
      raise ValueError(f"checkpoint {step} is not in {run_dir}: it has checkpoint(s) "
                       f"{', '.join(map(str, ckpt.all_steps()))} (wmjax's agents keep the last "
                       "two, named by chunk)")
    step, state = ckpt.restore(abstract, step=step)
  finally:
    ckpt.close()
  return algo, built, state, saved, step


_EVALUATE_PROGRAMS: dict = {}


def _evaluate_program(saved: dict, replace: dict, built: Built):
  """The jitted, vmapped evaluation of runs built from ``saved`` with ``replace``: one per
  setting, so evaluating a run's checkpoints one after another (or a sweep's runs of one
  program) compiles once. ``built.program.evaluate`` is a new closure at every build, which
  ``jax.jit`` alone would compile again."""
  from wmjax.envs import registry

  try:   # an env registered again (a notebook's new version of it) is another program
    env_entry = id(registry.entry(saved["env"]))
  except (ValueError, TypeError):   # a game outside the registry (pgx, MuZero's)
    env_entry = None
  key = json.dumps([{k: v for k, v in saved.items() if k not in ("seed", "seeds", "jax")},
                    {k: repr(v) for k, v in sorted(replace.items())}, env_entry],
                   sort_keys=True, default=repr)
  program = _EVALUATE_PROGRAMS.pop(key, None)   # re-inserted last: the least recently used goes
  if program is None:
    if len(_EVALUATE_PROGRAMS) >= 8:   # a notebook going through many runs keeps the last few
      _EVALUATE_PROGRAMS.pop(next(iter(_EVALUATE_PROGRAMS)))
    program = jax.jit(jax.vmap(built.program.evaluate))
  _EVALUATE_PROGRAMS[key] = program
  return program


def acting_settings(algo, saved: dict, sets=()) -> tuple[dict, dict]:
  """``(replace, hyper_updates)``: the Config fields and Hyper values that ``key=value``
  settings (as ``--set``) change from a run's own, to act with a trained state (see
  :func:`load_run`, which refuses a field that changes the checkpoint's arrays)."""
  from wmjax.train.overrides import apply_overrides, validate_hyper

  if not sets:
    return {}, {}
  config, hyper = _saved_settings(algo, saved)
  new_config, new_hyper = apply_overrides(config, hyper, list(sets))
  validate_hyper(new_hyper)
  replace = {f.name: getattr(new_config, f.name) for f in dataclasses.fields(config)
             if getattr(new_config, f.name) != getattr(config, f.name)}
  hyper_updates = {k: v for k, v in new_hyper._asdict().items() if v != getattr(hyper, k)}
  return replace, hyper_updates


def evaluate_run(run_dir: str | pathlib.Path, *, episodes: int = 5, seed: int = 123,
                 sets=()):
  """Evaluates a run's last checkpoint: ``({metric: [runs, episodes]}, saved, step, algo)``.

  ``sets``: ``key=value`` settings (as ``--set``) to act with instead of the run's, e.g. a
  bigger planner (``population=800``) on the trained model; a Hyper value applies to every
  run. A setting that changes the checkpoint's arrays (an ensemble's size) is refused."""
  from wmjax.train.algos import get_algo

  if episodes < 1:
    raise ValueError(f"--episodes must be >= 1, got {episodes}")
  saved = read_run_config(run_dir)
  algo = get_algo(saved["algo"])
  replace, hyper_updates = acting_settings(algo, saved, sets)
  if algo.eval_count_field:
    replace[algo.eval_count_field] = episodes
  algo, built, state, saved, step = load_run(run_dir, replace=replace or None)
  axis = RunAxis.from_saved(saved)
  keys = jax.random.split(jax.random.PRNGKey(seed), axis.size)
  hypers = axis.hypers(built.hyper)
  hypers = hypers._replace(**{k: jnp.full_like(getattr(hypers, k), v)
                              for k, v in hyper_updates.items()})
  results = _evaluate_program(saved, replace, built)(state, keys, hypers)
  return {k: np.asarray(v).reshape(axis.size, -1) for k, v in results.items()}, saved, step, algo
