"""Reading built landmarkjax TFDS datasets (array_record) as Grain random-access sources.

This module sits above `landmarkjax.data.builders` and imports it at the top (which registers the builders
with TFDS); the builders import `landmarkjax.data.sources` for the procedural records, so imports between
sources, builders and this module only point one way: tfds_source -> builders -> sources.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

import landmarkjax.data.builders  # noqa: F401  (registers the builders with TFDS)
from landmarkjax.data.davis import decode_palette_png

__all__ = ["TfdsSource", "decode_record"]


def _decode_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _as_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.array([_as_text(v) for v in value.tolist()], dtype=str)
    return value


def decode_record(record: dict[str, Any]) -> dict[str, Any]:
    """Turns a record of a landmarkjax TFDS dataset into a source element.

    Encoded images become arrays (decoded with Pillow): `image` bytes -> uint8 [H, W, 3] RGB, `frames` [T]
    bytes -> uint8 [T, H, W, 3], `masks` [T] palette PNG bytes -> uint8 [T, H, W] object ids. Text fields
    become `str` (or str arrays). Face records without `visibility` get visibility bool [K] all True (every
    annotated point counts), and without `attributes` an empty float32 [0]. Other arrays pass unchanged.

    Args:
      record: one example as `tfds.data_source` returns it.

    Returns:
      a new dict with the decoded fields.
    """
    element = {}
    for key, value in record.items():
        if key == "image" and isinstance(value, bytes):
            element[key] = _decode_rgb(value)
        elif key == "frames" and isinstance(value, np.ndarray) and value.dtype == object:
            element[key] = np.stack([_decode_rgb(frame) for frame in value.tolist()])
        elif key == "masks" and isinstance(value, np.ndarray) and value.dtype == object:
            element[key] = np.stack([decode_palette_png(mask) for mask in value.tolist()])
        else:
            element[key] = _as_text(value)
    if "landmarks" in element:
        element.setdefault("visibility", np.ones(element["landmarks"].shape[:-1], bool))
        element.setdefault("attributes", np.zeros(element["landmarks"].shape[:-2] + (0,), np.float32))
    return element


class TfdsSource:
    """A split of a built landmarkjax TFDS dataset (array_record) as a Grain source of decoded elements.

    Reads with `tfds.data_source` (no TensorFlow) and decodes each record with `decode_record`. The dataset
    must have been built already (see `landmarkjax.data.builders.build_dataset`); nothing is downloaded.

    Args:
      name: the dataset name, e.g. 'face300w', 'celeba_mafl', 'davis2017', 'synthetic_faces'.
      split: the split, e.g. 'train', or any TFDS split expression ('train[:10%]').
      data_dir: the TFDS data folder the dataset was built into.
      config: the builder config name, for datasets that have configs (e.g. 'image_128').
    """

    def __init__(self, name: str, *, split: str, data_dir: str | os.PathLike, config: str | None = None):
        self.name = name
        self.split = split
        self.data_dir = os.fspath(data_dir)
        self.config = config
        self._open()

    def _open(self) -> None:
        builder = tfds.builder(self.name, data_dir=self.data_dir, config=self.config)
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"expected the dataset {builder.name}/{builder.builder_config_name or ''} built in "
                f"{builder.data_dir}; build it first with landmarkjax.data.builders.build_dataset."
            )
        self.info = builder.info
        self._records = builder.as_data_source(split=self.split)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return decode_record(self._records[int(index)])

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "data_dir": self.data_dir, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def __repr__(self) -> str:
        return (
            f"TfdsSource(name={self.name!r}, split={self.split!r}, data_dir={self.data_dir!r}, "
            f"config={self.config!r})"
        )
