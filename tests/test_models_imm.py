"""The IMM generator: shapes, the marginal soft-argmax and the Gaussian bottleneck."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.models.imm import IMM, PoseEncoder, Renderer, gaussian_maps, imm_points_to_pixels

TINY = dict(encoder_widths=(4, 8), render_width=16, render_min_width=4)


@pytest.fixture(scope="module")
def tiny_imm():
    model = IMM(num_landmarks=3, **TINY)
    rng = np.random.default_rng(0)
    source, target = (rng.uniform(size=(2, 16, 16, 3)).astype(np.float32) for _ in range(2))
    # Random He-scaled parameters of the right shapes without compiling `init` (slow on a busy CPU); the
    # factor 2 spreads the points over the map (about -0.6 to 0.9) instead of bunching them at the centre.
    shapes = jax.eval_shape(model.init, jax.random.key(0, impl="rbg"), source, target)

    def fill(leaf):
        fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 0
        scale = 2.0 * np.sqrt(2.0 / fan_in) if fan_in else 0.1
        return jnp.asarray(rng.normal(scale=scale, size=leaf.shape), jnp.float32)

    params = jax.tree.map(fill, shapes)
    return model, params, jax.jit(model.apply)(params, source, target)


def _numpy_marginal_soft_argmax(logits):
    """The official get_coord: mean over the other axis, softmax, expectation over linspace(-1, 1)."""

    def coord(marginal, size):  # marginal: [B, size, K]
        p = np.exp(marginal - marginal.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return np.sum(p * np.linspace(-1.0, 1.0, size)[None, :, None], axis=1)

    logits = np.asarray(logits, np.float64)
    x = coord(logits.mean(axis=1), logits.shape[2])
    y = coord(logits.mean(axis=2), logits.shape[1])
    return np.stack([x, y], axis=-1)


def test_output_shapes(tiny_imm):
    _, _, out = tiny_imm
    assert out["reconstruction"].shape == (2, 16, 16, 3)
    assert out["points"].shape == (2, 3, 2)
    assert out["gaussian_maps"].shape == (2, 8, 8, 3)
    assert out["pose_logits"].shape == (2, 8, 8, 3)
    assert np.all(np.abs(out["points"]) <= 1.0 + 1e-6)
    assert np.ptp(np.asarray(out["points"])) > 0.5  # spread out, not all at the centre


def test_points_are_the_official_marginal_soft_argmax(tiny_imm):
    _, _, out = tiny_imm
    np.testing.assert_allclose(out["points"], _numpy_marginal_soft_argmax(out["pose_logits"]), atol=1e-5)


def test_gaussian_bottleneck_peaks_at_the_nearest_cell(tiny_imm):
    _, _, out = tiny_imm
    maps = np.asarray(out["gaussian_maps"])
    points = np.asarray(out["points"])
    size = maps.shape[1]
    grid = np.linspace(-1.0, 1.0, size)
    for b in range(maps.shape[0]):
        for k in range(maps.shape[-1]):
            row, col = np.unravel_index(np.argmax(maps[b, :, :, k]), maps.shape[1:3])
            assert col == np.argmin(np.abs(grid - points[b, k, 0]))
            assert row == np.argmin(np.abs(grid - points[b, k, 1]))


def test_gaussian_maps_values():
    # exp(-d^2 / std^2) with no factor 2: at distance std the value is exp(-1).
    points = jnp.asarray([[[0.0, -1.0]]])
    maps = gaussian_maps(points, 3, 5, std=0.5)  # x grid -1, -0.5, 0, 0.5, 1; y grid -1, 0, 1
    assert maps.shape == (1, 3, 5, 1)
    np.testing.assert_allclose(maps[0, 0, 2, 0], 1.0)
    np.testing.assert_allclose(maps[0, 0, 3, 0], np.exp(-1.0), rtol=1e-6)
    np.testing.assert_allclose(maps[0, 1, 2, 0], np.exp(-4.0), rtol=1e-6)


def test_points_to_pixels():
    # 8x8 pose maps at stride 4 over 32x32 images: cell 0 is pixel 1.5, cell 7 is pixel 29.5.
    pixels = imm_points_to_pixels(jnp.asarray([[-1.0, 1.0], [1.0, -1.0]]), 8, 8, 4)
    np.testing.assert_allclose(pixels, [[1.5, 29.5], [29.5, 1.5]])


def test_errors():
    images = jnp.zeros((1, 16, 16, 3))
    with pytest.raises(ValueError, match="num_landmarks must be >= 1"):
        IMM(num_landmarks=0, **TINY).init(jax.random.key(0, impl="rbg"), images, images)
    with pytest.raises(ValueError, match="num_landmarks must be >= 1"):
        PoseEncoder(0, (4,)).init(jax.random.key(0, impl="rbg"), images)
    with pytest.raises(ValueError, match="divisible by 2"):
        IMM(num_landmarks=2, **TINY).init(jax.random.key(0, impl="rbg"), images[:, :15], images[:, :15])
    with pytest.raises(ValueError, match="times 2"):
        Renderer((24, 24), 4, 4).init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 2)))
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_maps(jnp.zeros((1, 2)), 4, 4, std=0.0)
