"""The attribute network and its losses; the attribute loss trains the landmark net through soft-argmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.data.synthetic import FACE_ATTRIBUTE_NAMES
from landmarkjax.losses import attribute_cross_entropy, attribute_squared_error
from landmarkjax.models.attributes import AttributeNet, normalize_points
from landmarkjax.models.rcn import RCN
from landmarkjax.ops import soft_argmax

KEY = jax.random.key(0, impl="rbg")
RNG = np.random.default_rng(0)


def test_cross_entropy_matches_numpy():
    logits = RNG.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    weights = np.array([1.0, 0.0, 0.5, 2.0], np.float32)
    shifted = logits - logits.max(-1, keepdims=True)
    nll = -(shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[np.arange(4), labels]
    unweighted = attribute_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(unweighted, nll.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        attribute_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights)),
        np.sum(nll * weights) / weights.sum(), rtol=1e-5,
    )
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        attribute_cross_entropy(jnp.asarray(logits), jnp.array([0, 1, 3, 0]))


def test_squared_error_matches_numpy():
    predicted, target = RNG.normal(size=(2, 5, 3)), RNG.normal(size=(2, 5, 3))
    weights = RNG.uniform(size=(2, 5))
    squared = np.sum((predicted - target) ** 2, -1)
    loss = attribute_squared_error(jnp.float32(predicted), jnp.float32(target), jnp.float32(weights))
    np.testing.assert_allclose(loss, np.sum(squared * weights) / weights.sum(), rtol=1e-5)
    assert float(attribute_squared_error(jnp.float32(predicted), jnp.float32(target), jnp.zeros((2, 5)))) == 0.0


def test_normalize_points_spans_the_image_whatever_its_size():
    corners = jnp.array([[-0.5, -0.5], [31.5, 15.5], [15.5, 7.5]])  # (x, y) of a 16 x 32 (H x W) image
    np.testing.assert_allclose(normalize_points(corners, (16, 32)), [[-1, -1], [1, 1], [0, 0]], atol=1e-6)
    points = RNG.uniform(0, 15, size=(4, 2))
    doubled = 2.0 * (points + 0.5) - 0.5  # the same places on an image twice the size
    np.testing.assert_allclose(
        
        normalize_points(jnp.float32(points), (16, 32)),
        normalize_points(jnp.float32(doubled), (32, 64)),
        atol=1e-6,
    )


def test_attribute_net_heads_and_features():
    # Head pose (yaw, pitch, roll) is regressed; the other synthetic-face attributes become binary classes.
    discrete = [name for name in FACE_ATTRIBUTE_NAMES if name not in ("yaw", "pitch", "roll")]
    net = AttributeNet((16, 16), num_classes=(2,) * len(discrete), num_regression=3, hidden_widths=(8,))
    points = jnp.zeros([2, 5, 2])
    out, _ = jax.eval_shape(net.init_with_output, KEY, points)
    assert [a.shape for a in out.class_logits] == [(2, 2)] * len(discrete)
    assert out.regression.shape == (2, 3)
    out, _ = jax.eval_shape(net.init_with_output, KEY, points, jnp.zeros([2, 4, 4, 6]))
    assert out.regression.shape == (2, 3)
    with pytest.raises(ValueError, match="features"):
        net.init(KEY, points, jnp.zeros([3, 6]))


def test_attribute_loss_trains_the_landmark_net_through_soft_argmax():
    """RCN logits -> soft-argmax coordinates -> attribute net -> loss: the gradient reaches the RCN."""
    images = jnp.asarray(RNG.uniform(size=(2, 8, 8, 1)), jnp.float32)
    labels = jnp.array([0, 1])
    pose = jnp.asarray(RNG.normal(size=(2, 3)), jnp.float32)
    rcn = RCN(5, widths=(4, 4))
    attributes = AttributeNet((8, 8), num_classes=(2,), num_regression=3, hidden_widths=(8,))

    def loss(rcn_params, attribute_params, cut):
        points = soft_argmax(rcn.apply(rcn_params, images))  # [B, K, 2] (x, y) pixels
        if cut:
            points = jax.lax.stop_gradient(points)
        out = attributes.apply(attribute_params, points)
        return attribute_cross_entropy(out.class_logits[0], labels) + attribute_squared_error(out.regression, pose)

    # Random parameters from numpy in the models' shapes: no initialiser has to compile.
    def random_params(module, *inputs):
        shapes = jax.eval_shape(module.init, KEY, *inputs)
        return jax.tree.map(lambda s: jnp.asarray(RNG.normal(scale=0.3, size=s.shape), jnp.float32), shapes)

    rcn_params = random_params(rcn, images)
    attribute_params = random_params(attributes, jnp.zeros([2, 5, 2]))
    grads, cut = jax.jit(lambda p: [jax.grad(loss)(p, attribute_params, cut) for cut in (False, True)])(rcn_params)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.max(jnp.abs(grads["params"]["head"]["kernel"]))) > 0
    assert float(sum(jnp.sum(jnp.abs(g)) for g in leaves)) > 0
    # The soft-argmax coordinates are the only path: cutting them leaves the RCN without gradient.
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(cut))
