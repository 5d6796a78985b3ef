"""Bring your own environment: from Python (register_env), from the command line (--env
module:factory, --import MODULE), with the standard wrappers, and clear errors for bad input."""

import json
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from wmjax import envs
from wmjax.cli import app
from wmjax.envs import registry, user

MY_ENVS = textwrap.dedent('''
    """A user's own environments, in a file outside the wmjax package."""
    import jax
    import jax.numpy as jnp
    from brax.envs.base import Env, State

    from wmjax.envs import register_env


    class Drift(Env):
      """A point on a line, pushed by the action, rewarded for staying near 0."""

      def __init__(self, limit=2.0):
        self.limit = limit

      def reset(self, rng):
        x = jax.random.uniform(rng, (1,), minval=-1.0, maxval=1.0)
        return State(pipeline_state=None, obs=x, reward=jnp.zeros(()), done=jnp.zeros(()))

      def step(self, state, action):
        x = jnp.clip(state.obs + 0.2 * action, -self.limit, self.limit)
        return state.replace(obs=x, reward=-jnp.sum(x ** 2), done=jnp.zeros(()))

      @property
      def observation_size(self):
        return 1

      @property
      def action_size(self):
        return 1

      @property
      def backend(self):
        return "jax"


    class DictObs(Drift):
      @property
      def observation_size(self):
        return {"position": 1}


    def make_drift(**kwargs):
      """Drift: a point on a line, to the origin."""
      return Drift(**kwargs)


    make_drift.episode_length = 50


    def not_an_env():
      return 42


    def broken():
      raise RuntimeError("the simulator licence expired")


    register_env("mine/Drift", make_drift, episode_length=50, description="a point to 0")
''')


@pytest.fixture
def my_envs(tmp_path):
  path = tmp_path / "my_envs.py"
  path.write_text(MY_ENVS)
  yield path
  for name in list(user._USER):   # leave the registry as the other tests know it
    registry._REGISTRY.pop(name, None)
    user._USER.discard(name)
    user._ORIGIN.pop(name, None)
    user._FACTORY.pop(name, None)
  for mod in [m for m in sys.modules if m.startswith("wmjax_user_my_envs")]:
    del sys.modules[mod]


def _invoke(*args):
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("WMJAX_CACHE", jax.config.jax_compilation_cache_dir)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_an_env_registered_from_python_gets_the_standard_wrappers(my_envs):
  assert envs.import_envs(str(my_envs)) == ["mine/Drift"]
  assert "mine/Drift" in envs.names()
  env = envs.make("mine/Drift")
  assert env.spec.obs_shape == (1,) and env.spec.action_shape == (1,)
  state = env.reset(jax.random.PRNGKey(0))
  step = jax.jit(env.step)
  for _ in range(50):
    state = step(state, jnp.array([5.0]))    # clipped to [-1, 1]: 0.2 per step, capped at 2
  np.testing.assert_allclose(state.obs, [2.0], atol=1e-6)
  assert float(state.info["truncated"]) == 1.0 and float(state.info["terminated"]) == 0.0
  with pytest.raises(ValueError, match=r"action has shape \(2,\)"):
    env.step(state, jnp.zeros(2))


def test_bad_envs_and_names_get_clear_errors(my_envs):
  mod = user.load_factory(f"{my_envs}:make_drift").__module__
  source = sys.modules[mod]
  with pytest.raises(ValueError, match="'fast/PointMass' is a built-in environment"):
    envs.register_env("fast/PointMass", source.make_drift)
  with pytest.raises(ValueError, match="'suite/name'"):
    envs.register_env("Drift", source.make_drift)
  with pytest.raises(TypeError, match="must be callable"):
    envs.register_env("mine/Answer", 42)
  envs.register_env("mine/Number", source.not_an_env)
  with pytest.raises(TypeError, match="returned int, which is not an environment: it lacks "
                     "reset, step, observation_size, action_size"):
    envs.make("mine/Number")
  envs.register_env("mine/Broken", source.broken)
  with pytest.raises(ValueError, match="failed: RuntimeError: the simulator licence expired"):
    envs.make("mine/Broken")
  envs.register_env("mine/Dict", source.DictObs)
  with pytest.raises(ValueError, match="dictionary observations"):
    envs.make("mine/Dict")
  envs.register_env("mine/Dict", source.DictObs)   # the same factory again: a re-run cell
  with pytest.raises(ValueError, match=r"already registered \(by DictObs\); pass replace=True"):
    envs.register_env("mine/Dict", source.make_drift)
  with pytest.raises(ValueError, match="has no 'nope'; its callables: .*make_drift"):
    envs.make(f"{my_envs}:nope")
  with pytest.raises(ValueError, match="cannot import 'no_such_pkg.envs'"):
    envs.make("no_such_pkg.envs:make")


def test_the_cli_trains_on_an_env_from_a_file_and_reloads_it(my_envs, tmp_path):
  name = f"{my_envs}:make_drift"
  out = tmp_path / "run"
  result = _invoke("train", "pets", "--env", name, "--steps", 150, "--out", out, "--no-progress",
                   "--set", "initial_episodes=1", "--set", "population=16", "--set", "horizon=5",
                   "--set", "iterations=2", "--set", "num_particles=2", "--set",
                   "hidden_sizes=16,16", "--set", "model_train_steps=20", "--set", "eval_every=1")
  assert result.exit_code == 0, result.output
  saved = json.loads((out / "config.json").read_text())
  assert saved["env"] == name and saved["derived"]["steps_per_episode"] == 50
  # A fresh process would import the file again from the recorded name: forget it here.
  registry._REGISTRY.pop(name)
  for mod in [m for m in sys.modules if m.startswith("wmjax_user_my_envs")]:
    del sys.modules[mod]
  result = _invoke("eval", out, "--episodes", 2)
  assert result.exit_code == 0, result.output
  assert "pets on " + name in result.output


def test_import_option_registers_and_lists_envs(my_envs):
  result = _invoke("--import", my_envs, "envs", "mine/", "--no-specs")
  assert result.exit_code == 0, result.output
  assert "mine/Drift" in result.output and "a point to 0" in result.output
  assert user.origin("mine/Drift") == str(my_envs)
  # A run folder on "mine/Drift" records that file (config.json: env_import); a fresh process
  # imports it again before rebuilding the run.
  registry._REGISTRY.pop("mine/Drift")
  for mod in [m for m in sys.modules if m.startswith("wmjax_user_my_envs")]:
    del sys.modules[mod]
  user.ensure_registered("mine/Drift", user.origin("mine/Drift"))
  assert envs.make("mine/Drift").spec.obs_shape == (1,)
  result = _invoke("--import", "no_such_module_here", "envs")
  assert result.exit_code == 2 and "cannot import it" in result.output
