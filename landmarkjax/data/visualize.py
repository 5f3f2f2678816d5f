"""Contact sheets: a grid of images with their landmarks drawn as dots and masks as colour overlays.

`contact_sheet` colours each landmark by face region; `draw_landmarks` compares predicted (red) with true
(green) landmarks, as the methods' `visualize` draws them.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from PIL import Image, ImageDraw

from landmarkjax.face_layout import LANDMARK_REGION, NUM_FACE_LANDMARKS

__all__ = ["REGION_COLOURS", "MASK_PALETTE", "contact_sheet", "draw_landmarks", "save_contact_sheet"]

# One colour per face region (face_layout.FACE_REGION_NAMES order), used when there are 68 landmarks.
REGION_COLOURS = np.array(
    [
        [255, 215, 0],  # jaw
        [255, 105, 30],  # left brow
        [30, 144, 255],  # right brow
        [240, 240, 240],  # nose bridge
        [170, 170, 170],  # nostrils
        [255, 40, 40],  # left eye
        [40, 220, 40],  # right eye
        [255, 0, 200],  # outer lips
        [0, 230, 230],  # inner lips
    ],
    np.uint8,
)

# Colour of mask id i (i >= 1) is MASK_PALETTE[(i - 1) % len(MASK_PALETTE)].
MASK_PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [170, 110, 40],
    ],
    np.uint8,
)

_SHEET_BACKGROUND = (32, 32, 32)
_TARGET_TILE_SIZE = 128
_PREDICTED_COLOUR = np.array([255, 40, 40], np.uint8)
_TARGET_COLOUR = np.array([40, 220, 40], np.uint8)
_COMPARISON_DOT_RADIUS = 1.5


def _as_uint8_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have shape [N, H, W], [N, H, W, 1] or [N, H, W, 3], got {images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("images must contain at least one image")
    if images.dtype == np.uint8:
        out = images
    elif np.issubdtype(images.dtype, np.floating):
        low, high = float(np.min(images)), float(np.max(images))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"float images must lie in [0, 1], got values in [{low}, {high}]")
        out = (images * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out


def _point_colours(num_points: int) -> np.ndarray:
    if num_points == NUM_FACE_LANDMARKS:
        return REGION_COLOURS[LANDMARK_REGION]
    # Fully saturated hues evenly spaced around the colour wheel.
    hues = np.arange(num_points)[:, None] / max(num_points, 1)
    rgb = np.clip(np.abs((6.0 * hues + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _overlay_mask(tile: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    ids = mask.astype(np.int64)
    if ids.min() < 0:
        raise ValueError(f"masks must hold non-negative instance ids, got {ids.min()}")
    colours = MASK_PALETTE[(ids - 1) % len(MASK_PALETTE)].astype(np.float32)
    weight = np.where(ids > 0, alpha, 0.0)[..., None]
    return (tile * (1.0 - weight) + colours * weight + 0.5).astype(np.uint8)


def contact_sheet(
    images: np.ndarray,
    landmarks: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    ncols: int = 8,
    *,
    visibility: np.ndarray | None = None,
    scale: int | None = None,
    padding: int = 2,
    mask_alpha: float = 0.45,
) -> np.ndarray:
    """Lay images out in a grid, with optional landmark dots and mask overlays.

    Args:
      images: [N, H, W, 3] (or [N, H, W, 1], [N, H, W]) uint8, or float in [0, 1].
      landmarks: optional [N, K, 2] (x, y) pixels of each image (pixel centres at integers). With K = 68
        dots are coloured by face region (REGION_COLOURS), otherwise by index around the hue circle.
      masks: optional [N, H, W] non-negative integer instance ids; id 0 is left as is, id i >= 1 is
        tinted with MASK_PALETTE[(i - 1) % 12] at opacity `mask_alpha`.
      ncols: number of columns (>= 1); rows = ceil(N / ncols).
      visibility: optional [N, K] bool; invisible landmarks are drawn as hollow rings.
      scale: integer tile magnification (nearest neighbour) so that dots stay small relative to the
        image; None picks max(1, round(128 / H)).
      padding: pixels between tiles and around the sheet.
      mask_alpha: opacity of the mask tint in [0, 1].

    Returns:
      uint8 [rows * (H * scale + padding) + padding, cols * (W * scale + padding) + padding, 3].
    """
    tiles = _as_uint8_images(images)
    num, height, width, _ = tiles.shape
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if scale is None:
        scale = max(1, int(round(_TARGET_TILE_SIZE / height)))
    if not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer or None, got {scale!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not 0.0 <= mask_alpha <= 1.0:
        raise ValueError(f"mask_alpha must be in [0, 1], got {mask_alpha}")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != (num, height, width):
            raise ValueError(
                f"masks must have shape {(num, height, width)} to match images, got {masks.shape}"
            )
        tiles = np.stack([_overlay_mask(tile, mask, mask_alpha) for tile, mask in zip(tiles, masks)])
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.ndim != 3 or landmarks.shape[0] != num or landmarks.shape[-1] != 2:
            raise ValueError(f"landmarks must have shape [{num}, K, 2], got {landmarks.shape}")
        if visibility is None:
            visibility = np.ones(landmarks.shape[:2], bool)
        visibility = np.asarray(visibility, bool)
        if visibility.shape != landmarks.shape[:2]:
            raise ValueError(f"visibility must have shape {landmarks.shape[:2]}, got {visibility.shape}")

    cols = min(ncols, num)
    rows = -(-num // cols)
    tile_h, tile_w = height * scale, width * scale
    sheet = Image.new(
        "RGB", (cols * (tile_w + padding) + padding, rows * (tile_h + padding) + padding), _SHEET_BACKGROUND
    )
    radius = max(1.0, scale * 0.9)
    colours = _point_colours(landmarks.shape[1]) if landmarks is not None else None
    for index in range(num):
        tile = Image.fromarray(tiles[index])
        if scale > 1:
            tile = tile.resize((tile_w, tile_h), Image.NEAREST)
        if landmarks is not None:
            # The pixel-centre convention survives nearest upscaling: pixel x is centred on (x + 0.5) s - 0.5.
            _draw_dots(tile, (landmarks[index] + 0.5) * scale - 0.5, visibility[index], colours, radius)
        row, col = divmod(index, cols)
        sheet.paste(tile, (padding + col * (tile_w + padding), padding + row * (tile_h + padding)))
    return np.asarray(sheet)


def _draw_dots(
    tile: Image.Image, centres: np.ndarray, filled: np.ndarray, colours: np.ndarray, radius: float
) -> None:
    """Dots of `radius` at `centres` [K, 2] (x, y) in the tile's pixels; filled [K] bool (else rings),
    colours [K, 3] uint8. Non-finite centres are skipped."""
    draw = ImageDraw.Draw(tile)
    for (x, y), fill, colour in zip(centres, filled, colours):
        if not np.isfinite(x) or not np.isfinite(y):
            continue
        box = [x - radius, y - radius, x + radius, y + radius]
        if fill:
            draw.ellipse(box, fill=tuple(int(c) for c in colour))
        else:
            draw.ellipse(box, outline=tuple(int(c) for c in colour))


def draw_landmarks(
    images: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray | None = None,
    *,
    ncols: int = 8,
    scale: int = 3,
) -> np.ndarray:
    """A grid of images with predicted landmarks in red and, if given, the true ones in green.

    Tiles touch (no padding); true points are drawn first, so that a predicted point lies on top. Empty
    cells of the last row stay black.

    Args:
      images: `[N, H, W, 3]` float in [0, 1] (values outside are clipped) or uint8.
      predicted: `[N, K, 2]` (x, y) pixels, pixel centres at integers.
      target: optional `[N, K, 2]` (x, y) pixels.
      ncols: images per row (at most N).
      scale: integer upscaling of each image (nearest neighbour), so the points are visible.

    Returns:
      uint8 `[rows * H * scale, ncols * W * scale, 3]`, rows = ceil(N / ncols).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    num, height, width = images.shape[:3]
    ncols = max(1, min(ncols, num))
    rows = -(-num // ncols)
    sheet = Image.new("RGB", (ncols * width * scale, rows * height * scale))
    point_sets = [(predicted, _PREDICTED_COLOUR)]
    if target is not None:
        point_sets.insert(0, (target, _TARGET_COLOUR))
    for index in range(num):
        tile = Image.fromarray(images[index]).resize((width * scale, height * scale), Image.NEAREST)
        for points, colour in point_sets:
            points = np.asarray(points[index], np.float64)
            # Centred on (x + 0.5) * scale (not contact_sheet's (x + 0.5) * scale - 0.5): the 4-pixel dots
            # sit half a pixel off either way, and this keeps the pictures the methods have always drawn.
            filled = np.ones(len(points), bool)
            colours = np.broadcast_to(colour, (len(points), 3))
            _draw_dots(tile, (points + 0.5) * scale, filled, colours, _COMPARISON_DOT_RADIUS)
        sheet.paste(tile, ((index % ncols) * width * scale, (index // ncols) * height * scale))
    return np.asarray(sheet)


def save_contact_sheet(
    path: str | os.PathLike,
    images: np.ndarray,
    landmarks: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    ncols: int = 8,
    **kwargs,
) -> np.ndarray:
    """Write `contact_sheet(images, landmarks, masks, ncols, **kwargs)` to `path` as a PNG; return the sheet.

    The file is written to a temporary name in the same folder and renamed, so no half-written PNG is
    ever left at `path`. Raises FileNotFoundError when the folder does not exist.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder for the contact sheet does not exist: {folder}")
    sheet = contact_sheet(images, landmarks, masks, ncols, **kwargs)
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            Image.fromarray(sheet).save(file, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return sheet
