"""A results table across DM Control tasks: agents x tasks at a fixed env-step budget, one preset
per agent for the whole suite, beside DreamerV3's and TD-MPC2's published returns.

    python experiments/dmc_table.py run                 # the default table (resumes; many hours)
    python experiments/dmc_table.py run --minutes 50    # work for 50 minutes, then stop cleanly
    python experiments/dmc_table.py run --jobs 2        # two rows at a time (one per CPU core)
    python experiments/dmc_table.py run --agents pets --tasks dmc/CartpoleBalance
    python experiments/dmc_table.py random              # the random policy's row (run does it)
    python experiments/dmc_table.py report              # table + figures from what has run

Each (agent, task) is one run folder, ``OUT/<agent>/<task>``: one vmapped program over the
seeds, trained by wmjax's driver (``wmjax train``; brax's trainer for SAC). ``run`` starts what is
missing and resumes what stopped (wmjax agents continue from their last checkpoint; a brax run
that did not finish starts again, since brax cannot resume its replay), so the table fills over
several sessions. Checkpoints are not committed (.gitignore): in a fresh clone a run that did not
finish starts again, unless its last checkpoint is carried (``git add -f``; a PETS checkpoint is
about 4 MB, a vector Dreamer one about 33 MB for 2 seeds). Every (agent, task) uses the agent's one
preset (``--preset agent=name``); only action repeat may differ per suite, and the presets fix it
for DM Control. Nothing is tuned per task: where a task fails, the table shows it.

``report`` writes ``OUT/table.md`` (returns at fixed env-step counts, mean and per seed, with
wall-clock and device per row; the anchors beside at their env steps; the fraction of the better
anchor; the largest drop after the peak and the largest fall from any earlier high),
``OUT/table.json``, ``OUT/curves/<task>.png`` (each agent's seeds and mean) and
``OUT/all_tasks.png`` (every task, like DreamerV3's and TD-MPC2's score plots).
Units: our x axis is env (physics) steps; ANCHORS.md counts agent steps at action repeat 2, so
its 100k and 500k columns are 200k and 1M env steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent

TASKS = ("dmc/CartpoleBalance", "dmc/CartpoleSwingup", "dmc/PendulumSwingup", "dmc/ReacherEasy",
         "dmc/FingerSpin", "dmc/CheetahRun", "dmc/WalkerWalk")
AGENTS = ("pets", "dreamer", "mbpo", "sac")
# One preset per agent for the whole suite (wmjax presets AGENT --settings shows them).
PRESETS = {"pets": "dmc", "dreamer": "xsmall-cpu", "mbpo": "dmc"}
# brax's SAC: its DM Control defaults (action repeat 4, one env, one update per agent step).
REPORT_AT = (25_000, 50_000, 100_000, 200_000, 1_000_000)   # env steps
MATRIX_AT = 100_000   # the tasks x agents table: the CPU budget

# ANCHORS.md: return at 100k / 500k agent steps at action repeat 2 = 200k / 1M env steps.
# DreamerV3: training-episode returns, 5 seeds; TD-MPC2: evaluation returns, 3 seeds.
ANCHORS = {
    "dmc/CartpoleSwingup": {"DreamerV3": (528, 856), "TD-MPC2": (839, 876)},
    "dmc/CartpoleBalance": {"DreamerV3": (840, 991), "TD-MPC2": (998, 994)},
    "dmc/PendulumSwingup": {"DreamerV3": (830, 785), "TD-MPC2": (724, 842)},
    "dmc/WalkerWalk": {"DreamerV3": (475, 881), "TD-MPC2": (962, 979)},
    "dmc/CheetahRun": {"DreamerV3": (283, 596), "TD-MPC2": (519, 758)},
    "dmc/ReacherEasy": {"DreamerV3": (693, 962), "TD-MPC2": (937, 919)},
    "dmc/FingerSpin": {"DreamerV3": (766, 924), "TD-MPC2": (948, 985)},
}
ANCHOR_ENV_STEPS = (200_000, 1_000_000)

# What each agent logs that says why a row falls short: the model's error, what the planner or
# the imagination expects against what evaluation scores (optimism), and exploration. The report
# gives each at the run's first and last record (mean over seeds), and the last per seed, so a
# row whose seeds split (one learns, one does not) shows where they differ.
DIAGNOSTICS = {
    "pets": ("model/val_mse", "planner/return", "planner/std", "train/episode_return"),
    "dreamer": ("model/loss", "model/reward", "imagine/return", "actor/entropy",
                "actor/return_scale", "train/episode_return"),
    "mbpo": ("model/val_mse", "model/rollout_reward", "sac/entropy", "sac/alpha",
             "train/episode_return"),
    "sac": ("train/alpha", "train/entropy", "train/critic_loss"),   # brax's, at evaluations
}


def run_dir(out: pathlib.Path, agent: str, task: str) -> pathlib.Path:
  return out / agent / task.replace("/", "-")


def _status_path(out: pathlib.Path) -> pathlib.Path:
  return out / "status.json"


def read_status(out: pathlib.Path) -> dict:
  path = _status_path(out)
  return json.loads(path.read_text()) if path.exists() else {}


def _write_status(out: pathlib.Path, entries: dict) -> None:
  """Writes ``entries`` (run key -> entry) into the status file, keeping the other runs' entries
  as the file has them now: two drivers filling different rows of one table do not undo each
  other's bookkeeping."""
  status = {**read_status(out), **entries}
  tmp = _status_path(out).with_suffix(f".{os.getpid()}.tmp")
  tmp.write_text(json.dumps(status, indent=1, sort_keys=True) + "\n")
  os.replace(tmp, _status_path(out))


