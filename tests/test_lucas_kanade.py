"""Tests for landmarkjax.ops.lucas_kanade and landmarkjax.ops.pyramid.

References: known warps of a real photo (scikit-image's astronaut, warped with scipy / OpenCV cubic
interpolation, so the ground truth is exact and independent of the tracker's bilinear sampling), OpenCV's
`pyrDown`, and central finite differences in float64.
"""

import functools

import chex
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.feature
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from landmarkjax.ops import lucas_kanade
from landmarkjax.ops.lucas_kanade import forward_backward_check, lk_track
from landmarkjax.ops.pyramid import gaussian_pyramid, pyramid_downsample

NUM_POINTS = 24
# A 256 x 256 crop of the astronaut photo (helmet, face, flag): textured, and small enough to keep tests fast.
CROP = (slice(20, 276), slice(110, 366))

_track = jax.jit(lk_track)
_track_affine = jax.jit(functools.partial(lk_track, warp="affine"))


def _astronaut(colour: bool) -> np.ndarray:
    image = skimage.data.astronaut()[CROP].astype(np.float32) / 255.0
    return image if colour else np.float32(image @ np.array([0.299, 0.587, 0.114], np.float32))


def _corner_points(gray: np.ndarray, num_points: int, border: int) -> np.ndarray:
    """[num_points, 2] (x, y) Harris corners, strongest first."""
    response = skimage.feature.corner_harris(gray)
    peaks = skimage.feature.corner_peaks(response, min_distance=5, num_peaks=num_points, exclude_border=border)
    assert len(peaks) == num_points
    return peaks[:, ::-1].astype(np.float32)


def _translate(image: np.ndarray, shift_xy) -> np.ndarray:
    """Content moves by +shift: output(p + shift) = image(p). Cubic spline, edges replicated."""
    dx, dy = shift_xy
    shift = (dy, dx) + (0,) * (image.ndim - 2)
    return ndimage.shift(image, shift, order=3, mode="nearest").astype(np.float32)


def _errors(tracked, expected) -> np.ndarray:
    return np.linalg.norm(np.asarray(tracked) - expected, axis=-1)


@pytest.fixture(scope="module")
def gray():
    return _astronaut(colour=False)


@pytest.fixture(scope="module")
def corners(gray):
    # 40 px from the border: windows stay inside the image after shifts of up to 34 px.
    return _corner_points(gray, NUM_POINTS, border=40)


class TestPyramid:
    @pytest.mark.parametrize("shape", [(9, 7, 1), (32, 45, 3), (3, 3, 2)])
    def test_downsample_matches_opencv_pyrdown(self, shape):
        image = np.random.default_rng(0).random(shape).astype(np.float32)
        got = np.asarray(pyramid_downsample(image))
        expected = cv2.pyrDown(image).reshape(got.shape)
        np.testing.assert_allclose(got, expected, atol=1e-6)

    def test_pyramid_levels_follow_opencv(self):
        image = np.random.default_rng(1).random((40, 27, 1)).astype(np.float32)
        levels = gaussian_pyramid(image, 3)
        expected = [image[..., 0]]
        for _ in range(2):
            expected.append(cv2.pyrDown(expected[-1]))
        assert [level.shape[:2] for level in levels] == [e.shape for e in expected]
        for level, reference in zip(levels, expected):
            np.testing.assert_allclose(level[..., 0], reference, atol=1e-6)

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="num_levels"):
            gaussian_pyramid(np.zeros((8, 8, 1), np.float32), 0)
        with pytest.raises(ValueError, match="image"):
            pyramid_downsample(np.zeros((8, 8), np.float32))


