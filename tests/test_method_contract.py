"""The Method contract beyond a heatmap detector: frozen inputs, phases, two optimisers, a NaN guard over
every loss, and an evaluation that owns its loop over variable-length sequences.

`TwoPartMethod` is a toy with all of these: a "generator" w and a "discriminator" v, each with its own
optimiser, fit y = x . w_true; the inputs are scaled by a frozen vector before the model sees them. In
the "warmup" phase only the generator trains, in "joint" both do. Evaluation walks whole sequences of
different lengths one frame at a time, carrying a running sum across frames.
"""

from __future__ import annotations

import base64
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from landmarkjax.configs.common import training_config
from landmarkjax.training import checkpointing, sharding
from landmarkjax.training.loop import CHECKPOINT_DIRNAME, NonFiniteLossError, place_frozen_inputs, train
from landmarkjax.training.method import (
    Method,
    Phase,
    TrainState,
    apply_gradients,
    init_optimizer_states,
    mean_over_axis,
)
from landmarkjax.training.metric_writer import read_metrics
from landmarkjax.training.phases import PhaseSchedule
from landmarkjax.training.progress import ProgressUpdate

TRUE_WEIGHTS = np.array([1.0, -2.0, 0.5], np.float32)
SCALE = np.array([2.0, 4.0, 8.0], np.float32)  # the frozen input: x is divided by it, the data multiplied
SEQUENCE_LENGTHS = (2, 5, 3)


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    with jax.default_prng_impl("rbg"):
        yield


