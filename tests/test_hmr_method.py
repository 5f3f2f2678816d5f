"""The HMR method: losses with visibility and paired 3D, the two optimisers' separation, IEF's start, the
evaluation's numbers against numpy written from their definitions, the Human3.6M-style layout, and a short
end-to-end run (train, evaluate, restore, evaluate on the h36m layout)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from landmarkjax import runs
from landmarkjax.body import smpl_forward
from landmarkjax.configs.hmr import VARIANTS, get_config
from landmarkjax.data.amass import AmassPoseSource
from landmarkjax.data.h36m import H36mSource, crop_square
from landmarkjax.data.sources import SyntheticMocapSource
from landmarkjax.data.synthetic.people import BODY_POSE_LIMITS
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.hmr import NUM_KEYPOINTS, PersonExample
from landmarkjax.training.metric_writer import read_metrics

IMAGE_SIZE = 32


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    with jax.default_prng_impl("rbg"):
        yield


def tiny_config(**overrides):
    config = get_config()
    config.data.image_size = IMAGE_SIZE
    config.data.num_train = 8
    config.data.num_test = 6
    config.data.num_mocap = 16
    config.model.width = 4
    config.model.hidden = 16
    config.model.discriminator_pose_hidden = 16
    config.batch_size = 4
    config.eval_batch_size = 4
    config.total_steps = 3
    config.log_every = 1
    config.checkpoint_every = 0
    config.optimizer.warmup_steps = 0  # a warm-up from 0 would make the first update empty
    config.hmr.discriminator_start = 0
    config.eval.num_visualized = 2
    config.update_from_flattened_dict(overrides)
    return config


@pytest.fixture(scope="module")
def method():
    with jax.default_prng_impl("rbg"):
        built = build_method(tiny_config())
        state = jax.jit(built.init_state)(jax.random.key(0))
    return built, state


def _batch(rng: np.random.Generator, size: int = 2) -> dict[str, jnp.ndarray]:
    pose = rng.normal(0, 0.2, (size, 72)).astype(np.float32)
    pose[:, 0] = np.pi
    return {
        "image": jnp.asarray(rng.random((size, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)),
        "keypoints_2d": jnp.asarray(rng.uniform(0, IMAGE_SIZE - 1, (size, NUM_KEYPOINTS, 2)).astype(np.float32)),
        "visibility": jnp.asarray((rng.random((size, NUM_KEYPOINTS)) < 0.6).astype(np.float32)),
        "joints_3d": jnp.asarray(rng.normal(0, 0.3, (size, NUM_KEYPOINTS, 3)).astype(np.float32)),
        "pose": jnp.asarray(pose),
        "betas": jnp.asarray(rng.normal(0, 1, (size, 10)).astype(np.float32)),
        "has_3d": jnp.ones([size], jnp.float32),
        "mocap_pose": jnp.asarray(rng.normal(0, 0.2, (size, 72)).astype(np.float32)),
        "mocap_betas": jnp.asarray(rng.normal(0, 1, (size, 10)).astype(np.float32)),
    }


def _leaves_equal(a, b) -> bool:
    return all(bool(np.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _numpy_rodrigues(vectors: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(vectors, axis=-1, keepdims=True)[..., None]
    axis = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    k = np.zeros(vectors.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_losses_count_visible_keypoints_and_paired_3d_only_and_an_all_invisible_person_adds_nothing(method):
    hmr, state = method
    smpl = hmr.frozen_inputs()["smpl"]
    batch = _batch(np.random.default_rng(0))
    # Person 1: every keypoint invisible, targets and 3D labels garbage (NaN), no paired 3D.
    batch["visibility"] = batch["visibility"].at[1].set(0.0)
    batch["keypoints_2d"] = batch["keypoints_2d"].at[1].set(jnp.nan)
    batch["joints_3d"] = batch["joints_3d"].at[1].set(jnp.nan)
    batch["pose"] = batch["pose"].at[1].set(jnp.nan)
    batch["has_3d"] = jnp.array([1.0, 0.0])
    params = state.params

    def loss(generator, batch):
        return hmr.generator_loss(generator, params["discriminator"], batch, None, smpl, True)

    @jax.jit
    def evaluate(generator, batch):
        total, (parts, _) = loss(generator, batch)
        theta = hmr.predict_thetas(generator, batch["image"])[-1]
        grads = jax.grad(lambda g: loss(g, batch)[0])(generator)
        return total, parts, hmr.body(smpl, theta, IMAGE_SIZE), grads

    total, parts, body, grads = evaluate(params["generator"], batch)
    assert np.isfinite(float(total))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # numpy, from the definitions, over person 0 only: mean |dx|, |dy| of the visible keypoints in
    # normalised units; half the mean squared pelvis-aligned error of the 14 LSP joints; half the mean squared error of
    # [24 rotation matrices, betas].
    predicted = np.asarray(body["keypoints_norm"], np.float64)
    target = np.asarray(batch["keypoints_2d"], np.float64) / ((IMAGE_SIZE - 1) / 2.0) - 1.0
    visible = np.asarray(batch["visibility"]) > 0
    expected_2d = np.abs(predicted - target)[visible].sum() / (2 * visible.sum())
    np.testing.assert_allclose(float(parts["keypoints_2d_loss"]), expected_2d, rtol=1e-5)
    joints = np.asarray(body["joints_3d"][0, :14], np.float64)  # the 14 LSP joints, as HMR
    true = np.asarray(batch["joints_3d"][0, :14], np.float64)
    joints, true = joints - joints[[2, 3]].mean(0), true - true[[2, 3]].mean(0)
    np.testing.assert_allclose(float(parts["joints_3d_loss"]), 0.5 * np.mean((joints - true) ** 2), rtol=1e-4)
    true_rotations = _numpy_rodrigues(np.asarray(batch["pose"][0], np.float64).reshape(24, 3))
    flat = lambda rotations, betas: np.concatenate([np.ravel(rotations), np.ravel(betas)])  # noqa: E731
    expected_smpl = 0.5 * np.mean(
        (flat(body["rotations"][0], body["betas"][0]) - flat(true_rotations, batch["betas"][0])) ** 2
    )
    np.testing.assert_allclose(float(parts["smpl_loss"]), expected_smpl, rtol=1e-4)
    # The objective: lambda (L_2D + L_3D joints + L_SMPL) + L_adv with lambda = 60 on every term but the
    # adversarial one (paper; official `do_train.sh`: --e_loss_weight 60 --e_3d_weight 60). With the 3D
    # terms at 1 they were ~300x weaker than the 2D term and short runs learnt nothing in 3D.
    expected_total = 60.0 * (expected_2d + 0.5 * np.mean((joints - true) ** 2) + expected_smpl)
    np.testing.assert_allclose(float(total), expected_total + float(parts["adversarial_loss"]), rtol=1e-4)

    # A batch of invisible people without 3D: zero 2D, 3D and SMPL losses; gradient finite (only the
    # adversarial term moves the encoder).
    invisible = {key: jnp.stack([value[1], value[1]]) for key, value in batch.items()}
    total, parts, _, grads = evaluate(params["generator"], invisible)
    for name in ("keypoints_2d_loss", "joints_3d_loss", "smpl_loss"):
        assert float(parts[name]) == 0.0, name
    np.testing.assert_allclose(float(total), float(parts["adversarial_loss"]), rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.slow
def test_generator_and_discriminator_updates_touch_only_their_own_parameters(method):
    hmr, state = method
    smpl = hmr.frozen_inputs()["smpl"]
    batch = _batch(np.random.default_rng(1))
    generator_update = jax.jit(hmr.generator_update, static_argnums=4)
    after_generator, step_metrics, fake = generator_update(state, batch, jax.random.key(2), smpl, True)
    assert _leaves_equal(after_generator.params["discriminator"], state.params["discriminator"])
    assert _leaves_equal(after_generator.opt_state["discriminator"], state.opt_state["discriminator"])
    assert not _leaves_equal(after_generator.params["generator"], state.params["generator"])
    assert {"loss", "keypoints_2d_loss", "joints_3d_loss", "smpl_loss", "adversarial_loss"} <= set(step_metrics)
    assert fake["rotations"].shape == (2, 23, 3, 3) and fake["betas"].shape == (2, 10)

    after_discriminator, d_metrics = jax.jit(hmr.discriminator_update)(
        after_generator, fake, batch["mocap_pose"], batch["mocap_betas"]
    )
    assert _leaves_equal(after_discriminator.params["generator"], after_generator.params["generator"])
    assert _leaves_equal(after_discriminator.opt_state["generator"], after_generator.opt_state["generator"])
    assert not _leaves_equal(after_discriminator.params["discriminator"], after_generator.params["discriminator"])
    assert "discriminator_loss" in d_metrics

    # Without the prior ("encoder" phase) a whole train step leaves the discriminator alone.
    encoder_step = jax.jit(lambda s, b, r: hmr.train_step(s, b, r, {"smpl": smpl}, phase="encoder"))
    new_state, phase_metrics = encoder_step(state, batch, jax.random.key(3))
    assert _leaves_equal(new_state.params["discriminator"], state.params["discriminator"])
    assert "adversarial_loss" not in phase_metrics and "discriminator_loss" not in phase_metrics
    assert int(new_state.step) == 1


def test_ief_starts_from_the_mean_body_standing_upright(method):
    hmr, state = method
    smpl = hmr.frozen_inputs()["smpl"]
    generator = jax.tree.map(lambda x: x, state.params["generator"])
    generator["regressor"]["fc3"] = jax.tree.map(jnp.zeros_like, generator["regressor"]["fc3"])
    images = jnp.asarray(np.random.default_rng(4).random((2, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))
    thetas, body = jax.jit(
        lambda g, x: (hmr.predict_thetas(g, x), hmr.body(smpl, hmr.predict_thetas(g, x)[-1], IMAGE_SIZE))
    )(generator, images)
    assert thetas.shape == (3, 2, 85)
    # Reference: the rest body's keypoints turned by pi about x about the root joint, camera [0.9, 0, 0].
    rest = smpl_forward(smpl, jnp.zeros([10]), jnp.zeros([23, 3]))
    root = np.asarray(rest.joints[0], np.float64)
    keypoints = np.asarray(rest.extra_joints["cocoplus_regressor"], np.float64)
    turned = (keypoints - root) * np.array([1.0, -1.0, -1.0]) + root
    np.testing.assert_allclose(np.asarray(body["joints_3d"][0]), turned, atol=1e-5)
    np.testing.assert_allclose(np.asarray(body["keypoints_norm"][1]), 0.9 * turned[:, :2], atol=1e-5)
    head_top, ankle = turned[13], turned[0]
    assert head_top[1] < ankle[1]  # upright in the y-down image


def test_summary_numbers_match_their_definitions(method):
    hmr, _ = method
    rng = np.random.default_rng(5)
    true = rng.normal(0, 0.3, (3, 14, 3))
    pred = true + np.array([0.1, -0.2, 0.05])  # translated: 0 after pelvis alignment
    pred[0, 0, 0] += 0.014  # person 0's right ankle 14 mm off: MPJPE 1 mm
    true_2d = rng.uniform(0, 30, (3, 14, 2))
    true_2d[:, 0] = [0.0, 0.0]
    true_2d[:, 1] = [20.0, 10.0]  # bounding box larger side >= 20 px
    side = true_2d.max(axis=1) - true_2d.min(axis=1)
    normalizer = side.max(axis=-1)
    pred_2d = true_2d.copy()
    pred_2d[:, 2, 0] += 0.2 * normalizer  # beyond 0.1 x the box: wrong
    pred_2d[:, 3, 1] += 0.05 * normalizer  # within: right
    visibility = np.ones((3, 14))
    visibility[:, 4] = 0.0
    body_pose = np.clip(np.zeros((3, 23, 3)), BODY_POSE_LIMITS[..., 0], BODY_POSE_LIMITS[..., 1])
    body_pose[1, 2, 0] = BODY_POSE_LIMITS[2, 0, 1] + math.radians(6.0)  # 6 degrees beyond a limit
    betas = np.full((3, 10), -0.5)
    summary = hmr.summarize(
        {
            "pred_joints_3d": pred, "true_joints_3d": true, "pred_keypoints_2d": pred_2d,
            "true_keypoints_2d": true_2d, "visibility": visibility, "body_pose": body_pose, "betas": betas,
        }
    )
    np.testing.assert_allclose(summary["mpjpe"], 1.0 / 3.0, rtol=1e-4)  # mm: (1 + 0 + 0) / 3
    assert summary["pck@0.1"] == pytest.approx(12 / 13)
    assert summary["pose_outside_limits"] == pytest.approx(1 / (3 * 69))
    assert summary["pose_limit_excess_deg"] == pytest.approx(6.0 / (3 * 69), rel=1e-4)
    assert summary["mean_abs_betas"] == pytest.approx(0.5)
    assert summary["num_examples"] == 3
    np.testing.assert_allclose(summary["pa_mpjpe"], _numpy_pa_mpjpe(pred * 1000, true * 1000).mean(), atol=2e-3)


def test_bad_inputs_fail_clearly(tmp_path):
    example = {
        "image": np.zeros((8, 8, 3), np.uint8),
        "keypoints_2d": np.zeros((14, 2), np.float32),
        "visibility": np.ones(14, bool),
        "joints_3d": np.zeros((14, 3), np.float32),
    }
    with pytest.raises(ValueError, match=r"keypoints_2d must be \[19, 2\]"):
        PersonExample().map(example)
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, poses=np.zeros((5, 63), np.float32), betas=np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="narrow.npz.*'poses' must have shape"):
        build_method(tiny_config(**{"data.mocap_path": str(narrow)}))
    with pytest.raises(FileNotFoundError, match="data.mocap_path"):
        build_method(tiny_config(**{"data.mocap_path": str(tmp_path / "missing_*.npz")}))
    with pytest.raises(ValueError, match="h36m_dir"):
        build_method(tiny_config(**{"data.source": "h36m"}))
    with pytest.raises(ValueError, match="pose_representation"):
        build_method(tiny_config(**{"model.pose_representation": "quaternion"}))
    with pytest.raises(ValueError, match="variant"):
        get_config("nope")
    with pytest.raises(ValueError, match="prior never starts"):
        build_method(tiny_config(**{"hmr.discriminator_start": 3}))
    build_method(tiny_config(**{"hmr.discriminator_start": 3, "hmr.adversarial_weight": 0.0}))  # no prior: fine
    for variant in VARIANTS:  # every named variant starts its prior within its run
        config = get_config(variant)
        assert config.hmr.adversarial_weight == 0 or config.hmr.discriminator_start < config.total_steps


def test_mocap_stream_is_never_the_images_poses(tmp_path):
    assert "hmr" in available_methods()
    hmr = build_method(tiny_config())
    assert isinstance(hmr._mocap_source().source, SyntheticMocapSource)
    poses = np.random.default_rng(6).normal(0, 0.2, (7, 156)).astype(np.float32)
    np.savez(tmp_path / "a.npz", poses=poses, betas=np.ones(16, np.float32))
    amass = build_method(tiny_config(**{"data.mocap_path": str(tmp_path / "*.npz")}))
    source = amass._mocap_source()
    assert isinstance(source, AmassPoseSource) and len(source) == 7
    streams = amass.train_loader(2)
    batch = amass.next_batch(streams, "adversarial")
    assert batch["mocap_pose"].shape == (2, 72) and batch["image"].shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    no_prior = build_method(tiny_config(**{"hmr.adversarial_weight": 0.0}))
    assert [phase.name for phase in no_prior.phases()] == ["encoder"]
    assert "mocap" not in no_prior.train_loader(2).streams
    delayed = build_method(tiny_config(**{"hmr.discriminator_start": 5, "total_steps": 8}))
    assert [(phase.name, phase.num_steps) for phase in delayed.phases()] == [("encoder", 5), ("adversarial", None)]
    for variant in VARIANTS:
        get_config(variant)


def _write_h36m_fixture(root, rng) -> dict:
    """Two sequences of one subject (cameras "cam1" and "cam2") in the documented layout."""
    truth = {}
    for camera_name, yaw in (("cam1", 0.3), ("cam2", -0.5)):
        folder = root / "S9" / f"Walking_1.{camera_name}"
        (folder / "images").mkdir(parents=True)
        rotation = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        translation = np.array([30.0, -50.0, 4500.0])
        camera_joints = rng.normal(0, 300.0, (3, 14, 3)) + np.array([0, 0, 4500.0])  # mm, in front
        world = (camera_joints - translation) @ rotation  # X_world = R^T (X_cam - t)
        np.save(folder / "joints_3d.npy", world)
        json.dump({"R": rotation.tolist(), "t": translation.tolist(), "f": [1100.0, 1120.0], "c": [60.0, 50.0]},
                  open(folder / "camera.json", "w"))
        for frame in range(3):
            Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(
                folder / "images" / f"{frame:06d}.png"
            )
        truth[camera_name] = camera_joints
    return truth


def test_h36m_layout_reader_and_crop(tmp_path):
    truth = _write_h36m_fixture(tmp_path, np.random.default_rng(7))
    source = H36mSource(tmp_path, size=IMAGE_SIZE, crop_scale=1.5)
    assert len(source) == 6
    only = H36mSource(tmp_path, size=IMAGE_SIZE, cameras=("cam2",))
    assert len(only) == 3
    element = source[4]  # cam2 (sorted after cam1), frame 1
    joints = truth["cam2"][1]
    np.testing.assert_allclose(element["joints_3d"], joints / 1000.0, rtol=1e-5)
    pixels = joints[:, :2] / joints[:, 2:] * [1100.0, 1120.0] + [60.0, 50.0]
    centre = (pixels.min(0) + pixels.max(0)) / 2
    side = 1.5 * (pixels.max(0) - pixels.min(0)).max()
    expected = (pixels - centre) * IMAGE_SIZE / side + (IMAGE_SIZE - 1) / 2
    np.testing.assert_allclose(element["keypoints_2d"][:14], expected, rtol=1e-4, atol=1e-3)
    assert element["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and element["image"].dtype == np.uint8
    assert not element["visibility"][14:].any()
    # The crop samples the source at centre + (q - (S - 1) / 2) side / S: exact on a linear ramp.
    ramp = np.tile(np.arange(50, dtype=np.float32)[None, :, None], (40, 1, 1))
    crop = crop_square(ramp, np.array([20.0, 18.0]), 10.0, 8)
    np.testing.assert_allclose(crop[3, :, 0], 20.0 + (np.arange(8) - 3.5) * 10.0 / 8, atol=1e-5)

    bad = tmp_path / "bad" / "S1" / "seq.c"
    (bad / "images").mkdir(parents=True)
    np.save(bad / "joints_3d.npy", np.zeros((2, 17, 3)))
    json.dump({"R": np.eye(3).tolist(), "t": [0, 0, 1], "f": [1, 1], "c": [0, 0]}, open(bad / "camera.json", "w"))
    with pytest.raises(ValueError, match=r"joints_3d.npy: expected \[N, 14, 3\]"):
        H36mSource(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="Human3.6M-style folder"):
        H36mSource(tmp_path / "nowhere")


def _numpy_mpjpe(pred, true):
    pred = pred - pred[:, [2, 3]].mean(axis=1, keepdims=True)
    true = true - true[:, [2, 3]].mean(axis=1, keepdims=True)
    return np.linalg.norm(pred - true, axis=-1).mean(axis=-1)


def _numpy_pa_mpjpe(pred, true):
    errors = []
    for p, t in zip(pred, true):
        mu_p, mu_t = p.mean(0), t.mean(0)
        x, y = p - mu_p, t - mu_t
        u, s, vt = np.linalg.svd(y.T @ x)  # Umeyama: maximise tr(R^T Y^T X)
        d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        rotation = u @ d @ vt
        scale = np.trace(np.diag(s) @ d) / np.sum(x**2)
        aligned = scale * x @ rotation.T + mu_t
        errors.append(np.linalg.norm(aligned - t, axis=-1).mean())
    return np.array(errors)


@pytest.mark.slow
def test_h36m_protocols_match_numpy_on_the_layout(tmp_path, method):
    _, state = method
    _write_h36m_fixture(tmp_path / "h36m", np.random.default_rng(8))
    hmr = build_method(tiny_config(**{"data.source": "h36m", "data.h36m_dir": str(tmp_path / "h36m")}))
    frozen = hmr.frozen_inputs()
    batches = [{key: batch[key] for key in ("image", "keypoints_2d", "visibility", "joints_3d")}
               for batch in hmr.eval_loader(4)]
    summary = hmr.evaluate_batches(state, frozen, batches)
    assert summary["num_examples"] == 6
    # Reference: numpy MPJPE / PA-MPJPE of the model's 14 joints against the layout's joints.
    predict = jax.jit(lambda images: hmr.body(frozen["smpl"], hmr.predict_thetas(state.params["generator"], images)[-1],
                                              IMAGE_SIZE)["joints_3d"][:, :14])
    pred = np.concatenate([np.asarray(predict(batch["image"])) for batch in batches]) * 1000.0
    true = np.concatenate([batch["joints_3d"] for batch in batches]) * 1000.0
    np.testing.assert_allclose(summary["protocol1_mpjpe"], _numpy_mpjpe(pred, true).mean(), rtol=1e-4)
    np.testing.assert_allclose(summary["protocol2_pa_mpjpe"], _numpy_pa_mpjpe(pred, true).mean(), rtol=1e-3)
    picture = hmr.visualize(state, batches[0], frozen)
    assert picture.dtype == np.uint8 and picture.ndim == 3


@pytest.mark.slow
def test_short_run_writes_metrics(tmp_path):
    workdir = str(tmp_path / "run")
    final = runs.train_and_evaluate(tiny_config(), workdir)
    records = read_metrics(workdir)
    train = [r for r in records if r.get("split") == "train"]
    assert [r["phase"] for r in train] == ["adversarial"] * 3
    for name in ("loss", "keypoints_2d_loss", "joints_3d_loss", "smpl_loss", "adversarial_loss", "discriminator_loss"):
        assert all(np.isfinite(r[name]) for r in train), name
    for key in ("mpjpe", "pa_mpjpe", "pck@0.1", "pose_outside_limits", "pose_limit_excess_deg", "mean_abs_betas"):
        assert np.isfinite(final[key]), key
    assert final["num_examples"] == 6
    result = runs.evaluate_run(workdir)
    assert result.metrics["mpjpe"] == pytest.approx(final["mpjpe"], rel=1e-5)
    assert result.image.dtype == np.uint8 and result.image.ndim == 3
