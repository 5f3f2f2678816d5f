"""The method-agnostic training loop: `train(method, workdir)` and `evaluate_checkpoint(method, workdir)`.

Data parallel over every device of every process: the state is replicated, each process loads its
share of the global batch, and one jitted step per phase (explicit shardings, the state donated, the
frozen inputs passed as an argument) runs on the global arrays. The run writes its resolved config
(`config.json`), checkpoints periodically and at the end (state + data position + phase), resumes from
the newest intact checkpoint automatically (dropping logged records newer than it), evaluates
periodically, and logs metrics as JSON lines and TensorBoard events in `workdir`. A non-finite loss (any
metric named "loss" or "*_loss") stops the run before anything is saved from the bad state.

Two settings chain runs: `config.early_stopping_patience` = p > 0 ends a run once `config.best_metric` has
not improved over p evaluations in a row (its best checkpoint is kept; a resumed run recounts the streak
from its logged evaluations, so re-running a stopped run trains no further); `config.init_from` = another run's
workdir starts a fresh run from that run's best checkpoint (or `config.init_step`): state, data position
and phase, as if resuming it. SBR's protocol uses both: stage 1 until the validation NME stops improving,
then several stage-2 arms from that one checkpoint (`landmarkjax/configs/sbr.py`).

The loop knows methods only through `landmarkjax.training.method.Method`; building one from a config is
`landmarkjax.methods.build_method` (and `landmarkjax.runs.train_and_evaluate` does both).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from landmarkjax.training import sharding
from landmarkjax.training.checkpointing import TrainingCheckpoints
from landmarkjax.training.method import EvalContext, Method, is_loss_name
from landmarkjax.training.metric_writer import MetricWriter, read_metrics
from landmarkjax.training.phases import PhaseSchedule, TrainData
from landmarkjax.training.progress import ProgressUpdate, ReportFn
from landmarkjax.training.run_config import save_config

__all__ = [
    "CHECKPOINT_DIRNAME",
    "NonFiniteLossError",
    "EvaluationResult",
    "train",
    "evaluate_checkpoint",
    "restore_checkpoint",
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
    patience = config.get("early_stopping_patience") or 0
    if patience < 0:
        raise ValueError(f"config.early_stopping_patience must be >= 0 (0 = off); got {patience}.")
    if patience and (config.get("best_metric") is None or config.eval_every <= 0):
        raise ValueError(
            "config.early_stopping_patience needs config.best_metric (what must improve) and a positive "
            f"config.eval_every; got best_metric={config.get('best_metric')!r}, eval_every={config.eval_every}."
        )


class _EarlyStopping:
    """Counts evaluations without an improvement of the best metric (`config.early_stopping_patience`)."""

    def __init__(self, patience: int, metric: str | None, mode: str):
        self.patience, self.metric, self.mode = patience, metric, mode
        self.best: float | None = None
        self.stale = 0

    def should_stop(self, metrics: dict[str, float]) -> bool:
        """Records one evaluation; True once `patience` evaluations in a row have not improved the best."""
        if not self.patience:
            return False
        if self.metric not in metrics:
            raise KeyError(
                f"config.best_metric {self.metric!r} is not among the evaluation metrics {sorted(metrics)}."
            )
        value = float(metrics[self.metric])
        improved = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if improved:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return self.exhausted

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Recounts the streak from the evaluations a resumed run logged before its checkpoint (they live in
        process 0's metrics file only, so process 0 counts and every process receives its count)."""
        best, stale = np.nan, 0
        if jax.process_index() == 0:
            for record in records:
                self.should_stop(record)
            best = np.nan if self.best is None else self.best
            stale = self.stale
        best, stale = multihost_utils.broadcast_one_to_all(np.asarray([best, stale], np.float64))
        self.best = None if np.isnan(best) else float(best)
        self.stale = int(stale)

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.stale >= self.patience


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
        """Means over the pending steps (at least one) and steps/s.

        Raises:
          NonFiniteLossError: if any loss metric ("loss", "*_loss") of a pending step is NaN or infinite.
        """
        steps = [step for step, _ in self._pending]
        values = jax.device_get([metrics for _, metrics in self._pending])
        for step, metrics in zip(steps, values, strict=True):
            bad = {name: float(value) for name, value in metrics.items() if is_loss_name(name)}
            bad = {name: value for name, value in bad.items() if not np.isfinite(value)}
            if bad:
                saved = (
                    f"the last good checkpoint is step {last_good_step} in {checkpoint_dir}"
                    if last_good_step is not None
                    else "no checkpoint was saved yet"
                )
                described = ", ".join(f"{name} is {value}" for name, value in sorted(bad.items()))
                raise NonFiniteLossError(
                    f"Training {described} at step {step}; stopping the run ({saved}, left intact)."
                )
        now = time.perf_counter()
        rate = len(steps) / max(now - self._clock, 1e-9)
        self._clock = now
        self._pending = []
        means = {name: float(np.mean([m[name] for m in values])) for name in values[0]}
        return means, rate


