"""TFDS builder for the procedural multi-object videos with per-frame instance masks.

Record i of `train` is `SyntheticObjectVideoSource(num_train, num_frames, size, num_objects, seed)[i]` and
record i of `test` the same with seed + 1. Per example: frames uint8 [T, S, S, 3] and masks uint8
[T, S, S] (0 = background, 1..N object ids; the first frame's mask is the query), stored as raw bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from landmarkjax.data.builders.common import ArrayRecordBuilder
from landmarkjax.data.sources import SyntheticObjectVideoSource

__all__ = ["SyntheticObjects", "SyntheticObjectsConfig"]


@dataclasses.dataclass(eq=False)
class SyntheticObjectsConfig(tfds.core.BuilderConfig):
    """What to generate: T = num_frames frames of S = size pixels with num_objects objects per video."""

    size: int = 128
    num_frames: int = 8
    num_objects: int = 3
    num_train: int = 2_000
    num_test: int = 200
    seed: int = 0


class SyntheticObjects(ArrayRecordBuilder):
    """Procedural videos of textured moving, deforming, occluding objects with instance masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticObjectsConfig(name="video_128", description="8-frame 128 px videos with 3 objects"),
        SyntheticObjectsConfig(
            name="video_64", description="8-frame 64 px videos with 3 objects", size=64, num_train=5_000
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        shape = (config.num_frames, config.size, config.size)
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "frames": tfds.features.Tensor(shape=(*shape, 3), dtype=np.uint8, encoding="bytes"),
                    "masks": tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding="bytes"),
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        config = self.builder_config
        return {
            split: self._generate_examples(
                SyntheticObjectVideoSource(
                    num_records,
                    num_frames=config.num_frames,
                    size=config.size,
                    num_objects=config.num_objects,
                    seed=config.seed + offset,
                )
            )
            for split, num_records, offset in (("train", config.num_train, 0), ("test", config.num_test, 1))
        }

    def _generate_examples(self, source: SyntheticObjectVideoSource) -> Iterator[tuple[int, dict]]:
        for index in range(len(source)):
            element = source[index]
            yield index, {"frames": element["frames"], "masks": element["masks"]}
