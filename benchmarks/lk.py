"""Pyramidal Lucas-Kanade: landmarkjax's `lk_track` (jit) against OpenCV's `cv2.calcOpticalFlowPyrLK`.

Usage:
  python benchmarks/lk.py [--size 256] [--batch-sizes 1,16,64] [--repeats 7] [--host-devices N]
                          [--gradient-batch-sizes 16] [--gradient-paths checkpointed,legacy,implicit]

Data: frame pairs cut from four bundled scikit-image photos (astronaut, coffee, chelsea, rocket), converted
to grey and quantised to 8 bits (OpenCV tracks the uint8 frames, landmarkjax the same frames / 255 as
float32). The second frame of pair i is the photo warped by a known random similarity (rotation +-3 deg,
scale 0.97-1.03, shift +-12 px per axis) with cubic interpolation, then cut at the same place, so no frame
has missing pixels; the ground truth is the warp applied to the points. Points: the 68 strongest Harris
corners of each first frame (at least 16 px from the border).

Both trackers use the same settings: a 17 x 17 window, 4 pyramid levels (OpenCV's maxLevel=3), at most 20
iterations per level stopping at 0.01 px (OpenCV's criteria (COUNT | EPS, 20, 0.01)); lk_track's translation
warp is OpenCV's model, and its affine warp is reported as well.

Printed, one JSON line per figure:
  * `accuracy`: median / mean / 90th-percentile error (px) over all points of all pairs, the fraction
    flagged valid (OpenCV: status == 1) and the median error of the valid points;
  * `compile`: seconds to lower and to compile the jitted function, per batch size;
  * `throughput`: for batches of 1, 16 and 64 frame pairs, the median wall-clock seconds per batch over
    `--repeats` runs (all methods interleaved, so they see the same machine load), the CPU seconds of this
    process over all threads, frame pairs/s and point tracks/s. landmarkjax runs on one device and, where
    there are several local devices (on CPU: `--host-devices`, default the number of cores), data-parallel
    over all of them with `jax.shard_map` (batch split on a `data` axis). OpenCV runs pair after pair, with
    its own thread pool (`cv2.getNumThreads()` threads). Inputs are already on the device for landmarkjax
    (and in memory for OpenCV). Each line carries the 1-minute load average at the time. These lines say
    `"pass": "forward"`;
  * the same for the forward and backward pass (`"pass": "forward+backward"`, batches of
    `--gradient-batch-sizes`): `jax.value_and_grad` of a fixed random linear function of lk_track's tracked
    points, with respect to the input points (as SBR differentiates through the tracker), for each
    `--gradient-paths`: "checkpointed" (the library's custom JVP, `differentiation="unrolled"`), "legacy" (the
    iterations differentiated as they are evaluated, the code before it, selected with
    `lucas_kanade._LEGACY_GRADIENT`) and "implicit" (`differentiation="implicit"`: the converged warp of each
    level differentiated by the implicit function theorem), interleaved with the forward methods. OpenCV has
    no gradient.
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="frame size in pixels (square)")
    parser.add_argument("--batch-sizes", default="1,16,64", help="comma-separated numbers of frame pairs")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method and batch size")
    parser.add_argument(
        "--gradient-batch-sizes", default="16", help="comma-separated batch sizes of the gradient timings ('' for none)"
    )
    parser.add_argument(
        "--gradient-paths",
        default="checkpointed,legacy,implicit",
        help="gradient code paths to time: checkpointed, legacy, implicit",
    )
    parser.add_argument(
        "--host-devices",
        type=int,
        default=os.cpu_count(),
        help="CPU devices to expose to JAX (XLA_FLAGS=--xla_force_host_platform_device_count); no effect on GPU",
    )
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
# The number of CPU devices must be set before JAX is imported.
_FLAGS = os.environ.get("XLA_FLAGS", "")
if ARGS is not None and ARGS.host_devices > 1 and "xla_force_host_platform_device_count" not in _FLAGS:
    os.environ["XLA_FLAGS"] = f"{_FLAGS} --xla_force_host_platform_device_count={ARGS.host_devices}".strip()

import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import skimage.feature  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from landmarkjax.ops import lucas_kanade  # noqa: E402
from landmarkjax.ops.lucas_kanade import lk_track  # noqa: E402

NUM_POINTS = 68
WINDOW_RADIUS = 8
NUM_LEVELS = 4
NUM_ITERATIONS = 20
EPS = 0.01
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _emit(record: dict) -> None:
    record = {"benchmark": "lk", **record, "load_average_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(record), flush=True)


def _grey_photo(name: str) -> np.ndarray:
    rgb = getattr(skimage.data, name)()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def make_pairs(num_pairs: int, size: int, seed: int = 0):
    """Returns template uint8 [N, S, S], target uint8 [N, S, S], points [N, 68, 2], ground truth [N, 68, 2]."""
    rng = np.random.default_rng(seed)
    photos = [_grey_photo(name) for name in PHOTOS]
    templates, targets, points, truths = [], [], [], []
    margin = 16
    for index in range(num_pairs):
        photo = photos[index % len(photos)]
        height, width = photo.shape
        if min(height, width) < size + 2 * margin:
            raise ValueError(f"--size must be at most {min(p.shape[0] for p in photos) - 2 * margin}, got {size}")
        x0 = int(rng.integers(margin, width - size - margin + 1))
        y0 = int(rng.integers(margin, height - size - margin + 1))
        angle = np.deg2rad(rng.uniform(-3, 3))
        scale = rng.uniform(0.97, 1.03)
        shift = rng.uniform(-12, 12, 2)
        linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([x0 + size / 2, y0 + size / 2])
        offset = centre - linear @ centre + shift
        matrix = np.hstack([linear, offset[:, None]])
        warped = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        template = np.clip(np.round(photo[y0 : y0 + size, x0 : x0 + size]), 0, 255).astype(np.uint8)
        target = np.clip(np.round(warped[y0 : y0 + size, x0 : x0 + size]), 0, 255).astype(np.uint8)
        response = skimage.feature.corner_harris(template.astype(np.float32) / 255.0)
        peaks = skimage.feature.corner_peaks(response, min_distance=4, num_peaks=NUM_POINTS, exclude_border=16)
        if len(peaks) < NUM_POINTS:
            raise ValueError(f"only {len(peaks)} corners in pair {index}; use a larger --size")
        pts = peaks[:, ::-1].astype(np.float64)
        truth = (pts + [x0, y0]) @ linear.T + offset - [x0, y0]
        templates.append(template)
        targets.append(target)
        points.append(pts.astype(np.float32))
        truths.append(truth.astype(np.float32))
    return np.stack(templates), np.stack(targets), np.stack(points), np.stack(truths)


def opencv_track(templates: np.ndarray, targets: np.ndarray, points: np.ndarray):
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, NUM_ITERATIONS, EPS)
    size = 2 * WINDOW_RADIUS + 1
    tracked, valid = [], []
    for template, target, pts in zip(templates, targets, points):
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            template, target, pts[:, None, :], None, winSize=(size, size), maxLevel=NUM_LEVELS - 1, criteria=criteria
        )
        tracked.append(moved[:, 0])
        valid.append(status[:, 0] == 1)
    return np.stack(tracked), np.stack(valid)


def _accuracy(method: str, variant: str, tracked, valid, truth) -> None:
    errors = np.linalg.norm(np.asarray(tracked, np.float64) - truth, axis=-1)
    valid = np.asarray(valid)
    _emit(
        {
            "figure": "accuracy",
            "method": method,
            "variant": variant,
            "pairs": int(errors.shape[0]),
            "points": int(errors.size),
            "median_error_px": round(float(np.median(errors)), 4),
            "mean_error_px": round(float(np.mean(errors)), 4),
            "p90_error_px": round(float(np.percentile(errors, 90)), 4),
            "valid_fraction": round(float(valid.mean()), 4),
            "median_error_valid_px": round(float(np.median(errors[valid])), 4) if valid.any() else None,
        }
    )


def _gradient_function(function, weights: np.ndarray):
    """(template, target, points) -> value [1] and gradient w.r.t. points of sum(weights * tracked points)."""

    def loss(points, template, target):
        tracked, _ = function(template, target, points)
        return (tracked * weights[: tracked.shape[0]]).sum()

    def value_and_gradient(template, target, points):
        value, gradient = jax.value_and_grad(loss)(points, template, target)
        return value[None], gradient  # [1]: one value per shard under shard_map

    return value_and_gradient


def _compiled(function, arguments, method: str, variant: str, batch: int, devices: int, legacy: bool = False, **extra):
    start = time.perf_counter()
    # A new function object, traced here: the module flag is read at trace time, and jax.jit caches traces by
    # function object, not by the flag.
    lucas_kanade._LEGACY_GRADIENT = legacy
    try:
        lowered = jax.jit(lambda *args: function(*args)).lower(*arguments)
    finally:
        lucas_kanade._LEGACY_GRADIENT = False
    lowering = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compiling = time.perf_counter() - start
    _emit(
        {
            "figure": "compile",
            "method": method,
            "variant": variant,
            "batch": batch,
            "devices": devices,
            **extra,
            "lower_s": round(lowering, 3),
            "compile_s": round(compiling, 3),
        }
    )
    return compiled


def main(args: argparse.Namespace) -> None:
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    templates, targets, points, truths = make_pairs(max(batch_sizes), args.size)
    devices = jax.local_devices()
    _emit(
        {
            "figure": "setup",
            "platform": devices[0].platform,
            "device_kind": devices[0].device_kind,
            "local_devices": len(devices),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "jax": jax.__version__,
            "frame_size": args.size,
            "points_per_pair": NUM_POINTS,
            "python": sys.version.split()[0],
        }
    )

    settings = dict(
        window_radius=WINDOW_RADIUS, num_levels=NUM_LEVELS, num_iterations=NUM_ITERATIONS, convergence_eps=EPS
    )
    variants = {warp: functools.partial(lk_track, warp=warp, **settings) for warp in ("translation", "affine")}
    mesh = Mesh(np.array(devices), ("data",))
    sharded = NamedSharding(mesh, PartitionSpec("data"))

    # Compile everything first (and before OpenCV runs), then time all methods interleaved.
    runners = {}
    for batch in batch_sizes:
        host = (templates[:batch] / np.float32(255), targets[:batch] / np.float32(255), points[:batch])
        single = tuple(jax.device_put(x, devices[0]) for x in host)
        for variant, function in variants.items():
            runners[("landmarkjax", variant, batch, 1)] = (
                _compiled(function, single, "landmarkjax", variant, batch, 1),
                single,
            )
        if len(devices) > 1 and batch % len(devices) == 0:
            split = tuple(jax.device_put(x, sharded) for x in host)
            for variant, function in variants.items():
                spec = PartitionSpec("data")
                parallel = jax.shard_map(function, mesh=mesh, in_specs=spec, out_specs=spec)
                runners[("landmarkjax", variant, batch, len(devices))] = (
                    _compiled(parallel, split, "landmarkjax", variant, batch, len(devices)),
                    split,
                )

    gradient_batch_sizes = [int(b) for b in args.gradient_batch_sizes.split(",") if b]
    gradient_paths = [p for p in args.gradient_paths.split(",") if p]
    unknown = set(gradient_paths) - {"checkpointed", "legacy", "implicit"}
    if unknown:
        raise ValueError(f"--gradient-paths must be among checkpointed, legacy, implicit; got {sorted(unknown)}")
    if gradient_batch_sizes and max(gradient_batch_sizes) > len(points):
        templates, targets, points, truths = make_pairs(max(batch_sizes + gradient_batch_sizes), args.size)
    weights = np.random.default_rng(1).normal(size=points.shape).astype(np.float32)
    for batch in gradient_batch_sizes:
        host = (templates[:batch] / np.float32(255), targets[:batch] / np.float32(255), points[:batch])
        single = tuple(jax.device_put(x, devices[0]) for x in host)
        parallel_ok = len(devices) > 1 and batch % len(devices) == 0
        split = tuple(jax.device_put(x, sharded) for x in host) if parallel_ok else None
        for variant, function in variants.items():
            for path in gradient_paths:
                name = f"{variant} gradient ({path})"
                differentiated = function
                if path == "implicit":
                    differentiated = functools.partial(function, differentiation="implicit")
                gradient = _gradient_function(differentiated, weights)
                runners[("landmarkjax", name, batch, 1)] = (
                    _compiled(gradient, single, "landmarkjax", name, batch, 1, legacy=path == "legacy"),
                    single,
                )
                if split is not None:
                    spec = PartitionSpec("data")
                    parallel = jax.shard_map(gradient, mesh=mesh, in_specs=spec, out_specs=spec)
                    runners[("landmarkjax", name, batch, len(devices))] = (
                        _compiled(parallel, split, "landmarkjax", name, batch, len(devices), legacy=path == "legacy"),
                        split,
                    )

    largest = max(batch_sizes)
    for variant in variants:
        compiled, arguments = runners[("landmarkjax", variant, largest, 1)]
        tracked, valid = compiled(*arguments)
        _accuracy("landmarkjax", variant, tracked, valid, truths[:largest])
    tracked, valid = opencv_track(templates[:largest], targets[:largest], points[:largest])
    _accuracy("opencv", "translation", tracked, valid, truths[:largest])

    for batch in sorted(set(batch_sizes + gradient_batch_sizes)):
        calls = {key: value for key, value in runners.items() if key[2] == batch}
        calls[("opencv", "translation", batch, 1)] = (
            functools.partial(opencv_track, templates[:batch], targets[:batch], points[:batch]),
            (),
        )
        wall = {key: [] for key in calls}
        cpu = {key: [] for key in calls}
        for key, (call, arguments) in calls.items():
            jax.block_until_ready(call(*arguments))  # warm-up
        for _ in range(args.repeats):
            for key, (call, arguments) in calls.items():
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                jax.block_until_ready(call(*arguments))
                wall[key].append(time.perf_counter() - wall_start)
                cpu[key].append(time.process_time() - cpu_start)
        for key in calls:
            method, variant, _, num_devices = key
            seconds = float(np.median(wall[key]))
            _emit(
                {
                    "figure": "throughput",
                    "method": method,
                    "variant": variant,
                    "pass": "forward+backward" if "gradient" in variant else "forward",
                    "batch": batch,
                    "devices": num_devices if method == "landmarkjax" else None,
                    "threads": cv2.getNumThreads() if method == "opencv" else None,
                    "seconds_per_batch": round(seconds, 5),
                    "cpu_seconds_per_batch": round(float(np.median(cpu[key])), 5),
                    "pairs_per_s": round(batch / seconds, 1),
                    "point_tracks_per_s": round(batch * NUM_POINTS / seconds, 0),
                }
            )


if __name__ == "__main__":
    main(ARGS)