def place_frozen_inputs(method: Method, mesh: jax.sharding.Mesh) -> Any:
    """`method.frozen_inputs()` as global arrays replicated over `mesh` (every process holds the values)."""
    replicated = sharding.replicated_sharding(mesh)

    def place(leaf: Any) -> jax.Array:
        value = np.asarray(leaf)
        return jax.make_array_from_callback(value.shape, replicated, lambda index: value[index])

    return jax.tree.map(place, method.frozen_inputs())


class _StepFunctions:
    """One jitted data-parallel train step per phase, compiled when the phase first runs."""

    def __init__(self, method: Method, mesh: jax.sharding.Mesh, state_sharding: Any):
        self._method = method
        self._mesh = mesh
        self._state_sharding = state_sharding
        self._compiled: dict[str, Callable[..., Any]] = {}

    def __call__(self, phase: str) -> Callable[..., Any]:
        if phase not in self._compiled:
            self._compiled[phase] = sharding.jit_data_parallel(
                functools.partial(self._method.train_step, phase=phase), self._mesh, self._state_sharding
            )
        return self._compiled[phase]


def train(method: Method, workdir: str | os.PathLike[str], *, report: ReportFn | None = None) -> dict[str, float]:
    """Trains `method` for `method.config.total_steps` steps in `workdir` and evaluates it.

    Writes the resolved config to `<workdir>/config.json`, then resumes from the newest intact
    checkpoint in `<workdir>/checkpoints` if there is one (a corrupt newer one is moved aside and
    reported; logged records after the restored step are dropped). Every process of a multi-process run
    calls this with the same arguments (after `maybe_initialize_distributed`).

    Args:
      method: the method to train; its `config` holds the loop's settings (`landmarkjax/configs/`).
      workdir: directory for the config copy, checkpoints, `metrics.jsonl` and TensorBoard events.
      report: optional callback receiving `ProgressUpdate`s (e.g. `TqdmProgress()`); the loop itself
        never prints.

    Returns:
      The final evaluation metrics, plus "step".

    Raises:
      NonFiniteLossError: a loss became NaN/inf; nothing was saved after the last good checkpoint.
      ValueError: on bad loop settings (before any step).
    """
    config = method.config
    _validate(config)
    workdir = os.path.abspath(os.fspath(workdir))
    notify = report or (lambda update: None)
    mesh = sharding.make_data_mesh()
    host_batch_size = sharding.per_process_batch_size(config.batch_size, mesh)
    context = EvalContext(mesh, sharding.per_process_batch_size(config.eval_batch_size, mesh))
    state_sharding = sharding.replicated_sharding(mesh)
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    schedule = PhaseSchedule(method.phases())
    save_config(config, workdir)

    data = TrainData(method.train_loader(host_batch_size), schedule)
    frozen = place_frozen_inputs(method, mesh)
    writer = MetricWriter(workdir)
    checkpoints = _checkpoints(config, workdir)
    try:
        abstract = _abstract_train_state(method, init_rng, state_sharding)
        restored = _resume(checkpoints, abstract, data, writer, notify, config.total_steps)
        if restored is None and config.get("init_from"):
            restored = _start_from(config, abstract, data, writer, notify)
        if restored is None:
            start_step, state = 0, jax.jit(method.init_state, out_shardings=state_sharding)(init_rng)
        else:
            start_step, state = restored
        step_functions = _StepFunctions(method, mesh, state_sharding)

        def evaluate(step: int, state: Any) -> dict[str, float]:
            metrics = method.evaluate(state, frozen, context)
            writer.write(step, "eval", metrics)
            notify(ProgressUpdate("eval", step, config.total_steps, metrics))
            return metrics

        notify(ProgressUpdate("start", start_step, config.total_steps, phase=schedule.current.name))
        pending = _TrainMetrics()
        last_good_step = checkpoints.latest_step
        eval_metrics: dict[str, float] | None = None
        stopping = _EarlyStopping(
            config.get("early_stopping_patience") or 0, config.get("best_metric"), config.get("best_mode", "min")
        )
        if restored is not None and stopping.patience:
            stopping.replay(_logged_evaluations(writer, start_step))
            if stopping.exhausted:  # this run already stopped early: report its last state, train no further
                return {"step": start_step, **evaluate(start_step, state)}
        for step in range(start_step + 1, config.total_steps + 1):
            started = schedule.advance(step)
            if len(schedule.phases) > 1 and (started or step == 1):
                _announce_phase(schedule, step, writer, notify, config.total_steps)
            phase = schedule.current.name
            batch = sharding.host_local_to_global(method.next_batch(data.data, phase), mesh)
            state, metrics = step_functions(phase)(state, batch, jax.random.fold_in(train_rng, step), frozen)
            pending.add(step, metrics)
            final = step == config.total_steps
            do_eval = final or _is_multiple(step, config.eval_every)
            do_save = final or do_eval or _is_multiple(step, config.checkpoint_every)
            if do_save or _is_multiple(step, config.log_every):
                means, rate = pending.flush(last_good_step, checkpoints.directory)
                writer.write(step, "train", {**means, "steps_per_second": rate, "phase": phase})
                notify(
                    ProgressUpdate("train", step, config.total_steps, means, steps_per_second=rate, phase=phase)
                )
            eval_metrics = evaluate(step, state) if do_eval else None
            if do_save:
                checkpoints.save(step, state, data_iterator=data, metrics=eval_metrics)
                last_good_step = step
            if do_eval or do_save:
                pending.restart_clock()
            if do_eval and not final and stopping.should_stop(eval_metrics):
                message = (
                    f"Early stopping at step {step}: {config.best_metric} has not improved on {stopping.best:.6g} "
                    f"over {stopping.patience} evaluations; the best checkpoint is kept."
                )
                writer.write(step, "event", {"event": "early_stopping", "message": message})
                notify(ProgressUpdate("message", step, config.total_steps, message=message))
                return {"step": step, **eval_metrics}
        if eval_metrics is None:
            # Resumed a finished run: nothing trained, so report the final state's metrics again.
            eval_metrics = evaluate(start_step, state)
        return {"step": max(start_step, config.total_steps), **eval_metrics}
    finally:
        checkpoints.close()
        writer.close()


