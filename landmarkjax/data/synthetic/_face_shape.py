"""3D geometry of the synthetic face: mean shape, identity and expression deformations, pose, projection.

Head frame (units: half the face width): x to the image's right for a frontal face, y down, z toward
the camera; the origin is the midpoint of the eye line. A camera-frame point is
`center + scale * R(yaw, pitch, roll) @ (p - HEAD_PIVOT)` with orthographic (weak perspective) projection
onto (x, y); the camera looks along -z, so a surface faces the camera when its normal has z > 0.
"""

from __future__ import annotations

import numpy as np

from landmarkjax.face_layout import FLIP_PERMUTATION_68, LEFT_EYE, NUM_FACE_LANDMARKS, RIGHT_EYE

# Point the head rotates about (roughly the centre of the skull).
HEAD_PIVOT = np.array([0.0, 0.45, -0.9])
# Ellipsoids (centre, radii) in the head frame: the skull whose silhouette carries the hair, and a smooth
# stand-in for the face surface that gives per-pixel shading normals and per-landmark normals.
CRANIUM_CENTER = np.array([0.0, -0.25, -0.8])
CRANIUM_RADII = np.array([1.08, 1.28, 1.2])
FACE_SURFACE_CENTER = np.array([0.0, 0.45, -0.75])
FACE_SURFACE_RADII = np.array([1.02, 1.3, 1.0])

# Points on the image-left half and on the midline; the right half is their mirror image.
_LEFT_AND_MIDLINE_POINTS = {
    # jaw, ear level to chin
    0: (-1.00, 0.05, -0.40),
    1: (-0.99, 0.30, -0.38),
    2: (-0.95, 0.55, -0.34),
    3: (-0.89, 0.79, -0.28),
    4: (-0.80, 1.01, -0.20),
    5: (-0.67, 1.21, -0.10),
    6: (-0.51, 1.37, 0.00),
    7: (-0.27, 1.50, 0.10),
    8: (0.00, 1.55, 0.14),
    # left brow, outer to inner
    17: (-0.78, -0.26, -0.08),
    18: (-0.64, -0.38, 0.04),
    19: (-0.47, -0.43, 0.10),
    20: (-0.31, -0.42, 0.14),
    21: (-0.15, -0.37, 0.16),
    # nose bridge (top to tip) and nostrils
    27: (0.00, -0.12, 0.16),
    28: (0.00, 0.12, 0.26),
    29: (0.00, 0.37, 0.36),
    30: (0.00, 0.62, 0.46),
    31: (-0.22, 0.74, 0.20),
    32: (-0.11, 0.78, 0.26),
    33: (0.00, 0.80, 0.30),
    # left eye: outer corner, upper lid (outer, inner), inner corner, lower lid (inner, outer)
    36: (-0.64, 0.02, -0.02),
    37: (-0.52, -0.07, 0.06),
    38: (-0.36, -0.07, 0.08),
    39: (-0.23, 0.01, 0.06),
    40: (-0.36, 0.07, 0.07),
    41: (-0.52, 0.07, 0.05),
    # outer lips: left corner, upper lip, top centre; bottom centre, lower lip
    48: (-0.36, 1.00, 0.12),
    49: (-0.24, 0.94, 0.24),
    50: (-0.10, 0.90, 0.30),
    51: (0.00, 0.92, 0.31),
    57: (0.00, 1.14, 0.27),
    58: (-0.12, 1.13, 0.25),
    59: (-0.25, 1.08, 0.20),
    # inner lips: left corner, upper, top centre; bottom centre, lower
    60: (-0.31, 1.00, 0.15),
    61: (-0.12, 0.99, 0.26),
    62: (0.00, 0.99, 0.28),
    66: (0.00, 1.01, 0.27),
    67: (-0.12, 1.01, 0.25),
}

_MIRROR = np.array([-1.0, 1.0, 1.0])


def mirror_shape(points: np.ndarray) -> np.ndarray:
    """Head-frame shape [68, 3] of the mirror-image face (x negated, left/right indices swapped)."""
    return points[FLIP_PERMUTATION_68] * _MIRROR


def _build_mean_shape() -> np.ndarray:
    shape = np.full((NUM_FACE_LANDMARKS, 3), np.nan)
    for index, point in _LEFT_AND_MIDLINE_POINTS.items():
        shape[index] = point
    missing = np.isnan(shape[:, 0])
    shape[missing] = shape[FLIP_PERMUTATION_68[missing]] * _MIRROR
    return shape


MEAN_SHAPE = _build_mean_shape()
MEAN_SHAPE.setflags(write=False)

# -1 for image-left points, +1 for image-right points, 0 on the midline.
SIDE = np.sign(np.round(MEAN_SHAPE[:, 0], 6))


def _landmark_normals() -> np.ndarray:
    normals = (MEAN_SHAPE - FACE_SURFACE_CENTER) / FACE_SURFACE_RADII**2
    normals[27:31] = (0.0, -0.2, 1.0)  # nose bridge faces forward
    normals[[31, 32, 33]] = [(-0.6, 0.5, 0.6), (-0.3, 0.6, 0.75), (0.0, 0.6, 0.8)]
    normals[[35, 34]] = normals[[31, 32]] * _MIRROR
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