def device_label() -> str:
  """What a row ran on: the accelerator's kind, or the CPU's model, and the host's cores."""
  import jax

  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  if device.platform == "cpu":
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in
              (cpuinfo.read_text().splitlines() if cpuinfo.exists() else ())
              if line.startswith("model name")]
    kind = f"CPU, {models[0]}" if models else "CPU"
    return f"{kind}, {os.cpu_count()} cores"
  return f"{kind} ({device.platform}), {os.cpu_count()} CPU cores"


def _records(path: pathlib.Path) -> list[dict]:
  metrics = path / "metrics.jsonl"
  if not metrics.exists():
    return []
  return [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]


def agent_steps_for(agent: str, task: str, env_steps: int, preset: str | None, sets) -> int:
  """The run length as ``wmjax train AGENT --steps`` counts it for a budget of env steps."""
  if agent in ("sac", "ppo"):
    return env_steps
  from wmjax.train.algos import get_algo
  from wmjax.train.loop import settings_for

  config, _, _ = settings_for(get_algo(agent), task, sets, preset)
  return math.ceil(env_steps / config.action_repeat)


def _finished(path: pathlib.Path, env_steps: int, agent: str) -> bool:
  """Whether the run in ``path`` has done all it was asked (all its chunks; brax: its steps)."""
  records = _records(path)
  if not records:
    return False
  if agent in ("sac", "ppo"):
    return records[-1]["env_steps"] >= env_steps
  from wmjax.train import loop
  from wmjax.train.algos import get_algo

  saved = loop.read_run_config(path)
  algo = get_algo(agent)
  config, hyper = loop._saved_settings(algo, saved)  # noqa: SLF001
  chunks = algo.build(saved["env"], saved["steps"], config, hyper).program.chunks()
  return records[-1]["iteration"] >= len(chunks)


RANDOM_EPISODES = 16
# The random row's action repeat: Dreamer's, MBPO's and brax SAC's on DM Control (PETS's is 8).
RANDOM_ACTION_REPEAT = 4


def _random_path(out: pathlib.Path) -> pathlib.Path:
  return out / "random.json"


def read_random(out) -> dict:
  path = _random_path(pathlib.Path(out))
  return json.loads(path.read_text()) if path.exists() else {}


