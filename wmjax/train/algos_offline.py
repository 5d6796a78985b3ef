"""Registry entries of the offline agents: MOPO, MOReL (model-based) and IQL (model-free).

Each trains from a dataset folder (:mod:`wmjax.offline.dataset`) with no new interaction:
``wmjax train mopo --dataset PATH``. The run's length counts gradient steps of the policy
learner (``--updates``); the env is only used to evaluate. Evaluation reports the return and,
when the dataset carries reference returns, D4RL's normalised score; the curve shows the
dataset's own behaviour return as a reference line.
"""

from __future__ import annotations

import math
import pathlib

import jax.numpy as jnp

from wmjax.agents.base import Phase, Program
from wmjax.train.algos import Algo, _env, register
from wmjax.train.loop import Built

__all__ = ["dataset_settings", "OFFLINE_LENGTH_HELP"]

OFFLINE_LENGTH_HELP = ("Gradient steps of the policy learner in all (SAC updates for MOPO and "
                       "MOReL, actor-critic updates for IQL); rounded up to whole iterations. "
                       "Default: the preset's.")


def dataset_settings(path: str | pathlib.Path) -> tuple[str, list[str]]:
  """The env name a dataset folder was collected on, and the ``--set`` items that make an
  offline run fit it (the dataset path, its action repeat and episode length)."""
  from wmjax.offline.dataset import load_meta

  path = pathlib.Path(path).resolve()
  meta = load_meta(path)
  env = meta.get("env")
  if not env:
    raise ValueError(f"{path}/dataset.json names no env; give --env ENV")
  sets = [f"dataset={path}", f"action_repeat={int(meta.get('action_repeat') or 1)}"]
  if meta.get("episode_length"):
    sets.append(f"episode_length={int(meta['episode_length'])}")
  return env, sets


def _load(config, env):
  from wmjax.offline.dataset import load

  if not config.dataset:
    raise ValueError("an offline agent needs a dataset: --dataset PATH (a folder made by "
                     "`wmjax dataset collect`, or by wmjax.offline.save)")
  return load(config.dataset, env)


def _evaluate(episodes_fn, dataset):
  """``evaluate(state, key, hyper) -> metrics``: returns and episode lengths, plus normalised
  scores where the dataset has reference returns."""
  ref = dataset.meta.get("reference") or {}
  scored = "random" in ref and "expert" in ref

  def evaluate(state, key, hyper):
    episodes = episodes_fn(state, key, hyper)
    returns = episodes.returns
    out = episodes.metrics()
    if scored:
      out["eval/normalized_score"] = 100.0 * (returns - ref["random"]) / (
          ref["expert"] - ref["random"])
    return out

  return evaluate


def _derived(dataset, env) -> dict:
  stats = dataset.return_stats()
  return {"dataset": {"path": str(dataset.meta.get("path", "")), "kind": dataset.meta.get("kind"),
                      "size": dataset.size, "behaviour_return": stats["mean"],
                      "episodes": stats["episodes"],
                      "terminated": int(dataset.terminated.sum()),
                      "reference": dataset.meta.get("reference")},
          "spec": {"obs_shape": list(env.spec.obs_shape),
                   "action_shape": list(env.spec.action_shape)}}


def _plot(built: Built) -> dict:
  behaviour = built.derived["dataset"]["behaviour_return"]
  kwargs = {"x_key": "updates", "x_label": "gradient steps (no new env steps)"}
  if behaviour is not None:
    kwargs["reference"] = (behaviour, "dataset behaviour")
  return kwargs


# MOPO and MOReL ----------------------------------------------------------------------------

def _build_model_based(kind: str):
  def build(env_name, steps, config, hyper) -> Built:
    from wmjax.agents import mopo as mopo_lib

    env = _env(env_name, config)
    dataset = _load(config, env)
    make = mopo_lib.make_mopo if kind == "mopo" else mopo_lib.make_morel
    agent = make(env, dataset.device(), config)
    iterations = max(1, math.ceil(steps / config.updates_per_iteration))
    per_iteration = config.updates_per_iteration
    program = Program(
        init=agent.init,
        phases=(Phase("model", agent.model_iteration, config.model_iterations, 1,
                      evaluate=False, shared=agent.model_phase_shared),
                Phase("policy", agent.policy_iteration, iterations, 1)),
        evaluate=_evaluate(agent.evaluate, dataset),
        counters=lambda s: {"env_steps": jnp.zeros((), jnp.int32),
                            "updates": s.iteration * per_iteration,
                            "model_updates": s.model_updates},
        params=lambda s: (s.model.params, s.sac.actor, s.sac.critic, s.termination),
        eval_every=config.eval_every,
        losses=("model/loss", "sac/critic_loss") + (
            ("termination/loss",) if agent.learns_termination else ()),
        policy=agent.policy)
    derived = {**_derived(dataset, env), "learns_termination": agent.learns_termination,
               "model_iterations": config.model_iterations, "policy_iterations": iterations}
    return Built(env, program, config, hyper, derived,
                 progress_total=len(program.chunks()), progress_unit="iteration",
                 progress_key="iteration", extra={"agent": agent, "dataset": dataset})
  return build


