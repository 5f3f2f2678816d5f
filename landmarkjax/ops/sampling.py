"""Differentiable bilinear sampling of images at sub-pixel points, and patch extraction.

Points are (x, y) in pixels with pixel centres at integer coordinates (OpenCV's convention): pixel
(row i, column j) is sampled exactly at x = j, y = i. Functions are pure `jnp`, safe under `jax.jit`,
`jax.vmap` (use it for batches of images) and `jax.grad` with respect to both the image and the points.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp

__all__ = ["bilinear_sample", "extract_patches"]

_MODES = ("constant", "edge")


def _check_image(image: jnp.ndarray) -> jnp.ndarray:
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"image must have shape [H, W, C] (add a channel axis to grayscale images, vmap for batches), "
            f"got {image.shape}"
        )
    if 0 in image.shape:
        raise ValueError(f"image must have H, W, C >= 1, got {image.shape}")
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    return image


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def bilinear_sample(
    image: jnp.ndarray, points: jnp.ndarray, mode: str = "constant", cval: float = 0.0
) -> jnp.ndarray:
    """Samples an image at sub-pixel (x, y) points by bilinear interpolation.

    Out-of-bounds handling (`mode`):
      - "constant": the image is extended by `cval` beyond its border and interpolation runs on the
        extended image, so a point within one pixel outside the border blends the edge pixel with `cval`
        (e.g. x = -0.5 gives half of each) and a point one pixel or more outside returns `cval`. The result
        is continuous in the points, hence usefully differentiable. This equals
        `scipy.ndimage.map_coordinates(order=1, mode="grid-constant")`, OpenCV's `cv2.remap(INTER_LINEAR,
        BORDER_CONSTANT)` and PyTorch's `grid_sample(padding_mode="zeros", align_corners=True)` for
        cval = 0. It is NOT scipy's `mode="constant"`, which returns `cval` for every point outside
        [0, W-1] x [0, H-1] (no blending: a jump at the border); the two agree inside that rectangle and
        one pixel or more outside it.
      - "edge": the border pixels are replicated (coordinates clamped to the image), like scipy's
        `mode="nearest"` and OpenCV's `BORDER_REPLICATE`; the gradient w.r.t. a clamped coordinate is 0.

    Args:
      image: [H, W, C] image (grayscale as [H, W, 1]; vmap over batches). Integer images are sampled as
        float32.
      points: [..., 2] (x, y) in pixels, pixel centres at integers.
      mode: "constant" or "edge", see above.
      cval: value outside the image in "constant" mode.

    Returns:
      [..., C] sampled values (floating dtype of the image promoted with the points').
    """
    image = _check_image(image)
    points = jnp.asarray(points)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., 2] of (x, y), got {points.shape}")
    _check_mode(mode)
    points = points.astype(jnp.result_type(points.dtype, image.dtype))
    height, width, _ = image.shape

    x, y = points[..., 0], points[..., 1]
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]

    def corner(cy: jnp.ndarray, cx: jnp.ndarray) -> jnp.ndarray:
        # Clip the float coordinates before casting, so huge or infinite points cannot overflow int32.
        rows = jnp.clip(cy, 0, height - 1).astype(jnp.int32)
        cols = jnp.clip(cx, 0, width - 1).astype(jnp.int32)
        values = image[rows, cols]
        if mode == "edge":
            return values
        inside = (cy >= 0) & (cy <= height - 1) & (cx >= 0) & (cx <= width - 1)
        return jnp.where(inside[..., None], values, jnp.asarray(cval, image.dtype))

    top = corner(y0, x0) * (1 - fx) + corner(y0, x0 + 1) * fx
    bottom = corner(y0 + 1, x0) * (1 - fx) + corner(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def extract_patches(
    image: jnp.ndarray,
    centers: jnp.ndarray,
    radius: int,
    mode: str = "constant",
    cval: float = 0.0,
) -> jnp.ndarray:
    """Extracts square (2r+1) x (2r+1) patches around sub-pixel centres by bilinear sampling.

    patches[k, i, j] = bilinear_sample(image, centers[k] + (j - r, i - r)): row i of a patch runs along y,
    column j along x, and the centre pixel patches[k, r, r] is sampled exactly at centers[k].

    Args:
      image: [H, W, C] image.
      centers: [K, 2] (x, y) patch centres in pixels (any leading shape [..., 2] works the same way).
      radius: r >= 0, patch half-size in pixels (Python int).
      mode: out-of-bounds handling, as in `bilinear_sample`.
      cval: value outside the image in "constant" mode.

    Returns:
      [K, 2r+1, 2r+1, C] patches.
    """
    image = _check_image(image)
    centers = jnp.asarray(centers)
    if centers.ndim < 1 or centers.shape[-1] != 2:
        raise ValueError(f"centers must have shape [K, 2] of (x, y), got {centers.shape}")
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
        raise ValueError(f"radius must be a non-negative Python int, got {radius!r}")
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.result_type(centers.dtype, jnp.float32))
    offset_y, offset_x = jnp.meshgrid(offsets, offsets, indexing="ij")
    grid = jnp.stack([offset_x, offset_y], axis=-1)  # [2r+1, 2r+1, 2] as (x, y)
    points = centers[..., None, None, :] + grid
    return bilinear_sample(image, points, mode=mode, cval=cval)
