"""Losses as pure functions of arrays, one module per family.

Every function here is a plain `jnp` function: no Flax, no global configuration, safe under `jax.jit`,
`jax.vmap` and `jax.grad` (gradients stay finite, including at zero error). Points are `(x, y)` in pixels;
heatmaps are `[..., H, W, K]`. Optional `weights` (for example landmark visibility) take a weighted mean
over the weighted items; a batch whose weights are all zero gives a loss of 0, not NaN.

Families:
  * `heatmap`: heatmap MSE (per stage of a multi-stage detector) and SBR's Gaussian heatmap targets;
  * `points`: distances between corresponding points;
  * `registration`: Supervision-by-Registration (Lucas-Kanade tracks between neighbouring frames);
  * `spatial`: per-landmark softmax over pixels with the NLL of the ground-truth pixel (RCN, 2016);
  * `attributes`: cross-entropy and squared error of attributes predicted from landmarks (2018);
  * `equivariance`: the Equivariant Landmark Transformation (ELT) loss and its random transforms;
  * `perceptual`: IMM's feature-reconstruction loss, normalised per layer by running averages that are
    passed in and returned (features come from a callable, e.g. `models.vgg.vgg_features`);
  * `body`: HMR's SMPL losses (2D keypoint L1 with visibility, pelvis-aligned 3D joints, SMPL parameters
    on rotation matrices) and their weights;
  * `adversarial`: least-squares GAN losses for a discriminator and its generator (HMR's body prior).
Planned: a reconstruction family when a method needs more than these.
"""

from landmarkjax.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from landmarkjax.losses.attributes import attribute_cross_entropy, attribute_squared_error
from landmarkjax.losses.body import (
    COCOPLUS_HIP_INDICES,
    HMR_LOSS_WEIGHTS,
    SMPL_ROOT_INDICES,
    align_by_pelvis,
    joints_3d_loss,
    keypoint_2d_l1_loss,
    smpl_parameter_loss,
)
from landmarkjax.losses.equivariance import elt_matrix, equivariance_loss, random_elt_transform
from landmarkjax.losses.heatmap import heatmap_mse, heatmap_targets, multi_stage_heatmap_mse
from landmarkjax.losses.perceptual import IMM_INITIAL_AVERAGES, IMM_PERCEPTUAL_LAYERS, perceptual_loss
from landmarkjax.losses.points import point_distance_loss, point_l1_loss
from landmarkjax.losses.registration import (
    oracle_registration_loss,
    registration_distance,
    registration_loss,
    registration_point_mask,
)
from landmarkjax.losses.spatial import spatial_softmax_nll

__all__ = [
    "COCOPLUS_HIP_INDICES",
    "HMR_LOSS_WEIGHTS",
    "IMM_INITIAL_AVERAGES",
    "IMM_PERCEPTUAL_LAYERS",
    "SMPL_ROOT_INDICES",
    "align_by_pelvis",
    "attribute_cross_entropy",
    "attribute_squared_error",
    "elt_matrix",
    "equivariance_loss",
    "heatmap_mse",
    "heatmap_targets",
    "joints_3d_loss",
    "keypoint_2d_l1_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "multi_stage_heatmap_mse",
    "oracle_registration_loss",
    "perceptual_loss",
    "point_distance_loss",
    "point_l1_loss",
    "random_elt_transform",
    "registration_distance",
    "registration_loss",
    "registration_point_mask",
    "smpl_parameter_loss",
    "spatial_softmax_nll",
]
