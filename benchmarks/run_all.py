"""The benchmark suite: every throughput benchmark in one run, with scaling plots.

Sections (``--only`` picks some; each gets a share of ``--budget-s``):

- ``envs``: environment steps/s of one env of each suite and of vmapped batches (a jitted
  ``lax.scan`` of ``--env-steps`` steps of ``vmap(env.step)`` with random actions);
- ``pets``: seconds per PETS planned action, one env and vmapped batches (``pets_plan.py``);
- ``dreamer``: Dreamer imagination, updates and a training iteration
  (``dreamer_throughput.py``);
- ``muzero``: MuZero search and a self-play training iteration (``muzero_search.py``);
- ``agents``: one full training iteration of each agent (PETS, Dreamer, MuZero, MBPO, World
  Models, Dyna) with a small config on a small environment, vmapped over N runs (seeds) for N
  in ``--runs``: seconds per iteration, runs x iterations per second and time(N) / time(1)
  (``ratio_64_vs_1`` for PETS and Dreamer is the headline);
- ``devices``: the PETS iteration with the run axis sharded over 1, 2, 4, 8 devices
  (``NamedSharding`` over a ``runs`` mesh axis; GSPMD partitions the vmapped program). On a CPU
  this runs in a subprocess with fake devices (``--xla_force_host_platform_device_count``):
  they are threads on the same cores, so any gain stops at the core count.

Every figure is the median of timed calls after a warm-up call; compile time (trace + lower +
compile) is reported apart. Where the matrix products can be counted (PETS planning and the
agents' iterations: ``dot_general`` and convolutions in the traced program, scan bodies times
their length) each figure names its floor: those FLOPs over the device's measured f32 matmul
rate; ``achieved_over_floor`` is floor / time (1 would be matmul peak).

Budget: each section gets a share of what is left of ``--budget-s``. Sizes run smallest first
across a section's cases (every env gets its single-env figure before any gets 1024; PETS and
Dreamer get 1 and 64 runs before the other agents get any), and a size whose estimated cost
(from the sizes measured: compile + calls) does not fit what is left is skipped and marked
``"skipped": "budget"``; one whose estimated time per call passes ``--max-seconds`` is marked
``"skipped": "max-seconds"``.

Writes ``<out-dir>/<device>-<YYYY-MM-DD>.json`` after each section (a killed run keeps what it
finished), then ``<same>.md`` (a markdown table) and ``<same>-scaling.png`` (throughput against
vmapped runs and against devices; needs matplotlib, which is imported only to plot).

    python benchmarks/run_all.py                              # the suite: ~15 min on 2 cores
    python benchmarks/run_all.py --only agents --runs 1 4 64
    python benchmarks/run_all.py --only agents --agents pets dreamer --runs 1 64 1024 \
        --budget-s 100 --max-seconds 5                       # the headline on a GPU, ~2 min
    python benchmarks/run_all.py --plot-only benchmarks/results/cpu-2026-11-26.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from timing import time_calls  # benchmarks/timing.py (this folder is on sys.path)

from wmjax.train.common import place_runs, run_mesh, stack_hyper

HERE = pathlib.Path(__file__).resolve().parent
SECTIONS = ("envs", "pets", "dreamer", "muzero", "agents", "devices")
# Each section's share of what is left of the budget when it starts.
SHARES = {"envs": 0.20, "pets": 0.05, "dreamer": 0.10, "muzero": 0.06, "agents": 0.50,
          "devices": 0.09}
ENV_SUITES = ("fast/PointMass", "grid/dyna_maze", "pgx/connect_four", "dmc/CartpoleSwingup",
              "pets/cartpole", "brax/halfcheetah")
AGENTS = ("pets", "dreamer", "muzero", "mbpo", "worldmodels", "dyna")
AGENT_WEIGHTS = {"pets": 3.0, "dreamer": 3.0}   # the headline ratios; the others get 1
HEADLINE_AGENTS = ("pets", "dreamer")   # their 64-vs-1 ratio is measured before the rest
DREAMER_MIN_S = 60.0   # the dreamer section runs only with this much of its budget left
THROUGHPUT_UNITS = {"envs": "env steps/s", "agents": "runs x iterations/s",
                    "devices": "runs x iterations/s"}


# ---------------------------------------------------------------------------------------------
# Timing, budget, FLOPs


class Budget:
  """A wall-clock deadline; ``share`` hands part of what is left to a sub-task."""

  def __init__(self, seconds: float):
    self.seconds = seconds
    self.deadline = time.perf_counter() + seconds

  def left(self) -> float:
    return self.deadline - time.perf_counter()

  def share(self, weight: float, remaining_weight: float) -> Budget:
    return Budget(max(0.0, self.left()) * weight / max(remaining_weight, 1e-9))


def measure(jitted, args: tuple, repeats: int, max_seconds: float, warm: int = 0,
            count_flops: bool = False):
  """Traces and compiles ``jitted`` for ``args`` (timed apart: ``compile_s``), runs ``warm``
  chained calls (the first output replaces the first argument), then times calls as the other
  benchmarks do. With ``count_flops``, also ``matmul_flops`` and ``flops_exact`` of the traced
  program (see :func:`matmul_flops`; not part of ``compile_s``).

  Returns ``(stats, args, compiled)``, ``args`` after the warm calls.
  """
  t0 = time.perf_counter()
  traced = jitted.trace(*args)
  trace_s = time.perf_counter() - t0
  counted = count_jaxpr_flops(traced.jaxpr) if count_flops else None
  t0 = time.perf_counter()
  compiled = traced.lower().compile()
  compile_s = trace_s + time.perf_counter() - t0
  for _ in range(warm):
    args = (compiled(*args)[0], *args[1:])
  first, median, times = time_calls(compiled, args, repeats, max_seconds)
  stats = {"seconds": median, "compile_s": compile_s, "first_call_s": first,
           "timed_calls": len(times), "seconds_all": times}
  if counted is not None:
    stats["matmul_flops"], stats["flops_exact"] = counted
  flops = _xla_flops(compiled)
  if flops is not None:
    stats["xla_cost_flops"] = flops
  return stats, args, compiled


def _xla_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 (not every backend implements it)
    return None
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"]) if cost and "flops" in cost else None


def matmul_flops(fn: Callable, *args) -> tuple[float, bool]:
  """FLOPs of the matrix products in ``fn(*args)``: ``(flops, exact)``; see
  :func:`count_jaxpr_flops`."""
  return count_jaxpr_flops(jax.make_jaxpr(fn)(*args))


def count_jaxpr_flops(closed_jaxpr) -> tuple[float, bool]:
  """FLOPs of the matrix products in a traced program: ``(flops, exact)``.

  Counts ``dot_general`` (2 x output size x contracted size) and convolutions in the traced
  program, a scan body times its length, the costlier branch of a ``cond``. A ``while_loop``'s
  trip count is unknown at trace time: its body counts once and ``exact`` is False (a lower
  bound). XLA's own ``cost_analysis`` is no substitute: it counts every loop body once.
  """
  inexact = []

  def jaxprs_in(value):
    if hasattr(value, "eqns"):
      yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
      yield value.jaxpr
    elif isinstance(value, tuple | list):
      for v in value:
        yield from jaxprs_in(v)

  def count(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
      name = eqn.primitive.name
      if name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
      elif name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        rhs_spec = eqn.params["dimension_numbers"].rhs_spec   # (out, in, *spatial)
        per_output = math.prod(rhs[d] for d in rhs_spec[1:])
        total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * per_output
      elif name == "scan":
        total += eqn.params["length"] * count(eqn.params["jaxpr"].jaxpr)
      elif name == "cond":
        total += max(count(b.jaxpr) for b in eqn.params["branches"])
      else:
        if name == "while":
          inexact.append(True)
        for value in eqn.params.values():
          for sub in jaxprs_in(value):
            total += count(sub)
    return total

  return count(closed_jaxpr.jaxpr), not inexact


def measure_matmul(n: int, repeats: int = 5) -> dict:
  """The device's f32 matmul rate: an ``n x n`` by ``n x n`` product, 2 n^3 / median time."""
  x = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  _, median, times = time_calls(f, (x, x), repeats)
  return {"n": n, "dtype": "float32", "precision": "JAX default (TF32 on recent NVIDIA GPUs)",
          "seconds": median, "flops_per_s": 2.0 * n ** 3 / median}


