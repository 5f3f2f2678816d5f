"""Data-parallel placement: one `data` mesh axis over every device of every process.

The batch is split along its leading dimension over the `data` axis; the training state is replicated.
Each process loads only its own part of the global batch (host-local arrays) and
`host_local_to_global` stitches the parts into one global `jax.Array`, so the same jitted step runs
unchanged on one CPU, on 8 GPUs, or on a multi-host TPU pod.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "EXAMPLE_MASK_KEY",
    "make_data_mesh",
    "replicated_sharding",
    "batch_sharding",
    "per_process_batch_size",
    "host_local_to_global",
    "pad_host_batch",
    "global_batches",
    "to_host",
    "jit_data_parallel",
]

DATA_AXIS = "data"
# Added to padded evaluation batches: float32 [B], 1 for real examples and 0 for padding.
EXAMPLE_MASK_KEY = "example_mask"


def make_data_mesh(devices: Iterable[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis `data` over `devices` (default: every device of every process)."""
    devices = np.asarray(list(devices) if devices is not None else jax.devices())
    if devices.size == 0:
        raise ValueError("devices must not be empty.")
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (used for the training state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the `data` axis, other dimensions whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def per_process_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """The share of `global_batch_size` each process loads, checking that it divides evenly.

    Raises:
      ValueError: if the global batch does not split evenly over the mesh's devices.
    """
    num_devices = mesh.devices.size
    if global_batch_size <= 0 or global_batch_size % num_devices:
        raise ValueError(
            f"batch_size must be a positive multiple of the number of devices ({num_devices}); "
            f"got {global_batch_size}."
        )
    return global_batch_size // jax.process_count()


def host_local_to_global(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Turns this process's part of a batch into global arrays split over the `data` axis.

    Args:
      batch: dict of host-local arrays, each `[B_local, ...]` with the same `B_local` in every process.
      mesh: the data mesh.

    Returns:
      The numeric (bool, int, float) entries as global `jax.Array`s of shape
      `[B_local * process_count, ...]`; text fields (e.g. file names of real datasets) cannot live on a
      device and are left out.
    """
    sharding = batch_sharding(mesh)
    arrays = {key: np.asarray(value) for key, value in batch.items()}
    arrays = {key: value for key, value in arrays.items() if value.dtype.kind in "biuf"}
    return jax.make_array_from_process_local_data({key: sharding for key in arrays}, arrays)


def pad_host_batch(batch: Mapping[str, Any], size: int) -> dict[str, np.ndarray]:
    """Pads a (final, partial) host-local batch to `size` rows and adds `EXAMPLE_MASK_KEY`.

    Padding rows repeat the last real example, so every op sees valid inputs; their mask is 0.

    Args:
      batch: dict of arrays `[n, ...]` with n <= size.
      size: rows wanted.

    Returns:
      dict of arrays `[size, ...]` plus `EXAMPLE_MASK_KEY` float32 `[size]`.
    """
    arrays = {key: np.asarray(value) for key, value in batch.items()}
    rows = {value.shape[0] for value in arrays.values()}
    if len(rows) != 1:
        raise ValueError(f"every array in batch must have the same leading size; got {sorted(rows)}.")
    (num_rows,) = rows
    if not 0 < num_rows <= size:
        raise ValueError(f"batch has {num_rows} rows; expected between 1 and size={size}.")
    mask = np.zeros([size], np.float32)
    mask[:num_rows] = 1.0
    index = np.minimum(np.arange(size), num_rows - 1)
    padded = {key: value[index] for key, value in arrays.items()}
    padded[EXAMPLE_MASK_KEY] = mask
    return padded


def global_batches(
    host_batches: Iterable[Mapping[str, Any]], mesh: Mesh, host_batch_size: int
) -> Iterator[dict[str, jax.Array]]:
    """Global evaluation batches: pads every host batch to `host_batch_size` and masks the padding.

    All processes must yield the same number of batches (equal shards, as `make_loader` gives).
    """
    for batch in host_batches:
        yield host_local_to_global(pad_host_batch(batch, host_batch_size), mesh)


def to_host(tree: Any) -> Any:
    """Fetches a pytree of (possibly multi-process) arrays as numpy arrays holding the global values."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def jit_data_parallel(
    step_fn: Callable[..., Any], mesh: Mesh, state_sharding: Any, *, donate_state: bool = True
) -> Callable[..., Any]:
    """jit of `step_fn(state, batch, rng, frozen) -> (state, metrics)` with explicit data-parallel shardings.

    The state (in and out) has `state_sharding` (a sharding or a pytree of them, normally replicated),
    the batch is split over `data`, the rng key, the frozen inputs and the metrics are replicated. With
    `donate_state` the input state's buffers are reused for the output state, so the caller must not
    touch the old state after the call.
    """
    replicated = replicated_sharding(mesh)
    return jax.jit(
        step_fn,
        in_shardings=(state_sharding, batch_sharding(mesh), replicated, replicated),
        out_shardings=(state_sharding, replicated),
        donate_argnums=(0,) if donate_state else (),
    )
