"""Procedural face images and clips with exact 68-point iBUG 300-W landmarks.

A face is a 3D landmark shape (a mean shape, deformed by identity and expression), rotated by a head pose
and projected with a weak-perspective camera; eyes, brows, nose, lips and the face outline are drawn as
polygons through the projected landmarks, so the landmarks land on the drawn features. The head is shaded
by a directional light on ellipsoid surface normals, placed over a textured cluttered background, and may
be covered by an occluder. Everything is a deterministic function of a seed.

Two levels of API:
  * `synthetic_face(seed)`, `synthetic_faces(seed, num)`, `synthetic_face_clip(seed, num_frames)`;
  * `sample_face(rng, size)` -> (FaceIdentity, FaceState, FaceScene) and `render_face(...)` to render
    with explicit parameters (for example the same identity with and without a smile), plus
    `mirror_face(...)`, the parameters of the horizontally mirrored face.

Attributes (FACE_ATTRIBUTE_NAMES, in this order):
  yaw, pitch, roll: head pose in radians. yaw > 0 turns the nose toward the image's right, pitch > 0
    tilts the nose up, roll > 0 rotates the face clockwise in the image.
  smile: [0, 1], 0 neutral, 1 broad smile (mouth corners up and out).
  mouth_open: [0, 1], 0 closed lips, 1 jaw fully dropped.
  eyes_open: [0, 1], 0 closed lids, 1 neutral opening.
  brow_raise: [-1, 1], negative frowns (brows down and together), positive raises the brows.
  gaze_x, gaze_y: [-1, 1], iris offset inside the eye; +x toward the image's right, +y down (head frame).

Visibility of a landmark is False when it lies outside the image, faces away from the camera
(self-occlusion under head rotation), or is covered by an occluder.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from scipy import ndimage

from landmarkjax.data.synthetic import _face_shape as geometry
from landmarkjax.data.synthetic import _textures as textures
from landmarkjax.data.synthetic._raster import (
    Painter,
    catmull_rom,
    downsample,
    ellipse_points,
    new_mask,
    polygon_area,
    to_canvas,
    unit_circle,
)
from landmarkjax.face_layout import LEFT_EYE, MIRROR_NEGATED_ATTRIBUTES, NUM_FACE_LANDMARKS, RIGHT_EYE

__all__ = [
    "FACE_ATTRIBUTE_NAMES",
    "HAIR_STYLES",
    "OCCLUDER_KINDS",
    "FaceIdentity",
    "FaceState",
    "FaceScene",
    "Occluder",
    "sample_face",
    "sample_identity",
    "sample_state",
    "sample_scene",
    "sample_occluder",
    "render_face",
    "mirror_face",
    "face_geometry",
    "synthetic_face",
    "synthetic_faces",
    "synthetic_face_clip",
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
_SUPERSAMPLE = 2
_SKIN_LIGHT = np.array([0.96, 0.80, 0.69])
_SKIN_DARK = np.array([0.33, 0.21, 0.14])
_HAIR_COLOURS = np.array(
    [
        [0.07, 0.06, 0.05],
        [0.22, 0.14, 0.08],
        [0.42, 0.28, 0.16],
        [0.80, 0.65, 0.40],
        [0.58, 0.24, 0.10],
        [0.62, 0.62, 0.62],
    ]
)
_IRIS_COLOURS = np.array(
    [
        [0.33, 0.19, 0.09],
        [0.14, 0.08, 0.05],
        [0.30, 0.48, 0.68],
        [0.30, 0.48, 0.30],
        [0.48, 0.38, 0.18],
        [0.48, 0.53, 0.58],
    ]
)
_SCLERA = np.array([0.94, 0.92, 0.89])
_PUPIL = np.array([0.02, 0.02, 0.02])
_GLINT = np.array([1.0, 1.0, 1.0])
_TEETH = np.array([0.93, 0.91, 0.84])
_MOUTH_INSIDE = np.array([0.22, 0.06, 0.07])
# Head-frame ellipsoid used for per-pixel shading of the whole head (skull and face together).
_HEAD_SHADING_CENTER = np.array([0.0, 0.2, -0.75])
_HEAD_SHADING_RADII = np.array([1.08, 1.6, 1.15])


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


def _check_seed(seed: int, name: str = "seed") -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels), got {size!r}")


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**62))


# ----------------------------------------------------------------------------------------------------
# sampling


def sample_identity(rng: np.random.Generator) -> FaceIdentity:
    """A random person (shape, colours, hair)."""
    shape = geometry.sample_identity_shape(rng)
    tone = rng.uniform(0.0, 1.0)
    skin = _SKIN_LIGHT * (1.0 - tone) + _SKIN_DARK * tone
    skin = np.clip(skin * (1.0 + rng.normal(0.0, 0.04, 3)), 0.05, 1.0)
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3), 0.0, 1.0)
    hair_style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.1, 0.45, 0.3, 0.15])]
    if hair_style == "bald":
        hair = skin * 0.95
    brow = np.clip(0.75 * (0.8 * hair + 0.2 * skin), 0.0, 1.0)
    if hair_style == "bald" or rng.random() < 0.3:
        brow = np.clip(0.5 * skin, 0.0, 1.0)
    lip = np.clip(skin * np.array([0.85, 0.5, 0.52]) + np.array([0.1, 0.0, 0.02]), 0.0, 1.0)
    if rng.random() < 0.2:  # lipstick
        lip = np.array([0.65, 0.08, 0.15]) * rng.uniform(0.7, 1.1)
    iris = np.clip(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.85, 1.15, 3), 0.0, 1.0)
    clothes = np.stack([textures.random_colour(rng), textures.random_colour(rng)])
    return FaceIdentity(
        shape=shape,
        hairline=float(rng.uniform(0.8, 1.1)),
        hair_style=hair_style,
        hair_volume=float(rng.uniform(1.0, 1.12)),
        brow_thickness=float(rng.uniform(0.06, 0.1)),
        skin_rgb=skin,
        hair_rgb=hair,
        brow_rgb=brow,
        iris_rgb=iris,
        lip_rgb=lip,
        clothes_rgb=clothes,
        texture_seed=_seed(rng),
    )


def sample_state(rng: np.random.Generator, size: int) -> FaceState:
    """A random pose, expression and placement for an image of `size` x `size` pixels."""
    scale = rng.uniform(0.19, 0.26) * size
    return FaceState(
        yaw=float(np.clip(rng.normal(0.0, 0.3), -0.75, 0.75)),
        pitch=float(np.clip(rng.normal(0.0, 0.15), -0.4, 0.4)),
        roll=float(np.clip(rng.normal(0.0, 0.15), -0.5, 0.5)),
        smile=float(max(0.0, rng.uniform(-0.3, 1.0))),
        mouth_open=float(max(0.0, rng.uniform(-0.6, 1.0)) ** 1.5),
        eyes_open=float(rng.uniform(0.6, 1.0) if rng.random() < 0.85 else rng.uniform(0.0, 0.6)),
        brow_raise=float(rng.uniform(-0.7, 0.7)),
        gaze_x=float(rng.uniform(-1.0, 1.0)),
        gaze_y=float(rng.uniform(-0.6, 0.6)),
        center=(
            float(size / 2 + rng.normal(0.0, 0.05 * size)),
            float(size / 2 - 0.11 * scale + rng.normal(0.0, 0.04 * size)),
        ),
        scale=float(scale),
    )


def sample_occluder(rng: np.random.Generator, state: FaceState) -> Occluder:
    """A random occluder placed around the lower half of the face (it may also miss the face)."""
    kind = OCCLUDER_KINDS[rng.choice(len(OCCLUDER_KINDS), p=[0.25, 0.2, 0.2, 0.25, 0.1])]
    target = np.array(state.center) + state.scale * rng.normal(0.0, 0.6, 2) + (0.0, 0.5 * state.scale)
    radii = state.scale * rng.uniform(0.25, 0.7, 2)
    colours = np.stack([textures.random_colour(rng), textures.random_colour(rng)])
    if kind == "hand":
        tone = rng.uniform(0.0, 1.0)
        colours[0] = _SKIN_LIGHT * (1.0 - tone) + _SKIN_DARK * tone
        radii = np.full(2, state.scale * rng.uniform(0.35, 0.5))
    return Occluder(
        kind=kind,
        center=(float(target[0]), float(target[1])),
        radii=(float(radii[0]), float(radii[1])),
        angle=float(rng.uniform(-np.pi, np.pi)),
        colours=colours,
        texture_seed=_seed(rng),
    )


def sample_scene(
    rng: np.random.Generator, state: FaceState, size: int, occluder_probability: float = 0.3
) -> FaceScene:
    """Random background, light, occluder (with the given probability), blur and noise."""
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.7, 0.4), rng.uniform(0.4, 1.0)])
    occluder = sample_occluder(rng, state) if rng.random() < occluder_probability else None
    blur = rng.uniform(0.3, 1.2) * size / 128 if rng.random() < 0.4 else 0.0
    return FaceScene(
        background_seed=_seed(rng),
        light_direction=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.35, 0.65)),
        specular=float(rng.uniform(0.0, 0.12)),
        occluder=occluder,
        blur_sigma=float(blur),
        noise_sigma=float(rng.uniform(0.0, 0.035)),
        noise_seed=_seed(rng),
        tint=1.0 + rng.normal(0.0, 0.04, 3),
    )


def sample_face(rng: np.random.Generator, size: int = 128) -> tuple[FaceIdentity, FaceState, FaceScene]:
    """Random (identity, state, scene) for a `size` x `size` image, drawn from the numpy Generator `rng`."""
    _check_size(size)
    identity = sample_identity(rng)
    state = sample_state(rng, size)
    scene = sample_scene(rng, state, size)
    return identity, state, scene


def mirror_face(
    identity: FaceIdentity, state: FaceState, scene: FaceScene, size: int
) -> tuple[FaceIdentity, FaceState, FaceScene]:
    """Parameters of the horizontally mirrored face (x -> size - 1 - x).

    The mirrored face's landmarks are `flip_landmarks(landmarks, size)` of the original face: the shape
    is mirrored with left/right indices swapped, yaw, roll and gaze_x change sign, and the placement, the
    light and the occluder's placement are mirrored. (Textures and the background are not mirrored.)
    """
    mirrored_identity = dataclasses.replace(identity, shape=geometry.mirror_shape(identity.shape))
    mirrored_state = dataclasses.replace(
        state,
        **{name: -getattr(state, name) for name in MIRROR_NEGATED_ATTRIBUTES},
        center=(size - 1 - state.center[0], state.center[1]),
    )
    occluder = scene.occluder
    if occluder is not None:
        occluder = dataclasses.replace(
            occluder, center=(size - 1 - occluder.center[0], occluder.center[1]), angle=-occluder.angle
        )
    mirrored_scene = dataclasses.replace(
        scene, light_direction=scene.light_direction * (-1.0, 1.0, 1.0), occluder=occluder
    )
    return mirrored_identity, mirrored_state, mirrored_scene


# ----------------------------------------------------------------------------------------------------
# geometry


@dataclasses.dataclass(frozen=True, eq=False)
class _Projected:
    rotation: np.ndarray
    shape: np.ndarray  # [68, 3] head frame, with expression
    landmarks: np.ndarray  # [68, 2] pixels
    facing: np.ndarray  # [68] bool
    center: np.ndarray
    scale: float

    def project(self, points: np.ndarray) -> np.ndarray:
        return geometry.to_camera(points, self.rotation, self.center, self.scale)[..., :2]


def _project(identity: FaceIdentity, state: FaceState) -> _Projected:
    rotation = geometry.rotation_matrix(state.yaw, state.pitch, state.roll)
    shape = geometry.apply_expression(
        identity.shape, state.smile, state.mouth_open, state.eyes_open, state.brow_raise
    )
    center = np.asarray(state.center, np.float64)
    landmarks = geometry.to_camera(shape, rotation, center, state.scale)[:, :2]
    facing = (geometry.LANDMARK_NORMALS @ rotation.T)[:, 2] > 0.0
    return _Projected(rotation, shape, landmarks, facing, center, state.scale)


def face_geometry(identity: FaceIdentity, state: FaceState, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks without rendering: (landmarks float32 [68, 2] (x, y) pixels, facing bool [68]).

    facing is False for landmarks turned away from the camera; it ignores occluders and the image bounds.
    """
    _check_size(size)
    projected = _project(identity, state)
    return projected.landmarks.astype(np.float32), projected.facing


