"""Procedural multi-object videos with per-frame instance masks (for video object segmentation).

Several textured shapes (ellipses, polygons, stars) move along smooth paths, rotate, scale and deform
over a textured, slowly panning background. They keep a fixed depth order, so nearer objects occlude
farther ones; paths swing widely enough that objects leave the frame and come back. Every object is
visible in the first frame, whose mask is the query for mask propagation. Deterministic per seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

from landmarkjax.data.synthetic import _textures as textures
from landmarkjax.data.synthetic._raster import downsample, to_canvas, unit_circle

__all__ = ["OBJECT_KINDS", "synthetic_object_video"]

OBJECT_KINDS: tuple[str, ...] = ("ellipse", "polygon", "star")
MAX_OBJECTS = 255
MIN_SIZE = 16
_SUPERSAMPLE = 2
_OUTLINE_POINTS = 40
# An object must show at least this fraction of its silhouette in the first frame.
_MIN_FIRST_FRAME_VISIBLE = 0.25


@dataclasses.dataclass(frozen=True, eq=False)
class _Track:
    """One object's appearance and smooth motion (pixels, radians, frames)."""

    kind: str
    outline: np.ndarray  # [P, 2] unit-size outline in the object frame
    wobble_phase: np.ndarray  # [P] per-vertex deformation phase
    wobble: float
    radius: float
    start: np.ndarray  # [2] centre in frame 0
    swing: np.ndarray  # [2, 2] amplitudes (x, y) of two sinusoids
    swing_frequency: np.ndarray  # [2]
    swing_phase: np.ndarray  # [2, 2]
    angle0: float
    spin: float
    scale_amplitude: float
    stretch_amplitude: float
    deform_frequency: float
    deform_phase: float
    texture: Image.Image  # supersampled texture tile centred on the object
    texture_radius: float  # tile half-size in output pixels

    def center(self, t: float) -> np.ndarray:
        waves = np.sin(self.swing_frequency[:, None] * t + self.swing_phase) - np.sin(self.swing_phase)
        return self.start + (self.swing * waves).sum(axis=0)

    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        """(centre [2] pixels, angle radians, scale) at frame t."""
        scale = self.radius * np.exp(
            self.scale_amplitude * np.sin(self.deform_frequency * 0.7 * t + self.deform_phase)
        )
        return self.center(t), self.angle0 + self.spin * t, float(scale)

    def polygon(self, t: float) -> np.ndarray:
        """Outline [P, 2] in pixels at frame t."""
        centre, angle, scale = self.pose(t)
        phase = self.deform_frequency * t + self.deform_phase
        local = self.outline * (1.0 + self.wobble * np.sin(phase + self.wobble_phase))[:, None]
        stretch = 1.0 + self.stretch_amplitude * np.sin(phase)
        local = local * (stretch, 1.0 / stretch)
        c, s = np.cos(angle), np.sin(angle)
        return centre + scale * local @ np.array([[c, s], [-s, c]])


def _outline(rng: np.random.Generator, kind: str) -> np.ndarray:
    circle = unit_circle(_OUTLINE_POINTS)
    if kind == "ellipse":
        return circle * (1.0, rng.uniform(0.45, 1.0))
    if kind == "star":
        arms = int(rng.integers(4, 8))
        inner = rng.uniform(0.35, 0.6)
        theta = np.arange(2 * arms) * np.pi / arms
        radii = np.where(np.arange(2 * arms) % 2 == 0, 1.0, inner)
        return np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=-1)
    count = int(rng.integers(3, 9))
    theta = np.sort(rng.uniform(0.0, 2.0 * np.pi, count))
    theta += np.linspace(0.0, 2.0 * np.pi, count, endpoint=False) - theta  # spread the vertices out
    theta += rng.uniform(-0.3, 0.3, count) * np.pi / count
    radii = rng.uniform(0.6, 1.0, count)
    return np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=-1)


