"""Dreamer's per-step keys: the latent sample and the action sample never share a key."""

import jax
import numpy as np

from wmjax import envs
from wmjax.agents import dreamer as dreamer_lib
from wmjax.models import rssm

TINY = dreamer_lib.DreamerConfig(action_repeat=1, size="debug", num_envs=2,
                                 steps_per_iteration=4, prefill=8, replay_capacity=64,
                                 batch_size=2, seq_len=4, horizon=2, eval_episodes=2)


def test_step_keys_are_distinct_under_jit_and_vmap():
  keys = jax.random.split(jax.random.PRNGKey(0), 5)
  out = jax.jit(jax.vmap(dreamer_lib._step_keys))(keys)
  parts = [np.asarray(keys)] + [np.asarray(k) for k in out]
  assert len(parts) == 4   # the step's own key, then policy, model and random-action keys
  for i in range(len(parts)):
    for j in range(i + 1, len(parts)):
      assert not np.any(np.all(parts[i] == parts[j], axis=-1)), (i, j)
  for one, key in zip(np.asarray(out.model), keys, strict=True):
    np.testing.assert_array_equal(one, dreamer_lib._step_keys(key).model)


def test_evaluate_samples_latent_and_action_with_different_keys(monkeypatch):
  seen = {"obs_step": [], "model": [], "policy": []}

  def record(name):
    return lambda k: seen[name].append(np.asarray(k))

  make_world_model = rssm.make_world_model

  def recording_world_model(*args, **kwargs):
    module, wm = make_world_model(*args, **kwargs)

    def obs_step(params, key, *rest):
      jax.debug.callback(record("obs_step"), key)
      return wm.obs_step(params, key, *rest)

    return module, wm._replace(obs_step=obs_step)

  step_keys = dreamer_lib._step_keys

  def recording_step_keys(key):
    keys = step_keys(key)
    jax.debug.callback(record("model"), keys.model)
    jax.debug.callback(record("policy"), keys.policy)
    return keys

  monkeypatch.setattr(rssm, "make_world_model", recording_world_model)
  monkeypatch.setattr(dreamer_lib, "_step_keys", recording_step_keys)
  dreamer = dreamer_lib.make_dreamer(envs.make("fast/PointMass", episode_length=3), TINY)
  state = dreamer.init(jax.random.PRNGKey(0), dreamer_lib.DreamerHyper())
  for calls in seen.values():   # init steps the model too; only evaluate's steps count here
    calls.clear()
  jax.block_until_ready(dreamer.evaluate(state, jax.random.PRNGKey(1)))
  # 3 steps of each of the (vmapped) evaluation episodes, each episode on its own keys
  steps = 3 * TINY.eval_episodes
  assert len(seen["obs_step"]) == len(seen["model"]) == len(seen["policy"]) == steps
  # Unordered callbacks from vmapped episodes may arrive in any order (they did under load), so
  # compare the sets: every latent sample used a model key, and no policy key.
  as_set = lambda keys: {tuple(np.asarray(k).ravel().tolist()) for k in keys}   # noqa: E731
  latent, model, policy = (as_set(seen[name]) for name in ("obs_step", "model", "policy"))
  assert len(latent) == steps and latent == model
  assert not latent & policy
