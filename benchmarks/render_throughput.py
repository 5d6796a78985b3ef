"""Rendering throughput of ``dmc-pixels/`` (``wmjax.envs.render``), apart from the physics.

- render: frames/s of ``jit(vmap(render))`` over a fixed batch of N MJX states (reset with
  their own keys, then a few random steps so that the poses differ), for N in ``--batches``
  (1, 16, 64): the renderer alone, no physics;
- env: agent steps/s of the pixel env (``jit`` of a ``lax.scan`` of ``vmap(env.step)``, random
  actions), physics and rendering together, and of the vector task (``dmc/``) that it wraps,
  physics alone, so that the cost of the frames shows as a ratio;
- compile time of each program, apart (the first call less the median timed call).

Tasks: ``dmc-pixels/CartpoleSwingup`` (a box, capsules, the floor) and
``dmc-pixels/AcrobotSwingup`` (capsules and a cylinder); 64x64 frames with MuJoCo's shadows
(``--no-shadows`` without). Every figure is the median of timed calls after a warm-up call.
Also a section of the suite: ``python benchmarks/run_all.py --only render``.

    python benchmarks/render_throughput.py --out benchmarks/results/render_throughput-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
from harness import Budget, Family, family_rows, measure, run_passes, size_passes

TASKS = ("dmc-pixels/CartpoleSwingup", "dmc-pixels/AcrobotSwingup")
BATCHES = (1, 16, 64)
SETTLE_STEPS = 5   # random steps before the states are frozen, so that the poses differ


def pixel_env(name: str, image_size: int, shadows: bool):
  from wmjax import envs

  return envs.make(name, image_size=image_size, shadows=shadows)


def frozen_states(env, n: int, seed: int = 0):
  """The MJX data of ``n`` envs (``[n, ...]``), each reset with its own key and stepped
  ``SETTLE_STEPS`` times with random actions."""
  vector = env.env   # the wrapped dmc/ env: physics only

  @jax.jit
  def settle(key):
    key_reset, key_steps = jax.random.split(key)
    state = jax.vmap(vector.reset)(jax.random.split(key_reset, n))

    def body(state, key_t):
      action = jax.random.uniform(key_t, (n, *env.spec.action_shape), minval=-1.0, maxval=1.0)
      return jax.vmap(vector.step)(state, action), None

    state, _ = jax.lax.scan(body, state, jax.random.split(key_steps, SETTLE_STEPS))
    return state.data

  return settle(jax.random.PRNGKey(seed))


def steps_program(env, n: int, steps: int):
  """A jitted ``key -> total``: ``n`` envs reset, then ``steps`` random steps. The total sums
  rewards and each step's mean observation: a program that dropped the observations would
  let XLA drop the rendering too."""
  spec = env.spec

  def run(key):
    key_reset, key_steps = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(key_reset, n))

    def body(state, key_t):
      action = jax.random.uniform(key_t, (n, *spec.action_shape), minval=-1.0, maxval=1.0)
      state = jax.vmap(env.step)(state, action)
      return state, jnp.sum(state.reward) + jnp.mean(state.obs)

    _, totals = jax.lax.scan(body, state, jax.random.split(key_steps, steps))
    return jnp.sum(totals)

  return jax.jit(run)


def families(args) -> list[Family]:
  """One family per task for rendering alone, and one each for the pixel env and its vector
  env stepping (the first task only: the physics comparison)."""
  out = []
  for name in args.render_tasks:
    def prepare(name=name):
      t0 = time.perf_counter()
      env = pixel_env(name, args.render_size, not args.no_shadows)
      print(f"[render] {name}: built in {time.perf_counter() - t0:.1f} s, camera "
            f"{env.camera} ({env.camera_name!r}), {args.render_size}x{args.render_size}",
            flush=True)
      render = jax.jit(jax.vmap(env.render))

      def run_case(n):
        data = frozen_states(env, n)
        stats, _, _ = measure(render, (data,), args.repeats, args.max_seconds)
        stats.pop("xla_cost_flops", None)
        return {**stats, "throughput": n / stats["seconds"], "frames_per_call": n}

      return run_case

    out.append(Family("render", f"{name} render only", "frames/s", prepare))

  first = args.render_tasks[0]
  for label, make in (
      ("pixel env steps (physics + frames)",
       lambda: pixel_env(first, args.render_size, not args.no_shadows)),
      ("vector env steps (physics only)",
       lambda: _vector_env(first))):
    def prepare(make=make):
      env = make()

      def run_case(n):
        fn = steps_program(env, n, args.render_env_steps)
        stats, _, _ = measure(fn, (jax.random.PRNGKey(n),), args.repeats, args.max_seconds)
        stats.pop("xla_cost_flops", None)
        return {**stats, "steps": args.render_env_steps,
                "throughput": n * args.render_env_steps / stats["seconds"]}

      return run_case

    out.append(Family("render", f"{first.split('/', 1)[1]}: {label}", "env steps/s", prepare))
  return out


def _vector_env(pixels_name: str):
  from wmjax import envs

  return envs.make("dmc/" + pixels_name.split("/", 1)[1])


def section_render(args, budget: Budget, ctx: dict) -> dict:
  """The suite's ``render`` section: rows for each family at each batch size."""
  fams = families(args)
  run_passes(size_passes(fams, args.render_batches), budget, args,
             on_progress=ctx.get("on_progress"))
  rows = family_rows(fams)
  ratio = {}
  by_case = {(r["case"], r["n"]): r for r in rows if "throughput" in r}
  for n in args.render_batches:
    pix = next((r for (c, m), r in by_case.items() if m == n and "pixel env" in c), None)
    vec = next((r for (c, m), r in by_case.items() if m == n and "vector env" in c), None)
    if pix and vec:
      ratio[str(n)] = vec["throughput"] / pix["throughput"]
  return {"rows": rows, "image_size": args.render_size, "shadows": not args.no_shadows,
          "tasks": list(args.render_tasks),
          "vector_over_pixel_steps": ratio,
          "note": "render only: jit(vmap(render)) over a fixed batch of MJX states, no physics; "
                  "env steps: a jitted scan of vmap(env.step), random actions, no resets, "
                  "each step's observations reduced (so that none is dropped as unused)"}


def add_args(parser: argparse.ArgumentParser) -> None:
  """The section's options (shared with ``run_all.py``)."""
  parser.add_argument("--render-tasks", nargs="+", default=list(TASKS))
  parser.add_argument("--render-batches", nargs="+", type=int, default=list(BATCHES))
  parser.add_argument("--render-size", type=int, default=64, help="frames are SIZE x SIZE")
  parser.add_argument("--render-env-steps", type=int, default=20,
                      help="agent steps per timed call of the env programs")
  parser.add_argument("--no-shadows", action="store_true",
                      help="render without MuJoCo's shadows (no shadow rays)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_args(parser)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--max-seconds", type=float, default=10.0)
  parser.add_argument("--budget-s", type=float, default=600.0)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f"device {device.device_kind} ({device.platform}), jax {jax.__version__}", flush=True)
  t0 = time.perf_counter()
  out = section_render(args, Budget(args.budget_s), {})
  result = {"benchmark": "render_throughput", "device_kind": device.device_kind,
            "platform": device.platform, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "jax_version": jax.__version__,
            "date": time.strftime("%Y-%m-%d"), "config": vars(args) | {"out": str(args.out)},
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "seconds": time.perf_counter() - t0, **out}
  for n, r in out["vector_over_pixel_steps"].items():
    print(f"[render] N={n}: the vector env steps {r:.1f}x as fast as the pixel env")
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
