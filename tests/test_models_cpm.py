"""The CPM detector and its building blocks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from landmarkjax.models.cpm import CPM, sbr_vgg16_cpm
from landmarkjax.models.layers import ConvReLU, ConvStack

# XLA compiles the default threefry generator slowly on CPU (seconds per initialiser); these tests only
# need some random parameters, so they use the RBG generator.
KEY = jax.random.key(0, impl="rbg")


def _numpy_conv_relu(x, kernel, bias, dilation):
    """Same-padded dilated cross-correlation + bias + ReLU, written with scipy (x: [H, W, Cin])."""
    size = kernel.shape[0]
    dilated = np.zeros([(size - 1) * dilation + 1] * 2 + list(kernel.shape[2:]), kernel.dtype)
    dilated[::dilation, ::dilation] = kernel
    out = np.zeros(x.shape[:2] + (kernel.shape[3],))
    for o in range(kernel.shape[3]):
        for i in range(kernel.shape[2]):
            out[..., o] += signal.correlate2d(x[..., i], dilated[..., i, o], mode="same")
    return np.maximum(out + bias, 0.0)


@pytest.mark.parametrize("kernel_size, dilation", [(3, 1), (3, 2), (5, 1)])
def test_conv_relu_matches_scipy(kernel_size, dilation):
    x = np.random.default_rng(0).normal(size=(1, 9, 11, 3)).astype(np.float32)
    layer = ConvReLU(4, kernel_size, dilation)
    params = jax.jit(layer.init)(KEY, x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias as well
    out = jax.jit(layer.apply)(params, x)
    kernel = np.asarray(params["params"]["Conv_0"]["kernel"])
    bias = np.asarray(params["params"]["Conv_0"]["bias"])
    np.testing.assert_allclose(out[0], _numpy_conv_relu(x[0], kernel, bias, dilation), rtol=1e-5, atol=1e-5)


def test_conv_stack_pools_between_blocks():
    stack = ConvStack((4, 6, 8), convs_per_block=2)
    assert stack.stride == 4
    x = jnp.ones([2, 16, 12, 3])
    out, params = jax.eval_shape(stack.init_with_output, KEY, x)
    assert out.shape == (2, 4, 3, 8)
    assert len(params["params"]) == 6  # 3 blocks x 2 convs


@pytest.mark.parametrize(
    "widths, background, stages", [((8, 8, 8), True, 3), ((8, 8, 8, 8), False, 2), ((8,), True, 1)]
)
def test_cpm_output_shape(widths, background, stages):
    model = CPM(
        num_keypoints=5, backbone_widths=widths, stage_width=8, num_stages=stages, with_background=background
    )
    images = jnp.zeros([2, 32, 32, 3])
    out, _ = jax.eval_shape(model.init_with_output, KEY, images)
    stride = 2 ** (len(widths) - 1)
    assert model.stride == stride
    assert out.shape == (stages, 2, 32 // stride, 32 // stride, 5 + int(background))


def test_cpm_initial_heatmaps_are_small():
    model = CPM(num_keypoints=68, backbone_widths=(8, 16), stage_width=16, num_stages=2, stage_depth=1)
    images = jax.random.uniform(jax.random.key(1), [2, 16, 16, 3])
    out, _ = jax.jit(model.init_with_output)(KEY, images)
    assert float(jnp.max(jnp.abs(out))) < 0.5  # N(0, 0.01) heads: targets start near the all-zero map


def test_later_stages_refine_earlier_heatmaps():
    model = CPM(num_keypoints=3, backbone_widths=(4, 4), stage_width=4, num_stages=3, stage_depth=1)
    images = jax.random.uniform(jax.random.key(1), [1, 8, 8, 3])
    params = jax.jit(model.init)(KEY, images)

    def last_stage_total(head_kernel):
        p = jax.tree.map(lambda x: x, params)
        p["params"]["stage1_head"]["kernel"] = head_kernel
        return jnp.sum(model.apply(p, images)[-1])

    gradient = jax.jit(jax.grad(last_stage_total))(params["params"]["stage1_head"]["kernel"])
    assert float(jnp.max(jnp.abs(gradient))) > 0  # stage 3 sees stage 1's maps through stage 2
    assert set(params["params"]) >= {"stage2_conv0", "stage3_conv0", "stage3_head"}


def test_cpm_rejects_bad_images():
    model = CPM(num_keypoints=3, backbone_widths=(4, 4, 4))
    with pytest.raises(ValueError, match="divisible by the stride 4"):
        model.init(KEY, jnp.zeros([1, 30, 32, 3]))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        model.init(KEY, jnp.zeros([32, 32, 3]))
    with pytest.raises(ValueError, match="num_stages must be >= 1"):
        CPM(num_keypoints=3, backbone_widths=(4,), num_stages=0).init(KEY, jnp.zeros([1, 8, 8, 3]))


def _conv_parameters(layers):
    return sum(c_in * c_out * k * k + c_out for c_in, c_out, k in layers)


def test_sbr_vgg16_cpm_has_the_published_layers():
    # SBR's cpm_vgg16 layer by layer (input channels, output channels, kernel side), K = 68 + background;
    # a refinement stage is 3 x 7x7 + 4 x 3x3 convolutions, a 128-channel 1x1 and the 1x1 head, as in the
    # official models/cpm_vgg16.py.
    maps = 69
    vgg16_first_ten = [(3, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3), (256, 256, 3),
                       (256, 256, 3), (256, 512, 3), (512, 512, 3), (512, 512, 3)]
    cpm_feature = [(512, 256, 3), (256, 128, 3)]
    stage1 = [(128, 128, 3)] * 4 + [(128, 512, 1), (512, maps, 1)]
    later_stage = [(128 + maps, 128, 7)] + [(128, 128, 7)] * 2 + [(128, 128, 3)] * 4 + [(128, 128, 1), (128, maps, 1)]
    expected = _conv_parameters(vgg16_first_ten + cpm_feature + stage1 + 2 * later_stage)

    model = sbr_vgg16_cpm(68)
    out, params = jax.eval_shape(model.init_with_output, KEY, jnp.zeros([1, 256, 256, 3]))
    assert out.shape == (3, 1, 32, 32, maps)  # stride 8
    assert model.stride == 8
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)) == expected
    backbone = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params["params"]["backbone"]))
    assert backbone == _conv_parameters(vgg16_first_ten) == 7_635_264
    # Each refinement stage's kernels in order: [kh, kw, in, out].
    for stage in (2, 3):
        layers = [params["params"][f"stage{stage}_conv{i}"]["Conv_0"]["kernel"].shape for i in range(7)]
        layers += [params["params"][f"stage{stage}_pre_head"]["Conv_0"]["kernel"].shape,
                   params["params"][f"stage{stage}_head"]["kernel"].shape]
        assert layers == [(k, k, cin, cout) for cin, cout, k in later_stage]
        assert f"stage{stage}_conv7" not in params["params"]


def test_conv_stack_takes_one_depth_per_block():
    stack = ConvStack((4, 6, 8), convs_per_block=(1, 2, 3))
    _, params = jax.eval_shape(stack.init_with_output, KEY, jnp.ones([1, 8, 8, 3]))
    assert len(params["params"]) == 6
    _, params = jax.eval_shape(ConvStack((4, 6, 8), convs_per_block=(2,)).init_with_output, KEY, jnp.ones([1, 8, 8, 3]))
    assert len(params["params"]) == 6  # a 1-sequence is one count for every block
    with pytest.raises(ValueError, match="one per block"):
        jax.eval_shape(ConvStack((4, 6), convs_per_block=(1, 2, 3)).init, KEY, jnp.ones([1, 8, 8, 3]))
