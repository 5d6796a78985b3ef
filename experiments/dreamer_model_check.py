"""Does a trained Dreamer know the task it acts on? For a Dreamer run of any vector-observation
task, per seed, over the real episodes that ``wmjax eval`` scores: how well its world model
predicts the reward and the observations open-loop, how much its actor's imagined rollouts promise
against what the same policy earns for real, and whether its critic values states at what the
episodes return from them.

    python experiments/dreamer_model_check.py experiments/results/dmc-table/dreamer/dmc-WalkerWalk
    python experiments/dreamer_model_check.py RUN --episodes 4 --horizon 15 --json check.json

At every ``--every``-th agent step ``t`` of each episode (the posterior filtered up to ``t``):
- ``model``: the model's prior rolled ``--horizon`` steps under the actions really taken: its
  predicted reward summed over them against the real sum, and its decoded observations against
  the real ones (the error per dimension, in units of that dimension's spread over the episodes),
  1, 5 and ``horizon`` steps ahead;
- ``actor``: the actor rolled ``--horizon`` steps in imagination from the same state, acting as
  in evaluation (its mode), so the imagined reward it promises against what the same policy
  earned over those steps for real. Its ratio is the optimism the actor learns from (PETS's
  planned against earned);
- ``critic``: the critic's value of the state against the real discounted return (the run's
  discount) to the episode's end, plus the critic's value at the end for the remainder (which
  weighs ``discount ** (T - t)``: only starts where that is at most 0.25 are used).

The horizon is Dreamer's imagination horizon (15), the actor's own lookahead. A few seconds per
seed after compilation.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import wmjax
from wmjax.agents import dreamer as dreamer_lib
from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.rl.returns import discounted_returns

AHEAD = (1, 5)   # besides the horizon: observation errors this many steps ahead
TAIL = 0.25      # the critic check keeps starts whose remainder weighs at most this


def predict(agent, obs, action, starts, horizon: int):
  """Episodes (``obs`` [E, T, O], ``action`` [E, T, A]): at each of ``starts`` [S], the model's
  reward ``[E, S, H]`` and decoded observations ``[E, S, H, O]`` under the real actions, the
  reward ``[E, S, H]`` of the actor's imagined rollout (its mode), and the critic's values
  ``[E, T]`` of the filtered states. One compiled program for all the episodes."""
  fns = dreamer_lib.make_dreamer(agent.env, agent.config)
  wm, params = fns.world_model, agent.state.params
  model = params["model"]

  def run(obs, action, starts):
    embed = wm.encode(model, fns.preprocess(obs)[None])
    is_first = jnp.zeros((1, len(obs))).at[0, 0].set(1.0)
    posts, _ = wm.observe(model, jax.random.PRNGKey(0), embed, action[None], is_first)
    values = fns.value(params["critic"], rssm.features(posts)[0])            # [T]
    begin = jax.tree.map(lambda x: x[0, starts], posts)                      # [S, ...]
    taken = action[starts[:, None] + jnp.arange(horizon)]                    # [S, H, A]
    feat = rssm.features(wm.imagine_actions(model, jax.random.PRNGKey(1), begin, taken))[:, 1:]
    reward_taken = wm.reward(model, feat)                                    # [S, H]
    decoded = heads.symexp(wm.decode(model, feat))                           # [S, H, O]

    def mode(key, feat):
      _, model_action, _ = fns.policy(params["actor"], key, feat, True)
      return model_action, ()
    states, _, _ = wm.imagine(model, jax.random.PRNGKey(2), mode, begin, horizon)
    reward_actor = wm.reward(model, rssm.features(states)[1:]).T            # [S, H]
    return reward_taken, decoded, reward_actor, values

  batched = jax.jit(jax.vmap(run, in_axes=(0, 0, None)))
  return jax.device_get(batched(obs, action, jnp.asarray(starts)))


def summarise(obs, reward, starts, reward_taken, decoded, reward_actor, values, horizon: int,
              discount: float) -> dict:
  """The figures of one seed from its episodes (``obs`` [E, T, O], ``reward`` [E, T]) and
  :func:`predict`'s outputs stacked over them (``[E, S, ...]``, ``values`` [E, T])."""
  episodes, steps = reward.shape
  window = starts[:, None] + np.arange(horizon)                              # [S, H]
  real = reward[:, window]                                                   # [E, S, H]
  real_sum = real.sum(-1).ravel()
  taken_sum, actor_sum = reward_taken.sum(-1).ravel(), reward_actor.sum(-1).ravel()
  corr = lambda a, b: (round(float(np.corrcoef(a, b)[0, 1]), 3)
                       if a.std() > 0 and b.std() > 0 else None)
  spread = obs.reshape(-1, obs.shape[-1]).std(0)
  spread = np.where(spread > 0, spread, 1.0)
  obs_error = {}
  for k in (*AHEAD, horizon):
    if k <= horizon:
      err = np.abs(decoded[:, :, k - 1] - obs[:, starts + k]) / spread       # [E, S, O]
      obs_error[f"{k}_ahead"] = round(float(err.mean()), 3)
  rets = np.stack([np.asarray(discounted_returns(r, np.ones_like(r), discount)) for r in reward])
  remainder = discount ** (steps - np.arange(steps))                         # [T]
  target = rets + remainder * values[:, -1:]                                 # [E, T]
  keep = starts[remainder[starts] <= TAIL]
  value, real_value = values[:, keep].ravel(), target[:, keep].ravel()
  r = lambda x: round(float(x), 2)
  return {
    "episodes": episodes, "agent_steps": steps,
    "returns": [round(float(x), 1) for x in reward.sum(1)],
    "starts": len(starts) * episodes, "horizon": horizon,
    "model": {"real_reward": r(real_sum.mean()), "predicted_reward": r(taken_sum.mean()),
              "reward_error_mean": r(np.abs(taken_sum - real_sum).mean()),
              "reward_correlation": corr(taken_sum, real_sum),
              "obs_error_in_spreads": obs_error},
    "actor": {"imagined_reward": r(actor_sum.mean()), "real_reward": r(real_sum.mean()),
              "ratio": r(actor_sum.mean() / real_sum.mean()) if real_sum.mean() else None,
              "correlation": corr(actor_sum, real_sum)},
    "critic": ({"starts": int(keep.size) * episodes, "value": r(value.mean()),
                "real_return": r(real_value.mean()),
                "ratio": r(value.mean() / real_value.mean()) if real_value.mean() else None,
                "correlation": corr(value, real_value), "discount": discount} if keep.size else
               {"starts": 0, "discount": discount,
                "note": f"no start leaves {discount} ** (T - t) <= {TAIL}: the episodes "
                f"({steps} agent steps) are short for the critic's horizon"})}


