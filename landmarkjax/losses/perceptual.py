"""The perceptual (feature-reconstruction) loss of IMM (Jakab et al., NeurIPS 2018), as a pure function.

Official definition (imm `_colorization_reconstruction_loss`): for each compared layer l (the input image
and VGG-16 conv1_2, conv2_2, conv3_2, conv4_2, conv5_2, post-ReLU),

    e_l     = mean over [B, h_l, w_l, C_l] of  m_l * (Gamma_l(x') - Gamma_l(x_hat'))^2
    a_l'    = a_l + (1 - decay) * (e_l - a_l)            (running average, decay 0.99)
    loss    = scale * sum_l  e_l / a_l'                  (scale 1000)

where m_l is the validity mask (pixels a warp left empty are 0) resized to layer l's resolution, and the
running averages start at `IMM_INITIAL_AVERAGES` = (100, 1.6, 2.3, 1.8, 2.8, 100) in that layer order.
Each term is divided by the *updated* average, as in the official code. The input layer compares the
images in [0, 255] (the official code's input range; `input_scale`).

The averages are explicit state: passed in and returned, never hidden. Feature extraction is a callable
(for example `functools.partial(vgg_features, params, layers=IMM_PERCEPTUAL_LAYERS, preprocess="caffe")`
from `landmarkjax.models.vgg`), so this module needs no model code and the frozen weights stay an argument
of the jitted step.

Robustness beyond the official code: a term whose updated average is (numerically) zero contributes 0
instead of 0 / 0, and no square root is taken, so value and gradients are finite for every finite input,
including constant and all-zero images.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from landmarkjax.losses._checks import check_same_shape

__all__ = ["IMM_PERCEPTUAL_LAYERS", "IMM_INITIAL_AVERAGES", "perceptual_loss"]

# VGG layers compared after the input image, in the order of IMM_INITIAL_AVERAGES[1:].
IMM_PERCEPTUAL_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
# Initial running averages of [input, conv1_2, conv2_2, conv3_2, conv4_2, conv5_2] (the official `ws`).
IMM_INITIAL_AVERAGES = (100.0, 1.6, 2.3, 1.8, 2.8, 100.0)

# Below this an updated average counts as zero (its term is then at most ~1e-28 / 1e-30 anyway).
_TINY = 1e-30

FeaturesFn = Callable[[jnp.ndarray], "Sequence[jnp.ndarray] | Mapping[str, jnp.ndarray]"]


def _resize_mask(mask: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """[B, H, W, 1] -> [B, height, width, 1]: the mean over each cell's block of pixels when the sizes
    divide (a cell's weight is the fraction of its pixels that are valid), else linear interpolation with
    antialiasing."""
    batch, full_h, full_w, _ = mask.shape
    if (full_h, full_w) == (height, width):
        return mask
    if full_h % height == 0 and full_w % width == 0:
        fy, fx = full_h // height, full_w // width
        return mask.reshape(batch, height, fy, width, fx, 1).mean(axis=(2, 4))
    return jax.image.resize(mask, (batch, height, width, 1), method="linear", antialias=True)


def perceptual_loss(
    features_fn: FeaturesFn,
    predicted: jnp.ndarray,
    target: jnp.ndarray,
    averages: jnp.ndarray,
    mask: jnp.ndarray | None = None,
    *,
    decay: float = 0.99,
    scale: float = 1000.0,
    input_scale: float = 255.0,
    update: bool = True,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """IMM's perceptual loss with running-average normalisation (see the module docstring).

    Args:
      features_fn: maps `[2B, H, W, C]` images (as given, in [0, 1]) to L feature maps `[2B, h_l, w_l, C_l]`,
        a sequence or a mapping (its values in iteration order); called once on target and predicted
        stacked along the batch.
      predicted: `[B, H, W, C]` generated images x_hat', float in [0, 1].
      target: `[B, H, W, C]` target images x', float in [0, 1].
      averages: `[L + 1]` running averages of the per-layer errors, input layer first (start from
        `jnp.asarray(IMM_INITIAL_AVERAGES)` with the VGG layers `IMM_PERCEPTUAL_LAYERS`); non-negative.
      mask: optional `[B, H, W]` or `[B, H, W, 1]` validity in [0, 1] (0 where a warp left the target
        empty); resized to each layer's `[h_l, w_l]` by block means (see `_resize_mask`). Masked cells add
        0 to the error but still count in its mean, as in the official code.
      decay: running-average decay rho in [0, 1).
      scale: overall factor (official: 1000).
      input_scale: factor on the images for the input-layer term (official images are in [0, 255]).
      update: if False (evaluation), the returned averages equal `averages`; each term is still divided by
        the would-be updated average, as the official code does at test time.

    Returns:
      (loss, new_averages): a scalar float32 loss, and the `[L + 1]` updated averages (no gradient flows
      into them; gradients do flow through the division by the updated average, as in the official code).
    """
    check_same_shape(predicted, target)
    if predicted.ndim != 4:
        raise ValueError(f"predicted and target must be [B, H, W, C]; got shape {predicted.shape}.")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1); got {decay}.")
    batch, height, width, _ = predicted.shape
    predicted = jnp.asarray(predicted, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    averages = jnp.asarray(averages, jnp.float32)

    features = features_fn(jnp.concatenate([target, predicted], axis=0))
    if isinstance(features, Mapping):
        features = list(features.values())
    features = list(features)
    if averages.shape != (len(features) + 1,):
        raise ValueError(
            f"averages must have shape ({len(features) + 1},): the input layer and the {len(features)} feature "
            f"maps of features_fn; got {averages.shape}."
        )
    if mask is not None:
        mask = jnp.asarray(mask, jnp.float32)
        if mask.ndim == 3:
            mask = mask[..., None]
        if mask.shape != (batch, height, width, 1):
            raise ValueError(f"mask must be [B, H, W] or [B, H, W, 1] = {(batch, height, width)}; got {mask.shape}.")

    pairs = [(target * input_scale, predicted * input_scale)]
    for index, feature in enumerate(features):
        if feature.ndim != 4 or feature.shape[0] != 2 * batch:
            raise ValueError(
                f"features_fn output {index} must be [2B, h, w, C] with 2B = {2 * batch}; got {feature.shape}."
            )
        pairs.append((feature[:batch], feature[batch:]))

    terms, errors = [], []
    for (gt, pred), average in zip(pairs, averages):
        squared = jnp.square(gt - pred)
        if mask is not None:
            squared = squared * _resize_mask(mask, squared.shape[1], squared.shape[2])
        error = jnp.mean(squared)
        updated = average + (1.0 - decay) * (error - average)
        nonzero = updated > _TINY
        terms.append(jnp.where(nonzero, error / jnp.where(nonzero, updated, 1.0), 0.0))
        errors.append(error)
    loss = scale * jnp.sum(jnp.stack(terms))
    errors = jax.lax.stop_gradient(jnp.stack(errors))
    new_averages = averages + (1.0 - decay) * (errors - averages) if update else averages
    return loss, new_averages
