"""Memory of a Dreamer run with a 1M-step replay buffer, with and without donating the training
state to each jitted chunk.

Without donation every call of ``jit(vmap(chunk))`` holds its input state and its output state
at once, the replay buffer twice. The driver donates the state (``donate_argnums``), so XLA
writes the new state into the old one's buffers. Two measurements, on Dreamer (debug model) on
``fast/PointMassPixels`` (16x16x3 uint8 frames, 768 bytes a step) with ``replay_capacity``
1,000,000 (0.74 GiB of training state):

- what the chunk program needs on its device, from XLA's own accounting
  (``compiled.memory_analysis()``: arguments + outputs - aliased + temporaries), the figure
  that decides whether a run fits on a GPU;
- the process's resident memory on this machine, sampled every 2 ms through a real run of
  ``wmjax.train.loop.train`` in a child process per variant, split into the training chunks,
  the checkpoint writes and the start.

    python benchmarks/donation_memory.py            # ~3 min on 2 CPU cores
    python benchmarks/donation_memory.py --capacity 200000

Writes ``benchmarks/results/donation_memory-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time

SETS = ["size=debug", "num_envs=4", "steps_per_iteration=16", "prefill=128", "batch_size=4",
        "seq_len=16", "train_ratio=8", "imagine_starts=32", "eval_episodes=1", "eval_every=0"]


def _rss() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * resource.getpagesize()


class _Sampler:
  """Resident memory every 2 ms, with the driver's events marked (checkpoint written, chunk
  called), so that the chunks' peak is told apart from the checkpoints' and the start's."""

  def __init__(self):
    self.samples: list[tuple[float, int]] = []
    self.events: list[tuple[float, str]] = []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    while not self._stop.is_set():
      self.samples.append((time.perf_counter(), _rss()))
      time.sleep(0.002)

  def mark(self, what: str) -> None:
    self.events.append((time.perf_counter(), what))

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  def peak(self, start: float, end: float) -> int:
    return max((r for t, r in self.samples if start <= t <= end), default=0)


def child(donate: bool, capacity: int) -> dict:
  import jax

  from wmjax.train import checkpoint, loop
  from wmjax.train.common import tree_bytes

  jax.devices()   # the backend is up: what follows is the run's own memory
  base = _rss()
  sampler = _Sampler()
  real_save, real_wait = checkpoint.Checkpointer.save, checkpoint.Checkpointer.wait

  def save(self, step, state):
    sampler.mark("save")
    return real_save(self, step, state)

  def wait(self):
    real_wait(self)
    sampler.mark("chunk")   # the driver calls the chunk right after this wait

  checkpoint.Checkpointer.save, checkpoint.Checkpointer.wait = save, wait
  sets = [*SETS, f"replay_capacity={capacity}"]
  with tempfile.TemporaryDirectory() as tmp, sampler:
    t0 = time.time()
    run = loop.train("dreamer", "fast/PointMassPixels", out=pathlib.Path(tmp) / "run",
                     steps=128 + 64 * 15, sets=sets, progress=False, donate=donate)
    wall = time.time() - t0
    end = time.perf_counter()
    saved = run.read_config()
  from wmjax.train.algos import get_algo

  algo = get_algo("dreamer")
  config, hyper = loop._saved_settings(algo, saved)
  built = algo.build(saved["env"], saved["steps"], config, hyper)
  state_bytes = tree_bytes(jax.eval_shape(built.program.init, jax.random.PRNGKey(0), hyper))
  events = sampler.events
  chunk_windows = [(t, events[i + 1][0]) for i, (t, what) in enumerate(events[:-1])
                   if what == "chunk" and events[i + 1][1] == "save"]
  save_windows = [(t, events[i + 1][0] if i + 1 < len(events) else end)
                  for i, (t, what) in enumerate(events) if what == "save"]
  first_chunk = chunk_windows[0][0] if chunk_windows else end
  return {"donate": donate, "state_bytes": state_bytes, "wall_s": wall,
          "rss_after_imports_bytes": base,
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
          "peak_before_first_chunk_bytes": sampler.peak(0.0, first_chunk),
          "peak_in_chunks_bytes": max(sampler.peak(a, b) for a, b in chunk_windows[1:]),
          "peak_in_checkpoints_bytes": max(sampler.peak(a, b) for a, b in save_windows[1:]),
          "chunks": len(chunk_windows), "device": jax.devices()[0].device_kind,
          "backend": jax.default_backend(), "jax": jax.__version__}


