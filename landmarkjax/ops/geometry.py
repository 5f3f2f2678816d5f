"""Rigid and similarity geometry: Rodrigues rotations, similarity Procrustes, weak-perspective projection.

All functions are pure `jnp`, batched over leading dimensions, and safe under `jax.jit`, `jax.vmap` and
`jax.grad`.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "rodrigues",
    "similarity_procrustes",
    "apply_similarity",
    "weak_perspective_project",
]

# Below this squared angle (radians^2) the Rodrigues coefficients come from their Taylor series; the
# truncation error of the series used is O(theta^6) ~ 1e-18 there, far below float32 resolution.
_SMALL_ANGLE_SQUARED = 1e-6


def _skew(vector: jnp.ndarray) -> jnp.ndarray:
    """[..., 3] -> [..., 3, 3] cross-product matrix, skew(v) @ u == cross(v, u)."""
    x, y, z = vector[..., 0], vector[..., 1], vector[..., 2]
    zero = jnp.zeros_like(x)
    return jnp.stack(
        [
            jnp.stack([zero, -z, y], axis=-1),
            jnp.stack([z, zero, -x], axis=-1),
            jnp.stack([-y, x, zero], axis=-1),
        ],
        axis=-2,
    )


def rodrigues(axis_angle: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    R = I + a(theta) K + b(theta) K @ K with K = skew(w), theta = |w|, a = sin(theta) / theta and
    b = (1 - cos(theta)) / theta^2. Near theta = 0 both coefficients come from their Taylor series, so the
    value and the gradient are finite and exact at exactly zero (dR/dw_i = skew(e_i) there).

    Args:
      axis_angle: [..., 3] rotation vectors: unit axis times angle in radians (right-handed).

    Returns:
      [..., 3, 3] rotation matrices; `R @ p` rotates column vector p.
    """
    axis_angle = jnp.asarray(axis_angle)
    if axis_angle.ndim < 1 or axis_angle.shape[-1] != 3:
        raise ValueError(f"axis_angle must have shape [..., 3], got {axis_angle.shape}")
    if not jnp.issubdtype(axis_angle.dtype, jnp.floating):
        axis_angle = axis_angle.astype(jnp.float32)

    theta_squared = jnp.sum(axis_angle**2, axis=-1)
    small = theta_squared < _SMALL_ANGLE_SQUARED
    # Double-where: the exact branch never sees theta = 0, so its gradient stays finite as well.
    safe_theta_squared = jnp.where(small, 1.0, theta_squared)
    safe_theta = jnp.sqrt(safe_theta_squared)
    exact_a = jnp.sin(safe_theta) / safe_theta
    exact_b = (1.0 - jnp.cos(safe_theta)) / safe_theta_squared
    taylor_a = 1.0 - theta_squared / 6.0 + theta_squared**2 / 120.0
    taylor_b = 0.5 - theta_squared / 24.0 + theta_squared**2 / 720.0
    a = jnp.where(small, taylor_a, exact_a)[..., None, None]
    b = jnp.where(small, taylor_b, exact_b)[..., None, None]

    skew = _skew(axis_angle)
    identity = jnp.eye(3, dtype=axis_angle.dtype)
    return identity + a * skew + b * (skew @ skew)


def _check_point_sets(source: jnp.ndarray, target: jnp.ndarray) -> None:
    if source.ndim < 2:
        raise ValueError(f"source must have shape [..., N, D], got {source.shape}")
    if target.shape != source.shape:
        raise ValueError(
            f"target must have the same shape as source [..., N, D] = {source.shape}, got {target.shape}"
        )


