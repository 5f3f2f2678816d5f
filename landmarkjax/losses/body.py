"""Body-model losses of HMR (Kanazawa et al., CVPR 2018): 2D keypoint reprojection, pelvis-aligned 3D joints,
SMPL parameters.

The reductions follow HMR's official code (`tf.losses.*` with the default SUM_BY_NONZERO_WEIGHTS: the
weighted sum divided by the number of non-zero weights after broadcasting over coordinates), so a loss is a
mean over the items that count, and 0 (never NaN) when none counts. The targets of items that do not count
are never read into the value or the gradient, so they may hold anything (NaN included).
`HMR_LOSS_WEIGHTS` holds the weights of the terms in the encoder's objective.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from landmarkjax.losses._checks import check_same_shape, check_weights

__all__ = [
    "HMR_LOSS_WEIGHTS",
    "COCOPLUS_HIP_INDICES",
    "SMPL_ROOT_INDICES",
    "keypoint_2d_l1_loss",
    "align_by_pelvis",
    "joints_3d_loss",
    "smpl_parameter_loss",
]

# Weights of the encoder's loss terms: 2D keypoints 60 and adversarial 1; both 3D terms 60 as well. The
# paper's objective is lambda (L_reproj + 1[3D] L_3D) + L_adv with lambda = 60, and the official training
# command (akanazawa/hmr `do_train.sh`) passes `--e_loss_weight 60 --e_3d_weight 60`; only the flag's
# default in its `config.py` is 1. With 1, the 3D terms (metres^2, about 0.03) are ~300x weaker than the
# 2D term and a short run learns almost nothing in 3D.
HMR_LOSS_WEIGHTS = {"keypoints_2d": 60.0, "joints_3d": 60.0, "smpl_parameters": 60.0, "adversarial": 1.0}

# The pelvis of HMR's 14 LSP / 19 cocoplus joints is the mean of the right hip (2) and the left hip (3)
# (`align_by_pelvis` in the official code); for SMPL's own 24 joints it is the root joint (0).
COCOPLUS_HIP_INDICES = (2, 3)
SMPL_ROOT_INDICES = (0,)


def _masked_mean(values: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
    """sum(values * weights) / count(weights != 0), with `weights` broadcast to `values`; 0 if none count."""
    weights = jnp.broadcast_to(weights.astype(values.dtype), values.shape)
    count = jnp.sum(weights != 0)
    safe_count = jnp.where(count > 0, count, 1).astype(values.dtype)
    return jnp.where(count > 0, jnp.sum(values * weights) / safe_count, 0.0)


def _ignore_unweighted_targets(
    predicted: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray
) -> jnp.ndarray:
    """`target` where `weights` (broadcast from the left) is non-zero, else the predicted values without
    their gradient: unlabelled entries (often NaN in datasets) then add 0 to the loss and its gradient."""
    keep = jnp.reshape(weights != 0, weights.shape + (1,) * (target.ndim - weights.ndim))
    return jnp.where(keep, target, jax.lax.stop_gradient(predicted))


def _sample_weights(weights: jnp.ndarray | None, batch_shape: tuple[int, ...], dtype) -> jnp.ndarray:
    if weights is None:
        return jnp.ones(batch_shape, dtype)
    weights = jnp.asarray(weights)
    check_weights(weights, batch_shape)
    return weights


def keypoint_2d_l1_loss(
    predicted: jnp.ndarray, target: jnp.ndarray, visibility: jnp.ndarray | None = None
) -> jnp.ndarray:
    """HMR's 2D keypoint loss: mean absolute coordinate error over the visible keypoints.

    sum_k v_k (|dx_k| + |dy_k|) / (2 * #{k : v_k != 0}), over every keypoint of every sample. A batch
    without visible keypoints gives 0, and its gradient is 0 (not NaN).

    Args:
      predicted: [..., K, 2] projected keypoints (x, y) (HMR: normalised image coordinates in [-1, 1], the
        output of `ops.weak_perspective_project`; any unit works, the loss has the unit of the points).
      target: [..., K, 2] annotated keypoints (x, y), same unit.
      visibility: optional [..., K] weight per keypoint (HMR: 1 visible, 0 not annotated or invisible);
        None counts every keypoint.

    Returns:
      Scalar loss in the unit of the points.
    """
    predicted = jnp.asarray(predicted)
    target = jnp.asarray(target)
    check_same_shape(predicted, target)
    if predicted.ndim < 2 or predicted.shape[-1] != 2:
        raise ValueError(f"keypoints must be [..., K, 2]; got shape {predicted.shape}.")
    weights = _sample_weights(visibility, predicted.shape[:-1], predicted.dtype)
    target = _ignore_unweighted_targets(predicted, target, weights)
    return _masked_mean(jnp.abs(predicted - target), weights[..., None])


def align_by_pelvis(joints: jnp.ndarray, pelvis_indices: Sequence[int] = COCOPLUS_HIP_INDICES) -> jnp.ndarray:
    """Subtracts the pelvis, the mean of the joints `pelvis_indices`, from every joint.

    Args:
      joints: [..., J, 3] 3D joints (any unit, e.g. metres).
      pelvis_indices: joints whose mean is the pelvis: `COCOPLUS_HIP_INDICES` = (2, 3), the hips of HMR's
        LSP / cocoplus joints (as the official code), or `SMPL_ROOT_INDICES` = (0,) for SMPL's 24 joints.

    Returns:
      [..., J, 3] joints relative to the pelvis, same unit.
    """
    joints = jnp.asarray(joints)
    if joints.ndim < 2 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be [..., J, 3]; got shape {joints.shape}.")
    indices = tuple(int(i) for i in pelvis_indices)
    if not indices or any(not -joints.shape[-2] <= i < joints.shape[-2] for i in indices):
        raise ValueError(
            f"pelvis_indices must be non-empty indices into {joints.shape[-2]} joints; got {indices}."
        )
    pelvis = jnp.mean(joints[..., indices, :], axis=-2, keepdims=True)
    return joints - pelvis


def joints_3d_loss(
    predicted: jnp.ndarray,
    target: jnp.ndarray,
    has_3d: jnp.ndarray | None = None,
    pelvis_indices: Sequence[int] = COCOPLUS_HIP_INDICES,
) -> jnp.ndarray:
    """HMR's 3D joint loss: half the mean squared coordinate error after aligning both sets by the pelvis.

    0.5 * sum_b w_b sum_{j,c} (P_bjc - T_bjc)^2 / (J * 3 * #{b : w_b != 0}), where P and T are the joints
    after `align_by_pelvis`; invariant to a global translation of either set. 0 when no sample has 3D.

    Args:
      predicted: [..., J, 3] predicted 3D joints (e.g. metres).
      target: [..., J, 3] ground-truth 3D joints, same unit and joint order.
      has_3d: optional [...] per-sample weight (HMR: 1 where paired 3D exists, 0 elsewhere); None: all.
      pelvis_indices: see `align_by_pelvis` ((2, 3) for cocoplus/LSP joints, (0,) for SMPL's joints).

    Returns:
      Scalar loss in squared units (m^2 for metres).
    """
    predicted = jnp.asarray(predicted)
    target = jnp.asarray(target)
    check_same_shape(predicted, target)
    weights = _sample_weights(has_3d, predicted.shape[:-2], predicted.dtype)
    target = _ignore_unweighted_targets(predicted, target, weights)
    predicted = align_by_pelvis(predicted, pelvis_indices)
    target = align_by_pelvis(target, pelvis_indices)
    return 0.5 * _masked_mean(jnp.square(predicted - target), weights[..., None, None])


def smpl_parameter_loss(
    predicted_rotations: jnp.ndarray,
    target_rotations: jnp.ndarray,
    predicted_betas: jnp.ndarray,
    target_betas: jnp.ndarray,
    has_3d: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """HMR's SMPL parameter loss: half the mean squared error of [rotation matrix entries, betas].

    The pose is compared as rotation matrices (continuous, unlike axis-angle): per sample the vector
    [R_0 ... R_{J-1} flattened (9 J entries), betas (S)], 0.5 * mean squared error over its 9 J + S
    entries and the samples with `has_3d` != 0. 0 when no sample has 3D. Convert axis-angle poses with
    `landmarkjax.ops.rodrigues` and 6-D ones with `landmarkjax.ops.rotation_6d_to_matrix`.

    Args:
      predicted_rotations: [..., J, 3, 3] predicted joint rotations (HMR: all 24 SMPL joints, root included).
      target_rotations: [..., J, 3, 3] ground-truth rotations.
      predicted_betas: [..., S] predicted shape coefficients (unitless).
      target_betas: [..., S] ground-truth shape coefficients.
      has_3d: optional [...] per-sample weight (1 where SMPL parameters are known); None: all.

    Returns:
      Scalar, unitless.
    """
    predicted_rotations = jnp.asarray(predicted_rotations)
    target_rotations = jnp.asarray(target_rotations)
    predicted_betas = jnp.asarray(predicted_betas)
    target_betas = jnp.asarray(target_betas)
    check_same_shape(predicted_rotations, target_rotations)
    check_same_shape(predicted_betas, target_betas)
    if predicted_rotations.ndim < 3 or predicted_rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must be [..., J, 3, 3]; got shape {predicted_rotations.shape}.")
    batch_shape = predicted_rotations.shape[:-3]
    if predicted_betas.shape[:-1] != batch_shape or predicted_betas.ndim < 1:
        raise ValueError(
            f"betas must be [..., S] with leading shape {batch_shape}; got shape {predicted_betas.shape}."
        )
    flat_shape = batch_shape + (-1,)
    predicted = jnp.concatenate([predicted_rotations.reshape(flat_shape), predicted_betas], axis=-1)
    target = jnp.concatenate([target_rotations.reshape(flat_shape), target_betas], axis=-1)
    weights = _sample_weights(has_3d, batch_shape, predicted.dtype)
    target = _ignore_unweighted_targets(predicted, target, weights)
    return 0.5 * _masked_mean(jnp.square(predicted - target), weights[..., None])
