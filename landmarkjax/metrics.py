"""Evaluation metrics for landmarks, 3D joints, video object segmentation and video stability.

Every function is pure `jnp`, batched over leading dimensions `[...]`, and safe under `jax.jit` and
`jax.vmap`; the point metrics also have finite gradients (the error norm is made differentiable at zero).
Shapes and arguments are checked before tracing, so bad input raises a `ValueError` naming the argument.

| metric | what | used by |
| --- | --- | --- |
| `nme` | per-sample normalised mean error of 2D landmarks | 300-W, AFLW, MAFL (sbr, semisup, imm) |
| `cumulative_error_distribution`, `auc`, `failure_rate` | the CED curve over a dataset of NMEs | 300-W |
| `pck` | fraction of keypoints within a (scaled) distance | MPI-INF-3DHP, 2D pose |
| `mpjpe`, `pa_mpjpe` | 3D joint error after root or similarity alignment | Human3.6M (hmr) |
| `region_jaccard`, `boundary_f` | DAVIS J and F | DAVIS-2017 (vos) |
| `davis_statistics` | DAVIS mean, recall and decay of a per-frame J or F sequence | DAVIS-2017 (vos) |
| `jitter` | mean landmark acceleration over a clip | video stability (sbr) |
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.face_layout import (
    FIVE_POINT_LEFT_EYE,
    FIVE_POINT_RIGHT_EYE,
    LEFT_EYE,
    LEFT_OUTER_EYE_CORNER,
    NUM_FACE_LANDMARKS,
    NUM_FIVE_POINT_LANDMARKS,
    RIGHT_EYE,
    RIGHT_OUTER_EYE_CORNER,
)
from landmarkjax.ops.geometry import apply_similarity, similarity_procrustes

__all__ = [
    "NME_NORMALIZERS",
    "nme",
    "cumulative_error_distribution",
    "auc",
    "failure_rate",
    "pck",
    "mpjpe",
    "pa_mpjpe",
    "region_jaccard",
    "boundary_f",
    "davis_statistics",
    "jitter",
]

ArrayLike = Union[jax.Array, np.ndarray, float, int]

NME_NORMALIZERS = ("inter_ocular", "inter_pupil", "bbox")
"""Names `nme` accepts for `normalizer`; an explicit array of per-sample normalisers is accepted too."""

# The six points of each eye (`landmarkjax.face_layout`) are contiguous: read them with a slice, not a
# gather, so the pupils and their gradients are computed exactly as a slice computes them.
_LEFT_EYE = slice(int(LEFT_EYE[0]), int(LEFT_EYE[-1]) + 1)
_RIGHT_EYE = slice(int(RIGHT_EYE[0]), int(RIGHT_EYE[-1]) + 1)


# ----------------------------------------------------------------------------------------------------------
# Shared helpers.


def _as_float_array(name: str, value: ArrayLike) -> jax.Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        if not (jnp.issubdtype(array.dtype, jnp.integer) or array.dtype == jnp.bool_):
            raise ValueError(f"{name} must be a numeric array, got dtype {array.dtype}")
        array = array.astype(jnp.float32)
    return array


def _check_points(
    pred: ArrayLike, gt: ArrayLike, dims: tuple[int, ...], layout: str
) -> tuple[jax.Array, jax.Array]:
    """Converts `pred` and `gt` to float arrays of one shape [..., K, D] with D in `dims`."""
    pred = _as_float_array("pred", pred)
    gt = _as_float_array("gt", gt)
    allowed = " or ".join(str(d) for d in dims)
    if pred.ndim < 2 or pred.shape[-1] not in dims:
        raise ValueError(f"pred must have shape {layout} with D = {allowed}, got {pred.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"gt must have the same shape as pred {pred.shape}, got {gt.shape}")
    return pred, gt


def _check_visibility(visibility: ArrayLike | None, points_shape: tuple[int, ...]) -> jax.Array | None:
    """Returns a boolean [..., K] mask (non-zero = visible), or None."""
    if visibility is None:
        return None
    visibility = jnp.asarray(visibility)
    if visibility.shape != points_shape[:-1]:
        raise ValueError(
            f"visibility must have shape [..., K] = {points_shape[:-1]} (one flag per point), "
            f"got {visibility.shape}"
        )
    return visibility != 0


def _per_sample(name: str, value: ArrayLike, batch_shape: tuple[int, ...]) -> jax.Array:
    """A scalar or a [...] array of one value per sample, as a float array."""
    array = _as_float_array(name, value)
    if array.ndim != 0 and array.shape != batch_shape:
        raise ValueError(
            f"{name} must be a scalar or have the batch shape [...] = {batch_shape}, got {array.shape}"
        )
    return array


def _check_positive(name: str, value: ArrayLike) -> None:
    """Checks a concrete Python number; traced values cannot be checked and are taken as given."""
    if isinstance(value, (int, float, np.number)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _safe_norm(vectors: jax.Array) -> jax.Array:
    """L2 norm over the last axis whose gradient is 0 (not NaN) at the zero vector."""
    squared = jnp.sum(vectors**2, axis=-1)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _mean_over_points(values: jax.Array, visible: jax.Array | None) -> jax.Array:
    """[..., K] -> [...] mean over visible points; NaN for a sample with no visible point."""
    if visible is None:
        return jnp.mean(values, axis=-1)
    count = jnp.sum(visible, axis=-1)
    has_points = count > 0
    total = jnp.sum(jnp.where(visible, values, 0.0), axis=-1)
    return jnp.where(has_points, total / jnp.where(has_points, count, 1), jnp.nan)


def _hide_invisible(points: jax.Array, visible: jax.Array | None) -> jax.Array:
    # Invisible points are often stored as NaN or -1; zeroing them keeps values and gradients finite.
    if visible is None:
        return points
    return jnp.where(visible[..., None], points, 0.0)


# ----------------------------------------------------------------------------------------------------------
# Landmarks: NME and its cumulative error distribution.


def _check_nme_normalizer(normalizer: str | ArrayLike, gt: jax.Array) -> tuple[str | None, jax.Array | None]:
    """Returns (name, None) for a named normaliser, or (None, [...] array / scalar) for explicit values."""
    if not isinstance(normalizer, str):
        return None, _per_sample("normalizer", normalizer, gt.shape[:-2])
    if normalizer not in NME_NORMALIZERS:
        raise ValueError(
            f"normalizer must be one of {NME_NORMALIZERS} or an array of per-sample normalisers, "
            f"got {normalizer!r}"
        )
    num_points = gt.shape[-2]
    if normalizer in ("inter_ocular", "inter_pupil") and num_points not in (NUM_FACE_LANDMARKS, NUM_FIVE_POINT_LANDMARKS):
        raise ValueError(
            f"normalizer={normalizer!r} needs the 68-point 300-W layout (K = 68) or the 5-point CelebA "
            f"layout (K = 5), got K = {num_points}; pass normalizer='bbox' or an explicit per-sample array "
            "instead"
        )
    return normalizer, None


def _named_nme_normalizer(normalizer: str, gt: jax.Array, visible: jax.Array | None) -> jax.Array:
    """Per-sample normaliser [...] in pixels, computed from the ground truth."""
    if normalizer in ("inter_ocular", "inter_pupil") and gt.shape[-2] == NUM_FIVE_POINT_LANDMARKS:
        return _safe_norm(gt[..., FIVE_POINT_LEFT_EYE, :] - gt[..., FIVE_POINT_RIGHT_EYE, :])
    if normalizer == "inter_ocular":
        return _safe_norm(gt[..., LEFT_OUTER_EYE_CORNER, :] - gt[..., RIGHT_OUTER_EYE_CORNER, :])
    if normalizer == "inter_pupil":
        left_pupil = jnp.mean(gt[..., _LEFT_EYE, :], axis=-2)
        right_pupil = jnp.mean(gt[..., _RIGHT_EYE, :], axis=-2)
        return _safe_norm(left_pupil - right_pupil)
    if visible is None:
        low, high = jnp.min(gt, axis=-2), jnp.max(gt, axis=-2)
    else:
        mask = visible[..., None]
        low = jnp.min(jnp.where(mask, gt, jnp.inf), axis=-2)
        high = jnp.max(jnp.where(mask, gt, -jnp.inf), axis=-2)
        # A sample without visible points gets NaN from `_mean_over_points`; keep its box finite.
        low, high = jnp.where(mask.any(axis=-2), low, 0.0), jnp.where(mask.any(axis=-2), high, 1.0)
    extent = high - low
    return jnp.sqrt(extent[..., 0] * extent[..., 1])


def nme(
    pred: ArrayLike,
    gt: ArrayLike,
    normalizer: str | ArrayLike = "inter_ocular",
    visibility: ArrayLike | None = None,
) -> jax.Array:
    """Normalised mean error of 2D landmarks, per sample.

    NME = mean over visible points k of ||pred_k - gt_k||_2, divided by the sample's normaliser. Multiply by
    100 to get the percentages that 300-W papers print.

    Normalisers (all computed from `gt`):
      - 'inter_ocular': distance between the outer eye corners, points 36 and 45 (0-based, iBUG 300-W
        68-point order). This is what SBR's and most 300-W code report.
      - 'inter_pupil': distance between the eye centres, the means of points 36-41 and of 42-47. K = 68.
      - with K = 5 (CelebA / MAFL: left eye, right eye, nose, mouth corners) both 'inter_ocular' and
        'inter_pupil' are the distance between the two eye centres, points 0 and 1, the inter-ocular
        distance that MAFL results are normalised by.
      - 'bbox': sqrt(w * h) of the axis-aligned box around the ground-truth points (only the visible ones
        when `visibility` is given), as used for AFLW.
      - an array: one normaliser per sample, shape [...] (or a scalar for all samples), e.g. sqrt(w * h)
        of the annotated face box, in the unit of the points.
    The eye normalisers use the eye points of `gt` whether or not they are marked visible. A zero
    normaliser gives inf or NaN; it is not guarded against.

    Args:
      pred: [..., K, 2] predicted (x, y) landmarks in pixels.
      gt: [..., K, 2] ground-truth (x, y) landmarks in pixels.
      normalizer: one of `NME_NORMALIZERS` or a [...] array / scalar (pixels).
      visibility: optional [..., K] flags, non-zero = the point counts. Invisible points may hold any value
        (NaN included). A sample with no visible point gets NaN (use `jnp.nanmean` to average).

    Returns:
      [...] unitless NME per sample.
    """
    pred, gt = _check_points(pred, gt, (2,), "[..., K, 2]")
    visible = _check_visibility(visibility, pred.shape)
    name, scale = _check_nme_normalizer(normalizer, gt)
    return _nme(pred, gt, visible, scale, name)


@functools.partial(jax.jit, static_argnames="name")
def _nme(
    pred: jax.Array, gt: jax.Array, visible: jax.Array | None, scale: jax.Array | None, name: str | None
) -> jax.Array:
    if name is not None:
        scale = _named_nme_normalizer(name, gt, visible)
    errors = _safe_norm(_hide_invisible(pred, visible) - _hide_invisible(gt, visible))
    return _mean_over_points(errors, visible) / scale


def _check_errors(errors: ArrayLike, threshold: ArrayLike) -> jax.Array:
    errors = _as_float_array("errors", errors)
    if errors.ndim != 1 or errors.shape[0] == 0:
        raise ValueError(f"errors must be a non-empty vector [N] of per-sample errors, got {errors.shape}")
    _check_positive("threshold", threshold)
    return errors


def cumulative_error_distribution(
    errors: ArrayLike, threshold: ArrayLike = 0.08, num_steps: int = 800
) -> tuple[jax.Array, jax.Array]:
    """The cumulative error distribution (CED) curve of a dataset, sampled on a regular grid.

    CED(x) = fraction of samples whose error is <= x. NaN errors are never <= x, so they count as failures.

    Args:
      errors: [N] per-sample errors, e.g. `nme` over a test set (unitless).
      threshold: the largest error on the curve (same unit as `errors`).
      num_steps: number of grid intervals; the grid has `num_steps + 1` points 0, t/num_steps, ..., t.
        The default 800 gives the step 1e-4 of the usual 300-W code at t = 0.08.

    Returns:
      grid: [num_steps + 1] error thresholds from 0 to `threshold`.
      fraction: [num_steps + 1] CED(grid), in [0, 1].
    """
    errors = _check_errors(errors, threshold)
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    return _cumulative_error_distribution(errors, threshold, num_steps)


@functools.partial(jax.jit, static_argnames="num_steps")
def _cumulative_error_distribution(
    errors: jax.Array, threshold: ArrayLike, num_steps: int
) -> tuple[jax.Array, jax.Array]:
    grid = jnp.linspace(0.0, threshold, num_steps + 1, dtype=errors.dtype)
    # NaN sorts last and searchsorted never counts it as <= a finite x.
    counts = jnp.searchsorted(jnp.sort(errors), grid, side="right")
    return grid, counts / errors.shape[0]


def auc(errors: ArrayLike, threshold: ArrayLike = 0.08, num_steps: int = 800) -> jax.Array:
    """Area under the cumulative error distribution up to `threshold`, normalised to [0, 1].

    As 300-W papers report it: AUC = (1 / t) * integral_0^t CED(x) dx, with CED sampled at `num_steps + 1`
    evenly spaced points (see `cumulative_error_distribution`) and integrated with the trapezoid rule.
    Some released 300-W code integrates the same samples with Simpson's rule instead; on a grid of step
    1e-4 the two differ by well under 1e-3. All errors 0 gives 1; all errors above t gives 0; errors
    uniform on [0, t] give 0.5.

    Args:
      errors: [N] per-sample errors (e.g. `nme`, unitless). NaN counts as a failure.
      threshold: upper integration limit t (0.08 for 300-W at the inter-ocular normaliser).
      num_steps: number of trapezoid intervals.

    Returns:
      scalar AUC in [0, 1].
    """
    return _auc(*cumulative_error_distribution(errors, threshold, num_steps))


@jax.jit
def _auc(grid: jax.Array, fraction: jax.Array) -> jax.Array:
    step = grid[1] - grid[0]
    area = step * (jnp.sum(fraction) - 0.5 * (fraction[0] + fraction[-1]))
    return area / grid[-1]


def failure_rate(errors: ArrayLike, threshold: ArrayLike = 0.08) -> jax.Array:
    """Fraction of samples whose error exceeds `threshold` (1 - CED(threshold)).

    Args:
      errors: [N] per-sample errors (e.g. `nme`, unitless). NaN counts as a failure.
      threshold: failure threshold, same unit as `errors` (0.08 for 300-W at the inter-ocular normaliser;
        0.10 in some papers).

    Returns:
      scalar failure rate in [0, 1].
    """
    errors = _check_errors(errors, threshold)
    return _failure_rate(errors, threshold)


@jax.jit
def _failure_rate(errors: jax.Array, threshold: ArrayLike) -> jax.Array:
    return 1.0 - jnp.mean(errors <= threshold)


# ----------------------------------------------------------------------------------------------------------
# Keypoints and 3D joints.


def pck(
    pred: ArrayLike,
    gt: ArrayLike,
    threshold: ArrayLike,
    normalizer: ArrayLike | None = None,
    visibility: ArrayLike | None = None,
) -> jax.Array:
    """Percentage of correct keypoints, per sample: the fraction of visible points within a distance.

    A point is correct when ||pred_k - gt_k||_2 <= threshold * normalizer (or <= threshold when no
    normaliser is given). E.g. MPI-INF-3DHP: 3D joints in mm, threshold 150, no normaliser; PCKh@0.5:
    threshold 0.5, normaliser = head segment length. Averaging the per-sample values equals the PCK pooled
    over all keypoints when every sample has the same number of visible points.

    Args:
      pred: [..., K, D] predicted points, D = 2 (x, y) or 3 (x, y, z), any unit.
      gt: [..., K, D] ground-truth points, same unit.
      threshold: scalar distance threshold (unit of the points, or a fraction of `normalizer`).
      normalizer: optional scale per sample, [...] or a scalar, in the unit of the points.
      visibility: optional [..., K] flags, non-zero = the point counts; a sample with no visible point
        gets NaN.

    Returns:
      [...] fraction of correct keypoints per sample, in [0, 1]. Its gradient is zero almost everywhere.
    """
    pred, gt = _check_points(pred, gt, (2, 3), "[..., K, D]")
    _check_positive("threshold", threshold)
    threshold = _as_float_array("threshold", threshold)
    if threshold.ndim != 0:
        raise ValueError(f"threshold must be a scalar, got shape {threshold.shape}")
    visible = _check_visibility(visibility, pred.shape)
    scale = None if normalizer is None else _per_sample("normalizer", normalizer, pred.shape[:-2])
    return _pck(pred, gt, threshold, scale, visible)


@jax.jit
def _pck(
    pred: jax.Array, gt: jax.Array, threshold: jax.Array, scale: jax.Array | None, visible: jax.Array | None
) -> jax.Array:
    radius = threshold if scale is None else threshold * scale[..., None]
    distances = _safe_norm(_hide_invisible(pred, visible) - _hide_invisible(gt, visible))
    correct = (distances <= radius).astype(pred.dtype)
    return _mean_over_points(correct, visible)


def _root_indices(root_joint: int | Sequence[int], num_joints: int) -> tuple[int, ...]:
    indices = (root_joint,) if isinstance(root_joint, (int, np.integer)) else tuple(root_joint)
    if not indices or not all(
        isinstance(i, (int, np.integer)) and 0 <= i < num_joints for i in indices
    ):
        raise ValueError(
            f"root_joint must be a joint index in [0, {num_joints}) or a non-empty sequence of them, "
            f"got {root_joint!r}"
        )
    return tuple(int(i) for i in indices)


def mpjpe(
    pred: ArrayLike, gt: ArrayLike, root_joint: int | Sequence[int] = 0
) -> jax.Array:
    """Mean per-joint position error (MPJPE) after aligning the roots, per sample.

    Each skeleton is translated so that its root is at the origin, then the Euclidean errors are averaged
    over joints. The root is one joint, or the mean of several (e.g. the two hips for LSP-style skeletons
    that have no pelvis joint).

    Args:
      pred: [..., J, 3] predicted 3D joints (x, y, z), any unit (Human3.6M: mm).
      gt: [..., J, 3] ground-truth 3D joints, same unit.
      root_joint: index of the root joint, or a sequence of indices whose mean is the root.

    Returns:
      [...] MPJPE per sample, in the unit of the input.
    """
    pred, gt = _check_points(pred, gt, (3,), "[..., J, 3]")
    return _mpjpe(pred, gt, _root_indices(root_joint, pred.shape[-2]))


@functools.partial(jax.jit, static_argnames="roots")
def _mpjpe(pred: jax.Array, gt: jax.Array, roots: tuple[int, ...]) -> jax.Array:
    pred = pred - jnp.mean(pred[..., list(roots), :], axis=-2, keepdims=True)
    gt = gt - jnp.mean(gt[..., list(roots), :], axis=-2, keepdims=True)
    return jnp.mean(_safe_norm(pred - gt), axis=-1)


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike) -> jax.Array:
    """MPJPE after similarity Procrustes alignment (PA-MPJPE, HMR's "reconstruction error"), per sample.

    `pred` is mapped onto `gt` by the least-squares similarity transform (scale, proper rotation with
    det = +1, translation; Umeyama 1991, see `landmarkjax.ops.geometry.similarity_procrustes`), then the
    Euclidean errors are averaged over joints. No root alignment is needed: the translation absorbs it.
    Gradients are finite for generic skeletons; for a collapsed `pred` (all joints at one point) the
    alignment is not differentiable and the gradient is NaN.

    Args:
      pred: [..., J, 3] predicted 3D joints (x, y, z), any unit (Human3.6M: mm).
      gt: [..., J, 3] ground-truth 3D joints, same unit.

    Returns:
      [...] PA-MPJPE per sample, in the unit of `gt`.
    """
    pred, gt = _check_points(pred, gt, (3,), "[..., J, 3]")
    return _pa_mpjpe(pred, gt)


@jax.jit
def _pa_mpjpe(pred: jax.Array, gt: jax.Array) -> jax.Array:
    aligned = apply_similarity(pred, *similarity_procrustes(pred, gt))
    return jnp.mean(_safe_norm(aligned - gt), axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Video object segmentation: DAVIS J and F.


def _check_masks(pred_mask: ArrayLike, gt_mask: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Boolean [..., H, W] masks, non-zero = foreground (DAVIS's `astype(bool)`)."""
    pred_mask = jnp.asarray(pred_mask)
    gt_mask = jnp.asarray(gt_mask)
    for name, mask in (("pred_mask", pred_mask), ("gt_mask", gt_mask)):
        if jnp.issubdtype(mask.dtype, jnp.floating):
            raise ValueError(
                f"{name} must be a boolean or integer mask [..., H, W], got dtype {mask.dtype}; "
                "binarise soft masks first (e.g. probabilities > 0.5)"
            )
    if pred_mask.ndim < 2:
        raise ValueError(f"pred_mask must have shape [..., H, W], got {pred_mask.shape}")
    if gt_mask.shape != pred_mask.shape:
        raise ValueError(
            f"gt_mask must have the same shape as pred_mask {pred_mask.shape}, got {gt_mask.shape}"
        )
    return pred_mask != 0, gt_mask != 0


def region_jaccard(pred_mask: ArrayLike, gt_mask: ArrayLike) -> jax.Array:
    """DAVIS region similarity J: intersection over union of two masks, per mask pair.

    J = |pred & gt| / |pred | gt|, and J = 1 when both masks are empty (the DAVIS convention).

    Args:
      pred_mask: [..., H, W] boolean or integer mask, non-zero = foreground.
      gt_mask: [..., H, W] boolean or integer mask, non-zero = foreground.

    Returns:
      [...] float32 J in [0, 1].
    """
    return _region_jaccard(*_check_masks(pred_mask, gt_mask))


@jax.jit
def _region_jaccard(pred_mask: jax.Array, gt_mask: jax.Array) -> jax.Array:
    intersection = jnp.sum(pred_mask & gt_mask, axis=(-2, -1))
    union = jnp.sum(pred_mask | gt_mask, axis=(-2, -1))
    return jnp.where(union > 0, intersection / jnp.maximum(union, 1), 1.0).astype(jnp.float32)


def _mask_boundary(mask: jax.Array) -> jax.Array:
    """DAVIS `_seg2bmap`: [..., H, W] bool -> 1-pixel-wide boundary, offset half a pixel toward the origin.

    A pixel is on the boundary when it differs from its east, south or south-east neighbour (neighbours
    outside the image count as background), except that the last row compares only east, the last column
    only south, and the bottom-right pixel is never a boundary.
    """
    east = jnp.zeros_like(mask).at[..., :, :-1].set(mask[..., :, 1:])
    south = jnp.zeros_like(mask).at[..., :-1, :].set(mask[..., 1:, :])
    south_east = jnp.zeros_like(mask).at[..., :-1, :-1].set(mask[..., 1:, 1:])
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary = boundary.at[..., -1, :].set(mask[..., -1, :] ^ east[..., -1, :])
    boundary = boundary.at[..., :, -1].set(mask[..., :, -1] ^ south[..., :, -1])
    return boundary.at[..., -1, -1].set(False)


def _dilate(mask: jax.Array, radius: int) -> jax.Array:
    """Binary dilation of [..., H, W] bool by the disk dx^2 + dy^2 <= r^2; outside the image is background.

    The disk is a union of horizontal segments, one per row offset dy, of half-width floor(sqrt(r^2 - dy^2)).
    Each row is dilated by each segment (a 1D max filter), shifted by dy, and the results are OR-ed: several
    times faster on CPU than a 2D convolution with the (2r + 1)^2 footprint.
    """
    height = mask.shape[-2]
    batch_pad = [(0, 0)] * (mask.ndim - 2)
    values = mask.astype(jnp.uint8)  # the max filter is fastest on bytes
    padded_rows = {}
    dilated = jnp.zeros(mask.shape, bool)
    for dy in range(-radius, radius + 1):
        half_width = math.isqrt(radius**2 - dy**2)
        if half_width not in padded_rows:
            window = (1,) * (mask.ndim - 1) + (2 * half_width + 1,)
            rows = jax.lax.reduce_window(
                values, jnp.uint8(0), jax.lax.max, window, (1,) * mask.ndim,
                batch_pad + [(0, 0), (half_width, half_width)],
            )
            padded_rows[half_width] = jnp.pad(rows > 0, batch_pad + [(radius, radius), (0, 0)])
        dilated = dilated | padded_rows[half_width][..., radius + dy : radius + dy + height, :]
    return dilated


def _boundary_radius(bound_th: float, height: int, width: int) -> int:
    if isinstance(bound_th, bool) or not isinstance(bound_th, numbers.Real) or not bound_th > 0:
        raise ValueError(f"bound_th must be a positive number, got {bound_th!r}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be an integer, got {bound_th}")
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(height, width))


