"""The one driver (wmjax/train/loop.py) and the registry: an agent added by one register() call
trains, evaluates, checkpoints and resumes; every agent's run resumes to exactly the metrics of
an uninterrupted run; the count, device and hyperparameter checks."""

import dataclasses
import json
import math
import pathlib
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from wmjax import presets
from wmjax.agents.base import Phase, Program
from wmjax.cli import app
from wmjax.train import algos, loop
from wmjax.train.common import TrainingDiverged

from .tiny import TINY_RUNS

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _invoke(*args):
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("WMJAX_CACHE", jax.config.jax_compilation_cache_dir)
    return CliRunner().invoke(app, [str(a) for a in args])


def _numbers(run: pathlib.Path) -> list[dict]:
  lines = (run / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(x).items() if not (k.endswith("_s") or "time" in k)}
          for x in lines if x]


# A toy agent in a few lines: the state walks towards a target; its "loss" is the distance.
@dataclasses.dataclass(frozen=True)
class ToyConfig:
  iterations: int = 6
  per_chunk: int = 2
  eval_every: int = 4
  eval_episodes: int = 3
  nan_at: int = -1          # an iteration whose loss is NaN (-1: never)
  nonfinite_at: int = -1    # an iteration that meets a NaN model output (-1: never)


class ToyHyperNT(NamedTuple):
  step_size: float = 0.5


def _build_toy(env_name, steps, config, hyper):
  del env_name

  def init(key, hyper_):
    return {"x": jax.random.uniform(key), "t": jnp.zeros((), jnp.int32), "key": key}

  def iteration(state, hyper_):
    x = state["x"] + hyper_.step_size * (1.0 - state["x"])
    t = state["t"] + 1
    loss = jnp.where(t == config.nan_at, jnp.nan, jnp.abs(1.0 - x))
    return {"x": x, "t": t, "key": state["key"]}, {
        "toy/loss": loss, "train/episodes": 1.0,
        "nonfinite/model_outputs": jnp.where(t == config.nonfinite_at, 3, 0)}

  def evaluate(state, key, hyper_):
    noise = jax.random.normal(key, (config.eval_episodes,)) * 0.0
    return {"eval/episode_return": state["x"] + noise}

  program = Program(init=init, phases=(Phase("train", iteration, steps or config.iterations,
                                             config.per_chunk),),
                    evaluate=evaluate, counters=lambda s: {"env_steps": 10 * s["t"]},
                    params=lambda s: s["x"], eval_every=config.eval_every,
                    losses=("toy/loss",))
  return loop.Built(None, program, config, hyper, {},
                    progress_total=10 * program.phases[0].iterations)


@pytest.fixture(scope="module")
def toy():
  name = "toy-test"
  if name not in algos.ALGOS:
    algos.register(algos.Algo(name, "Toy", "a walk to 1", (__name__, "ToyConfig", "ToyHyperNT"),
                              _build_toy))
    presets.PRESETS[name] = (presets.Preset("generic-cpu", device="cpu", steps=6),
                             presets.Preset("generic-gpu", device="gpu", steps=6))
  yield name
  del algos.ALGOS[name]
  del presets.PRESETS[name]


def test_a_registered_agent_trains_evaluates_and_resumes(toy, tmp_path):
  lines = []
  run = loop.train(toy, "anything", out=tmp_path / "a", seeds=2, progress=False,
                   echo=lines.append)
  assert "preset generic-cpu" in lines[0]
  records = run.read_metrics()
  assert [r["iteration"] for r in records] == [1, 2, 3]           # 6 iterations, 2 per chunk
  assert [r["train_iterations"] for r in records] == [2, 4, 6]
  assert [r["env_steps"] for r in records] == [20, 40, 60]
  assert [("eval/episode_return" in r) for r in records] == [False, True, True]  # every 4, last
  assert records[0]["train/episodes"] == [2.0, 2.0]               # counts are summed
  x = np.asarray(records[-1]["eval/episode_return"])
  assert np.all(x > 0.95) and np.all(x < 1.0)
  saved = json.loads((tmp_path / "a" / "config.json").read_text())
  assert saved["preset"] == "generic-cpu" and saved["algo"] == toy

  # Stopped by a time budget after the first chunk (evaluated there), then resumed: the same
  # lines but for that evaluation.
  loop.train(toy, "anything", out=tmp_path / "b", seeds=2, progress=False, minutes=1e-6)
  (stopped,) = _numbers(tmp_path / "b")
  assert "eval/episode_return" in stopped
  loop.train(toy, None, out=tmp_path / "b", progress=False, resume=True)
  resumed, whole = _numbers(tmp_path / "b"), _numbers(tmp_path / "a")
  assert {k: v for k, v in resumed[0].items() if not k.startswith("eval/")} == whole[0]
  assert resumed[1:] == whole[1:]


