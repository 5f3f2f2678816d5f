"""Per-example numpy augmentation that moves images and landmarks together, as Grain transforms.

Geometry uses 2x3 affine matrices `A` mapping input pixel coordinates to output pixel coordinates,
`out = A[:, :2] @ (x, y) + A[:, 2]`, with pixel centres at integer coordinates (OpenCV's convention). Images
are resampled bilinearly with Pillow (`Image.transform`), which is exact in that convention (checked against
`cv2.warpAffine` in the tests); strong shrinking first box-averages the image by an integer factor so the
crop does not alias.

Face elements hold `image` uint8 [H, W, 3] (or `frames` [T, H, W, 3] for clips, one warp shared by all
frames), `landmarks` [(T,) K, 2], `visibility` [(T,) K], `face_box` [(T,) 4] (x0, y0, x1, y1) and optionally
`attributes` [(T,) A]; video elements hold `frames` [T, H, W, 3] and `masks` [T, H, W].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import grain
import numpy as np
from PIL import Image

from landmarkjax.face_layout import MIRROR_NEGATED_ATTRIBUTES, flip_permutation

__all__ = [
    "CropFace",
    "FaceAugmentConfig",
    "FaceAugmentParams",
    "RandomFaceAugment",
    "RandomVideoCrop",
    "augment_face",
    "color_jitter",
    "face_augmentation",
    "face_crop_matrix",
    "sample_face_augmentation",
    "transform_points",
    "warp_image",
]

# ITU-R BT.601 luma weights, as Pillow's "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def face_crop_matrix(
    face_box: np.ndarray,
    output_size: int,
    *,
    margin: float = 0.25,
    scale: float = 1.0,
    rotation: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """The affine map from an image to a square crop around a face box.

    The crop is centred on the box centre and spans `max(box width, box height) * (1 + margin) / scale`
    input pixels, rotated by `rotation`, shifted by `shift * output_size` output pixels and optionally
    mirrored left/right.

    Args:
      face_box: [4] (x0, y0, x1, y1) pixels, x1 > x0 or y1 > y0.
      output_size: the crop's side S in pixels.
      margin: extra context around the box, as a fraction of its longer side.
      scale: zoom factor (> 1 zooms in).
      rotation: radians; positive turns the content clockwise as displayed (y points down), which adds to
        the synthetic faces' `roll`.
      shift: (dx, dy) translation as a fraction of the crop side.
      flip: mirror the crop left/right (x -> S - 1 - x).

    Returns:
      float64 [2, 3] matrix A: output (x, y) = A[:, :2] @ input (x, y) + A[:, 2].
    """
    face_box = np.asarray(face_box, np.float64)
    if face_box.shape != (4,) or not np.all(np.isfinite(face_box)):
        raise ValueError(f"face_box: expected a finite [4] (x0, y0, x1, y1) box, got {face_box}.")
    side = max(face_box[2] - face_box[0], face_box[3] - face_box[1]) * (1.0 + margin) / scale
    if not side > 0:
        raise ValueError(f"face_box: expected a box with positive width or height, got {face_box}.")
    if output_size < 1:
        raise ValueError(f"output_size: expected a positive pixel count, got {output_size}.")
    centre = (face_box[:2] + face_box[2:]) / 2.0
    zoom = output_size / side
    cos, sin = math.cos(rotation), math.sin(rotation)
    linear = zoom * np.array([[cos, -sin], [sin, cos]])
    offset = (output_size - 1) / 2.0 + np.asarray(shift, np.float64) * output_size - linear @ centre
    matrix = np.concatenate([linear, offset[:, None]], axis=1)
    if flip:
        matrix = np.array([[-1.0, 0.0, output_size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies an affine matrix to points.

    Args:
      points: [..., 2] (x, y) pixels.
      matrix: [2, 3] (output = matrix[:, :2] @ p + matrix[:, 2]).

    Returns:
      float32 [..., 2] (x, y) pixels.
    """
    points = np.asarray(points, np.float64)
    matrix = np.asarray(matrix, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def _source_region(
    shape: tuple[int, int],
    linear: np.ndarray,
    offset: np.ndarray,
    output_size: tuple[int, int],
    factor: int,
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((y_lo, y_hi), (x_lo, x_hi)) of the input that the output samples, with a 2-pixel border for the
    bilinear neighbours, aligned to `factor` so a box-average reduction sees the same blocks; None if the
    output sees none of the input."""
    width, height = output_size
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    source = (corners - offset) @ np.linalg.inv(linear).T
    limits = []
    for axis, size in ((1, shape[0]), (0, shape[1])):
        low = max(0, int(math.floor(source[:, axis].min())) - 2 * factor) // factor * factor
        high = min(size, int(math.ceil(source[:, axis].max())) + 3 * factor)
        if low >= high:
            return None
        limits.append((low, high))
    return limits[0], limits[1]


def warp_image(
    image: np.ndarray, matrix: np.ndarray, output_size: int | tuple[int, int], *, nearest: bool = False
) -> np.ndarray:
    """Resamples an image through an affine map (output pixel p takes input point A^-1 p).

    Input points within half a pixel of the image take the edge value; points further outside give 0.
    With bilinear sampling, a map that shrinks by more than 2x first box-averages the image by the
    integer factor floor(1 / shrink), so the result does not alias.

    Args:
      image: uint8 [H, W, C] (C = 1 or 3) or uint8 [H, W] (e.g. object ids, with `nearest=True`).
      matrix: [2, 3] input -> output pixel coordinates (pixel centres at integers), invertible.
      output_size: S or (width, height) of the result in pixels.
      nearest: nearest-neighbour instead of bilinear sampling (for masks and ids).

    Returns:
      uint8 [height, width, C] (or [height, width] for a 2D input).
    """
    image = np.asarray(image)
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] not in (1, 3))
    ):
        raise ValueError(
            f"image: expected uint8 [H, W], [H, W, 1] or [H, W, 3], got {image.dtype} {image.shape}."
        )
    width, height = (output_size, output_size) if isinstance(output_size, int) else output_size
    linear, offset = np.asarray(matrix, np.float64)[:, :2], np.asarray(matrix, np.float64)[:, 2]
    determinant = np.linalg.det(linear)
    if not abs(determinant) > 1e-12:
        raise ValueError(f"matrix: expected an invertible affine map, got {matrix}.")
    squeeze = image.ndim == 3 and image.shape[2] == 1
    if squeeze:
        image = image[..., 0]
    factor = int(math.floor(1.0 / math.sqrt(abs(determinant)))) if not nearest else 1
    factor = max(factor, 1)
    region = _source_region(image.shape[:2], linear, offset, (width, height), factor)
    if region is None:
        blank = np.zeros((height, width) + image.shape[2:], np.uint8)
        return blank[..., None] if squeeze else blank
    (y_lo, y_hi), (x_lo, x_hi) = region
    # Only the part of the image that the output can see is handed to Pillow (large photos, small faces).
    pil_image = Image.fromarray(np.ascontiguousarray(image[y_lo:y_hi, x_lo:x_hi]))
    offset = offset + linear @ np.array([x_lo, y_lo], np.float64)
    if factor >= 2:
        # Reduced pixel (i, j) averages input pixels k*i .. k*i + k-1, so its centre is at k*i + (k-1)/2.
        pil_image = pil_image.reduce(factor)
        offset = offset + linear @ np.full(2, (factor - 1) / 2.0)
        linear = linear * factor
    inverse = np.linalg.inv(linear)
    # Pillow puts pixel centres at +0.5: input_pil = inverse @ (output_pil - 0.5) - inverse @ offset + 0.5.
    inverse_offset = -inverse @ offset + 0.5 - inverse @ np.full(2, 0.5)
    data = (*inverse[0], inverse_offset[0], *inverse[1], inverse_offset[1])
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    warped = np.asarray(pil_image.transform((width, height), Image.Transform.AFFINE, data, resample=resample))
    return warped[..., None] if squeeze else warped


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Scales brightness, contrast and saturation, then clips to [0, 1].

    brightness multiplies every value; contrast blends with the image's mean luma; saturation blends
    each pixel with its luma (BT.601 weights). Factors of 1 leave the image unchanged (up to the clip).

    Args:
      image: float [..., H, W, 3] RGB in [0, 1].
      brightness, contrast, saturation: non-negative factors.

    Returns:
      float32 [..., H, W, 3] in [0, 1].
    """
    image = np.asarray(image, np.float32) * np.float32(brightness)
    luma = image @ _LUMA
    mean = luma.mean(axis=(-1, -2), keepdims=True)[..., None]
    image = (image - mean) * np.float32(contrast) + mean
    luma = (image @ _LUMA)[..., None]
    image = (image - luma) * np.float32(saturation) + luma
    return np.clip(image, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class FaceAugmentConfig:
    """Ranges of the random face augmentation.

    Attributes:
      output_size: side S of the square output crop, pixels.
      margin: context around the face box, as a fraction of its longer side.
      scale_range: (min, max) zoom factor, sampled log-uniformly.
      max_rotation: largest in-plane rotation, degrees (uniform in [-max, max]).
      max_shift: largest translation of the crop, as a fraction of S (uniform per axis).
      flip_probability: probability of a left/right mirror (landmarks permuted by `flip_permutation`).
      brightness, contrast, saturation: jitter strengths d; each factor is uniform in [1 - d, 1 + d].
      attribute_names: names of the element's attributes, e.g. `FACE_ATTRIBUTE_NAMES` for the synthetic
        faces; 'yaw', 'roll' and 'gaze_x' change sign under a mirror and 'roll' (radians, clockwise in the
        image) gains the in-plane rotation. Empty (the default): attributes pass unchanged, right for
        attributes that a crop or a mirror does not change (CelebA's).
    """

    output_size: int = 128
    margin: float = 0.25
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_rotation: float = 15.0
    max_shift: float = 0.05
    flip_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    attribute_names: tuple[str, ...] = ()

    def __post_init__(self):
        low, high = self.scale_range
        checks = {
            "output_size": (self.output_size >= 1, "a positive pixel count"),
            "margin": (self.margin > -1.0, "greater than -1"),
            "scale_range": (0.0 < low <= high, "(min, max) with 0 < min <= max"),
            "max_rotation": (self.max_rotation >= 0.0, "non-negative degrees"),
            "max_shift": (self.max_shift >= 0.0, "non-negative"),
            "flip_probability": (0.0 <= self.flip_probability <= 1.0, "in [0, 1]"),
            "brightness": (0.0 <= self.brightness <= 1.0, "in [0, 1]"),
            "contrast": (0.0 <= self.contrast <= 1.0, "in [0, 1]"),
            "saturation": (0.0 <= self.saturation <= 1.0, "in [0, 1]"),
        }
        for name, (valid, expected) in checks.items():
            if not valid:
                raise ValueError(f"{name}: expected {expected}, got {getattr(self, name)!r}.")
        object.__setattr__(self, "attribute_names", tuple(self.attribute_names))


@dataclasses.dataclass(frozen=True)
class FaceAugmentParams:
    """One draw of the face augmentation: rotation in radians, shift as a fraction of S, jitter factors."""

    scale: float = 1.0
    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


def sample_face_augmentation(rng: np.random.Generator, config: FaceAugmentConfig) -> FaceAugmentParams:
    """Draws augmentation parameters from `config`'s ranges with `rng` (same rng state -> same draw)."""
    low, high = config.scale_range
    return FaceAugmentParams(
        scale=float(np.exp(rng.uniform(np.log(low), np.log(high)))),
        rotation=float(np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation))),
        shift=tuple(float(v) for v in rng.uniform(-config.max_shift, config.max_shift, size=2)),
        flip=bool(rng.random() < config.flip_probability),
        brightness=float(rng.uniform(1.0 - config.brightness, 1.0 + config.brightness)),
        contrast=float(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast)),
        saturation=float(rng.uniform(1.0 - config.saturation, 1.0 + config.saturation)),
    )


