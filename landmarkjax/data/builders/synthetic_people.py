"""TFDS builder for the procedural people of HMR: posed synthetic SMPL bodies with their labels.

Record i of `train` is `SyntheticPeopleSource(num_train, size, max_occluders, model_seed, seed)[i]`, and
record i of `test` the same with seed + 1, so a built dataset reproduces the on-the-fly source exactly.

Per example: image uint8 [S, S, 3] (raw bytes), keypoints_2d float32 [19, 2] (x, y) pixels in HMR's
cocoplus order (names in the metadata), visibility bool [19], joints_3d float32 [19, 3] (camera frame:
x right, y down, z away from the camera; metres, no translation), mask bool [S, S], pose float32 [72]
(axis-angle radians: global orientation, then SMPL's 23 body joints), betas float32 [10] and camera
float32 [3] ([s, tx, ty]: u = s * (X[:2] + t) in normalised image units, pixels = (u + 1) (S - 1) / 2).
The mocap poses for the adversarial prior are not stored: `SyntheticMocapSource` draws them on the fly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from landmarkjax.data.builders.common import ArrayRecordBuilder
from landmarkjax.data.sources import SyntheticPeopleSource
from landmarkjax.data.synthetic.people import NUM_BETAS, PERSON_KEYPOINT_NAMES

__all__ = ["SyntheticPeople", "SyntheticPeopleConfig"]


@dataclasses.dataclass(eq=False)
class SyntheticPeopleConfig(tfds.core.BuilderConfig):
    """What to generate.

    Attributes:
      size: image side S in pixels.
      max_occluders: at most this many occluder rectangles per image.
      model_seed: seed of the synthetic SMPL-format body model.
      num_train, num_test: records per split.
      seed: the train split's source seed (the test split uses seed + 1).
    """

    size: int = 128
    max_occluders: int = 2
    model_seed: int = 0
    num_train: int = 10_000
    num_test: int = 1_000
    seed: int = 0


class SyntheticPeople(ArrayRecordBuilder):
    """Procedural people: rendered SMPL-format bodies, 19 cocoplus keypoints, 3D joints, SMPL parameters."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticPeopleConfig(name="image_128", description="128 px images", size=128),
        SyntheticPeopleConfig(name="image_64", description="64 px images", size=64),
        SyntheticPeopleConfig(
            name="image_224", description="224 px images (HMR's input size)", size=224, num_train=5_000
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        size, num_keypoints = self.builder_config.size, len(PERSON_KEYPOINT_NAMES)
        features = {
            "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8, encoding="bytes"),
            "keypoints_2d": tfds.features.Tensor(shape=(num_keypoints, 2), dtype=np.float32),
            "visibility": tfds.features.Tensor(shape=(num_keypoints,), dtype=np.bool_),
            "joints_3d": tfds.features.Tensor(shape=(num_keypoints, 3), dtype=np.float32),
            "mask": tfds.features.Tensor(shape=(size, size), dtype=np.bool_, encoding="bytes"),
            "pose": tfds.features.Tensor(shape=(72,), dtype=np.float32),
            "betas": tfds.features.Tensor(shape=(NUM_BETAS,), dtype=np.float32),
            "camera": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(keypoint_names=list(PERSON_KEYPOINT_NAMES)),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        config = self.builder_config
        return {
            split: self._generate_examples(
                SyntheticPeopleSource(
                    num_records,
                    size=config.size,
                    max_occluders=config.max_occluders,
                    model_seed=config.model_seed,
                    seed=config.seed + offset,
                )
            )
            for split, num_records, offset in (("train", config.num_train, 0), ("test", config.num_test, 1))
        }

    def _generate_examples(self, source: SyntheticPeopleSource) -> Iterator[tuple[int, dict]]:
        for index in range(len(source)):
            yield index, source[index]
