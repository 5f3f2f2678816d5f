"""AMASS-style motion files (`.npz`) as a source of mocap poses and shapes for HMR's adversarial prior.

An AMASS file holds `poses` [N, P] axis-angle radians (P = 72 for SMPL, 156 for SMPL+H, 165 for SMPL-X;
the first 3 are the global orientation, then the body joints in SMPL's order) and `betas` [B] (one shape
per sequence; 16 for SMPL+H) or [N, B]. SMPL's 72 are taken as: P = 72, as stored; P > 72, the first 66
(global orientation + 21 body joints, shared by SMPL, SMPL+H and SMPL-X) and zeros for SMPL's two hand
joints (the wider models replace them by finger joints). The first 10 betas are kept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["AmassPoseSource", "read_amass_poses"]

_SMPL_POSE = 72
_SHARED_POSE = 66
_NUM_BETAS = 10


def read_amass_poses(path: str | os.PathLike, stride: int = 1) -> dict[str, np.ndarray]:
    """Reads SMPL poses and shapes from one AMASS-style `.npz` file.

    Args:
      path: the `.npz` file, with `poses` [N, P >= 72] and `betas` [B >= 10] or [N, B >= 10].
      stride: keep every `stride`-th frame (AMASS is recorded at 60-120 Hz; neighbouring frames repeat).

    Returns:
      dict with pose float32 [M, 72] (axis-angle radians, global orientation first) and betas float32
      [M, 10], M = ceil(N / stride).

    Raises:
      FileNotFoundError: if the file is missing.
      ValueError: naming the file, if `poses` or `betas` is missing or has the wrong shape.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected an AMASS-style pose file (.npz) at {path}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    with np.load(path, allow_pickle=False) as contents:
        missing = [key for key in ("poses", "betas") if key not in contents.files]
        if missing:
            raise ValueError(f"{path}: expected arrays 'poses' and 'betas', missing {missing}")
        poses = np.asarray(contents["poses"], np.float32)
        betas = np.asarray(contents["betas"], np.float32)
    if poses.ndim != 2 or poses.shape[1] < _SMPL_POSE:
        raise ValueError(
            f"{path}: 'poses' must have shape [N, 72] (SMPL) or [N, P > 72] (SMPL+H 156, SMPL-X 165), got "
            f"{list(poses.shape)}"
        )
    if poses.shape[1] > _SMPL_POSE:
        poses = np.concatenate([poses[:, :_SHARED_POSE], np.zeros((len(poses), 6), np.float32)], axis=1)
    if betas.ndim == 1:
        betas = np.broadcast_to(betas, (len(poses),) + betas.shape)
    if betas.ndim != 2 or betas.shape[0] != len(poses) or betas.shape[1] < _NUM_BETAS:
        raise ValueError(
            f"{path}: 'betas' must have shape [B >= 10] or [N={len(poses)}, B >= 10], got {list(betas.shape)}"
        )
    return {"pose": poses[::stride].copy(), "betas": np.ascontiguousarray(betas[::stride, :_NUM_BETAS])}


class AmassPoseSource:
    """AMASS-style pose files as a Grain random-access source of mocap bodies for the adversarial prior.

    Element: pose float32 [72] (axis-angle radians, global orientation first) and betas float32 [10], the
    same keys as `landmarkjax.data.sources.SyntheticMocapSource`. The files are read once (in the order
    given, frames in file order); picklable, and the repr names its arguments.

    Args:
      paths: the `.npz` files (see `read_amass_poses`).
      stride: keep every `stride`-th frame of each file.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], stride: int = 1):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = tuple(os.fspath(path) for path in paths)
        if not self.paths:
            raise ValueError("paths must name at least one AMASS-style .npz file")
        self.stride = int(stride)
        parts = [read_amass_poses(path, stride) for path in self.paths]
        self._pose = np.concatenate([part["pose"] for part in parts])
        self._betas = np.concatenate([part["betas"] for part in parts])

    def __len__(self) -> int:
        return len(self._pose)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a source of {len(self)} poses.")
        return {"pose": self._pose[index], "betas": self._betas[index]}

    def __getstate__(self) -> dict:
        return {"paths": self.paths, "stride": self.stride}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"AmassPoseSource(paths={list(self.paths)!r}, stride={self.stride})"
