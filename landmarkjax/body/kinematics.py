"""Forward kinematics along a kinematic tree, and linear blend skinning.

Transforms are 4x4 homogeneous matrices acting on column vectors, `p' = T @ [p, 1]`. Lengths are in the
unit of the joints and vertices (metres for SMPL).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.body.smpl_model import validate_parents

__all__ = [
    "forward_kinematics",
    "rest_to_posed_transforms",
    "linear_blend_skinning",
]


def _static_parents(parents: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    if isinstance(parents, jax.core.Tracer):
        raise ValueError("parents must be static (a tuple, list or numpy array of ints), not a traced array")
    return validate_parents(np.asarray(parents))


def _chain(
    parents: tuple[int, ...], rest_joints: jax.Array, rotations: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The kinematic chain as (world rotations [..., J, 3, 3], world joint positions [..., J, 3]).

    A `lax.scan` over the joints in order (each joint's parent is already done), reading the parent's
    transform from the carried buffers. Against the same chain unrolled in Python (one small matrix product
    per joint) or evaluated level by level, the scan compiled about 4x faster on CPU (its gradient too)
    and ran faster for one body and within a millisecond for 1024, small next to the blend shapes and
    skinning.
    """
    num_joints = len(parents)
    batch_shape = rest_joints.shape[:-2]
    if num_joints == 1:
        return rotations, rest_joints
    parent_index = np.asarray(parents[1:], dtype=np.int32)
    bones = rest_joints[..., 1:, :] - rest_joints[..., parent_index, :]
    world_rotations = jnp.zeros((num_joints,) + batch_shape + (3, 3), rotations.dtype)
    world_positions = jnp.zeros((num_joints,) + batch_shape + (3,), rest_joints.dtype)
    world_rotations = world_rotations.at[0].set(rotations[..., 0, :, :])
    world_positions = world_positions.at[0].set(rest_joints[..., 0, :])

    def add_joint(carry, joint_inputs):
        world_rotations, world_positions = carry
        joint, parent, rotation, bone = joint_inputs
        parent_rotation = world_rotations[parent]
        position = world_positions[parent] + jnp.einsum("...ij,...j->...i", parent_rotation, bone)
        return (
            world_rotations.at[joint].set(parent_rotation @ rotation),
            world_positions.at[joint].set(position),
        ), None

    joint_inputs = (
        jnp.arange(1, num_joints, dtype=jnp.int32),
        jnp.asarray(parent_index),
        jnp.moveaxis(rotations[..., 1:, :, :], -3, 0),
        jnp.moveaxis(bones, -2, 0),
    )
    (world_rotations, world_positions), _ = jax.lax.scan(
        add_joint, (world_rotations, world_positions), joint_inputs
    )
    return jnp.moveaxis(world_rotations, 0, -3), jnp.moveaxis(world_positions, 0, -2)


def _homogeneous(rotation: jax.Array, translation: jax.Array) -> jax.Array:
    """[..., 3, 3] and [..., 3] -> [..., 4, 4]."""
    top = jnp.concatenate([rotation, translation[..., :, None]], axis=-1)
    bottom = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0], top.dtype), top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], axis=-2)


def forward_kinematics(
    parents: Sequence[int] | np.ndarray, rest_joints: jax.Array, rotations: jax.Array
) -> jax.Array:
    """World transforms of every joint of a kinematic tree.

    G_root = [[R_root, X_root], [0, 1]] and G_j = G_parent(j) @ [[R_j, X_j - X_parent(j)], [0, 1]], where
    X are the rest-pose joint positions and R_j the rotation of joint j relative to its parent (SMPL eq. 4).

    Args:
      parents: static [J] parent index of each joint (-1 for the root, parents[j] < j), e.g.
        `model.parents`.
      rest_joints: [..., J, 3] joint positions in the rest pose.
      rotations: [..., J, 3, 3] local joint rotations (the root's is the global orientation).

    Returns:
      [..., J, 4, 4] world transforms: G_j maps joint j's local frame (origin at the joint, axes of the rest
      pose) to the posed world frame; G_j[..., :3, 3] is the posed position of joint j.
    """
    parents = _static_parents(parents)
    rest_joints = jnp.asarray(rest_joints)
    rotations = jnp.asarray(rotations)
    num_joints = len(parents)
    if rest_joints.ndim < 2 or rest_joints.shape[-2:] != (num_joints, 3):
        raise ValueError(f"rest_joints must have shape [..., {num_joints}, 3], got {rest_joints.shape}")
    if rotations.ndim < 3 or rotations.shape[-3:] != (num_joints, 3, 3):
        raise ValueError(f"rotations must have shape [..., {num_joints}, 3, 3], got {rotations.shape}")
    batch_shape = jnp.broadcast_shapes(rest_joints.shape[:-2], rotations.shape[:-3])
    rest_joints = jnp.broadcast_to(rest_joints, batch_shape + rest_joints.shape[-2:])
    rotations = jnp.broadcast_to(rotations, batch_shape + rotations.shape[-3:])
    world_rotations, world_positions = _chain(parents, rest_joints, rotations)
    return _homogeneous(world_rotations, world_positions)


