"""Tuned settings, as data, in one place (DreamerV3's ``configs.yaml``, Playground's per-env
config functions).

Agents keep only their ``Config`` and ``Hyper`` classes (with the papers' settings as defaults)
and their size tables; which settings a run on a given env starts from is decided here. Each
algorithm has an ordered list of presets; each preset names the envs it is for (shell patterns:
a task such as ``dmc/CartpoleSwingup``, a suite such as ``dmc/*``), the fields of ``Config`` and
``Hyper`` it changes (from the classes' defaults, or from its ``base`` preset), the run length
when ``--steps`` is not given, and why. The first preset whose pattern matches the env is used.
An env that no preset names gets the algorithm's generic preset for the device it runs on:
``generic-cpu`` (sized for a 2-core CPU) or ``generic-gpu`` (the papers' sizes).

``wmjax presets [ALGO]`` lists them; ``wmjax train ALGO --preset NAME`` picks one by name; every
run prints and records (``config.json``: ``preset``) the one it used.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["Preset", "PRESETS", "Resolved", "resolve", "defaults", "presets_of", "device_kind"]

_EMPTY: Mapping = MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  match: tuple[str, ...] = ()          # env-name patterns (fnmatch); () only by name or device
  config: Mapping = dataclasses.field(default_factory=lambda: _EMPTY)   # Config fields changed
  hyper: Mapping = dataclasses.field(default_factory=lambda: _EMPTY)    # Hyper fields changed
  steps: int | None = None             # run length when --steps is not given
  base: str | None = None              # start from this preset instead of the class defaults
  device: str | None = None            # "cpu" | "gpu": the generic preset for that device
  note: str = ""
  # Action repeat per suite (``{"dmc": 4, "minatar": 1}``): the one setting that follows from
  # the task's suite rather than the preset, applied after ``config``.
  suite_action_repeat: Mapping = dataclasses.field(default_factory=lambda: _EMPTY)


def _p(name, match=(), config=None, hyper=None, suite_action_repeat=None, **kw) -> Preset:
  return Preset(name, tuple(match), MappingProxyType(dict(config or {})),
                MappingProxyType(dict(hyper or {})),
                suite_action_repeat=MappingProxyType(dict(suite_action_repeat or {})), **kw)


# PETS. The README's main job is dmc/CartpoleSwingup (830 at 16k env steps on a 2-core CPU).
_PETS_CPU = dict(ensemble_size=5, num_elites=5, hidden_sizes=(128, 128, 128), horizon=12,
                 population=128, iterations=4, num_particles=5, propagation="tsinf",
                 model_train_steps=1000, elite_fraction=0.1, eval_every=2, eval_episodes=3)
_PETS = (
    _p("dmc/CartpoleSwingup", ["dmc/CartpoleSwingup"], dict(action_repeat=8, **_PETS_CPU),
       steps=2_000, note="sized for a 2-core CPU (the README's main job); action repeat 8 as "
       "PlaNet on cartpole"),
    _p("pets/cartpole", ["pets/cartpole"],
       dict(ensemble_size=5, num_elites=5, hidden_sizes=(200, 200, 200), horizon=15,
            population=400, iterations=5, num_particles=20, propagation="tsinf",
            angle_dims=(1,), model_train_steps=500),
       steps=2_000, note="the PETS paper's / mbrl-lib's cartpole: horizon 15, CEM 5 x 400, 20 "
       "particles, TS-inf"),
    _p("fast", ["fast/*"],
       dict(initial_episodes=2, ensemble_size=5, num_elites=5, hidden_sizes=(64, 64),
            horizon=10, population=128, iterations=4, num_particles=5, model_train_steps=1000,
            batch_size=64, propagation="tsinf"),
       steps=500, note="tiny test tasks"),
    _p("gymnax", ["gymnax/*"],
       dict(action_repeat=2, initial_episodes=5, learn_termination=True, ensemble_size=5,
            num_elites=5, hidden_sizes=(64, 64), horizon=25, population=128, iterations=3,
            num_particles=5, propagation="tsinf", model_train_steps=500, batch_size=64,
            eval_every=2, eval_episodes=4),
       steps=3_750, note="gymnax classic control (tuned on CartPole-v1): terminal states "
       "learned (cart-pole's reward is +1 every step); action repeat 2 and horizon 25 look "
       "1 s ahead"),
    # Action repeat 8, not 4: what the planner needs is lookahead in env steps. At 4, horizon
    # 12 sees 48 env steps, and CartpoleBalance stalled at 500-650 for 76k env steps (horizon 24
    # on the same model: 985); at 8 it sees 96 and balanced (993) by 5k, at 3.5x less CPU per
    # env step (experiments/results/pets-dmc-ar4-balance).
    _p("dmc", ["dmc/*"], dict(action_repeat=8, **_PETS_CPU), base=None, steps=1_250,
       device="cpu", note="DM Control on a CPU: the cartpole sizes at action repeat 8, so that "
       "horizon 12 looks 96 env steps ahead (at 4 it saw 48 and CartpoleBalance stalled)"),
    _p("generic-cpu", (), dict(**_PETS_CPU), steps=2_000, device="cpu",
       note="sized for a 2-core CPU"),
    _p("generic-gpu", (), {}, steps=10_000, device="gpu",
       note="the PETS paper's sizes (PETSConfig defaults)"),
)

# Dreamer. DreamerV3's one set of hyperparameters with its model sizes; smaller on a CPU.
# Replay: 200k agent steps (all envs), 2.5 GB of 64x64x3 frames; DreamerV3's 5M would not fit
# in a CPU's memory, and a CPU run collects fewer steps than that.
_DREAMER_CPU = dict(size="xsmall", stoch_groups=16, stoch_classes=16, num_envs=4,
                    steps_per_iteration=25, prefill=1000, batch_size=16, seq_len=64,
                    train_ratio=256, imagine_starts=256, eval_every=10, eval_episodes=4,
                    replay_capacity=200_000)
_DREAMER_CPU_HYPER = dict(model_lr=3e-4, actor_lr=1e-4, critic_lr=1e-4, discount=0.99)
# The one CPU preset for every suite (DreamerV3's claim: one set of hyperparameters for vectors,
# pixels, continuous and discrete actions). Only the action repeat follows the suite: 4 on
# DM Control (PlaNet's and DrQ's for most tasks; DreamerV3 uses 2 at 5x the CPU cost per env
# step), 1 on MinAtar (its frames are already the game's ticks); the encoder follows the
# observation's shape (MLP for vectors, CNN for images, MinAtar's 10x10 planes included).
_DREAMER_REPEAT = {"dmc": 4, "dmc-pixels": 4, "minatar": 1}
_DREAMER = (
    _p("dmc/CartpoleSwingup", ["dmc/CartpoleSwingup"], dict(action_repeat=8, **_DREAMER_CPU),
       _DREAMER_CPU_HYPER, steps=12_500,
       note="sized for a 2-core CPU (experiments/results/dreamer-cartpole-cpu): action repeat 8 "
       "as PlaNet on cartpole, the xsmall model with 16 x 16 latents"),
    _p("xsmall-cpu", ["dmc/*", "dmc-pixels/*", "minatar/*"], _DREAMER_CPU, _DREAMER_CPU_HYPER,
       suite_action_repeat=_DREAMER_REPEAT, steps=25_000, device="cpu",
       note="one preset for DM Control from vectors and pixels and for MinAtar, sized for a "
       "2-core CPU: the xsmall model with 16 x 16 latents, train ratio 256"),
    _p("small-gpu", ["dmc/*", "dmc-pixels/*", "minatar/*"], {},
       suite_action_repeat={"dmc": 2, "dmc-pixels": 2, "minatar": 1}, steps=500_000,
       device="gpu", note="DreamerV3's settings and its small model for DM Control from "
       "vectors and pixels (action repeat 2, as DreamerV3) and MinAtar (1)"),
    _p("fast", ["fast/*"],
       dict(action_repeat=1, size="debug", units=64, deter=64, hidden=64, cnn_depth=16,
            num_envs=4, steps_per_iteration=25, prefill=400, batch_size=16, seq_len=32,
            train_ratio=128, imagine_starts=128, replay_capacity=100_000, eval_every=4,
            eval_episodes=8, actor_grad="dynamics"),
       dict(_DREAMER_CPU_HYPER, model_lr=1e-3), steps=3_000, note="tiny test tasks; "
       "straight-through dynamics gradients for discrete actions too (REINFORCE learns too, "
       "but needs about twice a test's 10^3 updates); model_lr 1e-3: at 3e-4 the pixel model "
       "is blind to the point mass for about 1,000 updates"),
    _p("generic-cpu", (), dict(action_repeat=2, **_DREAMER_CPU), _DREAMER_CPU_HYPER,
       steps=12_500, device="cpu",
       note="the CartpoleSwingup CPU sizes at DreamerV3's action repeat 2"),
    _p("generic-gpu", (), {}, steps=500_000, device="gpu",
       note="DreamerV3's settings and its small model (DreamerConfig defaults)"),
)

# MBPO.
_MBPO_DMC = dict(action_repeat=4, steps_per_iteration=250, prefill_steps=500, ensemble_size=5,
                 num_elites=4, hidden_sizes=(200, 200, 200), model_train_steps=1000,
                 rollout_batch=5000, rollout_length=1, model_retain_iterations=5,
                 sac_hidden_sizes=(256, 256), updates_per_step=5, eval_every=2, eval_episodes=4)
_MBPO_BRAX = dict(steps_per_iteration=250, prefill_steps=2000, ensemble_size=5, num_elites=4,
                  hidden_sizes=(200, 200, 200), model_train_steps=500, rollout_batch=5000,
                  rollout_length=1, model_retain_iterations=5, sac_hidden_sizes=(256, 256),
                  updates_per_step=5, eval_every=8, eval_episodes=4)
_MBPO = (
    _p("fast", ["fast/*"],
       dict(steps_per_iteration=50, prefill_steps=200, ensemble_size=5, num_elites=4,
            hidden_sizes=(64, 64), model_train_steps=200, model_batch_size=128,
            rollout_batch=1000, rollout_length=3, sac_hidden_sizes=(64, 64),
            sac_batch_size=128, updates_per_step=4, eval_every=2, eval_episodes=4),
       dict(discount=0.95), steps=2_000,
       note="tiny test tasks (50-step episodes: discount 0.95)"),
    _p("dmc", ["dmc/*"], _MBPO_DMC, steps=12_500,
       note="action repeat 4 as SAC-from-states and DrQ on DM Control; one iteration is one "
       "1000-step episode, evaluated every 2000 env steps"),
    _p("brax-terminal", ["brax/hopper", "brax/walker2d", "brax/ant", "brax/humanoid*"],
       dict(_MBPO_BRAX, learn_termination=True), steps=50_000,
       note="brax locomotion that ends episodes (falls): the brax sizes, terminal states "
       "learned so model rollouts end where the real ones would"),
    _p("brax", ["brax/*"], _MBPO_BRAX,
       steps=50_000, note="brax locomotion (halfcheetah: 2415 at 50k env steps, README)"),
    _p("generic-cpu", (), {**_MBPO_DMC, "action_repeat": 1}, steps=12_500, device="cpu",
       note="the DM Control sizes at action repeat 1"),
    _p("generic-gpu", (), {}, steps=100_000, device="gpu",
       note="the MBPO paper's settings (MBPOConfig defaults)"),
)

# MuZero. Board games: no discount; the value (the game's outcome) is what the search needs
# most, and the reward of the rare winning move what it needs to see a win or a threat in one
# (reward_coef 4: the learned reward of winning moves doubles on connect four, and the
# tic-tac-toe agent stops losing the odd game to a random player; see the README).
_BOARD_HYPER = dict(discount=1.0, value_coef=1.0, reward_coef=4.0)
_MUZERO = (
    _p("pgx/tic_tac_toe", ["pgx/tic_tac_toe"],
       dict(num_envs=64, steps_per_iteration=9, batch_size=128, updates_per_iteration=16,
            unroll_steps=5, latent=128, hidden=256, layers=2, value_support=3,
            reward_support=3, num_simulations=16, max_num_considered_actions=9,
            replay_capacity=64 * 9 * 40, random_move_prob=0.5, target_update_interval=50,
            eval_every=50, eval_games=200, eval_simulations=64),
       _BOARD_HYPER, steps=150_000,
       note="half the self-play moves random: the positions a random opponent creates must be "
       "in replay for the model to answer them"),
    _p("pgx/connect_four", ["pgx/connect_four"],
       dict(num_envs=128, steps_per_iteration=8, batch_size=256, updates_per_iteration=16,
            unroll_steps=5, latent=128, hidden=256, layers=2, value_support=3,
            reward_support=3, num_simulations=32, max_num_considered_actions=7,
            replay_capacity=128 * 8 * 100, random_move_prob=0.2, target_update_interval=100,
            eval_every=50, eval_games=200, eval_simulations=64),
       _BOARD_HYPER, steps=2_000_000, note="the README's CPU and H100 connect-four runs"),
    _p("minatar", ["pgx/minatar*", "minatar/*"],
       dict(num_envs=64, steps_per_iteration=8, batch_size=128, updates_per_iteration=8,
            unroll_steps=5, latent=128, hidden=256, value_support=20, reward_support=3,
            num_simulations=16, max_num_considered_actions=6, replay_capacity=200_000,
            random_move_prob=0.05, eval_every=25, eval_games=16),
       steps=500_000,
       note="an MLP over the 10x10 planes: on a CPU the residual network costs ~25x more"),
    _p("pgx/2048", ["pgx/2048"],
       dict(num_envs=64, steps_per_iteration=8, batch_size=128, updates_per_iteration=8,
            unroll_steps=5, latent=128, hidden=256, value_support=400, reward_support=120,
            num_simulations=16, max_num_considered_actions=4, replay_capacity=200_000,
            eval_every=25, eval_games=16),
       dict(discount=0.997), steps=500_000,
       note="value and reward supports wide enough for 2048's scores (values to about 1e5, "
       "one move's reward to about 1.4e4 after MuZero's value transform)"),
    _p("board-games", ["pgx/*"], {}, _BOARD_HYPER, steps=500_000,
       note="two-player board games: undiscounted outcome, reward_coef 4"),
    _p("fast", ["fast/*"],
       dict(num_envs=32, steps_per_iteration=10, batch_size=128, updates_per_iteration=4,
            latent=32, hidden=64, value_support=10, reward_support=3, num_simulations=8,
            max_num_considered_actions=5, replay_capacity=50_000, eval_every=10,
            eval_games=16),
       dict(discount=0.97), steps=50_000, note="tiny test tasks"),
    _p("generic-cpu", (), {}, steps=500_000, device="cpu", note="MuZeroConfig defaults"),
    _p("generic-gpu", (), {}, steps=2_000_000, device="gpu", note="MuZeroConfig defaults"),
)

# World Models.
_WM_CPU = dict(episodes=200, latent_size=8, vae_depth=8, vae_epochs=20, vae_batch_size=50,
               hidden_size=64, num_mixtures=5, mdn_epochs=150, mdn_batch_size=20,
               mdn_epochs_per_chunk=25, vae_epochs_per_chunk=5, population_size=32,
               generations=60, rollouts=8, eval_every=5, eval_episodes=32)
# DM Control from 64x64 frames: the paper's Z = 32 and 5 mixtures, V and M sized for a 2-core CPU
# (experiments/worldmodels_pixels.py); action repeat 4 (250 agent steps per episode).
_WM_DMC_PIXELS = dict(action_repeat=4, episodes=100, latent_size=32, vae_depth=16, vae_epochs=5,
                      vae_batch_size=100, hidden_size=128, num_mixtures=5, mdn_epochs=100,
                      mdn_batch_size=10, mdn_epochs_per_chunk=20, vae_epochs_per_chunk=1,
                      population_size=32, generations=40, rollouts=4, eval_every=10,
                      eval_episodes=16)
_WORLDMODELS = (
    _p("fast", ["fast/*"], _WM_CPU, note="sized for a 2-core CPU "
       "(experiments/results/worldmodels-*-cpu)"),
    _p("dmc-pixels", ["dmc-pixels/*"], _WM_DMC_PIXELS, note="DM Control from 64x64 frames: "
       "100 random episodes, Z 32, M 128 units, CMA-ES 32 x 4 rollouts; action repeat 4 "
       "(experiments/results/worldmodels-pixels-cpu)"),
    _p("generic-cpu", (), _WM_CPU, device="cpu", note="the fast/ sizes"),
    _p("generic-gpu", (), {}, device="gpu",
       note="the paper's CarRacing sizes (WorldModelsConfig defaults)"),
)

# Tabular Dyna-Q: the book's settings.
_DYNA = (
    _p("dyna-q+", ["grid/blocking_maze", "grid/shortcut_maze"],
       dict(planning_steps=10, alpha=1.0, kappa=1e-3), steps=3_000,
       note="Dyna-Q+ as Sutton & Barto's Figure 8.4 (alpha 1, n 10, kappa 1e-3: the book "
       "gives none)"),
    _p("example-8.1", ["grid/*"], {}, steps=3_000,
       note="Sutton & Barto's Example 8.1 with n = 5 (DynaConfig defaults)"),
)

# TRPO: OpenAI baselines' / Spinning Up's settings (64 x 64 tanh nets, max KL 0.01, 10 CG
# iterations, damping 0.1, lambda 0.97), batches sized for the device.
_TRPO_DMC = dict(action_repeat=4, num_envs=16, rollout_length=64, value_minibatches=16,
                 eval_every=10, eval_episodes=8)
_TRPO = (
    _p("fast", ["fast/*"],
       dict(num_envs=16, rollout_length=32, value_minibatches=8, eval_every=5,
            eval_episodes=16), dict(gamma=0.95), steps=25_600,
       note="tiny test tasks (50-step episodes: discount 0.95); 512 agent steps per iteration"),
    _p("dmc", ["dmc/*"], _TRPO_DMC, steps=250_000,
       note="action repeat 4 as brax's PPO here; 1024 agent steps (4096 env steps) per "
       "iteration, 1M env steps by default"),
    _p("brax", ["brax/*"],
       dict(num_envs=16, rollout_length=64, value_minibatches=16, eval_every=20,
            eval_episodes=8), dict(gae_lambda=0.98), steps=300_000,
       note="brax locomotion: baselines' MuJoCo batch of 1024 steps per iteration, lambda 0.98"),
    _p("generic-cpu", (), dict(num_envs=16, rollout_length=64, value_minibatches=16),
       steps=200_000, device="cpu", note="1024 agent steps per iteration"),
    _p("generic-gpu", (), dict(num_envs=64, rollout_length=64, value_minibatches=64),
       steps=2_000_000, device="gpu", note="4096 agent steps per iteration (Spinning Up's "
       "4000)"),
)

# Offline agents (learning from a dataset; the env only evaluates). MOPO's and MOReL's model
# and SAC sizes are MOPO's (7 members, 5 elites, 4 x 200; SAC 2 x 256); lambda 1 and h = 5 are
# its most common D4RL settings. A run's length counts the policy learner's gradient steps.
_OFFLINE_FAST = dict(ensemble_size=5, num_elites=4, hidden_sizes=(64, 64), model_updates=3_000,
                     model_steps_per_iteration=500, model_batch_size=128, rollout_batch=1_000,
                     rollout_length=5, model_retain_iterations=5, sac_hidden_sizes=(64, 64),
                     sac_batch_size=128, updates_per_iteration=250, eval_every=4,
                     eval_episodes=16)
_OFFLINE_CPU = dict(model_updates=20_000, model_steps_per_iteration=1_000, rollout_batch=10_000,
                    rollout_length=5, model_retain_iterations=5, updates_per_iteration=1_000,
                    eval_every=5, eval_episodes=10)
_OFFLINE_GPU = dict(model_updates=50_000, model_steps_per_iteration=2_000,
                    rollout_batch=50_000, rollout_length=5, model_retain_iterations=5,
                    updates_per_iteration=1_000, eval_every=10, eval_episodes=10)


def _offline(fast_hyper=None, hyper=None, why=""):
  return (
      _p("fast", ["fast/*"], _OFFLINE_FAST, fast_hyper, steps=5_000,
         note="tiny test tasks: small nets, 3k model steps, 250 SAC updates per iteration"),
      _p("generic-cpu", (), _OFFLINE_CPU, hyper, steps=100_000, device="cpu",
         note="MOPO's model and SAC sizes; 20k model steps, 10k rollouts of 5 steps per 1000 "
         "SAC updates" + why),
      _p("generic-gpu", (), _OFFLINE_GPU, hyper, steps=1_000_000, device="gpu",
         note="MOPO's settings: 50k rollouts of 5 steps per 1000 SAC updates, 1M updates" + why),
  )


# MOPO's lambda: the penalty is in the model's raw units (about 1.6 per step on brax's
# halfcheetah, against rewards of 0.1 to 1.5), so the paper's lambda 1 outweighs the reward.
# Swept on halfcheetah medium-replay (2 seeds, 20k model steps, 25k SAC updates; README):
# lambda 0.1 with h 5 scored 27.8 and 33.6, lambda 0.3 21.5 and 22.7, h 1 swung between 3 and 24.
_MOPO = _offline(hyper=dict(penalty_coef=0.1),
                 why="; lambda 0.1 (the paper's 1 outweighs brax's rewards)")
_MOREL = _offline()
_IQL = (
    _p("fast", ["fast/*"], dict(hidden_sizes=(64, 64), batch_size=128,
                                updates_per_iteration=500, eval_every=4, eval_episodes=16),
       steps=5_000, note="tiny test tasks"),
    _p("generic-cpu", (), dict(updates_per_iteration=1_000, eval_every=5, eval_episodes=10),
       steps=100_000, device="cpu", note="the paper's networks (2 x 256) and locomotion "
       "settings (expectile 0.7, temperature 3), 100k updates"),
    _p("generic-gpu", (), dict(updates_per_iteration=5_000, eval_every=5, eval_episodes=10),
       steps=1_000_000, device="gpu", note="the paper's locomotion settings, 1M updates"),
)

PRESETS: dict[str, tuple[Preset, ...]] = {
    "pets": _PETS, "dreamer": _DREAMER, "mbpo": _MBPO, "muzero": _MUZERO,
    "worldmodels": _WORLDMODELS, "dyna": _DYNA, "trpo": _TRPO, "mopo": _MOPO, "morel": _MOREL,
    "iql": _IQL,
}


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A preset applied: the ``Config`` and ``Hyper`` a run starts from (before ``--set``)."""

  name: str
  config: object
  hyper: object
  steps: int | None
  note: str
  tuned: bool          # chosen for this env (by a pattern or by name), not the generic one
  # why: "chosen by name", "for dmc/*" (the env pattern it matched), or "" (the generic one)
  reason: str = ""

  def describe(self, env_name: str) -> str:
    how = self.reason or "generic, no tuned preset for " + env_name
    return f"preset {self.name} ({how}): {self.note}" if self.note else f"preset {self.name}"


