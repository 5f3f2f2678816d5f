"""Supervision-by-Registration (Dong et al., CVPR 2018): the registration loss and its parts.

Points are `[..., K, 2]` as (x, y) in pixels; the three frames of a clip are t-1, t, t+1.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from landmarkjax.losses._checks import weighted_mean
from landmarkjax.ops.lucas_kanade import forward_backward_check

__all__ = ["oracle_registration_loss", "registration_point_mask", "registration_distance", "registration_loss"]


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
    return weighted_mean(jnp.sum(distance, axis=-2), mask)


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
    return _checked_distance(detections[frame(1)], tracked, track_valid, confidences, max_displacement, min_confidence)


def oracle_registration_loss(
    detections: jnp.ndarray,
    confidences: jnp.ndarray,
    true_landmarks: jnp.ndarray,
    visibility: jnp.ndarray,
    *,
    max_displacement: float = 2.0,
    min_confidence: float = 0.3,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """The registration loss with a perfect tracker: the ceiling of `registration_loss` on labelled clips.

    The neighbour detections are moved into frame t by the true motion instead of Lucas-Kanade:
    a = d(t-1) + g(t) - g(t-1) and b = d(t+1) + g(t) - g(t+1), with g the true landmarks, as fixed targets
    (no gradient through them). Everything else is `registration_loss`'s: `registration_point_mask`'s checks
    (a landmark invisible in any of the three frames counts as a failed track) and `registration_distance`.
    Only an experiment can use it (it needs the truth on the unlabelled clips): it isolates what tracker
    error costs.

    Args:
      detections: `[..., 3, K, 2]` (x, y) detections in frames t-1, t, t+1, pixels.
      confidences: `[..., 3, K]` the detector's heatmap peaks.
      true_landmarks: `[..., 3, K, 2]` (x, y) true landmarks of the same frames, the same pixels.
      visibility: `[..., 3, K]` bool, the true landmarks' visibility.
      max_displacement, min_confidence: as in `registration_loss`.

    Returns:
      (loss, info) as `registration_loss`'s.
    """
    if detections.ndim < 3 or detections.shape[-3:-2] != (3,) or detections.shape[-1] != 2:
        raise ValueError(f"detections must have shape [..., 3, K, 2]; got {detections.shape}.")
    if true_landmarks.shape != detections.shape:
        raise ValueError(
            f"true_landmarks must have the shape of detections {detections.shape}; got {true_landmarks.shape}."
        )
    if visibility.shape != detections.shape[:-1]:
        raise ValueError(f"visibility must have shape {detections.shape[:-1]}; got {visibility.shape}.")
    truth = jax.lax.stop_gradient(true_landmarks)
    neighbours = jnp.stack([detections[..., 0, :, :], detections[..., 2, :, :]], axis=-3)
    motion = truth[..., 1:2, :, :] - jnp.stack([truth[..., 0, :, :], truth[..., 2, :, :]], axis=-3)
    tracked = jax.lax.stop_gradient(neighbours + motion)
    visible = visibility.astype(bool)
    track_valid = jnp.stack([visible[..., 0, :] & visible[..., 1, :], visible[..., 2, :] & visible[..., 1, :]], -2)
    centre = detections[..., 1, :, :]
    return _checked_distance(centre, tracked, track_valid, confidences, max_displacement, min_confidence)


def _checked_distance(
    centre: jnp.ndarray,
    tracked: jnp.ndarray,
    track_valid: jnp.ndarray,
    confidences: jnp.ndarray,
    max_displacement: float,
    min_confidence: float,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """`registration_distance` over the landmarks `registration_point_mask` keeps, and the info dict."""
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
