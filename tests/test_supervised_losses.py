"""landmarkjax.losses against numpy written from the definitions; finite gradients everywhere."""

from __future__ import annotations

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from landmarkjax import losses


def numpy_heatmap_mse(predicted, target, weights=None):
    squared = (predicted - target) ** 2
    if weights is None:
        return squared.mean()
    w = np.broadcast_to(weights[..., None, None, :], squared.shape)
    return (squared * w).sum() / w.sum() if w.sum() > 0 else 0.0


def numpy_point_distance(predicted, target, weights=None):
    distance = np.sqrt(((predicted - target) ** 2).sum(-1))
    if weights is None:
        return distance.mean()
    return (distance * weights).sum() / weights.sum() if weights.sum() > 0 else 0.0


def numpy_point_l1(predicted, target, weights=None):
    absolute = np.abs(predicted - target).sum(-1)
    if weights is None:
        return absolute.mean()
    return (absolute * weights).sum() / weights.sum()


class LossesTest(chex.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.maps_a = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
        self.maps_b = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
        self.map_weights = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], np.float32)
        self.points_a = rng.normal(size=(3, 7, 2)).astype(np.float32) * 5
        self.points_b = rng.normal(size=(3, 7, 2)).astype(np.float32) * 5
        self.point_weights = (rng.random((3, 7)) > 0.3).astype(np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(True, False)
    def test_heatmap_mse(self, weighted):
        weights = self.map_weights if weighted else None
        fn = (
            self.variant(lambda a, b, w: losses.heatmap_mse(a, b, w))
            if weighted
            else self.variant(losses.heatmap_mse)
        )
        args = (self.maps_a, self.maps_b, weights) if weighted else (self.maps_a, self.maps_b)
        np.testing.assert_allclose(fn(*args), numpy_heatmap_mse(self.maps_a, self.maps_b, weights), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_multi_stage_sums_the_stages(self):
        stages = np.stack([self.maps_a, self.maps_b, 0.5 * self.maps_a])
        target = self.maps_b
        expected = sum(numpy_heatmap_mse(s, target, self.map_weights) for s in stages)
        actual = self.variant(losses.multi_stage_heatmap_mse)(stages, target, self.map_weights)
        np.testing.assert_allclose(actual, expected, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(True, False)
    def test_point_losses(self, weighted):
        weights = self.point_weights if weighted else None
        pairs = ((losses.point_distance_loss, numpy_point_distance), (losses.point_l1_loss, numpy_point_l1))
        for loss, reference in pairs:
            fn = self.variant(loss)
            actual = (
                fn(self.points_a, self.points_b, weights) if weighted else fn(self.points_a, self.points_b)
            )
            np.testing.assert_allclose(actual, reference(self.points_a, self.points_b, weights), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_weights_give_zero_not_nan(self):
        zeros = np.zeros((3, 7), np.float32)
        self.assertEqual(
            float(self.variant(losses.point_distance_loss)(self.points_a, self.points_b, zeros)), 0.0
        )
        value, grad = self.variant(jax.value_and_grad(losses.heatmap_mse))(
            self.maps_a, self.maps_b, np.zeros((2, 4), np.float32)
        )
        self.assertEqual(float(value), 0.0)
        self.assertTrue(np.all(np.asarray(grad) == 0))


def test_distance_gradient_at_zero_error_is_zero_not_nan():
    points = jnp.ones((2, 5, 2))
    grad = jax.grad(losses.point_distance_loss)(points, points)
    np.testing.assert_array_equal(grad, np.zeros_like(points))
    # Away from zero it is the unit direction divided by the number of points.
    grad = jax.grad(losses.point_distance_loss)(jnp.array([[3.0, 4.0]]), jnp.zeros((1, 2)))
    np.testing.assert_allclose(grad, [[0.6, 0.8]], rtol=1e-6)


@settings(max_examples=15, deadline=None)
@given(
    predicted=hnp.arrays(np.float32, (2, 4, 2), elements=st.floats(-20, 20, width=32)),
    target=hnp.arrays(np.float32, (2, 4, 2), elements=st.floats(-20, 20, width=32)),
    weights=hnp.arrays(np.float32, (2, 4), elements=st.sampled_from([0.0, 1.0])),
)
def test_point_loss_gradients_are_finite(predicted, target, weights):
    for loss in (losses.point_distance_loss, losses.point_l1_loss):
        grads = jax.grad(loss, argnums=(0, 1))(predicted, target, weights)
        assert all(np.isfinite(np.asarray(g)).all() for g in grads)


@settings(max_examples=15, deadline=None)
@given(
    predicted=hnp.arrays(np.float32, (1, 3, 3, 2), elements=st.floats(-5, 5, width=32)),
    weights=hnp.arrays(np.float32, (1, 2), elements=st.sampled_from([0.0, 1.0])),
)
def test_heatmap_loss_gradients_are_finite(predicted, weights):
    grad = jax.grad(losses.heatmap_mse)(predicted, jnp.zeros_like(predicted), weights)
    assert np.isfinite(np.asarray(grad)).all()


MAPS = jnp.zeros((2, 3, 3, 4))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: losses.heatmap_mse(jnp.zeros((2, 3, 3, 4)), jnp.zeros((2, 3, 3, 5))), "same shape"),
        (lambda: losses.heatmap_mse(jnp.zeros((3, 4)), jnp.zeros((3, 4))), r"\[..., H, W, K\]"),
        (lambda: losses.heatmap_mse(MAPS, MAPS, jnp.ones((2, 5))), "weights must have shape"),
        (lambda: losses.multi_stage_heatmap_mse(MAPS, MAPS), r"\[S, \*target.shape\]"),
        (lambda: losses.point_distance_loss(jnp.zeros((4, 3)), jnp.zeros((4, 3))), r"\[..., K, 2\]"),
        (
            lambda: losses.point_l1_loss(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.ones(5)),
            "weights must have shape",
        ),
    ],
)
def test_bad_shapes_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
