"""Grain loaders: deterministic, sharded by JAX process, checkpointable, yielding numpy batch dicts.

`make_loader(source, batch_size=B, seed=s)` returns a `grain.DataLoader`. Iterating it gives dicts of numpy
arrays with a leading batch dimension B (per process):

- face images: image float32 [B, H, W, 3] in [0, 1], landmarks float32 [B, K, 2] (x, y) pixels,
  visibility float32 [B, K] (1 = visible), attributes float32 [B, A], face_box float32 [B, 4]
  (x0, y0, x1, y1) pixels;
- face clips: frames float32 [B, T, H, W, 3] in [0, 1], landmarks float32 [B, T, K, 2], visibility
  float32 [B, T, K], attributes float32 [B, T, A], face_box float32 [B, T, 4];
- object videos: frames float32 [B, T, H, W, 3] in [0, 1], masks int32 [B, T, H, W] (0 = background);
- text fields of TFDS records (file_name, ...) as str arrays [B].

The order of records and every random augmentation are fixed by `seed` (Grain derives one rng per record
from the seed and the record index), and `iter(loader).get_state()` / `set_state(state)` save and restore
the position, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from typing import Any

import grain
import jax
import numpy as np
from absl import flags

__all__ = ["StackBatch", "ToModelInputs", "make_loader", "one_pass_loader", "to_model_inputs"]

_FLOAT_KEYS = ("landmarks", "visibility", "attributes", "face_box")
_IMAGE_KEYS = ("image", "frames")


def to_model_inputs(element: dict[str, Any]) -> dict[str, Any]:
    """Converts one element to the batch dtypes: uint8 images -> float32 / 255, float32 geometry and
    visibility, int32 masks. Float images, text and unknown keys pass unchanged."""
    result = dict(element)
    for key in _IMAGE_KEYS:
        if key in result:
            value = np.asarray(result[key])
            if value.dtype == np.uint8:
                result[key] = value.astype(np.float32) / np.float32(255.0)
            else:
                result[key] = value.astype(np.float32, copy=False)
    for key in _FLOAT_KEYS:
        if key in result:
            result[key] = np.asarray(result[key], np.float32)
    if "masks" in result:
        result["masks"] = np.asarray(result["masks"], np.int32)
    return result


class ToModelInputs(grain.transforms.Map):
    """Grain transform applying `to_model_inputs`."""

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        return to_model_inputs(element)

    def __repr__(self) -> str:
        return "ToModelInputs()"


_TRANSFORM_TYPES = (
    grain.transforms.Map,
    grain.transforms.RandomMap,
    grain.transforms.MapWithIndex,
    grain.transforms.Filter,
)


class StackBatch:
    """Batch function for `grain.transforms.Batch`: stacks each leaf of the elements along a new axis 0.

    In Grain worker processes, Grain calls `enable_shared_memory_output()` and numeric leaves are then
    stacked straight into shared memory, as Grain's default batch function does; unlike that default,
    zero-size leaves (for example attributes float32 [0] of a dataset without attributes) and text are
    stacked as ordinary arrays, because Grain cannot allocate empty shared memory.
    """

    def __init__(self):
        self.shared_memory = False

    def enable_shared_memory_output(self) -> None:
        self.shared_memory = True

    def _stack(self, *leaves: Any) -> np.ndarray:
        first = np.asarray(leaves[0])
        if self.shared_memory and first.size and first.dtype.kind in "biuf":
            out = grain.multiprocessing.SharedMemoryArray((len(leaves), *first.shape), dtype=first.dtype)
            return np.stack(leaves, out=out)
        return np.stack(leaves)

    def __call__(self, values: list[Any]) -> Any:
        return jax.tree.map(self._stack, *values)

    def __repr__(self) -> str:
        return "StackBatch()"


def _as_operations(augment: Any) -> list[Any]:
    if augment is None:
        return []
    operations = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    for operation in operations:
        if not isinstance(operation, _TRANSFORM_TYPES):
            raise ValueError(
                "augment: expected None, a grain transform (Map, RandomMap, MapWithIndex, Filter) or a "
                f"list of them, got {type(operation).__name__}."
            )
    return operations


# Read by Grain (0.2.18 and earlier) when it starts worker processes, through absl without a fallback to the
# default while absl flags are unparsed (google/grain#1355, fixed after 0.2.18).
_GRAIN_WORKER_FLAG = "grain_enable_multiprocess_worker_profiling"
_LAST_GRAIN_NEEDING_PARSED_FLAGS = (0, 2, 18)


def _grain_needs_parsed_flags() -> bool:
    try:
        version = tuple(int(part) for part in grain.__version__.split(".")[:3])
    except (AttributeError, ValueError):  # a development build: assume it still needs them
        return True
    return version <= _LAST_GRAIN_NEEDING_PARSED_FLAGS


def _check_grain_can_start_workers() -> None:
    """Raises, before any worker starts, where Grain would fail reading its absl flag from a worker thread.

    The library does not parse or mark absl flags itself: that is global state belonging to the program.
    """
    if not _grain_needs_parsed_flags():
        return
    try:
        getattr(flags.FLAGS, _GRAIN_WORKER_FLAG, None)  # None where this Grain defines no such flag
    except flags.UnparsedFlagAccessError:
        raise RuntimeError(
            "worker_count > 0: this Grain version reads the absl flag "
            f"--{_GRAIN_WORKER_FLAG} when it starts worker processes, and absl flags are not parsed "
            "in this program. Run it under absl.app.run, parse the flags first "
            "(e.g. absl.flags.FLAGS(sys.argv[:1]) for the defaults), or use worker_count=0."
        ) from None


def make_loader(
    source: Any,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    augment: Any = None,
    shard_by_process: bool = True,
    worker_count: int = 0,
    drop_remainder: bool = True,
    read_threads: int = 0,
) -> grain.DataLoader:
    """A Grain DataLoader over a random-access source.

    Args:
      source: anything with `__len__` and `__getitem__` returning element dicts (see
        `landmarkjax.data.sources`).
      batch_size: examples per batch in THIS process (the global batch is batch_size * process count).
      seed: fixes the shuffling order and every record's augmentation rng.
      shuffle: shuffle the records (a new order each epoch).
      num_epochs: passes over the data; None repeats forever.
      augment: None, a Grain transform (e.g. `augment.RandomFaceAugment(...)`, `augment.CropFace(...)`) or a
        sequence of them, applied per element before the dtype conversion and batching.
      shard_by_process: give each JAX process (`jax.process_index()` of `jax.process_count()`) its own
        disjoint, equal-sized share of the records; False reads every record in every process.
      worker_count: Grain worker processes (0 reads in the calling process). With Grain 0.2.18 and earlier,
        worker processes need absl flags to be parsed (as they are under `absl.app.run`, e.g. in train.py);
        otherwise this raises a RuntimeError saying so rather than changing the program's flags.
      drop_remainder: drop a last batch smaller than batch_size (always the case when repeating forever).
      read_threads: threads reading records ahead in each process (Grain's `ReadOptions.num_threads`).
        0 reads in the consuming thread, which avoids GIL contention with CPU-bound sources and
        transforms (2-3x less CPU per augmented batch of synthetic faces on a 2-core machine than Grain's
        default of 16); raise it for sources on slow or remote storage.

    Returns:
      a `grain.DataLoader`; `iter(loader)` yields batch dicts (see the module docstring) and supports
      `get_state()` / `set_state(state)`.
    """
    if int(read_threads) != read_threads or read_threads < 0:
        raise ValueError(f"read_threads: expected a non-negative integer, got {read_threads!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}.")
    if num_epochs is not None and (int(num_epochs) != num_epochs or num_epochs < 1):
        raise ValueError(f"num_epochs: expected None or a positive integer, got {num_epochs!r}.")
    if len(source) < 1:
        raise ValueError("source: expected at least one record.")
    if shard_by_process:
        shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    else:
        shard_options = grain.sharding.NoSharding()
    sampler = grain.samplers.IndexSampler(
        num_records=len(source),
        shard_options=shard_options,
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=int(seed),
    )
    operations = [
        *_as_operations(augment),
        ToModelInputs(),
        grain.transforms.Batch(
            batch_size=int(batch_size), drop_remainder=drop_remainder, batch_fn=StackBatch()
        ),
    ]
    if worker_count:
        _check_grain_can_start_workers()
    return grain.DataLoader(
        data_source=source,
        sampler=sampler,
        operations=operations,
        worker_count=int(worker_count),
        read_options=grain.ReadOptions(num_threads=int(read_threads)),
    )


def one_pass_loader(source: Any, *, batch_size: int, seed: int, augment: Any = None) -> grain.DataLoader:
    """One pass over `source` in record order, the last (smaller) batch kept: every evaluation loader.

    `make_loader(source, batch_size=..., seed=..., shuffle=False, num_epochs=1, augment=augment,
    drop_remainder=False)`; `seed` fixes the records' augmentation rngs (deterministic crops ignore it).
    """
    return make_loader(
        source,
        batch_size=batch_size,
        seed=seed,
        shuffle=False,
        num_epochs=1,
        augment=augment,
        drop_remainder=False,
    )
