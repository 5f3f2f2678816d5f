"""TFDS builder for 300-W (iBUG) from the official folder layout in manual_dir.

Splits follow the 300-W literature: `train` = LFPW train + HELEN train + AFW (3148 images in the full
release), and the test sets `common` = LFPW test + HELEN test (554), `challenging` = iBUG (135) and
`full` = common + challenging (689).

Each example: `image` (the image file's bytes, unchanged), `landmarks` float32 [68, 2] (x, y) pixels, 0-based
pixel centres (the `.pts` values minus 1), `face_box` float32 [4] (x0, y0, x1, y1): the tight box around the
68 points, `file_name` (path relative to manual_dir) and `subset` ('lfpw', 'helen', 'afw' or 'ibug').
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from landmarkjax.data.builders.common import (
    ArrayRecordBuilder,
    encoded_image_feature,
    image_size,
    landmark_box,
    manual_dir_or_raise,
    require_dir,
)
from landmarkjax.data.pts import read_pts

__all__ = ["Face300w", "FACE300W_SPLIT_FOLDERS"]

#: The folders (relative to manual_dir) that make up each split.
FACE300W_SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("lfpw/trainset", "helen/trainset", "afw"),
    "common": ("lfpw/testset", "helen/testset"),
    "challenging": ("ibug",),
    "full": ("lfpw/testset", "helen/testset", "ibug"),
}

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_LAYOUT = """\
  lfpw/trainset/  lfpw/testset/  helen/trainset/  helen/testset/  afw/  ibug/
  each holding images (.jpg or .png) and, beside each image, a .pts file with the same name holding its 68
  landmarks (the official 300-W / iBUG release, e.g. lfpw/trainset/image_0001.png + image_0001.pts)."""


def _image_and_pts_pairs(manual_dir: str, folder: str) -> list[tuple[str, str]]:
    """(image path, .pts path) for every image in manual_dir/folder, sorted by file name."""
    directory = require_dir(os.path.join(manual_dir, folder), f"the 300-W folder '{folder}'")
    names = sorted(os.listdir(directory))
    images = [name for name in names if name.lower().endswith(_IMAGE_EXTENSIONS)]
    if not images:
        raise FileNotFoundError(
            f"expected images with .pts files beside them in {directory}, found no images"
        )
    image_stems = {os.path.splitext(name)[0] for name in images}
    for name in names:
        stem, extension = os.path.splitext(name)
        if extension.lower() == ".pts" and stem not in image_stems:
            raise FileNotFoundError(
                f"expected an image {stem}.jpg or {stem}.png beside {os.path.join(directory, name)}"
            )
    pairs = []
    for name in images:
        pts_path = os.path.join(directory, os.path.splitext(name)[0] + ".pts")
        if not os.path.isfile(pts_path):
            raise FileNotFoundError(
                f"expected the landmark file {pts_path} beside the image {os.path.join(directory, name)}"
            )
        pairs.append((os.path.join(directory, name), pts_path))
    return pairs


class Face300w(ArrayRecordBuilder):
    """300-W faces with 68 landmarks, read from the official release in manual_dir."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: train, common, challenging and full splits."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Download 300-W from https://ibug.doc.ic.ac.uk/resources/300-W/ and " + (
        "extract it so that manual_dir holds:\n" + _LAYOUT
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": encoded_image_feature(),
                    "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
                    "face_box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                    "file_name": tfds.features.Text(),
                    "subset": tfds.features.Text(),
                }
            ),
            disable_shuffling=True,
            homepage="https://ibug.doc.ic.ac.uk/resources/300-W/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        manual_dir = manual_dir_or_raise(dl_manager, self.name)
        pairs = {
            folder: _image_and_pts_pairs(manual_dir, folder)
            for folder in sorted({f for folders in FACE300W_SPLIT_FOLDERS.values() for f in folders})
        }
        return {
            split: self._generate_examples(manual_dir, [pair for folder in folders for pair in pairs[folder]])
            for split, folders in FACE300W_SPLIT_FOLDERS.items()
        }

    def _generate_examples(self, manual_dir: str, pairs: list[tuple[str, str]]) -> Iterator[tuple[int, dict]]:
        for key, (image_path, pts_path) in enumerate(pairs):
            landmarks = read_pts(pts_path, expected_num_points=68)
            image_size(image_path)
            with open(image_path, "rb") as f:
                image_bytes = f.read()
            file_name = os.path.relpath(image_path, manual_dir).replace(os.sep, "/")
            yield (
                key,
                {
                    "image": image_bytes,
                    "landmarks": landmarks,
                    "face_box": landmark_box(landmarks),
                    "file_name": file_name,
                    "subset": file_name.split("/")[0],
                },
            )
