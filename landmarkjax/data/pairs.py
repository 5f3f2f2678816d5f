"""Video pairs for IMM: two frames of one clip as (source x, target x').

TPS pairs are drawn inside the jitted train step (`landmarkjax.ops.tps.tps_image_pair`, jnp with an explicit
key); video pairs need no warp, only a choice of frames, so they are a Grain transform here.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np

__all__ = ["FramePair"]

# Per-frame fields cut to the two chosen frames (leading dimension T).
_PER_FRAME_KEYS = ("frames", "landmarks", "visibility", "face_box", "attributes")


class FramePair(grain.transforms.RandomMap):
    """Grain transform: two distinct frames of a clip, in random order, as (source, target).

    Input: a clip element with `frames` [T, H, W, 3] (T >= 2) and optional per-frame `landmarks` [T, K, 2],
    `visibility` [T, K], `face_box` [T, 4], `attributes` [T, A]. Output: the same keys with T = 2, frame 0
    the source x and frame 1 the target x' (their indices i != j drawn uniformly from the record's rng, so
    both directions of the motion occur), plus `frame_indices` int32 [2] = (i, j).
    """

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        length = len(element["frames"])
        if length < 2:
            raise ValueError(f"frames: a video pair needs a clip of at least 2 frames; got {length}.")
        chosen = rng.choice(length, size=2, replace=False)
        result = dict(element)
        for key in _PER_FRAME_KEYS:
            if key in element:
                result[key] = np.asarray(element[key])[chosen]
        result["frame_indices"] = chosen.astype(np.int32)
        return result

    def __repr__(self) -> str:
        return "FramePair()"
