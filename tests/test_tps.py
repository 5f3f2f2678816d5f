"""Tests for landmarkjax.ops.tps against scipy, OpenCV, a numpy TPS written from the definition, and closed forms."""

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
from scipy.interpolate import RBFInterpolator

from landmarkjax.ops.tps import (
    ThinPlateSpline,
    control_grid,
    normalized_to_pixels,
    pixels_to_normalized,
    random_tps,
    tps_carry_points,
    tps_fit,
    tps_invert_points,
    tps_warp_image,
    tps_warp_points,
)

HEIGHT, WIDTH = 96, 120  # non-square so that an x/y mix-up cannot pass
OUTPUT_SHAPE = (90, 104)
# The authors' source-image warp (REFERENCE.md), a strong warp for the consistency tests.
STRONG_WARP = dict(rotation_std=float(np.deg2rad(5.0)), scale_std=0.1, translation_std=0.1, warp_std=(0.001, 0.01))


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    image = cv2.resize(skimage.data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32) / 255.0


def _numpy_tps(control, weights, affine, points):
    """f(p) = [1, x, y] @ affine + sum_i w_i r_i^2 log r_i^2, straight from the definition (float64)."""
    points = np.asarray(points, np.float64)
    squared = np.sum((points[..., None, :] - np.asarray(control, np.float64)) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        basis = np.where(squared > 0, squared * np.log(squared), 0.0)
    return affine[0] + points @ np.asarray(affine[1:], np.float64) + basis @ np.asarray(weights, np.float64)


def _random_control(seed: int, num: int = 25):
    rng = np.random.default_rng(seed)
    control = rng.uniform(-1.0, 1.0, size=(num, 2))
    target = control @ np.array([[1.1, 0.2], [-0.1, 0.9]]) + 0.05 + 0.08 * rng.normal(size=(num, 2))
    return control.astype(np.float32), target.astype(np.float32)


class TpsFitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_interpolates_and_matches_scipy(self):
        control, target = _random_control(0)
        tps = self.variant(tps_fit)(control, target)
        np.testing.assert_allclose(tps_warp_points(tps, control), target, atol=2e-5)
        queries = np.random.default_rng(1).uniform(-1.3, 1.3, size=(4, 30, 2)).astype(np.float32)
        expected = RBFInterpolator(control, target, kernel="thin_plate_spline")(queries.reshape(-1, 2))
        got = self.variant(tps_warp_points)(tps, queries)
        chex.assert_shape(got, (4, 30, 2))
        np.testing.assert_allclose(got.reshape(-1, 2), expected, atol=5e-5)

    def test_regularization_matches_scipy_smoothing(self):
        control, target = _random_control(2)
        tps = tps_fit(control, target, regularization=0.2)
        queries = np.random.default_rng(3).uniform(-1.0, 1.0, size=(40, 2))
        expected = RBFInterpolator(control, target, kernel="thin_plate_spline", smoothing=0.1)(queries)
        np.testing.assert_allclose(tps_warp_points(tps, queries.astype(np.float32)), expected, atol=5e-5)
        assert np.abs(tps_warp_points(tps, control) - target).max() > 1e-3  # smoothed: no longer interpolates

    def test_identity_and_affine_are_reproduced_exactly(self):
        control, _ = _random_control(4)
        identity = tps_fit(control, control)
        np.testing.assert_allclose(identity.kernel_weights, 0.0, atol=1e-5)
        np.testing.assert_allclose(identity.affine, [[0, 0], [1, 0], [0, 1]], atol=1e-5)
        linear, offset = np.array([[0.8, -0.3], [0.4, 1.2]]), np.array([0.1, -0.2])
        affine_fit = tps_fit(control, (control @ linear.T + offset).astype(np.float32))
        np.testing.assert_allclose(affine_fit.kernel_weights, 0.0, atol=1e-5)
        np.testing.assert_allclose(affine_fit.affine, np.concatenate([offset[None], linear.T]), atol=1e-5)

    def test_rejects_bad_arguments(self):
        control, target = _random_control(0)
        with pytest.raises(ValueError, match="target_points"):
            tps_fit(control, target[:-1])
        with pytest.raises(ValueError, match="control_points"):
            tps_fit(control[:2], target[:2])
        with pytest.raises(ValueError, match="control_points"):
            tps_fit(np.zeros((5, 3)), np.zeros((5, 3)))
        with pytest.raises(ValueError, match="regularization"):
            tps_fit(control, target, regularization=-1.0)
        with pytest.raises(ValueError, match="points"):
            tps_warp_points(tps_fit(control, target), np.zeros((4, 3)))
        with pytest.raises(ValueError, match="tps"):
            tps_warp_points((control, target, np.zeros((3, 2))), control)


class TpsInvertTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_inverse_solves_the_spline(self):
        tps = random_tps(jax.random.PRNGKey(0), **STRONG_WARP)
        targets = np.random.default_rng(0).uniform(-1.0, 1.0, size=(3, 17, 2)).astype(np.float32)
        inverse = self.variant(tps_invert_points)(tps, targets)
        chex.assert_shape(inverse, (3, 17, 2))
        residual = _numpy_tps(tps.control_points, tps.kernel_weights, tps.affine, inverse) - targets
        assert np.abs(residual).max() < 1e-5

    def test_rejects_bad_arguments(self):
        tps = random_tps(jax.random.PRNGKey(0))
        with pytest.raises(ValueError, match="num_iterations"):
            tps_invert_points(tps, np.zeros((2, 2), np.float32), num_iterations=-1)


def test_normalized_coordinates():
    corners = np.array([[0.0, 0.0], [WIDTH - 1, HEIGHT - 1], [(WIDTH - 1) / 2, 0.0]], np.float32)
    normalized = pixels_to_normalized(corners, HEIGHT, WIDTH)
    np.testing.assert_allclose(normalized, [[-1, -1], [1, 1], [0, -1]], atol=1e-6)
    np.testing.assert_allclose(normalized_to_pixels(normalized, HEIGHT, WIDTH), corners, atol=1e-4)
    with pytest.raises(ValueError, match="height, width"):
        pixels_to_normalized(corners, 1, WIDTH)


_warp_jit = jax.jit(tps_warp_image, static_argnums=2)
_carry_jit = jax.jit(tps_carry_points, static_argnums=(2, 3))


class TpsWarpImageTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_cv2_remap_of_numpy_spline_and_mask(self):
        image = _astronaut()
        tps = random_tps(jax.random.PRNGKey(1), **STRONG_WARP)
        warped, valid = self.variant(functools.partial(tps_warp_image, output_shape=OUTPUT_SHAPE))(image, tps)
        chex.assert_shape((warped, valid), (OUTPUT_SHAPE + (3,), OUTPUT_SHAPE))

        rows, cols = np.mgrid[: OUTPUT_SHAPE[0], : OUTPUT_SHAPE[1]].astype(np.float64)
        output_normalized = np.stack(
            [2 * cols / (OUTPUT_SHAPE[1] - 1) - 1, 2 * rows / (OUTPUT_SHAPE[0] - 1) - 1], axis=-1
        )
        source = _numpy_tps(tps.control_points, tps.kernel_weights, np.asarray(tps.affine), output_normalized)
        map_x = ((source[..., 0] + 1) * (WIDTH - 1) / 2).astype(np.float32)
        map_y = ((source[..., 1] + 1) * (HEIGHT - 1) / 2).astype(np.float32)
        expected = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        np.testing.assert_allclose(warped, expected, atol=1e-4)

        inside = (map_x >= 0) & (map_x <= WIDTH - 1) & (map_y >= 0) & (map_y <= HEIGHT - 1)
        near_border = np.minimum.reduce(
            [np.abs(map_x), np.abs(map_x - (WIDTH - 1)), np.abs(map_y), np.abs(map_y - (HEIGHT - 1))]
        ) < 1e-3
        assert np.all((np.asarray(valid) == inside) | near_border)
        assert 0.05 < float(np.mean(~np.asarray(valid)))  # this warp does pull in pixels from outside
        # Invalid pixels really were filled: an all-ones image falls below 1 exactly there.
        ones_warped, _ = _warp_jit(np.ones((HEIGHT, WIDTH, 1), np.float32), tps, OUTPUT_SHAPE)
        strictly_outside = ~inside & ~near_border
        assert np.all(np.asarray(ones_warped)[..., 0][strictly_outside] < 1.0)

    def test_zero_warp_is_identity(self):
        tps = random_tps(jax.random.PRNGKey(5), translation_std=0.0, warp_std=0.0)
        grid = control_grid(7) * 1.3
        np.testing.assert_allclose(tps_warp_points(tps, grid), grid, atol=1e-6)
        image = _astronaut()
        warped, valid = _warp_jit(image, tps, None)
        np.testing.assert_allclose(warped, image, atol=1e-5)
        assert np.all(valid)
        landmarks = np.array([[3.0, 4.0], [100.25, 80.5]], np.float32)
        np.testing.assert_allclose(_carry_jit(tps, landmarks, (HEIGHT, WIDTH), None), landmarks, atol=1e-4)

    def test_landmarks_move_with_the_image(self):
        """A bright dot painted at a landmark lands where tps_carry_points sends the landmark (< 0.5 px)."""
        image = _astronaut()
        landmarks = np.array([[30.0, 25.0], [80.5, 60.25], [60.0, 48.0], [95.0, 30.5], [20.0, 70.0]], np.float32)
        rows, cols = np.mgrid[:HEIGHT, :WIDTH]
        out_rows, out_cols = np.mgrid[: OUTPUT_SHAPE[0], : OUTPUT_SHAPE[1]]
        checked = 0
        for seed in (2, 3):
            tps = random_tps(jax.random.PRNGKey(seed), **STRONG_WARP)
            base = np.asarray(_warp_jit(image, tps, OUTPUT_SHAPE)[0]).mean(-1)
            carried = np.asarray(_carry_jit(tps, landmarks, (HEIGHT, WIDTH), OUTPUT_SHAPE))
            for landmark, expected in zip(landmarks, carried):
                # the warped dot must lie wholly inside the output to measure its centroid
                margin = 6.0
                upper = np.array([OUTPUT_SHAPE[1], OUTPUT_SHAPE[0]]) - 1 - margin
                if not np.all((expected > margin) & (expected < upper)):
                    continue
                dot = np.exp(-((cols - landmark[0]) ** 2 + (rows - landmark[1]) ** 2) / (2 * 1.2**2))
                painted = image + dot[..., None].astype(np.float32)
                moved = np.asarray(_warp_jit(painted, tps, OUTPUT_SHAPE)[0]).mean(-1) - base
                centroid = np.array([np.sum(moved * out_cols), np.sum(moved * out_rows)]) / np.sum(moved)
                np.testing.assert_allclose(centroid, expected, atol=0.5)
                np.testing.assert_allclose(
                    np.unravel_index(np.argmax(moved), moved.shape)[::-1], expected, atol=1.0
                )
                checked += 1
        assert checked >= 6

    def test_vmap_over_batch(self):
        keys = jax.random.split(jax.random.PRNGKey(7), 2)
        splines = jax.vmap(lambda key: random_tps(key, **STRONG_WARP))(keys)
        images = np.stack([_astronaut(), _astronaut()[::-1]])
        warped, valid = jax.jit(jax.vmap(tps_warp_image))(images, splines)
        chex.assert_shape((warped, valid), ((2, HEIGHT, WIDTH, 3), (2, HEIGHT, WIDTH)))
        single = ThinPlateSpline(*(leaf[1] for leaf in splines))
        np.testing.assert_allclose(warped[1], _warp_jit(images[1], single, None)[0], atol=1e-5)

    def test_rejects_bad_arguments(self):
        tps = random_tps(jax.random.PRNGKey(0))
        with pytest.raises(ValueError, match="image"):
            tps_warp_image(np.zeros((8, 8), np.float32), tps)
        with pytest.raises(ValueError, match="output_shape"):
            tps_warp_image(np.zeros((8, 8, 1), np.float32), tps, output_shape=(8,))
        with pytest.raises(ValueError, match="mode"):
            tps_warp_image(np.zeros((8, 8, 1), np.float32), tps, mode="reflect")
        with pytest.raises(ValueError, match="image_shape"):
            tps_carry_points(tps, np.zeros((3, 2), np.float32), (8,))


class RandomTpsTest(chex.TestCase):
    def test_parameter_distributions(self):
        sample = jax.jit(
            jax.vmap(
                lambda key: random_tps(
                    key, grid_size=5, rotation_std=0.2, scale_std=0.1, translation_std=0.3, warp_std=(0.01, 0.04)
                )
            )
        )
        splines = sample(jax.random.split(jax.random.PRNGKey(0), 2000))
        xs, ys = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5))
        np.testing.assert_allclose(splines.control_points[0], np.c_[xs.ravel(), ys.ravel()], atol=1e-6)
        affine = np.asarray(splines.affine)
        linear = affine[:, 1:]
        np.testing.assert_allclose(linear[:, 0, 0], linear[:, 1, 1], atol=1e-6)  # a similarity
        np.testing.assert_allclose(linear[:, 0, 1], -linear[:, 1, 0], atol=1e-6)
        scale = np.sqrt(np.linalg.det(linear))
        rotation = np.arctan2(linear[:, 1, 0], linear[:, 0, 0])
        np.testing.assert_allclose([np.mean(scale), np.std(scale)], [1.0, 0.1], atol=0.01)
        np.testing.assert_allclose([np.mean(rotation), np.std(rotation)], [0.0, 0.2], atol=0.02)
        np.testing.assert_allclose(np.std(affine[:, 0], axis=0), [0.3, 0.3], rtol=0.1)
        weights = np.asarray(splines.kernel_weights)
        np.testing.assert_allclose(np.std(weights), np.sqrt(0.01**2 + 0.04**2 / 2), rtol=0.05)
        # the authors' mixture: heavier tails than a single Gaussian of the same variance
        assert np.mean(np.abs(weights) > 3 * np.std(weights)) > 0.005

    def test_deterministic_per_key(self):
        a = random_tps(jax.random.PRNGKey(1), **STRONG_WARP)
        b = random_tps(jax.random.PRNGKey(1), **STRONG_WARP)
        chex.assert_trees_all_equal(a, b)

    def test_rejects_bad_arguments(self):
        key = jax.random.PRNGKey(0)
        with pytest.raises(ValueError, match="grid_size"):
            random_tps(key, grid_size=1)
        with pytest.raises(ValueError, match="rotation_std"):
            random_tps(key, rotation_std=-0.1)
        with pytest.raises(ValueError, match="warp_std"):
            random_tps(key, warp_std=(0.1, -0.1))
        with pytest.raises(ValueError, match="warp_std"):
            random_tps(key, warp_std=(0.1, 0.2, 0.3))


