"""Synthetic faces, private: the parameter types of a face and the checks of the public generators.

A face is rendered from three frozen records: `FaceIdentity` (what stays fixed for a person), `FaceState`
(what moves from frame to frame: pose, expression, gaze, placement) and `FaceScene` (background, light,
occluder, camera). The public names are re-exported by `landmarkjax.data.synthetic.faces`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "FACE_ATTRIBUTE_NAMES",
    "HAIR_STYLES",
    "OCCLUDER_KINDS",
    "MIN_SIZE",
    "FaceIdentity",
    "FaceState",
    "FaceScene",
    "Occluder",
    "check_seed",
    "check_size",
]

FACE_ATTRIBUTE_NAMES: tuple[str, ...] = (
    "yaw",
    "pitch",
    "roll",
    "smile",
    "mouth_open",
    "eyes_open",
    "brow_raise",
    "gaze_x",
    "gaze_y",
)
HAIR_STYLES: tuple[str, ...] = ("bald", "short", "long", "bangs")
OCCLUDER_KINDS: tuple[str, ...] = ("ellipse", "rectangle", "polygon", "hand", "sunglasses")

MIN_SIZE = 16


@dataclasses.dataclass(frozen=True, eq=False)
class FaceIdentity:
    """What stays fixed for a person: shape, colours, hair.

    shape: [68, 3] neutral landmark shape in the head frame (units: half the face width; x right, y down,
      z toward the camera; origin between the eyes).
    hairline: height of the top of the forehead above the eye line (head units). hair_style: one of
      HAIR_STYLES. hair_volume: scale of the skull silhouette that carries the hair (>= 1).
    brow_thickness: head units. *_rgb: [3] floats in [0, 1]; clothes_rgb: [2, 3] (fabric, collar).
    texture_seed: seed of the skin and hair textures attached to the head surface.
    """

    shape: np.ndarray
    hairline: float
    hair_style: str
    hair_volume: float
    brow_thickness: float
    skin_rgb: np.ndarray
    hair_rgb: np.ndarray
    brow_rgb: np.ndarray
    iris_rgb: np.ndarray
    lip_rgb: np.ndarray
    clothes_rgb: np.ndarray
    texture_seed: int


@dataclasses.dataclass(frozen=True)
class FaceState:
    """What changes from frame to frame: pose, expression, gaze and placement (see the module doc).

    center: (x, y) pixels where the head's pivot (the centre of the skull) projects; scale: pixels per
    head unit (half the face width).
    """

    yaw: float
    pitch: float
    roll: float
    smile: float
    mouth_open: float
    eyes_open: float
    brow_raise: float
    gaze_x: float
    gaze_y: float
    center: tuple[float, float]
    scale: float

    def attributes(self) -> np.ndarray:
        """float32 [A] in FACE_ATTRIBUTE_NAMES order."""
        return np.array([getattr(self, name) for name in FACE_ATTRIBUTE_NAMES], np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class Occluder:
    """An object in front of the face. center (x, y) and radii (rx, ry) in pixels, angle in radians.

    kind: one of OCCLUDER_KINDS; 'sunglasses' ignores center, radii and angle and sits on the eyes.
    colours: [2, 3] RGB in [0, 1] (the texture's two colours; a hand uses the first as its skin).
    """

    kind: str
    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float
    colours: np.ndarray
    texture_seed: int


@dataclasses.dataclass(frozen=True, eq=False)
class FaceScene:
    """Everything around the face: background, light, occluder, camera blur and noise.

    light_direction: [3] unit vector toward the light in the camera frame (x right, y down, z toward the
    camera). ambient in [0, 1] (1 = flat, unshaded). specular >= 0. blur_sigma in pixels (0 = sharp).
    noise_sigma: standard deviation of additive Gaussian noise on [0, 1] intensities. tint: [3] per-channel
    gains (white balance).
    """

    background_seed: int
    light_direction: np.ndarray
    ambient: float
    specular: float
    occluder: Occluder | None
    blur_sigma: float
    noise_sigma: float
    noise_seed: int
    tint: np.ndarray


def check_seed(seed: int, name: str = "seed") -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")


def check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels), got {size!r}")
