"""Seconds per PETS planned action with mbrl-lib's cartpole planning configuration.

Configuration (mbrl-lib ``pets`` on cartpole): ensemble of 7 Gaussian MLPs with 4 hidden layers
of 200 SiLU units, CEM with population 350, horizon 15, 5 iterations, 10% elites, 20 particles,
TS-1 propagation, on the PETS cart-pole (obs 4, the angle as sin/cos, action 1).

Reports, after a warm-up call and as the median of several timed calls:
- seconds per planned action for one environment;
- the model FLOPs per action (counted from the layer sizes, and XLA's own cost analysis of the
  compiled program) and the achieved FLOP/s;
- actions per second when planning for a batch of environments at once (vmapped); batches
  whose estimated time per call exceeds ``--max-seconds`` are skipped and say so;
- compile time, apart.

Writes JSON (``--out``) with the device, JAX version and configuration.

    python benchmarks/pets_plan.py --out benchmarks/results/pets_plan-cpu.json
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
from timing import time_calls, write_json  # benchmarks/timing.py (this folder is on sys.path)

from wmjax import planners
from wmjax.models import ensemble as ensemble_lib
from wmjax.models import propagation
from wmjax.types import Spec

CONFIGS = {
    # mbrl-lib's cartpole planning configuration (the target: <= 1.0 s per action).
    "mbrl": dict(ensemble_size=7, num_elites=7, hidden_sizes=(200, 200, 200, 200),
                 activation="silu", population=350, horizon=15, iterations=5,
                 elite_fraction=0.1, num_particles=20, propagation="ts1", obs_size=4,
                 action_size=1, angle_dims=(1,)),
    # The README's main job (dmc/CartpoleSwingup on a 2-core CPU).
    "main": dict(ensemble_size=5, num_elites=5, hidden_sizes=(128, 128, 128),
                 activation="silu", population=128, horizon=12, iterations=4,
                 elite_fraction=0.1, num_particles=5, propagation="tsinf", obs_size=5,
                 action_size=1, angle_dims=()),
}


def model_flops_per_eval(cfg: dict) -> int:
  """FLOPs of one member evaluation (2 per multiply-add; activations not counted)."""
  sizes = [cfg["obs_size"] + len(cfg["angle_dims"]) + cfg["action_size"],
           *cfg["hidden_sizes"], 2 * (cfg["obs_size"] + 1)]
  return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def build(cfg: dict):
  ens = ensemble_lib.make_ensemble(ensemble_lib.EnsembleConfig(
      obs_size=cfg["obs_size"], action_size=cfg["action_size"],
      ensemble_size=cfg["ensemble_size"], num_elites=cfg["num_elites"],
      hidden_sizes=cfg["hidden_sizes"], activation=cfg["activation"],
      angle_dims=cfg["angle_dims"]))
  planner = planners.make_cem(cfg["horizon"], cfg["population"], iterations=cfg["iterations"],
                              elite_fraction=cfg["elite_fraction"])
  spec = Spec(obs_shape=(cfg["obs_size"],), action_shape=(cfg["action_size"],))

  def act(model_state, key, obs, plan_state):
    objective = propagation.make_objective(ens, model_state, obs,
                                           num_particles=cfg["num_particles"],
                                           propagation=cfg["propagation"])
    return planner.plan(plan_state, key, objective)

  model_state = ens.init(jax.random.PRNGKey(0))
  return act, model_state, planner.init(spec)


def matmul_rate(rows: int = 8192, width: int = 512, repeats: int = 10) -> float:
  """The device's f32 matmul rate on a large square-ish product (FLOP/s)."""
  x = jnp.ones((rows, width), jnp.float32)
  w = jnp.ones((width, width), jnp.float32)
  f = jax.jit(lambda x, w: (x @ w) @ w)
  _, median, _ = time_calls(f, (x, w), repeats)
  return 2 * 2 * rows * width * width / median


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON output path")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
  parser.add_argument("--batches", type=str, default="1,64,1024",
                      help="comma-separated batch sizes of environments planned at once")
  parser.add_argument("--max-seconds", type=float, default=60.0,
                      help="skip a batch whose estimated time per call exceeds this")
  parser.add_argument("--config", choices=sorted(CONFIGS), default="mbrl",
                      help="mbrl: mbrl-lib's cartpole setting; main: the README's main job")
  parser.add_argument("--matmul-rate", action="store_true",
                      help="also measure the device's f32 matmul rate (the FLOP floor)")
  args = parser.parse_args()

  cfg = CONFIGS[args.config]
  act, model_state, plan_state = build(cfg)
  obs = jnp.zeros(cfg["obs_size"]).at[1].set(0.1)
  evals = cfg["population"] * cfg["num_particles"] * cfg["horizon"] * cfg["iterations"]
  flops_counted = evals * model_flops_per_eval(cfg)

  single = jax.jit(act)
  key = jax.random.PRNGKey(1)
  t0 = time.perf_counter()
  compiled = single.lower(model_state, key, obs, plan_state).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  first, median, times = time_calls(single, (model_state, key, obs, plan_state), args.repeats)

  result = {
      "benchmark": "pets_plan", "config_name": args.config,
      "device": jax.devices()[0].device_kind, "platform": jax.default_backend(),
      "num_devices": jax.device_count(), "cpu": platform.processor() or platform.machine(),
      "jax_version": jax.__version__, "config": cfg,
      "date": time.strftime("%Y-%m-%d"),
      "compile_s": compile_s,
      "seconds_per_action": median, "seconds_per_action_all": times,
      "model_evals_per_action": evals,
      "model_flops_per_action": flops_counted,
      "xla_flops_per_action": xla_flops,
      "achieved_flops_per_s": flops_counted / median,
      "reference": {"mbrl_lib_pytorch_cpu_s_per_action": 2.5, "target_s_per_action": 1.0},
      "batches": [],
  }
  print(f"device {result['device']} ({result['platform']}), jax {jax.__version__}")
  print(f"compile {compile_s:.1f} s; {median:.3f} s per planned action (median of "
        f"{args.repeats}); {flops_counted / 1e9:.1f} GFLOP per action counted "
        f"({xla_flops / 1e9:.1f} by XLA); {flops_counted / median / 1e9:.1f} GFLOP/s achieved")

  batched = jax.jit(jax.vmap(act, in_axes=(None, 0, 0, 0)))
  for b in [int(x) for x in args.batches.split(",") if x]:
    estimate = median * b
    entry = {"batch": b}
    if estimate > args.max_seconds and b > 1:
      entry["skipped"] = f"estimated {estimate:.0f} s per call > --max-seconds {args.max_seconds}"
      print(f"batch {b:5d}: skipped ({entry['skipped']})")
      result["batches"].append(entry)
      continue
    keys = jax.random.split(jax.random.PRNGKey(2), b)
    obs_b = jnp.tile(obs, (b, 1))
    plan_b = jax.tree.map(lambda x, b=b: jnp.broadcast_to(x, (b, *x.shape)), plan_state)
    repeats_b = max(1, min(args.repeats, int(args.max_seconds // max(estimate, 1e-3))))
    first_b, med_b, _ = time_calls(batched, (model_state, keys, obs_b, plan_b), repeats_b)
    entry.update(seconds_per_call=med_b, actions_per_s=b / med_b,
                 compile_and_first_s=first_b, achieved_flops_per_s=b * flops_counted / med_b)
    print(f"batch {b:5d}: {med_b:.3f} s per call, {b / med_b:.2f} actions/s, "
          f"{b * flops_counted / med_b / 1e9:.1f} GFLOP/s")
    result["batches"].append(entry)

  if args.matmul_rate:
    rate = matmul_rate()
    result["matmul_flops_per_s"] = rate
    result["floor_seconds_per_action"] = flops_counted / rate
    result["achieved_over_floor"] = (flops_counted / rate) / median
    print(f"matmul rate {rate / 1e9:.1f} GFLOP/s: floor {flops_counted / rate:.3f} s per action; "
          f"achieved/floor {result['achieved_over_floor']:.2f}")

  write_json(args.out, result)


if __name__ == "__main__":
  main()
