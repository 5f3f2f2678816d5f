"""Tests for landmarkjax.ops.heatmaps against numpy references from the definitions, and closed forms."""

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from landmarkjax.ops.heatmaps import (
    heatmap_to_image_coords,
    image_to_heatmap_coords,
    local_soft_argmax,
    marginal_soft_argmax,
    render_gaussian_heatmaps,
    soft_argmax,
)

_FLOATS = st.floats(-4.0, 4.0, width=32)


def _softmax_numpy(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _soft_argmax_numpy(heatmaps: np.ndarray, temperature: float) -> np.ndarray:
    """heatmaps [N, H, W, K] -> [N, K, 2], one map at a time from the definition."""
    n, h, w, k = heatmaps.shape
    rows, cols = np.mgrid[:h, :w]
    out = np.zeros((n, k, 2))
    for b in range(n):
        for j in range(k):
            p = _softmax_numpy(heatmaps[b, :, :, j].astype(np.float64) / temperature)
            out[b, j] = [(p * cols).sum(), (p * rows).sum()]
    return out


def _log_gaussian_numpy(points: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """Closed-form log of a Gaussian heatmap, -d^2 / (2 sigma^2): points [N, K, 2] -> [N, H, W, K]."""
    rows, cols = np.mgrid[:height, :width]
    dx = cols[None, :, :, None] - points[:, None, None, :, 0]
    dy = rows[None, :, :, None] - points[:, None, None, :, 1]
    return -(dx**2 + dy**2) / (2 * sigma**2)


def _local_soft_argmax_numpy(heatmaps: np.ndarray, radius: int, threshold: float = 1e-6) -> np.ndarray:
    """SBR's find_tensor_peak_batch, one map at a time; window cells outside the map are skipped."""
    n, h, w, k = heatmaps.shape
    out = np.zeros((n, k, 2))
    for b in range(n):
        for j in range(k):
            m = heatmaps[b, :, :, j].astype(np.float64)
            py, px = np.unravel_index(np.argmax(m), m.shape)
            total = sx = sy = 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    y, x = py + dy, px + dx
                    if 0 <= y < h and 0 <= x < w:
                        weight = m[y, x] if m[y, x] > threshold else np.finfo(np.float64).eps
                        total += weight
                        sx += weight * dx
                        sy += weight * dy
            out[b, j] = [px + sx / total, py + sy / total]
    return out


def _interior_points(rng: np.random.Generator, shape, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(np.float32)


class SoftArgmaxTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference(self):
        heatmaps = np.random.default_rng(0).normal(size=(2, 3, 7, 9, 4)).astype(np.float32) * 3
        got = self.variant(lambda h: soft_argmax(h, temperature=0.7))(heatmaps)
        chex.assert_shape(got, (2, 3, 4, 2))
        expected = _soft_argmax_numpy(heatmaps.reshape(6, 7, 9, 4), 0.7).reshape(2, 3, 4, 2)
        np.testing.assert_allclose(got, expected, atol=2e-5)

    @chex.variants(with_jit=True)
    def test_log_of_sharp_gaussian_returns_its_subpixel_centre(self):
        points = _interior_points(np.random.default_rng(1), (3, 5, 2), 10.0, 22.0)
        log_heatmaps = _log_gaussian_numpy(points, 32, 32, sigma=1.0).astype(np.float32)
        got = self.variant(soft_argmax)(log_heatmaps)
        np.testing.assert_allclose(got, points, atol=1e-3)

    def test_vmap_matches_per_example_reference(self):
        heatmaps = np.random.default_rng(2).normal(size=(5, 6, 8, 3)).astype(np.float32)
        got = jax.jit(jax.vmap(soft_argmax))(heatmaps)
        np.testing.assert_allclose(got, _soft_argmax_numpy(heatmaps, 1.0), atol=2e-5)

    def test_low_temperature_gives_the_hard_argmax(self):
        heatmaps = np.random.default_rng(3).normal(size=(1, 6, 8, 3)).astype(np.float32)
        got = jax.jit(lambda h: soft_argmax(h, temperature=1e-4))(heatmaps)
        flat = heatmaps[0].reshape(48, 3).argmax(0)
        np.testing.assert_allclose(got[0], np.stack([flat % 8, flat // 8], -1), atol=1e-4)

    @parameterized.parameters((5, 5), (5,))
    def test_bad_rank_names_heatmaps(self, *shape):
        with pytest.raises(ValueError, match="heatmaps"):
            soft_argmax(jnp.zeros(shape))

    def test_bad_temperature_is_named(self):
        with pytest.raises(ValueError, match="temperature"):
            soft_argmax(jnp.zeros((4, 4, 1)), temperature=0.0)


class MarginalSoftArgmaxTest(chex.TestCase):
    @staticmethod
    def _authors_get_coord_numpy(heatmaps: np.ndarray, other_axis: int, axis_size: int) -> np.ndarray:
        """Jakab et al.'s imm `get_coord` in numpy: mean over the other axis, softmax, linspace(-1, 1)."""
        marginal = heatmaps.astype(np.float64).mean(axis=other_axis)  # [B, size, K]
        e = np.exp(marginal - marginal.max(axis=1, keepdims=True))
        probabilities = e / e.sum(axis=1, keepdims=True)
        return (probabilities * np.linspace(-1.0, 1.0, axis_size)[None, :, None]).sum(axis=1)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mean_reduction_matches_authors_code_in_normalised_units(self):
        heatmaps = np.random.default_rng(4).normal(size=(3, 10, 12, 5)).astype(np.float32) * 4
        got = np.asarray(self.variant(lambda h: marginal_soft_argmax(h, reduction="mean"))(heatmaps))
        gauss_y = self._authors_get_coord_numpy(heatmaps, 2, 10)
        gauss_x = self._authors_get_coord_numpy(heatmaps, 1, 12)
        np.testing.assert_allclose(-1 + 2 * got[..., 0] / (12 - 1), gauss_x, atol=1e-5)
        np.testing.assert_allclose(-1 + 2 * got[..., 1] / (10 - 1), gauss_y, atol=1e-5)

    @chex.variants(with_jit=True)
    def test_sum_reduction_matches_numpy_definition(self):
        heatmaps = np.random.default_rng(5).normal(size=(2, 6, 7, 3)).astype(np.float32)
        got = self.variant(marginal_soft_argmax)(heatmaps)
        expected = np.zeros((2, 3, 2))
        for b in range(2):
            for k in range(3):
                expected[b, k, 0] = (_softmax_numpy(heatmaps[b, :, :, k].sum(0)) * np.arange(7)).sum()
                expected[b, k, 1] = (_softmax_numpy(heatmaps[b, :, :, k].sum(1)) * np.arange(6)).sum()
        np.testing.assert_allclose(got, expected, atol=2e-5)

    @chex.variants(with_jit=True)
    def test_log_of_sharp_gaussian_returns_its_subpixel_centre(self):
        # The mean over rows of -(dx^2 + dy^2) / (2 sigma^2) is -dx^2 / (2 sigma^2) + const: a 1-D Gaussian.
        points = _interior_points(np.random.default_rng(6), (2, 4, 2), 10.0, 22.0)
        log_heatmaps = _log_gaussian_numpy(points, 32, 32, sigma=1.0).astype(np.float32)
        got = self.variant(lambda h: marginal_soft_argmax(h, reduction="mean"))(log_heatmaps)
        np.testing.assert_allclose(got, points, atol=1e-3)

    def test_bad_reduction_is_named(self):
        with pytest.raises(ValueError, match="reduction"):
            marginal_soft_argmax(jnp.zeros((4, 4, 1)), reduction="max")

    def test_bad_rank_names_heatmaps(self):
        with pytest.raises(ValueError, match="heatmaps"):
            marginal_soft_argmax(jnp.zeros((4, 4)))


class LocalSoftArgmaxTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_sbr_reference_including_borders(self):
        rng = np.random.default_rng(7)
        heatmaps = rng.uniform(-0.1, 0.3, size=(3, 11, 13, 6)).astype(np.float32)
        heatmaps[heatmaps < 0.05] = 0.0  # some exactly-zero and negative cells exercise the threshold
        corners = [(0, 0), (0, 12), (10, 0), (10, 12), (1, 6), (5, 11)]  # windows crossing every border
        for k, (row, col) in enumerate(corners):
            heatmaps[:, row, col, k] = 1.0
        got = self.variant(lambda h: local_soft_argmax(h, radius=3))(heatmaps)
        chex.assert_shape(got, (3, 6, 2))
        np.testing.assert_allclose(got, _local_soft_argmax_numpy(heatmaps, 3), atol=1e-5)

    @chex.variants(with_jit=True)
    def test_sharp_gaussian_returns_its_subpixel_centre(self):
        points = _interior_points(np.random.default_rng(8), (2, 5, 2), 6.0, 26.0)
        heatmaps = np.exp(_log_gaussian_numpy(points, 32, 32, sigma=1.0)).astype(np.float32)
        got = self.variant(lambda h: local_soft_argmax(h, radius=4))(heatmaps)
        np.testing.assert_allclose(got, points, atol=1e-3)

    def test_window_does_not_wrap_around_the_border(self):
        heatmap = np.zeros((8, 10, 1), np.float32)
        heatmap[5, 0, 0] = 1.0
        heatmap[5, 1, 0] = 0.5
        heatmap[5, 9, 0] = 0.9  # would sit at offset -1 if the window wrapped
        heatmap[0, 0, 0] = 0.8  # outside the window: ignored
        got = jax.jit(lambda h: local_soft_argmax(h, radius=2))(heatmap)
        np.testing.assert_allclose(got, [[0.5 / 1.5, 5.0]], atol=1e-6)

    def test_radius_zero_is_the_hard_argmax(self):
        heatmaps = np.random.default_rng(9).uniform(size=(2, 6, 7, 3)).astype(np.float32)
        got = jax.jit(lambda h: local_soft_argmax(h, radius=0))(heatmaps)
        flat = heatmaps.reshape(2, 42, 3).argmax(1)
        np.testing.assert_array_equal(got, np.stack([flat % 7, flat // 7], -1))

    def test_gradient_is_confined_to_the_window_and_matches_finite_differences(self):
        heatmap = np.exp(_log_gaussian_numpy(np.array([[[7.3, 4.6]]]), 12, 14, 1.5)).astype(np.float32)
        heatmap = jnp.asarray(heatmap[0])
        grad = np.asarray(jax.jit(jax.grad(lambda h: local_soft_argmax(h, radius=2)[0, 0]))(heatmap))
        assert np.all(np.isfinite(grad))
        outside = np.ones((12, 14), bool)
        outside[3:8, 5:10] = False  # peak cell (row 5, col 7) +- 2
        assert np.all(grad[..., 0][outside] == 0.0)
        assert np.abs(grad).max() > 0.1
        check_grads(
            jax.jit(lambda h: local_soft_argmax(h, radius=2)),
            (heatmap,),
            order=1,
            modes=["rev"],
            eps=1e-3,
            atol=1e-2,
            rtol=1e-2,
        )

    def test_bad_radius_is_named(self):
        with pytest.raises(ValueError, match="radius"):
            local_soft_argmax(jnp.zeros((4, 4, 1)), radius=-1)
        with pytest.raises(ValueError, match="radius"):
            local_soft_argmax(jnp.zeros((4, 4, 1)), radius=1.5)

    def test_bad_rank_names_heatmaps(self):
        with pytest.raises(ValueError, match="heatmaps"):
            local_soft_argmax(jnp.zeros((4, 4)))


class RenderGaussianHeatmapsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_definition(self):
        points = np.random.default_rng(10).uniform(-3, 20, size=(2, 3, 4, 2)).astype(np.float32)
        sigma = np.array([0.5, 1.0, 2.0, 3.5], np.float32)  # one per landmark
        got = self.variant(lambda p, s: render_gaussian_heatmaps(p, 15, 18, s))(points, sigma)
        chex.assert_shape(got, (2, 3, 15, 18, 4))
        expected = np.zeros((2, 3, 15, 18, 4))
        for idx in np.ndindex(2, 3, 4):
            x, y = points[idx]
            for row in range(15):
                for col in range(18):
                    d2 = (col - x) ** 2 + (row - y) ** 2
                    expected[idx[0], idx[1], row, col, idx[2]] = np.exp(-d2 / (2 * sigma[idx[2]] ** 2))
        np.testing.assert_allclose(got, expected, atol=1e-6)

    def test_peak_is_one_at_the_point(self):
        heatmaps = jax.jit(render_gaussian_heatmaps, static_argnums=(1, 2))(
            jnp.array([[3.0, 5.0], [0.0, 0.0]]), 8, 6, 1.3
        )
        assert heatmaps[5, 3, 0] == 1.0 and heatmaps[0, 0, 1] == 1.0
        assert float(heatmaps.max()) == 1.0

    def test_gradient_matches_finite_differences(self):
        points = jnp.array([[[2.3, 4.1], [6.6, 1.2]]])
        check_grads(
            jax.jit(lambda p, s: render_gaussian_heatmaps(p, 7, 9, s)),
            (points, 1.7),
            order=1,
            modes=["rev"],
            eps=1e-2,
            atol=1e-2,
            rtol=1e-2,
        )

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="points"):
            render_gaussian_heatmaps(jnp.zeros((4, 3)), 5, 5, 1.0)
        with pytest.raises(ValueError, match="points"):
            render_gaussian_heatmaps(jnp.zeros((2,)), 5, 5, 1.0)
        with pytest.raises(ValueError, match="height"):
            render_gaussian_heatmaps(jnp.zeros((4, 2)), 0, 5, 1.0)
        with pytest.raises(ValueError, match="width"):
            render_gaussian_heatmaps(jnp.zeros((4, 2)), 5, 2.5, 1.0)
        with pytest.raises(ValueError, match="sigma"):
            render_gaussian_heatmaps(jnp.zeros((4, 2)), 5, 5, -1.0)


class CoordinateMappingTest(chex.TestCase):
    @parameterized.parameters(1, 2, 4, 8)
    def test_cell_centre_is_the_mean_of_its_image_pixels(self, stride):
        # Average-pool an image whose value is each pixel's own (x, y): cell (i, j) holds its pixels' mean.
        height, width = 3 * stride, 5 * stride
        rows, cols = np.mgrid[:height, :width].astype(np.float64)
        pooled_x = cols.reshape(3, stride, 5, stride).mean(axis=(1, 3))
        pooled_y = rows.reshape(3, stride, 5, stride).mean(axis=(1, 3))
        cell_rows, cell_cols = np.mgrid[:3, :5]
        cells = np.stack([cell_cols, cell_rows], -1).astype(np.float32)
        got = heatmap_to_image_coords(cells, stride)
        np.testing.assert_allclose(got, np.stack([pooled_x, pooled_y], -1), atol=1e-6)
        np.testing.assert_allclose(image_to_heatmap_coords(got, stride), cells, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_sbr_formula_and_inverts(self):
        points = np.random.default_rng(11).uniform(-5, 40, size=(3, 7, 2)).astype(np.float32)
        to_image = self.variant(lambda p: heatmap_to_image_coords(p, 8))
        to_heatmap = self.variant(lambda p: image_to_heatmap_coords(p, 8))
        np.testing.assert_allclose(to_image(points), points * 8 + 8 / 2.0 - 0.5, rtol=1e-6)
        np.testing.assert_allclose(to_heatmap(to_image(points)), points, atol=1e-5)

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="stride"):
            heatmap_to_image_coords(jnp.zeros((3, 2)), 0)
        with pytest.raises(ValueError, match="stride"):
            image_to_heatmap_coords(jnp.zeros((3, 2)), -2.0)
        with pytest.raises(ValueError, match="points"):
            image_to_heatmap_coords(jnp.zeros((3, 3)), 4)


_soft_argmax_grad = jax.jit(jax.grad(lambda h: jnp.sum(soft_argmax(h, 0.5) ** 2)))
_marginal_grad = jax.jit(jax.grad(lambda h: jnp.sum(marginal_soft_argmax(h) ** 2)))
_local_grad = jax.jit(jax.grad(lambda h: jnp.sum(local_soft_argmax(h, 2) ** 2)))
_render_grad = jax.jit(jax.grad(lambda p, s: jnp.sum(render_gaussian_heatmaps(p, 6, 7, s) ** 2), (0, 1)))


@settings(max_examples=10, deadline=None)
@given(hnp.arrays(np.float32, (6, 7, 3), elements=_FLOATS))
def test_soft_argmax_family_gradients_are_finite(heatmaps):
    for grad in (_soft_argmax_grad, _marginal_grad, _local_grad):
        assert np.all(np.isfinite(grad(heatmaps)))


@settings(max_examples=10, deadline=None)
@given(
    hnp.arrays(np.float32, (3, 2), elements=st.floats(-10.0, 15.0, width=32)),
    st.floats(0.125, 5.0, width=32),
)
def test_render_gradients_are_finite(points, sigma):
    grad_points, grad_sigma = _render_grad(points, sigma)
    assert np.all(np.isfinite(grad_points)) and np.isfinite(grad_sigma)


def _configs_readouts():
    """(name, sigma in cells, locator, radius, temperature) of the face configs' evaluation read-outs."""
    from landmarkjax.configs import sbr, supervised

    out = []
    for name, config in (("supervised", supervised.get_config()), ("sbr", sbr.get_config()),
                         ("sbr:vgg16", sbr.get_config("vgg16"))):
        out.append((name, config.loss.heatmap_sigma, config.eval.locator, config.eval.radius,
                    config.loss.coord_temperature))
        out.append((name + "/coord_loss", config.loss.heatmap_sigma, config.loss.coord_locator,
                    config.eval.radius, config.loss.coord_temperature))
        if "sbr" in config:  # the read-out of the registration loss
            out.append((name + "/registration", config.loss.heatmap_sigma, config.sbr.locator,
                        config.eval.radius, config.loss.coord_temperature))
    return out


@pytest.mark.parametrize("name, sigma, locator, radius, temperature", _configs_readouts())
def test_configs_readout_is_within_005_cells_at_every_sub_cell_offset(name, sigma, locator, radius, temperature):
    # SBR issue 11: an ideal Gaussian bump (closed form, numpy) centred at every sub-cell offset of a
    # 21 x 21 grid over one cell; the read-out must land within 0.05 cells of the true centre.
    from landmarkjax.ops.heatmaps import locate_landmarks

    offsets = np.linspace(0.0, 1.0, 21)
    grid = np.stack(np.meshgrid(offsets, offsets), axis=-1).reshape(-1, 1, 2)
    points = 7.0 + grid  # [P, 1, 2] (x, y) cells of a 16 x 16 map
    heatmaps = np.exp(_log_gaussian_numpy(points, 16, 16, sigma)).astype(np.float32)
    located = locate_landmarks(jnp.asarray(heatmaps), 1, 1, locator=locator, radius=radius, temperature=temperature)
    error = np.linalg.norm(np.asarray(located) - points, axis=-1)
    assert error.max() < 0.05, (name, locator, float(error.max()))


def test_old_global_softmax_readout_snaps_to_the_grid():
    # Why the configs changed: the global softmax over heatmap values at temperature 0.05 (the old default)
    # misses an ideal sigma-1 Gaussian by 0.27 cells along x at offset 0.3 (a numpy reference of the same
    # definition gives the same).
    points = np.array([[[7.3, 7.0]]])
    heatmaps = np.exp(_log_gaussian_numpy(points, 16, 16, 1.0))
    expected = _soft_argmax_numpy(heatmaps, 0.05)
    got = np.asarray(soft_argmax(jnp.asarray(heatmaps, jnp.float32), 0.05))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert abs(got[0, 0, 0] - 7.3) > 0.25
