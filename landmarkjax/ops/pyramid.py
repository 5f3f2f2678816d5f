"""Gaussian image pyramids (binomial blur and 2x decimation, as OpenCV's `pyrDown`).

Level l of a pyramid has pixel (i, j) at the position of pixel (2^l i, 2^l j) of level 0, so a point
(x, y) in level-0 pixels (pixel centres at integers) is at (x, y) / 2^l in level l.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["pyramid_downsample", "gaussian_pyramid"]

# 5-tap binomial kernel, a close approximation of a Gaussian with sigma = 1 (the kernel of cv2.pyrDown).
_BINOMIAL_5 = (1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0)


def _blur_and_decimate(image: jnp.ndarray, axis: int) -> jnp.ndarray:
    """Binomial blur along `axis`, keeping only the even samples: length n -> (n + 1) // 2."""
    length = image.shape[axis]
    pad = [(0, 0)] * image.ndim
    pad[axis] = (2, 2)
    # numpy's 'reflect' excludes the edge sample (OpenCV's BORDER_REFLECT_101, pyrDown's border).
    padded = jnp.pad(image, pad, mode="reflect" if length > 2 else "edge")
    out_length = (length + 1) // 2
    taps = []
    for offset, weight in enumerate(_BINOMIAL_5):
        index = [slice(None)] * image.ndim
        index[axis] = slice(offset, offset + 2 * out_length - 1, 2)
        taps.append(weight * padded[tuple(index)])
    return sum(taps)


def pyramid_downsample(image: jnp.ndarray) -> jnp.ndarray:
    """Blurs an image with the 5x5 binomial kernel and keeps every other row and column.

    Matches `cv2.pyrDown` (up to its 8-bit rounding) for images of at least 3x3 pixels: border samples
    are reflected without repeating the edge (BORDER_REFLECT_101).

    Args:
      image: [H, W, C] float image.

    Returns:
      [(H + 1) // 2, (W + 1) // 2, C]; output pixel (i, j) is centred on input pixel (2i, 2j).
    """
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C], got {image.shape}")
    return _blur_and_decimate(_blur_and_decimate(image, axis=0), axis=1)


def gaussian_pyramid(image: jnp.ndarray, num_levels: int) -> list[jnp.ndarray]:
    """Coarse-to-fine Gaussian pyramid of an image.

    Args:
      image: [H, W, C] float image (level 0).
      num_levels: number of levels, >= 1 (1 returns just the image).

    Returns:
      A list of `num_levels` arrays, finest first: level l has shape [H_l, W_l, C] with
      H_l = (H_{l-1} + 1) // 2; a point (x, y) of level 0 (pixels) is at (x, y) / 2^l in level l.
    """
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C], got {image.shape}")
    if int(num_levels) != num_levels or num_levels < 1:
        raise ValueError(f"num_levels must be an integer >= 1, got {num_levels}")
    levels = [image]
    for _ in range(num_levels - 1):
        levels.append(pyramid_downsample(levels[-1]))
    return levels
