"""Procedural people for HMR: posed synthetic SMPL bodies rendered over cluttered backgrounds.

A record is a body of the synthetic SMPL-format model (`landmarkjax.body.make_synthetic_smpl`) in a pose
sampled within per-joint limits (`BODY_POSE_LIMITS`), a random global orientation and shape, seen by HMR's
weak-perspective camera and rasterised (numpy, z-buffered triangles, per-part Lambert shading) over a
textured background from `_textures`, optionally with occluder rectangles. Everything is a deterministic
function of a seed.

Frames and units:
  * body / camera frame: the camera looks along +z; x points to the image's right, y down, z away from the
    camera (right-handed), lengths in metres. SMPL's rest frame (x = the body's left, y = up, z = forward)
    is turned into it by the global orientation, which includes a half turn about x, so a body with
    `yaw = 0` stands upright facing the camera (its left on the image's right).
  * camera [3] = [s, tx, ty], HMR's weak perspective (`landmarkjax.ops.weak_perspective_project`):
    normalised image coordinates u = s * (X[:2] + t), with u = -1 / +1 at the centres of the first / last
    pixel; pixels p = (u + 1) * (S - 1) / 2 (x, y), pixel centres at integers (`ops.normalized_to_pixels`).
  * pose [72] axis-angle in radians: 3 global orientation (in the camera frame above) + 23 body joints
    relative to their parents, SMPL's joint order (`landmarkjax.body.SMPL_JOINT_NAMES[1:]`).

The "mocap" set for the adversarial prior (`synthetic_mocap`) draws poses and shapes from the same
distribution on its own seed stream, so it never shares a pose with the images of the same seed.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from PIL import Image, ImageDraw

from landmarkjax.body import (
    COCOPLUS_JOINT_NAMES,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPLModel,
    cocoplus_keypoints,
    make_synthetic_smpl,
    smpl_forward,
)
from landmarkjax.data.synthetic._raster import downsample
from landmarkjax.data.synthetic._textures import cluttered_background, pattern, random_colour

__all__ = [
    "BODY_POSE_LIMITS",
    "NUM_BETAS",
    "global_orient_from_angles",
    "PERSON_KEYPOINT_NAMES",
    "rasterize_triangles",
    "render_person",
    "sample_betas",
    "sample_body_pose",
    "sample_camera",
    "sample_global_orient",
    "synthetic_mocap",
    "synthetic_person",
]

NUM_BETAS = 10
PERSON_KEYPOINT_NAMES = COCOPLUS_JOINT_NAMES
_NUM_BODY_JOINTS = 23
_NUM_LSP = 14  # the first 14 cocoplus keypoints are LSP's joints
# Tag of the mocap seed stream: SeedSequence((seed, index, tag)) never meets the images' (seed, index).
_MOCAP_STREAM = 0x6D6F636170

# Per-joint limits of the axis-angle components (x, y, z) in degrees, [low, high], for the midline and
# left-side joints, in SMPL's rest frame (x = the body's left, y = up, z = forward; right-hand rule).
# Loosely anatomical: e.g. hip x < 0 swings the thigh forward, knee x > 0 bends the shin backward, left
# shoulder z < 0 lowers the arm, left elbow y < 0 folds the forearm forward. The right side mirrors the
# left through the x = 0 plane: (x, y, z) -> (x, -y, -z), so its y and z ranges are negated.
_LEFT_AND_MIDLINE_LIMITS_DEG = {
    "left_hip": ((-90, 25), (-25, 25), (-15, 45)),
    "spine1": ((-10, 30), (-15, 15), (-12, 12)),
    "left_knee": ((0, 120), (-5, 5), (-5, 5)),
    "spine2": ((-10, 20), (-15, 15), (-10, 10)),
    "left_ankle": ((-25, 35), (-15, 15), (-15, 15)),
    "spine3": ((-10, 20), (-15, 15), (-10, 10)),
    "left_foot": ((-15, 15), (-5, 5), (-5, 5)),
    "neck": ((-20, 30), (-35, 35), (-15, 15)),
    "left_collar": ((-10, 10), (-15, 15), (-10, 20)),
    "head": ((-20, 25), (-35, 35), (-15, 15)),
    "left_shoulder": ((-40, 40), (-70, 30), (-80, 45)),
    "left_elbow": ((-20, 20), (-130, 0), (-10, 10)),
    "left_wrist": ((-35, 35), (-30, 30), (-30, 30)),
    "left_hand": ((-15, 15), (-15, 15), (-15, 15)),
}


def _pose_limits() -> np.ndarray:
    limits = np.zeros((_NUM_BODY_JOINTS, 3, 2), np.float64)
    for joint, name in enumerate(SMPL_JOINT_NAMES[1:]):
        if name.startswith("right_"):
            left = np.asarray(_LEFT_AND_MIDLINE_LIMITS_DEG["left_" + name[len("right_") :]], np.float64)
            mirrored = left.copy()
            mirrored[1:] = -left[1:, ::-1]
            limits[joint] = mirrored
        else:
            limits[joint] = _LEFT_AND_MIDLINE_LIMITS_DEG[name]
    limits = np.deg2rad(limits).astype(np.float32)
    limits.setflags(write=False)
    return limits


# [23, 3, 2] float32 radians: [low, high] of each axis-angle component (x, y, z) of SMPL's 23 body joints
# (`SMPL_JOINT_NAMES[1:]` order), in the parent's frame. Right joints mirror the left ones (see above).
BODY_POSE_LIMITS: np.ndarray = _pose_limits()

# Parts painted with one clothing colour, by the dominant skinning joint of a triangle.
_SKIN_JOINTS = ("head", "neck", "left_wrist", "right_wrist", "left_hand", "right_hand")
_TOP_JOINTS = ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder")
_SLEEVE_JOINTS = ("left_elbow", "right_elbow")
_BOTTOM_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee")
_SHOE_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")
_JOINT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}
# Keypoints on the head's surface -> how far (metres) the surface at their pixel may lie in front of them
# before they count as hidden (the head faces away). Ears sit on the silhouette of a frontal head, where
# the nearest surface at their pixel is the side of the head, a few centimetres in front.
_SURFACE_TOLERANCE = {"nose": 0.03, "left_eye": 0.03, "right_eye": 0.03, "left_ear": 0.07, "right_ear": 0.07}
_LIGHT = np.asarray([-0.35, -0.55, -1.0]) / np.linalg.norm([-0.35, -0.55, -1.0])  # towards the light


def _own_joints() -> list[frozenset[int]]:
    """For each cocoplus keypoint, the skinning joints of the body parts it sits in (never hide it)."""
    children: dict[int, set[int]] = {}
    for joint, parent in enumerate(SMPL_PARENTS):
        children.setdefault(parent, set()).add(joint)
    own = []
    for name in COCOPLUS_JOINT_NAMES:
        joint = _JOINT.get(name, _JOINT["head"])
        members = {joint, *children.get(joint, ())}
        if SMPL_PARENTS[joint] >= 0:
            members.add(SMPL_PARENTS[joint])
        own.append(frozenset(members))
    return own


_OWN_JOINTS = _own_joints()


def _check_rng(rng: np.random.Generator) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def sample_body_pose(rng: np.random.Generator) -> np.ndarray:
    """A body pose within `BODY_POSE_LIMITS`.

    Each axis-angle component of each joint is drawn independently: uniformly within its limits with
    probability 0.7, else from a normal around 0 (the rest pose) of a third of the range's half-width, cut
    to the limits, so relaxed poses are more common than extreme ones.

    Args:
      rng: the numpy generator to draw from.

    Returns:
      float32 [69]: axis-angle (radians) of SMPL's 23 body joints relative to their parents, in
      `SMPL_JOINT_NAMES[1:]` order; component 3 j + a is `BODY_POSE_LIMITS[j, a]`-bounded.
    """
    rng = _check_rng(rng)
    low, high = BODY_POSE_LIMITS[..., 0].astype(np.float64), BODY_POSE_LIMITS[..., 1].astype(np.float64)
    uniform = rng.uniform(low, high)
    relaxed = np.clip(rng.normal(0.0, (high - low) / 6.0), low, high)
    pose = np.where(rng.random(low.shape) < 0.7, uniform, relaxed)
    return np.clip(pose.astype(np.float32), BODY_POSE_LIMITS[..., 0], BODY_POSE_LIMITS[..., 1]).reshape(-1)


def _axis_angle_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> [3] axis-angle (radians), exact for angles up to pi."""
    cos = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if np.pi - angle < 1e-4:
        # Near a half turn: the axis is the column of (R + I) / 2 of largest norm.
        symmetric = (rotation + np.eye(3)) / 2.0
        axis = symmetric[:, np.argmax(np.diag(symmetric))]
        return axis / np.linalg.norm(axis) * angle
    vector = np.asarray(
        [rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]
    )
    return vector / (2.0 * np.sin(angle)) * angle


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def global_orient_from_angles(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """The global orientation (camera frame) of a body turned by yaw, tilted by pitch and rolled by roll.

    R = R_x(pi) R_z(roll) R_x(pitch) R_y(yaw) in SMPL's rest frame, then the half turn about x into the
    camera frame (x right, y down, z away from the camera).

    Args:
      yaw: radians about the body's vertical; 0 faces the camera, pi shows the back.
      pitch: radians about the body's left axis; > 0 leans the body toward the camera.
      roll: radians about the viewing axis.

    Returns:
      float32 [3] axis-angle (radians).
    """
    rotation = _rotation(0, np.pi) @ _rotation(2, roll) @ _rotation(0, pitch) @ _rotation(1, yaw)
    return _axis_angle_from_matrix(rotation).astype(np.float32)


def sample_global_orient(rng: np.random.Generator) -> np.ndarray:
    """A random global orientation: yaw uniform in [-pi, pi), pitch in [-0.3, 0.3], roll in [-0.2, 0.2].

    Args:
      rng: the numpy generator to draw from.

    Returns:
      float32 [3] axis-angle (radians) in the camera frame (see `global_orient_from_angles`).
    """
    rng = _check_rng(rng)
    yaw, pitch, roll = rng.uniform(-np.pi, np.pi), rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)
    return global_orient_from_angles(yaw, pitch, roll)