# Outward surface normal at each landmark, used for self-occlusion under head rotation.
LANDMARK_NORMALS = _landmark_normals()
LANDMARK_NORMALS.setflags(write=False)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation [3, 3] = R_roll @ R_pitch @ R_yaw (radians).

    yaw > 0 turns the nose toward the image's right, pitch > 0 tilts the nose up, roll > 0 rotates the
    face clockwise in the image (the image-right eye moves down).
    """
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_roll @ r_pitch @ r_yaw


def to_camera(points: np.ndarray, rotation: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Head-frame points [..., 3] -> camera-frame points [..., 3] in pixels (x, y image; z toward camera)."""
    camera = scale * (points - HEAD_PIVOT) @ rotation.T
    camera[..., :2] += center
    return camera


def sample_identity_shape(rng: np.random.Generator) -> np.ndarray:
    """A random neutral face shape [68, 3] (head frame): proportions vary, plus a little asymmetry."""
    shape = MEAN_SHAPE.copy()
    shape[:, 0] *= rng.uniform(0.9, 1.1)
    shape[:, 1] *= rng.uniform(0.92, 1.08)
    jaw = np.arange(17)
    shape[jaw, 0] *= 1.0 + rng.uniform(-0.1, 0.08) * np.sin(np.pi * jaw / 16) ** 2
    chin = np.arange(4, 13)
    shape[chin, 1] += rng.uniform(-0.08, 0.1) * np.sin(np.pi * (chin - 4) / 8)

    for eye in (LEFT_EYE, RIGHT_EYE):
        centre = shape[eye].mean(axis=0)
        shape[eye] = centre + (shape[eye] - centre) * rng.uniform(0.85, 1.2)
    eyes = np.r_[LEFT_EYE, RIGHT_EYE]
    shape[eyes, 0] += SIDE[eyes] * rng.uniform(-0.05, 0.05)
    shape[[36, 45], 1] -= rng.uniform(-0.03, 0.04)  # canthal tilt

    brows = np.arange(17, 27)
    shape[brows, 1] += rng.uniform(-0.06, 0.06)
    shape[[18, 19, 20, 23, 24, 25], 1] -= rng.uniform(-0.03, 0.05)

    shape[[29, 30, 31, 32, 33, 34, 35], 1] += rng.uniform(-0.08, 0.08) * np.array([0.5, 1, 1, 1, 1, 1, 1])
    nostrils = np.arange(31, 36)
    shape[nostrils, 0] *= rng.uniform(0.85, 1.25)
    nose = np.arange(27, 36)
    shape[nose, 2] = 0.16 + (shape[nose, 2] - 0.16) * rng.uniform(0.8, 1.2)

    mouth = np.arange(48, 68)
    shape[mouth, 0] *= rng.uniform(0.85, 1.15)
    shape[mouth, 1] += rng.uniform(-0.05, 0.06)
    lip_line = shape[[48, 54], 1].mean()
    upper, lower = np.arange(49, 54), np.arange(55, 60)
    shape[upper, 1] = lip_line + (shape[upper, 1] - lip_line) * rng.uniform(0.7, 1.4)
    shape[lower, 1] = lip_line + (shape[lower, 1] - lip_line) * rng.uniform(0.7, 1.4)

    shape += rng.normal(0.0, 0.01, shape.shape)
    return shape


def apply_expression(
    shape: np.ndarray, smile: float, mouth_open: float, eyes_open: float, brow_raise: float
) -> np.ndarray:
    """Deform a neutral head-frame shape [68, 3] by an expression; returns a new [68, 3] array.

    smile, mouth_open, eyes_open in [0, 1] (eyes_open = 1 is the neutral lid opening, 0 closed);
    brow_raise in [-1, 1] (negative frowns). Every deformation is left/right symmetric.
    """
    shape = shape.copy()
    # smile: corners up, out and back; lower lids pushed up a little by the cheeks
    corner_lift = {
        48: 1.0,
        54: 1.0,
        60: 1.0,
        64: 1.0,
        49: 0.5,
        53: 0.5,
        59: 0.4,
        55: 0.4,
        61: 0.2,
        63: 0.2,
        65: 0.2,
        67: 0.2,
        56: 0.1,
        58: 0.1,
        57: 0.1,
        66: 0.1,
    }
    for index, weight in corner_lift.items():
        shape[index, 1] -= 0.1 * smile * weight
        shape[index, 0] += SIDE[index] * 0.07 * smile * weight
        shape[index, 2] -= 0.04 * smile * weight
    shape[[40, 41, 46, 47], 1] -= 0.015 * smile
    shape[[31, 35], 0] += SIDE[[31, 35]] * 0.02 * smile

    # mouth open: jaw drops, the lower lip follows, the upper lip lifts a little
    drop = 0.32 * mouth_open
    jaw_drop = {3: 0.08, 4: 0.2, 5: 0.4, 6: 0.6, 7: 0.75, 8: 0.8}
    for index, weight in jaw_drop.items():
        shape[[index, 16 - index], 1] += drop * weight
    lip_drop = {
        66: 1.0,
        65: 0.85,
        67: 0.85,
        57: 1.0,
        56: 0.9,
        58: 0.9,
        55: 0.7,
        59: 0.7,
        48: 0.12,
        54: 0.12,
        60: 0.15,
        64: 0.15,
    }
    for index, weight in lip_drop.items():
        shape[index, 1] += drop * weight
    shape[[48, 54, 60, 64], 0] -= SIDE[[48, 54, 60, 64]] * 0.04 * mouth_open
    shape[[61, 62, 63], 1] -= 0.03 * mouth_open

    brows = np.arange(17, 27)
    shape[brows, 1] -= 0.07 * brow_raise
    frown = max(0.0, -brow_raise)
    shape[[20, 21, 22, 23], 0] -= SIDE[[20, 21, 22, 23]] * 0.03 * frown
    _close_eyes(shape, eyes_open)
    return shape


