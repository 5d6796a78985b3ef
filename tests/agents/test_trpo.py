"""TRPO: conjugate gradient against a direct solve, the Fisher-vector product against the
explicit Hessian of the KL and the closed-form Gaussian Fisher, and learning on the point mass
through the driver with every step inside the trust region."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from wmjax import envs
from wmjax.agents import trpo as trpo_lib
from wmjax.agents.base import Policy
from wmjax.rl.rollout import policy_returns
from wmjax.train import loop


@pytest.mark.parametrize("n, iters", [(6, 6), (12, 30)])
def test_conjugate_gradient_matches_a_direct_solve(n, iters):
  """On an SPD matrix CG reaches the solution in n steps (in exact arithmetic); the steps past
  convergence must leave it there (no 0 / 0)."""
  k_a, k_b = jax.random.split(jax.random.PRNGKey(n))
  m = jax.random.normal(k_a, (n, n))
  a = m @ m.T + 0.5 * jnp.eye(n)
  b = jax.random.normal(k_b, (n,))
  solve = jax.jit(lambda a, b: trpo_lib.conjugate_gradient(lambda v: a @ v, b, iters))
  x = solve(a, b)
  assert np.all(np.isfinite(np.asarray(x)))
  np.testing.assert_allclose(x, jnp.linalg.solve(a, b), rtol=2e-3, atol=2e-3)
  # vmapped over right-hand sides: each column solved alike
  bs = jax.random.normal(k_b, (3, n))
  xs = jax.jit(jax.vmap(lambda b: trpo_lib.conjugate_gradient(lambda v: a @ v, b, iters)))(bs)
  np.testing.assert_allclose(xs, jnp.linalg.solve(a, bs.T).T, rtol=2e-3, atol=2e-3)


def test_fisher_vector_product_matches_the_hessian_of_the_kl_and_the_gaussian_fisher():
  env = envs.make("fast/PointMass")
  config = trpo_lib.TRPOConfig(num_envs=2, rollout_length=4, value_minibatches=2,
                               policy_hidden_sizes=(5,), value_hidden_sizes=(3,))
  trpo = trpo_lib.make_trpo(env, config)
  state = jax.jit(trpo.init)(jax.random.PRNGKey(0), trpo_lib.TRPOHyper())
  flat, unravel = ravel_pytree(state.policy)
  # Random parameters everywhere (the mean's output layer starts at zero).
  flat = 0.5 * jax.random.normal(jax.random.PRNGKey(1), flat.shape)
  obs = jax.random.normal(jax.random.PRNGKey(2), (7, 4))
  stats = trpo_lib.ObsStats(jnp.asarray(10.0), jnp.full(4, 0.1), jnp.full(4, 20.0))
  mean_old, log_std_old = jax.jit(trpo.distribution)(unravel(flat), stats, obs)

  def mean_kl(f):
    mean, log_std = trpo.distribution(unravel(f), stats, obs)
    return jnp.mean(trpo_lib.gaussian_kl(mean_old, log_std_old, mean, log_std))

  v = jax.random.normal(jax.random.PRNGKey(3), flat.shape)
  damping = 0.1
  fvp = jax.jit(lambda f, v: trpo_lib.fisher_vector_product(mean_kl, f, v, damping))(flat, v)
  hessian = jax.jit(jax.hessian(mean_kl))(flat)
  np.testing.assert_allclose(fvp, hessian @ v + damping * v, rtol=1e-4, atol=1e-5)
  # The Fisher of a diagonal Gaussian: mean_s J_mu^T diag(1 / sigma^2) J_mu, plus 2 on each
  # (state-independent) log-std.
  jac_mean = jax.jit(jax.jacfwd(lambda f: trpo.distribution(unravel(f), stats, obs)[0]))(
      flat)                                                                    # [S, A, P]
  jac_log_std = jax.jit(jax.jacfwd(lambda f: unravel(f)["log_std"]))(flat)    # [A, P]
  inv_var = jnp.exp(-2.0 * log_std_old)                                                 # [S, A]
  fisher = (jnp.einsum("sap,sa,saq->pq", jac_mean, inv_var, jac_mean) / obs.shape[0]
            + 2.0 * jac_log_std.T @ jac_log_std)
  np.testing.assert_allclose(hessian, fisher, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(fvp, fisher @ v + damping * v, rtol=1e-4, atol=1e-5)
  # The KL itself: zero at the old parameters, and the closed form against a Monte-Carlo one.
  assert abs(float(jax.jit(mean_kl)(flat))) < 1e-6
  mp, lp, mq, lq = 0.3, -0.2, -0.1, 0.4
  x = mp + np.exp(lp) * np.asarray(jax.random.normal(jax.random.PRNGKey(4), (200_000,)))
  log_ratio = (-0.5 * ((x - mp) / np.exp(lp)) ** 2 - lp) - (-0.5 * ((x - mq) / np.exp(lq)) ** 2
                                                            - lq)
  kl = float(trpo_lib.gaussian_kl(jnp.array([mp]), jnp.array([lp]), jnp.array([mq]),
                                  jnp.array([lq])))
  np.testing.assert_allclose(kl, log_ratio.mean(), rtol=2e-2)


@pytest.fixture(scope="module")
def point_mass_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("trpo") / "run"
  run = loop.train("trpo", "fast/PointMass", out=out, steps=16 * 512, seeds=2, progress=False,
                   sets=["eval_episodes=32", "eval_every=4"])
  lines = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
  return run, lines


def _random_return(env, episodes=64):
  """A uniform random policy's return, episodes run by the same rollout as the evaluator."""
  def act(state, hyper, carry, obs, key, deterministic):
    del state, hyper, obs, deterministic
    return carry, jax.random.uniform(key, env.spec.action_shape, minval=-1.0, maxval=1.0)

  random_policy = Policy(lambda state, hyper, key: (), act)
  returns = jax.jit(lambda k: policy_returns(env, random_policy, None, None, k, episodes))(
      jax.random.PRNGKey(7))
  return float(np.mean(returns))