@pytest.mark.parametrize("setting, message", [
    ("nan_at=3", r"non-finite toy/loss in chunk 2 \(train iteration 4, 40 env steps\) for "
     r"seed\(s\) \[0\]"),
    ("nonfinite_at=4", r"3 non-finite model outputs in chunk 2 \(train iteration 4, 40 env "
     r"steps\) for seed\(s\) \[0\]: the model produces NaN"),
])
def test_a_nan_stops_the_run_naming_where(toy, tmp_path, setting, message):
  with pytest.raises(TrainingDiverged, match=message):
    loop.train(toy, "anything", out=tmp_path / "nan", progress=False, sets=[setting])
  assert (tmp_path / "nan" / "checkpoints" / "1").exists()   # the last good chunk is kept
  assert not (tmp_path / "nan" / "checkpoints" / "2").exists()


def test_presets_live_outside_the_agents_and_resolve_for_every_algo():
  import inspect

  for name in ("pets", "dreamer", "mbpo", "muzero", "worldmodels", "dyna", "trpo"):
    algo = algos.get_algo(name)
    source = inspect.getsource(__import__(algo.types[0], fromlist=["x"]))
    assert "def default_config" not in source and '"dmc/' not in source, name
    config, hyper = presets.defaults(name, algo.env_default)
    assert isinstance(config, algo.config_cls) and isinstance(hyper, algo.hyper_cls)
  # An env no preset names gets the generic preset of the device it runs on.
  dreamer = algos.get_algo("dreamer")
  cpu = presets.resolve("dreamer", "brax/ant", dreamer.config_cls, dreamer.hyper_cls,
                        device="cpu")
  gpu = presets.resolve("dreamer", "brax/ant", dreamer.config_cls, dreamer.hyper_cls,
                        device="gpu")
  assert (cpu.name, cpu.tuned, cpu.config.size) == ("generic-cpu", False, "xsmall")
  assert (gpu.name, gpu.config.size) == ("generic-gpu", "small")
  # One Dreamer preset per device for DM Control (vectors, pixels) and MinAtar: only the action
  # repeat follows the suite.
  for device, name, repeats in (("cpu", "xsmall-cpu", (4, 4, 1)), ("gpu", "small-gpu", (2, 2, 1))):
    resolved = [presets.resolve("dreamer", env, dreamer.config_cls, dreamer.hyper_cls,
                                device=device)
                for env in ("dmc/WalkerWalk", "dmc-pixels/CartpoleSwingup", "minatar/Breakout")]
    assert {r.name for r in resolved} == {name}
    assert tuple(r.config.action_repeat for r in resolved) == repeats
    assert len({dataclasses.replace(r.config, action_repeat=1) for r in resolved}) == 1
  # A tuned task preset wins over its suite's; each run says why it got its preset.
  pets_types = algos.get_algo("pets").config_cls, algos.get_algo("pets").hyper_cls
  tuned = presets.resolve("pets", "dmc/CartpoleSwingup", *pets_types)
  assert tuned.config.action_repeat == 8
  assert "(tuned for this env)" in tuned.describe("dmc/CartpoleSwingup")
  suite = presets.resolve("pets", "dmc/WalkerWalk", *pets_types)
  assert "(for dmc/*)" in suite.describe("dmc/WalkerWalk") and suite.tuned
  named = presets.resolve("pets", "dmc/WalkerWalk", *pets_types, name="dmc")
  assert "(chosen by name)" in named.describe("dmc/WalkerWalk")
  assert "(generic, no tuned preset for brax/ant)" in cpu.describe("brax/ant")
  with pytest.raises(KeyError, match="no preset 'nope'"):
    presets.defaults("pets", "fast/PointMass", name="nope")


def test_muzero_2048_preset_supports_cover_its_scores():
  from wmjax.models import muzero as mz

  config, _ = presets.defaults("muzero", "pgx/2048")
  for support, value in ((config.value_support, 50_000.0), (config.reward_support, 8_192.0)):
    logits = jnp.log(mz.scalar_to_support(jnp.asarray([value]), support) + 1e-12)
    assert float(mz.support_to_scalar(logits, support)[0]) == pytest.approx(value, rel=1e-3)


