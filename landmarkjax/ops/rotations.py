"""Rotation representations: the continuous 6-D representation (Zhou et al., CVPR 2019) and back, and
the inverse of Rodrigues' formula (rotation matrix -> axis-angle).

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

__all__ = ["rotation_6d_to_matrix", "matrix_to_rotation_6d", "matrix_to_axis_angle"]

# Below this squared sine of the half angle the axis-angle scale factor comes from its Taylor series
# (truncation error O(s^4) ~ 1e-16 there).
_SMALL_HALF_SINE_SQUARED = 1e-8
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


def _matrix_to_quaternion(rotation: jnp.ndarray) -> jnp.ndarray:
    """[..., 3, 3] -> [..., 4] unit quaternions (w, x, y, z) with w >= 0, by Shepperd's method."""
    r = rotation
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    # 4w^2, 4x^2, 4y^2, 4z^2: they sum to 4, so the largest is >= 1 and dividing by its root is safe.
    traces = jnp.stack(
        [1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], axis=-1
    )
    candidates = jnp.stack(
        [
            jnp.stack([traces[..., 0], r21 - r12, r02 - r20, r10 - r01], axis=-1),
            jnp.stack([r21 - r12, traces[..., 1], r10 + r01, r02 + r20], axis=-1),
            jnp.stack([r02 - r20, r10 + r01, traces[..., 2], r21 + r12], axis=-1),
            jnp.stack([r10 - r01, r02 + r20, r21 + r12, traces[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    # The floor only touches candidates that are never chosen (their trace is below 1).
    candidates = candidates / (2.0 * jnp.sqrt(jnp.maximum(traces, 1e-3)))[..., None]
    best = jnp.argmax(traces, axis=-1)
    quaternion = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    return jnp.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def matrix_to_axis_angle(rotation: jnp.ndarray) -> jnp.ndarray:
    """Axis-angle vectors from rotation matrices: the inverse of `landmarkjax.ops.rodrigues`.

    Goes through the unit quaternion (Shepperd's method, stable at every angle, 180 degrees included);
    near the identity the scale factor comes from its Taylor series, so values and gradients stay finite.

    Args:
      rotation: [..., 3, 3] rotation matrices (`R @ p` rotates column vector p).

    Returns:
      [..., 3] rotation vectors: unit axis times the angle in radians, angle in [0, pi]. At exactly pi the
      axis sign is either one (both describe the same rotation).
    """
    rotation = jnp.asarray(rotation)
    if rotation.ndim < 2 or rotation.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must have shape [..., 3, 3], got {rotation.shape}")
    if not jnp.issubdtype(rotation.dtype, jnp.floating):
        rotation = rotation.astype(jnp.float32)
    quaternion = _matrix_to_quaternion(rotation)
    w, xyz = quaternion[..., 0], quaternion[..., 1:]
    half_sine_squared = jnp.sum(xyz**2, axis=-1)
    small = half_sine_squared < _SMALL_HALF_SINE_SQUARED
    # Double-where: the exact branch never sees a zero sine, so its gradient stays finite too.
    safe_half_sine = jnp.sqrt(jnp.where(small, 1.0, half_sine_squared))
    exact = 2.0 * jnp.arctan2(safe_half_sine, w) / safe_half_sine
    # 2 atan2(s, w) / s = (2 / w) (1 - s^2 / (3 w^2) + ...), with w ~ 1 here.
    taylor = 2.0 / w * (1.0 - half_sine_squared / (3.0 * w**2))
    return jnp.where(small, taylor, exact)[..., None] * xyz
