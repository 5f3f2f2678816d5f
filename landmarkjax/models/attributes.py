"""Attributes predicted FROM landmarks: the sequential multitasking of Honari et al. (CVPR 2018).

The landmark network predicts K landmarks, read out differentiably with `ops.soft_argmax`; this small MLP
predicts the face's attributes (discrete ones such as smiling or eyes open, and the head pose) from those
coordinates, optionally with pooled image features. Because the coordinates are a differentiable function
of the landmark network's logits, an attribute loss on images without landmark labels trains the landmark
network: the only way to predict the attributes well is to put the landmarks in the right places.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax.numpy as jnp

from landmarkjax.models.layers import relu_kernel_init

__all__ = ["AttributeNet", "AttributePredictions", "normalize_points"]


class AttributePredictions(NamedTuple):
    """The outputs of `AttributeNet`.

    Attributes:
      class_logits: one `[B, C_a]` float array of logits per discrete attribute a (C_a classes).
      regression: `[B, R]` float regressed values (e.g. head pose (yaw, pitch, roll) in the units of the
        training targets); `[B, 0]` when R = 0.
    """

    class_logits: tuple[jnp.ndarray, ...]
    regression: jnp.ndarray


def normalize_points(points: jnp.ndarray, image_size: Sequence[int]) -> jnp.ndarray:
    """Pixel coordinates to [-1, 1] across the image: u = 2 (x + 0.5) / W - 1, v = 2 (y + 0.5) / H - 1.

    Pixel centres are at integers, so the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5] pixels, which maps
    to [-1, 1]^2 whatever the image size.

    Args:
      points: `[..., K, 2]` (x, y) in pixels.
      image_size: (H, W) in pixels.

    Returns:
      `[..., K, 2]` (u, v), unitless.
    """
    height, width = image_size
    size = jnp.asarray([width, height], points.dtype)
    return 2.0 * (points + 0.5) / size - 1.0


class AttributeNet(nn.Module):
    """An MLP from landmark coordinates (and optional pooled image features) to face attributes.

    Attributes:
      image_size: (H, W) in pixels of the images the landmarks are predicted on; the coordinates enter the
        MLP as `normalize_points(points, image_size)`.
      num_classes: number of classes of each discrete attribute (one softmax head per entry).
      num_regression: R, the number of regressed values (3 for head pose: yaw, pitch, roll); 0 for none.
      hidden_widths: widths of the hidden ReLU layers shared by every head.
    """

    image_size: Sequence[int]
    num_classes: Sequence[int] = ()
    num_regression: int = 3
    hidden_widths: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(
        self,
        points: jnp.ndarray,
        features: jnp.ndarray | None = None,
    ) -> AttributePredictions:
        """Predicts the attributes of each image.

        Args:
          points: `[B, K, 2]` predicted landmarks (x, y) in pixels of an image of `image_size`.
          features: optional image features, `[B, C]` or `[B, h, w, C]` (averaged over h and w), appended
            to the coordinates.

        Returns:
          `AttributePredictions`: a `[B, C_a]` logit array per discrete attribute and `[B, R]` regressions.
        """
        if points.ndim != 3 or points.shape[-1] != 2:
            raise ValueError(f"points must be [B, K, 2] (x, y) pixels; got shape {points.shape}.")
        image_size = tuple(int(v) for v in self.image_size)
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (H, W) positive pixel counts; got {self.image_size}.")
        if any(int(c) < 2 for c in self.num_classes) or self.num_regression < 0:
            raise ValueError(
                f"every attribute needs >= 2 classes and num_regression must be >= 0; got num_classes="
                f"{tuple(self.num_classes)}, num_regression={self.num_regression}."
            )
        batch = points.shape[0]
        inputs = [normalize_points(points, image_size).reshape(batch, -1)]
        if features is not None:
            if features.ndim == 4:
                features = jnp.mean(features, axis=(1, 2))
            if features.ndim != 2 or features.shape[0] != batch:
                raise ValueError(
                    f"features must be [B, C] or [B, h, w, C] with B = {batch}; got shape {features.shape}."
                )
            inputs.append(features.astype(points.dtype))
        hidden = jnp.concatenate(inputs, axis=-1)
        for layer, width in enumerate(self.hidden_widths):
            hidden = nn.relu(nn.Dense(width, kernel_init=relu_kernel_init, name=f"hidden{layer}")(hidden))
        class_logits = tuple(
            nn.Dense(int(classes), name=f"class_head{index}")(hidden)
            for index, classes in enumerate(self.num_classes)
        )
        if self.num_regression:
            regression = nn.Dense(self.num_regression, name="regression_head")(hidden)
        else:
            regression = jnp.zeros((batch, 0), hidden.dtype)
        return AttributePredictions(class_logits, regression)