def check(agent, key, episodes: int, horizon: int, every: int) -> dict:
  traj = jax.device_get(jax.jit(agent.trajectories, static_argnums=1)(key, episodes))
  obs, action, reward = (np.asarray(x) for x in (traj.obs, traj.actions, traj.rewards))
  if obs.ndim != 3:
    raise ValueError(f"vector observations only: {agent.env_name}'s are {obs.shape[2:]}")
  starts = np.arange(0, obs.shape[1] - horizon, every)
  predicted = (np.asarray(x) for x in predict(agent, obs, action, starts, horizon))
  return summarise(obs, reward, starts, *predicted, horizon=horizon,
                   discount=float(agent.hyper.discount))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("run", type=pathlib.Path, help="a Dreamer run folder (vector observations)")
  parser.add_argument("--episodes", type=int, default=4)
  parser.add_argument("--seed", type=int, default=7, help="key of the episodes")
  parser.add_argument("--horizon", type=int, default=15, help="agent steps looked ahead")
  parser.add_argument("--every", type=int, default=10, help="agent steps between starts")
  parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
  args = parser.parse_args(argv)
  config_path = args.run / "config.json"
  if not config_path.exists():
    parser.error(f"{args.run}: no config.json; is it a run folder?")
  config = json.loads(config_path.read_text())
  if config.get("algo") != "dreamer":
    parser.error(f"{args.run} is a {config.get('algo')} run: this reads a Dreamer world model")
  for name in ("episodes", "horizon", "every"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
  out = {"run": str(args.run), "env": config.get("env"), "seeds": {}}
  for seed in range(int(config.get("seeds", 1))):
    agent = wmjax.load(args.run, seed=seed)
    s = check(agent, jax.random.PRNGKey(args.seed), args.episodes, args.horizon, args.every)
    out["seeds"][seed] = s
    m, a, c = s["model"], s["actor"], s["critic"]
    print(f"seed {seed}: returns {s['returns']}; over {s['starts']} starts, {args.horizon} agent "
          f"steps ahead:\n  model, under the actions taken: reward {m['predicted_reward']} "
          f"predicted, {m['real_reward']} real (error {m['reward_error_mean']}, correlation "
          f"{m['reward_correlation']}); observation error in spreads "
          + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["obs_error_in_spreads"].items())
          + f"\n  actor, in imagination: reward {a['imagined_reward']} imagined, "
          f"{a['real_reward']} real (ratio {a['ratio']}, correlation {a['correlation']})"
          + (f"\n  critic ({c['starts']} starts): value {c['value']}, real discounted return "
             f"{c['real_return']} (ratio {c['ratio']}, correlation {c['correlation']})"
             if c["starts"] else f"\n  critic: {c['note']}"))
  if args.json:
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
