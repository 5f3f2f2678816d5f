"""A procedural SMPL-format body model, so that everything runs without the licensed SMPL files.

`make_synthetic_smpl(seed)` builds a body in SMPL's rest pose (T-pose, metres, x = the body's left, y = up,
z = forward) with SMPL's 24-joint kinematic tree and joint names:

- mesh: one closed tube per body part (torso, neck, head, and per side a leg, a foot, an arm from the
  collar to the wrist and a hand), each a chain of elliptical rings around a polyline of joints with
  rounded end caps, merged into one mesh of about 4,300 vertices;
- `J_regressor`: each joint is the mean of the vertex rings that sit at it (so rows are sparse, sum to 1,
  and the regressed rest joints are exactly the design joints);
- skinning weights: a softmax over the joints a part may bend with of minus the squared distance to each
  joint's bone, cut to the 4 largest per vertex as SMPL does, so they blend across every joint;
- 10 shape directions: stature, girth, leg length, arm length, shoulder width, torso length, head size,
  hip width, limb thickness and chest depth;
- 207 small pose correctives (a few millimetres per unit of (R - I)) near each joint;
- `cocoplus_regressor` [19, V], HMR's 14 LSP joints plus nose, eyes and ears (`COCOPLUS_JOINT_NAMES`).

The seed varies body proportions (segment lengths and radii, symmetric left/right), the strength of each
shape direction and the pose correctives, on one mesh topology shared by all seeds; the same seed always
gives the same arrays.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from landmarkjax.body.io import save_smpl, smpl_from_arrays
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES, SMPL_PARENTS, SMPLModel

__all__ = ["COCOPLUS_JOINT_NAMES", "make_synthetic_smpl", "synthetic_smpl_arrays", "write_synthetic_smpl"]

COCOPLUS_JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
)

_JOINT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}
_NUM_BETAS = 10
_RINGS_PER_METRE = 45

# Left-side and midline design points (metres); the right side mirrors x.
_DESIGN_POINTS = {
    "torso_bottom": (0.0, -0.11, 0.0),
    "pelvis": (0.0, 0.0, 0.0),
    "spine1": (0.0, 0.11, -0.015),
    "spine2": (0.0, 0.24, -0.005),
    "spine3": (0.0, 0.30, 0.0),
    "chest_top": (0.0, 0.43, -0.01),
    "neck": (0.0, 0.52, -0.02),
    "head": (0.0, 0.60, 0.0),
    "head_centre": (0.0, 0.71, 0.02),
    "left_hip": (0.085, -0.08, -0.005),
    "left_knee": (0.10, -0.47, 0.005),
    "left_ankle": (0.10, -0.88, -0.03),
    "left_foot": (0.11, -0.94, 0.09),
    "left_toe_tip": (0.11, -0.95, 0.16),
    "left_collar": (0.075, 0.44, -0.01),
    "left_shoulder": (0.18, 0.46, -0.02),
    "left_elbow": (0.43, 0.45, -0.03),
    "left_wrist": (0.68, 0.45, -0.02),
    "left_hand": (0.77, 0.45, -0.02),
    "left_finger_tip": (0.86, 0.45, -0.02),
}
_HEAD_RADII = (0.085, 0.115, 0.10)  # x, y, z semi-axes of the head ellipsoid


@dataclasses.dataclass(frozen=True)
class _Part:
    """A tube around a polyline of named points."""

    name: str
    nodes: tuple[str, ...]
    radii: tuple[float, ...]  # ring radius (along the first cross-section axis) at each node
    aspect: float  # second cross-section semi-axis / first
    reference: tuple[float, float, float]  # direction the first cross-section axis leans towards
    around: int  # vertices per ring
    candidates: tuple[str, ...]  # joints whose bones may skin this part
    sigma: float  # skinning blend width (metres)
    side: str = ""  # "left", "right" or "" (midline)


def _parts() -> list[_Part]:
    parts = [
        _Part(
            "torso",
            ("torso_bottom", "pelvis", "spine1", "spine2", "spine3", "chest_top", "neck"),
            (0.125, 0.155, 0.14, 0.145, 0.155, 0.16, 0.06),
            0.65,
            (1.0, 0.0, 0.0),
            24,
            (
                "pelvis",
                "left_hip",
                "right_hip",
                "spine1",
                "spine2",
                "spine3",
                "neck",
                "left_collar",
                "right_collar",
            ),
            0.05,
        ),
        _Part(
            "neck",
            ("neck", "head"),
            (0.055, 0.05),
            1.0,
            (1.0, 0.0, 0.0),
            14,
            ("spine3", "neck", "head"),
            0.03,
        ),
    ]
    for side in ("left", "right"):
        parts += [
            _Part(
                f"{side}_leg",
                (f"{side}_hip", f"{side}_knee", f"{side}_ankle"),
                (0.085, 0.055, 0.04),
                1.0,
                (0.0, 0.0, 1.0),
                16,
                ("pelvis", f"{side}_hip", f"{side}_knee", f"{side}_ankle"),
                0.04,
                side,
            ),
            _Part(
                f"{side}_foot",
                (f"{side}_ankle", f"{side}_foot", f"{side}_toe_tip"),
                (0.042, 0.04, 0.03),
                0.6,
                (1.0, 0.0, 0.0),
                12,
                (f"{side}_knee", f"{side}_ankle", f"{side}_foot"),
                0.025,
                side,
            ),
            _Part(
                f"{side}_arm",
                (f"{side}_collar", f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"),
                (0.06, 0.055, 0.04, 0.03),
                1.0,
                (0.0, 0.0, 1.0),
                14,
                ("spine3", f"{side}_collar", f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist"),
                0.035,
                side,
            ),
            _Part(
                f"{side}_hand",
                (f"{side}_wrist", f"{side}_hand", f"{side}_finger_tip"),
                (0.032, 0.038, 0.022),
                0.4,
                (0.0, 0.0, 1.0),
                12,
                (f"{side}_elbow", f"{side}_wrist", f"{side}_hand"),
                0.02,
                side,
            ),
        ]
    return parts


def _bone_ends() -> dict[str, str]:
    """The point each joint's bone runs to (its child, or an end point for leaves)."""
    ends = {"pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head"}
    ends["head"] = "head_top"
    for side in ("left", "right"):
        ends.update(
            {
                f"{side}_hip": f"{side}_knee",
                f"{side}_knee": f"{side}_ankle",
                f"{side}_ankle": f"{side}_foot",
                f"{side}_foot": f"{side}_toe_tip",
                f"{side}_collar": f"{side}_shoulder",
                f"{side}_shoulder": f"{side}_elbow",
                f"{side}_elbow": f"{side}_wrist",
                f"{side}_wrist": f"{side}_hand",
                f"{side}_hand": f"{side}_finger_tip",
            }
        )
    return ends


