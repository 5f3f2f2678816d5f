"""The IMM method: config checks, the bias-free regressor, running averages, frozen VGG, end-to-end runs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from landmarkjax.configs.imm import get_config
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.imm import IMMMethod, apply_landmark_regressor, fit_landmark_regressor
from landmarkjax.metrics import nme
from landmarkjax.runs import train_and_evaluate
from landmarkjax.training.loop import CHECKPOINT_DIRNAME
from landmarkjax.training.metric_writer import read_metrics


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    with jax.default_prng_impl("rbg"):
        yield


def _write_vgg16_npz(path, seed=0):
    """A torchvision-layout VGG-16 state dict (`features.N.weight` OIHW) with small random weights."""
    rng = np.random.default_rng(seed)
    state, position, channels = {}, 0, 3
    for width, count in zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)):
        for _ in range(count):
            state[f"features.{position}.weight"] = rng.normal(0, 0.05, (width, channels, 3, 3)).astype(np.float32)
            state[f"features.{position}.bias"] = np.zeros(width, np.float32)
            position, channels = position + 2, width
        position += 1
    np.savez(path, **state)


def tiny_config(perceptual="pixel"):
    config = get_config()
    config.total_steps = 2
    config.batch_size = 4
    config.eval_batch_size = 4
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.image_size = 32
    config.data.source_size = 48
    config.data.num_train = 8
    config.data.num_test = 4
    config.imm.num_landmarks = 4
    config.imm.perceptual = perceptual
    config.imm.perceptual_layers = ("conv1_2",)  # one VGG layer: the tests stay quick to compile
    config.model.encoder_widths = (4, 8)
    config.model.render_width = 8
    config.model.render_min_width = 4
    config.eval.num_regression_faces = 8
    config.eval.num_visualized = 2
    return config


def test_variants_and_registration():
    assert "imm" in available_methods()
    assert get_config().imm.num_landmarks == 10 and get_config("k30").imm.num_landmarks == 30
    paper = get_config("paper")
    assert paper.data.image_size == 128 and paper.optimizer.learning_rate == 1e-3
    assert paper.optimizer.grad_clip_norm == 1.0 and tuple(paper.model.encoder_widths) == (32, 64, 128, 256)
    with pytest.raises(ValueError, match="variant"):
        get_config("k50")


def test_bad_input_gets_clear_errors(tmp_path):
    config = tiny_config()
    config.imm.num_landmarks = 0
    with pytest.raises(ValueError, match=r"imm.num_landmarks \(K\) must be an integer >= 1"):
        build_method(config)
    config = tiny_config("vgg_file")
    config.imm.vgg_weights_path = str(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        build_method(config)
    config.imm.vgg_weights_path = None
    with pytest.raises(ValueError, match="vgg_weights_path"):
        build_method(config)
    # A VGG-16 file read as VGG-19.
    _write_vgg16_npz(tmp_path / "vgg16.npz")
    config = tiny_config("vgg_file")
    config.imm.vgg_weights_path = str(tmp_path / "vgg16.npz")
    config.imm.vgg_depth = 19
    with pytest.raises(ValueError, match="depth=19"):
        build_method(config)
    config.imm.vgg_depth = 16
    assert build_method(config).frozen_inputs()["vgg"]["params"]["conv1_2"]["kernel"].shape == (3, 3, 64, 64)
    for field, value, message in [
        ("perceptual", "lpips", "imm.perceptual"),
        ("pairs", "flow", "imm.pairs"),
        ("perceptual_layers", ("conv5_3",), "perceptual_layers"),
    ]:
        config = tiny_config("vgg_random")
        config.imm[field] = value
        with pytest.raises(ValueError, match=message):
            build_method(config)


def test_regressor_matches_lstsq_and_recovers_an_exact_linear_map():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 32, size=(40, 4, 2))
    true_map = rng.normal(size=(8, 10))
    landmarks = (points.reshape(40, -1) @ true_map).reshape(40, 5, 2)
    weights = fit_landmark_regressor(points, landmarks)
    reference, *_ = np.linalg.lstsq(points.reshape(40, -1), landmarks.reshape(40, -1), rcond=None)
    np.testing.assert_allclose(weights, reference, atol=1e-8)
    np.testing.assert_allclose(weights, true_map, atol=1e-8)
    regressed = apply_landmark_regressor(weights, points)
    assert float(np.max(np.asarray(nme(regressed.astype(np.float32), landmarks.astype(np.float32))))) < 1e-4
    with pytest.raises(ValueError, match="same N"):
        fit_landmark_regressor(points, landmarks[:3])


def test_a_step_updates_the_running_averages_as_stated():
    method = IMMMethod(tiny_config("pixel"))
    state = method.init_state(jax.random.key(0))
    batch = next(method.train_loader(4))
    rng = jax.random.key(5)
    new_state, step_metrics = jax.jit(lambda s, b, r: method.train_step(s, b, r, {}, phase="train"))(state, batch, rng)
    # Independent recomputation of the input-layer error: masked squared error of the [0, 255] images.
    pairs = jax.jit(method.make_pairs)(batch, rng)
    reconstruction = jax.jit(method.model.apply)({"params": state.params}, pairs["source"], pairs["target"])[
        "reconstruction"
    ]
    error = np.mean(np.asarray(pairs["mask"])[..., None] * (255.0 * np.asarray(reconstruction - pairs["target"])) ** 2)
    expected = 100.0 + 0.01 * (error - 100.0)
    np.testing.assert_allclose(np.asarray(new_state.averages), [expected], rtol=1e-4)
    np.testing.assert_allclose(float(step_metrics["loss"]), 1000.0 * error / expected, rtol=1e-4)
    assert int(new_state.step) == 1


# The VGG case checks that the frozen network stays out of the checkpoint; the pixel case costs as much.
@pytest.mark.parametrize("perceptual", [pytest.param("pixel", marks=pytest.mark.slow), "vgg_random"])
def test_two_steps_end_to_end_report_nme(tmp_path, perceptual):
    config = tiny_config(perceptual)
    config.checkpoint_every = 2
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 2 and np.isfinite(result["nme"]) and result["num_examples"] == 4
    assert result["num_regression_faces"] == 8
    train_records = read_metrics(tmp_path, "train")
    assert len(train_records) == 2 and all(np.isfinite(r["loss"]) for r in train_records)
    with open(tmp_path / CHECKPOINT_DIRNAME / "2" / "manifest" / "manifest.json") as file:
        layout = json.load(file)["layout"]
    assert any("averages" in path for path in layout) and any("pose_encoder" in path for path in layout)
    assert not any("conv1_2" in path or "vgg" in path for path in layout)  # the frozen VGG is not saved


@pytest.mark.slow  # ~16 s on 2 cores, mostly compiling the step
def test_video_pairs_and_a_vgg_file_end_to_end(tmp_path):
    _write_vgg16_npz(tmp_path / "vgg_partial.npz", seed=1)
    config = tiny_config("vgg_file")
    config.imm.vgg_weights_path = str(tmp_path / "vgg_partial.npz")
    config.imm.pairs = "video"
    config.imm.clip_frames = 2
    batch = next(IMMMethod(config).train_loader(4))
    assert batch["frames"].shape == (4, 2, 32, 32, 3)
    result = train_and_evaluate(config, tmp_path / "run")
    assert result["step"] == 2 and np.isfinite(result["nme"])


def test_visualize_shows_points_and_a_reconstruction():
    method = IMMMethod(tiny_config("pixel"))
    state = method.init_state(jax.random.key(0))
    batch = next(iter(method.eval_loader(2)))
    picture = method.visualize(state, batch, {})
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
