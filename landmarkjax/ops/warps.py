"""Affine warps of points and images, and random affine augmentation parameters.

Convention: an affine matrix is a [2, 3] array M = [A | b] that maps SOURCE pixel coordinates to OUTPUT pixel
coordinates, p_out = A @ p_src + b, with points (x, y) in pixels and pixel centres at integers. This is the
matrix OpenCV's `cv2.warpAffine(src, M, dsize)` takes (without `WARP_INVERSE_MAP`), so landmarks move with
the very matrix that moves the image: `affine_warp_points(points, M)` gives where the content at `points`
lands in `affine_warp_image(image, M)`. To compose two warps, append the row [0, 0, 1] to each matrix and
multiply the 3x3 matrices.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from landmarkjax.ops.sampling import bilinear_sample

__all__ = [
    "affine_matrix",
    "invert_affine",
    "random_affine",
    "affine_warp_points",
    "affine_warp_image",
    "source_pixels_valid",
    "pixel_grid",
]

# Sample positions this close (in pixels) outside the source rectangle still count as valid, so that float
# round-off of an identity-like warp does not mark the border pixels invalid.
_VALID_TOLERANCE = 1e-3


def _check_matrix(matrix: jnp.ndarray, name: str = "matrix") -> jnp.ndarray:
    matrix = jnp.asarray(matrix)
    if matrix.ndim < 2 or matrix.shape[-2:] != (2, 3):
        raise ValueError(f"{name} must have shape [..., 2, 3] (source -> output pixels), got {matrix.shape}")
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        matrix = matrix.astype(jnp.float32)
    return matrix


def _check_output_shape(output_shape: Sequence[int] | None, image_shape: tuple[int, ...]) -> tuple[int, int]:
    if output_shape is None:
        return image_shape[0], image_shape[1]
    if len(output_shape) != 2 or not all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1 for size in output_shape
    ):
        raise ValueError(f"output_shape must be (height, width) with positive ints, got {output_shape!r}")
    return int(output_shape[0]), int(output_shape[1])


def affine_matrix(
    rotation: jnp.ndarray | float = 0.0,
    scale: jnp.ndarray | float = 1.0,
    translation: jnp.ndarray | Sequence[float] = (0.0, 0.0),
    center: jnp.ndarray | Sequence[float] = (0.0, 0.0),
) -> jnp.ndarray:
    """Builds the [2, 3] matrix that rotates and scales about `center`, then translates.

    p_out = R(rotation) * scale @ (p_src - center) + center + translation. The rotation follows
    `cv2.getRotationMatrix2D`: a positive angle turns the image content counter-clockwise as displayed (y
    pointing down), i.e. R = [[cos, sin], [-sin, cos]] in (x, y) pixel coordinates. With zero translation the
    result equals `cv2.getRotationMatrix2D(center, degrees(rotation), scale)`.

    Args:
      rotation: [...] angle in radians.
      scale: [...] isotropic scale factor (unitless).
      translation: [..., 2] (x, y) shift in output pixels, applied after rotation and scaling.
      center: [..., 2] (x, y) fixed point of the rotation and scaling, in pixels (e.g. ((W-1)/2, (H-1)/2)
        for the image centre).

    Returns:
      [..., 2, 3] matrices (leading shapes broadcast), mapping source to output pixels.
    """
    rotation = jnp.asarray(rotation)
    scale = jnp.asarray(scale)
    translation = jnp.asarray(translation)
    center = jnp.asarray(center)
    for name, value in (("translation", translation), ("center", center)):
        if value.ndim < 1 or value.shape[-1] != 2:
            raise ValueError(f"{name} must have shape [..., 2] of (x, y) pixels, got {value.shape}")
    dtype = jnp.result_type(rotation, scale, translation, center, jnp.float32)
    cos = jnp.cos(rotation).astype(dtype) * scale
    sin = jnp.sin(rotation).astype(dtype) * scale
    linear = jnp.stack([jnp.stack([cos, sin], axis=-1), jnp.stack([-sin, cos], axis=-1)], axis=-2)
    offset = center + translation - jnp.einsum("...ij,...j->...i", linear, center)
    batch_shape = jnp.broadcast_shapes(linear.shape[:-2], offset.shape[:-1])
    linear = jnp.broadcast_to(linear, batch_shape + (2, 2))
    offset = jnp.broadcast_to(offset[..., None], batch_shape + (2, 1))
    return jnp.concatenate([linear, offset], axis=-1).astype(dtype)


def invert_affine(matrix: jnp.ndarray) -> jnp.ndarray:
    """Inverse of a [..., 2, 3] affine matrix (like `cv2.invertAffineTransform`): output -> source pixels."""
    matrix = _check_matrix(matrix)
    linear_inverse = jnp.linalg.inv(matrix[..., :2])
    offset = -jnp.einsum("...ij,...j->...i", linear_inverse, matrix[..., 2])
    return jnp.concatenate([linear_inverse, offset[..., None]], axis=-1)


def random_affine(
    key: jax.Array,
    *,
    center: jnp.ndarray | Sequence[float],
    max_rotation: float = 0.0,
    scale_range: tuple[float, float] = (1.0, 1.0),
    max_translation: float | Sequence[float] = 0.0,
) -> jnp.ndarray:
    """Samples a random similarity warp about `center`, for data augmentation.

    rotation ~ U(-max_rotation, max_rotation), scale ~ U(scale_range[0], scale_range[1]) and each of the x, y
    translations ~ U(-max_translation, max_translation), independently; the result is
    `affine_matrix(rotation, scale, translation, center)`. For a batch, `jax.vmap` over split keys.

    Args:
      key: a `jax.random` key.
      center: [2] (x, y) pixels, the fixed point of rotation and scaling (usually ((W-1)/2, (H-1)/2)).
      max_rotation: largest rotation in radians (>= 0).
      scale_range: (low, high) with 0 < low <= high.
      max_translation: largest shift in PIXELS (>= 0), a float or a per-axis (x, y) pair. For a fraction f
        of the image size use `max_translation=(f * width, f * height)`.

    Returns:
      [2, 3] float32 matrix mapping source to output pixels (see the module docstring).
    """
    if isinstance(max_rotation, numbers.Real) and max_rotation < 0:
        raise ValueError(f"max_rotation must be >= 0 radians, got {max_rotation}")
    if len(scale_range) != 2:
        raise ValueError(f"scale_range must be a (low, high) pair, got {scale_range!r}")
    low, high = scale_range
    if isinstance(low, numbers.Real) and isinstance(high, numbers.Real) and not 0 < low <= high:
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range!r}")
    translation_limits = max_translation if isinstance(max_translation, Sequence) else [max_translation]
    if any(isinstance(limit, numbers.Real) and limit < 0 for limit in translation_limits):
        raise ValueError(f"max_translation must be >= 0 pixels, got {max_translation!r}")
    max_translation = jnp.broadcast_to(jnp.asarray(max_translation, jnp.float32), (2,))
    center = jnp.asarray(center, jnp.float32)
    if center.shape != (2,):
        raise ValueError(f"center must have shape [2] of (x, y) pixels, got {center.shape}")
    limits = (jnp.asarray(value, jnp.float32) for value in (max_rotation, low, high))
    return _sample_affine(key, center, *limits, max_translation)


@jax.jit
def _sample_affine(
    key: jax.Array,
    center: jnp.ndarray,
    max_rotation: jnp.ndarray,
    low: jnp.ndarray,
    high: jnp.ndarray,
    max_translation: jnp.ndarray,
) -> jnp.ndarray:
    # One compiled function, so that eager per-example calls (e.g. in a data pipeline) stay cheap.
    rotation_key, scale_key, translation_key = jax.random.split(key, 3)
    rotation = jax.random.uniform(rotation_key, (), minval=-max_rotation, maxval=max_rotation)
    scale = jax.random.uniform(scale_key, (), minval=low, maxval=high)
    translation = jax.random.uniform(translation_key, (2,), minval=-1.0, maxval=1.0) * max_translation
    return affine_matrix(rotation, scale, translation, center)


def affine_warp_points(points: jnp.ndarray, matrix: jnp.ndarray) -> jnp.ndarray:
    """Moves points with an affine matrix: p_out = A @ p + b.

    Args:
      points: [..., K, 2] (x, y) source pixels.
      matrix: [..., 2, 3] source -> output matrices; leading dims broadcast against the points' leading dims.

    Returns:
      [..., K, 2] (x, y) output pixels.
    """
    points = jnp.asarray(points)
    matrix = _check_matrix(matrix)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., K, 2] of (x, y), got {points.shape}")
    return points @ jnp.swapaxes(matrix[..., :2], -1, -2) + matrix[..., None, :, 2]


def source_pixels_valid(source_points: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Whether sample positions lie inside a source image, i.e. in [0, W-1] x [0, H-1].

    Such a position is interpolated from source pixels only (no out-of-bounds fill), up to a 1e-3 px
    tolerance for round-off.

    Args:
      source_points: [..., 2] (x, y) sample positions in source pixels.
      height: source height H in pixels.
      width: source width W in pixels.

    Returns:
      [...] bool.
    """
    x, y = source_points[..., 0], source_points[..., 1]
    return (
        (x >= -_VALID_TOLERANCE)
        & (x <= width - 1 + _VALID_TOLERANCE)
        & (y >= -_VALID_TOLERANCE)
        & (y <= height - 1 + _VALID_TOLERANCE)
    )


