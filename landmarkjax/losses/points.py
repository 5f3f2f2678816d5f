"""Point losses: distances between corresponding points `[..., K, 2]` (x, y) in pixels."""

from __future__ import annotations

import jax.numpy as jnp

from landmarkjax.losses._checks import check_same_shape, check_weights, weighted_mean

__all__ = ["point_distance_loss", "point_l1_loss"]


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
    check_same_shape(predicted, target)
    if predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"points must be [..., K, 2]; got shape {predicted.shape}.")
    squared_distance = jnp.sum(jnp.square(predicted - target), axis=-1)
    positive = squared_distance > 0
    distance = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared_distance, 1.0)), 0.0)
    if weights is not None:
        check_weights(weights, distance.shape)
    return weighted_mean(distance, weights)


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
    check_same_shape(predicted, target)
    if predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"points must be [..., K, 2]; got shape {predicted.shape}.")
    absolute = jnp.sum(jnp.abs(predicted - target), axis=-1)
    if weights is not None:
        check_weights(weights, absolute.shape)
    return weighted_mean(absolute, weights)
