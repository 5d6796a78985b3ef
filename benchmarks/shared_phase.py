"""What sharing a phase saves a sweep (``wmjax.agents.base.SharedPart``): MOPO's model phase.

A MOPO sweep of ``--penalties`` x ``--seeds`` runs is one program. The penalty does not enter
the model phase, so the driver fits one ensemble per seed and copies it to that seed's runs.
This trains, through the real driver (``wmjax.train.loop.train``):

- ``shared``: the sweep (penalties x seeds runs, ``seeds`` ensembles fitted);
- ``unshared``: one plain run of penalties x seeds seeds (as many runs, one ensemble each: what
  the sweep cost before).

and reports each one's seconds per model-phase chunk (``model_steps_per_iteration`` ensemble
steps; the median of the chunks after the first, which compiles) and per policy chunk. Writes
JSON (``--out``).

    python benchmarks/shared_phase.py --out benchmarks/results/shared_phase-cpu.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import tempfile

import jax

from wmjax.train import loop
from wmjax.train.common import RunAxis

DATASET = (pathlib.Path(__file__).resolve().parent.parent / "experiments/results/offline/"
           "datasets/brax-halfcheetah-medium-replay")


def _chunk_seconds(records, stage: str) -> float | None:
  times = [r["time/chunk_s"] for r in records if r.get("stage") == stage]
  return statistics.median(times[1:]) if len(times) > 1 else None


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default=str(DATASET),
                      help="a dataset folder (default: the offline table's halfcheetah "
                      "medium-replay; `python experiments/offline_table.py datasets` makes it)")
  parser.add_argument("--penalties", default="0.1,0.3")
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--model-chunks", type=int, default=3,
                      help="model-phase chunks of 1000 ensemble steps (the first compiles)")
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  if not (pathlib.Path(args.dataset) / "transitions.npz").exists():
    raise SystemExit(f"no dataset at {args.dataset}: make one with `python "
                     "experiments/offline_table.py datasets` or pass --dataset")
  from wmjax.train.algos_offline import dataset_settings

  env, data_sets = dataset_settings(args.dataset)
  penalties = [float(x) for x in args.penalties.split(",")]
  runs = len(penalties) * args.seeds
  sets = [*data_sets, f"model_updates={1000 * args.model_chunks}", "eval_every=0",
          "eval_episodes=1"]
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, kwargs in (
        ("shared", dict(run_axis=RunAxis(seed=0, seeds=args.seeds, points=tuple(
            {"penalty_coef": p} for p in penalties)))),
        ("unshared", dict(seeds=runs))):
      records = loop.train("mopo", env, out=pathlib.Path(tmp) / name, steps=2000, sets=sets,
                           progress=False, **kwargs).read_metrics()
      results[name] = {"runs": runs,
                       "models_fitted": args.seeds if name == "shared" else runs,
                       "model_chunk_s": _chunk_seconds(records, "model"),
                       "policy_chunk_s": _chunk_seconds(records, "policy")}
      print(f"{name:9s} {runs} runs, {results[name]['models_fitted']} ensembles fitted: "
            f"{results[name]['model_chunk_s']:.1f} s per 1000 model steps, "
            f"{results[name]['policy_chunk_s']:.1f} s per 1000 SAC updates")
  speedup = results["unshared"]["model_chunk_s"] / results["shared"]["model_chunk_s"]
  print(f"model phase: {speedup:.2f}x faster shared")
  if args.out:
    out = {"benchmark": "shared_phase", "device": jax.devices()[0].device_kind,
           "host": platform.node(), "dataset": args.dataset, "env": env,
           "penalties": penalties, "seeds": args.seeds, "results": results,
           "model_phase_speedup": speedup}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
  main()
