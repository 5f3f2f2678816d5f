"""The method-agnostic training loop: `train_and_evaluate(config, workdir)`.

Data parallel over every device of every process: the state is replicated, each process loads its
share of the global batch, and one jitted step (explicit shardings, the state donated) runs on the
global arrays. The run checkpoints periodically and at the end (state + data-iterator position),
resumes from the newest intact checkpoint automatically, evaluates periodically, and logs metrics as
JSON lines and TensorBoard events in `workdir`. A non-finite loss stops the run before anything is
saved from the bad state.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from landmarkjax.methods.base import Method, build_method
from landmarkjax.training import sharding
from landmarkjax.training.checkpointing import TrainingCheckpoints
from landmarkjax.training.metric_writer import MetricWriter
from landmarkjax.training.progress import ProgressUpdate, ReportFn

__all__ = [
    "CHECKPOINT_DIRNAME",
    "NonFiniteLossError",
    "EvaluationResult",
    "train_and_evaluate",
    "evaluate_checkpoint",
]

CHECKPOINT_DIRNAME = "checkpoints"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and the last checkpoint."""


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """A checkpoint's evaluation: its step, metrics, and a picture of predictions (uint8 [H, W, 3])."""

    step: int
    metrics: dict[str, float]
    image: np.ndarray


def _checkpoints(config: ml_collections.ConfigDict, workdir: str) -> TrainingCheckpoints:
    return TrainingCheckpoints(
        os.path.join(workdir, CHECKPOINT_DIRNAME),
        keep_last=config.keep_checkpoints,
        best_metric=config.best_metric,
        best_mode=config.best_mode,
    )


def _is_multiple(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _validate(config: ml_collections.ConfigDict) -> None:
    for name in ("total_steps", "log_every"):
        if config[name] <= 0:
            raise ValueError(f"config.{name} must be positive; got {config[name]}.")
    for name in ("eval_every", "checkpoint_every"):
        if config[name] < 0:
            raise ValueError(f"config.{name} must be >= 0 (0 = only at the end); got {config[name]}.")


class _TrainMetrics:
    """Per-step metrics kept on device until `flush`, so the loop does not wait for every step."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict[str, jax.Array]]] = []
        self._clock = time.perf_counter()

    def restart_clock(self) -> None:
        """Excludes time spent since the last step (evaluation, checkpointing) from steps/s."""
        self._clock = time.perf_counter()

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        self._pending.append((step, metrics))

    def flush(self, last_good_step: int | None, checkpoint_dir: str) -> tuple[dict[str, float], float]:
        """Means over the pending steps (at least one) and steps/s; NonFiniteLossError on a bad loss."""
        steps = [step for step, _ in self._pending]
        values = jax.device_get([metrics for _, metrics in self._pending])
        for step, metrics in zip(steps, values, strict=True):
            loss = float(metrics["loss"])
            if not np.isfinite(loss):
                saved = (
                    f"the last good checkpoint is step {last_good_step} in {checkpoint_dir}"
                    if last_good_step is not None
                    else "no checkpoint was saved yet"
                )
                raise NonFiniteLossError(
                    f"Training loss is {loss} at step {step}; stopping the run ({saved}, left intact)."
                )
        now = time.perf_counter()
        rate = len(steps) / max(now - self._clock, 1e-9)
        self._clock = now
        self._pending = []
        means = {name: float(np.mean([m[name] for m in values])) for name in values[0]}
        return means, rate


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str],
    *,
    report: ReportFn | None = None,
    method: Method | None = None,
) -> dict[str, float]:
    """Trains `config.method` for `config.total_steps` steps in `workdir` and evaluates it.

    Resumes from the newest intact checkpoint in `<workdir>/checkpoints` if there is one (a corrupt
    newer one is moved aside and reported). Every process of a multi-process run calls this with the
    same arguments (after `maybe_initialize_distributed`).

    Args:
      config: a method config (see `landmarkjax/configs/`).
      workdir: directory for checkpoints, `metrics.jsonl` and TensorBoard events.
      report: optional callback receiving `ProgressUpdate`s (e.g. `TqdmProgress()`); the loop itself
        never prints.
      method: a `Method` to train instead of `build_method(config)` (e.g. one defined outside
        `landmarkjax.methods`).

    Returns:
      The final evaluation metrics, plus "step".

    Raises:
      NonFiniteLossError: the loss became NaN/inf; nothing was saved after the last good checkpoint.
    """
    _validate(config)
    workdir = os.path.abspath(os.fspath(workdir))
    notify = report or (lambda update: None)
    method = method or build_method(config)
    mesh = sharding.make_data_mesh()
    host_batch_size = sharding.per_process_batch_size(config.batch_size, mesh)
    host_eval_batch_size = sharding.per_process_batch_size(config.eval_batch_size, mesh)
    state_sharding = sharding.replicated_sharding(mesh)
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))

    train_batches = method.train_loader(host_batch_size)
    writer = MetricWriter(workdir)
    checkpoints = _checkpoints(config, workdir)
    try:
        abstract = _abstract_train_state(method, init_rng, state_sharding)
        restored = _resume(checkpoints, abstract, train_batches, writer, notify, config.total_steps)
        if restored is None:
            start_step, state = 0, jax.jit(method.init_state, out_shardings=state_sharding)(init_rng)
        else:
            start_step, state = restored
        train_step = sharding.jit_data_parallel(method.train_step, mesh, state_sharding)

        def evaluate(step: int, state: Any) -> dict[str, float]:
            batches = sharding.global_batches(
                method.eval_loader(host_eval_batch_size), mesh, host_eval_batch_size
            )
            metrics = method.evaluate(state, batches)
            writer.write(step, "eval", metrics)
            notify(ProgressUpdate("eval", step, config.total_steps, metrics))
            return metrics

        notify(ProgressUpdate("start", start_step, config.total_steps))
        pending = _TrainMetrics()
        last_good_step = checkpoints.latest_step
        eval_metrics: dict[str, float] | None = None
        for step in range(start_step + 1, config.total_steps + 1):
            batch = sharding.host_local_to_global(next(train_batches), mesh)
            state, metrics = train_step(state, batch, jax.random.fold_in(train_rng, step))
            pending.add(step, metrics)
            final = step == config.total_steps
            do_eval = final or _is_multiple(step, config.eval_every)
            do_save = final or do_eval or _is_multiple(step, config.checkpoint_every)
            if do_save or _is_multiple(step, config.log_every):
                means, rate = pending.flush(last_good_step, checkpoints.directory)
                writer.write(step, "train", {**means, "steps_per_second": rate})
                notify(ProgressUpdate("train", step, config.total_steps, means, steps_per_second=rate))
            eval_metrics = evaluate(step, state) if do_eval else None
            if do_save:
                checkpoints.save(step, state, data_iterator=train_batches, metrics=eval_metrics)
                last_good_step = step
            if do_eval or do_save:
                pending.restart_clock()
        if eval_metrics is None:
            # Resumed a finished run: nothing trained, so report the final state's metrics again.
            eval_metrics = evaluate(start_step, state)
        return {"step": max(start_step, config.total_steps), **eval_metrics}
    finally:
        checkpoints.close()
        writer.close()


def _abstract_train_state(method: Method, init_rng: jax.Array, state_sharding: Any) -> Any:
    """The train state's shapes and dtypes with `state_sharding` (a restore target; nothing computed)."""
    shapes = jax.eval_shape(method.init_state, init_rng)
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=state_sharding), shapes
    )


