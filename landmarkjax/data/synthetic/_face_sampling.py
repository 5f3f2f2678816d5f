"""Synthetic faces, private: random identities, states, occluders and scenes, and their mirror image.

Every sampler draws from an explicit numpy `Generator`, in a fixed order (the rendered images depend on
it). The public names are re-exported by `landmarkjax.data.synthetic.faces`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from landmarkjax.data.synthetic import _face_shape as geometry
from landmarkjax.data.synthetic import _textures as textures
from landmarkjax.data.synthetic._face_params import (
    HAIR_STYLES,
    OCCLUDER_KINDS,
    FaceIdentity,
    FaceScene,
    FaceState,
    Occluder,
    check_size,
)
from landmarkjax.face_layout import MIRROR_NEGATED_ATTRIBUTES

__all__ = [
    "sample_face",
    "sample_identity",
    "sample_state",
    "sample_scene",
    "sample_occluder",
    "mirror_face",
]

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


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**62))


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
    check_size(size)
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
