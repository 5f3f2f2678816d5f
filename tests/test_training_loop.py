"""The training loop: logging, periodic evaluation, checkpoints, kill-and-resume, corrupt checkpoints, NaN.

The loop is exercised with `LinearRegressionMethod`, a tiny method defined here (a linear model on a
Grain pipeline with per-record random noise), so every run compiles and trains in a second or two. The
supervised detector runs through the same loop in test_supervised.py and test_cli.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from absl import logging as absl_logging

from landmarkjax.configs.common import optimizer_config, training_config
from landmarkjax.training import checkpointing
from landmarkjax.training.loop import CHECKPOINT_DIRNAME, NonFiniteLossError, evaluate_checkpoint, train
from landmarkjax.training.method import Method, TrainState, mean_over_axis
from landmarkjax.training.metric_writer import read_metrics
from landmarkjax.training.optimizers import make_optimizer
from landmarkjax.training.progress import ProgressUpdate


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """XLA compiles the default threefry generator slowly on CPU (seconds per parameter initialiser);
    these tests only need some random keys, so they use the RBG generator."""
    with jax.default_prng_impl("rbg"):
        yield


NUM_FEATURES = 3
TRUE_WEIGHTS = np.array([1.5, -2.0, 0.5], np.float32)
TRUE_BIAS = 0.25


class _RegressionRecords:
    """Random-access records x ~ N(0, I), y = x . w + b (fixed per index)."""

    def __init__(self, num_records: int, seed: int):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(num_records, NUM_FEATURES)).astype(np.float32)
        self.y = (self.x @ TRUE_WEIGHTS + TRUE_BIAS).astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"x": self.x[index], "y": self.y[index]}

    def __repr__(self) -> str:
        return f"_RegressionRecords({len(self.x)})"


class _LabelNoise(grain.transforms.RandomMap):
    """Per-record random noise on y: makes every batch depend on the data iterator's position."""

    def random_map(self, element, rng: np.random.Generator):
        return {"x": element["x"], "y": element["y"] + np.float32(0.1 * rng.normal())}


class LinearRegressionMethod(Method):
    """y ~ x . w + b with squared error; `config.nan_at_step` (if > 0) makes the loss NaN from then on."""

    name = "linear_regression"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.optimizer = make_optimizer(config.optimizer, config.total_steps)

    def init_state(self, rng):
        params = {"w": 0.1 * jax.random.normal(rng, [NUM_FEATURES]), "b": jnp.zeros([])}
        return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def loss_fn(self, params, batch, step):
        residual = batch["x"] @ params["w"] + params["b"] - batch["y"]
        loss = jnp.mean(residual**2)
        if self.config.nan_at_step > 0:
            loss = jnp.where(step + 1 >= self.config.nan_at_step, jnp.nan, loss)
        return loss

    def train_step(self, state, batch, rng, frozen, *, phase, axis_name=None):
        del rng, frozen, phase
        loss, grads = jax.value_and_grad(self.loss_fn)(state.params, batch, state.step)
        grads = mean_over_axis(grads, axis_name)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, mean_over_axis({"loss": loss}, axis_name)

    def eval_step(self, state, batch, frozen):
        prediction = batch["x"] @ state.params["w"] + state.params["b"]
        return {"squared_error": (prediction - batch["y"]) ** 2}

    def summarize(self, outputs):
        return {"mse": float(np.mean(outputs["squared_error"])), "count": int(len(outputs["squared_error"]))}

    def _loader(self, num_records, seed, batch_size, train):
        return grain.DataLoader(
            data_source=_RegressionRecords(num_records, seed),
            sampler=grain.samplers.IndexSampler(
                num_records,
                shard_options=grain.sharding.ShardByJaxProcess(drop_remainder=True),
                shuffle=train,
                num_epochs=None if train else 1,
                seed=self.config.seed,
            ),
            operations=[
                *([_LabelNoise()] if train else []),
                grain.transforms.Batch(batch_size, drop_remainder=train),
            ],
            worker_count=0,
        )

    def train_loader(self, batch_size):
        return iter(self._loader(self.config.num_train, 0, batch_size, train=True))

    def eval_loader(self, batch_size):
        return self._loader(self.config.num_test, 1, batch_size, train=False)

    def visualize(self, state, batch, frozen):
        return np.zeros([4, 4, 3], np.uint8)


def regression_config(**overrides) -> ml_collections.ConfigDict:
    config = training_config(
        "linear_regression",
        total_steps=12,
        batch_size=8,
        eval_batch_size=8,
        log_every=1,
        eval_every=6,
        checkpoint_every=4,
        best_metric="mse",
    )
    config.num_train = 40
    config.num_test = 20  # 20 = 2 full batches of 8 + a padded batch of 4
    config.nan_at_step = 0
    config.optimizer = optimizer_config("sgd", learning_rate=0.05, schedule="constant", momentum=0.5)
    config.update(overrides)
    return config


