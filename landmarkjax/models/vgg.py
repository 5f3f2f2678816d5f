"""VGG-16 and VGG-19 feature extractors (Simonyan & Zisserman, 2015) and loaders for pretrained weights.

The convolutional part only (no classifier): five blocks of 3x3 convolutions (padding 1, stride 1) each
followed by ReLU, with a 2x2 max pool (stride 2) between consecutive blocks. Widths are 64, 128, 256,
512, 512; VGG-16 has 2, 2, 3, 3, 3 convolutions per block and VGG-19 has 2, 2, 4, 4, 4. Layer
`convB_I` is the I-th convolution of block B (1-based, as in the Caffe and Keras names), and every
returned activation is taken after its ReLU. Block B's maps have stride `2 ** (B - 1)`: an `[H, W]`
image gives `[H / 2 ** (B - 1), W / 2 ** (B - 1)]` maps (floored at every pool).

Parameters are a plain Flax pytree, `{"params": {"conv1_1": {"kernel": [3, 3, C_in, C_out],
"bias": [C_out]}, ...}}` (kernels HWIO, cross-correlation, as in every framework below), so a VGG can be
built with `VGG(depth).init(...)` or loaded with `load_vgg_params` from:
  * a torchvision state dict exported to `.npz` (keys `features.N.weight` `[O, I, 3, 3]` and
    `features.N.bias` `[O]`; `classifier.*` keys are ignored). From a `.pth`, the one-liner is
    `python -c "import numpy as np, torch; np.savez('vgg16.npz', **{k: v.numpy() for k, v in
    torch.load('vgg16.pth', map_location='cpu').items()})"`;
  * the same `.pth` directly when torch is importable;
  * a Keras `VGG16` / `VGG19` weights file (`.h5`, layers `block1_conv1` ... with kernels `[3, 3, I, O]`),
    read with h5py.

Inputs are the weights' own convention: torchvision's ImageNet models take RGB normalised by the ImageNet
mean and std (`preprocess="torchvision"`), Keras' (converted from Caffe) take BGR in [0, 255] minus the
Caffe means (`preprocess="caffe"`); the colourisation VGG that `landmarkjax.methods.colorization` trains
sees only the lightness of an image (`preprocess="colorization"`: CIE L* of the RGB image, (L* - 50) / 50,
the same value in all three input channels); `preprocess="none"` passes the images through unchanged.

`save_vgg_params` writes params back out as a torchvision-layout `.npz` (the inverse of the `.npz` loader).
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.ops.colour import rgb_to_lab

__all__ = [
    "VGG",
    "VGG_BLOCK_DEPTHS",
    "VGG_WIDTHS",
    "PREPROCESSING",
    "vgg_layer_names",
    "lightness_input",
    "vgg_preprocess",
    "vgg_features",
    "load_vgg_params",
    "vgg_params_from_torchvision",
    "vgg_params_from_keras",
    "vgg_params_to_torchvision",
    "save_vgg_params",
]

VGG_WIDTHS = (64, 128, 256, 512, 512)
VGG_BLOCK_DEPTHS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
PREPROCESSING = ("none", "torchvision", "caffe", "colorization")

# torchvision's ImageNet normalisation (RGB, images in [0, 1]).
_TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Caffe's ImageNet means in BGR order, for images in [0, 255] (Keras' "caffe" mode).
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)

_TORCH_EXPORT_HINT = (
    "python -c \"import numpy as np, torch; np.savez('vgg16.npz', **{k: v.numpy() for k, v in "
    "torch.load('vgg16.pth', map_location='cpu').items()})\""
)


def _check_depth(depth: int) -> int:
    if depth not in VGG_BLOCK_DEPTHS:
        raise ValueError(f"depth must be 16 or 19; got {depth!r}.")
    return depth


def vgg_layer_names(depth: int = 16) -> tuple[str, ...]:
    """The convolution layer names of VGG-`depth` in forward order: ("conv1_1", "conv1_2", ..., "conv5_3")
    for depth 16 (13 names) and up to "conv5_4" for depth 19 (16 names)."""
    depths = VGG_BLOCK_DEPTHS[_check_depth(depth)]
    return tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(depths) for i in range(n))


def _layer_shapes(depth: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """name -> (HWIO kernel shape, bias shape) for every convolution of VGG-`depth` on RGB input."""
    shapes = {}
    channels = 3
    for block, (width, count) in enumerate(zip(VGG_WIDTHS, VGG_BLOCK_DEPTHS[depth])):
        for index in range(count):
            shapes[f"conv{block + 1}_{index + 1}"] = ((3, 3, channels, width), (width,))
            channels = width
    return shapes


def _torchvision_indices(depth: int) -> dict[str, int]:
    """name -> index N of `features.N` in torchvision's `vgg16` / `vgg19` (conv and ReLU take one index
    each, a pool one)."""
    indices = {}
    position = 0
    for block, count in enumerate(VGG_BLOCK_DEPTHS[depth]):
        for index in range(count):
            indices[f"conv{block + 1}_{index + 1}"] = position
            position += 2
        position += 1  # the max pool
    return indices


def _check_layers(layers: Sequence[str], depth: int) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    known = vgg_layer_names(depth)
    unknown = [name for name in layers if name not in known]
    if unknown or not layers:
        raise ValueError(
            f"layers must be a non-empty sequence of VGG-{depth} layer names {known}; got unknown names "
            f"{unknown}." if unknown else f"layers must name at least one VGG-{depth} layer; got none."
        )
    return layers


class VGG(nn.Module):
    """The convolutional part of VGG-16 or VGG-19, returning post-ReLU activations of named layers.

    Only the layers up to the deepest requested one are computed (and need parameters).

    Attributes:
      depth: 16 or 19.
      layers: names of the activations to return (`vgg_layer_names(depth)`), in any order.
    """

    depth: int = 16
    layers: Sequence[str] = ("conv5_3",)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """`[B, H, W, 3]` preprocessed images -> {name: `[B, H / 2 ** (b - 1), W / 2 ** (b - 1), C_b]`}
        for each requested `conv{b}_{i}` (insertion order of `layers`; C_b = 64, 128, 256, 512, 512)."""
        layers = _check_layers(self.layers, self.depth)
        if x.ndim != 4:
            raise ValueError(f"images must be [B, H, W, C]; got shape {x.shape}.")
        names = vgg_layer_names(self.depth)
        last = max(names.index(name) for name in layers)
        shapes = _layer_shapes(self.depth)
        found = {}
        for name in names[: last + 1]:
            if name.endswith("_1") and name != "conv1_1":
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.relu(nn.Conv(shapes[name][1][0], (3, 3), padding=((1, 1), (1, 1)), name=name)(x))
            if name in layers:
                found[name] = x
        return {name: found[name] for name in layers}


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def vgg_preprocess(images: jnp.ndarray, preprocess: str = "none") -> jnp.ndarray:
    """Converts `[..., H, W, 3]` RGB images in [0, 1] to a VGG's input convention.

    Args:
      images: `[..., H, W, 3]` float RGB; in [0, 1] for "torchvision" and "caffe" (checked when the values
        are concrete, i.e. outside `jax.jit`; nothing is clipped).
      preprocess: "none" (unchanged), "torchvision" ((x - ImageNet mean) / ImageNet std, RGB), "caffe"
        (BGR, times 255, minus the Caffe means 103.939, 116.779, 123.68 in BGR order) or "colorization"
        ((L* - 50) / 50 of CIE L*a*b*, L* in [0, 100] from `landmarkjax.ops.colour.rgb_to_lab`, in [-1, 1],
        replicated into the 3 channels: the grey input of the network `landmarkjax.methods.colorization`
        trains, so an RGB image and its grey version give the same features).

    Returns:
      `[..., H, W, 3]` float32 network input.
    """
    if preprocess not in PREPROCESSING:
        raise ValueError(f"preprocess must be one of {PREPROCESSING}; got {preprocess!r}.")
    images = jnp.asarray(images, jnp.float32)
    if preprocess == "none":
        return images
    if images.shape[-1] != 3:
        raise ValueError(f"preprocess={preprocess!r} needs RGB images [..., H, W, 3]; got shape {images.shape}.")
    if _is_concrete(images) and images.size:
        low, high = float(jnp.min(images)), float(jnp.max(images))
        if low < 0.0 or high > 1.0 or not np.isfinite(low + high):
            raise ValueError(
                f"preprocess={preprocess!r} expects images in [0, 1]; got values in [{low}, {high}] "
                "(for [0, 255] images divide by 255 first)."
            )
    if preprocess == "torchvision":
        return (images - _TORCHVISION_MEAN) / _TORCHVISION_STD
    if preprocess == "colorization":
        return lightness_input(images)
    return images[..., ::-1] * 255.0 - _CAFFE_BGR_MEAN


def lightness_input(images: jnp.ndarray) -> jnp.ndarray:
    """`[..., H, W, 3]` sRGB in [0, 1] -> `[..., H, W, 3]` float32: (L* - 50) / 50 in [-1, 1] in every
    channel (the "colorization" preset without the range check, for use inside `jax.jit`)."""
    lightness = rgb_to_lab(jnp.asarray(images, jnp.float32))[..., :1]
    return jnp.broadcast_to((lightness - 50.0) / 50.0, lightness.shape[:-1] + (3,))


def vgg_features(
    params,
    images: jnp.ndarray,
    layers: Sequence[str],
    depth: int = 16,
    preprocess: str = "none",
) -> dict[str, jnp.ndarray]:
    """Post-ReLU activations of named VGG layers.

    Args:
      params: `{"params": {"conv1_1": {"kernel", "bias"}, ...}}` (from `load_vgg_params` or
        `VGG(depth).init`); layers deeper than the deepest requested one may be absent.
      images: `[B, H, W, 3]` float images, RGB in [0, 1] for the "torchvision" and "caffe" presets, or
        the network's own input for "none".
      layers: names from `vgg_layer_names(depth)`, e.g. ("conv1_2", "conv2_2").
      depth: 16 or 19.
      preprocess: see `vgg_preprocess`.

    Returns:
      {name: `[B, h_b, w_b, C_b]`} in the order of `layers`, where block b's maps are the image size
      floored-halved b - 1 times and C_b = 64, 128, 256, 512, 512 for b = 1..5.
    """
    _check_depth(depth)
    layers = _check_layers(layers, depth)
    images = vgg_preprocess(images, preprocess)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3]; got shape {images.shape}.")
    return VGG(depth=depth, layers=layers).apply(params, images)


def _check_and_wrap(arrays: dict[str, tuple[np.ndarray, np.ndarray]], depth: int, describe) -> dict:
    """Validates HWIO kernels and biases for every layer of VGG-`depth`; `describe(name, part)` names the
    key of the source file in errors."""
    params = {}
    for name, (kernel_shape, bias_shape) in _layer_shapes(depth).items():
        kernel, bias = arrays[name]
        for part, value, shape in (("kernel", kernel, kernel_shape), ("bias", bias, bias_shape)):
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{describe(name, part)} has shape {tuple(value.shape)}; expected {describe.shape(name, part, shape)}."
                )
        params[name] = {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}
    return {"params": params}


class _TorchKeys:
    """Names and shapes of torchvision keys, for error messages."""

    def __init__(self, depth: int):
        self.indices = _torchvision_indices(depth)

    def __call__(self, name: str, part: str) -> str:
        return f"features.{self.indices[name]}.{'weight' if part == 'kernel' else 'bias'}"

    @staticmethod
    def shape(name: str, part: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[3], shape[2], shape[0], shape[1]) if part == "kernel" else shape


class _KerasKeys:
    """Names of Keras layers, for error messages (kernels are already HWIO)."""

    def __call__(self, name: str, part: str) -> str:
        return f"{_keras_layer_name(name)} {part}"

    @staticmethod
    def shape(name: str, part: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape


def _keras_layer_name(name: str) -> str:
    block, index = re.fullmatch(r"conv(\d)_(\d)", name).groups()
    return f"block{block}_conv{index}"


def _torchvision_depth(keys) -> int | None:
    """16 or 19 from the conv weight keys of a torchvision state dict, or None if neither fits."""
    present = {int(m.group(1)) for k in keys if (m := re.fullmatch(r"features\.(\d+)\.weight", k))}
    for depth in (16, 19):
        if present == set(_torchvision_indices(depth).values()):
            return depth
    return None


def vgg_params_from_torchvision(state: Mapping[str, np.ndarray], depth: int = 16) -> dict:
    """Flax VGG params from a torchvision `vgg16` / `vgg19` state dict (numpy arrays).

    Args:
      state: {"features.N.weight": `[O, I, 3, 3]` (OIHW), "features.N.bias": `[O]`, ...}; other keys
        (`classifier.*`) are ignored.
      depth: 16 or 19; a state dict of the other depth is a ValueError.

    Returns:
      `{"params": {"conv1_1": {"kernel": [3, 3, I, O], "bias": [O]}, ...}}` float32.
    """
    _check_depth(depth)
    found = _torchvision_depth(state.keys())
    if found is not None and found != depth:
        raise ValueError(f"the weights are a torchvision VGG-{found} state dict, but depth={depth} was asked.")
    names = _TorchKeys(depth)
    arrays = {}
    for name, (kernel_shape, bias_shape) in _layer_shapes(depth).items():
        for part, shape in (("kernel", kernel_shape), ("bias", bias_shape)):
            key = names(name, part)
            if key not in state:
                raise ValueError(
                    f"the weights lack {key!r} (expected shape {names.shape(name, part, shape)} for VGG-{depth} "
                    f"layer {name})."
                )
        weight = np.asarray(state[names(name, "kernel")])
        if weight.ndim != 4:
            raise ValueError(
                f"{names(name, 'kernel')} has shape {weight.shape}; expected {names.shape(name, 'kernel', kernel_shape)}."
            )
        arrays[name] = (np.transpose(weight, (2, 3, 1, 0)), np.asarray(state[names(name, "bias")]))
    return _check_and_wrap(arrays, depth, names)


def vgg_params_from_keras(layers: Mapping[str, Sequence[np.ndarray]], depth: int = 16) -> dict:
    """Flax VGG params from the weights of Keras' `VGG16` / `VGG19` layers.

    Args:
      layers: {"block1_conv1": (kernel `[3, 3, I, O]` HWIO, bias `[O]`), ...}; other layers (pools,
        `fc1`, `predictions`) are ignored.
      depth: 16 or 19; weights of the other depth are a ValueError.

    Returns:
      `{"params": {"conv1_1": {"kernel": [3, 3, I, O], "bias": [O]}, ...}}` float32.
    """
    _check_depth(depth)
    other = 19 if depth == 16 else 16
    if depth == 16 and "block5_conv4" in layers:
        raise ValueError(f"the weights are Keras VGG-{other} (they have block5_conv4), but depth={depth} was asked.")
    if depth == 19 and "block5_conv4" not in layers and "block5_conv3" in layers:
        raise ValueError(f"the weights are Keras VGG-{other} (no block5_conv4), but depth={depth} was asked.")
    names = _KerasKeys()
    arrays = {}
    for name, (kernel_shape, bias_shape) in _layer_shapes(depth).items():
        keras_name = _keras_layer_name(name)
        weights = layers.get(keras_name)
        if weights is None or len(weights) != 2:
            raise ValueError(
                f"the weights lack layer {keras_name!r} with a kernel {kernel_shape} and a bias {bias_shape} "
                f"(VGG-{depth} layer {name})."
            )
        kernel, bias = (np.asarray(w) for w in weights)
        if kernel.ndim == 1 and bias.ndim == 4:  # some files list the bias first
            kernel, bias = bias, kernel
        arrays[name] = (kernel, bias)
    return _check_and_wrap(arrays, depth, names)


def _read_keras_h5(path: str) -> dict[str, list[np.ndarray]]:
    """{layer name: [kernel, bias]} from a Keras weights file: the legacy `.h5` layout (root attribute
    `layer_names`, each layer group with a `weight_names` attribute) or the Keras 3 `.weights.h5` layout
    (`layers/<name>/vars/0`, `vars/1`)."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError(
            f"reading the Keras weights file {path} needs h5py (pip install h5py); or export the weights "
            "to a torchvision-layout .npz instead."
        ) from error

    def text(value) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    layers: dict[str, list[np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f  # a whole saved model, or weights only
        if "layer_names" in root.attrs:
            for layer in (text(n) for n in root.attrs["layer_names"]):
                group = root[layer]
                weight_names = [text(n) for n in group.attrs.get("weight_names", [])]
                if weight_names:
                    layers[layer] = [np.asarray(group[w]) for w in weight_names]
        elif "layers" in root:
            for layer, group in root["layers"].items():
                if "vars" in group and len(group["vars"]):
                    layers[layer] = [np.asarray(group["vars"][str(i)]) for i in range(len(group["vars"]))]
        else:
            raise ValueError(f"{path} is not a Keras weights file (no 'layer_names' attribute and no 'layers' group).")
    return layers


def load_vgg_params(path: str | os.PathLike, depth: int = 16) -> dict:
    """Loads pretrained VGG-16 / VGG-19 convolution weights into Flax params.

    Args:
      path: a torchvision state dict as `.npz` (keys `features.N.weight` `[O, I, 3, 3]`, `features.N.bias`;
        classifier keys ignored) or as `.pth`/`.pt` (needs torch), or a Keras weights file `.h5` (layers
        `block1_conv1` ... , needs h5py).
      depth: 16 or 19; a file of the other depth is a ValueError.

    Returns:
      `{"params": {"conv1_1": {"kernel": [3, 3, I, O], "bias": [O]}, ...}}` float32 for `VGG(depth)` and
      `vgg_features`.

    Raises:
      FileNotFoundError: `path` does not exist.
      ImportError: torch (for `.pth`) or h5py (for `.h5`) is not installed.
      ValueError: an unknown suffix, a missing or mis-shaped key (named, with the expected shape), or a file
        of the other depth.
    """
    _check_depth(depth)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"VGG weights file {path} does not exist.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            state = {key: data[key] for key in data.files}
        return vgg_params_from_torchvision(state, depth)
    if suffix in (".pth", ".pt"):
        try:
            import torch
        except ImportError as error:
            raise ImportError(
                f"loading {path} needs torch, which is not installed; export it to .npz where torch is "
                f"installed and load that instead:\n  {_TORCH_EXPORT_HINT}"
            ) from error
        state = torch.load(path, map_location="cpu")
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; save model.state_dict().")
        return vgg_params_from_torchvision({k: v.detach().cpu().numpy() for k, v in state.items()}, depth)
    if suffix in (".h5", ".hdf5"):
        return vgg_params_from_keras(_read_keras_h5(path), depth)
    raise ValueError(f"unknown VGG weights format {suffix!r} for {path}; expected .npz, .pth/.pt or .h5.")


def vgg_params_to_torchvision(params: Mapping, depth: int = 16) -> dict[str, np.ndarray]:
    """The inverse of `vgg_params_from_torchvision`: Flax VGG params -> a torchvision state dict.

    Args:
      params: `{"params": {"conv1_1": {"kernel": [3, 3, I, O], "bias": [O]}, ...}}` (or the inner dict)
        with every convolution of VGG-`depth`.
      depth: 16 or 19.

    Returns:
      {"features.N.weight": float32 `[O, I, 3, 3]` (OIHW), "features.N.bias": float32 `[O]`} with
      torchvision's `vgg16` / `vgg19` indices N (no classifier keys).

    Raises:
      ValueError: a layer is missing or has the wrong shape (named, with the expected shape).
    """
    _check_depth(depth)
    inner = params.get("params", params)
    names = _TorchKeys(depth)
    state = {}
    for name, (kernel_shape, bias_shape) in _layer_shapes(depth).items():
        layer = inner.get(name)
        if layer is None or "kernel" not in layer or "bias" not in layer:
            raise ValueError(f"params lack VGG-{depth} layer {name!r} (kernel {kernel_shape}, bias {bias_shape}).")
        kernel, bias = np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32)
        for part, value, shape in (("kernel", kernel, kernel_shape), ("bias", bias, bias_shape)):
            if value.shape != shape:
                raise ValueError(f"params {name} {part} has shape {value.shape}; expected {shape} for VGG-{depth}.")
        state[names(name, "kernel")] = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))
        state[names(name, "bias")] = bias
    return state


def save_vgg_params(params: Mapping, path: str | os.PathLike, depth: int = 16) -> str:
    """Writes VGG params as a torchvision-layout `.npz` that `load_vgg_params(path, depth)` reads back
    to identical arrays. PyTorch loads it into torchvision's `vgg16()` with
    `model.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(path).items()}, strict=False)`
    (`strict=False`: the file has no classifier).

    The file appears atomically (written next to `path`, then renamed), so a crash never leaves half of it.

    Args:
      params: as for `vgg_params_to_torchvision`.
      path: the file to write; must end in ".npz". Missing parent folders are created.
      depth: 16 or 19.

    Returns:
      `path` as a string.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"save_vgg_params writes .npz files; got path {path!r}.")
    state = vgg_params_to_torchvision(params, depth)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path[: -len(".npz")] + f".partial-{os.getpid()}.npz"
    try:
        np.savez(partial, **state)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
