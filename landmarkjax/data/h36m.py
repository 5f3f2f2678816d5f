"""A Human3.6M-style 3D evaluation set in a documented folder layout: images, 3D joints and a camera.

Human3.6M's own release (videos, CDF pose files, an XML camera file) needs its toolkit to unpack; this
reader takes the unpacked frames in a plain layout that any conversion script can write:

    <root>/
      <subject>/                        e.g. S9, S11 (any name)
        <sequence>/                     e.g. Directions_1.54138969: the text after the last '.' names the
                                        camera (filtered by `cameras`); a name without '.' is its own camera
          camera.json                   {"R": [[3 x 3]], "t": [3], "f": [fx, fy], "c": [cx, cy]}
          joints_3d.npy                 float [N, 14, 3]: world coordinates in millimetres
          images/                       the N frames (.jpg / .jpeg / .png), in frame order when sorted by name

Camera: X_cam = R @ X_world + t (t in millimetres), pixels x = fx X_cam / Z_cam + cx, y = fy Y_cam /
Z_cam + cy (pinhole, pixel centres at integers, no lens distortion: undistort the frames first if needed).
The camera frame is OpenCV's: x right, y down, z forward, the frame the synthetic people use too.

Joints: the 14 joints HMR evaluates on, in LSP's order (`landmarkjax.body.COCOPLUS_JOINT_NAMES[:14]`: right
ankle, knee, hip, left hip, knee, ankle, right wrist, elbow, shoulder, left shoulder, elbow, wrist, neck,
head top). Human3.6M's 17-joint skeleton maps onto them except the head top (its "head" joint is the
nearest: HMR instead regresses the 14 joints from the ground-truth mesh); write whichever 14 you evaluate on.

Each frame is cropped to a square around its projected joints: centre = the centre of their 2D bounding
box, side = `crop_scale` x the box's larger side (1.45 frames a standing body as the synthetic people are
framed, about 70 % of the side), resampled bilinearly to `size` pixels (zeros outside the frame).
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from landmarkjax.body import COCOPLUS_JOINT_NAMES

__all__ = ["H36M_JOINT_NAMES", "H36mSource", "crop_square", "project_pinhole", "read_h36m_sequence"]

H36M_JOINT_NAMES: tuple[str, ...] = COCOPLUS_JOINT_NAMES[:14]
_NUM_JOINTS = 14
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def project_pinhole(points: np.ndarray, focal: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points.

    Args:
      points: [..., 3] camera-frame points (x right, y down, z forward), any length unit, z > 0.
      focal: [2] (fx, fy) pixels.
      centre: [2] (cx, cy) pixels.

    Returns:
      [..., 2] (x, y) pixels, pixel centres at integers.
    """
    points = np.asarray(points, np.float64)
    return points[..., :2] / points[..., 2:3] * np.asarray(focal, np.float64) + np.asarray(centre, np.float64)


