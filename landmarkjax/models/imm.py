"""IMM: unsupervised landmarks through conditional image generation (Jakab et al., NeurIPS 2018).

Three networks, all NHWC:
  * `ImageEncoder` (Phi, appearance): a 7x7 convolution and a 3x3 convolution at full resolution, then
    blocks of a stride-2 3x3 convolution and a 3x3 convolution, each block halving the size and doubling
    the channels (official: widths 32, 64, 128, 256; a 128x128 image ends at 16x16x256);
  * `PoseEncoder`: the same encoder on the target image, a 1x1 convolution to K maps, the marginal
    soft-argmax of the official code (mean over the other axis, softmax, expected coordinate), giving K
    points (x, y) in [-1, 1] over the pose map's cell centres, rendered back as Gaussian maps
    exp(-|u - u_k|^2 / std^2) (std 0.1, no factor 2) at the renderer's first resolution;
  * `Renderer`: from the concatenation [Phi(source), Gaussian maps] at the coarsest resolution, blocks of
    two 3x3 convolutions (from 256 channels, halving down to a floor of 32) with a x2 bilinear upsampling
    after each block until the image size, then a 3x3 convolution to the output channels.

Differences from the official code: no batch normalisation (parameters stay a single pytree without
batch statistics), and the Gaussian is the paper's exp(-d^2 / std^2) (the official code also has a
separable exp(-sqrt(|d| / std)) variant).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmarkjax.ops.heatmaps import heatmap_to_image_coords, marginal_soft_argmax

__all__ = [
    "ImageEncoder",
    "PoseEncoder",
    "Renderer",
    "IMM",
    "gaussian_maps",
    "normalized_to_cells",
    "imm_points_to_pixels",
]


def _conv(features: int, kernel: int, stride: int = 1, name: str | None = None) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME", name=name)


def normalized_to_cells(points: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Maps (x, y) in [-1, 1] over a grid's cell centres (-1: cell 0, +1: the last cell) to cells.

    Args:
      points: `[..., K, 2]` (x, y) in [-1, 1].
      height, width: the grid's H and W.

    Returns:
      `[..., K, 2]` (x, y) in cells, cell centres at integers: x = (u + 1) / 2 * (W - 1).
    """
    scale = jnp.asarray([width - 1, height - 1], points.dtype)
    return (points + 1.0) * 0.5 * scale


def imm_points_to_pixels(points: jnp.ndarray, pose_height: int, pose_width: int, stride: int) -> jnp.ndarray:
    """IMM points (x, y) in [-1, 1] over the pose maps' cells -> image pixels (pixel centres at integers).

    Args:
      points: `[..., K, 2]` (x, y) in [-1, 1], as returned by `PoseEncoder` / `IMM`.
      pose_height, pose_width: the size of the pose maps (e.g. 16, 16).
      stride: image pixels per pose cell (`PoseEncoder.stride`, e.g. 8).

    Returns:
      `[..., K, 2]` (x, y) in image pixels.
    """
    return heatmap_to_image_coords(normalized_to_cells(points, pose_height, pose_width), stride)


def gaussian_maps(points: jnp.ndarray, height: int, width: int, std: float = 0.1) -> jnp.ndarray:
    """IMM's Gaussian bottleneck: one map exp(-|u - u_k|^2 / std^2) per point, peak 1.

    Args:
      points: `[..., K, 2]` (x, y) in [-1, 1] over the grid's cell centres.
      height, width: the output grid; cell (i, j) sits at (x, y) = (-1 + 2 j / (W - 1), -1 + 2 i / (H - 1))
        (0 for a side of 1).
      std: width in the same [-1, 1] units (official: 0.1); note there is no factor 2.

    Returns:
      `[..., H, W, K]` maps in (0, 1].
    """
    if std <= 0:
        raise ValueError(f"std must be > 0; got {std}.")
    xs = jnp.linspace(-1.0, 1.0, width) if width > 1 else jnp.zeros((1,))
    ys = jnp.linspace(-1.0, 1.0, height) if height > 1 else jnp.zeros((1,))
    dx = xs[:, None] - points[..., None, None, :, 0]  # [..., 1, W, K]
    dy = ys[:, None, None] - points[..., None, None, :, 1]  # [..., H, 1, K]
    return jnp.exp(-(dx**2 + dy**2) / std**2)


class ImageEncoder(nn.Module):
    """Phi: the IMM encoder (appearance; the pose network uses its own copy).

    Attributes:
      widths: channels of each block (official: 32, 64, 128, 256); block 0 is a 7x7 and a 3x3 convolution
        at full size, every later block a stride-2 and a stride-1 3x3 convolution, each with ReLU.
    """

    widths: Sequence[int] = (32, 64, 128, 256)

    @property
    def stride(self) -> int:
        """Image pixels per cell of the last block."""
        return 2 ** (len(self.widths) - 1)

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> list[jnp.ndarray]:
        """`[B, H, W, C]` images in [0, 1] (H, W divisible by `stride`) -> one `[B, H / 2^b, W / 2^b,
        widths[b]]` map per block b."""
        if images.ndim != 4:
            raise ValueError(f"images must be [B, H, W, C]; got shape {images.shape}.")
        if not self.widths:
            raise ValueError("widths must name at least one block.")
        if images.shape[1] % self.stride or images.shape[2] % self.stride:
            raise ValueError(f"image height and width must be divisible by {self.stride}; got {images.shape[1:3]}.")
        x = nn.relu(_conv(self.widths[0], 7, name="conv_1")(images))
        x = nn.relu(_conv(self.widths[0], 3, name="conv_2")(x))
        features = [x]
        for block, width in enumerate(self.widths[1:], start=1):
            x = nn.relu(_conv(width, 3, stride=2, name=f"conv_{2 * block + 1}")(x))
            x = nn.relu(_conv(width, 3, name=f"conv_{2 * block + 2}")(x))
            features.append(x)
        return features


