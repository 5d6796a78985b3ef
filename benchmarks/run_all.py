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
  they are threads on the same cores, so any gain stops at the core count;
- ``render``: frames/s of ``dmc-pixels/`` rendering alone over fixed MJX states at 1, 16 and 64
  envs, and the pixel env's steps/s against its vector env's (``render_throughput.py``).

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
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax

# The suite's modules (this folder is on sys.path, as for every benchmark script): the measuring
# machinery, the sections, the outputs. Their names are re-exported here, so that
# ``from run_all import X`` keeps working.
from harness import (
  Budget,
  Family,
  count_jaxpr_flops,
  family_rows,
  matmul_flops,
  measure,
  measure_matmul,
  run_passes,
  size_passes,
  tile_runs,
)
from render_throughput import add_args as add_render_args
from render_throughput import section_render
from report import device_slug, headline, markdown, plot_scaling, result_rows, write_outputs
from sections import (
  AGENT_BENCH,
  AGENT_BUILDERS,
  AGENT_WEIGHTS,
  AGENTS,
  DREAMER_MIN_S,
  ENV_SUITES,
  HEADLINE_AGENTS,
  HERE,
  SECTIONS,
  SHARES,
  THROUGHPUT_UNITS,
  AgentBench,
  agent_bench,
  devices_rows,
  devices_worker,
  section_agents,
  section_devices,
  section_dreamer,
  section_envs,
  section_muzero,
  section_pets,
)
from timing import time_calls

__all__ = [
    "AGENTS", "AGENT_BENCH", "AGENT_BUILDERS", "AGENT_WEIGHTS", "DREAMER_MIN_S", "ENV_SUITES",
    "HEADLINE_AGENTS", "HERE", "SECTIONS", "SHARES", "THROUGHPUT_UNITS", "AgentBench",
    "Budget", "Family", "agent_bench", "count_jaxpr_flops", "device_slug", "devices_rows",
    "devices_worker", "family_rows", "headline", "main", "markdown", "matmul_flops", "measure",
    "measure_matmul", "parse_args", "plot_scaling", "result_rows", "run_passes",
    "section_agents", "section_devices", "section_dreamer", "section_envs", "section_muzero",
    "section_pets", "size_passes", "tile_runs", "time_calls", "write_outputs"]


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
  add_render_args(parser)
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
              "muzero": section_muzero, "agents": section_agents, "devices": section_devices,
              "render": section_render}
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
