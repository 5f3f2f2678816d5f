"""Label propagation (`propagate_labels`) at 480p-equivalent feature maps: time and peak memory on the CPU.

Usage:
  python benchmarks/propagation.py [--configs local_topk,local_dense,train_grad,local_topk_240p,...] [--repeats 5]
  python benchmarks/propagation.py --configs global_topk   # slow on a CPU: about 200 GFLOP per call

Sizes: a 480 x 864 frame (DAVIS 480p) at stride 4 gives a 120 x 216 feature map; C = 64 channels, M = 5
memory frames (MAST's two long-term + three short-term), 10 label channels (soft masks of 9 objects plus
the background). Configurations:
  * `local_topk`: radius 12 (MAST's test window), top_k 36, inference (forward only);
  * `local_dense`: radius 12, every window candidate kept, forward only;
  * `global_topk`: every position of every memory frame, top_k 36, forward only;
  * `train_grad`: MAST's training setting, a 256 x 256 crop at stride 4 (64 x 64), radius 6, 3 Lab
    channels as labels, value and gradient of a squared-error loss with respect to query and keys;
  * `local_topk_240p` and its peer `naive_local_topk_240p`: radius 12, top_k 36 on a 240p-equivalent map
    (60 x 108), where the peer (the straightforward port, as in CRW-style code) still fits: it builds the
    full [H W, M H W] affinity, masks it to the window and takes the top k. The peer's line also gives the
    largest absolute difference between its output and propagate_labels'.
Inputs are random normal features (the cost depends only on the shapes), unit-normalised along C, with
temperature 0.05 (CRW's protocol).

Each configuration runs in its own subprocess, so that its peak memory is its own: the child reports the
maximum resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) after creating the inputs and
again after compiling and running, and XLA's own estimate of the compiled function's temporary buffers
(`compiled.memory_analysis().temp_size_in_bytes`); the CPU backend has no `memory_stats()`. Times are the
median wall-clock seconds over `--repeats` calls after one warm-up call, plus the compile time. One JSON
line per figure; each carries the 1-minute load average at the end of its runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CONFIGS = {
    "local_topk": dict(height=120, width=216, channels=64, memory=5, labels=10, radius=12, top_k=36, grad=False),
    "local_dense": dict(height=120, width=216, channels=64, memory=5, labels=10, radius=12, top_k=None, grad=False),
    "global_topk": dict(height=120, width=216, channels=64, memory=5, labels=10, radius=None, top_k=36, grad=False),
    "train_grad": dict(height=64, width=64, channels=64, memory=5, labels=3, radius=6, top_k=None, grad=True),
    "local_topk_240p": dict(height=60, width=108, channels=64, memory=5, labels=10, radius=12, top_k=36, grad=False),
    "naive_local_topk_240p": dict(
        height=60, width=108, channels=64, memory=5, labels=10, radius=12, top_k=36, grad=False, naive=True
    ),
}
TEMPERATURE = 0.05


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs",
        default="local_topk,local_dense,train_grad,local_topk_240p,naive_local_topk_240p",
        help="comma-separated names",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def naive_propagate(query, keys, labels, *, radius, temperature, top_k):
    """The peer: full [H W, M H W] affinity masked to the window, top k, softmax, weighted labels."""
    import jax
    import jax.numpy as jnp

    height, width, channels = query.shape
    memory, num_labels = keys.shape[0], labels.shape[-1]
    positions = height * width
    affinity = jnp.einsum("pc,mnc->pmn", query.reshape(positions, channels), keys.reshape(memory, positions, channels))
    rows, columns = jnp.divmod(jnp.arange(positions), width)
    inside = (jnp.abs(rows[:, None] - rows[None]) <= radius) & (jnp.abs(columns[:, None] - columns[None]) <= radius)
    affinity = jnp.where(inside[:, None, :], affinity / temperature, -jnp.inf).reshape(positions, memory * positions)
    kept, candidate = jax.lax.top_k(affinity, top_k)
    weights = jax.nn.softmax(kept, axis=-1)
    out = jnp.einsum("pk,pkl->pl", weights, labels.reshape(memory * positions, num_labels)[candidate])
    return out.reshape(height, width, num_labels)


def _run_one(name: str, repeats: int) -> dict:
    """Runs one configuration in this process and returns its figure."""
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    from landmarkjax.ops.correspondence import propagate_labels

    config = CONFIGS[name]
    height, width, channels = config["height"], config["width"], config["channels"]
    memory, num_labels = config["memory"], config["labels"]
    rng = np.random.default_rng(0)

    def unit(shape):
        features = rng.normal(size=shape).astype(np.float32)
        return features / np.linalg.norm(features, axis=-1, keepdims=True)

    query = jnp.asarray(unit((height, width, channels)))
    keys = jnp.asarray(unit((memory, height, width, channels)))
    labels = jnp.asarray(rng.random((memory, height, width, num_labels), dtype=np.float32))
    target = jnp.asarray(rng.random((height, width, num_labels), dtype=np.float32))
    jax.block_until_ready((query, keys, labels, target))
    rss_inputs = _max_rss_mib()

    settings = dict(radius=config["radius"], temperature=TEMPERATURE, top_k=config["top_k"])
    propagate = functools.partial(naive_propagate if config.get("naive") else propagate_labels, **settings)
    if config["grad"]:

        def loss(q, k):
            return jnp.mean((propagate(q, k, labels) - target) ** 2)

        function, arguments = jax.value_and_grad(loss, argnums=(0, 1)), (query, keys)
    else:
        function, arguments = propagate, (query, keys, labels)

    start = time.perf_counter()
    compiled = jax.jit(function).lower(*arguments).compile()
    compile_s = time.perf_counter() - start
    analysis = compiled.memory_analysis()
    temp_bytes = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None

    jax.block_until_ready(compiled(*arguments))  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*arguments))
        seconds.append(time.perf_counter() - start)
    rss_peak = _max_rss_mib()
    difference = None
    if config.get("naive"):
        ours = jax.jit(functools.partial(propagate_labels, **settings))(*arguments)
        difference = float(jnp.max(jnp.abs(compiled(*arguments) - ours)))
    return {
        "figure": "propagate_labels",
        "config": name,
        "method": "naive_dense_peer" if config.get("naive") else "landmarkjax",
        "feature_map": [height, width],
        "channels": channels,
        "memory_frames": memory,
        "label_channels": num_labels,
        "radius": config["radius"],
        "top_k": config["top_k"],
        "gradient": config["grad"],
        "repeats": repeats,
        "median_s": round(float(np.median(seconds)), 4),
        "min_s": round(float(np.min(seconds)), 4),
        "compile_s": round(compile_s, 3),
        "xla_temp_mib": None if temp_bytes is None else round(temp_bytes / 2**20, 1),
        "max_rss_after_inputs_mib": round(rss_inputs, 1),
        "max_rss_peak_mib": round(rss_peak, 1),
        "max_rss_increase_mib": round(rss_peak - rss_inputs, 1),
        "max_abs_difference_to_landmarkjax": difference,
    }


def _emit(record: dict) -> None:
    record = {"benchmark": "propagation", **record, "load_average_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(record), flush=True)


def main(args: argparse.Namespace) -> None:
    if args.child is not None:
        print(json.dumps(_run_one(args.child, args.repeats)), flush=True)
        return
    names = [name for name in args.configs.split(",") if name]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown --configs {unknown}; choose from {sorted(CONFIGS)}")
    import jax

    device = jax.local_devices()[0]
    _emit(
        {
            "figure": "setup",
            "platform": device.platform,
            "device_kind": device.device_kind,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "python": sys.version.split()[0],
            "temperature": TEMPERATURE,
        }
    )
    for name in names:
        command = [sys.executable, os.path.abspath(__file__), "--child", name, "--repeats", str(args.repeats)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"configuration {name} failed:\n{result.stderr}")
        _emit(json.loads(result.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main(_parse_args())