def tile_runs(state, runs: int, seed: int):
  """A one-run state ``[1, ...]`` repeated to ``[runs, ...]``, each run with its own key.

  Every size starts from the same initialised (and, where needed, warmed) run instead of
  ``vmap(init)`` per size: one init program to compile instead of one per size; the timed
  iteration is the same program either way.
  """
  state = jax.tree.map(lambda x: jnp.repeat(x, runs, axis=0), state)
  fields = getattr(state, "_fields", ())
  if "key" in fields:
    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    if jnp.issubdtype(state.key.dtype, jax.dtypes.prng_key):
      keys = jax.random.wrap_key_data(keys)
    state = state._replace(key=keys.reshape(state.key.shape).astype(state.key.dtype))
  return state


def _estimate(done: list[tuple[int, float, float]], n: int,
              grows: bool = True) -> tuple[float, float] | None:
  """(compile s, seconds per call) expected at size ``n`` from the sizes measured so far: the
  mean compile time, and the time interpolated log-log between the measured sizes around ``n``
  (above the largest: its time scaled as ``n^p``, ``p`` from the last two sizes in [0.3, 1], 1
  with one size, as a saturated device scales; below the smallest: the smallest's time).
  Without ``grows`` (the same work spread over ``n`` devices) the nearest measured time."""
  if not done:
    return None
  points = sorted((m, t) for m, t, _ in done)
  compile_s = sum(c for _, _, c in done) / len(done)
  if not grows:
    return compile_s, min(points, key=lambda mt: abs(math.log(mt[0] / n)))[1]
  lower = [(m, t) for m, t in points if m <= n]
  upper = [(m, t) for m, t in points if m >= n]
  if lower and upper:
    (n0, t0), (n1, t1) = lower[-1], upper[0]
    if n1 == n0:
      return compile_s, t0
    p = math.log(t1 / t0) / math.log(n1 / n0)
    return compile_s, t0 * (n / n0) ** p
  if upper:
    return compile_s, upper[0][1]
  (n1, t1), p = points[-1], 1.0
  if len(points) >= 2:
    n0, t0 = points[-2]
    p = min(1.0, max(0.3, math.log(t1 / t0) / math.log(n1 / n0)))
  return compile_s, t1 * (n / n1) ** p