class TestAccuracy:
    # Window size is 17 px; the largest shifts are about 2x that (34 px), tracked thanks to the pyramid.
    @pytest.mark.parametrize("shift", [(0.37, -0.61), (6.3, 4.8), (-21.7, 26.2), (33.6, -3.4)])
    def test_translation_of_real_photo(self, gray, corners, shift):
        tracked, valid = _track(gray, _translate(gray, shift), corners)
        errors = _errors(tracked, corners + np.float32(shift))
        assert np.mean(valid) >= 0.9
        assert np.median(errors[np.asarray(valid)]) < 0.1
        assert np.percentile(errors[np.asarray(valid)], 90) < 0.3

    def test_large_translation_needs_the_pyramid(self, gray, corners):
        shift = (-21.7, 26.2)
        tracked, _ = jax.jit(functools.partial(lk_track, num_levels=1))(gray, _translate(gray, shift), corners)
        assert np.median(_errors(tracked, corners + np.float32(shift))) > 1.0

    def test_colour_translation(self, gray, corners):
        colour = _astronaut(colour=True)
        shift = (12.4, -7.9)
        tracked, valid = _track(colour, _translate(colour, shift), corners)
        errors = _errors(tracked, corners + np.float32(shift))
        assert np.mean(valid) >= 0.9
        assert np.median(errors[np.asarray(valid)]) < 0.1

    def test_small_affine_warp(self, gray, corners):
        angle, scale, shift = np.deg2rad(6.0), 1.04, np.array([2.3, -1.6])
        linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([127.5, 127.5])
        offset = centre - linear @ centre + shift
        matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
        target = cv2.warpAffine(gray, matrix, gray.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        expected = corners @ linear.T.astype(np.float32) + offset.astype(np.float32)

        tracked, valid = _track_affine(gray, target, corners)
        errors = _errors(tracked, expected)
        assert np.mean(valid) >= 0.9
        assert np.median(errors[np.asarray(valid)]) < 0.1
        # A translation-only window cannot follow the rotation as well.
        translation_errors = _errors(_track(gray, target, corners)[0], expected)
        assert np.median(translation_errors) > 2 * np.median(errors)


class TestValidity:
    def test_flat_and_outside_points_are_invalid(self, gray, corners):
        image = gray.copy()
        image[170:250, 10:90] = 0.4  # a flat square away from the corners' windows
        textured = corners[:16]
        textured = textured[~((textured[:, 0] < 100) & (textured[:, 1] > 160))][:14]
        flat = np.array([[50, 210], [45, 205], [55, 215], [40, 200], [60, 220]], np.float32)
        outside = np.array([[-30, 50], [300, 80], [100, -45], [128, 500], [-1e6, 3e7]], np.float32)
        points = np.concatenate([textured, flat, outside])
        points = np.concatenate([points, textured[: NUM_POINTS - len(points)]])

        tracked, valid = _track(image, _translate(image, (3.2, -1.7)), points)
        tracked, valid = np.asarray(tracked), np.asarray(valid)
        assert np.all(np.isfinite(tracked))
        n = len(textured)
        assert np.all(valid[:n])
        assert not np.any(valid[n : n + len(flat) + len(outside)])

    def test_degenerate_images_give_finite_invalid_output(self):
        points = np.random.default_rng(0).uniform(-20, 80, (SMALL_POINTS, 2)).astype(np.float32)
        points[0] = (-1e6, 3e7)
        for image in (np.zeros(SMALL_SHAPE, np.float32), np.full(SMALL_SHAPE, 0.7, np.float32)):
            (tracked, valid), gradients = _small_track_and_gradients(image, image, points)
            assert np.all(np.isfinite(np.asarray(tracked)))
            assert not np.any(valid)
            assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)

    def test_straight_edge_is_invalid_with_finite_gradients(self):
        # Along a straight edge the motion is ambiguous (the aperture problem): the structure tensor has rank 1.
        y, x = np.mgrid[: SMALL_SHAPE[0], : SMALL_SHAPE[1]]
        image = np.float32(ndimage.gaussian_filter((x + y > 64).astype(np.float64), 1.5))
        points = np.float32([[24 + 3 * i, 40 - 3 * i + 0.5] for i in range(SMALL_POINTS)])  # on x + y = 64
        (tracked, valid), gradients = _small_track_and_gradients(image, _translate(image, (1.2, 0.4)), points)
        assert not np.any(valid)
        assert np.all(np.isfinite(np.asarray(tracked)))
        assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)

    def test_forward_backward_flags_occluded_points(self, gray, corners):
        shift = (4.6, 3.1)
        target = _translate(gray, shift)
        occluder = skimage.data.camera()[:120, :120].astype(np.float32) / 255.0
        target[0:120, 0:120] = occluder  # points in there have no true match
        occluded = (corners[:, 0] < 112) & (corners[:, 1] < 112)
        assert 3 <= occluded.sum() <= NUM_POINTS - 3

        check = jax.jit(functools.partial(forward_backward_check, max_residual=np.inf))
        tracked, valid = check(gray, target, corners)
        valid = np.asarray(valid)
        errors = _errors(tracked, corners + np.float32(shift))
        assert np.all(valid[~occluded])
        assert np.median(errors[~occluded]) < 0.1
        assert np.mean(valid[occluded]) <= 0.25
        # The forward track is lk_track's.
        np.testing.assert_allclose(tracked, _track(gray, target, corners)[0], atol=1e-4)


