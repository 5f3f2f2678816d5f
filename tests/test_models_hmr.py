"""Tests for landmarkjax.models.hmr: shapes, IEF's start at the mean Theta, the factorised discriminator's
heads (against a numpy forward pass), and parameter counts against closed forms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from landmarkjax.models import hmr


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_hmr_small_output_shapes():
    model = hmr.hmr_small(width=4, hidden=16)
    images = jnp.zeros((2, 32, 32, 3))

    def init_and_apply(key):
        init_key, dropout_key = jax.random.split(key)
        variables = model.init(init_key, images)
        return variables, model.apply(variables, images, deterministic=False, rngs={"dropout": dropout_key})

    # Shapes only (jax.eval_shape traces without compiling: a full compile takes seconds on a busy CPU).
    with jax.default_prng_impl("rbg"):
        variables, thetas = jax.eval_shape(init_and_apply, jax.random.key(0))
    assert set(variables) == {"params"}  # GroupNorm: no batch_stats
    assert thetas.shape == (3, 2, 85) and hmr.theta_size() == 85 and hmr.theta_size("6d") == 157
    camera, pose, betas = hmr.split_theta(jnp.zeros(thetas.shape[1:]))
    assert camera.shape == (2, 3) and pose.shape == (2, 24, 3) and betas.shape == (2, 10)
    assert hmr.pose_to_rotation_matrices(pose).shape == (2, 24, 3, 3)
    _, pose_6d, _ = hmr.split_theta(jnp.zeros((2, 157)), "6d")
    assert pose_6d.shape == (2, 24, 6) and hmr.pose_to_rotation_matrices(pose_6d, "6d").shape == (2, 24, 3, 3)


@pytest.mark.parametrize("representation", ["axis_angle", "6d"])
def test_ief_iterations_start_at_the_mean(representation):
    global_orient = np.array([np.pi, 0.0, 0.0])
    regressor = hmr.IEFRegressor(
        hidden=8,
        pose_representation=representation,
        initial_global_orient=tuple(global_orient),
        final_kernel_init=nn.initializers.zeros,
    )
    features = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), jnp.float32)
    with jax.default_prng_impl("rbg"):
        variables = jax.jit(regressor.init)(jax.random.key(0), features)
        thetas = jax.jit(regressor.apply)(variables, features)
    # Closed form of the mean: camera [0.9, 0, 0], the root rotation, identity elsewhere, zero shape.
    rotations = np.broadcast_to(np.eye(3), (24, 3, 3)).copy()
    rotations[0] = Rotation.from_rotvec(global_orient).as_matrix()
    if representation == "axis_angle":
        pose = np.zeros((24, 3))
        pose[0] = global_orient
    else:
        pose = np.concatenate([rotations[:, :, 0], rotations[:, :, 1]], axis=-1)
    expected = np.concatenate([[0.9, 0.0, 0.0], pose.reshape(-1), np.zeros(10)])
    np.testing.assert_allclose(variables["params"]["mean_theta"], expected, atol=1e-6)
    assert thetas.shape == (3, 3, expected.size)
    np.testing.assert_allclose(thetas, np.broadcast_to(expected, thetas.shape), atol=1e-6)
    camera, pose_out, _ = hmr.split_theta(thetas[-1], representation)
    np.testing.assert_allclose(hmr.pose_to_rotation_matrices(pose_out, representation)[0], rotations, atol=1e-6)


def test_ief_adds_a_residual_per_iteration():
    """With a non-zero last layer each iteration moves Theta: theta_t+1 = theta_t + MLP([f, theta_t])."""
    regressor = hmr.IEFRegressor(hidden=8, dropout_rate=0.0, final_kernel_init=nn.initializers.normal(0.1))
    features = jnp.asarray(np.random.default_rng(1).normal(size=(2, 4)), jnp.float32)
    with jax.default_prng_impl("rbg"):
        variables = regressor.init(jax.random.key(0), features)
    thetas = np.asarray(regressor.apply(variables, features), np.float64)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    theta = np.broadcast_to(params["mean_theta"], (2, 85))
    for t in range(3):
        x = np.concatenate([np.asarray(features, np.float64), theta], axis=-1)
        for name in ("fc1", "fc2"):
            x = np.maximum(x @ params[name]["kernel"] + params[name]["bias"], 0.0)
        theta = theta + x @ params["fc3"]["kernel"] + params["fc3"]["bias"]
        np.testing.assert_allclose(thetas[t], theta, atol=1e-4)
    assert np.abs(thetas[2] - thetas[0]).max() > 1e-3


def test_discriminator_heads_shapes_and_shared_convolutions():
    rng = np.random.default_rng(0)
    rotations = Rotation.random(4 * 23, random_state=0).as_matrix().reshape(4, 23, 3, 3).astype(np.float32)
    betas = rng.normal(size=(4, 10)).astype(np.float32)
    discriminator = hmr.FactorisedDiscriminator(pose_hidden=16)
    with jax.default_prng_impl("rbg"):
        variables = jax.jit(discriminator.init)(jax.random.key(0), rotations, betas)
    apply = jax.jit(discriminator.apply)
    scores = np.asarray(apply(variables, rotations, betas), np.float64)
    assert scores.shape == (4, 25)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    # One set of 1x1 convolution weights for all 23 joints, and a 32-wide output per joint.
    assert params["joint_conv1"]["kernel"].shape == (1, 9, 32)
    assert params["joint_conv2"]["kernel"].shape == (1, 32, 32)
    assert params["joint_heads_kernel"].shape == (23, 32)
    assert sorted(k for k in params if k.startswith("joint")) == [
        "joint_conv1", "joint_conv2", "joint_heads_bias", "joint_heads_kernel"
    ]

    # Numpy forward pass of the three kinds of head.
    x = rotations.reshape(4, 23, 9).astype(np.float64)
    for name in ("joint_conv1", "joint_conv2"):
        x = np.maximum(x @ params[name]["kernel"][0] + params[name]["bias"], 0.0)
    joint = np.einsum("bkc,kc->bk", x, params["joint_heads_kernel"]) + params["joint_heads_bias"]
    pose = x.reshape(4, -1)
    for name in ("pose_fc1", "pose_fc2"):
        pose = np.maximum(pose @ params[name]["kernel"] + params[name]["bias"], 0.0)
    pose = pose @ params["pose_out"]["kernel"] + params["pose_out"]["bias"]
    shape = betas.astype(np.float64)
    for name in ("shape_fc1", "shape_fc2"):
        shape = np.maximum(shape @ params[name]["kernel"] + params[name]["bias"], 0.0)
    shape = shape @ params["shape_out"]["kernel"] + params["shape_out"]["bias"]
    np.testing.assert_allclose(scores, np.concatenate([joint, pose, shape], axis=-1), atol=1e-4)

    # A joint's head sees only that joint: changing joint 5 moves column 5 and the whole-pose column only.
    changed = rotations.copy()
    changed[:, 5] = Rotation.random(4, random_state=9).as_matrix()
    moved = np.abs(np.asarray(apply(variables, changed, betas)) - scores).max(axis=0) > 1e-6
    assert set(np.flatnonzero(moved)) <= {5, 23} and moved[5]


def test_parameter_counts_match_closed_forms():
    with jax.default_prng_impl("rbg"):
        key = jax.random.key(0)
        # ResNet-50 without its classifier: torchvision's resnet50 has 25,557,032 parameters, of which the
        # ImageNet fc holds 2048 * 1000 + 1000; GroupNorm has as many parameters as BatchNorm.
        shapes = jax.eval_shape(hmr.resnet50().init, key, jnp.zeros((1, 64, 64, 3)))
        assert _count(shapes) == 25_557_032 - 2_049_000

        width = 4
        encoder = hmr.small_resnet(width)
        stem = 7 * 7 * 3 * width + 2 * width
        stage0 = 2 * (9 * width * width + 2 * width)
        later = 0
        for c in (2 * width, 4 * width, 8 * width):
            later += 9 * (c // 2) * c + 2 * c + 9 * c * c + 2 * c + (c // 2) * c + 2 * c
        shapes = jax.eval_shape(encoder.init, key, jnp.zeros((1, 32, 32, 3)))
        assert _count(shapes) == stem + stage0 + later
        assert encoder.num_features == 8 * width

        hidden, theta = 16, 85
        regressor = hmr.IEFRegressor(hidden=hidden)
        shapes = jax.eval_shape(regressor.init, key, jnp.zeros((1, 8 * width)))
        expected = (8 * width + theta) * hidden + hidden  # fc1 on [features, Theta]
        expected += hidden * hidden + hidden + hidden * theta + theta + theta  # fc2, fc3, mean Theta
        assert _count(shapes) == expected

        shapes = jax.eval_shape(
            hmr.FactorisedDiscriminator().init, key, jnp.zeros((1, 23, 3, 3)), jnp.zeros((1, 10))
        )
        joints = (9 * 32 + 32) + (32 * 32 + 32) + 23 * 32 + 23
        pose = (23 * 32 * 1024 + 1024) + (1024 * 1024 + 1024) + 1024 + 1
        shape = (10 * 10 + 10) + (10 * 5 + 5) + 5 + 1
        assert _count(shapes) == joints + pose + shape


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pose_representation must be one of"):
        hmr.theta_size("quaternion")
    with pytest.raises(ValueError, match=r"global_orient must be one axis-angle vector"):
        hmr.mean_theta(global_orient=(0.0, 0.0))
    with pytest.raises(ValueError, match=r"theta must have shape"):
        hmr.split_theta(jnp.zeros((2, 80)))
    with pytest.raises(ValueError, match=r"rotations must have shape \[B, K, 3, 3\]"):
        hmr.FactorisedDiscriminator().init(jax.random.key(0), jnp.zeros((2, 23, 9)), jnp.zeros((2, 10)))
