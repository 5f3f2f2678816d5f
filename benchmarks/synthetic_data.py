"""Throughput of the procedural data generators on one CPU core.

Prints one JSON line per figure: synthetic face images, face clip frames and object video frames per
second at 64 and 128 px. `per_s` is wall-clock throughput; `per_cpu_s` divides by the CPU time this
process used (steadier on a shared machine); `best_batch_per_cpu_s` is the fastest of 10 equal batches
(closest to an idle core when other jobs compete for the CPU). There is no peer generator to compare
against.

    python benchmarks/synthetic_data.py                # defaults: 64 and 128 px
    python benchmarks/synthetic_data.py --cpu 0        # pin to core 0 first (Linux)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

from landmarkjax.data.synthetic.faces import synthetic_face, synthetic_face_clip
from landmarkjax.data.synthetic.objects import synthetic_object_video


def measure(make: Callable[[int], object], items_per_call: int, calls: int, batches: int = 10
            ) -> dict[str, float]:
    """Time `calls` calls of make(seed) in `batches` equal batches (wall clock and process CPU time)."""
    make(10**6)  # warm caches and imports outside the timed loop
    per_batch = max(1, calls // batches)
    wall_times, cpu_times = [], []
    for batch in range(batches):
        wall, cpu = time.perf_counter(), time.process_time()
        for seed in range(batch * per_batch, (batch + 1) * per_batch):
            make(seed)
        wall_times.append(time.perf_counter() - wall)
        cpu_times.append(time.process_time() - cpu)
    items = items_per_call * per_batch * batches
    batch_items = items_per_call * per_batch
    return {"items": items, "seconds": round(sum(wall_times), 3), "per_s": round(items / sum(wall_times), 1),
            "per_cpu_s": round(items / sum(cpu_times), 1),
            "best_batch_per_cpu_s": round(batch_items / min(cpu_times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--faces", type=int, default=200, help="face images per size")
    parser.add_argument("--clips", type=int, default=20, help="8-frame clips / videos per size")
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    machine = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
               "cores_visible": len(os.sched_getaffinity(0))}
    for size in args.sizes:
        figures = {
            "synthetic_face_images": (lambda seed: synthetic_face(seed, size), 1, args.faces),
            "synthetic_face_clip_frames": (lambda seed: synthetic_face_clip(seed, 8, size), 8, args.clips),
            "synthetic_object_video_frames": (lambda seed: synthetic_object_video(seed, 8, size, 3), 8, args.clips),
        }
        for name, (make, per_call, calls) in figures.items():
            result = measure(make, per_call, calls)
            print(json.dumps({"benchmark": name, "size": size, **result, **machine}), flush=True)


if __name__ == "__main__":
    main()