def device_kind() -> str:
  """``cpu`` or ``gpu`` (any accelerator): which generic preset fits the default backend."""
  import jax

  return "cpu" if jax.default_backend() == "cpu" else "gpu"


def presets_of(algo: str) -> tuple[Preset, ...]:
  if algo not in PRESETS:
    raise KeyError(f"no presets for {algo!r}; algorithms with presets: {', '.join(PRESETS)}")
  return PRESETS[algo]


def _by_name(algo: str, name: str) -> Preset:
  for p in presets_of(algo):
    if p.name == name:
      return p
  raise KeyError(f"{algo} has no preset {name!r}; its presets: "
                 f"{', '.join(p.name for p in presets_of(algo))} (see `wmjax presets {algo}`)")


def _pick(algo: str, env_name: str, device: str) -> tuple[Preset, str | None]:
  """The preset for ``env_name`` and the pattern it matched (None: a generic preset)."""
  from wmjax.envs.registry import base_name

  env_name = base_name(env_name)   # options in the name do not change the preset
  for p in presets_of(algo):
    if p.device is not None and p.device != device:   # a suite preset sized for one device
      continue
    for pattern in p.match:
      if fnmatch.fnmatchcase(env_name, pattern):
        return p, pattern
  for p in presets_of(algo):
    if not p.match and p.device == device:
      return p, None
  for p in presets_of(algo):   # an algorithm with one generic preset for every device
    if p.device == device or p.device is None:
      return p, None
  return presets_of(algo)[-1], None


