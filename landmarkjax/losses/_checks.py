"""Checks and the weighted mean shared by the loss families (private: not part of the public API)."""

from __future__ import annotations

import jax.numpy as jnp


def check_same_shape(predicted: jnp.ndarray, target: jnp.ndarray) -> None:
    """Raises ValueError unless `predicted` and `target` have one shape."""
    if predicted.shape != target.shape:
        raise ValueError(
            f"predicted and target must have the same shape; got {predicted.shape} and {target.shape}."
        )


def check_weights(weights: jnp.ndarray, expected_shape: tuple[int, ...]) -> None:
    """Raises ValueError unless `weights` has `expected_shape` (e.g. `[..., K]`, one weight per item)."""
    if weights.shape != expected_shape:
        raise ValueError(f"weights must have shape {expected_shape}; got {weights.shape}.")


def weighted_mean(values: jnp.ndarray, weights: jnp.ndarray | None) -> jnp.ndarray:
    """Mean of `values` weighted by `weights` (same shape; None: the plain mean); 0 if all weights are 0."""
    if weights is None:
        return jnp.mean(values)
    weights = weights.astype(values.dtype)
    total = jnp.sum(weights)
    safe_total = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.sum(values * weights) / safe_total, 0.0)