def _logged_evaluations(writer: MetricWriter, up_to_step: int) -> list[dict[str, Any]]:
    """The evaluation records of this run's metrics file up to `up_to_step` (none off process 0)."""
    if not writer.enabled or not os.path.exists(writer.path):
        return []
    return [record for record in read_metrics(os.path.dirname(writer.path), "eval") if record["step"] <= up_to_step]


def _announce_phase(
    schedule: PhaseSchedule, step: int, writer: MetricWriter, notify: ReportFn, total_steps: int
) -> None:
    """Logs the start of the phase in force at `step` (an event record and a progress message)."""
    name = schedule.current.name
    message = f"Phase {name!r} starts at step {step}."
    writer.write(step, "event", {"event": "phase", "phase": name, "message": message})
    notify(ProgressUpdate("message", step - 1, total_steps, message=message, phase=name))


def _start_from(
    config: ml_collections.ConfigDict, abstract: Any, data: TrainData, writer: MetricWriter, notify: ReportFn
) -> tuple[int, Any]:
    """Restores `config.init_from`'s best checkpoint (by this config's `best_metric`) or `config.init_step`:
    the state, data position and phase, as `_resume` would restore that run.

    Raises:
      FileNotFoundError: that workdir has no such checkpoint.
      ValueError: the checkpoint's step is not below `config.total_steps` (nothing would be left to train).
    """
    source = os.path.abspath(os.fspath(config.init_from))
    with _checkpoints(config, source) as checkpoints:
        step = checkpoints.best_step() if config.get("init_step") is None else config.init_step
        if step is None or step not in checkpoints.steps:
            raise FileNotFoundError(
                f"config.init_from={source!r}: no checkpoint {'' if config.get('init_step') is None else step} "
                f"in {checkpoints.directory} (available: {checkpoints.steps})."
            )
        if step >= config.total_steps:
            raise ValueError(
                f"config.init_from: its checkpoint is at step {step}, but this run ends at total_steps="
                f"{config.total_steps}; nothing would be trained."
            )
        state = checkpoints.restore(step, abstract, data_iterator=data)
    message = f"initialised from step {step} of {source}"
    logging.info("%s.", message)
    writer.write(step, "event", {"event": "initialised", "message": message, "phase": data.schedule.current.name})
    notify(ProgressUpdate("message", step, config.total_steps, message=message))
    return step, state