def _resume(
    checkpoints: TrainingCheckpoints,
    abstract: Any,
    train_batches: Any,
    writer: MetricWriter,
    notify: ReportFn,
    total_steps: int,
) -> tuple[int, Any] | None:
    """Restores the newest intact checkpoint (state and data position); reports skipped ones."""
    restored = checkpoints.restore_latest(abstract, data_iterator=train_batches)
    if restored is None:
        return None
    for skipped in restored.skipped:
        message = (
            f"Checkpoint at step {skipped.step} is corrupt ({skipped.reason}); moved it to "
            f"{skipped.moved_to} and resumed from step {restored.step}."
        )
        writer.write(skipped.step, "event", {"event": "corrupt_checkpoint_skipped", "message": message})
        notify(ProgressUpdate("message", restored.step, total_steps, message=message))
    logging.info("Resuming from checkpoint at step %d in %s.", restored.step, checkpoints.directory)
    writer.write(
        restored.step, "event", {"event": "resumed", "message": f"resumed from step {restored.step}"}
    )
    return restored.step, restored.state


def evaluate_checkpoint(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str],
    *,
    step: int | None = None,
    method: Method | None = None,
) -> EvaluationResult:
    """Restores a checkpoint of `workdir` (default: the best by `config.best_metric`) and evaluates it.

    Args:
      config: the config the run was trained with.
      workdir: the run's directory.
      step: a checkpoint step to evaluate instead of the best.
      method: the `Method` instead of `build_method(config)`.

    Returns:
      The step, its evaluation metrics, and `method.visualize` on the first evaluation batch.

    Raises:
      FileNotFoundError: if `workdir` holds no checkpoint.
    """
    workdir = os.path.abspath(os.fspath(workdir))
    method = method or build_method(config)
    mesh = sharding.make_data_mesh()
    host_eval_batch_size = sharding.per_process_batch_size(config.eval_batch_size, mesh)
    state_sharding = sharding.replicated_sharding(mesh)
    init_rng, _ = jax.random.split(jax.random.key(config.seed))
    abstract = _abstract_train_state(method, init_rng, state_sharding)
    checkpoints = _checkpoints(config, workdir)
    try:
        chosen = checkpoints.best_step() if step is None else step
        if chosen is None or chosen not in checkpoints.steps:
            raise FileNotFoundError(
                f"No checkpoint {'' if step is None else f'at step {step} '}in {checkpoints.directory} "
                f"(available: {checkpoints.steps})."
            )
        state = checkpoints.restore(chosen, abstract)
    finally:
        checkpoints.close()
    batches = sharding.global_batches(method.eval_loader(host_eval_batch_size), mesh, host_eval_batch_size)
    metrics = method.evaluate(state, batches)
    first_batch = next(iter(method.eval_loader(host_eval_batch_size)))
    return EvaluationResult(chosen, metrics, method.visualize(state, first_batch))
