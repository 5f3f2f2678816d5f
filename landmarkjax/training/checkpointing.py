"""Training checkpoints: Orbax v1 behind one small class.

`TrainingCheckpoints` keeps a sequence of step checkpoints under one directory. Each holds the train
state (any pytree of arrays) and, optionally, the training data iterator's position, so a resumed run
continues with exactly the batches it would have seen. It keeps the last N checkpoints plus the best
one by an evaluation metric.

Guarantees:
  * Atomic saves: Orbax writes a step into a temporary directory and renames it when complete, so a
    crash mid-save leaves no directory that looks like a finished checkpoint (leftover temporary
    directories are removed on the next start).
  * Integrity: every save writes a manifest with the state's layout (leaf paths, dtypes, shapes) and a
    SHA-256 fingerprint of its values. A restore whose files are damaged, or whose values' fingerprint
    differs, raises `CorruptCheckpointError`. A readable checkpoint whose layout differs from the run's
    state is an `IncompatibleCheckpointError` (a config mistake, not corruption).
  * `restore_latest` falls back from a corrupt latest checkpoint to the newest good one, moves the bad
    one aside (into `<directory>.corrupt/`, for inspection) and reports what it skipped. Any other
    failure (a permission or transient I/O error, a bug, an incompatible checkpoint) propagates, and
    nothing is moved.

What counts as corruption. A failed read is corruption only if the step's directory still exists and
  * a file the restore needs is damaged: `manifest/manifest.json` or `state/_METADATA` is missing, is
    not JSON, or the manifest lacks its layout or fingerprint; or
  * the error itself comes from a damaged file: a `FileNotFoundError` (an array or metadata file is
    gone), a `json.JSONDecodeError` or `UnicodeDecodeError` (a metadata file is truncated or holds
    garbage), or a TensorStore read error with status DATA_LOSS, OUT_OF_RANGE or NOT_FOUND (what it
    reports for a garbage-filled, truncated or deleted array file), anywhere in the error's chain
    (Orbax wraps the error of the file it read).
A mismatch between the values read and the manifest's fingerprint is corruption too. Everything else
(`PermissionError`, other `OSError`s, TensorStore errors such as UNAVAILABLE or PERMISSION_DENIED, a
`TypeError` from a bug) is not.

Multi-process runs. Every process reads the checkpoint on its own (Orbax's loads run without
cross-process barriers here, so a process whose read fails cannot leave the others waiting in one), and
after each stage of a restore (the manifest, the state and data position, the fingerprint check) all
processes exchange their outcome (`process_allgather` of one flag each). If any process failed for a
reason other than corruption, every process raises; otherwise, if any found corruption, every process
raises `CorruptCheckpointError`, so `restore_latest` on all of them moves on to the previous checkpoint
together (process 0 moves the directory; the others wait for it). With one process no collective is
made.

Orbax 0.12.8 ships the v1 API as `orbax.checkpoint.experimental.v1` (its docs already import it as
`orbax.checkpoint.v1`, which is tried first); its `training.Checkpointer` provides everything used here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

try:
    import orbax.checkpoint.v1 as ocp
except ImportError:
    import orbax.checkpoint.experimental.v1 as ocp

from landmarkjax.training._iterator_state import decode_state, encode_state

__all__ = [
    "CorruptCheckpointError",
    "IncompatibleCheckpointError",
    "SkippedCheckpoint",
    "RestoredCheckpoint",
    "TrainingCheckpoints",
    "abstract_state",
    "state_fingerprint",
    "state_layout",
]

_STATE = "state"
_DATA = "data"
_MANIFEST = "manifest"
_MANIFEST_FILE = "manifest.json"


class IncompatibleCheckpointError(ValueError):
    """A readable checkpoint that does not fit this run (different model, or process count)."""


class CorruptCheckpointError(ValueError):
    """A checkpoint whose files are damaged, or whose values differ from its fingerprint.

    What counts as damage is listed in the module docstring; the read error, if any, is the cause.
    `restore_latest` moves such a checkpoint aside and tries the previous one.

    Attributes:
      step: the checkpoint's step.
      reason: one line saying what is damaged.
    """

    def __init__(self, step: int, reason: str):
        super().__init__(f"Checkpoint at step {step} is corrupt: {reason}")
        self.step = step
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class SkippedCheckpoint:
    """A checkpoint that could not be restored: its step, why, and where it was moved."""

    step: int
    reason: str
    moved_to: str | None


@dataclasses.dataclass(frozen=True)
class RestoredCheckpoint:
    """The result of `TrainingCheckpoints.restore_latest`."""

    step: int
    state: Any
    skipped: tuple[SkippedCheckpoint, ...] = ()


def abstract_state(state: Any) -> Any:
    """`jax.ShapeDtypeStruct`s (with shardings) describing a concrete state: the restore target."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None)),
        state,
    )