def boundary_f(pred_mask: ArrayLike, gt_mask: ArrayLike, bound_th: float = 0.008) -> jax.Array:
    """DAVIS contour accuracy F: boundary F-measure of two masks, per mask pair.

    Follows the DAVIS-2017 evaluation code (`f_measure`): both boundaries come from `_seg2bmap` (one pixel
    wide, half a pixel toward the origin); the tolerance radius is r = ceil(bound_th * sqrt(H^2 + W^2))
    pixels when bound_th < 1, else r = bound_th pixels; each boundary is dilated by the disk
    {dx^2 + dy^2 <= r^2}. Precision = fraction of predicted boundary pixels within the dilated
    ground-truth boundary, recall = fraction of ground-truth boundary pixels within the dilated predicted
    boundary, F = 2PR / (P + R) (0 when P + R = 0). Special cases as in DAVIS: both boundaries empty gives
    F = 1; exactly one empty gives F = 0. Pure `jnp` (shifts and 1D max filters), so it runs on device and
    under jit/vmap, and agrees exactly with the DAVIS numpy/OpenCV code.

    Args:
      pred_mask: [..., H, W] boolean or integer mask, non-zero = foreground.
      gt_mask: [..., H, W] boolean or integer mask, non-zero = foreground.
      bound_th: tolerance as a fraction of the image diagonal (< 1), or an integer radius in pixels (>= 1).

    Returns:
      [...] float32 F in [0, 1].
    """
    pred_mask, gt_mask = _check_masks(pred_mask, gt_mask)
    return _boundary_f(pred_mask, gt_mask, _boundary_radius(bound_th, *pred_mask.shape[-2:]))


