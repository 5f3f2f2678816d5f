"""What every landmarkjax TFDS builder shares: array_record output, no TensorFlow, clear manual_dir errors.

The builders never import TensorFlow. Images are stored either as uint8 tensors (synthetic data, where speed
matters and there is no original file) or as the original encoded file bytes (real data: nothing is
re-encoded, so reading back is exact), and are decoded with Pillow by
`landmarkjax.data.tfds_source.TfdsSource`.
TFDS writes a dataset into a temporary `incomplete.*` folder and renames it only once every split is
written, so a failed build leaves no dataset version folder behind.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ArrayRecordBuilder",
    "encoded_image_feature",
    "encoded_image_sequence_feature",
    "require_file",
    "require_dir",
    "image_size",
    "landmark_box",
    "manual_dir_or_raise",
]


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A GeneratorBasedBuilder that writes array_record files and logs instead of printing."""

    def __init__(self, *, file_format: str = "array_record", **kwargs: Any):
        super().__init__(file_format=file_format, **kwargs)

    # TFDS 4.9's default looks the file up through `importlib_resources`, a package TFDS does not install.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

    def _log_download_bytes(self) -> None:
        logging.info("Preparing dataset %s in %s", self.name, self.data_dir)

    def _log_download_done(self) -> None:
        logging.info("Dataset %s prepared in %s", self.name, self.data_dir)


def encoded_image_feature() -> tfds.features.Tensor:
    """A feature holding one encoded image file (JPEG or PNG bytes) as stored on disk."""
    return tfds.features.Tensor(shape=(), dtype=np.object_)


def encoded_image_sequence_feature() -> tfds.features.Tensor:
    """A feature holding [T] encoded image files (JPEG or PNG bytes)."""
    return tfds.features.Tensor(shape=(None,), dtype=np.object_)


def require_file(path: str | os.PathLike, what: str) -> str:
    """Returns `path` as a string, or raises FileNotFoundError saying that `what` was expected there."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected {what} at {path}")
    return path


def require_dir(path: str | os.PathLike, what: str) -> str:
    """Returns `path` as a string, or raises FileNotFoundError saying that folder `what` was expected."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"expected {what} (a folder) at {path}")
    return path


def manual_dir_or_raise(dl_manager: tfds.download.DownloadManager, name: str) -> str:
    """The builder's manual_dir as a string, or FileNotFoundError naming it and the expected layout.

    TFDS's message names the folder and repeats the builder's MANUAL_DOWNLOAD_INSTRUCTIONS, which list the
    files expected there.
    """
    try:
        return os.fspath(dl_manager.manual_dir)
    except AssertionError as error:
        raise FileNotFoundError(f"{name}: {error}") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: naming the file, if Pillow cannot identify it as an image.
    """
    path = require_file(path, "an image file")
    try:
        with Image.open(path) as image:
            return image.size
    except UnidentifiedImageError:
        raise ValueError(f"{path}: expected a JPEG or PNG image that Pillow can read.") from None


def landmark_box(points: np.ndarray) -> np.ndarray:
    """The tight box around landmarks.

    Args:
      points: [K, 2] (x, y) pixels.

    Returns:
      float32 [4] (x0, y0, x1, y1) in pixels: the minimum and maximum coordinates.
    """
    points = np.asarray(points, np.float32)
    return np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)
