"""Heatmap losses and targets: MSE against Gaussian target maps, per stage of a multi-stage detector.

Heatmaps are `[..., H, W, K]`; points `[..., K, 2]` as (x, y) in pixels, pixel centres at integers.
"""

from __future__ import annotations

import jax.numpy as jnp

from landmarkjax.losses._checks import check_same_shape, check_weights, weighted_mean
from landmarkjax.ops.heatmaps import image_to_heatmap_coords, render_gaussian_heatmaps

__all__ = ["heatmap_mse", "multi_stage_heatmap_mse", "heatmap_targets"]


def heatmap_mse(
    predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Mean squared error between heatmaps, optionally weighted per keypoint.

    Args:
        predicted: `[..., H, W, K]` predicted heatmaps.
        target: `[..., H, W, K]` target heatmaps.
        weights: optional `[..., K]` non-negative weight of each keypoint map (e.g. visibility as 0/1);
            every pixel of map k counts with weight `weights[..., k]`.

    Returns:
        Scalar: the (weighted) mean over all pixels and maps of `(predicted - target) ** 2`.
    """
    check_same_shape(predicted, target)
    if predicted.ndim < 3:
        raise ValueError(f"heatmaps must be [..., H, W, K]; got shape {predicted.shape}.")
    squared = jnp.square(predicted - target)
    if weights is None:
        return jnp.mean(squared)
    check_weights(weights, predicted.shape[:-3] + predicted.shape[-1:])
    pixel_weights = jnp.broadcast_to(weights[..., None, None, :], squared.shape)
    return weighted_mean(squared, pixel_weights)


def multi_stage_heatmap_mse(
    stage_heatmaps: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Heatmap MSE summed over the stages of a multi-stage detector (CPM / SBR intermediate supervision).

    Args:
        stage_heatmaps: `[S, ..., H, W, K]` heatmaps of the S stages.
        target: `[..., H, W, K]` target heatmaps, shared by every stage.
        weights: optional `[..., K]` keypoint weights (see `heatmap_mse`).

    Returns:
        Scalar: `sum_s heatmap_mse(stage_heatmaps[s], target, weights)`.
    """
    if stage_heatmaps.shape[1:] != target.shape:
        raise ValueError(
            "stage_heatmaps must be [S, *target.shape]; got "
            f"stage_heatmaps {stage_heatmaps.shape} and target {target.shape}."
        )
    per_stage = [heatmap_mse(stage, target, weights) for stage in stage_heatmaps]
    return jnp.sum(jnp.stack(per_stage))


def heatmap_targets(
    landmarks: jnp.ndarray,
    visibility: jnp.ndarray,
    *,
    height: int,
    width: int,
    stride: int,
    sigma: float,
    threshold: float,
    with_background: bool,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """SBR's heatmap targets and per-map weights.

    Each landmark gets a Gaussian of standard deviation `sigma` heatmap cells (peak 1) at its position in
    the stride-`stride` grid; values below `threshold` are set to 0; the background map is
    1 - max over the visible landmarks' maps.

    Args:
      landmarks: `[B, K, 2]` (x, y) in image pixels.
      visibility: `[B, K]` 1 for a labelled/visible landmark, 0 otherwise.
      height, width: heatmap size in cells.
      stride: image pixels per heatmap cell.
      sigma: Gaussian standard deviation in heatmap cells.
      threshold: values below it become 0 (SBR: 0.01).
      with_background: append the background map.

    Returns:
      targets `[B, height, width, K (+1)]` and weights `[B, K (+1)]` (visibility, 1 for the background).
    """
    visibility = visibility.astype(jnp.float32)
    points = image_to_heatmap_coords(landmarks.astype(jnp.float32), stride)
    maps = render_gaussian_heatmaps(points, height, width, sigma)
    maps = jnp.where(maps < threshold, 0.0, maps) * visibility[:, None, None, :]
    if not with_background:
        return maps, visibility
    background = 1.0 - jnp.max(maps, axis=-1, keepdims=True)
    weights = jnp.concatenate([visibility, jnp.ones_like(visibility[:, :1])], axis=-1)
    return jnp.concatenate([maps, background], axis=-1), weights