def _central_difference_jacobian(function, points: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """[K, 2, K, 2] d function(points)[k, i] / d points[l, j] by central differences (float64 points)."""
    numeric = np.zeros(points.shape + points.shape)
    for k in range(points.shape[0]):
        for d in range(2):
            step = np.zeros_like(points)
            step[k, d] = eps
            numeric[:, :, k, d] = (np.asarray(function(points + step)) - np.asarray(function(points - step))) / (2 * eps)
    return numeric


class TestGradients:
    def test_point_gradient_matches_finite_differences(self):
        image = _astronaut(colour=False)[100:164, 60:124]  # 64 x 64: face and helmet edge
        points = _corner_points(image, 3, border=14).astype(np.float64)
        points += np.array([[0.23, -0.31], [-0.17, 0.41], [0.29, 0.13]])  # off the corners' pixel grid
        with jax.enable_x64(True):
            target = jnp.asarray(_translate(image, (1.3, -0.8)), jnp.float64)
            template = jnp.asarray(image, jnp.float64)
            track = functools.partial(
                lk_track, num_levels=2, window_radius=5, num_iterations=15, convergence_eps=0.0
            )

            def tracked(p):
                return track(template, target, p)[0]

            jacobian = np.asarray(jax.jit(jax.jacrev(tracked))(jnp.asarray(points)))
            numeric = _central_difference_jacobian(jax.jit(tracked), points)
        np.testing.assert_allclose(jacobian, numeric, atol=1e-5, rtol=1e-4)
        # Under a pure translation, tracked = points + shift, so d tracked_k / d points_k is close to I (not
        # equal: bilinear interpolation makes the sub-pixel error vary with the sub-pixel position).
        diagonal_blocks = jacobian[np.arange(3), :, np.arange(3), :]
        np.testing.assert_allclose(diagonal_blocks, np.broadcast_to(np.eye(2), (3, 2, 2)), atol=0.25)
        np.testing.assert_allclose(diagonal_blocks.mean(axis=0), np.eye(2), atol=0.1)
        off_diagonal_blocks = jacobian[0, :, 1:, :]  # point 0 does not depend on the other points
        np.testing.assert_array_equal(off_diagonal_blocks, 0.0)

    @pytest.mark.parametrize("warp", ["translation", pytest.param("affine", marks=pytest.mark.slow)])
    def test_implicit_gradient_matches_finite_differences_of_the_converged_tracks(self, warp):
        """differentiation="implicit" against central differences of tracks run to convergence (60 iterations
        per level, no early stop, float64), to the points and to both images."""
        image = _astronaut(colour=False)[100:164, 60:124]
        points = _corner_points(image, 3, border=14).astype(np.float64)
        points += np.array([[0.23, -0.31], [-0.17, 0.41], [0.29, 0.13]])
        rng = np.random.default_rng(3)
        with jax.enable_x64(True):
            template = jnp.asarray(image, jnp.float64)
            target = jnp.asarray(_translate(image, (1.3, -0.8)), jnp.float64)
            track = functools.partial(
                lk_track, num_levels=2, window_radius=5, num_iterations=60, convergence_eps=0.0, warp=warp
            )
            image_direction = jnp.asarray(ndimage.gaussian_filter(rng.normal(size=image.shape), 2.0))

            def tracked(p, template, target, differentiation):
                return track(template, target, p, differentiation=differentiation)[0]

            implicit = functools.partial(tracked, differentiation="implicit")
            jacobian = np.asarray(jax.jit(jax.jacrev(implicit))(jnp.asarray(points), template, target))
            # Directional derivatives along a smooth image perturbation, of the template and of the target.
            along_template = jax.jit(
                lambda t: jax.jvp(lambda tm: implicit(jnp.asarray(points), tm, target), (template,), (t,))[1]
            )(image_direction)
            along_target = jax.jit(
                lambda t: jax.jvp(lambda tg: implicit(jnp.asarray(points), template, tg), (target,), (t,))[1]
            )(image_direction)
            f = jax.jit(functools.partial(tracked, differentiation="unrolled"))
            numeric = _central_difference_jacobian(lambda p: f(p, template, target), points)
            eps = 1e-5
            numeric_template = (
                np.asarray(f(points, template + eps * image_direction, target))
                - np.asarray(f(points, template - eps * image_direction, target))
            ) / (2 * eps)
            numeric_target = (
                np.asarray(f(points, template, target + eps * image_direction))
                - np.asarray(f(points, template, target - eps * image_direction))
            ) / (2 * eps)
        np.testing.assert_allclose(jacobian, numeric, atol=1e-6, rtol=1e-5)
        for analytic, reference in ((along_template, numeric_template), (along_target, numeric_target)):
            assert np.abs(reference).max() > 1e-2
            np.testing.assert_allclose(np.asarray(analytic), reference, atol=1e-6, rtol=1e-5)

    def test_implicit_gradient_near_the_unrolled_one_and_identity_on_flat_windows(self):
        """As SBR differentiates it (forward_backward_check, float32), run close to convergence (stopping at
        1e-4 px): the implicit gradient is within 0.01 of the unrolled one on textured points. (Stopping at
        the default 0.01 px, the two differ by up to 0.09 here: the unrolled one is the derivative of the
        stopped iterations.) A point in a flat region is frozen on every level, so its track is the point
        itself and its gradient exactly 1 (the frozen starting warp's tangent)."""
        image, points = _small_image_and_points()
        image = np.pad(image, ((0, 0), (0, 128)), constant_values=0.5)  # a flat 64 x 128 region on the right
        points = np.concatenate([points, np.float32([[128.0, 30.0]])])
        target = _translate(image, (1.5, -0.5))
        gradients = {}
        for differentiation in ("unrolled", "implicit"):

            def loss(p):
                check = functools.partial(
                    forward_backward_check, num_levels=2, window_radius=6, num_iterations=40, convergence_eps=1e-4
                )
                tracked, valid = check(image, target, p, differentiation=differentiation)
                return jnp.sum(tracked), (tracked, valid)

            (_, (tracked, valid)), gradient = jax.jit(jax.value_and_grad(loss, has_aux=True))(points)
            gradients[differentiation] = np.asarray(gradient)
        assert np.all(np.asarray(valid)[:-1]) and not valid[-1]
        np.testing.assert_array_equal(np.asarray(tracked)[-1], points[-1])
        assert np.all(np.isfinite(gradients["implicit"]))
        np.testing.assert_allclose(gradients["implicit"][:-1], gradients["unrolled"][:-1], atol=0.01)
        np.testing.assert_allclose(gradients["implicit"][-1], 1.0, atol=1e-6)

    def test_gradient_reaches_the_images(self):
        image, points = _small_image_and_points()
        (_, valid), gradients = _small_track_and_gradients(image, _translate(image, (1.5, -0.5)), points)
        assert np.all(valid)
        for g in gradients:
            assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0

    @settings(max_examples=10, deadline=None)
    @given(
        seed=st.integers(0, 2**31 - 1),
        smoothing=st.floats(0.0, 3.0),
        shift=st.tuples(st.floats(-4, 4), st.floats(-4, 4)),
        spread=st.floats(0.0, 60.0),
    )
    def test_values_and_gradients_finite_on_random_inputs(self, seed, smoothing, shift, spread):
        rng = np.random.default_rng(seed)
        image = np.float32(ndimage.gaussian_filter(rng.random(SMALL_SHAPE), smoothing))
        centre = np.array(SMALL_SHAPE[::-1], np.float32) / 2
        points = np.float32(centre + rng.uniform(-1, 1, (SMALL_POINTS, 2)) * spread)
        (tracked, valid), gradients = _small_track_and_gradients(image, _translate(image, shift), points)
        chex.assert_shape((tracked, valid), ((SMALL_POINTS, 2), (SMALL_POINTS,)))
        assert valid.dtype == jnp.bool_
        assert np.all(np.isfinite(np.asarray(tracked)))
        assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)

    @pytest.mark.parametrize(
        "function, warp",
        [
            ("forward_backward_check", "translation"),  # as SBR differentiates it
            pytest.param("lk_track", "translation", marks=pytest.mark.slow),  # ~20 s of compilation
            pytest.param("lk_track", "affine", marks=pytest.mark.slow),  # ~40 s of compilation
        ],
    )
    def test_checkpointed_gradient_equals_the_differentiated_iterations(self, monkeypatch, function, warp):
        """The custom JVP (checkpointed steps, no early exit) against differentiating the evaluated iterations
        (`lax.cond` early exit, nothing recomputed: the code before the custom JVP): the same values, bit for
        bit, and the same gradients (to float32 rounding). lk_track: one level, gradients to the points and both
        images; forward_backward_check: two levels, gradient to the points only (as in SBR)."""
        image, points = _small_image_and_points()
        target = _translate(image, (1.5, -0.5))
        weights = np.random.default_rng(0).normal(size=points.shape).astype(np.float32)
        if function == "lk_track":
            track = functools.partial(lk_track, num_levels=1, window_radius=6, num_iterations=6, warp=warp)
            argnums = (0, 1, 2)
        else:
            track, argnums = functools.partial(forward_backward_check, num_levels=2, window_radius=6, warp=warp), 0

        def loss(points, template, target):
            tracked, valid = track(template, target, points)
            return jnp.sum(tracked * weights), (tracked, valid)

        def evaluate_and_differentiate(points, template, target):
            evaluated = track(template, target, points)
            (_, differentiated), gradients = jax.value_and_grad(loss, argnums, has_aux=True)(points, template, target)
            return evaluated, differentiated, gradients

        results = {}
        for legacy in (True, False):
            monkeypatch.setattr(lucas_kanade, "_LEGACY_GRADIENT", legacy)
            # A new function object each time: jax.jit caches traces by function, not by the module flag.
            run = jax.jit(lambda *args: evaluate_and_differentiate(*args))
            results[legacy] = jax.tree.map(np.asarray, run(points, image, target))
        (old_values, old_differentiated, old_gradients) = results[True]
        (new_values, new_differentiated, new_gradients) = results[False]
        assert np.mean(old_values[1]) >= 0.5 and np.all(np.isfinite(old_values[0]))
        for old, new in zip(old_values + old_differentiated, new_values + new_differentiated):
            np.testing.assert_array_equal(new, old)
        for old, new in zip(jax.tree.leaves(old_gradients), jax.tree.leaves(new_gradients)):
            assert np.abs(old).max() > 0
            np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-5 * np.abs(old).max())


