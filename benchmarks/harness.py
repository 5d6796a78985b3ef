"""The measuring machinery of the benchmark suite (``run_all.py``): a wall-clock budget, timed
calls of a compiled program with its compile time apart, FLOP counts of traced programs, the
device's matmul rate, and families of cases measured at growing sizes within a budget."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from timing import time_calls  # benchmarks/timing.py (this folder is on sys.path)


class Budget:
  """A wall-clock deadline; ``share`` hands part of what is left to a sub-task."""

  def __init__(self, seconds: float):
    self.seconds = seconds
    self.deadline = time.perf_counter() + seconds

  def left(self) -> float:
    return self.deadline - time.perf_counter()

  def share(self, weight: float, remaining_weight: float) -> Budget:
    return Budget(max(0.0, self.left()) * weight / max(remaining_weight, 1e-9))


def measure(jitted, args: tuple, repeats: int, max_seconds: float, warm: int = 0,
            count_flops: bool = False):
  """Traces and compiles ``jitted`` for ``args`` (timed apart: ``compile_s``), runs ``warm``
  chained calls (the first output replaces the first argument), then times calls as the other
  benchmarks do. With ``count_flops``, also ``matmul_flops`` and ``flops_exact`` of the traced
  program (see :func:`matmul_flops`; not part of ``compile_s``).

  Returns ``(stats, args, compiled)``, ``args`` after the warm calls.
  """
  t0 = time.perf_counter()
  traced = jitted.trace(*args)
  trace_s = time.perf_counter() - t0
  counted = count_jaxpr_flops(traced.jaxpr) if count_flops else None
  t0 = time.perf_counter()
  compiled = traced.lower().compile()
  compile_s = trace_s + time.perf_counter() - t0
  for _ in range(warm):
    args = (compiled(*args)[0], *args[1:])
  first, median, times = time_calls(compiled, args, repeats, max_seconds)
  stats = {"seconds": median, "compile_s": compile_s, "first_call_s": first,
           "timed_calls": len(times), "seconds_all": times}
  if counted is not None:
    stats["matmul_flops"], stats["flops_exact"] = counted
  flops = _xla_flops(compiled)
  if flops is not None:
    stats["xla_cost_flops"] = flops
  return stats, args, compiled


def _xla_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 (not every backend implements it)
    return None
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"]) if cost and "flops" in cost else None


def matmul_flops(fn: Callable, *args) -> tuple[float, bool]:
  """FLOPs of the matrix products in ``fn(*args)``: ``(flops, exact)``; see
  :func:`count_jaxpr_flops`."""
  return count_jaxpr_flops(jax.make_jaxpr(fn)(*args))


def count_jaxpr_flops(closed_jaxpr) -> tuple[float, bool]:
  """FLOPs of the matrix products in a traced program: ``(flops, exact)``.

  Counts ``dot_general`` (2 x output size x contracted size) and convolutions in the traced
  program, a scan body times its length, the costlier branch of a ``cond``. A ``while_loop``'s
  trip count is unknown at trace time: its body counts once and ``exact`` is False (a lower
  bound). XLA's own ``cost_analysis`` is no substitute: it counts every loop body once.
  """
  inexact = []

  def jaxprs_in(value):
    if hasattr(value, "eqns"):
      yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
      yield value.jaxpr
    elif isinstance(value, tuple | list):
      for v in value:
        yield from jaxprs_in(v)

  def count(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
      name = eqn.primitive.name
      if name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
      elif name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        rhs_spec = eqn.params["dimension_numbers"].rhs_spec   # (out, in, *spatial)
        per_output = math.prod(rhs[d] for d in rhs_spec[1:])
        total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * per_output
      elif name == "scan":
        total += eqn.params["length"] * count(eqn.params["jaxpr"].jaxpr)
      elif name == "cond":
        total += max(count(b.jaxpr) for b in eqn.params["branches"])
      else:
        if name == "while":
          inexact.append(True)
        for value in eqn.params.values():
          for sub in jaxprs_in(value):
            total += count(sub)
    return total

  return count(closed_jaxpr.jaxpr), not inexact


def measure_matmul(n: int, repeats: int = 5) -> dict:
  """The device's f32 matmul rate: an ``n x n`` by ``n x n`` product, 2 n^3 / median time."""
  x = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  _, median, times = time_calls(f, (x, x), repeats)
  return {"n": n, "dtype": "float32", "precision": "JAX default (TF32 on recent NVIDIA GPUs)",
          "seconds": median, "flops_per_s": 2.0 * n ** 3 / median}


