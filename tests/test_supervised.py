"""The supervised CPM method: targets, landmark read-out, drawing, and a run through the training loop."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.configs.supervised import get_config
from landmarkjax.metrics import nme
from landmarkjax.data.visualize import draw_landmarks
from landmarkjax.losses import heatmap_targets
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.ops.heatmaps import locate_landmarks
from landmarkjax.runs import evaluate_run, train_and_evaluate
from landmarkjax.training.loop import CHECKPOINT_DIRNAME
from landmarkjax.training.method import DEFAULT_PHASE
from landmarkjax.training.metric_writer import read_metrics

from _fixtures import tiny_detector_config


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """XLA compiles the default threefry generator slowly on CPU (seconds per parameter initialiser);
    these tests only need some random keys, so they use the RBG generator."""
    with jax.default_prng_impl("rbg"):
        yield


def numpy_targets(landmarks, visibility, size, stride, sigma, threshold):
    """SBR's targets from the definition: Gaussian in heatmap cells, thresholded, background = 1 - max."""
    batch, num_points, _ = landmarks.shape
    maps = np.zeros((batch, size, size, num_points + 1))
    rows, cols = np.mgrid[0:size, 0:size]
    for b in range(batch):
        for k in range(num_points):
            # Cell j of a stride-s grid is centred on image pixel j * s + (s - 1) / 2.
            cx, cy = (landmarks[b, k] - (stride - 1) / 2) / stride
            gaussian = np.exp(-((cols - cx) ** 2 + (rows - cy) ** 2) / (2 * sigma**2))
            gaussian[gaussian < threshold] = 0
            maps[b, :, :, k] = gaussian * visibility[b, k]
        maps[b, :, :, -1] = 1 - maps[b, :, :, :-1].max(-1)
    return maps


def test_heatmap_targets_match_the_definition():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0, 31, (2, 5, 2)).astype(np.float32)
    visibility = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1]], np.float32)
    targets, weights = heatmap_targets(
        landmarks, visibility, height=8, width=8, stride=4, sigma=1.0, threshold=0.01, with_background=True
    )
    expected = numpy_targets(landmarks, visibility, 8, 4, 1.0, 0.01)
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_array_equal(weights, np.concatenate([visibility, np.ones((2, 1))], axis=1))
    without, weights = heatmap_targets(
        landmarks, visibility, height=8, width=8, stride=4, sigma=1.0, threshold=0.01, with_background=False
    )
    np.testing.assert_allclose(without, expected[..., :-1], atol=1e-6)
    np.testing.assert_array_equal(weights, visibility)


def test_local_soft_argmax_locator_recovers_points_from_their_target_heatmaps():
    rng = np.random.default_rng(1)
    stride = 4
    # Keep the points 3 cells from the border, where the Gaussian is not cut off.
    landmarks = rng.uniform(3 * stride + 1.5, 13 * stride - 1.5, (3, 6, 2)).astype(np.float32)
    targets, _ = heatmap_targets(
        landmarks,
        np.ones((3, 6)),
        height=16,
        width=16,
        stride=stride,
        sigma=1.0,
        threshold=0.0,
        with_background=True,
    )
    located = locate_landmarks(targets, 6, stride, locator="local_soft_argmax", radius=3)
    assert located.shape == (3, 6, 2)
    np.testing.assert_allclose(located, landmarks, atol=0.1 * stride)


def test_soft_argmax_locator_returns_the_mean_of_the_softmax_in_image_pixels():
    stride, temperature = 4, 0.05
    rng = np.random.default_rng(2)
    landmarks = rng.uniform(3 * stride + 1.5, 13 * stride - 1.5, (2, 5, 2)).astype(np.float32)
    cells = (landmarks - (stride - 1) / 2) / stride
    rows, cols = np.mgrid[0:16, 0:16]
    squared = (cols[None, :, :, None] - cells[:, None, None, :, 0]) ** 2 + (
        rows[None, :, :, None] - cells[:, None, None, :, 1]
    ) ** 2
    # Logits whose softmax at `temperature` is a Gaussian: its mean is the point (away from the border).
    logits = -temperature * squared / 2.0
    located = locate_landmarks(
        logits.astype(np.float32), 5, stride, locator="soft_argmax", temperature=temperature
    )
    np.testing.assert_allclose(located, landmarks, atol=1e-2)
    with pytest.raises(ValueError, match="locator must be one of"):
        locate_landmarks(logits, 5, stride, locator="argmax")