# One small configuration shared by several tests, so that it compiles once.
SMALL_SHAPE = (64, 64)
SMALL_POINTS = 6
_track_small = functools.partial(lk_track, num_levels=2, window_radius=6)


def _small_image_and_points():
    image = _astronaut(colour=False)[100:164, 60:124]  # face and helmet edge
    return image, _corner_points(image, SMALL_POINTS, border=12)


@jax.jit
def _small_track_and_gradients(template, target, points):
    """(tracked, valid) and the gradients of sum(tracked) w.r.t. (points, template, target)."""

    def loss(points, template, target):
        tracked, valid = _track_small(template, target, points)
        return jnp.sum(tracked), (tracked, valid)

    (_, outputs), gradients = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(points, template, target)
    return outputs, gradients


def _rec601_grey(image: np.ndarray) -> np.ndarray:
    """numpy luma of [..., 3] RGB, the reference of lk_track's luma option."""
    weights = np.float32([0.299, 0.587, 0.114])
    return weights[0] * image[..., 0] + weights[1] * image[..., 1] + weights[2] * image[..., 2]


class TestLuma:
    def _frames(self):
        colour = _astronaut(colour=True)[100:164, 60:124]  # face and helmet edge
        return colour, _translate(colour, (1.5, -0.5)), _corner_points(_rec601_grey(colour), SMALL_POINTS, border=12)

    def test_luma_equals_tracking_the_numpy_grey(self):
        """luma=True on RGB frames tracks as the default does on their Rec. 601 grey computed in numpy."""
        colour, target, points = self._frames()
        track = jax.jit(_track_small, static_argnames="luma")
        tracked, valid = track(colour, target, points, luma=True)
        expected, expected_valid = track(_rec601_grey(colour), _rec601_grey(target), points)
        assert np.all(expected_valid)
        np.testing.assert_array_equal(valid, expected_valid)
        np.testing.assert_allclose(tracked, expected, atol=1e-4)

    @pytest.mark.slow  # ~12 s: two compilations of the differentiated forward-backward check
    def test_luma_forward_backward_gradient_equals_the_numpy_grey(self):
        """The SBR-shaped forward-backward check (two levels, gradient to the points) with luma=True against the
        default on the numpy grey: the same tracks, flags and gradients (to float32 rounding)."""
        colour, target, points = self._frames()
        weights = np.random.default_rng(0).normal(size=points.shape).astype(np.float32)

        @functools.partial(jax.jit, static_argnames="luma")
        def check_and_gradient(template, target, points, luma):
            def loss(points):
                tracked, valid = forward_backward_check(
                    template, target, points, num_levels=2, window_radius=6, luma=luma
                )
                return jnp.sum(tracked * weights), (tracked, valid)

            return jax.value_and_grad(loss, has_aux=True)(points)

        (_, (tracked, valid)), gradient = check_and_gradient(colour, target, points, luma=True)
        (_, (expected, expected_valid)), expected_gradient = check_and_gradient(
            _rec601_grey(colour), _rec601_grey(target), points, luma=False
        )
        assert np.mean(expected_valid) >= 0.5
        np.testing.assert_array_equal(valid, expected_valid)
        np.testing.assert_allclose(tracked, expected, atol=1e-4)
        assert np.abs(expected_gradient).max() > 0
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-5 * np.abs(expected_gradient).max())


