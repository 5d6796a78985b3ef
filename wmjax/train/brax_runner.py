"""Model-free baselines through brax's own training agents (``brax.training.agents.sac`` and
``.ppo``), writing the same run folder as our agents: ``config.json``, ``metrics.jsonl`` (one
line per evaluation: env steps, wall-clock, evaluation return per seed), ``curve.png`` and
brax's parameter checkpoints under ``checkpoints/seed_<i>/``.

Seeds run one after another (brax's trainers take one seed); each seed's wall-clock is logged.
The defaults are sample-efficiency settings (one env, one update per step for SAC), not
Playground's throughput settings for accelerators; any brax ``train(...)`` argument can be set
with ``--set name=value`` (e.g. ``--set grad_updates_per_step=8 --set num_envs=128``).
"""

from __future__ import annotations

import functools
import inspect
import pathlib
import time

import numpy as np

from wmjax.envs import registry, wrappers
from wmjax.envs.base import spec_of
from wmjax.train.overrides import parse_value
from wmjax.train.plots import plot_curve, seeds_label
from wmjax.train.rundir import RunDir

__all__ = ["BRAX_ALGOS", "default_kwargs", "train_brax", "make_brax_env"]

BRAX_ALGOS = ("sac", "ppo")

# Arguments the driver sets itself: not accepted from --set.
_DRIVER_ARGS = ("environment", "num_timesteps", "seed", "progress_fn", "checkpoint_logdir",
                "save_checkpoint_path", "restore_checkpoint_path", "wrap_env", "wrap_env_fn",
                "eval_env", "randomization_fn", "network_factory", "num_evals",
                "policy_params_fn")


def _jax_compat() -> None:
  """brax 0.14.2's trainers call ``jax.device_put_replicated``, which JAX 0.10 removed; this
  restores it (a copy of the value per device, stacked on a leading axis, as pmap takes)."""
  import jax
  import jax.numpy as jnp

  try:
    jax.device_put_replicated  # noqa: B018 (raises AttributeError where JAX removed it)
  except AttributeError:
    def device_put_replicated(x, devices):
      return jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
    jax.device_put_replicated = device_put_replicated


def _train_fn(algo: str):
  _jax_compat()
  if algo == "sac":
    from brax.training.agents.sac import train as sac_train
    return sac_train.train
  if algo == "ppo":
    from brax.training.agents.ppo import train as ppo_train
    return ppo_train.train
  raise ValueError(f"unknown model-free algorithm {algo!r}; accepted: {', '.join(BRAX_ALGOS)}")


def default_kwargs(algo: str, env_name: str) -> dict:
  """brax ``train`` arguments for ``algo`` on ``env_name`` (before ``--set``)."""
  dmc = env_name.startswith("dmc/")
  common = {"episode_length": 1000 if not env_name.startswith("fast/") else 50,
            "action_repeat": 4 if dmc else 1, "num_eval_envs": 8, "deterministic_eval": True,
            "eval_every": 2000, "max_devices_per_host": 1}
  if algo == "sac":
    # Sample-efficiency SAC (Haarnoja et al.): one env, one update of 256 per agent step.
    return {**common, "num_envs": 1, "batch_size": 256, "learning_rate": 3e-4,
            "discounting": 0.99, "grad_updates_per_step": 1, "min_replay_size": 2000 // (
                4 if dmc else 1), "max_replay_size": None, "tau": 0.005,
            "normalize_observations": False, "reward_scaling": 1.0}
  if algo == "ppo":
    # The MuJoCo PPO of Schulman et al. / baselines: 2048 env steps per update (16 envs x 128
    # steps, 32 minibatches of 64, 10 epochs), clip 0.2, no entropy bonus. (The earlier
    # 16,384-step updates learned nothing on brax/halfcheetah in 295k env steps:
    # experiments/results/ppo-halfcheetah-cpu.) Time limits bootstrap on DM Control, whose
    # wrapper marks them; brax's own envs do not.
    return {**common, "num_envs": 16, "batch_size": 4, "num_minibatches": 32,
            "unroll_length": 16, "num_updates_per_batch": 10, "learning_rate": 3e-4,
            "discounting": 0.99, "entropy_cost": 0.0, "clipping_epsilon": 0.2,
            "normalize_observations": True, "reward_scaling": 1.0, "eval_every": 20_000,
            **({"bootstrap_on_timeout": True} if dmc else {})}
  raise ValueError(f"unknown model-free algorithm {algo!r}; accepted: {', '.join(BRAX_ALGOS)}")