def chunk_memory(capacity: int) -> list[dict]:
  """XLA's memory analysis of the driver's chunk program (5 iterations, one run), without and
  with donation."""
  import jax

  from wmjax.train.algos import get_algo
  from wmjax.train.common import all_finite, stack_hyper
  from wmjax.train.loop import settings_for

  algo = get_algo("dreamer")
  config, hyper, _ = settings_for(algo, "fast/PointMassPixels",
                                  [*SETS, f"replay_capacity={capacity}"])
  program = algo.build("fast/PointMassPixels", 128 + 64 * 15, config, hyper).program
  keys, hypers = jax.random.split(jax.random.PRNGKey(0), 1), stack_hyper(hyper, 1)
  abstract = jax.eval_shape(jax.vmap(program.init), keys, hypers)
  phase = program.phases[0]

  def run_chunk(state, h):   # as wmjax.train.loop builds it
    state, metrics = jax.lax.scan(lambda s, _: phase.iteration(s, h), state, None,
                                  length=phase.per_chunk)
    return state, (metrics, program.counters(state), all_finite(program.params(state)))

  rows = []
  for donate in (False, True):
    compiled = jax.jit(jax.vmap(run_chunk), donate_argnums=(0,) if donate else ()).lower(
        abstract, hypers).compile()
    m = compiled.memory_analysis()
    row = {"donate": donate, "argument_bytes": m.argument_size_in_bytes,
           "output_bytes": m.output_size_in_bytes, "alias_bytes": m.alias_size_in_bytes,
           "temp_bytes": m.temp_size_in_bytes}
    row["program_bytes"] = (row["argument_bytes"] + row["output_bytes"] - row["alias_bytes"]
                            + row["temp_bytes"])
    rows.append(row)
    print(f"chunk program {'donated' if donate else 'not donated'}: arguments "
          f"{row['argument_bytes'] / 2**30:.3f} GiB + outputs {row['output_bytes'] / 2**30:.3f} "
          f"- aliased {row['alias_bytes'] / 2**30:.3f} + temporaries "
          f"{row['temp_bytes'] / 2**30:.3f} = {row['program_bytes'] / 2**30:.3f} GiB",
          flush=True)
  return rows


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--capacity", type=int, default=1_000_000)
  parser.add_argument("--out", type=pathlib.Path, default=None)
  parser.add_argument("--child", choices=("donate", "keep"), default=None)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.child == "donate", args.capacity)))
    return {}
  program_rows = chunk_memory(args.capacity)
  rows = []
  for variant in ("keep", "donate"):
    proc = subprocess.run([sys.executable, __file__, "--child", variant, "--capacity",
                           str(args.capacity)], capture_output=True, text=True)
    if proc.returncode != 0:
      print(proc.stdout, proc.stderr, file=sys.stderr)
      raise SystemExit(f"the {variant} run failed")
    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    r = rows[-1]
    gib = 2**30
    print(f"{'donated' if r['donate'] else 'not donated'}: training state "
          f"{r['state_bytes'] / gib:.2f} GiB; resident memory after imports "
          f"{r['rss_after_imports_bytes'] / gib:.2f} GiB, peak in the training chunks "
          f"{r['peak_in_chunks_bytes'] / gib:.2f} GiB, in the checkpoints "
          f"{r['peak_in_checkpoints_bytes'] / gib:.2f} GiB, at the start (prefill, first "
          f"checkpoint) {r['peak_before_first_chunk_bytes'] / gib:.2f} GiB, process peak "
          f"{r['peak_rss_bytes'] / gib:.2f} GiB; {r['wall_s']:.0f} s", flush=True)
  keep, donate = rows
  result = {"benchmark": "donation_memory", "algo": "dreamer", "env": "fast/PointMassPixels",
            "replay_capacity": args.capacity, "sets": SETS, "chunk_program": program_rows,
            "program_saved_bytes": program_rows[0]["program_bytes"]
            - program_rows[1]["program_bytes"], "rows": rows,
            "chunks_saved_bytes": keep["peak_in_chunks_bytes"] - donate["peak_in_chunks_bytes"],
            "chunks_saved_over_state": (keep["peak_in_chunks_bytes"]
                                        - donate["peak_in_chunks_bytes"]) / donate["state_bytes"],
            "process_peak_saved_bytes": keep["peak_rss_bytes"] - donate["peak_rss_bytes"]}
  print(f"donation saves {result['program_saved_bytes'] / 2**30:.2f} GiB of what the chunk "
        "program needs on its device; on this CPU it saves "
        f"{result['chunks_saved_bytes'] / 2**30:.2f} GiB of the training chunks' "
        f"peak ({result['chunks_saved_over_state']:.2f} x the training state) and "
        f"{result['process_peak_saved_bytes'] / 2**30:.2f} GiB of the process's peak")
  out = args.out or (pathlib.Path(__file__).parent / "results" /
                     f"donation_memory-{rows[0]['backend']}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {out}")
  return result


if __name__ == "__main__":
  main()
