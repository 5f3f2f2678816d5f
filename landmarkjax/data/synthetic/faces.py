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

This module holds the public generators and re-exports the public names; the code lives in private
modules by concern: `_face_params` (the parameter records), `_face_sampling` (random parameters and the
mirror), `_face_drawing` (projection and the painters of each face part), `_face_render` (rendering,
lighting, camera effects) and `_face_motion` (clip trajectories).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from landmarkjax.data.synthetic._face_motion import smooth_track, state_trajectory
from landmarkjax.data.synthetic._face_params import (
    FACE_ATTRIBUTE_NAMES,
    HAIR_STYLES,
    OCCLUDER_KINDS,
    FaceIdentity,
    FaceScene,
    FaceState,
    Occluder,
    check_seed,
    check_size,
)
from landmarkjax.data.synthetic._face_render import (
    face_geometry,
    render_background,
    render_face,
    render_with_background,
)
from landmarkjax.data.synthetic._face_sampling import (
    mirror_face,
    sample_face,
    sample_identity,
    sample_occluder,
    sample_scene,
    sample_state,
)

__all__ = [
    "FACE_ATTRIBUTE_NAMES",
    "FACE_COVERAGES",
    "in_coverage",
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


#: The face distributions `synthetic_face` draws from: "full", the whole generator; "narrow", near-frontal
#: (|yaw| < 0.2 rad), unoccluded, sharp faces with the mouth nearly closed (mouth_open < 0.2): about 12 % of
#: the full distribution, the labelled set of SBR's coverage-gap experiment (`data.train_coverage`).
FACE_COVERAGES: tuple[str, ...] = ("full", "narrow")


def in_coverage(state: FaceState, scene: FaceScene, coverage: str) -> bool:
    """Whether a face with these parameters belongs to `coverage` (one of FACE_COVERAGES)."""
    if coverage not in FACE_COVERAGES:
        raise ValueError(f"coverage must be one of {FACE_COVERAGES}; got {coverage!r}")
    if coverage == "full":
        return True
    return abs(state.yaw) < 0.2 and scene.occluder is None and scene.blur_sigma == 0.0 and state.mouth_open < 0.2


def _stack(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([record[key] for record in records]) for key in records[0]}


def _child_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def synthetic_face(seed: int, size: int = 128, coverage: str = "full") -> dict[str, np.ndarray]:
    """One random face image, a deterministic function of `seed` (and `coverage`).

    Args:
      seed: non-negative integer.
      size: output height = width in pixels (>= 16).
      coverage: one of FACE_COVERAGES. "narrow" draws parameters from `seed`, then from seeds derived from
        it, until they fall in that coverage (rejection sampling: the narrow faces keep the full
        generator's conditional distribution; about 8 draws per face, each far cheaper than a render).

    Returns:
      dict with image uint8 [size, size, 3]; landmarks float32 [68, 2] (x, y) pixels (iBUG 300-W order,
      pixel centres at integers); visibility bool [68]; attributes float32 [A] in FACE_ATTRIBUTE_NAMES
      order; face_box float32 [4] (x0, y0, x1, y1) pixels, the bounding box of the 68 landmarks.
    """
    check_seed(seed)
    check_size(size)
    if coverage not in FACE_COVERAGES:
        raise ValueError(f"coverage must be one of {FACE_COVERAGES}; got {coverage!r}")
    parameters = sample_face(np.random.default_rng(seed), size)
    attempt = 0
    while not in_coverage(parameters[1], parameters[2], coverage):
        attempt += 1
        parameters = sample_face(np.random.default_rng(_child_seed(seed, attempt)), size)
    return render_face(*parameters, size=size)


def synthetic_faces(seed: int, num: int, size: int = 128) -> dict[str, np.ndarray]:
    """`num` random faces stacked along a leading axis (keys and shapes as `synthetic_face`, with [N]).

    Face i is `synthetic_face(s_i, size)` for a seed s_i derived from (seed, i), so different `seed`
    values give unrelated sets.
    """
    check_seed(seed)
    check_size(size)
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    return _stack([synthetic_face(_child_seed(seed, i), size) for i in range(num)])


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
    check_seed(seed)
    check_size(size)
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not motion >= 0.0:
        raise ValueError(f"motion must be >= 0, got {motion!r}")
    rng = np.random.default_rng(seed)
    identity, base, scene = sample_face(rng, size)
    states = state_trajectory(rng, base, num_frames, size, motion)
    occluder_offsets = np.stack([smooth_track(rng, num_frames, 0.15 * size, motion) for _ in range(2)], -1)
    background = render_background(scene.background_seed, size)
    records = []
    for t, state in enumerate(states):
        frame_scene = dataclasses.replace(scene, noise_seed=_child_seed(scene.noise_seed, t))
        if scene.occluder is not None:
            center = np.asarray(scene.occluder.center) + occluder_offsets[t]
            occluder = dataclasses.replace(scene.occluder, center=(float(center[0]), float(center[1])))
            frame_scene = dataclasses.replace(frame_scene, occluder=occluder)
        records.append(render_with_background(identity, state, frame_scene, size, background))
    clip = _stack(records)
    clip["frames"] = clip.pop("image")
    return clip
