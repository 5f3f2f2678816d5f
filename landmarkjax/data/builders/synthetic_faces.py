"""TFDS builder for the procedural faces: single images or video clips, with exact landmarks and attributes.

Record i of `train` is `SyntheticFaceSource(num_train, size, seed)[i]` (or the clip source's), and record i
of `test` the same with seed + 1, so a built dataset reproduces the on-the-fly sources exactly.

Image configs, per example: image uint8 [S, S, 3], landmarks float32 [68, 2] (x, y) pixels, visibility
bool [68], attributes float32 [A] (FACE_ATTRIBUTE_NAMES order, also in the metadata), face_box float32 [4].
Clip configs: frames uint8 [T, S, S, 3], landmarks [T, 68, 2], visibility [T, 68], attributes [T, A],
face_box [T, 4]. Images are stored as raw uint8 bytes (synthetic images carry sensor noise, so compression
saves little and costs read time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from landmarkjax.data.builders.common import ArrayRecordBuilder
from landmarkjax.data.sources import SyntheticFaceClipSource, SyntheticFaceSource
from landmarkjax.data.synthetic.faces import FACE_ATTRIBUTE_NAMES

__all__ = ["SyntheticFaces", "SyntheticFacesConfig"]


@dataclasses.dataclass(eq=False)
class SyntheticFacesConfig(tfds.core.BuilderConfig):
    """What to generate.

    Attributes:
      kind: 'image' or 'clip'.
      size: image side S in pixels.
      num_frames: frames T per clip ('clip' only).
      num_train, num_test: records per split.
      seed: the train split's source seed (the test split uses seed + 1).
    """

    kind: str = "image"
    size: int = 128
    num_frames: int = 8
    num_train: int = 10_000
    num_test: int = 1_000
    seed: int = 0


class SyntheticFaces(ArrayRecordBuilder):
    """Procedural faces with 68 iBUG landmarks, visibility, head pose and expression attributes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SyntheticFacesConfig(name="image_128", description="128 px images", kind="image", size=128),
        SyntheticFacesConfig(name="image_64", description="64 px images", kind="image", size=64),
        SyntheticFacesConfig(
            name="clip_128",
            description="8-frame 128 px clips",
            kind="clip",
            size=128,
            num_frames=8,
            num_train=2_000,
            num_test=200,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config.kind not in ("image", "clip"):
            raise ValueError(f"config.kind: expected 'image' or 'clip', got {config.kind!r}.")
        size, num_attributes = config.size, len(FACE_ATTRIBUTE_NAMES)
        lead = () if config.kind == "image" else (config.num_frames,)
        image_key = "image" if config.kind == "image" else "frames"
        features = {
            image_key: tfds.features.Tensor(shape=(*lead, size, size, 3), dtype=np.uint8, encoding="bytes"),
            "landmarks": tfds.features.Tensor(shape=(*lead, 68, 2), dtype=np.float32),
            "visibility": tfds.features.Tensor(shape=(*lead, 68), dtype=np.bool_),
            "attributes": tfds.features.Tensor(shape=(*lead, num_attributes), dtype=np.float32),
            "face_box": tfds.features.Tensor(shape=(*lead, 4), dtype=np.float32),
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(attribute_names=list(FACE_ATTRIBUTE_NAMES)),
            disable_shuffling=True,
        )

    def _source(self, num_records: int, seed: int) -> SyntheticFaceSource | SyntheticFaceClipSource:
        config = self.builder_config
        if config.kind == "image":
            return SyntheticFaceSource(num_records, size=config.size, seed=seed)
        return SyntheticFaceClipSource(num_records, num_frames=config.num_frames, size=config.size, seed=seed)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        config = self.builder_config
        return {
            "train": self._generate_examples(self._source(config.num_train, config.seed)),
            "test": self._generate_examples(self._source(config.num_test, config.seed + 1)),
        }

    def _generate_examples(
        self, source: SyntheticFaceSource | SyntheticFaceClipSource
    ) -> Iterator[tuple[int, dict]]:
        for index in range(len(source)):
            yield index, source[index]
