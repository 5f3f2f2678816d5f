"""Train-step throughput of a method at its default config (images per second).

    python benchmarks/train_step.py                       # supervised CPM, default config
    python benchmarks/train_step.py --config.batch_size=64 --steps=50

Times the jitted, data-parallel train step (the one `train_and_evaluate` runs: state replicated and
donated, batch split over every device) on a fixed batch from the method's own training loader, after a
compile and warm-up. Prints one JSON line per figure.
"""

from __future__ import annotations

import json
import platform
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from landmarkjax.configs.defaults import default_config_path
from landmarkjax.methods.base import build_method
from landmarkjax.training import sharding

_CONFIG = config_flags.DEFINE_config_file("config", default_config_path(), "Method config file.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    method = build_method(config)
    mesh = sharding.make_data_mesh()
    state_sharding = sharding.replicated_sharding(mesh)
    init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
    state = jax.jit(method.init_state, out_shardings=state_sharding)(init_rng)
    host_batch = next(method.train_loader(sharding.per_process_batch_size(config.batch_size, mesh)))
    batch = sharding.host_local_to_global(host_batch, mesh)
    train_step = sharding.jit_data_parallel(method.train_step, mesh, state_sharding)

    start = time.perf_counter()
    state, metrics = train_step(state, batch, step_rng)
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - start
    for _ in range(_WARMUP.value):
        state, metrics = train_step(state, batch, step_rng)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(_STEPS.value):
        state, metrics = train_step(state, batch, step_rng)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start

    device = jax.devices()[0]
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "method": config.method,
                "image_size": config.data.image_size,
                "batch_size": config.batch_size,
                "backend": jax.default_backend(),
                "device": device.device_kind,
                "num_devices": jax.device_count(),
                "cpu": platform.processor() or platform.machine(),
                "compile_seconds": round(compile_seconds, 2),
                "step_ms": round(1000 * seconds / _STEPS.value, 2),
                "images_per_second": round(config.batch_size * _STEPS.value / seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