def _design_points(
    leg_scale: float, arm_scale: float, torso_scale: float, width_scale: float
) -> dict[str, np.ndarray]:
    """Design points with the given (left/right symmetric) proportions."""
    points = {}
    for name, point in _DESIGN_POINTS.items():
        x, y, z = point
        x *= width_scale if abs(x) < 0.2 else 1.0
        if any(key in name for key in ("hip", "knee", "ankle", "foot", "toe")):
            y = -0.08 + (y + 0.08) * leg_scale
        elif any(key in name for key in ("elbow", "wrist", "hand", "finger")):
            x = 0.18 * width_scale + (x - 0.18) * arm_scale
        if y > 0 and not any(key in name for key in ("hip", "knee", "ankle", "foot", "toe")):
            y *= torso_scale
        points[name] = np.array([x, y, z])
        if name.startswith("left_"):
            points["right_" + name[len("left_") :]] = np.array([-x, y, z])
    centre = points["head_centre"]
    points["head_top"] = centre + np.array([0.0, _HEAD_RADII[1], 0.0])
    return points


def _frame(direction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = reference - np.dot(reference, direction) * direction
    if np.linalg.norm(first) < 1e-6:
        first = np.cross(direction, [0.0, 0.0, 1.0])
    first /= np.linalg.norm(first)
    return first, np.cross(direction, first)


@dataclasses.dataclass
class _Mesh:
    vertices: list[np.ndarray] = dataclasses.field(default_factory=list)
    faces: list[np.ndarray] = dataclasses.field(default_factory=list)
    centres: list[np.ndarray] = dataclasses.field(default_factory=list)  # ring centre of each vertex
    part_of_vertex: list[np.ndarray] = dataclasses.field(default_factory=list)
    joint_rings: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    head_top_vertex: int = -1
    count: int = 0


def _ring_layout(
    points: np.ndarray, radii: np.ndarray, rings_per_segment: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Ring centres, radii and axis directions along a polyline; and the ring index of each node."""
    centres, ring_radii, directions, node_rings = [], [], [], []
    for segment, steps in enumerate(rings_per_segment):
        start, end = points[segment], points[segment + 1]
        direction = (end - start) / np.linalg.norm(end - start)
        for step in range(steps):
            t = step / steps
            if step == 0:
                node_rings.append(len(centres))
            centres.append(start + t * (end - start))
            ring_radii.append(radii[segment] + t * (radii[segment + 1] - radii[segment]))
            directions.append(direction)
    node_rings.append(len(centres))
    centres.append(points[-1])
    ring_radii.append(radii[-1])
    directions.append(directions[-1])
    directions = np.array(directions)
    # At a node, the ring is perpendicular to the mean of the two segments' directions.
    for index in node_rings[1:-1]:
        mean = directions[index - 1] + directions[index]
        directions[index] = mean / np.linalg.norm(mean)
    return np.array(centres), np.array(ring_radii), directions, node_rings


_CAP_ANGLES = (np.pi / 6, np.pi / 3)  # latitude of the cap rings beyond each end of a tube
_CAP_LENGTH = 0.8  # cap depth along the axis, as a fraction of the end radius


def _tube_faces(num_rings: int, around: int) -> np.ndarray:
    """Triangles of a closed tube: vertex 0 and the last vertex are poles, rings of `around` in between."""
    faces = []
    for ring in range(num_rings - 1):
        for i in range(around):
            a = 1 + ring * around + i
            b = 1 + ring * around + (i + 1) % around
            faces += [(a, b, a + around), (a + around, b, b + around)]
    last_pole = 1 + num_rings * around
    last_ring = 1 + (num_rings - 1) * around
    for i in range(around):
        faces.append((0, 1 + (i + 1) % around, 1 + i))
        faces.append((last_pole, last_ring + i, last_ring + (i + 1) % around))
    return np.array(faces)


def _tube(
    part: _Part, points: dict[str, np.ndarray], canonical: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A part's closed tube: vertices, outward faces, the centre each vertex's radial direction points away
    from, and the index of the first vertex of the ring at each node."""
    node_points = np.array([points[name] for name in part.nodes])
    # Ring counts come from the canonical proportions, so every seed shares one mesh topology.
    lengths = np.linalg.norm(np.diff([canonical[name] for name in part.nodes], axis=0), axis=1)
    rings_per_segment = [max(2, int(np.ceil(length * _RINGS_PER_METRE))) for length in lengths]
    centres, radii, directions, node_rings = _ring_layout(
        node_points, np.array(part.radii), rings_per_segment
    )

    # Rounded caps: rings that shrink beyond each end, closed by a pole vertex.
    start_caps = [
        (centres[0] - directions[0] * radii[0] * _CAP_LENGTH * np.sin(a), radii[0] * np.cos(a))
        for a in _CAP_ANGLES
    ]
    end_caps = [
        (centres[-1] + directions[-1] * radii[-1] * _CAP_LENGTH * np.sin(a), radii[-1] * np.cos(a))
        for a in _CAP_ANGLES
    ]
    rings = start_caps[::-1] + list(zip(centres, radii)) + end_caps
    ring_directions = [directions[0]] * len(start_caps) + list(directions) + [directions[-1]] * len(end_caps)

    angles = 2 * np.pi * np.arange(part.around) / part.around
    ring_vertices = []
    for (centre, radius), direction in zip(rings, ring_directions):
        first, second = _frame(direction, np.array(part.reference))
        ring_vertices.append(
            centre
            + radius * (np.cos(angles)[:, None] * first + part.aspect * np.sin(angles)[:, None] * second)
        )
    start_pole = centres[0] - directions[0] * radii[0] * _CAP_LENGTH
    end_pole = centres[-1] + directions[-1] * radii[-1] * _CAP_LENGTH
    vertices = np.concatenate([start_pole[None], *ring_vertices, end_pole[None]])
    # Radial directions point away from the ring centre, and from the end points on the caps.
    radial_centres = [centres[0]] * len(start_caps) + list(centres) + [centres[-1]] * len(end_caps)
    vertex_centres = np.concatenate(
        [centres[0][None], np.repeat(np.array(radial_centres), part.around, axis=0), centres[-1][None]]
    )
    faces = _tube_faces(len(rings), part.around)
    if _signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1]
    node_ring_starts = [1 + (ring + len(start_caps)) * part.around for ring in node_rings]
    return vertices, faces, vertex_centres, node_ring_starts


def _add_part(
    mesh: _Mesh, part_index: int, part: _Part, points: dict[str, np.ndarray], canonical: dict[str, np.ndarray]
) -> None:
    vertices, faces, vertex_centres, node_ring_starts = _tube(part, points, canonical)
    base = mesh.count
    for node, start in zip(part.nodes, node_ring_starts):
        if node in _JOINT:
            mesh.joint_rings.setdefault(node, []).append(base + start + np.arange(part.around))
    if part.name == "head":
        mesh.head_top_vertex = base + len(vertices) - 1
    mesh.vertices.append(vertices)
    mesh.faces.append(faces + base)
    mesh.centres.append(vertex_centres)
    mesh.part_of_vertex.append(np.full(len(vertices), part_index))
    mesh.count += len(vertices)


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0)


