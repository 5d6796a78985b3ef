"""Peak resident memory of a Dreamer run with a 1M-step replay buffer, with and without
donating the training state to each jitted chunk.

Without donation every call of ``jit(vmap(chunk))`` holds its input state and its output state
at once, the replay buffer twice. The driver donates the state (``donate_argnums``), so XLA
writes the new state into the old one's buffers. Each variant runs in its own process
(``ru_maxrss`` is a process's peak): Dreamer (debug model) on ``fast/PointMassPixels``
(16x16x3 uint8 frames, 768 bytes a step) with ``replay_capacity`` 1,000,000 (0.77 GB of frames),
for a few chunks, through ``wmjax.train.loop.train``.

    python benchmarks/donation_memory.py            # ~4 min on 2 CPU cores
    python benchmarks/donation_memory.py --capacity 200000

Writes ``benchmarks/results/donation_memory-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

SETS = ["size=debug", "num_envs=4", "steps_per_iteration=16", "prefill=128", "batch_size=4",
        "seq_len=16", "train_ratio=8", "imagine_starts=32", "eval_episodes=1", "eval_every=0"]


def child(donate: bool, capacity: int) -> dict:
  import jax

  from wmjax.train.common import tree_bytes
  from wmjax.train.loop import load_run, train

  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.time()
    train("dreamer", "fast/PointMassPixels", out=pathlib.Path(tmp) / "run", steps=128 + 64 * 15,
          sets=[*SETS, f"replay_capacity={capacity}"], progress=False, donate=donate)
    wall = time.time() - t0
    state = load_run(pathlib.Path(tmp) / "run")[2]
    state_bytes = tree_bytes(state)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB
  return {"donate": donate, "peak_rss_bytes": peak, "state_bytes": state_bytes,
          "wall_s": wall, "device": jax.devices()[0].device_kind,
          "backend": jax.default_backend(), "jax": jax.__version__}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--capacity", type=int, default=1_000_000)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  parser.add_argument("--child", choices=("donate", "keep"), default=None)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.child == "donate", args.capacity)))
    return {}
  rows = []
  for variant in ("keep", "donate"):
    proc = subprocess.run([sys.executable, __file__, "--child", variant, "--capacity",
                           str(args.capacity)], capture_output=True, text=True)
    if proc.returncode != 0:
      print(proc.stdout, proc.stderr, file=sys.stderr)
      raise SystemExit(f"the {variant} run failed")
    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    r = rows[-1]
    print(f"{'donated' if r['donate'] else 'not donated'}: peak RSS "
          f"{r['peak_rss_bytes'] / 2**30:.2f} GiB (training state {r['state_bytes'] / 2**30:.2f} "
          f"GiB), {r['wall_s']:.0f} s", flush=True)
  keep, donate = rows
  result = {"benchmark": "donation_memory", "algo": "dreamer", "env": "fast/PointMassPixels",
            "replay_capacity": args.capacity, "sets": SETS, "rows": rows,
            "saved_bytes": keep["peak_rss_bytes"] - donate["peak_rss_bytes"],
            "saved_over_state": (keep["peak_rss_bytes"] - donate["peak_rss_bytes"])
            / donate["state_bytes"]}
  print(f"donation saves {result['saved_bytes'] / 2**30:.2f} GiB of peak memory "
        f"({result['saved_over_state']:.2f} x the training state)")
  out = args.out or (pathlib.Path(__file__).parent / "results" /
                     f"donation_memory-{rows[0]['backend']}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {out}")
  return result


if __name__ == "__main__":
  main()
