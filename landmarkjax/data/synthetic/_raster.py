"""Supersampled polygon rasterisation with PIL: coordinate mapping, smooth curves, downsampling."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def to_canvas(points: np.ndarray, supersample: int) -> list[float]:
    """Pixel points [N, 2] (pixel centres at integers) -> flat PIL coordinates on the supersampled canvas.

    Output pixel j is the box average of canvas pixels j*s .. j*s + s - 1, whose centres average to
    j*s + (s - 1) / 2; that is where an output pixel centre lands on the canvas.
    """
    return (np.asarray(points, np.float64) * supersample + (supersample - 1) / 2.0).ravel().tolist()


@functools.lru_cache(maxsize=64)
def _catmull_rom_basis(num_points: int, samples_per_segment: int, closed: bool) -> np.ndarray:
    """Matrix [M, N] mapping N control points to the M curve samples."""
    t = np.arange(samples_per_segment) / samples_per_segment
    t2, t3 = t * t, t * t * t
    weights = 0.5 * np.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], axis=-1)
    if closed:
        padded = np.r_[num_points - 1, np.arange(num_points), 0, 1]
        num_segments = num_points
    else:
        padded = np.r_[0, np.arange(num_points), num_points - 1]
        num_segments = num_points - 1
    rows = []
    for segment in range(num_segments):
        block = np.zeros((samples_per_segment, num_points))
        for k in range(4):
            np.add.at(block, (slice(None), padded[segment + k]), weights[:, k])
        rows.append(block)
    if not closed:
        end = np.zeros((1, num_points))
        end[0, -1] = 1.0
        rows.append(end)
    return np.concatenate(rows)


def catmull_rom(points: np.ndarray, samples_per_segment: int = 4, closed: bool = False) -> np.ndarray:
    """A Catmull-Rom curve [M, 2] through the control points [N, 2] (it passes through every one).

    Open curves keep their end points (sharp corners where two open curves meet).
    """
    return _catmull_rom_basis(len(points), samples_per_segment, closed) @ points


def polygon_area(points: np.ndarray) -> float:
    """Unsigned area of the polygon [N, 2] (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]))


def new_mask(canvas: Image.Image) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """An empty 8-bit mask the size of `canvas` and a drawing context on it."""
    mask = Image.new("L", canvas.size, 0)
    return mask, ImageDraw.Draw(mask)


def downsample(image: Image.Image, supersample: int) -> np.ndarray:
    """Box-filter a supersampled PIL image by `supersample`; float32 array in [0, 1]."""
    if supersample > 1:
        image = image.reduce(supersample)
    return np.asarray(image, np.float32) * np.float32(1.0 / 255.0)


def colour_tuple(rgb: np.ndarray) -> tuple[int, ...]:
    """float RGB [3] in [0, 1] -> 8-bit PIL fill colour."""
    return tuple(int(min(max(c, 0.0), 1.0) * 255.0 + 0.5) for c in rgb.tolist())


class Painter:
    """Draws in output-pixel coordinates onto a supersampled PIL RGB canvas (mutated in place)."""

    def __init__(self, canvas: Image.Image, supersample: int):
        self.canvas = canvas
        self.supersample = supersample
        self.draw = ImageDraw.Draw(canvas)

    def coords(self, points: np.ndarray) -> list[float]:
        return to_canvas(points, self.supersample)

    def width(self, width_px: float) -> int:
        return max(1, int(round(width_px * self.supersample)))

    def polygon(self, points: np.ndarray, rgb: np.ndarray, alpha: float = 1.0) -> None:
        """Fill the polygon [N, 2] (output pixels) with `rgb`, blended with opacity `alpha`."""
        if alpha >= 1.0:
            self.draw.polygon(self.coords(points), fill=colour_tuple(rgb))
        else:
            self._blend(points, rgb, alpha, lambda draw, xy, value: draw.polygon(xy, fill=value), pad=1)

    def polyline(self, points: np.ndarray, rgb: np.ndarray, width_px: float, alpha: float = 1.0) -> None:
        """Stroke the open curve [N, 2] (output pixels) `width_px` wide."""
        width = self.width(width_px)
        if alpha >= 1.0:
            self.draw.line(self.coords(points), fill=colour_tuple(rgb), width=width, joint="curve")
        else:
            self._blend(
                points,
                rgb,
                alpha,
                lambda draw, xy, value: draw.line(xy, fill=value, width=width, joint="curve"),
                pad=width,
            )

    def clipped_polygons(self, clip: np.ndarray, fills: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Fill polygons (points [N, 2], rgb [3]) in order, keeping only what lies inside polygon `clip`."""
        box = self._box(clip, pad=1)
        if box is None:
            return
        x0, y0 = box[0], box[1]
        patch = self.canvas.crop(box)
        draw = ImageDraw.Draw(patch)
        for points, rgb in fills:
            draw.polygon(_shift(self.coords(points), x0, y0), fill=colour_tuple(rgb))
        inside = Image.new("L", patch.size, 0)
        ImageDraw.Draw(inside).polygon(_shift(self.coords(clip), x0, y0), fill=255)
        self.canvas.paste(patch, box, inside)

    def _box(self, points: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
        xy = np.asarray(points) * self.supersample + (self.supersample - 1) / 2.0
        low = np.floor(xy.min(axis=0)).astype(int) - pad
        high = np.ceil(xy.max(axis=0)).astype(int) + pad + 1
        x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
        x1, y1 = min(int(high[0]), self.canvas.width), min(int(high[1]), self.canvas.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def _blend(self, points, rgb, alpha, draw_fn, pad: int) -> None:
        box = self._box(points, pad)
        if box is None:
            return
        mask = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
        draw_fn(ImageDraw.Draw(mask), _shift(self.coords(points), box[0], box[1]), int(round(255 * alpha)))
        self.canvas.paste(colour_tuple(rgb), box, mask)


def _shift(coords: list[float], x0: int, y0: int) -> list[float]:
    shifted = np.asarray(coords).reshape(-1, 2) - (x0, y0)
    return shifted.ravel().tolist()


@functools.lru_cache(maxsize=16)
def unit_circle(num_points: int) -> np.ndarray:
    """[num_points, 2] points (cos t, sin t) evenly spaced around the unit circle."""
    theta = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    circle.setflags(write=False)
    return circle


def ellipse_points(
    center: np.ndarray, radii: tuple[float, float], angle: float = 0.0, num_points: int = 24
) -> np.ndarray:
    """Polygon [num_points, 2] approximating an ellipse rotated by `angle` radians."""
    local = unit_circle(num_points) * radii
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(center) + local @ np.array([[c, s], [-s, c]])
