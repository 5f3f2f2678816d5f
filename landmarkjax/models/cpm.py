"""A Convolutional Pose Machine (CPM) style multi-stage heatmap detector.

The detector of Supervision-by-Registration (stage 1 of SBR, and the supervised baseline): a VGG-style
encoder gives features at stride `2 ** (len(backbone_widths) - 1)`; stage 1 predicts one heatmap per
landmark (plus an optional background map) from the features alone, and every later stage refines the
previous stage's heatmaps from the concatenation [features, previous heatmaps] with large-kernel
convolutions. Every stage is supervised, so the output keeps all stages.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from landmarkjax.models.layers import ConvReLU, ConvStack, head_kernel_init

__all__ = ["CPM"]


class CPM(nn.Module):
    """Multi-stage heatmap detector.

    Attributes:
      num_keypoints: K, the number of landmarks.
      backbone_widths: channels of the encoder blocks (a 2x2 max pool between blocks); the output
        stride is `2 ** (len(backbone_widths) - 1)`.
      convs_per_block: convolutions per encoder block.
      stage_width: channels inside each stage.
      num_stages: S >= 1 prediction stages.
      stage_depth: large-kernel convolutions in each refinement stage (stages 2..S).
      stage_kernel_size: kernel side of those convolutions.
      stage_dilation: their dilation (a wider view of the face for the same cost).
      with_background: if True, every stage also predicts a background map (channel K), as in SBR.
    """

    num_keypoints: int
    backbone_widths: Sequence[int] = (32, 64, 128)
    convs_per_block: int = 2
    stage_width: int = 128
    num_stages: int = 3
    stage_depth: int = 3
    stage_kernel_size: int = 5
    stage_dilation: int = 1
    with_background: bool = True

    @property
    def stride(self) -> int:
        """Input pixels per heatmap cell along each axis."""
        return 2 ** (len(self.backbone_widths) - 1)

    @property
    def num_maps(self) -> int:
        """Channels of each stage's output: K, plus one for the background map if enabled."""
        return self.num_keypoints + int(self.with_background)

    def _head(self, x: jnp.ndarray, name: str) -> jnp.ndarray:
        return nn.Conv(self.num_maps, (1, 1), kernel_init=head_kernel_init, name=name)(x)

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
        features = ConvStack(self.backbone_widths, self.convs_per_block, name="backbone")(images - 0.5)
        features = ConvReLU(self.stage_width, name="features")(features)

        hidden = ConvReLU(self.stage_width, name="stage1_conv")(features)
        heatmaps = self._head(hidden, "stage1_head")
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
            heatmaps = self._head(hidden, f"stage{stage}_head")
            stages.append(heatmaps)
        return jnp.stack(stages)
