"""Tests for landmarkjax.models.resnet: output shapes, stride 4, and parameter counts from the layer list."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.models.resnet import ResNetStride4, resnet18_stride4, small_resnet_stride4

# Cheap random generator for initialisers on CPU (see test_models_cpm.py).
KEY = jax.random.key(0, impl="rbg")


def _conv(kernel, c_in, c_out, bias=False):
    return kernel * kernel * c_in * c_out + (c_out if bias else 0)


def _norm(channels):
    return 2 * channels  # GroupNorm scale and bias


def _hand_count(in_channels, stem, stages, head):
    """Parameters of the layer list: stem conv + norm, then per block conv3x3-norm-conv3x3-norm (+ 1x1 + norm)."""
    total = _conv(7, in_channels, stem) + _norm(stem)
    width = stem
    for features, blocks, stride in stages:
        for block in range(blocks):
            block_stride = stride if block == 0 else 1
            total += _conv(3, width, features) + _norm(features) + _conv(3, features, features) + _norm(features)
            if block_stride != 1 or width != features:
                total += _conv(1, width, features) + _norm(features)
            width = features
    if head is not None:
        total += _conv(3, width, head, bias=True)
    return total


def _count(params):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))


def test_resnet18_parameter_count_matches_the_layer_list():
    model = resnet18_stride4(out_features=None)
    shapes = jax.eval_shape(model.init, KEY, jnp.zeros((1, 32, 32, 3)))
    expected = _hand_count(3, 64, [(64, 2, 1), (128, 2, 2), (256, 2, 1), (256, 2, 1)], None)
    assert expected == 5_144_128  # worked out on paper: 9,536 + 147,968 + 525,568 + 2,099,712 + 2,361,344
    assert _count(shapes["params"]) == expected
    with_head = jax.eval_shape(resnet18_stride4().init, KEY, jnp.zeros((1, 32, 32, 3)))
    assert _count(with_head["params"]) == expected + 3 * 3 * 256 * 64 + 64


def test_small_variant_parameter_count():
    shapes = jax.eval_shape(small_resnet_stride4().init, KEY, jnp.zeros((1, 16, 16, 3)))
    assert _count(shapes["params"]) == _hand_count(3, 16, [(16, 1, 1), (32, 1, 2), (32, 1, 1)], 32)


def test_resnet18_output_shape_is_a_quarter():
    # Shapes only (no compute): abstract evaluation of init and apply.
    model = resnet18_stride4()
    images = jax.ShapeDtypeStruct((2, 96, 128, 3), jnp.float32)
    params = jax.eval_shape(model.init, KEY, images)
    out = jax.eval_shape(model.apply, params, images)
    assert out.shape == (2, 24, 32, 64)


@pytest.mark.parametrize("height, width, expected", [(32, 48, (8, 12)), (30, 18, (8, 5)), (4, 4, (1, 1))])
def test_small_variant_shapes(height, width, expected):
    model = small_resnet_stride4()
    images = jax.ShapeDtypeStruct((3, height, width, 3), jnp.float32)
    out = jax.eval_shape(model.apply, jax.eval_shape(model.init, KEY, images), images)
    assert out.shape == (3, *expected, 32)


def test_small_variant_runs_on_cpu_and_is_batch_independent():
    model = small_resnet_stride4()
    images = jax.random.uniform(jax.random.key(1, impl="rbg"), (2, 16, 24, 3))
    params = jax.jit(model.init)(KEY, images)
    apply = jax.jit(model.apply)
    out = apply(params, images)
    assert out.shape == (2, 4, 6, 32)
    assert np.all(np.isfinite(np.asarray(out)))
    # Batch independence (GroupNorm has no batch statistics): changing the other image changes nothing.
    np.testing.assert_allclose(out[0], apply(params, images.at[1].set(0.5))[0], atol=1e-5)


def test_rejects_a_layout_that_is_not_stride_4():
    model = ResNetStride4(stage_features=(8, 8), stage_blocks=(1, 1), stage_strides=(2, 2), out_features=None)
    with pytest.raises(ValueError, match="must be 4"):
        model.init(KEY, jnp.zeros((1, 16, 16, 3)))