def _apply_sets(algo: str, kwargs: dict, sets, env_name: str = "") -> dict:
  params = inspect.signature(_train_fn(algo)).parameters
  accepted = set(params) - set(_DRIVER_ARGS)
  accepted.add("eval_every")
  kwargs = dict(kwargs)
  for item in sets:
    if "=" not in item:
      raise ValueError(f"--set takes key=value, got {item!r}")
    key, text = (part.strip() for part in item.split("=", 1))
    if key not in accepted:
      raise KeyError(f"--set {key}: not an argument of brax's {algo} trainer. Accepted: "
                     f"{', '.join(sorted(accepted))}.")
    param = params.get(key)
    default = kwargs.get(key, param.default if param is not None else None)
    annotation = (param.annotation if param is not None
                  and param.annotation is not inspect.Parameter.empty else None)
    try:   # by the default's type, else brax's annotation (max_grad_norm: Optional[float])
      kwargs[key] = parse_value(text, annotation, default)
    except ValueError as e:
      raise ValueError(f"--set {item}: {e}") from e
  if kwargs.get("bootstrap_on_timeout") and not env_name.startswith("dmc/"):
    raise ValueError(
        f"--set bootstrap_on_timeout=true: {env_name or 'this env'} does not mark time limits "
        "(brax PPO reads state.info['time_out'], which only the dmc/ suite's wrapper sets). "
        "brax PPO already stops its advantages at a time limit (its 'truncation' mask), so "
        "leave it off here.")
  return kwargs


def make_brax_env(env_name: str, **env_kwargs):
  """A registered env with only our action checks: brax's trainers add their own episode
  limit, action repeat, vmap and auto-reset."""
  base, options = registry.split_options(env_name)
  env, low, high = registry.build_entry(registry.entry(base), base, {**options, **env_kwargs})
  spec = spec_of(env)
  if spec.discrete:
    raise ValueError(f"{env_name} has discrete actions; brax's SAC and PPO here take continuous "
                     "actions (try `wmjax train muzero` or `wmjax train dreamer`).")
  if len(spec.obs_shape) != 1:
    raise ValueError(f"{env_name} has image observations {spec.obs_shape}; the brax baselines "
                     "take vector observations.")
  return wrappers.NormalizeActions(env, low, high), spec


def _wrap_kwargs(env_name: str) -> dict:
  """MuJoCo Playground envs need Playground's training wrappers (their state has no brax
  ``pipeline_state``); episodes restart from fresh random states, as in our agents, rather than
  from one cached first state."""
  if env_name.startswith("dmc/"):
    from mujoco_playground import wrapper as playground_wrapper

    return {"wrap_env_fn": functools.partial(playground_wrapper.wrap_for_brax_training,
                                             full_reset=True)}
  return {}


