"""Loading throughput of the Grain pipelines: from on-the-fly sources and from built array_record datasets.

Prints one JSON line per figure:
  * `loader_synthetic_source`: batches/s of `make_loader` over `SyntheticFaceSource` (rendering included),
    with and without `RandomFaceAugment`, reading in the consuming thread (`read_threads=0`, the default)
    and with Grain's default of 16 prefetch threads;
  * `build_synthetic_faces`: examples/s while building a `synthetic_faces` array_record dataset;
  * `tfds_record_reads`: records/s of random reads from that dataset through `TfdsSource`;
  * `loader_array_record_synthetic`: batches/s of `make_loader` over the built synthetic dataset;
  * `loader_array_record_jpeg_photos`: batches/s over a built `face300w` dataset made of 640x480 JPEG photos
    (JPEG decode with Pillow + crop to 128 px), with `CropFace` and with `RandomFaceAugment`;
  * `face_crop_warp`: milliseconds per 640x480 -> 128x128 face crop, landmarkjax's Pillow warp against
    OpenCV's `cv2.warpAffine` (the peer; OpenCV is only a test dependency of landmarkjax).
`batches_per_s` is wall-clock; `batches_per_cpu_s` divides by this process's CPU time (steadier on a
shared machine; with worker processes only the wall-clock figure is meaningful). Each line also carries the
machine's 1-minute load average at the time.

    python benchmarks/data_loading.py                         # defaults: 64 and 128 px, batch 32, 0 workers
    python benchmarks/data_loading.py --workers 0 2 --sizes 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
from absl import flags
from PIL import Image

from landmarkjax.data.augment import (
    CropFace,
    FaceAugmentConfig,
    RandomFaceAugment,
    face_crop_matrix,
    warp_image,
)
from landmarkjax.data.builders import SyntheticFacesConfig, build_dataset
from landmarkjax.data.pipeline import make_loader
from landmarkjax.data.sources import SyntheticFaceSource
from landmarkjax.data.synthetic.faces import FACE_ATTRIBUTE_NAMES
from landmarkjax.data.tfds_source import TfdsSource

_300W_FOLDERS = ("lfpw/trainset", "lfpw/testset", "helen/trainset", "helen/testset", "afw", "ibug")


def time_batches(loader, num_batches: int) -> dict[str, float]:
    iterator = iter(loader)
    for _ in range(2):  # warm-up: imports, worker start, first decode
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(num_batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "batches": num_batches,
        "seconds": round(wall, 3),
        "batches_per_s": round(num_batches / wall, 2),
        "batches_per_cpu_s": round(num_batches / max(cpu, 1e-9), 2),
    }


def write_photo_300w(root: str, num_photos: int, seed: int = 0) -> None:
    """A 300-W folder of 640x480 JPEG photos (smooth random content) with a face box of ~200 px."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:480, :640]
    for index in range(num_photos):
        folder = os.path.join(root, _300W_FOLDERS[index % len(_300W_FOLDERS)])
        os.makedirs(folder, exist_ok=True)
        phase = rng.uniform(0, 6, 3)
        image = np.stack([127 + 120 * np.sin(x / (20 + 7 * c) + y / 31 + phase[c]) for c in range(3)], -1)
        Image.fromarray(image.astype(np.uint8)).save(
            os.path.join(folder, f"photo_{index:05d}.jpg"), quality=90
        )
        centre = rng.uniform([250, 190], [390, 290])
        points = centre + rng.uniform(-100, 100, size=(68, 2)) + 1.0
        lines = "\n".join(f"{px:.3f} {py:.3f}" for px, py in points)
        with open(os.path.join(folder, f"photo_{index:05d}.pts"), "w") as f:
            f.write(f"version: 1\nn_points:  68\n{{\n{lines}\n}}\n")


