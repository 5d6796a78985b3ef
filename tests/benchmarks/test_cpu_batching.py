"""benchmarks/cpu_batching.py: the stacked ops are R independent copies, and the JSON is written."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

import cpu_batching  # noqa: E402


def test_stacked_rollout_is_r_separate_rollouts():
  fn, (x, w) = cpu_batching.cases(3, jax.random.PRNGKey(1))["rollout"]
  stacked = fn(x, w)
  for r in range(3):
    one = fn(x[r:r + 1], w[r:r + 1])[0]
    np.testing.assert_allclose(stacked[r], one, rtol=1e-4, atol=1e-5)


def test_main_writes_ratios_against_one_run(tmp_path):
  out = tmp_path / "b.json"
  seconds = cpu_batching.main(["--runs", "1", "2", "--repeats", "1", "--out", str(out)])
  rows = json.loads(out.read_text())["rows"]
  assert {(r["op"], r["runs"]) for r in rows} == {
      (op, n) for op in ("matmul", "rollout", "elementwise", "normal") for n in (1, 2)}
  for row in rows:
    assert row["seconds"] > 0
    assert row["seconds"] == seconds[row["op"]][row["runs"]]
    if row["runs"] == 1:
      assert row["ratio_vs_1"] == 1.0
