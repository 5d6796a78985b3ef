"""The registry of algorithms: one entry per agent, read by ``wmjax train``, ``wmjax eval``,
``wmjax sweep``, ``wmjax presets`` and the benchmark suite.

An entry names the agent's ``Config`` and ``Hyper`` types, a one-line doc, and ``build(env_name,
steps, config, hyper) -> Built``: the agent's :class:`~wmjax.agents.base.Program` for one run
plus what the driver shows (progress unit, curve, progress-bar fields, extra figures). Tuned
settings are not here but in :mod:`wmjax.presets`. Adding an agent is one module in
``wmjax/agents/`` plus one :func:`register` call.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from wmjax.agents.base import Phase, Policy, Program, SharedPart
from wmjax.rl.rollout import policy_episode
from wmjax.train.common import return_postfix
from wmjax.train.loop import Built, HookContext

__all__ = ["Algo", "register", "get_algo", "algo_names", "ALGOS"]


@dataclasses.dataclass(frozen=True)
class Algo:
  name: str
  title: str                      # as shown: "PETS", "Dreamer"
  doc: str                        # one line for --help and `wmjax presets`
  # (module, Config class, Hyper class), imported on first use so that the registry loads
  # without every agent's libraries (mctx, pgx, evosax)
  types: tuple[str, str, str] | None
  build: Callable[..., Built] | None   # (env_name, steps, config, hyper) -> Built
  length_name: str = "steps"      # the CLI option that sets the run's length
  length_help: str = "Agent steps of real data in all (each is action_repeat env steps)."
  env_default: str = "dmc/CartpoleSwingup"
  env_help: str = "Environment, suite/name (see `wmjax envs`)."
  eval_count_field: str | None = "eval_episodes"
  eval_metric: str = "eval/episode_return"   # what `wmjax eval` and sweeps report
  eval_label: str = "return"
  lr_hint: str = "--set model_lr=..."
  plot_kwargs: Callable[[Built], dict] = lambda built: {}
  extra_postfix: tuple[tuple[str, str], ...] = ()   # (metric, label) shown on the bar
  # The progress bar's fields, for an agent whose bar is not returns plus extra_postfix:
  # (record, evaluated, built) -> {label: text}.
  postfix_fn: Callable[[dict, bool, Built], dict] | None = None
  after_chunk: Callable[[HookContext], None] | None = None
  long_help: str = ""
  set_examples: str = ""          # e.g. "--set horizon=20 --set model_lr=3e-4", for --help
  # Model-free baselines trained by an external trainer (brax's): train(env, **kwargs) -> RunDir
  external_train: Callable[..., Any] | None = None
  # An agent whose Hyper mirrors Config fields (tabular Dyna) derives it here after --set.
  hyper_from_config: Callable[[Any, Any], Any] | None = None
  # A new run's settings fitted to its length, before it is built and saved:
  # (config, steps) -> (config, a line saying what changed, or None). Resumed and loaded runs
  # keep what their config.json holds.
  fit_to_length: Callable[[Any, int], tuple[Any, str | None]] | None = None
  # An offline agent learns from a fixed dataset (``--dataset PATH``, the Config field
  # ``dataset``); its env, action repeat and episode length default to the dataset's.
  offline: bool = False

  def _type(self, index: int):
    import importlib

    if self.types is None:
      raise TypeError(f"{self.name} has no Config/Hyper types (an external trainer)")
    return getattr(importlib.import_module(self.types[0]), self.types[index])

  @property
  def config_cls(self) -> type:
    return self._type(1)

  @property
  def hyper_cls(self) -> type:
    return self._type(2)

  def postfix(self, record: dict, evaluated: bool, built: Built) -> dict:
    if self.postfix_fn is not None:
      return self.postfix_fn(record, evaluated, built)
    post = return_postfix(record, evaluated and "eval/episode_return_mean" in record)
    for key, label in self.extra_postfix:
      value = record.get(key + "_mean")
      if value is not None:
        post[label] = f"{value:.3g}"
    return post


ALGOS: dict[str, Algo] = {}


def register(algo: Algo) -> Algo:
  """Adds ``algo`` to the registry (a name may be registered once)."""
  if algo.name in ALGOS:
    raise ValueError(f"algorithm {algo.name!r} is already registered")
  ALGOS[algo.name] = algo
  return algo


def get_algo(name: str) -> Algo:
  if name not in ALGOS:
    raise KeyError(f"unknown algorithm {name!r}; accepted: {', '.join(ALGOS)}")
  return ALGOS[name]


def algo_names(trainable_only: bool = False) -> list[str]:
  return [n for n, a in ALGOS.items() if not (trainable_only and a.build is None)]


def _env(env_name: str, config):
  from wmjax import envs

  return envs.make(env_name, action_repeat=config.action_repeat,
                   episode_length=config.episode_length)


def _one(fn):
  """``iteration`` from an agent function that runs ``n`` iterations: ``fn(s, h, 1)``,
  metrics squeezed."""
  def iteration(state, hyper):
    state, metrics = fn(state, hyper, 1)
    return state, jax.tree.map(lambda x: x[0], metrics)
  return iteration


def _episodes(episodes) -> dict:
  return episodes.metrics()


# PETS ---------------------------------------------------------------------------------------

def _build_pets(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import pets as pets_lib

  if float(hyper.disagreement_coef) != 0.0 and not config.disagreement:
    raise ValueError("disagreement_coef is set but disagreement=false: the coefficient would "
                     "be ignored. Add --set disagreement=true.")
  env = _env(env_name, config)
  per_episode = env.steps_per_episode
  num_episodes = max(1, math.ceil(steps / per_episode))
  planned = num_episodes - config.initial_episodes
  if planned < 1:
    raise ValueError(
        f"--steps {steps} gives {num_episodes} episode(s) of {per_episode} agent steps, all "
        f"spent on the {config.initial_episodes} random initial episode(s); ask for at least "
        f"{(config.initial_episodes + 1) * per_episode} steps.")
  pets = pets_lib.make_pets(env, config, total_steps=num_episodes * per_episode)
  repeat = config.action_repeat
  program = Program(
      init=pets.init, phases=(Phase("train", pets.step, planned),),
      evaluate=lambda s, k, h: _episodes(pets.evaluate(s, k, h)),
      counters=lambda s: {"agent_steps": s.env_steps, "env_steps": s.env_steps * repeat},
      # The terminal-state classifier (learn_termination) must stay finite too.
      params=lambda s: (s.model.params, getattr(s, "termination", ())),
      eval_every=config.eval_every,
      losses=("model/loss",) + (("termination/loss",) if config.learn_termination else ()),
      policy=pets.policy)
  return Built(env, program, config, hyper,
               {"steps_per_episode": per_episode, "episodes": num_episodes,
                "planned_episodes": planned, "spec": dataclasses.asdict(env.spec)},
               progress_total=num_episodes * per_episode * repeat, extra={"pets": pets})


register(Algo(
    "pets", "PETS", "PETS: probabilistic ensemble + trajectory sampling + CEM/MPPI "
    "model-predictive control", ("wmjax.agents.pets", "PETSConfig", "PETSHyper"),
    _build_pets,
    length_help="Agent steps of real data in all, random initial episodes included (each "
    "agent step is action_repeat env steps); rounded up to whole episodes. Default: the "
    "preset's (2000 on dmc/CartpoleSwingup).",
    lr_hint="--set model_lr=...",
    set_examples=(
    "--set horizon=20 --set hidden_sizes=64,64 --set planner=mppi --set "
    "model_lr=3e-4")))


# Dreamer ------------------------------------------------------------------------------------

DREAMER_CHUNK = 5   # training iterations per jitted call (one metrics line each)


def _dreamer_iterations(config, steps: int) -> tuple[int, int, int]:
  """``(training iterations, iterations per chunk, agent steps collected in all)`` of a run of
  ``steps`` agent steps: whole chunks of iterations, after the random prefill."""
  rows = config.num_envs * config.steps_per_iteration
  prefill_rows = config.prefill_iterations * rows
  if steps <= prefill_rows:
    raise ValueError(
        f"--steps {steps} agent steps are all spent on the random prefill ({prefill_rows} "
        f"steps); ask for more than that, e.g. --steps {prefill_rows + 20 * rows}.")
  iterations = math.ceil((steps - prefill_rows) / rows)
  chunk = min(DREAMER_CHUNK, iterations)
  iterations = math.ceil(iterations / chunk) * chunk   # whole chunks: one compiled program
  return iterations, chunk, prefill_rows + iterations * rows


def _fit_dreamer(config, steps: int):
  """A replay bigger than all a run collects only costs memory (and checkpoint size): nothing
  would ever be dropped from it, so the one that holds exactly the run's steps samples the same
  sequences (tested). A 64x64 pixel run of 100k agent steps keeps 1.2 GB of frames per run
  instead of DreamerV3's 1M-step buffer's 12 GB."""
  try:
    collected = _dreamer_iterations(config, steps)[2]
  except ValueError:
    return config, None   # too short a run: the build says why
  if config.replay_capacity <= collected:
    return config, None
  note = (f"replay_capacity {config.replay_capacity:,} -> {collected:,}: the run collects "
          f"{collected:,} agent steps in all, so a bigger replay would only hold memory")
  return dataclasses.replace(config, replay_capacity=collected), note


def _build_dreamer(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import dreamer as dreamer_lib

  env = _env(env_name, config)
  dreamer = dreamer_lib.make_dreamer(env, config)
  iterations, chunk, _ = _dreamer_iterations(config, steps)
  repeat = config.action_repeat
  program = Program(
      init=dreamer.init, phases=(Phase("train", dreamer.train_iteration, iterations, chunk),),
      evaluate=lambda s, k, h: _episodes(dreamer.evaluate(s, k, h)),
      counters=lambda s: {"agent_steps": s.agent_steps, "env_steps": s.agent_steps * repeat,
                          "updates": s.updates},
      params=lambda s: s.params, eval_every=config.eval_every, losses=("model/loss",),
      policy=dreamer.acting)
  derived = {"updates_per_iteration": config.updates_per_iteration,
             "prefill_iterations": config.prefill_iterations, "iterations": iterations,
             "model": dataclasses.asdict(dreamer.model_config),
             "spec": dataclasses.asdict(env.spec)}
  return Built(env, program, config, hyper, derived, progress_total=steps * repeat,
               extra={"dreamer": dreamer})


def _dreamer_hook(ctx: HookContext) -> None:
  from wmjax.train.figures import save_dreamer_reconstructions

  if ctx.evaluated:
    # The first run, sliced inside the jitted program: ctx.first_run() would copy the replay.
    save_dreamer_reconstructions(ctx.built.extra["dreamer"], ctx.state, ctx.key,
                                 ctx.run.path / "reconstructions.png", run=0)


register(Algo(
    "dreamer", "Dreamer", "Dreamer (V3-style): RSSM world model; actor and critic trained in "
    "imagination", ("wmjax.agents.dreamer", "DreamerConfig", "DreamerHyper"),
    _build_dreamer, fit_to_length=_fit_dreamer,
    length_help="Agent steps of real data in all, random prefill included (each agent step is "
    "action_repeat env steps); rounded up to whole chunks of training iterations. Default: the "
    "preset's (12,500: 100k env steps on dmc/CartpoleSwingup at action repeat 8).",
    env_help="Environment, suite/name (see `wmjax envs`); vector or image observations, "
    "continuous or discrete actions.",
    lr_hint="--set model_lr=...", extra_postfix=(("model/loss", "model"),),
    after_chunk=_dreamer_hook,
    set_examples=(
    "--set size=small (debug, xsmall, small, medium, large) --set "
    "train_ratio=512 --set model_lr=1e-4")))


# MBPO ---------------------------------------------------------------------------------------

def _build_mbpo(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import mbpo as mbpo_lib

  env = _env(env_name, config)
  rows = config.num_envs * config.steps_per_iteration
  prefill = -(-config.prefill_steps // config.num_envs) * config.num_envs
  if steps <= prefill:
    raise ValueError(
        f"--steps {steps} agent steps are all spent on the random prefill ({prefill} steps); "
        f"ask for more, e.g. --steps {prefill + 20 * rows}.")
  iterations = math.ceil((steps - prefill) / rows)
  mbpo = mbpo_lib.make_mbpo(env, config, total_steps=prefill + iterations * rows)
  repeat = config.action_repeat
  program = Program(
      init=mbpo.init, phases=(Phase("train", mbpo.train_iteration, iterations),),
      evaluate=lambda s, k, h: _episodes(mbpo.evaluate(s, k)),
      counters=lambda s: {"agent_steps": s.agent_steps, "env_steps": s.agent_steps * repeat,
                          "sac_updates": s.sac.updates},
      params=lambda s: (s.sac.actor, s.sac.critic, s.model.params,
                        mbpo_lib.termination_of(s)),
      eval_every=config.eval_every, policy=mbpo.policy,
      losses=("termination/loss",) if config.learn_termination else ())
  derived = {"iterations": iterations, "real_per_batch": config.real_per_batch,
             "model_capacity": config.model_capacity, "spec": dataclasses.asdict(env.spec)}
  return Built(env, program, config, hyper, derived, progress_total=steps * repeat,
               extra={"warned": False})


def _mbpo_hook(ctx: HookContext) -> None:
  if (not ctx.built.extra["warned"] and not ctx.built.config.learn_termination
      and (ctx.record.get("train/terminations_mean") or 0) > 0):
    warnings.warn(f"{ctx.run.read_config()['env']} reached terminal states, but MBPO's model "
                  "rollouts never terminate without --set learn_termination=true; its value "
                  "targets past those states are biased.", stacklevel=2)
    ctx.built.extra["warned"] = True


register(Algo(
    "mbpo", "MBPO", "MBPO (deep Dyna): ensemble model, short branched rollouts, SAC trained "
    "mostly on model data", ("wmjax.agents.mbpo", "MBPOConfig", "MBPOHyper"),
    _build_mbpo,
    length_help="Agent steps of real data in all, random prefill included (each agent step is "
    "action_repeat env steps); rounded up to whole iterations of steps_per_iteration.",
    env_help="Environment, suite/name (see `wmjax envs`): continuous actions, vector "
    "observations, best without terminal states (model rollouts never terminate).",
    lr_hint="--set sac_lr=... or --set model_lr=...",
    extra_postfix=(("model/val_mse", "model mse"),), after_chunk=_mbpo_hook,
    long_help="Each iteration refits the probabilistic ensemble on all real data, starts "
    "rollout_batch rollouts of rollout_length model steps from replayed real states, then takes "
    "steps_per_iteration real steps with SAC, each followed by updates_per_step SAC updates on "
    "batches that are real_ratio real data and the rest model data: one jitted program.",
    set_examples=(
    "--set rollout_length=5 --set updates_per_step=20 --set real_ratio=0.1 "
    "--set sac_lr=1e-3")))


# TRPO ---------------------------------------------------------------------------------------

def _build_trpo(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import trpo as trpo_lib

  env = _env(env_name, config)
  trpo = trpo_lib.make_trpo(env, config)
  rows = config.batch_size
  iterations = math.ceil(steps / rows)
  repeat = config.action_repeat
  program = Program(
      init=trpo.init, phases=(Phase("train", trpo.train_iteration, iterations),),
      evaluate=trpo.evaluate,
      counters=lambda s: {"agent_steps": s.agent_steps, "env_steps": s.agent_steps * repeat},
      params=lambda s: (s.policy, s.value), eval_every=config.eval_every,
      losses=("value/loss",), policy=trpo.policy)
  derived = {"iterations": iterations, "batch_size": rows,
             "spec": dataclasses.asdict(env.spec)}
  return Built(env, program, config, hyper, derived, progress_total=iterations * rows * repeat,
               extra={"trpo": trpo})


register(Algo(
    "trpo", "TRPO", "TRPO (model-free baseline): Gaussian policy, natural gradient by conjugate "
    "gradient, KL line search; GAE with a fitted value function",
    ("wmjax.agents.trpo", "TRPOConfig", "TRPOHyper"),
    _build_trpo,
    length_help="Agent steps in all (each agent step is action_repeat env steps); rounded up "
    "to whole iterations of num_envs x rollout_length.",
    env_help="Environment, suite/name (see `wmjax envs`): continuous actions, vector "
    "observations.",
    lr_hint="--set max_kl=... or --set value_lr=...",
    extra_postfix=(("trpo/kl", "kl"),),
    long_help="Each iteration collects rollout_length steps in each of num_envs envs with the "
    "Gaussian policy, computes GAE advantages, takes the natural-gradient step (conjugate "
    "gradient on Fisher-vector products, scaled to the KL bound max_kl, backtracking until the "
    "mean KL is within max_kl and the surrogate improves) and fits the value function with "
    "Adam: one jitted program.",
    set_examples=(
    "--set max_kl=0.02 --set num_envs=32 --set rollout_length=64 --set gae_lambda=0.95")))


# MuZero -------------------------------------------------------------------------------------

MUZERO_CHUNK = 10


def muzero_evaluate(agent, config, two_player: bool, opponents=("random", "greedy")):
  """``evaluate(state, key, hyper) -> {metric: [games]}``: win/draw/loss indicators against each
  reference opponent for two-player games, episode returns for one-player tasks."""
  from wmjax.agents import arena

  game = agent.game

  def evaluate(state, key, hyper):
    def policy(k, g):
      return agent.policy(state.params, hyper, k, g)
    if not two_player:
      return _episodes(arena.play_episodes(game, policy, key, config.eval_games))
    out = {}
    for opp, k in zip(opponents, jax.random.split(key, len(opponents)), strict=True):
      outcome = arena.play_match(game, policy, arena.opponent_policy(game, opp), k,
                                 config.eval_games).outcome
      for name, value in (("win", 1), ("draw", 0), ("loss", -1)):
        out[f"eval/{name}_vs_{opp}"] = (outcome == value).astype(jnp.float32)
    return out
  return evaluate


def _build_muzero(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import muzero as muzero_lib
  from wmjax.envs.pgx import make_game

  game = make_game(env_name)   # refuses unknown, continuous or non-zero-sum games
  agent = muzero_lib.make_muzero(game, config)
  per_iteration = config.num_envs * config.steps_per_iteration
  iterations = max(1, math.ceil(steps / per_iteration))
  chunk = min(MUZERO_CHUNK, iterations)
  iterations = math.ceil(iterations / chunk) * chunk
  program = Program(
      init=agent.init, phases=(Phase("train", agent.train_iteration, iterations, chunk),),
      evaluate=muzero_evaluate(agent, config, game.two_player),
      counters=lambda s: {"env_steps": s.moves, "updates": s.updates},
      params=lambda s: s.params, eval_every=config.eval_every, policy=agent.acting)
  derived = {"iterations": iterations, "window": agent.window, "td_steps": agent.td_steps,
             "players": game.num_players, "num_actions": game.num_actions,
             "obs_shape": list(game.obs_shape), "max_steps": game.max_steps}
  return Built(game, program, config, hyper, derived,
               progress_total=iterations * per_iteration, progress_unit="move",
               extra={"agent": agent, "two_player": game.two_player})


def _muzero_plot(built: Built) -> dict:
  if built.extra["two_player"]:
    return {"keys": ("eval/win_vs_random", "eval/win_vs_greedy", "eval/loss_vs_greedy"),
            "x_key": "env_steps", "y_label": "rate over evaluation games",
            "x_label": "self-play moves (all games)"}
  return {"x_key": "env_steps", "x_label": "env steps (agent moves)"}


def _muzero_postfix(record: dict, evaluated: bool, built: Built) -> dict:
  post = {}
  two_player = built.extra["two_player"]
  for opp in ("random", "greedy"):
    if evaluated and two_player:
      post[f"win/loss vs {opp}"] = (f"{record[f'eval/win_vs_{opp}_mean']:.2f}/"
                                    f"{record[f'eval/loss_vs_{opp}_mean']:.2f}")
  if evaluated and not two_player:
    post["eval"] = f"{record['eval/episode_return_mean']:.1f}"
  if record.get("loss/total_mean") is not None:
    post["loss"] = f"{record['loss/total_mean']:.2f}"
  if not two_player and record.get("train/episode_return_mean") is not None:
    post["return"] = f"{record['train/episode_return_mean']:.1f}"
  return post


register(Algo(
    "muzero", "MuZero", "MuZero: learned latent model + MCTS (mctx), self-play fused on device",
    ("wmjax.agents.muzero", "MuZeroConfig", "MuZeroHyper"),
    _build_muzero,
    length_help="Self-play moves in all (every parallel game counted); rounded up to whole "
    "chunks of training iterations. Default: the preset's (150k for tic-tac-toe, 2M for connect "
    "four, 500k otherwise).",
    env_default="pgx/tic_tac_toe",
    env_help="A game: pgx/<game> (two-player zero-sum board games: tic_tac_toe, connect_four, "
    "othello, animal_shogi, go_9x9, ...; one-player: minatar-breakout, minatar-asterix, ...) or "
    "a discrete-action env of the registry (fast/PointMassDiscrete).",
    eval_count_field="eval_games", eval_metric="eval/win_vs_greedy", eval_label="win rate",
    lr_hint="--set learning_rate=...", plot_kwargs=_muzero_plot, postfix_fn=_muzero_postfix,
    set_examples=(
    "--set num_simulations=64 --set search=puct --set net=resnet --set "
    "learning_rate=3e-4")))


# World Models -------------------------------------------------------------------------------

def _build_worldmodels(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import worldmodels as wm_lib

  if steps is not None:   # the run's length is CMA-ES generations
    config = dataclasses.replace(config, generations=steps)
  env = _env(env_name, config)
  wm = wm_lib.make_worldmodels(env, config)
  per_episode = env.steps_per_episode
  repeat = config.action_repeat
  data_env_steps = config.episodes * per_episode * repeat
  es_env_steps = (config.population_size * config.rollouts * per_episode * repeat
                  if config.mode == "real" else 0)   # real env steps per generation
  collect, init = jax.jit(jax.vmap(wm.collect)), jax.jit(jax.vmap(wm.init))

  def init_runs(keys, hypers):
    # Two programs: one that both collects (a scan over env steps) and initialises the conv
    # VAE hung in XLA:CPU (jax 0.10.2, vmapped over seeds); each alone runs.
    return init(keys, hypers, collect(keys))

  def evaluate(state, key, hyper):
    mean, best = wm.evaluate(state, key)
    return {**mean.metrics(), "eval/best_episode_return": best.returns}

  es_generation = _one(wm.es_generations)

  def generation(state, hyper_):   # the controller's metrics say where it was evaluated
    state, metrics = es_generation(state, hyper_)
    return state, {f"{config.mode}/{k[3:]}" if k.startswith("es/") else k: v
                   for k, v in metrics.items()}

  # V and M read neither the controller's state nor sigma_init: a sweep over sigma_init trains
  # one V and one M per seed (and learning rates) and shares them.
  vae_part = SharedPart(
      ("vae_lr",), lambda s: (s.vae_params, s.vae_opt, s.key, s.vae_epochs),
      lambda s, p: s._replace(vae_params=p[0], vae_opt=p[1], key=p[2], vae_epochs=p[3]))
  mdn_part = SharedPart(
      ("vae_lr", "mdn_lr"), lambda s: (s.mdn_params, s.mdn_opt, s.key, s.mdn_epochs),
      lambda s, p: s._replace(mdn_params=p[0], mdn_opt=p[1], key=p[2], mdn_epochs=p[3]))
  phases = (Phase("vae", _one(wm.train_vae), config.vae_epochs, config.vae_epochs_per_chunk,
                  "last", evaluate=False, shared=vae_part),
            Phase("mdn", _one(wm.train_mdn), config.mdn_epochs, config.mdn_epochs_per_chunk,
                  "last", evaluate=False, shared=mdn_part),
            Phase("es", generation, config.generations, config.eval_every, "last"))
  program = Program(
      init=None, init_runs=init_runs, phases=phases, evaluate=evaluate,
      counters=lambda s: {"vae_epochs": s.vae_epochs, "mdn_epochs": s.mdn_epochs,
                          "generation": s.generations,
                          "env_steps": data_env_steps + s.generations * es_env_steps},
      params=lambda s: (s.vae_params, s.mdn_params), eval_every=config.eval_every,
      losses=("vae/loss", "mdn/loss"), policy=wm.acting)
  derived = {"chunks": len(program.chunks()), "controller_params": wm.num_params,
             "cma_es_default_population": wm_lib.min_population_size(wm.num_params),
             "data_env_steps": data_env_steps, "env_steps_per_generation": es_env_steps,
             "vae": dataclasses.asdict(wm.vae_config), "mdn": dataclasses.asdict(wm.mdn_config),
             "spec": dataclasses.asdict(env.spec)}
  return Built(env, program, config, hyper, derived, progress_total=len(program.chunks()),
               progress_unit="chunk", progress_key="iteration", extra={"wm": wm})


def _worldmodels_hook(ctx: HookContext) -> None:
  from wmjax.train.figures import save_dream, save_vae_reconstructions

  wm = ctx.built.extra["wm"]
  if ctx.record["iteration"] == 1:
    random_returns = jax.device_get(ctx.state.data.reward).sum(-1)   # [runs, episodes]
    ctx.record["random/episode_return"] = random_returns.mean(1)
    ctx.record["random/episode_return_mean"] = float(random_returns.mean())
  if ctx.phase == "vae" and ctx.last_of_phase:
    save_vae_reconstructions(wm, ctx.first_run(), ctx.run.path / "reconstructions.png")
  if ctx.last or (ctx.phase == "mdn" and ctx.last_of_phase):
    save_dream(wm, ctx.first_run(), ctx.key, ctx.run.path / "dream.gif",
               ctx.run.path / "dream.png")


def _worldmodels_plot(built: Built) -> dict:
  config = built.config
  prefix = config.mode
  return {"keys": ("eval/episode_return", "eval/best_episode_return",
                   f"{prefix}/pop_mean_return"),
          "x_key": "generation", "x_label": "CMA-ES generation"}


def _worldmodels_postfix(record: dict, evaluated: bool, built: Built) -> dict:
  stage = record.get("stage", "")
  post = {"stage": stage}
  if evaluated:
    post["eval"] = f"{record['eval/episode_return_mean']:.1f}"
  if record.get(f"{stage}/loss_mean") is not None:
    post["loss"] = f"{record[f'{stage}/loss_mean']:.3f}"
  mode = built.config.mode   # the controller's stage logs real/... or dream/... metrics
  if record.get(f"{mode}/pop_mean_return_mean") is not None:
    post[mode] = f"{record[f'{mode}/pop_mean_return_mean']:.1f}"
  return post


register(Algo(
    "worldmodels", "World Models", "World Models (Ha & Schmidhuber 2018): VAE (V) + MDN-RNN (M) "
    "+ linear controller (C) by CMA-ES",
    ("wmjax.agents.worldmodels", "WorldModelsConfig", "WorldModelsHyper"),
    _build_worldmodels,
    length_name="generations",
    length_help="CMA-ES generations for the controller (default: the preset's, 60 for fast/ "
    "envs).",
    env_default="fast/PointMassPixels",
    env_help="A pixel environment, suite/name (see `wmjax envs`): image observations "
    "[H, W, C], continuous (or discrete) actions.",
    lr_hint="--set vae_lr=... or --set mdn_lr=...", plot_kwargs=_worldmodels_plot,
    postfix_fn=_worldmodels_postfix,
    after_chunk=_worldmodels_hook,
    long_help="Three stages. 1. Collect `episodes` random-policy episodes and train V, a "
    "convolutional VAE, on their frames. 2. Train M, an LSTM with a mixture-of-Gaussians "
    "output, to predict the next latent z (and reward, termination) from z and the action a. "
    "3. Train C, a linear controller a = tanh(W (z, h) + b) on z and M's hidden state h, with "
    "CMA-ES (evosax), the whole population evaluated as one vmapped rollout. Two modes: "
    "`--set mode=real` evaluates candidates in the real environment; `--set mode=dream` "
    "evaluates them only inside M's dream at temperature `--set tau=...`, and the curve shows "
    "the controller's return in the real environment. Writes curve.png, reconstructions.png "
    "(V) and dream.gif / dream.png (a real episode next to M's dream from the same first "
    "frame).",
    set_examples=(
    "--set mode=dream --set tau=1.15 --set population_size=64 --set "
    "rollouts=16 --set latent_size=32 --set episodes=1000")))


# Tabular Dyna-Q -----------------------------------------------------------------------------

DYNA_CHUNK_STEPS = 100   # real steps per iteration (one metrics line each)


def dyna_policy(dyna, maze) -> Policy:
  """Acting on a maze with a Dyna run's state ``(agent, total, key)``: greedy in Q with ties
  at random (``deterministic``), else epsilon-greedy. The observation is the cell's one-hot."""

  def init(carry, hyper, key):
    return ()

  def act(carry, hyper, policy_carry, obs, key, deterministic: bool = True):
    agent = carry[0]
    cell = jnp.argmax(obs).astype(jnp.int32)
    if deterministic:
      return policy_carry, dyna.greedy_action(agent, key, cell)
    noise = jax.random.uniform(key, (maze.action_size + 2,))
    return policy_carry, dyna.act(agent, noise, cell)

  return Policy(init, act)


