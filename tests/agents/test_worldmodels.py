"""World Models: CMA-ES through the controller's code path finds a known optimum; bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from wmjax import envs
from wmjax.agents import worldmodels as wm_lib
from wmjax.cli import app

TINY = wm_lib.WorldModelsConfig(episodes=4, latent_size=2, vae_depth=4, vae_batch_size=4,
                                hidden_size=2, num_mixtures=2, mdn_batch_size=2,
                                population_size=16, rollouts=1, eval_episodes=2)


def test_cma_es_fits_the_linear_controller_to_a_known_optimum():
  """The controller's own ``act`` and one-generation step, with a fitness whose optimum is
  known: match ``tanh(W* [z, h] + b*)`` on fixed inputs."""
  wm = wm_lib.make_worldmodels(envs.make("fast/PointMassPixels"), TINY)
  assert wm.num_params == wm_lib.controller_size(2, 2, 2) == 10
  key_x, key_w, key_init, key_run = jax.random.split(jax.random.PRNGKey(0), 4)
  inputs = jax.random.normal(key_x, (32, 4))
  target = {"w": 0.8 * jax.random.normal(key_w, (4, 2)), "b": jnp.array([0.3, -0.2])}

  def outputs(ctrl):
    return jax.vmap(lambda x: wm.act(ctrl, x[:2], x[2:])[0])(inputs)

  wanted = outputs(target)

  def fitness(population, key):
    del key
    return jax.vmap(lambda c: -jnp.mean((outputs(c) - wanted) ** 2))(population)

  params = wm.es.default_params.replace(std_init=jnp.asarray(0.3))

  @jax.jit
  def search(key_init, key_run):
    state = wm.es.init(key_init, jax.tree.map(jnp.zeros_like, target), params)
    return jax.lax.scan(lambda s, k: wm_lib.cma_es_generation(wm.es, params, s, k, fitness),
                        state, jax.random.split(key_run, 150))

  state, metrics = search(key_init, key_run)
  found = wm.controller_mean(state)
  np.testing.assert_allclose(found["w"], target["w"], atol=0.05)
  np.testing.assert_allclose(found["b"], target["b"], atol=0.05)
  returns = np.asarray(metrics["es/pop_mean_return"])
  assert returns[-1] > -1e-3 and returns[-1] > returns[0]


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match=r"image observations.*\(4,\).*fast/PointMassPixels"):
    wm_lib.make_worldmodels(envs.make("fast/PointMass"), TINY)
  with pytest.raises(ValueError, match="too small for CMA-ES: the minimum is 4"):
    dataclasses.replace(TINY, population_size=3)
  with pytest.raises(ValueError, match="unknown mode 'imagined'; accepted: real, dream"):
    dataclasses.replace(TINY, mode="imagined")
  for tau in (0.0, -1.0):
    with pytest.raises(ValueError, match="tau must be > 0"):
      dataclasses.replace(TINY, tau=tau)


def test_cli_refuses_an_env_without_images(tmp_path):
  result = CliRunner().invoke(app, ["train", "worldmodels", "--env", "fast/PointMass", "--out",
                                    str(tmp_path / "run"), "--no-progress"])
  assert result.exit_code == 2
  assert "image observations" in result.output and "(4,)" in result.output
  assert not (tmp_path / "run").exists()


def test_a_sigma_sweep_trains_v_and_m_once_per_seed(tmp_path):
  """sigma_init 0.05 and 0.5, one seed, one program: V and M are the first run's (trained once,
  their losses equal those of a run of the second sigma alone), the controllers differ."""
  from tests.train.tiny import TINY_RUNS
  from wmjax.train import loop
  from wmjax.train.common import RunAxis

  env, steps, sets = TINY_RUNS["worldmodels"]
  axis = RunAxis(seed=0, seeds=1, points=({"sigma_init": 0.05}, {"sigma_init": 0.5}))
  swept = loop.train("worldmodels", env, out=tmp_path / "sweep", steps=steps, run_axis=axis,
                     sets=sets, progress=False).read_metrics()
  alone = loop.train("worldmodels", env, out=tmp_path / "alone", steps=steps,
                     sets=[*sets, "sigma_init=0.5"], progress=False).read_metrics()
  assert [r.get("stage") for r in swept] == [r.get("stage") for r in alone]
  compared = 0
  for s, a in zip(swept, alone, strict=True):
    for name in ("vae/loss", "mdn/loss"):
      if name in a:
        assert s[name][0] == s[name][1]
        np.testing.assert_allclose(s[name][1], a[name], rtol=1e-4, err_msg=name)
        compared += 1
  assert compared == 4   # 2 VAE epochs and 2 MDN epochs, a chunk each
  last = swept[-1]
  assert last["stage"] == "es" and last["dream/sigma"][0] != last["dream/sigma"][1], last