def tile_runs(state, runs: int, seed: int):
  """A one-run state ``[1, ...]`` repeated to ``[runs, ...]``, each run with its own key.

  Every size starts from the same initialised (and, where needed, warmed) run instead of
  ``vmap(init)`` per size: one init program to compile instead of one per size; the timed
  iteration is the same program either way.
  """
  state = jax.tree.map(lambda x: jnp.repeat(x, runs, axis=0), state)
  fields = getattr(state, "_fields", ())
  if "key" in fields:
    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    if jnp.issubdtype(state.key.dtype, jax.dtypes.prng_key):
      keys = jax.random.wrap_key_data(keys)
    state = state._replace(key=keys.reshape(state.key.shape).astype(state.key.dtype))
  return state


def _estimate(done: list[tuple[int, float, float]], n: int,
              grows: bool = True) -> tuple[float, float] | None:
  """(compile s, seconds per call) expected at size ``n`` from the sizes measured so far: the
  mean compile time, and the time interpolated log-log between the measured sizes around ``n``
  (above the largest: its time scaled as ``n^p``, ``p`` from the last two sizes in [0.3, 1], 1
  with one size, as a saturated device scales; below the smallest: the smallest's time).
  Without ``grows`` (the same work spread over ``n`` devices) the nearest measured time."""
  if not done:
    return None
  points = sorted((m, t) for m, t, _ in done)
  compile_s = sum(c for _, _, c in done) / len(done)
  if not grows:
    return compile_s, min(points, key=lambda mt: abs(math.log(mt[0] / n)))[1]
  lower = [(m, t) for m, t in points if m <= n]
  upper = [(m, t) for m, t in points if m >= n]
  if lower and upper:
    (n0, t0), (n1, t1) = lower[-1], upper[0]
    if n1 == n0:
      return compile_s, t0
    p = math.log(t1 / t0) / math.log(n1 / n0)
    return compile_s, t0 * (n / n0) ** p
  if upper:
    return compile_s, upper[0][1]
  (n1, t1), p = points[-1], 1.0
  if len(points) >= 2:
    n0, t0 = points[-2]
    p = min(1.0, max(0.3, math.log(t1 / t0) / math.log(n1 / n0)))
  return compile_s, t1 * (n / n1) ** p


