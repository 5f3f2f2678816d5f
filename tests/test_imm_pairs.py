"""IMM pairs: the two-stage random TPS with validity masks, and two frames of a synthetic clip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.data.pairs import FramePair
from landmarkjax.data.sources import SyntheticFaceClipSource
from landmarkjax.ops.tps import (
    IMM_SOURCE_TPS,
    IMM_TARGET_TPS,
    normalized_to_pixels,
    pixels_to_normalized,
    random_tps,
    tps_image_pair,
    tps_warp_points,
)

IDENTITY = dict(rotation_std=0.0, scale_std=0.0, translation_std=0.0, warp_std=(0.0, 0.0))


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    with jax.default_prng_impl("rbg"):
        yield


def _sample_positions(spline, height, width):
    """Independent reference: every output pixel's sample position (x, y) in source pixels, by numpy."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.stack([xs, ys], -1)
    normalised = pixels_to_normalized(jnp.asarray(grid), height, width)
    return np.asarray(normalized_to_pixels(tps_warp_points(spline, normalised), height, width))


def _inside(positions, height, width, tolerance=1e-3):
    x, y = positions[..., 0], positions[..., 1]
    return (x >= -tolerance) & (x <= width - 1 + tolerance) & (y >= -tolerance) & (y <= height - 1 + tolerance)


def test_identity_parameters_give_identical_images_and_full_masks():
    image = np.random.default_rng(0).uniform(size=(16, 20, 3)).astype(np.float32)
    pair = jax.jit(lambda k, x: tps_image_pair(k, x, target_tps=IDENTITY, source_tps=IDENTITY))(
        jax.random.key(1), image
    )
    np.testing.assert_allclose(pair["target"], image, atol=1e-5)
    np.testing.assert_allclose(pair["source"], image, atol=1e-5)
    assert np.all(np.asarray(pair["target_valid"]) == 1) and np.all(np.asarray(pair["source_valid"]) == 1)


def test_masks_mark_exactly_the_pixels_sampled_from_outside():
    height, width = 24, 24
    image = np.random.default_rng(1).uniform(0.1, 1.0, size=(height, width, 3)).astype(np.float32)
    # Large translations, so that both warps pull in pixels from outside.
    target_tps = dict(IMM_TARGET_TPS, translation_std=0.3)
    source_tps = dict(IMM_SOURCE_TPS, translation_std=0.3)
    key = jax.random.key(3)
    pair = jax.jit(lambda k, x: tps_image_pair(k, x, target_tps=target_tps, source_tps=source_tps))(key, image)
    target_key, source_key = jax.random.split(key)
    target_spline = random_tps(target_key, **target_tps)
    source_spline = random_tps(source_key, **source_tps)

    first = _sample_positions(target_spline, height, width)
    expected_target = _inside(first, height, width)
    assert 0 < expected_target.sum() < height * width  # the case is not trivial
    np.testing.assert_array_equal(np.asarray(pair["target_valid"]) > 0, expected_target)
    # Pixels sampled a whole pixel or more outside hold the zero fill (the image is >= 0.1 everywhere).
    far = ~_inside(first, height, width, tolerance=1.0)
    assert far.any() and np.all(np.asarray(pair["target"])[far] == 0)

    # A source pixel is valid iff its sample lies inside and every bilinear neighbour it reads is a valid
    # target pixel (with weight > 0).
    second = _sample_positions(source_spline, height, width)
    expected_source = _inside(second, height, width)
    for i in range(height):
        for j in range(width):
            if not expected_source[i, j]:
                continue
            x, y = np.clip(second[i, j], 0, [width - 1, height - 1])
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    if wx * wy > 1e-4 and not expected_target[min(y0 + dy, height - 1), min(x0 + dx, width - 1)]:
                        expected_source[i, j] = False
    got = np.asarray(pair["source_valid"]) > 0
    assert 0 < expected_source.sum() < height * width
    assert np.mean(got != expected_source) < 0.01  # exact up to weights at the 1e-4 boundary
    assert np.all(got <= _inside(second, height, width))


def test_the_authors_parameters_move_the_image_but_keep_most_of_it():
    image = np.random.default_rng(2).uniform(size=(32, 32, 3)).astype(np.float32)
    keys = jax.random.split(jax.random.key(0), 4)
    pairs = jax.jit(jax.vmap(lambda k: tps_image_pair(k, image)))(keys)
    assert pairs["source"].shape == (4, 32, 32, 3) and pairs["source_valid"].shape == (4, 32, 32)
    assert float(jnp.mean(jnp.abs(pairs["source"] - pairs["target"]))) > 0.05
    assert 0.5 < float(jnp.mean(pairs["target_valid"])) < 1.0


def test_frame_pair_takes_two_distinct_frames_of_one_clip():
    clip = SyntheticFaceClipSource(1, num_frames=3, size=48, seed=0)[0]
    pair = FramePair().random_map(clip, np.random.default_rng(0))
    i, j = pair["frame_indices"]
    assert i != j and pair["frames"].shape == (2, 48, 48, 3) and pair["landmarks"].shape == (2, 68, 2)
    np.testing.assert_array_equal(pair["frames"][0], clip["frames"][i])
    np.testing.assert_array_equal(pair["frames"][1], clip["frames"][j])
    np.testing.assert_array_equal(pair["landmarks"][1], clip["landmarks"][j])
    with pytest.raises(ValueError, match="at least 2 frames"):
        FramePair().random_map({"frames": clip["frames"][:1]}, np.random.default_rng(0))