def test_the_cli_lists_presets_and_says_which_one_a_run_used(tmp_path):
  result = _invoke("presets", "pets")
  assert result.exit_code == 0, result.output
  assert "dmc/CartpoleSwingup" in result.output and "generic-cpu" in result.output
  assert "(this device)" in result.output
  result = _invoke("presets", "nope")
  assert result.exit_code == 2 and "no presets for 'nope'" in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "muzero", "--env", "fast/PointMassDiscrete", "--steps", 0], "must be >= 1"),
    (["train", "pets", "--env", "fast/PointMass", "--steps", -5], "must be >= 1"),
    (["train", "dyna", "--seeds", 0], "must be >= 1"),
    (["train", "dyna", "--devices", -1], "must be >= 0"),
    (["train", "pets", "--env", "fast/PointMass", "--set", "model_lr=nan"], "finite"),
    (["train", "pets", "--env", "fast/PointMass", "--set", "model_lr=-1e-3"], "must be > 0"),
    (["train", "dreamer", "--env", "fast/PointMass", "--set", "discount=1.5"], "[0, 1]"),
    (["train", "dyna", "--set", "gamma=-0.1"], "[0, 1]"),
    (["sweep", "dyna", "--env", "grid/dyna_maze", "--grid", "gamma=0.9,2"], "[0, 1]"),
    (["train", "pets", "--env", "fast/PointMass", "--preset", "nope"], "no preset 'nope'"),
])
def test_bad_counts_devices_and_hyperparameters_are_refused(tmp_path, args, message):
  result = _invoke(*args, "--out", tmp_path / "x")
  assert result.exit_code == 2, result.output
  assert message in result.output
  assert not (tmp_path / "x" / "config.json").exists()


def test_grid_values_are_not_repeated_and_a_tuple_is_one_value():
  from wmjax.agents import mbpo
  from wmjax.train.grid import parse_grid

  grid = parse_grid(["hidden_sizes=128,128", "sac_lr=1e-3,1e-3,3e-4"], mbpo.MBPOConfig(),
                    mbpo.MBPOHyper())
  assert [s["hidden_sizes"] for s in grid.static] == [(128, 128)]
  assert [p["sac_lr"] for p in grid.points] == [1e-3, 3e-4]


def test_eval_of_a_damaged_config_is_a_clear_error(tmp_path):
  run = tmp_path / "bad"
  run.mkdir()
  (run / "config.json").write_text('{"algo": "pets", "env": ')
  for args in (["eval", run], ["train", "pets", "--resume", "--out", run]):
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert "config.json is damaged" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["pets-v0", "dyna-v0", "mbpo-v1"])
def test_run_folders_written_before_the_one_loop_still_load(tmp_path, name):
  """Fixtures written by the six separate drivers (commit 5dd0aa6), and an MBPO run from before
  its learned termination (commit df75394): eval and --resume."""
  run = tmp_path / name
  shutil.copytree(FIXTURES / name, run)
  result = _invoke("eval", run, "--episodes", 2)
  assert result.exit_code == 0, result.output
  assert "seed 0:" in result.output
  saved = json.loads((run / "config.json").read_text())
  algo = saved["algo"]
  before = _numbers(run)
  if algo == "dyna":   # no buffer sized by the run's length: lengthen it by one chunk
    saved["steps"] += 100
    (run / "config.json").write_text(json.dumps(saved))
  result = _invoke("train", algo, "--resume", "--out", run, "--no-progress")
  assert result.exit_code == 0, result.output
  after = _numbers(run)
  assert after[:len(before)] == before   # restored into today's state structure
  assert len(after) == len(before) + (algo == "dyna")


def test_a_run_folder_of_another_state_layout_is_refused_saying_why(tmp_path):
  run = tmp_path / "wm-v0"
  shutil.copytree(FIXTURES / "wm-v0", run)
  for args in (["eval", run], ["train", "worldmodels", "--resume", "--out", run]):
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert "another layout" in result.output and "data/mask" in result.output, result.output
    assert "Traceback" not in result.output


# Every agent: a run that lost its last checkpoint (as if the process died before writing it)
# resumes from the one before and logs exactly the lines of the uninterrupted run (the kill
# itself is exercised for real, with SIGKILL, in test_resume.py).
RESUMABLE = TINY_RUNS


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_every_agent_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path, tiny_run, name):
  whole = tiny_run(name)
  lines = _numbers(whole.path)
  assert len(lines) >= 3, lines
  cut = tmp_path / "cut"
  shutil.copytree(whole.path, cut)
  steps = sorted(int(p.name) for p in (cut / "checkpoints").iterdir() if p.name.isdigit())
  assert len(steps) == 2, steps   # the driver keeps the last two
  shutil.rmtree(cut / "checkpoints" / str(steps[-1]))
  # The lines after the checkpoint that is left go too: the resumed run must write them again.
  kept = [x for x in (cut / "metrics.jsonl").read_text().splitlines()
          if json.loads(x)["iteration"] <= steps[0]]
  assert 1 <= len(kept) < len(lines)
  (cut / "metrics.jsonl").write_text("".join(x + "\n" for x in kept))
  loop.train(name, None, out=cut, progress=False, resume=True)
  resumed = _numbers(cut)
  assert len(resumed) == len(lines)
  for a, b in zip(resumed, lines, strict=True):
    assert a.keys() == b.keys()
    for k in a:
      assert a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k])), (k, a[k], b[k])
