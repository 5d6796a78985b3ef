"""Why vmapping runs gains little on a CPU: the cost of R stacked copies of the ops an agent
iteration is made of, against one copy.

A vmapped sweep turns each op of one run into the same op with a leading run axis. Where one
run's op is bound by per-op overhead, R copies cost about as much as one (the GPU case:
``benchmarks/results/nvidia-h100-*``). Where it is already bound by arithmetic or memory, R
copies cost R times as much or more. This times, for R in ``--runs``:

- ``matmul``: an ensemble layer, ``[R, 5, 128, 200] x [R, 5, 200, 200]`` (5 members, 128
  particles each, 200 hidden units);
- ``rollout``: 10 steps of that layer with a tanh in a ``lax.scan`` (a model rollout);
- ``elementwise``: ``tanh(x) * sigmoid(x)`` on ``[R, 5, 128, 200]``;
- ``normal``: ``jax.random.normal`` of ``[R, 5, 128, 8]`` (particle noise; threefry).

Each figure is the median of ``--repeats`` timed calls after a warm-up call; ``ratio`` is
time(R) / time(1): below R means batching gains, R means none. Prints a table and writes JSON.

    python benchmarks/cpu_batching.py --out benchmarks/results/cpu_batching-cpu.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform

import jax
import jax.numpy as jnp
from timing import time_calls  # benchmarks/timing.py (this folder is on sys.path)


def layer(x, w):
  return jnp.einsum("rmnh,rmhk->rmnk", x, w)


def rollout(x, w):
  def body(h, _):
    return 0.5 * jnp.tanh(layer(h, w)) + 0.5 * h, None
  return jax.lax.scan(body, x, None, length=10)[0]


def cases(runs: int, key: jax.Array) -> dict:
  kx, kw = jax.random.split(key)
  x = jax.random.normal(kx, (runs, 5, 128, 200))
  w = jax.random.normal(kw, (runs, 5, 200, 200)) / 15.0
  return {
      "matmul": (jax.jit(layer), (x, w)),
      "rollout": (jax.jit(rollout), (x, w)),
      "elementwise": (jax.jit(lambda x: jnp.tanh(x) * jax.nn.sigmoid(x)), (x,)),
      "normal": (jax.jit(lambda k: jax.random.normal(k, (runs, 5, 128, 8))), (key,)),
  }


def main(argv: list[str] | None = None) -> dict[str, dict[int, float]]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", nargs="+", type=int, default=[1, 2, 8, 64])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON file to write")
  args = parser.parse_args(argv)
  if 1 not in args.runs:
    parser.error("--runs must include 1 (the ratios are against one run)")
  key = jax.random.PRNGKey(0)
  seconds: dict[str, dict[int, float]] = {}
  for r in sorted(args.runs):
    for name, (fn, fn_args) in cases(r, key).items():
      seconds.setdefault(name, {})[r] = time_calls(fn, fn_args, args.repeats)[1]
  print(f"{jax.devices()[0].device_kind} ({jax.default_backend()}), JAX {jax.__version__}")
  print(f"{'op':12s}" + "".join(f"{'R=' + str(r):>22s}" for r in sorted(args.runs)))
  rows = []
  for name, by_r in seconds.items():
    cells = [f"{by_r[r] * 1e3:9.3f} ms ({by_r[r] / by_r[1]:5.1f}x)" for r in sorted(by_r)]
    print(f"{name:12s}" + "".join(f"{c:>22s}" for c in cells))
    rows += [{"op": name, "runs": r, "seconds": s, "ratio_vs_1": s / by_r[1]}
             for r, s in sorted(by_r.items())]
  if args.out is not None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "cpu_batching", "device": jax.devices()[0].device_kind,
        "platform": jax.default_backend(), "jax_version": jax.__version__,
        "cpu": platform.processor() or platform.machine(), "repeats": args.repeats,
        "rows": rows}, indent=1))
    print(f"wrote {args.out}")
  return seconds


if __name__ == "__main__":
  main()
