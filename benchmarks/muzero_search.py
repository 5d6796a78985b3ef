"""MuZero search and self-play throughput on a pgx game (default: connect four, its default
network).

- search: one mctx search (``gumbel`` by default) over the learned model for ``B`` positions at
  once, for each ``B`` in ``--batches`` and each simulation count in ``--simulations``:
  simulations/s = B x simulations / time (each simulation is one dynamics + prediction call
  for one position), and searched positions (moves)/s;
- training iteration: the whole jitted iteration of the default config (self-play of
  ``num_envs x steps_per_iteration`` moves with search, replay writes, ``updates_per_iteration``
  updates): self-play moves/s;
- compile time of each program, apart from run time (first call minus a timed call).

Every figure is the median of timed calls after a warm-up; a case whose timed calls pass
``--max-seconds`` stops early (``timed_calls`` says how many ran). Writes JSON (``--out``).

    python benchmarks/muzero_search.py --out benchmarks/results/muzero_search-cpu.json
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

from wmjax import presets
from wmjax.agents import muzero as muzero_lib
from wmjax.envs.pgx import make_game
from wmjax.models.muzero import param_count


def bench_search(agent, game, params, hyper, config, simulations, batches, repeats: int,
                 max_seconds: float) -> list[dict]:
  """One mctx search over ``B`` positions for each simulation count and batch: a dict each."""
  out = []
  discount = muzero_lib.ply_discount(game, jnp.float32(hyper.discount))
  for sims in simulations:
    search_config = dataclasses.replace(muzero_lib.search_config(config), num_simulations=sims)
    search = jax.jit(muzero_lib.make_muzero_search(agent.net, search_config),
                     static_argnums=5)
    for batch in batches:
      games = jax.vmap(game.init)(jax.random.split(jax.random.PRNGKey(1), batch))
      r = time_stats(lambda o, legal, fn=search: fn(params, jax.random.PRNGKey(2), o, legal,
                                                    discount, True).action,
                     games.observation, games.legal, repeats=repeats, max_seconds=max_seconds)
      r.update(batch=batch, simulations=sims,
               simulations_per_s=batch * sims / r["seconds"],
               positions_per_s=batch / r["seconds"])
      out.append(r)
      print(f"  search batch {batch:5d} x {sims:3d} simulations: "
            f"{r['simulations_per_s']:12,.0f} simulations/s, {r['positions_per_s']:10,.1f} "
            f"moves searched/s  (compile {r['compile_seconds']:.1f} s)")
  return out


def bench_iteration(agent, config, hyper, repeats: int, max_seconds: float) -> dict:
  """The whole jitted training iteration (self-play, replay writes, updates), replay filled."""
  state = jax.jit(agent.init)(jax.random.PRNGKey(3), hyper)
  iteration = jax.jit(agent.train_iteration)
  # Fill the replay first so the timed iterations include their updates; the first of these
  # calls compiles the iteration.
  warm = -(-agent.window // config.steps_per_iteration) + 1
  state, first = time_call(lambda s: iteration(s, hyper)[0], state)
  for _ in range(warm - 1):
    state, _ = iteration(state, hyper)
  r = time_stats(lambda s: iteration(s, hyper)[0].moves, state, repeats=repeats,
                 max_seconds=max_seconds)
  r["compile_seconds"] = max(0.0, first - r["seconds"])
  moves = config.num_envs * config.steps_per_iteration
  r.update(num_envs=config.num_envs, steps_per_iteration=config.steps_per_iteration,
           num_simulations=config.num_simulations,
           updates_per_iteration=config.updates_per_iteration, batch_size=config.batch_size,
           self_play_moves_per_s=moves / r["seconds"])
  print(f"  training iteration ({moves} self-play moves with {config.num_simulations} "
        f"simulations, {config.updates_per_iteration} updates of {config.batch_size}): "
        f"{r['self_play_moves_per_s']:8.1f} moves/s (compile {r['compile_seconds']:.1f} s)")
  return r


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--game", default="pgx/connect_four")
  parser.add_argument("--batches", nargs="+", type=int, default=[1, 64, 1024])
  parser.add_argument("--simulations", nargs="+", type=int, default=[32, 64, 128])
  parser.add_argument("--search", default="gumbel", choices=["gumbel", "puct"])
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                      help="MuZeroConfig fields for the network and the training iteration, "
                      "e.g. net=resnet channels=64")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--max-seconds", type=float, default=20.0,
                      help="stop timing a case after this many seconds of timed calls")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args()

  from wmjax.train.overrides import apply_overrides

  game = make_game(args.game)
  config, hyper = apply_overrides(presets.defaults("muzero", args.game)[0],
                                  presets.defaults("muzero", args.game)[1], args.set)
  config = dataclasses.replace(config, search=args.search)
  device = jax.devices()[0]
  agent = muzero_lib.make_muzero(game, config)
  params = jax.jit(agent.net.init)(jax.random.PRNGKey(0))
  result = {"benchmark": "muzero_search", "game": args.game,
            "device": f"{device.platform}:{device.device_kind}", "cpu": platform.processor(),
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"),
            "config": dataclasses.asdict(config), "params": param_count(params),
            "search": [], "iteration": None}
  print(f"device {result['device']}, jax {jax.__version__}, {args.game}, {config.net} network "
        f"({result['params']:,} parameters), {args.search} search")
  result["search"] = bench_search(agent, game, params, hyper, config, args.simulations,
                                  args.batches, args.repeats, args.max_seconds)
  result["iteration"] = bench_iteration(agent, config, hyper, args.repeats, args.max_seconds)
  write_json(args.out, result)


if __name__ == "__main__":
  main()
