"""HMR's cocoplus keypoints from an SMPL forward pass: the model's regressor, or the SMPL-joint mapping."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.body import (
    COCOPLUS_JOINT_NAMES,
    SMPL_TO_COCOPLUS,
    cocoplus_from_smpl_joints,
    cocoplus_keypoints,
    make_synthetic_smpl,
    smpl_forward,
)

# Written out by hand from the SMPL joint order (0 pelvis, 1 left hip, 2 right hip, 4/5 knees, 7/8 ankles,
# 12 neck, 16/17 shoulders, 18/19 elbows, 20/21 wrists); -1: head top, nose, eyes, ears.
_EXPECTED_MAPPING = (8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12) + (-1,) * 6


@pytest.fixture(scope="module")
def model():
    return make_synthetic_smpl(seed=0)


def test_mapping_matches_the_joint_names():
    assert SMPL_TO_COCOPLUS == _EXPECTED_MAPPING
    assert len(COCOPLUS_JOINT_NAMES) == 19
    joints = np.random.default_rng(0).normal(size=(2, 24, 3)).astype(np.float32)
    keypoints, valid = cocoplus_from_smpl_joints(joints)
    assert keypoints.shape == (2, 19, 3)
    np.testing.assert_array_equal(valid, np.array(_EXPECTED_MAPPING) >= 0)
    np.testing.assert_array_equal(keypoints[:, :13], joints[:, list(_EXPECTED_MAPPING[:13])])
    np.testing.assert_array_equal(keypoints[:, 13:], 0.0)
    with pytest.raises(ValueError, match=r"joints must have shape \[\.\.\., 24, 3\]"):
        cocoplus_from_smpl_joints(joints[:, :19])


def test_regressor_and_mapping_agree_on_the_synthetic_model(model):
    rng = np.random.default_rng(1)
    betas = jnp.asarray(rng.normal(size=(2, 10)), jnp.float32)
    pose = jnp.asarray(rng.normal(size=(2, 23, 3)) * 0.4, jnp.float32)
    forward = jax.jit(smpl_forward)
    without_regressor = dataclasses.replace(model, extra_regressors={})
    root, translation = jnp.zeros((2, 3)), jnp.ones((2, 3))
    for body_pose, tolerance in ((jnp.zeros((2, 23, 3)), 1e-5), (pose, 0.02)):
        keypoints, valid = cocoplus_keypoints(forward(model, betas, body_pose, root, translation))
        assert keypoints.shape == (2, 19, 3) and bool(np.all(valid))
        mapped, mapped_valid = cocoplus_keypoints(forward(without_regressor, betas, body_pose, root, translation))
        assert int(np.sum(mapped_valid)) == 13
        # In the rest pose the synthetic regressor's 13 LSP rows are SMPL's joint regressor exactly; posed,
        # skinning moves the regressed points off the kinematic joints by millimetres (< 2 cm).
        distance = np.linalg.norm(np.asarray(keypoints[:, :13] - mapped[:, :13]), axis=-1)
        assert distance.max() < tolerance
