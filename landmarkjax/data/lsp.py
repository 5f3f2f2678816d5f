"""Readers for the Leeds Sports Pose datasets (LSP and LSP-extended) in the layout users download.

Layouts (Johnson & Everingham; the conventions HMR's own converter follows):
  * LSP (`lsp_dataset/`): `joints.mat` holds `joints` [3, 14, 2000]: rows x, y (pixels) and a flag that is
    1 where the joint is OCCLUDED (visible = 1 - flag); images `images/im0001.jpg` ... `im2000.jpg`. The
    first 1000 images are the training split, the last 1000 the test split.
  * LSP-extended (`lspet_dataset/`): `joints.mat` holds `joints` [14, 3, 10000]: columns x, y (pixels) and
    a flag that is 1 where the joint is VISIBLE; images `images/im00001.jpg` ... `im10000.jpg`; all
    training.
The 14 joints are in LSP's order, which is the order of HMR's first 14 cocoplus keypoints
(`landmarkjax.body.COCOPLUS_JOINT_NAMES[:14]`: right ankle, knee, hip, left hip, knee, ankle, right wrist,
elbow, shoulder, left shoulder, elbow, wrist, neck, head top). Coordinates are returned as stored (HMR uses
them without a shift).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.io
from PIL import Image

from landmarkjax.body import COCOPLUS_JOINT_NAMES

__all__ = ["LSP_JOINT_NAMES", "LSP_VARIANTS", "LspSource", "lsp_to_cocoplus", "read_lsp_joints"]

LSP_JOINT_NAMES: tuple[str, ...] = COCOPLUS_JOINT_NAMES[:14]
LSP_VARIANTS = ("lsp", "lsp_extended")
_NUM_JOINTS = 14
_IMAGE_NAME = {"lsp": "im{:04d}.jpg", "lsp_extended": "im{:05d}.jpg"}
_LSP_TRAIN = 1000


def read_lsp_joints(
    path: str | os.PathLike, variant: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Reads an LSP or LSP-extended `joints.mat`.

    Args:
      path: the `joints.mat` file.
      variant: 'lsp' ([3, 14, N], flag 1 = occluded) or 'lsp_extended' ([14, 3, N], flag 1 = visible); None
        infers it from the array's layout.

    Returns:
      keypoints: float32 [N, 14, 2] (x, y) pixels in `LSP_JOINT_NAMES` order.
      visibility: bool [N, 14], True where the joint is visible.
      variant: 'lsp' or 'lsp_extended'.

    Raises:
      FileNotFoundError: if the file is missing.
      ValueError: if it holds no `joints` array of either layout, or not the layout of `variant`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected LSP joint annotations (joints.mat) at {path}")
    if variant is not None and variant not in LSP_VARIANTS:
        raise ValueError(f"variant must be one of {LSP_VARIANTS} or None, got {variant!r}")
    contents = scipy.io.loadmat(path)
    if "joints" not in contents:
        found = sorted(key for key in contents if not key.startswith("_"))
        raise ValueError(f"{path}: expected a variable 'joints', found {found}")
    joints = np.asarray(contents["joints"], np.float64)
    if joints.ndim == 2:
        joints = joints[..., None]  # MATLAB drops a trailing singleton dimension (N = 1)
    layout = {(3, _NUM_JOINTS): "lsp", (_NUM_JOINTS, 3): "lsp_extended"}.get(joints.shape[:2])
    if joints.ndim != 3 or layout is None or (variant is not None and layout != variant):
        wanted = {"lsp": "[3, 14, N]", "lsp_extended": "[14, 3, N]"}.get(variant, "[3, 14, N] or [14, 3, N]")
        raise ValueError(f"{path}: 'joints' must have shape {wanted}, got {list(joints.shape)}")
    if layout == "lsp":
        keypoints = joints[:2].transpose(2, 1, 0)
        visibility = joints[2].T == 0
    else:
        keypoints = joints[:, :2].transpose(2, 0, 1)
        visibility = joints[:, 2].T != 0
    return keypoints.astype(np.float32), visibility, layout


def lsp_to_cocoplus(keypoints: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Places LSP's 14 joints into HMR's 19 cocoplus keypoints (nose, eyes and ears unannotated).

    Args:
      keypoints: [..., 14, 2] (x, y) pixels in `LSP_JOINT_NAMES` order.
      visibility: [..., 14] bool.

    Returns:
      keypoints: float32 [..., 19, 2], zeros for the 5 face keypoints.
      visibility: bool [..., 19], False for the 5 face keypoints.
    """
    keypoints, visibility = np.asarray(keypoints, np.float32), np.asarray(visibility, bool)
    if keypoints.shape[-2:] != (_NUM_JOINTS, 2) or visibility.shape != keypoints.shape[:-1]:
        raise ValueError(
            f"expected keypoints [..., 14, 2] and visibility [..., 14], got {keypoints.shape} and "
            f"{visibility.shape}"
        )
    extra = len(COCOPLUS_JOINT_NAMES) - _NUM_JOINTS
    pad = [(0, 0)] * (keypoints.ndim - 2)
    return (np.pad(keypoints, pad + [(0, extra), (0, 0)]), np.pad(visibility, pad + [(0, extra)]))


class LspSource:
    """LSP or LSP-extended as a Grain random-access source (images read with Pillow on access).

    Element: image uint8 [H, W, 3]; keypoints_2d float32 [19, 2] (x, y) pixels in cocoplus order (the 14
    LSP joints, then zeros); visibility bool [19] (False for the 5 unannotated face keypoints); image_name
    str. Picklable; the repr names its arguments.

    Args:
      root: the dataset folder holding `joints.mat` and `images/`.
      split: 'all', 'train' or 'test'. LSP: train = the first 1000 images, test = the rest; LSP-extended is
        all training ('test' is refused).
      variant: 'lsp', 'lsp_extended' or None (inferred from `joints.mat`).
    """

    def __init__(self, root: str | os.PathLike, split: str = "all", variant: str | None = None):
        self.root = os.fspath(root)
        self.split = split
        keypoints, visibility, self.variant = read_lsp_joints(os.path.join(self.root, "joints.mat"), variant)
        if split not in ("all", "train", "test"):
            raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
        if self.variant == "lsp_extended" and split == "test":
            raise ValueError("LSP-extended has no test split (all of it is training); use split='train'")
        if not os.path.isdir(os.path.join(self.root, "images")):
            images = os.path.join(self.root, "images")
            raise FileNotFoundError(f"expected the LSP images (a folder) at {images}")
        indices = np.arange(len(keypoints))
        if self.variant == "lsp" and split == "train":
            indices = indices[:_LSP_TRAIN]
        elif self.variant == "lsp" and split == "test":
            indices = indices[_LSP_TRAIN:]
        self._indices = indices
        self._keypoints, self._visibility = lsp_to_cocoplus(keypoints, visibility)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict:
        record = int(self._indices[int(index)])
        name = _IMAGE_NAME[self.variant].format(record + 1)
        path = os.path.join(self.root, "images", name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"expected the image of record {record + 1} at {path}")
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        return {
            "image": pixels,
            "keypoints_2d": self._keypoints[record],
            "visibility": self._visibility[record],
            "image_name": name,
        }

    def __getstate__(self) -> dict:
        return {"root": self.root, "split": self.split, "variant": self.variant}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"LspSource(root={self.root!r}, split={self.split!r}, variant={self.variant!r})"
