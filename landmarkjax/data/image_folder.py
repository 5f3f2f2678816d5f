"""Plain images (no labels) for the self-supervised methods: a folder of files, and crops of any image.

`ImageFolderSource(pattern)` is a Grain random-access source over the files a glob pattern matches (sorted,
so the order and any split are reproducible), each element `{"image": uint8 [H, W, 3] RGB}` decoded with
Pillow (grey and palette files are converted to RGB). `SquareCrop(size)` turns any image element into a
`size` x `size` crop: the crop around `face_box` (as `CropFace`) when the element has one, else the
central square of the image, resized with `warp_image` (box-averaged first when shrinking a lot).
"""

from __future__ import annotations

import glob
import os
from typing import Any

import grain
import numpy as np
from PIL import Image

from landmarkjax.data.augment import FaceAugmentConfig, FaceAugmentParams, augment_face, warp_image

__all__ = ["ImageFolderSource", "SquareCrop", "centre_square_matrix"]


class ImageFolderSource:
    """The image files matched by a glob pattern, as a Grain source of `{"image": uint8 [H, W, 3]}`.

    Args:
      pattern: a glob pattern (`**` recurses), e.g. "/data/photos/*.jpg".
      start, stop: keep the sorted files[start:stop] (a split by position; None = open end).

    Raises:
      FileNotFoundError: the pattern (with the slice) matches no file.
    """

    def __init__(self, pattern: str | os.PathLike, start: int | None = None, stop: int | None = None):
        self.pattern = os.fspath(pattern)
        self.start, self.stop = start, stop
        paths = glob.glob(os.path.expanduser(self.pattern), recursive=True)
        matched = sorted(path for path in paths if os.path.isfile(path))
        self.files = matched[start:stop]
        if not self.files:
            where = f" in [{start}:{stop}] of {len(matched)} files" if matched else ""
            raise FileNotFoundError(
                f"no image files match {self.pattern!r}{where}; give a glob pattern such as '/data/photos/*.jpg'."
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        path = self.files[int(index)]
        try:
            with Image.open(path) as image:
                return {"image": np.asarray(image.convert("RGB"), np.uint8)}
        except OSError as error:
            raise ValueError(f"cannot read {path} as an image: {error}") from error

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.pattern!r}, start={self.start}, stop={self.stop})"


def centre_square_matrix(height: int, width: int, size: int) -> np.ndarray:
    """The `[2, 3]` affine map (pixel centres at integers) from an `[height, width]` image to a `size` x
    `size` picture of its central square (side min(height, width))."""
    side = min(height, width)
    scale = size / side
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    # Output pixel u covers input [x0 + u / scale, x0 + (u + 1) / scale): centres map half a pixel in.
    offset_x = -(x0 - 0.5) * scale - 0.5
    offset_y = -(y0 - 0.5) * scale - 0.5
    return np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]], np.float64)


class SquareCrop(grain.transforms.Map):
    """Grain transform: `{"image": uint8 [H, W, 3], ...}` -> `{"image": uint8 [size, size, 3]}` (other
    fields dropped): the face-box crop with `margin` when the element has `face_box`, else the central
    square."""

    def __init__(self, size: int, margin: float = 0.25):
        if int(size) != size or size < 1:
            raise ValueError(f"size must be a positive integer; got {size!r}.")
        self.size, self.margin = int(size), float(margin)

    def map(self, element: dict[str, Any]) -> dict[str, np.ndarray]:
        if "face_box" in element and "landmarks" in element:
            config = FaceAugmentConfig(output_size=self.size, margin=self.margin)
            return {"image": augment_face(element, FaceAugmentParams(), config, as_float=False)["image"]}
        image = np.asarray(element["image"])
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        matrix = centre_square_matrix(image.shape[0], image.shape[1], self.size)
        return {"image": warp_image(image, matrix, self.size)}

    def __repr__(self) -> str:
        return f"SquareCrop(size={self.size}, margin={self.margin})"
