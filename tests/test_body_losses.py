"""Tests for landmarkjax.losses.body and landmarkjax.losses.adversarial against numpy and hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from landmarkjax.losses import (
    COCOPLUS_HIP_INDICES,
    HMR_LOSS_WEIGHTS,
    SMPL_ROOT_INDICES,
    align_by_pelvis,
    joints_3d_loss,
    keypoint_2d_l1_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    smpl_parameter_loss,
)

_RNG = np.random.default_rng(0)


def test_keypoint_l1_matches_numpy_and_ignores_invisible_points():
    predicted = _RNG.normal(size=(3, 19, 2)).astype(np.float32)
    target = _RNG.normal(size=(3, 19, 2)).astype(np.float32)
    visibility = (_RNG.uniform(size=(3, 19)) > 0.4).astype(np.float32)
    visible = visibility.astype(bool)
    expected = np.abs(predicted - target)[visible].sum() / (2 * visible.sum())
    got = jax.jit(keypoint_2d_l1_loss)(predicted, target, visibility)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    plain = np.abs(predicted - target).mean()
    np.testing.assert_allclose(keypoint_2d_l1_loss(predicted, target), plain, rtol=1e-6)

    moved = predicted.copy()
    moved[~visible] += 100.0  # invisible points may be anywhere
    np.testing.assert_allclose(keypoint_2d_l1_loss(moved, target, visibility), expected, rtol=1e-6)
    gradient = jax.grad(keypoint_2d_l1_loss)(jnp.asarray(predicted), target, visibility)
    np.testing.assert_array_equal(np.asarray(gradient)[~visible], 0.0)


def test_keypoint_l1_all_invisible_is_zero_with_zero_gradient():
    predicted = jnp.asarray(_RNG.normal(size=(2, 19, 2)), jnp.float32)
    target = jnp.zeros((2, 19, 2))
    hidden = jnp.zeros((2, 19))
    assert float(keypoint_2d_l1_loss(predicted, target, hidden)) == 0.0
    gradient = jax.grad(keypoint_2d_l1_loss)(predicted, target, hidden)
    assert np.all(np.asarray(gradient) == 0.0)


def test_unlabelled_targets_may_be_nan():
    predicted = jnp.asarray(_RNG.normal(size=(2, 19, 3)), jnp.float32)
    target = np.asarray(_RNG.normal(size=(2, 19, 3)), np.float32)
    visibility = np.ones((2, 19), np.float32)
    visibility[1, 4:] = 0.0
    nan_target = target.copy()
    nan_target[1, 4:] = np.nan
    for loss in (
        lambda p, t: keypoint_2d_l1_loss(p[..., :2], t[..., :2], visibility),
        lambda p, t: joints_3d_loss(p, t, np.array([1.0, 0.0], np.float32)),
    ):
        value, gradient = jax.value_and_grad(loss)(predicted, nan_target)
        np.testing.assert_allclose(value, loss(predicted, target), rtol=1e-6)
        assert np.all(np.isfinite(np.asarray(gradient)))
    rotations = jnp.broadcast_to(jnp.eye(3), (2, 24, 3, 3))
    nan_rotations = np.array(rotations)
    nan_rotations[1] = np.nan
    value, gradient = jax.value_and_grad(smpl_parameter_loss)(
        rotations, nan_rotations, jnp.zeros((2, 10)), jnp.zeros((2, 10)), jnp.array([1.0, 0.0])
    )
    assert float(value) == 0.0 and np.all(np.isfinite(np.asarray(gradient)))


def test_keypoint_l1_rejects_wrong_counts():
    with pytest.raises(ValueError, match="same shape"):
        keypoint_2d_l1_loss(jnp.zeros((2, 19, 2)), jnp.zeros((2, 14, 2)))
    with pytest.raises(ValueError, match=r"weights must have shape \(2, 19\)"):
        keypoint_2d_l1_loss(jnp.zeros((2, 19, 2)), jnp.zeros((2, 19, 2)), jnp.ones((2, 14)))
    with pytest.raises(ValueError, match=r"\[\.\.\., K, 2\]"):
        keypoint_2d_l1_loss(jnp.zeros((2, 19, 3)), jnp.zeros((2, 19, 3)))


def test_align_by_pelvis_uses_the_hips_or_the_root():
    joints = _RNG.normal(size=(4, 19, 3)).astype(np.float32)
    hips = (joints[:, 2] + joints[:, 3]) / 2
    np.testing.assert_allclose(align_by_pelvis(joints), joints - hips[:, None], atol=1e-6)
    np.testing.assert_allclose(align_by_pelvis(joints, SMPL_ROOT_INDICES), joints - joints[:, :1], atol=1e-6)
    assert COCOPLUS_HIP_INDICES == (2, 3)
    with pytest.raises(ValueError, match="pelvis_indices"):
        align_by_pelvis(joints, (19,))


@pytest.mark.parametrize("pelvis_indices", [COCOPLUS_HIP_INDICES, SMPL_ROOT_INDICES])
def test_joints_3d_loss_matches_numpy_and_is_translation_invariant(pelvis_indices):
    predicted = _RNG.normal(size=(4, 19, 3)).astype(np.float32)
    target = _RNG.normal(size=(4, 19, 3)).astype(np.float32)
    has_3d = np.array([1.0, 0.0, 1.0, 1.0], np.float32)

    def aligned(joints):
        return joints - joints[:, list(pelvis_indices)].mean(axis=1, keepdims=True)

    error = (aligned(predicted) - aligned(target)) ** 2
    expected = 0.5 * error[has_3d > 0].mean()
    got = joints_3d_loss(predicted, target, has_3d, pelvis_indices)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    shifted = predicted + _RNG.normal(size=(4, 1, 3)).astype(np.float32) * 10.0
    np.testing.assert_allclose(joints_3d_loss(shifted, target, has_3d, pelvis_indices), expected, rtol=1e-4)
    # A sample without 3D contributes nothing; no sample with 3D gives exactly 0.
    changed = predicted.copy()
    changed[1] += 5.0 * _RNG.normal(size=(19, 3)).astype(np.float32)
    np.testing.assert_allclose(joints_3d_loss(changed, target, has_3d, pelvis_indices), expected, rtol=1e-5)
    assert float(joints_3d_loss(predicted, target, np.zeros(4, np.float32), pelvis_indices)) == 0.0


def test_smpl_parameter_loss_on_rotation_matrices():
    poses = _RNG.normal(size=(2, 3, 24, 3)) * 0.5
    rotations = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix()
    rotations = rotations.reshape(2, 3, 24, 3, 3).astype(np.float32)
    betas = _RNG.normal(size=(2, 3, 10)).astype(np.float32)
    has_3d = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], np.float32)
    predicted = np.concatenate([rotations[0].reshape(3, -1), betas[0]], axis=-1)
    target = np.concatenate([rotations[1].reshape(3, -1), betas[1]], axis=-1)
    assert predicted.shape == (3, 226)  # 24 * 9 + 10, as HMR
    for row in range(2):
        expected = 0.5 * ((predicted - target) ** 2)[has_3d[row] > 0].mean()
        got = smpl_parameter_loss(rotations[0], rotations[1], betas[0], betas[1], has_3d[row])
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(smpl_parameter_loss(rotations[0], rotations[0], betas[0], betas[0])) == 0.0
    with pytest.raises(ValueError, match="betas must be"):
        smpl_parameter_loss(rotations[0], rotations[1], betas[0, :2], betas[1, :2])


def test_lsgan_losses_vanish_at_the_optimum_and_match_hand_computation():
    ones, zeros = jnp.ones((4, 25)), jnp.zeros((6, 25))
    assert float(lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(lsgan_generator_loss(ones)) == 0.0
    real = jnp.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]])
    fake = jnp.array([[0.0, 1.0, -1.0]])
    # D: real rows sum (0 + 1 + 1) = 2 and (0.25 + 0 + 0) = 0.25 -> mean 1.125; fake: 0 + 1 + 1 = 2.
    np.testing.assert_allclose(lsgan_discriminator_loss(real, fake), 1.125 + 2.0, rtol=1e-6)
    # G: (0 - 1)^2 + 0 + (-1 - 1)^2 = 5.
    np.testing.assert_allclose(lsgan_generator_loss(fake), 5.0, rtol=1e-6)
    with pytest.raises(ValueError, match="same number of heads"):
        lsgan_discriminator_loss(jnp.ones((2, 25)), jnp.ones((2, 24)))
    assert HMR_LOSS_WEIGHTS == {"keypoints_2d": 60.0, "joints_3d": 60.0, "smpl_parameters": 60.0, "adversarial": 1.0}
