"""Rotation representations: the continuous 6-D representation (Zhou et al., CVPR 2019) and back.

The 6-D representation of a rotation matrix R is its first two columns, concatenated:
`[R[0, 0], R[1, 0], R[2, 0], R[0, 1], R[1, 1], R[2, 1]]`. Any 6-vector whose two halves are not
parallel maps back to a rotation by Gram-Schmidt: normalise the first half, remove its component from
the second half and normalise, and complete with the cross product. Unlike axis-angle (or Euler angles,
or quaternions) the map from rotations to this representation is continuous, which is why regressors
(SPIN, HMR 2.0) predict it instead of axis-angle.

Convention note: this is the column layout of Zhou et al.'s paper. PyTorch3D's `matrix_to_rotation_6d`
stores the first two *rows* instead (the transpose); SPIN's `rot6d_to_rotmat` reads the 6 numbers as a
row-major [3, 2] matrix (columns interleaved). Convert with a reshape when exchanging values with them.

All functions are pure `jnp`, batched over leading dimensions, and safe under `jax.jit`, `jax.vmap` and
`jax.grad`.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["rotation_6d_to_matrix", "matrix_to_rotation_6d"]

# Lengths below this are treated as this length when normalising, so that a zero half (a degenerate
# input) gives finite values and gradients instead of NaN.
_MIN_NORM = 1e-8


def _normalise(vector: jnp.ndarray) -> jnp.ndarray:
    norm = jnp.sqrt(jnp.maximum(jnp.sum(vector**2, axis=-1, keepdims=True), _MIN_NORM**2))
    return vector / norm


def rotation_6d_to_matrix(rotation_6d: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrices from the continuous 6-D representation, by Gram-Schmidt.

    b1 = a1 / |a1|; b2 = normalise(a2 - (b1 . a2) b1); b3 = b1 x b2; R = [b1 | b2 | b3] (columns), with
    a1 = rotation_6d[..., :3] and a2 = rotation_6d[..., 3:]. The result is orthonormal with det +1 for any
    input whose halves are not parallel; for a valid 6-D vector (two orthonormal columns) it returns the
    rotation whose first two columns they are. Unitless.

    Args:
      rotation_6d: [..., 6] the (unnormalised) first column then the second column of a rotation matrix.

    Returns:
      [..., 3, 3] rotation matrices; `R @ p` rotates column vector p (as `rodrigues`).
    """
    rotation_6d = jnp.asarray(rotation_6d)
    if rotation_6d.ndim < 1 or rotation_6d.shape[-1] != 6:
        raise ValueError(f"rotation_6d must have shape [..., 6], got {rotation_6d.shape}")
    if not jnp.issubdtype(rotation_6d.dtype, jnp.floating):
        rotation_6d = rotation_6d.astype(jnp.float32)
    first, second = rotation_6d[..., :3], rotation_6d[..., 3:]
    b1 = _normalise(first)
    b2 = _normalise(second - jnp.sum(b1 * second, axis=-1, keepdims=True) * b1)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def matrix_to_rotation_6d(rotation: jnp.ndarray) -> jnp.ndarray:
    """The continuous 6-D representation of rotation matrices: their first two columns.

    Inverse of `rotation_6d_to_matrix` on rotation matrices (exactly, up to rounding).

    Args:
      rotation: [..., 3, 3] rotation matrices (`R @ p` rotates column vector p).

    Returns:
      [..., 6] as [R[..., :, 0], R[..., :, 1]] concatenated. Unitless.
    """
    rotation = jnp.asarray(rotation)
    if rotation.ndim < 2 or rotation.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must have shape [..., 3, 3], got {rotation.shape}")
    return jnp.concatenate([rotation[..., :, 0], rotation[..., :, 1]], axis=-1)
