"""Dreamer throughput: imagined latent steps per second, updates per second, and environment
steps per second of the whole training iteration, for model-size presets and batch sizes.

For each preset (default: ``debug`` and ``small``):
- imagination: the actor rolling the RSSM prior ``horizon`` steps from ``B`` start states
  (forward only), for each ``B`` in ``--starts``: imagined latent steps/s = B x horizon / time;
- updates: one full update (world model on ``batch x seq_len`` replayed steps, then actor and
  critic on trajectories imagined from every replayed state), for each batch in ``--batches``:
  updates/s and replayed steps/s;
- training iteration: collect ``num_envs x steps_per_iteration`` agent steps on ``--env`` with
  the policy, add them to replay, then ``updates_per_iteration`` updates: env steps/s (physics
  steps, i.e. agent steps x action repeat) and agent steps/s;
- compile time of each program, apart from run time (first call minus a timed call).

Every figure is the median of timed calls after a warm-up; a case whose first call exceeds
``--max-seconds`` is timed once and marked so. Writes JSON (``--out``).

    python benchmarks/dreamer_throughput.py --out benchmarks/results/dreamer_throughput-cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
from timing import (  # benchmarks/timing.py (this folder is on sys.path)
  time_call,
  time_stats,
  write_json,
)

from wmjax import envs, presets
from wmjax.agents import dreamer as dreamer_lib
from wmjax.replay.sequences import sample_sequences


def bench_preset(env_name: str, size: str, args) -> dict:
  base = presets.defaults("dreamer", env_name)[0]
  config = dataclasses.replace(
      base, size=size, deter=None, hidden=None, units=None, layers=None, stoch_groups=None,
      stoch_classes=None, cnn_depth=None, imagine_starts=0,
      replay_capacity=max(base.replay_capacity, 64 * base.num_envs * base.seq_len))
  hyper = presets.defaults("dreamer", env_name)[1]
  env = envs.make(env_name, action_repeat=config.action_repeat)
  dreamer = dreamer_lib.make_dreamer(env, config)
  wm = dreamer.world_model
  state, init_s = time_call(jax.jit(dreamer.init), jax.random.PRNGKey(0), hyper)
  out = {"size": size, "model": dataclasses.asdict(dreamer.model_config),
         "params": {k: dreamer_lib.param_count(v) for k, v in state.params.items()},
         "init_and_prefill_seconds": init_s,
         "imagination": [], "updates": []}
  print(f"\n[{size}] params: {out['params']}")

  def imagine(params, key, start):
    pol = lambda k, feat: dreamer.policy(params["actor"], k, feat)[1:]
    states, _, _ = wm.imagine(params["model"], key, pol, start, config.horizon)
    return states.deter.sum()

  imagine_fn = jax.jit(imagine)
  for starts in args.starts:
    start = wm.initial((starts,))
    r = time_stats(imagine_fn, state.params, jax.random.PRNGKey(1), start,
                   repeats=args.repeats, max_seconds=args.max_seconds)
    r.update(starts=starts, horizon=config.horizon,
             imagined_steps_per_s=starts * config.horizon / r["seconds"])
    out["imagination"].append(r)
    print(f"  imagine {starts:5d} starts x {config.horizon}: "
          f"{r['imagined_steps_per_s']:12,.0f} latent steps/s  "
          f"(compile {r['compile_seconds']:.1f} s)")

  update_fn = jax.jit(dreamer.update)
  for batch in args.batches:
    data = sample_sequences(state.buffer, jax.random.PRNGKey(2), batch, config.seq_len)
    data = dict(data, obs=data["obs"].astype(jnp.float32) /
                (255.0 if data["obs"].dtype == jnp.uint8 else 1.0))
    r = time_stats(update_fn, state.params, state.slow_critic, state.opt_state, state.retnorm,
                   jax.random.PRNGKey(3), data, hyper, repeats=args.repeats,
                   max_seconds=args.max_seconds)
    r.update(batch=batch, seq_len=config.seq_len, updates_per_s=1.0 / r["seconds"],
             replayed_steps_per_s=batch * config.seq_len / r["seconds"],
             imagined_steps_per_s=batch * config.seq_len * config.horizon / r["seconds"])
    out["updates"].append(r)
    print(f"  update batch {batch:3d} x {config.seq_len}: {r['updates_per_s']:8.2f} updates/s, "
          f"{r['replayed_steps_per_s']:10,.0f} replayed steps/s  (compile "
          f"{r['compile_seconds']:.1f} s)")

  iteration_fn = jax.jit(dreamer.train_iteration)
  r = time_stats(lambda s: iteration_fn(s, hyper)[0].agent_steps, state,
                 repeats=args.repeats, max_seconds=args.max_seconds)
  rows = config.num_envs * config.steps_per_iteration
  r.update(num_envs=config.num_envs, steps_per_iteration=config.steps_per_iteration,
           updates_per_iteration=config.updates_per_iteration, train_ratio=config.train_ratio,
           agent_steps_per_s=rows / r["seconds"],
           env_steps_per_s=rows * config.action_repeat / r["seconds"])
  out["iteration"] = r
  print(f"  training iteration ({rows} agent steps, {config.updates_per_iteration} updates): "
        f"{r['env_steps_per_s']:8.1f} env steps/s, {r['agent_steps_per_s']:7.1f} agent steps/s "
        f"(compile {r['compile_seconds']:.1f} s)")
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--env", default="dmc/CartpoleSwingup",
                      help="environment for the training-iteration figure (default config)")
  parser.add_argument("--sizes", nargs="+", default=["debug", "small"],
                      choices=list(dreamer_lib.SIZES))
  parser.add_argument("--starts", nargs="+", type=int, default=[256, 1024, 4096],
                      help="imagination start states (batch)")
  parser.add_argument("--batches", nargs="+", type=int, default=[4, 16],
                      help="replayed sequences per update")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--max-seconds", type=float, default=30.0,
                      help="stop timing a case after this many seconds of timed calls")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args()

  device = jax.devices()[0]
  result = {"benchmark": "dreamer_throughput", "env": args.env,
            "device": f"{device.platform}:{device.device_kind}", "cpu": platform.processor(),
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"), "presets": []}
  print(f"device {result['device']}, jax {jax.__version__}, env {args.env}")
  for size in args.sizes:
    result["presets"].append(bench_preset(args.env, size, args))
  write_json(args.out, result)


if __name__ == "__main__":
  main()