def _close_eyes(shape: np.ndarray, eyes_open: float) -> None:
    for eye in (LEFT_EYE, RIGHT_EYE):
        corners, lids = eye[[0, 3]], eye[[1, 2, 4, 5]]
        (x0, y0), (x1, y1) = shape[corners, 0:2]
        t = (shape[lids, 0] - x0) / (x1 - x0)
        closed_y = y0 + t * (y1 - y0) + 0.03
        shape[lids, 1] = closed_y + (shape[lids, 1] - closed_y) * eyes_open


def forehead_arc(hairline: float, num_points: int = 11) -> np.ndarray:
    """Head-frame points [num_points, 3] along the hairline from the image-right temple to the left.

    hairline: height of the top of the forehead above the eye line (head units, about 0.8-1.1).
    """
    phi = np.linspace(0.0, np.pi, num_points)
    height = np.sin(phi) ** 0.6
    x = 0.99 * np.cos(phi)
    y = -0.15 - (hairline - 0.15) * height
    z = -0.45 + 0.43 * height
    return np.stack([x, y, z], axis=-1)


def ellipsoid_silhouette(
    center: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray,
    image_center: np.ndarray,
    scale: float,
    num_points: int = 48,
) -> np.ndarray:
    """Outline [num_points, 2] (x, y pixels) of a head-frame ellipsoid under the weak-perspective camera."""
    quadric = rotation @ np.diag(1.0 / (scale * radii) ** 2) @ rotation.T
    # Orthographic projection along z: the shadow of the quadric is the Schur complement on (x, y).
    conic = quadric[:2, :2] - np.outer(quadric[:2, 2], quadric[2, :2]) / quadric[2, 2]
    eigenvalues, eigenvectors = np.linalg.eigh(conic)
    theta = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], axis=-1) / np.sqrt(eigenvalues)
    centre = to_camera(center, rotation, image_center, scale)[:2]
    return centre + circle @ eigenvectors.T


def ellipsoid_surface(
    center: np.ndarray,
    radii: np.ndarray,
    rotation: np.ndarray,
    image_center: np.ndarray,
    scale: float,
    xs: np.ndarray,
    ys: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The camera-facing side of a head-frame ellipsoid as seen at each pixel (float32).

    xs: [W] and ys: [H] pixel-centre coordinates. Returns (normals [H, W, 3], unit normals in the camera
    frame; points [H, W, 2], the (x, y) head-frame coordinates of the surface point). Rays that miss the
    ellipsoid get the silhouette point, so both fields are continuous over the whole image.
    """
    quadric = rotation @ np.diag(1.0 / (scale * radii) ** 2) @ rotation.T
    cx, cy, _ = to_camera(center, rotation, image_center, scale)
    q = quadric.astype(np.float32)
    dx = (np.asarray(xs, np.float32) - np.float32(cx))[None, :]
    dy = (np.asarray(ys, np.float32) - np.float32(cy))[:, None]
    b = q[2, 0] * dx + q[2, 1] * dy
    c = (q[0, 0] * dx * dx - 1.0) + dy * (2.0 * q[0, 1] * dx + q[1, 1] * dy)
    dz = (np.sqrt(np.maximum(b * b - q[2, 2] * c, 0.0)) - b) / q[2, 2]
    normals = np.stack([q[k, 0] * dx + q[k, 1] * dy + q[k, 2] * dz for k in range(3)], axis=-1)
    normals /= np.sqrt((normals * normals).sum(axis=-1, keepdims=True)) + np.float32(1e-12)
    back = (rotation / scale).astype(np.float32)  # camera offset -> head frame: offset @ R / scale
    points = np.stack(
        [center[k] + back[0, k] * dx + back[1, k] * dy + back[2, k] * dz for k in range(2)], axis=-1
    ).astype(np.float32)
    return normals, points
