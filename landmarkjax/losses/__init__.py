"""Losses as pure functions of arrays, one module per family.

Every function here is a plain `jnp` function: no Flax, no global configuration, safe under `jax.jit`,
`jax.vmap` and `jax.grad` (gradients stay finite, including at zero error). Points are `(x, y)` in pixels;
heatmaps are `[..., H, W, K]`. Optional `weights` (for example landmark visibility) take a weighted mean
over the weighted items; a batch whose weights are all zero gives a loss of 0, not NaN.

Families:
  * `heatmap`: heatmap MSE (per stage of a multi-stage detector) and SBR's Gaussian heatmap targets;
  * `points`: distances between corresponding points;
  * `registration`: Supervision-by-Registration (Lucas-Kanade tracks between neighbouring frames);
  * `perceptual`: IMM's feature-reconstruction loss, normalised per layer by running averages that are
    passed in and returned (features come from a callable, e.g. `models.vgg.vgg_features`);
  * `body`: HMR's SMPL losses (2D keypoint L1 with visibility, pelvis-aligned 3D joints, SMPL parameters
    on rotation matrices) and their weights;
  * `adversarial`: least-squares GAN losses for a discriminator and its generator (HMR's body prior).
Planned families, each its own module when its method lands: equivariance (ELT) and reconstruction.
"""

from landmarkjax.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from landmarkjax.losses.body import (
    COCOPLUS_HIP_INDICES,
    HMR_LOSS_WEIGHTS,
    SMPL_ROOT_INDICES,
    align_by_pelvis,
    joints_3d_loss,
    keypoint_2d_l1_loss,
    smpl_parameter_loss,
)
from landmarkjax.losses.heatmap import heatmap_mse, heatmap_targets, multi_stage_heatmap_mse
from landmarkjax.losses.perceptual import IMM_INITIAL_AVERAGES, IMM_PERCEPTUAL_LAYERS, perceptual_loss
from landmarkjax.losses.points import point_distance_loss, point_l1_loss
from landmarkjax.losses.registration import registration_distance, registration_loss, registration_point_mask

__all__ = [
    "IMM_INITIAL_AVERAGES",
    "IMM_PERCEPTUAL_LAYERS",
    "heatmap_mse",
    "heatmap_targets",
    "multi_stage_heatmap_mse",
    "perceptual_loss",
    "point_distance_loss",
    "point_l1_loss",
    "registration_distance",
    "registration_loss",
    "registration_point_mask",
    "keypoint_2d_l1_loss",
    "align_by_pelvis",
    "joints_3d_loss",
    "smpl_parameter_loss",
    "HMR_LOSS_WEIGHTS",
    "COCOPLUS_HIP_INDICES",
    "SMPL_ROOT_INDICES",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]