def greedy_steps(dyna, maze, carry, key, max_steps: int) -> jax.Array:
  """Steps the greedy policy (ties at random) takes from the start to the goal on the maze as it
  is now (its clock kept), without learning; ``max_steps`` if it does not get there."""
  grid = getattr(maze, "unwrapped", maze)
  _, length = policy_episode(grid, dyna_policy(dyna, grid), carry, None, key, True,
                             steps=max_steps, start=grid.restart(carry[0].env_state))
  return length


def _build_dyna(env_name, steps, config, hyper) -> Built:
  from wmjax import envs
  from wmjax.agents import dyna as dyna_lib

  if not env_name.startswith("grid/"):
    raise ValueError(f"tabular Dyna-Q needs a grid maze (grid/dyna_maze, grid/blocking_maze, "
                     f"grid/shortcut_maze); got {env_name}. For deep Dyna on continuous control "
                     "use `wmjax train mbpo`.")
  maze = envs.make(env_name)
  dyna = dyna_lib.make_dyna(maze, config)
  grid = getattr(maze, "unwrapped", maze)
  cap = 4 * grid.num_cells
  episodes = config.eval_episodes

  # The run's state is (agent, cumulative reward, key), as written by earlier versions.
  def init(key, hyper_):
    state = dyna.init(key, dyna_lib.DynaHyper(*hyper_))
    return state, jnp.zeros((), jnp.float32), key

  def iteration(carry, hyper_):
    del hyper_   # kept in the agent's state since init
    state, total, key = carry
    key, key_run = jax.random.split(key)
    state, rewards = dyna.run_steps(state, key_run, DYNA_CHUNK_STEPS)
    total = total + rewards.sum()
    return (state, total, key), {"train/reward": rewards.sum(),
                                 "train/cumulative_reward": total}

  def evaluate(carry, key, hyper_):
    keys = jax.random.split(key, episodes)
    return {"eval/steps_to_goal": jax.vmap(
        lambda k: greedy_steps(dyna, maze, carry, k, cap))(keys).astype(jnp.float32)}

  program = Program(
      init=init, phases=(Phase("train", iteration, math.ceil(steps / DYNA_CHUNK_STEPS),
                               reduce="last"),),
      evaluate=evaluate, counters=lambda c: {"env_steps": c[0].env_state.info["t"]},
      params=lambda c: c[0].q, eval_every=1, policy=dyna_policy(dyna, grid))
  derived = {"chunks": program.phases[0].iterations, "chunk_steps": DYNA_CHUNK_STEPS,
             "cells": grid.num_cells, "greedy_cap": cap}
  return Built(maze, program, config, hyper, derived,
               progress_total=program.phases[0].iterations * DYNA_CHUNK_STEPS,
               progress_unit="step", extra={"dyna": dyna})