class Family:
  """One case measured at several sizes (envs, runs, devices). It remembers what it measured,
  to estimate what the next size will cost, and keeps one row per size.

  ``prepare()`` (built on the first size that runs) returns ``run_case(n) -> row`` with at least
  ``seconds``, ``compile_s`` and ``throughput``; ``ratio_vs_1`` (time over the time at size 1)
  is added to every measured row. A size that raises is recorded with its error, and the
  larger sizes are then skipped (all sizes, if ``prepare`` raised).
  """

  def __init__(self, section: str, case: str, unit: str, prepare: Callable[[], Callable],
               grows: bool = True):
    self.section, self.case, self.unit = section, case, unit
    self.grows = grows   # whether the work grows with the size (not so for devices)
    self.prepare = prepare
    self.run_case: Callable | None = None
    self.rows: dict[int, dict] = {}
    self.done: list[tuple[int, float, float]] = []
    self.error: tuple[int, str] | None = None   # (size, message) of the first failure
    self.failed_prepare = False

  def _skip(self, n: int, why: str, budget: Budget, estimate_s: float | None = None) -> None:
    row = {"section": self.section, "case": self.case, "n": n, "unit": self.unit,
           "skipped": why}
    if estimate_s is not None:
      row["estimate_s"] = round(estimate_s, 2)
    self.rows[n] = row
    print(f"[{self.section}] {self.case} N={n}: skipped ({why}"
          + (f", estimated {estimate_s:.0f} s" if estimate_s is not None else "")
          + f", {max(0.0, budget.left()):.0f} s left)", flush=True)

  def try_size(self, n: int, budget: Budget, args) -> None:
    if n in self.rows and "skipped" not in self.rows[n]:
      return
    if self.error is not None and (self.failed_prepare or n > self.error[0]):
      return self._skip(n, f"error at N={self.error[0]}", budget)
    estimate = _estimate(self.done, n, self.grows)
    if estimate is None:
      if budget.left() <= 0:
        return self._skip(n, "budget", budget)
    else:
      compile_est, call_est = estimate
      timed = min(args.repeats, max(1, math.ceil(args.max_seconds / max(call_est, 1e-9))))
      cost = compile_est + call_est * (1 + timed)
      if call_est > args.max_seconds:
        return self._skip(n, "max-seconds", budget, cost)
      if cost > budget.left():
        return self._skip(n, "budget", budget, cost)
    row = {"section": self.section, "case": self.case, "n": n, "unit": self.unit}
    try:
      if self.run_case is None:
        self.failed_prepare = True
        self.run_case = self.prepare()
        self.failed_prepare = False
      row.update(self.run_case(n))
    except Exception as e:  # noqa: BLE001 (a size that fails, e.g. out of memory, is recorded)
      row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
      if self.error is None or n < self.error[0]:
        self.error = (n, row["error"])
      self.rows[n] = row
      print(f"[{self.section}] {self.case} N={n}: error {row['error']}", flush=True)
      return
    row["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    self.done.append((n, row["seconds"], row["compile_s"]))
    self.rows[n] = row
    base = self.rows.get(1, {}).get("seconds")
    print(f"[{self.section}] {self.case} N={n}: {_fmt_time(row['seconds'])} per call, "
          f"{_fmt_num(row['throughput'])} {self.unit}, compile {row['compile_s']:.1f} s"
          + (f", floor {_fmt_time(row['floor_s'])}" if row.get("floor_s") else "")
          + (f", time/time(N=1) {row['seconds'] / base:.2f}" if base and n != 1 else ""),
          flush=True)

  def sorted_rows(self) -> list[dict]:
    rows = [self.rows[n] for n in sorted(self.rows)]
    base = self.rows.get(1, {}).get("seconds")
    for row in rows:
      if base and "seconds" in row:
        row["ratio_vs_1"] = row["seconds"] / base
    return rows


Pass = tuple[Sequence[Family], Sequence[int], float]   # (families, sizes, budget fraction)


def run_passes(passes: Sequence[Pass], budget: Budget, args,
               weights: dict[str, float] | None = None,
               on_progress: Callable[[list[dict]], None] | None = None) -> None:
  """Measures families at sizes, pass by pass. A pass may spend its fraction of what is left of
  ``budget``, shared between its families by weight (by case name; 1 if absent); a size that
  did not fit may still run in a later pass. ``on_progress(rows)`` gets every family's rows
  after each size (to save them: a run killed part-way keeps what it measured)."""
  everyone = list(dict.fromkeys(f for families, _, _ in passes for f in families))
  for families, sizes, fraction in passes:
    if not families or not sizes:
      continue
    pass_budget = budget.share(fraction, 1.0)
    w = [(weights or {}).get(f.case, 1.0) for f in families]
    for i, family in enumerate(families):
      sub = pass_budget.share(w[i], sum(w[i:]))
      for n in sizes:
        family.try_size(n, sub, args)
        if on_progress is not None:
          on_progress(family_rows(everyone))


def size_passes(families: Sequence[Family], sizes: Sequence[int]) -> list[Pass]:
  """One pass per size, smallest first, each over every family: every case gets its small
  sizes before any case gets a large one. A pass may spend 70% of what is left, the last all."""
  sizes = sorted(set(sizes))
  return [(families, [n], 1.0 if i == len(sizes) - 1 else 0.7) for i, n in enumerate(sizes)]


def family_rows(families: Sequence[Family]) -> list[dict]:
  return [row for family in families for row in family.sorted_rows()]


# ---------------------------------------------------------------------------------------------
# envs


def _env_program(name: str, n: int, steps: int):
  """A jitted ``key -> total reward`` that resets ``n`` envs and steps them ``steps`` times
  with random actions (pgx games: random legal moves, finished games restarted)."""
  if name.startswith("pgx/"):
    from wmjax.envs.pgx import make_game

    game = make_game(name)

    def run(key):
      key_init, key_steps = jax.random.split(key)
      games = jax.vmap(game.init)(jax.random.split(key_init, n))

      def body(games, key_t):
        key_act, key_step, key_reset = jax.random.split(key_t, 3)
        action = jax.random.categorical(
            key_act, jnp.where(games.legal, 0.0, -jnp.inf)).astype(jnp.int32)
        games = jax.vmap(game.step)(games, action, jax.random.split(key_step, n))
        fresh = jax.vmap(game.init)(jax.random.split(key_reset, n))
        done = games.terminated | games.truncated
        games = jax.tree.map(
            lambda f, g: jnp.where(done.reshape(done.shape + (1,) * (g.ndim - 1)), f, g),
            fresh, games)
        return games, jnp.sum(games.reward)

      _, rewards = jax.lax.scan(body, games, jax.random.split(key_steps, steps))
      return jnp.sum(rewards)

    return jax.jit(run)

  env = _make_env(name)
  spec = env.spec

  def run(key):
    key_reset, key_steps = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(key_reset, n))

    def body(state, key_t):
      if spec.discrete:
        action = jax.random.randint(key_t, (n,), 0, spec.num_actions)
      else:
        action = jax.random.uniform(key_t, (n, *spec.action_shape), minval=spec.action_low,
                                    maxval=spec.action_high)
      state = jax.vmap(env.step)(state, action)
      return state, jnp.sum(state.reward)

    _, rewards = jax.lax.scan(body, state, jax.random.split(key_steps, steps))
    return jnp.sum(rewards)

  return jax.jit(run)


_ENVS: dict[str, Any] = {}


def _make_env(name: str):
  if name not in _ENVS:
    from wmjax import envs

    _ENVS[name] = envs.make(name)
  return _ENVS[name]


def section_envs(args, budget: Budget, ctx: dict) -> dict:
  builds: dict[str, float] = {}

  def family(name: str) -> Family:
    def prepare():
      t0 = time.perf_counter()
      if name.startswith("pgx/"):
        from wmjax.envs.pgx import make_game

        make_game(name)
      else:
        _make_env(name)
      builds[name] = time.perf_counter() - t0
      print(f"[envs] {name}: built in {builds[name]:.1f} s", flush=True)

      def run_case(n):
        fn = _env_program(name, n, args.env_steps)
        stats, _, _ = measure(fn, (jax.random.PRNGKey(n),), args.repeats, args.max_seconds)
        stats.pop("xla_cost_flops", None)
        return {**stats, "steps": args.env_steps,
                "throughput": n * args.env_steps / stats["seconds"], "build_s": builds[name]}

      return run_case

    return Family("envs", name, THROUGHPUT_UNITS["envs"], prepare)

  families = [family(name) for name in args.envs]
  run_passes(size_passes(families, args.env_batches), budget, args,
             on_progress=ctx.get("on_progress"))
  rows = family_rows(families)
  return {"rows": rows, "env_build_s": builds, "steps_per_call": args.env_steps,
          "actions": "uniform random (pgx: random legal moves, finished games restarted); "
                     "registry envs are not reset within a call (a finished episode keeps "
                     "stepping, as brax's EpisodeWrapper does)"}


# ---------------------------------------------------------------------------------------------
# pets (pets_plan.py), dreamer (dreamer_throughput.py), muzero (muzero_search.py)


def section_pets(args, budget: Budget, ctx: dict) -> dict:
  import pets_plan

  cfg = pets_plan.CONFIGS[args.pets_config]
  act, model_state, plan_state = pets_plan.build(cfg)
  obs = jnp.zeros(cfg["obs_size"]).at[1].set(0.1)
  evals = cfg["population"] * cfg["num_particles"] * cfg["horizon"] * cfg["iterations"]
  counted = evals * pets_plan.model_flops_per_eval(cfg)
  traced, exact = matmul_flops(act, model_state, jax.random.PRNGKey(1), obs, plan_state)
  batched = jax.jit(jax.vmap(act, in_axes=(None, 0, 0, 0)))
  rate = ctx["matmul"]["flops_per_s"]

  def run_case(b):
    keys = jax.random.split(jax.random.PRNGKey(2), b)
    obs_b = jnp.tile(obs, (b, 1))
    plan_b = jax.tree.map(lambda x: jnp.broadcast_to(x, (b, *x.shape)), plan_state)
    stats, _, _ = measure(batched, (model_state, keys, obs_b, plan_b), args.repeats,
                          args.max_seconds)
    floor = b * counted / rate
    return {**stats, "throughput": b / stats["seconds"], "floor_s": floor,
            "achieved_over_floor": floor / stats["seconds"],
            "achieved_flops_per_s": b * counted / stats["seconds"]}

  family = Family("pets", f"plan ({args.pets_config})", "planned actions/s", lambda: run_case)
  run_passes(size_passes([family], args.pets_batches), budget, args,
             on_progress=ctx.get("on_progress"))
  rows = family_rows([family])
  return {"rows": rows, "config_name": args.pets_config, "config": cfg,
          "model_evals_per_action": evals, "model_flops_per_action": counted,
          "traced_matmul_flops_per_action": traced, "traced_flops_exact": exact,
          "note": "envs planned at once share one model (pets_plan.py's batches)"}


