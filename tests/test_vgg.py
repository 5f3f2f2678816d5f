"""VGG feature extractors and the loaders of torchvision (.npz, .pth) and Keras (.h5) weights."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarkjax.models.vgg import (
    VGG,
    load_vgg_params,
    vgg_features,
    vgg_layer_names,
    vgg_params_from_keras,
    vgg_params_from_torchvision,
)

# torchvision's features.N indices of the convolutions, written out from torchvision's vgg16 / vgg19.
TORCHVISION_CONV_INDICES = {
    16: [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    19: [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
}


def _torchvision_state(depth=16, seed=0, channels_only=False):
    """A random torchvision-layout state dict (OIHW); He-scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    blocks = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[depth]
    widths = [w for w, n in zip((64, 128, 256, 512, 512), blocks) for _ in range(n)]
    state, previous = {}, 3
    for index, width in zip(TORCHVISION_CONV_INDICES[depth], widths):
        shape = (width, previous, 3, 3) if not channels_only else (1, 1, 1, 1)
        state[f"features.{index}.weight"] = (rng.normal(size=shape) * np.sqrt(2.0 / (9 * previous))).astype(np.float32)
        state[f"features.{index}.bias"] = rng.normal(scale=0.1, size=shape[:1]).astype(np.float32)
        previous = width
    state["classifier.0.weight"] = np.zeros((4, 5), np.float32)  # ignored
    return state


@pytest.fixture(scope="module")
def vgg16_npz(tmp_path_factory):
    state = _torchvision_state(16)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.npz"
    np.savez(path, **state)
    return path, state


def _numpy_conv_relu(x, weight, bias):
    """x: [H, W, I]; weight: [O, I, 3, 3] (torch OIHW); zero padding 1; explicit im2col in float64."""
    h, w, _ = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    patches = np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=2)
    kernel = weight.reshape(weight.shape[0], weight.shape[1], 9)  # [O, I, 9], taps dy-major
    out = np.einsum("hwti,oit->hwo", patches, kernel.astype(np.float64)) + bias
    return np.maximum(out, 0.0)


def _numpy_pool(x):
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def test_layer_names():
    assert vgg_layer_names(16)[-1] == "conv5_3" and len(vgg_layer_names(16)) == 13
    assert vgg_layer_names(19)[-1] == "conv5_4" and len(vgg_layer_names(19)) == 16