register(Algo(
    "dyna", "Dyna-Q", "tabular Dyna-Q / Dyna-Q+ on grid mazes (Sutton & Barto, chapter 8)",
    ("wmjax.agents.dyna", "DynaConfig", "DynaHyper"),
    _build_dyna,
    length_help="Real time steps per run (rounded up to 100s).",
    env_default="grid/dyna_maze",
    env_help="A grid maze: grid/dyna_maze, grid/blocking_maze or grid/shortcut_maze.",
    eval_metric="eval/steps_to_goal", eval_label="greedy steps to the goal",
    lr_hint="--set alpha=...", hyper_from_config=lambda config, hyper: type(hyper)(
        alpha=config.alpha, epsilon=config.epsilon, gamma=config.gamma, kappa=config.kappa),
    plot_kwargs=lambda built: {"keys": ("train/cumulative_reward",),
                               "y_label": "cumulative reward"},
    extra_postfix=(("train/cumulative_reward", "cumulative reward"),
                   ("eval/steps_to_goal", "greedy path")),
    set_examples=(
    "--set planning_steps=50 --set kappa=1e-3 (Dyna-Q+) --set alpha=0.5")))


# Model-free baselines through brax's own trainers --------------------------------------------

def _brax(algo: str, doc: str) -> Algo:
  def train(env_name, **kwargs):
    from wmjax.train.brax_runner import train_brax

    return train_brax(algo, env_name, **kwargs)

  return Algo(algo, algo.upper(), doc, None, None, None,
              length_help="Env steps per seed (action repeat included, as brax counts them).",
              env_help="Environment, suite/name (see `wmjax envs`): continuous actions, vector "
              "observations.", external_train=train)


register(_brax("sac", "SAC (model-free baseline) through brax's own trainer "
               "(brax.training.agents.sac), on the same envs and run folder as our agents"))
register(_brax("ppo", "PPO (model-free baseline) through brax's own trainer "
               "(brax.training.agents.ppo), on the same envs and run folder as our agents"))


# Offline agents (MOPO, MOReL, IQL) register from their own module.
from wmjax.train import algos_offline  # noqa: E402,F401
