"""Tests for landmarkjax.ops.warps against OpenCV and closed forms, on scikit-image's astronaut photo."""

import functools

import chex
import cv2
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st

from landmarkjax.ops.warps import (
    affine_matrix,
    affine_warp_image,
    affine_warp_points,
    invert_affine,
    random_affine,
)

HEIGHT, WIDTH = 96, 120  # non-square so that an x/y mix-up cannot pass
OUTPUT_SHAPE = (88, 110)


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    image = cv2.resize(skimage.data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32) / 255.0


def _cv2_matrix(rotation: float, scale: float, translation, center) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(np.degrees(rotation)), scale)
    matrix[:, 2] += translation
    return matrix


def _gaussian_dot(center, sigma: float = 1.5) -> np.ndarray:
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    return np.exp(-((cols - center[0]) ** 2 + (rows - center[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


_warp_jit = jax.jit(affine_warp_image, static_argnums=2)
_WARP_CASES = [
    (0.4, 0.8, (5.0, -7.0)),  # shrinks: part of the output comes from outside the source
    (-0.25, 1.3, (-3.0, 2.5)),
]


class AffineMatrixTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_cv2_rotation_matrix(self):
        rotation, scale, translation, center = 0.3, 1.2, np.array([3.0, -2.0]), np.array([10.0, 20.0])
        got = self.variant(affine_matrix)(rotation, scale, translation, center)
        np.testing.assert_allclose(got, _cv2_matrix(rotation, scale, translation, center), atol=1e-5)

    def test_broadcasts_leading_dims(self):
        rotation = jnp.linspace(-1.0, 1.0, 4)
        translation = jnp.arange(10.0).reshape(5, 1, 2)
        got = affine_matrix(rotation, 0.5, translation, (1.0, 2.0))
        chex.assert_shape(got, (5, 4, 2, 3))
        expected = _cv2_matrix(float(rotation[2]), 0.5, np.asarray(translation[3, 0]), (1.0, 2.0))
        np.testing.assert_allclose(got[3, 2], expected, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_invert_matches_cv2(self):
        matrix = _cv2_matrix(0.7, 0.9, (4.0, 1.0), (30.0, 12.0))
        got = self.variant(invert_affine)(jnp.asarray(matrix, jnp.float32))
        np.testing.assert_allclose(got, cv2.invertAffineTransform(matrix), atol=1e-5)

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="translation"):
            affine_matrix(0.0, 1.0, (1.0, 2.0, 3.0))
        with pytest.raises(ValueError, match="center"):
            affine_matrix(0.0, 1.0, (1.0, 2.0), 5.0)
        with pytest.raises(ValueError, match="matrix"):
            invert_affine(jnp.eye(3))


class AffineWarpPointsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_cv2_transform(self):
        rng = np.random.default_rng(0)
        points = rng.uniform(0, 100, size=(3, 7, 2)).astype(np.float32)
        matrices = np.stack([_cv2_matrix(r, s, t, (50.0, 40.0)) for r, s, t in _WARP_CASES + [(1.0, 1.0, (0, 0))]])
        got = self.variant(affine_warp_points)(points, matrices.astype(np.float32))
        for b in range(3):
            expected = cv2.transform(points[b][None].astype(np.float64), matrices[b])[0]
            np.testing.assert_allclose(got[b], expected, atol=1e-4)

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="points"):
            affine_warp_points(jnp.zeros((4, 3)), jnp.zeros((2, 3)))
        with pytest.raises(ValueError, match="matrix"):
            affine_warp_points(jnp.zeros((4, 2)), jnp.zeros((3, 3)))


class AffineWarpImageTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_cv2_warp_affine_and_mask(self):
        image = _astronaut()
        center = ((WIDTH - 1) / 2, (HEIGHT - 1) / 2)
        matrix = _cv2_matrix(*_WARP_CASES[0], center)  # shrinks: part of the output comes from outside
        warp = self.variant(functools.partial(affine_warp_image, output_shape=OUTPUT_SHAPE))
        warped, valid = warp(image, matrix.astype(np.float32))
        size = (OUTPUT_SHAPE[1], OUTPUT_SHAPE[0])
        expected = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        chex.assert_shape((warped, valid), (OUTPUT_SHAPE + (3,), OUTPUT_SHAPE))
        np.testing.assert_allclose(warped, expected, atol=1e-4)

        # Validity = an all-ones image stays exactly 1 (no zero fill blended in), except for pixels whose
        # sample position lies within OpenCV's 1/32 px interpolation grid of the border.
        ones = cv2.warpAffine(np.ones((HEIGHT, WIDTH), np.float32), matrix, size, flags=cv2.INTER_LINEAR)
        rows, cols = np.mgrid[: OUTPUT_SHAPE[0], : OUTPUT_SHAPE[1]]
        inverse = cv2.invertAffineTransform(matrix)
        src_x = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
        src_y = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
        near_border = (
            (np.abs(src_x) < 1 / 32) | (np.abs(src_x - (WIDTH - 1)) < 1 / 32)
            | (np.abs(src_y) < 1 / 32) | (np.abs(src_y - (HEIGHT - 1)) < 1 / 32)
        )
        agree = (ones >= 1 - 1e-6) == np.asarray(valid)
        assert np.all(agree | near_border)
        assert valid.dtype == jnp.bool_
        assert 0.1 < float(np.mean(valid)) < 0.95

    def test_identity_is_exact_and_fully_valid(self):
        image = _astronaut()
        warped, valid = _warp_jit(image, np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32), None)
        np.testing.assert_allclose(warped, image, atol=1e-6)
        assert np.all(valid)

    def test_landmarks_move_with_the_image(self):
        """A bright dot painted at a landmark lands where affine_warp_points sends the landmark."""
        image = _astronaut()
        landmarks = np.array([[30.0, 25.0], [80.5, 60.25], [55.0, 70.0]], np.float32)
        center = ((WIDTH - 1) / 2, (HEIGHT - 1) / 2)
        for rotation, scale, translation in _WARP_CASES:
            matrix = _cv2_matrix(rotation, scale, translation, center).astype(np.float32)
            base = np.asarray(_warp_jit(image, matrix, OUTPUT_SHAPE)[0]).mean(-1)
            carried = np.asarray(affine_warp_points(landmarks, matrix))
            for landmark, expected in zip(landmarks, carried):
                painted = image + _gaussian_dot(landmark)[..., None]
                dot = np.asarray(_warp_jit(painted, matrix, OUTPUT_SHAPE)[0]).mean(-1) - base
                rows, cols = np.mgrid[: OUTPUT_SHAPE[0], : OUTPUT_SHAPE[1]]
                centroid = np.array([np.sum(dot * cols), np.sum(dot * rows)]) / np.sum(dot)
                np.testing.assert_allclose(centroid, expected, atol=0.1)

    def test_vmap_over_batch(self):
        images = np.stack([_astronaut(), _astronaut()[::-1]])
        matrices = np.stack([_cv2_matrix(r, s, t, (60.0, 48.0)) for r, s, t in _WARP_CASES]).astype(np.float32)
        warped, valid = jax.jit(jax.vmap(affine_warp_image))(images, matrices)
        for b in range(2):
            matrix = matrices[b].astype(np.float64)
            expected = cv2.warpAffine(images[b], matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
            np.testing.assert_allclose(warped[b], expected, atol=1e-4)
        chex.assert_shape(valid, (2, HEIGHT, WIDTH))

    def test_rejects_bad_arguments(self):
        image = jnp.zeros((8, 8, 3))
        matrix = jnp.array([[1.0, 0, 0], [0, 1.0, 0]])
        with pytest.raises(ValueError, match="image"):
            affine_warp_image(jnp.zeros((8, 8)), matrix)
        with pytest.raises(ValueError, match="matrix"):
            affine_warp_image(image, jnp.stack([matrix, matrix]))
        with pytest.raises(ValueError, match="output_shape"):
            affine_warp_image(image, matrix, output_shape=(8, 0))
        with pytest.raises(ValueError, match="mode"):
            affine_warp_image(image, matrix, mode="wrap")


@jax.jit
def _warp_loss_grads(image, params):
    def loss(image, params):
        rotation, log_scale, tx, ty = params
        matrix = affine_matrix(rotation, jnp.exp(log_scale), jnp.stack([tx, ty]), (5.5, 4.5))
        warped, valid = affine_warp_image(image, matrix)
        return jnp.sum(warped * valid[..., None] * jnp.linspace(0.0, 1.0, 12)[:, None])

    return jax.grad(loss, argnums=(0, 1))(image, params)


@settings(max_examples=20, deadline=None)
@given(
    hnp.arrays(np.float32, (10, 12, 2), elements=st.floats(0.0, 1.0, width=32)),
    hnp.arrays(np.float32, (4,), elements=st.floats(-3.0, 3.0, width=32)),
)
def test_affine_warp_gradients_finite(image, params):
    params = params * np.array([1.0, 0.2, 1.0, 1.0], np.float32)
    grads = _warp_loss_grads(image, params)
    assert all(np.all(np.isfinite(g)) for g in grads)


class RandomAffineTest(chex.TestCase):
    def test_parameters_within_ranges_and_center_fixed(self):
        center = np.array([40.0, 30.0], np.float32)
        sample = jax.jit(
            jax.vmap(
                lambda key: random_affine(
                    key, center=center, max_rotation=0.3, scale_range=(0.8, 1.2), max_translation=(6.0, 2.0)
                )
            )
        )
        matrices = np.asarray(sample(jax.random.split(jax.random.PRNGKey(0), 400)))
        scale = np.sqrt(np.linalg.det(matrices[:, :, :2]))
        rotation = np.arctan2(matrices[:, 0, 1], matrices[:, 0, 0])
        translation = matrices[:, :, :2] @ center + matrices[:, :, 2] - center
        np.testing.assert_allclose(matrices[:, 0, 0], matrices[:, 1, 1], atol=1e-6)  # a similarity
        assert np.all(np.abs(rotation) <= 0.3 + 1e-6) and np.abs(rotation).max() > 0.25
        assert np.all((scale >= 0.8 - 1e-5) & (scale <= 1.2 + 1e-5)) and np.ptp(scale) > 0.3
        assert np.all(np.abs(translation) <= np.array([6.0, 2.0]) + 1e-4)
        assert np.abs(translation).max(0)[0] > 5.0 and np.abs(translation).max(0)[1] > 1.5

    @chex.variants(with_jit=True, without_jit=True)
    def test_deterministic_per_key(self):
        sample = self.variant(functools.partial(random_affine, center=(1.0, 1.0), max_rotation=1.0))
        a, b, c = sample(jax.random.PRNGKey(3)), sample(jax.random.PRNGKey(3)), sample(jax.random.PRNGKey(4))
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)

    def test_rejects_bad_arguments(self):
        key = jax.random.PRNGKey(0)
        with pytest.raises(ValueError, match="max_rotation"):
            random_affine(key, center=(0.0, 0.0), max_rotation=-0.1)
        with pytest.raises(ValueError, match="scale_range"):
            random_affine(key, center=(0.0, 0.0), scale_range=(1.2, 0.8))
        with pytest.raises(ValueError, match="max_translation"):
            random_affine(key, center=(0.0, 0.0), max_translation=(1.0, -1.0))
        with pytest.raises(ValueError, match="center"):
            random_affine(key, center=(0.0, 0.0, 0.0))
