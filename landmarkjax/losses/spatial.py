"""Spatial-softmax losses: each landmark's logit map is a distribution over pixels (RCN, Honari et al. 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from landmarkjax.losses._checks import check_weights, weighted_mean

__all__ = ["spatial_softmax_nll"]


def spatial_softmax_nll(
    logits: jnp.ndarray, points: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Negative log-likelihood of the ground-truth pixel under a per-landmark softmax over all pixels.

    The loss of the Recombinator Networks code (2016): p_k = softmax over the H * W cells of
    `logits[..., :, :, k]`, and the loss of landmark k is `-log p_k(round(y_k), round(x_k))`. The target
    cell is the pixel whose centre is nearest to the point (pixel centres at integer coordinates; halves
    round to even, as `jnp.round` does).

    A point whose nearest cell lies outside the map has no target pixel: it counts as not visible (weight
    0), the same as a point given weight 0. With `weights`, the loss is the weighted mean over the
    remaining points; if no point is left the loss is 0.

    Args:
      logits: `[..., H, W, K]` float logits (any real values), on the same pixel grid as `points`.
      points: `[..., K, 2]` ground-truth (x, y) in pixels of that grid.
      weights: optional `[..., K]` non-negative weight per landmark (e.g. visibility).

    Returns:
      Scalar: the (weighted) mean over the batch and landmarks of the NLL, in nats.
    """
    if logits.ndim < 3:
        raise ValueError(f"logits must be [..., H, W, K]; got shape {logits.shape}.")
    *batch, height, width, num_maps = logits.shape
    if points.shape != (*batch, num_maps, 2):
        raise ValueError(
            f"points must be [..., K, 2] = {(*batch, num_maps, 2)} to match logits {logits.shape}; "
            f"got {points.shape}."
        )
    if weights is not None:
        check_weights(weights, (*batch, num_maps))
    cells = jnp.round(points).astype(jnp.int32)
    column, row = cells[..., 0], cells[..., 1]
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    index = jnp.where(inside, row * width + column, 0)  # [..., K]
    flat = logits.reshape(*batch, height * width, num_maps)
    log_probabilities = jax.nn.log_softmax(flat, axis=-2)
    picked = jnp.take_along_axis(log_probabilities, index[..., None, :], axis=-2)[..., 0, :]
    valid = inside.astype(logits.dtype)
    if weights is not None:
        valid = valid * weights.astype(logits.dtype)
    return weighted_mean(-picked, valid)
