"""Where a sweep's programs run: several hosts (``jax.distributed``), or one CPU host's cores."""

from __future__ import annotations

import os

__all__ = ["init_distributed", "barrier", "cpu_core_devices"]


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, auto: bool = False) -> tuple[int, int]:
  """Starts ``jax.distributed`` when asked: ``(process index, process count)``.

  From the arguments, else from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``; with ``auto``, JAX's own cluster detection (SLURM, Open MPI, Cloud TPU).
  Without any of these the sweep runs in this process alone. Only the coordination service is
  started here: this process never initialises a device backend (its children train).
  """
  import jax

  coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JAX_PROCESS_ID"):
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if not (auto or coordinator or num_processes):
    return 0, 1
  if not auto and (coordinator is None or num_processes is None or process_id is None):
    raise ValueError("multi-process sweeps need --coordinator HOST:PORT, --num-processes N and "
                     "--process-id I (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
                     "JAX_PROCESS_ID), or --distributed-auto on a cluster JAX detects")
  if auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  from jax._src.distributed import global_state  # the index without starting a backend

  return int(global_state.process_id), int(global_state.num_processes)


def barrier(name: str, count: int, timeout_s: float = 7 * 24 * 3600) -> None:
  """Waits until every process of the sweep reaches ``name`` (jax.distributed's coordination
  service; no device is touched)."""
  if count > 1:
    from jax._src.distributed import global_state

    global_state.client.wait_at_barrier(name, int(timeout_s * 1000))


def cpu_core_devices() -> int:
  """How many devices a sweep on a CPU-only JAX splits its runs over: one per core.

  One XLA:CPU device runs most of its ops on one thread, so runs vmapped on it use about one
  core; split over one (fake) device per core they use all of them (``benchmarks/run_all.py``'s
  devices section: 8 PETS runs take 1.28 s on one device and 0.68 s over 8 fake devices on 2
  cores). 1 where that does not apply: an accelerator plugin is installed (and
  ``JAX_PLATFORMS`` does not force the CPU), or ``XLA_FLAGS`` already sets the device count.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return 1
  if not os.environ.get("JAX_PLATFORMS", "").startswith("cpu") and _accelerator_installed():
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(1, cores or 1)


def _accelerator_installed() -> bool:
  import importlib.metadata

  names = {(d.metadata["Name"] or "").lower().replace("_", "-")
           for d in importlib.metadata.distributions()}
  return any(n.startswith(("jax-cuda", "libtpu", "jax-rocm")) for n in names)
