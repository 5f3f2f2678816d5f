"""Coarse-to-fine landmark detectors of Honari et al. (CVPR 2016): SumNet and the Recombinator Network.

Both models see the image at `num_branches` resolutions: branch 0 is the finest (the input resolution),
branch b works at stride `2 ** b` (a 2x2 max pool between consecutive branches). They output one logit map
per landmark at the INPUT resolution, `[B, H, W, K]`; a per-landmark softmax over the H * W pixels turns
them into a distribution (`losses.spatial_softmax_nll` trains it, `ops.soft_argmax` reads it out
differentiably, an argmax reads it out at test time as in the 2016 code).

  * `SumNet`: a shared encoder trunk; every branch turns its level's features into K logit maps, which are
    upsampled (nearest, by pixel repetition) to the input resolution and SUMMED (pre-softmax), as in FCN.
  * `RCN`: an encoder-decoder. The coarsest branch's features are upsampled and CONCATENATED into the next
    finer branch, which convolves them together with its own encoder features, and so on down to branch 0,
    whose output a 1x1 convolution maps to K logit maps. Coarse features thus inform finer ones early in
    their formation (the paper's point), rather than being summed at the end.

Branch masking (the paper's ablation: drop the coarse or the fine branches at train time) is a call
argument, `branch_mask`: one bool per branch, finest first, True = keep. A masked branch contributes
zeros in place of its output: in SumNet its logit maps are left out of the sum; in RCN its features are
replaced by zeros where they enter the next finer branch (for branch 0, its own encoder features are
zeroed before its decoder). In RCN everything coarser than a masked branch reaches branch 0 only through
it, so masking branch b also cuts the branches coarser than b. The output then does not depend on the
masked branches' parameters (modules named `branch{b}_...`).

`rcn_honari2016(K)` / `sumnet_honari2016(K)` give the published 4-branch layout (80x80 inputs: branches
at 80, 40, 20 and 10 pixels); the configs use narrower versions that train on a CPU.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from landmarkjax.models.layers import ConvReLU, head_kernel_init

__all__ = ["SumNet", "RCN", "rcn_honari2016", "sumnet_honari2016", "upsample_nearest"]


def upsample_nearest(x: jnp.ndarray, factor: int) -> jnp.ndarray:
    """Nearest-neighbour upsampling by pixel repetition: `[B, h, w, C]` -> `[B, h * factor, w * factor, C]`.

    Cell (i, j) of the input covers output pixels `[i * factor, (i + 1) * factor)` x the same for j, which
    is exactly the block that a `factor` x `factor` max pool gathered into it.
    """
    if factor == 1:
        return x
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _check_inputs(images: jnp.ndarray, num_branches: int) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W, C]; got shape {images.shape}.")
    if num_branches < 1:
        raise ValueError(f"the model needs at least one branch; got widths of length {num_branches}.")
    stride = 2 ** (num_branches - 1)
    height, width = images.shape[1:3]
    if height % stride or width % stride:
        raise ValueError(
            f"images height and width must be divisible by 2 ** (num_branches - 1) = {stride}; "
            f"got {height}x{width}."
        )


def _check_mask(branch_mask: Sequence[bool] | None, num_branches: int) -> tuple[bool, ...]:
    if branch_mask is None:
        return (True,) * num_branches
    mask = tuple(bool(keep) for keep in branch_mask)
    if len(mask) != num_branches:
        raise ValueError(
            f"branch_mask must have one bool per branch (finest first, {num_branches}); got {branch_mask}."
        )
    if not any(mask):
        raise ValueError(f"branch_mask must keep at least one branch; got {branch_mask}.")
    return mask


def _depths(depth: int | Sequence[int], num_branches: int, name: str) -> tuple[int, ...]:
    if isinstance(depth, int):
        depths = (depth,) * num_branches
    else:
        depths = tuple(int(d) for d in depth)
        if len(depths) == 1:
            depths *= num_branches
    if len(depths) != num_branches or min(depths) < 1:
        raise ValueError(
            f"{name} must be a positive count or one positive count per branch ({num_branches}); got {depth}."
        )
    return depths


class SumNet(nn.Module):
    """Coarse-to-fine branches whose pre-softmax logit maps are upsampled and summed.

    Attributes:
      num_keypoints: K, the number of landmarks.
      widths: channels of each branch, finest first; `len(widths)` is the number of branches, branch b
        at stride `2 ** b`.
      encoder_depth: 3x3 convolutions of each trunk level (one count, or one per branch).
      branch_depth: 3x3 convolutions of each branch between its trunk level and its 1x1 logit head (one
        count, or one per branch).
    """

    num_keypoints: int
    widths: Sequence[int] = (16, 32, 48, 48)
    encoder_depth: int | Sequence[int] = 1
    branch_depth: int | Sequence[int] = 1

    @property
    def num_branches(self) -> int:
        """The number of branches (resolutions)."""
        return len(self.widths)

    @nn.compact
    def __call__(self, images: jnp.ndarray, branch_mask: Sequence[bool] | None = None) -> jnp.ndarray:
        """Predicts per-landmark logit maps.

        Args:
          images: `[B, H, W, C]` float images in [0, 1]; H and W divisible by `2 ** (num_branches - 1)`.
          branch_mask: optional static sequence of `num_branches` bools, finest first; False drops that
            branch's logit maps from the sum (the masking ablation). None keeps every branch.

        Returns:
          `[B, H, W, K]` float logits; pixel (i, j) of map k is the score of landmark k at (x, y) = (j, i)
          pixels. A softmax over the H * W pixels of a map gives that landmark's distribution.
        """
        num_branches = self.num_branches
        _check_inputs(images, num_branches)
        mask = _check_mask(branch_mask, num_branches)
        encoder_depths = _depths(self.encoder_depth, num_branches, "encoder_depth")
        branch_depths = _depths(self.branch_depth, num_branches, "branch_depth")
        deepest = max(b for b, keep in enumerate(mask) if keep)  # coarser trunk levels are unused
        features = images - 0.5
        logits = None
        for branch in range(deepest + 1):
            if branch > 0:
                features = nn.max_pool(features, (2, 2), strides=(2, 2))
            for layer in range(encoder_depths[branch]):
                features = ConvReLU(self.widths[branch], name=f"branch{branch}_encoder{layer}")(features)
            if not mask[branch]:
                continue
            hidden = features
            for layer in range(branch_depths[branch]):
                hidden = ConvReLU(self.widths[branch], name=f"branch{branch}_conv{layer}")(hidden)
            branch_logits = nn.Conv(
                self.num_keypoints, (1, 1), kernel_init=head_kernel_init, name=f"branch{branch}_head"
            )(hidden)
            branch_logits = upsample_nearest(branch_logits, 2**branch)
            logits = branch_logits if logits is None else logits + branch_logits
        return logits


class RCN(nn.Module):
    """Recombinator Network: coarse features upsampled, concatenated into finer branches, then convolved.

    Encoder: level b (stride `2 ** b`) applies `encoder_depth` 3x3 convolutions of `widths[b]` channels,
    then a 2x2 max pool leads to level b + 1. Decoder, from the coarsest branch down: branch b convolves
    `concat(encoder features of level b, upsample_x2(output of branch b + 1))` with `decoder_depth` 3x3
    convolutions of `widths[b]` channels (the coarsest branch convolves its encoder features alone). A 1x1
    convolution maps branch 0's output to the K logit maps.

    Attributes:
      num_keypoints: K, the number of landmarks.
      widths: channels of each branch, finest first; `len(widths)` is the number of branches.
      encoder_depth: 3x3 convolutions per encoder level (one count, or one per branch).
      decoder_depth: 3x3 convolutions per decoder branch after the concatenation (one count, or one per
        branch).
    """

    num_keypoints: int
    widths: Sequence[int] = (16, 32, 48, 48)
    encoder_depth: int | Sequence[int] = 1
    decoder_depth: int | Sequence[int] = 1

    @property
    def num_branches(self) -> int:
        """The number of branches (resolutions)."""
        return len(self.widths)

    @nn.compact
    def __call__(self, images: jnp.ndarray, branch_mask: Sequence[bool] | None = None) -> jnp.ndarray:
        """Predicts per-landmark logit maps.

        Args:
          images: `[B, H, W, C]` float images in [0, 1]; H and W divisible by `2 ** (num_branches - 1)`.
          branch_mask: optional static sequence of `num_branches` bools, finest first; False replaces that
            branch's output by zeros where it enters the next finer branch (branch 0: its encoder features
            are zeroed instead). Everything coarser than a masked branch is then cut as well. None keeps
            every branch.

        Returns:
          `[B, H, W, K]` float logits; pixel (i, j) of map k is the score of landmark k at (x, y) = (j, i)
          pixels.
        """
        num_branches = self.num_branches
        _check_inputs(images, num_branches)
        mask = _check_mask(branch_mask, num_branches)
        encoder_depths = _depths(self.encoder_depth, num_branches, "encoder_depth")
        decoder_depths = _depths(self.decoder_depth, num_branches, "decoder_depth")
        # The coarsest level that can still reach branch 0: the first masked branch b >= 1 cuts b and all
        # coarser branches, which are then not computed at all.
        reach = next((b for b in range(1, num_branches) if not mask[b]), num_branches)

        skips = []
        features = images - 0.5
        for level in range(reach):
            if level > 0:
                features = nn.max_pool(features, (2, 2), strides=(2, 2))
            for layer in range(encoder_depths[level]):
                features = ConvReLU(self.widths[level], name=f"branch{level}_encoder{layer}")(features)
            skips.append(features)

        coarser = None  # output of the next coarser branch, upsampled to this branch's resolution
        for branch in reversed(range(reach)):
            own = skips[branch] if mask[branch] else jnp.zeros_like(skips[branch])
            if branch + 1 < num_branches and coarser is None:
                # The next coarser branch is masked: zeros of its width, so that the decoder sees the same
                # number of input channels (and takes the same parameters) with and without the mask.
                coarser = jnp.zeros(own.shape[:-1] + (self.widths[branch + 1],), own.dtype)
            hidden = own if coarser is None else jnp.concatenate([own, coarser], axis=-1)
            for layer in range(decoder_depths[branch]):
                hidden = ConvReLU(self.widths[branch], name=f"branch{branch}_decoder{layer}")(hidden)
            coarser = upsample_nearest(hidden, 2) if branch > 0 else hidden
        return nn.Conv(self.num_keypoints, (1, 1), kernel_init=head_kernel_init, name="head")(coarser)


def rcn_honari2016(num_keypoints: int) -> RCN:
    """The published 4-branch RCN layout for 80x80 inputs (branches at 80, 40, 20 and 10 pixels).

    The branch structure (four resolutions, halving with 2x2 max pooling, coarse features concatenated into
    finer branches) is the paper's; the per-branch widths (48 at the finer two branches, 64 at the coarser
    two) and depths (two 3x3 convolutions per encoder level and per decoder branch) are this library's
    reading of the 2016 code, not checked against it.
    """
    return RCN(num_keypoints, widths=(48, 48, 64, 64), encoder_depth=2, decoder_depth=2)


def sumnet_honari2016(num_keypoints: int) -> SumNet:
    """The published 4-branch SumNet layout for 80x80 inputs, with the widths of `rcn_honari2016`."""
    return SumNet(num_keypoints, widths=(48, 48, 64, 64), encoder_depth=2, branch_depth=2)
