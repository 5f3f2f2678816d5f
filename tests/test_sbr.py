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
    config.sbr.stage2_steps = 2
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
    assert [(p.name, p.num_steps) for p in method.phases()] == [(SUPERVISED_PHASE, 2), (REGISTRATION_PHASE, 2)]
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
    config.sbr.stage2_steps = 4
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
    large_config.sbr.stage2_steps = 4
    large_method = SBRMethod(large_config)
    batch = large_method.next_batch(large_method.train_loader(4), REGISTRATION_PHASE)
    assert batch["image"].shape == (4, 32, 32, 3) and batch[CLIP_KEY].shape == (4, 3, 64, 64, 3)
    large_config.sbr.tracking_scale = 0
    with pytest.raises(ValueError, match="tracking_scale"):
        SBRMethod(large_config)


@pytest.mark.slow
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
        expected = r["supervised_loss"] + max(r["registration_weight"], 0.0) * r["registration_loss"]
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


def test_registration_weight_for_fraction_on_a_toy_case_with_a_known_answer():
    from landmarkjax.methods.sbr import registration_weight_for_fraction

    # ||g_s|| = sqrt(3^2 + 4^2 + 12^2) = 13, ||g_r|| = sqrt(0.6^2 + 0.8^2) = 1: w = f * 13.
    supervised = {"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.array([[12.0]])}}
    registration = {"a": jnp.array([0.0, 0.6]), "b": {"c": jnp.array([[-0.8]])}}
    weight, supervised_norm, registration_norm = registration_weight_for_fraction(supervised, registration, 0.25)
    assert float(supervised_norm) == pytest.approx(13.0) and float(registration_norm) == pytest.approx(1.0)
    assert float(weight) == pytest.approx(3.25)
    weighted = optax.tree.norm(jax.tree.map(lambda r: weight * r, registration))
    assert float(weighted) == pytest.approx(0.25 * 13.0)  # the stated fraction of the supervised norm
    # No landmark registered (zero gradient): no weight can give the fraction; "not chosen" (-1), no NaN.
    zero = jax.tree.map(jnp.zeros_like, registration)
    weight, _, _ = registration_weight_for_fraction(supervised, zero, 0.25)
    assert float(weight) == -1.0


def _accept_every_track(config):
    # An untrained detector is neither confident nor close to the tracks: accept every track.
    config.sbr.min_confidence = 0.0
    config.sbr.max_displacement = 1e3
    config.sbr.fb_threshold = 1e3
    return config


@pytest.mark.slow
def test_gradient_fraction_sets_the_weight_on_the_first_stage2_batch_and_keeps_it():
    config = _accept_every_track(tiny_config())
    config.sbr.registration_gradient_fraction = 0.5
    # Detached targets and a short one-level LK keep the compile short; the weight logic is the same.
    config.sbr.registration_targets = "official"
    config.sbr.lk.update(num_levels=1, num_iterations=3)
    method = SBRMethod(config)
    state = method.init_state(jax.random.key(0))
    assert float(state.registration_weight) == -1.0  # not chosen before stage 2
    data = method.train_loader(4)
    batch = {key: jnp.asarray(value) for key, value in method.next_batch(data, REGISTRATION_PHASE).items()}
    step = jax.jit(lambda s, b: method.train_step(s, b, None, None, phase=REGISTRATION_PHASE))
    new_state, metrics = step(state, batch)

    # The reference: both gradients taken on their own, w = 0.5 ||g_s|| / ||g_r||.
    supervised_grads = jax.jit(jax.grad(lambda p: method.loss_fn(p, batch)[0]))(state.params)
    registration_grads = jax.jit(jax.grad(lambda p: method.registration_loss_fn(p, batch[CLIP_KEY])[0]))(
        state.params
    )
    supervised_norm = float(optax.tree.norm(supervised_grads))
    registration_norm = float(optax.tree.norm(registration_grads))
    assert registration_norm > 0
    expected = 0.5 * supervised_norm / registration_norm
    assert float(new_state.registration_weight) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["registration_weight"]) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["supervised_grad_norm"]) == pytest.approx(supervised_norm, rel=1e-4)
    assert float(metrics["registration_grad_norm"]) == pytest.approx(registration_norm, rel=1e-4)
    assert float(metrics["weighted_registration_loss"]) == pytest.approx(
        expected * float(metrics["registration_loss"]), rel=1e-4
    )
    assert float(metrics["loss"]) == pytest.approx(
        float(metrics["supervised_loss"]) + float(metrics["weighted_registration_loss"]), rel=1e-5
    )
    # Later batches keep the chosen weight, whatever their gradients.
    batch = {key: jnp.asarray(value) for key, value in method.next_batch(data, REGISTRATION_PHASE).items()}
    later_state, later = step(new_state, batch)
    assert float(later_state.registration_weight) == float(new_state.registration_weight)
    assert float(later["registration_weight"]) == float(new_state.registration_weight)