class PoseEncoder(nn.Module):
    """Landmarks from the target image: encoder, 1x1 conv to K maps, marginal soft-argmax.

    Attributes:
      num_landmarks: K >= 1.
      widths: the encoder's block widths (see `ImageEncoder`).
    """

    num_landmarks: int
    widths: Sequence[int] = (32, 64, 128, 256)

    @property
    def stride(self) -> int:
        """Image pixels per pose-map cell."""
        return 2 ** (len(self.widths) - 1)

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """`[B, H, W, C]` images in [0, 1] -> (points `[B, K, 2]` (x, y) in [-1, 1] over the pose maps' cell
        centres, logits `[B, H / stride, W / stride, K]`)."""
        if self.num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1; got {self.num_landmarks}.")
        features = ImageEncoder(self.widths, name="encoder")(images)[-1]
        logits = nn.Conv(self.num_landmarks, (1, 1), name="heatmaps")(features)
        height, width = logits.shape[1:3]
        cells = marginal_soft_argmax(logits, reduction="mean")  # (x, y) in cells, the official get_coord
        sizes = jnp.asarray([width, height], cells.dtype)
        points = jnp.where(sizes > 1, cells * 2.0 / jnp.maximum(sizes - 1.0, 1.0) - 1.0, 0.0)
        return points, logits


class Renderer(nn.Module):
    """Decoder from [appearance features, Gaussian maps] at the coarsest size up to the image.

    Attributes:
      output_size: (H, W) of the image to render; a power-of-two multiple of the input's size.
      width: channels of the first block (official: 256); halved after every block down to `min_width`.
      min_width: the floor of the channel count (official: 32).
      out_channels: channels of the output (3: RGB).
    """

    output_size: tuple[int, int]
    width: int = 256
    min_width: int = 32
    out_channels: int = 3

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """`[B, h, w, C]` -> `[B, H, W, out_channels]` (linear output, no activation)."""
        height, width = self.output_size
        if height % x.shape[1] or width % x.shape[2] or height // x.shape[1] != width // x.shape[2]:
            raise ValueError(f"output_size {self.output_size} must be the input size {x.shape[1:3]} times 2^n.")
        factor = height // x.shape[1]
        if factor & (factor - 1):
            raise ValueError(f"output_size {self.output_size} must be the input size {x.shape[1:3]} times 2^n.")
        filters, conv_id = self.width, 1
        while True:
            x = nn.relu(_conv(filters, 3, name=f"conv_{conv_id}")(x))
            if x.shape[1] == height:
                return _conv(self.out_channels, 3, name=f"conv_{conv_id + 1}")(x)
            x = nn.relu(_conv(filters, 3, name=f"conv_{conv_id + 1}")(x))
            x = jax.image.resize(x, (x.shape[0], 2 * x.shape[1], 2 * x.shape[2], x.shape[3]), method="bilinear")
            conv_id += 2
            filters = max(filters // 2, self.min_width)


class IMM(nn.Module):
    """The whole IMM generator: reconstruct the target from the source's appearance and the target's pose.

    Attributes:
      num_landmarks: K >= 1 (official: 10, 30 or 50).
      encoder_widths: block widths of both encoders (official: 32, 64, 128, 256).
      render_width: the renderer's first width (official: 256); `render_min_width` its floor (32).
      gaussian_std: the bottleneck's std in [-1, 1] units (official: 0.1).
    """

    num_landmarks: int
    encoder_widths: Sequence[int] = (32, 64, 128, 256)
    render_width: int = 256
    render_min_width: int = 32
    gaussian_std: float = 0.1

    @nn.compact
    def __call__(self, source: jnp.ndarray, target: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Renders the target image from the source's appearance and the target's landmarks.

        Args:
          source: `[B, H, W, C]` images x in [0, 1].
          target: `[B, H, W, C]` images x' in [0, 1] (same shape; H, W divisible by 2^(len(widths) - 1)).

        Returns:
          A dict with
            "reconstruction": `[B, H, W, C]` the rendered x_hat' (linear output);
            "points": `[B, K, 2]` target landmarks (x, y) in [-1, 1] over the pose maps' cell centres
              (`imm_points_to_pixels` converts to image pixels);
            "gaussian_maps": `[B, h, w, K]` the bottleneck at the coarsest size h = H / 2^(n - 1);
            "pose_logits": `[B, h, w, K]` the pose network's maps before the soft-argmax.
        """
        if self.num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1; got {self.num_landmarks}.")
        if source.shape != target.shape:
            raise ValueError(f"source and target must have one shape; got {source.shape} and {target.shape}.")
        appearance = ImageEncoder(self.encoder_widths, name="image_encoder")(source)[-1]
        points, logits = PoseEncoder(self.num_landmarks, self.encoder_widths, name="pose_encoder")(target)
        maps = gaussian_maps(points, appearance.shape[1], appearance.shape[2], self.gaussian_std)
        renderer = Renderer(
            tuple(source.shape[1:3]), self.render_width, self.render_min_width, source.shape[-1], name="renderer"
        )
        reconstruction = renderer(jnp.concatenate([appearance, maps], axis=-1))
        return {"reconstruction": reconstruction, "points": points, "gaussian_maps": maps, "pose_logits": logits}