def _abstract_train_state(method: Method, init_rng: jax.Array, state_sharding: Any) -> Any:
    """The train state's shapes and dtypes with `state_sharding` (a restore target; nothing computed)."""
    shapes = jax.eval_shape(method.init_state, init_rng)
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=state_sharding), shapes
    )


def _resume(
    checkpoints: TrainingCheckpoints,
    abstract: Any,
    data: TrainData,
    writer: MetricWriter,
    notify: ReportFn,
    total_steps: int,
) -> tuple[int, Any] | None:
    """Restores the newest intact checkpoint (state, data position, phase); reports skipped ones."""
    restored = checkpoints.restore_latest(abstract, data_iterator=data)
    if restored is None:
        writer.drop_after(0)
        return None
    writer.drop_after(restored.step)
    for skipped in restored.skipped:
        message = (
            f"Checkpoint at step {skipped.step} is corrupt ({skipped.reason}); moved it to "
            f"{skipped.moved_to} and resumed from step {restored.step}."
        )
        writer.write(skipped.step, "event", {"event": "corrupt_checkpoint_skipped", "message": message})
        notify(ProgressUpdate("message", restored.step, total_steps, message=message))
    logging.info("Resuming from checkpoint at step %d in %s.", restored.step, checkpoints.directory)
    phase = data.schedule.current.name
    writer.write(
        restored.step,
        "event",
        {"event": "resumed", "message": f"resumed from step {restored.step} in phase {phase!r}", "phase": phase},
    )
    return restored.step, restored.state


def restore_checkpoint(
    method: Method, workdir: str | os.PathLike[str], *, step: int | None = None
) -> tuple[int, Any]:
    """Restores one checkpoint of a run (default: the best by `config.best_metric`), replicated on the mesh.

    Args:
      method: the method the run trained (its config names the checkpoint settings).
      workdir: the run's directory.
      step: a checkpoint step instead of the best.

    Returns:
      `(step, state)`.

    Raises:
      FileNotFoundError: if `workdir` holds no such checkpoint.
    """
    config = method.config
    workdir = os.path.abspath(os.fspath(workdir))
    mesh = sharding.make_data_mesh()
    init_rng, _ = jax.random.split(jax.random.key(config.seed))
    abstract = _abstract_train_state(method, init_rng, sharding.replicated_sharding(mesh))
    with _checkpoints(config, workdir) as checkpoints:
        chosen = checkpoints.best_step() if step is None else step
        if chosen is None or chosen not in checkpoints.steps:
            raise FileNotFoundError(
                f"No checkpoint {'' if step is None else f'at step {step} '}in {checkpoints.directory} "
                f"(available: {checkpoints.steps})."
            )
        return chosen, checkpoints.restore(chosen, abstract)


def evaluate_checkpoint(
    method: Method, workdir: str | os.PathLike[str], *, step: int | None = None
) -> EvaluationResult:
    """Restores a checkpoint of `workdir` (default: the best by `config.best_metric`) and evaluates it.

    Args:
      method: the method the run trained.
      workdir: the run's directory.
      step: a checkpoint step to evaluate instead of the best.

    Returns:
      The step, its evaluation metrics, and `method.visualize` on the first evaluation batch.

    Raises:
      FileNotFoundError: if `workdir` holds no checkpoint.
    """
    chosen, state = restore_checkpoint(method, workdir, step=step)
    mesh = sharding.make_data_mesh()
    context = EvalContext(mesh, sharding.per_process_batch_size(method.config.eval_batch_size, mesh))
    frozen = place_frozen_inputs(method, mesh)
    metrics = method.evaluate(state, frozen, context)
    first_batch = next(iter(method.eval_loader(context.host_batch_size)))
    return EvaluationResult(chosen, metrics, method.visualize(state, first_batch, frozen))