def _sample_track(rng: np.random.Generator, size: int, num_frames: int) -> _Track:
    kind = OBJECT_KINDS[rng.integers(len(OBJECT_KINDS))]
    outline = _outline(rng, kind)
    radius = rng.uniform(0.1, 0.2) * size
    reach = rng.uniform(0.2, 0.8) * size  # how far the path swings; wide swings leave the frame
    frequency = rng.uniform(0.04, 0.12, 2)
    swing = rng.normal(0.0, 1.0, (2, 2))
    swing *= reach / np.linalg.norm(swing)
    texture_radius = radius * 1.6
    tile = int(np.ceil(2 * texture_radius))
    texture = textures.pattern(rng, tile, tile)
    texture *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return _Track(
        kind=kind,
        outline=outline,
        wobble_phase=rng.uniform(0.0, 2.0 * np.pi, len(outline)),
        wobble=rng.uniform(0.0, 0.08) if kind == "polygon" else rng.uniform(0.0, 0.04),
        radius=radius,
        start=rng.uniform(0.2, 0.8, 2) * size,
        swing=swing,
        swing_frequency=frequency,
        swing_phase=rng.uniform(0.0, 2.0 * np.pi, (2, 2)),
        angle0=rng.uniform(-np.pi, np.pi),
        spin=rng.uniform(-0.12, 0.12),
        scale_amplitude=rng.uniform(0.0, 0.2),
        stretch_amplitude=rng.uniform(0.0, 0.2),
        deform_frequency=rng.uniform(0.1, 0.3),
        deform_phase=rng.uniform(0.0, 2.0 * np.pi),
        texture=textures.to_pil(texture).resize((tile * _SUPERSAMPLE,) * 2, Image.BILINEAR),
        texture_radius=tile / 2.0,
    )


def _paste_object(canvas: Image.Image, track: _Track, t: float, polygon: np.ndarray) -> Image.Image:
    """Draw one object onto the canvas; returns its full-canvas coverage mask (L)."""
    mask = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(mask).polygon(to_canvas(polygon, _SUPERSAMPLE), fill=255)
    box = mask.getbbox()
    if box is None:
        return mask
    centre, angle, scale = track.pose(t)
    # Patch pixel p -> output pixel q = (p + box corner - h) / S -> object frame A (q - centre) / k (the
    # texture turns and scales with the object) -> tile canvas pixel S * (that + tile radius) + h.
    half = (_SUPERSAMPLE - 1) / 2.0
    c, s = np.cos(angle), np.sin(angle)
    linear = np.array([[c, s], [-s, c]]) * (track.radius / scale)
    corner = np.array(box[:2], np.float64)
    offset = linear @ (corner - half) + _SUPERSAMPLE * (track.texture_radius - linear @ centre) + half
    (a, b), (d, e) = linear
    patch = track.texture.transform(
        (box[2] - box[0], box[3] - box[1]),
        Image.AFFINE,
        (a, b, offset[0], d, e, offset[1]),
        resample=Image.BILINEAR,
    )
    canvas.paste(patch, box[:2], mask.crop(box))
    return mask


