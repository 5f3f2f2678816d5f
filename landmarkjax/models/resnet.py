"""ResNet encoders at output stride 4 for dense correspondence (MAST / Zhu et al. video segmentation).

MAST's ResNet-18 keeps only two of the usual five downsamplings, so that the affinity between frames is
computed on a fine grid (1/4 of the input resolution):

  stem:    7 x 7 convolution, stride 2, 64 channels, norm, ReLU (no max pooling)    -> 1/2
  stage 1: 2 basic blocks,  64 channels, stride 1                                     -> 1/2
  stage 2: 2 basic blocks, 128 channels, stride 2 (first block)                       -> 1/4
  stage 3: 2 basic blocks, 256 channels, stride 1                                     -> 1/4
  stage 4: 2 basic blocks, 256 channels, stride 1                                     -> 1/4
  head:    3 x 3 convolution (with bias) 256 -> 64 channels (MAST's "post convolution"; optional)

A basic block is conv3x3(stride) - norm - ReLU - conv3x3 - norm, plus a shortcut (identity, or a strided
1 x 1 convolution + norm where the stride or the width changes), then ReLU. Convolutions followed by a
norm have no bias.

Normalisation: GroupNorm, not MAST's BatchNorm (REFERENCE.md does not fix the choice). GroupNorm has no
running statistics, so the parameters are the whole model state (no mutable `batch_stats` collection in
the train state, in checkpoints, or in the momentum (EMA) key encoder of Zhu et al., which then averages
every variable), training and evaluation compute the same function, and the result does not depend on the
batch size or on how a batch is split over devices (the small per-device batches of video clips make
BatchNorm's statistics noisy). Padding follows flax's "SAME" convention, so for an input side that is a
multiple of 4 the output side is exactly a quarter.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from landmarkjax.models.layers import relu_kernel_init

__all__ = ["ResNetStride4", "BasicBlock", "resnet18_stride4", "small_resnet_stride4"]


def _group_norm(features: int, num_groups: int, name: str) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= num_groups that divides `features`."""
    return nn.GroupNorm(num_groups=math.gcd(num_groups, features), name=name)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3 x 3 convolutions with GroupNorm and a (projected) shortcut.

    Attributes:
      features: output channels.
      stride: stride of the first convolution and of the shortcut projection (1 or 2).
      norm_groups: GroupNorm groups (reduced to a divisor of `features`).
    """

    features: int
    stride: int = 1
    norm_groups: int = 32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[B, H, W, C_in] -> [B, ceil(H / stride), ceil(W / stride), features]."""
        strides = (self.stride, self.stride)
        y = nn.Conv(self.features, (3, 3), strides, padding="SAME", use_bias=False, kernel_init=relu_kernel_init,
                    name="conv1")(x)
        y = nn.relu(_group_norm(self.features, self.norm_groups, "norm1")(y))
        y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False, kernel_init=relu_kernel_init,
                    name="conv2")(y)
        y = _group_norm(self.features, self.norm_groups, "norm2")(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), strides, padding="SAME", use_bias=False, name="shortcut_conv")(x)
            x = _group_norm(self.features, self.norm_groups, "shortcut_norm")(x)
        return nn.relu(x + y)


class ResNetStride4(nn.Module):
    """A ResNet trunk with a stride-2 stem and one stride-2 stage: features at 1/4 of the input resolution.

    Attributes:
      stem_features: channels of the 7 x 7, stride-2 stem convolution.
      stage_features: channels of each stage.
      stage_blocks: basic blocks per stage (same length as `stage_features`).
      stage_strides: stride of each stage's first block; their product times the stem's 2 must be 4.
      out_features: channels of the final 3 x 3 projection (with bias, no norm, no ReLU), or None to return
        the last stage's features.
      norm_groups: GroupNorm groups (each norm uses the largest divisor of its width not above this).
    """

    stem_features: int = 64
    stage_features: Sequence[int] = (64, 128, 256, 256)
    stage_blocks: Sequence[int] = (2, 2, 2, 2)
    stage_strides: Sequence[int] = (1, 2, 1, 1)
    out_features: int | None = 64
    norm_groups: int = 32

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        """Encodes images.

        Args:
          images: [B, H, W, C_in] float images (e.g. Lab or RGB, any scale the caller chooses), H and W
            multiples of 4 for an exact quarter.

        Returns:
          [B, ceil(H / 4), ceil(W / 4), out_features] features (or the last stage's width if
          `out_features` is None).
        """
        if images.ndim != 4:
            raise ValueError(f"images must have shape [B, H, W, C], got {images.shape}")
        if not len(self.stage_features) == len(self.stage_blocks) == len(self.stage_strides):
            raise ValueError(
                "stage_features, stage_blocks and stage_strides must have the same length, got "
                f"{len(self.stage_features)}, {len(self.stage_blocks)} and {len(self.stage_strides)}"
            )
        if 2 * math.prod(self.stage_strides) != 4:
            raise ValueError(f"the stem (2) times the stage strides {tuple(self.stage_strides)} must be 4")
        x = nn.Conv(self.stem_features, (7, 7), (2, 2), padding="SAME", use_bias=False,
                    kernel_init=relu_kernel_init, name="stem_conv")(images)
        x = nn.relu(_group_norm(self.stem_features, self.norm_groups, "stem_norm")(x))
        for stage, (features, blocks, stride) in enumerate(
            zip(self.stage_features, self.stage_blocks, self.stage_strides)
        ):
            for block in range(blocks):
                x = BasicBlock(features, stride if block == 0 else 1, self.norm_groups,
                               name=f"stage{stage + 1}_block{block + 1}")(x)
        if self.out_features is not None:
            x = nn.Conv(self.out_features, (3, 3), padding="SAME", name="head")(x)
        return x


def resnet18_stride4(out_features: int | None = 64) -> ResNetStride4:
    """MAST's encoder: ResNet-18 layout at stride 4 (stages of 64, 128, 256, 256 channels, 2 blocks each).

    About 5.1 M parameters in the trunk (5,144,128 for 3 input channels), plus 147,520 in the default
    256 -> 64 head.
    """
    return ResNetStride4(out_features=out_features)


def small_resnet_stride4(out_features: int | None = 32) -> ResNetStride4:
    """A CPU-sized variant: stem 16, stages of 16, 32, 32 channels with one block each, still at stride 4."""
    return ResNetStride4(
        stem_features=16,
        stage_features=(16, 32, 32),
        stage_blocks=(1, 1, 1),
        stage_strides=(1, 2, 1),
        out_features=out_features,
        norm_groups=8,
    )