def rest_to_posed_transforms(world_transforms: jax.Array, rest_joints: jax.Array) -> jax.Array:
    """Turns world joint transforms into the rest-space -> posed-space transforms that skinning uses.

    A_j = G_j @ [[I, -X_j], [0, 1]]: a point of the rest pose first moves into joint j's frame, then follows
    the joint (SMPL's G'_k = G_k G(0, J_k)^-1).

    Args:
      world_transforms: [..., J, 4, 4] from `forward_kinematics`.
      rest_joints: [..., J, 3] rest-pose joint positions used to compute them.

    Returns:
      [..., J, 4, 4] transforms mapping rest-pose points to posed points.
    """
    world_transforms = jnp.asarray(world_transforms)
    rest_joints = jnp.asarray(rest_joints)
    if world_transforms.ndim < 3 or world_transforms.shape[-2:] != (4, 4):
        raise ValueError(f"world_transforms must have shape [..., J, 4, 4], got {world_transforms.shape}")
    if rest_joints.shape[-2:] != (world_transforms.shape[-3], 3):
        raise ValueError(
            f"rest_joints must have shape [..., {world_transforms.shape[-3]}, 3], got {rest_joints.shape}"
        )
    rotation = world_transforms[..., :3, :3]
    offset = jnp.einsum("...ij,...j->...i", rotation, rest_joints)
    translation = world_transforms[..., :3, 3] - offset
    return _homogeneous(rotation, translation)


def linear_blend_skinning(
    rest_vertices: jax.Array, skinning_weights: jax.Array, transforms: jax.Array
) -> jax.Array:
    """Linear blend skinning: v'_i = sum_j w_ij A_j [v_i, 1].

    Blending the J transforms per vertex first (one [V, J] x [J, 12] product) and applying the blended 3x4
    transform second costs 12 multiply-adds per vertex and joint, a quarter fewer than blending 4x4s.

    Args:
      rest_vertices: [..., V, 3] vertices in the rest pose (after shape and pose blend shapes for SMPL).
      skinning_weights: [V, J] or [..., V, J] weight of each joint for each vertex (rows normally sum to 1).
      transforms: [..., J, 4, 4] or [..., J, 3, 4] rest-space -> posed-space transforms (see
        `rest_to_posed_transforms`); the bottom row of a 4x4 is ignored.

    Returns:
      [..., V, 3] posed vertices.
    """
    rest_vertices = jnp.asarray(rest_vertices)
    skinning_weights = jnp.asarray(skinning_weights)
    transforms = jnp.asarray(transforms)
    if rest_vertices.ndim < 2 or rest_vertices.shape[-1] != 3:
        raise ValueError(f"rest_vertices must have shape [..., V, 3], got {rest_vertices.shape}")
    num_vertices = rest_vertices.shape[-2]
    if transforms.ndim < 3 or transforms.shape[-1] != 4 or transforms.shape[-2] not in (3, 4):
        raise ValueError(
            f"transforms must have shape [..., J, 4, 4] or [..., J, 3, 4], got {transforms.shape}"
        )
    num_joints = transforms.shape[-3]
    if skinning_weights.ndim < 2 or skinning_weights.shape[-2:] != (num_vertices, num_joints):
        raise ValueError(
            f"skinning_weights must have shape [V={num_vertices}, J={num_joints}] (optionally with leading "
            f"batch dimensions), got {skinning_weights.shape}"
        )
    affine = transforms[..., :3, :]
    flat = affine.reshape(affine.shape[:-2] + (12,))
    if skinning_weights.ndim == 2:
        blended = jnp.einsum("vj,...jk->...vk", skinning_weights, flat)
    else:
        blended = jnp.einsum("...vj,...jk->...vk", skinning_weights, flat)
    blended = blended.reshape(blended.shape[:-1] + (3, 4))
    return jnp.einsum("...vij,...vj->...vi", blended[..., :3], rest_vertices) + blended[..., 3]