class Family:
  """One case measured at several sizes (envs, runs, devices). It remembers what it measured,
  to estimate what the next size will cost, and keeps one row per size.

  ``prepare()`` (built on the first size that runs) returns ``run_case(n) -> row`` with at least
  ``seconds``, ``compile_s`` and ``throughput``; ``ratio_vs_1`` (time over the time at size 1)
  is added to every measured row. A size that raises is recorded with its error, and the
  larger sizes are then skipped (all sizes, if ``prepare`` raised).
  """

  def __init__(self, section: str, case: str, unit: str, prepare: Callable[[], Callable],
               grows: bool = True):
    self.section, self.case, self.unit = section, case, unit
    self.grows = grows   # whether the work grows with the size (not so for devices)
    self.prepare = prepare
    self.run_case: Callable | None = None
    self.rows: dict[int, dict] = {}
    self.done: list[tuple[int, float, float]] = []
    self.error: tuple[int, str] | None = None   # (size, message) of the first failure
    self.failed_prepare = False

  def _skip(self, n: int, why: str, budget: Budget, estimate_s: float | None = None) -> None:
    row = {"section": self.section, "case": self.case, "n": n, "unit": self.unit,
           "skipped": why}
    if estimate_s is not None:
      row["estimate_s"] = round(estimate_s, 2)
    self.rows[n] = row
    print(f"[{self.section}] {self.case} N={n}: skipped ({why}"
          + (f", estimated {estimate_s:.0f} s" if estimate_s is not None else "")
          + f", {max(0.0, budget.left()):.0f} s left)", flush=True)

  def try_size(self, n: int, budget: Budget, args) -> None:
    if n in self.rows and "skipped" not in self.rows[n]:
      return
    if self.error is not None and (self.failed_prepare or n > self.error[0]):
      return self._skip(n, f"error at N={self.error[0]}", budget)
    estimate = _estimate(self.done, n, self.grows)
    if estimate is None:
      if budget.left() <= 0:
        return self._skip(n, "budget", budget)
    else:
      compile_est, call_est = estimate
      timed = min(args.repeats, max(1, math.ceil(args.max_seconds / max(call_est, 1e-9))))
      cost = compile_est + call_est * (1 + timed)
      if call_est > args.max_seconds:
        return self._skip(n, "max-seconds", budget, cost)
      if cost > budget.left():
        return self._skip(n, "budget", budget, cost)
    row = {"section": self.section, "case": self.case, "n": n, "unit": self.unit}
    try:
      if self.run_case is None:
        self.failed_prepare = True
        self.run_case = self.prepare()
        self.failed_prepare = False
      row.update(self.run_case(n))
    except Exception as e:  # noqa: BLE001 (a size that fails, e.g. out of memory, is recorded)
      row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
      if self.error is None or n < self.error[0]:
        self.error = (n, row["error"])
      self.rows[n] = row
      print(f"[{self.section}] {self.case} N={n}: error {row['error']}", flush=True)
      return
    row["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    self.done.append((n, row["seconds"], row["compile_s"]))
    self.rows[n] = row
    base = self.rows.get(1, {}).get("seconds")
    print(f"[{self.section}] {self.case} N={n}: {fmt_time(row['seconds'])} per call, "
          f"{fmt_num(row['throughput'])} {self.unit}, compile {row['compile_s']:.1f} s"
          + (f", floor {fmt_time(row['floor_s'])}" if row.get("floor_s") else "")
          + (f", time/time(N=1) {row['seconds'] / base:.2f}" if base and n != 1 else ""),
          flush=True)

  def sorted_rows(self) -> list[dict]:
    rows = [self.rows[n] for n in sorted(self.rows)]
    base = self.rows.get(1, {}).get("seconds")
    for row in rows:
      if base and "seconds" in row:
        row["ratio_vs_1"] = row["seconds"] / base
    return rows


Pass = tuple[Sequence[Family], Sequence[int], float]   # (families, sizes, budget fraction)


def run_passes(passes: Sequence[Pass], budget: Budget, args,
               weights: dict[str, float] | None = None,
               on_progress: Callable[[list[dict]], None] | None = None) -> None:
  """Measures families at sizes, pass by pass. A pass may spend its fraction of what is left of
  ``budget``, shared between its families by weight (by case name; 1 if absent); a size that
  did not fit may still run in a later pass. ``on_progress(rows)`` gets every family's rows
  after each size (to save them: a run killed part-way keeps what it measured)."""
  everyone = list(dict.fromkeys(f for families, _, _ in passes for f in families))
  for families, sizes, fraction in passes:
    if not families or not sizes:
      continue
    pass_budget = budget.share(fraction, 1.0)
    w = [(weights or {}).get(f.case, 1.0) for f in families]
    for i, family in enumerate(families):
      sub = pass_budget.share(w[i], sum(w[i:]))
      for n in sizes:
        family.try_size(n, sub, args)
        if on_progress is not None:
          on_progress(family_rows(everyone))


def size_passes(families: Sequence[Family], sizes: Sequence[int]) -> list[Pass]:
  """One pass per size, smallest first, each over every family: every case gets its small
  sizes before any case gets a large one. A pass may spend 70% of what is left, the last all."""
  sizes = sorted(set(sizes))
  return [(families, [n], 1.0 if i == len(sizes) - 1 else 0.7) for i, n in enumerate(sizes)]


def family_rows(families: Sequence[Family]) -> list[dict]:
  return [row for family in families for row in family.sorted_rows()]


# Figures as the progress lines and report.py's table print them.


def fmt_time(s: float) -> str:
  if s >= 1.0:
    return f"{s:.2f} s"
  if s >= 1e-3:
    return f"{s * 1e3:.2f} ms"
  return f"{s * 1e6:.1f} us"


def fmt_num(x: float) -> str:
  if x >= 1e6:
    return f"{x:.3g}".replace("e+0", "e").replace("e+", "e")
  if x >= 100:
    return f"{x:,.0f}"
  return f"{x:.3g}"
