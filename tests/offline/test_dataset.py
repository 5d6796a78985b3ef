"""The dataset format's checks (:mod:`wmjax.offline.dataset`): each bad dataset is refused with
an error that names the field (and row) at fault; a good one round-trips through a folder."""

import json

import numpy as np
import pytest

from wmjax import envs
from wmjax.offline import dataset as D


@pytest.fixture(scope="module")
def point_mass():
  return envs.make("fast/PointMass")


def _arrays(n: int = 10, obs: int = 4, action: int = 2, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  o = rng.normal(size=(n + 1, obs)).astype(np.float32)
  return {"obs": o[:-1], "action": rng.uniform(-1, 1, (n, action)).astype(np.float32),
          "reward": rng.normal(size=n).astype(np.float32), "next_obs": o[1:]}


def test_from_arrays_fills_the_flags_and_round_trips(tmp_path, point_mass):
  data = D.from_arrays(**_arrays(), env="fast/PointMass", episode_length=50)
  assert data.terminated.sum() == 0 and data.truncated.tolist() == [0] * 9 + [1]
  path = D.save(data, tmp_path / "d")
  loaded = D.load(path, env=point_mass)
  for name in D.FIELDS:
    np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
  meta = json.loads((path / "dataset.json").read_text())
  assert meta["env"] == "fast/PointMass" and meta["size"] == 10
  with pytest.raises(FileExistsError, match="already holds a dataset"):
    D.save(data, path)


def test_a_missing_field_is_named(tmp_path):
  with pytest.raises(D.DatasetError, match="field 'reward' is missing"):
    D.from_arrays(**{**_arrays(), "reward": None})
  arrays = _arrays()
  path = tmp_path / "d"
  path.mkdir()
  np.savez(path / "transitions.npz", obs=arrays["obs"], action=arrays["action"],
           next_obs=arrays["next_obs"], terminated=np.zeros(10), truncated=np.ones(10))
  with pytest.raises(D.DatasetError, match=r"lacks field\(s\) 'reward'"):
    D.load(path)


@pytest.mark.parametrize("field, row", [("reward", 7), ("obs", 3), ("action", 0)])
def test_a_nan_is_refused_naming_its_field_and_row(field, row):
  arrays = _arrays()
  bad = arrays[field].copy()
  bad[row] = np.nan
  with pytest.raises(D.DatasetError,
                     match=rf"field '{field}' has a NaN or infinite value at row {row} "
                           r"\(1 rows in all\)"):
    D.from_arrays(**{**arrays, field: bad})


def test_an_empty_dataset_is_refused():
  with pytest.raises(D.DatasetError, match=r"empty \(0 rows\)"):
    D.from_arrays(**_arrays(0))


def test_rows_that_disagree_in_count_or_shape_are_refused():
  arrays = _arrays()
  with pytest.raises(D.DatasetError, match=r"field 'action' has 9 rows .*; reward has 10"):
    D.from_arrays(**{**arrays, "action": arrays["action"][:9]})
  with pytest.raises(D.DatasetError, match="fields 'obs' .* and 'next_obs' .* differ in shape"):
    D.from_arrays(**{**arrays, "next_obs": arrays["next_obs"][:, :3]})
  with pytest.raises(D.DatasetError, match="row 4 is both terminated and truncated"):
    D.from_arrays(**arrays, terminated=np.eye(10)[4], truncated=np.eye(10)[4] + np.eye(10)[9])
  with pytest.raises(D.DatasetError, match="the last row .9. ends no episode"):
    D.from_arrays(**arrays, terminated=np.zeros(10), truncated=np.zeros(10))


def test_data_that_does_not_fit_the_env_is_refused(point_mass):
  with pytest.raises(D.DatasetError, match=r"field 'obs' has rows of shape \(3,\); "
                                           r"fast/PointMass observes \(4,\)"):
    D.from_arrays(**_arrays(obs=3)).check(point_mass)
  with pytest.raises(D.DatasetError, match=r"field 'action' has rows of shape \(3,\); "
                                           r"fast/PointMass takes \(2,\)"):
    D.from_arrays(**_arrays(action=3)).check(point_mass)
  arrays = _arrays()
  arrays["action"][5, 1] = 1.5
  with pytest.raises(D.DatasetError, match="field 'action' at row 5 is outside"):
    D.from_arrays(**arrays).check(point_mass)


def test_data_of_another_env_or_action_repeat_is_refused(point_mass):
  with pytest.raises(D.DatasetError, match="collected on fast/PointMassDiscrete, not "
                                           "fast/PointMass"):
    D.from_arrays(**_arrays(), env="fast/PointMassDiscrete").check(point_mass)
  with pytest.raises(D.DatasetError, match="collected at action repeat 2"):
    D.from_arrays(**_arrays(), env="fast/PointMass", action_repeat=2).check(point_mass)


def test_a_folder_without_a_dataset_and_bad_references(tmp_path):
  with pytest.raises(FileNotFoundError, match="no dataset at"):
    D.load(tmp_path)
  with pytest.raises(D.DatasetError, match="normalised score is undefined"):
    D.normalized_score(10.0, 5.0, 5.0)
  np.testing.assert_allclose(D.normalized_score([5.0, 15.0], 5.0, 15.0), [0.0, 100.0])
  with pytest.raises(D.DatasetError, match="no reference returns"):
    D.from_arrays(**_arrays()).normalized(3.0)
