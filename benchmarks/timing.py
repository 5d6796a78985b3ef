"""Timing shared by the benchmarks: a first call (compile + run), then timed calls. Every
benchmark times through these (the suite's ``harness.measure`` too), so all of them wait for
the results the same way and report the same statistic (the median)."""

from __future__ import annotations

import json
import pathlib
import statistics
import time
from typing import Any

import jax


def time_call(fn, *args) -> tuple[Any, float]:
  """``(fn(*args), seconds)``: one call, timed until its result is ready."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def time_calls(fn, args, repeats: int, max_seconds: float = float("inf")
               ) -> tuple[float, float, list[float]]:
  """``(first call seconds, median of timed calls, timed calls)``; stops timing once the timed
  calls add up to ``max_seconds`` (at least one is always timed)."""
  first = time_call(fn, *args)[1]
  times = []
  for _ in range(repeats):
    times.append(time_call(fn, *args)[1])
    if sum(times) > max_seconds:
      break
  return first, statistics.median(times), times


def time_stats(fn, *args, repeats: int, max_seconds: float) -> dict:
  """:func:`time_calls` as a result entry: ``seconds`` (the median), ``compile_seconds`` (the
  first call less the median) and ``timed_calls``."""
  first, median, times = time_calls(fn, args, repeats, max_seconds)
  return {"seconds": median, "compile_seconds": max(0.0, first - median),
          "timed_calls": len(times)}


def write_json(out: pathlib.Path | None, result: dict) -> None:
  """Writes a benchmark's result to ``--out`` (if given), making its folder."""
  if out:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
