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
import json
import pathlib

import jax
import numpy as np

import wmjax
from wmjax.agents import dreamer as dreamer_lib
from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.rl.returns import discounted_returns


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
  plan = None
  if args.plan:
    try:
      plan = tuple(int(x) for x in args.plan.split(","))
      assert len(plan) == 3 and min(plan) >= 1
    except (ValueError, AssertionError):
      parser.error(f"--plan takes HORIZON,POPULATION,ITERATIONS (three integers >= 1), got "
                   f"{args.plan!r}")
    if config.get("algo") != "dreamer":
      parser.error(f"--plan plans on a Dreamer world model; {args.run} is a "
                   f"{config.get('algo')} run")
    args.set += ["act_with=plan", f"plan_horizon={plan[0]}", f"plan_population={plan[1]}",
                 f"plan_iterations={plan[2]}"]
  if args.model_check and config.get("algo") != "dreamer":
    parser.error(f"--model-check reads a Dreamer world model; {args.run} is a "
                 f"{config.get('algo')} run")
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
  if args.json:
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
