"""VGG-16 feature extraction speed: landmarkjax's `vgg_features` (jit) against a PyTorch VGG-16, same run.

Usage:
  python benchmarks/vgg.py [--batch 8] [--size 128] [--repeats 7] [--seconds 20]

`torch` is a benchmark-only dependency (`pip install torch==2.13.0`, the CPU wheel); without it only the
landmarkjax figures are printed and the peer is reported as skipped. torchvision is not needed: the peer is
torchvision's `vgg16().features` layer stack rebuilt in plain `torch.nn` (the same `nn.Sequential` of
Conv2d(3x3, padding 1) / ReLU(inplace) / MaxPool2d(2, 2), so the same `features.N.weight` keys), cut after
the ReLU of conv5_3 (index 29, before the last pool) because `vgg_features` stops at the deepest requested
layer. Both get the SAME weights (random He-scaled OIHW arrays loaded into torch with `load_state_dict`
and into landmarkjax with `vgg_params_from_torchvision`) and the SAME input (`[B, 3, S, S]` for torch,
its NHWC transpose for landmarkjax, preprocessing "none" on both sides).

Figures (one JSON line each): the agreement of conv5_3 (max abs difference relative to the largest
activation) and of the input gradient (max abs and L2 differences relative to torch's); landmarkjax's
compile times; then, for "forward" (conv5_3 of the
batch) and "forward_backward" (the gradient of mean(conv5_3^2) with respect to the INPUT images, weights
frozen, which is what a perceptual loss needs), milliseconds per call (wall clock and the process's CPU
time over all threads) and images per second, each the median of `--repeats` interleaved repeats (every
implementation and kind runs once per repeat, in turn, so all see the same machine load), and the load
averages before and after the timing (the machine may be shared). torch runs with its default intra-op
threads (`torch.get_num_threads()`, printed), XLA with its default CPU thread pool.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.models.vgg import vgg_features, vgg_params_from_torchvision

# torchvision's `cfgs["D"]` (VGG-16): channel counts, "M" = 2x2 max pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
CONV5_3_RELU_INDEX = 29  # features[29] is the ReLU after conv5_3 (features[28]).


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    """A torchvision-layout VGG-16 `features` state dict with He-scaled random weights (OIHW)."""
    rng = np.random.default_rng(seed)
    state, channels = {}, 3
    for entry in _layer_indices():
        if entry is None:
            continue
        position, width = entry
        state[f"features.{position}.weight"] = (
            rng.normal(size=(width, channels, 3, 3)) * np.sqrt(2.0 / (9 * channels))
        ).astype(np.float32)
        state[f"features.{position}.bias"] = rng.normal(scale=0.01, size=width).astype(np.float32)
        channels = width
    return state


def _layer_indices():
    """(features index, width) for each conv of VGG16_CFG (None for pools), torchvision numbering."""
    position = 0
    for entry in VGG16_CFG:
        if entry == "M":
            yield None
            position += 1
        else:
            yield position, entry
            position += 2


def torch_features(state: dict[str, np.ndarray]):
    """torchvision's VGG-16 `features` rebuilt in torch.nn, loaded with `state`, cut after conv5_3's ReLU."""
    import torch
    from torch import nn

    layers, channels = [], 3
    for entry in VGG16_CFG:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = entry

    class VGGFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)

    model = VGGFeatures()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.features[: CONV5_3_RELU_INDEX + 1]


def time_calls(calls: dict, repeats: int, seconds: float) -> dict:
    """Median (wall s, process CPU s) per call; calls interleaved repeat by repeat."""
    per_repeat = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        once = max(time.perf_counter() - start, 1e-6)
        per_repeat[name] = max(1, int(seconds / repeats / len(calls) / once))
    walls = {name: [] for name in calls}
    cpus = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(per_repeat[name]):
                call()
            walls[name].append((time.perf_counter() - wall) / per_repeat[name])
            cpus[name].append((time.process_time() - cpu) / per_repeat[name])
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), per_repeat[name]) for name in calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=20.0, help="rough total timing budget per figure set")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        with_torch = False
    else:
        with_torch = True
    common = dict(
        benchmark="vgg16_features",
        batch=args.batch,
        size=args.size,
        cpu=platform.processor() or platform.machine(),
        cores=os.cpu_count(),
        backend=jax.default_backend(),
    )
    state = random_state(0)
    params = vgg_params_from_torchvision(state, 16)
    rng = np.random.default_rng(1)
    images_nchw = rng.uniform(size=(args.batch, 3, args.size, args.size)).astype(np.float32)
    images = jnp.asarray(images_nchw.transpose(0, 2, 3, 1))

    def conv5_3(p, x):
        return vgg_features(p, x, ["conv5_3"], depth=16)["conv5_3"]

    def input_gradient(p, x):
        return jax.grad(lambda y: jnp.mean(jnp.square(conv5_3(p, y))))(x)

    compiled = {}
    for name, function in (("forward", conv5_3), ("forward_backward", input_gradient)):
        lowered = jax.jit(function).lower(params, images)
        start = time.perf_counter()
        compiled[name] = lowered.compile()
        emit(figure=f"{name}_compile_s", impl="landmarkjax", value=round(time.perf_counter() - start, 3), **common)
    ours = {
        "forward": np.asarray(compiled["forward"](params, images)),
        "gradient": np.asarray(compiled["forward_backward"](params, images)),
    }
    calls = {
        ("landmarkjax", "forward"): lambda: jax.block_until_ready(compiled["forward"](params, images)),
        ("landmarkjax", "forward_backward"): lambda: jax.block_until_ready(
            compiled["forward_backward"](params, images)
        ),
    }

    if with_torch:
        features = torch_features(state)
        inputs = torch.from_numpy(images_nchw)

        def torch_forward():
            with torch.inference_mode():
                return features(inputs)

        def torch_forward_backward():
            leaf = inputs.clone().requires_grad_(True)
            torch.mean(features(leaf) ** 2).backward()
            return leaf.grad

        theirs_forward = torch_forward().numpy().transpose(0, 2, 3, 1)
        theirs_gradient = torch_forward_backward().numpy().transpose(0, 2, 3, 1)
        emit(
            figure="agreement_vs_torch",
            conv5_3_max_abs_relative=float(
                np.max(np.abs(ours["forward"] - theirs_forward)) / np.max(np.abs(theirs_forward))
            ),
            input_gradient_max_abs_relative=float(
                np.max(np.abs(ours["gradient"] - theirs_gradient)) / np.max(np.abs(theirs_gradient))
            ),
            input_gradient_l2_relative=float(
                np.linalg.norm(ours["gradient"] - theirs_gradient) / np.linalg.norm(theirs_gradient)
            ),
            # ReLU units whose pre-activation is within float32 noise of 0 switch on in one and off in the
            # other; their share bounds how far the gradients can differ.
            relu_sign_flips_conv5_3=int(np.sum((ours["forward"] > 0) != (theirs_forward > 0))),
            torch_version=torch.__version__,
            torch_threads=torch.get_num_threads(),
            **common,
        )
        calls[("torch", "forward")] = torch_forward
        calls[("torch", "forward_backward")] = torch_forward_backward
    else:
        emit(figure="peer", impl="torch", skipped="torch is not installed (pip install torch==2.13.0)", **common)

    load_before = os.getloadavg()
    timings = time_calls(calls, args.repeats, args.seconds)
    load_after = os.getloadavg()
    for (impl, kind), (wall, cpu, count) in timings.items():
        emit(
            figure=f"{kind}_ms",
            impl=impl,
            wall_ms=round(1000 * wall, 2),
            cpu_ms=round(1000 * cpu, 2),
            images_per_second=round(args.batch / wall, 2),
            calls_per_repeat=count,
            repeats=args.repeats,
            load_average_before=[round(x, 2) for x in load_before],
            load_average_after=[round(x, 2) for x in load_after],
            **common,
        )


if __name__ == "__main__":
    main()