class _Batches:
    """Deterministic batches by position, with a JSON (not bytes) checkpoint state."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self):
        rng = np.random.default_rng(self.position)
        self.position += 1
        x = rng.normal(size=(self.batch_size, 3)).astype(np.float32) * SCALE
        return {"x": x, "y": (x / SCALE) @ TRUE_WEIGHTS}

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = state["position"]


class TwoPartMethod(Method):
    name = "two_part"

    def __init__(self, config):
        super().__init__(config)
        self.optimizers = {"generator": optax.sgd(0.1), "discriminator": optax.sgd(0.05)}
        self.traced_frozen: list[bool] = []

    def init_state(self, rng):
        params = {"generator": {"w": jnp.zeros([3])}, "discriminator": {"v": jnp.zeros([3])}}
        return TrainState(jnp.zeros([], jnp.int32), params, init_optimizer_states(self.optimizers, params))

    def frozen_inputs(self):
        return {"scale": SCALE}

    def phases(self):
        return (Phase("warmup", self.config.warmup_steps), Phase("joint"))

    def train_loader(self, batch_size):
        return _Batches(batch_size)

    def train_step(self, state, batch, rng, frozen, *, phase, axis_name=None):
        del rng
        self.traced_frozen.append(isinstance(frozen["scale"], jax.core.Tracer))
        x = batch["x"] / frozen["scale"]

        def part_loss(params, name):
            weights = params["w"] if name == "generator" else params["v"]
            return jnp.mean((x @ weights - batch["y"]) ** 2)

        metrics = {}
        for name in ("generator", "discriminator") if phase == "joint" else ("generator",):
            loss, grads = jax.value_and_grad(part_loss)(state.params[name], name)
            state = apply_gradients(state, mean_over_axis(grads, axis_name), self.optimizers[name], part=name)
            metrics[f"{name}_loss"] = loss
        if "discriminator_loss" not in metrics:
            metrics["discriminator_loss"] = jnp.zeros([])
        if self.config.nan_discriminator_at:
            bad = state.step + 1 >= self.config.nan_discriminator_at
            metrics["discriminator_loss"] = jnp.where(bad, jnp.nan, metrics["discriminator_loss"])
        metrics = mean_over_axis(metrics, axis_name)
        metrics["loss"] = metrics["generator_loss"]  # finite even when the discriminator's is not
        return state.replace(step=state.step + 1), metrics

    def eval_step(self, state, batch, frozen):
        raise AssertionError("evaluate owns its loop; eval_step is not used")

    def summarize(self, outputs):
        raise AssertionError("evaluate owns its loop; summarize is not used")

    def eval_loader(self, batch_size):
        for index, length in enumerate(SEQUENCE_LENGTHS):
            rng = np.random.default_rng(1000 + index)
            x = rng.normal(size=(1, length, 3)).astype(np.float32) * SCALE
            yield {"x": x, "y": (x / SCALE) @ TRUE_WEIGHTS}

    def evaluate(self, state, frozen, context):
        @jax.jit
        def frame(carry, x, y):
            error = (x / frozen["scale"]) @ state.params["generator"]["w"] - y
            return carry + error**2

        errors, frames = [], 0
        for sequence in self.eval_loader(context.host_batch_size):
            carry = jnp.zeros([1])
            for t in range(sequence["x"].shape[1]):  # a memory carried across the frames of one video
                carry = frame(carry, sequence["x"][:, t], sequence["y"][:, t])
            errors.append(float(carry[0]))
            frames += sequence["x"].shape[1]
        return {"sum_squared_error": float(np.sum(errors)), "num_sequences": len(errors), "num_frames": frames}

    def visualize(self, state, batch, frozen):
        return np.zeros([2, 2, 3], np.uint8)


def contract_config(**overrides):
    config = training_config(
        "two_part", total_steps=6, batch_size=8, eval_batch_size=4, log_every=1, eval_every=0,
        checkpoint_every=2, best_metric=None,
    )
    config.warmup_steps = 2
    config.nan_discriminator_at = 0
    config.update(overrides)
    return config


def _restore_params(workdir, step, method):
    replicated = sharding.replicated_sharding(sharding.make_data_mesh())
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
        jax.eval_shape(method.init_state, jax.random.key(0)),
    )
    with checkpointing.TrainingCheckpoints(os.path.join(workdir, CHECKPOINT_DIRNAME), keep_last=10) as ckpts:
        return jax.tree.map(np.asarray, ckpts.restore(step, abstract).params)


def test_frozen_inputs_are_arguments_not_constants_nor_checkpointed(tmp_path):
    config = contract_config(keep_checkpoints=10)
    method = TwoPartMethod(config)
    train(method, tmp_path)
    assert method.traced_frozen and all(method.traced_frozen)  # a traced argument in every compiled step
    with open(tmp_path / CHECKPOINT_DIRNAME / "6" / "manifest" / "manifest.json") as file:
        layout = json.load(file)["layout"]
    assert not any("scale" in path for path in layout)
    assert any("generator" in path for path in layout) and any("discriminator" in path for path in layout)
    placed = place_frozen_inputs(method, sharding.make_data_mesh())
    assert placed["scale"].sharding.is_fully_replicated
    assert len(placed["scale"].sharding.device_set) == jax.device_count()


def test_phases_switch_optimisers_and_are_logged(tmp_path):
    config = contract_config(keep_checkpoints=10)
    method = TwoPartMethod(config)
    result = train(method, tmp_path)
    initial = jax.tree.map(np.asarray, method.init_state(jax.random.key(0)).params)
    at_warmup_end = _restore_params(tmp_path, 2, method)
    final = _restore_params(tmp_path, 6, method)
    # Warm-up: only the generator's optimiser ran.
    np.testing.assert_array_equal(at_warmup_end["discriminator"]["v"], initial["discriminator"]["v"])
    assert np.abs(at_warmup_end["generator"]["w"] - initial["generator"]["w"]).max() > 0.1
    # Joint: the discriminator moved too (from step 3 on).
    assert np.abs(final["discriminator"]["v"] - initial["discriminator"]["v"]).max() > 0.1
    train_records = read_metrics(tmp_path, "train")
    assert [r["phase"] for r in train_records] == ["warmup"] * 2 + ["joint"] * 4
    assert [r["discriminator_loss"] for r in train_records[:2]] == [0.0, 0.0]
    events = [(r["step"], r["phase"]) for r in read_metrics(tmp_path, "event") if r["event"] == "phase"]
    assert events == [(1, "warmup"), (3, "joint")]
    assert result["step"] == 6


def test_phase_is_restored_from_the_checkpoint(tmp_path):
    class _Stop(Exception):
        pass

    def stop_at(step):
        def report(update: ProgressUpdate):
            if update.kind == "train" and update.step == step:
                raise _Stop

        return report

    config = contract_config()
    train(TwoPartMethod(config), tmp_path / "straight")
    with pytest.raises(_Stop):
        train(TwoPartMethod(config), tmp_path / "resumed", report=stop_at(5))
    updates = []
    train(TwoPartMethod(config), tmp_path / "resumed", report=updates.append)
    resumed = [r for r in read_metrics(tmp_path / "resumed", "event") if r["event"] == "resumed"]
    assert [(r["step"], r["phase"]) for r in resumed] == [(4, "joint")]
    assert [u.phase for u in updates if u.kind == "start"] == ["joint"]
    # The checkpoint holds the phase in force (and since when) beside the data position.
    with open(tmp_path / "resumed" / CHECKPOINT_DIRNAME / "6" / "data" / "process_0-of-1.json") as file:
        saved = json.loads(base64.b64decode(json.load(file)["bytes_base64"]))
    assert saved["phase"] == {"phase": "joint", "start": 2}
    assert saved["data"] == {"json": {"position": 6}}
    straight = read_metrics(tmp_path / "straight", "train")
    again = read_metrics(tmp_path / "resumed", "train")
    assert [(r["step"], r["loss"], r["phase"]) for r in again] == [(r["step"], r["loss"], r["phase"]) for r in straight]


def test_nan_guard_watches_every_loss(tmp_path):
    config = contract_config(nan_discriminator_at=5)
    with pytest.raises(NonFiniteLossError, match=r"discriminator_loss is nan at step 5.*last good checkpoint is step 4"):
        train(TwoPartMethod(config), tmp_path)


def test_evaluation_owns_its_loop_over_variable_length_sequences(tmp_path):
    config = contract_config()
    method = TwoPartMethod(config)
    result = train(method, tmp_path)
    assert result["num_sequences"] == 3 and result["num_frames"] == sum(SEQUENCE_LENGTHS)
    weights = _restore_params(tmp_path, 6, method)["generator"]["w"]
    expected = 0.0
    for sequence in method.eval_loader(1):  # numpy reference over every frame of every sequence
        expected += float(np.sum(((sequence["x"] / SCALE) @ weights - sequence["y"]) ** 2))
    assert result["sum_squared_error"] == pytest.approx(expected, rel=1e-5)


def test_phase_schedule_validates_and_walks_the_steps():
    schedule = PhaseSchedule([Phase("a", 2), Phase("b", 3), Phase("c")])
    names = []
    for step in range(1, 10):
        schedule.advance(step)
        names.append(schedule.current.name)
    assert names == ["a", "a", "b", "b", "b", "c", "c", "c", "c"]
    restored = PhaseSchedule([Phase("a", 2), Phase("b", 3), Phase("c")])
    restored.set_state({"phase": "b", "start": 2})
    assert not restored.advance(4) and restored.advance(6) and restored.current.name == "c"
    with pytest.raises(ValueError, match="this run's phases"):
        restored.set_state({"phase": "z", "start": 0})
    with pytest.raises(ValueError, match="positive num_steps"):
        PhaseSchedule([Phase("a"), Phase("b")])
    with pytest.raises(ValueError, match="unique"):
        PhaseSchedule([Phase("a", 1), Phase("a")])


def test_optimizer_parts_must_match():
    with pytest.raises(ValueError, match="same parts"):
        init_optimizer_states({"generator": optax.sgd(0.1)}, {"generator": {}, "discriminator": {}})
