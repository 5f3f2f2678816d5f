"""Tests for landmarkjax.ops.rotations against scipy and Gram-Schmidt closed forms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from landmarkjax.ops.geometry import rodrigues
from landmarkjax.ops.rotations import matrix_to_axis_angle, matrix_to_rotation_6d, rotation_6d_to_matrix


def _gram_schmidt_numpy(six: np.ndarray) -> np.ndarray:
    """Independent reference: numpy QR of the [3, 2] matrix of the two columns, signs fixed."""
    out = np.empty(six.shape[:-1] + (3, 3))
    for index in np.ndindex(six.shape[:-1]):
        columns = np.stack([six[index][:3], six[index][3:]], axis=-1).astype(np.float64)
        q, r = np.linalg.qr(columns)
        q = q * np.sign(np.diag(r))[None, :]  # positive diagonal of R: the Gram-Schmidt basis
        out[index] = np.stack([q[:, 0], q[:, 1], np.cross(q[:, 0], q[:, 1])], axis=-1)
    return out


class Rotation6dTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_random_inputs_give_proper_rotations(self):
        six = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
        got = np.asarray(self.variant(rotation_6d_to_matrix)(six), np.float64)
        chex.assert_shape(got, (4, 5, 3, 3))
        identity = np.broadcast_to(np.eye(3), got.shape)
        np.testing.assert_allclose(np.swapaxes(got, -1, -2) @ got, identity, atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-5)
        np.testing.assert_allclose(got, _gram_schmidt_numpy(six), atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_round_trip_from_rotation_matrices(self):
        matrices = Rotation.random(12, random_state=1).as_matrix().astype(np.float32)
        six = self.variant(matrix_to_rotation_6d)(matrices)
        np.testing.assert_allclose(six[:, :3], matrices[:, :, 0])
        np.testing.assert_allclose(six[:, 3:], matrices[:, :, 1])
        np.testing.assert_allclose(self.variant(rotation_6d_to_matrix)(six), matrices, atol=1e-6)

    def test_equals_rodrigues_for_the_same_rotation(self):
        rng = np.random.default_rng(2)
        axis_angle = rng.normal(size=(10, 3)).astype(np.float32)
        expected = Rotation.from_rotvec(axis_angle).as_matrix()
        # Gram-Schmidt ignores the lengths of the halves and the first column's share of the second.
        first = expected[:, :, 0] * rng.uniform(0.2, 5.0, size=(10, 1))
        second = expected[:, :, 1] * rng.uniform(0.2, 5.0, size=(10, 1)) + expected[:, :, 0] * rng.normal(
            size=(10, 1)
        )
        six = np.concatenate([first, second], axis=-1).astype(np.float32)
        got = rotation_6d_to_matrix(six)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(got, rodrigues(axis_angle), atol=1e-5)

    def test_identity_and_finite_gradients(self):
        identity_6d = jnp.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        np.testing.assert_allclose(rotation_6d_to_matrix(identity_6d), np.eye(3), atol=1e-7)
        for six in (identity_6d, jnp.zeros(6), jnp.array([1.0, 0.0, 0.0, 2.0, 0.0, 0.0])):
            weights = jnp.arange(9.0).reshape(3, 3)
            gradient = jax.grad(lambda x: jnp.sum(rotation_6d_to_matrix(x) * weights))(six)
            assert np.all(np.isfinite(gradient))

    def test_bad_shapes_raise(self):
        with pytest.raises(ValueError, match=r"rotation must have shape \[\.\.\., 3, 3\]"):
            matrix_to_axis_angle(jnp.zeros((4, 3)))
        with pytest.raises(ValueError, match=r"rotation_6d must have shape \[\.\.\., 6\]"):
            rotation_6d_to_matrix(jnp.zeros((2, 9)))
        with pytest.raises(ValueError, match=r"rotation must have shape \[\.\.\., 3, 3\]"):
            matrix_to_rotation_6d(jnp.zeros((2, 3, 2)))


class MatrixToAxisAngleTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_scipy(self):
        rng = np.random.default_rng(3)
        axis_angle = rng.normal(size=(40, 3))
        angles = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
        axis_angle = axis_angle / angles * np.concatenate(
            [rng.uniform(0.0, np.pi - 1e-2, size=(36, 1)), [[0.0], [1e-5], [3e-3], [np.pi - 2e-2]]]
        )
        matrices = Rotation.from_rotvec(axis_angle).as_matrix().astype(np.float32)
        expected = Rotation.from_matrix(matrices.astype(np.float64)).as_rotvec()
        got = self.variant(matrix_to_axis_angle)(matrices)
        chex.assert_shape(got, (40, 3))
        np.testing.assert_allclose(got, expected, atol=2e-5)

    def test_half_turns_round_trip_through_rodrigues(self):
        axes = Rotation.random(6, random_state=4).as_rotvec()
        axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
        axes[0] = [1.0, 0.0, 0.0]
        matrices = Rotation.from_rotvec(axes * np.pi).as_matrix().astype(np.float32)
        got = np.asarray(matrix_to_axis_angle(matrices))
        np.testing.assert_allclose(np.linalg.norm(got, axis=-1), np.pi, atol=1e-5)
        # The same axis, with either sign.
        np.testing.assert_allclose(np.abs(np.sum(got * axes, axis=-1)), np.pi, atol=1e-4)
        np.testing.assert_allclose(rodrigues(got), matrices, atol=1e-5)

    def test_derivative_at_identity_is_the_vee_map(self):
        """d log(R) at R = I along skew(e_i) is e_i: the inverse of Rodrigues' derivative at zero."""
        tangents = np.stack(
            [np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]]) for v in np.eye(3)]
        ).astype(np.float32)
        values, derivatives = jax.jit(
            jax.vmap(lambda t: jax.jvp(matrix_to_axis_angle, (jnp.eye(3),), (t,)))
        )(jnp.asarray(tangents))
        np.testing.assert_allclose(values, 0.0, atol=1e-7)
        np.testing.assert_allclose(derivatives, np.eye(3), atol=1e-6)
        gradient = jax.jit(jax.grad(lambda r: jnp.sum(matrix_to_axis_angle(r))))(jnp.eye(3))
        assert np.all(np.isfinite(np.asarray(gradient)))