# ----------------------------------------------------------------------------------------------------
# rendering


def _disc(centre: np.ndarray, radii: tuple[float, float], num_points: int) -> np.ndarray:
    """Head-frame ellipse [num_points, 3] around `centre` in a plane facing the camera (constant z)."""
    circle = unit_circle(num_points) * radii
    return centre + np.concatenate([circle, np.zeros((num_points, 1))], axis=-1)


def render_face(
    identity: FaceIdentity, state: FaceState, scene: FaceScene, size: int = 128
) -> dict[str, np.ndarray]:
    """Render one face image with explicit parameters.

    Args:
      identity, state, scene: see their classes (or `sample_face`).
      size: output height = width in pixels (>= 16).

    Returns:
      dict with image uint8 [size, size, 3]; landmarks float32 [68, 2] (x, y) pixels, pixel centres at
      integers; visibility bool [68]; attributes float32 [A] (FACE_ATTRIBUTE_NAMES order); face_box
      float32 [4] (x0, y0, x1, y1) pixels, the bounding box of all 68 landmarks.
    """
    _check_size(size)
    return _render(identity, state, scene, size, _background(scene.background_seed, size))


def _render(
    identity: FaceIdentity, state: FaceState, scene: FaceScene, size: int, background: Image.Image
) -> dict[str, np.ndarray]:
    """render_face on a given supersampled background canvas (copied, not modified), for reuse in clips."""
    projected = _project(identity, state)
    canvas = background.copy()
    painter = Painter(canvas, _SUPERSAMPLE)
    head_mask, head_draw = new_mask(canvas)
    hair_mask, hair_draw = new_mask(canvas)

    _draw_body(painter, identity, projected)
    _draw_head(painter, identity, projected, head_draw, hair_draw)
    _draw_nose(painter, identity, projected, scene)
    _draw_brows(painter, identity, projected)
    for eye in (LEFT_EYE, RIGHT_EYE):
        _draw_eye(painter, identity, state, projected, eye, scene)
    _draw_mouth(painter, identity, projected)

    occluded = np.zeros(NUM_FACE_LANDMARKS, bool)
    if scene.occluder is not None:
        occluder_mask = _draw_occluder(painter, scene.occluder, projected)
        head_mask.paste(0, (0, 0, *canvas.size), occluder_mask)
        hair_mask.paste(0, (0, 0, *canvas.size), occluder_mask)
        occluded = _covered(occluder_mask, projected.landmarks)

    image = downsample(canvas, _SUPERSAMPLE)
    image = _shade(
        image,
        downsample(head_mask, _SUPERSAMPLE),
        downsample(hair_mask, _SUPERSAMPLE),
        identity,
        projected,
        scene,
        size,
    )
    image = _camera_effects(image, scene)

    landmarks = projected.landmarks
    inside = np.all((landmarks >= 0.0) & (landmarks <= size - 1), axis=-1)
    return {
        "image": image,
        "landmarks": landmarks.astype(np.float32),
        "visibility": inside & projected.facing & ~occluded,
        "attributes": state.attributes(),
        "face_box": np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float32),
    }