def _run(config, workdir, **kwargs):
    return train(LinearRegressionMethod(config), workdir, **kwargs)


def _losses_by_step(workdir) -> dict[int, float]:
    """Train loss per step; a step logged twice (before a crash and after resuming) keeps the last."""
    return {r["step"]: r["loss"] for r in read_metrics(workdir, "train")}


def _abstract_state(method):
    """The state's shapes and dtypes, placed on device 0 (the restore target)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = jax.eval_shape(method.init_state, jax.random.key(0))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)


def _final_params(config, workdir):
    method = LinearRegressionMethod(config)
    result = evaluate_checkpoint(method, workdir, step=config.total_steps)
    with checkpointing.TrainingCheckpoints(os.path.join(workdir, CHECKPOINT_DIRNAME)) as checkpoints:
        state = checkpoints.restore(config.total_steps, _abstract_state(method))
    return result, jax.tree.map(np.asarray, state.params)


class _StopAt(Exception):
    pass


def _stop_at(step):
    def report(update: ProgressUpdate):
        if update.kind == "train" and update.step == step:
            raise _StopAt(step)

    return report


def test_run_writes_logs_checkpoints_and_learns(tmp_path):
    config = regression_config(total_steps=40, eval_every=20, checkpoint_every=10)
    updates = []
    result = _run(config, tmp_path, report=updates.append)

    # Evaluation covers the 20 test records exactly once (the padding of the last batch is masked out).
    assert result["count"] == 20 and result["step"] == 40
    # Least squares from 40 noisy steps: far below the initial error (~6.8 for these weights).
    assert result["mse"] < 0.5
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 41))
    assert [r["step"] for r in records if r["split"] == "eval"] == [20, 40]
    assert os.listdir(tmp_path / "tensorboard")
    assert [u.kind for u in updates][:2] == ["start", "train"]
    assert [u.step for u in updates if u.kind == "eval"] == [20, 40]
    # Kept: the last 2 (30, 40) plus the best by mse of the evaluated ones (20, 40).
    evals = {r["step"]: r["mse"] for r in records if r["split"] == "eval"}
    expected = {30, 40, min(evals, key=evals.get)}
    assert {int(name) for name in os.listdir(tmp_path / CHECKPOINT_DIRNAME)} == expected


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    config = regression_config()
    _run(config, tmp_path / "straight")

    with pytest.raises(_StopAt):
        # Dies at step 7: checkpoints 4 and 6 (an eval step) exist; step 7 was trained and logged, not saved.
        _run(config, tmp_path / "resumed", report=_stop_at(7))
    assert sorted(os.listdir(tmp_path / "resumed" / CHECKPOINT_DIRNAME)) == ["4", "6"]
    _run(config, tmp_path / "resumed")

    straight_losses = _losses_by_step(tmp_path / "straight")
    resumed_losses = _losses_by_step(tmp_path / "resumed")
    assert sorted(straight_losses) == list(range(1, 13))
    assert resumed_losses == straight_losses  # identical floats: same data, same order, same noise
    # Step 7 was logged before the crash and re-trained after resuming from 6: it is logged once.
    assert [r["step"] for r in read_metrics(tmp_path / "resumed", "train")] == list(range(1, 13))
    resumed_events = [r for r in read_metrics(tmp_path / "resumed", "event") if r["event"] == "resumed"]
    assert [r["step"] for r in resumed_events] == [6]

    straight_result, straight_params = _final_params(config, tmp_path / "straight")
    resumed_result, resumed_params = _final_params(config, tmp_path / "resumed")
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed_params[name], straight_params[name])
    assert resumed_result.metrics == straight_result.metrics


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax's failed read
def test_corrupt_latest_checkpoint_resumes_from_previous_and_says_so(tmp_path):
    config = regression_config()
    with pytest.raises(_StopAt):
        _run(config, tmp_path / "run", report=_stop_at(9))
    checkpoint_dir = tmp_path / "run" / CHECKPOINT_DIRNAME
    assert sorted(os.listdir(checkpoint_dir)) == ["6", "8"]
    # Damage step 8's array data (the bytes of every stored array file, as a torn write would).
    for root, _, files in os.walk(checkpoint_dir / "8" / "state"):
        for name in files:
            if os.sep + "d" in root:
                path = os.path.join(root, name)
                data = open(path, "rb").read()
                open(path, "wb").write(data[: len(data) // 2])

    messages = []
    warnings = []
    handler = _ListHandler(warnings)
    absl_logging.get_absl_logger().addHandler(handler)
    try:
        _run(
            config,
            tmp_path / "run",
            report=lambda u: messages.append(u.message) if u.kind == "message" else None,
        )
    finally:
        absl_logging.get_absl_logger().removeHandler(handler)

    assert len(messages) == 1 and "step 8 is corrupt" in messages[0] and "resumed from step 6" in messages[0]
    assert any("Resuming from checkpoint at step 6" in w for w in warnings)
    events = [
        r for r in read_metrics(tmp_path / "run", "event") if r["event"] == "corrupt_checkpoint_skipped"
    ]
    assert [e["step"] for e in events] == [8]
    quarantined = os.listdir(str(checkpoint_dir) + ".corrupt")
    assert len(quarantined) == 1 and quarantined[0].startswith("8-")

    # The resumed run re-trained 7..12 from checkpoint 6 (not the corrupt 8) and matches a clean run.
    _run(config, tmp_path / "clean")
    assert _losses_by_step(tmp_path / "run") == _losses_by_step(tmp_path / "clean")


def test_half_written_checkpoint_is_ignored(tmp_path):
    config = regression_config(total_steps=4, eval_every=0)
    _run(config, tmp_path)
    checkpoint_dir = tmp_path / CHECKPOINT_DIRNAME
    # A crash during the save of step 8 leaves Orbax's temporary directory behind.
    shutil.copytree(checkpoint_dir / "4", checkpoint_dir / "8.orbax-checkpoint-tmp-1234")
    with checkpointing.TrainingCheckpoints(checkpoint_dir) as checkpoints:
        assert checkpoints.steps == [4]
    assert sorted(os.listdir(checkpoint_dir)) == ["4"]  # removed on opening, not in the background
    # Resuming a longer run starts from step 4 and saves its own step 8.
    _run(regression_config(total_steps=8, eval_every=0), tmp_path)
    assert [r["step"] for r in read_metrics(tmp_path, "event") if r["event"] == "resumed"] == [4]
    assert sorted(os.listdir(checkpoint_dir)) == ["4", "8"]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = regression_config(nan_at_step=6)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 6.*last good checkpoint is step 4"):
        # Step 6 would be saved (an eval step): the check runs before, so nothing NaN is written.
        _run(config, tmp_path)
    with checkpointing.TrainingCheckpoints(tmp_path / CHECKPOINT_DIRNAME) as checkpoints:
        assert checkpoints.steps == [4]
        method = LinearRegressionMethod(config)
        state = checkpoints.restore(4, _abstract_state(method))
    assert int(state.step) == 4
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state.params))


def test_finished_run_reevaluates_instead_of_training(tmp_path):
    config = regression_config(total_steps=4, eval_every=0)
    first = _run(config, tmp_path)
    second = _run(config, tmp_path)
    assert second == first
    assert [r["step"] for r in read_metrics(tmp_path, "train")] == [1, 2, 3, 4]


def test_evaluate_checkpoint_picks_the_best(tmp_path):
    config = regression_config(total_steps=12, eval_every=4, checkpoint_every=4, keep_checkpoints=1)
    _run(config, tmp_path)
    evals = {r["step"]: r["mse"] for r in read_metrics(tmp_path, "eval")}
    best = min(evals, key=evals.get)
    result = evaluate_checkpoint(LinearRegressionMethod(config), tmp_path)
    assert result.step == best
    assert result.metrics["mse"] == pytest.approx(evals[best], rel=1e-6)
    assert result.image.dtype == np.uint8


def test_evaluate_checkpoint_without_checkpoints_raises(tmp_path):
    config = regression_config()
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        evaluate_checkpoint(LinearRegressionMethod(config), tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 6}, "multiple of the number of devices"),
        ({"total_steps": 0}, "total_steps must be positive"),
        ({"eval_every": -1}, "eval_every must be >= 0"),
    ],
)
def test_bad_config_is_rejected(tmp_path, overrides, message):
    config = regression_config(**overrides)
    with pytest.raises(ValueError, match=message):
        _run(config, tmp_path)


def test_metrics_file_is_json_lines(tmp_path):
    config = regression_config(total_steps=2, eval_every=0)
    _run(config, tmp_path)
    with open(tmp_path / "metrics.jsonl") as file:
        for line in file:
            record = json.loads(line)
            assert {"step", "split", "time"} <= set(record)


class _ListHandler(logging.Handler):
    def __init__(self, sink):
        super().__init__()
        self.sink = sink

    def emit(self, record):
        self.sink.append(record.getMessage())


def test_early_stopping_ends_the_run_once_the_best_metric_stops_improving(tmp_path):
    # A learning rate of 0: every evaluation equals the first, so the best never improves after step 2.
    config = regression_config(total_steps=20, eval_every=2, checkpoint_every=0, early_stopping_patience=2)
    config.optimizer.learning_rate = 0.0
    result = _run(config, tmp_path / "flat")
    assert result["step"] == 6  # evaluations at 2 (the best), 4 and 6 (two without improvement)
    assert max(r["step"] for r in read_metrics(tmp_path / "flat", "train")) == 6
    events = [r for r in read_metrics(tmp_path / "flat", "event") if r["event"] == "early_stopping"]
    assert [r["step"] for r in events] == [6] and "mse" in events[0]["message"]
    best = min(r["mse"] for r in read_metrics(tmp_path / "flat", "eval"))
    kept = evaluate_checkpoint(LinearRegressionMethod(config), tmp_path / "flat")  # the best checkpoint is kept
    assert kept.metrics["mse"] == pytest.approx(best, rel=1e-6)

    # Re-running the stopped run trains no further: the streak is recounted from its logged evaluations.
    again = _run(config, tmp_path / "flat")
    assert again["step"] == 6 and again["mse"] == pytest.approx(result["mse"], rel=1e-6)
    assert max(r["step"] for r in read_metrics(tmp_path / "flat", "train")) == 6

    # A run that keeps improving trains to the end with the same patience.
    learning = regression_config(total_steps=12, eval_every=2, checkpoint_every=0, early_stopping_patience=2)
    assert _run(learning, tmp_path / "learning")["step"] == 12


def test_a_resumed_run_keeps_its_early_stopping_streak(tmp_path):
    # Interrupted after step 4 (evaluations at 2, the best, and 4, one without improvement), then resumed
    # with 20 steps: one more flat evaluation (6) ends it. Counting afresh would stop at 10.
    interrupted = regression_config(total_steps=4, eval_every=2, checkpoint_every=0, early_stopping_patience=2)
    interrupted.optimizer.learning_rate = 0.0
    assert _run(interrupted, tmp_path)["step"] == 4
    resumed = regression_config(total_steps=20, eval_every=2, checkpoint_every=0, early_stopping_patience=2)
    resumed.optimizer.learning_rate = 0.0
    assert _run(resumed, tmp_path)["step"] == 6
    assert [r["step"] for r in read_metrics(tmp_path, "event") if r["event"] == "early_stopping"] == [6]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"early_stopping_patience": -1}, "early_stopping_patience must be >= 0"),
        ({"early_stopping_patience": 2, "best_metric": None}, "needs config.best_metric"),
        ({"early_stopping_patience": 2, "eval_every": 0}, "positive config.eval_every"),
    ],
)
def test_bad_early_stopping_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _run(regression_config(**overrides), tmp_path)


def test_init_from_continues_another_runs_checkpoint_exactly(tmp_path):
    config = regression_config(total_steps=12, eval_every=4, checkpoint_every=4, keep_checkpoints=5)
    _run(config, tmp_path / "source")
    _, expected = _final_params(config, tmp_path / "source")

    # Started from the source's step 8 (state, data position), the 4 remaining steps are the source's own.
    forked = regression_config(
        total_steps=12, eval_every=4, checkpoint_every=4, init_from=str(tmp_path / "source"), init_step=8
    )
    _run(forked, tmp_path / "fork")
    _, params = _final_params(forked, tmp_path / "fork")
    for name in ("w", "b"):
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-6)
    assert [r["step"] for r in read_metrics(tmp_path / "fork", "train")] == [9, 10, 11, 12]
    started = [r for r in read_metrics(tmp_path / "fork", "event") if r["event"] == "initialised"]
    assert [r["step"] for r in started] == [8]

    # Without init_step: the source's best checkpoint by best_metric.
    evals = {r["step"]: r["mse"] for r in read_metrics(tmp_path / "source", "eval")}
    best = min(evals, key=evals.get)
    longer = regression_config(total_steps=16, eval_every=4, init_from=str(tmp_path / "source"))
    _run(longer, tmp_path / "best")
    assert [r["step"] for r in read_metrics(tmp_path / "best", "event") if r["event"] == "initialised"] == [best]

    with pytest.raises(FileNotFoundError, match="init_from"):
        _run(regression_config(init_from=str(tmp_path / "nothing")), tmp_path / "a")
    with pytest.raises(ValueError, match="nothing would be trained"):
        _run(regression_config(total_steps=8, init_from=str(tmp_path / "source"), init_step=8), tmp_path / "b")
