"""TFDS builder for CelebA aligned faces with the MAFL train/test lists, read from manual_dir.

Splits: `train` (MAFL `training.txt`, 19,000 images in the full release), `test` (MAFL `testing.txt`,
1,000 images) and `celeba` (every CelebA image with landmarks except the MAFL test images: the unlabelled
training set of unsupervised landmark methods such as Jakab et al. 2018).

Each example: `image` (the aligned JPEG's bytes, unchanged), `landmarks` float32 [5, 2] (x, y) pixels in the
order left eye, right eye, nose, left mouth corner, right mouth corner, as written in
`list_landmarks_align_celeba.txt` (CelebA does not say whether its coordinates are 0- or 1-based; they are
stored unchanged), `face_box` float32 [4] (x0, y0, x1, y1): the tight box around the 5 points,
`attributes` float32 [40] (1 where CelebA marks the attribute present, 0 where it marks -1; names in
`CELEBA_ATTRIBUTE_NAMES` order, also stored in the dataset's metadata) and `file_name`.
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
)
from landmarkjax.face_layout import CELEBA_ATTRIBUTE_NAMES

__all__ = ["CelebaMafl", "CELEBA_ATTRIBUTE_NAMES", "CELEBA_LANDMARK_NAMES", "read_celeba_table"]

CELEBA_LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


# Each file may sit at the top of manual_dir or in the sub-folder the official archives use.
_IMAGE_FOLDER = ("img_align_celeba", "Img/img_align_celeba")
_LANDMARK_FILE = ("list_landmarks_align_celeba.txt", "Anno/list_landmarks_align_celeba.txt")
_ATTRIBUTE_FILE = ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt")
_MAFL_LISTS = {"train": ("training.txt", "MAFL/training.txt"), "test": ("testing.txt", "MAFL/testing.txt")}

_LAYOUT = """\
  img_align_celeba/000001.jpg ...   the aligned and cropped CelebA images (or Img/img_align_celeba/)
  list_landmarks_align_celeba.txt   CelebA's 5-point landmarks of the aligned images (or Anno/...)
  list_attr_celeba.txt              CelebA's 40 binary attributes (or Anno/...)
  training.txt, testing.txt         the MAFL lists of image names, one per line (or MAFL/...)"""


def read_celeba_table(path: str, num_columns: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Reads a CelebA annotation table: a count line, a header line, then 'name v1 v2 ...' lines.

    Args:
      path: the text file (for example list_landmarks_align_celeba.txt).
      num_columns: the number of values each row must hold.

    Returns:
      (header column names, {image name: float64 [num_columns] values}).

    Raises:
      ValueError: naming `path` and the line, when the count, the header or a row is malformed.
    """
    with open(path, "r", encoding="utf-8") as f:
        lines = [line.split() for line in f if line.strip()]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise ValueError(f"{path}: expected a first line with the number of images, then a header line.")
    count, header = int(lines[0][0]), lines[1]
    if len(header) != num_columns:
        raise ValueError(f"{path}: expected a header of {num_columns} column names, got {len(header)}.")
    rows = {}
    for number, fields in enumerate(lines[2:], start=3):
        if len(fields) != num_columns + 1:
            raise ValueError(
                f"{path}, line {number}: expected an image name and {num_columns} numbers, "
                f"got {len(fields)} fields."
            )
        try:
            rows[fields[0]] = np.array([float(v) for v in fields[1:]], np.float64)
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected numbers after the image name.") from None
    if len(rows) != count:
        raise ValueError(f"{path}: the first line announces {count} images but {len(rows)} rows follow.")
    return header, rows


def _locate(manual_dir: str, candidates: tuple[str, ...], what: str, is_dir: bool = False) -> str:
    """The first existing path among `candidates` (relative to manual_dir), else FileNotFoundError."""
    for candidate in candidates:
        path = os.path.join(manual_dir, candidate)
        if os.path.isdir(path) if is_dir else os.path.isfile(path):
            return path
    places = " or ".join(os.path.join(manual_dir, candidate) for candidate in candidates)
    raise FileNotFoundError(f"expected {what} at {places}")


def _read_name_list(path: str) -> list[str]:
    with open(path, "r", encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{path}: expected one image name per line, found none.")
    return names


class CelebaMafl(ArrayRecordBuilder):
    """CelebA aligned faces with 5 landmarks and 40 attributes, split by the MAFL lists."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: MAFL train/test and the CelebA set without MAFL test."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) and the MAFL lists "
        "(https://mmlab.ie.cuhk.edu.hk/projects/TCDCN.html) so that manual_dir holds:\n" + _LAYOUT
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": encoded_image_feature(),
                    "landmarks": tfds.features.Tensor(shape=(5, 2), dtype=np.float32),
                    "face_box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                    "attributes": tfds.features.Tensor(shape=(40,), dtype=np.float32),
                    "file_name": tfds.features.Text(),
                }
            ),
            metadata=tfds.core.MetadataDict(
                attribute_names=list(CELEBA_ATTRIBUTE_NAMES), landmark_names=list(CELEBA_LANDMARK_NAMES)
            ),
            disable_shuffling=True,
            homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        manual_dir = manual_dir_or_raise(dl_manager, self.name)
        image_dir = _locate(manual_dir, _IMAGE_FOLDER, "the folder of CelebA aligned images", is_dir=True)
        landmark_path = _locate(manual_dir, _LANDMARK_FILE, "CelebA's aligned landmarks")
        attribute_path = _locate(manual_dir, _ATTRIBUTE_FILE, "CelebA's attribute list")
        lists = {
            split: _read_name_list(_locate(manual_dir, candidates, f"the MAFL {split} list"))
            for split, candidates in _MAFL_LISTS.items()
        }
        _, landmarks = read_celeba_table(landmark_path, 10)
        header, attributes = read_celeba_table(attribute_path, 40)
        if tuple(header) != CELEBA_ATTRIBUTE_NAMES:
            raise ValueError(f"{attribute_path}: expected the header {' '.join(CELEBA_ATTRIBUTE_NAMES)}")
        for name, values in attributes.items():
            if not np.all(np.abs(values) == 1):
                raise ValueError(f"{attribute_path}: expected only -1 and 1 in the row of {name}.")
        test_names = set(lists["test"])
        lists["celeba"] = [name for name in sorted(landmarks) if name not in test_names]
        for split, names in lists.items():
            for name in names:
                for table, path in ((landmarks, landmark_path), (attributes, attribute_path)):
                    if name not in table:
                        raise ValueError(f"{path}: expected a row for {name} (listed in the {split} split).")
        return {
            split: self._generate_examples(image_dir, names, landmarks, attributes)
            for split, names in lists.items()
        }

    def _generate_examples(
        self,
        image_dir: str,
        names: list[str],
        landmarks: dict[str, np.ndarray],
        attributes: dict[str, np.ndarray],
    ) -> Iterator[tuple[int, dict]]:
        for key, name in enumerate(names):
            path = os.path.join(image_dir, name)
            image_size(path)
            with open(path, "rb") as f:
                image_bytes = f.read()
            points = landmarks[name].reshape(5, 2).astype(np.float32)
            yield (
                key,
                {
                    "image": image_bytes,
                    "landmarks": points,
                    "face_box": landmark_box(points),
                    "attributes": (attributes[name] > 0).astype(np.float32),
                    "file_name": name,
                },
            )