class TestTransformations(chex.TestCase):
    def _pairs(self):
        image, points = _small_image_and_points()
        shifts = np.array([[1.4, -0.7], [-2.2, 0.9], [0.6, 2.4]], np.float32)
        targets = np.stack([_translate(image, s) for s in shifts])
        templates = np.broadcast_to(image, targets.shape)
        return templates, targets, points, points + shifts[:, None]

    @chex.variants(with_jit=True, without_jit=True)
    def test_single_pair(self):
        templates, targets, points, expected = self._pairs()
        tracked, valid = self.variant(_track_small)(templates[0], targets[0], points)
        chex.assert_shape(tracked, (SMALL_POINTS, 2))
        assert np.all(valid)
        assert np.median(_errors(tracked, expected[0])) < 0.1

    def test_vmap_and_native_batch_agree_with_ground_truth(self):
        templates, targets, points, expected = self._pairs()
        batch_points = np.broadcast_to(points, expected.shape)

        @jax.jit
        def both(templates, targets, points):
            vmapped = jax.vmap(_track_small)(templates, targets, points)
            return vmapped, _track_small(templates[None], targets[None], points[None])

        (vmapped, vmapped_valid), (native, native_valid) = both(templates, targets, batch_points)
        chex.assert_shape((vmapped, native), ((3, SMALL_POINTS, 2), (1, 3, SMALL_POINTS, 2)))
        assert np.all(vmapped_valid) and np.all(native_valid)
        assert np.median(_errors(native[0], expected)) < 0.1
        np.testing.assert_allclose(vmapped, native[0], atol=1e-4)

    def _two_pairs_on_a_mesh(self):
        """(templates, targets, points, expected) of two pairs, and shard_map over two devices of them."""
        templates, targets, points, expected = self._pairs()
        devices = np.array(jax.devices()[:2])
        if devices.size < 2:
            pytest.skip("needs two devices (conftest forces four CPU devices)")
        mesh = jax.sharding.Mesh(devices, ("data",))
        spec = jax.sharding.PartitionSpec("data")
        points = np.array(np.broadcast_to(points, expected[:2].shape))
        pairs = (templates[:2], targets[:2], points, expected[:2])
        return pairs, functools.partial(jax.shard_map, mesh=mesh, in_specs=spec, out_specs=spec)

    def test_runs_inside_shard_map(self):
        (templates, targets, points, expected), shard_map = self._two_pairs_on_a_mesh()
        tracked, valid = jax.jit(shard_map(_track_small))(templates, targets, points)
        assert np.all(valid)
        assert np.median(_errors(tracked, expected)) < 0.1

    def test_gradient_inside_shard_map_equals_the_unsharded_one(self):
        (templates, targets, points, _), shard_map = self._two_pairs_on_a_mesh()
        for differentiation in ("unrolled", "implicit"):

            def gradient(templates, targets, points, differentiation=differentiation):
                def loss(p):
                    return jnp.sum(_track_small(templates, targets, p, differentiation=differentiation)[0] ** 2)

                return jax.grad(loss)(points)

            sharded = jax.jit(shard_map(gradient))
            unsharded = jax.jit(gradient)(templates, targets, points)
            assert np.abs(np.asarray(unsharded)).max() > 1.0
            np.testing.assert_allclose(
                np.asarray(sharded(templates, targets, points)), np.asarray(unsharded), rtol=1e-5, atol=1e-4
            )


