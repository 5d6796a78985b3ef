"""The sections of the benchmark suite (``run_all.py``): envs, pets, dreamer, muzero, agents and
devices (and render, in ``render_throughput.py``). Each ``section_<name>(args, budget, ctx)``
measures within its budget and returns its part of the result JSON (``rows`` and facts)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from harness import (
  Budget,
  Family,
  family_rows,
  matmul_flops,
  measure,
  run_passes,
  size_passes,
  tile_runs,
)
from timing import time_call

from wmjax import presets
from wmjax.train.common import place_runs, run_mesh, stack_hyper

HERE = pathlib.Path(__file__).resolve().parent
RUN_ALL = HERE / "run_all.py"   # the suite's script (the devices section reruns it)
SECTIONS = ("envs", "pets", "dreamer", "muzero", "agents", "devices", "render")
# Each section's share of what is left of the budget when it starts.
SHARES = {"envs": 0.20, "pets": 0.05, "dreamer": 0.10, "muzero": 0.06, "agents": 0.50,
          "devices": 0.09, "render": 0.05}
ENV_SUITES = ("fast/PointMass", "grid/dyna_maze", "pgx/connect_four", "dmc/CartpoleSwingup",
              "pets/cartpole", "brax/halfcheetah")
AGENTS = ("pets", "dreamer", "muzero", "mbpo", "worldmodels", "dyna")
AGENT_WEIGHTS = {"pets": 3.0, "dreamer": 3.0}   # the headline ratios; the others get 1
HEADLINE_AGENTS = ("pets", "dreamer")   # their 64-vs-1 ratio is measured before the rest
DREAMER_MIN_S = 60.0   # the dreamer section runs only with this much of its budget left
THROUGHPUT_UNITS = {"envs": "env steps/s", "agents": "runs x iterations/s",
                    "devices": "runs x iterations/s", "render": "frames/s"}


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
  config = presets.defaults("muzero", args.muzero_game)[0]
  hyper = presets.defaults("muzero", args.muzero_game)[1]
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


# What the agents section runs: each registry agent on a small env, its preset shrunk so that
# 64 runs take seconds on a 2-core CPU: (env, --set overrides, steps of the run it is built for,
# the phase timed, what one iteration is).
AGENT_BENCH: dict[str, tuple[str, dict, int, int, str]] = {
    "pets": ("fast/PointMass", dict(population=32, horizon=8, iterations=3, num_particles=4,
                                    model_train_steps=50, eval_episodes=1), 150, 0,
             "one planned episode (50 steps of CEM through the ensemble) + refit"),
    "dreamer": ("fast/PointMass", dict(size="debug", deter=None, hidden=None, units=None,
                                       layers=None, stoch_groups=None, stoch_classes=None,
                                       cnn_depth=None, num_envs=4, steps_per_iteration=16,
                                       prefill=128, batch_size=8, seq_len=16, train_ratio=8,
                                       imagine_starts=64, replay_capacity=4096,
                                       eval_episodes=1), 2_000, 0,
                "collect 4 x 16 steps, the updates of train_ratio 8 (debug model)"),
    "muzero": ("fast/PointMassDiscrete", dict(num_envs=16, steps_per_iteration=8, batch_size=64,
                                              updates_per_iteration=2, replay_capacity=1024,
                                              eval_games=4), 10_000, 0,
               "self-play 16 x 8 moves with search, 2 updates; replay filled first"),
    "mbpo": ("fast/PointMass", dict(steps_per_iteration=25, prefill_steps=100,
                                    model_train_steps=50, rollout_batch=256, rollout_length=1,
                                    model_retain_iterations=2, updates_per_step=2,
                                    eval_episodes=1), 150, 0,
             "model refit, 256 branched rollouts, 25 env steps with 50 SAC updates"),
    "worldmodels": ("fast/PointMassPixels", dict(episodes=20, mdn_batch_size=10,
                                                 vae_batch_size=50, population_size=16,
                                                 rollouts=4, eval_episodes=1), 100, 2,
                    "one CMA-ES generation in M's dream (16 candidates x 4 dreams)"),
    "dyna": ("grid/dyna_maze", dict(planning_steps=50), 3_000, 0,
             "100 real steps, each with 50 planning updates (tabular)"),
}


def agent_bench(name: str) -> AgentBench:
  """An :class:`AgentBench` from the registry entry of ``name`` (:mod:`wmjax.train.algos`)."""
  from wmjax.train.algos import get_algo

  algo = get_algo(name)
  env_name, sets, steps, phase, note = AGENT_BENCH[name]
  config, hyper = presets.defaults(name, env_name)
  config = dataclasses.replace(config, **sets)
  built = algo.build(env_name, steps, config, hyper)
  program = built.program
  init_runs = program.init_runs or jax.jit(jax.vmap(program.init))
  iteration = program.phases[phase].iteration
  warm = 0
  if name == "muzero":   # the replay must hold a whole window before updates start
    warm = -(-built.extra["agent"].window // config.steps_per_iteration) + 1
  return AgentBench(name, env_name, {**dataclasses.asdict(config), **built.derived},
                    init_runs, iteration, hyper, _ENV_STEPS[name](built),
                    warm_iterations=warm, note=note)


def _real_steps(built) -> int:
  """Real env steps of one iteration of an agent that collects rows of num_envs x
  steps_per_iteration agent steps."""
  c = built.config
  return c.num_envs * c.steps_per_iteration * getattr(c, "action_repeat", 1)


_ENV_STEPS: dict[str, Callable[[Any], int]] = {
    "pets": lambda b: b.env.steps_per_episode * b.config.action_repeat,
    "dreamer": _real_steps, "muzero": _real_steps, "mbpo": _real_steps,
    "worldmodels": lambda b: 0,   # a generation in M's dream takes no real step
    "dyna": lambda b: 100,
}


AGENT_BUILDERS: dict[str, Callable[[], AgentBench]] = {
    name: (lambda name=name: agent_bench(name)) for name in AGENT_BENCH}


def _init_one_run(bench: AgentBench) -> tuple[Any, float]:
  """``(one-run state [1, ...], seconds to compile and run the init)``."""
  keys = jax.random.split(jax.random.PRNGKey(0), 1)
  hypers = stack_hyper(bench.hyper, 1)
  return time_call(bench.init_runs, keys, hypers)


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
    bench = agent_bench("pets")
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
    cmd = [sys.executable, str(RUN_ALL), "--devices-worker", str(path),
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
