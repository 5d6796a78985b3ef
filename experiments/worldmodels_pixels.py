"""World Models on a pixel DM Control task: one V and M per seed, four controllers.

The paper's workflow (Ha & Schmidhuber 2018): random-policy episodes train V (a conv VAE on
64x64 frames) and M (an MDN-RNN on V's latents) once; then C is evolved by CMA-ES either in the
real environment or entirely inside M's dream at temperature tau. Here the same V and M (per
seed) serve four controllers, so the controller's training is the only thing that differs:

- ``real``: C trained in the real env (every candidate's episodes rendered and encoded by V);
- ``dream-0.5``, ``dream-1.0``, ``dream-1.3``: C trained only in M's dream at that tau.

Each final CMA-ES mean controller is scored on ``--episodes`` real episodes per seed; the random
policy's score is the mean return of the random episodes V and M learned from (as many per
seed). Settings are the ``dmc-pixels`` World Models preset (``wmjax presets worldmodels``);
seeds are vmapped. Writes ``results.json``, ``table.md``, ``curves.png`` (real-env evaluation
return against CMA-ES generation), ``reconstructions.png`` (V) and ``dream-<controller>.gif`` /
``.png`` (a real episode and M's dream from its first frame, side by side) to ``--out``.

    python experiments/worldmodels_pixels.py --out experiments/results/worldmodels-pixels-cpu

About 1.5 h on a 2-core CPU with the defaults (2 seeds); ``--quick`` checks the pipeline in
a few minutes with tiny sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pickle
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wmjax import presets
from wmjax.agents import worldmodels as wm_lib
from wmjax.envs import make

CONTROLLERS = {"real": ("real", 1.0), "dream-0.5": ("dream", 0.5), "dream-1.0": ("dream", 1.0),
               "dream-1.3": ("dream", 1.3)}


def _log(msg: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _first(tree):
  return jax.tree.map(lambda a: a[0], tree)


def train_vm(wm, config, keys, hypers):
  """Collects the random episodes and trains V, then M, for every seed (vmapped)."""
  t0 = time.time()
  data = jax.jit(jax.vmap(wm.collect))(keys)
  state = jax.jit(jax.vmap(wm.init))(keys, hypers, data)
  jax.block_until_ready(state)
  _log(f"collected {config.episodes} random episodes per seed ({time.time() - t0:.0f} s)")
  vae_epoch = jax.jit(jax.vmap(functools.partial(wm.train_vae, epochs=1)))
  for epoch in range(config.vae_epochs):
    state, metrics = vae_epoch(state, hypers)
    _log(f"V epoch {epoch + 1}/{config.vae_epochs}: loss "
         f"{np.asarray(metrics['vae/loss']).mean():.2f} ({time.time() - t0:.0f} s)")
  chunk = config.mdn_epochs_per_chunk
  mdn_chunk = jax.jit(jax.vmap(functools.partial(wm.train_mdn, epochs=chunk)))
  for done in range(0, config.mdn_epochs, chunk):
    state, metrics = mdn_chunk(state, hypers)
    _log(f"M epochs {done + chunk}/{config.mdn_epochs}: loss "
         f"{np.asarray(metrics['mdn/loss'])[:, -1].mean():.3f} ({time.time() - t0:.0f} s)")
  return state, time.time() - t0


def train_controller(env, config, state, hypers, key, name, episodes, real_budget=None):
  """CMA-ES from a fresh search on the given V and M; returns the curve and the final score.
  ``real_budget``: ``(generations, rollouts)`` for the controller trained in the real env (each
  of its candidates' episodes is rendered and encoded, so it costs far more than a dream)."""
  mode, tau = CONTROLLERS[name]
  cfg = dataclasses.replace(config, mode=mode, tau=tau)
  if mode == "real" and real_budget is not None:
    cfg = dataclasses.replace(cfg, generations=real_budget[0], rollouts=real_budget[1],
                              eval_every=min(cfg.eval_every, real_budget[0]))
  wm = wm_lib.make_worldmodels(env, cfg)
  seeds = hypers.vae_lr.shape[0]
  keys = jax.random.split(key, seeds + 2)
  # A fresh CMA-ES search (init's), on this seed's V and M.
  fresh = jax.jit(jax.vmap(wm.init))(keys[:seeds], hypers, state.data)
  state = state._replace(es=fresh.es, generations=fresh.generations)
  gens = jax.jit(jax.vmap(functools.partial(wm.es_generations, generations=cfg.eval_every)))
  evaluate = jax.jit(jax.vmap(wm.evaluate))
  curve, t0 = [], time.time()
  for done in range(0, cfg.generations, cfg.eval_every):
    state, metrics = gens(state, hypers)
    mean, _ = evaluate(state, jax.random.split(jax.random.fold_in(keys[-1], done), seeds))
    point = {"generation": done + cfg.eval_every,
             "eval_return": np.asarray(mean.returns).mean(1).tolist(),
             "pop_mean_return": np.asarray(metrics["es/pop_mean_return"])[:, -1].tolist(),
             "seconds": time.time() - t0}
    curve.append(point)
    _log(f"{name} generation {point['generation']}/{cfg.generations}: real-env return "
         f"{np.mean(point['eval_return']):.1f} per seed {np.round(point['eval_return'], 1)}, "
         f"population mean ({mode}) {np.mean(point['pop_mean_return']):.1f}")
  train_seconds = time.time() - t0
  final = dataclasses.replace(cfg, eval_episodes=episodes)
  wm_final = wm_lib.make_worldmodels(env, final)
  episodes, _ = jax.jit(jax.vmap(wm_final.evaluate))(state, jax.random.split(keys[-2], seeds))
  returns = np.asarray(episodes.returns)
  _log(f"{name}: {episodes} real episodes per seed: {returns.mean():.1f} +- "
       f"{returns.std():.1f} per seed {np.round(returns.mean(1), 1)}")
  return wm, state, {"mode": mode, "tau": tau, "curve": curve,
                     "final_mean": float(returns.mean()), "final_std": float(returns.std()),
                     "final_per_seed": returns.mean(1).tolist(),
                     "train_seconds": train_seconds, "generations": cfg.generations,
                     "rollouts": cfg.rollouts, "population": cfg.population_size,
                     "real_env_steps_per_seed": (cfg.generations * cfg.population_size
                                                 * cfg.rollouts * env.steps_per_episode
                                                 * cfg.action_repeat if mode == "real" else 0)}


def plot(results: dict, path: Path, random_mean: float) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for name, res in results["controllers"].items():
    x = [p["generation"] for p in res["curve"]]
    per_seed = np.array([p["eval_return"] for p in res["curve"]])   # [points, seeds]
    line, = ax.plot(x, per_seed.mean(1), marker="o", label=name)
    for s in range(per_seed.shape[1]):
      ax.plot(x, per_seed[:, s], color=line.get_color(), alpha=0.3, lw=0.8)
  ax.axhline(random_mean, color="grey", ls="--", label="random policy")
  ax.set_xlabel("CMA-ES generation")
  ax.set_ylabel("real-env return (CMA-ES mean controller)")
  ax.set_title(f"World Models, {results['env']} (64x64 frames), {results['seeds']} seeds")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--env", default="dmc-pixels/CartpoleSwingup")
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--episodes", type=int, default=100,
                      help="real episodes per seed that score each final controller")
  parser.add_argument("--controllers", default=",".join(CONTROLLERS),
                      help=f"comma-separated, from {', '.join(CONTROLLERS)}")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="override a WorldModelsConfig field of the preset (ints and floats)")
  parser.add_argument("--real-generations", type=int, help="CMA-ES generations of the "
                      "controller trained in the real env (default: the preset's)")
  parser.add_argument("--real-rollouts", type=int, help="its episodes per candidate per "
                      "generation (default: the preset's)")
  parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
  parser.add_argument("--cache", help="pickle V and M here after training them, and reuse them "
                      "if the file exists (the same env, seeds and settings)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  names = [n.strip() for n in args.controllers.split(",") if n.strip()]
  unknown = [n for n in names if n not in CONTROLLERS]
  if unknown or not names:
    parser.error(f"unknown controller(s) {unknown}; choose from {', '.join(CONTROLLERS)}")
  if args.seeds < 1 or args.episodes < 1:
    parser.error("--seeds and --episodes must be >= 1")
  for flag in ("real_generations", "real_rollouts"):
    if getattr(args, flag) is not None and getattr(args, flag) < 1:
      parser.error(f"--{flag.replace('_', '-')} must be >= 1")

  resolved = presets.resolve("worldmodels", args.env, wm_lib.WorldModelsConfig,
                             wm_lib.WorldModelsHyper)
  config = resolved.config
  if args.quick:
    config = dataclasses.replace(config, episodes=4, vae_epochs=1, vae_batch_size=50,
                                 mdn_epochs=2, mdn_epochs_per_chunk=1, mdn_batch_size=2,
                                 population_size=4, generations=2, rollouts=1, eval_every=1,
                                 eval_episodes=2, hidden_size=16, latent_size=8, vae_depth=4)
  for item in args.set:
    field, _, value = item.partition("=")
    if field not in {f.name for f in dataclasses.fields(config)}:
      parser.error(f"--set {item}: WorldModelsConfig has no field {field!r}")
    current = getattr(config, field)
    config = dataclasses.replace(config, **{field: type(current)(value)})
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  env = make(args.env, action_repeat=config.action_repeat)
  wm = wm_lib.make_worldmodels(env, config)
  keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
  hypers = jax.tree.map(lambda v: jnp.full((args.seeds,), v, jnp.float32),
                        wm_lib.WorldModelsHyper())
  _log(f"{args.env}: preset {resolved.name}, {args.seeds} seeds, V {wm.vae_config}, "
       f"controller {wm.num_params} parameters")

  cache = Path(args.cache) if args.cache else None
  signature = repr((args.env, args.seeds, args.seed, config))
  if cache is not None and cache.exists():
    with cache.open("rb") as f:
      saved = pickle.load(f)
    if saved["signature"] != signature:
      parser.error(f"--cache {cache} holds V and M of other settings; remove it or pick "
                   "another path")
    state, vm_seconds = jax.tree.map(jnp.asarray, saved["state"]), saved["seconds"]
    _log(f"V and M from {cache}")
  else:
    state, vm_seconds = train_vm(wm, config, keys, hypers)
    if cache is not None:
      with cache.open("wb") as f:
        pickle.dump({"signature": signature, "state": jax.device_get(state),
                     "seconds": vm_seconds}, f)

  from wmjax.train.figures import save_dream, save_vae_reconstructions

  mse = save_vae_reconstructions(wm, _first(state), out / "reconstructions.png")
  random_returns = np.asarray(state.data.reward).sum(-1)   # [seeds, episodes]
  results = {"env": args.env, "preset": resolved.name, "seeds": args.seeds,
             "config": dataclasses.asdict(config), "vm_seconds": vm_seconds,
             "vae_reconstruction_mse": mse,
             "random": {"mean": float(random_returns.mean()),
                        "std": float(random_returns.std()),
                        "per_seed": random_returns.mean(1).tolist(),
                        "episodes_per_seed": int(random_returns.shape[1])},
             "data_env_steps_per_seed": config.episodes * env.steps_per_episode
             * config.action_repeat,
             "platform": jax.default_backend(), "controllers": {}}
  path = out / "results.json"
  if path.exists():   # keep controllers of an earlier call (e.g. --controllers real)
    earlier = json.loads(path.read_text())
    if earlier.get("config") == results["config"] and earlier.get("seeds") == args.seeds:
      results["controllers"].update(earlier.get("controllers", {}))
  real_budget = (args.real_generations or config.generations,
                 args.real_rollouts or config.rollouts)
  for name in names:
    key = jax.random.PRNGKey(1000 + list(CONTROLLERS).index(name))
    wm_c, state_c, res = train_controller(env, config, state, hypers, key, name, args.episodes,
                                          real_budget)
    res["dream"] = save_dream(wm_c, _first(state_c), jax.random.PRNGKey(7),
                              out / f"dream-{name}.gif", out / f"dream-{name}.png",
                              scale=max(1, 128 // env.spec.obs_shape[0]))
    results["controllers"][name] = res
    path.write_text(json.dumps(results, indent=1, default=float))
    plot(results, out / "curves.png", results["random"]["mean"])
  rows = ["| controller | real-env return, mean +- std | per seed | training wall-clock |",
          "|---|---|---|---|",
          f"| random policy | {results['random']['mean']:.1f} +- {results['random']['std']:.1f}"
          f" | {' / '.join(f'{v:.1f}' for v in results['random']['per_seed'])} | |"]
  for name, res in results["controllers"].items():
    rows.append(f"| {name} | {res['final_mean']:.1f} +- {res['final_std']:.1f} | "
                f"{' / '.join(f'{v:.1f}' for v in res['final_per_seed'])} | "
                f"{res['train_seconds'] / 60:.1f} min |")
  rows.append(f"\nV and M: {vm_seconds / 60:.1f} min for {args.seeds} seeds (vmapped).")
  (out / "table.md").write_text("\n".join(rows) + "\n")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