def sample_betas(rng: np.random.Generator) -> np.ndarray:
    """Shape coefficients: independent standard normals cut to [-2.5, 2.5].

    Returns:
      float32 [NUM_BETAS].
    """
    return np.clip(_check_rng(rng).standard_normal(NUM_BETAS), -2.5, 2.5).astype(np.float32)


def sample_camera(
    rng: np.random.Generator,
    vertices: np.ndarray,
    fill: tuple[float, float] = (0.55, 0.95),
    offset: float = 0.15,
) -> np.ndarray:
    """A weak-perspective camera that frames a posed body, as HMR's person-centred crops do.

    The body's bounding box (x, y of the vertices) spans a fraction `fill` (uniform in the range) of the
    image along its longer side, and its centre lands `offset` * U(-1, 1) (normalised units, per axis) from
    the image centre, so large, shifted bodies are cut by the image border.

    Args:
      rng: the numpy generator to draw from.
      vertices: [V, 3] posed vertices in the camera frame (metres).
      fill: (low, high) fraction of the image side covered by the body's longer side.
      offset: the largest shift of the body's centre, in normalised units (image half-width = 1).

    Returns:
      float32 [3] camera [s, tx, ty]: u = s * (X[:2] + t).
    """
    rng = _check_rng(rng)
    xy = np.asarray(vertices, np.float64)[:, :2]
    low, high = xy.min(axis=0), xy.max(axis=0)
    extent = float(np.max(high - low))
    scale = 2.0 * rng.uniform(*fill) / extent
    shift = rng.uniform(-offset, offset, 2)
    translation = shift / scale - (low + high) / 2.0
    return np.asarray([scale, *translation], np.float32)


