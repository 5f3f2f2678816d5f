"""Grain random-access data sources of procedural data, generated per index (and a memoizing wrapper).

Every source implements `__len__` and `__getitem__(index) -> dict` (Grain's `RandomAccessDataSource`
protocol), is picklable (so Grain worker processes can use it) and has a `repr` that names its arguments
(Grain compares it when restoring a checkpointed iterator).

The synthetic sources render record `index` from the seed `derive_seed(seed, index)`, so a record does not
depend on which other records were read, in what order, or in which process. Built TFDS datasets are read
by `landmarkjax.data.tfds_source.TfdsSource`, which sits above the builders: the builders import these
sources to generate their records, so this module imports neither the builders nor TFDS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from landmarkjax.data.synthetic.faces import FACE_COVERAGES, synthetic_face, synthetic_face_clip
from landmarkjax.data.synthetic.objects import synthetic_object_video
from landmarkjax.data.synthetic.people import synthetic_mocap, synthetic_person

__all__ = [
    "MemoizedSource",
    "SyntheticFaceClipSource",
    "SyntheticFaceSource",
    "SyntheticMocapSource",
    "SyntheticObjectVideoSource",
    "SyntheticPeopleSource",
    "derive_seed",
]


def derive_seed(seed: int, index: int) -> int:
    """The generator seed of record `index` in a source seeded with `seed`.

    Mixes (seed, index) with numpy's `SeedSequence`, so neighbouring indices and neighbouring seeds give
    unrelated streams.

    Args:
      seed: the source's seed, >= 0.
      index: the record index, >= 0.

    Returns:
      a 63-bit non-negative integer seed.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}.")
    state = np.random.SeedSequence((int(seed), int(index))).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _check_positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


