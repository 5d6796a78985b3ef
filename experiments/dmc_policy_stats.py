"""Where a DM Control pole policy loses its return: rolls a trained run's policy and measures the
pole (and the cart), per seed. For cart-pole and pendulum tasks.

    python experiments/dmc_policy_stats.py experiments/results/dmc-table/pets/dmc-CartpoleBalance
    python experiments/dmc_policy_stats.py RUN --episodes 8 --json stats.json

For ``dmc/Cartpole*`` and ``dmc/PendulumSwingup`` runs of any agent (``wmjax.load``). Both
observations hold cos(pole angle) at index 1: cart-pole's is ``[cart position, cos, sin, cart
velocity, pole angular velocity]``, pendulum's ``[sin, cos, angular velocity]``. "Upright" is cos >
0.95 for cart-pole (its reward is the product of ``(1 + cos) / 2``, a centred cart, a small action
and a slow pole) and cos > cos(8 degrees) for pendulum (its reward: 1 there, 0 elsewhere). Printed
per seed: the episodes' returns, the share of agent steps with the pole upright and below horizontal
(cos < 0), the cos it starts at and the highest it reaches, the first agent step at which the pole
is upright and the share it stays upright from then on (swing-up), the first at which it falls from
there, the mean and largest cart offset (cart-pole), and the mean |action|. ``--model-check``
(Dreamer runs) adds whether the world model predicts the pole's first fall from upright, 15 agent
steps ahead under the actions really taken, and whether the critic's value there expects the fall
(beside the real discounted return). The episodes are those that ``wmjax eval`` scores for
the key (``--seed``). A few seconds per seed after compilation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import wmjax
from wmjax.agents import dreamer as dreamer_lib
from wmjax.agents.dreamer import planning_objective
from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.planners import make_cem
from wmjax.rl.returns import discounted_returns
from wmjax.rl.rollout import episode_keys


def rollout(agent, key, episodes: int):
  """``obs`` [E, T, 5] (what the agent saw at t), ``action`` [E, T, 1] (what it did) and
  ``reward`` [E, T] (what that earned) of full episodes: the episodes that ``wmjax eval``
  scores for ``key`` (:meth:`wmjax.loaded.LoadedAgent.trajectories`), acted as the agent was
  loaded (a Dreamer run loaded with ``act_with=plan`` plans on its world model and critic)."""
  traj = jax.device_get(jax.jit(agent.trajectories, static_argnums=1)(key, episodes))
  return traj.obs, traj.actions, traj.rewards


def model_check(agent, obs, action, reward, start: int, fall: int | None = None,
                horizon: int = 15) -> dict:
  """Dreamer only: does its world model see the pole's fall coming, and does its critic? Filters
  one real episode (``obs`` [T, O], ``action`` [T, 1], ``reward`` [T]) up to ``start``, then
  rolls the model's prior ``horizon`` steps under the actions the policy really took, and
  returns the real and predicted cos(pole angle) and reward over those steps. ``critic``: the
  critic's value of the filtered state at ``start``, at ``fall`` and 12 agent steps after it,
  beside the real discounted return from there (the run's discount) and the return of holding
  the pole from ``start`` on at its reward there (what the critic would say if it expected no
  fall). The real return is cut at the episode's end, so it is comparable where 1 / (1 -
  discount) steps remain."""
  fns = dreamer_lib.make_dreamer(agent.env, agent.config)
  wm, params = fns.world_model, agent.state.params["model"]
  horizon = min(horizon, len(obs) - start - 1)

  @jax.jit
  def predict(obs, action):
    embed = wm.encode(params, fns.preprocess(obs)[None])
    is_first = jax.numpy.zeros((1, len(obs))).at[0, 0].set(1.0)
    posts, _ = wm.observe(params, jax.random.PRNGKey(0), embed, action[None], is_first)
    values = fns.value(agent.state.params["critic"], rssm.features(posts)[0])   # [T]
    begin = jax.tree.map(lambda x: x[:, start], posts)
    states = wm.imagine_actions(params, jax.random.PRNGKey(1), begin,
                                action[None, start:start + horizon])
    feat = rssm.features(states)[0]                      # [horizon + 1, F]: start first
    return (heads.symexp(wm.decode(params, feat))[:, 1], wm.reward(params, feat[1:]), values)

  cos, rew, values = jax.device_get(predict(obs, action))
  real_cos, real_rew = obs[start:start + horizon + 1, 1], reward[start:start + horizon]
  discount = float(agent.hyper.discount)
  real_returns = np.asarray(discounted_returns(reward, np.ones_like(reward), discount))
  points = {"start": start}
  if fall is not None and fall < len(obs):
    points.update(fall=fall, after_fall=min(fall + 12, len(obs) - 1))
  critic = {name: {"agent_step": t, "value": round(float(values[t]), 1),
                   "real_return": round(float(real_returns[t]), 1)}
            for name, t in points.items()}
  critic["holding_return"] = round(float(reward[start]) / (1.0 - discount), 1)
  critic["discount"] = discount
  return {"start": start, "horizon": horizon,
          "real_cos": np.round(real_cos, 3).tolist(), "predicted_cos": np.round(cos, 3).tolist(),
          "real_reward": np.round(real_rew, 3).tolist(),
          "predicted_reward": np.round(rew, 3).tolist(),
          "cos_error_max": round(float(np.abs(cos - real_cos).max()), 3),
          "reward_error_mean": round(float(np.abs(rew - real_rew).mean()), 3),
          "critic": critic}


def plan_check(agent, key, episode: int, obs, action, steps, plan=(15, 256, 5)) -> list[dict]:
  """Dreamer only: why does CEM on the model and critic act worse (or better) than the actor?
  At each agent step ``t`` of ``steps`` in one real episode (``obs`` [T, O], ``action`` [T, A],
  the ``episode``-th of :func:`rollout`'s for ``key``), from the state filtered up to ``t``:
  the planning objective (discounted model rewards, then the critic's value:
  :func:`wmjax.agents.dreamer.planning_objective`) of the actor's own ``H``-step plan (its mean
  actions, imagined on the objective's samples), of CEM's plan (``plan``: horizon, population,
  iterations; from a cold start, the plan it acts on: the elites' mean, or the best sampled
  with ``plan_act=best``) and its best sampled sequence,
  and of CEM started from the actor's plan, each the mean (and std) over ``SAMPLES`` samples of
  the model's prior: the planner scores each sequence on one sample, so its best sampled score
  is the largest of many noisy ones. Beside each, the real discounted reward of the same
  ``H`` actions played open-loop from the real state at ``t`` (the env replayed from its reset
  under the episode's actions): which plans are really better, not only in the model's eyes. If
  CEM's plan outscores the actor's in the model but not for real, the model or critic misleads
  the search; if it scores lower in the model too, the search misses what the model holds."""
  fns = dreamer_lib.make_dreamer(agent.env, dataclasses.replace(agent.config, act_with="actor"))
  env, params, wm = agent.env, agent.state.params, fns.world_model
  horizon, population, iterations = plan
  planner = make_cem(horizon, population, iterations,
                     return_mean_elites=agent.config.plan_act == "mean")
  discount = agent.hyper.discount
  key_reset = episode_keys(jax.random.split(key, episode + 1)[episode])[0]

  @jax.jit
  def check(obs, action, t, key):
    embed = wm.encode(params["model"], fns.preprocess(obs)[None])
    is_first = jnp.zeros((1, len(obs))).at[0, 0].set(1.0)
    posts, _ = wm.observe(params["model"], jax.random.PRNGKey(0), embed, action[None], is_first)
    latent = jax.tree.map(lambda x: x[:, t], posts)
    key_model, key_plan = jax.random.split(key)
    objective = planning_objective(fns, params, latent, discount, key_model,
                                   agent.config.plan_samples)

    def actor_step(s, key_h):   # the actor's mean action, the prior on the objective's keys
      _, a, _ = fns.policy(params["actor"], key_h, rssm.features(s), True)
      return wm.img_step(params["model"], key_h, s, a), a[0]
    _, actor_plan = jax.lax.scan(actor_step, latent, jax.random.split(key_model, horizon))

    def cem(mean):
      state = planner.init(env.spec)
      state = state if mean is None else state._replace(mean=mean)
      new, first, info = planner.plan(state, key_plan, objective)
      # The plan it acts on (plan_act: the elites' mean or the best sampled): its first
      # action, then the rest (un-shift the warm start).
      return jnp.concatenate([first[None], new.mean[:-1]]), info["planner/best_return"]
    cem_plan, best = cem(None)
    seeded_plan, _ = cem(actor_plan)
    plans = jnp.stack([actor_plan, cem_plan, seeded_plan])        # [3, H, A]
    # The objective samples the prior once per sequence, by its row in the batch: each plan is
    # scored on SAMPLES rows (SAMPLES prior samples), their mean and spread.
    model = planning_objective(fns, params, latent, discount, key_model)(
      None, jnp.repeat(plans, SAMPLES, axis=0)).reshape(len(plans), SAMPLES)

    # The real env from the episode's reset, replayed under its actions up to t, then each plan.
    def replay(state, inputs):
      i, a = inputs
      return jax.lax.cond(i < t, lambda s: env.step(s, a), lambda s: s, state), None
    real_t, _ = jax.lax.scan(replay, env.reset(key_reset), (jnp.arange(len(action)), action))

    def open_loop(actions):
      def step(carry, a):
        state, alive = carry
        state = env.step(state, a)
        return (state, alive * (1 - state.done)), state.reward * alive
      _, rewards = jax.lax.scan(step, (real_t, jnp.float32(1)), actions)
      return rewards @ discount ** jnp.arange(horizon)
    real = jax.vmap(open_loop)(plans)
    return model.mean(1), model.std(1), best, real, plans[:, 0], real_t.obs

  out = []
  for t in steps:
    model, spread, best, real, first, real_obs = jax.device_get(
      check(obs, action, t, jax.random.fold_in(key, t)))
    np.testing.assert_allclose(real_obs, obs[t], atol=1e-3)   # the replay found the real state
    names = ("actor", "cem", "cem_from_actor")
    out.append({"agent_step": int(t),
                "model_objective": dict(zip(names, np.round(model, 2).tolist(), strict=True)),
                "model_objective_std": dict(zip(names, np.round(spread, 2).tolist(),
                                                strict=True)),
                "cem_best_sampled": round(float(best), 2),
                "real_open_loop": dict(zip(names, np.round(real, 2).tolist(), strict=True)),
                "first_action": dict(zip(names, np.round(first, 3).tolist(), strict=True))})
  return out


SAMPLES = 64   # prior samples per plan in plan_check's scores


# task name part -> (cos(angle) above which the pole counts as upright, whether obs[0] is a cart)
TASKS = {"Cartpole": (0.95, True), "Pendulum": (float(np.cos(np.deg2rad(8))), False)}


def task_of(env_name: str) -> tuple[float, bool]:
  """``(upright bound, has a cart)`` of a run's env, or ``ValueError`` naming what is known."""
  for part, spec in TASKS.items():
    if env_name.startswith("dmc/") and part in env_name:
      return spec
  raise ValueError(f"{env_name or 'an unknown env'} is not a DM Control cart-pole or pendulum "
                   f"task (known: dmc/{'*, dmc/'.join(TASKS)}*)")


def stats(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, upright_above: float = 0.95,
          cart: bool = True) -> dict:
  cos = obs[..., 1]
  upright = cos > upright_above
  first = lambda flags: [int(np.argmax(f)) if f.any() else len(f) for f in flags]
  reached = first(upright)
  held = [u[t:].mean() for u, t in zip(upright, reached, strict=True) if t < len(u)]
  returns = np.asarray(reward, np.float64).sum(1).round(1).tolist()
  return {"returns": returns, "agent_steps": int(obs.shape[1]),
          "upright_share": round(float(upright.mean()), 3),
          "below_horizontal_share": round(float((cos < 0).mean()), 3),
          "start_cos": np.round(cos[:, 0].astype(np.float64), 3).tolist(),
          "highest_cos": np.round(cos.max(1).astype(np.float64), 3).tolist(),
          "first_step_upright": reached,       # swing-up: when the pole first gets there
          "upright_share_after_reaching": round(float(np.mean(held)), 3) if held else None,
          # when it first leaves upright after getting there (balance: from the start)
          "first_step_falls": [t + first([~u[t:]])[0] for u, t in zip(upright, reached,
                                                                        strict=True)],
          "abs_action_mean": round(float(np.abs(action).mean()), 3),
          **({"cart_offset_mean": round(float(np.abs(obs[..., 0]).mean()), 3),
              "cart_offset_max": round(float(np.abs(obs[..., 0]).max()), 3)} if cart else {})}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("run", type=pathlib.Path,
                      help="a run folder of a dmc/Cartpole* or dmc/PendulumSwingup task")
  parser.add_argument("--episodes", type=int, default=4)
  parser.add_argument("--seed", type=int, default=7, help="key of the episodes")
  parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
  parser.add_argument("--plan", metavar="H,N,I",
                      help="Dreamer runs: act by CEM (horizon H, population N, I iterations) "
                      "on the run's own world model and critic instead of its actor, on the "
                      "same episodes: do the model and critic hold better actions? e.g. 15,256,5 "
                      "(the same as --set act_with=plan --set plan_horizon=15 ...)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="act with this setting instead of the run's, as `wmjax eval --set` "
                      "(e.g. horizon=36: a longer planner on the trained model); repeatable")
  parser.add_argument("--plan-check", type=int, metavar="EPISODE",
                      help="Dreamer runs: in this episode (0-based) of each seed, every 2nd "
                      "agent step of the first 24: the model and critic's score of the actor's "
                      "plan and of CEM's (--plan's sizes, else 15,256,5), beside the real reward "
                      "of the same actions played open-loop: does the model mislead the search, "
                      "or does the search miss what the model holds?")
  parser.add_argument("--model-check", action="store_true",
                      help="Dreamer runs: from 12 agent steps before the pole first falls, "
                      "the world model's 15-step prediction of the pole and the reward "
                      "under the actions really taken, against what happened")
  args = parser.parse_args(argv)
  config = json.loads((args.run / "config.json").read_text())
  env_name = config.get("env", "")
  try:
    upright_above, cart = task_of(env_name)
  except ValueError as e:
    parser.error(f"{args.run}: {e}")
  dreamer_only = [flag for flag, used in (("--plan", args.plan), ("--plan-check",
                  args.plan_check is not None), ("--model-check", args.model_check)) if used]
  if dreamer_only and config.get("algo") != "dreamer":
    parser.error(f"{', '.join(dreamer_only)}: read a Dreamer world model; {args.run} is a "
                 f"{config.get('algo')} run")
  plan = None
  if args.plan:
    try:
      plan = tuple(int(x) for x in args.plan.split(","))
      assert len(plan) == 3 and min(plan) >= 1
    except (ValueError, AssertionError):
      parser.error(f"--plan takes HORIZON,POPULATION,ITERATIONS (three integers >= 1), got "
                   f"{args.plan!r}")
    args.set += ["act_with=plan", f"plan_horizon={plan[0]}", f"plan_population={plan[1]}",
                 f"plan_iterations={plan[2]}"]
  if args.plan_check is not None and not 0 <= args.plan_check < args.episodes:
    parser.error(f"--plan-check {args.plan_check}: there are --episodes {args.episodes} "
                 f"(0 to {args.episodes - 1})")
  seeds = int(config.get("seeds", 1))
  out = {"run": str(args.run), "env": env_name, "sets": args.set, "plan": plan, "seeds": {}}
  for seed in range(seeds):
    agent = wmjax.load(args.run, seed=seed, sets=args.set)
    episodes = rollout(agent, jax.random.PRNGKey(args.seed), args.episodes)
    s = stats(*episodes, upright_above=upright_above, cart=cart)
    out["seeds"][seed] = s
    held = s["upright_share_after_reaching"]
    held = "never" if held is None else f"held {held:.0%} after that"
    print(f"seed {seed}: returns {s['returns']}; pole upright {s['upright_share']:.0%} of "
          f"{s['agent_steps']} agent steps, below horizontal {s['below_horizontal_share']:.0%}; "
          f"first upright at {s['first_step_upright']}, {held}; first falls at "
          f"{s['first_step_falls']}; cos at the start {s['start_cos']}, highest "
          f"{s['highest_cos']}; "
          + (f"cart offset mean {s['cart_offset_mean']:.2f}, max {s['cart_offset_max']:.2f}; "
             if cart else "") + f"|action| mean {s['abs_action_mean']:.2f}")
    fall = s["first_step_falls"][0]
    if args.model_check and 0 < fall < s["agent_steps"]:
      start = max(fall - 12, s["first_step_upright"][0])
      check = model_check(agent, *(x[0] for x in episodes), start=start, fall=fall)
      s["model_check"] = check
      print(f"  episode 0, from agent step {check['start']} (the pole leaves upright at {fall}):"
            f" cos real {np.round(check['real_cos'][::3], 2).tolist()}, the model's "
            f"{np.round(check['predicted_cos'][::3], 2).tolist()} (largest error "
            f"{check['cos_error_max']:.2f}); reward real "
            f"{np.round(check['real_reward'][::3], 2).tolist()}, the model's "
            f"{np.round(check['predicted_reward'][::3], 2).tolist()}")
      c = check["critic"]
      print("  critic value (real discounted return) at "
            + ", ".join(f"{name} {v['agent_step']}: {v['value']} ({v['real_return']})"
                        for name, v in c.items() if isinstance(v, dict))
            + f"; holding from the start would return {c['holding_return']}")
    if args.plan_check is not None:
      e = args.plan_check
      steps = range(0, min(24, s["agent_steps"] - 1), 2)
      check = plan_check(agent, jax.random.PRNGKey(args.seed), e, episodes[0][e],
                         episodes[1][e], steps, plan or (15, 256, 5))
      s["plan_check"] = {"episode": e, "steps": check}
      print(f"  plan check, episode {e} (discounted over the plan's horizon; model: rewards then "
            f"the critic's value, mean over {SAMPLES} prior samples; real: the same actions "
            "open-loop, rewards only):")
      for c in check:
        m, r = c["model_objective"], c["real_open_loop"]
        sd = c["model_objective_std"]
        print(f"    step {c['agent_step']:3d}: model actor {m['actor']:7.2f} "
              f"(std {sd['actor']:5.2f}) cem {m['cem']:7.2f} (std {sd['cem']:5.2f}; best "
              f"single-sample score seen {c['cem_best_sampled']:7.2f}) cem-from-actor "
              f"{m['cem_from_actor']:7.2f} | real actor {r['actor']:6.2f} cem {r['cem']:6.2f} "
              f"cem-from-actor {r['cem_from_actor']:6.2f} | first action "
              f"{c['first_action']}")
  if args.json:
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