def synthetic_object_video(
    seed: int, num_frames: int = 8, size: int = 128, num_objects: int = 3, *, return_layers: bool = False
) -> dict[str, np.ndarray]:
    """A video of textured shapes moving over a textured background, with instance masks.

    Args:
      seed: non-negative integer; the video is a deterministic function of (seed, num_frames, size,
        num_objects).
      num_frames: T >= 1.
      size: frame height = width in pixels (>= 16).
      num_objects: N in [1, 255]; object ids are 1..N.
      return_layers: also return the layers the frames were composed from (for tests and debugging).

    Returns:
      dict with frames uint8 [T, size, size, 3] and masks uint8 [T, size, size] (0 = background,
      i = object i where it is the nearest object covering at least half the pixel). masks[0] contains
      every id (each object shows at least a quarter of its silhouette in frame 0).
      With return_layers: object_masks bool [T, N, size, size] (each object's whole silhouette, ignoring
      occlusion; channel i-1 is object i), backgrounds uint8 [T, size, size, 3] (the frames without
      objects) and depth_order int32 [N] (object ids from farthest to nearest).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels), got {size!r}")
    if not isinstance(num_objects, (int, np.integer)) or not 1 <= num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be an integer in [1, {MAX_OBJECTS}], got {num_objects!r}")
    rng = np.random.default_rng(seed)
    tracks = [_sample_track(rng, size, num_frames) for _ in range(num_objects)]
    depth_order = rng.permutation(num_objects)  # indices, farthest first
    _ensure_visible_at_start(rng, tracks, depth_order, size)

    margin = int(np.ceil(0.1 * size))
    scenery = textures.cluttered_background(rng, size + 2 * margin, size + 2 * margin, _SUPERSAMPLE)
    pan = np.stack([_pan_track(rng, num_frames, margin) for _ in range(2)], axis=-1)
    gain = 1.0 + 0.04 * np.sin(rng.uniform(0.05, 0.2) * np.arange(num_frames) + rng.uniform(0, 2 * np.pi))
    noise_sigma = rng.uniform(0.0, 0.02)
    noise_seed = int(rng.integers(2**62))

    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    masks = np.zeros((num_frames, size, size), np.uint8)
    object_masks = np.zeros((num_frames, num_objects, size, size), bool)
    backgrounds = np.zeros_like(frames)
    noise_rng = np.random.default_rng(noise_seed)
    for t in range(num_frames):
        x0, y0 = (_SUPERSAMPLE * (margin + pan[t])).astype(int)
        canvas = scenery.crop((x0, y0, x0 + size * _SUPERSAMPLE, y0 + size * _SUPERSAMPLE))
        backgrounds[t] = _finish(downsample(canvas, _SUPERSAMPLE), gain[t], 0.0, noise_rng)
        for index in depth_order:
            coverage = _paste_object(canvas, tracks[index], float(t), tracks[index].polygon(float(t)))
            silhouette = downsample(coverage, _SUPERSAMPLE) >= 0.5
            object_masks[t, index] = silhouette
            masks[t][silhouette] = index + 1
        frames[t] = _finish(downsample(canvas, _SUPERSAMPLE), gain[t], noise_sigma, noise_rng)
    video = {"frames": frames, "masks": masks}
    if return_layers:
        video.update(
            object_masks=object_masks, backgrounds=backgrounds, depth_order=(depth_order + 1).astype(np.int32)
        )
    return video


def _pan_track(rng: np.random.Generator, num_frames: int, margin: int) -> np.ndarray:
    t = np.arange(num_frames)
    return np.round(
        0.9 * margin * np.sin(rng.uniform(0.02, 0.1) * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.0, 1.0)
    )


def _finish(image: np.ndarray, gain: float, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    image = image * np.float32(gain)
    if noise_sigma > 0.0:
        image += np.float32(noise_sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _ensure_visible_at_start(
    rng: np.random.Generator, tracks: list[_Track], depth_order: np.ndarray, size: int
) -> None:
    """Move first-frame positions (deterministically) until every object is visible enough in frame 0."""
    for _ in range(50):
        coverage = [_coverage(track.polygon(0.0), size) for track in tracks]
        visible = [c.copy() for c in coverage]
        for near_rank, near in enumerate(depth_order):
            for far in depth_order[:near_rank]:
                visible[far] &= ~coverage[near]
        fractions = [v.sum() / max(c.sum(), 1) for v, c in zip(visible, coverage)]
        hidden = [i for i, f in enumerate(fractions) if f < _MIN_FIRST_FRAME_VISIBLE]
        if not hidden:
            return
        for i in hidden:
            tracks[i] = dataclasses.replace(tracks[i], start=rng.uniform(0.2, 0.8, 2) * size)
    raise ValueError(
        f"could not place {len(tracks)} objects so that each is visible in the first frame of a "
        f"{size}x{size} video; use fewer objects"
    )


def _coverage(polygon: np.ndarray, size: int) -> np.ndarray:
    mask = Image.new("1", (size, size), 0)
    ImageDraw.Draw(mask).polygon(polygon.ravel().tolist(), fill=1)
    return np.asarray(mask, bool)
