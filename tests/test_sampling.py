"""Tests for landmarkjax.ops.sampling against scipy.ndimage, OpenCV and closed forms on a real photo."""

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
from jax.test_util import check_grads
from scipy import ndimage

from landmarkjax.ops.sampling import bilinear_sample, extract_patches

_CVAL = 0.3


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    """The 512 x 512 RGB photo that ships with scikit-image, float32 in [0, 1]."""
    return skimage.data.astronaut().astype(np.float32) / 255.0


def _scipy_sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, **kwargs) -> np.ndarray:
    """scipy's order-1 map_coordinates, channel by channel; coordinates go in (row, col) = (y, x) order."""
    return np.stack(
        [
            ndimage.map_coordinates(image[..., c].astype(np.float64), [ys, xs], order=1, **kwargs)
            for c in range(image.shape[-1])
        ],
        axis=-1,
    )


def _query_points(rng: np.random.Generator, height: int, width: int, shape=(30, 40)):
    """Random points over the image and a 3-pixel band around it, plus exact edges and half pixels."""
    xs = rng.uniform(-3, width + 2, size=shape).astype(np.float32)
    ys = rng.uniform(-3, height + 2, size=shape).astype(np.float32)
    special_x = [-1.0, -0.5, 0.0, width - 1.0, width - 0.5, width, 17.0, 17.25, -0.01]
    special_y = [5.0, 7.5, height - 1.0, 0.0, -0.5, height - 0.75, height, -1.0, 3.0]
    xs[0, : len(special_x)] = special_x
    ys[0, : len(special_y)] = special_y
    return xs, ys


class BilinearSampleTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_constant_mode_matches_scipy_grid_constant(self):
        image = _astronaut()
        xs, ys = _query_points(np.random.default_rng(0), *image.shape[:2])
        got = self.variant(lambda i, p: bilinear_sample(i, p, mode="constant", cval=_CVAL))(
            image, np.stack([xs, ys], -1)
        )
        chex.assert_shape(got, (30, 40, 3))
        expected = _scipy_sample(image, xs, ys, mode="grid-constant", cval=_CVAL)
        np.testing.assert_allclose(got, expected, atol=2e-6)

    @chex.variants(with_jit=True)
    def test_edge_mode_matches_scipy_nearest(self):
        image = _astronaut()
        xs, ys = _query_points(np.random.default_rng(1), *image.shape[:2])
        got = self.variant(lambda i, p: bilinear_sample(i, p, mode="edge"))(image, np.stack([xs, ys], -1))
        np.testing.assert_allclose(got, _scipy_sample(image, xs, ys, mode="nearest"), atol=2e-6)

    def test_matches_opencv_remap(self):
        image = _astronaut()
        xs, ys = _query_points(np.random.default_rng(2), *image.shape[:2])
        points = np.stack([xs, ys], -1)
        sample = jax.jit(bilinear_sample, static_argnames=("mode",))
        constant = cv2.remap(
            image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(_CVAL,) * 3
        )
        np.testing.assert_allclose(sample(image, points, mode="constant", cval=_CVAL), constant, atol=2e-6)
        replicate = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_allclose(sample(image, points, mode="edge"), replicate, atol=2e-6)

    def test_constant_mode_differs_from_scipy_constant_only_in_the_border_band(self):
        image = _astronaut()[:40, :50]
        xs, ys = _query_points(np.random.default_rng(3), 40, 50)
        sample = jax.jit(lambda i, p: bilinear_sample(i, p, mode="constant", cval=_CVAL))
        got = np.asarray(sample(image, np.stack([xs, ys], -1)))
        scipy_constant = _scipy_sample(image, xs, ys, mode="constant", cval=_CVAL)
        inside = (xs >= 0) & (xs <= 49) & (ys >= 0) & (ys <= 39)
        far = (xs <= -1) | (xs >= 50) | (ys <= -1) | (ys >= 40)
        np.testing.assert_allclose(got[inside | far], scipy_constant[inside | far], atol=2e-6)
        # Half a pixel left of column 0 blends the edge pixel with cval equally (scipy would give cval).
        half_outside = sample(image, jnp.array([-0.5, 7.0]))
        np.testing.assert_allclose(half_outside, 0.5 * image[7, 0] + 0.5 * _CVAL, atol=1e-6)

    def test_vmap_over_images(self):
        images = np.stack([_astronaut()[:32, :48], _astronaut()[100:132, 200:248]])
        rng = np.random.default_rng(4)
        points = np.stack([rng.uniform(-2, 49, (2, 20)), rng.uniform(-2, 33, (2, 20))], -1).astype(np.float32)
        got = jax.jit(jax.vmap(bilinear_sample))(images, points)
        for b in range(2):
            expected = _scipy_sample(images[b], points[b, :, 0], points[b, :, 1], mode="grid-constant")
            np.testing.assert_allclose(got[b], expected, atol=2e-6)

    def test_gradients_have_the_closed_form(self):
        image = jnp.asarray(_astronaut()[50:60, 60:72])
        x, y = 3.25, 6.6
        fx, fy = 0.25, 0.6

        def red(image, point):
            return bilinear_sample(image, point)[0]

        grad_image, grad_point = jax.jit(jax.grad(red, argnums=(0, 1)))(image, jnp.array([x, y]))
        expected_image = np.zeros(image.shape, np.float32)
        expected_image[6, 3, 0], expected_image[6, 4, 0] = (1 - fy) * (1 - fx), (1 - fy) * fx
        expected_image[7, 3, 0], expected_image[7, 4, 0] = fy * (1 - fx), fy * fx
        np.testing.assert_allclose(grad_image, expected_image, atol=1e-6)
        v = np.asarray(image[..., 0])
        d_dx = (1 - fy) * (v[6, 4] - v[6, 3]) + fy * (v[7, 4] - v[7, 3])
        d_dy = (1 - fx) * (v[7, 3] - v[6, 3]) + fx * (v[7, 4] - v[6, 4])
        np.testing.assert_allclose(grad_point, [d_dx, d_dy], atol=1e-5)
        check_grads(jax.jit(red), (image, jnp.array([x, y])), order=1, modes=["rev"], eps=1e-2)

    def test_integer_image_is_sampled_as_float(self):
        image = skimage.data.astronaut()[:8, :8]
        got = jax.jit(bilinear_sample)(image, jnp.array([2.5, 3.0]))
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, (image[3, 2].astype(np.float32) + image[3, 3]) / 2)

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="image"):
            bilinear_sample(jnp.zeros((8, 8)), jnp.zeros((3, 2)))
        with pytest.raises(ValueError, match="image"):
            bilinear_sample(jnp.zeros((2, 8, 8, 3)), jnp.zeros((3, 2)))
        with pytest.raises(ValueError, match="points"):
            bilinear_sample(jnp.zeros((8, 8, 3)), jnp.zeros((3, 3)))
        with pytest.raises(ValueError, match="mode"):
            bilinear_sample(jnp.zeros((8, 8, 3)), jnp.zeros((3, 2)), mode="wrap")


class ExtractPatchesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_edge_mode_matches_opencv_get_rect_sub_pix(self):
        image = _astronaut()
        centers = np.array([[100.37, 200.81], [2.4, 1.7], [509.6, 300.2], [255.0, 511.0]], np.float32)
        got = self.variant(lambda i, c: extract_patches(i, c, 3, mode="edge"))(image, centers)
        chex.assert_shape(got, (4, 7, 7, 3))
        for k, center in enumerate(centers):
            # getRectSubPix samples (cx - (w-1)/2 + j, cy - (h-1)/2 + i) bilinearly, replicating the border.
            expected = cv2.getRectSubPix(image, (7, 7), (float(center[0]), float(center[1])))
            np.testing.assert_allclose(got[k], expected, atol=2e-6)

    @chex.variants(with_jit=True)
    def test_constant_mode_matches_scipy(self):
        image = _astronaut()[:64, :80]
        centers = np.array([[10.5, 20.25], [0.3, 63.2], [-1.5, 5.0]], np.float32)
        got = self.variant(lambda i, c: extract_patches(i, c, 2, cval=_CVAL))(image, centers)
        offset_y, offset_x = np.mgrid[-2:3, -2:3]
        for k, (cx, cy) in enumerate(centers):
            expected = _scipy_sample(image, cx + offset_x, cy + offset_y, mode="grid-constant", cval=_CVAL)
            np.testing.assert_allclose(got[k], expected, atol=2e-6)

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="radius"):
            extract_patches(jnp.zeros((8, 8, 1)), jnp.zeros((2, 2)), -1)
        with pytest.raises(ValueError, match="centers"):
            extract_patches(jnp.zeros((8, 8, 1)), jnp.zeros((2, 3)), 2)
        with pytest.raises(ValueError, match="image"):
            extract_patches(jnp.zeros((8, 8)), jnp.zeros((2, 2)), 2)


_sample_grads = {
    mode: jax.jit(jax.grad(lambda i, p, mode=mode: jnp.sum(bilinear_sample(i, p, mode=mode) ** 2), (0, 1)))
    for mode in ("constant", "edge")
}


@settings(max_examples=10, deadline=None)
@given(
    hnp.arrays(np.float32, (5, 6, 2), elements=st.floats(0.0, 1.0, width=32)),
    hnp.arrays(np.float32, (7, 2), elements=st.floats(-8.0, 12.0, width=32) | st.integers(-2, 7).map(float)),
)
def test_gradients_are_finite_everywhere(image, points):
    for grad in _sample_grads.values():
        grad_image, grad_points = grad(image, points)
        assert np.all(np.isfinite(grad_image)) and np.all(np.isfinite(grad_points))
