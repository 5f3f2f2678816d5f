"""SBR's registration loss: the formula against numpy, closed forms, and where its gradient goes."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from landmarkjax.losses import registration_distance, registration_loss, registration_point_mask

LK_OPTIONS = dict(window_radius=4, num_levels=2, num_iterations=10)


def numpy_registration_distance(detections, tracked, mask):
    """sum over kept points of the distances to both tracks, divided by the number of kept points."""
    total, count = 0.0, 0
    for index in np.ndindex(*mask.shape):
        if mask[index]:
            batch, k = index[:-1], index[-1]
            for direction in range(2):
                total += np.linalg.norm(detections[batch + (k,)] - tracked[batch + (direction, k)])
            count += 1
    return total / count if count else 0.0


def numpy_point_mask(detections, tracked, track_valid, confidences, max_displacement, min_confidence):
    batch_shape, num_points = detections.shape[:-2], detections.shape[-2]
    mask = np.zeros(batch_shape + (num_points,), bool)
    for index in np.ndindex(*mask.shape):
        batch, k = index[:-1], index[-1]
        keep = all(confidences[batch + (t, k)] >= min_confidence for t in range(3))
        for direction in range(2):
            keep &= bool(track_valid[batch + (direction, k)])
            offset = tracked[batch + (direction, k)] - detections[batch + (k,)]
            keep &= np.linalg.norm(offset) <= max_displacement
        mask[index] = keep
    return mask


class RegistrationFormulaTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_distance_and_mask_match_numpy(self):
        rng = np.random.default_rng(0)
        detections = rng.uniform(0, 30, (3, 7, 2)).astype(np.float32)
        tracked = (detections[:, None] + rng.normal(0, 1.5, (3, 2, 7, 2))).astype(np.float32)
        track_valid = rng.random((3, 2, 7)) > 0.2
        confidences = rng.uniform(0.1, 1.0, (3, 3, 7)).astype(np.float32)

        mask = self.variant(
            lambda *a: registration_point_mask(*a, max_displacement=2.0, min_confidence=0.3)
        )(detections, tracked, track_valid, confidences)
        expected_mask = numpy_point_mask(detections, tracked, track_valid, confidences, 2.0, 0.3)
        np.testing.assert_array_equal(mask, expected_mask)
        self.assertTrue(0 < expected_mask.sum() < expected_mask.size)

        loss = self.variant(registration_distance)(detections, tracked, mask)
        expected = numpy_registration_distance(detections, tracked, expected_mask)
        np.testing.assert_allclose(loss, expected, rtol=1e-5)

    def test_no_kept_point_gives_zero_loss_and_finite_gradient(self):
        detections = jnp.ones((4, 2))
        tracked = jnp.ones((2, 4, 2))
        mask = jnp.zeros((4,), bool)
        value, grad = jax.value_and_grad(registration_distance)(detections, tracked, mask)
        self.assertEqual(float(value), 0.0)
        self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))

    def test_bad_shapes_raise(self):
        with self.assertRaisesRegex(ValueError, "tracked"):
            registration_distance(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.ones((4,)))
        with self.assertRaisesRegex(ValueError, "detections"):
            registration_loss(jnp.zeros((2, 16, 16, 1)), jnp.zeros((2, 4, 2)), jnp.ones((2, 4)))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), exact=st.booleans())
def test_distance_gradient_is_finite(seed, exact):
    rng = np.random.default_rng(seed)
    detections = rng.uniform(0, 20, (2, 5, 2)).astype(np.float32)
    # exact: every track lands on its detection, where the distance has no derivative.
    tracked = np.stack([detections] * 2, axis=1) if exact else rng.uniform(0, 20, (2, 2, 5, 2))
    mask = rng.random((2, 5)) > 0.3
    grad = jax.grad(registration_distance, argnums=(0, 1))(detections, tracked.astype(np.float32), mask)
    assert all(np.all(np.isfinite(g)) for g in grad)


def textured_image(seed: int, size: int = 40) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size, 3))
    image = gaussian_filter(noise, sigma=(1.5, 1.5, 0))
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


def static_clip(num_clips: int = 2) -> np.ndarray:
    return np.stack([np.stack([textured_image(seed)] * 3) for seed in range(num_clips)])  # [B, 3, H, W, 3]


def test_identical_frames_and_detections_give_zero_loss():
    frames = static_clip()
    points = np.random.default_rng(1).uniform(12, 28, (2, 5, 2)).astype(np.float32)
    detections = np.stack([points] * 3, axis=1)  # [B, 3, K, 2]
    confidences = np.ones((2, 3, 5), np.float32)
    loss, info = jax.jit(lambda *a: registration_loss(*a, **LK_OPTIONS))(frames, detections, confidences)
    # LK on identical images leaves every point where it is, and every point passes every check.
    np.testing.assert_allclose(info["tracked"], np.stack([points] * 2, axis=1), atol=1e-3)
    assert float(info["num_points"]) == 10
    assert float(loss) < 2e-3


def test_low_confidence_and_large_displacement_drop_points():
    frames = static_clip(1)
    points = np.array([[[15.0, 15.0], [20.0, 22.0], [25.0, 18.0]]], np.float32)
    detections = np.stack([points] * 3, axis=1)
    detections[0, 1, 2] += 3.0  # the middle detection of point 2 is 3 px (> 2) from both tracks
    confidences = np.ones((1, 3, 3), np.float32)
    confidences[0, 2, 0] = 0.2  # point 0 has a weak peak in frame t+1
    _, info = registration_loss(frames, detections, confidences, **LK_OPTIONS)
    np.testing.assert_array_equal(info["mask"], [[False, True, False]])


@pytest.mark.parametrize("through_lk", [pytest.param(True, marks=pytest.mark.slow), False])
def test_gradient_reaches_neighbour_detections_only_through_lk(through_lk):
    frames = static_clip(1)
    points = np.array([[[15.0, 16.0], [22.0, 20.0], [18.0, 25.0]]], np.float32)
    # Neighbour detections 1 px off the middle one: LK on identical frames keeps them there.
    detections = np.stack([points + [0.6, -0.8], points, points + [-0.8, 0.6]], axis=1)
    confidences = np.ones((1, 3, 3), np.float32)

    def loss_fn(detections):
        return registration_loss(frames, detections, confidences, through_lk=through_lk, **LK_OPTIONS)[0]

    loss, grad = jax.value_and_grad(loss_fn)(jnp.asarray(detections))
    np.testing.assert_allclose(loss, 2.0, rtol=1e-2)  # each kept point: 1 px to each of its two tracks
    assert np.all(np.isfinite(grad))
    # The middle detection is pulled toward the mean of its tracks in both modes.
    offsets = (detections[0, 0] - points[0]) + (detections[0, 2] - points[0])
    np.testing.assert_allclose(grad[0, 1], -offsets / 3, atol=2e-2)
    neighbour_gradient = np.abs(np.asarray(grad)[0, [0, 2]]).max()
    if through_lk:
        # d tracked / d source = identity for a pure translation, so the neighbour gets the unit vector / 3.
        np.testing.assert_allclose(grad[0, 0], (detections[0, 0] - points[0]) / 3, atol=2e-2)
    else:
        assert neighbour_gradient == 0.0


def test_oracle_loss_moves_the_neighbours_by_the_true_motion():
    from landmarkjax.losses import oracle_registration_loss

    rng = np.random.default_rng(3)
    truth = rng.uniform(10, 50, (2, 3, 5, 2)).astype(np.float32)
    detections = (truth + rng.normal(0, 0.8, truth.shape)).astype(np.float32)
    confidences = rng.uniform(0.2, 1.0, (2, 3, 5)).astype(np.float32)
    visibility = np.ones((2, 3, 5), bool)
    visibility[0, 2, 1] = False  # invisible in frame t+1: that landmark's track fails
    loss, info = oracle_registration_loss(
        detections, confidences, truth, visibility, max_displacement=3.0, min_confidence=0.3
    )
    # numpy: a = d(t-1) + g(t) - g(t-1), b = d(t+1) + g(t) - g(t+1), SBR's checks, the mean distance.
    tracked = np.stack(
        [detections[:, 0] + truth[:, 1] - truth[:, 0], detections[:, 2] + truth[:, 1] - truth[:, 2]], axis=1
    )
    track_valid = np.stack([visibility[:, 0] & visibility[:, 1], visibility[:, 2] & visibility[:, 1]], axis=1)
    mask = numpy_point_mask(detections[:, 1], tracked, track_valid, confidences, 3.0, 0.3)
    assert not mask[0, 1] and 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(np.asarray(info["mask"]), mask)
    np.testing.assert_allclose(np.asarray(info["tracked"]), tracked, rtol=1e-6)
    assert float(loss) == pytest.approx(numpy_registration_distance(detections[:, 1], tracked, mask), rel=1e-5)

    # Detections that follow the true motion exactly: zero loss; the gradient reaches only frame t.
    shifted = truth + np.float32(1.5)
    loss, _ = oracle_registration_loss(shifted, confidences, truth, visibility, max_displacement=3.0, min_confidence=0.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    grads = jax.grad(
        lambda d: oracle_registration_loss(d, confidences, truth, visibility, max_displacement=3.0, min_confidence=0.0)[0]
    )(jnp.asarray(detections))
    assert np.all(np.asarray(grads)[:, [0, 2]] == 0) and np.any(np.asarray(grads)[:, 1] != 0)
    with pytest.raises(ValueError, match="true_landmarks"):
        oracle_registration_loss(detections, confidences, truth[:, :2], visibility)
