"""A Convolutional Pose Machine (CPM) style multi-stage heatmap detector.

The detector of Supervision-by-Registration (stage 1 of SBR, and the supervised baseline): a VGG-style
encoder gives features at stride `2 ** (len(backbone_widths) - 1)`; stage 1 predicts one heatmap per
landmark (plus an optional background map) from the features alone, and every later stage refines the
previous stage's heatmaps from the concatenation [features, previous heatmaps] with large-kernel
convolutions. Every stage is supervised, so the output keeps all stages.

`sbr_vgg16_cpm(K)` is SBR's published detector (the first ten convolutions of VGG-16, stride 8, three
stages); the configs use narrower versions of the same layout so that it trains on a CPU.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from landmarkjax.models.layers import ConvReLU, ConvStack, head_kernel_init

__all__ = ["CPM", "sbr_vgg16_cpm"]


class CPM(nn.Module):
    """Multi-stage heatmap detector.

    Attributes:
      num_keypoints: K, the number of landmarks.
      backbone_widths: channels of the encoder blocks (a 2x2 max pool between blocks); the output
        stride is `2 ** (len(backbone_widths) - 1)`.
      convs_per_block: convolutions per encoder block: one count for all blocks, or one per block.
      feature_widths: 3x3 convolutions between the encoder and the stages (SBR's "CPM_feature": 256,
        128); empty means one convolution of `stage_width` channels.
      stage_width: channels inside each stage.
      num_stages: S >= 1 prediction stages.
      stage1_depth: 3x3 convolutions of stage 1 (SBR: 4).
      stage1_head_width: channels of a 1x1 convolution + ReLU before stage 1's output (SBR: 512); 0 for
        none.
      stage_depth: large-kernel convolutions in each refinement stage (stages 2..S; SBR: 3).
      stage_kernel_size: kernel side of those convolutions (SBR: 7).
      stage_dilation: their dilation (a wider view of the face for the same cost).
      stage_small_depth: 3x3 convolutions (dilation 1, `stage_width` channels) after them in each
        refinement stage (SBR: 4).
      stage_head_width: channels of a 1x1 convolution + ReLU before the output of stages 2..S (SBR:
        128); 0 for none.
      with_background: if True, every stage also predicts a background map (channel K), as in SBR.
    """

    num_keypoints: int
    backbone_widths: Sequence[int] = (32, 64, 128)
    convs_per_block: int | Sequence[int] = 2
    feature_widths: Sequence[int] = ()
    stage_width: int = 128
    num_stages: int = 3
    stage1_depth: int = 1
    stage1_head_width: int = 0
    stage_depth: int = 3
    stage_kernel_size: int = 5
    stage_dilation: int = 1
    stage_small_depth: int = 0
    stage_head_width: int = 0
    with_background: bool = True

    @property
    def stride(self) -> int:
        """Input pixels per heatmap cell along each axis."""
        return 2 ** (len(self.backbone_widths) - 1)

    @property
    def num_maps(self) -> int:
        """Channels of each stage's output: K, plus one for the background map if enabled."""
        return self.num_keypoints + int(self.with_background)

    def _head(self, x: jnp.ndarray, stage: int, width: int) -> jnp.ndarray:
        if width:
            x = ConvReLU(width, kernel_size=1, name=f"stage{stage}_pre_head")(x)
        return nn.Conv(self.num_maps, (1, 1), kernel_init=head_kernel_init, name=f"stage{stage}_head")(x)

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        """Predicts heatmaps at every stage.

        Args:
          images: `[B, H, W, C]` float images in [0, 1]; H and W divisible by `stride`.

        Returns:
          `[S, B, H / stride, W / stride, num_maps]` heatmaps of the S stages (the last is the
          prediction); channel k < K is landmark k, channel K the background when enabled.
          Heatmap cell (i, j) is centred on input pixel (x, y) = (j * stride + (stride - 1) / 2,
          i * stride + (stride - 1) / 2).
        """
        if images.ndim != 4:
            raise ValueError(f"images must be [B, H, W, C]; got shape {images.shape}.")
        height, width = images.shape[1:3]
        if height % self.stride or width % self.stride:
            raise ValueError(
                f"images height and width must be divisible by the stride {self.stride}; "
                f"got {height}x{width}."
            )
        if self.num_stages < 1:
            raise ValueError(f"num_stages must be >= 1; got {self.num_stages}.")
        if self.stage1_depth < 1:
            raise ValueError(f"stage1_depth must be >= 1; got {self.stage1_depth}.")
        features = ConvStack(self.backbone_widths, self.convs_per_block, name="backbone")(images - 0.5)
        if not self.feature_widths:
            features = ConvReLU(self.stage_width, name="features")(features)
        for index, width in enumerate(self.feature_widths):
            features = ConvReLU(width, name=f"features{index}")(features)

        hidden = features
        for layer in range(self.stage1_depth):
            hidden = ConvReLU(self.stage_width, name="stage1_conv" + (f"{layer}" if layer else ""))(hidden)
        heatmaps = self._head(hidden, 1, self.stage1_head_width)
        stages = [heatmaps]
        for stage in range(2, self.num_stages + 1):
            hidden = jnp.concatenate([features, heatmaps], axis=-1)
            for layer in range(self.stage_depth):
                hidden = ConvReLU(
                    self.stage_width,
                    self.stage_kernel_size,
                    self.stage_dilation,
                    name=f"stage{stage}_conv{layer}",
                )(hidden)
            for layer in range(self.stage_depth, self.stage_depth + self.stage_small_depth):
                hidden = ConvReLU(self.stage_width, 3, 1, name=f"stage{stage}_conv{layer}")(hidden)
            heatmaps = self._head(hidden, stage, self.stage_head_width)
            stages.append(heatmaps)
        return jnp.stack(stages)


def sbr_vgg16_cpm(num_keypoints: int, num_stages: int = 3) -> CPM:
    """SBR's detector as published: VGG-16's first ten convolutions (conv1_1 .. conv4_3: widths 64, 128,
    256, 512 with 2, 2, 3, 3 convolutions, stride 8), two feature convolutions (256, 128), a stage 1 of
    four 3x3 convolutions and a 512-channel 1x1 layer, then stages of three 7x7 and four 3x3
    convolutions (128 channels) and a 128-channel 1x1 layer, as in the official `cpm_vgg16.py`, every
    stage predicting K heatmaps plus the background. Trained at 256x256 in the paper (32x32 heatmaps);
    about 16.7M parameters for 68 landmarks and three stages.
    """
    return CPM(
        num_keypoints=num_keypoints,
        backbone_widths=(64, 128, 256, 512),
        convs_per_block=(2, 2, 3, 3),
        feature_widths=(256, 128),
        stage_width=128,
        num_stages=num_stages,
        stage1_depth=4,
        stage1_head_width=512,
        stage_depth=3,
        stage_kernel_size=7,
        stage_dilation=1,
        stage_small_depth=4,
        stage_head_width=128,
        with_background=True,
    )
