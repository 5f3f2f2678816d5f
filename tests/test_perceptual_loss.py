"""IMM's perceptual loss: running-average normalisation, masks, and finiteness on degenerate images."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.losses import IMM_INITIAL_AVERAGES, IMM_PERCEPTUAL_LAYERS, perceptual_loss
from landmarkjax.models.vgg import VGG, vgg_features


def _local_features(images):
    """Two feature maps that only mix pixels inside 2x2 and 4x4 blocks (so a block-aligned mask hides
    every pixel it covers): [2B, H/2, W/2, 3] and [2B, H/4, W/4, 1]."""
    b, h, w, c = images.shape
    pool2 = images.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    pool4 = images.reshape(b, h // 4, 4, w // 4, 4, c).max(axis=(2, 4))
    return [jnp.tanh(3.0 * pool2), jnp.sum(jax.nn.relu(pool4 - 0.3), axis=-1, keepdims=True)]


def _numpy_local_features(images):
    b, h, w, c = images.shape
    pool2 = images.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    pool4 = images.reshape(b, h // 4, 4, w // 4, 4, c).max(axis=(2, 4))
    return [np.tanh(3.0 * pool2), np.maximum(pool4 - 0.3, 0.0).sum(axis=-1, keepdims=True)]


def _images(seed, shape=(2, 16, 16, 3)):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=shape).astype(np.float32), rng.uniform(size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def vgg_fn():
    with jax.default_prng_impl("rbg"):
        params = VGG(16, ("conv1_2", "conv2_2")).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    return lambda images: vgg_features(params, images, ("conv1_2", "conv2_2"), preprocess="caffe")


def test_constants_follow_the_official_code():
    assert IMM_PERCEPTUAL_LAYERS == ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
    assert IMM_INITIAL_AVERAGES == (100.0, 1.6, 2.3, 1.8, 2.8, 100.0)


def test_running_averages_and_value_match_a_hand_computation():
    averages = np.array([100.0, 1.6, 2.3])
    mask = np.ones((2, 16, 16), np.float32)
    mask[0, :, :8] = 0.0
    loss_fn = jax.jit(functools.partial(perceptual_loss, _local_features))
    for step in range(2):
        predicted, target = _images(step)
        loss, new = loss_fn(predicted, target, jnp.asarray(averages, jnp.float32), mask)
        # By hand: input term on [0, 255] images, block-mean mask per layer, mean over all cells.
        m = mask.astype(np.float64)[..., None]
        masks = [m, m.reshape(2, 8, 2, 8, 2, 1).mean(axis=(2, 4)), m.reshape(2, 4, 4, 4, 4, 1).mean(axis=(2, 4))]
        gts = [255.0 * target.astype(np.float64)] + _numpy_local_features(target.astype(np.float64))
        preds = [255.0 * predicted.astype(np.float64)] + _numpy_local_features(predicted.astype(np.float64))
        errors = np.array([np.mean(mk * (g - p) ** 2) for mk, g, p in zip(masks, gts, preds)])
        updated = averages + 0.01 * (errors - averages)
        np.testing.assert_allclose(new, updated, rtol=1e-5)
        np.testing.assert_allclose(loss, 1000.0 * np.sum(errors / updated), rtol=1e-5)
        averages = updated
    _, unchanged = perceptual_loss(_local_features, predicted, target, averages, update=False)
    np.testing.assert_array_equal(unchanged, np.asarray(averages, np.float32))


def test_masked_pixels_contribute_nothing():
    predicted, target = _images(3)
    mask = np.ones((2, 16, 16, 1), np.float32)
    mask[:, 4:12, :8] = 0.0  # aligned with the 4x4 blocks of the coarsest feature
    averages = jnp.asarray([100.0, 1.6, 2.3])
    loss, new = perceptual_loss(_local_features, predicted, target, averages, mask)
    changed_pred, changed_target = predicted.copy(), target.copy()
    noise = np.random.default_rng(4).uniform(size=(2, 8, 8, 3))
    changed_pred[:, 4:12, :8] = noise
    changed_target[:, 4:12, :8] = noise[::-1]
    loss2, new2 = perceptual_loss(_local_features, changed_pred, changed_target, averages, mask)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    np.testing.assert_allclose(new2, new, rtol=1e-6)
    unmasked, _ = perceptual_loss(_local_features, changed_pred, changed_target, averages)
    assert abs(float(unmasked) - float(loss)) > 1e-3  # the change is visible without the mask


def test_zero_for_identical_images(vgg_fn):
    image, _ = _images(5)
    loss, new = perceptual_loss(vgg_fn, image, image, jnp.asarray([100.0, 1.6, 2.3]))
    assert float(loss) == 0.0
    np.testing.assert_allclose(new, 0.99 * np.array([100.0, 1.6, 2.3]), rtol=1e-6)


def test_finite_value_and_gradients_on_degenerate_images(vgg_fn):
    loss_and_grad = jax.jit(
        jax.value_and_grad(lambda p, t, a, m: perceptual_loss(vgg_fn, p, t, a, m)[0]), static_argnums=()
    )
    random_p, random_t = _images(6)
    zeros = np.zeros_like(random_p)
    constant = np.full_like(random_p, 0.5)
    mask = np.ones(random_p.shape[:3], np.float32)
    for predicted, target in [(random_p, random_t), (constant, constant), (zeros, zeros), (zeros, constant)]:
        for averages in (jnp.asarray([100.0, 1.6, 2.3]), jnp.zeros(3)):
            for m in (mask, np.zeros_like(mask)):
                value, grad = loss_and_grad(predicted, target, averages, m)
                assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_argument_errors():
    predicted, target = _images(7)
    with pytest.raises(ValueError, match="averages must have shape \\(3,\\)"):
        perceptual_loss(_local_features, predicted, target, jnp.ones(6))
    with pytest.raises(ValueError, match="same shape"):
        perceptual_loss(_local_features, predicted, target[:1], jnp.ones(3))
    with pytest.raises(ValueError, match="mask must be"):
        perceptual_loss(_local_features, predicted, target, jnp.ones(3), np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="decay"):
        perceptual_loss(_local_features, predicted, target, jnp.ones(3), decay=1.0)


def test_gradient_flows_through_the_updated_average_as_in_the_official_code():
    # Input layer only: loss = 1000 e / (a + 0.01 (e - a)), e = mean((255 (t - p))^2), so
    # d loss / d p = 1000 * 0.99 a / (0.99 a + 0.01 e)^2 * (-2 * 255^2 (t - p) / N).
    predicted, target = _images(8, shape=(1, 4, 4, 3))
    a = 100.0
    grad = jax.grad(lambda p: perceptual_loss(lambda x: [], p, target, jnp.asarray([a]))[0])(predicted)
    diff = target.astype(np.float64) - predicted
    e = np.mean((255.0 * diff) ** 2)
    expected = 1000.0 * 0.99 * a / (0.99 * a + 0.01 * e) ** 2 * (-2.0 * 255.0**2 * diff / diff.size)
    np.testing.assert_allclose(grad, expected, rtol=1e-4)
