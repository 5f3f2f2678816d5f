"""Synthetic faces, private: smooth random trajectories of a face's state for video clips.

Each parameter follows a sum of two low-frequency sinusoids; bounded parameters pass through a smooth
squashing function. Used by `landmarkjax.data.synthetic.faces.synthetic_face_clip`.
"""

from __future__ import annotations

import numpy as np

from landmarkjax.data.synthetic._face_params import FACE_ATTRIBUTE_NAMES, FaceState

__all__ = ["smooth_track", "state_trajectory"]


def smooth_track(rng: np.random.Generator, num_frames: int, amplitude: float, motion: float) -> np.ndarray:
    """A smooth random signal [T] with zero mean offset: a sum of two low-frequency sinusoids."""
    t = np.arange(num_frames, dtype=np.float64)
    frequencies = rng.uniform(0.06, 0.3, 2) * motion
    phases = rng.uniform(0.0, 2.0 * np.pi, 2)
    weights = rng.uniform(0.3, 1.0, 2)
    weights *= amplitude / weights.sum()
    return (
        weights[:, None] * (np.sin(frequencies[:, None] * t + phases[:, None]) - np.sin(phases[:, None]))
    ).sum(0)


def _squash(value: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map an unbounded signal smoothly into (low, high)."""
    return low + (high - low) * 0.5 * (1.0 + np.tanh(value))


def _unsquash(value: float, low: float, high: float) -> float:
    fraction = np.clip((value - low) / (high - low), 0.02, 0.98)
    return float(np.arctanh(2.0 * fraction - 1.0))


_BOUNDED_TRACKS = {  # name: (low, high, amplitude of the unbounded signal)
    "smile": (0.0, 1.0, 1.2),
    "mouth_open": (0.0, 1.0, 1.2),
    "eyes_open": (0.0, 1.0, 0.8),
    "brow_raise": (-1.0, 1.0, 0.8),
    "gaze_x": (-1.0, 1.0, 1.0),
    "gaze_y": (-1.0, 1.0, 0.8),
}
_ANGLE_TRACKS = {"yaw": (0.75, 0.3), "pitch": (0.4, 0.15), "roll": (0.5, 0.12)}  # name: (limit, amplitude)


def state_trajectory(
    rng: np.random.Generator, base: FaceState, num_frames: int, size: int, motion: float
) -> list[FaceState]:
    values: dict[str, np.ndarray] = {}
    for name, (limit, amplitude) in _ANGLE_TRACKS.items():
        start = np.clip(getattr(base, name), -0.7 * limit, 0.7 * limit) / limit
        track = np.arctanh(start) + smooth_track(rng, num_frames, amplitude / limit * 1.5, motion)
        values[name] = limit * np.tanh(track)
    for name, (low, high, amplitude) in _BOUNDED_TRACKS.items():
        start = getattr(base, name)
        if name == "eyes_open":
            start = max(start, 0.5)
        values[name] = _squash(
            _unsquash(start, low, high) + smooth_track(rng, num_frames, amplitude, motion), low, high
        )
    center_x = base.center[0] + smooth_track(rng, num_frames, 0.06 * size, motion)
    center_y = base.center[1] + smooth_track(rng, num_frames, 0.05 * size, motion)
    scale = base.scale * np.exp(smooth_track(rng, num_frames, 0.08, motion))
    return [
        FaceState(
            **{name: float(values[name][t]) for name in FACE_ATTRIBUTE_NAMES},
            center=(float(center_x[t]), float(center_y[t])),
            scale=float(scale[t]),
        )
        for t in range(num_frames)
    ]
