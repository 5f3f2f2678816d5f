"""Procedural textures and cluttered backgrounds shared by the synthetic face and object generators.

Textures are float32 RGB arrays in [0, 1]; backgrounds are drawn on a PIL canvas at supersampled
resolution. Everything is a function of an explicit numpy Generator.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PATTERN_KINDS = ("noise", "stripes", "checker", "dots", "plaid")


def random_colour(
    rng: np.random.Generator, saturation: float = 0.6, low: float = 0.1, high: float = 0.95
) -> np.ndarray:
    """A random RGB colour [3] in [low, high]: a grey level pushed toward a random hue by `saturation`."""
    grey = rng.uniform(low, high)
    hue = rng.uniform(low, high, 3)
    return np.clip(grey + saturation * rng.uniform(0.0, 1.0) * (hue - grey), 0.0, 1.0)


def noise_field(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth value noise [height, width] in [0, 1] with features about `cell` pixels across."""
    grid_h = max(2, int(np.ceil(height / cell)) + 1)
    grid_w = max(2, int(np.ceil(width / cell)) + 1)
    small = Image.fromarray(rng.random((grid_h, grid_w), dtype=np.float32), mode="F")
    return np.asarray(small.resize((width, height), Image.BICUBIC)).clip(0.0, 1.0)


def _plane_wave(rng: np.random.Generator, height: int, width: int, period: float) -> np.ndarray:
    angle = rng.uniform(0.0, np.pi)
    k = np.float32(2.0 * np.pi / period)
    xs = np.arange(width, dtype=np.float32) * (k * np.float32(np.cos(angle)))
    ys = np.arange(height, dtype=np.float32) * (k * np.float32(np.sin(angle))) + np.float32(
        rng.uniform(0, 2 * np.pi)
    )
    return np.sin(ys[:, None] + xs[None, :])


def pattern(
    rng: np.random.Generator,
    height: int,
    width: int,
    colours: np.ndarray | None = None,
    kind: str | None = None,
) -> np.ndarray:
    """A textured fill [height, width, 3] (float32 in [0, 1]) mixing two colours.

    colours: [2, 3] RGB, random when None. kind: one of PATTERN_KINDS, random when None.
    """
    if colours is None:
        colours = np.stack([random_colour(rng), random_colour(rng)])
    kind = kind or PATTERN_KINDS[rng.integers(len(PATTERN_KINDS))]
    size = max(height, width)
    period = rng.uniform(0.05, 0.25) * size + 2.0
    if kind == "noise":
        weight = noise_field(rng, height, width, rng.uniform(0.05, 0.3) * size + 2.0)
    elif kind == "stripes":
        weight = _plane_wave(rng, height, width, period) > 0.0
    elif kind == "checker":
        weight = _plane_wave(rng, height, width, period) * _plane_wave(rng, height, width, period) > 0.0
    elif kind == "dots":
        a, b = _plane_wave(rng, height, width, period), _plane_wave(rng, height, width, period)
        weight = (a + 1.0) * (b + 1.0) > 2.2
    elif kind == "plaid":
        weight = (
            0.25 * (_plane_wave(rng, height, width, period) + _plane_wave(rng, height, width, period)) + 0.5
        )
    else:
        raise ValueError(f"kind must be one of {PATTERN_KINDS}, got {kind!r}")
    weight = np.asarray(weight, np.float32)[..., None]
    first, second = colours.astype(np.float32)
    return first + weight * (second - first)


def to_pil(image: np.ndarray) -> Image.Image:
    """float [H, W, 3] in [0, 1] -> PIL RGB image."""
    return Image.fromarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")


def clutter_shape(rng: np.random.Generator, width: int, height: int) -> tuple[str, list[float]]:
    """A random background shape: ('rectangle' | 'ellipse' | 'polygon' | 'line', PIL coordinates)."""
    kind = ("rectangle", "ellipse", "polygon", "line")[rng.integers(4)]
    cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
    radius = rng.uniform(0.05, 0.4) * max(width, height)
    if kind in ("rectangle", "ellipse"):
        rx, ry = radius * rng.uniform(0.3, 1.0, 2)
        return kind, [cx - rx, cy - ry, cx + rx, cy + ry]
    if kind == "polygon":
        count = rng.integers(3, 8)
        angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, count))
        radii = radius * rng.uniform(0.4, 1.0, count)
        return kind, list(np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], -1).ravel())
    angle = rng.uniform(0.0, np.pi)
    dx, dy = radius * np.cos(angle), radius * np.sin(angle)
    return kind, [cx - dx, cy - dy, cx + dx, cy + dy]


def cluttered_background(
    rng: np.random.Generator, height: int, width: int, supersample: int, num_shapes: int | None = None
) -> Image.Image:
    """A textured, cluttered RGB scene at supersampled resolution (PIL image of size W*s x H*s).

    Textures are generated at output resolution and upsampled; the clutter shapes are drawn at the
    supersampled resolution so that their edges come out anti-aliased after downsampling. Some shapes
    are filled with a second texture instead of a flat colour.
    """
    size = (width * supersample, height * supersample)
    base = pattern(rng, height, width)
    base *= 0.6 + 0.6 * noise_field(rng, height, width, max(height, width) / 2.0)[..., None]
    canvas = to_pil(base).resize(size, Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    fill_texture = None
    if num_shapes is None:
        num_shapes = int(rng.integers(3, 12))
    for _ in range(num_shapes):
        kind, coords = clutter_shape(rng, *size)
        if rng.random() < 0.3 and kind != "line":
            if fill_texture is None:
                fill_texture = to_pil(pattern(rng, height, width)).resize(size, Image.BILINEAR)
            _paste_shape(canvas, fill_texture, kind, coords, supersample)
        else:
            colour = tuple((random_colour(rng) * 255).astype(int).tolist())
            _draw_shape(draw, kind, coords, colour, supersample)
    return canvas


def _paste_shape(
    canvas: Image.Image, texture: Image.Image, kind: str, coords: list[float], supersample: int
) -> None:
    """Fill a clutter shape on `canvas` with the same region of `texture` (both the canvas size)."""
    xy = np.asarray(coords).reshape(-1, 2)
    low = np.maximum(np.floor(xy.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(xy.max(axis=0)).astype(int) + 1, canvas.size)
    if np.any(high <= low):
        return
    box = (int(low[0]), int(low[1]), int(high[0]), int(high[1]))
    mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    _draw_shape(ImageDraw.Draw(mask), kind, (xy - low).ravel().tolist(), 255, supersample)
    canvas.paste(texture.crop(box), box, mask)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, coords: list[float], fill, supersample: int) -> None:
    if kind == "rectangle":
        draw.rectangle(coords, fill=fill)
    elif kind == "ellipse":
        draw.ellipse(coords, fill=fill)
    elif kind == "polygon":
        draw.polygon(coords, fill=fill)
    else:
        draw.line(coords, fill=fill, width=max(1, int(supersample * 1.5)))
