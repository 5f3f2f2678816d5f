"""Tests for landmarkjax.ops.colour against scikit-image and published sRGB/Lab values."""

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st

from landmarkjax.ops.colour import lab_to_rgb, rgb_to_lab

_SRGB_KNEE = 0.04045


def _random_colours(seed: int, num: int = 2000) -> np.ndarray:
    """Uniform colours plus the cube's corners and values at both sides of the sRGB and Lab knees."""
    colours = np.random.default_rng(seed).uniform(size=(num, 3))
    corners = np.array(np.meshgrid([0.0, 1.0], [0.0, 1.0], [0.0, 1.0])).reshape(3, -1).T
    knees = np.array(
        [
            [_SRGB_KNEE, 0.0, 0.0],
            [_SRGB_KNEE + 1e-4, 0.02, 0.0],
            [0.01, 0.01, 0.01],
            [0.1, 0.1, 0.1],
            [0.08, 0.09, 0.1],
            [1e-6, 0.0, 1e-6],
        ]
    )
    return np.concatenate([colours, corners, knees])


class RgbToLabTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_skimage_on_astronaut(self):
        rgb = skimage.data.astronaut().astype(np.float64) / 255.0
        got = self.variant(rgb_to_lab)(rgb.astype(np.float32))
        chex.assert_shape(got, rgb.shape)
        np.testing.assert_allclose(got, skimage.color.rgb2lab(rgb), atol=1e-3)

    @chex.variants(with_jit=True)
    def test_matches_skimage_on_random_and_edge_colours(self):
        rgb = _random_colours(0)
        got = self.variant(rgb_to_lab)(rgb.astype(np.float32))
        np.testing.assert_allclose(got, skimage.color.rgb2lab(rgb), atol=1e-3)

    def test_published_values(self):
        # sRGB primaries and white in CIE Lab (D65), as tabulated e.g. by Bruce Lindbloom / easyrgb.
        rgb = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
        expected = [
            [53.24, 80.09, 67.20],
            [87.73, -86.18, 83.18],
            [32.30, 79.19, -107.86],
            [100.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
        ]
        np.testing.assert_allclose(jax.jit(rgb_to_lab)(rgb), expected, atol=1e-2)

    def test_vmap_matches_batched_call(self):
        rgb = _random_colours(1, 66)[:60].reshape(12, 5, 3).astype(np.float32)
        got = jax.jit(jax.vmap(rgb_to_lab))(rgb)
        np.testing.assert_allclose(got, skimage.color.rgb2lab(rgb.astype(np.float64)), atol=1e-3)

    def test_gradient_is_finite_at_black_and_matches_the_linear_segment(self):
        jacobian = np.asarray(jax.jit(jax.jacrev(rgb_to_lab))(jnp.zeros(3)))
        assert np.all(np.isfinite(jacobian))
        # Near black the sRGB and Lab curves are both on their linear segments, so skimage's forward
        # difference is the exact derivative there.
        eps = 1e-4
        numeric = np.stack([skimage.color.rgb2lab(np.eye(3)[i] * eps) / eps for i in range(3)], axis=-1)
        np.testing.assert_allclose(jacobian, numeric, rtol=1e-3, atol=1e-3)

    def test_bad_shape_names_rgb(self):
        with pytest.raises(ValueError, match="rgb"):
            rgb_to_lab(jnp.zeros((4, 4)))


class LabToRgbTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_skimage_and_round_trips(self):
        rgb = _random_colours(2)
        lab = skimage.color.rgb2lab(rgb)
        got = self.variant(lab_to_rgb)(lab.astype(np.float32))
        np.testing.assert_allclose(got, skimage.color.lab2rgb(lab), atol=1e-4)
        round_trip = self.variant(lambda x: lab_to_rgb(rgb_to_lab(x)))(rgb.astype(np.float32))
        np.testing.assert_allclose(round_trip, rgb, atol=1e-4)

    def test_round_trip_on_astronaut(self):
        rgb = skimage.data.astronaut().astype(np.float32) / 255.0
        np.testing.assert_allclose(jax.jit(lambda x: lab_to_rgb(rgb_to_lab(x)))(rgb), rgb, atol=1e-4)

    def test_out_of_gamut_is_not_clipped(self):
        # A saturated Lab colour outside sRGB: skimage clips to [0, 1]; here the linear algebra is kept.
        lab = jnp.array([50.0, 120.0, 0.0])
        rgb = np.asarray(jax.jit(lab_to_rgb)(lab))
        assert rgb.max() > 1.0 or rgb.min() < 0.0
        np.testing.assert_allclose(jax.jit(rgb_to_lab)(rgb), lab, atol=1e-3)

    def test_gradient_is_finite_at_black(self):
        jacobian = jax.jit(jax.jacrev(lab_to_rgb))(jnp.zeros(3))
        assert np.all(np.isfinite(jacobian))

    def test_bad_shape_names_lab(self):
        with pytest.raises(ValueError, match="lab"):
            lab_to_rgb(jnp.zeros((4, 2)))


_rgb_to_lab = jax.jit(rgb_to_lab)
_rgb_to_lab_grad = jax.jit(jax.grad(lambda x: jnp.sum(rgb_to_lab(x) ** 2)))
_lab_to_rgb_grad = jax.jit(jax.grad(lambda x: jnp.sum(lab_to_rgb(x) ** 2)))
_UNIT = st.floats(0.0, 1.0, width=32) | st.sampled_from([0.0, 1.0, _SRGB_KNEE, 0.0031308])


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.float32, (4, 3), elements=_UNIT))
def test_gradients_are_finite(rgb):
    assert np.all(np.isfinite(_rgb_to_lab_grad(rgb)))
    lab = np.asarray(_rgb_to_lab(rgb))
    assert np.all(np.isfinite(_lab_to_rgb_grad(lab)))
