"""Fixtures of the driver tests: one tiny two-seed run per agent, trained once per session."""

import pytest

from wmjax.train import loop

from .tiny import TINY_RUNS


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """``tiny_run(algo) -> RunDir``: a finished two-seed run of ``TINY_RUNS[algo]`` (trained on
  first use; tests read it and must not change it)."""
  done = {}

  def get(name: str):
    if name not in done:
      env, steps, sets = TINY_RUNS[name]
      done[name] = loop.train(name, env, out=tmp_path_factory.mktemp(name) / "whole",
                              steps=steps, seeds=2, sets=sets, progress=False)
    return done[name]
  return get
