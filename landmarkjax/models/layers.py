"""Small convolutional building blocks shared by the detectors.

All modules take and return NHWC feature maps `[B, H, W, C]`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["ConvReLU", "ConvStack", "relu_kernel_init", "head_kernel_init"]

# He initialisation: keeps activation variance constant through ReLU layers without normalisation.
relu_kernel_init = nn.initializers.kaiming_normal()
# Small output weights, as in the reference CPM code (N(0, 0.01)), so initial heatmaps are near zero.
head_kernel_init = nn.initializers.normal(stddev=0.01)


class ConvReLU(nn.Module):
    """A same-padded convolution followed by ReLU.

    Attributes:
      features: output channels.
      kernel_size: square kernel side.
      dilation: kernel dilation (receptive field grows without extra parameters).
    """

    features: int
    kernel_size: int = 3
    dilation: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[B, H, W, C_in] -> [B, H, W, features]."""
        x = nn.Conv(
            self.features,
            (self.kernel_size, self.kernel_size),
            kernel_dilation=self.dilation,
            padding="SAME",
            kernel_init=relu_kernel_init,
        )(x)
        return nn.relu(x)


class ConvStack(nn.Module):
    """A VGG-style encoder: blocks of `ConvReLU`s with 2x2 max pooling between consecutive blocks.

    Attributes:
      widths: channels of each block; there are `len(widths) - 1` poolings, so the output stride is
        `2 ** (len(widths) - 1)`.
      convs_per_block: number of `ConvReLU` layers in each block: one count for every block (an int or a
        1-sequence), or one per block (VGG-16's first ten convolutions are widths (64, 128, 256, 512) with
        (2, 2, 3, 3)).
    """

    widths: Sequence[int]
    convs_per_block: int | Sequence[int] = 2

    @property
    def stride(self) -> int:
        """Input pixels per output cell along each axis."""
        return 2 ** (len(self.widths) - 1)

    @property
    def block_depths(self) -> tuple[int, ...]:
        """The number of convolutions of each block."""
        if isinstance(self.convs_per_block, int):
            depths = (self.convs_per_block,) * len(self.widths)
        else:
            depths = tuple(int(d) for d in self.convs_per_block)
            if len(depths) == 1:  # one count for every block, written as a sequence (configs)
                depths *= len(self.widths)
        if len(depths) != len(self.widths) or min(depths, default=1) < 1:
            raise ValueError(
                f"convs_per_block must be a positive count or one per block ({len(self.widths)}); "
                f"got {self.convs_per_block}."
            )
        return depths

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[B, H, W, C] -> [B, H / stride, W / stride, widths[-1]] (H and W divisible by stride)."""
        for block, (width, depth) in enumerate(zip(self.widths, self.block_depths)):
            if block > 0:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for _ in range(depth):
                x = ConvReLU(width)(x)
        return x