def _box_of_points(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=-2), points.max(axis=-2)], axis=-1).astype(np.float32)


def _adjust_attributes(
    attributes: np.ndarray, names: tuple[str, ...], params: FaceAugmentParams
) -> np.ndarray:
    attributes = np.array(attributes, np.float32)
    if attributes.shape[-1] != len(names):
        raise ValueError(
            f"attribute_names: expected {attributes.shape[-1]} names for the element's attributes, "
            f"got {len(names)}."
        )
    if "roll" in names:
        attributes[..., names.index("roll")] += params.rotation
    if params.flip:
        for name in MIRROR_NEGATED_ATTRIBUTES:
            if name in names:
                attributes[..., names.index(name)] *= -1.0
    return attributes


def augment_face(
    element: dict[str, Any], params: FaceAugmentParams, config: FaceAugmentConfig, *, as_float: bool = True
) -> dict[str, Any]:
    """Crops, rotates, scales, shifts, mirrors and colour-jitters a face example, landmarks included.

    The crop is `face_crop_matrix(box, S, margin, scale, rotation, shift, flip)` around the element's face
    box (for a clip, the box around every frame's box, and one warp for all frames, so motion is kept).
    Landmarks are mapped by the same matrix (and permuted when mirrored); a landmark that leaves the crop
    (outside [-0.5, S - 0.5]) becomes invisible. `face_box` becomes the box around the mapped box corners.

    Args:
      element: a face element (see the module docstring); the image is uint8.
      params: the augmentation draw.
      config: output size, margin and attribute names (the ranges are not used here).
      as_float: return the image as float32 in [0, 1] after colour jitter; if False, return the warped
        uint8 image and ignore the jitter factors.

    Returns:
      a new element with the same keys: image (or frames) [(T,) S, S, 3] float32 in [0, 1] (or uint8),
      landmarks float32, visibility bool, face_box float32 [(T,) 4], attributes float32; other keys copied.
    """
    image_key = "image" if "image" in element else "frames"
    images = np.asarray(element[image_key])
    landmarks = np.asarray(element["landmarks"], np.float32)
    boxes = np.asarray(element["face_box"], np.float32)
    union_box = np.concatenate([boxes[..., :2].reshape(-1, 2).min(0), boxes[..., 2:].reshape(-1, 2).max(0)])
    size = config.output_size
    matrix = face_crop_matrix(
        union_box,
        size,
        margin=config.margin,
        scale=params.scale,
        rotation=params.rotation,
        shift=params.shift,
        flip=params.flip,
    )
    if image_key == "image":
        warped = warp_image(images, matrix, size)
    else:
        warped = np.stack([warp_image(frame, matrix, size) for frame in images])
    if as_float:
        warped = color_jitter(
            warped / np.float32(255.0), params.brightness, params.contrast, params.saturation
        )

    points = transform_points(landmarks, matrix)
    visibility = np.asarray(element.get("visibility", np.ones(landmarks.shape[:-1], bool)), bool)
    if params.flip:
        permutation = flip_permutation(landmarks.shape[-2])
        points, visibility = points[..., permutation, :], visibility[..., permutation]
    inside = np.all((points >= -0.5) & (points <= size - 0.5), axis=-1)
    corners = np.stack(
        [boxes[..., [0, 1]], boxes[..., [2, 1]], boxes[..., [0, 3]], boxes[..., [2, 3]]], axis=-2
    )
    result = dict(element)
    result[image_key] = warped
    result["landmarks"] = points
    result["visibility"] = visibility & inside
    result["face_box"] = _box_of_points(transform_points(corners, matrix))
    if "attributes" in element and config.attribute_names:
        result["attributes"] = _adjust_attributes(element["attributes"], config.attribute_names, params)
    return result