@functools.lru_cache(maxsize=4)
def _default_model(model_seed: int) -> SMPLModel:
    return make_synthetic_smpl(seed=model_seed)


@functools.lru_cache(maxsize=1)
def _jitted_forward():
    return jax.jit(smpl_forward)


def _dominant_joints(model: SMPLModel) -> tuple[np.ndarray, np.ndarray]:
    """(faces int64 [F, 3], dominant skinning joint of each face int64 [F]) of a model."""
    faces = np.asarray(model.faces, np.int64)
    weights = np.asarray(model.lbs_weights, np.float64)
    return faces, weights[faces].sum(axis=1).argmax(axis=-1)


def rasterize_triangles(
    points: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered rasterisation of a triangle mesh at pixel centres.

    A pixel (centre (x, y), integers) is covered by a triangle when it lies inside or on its edges; its
    depth is the barycentric interpolation of the vertex depths, and the nearest (smallest depth) triangle
    wins. Degenerate (zero-area) triangles cover nothing. Vectorised: every triangle's bounding box is
    expanded into candidate pixels at once.

    Args:
      points: [V, 2] (x, y) vertex positions in pixels.
      depth: [V] vertex depths (any unit; smaller is nearer).
      faces: [F, 3] int vertex indices.
      height, width: the image size in pixels.

    Returns:
      face_index: int64 [height, width], the triangle seen at each pixel, -1 where none.
      z_buffer: float64 [height, width], its depth there, +inf where none.
    """
    points = np.asarray(points, np.float64)
    depth = np.asarray(depth, np.float64)
    faces = np.asarray(faces, np.int64)
    if points.ndim != 2 or points.shape[1] != 2 or depth.shape != points.shape[:1]:
        raise ValueError(f"points must be [V, 2] and depth [V], got {points.shape} and {depth.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3], got {faces.shape}")
    face_index = np.full((height, width), -1, np.int64)
    z_buffer = np.full((height, width), np.inf)
    triangles = points[faces]  # [F, 3, 2]
    x0 = np.maximum(np.ceil(triangles[..., 0].min(axis=1) - 1e-9), 0).astype(np.int64)
    x1 = np.minimum(np.floor(triangles[..., 0].max(axis=1) + 1e-9), width - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(triangles[..., 1].min(axis=1) - 1e-9), 0).astype(np.int64)
    y1 = np.minimum(np.floor(triangles[..., 1].max(axis=1) + 1e-9), height - 1).astype(np.int64)
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.flatnonzero((x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12))
    if keep.size == 0:
        return face_index, z_buffer
    box_w, box_h = x1[keep] - x0[keep] + 1, y1[keep] - y0[keep] + 1
    counts = box_w * box_h
    owner = np.repeat(keep, counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = x0[owner] + local % np.repeat(box_w, counts)
    py = y0[owner] + local // np.repeat(box_w, counts)
    pa, pb, pc = a[owner], b[owner], c[owner]
    # Barycentric weights from signed sub-areas, divided by the signed area (either winding).
    w_a = ((pb[:, 0] - px) * (pc[:, 1] - py) - (pb[:, 1] - py) * (pc[:, 0] - px)) / area[owner]
    w_b = ((pc[:, 0] - px) * (pa[:, 1] - py) - (pc[:, 1] - py) * (pa[:, 0] - px)) / area[owner]
    w_c = 1.0 - w_a - w_b
    inside = (w_a >= -1e-9) & (w_b >= -1e-9) & (w_c >= -1e-9)
    owner, px, py = owner[inside], px[inside], py[inside]
    vertex_depth = depth[faces[owner]]
    z = w_a[inside] * vertex_depth[:, 0] + w_b[inside] * vertex_depth[:, 1] + w_c[inside] * vertex_depth[:, 2]
    pixel = py * width + px
    order = np.lexsort((z, pixel))
    pixel, z, owner = pixel[order], z[order], owner[order]
    first = np.ones(pixel.shape, bool)
    first[1:] = pixel[1:] != pixel[:-1]
    face_index.reshape(-1)[pixel[first]] = owner[first]
    z_buffer.reshape(-1)[pixel[first]] = z[first]
    return face_index, z_buffer


def _part_colours(rng: np.random.Generator) -> np.ndarray:
    """[24, 3] float RGB per skinning joint: skin, top, bottom and shoe colours, jittered per part."""
    skin = np.asarray([0.95, 0.75, 0.6]) * rng.uniform(0.45, 1.0) + rng.uniform(-0.05, 0.05, 3)
    top, bottom, shoes = random_colour(rng), random_colour(rng), random_colour(rng, saturation=0.3, high=0.5)
    colours = np.zeros((len(SMPL_JOINT_NAMES), 3))
    groups = [(_SKIN_JOINTS, skin), (_TOP_JOINTS, top), (_BOTTOM_JOINTS, bottom), (_SHOE_JOINTS, shoes)]
    groups.append((_SLEEVE_JOINTS, top if rng.random() < 0.6 else skin))
    for names, colour in groups:
        for name in names:
            colours[_JOINT[name]] = colour
    colours *= rng.uniform(0.9, 1.1, (len(SMPL_JOINT_NAMES), 1))
    return np.clip(colours, 0.0, 1.0)


def _occluders(rng: np.random.Generator, size: int, keypoints: np.ndarray, max_occluders: int) -> list:
    """Rectangles (low [2], high [2] pixels, fill) over random LSP keypoints: Binomial(max, 0.35) of them."""
    count = int(rng.binomial(max_occluders, 0.35)) if max_occluders > 0 else 0
    boxes = []
    for _ in range(count):
        centre = keypoints[rng.integers(_NUM_LSP)] + rng.normal(0.0, 0.05 * size, 2)
        half = rng.uniform(0.08, 0.18, 2) * size
        textured = bool(rng.random() < 0.5)
        fill = pattern(rng, size, size) if textured else random_colour(rng)
        boxes.append((centre - half, centre + half, fill))
    return boxes


def _to_canvas(points: np.ndarray, supersample: int) -> np.ndarray:
    return np.asarray(points, np.float64) * supersample + (supersample - 1) / 2.0


def render_person(
    model: SMPLModel,
    pose: np.ndarray,
    betas: np.ndarray,
    camera: np.ndarray,
    rng: np.random.Generator,
    size: int = 128,
    *,
    max_occluders: int = 2,
    noise_sigma: float = 0.01,
    supersample: int = 2,
    return_layers: bool = False,
) -> dict[str, np.ndarray]:
    """Renders a posed SMPL body with its cocoplus keypoints, with explicit parameters.

    The mesh is rasterised (`rasterize_triangles`) at `supersample` x the output size, each triangle
    coloured by its dominant skinning joint's part colour (skin, top, bottom, shoes; drawn from `rng`) and
    Lambert-shaded by a fixed light (ambient 0.35), over `_textures.cluttered_background`; then
    Binomial(`max_occluders`, 0.35) rectangles (flat or textured) are drawn over random LSP keypoints, the
    canvas is box-filtered down and Gaussian sensor noise is added.

    Visibility of keypoint k is True when (a) its pixel lies inside the image, (b) it is not behind the body:
    at its pixel the nearest surface belongs to one of the parts the keypoint sits in (its joint, the
    joint's parent or children, by dominant skinning joint) or lies behind the keypoint; for the nose and
    eyes, which lie on the head's surface, that surface must also be less than 3 cm in front of them (7 cm
    for the ears, on the silhouette of a frontal head), so they are hidden when the head faces away; and
    (c) no occluder covers it.

    Args:
      model: an SMPL-format model with a cocoplus regressor (`make_synthetic_smpl`).
      pose: [72] axis-angle radians: global orientation (camera frame) + 23 body joints.
      betas: [S'] shape coefficients, S' <= the model's.
      camera: [3] weak-perspective [s, tx, ty] (see the module docstring).
      rng: the generator for colours, background, occluders and noise.
      size: image side S in pixels.
      max_occluders: at most this many occluder rectangles (the count is Binomial(max, 0.35)).
      noise_sigma: standard deviation of the additive sensor noise (image in [0, 1]).
      supersample: rendering resolution factor (anti-aliasing).
      return_layers: also return `background` uint8 [S, S, 3] (the image before the body and occluders).

    Returns:
      dict with image uint8 [S, S, 3]; keypoints_2d float32 [19, 2] (x, y) pixels in
      `COCOPLUS_JOINT_NAMES` order; visibility bool [19]; joints_3d float32 [19, 3] camera frame, metres,
      no translation; mask bool [S, S], pixels at least half covered by the body and not by an occluder;
      and with `return_layers`, background.
    """
    rng = _check_rng(rng)
    pose = np.asarray(pose, np.float32)
    betas = np.asarray(betas, np.float32)
    camera = np.asarray(camera, np.float32)
    if pose.shape != (72,):
        raise ValueError(
            f"pose must have shape [72] (global orientation + 23 joints, axis-angle), got {pose.shape}"
        )
    if camera.shape != (3,) or not camera[0] > 0:
        raise ValueError(f"camera must be [s, tx, ty] with s > 0, got {camera}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    output = _jitted_forward()(model, betas, pose[3:], pose[:3])
    vertices = np.asarray(output.vertices, np.float64)
    keypoints, valid = cocoplus_keypoints(output)
    if not bool(np.all(np.asarray(valid))):
        raise ValueError("model must carry a cocoplus regressor (19 keypoints), e.g. make_synthetic_smpl")
    joints_3d = np.asarray(keypoints, np.float64)
    scale, translation = float(camera[0]), camera[1:].astype(np.float64)
    half = (size - 1) / 2.0

    def to_pixels(points: np.ndarray) -> np.ndarray:
        return (scale * (points[:, :2] + translation) + 1.0) * half

    keypoints_2d = to_pixels(joints_3d)
    canvas_size = size * supersample
    faces, dominant = _dominant_joints(model)
    face_index, z_buffer = rasterize_triangles(
        _to_canvas(to_pixels(vertices), supersample), vertices[:, 2], faces, canvas_size, canvas_size
    )
    # Lambert shading of each triangle (normals point out of the closed mesh: counter-clockwise faces).
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    shade = 0.35 + 0.65 * np.maximum(normals @ _LIGHT, 0.0)
    face_colours = _part_colours(rng)[dominant] * shade[:, None]

    background = cluttered_background(rng, size, size, supersample)
    canvas = np.asarray(background, np.float32) / 255.0
    body = face_index >= 0
    canvas[body] = face_colours[face_index[body]]
    covered = np.zeros(body.shape, bool)
    image = Image.fromarray((np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")
    occluders = _occluders(rng, size, keypoints_2d, max_occluders)
    for low, high, fill in occluders:
        box = np.concatenate([_to_canvas(low, supersample), _to_canvas(high, supersample)]).tolist()
        mask_image = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask_image).rectangle(box, fill=255)
        if isinstance(fill, np.ndarray) and fill.ndim == 3:
            texture = Image.fromarray((fill * 255.0 + 0.5).astype(np.uint8), mode="RGB")
            image.paste(texture.resize(image.size, Image.BILINEAR), (0, 0), mask_image)
        else:
            image.paste(tuple(int(v * 255 + 0.5) for v in fill), (0, 0), mask_image)
        covered |= np.asarray(mask_image) > 0
    pixels = downsample(image, supersample)
    if noise_sigma > 0.0:
        pixels = pixels + np.float32(noise_sigma) * rng.standard_normal(pixels.shape, dtype=np.float32)
    image_u8 = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    body_layer = Image.fromarray(((body & ~covered) * 255).astype(np.uint8), mode="L")
    mask = downsample(body_layer, supersample) >= 0.5

    visibility = _visibility(keypoints_2d, joints_3d[:, 2], face_index, z_buffer, dominant, covered, size,
                             supersample)
    record = {
        "image": image_u8,
        "keypoints_2d": keypoints_2d.astype(np.float32),
        "visibility": visibility,
        "joints_3d": joints_3d.astype(np.float32),
        "mask": mask,
    }
    if return_layers:
        record["background"] = np.asarray(background.reduce(supersample) if supersample > 1 else background)
    return record


def _visibility(keypoints_2d, keypoint_depth, face_index, z_buffer, dominant, covered, size, supersample):
    """bool [19]: inside the image, not behind another part of the body, not under an occluder."""
    inside = np.all((keypoints_2d >= -0.5) & (keypoints_2d < size - 0.5), axis=-1)
    canvas = np.rint(_to_canvas(keypoints_2d, supersample)).astype(np.int64)
    canvas = np.clip(canvas, 0, size * supersample - 1)
    seen_face = face_index[canvas[:, 1], canvas[:, 0]]
    surface_depth = z_buffer[canvas[:, 1], canvas[:, 0]]
    visible = inside.copy()
    for k, name in enumerate(COCOPLUS_JOINT_NAMES):
        if not inside[k] or covered[canvas[k, 1], canvas[k, 0]]:
            visible[k] = False
            continue
        if seen_face[k] < 0:
            continue
        in_front = surface_depth[k] < keypoint_depth[k]
        if in_front and int(dominant[seen_face[k]]) not in _OWN_JOINTS[k]:
            visible[k] = False
        elif name in _SURFACE_TOLERANCE and surface_depth[k] < keypoint_depth[k] - _SURFACE_TOLERANCE[name]:
            visible[k] = False
    return visible


def _check_seed(seed: int) -> int:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def synthetic_person(
    seed: int,
    size: int = 128,
    *,
    model_seed: int = 0,
    max_occluders: int = 2,
    return_layers: bool = False,
) -> dict[str, np.ndarray]:
    """One procedural person image with HMR's labels, deterministic from `seed`.

    Draws, in order: body pose (`sample_body_pose`), global orientation (`sample_global_orient`), betas
    (`sample_betas`), camera (`sample_camera`, from the posed body), then the rendering's colours,
    background, occluders and noise (`render_person`).

    Args:
      seed: the record's seed (>= 0).
      size: image side S in pixels.
      model_seed: seed of the synthetic SMPL-format model (`make_synthetic_smpl(model_seed)`).
      max_occluders: at most this many occluder rectangles.
      return_layers: also return the background (see `render_person`).

    Returns:
      dict with image uint8 [S, S, 3]; keypoints_2d float32 [19, 2] (x, y) pixels, `COCOPLUS_JOINT_NAMES`
      order; visibility bool [19]; joints_3d float32 [19, 3] (camera frame, metres, no translation);
      mask bool [S, S]; pose float32 [72] (axis-angle radians, global orientation first); betas float32
      [10]; camera float32 [3] ([s, tx, ty], normalised image units; see the module docstring).
    """
    rng = np.random.default_rng(_check_seed(seed))
    model = _default_model(int(model_seed))
    body_pose = sample_body_pose(rng)
    global_orient = sample_global_orient(rng)
    betas = sample_betas(rng)
    output = _jitted_forward()(model, betas, body_pose, global_orient)
    camera = sample_camera(rng, np.asarray(output.vertices))
    pose = np.concatenate([global_orient, body_pose]).astype(np.float32)
    record = render_person(model, pose, betas, camera, rng, size, max_occluders=max_occluders,
                           return_layers=return_layers)
    record.update(pose=pose, betas=betas, camera=camera)
    return record


def synthetic_mocap(seed: int, index: int) -> dict[str, np.ndarray]:
    """Pose and shape number `index` of the "mocap" set for HMR's adversarial prior.

    Same distribution as the images' bodies (`sample_body_pose`, `sample_global_orient`, `sample_betas`),
    drawn from its own stream, `numpy.random.SeedSequence((seed, index, tag))`, which the images' streams
    (`(seed, index)` in `landmarkjax.data.sources.derive_seed`) never share: the prior sees plausible bodies,
    never the poses of the images it judges.

    Args:
      seed: the set's seed (>= 0).
      index: the element's index (>= 0).

    Returns:
      dict with pose float32 [72] (axis-angle radians, global orientation first) and betas float32 [10].
    """
    seed, index = _check_seed(seed), _check_seed(index)
    rng = np.random.default_rng(np.random.SeedSequence((seed, index, _MOCAP_STREAM)))
    body_pose = sample_body_pose(rng)
    global_orient = sample_global_orient(rng)
    betas = sample_betas(rng)
    return {"pose": np.concatenate([global_orient, body_pose]).astype(np.float32), "betas": betas}