@jax.jit
def _warp_grads(image, kernel_weights, affine):
    def loss(image, kernel_weights, affine):
        tps = ThinPlateSpline(control_grid(4), kernel_weights, affine)
        warped, valid = tps_warp_image(image, tps)
        return jnp.sum(warped * valid[..., None] * jnp.linspace(0.0, 1.0, 12)[:, None])

    return jax.grad(loss, argnums=(0, 1, 2))(image, kernel_weights, affine)


@jax.jit
def _fit_and_carry_grads(control, target, landmarks):
    def loss(control, target, landmarks):
        tps = tps_fit(control, target)
        return jnp.sum(tps_carry_points(tps, landmarks, (10, 12)) ** 2)

    return jax.grad(loss, argnums=(0, 1, 2))(control, target, landmarks)


@settings(max_examples=15, deadline=None)
@given(
    hnp.arrays(np.float32, (10, 12, 2), elements=st.floats(0.0, 1.0, width=32)),
    hnp.arrays(np.float32, (16, 2), elements=st.floats(-1.0, 1.0, width=32)),
    hnp.arrays(np.float32, (3, 2), elements=st.floats(-1.0, 1.0, width=32)),
    hnp.arrays(np.float32, (5, 2), elements=st.floats(0.0, 9.0, width=32)),
)
def test_gradients_finite(image, perturbation, affine_perturbation, landmarks):
    affine = np.array([[0, 0], [1, 0], [0, 1]], np.float32) + 0.1 * affine_perturbation
    grads = _warp_grads(image, 0.01 * perturbation, affine)
    assert all(np.all(np.isfinite(g)) for g in grads)
    # control points on a grid (query points coincide with them) plus the landmarks exactly on control points
    control = np.asarray(control_grid(4))
    landmarks = np.concatenate([landmarks, [[0.0, 0.0], [11.0, 9.0]]]).astype(np.float32)
    grads = _fit_and_carry_grads(control, control + 0.05 * perturbation, landmarks)
    assert all(np.all(np.isfinite(g)) for g in grads)
