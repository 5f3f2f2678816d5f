"""Heatmaps: soft-argmax variants, Gaussian rendering, heatmap <-> image coordinates, landmark read-out.

Heatmaps are `[..., H, W, K]` (one map per landmark in the last axis). Points are `[..., K, 2]` as (x, y)
in pixels of the grid they refer to, pixel centres at integer coordinates: cell (row i, column j) has its
centre at x = j, y = i. All functions are pure `jnp`, batched over leading dimensions, and safe under
`jax.jit`, `jax.vmap` and `jax.grad`.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

__all__ = [
    "soft_argmax",
    "marginal_soft_argmax",
    "local_soft_argmax",
    "render_gaussian_heatmaps",
    "heatmap_to_image_coords",
    "image_to_heatmap_coords",
    "LOCATORS",
    "locate_landmarks",
]

# SBR replaces window values at or below its threshold by numpy's float64 epsilon (F.threshold(.., eps)),
# which keeps every weight positive, so the normaliser never vanishes even on an all-zero map.
_BELOW_THRESHOLD_WEIGHT = 2.220446049250313e-16


def _as_float(array: jnp.ndarray) -> jnp.ndarray:
    array = jnp.asarray(array)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.float32)
    return array


def _check_heatmaps(heatmaps: jnp.ndarray) -> jnp.ndarray:
    heatmaps = _as_float(heatmaps)
    if heatmaps.ndim < 3:
        raise ValueError(f"heatmaps must have shape [..., H, W, K], got {heatmaps.shape}")
    if 0 in heatmaps.shape[-3:]:
        raise ValueError(f"heatmaps must have H, W, K >= 1 in [..., H, W, K], got {heatmaps.shape}")
    return heatmaps


def _check_points(points: jnp.ndarray) -> jnp.ndarray:
    points = _as_float(points)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., 2] of (x, y), got {points.shape}")
    return points


def _check_positive(value, name: str) -> None:
    """Checks a concrete positive number; traced or array values are accepted as they are."""
    if isinstance(value, numbers.Real) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive Python int, got {value!r}")
    return int(value)


def _expected_coordinate(logits: jnp.ndarray, axis: int) -> jnp.ndarray:
    """Softmax over `axis` of `logits`, then the expectation of the index along that axis."""
    probabilities = jax.nn.softmax(logits, axis=axis)
    shape = [1] * logits.ndim
    shape[axis] = logits.shape[axis]
    index = jnp.arange(logits.shape[axis], dtype=logits.dtype).reshape(shape)
    return jnp.sum(probabilities * index, axis=axis)


def soft_argmax(heatmaps: jnp.ndarray, temperature: float | jnp.ndarray = 1.0) -> jnp.ndarray:
    """Spatial soft-argmax: expected (x, y) under a softmax over all H * W cells of each map.

    p_k(i, j) = softmax over (i, j) of heatmaps[..., i, j, k] / temperature; the result is
    (sum p_k * j, sum p_k * i). Treat heatmaps as logits: for a heatmap that is a Gaussian bump g (peak 1),
    `soft_argmax(log g)` is the centroid of the sampled Gaussian, which equals its sub-pixel centre (to
    ~exp(-2 pi^2 sigma^2) for sigma >~ 1 cell, far from the border).

    Args:
      heatmaps: [..., H, W, K] logits (any real values).
      temperature: softmax temperature (> 0); smaller is closer to the hard argmax.

    Returns:
      [..., K, 2] expected (x, y) in heatmap cells, pixel centres at integers, so within [0, W-1] x [0, H-1].
    """
    heatmaps = _check_heatmaps(heatmaps)
    _check_positive(temperature, "temperature")
    *batch, height, width, num_maps = heatmaps.shape
    logits = heatmaps.reshape(*batch, height * width, num_maps) / temperature
    probabilities = jax.nn.softmax(logits, axis=-2)
    cell = jnp.arange(height * width)
    xs = (cell % width).astype(heatmaps.dtype)[:, None]
    ys = (cell // width).astype(heatmaps.dtype)[:, None]
    x = jnp.sum(probabilities * xs, axis=-2)
    y = jnp.sum(probabilities * ys, axis=-2)
    return jnp.stack([x, y], axis=-1)


def marginal_soft_argmax(heatmaps: jnp.ndarray, reduction: str = "sum") -> jnp.ndarray:
    """Marginal soft-argmax of Jakab et al. (2018): one softmax per axis over the map's marginals.

    For x: reduce each map over its rows (the other axis) to a length-W marginal, softmax it over W, take
    the expected column index; likewise for y with a length-H marginal. The paper sums over the other axis
    (`reduction="sum"`); the authors' released code (imm `get_coord`) takes the mean
    (`reduction="mean"`), which is the same as a softmax temperature equal to the other axis's length.
    Their code also returns (y, x) in [-1, 1] (`linspace(-1, 1, size)`, so u = -1 + 2 x / (W - 1));
    here the output is (x, y) in pixels, the same convention as `soft_argmax`.

    Args:
      heatmaps: [..., H, W, K] logits.
      reduction: "sum" (paper) or "mean" (authors' code) over the other axis.

    Returns:
      [..., K, 2] expected (x, y) in heatmap cells, pixel centres at integers.
    """
    heatmaps = _check_heatmaps(heatmaps)
    if reduction == "sum":
        reduce = jnp.sum
    elif reduction == "mean":
        reduce = jnp.mean
    else:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    x = _expected_coordinate(reduce(heatmaps, axis=-3), axis=-2)  # marginal over W: [..., W, K]
    y = _expected_coordinate(reduce(heatmaps, axis=-2), axis=-2)  # marginal over H: [..., H, K]
    return jnp.stack([x, y], axis=-1)


def local_soft_argmax(heatmaps: jnp.ndarray, radius: int = 4, threshold: float = 1e-6) -> jnp.ndarray:
    """SBR's peak finder: integer argmax, then a value-weighted centroid in a (2r+1)^2 window around it.

    This is the variant of Supervision-by-Registration's `find_tensor_peak_batch`: the weights are the raw
    heatmap values in the window, normalised by their sum (values <= `threshold` get a weight of 2.2e-16),
    not a softmax. SBR's detector regresses Gaussian heatmaps (peak 1) with an MSE loss, so its values are
    already a likelihood-shaped bump: their centroid is the Gaussian's sub-pixel centre, while a softmax
    of values in [0, 1] would be nearly flat and pull the estimate toward the integer argmax.
    Window cells outside the map get weight 0 (no wrapping); SBR's zero padding gives them 2.2e-16, a
    difference below float32 resolution. The argmax is piecewise constant, so the result is
    differentiable w.r.t. the heatmap values inside the window (not w.r.t. which cell is the peak).

    Args:
      heatmaps: [..., H, W, K] non-negative-ish heatmaps (e.g. Gaussian targets regressed with MSE).
      radius: window half-size r >= 0 in heatmap cells (SBR uses 4).
      threshold: values at or below it count as (almost) zero weight.

    Returns:
      [..., K, 2] (x, y) in heatmap cells, pixel centres at integers.
    """
    heatmaps = _check_heatmaps(heatmaps)
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
        raise ValueError(f"radius must be a non-negative Python int, got {radius!r}")
    *batch, height, width, num_maps = heatmaps.shape
    flat = jnp.swapaxes(heatmaps.reshape(*batch, height * width, num_maps), -1, -2)  # [..., K, H*W]
    peak = jnp.argmax(flat, axis=-1)
    peak_y, peak_x = peak // width, peak % width  # [..., K]

    offsets = jnp.arange(-radius, radius + 1)
    offset_y, offset_x = (o.reshape(-1) for o in jnp.meshgrid(offsets, offsets, indexing="ij"))
    ys = peak_y[..., None] + offset_y  # [..., K, (2r+1)^2]
    xs = peak_x[..., None] + offset_x
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    index = jnp.clip(ys, 0, height - 1) * width + jnp.clip(xs, 0, width - 1)
    values = jnp.take_along_axis(flat, index, axis=-1)

    weights = jnp.where(values > threshold, values, _BELOW_THRESHOLD_WEIGHT)
    weights = jnp.where(inside, weights, 0.0)
    total = jnp.sum(weights, axis=-1)  # >= 2.2e-16: the peak cell itself is always inside
    dx = jnp.sum(weights * offset_x.astype(weights.dtype), axis=-1) / total
    dy = jnp.sum(weights * offset_y.astype(weights.dtype), axis=-1) / total
    x = peak_x.astype(heatmaps.dtype) + dx
    y = peak_y.astype(heatmaps.dtype) + dy
    return jnp.stack([x, y], axis=-1)


def render_gaussian_heatmaps(
    points: jnp.ndarray, height: int, width: int, sigma: float | jnp.ndarray
) -> jnp.ndarray:
    """Renders one isotropic Gaussian bump per point: exp(-|u - p_k|^2 / (2 sigma^2)), peak 1.

    Args:
      points: [..., K, 2] centres (x, y) in heatmap cells, pixel centres at integers (may be sub-pixel or
        outside the grid).
      height: H, number of rows (Python int).
      width: W, number of columns (Python int).
      sigma: standard deviation in heatmap cells (> 0); a scalar or an array broadcastable to [..., K].

    Returns:
      [..., H, W, K] heatmaps with values in (0, 1], equal to 1 at a point that lies on a cell centre.
    """
    points = _check_points(points)
    if points.ndim < 2:
        raise ValueError(f"points must have shape [..., K, 2], got {points.shape}")
    height = _check_size(height, "height")
    width = _check_size(width, "width")
    _check_positive(sigma, "sigma")
    sigma = jnp.asarray(sigma, points.dtype)
    xs = jnp.arange(width, dtype=points.dtype)[:, None]  # [W, 1]
    ys = jnp.arange(height, dtype=points.dtype)[:, None, None]  # [H, 1, 1]
    dx = xs - points[..., None, None, :, 0]  # [..., 1, W, K]
    dy = ys - points[..., None, None, :, 1]  # [..., H, 1, K]
    sigma = sigma[..., None, None, :] if sigma.ndim else sigma
    return jnp.exp(-(dx**2 + dy**2) / (2.0 * sigma**2))


def heatmap_to_image_coords(points: jnp.ndarray, stride: float) -> jnp.ndarray:
    """Maps (x, y) in cells of a stride-s feature map to image pixels.

    Cell i of a stride-s map covers image pixels [i s, (i + 1) s), whose centres are at i s, ...,
    i s + s - 1, so the cell's centre is at i s + (s - 1) / 2 (pixel centres at integers in both frames;
    this is SBR's `x * downsample + downsample / 2 - 0.5`). The map is affine, so it applies to sub-cell
    positions too: image = heatmap * s + (s - 1) / 2.

    Args:
      points: [..., 2] (x, y) in heatmap cells.
      stride: s > 0, image pixels per heatmap cell.

    Returns:
      [..., 2] (x, y) in image pixels.
    """
    points = _check_points(points)
    _check_positive(stride, "stride")
    return points * stride + (stride - 1) / 2


def image_to_heatmap_coords(points: jnp.ndarray, stride: float) -> jnp.ndarray:
    """Maps (x, y) in image pixels to cells of a stride-s feature map: (image - (s - 1) / 2) / s.

    The exact inverse of `heatmap_to_image_coords`; see there for the pixel-centre convention.

    Args:
      points: [..., 2] (x, y) in image pixels.
      stride: s > 0, image pixels per heatmap cell.

    Returns:
      [..., 2] (x, y) in heatmap cells.
    """
    points = _check_points(points)
    _check_positive(stride, "stride")
    return (points - (stride - 1) / 2) / stride


LOCATORS = ("soft_argmax", "local_soft_argmax")
"""Names `locate_landmarks` accepts for `locator`."""


def locate_landmarks(
    heatmaps: jnp.ndarray,
    num_keypoints: int,
    stride: int,
    *,
    locator: str = "soft_argmax",
    temperature: float = 0.05,
    radius: int = 2,
) -> jnp.ndarray:
    """Landmarks from a detector's heatmaps (e.g. a CPM stage's), in image pixels.

    Args:
      heatmaps: `[..., h, w, K (+1)]` in cells of a stride-`stride` map (a trailing background map, or any
        map after the first `num_keypoints`, is ignored).
      num_keypoints: K.
      stride: image pixels per heatmap cell.
      locator: "soft_argmax" (softmax over the whole map at `temperature`: what a coordinate loss on
        `soft_argmax` trains) or "local_soft_argmax" (SBR's peak finder: argmax, then the value-weighted
        centroid in a window of half-size `radius` cells).
      temperature: softmax temperature of "soft_argmax".
      radius: window half-size of "local_soft_argmax", in heatmap cells.

    Returns:
      `[..., K, 2]` (x, y) in image pixels, pixel centres at integers.
    """
    maps = heatmaps[..., :num_keypoints]
    if locator == "soft_argmax":
        cells = soft_argmax(maps, temperature=temperature)
    elif locator == "local_soft_argmax":
        cells = local_soft_argmax(maps, radius=radius)
    else:
        raise ValueError(f"locator must be one of {LOCATORS}; got {locator!r}.")
    return heatmap_to_image_coords(cells, stride)
