"""Fixtures of the driver tests: one tiny two-seed run per agent, trained once per suite."""

import contextlib
import fcntl
import os
import pathlib
import shutil

import pytest

from wmjax.train import loop
from wmjax.train.rundir import RunDir

from .tiny import TINY_RUNS


@contextlib.contextmanager
def _locked(path: pathlib.Path):
  with open(path, "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """``tiny_run(algo) -> RunDir``: a finished two-seed run of ``TINY_RUNS[algo]``, trained on
  first use; tests read it and must not change it (copy it to change it).

  Under pytest-xdist the workers share one folder (the parent of their base temp folders): the
  first worker to ask trains the run under a file lock, the others wait for it and reopen it,
  so the resume and load tests, in different files, pay for each training once."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  root = root / "tiny-runs"
  root.mkdir(exist_ok=True)
  done = {}

  def get(name: str):
    if name not in done:
      path = root / name / "whole"
      with _locked(root / f"{name}.lock"):
        if (root / f"{name}.done").exists():
          done[name] = RunDir(path, resume=True)
        else:
          shutil.rmtree(path, ignore_errors=True)   # a training that failed in another worker
          env, steps, sets = TINY_RUNS[name]
          done[name] = loop.train(name, env, out=path, steps=steps, seeds=2, sets=sets,
                                  progress=False)
          (root / f"{name}.done").write_text("")
    return done[name]
  return get
