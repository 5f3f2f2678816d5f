"""Train-step throughput of a method, phase by phase, at its default config (images per second).

    python benchmarks/train_step.py                       # the default method (SBR): both of its phases
    python benchmarks/train_step.py --config=landmarkjax/configs/supervised.py --config.batch_size=64

Times the jitted, data-parallel train step of every phase of the method (the step `train` runs: state
replicated and donated, batch split over every device, frozen inputs replicated) on a fixed batch that the
method draws for that phase from its own training data, after a compile and warm-up. Prints one JSON line
per phase, labelled with the method and the phase. Throughput: `examples_per_second` (config.batch_size
examples per step: images, or clips for video methods), `labelled_images_per_second` (the same number, the
name earlier tables use for the face detectors) and `images_per_second` (every image the step reads: a
clip of T frames counts T, e.g. SBR's unlabelled clips or the vos method's training clips); `step_cpu_ms`
is the process's CPU time per step over all threads, steadier than `step_ms` on a shared machine.

    python benchmarks/train_step.py --config=landmarkjax/configs/vos.py      # vos: clips of 2 frames, 64 px

`--lk_legacy_gradient` differentiates Lucas-Kanade tracking the way it was before its custom JVP (the
evaluated iterations, `lax.cond` early exit, nothing recomputed; `lucas_kanade._LEGACY_GRADIENT`): the
"before" of a before/after comparison of the SBR registration step. The lines then say
`"lk_gradient": "legacy"`; with `--config.sbr.lk.differentiation=implicit` (the tracks differentiated at their
converged warps) they say "implicit", otherwise "checkpointed" (the unrolled iterations, the default).
"""

from __future__ import annotations

import functools
import json
import platform
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from landmarkjax.configs.defaults import default_config_path
from landmarkjax.methods import build_method
from landmarkjax.ops import lucas_kanade
from landmarkjax.training import sharding
from landmarkjax.training.loop import place_frozen_inputs

_CONFIG = config_flags.DEFINE_config_file("config", default_config_path(), "Method config file.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per phase.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_LK_LEGACY_GRADIENT = flags.DEFINE_bool(
    "lk_legacy_gradient", False, "Differentiate LK tracking as before its custom JVP (for before/after figures)."
)


def _time_steps(step, state, batch, rng, frozen, count):
    """(state, wall seconds, CPU seconds of this process, all threads) of `count` steps."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(count):
        state, metrics = step(state, batch, rng, frozen)
    jax.block_until_ready(metrics)
    return state, time.perf_counter() - start, time.process_time() - cpu_start


def _lk_gradient_name(config) -> str:
    if _LK_LEGACY_GRADIENT.value:
        return "legacy"
    lk = config.get("sbr", {}).get("lk", {})
    return "implicit" if lk.get("differentiation") == "implicit" else "checkpointed"


def main(argv: list[str]) -> None:
    del argv
    lucas_kanade._LEGACY_GRADIENT = _LK_LEGACY_GRADIENT.value  # read when the step is traced
    config = _CONFIG.value
    method = build_method(config)
    mesh = sharding.make_data_mesh()
    state_sharding = sharding.replicated_sharding(mesh)
    init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
    state = jax.jit(method.init_state, out_shardings=state_sharding)(init_rng)
    frozen = place_frozen_inputs(method, mesh)
    data = method.train_loader(sharding.per_process_batch_size(config.batch_size, mesh))
    device = jax.devices()[0]
    for phase in method.phases():
        host_batch = method.next_batch(data, phase.name)
        batch = sharding.host_local_to_global(host_batch, mesh)
        step = sharding.jit_data_parallel(
            functools.partial(method.train_step, phase=phase.name), mesh, state_sharding
        )
        state, compile_seconds, _ = _time_steps(step, state, batch, step_rng, frozen, 1)
        state, _, _ = _time_steps(step, state, batch, step_rng, frozen, _WARMUP.value)
        state, seconds, cpu_seconds = _time_steps(step, state, batch, step_rng, frozen, _STEPS.value)
        shapes = {key: list(np.shape(value)) for key, value in host_batch.items() if np.ndim(value) >= 4}
        # Every image the step reads: a [B, H, W, C] input counts B, a clip input [B, T, H, W, C] B x T.
        images_per_step = sum(int(np.prod(shape[:-3])) for shape in shapes.values())
        print(
            json.dumps(
                {
                    "benchmark": "train_step",
                    "method": config.method,
                    "phase": phase.name,
                    "lk_gradient": _lk_gradient_name(config),
                    "image_size": config.data.image_size,
                    "batch_size": config.batch_size,
                    "image_inputs": shapes,
                    "backend": jax.default_backend(),
                    "device": device.device_kind,
                    "num_devices": jax.device_count(),
                    "cpu": platform.processor() or platform.machine(),
                    "compile_seconds": round(compile_seconds, 2),
                    "step_ms": round(1000 * seconds / _STEPS.value, 2),
                    # CPU time of this process (every thread) per step: steadier than wall time on a shared host.
                    "step_cpu_ms": round(1000 * cpu_seconds / _STEPS.value, 2),
                    "labelled_images_per_second": round(config.batch_size * _STEPS.value / seconds, 1),
                    "examples_per_second": round(config.batch_size * _STEPS.value / seconds, 1),
                    "images_per_second": round(images_per_step * _STEPS.value / seconds, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