def section_dreamer(args, budget: Budget, ctx: dict) -> dict:
  del ctx
  import dreamer_throughput

  # bench_preset times all it is given and cannot stop part-way: about a minute on a CPU.
  if budget.left() < DREAMER_MIN_S:
    print(f"[dreamer] skipped (budget: {budget.left():.0f} s left, needs about "
          f"{DREAMER_MIN_S:.0f} s)", flush=True)
    return {"rows": [], "skipped": "budget"}

  ns = types.SimpleNamespace(starts=args.dreamer_starts, batches=args.dreamer_batches,
                             repeats=args.repeats, max_seconds=args.max_seconds)
  preset = dreamer_throughput.bench_preset(args.dreamer_env, args.dreamer_size, ns)
  rows = []
  for r in preset["imagination"]:
    rows.append({"section": "dreamer", "case": f"imagine x{r['horizon']} ({args.dreamer_size})",
                 "n": r["starts"], "unit": "imagined steps/s", "seconds": r["seconds"],
                 "compile_s": r["compile_seconds"], "timed_calls": r["timed_calls"],
                 "throughput": r["imagined_steps_per_s"]})
  for r in preset["updates"]:
    rows.append({"section": "dreamer", "case": f"update x{r['seq_len']} ({args.dreamer_size})",
                 "n": r["batch"], "unit": "replayed steps/s", "seconds": r["seconds"],
                 "compile_s": r["compile_seconds"], "timed_calls": r["timed_calls"],
                 "throughput": r["replayed_steps_per_s"]})
  r = preset["iteration"]
  rows.append({"section": "dreamer", "case": f"iteration ({args.dreamer_size})",
               "n": r["num_envs"], "unit": "env steps/s", "seconds": r["seconds"],
               "compile_s": r["compile_seconds"], "timed_calls": r["timed_calls"],
               "throughput": r["env_steps_per_s"]})
  return {"rows": rows, "env": args.dreamer_env, "preset": preset}


def section_muzero(args, budget: Budget, ctx: dict) -> dict:
  import muzero_search

  from wmjax.agents import muzero as muzero_lib
  from wmjax.envs.pgx import make_game

  game = make_game(args.muzero_game)
  config = muzero_lib.default_config(args.muzero_game)
  hyper = muzero_lib.default_hyper(args.muzero_game)
  agent = muzero_lib.make_muzero(game, config)
  params = jax.jit(agent.net.init)(jax.random.PRNGKey(0))
  families = []
  for sims in args.muzero_simulations:
    def run_case(b, sims=sims):
      r = muzero_search.bench_search(agent, game, params, hyper, config, [sims], [b],
                                     args.repeats, args.max_seconds)[0]
      return {"seconds": r["seconds"], "compile_s": r["compile_seconds"],
              "timed_calls": r["timed_calls"], "throughput": r["simulations_per_s"],
              "positions_per_s": r["positions_per_s"]}

    families.append(Family("muzero", f"search {sims} sims", "simulations/s",
                           lambda run_case=run_case: run_case))
  # The search gets 60% of the section; the training iteration the rest.
  run_passes(size_passes(families, args.muzero_batches), budget.share(0.6, 1.0), args,
             on_progress=ctx.get("on_progress"))
  rows = family_rows(families)
  iteration = None
  if budget.left() > 0:
    r = muzero_search.bench_iteration(agent, config, hyper, args.repeats, args.max_seconds)
    iteration = r
    rows.append({"section": "muzero", "case": "iteration", "n": config.num_envs,
                 "unit": "self-play moves/s", "seconds": r["seconds"],
                 "compile_s": r["compile_seconds"], "timed_calls": r["timed_calls"],
                 "throughput": r["self_play_moves_per_s"]})
  else:
    rows.append({"section": "muzero", "case": "iteration", "n": config.num_envs,
                 "unit": "self-play moves/s", "skipped": "budget"})
    print("[muzero] iteration: skipped (budget)", flush=True)
  return {"rows": rows, "game": args.muzero_game, "config": dataclasses.asdict(config),
          "iteration": iteration}


# ---------------------------------------------------------------------------------------------
# agents: one training iteration of each agent, vmapped over runs


class AgentBench(NamedTuple):
  name: str
  env: str
  config: dict                 # the agent's config as recorded in the JSON
  init_runs: Callable          # (keys [N], hypers [N]) -> state [N] (jitted)
  iteration: Callable          # (state, hyper) -> (state, metrics), one run
  hyper: Any                   # one run's Hyper (NamedTuple of floats)
  env_steps: int               # real env steps per run per iteration (0: none)
  warm_iterations: int = 0     # iterations run before timing (e.g. to fill a replay)
  note: str = ""


class _Unit(NamedTuple):
  """The hyperparameters of an agent that has none (so every agent takes one)."""

  unused: float = 0.0