def _background(seed: int, size: int) -> Image.Image:
    return textures.cluttered_background(np.random.default_rng(seed), size, size, _SUPERSAMPLE)


def _covered(mask: Image.Image, points: np.ndarray) -> np.ndarray:
    xy = np.round(np.asarray(to_canvas(points, _SUPERSAMPLE)).reshape(-1, 2)).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < mask.width) & (xy[:, 1] >= 0) & (xy[:, 1] < mask.height)
    values = np.zeros(len(points))
    pixels = np.asarray(mask)
    values[inside] = pixels[xy[inside, 1], xy[inside, 0]]
    return values >= 128


def _draw_body(painter: Painter, identity: FaceIdentity, p: _Projected) -> None:
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


def _draw_head(painter: Painter, identity: FaceIdentity, p: _Projected, head_draw, hair_draw) -> None:
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


def _bangs(identity: FaceIdentity, p: _Projected) -> np.ndarray:
    top = geometry.forehead_arc(identity.hairline, num_points=13)
    lowest = min(-0.62, float(p.shape[17:27, 1].min()) - 0.12)  # stays above the brows
    fringe = top.copy()
    height = np.sin(np.linspace(0.0, np.pi, len(top))) ** 0.5
    fringe[:, 1] = top[:, 1] + (lowest - top[:, 1]) * height * (
        0.85 + 0.15 * np.cos(np.arange(len(top)) * 2.1)
    )
    fringe[:, 2] += 0.03
    return p.project(np.concatenate([top, fringe[::-1]]))