def test_stage_lengths_and_schedules_are_independent_config_fields():
    config = tiny_config()
    config.sbr.stage1_steps, config.sbr.stage2_steps = 6, 4
    config.total_steps = 10
    config.optimizer.update(learning_rate=1.0, warmup_steps=0, schedule="cosine")
    config.sbr.stage2_optimizer.update(learning_rate=0.1, warmup_steps=0, schedule="cosine")
    method = SBRMethod(config)
    assert [(p.name, p.num_steps) for p in method.phases()] == [(SUPERVISED_PHASE, 6), (REGISTRATION_PHASE, 4)]
    schedule = method.learning_rate_schedule()

    def cosine(peak, step, length):  # optax's cosine decay to 0, closed form
        return peak * 0.5 * (1 + np.cos(np.pi * min(step, length) / length))

    expected = [cosine(1.0, k, 6) for k in range(6)] + [cosine(0.1, k, 4) for k in range(4)]
    np.testing.assert_allclose([float(schedule(k)) for k in range(10)], expected, rtol=1e-5, atol=1e-7)
    # A longer stage 2 leaves stage 1's schedule as it was, and restarts its own over its new length.
    config.sbr.stage2_steps = 8
    config.total_steps = 14
    longer = SBRMethod(config).learning_rate_schedule()
    np.testing.assert_allclose([float(longer(k)) for k in range(6)], expected[:6], rtol=1e-6)
    np.testing.assert_allclose([float(longer(6 + k)) for k in range(8)], [cosine(0.1, k, 8) for k in range(8)],
                               rtol=1e-5, atol=1e-7)
    # The optimiser follows that schedule: plain SGD steps by -lr(step) * gradient.
    config.optimizer.update(name="sgd", momentum=0.0)
    optimizer = SBRMethod(config).optimizer
    params = {"w": jnp.ones(3)}
    opt_state = optimizer.init(params)
    for k in range(8):
        updates, opt_state = optimizer.update({"w": jnp.ones(3)}, opt_state, params)
        np.testing.assert_allclose(np.asarray(updates["w"]), -float(longer(k)) * np.ones(3), rtol=1e-5, atol=1e-7)

    # The default config: total_steps follows the two stages' lengths; an inconsistent total is refused.
    default = get_config()
    assert default.sbr.registration_gradient_fraction == 0.5  # the README experiment's setting
    assert default.total_steps == 600
    default.sbr.stage2_steps = 300
    assert default.total_steps == 800
    default.sbr.stage2_steps = 0  # the detector alone: only stage 1
    assert default.total_steps == 500
    config = tiny_config()
    config.total_steps = 7
    with pytest.raises(ValueError, match="total_steps must be sbr.stage1_steps"):
        SBRMethod(config)
    config = tiny_config()
    config.sbr.stage2_steps, config.total_steps = 0, 2
    assert [p.name for p in SBRMethod(config).phases()] == [SUPERVISED_PHASE]


def test_registration_targets_names_the_paper_and_the_official_variants(monkeypatch):
    from landmarkjax.methods import sbr as sbr_module

    seen = []
    original = sbr_module.losses.registration_loss

    def spy(*args, **kwargs):
        seen.append(kwargs["through_lk"])
        return original(*args, **kwargs)

    monkeypatch.setattr(sbr_module.losses, "registration_loss", spy)
    for targets, through_lk in (("paper", True), ("official", False)):
        config = tiny_config()
        config.sbr.registration_targets = targets
        method = SBRMethod(config)
        params = jax.eval_shape(method.init_state, jax.random.key(0)).params
        jax.eval_shape(method.registration_loss_fn, params, jax.ShapeDtypeStruct((2, 3, 32, 32, 3), jnp.float32))
        assert seen[-1] is through_lk
    assert get_config().sbr.registration_targets == "paper"
    config = tiny_config()
    config.sbr.registration_targets = "stable"
    with pytest.raises(ValueError, match="registration_targets"):
        SBRMethod(config)


