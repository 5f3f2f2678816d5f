"""Joining a multi-process (multi-host) JAX run.

`maybe_initialize_distributed` is called once per process, before any other JAX call, when a run is
asked to be distributed: by an explicit argument (the `--distributed` flag of `train.py`) or by the
environment variable `LANDMARKJAX_DISTRIBUTED=1`. On Cloud TPU, SLURM, Open MPI and Kubernetes JAX
finds the coordinator itself; elsewhere pass `coordinator_address`, `num_processes` and `process_id`
(or set JAX's own `JAX_COORDINATOR_ADDRESS` etc.).
"""

from __future__ import annotations

import os

import jax
from absl import logging

__all__ = ["DISTRIBUTED_ENV_VAR", "distributed_requested", "maybe_initialize_distributed"]

DISTRIBUTED_ENV_VAR = "LANDMARKJAX_DISTRIBUTED"


def distributed_requested(flag: bool = False) -> bool:
    """True if `flag` is set or the environment variable `LANDMARKJAX_DISTRIBUTED` is 1/true/yes."""
    env = os.environ.get(DISTRIBUTED_ENV_VAR, "").strip().lower()
    return flag or env in ("1", "true", "yes")


def maybe_initialize_distributed(
    requested: bool = False,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cpu_collectives: str | None = "gloo",
) -> bool:
    """Calls `jax.distributed.initialize` if a distributed run is requested (flag or environment).

    The CPU backend's cross-process collectives are selected first (gloo by default; they only affect
    CPU devices), so processes on one host (tests) or on several CPU-only hosts can all-reduce.

    Args:
      requested: the caller's flag; the environment variable can also request it.
      coordinator_address: "host:port" of process 0's coordinator, or None to auto-detect.
      num_processes: total number of processes, or None to auto-detect.
      process_id: this process's index, or None to auto-detect.
      cpu_collectives: value for `jax_cpu_collectives_implementation` ("gloo" or "mpi"), or None to
        leave JAX's setting alone.

    Returns:
      True if this call initialised the distributed runtime.
    """
    if not distributed_requested(requested):
        return False
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    logging.info(
        "Joined distributed run: process %d of %d, %d local / %d global devices.",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