class TestArguments:
    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(points=np.zeros((4, 3), np.float32)), "points"),
            (dict(target_image=np.zeros((16, 17), np.float32)), "target_image"),
            (dict(template_image=np.zeros((1, 16, 16, 1, 1), np.float32)), "template_image"),
            (dict(template_image=np.zeros((16, 16), np.uint8)), "float"),
            (dict(warp="homography"), "warp"),
            (dict(window_radius=0), "window_radius"),
            (dict(num_levels=1.5), "num_levels"),
            (dict(regularization=0.0), "regularization"),
            (dict(max_residual=-1.0), "max_residual"),
            (dict(luma=True), "luma"),  # a grey image
            (dict(differentiation="reverse"), "differentiation"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        arguments = dict(
            template_image=np.zeros((16, 16), np.float32),
            target_image=np.zeros((16, 16), np.float32),
            points=np.zeros((4, 2), np.float32),
        )
        arguments.update(kwargs)
        with pytest.raises(ValueError, match=match):
            lk_track(**arguments)

    def test_forward_backward_rejects_unknown_keyword(self):
        image = np.zeros((16, 16), np.float32)
        with pytest.raises(ValueError, match="lk_kwargs"):
            forward_backward_check(image, image, np.zeros((2, 2), np.float32), window=3)
        with pytest.raises(ValueError, match="threshold"):
            forward_backward_check(image, image, np.zeros((2, 2), np.float32), threshold=-1.0)
