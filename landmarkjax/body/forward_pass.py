"""SMPL's forward pass: shape and pose blend shapes, joint regression, kinematic chain and skinning.

Follows Loper et al., "SMPL: A Skinned Multi-Person Linear Model" (SIGGRAPH Asia 2015), eqs. 1-10:
T_P = T + B_S(beta) + B_P(theta), J = J_regressor T_S, and linear blend skinning of T_P with the transforms
of the posed kinematic chain. Pure `jnp`; safe under `jax.jit`, `jax.vmap` and `jax.grad`, with finite
gradients everywhere, the zero pose included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from landmarkjax.body.kinematics import _chain
from landmarkjax.body.smpl_model import SMPLModel
from landmarkjax.ops.geometry import rodrigues

__all__ = ["SMPLOutput", "smpl_forward", "pose_to_rotations"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SMPLOutput:
    """What `smpl_forward` returns; `...` is the broadcast batch shape of the inputs (possibly empty).

    Attributes:
      vertices: [..., V, 3] posed vertices (metres for SMPL), translation included.
      joints: [..., J, 3] posed joints of the kinematic tree, translation included.
      rotations: [..., J, 3, 3] local joint rotations (joint 0 = global orientation).
      extra_joints: name -> [..., K, 3], each extra regressor of the model applied to `vertices`.
    """

    vertices: jax.Array
    joints: jax.Array
    rotations: jax.Array
    extra_joints: Mapping[str, jax.Array]


def pose_to_rotations(pose: jax.Array, num_joints: int) -> jax.Array:
    """Rotation matrices from a pose given as axis-angle or as matrices.

    Args:
      pose: [..., K, 3] or [..., 3K] axis-angle vectors (radians), or [..., K, 3, 3] rotation matrices,
        with K = `num_joints`.
      num_joints: K.

    Returns:
      [..., K, 3, 3] rotation matrices.
    """
    pose = jnp.asarray(pose)
    if pose.ndim >= 3 and pose.shape[-3:] == (num_joints, 3, 3):
        return pose
    if pose.ndim >= 2 and pose.shape[-2:] == (num_joints, 3):
        return rodrigues(pose)
    if pose.ndim >= 1 and pose.shape[-1] == 3 * num_joints:
        return rodrigues(pose.reshape(pose.shape[:-1] + (num_joints, 3)))
    raise ValueError(
        f"pose must have shape [..., {num_joints}, 3] or [..., {3 * num_joints}] (axis-angle) or "
        f"[..., {num_joints}, 3, 3] (rotation matrices), got {pose.shape}"
    )


def _check_float(name: str, value: jax.Array) -> jax.Array:
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {value.dtype}")
    return value


def _broadcast_batch_shapes(batch_shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(*batch_shapes.values()))
    except ValueError:
        described = ", ".join(f"{name} {tuple(shape)}" for name, shape in batch_shapes.items())
        raise ValueError(
            f"the batch dimensions of the inputs do not broadcast together: {described}"
        ) from None


def _local_rotations(
    model: SMPLModel, body_pose: jax.Array, global_orient: jax.Array | None
) -> tuple[jax.Array, jax.Array | None]:
    """(body rotations [..., J-1, 3, 3], root rotation [..., 3, 3] or None) from either pose form."""
    num_body = model.num_joints - 1
    body_pose = _check_float("body_pose", body_pose)
    as_matrices = body_pose.ndim >= 3 and body_pose.shape[-3:] == (num_body, 3, 3)
    try:
        body_rotations = pose_to_rotations(body_pose, num_body)
    except ValueError:
        raise ValueError(
            f"body_pose must have shape [..., {num_body}, 3] or [..., {3 * num_body}] (axis-angle) or "
            f"[..., {num_body}, 3, 3] (rotation matrices), got {body_pose.shape}"
        ) from None
    if global_orient is None:
        return body_rotations, None
    global_orient = _check_float("global_orient", global_orient)
    if as_matrices:
        if global_orient.ndim < 2 or global_orient.shape[-2:] != (3, 3):
            raise ValueError(
                "global_orient must be rotation matrices [..., 3, 3] when body_pose is, got "
                f"{global_orient.shape}"
            )
        return body_rotations, global_orient
    if global_orient.ndim < 1 or global_orient.shape[-1] != 3:
        raise ValueError(f"global_orient must have shape [..., 3] (axis-angle), got {global_orient.shape}")
    return body_rotations, rodrigues(global_orient)


def smpl_forward(
    model: SMPLModel,
    betas: jax.Array,
    body_pose: jax.Array,
    global_orient: jax.Array | None = None,
    transl: jax.Array | None = None,
) -> SMPLOutput:
    """Posed SMPL vertices and joints.

    Batch dimensions `...` may be empty and broadcast between the arguments (e.g. one `betas` for a batch
    of poses). The pose is axis-angle or rotation matrices; `global_orient` must use the same form as
    `body_pose`.

    Args:
      model: an `SMPLModel` with J joints and S shape directions.
      betas: [..., S'] shape coefficients, S' <= S (the first S' shape directions are used).
      body_pose: [..., J-1, 3] or [..., 3(J-1)] axis-angle (radians) of joints 1..J-1 relative to their
        parents ([..., 23, 3] / [..., 69] for SMPL), or [..., J-1, 3, 3] rotation matrices.
      global_orient: [..., 3] axis-angle or [..., 3, 3] matrix rotating the whole body about the root
        joint; None for the identity.
      transl: [..., 3] translation added to every vertex and joint (metres); None for zero.

    Returns:
      An `SMPLOutput` with vertices [..., V, 3], joints [..., J, 3], rotations [..., J, 3, 3] and
      extra_joints {name: [..., K, 3]}.
    """
    betas = _check_float("betas", betas)
    if betas.ndim < 1 or betas.shape[-1] > model.num_betas:
        raise ValueError(f"betas must have shape [..., S'] with S' <= {model.num_betas}, got {betas.shape}")
    body_rotations, root_rotation = _local_rotations(model, body_pose, global_orient)
    batch_shapes = {"betas": betas.shape[:-1], "body_pose": body_rotations.shape[:-3]}
    if root_rotation is not None:
        batch_shapes["global_orient"] = root_rotation.shape[:-2]
    if transl is not None:
        transl = _check_float("transl", transl)
        if transl.ndim < 1 or transl.shape[-1] != 3:
            raise ValueError(f"transl must have shape [..., 3], got {transl.shape}")
        batch_shapes["transl"] = transl.shape[:-1]
    batch_shape = _broadcast_batch_shapes(batch_shapes)
    size = math.prod(batch_shape)
    num_joints = model.num_joints

    if root_rotation is None:
        root_rotation = jnp.eye(3, dtype=body_rotations.dtype)
    rotations = jnp.concatenate(
        [
            jnp.broadcast_to(root_rotation, batch_shape + (3, 3))[..., None, :, :],
            jnp.broadcast_to(body_rotations, batch_shape + body_rotations.shape[-3:]),
        ],
        axis=-3,
    ).reshape(size, num_joints, 3, 3)
    betas = jnp.broadcast_to(betas, batch_shape + betas.shape[-1:]).reshape(size, -1)
    dtype = jnp.result_type(model.v_template.dtype, betas.dtype, rotations.dtype)
    betas, rotations = betas.astype(dtype), rotations.astype(dtype)

    if transl is None:
        translation = jnp.zeros((size, 3), dtype)
    else:
        translation = jnp.broadcast_to(transl, batch_shape + (3,)).reshape(size, 3).astype(dtype)

    vertices, joints, extra_joints = _posed_body(model, betas, rotations, translation)

    def unflatten(array: jax.Array) -> jax.Array:
        return array.reshape(batch_shape + array.shape[1:])

    return SMPLOutput(
        vertices=unflatten(vertices),
        joints=unflatten(joints),
        rotations=unflatten(rotations),
        extra_joints={name: unflatten(value) for name, value in extra_joints.items()},
    )


def _posed_body(
    model: SMPLModel, betas: jax.Array, rotations: jax.Array, translation: jax.Array
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """betas [B, S'], rotations [B, J, 3, 3], translation [B, 3] -> vertices [B, V, 3], joints [B, J, 3]
    and the extra regressed joints {name: [B, K, 3]}."""
    batch, num_betas = betas.shape
    num_joints = model.num_joints
    num_vertices = model.num_vertices
    dtype = betas.dtype
    # Blend shapes as plain 2-D matrix products: XLA's CPU dot kernels are several times slower on the
    # equivalent 3-D einsums for small batches.
    shapedirs = model.shapedirs.astype(dtype).reshape(num_vertices * 3, model.num_betas)[:, :num_betas]
    v_template = model.v_template.astype(dtype)
    j_regressor = model.J_regressor.astype(dtype)

    # Shape blend shapes (eq. 8) and rest joints (eq. 10). J_regressor is linear, so for more than a few
    # bodies it is cheaper to regress the template and the shape directions once than every shaped mesh.
    v_shaped = v_template + jnp.einsum("np,bp->bn", shapedirs, betas).reshape(batch, num_vertices, 3)
    if batch > num_betas + 1:
        joint_template = j_regressor @ v_template
        joint_dirs = (j_regressor @ shapedirs.reshape(num_vertices, 3 * num_betas)).reshape(
            num_joints * 3, num_betas
        )
        rest_joints = joint_template + (betas @ joint_dirs.T).reshape(batch, num_joints, 3)
    else:
        rest_joints = jnp.matmul(j_regressor, v_shaped)

    # Pose blend shapes (eq. 9) from the (R - I) features of the body joints.
    identity = jnp.eye(3, dtype=dtype)
    pose_features = (rotations[:, 1:] - identity).reshape(batch, 9 * (num_joints - 1))
    posedirs = model.posedirs.astype(dtype).reshape(num_vertices * 3, 9 * (num_joints - 1))
    v_posed = v_shaped + jnp.einsum("np,bp->bn", posedirs, pose_features).reshape(batch, num_vertices, 3)

    # Kinematic chain (eq. 4) and linear blend skinning (eqs. 2-3).
    world_rotations, world_positions = _chain(model.parents, rest_joints, rotations)
    translations = world_positions - jnp.einsum("bjik,bjk->bji", world_rotations, rest_joints)
    affine = jnp.concatenate([world_rotations, translations[..., None]], axis=-1).reshape(
        batch, num_joints, 12
    )
    # [B, 12, V]: the layout XLA's dot produces without a transpose of this large intermediate.
    blended = jnp.einsum("bjk,vj->bkv", affine, model.lbs_weights.astype(dtype))
    vertices = _apply_blended_affine(blended, v_posed, translation)
    extra_joints = {
        name: jnp.einsum("kv,bvc->bkc", regressor.astype(dtype), vertices)
        for name, regressor in model.extra_regressors.items()
    }
    return vertices, world_positions + translation[:, None], extra_joints


def _apply_blended_affine(blended: jax.Array, points: jax.Array, translation: jax.Array) -> jax.Array:
    """Per-vertex 3x4 transforms given as blended [B, 12, V] (row-major 3x4 entries first) applied to points
    [B, V, 3], plus translation [B, 3] -> [B, V, 3]. Written out per coordinate: XLA's CPU backend runs this
    several times faster than a product or a reduction over an axis of length 3."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    rows = [
        blended[:, 4 * i] * x
        + blended[:, 4 * i + 1] * y
        + blended[:, 4 * i + 2] * z
        + blended[:, 4 * i + 3]
        + translation[:, i, None]
        for i in range(3)
    ]
    return jnp.stack(rows, axis=-1)