def train_brax(algo: str, env_name: str, *, steps: int, seeds: int = 1,
               out: str | pathlib.Path, sets: list[str] = (), resume: bool = False,
               seed: int = 0, progress: bool = True) -> RunDir:
  """Trains brax's ``algo`` for ``steps`` env steps per seed; seeds ``seed .. seed+seeds-1``."""
  from tqdm.auto import tqdm

  if resume:
    raise ValueError("--resume is not available for the brax baselines: brax's trainers "
                     "restore parameters but not the replay buffer or optimiser state. Start a "
                     "new run.")
  if seeds < 1:
    raise ValueError(f"--seeds must be >= 1, got {seeds}")
  if steps < 1:
    raise ValueError(f"--steps must be >= 1, got {steps}")
  kwargs = _apply_sets(algo, default_kwargs(algo, env_name), list(sets), env_name)
  eval_every = int(kwargs.pop("eval_every"))
  if algo == "sac" and kwargs.get("max_replay_size") is None:
    # Room for every transition of the run, and no more: brax's buffer is one array that the
    # trainer carries through its loop, so a 1M-row default costs time at every step on a CPU.
    kwargs["max_replay_size"] = steps // int(kwargs.get("action_repeat", 1)) + 1000
  if eval_every < 1:
    raise ValueError(f"eval_every must be >= 1 env steps, got {eval_every}")
  env, spec = make_brax_env(env_name)
  run = RunDir(out)
  run.write_config({"algo": algo, "env": env_name, "steps": steps, "seeds": seeds, "seed": seed,
                    "config": {**kwargs, "eval_every": eval_every}, "hyper": {},
                    "derived": {"trainer": f"brax.training.agents.{algo}",
                                "spec": {"obs_shape": list(spec.obs_shape),
                                         "action_shape": list(spec.action_shape)}}})
  train_fn = _train_fn(algo)
  num_evals = max(2, steps // eval_every + 1)
  per_seed: list[list[tuple[int, float, float, float, dict]]] = []
  bar = tqdm(total=steps * seeds, unit="env step", disable=not progress, dynamic_ncols=True,
             desc=f"{algo.upper()} (brax) {env_name} x{seeds}")
  try:
    for i in range(seeds):
      rows: list[tuple[int, float, float, float, dict]] = []
      t0 = time.time()
      done_steps = [0]

      def progress_fn(num_steps, metrics, rows=rows, t0=t0, done_steps=done_steps, i=i):
        ret = float(metrics.get("eval/episode_reward", np.nan))
        length = float(metrics.get("eval/avg_episode_length", np.nan))
        rows.append((int(num_steps), time.time() - t0, ret, length,
                     _training_metrics(algo, metrics, spec.action_shape)))
        bar.update(max(0, min(int(num_steps), steps) - done_steps[0]))
        done_steps[0] = max(done_steps[0], min(int(num_steps), steps))
        bar.set_postfix({"seed": seed + i, "eval": f"{ret:.1f}"})

      ckpt_dir = run.checkpoint_dir / f"seed_{i}"
      ckpt_dir.mkdir(parents=True, exist_ok=True)
      # brax's SAC names its checkpoint folder checkpoint_logdir, its PPO save_checkpoint_path.
      ckpt_arg = "checkpoint_logdir" if algo == "sac" else "save_checkpoint_path"
      train_fn(environment=env, num_timesteps=steps, seed=seed + i, num_evals=num_evals,
               progress_fn=progress_fn, **{ckpt_arg: str(ckpt_dir.absolute())},
               **_wrap_kwargs(env_name), **kwargs)
      per_seed.append(rows)
  finally:
    bar.close()
  _write_records(run, per_seed)
  plot_curve(run.read_metrics(), run.path / "curve.png",
             title=f"{algo.upper()} (brax) on {env_name} ({seeds_label(seeds)})")
  return run


def _training_metrics(algo: str, metrics: dict, action_shape) -> dict[str, float]:
  """brax's training metrics at an evaluation (means over the epoch before it; none at step 0)
  as ``train/<name>``: losses, and SAC's temperature ``alpha`` with the policy's entropy, which
  brax's alpha loss holds: ``alpha * (-log_prob - target_entropy)`` with target
  ``-action_size / 2``."""
  out = {f"train/{k[len('training/'):]}": float(v) for k, v in metrics.items()
         if k.startswith("training/") and k not in ("training/sps", "training/walltime")
         and np.ndim(v) == 0}
  alpha, alpha_loss = out.get("train/alpha"), out.get("train/alpha_loss")
  if algo == "sac" and alpha and alpha_loss is not None:
    out["train/entropy"] = alpha_loss / alpha - 0.5 * int(np.prod(action_shape))
  return out


def _write_records(run: RunDir, per_seed) -> None:
  """One metrics line per evaluation index, with each seed's value (seeds evaluate at the same
  env steps: brax spaces its evaluations by num_timesteps / num_evals)."""
  count = min(len(rows) for rows in per_seed)
  for j in range(count):
    steps = [rows[j][0] for rows in per_seed]
    walls = np.array([rows[j][1] for rows in per_seed])
    returns = np.array([rows[j][2] for rows in per_seed])
    lengths = np.array([rows[j][3] for rows in per_seed])   # brax's mean over its episodes
    record = {"iteration": j, "env_steps": int(np.mean(steps)), "wall_s": float(walls.mean()),
              "eval/episode_return": returns, "eval/episode_return_mean": float(returns.mean()),
              "eval/episode_length": lengths,
              "eval/episode_length_mean": float(lengths.mean())}
    for key in sorted({k for rows in per_seed for k in rows[j][4]}):
      values = np.array([rows[j][4].get(key, np.nan) for rows in per_seed])
      record[key] = values
      record[f"{key}_mean"] = float(np.mean(values))
    run.log(record)


train_sac = functools.partial(train_brax, "sac")
train_ppo = functools.partial(train_brax, "ppo")