class RandomFaceAugment(grain.transforms.RandomMap):
    """Grain transform: a random `augment_face` per element, drawn from the record's own rng.

    Grain seeds each record's rng from the sampler seed and the record index, so the augmentation of an
    element is reproducible and independent of batching, sharding and worker count.
    """

    def __init__(self, config: FaceAugmentConfig = FaceAugmentConfig()):
        self.config = config

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return augment_face(element, sample_face_augmentation(rng, self.config), self.config)

    def __repr__(self) -> str:
        return f"RandomFaceAugment({self.config})"


def face_augmentation(data: Any, *, scale: int = 1, attribute_names: tuple[str, ...] = ()) -> RandomFaceAugment:
    """The training augmentation that a face config's `data` section describes.

    Args:
      data: a config's `data` section: `image_size`, `crop_margin` and `augment` (`scale_range`,
        `max_rotation`, `max_shift`, `flip_probability`, `colour_jitter` for brightness, contrast and
        saturation alike).
      scale: crops `scale * data.image_size` pixels wide (SBR tracks on larger clips than it detects on).
      attribute_names: the elements' attribute names, so that mirroring and rotation update them.

    Returns:
      a `RandomFaceAugment` (one draw per element: for a clip, the same for all of its frames).
    """
    augment = data.augment
    return RandomFaceAugment(
        FaceAugmentConfig(
            output_size=data.image_size * scale,
            margin=data.crop_margin,
            scale_range=tuple(augment.scale_range),
            max_rotation=augment.max_rotation,
            max_shift=augment.max_shift,
            flip_probability=augment.flip_probability,
            brightness=augment.colour_jitter,
            contrast=augment.colour_jitter,
            saturation=augment.colour_jitter,
            attribute_names=tuple(attribute_names),
        )
    )