class _SyntheticSource:
    """Shared indexing for the procedural sources."""

    def __init__(self, num_records: int, seed: int):
        self.num_records = _check_positive("num_records", num_records)
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_records

    def _record_seed(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_records:
            raise IndexError(f"index {index} is out of range for a source of {self.num_records} records.")
        return derive_seed(self.seed, index)


class SyntheticFaceSource(_SyntheticSource):
    """Procedural face images with 68 landmarks, generated on the fly.

    Element (see `landmarkjax.data.synthetic.faces.synthetic_face`): image uint8 [H, W, 3],
    landmarks float32 [68, 2] (x, y) pixels, visibility bool [68], attributes float32 [A] in
    `FACE_ATTRIBUTE_NAMES` order, face_box float32 [4] (x0, y0, x1, y1) pixels; H = W = `size`.
    `coverage` ("full" or "narrow", `landmarkjax.data.synthetic.faces.FACE_COVERAGES`) restricts the faces.
    """

    def __init__(self, num_records: int, size: int = 128, seed: int = 0, coverage: str = "full"):
        super().__init__(num_records, seed)
        self.size = _check_positive("size", size)
        if coverage not in FACE_COVERAGES:
            raise ValueError(f"coverage must be one of {FACE_COVERAGES}; got {coverage!r}.")
        self.coverage = coverage

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return synthetic_face(self._record_seed(index), size=self.size, coverage=self.coverage)

    def __repr__(self) -> str:
        coverage = "" if self.coverage == "full" else f", coverage={self.coverage!r}"
        return f"SyntheticFaceSource(num_records={self.num_records}, size={self.size}, seed={self.seed}{coverage})"


class SyntheticFaceClipSource(_SyntheticSource):
    """Procedural face video clips with per-frame landmarks, generated on the fly.

    Element (see `landmarkjax.data.synthetic.faces.synthetic_face_clip`): frames uint8 [T, H, W, 3],
    landmarks float32 [T, 68, 2], visibility bool [T, 68], attributes float32 [T, A], face_box float32
    [T, 4]; T = `num_frames`, H = W = `size`.
    """

    def __init__(self, num_records: int, num_frames: int = 3, size: int = 128, seed: int = 0):
        super().__init__(num_records, seed)
        self.num_frames = _check_positive("num_frames", num_frames)
        self.size = _check_positive("size", size)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return synthetic_face_clip(self._record_seed(index), num_frames=self.num_frames, size=self.size)

    def __repr__(self) -> str:
        return (
            f"SyntheticFaceClipSource(num_records={self.num_records}, num_frames={self.num_frames}, "
            f"size={self.size}, seed={self.seed})"
        )


class SyntheticObjectVideoSource(_SyntheticSource):
    """Procedural multi-object videos with instance masks, generated on the fly.

    Element (see `landmarkjax.data.synthetic.objects.synthetic_object_video`): frames uint8 [T, H, W, 3],
    masks uint8 [T, H, W] (0 = background, 1..N object ids); T = `num_frames`, H = W = `size`.
    """

    def __init__(
        self, num_records: int, num_frames: int = 8, size: int = 128, num_objects: int = 3, seed: int = 0
    ):
        super().__init__(num_records, seed)
        self.num_frames = _check_positive("num_frames", num_frames)
        self.size = _check_positive("size", size)
        self.num_objects = _check_positive("num_objects", num_objects)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return synthetic_object_video(
            self._record_seed(index), num_frames=self.num_frames, size=self.size, num_objects=self.num_objects
        )

    def __repr__(self) -> str:
        return (
            f"SyntheticObjectVideoSource(num_records={self.num_records}, num_frames={self.num_frames}, "
            f"size={self.size}, num_objects={self.num_objects}, seed={self.seed})"
        )


class SyntheticPeopleSource(_SyntheticSource):
    """Procedural people (posed synthetic SMPL bodies) with HMR's labels, generated on the fly.

    Element (see `landmarkjax.data.synthetic.people.synthetic_person`): image uint8 [S, S, 3],
    keypoints_2d float32 [19, 2] (x, y) pixels in cocoplus order, visibility bool [19], joints_3d float32
    [19, 3] (camera frame: x right, y down, z away; metres), mask bool [S, S], pose float32 [72]
    (axis-angle radians, global orientation first), betas float32 [10], camera float32 [3] ([s, tx, ty],
    normalised image units); S = `size`. The body model is `make_synthetic_smpl(model_seed)`.
    """

    def __init__(
        self, num_records: int, size: int = 128, max_occluders: int = 2, model_seed: int = 0, seed: int = 0
    ):
        super().__init__(num_records, seed)
        self.size = _check_positive("size", size)
        if int(max_occluders) != max_occluders or max_occluders < 0:
            raise ValueError(f"max_occluders must be a non-negative integer, got {max_occluders!r}.")
        self.max_occluders = int(max_occluders)
        if int(model_seed) != model_seed or model_seed < 0:
            raise ValueError(f"model_seed must be a non-negative integer, got {model_seed!r}.")
        self.model_seed = int(model_seed)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return synthetic_person(
            self._record_seed(index), self.size, model_seed=self.model_seed, max_occluders=self.max_occluders
        )

    def __repr__(self) -> str:
        return (
            f"SyntheticPeopleSource(num_records={self.num_records}, size={self.size}, "
            f"max_occluders={self.max_occluders}, model_seed={self.model_seed}, seed={self.seed})"
        )


class SyntheticMocapSource(_SyntheticSource):
    """The "mocap" poses and shapes for HMR's adversarial prior, generated on the fly.

    Element i is `landmarkjax.data.synthetic.people.synthetic_mocap(seed, i)`: pose float32 [72]
    (axis-angle radians, global orientation first) and betas float32 [10], from the same distribution as
    `SyntheticPeopleSource(seed=seed)`'s bodies but on a separate seed stream, so never their poses.
    """

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        self._record_seed(index)  # range check
        return synthetic_mocap(self.seed, int(index))

    def __repr__(self) -> str:
        return f"SyntheticMocapSource(num_records={self.num_records}, seed={self.seed})"


class MemoizedSource:
    """A random-access source that keeps every record it has produced (procedural faces are slow to draw).

    Records are generated on first access (in this process: use Grain `worker_count=0`), so a process
    only ever draws its own shard, and every later epoch reads from memory.
    """

    def __init__(self, source: Any):
        self.source = source
        self._records: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        if index not in self._records:
            self._records[index] = self.source[index]
        return self._records[index]

    def __repr__(self) -> str:
        return f"MemoizedSource({self.source!r})"
