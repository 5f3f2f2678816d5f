"""The SMPL body model as a JAX pytree.

`SMPLModel` holds the arrays of an SMPL-format model (Loper et al., "SMPL: A Skinned Multi-Person Linear
Model", SIGGRAPH Asia 2015) in the layout of the official files, plus the kinematic tree and joint names as
static (hashable) metadata, so a model can be passed through `jax.jit` as an argument or closed over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import numpy as np

__all__ = [
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "SMPLModel",
    "validate_parents",
]

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

# Parent of each joint in SMPL's kinematic tree (`kintree_table[0]` with the root's parent written as -1).
SMPL_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)


def validate_parents(parents: Sequence[int], num_joints: int | None = None) -> tuple[int, ...]:
    """Checks a kinematic tree given as parent indices and returns it as a tuple of ints.

    Args:
      parents: [J] parent index of each joint; the root (joint 0) has parent -1 and every other joint's
        parent comes before it (parents[j] < j), which is the order of SMPL's `kintree_table`.
      num_joints: expected J, if known.

    Returns:
      The parents as a tuple of Python ints.

    Raises:
      ValueError: if the tree is not in that order or has the wrong length.
    """
    parents = tuple(int(p) for p in np.asarray(parents).reshape(-1))
    if num_joints is not None and len(parents) != num_joints:
        raise ValueError(f"parents must have {num_joints} entries, got {len(parents)}")
    if not parents or parents[0] != -1:
        raise ValueError(f"parents[0] must be -1 (joint 0 is the root), got {parents[:1]}")
    for joint, parent in enumerate(parents[1:], start=1):
        if not 0 <= parent < joint:
            raise ValueError(
                f"parents must list every joint after its parent (0 <= parents[j] < j); joint {joint} has "
                f"parent {parent}"
            )
    return parents


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SMPLModel:
    """An SMPL-format body model (arrays as in the official files, float32; lengths in metres).

    V vertices, J joints (24 for SMPL), S shape directions (10 for SMPL), F triangles.

    Attributes:
      v_template: [V, 3] rest-pose vertices of the mean shape (x: the body's left, y: up, z: forward).
      shapedirs: [V, 3, S] shape blend shapes (vertex offsets per unit of each beta).
      posedirs: [V, 3, 9 * (J - 1)] pose-corrective blend shapes; feature 9 * (j - 1) + 3 * r + c is
        (R_j - I)[r, c] of body joint j = 1..J-1.
      J_regressor: [J, V] rest joint locations as linear combinations of vertices (dense here; the official
        .pkl stores a scipy sparse matrix).
      lbs_weights: [V, J] linear-blend-skinning weights (`weights` in the files); rows sum to 1.
      faces: [F, 3] int32 vertex indices of each triangle (`f` in the files), counter-clockwise seen from
        outside.
      extra_regressors: name -> [K, V] additional joint regressors applied to posed vertices (e.g. HMR's
        19-joint `cocoplus_regressor`); may be empty.
      parents: static [J] tuple, parent of each joint, -1 for the root; parents[j] < j.
      joint_names: static [J] tuple of joint names.
    """

    v_template: jax.Array
    shapedirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    lbs_weights: jax.Array
    faces: jax.Array
    extra_regressors: Mapping[str, jax.Array] = dataclasses.field(default_factory=dict)
    parents: tuple[int, ...] = dataclasses.field(default=SMPL_PARENTS, metadata=dict(static=True))
    joint_names: tuple[str, ...] = dataclasses.field(default=SMPL_JOINT_NAMES, metadata=dict(static=True))

    @property
    def num_vertices(self) -> int:
        """V."""
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        """J, including the root."""
        return len(self.parents)

    @property
    def num_betas(self) -> int:
        """S, the number of shape directions."""
        return self.shapedirs.shape[-1]

    def check(self, source: str = "SMPLModel") -> None:
        """Raises ValueError, naming `source` and the problem, if the arrays' shapes disagree."""
        shapes = {name: tuple(getattr(self, name).shape) for name in _ARRAY_FIELDS}
        problems = _shape_problems(shapes, {k: tuple(v.shape) for k, v in self.extra_regressors.items()})
        if len(self.joint_names) != len(self.parents):
            problems.append(f"{len(self.joint_names)} joint names for {len(self.parents)} joints")
        if problems:
            raise ValueError(f"{source}: inconsistent SMPL model: " + "; ".join(problems))
        try:
            validate_parents(self.parents, shapes["J_regressor"][0])
        except ValueError as error:
            raise ValueError(f"{source}: inconsistent SMPL model: {error}") from None


_ARRAY_FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "faces")


def _shape_problems(
    shapes: Mapping[str, tuple[int, ...]], extra_shapes: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Lists every disagreement between the SMPL arrays' shapes (empty when consistent)."""
    problems = []
    v_template = shapes["v_template"]
    if len(v_template) != 2 or v_template[1] != 3:
        return [f"v_template must have shape [V, 3], got {list(v_template)}"]
    num_vertices = v_template[0]
    j_regressor = shapes["J_regressor"]
    if len(j_regressor) != 2 or j_regressor[1] != num_vertices:
        return [f"J_regressor must have shape [J, V={num_vertices}], got {list(j_regressor)}"]
    num_joints = j_regressor[0]
    expected = {
        "shapedirs": (num_vertices, 3, None),
        "posedirs": (num_vertices, 3, 9 * (num_joints - 1)),
        "lbs_weights": (num_vertices, num_joints),
        "faces": (None, 3),
    }
    for name, pattern in expected.items():
        shape = shapes[name]
        if len(shape) != len(pattern) or any(p is not None and p != s for p, s in zip(pattern, shape)):
            wanted = ", ".join("any" if p is None else str(p) for p in pattern)
            problems.append(f"{name} must have shape [{wanted}], got {list(shape)}")
    for name, shape in extra_shapes.items():
        if len(shape) != 2 or shape[1] != num_vertices:
            problems.append(f"{name} must have shape [K, V={num_vertices}], got {list(shape)}")
    return problems
