"""How good are Lucas-Kanade tracks as SBR's registration targets on the synthetic face clips?

Usage:
  python benchmarks/lk_targets.py [--clips 64] [--sizes 64,128] [--channels rgb,luma]

SBR pulls a detection in frame t toward the detections of frames t-1 and t+1 tracked into frame t, so the
targets can be no better than the tracker. This tracks the TRUE landmarks of frame t-1 into frame t of
unlabelled-style clips (`SyntheticFaceClipSource`, seed 2 as in `configs/sbr.py`, cropped like evaluation
with `CropFace`) with `forward_backward_check` and the SBR config's LK settings (radius 4 at 64 px,
2 levels, 10 iterations; the radius scales with the crop), and compares the tracks with the true landmarks
of frame t. The clips move and change expression and head pose, so part of a landmark's motion is not the
motion of the image patch around it (jaw-line points slide along the silhouette as the head turns).

`--channels`: "rgb" tracks on the three colour channels (lk_track's default), "luma" on their grey
(`luma=True`); one line per crop size and choice.

Printed, one JSON line per crop size: the fraction of tracks passing the forward-backward check, and the
median / mean / 90th-percentile error of the valid tracks overall and per landmark group, in pixels of a
64 px crop (so sizes compare), next to the median true motion per frame.
"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.data.augment import CropFace
from landmarkjax.data.sources import SyntheticFaceClipSource
from landmarkjax.ops.lucas_kanade import forward_backward_check

GROUPS = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48),
          "mouth": slice(48, 68)}


def _clips(num_clips: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames [N, 3, S, S, 3] float in [0, 1] and landmarks [N, 3, 68, 2] of cropped synthetic clips."""
    source = SyntheticFaceClipSource(num_clips, num_frames=3, size=2 * size, seed=2)
    crop = CropFace(size, 0.25)
    records = [crop.map(dict(source[index])) for index in range(num_clips)]
    frames = np.stack([r["frames"] for r in records]).astype(np.float32) / 255.0
    return frames, np.stack([r["landmarks"] for r in records]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64, help="number of 3-frame clips")
    parser.add_argument("--sizes", default="64,128", help="comma-separated crop sizes in pixels")
    parser.add_argument("--channels", default="rgb", help="comma-separated: rgb (all channels), luma (grey)")
    args = parser.parse_args()
    for size, channels in ((int(s), c) for s in args.sizes.split(",") for c in args.channels.split(",")):
        if channels not in ("rgb", "luma"):
            raise ValueError(f"--channels must be among rgb, luma; got {channels!r}")
        frames, landmarks = _clips(args.clips, size)
        scale = size / 64.0
        track = jax.jit(
            functools.partial(
                forward_backward_check,
                threshold=1.0 * scale,
                window_radius=round(4 * scale),
                num_levels=2,
                num_iterations=10,
                luma=channels == "luma",
            )
        )
        tracked, valid = track(jnp.asarray(frames[:, 0]), jnp.asarray(frames[:, 1]), jnp.asarray(landmarks[:, 0]))
        valid = np.asarray(valid)
        error = np.linalg.norm(np.asarray(tracked) - landmarks[:, 1], axis=-1) / scale
        motion = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=-1) / scale

        def stats(values: np.ndarray) -> dict[str, float]:
            return {
                "median": round(float(np.median(values)), 3),
                "mean": round(float(np.mean(values)), 3),
                "p90": round(float(np.percentile(values, 90)), 3),
            }

        record = {
            "crop_px": size,
            "channels": channels,
            "window": 2 * round(4 * scale) + 1,
            "clips": args.clips,
            "valid_fraction": round(float(valid.mean()), 3),
            "error_px64": stats(error[valid]),
            "median_motion_px64": round(float(np.median(motion)), 3),
            "median_error_by_group_px64": {
                name: round(float(np.median(error[:, part][valid[:, part]])), 3) for name, part in GROUPS.items()
            },
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