def test_draw_landmarks_marks_the_points():
    images = np.zeros((3, 10, 12, 3), np.float32)
    predicted = np.array([[[2.0, 3.0]], [[5.0, 5.0]], [[0.0, 9.0]]])
    target = np.array([[[8.0, 8.0]], [[1.0, 1.0]], [[11.0, 0.0]]])
    sheet = draw_landmarks(images, predicted, target, ncols=2, scale=3)
    assert sheet.shape == (2 * 10 * 3, 2 * 12 * 3, 3) and sheet.dtype == np.uint8
    # Image 0's predicted point (x=2, y=3) is red at the centre of its upscaled pixel; its target green.
    assert tuple(sheet[int(3.5 * 3), int(2.5 * 3)]) == (255, 40, 40)
    assert tuple(sheet[int(8.5 * 3), int(8.5 * 3)]) == (40, 220, 40)
    # Image 3 of a 2-column sheet is empty.
    assert sheet[30:, 36:].max() == 0


def tiny_config():
    config = tiny_detector_config(get_config(), total_steps=4, batch_size=8, log_every=2, checkpoint_every=2)
    config.data.source_size = 48
    config.data.num_train = 16
    config.data.num_test = 12
    return config


def test_method_is_registered_and_validates_its_config():
    assert "supervised" in available_methods()
    assert isinstance(build_method(tiny_config()), SupervisedMethod)
    config = tiny_config()
    config.data.image_size = 30
    with pytest.raises(ValueError, match="divisible by the detector's stride 4"):
        SupervisedMethod(config)
    config = tiny_config()
    config.eval.locator = "hard"
    with pytest.raises(ValueError, match="eval.locator must be one of"):
        SupervisedMethod(config)
    config = tiny_config()
    config.loss.coord_locator = "hard"
    with pytest.raises(ValueError, match="loss.coord_locator must be one of"):
        SupervisedMethod(config)
    config = tiny_config()
    config.method = "no_such_method"
    with pytest.raises(ValueError, match="config.method must be one of"):
        build_method(config)


def test_batches_have_the_contracted_layout():
    method = SupervisedMethod(tiny_config())
    batch = next(method.train_loader(4))
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["landmarks"].shape == (4, 68, 2) and batch["visibility"].shape == (4, 68)
    eval_batches = list(method.eval_loader(8))
    assert [len(b["image"]) for b in eval_batches] == [8, 4]  # one pass, last batch partial


def test_training_run_end_to_end(tmp_path):
    config = tiny_config()
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 4 and result["num_examples"] == 12
    assert set(result) >= {"nme", "auc@0.08", "failure_rate@0.08"}
    assert np.isfinite(result["nme"]) and 0 <= result["auc@0.08"] <= 1
    train = read_metrics(tmp_path, "train")
    assert [r["step"] for r in train] == [2, 4]
    assert all(np.isfinite(r["heatmap_loss"]) and np.isfinite(r["coord_loss"]) for r in train)
    assert sorted(os.listdir(tmp_path / CHECKPOINT_DIRNAME)) == ["2", "4"]

    evaluation = evaluate_run(tmp_path, config=config)
    assert evaluation.step == 4
    assert evaluation.metrics["nme"] == pytest.approx(result["nme"], rel=1e-5)
    assert evaluation.image.dtype == np.uint8 and evaluation.image.shape == (32 * 3, 4 * 32 * 3, 3)


@pytest.mark.slow
def test_detector_learns_on_synthetic_faces(tmp_path):
    """A shortened default run: the detector must get well below the NME of a constant guess."""
    config = get_config()
    config.total_steps = 200
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.num_train = 256
    config.data.num_test = 64
    result = train_and_evaluate(config, tmp_path)
    method = SupervisedMethod(config)
    faces = list(method.eval_loader(64))[0]
    # The reference: predict every face's landmarks as the mean test shape.
    mean_shape = np.broadcast_to(faces["landmarks"].mean(0), faces["landmarks"].shape)
    mean_shape_nme = float(np.mean(nme(mean_shape, faces["landmarks"], "inter_ocular")))
    assert result["nme"] < 0.6 * mean_shape_nme  # about 0.14 on these faces
    assert result["nme"] < 0.1


@pytest.mark.slow
def test_train_step_metrics_and_state():
    config = tiny_config()
    method = SupervisedMethod(config)
    state = jax.jit(method.init_state)(jax.random.key(0))
    batch = next(method.train_loader(8))
    step = jax.jit(functools.partial(method.train_step, phase=DEFAULT_PHASE))
    new_state, metrics = step(state, batch, jax.random.key(1), {})
    assert int(new_state.step) == 1
    assert set(metrics) == {"loss", "heatmap_loss", "coord_loss", "grad_norm"}
    total = (
        config.loss.heatmap_weight * metrics["heatmap_loss"]
        + config.loss.coord_weight * metrics["coord_loss"]
    )
    np.testing.assert_allclose(metrics["loss"], total, rtol=1e-6)
    assert float(metrics["coord_loss"]) > 0
    params_moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new_state.params, state.params)
    assert max(jax.tree.leaves(params_moved)) > 0