def _host_value(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)


def state_fingerprint(state: Any) -> str:
    """Hex SHA-256 of the state's tree structure, dtypes, shapes and values (the global values)."""
    digest = hashlib.sha256()
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    digest.update(str(treedef).encode())
    for path, leaf in leaves:
        value = np.ascontiguousarray(_host_value(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _process_filename() -> str:
    return f"process_{jax.process_index()}-of-{jax.process_count()}.json"


def _encode_iterator_state(state: Any) -> str:
    return json.dumps(encode_state(state))


def _decode_iterator_state(text: str) -> Any:
    return decode_state(json.loads(text))


class _IteratorCheckpointable:
    """Orbax `StatefulCheckpointable` for any iterator with `get_state()` / `set_state(state)`.

    Each process writes its own iterator position (`process_<i>-of-<n>.json`); the state is captured
    when `save` is called, and the file is written once Orbax has created the directory.
    """

    def __init__(self, iterator: Any):
        self._iterator = iterator

    async def save(self, directory: Any) -> Any:
        text = _encode_iterator_state(self._iterator.get_state())

        async def write() -> None:
            path = await directory.await_creation()
            await asyncio.to_thread((path / _process_filename()).write_text, text)

        return write()

    async def load(self, directory: Any) -> Any:
        path = directory / _process_filename()

        async def read() -> None:
            if not await asyncio.to_thread(path.exists):
                written = sorted(p.name for p in directory.iterdir() if p.name.startswith("process_"))
                raise IncompatibleCheckpointError(
                    f"No data-iterator state for {_process_filename()} in {directory}; the checkpoint "
                    f"holds {written} (was it written with a different number of processes?)."
                )
            text = await asyncio.to_thread(path.read_text)
            state = _decode_iterator_state(text)  # unreadable text: a damaged checkpoint
            try:
                self._iterator.set_state(state)
            except Exception as error:  # noqa: BLE001 - the iterator's own check of the state it is given
                # Readable, but the iterator refuses it (Grain: "DataSource in checkpoint does not match
                # datasource in dataloader"): the data settings changed, which no older checkpoint cures.
                raise IncompatibleCheckpointError(
                    f"The data-iterator state in {directory} does not fit this run's data pipeline (were "
                    f"the data settings of the config changed?): {type(error).__name__}: {error}"
                ) from error

        return read()


def state_layout(state: Any) -> dict[str, str]:
    """`{leaf path: "dtype[shape]"}` of a concrete or abstract state (what a checkpoint must match)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        jax.tree_util.keystr(path): f"{np.dtype(leaf.dtype)}{list(np.shape(leaf))}" for path, leaf in leaves
    }


class _ManifestCheckpointable:
    """Orbax `StatefulCheckpointable` for the JSON manifest (state layout and fingerprint).

    Process 0 writes it; every process reads it. It is written inside the step's temporary directory,
    so it becomes visible atomically with the rest of the checkpoint.
    """

    def __init__(self, manifest: dict[str, Any] | None = None):
        self.manifest = manifest

    async def save(self, directory: Any) -> Any:
        text = json.dumps(self.manifest, indent=1, sort_keys=True)

        async def write() -> None:
            path = await directory.await_creation()
            if jax.process_index() == 0:
                await asyncio.to_thread((path / _MANIFEST_FILE).write_text, text)

        return write()

    async def load(self, directory: Any) -> Any:
        async def read() -> None:
            text = await asyncio.to_thread((directory / _MANIFEST_FILE).read_text)
            self.manifest = json.loads(text)

        return read()


def _check_compatible(step: int, saved_layout: dict[str, str], wanted_layout: dict[str, str]) -> None:
    """Raises IncompatibleCheckpointError if the saved state's leaves, shapes or dtypes differ."""
    missing = sorted(set(wanted_layout) - set(saved_layout))
    extra = sorted(set(saved_layout) - set(wanted_layout))
    if missing or extra:
        raise IncompatibleCheckpointError(
            f"Checkpoint at step {step} holds a different state structure: missing {missing[:3]}, "
            f"unexpected {extra[:3]}. Was it written with another config?"
        )
    for path, wanted in wanted_layout.items():
        if saved_layout[path] != wanted:
            raise IncompatibleCheckpointError(
                f"Checkpoint at step {step}: {path} is {saved_layout[path]}, this run expects {wanted}. "
                "Was it written with another config?"
            )


def _error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then each exception of its cause/context chain once (Orbax wraps errors)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`error` or the first exception of type `kind` in its cause/context chain."""
    return next((link for link in _error_chain(error) if isinstance(link, kind)), None)


def _describe(error: BaseException) -> str:
    """`error`'s type and the first line of its message."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]


# Errors that report a damaged file, and the statuses of TensorStore's read errors (a ValueError whose
# message starts with the status) that do: a garbage-filled, truncated or deleted array file.
_DAMAGED_FILE_ERRORS = (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError)
_DAMAGED_FILE_STATUSES = ("DATA_LOSS:", "OUT_OF_RANGE:", "NOT_FOUND:")
_REQUIRED_JSON_FILES = (os.path.join(_MANIFEST, _MANIFEST_FILE), os.path.join(_STATE, "_METADATA"))


def _damaged_file_error(error: BaseException) -> BaseException | None:
    """The exception in `error`'s chain that reports a damaged file, if any."""
    for link in _error_chain(error):
        if isinstance(link, _DAMAGED_FILE_ERRORS):
            return link
        if type(link) is ValueError and str(link).startswith(_DAMAGED_FILE_STATUSES):
            return link
    return None


def _damaged_required_file(step_dir: str) -> str | None:
    """What is wrong with the manifest or the state's metadata in `step_dir`; None if nothing is seen.

    A file that cannot be opened for another reason (e.g. a PermissionError) is no evidence of damage.
    """
    for relative in _REQUIRED_JSON_FILES:
        try:
            with open(os.path.join(step_dir, relative), "rb") as file:
                content = json.loads(file.read())
        except FileNotFoundError:
            return f"{relative} is missing"
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError: truncated or garbage
            return f"{relative} is not valid JSON ({_describe(error)})"
        except OSError:
            continue
        is_manifest = relative.startswith(_MANIFEST)
        if is_manifest and not (isinstance(content, dict) and {"layout", "sha256"} <= set(content)):
            return f"{relative} lacks the state layout or fingerprint"
    return None


def _corruption(step_dir: str, error: BaseException) -> str | None:
    """Why a read of `step_dir` that failed with `error` shows a corrupt checkpoint; None if it does not.

    The rule of the module docstring: the directory still exists, and a required file is damaged or the
    error comes from a damaged file.
    """
    if not os.path.isdir(step_dir):
        return None  # removed meanwhile: there is nothing damaged to move aside
    damaged = _damaged_required_file(step_dir)
    if damaged is not None:
        return damaged
    link = _damaged_file_error(error)
    return None if link is None else f"a file of it is damaged ({_describe(link)})"


def _verify_fingerprint(step: int, state: Any, expected: str) -> None:
    """Raises CorruptCheckpointError if the fingerprint of the restored `state` is not `expected`."""
    actual = state_fingerprint(state)
    if actual != expected:
        raise CorruptCheckpointError(
            step,
            f"its data does not match its fingerprint (stored {expected[:12]}..., read {actual[:12]}...): "
            "its files were changed after saving",
        )


_OK, _CORRUPT, _FAILED = 0, 1, 2


def _outcomes_of_all_processes(outcome: int) -> np.ndarray:
    """Every process's outcome (`_OK`, `_CORRUPT`, `_FAILED`) of one restore stage, by process index.

    A collective call in a multi-process run; none with a single process.
    """
    if jax.process_count() == 1:
        return np.asarray([outcome])
    return np.asarray(multihost_utils.process_allgather(np.asarray([outcome], np.int32), tiled=True))


def _from_process_0(value: int) -> int:
    """Process 0's `value`, on every process (a collective call; none with a single process)."""
    if jax.process_count() == 1:
        return value
    return int(np.asarray(multihost_utils.broadcast_one_to_all(np.asarray([value], np.int32)))[0])


def _local_load_context() -> Any:
    """An Orbax context whose loads involve this process alone (no barriers that wait for the others)."""
    process = jax.process_index()
    context = ocp.Context()
    context.multiprocessing.primary_host = process
    context.multiprocessing.active_processes = {process}
    return context


_UNFINISHED_SAVE_MARK = ".orbax-checkpoint-tmp"


def _remove_unfinished_saves(directory: str) -> None:
    """Deletes the temporary directories that Orbax leaves when a process dies during a save (process 0)."""
    if jax.process_index() != 0 or not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if _UNFINISHED_SAVE_MARK in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class TrainingCheckpoints:
    """The checkpoints of one training run.

    Every process of a multi-process run must make the same calls in the same order.

    Args:
      directory: root directory; step `s` is stored in `<directory>/<s>`.
      keep_last: how many of the most recent checkpoints to keep (>= 1).
      best_metric: name of an evaluation metric passed to `save(..., metrics=)`; the best checkpoint by
        it is kept as well, and `best_step` returns it. None keeps only the last ones.
      best_mode: "min" if lower `best_metric` is better (errors), "max" otherwise.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep_last: int = 3,
        best_metric: str | None = None,
        best_mode: str = "min",
    ):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1; got {keep_last}.")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max'; got {best_mode!r}.")
        self.directory = os.path.abspath(os.fspath(directory))
        self.quarantine_directory = self.directory.rstrip(os.sep) + ".corrupt"
        self.best_metric = best_metric
        self.best_mode = best_mode
        policies = ocp.training.preservation_policies
        keep = [policies.LatestN(keep_last)]
        if best_metric is not None:
            keep.append(
                policies.BestN(
                    get_metric_fn=lambda metrics: metrics[best_metric],
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        _remove_unfinished_saves(self.directory)
        self._checkpointer = ocp.training.Checkpointer(
            self.directory,
            preservation_policy=policies.AnyPreservationPolicy(keep),
            # Done synchronously above: Orbax's background clean-up of a crashed save raced with that of
            # the next checkpointer on the same directory (FileNotFoundError in its rmtree).
            cleanup_tmp_directories=False,
        )

    @property
    def steps(self) -> list[int]:
        """Steps of the finished checkpoints on disk, ascending."""
        return [checkpoint.step for checkpoint in self._checkpointer.checkpoints]

    @property
    def latest_step(self) -> int | None:
        """The newest checkpoint's step, or None if there is none."""
        steps = self.steps
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """Step of the best checkpoint by `best_metric`; the latest if none carries the metric."""
        scored = [
            (checkpoint.metrics[self.best_metric], checkpoint.step)
            for checkpoint in self._checkpointer.checkpoints
            if self.best_metric is not None and checkpoint.metrics and self.best_metric in checkpoint.metrics
        ]
        if not scored:
            return self.latest_step
        best = min(scored) if self.best_mode == "min" else max(scored)
        return best[1]

    def save(
        self,
        step: int,
        state: Any,
        *,
        data_iterator: Any = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Saves `state` (and the iterator's position) as step `step`; blocks until it is on disk.

        Args:
          step: training steps completed; must be larger than every saved step.
          state: pytree of arrays.
          data_iterator: optional object with `get_state()` / `set_state(state)`.
          metrics: optional JSON-able evaluation metrics, used to rank checkpoints by `best_metric`.
        """
        manifest = {"layout": state_layout(state), "sha256": state_fingerprint(state)}
        checkpointables = {_STATE: state, _MANIFEST: _ManifestCheckpointable(manifest)}
        if data_iterator is not None:
            checkpointables[_DATA] = _IteratorCheckpointable(data_iterator)
        self._checkpointer.save_checkpointables(
            step,
            checkpointables,
            force=True,
            metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
        )

    def restore(self, step: int, abstract: Any, *, data_iterator: Any = None) -> Any:
        """Restores and verifies step `step`.

        In a multi-process run every process must call it; all of them return, or all raise (see the
        module docstring).

        Args:
          step: a step in `steps`.
          abstract: the state's structure, e.g. `abstract_state(initial_state)`: restored arrays get its
            shapes, dtypes and shardings.
          data_iterator: optional iterator whose position is set to the saved one.

        Returns:
          The restored state.

        Raises:
          IncompatibleCheckpointError: the checkpoint was written for another state layout, process
            count or data pipeline, or without a data-iterator position while `data_iterator` is given.
          CorruptCheckpointError: its files are damaged or its values differ from its fingerprint (on
            this or another process); the read error, if any, is its cause.
          RuntimeError: only another process failed, for a reason other than corruption.
          Exception: any other error of the read (e.g. a PermissionError), unchanged.
        """
        manifest = self._settle(step, lambda: self._read_manifest(step, abstract))
        state = self._settle(step, lambda: self._read_state(step, abstract, data_iterator))
        self._settle(step, lambda: _verify_fingerprint(step, state, manifest["sha256"]))
        return state

    def _read_manifest(self, step: int, abstract: Any) -> dict[str, Any]:
        """The step's manifest, once its layout is checked against `abstract`'s."""
        manifest = self._load(step, {_MANIFEST: _ManifestCheckpointable()})[_MANIFEST].manifest
        _check_compatible(step, manifest["layout"], state_layout(abstract))
        return manifest

    def _read_state(self, step: int, abstract: Any, data_iterator: Any) -> Any:
        """The step's state (not yet verified); sets `data_iterator` to the saved position."""
        targets = {_STATE: abstract}
        if data_iterator is not None:
            if not os.path.isdir(os.path.join(self._step_path(step), _DATA)):
                raise IncompatibleCheckpointError(
                    f"Checkpoint at step {step} holds no data-iterator position (it was saved without one)."
                )
            targets[_DATA] = _IteratorCheckpointable(data_iterator)
        return self._load(step, targets)[_STATE]

    def _load(self, step: int, targets: dict[str, Any]) -> dict[str, Any]:
        with _local_load_context():
            return self._checkpointer.load_checkpointables(step, targets)

    def _settle(self, step: int, stage: Callable[[], Any]) -> Any:
        """Runs one stage of a restore, then makes every process return or raise alike.

        Returns:
          The stage's result, if it succeeded on every process.

        Raises:
          CorruptCheckpointError: some process found the checkpoint corrupt, and none failed otherwise.
          RuntimeError: another process failed for a reason other than corruption.
          Exception: this process's own error, if it failed for a reason other than corruption.
        """
        try:
            result, error = stage(), None
        except Exception as caught:  # noqa: BLE001 - classified, agreed on, then raised
            result, error = None, self._classify(step, caught)
        outcome = _OK if error is None else _CORRUPT if isinstance(error, CorruptCheckpointError) else _FAILED
        outcomes = _outcomes_of_all_processes(outcome)
        failed, corrupt = np.flatnonzero(outcomes == _FAILED), np.flatnonzero(outcomes == _CORRUPT)
        if failed.size and outcome != _FAILED:
            raise RuntimeError(
                f"Restoring the checkpoint at step {step} failed on process(es) {failed.tolist()} for a "
                "reason other than corruption (see their logs)."
            ) from error
        if not failed.size and corrupt.size and outcome != _CORRUPT:
            raise CorruptCheckpointError(step, f"process(es) {corrupt.tolist()} found it damaged")
        if error is not None:
            raise error
        return result

    def _classify(self, step: int, error: Exception) -> Exception:
        """What a failed read of `step` raises: an incompatibility or a fingerprint mismatch as itself,
        damage as a CorruptCheckpointError caused by `error`, anything else unchanged."""
        known = _find_cause(error, IncompatibleCheckpointError) or _find_cause(error, CorruptCheckpointError)
        if known is not None:
            return known
        reason = _corruption(self._step_path(step), error)
        if reason is None:
            return error
        corrupt = CorruptCheckpointError(step, reason)
        corrupt.__cause__ = error
        return corrupt

    def restore_latest(self, abstract: Any, *, data_iterator: Any = None) -> RestoredCheckpoint | None:
        """Restores the newest checkpoint that reads back intact; None if there is none.

        Corrupt checkpoints newer than it (`CorruptCheckpointError`, on any process) are moved into
        `quarantine_directory`, logged as warnings and listed in the result's `skipped`. On any other
        error nothing is moved, and `data_iterator` is back at the position it had on entry.

        Raises:
          IncompatibleCheckpointError: a readable checkpoint does not fit `abstract` (wrong config).
          RuntimeError: only another process failed, for a reason other than corruption.
          Exception: any other error of a read (e.g. a PermissionError), unchanged.
        """
        skipped = []
        # A read can fail after the iterator took part of its state (a MixedIterator sets one inner
        # iterator, then the other): every failure puts the iterator back where it started.
        initial_position = data_iterator.get_state() if data_iterator is not None else None
        for step in reversed(self.steps):
            try:
                state = self.restore(step, abstract, data_iterator=data_iterator)
            except Exception as error:
                if data_iterator is not None:
                    data_iterator.set_state(initial_position)
                if not isinstance(error, CorruptCheckpointError):
                    raise
                skipped.append(self._skip(step, error))
                continue
            if skipped:
                logging.warning(
                    "Resuming from checkpoint at step %d instead of the corrupt step(s) %s.",
                    step,
                    [s.step for s in skipped],
                )
            return RestoredCheckpoint(step, state, tuple(skipped))
        if skipped:
            logging.warning("No intact checkpoint left in %s; starting from scratch.", self.directory)
        return None

    def _skip(self, step: int, error: CorruptCheckpointError) -> SkippedCheckpoint:
        """Quarantines the corrupt step and logs it."""
        moved_to = self._quarantine(step)
        logging.warning(
            "Checkpoint at step %d is corrupt or half-written (%s); moved it to %s and trying the previous "
            "checkpoint.",
            step,
            error.reason,
            moved_to,
        )
        return SkippedCheckpoint(step, error.reason, moved_to)

    def _step_path(self, step: int) -> str:
        paths = [str(c.path) for c in self._checkpointer.checkpoints if c.step == step]
        return paths[0] if paths else os.path.join(self.directory, str(step))

    def _quarantine_path(self, step: int, moved_at: int) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(moved_at))
        return os.path.join(self.quarantine_directory, f"{step}-{stamp}")

    def _quarantine(self, step: int) -> str:
        """Moves step `step`'s directory out of the checkpoint root: process 0 moves, all wait for it.

        Returns:
          Where it was moved (the same on every process).

        Raises:
          OSError: on process 0, if it could not move the directory.
          RuntimeError: on the other processes, in that case.
        """
        source = self._step_path(step)
        moved_at, error = -1, None
        if jax.process_index() == 0:
            moved_at = int(time.time())
            try:
                os.makedirs(self.quarantine_directory, exist_ok=True)
                shutil.move(source, self._quarantine_path(step, moved_at))
            except OSError as caught:
                moved_at, error = -1, caught
        moved_at = _from_process_0(moved_at)  # also a barrier: every process waits for the move
        if error is not None:
            raise error
        if moved_at < 0:
            raise RuntimeError(f"Process 0 could not move the corrupt checkpoint at step {step} aside.")
        self._checkpointer.reload()
        return self._quarantine_path(step, moved_at)

    def wait(self) -> None:
        """Blocks until any background checkpoint work has finished."""
        self._checkpointer.wait()

    def close(self) -> None:
        """Finishes pending work and releases the checkpointer."""
        self._checkpointer.close()

    def __enter__(self) -> TrainingCheckpoints:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