class CropFace(grain.transforms.Map):
    """Grain transform: the deterministic crop around the face box (evaluation), image kept uint8."""

    def __init__(self, output_size: int = 128, margin: float = 0.25):
        self.config = FaceAugmentConfig(output_size=output_size, margin=margin)

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        return augment_face(element, FaceAugmentParams(), self.config, as_float=False)

    def __repr__(self) -> str:
        return f"CropFace(output_size={self.config.output_size}, margin={self.config.margin})"


class RandomVideoCrop(grain.transforms.RandomMap):
    """Grain transform: a random clip of a video with a random square crop, resized, maybe mirrored.

    Takes `num_frames` consecutive frames from a random start, a square window of side
    `u * min(H, W)` (u uniform in `scale_range`) at a random position, resized to `output_size`
    (bilinear for frames, nearest for masks) and mirrored with probability `flip_probability`.
    Input: frames uint8 [T, H, W, 3], masks uint8 [T, H, W] with T >= num_frames.
    Output: frames uint8 [num_frames, S, S, 3], masks uint8 [num_frames, S, S]; other per-frame arrays
    (leading dimension T, e.g. DAVIS's frame_names) cut to the same frames; other keys copied.
    """

    def __init__(
        self,
        num_frames: int,
        output_size: int,
        scale_range: tuple[float, float] = (0.6, 1.0),
        flip_probability: float = 0.5,
    ):
        if num_frames < 1 or output_size < 1:
            raise ValueError(f"num_frames and output_size: expected >= 1, got {num_frames}, {output_size}.")
        if not 0.0 < scale_range[0] <= scale_range[1] <= 1.0:
            raise ValueError(f"scale_range: expected (min, max) with 0 < min <= max <= 1, got {scale_range}.")
        if not 0.0 <= flip_probability <= 1.0:
            raise ValueError(f"flip_probability: expected a value in [0, 1], got {flip_probability}.")
        self.num_frames = num_frames
        self.output_size = output_size
        self.scale_range = scale_range
        self.flip_probability = flip_probability

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        frames, masks = np.asarray(element["frames"]), np.asarray(element["masks"])
        length, height, width = frames.shape[:3]
        if length < self.num_frames:
            raise ValueError(f"frames: expected at least num_frames={self.num_frames} frames, got {length}.")
        start = int(rng.integers(0, length - self.num_frames + 1))
        side = rng.uniform(*self.scale_range) * min(height, width)
        x0 = rng.uniform(-0.5, width - 0.5 - side)
        y0 = rng.uniform(-0.5, height - 0.5 - side)
        zoom = self.output_size / side
        # Maps the window's outer edges [x0, x0 + side] onto the output's outer edges [-0.5, S - 0.5].
        matrix = np.array([[zoom, 0.0, -0.5 - zoom * x0], [0.0, zoom, -0.5 - zoom * y0]])
        if rng.random() < self.flip_probability:
            matrix[0] = [-zoom, 0.0, self.output_size - 0.5 + zoom * x0]
        clip = slice(start, start + self.num_frames)
        result = {
            key: value[clip]
            if isinstance(value, np.ndarray) and value.ndim and len(value) == length
            else value
            for key, value in element.items()
        }
        result["frames"] = np.stack([warp_image(f, matrix, self.output_size) for f in frames[clip]])
        result["masks"] = np.stack(
            [warp_image(m, matrix, self.output_size, nearest=True) for m in masks[clip]]
        )
        return result

    def __repr__(self) -> str:
        return (
            f"RandomVideoCrop(num_frames={self.num_frames}, output_size={self.output_size}, "
            f"scale_range={self.scale_range}, flip_probability={self.flip_probability})"
        )