def _bench_pets() -> AgentBench:
  from wmjax import envs
  from wmjax.agents import pets as pets_lib

  name = "fast/PointMass"
  # fast/'s default config with a smaller plan (population 32 x 4 particles, horizon 8,
  # 3 CEM iterations) and a 50-step refit, so that 64 runs take seconds on a 2-core CPU.
  config = dataclasses.replace(pets_lib.default_config(name), population=32, horizon=8,
                               iterations=3, num_particles=4, model_train_steps=50,
                               eval_episodes=1)
  env = envs.make(name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  per = env.steps_per_episode
  pets = pets_lib.make_pets(env, config, total_steps=(config.initial_episodes + 1) * per)
  return AgentBench("pets", name, dataclasses.asdict(config), jax.jit(jax.vmap(pets.init)),
                    pets.step, pets_lib.PETSHyper(), per * config.action_repeat,
                    note="one planned episode (50 steps of CEM through the ensemble) + refit")


def _bench_dreamer() -> AgentBench:
  from wmjax import envs
  from wmjax.agents import dreamer as dreamer_lib

  name = "fast/PointMass"
  config = dataclasses.replace(
      dreamer_lib.default_config(name), size="debug", deter=None, hidden=None, units=None,
      layers=None, stoch_groups=None, stoch_classes=None, cnn_depth=None, num_envs=4,
      steps_per_iteration=16, prefill=128, batch_size=8, seq_len=16, train_ratio=8,
      imagine_starts=64, replay_capacity=4096, eval_episodes=1)
  env = envs.make(name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  dreamer = dreamer_lib.make_dreamer(env, config)
  return AgentBench(
      "dreamer", name, {**dataclasses.asdict(config),
                        "updates_per_iteration": config.updates_per_iteration},
      jax.jit(jax.vmap(dreamer.init)), dreamer.train_iteration,
      dreamer_lib.default_hyper(name),
      config.num_envs * config.steps_per_iteration * config.action_repeat,
      note=f"collect {config.num_envs} x {config.steps_per_iteration} steps, "
           f"{config.updates_per_iteration} updates (debug model)")


def _bench_muzero() -> AgentBench:
  from wmjax.agents import muzero as muzero_lib
  from wmjax.envs.pgx import make_game

  name = "fast/PointMassDiscrete"
  config = dataclasses.replace(muzero_lib.default_config(name), num_envs=16,
                               steps_per_iteration=8, batch_size=64, updates_per_iteration=2,
                               replay_capacity=1024, eval_games=4)
  agent = muzero_lib.make_muzero(make_game(name), config)
  return AgentBench(
      "muzero", name, dataclasses.asdict(config), jax.jit(jax.vmap(agent.init)),
      agent.train_iteration, muzero_lib.default_hyper(name),
      config.num_envs * config.steps_per_iteration,
      warm_iterations=-(-agent.window // config.steps_per_iteration) + 1,
      note=f"self-play {config.num_envs} x {config.steps_per_iteration} moves with "
           f"{config.num_simulations} simulations, {config.updates_per_iteration} updates; "
           "replay filled first")


def _bench_mbpo() -> AgentBench:
  from wmjax import envs
  from wmjax.agents import mbpo as mbpo_lib

  name = "fast/PointMass"
  config = dataclasses.replace(mbpo_lib.default_config(name), steps_per_iteration=25,
                               prefill_steps=100, model_train_steps=50, rollout_batch=256,
                               rollout_length=1, model_retain_iterations=2, updates_per_step=2,
                               eval_episodes=1)
  env = envs.make(name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  rows = config.num_envs * config.steps_per_iteration
  mbpo = mbpo_lib.make_mbpo(env, config, total_steps=config.prefill_steps + 2 * rows)
  return AgentBench(
      "mbpo", name, dataclasses.asdict(config), jax.jit(jax.vmap(mbpo.init)),
      mbpo.train_iteration, mbpo_lib.default_hyper(name), rows * config.action_repeat,
      note=f"model refit, {config.rollout_batch} branched rollouts, {rows} env steps with "
           f"{rows * config.updates_per_step} SAC updates")


def _bench_worldmodels() -> AgentBench:
  from wmjax import envs
  from wmjax.agents import worldmodels as wm_lib

  name = "fast/PointMassPixels"
  config = dataclasses.replace(wm_lib.default_config(name), episodes=20, mdn_batch_size=10,
                               vae_batch_size=50, population_size=16, rollouts=4,
                               eval_episodes=1)
  env = envs.make(name, action_repeat=config.action_repeat,
                  episode_length=config.episode_length)
  wm = wm_lib.make_worldmodels(env, config)
  collect, init = jax.jit(jax.vmap(wm.collect)), jax.jit(jax.vmap(wm.init))

  def init_runs(keys, hypers):
    # Two programs, as the driver: collecting and initialising the conv VAE in one program
    # hung in XLA:CPU (see wmjax/train/worldmodels_runner.py).
    return init(keys, hypers, collect(keys))

  return AgentBench(
      "worldmodels", name, dataclasses.asdict(config), init_runs,
      lambda state, hyper: wm.es_generations(state, hyper, 1), wm_lib.default_hyper(name), 0,
      note=f"one CMA-ES generation in M's dream ({config.population_size} candidates x "
           f"{config.rollouts} dreams x {env.steps_per_episode} steps)")


class _DynaRun(NamedTuple):
  agent: Any
  key: jax.Array


def _bench_dyna() -> AgentBench:
  from wmjax import envs
  from wmjax.agents import dyna as dyna_lib

  name, steps = "grid/dyna_maze", 100
  config = dyna_lib.DynaConfig(planning_steps=50)
  dyna = dyna_lib.make_dyna(envs.make(name), config)

  def init(key, hyper):
    del hyper
    key_init, key_run = jax.random.split(key)
    return _DynaRun(dyna.init(key_init), key_run)

  def iteration(run: _DynaRun, hyper):
    del hyper
    key_steps, key_next = jax.random.split(run.key)
    agent, rewards = dyna.run_steps(run.agent, key_steps, steps)
    return _DynaRun(agent, key_next), rewards.sum()

  return AgentBench("dyna", name, {**dataclasses.asdict(config), "steps_per_iteration": steps},
                    jax.jit(jax.vmap(init)), iteration, _Unit(), steps,
                    note=f"{steps} real steps, each with {config.planning_steps} planning "
                         "updates (tabular)")


AGENT_BUILDERS: dict[str, Callable[[], AgentBench]] = {
    "pets": _bench_pets, "dreamer": _bench_dreamer, "muzero": _bench_muzero,
    "mbpo": _bench_mbpo, "worldmodels": _bench_worldmodels, "dyna": _bench_dyna}


def _init_one_run(bench: AgentBench) -> tuple[Any, float]:
  """``(one-run state [1, ...], seconds to compile and run the init)``."""
  keys = jax.random.split(jax.random.PRNGKey(0), 1)
  hypers = stack_hyper(bench.hyper, 1)
  t0 = time.perf_counter()
  state = jax.block_until_ready(bench.init_runs(keys, hypers))
  return state, time.perf_counter() - t0


def section_agents(args, budget: Budget, ctx: dict) -> dict:
  """One training iteration per agent at each number of vmapped runs. Passes: the headline
  agents (PETS, Dreamer) at 1 and 64 runs; every other agent at 1 run, then at 64; then the
  other sizes, smallest first."""
  rate = ctx["matmul"]["flops_per_s"]
  info: dict[str, dict] = {}

  def family(name: str) -> Family:
    def prepare():
      t0 = time.perf_counter()
      bench = AGENT_BUILDERS[name]()
      state1, init_s = _init_one_run(bench)
      info[name] = {"env": bench.env, "config": bench.config, "note": bench.note,
                    "env_steps_per_iteration": bench.env_steps,
                    "warm_iterations": bench.warm_iterations, "init_s": init_s,
                    "build_and_init_s": time.perf_counter() - t0}
      print(f"[agents] {name} on {bench.env}: built and initialised in "
            f"{info[name]['build_and_init_s']:.1f} s", flush=True)
      step = jax.jit(jax.vmap(bench.iteration))
      held = {"state1": state1}

      def run_case(n):
        if n == 1:
          state, warm = held["state1"], bench.warm_iterations
        else:
          state, warm = tile_runs(held["state1"], n, seed=n), 0
        hypers = stack_hyper(bench.hyper, n)
        first = "matmul_flops_per_run" not in info[name]
        stats, (state, _), _ = measure(step, (state, hypers), args.repeats, args.max_seconds,
                                       warm=warm, count_flops=first)
        if first:
          flops, exact = stats.pop("matmul_flops") / n, stats.pop("flops_exact")
          info[name].update(matmul_flops_per_run=flops, flops_exact=exact)
          print(f"[agents] {name}: {flops / 1e9:.3g} GFLOP of matmuls per run per iteration"
                + ("" if exact else " (a lower bound: while loops counted once)"), flush=True)
        if n == 1:
          held["state1"] = state   # later sizes start from the warmed run
        del state
        row = {**stats, "throughput": n / stats["seconds"]}
        if info[name]["matmul_flops_per_run"] > 0:   # Dyna is tabular: no matmul, no floor
          row["floor_s"] = n * info[name]["matmul_flops_per_run"] / rate
          row["achieved_over_floor"] = row["floor_s"] / stats["seconds"]
        if bench.env_steps:
          row["env_steps_per_s"] = n * bench.env_steps / stats["seconds"]
        return row

      return run_case

    return Family("agents", name, THROUGHPUT_UNITS["agents"], prepare)

  families = {name: family(name) for name in args.agents}
  head = [families[n] for n in HEADLINE_AGENTS if n in families]
  others = [f for n, f in families.items() if n not in HEADLINE_AGENTS]
  # Size 1 comes first for every agent: the other sizes start from its (warmed) state.
  rest = sorted(set(args.runs) - {1, 64})
  with64 = [64] if 64 in args.runs else []
  passes = [(head, [1, *with64], 0.65), (others, [1], 0.6), (others, with64, 0.8),
            *[(list(families.values()), [n], 0.7) for n in rest]]
  passes = [p for p in passes if p[0] and p[1]]
  passes[-1] = (*passes[-1][:2], 1.0)   # the last pass may spend all that is left
  run_passes(passes, budget, args, AGENT_WEIGHTS, on_progress=ctx.get("on_progress"))
  rows = family_rows(list(families.values()))
  for name, fam in families.items():
    measured = {r["n"]: r for r in fam.sorted_rows() if "seconds" in r}
    entry = info.setdefault(name, {"skipped": "budget"} if fam.error is None
                            else {"error": fam.error[1]})
    entry["seconds_by_runs"] = {str(n): r["seconds"] for n, r in measured.items()}
    entry["ratio_64_vs_1"] = measured[64]["ratio_vs_1"] if 64 in measured else None
  return {"rows": rows, "agents": info,
          "method": "each agent's state is initialised once for one run (and warmed where "
                    "noted), then repeated to N runs with their own keys; "
                    "jax.jit(jax.vmap(iteration)) is compiled and timed per N"}


# ---------------------------------------------------------------------------------------------
# devices


def devices_rows(args, budget: Budget, rate: float | None) -> dict:
  """The PETS iteration for ``--device-runs`` runs sharded over each device count, placed as
  the drivers place a run axis (``run_mesh`` / ``place_runs``)."""
  available = jax.device_count()
  counts = [d for d in args.device_counts if d <= available] or [1]
  runs = args.device_runs
  facts: dict[str, Any] = {}

  def prepare():
    bench = _bench_pets()
    state1, _ = _init_one_run(bench)
    state = tile_runs(state1, runs, seed=runs)
    hypers = stack_hyper(bench.hyper, runs)
    step = jax.jit(jax.vmap(bench.iteration))

    def run_case(d):
      if runs % d:
        raise ValueError(f"--device-runs {runs} is not a multiple of {d} devices")
      args_d = place_runs((state, hypers), run_mesh(runs, d))
      first = "matmul_flops_per_run" not in facts
      stats, _, compiled = measure(step, args_d, args.repeats, args.max_seconds,
                                   count_flops=first)
      if first:
        facts["matmul_flops_per_run"] = stats.pop("matmul_flops") / runs
        facts["flops_exact"] = stats.pop("flops_exact")
      row = {**stats, "throughput": runs / stats["seconds"], "runs": runs,
             "output_devices": len(jax.tree.leaves(compiled.output_shardings)[0].device_set)}
      if rate is not None:
        row["floor_s"] = runs * facts["matmul_flops_per_run"] / (rate * d)
        row["achieved_over_floor"] = row["floor_s"] / stats["seconds"]
      return row

    return run_case

  family = Family("devices", f"pets x{runs} runs", THROUGHPUT_UNITS["devices"], prepare,
                  grows=False)
  # The fewest and the most devices first; the counts between with what is left.
  ends = sorted({min(counts), max(counts)})
  run_passes([([family], ends, 0.8), ([family], sorted(set(counts) - set(ends)), 1.0)],
             budget, args)
  rows = family_rows([family])
  base = family.rows.get(1, {}).get("seconds")
  for r in rows:
    if base and "seconds" in r:
      r["speedup_vs_1"] = base / r["seconds"]
  return {"rows": rows, "runs": runs, "device_count": available,
          "device_counts_asked": list(args.device_counts), **facts,
          "sharding": "NamedSharding(Mesh(devices, ('runs',)), PartitionSpec('runs')) on every "
                      "state and hyperparameter leaf"}


FAKE_DEVICES_NOTE = (
    "fake CPU devices (--xla_force_host_platform_device_count) are threads on the same "
    "{cores} cores: sharding can gain up to the core count (one XLA:CPU device runs most of "
    "its ops on one thread), nothing beyond it. No floor is given.")


def section_devices(args, budget: Budget, ctx: dict) -> dict:
  fake = jax.default_backend() == "cpu" and jax.device_count() < max(args.device_counts)
  if not fake:
    real = jax.default_backend() != "cpu"
    out = devices_rows(args, budget, ctx["matmul"]["flops_per_s"] if real else None)
    out["fake_devices"] = not real
    if not real:
      out["note"] = FAKE_DEVICES_NOTE.format(cores=os.cpu_count())
    return out
  # Fake CPU devices exist only if XLA_FLAGS asks for them before jax starts: a subprocess.
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "devices.json"
    flags = os.environ.get("XLA_FLAGS", "")
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", flags)
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count="
                         f"{max(args.device_counts)}".strip())
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--devices-worker", str(path),
           "--budget-s", str(max(1.0, budget.left())), "--repeats", str(args.repeats),
           "--max-seconds", str(args.max_seconds), "--device-runs", str(args.device_runs),
           "--device-counts", *map(str, args.device_counts)]
    print(f"[devices] {max(args.device_counts)} fake CPU devices in a subprocess", flush=True)
    proc = subprocess.run(cmd, env=env, timeout=max(60.0, budget.left() + 300.0), check=False)
    if proc.returncode != 0 or not path.exists():
      raise RuntimeError(f"the devices subprocess failed (exit {proc.returncode})")
    out = json.loads(path.read_text())
  out["fake_devices"] = True
  out["note"] = FAKE_DEVICES_NOTE.format(cores=os.cpu_count())
  return out


def devices_worker(args) -> None:
  out = devices_rows(args, Budget(args.budget_s), None)
  pathlib.Path(args.devices_worker).write_text(json.dumps(out, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Output: JSON, markdown, plots


def device_slug() -> str:
  device = jax.devices()[0]
  if device.platform == "cpu":
    return "cpu"
  return re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-") or device.platform


def _fmt_time(s: float) -> str:
  if s >= 1.0:
    return f"{s:.2f} s"
  if s >= 1e-3:
    return f"{s * 1e3:.2f} ms"
  return f"{s * 1e6:.1f} us"


def _fmt_num(x: float) -> str:
  if x >= 1e6:
    return f"{x:.3g}".replace("e+0", "e").replace("e+", "e")
  if x >= 100:
    return f"{x:,.0f}"
  return f"{x:.3g}"


def headline(result: dict) -> dict:
  agents = result.get("sections", {}).get("agents", {}).get("agents", {})
  return {f"{name}_ratio_64_vs_1": info.get("ratio_64_vs_1")
          for name, info in agents.items() if isinstance(info, dict) and "config" in info}


def markdown(result: dict) -> str:
  m = result.get("matmul", {})
  lines = [f"# wmjax benchmarks: {result['device_kind']} ({result['platform']}), "
           f"{result['date']}", "",
           f"JAX {result['jax_version']}, {result['num_devices']} device(s), host CPU "
           f"{result.get('cpu') or '?'} with {result.get('cpu_count')} cores. Matmul rate "
           f"{m.get('flops_per_s', float('nan')) / 1e9:.1f} GFLOP/s (f32, {m.get('n')}^3): the "
           "floor of a figure is its counted matmul FLOPs over that rate, and *floor/time* is "
           "the fraction of it reached (1 would be matmul peak).", ""]
  if result.get("note"):
    lines += [f"Note: {result['note']}", ""]
  heads = {k: v for k, v in result.get("headline", {}).items() if v is not None}
  if heads:
    lines += ["Headline: time of 64 vmapped runs over the time of one run (64 would mean no "
              "gain from batching): "
              + ", ".join(f"{k.split('_')[0]} **{v:.1f}**" for k, v in heads.items()) + ".", ""]
  lines += ["N is the number of envs (envs), runs (agents) or devices (devices); envs planned "
            "at once (pets); start states, replayed sequences or envs (dreamer); positions "
            "searched at once or games (muzero). *(Kx N=1)*: time over the time at N = 1.", ""]
  lines += ["| section | case | N | time per call | throughput | compile s | floor/time |",
            "|---|---|---:|---:|---:|---:|---:|"]
  for row in result_rows(result):
    head = f"| {row['section']} | {row['case']} | {row['n']} |"
    if "seconds" not in row:
      why = row.get("skipped") or row.get("error", "")
      lines.append(f"{head} {'skipped (' + why + ')' if 'skipped' in row else 'error'} "
                   "| | | |")
      continue
    ratio = row.get("achieved_over_floor")
    extra = f" ({row['ratio_vs_1']:.1f}x N=1)" if "ratio_vs_1" in row and row["n"] != 1 else ""
    lines.append(f"{head} {_fmt_time(row['seconds'])}{extra} | {_fmt_num(row['throughput'])} "
                 f"{row['unit']} | {row['compile_s']:.1f} | "
                 f"{'' if ratio is None else f'{ratio:.3g}'} |")
  for name in SECTIONS:
    sec = result.get("sections", {}).get(name, {})
    for key, fmt in (("note", "{}"), ("skipped", "skipped ({})"), ("partial", "partial ({})"),
                     ("error", "error: {}")):
      if sec.get(key):
        lines += ["", f"{name}: " + fmt.format(sec[key])]
  agents = result.get("sections", {}).get("agents", {}).get("agents", {})
  if agents:
    lines += ["", "Agents (one training iteration per run):", ""]
    for name, info in agents.items():
      if "config" in info:
        lines.append(f"- {name} on {info['env']}: {info['note']}; "
                     f"{info['matmul_flops_per_run'] / 1e9:.3g} GFLOP of matmuls per run"
                     + ("" if info["flops_exact"] else " (lower bound)"))
      else:
        lines.append(f"- {name}: {info.get('skipped') or info.get('error')}")
  return "\n".join(lines) + "\n"


def result_rows(result: dict) -> list[dict]:
  return [row for name in SECTIONS
          for row in result.get("sections", {}).get(name, {}).get("rows", [])]


def plot_scaling(result: dict, path: pathlib.Path) -> bool:
  """Throughput against vmapped runs (one line per agent, its floor dashed) and against
  devices. Returns False (and says so) where matplotlib is not installed."""
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed: no plot (redraw it elsewhere with --plot-only)")
    return False
  rate = result.get("matmul", {}).get("flops_per_s")
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6))
  agents = result.get("sections", {}).get("agents", {})
  rate = agents.get("matmul_flops_per_s", rate)
  sizes: set[int] = set()
  for i, name in enumerate(AGENTS):
    rows = [r for r in agents.get("rows", []) if r["case"] == name and "seconds" in r]
    if not rows:
      continue
    color = f"C{i}"
    sizes |= {r["n"] for r in rows}
    ax1.plot([r["n"] for r in rows], [r["throughput"] for r in rows], "-", color=color,
             marker="os^Dvp"[i % 6], mfc="none", ms=7,
             label=f"{name} ({agents.get('agents', {}).get(name, {}).get('env', '')})")
    flops = agents.get("agents", {}).get(name, {}).get("matmul_flops_per_run")
    if rate and flops:
      ax1.axhline(rate / flops, color=color, ls="--", lw=1)
  ax1.set(xscale="log", yscale="log", xlabel="vmapped runs (seeds) N",
          ylabel="runs x training iterations / s",
          title="One training iteration of N runs in one program")
  if sizes:
    ax1.set_xticks(sorted(sizes), [str(n) for n in sorted(sizes)])
    ax1.minorticks_off()
  if rate:
    ax1.plot([], [], "k--", lw=1,
             label=f"floor: matmul FLOPs at {rate / 1e9:.0f} GFLOP/s (measured)")
  ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
  ax1.grid(True, which="major", alpha=0.3)
  dev = result.get("sections", {}).get("devices", {})
  rows = [r for r in dev.get("rows", []) if "seconds" in r]
  if rows:
    xs = [r["n"] for r in rows]
    ax2.plot(xs, [r["throughput"] for r in rows], "o-", color="C0",
             label=f"PETS, {dev.get('runs')} runs")
    base = next((r for r in rows if r["n"] == 1), None)
    if base:
      ax2.plot(xs, [base["throughput"] * d for d in xs], ":", color="grey",
               label="linear from 1 device")
    if all("floor_s" in r for r in rows):
      ax2.plot(xs, [r["runs"] / r["floor_s"] for r in rows], "--", color="C0", lw=1,
               label="floor: matmul FLOPs / (devices x rate)")
    title = "PETS runs sharded over devices"
    if dev.get("fake_devices"):
      title += f"\n(fake CPU devices: threads on the same {result.get('cpu_count')} cores)"
    ax2.set(xscale="log", yscale="log", xlabel="devices", ylabel="runs x iterations / s",
            title=title)
    ax2.set_xticks(xs, [str(x) for x in xs])
    ax2.minorticks_off()
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax2.grid(True, which="major", alpha=0.3)
  else:
    ax2.text(0.5, 0.5, "devices section not run", ha="center", va="center")
    ax2.set_axis_off()
  fig.suptitle(f"wmjax throughput on {result['device_kind']} ({result['date']})")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def write_outputs(result: dict, json_path: pathlib.Path, plot: bool = True,
                  write_json: bool = True) -> None:
  result["headline"] = headline(result)
  if write_json:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
  stem = json_path.with_suffix("")
  pathlib.Path(f"{stem}.md").write_text(markdown(result))
  if plot:
    plot_scaling(result, pathlib.Path(f"{stem}-scaling.png"))


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                      metavar="SECTION", help=f"sections to run: {', '.join(SECTIONS)}")
  parser.add_argument("--budget-s", type=float, default=900.0,
                      help="wall-clock budget of the whole suite (each section gets a share)")
  parser.add_argument("--max-seconds", type=float, default=15.0,
                      help="stop timing a case after this many seconds of timed calls; skip "
                      "a size whose estimated time per call passes it")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls per case")
  parser.add_argument("--out-dir", type=pathlib.Path, default=HERE / "results")
  parser.add_argument("--note", default="", help="a note stored in the JSON and markdown")
  parser.add_argument("--no-plot", action="store_true")
  parser.add_argument("--merge", action="store_true",
                      help="keep the other sections of an existing result file of the same "
                      "device and date (several short runs, e.g. on a lent GPU, make one file)")
  parser.add_argument("--plot-only", type=pathlib.Path, default=None, metavar="RESULT.json",
                      help="redraw the markdown and plot of a result file, nothing else")
  parser.add_argument("--matmul-n", type=int, default=None,
                      help="matmul size for the rate (default 2048 on CPU, 8192 otherwise)")
  parser.add_argument("--envs", nargs="+", default=list(ENV_SUITES))
  parser.add_argument("--env-batches", nargs="+", type=int, default=[1, 64, 1024])
  parser.add_argument("--env-steps", type=int, default=100, help="steps per timed call")
  parser.add_argument("--pets-config", default="main", help="pets_plan.py's CONFIGS key")
  parser.add_argument("--pets-batches", nargs="+", type=int, default=[1, 64, 1024])
  parser.add_argument("--dreamer-env", default="fast/PointMass")
  parser.add_argument("--dreamer-size", default="debug")
  parser.add_argument("--dreamer-starts", nargs="+", type=int, default=[256, 4096])
  parser.add_argument("--dreamer-batches", nargs="+", type=int, default=[16])
  parser.add_argument("--muzero-game", default="pgx/connect_four")
  parser.add_argument("--muzero-batches", nargs="+", type=int, default=[1, 64, 1024])
  parser.add_argument("--muzero-simulations", nargs="+", type=int, default=[32])
  parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
  parser.add_argument("--runs", nargs="+", type=int, default=[1, 4, 16, 64, 256, 1024],
                      help="vmapped runs (seeds) per agent iteration")
  parser.add_argument("--device-counts", nargs="+", type=int, default=[1, 2, 4, 8])
  parser.add_argument("--device-runs", type=int, default=8,
                      help="runs of the devices section (a multiple of every device count)")
  parser.add_argument("--devices-worker", default=None, help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict | None:
  args = parse_args(argv)
  if args.plot_only is not None:
    result = json.loads(args.plot_only.read_text())
    write_outputs(result, args.plot_only, plot=True, write_json=False)
    print(markdown(result))
    return result
  if args.devices_worker:
    devices_worker(args)
    return None

  t_start = time.perf_counter()
  budget = Budget(args.budget_s)
  device = jax.devices()[0]
  date = time.strftime("%Y-%m-%d")
  json_path = args.out_dir / f"{device_slug()}-{date}.json"
  result: dict[str, Any] = {
      "benchmark": "run_all", "device": device_slug(), "device_kind": device.device_kind,
      "platform": device.platform, "num_devices": jax.device_count(),
      "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
      "jax_version": jax.__version__, "date": date, "note": args.note,
      "argv": sys.argv[1:] if argv is None else list(argv),
      "config": {k: (str(v) if isinstance(v, pathlib.Path) else v)
                 for k, v in vars(args).items() if k not in ("plot_only", "devices_worker")},
      "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "sections": {}}
  if args.merge and json_path.exists():
    previous = json.loads(json_path.read_text())
    result["sections"] = {k: v for k, v in previous.get("sections", {}).items()
                          if k not in args.only}
    result["merged"] = [*previous.get("merged", []),
                        {"argv": previous.get("argv"), "sections": sorted(result["sections"]),
                         "total_seconds": previous.get("total_seconds"),
                         "note": previous.get("note")}]
  print(f"device {device.device_kind} ({device.platform}, {jax.device_count()} device(s)), "
        f"jax {jax.__version__}; budget {args.budget_s:.0f} s; writing {json_path}", flush=True)
  n = args.matmul_n or (2048 if device.platform == "cpu" else 8192)
  result["matmul"] = measure_matmul(n)
  print(f"[matmul] {n}^3 f32: {result['matmul']['flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
  ctx = {"matmul": result["matmul"]}
  sections = {"envs": section_envs, "pets": section_pets, "dreamer": section_dreamer,
              "muzero": section_muzero, "agents": section_agents, "devices": section_devices}
  chosen = [s for s in SECTIONS if s in args.only]
  for i, name in enumerate(chosen):
    sub = budget.share(SHARES[name], sum(SHARES[s] for s in chosen[i:]))
    t0 = time.perf_counter()
    print(f"\n== {name}: {sub.left():.0f} s of the budget ==", flush=True)

    def save_partial(rows, name=name):
      result["sections"][name] = {"rows": rows, "partial": "the section had not finished"}
      write_outputs(result, json_path, plot=False)

    ctx["on_progress"] = save_partial
    if sub.left() <= 0:
      out = {"skipped": "budget", "rows": []}
    else:
      try:
        out = sections[name](args, sub, ctx)
      except Exception as e:  # noqa: BLE001 (one failing section must not lose the others)
        out = {"error": f"{type(e).__name__}: {str(e)[:1000]}", "rows": []}
        print(f"[{name}] error {out['error']}", flush=True)
    out["seconds"] = time.perf_counter() - t0
    out["budget_s"] = sub.seconds
    out["matmul_flops_per_s"] = ctx["matmul"]["flops_per_s"]   # this section's floors used it
    result["sections"][name] = out
    result["total_seconds"] = time.perf_counter() - t_start
    write_outputs(result, json_path, plot=False)
  result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
  result["total_seconds"] = time.perf_counter() - t_start
  write_outputs(result, json_path, plot=not args.no_plot)
  print("\n" + markdown(result))
  print(f"wrote {json_path} (+ .md{'' if args.no_plot else ', -scaling.png'}) in "
        f"{result['total_seconds']:.0f} s", flush=True)
  return result


if __name__ == "__main__":
  main()
