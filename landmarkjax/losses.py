"""Losses as pure functions of arrays.

Every function here is a plain `jnp` function: no Flax, no global configuration, safe under `jax.jit`,
`jax.vmap` and `jax.grad` (gradients stay finite, including at zero error). Points are `(x, y)` in pixels;
heatmaps are `[..., H, W, K]`. Optional `weights` (for example landmark visibility) take a weighted mean
over the weighted items; a batch whose weights are all zero gives a loss of 0, not NaN.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "heatmap_mse",
    "multi_stage_heatmap_mse",
    "point_distance_loss",
    "point_l1_loss",
]


def _check_same_shape(predicted: jnp.ndarray, target: jnp.ndarray) -> None:
    if predicted.shape != target.shape:
        raise ValueError(
            f"predicted and target must have the same shape; got {predicted.shape} and {target.shape}."
        )


def _check_weights(weights: jnp.ndarray, expected_shape: tuple[int, ...]) -> None:
    if weights.shape != expected_shape:
        raise ValueError(f"weights must have shape {expected_shape}; got {weights.shape}.")


def _weighted_mean(values: jnp.ndarray, weights: jnp.ndarray | None) -> jnp.ndarray:
    """Mean of `values` weighted by `weights` (same shape); 0 where all weights are 0."""
    if weights is None:
        return jnp.mean(values)
    weights = weights.astype(values.dtype)
    total = jnp.sum(weights)
    safe_total = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.sum(values * weights) / safe_total, 0.0)


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
    _check_same_shape(predicted, target)
    if predicted.ndim < 3:
        raise ValueError(f"heatmaps must be [..., H, W, K]; got shape {predicted.shape}.")
    squared = jnp.square(predicted - target)
    if weights is None:
        return jnp.mean(squared)
    _check_weights(weights, predicted.shape[:-3] + predicted.shape[-1:])
    pixel_weights = jnp.broadcast_to(weights[..., None, None, :], squared.shape)
    return _weighted_mean(squared, pixel_weights)


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


def point_distance_loss(
    predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Mean Euclidean distance between corresponding points.

    The gradient at zero distance is defined as 0 (no NaN from the square root).

    Args:
        predicted: `[..., K, 2]` points (x, y) in pixels.
        target: `[..., K, 2]` points (x, y) in pixels.
        weights: optional `[..., K]` non-negative weight per point (e.g. visibility).

    Returns:
        Scalar: the (weighted) mean over points of `||predicted - target||_2`, in pixels.
    """
    _check_same_shape(predicted, target)
    if predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"points must be [..., K, 2]; got shape {predicted.shape}.")
    squared_distance = jnp.sum(jnp.square(predicted - target), axis=-1)
    positive = squared_distance > 0
    distance = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared_distance, 1.0)), 0.0)
    if weights is not None:
        _check_weights(weights, distance.shape)
    return _weighted_mean(distance, weights)


def point_l1_loss(
    predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Mean absolute coordinate error between corresponding points.

    Args:
        predicted: `[..., K, 2]` points (x, y) in pixels.
        target: `[..., K, 2]` points (x, y) in pixels.
        weights: optional `[..., K]` non-negative weight per point (e.g. visibility).

    Returns:
        Scalar: the (weighted) mean over points of `|dx| + |dy|`, in pixels.
    """
    _check_same_shape(predicted, target)
    if predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"points must be [..., K, 2]; got shape {predicted.shape}.")
    absolute = jnp.sum(jnp.abs(predicted - target), axis=-1)
    if weights is not None:
        _check_weights(weights, absolute.shape)
    return _weighted_mean(absolute, weights)
