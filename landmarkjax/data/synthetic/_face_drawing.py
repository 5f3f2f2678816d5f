"""Synthetic faces, private: the projected face and the painters of its parts (body, head, hair, nose,
brows, eyes, mouth) and of occluders, on a supersampled Pillow canvas.

Points are (x, y) pixels of the output image; `Painter` maps them to the canvas (SUPERSAMPLE times finer).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from landmarkjax.data.synthetic import _face_shape as geometry
from landmarkjax.data.synthetic import _textures as textures
from landmarkjax.data.synthetic._face_params import FaceIdentity, FaceScene, FaceState, Occluder
from landmarkjax.data.synthetic._raster import (
    Painter,
    catmull_rom,
    ellipse_points,
    new_mask,
    polygon_area,
    to_canvas,
    unit_circle,
)
from landmarkjax.face_layout import LEFT_EYE, RIGHT_EYE

__all__ = [
    "SUPERSAMPLE",
    "Projected",
    "project_face",
    "covered",
    "draw_body",
    "draw_head",
    "draw_nose",
    "draw_brows",
    "draw_eye",
    "draw_mouth",
    "draw_occluder",
]

SUPERSAMPLE = 2
_SCLERA = np.array([0.94, 0.92, 0.89])
_PUPIL = np.array([0.02, 0.02, 0.02])
_GLINT = np.array([1.0, 1.0, 1.0])
_TEETH = np.array([0.93, 0.91, 0.84])
_MOUTH_INSIDE = np.array([0.22, 0.06, 0.07])


@dataclasses.dataclass(frozen=True, eq=False)
class Projected:
    rotation: np.ndarray
    shape: np.ndarray  # [68, 3] head frame, with expression
    landmarks: np.ndarray  # [68, 2] pixels
    facing: np.ndarray  # [68] bool
    center: np.ndarray
    scale: float

    def project(self, points: np.ndarray) -> np.ndarray:
        return geometry.to_camera(points, self.rotation, self.center, self.scale)[..., :2]


def project_face(identity: FaceIdentity, state: FaceState) -> Projected:
    rotation = geometry.rotation_matrix(state.yaw, state.pitch, state.roll)
    shape = geometry.apply_expression(
        identity.shape, state.smile, state.mouth_open, state.eyes_open, state.brow_raise
    )
    center = np.asarray(state.center, np.float64)
    landmarks = geometry.to_camera(shape, rotation, center, state.scale)[:, :2]
    facing = (geometry.LANDMARK_NORMALS @ rotation.T)[:, 2] > 0.0
    return Projected(rotation, shape, landmarks, facing, center, state.scale)


def _disc(centre: np.ndarray, radii: tuple[float, float], num_points: int) -> np.ndarray:
    """Head-frame ellipse [num_points, 3] around `centre` in a plane facing the camera (constant z)."""
    circle = unit_circle(num_points) * radii
    return centre + np.concatenate([circle, np.zeros((num_points, 1))], axis=-1)


def covered(mask: Image.Image, points: np.ndarray) -> np.ndarray:
    xy = np.round(np.asarray(to_canvas(points, SUPERSAMPLE)).reshape(-1, 2)).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < mask.width) & (xy[:, 1] >= 0) & (xy[:, 1] < mask.height)
    values = np.zeros(len(points))
    pixels = np.asarray(mask)
    values[inside] = pixels[xy[inside, 1], xy[inside, 0]]
    return values >= 128


def draw_body(painter: Painter, identity: FaceIdentity, p: Projected) -> None:
    """Long hair behind the head, shoulders and neck (the neck hangs straight down from under the jaw)."""
    neck_top = p.project(np.array([[-0.52, 0.95, -0.75], [0.52, 0.95, -0.75]]))
    down = np.array([0.0, 1.5 * p.scale])
    flare = np.array([0.1 * p.scale, 0.0])
    neck = np.array([neck_top[0], neck_top[0] + down - flare, neck_top[1] + down + flare, neck_top[1]])
    if identity.hair_style in ("long", "bangs"):
        top = p.project(np.array([[-1.12, -0.3, -0.9], [1.12, -0.3, -0.9]]))
        hair = np.array([top[0], top[0] + 1.3 * down - flare, top[1] + 1.3 * down + flare, top[1]])
        painter.polygon(hair, identity.hair_rgb)
    shoulders = ellipse_points(
        neck_top.mean(axis=0) + down + (0.0, 0.9 * p.scale), (2.6 * p.scale, 1.1 * p.scale)
    )
    painter.polygon(shoulders, identity.clothes_rgb[0])
    collar = np.array(
        [
            neck[1] - 2 * flare,
            neck[1] + (0.0, 0.35 * p.scale),
            neck[2] + (0.0, 0.35 * p.scale),
            neck[2] + 2 * flare,
        ]
    )
    painter.polyline(collar, identity.clothes_rgb[1], 0.12 * p.scale)
    painter.polygon(neck, identity.skin_rgb * 0.72)


def draw_head(painter: Painter, identity: FaceIdentity, p: Projected, head_draw, hair_draw) -> None:
    cranium = geometry.ellipsoid_silhouette(
        geometry.CRANIUM_CENTER, geometry.CRANIUM_RADII * identity.hair_volume, p.rotation, p.center, p.scale
    )
    ring = unit_circle(12)
    ears = [
        p.project(
            np.array([side * 1.0, 0.18, -0.72])
            + np.stack([side * 0.06 * np.abs(ring[:, 1]), 0.26 * ring[:, 0], 0.13 * ring[:, 1]], -1)
        )
        for side in (-1.0, 1.0)
    ]
    outline = np.concatenate([p.landmarks[:17], p.project(geometry.forehead_arc(identity.hairline))])

    hair_colour = identity.hair_rgb
    painter.polygon(cranium, hair_colour)
    head_draw.polygon(painter.coords(cranium), fill=255)
    if identity.hair_style != "bald":
        hair_draw.polygon(painter.coords(cranium), fill=255)
    for ear in ears:
        if identity.hair_style != "long":
            painter.polygon(ear, identity.skin_rgb * 0.9)
            head_draw.polygon(painter.coords(ear), fill=255)
            hair_draw.polygon(painter.coords(ear), fill=0)
    painter.polygon(outline, identity.skin_rgb)
    head_draw.polygon(painter.coords(outline), fill=255)
    hair_draw.polygon(painter.coords(outline), fill=0)
    if identity.hair_style == "bangs":
        bangs = _bangs(identity, p)
        painter.polygon(bangs, hair_colour)
        hair_draw.polygon(painter.coords(bangs), fill=255)


def _bangs(identity: FaceIdentity, p: Projected) -> np.ndarray:
    top = geometry.forehead_arc(identity.hairline, num_points=13)
    lowest = min(-0.62, float(p.shape[17:27, 1].min()) - 0.12)  # stays above the brows
    fringe = top.copy()
    height = np.sin(np.linspace(0.0, np.pi, len(top))) ** 0.5
    fringe[:, 1] = top[:, 1] + (lowest - top[:, 1]) * height * (
        0.85 + 0.15 * np.cos(np.arange(len(top)) * 2.1)
    )
    fringe[:, 2] += 0.03
    return p.project(np.concatenate([top, fringe[::-1]]))


def draw_nose(painter: Painter, identity: FaceIdentity, p: Projected, scene: FaceScene) -> None:
    shape = p.shape
    side = -1.0 if scene.light_direction[0] >= 0 else 1.0  # the side away from the light
    flank = shape[[27, 28, 29, 30]] + np.array([side * 0.1, 0.0, -0.08]) * np.array(
        [[0.6], [0.9], [1.1], [1.2]]
    )
    shadow = np.concatenate(
        [
            shape[[27, 28, 29, 30]],
            shape[[33]],
            shape[[32 if side < 0 else 34]],
            shape[[31 if side < 0 else 35]],
            flank[::-1],
        ]
    )
    painter.polygon(p.project(shadow), identity.skin_rgb * 0.86)
    for left, right in ((31, 32), (35, 34)):
        centre = 0.55 * shape[left] + 0.45 * shape[right] + np.array([0.0, -0.01, 0.0])
        width = 0.45 * np.linalg.norm(shape[left] - shape[right])
        painter.polygon(p.project(_disc(centre, (width, 0.35 * width), 10)), identity.skin_rgb * 0.4)
    painter.polyline(p.project(shape[[31, 32, 33, 34, 35]]), identity.skin_rgb * 0.8, 0.04 * p.scale)


def draw_brows(painter: Painter, identity: FaceIdentity, p: Projected) -> None:
    for brow in (np.arange(17, 22), np.arange(22, 27)):
        points = p.shape[brow]
        taper = np.linspace(0.55, 1.0, 5)[:, None] if brow[0] == 17 else np.linspace(1.0, 0.55, 5)[:, None]
        half = np.array([0.0, 0.5 * identity.brow_thickness, 0.0]) * taper
        upper = catmull_rom(p.project(points - half))
        lower = catmull_rom(p.project(points + half))
        painter.polygon(np.concatenate([upper, lower[::-1]]), identity.brow_rgb)


def _eye_outline(landmarks: np.ndarray, eye: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    upper = catmull_rom(landmarks[eye[[0, 1, 2, 3]]])
    lower = catmull_rom(landmarks[eye[[3, 4, 5, 0]]])
    return upper, lower


def draw_eye(
    painter: Painter,
    identity: FaceIdentity,
    state: FaceState,
    p: Projected,
    eye: np.ndarray,
    scene: FaceScene,
) -> None:
    upper, lower = _eye_outline(p.landmarks, eye)
    outline = np.concatenate([upper[:-1], lower[:-1]])
    lash = identity.hair_rgb * 0.3
    crease = p.shape[eye[[0, 1, 2, 3]]] + np.array([0.0, -0.06, 0.0])
    painter.polyline(catmull_rom(p.project(crease)), identity.skin_rgb * 0.85, 0.03 * p.scale)
    if polygon_area(outline) > 0.5:
        painter.polygon(outline, _SCLERA)
        corners = p.shape[eye[[0, 3]]]
        eye_width = float(np.linalg.norm(corners[0] - corners[1]))
        centre = p.shape[eye].mean(axis=0) + np.array(
            [0.2 * eye_width * state.gaze_x, 0.1 * eye_width * state.gaze_y, 0.02]
        )
        glint = centre + eye_width * np.array(
            [0.06 * scene.light_direction[0], 0.06 * scene.light_direction[1] - 0.03, 0.01]
        )
        fills = [
            (p.project(_disc(centre, (radius * eye_width,) * 2, 16)), colour)
            for radius, colour in ((0.21, identity.iris_rgb * 0.6), (0.18, identity.iris_rgb), (0.08, _PUPIL))
        ]
        fills.append((p.project(_disc(glint, (0.035 * eye_width,) * 2, 8)), _GLINT))
        painter.clipped_polygons(outline, fills)
        painter.polyline(lower, lash * 0.6 + identity.skin_rgb * 0.4, 0.035 * p.scale)
    painter.polyline(upper, lash, 0.045 * p.scale)


def draw_mouth(painter: Painter, identity: FaceIdentity, p: Projected) -> None:
    lm = p.landmarks
    outer_upper = catmull_rom(lm[48:55])
    outer_lower = catmull_rom(lm[[54, 55, 56, 57, 58, 59, 48]])
    inner_upper = catmull_rom(lm[60:65])
    inner_lower = catmull_rom(lm[[64, 65, 66, 67, 60]])
    lips = np.concatenate([outer_upper[:-1], outer_lower[:-1]])
    painter.polygon(lips, identity.lip_rgb)
    painter.polyline(np.concatenate([lips, lips[:1]]), identity.lip_rgb, 0.06 * p.scale)
    # Highlight on the lower lip.
    painter.polyline(
        catmull_rom(0.5 * lm[[67, 66, 65]] + 0.5 * lm[[58, 57, 56]]), identity.lip_rgb * 1.15, 0.03 * p.scale
    )
    interior = np.concatenate([inner_upper[:-1], inner_lower[:-1]])
    if polygon_area(interior) > 0.5:
        painter.polygon(interior, _MOUTH_INSIDE)
        teeth_top = p.shape[60:65] + np.array([0.0, -0.02, -0.01])
        teeth_bottom = p.shape[60:65] + np.array([0.0, 0.09, -0.02])
        teeth = p.project(np.concatenate([teeth_top, teeth_bottom[::-1]]))
        painter.clipped_polygons(interior, [(teeth, _TEETH)])
    painter.polyline(inner_upper, identity.lip_rgb * 0.45, 0.03 * p.scale)


def draw_occluder(painter: Painter, occluder: Occluder, p: Projected) -> Image.Image:
    mask, mask_draw = new_mask(painter.canvas)
    rng = np.random.default_rng(occluder.texture_seed)
    if occluder.kind == "sunglasses":
        parts = []
        for eye in (LEFT_EYE, RIGHT_EYE):
            centre = p.shape[eye].mean(axis=0) + np.array([0.0, 0.02, 0.12])
            parts.append(p.project(_disc(centre, (0.24, 0.17), 20)))
        for part in parts:
            painter.polygon(part, occluder.colours[0] * 0.25, alpha=0.95)
            mask_draw.polygon(painter.coords(part), fill=255)
        bridge = p.project(np.array([p.shape[39] + (0, -0.03, 0.1), p.shape[42] + (0, -0.03, 0.1)]))
        painter.polyline(bridge, occluder.colours[1] * 0.5, 0.05 * p.scale)
        return mask
    center = np.asarray(occluder.center)
    parts = _occluder_parts(occluder, rng)
    if occluder.kind == "hand":
        for part in parts:
            painter.polygon(part, occluder.colours[0])
            mask_draw.polygon(painter.coords(part), fill=255)
        for knuckle in parts[1:]:
            painter.polyline(knuckle[[0, -1]], occluder.colours[0] * 0.75, 0.02 * p.scale)
        return mask
    for part in parts:
        mask_draw.polygon(painter.coords(part), fill=255)
    radius = int(np.ceil(np.hypot(*occluder.radii))) + 1  # covers a rotated rectangle's corners
    texture = textures.pattern(rng, 2 * radius, 2 * radius, occluder.colours)
    tile = textures.to_pil(texture).resize((2 * radius * SUPERSAMPLE,) * 2, Image.BILINEAR)
    full = Image.new("RGB", painter.canvas.size)
    corner = to_canvas(center - radius, SUPERSAMPLE)
    full.paste(tile, (int(round(corner[0])), int(round(corner[1]))))
    painter.canvas.paste(full, (0, 0), mask)
    return mask


def _occluder_parts(occluder: Occluder, rng: np.random.Generator) -> list[np.ndarray]:
    center, (rx, ry), angle = np.asarray(occluder.center), occluder.radii, occluder.angle
    if occluder.kind == "ellipse":
        return [ellipse_points(center, (rx, ry), angle, 32)]
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    if occluder.kind == "rectangle":
        corners = np.array([[-rx, -ry], [rx, -ry], [rx, ry], [-rx, ry]])
        return [center + corners @ rotation]
    if occluder.kind == "polygon":
        count = int(rng.integers(5, 9))
        theta = np.sort(rng.uniform(0.0, 2.0 * np.pi, count))
        radius = rng.uniform(0.6, 1.0, count)
        return [center + np.stack([rx * radius * np.cos(theta), ry * radius * np.sin(theta)], -1) @ rotation]
    # hand: a palm with four fingers and a thumb, pointing along -y before rotation
    palm = ellipse_points(np.zeros(2), (rx * 0.85, ry), 0.0, 24)
    parts = [palm]
    finger_length = ry * np.array([1.0, 1.15, 1.1, 0.85])
    for i, x in enumerate(np.linspace(-0.62, 0.62, 4) * rx):
        w = 0.19 * rx
        parts.append(
            np.array(
                [
                    [x - w, -0.5 * ry],
                    [x - w, -0.5 * ry - finger_length[i]],
                    [x + w, -0.5 * ry - finger_length[i]],
                    [x + w, -0.5 * ry],
                ]
            )
        )
    parts.append(
        np.array([[0.7 * rx, 0.1 * ry], [1.5 * rx, -0.5 * ry], [1.65 * rx, -0.3 * ry], [0.85 * rx, 0.5 * ry]])
    )
    return [center + part @ rotation for part in parts]
