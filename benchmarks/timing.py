"""Timing shared by the benchmarks: a first call (compile + run), then timed calls."""

from __future__ import annotations

import statistics
import time

import jax


def time_calls(fn, args, repeats: int, max_seconds: float = float("inf")
               ) -> tuple[float, float, list[float]]:
  """``(first call seconds, median of timed calls, timed calls)``; stops timing once the timed
  calls add up to ``max_seconds`` (at least one is always timed)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
    if sum(times) > max_seconds:
      break
  return first, statistics.median(times), times