def _head_part(points: dict[str, np.ndarray]) -> _Part:
    """The head as a tube whose rings follow an ellipsoid's profile (its nodes are added to `points`)."""
    centre = points["head_centre"]
    heights = np.cos(np.linspace(0.82 * np.pi, 0.18 * np.pi, 7))
    for index, height in enumerate(heights):
        points[f"head_node_{index}"] = centre + np.array([0.0, _HEAD_RADII[1] * height, 0.0])
    radii = tuple(_HEAD_RADII[0] * np.sqrt(1.0 - heights**2))
    nodes = tuple(f"head_node_{index}" for index in range(len(heights)))
    return _Part(
        "head", nodes, radii, _HEAD_RADII[2] / _HEAD_RADII[0], (1.0, 0.0, 0.0), 18, ("neck", "head"), 0.03
    )


def _segment_distances(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """[N, 3] points, [K, 3] segments -> [N, K] Euclidean distances."""
    axis = ends - starts
    t = np.einsum("nkc,kc->nk", points[:, None] - starts[None], axis) / np.sum(axis**2, axis=-1)
    closest = starts[None] + np.clip(t, 0.0, 1.0)[..., None] * axis[None]
    return np.linalg.norm(points[:, None] - closest, axis=-1)


def _skinning_weights(
    vertices: np.ndarray, part_of_vertex: np.ndarray, parts: list[_Part], points: dict[str, np.ndarray]
) -> np.ndarray:
    ends = _bone_ends()
    starts = np.array([points[name] for name in SMPL_JOINT_NAMES])
    stops = np.array([points[ends[name]] for name in SMPL_JOINT_NAMES])
    distances = _segment_distances(vertices, starts, stops)
    weights = np.zeros((len(vertices), len(SMPL_JOINT_NAMES)))
    for index, part in enumerate(parts):
        rows = part_of_vertex == index
        columns = np.array([_JOINT[name] for name in part.candidates])
        logits = -(distances[np.ix_(rows, columns)] ** 2) / (2 * part.sigma**2)
        logits -= logits.max(axis=1, keepdims=True)
        weights[np.ix_(rows, columns)] = np.exp(logits)
    # Keep the 4 largest influences per vertex, as SMPL does, and renormalise.
    fifth = np.sort(weights, axis=1)[:, -5][:, None]
    weights = np.where(weights > fifth, weights, 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def _clip01(value: np.ndarray) -> np.ndarray:
    return np.clip(value, 0.0, 1.0)


def _shape_directions(
    vertices: np.ndarray,
    centres: np.ndarray,
    part_names: np.ndarray,
    points: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """[V, 3, 10] vertex offsets per unit beta."""
    radial = vertices - centres
    y = centres[:, 1]
    side = np.sign(centres[:, 0])
    torso = part_names == "torso"
    head = part_names == "head"
    neck = part_names == "neck"
    legs = np.char.endswith(part_names, "_leg")
    feet = np.char.endswith(part_names, "_foot")
    arms = np.char.endswith(part_names, "_arm")
    hands = np.char.endswith(part_names, "_hand")
    limbs = legs | arms
    upper = arms | hands
    p = {name: points[name] for name in ("pelvis", "spine1", "spine2", "spine3", "chest_top", "neck")}
    hip, ankle = points["left_hip"], points["left_ankle"]
    collar, shoulder, wrist = points["left_collar"], points["left_shoulder"], points["left_wrist"]
    ground = np.array([0.0, vertices[:, 1].min(), 0.0])
    up = np.array([0.0, 1.0, 0.0])
    x_axis = np.array([1.0, 0.0, 0.0])
    z_axis = np.array([0.0, 0.0, 1.0])
    dirs = np.zeros(vertices.shape + (_NUM_BETAS,))

    dirs[..., 0] = 0.07 * (vertices - ground)  # stature (uniform scale about the ground point)
    girth = np.where(torso, 0.16, np.where(limbs, 0.08, np.where(head | neck, 0.04, 0.03)))
    belly = torso * np.exp(-(((y - p["spine1"][1]) / 0.1) ** 2)) * np.maximum(radial[:, 2], 0.0)
    dirs[..., 1] = girth[:, None] * radial + 0.25 * belly[:, None] * z_axis  # weight
    leg_fraction = np.where(feet, 1.0, legs * _clip01((hip[1] - y) / (hip[1] - ankle[1])))
    dirs[..., 2] = -0.06 * leg_fraction[:, None] * up  # leg length
    arm_fraction = np.where(
        hands, 1.0, arms * _clip01((np.abs(centres[:, 0]) - shoulder[0]) / (wrist[0] - shoulder[0]))
    )
    dirs[..., 3] = 0.05 * (arm_fraction * side)[:, None] * x_axis  # arm length
    collar_fraction = np.where(
        hands, 1.0, arms * _clip01((np.abs(centres[:, 0]) - collar[0]) / (shoulder[0] - collar[0]))
    )
    chest = torso * _clip01((y - p["spine2"][1]) / (p["chest_top"][1] - p["spine2"][1]))
    dirs[..., 4] = (0.025 * collar_fraction * side + 0.12 * chest * radial[:, 0])[
        :, None
    ] * x_axis  # shoulders
    torso_fraction = np.where(
        torso,
        _clip01((y - p["pelvis"][1]) / (p["neck"][1] - p["pelvis"][1])),
        np.where(
            head | neck, 1.0, upper * _clip01((collar[1] - p["pelvis"][1]) / (p["neck"][1] - p["pelvis"][1]))
        ),
    )
    dirs[..., 5] = 0.06 * torso_fraction[:, None] * up  # torso length
    dirs[..., 6] = 0.12 * head[:, None] * (vertices - points["head_centre"])  # head size
    hips = torso * _clip01((p["spine1"][1] - y) / (p["spine1"][1] - points["torso_bottom"][1]))
    dirs[..., 7] = (0.02 * (legs | feet) * side + 0.12 * hips * radial[:, 0])[:, None] * x_axis  # hip width
    dirs[..., 8] = 0.15 * limbs[:, None] * radial  # limb thickness
    chest_depth = torso * np.exp(-(((y - p["spine3"][1]) / 0.1) ** 2)) * np.maximum(radial[:, 2], 0.0)
    dirs[..., 9] = (0.3 * chest_depth + 0.02 * (head | neck))[:, None] * z_axis  # chest depth, head forward
    return dirs * rng.uniform(0.85, 1.15, size=_NUM_BETAS)


def _pose_correctives(
    vertices: np.ndarray,
    centres: np.ndarray,
    part_of_vertex: np.ndarray,
    parts: list[_Part],
    joints: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """[V, 3, 9 * 23]: radial bulges near each body joint, a few millimetres per unit of (R - I)."""
    radial = vertices - centres
    normals = radial / np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    coefficients = rng.normal(size=(len(SMPL_JOINT_NAMES) - 1, 9)) * 0.004
    posedirs = np.zeros((len(vertices), 3, 9 * (len(SMPL_JOINT_NAMES) - 1)))
    for joint in range(1, len(SMPL_JOINT_NAMES)):
        name = SMPL_JOINT_NAMES[joint]
        allowed = np.isin(part_of_vertex, [i for i, part in enumerate(parts) if name in part.candidates])
        falloff = allowed * np.exp(-np.sum((vertices - joints[joint]) ** 2, axis=1) / (2 * 0.06**2))
        block = slice(9 * (joint - 1), 9 * joint)
        posedirs[:, :, block] = (falloff[:, None] * normals)[:, :, None] * coefficients[joint - 1]
    return posedirs


def _point_regressor_rows(
    mesh_vertices: np.ndarray, head_vertices: np.ndarray, targets: list[np.ndarray]
) -> np.ndarray:
    rows = np.zeros((len(targets), len(mesh_vertices)))
    for row, target in enumerate(targets):
        nearest = head_vertices[np.argmin(np.linalg.norm(mesh_vertices[head_vertices] - target, axis=1))]
        rows[row, nearest] = 1.0
    return rows


def synthetic_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The synthetic model as a dict in the official SMPL file layout.

    Args:
      seed: any non-negative int; the same seed always gives the same model.

    Returns:
      Keys `v_template [V,3]`, `shapedirs [V,3,10]`, `posedirs [V,3,207]`, `J_regressor [24,V]`,
      `weights [V,24]`, `kintree_table [2,24]` (root parent 4294967295), `f [F,3]` (int32),
      `cocoplus_regressor [19,V]`, all float64 except the integer ones; V is about 4,300.
    """
    rng = np.random.default_rng(seed)
    points = _design_points(*(1.0 + rng.uniform(-0.05, 0.05, size=4)))
    canonical = _design_points(1.0, 1.0, 1.0, 1.0)
    _head_part(canonical)
    parts = _parts() + [_head_part(points)]
    radius_scale = rng.uniform(0.92, 1.08, size=len(parts))
    by_side = {}
    for index, part in enumerate(parts):
        key = part.name.replace("left_", "").replace("right_", "")
        scale = by_side.setdefault(key, radius_scale[index])
        parts[index] = dataclasses.replace(part, radii=tuple(r * scale for r in part.radii))

    mesh = _Mesh()
    for index, part in enumerate(parts):
        _add_part(mesh, index, part, points, canonical)
    vertices = np.concatenate(mesh.vertices)
    faces = np.concatenate(mesh.faces)
    centres = np.concatenate(mesh.centres)
    part_of_vertex = np.concatenate(mesh.part_of_vertex)
    part_names = np.array([parts[i].name for i in part_of_vertex])

    j_regressor = np.zeros((len(SMPL_JOINT_NAMES), len(vertices)))
    for joint, name in enumerate(SMPL_JOINT_NAMES):
        rings = mesh.joint_rings[name]
        for ring in rings:
            j_regressor[joint, ring] += 1.0 / (len(ring) * len(rings))
    joints = j_regressor @ vertices

    head_vertices = np.flatnonzero(part_names == "head")
    centre = points["head_centre"]
    rx, ry, rz = _HEAD_RADII
    face_targets = [
        centre + [0.0, 0.0, rz],
        centre + [0.035, 0.03, rz],
        centre + [-0.035, 0.03, rz],
        centre + [rx, 0.0, 0.0],
        centre + [-rx, 0.0, 0.0],
    ]
    lsp = np.stack([j_regressor[_JOINT[name]] for name in COCOPLUS_JOINT_NAMES[:13]])
    head_top = np.zeros((1, len(vertices)))
    head_top[0, mesh.head_top_vertex] = 1.0
    cocoplus = np.concatenate([lsp, head_top, _point_regressor_rows(vertices, head_vertices, face_targets)])

    parents = np.array(SMPL_PARENTS, dtype=np.int64)
    parents[0] = 4294967295
    return {
        "v_template": vertices,
        "shapedirs": _shape_directions(vertices, centres, part_names, points, rng),
        "posedirs": _pose_correctives(vertices, centres, part_of_vertex, parts, joints, rng),
        "J_regressor": j_regressor,
        "weights": _skinning_weights(vertices, part_of_vertex, parts, points),
        "kintree_table": np.stack([parents, np.arange(len(SMPL_PARENTS), dtype=np.int64)]),
        "f": faces.astype(np.int32),
        "cocoplus_regressor": cocoplus,
    }


def make_synthetic_smpl(seed: int = 0) -> SMPLModel:
    """The synthetic SMPL-format model as an `SMPLModel` (float32); see the module docstring.

    Args:
      seed: any non-negative int; the same seed always gives the same model.
    """
    return smpl_from_arrays(synthetic_smpl_arrays(seed), source=f"synthetic SMPL (seed {seed})")


def write_synthetic_smpl(path: str | os.PathLike, seed: int = 0) -> SMPLModel:
    """Writes the synthetic model to `path`: an official-style `.pkl` or an `.npz` (by suffix).

    Args:
      path: destination ending in `.pkl` or `.npz`; `load_smpl(path)` reads it back.
      seed: any non-negative int.

    Returns:
      The model written.
    """
    model = make_synthetic_smpl(seed)
    save_smpl(model, path)
    return model
