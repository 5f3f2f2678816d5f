"""Losses as pure functions of arrays.

Every function here is a plain `jnp` function: no Flax, no global configuration, safe under `jax.jit`,
`jax.vmap` and `jax.grad` (gradients stay finite, including at zero error). Points are `(x, y)` in pixels;
heatmaps are `[..., H, W, K]`. Optional `weights` (for example landmark visibility) take a weighted mean
over the weighted items; a batch whose weights are all zero gives a loss of 0, not NaN.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from landmarkjax.ops.lucas_kanade import forward_backward_check

__all__ = [
    "heatmap_mse",
    "multi_stage_heatmap_mse",
    "point_distance_loss",
    "point_l1_loss",
    "registration_distance",
    "registration_loss",
    "registration_point_mask",
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


# Supervision-by-Registration (Dong et al., CVPR 2018).


def registration_point_mask(
    detections: jnp.ndarray,
    tracked: jnp.ndarray,
    track_valid: jnp.ndarray,
    confidences: jnp.ndarray,
    *,
    max_displacement: float = 2.0,
    min_confidence: float = 0.3,
) -> jnp.ndarray:
    """Which middle-frame landmarks the registration loss uses (SBR's checks, as in its official code).

    A landmark k of a three-frame clip (t-1, t, t+1) is kept when all of:
      * both its tracks into frame t passed the forward-backward check (`track_valid`);
      * both tracked positions lie within `max_displacement` of the detection in frame t (SBR's
        `forward_max`: a track that ends far from the detection is taken to be a tracking failure);
      * the detector's heatmap peak is at least `min_confidence` in all three frames.

    Args:
      detections: `[..., K, 2]` (x, y) detections in the middle frame t, pixels.
      tracked: `[..., 2, K, 2]` (x, y) detections of frames t-1 (index 0) and t+1 (index 1) tracked into
        frame t, pixels.
      track_valid: `[..., 2, K]` bool, the forward-backward check of those tracks.
      confidences: `[..., 3, K]` heatmap peak values of frames t-1, t, t+1.
      max_displacement: largest accepted distance between a tracked point and the detection, in the
        pixels of `detections`. SBR uses 2 (its official `forward_max`).
      min_confidence: smallest accepted heatmap peak (SBR: 0.3).

    Returns:
      `[..., K]` bool.
    """
    _check_registration_shapes(detections, tracked)
    if track_valid.shape != tracked.shape[:-1]:
        raise ValueError(f"track_valid must have shape {tracked.shape[:-1]}; got {track_valid.shape}.")
    expected = detections.shape[:-2] + (3,) + detections.shape[-2:-1]
    if confidences.shape != expected:
        raise ValueError(f"confidences must have shape {expected} ([..., 3, K]); got {confidences.shape}.")
    offsets = jax.lax.stop_gradient(tracked - detections[..., None, :, :])
    near = jnp.sum(jnp.square(offsets), axis=-1) <= max_displacement**2
    confident = jnp.all(jax.lax.stop_gradient(confidences) >= min_confidence, axis=-2)
    return jnp.all(track_valid.astype(bool) & near, axis=-2) & confident


def registration_distance(detections: jnp.ndarray, tracked: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """SBR's registration loss given the tracks: per kept landmark, the summed distance to both tracks.

    loss = sum_k mask_k (||d_k - a_k|| + ||d_k - b_k||) / sum_k mask_k over every clip of the batch, with
    d the detection in frame t and a, b the detections of frames t-1 and t+1 tracked into frame t; 0 when
    no landmark is kept. Gradients at zero distance are 0 (no NaN).

    Args:
      detections: `[..., K, 2]` (x, y) detections in the middle frame, pixels.
      tracked: `[..., 2, K, 2]` (x, y) neighbour detections tracked into the middle frame, pixels.
      mask: `[..., K]` bool or 0/1, the landmarks to use (see `registration_point_mask`).

    Returns:
      Scalar, pixels.
    """
    _check_registration_shapes(detections, tracked)
    if mask.shape != detections.shape[:-1]:
        raise ValueError(f"mask must have shape {detections.shape[:-1]}; got {mask.shape}.")
    squared = jnp.sum(jnp.square(tracked - detections[..., None, :, :]), axis=-1)  # [..., 2, K]
    positive = squared > 0
    distance = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
    return _weighted_mean(jnp.sum(distance, axis=-2), mask)


def registration_loss(
    frames: jnp.ndarray,
    detections: jnp.ndarray,
    confidences: jnp.ndarray,
    *,
    through_lk: bool = True,
    fb_threshold: float = 1.0,
    max_displacement: float = 2.0,
    min_confidence: float = 0.3,
    **lk_kwargs: Any,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Supervision-by-Registration loss on three consecutive frames.

    The detections of frames t-1 and t+1 are tracked into frame t with pyramidal Lucas-Kanade
    (`landmarkjax.ops.lucas_kanade.forward_backward_check`: tracks whose round trip misses by more than
    `fb_threshold` pixels are dropped); the loss is `registration_distance` between the detections of
    frame t and those tracks, over the landmarks kept by `registration_point_mask`.

    Args:
      frames: `[..., 3, H, W, C]` (or `[..., 3, H, W]`) float frames t-1, t, t+1 in [0, 1].
      detections: `[..., 3, K, 2]` (x, y) detections in each frame, pixels.
      confidences: `[..., 3, K]` the detector's heatmap peak per landmark and frame.
      through_lk: True: the gradient also flows through the tracker into the neighbour frames'
        detections (SBR); False: the tracked points are fixed targets (stop_gradient), as in
        self-training.
      fb_threshold: forward-backward round-trip tolerance, pixels (SBR: 1).
      max_displacement: see `registration_point_mask` (SBR: 2), pixels.
      min_confidence: see `registration_point_mask` (SBR: 0.3).
      **lk_kwargs: keyword arguments of `lk_track` (window_radius, num_levels, num_iterations, ...); they
        must be static under `jax.jit`.

    Returns:
      (loss, info): the scalar loss in pixels, and info with "tracked" `[..., 2, K, 2]`, "mask" `[..., K]`
      and "num_points" (the number of landmarks kept, a float scalar).
    """
    if detections.ndim < 3 or detections.shape[-3:-2] != (3,) or detections.shape[-1] != 2:
        raise ValueError(f"detections must have shape [..., 3, K, 2]; got {detections.shape}.")
    batch_ndim = detections.ndim - 3
    if frames.ndim - batch_ndim not in (3, 4) or frames.shape[: batch_ndim + 1] != detections.shape[:-2]:
        raise ValueError(
            f"frames must have shape [..., 3, H, W(, C)] with the leading dimensions "
            f"{detections.shape[:-2]} of detections; got {frames.shape}."
        )
    def frame(index):
        return (slice(None),) * batch_ndim + (index,)

    neighbours = jnp.stack([frames[frame(0)], frames[frame(2)]], axis=batch_ndim)  # frames t-1 and t+1
    middle = jnp.stack([frames[frame(1)]] * 2, axis=batch_ndim)
    sources = jnp.stack([detections[frame(0)], detections[frame(2)]], axis=batch_ndim)
    if not through_lk:
        sources = jax.lax.stop_gradient(sources)
    tracked, track_valid = forward_backward_check(neighbours, middle, sources, fb_threshold, **lk_kwargs)
    if not through_lk:
        tracked = jax.lax.stop_gradient(tracked)
    centre = detections[frame(1)]
    mask = registration_point_mask(
        centre,
        tracked,
        track_valid,
        confidences,
        max_displacement=max_displacement,
        min_confidence=min_confidence,
    )
    loss = registration_distance(centre, tracked, mask)
    return loss, {"tracked": tracked, "mask": mask, "num_points": jnp.sum(mask.astype(jnp.float32))}


def _check_registration_shapes(detections: jnp.ndarray, tracked: jnp.ndarray) -> None:
    if detections.ndim < 2 or detections.shape[-1] != 2:
        raise ValueError(f"detections must have shape [..., K, 2]; got {detections.shape}.")
    expected = detections.shape[:-2] + (2,) + detections.shape[-2:]
    if tracked.shape != expected:
        raise ValueError(f"tracked must have shape {expected} ([..., 2, K, 2]); got {tracked.shape}.")