_MB_LONG = (
    "Fits the PETS ensemble on the dataset (phase `model`), then trains SAC on short model "
    "rollouts branched from dataset states mixed with dataset rows (phase `policy`), with no new "
    "env steps; the env only evaluates. Terminal states (hopper, walker) are learned by a "
    "classifier when the dataset has them (`learn_termination=auto`). Sweep the penalty and "
    "seeds as one program: `wmjax sweep {name} --dataset PATH --grid {grid}`.")

register(Algo(
    "mopo", "MOPO", "MOPO (offline model-based): ensemble rollouts, reward penalised by lambda x "
    "the model's uncertainty, SAC", ("wmjax.agents.mopo", "MOPOConfig", "MOPOHyper"),
    _build_model_based("mopo"), length_name="updates", length_help=OFFLINE_LENGTH_HELP,
    env_default="", env_help="Environment to evaluate on; default: the dataset's.",
    lr_hint="--set sac_lr=... or --set model_lr=...", plot_kwargs=_plot, offline=True,
    long_help=_MB_LONG.format(name="mopo", grid="penalty_coef=0.5,1,2.5"),
    set_examples="--set penalty_coef=2.5 --set rollout_length=5 --set model_updates=50000"))

register(Algo(
    "morel", "MOReL", "MOReL (offline model-based): a pessimistic MDP that halts with a low "
    "reward where the ensemble disagrees, SAC inside it",
    ("wmjax.agents.mopo", "MOReLConfig", "MOReLHyper"),
    _build_model_based("morel"), length_name="updates", length_help=OFFLINE_LENGTH_HELP,
    env_default="", env_help="Environment to evaluate on; default: the dataset's.",
    lr_hint="--set sac_lr=... or --set model_lr=...", plot_kwargs=_plot, offline=True,
    long_help=_MB_LONG.format(name="morel", grid="threshold=0.5,1,2"),
    set_examples="--set threshold=0.5 --set halt_penalty=10 --set rollout_length=10"))


# IQL -------------------------------------------------------------------------------------

def _build_iql(env_name, steps, config, hyper) -> Built:
  from wmjax.agents import iql as iql_lib

  env = _env(env_name, config)
  dataset = _load(config, env)
  scale = iql_lib.reward_scale_of(dataset) if config.normalize_reward else None
  agent = iql_lib.make_iql(env, dataset.device(), config, reward_scale=scale)
  iterations = max(1, math.ceil(steps / config.updates_per_iteration))
  program = Program(
      init=agent.init, phases=(Phase("train", agent.train_iteration, iterations, 1),),
      evaluate=_evaluate(agent.evaluate, dataset),
      counters=lambda s: {"env_steps": jnp.zeros((), jnp.int32), "updates": s.updates},
      params=lambda s: (s.value, s.critic, s.actor), eval_every=config.eval_every,
      losses=("iql/critic_loss", "iql/value_loss", "iql/actor_loss"), policy=agent.policy)
  derived = {**_derived(dataset, env), "iterations": iterations,
             "reward_scale": agent.reward_scale}
  return Built(env, program, config, hyper, derived,
               progress_total=iterations * config.updates_per_iteration,
               progress_unit="update", progress_key="updates",
               extra={"agent": agent, "dataset": dataset})


register(Algo(
    "iql", "IQL", "IQL (offline model-free baseline): expectile value, TD critic, "
    "advantage-weighted actor", ("wmjax.agents.iql", "IQLConfig", "IQLHyper"),
    _build_iql, length_name="updates", length_help=OFFLINE_LENGTH_HELP,
    env_default="", env_help="Environment to evaluate on; default: the dataset's.",
    lr_hint="--set actor_lr=... or --set critic_lr=...", plot_kwargs=_plot, offline=True,
    long_help="Implicit Q-learning (Kostrikov et al. 2021): V by expectile regression on the "
    "target Q of dataset actions, Q by TD on V, and the actor by advantage-weighted "
    "regression; it never queries actions outside the dataset.",
    set_examples="--set expectile=0.9 --set temperature=10"))