def _draw_nose(painter: Painter, identity: FaceIdentity, p: _Projected, scene: FaceScene) -> None:
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


def _draw_brows(painter: Painter, identity: FaceIdentity, p: _Projected) -> None:
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


def _draw_eye(
    painter: Painter,
    identity: FaceIdentity,
    state: FaceState,
    p: _Projected,
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


def _draw_mouth(painter: Painter, identity: FaceIdentity, p: _Projected) -> None:
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


def _draw_occluder(painter: Painter, occluder: Occluder, p: _Projected) -> Image.Image:
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
    tile = textures.to_pil(texture).resize((2 * radius * _SUPERSAMPLE,) * 2, Image.BILINEAR)
    full = Image.new("RGB", painter.canvas.size)
    corner = to_canvas(center - radius, _SUPERSAMPLE)
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


def _shade(
    image: np.ndarray,
    head: np.ndarray,
    hair: np.ndarray,
    identity: FaceIdentity,
    p: _Projected,
    scene: FaceScene,
    size: int,
) -> np.ndarray:
    """Light the head: Lambert + Blinn-Phong on ellipsoid normals, with textures fixed to the surface."""
    coords = np.arange(size, dtype=np.float32)
    normals, surface = geometry.ellipsoid_surface(
        _HEAD_SHADING_CENTER, _HEAD_SHADING_RADII, p.rotation, p.center, p.scale, coords, coords
    )
    light = scene.light_direction.astype(np.float32)
    half = light + np.float32([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    diffuse = np.maximum(normals @ light, 0.0)
    shade = scene.ambient + (1.0 - scene.ambient) * diffuse
    specular = scene.specular * np.maximum(normals @ half, 0.0) ** 20
    skin_texture, hair_texture = _surface_textures(identity.texture_seed, surface)
    gain = shade * (skin_texture + hair * (hair_texture - skin_texture)) - 1.0
    return image + (image * (head * gain)[..., None] + (head * specular)[..., None])


def _surface_textures(seed: int, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin mottling and hair streaks ([H, W] gains about 1) as functions of the head-frame surface point.

    Each is a sum of a few random plane waves over head (x, y): smooth blotches for skin, waves much
    finer across than along for hair strands.
    """
    rng = np.random.default_rng(seed)
    x, y = surface[..., 0], surface[..., 1]
    skin = np.ones_like(x)
    for amplitude, frequency in ((0.03, 6.0), (0.025, 11.0), (0.015, 23.0)):
        fx, fy = (frequency / np.sqrt(2.0) * rng.normal(0.0, 1.0, 2)).astype(np.float32)
        skin += np.float32(amplitude) * np.sin(fx * x + fy * y + np.float32(rng.uniform(0.0, 2.0 * np.pi)))
    hair = np.ones_like(x)
    for amplitude, frequency in ((0.1, 25.0), (0.08, 47.0), (0.05, 90.0)):
        fx, fy = np.float32(frequency), np.float32(frequency * rng.normal(0.0, 0.15))
        hair += np.float32(amplitude) * np.sin(fx * x + fy * y + np.float32(rng.uniform(0.0, 2.0 * np.pi)))
    return skin, hair


def _camera_effects(image: np.ndarray, scene: FaceScene) -> np.ndarray:
    size = image.shape[0]
    ramp = np.linspace(-0.15, 0.15, size, dtype=np.float32)
    gradient = 1.0 + scene.light_direction[0] * ramp[None, :] + scene.light_direction[1] * ramp[:, None]
    image = image * (gradient[..., None] * scene.tint.astype(np.float32))
    if scene.blur_sigma > 0.0:
        image = ndimage.gaussian_filter(
            image, sigma=(scene.blur_sigma, scene.blur_sigma, 0.0), mode="nearest"
        )
    if scene.noise_sigma > 0.0:
        noise = np.random.default_rng(scene.noise_seed).standard_normal(image.shape, dtype=np.float32)
        image += np.float32(scene.noise_sigma) * noise
    image *= 255.0
    image += 0.5
    return np.clip(image, 0.0, 255.0, out=image).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# public generators


def _stack(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([record[key] for record in records]) for key in records[0]}


def _child_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def synthetic_face(seed: int, size: int = 128) -> dict[str, np.ndarray]:
    """One random face image, a deterministic function of `seed`.

    Args:
      seed: non-negative integer.
      size: output height = width in pixels (>= 16).

    Returns:
      dict with image uint8 [size, size, 3]; landmarks float32 [68, 2] (x, y) pixels (iBUG 300-W order,
      pixel centres at integers); visibility bool [68]; attributes float32 [A] in FACE_ATTRIBUTE_NAMES
      order; face_box float32 [4] (x0, y0, x1, y1) pixels, the bounding box of the 68 landmarks.
    """
    _check_seed(seed)
    _check_size(size)
    rng = np.random.default_rng(seed)
    return render_face(*sample_face(rng, size), size=size)


def synthetic_faces(seed: int, num: int, size: int = 128) -> dict[str, np.ndarray]:
    """`num` random faces stacked along a leading axis (keys and shapes as `synthetic_face`, with [N]).

    Face i is `synthetic_face(s_i, size)` for a seed s_i derived from (seed, i), so different `seed`
    values give unrelated sets.
    """
    _check_seed(seed)
    _check_size(size)
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    return _stack([synthetic_face(_child_seed(seed, i), size) for i in range(num)])


def _smooth_track(rng: np.random.Generator, num_frames: int, amplitude: float, motion: float) -> np.ndarray:
    """A smooth random signal [T] with zero mean offset: a sum of two low-frequency sinusoids."""
    t = np.arange(num_frames, dtype=np.float64)
    frequencies = rng.uniform(0.06, 0.3, 2) * motion
    phases = rng.uniform(0.0, 2.0 * np.pi, 2)
    weights = rng.uniform(0.3, 1.0, 2)
    weights *= amplitude / weights.sum()
    return (
        weights[:, None] * (np.sin(frequencies[:, None] * t + phases[:, None]) - np.sin(phases[:, None]))
    ).sum(0)


def _squash(value: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map an unbounded signal smoothly into (low, high)."""
    return low + (high - low) * 0.5 * (1.0 + np.tanh(value))


def _unsquash(value: float, low: float, high: float) -> float:
    fraction = np.clip((value - low) / (high - low), 0.02, 0.98)
    return float(np.arctanh(2.0 * fraction - 1.0))


def synthetic_face_clip(
    seed: int, num_frames: int = 8, size: int = 128, *, motion: float = 1.0
) -> dict[str, np.ndarray]:
    """A video clip of one face whose pose, expression, gaze, position and scale move smoothly.

    Identity, background, light and camera settings stay fixed; each parameter follows a sum of two
    low-frequency sinusoids (bounded parameters pass through a smooth squashing function), and an
    occluder, when present, drifts smoothly too. Sensor noise is drawn afresh per frame.

    Args:
      seed: non-negative integer; the clip is a deterministic function of it.
      num_frames: T >= 1.
      size: frame height = width in pixels (>= 16).
      motion: speed multiplier for every trajectory (1.0: landmarks move about 1-3 pixels per frame at
        128 px; 0: a still face).

    Returns:
      dict with frames uint8 [T, size, size, 3]; landmarks float32 [T, 68, 2] (x, y) pixels;
      visibility bool [T, 68]; attributes float32 [T, A] (FACE_ATTRIBUTE_NAMES order); face_box
      float32 [T, 4] (x0, y0, x1, y1) pixels.
    """
    _check_seed(seed)
    _check_size(size)
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not motion >= 0.0:
        raise ValueError(f"motion must be >= 0, got {motion!r}")
    rng = np.random.default_rng(seed)
    identity, base, scene = sample_face(rng, size)
    states = _state_trajectory(rng, base, num_frames, size, motion)
    occluder_offsets = np.stack([_smooth_track(rng, num_frames, 0.15 * size, motion) for _ in range(2)], -1)
    background = _background(scene.background_seed, size)
    records = []
    for t, state in enumerate(states):
        frame_scene = dataclasses.replace(scene, noise_seed=_child_seed(scene.noise_seed, t))
        if scene.occluder is not None:
            center = np.asarray(scene.occluder.center) + occluder_offsets[t]
            occluder = dataclasses.replace(scene.occluder, center=(float(center[0]), float(center[1])))
            frame_scene = dataclasses.replace(frame_scene, occluder=occluder)
        records.append(_render(identity, state, frame_scene, size, background))
    clip = _stack(records)
    clip["frames"] = clip.pop("image")
    return clip


_BOUNDED_TRACKS = {  # name: (low, high, amplitude of the unbounded signal)
    "smile": (0.0, 1.0, 1.2),
    "mouth_open": (0.0, 1.0, 1.2),
    "eyes_open": (0.0, 1.0, 0.8),
    "brow_raise": (-1.0, 1.0, 0.8),
    "gaze_x": (-1.0, 1.0, 1.0),
    "gaze_y": (-1.0, 1.0, 0.8),
}
_ANGLE_TRACKS = {"yaw": (0.75, 0.3), "pitch": (0.4, 0.15), "roll": (0.5, 0.12)}  # name: (limit, amplitude)


def _state_trajectory(
    rng: np.random.Generator, base: FaceState, num_frames: int, size: int, motion: float
) -> list[FaceState]:
    values: dict[str, np.ndarray] = {}
    for name, (limit, amplitude) in _ANGLE_TRACKS.items():
        start = np.clip(getattr(base, name), -0.7 * limit, 0.7 * limit) / limit
        track = np.arctanh(start) + _smooth_track(rng, num_frames, amplitude / limit * 1.5, motion)
        values[name] = limit * np.tanh(track)
    for name, (low, high, amplitude) in _BOUNDED_TRACKS.items():
        start = getattr(base, name)
        if name == "eyes_open":
            start = max(start, 0.5)
        values[name] = _squash(
            _unsquash(start, low, high) + _smooth_track(rng, num_frames, amplitude, motion), low, high
        )
    center_x = base.center[0] + _smooth_track(rng, num_frames, 0.06 * size, motion)
    center_y = base.center[1] + _smooth_track(rng, num_frames, 0.05 * size, motion)
    scale = base.scale * np.exp(_smooth_track(rng, num_frames, 0.08, motion))
    return [
        FaceState(
            **{name: float(values[name][t]) for name in FACE_ATTRIBUTE_NAMES},
            center=(float(center_x[t]), float(center_y[t])),
            scale=float(scale[t]),
        )
        for t in range(num_frames)
    ]
