"""Face landmarks on your own images with a trained face-landmark method (supervised CPM or SBR).

    method = build_method(config)                      # e.g. the config saved in a workdir
    faces = predict_landmarks(method, params, [image_a, image_b], boxes=[box_a, None])
    picture = draw_landmarks_on_image(image_a, faces[0].points)

Each image is cropped exactly as evaluation crops a dataset's faces (`landmarkjax.data.augment.CropFace`):
a square of side `max(box width, box height) * (1 + config.data.crop_margin)` centred on the face box,
resampled to `config.data.image_size` pixels with the same affine map and resampler; all crops go through
the model in one batch, and the predicted points are mapped back to the original image's pixels by the
inverse of that map. Points are (x, y) with pixel centres at integer coordinates, like every landmark in
the library.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from landmarkjax.data.augment import face_crop_matrix, transform_points, warp_image
from landmarkjax.data.visualize import _as_uint8_images, _draw_dots, _point_colours

__all__ = [
    "FaceLandmarks",
    "crop_faces",
    "draw_landmarks_on_image",
    "load_image",
    "predict_landmarks",
]


@dataclasses.dataclass(frozen=True)
class FaceLandmarks:
    """The landmarks predicted on one image.

    Attributes:
      points: float32 [K, 2] (x, y) in the original image's pixels (may lie outside the image when the
        crop does).
      box: float32 [4] (x0, y0, x1, y1) the face box used, original pixels.
      crop_matrix: float64 [2, 3] the affine map from original pixels to network-input pixels.
    """

    points: np.ndarray
    box: np.ndarray
    crop_matrix: np.ndarray


def load_image(path: str | os.PathLike | BinaryIO) -> np.ndarray:
    """An image file (a path or an open binary file) as uint8 [H, W, 3] RGB (greyscale, palette and RGBA
    files are converted)."""
    with Image.open(path if hasattr(path, "read") else os.fspath(path)) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


def _as_rgb_uint8(image: Any, index: int) -> np.ndarray:
    """uint8 [H, W, 3] from uint8 or float in [0, 1], [H, W] / [H, W, 1] / [H, W, 3] / [H, W, 4] (alpha
    dropped)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(
            f"images[{index}]: expected [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {image.shape}."
        )
    image = image[..., :3] if image.shape[2] == 4 else image
    image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    if image.dtype != np.uint8:
        image = _as_uint8_images(image[None])[0]  # float in [0, 1] -> round(255 x); other dtypes rejected
    return image


def crop_faces(
    images: Sequence[Any], boxes: Sequence[Any] | None, image_size: int, crop_margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network inputs of `images`, cropped as evaluation crops (see the module docstring).

    Args:
      images: N images, each uint8 or float in [0, 1], [H, W] / [H, W, 1] / [H, W, 3] / [H, W, 4], any size.
      boxes: None, or N entries each None or (x0, y0, x1, y1) in that image's pixels. A missing box is the
        whole image, (0, 0, W - 1, H - 1).
      image_size: S, the side of the crops.
      crop_margin: context around the box, as a fraction of its longer side.

    Returns:
      crops float32 [N, S, S, 3] in [0, 1], matrices float64 [N, 2, 3] (original -> crop pixels), boxes
      float32 [N, 4].
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if len(images) == 0:
        raise ValueError("images: expected at least one image.")
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes: expected one box (or None) per image, {len(images)}, got {len(boxes)}.")
    crops, matrices, used = [], [], []
    for index, image in enumerate(images):
        image = _as_rgb_uint8(image, index)
        box = None if boxes is None else boxes[index]
        height, width = image.shape[:2]
        box = np.array([0.0, 0.0, width - 1.0, height - 1.0] if box is None else box, np.float64)
        if box.shape != (4,):
            raise ValueError(f"boxes[{index}]: expected (x0, y0, x1, y1), got {box}.")
        matrix = face_crop_matrix(box, image_size, margin=crop_margin)
        crops.append(warp_image(image, matrix, image_size))
        matrices.append(matrix)
        used.append(box.astype(np.float32))
    return np.stack(crops).astype(np.float32) / np.float32(255.0), np.stack(matrices), np.stack(used)


def _to_original(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop pixels [K, 2] -> original pixels through the inverse of the 2x3 crop matrix."""
    inverse = np.linalg.inv(matrix[:, :2])
    return transform_points(points, np.concatenate([inverse, -inverse @ matrix[:, 2:]], axis=1))


def predict_landmarks(
    method: Any,
    params: Any,
    images: Sequence[Any],
    boxes: Sequence[Any] | None = None,
) -> list[FaceLandmarks]:
    """Landmarks of the face in each image, in that image's pixels.

    Args:
      method: a face-landmark method (`SupervisedMethod`, `SBRMethod`): anything with
        `predict(params, images [B, S, S, 3]) -> (landmarks [B, K, 2] crop pixels, ...)` and
        `config.data.image_size` (S) / `config.data.crop_margin`.
      params: the model parameters (e.g. `state.params` of a restored checkpoint).
      images: N images of any sizes (a list, or an array [N, H, W, 3]); uint8 or float in [0, 1], RGB
        (greyscale and RGBA accepted).
      boxes: None, or N face boxes (x0, y0, x1, y1) in each image's pixels, None meaning the whole image.
        Boxes as tight as the training data's (the box around the landmarks) give the best results.

    Returns:
      N `FaceLandmarks` (points [K, 2] original pixels, box, crop matrix), in the order of `images`.
    """
    if not callable(getattr(method, "predict", None)):
        raise ValueError(
            f"method {method.name!r} does not predict face landmarks (it has no predict(params, images)); "
            "inference on images supports the face-landmark methods (supervised, sbr)."
        )
    data = method.config.data
    crops, matrices, used = crop_faces(images, boxes, data.image_size, data.crop_margin)
    predicted, _ = jax.jit(method.predict)(params, jnp.asarray(crops))
    predicted = np.asarray(predicted, np.float64)
    return [
        FaceLandmarks(points=_to_original(points, matrix).astype(np.float32), box=box, crop_matrix=matrix)
        for points, matrix, box in zip(predicted, matrices, used)
    ]


def draw_landmarks_on_image(image: Any, points: np.ndarray, *, radius: float | None = None) -> np.ndarray:
    """The image with its landmarks drawn as dots (68 points coloured by face region, others by index).

    Args:
      image: uint8 or float in [0, 1], [H, W] / [H, W, 1] / [H, W, 3] / [H, W, 4], the original image.
      points: [K, 2] (x, y) original pixels (e.g. `FaceLandmarks.points`); points off the image are skipped.
      radius: dot radius in pixels; None scales it with the image (min(H, W) / 150, at least 1).

    Returns:
      uint8 [H, W, 3].
    """
    image = _as_rgb_uint8(image, 0)
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points: expected [K, 2] (x, y), got {points.shape}.")
    radius = max(1.0, min(image.shape[:2]) / 150.0) if radius is None else float(radius)
    picture = Image.fromarray(image)
    _draw_dots(picture, points, np.ones(len(points), bool), _point_colours(len(points)), radius)
    return np.asarray(picture)
