"""The SBR method: the staged data stream, the registration term of the train step, and a tiny run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from landmarkjax.configs.sbr import get_config
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.sbr import CLIP_KEY, REGISTRATION_PHASE, SUPERVISED_PHASE, SBRMethod
from landmarkjax.runs import evaluate_run, train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics

from _fixtures import tiny_detector_config


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """The RBG generator compiles faster than threefry on CPU; these tests only need some keys."""
    with jax.default_prng_impl("rbg"):
        yield


def tiny_config():
    config = tiny_detector_config(get_config(), total_steps=4, batch_size=4, checkpoint_every=2)
    config.data.source_size = 48
    config.data.num_train = 8
    config.data.num_test = 4
    config.data.num_train_clips = 8
    config.data.num_eval_clips = 6
    config.data.eval_clip_length = 4
    config.sbr.stage1_steps = 2
    config.sbr.clip_batch_size = 0  # as many clips as labelled images
    config.sbr.tracking_scale = 1
    config.sbr.lk.window_radius = 3
    return config


def test_method_is_registered_and_validates_its_config():
    assert "sbr" in available_methods()
    assert isinstance(build_method(tiny_config()), SBRMethod)
    config = tiny_config()
    config.sbr.registration_weight = -1.0
    with pytest.raises(ValueError, match="registration_weight"):
        SBRMethod(config)
    config = tiny_config()
    config.data.eval_clip_length = 2
    with pytest.raises(ValueError, match="eval_clip_length"):
        SBRMethod(config)
    config = tiny_config()
    config.sbr.locator = "argmax"
    with pytest.raises(ValueError, match="sbr.locator"):
        SBRMethod(config)


def test_clips_join_the_batches_in_the_registration_phase_and_the_position_is_checkpointed():
    method = SBRMethod(tiny_config())
    assert [(p.name, p.num_steps) for p in method.phases()] == [(SUPERVISED_PHASE, 2), (REGISTRATION_PHASE, None)]
    data = method.train_loader(2)
    first = method.next_batch(data, SUPERVISED_PHASE)
    third = method.next_batch(data, REGISTRATION_PHASE)
    assert CLIP_KEY not in first
    assert third[CLIP_KEY].shape == (2, 3, 32, 32, 3) and third[CLIP_KEY].dtype == np.float32
    assert third["image"].shape == (2, 32, 32, 3)
    saved = data.get_state()
    expected = method.next_batch(data, REGISTRATION_PHASE)
    restored = method.train_loader(2)
    restored.set_state(saved)
    again = method.next_batch(restored, REGISTRATION_PHASE)
    np.testing.assert_array_equal(again[CLIP_KEY], expected[CLIP_KEY])
    np.testing.assert_array_equal(again["image"], expected["image"])


def test_clip_batch_size_sets_the_number_of_clips_per_batch():
    config = tiny_config()
    config.sbr.stage1_steps = 0
    config.sbr.clip_batch_size = 4  # global; the tests run 4 CPU devices in one process
    method = SBRMethod(config)
    assert [p.name for p in method.phases()] == [REGISTRATION_PHASE]
    batch = method.next_batch(method.train_loader(8), REGISTRATION_PHASE)
    assert batch["image"].shape[0] == 8 and batch[CLIP_KEY].shape[0] == 4
    config.sbr.clip_batch_size = 6
    with pytest.raises(ValueError, match="multiple of the device count"):
        SBRMethod(config).train_loader(8)


@pytest.mark.slow
def test_registration_term_is_positive_on_moving_clips_and_reaches_the_parameters():
    config = tiny_config()
    # An untrained detector is neither confident nor close to the tracks: accept every track here.
    config.sbr.min_confidence = 0.0
    config.sbr.max_displacement = 1e3
    config.sbr.fb_threshold = 1e3
    method = SBRMethod(config)
    batch = method.next_batch(method.train_loader(4), REGISTRATION_PHASE)
    batch = {key: jnp.asarray(value) for key, value in batch.items()}
    state = method.init_state(jax.random.key(0))

    def registration(params):
        return method.registration_loss_fn(params, batch[CLIP_KEY])

    (value, num_points), grads = jax.jit(jax.value_and_grad(registration, has_aux=True))(state.params)
    assert float(num_points) > 0 and np.isfinite(float(value)) and float(value) > 0
    grad_norm = float(optax.tree.norm(grads))
    assert np.isfinite(grad_norm) and grad_norm > 0



@pytest.mark.slow
def test_tracking_scale_tracks_on_the_large_frames_and_reports_small_pixels():
    # Clips upsampled 2x by pixel repetition: the detector sees exactly the small frames (2x2 means), and
    # LK on the large frames (window doubled) must give about the loss of LK on the small frames.
    config = tiny_config()
    config.sbr.min_confidence = 0.0
    config.sbr.max_displacement = 1e3
    config.sbr.fb_threshold = 1e3
    config.sbr.lk.window_radius = 6
    method = SBRMethod(config)
    small = jnp.asarray(method.next_batch(method.train_loader(4), REGISTRATION_PHASE)[CLIP_KEY])  # [4, 3, 32, 32, 3]
    params = method.init_state(jax.random.key(0)).params
    small_loss, small_points = jax.jit(method.registration_loss_fn)(params, small)

    large_config = tiny_config()
    large_config.sbr.update(config.sbr.to_dict())
    large_config.sbr.tracking_scale = 2
    large_config.sbr.lk.window_radius = 12
    large = jnp.repeat(jnp.repeat(small, 2, axis=2), 2, axis=3)
    large_method = SBRMethod(large_config)
    large_loss, large_points = jax.jit(large_method.registration_loss_fn)(params, large)
    assert float(small_points) > 0
    assert float(large_points) == pytest.approx(float(small_points), rel=0.02)  # a few tracks differ
    assert float(large_loss) == pytest.approx(float(small_loss), rel=0.2)
    assert float(large_loss) != pytest.approx(2 * float(small_loss), rel=0.2)  # not in large pixels

    large_config.sbr.stage1_steps = 0
    large_method = SBRMethod(large_config)
    batch = large_method.next_batch(large_method.train_loader(4), REGISTRATION_PHASE)
    assert batch["image"].shape == (4, 32, 32, 3) and batch[CLIP_KEY].shape == (4, 3, 64, 64, 3)
    large_config.sbr.tracking_scale = 0
    with pytest.raises(ValueError, match="tracking_scale"):
        SBRMethod(large_config)


def test_training_run_end_to_end(tmp_path):
    config = tiny_config()
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 4 and result["num_examples"] == 6 * 4  # every frame of every clip
    assert set(result) >= {"nme", "auc@0.08", "failure_rate@0.08", "jitter", "gt_jitter"}
    assert all(np.isfinite(result[key]) for key in ("nme", "jitter", "gt_jitter"))
    assert 0 <= result["auc@0.08"] <= 1 and result["jitter"] >= 0
    train = read_metrics(tmp_path, "train")
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in train)
    for r in train:  # the step's loss is the supervised loss plus the weighted registration loss
        expected = r["supervised_loss"] + config.sbr.registration_weight * r["registration_loss"]
        assert r["loss"] == pytest.approx(expected, rel=1e-5)
    assert [r["registration_loss"] for r in train[:2]] == [0.0, 0.0]

    phases = [(r["step"], r["phase"]) for r in read_metrics(tmp_path, "event") if r["event"] == "phase"]
    assert phases == [(1, SUPERVISED_PHASE), (3, REGISTRATION_PHASE)]
    assert [r["phase"] for r in train] == [SUPERVISED_PHASE] * 2 + [REGISTRATION_PHASE] * 2

    evaluation = evaluate_run(tmp_path)  # the run's own config.json
    assert evaluation.step == 4
    assert evaluation.metrics["jitter"] == pytest.approx(result["jitter"], rel=1e-5)
    assert evaluation.image.dtype == np.uint8 and evaluation.image.shape == (32 * 3, 4 * 32 * 3, 3)


def test_vgg16_variant_builds_the_published_detector():
    from landmarkjax.methods.supervised import build_detector
    from landmarkjax.models.cpm import sbr_vgg16_cpm

    config = get_config("vgg16")
    detector = build_detector(config)
    images = jnp.zeros([1, config.data.image_size, config.data.image_size, 3])
    key = jax.random.key(0, impl="rbg")
    out, params = jax.eval_shape(detector.init_with_output, key, images)
    _, reference = jax.eval_shape(sbr_vgg16_cpm(68).init_with_output, key, images)
    assert detector.stride == 8 and out.shape == (3, 1, 32, 32, 69)
    assert jax.tree.map(lambda p: p.shape, params) == jax.tree.map(lambda p: p.shape, reference)
    with pytest.raises(ValueError, match="variant"):
        get_config("vgg19")