def similarity_procrustes(
    source: jnp.ndarray, target: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Least-squares similarity transform from `source` to `target` (Umeyama 1991), reflections excluded.

    Minimises sum_n ||target_n - (scale * rotation @ source_n + translation)||^2 over scale >= 0, rotation
    with det(rotation) = +1 and translation. When the best orthogonal map is a reflection, the smallest
    singular direction is flipped instead (Umeyama's correction), so the result is always a proper rotation.

    Degenerate inputs: if all source points coincide, scale is 0 and translation is the target centroid
    (any rotation is then optimal). Gradients are finite whenever the cross-covariance has distinct, non-zero
    singular values (the generic case); they are not defined for exactly symmetric configurations.

    Args:
      source: [..., N, D] points (any unit, e.g. pixels or metres).
      target: [..., N, D] corresponding points, same unit.

    Returns:
      scale: [...] unitless scale factor.
      rotation: [..., D, D] proper rotation matrices.
      translation: [..., D] in the unit of `target`.
      So that target ~= scale * source @ rotation.T + translation[..., None, :].
    """
    source = jnp.asarray(source)
    target = jnp.asarray(target)
    _check_point_sets(source, target)
    dimension = source.shape[-1]

    source_mean = jnp.mean(source, axis=-2, keepdims=True)
    target_mean = jnp.mean(target, axis=-2, keepdims=True)
    source_centred = source - source_mean
    target_centred = target - target_mean

    covariance = jnp.swapaxes(target_centred, -1, -2) @ source_centred / source.shape[-2]
    u, singular_values, vt = jnp.linalg.svd(covariance, full_matrices=False)
    reflection = jnp.linalg.det(u) * jnp.linalg.det(vt) < 0
    last_sign = jnp.where(reflection, -1.0, 1.0).astype(source.dtype)
    signs = jnp.concatenate(
        [jnp.ones(source.shape[:-2] + (dimension - 1,), source.dtype), last_sign[..., None]], axis=-1
    )
    rotation = (u * signs[..., None, :]) @ vt

    source_variance = jnp.mean(jnp.sum(source_centred**2, axis=-1), axis=-1)
    degenerate = source_variance <= 0
    safe_variance = jnp.where(degenerate, 1.0, source_variance)
    scale = jnp.where(degenerate, 0.0, jnp.sum(singular_values * signs, axis=-1) / safe_variance)

    translation = target_mean[..., 0, :] - scale[..., None] * jnp.einsum(
        "...ij,...j->...i", rotation, source_mean[..., 0, :]
    )
    return scale, rotation, translation


def apply_similarity(
    points: jnp.ndarray, scale: jnp.ndarray, rotation: jnp.ndarray, translation: jnp.ndarray
) -> jnp.ndarray:
    """Applies x -> scale * rotation @ x + translation to every point.

    Args:
      points: [..., N, D] points.
      scale: [...] scale factors (or a scalar).
      rotation: [..., D, D] matrices.
      translation: [..., D] offsets, in the unit of the output.

    Returns:
      [..., N, D] transformed points: scale * points @ rotation.T + translation.
    """
    points = jnp.asarray(points)
    scale = jnp.asarray(scale)
    rotation = jnp.asarray(rotation)
    translation = jnp.asarray(translation)
    if points.ndim < 2:
        raise ValueError(f"points must have shape [..., N, D], got {points.shape}")
    dimension = points.shape[-1]
    if rotation.ndim < 2 or rotation.shape[-2:] != (dimension, dimension):
        raise ValueError(f"rotation must have shape [..., {dimension}, {dimension}], got {rotation.shape}")
    if translation.ndim < 1 or translation.shape[-1] != dimension:
        raise ValueError(f"translation must have shape [..., {dimension}], got {translation.shape}")
    return (
        scale[..., None, None] * (points @ jnp.swapaxes(rotation, -1, -2)) + translation[..., None, :]
    )


def weak_perspective_project(points3d: jnp.ndarray, camera: jnp.ndarray) -> jnp.ndarray:
    """HMR's weak-perspective camera: x = s * (X[..., :2] + t).

    Args:
      points3d: [..., N, 3] 3D points (X, Y, Z); Z is ignored.
      camera: [..., 3] as [s, tx, ty]: scale and a translation in the units of X before scaling.

    Returns:
      [..., N, 2] projected (x, y) points, in the units the camera was fitted to (HMR: normalised
      image coordinates in [-1, 1]).
    """
    points3d = jnp.asarray(points3d)
    camera = jnp.asarray(camera)
    if points3d.ndim < 2 or points3d.shape[-1] != 3:
        raise ValueError(f"points3d must have shape [..., N, 3], got {points3d.shape}")
    if camera.ndim < 1 or camera.shape[-1] != 3:
        raise ValueError(f"camera must have shape [..., 3] = [s, tx, ty], got {camera.shape}")
    scale = camera[..., 0, None, None]
    translation = camera[..., None, 1:3]
    return scale * (points3d[..., :2] + translation)