def pixel_grid(height: int, width: int, dtype=jnp.float32) -> jnp.ndarray:
    """[H, W, 2] (x, y) pixel-centre coordinates: grid[i, j] = (j, i)."""
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=dtype), jnp.arange(width, dtype=dtype), indexing="ij")
    return jnp.stack([cols, rows], axis=-1)


def affine_warp_image(
    image: jnp.ndarray,
    matrix: jnp.ndarray,
    output_shape: Sequence[int] | None = None,
    *,
    mode: str = "constant",
    cval: float = 0.0,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Warps an image with an affine matrix by bilinear backward sampling.

    Output pixel p takes the source value at invert_affine(matrix) @ p, exactly like
    `cv2.warpAffine(image, matrix, (W', H'), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)` (up to
    OpenCV's 1/32-pixel fixed-point interpolation weights). Differentiable w.r.t. image and matrix.

    Args:
      image: [H, W, C] float image (vmap for batches).
      matrix: [2, 3] source -> output pixel matrix.
      output_shape: (H', W') of the result in pixels; defaults to (H, W).
      mode: out-of-bounds handling of `bilinear_sample`: "constant" (fill with `cval`) or "edge".
      cval: fill value in "constant" mode.

    Returns:
      warped: [H', W', C] image.
      valid: [H', W'] bool, True where the output pixel was interpolated from inside the source only (its
        sample position lies in [0, W-1] x [0, H-1]); False where fill or replicated-border values entered.
    """
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C] (vmap for batches), got {image.shape}")
    matrix = _check_matrix(matrix)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape [2, 3] for a single image (vmap for batches), got {matrix.shape}")
    out_height, out_width = _check_output_shape(output_shape, image.shape)
    dtype = jnp.result_type(image.dtype, matrix.dtype, jnp.float32)
    grid = pixel_grid(out_height, out_width, dtype)
    source_points = affine_warp_points(grid, invert_affine(matrix.astype(dtype)))
    warped = bilinear_sample(image, source_points, mode=mode, cval=cval)
    return warped, source_pixels_valid(source_points, image.shape[0], image.shape[1])
