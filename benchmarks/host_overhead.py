"""Host time per training iteration, early and late in a long run: it must not grow.

The driver (``wmjax/train/loop.py``) logs, per chunk, ``time/chunk_s`` (the jitted call and its
metrics), ``time/eval_s`` and ``time/host_s`` (everything else: checks, the metrics line, the
checkpoint, the curve, the progress bar, the agent's hooks). This runs tabular Dyna-Q on
``grid/dyna_maze`` for ``--iterations`` one-iteration chunks (100 real steps each, so the device
part is small and the host part shows) and reports the median host time around iteration 10 and
around the last iteration. For contrast it times what the drivers did before at every iteration
(re-read all of ``metrics.jsonl`` and redraw the curve) at both lengths.

    python benchmarks/host_overhead.py                     # 1,000 iterations, ~2 min on 2 cores
    python benchmarks/host_overhead.py --iterations 200 --out /tmp/h.json

Writes ``benchmarks/results/host_overhead-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time


def _window(records: list[dict], around: int, half: int = 10) -> list[float]:
  return [r["time/host_s"] for r in records
          if "time/host_s" in r and abs(r["iteration"] - around) <= half]


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iterations", type=int, default=1000)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args(argv)
  if args.iterations < 20:
    parser.error("--iterations must be >= 20")

  import jax

  from wmjax.train.loop import train
  from wmjax.train.plots import plot_curve
  from wmjax.train.rundir import RunDir

  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp) / "dyna"
    t0 = time.time()
    train("dyna", "grid/dyna_maze", out=folder, steps=100 * args.iterations, progress=False,
          sets=["planning_steps=5"])
    wall = time.time() - t0
    run = RunDir(folder, resume=True)
    records = run.read_metrics()
    early, late = _window(records, 10), _window(records, args.iterations - 5)

    def reread_and_plot(n: int) -> float:   # what each iteration cost before, at length n
      lines = records[:n]
      path = pathlib.Path(tmp) / f"old-{n}.png"
      t = time.perf_counter()
      for _ in range(3):
        RunDir(folder, resume=True).read_metrics()
        plot_curve(lines, path, keys=("train/cumulative_reward",))
      return (time.perf_counter() - t) / 3

    old_early, old_late = reread_and_plot(10), reread_and_plot(len(records))
  result = {
      "benchmark": "host_overhead", "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(), "jax": jax.__version__,
      "config": {"algo": "dyna", "env": "grid/dyna_maze", "iterations": args.iterations,
                 "steps_per_iteration": 100, "planning_steps": 5},
      "wall_s": wall,
      "host_s_median_at_10": statistics.median(early),
      f"host_s_median_at_{args.iterations}": statistics.median(late),
      "chunk_s_median": statistics.median(r["time/chunk_s"] for r in records),
      "growth_ratio": statistics.median(late) / statistics.median(early),
      "host_s_median_by_decile": [
          statistics.median(r["time/host_s"] for r in part if "time/host_s" in r)
          for part in (records[i * len(records) // 10:(i + 1) * len(records) // 10]
                       for i in range(10))],
      "old_reread_and_plot_s_at_10": old_early,
      f"old_reread_and_plot_s_at_{args.iterations}": old_late,
  }
  print("host time per iteration, median per tenth of the run (ms): " + ", ".join(
      f"{x * 1e3:.1f}" for x in result["host_s_median_by_decile"]))
  print(f"host time per iteration (median of 21): {result['host_s_median_at_10'] * 1e3:.1f} ms "
        f"at iteration 10, {statistics.median(late) * 1e3:.1f} ms at iteration "
        f"{args.iterations} (x{result['growth_ratio']:.2f}); device call "
        f"{result['chunk_s_median'] * 1e3:.1f} ms; the whole run {wall:.0f} s")
  print(f"before (re-read metrics + redraw the curve every iteration): {old_early * 1e3:.0f} ms "
        f"at 10 lines, {old_late * 1e3:.0f} ms at {len(records)} lines")
  out = args.out or (pathlib.Path(__file__).parent / "results" /
                     f"host_overhead-{jax.default_backend()}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {out}")
  return result


if __name__ == "__main__":
  sys.exit(0 if main() else 1)
