"""forward_kinematics, rest_to_posed_transforms and linear_blend_skinning against numpy loops."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy.spatial.transform import Rotation

from landmarkjax.body.kinematics import forward_kinematics, linear_blend_skinning, rest_to_posed_transforms
from landmarkjax.body.smpl_model import SMPL_PARENTS

SMALL_TREE = (-1, 0, 1, 1, 0, 4)


def random_rotations(rng, shape):
    count = int(np.prod(shape))
    return Rotation.random(count, random_state=rng.integers(1 << 31)).as_matrix().reshape(shape + (3, 3))


def reference_world_transforms(parents, rest_joints, rotations):
    """G_j = G_parent @ [[R_j, X_j - X_parent], [0, 1]] for one body, looping over joints."""
    world = []
    for joint, parent in enumerate(parents):
        local = np.eye(4)
        local[:3, :3] = rotations[joint]
        if parent < 0:
            local[:3, 3] = rest_joints[joint]
            world.append(local)
        else:
            local[:3, 3] = rest_joints[joint] - rest_joints[parent]
            world.append(world[parent] @ local)
    return np.stack(world)


class ForwardKinematicsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("smpl", SMPL_PARENTS), ("small", SMALL_TREE))
    def test_matches_reference(self, parents):
        rng = np.random.default_rng(0)
        rest_joints = rng.normal(size=(3, len(parents), 3))
        rotations = random_rotations(rng, (3, len(parents)))
        world = self.variant(lambda j, r: forward_kinematics(parents, j, r))(
            rest_joints.astype(np.float32), rotations.astype(np.float32)
        )
        chex.assert_shape(world, (3, len(parents), 4, 4))
        for b in range(3):
            np.testing.assert_allclose(
                world[b], reference_world_transforms(parents, rest_joints[b], rotations[b]), atol=1e-5
            )

    @chex.variants(with_jit=True, without_jit=True)
    def test_skinning_matches_reference(self):
        rng = np.random.default_rng(1)
        num_vertices, num_joints = 50, 4
        vertices = rng.normal(size=(2, num_vertices, 3))
        weights = rng.random((num_vertices, num_joints))
        weights /= weights.sum(axis=1, keepdims=True)
        transforms = np.tile(np.eye(4), (2, num_joints, 1, 1))
        transforms[..., :3, :3] = random_rotations(rng, (2, num_joints))
        transforms[..., :3, 3] = rng.normal(size=(2, num_joints, 3))
        posed = self.variant(linear_blend_skinning)(
            vertices.astype(np.float32), weights.astype(np.float32), transforms.astype(np.float32)
        )
        for b in range(2):
            for i in range(num_vertices):
                blended = sum(weights[i, j] * transforms[b, j] for j in range(num_joints))
                expected = (blended @ np.append(vertices[b, i], 1.0))[:3]
                np.testing.assert_allclose(posed[b, i], expected, atol=1e-5)


def test_identity_rotations_give_rest_joints():
    rest_joints = np.random.default_rng(2).normal(size=(24, 3)).astype(np.float32)
    world = forward_kinematics(SMPL_PARENTS, rest_joints, np.tile(np.eye(3, dtype=np.float32), (24, 1, 1)))
    np.testing.assert_allclose(world[:, :3, 3], rest_joints, atol=1e-6)
    np.testing.assert_allclose(world[:, :3, :3], np.tile(np.eye(3), (24, 1, 1)), atol=1e-6)


def test_broadcasts_shared_rest_joints_over_a_batch_of_rotations():
    rng = np.random.default_rng(3)
    rest_joints = rng.normal(size=(6, 3)).astype(np.float32)
    rotations = random_rotations(rng, (4, 6)).astype(np.float32)
    world = forward_kinematics(np.asarray(SMALL_TREE), rest_joints, rotations)
    for b in range(4):
        np.testing.assert_allclose(
            world[b], reference_world_transforms(SMALL_TREE, rest_joints, rotations[b]), atol=1e-5
        )


def test_rest_to_posed_maps_rest_joints_to_posed_joints():
    rng = np.random.default_rng(4)
    rest_joints = rng.normal(size=(2, 24, 3)).astype(np.float32)
    world = forward_kinematics(SMPL_PARENTS, rest_joints, random_rotations(rng, (2, 24)).astype(np.float32))
    skinning = rest_to_posed_transforms(world, rest_joints)
    moved = np.einsum("bjik,bjk->bji", skinning[..., :3, :3], rest_joints) + skinning[..., :3, 3]
    np.testing.assert_allclose(moved, world[..., :3, 3], atol=1e-5)
    np.testing.assert_allclose(skinning[..., 3, :], np.tile([0.0, 0.0, 0.0, 1.0], (2, 24, 1)))


def test_skinning_with_one_hot_weights_is_rigid_and_3x4_equals_4x4():
    rng = np.random.default_rng(5)
    vertices = rng.normal(size=(30, 3)).astype(np.float32)
    owner = rng.integers(0, 3, size=30)
    weights = np.eye(3, dtype=np.float32)[owner]
    transforms = np.tile(np.eye(4, dtype=np.float32), (3, 1, 1))
    transforms[:, :3, :3] = random_rotations(rng, (3,))
    transforms[:, :3, 3] = rng.normal(size=(3, 3))
    posed = linear_blend_skinning(vertices, weights, transforms)
    expected = np.einsum("vij,vj->vi", transforms[owner, :3, :3], vertices) + transforms[owner, :3, 3]
    np.testing.assert_allclose(posed, expected, atol=1e-5)
    np.testing.assert_allclose(linear_blend_skinning(vertices, weights, transforms[:, :3]), posed, atol=1e-6)
    per_batch_weights = linear_blend_skinning(vertices[None], weights[None], transforms[None])
    np.testing.assert_allclose(per_batch_weights[0], posed, atol=1e-6)


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(seed=st.integers(0, 10_000), angle_scale=st.sampled_from([0.0, 1e-6, 0.5, 3.0]))
def test_chain_gradients_are_finite(seed, angle_scale):
    rng = np.random.default_rng(seed)
    rest_joints = rng.normal(size=(6, 3)).astype(np.float32)
    axis_angles = (rng.normal(size=(6, 3)) * angle_scale).astype(np.float32)
    gradients = _chain_gradient(rest_joints, axis_angles)
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))


@jax.jit
def _chain_gradient(rest_joints, axis_angles):
    from landmarkjax.ops.geometry import rodrigues

    def loss(rest_joints, axis_angles):
        world = forward_kinematics(SMALL_TREE, rest_joints, rodrigues(axis_angles))
        return jnp.sum(jnp.sin(world[:, :3, :]))

    return jax.grad(loss, argnums=(0, 1))(rest_joints, axis_angles)


def test_errors():
    joints = np.zeros((24, 3), np.float32)
    rotations = np.tile(np.eye(3, dtype=np.float32), (24, 1, 1))
    with pytest.raises(ValueError, match="rest_joints must have shape"):
        forward_kinematics(SMPL_PARENTS, joints[:23], rotations)
    with pytest.raises(ValueError, match="rotations must have shape"):
        forward_kinematics(SMPL_PARENTS, joints, rotations[..., :2])
    with pytest.raises(ValueError, match="parents"):
        forward_kinematics((-1, 2, 0) + SMPL_PARENTS[3:], joints, rotations)
    with pytest.raises(ValueError, match="parents must be static"):
        jax.jit(lambda p: forward_kinematics(p, joints, rotations))(jnp.asarray(SMPL_PARENTS))
    with pytest.raises(ValueError, match="skinning_weights must have shape"):
        linear_blend_skinning(np.zeros((5, 3)), np.zeros((5, 3)), np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="transforms must have shape"):
        linear_blend_skinning(np.zeros((5, 3)), np.zeros((5, 4)), np.zeros((4, 2, 4)))
    with pytest.raises(ValueError, match="rest_vertices must have shape"):
        linear_blend_skinning(np.zeros((5, 2)), np.zeros((5, 4)), np.zeros((4, 4, 4)))


def test_package_exports_its_public_names():
    import landmarkjax.body as body

    for name in body.__all__:
        assert hasattr(body, name), name
    assert callable(body.smpl_forward) and callable(body.load_smpl)