def test_features_match_a_numpy_conv_stack(vgg16_npz):
    path, state = vgg16_npz
    params = load_vgg_params(path, depth=16)
    image = np.random.default_rng(1).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    layers = ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    got = vgg_features(params, image, layers, depth=16, preprocess="torchvision")
    assert list(got) == layers

    x = (image[0].astype(np.float64) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    expected = {}
    for name, index in zip(layers, TORCHVISION_CONV_INDICES[16]):
        if name == "conv2_1":
            x = _numpy_pool(x)
        x = _numpy_conv_relu(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"])
        expected[name] = x
    for name in layers:
        assert got[name].shape == (1,) + expected[name].shape
        np.testing.assert_allclose(got[name][0], expected[name], rtol=1e-4, atol=1e-4)


def test_caffe_preprocessing_is_bgr_0_255_minus_means():
    # With "none" the network sees exactly what "caffe" produced; compare against a hand conversion.
    with jax.default_prng_impl("rbg"):
        params = VGG(16, ("conv1_1",)).init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
    image = np.random.default_rng(2).uniform(size=(1, 4, 4, 3)).astype(np.float32)
    by_hand = image[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32)
    a = vgg_features(params, image, ["conv1_1"], preprocess="caffe")["conv1_1"]
    b = vgg_features(params, by_hand, ["conv1_1"], preprocess="none")["conv1_1"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


def test_keras_layout_loads_to_the_same_params(vgg16_npz):
    path, state = vgg16_npz
    keras_layers = {"block1_pool": [], "fc1": [np.zeros((2, 2))]}
    for name, index in zip(vgg_layer_names(16), TORCHVISION_CONV_INDICES[16]):
        block, conv = name[4], name[6]
        keras_layers[f"block{block}_conv{conv}"] = [
            np.transpose(state[f"features.{index}.weight"], (2, 3, 1, 0)),  # OIHW -> HWIO
            state[f"features.{index}.bias"],
        ]
    from_npz = load_vgg_params(path, 16)
    from_keras = vgg_params_from_keras(keras_layers, 16)
    jax.tree.map(np.testing.assert_array_equal, from_npz, from_keras)

    h5py = pytest.importorskip("h5py")
    h5_path = path.parent / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(h5_path, "w") as f:  # the legacy Keras weights layout
        names = [n for n in keras_layers if "conv" in n]
        f.attrs["layer_names"] = [n.encode() for n in ["input_1"] + names]
        f.create_group("input_1").attrs["weight_names"] = []
        for n in names:
            group = f.create_group(n)
            group.attrs["weight_names"] = [f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()]
            group.create_dataset(f"{n}/kernel:0", data=keras_layers[n][0])
            group.create_dataset(f"{n}/bias:0", data=keras_layers[n][1])
    jax.tree.map(np.testing.assert_array_equal, from_npz, load_vgg_params(h5_path, 16))

    keras3_path = path.parent / "vgg16.weights.h5"
    with h5py.File(keras3_path, "w") as f:  # the Keras 3 layout: layers/<name>/vars/<i>
        f.create_group("layers/block1_pool/vars")
        for n in names:
            f.create_dataset(f"layers/{n}/vars/0", data=keras_layers[n][0])
            f.create_dataset(f"layers/{n}/vars/1", data=keras_layers[n][1])
    jax.tree.map(np.testing.assert_array_equal, from_npz, load_vgg_params(keras3_path, 16))


def test_missing_h5py_or_torch_is_a_clear_import_error(tmp_path, monkeypatch):
    for name in ("a.h5", "a.pth"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="h5py"):
        load_vgg_params(tmp_path / "a.h5")
    with pytest.raises(ImportError, match=r"np\.savez"):
        load_vgg_params(tmp_path / "a.pth")


def test_weight_file_errors(tmp_path):
    state = _torchvision_state(16, channels_only=True)
    with pytest.raises(ValueError, match=r"features\.0\.weight has shape \(1, 1, 1, 1\); expected \(64, 3, 3, 3\)"):
        vgg_params_from_torchvision(state, 16)
    del state["features.28.bias"]
    with pytest.raises(ValueError, match=r"features\.28\.bias.*\(512,\)"):
        vgg_params_from_torchvision(state, 16)
    with pytest.raises(ValueError, match="VGG-19 state dict, but depth=16"):
        vgg_params_from_torchvision(_torchvision_state(19, channels_only=True), 16)
    with pytest.raises(ValueError, match="VGG-16 state dict, but depth=19"):
        vgg_params_from_torchvision(_torchvision_state(16, channels_only=True), 19)
    with pytest.raises(ValueError, match="block1_conv1"):
        vgg_params_from_keras({}, 16)
    with pytest.raises(ValueError, match="Keras VGG-19"):
        vgg_params_from_keras({"block5_conv4": []}, 16)
    with pytest.raises(ValueError, match="depth must be 16 or 19"):
        load_vgg_params(tmp_path / "x.npz", depth=11)
    with pytest.raises(FileNotFoundError, match="x.npz"):
        load_vgg_params(tmp_path / "x.npz")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown VGG weights format"):
        load_vgg_params(tmp_path / "x.bin")


def test_feature_argument_errors():
    params = {"params": {}}
    image = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="conv5_4"):
        vgg_features(params, image, ["conv5_4"], depth=16)
    with pytest.raises(ValueError, match="depth must be 16 or 19"):
        vgg_features(params, image, ["conv1_1"], depth=13)
    with pytest.raises(ValueError, match="preprocess must be"):
        vgg_features(params, image, ["conv1_1"], preprocess="keras")
    for preset in ("torchvision", "caffe"):
        with pytest.raises(ValueError, match=r"expects images in \[0, 1\]"):
            vgg_features(params, image + 255.0, ["conv1_1"], preprocess=preset)