def resolve(algo: str, env_name: str, config_cls, hyper_cls, *, name: str | None = None,
            device: str | None = None) -> Resolved:
  """The preset for ``algo`` on ``env_name`` (or the one called ``name``) applied to
  ``config_cls()`` and ``hyper_cls()``."""
  if name is not None:
    preset, reason = _by_name(algo, name), "chosen by name"
  else:
    preset, pattern = _pick(algo, env_name, device or device_kind())
    reason = "" if pattern is None else (
        "tuned for this env" if "*" not in pattern else f"for {pattern}")
  chain = [preset]
  while chain[-1].base is not None:
    chain.append(_by_name(algo, chain[-1].base))
  config_updates, hyper_updates = {}, {}
  for p in reversed(chain):
    config_updates.update(p.config)
    hyper_updates.update(p.hyper)
  suite = env_name.split("/")[0]
  for p in chain:   # the preset's own table first, then its bases'
    if suite in p.suite_action_repeat:
      config_updates["action_repeat"] = p.suite_action_repeat[suite]
      break
  config = config_cls(**config_updates)
  hyper = hyper_cls()._replace(**hyper_updates)
  return Resolved(preset.name, config, hyper, preset.steps, preset.note, bool(reason), reason)


def defaults(algo: str, env_name: str, *, name: str | None = None,
             device: str | None = None) -> tuple[object, object]:
  """``(config, hyper)`` that ``wmjax train ALGO --env ENV`` starts from (before ``--set``):
  e.g. ``config, hyper = presets.defaults("dreamer", "fast/PointMass")``."""
  from wmjax.train.algos import get_algo

  entry = get_algo(algo)
  resolved = resolve(algo, env_name, entry.config_cls, entry.hyper_cls, name=name, device=device)
  if entry.hyper_from_config is not None:
    return resolved.config, entry.hyper_from_config(resolved.config, resolved.hyper)
  return resolved.config, resolved.hyper
