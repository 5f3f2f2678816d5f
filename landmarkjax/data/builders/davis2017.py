"""TFDS builder for DAVIS 2017 (semi-supervised, 480p) from the official folder layout in manual_dir.

Splits `train` (60 sequences) and `val` (30 sequences), from `ImageSets/2017/{train,val}.txt`. One example
per sequence: `sequence` (its name), `frame_names` [T] (file stems, e.g. '00000'), `frames` [T] (the JPEG
files' bytes, unchanged), `masks` [T] (the palette PNG annotations' bytes, unchanged; pixel value = object
id, 0 = background) and `num_objects` (the largest object id in the sequence).
`landmarkjax.data.tfds_source.TfdsSource` decodes them to frames uint8 [T, H, W, 3] and masks uint8 [T, H, W].
Sequences may differ in length and size; every frame and mask of one sequence must have the same size (a
ValueError naming the file otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from landmarkjax.data.builders.common import (
    ArrayRecordBuilder,
    encoded_image_sequence_feature,
    image_size,
    manual_dir_or_raise,
    require_dir,
    require_file,
)
from landmarkjax.data.davis import read_palette_png

__all__ = ["Davis2017"]

_SPLITS = ("train", "val")

_LAYOUT = """\
  JPEGImages/480p/<sequence>/00000.jpg ...   the frames
  Annotations/480p/<sequence>/00000.png ...  a palette PNG mask for every frame (object ids)
  ImageSets/2017/train.txt, ImageSets/2017/val.txt   sequence names, one per line
  (the folder DAVIS/ of DAVIS-2017-trainval-480p.zip)"""


def _read_sequence_list(path: str) -> list[str]:
    with open(path, "r", encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{path}: expected one sequence name per line, found none.")
    return names


def _sequence_files(root: str, sequence: str) -> list[tuple[str, str, str]]:
    """(frame stem, JPEG path, PNG path) for every frame of `sequence`, in frame order."""
    frame_dir = require_dir(
        os.path.join(root, "JPEGImages", "480p", sequence), f"the frames of sequence '{sequence}'"
    )
    mask_dir = require_dir(
        os.path.join(root, "Annotations", "480p", sequence), f"the annotations of sequence '{sequence}'"
    )
    stems = sorted(
        os.path.splitext(name)[0] for name in os.listdir(frame_dir) if name.lower().endswith(".jpg")
    )
    if not stems:
        raise FileNotFoundError(f"expected JPEG frames (00000.jpg, ...) in {frame_dir}, found none")
    return [
        (
            stem,
            os.path.join(frame_dir, stem + ".jpg"),
            require_file(os.path.join(mask_dir, stem + ".png"), f"the annotation of frame {stem}.jpg"),
        )
        for stem in stems
    ]


class Davis2017(ArrayRecordBuilder):
    """DAVIS 2017 video object segmentation sequences (480p) with per-frame instance masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: train and val at 480p."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download DAVIS-2017-trainval-480p.zip from https://davischallenge.org/davis2017/code.html and "
        "extract it; manual_dir is its DAVIS/ folder, holding:\n" + _LAYOUT
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "sequence": tfds.features.Text(),
                    "frame_names": tfds.features.Tensor(shape=(None,), dtype=np.str_),
                    "frames": encoded_image_sequence_feature(),
                    "masks": encoded_image_sequence_feature(),
                    "num_objects": tfds.features.Tensor(shape=(), dtype=np.int32),
                }
            ),
            disable_shuffling=True,
            homepage="https://davischallenge.org/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        root = manual_dir_or_raise(dl_manager, self.name)
        sequences = {
            split: _read_sequence_list(
                require_file(
                    os.path.join(root, "ImageSets", "2017", f"{split}.txt"), f"the {split} sequence list"
                )
            )
            for split in _SPLITS
        }
        files = {
            split: [(name, _sequence_files(root, name)) for name in names]
            for split, names in sequences.items()
        }
        return {split: self._generate_examples(split_files) for split, split_files in files.items()}

    def _generate_examples(
        self, sequences: list[tuple[str, list[tuple[str, str, str]]]]
    ) -> Iterator[tuple[int, dict]]:
        for key, (sequence, frames) in enumerate(sequences):
            frame_bytes, mask_bytes, num_objects = [], [], 0
            first_size = image_size(frames[0][1])
            for _, frame_path, mask_path in frames:
                mask = read_palette_png(mask_path)
                frame_size = image_size(frame_path)
                if frame_size != first_size:
                    raise ValueError(
                        f"{frame_path}: every frame of sequence '{sequence}' must have its first frame's size "
                        f"{first_size[0]}x{first_size[1]} (width x height), got {frame_size[0]}x{frame_size[1]}."
                    )
                if mask.shape[::-1] != frame_size:
                    raise ValueError(
                        f"{mask_path}: expected a mask of the frame's size {frame_size[0]}x{frame_size[1]} "
                        f"(width x height), got {mask.shape[1]}x{mask.shape[0]}."
                    )
                num_objects = max(num_objects, int(mask.max()))
                with open(frame_path, "rb") as f:
                    frame_bytes.append(f.read())
                with open(mask_path, "rb") as f:
                    mask_bytes.append(f.read())
            yield (
                key,
                {
                    "sequence": sequence,
                    "frame_names": [stem for stem, _, _ in frames],
                    "frames": np.array(frame_bytes, dtype=object),
                    "masks": np.array(mask_bytes, dtype=object),
                    "num_objects": num_objects,
                },
            )