@functools.partial(jax.jit, static_argnames="radius")
def _boundary_f(pred_mask: jax.Array, gt_mask: jax.Array, radius: int) -> jax.Array:
    pred_boundary = _mask_boundary(pred_mask)
    gt_boundary = _mask_boundary(gt_mask)
    num_pred = jnp.sum(pred_boundary, axis=(-2, -1))
    num_gt = jnp.sum(gt_boundary, axis=(-2, -1))
    pred_matched = jnp.sum(pred_boundary & _dilate(gt_boundary, radius), axis=(-2, -1))
    gt_matched = jnp.sum(gt_boundary & _dilate(pred_boundary, radius), axis=(-2, -1))

    precision = pred_matched / jnp.maximum(num_pred, 1)
    recall = gt_matched / jnp.maximum(num_gt, 1)
    total = precision + recall
    f_measure = jnp.where(total > 0, 2 * precision * recall / jnp.where(total > 0, total, 1.0), 0.0)
    # DAVIS: exactly one empty boundary scores 0 (its P or R is 0 above); both empty score 1.
    f_measure = jnp.where((num_pred == 0) & (num_gt == 0), 1.0, f_measure)
    return f_measure.astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------------
# Video stability.


def davis_statistics(per_frame: ArrayLike) -> tuple[float, float, float]:
    """DAVIS's mean, recall and decay of one object's per-frame J (or F) values (`db_statistics`).

    As the DAVIS-2017 evaluation code: mean = nanmean(x); recall = nanmean(x > 0.5); decay = nanmean of the
    first quarter minus nanmean of the last quarter, the quarters being the 4 bins
    x[ids[i] : ids[i + 1] + 1] with ids = round(linspace(1, n, 5) + 1e-10) - 1 (neighbouring bins share
    their end frame). The semi-supervised protocol passes the frames without the first (given) and the
    last one. Host-side numpy (the bins depend on n), not for use under `jax.jit`.

    Args:
      per_frame: [n] J or F of one object in n >= 1 frames, in frame order (NaN frames are ignored).

    Returns:
      (mean, recall, decay) as Python floats.

    Raises:
      ValueError: if `per_frame` is not a non-empty 1-D sequence.
    """
    values = np.asarray(per_frame, np.float64)
    if values.ndim != 1 or values.size < 1:
        raise ValueError(f"per_frame must have shape [n] with n >= 1, got {values.shape}")
    ids = (np.round(np.linspace(1, values.size, 5) + 1e-10) - 1).astype(np.int64)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():  # all-NaN bins give NaN, as in DAVIS, without a warning
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(np.where(np.isnan(values), np.nan, values > 0.5)))
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def jitter(landmarks: ArrayLike, normalizer: ArrayLike | None = None) -> jax.Array:
    """Mean landmark acceleration over a clip: how much tracked points shake from frame to frame.

    jitter = mean over t = 1..T-2 and over points k of ||p_{t+1,k} - 2 p_{t,k} + p_{t-1,k}||_2, the
    second finite difference in time; lower is steadier. Motion at constant velocity scores 0. Independent
    Gaussian noise of std sigma per coordinate added to each frame gives each acceleration coordinate std
    sqrt(6) sigma, so for D = 2 the expected jitter is sqrt(6) * sqrt(pi / 2) * sigma = sqrt(3 pi) sigma
    (about 3.07 sigma).

    Args:
      landmarks: [..., T, K, D] point tracks over T >= 3 consecutive frames, D = 2 (x, y) in pixels or 3.
      normalizer: optional per-clip scale [...] or a scalar (e.g. the inter-ocular distance in pixels); the
        result is divided by it.

    Returns:
      [...] jitter per clip, in pixels / frame^2 (unit of the points per frame^2), or unitless when a
      normaliser is given.
    """
    landmarks = _as_float_array("landmarks", landmarks)
    if landmarks.ndim < 3 or landmarks.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks must have shape [..., T, K, D] with D = 2 or 3, got {landmarks.shape}")
    if landmarks.shape[-3] < 3:
        raise ValueError(
            f"landmarks needs at least T = 3 frames to measure acceleration, got T = {landmarks.shape[-3]}"
        )
    scale = None if normalizer is None else _per_sample("normalizer", normalizer, landmarks.shape[:-3])
    return _jitter(landmarks, scale)


@jax.jit
def _jitter(landmarks: jax.Array, scale: jax.Array | None) -> jax.Array:
    acceleration = landmarks[..., 2:, :, :] - 2 * landmarks[..., 1:-1, :, :] + landmarks[..., :-2, :, :]
    result = jnp.mean(_safe_norm(acceleration), axis=(-2, -1))
    return result if scale is None else result / scale