def test_a_restored_weight_is_replaced_by_the_configured_one_when_stage2_starts():
    # A state restored from another run (config.init_from) carries that run's weight; stage 2 sets its own.
    config = _accept_every_track(tiny_config())
    config.sbr.registration_gradient_fraction = 0.0  # the fixed weight
    config.sbr.registration_targets = "oracle"  # the weight logic is the same; no LK to compile
    method = SBRMethod(config)
    state = method.init_state(jax.random.key(0))
    assert float(state.registration_weight) == pytest.approx(config.sbr.registration_weight)
    batch = {k: jnp.asarray(v) for k, v in method.next_batch(method.train_loader(4), REGISTRATION_PHASE).items()}
    step = jax.jit(lambda s, b: method.train_step(s, b, None, None, phase=REGISTRATION_PHASE))
    foreign = state.replace(step=jnp.asarray(config.sbr.stage1_steps, state.step.dtype),
                            registration_weight=jnp.asarray(0.7, jnp.float32))
    first, _ = step(foreign, batch)
    assert float(first.registration_weight) == pytest.approx(config.sbr.registration_weight)
    later, _ = step(foreign.replace(step=foreign.step + 1), batch)  # mid-stage-2 (a resumed run): kept
    assert float(later.registration_weight) == pytest.approx(0.7)


def test_weight_zero_skips_the_registration_term_but_still_draws_the_clips(monkeypatch):
    from landmarkjax.methods import sbr as sbr_module

    def no_tracking(*args, **kwargs):
        raise AssertionError("the registration term must not be computed at weight 0")

    monkeypatch.setattr(sbr_module.losses, "registration_loss", no_tracking)
    config = tiny_config()
    config.sbr.registration_weight = 0.0
    method = SBRMethod(config)
    assert method.skips_registration()
    data = method.train_loader(4)
    batch = method.next_batch(data, REGISTRATION_PHASE)
    assert CLIP_KEY in batch  # the same batches as the other arms
    state = method.init_state(jax.random.key(0))
    abstract_batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
    _, metrics = jax.eval_shape(
        lambda s, b: method.train_step(s, b, None, None, phase=REGISTRATION_PHASE), state, abstract_batch
    )
    assert {"registration_loss", "registered_points", "supervised_loss"} <= set(metrics)
    config.sbr.registration_gradient_fraction = 0.5  # weight 0 switches the term off whatever the fraction
    assert SBRMethod(config).skips_registration() and SBRMethod(config).gradient_fraction() is None
    config.sbr.registration_weight = 0.1
    assert not SBRMethod(config).skips_registration() and SBRMethod(config).gradient_fraction() == 0.5
    config.sbr.registration_gradient_fraction = 0.0
    assert SBRMethod(config).gradient_fraction() is None  # the fixed weight


def test_oracle_targets_bring_the_clips_truth_and_use_the_oracle_loss(monkeypatch):
    from landmarkjax.methods import sbr as sbr_module

    seen = []
    original = sbr_module.losses.oracle_registration_loss

    def spy(*args, **kwargs):
        seen.append(args[2].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(sbr_module.losses, "oracle_registration_loss", spy)
    config = tiny_config()
    config.sbr.registration_targets = "oracle"
    method = SBRMethod(config)
    batch = method.next_batch(method.train_loader(2), REGISTRATION_PHASE)
    assert batch[sbr_module.CLIP_LANDMARKS_KEY].shape == (2, 3, 68, 2)
    assert batch[sbr_module.CLIP_VISIBILITY_KEY].shape == (2, 3, 68)
    params = jax.eval_shape(method.init_state, jax.random.key(0)).params
    truth = (jnp.asarray(batch[sbr_module.CLIP_LANDMARKS_KEY]), jnp.asarray(batch[sbr_module.CLIP_VISIBILITY_KEY]))
    jax.eval_shape(method.registration_loss_fn, params, jnp.asarray(batch[CLIP_KEY]), truth)
    assert seen == [(2, 3, 68, 2)]
    with pytest.raises(ValueError, match="oracle"):
        jax.eval_shape(method.registration_loss_fn, params, jnp.asarray(batch[CLIP_KEY]))
    paper = tiny_config()
    paper_method = SBRMethod(paper)
    assert sbr_module.CLIP_LANDMARKS_KEY not in paper_method.next_batch(paper_method.train_loader(2), REGISTRATION_PHASE)


def test_evaluation_clips_come_from_the_split_evaluated():
    config = tiny_config()
    config.data.eval_split = "validation"
    validation = next(iter(SBRMethod(config).eval_loader(2)))
    test = next(iter(SBRMethod(config).eval_loader(2, "test")))
    assert not np.allclose(validation["landmarks"], test["landmarks"])
    config.data.validation_seed = config.data.test_seed  # the same seed: the same clips
    same = next(iter(SBRMethod(config).eval_loader(2, "validation")))
    np.testing.assert_array_equal(same["frames"], test["frames"])
    with pytest.raises(ValueError, match="'test' or 'validation'"):
        SBRMethod(config).eval_loader(2, "train")