def crop_square(image: np.ndarray, centre: np.ndarray, side: float, size: int) -> np.ndarray:
    """The square of side `side` pixels centred at `centre`, resampled bilinearly to `size` x `size`.

    Output pixel q (x, y, centres at integers) samples the input at centre + (q - (size - 1) / 2) side / size;
    samples outside the image read zeros.

    Args:
      image: [H, W, C] uint8 or float image.
      centre: [2] (x, y) pixels.
      side: the square's side in input pixels (> 0).
      size: the output side in pixels.

    Returns:
      [size, size, C] uint8 (rounded) if `image` is uint8, else float32.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got shape {image.shape}")
    if not side > 0:
        raise ValueError(f"side must be > 0, got {side}")
    height, width = image.shape[:2]
    steps = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0) * (side / size)
    xs, ys = centre[0] + steps, centre[1] + steps
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    wx, wy = xs - x0, ys - y0
    source = image.astype(np.float64)

    def gather(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
        values = source[np.clip(rows, 0, height - 1)][:, np.clip(cols, 0, width - 1)]
        return values * inside[..., None]

    top = gather(y0, x0) * (1 - wx)[None, :, None] + gather(y0, x0 + 1) * wx[None, :, None]
    bottom = gather(y0 + 1, x0) * (1 - wx)[None, :, None] + gather(y0 + 1, x0 + 1) * wx[None, :, None]
    out = top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


def _read_camera(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"expected the sequence's camera (camera.json with R, t, f, c) at {path}")
    with open(path, encoding="utf-8") as file:
        values = json.load(file)
    shapes = {"R": (3, 3), "t": (3,), "f": (2,), "c": (2,)}
    missing = [key for key in shapes if key not in values]
    if missing:
        raise ValueError(f"{path}: expected keys R [3, 3], t [3], f [2], c [2]; missing {missing}")
    camera = {key: np.asarray(values[key], np.float64) for key in shapes}
    for key, shape in shapes.items():
        if camera[key].shape != shape:
            raise ValueError(f"{path}: {key} must have shape {list(shape)}, got {list(camera[key].shape)}")
    return camera


def read_h36m_sequence(folder: str | os.PathLike) -> dict:
    """Reads one sequence folder of the layout (module docstring).

    Args:
      folder: `<root>/<subject>/<sequence>`.

    Returns:
      dict with joints_3d float64 [N, 14, 3] in the CAMERA frame, millimetres; keypoints_2d float64
      [N, 14, 2] (x, y) pixels of the full frame (projected joints); image_paths: N paths in frame order;
      camera: {"R", "t", "f", "c"}.

    Raises:
      FileNotFoundError: if camera.json, joints_3d.npy or images/ is missing.
      ValueError: naming the file, if the joints are not [N, 14, 3], the frame count differs from N, or a
        joint lies at or behind the camera.
    """
    folder = os.fspath(folder)
    camera = _read_camera(os.path.join(folder, "camera.json"))
    joints_path = os.path.join(folder, "joints_3d.npy")
    if not os.path.isfile(joints_path):
        raise FileNotFoundError(f"expected the 3D joints (joints_3d.npy, [N, 14, 3] mm) at {joints_path}")
    world = np.load(joints_path, allow_pickle=False)
    if world.ndim != 3 or world.shape[1:] != (_NUM_JOINTS, 3):
        raise ValueError(
            f"{joints_path}: expected [N, 14, 3] joints (LSP order, millimetres), got {list(world.shape)}"
        )
    images_dir = os.path.join(folder, "images")
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"expected the frames (a folder images/) at {images_dir}")
    names = sorted(name for name in os.listdir(images_dir) if name.lower().endswith(_IMAGE_SUFFIXES))
    if len(names) != len(world):
        raise ValueError(f"{folder}: {len(world)} frames of joints in joints_3d.npy but {len(names)} images")
    joints = np.asarray(world, np.float64) @ camera["R"].T + camera["t"]
    if np.any(joints[..., 2] <= 0):
        raise ValueError(f"{joints_path}: joints at or behind the camera (z <= 0) after applying camera.json")
    return {
        "joints_3d": joints,
        "keypoints_2d": project_pinhole(joints, camera["f"], camera["c"]),
        "image_paths": [os.path.join(images_dir, name) for name in names],
        "camera": camera,
    }


def _camera_name(sequence: str) -> str:
    return sequence.rsplit(".", 1)[-1]


class H36mSource:
    """A Human3.6M-style evaluation folder (module docstring) as a Grain random-access source.

    Element: image uint8 [size, size, 3] (the crop); keypoints_2d float32 [19, 2] (x, y) pixels of the crop
    in cocoplus order (the 14 joints, then zeros for the unannotated face keypoints); visibility bool [19]
    (True for the 14 joints inside the crop); joints_3d float32 [14, 3] camera frame, METRES (the body
    model's unit); frame str "<subject>/<sequence>/<image name>". Picklable; the repr names its arguments.

    Args:
      root: the folder of subject folders.
      size: the crop's side in pixels.
      crop_scale: crop side / the larger side of the projected joints' bounding box.
      cameras: keep the sequences of these cameras only (the name after the last '.'); None keeps all.
    """

    def __init__(
        self, root: str | os.PathLike, size: int = 64, crop_scale: float = 1.45, cameras: tuple | None = None
    ):
        self.root = os.fspath(root)
        self.size = int(size)
        self.crop_scale = float(crop_scale)
        self.cameras = None if cameras is None else tuple(str(camera) for camera in cameras)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"expected a Human3.6M-style folder (<subject>/<sequence>/...) at {self.root}")
        if self.size < 8 or not self.crop_scale > 0:
            raise ValueError(f"size must be >= 8 and crop_scale > 0, got {size} and {crop_scale}")
        joints, keypoints, paths, frames = [], [], [], []
        for subject in sorted(os.listdir(self.root)):
            subject_dir = os.path.join(self.root, subject)
            if not os.path.isdir(subject_dir):
                continue
            for sequence in sorted(os.listdir(subject_dir)):
                sequence_dir = os.path.join(subject_dir, sequence)
                if not os.path.isdir(sequence_dir):
                    continue
                if self.cameras is not None and _camera_name(sequence) not in self.cameras:
                    continue
                contents = read_h36m_sequence(sequence_dir)
                joints.append(contents["joints_3d"])
                keypoints.append(contents["keypoints_2d"])
                paths += contents["image_paths"]
                frames += [f"{subject}/{sequence}/{os.path.basename(p)}" for p in contents["image_paths"]]
        if not paths:
            kept = "" if self.cameras is None else f" of cameras {list(self.cameras)}"
            raise ValueError(f"{self.root}: no sequence{kept} found (expected <subject>/<sequence>/camera.json)")
        self._joints = np.concatenate(joints)
        self._keypoints = np.concatenate(keypoints)
        self._paths = paths
        self._frames = frames

    def __len__(self) -> int:
        return len(self._paths)

    def crop_box(self, index: int) -> tuple[np.ndarray, float]:
        """(centre [2] (x, y) pixels, side in pixels) of frame `index`'s crop in the full frame."""
        keypoints = self._keypoints[int(index)]
        low, high = keypoints.min(axis=0), keypoints.max(axis=0)
        return (low + high) / 2.0, float(np.max(high - low)) * self.crop_scale

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a source of {len(self)} frames.")
        path = self._paths[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        centre, side = self.crop_box(index)
        crop = crop_square(pixels, centre, side, self.size)
        keypoints = (self._keypoints[index] - centre) * (self.size / side) + (self.size - 1) / 2.0
        inside = np.all((keypoints >= -0.5) & (keypoints < self.size - 0.5), axis=-1)
        extra = len(COCOPLUS_JOINT_NAMES) - _NUM_JOINTS
        return {
            "image": crop,
            "keypoints_2d": np.pad(keypoints, [(0, extra), (0, 0)]).astype(np.float32),
            "visibility": np.pad(inside, [(0, extra)]),
            "joints_3d": (self._joints[index] / 1000.0).astype(np.float32),
            "frame": self._frames[index],
        }

    def __getstate__(self) -> dict:
        return {"root": self.root, "size": self.size, "crop_scale": self.crop_scale, "cameras": self.cameras}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return (
            f"H36mSource(root={self.root!r}, size={self.size}, crop_scale={self.crop_scale}, "
            f"cameras={self.cameras!r})"
        )
