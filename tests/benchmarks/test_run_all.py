"""benchmarks/run_all.py: a tiny suite runs end to end and writes its JSON, table and plot."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import jax
import jax.numpy as jnp

# The benchmarks import each other as scripts do (benchmarks/ on sys.path).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

import run_all  # noqa: E402


def test_matmul_flops_counts_scan_bodies_times_their_length():
  def f(x, w):
    def body(c, _):
      return jnp.tanh(c @ w), None
    return jax.lax.scan(body, x, None, length=7)[0].sum()

  x, w = jnp.ones((4, 8)), jnp.ones((8, 8))
  flops, exact = run_all.matmul_flops(f, x, w)
  assert exact
  assert flops == 7 * 2 * 4 * 8 * 8
  grad_flops, _ = run_all.matmul_flops(jax.grad(f, argnums=1), x, w)
  assert grad_flops == 3 * flops   # forward, and two products per matmul backward


def test_run_all_tiny_suite(tmp_path):
  result = run_all.main([
      "--only", "envs", "agents", "--envs", "fast/PointMass", "--env-batches", "1", "4",
      "--agents", "dyna", "--runs", "1", "4", "--budget-s", "120", "--repeats", "2",
      "--max-seconds", "5", "--matmul-n", "256", "--out-dir", str(tmp_path)])

  path = tmp_path / f"{result['device']}-{result['date']}.json"
  saved = json.loads(path.read_text())
  for key in ("device", "device_kind", "platform", "jax_version", "date", "config", "matmul",
              "sections", "headline", "total_seconds"):
    assert key in saved, key
  assert saved["matmul"]["flops_per_s"] > 0
  assert set(saved["sections"]) == {"envs", "agents"}

  envs = saved["sections"]["envs"]["rows"]
  assert [(r["case"], r["n"]) for r in envs] == [("fast/PointMass", 1), ("fast/PointMass", 4)]
  agents = saved["sections"]["agents"]
  assert [(r["case"], r["n"]) for r in agents["rows"]] == [("dyna", 1), ("dyna", 4)]
  for row in envs + agents["rows"]:
    assert row["seconds"] > 0 and row["throughput"] > 0 and row["compile_s"] > 0, row
    assert row["ratio_vs_1"] > 0
  assert agents["agents"]["dyna"]["seconds_by_runs"].keys() == {"1", "4"}
  assert agents["agents"]["dyna"]["ratio_64_vs_1"] is None   # 64 runs were not asked for

  table = path.with_suffix(".md").read_text()
  assert "| section | case | N | time per call | throughput | compile s | floor/time |" in table
  assert "| agents | dyna | 4 |" in table and "| envs | fast/PointMass | 1 |" in table
  if importlib.util.find_spec("matplotlib") is not None:
    assert (tmp_path / f"{path.stem}-scaling.png").stat().st_size > 0

  # --plot-only redraws the table from the JSON alone.
  path.with_suffix(".md").unlink()
  run_all.main(["--plot-only", str(path)])
  assert path.with_suffix(".md").read_text() == table