def random_returns(out, tasks=TASKS, episodes: int = RANDOM_EPISODES, echo=print,
                   action_repeat=lambda task: RANDOM_ACTION_REPEAT) -> dict:
  """Each task's uniform-random policy's return (``episodes`` episodes at ``action_repeat``,
  key 0), the floor of its row; computed once per task, kept in ``OUT/random.json``."""
  import jax

  from wmjax import envs
  from wmjax.offline.collect import RandomPolicy, policy_returns

  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  done = read_random(out)
  for task in tasks:
    if task in done:
      continue
    repeat = int(action_repeat(task))
    env = envs.make(task, action_repeat=repeat)
    returns = policy_returns(env, RandomPolicy(env.spec), jax.random.PRNGKey(0), episodes)
    done[task] = {"mean": float(returns.mean()), "std": float(returns.std()),
                  "episodes": int(episodes), "action_repeat": repeat}
    echo(f"random policy on {task}: {returns.mean():.1f} +- {returns.std():.1f} "
         f"({episodes} episodes)")
    _random_path(out).write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
  return done


def _has_checkpoint(path: pathlib.Path) -> bool:
  checkpoints = path / "checkpoints"
  return checkpoints.is_dir() and any(checkpoints.iterdir())


def _lock_path(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(path.name + ".lock")


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:   # someone else's process: alive
    return True
  return True


def claim(path: pathlib.Path) -> bool:
  """Takes the row's lock, ``<run folder>.lock`` holding this process's pid, so that several
  drivers (``--jobs``, or commands started by hand) never train one row at once. False if a
  live process holds it; a lock whose process is gone is taken over. Atomic on one host (the
  pid file is linked into place); not meant for a filesystem shared between hosts."""
  lock = _lock_path(path)
  lock.parent.mkdir(parents=True, exist_ok=True)
  tmp = lock.with_name(f"{lock.name}.{os.getpid()}.tmp")
  tmp.write_text(str(os.getpid()))
  try:
    for _ in range(2):
      try:
        os.link(tmp, lock)
        return True
      except FileExistsError:
        try:
          pid = int(lock.read_text())
        except (FileNotFoundError, ValueError):
          pid = 0
        if pid and _alive(pid):
          return False
        lock.unlink(missing_ok=True)   # stale: its driver was killed
    return False
  finally:
    tmp.unlink(missing_ok=True)


def release(path: pathlib.Path) -> None:
  lock = _lock_path(path)
  try:
    if int(lock.read_text()) == os.getpid():
      lock.unlink()
  except (FileNotFoundError, ValueError):
    pass


def run_suite(out, agents=AGENTS, tasks=TASKS, env_steps: int = 100_000, seeds: int = 2,
              presets: dict | None = None, sets: dict | None = None,
              minutes: float | None = None, progress: bool = True, echo=print) -> dict:
  """Trains what is missing of agents x tasks (resuming what stopped) until done or ``minutes``
  pass. Returns the status: per run, ``wall_s`` over sessions, ``device``, ``finished``.
  A row another live driver holds (its lock) is left to it; each row's status is read and
  written when the row is taken up, so drivers running side by side keep each other's."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  presets = {**PRESETS, **(presets or {})}
  sets = sets or {}
  random_returns(out, tasks, echo=echo)
  t0 = time.time()
  for task in tasks:
    for agent in agents:
      key = f"{agent} {task}"
      path = run_dir(out, agent, task)
      describe = dict(agent=agent, task=task, env_steps_budget=env_steps, seeds=seeds,
                      preset=presets.get(agent, "brax defaults"),
                      path=str(path.relative_to(out)))
      if path.exists() and _finished(path, env_steps, agent):
        entry = read_status(out).get(key)
        if entry is None or not entry.get("finished"):
          _write_status(out, {key: {"wall_s": 0.0, "sessions": 0, **(entry or {}), **describe,
                                    "finished": True}})
        continue
      left = None if minutes is None else minutes - (time.time() - t0) / 60
      if left is not None and left <= 0:
        echo(f"out of time: {key} not started")
        continue
      if not claim(path):
        echo(f"{key}: another driver is training it ({_lock_path(path)}); skipped")
        continue
      try:
        entry = {"wall_s": 0.0, "sessions": 0, **read_status(out).get(key, {}), **describe}
        _train_row(out, key, path, entry, agent, task, env_steps, seeds, presets.get(agent),
                   list(sets.get(agent, ())), left, progress, echo)
      finally:
        release(path)
  return read_status(out)


def _train_row(out, key, path, entry, agent, task, env_steps, seeds, preset, agent_sets, left,
               progress, echo) -> None:
  """Trains (or resumes) one claimed row and writes its status entry."""
  from wmjax.train import loop
  from wmjax.train.algos import get_algo

  algo = get_algo(agent)
  steps = agent_steps_for(agent, task, env_steps, preset, agent_sets)
  start = time.time()
  fresh = {"wall_s": 0.0, "sessions": 0}   # a run started again counts its own time only
  if algo.external_train is not None:   # brax: no resume; an unfinished run starts again
    if path.exists():
      echo(f"{key}: brax cannot resume; starting it again")
      shutil.rmtree(path)
    entry.update(fresh)
    path.parent.mkdir(parents=True, exist_ok=True)
    algo.external_train(task, steps=steps, seeds=seeds, out=path, sets=agent_sets,
                        progress=progress)
  else:
    resume = (path / "config.json").exists()
    if resume and not _has_checkpoint(path):
      # e.g. a fresh clone: metrics are committed, checkpoints are not (.gitignore)
      echo(f"{key}: {path} has no checkpoint to resume from; starting it again")
      shutil.rmtree(path)
      resume = False
    if not resume:
      entry.update(fresh)
    echo(f"{key}: {'resuming' if resume else 'starting'} ({steps} agent steps, "
         f"{seeds} seeds, preset {preset})")
    if resume:
      loop.train(agent, None, out=path, resume=True, progress=progress, minutes=left)
    else:
      loop.train(agent, task, out=path, steps=steps, seeds=seeds, sets=agent_sets,
                 preset=preset, progress=progress, minutes=left, echo=echo)
  entry["wall_s"] += time.time() - start
  entry["sessions"] += 1
  entry["device"] = device_label()
  entry["finished"] = _finished(path, env_steps, agent)
  _write_status(out, {key: entry})


def run_jobs(argv: list[str], jobs: int, echo=print) -> None:
  """``jobs`` drivers side by side, each this command as one job (``--jobs 1``): each takes the
  next row no other holds. On a CPU-only JAX one process keeps about one core busy (XLA:CPU
  runs most ops of a program on one thread), so ``--jobs`` = cores fills the machine; on a
  GPU the jobs share it (memory is allocated as needed, not preallocated)."""
  import subprocess

  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  children = []
  for i in range(jobs):
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), *argv, "--jobs", "1",
           "--no-report", "--no-progress"]
    children.append(subprocess.Popen(cmd, env=env))
    echo(f"job {i}: pid {children[-1].pid}")
  codes = [c.wait() for c in children]
  if any(codes):
    raise SystemExit(f"a job failed (exit codes {codes}); the others' rows are kept")


# --- the report ------------------------------------------------------------------------------

def curve(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """``(env_steps [N], returns [N, seeds])`` of a run's evaluations."""
  rows = [r for r in _records(path) if r.get("eval/episode_return") is not None]
  if not rows:
    return np.zeros(0), np.zeros((0, 0))
  steps = np.array([r["env_steps"] for r in rows], float)
  returns = np.array([np.atleast_1d(np.asarray(r["eval/episode_return"], float)) for r in rows])
  return steps, returns


def value_at(steps: np.ndarray, returns: np.ndarray, at: int) -> np.ndarray | None:
  """Each seed's return at the last evaluation at or before ``at`` env steps, if the run got
  within 5% of ``at`` (None otherwise)."""
  if steps.size == 0 or steps[-1] < 0.95 * at:
    return None
  index = int(np.searchsorted(steps, at, side="right")) - 1
  return returns[max(index, 0)]


def diagnostics(records: list[dict], keys) -> dict:
  """``{key: (first, last, last_per_seed)}``: each key's mean over seeds at the first and the
  last record that logged it, and that last record's value per seed (seeds without a value,
  JSON's null for NaN, are left out: a chunk in which no training episode ended logs none)."""
  out = {}
  for key in keys:
    values = []
    for r in records:
      seeds = [float(v) for v in np.atleast_1d(np.asarray(r.get(key), dtype=object)).ravel()
               if v is not None and math.isfinite(float(v))]
      if seeds:
        values.append(seeds)
    if values:
      out[key] = (float(np.mean(values[0])), float(np.mean(values[-1])), values[-1])
  return out


def largest_drop(values: np.ndarray) -> tuple[float, float, float]:
  """``(peak, largest drop after the peak, final)`` of a mean curve."""
  peak_index = int(np.argmax(values))
  peak = float(values[peak_index])
  return peak, float(peak - np.min(values[peak_index:])), float(values[-1])


def largest_fall(values: np.ndarray) -> float:
  """The largest fall from any earlier high: ``max_t (max(values[:t+1]) - values[t])``. A
  curve that collapses and then comes back above its old high shows a small drop after its
  peak, but not a small fall."""
  values = np.asarray(values, dtype=float)
  return float(np.max(np.maximum.accumulate(values) - values)) if values.size else 0.0


def _action_repeat(path: pathlib.Path) -> int | None:
  """The run's action repeat, as its ``config.json`` holds it (brax's runs too)."""
  try:
    return int(json.loads((path / "config.json").read_text())["config"]["action_repeat"])
  except (FileNotFoundError, KeyError, TypeError, ValueError):
    return None


def summarise(out, agents=AGENTS, tasks=TASKS, report_at=REPORT_AT) -> list[dict]:
  out = pathlib.Path(out)
  status = read_status(out)
  rows = []
  for task in tasks:
    for agent in agents:
      path = run_dir(out, agent, task)
      steps, returns = curve(path)
      entry = status.get(f"{agent} {task}", {})
      records = _records(path)
      # A driver stopped from outside never wrote its status for that session: the run's own
      # clock (wmjax runs add it up over resumes) then holds more, so the larger one counts.
      walls = [w for w in (entry.get("wall_s"), records[-1].get("wall_s") if records else None)
               if w]
      wall = max(walls) if walls else None
      row = {"agent": agent, "task": task, "evaluations": int(steps.size),
             "env_steps": int(steps[-1]) if steps.size else 0,
             "wall_s": wall, "device": entry.get("device"),
             "finished": entry.get("finished", False), "preset": entry.get("preset"),
             "action_repeat": _action_repeat(path), "at": {}}
      for at in report_at:
        v = value_at(steps, returns, at)
        if v is not None:
          row["at"][str(at)] = {"mean": float(np.mean(v)), "seeds": [float(x) for x in v]}
      row["diagnostics"] = diagnostics(records, DIAGNOSTICS.get(agent, ()))
      if steps.size:
        mean = returns.mean(axis=1)
        row["peak"], row["drop_after_peak"], row["final"] = largest_drop(mean)
        row["seed_drops"] = [largest_drop(returns[:, i])[1] for i in range(returns.shape[1])]
        row["largest_fall"] = largest_fall(mean)
        anchors = ANCHORS.get(task)
        if anchors:
          best = max(v[0] for v in anchors.values())   # the better anchor at 200k env steps
          ours = value_at(steps, returns, ANCHOR_ENV_STEPS[0])
          compared_at = ANCHOR_ENV_STEPS[0]
          if ours is None:   # not there yet: our last evaluation, fewer env steps than theirs
            ours, compared_at = returns[-1], int(steps[-1])
          row["vs_anchor"] = {"better_anchor_200k": best, "ours": float(np.mean(ours)),
                              "ours_at_env_steps": compared_at,
                              "fraction": float(np.mean(ours) / best)}
      rows.append(row)
  return rows


def _cell(row: dict, at: int) -> str:
  v = row["at"].get(str(at))
  if v is None:
    return "·"
  return f"{v['mean']:.0f} ({', '.join(f'{x:.0f}' for x in v['seeds'])})"


def _grid(rows: list[dict]) -> tuple[list[str], list[str], dict]:
  """``(agents, tasks, {(task, agent): row})`` in the rows' order, for the tasks x agents tables."""
  by = {(r["task"], r["agent"]): r for r in rows}
  return (list(dict.fromkeys(a for _, a in by)), list(dict.fromkeys(t for t, _ in by)), by)


def matrix(rows: list[dict], at: int = 100_000, random: dict | None = None) -> str:
  """Tasks x agents at ``at`` env steps, as DreamerV3's and TD-MPC2's tables, the anchors at
  their 200k env steps beside and the random policy first; a run short of ``at`` shows its last
  evaluation, marked with its env steps; ``·``: not started."""
  agents, tasks, by = _grid(rows)
  random = random or {}
  lines = [f"| task | random | {' | '.join(agents)} | DreamerV3 | TD-MPC2 |",
           "|" + "---|" * (len(agents) + 4)]
  for task in tasks:
    cells = [f"{random[task]['mean']:.0f}" if task in random else "·"]
    for agent in agents:
      row = by.get((task, agent))
      if row is None or not row["evaluations"]:
        cells.append("·")
      elif str(at) in row["at"]:
        cells.append(f"{row['at'][str(at)]['mean']:.0f}")
      else:
        cells.append(f"{row['final']:.0f} (at {row['env_steps'] / 1000:g}k)")
    anchors = ANCHORS.get(task, {})
    lines.append(f"| {task} | {' | '.join(cells)} | {anchors.get('DreamerV3', ('·',))[0]} | "
                 f"{anchors.get('TD-MPC2', ('·',))[0]} |")
  return "\n".join(lines) + "\n"


def wall_matrix(rows: list[dict]) -> str:
  """Tasks x agents: each row's wall-clock in minutes (over all its sessions), ``+`` where it
  has not finished, with the devices the rows ran on below."""
  agents, tasks, by = _grid(rows)
  lines = [f"| task | {' | '.join(agents)} |", "|" + "---|" * (len(agents) + 1)]
  for task in tasks:
    cells = []
    for agent in agents:
      row = by.get((task, agent))
      if row is None or not row.get("wall_s"):
        cells.append("·")
      else:
        cells.append(f"{row['wall_s'] / 60:.0f}" + ("" if row.get("finished") else "+"))
    lines.append(f"| {task} | {' | '.join(cells)} |")
  devices = sorted({r["device"] for r in rows if r.get("device")})
  if devices:
    lines += ["", "Ran on: " + "; ".join(devices) + "."]
  return "\n".join(lines) + "\n"


def markdown(rows: list[dict], report_at=REPORT_AT, matrix_at: int = MATRIX_AT,
             random: dict | None = None) -> str:
  reached = [at for at in report_at if any(str(at) in r["at"] for r in rows)] or [report_at[0]]
  lines = [f"Mean evaluation return at {matrix_at / 1000:g}k env steps (anchors: at 200k env "
           f"steps; random: a uniform random policy, {RANDOM_EPISODES} episodes).", "",
           matrix(rows, matrix_at, random),
           "Wall-clock of each row in minutes, both seeds in one program (`+`: not finished; "
           "`·`: not started).", "", wall_matrix(rows),
           "Evaluation return, mean (per seed), at env steps; `·`: not reached. Anchors "
           "(ANCHORS.md) at 200k env steps = 100k agent steps at action repeat 2.", "",
           "| task | agent | " + " | ".join(f"{a / 1000:g}k" for a in reached)
           + " | DreamerV3 200k | TD-MPC2 200k | ours / better anchor | peak / drop after "
           "/ final / largest fall | action repeat | wall-clock | device |",
           "|" + "---|" * (len(reached) + 9)]
  for row in rows:
    anchors = ANCHORS.get(row["task"], {})
    vs = row.get("vs_anchor")
    frac = (f"{100 * vs['fraction']:.0f}% at {vs['ours_at_env_steps'] // 1000}k"
            if vs else "·")
    stab = (f"{row['peak']:.0f} / {row['drop_after_peak']:.0f} / {row['final']:.0f} / "
            f"{row['largest_fall']:.0f}" if "peak" in row else "·")
    wall = f"{row['wall_s'] / 60:.0f} min" if row.get("wall_s") else "·"
    lines.append(
        f"| {row['task']} | {row['agent']} | " + " | ".join(_cell(row, a) for a in reached)
        + f" | {anchors.get('DreamerV3', ('·',))[0]} | {anchors.get('TD-MPC2', ('·',))[0]} | "
        f"{frac} | {stab} | {row.get('action_repeat') or '·'} | {wall} | "
        f"{row.get('device') or '·'} |")
  measured = [r for r in rows if r.get("diagnostics")]
  if measured:
    lines += ["", "What the runs logged, first -> last record (mean over seeds; per seed at the "
              "last): the model's error, what the planner or imagination expects (against the "
              "evaluation return above), exploration.", "", "| task | agent | logged |",
              "|---|---|---|"]
    for row in measured:
      text = "; ".join(_logged(k, *v) for k, v in row["diagnostics"].items())
      lines.append(f"| {row['task']} | {row['agent']} | {text} |")
  return "\n".join(lines) + "\n"


def _logged(key: str, first: float, last: float, last_seeds=()) -> str:
  """``key first -> last (seed, seed)``; the per-seed part only where there are two or more."""
  seeds = f" ({', '.join(f'{v:.3g}' for v in last_seeds)})" if len(last_seeds) > 1 else ""
  return f"{key} {first:.3g} -> {last:.3g}{seeds}"


def figures(out, rows: list[dict], agents=AGENTS, tasks=TASKS) -> list[pathlib.Path]:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out = pathlib.Path(out)
  random = read_random(out)
  (out / "curves").mkdir(parents=True, exist_ok=True)
  colours = {a: f"C{i}" for i, a in enumerate(agents)}
  written = []
  cols = min(4, len(tasks))
  fig_all, axes = plt.subplots(math.ceil(len(tasks) / cols), cols,
                               figsize=(4 * cols, 3.2 * math.ceil(len(tasks) / cols)),
                               squeeze=False)
  for ax_all, task in zip(axes.flat, tasks, strict=False):
    fig, ax = plt.subplots(figsize=(6, 4))
    for agent in agents:
      steps, returns = curve(run_dir(out, agent, task))
      if not steps.size:
        continue
      for i in range(returns.shape[1]):
        ax.plot(steps, returns[:, i], color=colours[agent], alpha=0.3, lw=0.8)
      ax.plot(steps, returns.mean(1), color=colours[agent], lw=2, label=agent)
      ax_all.plot(steps, returns.mean(1), color=colours[agent], lw=1.5, label=agent)
    if task in random:
      for a in (ax, ax_all):
        a.axhline(random[task]["mean"], color="0.5", ls="--", lw=1, label="random policy")
    for name, marker in (("DreamerV3", "o"), ("TD-MPC2", "s")):
      if name in ANCHORS.get(task, {}):
        for a in (ax, ax_all):
          a.scatter(ANCHOR_ENV_STEPS[:1], ANCHORS[task][name][:1], marker=marker, color="k",
                    zorder=5, label=f"{name} (200k env steps)")
    for a in (ax, ax_all):
      a.set_title(task)
      a.set_xlabel("env steps")
      a.grid(alpha=0.3)
    ax.set_ylabel("evaluation return")
    ax.legend(fontsize=8)
    path = out / "curves" / f"{task.replace('/', '-')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
  for ax in list(axes.flat)[len(tasks):]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  if handles:
    fig_all.legend(handles, labels, loc="lower right", fontsize=8)
  fig_all.tight_layout()
  path = out / "all_tasks.png"
  fig_all.savefig(path, dpi=110)
  plt.close(fig_all)
  written.append(path)
  return written


def table_scope(out, agents, tasks) -> tuple[list[str], list[str]]:
  """The agents and tasks a table written after ``run`` covers: those run now, those of every
  run the folder's status holds (a driver filling one row must not drop the others), and the
  default table's agents and tasks when the tasks run now are DM Control's."""
  held = read_status(pathlib.Path(out)).values()
  suite = set(tasks) <= set(TASKS)

  def union(defaults, given, field):
    base = list(defaults) if suite else []
    return list(dict.fromkeys([*base, *given, *(e[field] for e in held if e.get(field))]))

  return union(AGENTS, agents, "agent"), union(TASKS, tasks, "task")


def report(out, agents=AGENTS, tasks=TASKS, report_at=REPORT_AT) -> list[dict]:
  out = pathlib.Path(out)
  rows = summarise(out, agents, tasks, report_at)
  (out / "table.md").write_text(markdown(rows, report_at, random=read_random(out)))
  (out / "table.json").write_text(json.dumps(rows, indent=1) + "\n")
  figures(out, rows, agents, tasks)
  return rows


def _pairs(items, what: str) -> dict:
  out: dict = {}
  for item in items or ():
    if "=" not in item:
      raise SystemExit(f"--{what} takes agent=value, got {item!r}")
    agent, value = item.split("=", 1)
    out.setdefault(agent, []).append(value) if what == "set" else out.update({agent: value})
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n".join(__doc__.splitlines()[2:]))
  parser.add_argument("command", choices=("run", "random", "report"))
  parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "dmc-table"))
  parser.add_argument("--agents", default=",".join(AGENTS))
  parser.add_argument("--tasks", default=",".join(TASKS))
  parser.add_argument("--env-steps", type=int, default=100_000, help="budget per run")
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--minutes", type=float, help="stop cleanly after this much wall-clock")
  parser.add_argument("--preset", action="append", help="agent=preset (one for the suite)")
  parser.add_argument("--set", action="append", help="agent=key=value, a setting for every task")
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--jobs", type=int, default=1,
                      help="drivers side by side, each on the next row no other holds (CPU: "
                      "one per core)")
  parser.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.jobs < 1:
    parser.error(f"--jobs must be >= 1, got {args.jobs}")
  agents, tasks = args.agents.split(","), args.tasks.split(",")
  if args.command == "random":   # only the random policy's returns (``run`` computes them too)
    random_returns(args.out, tasks)
  if args.command == "run" and args.jobs > 1:
    random_returns(args.out, tasks)   # once, before the jobs
    argv = list(sys.argv[1:] if argv is None else argv)
    run_jobs([a for i, a in enumerate(argv) if a != "--jobs"
              and not (i and argv[i - 1] == "--jobs") and not a.startswith("--jobs=")],
             args.jobs)
  elif args.command == "run":
    run_suite(args.out, agents, tasks, args.env_steps, args.seeds, _pairs(args.preset, "preset"),
              {a: v for a, v in _pairs(args.set, "set").items()}, args.minutes,
              not args.no_progress)
  if args.no_report:
    return 0
  if args.command == "run":   # the table keeps every row the folder has, not only this run's
    agents, tasks = table_scope(args.out, agents, tasks)
  rows = report(args.out, agents, tasks)
  print((pathlib.Path(args.out) / "table.md").read_text())
  print(f"{sum(r['finished'] for r in rows)} of {len(rows)} runs finished; figures in {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
