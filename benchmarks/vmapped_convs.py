"""Vmapped runs of a pixel model: is one program over R runs (``jax.vmap``, what the driver and
sweeps do) slower than the same R runs one after another inside one program (``jax.lax.map``)?

Vmapping a convolution over the runs' own weights compiles to a grouped convolution
(``feature_group_count`` = R, forward and backward); this counts them in the compiled program.
On a lent H200 the pixel Dreamer's update for 4 vmapped xsmall runs took 0.31 s, about 2x the
time the unvmapped small model's rate predicts (README, "Dreamer on pixel cartpole"). This
benchmark settles it on the device it runs on: for each R in ``--runs``, one Dreamer update
(world model, actor, critic; the preset's batch of sequences) for R runs

- vmapped over the runs: one program, the run axis batched into every op;
- mapped over the runs: one program that updates the runs in sequence;

and writes the median time per call, per run, the matrix-product FLOPs per call (scan bodies
times their length, ``harness.matmul_flops``) and the grouped convolutions of each program
(JSON, ``--out``).

    python benchmarks/vmapped_convs.py --out benchmarks/results/vmapped_convs-cpu.json
    python benchmarks/vmapped_convs.py --size debug --batch 2 --seq-len 8 --image 16 --runs 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import platform
import re
import time

import jax
import jax.numpy as jnp
from harness import matmul_flops
from timing import time_stats, write_json  # benchmarks/timing.py (this folder is on sys.path)

from wmjax import envs, presets
from wmjax.agents import dreamer as dreamer_lib
from wmjax.replay.sequences import sample_sequences


def grouped_convs(compiled_text: str) -> list[int]:
  """The feature group counts above 1 of the compiled program's convolutions."""
  return sorted({int(g) for g in re.findall(r"feature_group_count=(\d+)", compiled_text)
                 if int(g) > 1})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--env", default="dmc-pixels/CartpoleSwingup")
  parser.add_argument("--preset", default="xsmall-cpu")
  parser.add_argument("--size", default="xsmall", choices=list(dreamer_lib.SIZES))
  parser.add_argument("--image", type=int, default=64, help="frames are IMAGE x IMAGE")
  parser.add_argument("--batch", type=int, default=16, help="replayed sequences per update")
  parser.add_argument("--seq-len", type=int, default=64)
  parser.add_argument("--runs", nargs="+", type=int, default=[1, 2, 4])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max-seconds", type=float, default=20.0)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args()
  if min(args.runs) < 1:
    parser.error("--runs must be >= 1")

  env_name = f"{args.env}?image_size={args.image}"
  base, hyper = presets.defaults("dreamer", env_name, name=args.preset)
  config = dataclasses.replace(
      base, size=args.size, deter=None, hidden=None, units=None, layers=None,
      stoch_groups=None, stoch_classes=None, cnn_depth=None, batch_size=args.batch,
      seq_len=args.seq_len, prefill=max(base.prefill, args.seq_len * base.num_envs),
      imagine_starts=min(base.imagine_starts, args.batch * args.seq_len),
      replay_capacity=max(4 * args.seq_len * base.num_envs, 1000))
  env = envs.make(env_name, action_repeat=config.action_repeat)
  dreamer = dreamer_lib.make_dreamer(env, config)
  device = jax.devices()[0]
  result = {"benchmark": "vmapped_convs", "env": env_name, "preset": args.preset,
            "size": args.size, "batch": args.batch, "seq_len": args.seq_len,
            "device": f"{device.platform}:{device.device_kind}", "cpu": platform.processor(),
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"), "rows": []}
  print(f"device {result['device']}, jax {jax.__version__}, {env_name}, {args.size}, "
        f"batch {args.batch} x {args.seq_len}")

  def one(state, key):
    data = sample_sequences(state.buffer, key, config.batch_size, config.seq_len)
    data = dict(data, obs=data["obs"].astype(jnp.float32) /
                (255.0 if data["obs"].dtype == jnp.uint8 else 1.0))
    out = dreamer.update(state.params, state.slow_critic, state.opt_state, state.retnorm, key,
                         data, hyper)
    return jax.tree.leaves(out[0])[0].sum()   # one scalar keeps the whole update live

  states = jax.jit(jax.vmap(dreamer.init, in_axes=(0, None)))(
      jax.random.split(jax.random.PRNGKey(0), max(args.runs)), hyper)
  for runs in args.runs:
    sub = jax.tree.map(lambda x, r=runs: x[:r], states)
    keys = jax.random.split(jax.random.PRNGKey(1), runs)
    for form, fn in (("vmap", jax.vmap(one)),
                     ("map", lambda s, k: jax.lax.map(lambda a: one(*a), (s, k)))):
      jitted = jax.jit(fn)
      compiled = jitted.lower(sub, keys).compile()
      r = time_stats(jitted, sub, keys, repeats=args.repeats, max_seconds=args.max_seconds)
      r.update(runs=runs, form=form, seconds_per_run=r["seconds"] / runs,
               grouped_convs=grouped_convs(compiled.as_text()))
      r["matmul_flops"], r["flops_exact"] = matmul_flops(fn, sub, keys)
      result["rows"].append(r)
      print(f"  {runs} run(s), {form:4s}: {r['seconds'] * 1e3:9.1f} ms per update "
            f"({r['seconds_per_run'] * 1e3:8.1f} ms per run), grouped convs "
            f"{r['grouped_convs'] or 'none'}, compile {r['compile_seconds']:.1f} s")
  write_json(args.out, result)


if __name__ == "__main__":
  main()