def warp_figures(repeats: int) -> list[dict]:
    import cv2

    image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    matrix = face_crop_matrix(np.array([220.0, 140.0, 420.0, 340.0]), 128, rotation=0.2, scale=1.1)
    figures = []
    for name, warp in (
        ("landmarkjax_pillow", lambda: warp_image(image, matrix, 128)),
        ("opencv_warpaffine", lambda: cv2.warpAffine(image, matrix, (128, 128), flags=cv2.INTER_LINEAR)),
    ):
        warp()
        start = time.perf_counter()
        for _ in range(repeats):
            warp()
        figures.append(
            {"implementation": name, "ms_per_crop": round((time.perf_counter() - start) / repeats * 1e3, 4)}
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per figure")
    parser.add_argument("--workers", type=int, nargs="+", default=[0])
    parser.add_argument("--read-threads", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--records", type=int, default=512, help="records in the built synthetic dataset")
    parser.add_argument(
        "--photos", type=int, default=192, help="JPEG photos in the built 300-W-format dataset"
    )
    args = parser.parse_args()
    if any(args.workers):
        # Grain <= 0.2.18 reads an absl flag when it starts workers; this program parses none, so use defaults.
        flags.FLAGS(sys.argv[:1])
    machine = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cores_visible": len(os.sched_getaffinity(0)),
    }
    batch = args.batch_size

    def emit(name: str, **fields) -> None:
        load = {"load_average_1min": round(os.getloadavg()[0], 2)}  # other processes on a shared machine
        print(json.dumps({"benchmark": name, **fields, **machine, **load}), flush=True)

    for figure in warp_figures(repeats=200):
        emit("face_crop_warp", input="640x480", output=128, **figure)

    with tempfile.TemporaryDirectory() as data_dir:
        for size in args.sizes:
            augment = RandomFaceAugment(
                FaceAugmentConfig(output_size=size, attribute_names=FACE_ATTRIBUTE_NAMES)
            )
            for workers in args.workers:
                for threads in args.read_threads:
                    for augmented in (False, True):
                        loader = make_loader(
                            SyntheticFaceSource(100_000, size=size),
                            batch_size=batch,
                            seed=0,
                            augment=augment if augmented else None,
                            worker_count=workers,
                            read_threads=threads,
                        )
                        result = time_batches(loader, args.batches)
                        emit("loader_synthetic_source", size=size, batch_size=batch, workers=workers,
                             read_threads=threads, augment=augmented, **result)  # fmt: skip

            config = SyntheticFacesConfig(
                name=f"bench_{size}", kind="image", size=size, num_train=args.records, num_test=1
            )
            start = time.perf_counter()
            build_dataset("synthetic_faces", data_dir=data_dir, config=config)
            seconds = time.perf_counter() - start
            emit("build_synthetic_faces", size=size, records=args.records + 1, seconds=round(seconds, 2),
                 examples_per_s=round((args.records + 1) / seconds, 1))  # fmt: skip

            source = TfdsSource("synthetic_faces", split="train", data_dir=data_dir, config=config.name)
            order = np.random.default_rng(0).permutation(len(source))
            start = time.perf_counter()
            for index in order:
                source[int(index)]
            seconds = time.perf_counter() - start
            emit("tfds_record_reads", dataset=f"synthetic_faces/{config.name}", records=len(order),
                 records_per_s=round(len(order) / seconds, 1))  # fmt: skip
            for workers in args.workers:
                for augmented in (False, True):
                    loader = make_loader(
                        source,
                        batch_size=batch,
                        seed=0,
                        augment=augment if augmented else None,
                        worker_count=workers,
                    )
                    result = time_batches(loader, args.batches)
                    emit("loader_array_record_synthetic", size=size, batch_size=batch, workers=workers,
                         augment=augmented, **result)  # fmt: skip

        with tempfile.TemporaryDirectory() as manual_dir:
            write_photo_300w(manual_dir, args.photos)
            build_dataset("face300w", data_dir=data_dir, manual_dir=manual_dir)
        photos = TfdsSource("face300w", split="train", data_dir=data_dir)
        for workers in args.workers:
            for name, transform in (
                ("crop", CropFace(output_size=128)),
                ("random_augment", RandomFaceAugment(FaceAugmentConfig(output_size=128))),
            ):
                loader = make_loader(
                    photos, batch_size=batch, seed=0, augment=transform, worker_count=workers
                )
                result = time_batches(loader, args.batches)
                emit("loader_array_record_jpeg_photos", photo="640x480 JPEG", output=128, batch_size=batch,
                     workers=workers, transform=name, **result)  # fmt: skip


if __name__ == "__main__":
    main()
