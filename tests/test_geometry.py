"""Tests for landmarkjax.ops.geometry against scipy and closed forms."""

import functools

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from landmarkjax.ops.geometry import (
    apply_similarity,
    rodrigues,
    similarity_procrustes,
    weak_perspective_project,
)


def _skew_numpy(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _random_similarity(rng: np.random.Generator, dimension: int):
    rotation = Rotation.random(random_state=rng).as_matrix() if dimension == 3 else None
    if dimension == 2:
        angle = rng.uniform(-np.pi, np.pi)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = rng.uniform(0.5, 2.0)
    translation = rng.normal(size=dimension) * 3.0
    return scale, rotation, translation


class RodriguesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_scipy(self):
        rng = np.random.default_rng(0)
        axis_angle = rng.normal(size=(4, 5, 3)) * 1.5
        axis_angle[0, 0] = 0.0
        axis_angle[0, 1] = [1e-5, -2e-5, 3e-6]  # inside the Taylor branch
        axis_angle[0, 2] = [0.0, 0.0, np.pi]
        expected = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix().reshape(4, 5, 3, 3)
        got = self.variant(rodrigues)(jnp.asarray(axis_angle, jnp.float32))
        chex.assert_shape(got, (4, 5, 3, 3))
        np.testing.assert_allclose(got, expected, atol=1e-6)

    def test_gradient_at_zero_is_skew_basis(self):
        jacobian = jax.jit(jax.jacfwd(rodrigues))(jnp.zeros(3))
        jacobian_rev = jax.jit(jax.jacrev(rodrigues))(jnp.zeros(3))
        for i in range(3):
            np.testing.assert_allclose(jacobian[..., i], _skew_numpy(np.eye(3)[i]), atol=1e-7)
            np.testing.assert_allclose(jacobian_rev[..., i], _skew_numpy(np.eye(3)[i]), atol=1e-7)

    def test_gradient_matches_finite_differences_away_from_zero(self):
        w = np.array([0.3, -0.7, 1.1])
        jacobian = np.asarray(jax.jit(jax.jacfwd(rodrigues))(jnp.asarray(w, jnp.float32)))
        eps = 1e-6
        for i in range(3):
            delta = np.eye(3)[i] * eps
            numeric = (
                Rotation.from_rotvec(w + delta).as_matrix() - Rotation.from_rotvec(w - delta).as_matrix()
            ) / (2 * eps)
            np.testing.assert_allclose(jacobian[..., i], numeric, atol=1e-5)

    def test_vmap_and_orthonormal(self):
        w = jax.random.normal(jax.random.PRNGKey(1), (7, 3))
        got = jax.jit(jax.vmap(rodrigues))(w)
        np.testing.assert_allclose(got @ jnp.swapaxes(got, -1, -2), np.broadcast_to(np.eye(3), got.shape), atol=1e-5)
        np.testing.assert_allclose(jnp.linalg.det(got), 1.0, atol=1e-5)

    def test_rejects_wrong_shape(self):
        with pytest.raises(ValueError, match="axis_angle"):
            rodrigues(jnp.zeros((4, 2)))


_rodrigues_weighted_sum_grad = jax.jit(
    jax.grad(lambda w: jnp.sum(rodrigues(w) * jnp.arange(9.0).reshape(3, 3)))
)


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.float32, (3,), elements=st.floats(-4.0, 4.0, width=32)))
def test_rodrigues_gradient_finite(axis_angle):
    grad = _rodrigues_weighted_sum_grad(axis_angle)
    assert np.all(np.isfinite(grad))


class ProcrustesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(2, 3)
    def test_recovers_known_similarity(self, dimension):
        rng = np.random.default_rng(dimension)
        batch = 3
        source = rng.normal(size=(batch, 12, dimension))
        params = [_random_similarity(rng, dimension) for _ in range(batch)]
        target = np.stack([s * x @ r.T + t for (s, r, t), x in zip(params, source)])
        scale, rotation, translation = self.variant(similarity_procrustes)(
            jnp.asarray(source, jnp.float32), jnp.asarray(target, jnp.float32)
        )
        chex.assert_shape((scale, rotation, translation), ((batch,), (batch, dimension, dimension), (batch, dimension)))
        for b, (s, r, t) in enumerate(params):
            np.testing.assert_allclose(scale[b], s, rtol=1e-4)
            np.testing.assert_allclose(rotation[b], r, atol=1e-4)
            np.testing.assert_allclose(translation[b], t, atol=1e-4)
        aligned = apply_similarity(jnp.asarray(source, jnp.float32), scale, rotation, translation)
        np.testing.assert_allclose(aligned, target, atol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reflected_target_gives_proper_rotation_and_optimal_fit(self):
        rng = np.random.default_rng(7)
        source = rng.normal(size=(20, 3)) * np.array([3.0, 2.0, 1.0])
        target = source * np.array([1.0, 1.0, -1.0])  # a mirror image: the best orthogonal map is a reflection
        scale, rotation, translation = self.variant(similarity_procrustes)(
            jnp.asarray(source, jnp.float32), jnp.asarray(target, jnp.float32)
        )
        np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-5)
        fitted = float(np.sum((target - apply_similarity(source, scale, rotation, translation)) ** 2))
        # Independent check of optimality: no random proper rotation (with its own optimal scale and
        # translation) does better.
        source_c = source - source.mean(0)
        target_c = target - target.mean(0)
        for r in Rotation.random(300, random_state=1).as_matrix():
            rotated = source_c @ r.T
            s = max(np.sum(rotated * target_c) / np.sum(rotated**2), 0.0)
            assert fitted <= np.sum((target_c - s * rotated) ** 2) + 1e-3

    def test_degenerate_source_is_finite(self):
        source = jnp.ones((5, 2))
        target = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
        scale, rotation, translation = similarity_procrustes(source, target)
        assert float(scale) == 0.0
        np.testing.assert_allclose(translation, target.mean(0), atol=1e-6)
        assert np.all(np.isfinite(rotation))

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError, match="target"):
            similarity_procrustes(jnp.zeros((5, 3)), jnp.zeros((6, 3)))
        with pytest.raises(ValueError, match="source"):
            similarity_procrustes(jnp.zeros((3,)), jnp.zeros((3,)))
        with pytest.raises(ValueError, match="rotation"):
            apply_similarity(jnp.zeros((5, 3)), 1.0, jnp.eye(2), jnp.zeros(3))
        with pytest.raises(ValueError, match="translation"):
            apply_similarity(jnp.zeros((5, 3)), 1.0, jnp.eye(3), jnp.zeros(2))


@jax.jit
@functools.partial(jax.grad, argnums=(0, 1))
def _aligned_error_grad(source, target):
    scale, rotation, translation = similarity_procrustes(source, target)
    return jnp.sum((apply_similarity(source, scale, rotation, translation) - target) ** 2)


@settings(max_examples=15, deadline=None)
@given(
    hnp.arrays(np.float32, (8, 3), elements=st.floats(-5.0, 5.0, width=32)),
    hnp.arrays(np.float32, (8, 3), elements=st.floats(-5.0, 5.0, width=32)),
)
def test_procrustes_aligned_error_gradient_finite(source, noise):
    # Well-spread source (generic singular values) plus an arbitrary bounded perturbation.
    base = np.array(
        [[0, 0, 0], [4, 0, 0], [0, 3, 0], [0, 0, 2], [1, 2, 3], [-2, 1, 0], [3, -1, 2], [-1, -3, 1]],
        np.float32,
    )
    source = base + 0.1 * source

    grads = _aligned_error_grad(jnp.asarray(source), jnp.asarray(base * 1.5 + 0.1 * noise))
    assert all(np.all(np.isfinite(g)) for g in grads)


class WeakPerspectiveTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_definition(self):
        rng = np.random.default_rng(3)
        points = rng.normal(size=(2, 4, 6, 3)).astype(np.float32)
        camera = rng.normal(size=(2, 4, 3)).astype(np.float32)
        expected = camera[..., None, :1] * (points[..., :2] + camera[..., None, 1:])
        got = self.variant(weak_perspective_project)(points, camera)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        grad = jax.grad(lambda c: jnp.sum(weak_perspective_project(points, c)))(camera)
        assert np.all(np.isfinite(grad))

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError, match="points3d"):
            weak_perspective_project(jnp.zeros((5, 2)), jnp.zeros(3))
        with pytest.raises(ValueError, match="camera"):
            weak_perspective_project(jnp.zeros((5, 3)), jnp.zeros(2))