def test_trpo_learns_point_mass_within_the_trust_region(point_mass_run):
  run, lines = point_mass_run
  config = json.loads((run.path / "config.json").read_text())
  max_kl = config["hyper"]["max_kl"]
  assert len(lines) == 16   # one line per iteration of 16 envs x 32 steps
  kl = np.array([line["trpo/kl"] for line in lines])           # [iterations, seeds]
  accepted = np.array([line["trpo/accepted"] for line in lines])
  assert kl.shape == (16, 2)
  assert np.all(kl <= max_kl * (1 + 1e-5)), kl.max()
  # Steps are taken (most accepted) and are not vanishingly small.
  assert accepted.mean() > 0.8 and np.all(kl[accepted > 0] > 0.1 * max_kl)
  assert all(np.all(np.isfinite(line["value/loss"])) for line in lines)
  assert lines[-1]["env_steps"] == 16 * 512
  random_return = _random_return(envs.make("fast/PointMass"))
  final = np.asarray(lines[-1]["eval/episode_return"])          # per seed
  # A random policy scores about 28 of 50 here, a good controller about 45.
  assert random_return < 32, random_return
  assert np.all(final > random_return + 8), (final, random_return)


def test_value_function_fits_and_episodes_are_counted(point_mass_run):
  _, lines = point_mass_run
  # 16 envs x 32 steps of 50-step episodes: episodes end in about every other iteration.
  episodes = np.array([line["train/episodes"] for line in lines]).sum(axis=0)
  assert np.all(episodes == 16 * (16 * 32 // 50))
  assert np.mean([line["value/explained_variance_mean"] for line in lines[-4:]]) > 0.5
  returns = [line["train/episode_return_mean"] for line in lines]
  assert returns[0] is None and returns[1] is not None   # none finished in the first 32 steps
