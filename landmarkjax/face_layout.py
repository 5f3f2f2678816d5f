"""Face-layout facts, in one place: the 68-point iBUG 300-W and 5-point CelebA layouts, and mirroring.

What lives here: index groups and region names of the 68 points, the eye indices of both layouts (the
inter-ocular normaliser of `landmarkjax.metrics.nme`), the left/right permutation of each layout for a
horizontally mirrored face, and which face attributes change sign under that mirror.

Why at the top of the package (and not in `landmarkjax.data`): `landmarkjax.metrics` is part of the
functional API that other projects import, below the data layer, and must not depend on it (the data
package's modules pull in Grain, Pillow and TFDS). This module depends only on numpy, so every layer
(metrics, data, methods) can import it; `tests/test_layers.py` keeps it that way.

68-point layout (iBUG 300-W). Indices are 0-based. "Left" and "right" are the image's left and right for a frontal face (the iBUG
meaning): points 36-41 are the eye that appears on the image's left (the subject's right eye), 36 its
outer corner; 45 is the outer corner of the other eye.

    jaw 0-16 (0 at the image-left ear level, 8 the chin)
    left brow 17-21 (outer to inner), right brow 22-26 (inner to outer)
    nose bridge 27-30 (top to tip), nostrils 31-35 (image left to right, 33 below the tip)
    left eye 36-41, right eye 42-47 (each clockwise in the image from its left corner)
    outer lips 48-59 (48 the image-left corner, 51 top centre, 54 right corner, 57 bottom centre)
    inner lips 60-67 (60 left corner, 62 top centre, 64 right corner, 66 bottom centre)

5-point layout (CelebA / MAFL): 0 left eye centre, 1 right eye centre, 2 nose tip, 3 left mouth corner,
4 right mouth corner (left and right as in the image, as for the 68 points).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CELEBA_ATTRIBUTE_NAMES",
    "NUM_FACE_LANDMARKS",
    "JAW",
    "LEFT_BROW",
    "RIGHT_BROW",
    "NOSE_BRIDGE",
    "NOSTRILS",
    "NOSE",
    "LEFT_EYE",
    "RIGHT_EYE",
    "OUTER_LIPS",
    "INNER_LIPS",
    "MOUTH",
    "FACE_REGIONS",
    "FACE_REGION_NAMES",
    "LANDMARK_REGION",
    "LEFT_OUTER_EYE_CORNER",
    "RIGHT_OUTER_EYE_CORNER",
    "FLIP_PERMUTATION_68",
    "NUM_FIVE_POINT_LANDMARKS",
    "FIVE_POINT_LEFT_EYE",
    "FIVE_POINT_RIGHT_EYE",
    "FLIP_PERMUTATION_5",
    "MIRROR_NEGATED_ATTRIBUTES",
    "flip_permutation",
    "flip_landmarks",
]

NUM_FACE_LANDMARKS = 68

JAW = np.arange(0, 17)
LEFT_BROW = np.arange(17, 22)
RIGHT_BROW = np.arange(22, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSTRILS = np.arange(31, 36)
NOSE = np.arange(27, 36)
LEFT_EYE = np.arange(36, 42)
RIGHT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
MOUTH = np.arange(48, 68)

LEFT_OUTER_EYE_CORNER = 36
RIGHT_OUTER_EYE_CORNER = 45

# Regions in drawing/colouring order; together they partition the 68 indices.
FACE_REGIONS: dict[str, np.ndarray] = {
    "jaw": JAW,
    "left_brow": LEFT_BROW,
    "right_brow": RIGHT_BROW,
    "nose_bridge": NOSE_BRIDGE,
    "nostrils": NOSTRILS,
    "left_eye": LEFT_EYE,
    "right_eye": RIGHT_EYE,
    "outer_lips": OUTER_LIPS,
    "inner_lips": INNER_LIPS,
}
FACE_REGION_NAMES: tuple[str, ...] = tuple(FACE_REGIONS)

# LANDMARK_REGION[i] is the index into FACE_REGION_NAMES of the region holding landmark i.
LANDMARK_REGION = np.zeros(NUM_FACE_LANDMARKS, np.int32)
for _region_id, _indices in enumerate(FACE_REGIONS.values()):
    LANDMARK_REGION[_indices] = _region_id


def _flip_permutation() -> np.ndarray:
    pairs = []
    pairs += [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows: outer-to-inner <-> outer-to-inner
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    permutation = np.arange(NUM_FACE_LANDMARKS, dtype=np.int32)
    for a, b in pairs:
        permutation[a], permutation[b] = b, a
    return permutation


# Point i of a horizontally mirrored face is point FLIP_PERMUTATION_68[i] of the original face.
FLIP_PERMUTATION_68 = _flip_permutation()
FLIP_PERMUTATION_68.setflags(write=False)

NUM_FIVE_POINT_LANDMARKS = 5
FIVE_POINT_LEFT_EYE = 0
FIVE_POINT_RIGHT_EYE = 1

# The same for the 5-point layout: the eyes swap, the nose stays, the mouth corners swap.
FLIP_PERMUTATION_5 = np.array([1, 0, 2, 4, 3], np.int32)
FLIP_PERMUTATION_5.setflags(write=False)

# Face attributes (names as in `landmarkjax.data.synthetic.FACE_ATTRIBUTE_NAMES`) whose sign flips when
# the face is mirrored left/right: head yaw and roll, and the horizontal gaze. The others are unchanged.
MIRROR_NEGATED_ATTRIBUTES: tuple[str, ...] = ("yaw", "roll", "gaze_x")


# CelebA's 40 binary attributes, in the order of `list_attr_celeba.txt` (and of the celeba_mafl dataset's
# `attributes` [40]: 1 present, 0 absent). None of them changes under a left/right mirror.
CELEBA_ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


def flip_permutation(num_landmarks: int) -> np.ndarray:
    """The left/right permutation for a mirrored face: point i of the mirror image is point perm[i].

    Args:
      num_landmarks: 68 (iBUG 300-W layout) or 5 (CelebA: eyes, nose, mouth corners).

    Returns:
      int32 [num_landmarks].
    """
    if num_landmarks == NUM_FACE_LANDMARKS:
        return np.asarray(FLIP_PERMUTATION_68, np.int32)
    if num_landmarks == NUM_FIVE_POINT_LANDMARKS:
        return FLIP_PERMUTATION_5
    raise ValueError(f"num_landmarks: expected 68 or 5 for a known flip permutation, got {num_landmarks}.")


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image, in the same 68-point order.

    Args:
      landmarks: [..., 68, 2] (x, y) in pixels, pixel centres at integer coordinates.
      width: image width W in pixels; a pixel centre x maps to W - 1 - x.

    Returns:
      [..., 68, 2] (x, y) pixels: `out[..., i] = mirror(landmarks[..., FLIP_PERMUTATION_68[i]])`.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2:] != (NUM_FACE_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape [..., 68, 2], got {landmarks.shape}")
    if width < 1:
        raise ValueError(f"width must be a positive pixel count, got {width}")
    flipped = landmarks[..., FLIP_PERMUTATION_68, :].copy()
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped
